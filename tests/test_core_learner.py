"""Real-time training, the stateful learner and streams: exactness and determinism."""

import numpy as np
import pytest

import rtrl
from conftest import random_problem


def test_zero_learning_rate_reproduces_the_forward_pass(rng):
    W, xs, ds = random_problem(rng, 4, 2, 40)
    for tf in (False, True):
        W_final, ys = rtrl.train_online(W, xs, ds, learning_rate=0.0, teacher_forcing=tf)
        np.testing.assert_array_equal(W_final, W)
        np.testing.assert_allclose(ys, rtrl.forward(W, xs, ds, teacher_forcing=tf), rtol=1e-14, atol=1e-15)


def test_real_time_learning_changes_weights_every_step_and_reduces_error():
    """Unit 0 learns to echo the previous input: the error must fall (a learning smoke test)."""
    rng = np.random.default_rng(0)
    T = 4000
    xs = rng.integers(0, 2, size=(T, 1)).astype(float)
    ds = np.full((T, 2), np.nan)
    ds[1:, 0] = 0.1 + 0.8 * xs[:-1, 0]
    W0 = rtrl.init_weights(2, 1, rng=1)
    W, ys = rtrl.train_online(W0, xs, ds, learning_rate=1.0)
    err = np.abs(ys[1:, 0] - ds[1:, 0])
    assert err[-500:].mean() < 0.5 * err[:500].mean()
    assert np.all(np.abs(ys[-500:, 0] - ds[-500:, 0]) < 0.4)


def test_real_time_differs_from_epochwise(rng):
    W, xs, ds = random_problem(rng, 3, 2, 30, p_target=1.0)
    lr = 0.5
    W_rt, _ = rtrl.train_online(W, xs, ds, learning_rate=lr)
    W_epoch = W - lr * rtrl.gradient(W, xs, ds)
    assert not np.allclose(W_rt, W_epoch)
    # ...and the two agree to first order in the learning rate
    lr = 1e-6
    W_rt, _ = rtrl.train_online(W, xs, ds, learning_rate=lr)
    np.testing.assert_allclose(W_rt - W, -lr * rtrl.gradient(W, xs, ds), rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_chunked_stream_equals_one_pass(engine, teacher_forcing):
    rng = np.random.default_rng(11)
    W, xs, ds = random_problem(rng, 4, 2, 120)
    kw = dict(learning_rate=0.3, teacher_forcing=teacher_forcing)
    W_one, ys_one = rtrl.train_online(W, xs, ds, engine=engine, **kw)

    net = rtrl.OnlineLearner(4, 2, W=W, engine=engine, **kw)
    ys = [net.partial_fit(xs[:7], ds[:7])]  # a chunk
    ys += [net.step(xs[t], ds[t])[None] for t in range(7, 20)]  # single steps
    for a, b in ((20, 61), (61, 62), (62, 120)):  # more chunks, one of length 1
        ys.append(net.partial_fit(xs[a:b], ds[a:b]))
    np.testing.assert_array_equal(np.concatenate(ys), ys_one)
    np.testing.assert_array_equal(net.W, W_one)
    assert net.t == 120

    state = rtrl.init_state(W)  # the pure API gives the same
    for a, b in ((0, 50), (50, 120)):
        state, _ = rtrl.run(state, xs[a:b], ds[a:b], engine=engine, **kw)
    np.testing.assert_array_equal(state.W, W_one)
    assert state.t == 120


def test_same_seed_same_run():
    def once(seed):
        net = rtrl.OnlineLearner(3, 2, learning_rate=0.5, rng=seed)
        data = np.random.default_rng(seed)
        xs, ds = data.standard_normal((50, 2)), data.uniform(0.1, 0.9, (50, 3))
        return net.W.copy(), net.partial_fit(xs, ds), net.W
    a, b, c = once(5), once(5), once(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_init_weights_range_and_rng():
    W = rtrl.init_weights(4, 3, scale=0.2, rng=np.random.default_rng(0))
    assert W.shape == (4, 8) and np.abs(W).max() <= 0.2 and np.abs(W).max() > 0.1
    np.testing.assert_array_equal(rtrl.init_weights(4, 3, rng=9), rtrl.init_weights(4, 3, rng=9))
    assert rtrl.init_weights(2, 0, rng=0).shape == (2, 3)


def test_reset_state_keeps_weights(rng):
    W, xs, ds = random_problem(rng, 3, 2, 10)
    net = rtrl.OnlineLearner(3, 2, W=W, learning_rate=0.1)
    net.partial_fit(xs, ds)
    W_trained = net.W.copy()
    net.reset_state()
    np.testing.assert_array_equal(net.W, W_trained)
    assert np.all(net.y == 0) and np.all(net.P == 0)


def test_step_without_target_only_runs(rng):
    net = rtrl.OnlineLearner(3, 2, learning_rate=1.0, rng=0)
    W0 = net.W.copy()
    y = net.step([0.5, -0.5])
    np.testing.assert_array_equal(net.W, W0)
    np.testing.assert_allclose(y, rtrl.forward(W0, [[0.5, -0.5]])[0])


def test_truncated_bptt_with_full_window_and_epoch_updates_matches_epochwise(rng):
    """BPTT(h; h') with h = h' = T makes exactly one update: the epochwise gradient."""
    W, xs, ds = random_problem(rng, 3, 2, 12)
    lr = 0.3
    W_tb, ys = rtrl.train_online_bptt(W, xs, ds, learning_rate=lr, truncation=12, update_every=12)
    np.testing.assert_allclose(W_tb, W - lr * rtrl.gradient(W, xs, ds), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ys, rtrl.forward(W, xs), rtol=1e-14)


def test_truncated_bptt_is_an_approximation_of_rtrl(rng):
    W, xs, ds = random_problem(rng, 3, 2, 200, weight_scale=0.5)
    W_rt, _ = rtrl.train_online(W, xs, ds, learning_rate=0.05)
    W_h1, _ = rtrl.train_online_bptt(W, xs, ds, learning_rate=0.05, truncation=1)
    W_h20, _ = rtrl.train_online_bptt(W, xs, ds, learning_rate=0.05, truncation=20)
    # a longer window is closer to the exact real-time gradient
    assert np.linalg.norm(W_h20 - W_rt) < np.linalg.norm(W_h1 - W_rt)


def test_step_with_an_explicit_mask_equals_partial_fit(rng):
    W, xs, ds = random_problem(rng, 4, 2, 40, p_target=1.0)
    mask = rng.random((40, 4)) < 0.5
    filled = np.where(mask, ds, np.nan)
    filled[~mask & (rng.random((40, 4)) < 0.5)] = 7.0  # values off the mask are ignored
    a = rtrl.OnlineLearner(4, 2, W=W, learning_rate=0.5, teacher_forcing=True)
    b = rtrl.OnlineLearner(4, 2, W=W, learning_rate=0.5, teacher_forcing=True)
    ys_a = np.stack([a.step(xs[t], filled[t], mask[t]) for t in range(40)])
    ys_b = b.partial_fit(xs, np.where(mask, ds, np.nan))
    np.testing.assert_array_equal(ys_a, ys_b)
    np.testing.assert_array_equal(a.W, b.W)
    with pytest.raises(ValueError, match=r"target: NaN where mask is True"):
        a.step(xs[0], np.full(4, np.nan), np.ones(4, bool))
    with pytest.raises(ValueError, match=r"mask: expected shape \(n_units,\) = \(4,\), got \(3,\)"):
        a.step(xs[0], ds[0], np.ones(3, bool))
