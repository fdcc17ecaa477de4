"""Bad input raises ValueError/TypeError naming the argument, the expectation and what arrived."""

import numpy as np
import pytest

import rtrl

W = rtrl.init_weights(3, 2, rng=0)
XS = np.zeros((5, 2))
DS = np.full((5, 3), 0.5)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(W=np.zeros((3, 5))), ValueError, r"W: expected shape .*\(3, 6\).*got \(3, 5\)"),
    (dict(W=np.zeros(6)), ValueError, r"W: expected a 2-D array"),
    (dict(W=np.full((3, 6), np.nan)), ValueError, r"W: contains NaN"),
    (dict(W="abc"), TypeError, r"W: expected an array of numbers"),
    (dict(xs=np.zeros(5)), ValueError, r"xs: expected a 2-D array of shape \(T, n_inputs\), got shape \(5,\)"),
    (dict(xs=np.array([[0, 0]] * 4 + [[np.nan, 0]])), ValueError, r"xs: contains a non-finite value at step 4"),
    (dict(targets=np.zeros((5, 2))), ValueError, r"targets: expected shape \(T, n_units\) = \(5, 3\), got \(5, 2\)"),
    (dict(targets=np.full((5, 3), np.inf)), ValueError, r"targets: contains inf"),
    (dict(mask=np.ones((5, 2), bool)), ValueError, r"mask: expected shape \(T, n_units\) = \(5, 3\)"),
    (dict(mask=np.full((5, 3), 2)), ValueError, r"mask: expected booleans"),
    (dict(targets=np.full((5, 3), np.nan), mask=np.ones((5, 3), bool)), ValueError, r"targets: NaN at step 0, unit 0"),
    (dict(y0=np.zeros(2)), ValueError, r"y0: expected shape \(n_units,\) = \(3,\), got \(2,\)"),
    (dict(activation="relu"), ValueError, r"activation: expected one of \('logistic', 'tanh', 'linear'\), got 'relu'"),
    (dict(method="adjoint"), ValueError, r"method: expected one of .*got 'adjoint'"),
    (dict(engine="cuda"), ValueError, r"engine: expected one of \('numba', 'numpy', 'jax'\), got 'cuda'"),
])
def test_gradient_rejects_bad_input(kwargs, exc, pattern):
    args = dict(W=W, xs=XS, targets=DS)
    args.update({k: v for k, v in kwargs.items() if k in args})
    rest = {k: v for k, v in kwargs.items() if k not in args}
    with pytest.raises(exc, match=pattern):
        rtrl.gradient(args["W"], args["xs"], args["targets"], **rest)


@pytest.mark.parametrize("lr, exc, pattern", [
    (-0.1, ValueError, r"learning_rate: expected a finite number >= 0, got -0.1"),
    (float("nan"), ValueError, r"learning_rate: expected a finite number"),
    ("fast", TypeError, r"learning_rate: expected a real number, got str"),
])
def test_train_online_rejects_bad_learning_rate(lr, exc, pattern):
    with pytest.raises(exc, match=pattern):
        rtrl.train_online(W, XS, DS, learning_rate=lr)


def test_train_online_rejects_bad_clip_norm():
    with pytest.raises(ValueError, match=r"clip_norm: expected a finite number > 0, got 0.0"):
        rtrl.train_online(W, XS, DS, learning_rate=0.1, clip_norm=0.0)


def test_truncated_bptt_rejects_bad_windows():
    with pytest.raises(ValueError, match=r"truncation: expected an integer >= 1, got 0"):
        rtrl.train_online_bptt(W, XS, DS, learning_rate=0.1, truncation=0)
    with pytest.raises(ValueError, match=r"update_every: expected <= truncation \(2\), got 3"):
        rtrl.train_online_bptt(W, XS, DS, learning_rate=0.1, truncation=2, update_every=3)


def test_learner_rejects_bad_steps_and_keeps_its_state():
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    net.step([0.1, 0.2], [0.5, np.nan, np.nan])
    before = (net.W.copy(), net.y.copy(), net.P.copy(), net.t)
    for args, pattern in (
        (([0.1], None), r"x: expected shape \(n_inputs,\) = \(2,\), got \(1,\)"),
        (([np.nan, 0.0], None), r"x: contains NaN"),
        (([0.0, 0.0], [0.5, 0.5]), r"target: expected shape \(n_units,\) = \(3,\), got \(2,\)"),
        (([0.0, 0.0], [np.inf, 0.5, 0.5]), r"target: contains inf"),
    ):
        with pytest.raises(ValueError, match=pattern):
            net.step(*args)
    with pytest.raises(ValueError, match=r"xs: contains a non-finite value"):
        net.partial_fit([[0.0, np.nan]], [[0.5, 0.5, 0.5]])
    after = (net.W, net.y, net.P, net.t)
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_array_equal(a, b)
    assert before[3] == after[3]


def test_learner_rejects_mismatched_weights():
    with pytest.raises(ValueError, match=r"W: expected shape .* = \(3, 6\), got \(3, 5\)"):
        rtrl.OnlineLearner(3, 2, learning_rate=0.1, W=np.zeros((3, 5)))


def test_rng_validation():
    with pytest.raises(TypeError, match=r"rng: expected None, an int seed or a numpy.random.Generator, got str"):
        rtrl.init_weights(2, 1, rng="seed")
    with pytest.raises(ValueError, match=r"n_units: expected an integer >= 1, got 0"):
        rtrl.init_weights(0, 1)


def test_teacher_forcing_needs_targets():
    state = rtrl.init_state(W)
    with pytest.raises(ValueError, match=r"teacher_forcing: needs targets"):
        rtrl.run(state, XS, None, teacher_forcing=True)


def test_cli_stops_quietly_when_its_reader_goes_away():
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m rtrl tasks | head -1", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
