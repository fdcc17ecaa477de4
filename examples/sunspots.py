"""Predict the yearly sunspot numbers one year ahead, online, with ``rtrl stream``.

Data: the yearly mean sunspot numbers 1700-2008 (309 values) that statsmodels ships
(``statsmodels.datasets.sunspots``; source: SIDC / WDC-SILSO, Royal Observatory of Belgium).
Install the optional extra first: ``pip install -e ".[examples]"``.

What it does
------------
1. Writes ``sunspots.csv``: one row per year t = 1700..2007 with ``x`` = the scaled count of
   year t (the input) and ``next`` = the scaled count of year t+1 (the target), scaled by
   ``0.1 + 0.8 * count / 200`` into the range of logistic units. 309 years are few for an
   online learner, so the stream replays the series ``--passes`` times (column ``pass``);
   the network runs on across the jump from 2007 back to 1700, without a reset.
2. Runs ``rtrl stream sunspots.csv --inputs x --targets next ...``: every prediction is
   made *before* the network learns from that row's target, so each one is a genuine
   one-year-ahead forecast from the past of the stream (but in pass k > 1 the network has
   already seen the same years k - 1 times: the later passes measure fit, not forecasting
   of unseen years).
3. Prints the RMSE per pass next to the persistence forecast ("next year = this year")
   and plots ``sunspots.png``: truth and predictions of the first and the last pass, and
   the RMSE per pass.

Run: ``python examples/sunspots.py [--passes 50] [--units 5] [--lr 2.0] [--out-dir sunspots-out]``
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

import numpy as np


def load_sunspots():
    """Years (309,) and yearly mean sunspot numbers (309,) from statsmodels."""
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        sys.exit("this example needs statsmodels: pip install -e \".[examples]\"  (or pip install statsmodels)")
    data = sunspots.load_pandas().data
    return data["YEAR"].to_numpy(dtype=int), data["SUNACTIVITY"].to_numpy(dtype=float)


def scale(count):
    return 0.1 + 0.8 * count / 200.0


def unscale(s):
    return (s - 0.1) / 0.8 * 200.0


def write_csv(path, years, counts, passes):
    s = scale(counts)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pass", "year", "x", "next"])
        for p in range(1, passes + 1):
            for t in range(len(s) - 1):
                w.writerow([p, years[t], repr(float(s[t])), repr(float(s[t + 1]))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=50, help="times the 309 years are replayed (default 50)")
    ap.add_argument("--units", type=int, default=5, help="units, the target unit included (default 5)")
    ap.add_argument("--lr", type=float, default=2.0, help="learning rate (default 2.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="sunspots-out")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    years, counts = load_sunspots()
    data = os.path.join(args.out_dir, "sunspots.csv")
    preds = os.path.join(args.out_dir, "predictions.csv")
    model = os.path.join(args.out_dir, "model.npz")
    write_csv(data, years, counts, args.passes)

    cmd = [sys.executable, "-m", "rtrl", "stream", data, "--inputs", "x", "--targets", "next",
           "--units", str(args.units), "--lr", str(args.lr), "--seed", str(args.seed),
           "--out", preds, "--checkpoint", model]
    print("$", " ".join(["rtrl", *cmd[3:]]), flush=True)
    subprocess.run(cmd, check=True)

    T = len(counts) - 1  # rows per pass
    pred = np.loadtxt(preds, delimiter=",", skiprows=1)[:, 1].reshape(args.passes, T)
    truth = counts[1:]
    pred_counts = unscale(pred)
    rmse = np.sqrt(np.mean((pred_counts - truth) ** 2, axis=1))
    persistence = float(np.sqrt(np.mean((counts[:-1] - truth) ** 2)))
    print(f"one-year-ahead RMSE in sunspot numbers: persistence {persistence:.1f}; RTRL pass 1 "
          f"{rmse[0]:.1f}, pass {args.passes} {rmse[-1]:.1f} (min over passes {rmse.min():.1f})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 6.5), height_ratios=[2, 1], constrained_layout=True)
    ax.plot(years[1:], truth, color="black", lw=1.2, label="truth (year t+1)")
    ax.plot(years[1:], pred_counts[0], color="tab:orange", lw=0.9, alpha=0.8,
            label=f"RTRL, pass 1 (RMSE {rmse[0]:.1f})")
    ax.plot(years[1:], pred_counts[-1], color="tab:blue", lw=1.0,
            label=f"RTRL, pass {args.passes} (RMSE {rmse[-1]:.1f})")
    ax.set_ylabel("yearly sunspot number")
    ax.set_title(f"One-year-ahead prediction, learned online by real-time RTRL ({args.units} logistic units, "
                 f"lr {args.lr:g})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    bx.plot(np.arange(1, args.passes + 1), rmse, marker=".", label="RTRL")
    bx.axhline(persistence, color="gray", ls="--", label=f"persistence ({persistence:.1f})")
    bx.set_xlabel("pass over 1700-2008")
    bx.set_ylabel("RMSE")
    bx.legend(fontsize=8)
    png = os.path.join(args.out_dir, "sunspots.png")
    fig.savefig(png, dpi=120)
    print(f"wrote {png}, {preds} and the model {model}")


if __name__ == "__main__":
    main()
