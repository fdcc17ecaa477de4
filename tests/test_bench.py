"""The benchmark machinery (not the figures: no wall-clock limit is asserted here)."""

import json

import numpy as np
import pytest

from rtrl import bench
from rtrl.cli import build_parser


def test_per_step_difference_removes_the_fixed_cost():
    calls = []

    def fake_run(T):  # 0.5 ms fixed + 0.01 ms per step, by busy waiting
        calls.append(T)
        import time
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 5e-4 + 1e-5 * T:
            pass

    us = bench.per_step_us(fake_run, 20, 200, repeats=2)
    assert 5 < us < 30  # 10 us per step, not (500 + 10 T) / T
    assert 20 in calls and 200 in calls


def test_steps_section_reports_every_engine_and_a_matching_hybrid():
    rows = bench.bench_steps((3,), quick=True, log=lambda *a: None)
    (r,) = rows
    for key in ("numpy_us", "compiled_us", "hybrid_us", "bptt_us", "product_us", "compiled_ratio"):
        assert np.isfinite(r[key]) and r[key] > 0, key
    assert r["kernel"] == "loops"
    assert r["hybrid_rel_diff_W"] < 1e-9


def test_targets_table_says_met_or_missed():
    res = {"steps": [{"n": 3, "compiled_us": 0.2, "speedup_vs_numpy": 100.0},
                     {"n": 128, "compiled_ratio": 1.3, "hybrid_speedup_vs_rtrl": 9.0, "hybrid_rel_diff_W": 1e-15}],
           "batched": [{"n": 3, "B": 64, "us_per_stream_step": 0.2}],
           "memory": [{"kind": "rtrl", "T": 10_000, "peak_rss_mb": 100.0},
                      {"kind": "rtrl", "T": 1_000_000, "peak_rss_mb": 104.0}],
           "compile": {"first": {"rtrl_s": 6.0}, "cached": {"rtrl_s": 0.1}}}
    met = {t["target"]: t["met"] for t in bench.targets_table(res)}
    assert met["n=3 one stream, us/step"] and met["n=3 speed-up over NumPy reference"]
    assert not met["n=128 step / plain product"]
    assert met["n=128 hybrid speed-up over RTRL"] and met["n=128 hybrid vs RTRL weights (rel.)"]
    assert not met["n=3, 64 streams, us per stream-step"]
    assert met["RTRL peak RSS T=1e+06 vs T=1e+04"]
    assert not met["compile, first call (empty cache)"] and met["first call, cached, new process"]


def test_report_and_plot_are_written(tmp_path):
    res = {"meta": {"mode": "quick", "threads": 1, "cpu": "x", "date": "d", "loadavg": [0, 0, 0]},
           "steps": bench.bench_steps((3,), quick=True, log=lambda *a: None),
           "memory": [{"kind": "rtrl", "n": 16, "T": 10, "peak_rss_mb": 1.0},
                      {"kind": "bptt", "n": 16, "T": 10, "peak_rss_mb": 2.0}]}
    res["targets"] = bench.targets_table(res)
    md = bench.markdown_report(res)
    assert "| 3 |" in md and "## Targets" in md
    json.dumps(res)  # JSON-able
    bench.plot_memory(res["memory"], tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_cli_registers_bench():
    args = build_parser().parse_args(["bench", "--quick", "--sections", "steps", "--sizes", "3"])
    assert args.quick and args.sections == ["steps"] and args.sizes == [3]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--sections", "gpu"])
