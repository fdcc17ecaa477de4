"""Small real data sets shipped with the package, readable offline and without extra dependencies.

Each loader reads a CSV file installed with the package (package data) and returns NumPy arrays.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np

__all__ = ["Sunspots", "load_sunspots"]


class Sunspots(NamedTuple):
    """The yearly mean sunspot numbers.

    Attributes
    ----------
    years : numpy.ndarray of int, shape (309,)
        The years 1700, 1701, ..., 2008.
    values : numpy.ndarray of float, shape (309,)
        The yearly mean sunspot number of each year (between 0 and about 190).
    """

    years: np.ndarray
    values: np.ndarray


def load_sunspots() -> Sunspots:
    """Load the yearly mean sunspot numbers 1700-2008 (309 values).

    The series is read from ``sunspots.csv``, shipped with the package (no download, no extra
    dependency). The values are the copy bundled with statsmodels (``statsmodels.datasets.sunspots``),
    originally from the National Geophysical Data Center (NOAA); the data are in the public domain.

    Returns
    -------
    Sunspots
        A named tuple ``(years, values)``: ``years`` int (309,), ``values`` float64 (309,).
        Fresh arrays on every call (changing them does not change the next call's).

    Examples
    --------
    >>> from rtrl.datasets import load_sunspots
    >>> data = load_sunspots()
    >>> data.values.shape, int(data.years[0]), int(data.years[-1])
    ((309,), 1700, 2008)
    >>> float(data.values[0])   # 1700
    5.0
    """
    with resources.files(__name__).joinpath("sunspots.csv").open("r", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", comments="#", skiprows=2, dtype=np.float64)  # (309, 2)
    # skiprows=2: the comment line naming the source and the header "year,sunspots"
    return Sunspots(years=table[:, 0].astype(np.int64), values=table[:, 1].copy())
