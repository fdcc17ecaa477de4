"""`rtrl stream` on raw values: per-unit activations, optimizers, online standardisation, serving (--no-learn,
`rtrl predict`)."""

import csv

import numpy as np
import pytest

import rtrl

from rtrl.cli import main
from rtrl.io import load, load_with_metadata
from rtrl.preprocessing import RunningStandardizer


def _series(path, T=1200, seed=0, offset=500.0, amp=80.0, noise=2.0):
    """A raw sensor-like series far from [-1, 1]: value now -> value next step."""
    rng = np.random.default_rng(seed)
    v = offset + amp * np.sin(np.arange(T + 1) * 0.25) + rng.normal(0, noise, T + 1)
    with open(path, "w") as f:
        f.write("value,next\n")
        for i in range(T):
            f.write(f"{v[i]:.4f},{v[i + 1]:.4f}\n")
    return v


def _preds(path, col="pred_next"):
    with open(path) as f:
        return np.array([float(r[col]) if r[col] else np.nan for r in csv.DictReader(f)])


RAW = ["--inputs", "value", "--targets", "next", "--units", "6", "--activation", "tanh", "--output-activation",
       "linear", "--optimizer", "adam", "--lr", "0.01", "--standardize"]


def test_raw_values_are_learned_and_predicted_in_their_own_units(tmp_path):
    v = _series(tmp_path / "raw.csv")
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--out", str(tmp_path / "p.csv"),
                 "--checkpoint", str(tmp_path / "m.npz")]) == 0
    p = _preds(tmp_path / "p.csv")
    truth, persistence = v[1:], v[:-1]
    mae = np.mean(np.abs(p[-300:] - truth[-300:]))
    assert mae < 0.6 * np.mean(np.abs(persistence[-300:] - truth[-300:]))  # better than "no change"
    assert abs(np.mean(p[-300:]) - 500.0) < 20.0  # in the data's units
    net, meta = load_with_metadata(tmp_path / "m.npz")
    assert net.activation == ("linear",) + ("tanh",) * 5 and net.optimizer.name == "adam"
    stats = meta["extra"]["stream"]["standardize"]
    assert RunningStandardizer.from_dict(stats["targets"]).count.tolist() == [1200]


def test_without_standardize_the_same_data_is_refused_by_squashed_units(tmp_path, capsys):
    _series(tmp_path / "raw.csv", T=20)
    rc = main(["stream", str(tmp_path / "raw.csv"), "--inputs", "value", "--targets", "next", "--activation", "tanh",
               "--out", str(tmp_path / "p.csv")])
    assert rc == 1 and "outside the range [-1, 1] of its tanh unit" in capsys.readouterr().err


def test_resume_with_standardize_and_adam_is_bit_identical(tmp_path):
    _series(tmp_path / "raw.csv", T=400)
    with open(tmp_path / "raw.csv") as f:
        lines = f.readlines()
    (tmp_path / "half.csv").write_text("".join(lines[:151]))
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--out", str(tmp_path / "a.csv"),
                 "--checkpoint", str(tmp_path / "a.npz")]) == 0
    assert main(["stream", str(tmp_path / "half.csv"), *RAW, "--out", str(tmp_path / "b.csv"),
                 "--checkpoint", str(tmp_path / "b.npz")]) == 0
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", str(tmp_path / "b.npz"),
                 "--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    a, b = load(tmp_path / "a.npz"), load(tmp_path / "b.npz")
    np.testing.assert_array_equal(a.W, b.W)
    for x, y in zip(a.state.opt_state, b.state.opt_state):
        np.testing.assert_array_equal(x, y)
    _, ma = load_with_metadata(tmp_path / "a.npz")
    _, mb = load_with_metadata(tmp_path / "b.npz")
    assert ma["extra"]["stream"]["standardize"] == mb["extra"]["stream"]["standardize"]


