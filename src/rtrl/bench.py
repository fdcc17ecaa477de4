"""Speed and memory benchmarks of the RTRL engines (``rtrl bench``).

What is measured (m = 2 inputs, logistic units, real-time learning with a target on
about half the units at every step):

* microseconds per real-time step for the NumPy reference, the compiled kernel (the
  regime ``kernel="auto"`` picks), Schmidhuber's hybrid, and epochwise BPTT (NumPy,
  weights fixed), at each size n; each also as a ratio to a plain NumPy product of the
  step's shape (n x n) . (n x nK), timed in the same run;
* that the hybrid's weight trajectory equals RTRL's (relative difference of final W);
* batched throughput: microseconds per stream-step for many independent streams;
* compile time of the first call in a new process with an empty Numba cache, and the
  load time from the cache in another new process;
* peak resident memory against sequence length for real-time RTRL (a stream consumed in
  chunks: flat) and epochwise BPTT (the whole trajectory stored: growing), with a plot.

Per-step times are differences ``(t(T2) - t(T1)) / (T2 - T1)`` of the minimum over
repeats, which removes the fixed cost of a call (allocation, first touch of buffers).
Timing runs in a child process with ``OPENBLAS_NUM_THREADS`` (and friends) set to
``--threads`` (default 1), so every figure, the plain product included, uses the same
BLAS threads. The machine may be shared: figures are minima of repeats and are noisy.

Nothing here is a test: no figure is asserted; the targets table says met or missed.

``--engine jax`` measures the JAX engine instead (:mod:`rtrl.jax_bench`: RTRL and the hybrid
against a plain product of the same shape on the same device(s), n = 128 ... 2048 on an
accelerator, 64 and 128 beside the Numba engine on a CPU), written to ``bench-jax.json`` and
``bench-jax.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_benchmarks", "targets_table", "markdown_report", "add_parser", "main"]

SIZES = (3, 8, 16, 32, 64, 128)
QUICK_SIZES = (3, 8, 16, 32, 64, 128)
_CHILD_ENV = "RTRL_BENCH_CHILD"
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# ----------------------------------------------------------------------------------- timing
def _min_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def per_step_us(run_T, T1, T2, repeats=3):
    """Microseconds per step from the difference of two sequence lengths (min over repeats)."""
    run_T(min(T1, 4))  # warm-up (compilation, caches)
    t1 = _min_time(lambda: run_T(T1), repeats)
    t2 = _min_time(lambda: run_T(T2), repeats)
    return max(t2 - t1, 1e-12) / (T2 - T1) * 1e6


def _calibrate(run_T, target_s, T_min=4, T_max=2_000_000):
    """Largest power-of-two T (>= T_min) whose run takes about target_s."""
    run_T(T_min)
    T = T_min
    while T < T_max:
        dt = _min_time(lambda: run_T(T), 1)
        if dt > target_s / 2:
            break
        T *= 2
    return T


def _problem(n, T, m=2, seed=0, B=None):
    import numpy as np

    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    K = m + 1 + n
    W = rng.uniform(-1.0, 1.0, size=lead + (n, K)) / np.sqrt(K)
    xs = rng.integers(0, 2, size=lead + (T, m)).astype(np.float64)
    ds = rng.uniform(0.1, 0.9, size=lead + (T, n))
    mask = rng.random(lead + (T, n)) < 0.5
    return W, xs, np.where(mask, ds, 0.0), mask


def bench_steps(sizes, quick=False, log=print):
    """Per-step times of every engine at each size, with the plain product in the same run."""
    import numpy as np

    from . import bptt as _bptt
    from . import reference
    from .hybrid import default_block, hybrid_run_kernel
    from .kernels import choose_blas, rtrl_run_kernel

    lr = 0.01
    target_s = 0.05 if quick else 0.2
    repeats = 3 if quick else 5
    rows = []
    for n in sizes:
        m = 2
        K = m + 1 + n
        T_big = 4096
        W, xs, ds, mask = _problem(n, T_big if n <= 32 else 1024)
        y0, P0 = np.zeros(n), np.zeros((n, n, K))
        row = {"n": n, "m": m, "K": K}

        # plain NumPy product of the step's shape, (n x n) . (n x nK)
        A = np.random.default_rng(1).standard_normal((n, n))
        Bm = np.random.default_rng(2).standard_normal((n, n * K))
        out = np.empty((n, n * K))
        reps = max(1, int(2e7 / (2 * n * n * n * K) + 1))
        prod = _min_time(lambda: [np.dot(A, Bm, out) for _ in range(reps)], repeats) / reps * 1e6
        row["product_us"] = prod

        use_blas = choose_blas(n)
        row["kernel"] = "blas" if use_blas else "loops"

        def compiled(T):
            return rtrl_run_kernel(W, y0, P0, xs[:T], ds[:T], mask[:T], lr, np.zeros(n, np.int64), False, use_blas, 0.0)

        T2 = min(_calibrate(compiled, target_s, T_max=xs.shape[0]), xs.shape[0])
        T2 = max(T2, 8)
        row["compiled_us"] = per_step_us(compiled, T2 // 4, T2, repeats)

        h = default_block(n)
        row["block"] = h

        def hybrid(T):
            return hybrid_run_kernel(W, y0, P0, xs[:T], ds[:T], mask[:T], lr, np.zeros(n, np.int64), False, h, 0.0)

        Th2 = max(_calibrate(hybrid, target_s, T_min=h, T_max=xs.shape[0]), 4 * h)
        Th2 = min(Th2, xs.shape[0])
        Th1 = max(h, (Th2 // 4 // h) * h)
        row["hybrid_us"] = per_step_us(hybrid, Th1, Th2, repeats)
        # same weights: real-time RTRL and the hybrid over the same stream
        Tm = min(xs.shape[0], max(2 * h + 7, 64))
        Wr = compiled(Tm)[0]
        Wh = hybrid(Tm)[0]
        row["hybrid_rel_diff_W"] = float(np.max(np.abs(Wh - Wr)) / np.max(np.abs(Wr)))
        row["hybrid_match_steps"] = Tm

        flops = 2 * n ** 3 * K  # per step of the reference
        Tr = max(4, min(100, int(1e8 / flops + 4))) if quick else max(4, min(400, int(4e8 / flops + 4)))

        def numpy_ref(T):
            return reference.rtrl_run(W, y0, P0, xs[:T], ds[:T], mask[:T], learning_rate=lr)

        row["numpy_us"] = _min_time(lambda: numpy_ref(Tr), 1 if n >= 64 else repeats) / Tr * 1e6
        row["numpy_steps"] = Tr

        Tb = 2000 if quick else 10000

        def bptt(T):
            return _bptt.bptt_gradient(W, xs[:T], ds[:T], mask[:T], y0)

        row["bptt_us"] = _min_time(lambda: bptt(min(Tb, xs.shape[0])), repeats) / min(Tb, xs.shape[0]) * 1e6
        for key in ("numpy", "compiled", "hybrid", "bptt"):
            row[f"{key}_ratio"] = row[f"{key}_us"] / prod
        row["speedup_vs_numpy"] = row["numpy_us"] / row["compiled_us"]
        row["hybrid_speedup_vs_rtrl"] = row["compiled_us"] / row["hybrid_us"]
        log(f"n={n:4d}  numpy {row['numpy_us']:10.2f}  compiled[{row['kernel']}] {row['compiled_us']:10.3f}  "
            f"hybrid {row['hybrid_us']:10.2f}  bptt {row['bptt_us']:8.2f}  product {prod:10.3f} us")
        rows.append(row)
    return rows


def bench_batched(quick=False, log=print):
    """Microseconds per stream-step of B independent streams (n = 3 and 8, m = 2)."""
    import numpy as np

    from .kernels import BATCH_INNER_MAX_UNITS, choose_blas, rtrl_run_kernel, run_batched

    rows = []
    repeats = 3 if quick else 5
    for n in (3, 8):
        for B in (1, 16, 64, 256):
            T = 2048 if quick else 8192
            W, xs, ds, mask = _problem(n, T, B=B, seed=B)
            K = n + 3
            if B == 1:
                W, xs, ds, mask = W[0], xs[0], ds[0], mask[0]
                ub = choose_blas(n)

                def fn(T_):
                    return rtrl_run_kernel(W, np.zeros(n), np.zeros((n, n, K)), xs[:T_], ds[:T_], mask[:T_], 0.01,
                                           np.zeros(n, np.int64), False, ub, 0.0)
            else:
                def fn(T_):
                    return run_batched(W, np.zeros((B, n)), np.zeros((B, n, n, K)), xs[:, :T_], ds[:, :T_],
                                       mask[:, :T_], 0.01, np.zeros(n, np.int64), False, choose_blas(n), 0.0)
            us = per_step_us(fn, T // 4, T, repeats) / B
            engine = ("single-stream kernel" if B == 1 else "batched kernel (streams innermost)"
                      if n <= BATCH_INNER_MAX_UNITS else "streams one after the other")
            rows.append({"n": n, "B": B, "us_per_stream_step": us, "engine": engine})
            log(f"batched n={n} B={B:4d}: {us:.4f} us per stream-step")
    return rows


# --------------------------------------------------------------------------- child processes
_COMPILE_SNIPPET = r"""
import json, time, sys
t0 = time.perf_counter()
import numpy as np, rtrl
t_import = time.perf_counter() - t0
W = rtrl.init_weights(3, 2, rng=0)
xs = np.ones((10, 2)); ds = np.full((10, 3), 0.5)
res = {"import_s": t_import}
for name, kw, Wx, xx, dx in (("rtrl", dict(kernel="loops"), W, xs, ds),
                             ("hybrid", dict(method="hybrid"), W, xs, ds),
                             ("batched", dict(), np.stack([W, W]), np.stack([xs, xs]), np.stack([ds, ds]))):
    t0 = time.perf_counter()
    rtrl.train_online(Wx, xx, dx, learning_rate=0.1, **kw)
    res[name + "_s"] = time.perf_counter() - t0
