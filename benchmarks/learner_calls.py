"""What one call of the online learner costs from Python, against the same work inside a compiled chunk.

For a network of n units and m = 2 inputs (logistic units but unit 0 linear, a target on unit 0
at every step, exact RTRL), this measures, in one run and one process:

- ``step`` -- ``OnlineLearner.step(x, target)`` with SGD (the fast one-call path), per call;
- ``step, no target`` -- ``step(x)``;
- ``chunk`` -- the same steps inside ``partial_fit`` over a long chunk, per step (the kernel's own
  cost: the floor a call from Python can approach);
- ``step, adam`` -- ``step`` with ``optimizer="adam"`` (the rule runs with its update off, then the
  optimizer's compiled update);
- ``partial_fit, adam`` -- per step, inside a chunk;
- ``predict`` and ``forward`` -- one row per call, and per step inside a chunk (no sensitivities:
  O(n K) per step).

Every figure is the minimum over ``--repeats`` of a timed loop of ``--calls`` calls; one BLAS
thread. Usage::

    python benchmarks/learner_calls.py                  # n = 8 (the issue's size) and n = 32
    python benchmarks/learner_calls.py --sizes 8 --json out.json
    python benchmarks/learner_calls.py --docs           # also rewrite the table in docs/performance.md

Nothing here is a test: the figures are minima on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import rtrl  # noqa: E402

GOAL_US = 3.0  # issue 10: OnlineLearner.step from Python at n = 8


def _best(fn, calls, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(calls)
        best = min(best, time.perf_counter() - t0)
    return best / calls * 1e6


def measure(n, m=2, calls=20000, repeats=5):
    rng = np.random.default_rng(0)
    T = calls
    xs = rng.standard_normal((T, m)) * 0.5
    ds = np.full((T, n), np.nan)
    ds[:, 0] = 0.3 * xs[:, 0]
    act = ["linear"] + ["logistic"] * (n - 1)

    def learner(**kw):
        net = rtrl.OnlineLearner(n, m, learning_rate=0.01, activation=act, rng=1, **kw)
        net.partial_fit(xs[:10], ds[:10])  # compile
        for t in range(10):
            net.step(xs[t], ds[t])
        return net

    rows = {}
    net = learner()

    def steps(k, net=net):
        step = net.step
        for t in range(k):
            step(xs[t], ds[t])
    rows["step"] = _best(steps, calls, repeats)

    def steps_nt(k, net=net):
        step = net.step
        for t in range(k):
            step(xs[t])
    rows["step, no target"] = _best(steps_nt, calls, repeats)
    chunk_net = learner()
    rows["chunk"] = _best(lambda k: chunk_net.partial_fit(xs[:k], ds[:k]), calls, repeats)
    adam = learner(optimizer="adam")
    short = max(calls // 4, 1000)

    def steps_adam(k, net=adam):
        for t in range(k):
            net.step(xs[t], ds[t])
    rows["step, adam"] = _best(steps_adam, short, repeats)
    rows["partial_fit, adam"] = _best(lambda k: adam.partial_fit(xs[:k], ds[:k]), short, repeats)
    one = [xs[t:t + 1] for t in range(calls)]

    def predicts(k, net=net):
        for t in range(k):
            net.predict(one[t])
    rows["predict, one row"] = _best(predicts, calls, repeats)
    rows["predict, in a chunk"] = _best(lambda k: net.predict(xs[:k]), calls, repeats)
    fwd = learner()

    def forwards(k, net=fwd):
        for t in range(k):
            net.forward(one[t])
    rows["forward, one row"] = _best(forwards, calls, repeats)
    return rows


def markdown(out, command) -> str:
    sizes = list(out["sizes"])
    rows = list(out["sizes"][sizes[0]])
    lines = [f"`{command}` ({out['machine']}; minimum of repeats, microseconds per call or per step):", "",
             "| call | " + " | ".join(f"n = {n}" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(f"{out['sizes'][n][r]:.2f}" for n in sizes) + " |")
    lines.append("| step / chunk | " + " | ".join(f"{out['sizes'][n]['step'] / out['sizes'][n]['chunk']:.1f}x"
                                              for n in sizes) + " |")
    if 8 in out["sizes"]:
        us = out["sizes"][8]["step"]
        lines += ["", f"Goal of issue 10, `OnlineLearner.step` <= {GOAL_US:g} us at n = 8: "
                  f"{'met' if us <= GOAL_US else 'not met'} ({us:.2f} us)."]
    return "\n".join(lines) + "\n"


def write_docs(text, path):
    doc = Path(path).read_text()
    pattern = re.compile(r"(<!-- generated:learner-calls -->\n).*?(<!-- /generated:learner-calls -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no block 'learner-calls'")
    Path(path).write_text(pattern.sub(lambda m: m.group(1) + text + m.group(2), doc))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--docs", nargs="?", const=str(Path(__file__).resolve().parents[1] / "docs" / "performance.md"),
                    metavar="PATH", help="rewrite the generated block 'learner-calls' of PATH (docs/performance.md)")
    args = ap.parse_args(argv)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, one BLAS thread"
    print(f"# OnlineLearner calls from Python ({machine}); microseconds, minimum of {args.repeats} repeats")
    out = {"machine": machine, "goal_step_us_at_n8": GOAL_US, "sizes": {}}
    for n in args.sizes:
        rows = measure(n, calls=args.calls, repeats=args.repeats)
        out["sizes"][n] = rows
        print(f"\nn = {n}")
        for name, us in rows.items():
            print(f"  {name:22s} {us:9.3f} us")
        print(f"  step / chunk          {rows['step'] / rows['chunk']:9.2f} x")
        if n == 8:
            ok = "met" if rows["step"] <= GOAL_US else "NOT met"
            print(f"  goal: step <= {GOAL_US} us at n = 8: {ok} ({rows['step']:.2f} us)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.docs:
        command = "python benchmarks/learner_calls.py" + ("" if argv is None else " " + " ".join(argv))
        write_docs(markdown(out, command), args.docs)
        print(f"wrote the table into {args.docs}")


if __name__ == "__main__":
    main()
