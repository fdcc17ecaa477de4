"""Run many independent training runs, serially or in parallel on a Dask cluster.

A run is a picklable, frozen spec and a module-level function ``spec -> result``
(by default :func:`rtrl.experiments.training.run_one`, which is deterministic). The
runner only decides *where* each run executes; the results always come back in the
order of the specs, so the numbers never depend on the parallelism.

Three ways to execute:

* ``workers=0``: serially in this process (for debugging; no Dask at all);
* ``workers=N`` or ``None`` (default: the number of usable cores): a Dask
  ``LocalCluster`` on loopback with N worker *processes* of one thread each
  (the runs are CPU-bound compiled loops that hold the GIL, hence processes);
* ``scheduler="tcp://host:port"``: an existing Dask cluster (then ``workers``, if
  given, is the number of workers to wait for before submitting).

Examples
--------
>>> from rtrl.experiments.runner import Runner
>>> with Runner(workers=0) as runner:                       # doctest: +SKIP
...     results = runner.map(specs)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["Runner", "RunError", "WorkerSetupError", "run_specs", "default_workers", "spec_cost", "plan_workers"]

#: Seconds to wait for ``workers`` workers to join an existing scheduler.
CONNECT_TIMEOUT_S = 30
#: Seconds to wait for an existing scheduler to answer at all (an unreachable address fails fast).
SCHEDULER_ANSWER_S = 5
#: When stderr is not a terminal (a log, CI), a progress line is printed at most this often.
PROGRESS_LINE_S = 10.0


def plan_workers(workers, scheduler, n_runs, log=None):
    """Worker processes for a local cluster: never more than the distinct runs; warn above the cores.

    NOTE: the default is one process per usable core (one thread each), capped at the number of
    distinct runs; an explicit ``workers`` is capped the same way (extra processes would only
    start, idle and slow the start-up), and a count above the cores is allowed with a warning.
    """
    if scheduler is not None or workers == 0:
        return workers
    cores = default_workers()
    n = cores if workers is None else workers
    n = max(1, min(n, max(1, n_runs)))
    if workers is not None and n > cores:
        (log or (lambda m: print(m, file=sys.stderr)))(
            f"warning: {n} worker processes on {cores} core(s): they will compete for the cores "
            "(runs take longer; results are the same)")
    return n


def default_workers() -> int:
    """The number of cores this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def spec_cost(spec) -> float:
    """A rough relative cost of one run, used only to start the largest runs first.

    Real-time RTRL costs about 2 n^3 K flops per step (n units, K = m + 1 + n) plus a fixed
    per-step overhead; the inputs m are not known here, so K ~ n + 3.
    """
    n = float(getattr(spec, "units", 1) or 1)
    steps = float(getattr(spec, "steps", 1) or 1)
    return steps * (2.0 * n ** 3 * (n + 3.0) + 200.0)


def _default_func():
    from .training import run_one

    return run_one


def _warm_up(threads: int | None = None) -> float:
    """Import the package and compile (or load from Numba's cache) the RTRL kernel; return seconds.

    ``threads``: the threads this worker's runs use (rtrl.threads.set_threads; None: leave them).
    """
    start = time.perf_counter()
    import numpy as np

    import rtrl

    if threads is not None:
        from ..threads import set_threads

        set_threads(threads)

    W = rtrl.init_weights(2, 1, rng=0)
    rtrl.train_online(W, np.ones((3, 1)), np.full((3, 2), 0.5), learning_rate=0.1)
    return time.perf_counter() - start


def _progress_enabled(progress) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def _check_workers(workers):
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0 (0 = serial, in this process), got {workers!r}")
    return workers


class RunError(RuntimeError):
    """A run raised; the message names the spec that failed."""


class WorkerSetupError(RuntimeError):
    """The Dask workers could not import rtrl or compile its kernel (a different environment?)."""


