"""Counter-based random signs, identical in NumPy and in Numba-compiled loops.

The stochastic rules (UORO, KF-RTRL) draw random signs at every step. To make the
compiled loop and the NumPy reference give *the same* numbers, and a run cut into
chunks give exactly what one pass gives, the draws are not taken from a generator
object with hidden state but computed from two integers kept in the rule's state:

``key`` (uint64)
    Names the stream of draws. :func:`derive_key` makes it from the rule's int seed
    and the batched-stream number ``stream`` given to ``init``, so batched streams
    (and seeds) draw independently.
``count`` (uint64)
    How many draws the stream has consumed so far. A step that needs r signs uses draws
    ``count, count + 1, ..., count + r - 1`` and returns the state with ``count + r``.

Draw number i of stream ``key`` is SplitMix64 (Steele, Lea & Flood 2014; the seeding
generator of Java's SplittableRandom and of xoshiro) evaluated at counter i::

    h(key, i) = mix64(key + (i + 1) * GAMMA)          (all arithmetic mod 2**64)
    mix64(z)  = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
                z ^ (z >> 31)
    sign(key, i) = +1.0 if the top bit of h(key, i) is 0 else -1.0

with GAMMA = 0x9E3779B97F4A7C15 (2**64 / golden ratio). That is exactly the sequence
of outputs of a SplitMix64 generator whose state starts at ``key``; it passes BigCrush,
and the top bit of its output is an unbiased coin flip.

Both keys and counts live in the rule state as 0-d ``uint64`` arrays (saved with it).
:func:`signs` is the vectorised NumPy version, :func:`sign_nb` the scalar one for
``@njit`` code; they agree exactly (tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GAMMA", "mix64", "derive_key", "signs", "sign_nb", "mix64_nb", "as_u64"]

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S63 = np.uint64(63)
_ONE = np.uint64(1)
#: Separates the stream number from the seed in :func:`derive_key` (an arbitrary odd constant).
_STREAM_GAMMA = np.uint64(0xD1B54A32D192ED03)


def as_u64(value) -> np.uint64:
    """A seed, stream number, key or count (int, NumPy integer or 0-d/1-element array) as np.uint64."""
    a = np.asarray(value)
    if a.size != 1:
        raise ValueError(f"expected one integer, got an array of shape {a.shape}")
    v = a.reshape(-1)[0]
    if a.dtype == np.uint64:
        return np.uint64(v)
    return np.uint64(int(v) % (1 << 64))


def mix64(z):
    """SplitMix64's output function on uint64 values (array or scalar), wrapping mod 2**64."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def derive_key(seed: int, stream: int = 0) -> np.ndarray:
    """The key (0-d uint64 array) of the draws of batched stream ``stream`` under rule seed ``seed``."""
    s = np.asarray(as_u64(seed), dtype=np.uint64)
    st = np.asarray(as_u64(stream), dtype=np.uint64)
    with np.errstate(over="ignore"):
        k = mix64(mix64(s + GAMMA) + (st + _ONE) * _STREAM_GAMMA)
    return np.array(k, dtype=np.uint64)


def signs(key, count, size: int) -> np.ndarray:
    """Draws ``count .. count + size - 1`` of stream ``key`` as float64 signs +-1.0, shape (size,)."""
    k = as_u64(key)
    c = as_u64(count)
    idx = np.arange(size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64(k + (idx + c + _ONE) * GAMMA)
    return 1.0 - 2.0 * (h >> _S63).astype(np.float64)


@njit(cache=True, inline="always")
def mix64_nb(z):
    """:func:`mix64` for one uint64 in compiled code."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def sign_nb(key, i):
    """Draw number ``i`` (uint64) of stream ``key`` (uint64) as +-1.0 (the same value as :func:`signs`)."""
    h = mix64_nb(key + (i + _ONE) * GAMMA)
    return 1.0 - 2.0 * np.float64(h >> _S63)
