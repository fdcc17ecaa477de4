"""``rtrl tasks``, ``rtrl run`` and ``rtrl reproduce``: argument parsing only.

The work is in :mod:`rtrl.experiments.pipeline` (jobs), :mod:`rtrl.experiments.runner`
(serial / Dask execution), :mod:`rtrl.experiments.report` and :mod:`rtrl.experiments.figures`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys

__all__ = ["add_parser", "parse_param"]

_EPILOG_EXEC = ("Runs execute in parallel on a Dask LocalCluster (one process per core, one thread each) unless "
                "--workers 0 (serial, in this process) or --scheduler ADDRESS (an existing Dask cluster) is given. "
                "Results do not depend on the parallelism.")


def _nonneg_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _pos_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _nonneg_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def parse_param(text: str, defaults: dict | None = None) -> tuple[str, object]:
    """Parse ``key=value`` into ``(key, value)``, typed like the task's default for ``key``.

    Without a default to follow, the value is read as JSON (``3``, ``0.5``, ``true``, ``[1, 2]``) and
    otherwise kept as a string. Raises ValueError with the fix.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--param: expected key=value, got {text!r}")
    raw = raw.strip()
    default = (defaults or {}).get(key)
    try:
        if isinstance(default, bool):
            low = raw.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return key, low in ("true", "1", "yes")
        if isinstance(default, int):
            return key, int(raw)
        if isinstance(default, float):
            return key, float(raw)
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
        raise ValueError(f"--param {key}: expected {kind} (the default is {default!r}), got {raw!r}") from None
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    return key, tuple(value) if isinstance(value, list) else value


def _add_exec_options(p):
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=_nonneg_int, default=None, metavar="N",
                   help="worker processes of the local Dask cluster (default: number of cores); 0 = serial in "
                        "this process; with --scheduler: workers to wait for")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (it is shown on stderr only when stderr is a terminal)")


