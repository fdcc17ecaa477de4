"""Benchmark of the JAX engine (``rtrl bench --engine jax``): RTRL and the hybrid against a plain product.

For each size n (m = 2 inputs, logistic units, real-time learning, a target on about half
the units at every step), on the device(s) JAX uses:

* the plain product of a step's shape, (n x n) . (n x nK), in a ``lax.scan`` whose steps
  depend on each other (as RTRL's do), same float type and precision, same device(s);
* microseconds per real-time step of exact RTRL (``engine="jax"``), and the ratio to that product;
* microseconds per step of Schmidhuber's hybrid (default block n/2) and its steps per second;
* on a CPU, the Numba engine on the same problem (the issue's "within 1.5x of Numba");
* that the hybrid's weights equal RTRL's after a short run (relative difference);
* the largest n that fits: a size whose sensitivities do not fit in device memory is recorded
  as such, not an error.

The state stays on the device between calls (:func:`rtrl.jax_engine.to_device`): only W, the
inputs and the outputs cross to the host. Per-step times are differences
``(t(T2) - t(T1)) / (T2 - T1)`` of minima over repeats, as in :mod:`rtrl.bench`; each run
ends with W back on the host, which waits for the device. Nothing here is a test.
"""

from __future__ import annotations

import os
import pkgutil
import time

__all__ = ["run_jax_benchmarks", "jax_targets", "jax_markdown", "pin_cpu_threads", "GPU_SIZES", "CPU_SIZES"]

GPU_SIZES = (128, 256, 512, 1024, 2048)
CPU_SIZES = (64, 128)


def pin_cpu_threads(threads: int) -> bool:
    """On a machine without an accelerator plugin for JAX, keep this process on ``threads`` cores.

    XLA's CPU backend sizes its thread pool from the cores the process may use (its flags do
    not reliably cap it); pinning before JAX starts gives every timing, the Numba engine's
    included, the same cores. Returns True when it pinned. Call before JAX is imported.
    """
    names = {m.name for m in pkgutil.iter_modules()}
    if any(x.startswith(("jax_cuda", "jax_rocm", "libtpu")) for x in names) or not hasattr(os, "sched_setaffinity"):
        return False
    cpus = sorted(os.sched_getaffinity(0))[:max(1, threads)]
    os.sched_setaffinity(0, cpus)
    return True


def _min_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _per_step(run_T, T1, T2, repeats):
    run_T(T1)  # compile both lengths first
    run_T(T2)
    t1 = _min_time(lambda: run_T(T1), repeats)
    t2 = _min_time(lambda: run_T(T2), repeats)
    return max(t2 - t1, 1e-12) / (T2 - T1) * 1e6