print(json.dumps(res))
"""

_MEMORY_SNIPPET = r"""
import json, resource, sys
import numpy as np, rtrl
kind, n, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = 2; K = m + 1 + n
rng = np.random.default_rng(0)
W = rtrl.init_weights(n, m, rng=0)
def chunk(T_):
    xs = rng.integers(0, 2, size=(T_, m)).astype(float)
    ds = np.full((T_, n), np.nan); ds[:, 0] = rng.uniform(0.1, 0.9, T_)
    return xs, ds
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
# warm up (compile or load), then reset the peak ("5" to clear_refs resets VmHWM on Linux)
xs, ds = chunk(10)
rtrl.run(rtrl.init_state(W), xs, ds, learning_rate=0.01)
rtrl.gradient(W, xs, ds, method="bptt")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
base = status("VmRSS")
if kind == "rtrl":
    state = rtrl.init_state(W)
    C = 10000
    done = 0
    while done < T:
        xs, ds = chunk(min(C, T - done))
        state, _ = rtrl.run(state, xs, ds, learning_rate=0.01)
        done += xs.shape[0]
else:
    xs, ds = chunk(T)
    G = rtrl.gradient(W, xs, ds, method="bptt")
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kind": kind, "n": n, "T": T, "peak_rss_mb": peak / 1024, "baseline_rss_mb": base / 1024,
                  "peak_reset_after_warmup": reset}))
