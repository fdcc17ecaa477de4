"""Learning rules compared on one trajectory: how close each estimate is to the exact gradient, and its cost.

:func:`compare_on_trajectory` runs one rule, the *driver*, that changes the weights after every
step, and every other rule *passively* on the same trajectory: at each step every rule sees the
same weights W(t), the same input and target, and computes its own estimate g_r(t) of
dJ(t)/dW from its own state (each rule's state is advanced by its own equations along the
driver's trajectory). Exact RTRL always runs, passively if it does not drive, so each estimate is
compared with the true gradient g*(t) of that step:

* alignment  cos(g_r, g*) = <g_r, g*> / (|g_r| |g*|)   (1 = the exact direction)
* norm ratio |g_r| / |g*|

on the steps where g* is not zero (a step without targets has no gradient). The cost per step of
each rule is measured separately by timing its compiled loop over the recorded trajectory in one
chunk (weights fixed at their initial values), and its memory is the count of numbers its state
holds (``Rule.numbers``).

:func:`learning_curves_by_rule` lets each rule drive in turn, over several seeds, through the
experiment runner (serial or Dask), and returns the runs for the figures.
"""

from __future__ import annotations

import time

import numpy as np

from .. import api as _api
from .._validation import check_random_state, check_sequences
from ..activations import check_activation
from ..network import init_weights
from ..rules import make as make_rule
from ..tasks import make as make_task

__all__ = ["compare_on_trajectory", "time_rule", "learning_curves_by_rule", "summarise_alignment"]


def _padded(ds, n):
    full = np.full((ds.shape[0], n), np.nan)
    full[:, :ds.shape[1]] = ds
    return full


def _with_seed(spec, seed):
    """A rule from its spec, seeded by ``seed`` if it draws random numbers and no rng was given."""
    rule = make_rule(spec)
    if "rng" in rule.options() and not (isinstance(spec, str) and "rng" in spec):
        rule = make_rule(rule.name, **{**rule.options(), "rng": seed})
    return rule


