import numpy as np
import pytest


def mixed_activation(n):
    """Per-unit activations for n units, every kind present from n = 3 on (linear first: the output units)."""
    return [("linear", "tanh", "logistic")[k % 3] for k in range(n)]


def random_problem(rng, n, m, T, *, p_target=0.6, activation="logistic", weight_scale=1.0):
    """A random small network and sequence: W (n, m+1+n), xs (T, m), targets (T, n) with NaN holes."""
    W = rng.uniform(-weight_scale, weight_scale, size=(n, m + 1 + n))
    xs = rng.standard_normal((T, m))
    if activation == "mixed":
        activation = mixed_activation(n)
    acts = [activation] * n if isinstance(activation, str) else list(activation)
    lo = np.array([0.1 if a == "logistic" else -0.8 for a in acts])
    hi = np.array([0.9 if a == "logistic" else 0.8 for a in acts])
    ds = rng.uniform(lo, hi, size=(T, n))
    ds[rng.random((T, n)) >= p_target] = np.nan
    return W, xs, ds


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
