"""Unit activation functions, one per unit if wanted (the paper's f_k).

Every activation is given by its name: ``"logistic"``, ``"tanh"`` or ``"linear"`` (the
identity, for real-valued targets that need no squashing). A network's ``activation`` is
either one name for every unit or a sequence of one name per unit, e.g.
``["tanh"] * 4 + ["linear"] * 2``.

The derivative is written in terms of the unit's *output* ``y = f(s)``, as in the paper
(logistic: ``f'(s) = y (1 - y)``), so the learning algorithms never need to keep ``s``.

The compiled kernels identify activations by small integer codes, one per unit
(:func:`activation_codes`); the NumPy reference uses :func:`apply` and
:func:`derivative_from_output`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

__all__ = ["ACTIVATIONS", "ACTIVATION_CODES", "Activation", "activation_code", "activation_codes",
           "check_activation", "apply", "derivative_from_output", "describe"]

#: Names of the supported activations, and their codes in the compiled kernels.
ACTIVATION_CODES = {"logistic": 0, "tanh": 1, "linear": 2}
ACTIVATIONS = tuple(ACTIVATION_CODES)

#: One name for every unit, or one name per unit.
Activation = Union[str, Sequence[str]]


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


def check_activation(value: Activation, n_units: int | None = None) -> str | tuple[str, ...]:
    """Validate ``activation`` and return it in canonical form.

    One name (a ``str``) stays a ``str``; a sequence of names becomes a tuple, or the single
    name when every unit has the same one. With ``n_units`` given, a sequence must have that
    length. Raises ``TypeError``/``ValueError`` naming ``activation``.
    """
    if isinstance(value, str):
        activation_code(value)
        return value
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "U":
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"activation: expected a name {ACTIVATIONS} or a list of one name per unit, "
                        f"got {type(value).__name__}")
    names = tuple(value)
    if not names:
        raise ValueError("activation: got an empty list; give one name, or one name per unit")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"activation[{i}]: expected a string, one of {ACTIVATIONS}, got {type(name).__name__}")
        if name not in ACTIVATION_CODES:
            raise ValueError(f"activation[{i}]: expected one of {ACTIVATIONS}, got {name!r}")
    if n_units is not None and len(names) != n_units:
        raise ValueError(f"activation: expected one name or n_units = {n_units} names (one per unit), "
                         f"got {len(names)}")
    if n_units is not None and len(set(names)) == 1:
        return names[0]
    return names


def activation_codes(value: Activation, n_units: int) -> np.ndarray:
    """The kernels' per-unit codes (int64, shape (n_units,)) of a validated or raw ``activation``."""
    act = check_activation(value, n_units)
    if isinstance(act, str):
        return np.full(n_units, ACTIVATION_CODES[act], dtype=np.int64)
    return np.array([ACTIVATION_CODES[a] for a in act], dtype=np.int64)


def describe(value: Activation) -> str:
    """A short label: the name, or e.g. ``"4*tanh+2*linear"`` for per-unit activations."""
    if isinstance(value, str):
        return value
    parts: list[list] = []
    for name in value:
        if parts and parts[-1][0] == name:
            parts[-1][1] += 1
        else:
            parts.append([name, 1])
    return "+".join(name if k == 1 else f"{k}*{name}" for name, k in parts)


def _codes_for(activation, n: int) -> np.ndarray | int:
    if isinstance(activation, str):
        return activation_code(activation)
    return activation_codes(activation, n)


def apply(activation: Activation, s: np.ndarray) -> np.ndarray:
    """Return ``f(s)``; ``activation`` is one name or one name per unit (the last axis of ``s``)."""
    code = _codes_for(activation, np.shape(s)[-1] if np.ndim(s) else 1)
    # logistic written with tanh to stay finite and accurate for large |s|
    out = {0: lambda: 0.5 * (1.0 + np.tanh(0.5 * s)), 1: lambda: np.tanh(s), 2: lambda: s * 1.0}
    if np.ndim(code) == 0:
        return out[int(code)]()
    return np.where(code == 0, out[0](), np.where(code == 1, out[1](), out[2]()))


def derivative_from_output(activation: Activation, y: np.ndarray) -> np.ndarray:
    """Return ``f'(s)`` expressed through the output ``y = f(s)`` (per unit on the last axis)."""
    code = _codes_for(activation, np.shape(y)[-1] if np.ndim(y) else 1)
    out = {0: lambda: y * (1.0 - y), 1: lambda: 1.0 - y * y, 2: lambda: np.ones_like(y)}
    if np.ndim(code) == 0:
        return out[int(code)]()
    return np.where(code == 0, out[0](), np.where(code == 1, out[1](), out[2]()))
