"""results.json / report.md / figures from hand-made results (no training): schema, consistency, PNGs."""

from __future__ import annotations

import dataclasses
import json
import math

import matplotlib.image
import numpy as np
import pytest

from rtrl.experiments import figures, report
from rtrl.experiments.training import RunResult, make_spec


def result(seed, success, steps, final_error, *, units=3, teacher_forcing=False, task="pipelined-xor",
           task_params=None, extra=None):
    spec = make_spec(task, seed=seed, units=units, teacher_forcing=teacher_forcing, task_params=task_params or {})
    curve = [(500 * (i + 1), max(0.0, 0.5 - 0.1 * i)) for i in range(6)]
    return RunResult(spec, success, steps, final_error, curve, dict(extra or {}), 0.25)


@dataclasses.dataclass
class FakeClaim:
    id: str
    task: str
    claim: str
    paper: str
    holds: bool

    def summarise(self, results):
        wins = [r for r in results if r.success]
        return {"measured": f"{len(wins)}/{len(results)} learned", "holds": self.holds,
                "seeds": len({r.spec.seed for r in results}), "successes": len(wins), "median_steps": 150,
                "table": [{"units": 3, "success_rate": len(wins) / len(results), "runs": len(results)}],
                "success_rate": len(wins) / len(results)}


RESULTS = [result(0, True, 100, 0.0), result(1, False, None, 0.5), result(2, True, 300, float("nan"))]


def test_summarise_runs_by_hand():
    s = report.summarise_runs(RESULTS)
    assert s["runs"] == 3 and s["successes"] == 2
    assert s["success_rate"] == pytest.approx(2 / 3)
    assert s["median_steps"] == 200  # over the two runs that learned only
    assert s["median_final_error"] == pytest.approx(0.25)  # NaN left out
    assert s["seeds"] == [0, 1, 2]


def test_jsonable_plain_types_and_non_finite():
    value = {"a": np.float64(1.5), "b": np.int32(3), "c": (1, np.bool_(True)), "d": float("nan"),
             "e": np.array([1.0, np.inf]), 4: None}
    assert report.jsonable(value) == {"a": 1.5, "b": 3, "c": [1, True], "d": None, "e": [1.0, None], "4": None}


def build_doc(claims, results_by_claim):
    entries = [report.claim_entry(c, c.summarise(rs), rs) for c, rs in zip(claims, results_by_claim)]
    return report.build_document("9.9", {"quick": True, "seeds": None, "execution": {"mode": "serial"},
                                         "wall_seconds": 1.0}, entries)


def test_results_json_and_report_agree():
    claims = [FakeClaim("first-claim", "pipelined-xor", "a claim", "the paper says so", True),
              FakeClaim("second-claim", "pipelined-xor", "b claim", "and this | too", False)]
    doc = build_doc(claims, [RESULTS, RESULTS[:2]])
    text = json.dumps(doc, allow_nan=False)  # strict JSON: the NaN final error became null
    back = json.loads(text)
    assert set(back) >= {"version", "config", "claims"}
    for entry, claim, n_runs in zip(back["claims"], claims, (3, 2)):
        assert set(report.CLAIM_KEYS) <= set(entry)
        assert entry["id"] == claim.id and entry["holds"] is claim.holds
        assert [r["spec"]["seed"] for r in entry["runs"]] == list(range(n_runs))
        assert entry["seconds"] == pytest.approx(0.25 * n_runs)
        assert entry["summary_extra"]["success_rate"] == pytest.approx(entry["successes"] / len(entry["runs"]))
    assert back["claims"][0]["runs"][2]["final_error"] is None

    md = report.render_report(doc)
    summary = md.split("## Summary", 1)[1].split("\n<a id=", 1)[0]
    for claim in claims:
        row = next(line for line in summary.splitlines() if f"[{claim.id}]" in line)
        assert row.rstrip().endswith("| yes |" if claim.holds else "| no |")
        assert f"## {claim.id}" in md
    assert "and this \\| too" in md  # a pipe inside a cell is escaped
    assert "1 of 2 claims hold" in md

    table = report.summary_table(doc)
    assert "first-claim" in table and "second-claim" in table and "1/2 claims hold" in table
    assert table.splitlines()[3].split()[1] == "NO"


def test_claim_entry_rejects_an_incomplete_summary():
    claim = FakeClaim("c", "pipelined-xor", "x", "y", True)
    with pytest.raises(ValueError, match=r"expected keys \['holds'"):
        report.claim_entry(claim, {"measured": "m", "seeds": 1, "successes": 0, "median_steps": None}, RESULTS)


def test_group_by_config_separates_settings_not_seeds():
    rs = RESULTS + [result(0, True, 50, 0.0, units=4)]
    groups = report.group_by_config(rs)
    assert [len(g[1]) for g in groups] == [3, 1]
    assert [g[0]["units"] for g in groups] == [3, 4] and "seed" not in groups[0][0]


