"""Oscillators (paper section 3): produce a periodic wave with no input at all."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_choice, check_levels, check_real, register

__all__ = ["Oscillator", "OscillatorParams", "WAVES"]

#: wave name -> (default period, fixed?)
WAVES = {"alternating": 2.0, "square": 4.0, "sine": 25.0}


@dataclasses.dataclass(frozen=True)
class OscillatorParams(Params):
    """``wave``: "alternating" (0101..., period 2), "square" (00110011..., period 4 by default)
    or "sine" (period 25 by default); ``period``: None for the wave's default (square: an even
    integer >= 2; sine: a number >= 3; alternating: 2 only); ``low``/``high``: the levels of
    the binary waves; ``amplitude``: the sine is 0.5 + amplitude sin(2 pi tau / period)."""

    wave: str = "alternating"
    period: float | None = None
    low: float = 0.1
    high: float = 0.9
    amplitude: float = 0.4

    def validate(self, task):
        check_choice(self.wave, "wave", task, tuple(WAVES))
        check_levels(self.low, self.high, task)
        check_real(self.amplitude, "amplitude", task, low=0.0, high=0.5, open_low=True)
        if self.period is None:
            return
        per = check_real(self.period, "period", task, low=2.0, high=1e6)
        if self.wave == "alternating" and per != 2:
            raise ValueError(f"{task}: parameter 'period': the alternating wave has period 2, got {per}")
        if self.wave == "square" and (per != int(per) or int(per) % 2):
            raise ValueError(f"{task}: parameter 'period': the square wave needs an even integer period, got {per}")
        if self.wave == "sine" and per < 3:
            raise ValueError(f"{task}: parameter 'period': the sine needs a period >= 3, got {per}")


@register
class Oscillator(Task):
    """No inputs (m = 0); unit 0 must produce the wave w(tau) at y(tau), tau = 1, 2, ...

    The wave starts at tau = 0 (where y(0) = 0 is given): alternating w = low, high, low, ...
    (0101...), square w = low, low, high, high, ... (00110011... for period 4), sine
    w(tau) = 0.5 + amplitude sin(2 pi tau / period). In array terms ``targets[t] = w(t + 1)``.
    The state is the step count.

    NOTE: with no input, the phase is fixed by the start of the run; the experiments judge a
    free run (teacher forcing and learning off) that continues from the trained network's
    state, against the continuation of this same wave. The sine is not binary: its error is
    measured as an RMS difference, not by the side of 0.5.
    """

    name = "oscillator"
    description = "no input; unit 0 produces 0101..., 00110011... or a sine of period ~25"
    params_class = OscillatorParams

    n_inputs = 0
    n_targets = 1

    @property
    def binary(self):
        return self.params.wave != "sine"

    @property
    def period(self) -> float:
        """The wave's period in steps."""
        p = self.params
        return float(WAVES[p.wave] if p.period is None else p.period)

    def wave(self, tau) -> np.ndarray:
        """w(tau) for an array of integer times tau >= 0."""
        p = self.params
        tau = np.asarray(tau)
        per = self.period
        if p.wave == "sine":
            return 0.5 + p.amplitude * np.sin(2.0 * math.pi * tau / per)
        half = int(per) // 2
        return np.asarray(np.where((tau % int(per)) < half, p.low, p.high))

    def reset(self, rng):
        return 0

    def rollout(self, state, n_steps, rng):
        check_random_state(rng)  # nothing random, but keep the signature honest
        tau = np.arange(state + 1, state + 1 + n_steps)
        return state + n_steps, np.empty((n_steps, 0)), self.wave(tau)[:, None].astype(np.float64)
