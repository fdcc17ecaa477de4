"""Batched independent streams: each stream is exactly the stream run alone."""

import numpy as np
import pytest

import rtrl
from conftest import random_problem


def _batch(rng, B, n, m, T, activation="logistic"):
    parts = [random_problem(rng, n, m, T, activation=activation, weight_scale=0.6) for _ in range(B)]
    W, xs, ds = (np.stack(a) for a in zip(*parts))
    return W, xs, ds


@pytest.mark.parametrize("kernel", ["loops", "blas"])
@pytest.mark.parametrize("activation", ["logistic", "tanh"])
def test_each_stream_equals_the_reference_alone(kernel, activation):
    rng = np.random.default_rng(11)
    B, n, m, T = 5, 4, 2, 120
    W, xs, ds = _batch(rng, B, n, m, T, activation)
    mask = rng.random((B, T, n)) < 0.5  # explicit masks, different per stream
    ds = np.where(mask, np.nan_to_num(ds, nan=0.5), np.nan)
    y0 = rng.uniform(-0.5, 0.5, size=(B, n))
    kw = dict(learning_rate=0.4, activation=activation, teacher_forcing=True, clip_norm=0.7)
    Wb, ysb = rtrl.train_online(W, xs, ds, mask, y0=y0, kernel=kernel, **kw)
    assert Wb.shape == (B, n, m + 1 + n) and ysb.shape == (B, T, n)
    for b in range(B):
        Wr, ysr = rtrl.train_online(W[b], xs[b], ds[b], mask[b], y0=y0[b], engine="numpy", **kw)
        np.testing.assert_allclose(Wb[b], Wr, rtol=1e-10, atol=1e-12, err_msg=f"stream {b}")
        np.testing.assert_allclose(ysb[b], ysr, rtol=1e-10, atol=1e-12, err_msg=f"stream {b}")
    assert not np.allclose(Wb[0], Wb[1])


def test_batched_engines_and_methods_agree():
    rng = np.random.default_rng(12)
    W, xs, ds = _batch(rng, 3, 7, 1, 80)  # n = 7: streams one after the other
    kw = dict(learning_rate=0.3, teacher_forcing=False)
    Wn, yn = rtrl.train_online(W, xs, ds, engine="numpy", **kw)
    for extra in (dict(), dict(kernel="loops"), dict(method="hybrid", block=6), dict(dtype="float32")):
        Wf, yf = rtrl.train_online(W, xs, ds, **kw, **extra)
        tol = 1e-4 if extra.get("dtype") else 1e-10
        np.testing.assert_allclose(Wf, Wn, rtol=tol, atol=tol / 100, err_msg=str(extra))
        np.testing.assert_allclose(yf, yn, rtol=tol, atol=tol / 100, err_msg=str(extra))


def test_batched_state_in_chunks_equals_one_pass():
    rng = np.random.default_rng(13)
    B, n, m, T = 4, 3, 2, 90
    W, xs, ds = _batch(rng, B, n, m, T)
    kw = dict(learning_rate=0.5, teacher_forcing=True)
    state = rtrl.init_state(W)
    outs = []
    for sl in (slice(0, 10), slice(10, 11), slice(11, 90)):
        state, ys = rtrl.run(state, xs[:, sl], ds[:, sl], **kw)
        outs.append(ys)
    W1, ys1 = rtrl.train_online(W, xs, ds, **kw)
    np.testing.assert_allclose(state.W, W1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), ys1, rtol=1e-12, atol=1e-14)
    assert state.t == T and state.P.shape == (B, n, n, n + m + 1)
    # a batched state equals the single-stream states side by side
    s0, _ = rtrl.run(rtrl.init_state(W[2]), xs[2], ds[2], **kw)
    np.testing.assert_allclose(state.P[2], s0.P, rtol=1e-10, atol=1e-12)


def test_batched_validation_names_the_stream():
    rng = np.random.default_rng(14)
    W, xs, ds = _batch(rng, 3, 3, 2, 10)
    bad = xs.copy()
    bad[1, 4, 0] = np.inf
    with pytest.raises(ValueError, match="stream 1: xs"):
        rtrl.train_online(W, bad, ds, learning_rate=0.1)
    with pytest.raises(ValueError, match="B = 3"):
        rtrl.train_online(W, xs[:2], ds, learning_rate=0.1)
    with pytest.raises(ValueError, match="y0"):
        rtrl.train_online(W, xs, ds, learning_rate=0.1, y0=np.zeros((2, 3)))
    Wb = W.copy()
    Wb[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="stream 2: W"):
        rtrl.train_online(Wb, xs, ds, learning_rate=0.1)
