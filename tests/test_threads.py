"""One knob for threads (rtrl.threads): resolution, the same answer at every thread count, determinism."""

import warnings

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import rtrl
from rtrl import threads as th
from rtrl.hybrid import PARALLEL_READ_MIN

POOL = numba.config.NUMBA_NUM_THREADS
COUNTS = sorted({1, min(2, POOL)})


@pytest.fixture(autouse=True)
def _restore_threads():
    before = th._current
    yield
    th.set_threads(before if before is not None else None)


def _blas_threads():
    return [d["num_threads"] for d in threadpool_info() if d.get("user_api") == "blas"]


def test_resolution_order_and_validation(monkeypatch):
    for var in th.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert th.default_threads() == th.available_cores()
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert th.default_threads() == 2  # OMP before NUMBA
    monkeypatch.setenv("RTRL_NUM_THREADS", "1")
    assert th.default_threads() == 1  # RTRL_NUM_THREADS first
    monkeypatch.setenv("RTRL_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="RTRL_NUM_THREADS"):
        th.default_threads()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            th.resolve_threads(bad)
    assert th.resolve_threads(10**6) == POOL  # capped at Numba's pool


def test_set_threads_sets_numba_and_blas_together():
    for k in COUNTS:
        assert th.set_threads(k) == k
        assert numba.get_num_threads() == k
        assert all(n == k for n in _blas_threads())
        assert th.get_threads() == k


def test_a_learner_applies_its_threads_when_it_computes():
    net = rtrl.OnlineLearner(3, 1, learning_rate=0.1, rng=0, threads=1)
    th.set_threads(max(COUNTS))
    net.step([0.5], [0.5, np.nan, np.nan])
    assert numba.get_num_threads() == 1 and th.get_threads() == 1
    with pytest.raises(ValueError, match="threads"):
        net.threads = 0
    assert net.threads == 1


def _hybrid_problem(n, T=40, seed=0):
    rng = np.random.default_rng(seed)
    W = rtrl.init_weights(n, 2, scale=0.3, rng=seed)
    xs = rng.standard_normal((T, 2))
    ds = np.full((T, n), np.nan)
    ds[:, :3] = rng.uniform(0.2, 0.8, (T, 3))
    return W, xs, ds


def test_the_hybrid_reads_its_sensitivities_with_blas_on_several_threads_only():
    from rtrl.hybrid import use_blas_read

    n = 56  # P(t0) has n * nK >= PARALLEL_READ_MIN numbers
    assert n * n * (n + 3) >= PARALLEL_READ_MIN
    assert use_blas_read(n, n + 3, 2) and not use_blas_read(n, n + 3, 1) and not use_blas_read(8, 11, 2)


@pytest.mark.parametrize("rule", ["rtrl", "hybrid"])
def test_exact_rules_agree_across_thread_counts_to_rounding(rule):
    W, xs, ds = _hybrid_problem(64, T=30, seed=1)
    ref = None
    for k in COUNTS:
        W_k, ys_k = rtrl.train_online(W, xs, ds, learning_rate=0.2, rule=rule, threads=k)
        if ref is None:
            ref = (W_k, ys_k)
        scale = np.abs(ref[0]).max()
        assert np.abs(W_k - ref[0]).max() <= 1e-12 * scale
        assert np.abs(ys_k - ref[1]).max() <= 1e-12


@pytest.mark.parametrize("n,rule", [(4, "rtrl"), (8, "rtrl"), (33, "rtrl"), (4, "uoro"), (5, "hybrid"),
                                    (6, "snap-1")])
def test_batched_streams_are_the_same_at_every_thread_count_bit_for_bit(n, rule):
    B, T = 5, 30
    rng = np.random.default_rng(n)
    xs = rng.standard_normal((B, T, 2))
    ds = np.where(rng.random((B, T, n)) < 0.4, rng.uniform(0.2, 0.8, (B, T, n)), np.nan)
    W = np.stack([rtrl.init_weights(n, 2, scale=0.5, rng=b) for b in range(B)])
    make = (lambda: rtrl.rules.make("uoro", rng=3)) if rule == "uoro" else (lambda: rule)
    out = {}
    for k in COUNTS:
        net = rtrl.OnlineLearner(n, 2, learning_rate=0.3, rule=make(), W=W, n_streams=B, threads=k)
        out[k] = (net.partial_fit(xs, ds), net.W)
    from rtrl.kernels import BATCH_BLAS_THREADS_MIN_UNITS

    for k in COUNTS:
        if rule == "rtrl" and n >= BATCH_BLAS_THREADS_MIN_UNITS:  # BLAS's threads: the sums in another order
            np.testing.assert_allclose(out[k][0], out[1][0], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(out[k][1], out[1][1], rtol=1e-12, atol=1e-15)
        else:  # one stream per thread, the same kernel as on one thread: bit for bit
            np.testing.assert_array_equal(out[k][0], out[1][0])
            np.testing.assert_array_equal(out[k][1], out[1][1])
    if rule == "uoro":
        return  # (its random draws depend on the stream's index in the batch: not comparable alone)
    # each stream is what it would be alone
    alone = rtrl.OnlineLearner(n, 2, learning_rate=0.3, rule=make(), W=W[2], threads=1)
    np.testing.assert_allclose(alone.partial_fit(xs[2], ds[2]), out[max(COUNTS)][0][2], rtol=1e-12, atol=1e-14)


def test_a_run_is_deterministic_at_a_fixed_thread_count():
    W, xs, ds = _hybrid_problem(64, T=25, seed=2)
    k = max(COUNTS)
    a = rtrl.train_online(W, xs, ds, learning_rate=0.2, rule="hybrid", threads=k)
    b = rtrl.train_online(W, xs, ds, learning_rate=0.2, rule="hybrid", threads=k)
    np.testing.assert_array_equal(a[0], b[0])
    B = np.stack([W, W * 0.5, W * 0.25])
    xb = np.stack([xs] * 3)
    db = np.stack([ds] * 3)
    a = rtrl.train_online(B, xb, db, learning_rate=0.2, threads=k)
    b = rtrl.train_online(B, xb, db, learning_rate=0.2, threads=k)
    np.testing.assert_array_equal(a[0], b[0])


def test_oversubscription_warns_and_the_split_is_even():
    with pytest.warns(RuntimeWarning, match="4 workers x 2 threads"):
        assert th.check_oversubscription(4, 2, cores=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not th.check_oversubscription(2, 1, cores=2)
    assert th.split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert th.split(2, 5) == [(0, 1), (1, 2)]
    assert th.parallel_map(lambda v: v * v, range(7), 2) == [v * v for v in range(7)]


def test_dask_workers_get_one_thread_by_default():
    from rtrl.experiments.runner import Runner

    assert Runner(workers=2).threads_per_worker == 1
    assert Runner(workers=0).threads_per_worker is None  # serial: this process's setting
    assert Runner(workers=2, threads_per_worker=1).threads_per_worker == 1
    with pytest.raises(ValueError, match="threads"):
        Runner(workers=2, threads_per_worker=0)


def test_stream_refuses_bad_threads(tmp_path, capsys):
    from rtrl.cli import main

    (tmp_path / "d.csv").write_text("x,d\n0.1,0.5\n")
    assert main(["stream", str(tmp_path / "d.csv"), "--inputs", "x", "--targets", "d", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
