"""How the exact paths scale with threads: ``rtrl bench --threads 1 2`` (issue 15).

For each thread count a child process is started with that count fixed before NumPy loads
(``RTRL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``), and
it measures, with the methods of :mod:`rtrl.bench` (m = 2 inputs, logistic units, a target on
about half the units, real-time learning; per-step times are differences of two sequence lengths,
minimum of repeats):

- ``exact``: exact RTRL (the compiled kernel, BLAS product) at each size n;
- ``hybrid``: Schmidhuber's O(n^3) hybrid (default block) at each size;
- ``exact f32``, ``hybrid f32``: the same in float32;
- ``batched n=8``, ``batched n=64``: B = 4 independent streams (microseconds per stream-step).

The parent prints, per path and size, microseconds per step at each thread count, the speed-up
and parallel efficiency against one thread (``t1 / (k * tk)``), and the hybrid/exact ratio at each
count (both measured in the same child); each path is timed after a second of rest (:data:`SETTLE_S`).
``--docs`` writes the table into ``docs/performance.md``
(the generated block ``threads``). Nothing is asserted: the machine may be shared, and the figures
are what this run measured.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["measure", "run", "markdown"]

SIZES = (64, 128)
QUICK_SIZES = (64, 128)
BATCH = 4
#: Seconds of rest before each path is timed: BLAS's worker threads keep spinning for a while after heavy
#: use and would compete with the next path's threads (measured: up to 2x on batched streams right after
#: exact RTRL at n = 128); each path is timed from a quiet start.
SETTLE_S = 1.0
GOALS = {"hybrid / exact at n = 128, every thread count": ">= 10x",
         "batched streams, 2 threads, n = 8 and 64": ">= 80 % efficiency",
         "exact RTRL, 2 threads, n >= 128": ">= 80 % efficiency"}


def measure(sizes=SIZES, quick: bool = False) -> dict[str, Any]:
    """Per-step microseconds of every path at the thread count in force (call in a fresh process)."""
    import numpy as np

    from . import rules
    from .api import init_rule_states
    from .bench import _problem, per_step_us
    from .threads import get_threads

    repeats = 2 if quick else 3
    out: dict[str, Any] = {"threads": get_threads(), "paths": {}}
    for n in sizes:
        for dtype in ("float64", "float32"):
            W, xs, ds, mask = _problem(n, 8 * n + 64)
            W = W.astype(dtype)
            for name in ("rtrl", "hybrid"):
                rule = rules.make(name)
                state0 = rule.init(W, np.zeros(n, dtype))

                def run_T(T, rule=rule, state0=state0, W=W):
                    return rule.run(W, state0, xs[:T], ds[:T], mask[:T], lr=0.01)

                if name == "rtrl":
                    T1, T2 = (2, 6) if n >= 192 else (4, 16 if quick else 24)
                else:
                    h = max(4, n // 2)
                    T1, T2 = h, (3 if quick else 5) * h
                label = ("exact" if name == "rtrl" else "hybrid") + (" f32" if dtype == "float32" else "")
                time.sleep(SETTLE_S)
                out["paths"].setdefault(label, {})[str(n)] = per_step_us(run_T, T1, T2, repeats)
    for n in (8, 64):
        W, xs, ds, mask = _problem(n, 2000 if n == 8 else 64, B=BATCH)
        rule = rules.make("rtrl")
        state0 = init_rule_states(rule, W, np.zeros((BATCH, n)), None)

        def run_B(T, rule=rule, state0=state0, W=W, xs=xs, ds=ds, mask=mask):
            return rule.run(W, state0, xs[:, :T], ds[:, :T], mask[:, :T], lr=0.01)

        T1, T2 = (250, 2000) if n == 8 else (8, 48 if not quick else 24)
        time.sleep(SETTLE_S)
        out["paths"].setdefault(f"batched n={n}", {})[str(BATCH)] = per_step_us(run_B, T1, T2, repeats) / BATCH
    return out


def _child(threads: int, sizes, quick: bool, timeout: float = 1800) -> dict[str, Any]:
    """measure() in a child process whose thread count is fixed before NumPy loads."""
    from .bench import _child_env, _run_json

    code = ("import json, sys\nfrom rtrl.bench_threads import measure\n"
            "print(json.dumps(measure(tuple(int(v) for v in sys.argv[2:]), sys.argv[1] == '1')))")
    return _run_json(code, ["1" if quick else "0", *sizes], _child_env(threads, {"RTRL_NUM_THREADS": str(threads)}),
                     timeout=timeout)


def run(threads=(1, 2), sizes=None, quick: bool = False, log=print) -> dict[str, Any]:
    """Measure every thread count in its own child; return the combined results."""
    from ._version import __version__
    from .bench import _cpu_name, _loadavg

    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    res: dict[str, Any] = {"meta": {"version": __version__, "cpu": _cpu_name(), "cores": os.cpu_count(),
                                    "python": platform.python_version(), "sizes": list(sizes),
                                    "threads": list(threads), "quick": quick, "loadavg": _loadavg(),
                                    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())},
                           "runs": {}}
    for k in threads:
        log(f"measuring with {k} thread(s) ...")
        res["runs"][str(k)] = _child(k, sizes, quick)["paths"]
    res["meta"]["loadavg_end"] = _loadavg()
    return res


def markdown(res: dict[str, Any], command: str = "rtrl bench --threads 1 2") -> str:
    threads = [str(k) for k in res["meta"]["threads"]]
    runs = res["runs"]
    paths = list(runs[threads[0]])
    lines = [f"`{command}` ({res['meta']['cpu']}, Python {res['meta']['python']}; load average "
             f"{res['meta']['loadavg']} at the start, {res['meta']['loadavg_end']} at the end). Microseconds per "
             "step (batched: per stream-step); speed-up and efficiency against 1 thread.", "",
             "| path | n | " + " | ".join(f"{k} thr" for k in threads)
             + "".join(f" | speed-up {k} | efficiency {k}" for k in threads[1:]) + " |",
             "|---|---:|" + "---:|" * len(threads) + "---:|---:|" * len(threads[1:])]
    for path in paths:
        for size in runs[threads[0]][path]:
            t = [runs[k][path][size] for k in threads]
            label = size if not path.startswith("batched") else f"{path.split('=')[1]} (B = {size})"
            row = f"| {path.split(' n=')[0]} | {label} | " + " | ".join(f"{v:,.1f}" for v in t)
            for k, v in zip(threads[1:], t[1:]):
                row += f" | {t[0] / v:.2f}x | {t[0] / (int(k) * v):.0%}"
            lines.append(row + " |")
    lines += ["", "Hybrid / exact RTRL (both measured in the same child):", "",
              "| n | dtype | " + " | ".join(f"{k} thr" for k in threads) + " |", "|---:|---|" + "---:|" * len(threads)]
    for dtype, suffix in (("float64", ""), ("float32", " f32")):
        for size in runs[threads[0]].get("exact" + suffix, {}):
            ratios = [runs[k]["exact" + suffix][size] / runs[k]["hybrid" + suffix][size] for k in threads]
            lines.append(f"| {size} | {dtype} | " + " | ".join(f"{r:.1f}x" for r in ratios) + " |")
    lines += ["", "Goals (issue 15): " + "; ".join(f"{k}: {v}" for k, v in GOALS.items()) + "."]
    return "\n".join(lines) + "\n"


def write_docs(md: str, path) -> None:
    import re

    text = Path(path).read_text()
    pattern = re.compile(r"(<!-- generated:threads -->\n).*?(<!-- /generated:threads -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no generated block 'threads'")
    Path(path).write_text(pattern.sub(lambda m: m.group(1) + md + m.group(2), text))
