"""Simple sequence recognition (paper section 3): output 1 right after the first b that follows an a."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, register

__all__ = ["SequenceRecognition", "SeqRecParams"]


@dataclasses.dataclass(frozen=True)
class SeqRecParams(Params):
    """``n_lines``: m >= 2 one-hot input lines (line 0 is a, line 1 is b, the rest distractors);
    ``low``/``high``: the target levels."""

    n_lines: int = 3
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_int(self.n_lines, "n_lines", task, minimum=2, maximum=64)
        check_levels(self.low, self.high, task)


@register
class SequenceRecognition(Task):
    """One of m lines is on at every step, uniformly at random; line 0 is "a", line 1 is "b".

    Unit 0's target is ``high`` at the output right after a "b" that is the first "b" since
    the last "a" (i.e. an "a" came before it with no "b" in between), ``low`` at every other step.
    In array terms: ``targets[t] = high`` iff ``xs[t]`` is b and the stream was "armed"
    before step t, where an "a" arms it and a "b" disarms it.

    This is the paper's "flip-flop plus AND gate": one unit can hold "armed", the output unit
    computes AND(b now, armed) in one step, so the output is due at y(t+1) (latency 1).
    NOTE: the lines are drawn uniformly; the target is given at every step (0 or 1 level).
    The state is the "armed" flag (False at the start).
    """

    name = "sequence-recognition"
    description = "m one-hot lines: output 1 right after the first b that follows an a"
    params_class = SeqRecParams

    n_targets = 1

    @property
    def n_inputs(self):
        return self.params.n_lines

    def reset(self, rng):
        return False

    def rollout(self, state, n_steps, rng):
        rng = check_random_state(rng)
        p = self.params
        m = p.n_lines
        sym = np.minimum((rng.random(n_steps) * m).astype(np.int64), m - 1)  # (T,) which line is on
        xs = np.zeros((n_steps, m))
        xs[np.arange(n_steps), sym] = 1.0
        idx = np.arange(n_steps)
        last_a = np.maximum.accumulate(np.where(sym == 0, idx, -1)) if n_steps else idx
        last_b = np.maximum.accumulate(np.where(sym == 1, idx, -1)) if n_steps else idx
        # armed after consuming step t: the last a is later than the last b (or neither seen: inherit)
        armed_after = (last_a > last_b) | ((last_a < 0) & (last_b < 0) & bool(state))
        armed_before = np.concatenate([[bool(state)], armed_after[:-1]]) if n_steps else armed_after
        ds = np.where((sym == 1) & armed_before, p.high, p.low)[:, None]
        new_state = bool(armed_after[-1]) if n_steps else bool(state)
        return new_state, xs, ds
