"""rtrl.river: the River estimators (call-order rule, pipelines, evaluation, lags as an online AR model,
free-run forecasts, River's estimator checks, bad input)."""

import copy
import datetime
import doctest
import math
import pickle

import numpy as np
import pytest

pytest.importorskip("river")

from river import checks, compose, datasets, evaluate, metrics, preprocessing  # noqa: E402
from river.time_series.base import Forecaster  # noqa: E402

import rtrl  # noqa: E402
import rtrl.river  # noqa: E402
from rtrl.optim import Adam  # noqa: E402
from rtrl.preprocessing import RunningStandardizer  # noqa: E402
from rtrl.river import SKIPPED_CHECKS, RTRLForecaster, RTRLRegressor  # noqa: E402


def _stream(T=60, seed=0):
    """A small regression stream: x = {"a", "b"}, y depends on the previous sample's a (memory needed)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(T)
    b = rng.standard_normal(T)
    y = 0.8 * np.r_[0.0, a[:-1]] + 0.1 * b + 3.0
    return [({"a": float(a[t]), "b": float(b[t])}, float(y[t])) for t in range(T)]


def _series(T=200, seed=0):
    """An AR(2) series around 5 with noise."""
    rng = np.random.default_rng(seed)
    y = np.zeros(T)
    for t in range(2, T):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + 0.5 * rng.standard_normal()
    return (y + 5.0).tolist()


def _state(model) -> bytes:
    """Everything the model holds (a rejected call must leave it identical)."""
    return pickle.dumps(model)


# ------------------------------------------------------------------------------ River's own checks
@pytest.mark.parametrize("cls", [RTRLRegressor, RTRLForecaster])
def test_river_check_estimator(cls):
    for params in cls._unit_test_params():
        checks.check_estimator(cls(**params))


@pytest.mark.parametrize("cls", [RTRLRegressor, RTRLForecaster])
def test_skipped_checks_are_the_feature_checks_and_they_do_fail(cls):
    """The checks skipped through ``_unit_test_skips`` (docs/river.md) fail for the stated reason: a sample
    with other features is refused. If River stops yielding one, or it starts passing, the list is stale."""
    model = cls()
    assert model._unit_test_skips() == set(SKIPPED_CHECKS)
    regressor = RTRLRegressor(seed=0)
    yielded = {getattr(c, "__name__", "") for c in checks.yield_checks(regressor)}
    assert SKIPPED_CHECKS <= yielded
    for check in checks.yield_checks(regressor):
        if check.__name__ in SKIPPED_CHECKS:
            with pytest.raises(ValueError, match=r"features (missing|unexpected)"):
                check(regressor.clone())


# ------------------------------------------------------------------------------------ the regressor
def _reference(stream, *, seed, n_hidden=2, predict_only=()):
    """What RTRLRegressor(standardize=False) must compute, written directly on an OnlineLearner:
    one step per sample, the prediction being the step's output (before it learns)."""
    net = rtrl.OnlineLearner(1 + n_hidden, 2, learning_rate=0.01, optimizer="adam",
                             activation=["linear"] + ["tanh"] * n_hidden, rng=seed)
    preds = []
    for t, (x, y) in enumerate(stream):
        target = None if t in predict_only else np.r_[y, np.full(n_hidden, np.nan)]
        preds.append(float(net.step([x["a"], x["b"]], target)[0]))
    return preds, net


def test_regressor_predictions_are_the_network_steps():
    stream = _stream()
    ref, net = _reference(stream, seed=3)
    model = RTRLRegressor(n_hidden=2, standardize=False, seed=3)
    got = []
    for x, y in stream:
        got.append(model.predict_one(x))
        model.learn_one(x, y)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.learner.W, net.W, rtol=1e-12, atol=1e-12)
    assert model.n_steps == len(stream) and model.feature_names == ("a", "b")


def test_call_order_rule_state_advances_once_per_sample():
    stream = _stream()
    both = RTRLRegressor(seed=1)
    learn_only = RTRLRegressor(seed=1)
    for x, y in stream:
        p = both.predict_one(x)
        assert both.predict_one(dict(reversed(list(x.items())))) == p  # the same sample again: cached
        assert both.n_steps == learn_only.n_steps  # predict_one did not advance
        both.learn_one(x, y)
        learn_only.learn_one(x, y)
        assert both.n_steps == learn_only.n_steps
    np.testing.assert_array_equal(both.learner.W, learn_only.learner.W)  # predict + learn == learn alone
    np.testing.assert_array_equal(both.learner.y, learn_only.learner.y)
    assert both.n_steps == len(stream)


