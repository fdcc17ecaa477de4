"""The streaming loop (rtrl.stream) and the `rtrl stream` command, run in this process."""

import io

import numpy as np
import pytest

import rtrl
from rtrl.cli import main
from rtrl.io import load, load_with_metadata
from rtrl.stream import BadRowError, DivergedError, Stream, StreamError, parse_columns, read_lines


def _series(rng, T=120, holes=0.3):
    """A CSV text with columns t, a, b (inputs) and d (target, some cells empty); also the arrays."""
    xs = rng.standard_normal((T, 2))
    d = 0.5 + 0.4 * np.tanh(np.roll(xs[:, 0], 1) - xs[:, 1])
    d[rng.random(T) < holes] = np.nan
    lines = ["t,a,d,b"]
    for t in range(T):
        cell = "" if np.isnan(d[t]) and t % 2 else ("NaN" if np.isnan(d[t]) else repr(float(d[t])))
        lines.append(f"{t},{float(xs[t, 0])!r},{cell},{float(xs[t, 1])!r}")
    return "\n".join(lines) + "\n", xs, d


def _net(n=4, m=2, **kw):
    kw.setdefault("learning_rate", 0.5)
    return rtrl.OnlineLearner(n, m, rng=7, **kw)


def _preds(out_bytes):
    rows = out_bytes.decode().splitlines()
    assert rows[0] == "row,pred_d"
    return np.array([[float(c) if c else np.nan for c in r.split(",")] for r in rows[1:]])


def _run(text, net, **kw):
    """Run the stream on ``text`` as the command line does: bytes, read line by line (a lone surrogate
    such as "\\udcff" in ``text`` stands for the raw byte 0xff)."""
    out = io.BytesIO()
    s = Stream(net, ("a", "b"), ("d",), **kw)
    result = s.run(read_lines(io.BytesIO(text.encode("utf-8", "surrogateescape"))), out)
    return result, out.getvalue()


@pytest.mark.parametrize("kw", [dict(), dict(teacher_forcing=True), dict(activation="tanh", clip_norm=0.1)])
def test_stream_equals_train_online(rng, kw):
    text, xs, d = _series(rng)
    net = _net(**kw)
    W0 = net.W.copy()
    result, out = _run(text, net)
    targets = np.full((len(xs), 4), np.nan)
    targets[:, 0] = d
    W_ref, ys_ref = rtrl.train_online(W0, xs, targets, learning_rate=0.5, **kw)
    preds = _preds(out)
    np.testing.assert_array_equal(preds[:, 0], np.arange(1, len(xs) + 1))
    np.testing.assert_array_equal(preds[:, 1], ys_ref[:, 0])  # repr() round-trips every bit
    np.testing.assert_array_equal(net.W, W_ref)
    assert (result.rows_read, result.bad_rows, result.stopped) == (len(xs), 0, None)


def test_blank_lines_ignored_and_header_whitespace_and_bom(rng):
    text, xs, d = _series(rng, T=20)
    lines = text.splitlines()
    lines[0] = "\ufeff" + " t , a , d , b "
    spaced = "\n".join(lines[:5] + ["", ""] + lines[5:]) + "\n"
    net_a, net_b = _net(), _net()
    _, out_a = _run(text, net_a)
    _, out_b = _run(spaced.encode().decode("utf-8-sig"), net_b)
    assert out_a == out_b


def test_text_lines_and_byte_lines_give_the_same_run(rng):
    """Stream.run takes str lines (Python callers) or bytes lines (the command line) alike."""
    text, _, _ = _series(rng, T=30)
    net_a, net_b = _net(), _net()
    out_a, out_b = io.BytesIO(), io.BytesIO()
    Stream(net_a, ("a", "b"), ("d",)).run(io.StringIO(text), out_a)
    Stream(net_b, ("a", "b"), ("d",)).run(read_lines(io.BytesIO(text.encode())), out_b)
    assert out_a.getvalue() == out_b.getvalue()
    np.testing.assert_array_equal(net_a.W, net_b.W)