"""


def _child_env(threads, extra=None):
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env[var] = str(threads)
    env[_CHILD_ENV] = "1"
    env.update(extra or {})
    return env


def _run_json(code, args, env, timeout=900):
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_compile(threads, log=print):
    """First call in a new process with an empty Numba cache, then again in another new process."""
    with tempfile.TemporaryDirectory(prefix="rtrl-numba-cache-") as cache:
        env = _child_env(threads, {"NUMBA_CACHE_DIR": cache})
        first = _run_json(_COMPILE_SNIPPET, [], env)
        cached = _run_json(_COMPILE_SNIPPET, [], env)
    log(f"compile (empty cache): {json.dumps(first)}")
    log(f"cached (new process):  {json.dumps(cached)}")
    return {"first": first, "cached": cached}


def bench_memory(quick, threads, log=print):
    """Peak RSS against T: real-time RTRL over a chunked stream and epochwise BPTT."""
    n = 16
    T_rtrl = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    T_bptt = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    env = _child_env(threads)
    rows = []
    for kind, Ts in (("rtrl", T_rtrl), ("bptt", T_bptt)):
        for T in Ts:
            r = _run_json(_MEMORY_SNIPPET, [kind, n, T], env)
            log(f"memory {kind:4s} n={n} T={T:>9,d}: peak RSS {r['peak_rss_mb']:8.1f} MB")
            rows.append(r)
    return rows


def plot_memory(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for kind, label in (("rtrl", "real-time RTRL (stream in chunks)"), ("bptt", "epochwise BPTT")):
        pts = sorted((r["T"], r["peak_rss_mb"]) for r in rows if r["kind"] == kind)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_title(f"Memory against sequence length, n = {rows[0]['n'] if rows else '?'}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------- report
def targets_table(res):
    """The issue's targets, each with the measured figure and met / missed."""
    steps = {r["n"]: r for r in res.get("steps", [])}
    rows = []

    def add(name, measured, target, ok, unit=""):
        rows.append({"target": name, "measured": measured, "goal": target, "met": bool(ok), "unit": unit})

    if 3 in steps:
        s = steps[3]
        add("n=3 one stream, us/step", s["compiled_us"], "<= 0.3", s["compiled_us"] <= 0.3, "us")
        add("n=3 speed-up over NumPy reference", s["speedup_vs_numpy"], ">= 30", s["speedup_vs_numpy"] >= 30, "x")
    if 8 in steps:
        add("n=8 one stream, us/step", steps[8]["compiled_us"], "<= 1.5", steps[8]["compiled_us"] <= 1.5, "us")
    for n in (64, 128):
        if n in steps:
            r = steps[n]["compiled_ratio"]
            add(f"n={n} step / plain product", r, "<= 1.25", r <= 1.25, "x")
    if 128 in steps:
        s = steps[128]
        add("n=128 hybrid speed-up over RTRL", s["hybrid_speedup_vs_rtrl"], ">= 8", s["hybrid_speedup_vs_rtrl"] >= 8,
            "x")
        add("n=128 hybrid vs RTRL weights (rel.)", s["hybrid_rel_diff_W"], "<= 1e-9", s["hybrid_rel_diff_W"] <= 1e-9)
    for b in res.get("batched", []):
        if b["n"] == 3 and b["B"] == 64:
            add("n=3, 64 streams, us per stream-step", b["us_per_stream_step"], "<= 0.15",
                b["us_per_stream_step"] <= 0.15, "us")
    mem = [r for r in res.get("memory", []) if r["kind"] == "rtrl"]
    if len(mem) >= 2:
        lo = min(mem, key=lambda r: r["T"])
        hi = max(mem, key=lambda r: r["T"])
        growth = hi["peak_rss_mb"] / lo["peak_rss_mb"] - 1
        add(f"RTRL peak RSS T={hi['T']:.0e} vs T={lo['T']:.0e}", growth * 100, "<= 5 %", growth <= 0.05, "%")
    comp = res.get("compile")
    if comp:
        first = comp["first"]["rtrl_s"]
        cached = comp["cached"]["rtrl_s"]
        add("compile, first call (empty cache)", first, "<= 5 s", first <= 5, "s")
        add("first call, cached, new process", cached, "<= 0.5 s", cached <= 0.5, "s")
    return rows


