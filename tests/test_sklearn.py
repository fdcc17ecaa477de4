"""rtrl.sklearn: the scikit-learn estimators (fit / partial_fit / predict / score, pipelines, DataFrames, checks)."""

import doctest
import importlib
import pickle
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import TimeSeriesSplit, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import rtrl  # noqa: E402
import rtrl.sklearn  # noqa: E402
from rtrl.sklearn import RTRLClassifier, RTRLRegressor  # noqa: E402

# The estimator checks that do not apply to a model of one time-ordered sequence (also listed, with the
# same reasons, in docs/sklearn.md). They must fail (strict xfail): if one starts passing, the list is stale.
SEQUENCE_XFAIL = {
    "check_methods_subset_invariance": (
        "a sequence model: the prediction for a row depends on the rows before it (the network's state), "
        "so predicting a subset of the rows gives other values than predicting all of them"),
    "check_methods_sample_order_invariance": (
        "a sequence model: the rows are time steps, so predicting them in another order gives other values"),
}


def _expected_failed(estimator):
    return dict(SEQUENCE_XFAIL)


@parametrize_with_checks([RTRLRegressor(n_hidden=3), RTRLClassifier(n_hidden=3)],
                         expected_failed_checks=_expected_failed, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _sine(T=401, scale=2.0, offset=3.0):
    s = offset + scale * np.sin(0.2 * np.arange(T))
    return s[:-1, None], s[1:]  # forecast the next value


def _memory_task(T=600, n_classes=2, seed=0):
    x = np.random.default_rng(seed).integers(0, n_classes, T)
    return x[:, None].astype(float), np.r_[0, x[:-1]]  # the label is the previous input


# -- the interface ------------------------------------------------------------------------------------
def test_shapes_of_fit_partial_fit_predict_score():
    X, y = _sine(101)
    rng = np.random.default_rng(1)
    X2 = np.hstack([X, rng.normal(size=(100, 2))])
    m = RTRLRegressor(n_hidden=3, random_state=0)
    assert m.fit(X2, y) is m
    assert m.predict(X2).shape == (100,) and isinstance(m.score(X2, y), float)
    assert m.n_features_in_ == 3 and m.n_outputs_ == 1 and m.learner_.n_units == 4
    assert m.learner_.n_inputs == 3 and len(m.loss_curve_) == 1
    assert m.predict(X2[:7]).shape == (7,)
    Y = np.column_stack([y, -y, 2 * y])
    m.fit(X2, Y)
    assert m.predict(X2).shape == (100, 3) and m.n_outputs_ == 3 and m.learner_.n_units == 6
    m.fit(X2, y[:, None])
    assert m.predict(X2).shape == (100, 1)  # a column y gives a column back
    p = RTRLRegressor(n_hidden=2, random_state=0)
    assert p.partial_fit(X2[:50], y[:50]) is p and p.partial_fit(X2[50:], y[50:]) is p
    assert p.predict(X2).shape == (100,) and len(p.loss_curve_) == 2 and p.learner_.t == 100
    assert np.isfinite(p.score(X2, y))
    assert p.predict(X2[:1]).shape == (1,)


def test_partial_fit_in_chunks_equals_fit_bit_for_bit():
    X, y = _sine(241)
    X = np.hstack([X, np.cos(np.arange(240))[:, None]])
    whole = RTRLRegressor(n_hidden=3, random_state=7).fit(X, y)
    chunked = RTRLRegressor(n_hidden=3, random_state=7)
    for a, b in [(0, 1), (1, 50), (50, 173), (173, 240)]:
        chunked.partial_fit(X[a:b], y[a:b])
    assert np.array_equal(whole.learner_.W, chunked.learner_.W)
    assert np.array_equal(whole.learner_.y, chunked.learner_.y)
    assert np.array_equal(whole.predict(X[:30]), chunked.predict(X[:30]))
    Xc, yc = _memory_task(300, n_classes=3)
    whole = RTRLClassifier(n_hidden=3, random_state=2).fit(Xc, yc)
    chunked = RTRLClassifier(n_hidden=3, random_state=2)
    for a, b in [(0, 100), (100, 300)]:
        chunked.partial_fit(Xc[a:b], yc[a:b], classes=[0, 1, 2])
    assert np.array_equal(whole.learner_.W, chunked.learner_.W)
    assert np.array_equal(whole.predict_proba(Xc), chunked.predict_proba(Xc))


def test_epochs_restart_the_state_and_warm_start_continues():
    X, y = _sine(121)
    two = RTRLRegressor(n_hidden=2, n_epochs=2, random_state=3).fit(X, y)
    # by hand: one learner, two passes over the sequence, the state reset in between
    net = RTRLRegressor(n_hidden=2, random_state=3).fit(X, y).learner_
    net.reset_state()
    D = np.full((120, 3), np.nan)
    D[:, 0] = y
    net.partial_fit(X, D)
    assert np.array_equal(two.learner_.W, net.W) and len(two.loss_curve_) == 2
    warm = RTRLRegressor(n_hidden=2, random_state=3, warm_start=True).fit(X, y).fit(X, y)
    assert np.array_equal(warm.learner_.W, two.learner_.W) and warm.loss_curve_ == two.loss_curve_
    cold = RTRLRegressor(n_hidden=2, random_state=3).fit(X, y).fit(X, y)  # no warm start: a new network
    assert np.array_equal(cold.learner_.W, RTRLRegressor(n_hidden=2, random_state=3).fit(X, y).learner_.W)
    with pytest.raises(ValueError, match="n_hidden: changed"):
        warm.set_params(n_hidden=5).fit(X, y)


def test_predict_continues_from_the_end_and_changes_nothing():
    X, y = _sine(201)
    m = RTRLRegressor(n_hidden=3, random_state=0).fit(X[:150], y[:150])
    W, t, state_y = m.learner_.W.copy(), m.learner_.t, m.learner_.y.copy()
    first = m.predict(X[150:])
    assert np.array_equal(first, m.predict(X[150:]))  # a what-if: nothing moved
    assert np.array_equal(m.learner_.W, W) and m.learner_.t == t and np.array_equal(m.learner_.y, state_y)
    assert np.array_equal(first, m.learner_.predict(X[150:])[:, 0])
    fitted = m.predict(X[:150], from_start=True)  # from the initial state, with the final weights
    assert np.array_equal(fitted, rtrl.forward(W, X[:150], activation=m.learner_.activation, y0=np.zeros(4))[:, 0])
    assert not np.array_equal(fitted[:5], m.predict(X[:5]))


def test_set_params_between_partial_fit_calls_takes_effect():
    X, y = _sine(101)
    m = RTRLRegressor(n_hidden=2, random_state=0).partial_fit(X[:50], y[:50])
    W = m.learner_.W.copy()
    m.set_params(learning_rate=0.0).partial_fit(X[50:], y[50:])
    assert m.learner_.learning_rate == 0.0 and np.array_equal(m.learner_.W, W)
    with pytest.raises(ValueError, match="rule: changed"):
        m.set_params(rule="uoro").partial_fit(X, y)


def test_clone_get_set_params_and_pickle():
    m = RTRLRegressor(n_hidden=5, learning_rate=3e-3, optimizer="rmsprop", n_epochs=3, clip_norm=1.0,
                      random_state=4)
    params = m.get_params()
    assert params["n_hidden"] == 5 and params["optimizer"] == "rmsprop" and params["clip_norm"] == 1.0
    c = clone(m)
    assert c is not m and c.get_params() == params
    assert RTRLRegressor().set_params(**params).get_params() == params
    X, y = _sine(61)
    m.fit(X, y)
    c = clone(m)
    assert not hasattr(c, "learner_") and c.get_params() == params
    assert np.array_equal(c.fit(X, y).predict(X), m.predict(X))  # same random_state: the same result
    back = pickle.loads(pickle.dumps(m))
    assert np.array_equal(back.predict(X), m.predict(X))
    assert repr(m).startswith("RTRLRegressor(") and "n_hidden=5" in repr(m)
    assert clone(RTRLClassifier(n_hidden=2, random_state=1)).get_params()["n_hidden"] == 2


def test_random_state_forms():
    X, y = _sine(41)
    a = RTRLRegressor(n_hidden=2, random_state=np.random.RandomState(0)).fit(X, y)
    b = RTRLRegressor(n_hidden=2, random_state=np.random.default_rng(0)).fit(X, y)
    assert np.all(np.isfinite(a.learner_.W)) and np.all(np.isfinite(b.learner_.W))
    with pytest.raises(ValueError, match="random_state"):
        RTRLRegressor(random_state=-1).fit(X, y)


@pytest.mark.parametrize("settings", [dict(rule="uoro"), dict(optimizer="sgd", learning_rate=0.05),
                                      dict(teacher_forcing=True), dict(output_activation="tanh", n_hidden=0),
                                      dict(schedule="inverse-time", clip_norm=0.5)], ids=str)
def test_other_settings_fit_and_predict(settings):
    X, y = _sine(81, scale=0.5, offset=0.0)
    m = RTRLRegressor(random_state=0, **settings).fit(X, y)
    assert np.all(np.isfinite(m.predict(X))) and m.learner_.t == 80
    assert m.learner_.config()["rule"]["name"] == settings.get("rule", "rtrl")


def test_time_series_cross_validation():
    X, y = _sine(241)
    scores = cross_val_score(make_pipeline(StandardScaler(), RTRLRegressor(n_hidden=3, random_state=0)), X, y,
                             cv=TimeSeriesSplit(n_splits=3))  # each test fold follows its training rows
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_without_scikit_learn_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.base", None)  # as if scikit-learn were not installed
    monkeypatch.delitem(sys.modules, "rtrl.sklearn")
    with pytest.raises(ImportError, match=r"pip install 'rtrl\[sklearn\]'"):
        importlib.import_module("rtrl.sklearn")


# -- it learns (and a broken learner would not pass) ---------------------------------------------------
def _pipeline_sine_score(learning_rate):
    X, y = _sine(401)
    model = make_pipeline(StandardScaler(), RTRLRegressor(n_hidden=4, learning_rate=learning_rate, random_state=0))
    model.fit(X[:300], y[:300])  # learn from the past ...
    return model.score(X[300:], y[300:])  # ... predict what follows (R^2)


def test_pipeline_with_a_scaler_learns_the_next_value_of_a_sine():
    assert _pipeline_sine_score(1e-2) > 0.8


def test_the_learning_bound_fails_a_learner_that_does_not_learn():
    assert _pipeline_sine_score(0.0) < 0.8


def test_classifier_learns_a_task_that_needs_memory():
    X, y = _memory_task(700, n_classes=3)
    c = RTRLClassifier(n_hidden=4, random_state=0).fit(X[:600], y[:600])
    assert c.score(X[600:], y[600:]) > 0.9
    proba = c.predict_proba(X[600:])
    assert proba.shape == (100, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(c.classes_[proba.argmax(axis=1)], c.predict(X[600:]))
    broken = RTRLClassifier(n_hidden=4, learning_rate=0.0, random_state=0).fit(X[:600], y[:600])
    assert broken.score(X[600:], y[600:]) < 0.9
    Xb, yb = _memory_task(400, n_classes=2)
    labels = np.array(["off", "on"])[yb]
    b = RTRLClassifier(n_hidden=3, random_state=0).fit(Xb[:300], labels[:300])
    assert b.n_outputs_ == 1 and list(b.classes_) == ["off", "on"] and b.predict(Xb[300:]).dtype == labels.dtype
    assert b.score(Xb[300:], labels[300:]) > 0.9 and b.predict_proba(Xb[300:]).shape == (100, 2)


# -- DataFrames ---------------------------------------------------------------------------------------
def test_dataframes_in_named_columns_out():
    pd = pytest.importorskip("pandas")
    X, y = _sine(161)
    index = pd.date_range("2000-01-01", periods=160, freq="D")
    Xf = pd.DataFrame({"level": X[:, 0], "trend": np.linspace(0, 1, 160)}, index=index)
    Yf = pd.DataFrame({"next": y, "neg_next": -y}, index=index)
    m = RTRLRegressor(n_hidden=3, random_state=0).fit(Xf[:120], Yf[:120])
    assert list(m.feature_names_in_) == ["level", "trend"]
    pred = m.predict(Xf[120:])
    assert isinstance(pred, pd.DataFrame) and list(pred.columns) == ["next", "neg_next"]
    assert pred.index.equals(index[120:])
    with pytest.warns(UserWarning, match="feature names"):  # (scikit-learn's warning: X without names)
        assert np.array_equal(pred.to_numpy(), m.predict(Xf[120:].to_numpy()))
    assert np.isfinite(m.score(Xf[120:], Yf[120:]))
    s = RTRLRegressor(n_hidden=3, random_state=0).fit(Xf[:120], Yf["next"][:120]).predict(Xf[120:])
    assert isinstance(s, pd.Series) and s.name == "next" and s.index.equals(index[120:])
    # numpy X with a named y: named columns on a plain range index
    r = RTRLRegressor(n_hidden=2, random_state=0).fit(X[:120], Yf[:120]).predict(X[120:])
    assert list(r.columns) == ["next", "neg_next"] and list(r.index) == list(range(40))
    # in a pipeline whose scaler keeps DataFrames, the index and the names flow through
    pipe = make_pipeline(StandardScaler(), RTRLRegressor(n_hidden=2, random_state=0)).set_output(transform="pandas")
    out = pipe.fit(Xf[:120], Yf[:120]).predict(Xf[120:])
    assert list(out.columns) == ["next", "neg_next"] and out.index.equals(index[120:])
    assert list(pipe[-1].feature_names_in_) == ["level", "trend"]
    # partial_fit keeps the names too; other column names at predict time are refused
    p = RTRLRegressor(n_hidden=2, random_state=0).partial_fit(Xf[:60], Yf[:60]).partial_fit(Xf[60:120], Yf[60:120])
    assert list(p.predict(Xf[120:]).columns) == ["next", "neg_next"]
    with pytest.raises(ValueError, match="feature names"):
        p.predict(Xf[120:].rename(columns={"trend": "other"}))
    # the classifier: a named Series of labels gives a named Series back
    Xc, yc = _memory_task(200)
    labels = pd.Series(np.array(["a", "b"])[yc], name="label", index=pd.RangeIndex(1000, 1200))
    Xcf = pd.DataFrame({"x": Xc[:, 0]}, index=labels.index)
    c = RTRLClassifier(n_hidden=2, random_state=0).fit(Xcf[:150], labels[:150])
    got = c.predict(Xcf[150:])
    assert isinstance(got, pd.Series) and got.name == "label" and got.index.equals(labels.index[150:])


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    X, y = _sine(51)
    m = RTRLRegressor(n_hidden=2, random_state=0)
    with pytest.raises(NotFittedError):
        m.predict(X)
    Xn = X.copy()
    Xn[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.fit(Xn, y)
    yi = y.copy()
    yi[5] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        m.fit(X, yi)
    yn = y.copy()
    yn[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.partial_fit(X, yn)
    with pytest.raises(ValueError, match="2D array"):
        m.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        m.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        m.fit(X[:0], y[:0])
    m.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(np.hstack([X, X]))
    with pytest.raises(ValueError, match="NaN"):
        m.predict(Xn)
    with pytest.raises(ValueError, match="features"):
        m.partial_fit(np.hstack([X, X]), y)
    with pytest.raises(ValueError, match="output"):
        m.partial_fit(X, np.column_stack([y, y]))
    for bad, match in [(dict(n_hidden=-1), "n_hidden"), (dict(n_hidden=2.5), "n_hidden"),
                       (dict(n_epochs=0), "n_epochs"), (dict(activation="relu"), "activation"),
                       (dict(output_activation="softmax"), "output_activation"), (dict(warm_start="yes"), "warm_start"),
                       (dict(learning_rate=-1.0), "learning_rate"), (dict(optimizer="nope"), "optimizer"),
                       (dict(rule="nope"), "rule")]:
        with pytest.raises((ValueError, TypeError), match=match):
            RTRLRegressor(**bad).fit(X, y)
    with pytest.raises(ValueError, match="diverged"):
        RTRLRegressor(optimizer="sgd", learning_rate=50.0, random_state=0).fit(100 * X, 100 * y)


def test_classifier_bad_input():
    X, y = _memory_task(60)
    c = RTRLClassifier(n_hidden=2, random_state=0)
    with pytest.raises(NotFittedError):
        c.predict_proba(X)
    with pytest.raises(ValueError, match="classes"):
        c.partial_fit(X, y)
    with pytest.raises(ValueError, match="class"):
        c.fit(X, np.ones(60))
    with pytest.raises(ValueError, match="Unknown label type"):
        c.fit(X, np.linspace(0, 1, 60))
    c.partial_fit(X[:30], y[:30], classes=[0, 1])
    with pytest.raises(ValueError, match="not in classes_"):
        c.partial_fit(X[30:], np.full(30, 2))
    with pytest.raises(ValueError, match="classes: expected"):
        c.partial_fit(X[30:], y[30:], classes=[0, 1, 2])


def test_docstring_examples():
    result = doctest.testmod(rtrl.sklearn, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
