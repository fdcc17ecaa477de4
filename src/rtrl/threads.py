"""One knob for threads: rtrl's compiled loops and the BLAS library they call, together.

``threads=`` on :func:`rtrl.train_online`, :func:`rtrl.gradient`, :class:`rtrl.OnlineLearner`,
the estimators, ``rtrl stream --threads`` and ``rtrl bench --threads`` all come here. What uses
threads:

- the BLAS products of exact RTRL (n >= 6) and of Schmidhuber's hybrid (its block ends);
- the hybrid's per-step read of the carried sensitivities (a parallel compiled loop);
- batched streams (``n_streams=B``): independent streams spread over the threads.

The number is resolved, in this order, from the ``threads`` argument; the environment variable
``RTRL_NUM_THREADS``; ``OMP_NUM_THREADS``; ``NUMBA_NUM_THREADS``; the cores this process may run on
(``os.sched_getaffinity``). It is capped at Numba's thread pool size (``NUMBA_NUM_THREADS``, fixed
when Numba starts, by default the number of cores).

The setting is **process-wide**, like BLAS's own: :func:`set_threads` sets Numba's thread count
(``numba.set_num_threads``) and the BLAS libraries' (threadpoolctl) once, and calls that pass the
same number again cost nothing. A call with another number changes it for the whole process.

Results do not depend on the thread count beyond rounding: each stream of a batch is computed by
one thread alone (bit for bit the same at any count); the hybrid's parallel loop splits its
columns into fixed chunks, independent of the thread count (bit for bit); only the BLAS products
may sum in another order (relative differences ~1e-15). At a fixed thread count a run is
deterministic. ``tests/test_threads.py`` checks both.

Dask sweeps (:mod:`rtrl.experiments.runner`) give every worker process one thread by default, so
that workers x threads never exceeds the cores; :func:`check_oversubscription` warns when a user
asks for more.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["available_cores", "default_threads", "resolve_threads", "set_threads", "get_threads", "blas_threads",
           "parallel_map", "split", "check_oversubscription", "ENV_VARS"]

#: Environment variables read for the default thread count, first one set wins.
ENV_VARS = ("RTRL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

_current: int | None = None  # the count last applied by set_threads (None: never)
_controller: Any = None  # a threadpoolctl.ThreadpoolController, made once
_pools: dict[int, ThreadPoolExecutor] = {}  # thread count -> a pool kept for the process


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def _pool_size() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def default_threads() -> int:
    """The thread count when none is given: the first of :data:`ENV_VARS` that is set, else the cores."""
    for var in ENV_VARS:
        text = os.environ.get(var, "").strip()
        if text:
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"{var}: expected an integer >= 1, got {text!r}") from None
            if value < 1:
                raise ValueError(f"{var}: expected an integer >= 1, got {text!r}")
            return value
    return available_cores()


def resolve_threads(threads: int | None = None) -> int:
    """``threads`` checked (an integer >= 1; None: :func:`default_threads`), capped at Numba's pool size."""
    if threads is None:
        value = default_threads()
    else:
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads: expected None or an integer >= 1, got {threads!r}")
        value = int(threads)
    return max(1, min(value, _pool_size()))


def _blas(controller_limit: int | None) -> None:
    global _controller
    if _controller is None:
        # NOTE: the controller sees the libraries loaded when it is made; the compiled kernels call the
        # BLAS that scipy loads (Numba's np.dot), which may not be loaded yet: load it first.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    _controller.limit(limits=controller_limit, user_api="blas")


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` threads (None: the default) in rtrl's compiled loops and in BLAS; return the count.

    Process-wide; a no-op when the count is already in force.
    """
    global _current
    value = resolve_threads(threads)
    if value != _current:
        import numba

        numba.set_num_threads(value)
        _blas(value)
        _current = value
    return value


def get_threads() -> int:
    """The thread count in force (set on first use from the default)."""
    return _current if _current is not None else set_threads(None)


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """BLAS limited to ``count`` threads inside the block (for loops that already run one stream per thread)."""
    if _current is None:
        set_threads(None)
    if count == _current:
        yield
        return
    _blas(count)
    try:
        yield
    finally:
        _blas(_current)


def check_oversubscription(workers: int, threads_per_worker: int, *, cores: int | None = None,
                           stacklevel: int = 2) -> bool:
    """Warn (RuntimeWarning) when ``workers x threads_per_worker`` exceeds the cores; return whether it does."""
    cores = available_cores() if cores is None else cores
    if workers * threads_per_worker > cores:
        warnings.warn(f"threads: {workers} workers x {threads_per_worker} threads each = "
                      f"{workers * threads_per_worker} threads on {cores} cores: they will compete for the cores "
                      f"and every run gets slower; use workers x threads <= {cores} (the default gives each worker "
                      "1 thread)", RuntimeWarning, stacklevel=stacklevel)
        return True
    return False


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """``count`` items in ``parts`` contiguous, nearly equal [start, stop) ranges (none empty)."""
    parts = max(1, min(parts, count))
    base, extra = divmod(count, parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + base + (p < extra)
        out.append((start, stop))
        start = stop
    return out


def parallel_map(fn: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, on up to ``threads`` threads (default: the count in force).

    For compiled loops that release the GIL (Numba ``nogil=True``): each item runs on one thread
    alone, so its result is the same as in a serial loop, bit for bit.
    """
    threads = get_threads() if threads is None else threads
    threads = min(threads, len(items))
    if threads <= 1:
        return [fn(item) for item in items]
    pool = _pools.get(threads)
    if pool is None:
        pool = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rtrl")
    return list(pool.map(fn, items))