def test_predict_serves_the_model_at_forward_cost_and_equals_no_learn(tmp_path):
    _series(tmp_path / "raw.csv", T=300)
    _series(tmp_path / "new.csv", T=50, seed=1)
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--checkpoint", str(tmp_path / "m.npz"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["stream", str(tmp_path / "new.csv"), "--model", str(tmp_path / "m.npz"), "--no-learn",
                 "--out", str(tmp_path / "s2.csv")]) == 0
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "s2.csv").read_bytes()
    # the same numbers as the learner's own forward pass on standardised inputs, written back in data units
    net, meta = load_with_metadata(tmp_path / "m.npz")
    st = meta["extra"]["stream"]["standardize"]
    sx = RunningStandardizer.from_dict(st["inputs"])
    sd = RunningStandardizer.from_dict(st["targets"])
    with open(tmp_path / "new.csv") as f:
        x = np.array([[float(r["value"])] for r in csv.DictReader(f)])
    xs = []
    for row in x:
        sx.update(row)
        xs.append(sx.transform(row))
    want = sd.inverse(net.predict(np.array(xs))[:, :1])[:, 0]
    np.testing.assert_allclose(_preds(tmp_path / "s.csv"), want, rtol=1e-12)
    # serving does not change the model file
    again = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.W, net.W)


def test_a_served_checkpoint_keeps_its_weights_and_restarts_sensitivities(tmp_path):
    _series(tmp_path / "raw.csv", T=120)
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--checkpoint", str(tmp_path / "m.npz"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    W, P = load(tmp_path / "m.npz").W, load(tmp_path / "m.npz").P
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", str(tmp_path / "m.npz"),
                 "--no-learn", "--out", str(tmp_path / "q.csv")]) == 0
    same = load(tmp_path / "m.npz")  # no new row (the file input skipped the rows it had): nothing changed
    assert same.t == 120 and np.array_equal(same.P, P) and np.any(P != 0.0)
    _series(tmp_path / "raw.csv", T=150)  # the same series, 30 rows longer
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", str(tmp_path / "m.npz"),
                 "--no-learn", "--out", str(tmp_path / "q.csv")]) == 0
    after = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(after.W, W)
    assert after.t == 150 and np.all(after.P == 0.0)  # served rows: the sensitivities restart


@pytest.mark.parametrize("extra,match", [
    (["--activation", "tanh,relu"], "relu"),
    (["--activation", "tanh,tanh"], "n_units = 5"),
    (["--output-activation", "step"], "--output-activation"),
    (["--optimizer", "adamw"], "adamw"),
    (["--optimizer-option", "beta1=0.5"], "needs --optimizer"),
    (["--optimizer", "adam", "--optimizer-option", "beta1=2"], "beta1"),
    (["--schedule", "cosine:0"], "period"),
    (["--schedule", "yearly"], "yearly"),
    (["--no-learn"], "--no-learn"),
])
def test_bad_settings_are_named(tmp_path, capsys, extra, match):
    _series(tmp_path / "raw.csv", T=5)
    rc = main(["stream", str(tmp_path / "raw.csv"), "--inputs", "value", "--targets", "next", *extra])
    assert rc == 2
    assert match in capsys.readouterr().err


def test_contradicting_a_saved_model_is_refused(tmp_path, capsys):
    _series(tmp_path / "raw.csv", T=30)
    ck = str(tmp_path / "m.npz")
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--checkpoint", ck, "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    for extra, match in ((["--optimizer", "sgd"], "contradicts"), (["--no-standardize"], "standardised"),
                         (["--activation", "logistic"], "contradicts")):
        assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", ck, *extra]) == 2
        assert match in capsys.readouterr().err
    # a schedule may change on resume (no state): it is noted
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", ck, "--schedule", "inverse-time:50",
                 "--out", str(tmp_path / "p")]) == 0
    assert "replaced by --schedule" in capsys.readouterr().err
    assert load(ck).schedule.name == "inverse-time"


