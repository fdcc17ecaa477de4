"""Speed of every learning rule: µs per real-time step against n, and the cost exponent.

For each rule and size n (m = 2 inputs, logistic units, a target on about half the units at
every step, real-time learning), the compiled loop's µs per step is the difference
``(t(T2) - t(T1)) / (T2 - T1)`` of best-of-repeats timings (``rtrl.bench.per_step_us``), in
this process, with one BLAS thread. The cost exponent of a rule between two sizes a < b is
``log(t_b / t_a) / log(b / a)``. Rules whose step is O(n^4) (exact RTRL) are skipped above
``--max-exact`` units.

With ``--vanilla PATH`` (a checkout of vanilla-rtrl, Marschall, Cho & Savin, JMLR 2020) the
same rules of that library (UORO, KF-RTRL, RFLO) are timed at ``--vanilla-n`` units in the same
run, on the same problem size, and the ratios are printed.

Usage::

    python benchmarks/rules.py --out rules-bench            # all rules, n = 8, 32, 64, 128, 256
    python benchmarks/rules.py --sizes 8 32 --quick         # a quick look

Writes ``rules.json`` and ``rules.md`` to ``--out``. Nothing here is a test; figures are
minima of repeats on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import rtrl  # noqa: E402
from rtrl import rules  # noqa: E402
from rtrl.bench import per_step_us  # noqa: E402

#: (label, spec or callable n -> spec, is the rule O(n^2) per step?)
RULES = [
    ("rtrl", lambda n: "rtrl", False),
    ("hybrid", lambda n: "hybrid", False),
    ("bptt:8", lambda n: "bptt:8", True),
    ("subgroup g=n/4", lambda n: f"subgroup:{max(1, n // 4)}", True),
    ("snap-1", lambda n: "snap-1", True),
    ("snap-2", lambda n: "snap-2", False),
    ("uoro", lambda n: "uoro", True),
    ("kf-rtrl", lambda n: "kf-rtrl", False),
    ("rflo", lambda n: "rflo", True),
    ("eprop", lambda n: "eprop", True),
]
EXACT_N4 = ("rtrl", "snap-2")  # O(n^4) per step: skipped above --max-exact
GOALS = {"O(n^2) rules at n = 32 vs vanilla-rtrl": ">= 10x faster",
         "exponent 64 -> 256, O(n^2) rules": "<= 2.3", "exponent 64 -> 256, kf-rtrl": "<= 3.3"}
#: vanilla-rtrl's per-step figures at n = 32 quoted in issue 8 (measured there on this kind of machine).
VANILLA_QUOTED = {"uoro": 95.0, "kf-rtrl": 117.0, "rflo": 48.0}


def problem(n, m=2, T=4000, seed=0):
    rng = np.random.default_rng(seed)
    W = rtrl.init_weights(n, m, scale=1.0 / math.sqrt(n + m + 1), rng=rng)
    xs = rng.standard_normal((T, m))
    ds = rng.uniform(0.1, 0.9, (T, n))
    ds[rng.random((T, n)) < 0.5] = np.nan
    seq = rtrl._validation.check_sequences(W, xs, ds)
    return seq


def time_rule(spec, n, repeats=3, quick=False):
    rule = rules.make(spec)
    if "rng" in rule.options():
        rule = rules.make(rule.name, **{**rule.options(), "rng": 0})
    seq = problem(n)
    state = rule.init(seq.W, seq.y0)
    big = n >= 128
    T1, T2 = (4, 24) if big else (50, 1000 if quick else 3000)
    if n >= 256:
        T1, T2 = 2, 8

    def run(T):
        rule.run(seq.W, state, seq.xs[:T], seq.ds[:T], seq.mask[:T], lr=0.01)

    return per_step_us(run, T1, T2, repeats=repeats)


def time_vanilla(path, n, m=2, T=300, repeats=3):
    """µs per step of vanilla-rtrl's UORO, KF-RTRL and RFLO at n units (its RNN, tanh, alpha = 1, MSE loss).

    ``path`` is the root of a vanilla-rtrl checkout (it imports its packages from the top level:
    ``core``, ``functions``, ``learning_algorithms``). A step is its forward pass, errors, the
    rule's ``update_learning_vars`` and gradient call, as in its ``Simulation``; no optimizer.
    """
    sys.path.insert(0, str(Path(path).resolve()))
    import core  # noqa: PLC0415  (vanilla-rtrl's packages)
    import functions  # noqa: PLC0415
    import learning_algorithms as la  # noqa: PLC0415

    rng = np.random.default_rng(0)
    n_out = max(1, n // 2)
    W_in = rng.normal(0, 1 / np.sqrt(m), (n, m))
    W_rec = rng.normal(0, 1 / np.sqrt(n), (n, n))
    W_out = rng.normal(0, 1 / np.sqrt(n), (n_out, n))
    net = core.RNN(W_in, W_rec, W_out, np.zeros(n), np.zeros(n_out), activation=functions.tanh, alpha=1,
                   output=functions.identity, loss=functions.mean_squared_error)
    xs = rng.standard_normal((T, m))
    ys = rng.standard_normal((T, n_out))
    makers = {"uoro": lambda: la.UORO(net), "kf-rtrl": lambda: la.KF_RTRL(net), "rflo": lambda: la.RFLO(net, alpha=1)}
    out = {}
    for name, make in makers.items():
        best = float("inf")
        for _ in range(repeats):
            net.reset_network(h=np.zeros(n))
            alg = make()
            t0 = time.perf_counter()
            for t in range(T):
                net.x, net.y = xs[t], ys[t]
                net.next_state(xs[t])
                net.z_out()
                net.y_hat = net.output.f(net.z)
                net.error = net.loss.f_prime(net.z, ys[t])
                alg.update_learning_vars()
                alg()
            best = min(best, time.perf_counter() - t0)
        out[name] = 1e6 * best / T
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 64, 128, 256])
    p.add_argument("--max-exact", type=int, default=128, help="largest n for the O(n^4) rules (default 128)")
    p.add_argument("--quick", action="store_true", help="shorter timing runs")
    p.add_argument("--vanilla", default=None, metavar="PATH", help="a vanilla-rtrl checkout to time beside ours")
    p.add_argument("--vanilla-n", type=int, default=32)
    p.add_argument("--out", default="rules-bench", metavar="DIR")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.sizes):
        p.error("--sizes: every size must be >= 1")
    rows = {}
    for label, spec_of, _ in RULES:
        rows[label] = {}
        for n in args.sizes:
            if label in EXACT_N4 and n > args.max_exact:
                continue
            us = time_rule(spec_of(n), n, quick=args.quick)
            rows[label][n] = us
            print(f"{label:16s} n={n:4d}  {us:12.3f} µs/step", flush=True)
    exps = {}
    for label, per_n in rows.items():
        ns = sorted(per_n)
        pairs = [(a, b) for a, b in ((64, 256), (64, 128), (32, 128)) if a in per_n and b in per_n]
        if pairs:
            a, b = pairs[0]
            exps[label] = {"from": a, "to": b, "exponent": math.log(per_n[b] / per_n[a]) / math.log(b / a)}
        elif len(ns) >= 2:
            a, b = ns[-2], ns[-1]
            exps[label] = {"from": a, "to": b, "exponent": math.log(per_n[b] / per_n[a]) / math.log(b / a)}
    vanilla = None
    if args.vanilla:
        vanilla = {"n": args.vanilla_n, "us_per_step": time_vanilla(args.vanilla, args.vanilla_n), "measured": True}
    doc = {"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
           "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "sizes": args.sizes,
           "us_per_step": {k: {str(n): v for n, v in d.items()} for k, d in rows.items()}, "exponents": exps,
           "vanilla": vanilla, "vanilla_quoted_n32": VANILLA_QUOTED}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    (out / "rules.md").write_text(md + "\n")
    print(md)
    return 0


def markdown(doc) -> str:
    sizes = doc["sizes"]
    lines = ["| rule | " + " | ".join(f"n = {n}" for n in sizes) + " | exponent |",
             "|---|" + "---:|" * (len(sizes) + 1)]
    for label, per_n in doc["us_per_step"].items():
        cells = [f"{per_n[str(n)]:,.2f}" if str(n) in per_n else "—" for n in sizes]
        e = doc["exponents"].get(label)
        ecell = f"{e['exponent']:.2f} ({e['from']}→{e['to']})" if e else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ecell} |")
    lines += ["", "µs per real-time step (compiled loop, m = 2, 1 BLAS thread), "
              f"on {doc['machine']} ({doc['cpus']} CPUs)."]
    ref_src = doc["vanilla"]["us_per_step"] if doc.get("vanilla") else doc["vanilla_quoted_n32"]
    ref_n = doc["vanilla"]["n"] if doc.get("vanilla") else 32
    where = "measured in this run" if doc.get("vanilla") else "quoted from issue 8 (not measured here)"
    if str(ref_n) in doc["sizes"] or ref_n in doc["sizes"]:
        lines += ["", f"Against vanilla-rtrl at n = {ref_n} ({where}):", "",
                  "| rule | vanilla-rtrl µs | rtrl µs | speed-up |", "|---|---:|---:|---:|"]
        for name, v in ref_src.items():
            ours = doc["us_per_step"].get(name, {}).get(str(ref_n))
            if ours:
                lines.append(f"| {name} | {v:,.1f} | {ours:,.2f} | {v / ours:,.0f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
