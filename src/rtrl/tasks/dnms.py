"""Delayed nonmatch to sample (paper section 3)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, check_real, register

__all__ = ["DelayedNonmatch", "DnmsParams"]


@dataclasses.dataclass(frozen=True)
class DnmsParams(Params):
    """``p_cue``: probability that the cue line is on at a step; ``delay``: steps from the
    pattern bit to the output that judges it (2 = one hidden step, as in pipelined XOR);
    ``low``/``high``: target levels for "match" / "nonmatch"."""

    p_cue: float = 0.5
    delay: int = 2
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_real(self.p_cue, "p_cue", task, low=0.0, high=1.0, open_low=True, open_high=True)
        check_int(self.delay, "delay", task, minimum=1, maximum=64)
        check_levels(self.low, self.high, task)


@register
class DelayedNonmatch(Task):
    """Input line 0 is a random pattern bit, line 1 a random cue; a cued bit is stored.

    At every step the pattern bit is 0/1 with probability 1/2 and the cue is on with
    probability ``p_cue``. When the cue is on, that step's pattern bit becomes the stored
    sample (until the next cue). At a step without cue, after the first cue, the network must
    say whether the pattern bit differs from the stored one: ``high`` for nonmatch, ``low``
    for match, due ``delay`` steps later: ``targets[t]`` judges ``xs[t + 1 - delay]``.

    NOTE (choices the paper leaves open): the paper says the cue bit "is set randomly as
    well", like the pattern bit, so ``p_cue`` = 1/2 by default (with 1/4 the sample must be
    held longer and RTRL needs more units and steps; see docs/experiments.md). The cue steps
    themselves get no target (the sample is compared with *subsequent* patterns), nor do
    steps before the first cue.
    Nonmatch = XOR(pattern, stored), so a one-layer read-out cannot give it at y(t+1);
    the default delay 2 leaves one step for a hidden layer, as in pipelined XOR.
    The state is (stored bit or NaN, the judgements not yet due).
    """

    name = "delayed-nonmatch"
    description = "store the cued pattern bit; output 1 when a later pattern bit differs from it"
    params_class = DnmsParams

    n_inputs = 2
    n_targets = 1

    def reset(self, rng):
        return (np.nan, (np.nan,) * (self.params.delay - 1))

    def rollout(self, state, n_steps, rng):
        rng = check_random_state(rng)
        p = self.params
        stored0, pending = state
        u = rng.random((n_steps, 2))  # one draw for the pattern, one for the cue
        pattern = (u[:, 0] < 0.5).astype(np.float64)  # (T,)
        cue = u[:, 1] < p.p_cue  # (T,) bool
        xs = np.stack([pattern, cue.astype(np.float64)], axis=1)  # (T, 2)
        idx = np.arange(n_steps)
        last_cue = np.maximum.accumulate(np.where(cue, idx, -1)) if n_steps else idx
        stored_after = np.where(last_cue >= 0, pattern[np.maximum(last_cue, 0)], stored0)  # (T,)
        stored_before = np.concatenate([[stored0], stored_after[:-1]]) if n_steps else stored_after
        v = np.where(pattern != stored_before, p.high, p.low)
        v = np.where(cue | np.isnan(stored_before), np.nan, v)  # (T,) judgement of step t's bit
        full = np.concatenate([np.asarray(pending, dtype=np.float64), v])
        ds = full[:n_steps, None].copy()  # targets[t] judges xs[t+1-delay]
        new_stored = float(stored_after[-1]) if n_steps else stored0
        return (new_stored, tuple(full[n_steps:].tolist())), xs, ds
