"""Per-unit activations in the learner, prediction without learning, free-run generation and the fast step."""

import numpy as np
import pytest

import rtrl
from rtrl.io import load, save


def _data(T=50, m=2, n=5, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, m))
    ds = np.full((T, n), np.nan)
    ds[:, 0] = 2.5 * xs[:, 0]  # a real-valued target outside (-1, 1): a linear unit's job
    ds[rng.random(T) < 0.3, 0] = np.nan
    return xs, ds


ACT = ["linear", "tanh", "tanh", "logistic", "tanh"]


def test_per_unit_activations_in_the_learner_and_its_model_file(tmp_path):
    xs, ds = _data()
    net = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=ACT, rng=0)
    assert net.activation == tuple(ACT)
    net.partial_fit(xs, ds)
    save(net, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back.activation == tuple(ACT)
    np.testing.assert_array_equal(back.predict(xs), net.predict(xs))
    same = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=["tanh"] * 5, rng=0)
    assert same.activation == "tanh"  # one name for all: stored as one name


@pytest.mark.parametrize("bad,exc,match", [(["tanh"] * 4, ValueError, "n_units = 5"),
                                           (["tanh"] * 4 + ["relu"], ValueError, r"activation\[4\]"),
                                           ([], ValueError, "empty"), (3, TypeError, "activation"),
                                           ("softmax", ValueError, "logistic")])
def test_bad_activations_are_refused_and_nothing_changes(bad, exc, match):
    net = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=ACT, rng=0)
    with pytest.raises(exc, match=match):
        rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=bad)
    with pytest.raises(exc, match=match):
        net.activation = bad
    assert net.activation == tuple(ACT)


def test_linear_units_reach_real_valued_targets_that_squashed_units_cannot():
    xs, ds = _data(T=1500)
    lin = rtrl.OnlineLearner(5, 2, learning_rate=0.02, activation=ACT, rng=1)
    sq = rtrl.OnlineLearner(5, 2, learning_rate=0.02, activation="tanh", rng=1)
    e_lin = np.nanmean(np.abs(lin.partial_fit(xs, ds)[-300:, 0] - ds[-300:, 0]))
    e_sq = np.nanmean(np.abs(sq.partial_fit(xs, ds)[-300:, 0] - ds[-300:, 0]))
    assert e_lin < 0.3 * e_sq, (e_lin, e_sq)


def test_predict_is_the_forward_pass_and_changes_nothing():
    xs, ds = _data()
    net = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=ACT, rng=0)
    net.partial_fit(xs[:20], ds[:20])
    state = net.state
    ys = net.predict(xs[20:])
    assert net.state is state
    # the same outputs as the API's forward pass from the same outputs, and as learning with lr = 0
    np.testing.assert_allclose(ys, rtrl.forward(net.W, xs[20:], activation=ACT, y0=net.y), rtol=1e-13, atol=1e-15)
    frozen = rtrl.OnlineLearner.from_state(net.state, learning_rate=0.0, activation=ACT)
    np.testing.assert_allclose(frozen.partial_fit(xs[20:]), ys, rtol=1e-13, atol=1e-15)


def test_forward_moves_the_outputs_on_and_learning_restarts_its_sensitivities(tmp_path):
    xs, ds = _data()
    net = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=ACT, rng=0)
    net.partial_fit(xs[:20], ds[:20])
    W = net.W.copy()
    ys = net.forward(xs[20:30])
    assert net.t == 30 and np.array_equal(net.W, W) and np.array_equal(net.y, ys[-1])
    # learning resumes as a fresh stream would from this output and these weights
    fresh = rtrl.OnlineLearner(5, 2, learning_rate=0.05, activation=ACT, W=W, y0=ys[-1])
    save(net, tmp_path / "m.npz")  # a save in between materialises the restarted state
    back = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.P, 0.0)
    a = net.partial_fit(xs[30:], ds[30:])
    np.testing.assert_array_equal(a, fresh.partial_fit(xs[30:], ds[30:]))
    np.testing.assert_array_equal(net.W, fresh.W)
    np.testing.assert_array_equal(back.partial_fit(xs[30:], ds[30:]), a)


def test_generate_feeds_outputs_back_and_leaves_the_learner_alone():
    n, m = 3, 2
    W = np.random.default_rng(4).uniform(-0.8, 0.8, (n, m + 1 + n))
    net = rtrl.OnlineLearner(n, m, learning_rate=0.1, W=W, activation=["linear", "tanh", "tanh"])
    net.partial_fit(np.ones((5, m)))
    state = net.state
    exo = np.random.default_rng(5).standard_normal((12, m))
    ys = net.generate(12, feedback={1: 0}, xs=exo)
    assert net.state is state
    # by hand: input line 1 reads unit 0's previous output, line 0 the given inputs
    y = net.y.copy()
    for t in range(12):
        x = np.array([exo[t, 0], y[0]])
        y = rtrl.forward(W, x[None], activation=["linear", "tanh", "tanh"], y0=y)[0]
        np.testing.assert_allclose(ys[t], y, rtol=1e-13, atol=1e-15)
    # a callable gives the same run
    ys2 = net.generate(12, feedback=lambda y_, it=iter(exo[:, 0]): np.array([next(it), y_[0]]))
    np.testing.assert_allclose(ys2, ys, rtol=1e-13, atol=1e-15)
    # without feedback it is predict() on the inputs
    np.testing.assert_array_equal(net.generate(12, xs=exo), net.predict(exo))


