"""`rtrl tasks`, `rtrl run`, `rtrl reproduce`: output files, consistency, determinism, clear errors."""

from __future__ import annotations

import json
import re

import pytest

from rtrl.cli import main
from rtrl.cli_experiments import parse_param
from rtrl.experiments import pipeline
from rtrl.experiments.claims import CLAIMS
from rtrl.experiments.report import CLAIM_KEYS
from rtrl.experiments.runner import spec_cost
from rtrl.tasks import list_tasks


def cheapest_claims(k=2):
    """Ids of the k claims whose quick one-seed runs cost least (keeps the suite fast)."""
    cost = {c.id: sum(spec_cost(s) for s in c.specs(True, seeds=1)) for c in CLAIMS}
    return sorted(cost, key=cost.get)[:k]


def strip_timing(obj):
    """Drop what may differ between identical reruns: timings, the command line, the execution."""
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items()
                if not k.endswith("seconds") and k not in ("command", "execution")}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


# -- rtrl tasks ----------------------------------------------------------------------------------
def test_tasks_lists_every_task_and_parameter(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name, info in list_tasks().items():
        assert re.search(rf"^{re.escape(name)}$", out, re.M), name
        for param in info.params:
            assert f"{param}=" in out
    assert main(["tasks", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == set(list_tasks())
    assert all({"description", "params", "defaults"} <= set(v) for v in doc.values())
    assert doc["pipelined-xor"]["defaults"]["units"] >= 1


# -- rtrl run ----------------------------------------------------------------------------------
def test_run_writes_config_results_and_figures(tmp_path, capsys):
    out = tmp_path / "ff"
    rc = main(["run", "flip-flop", "--seeds", "2", "--steps", "20000", "--lr", "1.0", "--units", "2",
               "--param", "p_pulse=0.2", "--workers", "0", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "results.json").read_text())
    assert doc["version"] and doc["config"]["seeds"] == [0, 1]
    spec = doc["config"]["spec"]
    assert (spec["task"], spec["units"], spec["steps"], spec["task_params"]) == ("flip-flop", 2, 20000,
                                                                                 {"p_pulse": 0.2})
    wins = sum(r["success"] for r in doc["runs"])
    assert doc["summary"]["successes"] == wins and doc["summary"]["runs"] == 2
    assert f"success rate    {wins}/2" in captured.out
    assert (out / "report.md").read_text().count("![") == len(doc["figures"]) >= 1
    for fig in doc["figures"]:
        assert (out / fig["path"]).read_bytes()[:4] == b"\x89PNG"
    assert "it/s" not in captured.err and "run/s" not in captured.err  # stderr is not a TTY: no bar


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-task"], "unknown task 'no-such-task'"),
    (["run", "pipelined-xor", "--param", "bogus=1"], "no parameter(s) ['bogus']"),
    (["run", "pipelined-xor", "--param", "delay=two"], "--param delay: expected an integer"),
    (["run", "pipelined-xor", "--param", "delay"], "--param: expected key=value"),
    (["reproduce", "--claims", "no-such-claim"], "unknown claim id(s) ['no-such-claim']"),
    (["reproduce", "--workers", "0", "--scheduler", "tcp://127.0.0.1:1"], "cannot be combined with scheduler"),
])
def test_bad_requests_are_clear_errors(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.parametrize("command", [["run", "flip-flop"], ["reproduce", "--quick"]])
def test_unwritable_output_is_refused_before_running(command, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    def must_not_run(*args, **kwargs):
        raise AssertionError("a run started although the output folder is unwritable")

    monkeypatch.setattr(pipeline, "Runner", must_not_run)
    assert main(command + ["--out", str(blocker / "sub")]) == 2
    assert "out: cannot write to" in capsys.readouterr().err
    assert main(command + ["--out", str(blocker)]) == 2
    assert "expected a directory, got the existing file" in capsys.readouterr().err


def test_argument_types_are_checked(capsys):
    for argv in (["run", "flip-flop", "--seeds", "0"], ["reproduce", "--workers", "-1"],
                 ["run", "flip-flop", "--lr", "nan"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "expected" in capsys.readouterr().err


def test_parse_param_follows_the_default_type():
    defaults = {"delay": 2, "low": 0.1, "flag": True, "wave": "sine", "period": None}
    assert parse_param("delay=3", defaults) == ("delay", 3)
    assert parse_param("low = 0.25", defaults) == ("low", 0.25)
    assert parse_param("flag=no", defaults) == ("flag", False)
    assert parse_param("wave=square", defaults) == ("wave", "square")
    assert parse_param("period=25", defaults) == ("period", 25)
    with pytest.raises(ValueError, match="expected a number"):
        parse_param("low=high", defaults)
    with pytest.raises(ValueError, match="expected true or false"):
        parse_param("flag=maybe", defaults)


# -- rtrl reproduce ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_reproduce(tmp_path_factory):
    """The cheapest claims with 2 seeds: serially twice, and on a 2-process local Dask cluster."""
    ids = ",".join(cheapest_claims())
    outs = {}
    for name, workers in (("serial-a", "0"), ("serial-b", "0"), ("dask", "2")):
        out = tmp_path_factory.mktemp(name)
        rc = main(["reproduce", "--quick", "--seeds", "2", "--claims", ids, "--workers", workers,
                   "--out", str(out)])
        assert rc == 0
        outs[name] = out
    return ids.split(","), outs


def test_reproduce_report_and_json_agree(small_reproduce):
    ids, outs = small_reproduce
    out = outs["serial-a"]
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) >= {"version", "config", "claims"}
    assert doc["config"]["quick"] is True and doc["config"]["seeds"] == 2 and doc["config"]["claims"] == ids
    assert [c["id"] for c in doc["claims"]] == ids
    md = (out / "report.md").read_text()
    summary = md.split("## Summary", 1)[1].split("<a id=", 1)[0]
    for c in doc["claims"]:
        assert set(CLAIM_KEYS) <= set(c)
        assert c["seeds"] == 2 and c["successes"] == sum(r["success"] for r in c["runs"])
        row = next(line for line in summary.splitlines() if f"[{c['id']}]" in line)
        assert row.rstrip().endswith("| yes |" if c["holds"] else "| no |")
        assert c["measured"] in row
        assert f"## {c['id']}" in md
        assert c["figures"], f"claim {c['id']} has no figure"
        for fig in c["figures"]:
            assert (out / fig["path"]).read_bytes()[:4] == b"\x89PNG"
            assert f"]({fig['path']})" in md


def test_reproduce_is_deterministic_and_independent_of_parallelism(small_reproduce):
    _, outs = small_reproduce
    docs = {name: json.loads((out / "results.json").read_text()) for name, out in outs.items()}
    assert docs["dask"]["config"]["execution"] == {"mode": "dask-local", "workers": 2}
    assert strip_timing(docs["serial-a"]) == strip_timing(docs["serial-b"])
    assert strip_timing(docs["serial-a"]) == strip_timing(docs["dask"])


def test_reproduce_prints_the_summary_table(tmp_path, capsys):
    ids = cheapest_claims(1)
    assert main(["reproduce", "--quick", "--seeds", "1", "--claims", ids[0], "--workers", "0",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "results.json").read_text())
    line = next(line for line in out.splitlines() if line.startswith(ids[0]))
    assert line.split()[1] == ("yes" if doc["claims"][0]["holds"] else "NO")
    assert re.search(r"\d+/1 claims hold", out) and "report.md" in out


def test_progress_bar_goes_to_stderr_when_asked(tmp_path, capsys):
    pipeline.reproduce(tmp_path, quick=True, seeds=1, claims=cheapest_claims(1), workers=0, progress=True)
    captured = capsys.readouterr()
    assert "reproduce: 100%" in captured.err and "100%" not in captured.out


def test_list_claims_names_every_claim(capsys):
    assert main(["reproduce", "--list-claims"]) == 0
    out = capsys.readouterr().out
    for claim in CLAIMS:
        assert re.search(rf"^{re.escape(claim.id)}$", out, re.M)
        assert f"runs: {len(claim.specs(True))} with --quick, {len(claim.specs(False))} in full" in out


def test_a_failing_run_exits_1_naming_its_spec(tmp_path, capsys, monkeypatch):
    from rtrl.experiments import training

    def broken(spec):
        raise FloatingPointError(f"broken on purpose (seed {spec.seed})")

    monkeypatch.setattr(training, "run_one", broken)
    assert main(["run", "flip-flop", "--seeds", "1", "--workers", "0", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "run failed for RunSpec(task='flip-flop'" in err and "broken on purpose (seed 0)" in err
    assert not (tmp_path / "results.json").exists()
