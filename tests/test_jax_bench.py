"""The JAX benchmark's machinery (no figure is asserted; GPU goals are judged only on a GPU run)."""

import json

import pytest

pytest.importorskip("jax")

from rtrl import jax_bench  # noqa: E402
from rtrl.cli import build_parser  # noqa: E402


def _res(platform):
    rows = [{"n": 512, "status": "ran", "P_GB": 0.54, "product_us": 2000.0, "rtrl_us": 2400.0, "rtrl_ratio": 1.2,
             "hybrid_us": 300.0, "block": 256, "hybrid_steps_per_s": 3333.0, "hybrid_ratio": 0.15,
             "hybrid_us_by_block": {256: 300.0, 64: 250.0}},
            {"n": 1024, "status": "ran", "P_GB": 4.3, "product_us": 40000.0, "rtrl_us": 56000.0, "rtrl_ratio": 1.4,
             "hybrid_us": 12000.0, "block": 512, "hybrid_steps_per_s": 83.3, "hybrid_ratio": 0.3},
            {"n": 2048, "status": "does not fit: ...", "P_GB": 34.4}]
    meta = {"platform": platform, "device_kind": "x", "devices": 1, "jax": "0", "dtype": "float32",
            "precision": "highest", "date": "d", "cpu_cores_used": 1, "sizes": [512, 1024, 2048]}
    res = {"meta": meta, "jax_steps": rows, "largest_n": 1024}
    res["targets"] = jax_bench.jax_targets(res)
    return res


def test_gpu_goals_say_met_or_missed():
    met = {t["target"]: t["met"] for t in _res("gpu")["targets"]}
    assert met["n=512 RTRL step / plain product"] and not met["n=1024 RTRL step / plain product"]
    assert not met["n=1024 hybrid, exact real-time steps per second"]
    assert not met["n=2048 exact RTRL runs"]


def test_cpu_runs_judge_only_the_numba_comparison():
    res = _res("cpu")
    res["jax_steps"][0].update(jax_vs_numba_rtrl=1.2, jax_vs_numba_hybrid=1.6)
    met = {t["target"]: t["met"] for t in jax_bench.jax_targets(res)}
    assert met == {"n=512 rtrl: JAX / Numba (CPU)": True, "n=512 hybrid: JAX / Numba (CPU)": False}


def test_report_names_sizes_that_do_not_fit_and_the_block_table():
    res = _res("gpu")
    md = jax_bench.jax_markdown(res)
    assert "| 2048 | 34.40 | does not fit" in md or "| 2048 | 34.4 | does not fit" in md
    assert "Largest n that ran: 1024" in md and "h = 64" in md
    json.dumps(res)


def test_bench_cli_takes_the_jax_options():
    args = build_parser().parse_args(["bench", "--engine", "jax", "--sizes", "128", "256", "--devices", "all",
                                      "--precision", "default", "--dtype", "float64", "--blocks", "64"])
    assert (args.engine, args.sizes, args.devices, args.precision, args.dtype, args.blocks) == (
        "jax", [128, 256], "all", "default", "float64", [64])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--engine", "jax", "--devices", "0"])
