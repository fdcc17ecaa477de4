"""The record of an experiment: ``results.json``, ``report.md`` and the stdout summary.

Everything here is a pure function of the claims, the runs' results and the resolved
configuration, apart from the two ``write_*`` helpers. ``results.json`` has the shape::

    {"version": "0.1.0",
     "config": {... resolved settings, seeds, execution, wall_seconds ...},
     "claims": [{"id", "task", "claim", "paper", "measured", "holds", "seeds",
                 "successes", "median_steps", "table", "seconds", "figures", "runs"}]}

NOTE: JSON has no NaN or infinity; non-finite floats are written as ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["jsonable", "run_dict", "summarise_runs", "group_by_config", "claim_entry", "build_document",
           "render_report", "summary_table", "ensure_writable_dir", "dumps", "write_json", "write_text",
           "render_run_report", "run_summary_text", "CLAIM_KEYS"]

#: The keys every entry of ``results.json["claims"]`` carries (more may follow).
CLAIM_KEYS = ("id", "task", "claim", "paper", "measured", "holds", "seeds", "successes", "median_steps")


# -- plain data --------------------------------------------------------------------------------
def jsonable(obj):
    """Convert results into JSON-ready Python: dataclasses, NumPy scalars/arrays, tuples, NaN -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def run_dict(result) -> dict:
    """One run as plain data (its spec, outcome, curve, extras and seconds)."""
    return jsonable(result)


def _spec_dict(spec) -> dict:
    d = spec.to_dict() if hasattr(spec, "to_dict") else dataclasses.asdict(spec)
    return jsonable(d)


def summarise_runs(results) -> dict:
    """Success rate and medians over runs (used by ``rtrl run`` and for per-config detail rows).

    ``median_steps`` is the median steps-to-learn over the *successful* runs (None when no run
    learned); ``median_final_error`` over all runs.
    """
    results = list(results)
    wins = [r for r in results if r.success]
    steps = [r.steps_to_learn for r in wins if r.steps_to_learn is not None]
    errors = [float(r.final_error) for r in results if r.final_error is not None and math.isfinite(r.final_error)]
    return {
        "runs": len(results),
        "successes": len(wins),
        "success_rate": (len(wins) / len(results)) if results else None,
        "median_steps": statistics.median(steps) if steps else None,
        "median_final_error": statistics.median(errors) if errors else None,
        "seeds": sorted({r.spec.seed for r in results}),
    }


def _config_key(spec) -> tuple:
    d = _spec_dict(spec)
    d.pop("seed", None)
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in d.items()))


def group_by_config(results) -> list[tuple[dict, list]]:
    """Group runs whose specs differ only in the seed: ``[(config dict without seed, [results])]``.

    Groups keep the order in which their first run appears.
    """
    groups: dict[tuple, tuple[dict, list]] = {}
    for r in results:
        key = _config_key(r.spec)
        if key not in groups:
            d = _spec_dict(r.spec)
            d.pop("seed", None)
            groups[key] = (d, [])
        groups[key][1].append(r)
    return list(groups.values())


def claim_entry(claim, summary: dict, results, *, figures=()) -> dict:
    """One element of ``results.json["claims"]``: the claim, the verdict and every run."""
    missing = [k for k in ("measured", "holds", "seeds", "successes", "median_steps") if k not in summary]
    if missing:
        raise ValueError(f"summary of claim {claim.id!r}: expected keys {missing} from Claim.summarise, got "
                         f"{sorted(summary)}")
    entry = {
        "id": claim.id,
        "task": claim.task,
        "claim": claim.claim,
        "paper": claim.paper,
        "measured": str(summary["measured"]),
        "holds": bool(summary["holds"]),
        "seeds": jsonable(summary["seeds"]),
        "successes": jsonable(summary["successes"]),
        "median_steps": jsonable(summary["median_steps"]),
        "table": jsonable(summary.get("table", [])),
    }
    extra = {k: v for k, v in summary.items() if k not in entry}
    if extra:
        entry["summary_extra"] = jsonable(extra)
    entry["seconds"] = round(float(sum(getattr(r, "seconds", 0.0) or 0.0 for r in results)), 3)
    entry["figures"] = [{"caption": c, "path": p} for c, p in figures]
    entry["configs"] = [dict(config=cfg, **{k: v for k, v in summarise_runs(rs).items() if k != "seeds"})
                        for cfg, rs in group_by_config(results)]
    entry["configs"] = jsonable(entry["configs"])
    entry["runs"] = [run_dict(r) for r in results]
    return entry