class Runner:
    """Execute runs serially or on a Dask cluster; a context manager that owns the cluster.

    Parameters
    ----------
    workers : int or None
        0: serial in this process. N >= 1: a loopback ``LocalCluster`` with N processes of one
        thread each. None (default): N = the number of usable cores. With ``scheduler``: the
        number of workers to wait for (None: at least one).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://127.0.0.1:8786``). The workers must be
        able to import this version of ``rtrl``.
    progress : bool or None
        Show a tqdm progress bar on stderr. None (default): only when stderr is a terminal.
    timeout : float
        Seconds to wait for ``scheduler`` to answer and for its workers to join.
    threads_per_worker : int, optional
        Threads each run may use (:mod:`rtrl.threads`: BLAS and the compiled loops). Default: 1 on
        Dask workers, so that workers x threads never exceeds the cores (a RuntimeWarning says when
        a local cluster would oversubscribe them); in serial mode, this process's setting.

    Notes
    -----
    The cluster starts once, on entry, and every worker imports ``rtrl`` and loads the
    compiled kernel (Numba ``cache=True``) before the first run, so compilation is paid once
    per worker, not per run. Runs are submitted largest first (:func:`spec_cost`) so the long
    ones do not finish last on a single worker.
    """

    def __init__(self, workers=None, scheduler=None, progress=None, timeout=CONNECT_TIMEOUT_S,
                 threads_per_worker=None):
        from ..threads import resolve_threads

        self.timeout = float(timeout)
        self.workers = _check_workers(workers)
        if threads_per_worker is None:
            self.threads_per_worker = None if (self.workers == 0 and scheduler is None) else 1
        else:
            self.threads_per_worker = resolve_threads(threads_per_worker)
        if scheduler is not None and not isinstance(scheduler, str):
            raise TypeError(f"scheduler: expected an address string like 'tcp://127.0.0.1:8786', got "
                            f"{type(scheduler).__name__}")
        if scheduler is not None and self.workers == 0:
            raise ValueError("workers: 0 (serial) cannot be combined with scheduler; drop one of them")
        self.scheduler = scheduler
        self.progress = _progress_enabled(progress)
        # progress=None and stderr not a terminal: plain progress lines at a steady pace instead of a bar
        self._lines = progress is None and not self.progress
        self._client = None
        self._cluster = None

    # -- life cycle -------------------------------------------------------------------------
    @property
    def serial(self) -> bool:
        return self.scheduler is None and self.workers == 0

    def describe(self) -> dict:
        """The execution settings, for the run's recorded config."""
        if self.serial:
            return {"mode": "serial", "workers": 0}
        if self.scheduler is not None:
            n = len(self._client.scheduler_info()["workers"]) if self._client is not None else self.workers
            return {"mode": "dask-scheduler", "scheduler": self.scheduler, "workers": n}
        return {"mode": "dask-local", "workers": self.workers or default_workers()}

    def __enter__(self):
        if self.serial:
            _warm_up(self.threads_per_worker)
            return self
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout=min(self.timeout, SCHEDULER_ANSWER_S),
                                      set_as_default=False)
            except OSError as exc:
                raise ConnectionError(f"scheduler: could not connect to {self.scheduler!r} ({exc}); start one "
                                      "with `dask scheduler` or leave --scheduler out for a local cluster") from None
            try:
                self._client.wait_for_workers(self.workers or 1, timeout=self.timeout)
            except TimeoutError:
                self.close()
                raise TimeoutError(f"scheduler: no {self.workers or 1} worker(s) joined {self.scheduler!r} within "
                                   f"{self.timeout:g} s; start workers with `dask worker {self.scheduler}`") from None
        else:
            from ..threads import check_oversubscription

            n = self.workers or default_workers()
            check_oversubscription(n, self.threads_per_worker or 1, stacklevel=3)
            # NOTE: processes, one thread each: runs are CPU-bound compiled loops; distributed's
            # pre-spawn environment already pins OMP/MKL/OpenBLAS to one thread per worker.
            # Worker logs below CRITICAL are silenced: on a loaded machine a late heartbeat logs a
            # traceback although the worker reconnects and no result changes; a run that really
            # fails reaches us through its future and raises RunError.
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None, silence_logs=logging.CRITICAL,
                                         # no dashboard; its plain HTTP endpoint on a free loopback port
                                         scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
            self._client = Client(self._cluster, set_as_default=False)
        try:
            self._client.run(_warm_up, self.threads_per_worker)
        except Exception as exc:
            self.close()
            raise WorkerSetupError(f"Dask workers could not import rtrl or compile its kernel ({exc!r}); the workers "
                               "need the same environment as this process") from exc
        return self

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __exit__(self, *exc_info):
        self.close()
        return False

    # -- running ----------------------------------------------------------------------------
    def map(self, specs: Sequence, func: Callable | None = None, *, desc: str = "runs") -> list:
        """Run ``func(spec)`` for every spec; return the results in the order of ``specs``.

        Equal specs (frozen dataclasses compare by value) run once and share their result.
        A failing run raises :class:`RunError` naming its spec; the other runs are cancelled.
        """
        specs = list(specs)
        func = _default_func() if func is None else func
        unique: dict = {}
        for spec in specs:
            unique.setdefault(spec, None)
        order = sorted(unique, key=spec_cost, reverse=True)  # largest first
        done = self._map_serial(order, func, desc) if self.serial else self._map_dask(order, func, desc)
        return [done[spec] for spec in specs]

    def _bar(self, total, desc):
        from tqdm.auto import tqdm

        if self.progress or not self._lines:
            return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, disable=not self.progress,
                        dynamic_ncols=True)
        return _ProgressLines(total, desc)

    def _map_serial(self, order, func, desc) -> dict:
        out = {}
        with self._bar(len(order), desc) as bar:
            for spec in order:
                try:
                    out[spec] = func(spec)
                except Exception as exc:
                    raise RunError(f"run failed for {spec!r}: {exc!r}") from exc
                bar.update(1)
        return out

    def _map_dask(self, order, func, desc) -> dict:
        from distributed import as_completed

        if self._client is None:
            raise RuntimeError("Runner.map: use the runner as a context manager (`with Runner(...) as r:`)")
        futures = {}
        for rank, spec in enumerate(order):
            # priority: larger first; pure=False so a rerun is never served from a stale key
            fut = self._client.submit(func, spec, priority=len(order) - rank, pure=False)
            futures[fut] = spec
        out = {}
        try:
            with self._bar(len(order), desc) as bar:
                for fut in as_completed(list(futures), loop=self._client.loop):
                    spec = futures[fut]
                    try:
                        out[spec] = fut.result()
                    except Exception as exc:
                        raise RunError(f"run failed for {spec!r}: {exc!r}") from exc
                    bar.update(1)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self._client.cancel(pending)
        return out


class _ProgressLines:
    """A tqdm stand-in for logs: ``desc: k/N runs done (p %), s elapsed`` at most every PROGRESS_LINE_S."""

    def __init__(self, total, desc):
        self.total, self.desc, self.done = total, desc, 0
        self.start = self.last = time.perf_counter()

    def update(self, k=1):
        self.done += k
        now = time.perf_counter()
        if now - self.last >= PROGRESS_LINE_S or self.done == self.total:
            self.last = now
            pct = 100.0 * self.done / max(1, self.total)
            print(f"{self.desc}: {self.done}/{self.total} runs done ({pct:.0f} %), {now - self.start:.0f} s elapsed",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_specs(specs, func=None, *, workers=None, scheduler=None, progress=None, desc="runs") -> list:
    """Start a :class:`Runner`, run every spec, shut it down; results in the order of ``specs``."""
    workers = plan_workers(workers, scheduler, len(set(specs)))
    with Runner(workers=workers, scheduler=scheduler, progress=progress) as runner:
        return runner.map(specs, func, desc=desc)