def test_a_bad_row_leaves_the_standardisation_alone(tmp_path):
    _series(tmp_path / "raw.csv", T=40)
    lines = (tmp_path / "raw.csv").read_text().splitlines(True)
    lines.insert(20, "1e9,abc\n")  # a good input (huge) and a bad target: the row must change nothing
    (tmp_path / "bad.csv").write_text("".join(lines))
    ck_a, ck_b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--checkpoint", ck_a, "--out", str(tmp_path / "a")]) == 0
    assert main(["stream", str(tmp_path / "bad.csv"), *RAW, "--checkpoint", ck_b, "--on-bad-row", "skip",
                 "--out", str(tmp_path / "b")]) == 0
    _, ma = load_with_metadata(ck_a)
    _, mb = load_with_metadata(ck_b)
    assert ma["extra"]["stream"]["standardize"] == mb["extra"]["stream"]["standardize"]
    np.testing.assert_array_equal(load(ck_a).W, load(ck_b).W)


def test_running_standardizer_matches_numpy_and_rejects_damage():
    rng = np.random.default_rng(0)
    data = rng.normal(1e6, 3.0, (500, 2))
    data[rng.random((500, 2)) < 0.2] = np.nan
    s = RunningStandardizer(2)
    for row in data:
        s.update(row)
    np.testing.assert_allclose(s.mean, np.nanmean(data, axis=0), rtol=1e-14)
    np.testing.assert_allclose(s.scale, np.nanstd(data, axis=0), rtol=1e-9)
    again = RunningStandardizer.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()
    for bad in ({"count": [1], "mean": [0.0, 1.0], "m2": [0.0]}, {"count": [-1], "mean": [0.0], "m2": [0.0]},
                {"mean": [0.0]}, {"count": [1], "mean": [float("nan")], "m2": [0.0]}, "junk"):
        with pytest.raises(ValueError, match="standardizer"):
            RunningStandardizer.from_dict(bad)
    with pytest.raises(ValueError, match="inf"):
        s.update([np.inf, 0.0])


# -- lagged inputs and multi-step forecasts (issue 14's CLI part) ---------------------------------------------
def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_lags_are_the_previous_rows_values_as_input_lines(tmp_path):
    _series(tmp_path / "raw.csv", T=60, offset=0.0, amp=0.8, noise=0.05)
    assert main(["stream", str(tmp_path / "raw.csv"), "--inputs", "value", "--targets", "next", "--units", "3",
                 "--activation", "tanh", "--output-activation", "linear", "--lags", "2", "--seasonal-lags", "5",
                 "--lr", "0.05",
                 "--out", str(tmp_path / "p.csv"), "--checkpoint", str(tmp_path / "m.npz")]) == 0
    v = np.array([float(r["value"]) for r in _rows(tmp_path / "raw.csv")])
    nxt = np.array([float(r["next"]) for r in _rows(tmp_path / "raw.csv")])
    lag = lambda L: np.concatenate([np.zeros(L), v[:-L]])  # noqa: E731  (0 before the stream has L rows)
    xs = np.stack([v, lag(1), lag(2), lag(5)], axis=1)  # current, then each lag
    net = rtrl.OnlineLearner(3, 4, learning_rate=0.05, activation=["linear", "tanh", "tanh"], rng=0)
    ds = np.full((60, 3), np.nan)
    ds[:, 0] = nxt
    np.testing.assert_array_equal(_preds(tmp_path / "p.csv"), net.partial_fit(xs, ds)[:, 0])
    np.testing.assert_array_equal(load(tmp_path / "m.npz").W, net.W)


