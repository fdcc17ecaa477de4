"""The stateful learner with batched streams: each stream is exactly what it would be alone."""

import numpy as np
import pytest

import rtrl
from conftest import random_problem


@pytest.mark.parametrize("n_units", [3, 8])
@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_batched_learner_equals_streams_alone(n_units, teacher_forcing):
    rng = np.random.default_rng(4)
    B, m, T = 4, 2, 60
    problems = [random_problem(rng, n_units, m, T, weight_scale=0.5) for _ in range(B)]
    W = np.stack([p[0] for p in problems])
    xs = np.stack([p[1] for p in problems])
    ds = np.stack([p[2] for p in problems])
    kw = dict(learning_rate=0.4, teacher_forcing=teacher_forcing)
    net = rtrl.OnlineLearner(n_units, m, W=W, n_streams=B, **kw)
    ys = [net.partial_fit(xs[:, :25], ds[:, :25])]
    ys += [net.step(xs[:, t], ds[:, t])[:, None] for t in range(25, 30)]
    ys.append(net.partial_fit(xs[:, 30:], ds[:, 30:]))
    ys = np.concatenate(ys, axis=1)
    assert net.n_streams == B and net.t == T and ys.shape == (B, T, n_units)
    for b in range(B):
        alone = rtrl.OnlineLearner(n_units, m, W=W[b], **kw)
        ys_b = alone.partial_fit(xs[b], ds[b])
        np.testing.assert_allclose(ys[b], ys_b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.W[b], alone.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.P[b], alone.P, rtol=1e-12, atol=1e-14)


def test_batched_learner_draws_each_stream_from_rng():
    a = rtrl.OnlineLearner(3, 1, learning_rate=0.1, n_streams=3, rng=7)
    b = rtrl.OnlineLearner(3, 1, learning_rate=0.1, n_streams=3, rng=7)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.W.shape == (3, 3, 5) and not np.array_equal(a.W[0], a.W[1])
    assert "n_streams=3" in repr(a)


def test_batched_learner_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, n_streams=2, rng=1)
    xs, ds = rng.standard_normal((2, 20, 2)), rng.uniform(0.1, 0.9, (2, 20, 3))
    net.partial_fit(xs[:, :10], ds[:, :10])
    path = tmp_path / "batched.npz"
    net.save(path)
    again = rtrl.load(path)
    assert again.n_streams == 2 and again.t == 10
    np.testing.assert_array_equal(again.partial_fit(xs[:, 10:], ds[:, 10:]), net.partial_fit(xs[:, 10:], ds[:, 10:]))
    np.testing.assert_array_equal(again.W, net.W)


def test_batched_learner_rejects_bad_shapes():
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2, rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(n_streams, n_inputs\) = \(2, 2\), got \(2,\)"):
        net.step([0.1, 0.2])
    with pytest.raises(ValueError, match=r"W: expected shape \(n_streams, n_units, n_inputs \+ 1 \+ n_units\)"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2, W=np.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"n_streams: expected None or an integer >= 1, got 0"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=0)


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_batched_step_with_junk_off_the_mask_equals_each_stream_alone(teacher_forcing):
    """Where the mask is False the target is ignored, whatever it holds (large numbers, NaN, out of range):
    a batched step(x, target, mask) equals each stream stepped alone with NaN there."""
    rng = np.random.default_rng(11)
    B, n, m, T = 3, 4, 2, 25
    W = rng.uniform(-0.6, 0.6, (B, n, m + 1 + n))
    kw = dict(learning_rate=0.5, teacher_forcing=teacher_forcing)
    net = rtrl.OnlineLearner(n, m, W=W, n_streams=B, **kw)
    alone = [rtrl.OnlineLearner(n, m, W=W[b], **kw) for b in range(B)]
    for t in range(T):
        x = rng.standard_normal((B, m))
        mask = rng.random((B, n)) < 0.5
        clean = rng.uniform(0.1, 0.9, (B, n))
        junk = np.where(mask, clean, rng.choice([1e6, -3.0, np.nan, 0.5], size=(B, n)))
        ys = net.step(x, junk, mask)
        for b in range(B):
            y_b = alone[b].step(x[b], np.where(mask[b], clean[b], np.nan))
            np.testing.assert_allclose(ys[b], y_b, rtol=1e-12, atol=1e-14)
    for b in range(B):
        np.testing.assert_allclose(net.W[b], alone[b].W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.P[b], alone[b].P, rtol=1e-12, atol=1e-14)
    assert np.abs(net.W - W).max() > 1e-3  # it learned
