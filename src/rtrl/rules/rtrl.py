"""Exact RTRL (Williams & Zipser 1989, eqs. 11-16): the full sensitivities, forward in time.

Equations (paper notation, ``docs/conventions.md``)::

    z(t) = [x(t), 1, y(t)],  s(t) = W z(t),  y(t+1) = f(s(t))
    P(t+1)[k, i, j] = f'(s_k(t)) (sum_l W_rec[k, l] P(t)[l, i, j] + delta_ik z_j(t))     (eq. 12)
    e(t) = mask(t) o (d(t) - y(t+1));   dJ(t)/dW[i, j] = -sum_k e_k(t) P(t+1)[k, i, j]   (eq. 13)

Cost per step: one (n+1, n) . (n, nK) product, 2 n^3 K flops, O(n^4). Memory: P holds
n^2 K numbers, O(n^3), whatever the length of the stream. Exact: the summed per-step
gradients with W fixed equal BPTT's to rounding.

State: :class:`SensitivityState` ``(y, P)``. NumPy reference: :func:`rtrl.reference.rtrl_step`;
compiled loops: :mod:`rtrl.kernels` (explicit loops for small n, one BLAS product per step
from ``BLAS_MIN_UNITS`` units, a batch-innermost kernel for many small streams); the JAX
engine (``engine="jax"``, GPUs and several devices): :mod:`rtrl.jax_engine`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import reference as _reference
from ..kernels import KERNELS, choose_blas, rtrl_run_kernel, run_batched
from .base import Rule, RuleOptionError, register

__all__ = ["RTRL", "SensitivityState"]


class SensitivityState(NamedTuple):
    """State of the exact rules: outputs y(t) (n,) and sensitivities P(t) (n, n, K)."""

    y: np.ndarray
    P: np.ndarray


def force(y_next, P, d, mask_t, teacher_forcing):
    """Teacher forcing (paper eqs. 17-19): forced units take their target, their P rows become 0."""
    if not teacher_forcing:
        return y_next, P
    P = P.copy()
    P[mask_t] = 0.0
    return np.where(mask_t, d, y_next), P


@register
@dataclasses.dataclass(frozen=True)
class RTRL(Rule):
    """Exact real-time recurrent learning (the paper's algorithm).

    Parameters
    ----------
    kernel : {"auto", "loops", "blas"}
        Regime of the compiled loop: "auto" uses explicit loops below
        ``rtrl.kernels.BLAS_MIN_UNITS`` units and a BLAS product from there on.

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("rtrl")
    >>> W = np.zeros((2, 4)); state = rule.init(W, np.zeros(2))
    >>> y, g, state = rule.step(W, state, np.ones(1), np.array([1.0, 0.0]), np.array([True, False]))
    >>> g.shape, state.P.shape
    ((2, 4), (2, 2, 4))
    """

    kernel: str = "auto"

    name = "rtrl"
    exact = True
    unbiased = True
    cost = "O(n^4): 2 n^3 K flops"
    memory = "n^2 K (P)"
    dtypes = ("float64", "float32")

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise RuleOptionError(f"rule 'rtrl': option kernel: expected one of {KERNELS}, got {self.kernel!r}")

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        return SensitivityState(np.array(y0, dtype=W.dtype), np.zeros((n, n, K), W.dtype))

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        y_next, P, _, g = _reference.rtrl_step(W, state.y, state.P, x, d, mask_t, activation=activation)
        y, P = force(y_next, P, d, mask_t, teacher_forcing)
        return y_next, g, SensitivityState(y, P)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        use_blas = choose_blas(W.shape[0], self.kernel)
        if wmask is None:  # NOTE: leaving the argument out dispatches ~1.5 µs faster than passing None
            W, y, P, ys, G = rtrl_run_kernel(W, state.y, state.P, xs, ds, mask, lr, act, tf, use_blas, clip)
        else:
            W, y, P, ys, G = rtrl_run_kernel(W, state.y, state.P, xs, ds, mask, lr, act, tf, use_blas, clip, wmask)
        return W, SensitivityState(y, P), ys, G

    def run(self, W, state, xs, ds, mask, *, lr=0.0, activation="logistic", teacher_forcing=False, clip=0.0,
            wmask=None, engine="numba"):
        if W.ndim == 3 and engine == "numba" and wmask is None and W.dtype.name in self.dtypes:
            # Batched streams: the dedicated kernels (batch-innermost loops for small n).
            from ..activations import activation_codes

            c = np.ascontiguousarray
            use_blas = choose_blas(W.shape[1], self.kernel)
            W, y, P, ys, G = run_batched(c(W), c(state.y), c(state.P), c(xs), c(ds), c(mask), float(lr),
                                         activation_codes(activation, W.shape[1]), bool(teacher_forcing), use_blas, float(clip))
            return W, SensitivityState(y, P), ys, G
        return super().run(W, state, xs, ds, mask, lr=lr, activation=activation, teacher_forcing=teacher_forcing,
                           clip=clip, wmask=wmask, engine=engine)

    def run_jax(self, W, state, xs, ds, mask, *, lr, activation, teacher_forcing, clip, wmask):
        """The JAX engine's loop (:mod:`rtrl.jax_engine`): same meaning as :meth:`run`, W (n, K) or (B, n, K)."""
        from .. import jax_engine

        W, y, P, ys, G = jax_engine.run("rtrl", W, state.y, state.P, xs, ds, mask, lr=lr, activation=activation,
                                        teacher_forcing=teacher_forcing, clip=clip, wmask=wmask)
        return W, SensitivityState(y, P), ys, G

    def numbers(self, n, K):
        return n + n * n * K
