"""The data sets shipped with the package load offline, whole and with the right values."""

import numpy as np

from rtrl.datasets import Sunspots, load_sunspots


def test_sunspots_has_every_year_from_1700_to_2008():
    data = load_sunspots()
    assert isinstance(data, Sunspots)
    assert data.years.shape == data.values.shape == (309,)
    assert data.years.dtype.kind == "i" and data.values.dtype == np.float64
    assert data.years[0] == 1700 and data.years[-1] == 2008
    np.testing.assert_array_equal(data.years, np.arange(1700, 2009))
    assert np.all(np.isfinite(data.values)) and np.all(data.values >= 0)


def test_sunspots_known_values():
    # statsmodels.datasets.sunspots: 1700 -> 5, 1800 -> 14.5, the maximum 190.2 in 1957, 2008 -> 2.9
    data = load_sunspots()
    by_year = dict(zip(data.years.tolist(), data.values.tolist()))
    assert by_year[1700] == 5.0
    assert by_year[1800] == 14.5
    assert by_year[1957] == 190.2 == data.values.max()
    assert by_year[2008] == 2.9
    assert np.isclose(data.values.sum(), 15373.4)


def test_sunspots_arrays_are_fresh_copies():
    first = load_sunspots()
    first.values[:] = -1.0
    assert load_sunspots().values[0] == 5.0


def test_docstring_examples_run():
    import doctest

    import rtrl.datasets

    result = doctest.testmod(rtrl.datasets, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
