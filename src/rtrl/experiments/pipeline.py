"""End-to-end experiment jobs: reproduce the paper's claims, or train one task over seeds.

These are what ``rtrl reproduce`` and ``rtrl run`` call; the CLI only parses arguments.
Both check the output folder first, run every spec through one :class:`~.runner.Runner`
(one cluster for the whole job, largest runs first), and write ``results.json``,
``report.md`` and PNG figures under ``out``. The numbers depend only on the specs (task,
parameters, units, learning rate, teacher forcing, steps, seed), never on the parallelism.

Examples
--------
>>> from rtrl.experiments.pipeline import reproduce
>>> doc = reproduce("rtrl-reproduce", quick=True)            # doctest: +SKIP
>>> [(c["id"], c["holds"]) for c in doc["claims"]]           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import platform
import time

from .._version import __version__
from . import report as _report
from .runner import Runner

__all__ = ["UsageError", "select_claims", "reproduce", "make_specs", "run_task", "DEFAULT_REPRODUCE_OUT", "DEFAULT_RUN_OUT"]

#: Default output folders (relative to the current directory); both are in .gitignore.
DEFAULT_REPRODUCE_OUT = "rtrl-reproduce"
DEFAULT_RUN_OUT = "rtrl-run"


class UsageError(ValueError):
    """A bad request (unknown task or claim, bad parameter, unwritable folder), found before any run starts."""


def _validated(fn, *args, **kwargs):
    """Call ``fn``; turn its ValueError/TypeError into a UsageError (a user's mistake, not a bug)."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


def _local_workers(workers, scheduler, n_runs):
    """Worker processes of the local cluster (:func:`rtrl.experiments.runner.plan_workers`)."""
    from .runner import plan_workers

    return plan_workers(workers, scheduler, n_runs)


def _environment() -> dict:
    import numba
    import numpy

    return {"rtrl": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "platform": platform.platform()}


def select_claims(ids=None) -> list:
    """The claims to run: all of ``CLAIMS`` (None) or those with the given ids, in the given order."""
    from .claims import CLAIMS

    if ids is None:
        return list(CLAIMS)
    if isinstance(ids, str):
        ids = [s for s in ids.split(",") if s.strip()]
    by_id = {c.id: c for c in CLAIMS}
    unknown = [i for i in ids if i.strip() not in by_id]
    if unknown:
        raise ValueError(f"claims: unknown claim id(s) {unknown}; expected some of {list(by_id)}")
    if not ids:
        raise ValueError(f"claims: expected at least one claim id, got none; choose from {list(by_id)}")
    return [by_id[i.strip()] for i in dict.fromkeys(ids)]


def _check_seeds(seeds):
    if seeds is None:
        return None
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds: expected an integer >= 1 (the number of seeds per configuration), got {seeds!r}")
    return seeds


def reproduce(out=DEFAULT_REPRODUCE_OUT, *, quick=False, seeds=None, claims=None, workers=None,
              scheduler=None, progress=None, command=None, log=None) -> dict:
    """Run every claim of the paper (or a subset) and write ``out/report.md``, ``results.json``, figures.

    Parameters
    ----------
    out : path
        Output folder, created if missing; checked writable before anything runs.
    quick : bool
        The claims' reduced budgets (fewer seeds and steps), for a run of a few minutes.
    seeds : int, optional
        Seeds per configuration, overriding each claim's default.
    claims : list of str or "ID,ID", optional
        Claim ids to run (default: all of ``rtrl.experiments.claims.CLAIMS``).
    workers, scheduler, progress
        Execution, see :class:`~rtrl.experiments.runner.Runner`.
    command : str, optional
        The command line, recorded in the config.
    log : callable, optional
        Called with short status lines (e.g. ``print`` to stderr).

    Returns
    -------
    dict : the ``results.json`` document.

    Raises
    ------
    UsageError
        Unknown claim ids, bad ``seeds`` or an unwritable ``out``, before anything runs.
    """
    log = log or (lambda msg: None)
    seeds = _validated(_check_seeds, seeds)
    selected = _validated(select_claims, claims)
    plan = [(claim, _validated(lambda c: list(c.specs(quick, seeds=seeds)), claim)) for claim in selected]
    out = _validated(_report.ensure_writable_dir, out)
    all_specs = [spec for _, specs in plan for spec in specs]
    log(f"reproduce: {len(selected)} claim(s), {len(all_specs)} runs ({len(set(all_specs))} distinct)"
        f"{' [quick]' if quick else ''}")
    start = time.perf_counter()
    workers = _local_workers(workers, scheduler, len(set(all_specs)))
    with _validated(Runner, workers=workers, scheduler=scheduler, progress=progress) as runner:
        execution = runner.describe()
        log(f"reproduce: executing on {execution['mode']} with {execution['workers']} worker(s)")
        results = runner.map(all_specs, desc="reproduce")
    run_wall = time.perf_counter() - start
    log(f"reproduce: {len(all_specs)} runs in {run_wall:.1f} s; writing figures and the report to {out}")

    from .figures import figures_for_claim

    fig_dir = _report.fresh_figures_dir(out)
    by_claim, i = [], 0
    for claim, specs in plan:
        by_claim.append((claim, results[i:i + len(specs)]))
        i += len(specs)
    pools = _free_run_pools(by_claim)
    entries = []
    for claim, mine in by_claim:
        entry = _report.claim_entry(claim, claim.summarise(mine), mine)
        figs = figures_for_claim(entry, mine, fig_dir, free_runs=pools.get(claim.id))
        entry["figures"] = [{"caption": c, "path": p.relative_to(out).as_posix()} for c, p in figs]
        entries.append(entry)
    config = {
        "command": command or "rtrl reproduce",
        "quick": bool(quick),
        "seeds": seeds,
        "claims": [c.id for c in selected],
        "execution": execution,
        "environment": _environment(),
        "runs": len(all_specs),
        "run_wall_seconds": round(run_wall, 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
    }
    doc = _report.build_document(__version__, config, entries)
    _report.write_json(doc, out / "results.json")
    _report.write_text(_report.render_report(doc), out / "report.md")
    return doc


def _free_run_pools(by_claim) -> dict:
    """claim id -> (stem, runs): runs with a free run (oscillators) pooled over every claim on the same
    task and task parameters, so one figure shows the same wave with and without teacher forcing."""
    pools: dict[tuple, list] = {}
    for claim, rs in by_claim:
        for r in rs:
            if (getattr(r, "extra", None) or {}).get("free_run") is not None:
                pools.setdefault((r.spec.task, r.spec.task_params), []).append((claim.id, r))
    out = {}
    for (task, params), members in pools.items():
        ids = list(dict.fromkeys(cid for cid, _ in members))
        if len(ids) < 2:
            continue  # one claim only: its own figure
        stem = "-".join([task] + [f"{k}-{v}" for k, v in params])
        runs = list({r.spec: r for _, r in members}.values())  # a run shared by two claims counts once
        for cid in ids:
            out[cid] = (stem, runs)
    return out


def make_specs(task, *, params=None, seeds=1, **overrides) -> list:
    """RunSpecs for ``task`` over seeds 0..seeds-1: the task's defaults, with ``overrides`` (None = default).

    ``params`` are the task's own parameters (checked by ``rtrl.tasks.make``); ``overrides`` set
    RunSpec fields such as ``units``, ``learning_rate``, ``teacher_forcing``, ``steps``.
    """
    from .training import RunSpec, make_spec

    seeds = _check_seeds(seeds)
    known = {f.name for f in dataclasses.fields(RunSpec)} - {"task", "seed", "task_params"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a RunSpec field; expected one of {sorted(known)}")
    fields = {k: v for k, v in overrides.items() if v is not None}
    return [make_spec(task, seed=seed, task_params=dict(params or {}), **fields) for seed in range(seeds)]


def run_task(task, out=DEFAULT_RUN_OUT, *, params=None, seeds=5, workers=None, scheduler=None, progress=None,
             command=None, log=None, **overrides) -> dict:
    """Train ``task`` with real-time RTRL over ``seeds`` seeds; write results.json, report.md, figures.

    Returns the document written to ``out/results.json``: ``{"version", "config", "summary", "runs"}``
    where ``summary`` holds runs, successes, success_rate, median_steps (over the runs that learned)
    and median_final_error.
    """
    log = log or (lambda msg: None)
    specs = _validated(make_specs, task, params=params, seeds=seeds, **overrides)
    out = _validated(_report.ensure_writable_dir, out)
    start = time.perf_counter()
    workers = _local_workers(workers, scheduler, len(specs))
    with _validated(Runner, workers=workers, scheduler=scheduler, progress=progress) as runner:
        execution = runner.describe()
        log(f"run: {task}, {len(specs)} seed(s) on {execution['mode']} with {execution['workers']} worker(s)")
        results = runner.map(specs, desc=task)
    from .figures import figures_for_runs

    figs = figures_for_runs(results, _report.fresh_figures_dir(out), task, title=task)
    spec0 = _report.jsonable(specs[0])
    spec0.pop("seed", None)
    config = {"command": command or f"rtrl run {task}", "spec": spec0, "seeds": [s.seed for s in specs],
              "execution": execution, "environment": _environment(),
              "wall_seconds": round(time.perf_counter() - start, 3)}
    summary = _report.summarise_runs(results)
    doc = {"version": __version__, "config": _report.jsonable(config), "summary": _report.jsonable(summary),
           "figures": [{"caption": c, "path": p.relative_to(out).as_posix()} for c, p in figs],
           "runs": [_report.run_dict(r) for r in results]}
    _report.write_json(doc, out / "results.json")
    _report.write_text(_report.render_run_report(doc), out / "report.md")
    return doc
