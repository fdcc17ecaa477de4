"""The master test: exact RTRL == epochwise BPTT == central finite differences (float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtrl
from conftest import mixed_activation, random_problem


def _loss_fn(xs, ds, mask=None, **kw):
    return lambda V: rtrl.loss(V, xs, ds, mask, **kw)


@pytest.mark.parametrize("activation", ["logistic", "tanh", "linear", "mixed"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rtrl_equals_bptt_equals_finite_differences(activation, teacher_forcing, engine):
    rng = np.random.default_rng(sum(map(ord, f"{activation}{teacher_forcing}{engine}")))
    for trial in range(8):
        n, m, T = rng.integers(1, 6), rng.integers(0, 4), rng.integers(1, 15)
        act = mixed_activation(n) if activation == "mixed" else activation
        W, xs, ds = random_problem(rng, n, m, T, activation=act)
        kw = dict(activation=act, teacher_forcing=teacher_forcing)
        G_rtrl = rtrl.gradient(W, xs, ds, method="rtrl", engine=engine, **kw)
        G_bptt = rtrl.gradient(W, xs, ds, method="bptt", **kw)
        scale = max(np.abs(G_bptt).max(), 1e-300)
        assert np.abs(G_rtrl - G_bptt).max() <= 1e-12 * scale + 1e-15, (trial, n, m, T)
        rtrl.check_gradient(_loss_fn(xs, ds, **kw), G_rtrl, W, rtol=1e-6, atol=1e-9, rng=trial)


def test_explicit_mask_equals_nan_targets(rng):
    W, xs, ds = random_problem(rng, 4, 2, 20)
    mask = ~np.isnan(ds)
    filled = np.where(mask, ds, 123.0)  # values where mask is False must be ignored
    for method in ("rtrl", "bptt"):
        a = rtrl.gradient(W, xs, ds, method=method)
        b = rtrl.gradient(W, xs, filled, mask, method=method)
        np.testing.assert_array_equal(a, b)


def test_no_targets_gives_zero_gradient(rng):
    W, xs, ds = random_problem(rng, 3, 2, 10, p_target=0.0)
    assert np.all(rtrl.gradient(W, xs, ds) == 0.0)


def test_y0_is_respected(rng):
    W, xs, ds = random_problem(rng, 3, 1, 8)
    y0 = rng.uniform(0.2, 0.8, 3)
    G = rtrl.gradient(W, xs, ds, y0=y0)
    np.testing.assert_allclose(G, rtrl.gradient(W, xs, ds, y0=y0, method="bptt"), rtol=1e-12, atol=1e-15)
    assert not np.allclose(G, rtrl.gradient(W, xs, ds))
    rtrl.check_gradient(lambda V: rtrl.loss(V, xs, ds, y0=y0), G, W)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 5), m=st.integers(0, 3), T=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1), p_target=st.floats(0.0, 1.0),
    activation=st.sampled_from(["logistic", "tanh", "linear", "mixed"]), teacher_forcing=st.booleans(),
)
def test_rtrl_equals_bptt_property(n, m, T, seed, p_target, activation, teacher_forcing):
    rng = np.random.default_rng(seed)
    activation = mixed_activation(n) if activation == "mixed" else activation
    W, xs, ds = random_problem(rng, n, m, T, p_target=p_target, activation=activation)
    kw = dict(activation=activation, teacher_forcing=teacher_forcing)
    G_rtrl = rtrl.gradient(W, xs, ds, **kw)
    G_bptt = rtrl.gradient(W, xs, ds, method="bptt", **kw)
    np.testing.assert_allclose(G_rtrl, G_bptt, rtol=1e-11, atol=1e-13)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), m=st.integers(0, 2), T=st.integers(1, 8), seed=st.integers(0, 2**31 - 1),
       teacher_forcing=st.booleans())
def test_gradient_matches_finite_differences_property(n, m, T, seed, teacher_forcing):
    rng = np.random.default_rng(seed)
    W, xs, ds = random_problem(rng, n, m, T)
    G = rtrl.gradient(W, xs, ds, teacher_forcing=teacher_forcing)
    rtrl.check_gradient(_loss_fn(xs, ds, teacher_forcing=teacher_forcing), G, W, rng=seed)


def test_teacher_forcing_changes_the_gradient(rng):
    """Guard against a teacher-forcing flag that is silently ignored."""
    W, xs, ds = random_problem(rng, 3, 2, 10, p_target=1.0)
    assert not np.allclose(rtrl.gradient(W, xs, ds), rtrl.gradient(W, xs, ds, teacher_forcing=True))
