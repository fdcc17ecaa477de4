"""The JAX engine on several devices: P sharded over its rows i equals one device to rounding.

Four CPU devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX is
imported, so the checks run in one child process (one JAX start for all of them), which prints
what it measured as JSON; the assertions are here.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

_CHILD = textwrap.dedent(r"""
    import json
    import numpy as np
    import jax
    from rtrl import jax_engine, rules
    from rtrl.rules.rtrl import SensitivityState

    def problem(seed, n, T, B=None, m=2):
        rng = np.random.default_rng(seed)
        lead = () if B is None else (B,)
        K = m + 1 + n
        W = rng.uniform(-0.8, 0.8, lead + (n, K))
        xs = rng.standard_normal(lead + (T, m))
        mask = rng.random(lead + (T, n)) < 0.6
        ds = np.where(mask, rng.uniform(0.1, 0.9, lead + (T, n)), 0.0)
        wmask = (rng.random((n, K)) < 0.75).astype(float)
        P = rng.standard_normal(lead + (n, n, K)) * 0.1  # a mid-run state
        return W, SensitivityState(np.full(lead + (n,), 0.3), P), xs, ds, mask, wmask

    out = {"devices": len(jax.devices())}
    diffs = {}
    for spec in ("rtrl", "hybrid:3"):
        rule = rules.make(spec)
        for B in (None, 2):
            W, st, xs, ds, mask, wmask = problem(1, 8, 11, B)
            kw = dict(lr=0.4, activation="tanh", teacher_forcing=True, clip=0.5, wmask=wmask)
            one = rule.run(W, st, xs, ds, mask, engine="jax", **kw)
            numba = [rule.run(W[b], SensitivityState(st.y[b], st.P[b]), xs[b], ds[b], mask[b], **kw)
                     for b in range(B)] if B else [rule.run(W, st, xs, ds, mask, **kw)]
            for D in ((2, 4) if spec == "rtrl" and B is None else (4,)):
                with jax_engine.options(devices=D):
                    got = rule.run(W, st, xs, ds, mask, engine="jax", **kw)
                key = f"{spec} B={B} D={D}"
                diffs[key] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                 for a, b in ((got[0], one[0]), (got[1].y, one[1].y), (got[1].P, one[1].P),
                                              (got[2], one[2]), (got[3], one[3])))
            diffs[f"{spec} B={B} jax-vs-numba"] = max(
                float(np.max(np.abs(a - b))) for k, nb in enumerate(numba)
                for a, b in (((one[0][k] if B else one[0]), nb[0]), ((one[1].P[k] if B else one[1].P), nb[1].P)))
    out["diffs"] = diffs

    # a state kept on the devices stays sharded over the rows i and gives the same numbers
    W, st, xs, ds, mask, wmask = problem(2, 8, 11)
    rule = rules.make("rtrl")
    want = rule.run(W, st, xs, ds, mask, lr=0.3, engine="jax")
    with jax_engine.options(devices="all"):
        dev = jax_engine.to_device(st)
        full = lambda spec: list(spec) + [None] * (3 - len(spec))  # PartitionSpec drops trailing Nones
        out["spec_in"] = full(dev.P.sharding.spec)
        Wd, sd, ys, G = rule.run(W, dev, xs, ds, mask, lr=0.3, engine="jax")
        out["spec_out"] = full(sd.P.sharding.spec)
        out["shard_shapes"] = sorted({tuple(s.data.shape) for s in sd.P.addressable_shards})
        out["device_state_diff"] = float(np.max(np.abs(np.asarray(sd.P) - want[1].P)))

    # n = 6 rows do not split over 4 devices: refused, naming the counts that work
    W, st, xs, ds, mask, wmask = problem(3, 6, 4)
    try:
        with jax_engine.options(devices=4):
            rule.run(W, st, xs, ds, mask, engine="jax")
        out["uneven"] = None
    except ValueError as exc:
        out["uneven"] = str(exc)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def child():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_four_host_devices_are_there(child):
    assert child["devices"] == 4


def test_sharded_equals_one_device_to_rounding(child):
    # RTRL and the hybrid, one stream and two batched streams, 2 and 4 devices, teacher forcing,
    # clipping and a connectivity mask, from a mid-run state
    diffs = {k: v for k, v in child["diffs"].items() if "D=" in k}
    assert len(diffs) == 5
    assert all(v <= 1e-12 for v in diffs.values()), diffs


def test_jax_equals_numba_on_the_same_problems(child):
    diffs = {k: v for k, v in child["diffs"].items() if "numba" in k}
    assert len(diffs) == 4
    assert all(v <= 1e-11 for v in diffs.values()), diffs


def test_a_device_state_stays_sharded_over_the_rows(child):
    assert child["spec_in"] == child["spec_out"] == [None, "i", None]
    assert child["shard_shapes"] == [[8, 2, 11]]  # each of 4 devices holds P[:, 2 rows i, :]
    assert child["device_state_diff"] <= 1e-12


def test_devices_that_do_not_divide_n_are_refused(child):
    assert child["uneven"] is not None
    assert "4 devices do not divide 6" in child["uneven"] and "[1, 2, 3]" in child["uneven"]
