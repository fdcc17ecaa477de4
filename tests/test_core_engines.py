"""The Numba kernel == the NumPy reference, step by step (float64)."""

import numpy as np
import pytest

import rtrl
from rtrl import reference
from rtrl.kernels import rtrl_run_kernel
from conftest import random_problem


@pytest.mark.parametrize("activation", ["logistic", "tanh"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("learning_rate", [0.0, 0.3])
def test_kernel_matches_reference_step_by_step(activation, teacher_forcing, use_blas, learning_rate):
    rng = np.random.default_rng(7)
    n, m, T = 5, 2, 30
    W, xs, ds = random_problem(rng, n, m, T, activation=activation)
    mask = ~np.isnan(ds)
    ds = np.where(mask, ds, 0.0)
    K = m + 1 + n
    state_ref = (W.copy(), np.zeros(n), np.zeros((n, n, K)))
    state_fast = (W.copy(), np.zeros(n), np.zeros((n, n, K)))
    code = rtrl.activations.activation_codes(activation, n)
    for t in range(T):
        sl = slice(t, t + 1)
        Wr, yr, Pr, ysr, Gr = reference.rtrl_run(*state_ref, xs[sl], ds[sl], mask[sl], learning_rate=learning_rate,
                                                 activation=activation, teacher_forcing=teacher_forcing)
        Wf, yf, Pf, ysf, Gf = rtrl_run_kernel(*state_fast, xs[sl], ds[sl], mask[sl], learning_rate, code,
                                              teacher_forcing, use_blas, 0.0)
        for a, b, what in ((Wr, Wf, "W"), (yr, yf, "y"), (Pr, Pf, "P"), (ysr, ysf, "ys"), (Gr, Gf, "G")):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=f"{what} at step {t}")
        state_ref, state_fast = (Wr, yr, Pr), (Wf, yf, Pf)


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_engines_agree_on_a_long_online_run(teacher_forcing):
    rng = np.random.default_rng(3)
    W, xs, ds = random_problem(rng, 6, 3, 500, weight_scale=0.5)
    kw = dict(learning_rate=0.2, teacher_forcing=teacher_forcing, clip_norm=5.0)
    Wa, ya = rtrl.train_online(W, xs, ds, engine="numpy", **kw)
    Wb, yb = rtrl.train_online(W, xs, ds, engine="numba", **kw)
    np.testing.assert_allclose(Wb, Wa, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(yb, ya, rtol=1e-10, atol=1e-12)


def test_kernel_does_not_modify_its_arguments(rng):
    W, xs, ds = random_problem(rng, 3, 2, 10)
    copies = [a.copy() for a in (W, xs, ds)]
    rtrl.train_online(W, xs, ds, learning_rate=0.5, teacher_forcing=True)
    rtrl.gradient(W, xs, ds)
    for a, b in zip((W, xs, ds), copies):
        np.testing.assert_array_equal(a, b)


def test_clip_norm_bounds_every_weight_change(rng):
    W, xs, ds = random_problem(rng, 4, 2, 50, p_target=1.0)
    lr, clip = 1.0, 1e-3
    Wt = W
    for t in range(50):  # step by step, each change must be at most lr * clip in Frobenius norm
        W_next, _ = rtrl.train_online(Wt, xs[t:t + 1], ds[t:t + 1], learning_rate=lr, clip_norm=clip)
        assert np.linalg.norm(W_next - Wt) <= lr * clip * (1 + 1e-12)
        Wt = W_next
    assert not np.allclose(Wt, W)
