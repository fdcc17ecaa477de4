"""PNG figures for experiment reports (matplotlib, Agg canvas, no pyplot global state).

Which figures a claim gets is decided by its data, not its name:

* learning curves (error vs step, one line per run) for every claim whose runs have a curve;
* free run vs target for runs that carry ``extra["free_run"]`` and ``extra["target"]``
  (the oscillators), one panel per configuration, so teacher forcing on/off sit side by side;
* success rate vs units when the claim's table has ``units`` and ``success_rate`` columns;
* a delay x units heatmap when the table also has a ``delay`` column (pipelined XOR).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .report import _flat_config as _flat
from .report import _varying_keys, group_by_config

__all__ = ["learning_curves", "free_run_vs_target", "success_vs_units", "delay_units_heatmap",
           "figures_for_claim", "figures_for_runs"]

_DPI = 110


def _new(nrows=1, ncols=1, size=(6.4, 4.0)):
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "claim"


def _varying(configs) -> list[str]:
    """The keys (task parameters flattened) whose values differ between configurations."""
    return _varying_keys(list(configs))


def _short_label(cfg, keys) -> str:
    flat = _flat(cfg)
    return ", ".join(f"{k}={flat.get(k)}" for k in keys)


def _steps(value, _pos=None) -> str:
    """Tick label for a step count: 25k, 1.5M."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if abs(value) >= 1e3 else f"{value:g}"