def build_document(version: str, config: dict, claims: list[dict]) -> dict:
    """The whole ``results.json`` document."""
    return {"version": version, "config": jsonable(config), "claims": claims}


# -- rendering -----------------------------------------------------------------------------------
def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if isinstance(value, list):
        return f"{len(value)}" if len(value) > 6 else ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict], columns=None) -> str:
    if not rows:
        return "_(no rows)_\n"
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _config_label(cfg: dict) -> str:
    """A short label for a run configuration (the spec without the seed)."""
    parts = []
    for k, v in cfg.items():
        if k == "task":
            continue
        if k == "task_params":
            items = v.items() if isinstance(v, dict) else (v or [])
            parts += [f"{a}={b}" for a, b in items]
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def _varying_keys(configs: list[dict]) -> list[str]:
    flat = [_flat_config(c) for c in configs]
    keys = list(flat[0]) if flat else []
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


def _flat_config(cfg: dict) -> dict:
    out: dict = {}
    for k, v in cfg.items():
        if k == "task_params":
            out.update(v.items() if isinstance(v, dict) else (v or []))
        elif k != "task":
            out[k] = v
    return out


def _execution_text(ex: dict) -> str:
    if ex.get("mode") == "serial":
        return "serially in one process"
    where = f"the Dask scheduler {ex['scheduler']}" if ex.get("scheduler") else "a local Dask cluster"
    return f"on {where} ({ex.get('workers', '?')} workers)"


#: The plain-words introduction of every report.md (before the claims table).
READER_INTRO = """## How to read this report

**The network.** Williams & Zipser (1989) train a *fully recurrent* network: n units, each connected to
every unit (itself included), to the external input lines and to a bias line. At every step each unit
computes y_k(t+1) = f(sum_j w_kj z_j(t)) from z(t) = [inputs x(t), 1, all outputs y(t)] with the logistic
f; any unit may be given a target at any step, and units without targets are "hidden". Real-time
recurrent learning (RTRL) carries forward the exact derivatives of every output with respect to every
weight, so the weights can change after every step while the network runs. Here the task's targets go to
units 0..k-1; the rest are hidden.

**Teacher forcing.** With teacher forcing, a unit that has a target feeds the *target* (not its own
output) into the next step; the paper found it necessary for the oscillators. Claims say whether it is on.

**What "learned" means.** A run trains on a fresh stream of the task. Once the last *window* training
steps (5,000 for most tasks) had every targeted output right (on the right side of 0.5; within 0.1 for
the sine and the add task), the network is *tested* from where it stands, with learning and teacher
forcing switched off, on fresh steps it has not seen: every targeted output of the test must be right.
For the oscillators the test is a *free run* (no inputs, no forcing) that must stay on the wave; for the
Turing machine it is a *closed loop*: the network's own actions write on the tape and move the head, on
new strings up to twice as long as in training, and a string passes only if every action and the
verdict are right. A run that does not pass within its step budget has not learned.

**Steps to learn** counts the training steps before the error-free window that preceded the passed test
(so it does not include the window itself).

**Our choices.** The paper gives no learning rates, weight ranges, stopping rules, run counts or input
encodings. Everything of that kind here is a project default, chosen by the sweeps in
docs/experiments.md, and the same for every seed: weights start uniform in (-0.1, 0.1), targets are
0.1/0.9 rather than 0/1 (logistic units cannot reach 0 or 1), and each claim's settings are listed with
it. Where a claim does not hold, the table says so; the details below each claim show the runs.

"""