def test_column_and_header_errors(rng):
    text, _, _ = _series(rng, T=5)
    with pytest.raises(StreamError, match=r"column 'zz' is not in the CSV header"):
        Stream(_net(), ("a", "zz"), ("d",)).run(io.StringIO(text), io.BytesIO())
    with pytest.raises(StreamError, match="more than once"):
        Stream(_net(), ("a", "b"), ("d",)).run(io.StringIO("a,b,d,d\n1,2,3,4\n"), io.BytesIO())
    with pytest.raises(StreamError, match="empty"):
        Stream(_net(), ("a", "b"), ("d",)).run(io.StringIO(""), io.BytesIO())
    with pytest.raises(ValueError, match="input lines"):
        Stream(_net(), ("a",), ("d",))
    with pytest.raises(ValueError, match="targets"):
        Stream(_net(n=1), ("a", "b"), ("d", "t"))
    with pytest.raises(ValueError, match="every"):
        Stream(_net(), ("a", "b"), ("d",), every=5)
    with pytest.raises(ValueError, match="on_bad_row"):
        Stream(_net(), ("a", "b"), ("d",), on_bad_row="ignore")
    assert parse_columns(" a, b ", "--inputs") == ("a", "b")
    for bad in ("", "a,,b", "a,a"):
        with pytest.raises(ValueError, match="--inputs"):
            parse_columns(bad, "--inputs")


# (replacement for data line 3, expected column (None: the whole row), message fragment)
BAD_ROWS = [
    ("2,0.5,0.3", None, "expected 4 fields as in the header, got 3"),
    ("2,0.5,0.3,0.1,9", None, "expected 4 fields as in the header, got 5"),
    ("2,abc,0.3,0.1", "a", "input is not a number: 'abc'"),
    ("2,,0.3,0.1", "a", "input is not a number: ''"),
    ("2,0.5,0.3,nan", "b", "input is 'nan'; inputs must be finite"),
    ("2,0.5,0.3,-inf", "b", "input is '-inf'"),
    ("2,0.5,x7,0.1", "d", "target is not a number: 'x7'"),
    ("2,0.5,inf,0.1", "d", "target is 'inf'"),
    ('2,"0.5,0.3,0.1', None, "unclosed quote"),  # one bad line: a record never spans lines
    ("2,0.5,0.3,0.1\udcff", None, "not UTF-8 text: byte 0xff"),  # the raw byte 0xff (see _run)
    ("2,０.５,0.3,0.1", "a", "input is not a number: '０.５'"),  # full-width digits
    ("2,٠.٥,0.3,0.1", "a", "input is not a number"),  # Arabic-Indic digits
    ("2,0.5_5,0.3,0.1", "a", "input is not a number: '0.5_5'"),  # float() would read 0.55
    ("2,0.5,0x1,0.1", "d", "target is not a number: '0x1'"),
    ("2,0.5,1.5,0.1", "d", "outside the range [0, 1]"),
]


@pytest.mark.parametrize("bad, column, fragment", BAD_ROWS)
def test_bad_row_error_mode_saves_state_before_it(tmp_path, rng, bad, column, fragment):
    text, _, _ = _series(rng, T=10, holes=0)
    lines = text.splitlines()
    lines[3] = bad  # data row 3, physical line 4
    bad_text = "\n".join(lines[:4]) + "\n" + "\n".join(lines[4:]) + "\n"
    good_prefix = "\n".join(lines[:3]) + "\n"
    ref = _net()
    _run(good_prefix, ref)
    net = _net()
    ck = tmp_path / "ck.npz"
    with pytest.raises(BadRowError) as info:
        _run(bad_text, net, checkpoint=ck)
    err = info.value
    assert err.line == 4 and err.column == column and fragment in str(err)
    assert str(err).startswith("line 4" + ("" if column is None else f", column {column!r}"))
    saved, meta = load_with_metadata(ck)
    np.testing.assert_array_equal(saved.W, ref.W)
    np.testing.assert_array_equal(saved.P, ref.P)
    np.testing.assert_array_equal(net.W, ref.W)  # the bad row did not touch the state
    assert saved.t == 2 and meta["extra"]["stream"]["rows_read"] == 2