def _err(cmd, exc) -> int:
    print(f"rtrl {cmd}: error: {exc}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _terminate_cleanly():
    """Turn SIGTERM into SystemExit(143) while a job runs, so its Dask cluster is shut down on the way out."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _command_line(args, names) -> str:
    """The command as resolved by argparse (canonical option order), for the recorded config."""
    words = ["rtrl", args.command] + ([args.task] if getattr(args, "task", None) else [])
    for name in names:
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if value is False and name == "teacher_forcing":
            words.append("--no-teacher-forcing")
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, *value]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


_RUN_OPTS = ("units", "lr", "teacher_forcing", "steps", "seeds", "param", "rule", "rule_option", "out", "workers",
             "scheduler")
_REPRODUCE_OPTS = ("quick", "out", "seeds", "claims", "strict", "workers", "scheduler")


# -- rtrl tasks ---------------------------------------------------------------------------------
def _run_defaults(name) -> dict:
    from .experiments.training import task_defaults

    return {k: v for k, v in task_defaults(name).items() if k != "task_params"}


def _run_defaults_for(name, params) -> dict:
    from .experiments.training import task_defaults

    return {k: v for k, v in task_defaults(name, **params).items() if k != "task_params"}


def _variant_defaults(name) -> list:
    """(label, params) of task variants whose run defaults differ (the oscillator's waves)."""
    if name == "oscillator":
        return [(f"wave={w}", {"wave": w}) for w in ("square", "sine")]
    return []


def cmd_tasks(args) -> int:
    from .tasks import list_tasks

    infos = list_tasks()
    if args.json:
        doc = {name: {"description": info.description, "params": dict(info.params),
                      "defaults": _run_defaults(name),
                      "variants": {label: _run_defaults_for(name, params) for label, params in _variant_defaults(name)}}
               for name, info in infos.items()}
        print(json.dumps(doc, indent=1, default=str))
        return 0
    for name, info in infos.items():
        print(f"{name}")
        print(f"    {info.description}")
        params = ", ".join(f"{k}={v!r}" for k, v in info.params.items()) or "(none)"
        print(f"    params (--param key=value): {params}")
        defaults = ", ".join(f"{k}={v!r}" for k, v in _run_defaults(name).items())
        print(f"    run defaults: {defaults}")
        for label, params in _variant_defaults(name):
            changed = {k: v for k, v in _run_defaults_for(name, params).items() if _run_defaults(name).get(k) != v}
            if changed:
                print(f"    with --param {label}: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))
    return 0


# -- rtrl run -----------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from .experiments import pipeline
    from .experiments.report import run_summary_text
    from .experiments.runner import RunError, WorkerSetupError
    from .tasks import list_tasks

    try:
        info = list_tasks().get(args.task)  # an unknown name is reported by rtrl.tasks.make
        try:
            params = dict(parse_param(p, info.params if info else None) for p in (args.param or []))
        except ValueError as exc:
            raise pipeline.UsageError(str(exc)) from None
        rule_kw = {}
        if args.rule is not None or args.rule_option:
            from .rules import make_from_cli, parse_rule_options

            if args.rule is None:
                raise pipeline.UsageError("--rule-option needs --rule NAME")
            try:
                make_from_cli(args.rule, args.rule_option)  # a clear error before any run starts
            except ValueError as exc:
                raise pipeline.UsageError(str(exc)) from None
            rule_kw = {"rule": args.rule, "rule_options": parse_rule_options(args.rule_option)}
        out = args.out if args.out is not None else f"{pipeline.DEFAULT_RUN_OUT}/{args.task}"
        with _terminate_cleanly():
            doc = pipeline.run_task(args.task, out, params=params, seeds=args.seeds, workers=args.workers,
                                    scheduler=args.scheduler, progress=args.progress, log=_log,
                                    command=_command_line(args, _RUN_OPTS), units=args.units,
                                    learning_rate=args.lr, teacher_forcing=args.teacher_forcing, steps=args.steps,
                                    **rule_kw)
    except (pipeline.UsageError, ConnectionError, TimeoutError) as exc:
        return _err("run", exc)
    except (RunError, WorkerSetupError) as exc:
        print(f"rtrl run: {exc}", file=sys.stderr)
        return 1
    print(run_summary_text(doc))
    print(f"wrote {out}/results.json, {out}/report.md and {len(doc['figures'])} figure(s) in {out}/figures")
    return 0


# -- rtrl reproduce -----------------------------------------------------------------------------
def cmd_reproduce(args) -> int:
    from .experiments import pipeline
    from .experiments.report import summary_table
    from .experiments.runner import RunError, WorkerSetupError

    if args.list_claims:
        from .experiments.claims import CLAIMS

        for claim in CLAIMS:
            quick, full = (len(claim.specs(q)) for q in (True, False))
            print(f"{claim.id}\n    {claim.task}: {claim.claim}\n    paper: {claim.paper}\n"
                  f"    runs: {quick} with --quick, {full} in full")
        return 0
    out = args.out
    try:
        with _terminate_cleanly():
            doc = pipeline.reproduce(out, quick=args.quick, seeds=args.seeds, claims=args.claims,
                                     workers=args.workers, scheduler=args.scheduler, progress=args.progress,
                                     command=_command_line(args, _REPRODUCE_OPTS), log=_log)
    except (pipeline.UsageError, ConnectionError, TimeoutError) as exc:
        return _err("reproduce", exc)
    except (RunError, WorkerSetupError) as exc:
        print(f"rtrl reproduce: {exc}", file=sys.stderr)
        return 1
    print(summary_table(doc))
    print(f"report: {out}/report.md  results: {out}/results.json  "
          f"({doc['config']['runs']} runs, {doc['config']['wall_seconds']:.1f} s)")
    if args.strict and not all(c["holds"] for c in doc["claims"]):
        return 1
    return 0


def add_parser(subparsers) -> None:
    """Add ``tasks``, ``run`` and ``reproduce`` to the ``rtrl`` command."""
    from .experiments.pipeline import DEFAULT_REPRODUCE_OUT, DEFAULT_RUN_OUT

    p = subparsers.add_parser("tasks", help="list the paper's tasks, their parameters and run defaults",
                              description="List the tasks of the paper's section 3, their parameters "
                                          "(set with `rtrl run TASK --param key=value`) and run defaults.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_tasks)

    p = subparsers.add_parser(
        "run", help="train one task with real-time RTRL over several seeds",
        description="Train TASK with real-time RTRL over seeds 0..S-1; print success rate and steps to learn; "
                    "write results.json (resolved config, seeds, version, every run), report.md and figures.",
        epilog=_EPILOG_EXEC)
    p.add_argument("task", metavar="TASK", help="task name (see `rtrl tasks`)")
    p.add_argument("--units", type=_pos_int, default=None, metavar="N", help="number of units (default: the task's)")
    p.add_argument("--lr", type=_nonneg_float, default=None, metavar="A",
                   help="learning rate >= 0 (default: the task's; 0 trains nothing, as in rtrl stream)")
    p.add_argument("--teacher-forcing", action=argparse.BooleanOptionalAction, default=None,
                   help="teacher forcing on/off (default: the task's)")
    p.add_argument("--steps", type=_pos_int, default=None, metavar="T", help="training steps (default: the task's)")
    p.add_argument("--seeds", type=_pos_int, default=5, metavar="S", help="number of seeds, 0..S-1 (default: 5)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="task parameter, e.g. --param delay=3 (one per flag, repeatable)")
    p.add_argument("--rule", default=None, metavar="SPEC",
                   help="learning rule: rtrl (default, exact), hybrid, bptt:H, subgroup:G, snap-1, uoro, kf-rtrl, "
                        "rflo, eprop (see docs/rules.md)")
    p.add_argument("--rule-option", action="append", default=None, metavar="KEY=VALUE",
                   help="an option of the rule, e.g. tau=2 for rflo (repeatable)")
    p.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default: {DEFAULT_RUN_OUT}/TASK)")
    _add_exec_options(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "reproduce", help="run every claim of the paper's experiments; write a report and figures",
        description="Run the paper's experiments (every claim in rtrl.experiments.claims) and write "
                    "DIR/report.md (claims table, details, figures), DIR/results.json and DIR/figures/*.png; "
                    "print the summary table.",
        epilog=_EPILOG_EXEC)
    p.add_argument("--quick", action="store_true", help="fewer seeds per configuration (each claim's quick budget): well under 3 minutes on 2 cores")
    p.add_argument("--out", default=DEFAULT_REPRODUCE_OUT, metavar="DIR",
                   help=f"output folder (default: ./{DEFAULT_REPRODUCE_OUT})")
    p.add_argument("--seeds", type=_pos_int, default=None, metavar="N",
                   help="seeds per configuration, overriding each claim's default")
    p.add_argument("--claims", default=None, metavar="ID,ID",
                   help="run only these claims (comma-separated ids; default: all)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a claim does not hold")
    p.add_argument("--list-claims", action="store_true", help="list the claims (ids for --claims) and exit")
    _add_exec_options(p)
    p.set_defaults(func=cmd_reproduce)
