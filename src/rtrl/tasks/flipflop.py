"""Flip-flop: set and reset pulses; the output holds the last one (a one-bit memory)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, check_real, register

__all__ = ["FlipFlop", "FlipFlopParams"]


@dataclasses.dataclass(frozen=True)
class FlipFlopParams(Params):
    """``bits``: independent flip-flops (2 input lines and 1 target unit each);
    ``p_pulse``: probability of a set pulse, and again of a reset pulse, per bit and step;
    ``low``/``high``: target levels for "reset" / "set"."""

    bits: int = 1
    p_pulse: float = 0.1
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_int(self.bits, "bits", task, minimum=1, maximum=16)
        check_real(self.p_pulse, "p_pulse", task, low=0.0, high=0.5, open_low=True)
        check_levels(self.low, self.high, task)


@register
class FlipFlop(Task):
    """Input lines ``2i`` (set) and ``2i+1`` (reset) for each bit i; unit i holds bit i.

    At each step and for each bit, a set pulse comes with probability ``p_pulse``, a reset
    pulse with probability ``p_pulse``, never both. Unit i's target at ``ys[t] = y(t+1)`` is
    ``high`` if the last pulse of bit i up to and including step t was a set, ``low`` if it
    was a reset, NaN before the first pulse. One logistic unit can do this in one step
    (``y(t+1) = f(a set - a reset + w y(t) + b)`` with a large w is bistable), so latency 1.

    NOTE: this task is not in the paper's table; the paper explains sequence recognition as a
    flip-flop plus an AND gate, and the flip-flop is the memory element every other task
    needs. The state is the tuple of stored bits (NaN = none yet).
    """

    name = "flip-flop"
    description = "set/reset pulse lines; each output unit holds the last pulse (1 after set, 0 after reset)"
    params_class = FlipFlopParams

    @property
    def n_inputs(self):
        return 2 * self.params.bits

    @property
    def n_targets(self):
        return self.params.bits

    def reset(self, rng):
        return (np.nan,) * self.params.bits

    def rollout(self, state, n_steps, rng):
        rng = check_random_state(rng)
        p = self.params
        b = p.bits
        u = rng.random((n_steps, b))  # (T, bits): one draw decides set / reset / nothing
        set_ = u < p.p_pulse
        reset_ = (u >= p.p_pulse) & (u < 2 * p.p_pulse)
        xs = np.empty((n_steps, 2 * b))
        xs[:, 0::2] = set_
        xs[:, 1::2] = reset_
        ds = np.empty((n_steps, b))
        new_state = []
        idx = np.arange(n_steps)
        for i in range(b):
            pulse = set_[:, i] | reset_[:, i]
            last = np.maximum.accumulate(np.where(pulse, idx, -1)) if n_steps else idx
            val = np.where(set_[:, i], p.high, p.low)
            ds[:, i] = np.where(last >= 0, val[np.maximum(last, 0)], state[i])
            new_state.append(float(ds[-1, i]) if n_steps else state[i])
        return tuple(new_state), xs, ds