def test_horizon_forecasts_are_a_free_run_fed_by_the_forecasts(tmp_path):
    _series(tmp_path / "raw.csv", T=80)
    ck = str(tmp_path / "m.npz")
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--lags", "2", "--checkpoint", ck,
                 "--out", str(tmp_path / "p.csv")]) == 0
    _series(tmp_path / "new.csv", T=6, seed=3)
    assert main(["predict", ck, str(tmp_path / "new.csv"), "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["stream", str(tmp_path / "new.csv"), "--model", ck, "--no-learn", "--horizon", "3",
                 "--out", str(tmp_path / "h.csv")]) == 0
    h = _rows(tmp_path / "h.csv")
    assert list(h[0]) == ["row", "pred_next", "pred_next_h2", "pred_next_h3"]
    np.testing.assert_array_equal([float(r["pred_next"]) for r in h], _preds(tmp_path / "s.csv"))
    # by hand, row 1: standardise, lags from the checkpoint's history, then feed each forecast back
    net, meta = load_with_metadata(ck)
    info = meta["extra"]["stream"]
    sx = RunningStandardizer.from_dict(info["standardize"]["inputs"])
    sd = RunningStandardizer.from_dict(info["standardize"]["targets"])
    hist = [r[0] for r in info["history"]]
    v0 = float(_rows(tmp_path / "new.csv")[0]["value"])
    sx.update([v0])
    seq, y = [v0], net.y
    forecasts = []
    for step in range(3):
        cur, lag1, lag2 = seq[-1], (hist + seq)[-2], (hist + seq)[-3]
        x = sx.transform(np.array([cur, lag1, lag2]))
        y = rtrl.forward(net.W, x[None], activation=net.activation, y0=y)[0]
        forecasts.append(sd.inverse(y[:1])[0])
        seq.append(forecasts[-1])
    np.testing.assert_allclose([float(h[0][c]) for c in ("pred_next", "pred_next_h2", "pred_next_h3")],
                               forecasts, rtol=1e-12)


def test_resume_with_lags_and_horizon_is_bit_identical(tmp_path):
    _series(tmp_path / "raw.csv", T=300)
    lines = (tmp_path / "raw.csv").read_text().splitlines(True)
    (tmp_path / "half.csv").write_text("".join(lines[:120]))
    extra = ["--lags", "3", "--seasonal-lags", "12", "--horizon", "4"]
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, *extra, "--out", str(tmp_path / "a.csv"),
                 "--checkpoint", str(tmp_path / "a.npz")]) == 0
    assert main(["stream", str(tmp_path / "half.csv"), *RAW, *extra, "--out", str(tmp_path / "b.csv"),
                 "--checkpoint", str(tmp_path / "b.npz")]) == 0
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", str(tmp_path / "b.npz"),
                 "--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    np.testing.assert_array_equal(load(tmp_path / "a.npz").W, load(tmp_path / "b.npz").W)


@pytest.mark.parametrize("extra,match", [(["--lags", "0"], "--lags"), (["--horizon", "0"], "--horizon"),
                                         (["--horizon", "100000000"], "horizon: expected an integer from 1"),
                                         (["--lags", "1000000000"], "--lags"),
                                         (["--seasonal-lags", "12,x"], "--seasonal-lags"),
                                         (["--feedback", "next"], "--feedback"),
                                         (["--horizon", "2", "--feedback", "next=other"], "feedback")])
def test_bad_forecasting_settings_are_named(tmp_path, capsys, extra, match):
    _series(tmp_path / "raw.csv", T=5)
    assert main(["stream", str(tmp_path / "raw.csv"), "--inputs", "value", "--targets", "next", *extra]) == 2
    assert match in capsys.readouterr().err


def test_lags_that_contradict_the_checkpoint_are_refused(tmp_path, capsys):
    _series(tmp_path / "raw.csv", T=20)
    ck = str(tmp_path / "m.npz")
    assert main(["stream", str(tmp_path / "raw.csv"), *RAW, "--lags", "2", "--checkpoint", ck,
                 "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["stream", str(tmp_path / "raw.csv"), "--resume", "--checkpoint", ck, "--lags", "3"]) == 2
    assert "contradict" in capsys.readouterr().err