def test_predict_one_changes_no_learned_state():
    model = RTRLRegressor(seed=0)
    for x, y in _stream()[:20]:
        model.learn_one(x, y)
    W, y_state, t = model.learner.W, model.learner.y, model.n_steps
    x = {"a": 0.3, "b": -1.0}
    p = model.predict_one(x)
    assert model.predict_one(x) == p
    np.testing.assert_array_equal(model.learner.W, W)
    np.testing.assert_array_equal(model.learner.y, y_state)
    assert model.n_steps == t


def test_predict_only_samples_advance_once_without_learning():
    stream = _stream(40)
    predict_only = set(range(10, 20))
    ref, net = _reference(stream, seed=5, predict_only=predict_only)
    model = RTRLRegressor(n_hidden=2, standardize=False, seed=5)
    got = []
    for t, (x, y) in enumerate(stream):
        got.append(model.predict_one(x))
        if t not in predict_only:
            model.learn_one(x, y)
    model.predict_one({"a": 9.0, "b": 9.0})  # consumes the last open sample (none here: it was learned)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.learner.W, net.W, rtol=1e-12, atol=1e-12)
    assert model.n_steps == len(stream)


def test_regressor_in_a_pipeline_with_progressive_validation():
    data = list(datasets.TrumpApproval().take(300))
    model = compose.Pipeline(preprocessing.StandardScaler(), RTRLRegressor(seed=0))
    metric = evaluate.progressive_val_score(data, model, metrics.MAE())
    assert model["RTRLRegressor"].n_steps == len(data)  # once per sample, though the scaler moved in between
    assert 0 < metric.get() < 5.0  # the approval is ~ 40-45: it has learned something
    fresh = model.clone()
    assert fresh["RTRLRegressor"].learner is None and fresh["RTRLRegressor"].seed == 0
    again = compose.Pipeline(preprocessing.StandardScaler(), RTRLRegressor(seed=0))
    assert evaluate.progressive_val_score(data, again, metrics.MAE()).get() == metric.get()  # seeded: reproducible


def test_regressor_learns_what_needs_memory():
    stream = _stream(3000, seed=1)
    model = RTRLRegressor(seed=0)
    errors = []
    for x, y in stream:
        errors.append(abs(model.predict_one(x) - y))
        model.learn_one(x, y)
    # y depends on the previous sample's "a" (std 0.8): only the recurrent state can know it
    assert np.mean(errors[-500:]) < 0.3


def test_regressor_pickle_and_clone():
    model = RTRLRegressor(seed=2)
    stream = _stream()
    for x, y in stream[:30]:
        model.learn_one(x, y)
    copy_ = pickle.loads(pickle.dumps(model))
    for x, y in stream[30:]:
        assert copy_.predict_one(x) == model.predict_one(x)
        model.learn_one(x, y)
        copy_.learn_one(x, y)
    clone = model.clone()
    assert clone.learner is None and clone._get_params() == model._get_params()


# --------------------------------------------------------------------------- the regressor: bad input
@pytest.mark.parametrize("x, error, match", [
    ({"a": 1.0, "b": float("nan")}, ValueError, r"x\['b'\]: got nan"),
    ({"a": float("inf"), "b": 0.0}, ValueError, r"x\['a'\]: got inf"),
    ({"a": "1.0", "b": 0.0}, TypeError, r"x\['a'\]: expected a real number, got str"),
    ({"a": None, "b": 0.0}, TypeError, r"x\['a'\]: expected a real number, got NoneType"),
    ({"a": datetime.datetime(2020, 1, 1), "b": 0.0}, TypeError, r"x\['a'\].*datetime"),
    ({"a": 1.0}, ValueError, r"x: features missing \['b'\]"),
    ({"a": 1.0, "b": 2.0, "c": 3.0}, ValueError, r"x: features unexpected \['c'\]"),
    ({"a": 1.0, "c": 3.0}, ValueError, r"missing \['b'\] and unexpected \['c'\]"),
    ([1.0, 2.0], TypeError, r"x: expected a dict"),
])
def test_regressor_rejects_bad_samples_and_changes_nothing(x, error, match):
    model = RTRLRegressor(seed=0)
    for x0, y0 in _stream()[:10]:
        model.learn_one(x0, y0)
    model.predict_one({"a": 0.5, "b": 0.5})  # an open sample: must survive the rejected calls too
    before = _state(model)
    with pytest.raises(error, match=match):
        model.learn_one(x, 1.0)
    with pytest.raises(error, match=match):
        model.predict_one(x)
    assert _state(model) == before