def _lengths(run_T, target_s, T_min=2, T_max=4096):
    """(T1, T2) with T2 about target_s of work, from a first timed run of T_min steps."""
    run_T(T_min)
    dt = _min_time(lambda: run_T(T_min), 1) / T_min
    T2 = int(min(T_max, max(4 * T_min, target_s / max(dt, 1e-9))))
    return max(T_min, T2 // 4), T2


def _block_lengths(run_T, h, target_s, T_max):
    """(T1, T2), whole numbers of blocks of h steps (each block end counted), T2 about target_s of work."""
    T1, T2 = _lengths(run_T, target_s, T_min=h, T_max=T_max)
    T2 = max(2 * h, (T2 // h) * h)
    return max(h, (T2 // 4 // h) * h), T2


def _oom(exc) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower() or isinstance(exc, MemoryError)


def _device_memory(devs):
    from .jax_engine import _device_bytes

    limit = _device_bytes(devs[0])
    return None if limit is None else limit * len(devs)


def _problem(n, T, dtype, m=2, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    K = m + 1 + n
    W = (rng.uniform(-1.0, 1.0, size=(n, K)) / np.sqrt(K)).astype(dtype)
    xs = rng.integers(0, 2, size=(T, m)).astype(dtype)
    mask = rng.random((T, n)) < 0.5
    ds = np.where(mask, rng.uniform(0.1, 0.9, size=(T, n)), 0.0).astype(dtype)
    return W, xs, ds, mask


def _plain_product(n, K, dtype, precision, devs):
    """run(T): T dependent products P <- A . P of shape (n x n)(n x nK) on the devices, P sharded like RTRL's.

    P is made on the device inside each call (a fixed cost that the difference of two lengths
    removes), so it holds no memory between calls: at n = 2048 a P is 34 GB. NOTE: a constant P
    (the values do not change the time; A is orthogonal, so nothing grows or underflows).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    from . import jax_engine

    x64 = np.dtype(dtype) == np.float64
    with jax_engine._x64(x64):
        q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((n, n)))  # |A x| = |x|: no overflow
        rep, _ = jax_engine._placements(devs, False)
        A = jax.device_put(q.astype(dtype), rep)
    if len(devs) > 1:
        from jax.sharding import NamedSharding, PartitionSpec

        place = NamedSharding(jax_engine._mesh(devs), PartitionSpec(None, "i"))
    else:
        place = None
    fns = {}

    def run(T):
        if T not in fns:
            def loop(A):
                P = jnp.full((n, n * K), 1.0 / np.sqrt(n), dtype)
                if place is not None:
                    P = lax.with_sharding_constraint(P, place)
                # unroll=2: each product writes into the buffer of the one before last (no copy per step)
                return lax.fori_loop(0, T, lambda _, p: jnp.dot(A, p, precision=precision), P, unroll=2)[0, :8]

            fns[T] = jax.jit(loop)
        with jax_engine._x64(x64):
            np.asarray(fns[T](A))  # waits for the device

    return run


def _per_step_interleaved(runs, T1, T2, repeats):
    """Microseconds per step of each ``runs[name](T)``, timed in turn within each repeat (min over repeats).

    NOTE: interleaving keeps a slow spell of a shared machine from falling on one engine only.
    """
    for run_T in runs.values():  # compile both lengths first
        run_T(T1)
        run_T(T2)
    best = {name: [float("inf"), float("inf")] for name in runs}
    for _ in range(repeats):
        for name, run_T in runs.items():
            for k, T in enumerate((T1, T2)):
                t0 = time.perf_counter()
                run_T(T)
                best[name][k] = min(best[name][k], time.perf_counter() - t0)
    return {name: max(t2 - t1, 1e-12) / (T2 - T1) * 1e6 for name, (t1, t2) in best.items()}


def bench_size(n, *, dtype="float32", precision="highest", devices=None, numba=False, hybrid=True, quick=False,
               blocks=(), log=print):
    """One row of the table for size n (see the module docstring)."""
    import jax
    import numpy as np

    from . import jax_engine, rules
    from .hybrid import default_block, hybrid_run_kernel
    from .kernels import rtrl_run_kernel

    m = 2
    K = m + 1 + n
    itemsize = np.dtype(dtype).itemsize
    devs = jax_engine.resolve_devices(devices, n)
    row = {"n": n, "K": K, "dtype": str(dtype), "precision": precision, "devices": len(devs),
           "platform": devs[0].platform, "P_GB": n * n * K * itemsize / 1e9}
    mem = _device_memory(devs)
    # NOTE: the lean form with donation holds about 2 P (jax_engine, "Memory"); the engine picks it itself.
    if mem is not None and 2 * n * n * K * itemsize > 0.95 * mem:
        row["status"] = f"does not fit: RTRL needs about {2 * row['P_GB']:.1f} GB, the devices have {mem / 1e9:.1f} GB"
        log(f"n={n:5d}  {row['status']}")
        return row
    target = 0.3 if quick else 1.0
    repeats = 2 if quick else 3
    few = 1 if n >= 1024 else repeats  # the largest sizes: one timed repeat (minutes of device time otherwise)
    opts = jax_engine.JaxOptions(precision=precision, devices=devices, donate=True)
    h = default_block(n)
    W, xs, ds, mask = _problem(n, max(4096, 3 * h), dtype)
    y0, P0 = np.zeros(n, dtype), np.zeros((n, n, K), dtype) if numba else None
    rule = rules.make("rtrl")
    box = {}

    def jax_rule(r):
        """run(T): T real-time steps of rule r on the device; the state is donated and replaced (one P at a time)."""
        box[r.spec] = jax_engine.to_device(rule.init(W, np.zeros(n, dtype)))

        def run_T(T):
            _, box[r.spec], _, _ = r.run(W, box[r.spec], xs[:T], ds[:T], mask[:T], lr=0.01, engine="jax")

        return run_T

    act = np.zeros(n, np.int64)  # logistic units (the kernels' activation codes)

    def nb_rtrl(T):
        return rtrl_run_kernel(W, y0, P0, xs[:T], ds[:T], mask[:T], 0.01, act, False, True, 0.0)

    def nb_hybrid(T):
        return hybrid_run_kernel(W, y0, P0, xs[:T], ds[:T], mask[:T], 0.01, act, False, h, 0.0)

    try:
        with jax_engine.options(**vars(opts)):
            product = _plain_product(n, K, dtype, precision, devs)
            if numba:  # a shared CPU: the product, JAX and Numba in turn within each repeat
                runs = {"product": product, "rtrl": jax_rule(rule), "numba_rtrl": nb_rtrl}
                T1, T2 = _lengths(runs["rtrl"], target)
                us = _per_step_interleaved(runs, T1, T2, few)
            else:  # an accelerator: one after the other, so that only one of them holds device memory
                us = {"product": _per_step(product, *_lengths(product, target, T_min=1 if n >= 1024 else 2), few)}
                run_rtrl = jax_rule(rule)
                T1, T2 = _lengths(run_rtrl, target, T_min=1 if n >= 1024 else 2)
                us["rtrl"] = _per_step(run_rtrl, T1, T2, few)
            row.update(product_us=us["product"], rtrl_us=us["rtrl"], rtrl_ratio=us["rtrl"] / us["product"],
                       rtrl_steps=(T1, T2))
            if numba:
                row.update(numba_rtrl_us=us["numba_rtrl"], jax_vs_numba_rtrl=us["rtrl"] / us["numba_rtrl"])
            box.clear()
            if hybrid:
                # whole blocks: the difference holds exactly one block end per h steps
                runs = {"hybrid": jax_rule(rules.make("hybrid"))}
                if numba:
                    runs["numba_hybrid"] = nb_hybrid
                row["block"] = h
                row["hybrid_steps"] = _block_lengths(runs["hybrid"], h, target, len(xs))
                us = _per_step_interleaved(runs, *row["hybrid_steps"], few)
                row.update(hybrid_us=us["hybrid"], hybrid_steps_per_s=1e6 / us["hybrid"],
                           hybrid_ratio=us["hybrid"] / row["product_us"])
                if numba:
                    row.update(numba_hybrid_us=us["numba_hybrid"],
                               jax_vs_numba_hybrid=us["hybrid"] / us["numba_hybrid"])
                # other block lengths (tuning: on a GPU each backward step is a kernel launch)
                row["hybrid_us_by_block"] = {h: row["hybrid_us"]}
                for hb in sorted({int(b) for b in blocks if 1 <= int(b) < len(xs) // 2} - {h}):
                    box.clear()  # one state on the device at a time
                    run_b = jax_rule(rules.make("hybrid", block=hb))
                    row["hybrid_us_by_block"][hb] = _per_step(run_b, *_block_lengths(run_b, hb, target, len(xs)), few)
                box.clear()
                if n <= 1024:  # the same weights: RTRL and the hybrid (block 4) over 12 steps
                    Tm = 12
                    Ws = [r_.run(W, jax_engine.to_device(rule.init(W, np.zeros(n, dtype))), xs[:Tm], ds[:Tm],
                                 mask[:Tm], lr=0.01, engine="jax")[0]
                          for r_ in (rule, rules.make("hybrid", block=4))]
                    row["hybrid_rel_diff_W"] = float(np.max(np.abs(Ws[1] - Ws[0])) / np.max(np.abs(Ws[0])))
            row["status"] = "ran"
    except Exception as exc:  # noqa: BLE001
        if not _oom(exc):
            raise
        row["status"] = f"out of device memory ({str(exc).splitlines()[0][:160]})"
        box.clear()
        jax.clear_caches()
    keys = ("product_us", "rtrl_us", "rtrl_ratio", "hybrid_us", "hybrid_steps_per_s", "numba_rtrl_us",
            "numba_hybrid_us")
    log(f"n={n:5d}  {row.get('status')}  " + "  ".join(f"{k} {row[k]:.4g}" for k in keys if k in row))
    return row


def run_jax_benchmarks(sizes=None, *, dtype="float32", precision="highest", devices=None, quick=False,
                       numba=None, hybrid_max=1024, blocks=(), log=print):
    """The table for every size (ascending), with the metadata of the run; see :func:`bench_size`."""
    import jax
    import numpy as np

    from . import jax_engine
    from ._version import __version__

    devs = jax_engine.resolve_devices(devices)
    platform = devs[0].platform
    sizes = tuple(sorted(sizes or (CPU_SIZES if platform == "cpu" else GPU_SIZES)))
    numba = (platform == "cpu") if numba is None else numba
    meta = {"engine": "jax", "version": __version__, "jax": jax.__version__, "platform": platform,
            "device_kind": getattr(devs[0], "device_kind", platform), "devices": len(devs),
            "dtype": str(np.dtype(dtype)), "precision": precision, "sizes": list(sizes), "quick": quick,
            "cpu_cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    rows = []
    for n in sizes:
        rows.append(bench_size(n, dtype=dtype, precision=precision, devices=devices, numba=numba and n <= 256,
                               hybrid=n <= hybrid_max, quick=quick, blocks=blocks, log=log))
    ran = [r["n"] for r in rows if r.get("status") == "ran"]
    res = {"meta": meta, "jax_steps": rows, "largest_n": max(ran) if ran else None}
    res["targets"] = jax_targets(res)
    return res


def jax_targets(res):
    """The issue's goals for this engine, each with the measured figure and met / missed."""
    rows = {r["n"]: r for r in res.get("jax_steps", []) if r.get("status") == "ran"}
    gpu = res.get("meta", {}).get("platform") not in (None, "cpu")
    out = []

    def add(name, measured, goal, ok, unit=""):
        out.append({"target": name, "measured": measured, "goal": goal, "met": bool(ok), "unit": unit})

    if gpu:
        for n, r in sorted(rows.items()):
            if n >= 512:
                add(f"n={n} RTRL step / plain product", r["rtrl_ratio"], "<= 1.3", r["rtrl_ratio"] <= 1.3, "x")
        if 1024 in rows and "hybrid_steps_per_s" in rows[1024]:
            s = rows[1024]["hybrid_steps_per_s"]
            add("n=1024 hybrid, exact real-time steps per second", s, ">= 100", s >= 100, "/s")
        if 2048 in res.get("meta", {}).get("sizes", []):
            add("n=2048 exact RTRL runs", 1.0 if 2048 in rows else 0.0, "runs", 2048 in rows)
    for n, r in sorted(rows.items()):
        for kind in ("rtrl", "hybrid"):
            key = f"jax_vs_numba_{kind}"
            if key in r and n >= 64:
                add(f"n={n} {kind}: JAX / Numba (CPU)", r[key], "<= 1.5", r[key] <= 1.5, "x")
    return out


def _f(x, digits=3):
    """A figure for the table: 3 significant digits below 100, whole numbers with separators above."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != 0 and abs(x) < 1e-3:
            return f"{x:.{digits - 1}e}"
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{digits}g}"
    return str(x)


def jax_markdown(res):
    """The run as Markdown: metadata, the table, the goals."""
    m = res["meta"]
    lines = [f"# rtrl benchmark, engine jax ({m['platform']}: {m['device_kind']} x{m['devices']})", "",
             f"JAX {m['jax']}; {m['dtype']}, matmul precision {m['precision']}; {m['date']}; "
             f"CPU cores used {m['cpu_cores_used']}", "",
             "## Microseconds per real-time step (m = 2), and ratio to a plain (n x n)(n x nK) product", "",
             "| n | P (GB) | plain product | RTRL | RTRL / product | hybrid (block) | hybrid steps/s | "
             "hybrid / product | hybrid W rel. diff | Numba RTRL | JAX/Numba RTRL | Numba hybrid | JAX/Numba hybrid |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["jax_steps"]:
        if r.get("status") != "ran":
            lines.append(f"| {r['n']} | {r['P_GB']:.2f} | {r.get('status')} |" + " |" * 10)
            continue
        g = r.get
        hyb = f"{_f(g('hybrid_us'))} ({g('block')})" if "hybrid_us" in r else "-"
        lines.append(f"| {r['n']} | {r['P_GB']:.3g} | {_f(r['product_us'])} | {_f(r['rtrl_us'])} | "
                     f"{r['rtrl_ratio']:.2f} | {hyb} | {_f(g('hybrid_steps_per_s'))} | {_f(g('hybrid_ratio'))} | "
                     f"{_f(g('hybrid_rel_diff_W'), 2)} | {_f(g('numba_rtrl_us'))} | {_f(g('jax_vs_numba_rtrl'))} | "
                     f"{_f(g('numba_hybrid_us'))} | {_f(g('jax_vs_numba_hybrid'))} |")
    tuned = [r for r in res["jax_steps"] if len(r.get("hybrid_us_by_block") or {}) > 1]
    if tuned:
        lines += ["", "## Hybrid: microseconds per step by block length h", "", "| n | " + " | ".join(
            f"h = {h}" for h in sorted({int(h) for r in tuned for h in r["hybrid_us_by_block"]})) + " |"]
        hs = sorted({int(h) for r in tuned for h in r["hybrid_us_by_block"]})
        lines.append("|---:|" + "---:|" * len(hs))
        for r in tuned:
            by = {int(h): v for h, v in r["hybrid_us_by_block"].items()}
            lines.append(f"| {r['n']} | " + " | ".join(_f(by.get(h)) for h in hs) + " |")
    lines += ["", f"Largest n that ran: {res.get('largest_n')}", "", "## Goals", "",
              "| goal | measured | target | met |", "|---|---:|---|---|"]
    for t in res.get("targets", []):
        lines.append(f"| {t['target']} | {_f(t['measured'])} {t['unit']} | {t['goal']} | "
                     f"{'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"
