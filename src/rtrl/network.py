"""The paper's network: n fully connected units, m input lines and a bias line."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import check_memory, check_positive, check_random_state

__all__ = ["init_weights", "DEFAULT_WEIGHT_SCALE", "n_units_inputs"]

#: Project default (the paper says only "small random values"): W ~ U(-0.1, 0.1).
DEFAULT_WEIGHT_SCALE = 0.1
#: The largest scale whose interval U(-scale, scale) has a finite width in float64.
MAX_WEIGHT_SCALE = float(np.finfo(np.float64).max) / 2


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def init_weights(n_units: int, n_inputs: int, *, scale: float = DEFAULT_WEIGHT_SCALE, rng: Any = None) -> np.ndarray:
    """Draw initial weights W of shape (n_units, n_inputs + 1 + n_units).

    Every weight is drawn independently from U(-scale, scale). Columns are
    ``[inputs (n_inputs), bias (1), recurrent (n_units)]``.

    NOTE: the paper gives no range ("small random values"); ``scale=0.1`` is the
    project default.

    Parameters
    ----------
    n_units : int >= 1
    n_inputs : int >= 0
    scale : float, 0 <= scale <= MAX_WEIGHT_SCALE (about 9e307)
    rng : None, int or numpy.random.Generator
        Source of randomness; an int seeds a new Generator, so the same int gives the same W.

    Examples
    --------
    >>> import rtrl
    >>> rtrl.init_weights(3, 2, rng=0).shape
    (3, 6)
    """
    n = _check_count(n_units, "n_units", 1)
    m = _check_count(n_inputs, "n_inputs", 0)
    scale = check_positive(scale, "scale", allow_zero=True)
    if scale > MAX_WEIGHT_SCALE:
        raise ValueError(f"scale: expected at most {MAX_WEIGHT_SCALE:g} (the width 2 * scale of U(-scale, scale) "
                         f"must be a finite float), got {scale:g}")
    check_memory(8 * n * (m + 1 + n), "n_units" if n >= m else "n_inputs",
                 f"a weight matrix of n_units={n} by n_inputs + 1 + n_units={m + 1 + n}",
                 "choose a smaller network")
    rng = check_random_state(rng)
    return rng.uniform(-scale, scale, size=(n, m + 1 + n))


def n_units_inputs(W: ArrayLike) -> tuple[int, int]:
    """Return ``(n_units, n_inputs)`` of a weight matrix of shape (n, m+1+n)."""
    n, K = np.shape(W)
    return n, K - 1 - n