@pytest.mark.parametrize("y, error", [(float("nan"), ValueError), (float("-inf"), ValueError), ("3", TypeError),
                                      (None, TypeError)])
def test_regressor_rejects_bad_targets(y, error):
    model = RTRLRegressor(seed=0)
    model.learn_one({"a": 1.0, "b": 2.0}, 1.0)
    before = _state(model)
    with pytest.raises(error, match=r"^y: "):
        model.learn_one({"a": 1.0, "b": 2.0}, y)
    assert _state(model) == before


def test_bad_first_sample_fixes_no_features():
    model = RTRLRegressor()
    with pytest.raises(TypeError):
        model.learn_one({"a": 1.0, "b": "x"}, 1.0)
    with pytest.raises(ValueError):
        model.learn_one({"a": 1.0, "b": 2.0}, float("nan"))
    assert model.feature_names is None and model.learner is None
    model.learn_one({"c": 1.0}, 1.0)
    assert model.feature_names == ("c",)


@pytest.mark.parametrize("make, learn", [
    (lambda: RTRLRegressor(learning_rate=1e300, seed=0), lambda m, t: m.learn_one({"a": float(t % 5)}, float(t % 7))),
    (lambda: RTRLForecaster(learning_rate=1e300, seed=0), lambda m, t: m.learn_one(float(t % 7), {"a": float(t % 5)})),
])
def test_a_diverging_step_changes_nothing(make, learn):
    model = make()
    for t in range(50):
        before = _state(model)
        try:
            learn(model, t)
        except ValueError as exc:
            assert "learning_rate: training diverged" in str(exc)
            break
    else:
        pytest.fail("never diverged")
    assert _state(model) == before


@pytest.mark.parametrize("kwargs, match", [
    ({"n_hidden": -1}, "n_hidden"), ({"n_hidden": 1.5}, "n_hidden"), ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"), ({"optimizer": "adamw"}, "optimizer"),
    ({"schedule": "linear"}, "schedule"), ({"rule": "nope"}, "rule"), ({"activation": "relu"}, "activation"),
    ({"standardize": 1}, "standardize"), ({"clip_norm": 0}, "clip_norm"), ({"seed": -3}, "seed"),
    ({"weight_scale": -1.0}, "weight_scale"),
])
def test_bad_settings_are_named(kwargs, match):
    for cls in (RTRLRegressor, RTRLForecaster):
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)


# ----------------------------------------------------------------------------------- the forecaster
@pytest.mark.parametrize("difference", [False, True])
def test_forecaster_without_recurrence_is_online_linear_regression_on_the_lags(difference):
    """One linear unit, recurrent weights fixed at 0: step by step, the forecaster is an online linear
    regression on the same lags (y(t-1), y(t-2), y(t-5); or their changes), with Adam's NumPy reference."""
    ys = _series(150)
    lag_list = [1, 2, 5]
    f = RTRLForecaster(lags=2, seasonal_lags=(5,), difference=difference, n_hidden=0, recurrent=False,
                       standardize=False, exogenous=False, learning_rate=0.02, seed=4)
    f.learn_one(ys[0])
    W0 = f.learner.W
    assert f.input_names == [("dy" if difference else "y") + f"(t-{k})" for k in lag_list]
    assert f.learner.weight_mask[0, -1] == False  # noqa: E712 (the recurrent weight is off)
    w = W0[0, :len(lag_list) + 1].copy()  # the lag weights and the bias
    opt = Adam()
    state = opt.init(w[None, :])
    series = np.diff(ys) if difference else np.asarray(ys)
    offset = 1 if difference else 0  # series[i] is the modelled value at time i + offset
    steps = 0
    for t in range(1, len(ys)):
        i = t - offset  # index of the value to learn in `series`
        u = np.array([series[i - k] if i - k >= 0 else 0.0 for k in lag_list] + [1.0])
        pred = float(w @ u)
        want = ys[t - 1] + pred if difference else pred
        if f.n_steps:  # (before its first step the forecaster forecasts persistence)
            assert f.forecast(1)[0] == pytest.approx(want, rel=1e-10, abs=1e-10), t
        g = -(series[i] - pred) * u
        new, state = opt.update(w[None, :], g[None, :], state, 0.02)
        w = new[0]
        f.learn_one(ys[t])
        steps += 1
    np.testing.assert_allclose(f.learner.W[0, :len(lag_list) + 1], w, rtol=1e-10, atol=1e-12)
    assert f.learner.W[0, -1] == 0.0 and f.n_steps == steps