@pytest.mark.parametrize("bad, column, fragment", BAD_ROWS)
def test_bad_row_skip_mode_leaves_state_alone(rng, bad, column, fragment):
    text, _, _ = _series(rng, T=12, holes=0)
    lines = text.splitlines()
    without = "\n".join(lines[:3] + lines[4:]) + "\n"
    lines[3] = bad
    with_bad = "\n".join(lines) + "\n"
    ref, net = _net(), _net()
    _, out_ref = _run(without, ref)
    result, out = _run(with_bad, net, on_bad_row="skip")
    np.testing.assert_array_equal(net.W, ref.W)
    np.testing.assert_array_equal(net.P, ref.P)
    assert (result.bad_rows, result.rows_read, net.t) == (1, 12, 11)
    assert fragment in result.bad_examples[0] and result.bad_examples[0].startswith("line 4")
    got = out.decode().splitlines()
    assert got[3] == "3,"  # an empty prediction keeps output line i answering input row i
    assert [r.split(",")[1] for r in got[1:3] + got[4:]] == [r.split(",")[1] for r in out_ref.decode().splitlines()[1:]]


def test_targets_outside_activation_range_are_bad_rows_or_clipped_and_counted(rng):
    text = "a,b,d\n0.1,0.2,0.5\n0.3,0.4,1e308\n0.5,0.6,0.25\n0.7,0.8,-2\n0.9,1.0,1\n"
    with pytest.raises(BadRowError, match=r"line 3, column 'd': target 1e308 is outside the range \[0, 1\] of "
                                          r"its logistic unit.*--clip-targets"):
        Stream(_net(), ("a", "b"), ("d",)).run(io.StringIO(text), io.BytesIO())
    skipped, ref = _net(), _net()
    result, _ = _run(text, skipped, on_bad_row="skip")
    assert (result.bad_rows, result.rows_read, skipped.t) == (2, 5, 3)
    # clipped: the same as writing the bounds 1 and 0 in the file, and counted
    clipped = _net()
    result, out = _run(text, clipped, clip_targets=True)
    _, out_ref = _run(text.replace("1e308", "1").replace("-2", "0"), ref)
    assert (result.clipped_targets, result.clipped_targets_this_run, result.bad_rows) == (2, 2, 0)
    assert out == out_ref
    np.testing.assert_array_equal(clipped.W, ref.W)
    # tanh units: [-1, 1]
    tanh = _net(activation="tanh")
    result, _ = _run("a,b,d\n0,0,-1\n0,0,-0.5\n0,0,-1.0000001\n", tanh, on_bad_row="skip")
    assert result.bad_rows == 1 and "outside the range [-1, 1] of its tanh unit" in result.bad_examples[0]


def _diverging_text():
    """Rows 1-5 have no target (nothing is learned); row 6 has a huge input and a target: with zero
    weights the unit is not saturated, the gradient is about 1e9 and lr * gradient overflows."""
    rows = ["1,0.5,"] * 5 + ["1e10,0.5,0.9"] + ["1,0.5,0.9"] * 3
    return "a,b,d\n" + "\n".join(rows) + "\n"


