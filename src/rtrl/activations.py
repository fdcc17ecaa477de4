"""Unit activation functions.

Every activation is given by its name. The derivative is written in terms of the
unit's *output* ``y = f(s)``, as in the paper (logistic: ``f'(s) = y (1 - y)``),
so the learning algorithms never need to keep ``s``.

The compiled kernels identify activations by a small integer code
(:data:`ACTIVATION_CODES`); the NumPy reference uses the functions below.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ACTIVATIONS", "ACTIVATION_CODES", "activation_code", "apply", "derivative_from_output"]

#: Names of the supported activations, and their codes in the compiled kernels.
ACTIVATION_CODES = {"logistic": 0, "tanh": 1}
ACTIVATIONS = tuple(ACTIVATION_CODES)


def activation_code(name: str) -> int:
    """Return the kernel code of activation ``name``; raise ``ValueError`` for an unknown name."""
    if not isinstance(name, str):
        raise TypeError(f"activation: expected a string, one of {ACTIVATIONS}, got {type(name).__name__}")
    try:
        return ACTIVATION_CODES[name]
    except KeyError:
        raise ValueError(
            f"activation: expected one of {ACTIVATIONS}, got {name!r}"
        ) from None


def apply(name: str, s: np.ndarray) -> np.ndarray:
    """Return ``f(s)`` for activation ``name``."""
    code = activation_code(name)
    if code == 0:
        # Written with tanh to stay finite and accurate for large |s|.
        return 0.5 * (1.0 + np.tanh(0.5 * s))
    return np.tanh(s)


def derivative_from_output(name: str, y: np.ndarray) -> np.ndarray:
    """Return ``f'(s)`` expressed through the output ``y = f(s)``."""
    code = activation_code(name)
    if code == 0:
        return y * (1.0 - y)
    return 1.0 - y * y
