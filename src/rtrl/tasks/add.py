"""The "add" task of the online-learning literature (Pitis 2016; Marschall, Cho & Savin 2020).

Not one of the paper's experiments: the field's standard problem for comparing online learning
rules (vanilla-rtrl's ``Add_Task``), here on the paper's network so that ``rtrl compare`` can
measure every rule on it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, register

__all__ = ["AddTask", "AddParams"]


@dataclasses.dataclass(frozen=True)
class AddParams(Params):
    """``lag1``, ``lag2``: the steps back of the two inputs the target depends on (1 = the input
    just consumed); lag1 < lag2."""

    lag1: int = 3
    lag2: int = 5

    def validate(self, task):
        check_int(self.lag1, "lag1", task, minimum=1, maximum=64)
        check_int(self.lag2, "lag2", task, minimum=1, maximum=64)
        if self.lag2 <= self.lag1:
            raise ValueError(f"{task}: parameter 'lag2': expected an integer > lag1 = {self.lag1}, got {self.lag2}")


@register
class AddTask(Task):
    """One random input bit x every step; unit 0 must output 0.5 + 0.5 x(lag1 back) - 0.25 x(lag2 back).

    In array terms: ``targets[t] = 0.1 + 0.8 (0.5 + 0.5 xs[t + 1 - lag1] - 0.25 xs[t + 1 - lag2])``
    (NaN until both inputs exist), four levels 0.3, 0.5, 0.7, 0.9.

    NOTE: the literature's levels 0.25 .. 1.0 are squeezed into [0.1, 0.9] (project choice) so that a
    logistic unit can reach every one; the labels are deterministic (vanilla-rtrl's
    ``deterministic=True``). A target counts as right within the run's tolerance (0.1, half the gap
    between levels).
    """

    name = "add"
    description = "y = 0.5 + 0.5 x(t-lag1) - 0.25 x(t-lag2) on one random bit line (Pitis 2016; not in the paper)"
    params_class = AddParams
    binary = False

    n_inputs = 1
    n_targets = 1

    def reset(self, rng):
        return (np.nan,) * (self.params.lag2 - 1)  # the last lag2 - 1 inputs (NaN before the stream)

    def rollout(self, state, n_steps, rng):
        rng = check_random_state(rng)
        p = self.params
        xs = (rng.random((n_steps, 1)) < 0.5).astype(np.float64)  # (T, 1)
        hist = np.concatenate([np.asarray(state, dtype=np.float64), xs[:, 0]])  # (lag2-1+T,)
        L = p.lag2 - 1
        t = np.arange(n_steps)
        a = hist[L + t + 1 - p.lag1]  # x(t + 1 - lag1)
        b = hist[L + t + 1 - p.lag2]  # x(t + 1 - lag2)
        ds = (0.1 + 0.8 * (0.5 + 0.5 * a - 0.25 * b))[:, None]  # (T, 1); NaN where an input is missing
        return tuple(hist[len(hist) - L:].tolist()) if L else (), xs, ds