@pytest.mark.parametrize("kw,match", [(dict(steps=-1), "steps"), (dict(steps=10**15), "steps: the outputs"), (dict(steps=3, feedback={2: 0}), "input line"),
                                      (dict(steps=3, feedback={0: 7}), "unit"), (dict(steps=3, feedback=5), "feedback"),
                                      (dict(steps=3, xs=np.zeros((2, 2))), "xs"),
                                      (dict(steps=2, feedback=lambda y: np.zeros(3)), "feedback"),
                                      (dict(steps=2, feedback=lambda y: np.array([np.nan, 0.0])), "feedback"),
                                      (dict(steps=2, feedback=lambda y: y[:2], xs=np.zeros((2, 2))), "xs")])
def test_generate_refuses_bad_arguments(kw, match):
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    with pytest.raises((ValueError, TypeError), match=match):
        net.generate(**kw)


def test_predict_refuses_bad_inputs():
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    with pytest.raises(ValueError, match="xs"):
        net.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        net.predict(np.array([[0.0, np.nan]]))


@pytest.mark.parametrize("n,m,tf,clip,masked,kernel,opt,sched", [
    (8, 2, False, None, False, "auto", "sgd", "constant"),
    (5, 3, True, 0.3, True, "auto", "sgd", "constant"),
    (3, 0, False, None, False, "loops", "sgd", "constant"),
    (4, 1, True, None, False, "blas", "sgd", "constant"),
    (8, 2, False, 0.2, True, "auto", "adam", "cosine:30"),
    (5, 3, True, 0.5, False, "loops", "momentum", "constant"),
    (4, 2, False, 0.5, False, "auto", rtrl.optim.Momentum(0.5, nesterov=True), "inverse-time:7"),
    (6, 1, True, None, True, "blas", "rmsprop", "constant")])
def test_the_fast_step_equals_the_compiled_loop_bit_for_bit(n, m, tf, clip, masked, kernel, opt, sched):
    """The fast step against partial_fit (the fused loop for SGD, the rule plus the optimizer for the others)."""
    rng = np.random.default_rng(n)
    T = 80
    xs = rng.standard_normal((T, m))
    ds = rng.uniform(-0.9, 0.9, (T, n))
    ds[rng.random((T, n)) < 0.5] = np.nan
    wmask = (rng.random((n, m + 1 + n)) < 0.7) if masked else None
    act = [("linear", "tanh", "logistic")[k % 3] for k in range(n)]
    kw = dict(learning_rate=0.05, rng=1, teacher_forcing=tf, clip_norm=clip, weight_mask=wmask, activation=act,
              rule=rtrl.rules.make("rtrl", kernel=kernel), optimizer=opt, schedule=sched)
    a = rtrl.OnlineLearner(n, m, **kw)
    b = rtrl.OnlineLearner(n, m, **kw)
    assert a._fast
    ya = np.array([a.step(xs[t], ds[t]) for t in range(T)])
    np.testing.assert_array_equal(ya, b.partial_fit(xs, ds))
    for got, want in ((a.W, b.W), (a.y, b.y), (a.P, b.P)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(a.state.opt_state, b.state.opt_state):
        np.testing.assert_array_equal(got, want)
        assert np.asarray(got).dtype == np.asarray(want).dtype
    assert a.t == b.t == T


def test_the_fast_step_hands_out_snapshots_and_rolls_back_on_bad_rows():
    net = rtrl.OnlineLearner(3, 1, learning_rate=0.5, rng=0)
    history = []
    for t in range(5):
        net.step([0.1 * t], [0.5, np.nan, np.nan])
        history.append((net.W, net.state))
    assert not np.array_equal(history[0][0], history[-1][0])  # each W read is its own snapshot
    assert history[0][1].W is not history[1][1].W and history[0][1].t == 1
    before = net.state
    for bad in (dict(x=[np.nan]), dict(x=[0.0], target=[np.inf, 0, 0]), dict(x=[0.0], target=[np.nan] * 3, mask=[1, 0, 0])):
        with pytest.raises(ValueError):
            net.step(**bad)
    assert net.t == 5
    after = net.state
    np.testing.assert_array_equal(after.W, before.W)
    np.testing.assert_array_equal(after.P, before.P)


def test_the_fast_step_diverging_keeps_the_state():
    net = rtrl.OnlineLearner(2, 1, learning_rate=1e308, activation="linear", rng=0)
    net.step([1.0], [1.0, np.nan])
    before = net.state
    with pytest.raises(ValueError, match="diverged"):
        for _ in range(50):
            net.step([1e300], [1e300, np.nan])
    assert np.all(np.isfinite(net.W)) and np.all(np.isfinite(net.P))
    assert net.t >= before.t


def test_settings_changed_between_fast_steps_take_effect():
    xs, ds = _data(T=30, n=3)
    a = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    b = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    for t in range(30):
        if t == 10:
            a.learning_rate = b.learning_rate = 0.4
            a.teacher_forcing = b.teacher_forcing = True
        if t == 20:
            a.clip_norm = b.clip_norm = 0.05
        a.step(xs[t], np.clip(ds[t], -0.9, 0.9))
        b.partial_fit(xs[t:t + 1], np.clip(ds[t:t + 1], -0.9, 0.9))
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.P, b.P)


def test_pickle_and_deepcopy_after_fast_steps_continue_exactly():
    import copy
    import pickle

    net = rtrl.OnlineLearner(3, 2, learning_rate=0.01, optimizer="adam", activation="tanh", rng=0)
    x, d = np.array([0.5, -1.0]), np.array([0.3, np.nan, np.nan])
    for _ in range(5):
        net.step(x, d)
    copies = [pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    want = [net.step(x, d) for _ in range(3)]
    for c in copies:
        np.testing.assert_array_equal([c.step(x, d) for _ in range(3)], want)
        np.testing.assert_array_equal(c.W, net.W)
