"""Optimizers and schedules (rtrl.optim) and the learner's use of them."""

import math

import numpy as np
import pytest

import rtrl
from rtrl import optim
from rtrl.io import load, save

OPTS = [optim.SGD(), optim.Momentum(0.8), optim.Momentum(0.7, nesterov=True), optim.RMSProp(0.9, 1e-6),
        optim.Adam(0.8, 0.95, 1e-7)]


@pytest.mark.parametrize("opt", OPTS, ids=lambda o: f"{o.name}{o.options()}")
def test_compiled_update_equals_the_numpy_reference(opt):
    rng = np.random.default_rng(0)
    W_ref = rng.standard_normal((3, 6))
    W = W_ref.copy()
    s_ref = opt.init(W_ref)
    s = opt.init(W)
    for t in range(7):
        g = rng.standard_normal((3, 6))
        W_ref, s_ref = opt.update(W_ref, g, s_ref, 0.05)
        s = optim.apply_update(opt, W, g, s, 0.05)
        np.testing.assert_allclose(W, W_ref, rtol=1e-13, atol=1e-15)
        for a, b in zip(s, s_ref):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_adam_first_step_is_lr_times_the_sign():
    """Hand-worked: after one step Adam's bias-corrected m/sqrt(v) is g/|g| (up to eps)."""
    opt = optim.Adam(eps=1e-12)
    W = np.zeros((1, 3))
    g = np.array([[2.0, -0.5, 1e-3]])
    optim.apply_update(opt, W, g, opt.init(W), 0.1)
    np.testing.assert_allclose(W, [[-0.1, 0.1, -0.1]], rtol=1e-8)


def test_momentum_and_rmsprop_by_hand():
    W = np.zeros((1, 1))
    s = optim.Momentum(0.5).init(W)
    for g in (1.0, 1.0):
        s = optim.apply_update(optim.Momentum(0.5), W, np.array([[g]]), s, 1.0)
    assert W[0, 0] == -(1.0 + 1.5)  # v = 1, then 0.5 * 1 + 1 = 1.5
    W = np.zeros((1, 1))
    s = optim.RMSProp(0.75, eps=0.0 + 1e-300).init(W)
    optim.apply_update(optim.RMSProp(0.75, eps=1e-300), W, np.array([[2.0]]), s, 1.0)
    assert math.isclose(W[0, 0], -2.0 / math.sqrt(0.25 * 4.0))


def test_schedules():
    assert optim.make_schedule("constant").factor(10**9) == 1.0
    inv = optim.make_schedule("inverse-time:100")
    assert inv.factor(0) == 1.0 and inv.factor(100) == 0.5 and inv.factor(300) == 0.25
    cos = optim.CosineRestarts(period=10, floor=0.1)
    assert cos.factor(0) == 1.0 and math.isclose(cos.factor(5), 0.55) and cos.factor(10) == 1.0  # a restart
    grow = optim.CosineRestarts(period=10, mult=2.0)
    # restarts at 0, 10, 30, 70: the factor jumps back to 1 exactly there
    assert [grow.factor(t) for t in (0, 10, 30, 70)] == [1.0] * 4
    assert math.isclose(grow.factor(20), 0.5, abs_tol=1e-12)  # half-way through the 20-step period
    assert all(0.0 <= grow.factor(t) <= 1.0 for t in range(200))


@pytest.mark.parametrize("bad", [dict(value="adamw"), dict(value="adam", beta1=1.0), dict(value="adam", beta2=0.0),
                                 dict(value="momentum", momentum=-0.1), dict(value="rmsprop", eps=float("nan")),
                                 dict(value="adam", lr=0.1), dict(value="sgd:3")])
def test_bad_optimizers_are_refused_naming_the_option(bad):
    with pytest.raises(ValueError) as info:
        optim.make_optimizer(**bad)
    assert any(word in str(info.value) for word in ("adamw", "beta1", "beta2", "momentum", "eps", "lr", "sgd"))


@pytest.mark.parametrize("bad", ["cosine:0", "inverse-time:-1", "hourly"])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError, match="schedule|period|steps"):
        optim.make_schedule(bad)


def _problem(T=120, n=4, m=2, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, m))
    ds = np.full((T, n), np.nan)
    ds[:, 0] = 0.8 * xs[:, 0] - 0.4 * np.roll(xs[:, 1], 1)  # the input now and one step back
    ds[rng.random(T) < 0.2, 0] = np.nan  # some steps without a target
    return xs, ds