def compare_on_trajectory(task, rules, *, driver="rtrl", units=None, learning_rate=1.0, steps=5000, seed=0,
                          task_params=None, activation="logistic", teacher_forcing=False, weight_scale=0.1,
                          engine="numba", timing_steps=None):
    """Run ``driver`` on a task's stream and every rule of ``rules`` passively on its trajectory.

    Parameters
    ----------
    task : str
        A task name (``rtrl.tasks.list_tasks()``); its targets go to units 0..k-1.
    rules : list of str or Rule
        The rules to compare (``"uoro"``, ``"snap-1"``, ``"subgroup:4"``, ...). Exact RTRL is
        added as the reference if absent.
    driver : str or Rule
        The rule whose estimates change the weights (real-time, after every step).
    units, learning_rate, steps, seed, task_params, activation, teacher_forcing, weight_scale
        The network and the run; ``units`` defaults to the task's target count + 2.
    engine : {"numba", "numpy"}
        Compiled loops (one call per step) or the NumPy references.
    timing_steps : int, optional
        Steps of the separate timing run of each rule (default ``steps`` within [2000, 20000]; the
        stream is continued when the trajectory is shorter).

    Returns
    -------
    dict with ``"rules"`` (the specs, driver first), ``"alignment"`` and ``"norm_ratio"``
    (T, R) arrays (NaN on steps without a gradient), ``"summary"`` (per rule: mean and
    median alignment, median norm ratio, µs per step, numbers in the state), ``"loss"`` (T,)
    the driver's per-step error, and ``"config"``.
    """
    t = make_task(task, **dict(task_params or {}))
    n = t.n_targets + 2 if units is None else int(units)
    rng = check_random_state(seed)
    seed_int = int(seed) if isinstance(seed, (int, np.integer)) else 0
    drv = _with_seed(driver, seed_int)
    others = [_with_seed(r, seed_int) for r in rules]
    specs = [drv.spec] + [r.spec for r in others if r.spec != drv.spec]
    all_rules = [drv] + [r for r in others if r.spec != drv.spec]
    if "rtrl" not in [r.name for r in all_rules]:
        all_rules.append(make_rule("rtrl"))
        specs.append("rtrl")
    exact_idx = [r.name for r in all_rules].index("rtrl")
    W = init_weights(n, t.n_inputs, scale=weight_scale, rng=rng)
    for r in all_rules:
        r.check(*W.shape)
    tstate = t.reset(rng)
    tstate, xs, ds = t.rollout(tstate, steps, rng)
    seq = check_sequences(W, xs, _padded(ds, n), None, None)
    states = [r.init(W, seq.y0) for r in all_rules]
    R = len(all_rules)
    align = np.full((steps, R), np.nan)
    ratio = np.full((steps, R), np.nan)
    loss = np.zeros(steps)
    kw = dict(activation=activation, teacher_forcing=teacher_forcing)
    check_activation(activation)
    for s in range(steps):
        x1, d1, m1 = seq.xs[s:s + 1], seq.ds[s:s + 1], seq.mask[s:s + 1]
        grads = []
        W_next = W
        for i, r in enumerate(all_rules):
            lr = learning_rate if i == 0 else 0.0
            W_out, states[i], ys, G = _api.run_rule(r, engine, W, states[i], x1, d1, m1, lr=lr, clip=0.0,
                                                    wmask=None, **kw)
            grads.append(G)
            if i == 0:
                W_next = W_out
                e = np.where(m1[0], d1[0] - ys[0], 0.0)
                loss[s] = 0.5 * float(e @ e)
        g_star = grads[exact_idx]
        ns = np.sqrt(np.sum(g_star * g_star))
        if ns > 0:
            for i, g in enumerate(grads):
                ng = np.sqrt(np.sum(g * g))
                ratio[s, i] = ng / ns
                align[s, i] = float(np.sum(g * g_star)) / (ng * ns) if ng > 0 else 0.0
        W = W_next
        if not np.all(np.isfinite(W)):
            raise FloatingPointError(f"compare: the driver {drv.spec!r} diverged at step {s}; lower the learning "
                                     "rate")
    timing_steps = max(2000, min(steps, 20000)) if timing_steps is None else int(timing_steps)
    W0 = init_weights(n, t.n_inputs, scale=weight_scale, rng=check_random_state(seed))
    if timing_steps > steps:  # a short trajectory: time the rules on a longer stretch of the same stream
        _, txs, tds = t.rollout(tstate, timing_steps - steps, rng)
        tseq = check_sequences(W0, np.concatenate([xs, txs]), _padded(np.concatenate([ds, tds]), n), None, None)
    else:
        tseq = seq
    summary = []
    for i, r in enumerate(all_rules):
        a = align[:, i][~np.isnan(align[:, i])]
        q = ratio[:, i][~np.isnan(ratio[:, i])]
        us = time_rule(r, W0, tseq.xs[:timing_steps], tseq.ds[:timing_steps], tseq.mask[:timing_steps],
                       activation=activation, teacher_forcing=teacher_forcing) if engine == "numba" else None
        summary.append({"rule": specs[i], "driver": i == 0, "exact": bool(r.exact), "unbiased": bool(r.unbiased),
                        "mean_alignment": float(a.mean()) if a.size else None,
                        "median_alignment": float(np.median(a)) if a.size else None,
                        "median_norm_ratio": float(np.median(q)) if q.size else None,
                        "us_per_step": us, "numbers": int(r.numbers(n, W.shape[1])),
                        "cost": r.cost, "memory": r.memory, "options": r.options()})
    return {"rules": specs, "alignment": align, "norm_ratio": ratio, "loss": loss, "summary": summary,
            "config": {"task": task, "task_params": dict(task_params or {}), "units": n, "n_inputs": t.n_inputs,
                       "driver": drv.spec, "learning_rate": learning_rate, "steps": steps, "seed": seed_int,
                       "activation": activation, "teacher_forcing": teacher_forcing, "weight_scale": weight_scale,
                       "engine": engine, "timing_steps": timing_steps}}


def time_rule(rule, W, xs, ds, mask, *, activation="logistic", teacher_forcing=False, repeats=3) -> float:
    """µs per step of ``rule``'s compiled loop over one chunk (best of ``repeats``, after a warm-up call)."""
    state = rule.init(W, np.zeros(W.shape[0]))
    args = dict(lr=0.0, activation=activation, teacher_forcing=teacher_forcing, clip=0.0, wmask=None)
    _api.run_rule(rule, "numba", W, state, xs[:2], ds[:2], mask[:2], **args)  # compile / load from cache
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _api.run_rule(rule, "numba", W, state, xs, ds, mask, **args)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / max(1, xs.shape[0])


def summarise_alignment(result, window=None):
    """Rolling mean alignment per rule (for the figure): (steps (L,), values (L, R))."""
    align = result["alignment"]
    T = align.shape[0]
    window = window or max(1, T // 100)
    ends, rows = [], []
    for a in range(0, T, window):
        block = align[a:a + window]
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(block), axis=0)
            sums = np.nansum(block, axis=0)
        rows.append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
        ends.append(min(a + window, T))
    return np.array(ends), np.array(rows)


