"""Input validation at the public boundary.

Every message names the argument, what was expected, what arrived and, where it
helps, how to fix the call. Nothing here mutates its arguments.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

__all__ = ["Sequences", "check_random_state", "check_weights", "check_sequences", "check_positive", "check_method",
           "check_real_array", "check_memory", "physical_memory"]


def check_random_state(rng) -> np.random.Generator:
    """Resolve ``rng`` (None, int seed or ``numpy.random.Generator``) into a Generator."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng: expected a non-negative integer seed, got {rng}")
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )


def _as_float_array(value, name: str, dtype=np.float64) -> np.ndarray:
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    check_real_array(value, name)
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name}: expected an array of numbers, got {type(value).__name__} ({exc})") from None
    return arr


def check_real_array(value, name: str):
    """Raise TypeError naming ``name`` if ``value`` holds complex numbers, text, dates or objects.

    NumPy would drop an imaginary part with only a warning, and read the text "0.5" as a
    number; neither is what a caller means. Returns ``value`` unchanged (real numbers, bools,
    nested lists of them).
    """
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
    elif isinstance(value, (complex, np.complexfloating)):
        kind = "c"
    elif isinstance(value, (str, bytes)):
        kind = "U"
    elif isinstance(value, (list, tuple)):
        try:
            kind = np.asarray(value).dtype.kind
        except (TypeError, ValueError):  # ragged nesting: the float conversion will say so
            return value
    else:
        return value
    if kind == "c":
        raise TypeError(f"{name}: expected real numbers, got a complex array; pass the real part (np.real) if "
                        "that is what you mean")
    if kind in "USOVMm":
        what = {"U": "text", "S": "bytes", "O": "Python objects", "V": "raw records", "M": "dates",
                "m": "time deltas"}[kind]
        if kind == "O":
            # a list of numbers with None or mixed types: fine only if every item is a real number
            flat = np.asarray(value, dtype=object).ravel()
            if all(isinstance(v, (numbers.Real, np.bool_)) for v in flat):
                return value
            bad = next(v for v in flat if not isinstance(v, (numbers.Real, np.bool_)))
            if isinstance(bad, (complex, np.complexfloating)):
                raise TypeError(f"{name}: expected real numbers, got a complex number {bad!r}; pass the real "
                                "part if that is what you mean")
            what = f"{type(bad).__name__} items"
        raise TypeError(f"{name}: expected an array of numbers, got {what}")
    return value


