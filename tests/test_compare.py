"""rtrl compare: rules passive on one trajectory, against exact RTRL."""

import json

import numpy as np
import pytest

import rtrl
from rtrl.cli import main
from rtrl.experiments.compare import compare_on_trajectory, markdown_table


def test_exact_rules_align_perfectly_and_approximations_do_not():
    res = compare_on_trajectory("pipelined-xor", ["hybrid", "subgroup:1", "snap-1", "uoro", "bptt:200"], units=4,
                                steps=300, seed=1, timing_steps=50)
    assert res["rules"] == ["rtrl", "hybrid", "subgroup:1", "snap:1", "uoro", "bptt:200"]
    A = res["alignment"]
    ok = ~np.isnan(A[:, 0])
    assert ok.sum() > 100  # most steps have a target
    for i in (0, 1, 2):  # exact RTRL itself, the hybrid, one subgroup: the exact gradient
        np.testing.assert_allclose(A[ok, i], 1.0, atol=1e-9)
        np.testing.assert_allclose(res["norm_ratio"][ok, i], 1.0, rtol=1e-8)
    assert np.nanmin(A[:, 3]) < 0.999  # SnAp-1 drops terms
    assert np.nanmean(A[:, 4]) < 0.9  # UORO is noisy
    # BPTT with a window longer than the run is exact only while W is fixed; the driver moves W, so it
    # differs a little (the back pass uses the current weights)
    assert np.nanmean(A[:, 5]) > 0.99
    s = {row["rule"]: row for row in res["summary"]}
    assert s["rtrl"]["driver"] and s["rtrl"]["exact"] and not s["uoro"]["exact"] and s["uoro"]["unbiased"]
    assert s["rtrl"]["numbers"] == 4 + 4 * 4 * 7 and s["snap:1"]["numbers"] < s["rtrl"]["numbers"]
    assert all(row["us_per_step"] > 0 for row in res["summary"])


def test_passive_rules_do_not_change_the_trajectory():
    """The driver's trajectory is the same whatever rules watch it."""
    a = compare_on_trajectory("add", [], units=3, steps=200, seed=2, timing_steps=20)
    b = compare_on_trajectory("add", ["uoro", "kf-rtrl", "rflo"], units=3, steps=200, seed=2, timing_steps=20)
    np.testing.assert_array_equal(a["loss"], b["loss"])
    np.testing.assert_array_equal(a["alignment"][:, 0], b["alignment"][:, 0])


def test_another_driver_is_compared_with_passive_exact_rtrl():
    res = compare_on_trajectory("pipelined-xor", ["rflo"], driver="kf-rtrl", units=3, steps=200, seed=0,
                                timing_steps=20)
    assert res["rules"] == ["kf-rtrl", "rflo", "rtrl"]
    assert res["summary"][0]["driver"] and res["summary"][2]["exact"]
    np.testing.assert_allclose(np.nanmin(res["alignment"][:, 2]), 1.0)


def test_cli_writes_json_markdown_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "pipelined-xor", "--rules", "rtrl,snap-1,uoro", "--steps", "300", "--seeds", "2",
                 "--driving-steps", "3000", "--out", str(out), "--workers", "1"])
    assert code == 0
    doc = json.loads((out / "compare.json").read_text())
    assert [s["rule"] for s in doc["summary"]] == ["rtrl", "snap:1", "uoro"]
    assert set(doc["driving"]) == {"rtrl", "snap:1", "uoro"} and all(d["runs"] == 2 for d in doc["driving"].values())
    md = (out / "compare.md").read_text()
    assert markdown_table(doc) in md and "rtrl compare pipelined-xor" in md
    for f in doc["figures"]:
        assert (out / f["path"]).stat().st_size > 5000
    assert len(doc["alignment_curve"][0]) == 1 + 3  # step, then one column per rule
    assert "snap:1" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--rules", "rtrl,nope"], "unknown rule 'nope'"),
    (["--rules", ""], "comma list"),
    (["--steps", "0"], "--steps"),
    (["--driver", "subgroup:9", "--units", "4"], "groups"),
    (["--lr", "-1"], "--lr"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    code = main(["compare", "pipelined-xor", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_learning_curves_of_drivers_come_from_the_runner():
    from rtrl.experiments.compare import learning_curves_by_rule

    by = learning_curves_by_rule("flip-flop", ["rtrl", "uoro"], seeds=2, steps=3000, workers=1)
    assert set(by) == {"rtrl", "uoro"}
    runs = by["uoro"]
    assert [r.spec.seed for r in runs] == [0, 1] and all(r.spec.rule == "uoro" for r in runs)
    # a rule that draws random numbers is seeded by the run's seed, so the two runs differ
    assert runs[0].curve != runs[1].curve


def test_runner_plans_workers_and_prints_progress_lines(capsys):
    from rtrl.experiments.runner import _ProgressLines, default_workers, plan_workers

    assert plan_workers(None, None, 1) == 1  # never more processes than distinct runs
    assert plan_workers(50, None, 2) == 2
    assert plan_workers(0, None, 5) == 0 and plan_workers(7, "tcp://x", 1) == 7
    msgs = []
    n = default_workers() + 1
    assert plan_workers(n, None, 100, log=msgs.append) == n and "compete" in msgs[0]
    lines = _ProgressLines(3, "runs")
    for _ in range(3):
        lines.update(1)
    assert "runs: 3/3 runs done (100 %)" in capsys.readouterr().err


def test_a_rerun_into_the_same_folder_drops_old_figures(tmp_path):
    from rtrl.experiments.report import fresh_figures_dir

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "old-claim.png").write_bytes(b"x")
    (tmp_path / "figures" / "notes.txt").write_text("mine")
    folder = fresh_figures_dir(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