def learning_curves_by_rule(task, rules, *, seeds=3, units=None, learning_rate=None, steps=None, task_params=None,
                            workers=None, scheduler=None, progress=None):
    """Each rule drives in turn over seeds 0..seeds-1 (the experiment runner); returns {spec: [RunResult]}."""
    from .runner import run_specs
    from .training import make_spec

    overrides = {k: v for k, v in dict(units=units, learning_rate=learning_rate, steps=steps).items()
                 if v is not None}
    specs = []
    for r in rules:
        rule = make_rule(r)
        for seed in range(seeds):
            specs.append(make_spec(task, seed=seed, task_params=dict(task_params or {}), rule=rule.name,
                                   rule_options={k: v for k, v in rule.options().items() if k != "rng"},
                                   **overrides))
    results = run_specs(specs, workers=workers, scheduler=scheduler, progress=progress, desc="rules")
    out = {}
    for spec, res in zip(specs, results):
        label = make_rule(spec.rule, **dict(spec.rule_options)).spec
        out.setdefault(label, []).append(res)
    return out


# -- report: JSON, Markdown, figures --------------------------------------------------------------
def alignment_figure(result, path, title=""):
    """Rolling mean alignment cos(g_rule, g_exact) over the trajectory, one line per rule."""
    from .figures import _colours, _new, _save, _steps
    from matplotlib.ticker import FuncFormatter

    ends, rows = summarise_alignment(result)
    fig, axes = _new(1, 1, size=(7.0, 4.2))
    ax = axes[0, 0]
    colours = _colours(len(result["rules"]))
    for i, spec in enumerate(result["rules"]):
        label = spec + (" (driver)" if i == 0 else "")
        ax.plot(ends, rows[:, i], color=colours[i], lw=1.3, label=label)
    ax.set_xlabel("step of the driver's trajectory")
    ax.set_ylabel("alignment with the exact gradient (cosine, rolling mean)")
    ax.xaxis.set_major_formatter(FuncFormatter(_steps))
    ax.set_ylim(-0.2, 1.05)
    ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax.axhline(0.0, color="grey", lw=0.6, ls=":")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.suptitle(title or "alignment with exact RTRL", fontsize=10)
    return _save(fig, path)


def curves_figure(by_rule, path, title=""):
    """Median learning curve and interquartile band per rule, each rule driving over several seeds.

    A run that learned stops; its curve is held at its last value from there on (stated on the figure).
    """
    from .figures import _colours, _new, _save, _steps
    from matplotlib.ticker import FuncFormatter

    fig, axes = _new(1, 1, size=(7.0, 4.2))
    ax = axes[0, 0]
    colours = _colours(len(by_rule))
    for c, (spec, runs) in enumerate(by_rule.items()):
        curves = [np.asarray(r.curve, dtype=float).reshape(-1, 2) for r in runs if r.curve]
        if not curves:
            continue
        grid = np.unique(np.concatenate([cv[:, 0] for cv in curves]))
        vals = np.array([np.interp(grid, cv[:, 0], cv[:, 1], right=cv[-1, 1]) for cv in curves])
        med = np.median(vals, axis=0)
        lo, hi = np.percentile(vals, 25, axis=0), np.percentile(vals, 75, axis=0)
        learned = sum(bool(r.success) for r in runs)
        ax.plot(grid, med, color=colours[c], lw=1.4, label=f"{spec} ({learned}/{len(runs)} learned)")
        if len(curves) > 1:
            ax.fill_between(grid, lo, hi, color=colours[c], alpha=0.15, lw=0)
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of targeted outputs wrong")
    ax.xaxis.set_major_formatter(FuncFormatter(_steps))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("median and interquartile band over seeds; a run that learned is held at its last value",
                 fontsize=8)
    fig.suptitle(title or "each rule drives", fontsize=10)
    return _save(fig, path)


