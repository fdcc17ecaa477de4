"""Online standardisation for raw streams: running mean and variance (Welford), one column at a time.

``rtrl stream --standardize`` keeps one :class:`RunningStandardizer` for the input columns and
one for the target columns, saves them in its checkpoints, and writes predictions back in the
data's own units. The arithmetic is Welford's (1962) update, which stays accurate over streams
of any length (no sum of squares that grows without bound).

Conventions (fixed here, used everywhere):

- a value that is NaN (a target that is absent) is skipped: it changes nothing;
- until a column has two values, or while its values have all been equal, its scale is 1 (a
  constant column is centred, not blown up);
- the scale is the population standard deviation sqrt(M2 / count).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RunningStandardizer"]


class RunningStandardizer:
    """Running mean and standard deviation of ``size`` columns, updated one row at a time.

    Examples
    --------
    >>> from rtrl.preprocessing import RunningStandardizer
    >>> s = RunningStandardizer(1)
    >>> for v in (10.0, 12.0, 14.0):
    ...     s.update([v])
    >>> s.mean.tolist(), s.scale.tolist()
    ([12.0], [1.632993161855452])
    >>> s.transform([14.0]).round(6).tolist(), s.inverse([0.0]).tolist()
    ([1.224745], [12.0])
    """

    def __init__(self, size: int):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"size: expected an integer >= 0, got {size!r}")
        self.count = np.zeros(int(size), dtype=np.int64)
        self.mean = np.zeros(int(size))
        self.m2 = np.zeros(int(size))

    @property
    def size(self) -> int:
        return self.mean.shape[0]

    @property
    def scale(self) -> np.ndarray:
        """sqrt(M2 / count), or 1 where that is 0 (fewer than two distinct values so far)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sqrt(self.m2 / np.maximum(self.count, 1))
        return np.where(s > 0.0, s, 1.0)

    def update(self, row: ArrayLike) -> None:
        """Add one row (NaN entries are skipped)."""
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (self.size,):
            raise ValueError(f"row: expected {self.size} values, got shape {row.shape}")
        if np.any(np.isinf(row)):
            raise ValueError("row: contains inf; the running statistics take finite values (NaN = absent)")
        for j in range(self.size):
            if not math.isnan(row[j]):
                self.add_one(j, float(row[j]))

    def add_one(self, j: int, v: float) -> float:
        """Add value ``v`` (finite) to column ``j``; return it standardised with the updated statistics."""
        self.count[j] += 1
        delta = v - self.mean[j]
        self.mean[j] += delta / self.count[j]
        self.m2[j] += delta * (v - self.mean[j])
        s = math.sqrt(self.m2[j] / self.count[j])
        return (v - self.mean[j]) / (s if s > 0.0 else 1.0)

    def copy(self) -> "RunningStandardizer":
        other = RunningStandardizer(0)
        other.count, other.mean, other.m2 = self.count.copy(), self.mean.copy(), self.m2.copy()
        return other

    def transform(self, row: ArrayLike) -> np.ndarray:
        """(row - mean) / scale (NaN stays NaN)."""
        return (np.asarray(row, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, row: ArrayLike) -> np.ndarray:
        """row * scale + mean: standardised values back in the data's units."""
        return np.asarray(row, dtype=np.float64) * self.scale + self.mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state; floats round-trip exactly through ``json`` (a resumed stream continues bit for bit)."""
        return {"count": self.count.tolist(), "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_dict(cls, data: Any, size: int | None = None) -> "RunningStandardizer":
        """Rebuild from :meth:`to_dict`; ValueError naming what is wrong with a damaged record."""
        try:
            count = np.array(data["count"], dtype=np.int64)
            mean = np.array(data["mean"], dtype=np.float64)
            m2 = np.array(data["m2"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"standardizer: a malformed record ({type(exc).__name__}: {exc})") from None
        n = count.shape[0] if count.ndim == 1 else -1
        if not (count.ndim == mean.ndim == m2.ndim == 1 and mean.shape[0] == m2.shape[0] == n):
            raise ValueError("standardizer: count, mean and m2 must be lists of one length")
        if size is not None and n != size:
            raise ValueError(f"standardizer: expected {size} columns, got {n}")
        if np.any(count < 0) or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(m2))) or np.any(m2 < 0):
            raise ValueError("standardizer: counts must be >= 0, means finite and M2 finite and >= 0")
        s = cls(n)
        s.count, s.mean, s.m2 = count, mean, m2
        return s

    def __repr__(self) -> str:
        return f"RunningStandardizer(size={self.size}, count={self.count.tolist()})"