def png(path):
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)  # (H, W, 4)


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib Figures the figure functions save, to check what they show (not only that a PNG exists)."""
    figs = []
    real = figures._save

    def save(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(figures, "_save", save)
    return figs


def _data_lines(ax):
    """The plotted curves of an Axes (not the vertical marker lines)."""
    return [ln for ln in ax.get_lines() if len(np.unique(ln.get_xdata())) > 1]


def test_learning_curves_show_the_median_and_band_of_the_runs(tmp_path, drawn):
    """The figure shows what the runs measured: the median over seeds on their step grid, the 25-75 %
    band around it, axis labels, and how many runs learned."""
    runs = [dataclasses.replace(r, curve=[(500 * (i + 1), e * (1 + r.spec.seed)) for i, e in
                                          enumerate((0.1, 0.08, 0.05, 0.04, 0.02, 0.01))]) for r in RESULTS]
    figures.learning_curves(runs, tmp_path / "c.png", title="t")
    (fig,) = drawn
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("training step") and ax.get_ylabel().startswith("fraction wrong")
    values = np.array([[e for _, e in r.curve] for r in runs])  # (runs, points)
    steps = [s for s, _ in runs[0].curve]
    (median,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(steps)]
    np.testing.assert_array_equal(median.get_xdata(), steps)
    np.testing.assert_allclose(median.get_ydata(), np.median(values, axis=0))
    assert "2/3 learned" in median.get_label()
    (band,) = ax.collections  # the interquartile band of the three runs
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    np.testing.assert_allclose([ys.min(), ys.max()], [np.percentile(values, 25, axis=0).min(),
                                                     np.percentile(values, 75, axis=0).max()])
    lo, hi = ax.get_xlim()
    assert lo <= 500 and hi >= 3000
    assert fig._suptitle.get_text().startswith("t")


def test_free_run_figure_shows_target_and_free_run_per_configuration(tmp_path, drawn):
    free = [0.1, 0.9] * 20
    target = [0.1, 0.9] * 19 + [0.9, 0.1]
    osc = [result(s, tf, 10 if tf else None, 0.0, units=1, teacher_forcing=tf, task="oscillator",
                  extra={"free_run": free, "target": target}) for tf in (False, True) for s in range(2)]
    figures.free_run_vs_target(osc, tmp_path / "f.png")
    (fig,) = drawn
    assert len(fig.axes) == 2
    with_tf, without = fig.axes
    assert with_tf.get_title().startswith("with teacher forcing, 1 units: 2/2 runs learned; shown: seed 0 (learned)")
    assert without.get_title().startswith("without teacher forcing, 1 units: 0/2 runs learned")
    for ax in fig.axes:
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert set(lines) == {"target 0", "free run 0"}
        shown = len(lines["target 0"].get_ydata())
        assert 20 <= shown <= len(target) and len(lines["free run 0"].get_ydata()) == shown
        np.testing.assert_array_equal(lines["target 0"].get_ydata(), target[:shown])
        np.testing.assert_array_equal(lines["free run 0"].get_ydata(), free[:shown])
        lo, hi = ax.get_ylim()
        assert lo <= 0.1 and hi >= 0.9 and "free run" in ax.get_xlabel()


def test_success_vs_units_and_heatmap_show_the_table(tmp_path, drawn):
    by_units = [{"units": u, "success_rate": r, "runs": 4, "successes": int(4 * r)}
                for u, r in ((10, 0.0), (12, 0.25), (15, 1.0))]
    figures.success_vs_units(by_units, tmp_path / "u.png")
    ax = drawn[-1].axes[0]
    line = ax.get_lines()[0]  # the measured rates (markers)
    np.testing.assert_array_equal(line.get_xdata(), [10, 12, 15])
    np.testing.assert_array_equal(line.get_ydata(), [0.0, 0.25, 1.0])
    assert ax.get_xlabel() == "units" and ax.get_ylabel().startswith("success rate")
    lo, hi = ax.get_ylim()
    assert lo <= 0 and 1 <= hi <= 1.2
    assert [t.get_text() for t in ax.texts] == ["0/4", "1/4", "4/4"]

    xor = [{"delay": d, "units": u, "success_rate": (u - d) / 4, "runs": 4, "successes": u - d}
           for d in (2, 3, 4) for u in (3, 4, 5) if (d, u) != (4, 3)]
    figures.delay_units_heatmap(xor, tmp_path / "h.png")
    ax = drawn[-1].axes[0]
    (image,) = ax.get_images()
    grid = np.ma.getdata(image.get_array())
    expected = np.array([[(u - d) / 4 for u in (3, 4, 5)] for d in (2, 3, 4)])
    expected[2, 0] = np.nan  # not run: blank
    np.testing.assert_array_equal(np.isnan(grid), np.isnan(expected))
    np.testing.assert_array_equal(grid[~np.isnan(grid)], expected[~np.isnan(expected)])
    assert image.get_clim() == (0, 1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "4", "5"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "3", "4"]
    assert ax.get_xlabel() == "units" and ax.get_ylabel() == "delay (steps)"
    assert len(ax.texts) == 8 and ax.texts[0].get_text() == "0.25\n1/4"


def test_learning_curves_png(tmp_path):
    img = png(figures.learning_curves(RESULTS, tmp_path / "c.png", title="t"))
    assert img.ndim == 3 and img.shape[0] > 100
    no_curve = [dataclasses.replace(r, curve=[]) for r in RESULTS]
    assert figures.learning_curves(no_curve, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_free_run_panels_per_configuration(tmp_path):
    wave = {"free_run": [0.1, 0.9] * 20, "target": [0.1, 0.9] * 20}
    osc = [result(s, True, 10, 0.0, units=1, teacher_forcing=tf, task="oscillator", extra=wave)
           for tf in (True, False) for s in range(2)]
    two = png(figures.free_run_vs_target(osc, tmp_path / "two.png"))
    one = png(figures.free_run_vs_target(osc[:2], tmp_path / "one.png"))
    assert two.shape[0] > one.shape[0] * 1.5  # one panel per configuration (TF on, TF off)
    assert figures.free_run_vs_target(RESULTS, tmp_path / "x.png") is None  # no free run in these runs


def test_table_figures_pick_their_shape(tmp_path):
    by_units = [{"units": u, "success_rate": r, "runs": 4} for u, r in ((10, 0.0), (12, 0.25), (15, 1.0))]
    xor = [{"delay": d, "units": u, "success_rate": (u - d) / 4, "runs": 3} for d in (2, 3, 4) for u in (3, 4, 5)]
    png(figures.success_vs_units(by_units, tmp_path / "u.png"))
    png(figures.delay_units_heatmap(xor, tmp_path / "h.png"))
    assert figures.success_vs_units(xor, tmp_path / "u2.png") is None  # delay present: heatmap instead
    assert figures.delay_units_heatmap(by_units, tmp_path / "h2.png") is None

    entry = {"id": "xor/delays", "table": xor}
    made = figures.figures_for_claim(entry, RESULTS, tmp_path / "figs")
    names = sorted(p.name for _, p in made)
    assert names == ["xor-delays-curves.png", "xor-delays-delay-units.png"]


def test_ensure_writable_dir(tmp_path):
    made = report.ensure_writable_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe file is removed
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="out: expected a directory, got the existing file"):
        report.ensure_writable_dir(afile)
    with pytest.raises(ValueError, match="out: cannot write to .*choose a writable --out"):
        report.ensure_writable_dir(afile / "sub")


def test_non_finite_never_reaches_json(tmp_path):
    doc = {"x": [math.inf, -math.inf, math.nan, 1.0]}
    report.write_json(report.jsonable(doc), tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": [None, None, None, 1.0]}


def test_dumps_is_json_with_curves_on_one_line():
    doc = {"a": [[1, 0.5], [2, 0.25]], "b": [{"x": [1, 2, 3]}, {"x": []}], "c": {}, "d": "t"}
    text = report.dumps(doc)
    assert json.loads(text) == doc
    assert '"a": [[1, 0.5], [2, 0.25]]' in text and '"x": [1, 2, 3]' in text
    with pytest.raises(ValueError):
        report.dumps({"bad": float("nan")})


def test_free_runs_are_pooled_across_claims_on_the_same_wave(tmp_path):
    from rtrl.experiments import pipeline

    wave = {"free_run": [0.1, 0.9] * 10, "target": [0.1, 0.9] * 10}
    osc = {tf: [result(s, tf, 5 if tf else None, 0.0, units=1, teacher_forcing=tf, task="oscillator",
                       task_params={"wave": "alternating"}, extra=wave) for s in range(2)] for tf in (True, False)}
    sine = [result(0, True, 5, 0.0, units=2, teacher_forcing=True, task="oscillator", task_params={"wave": "sine"},
                   extra=wave)]
    by_claim = [(FakeClaim(i, "oscillator", "", "", True), rs)
                for i, rs in (("tf", osc[True]), ("notf", osc[False]), ("sine", sine), ("xor", RESULTS))]
    pools = pipeline._free_run_pools(by_claim)
    assert set(pools) == {"tf", "notf"}  # the sine and xor claims have no companion
    stem, runs = pools["tf"]
    assert pools["notf"][0] == stem == "oscillator-wave-alternating"
    assert sorted((r.spec.teacher_forcing, r.spec.seed) for r in runs) == [(False, 0), (False, 1), (True, 0), (True, 1)]
    figs_tf = figures.figures_for_claim({"id": "tf"}, osc[True], tmp_path, free_runs=pools["tf"])
    figs_notf = figures.figures_for_claim({"id": "notf"}, osc[False], tmp_path, free_runs=pools["notf"])
    assert figs_tf[-1][1] == figs_notf[-1][1] == tmp_path / "oscillator-wave-alternating-free-run.png"
    assert png(figs_tf[-1][1]).shape[0] > png(figures.free_run_vs_target(osc[True], tmp_path / "1.png")).shape[0]