def render_report(doc: dict) -> str:
    """``report.md``: the summary table, then per claim its detail tables and figures."""
    cfg = doc["config"]
    ex = cfg.get("execution", {})
    out = ["# rtrl reproduce: Williams & Zipser (1989), section 3\n\n",
           f"rtrl {doc['version']}; mode: {'quick' if cfg.get('quick') else 'full'}; "
           f"seeds per configuration: {cfg.get('seeds') if cfg.get('seeds') is not None else 'each claim default'}; "
           f"{cfg.get('runs', '?')} runs {_execution_text(ex)}; "
           f"wall time {cfg.get('wall_seconds', 0):.1f} s.\n\n",
           f"Command: `{cfg.get('command', 'rtrl reproduce')}`. Every run's spec (task, parameters, units, "
           "learning rate, teacher forcing, steps, seed) and outcome are in `results.json`. Learning rates, "
           "weight ranges, stopping rules and run counts are project defaults (the paper gives none); "
           "see docs/experiments.md.\n\n",
           READER_INTRO,
           "## Summary\n\n"]
    rows = [{"claim": f"[{c['id']}](#{c['id']}): {c['claim']}", "task": c["task"], "the paper says": c["paper"],
             "we measured": c["measured"], "holds": c["holds"]} for c in doc["claims"]]
    out.append(_md_table(rows))
    held = sum(c["holds"] for c in doc["claims"])
    out.append(f"\n{held} of {len(doc['claims'])} claims hold.\n")
    for c in doc["claims"]:
        out.append(f'\n<a id="{c["id"]}"></a>\n\n## {c["id"]}\n\n')
        out.append(f"**Claim** ({c['task']}): {c['claim']}\n\n**Paper:** {c['paper']}\n\n"
                   f"**Measured:** {c['measured']}\n\n**Holds:** {_cell(c['holds'])}\n\n"
                   f"Seeds: {_cell(c['seeds'])}; successes: {_cell(c['successes'])}; median steps to learn: "
                   f"{_cell(c['median_steps'])}; summed run time {c.get('seconds', 0):.1f} s.\n")
        if c.get("table"):
            out.append("\n" + _md_table(c["table"]))
        configs = c.get("configs") or []
        if configs:
            keys = _varying_keys([g["config"] for g in configs])
            shared = {k: v for k, v in _flat_config(configs[0]["config"]).items() if k not in keys}
            out.append("\nSettings shared by all runs: " + ", ".join(f"{k}={v}" for k, v in shared.items()) + ".\n")
            if len(configs) > 1 and len(c.get("table") or []) != len(configs):  # else the claim's table says it
                out.append("\nPer configuration:\n\n")
                cfg_rows = [{**{k: _flat_config(g["config"]).get(k) for k in keys}, "runs": g["runs"],
                             "successes": g["successes"], "median steps": g["median_steps"],
                             "median final error": g["median_final_error"]} for g in configs]
                out.append(_md_table(cfg_rows))
        for fig in c.get("figures", []):
            out.append(f"\n![{fig['caption']}]({fig['path']})\n\n_{fig['caption']}_\n")
    return "".join(out)


def summary_table(doc: dict, width: int = 120) -> str:
    """A plain-text table for the terminal: id, holds, what we measured."""
    claims = doc["claims"]
    w_id = max([len("claim")] + [len(c["id"]) for c in claims])
    lines = [f"{'claim':<{w_id}}  holds  measured", f"{'-' * w_id}  -----  {'-' * 8}"]
    for c in claims:
        measured = c["measured"] if len(c["measured"]) <= width else c["measured"][: width - 3] + "..."
        lines.append(f"{c['id']:<{w_id}}  {'yes' if c['holds'] else 'NO':<5}  {measured}")
    held = sum(c["holds"] for c in claims)
    lines.append(f"{held}/{len(claims)} claims hold")
    return "\n".join(lines)