def _colours(n):
    """n distinguishable colours: the qualitative cycle up to 10, a sequential map beyond."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def _band(curves):
    """Median and interquartile band of curves ((points, 2) arrays) on their common step grid.

    A run that stopped early (it learned) is held at its last value from there on.
    """
    grid = np.unique(np.concatenate([cv[:, 0] for cv in curves]))
    vals = np.array([np.interp(grid, cv[:, 0], cv[:, 1], right=cv[-1, 1]) for cv in curves])  # (runs, points)
    return grid, np.median(vals, axis=0), np.percentile(vals, 25, axis=0), np.percentile(vals, 75, axis=0)


def learning_curves(results, path, title="", ylabel="fraction wrong") -> Path | None:
    """Median error vs step and its interquartile band across seeds, one colour per configuration.

    When two or more settings vary (e.g. delay and units), one panel per value of the first (at most
    6 panels). The step axis is logarithmic when the runs' lengths differ by more than 30x. Runs that
    learned stop; each is held at its last value (said on the figure). None when no run has a curve.
    """
    groups = [(cfg, [r for r in rs if getattr(r, "curve", None)]) for cfg, rs in group_by_config(results)]
    groups = [(cfg, rs) for cfg, rs in groups if rs]
    if not groups:
        return None
    keys = _varying([cfg for cfg, _ in groups])
    panel_key = None
    if len(keys) >= 2 and len({repr(_flat(cfg).get(keys[0])) for cfg, _ in groups}) <= 6:
        panel_key, keys = keys[0], keys[1:]
    panels: dict[str, list] = {}
    for cfg, rs in groups:
        name = f"{panel_key}={_flat(cfg).get(panel_key)}" if panel_key else ""
        panels.setdefault(name, []).append((cfg, rs))
    ends = [np.asarray(r.curve, dtype=float).reshape(-1, 2)[-1, 0] for _, rs in groups for r in rs]
    log_x = max(ends) > 30 * max(1.0, min(ends))
    fig, axes = _new(1, len(panels), size=(min(14.0, 3.4 + 3.6 * len(panels)), 4.2))
    for ax, (name, mine) in zip(axes[0], panels.items()):
        colours = _colours(len(mine))
        for g, (cfg, rs) in enumerate(mine):
            curves = [np.asarray(r.curve, dtype=float).reshape(-1, 2) for r in rs]  # (points, [step, error])
            grid, med, lo, hi = _band(curves)
            wins = sum(bool(r.success) for r in rs)
            label = (_short_label(cfg, keys) + ": " if keys else "") + f"{wins}/{len(rs)} learned"
            ax.plot(grid, med, color=colours[g], lw=1.4, label=label)
            if len(rs) > 1:
                ax.fill_between(grid, lo, hi, color=colours[g], alpha=0.18, lw=0)
        ax.set_xlabel("training step" + (" (log scale)" if log_x else ""))
        if log_x:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_formatter(FuncFormatter(_steps))
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6, loc="upper right", ncol=1 if len(mine) <= 8 else 2)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel + " (median, band: 25-75 %)")
    fig.suptitle((title or "learning curves") + "\nmedian over seeds with the interquartile band; a run that "
                 "learned is held at its last value", fontsize=9)
    return _save(fig, path)


def free_run_vs_target(results, path, title="", max_steps=None) -> Path | None:
    """For each configuration, a free-running output against its target (teacher forcing on/off side by side).

    Shows the first run of the configuration that learned (or its first run if none did). Uses
    ``result.extra["free_run"]`` and ``["target"]`` (arrays (T,) or (T, k)); None when no run has them.
    """
    panels = []
    for cfg, rs in group_by_config(results):
        have = [r for r in rs if (getattr(r, "extra", None) or {}).get("free_run") is not None
                and r.extra.get("target") is not None]
        if have:
            shown = next((r for r in have if r.success), have[0])
            panels.append((cfg, shown, sum(r.success for r in rs), len(rs)))
    if not panels:
        return None
    panels.sort(key=lambda p: not p[0].get("teacher_forcing"))  # with teacher forcing first
    fig, axes = _new(len(panels), 1, size=(7.0, 2.2 * len(panels) + 0.4))
    keys = [k for k in _varying([p[0] for p in panels]) if k != "teacher_forcing"]
    for ax, (cfg, r, wins, runs) in zip(axes[:, 0], panels):
        free = np.asarray(r.extra["free_run"], dtype=float)
        target = np.asarray(r.extra["target"], dtype=float)
        binary = len(np.unique(np.round(target[np.isfinite(target)], 6))) <= 2
        steps = max_steps or (40 if binary else 200)  # a binary wave is readable over ~40 steps
        free = free.reshape(len(free), -1)[:steps]  # (T, k)
        target = target.reshape(len(target), -1)[:steps]  # (T, k)
        for k in range(target.shape[1]):
            ax.plot(target[:, k], color=f"C{k}", lw=2.2, alpha=0.35, label=f"target {k}")
        for k in range(free.shape[1]):
            ax.plot(free[:, k], color=f"C{k}", lw=1.0, marker=".", ms=3, label=f"free run {k}")
        tf = cfg.get("teacher_forcing")
        state = "learned" if r.success else "not learned"
        ax.set_title(f"{'with' if tf else 'without'} teacher forcing, {_flat(cfg).get('units')} units: "
                     f"{wins}/{runs} runs learned; shown: seed {r.spec.seed} ({state})"
                     + (f"; {_short_label(cfg, keys)}" if keys else ""), fontsize=8)
        ax.set_ylim(-0.05, 1.05) if np.nanmin(target) >= 0 else None
        ax.set_xlabel(f"step of the free run after training (first {len(target)} shown)")
        ax.legend(fontsize=6, loc="upper right", ncol=2)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _rate_rows(table, *keys):
    rows = [row for row in table or [] if all(k in row for k in keys) and row.get("success_rate") is not None]
    return rows


_STAT_KEYS = ("units", "success_rate", "runs", "successes", "median_steps")


def success_vs_units(table, path, title="", paper_units=None) -> Path | None:
    """Success rate against number of units, one marker series per combination of the table's other settings.

    Sizes are joined by a line only when they are consecutive (no line across an untested size);
    ``paper_units`` marks the paper's figure with a dashed line.
    """
    rows = _rate_rows(table, "units", "success_rate")
    if not rows or any("delay" in row for row in rows) or len({row["units"] for row in rows}) < 2:
        return None
    lines: dict[str, list] = {}
    for row in rows:
        label = ", ".join(f"{k}={v}" for k, v in row.items() if k not in _STAT_KEYS)
        lines.setdefault(label, []).append(row)
    fig, axes = _new()
    ax = axes[0, 0]
    for label, mine in lines.items():
        mine = sorted(mine, key=lambda row: row["units"])
        units = [row["units"] for row in mine]
        rates = [row["success_rate"] for row in mine]
        # markers only, joined only between consecutive tested sizes (no line across an untested size)
        line = ax.plot(units, rates, marker="o", ls="none", label=label or None)[0]
        for (u0, r0), (u1, r1) in zip(zip(units, rates), zip(units[1:], rates[1:])):
            if u1 == u0 + 1:
                ax.plot([u0, u1], [r0, r1], color=line.get_color(), lw=1)
        for row in mine:
            if row.get("runs"):
                ax.annotate(f"{row.get('successes', '?')}/{row['runs']}", (row["units"], row["success_rate"]),
                            textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xticks(sorted({row["units"] for row in rows}))
    if paper_units is not None:
        ax.axvline(paper_units, color="grey", ls="--", lw=1)
        ax.annotate(f"paper: {paper_units} units the smallest", (paper_units, 1.08), ha="center", fontsize=7,
                    color="grey")
    ax.set_ylim(-0.05, 1.15)
    ax.set_xlabel("units")
    ax.set_ylabel("success rate (runs that learned / runs)")
    ax.set_title(title or "success rate vs units", fontsize=10)
    if any(lines):
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def delay_units_heatmap(table, path, title="") -> Path | None:
    """Success rate on a delay x units grid (blank where not run), with the rate written in each cell."""
    rows = _rate_rows(table, "units", "delay", "success_rate")
    if not rows:
        return None
    delays = sorted({row["delay"] for row in rows})
    units = sorted({row["units"] for row in rows})
    grid = np.full((len(delays), len(units)), np.nan)  # (delays, units)
    counts = {}
    for row in rows:
        i, j = delays.index(row["delay"]), units.index(row["units"])
        grid[i, j] = row["success_rate"]
        if row.get("runs") and row.get("successes") is not None:
            counts[i, j] = f"\n{row['successes']}/{row['runs']}"
    fig, axes = _new(size=(1.0 + 0.8 * len(units) + 1.5, 1.0 + 0.6 * len(delays) + 0.8))
    ax = axes[0, 0]
    im = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    for i in range(len(delays)):
        for j in range(len(units)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}{counts.get((i, j), '')}", ha="center", va="center", fontsize=8,
                        color="black" if grid[i, j] > 0.5 else "white")
    ax.set_xticks(range(len(units)), [str(u) for u in units])
    ax.set_yticks(range(len(delays)), [str(d) for d in delays])
    ax.set_xlabel("units")
    ax.set_ylabel("delay (steps)")
    ax.set_title(title or "success rate", fontsize=10)
    fig.colorbar(im, ax=ax, label="success rate")
    return _save(fig, path)


def figures_for_runs(results, outdir, stem, title="", free_runs=None) -> list[tuple[str, Path]]:
    """Learning curves and (if present) free run vs target for a set of runs: ``[(caption, path)]``.

    ``free_runs``: optional ``(stem, results)`` to draw the free-run figure from instead (e.g. the runs
    of the same oscillator with and without teacher forcing, from two claims); drawn once per stem.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    out = []
    stem = _safe(stem)
    p = learning_curves(results, outdir / f"{stem}-curves.png", title=f"{title}: learning curves" if title else "")
    if p:
        measure = next((r.extra.get("curve_measure") for r in results if getattr(r, "extra", None)
                        and r.extra.get("curve_measure")), "error")
        tested = next((r.extra for r in results if getattr(r, "extra", None)
                       and ("free_run" in r.extra or "closed_loop" in r.extra)), None)
        note = ""
        if tested is not None:
            note = (" Whether a run learned is decided by a test the curve does not show: "
                    + ("the free run (next figure)." if "free_run" in tested else
                       "the closed loop, where the network's own actions drive the tape."))
        out.append((f"Learning curves: {measure}, median over seeds per configuration with the interquartile "
                    f"band (runs that learned are held at their last value).{note}", p))
    fr_stem, fr_results = free_runs if free_runs else (stem, results)
    fr_path = outdir / f"{_safe(fr_stem)}-free-run.png"
    p = fr_path if free_runs and fr_path.exists() else free_run_vs_target(fr_results, fr_path,
                                                                           title=f"{fr_stem}: free run vs target" if free_runs else title)
    if p:
        out.append(("After training: the network running freely (learning and teacher forcing off) against "
                    "the target, one panel per configuration" + (", from every claim on this wave" if free_runs
                                                                   else "") + ".", p))
    return out


def figures_for_claim(entry: dict, results, outdir, free_runs=None) -> list[tuple[str, Path]]:
    """All figures for one claim (entry: its ``results.json`` item; results: its runs; ``free_runs``
    as in :func:`figures_for_runs`)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = _safe(entry["id"])
    out = []
    p = delay_units_heatmap(entry.get("table"), outdir / f"{stem}-delay-units.png",
                            title=f"{entry['id']}: success rate by delay and units")
    if p:
        out.append(("Success rate by delay and number of units.", p))
    p = success_vs_units(entry.get("table"), outdir / f"{stem}-success-vs-units.png",
                         title=f"{entry['id']}: success rate vs units",
                         paper_units=12 if entry.get("task") == "turing-parens" else None)
    if p:
        out.append(("Success rate against number of units.", p))
    out += figures_for_runs(results, outdir, stem, title=entry["id"], free_runs=free_runs)
    return out