def test_forecast_is_a_free_run_of_the_network_and_changes_nothing():
    """forecast(h) against the learner's own free run (OnlineLearner.generate, its forward kernel), with
    standardisation, changes, a seasonal lag and exogenous features."""
    ys = _series(80)
    rng = np.random.default_rng(1)
    feats = [{"u": float(v), "w": float(2 * v + 1)} for v in rng.standard_normal(len(ys) + 5)]
    f = RTRLForecaster(lags=3, seasonal_lags=(7,), seed=0)
    for y, x in zip(ys, feats):
        f.learn_one(y, x)
    xs = feats[len(ys):]
    before = _state(f)
    got = f.forecast(5, xs=xs)
    assert f.forecast(5, xs=xs) == got and _state(f) == before
    # the reference: the modelled series (changes) standardised with the forecaster's statistics
    ch = np.diff(ys)
    mean, scale = ch.mean(), ch.std()
    xm = np.array([[x["u"], x["w"]] for x in feats[:len(ys)]])
    xr = (np.array([[x["u"], x["w"]] for x in xs]) - xm.mean(0)) / xm.std(0)
    hist = list((ch - mean) / scale)  # in the network's coordinates
    step = 0

    def feed(y):  # the input row of each step: the lags of the (fed back) series and the features
        nonlocal step
        if step:
            hist.append(float(y[0]))
        row = np.r_[[hist[-k] for k in (1, 2, 3, 7)], xr[step]]
        step += 1
        return row

    free = f.learner.generate(5, feedback=feed)
    outs = np.r_[hist[len(ch):], free[-1, 0]]
    want = ys[-1] + np.cumsum(outs * scale + mean)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_forecaster_learns_an_ar_series():
    ys = _series(1500, seed=2)
    f = RTRLForecaster(lags=3, difference=False, exogenous=False, seed=0)  # a stationary series: levels
    err, persist = [], []
    for t, y in enumerate(ys):
        if t > 1000:
            err.append(abs(f.forecast(1)[0] - y))
            persist.append(abs(ys[t - 1] - y))
        f.learn_one(y)
    assert np.mean(err) < 0.87 * np.mean(persist)  # the best linear predictor: ~ 0.80


def test_forecaster_with_river_evaluate_at_horizons():
    model = RTRLForecaster(exogenous=False, seed=0)
    result = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=4)
    maes = result.get()
    assert len(maes) == 4 and all(0 < m < 100 for m in maes)
    assert model.n_steps == 144 - 4 - 1  # learned every value the evaluation handed it but the first
    # with exogenous (numeric) features: xs comes from the data set's future x
    data = [({"k": float(t % 12)}, y) for t, (_, y) in enumerate(datasets.AirlinePassengers())]
    with_x = RTRLForecaster(seed=0)
    evaluate.evaluate(data, with_x, metrics.MAE(), horizon=3)
    assert with_x.feature_names == ("k",) and with_x.input_names[-1] == "x['k']"


def test_forecaster_before_learning_and_pickle():
    f = RTRLForecaster(exogenous=False)
    assert f.forecast(3) == [0.0, 0.0, 0.0]
    f.learn_one(7.0)
    assert f.forecast(2) == [7.0, 7.0] and f.n_steps == 0  # one value: no step yet, persistence
    for y in _series(50):
        f.learn_one(y)
    g = pickle.loads(pickle.dumps(f))
    assert g.forecast(6) == f.forecast(6)
    g.learn_one(5.5)
    f.learn_one(5.5)
    assert g.forecast(6) == f.forecast(6)
    assert isinstance(f, Forecaster) and f.clone().learner is None


