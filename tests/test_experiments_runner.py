"""The runner: serial, local Dask cluster and an external loopback scheduler give the same
results, in spec order, whatever the completion order; failures name their spec."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rtrl.experiments.runner import Runner, RunError, run_specs, spec_cost

# The fakes below travel to Dask workers by reference: LocalCluster's spawned workers inherit our
# sys.path, and the external scheduler and worker get this folder on PYTHONPATH.


@dataclasses.dataclass(frozen=True)
class FakeSpec:
    task: str
    units: int
    steps: int
    seed: int


@dataclasses.dataclass(frozen=True)
class FakeResult:
    spec: FakeSpec
    value: float
    pid: int


def fake_run(spec):
    """Deterministic in the spec; sleeps so that small (late-submitted) runs finish in a scrambled order."""
    time.sleep(0.02 * ((spec.seed * 7) % 5))
    value = float(np.random.default_rng([spec.seed, spec.units]).standard_normal())
    return FakeResult(spec, value, os.getpid())


def failing_run(spec):
    if spec.seed == 2:
        raise FloatingPointError("diverged on purpose")
    return fake_run(spec)


SPECS = [FakeSpec("t", units, 10 * units, seed) for units in (2, 3) for seed in range(5)]


def values(results):
    return [(r.spec, r.value) for r in results]


@pytest.fixture(scope="module")
def serial_results():
    return run_specs(SPECS, fake_run, workers=0, progress=False)


def test_serial_results_follow_spec_order(serial_results):
    assert [r.spec for r in serial_results] == SPECS
    assert len({r.value for r in serial_results}) == len(SPECS)


def test_largest_runs_are_started_first():
    started = []

    def record(spec):
        started.append(spec)
        return fake_run(spec)

    run_specs(SPECS, record, workers=0, progress=False)
    costs = [spec_cost(s) for s in started]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] > costs[-1]


def test_equal_specs_run_once_and_share_the_result():
    calls = []

    def count(spec):
        calls.append(spec)
        return fake_run(spec)

    specs = [SPECS[0], SPECS[1], SPECS[0]]
    results = run_specs(specs, count, workers=0, progress=False)
    assert len(calls) == 2
    assert results[0] is results[2] and [r.spec for r in results] == specs


def test_local_cluster_matches_serial(serial_results):
    results = run_specs(SPECS, fake_run, workers=2, progress=False)
    assert values(results) == values(serial_results)
    assert os.getpid() not in {r.pid for r in results}  # really ran in worker processes


@pytest.fixture(scope="module")
def loopback_cluster(tmp_path_factory):
    """A real `dask scheduler` and `dask worker` in subprocesses, on 127.0.0.1 only; torn down after."""
    tmp = tmp_path_factory.mktemp("dask")
    sched_file = tmp / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    common = dict(cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)], **common)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("dask scheduler did not start on 127.0.0.1 within 60 s")
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
                                       "--nthreads", "1", "--nworkers", "1", "--no-dashboard"], **common))
        yield address
    finally:
        for p in reversed(procs):  # the worker first, then its scheduler
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def test_external_loopback_scheduler_matches_serial(loopback_cluster, serial_results):
    with Runner(scheduler=loopback_cluster, workers=1, progress=False) as runner:
        info = runner.describe()
        results = runner.map(SPECS, fake_run)
    assert info == {"mode": "dask-scheduler", "scheduler": loopback_cluster, "workers": 1}
    assert values(results) == values(serial_results)
    assert os.getpid() not in {r.pid for r in results}


def test_external_scheduler_real_training_run(loopback_cluster):
    """The real run_one travels to the external worker and gives the serial numbers."""
    from rtrl.experiments import claims, training

    specs = sorted(claims.CLAIMS[0].specs(True, seeds=1), key=spec_cost)[:2]
    specs = [dataclasses.replace(s, steps=min(s.steps, 300)) for s in specs]
    here = run_specs(specs, training.run_one, workers=0, progress=False)
    there = run_specs(specs, scheduler=loopback_cluster, progress=False)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if not k.endswith("seconds")}  # noqa: E731
    assert [strip(r) for r in there] == [strip(r) for r in here]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failing_run_names_its_spec(workers):
    with pytest.raises(RunError, match=r"seed=2.*diverged on purpose"):
        run_specs(SPECS[:4], failing_run, workers=workers, progress=False)


def test_bad_execution_arguments():
    with pytest.raises(ValueError, match="workers: expected an integer >= 0"):
        Runner(workers=-1)
    with pytest.raises(ValueError, match="cannot be combined with scheduler"):
        Runner(workers=0, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match="scheduler: expected an address string"):
        Runner(scheduler=8786)


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ConnectionError, match="could not connect to 'tcp://127.0.0.1:9'"):
        with Runner(scheduler="tcp://127.0.0.1:9", timeout=2, progress=False):
            pass


def test_map_outside_the_context_manager_is_an_error():
    runner = Runner(workers=1, progress=False)
    with pytest.raises(RuntimeError, match="context manager"):
        runner.map(SPECS[:1], fake_run)


def test_cli_reproduce_on_the_external_scheduler(loopback_cluster, tmp_path, capsys):
    from rtrl.cli import main
    from rtrl.experiments.claims import CLAIMS

    cheapest = min(CLAIMS, key=lambda c: sum(spec_cost(s) for s in c.specs(True, seeds=1)))
    args = ["reproduce", "--quick", "--seeds", "1", "--claims", cheapest.id, "--no-progress"]
    assert main(args + ["--scheduler", loopback_cluster, "--out", str(tmp_path / "remote")]) == 0
    assert main(args + ["--workers", "0", "--out", str(tmp_path / "here")]) == 0
    remote, here = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("remote", "here"))
    assert remote["config"]["execution"] == {"mode": "dask-scheduler", "scheduler": loopback_cluster, "workers": 1}
    strip = lambda rs: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rs]  # noqa: E731
    assert strip(remote["claims"][0]["runs"]) == strip(here["claims"][0]["runs"])
    assert remote["claims"][0]["holds"] == here["claims"][0]["holds"]
