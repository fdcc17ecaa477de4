"""A rule chosen on the command line: rtrl stream --rule (with resume) and rtrl run --rule."""

import json

import numpy as np
import pytest

import rtrl
from rtrl.cli import main


def _csv(path, T=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, T)
    rows = ["x,d"] + [f"{x[t]},{'' if t == 0 else 0.1 + 0.8 * x[t - 1]}" for t in range(T)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("rule", ["uoro", "snap-1", "subgroup:2", "rflo"])
def test_stream_with_a_rule_resumes_bit_for_bit(tmp_path, rule):
    data = _csv(tmp_path / "d.csv")
    common = ["stream", str(data), "--inputs", "x", "--targets", "d", "--units", "4", "--lr", "0.5", "--rule", rule]
    ck_one, ck_two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert main([*common, "--checkpoint", str(ck_one), "--out", str(tmp_path / "one.csv")]) == 0
    # the same run in two sittings: a checkpoint every 100 rows, stopped by a head-limited copy of the input
    part = tmp_path / "part.csv"
    part.write_text("".join(data.read_text().splitlines(keepends=True)[:151]))
    assert main(["stream", str(part), "--inputs", "x", "--targets", "d", "--units", "4", "--lr", "0.5", "--rule",
                 rule, "--checkpoint", str(ck_two), "--out", str(tmp_path / "two.csv")]) == 0
    assert main(["stream", str(data), "--checkpoint", str(ck_two), "--resume", "--out",
                 str(tmp_path / "two.csv")]) == 0
    a, b = rtrl.load(ck_one), rtrl.load(ck_two)
    assert a.rule == b.rule == rtrl.rules.make(rule, **({"rng": 0} if "rng" in a.rule.options() else {}))
    assert a.t == b.t == 300
    np.testing.assert_array_equal(a.W, b.W)
    for u, v in zip(a.rule_state, b.rule_state):
        np.testing.assert_array_equal(u, v)
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


def test_stream_rule_errors(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", T=20)
    base = ["stream", str(data), "--inputs", "x", "--targets", "d"]
    assert main([*base, "--rule", "nope"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err
    assert main([*base, "--rule", "rflo", "--rule-option", "tau=0.5"]) == 2
    assert "'rflo': option tau" in capsys.readouterr().err
    assert main([*base, "--rule-option", "tau=2"]) == 2
    assert "--rule-option needs --rule" in capsys.readouterr().err
    ck = tmp_path / "ck.npz"
    assert main([*base, "--rule", "uoro", "--checkpoint", str(ck), "--out", str(tmp_path / "o.csv")]) == 0
    assert main([*base, "--rule", "snap-1", "--checkpoint", str(ck), "--resume", "--out",
                 str(tmp_path / "o.csv")]) == 2
    assert "--rule snap:1 contradicts the model" in capsys.readouterr().err


def test_run_with_a_rule_records_it(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "flip-flop", "--rule", "uoro", "--seeds", "2", "--steps", "3000", "--out", str(out),
                 "--workers", "1"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["spec"]["rule"] == "uoro"
    assert "--rule uoro" in doc["config"]["command"]
    assert main(["run", "flip-flop", "--rule", "subgroup:5", "--out", str(out)]) != 0
    assert "groups" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["bench", "--sizes", "0"], "--sizes: expected an integer >= 1, got 0"),
    (["bench", "--sizes", "-4"], "--sizes: expected an integer >= 1, got -4"),
    (["run", "pipelined-xor", "--units", "-3"], "--units: expected an integer >= 1, got -3"),
])
def test_cli_sizes_are_checked_by_argparse(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_stream_names_its_own_flags(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", T=5)
    assert main(["stream", str(data), "--inputs", "x", "--targets", "d", "--lr", "-1"]) == 2
    assert "--lr: expected a finite number >= 0" in capsys.readouterr().err
    assert main(["stream", str(data), "--inputs", "x", "--targets", "d", "--clip-norm", "0"]) == 2
    assert "--clip-norm: expected a finite number > 0" in capsys.readouterr().err