def test_stats_follow_the_running_standardizer():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((50, 3)) * [1.0, 10.0, 0.0] + [0.0, 5.0, 2.0]
    ref = RunningStandardizer(3)
    st = rtrl.river._Stats.empty(3)
    for r in rows:
        ref.update(r)
        st = st.add(r)
        np.testing.assert_allclose(st.mean, ref.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st.scale, ref.scale, rtol=1e-12)
        assert st.first() == pytest.approx((ref.mean[0], ref.scale[0]), rel=1e-12)


# ---------------------------------------------------------------------------- the forecaster: bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"lags": 0}, r"lags: expected an integer >= 1, got 0"), ({"lags": -2}, "lags"), ({"lags": 2.0}, "lags"),
    ({"lags": True}, "lags"), ({"seasonal_lags": (0,)}, "seasonal_lags"), ({"seasonal_lags": 12}, "seasonal_lags"),
    ({"seasonal_lags": ("12",)}, "seasonal_lags"), ({"difference": "yes"}, "difference"),
    ({"recurrent": None}, "recurrent"), ({"exogenous": 0}, "exogenous"),
])
def test_forecaster_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RTRLForecaster(**kwargs)


def _trained(exogenous=True):
    f = RTRLForecaster(lags=3, seed=0, exogenous=exogenous)
    for t, y in enumerate(_series(30)):
        f.learn_one(y, {"a": float(t)} if exogenous else None)
    return f


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True, None, "3"])
def test_bad_horizon(horizon):
    f = _trained(exogenous=False)
    before = _state(f)
    with pytest.raises(ValueError, match=r"^horizon: expected an integer >= 1"):
        f.forecast(horizon)
    assert _state(f) == before


@pytest.mark.parametrize("y, error", [(float("nan"), ValueError), (math.inf, ValueError), ("4", TypeError),
                                      (None, TypeError), ([1.0], TypeError)])
def test_forecaster_rejects_bad_values_and_changes_nothing(y, error):
    f = _trained()
    before = _state(f)
    with pytest.raises(error, match=r"^y: "):
        f.learn_one(y, {"a": 1.0})
    assert _state(f) == before


@pytest.mark.parametrize("x, error, match", [
    ({"a": float("nan")}, ValueError, r"x\['a'\]: got nan"),
    ({"a": "1"}, TypeError, r"x\['a'\]: expected a real number"),
    ({"b": 1.0}, ValueError, r"missing \['a'\] and unexpected \['b'\]"),
    (None, ValueError, r"missing \['a'\]"),
])
def test_forecaster_rejects_bad_features_and_changes_nothing(x, error, match):
    f = _trained()
    before = _state(f)
    with pytest.raises(error, match=match):
        f.learn_one(1.0, x)
    assert _state(f) == before


@pytest.mark.parametrize("xs, error, match", [
    (None, ValueError, r"xs: this forecaster reads the exogenous features \['a'\]"),
    ([{"a": 1.0}], ValueError, r"xs: expected 2 dicts"),
    ([{"a": 1.0}, {"a": float("inf")}], ValueError, r"xs\[1\]\['a'\]: got inf"),
    ([{"a": 1.0}, {}], ValueError, r"xs\[1\]: features missing \['a'\]"),
    ([{"a": 1.0}, 3], TypeError, r"xs\[1\]: expected a dict"),
    (5, TypeError, r"xs: expected a list"),
])
def test_bad_future_features(xs, error, match):
    f = _trained()
    before = _state(f)
    with pytest.raises(error, match=match):
        f.forecast(2, xs=xs)
    assert _state(f) == before


def test_univariate_forecaster_ignores_dates_and_xs():
    f = RTRLForecaster(exogenous=False, seed=0)
    for x, y in datasets.AirlinePassengers().take(30):
        f.learn_one(y, x)  # x holds a date: ignored
    assert f.feature_names == () and len(f.forecast(2, xs=[{"month": 1}, None])) == 2
    with pytest.raises(TypeError, match=r"x\['month'\]: expected a real number, got datetime"):
        RTRLForecaster().learn_one(112.0, {"month": datetime.datetime(1949, 1, 1)})


def test_docstring_examples():
    result = doctest.testmod(rtrl.river, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_deepcopy_is_independent():
    f = _trained(exogenous=False)
    g = copy.deepcopy(f)
    g.learn_one(100.0)
    assert g.n_steps == f.n_steps + 1 and g.forecast(3) != f.forecast(3)
