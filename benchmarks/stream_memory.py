"""Memory and speed of ``rtrl stream`` on a long live stream.

Streams ``--rows`` CSV rows (a delayed-echo task: one random-bit input, the target is the
previous bit) through ``python -m rtrl stream -`` over a pipe, reads every prediction line
back, and records the child's resident memory (VmRSS, and the peak VmHWM, from
/proc/PID/status) and the rows per second at 10^3, 10^4, ... rows. The peak over the whole
run comes from ``getrusage(RUSAGE_CHILDREN)`` after the child exits. Memory must stay flat:
nothing in the loop grows with the number of rows.

It also times, in this process, ``OnlineLearner.step`` (µs per call) and the stream loop
(:class:`rtrl.stream.Stream` from an in-memory CSV to an in-memory output: CSV parse +
step + divergence check + formatting + write), so the Python overhead per row is visible.

Usage::

    python benchmarks/stream_memory.py --rows 10000000 --json stream_memory.json
    python benchmarks/stream_memory.py --readme       # also rewrite the README's sentence from this run

Linux only (reads /proc). Prints a table; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np

import rtrl
from rtrl.stream import Stream


def _block(n_rows, seed=0):
    """n_rows data lines (bytes) of the delayed-echo task; the block is repeated to make the stream."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n_rows + 1)
    return "".join(f"{x[t + 1]},{0.1 + 0.8 * x[t]:.1f}\n" for t in range(n_rows)).encode()


def _status(pid):
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value, _ = line.split()
                out[key[:-1]] = int(value) / 1024
    return out