# -- files ------------------------------------------------------------------------------------
def ensure_writable_dir(path) -> Path:
    """Create ``path`` (and parents) if needed and prove a file can be written there.

    Raises
    ------
    ValueError
        If the path is a file, cannot be created, or is not writable, with what to do.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out: expected a directory, got the existing file {str(path)!r}; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".rtrl-write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ValueError(f"out: cannot write to {str(path)!r} ({exc.strerror or exc}); choose a writable --out "
                         "directory") from None
    return path


def fresh_figures_dir(out) -> Path:
    """``out/figures``, created, with the PNGs of an earlier report in it removed.

    NOTE: a report owns the PNG files of its ``figures`` folder: a rerun into the same ``--out``
    would otherwise leave figures of configurations the new run does not have beside its own.
    Nothing else in the folder is touched.
    """
    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


def _is_flat(value) -> bool:
    """A list of scalars, or of short lists of scalars (a curve): written on one line."""
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, list) and all(
        isinstance(v, scalar) or (isinstance(v, list) and len(v) <= 4 and all(isinstance(x, scalar) for x in v))
        for v in value)


def dumps(doc, indent: int = 1, _level: int = 0) -> str:
    """JSON with one key per line but every flat list (curves, free runs) on a single line; strict (no NaN)."""
    pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    if isinstance(doc, dict) and doc:
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent, _level + 1)}" for k, v in doc.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(doc, list) and doc and not _is_flat(doc):
        return "[\n" + ",\n".join(inner + dumps(v, indent, _level + 1) for v in doc) + "\n" + pad + "]"
    return json.dumps(doc, allow_nan=False, separators=(", ", ": "))


def write_json(doc: dict, path) -> None:
    """Write ``doc`` as strict JSON (see :func:`dumps`)."""
    Path(path).write_text(dumps(doc) + "\n", encoding="utf-8")


def write_text(text: str, path) -> None:
    Path(path).write_text(text, encoding="utf-8")


# -- one task (rtrl run) -------------------------------------------------------------------------
def run_summary_text(doc: dict) -> str:
    """The terminal summary of ``rtrl run``: configuration, success rate, steps to learn."""
    s, cfg = doc["summary"], doc["config"]
    lines = [f"task {cfg['spec'].get('task')}: {_config_label(cfg['spec'])}",
             f"success rate    {s['successes']}/{s['runs']} = {_cell(s['success_rate'])}",
             f"median steps to learn (successful runs)  {_cell(s['median_steps'])}",
             f"median final error  {_cell(s['median_final_error'])}"]
    per_seed = ", ".join(f"{r['spec']['seed']}:{r['steps_to_learn'] if r['success'] else 'no'}" for r in doc["runs"])
    lines.append(f"steps to learn by seed  {per_seed}")
    return "\n".join(lines)


def render_run_report(doc: dict) -> str:
    """``report.md`` for ``rtrl run``: configuration, outcome per seed, figures."""
    cfg = doc["config"]
    out = [f"# rtrl run: {cfg['spec'].get('task')}\n\n",
           f"rtrl {doc['version']}; command: `{cfg['command']}`; {len(doc['runs'])} runs "
           f"{_execution_text(cfg['execution'])}; wall time {cfg['wall_seconds']:.1f} s.\n\n",
           f"Configuration: {_config_label(cfg['spec'])}\n\n",
           "```\n" + run_summary_text(doc) + "\n```\n\n",
           _md_table([{"seed": r["spec"]["seed"], "learned": r["success"], "steps to learn": r["steps_to_learn"],
                       "final error": r["final_error"], "seconds": r.get("seconds")} for r in doc["runs"]])]
    for fig in doc.get("figures", []):
        out.append(f"\n![{fig['caption']}]({fig['path']})\n\n_{fig['caption']}_\n")
    return "".join(out)