def _fmt(x):
    if isinstance(x, float):
        if x == 0 or 1e-3 <= abs(x) < 1e5:
            return f"{x:.3g}" if abs(x) < 10 else f"{x:,.1f}"
        return f"{x:.2e}"
    return str(x)


def markdown_report(res):
    lines = [f"# rtrl benchmark ({res['meta']['mode']})", "",
             f"{res['meta']['cpu']}; BLAS threads {res['meta']['threads']}; {res['meta']['date']}; "
             f"load average at start {res['meta']['loadavg']}", ""]
    if res.get("steps"):
        lines += ["## Microseconds per real-time step (m = 2), and ratio to a plain (n x n)(n x nK) product", "",
                  "| n | NumPy reference | compiled (kernel) | hybrid (block) | epochwise BPTT (NumPy) | plain product "
                  "| compiled / product | hybrid / product | speed-up vs NumPy | hybrid vs RTRL | hybrid W rel. diff |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["steps"]:
            lines.append(
                f"| {r['n']} | {_fmt(r['numpy_us'])} | {_fmt(r['compiled_us'])} ({r['kernel']}) | "
                f"{_fmt(r['hybrid_us'])} ({r['block']}) | {_fmt(r['bptt_us'])} | {_fmt(r['product_us'])} | "
                f"{r['compiled_ratio']:.2f} | {r['hybrid_ratio']:.2f} | {r['speedup_vs_numpy']:,.1f}x | "
                f"{r['hybrid_speedup_vs_rtrl']:.2f}x | {r['hybrid_rel_diff_W']:.1e} |")
        lines.append("")
    if res.get("batched"):
        lines += ["## Batched streams (microseconds per stream-step)", "",
                  "| n | streams B | us / stream-step | engine |", "|---:|---:|---:|---|"]
        lines += [f"| {b['n']} | {b['B']} | {b['us_per_stream_step']:.4f} | {b['engine']} |" for b in res["batched"]]
        lines.append("")
    if res.get("compile"):
        c = res["compile"]
        lines += ["## Compile time (first call of train_online, n = 3, new process)", "",
                  "| kernel | empty cache (s) | cached (s) |", "|---|---:|---:|"]
        for key in ("rtrl", "hybrid", "batched"):
            lines.append(f"| {key} | {c['first'][key + '_s']:.2f} | {c['cached'][key + '_s']:.3f} |")
        lines.append(f"| (import rtrl) | {c['first']['import_s']:.2f} | {c['cached']['import_s']:.2f} |")
        lines.append("")
    if res.get("memory"):
        lines += ["## Peak RSS against sequence length (n = 16)", "",
                  "| method | T | peak RSS (MB) |", "|---|---:|---:|"]
        lines += [f"| {r['kind']} | {r['T']:,d} | {r['peak_rss_mb']:.1f} |" for r in res["memory"]]
        lines.append("")
    lines += ["## Targets", "", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for t in res.get("targets", []):
        lines.append(f"| {t['target']} | {_fmt(t['measured'])} {t['unit']} | {t['goal']} | "
                     f"{'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def run_benchmarks(*, quick=False, sizes=None, threads=1, sections=("steps", "batched", "compile", "memory"),
                   log=print):
    """Run the chosen sections in this process (timing) and in child processes (compile, memory)."""
    import numpy as np

    from ._version import __version__

    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    res = {"meta": {"mode": "quick" if quick else "full", "version": __version__, "threads": threads,
                    "cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "loadavg": _loadavg(), "sizes": list(sizes), "sections": list(sections)}}
    if "steps" in sections:
        res["steps"] = bench_steps(sizes, quick, log)
    if "batched" in sections:
        res["batched"] = bench_batched(quick, log)
    if "compile" in sections:
        res["compile"] = bench_compile(threads, log)
    if "memory" in sections:
        res["memory"] = bench_memory(quick, threads, log)
    res["meta"]["loadavg_end"] = _loadavg()
    res["targets"] = targets_table(res)
    return res


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x{os.cpu_count()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -------------------------------------------------------------------------------------- CLI
def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="speed and memory benchmarks (JSON + Markdown + memory plot)",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=_cli)
    return p


def _add_arguments(p):
    from .cli_experiments import _pos_int  # the same 'integer >= 1' argument type as rtrl run

    p.add_argument("--quick", action="store_true", help="short runs (about 1-2 minutes)")
    p.add_argument("--sizes", type=_pos_int, nargs="+", help="network sizes n (default 3 8 16 32 64 128; --engine jax: "
                   "128 256 512 1024 2048 on an accelerator, 64 128 on a CPU)")
    p.add_argument("--threads", type=_pos_int, nargs="+", default=[1],
                   help="threads for every timing (default 1); two or more counts, e.g. --threads 1 2: how the exact "
                        "paths scale (exact RTRL, the hybrid, float32, batched streams; rtrl.bench_threads)")
    p.add_argument("--docs", action="store_true",
                   help="with --threads K1 K2 ...: also write the table into docs/performance.md")
    p.add_argument("--sections", nargs="+", default=["steps", "batched", "compile", "memory"],
                   choices=["steps", "batched", "compile", "memory"], help="what to run (default: all)")
    p.add_argument("--out", default="bench-out", help="output folder (default bench-out/)")
    p.add_argument("--engine", choices=("numba", "jax"), default="numba",
                   help="numba (default: every section above) or jax (the JAX engine on its device; needs rtrl[jax])")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="--engine jax: float type "
                   "(default float32)")
    p.add_argument("--precision", choices=("highest", "high", "default"), default="highest",
                   help="--engine jax: matmul precision (default highest: true float32; 'default' allows TF32)")
    p.add_argument("--devices", type=_devices_arg, default=None,
                   help="--engine jax: number of devices to shard P over, or 'all' (default one)")
    p.add_argument("--blocks", type=_pos_int, nargs="+", default=[],
                   help="--engine jax: also time the hybrid with these block lengths (default: only about n/2)")


def _devices_arg(text):
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}")
    return value


def _cli_jax(args, out) -> int:
    """``rtrl bench --engine jax`` in the child process (threads pinned on a CPU before JAX starts)."""
    from . import jax_bench

    pinned = jax_bench.pin_cpu_threads(args.threads)
    from .jax_engine import require_jax

    try:
        require_jax()
    except ImportError as exc:
        print(f"rtrl bench: --engine jax: {exc}", file=sys.stderr)
        return 2
    res = jax_bench.run_jax_benchmarks(args.sizes, dtype=args.dtype, precision=args.precision, devices=args.devices,
                                       quick=args.quick, blocks=tuple(args.blocks))
    res["meta"]["cpu"] = _cpu_name()
    res["meta"]["threads"] = args.threads
    res["meta"]["pinned_to_threads"] = pinned
    res["meta"]["loadavg"] = _loadavg()
    res["meta"]["command"] = " ".join(["rtrl bench", *sys.argv[1:]])
    (out / "bench-jax.json").write_text(json.dumps(res, indent=1))
    md = jax_bench.jax_markdown(res)
    (out / "bench-jax.md").write_text(md)
    print()
    print(md)
    print(f"wrote {out / 'bench-jax.json'}, {out / 'bench-jax.md'}")
    return 0


def _cli_threads(args, out) -> int:
    from . import bench_threads

    try:
        res = bench_threads.run(tuple(args.threads), sizes=args.sizes, quick=args.quick,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"rtrl bench: error: {exc}", file=sys.stderr)
        return 1
    command = "rtrl bench --threads " + " ".join(map(str, args.threads)) + (
        " --sizes " + " ".join(map(str, args.sizes)) if args.sizes else "") + (" --quick" if args.quick else "")
    res["meta"]["command"] = command
    (out / "bench-threads.json").write_text(json.dumps(res, indent=1))
    md = bench_threads.markdown(res, command)
    (out / "bench-threads.md").write_text(md)
    print(md)
    print(f"wrote {out / 'bench-threads.json'}, {out / 'bench-threads.md'}")
    if args.docs:
        doc = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
        bench_threads.write_docs(md, doc)
        print(f"wrote the table into {doc}")
    return 0


def _cli(args) -> int:
    if isinstance(args.threads, int):
        args.threads = [args.threads]
    if any(k < 1 for k in args.threads):
        print("rtrl bench: --threads: expected integers >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if len(args.threads) > 1:
        if args.engine != "numba":
            print("rtrl bench: --threads with several counts measures the Numba engine only", file=sys.stderr)
            return 2
        return _cli_threads(args, out)
    if args.docs:
        print("rtrl bench: --docs goes with --threads K1 K2 ... (the thread-scaling table)", file=sys.stderr)
        return 2
    args.threads = args.threads[0]
    if os.environ.get(_CHILD_ENV) != "1":
        # Re-run in a child whose BLAS thread count is fixed before NumPy loads.
        cmd = [sys.executable, "-m", "rtrl.bench", "--threads", str(args.threads), "--out", str(out)]
        if args.engine == "numba":
            cmd += ["--sections", *args.sections]
        if args.quick:
            cmd.append("--quick")
        if args.sizes:
            cmd += ["--sizes", *map(str, args.sizes)]
        if args.engine == "jax":
            cmd += ["--engine", "jax", "--dtype", args.dtype, "--precision", args.precision]
            if args.devices is not None:
                cmd += ["--devices", str(args.devices)]
            if args.blocks:
                cmd += ["--blocks", *map(str, args.blocks)]
        return subprocess.call(cmd, env=_child_env(args.threads))
    if args.engine == "jax":
        return _cli_jax(args, out)
    res = run_benchmarks(quick=args.quick, sizes=args.sizes, threads=args.threads, sections=tuple(args.sections))
    res["meta"]["command"] = " ".join(["rtrl bench", *sys.argv[1:]])
    (out / "bench.json").write_text(json.dumps(res, indent=1))
    md = markdown_report(res)
    (out / "bench.md").write_text(md)
    if res.get("memory"):
        plot_memory(res["memory"], out / "memory.png")
    print()
    print(md)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}" + (f", {out / 'memory.png'}" if res.get("memory") else ""))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtrl.bench", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return _cli(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