def test_sgd_on_the_step_by_step_path_equals_the_fused_loop_bit_for_bit():
    """The optimizer path (rule run with lr = 0, then the update) is the same arithmetic as the fused loop."""
    xs, ds = _problem()
    act = ["linear", "tanh", "tanh", "tanh"]
    fused = rtrl.OnlineLearner(4, 2, learning_rate=0.05, activation=act, rng=1, clip_norm=0.7)
    stepwise = rtrl.OnlineLearner(4, 2, learning_rate=0.05, activation=act, rng=1, clip_norm=0.7,
                                  schedule=optim.InverseTime(1e300))  # factor 1 to rounding, but not fused
    assert fused._fused and not stepwise._fused
    ya = fused.partial_fit(xs, ds)
    yb = stepwise.partial_fit(xs, ds)
    np.testing.assert_allclose(yb, ya, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(stepwise.W, fused.W, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("rule", ["rtrl", rtrl.rules.make("uoro", rng=0), "bptt:4"], ids=str)
@pytest.mark.parametrize("opt", ["momentum", "adam", "rmsprop"])
def test_optimizer_chunked_equals_steps_and_resumes_bit_identically(rule, opt, tmp_path):
    xs, ds = _problem(T=60)
    kw = dict(learning_rate=0.01, activation=["linear"] + ["tanh"] * 3, optimizer=opt, rule=rule, rng=2,
              schedule="cosine:25")
    a = rtrl.OnlineLearner(4, 2, **kw)
    a.partial_fit(xs, ds)
    b = rtrl.OnlineLearner(4, 2, **kw)
    b.partial_fit(xs[:17], ds[:17])
    save(b, tmp_path / "m.npz")
    c = load(tmp_path / "m.npz")
    assert c.optimizer == b.optimizer and c.schedule == b.schedule
    for t in range(17, 60):
        c.step(xs[t], ds[t])
    np.testing.assert_array_equal(c.W, a.W)
    for x, y in zip(c.state.opt_state, a.state.opt_state):
        np.testing.assert_array_equal(x, y)
    assert c.t == a.t == 60


def test_adam_learns_where_the_weights_change_and_masked_weights_stay_zero():
    xs, ds = _problem(T=400)
    wmask = np.ones((4, 7), bool)
    wmask[1, 3] = False
    net = rtrl.OnlineLearner(4, 2, learning_rate=0.01, activation=["linear"] + ["tanh"] * 3, optimizer="adam",
                             rng=3, weight_mask=wmask)
    before = net.W.copy()
    ys = net.partial_fit(xs, ds)
    assert net.W[1, 3] == 0.0 and net.state.opt_state.m[1, 3] == 0.0
    assert not np.allclose(net.W, before)
    err = np.abs(np.nan_to_num(ds[:, 0] - ys[:, 0]))
    assert err[-100:].mean() < 0.5 * err[:100].mean()  # it learned
    assert int(net.state.opt_state.count) == int(np.sum(~np.isnan(ds[:, 0])))  # one update per targeted step


def test_batched_streams_with_an_optimizer_equal_each_stream_alone():
    xs, ds = _problem(T=40)
    rng = np.random.default_rng(5)
    xs2 = np.stack([xs, rng.standard_normal(xs.shape)])
    ds2 = np.stack([ds, np.roll(ds, 3, axis=0)])
    kw = dict(learning_rate=0.02, optimizer="adam", activation="tanh")
    W = np.stack([rtrl.init_weights(4, 2, rng=s) for s in (0, 1)])
    both = rtrl.OnlineLearner(4, 2, W=W, n_streams=2, **kw)
    ys = both.partial_fit(xs2, ds2)
    for b in range(2):
        one = rtrl.OnlineLearner(4, 2, W=W[b], **kw)
        np.testing.assert_array_equal(one.partial_fit(xs2[b], ds2[b]), ys[b])
        np.testing.assert_array_equal(one.W, both.W[b])


def test_optimizer_is_read_only_and_schedule_validated():
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.1, optimizer="adam")
    with pytest.raises(AttributeError, match="optimizer: read-only"):
        net.optimizer = "sgd"
    with pytest.raises(ValueError, match="schedule"):
        net.schedule = "weekly"
    assert net.schedule.name == "constant"
    net.schedule = "inverse-time:10"
    assert net.schedule == optim.InverseTime(10)


def test_a_diverging_optimizer_rolls_back():
    net = rtrl.OnlineLearner(2, 1, learning_rate=1e308, optimizer="momentum", activation="linear", rng=0)
    before = net.state
    with pytest.raises(ValueError, match="diverged"):
        net.partial_fit(np.full((5, 1), 1e300), np.full((5, 2), 1e300))
    assert net.state is before
