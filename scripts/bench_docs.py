"""Regenerate the README's speed tables from a run of ``rtrl bench`` (never typed by hand).

Usage::

    python scripts/bench_docs.py                      # runs `rtrl bench` (full, a few minutes), fills README.md
    python scripts/bench_docs.py --from-json bench-out/bench.json   # refill from an earlier run

Fills the README blocks ``bench-steps`` (µs per step by size) and ``bench-targets`` (the targets table).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _num(x, digits=3):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def steps_block(res) -> str:
    meta = res["meta"]
    lines = [f"`{meta.get('command', 'rtrl bench')}` ({meta['cpu']}, Python {meta['python']}, one BLAS thread, "
             f"{meta['date']}; µs per real-time step, m = 2):", "",
             "| n | NumPy reference | compiled | hybrid | plain product (n×n)(n×nK) | compiled / product "
             "| hybrid speed-up |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["steps"]:
        lines.append(f"| {r['n']} | {_num(r.get('numpy_us'))} | {_num(r['compiled_us'])} | {_num(r.get('hybrid_us'))} | "
                     f"{_num(r['product_us'])} | {r['compiled_ratio']:.2f} | {r['hybrid_speedup_vs_rtrl']:.2f}× |")
    return "\n".join(lines) + "\n"


def targets_block(res) -> str:
    lines = ["| target | measured | goal | met |", "|---|---:|---|---|"]
    for t in res["targets"]:
        m = t["measured"]
        unit = t.get("unit", "")
        shown = f"{m:.3g}" if isinstance(m, float) else str(m)
        lines.append(f"| {t['target']} | {shown} {unit} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def fill(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- generated:{re.escape(name)} -->\n).*?(<!-- /generated:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no generated block {name!r}")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-json", metavar="PATH", help="use an earlier run's bench.json instead of running")
    ap.add_argument("--out", default="bench-out", help="where `rtrl bench` writes (default bench-out/)")
    args = ap.parse_args(argv)
    if args.from_json:
        path = Path(args.from_json)
    else:
        subprocess.run([sys.executable, "-m", "rtrl", "bench", "--out", args.out], check=True, cwd=ROOT)
        path = ROOT / args.out / "bench.json"
    res = json.loads(path.read_text())
    readme = ROOT / "README.md"
    text = fill(readme.read_text(), "bench-steps", steps_block(res))
    text = fill(text, "bench-targets", targets_block(res))
    readme.write_text(text)
    print(f"README.md: bench-steps and bench-targets rewritten from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