def test_divergence_names_step_and_rolls_back(tmp_path):
    net = rtrl.OnlineLearner(2, 2, learning_rate=1e300, W=np.zeros((2, 5)))
    ck = tmp_path / "ck.npz"
    s = Stream(net, ("a", "b"), ("d",), checkpoint=ck, every=1)
    with pytest.raises(DivergedError, match=r"diverged at step 6 \(input line 7\).*Lower the learning rate"):
        s.run(io.StringIO(_diverging_text()), io.BytesIO())
    assert net.t == 5 and np.all(net.W == 0)  # rolled back to the last good step
    last = load(ck)  # the last good checkpoint
    assert last.t == 5 and np.all(last.W == 0)
    # With a clip norm the same stream does not diverge.
    net = rtrl.OnlineLearner(2, 2, learning_rate=1e300, W=np.zeros((2, 5)), clip_norm=1e-300)
    Stream(net, ("a", "b"), ("d",)).run(io.StringIO(_diverging_text()), io.BytesIO())
    assert net.t == 9 and np.all(np.isfinite(net.W))


def test_stop_request_between_rows(rng):
    text, _, _ = _series(rng, T=30)
    net = _net()
    s = Stream(net, ("a", "b"), ("d",))
    rows = iter(text.splitlines(keepends=True))

    def lines():
        for i, line in enumerate(rows):
            if i == 11:
                s.request_stop("test")
            yield line

    result = s.run(lines(), io.BytesIO())
    assert (result.stopped, result.rows_read, net.t) == ("test", 10, 10)


