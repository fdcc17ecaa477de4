"""Schmidhuber's (1992) hybrid gives the very gradients of RTRL, hence the same weight trajectory."""

import numpy as np
import pytest

import rtrl
from rtrl import reference
from rtrl.activations import activation_codes
from rtrl.hybrid import default_block, hybrid_run_kernel
from conftest import random_problem


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("activation", ["logistic", "tanh"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
@pytest.mark.parametrize("block", [1, 3, 8, 1000])
def test_hybrid_weight_trajectory_equals_rtrl(activation, teacher_forcing, block):
    """Real-time learning (weights change every step), random masks, clipping: W at every step."""
    rng = np.random.default_rng(block + 10 * teacher_forcing)
    n, m, T = 6, 2, 120
    W, xs, ds = random_problem(rng, n, m, T, activation=activation, weight_scale=0.6, p_target=0.5)
    mask = ~np.isnan(ds)
    ds = np.where(mask, ds, 0.0)
    K = m + 1 + n
    lr, code = 0.5, activation_codes(activation, n)
    Wr, Wh = W, W
    state_r = (np.zeros(n), np.zeros((n, n, K)))
    # The hybrid is run over the whole stream in one call; the reference step by step, and the
    # hybrid's weights after each prefix are compared with the reference's at that step.
    Wh_final, yh, Ph, ysh, Gh = hybrid_run_kernel(W, np.zeros(n), np.zeros((n, n, K)), xs, ds, mask, lr, code,
                                                  teacher_forcing, block, 1.0)
    Wr, yr, Pr, ysr, Gr = reference.rtrl_run(W, np.zeros(n), np.zeros((n, n, K)), xs, ds, mask, learning_rate=lr,
                                             activation=activation, teacher_forcing=teacher_forcing, clip_norm=1.0)
    assert _rel(Wh_final, Wr) < 1e-9
    assert _rel(Ph, Pr) < 1e-9
    np.testing.assert_allclose(ysh, ysr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(yh, yr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Gh, Gr, rtol=1e-9, atol=1e-11)
    assert _rel(Wr, W) > 1e-3  # the weights really moved
    for t in (1, block - 1, block, block + 1, 57):  # prefixes ending inside and at block boundaries
        if 0 < t <= T:
            Wt = hybrid_run_kernel(W, np.zeros(n), np.zeros((n, n, K)), xs[:t], ds[:t], mask[:t], lr, code,
                                   teacher_forcing, block, 1.0)[0]
            Wrt = reference.rtrl_run(W, np.zeros(n), np.zeros((n, n, K)), xs[:t], ds[:t], mask[:t],
                                     learning_rate=lr, activation=activation, teacher_forcing=teacher_forcing,
                                     clip_norm=1.0)[0]
            assert _rel(Wt, Wrt) < 1e-9, t


def test_hybrid_continues_from_a_mid_run_state():
    """A block that starts from P != 0 (and zeroed forced rows) uses that P exactly."""
    rng = np.random.default_rng(5)
    n, m, T = 5, 3, 90
    W, xs, ds = random_problem(rng, n, m, T, weight_scale=0.5)
    mask = ~np.isnan(ds)
    ds = np.where(mask, ds, 0.0)
    W1, y1, P1, _, _ = reference.rtrl_run(W, np.zeros(n), np.zeros((n, n, n + m + 1)), xs[:30], ds[:30], mask[:30],
                                          learning_rate=0.3, teacher_forcing=True)
    assert np.any(P1 != 0)
    r = reference.rtrl_run(W1, y1, P1, xs[30:], ds[30:], mask[30:], learning_rate=0.3, teacher_forcing=True)
    h = hybrid_run_kernel(W1, y1, P1, xs[30:], ds[30:], mask[30:], 0.3, np.zeros(n, np.int64), True, 7, 0.0)
    for a, b, what in zip(h, r, ("W", "y", "P", "ys", "G")):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_hybrid_through_the_api(teacher_forcing):
    rng = np.random.default_rng(6)
    W, xs, ds = random_problem(rng, 9, 2, 150, weight_scale=0.5)
    kw = dict(teacher_forcing=teacher_forcing)
    G_bptt = rtrl.gradient(W, xs, ds, method="bptt", **kw)
    for block in (None, 4):
        np.testing.assert_allclose(rtrl.gradient(W, xs, ds, method="hybrid", block=block, **kw), G_bptt,
                                   rtol=1e-10, atol=1e-12)
    Wr, yr = rtrl.train_online(W, xs, ds, learning_rate=0.4, clip_norm=2.0, engine="numpy", **kw)
    Wh, yh = rtrl.train_online(W, xs, ds, learning_rate=0.4, clip_norm=2.0, method="hybrid", **kw)
    assert _rel(Wh, Wr) < 1e-9
    np.testing.assert_allclose(yh, yr, rtol=1e-9, atol=1e-12)


def test_hybrid_catches_a_wrong_block_boundary():
    """The comparison can fail: the library's own hybrid, with the carried sensitivities dropped at block
    ends (fault=1, BPTT inside blocks without RTRL's carry), is far from real-time RTRL, while the same
    call without the fault matches it to rounding."""
    rng = np.random.default_rng(7)
    n, m, T, block = 4, 2, 60, 5
    W, xs, ds = random_problem(rng, n, m, T, weight_scale=0.8)
    mask = ~np.isnan(ds)
    ds = np.where(mask, ds, 0.0)
    K = m + 1 + n
    start = (W, np.zeros(n), np.zeros((n, n, K)), xs, ds, mask, 0.5, np.zeros(n, np.int64), False, block, 0.0)
    r = reference.rtrl_run(*start[:6], learning_rate=0.5)
    exact = hybrid_run_kernel(*start)
    broken = hybrid_run_kernel(*start, None, 1)
    assert _rel(exact[0], r[0]) < 1e-9 and _rel(exact[2], r[2]) < 1e-9
    assert _rel(broken[0], r[0]) > 1e-6  # the weights drift away from RTRL's (1000 x the tolerance above)
    assert _rel(broken[2], r[2]) > 1e-4  # and the carried sensitivities are wrong
    # the prefix checks of the trajectory test see it one step into the third block (the first block
    # starts from P = 0, so the first carry that can be dropped is at the second boundary)
    t = 2 * block + 1
    Wt = hybrid_run_kernel(W, np.zeros(n), np.zeros((n, n, K)), xs[:t], ds[:t], mask[:t], 0.5, np.zeros(n, np.int64), False, block, 0.0,
                           None, 1)[0]
    Wrt = reference.rtrl_run(W, np.zeros(n), np.zeros((n, n, K)), xs[:t], ds[:t], mask[:t], learning_rate=0.5)[0]
    assert _rel(Wt, Wrt) > 1e-9


def test_hybrid_arguments():
    assert default_block(3) == 4 and default_block(64) == 32
    rng = np.random.default_rng(8)
    W, xs, ds = random_problem(rng, 3, 1, 5)
    with pytest.raises(ValueError, match="engine='numba'"):
        rtrl.train_online(W, xs, ds, learning_rate=0.1, method="hybrid", engine="numpy")
    with pytest.raises(ValueError, match="block"):
        rtrl.gradient(W, xs, ds, method="hybrid", block=0)
    with pytest.raises(ValueError, match="method"):
        rtrl.train_online(W, xs, ds, learning_rate=0.1, method="bptt")
