"""Pipelined XOR (paper section 3): the XOR of two random bits, due ``delay`` steps later."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, register

__all__ = ["PipelinedXor", "XorParams"]


@dataclasses.dataclass(frozen=True)
class XorParams(Params):
    """``delay``: tau, the steps from the inputs to the output (paper: 2, 3, 4);
    ``low``/``high``: the target levels for XOR = 0 / 1."""

    delay: int = 2
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_int(self.delay, "delay", task, minimum=1, maximum=64)
        check_levels(self.low, self.high, task)


@register
class PipelinedXor(Task):
    """Two random input bits every step; unit 0 must output their XOR ``delay`` steps later.

    In the paper's time: the target for y(t) is XOR(x1(t - tau), x2(t - tau)). In array
    terms (``ys[t] = y(t+1)``): ``targets[t] = XOR(xs[t + 1 - tau])``, and NaN for the first
    tau - 1 steps, which have no input that old. tau = 1 asks for XOR in one layer (impossible
    for one unit layer); tau = 2 leaves exactly one step for a hidden layer.

    NOTE: the bits are 0/1 inputs, drawn independently with probability 1/2 (the paper: "random").
    The state is the XOR of the last tau - 1 input pairs (NaN before the stream began).
    """

    name = "pipelined-xor"
    description = "XOR of two random input bits, due tau = delay steps later (paper: tau = 2, 3, 4)"
    params_class = XorParams

    n_inputs = 2
    n_targets = 1

    def reset(self, rng):
        return (np.nan,) * (self.params.delay - 1)

    def rollout(self, state, n_steps, rng):
        rng = check_random_state(rng)
        p = self.params
        xs = (rng.random((n_steps, 2)) < 0.5).astype(np.float64)  # (T, 2)
        v = np.where(xs[:, 0] != xs[:, 1], p.high, p.low)  # (T,) XOR of this step's inputs
        full = np.concatenate([np.asarray(state, dtype=np.float64), v])  # (tau-1+T,)
        ds = full[:n_steps, None].copy()  # targets[t] = XOR(xs[t+1-tau])
        new_state = tuple(full[n_steps:].tolist())
        return new_state, xs, ds
