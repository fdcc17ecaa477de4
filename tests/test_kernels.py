"""The compiled kernels (both regimes, both float types) against the NumPy reference."""

import numpy as np
import pytest

import rtrl
from rtrl import reference
from rtrl.activations import activation_codes
from rtrl.kernels import BLAS_MIN_UNITS, choose_blas, rtrl_run_kernel
from conftest import random_problem


def _arrays(rng, n, m, T, activation="logistic", p_target=0.6, weight_scale=1.0):
    W, xs, ds = random_problem(rng, n, m, T, activation=activation, p_target=p_target, weight_scale=weight_scale)
    mask = ~np.isnan(ds)
    return W, xs, np.where(mask, ds, 0.0), mask


@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("n", [1, 4, 13])
def test_kernel_continues_a_run_like_the_reference(use_blas, n):
    """From a mid-run state (P != 0, y != 0, forced rows zeroed), in chunks, with clipping."""
    rng = np.random.default_rng(n)
    m, T = 2, 40
    W, xs, ds, mask = _arrays(rng, n, m, T, weight_scale=0.6)
    K = m + 1 + n
    kw = dict(learning_rate=0.4, activation="tanh", teacher_forcing=True, clip_norm=0.5)
    ref = (W, np.zeros(n), np.zeros((n, n, K)))
    fast = ref
    seen_nonzero_P = False
    for sl in (slice(0, 7), slice(7, 8), slice(8, 21), slice(21, 40)):
        r = reference.rtrl_run(*ref, xs[sl], ds[sl], mask[sl], **kw)
        f = rtrl_run_kernel(*fast, xs[sl], ds[sl], mask[sl], 0.4, activation_codes("tanh", n), True, use_blas, 0.5)
        for a, b, what in zip(r, f, ("W", "y", "P", "ys", "G")):
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13, err_msg=f"{what} after {sl}")
        ref, fast = r[:3], f[:3]
        seen_nonzero_P |= bool(np.any(ref[2] != 0.0))
    assert seen_nonzero_P


def test_kernel_without_any_target_leaves_weights_alone():
    rng = np.random.default_rng(1)
    W, xs, ds, mask = _arrays(rng, 5, 2, 30)
    mask[:] = False
    for use_blas in (False, True):
        Wf, y, P, ys, G = rtrl_run_kernel(W, np.zeros(5), np.zeros((5, 5, 8)), xs, ds, mask, 0.5, np.zeros(5, np.int64), False,
                                          use_blas, 0.0)
        np.testing.assert_array_equal(Wf, W)
        np.testing.assert_array_equal(G, 0.0)
        np.testing.assert_allclose(ys, rtrl.forward(W, xs), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kernel", ["loops", "blas"])
def test_forced_kernel_regimes_through_the_api(kernel):
    rng = np.random.default_rng(4)
    W, xs, ds = random_problem(rng, 7, 3, 200, weight_scale=0.5)
    kw = dict(learning_rate=0.3, teacher_forcing=True)
    Wa, ya = rtrl.train_online(W, xs, ds, engine="numpy", **kw)
    Wb, yb = rtrl.train_online(W, xs, ds, kernel=kernel, **kw)
    np.testing.assert_allclose(Wb, Wa, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(yb, ya, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rtrl.gradient(W, xs, ds, kernel=kernel), rtrl.gradient(W, xs, ds, method="bptt"),
                               rtol=1e-10, atol=1e-12)


def test_choose_blas_by_size_and_override():
    assert not choose_blas(BLAS_MIN_UNITS - 1)
    assert choose_blas(BLAS_MIN_UNITS)
    assert choose_blas(2, "blas") and not choose_blas(500, "loops")
    with pytest.raises(ValueError, match="kernel"):
        choose_blas(3, "gpu")


def test_float32_kernel_follows_float64_and_keeps_its_type():
    rng = np.random.default_rng(2)
    W, xs, ds = random_problem(rng, 4, 2, 300, weight_scale=0.5)
    W64, y64 = rtrl.train_online(W, xs, ds, learning_rate=0.3)
    for kernel in ("loops", "blas"):
        W32, y32 = rtrl.train_online(W, xs, ds, learning_rate=0.3, dtype="float32", kernel=kernel)
        assert W32.dtype == np.float32 and y32.dtype == np.float32
        np.testing.assert_allclose(W32, W64, rtol=1e-4, atol=1e-5)
        assert not np.array_equal(W32.astype(np.float64), W64)  # really computed in float32
    G32 = rtrl.gradient(W, xs, ds, dtype=np.float32)
    np.testing.assert_allclose(G32, rtrl.gradient(W, xs, ds), rtol=1e-3, atol=1e-4)


def test_dtype_and_kernel_arguments_are_validated():
    rng = np.random.default_rng(3)
    W, xs, ds = random_problem(rng, 3, 1, 5)
    with pytest.raises(ValueError, match="dtype"):
        rtrl.train_online(W, xs, ds, learning_rate=0.1, dtype="float16")
    with pytest.raises(ValueError, match="engine='numba'"):
        rtrl.train_online(W, xs, ds, learning_rate=0.1, dtype="float32", engine="numpy")
    with pytest.raises(ValueError, match="kernel"):
        rtrl.gradient(W, xs, ds, kernel="fast")
