import numpy as np
import pytest


def random_problem(rng, n, m, T, *, p_target=0.6, activation="logistic", weight_scale=1.0):
    """A random small network and sequence: W (n, m+1+n), xs (T, m), targets (T, n) with NaN holes."""
    W = rng.uniform(-weight_scale, weight_scale, size=(n, m + 1 + n))
    xs = rng.standard_normal((T, m))
    lo, hi = (0.1, 0.9) if activation == "logistic" else (-0.8, 0.8)
    ds = rng.uniform(lo, hi, size=(T, n))
    ds[rng.random((T, n)) >= p_target] = np.nan
    return W, xs, ds


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
