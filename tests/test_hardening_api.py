"""The Python API at its edges (issue 13): complex numbers, absurd sizes, non-finite gradients."""

import warnings

import numpy as np
import pytest

import rtrl
from rtrl._validation import check_memory, physical_memory

W = rtrl.init_weights(3, 2, rng=0)
XS = np.zeros((4, 2))
DS = np.full((4, 3), 0.5)


def _c(a):
    return np.asarray(a) + 0j


@pytest.mark.parametrize("name, call", [
    ("W", lambda: rtrl.gradient(_c(W), XS, DS)),
    ("xs", lambda: rtrl.gradient(W, _c(XS), DS)),
    ("targets", lambda: rtrl.gradient(W, XS, _c(DS))),
    ("mask", lambda: rtrl.gradient(W, XS, DS, mask=_c(np.ones((4, 3))))),
    ("y0", lambda: rtrl.gradient(W, XS, DS, y0=_c(np.zeros(3)))),
    ("xs", lambda: rtrl.train_online(W, [[1j, 0]] * 4, DS, learning_rate=0.1)),
    ("targets", lambda: rtrl.loss(W, XS, _c(DS))),
    ("xs", lambda: rtrl.forward(W, _c(XS))),
    ("W", lambda: rtrl.init_state(_c(W))),
    ("xs", lambda: rtrl.run(rtrl.init_state(W), _c(XS), DS)),
    ("W", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1, W=_c(W))),
    ("y0", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1, y0=[0, 0, 1j])),
    ("y0", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2, y0=_c(np.zeros((2, 3))))),
    ("x", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1).step([1j, 0.0])),
    ("target", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1).step([1, 0], [0.5, 0.5, 0.5j])),
    ("mask", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1).step([1, 0], [0.5] * 3, [1, 1, 1j])),
    ("xs", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1).partial_fit(_c(XS))),
    ("targets", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1).partial_fit(XS, _c(DS))),
    ("x", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2).step(_c(np.zeros((2, 2))))),
    ("targets", lambda: rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2).step(np.zeros((2, 2)),
                                                                                      _c(np.zeros((2, 3))))),
    ("state.W", lambda: rtrl.OnlineLearner.from_state(rtrl.RTRLState(_c(W), np.zeros(3), np.zeros((3, 3, 6)), 0),
                                                      learning_rate=0.1)),
    ("grad", lambda: rtrl.check_gradient(lambda V: 0.0, _c(W), W)),
])
def test_complex_numbers_are_a_type_error_naming_the_argument(name, call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's ComplexWarning must not even be reached
        with pytest.raises(TypeError, match=rf"^(stream 0: )?{name}: expected real numbers, got a complex"):
            call()


@pytest.mark.parametrize("value, what", [(["0.5", "0.1"], "text"), ([None, 0.5], "NoneType items"),
                                         ([object(), 1.0], "object items")])
def test_text_and_objects_are_not_numbers(value, what):
    with pytest.raises(TypeError, match=f"x: expected an array of numbers, got {what}"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1).step(value)


def test_mask_values_other_than_0_and_1_are_refused_by_step():
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    with pytest.raises(ValueError, match="mask: expected booleans"):
        net.step([0, 0], [0.5] * 3, [2, 0, 0])
    assert net.t == 0


@pytest.mark.parametrize("kw, name", [
    (dict(n_units=3, n_inputs=2, n_streams=10**12), "n_streams"),
    (dict(n_units=10**6, n_inputs=2), "n_units"),
    (dict(n_units=3, n_inputs=10**12), "n_inputs"),
    (dict(n_units=4000, n_inputs=2), "n_units"),  # W is small, the sensitivities P (n^2 K) are not
    (dict(n_units=300, n_inputs=2, n_streams=10**5), "n_streams"),
    (dict(n_units=64, n_inputs=2, rule="hybrid:1000000000000"), "n_units"),
])
def test_absurd_sizes_are_refused_at_once_with_the_memory_needed(kw, name):
    kw = dict(kw)
    n, m = kw.pop("n_units"), kw.pop("n_inputs")
    with pytest.raises(ValueError, match=rf"^{name}: .*would need [0-9.]+ [KMGTPE]iB of memory, more than"):
        rtrl.OnlineLearner(n, m, learning_rate=0.1, **kw)


def test_sizes_in_init_weights_and_a_huge_scale():
    with pytest.raises(ValueError, match=r"^n_units: a weight matrix .* would need .*iB of memory"):
        rtrl.init_weights(10**6, 3)
    with pytest.raises(ValueError, match=r"^scale: expected at most 8.98847e\+307 .* got 1e\+308"):
        rtrl.init_weights(3, 2, scale=1e308)
    W = rtrl.init_weights(3, 2, scale=8e307, rng=0)
    assert np.all(np.isfinite(W)) and np.abs(W).max() > 1e307
    with pytest.raises(ValueError, match="weight_scale|scale"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1, weight_scale=1e308)


def test_memory_check_itself():
    limit = physical_memory()
    assert limit is None or limit > 2**20
    check_memory(1024, "n", "a small thing", "nothing to fix")
    if limit is not None:
        with pytest.raises(ValueError, match=r"^n: a big thing would need .* more than .*; make it smaller$"):
            check_memory(limit + 1, "n", "a big thing", "make it smaller")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_gradient_fails_on_a_non_finite_gradient(bad):
    xs, ds = np.zeros((3, 2)), np.full((3, 3), 0.5)
    G = rtrl.gradient(W, xs, ds)
    wrong = G.copy()
    wrong[1, 2] = bad
    with pytest.raises(rtrl.GradientCheckError, match=r"analytic gradient holds .* at index \(1, 2\)"):
        rtrl.check_gradient(lambda V: rtrl.loss(V, xs, ds), wrong, W)


def test_check_gradient_fails_on_a_non_finite_loss_and_checks_its_arguments():
    G = np.zeros_like(W)
    with pytest.raises(rtrl.GradientCheckError, match="the loss is NaN or inf"):
        rtrl.check_gradient(lambda V: float("nan"), G, W)
    with pytest.raises(ValueError, match="W: contains NaN"):
        rtrl.check_gradient(lambda V: 0.0, G, W * np.nan)
    for kw, match in ((dict(n_directions=0), "n_directions"), (dict(eps=0.0), "eps"), (dict(rtol=-1.0), "rtol"),
                      (dict(atol=float("nan")), "atol")):
        with pytest.raises(ValueError, match=match):
            rtrl.check_gradient(lambda V: 0.0, G, W, **kw)


def test_learner_divergence_raises_and_keeps_the_state_before_the_call():
    """A huge learning rate on an unscaled input: NaN/inf is never returned silently."""
    W0 = np.zeros((2, 5))
    net = rtrl.OnlineLearner(2, 2, learning_rate=1e300, W=W0)
    with pytest.raises(ValueError, match=r"^learning_rate: training diverged by step 1 .*try 1e\+299"):
        net.step([1e10, 0.5], [0.9, np.nan])
    assert net.t == 0 and np.all(net.W == 0)
    with pytest.raises(ValueError, match="training diverged by step 3"):
        net.partial_fit(np.full((3, 2), 1e10), np.full((3, 2), 0.9))
    assert net.t == 0 and np.all(net.W == 0) and np.all(net.P == 0)
    net.learning_rate = 0.1  # the documented way on: a lower learning rate
    net.step([1.0, 0.5], [0.9, np.nan])
    assert net.t == 1 and np.all(np.isfinite(net.W))


@pytest.mark.parametrize("rule", ["uoro", "hybrid"])  # (exact RTRL's fast step has no norm to divide by)
def test_learner_arithmetic_error_in_a_rule_is_divergence(monkeypatch, rule):
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.1, rng=0, rule=rule)

    def divide(self, *args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(type(net.rule), "run_compiled", divide)
    monkeypatch.setattr(type(net.rule), "run", divide)
    for call in (lambda: net.step([0.5], [0.5, np.nan]), lambda: net.partial_fit(np.zeros((3, 1)))):
        with pytest.raises(ValueError, match="training diverged"):
            call()
    assert net.t == 0


def test_an_allocation_that_fails_names_the_argument(monkeypatch):
    """Below the machine's memory but above what is free now: still a message, not a bare MemoryError."""
    import rtrl.learner

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(rtrl.learner, "init_rule_states", no_memory)
    with pytest.raises(MemoryError, match=r"^n_units: the state of rule 'rtrl' for n_units=3, n_inputs=2 does not"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1)
    monkeypatch.setattr(rtrl.learner, "init_weights", no_memory)
    with pytest.raises(MemoryError, match=r"^n_units: the weights of n_units=3, n_inputs=2, n_streams=2 do not"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1, n_streams=2)


def test_the_functional_api_never_returns_non_finite_results_silently():
    import numpy as np
    import pytest

    import rtrl

    W = rtrl.init_weights(3, 1, rng=0)
    xs = np.ones((5, 1))
    huge = np.full((5, 3), 1e300)
    with pytest.raises(rtrl.NonFiniteResultError, match="loss: the result is not finite"):
        rtrl.loss(W, xs, huge)
    W0 = W.copy()
    W0[:, 0] = 0.0  # the input does not saturate the units, so dy/dw_input ~ f' x stays large
    big_x = np.full((5, 1), 1e200)
    with pytest.raises(FloatingPointError, match="gradient: the result is not finite"):
        rtrl.gradient(W0, big_x, np.full((5, 3), 1e300))  # e * dy/dw ~ 1e300 * 1e200 overflows
    with pytest.raises(FloatingPointError, match="train_online"):
        rtrl.train_online(W0, big_x, np.full((5, 3), 0.5), learning_rate=1e300)
    with pytest.raises(TypeError, match="y0: expected real numbers"):
        rtrl.init_state(W, y0=np.ones(3) * (1 + 1j))
    with pytest.raises(TypeError, match="W: expected real numbers"):
        rtrl.init_state(np.stack([W, W]).astype(complex))
