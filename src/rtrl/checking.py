"""A gradient checker that ships with the package (after HIPS/autograd's ``check_grads``).

It compares an analytic gradient with central finite differences of the loss
along random directions, in float64. A test proves it fails on a wrong gradient.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import check_positive, check_random_state, check_real_array

__all__ = ["GradientCheckError", "directional_derivatives", "check_gradient"]


class GradientCheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def directional_derivatives(loss_fn: Callable[[np.ndarray], float], W: ArrayLike, directions: ArrayLike,
                            eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(L(W + eps V) - L(W - eps V)) / (2 eps)`` for each direction V."""
    Wa = np.asarray(W, dtype=np.float64)
    return np.array([(loss_fn(Wa + eps * V) - loss_fn(Wa - eps * V)) / (2.0 * eps) for V in np.asarray(directions)])


def check_gradient(loss_fn: Callable[[np.ndarray], float], grad: ArrayLike, W: ArrayLike, *, n_directions: int = 6,
                   eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-9, rng: Any = 0) -> float:
    """Check ``grad`` (the claimed dL/dW at W) against finite differences of ``loss_fn``.

    Along ``n_directions`` random unit directions V, the analytic directional
    derivative ``sum(grad * V)`` must equal the central difference to
    ``atol + rtol * scale``, where ``scale`` is the larger of the two magnitudes
    and the gradient's norm. Raises :class:`GradientCheckError` otherwise and
    returns the largest discrepancy. A gradient holding NaN or inf, or a loss that is not
    finite near W, fails the check too (GradientCheckError).
    """
    check_real_array(W, "W")
    check_real_array(grad, "grad")
    W = np.asarray(W, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != W.shape:
        raise ValueError(f"grad: expected the shape of W {W.shape}, got {grad.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W: contains NaN or inf; check the gradient at finite weights")
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise ValueError(f"n_directions: expected an integer >= 1, got {n_directions!r}")
    eps = check_positive(eps, "eps")
    check_positive(rtol, "rtol", allow_zero=True)
    check_positive(atol, "atol", allow_zero=True)
    if not np.all(np.isfinite(grad)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(grad))[0])
        raise GradientCheckError(f"gradient check failed: the analytic gradient holds {grad[bad]} at index {bad} "
                                 "(NaN or inf); a gradient must be finite")
    rng = check_random_state(rng)
    dirs = rng.standard_normal((n_directions,) + W.shape)
    dirs /= np.sqrt(np.sum(dirs ** 2, axis=tuple(range(1, dirs.ndim)), keepdims=True))
    with np.errstate(over="ignore", invalid="ignore"):
        numeric = directional_derivatives(loss_fn, W, dirs, eps)
    if not np.all(np.isfinite(numeric)):
        worst = int(np.flatnonzero(~np.isfinite(numeric))[0])
        raise GradientCheckError(f"gradient check failed along direction {worst}: the finite difference of the "
                                 f"loss is {numeric[worst]} (the loss is NaN or inf near W); check the loss "
                                 "function, or lower eps")
    analytic = np.tensordot(dirs, grad, axes=W.ndim)
    scale = np.maximum(np.maximum(np.abs(numeric), np.abs(analytic)), np.linalg.norm(grad))
    err = np.abs(numeric - analytic)
    worst = int(np.argmax(err - (atol + rtol * scale)))
    if np.any(err > atol + rtol * scale):
        raise GradientCheckError(
            f"gradient check failed along direction {worst}: analytic {analytic[worst]:.12g}, "
            f"finite difference {numeric[worst]:.12g} (|diff| {err[worst]:.3g}, tolerance "
            f"{atol + rtol * scale[worst]:.3g})"
        )
    return float(np.max(err))