# -- the command line, in process ---------------------------------------------------------------
def _write(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cli_file_to_file_and_model_start(tmp_path, rng):
    text, xs, d = _series(rng, T=50)
    data = _write(tmp_path, text)
    out, ck = tmp_path / "p.csv", tmp_path / "ck.npz"
    rc = main(["stream", str(data), "--inputs", "a,b", "--targets", "d", "--units", "3", "--lr", "0.5",
               "--out", str(out), "--checkpoint", str(ck), "--seed", "3"])
    assert rc == 0
    W0 = rtrl.OnlineLearner(3, 2, learning_rate=0.5, rng=3).W
    targets = np.full((50, 3), np.nan)
    targets[:, 0] = d
    W_ref, ys_ref = rtrl.train_online(W0, xs, targets, learning_rate=0.5)
    np.testing.assert_array_equal(_preds(out.read_bytes())[:, 1], ys_ref[:, 0])
    net, meta = load_with_metadata(ck)
    np.testing.assert_array_equal(net.W, W_ref)
    run = meta["extra"]["stream"]["run"]
    assert (run["seed"], run["n_units"], run["learning_rate"], run["started_from"]) == (3, 3, 0.5, "new network")
    # --model continues from a saved model on new data (row count starts again)
    out2 = tmp_path / "p2.csv"
    assert main(["stream", str(data), "--inputs", "a,b", "--targets", "d", "--model", str(ck),
                 "--out", str(out2)]) == 0
    # the model carries P as well: continuing it is the loaded learner stepping on, not a fresh run
    cont = load(ck)
    ys_cont = cont.partial_fit(xs, targets)
    np.testing.assert_array_equal(_preds(out2.read_bytes())[:, 1], ys_cont[:, 0])
    assert not np.array_equal(ys_cont[:, 0], ys_ref[:, 0])


def test_cli_usage_errors(tmp_path, rng, capsys):
    text, _, _ = _series(rng, T=5)
    data = _write(tmp_path, text)
    base = ["stream", str(data), "--out", str(tmp_path / "o.csv")]
    cases = [
        (["--inputs", "a,b"], "--inputs and --targets are required"),
        (["--inputs", "a,b", "--targets", "d", "--every", "3"], "--every needs --checkpoint"),
        (["--inputs", "a,b", "--targets", "d", "--resume"], "--resume needs --checkpoint"),
        (["--inputs", "a,b", "--targets", "d", "--units", "0"], "--units"),
        (["--inputs", "a,zz", "--targets", "d"], "column 'zz' is not in the CSV header"),
        (["--inputs", "a,b", "--targets", "d", "--lr", "-1"], "--lr: expected a finite number >= 0"),
        (["--inputs", "a,b", "--targets", "d", "--model", str(tmp_path / "none.npz")], "none.npz: no such file"),
        (["--inputs", "a,b", "--targets", "d", "--model", str(data)], "not a readable rtrl model"),
        (["--inputs", "a,b", "--targets", "d", "--checkpoint", str(tmp_path / "o.csv")],
         "--out and --checkpoint name the same file"),
    ]
    for extra, fragment in cases:
        assert main(base + extra) == 2, extra
        assert fragment in capsys.readouterr().err, extra
    assert main(["stream", str(data), "--inputs", "a,b", "--targets", "d", "--out", str(data)]) == 2
    assert "INPUT and --out name the same file" in capsys.readouterr().err
    assert data.read_text() == text  # untouched
    missing = ["stream", str(tmp_path / "nope.csv"), "--inputs", "a,b", "--targets", "d"]
    assert main(missing) == 2
    assert "cannot open INPUT" in capsys.readouterr().err


def test_cli_model_flags_must_match(tmp_path, rng, capsys):
    text, _, _ = _series(rng, T=5)
    data = _write(tmp_path, text)
    model = tmp_path / "m.npz"
    _net(n=4).save(model)
    args = ["stream", str(data), "--inputs", "a,b", "--targets", "d", "--model", str(model),
            "--out", str(tmp_path / "o.csv")]
    assert main(args + ["--units", "5"]) == 2
    assert "--units 5 contradicts the model" in capsys.readouterr().err
    assert main(args + ["--activation", "tanh"]) == 2
    assert main(["stream", str(data), "--inputs", "a", "--targets", "d", "--model", str(model)]) == 2
    assert "has 2 input lines, --inputs names 1" in capsys.readouterr().err
    ck = tmp_path / "ck.npz"
    assert main(args + ["--lr", "0.01", "--checkpoint", str(ck)]) == 0
    assert load(ck).learning_rate == 0.01
    assert main(["stream", str(data), "--checkpoint", str(model), "--resume"]) == 2
    assert "not a stream checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("bad, column, fragment", BAD_ROWS[:3] + BAD_ROWS[6:7])
def test_cli_bad_rows(tmp_path, rng, capsys, bad, column, fragment):
    text, _, _ = _series(rng, T=10, holes=0)
    lines = text.splitlines()
    lines[5] = bad
    data = _write(tmp_path, "\n".join(lines) + "\n")
    ck, out = tmp_path / "ck.npz", tmp_path / "o.csv"
    args = ["stream", str(data), "--inputs", "a,b", "--targets", "d", "--checkpoint", str(ck),
            "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    where = "line 6" + ("" if column is None else f", column {column!r}")
    assert f"{data}: {where}: " in err and fragment in err and "--on-bad-row skip" in err
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 4
    # fix nothing, skip it: the resumed run continues after row 4 and reports the skipped row
    assert main(args + ["--resume", "--on-bad-row", "skip"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 bad rows this run (1 in all)" in err and where in err
    _, meta = load_with_metadata(ck)
    assert meta["extra"]["stream"]["rows_read"] == 10 and meta["t"] == 9
    assert len(out.read_text().splitlines()) == 11


def test_cli_divergence_keeps_last_good_checkpoint(tmp_path, capsys):
    data = _write(tmp_path, _diverging_text())
    model, ck = tmp_path / "zero.npz", tmp_path / "ck.npz"
    rtrl.OnlineLearner(2, 2, learning_rate=1e300, W=np.zeros((2, 5))).save(model)
    args = ["stream", str(data), "--inputs", "a,b", "--targets", "d", "--model", str(model), "--checkpoint",
            str(ck), "--every", "4", "--out", str(tmp_path / "o.csv")]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "diverged at step 6 (input line 7)" in err and "Lower the learning rate" in err
    assert "left as it was" in err and "--clip-norm" in err
    good = load(ck)
    assert good.t == 4 and np.all(good.W == 0)
    assert main(args + ["--resume", "--lr", "0.1"]) == 0  # the suggested fix works from the good checkpoint
    assert load(ck).t == 9