def _fmt(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown_table(doc) -> str:
    """The comparison as a Markdown table (rule, exactness, alignment, norm ratio, cost, memory, driving runs)."""
    driving = doc.get("driving") or {}
    lines = ["| rule | exact | unbiased | mean alignment | median alignment | median norm ratio | µs / step | "
             "numbers in state | cost | learned when driving | median steps to learn |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for s in doc["summary"]:
        d = driving.get(s["rule"], {})
        rule = s["rule"] + (" (driver)" if s["driver"] else "")
        learned = f"{d['successes']}/{d['runs']}" if d else "—"
        lines.append(f"| {rule} | {'yes' if s['exact'] else 'no'} | {'yes' if s['unbiased'] else 'no'} | "
                     f"{_fmt(s['mean_alignment'])} | {_fmt(s['median_alignment'])} | "
                     f"{_fmt(s['median_norm_ratio'])} | {_fmt(s['us_per_step'], 2)} | {s['numbers']:,} | "
                     f"{s['cost']} | {learned} | {_fmt(d.get('median_steps'))} |")
    return "\n".join(lines)


def render_markdown(doc) -> str:
    cfg = doc["config"]
    params = ", ".join(f"{k}={v}" for k, v in cfg["task_params"].items()) or "defaults"
    head = [f"# Learning rules on one trajectory: {cfg['task']}", "",
            f"Command: `{cfg.get('command', '')}`", "",
            f"Task `{cfg['task']}` ({params}), {cfg['units']} units, {cfg['n_inputs']} input line(s), "
            f"{cfg['activation']} units, teacher forcing {'on' if cfg['teacher_forcing'] else 'off'}. "
            f"The driver `{cfg['driver']}` changes the weights after every step (learning rate "
            f"{cfg['learning_rate']:g}) for {cfg['steps']:,} steps from seed {cfg['seed']}; every other rule "
            "runs passively on the same trajectory and is compared, step by step, with the exact RTRL gradient "
            "of that step: alignment = cosine between the two (1 = exact direction), norm ratio = |estimate| / "
            "|exact| (steps without a target are left out). µs / step: each rule's compiled loop over "
            f"{cfg['timing_steps']:,} steps of the same stream in one chunk, best of 3, measured in this run "
            f"on this machine ({doc['environment']['platform']}). Numbers in state: the memory the rule keeps.",
            ""]
    if doc.get("driving"):
        d = doc["driving_config"]
        head += [f"Learned when driving: each rule trains the network itself (seeds 0..{d['seeds'] - 1}, "
                 "the task's project defaults for steps, learning rate and the success test of `rtrl run`).", ""]
    body = [markdown_table(doc), ""]
    for f in doc.get("figures", []):
        body += [f"![{f['caption']}]({f['path']})", "", f"*{f['caption']}*", ""]
    return "\n".join(head + body)


def run_comparison(task, rules, out, *, driver="rtrl", seeds=0, units=None, learning_rate=None, steps=None,
                   driving_steps=None, task_params=None, seed=0, activation="logistic", teacher_forcing=None,
                   engine="numba", command=None, workers=None, scheduler=None, progress=None, log=None) -> dict:
    """`rtrl compare`: the trajectory comparison, optional driving runs, compare.json, compare.md and figures."""
    from pathlib import Path

    from .pipeline import _environment
    from .report import ensure_writable_dir, fresh_figures_dir, jsonable, write_json, write_text
    from .training import task_defaults

    log = log or (lambda msg: None)
    out = ensure_writable_dir(out)
    fresh_figures_dir(out)
    defaults = task_defaults(task, **dict(task_params or {}))
    units = units if units is not None else max(defaults["units"], make_task(task, **dict(task_params or {}))
                                                .n_targets + 2)
    lr = learning_rate if learning_rate is not None else defaults["learning_rate"]
    tf = defaults["teacher_forcing"] if teacher_forcing is None else bool(teacher_forcing)
    log(f"compare: {task}, {units} units, driver {driver}, rules {', '.join(map(str, rules))}")
    res = compare_on_trajectory(task, rules, driver=driver, units=units, learning_rate=lr,
                                steps=steps or 5000, seed=seed, task_params=task_params, activation=activation,
                                teacher_forcing=tf, engine=engine)
    figs = [("alignment of each rule's estimate with the exact RTRL gradient along the driver's trajectory",
             alignment_figure(res, Path(out) / "figures" / "alignment.png", title=f"{task}: alignment"))]
    doc = {"config": {**res["config"], "command": command or f"rtrl compare {task}"},
           "environment": _environment(), "summary": res["summary"]}
    if seeds:
        log(f"compare: each rule drives over {seeds} seed(s)")
        by_rule = learning_curves_by_rule(task, res["rules"], seeds=seeds, units=units, learning_rate=learning_rate,
                                          steps=driving_steps, task_params=task_params, workers=workers,
                                          scheduler=scheduler, progress=progress)
        doc["driving_config"] = {"seeds": seeds, "units": units, "steps": driving_steps or defaults["steps"]}
        doc["driving"] = {}
        for spec, runs in by_rule.items():
            steps_ok = [r.steps_to_learn for r in runs if r.success and r.steps_to_learn is not None]
            doc["driving"][spec] = {"runs": len(runs), "successes": sum(bool(r.success) for r in runs),
                                    "median_steps": float(np.median(steps_ok)) if steps_ok else None,
                                    "steps_to_learn": [r.steps_to_learn for r in runs]}
        figs.append(("learning curves when each rule drives (median and interquartile band over seeds)",
                     curves_figure(by_rule, Path(out) / "figures" / "learning-curves.png",
                                   title=f"{task}: each rule drives")))
    doc["figures"] = [{"caption": c, "path": p.relative_to(out).as_posix()} for c, p in figs if p is not None]
    doc["alignment_curve"] = [[int(e), *[None if np.isnan(v) else float(v) for v in row]]
                              for e, row in zip(*summarise_alignment(res))]
    write_json(jsonable(doc), Path(out) / "compare.json")
    write_text(render_markdown(doc), Path(out) / "compare.md")
    return doc