def bench_cli(rows, units, lr, block_rows=10_000):
    block = _block(block_rows)
    cmd = [sys.executable, "-m", "rtrl", "stream", "-", "--inputs", "x", "--targets", "d",
           "--units", str(units), "--lr", str(lr)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():
        try:
            proc.stdin.write(b"x,d\n")
            left = rows
            while left > 0:
                k = min(left, block_rows)
                proc.stdin.write(block if k == block_rows else b"".join(block.splitlines(True)[:k]))
                left -= k
            proc.stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    marks = sorted({10 ** p for p in range(3, 13) if 10 ** p <= rows} | {rows})
    samples = []
    header = proc.stdout.readline()
    assert header == b"row,pred_d\n", header
    t_start = time.perf_counter()
    t_prev, n_prev = t_start, 0
    count = 0
    next_mark = marks.pop(0)
    for _ in proc.stdout:
        count += 1
        if count == next_mark:
            now = time.perf_counter()
            st = _status(proc.pid)
            samples.append({"rows": count, "rss_mib": st["VmRSS"], "peak_rss_mib": st["VmHWM"],
                            "rows_per_s_since_last": (count - n_prev) / (now - t_prev),
                            "elapsed_s": now - t_start})
            print(f"  {count:>12,d} rows  RSS {st['VmRSS']:8.1f} MiB  peak {st['VmHWM']:8.1f} MiB  "
                  f"{samples[-1]['rows_per_s_since_last']:10,.0f} rows/s  ({now - t_start:7.1f} s)", flush=True)
            t_prev, n_prev = now, count
            if not marks:
                break
            next_mark = marks.pop(0)
    for _ in proc.stdout:  # drain (nothing expected)
        count += 1
    err = proc.stderr.read().decode()
    proc.wait()
    writer.join(timeout=10)
    elapsed = time.perf_counter() - t_start
    peak_children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0 or count != rows:
        raise SystemExit(f"stream failed: rc={proc.returncode}, {count} of {rows} rows\n{err}")
    return {"rows": rows, "units": units, "samples": samples, "rows_per_s": rows / elapsed,
            "elapsed_s": elapsed, "peak_rss_mib_getrusage": peak_children_mib, "stderr": err.strip()}


def bench_in_process(units, lr, steps=20_000, repeats=5):
    """µs per OnlineLearner.step call and per row of the Stream loop, in this process.

    Each figure is timed ``repeats`` times; the best (least disturbed by other processes on
    a shared machine) and the median are reported.
    """
    x = np.array([1.0])
    d = np.full(units, np.nan)
    d[0] = 0.5
    text = "x,d\n" + _block(steps).decode()
    step_us, loop_us = [], []
    for _ in range(repeats):
        net = rtrl.OnlineLearner(units, 1, learning_rate=lr, rng=0)
        for _ in range(100):  # warm up (the compiled kernel is loaded on the first call)
            net.step(x, d)
        t0 = time.perf_counter()
        for _ in range(steps):
            net.step(x, d)
        step_us.append((time.perf_counter() - t0) / steps * 1e6)
        net = rtrl.OnlineLearner(units, 1, learning_rate=lr, rng=0)
        t0 = time.perf_counter()
        Stream(net, ("x",), ("d",)).run(io.StringIO(text), io.BytesIO())
        loop_us.append((time.perf_counter() - t0) / steps * 1e6)
    return {"step_us_best": min(step_us), "step_us_median": float(np.median(step_us)),
            "stream_loop_us_best": min(loop_us), "stream_loop_us_median": float(np.median(loop_us)),
            "steps": steps, "repeats": repeats}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows to stream (default 10^7)")
    ap.add_argument("--units", type=int, default=5, help="units (default 5: 1 target + 4, the CLI default)")
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--skip-cli", action="store_true", help="only the in-process timings")
    ap.add_argument("--readme", action="store_true", help="rewrite the README's generated block 'stream-memory'")
    args = ap.parse_args(argv)
    info = {"rtrl": rtrl.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    print(f"in-process timing, {args.units} units, 1 input:", flush=True)
    inproc = bench_in_process(args.units, args.lr)
    print(f"  OnlineLearner.step: {inproc['step_us_best']:.1f} µs per call (median {inproc['step_us_median']:.1f})"
          f"; Stream loop (parse + step + check + write): {inproc['stream_loop_us_best']:.1f} µs per row "
          f"(median {inproc['stream_loop_us_median']:.1f})", flush=True)
    if args.skip_cli:
        return
    print(f"rtrl stream over a pipe, {args.rows:,d} rows:", flush=True)
    cli = bench_cli(args.rows, args.units, args.lr)
    print(f"  {cli['rows_per_s']:,.0f} rows/s overall; peak RSS of the child (getrusage) "
          f"{cli['peak_rss_mib_getrusage']:.1f} MiB", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "in_process": inproc, "cli": cli}, f, indent=2)
    if args.readme:
        write_readme(cli, info)


def write_readme(cli, info) -> None:
    """The README's sentence on memory and speed (block 'stream-memory'), from this run's figures."""
    import re
    from pathlib import Path

    samples = cli["samples"]
    early = next((s for s in samples if s["rows"] >= 100_000), samples[0])
    last = samples[-1]
    text = (f"Memory stays flat: {last['rows']:,} rows kept the process at {last['rss_mib']:.0f} MiB "
            f"(peak {cli['peak_rss_mib_getrusage']:.0f} MiB), against {early['rss_mib']:.0f} MiB at "
            f"{early['rows']:,} rows; {cli['rows_per_s']:,.0f} rows/s with {cli['units']} units over a pipe "
            f"(`benchmarks/stream_memory.py --readme`, rtrl {info['rtrl']}, {info['machine']}, {info['cpus']} cores, "
            f"Python {info['python']}; a shared machine).")
    path = Path(__file__).resolve().parents[1] / "README.md"
    doc = path.read_text()
    pattern = re.compile(r"(<!-- generated:stream-memory -->\n).*?(<!-- /generated:stream-memory -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit("README.md has no generated block 'stream-memory'")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))
    print("README.md: stream-memory rewritten")


if __name__ == "__main__":
    main()
