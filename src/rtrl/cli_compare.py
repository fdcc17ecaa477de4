"""``rtrl compare``: learning rules side by side on one trajectory (argparse only; the work is in
:mod:`rtrl.experiments.compare`)."""

from __future__ import annotations

import argparse
import sys

DEFAULT_RULES = "rtrl,hybrid,bptt:8,subgroup:2,snap-1,uoro,kf-rtrl,rflo,eprop"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare learning rules with exact RTRL on one trajectory (alignment, cost, memory)",
        description="Run the DRIVER rule on TASK (real-time, it changes the weights) and every rule of --rules "
                    "passively on the same trajectory; report each rule's alignment (cosine) and norm ratio "
                    "against the exact RTRL gradient step by step, its µs per step and its memory; with "
                    "--seeds S, each rule also drives in turn over S seeds (learning curves). Writes "
                    "DIR/compare.json, DIR/compare.md and DIR/figures/*.png.")
    p.add_argument("task", metavar="TASK", help="task name (see `rtrl tasks`)")
    p.add_argument("--rules", default=DEFAULT_RULES, metavar="SPEC,SPEC",
                   help=f"rules to compare (default {DEFAULT_RULES})")
    p.add_argument("--driver", default="rtrl", metavar="SPEC", help="the rule that changes the weights (default rtrl)")
    p.add_argument("--units", type=int, default=None, metavar="N", help="units (default: the task's)")
    p.add_argument("--lr", type=float, default=None, metavar="A", help="learning rate (default: the task's)")
    p.add_argument("--steps", type=int, default=5000, metavar="T", help="steps of the trajectory (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trajectory (default 0)")
    p.add_argument("--seeds", type=int, default=0, metavar="S",
                   help="also let each rule drive over seeds 0..S-1 (default 0: off)")
    p.add_argument("--driving-steps", type=int, default=None, metavar="T",
                   help="training steps of each driving run (default: the task's)")
    p.add_argument("--teacher-forcing", action=argparse.BooleanOptionalAction, default=None,
                   help="teacher forcing on/off (default: the task's)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="task parameter (one per flag, repeatable)")
    p.add_argument("--engine", choices=("numba", "numpy"), default="numba",
                   help="numba (compiled loops, default) or numpy (the references); the approximate rules have no JAX "
                        "engine")
    p.add_argument("--out", default="rtrl-compare", metavar="DIR", help="output folder (default rtrl-compare)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="Dask workers for the driving runs")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="an existing Dask scheduler")
    p.set_defaults(func=cmd_compare)


def _fail(message) -> int:
    print(f"rtrl compare: error: {message}", file=sys.stderr)
    return 2


def cmd_compare(args) -> int:
    from .experiments.compare import markdown_table, run_comparison
    from .cli_experiments import parse_param
    from .rules import make
    from .tasks import list_tasks

    for name, value, low in (("--units", args.units, 1), ("--steps", args.steps, 1), ("--seeds", args.seeds, 0),
                             ("--driving-steps", args.driving_steps, 1), ("--workers", args.workers, 1)):
        if value is not None and value < low:
            return _fail(f"{name}: expected an integer >= {low}, got {value}")
    if args.lr is not None and not (args.lr >= 0 and args.lr < float("inf")):
        return _fail(f"--lr: expected a finite number >= 0, got {args.lr}")
    specs = [s.strip() for s in args.rules.split(",") if s.strip()]
    if not specs:
        return _fail("--rules: expected a comma list of rules, e.g. rtrl,uoro,snap-1")
    try:
        for s in [args.driver, *specs]:
            make(s)
        info = list_tasks().get(args.task)
        params = dict(parse_param(p, info.params if info else None) for p in (args.param or []))
        words = ["rtrl", "compare", args.task, "--rules", ",".join(specs), "--driver", args.driver,
                 "--steps", str(args.steps), "--seed", str(args.seed)]
        for flag, v in (("--units", args.units), ("--lr", args.lr), ("--seeds", args.seeds or None),
                        ("--driving-steps", args.driving_steps), ("--out", args.out)):
            if v is not None:
                words += [flag, str(v)]
        doc = run_comparison(args.task, specs, args.out, driver=args.driver, seeds=args.seeds, units=args.units,
                             learning_rate=args.lr, steps=args.steps, driving_steps=args.driving_steps,
                             task_params=params, seed=args.seed, teacher_forcing=args.teacher_forcing,
                             engine=args.engine, command=" ".join(words), workers=args.workers,
                             scheduler=args.scheduler, log=lambda m: print(m, file=sys.stderr))
    except (ValueError, TypeError, FloatingPointError) as exc:
        return _fail(exc)
    print(markdown_table(doc))
    print(f"wrote {args.out}/compare.json, {args.out}/compare.md and {len(doc['figures'])} figure(s)")
    return 0