def check_weights(W, name: str = "W", dtype=np.float64) -> np.ndarray:
    """Return ``W`` as a finite 2-D float array of shape (n, K) with K >= n + 1."""
    W = _as_float_array(W, name, dtype)
    if W.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array of shape (n_units, n_inputs + 1 + n_units), got shape {W.shape}"
        )
    n, K = W.shape
    if n < 1 or K < n + 1:
        raise ValueError(
            f"{name}: expected shape (n_units, n_inputs + 1 + n_units) with n_units >= 1, got shape {W.shape}"
            " (columns are [inputs, bias, recurrent])"
        )
    if not np.all(np.isfinite(W)):
        raise ValueError(f"{name}: contains NaN or inf; weights must be finite (lower the learning rate if training diverged)")
    return W


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, checking it is finite and positive (or zero if allowed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return value


def check_method(method: str, allowed: tuple[str, ...], name: str = "method") -> str:
    if not isinstance(method, str):
        raise TypeError(f"{name}: expected a string, one of {allowed}, got {type(method).__name__}")
    if method not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {method!r}")
    return method


class Sequences(NamedTuple):
    """Validated arrays for one sequence (see ``check_sequences``)."""

    W: np.ndarray  # (n, K)
    xs: np.ndarray  # (T, m)
    ds: np.ndarray  # (T, n), 0.0 where mask is False
    mask: np.ndarray  # (T, n) bool
    y0: np.ndarray  # (n,)


def check_sequences(W, xs, targets=None, mask=None, y0=None, *, require_targets: bool = True,
                    dtype=np.float64) -> Sequences:
    """Validate one sequence against the conventions of ``docs/conventions.md``.

    ``W`` (n, m+1+n); ``xs`` (T, m); ``targets`` (T, n) where NaN means "no target"
    unless ``mask`` (T, n) is given; ``y0`` (n,) or None for zeros. Returns
    float arrays with NaN targets replaced by 0 and a boolean mask.
    """
    W = check_weights(W, dtype=dtype)
    n, K = W.shape
    xs = _as_float_array(xs, "xs", dtype)
    if xs.ndim != 2:
        raise ValueError(f"xs: expected a 2-D array of shape (T, n_inputs), got shape {xs.shape}"
                         " (use xs[:, None] for a single input line, or np.empty((T, 0)) for none)")
    T, m = xs.shape
    if m + 1 + n != K:
        raise ValueError(
            f"W: expected shape (n_units, n_inputs + 1 + n_units) = ({n}, {m + 1 + n}) for xs with "
            f"{m} input columns, got {W.shape}"
        )
    if not np.all(np.isfinite(xs)):
        t, j = np.argwhere(~np.isfinite(xs))[0]
        raise ValueError(f"xs: contains a non-finite value at step {t}, input {j}; inputs must be finite")

    if targets is None:
        if require_targets:
            raise TypeError("targets: expected an array of shape (T, n_units), got None")
        ds = np.zeros((T, n), dtype=dtype)
        if mask is not None:
            raise ValueError("mask: given without targets; pass targets as well")
        m_arr = np.zeros((T, n), dtype=bool)
    else:
        ds = _as_float_array(targets, "targets", dtype)
        if ds.shape != (T, n):
            raise ValueError(
                f"targets: expected shape (T, n_units) = ({T}, {n}), got {ds.shape}"
                " (put NaN where a unit has no target)"
            )
        if np.any(np.isinf(ds)):
            raise ValueError("targets: contains inf; use NaN (or mask=False) for 'no target'")
        if mask is None:
            m_arr = ~np.isnan(ds)
        else:
            check_real_array(mask, "mask")
            m_arr = np.asarray(mask)
            if m_arr.shape != (T, n):
                raise ValueError(f"mask: expected shape (T, n_units) = ({T}, {n}), got {m_arr.shape}")
            if m_arr.dtype != bool:
                if not np.all((m_arr == 0) | (m_arr == 1)):
                    raise ValueError("mask: expected booleans (or 0/1), got other values")
                m_arr = m_arr.astype(bool)
            bad = m_arr & np.isnan(ds)
            if np.any(bad):
                t, k = np.argwhere(bad)[0]
                raise ValueError(
                    f"targets: NaN at step {t}, unit {k} where mask is True; give a target or set mask False there"
                )
        ds = np.where(m_arr, ds, 0.0).astype(dtype, copy=False)

    if y0 is None:
        y0_arr = np.zeros(n, dtype=dtype)
    else:
        y0_arr = _as_float_array(y0, "y0", dtype)
        if y0_arr.shape != (n,):
            raise ValueError(f"y0: expected shape (n_units,) = ({n},), got {y0_arr.shape}")
        if not np.all(np.isfinite(y0_arr)):
            raise ValueError("y0: contains NaN or inf; the initial state must be finite")
    return Sequences(W, np.ascontiguousarray(xs), np.ascontiguousarray(ds),
                     np.ascontiguousarray(m_arr), y0_arr)


def physical_memory() -> int | None:
    """Bytes of memory this process may use at most: the machine's RAM, or a smaller cgroup limit
    (None where neither can be read)."""
    import os

    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - platforms without sysconf
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**62:
            limits.append(int(text))
    return min(limits) if limits else None


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_memory(n_bytes: int, name: str, what: str, fix: str) -> None:
    """Raise ValueError naming ``name`` if ``n_bytes`` exceed the memory this process may use.

    ``what`` says what the memory is for, ``fix`` how to get a smaller request. Checked before
    anything is allocated, so an absurd size fails at once instead of when the kernel kills
    the process.
    """
    limit = physical_memory()
    if limit is not None and n_bytes > limit:
        raise ValueError(f"{name}: {what} would need {_bytes(n_bytes)} of memory, more than the {_bytes(limit)} "
                         f"this machine has; {fix}")
