"""Learning on a live stream of CSV rows: the loop behind ``rtrl stream`` (no argument parsing here).

Every data row is one time step of real-time RTRL (:class:`~rtrl.learner.OnlineLearner`):
the row's input cells are x(t); the network produces y(t+1) = f(W z(t)) with the weights
as they are *before* it learns from this row, writes the target units' outputs as one
prediction line, then learns from the row's target cells (an empty or NaN cell: no target).
So the prediction written for row t is the network's estimate of row t's target columns,
made from the inputs of rows 1..t and the targets of rows 1..t-1 only (a fair,
"predict then learn" score).

The loop owns nothing global: it reads an iterator of lines (``str``, or ``bytes`` decoded
as UTF-8 one line at a time, so a bad byte is one bad row), writes bytes to a binary file
object, saves checkpoints through :meth:`OnlineLearner.save` and stops cleanly between rows
when :meth:`Stream.request_stop` is called (the command line calls it from its SIGINT/SIGTERM
handlers).

One physical line is one record: a quoted field never runs on to the next line (an unclosed
quote makes its own line a bad row, and the next line is read as usual). Numbers are plain
ASCII decimals (``[+-]digits[.digits][e[+-]digits]``, ``nan``, ``inf``), see :data:`NUMBER`.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .learner import OnlineLearner

__all__ = ["Stream", "StreamResult", "StreamError", "BadRowError", "DivergedError", "SaturatedError",
           "WriteError", "CheckpointBusyError", "ON_BAD_ROW", "NUMBER", "MAX_LINE_BYTES", "read_lines",
           "parse_columns", "checkpoint_info"]

ON_BAD_ROW = ("error", "skip")
#: Key of the stream's bookkeeping inside a model file's ``extra`` metadata.
CHECKPOINT_KEY = "stream"
#: How many skipped bad rows are described in the final report (the count is always exact).
MAX_BAD_EXAMPLES = 5
#: A line longer than this (in bytes, terminator excluded) is a bad row; it is never held in memory whole.
MAX_LINE_BYTES = 1 << 20
#: Rows in a row with a target unit pinned at a bound of its range before the stream reports saturation.
SATURATION_ROWS = 100
#: The longest --horizon: each row runs this many forward steps, so an absurd horizon would stall the stream.
MAX_HORIZON = 10_000
#: An output closer than this to a bound of its unit's range counts as pinned there (f' is then < ~1e-12).
SATURATION_EPS = 1e-12
#: A temporary file of an old rtrl (no writer pid in its name) older than this many seconds is stale.
STALE_TMP_SECONDS = 3600.0

_RANGES = {"logistic": (0.0, 1.0), "tanh": (-1.0, 1.0)}

#: The numbers a cell may hold: ASCII digits only (no full-width or other scripts' digits, no
#: ``_`` separators, no hexadecimal), an optional sign, fraction and exponent, or nan / inf /
#: infinity in any case, with optional spaces or tabs around.
NUMBER = re.compile(r"[ \t]*[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf(?:inity)?)[ \t]*",
                    re.IGNORECASE | re.ASCII)  # ASCII: IGNORECASE alone lets "ınf" (dotless i) match


def _number(cell: str):
    """The value of a cell that :data:`NUMBER` matches, else None (fast: ``float`` on ASCII text).

    Python's ``float`` reads exactly the ASCII strings NUMBER matches, plus digit separators
    (``_``) and four more whitespace characters (\\n, \\r, \\v, \\f), which are refused here.
    """
    if not cell.isascii() or "_" in cell or "\x0b" in cell or "\x0c" in cell or "\n" in cell or "\r" in cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


class StreamError(Exception):
    """The stream cannot go on (a bad header, a bad row, divergence); the message says why and what to do."""

    exit_code = 2


class BadRowError(StreamError):
    """A row that cannot be used: wrong number of fields, a non-numeric cell, bytes that are not
    UTF-8, a non-finite input or a target outside the range of its unit.

    Attributes: ``line`` (1-based physical line of the input, the header is line 1),
    ``column`` (name, or None when the whole row is wrong), ``reason``.
    """

    exit_code = 1

    def __init__(self, line: int, column: str | None, reason: str) -> None:
        self.line, self.column, self.reason = line, column, reason
        where = f"line {line}" + ("" if column is None else f", column {column!r}")
        super().__init__(f"{where}: {reason}")


class DivergedError(StreamError):
    """The weights or the rule's state became NaN/inf. The learner is rolled back to the last good step."""

    exit_code = 3

    def __init__(self, step: int, line: int, learning_rate: float, message: str | None = None) -> None:
        self.step, self.line = step, line
        super().__init__(message or (
            f"training diverged at step {step} (input line {line}): the weights or sensitivities became NaN "
            f"or inf. Lower the learning rate (now {learning_rate:g}; try {learning_rate / 10:g}) or cap "
            "the gradient with a clip norm"))


class SaturatedError(DivergedError):
    """A target unit's output stayed pinned at a bound of its range (f' = 0: it can no longer learn)."""

    def __init__(self, step: int, line: int, learning_rate: float, column: str, bound: float, activation: str,
                 rows: int) -> None:
        self.column, self.bound = column, bound
        super().__init__(step, line, learning_rate, (
            f"training saturated at step {step} (input line {line}): the output of target {column!r} has sat "
            f"at the bound {bound:g} of {activation} units for {rows} rows with a target away from it, so its "
            "slope f' is 0 and it can no longer learn: the weights grew too large. Lower the learning rate "
            f"(now {learning_rate:g}; try {learning_rate / 10:g}), cap the gradient with a clip norm, or scale "
            "the inputs to order 1"))


class WriteError(StreamError):
    """The predictions or a checkpoint could not be written (missing or read-only folder, disk full, ...).

    A checkpoint file already on disk is left as it was (saves are atomic). Attributes: ``what``
    ("checkpoint" or "output"), ``path``, ``reason``.
    """

    exit_code = 4

    def __init__(self, what: str, path: str, reason: str, *, at_start: bool = False) -> None:
        self.what, self.path, self.reason, self.at_start = what, path, reason, at_start
        super().__init__(f"cannot write the {what} {path}: {reason}{self.consequence}")

    @property
    def consequence(self) -> str:
        """What became of the state: nothing happened yet, or the last checkpoint is intact."""
        if self.at_start:
            return "; refused before the first row (nothing was read): choose a writable checkpoint path"
        return "; the last checkpoint saved before (if any) is left as it was" if self.what == "checkpoint" else ""


class CheckpointBusyError(StreamError):
    """Another process holds the lock of the same checkpoint path."""

    exit_code = 2


class _Stop(Exception):
    """Raised by request_stop while the loop is blocked waiting for input."""


class _LongLine:
    """Stands for a line longer than MAX_LINE_BYTES (its bytes are read and dropped)."""

    __slots__ = ("n_bytes",)

    def __init__(self, n_bytes):
        self.n_bytes = n_bytes


@dataclass
class StreamResult:
    """What a call of :meth:`Stream.run` did.

    ``rows_read``, ``bad_rows`` and ``clipped_targets`` count from the start of the stream (a
    resumed stream includes what its checkpoint had read); the ``*_this_run`` fields count this call only.
    """

    rows_read: int
    rows_this_run: int
    bad_rows: int
    bad_rows_this_run: int
    bad_examples: list = field(default_factory=list)
    stopped: str | None = None  # why the loop stopped early ("SIGTERM", "output closed", ...), None at end of input
    checkpoint: str | None = None  # path of the last checkpoint saved by this run, if any
    out_bytes: int = 0
    clipped_targets: int = 0
    clipped_targets_this_run: int = 0


def read_lines(f: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator["bytes | _LongLine"]:
    """Yield the lines of a binary file object as ``bytes`` (a line longer than ``max_bytes`` as one marker).

    Reads one line at a time (a pipe's rows are answered as they arrive) and never holds more
    than ``max_bytes`` of one line in memory.
    """
    readline = f.readline
    while True:
        line = readline(max_bytes + 2)  # room for the terminator, \n or \r\n (not counted in the limit)
        if not line:
            return
        end = 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0
        if len(line) - end > max_bytes:
            n = len(line)
            while not line.endswith(b"\n"):  # drop the rest of the overlong line
                line = readline(1 << 16)
                if not line:
                    break
                n += len(line)
            yield _LongLine(n)
        else:
            yield line


def parse_columns(text: str, name: str) -> tuple[str, ...]:
    """Split a comma list of column names ("a,b,c") into a tuple; reject empty or repeated names."""
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a comma-separated string of column names, got {type(text).__name__}")
    cols = tuple(c.strip() for c in text.split(","))
    if not cols or any(c == "" for c in cols):
        raise ValueError(f"{name}: expected a comma-separated list of column names, got {text!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{name}: a column is named twice in {text!r}")
    return cols


def checkpoint_info(meta: dict) -> dict | None:
    """The stream bookkeeping stored in a model file's metadata, or None if it is not a stream checkpoint."""
    info = (meta.get("extra") or {}).get(CHECKPOINT_KEY)
    return info if isinstance(info, dict) else None


def _reason(exc: OSError) -> str:
    """A short reason for an OSError: its text and errno name, e.g. 'No space left on device (ENOSPC)'."""
    import errno

    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # a live process of another user (or a pid we cannot test): keep its file
    return True


def stale_temporaries(path, *, now=None):
    """The leftover temporary files of saves of ``path`` that no live process is writing.

    Only the project's own names are considered: ``.NAME.PID.XXXXXXXX.tmp`` (see
    :func:`rtrl.io.atomic_write`) whose writer PID is not running (and is not this process),
    and ``.NAME.XXXXXXXX.tmp`` of older rtrl versions (no PID) older than
    :data:`STALE_TMP_SECONDS`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = re.escape(os.path.basename(path))
    with_pid = re.compile(rf"\.{base}\.([0-9]+)\.[a-z0-9_]{{8}}\.tmp")
    without_pid = re.compile(rf"\.{base}\.[a-z0-9_]{{8}}\.tmp")
    now = time.time() if now is None else now
    stale = []
    try:
        names = os.listdir(folder)
    except OSError:
        return stale
    for name in names:
        full = os.path.join(folder, name)
        hit = with_pid.fullmatch(name)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if hit:
            pid = int(hit.group(1))
            if pid != os.getpid() and not _pid_alive(pid):
                stale.append(full)
        elif without_pid.fullmatch(name) and now - st.st_mtime > STALE_TMP_SECONDS:
            stale.append(full)
    return sorted(stale)


class _CheckpointLock:
    """An exclusive ``fcntl.flock`` on ``.NAME.lock`` beside the checkpoint, held while a stream runs.

    The lock file is left in place (removing it would let two processes lock two different
    files); it holds the PID of the last holder, for the message of the one refused.
    """

    def __init__(self, path):
        path = os.fspath(path)
        self.path = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".lock")
        self.fd = None

    def acquire(self, checkpoint):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - platforms without flock (Windows): no lock
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise WriteError("checkpoint", checkpoint, f"cannot create its lock file {self.path}: "
                                                       f"{_reason(exc)}", at_start=True) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            raise CheckpointBusyError(
                f"the checkpoint {checkpoint} is in use by another running rtrl stream (pid {holder}); two runs "
                "on one checkpoint would overwrite each other's state: wait for it to end, stop it, or choose "
                "another --checkpoint") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


class Stream:
    """Feed CSV rows to a learner, one row per step, writing one prediction line per row.

    Parameters
    ----------
    learner : OnlineLearner
        Its first ``len(targets)`` units are the target units, in the order of ``targets``;
        ``learner.n_inputs`` must equal ``len(inputs)``.
    inputs, targets : sequence of str
        Column names (from the CSV header) of the input lines and of the targets.
    checkpoint : path, optional
        Where checkpoints go (model files with the stream's row count, see :mod:`rtrl.io`).
        Checked before the first row (its folder must exist and be writable), locked while the
        stream runs (a second stream on the same path is refused), and stale temporary files of
        interrupted saves of it are removed at the start.
    every : int
        Save a checkpoint every ``every`` rows (0: only at the end, on a stop request and
        before reporting a bad row).
    on_bad_row : {"error", "skip"}
        ``"error"``: raise :class:`BadRowError` (after saving a checkpoint of the state before
        the row). ``"skip"``: count the row, leave the state alone and write a prediction line
        with empty cells, so that output line i always answers input row i.
    clip_targets : bool
        A target outside the range of its unit ([0, 1] logistic, [-1, 1] tanh) is a bad row
        (False, default), or is clipped to the range and counted (True).
    saturation_rows : int
        Report saturation (:class:`SaturatedError`, exit 3) when a target unit's output sits at a
        bound of its range, while its target is away from that bound, on this many targeted rows
        in a row (0: never).
    rows_read, bad_rows, clipped_targets : int
        Counts carried over from a checkpoint when resuming.
    source, out_path : str, optional
        Recorded in checkpoints (``out_path`` lets a resumed run continue the same output file).
    run_info : dict, optional
        JSON data recorded in checkpoints as it is (the command line stores how the run was
        started: the seed and the settings it resolved).
    log : callable, optional
        Receives notes (one line each); default writes to stderr.
    learn : bool
        True (default): learn from every row. False: serve the model: predict at forward cost
        (:meth:`rtrl.OnlineLearner.forward`), the weights stay; target columns are not read.
    standardize : bool or (RunningStandardizer, RunningStandardizer)
        Standardise the input and target columns online with running means and standard
        deviations (:mod:`rtrl.preprocessing`): the network sees standardised values, and the
        predictions are written back in the data's units. A pair (inputs, targets) continues
        saved statistics (a checkpoint's). Inputs and targets are standardised with the
        statistics that include their row (so the first target is 0, not a raw value); the
        prediction for a row is written back with the target statistics from before that row
        (it cannot have seen its target). Saved in checkpoints.
    lags : sequence of int
        Lagged inputs: for each offset L (>= 1) and each input column, the column's value L rows
        back is an extra input line (after the current values, offset by offset; 0 -- the mean,
        when standardising -- until the stream has L rows). The learner has
        ``len(inputs) * (1 + len(lags))`` input lines. A linear target unit's input weights then
        form an online autoregressive model, and the recurrent units add memory on top.
    horizon : int
        Forecasts per row and target: h = 1 is the usual prediction; h = 2..H run a copy of the
        network freely from the same moment (before learning from the row, forward cost only),
        feeding each forecast back into its input column (``feedback``) and holding the other
        input columns at their last value. Output columns ``pred_<t>`` and ``pred_<t>_h2`` ...
    feedback : dict
        target column -> the input column its forecast feeds for h >= 2. Default: with one input
        and one target, the target feeds the input (forecasting a series from its own past).
    history : rows
        The last input rows (raw values, oldest first) carried over from a checkpoint (lags).
    """

    def __init__(self, learner: OnlineLearner, inputs: Sequence[str], targets: Sequence[str], *,
                 checkpoint: "str | os.PathLike[str] | None" = None, every: int = 0, on_bad_row: str = "error",
                 rows_read: int = 0, bad_rows: int = 0, source: str = "-", out_path: str | None = None,
                 run_info: dict | None = None, log: Callable[[str], None] | None = None, clip_targets: bool = False,
                 clipped_targets: int = 0, saturation_rows: int = SATURATION_ROWS, learn: bool = True,
                 standardize: Any = False, lags: Sequence[int] = (), horizon: int = 1,
                 feedback: dict[str, str] | None = None, history: Sequence[Sequence[float]] = ()) -> None:
        from .learner import OnlineLearner

        if not isinstance(learner, OnlineLearner):
            raise TypeError(f"learner: expected an rtrl.OnlineLearner, got {type(learner).__name__}")
        if learner.n_streams is not None:
            raise ValueError(f"learner: expected a single-stream OnlineLearner, got one of n_streams="
                             f"{learner.n_streams} (a CSV stream feeds one network)")
        self.inputs = tuple(inputs)
        self.targets = tuple(targets)
        self.lags = tuple(sorted(set(int(v) for v in lags))) if lags else ()
        for v in lags:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"lags: expected integers >= 1 (rows back), got {v!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= MAX_HORIZON:
            raise ValueError(f"horizon: expected an integer from 1 to {MAX_HORIZON} (forecasts per row), got {horizon!r}")
        self.horizon = int(horizon)
        lines_expected = len(self.inputs) * (1 + len(self.lags))
        if lines_expected != learner.n_inputs:
            lagged = f" x (1 + {len(self.lags)} lags) = {lines_expected} lines" if self.lags else ""
            raise ValueError(f"inputs: the model has {learner.n_inputs} input lines, --inputs names "
                             f"{len(self.inputs)} {list(self.inputs)}{lagged}")
        if feedback is None:
            feedback = ({self.targets[0]: self.inputs[0]} if len(self.inputs) == 1 and len(self.targets) == 1
                        else {})
        for tgt, col in feedback.items():
            if tgt not in self.targets or col not in self.inputs:
                raise ValueError(f"feedback: {tgt}={col} must name a target column ({list(self.targets)}) and an "
                                 f"input column ({list(self.inputs)})")
        self.feedback = dict(feedback)
        self._fb = [(self.targets.index(tgt), self.inputs.index(col)) for tgt, col in self.feedback.items()]
        depth = max(self.lags, default=0)
        rows = [list(map(float, r)) for r in history][-depth:] if depth else []
        if any(len(r) != len(self.inputs) or not all(math.isfinite(v) for v in r) for r in rows):
            raise ValueError(f"history: expected rows of {len(self.inputs)} finite numbers")
        self.history = rows
        if not 1 <= len(self.targets) <= learner.n_units:
            raise ValueError(f"targets: expected 1 to n_units = {learner.n_units} columns (one per target unit), "
                             f"got {len(self.targets)}")
        if on_bad_row not in ON_BAD_ROW:
            raise ValueError(f"on_bad_row: expected one of {ON_BAD_ROW}, got {on_bad_row!r}")
        for name, value in (("every", every), ("rows_read", rows_read), ("bad_rows", bad_rows),
                            ("clipped_targets", clipped_targets), ("saturation_rows", saturation_rows)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
        if every and checkpoint is None:
            raise ValueError("every: needs a checkpoint path; pass checkpoint=... or every=0")
        self.learner = learner
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.every = int(every)
        self.on_bad_row = on_bad_row
        self.clip_targets = bool(clip_targets)
        self.saturation_rows = int(saturation_rows)
        self.rows_read = int(rows_read)
        self.bad_rows = int(bad_rows)
        self.clipped_targets = int(clipped_targets)
        self.source = source
        self.out_path = out_path
        self.run_info = run_info
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._stop: str | None = None
        self._waiting = False
        self._out_bytes = 0
        self._out = None
        self._out_is_file = False
        self._lock: _CheckpointLock | None = None
        self.last_checkpoint: str | None = None
        self.learn = bool(learn)
        from .preprocessing import RunningStandardizer

        self.scalers: tuple[RunningStandardizer, RunningStandardizer] | None
        if isinstance(standardize, tuple):
            sx, sd = standardize
            if not (isinstance(sx, RunningStandardizer) and isinstance(sd, RunningStandardizer)
                    and sx.size == len(self.inputs) and sd.size == len(self.targets)):
                raise ValueError(f"standardize: expected (RunningStandardizer({len(self.inputs)}), "
                                 f"RunningStandardizer({len(self.targets)})) for the inputs and targets")
            self.scalers = (sx, sd)
        elif standardize is True:
            self.scalers = (RunningStandardizer(len(self.inputs)), RunningStandardizer(len(self.targets)))
        elif standardize is False or standardize is None:
            self.scalers = None
        else:
            raise TypeError(f"standardize: expected a bool or a pair of RunningStandardizer, got {standardize!r}")

    # -- control ------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop after the current row (safe to call from a signal handler).

        If the loop is blocked waiting for the next input line, it stops at once; a row
        is never half processed.
        """
        self._stop = reason
        if self._waiting:
            raise _Stop

    def prepare(self) -> None:
        """Check the checkpoint path before the first row, lock it, and remove stale temporary files.

        Raises :class:`WriteError` if the checkpoint cannot be written (missing folder, read-only
        folder, a folder or a device at the path) and :class:`CheckpointBusyError` if another
        stream holds it. Called by :meth:`run`; the command line calls it before it opens the
        output, so that nothing is touched when the run cannot save its state. Idempotent;
        :meth:`close` releases the lock.
        """
        if self.checkpoint is None or self._lock is not None:
            return
        from .io import probe_writable

        path = self.checkpoint
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise WriteError("checkpoint", path, _reason(exc), at_start=True) from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, a pipe, ...)"
            raise WriteError("checkpoint", path, f"it is {kind}", at_start=True)
        try:
            probe_writable(path)
        except OSError as exc:
            raise WriteError("checkpoint", path, _reason(exc), at_start=True) from None
        lock = _CheckpointLock(path)
        lock.acquire(path)
        self._lock = lock
        removed = 0
        for tmp in stale_temporaries(path):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
                removed += 1
        if removed:
            self.log(f"rtrl stream: removed {removed} stale temporary file(s) of interrupted saves of {path}")

    def close(self) -> None:
        """Release the checkpoint's lock (called at the end of :meth:`run`)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _flush_out(self) -> None:
        """Make the predictions written so far durable (before a checkpoint records their byte count)."""
        out = self._out
        if out is None:
            return
        try:
            out.flush()
            if self._out_is_file:
                os.fsync(out.fileno())
        except BrokenPipeError:
            self._stop = self._stop or "output closed"
        except OSError as exc:
            raise WriteError("output", self._out_name(), _reason(exc)) from None

    def _out_name(self) -> str:
        return "stdout" if self.out_path is None else str(self.out_path)

    def save_checkpoint(self) -> None:
        """Save the learner with the stream's counts to ``checkpoint`` (atomic).

        Raises :class:`WriteError` if the output or the checkpoint cannot be written; the
        checkpoint file on disk is then the previous one.
        """
        if self.checkpoint is None:
            return
        if self.out_path is not None:
            self._flush_out()
        info = {"rows_read": self.rows_read, "bad_rows": self.bad_rows, "clipped_targets": self.clipped_targets,
                "inputs": list(self.inputs), "targets": list(self.targets), "source": self.source,
                "out_path": self.out_path,
                # the resume point of the output file; None for stdout, a pipe or a device (nothing to cut back)
                "out_bytes": self._out_bytes if self.out_path is not None and self._out_is_file else None,
                "run": self.run_info}
        if self.scalers is not None:
            info["standardize"] = {"inputs": self.scalers[0].to_dict(), "targets": self.scalers[1].to_dict()}
        if self.lags or self.horizon > 1:
            info["lags"] = list(self.lags)
            info["history"] = self.history
            info["horizon"] = self.horizon
            info["feedback"] = self.feedback
        try:
            self.learner.save(self.checkpoint, extra={CHECKPOINT_KEY: info})
        except OSError as exc:
            raise WriteError("checkpoint", self.checkpoint, _reason(exc)) from None
        self.last_checkpoint = self.checkpoint

    # -- the loop -----------------------------------------------------------------------------
    def header_line(self) -> str:
        """The header of the prediction output: ``row`` and ``pred_<target>`` per target column (with a
        horizon H > 1, then ``pred_<target>_h2`` ... ``_hH`` after each)."""
        cols = []
        for c in self.targets:
            cols += [f"pred_{c}"] + [f"pred_{c}_h{h}" for h in range(2, self.horizon + 1)]
        return ",".join(["row"] + cols) + "\n"

    def run(self, lines: Iterable["str | bytes"], out: IO[bytes], *, skip: int = 0, out_bytes: int = 0,
            write_header: bool = True) -> StreamResult:
        """Consume ``lines`` (an iterator of lines, header first) until it ends or a stop is requested.

        Parameters
        ----------
        lines : iterator of str or bytes
            CSV text, one physical line per item (``bytes`` are decoded as UTF-8 line by line,
            see :func:`read_lines`); the first line is the header. Lines that are empty or hold
            only spaces and tabs are ignored.
        out : binary file object
            Receives the prediction lines, flushed after every row.
        skip : int
            Data rows to pass over without learning (a resumed file input skips what its
            checkpoint consumed).
        out_bytes : int
            Bytes already in ``out`` (a resumed output file), so checkpoints record the offset.
        write_header : bool
            Write :meth:`header_line` first.

        Raises
        ------
        BadRowError (on_bad_row="error"), DivergedError / SaturatedError, WriteError,
        CheckpointBusyError, StreamError (a bad header or an unreadable input).
        """
        self.prepare()
        try:
            return self._run(lines, out, skip, out_bytes, write_header)
        finally:
            self.close()

    def _run(self, lines, out, skip, out_bytes, write_header):
        self._out_bytes = int(out_bytes)
        self._out = out
        try:
            self._out_is_file = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
        except (AttributeError, OSError, ValueError, TypeError):  # io.UnsupportedOperation is both
            self._out_is_file = self.out_path is not None  # an in-memory file with a path given: treat as a file
        rows_at_start, bad_at_start, clipped_at_start = self.rows_read, self.bad_rows, self.clipped_targets
        examples = []
        try:
            # Overflow near a divergence is detected and reported below, not warned about.
            with np.errstate(over="ignore", invalid="ignore"):
                self._loop(iter(lines), out, int(skip), write_header, examples)
        except _Stop:
            pass  # a stop request arrived while waiting for input: no row was half processed
        finally:
            self._waiting = False
        self.save_checkpoint()
        return StreamResult(rows_read=self.rows_read, rows_this_run=self.rows_read - rows_at_start,
                            bad_rows=self.bad_rows, bad_rows_this_run=self.bad_rows - bad_at_start,
                            bad_examples=examples, stopped=self._stop, checkpoint=self.last_checkpoint,
                            out_bytes=self._out_bytes, clipped_targets=self.clipped_targets,
                            clipped_targets_this_run=self.clipped_targets - clipped_at_start)

    def _next(self, it):
        """The next line (None at the end), the only place where a stop request may interrupt."""
        self._waiting = True
        try:
            return next(it, None)
        except OSError as exc:
            self._waiting = False
            # The rows read so far were learned whole: keep them, then report.
            self.save_checkpoint()
            raise StreamError(f"cannot read the input: {_reason(exc)}") from None
        finally:
            self._waiting = False

    @staticmethod
    def _text(raw, line):
        """Decode one raw line and drop its terminator; raise BadRowError for bytes that are not UTF-8."""
        if isinstance(raw, _LongLine):
            raise BadRowError(line, None, f"the line is {raw.n_bytes} bytes long, more than the "
                                          f"{MAX_LINE_BYTES} a row may have (is the input a CSV file?)")
        if isinstance(raw, (bytes, bytearray)):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRowError(line, None, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte "
                                              f"{exc.start + 1} of the line ({exc.reason}); the input must be "
                                              "UTF-8 (or ASCII)") from None
        elif isinstance(raw, str):
            text = raw
        else:
            raise StreamError(f"lines: expected str or bytes lines, got {type(raw).__name__}")
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        return text

    @staticmethod
    def _fields(text, line):
        """Split one line into its fields (a quoted field may not run on to the next line)."""
        if "\r" in text or "\n" in text:
            raise BadRowError(line, None, "a carriage return inside the line (old Mac line endings?); end lines "
                                          "with \\n or \\r\\n")
        if '"' not in text:
            return text.split(",")
        try:
            return next(csv.reader([text], strict=True))
        except csv.Error as exc:
            hint = (" (an unclosed quote: a quoted field must end on the same line)"
                    if "end of data" in str(exc) else "")
            raise BadRowError(line, None, f"malformed CSV ({exc}){hint}") from None

    def _loop(self, it, out, to_skip, write_header, examples):
        from .learner import ARITHMETIC_ERRORS

        learner = self.learner
        n, m, k_out = learner.n_units, learner.n_inputs, len(self.targets)

        def write(text):
            data = text.encode()
            try:
                out.write(data)
                out.flush()
            except BrokenPipeError:
                self._stop = "output closed"
                return
            except OSError as exc:
                raise WriteError("output", self._out_name(), _reason(exc)) from None
            self._out_bytes += len(data)

        # -- the header: line 1 (blank lines before it are skipped) ---------------------------
        line = 0
        while True:
            raw = self._next(it)
            line += 1
            if raw is None:
                raise StreamError("the input is empty: expected a CSV header line naming the columns")
            try:
                text = self._text(raw, line)
                if line == 1 and text.startswith("\ufeff"):
                    text = text[1:]  # a UTF-8 byte-order mark
                if text.strip(" \t"):
                    header = self._fields(text, line)
                    break
            except BadRowError as err:
                raise StreamError(f"the CSV header line cannot be read ({err})") from None
        header = [h.strip() for h in header]
        n_fields = len(header)
        in_idx = [self._column(header, c, "inputs") for c in self.inputs]
        # (serving, --no-learn: the target columns are not read, and need not be there)
        tg_idx = [self._column(header, c, "targets") for c in self.targets] if self.learn else []
        acts = ([learner.activation] * k_out if isinstance(learner.activation, str)
                else list(learner.activation[:k_out]))
        bounds = [_RANGES.get(a, (-math.inf, math.inf)) for a in acts]  # per target unit
        lo = [b[0] for b in bounds]
        hi = [b[1] for b in bounds]
        lo_in = [v + SATURATION_EPS for v in lo]
        hi_in = [v - SATURATION_EPS for v in hi]
        saturation = self.saturation_rows > 0 and self.learn and any(math.isfinite(v) for v in lo + hi)
        scalers = self.scalers
        raw_d = np.zeros(k_out)  # the targets as read (standardisation)

        # Reused row buffers: x (1, m), d (1, n) with 0 where no target, mask (1, n).
        x = np.zeros((1, m))
        d = np.zeros((1, n))
        mask = np.zeros((1, n), dtype=bool)
        x_row, d_row, mask_row = x[0], d[0], mask[0]
        m_cols = len(self.inputs)  # the input columns (x_row[:m_cols]); lagged lines follow
        raw_x = np.zeros(m_cols)
        empty_pred = "," * (k_out * self.horizon) + "\n"
        if write_header:
            write(self.header_line())
        pinned = 0  # targeted rows in a row with a target unit pinned at a bound
        save_due = False  # a periodic checkpoint deferred while outputs are pinned

        while self._stop is None:
            raw = self._next(it)
            if raw is None:
                break
            line += 1
            try:
                text = self._text(raw, line)
                if not text.strip(" \t"):
                    continue  # a blank line (empty, or spaces and tabs only)
                if to_skip:
                    to_skip -= 1
                    continue
                rec = self._fields(text, line)
                if scalers is not None:
                    # the target statistics with this row's targets (a copy: a bad row changes nothing)
                    t_stats = scalers[1].copy()
                    clipped = self._parse(rec, line, n_fields, in_idx, tg_idx, header, x_row, d_row, mask_row,
                                          lo, hi, raw_d, t_stats)
                else:
                    clipped = self._parse(rec, line, n_fields, in_idx, tg_idx, header, x_row, d_row, mask_row,
                                          lo, hi)
            except BadRowError as err:
                if to_skip:  # a row the checkpoint already consumed (and counted as bad)
                    to_skip -= 1
                    continue
                if self.on_bad_row == "error":
                    self.save_checkpoint()  # the state before this row
                    raise
                self.bad_rows += 1
                self.rows_read += 1
                if len(examples) < MAX_BAD_EXAMPLES:
                    examples.append(str(err))
                write(f"{self.rows_read}{empty_pred}")
                if save_due or (self.every and self.rows_read % self.every == 0):
                    if pinned:
                        save_due = True
                    else:
                        save_due = False
                        self.save_checkpoint()
                continue
            self.clipped_targets += clipped
            raw_x[:] = x_row[:m_cols]
            t_before = None
            if scalers is not None:
                t_before = scalers[1].copy()  # the prediction for this row cannot have seen its target
                scalers[0].update(raw_x)
                x_row[:m_cols] = scalers[0].transform(raw_x)
                if self.learn:
                    scalers = self.scalers = (scalers[0], t_stats)
            if self.lags:
                self._fill_lags(x_row, self.history, m_cols)
            W_now = learner.W if self.horizon > 1 else None  # (the weights the forecasts are made with)

            if not self.learn:
                ys = learner.forward(x)
                preds = ys[0, :k_out]
                preds = (t_before.inverse(preds) if t_before is not None else preds).tolist()
                if self.horizon > 1:
                    preds = self._with_horizon(preds, W_now, ys[0], raw_x, t_before)
                self._remember(raw_x)
                self.rows_read += 1
                write(f"{self.rows_read},{','.join(map(repr, preds))}\n")
                if self.every and self.rows_read % self.every == 0:
                    self.save_checkpoint()
                continue
            before = learner.state
            try:
                ys = learner._step_checked(x, d, mask)
            except ARITHMETIC_ERRORS:  # a rule's kernel dividing by an overflowed norm
                learner.state = before
                raise DivergedError(before.t + 1, line, learner.learning_rate) from None
            st = learner.state
            flat = [st.W.ravel()] + [a.ravel() for a in st.rule_state if a.dtype.kind == "f"]
            # Cheap test first (one BLAS dot each); the exact test only when it fails
            # (a sum of squares can overflow while every entry is still finite).
            if not math.isfinite(sum(float(a @ a) for a in flat)):
                if not all(np.all(np.isfinite(a)) for a in flat):
                    learner.state = before  # keep the last good state in memory
                    raise DivergedError(st.t, line, learner.learning_rate)
            preds = ys[0, :k_out].tolist()
            # (the cheap test first: an output near a bound, or a streak going on)
            if saturation and (pinned or any(p <= a or p >= b for p, a, b in zip(preds, lo_in, hi_in))):
                hit = self._pinned(preds, d_row, mask_row, bounds)
                if hit is None:
                    pinned = 0  # the streak (if any) ended: a deferred checkpoint is saved below
                elif hit is not False:
                    pinned += 1
                    if pinned >= self.saturation_rows:
                        j, bound = hit
                        raise SaturatedError(st.t, line, learner.learning_rate, self.targets[j], bound,
                                             acts[j], pinned)
            self.rows_read += 1
            if t_before is not None:
                preds = t_before.inverse(preds).tolist()  # in the data's units (the statistics before this row)
            if self.horizon > 1:
                preds = self._with_horizon(preds, W_now, ys[0], raw_x, t_before)
            self._remember(raw_x)
            write(f"{self.rows_read},{','.join(map(repr, preds))}\n")
            if save_due or (self.every and self.rows_read % self.every == 0):
                if pinned:
                    save_due = True  # not while outputs are pinned: keep the last good checkpoint
                else:
                    save_due = False
                    self.save_checkpoint()

    def _fill_lags(self, x_row, history, m_cols) -> None:
        """The lagged input lines of x_row (after its first m_cols), from raw rows ``history`` (oldest first)."""
        scaler = self.scalers[0] if self.scalers is not None else None
        for i, L in enumerate(self.lags):
            part = x_row[m_cols * (1 + i):m_cols * (2 + i)]
            if len(history) >= L:
                row = np.asarray(history[-L])
                part[:] = scaler.transform(row) if scaler is not None else row
            else:
                part[:] = 0.0  # before the stream has L rows: 0 (the mean, when standardising)

    def _remember(self, raw_x) -> None:
        """Keep this row's raw inputs for the lags (the last max(lags) rows)."""
        if self.lags:
            self.history.append(raw_x.tolist())
            del self.history[:-max(self.lags)]

    def _with_horizon(self, preds, W, y_next, raw_x, t_before) -> list:
        """preds (one per target, h = 1) and the free-run forecasts h = 2..H, ordered target by target."""
        from .kernels import forward_kernel

        learner = self.learner
        k_out, m_cols, H = len(self.targets), len(self.inputs), self.horizon
        scaler = self.scalers[0] if self.scalers is not None else None
        hist = [list(r) for r in self.history] + [raw_x.tolist()]
        vals = raw_x.copy()
        cur = np.array(y_next, dtype=np.float64)
        x = np.zeros((1, learner.n_inputs))
        empty = np.zeros(0, dtype=np.int64)
        out = [[p] for p in preds]
        prev = np.array(preds)  # the last forecasts, in the data's units
        for _ in range(2, H + 1):
            vals = vals.copy()
            for j, i in self._fb:
                vals[i] = prev[j]  # the forecast feeds its input column; the others hold their last value
            x[0, :m_cols] = scaler.transform(vals) if scaler is not None else vals
            if self.lags:
                self._fill_lags(x[0], hist, m_cols)
            cur = forward_kernel(W, cur, x, learner._act_codes, empty, empty)[0]
            prev = cur[:k_out] if t_before is None else t_before.inverse(cur[:k_out])
            for j in range(k_out):
                out[j].append(float(prev[j]))
            hist.append(vals.tolist())
        return [v for per_target in out for v in per_target]

    @staticmethod
    def _pinned(preds, d_row, mask_row, bounds):
        """(unit, bound) of the first targeted output pinned at a bound away from its target; None if no
        targeted output is pinned; False if the row has no target (it neither extends nor ends a streak)."""
        any_target = False
        for j, y in enumerate(preds):
            if not mask_row[j]:
                continue
            any_target = True
            for b in bounds[j]:
                if abs(y - b) <= SATURATION_EPS and abs(d_row[j] - b) > 1e-6:
                    return j, b
        return None if any_target else False

    def _column(self, header, name, what):
        hits = [i for i, h in enumerate(header) if h == name]
        if len(hits) != 1:
            problem = "is not in" if not hits else "appears more than once in"
            raise StreamError(f"--{what}: column {name!r} {problem} the CSV header; the header has {header}")
        return hits[0]

    def _parse(self, rec, line, n_fields, in_idx, tg_idx, header, x_row, d_row, mask_row, lo, hi, raw_d=None,
               t_stats=None):
        """Fill the row buffers from one CSV record, or raise BadRowError (buffers are then junk).

        ``lo``, ``hi``: the range of each target unit. With ``raw_d`` (standardisation) the targets
        as read go there, ``t_stats`` (a RunningStandardizer) is updated with them and the
        standardised ones go into ``d_row``.
        Returns how many targets were clipped to [lo, hi] (only with ``clip_targets``).
        """
        clipped = 0
        if len(rec) != n_fields:
            raise BadRowError(line, None, f"expected {n_fields} fields as in the header, got {len(rec)}")
        for j, i in enumerate(in_idx):
            cell = rec[i]
            v = _number(cell)
            if v is None:
                raise BadRowError(line, header[i], f"input is not a number: {cell!r} (plain ASCII decimal "
                                                   "numbers only, e.g. -1.5e3)")
            if not math.isfinite(v):
                raise BadRowError(line, header[i], f"input is {cell.strip()!r}; inputs must be finite numbers")
            x_row[j] = v
        for j, i in enumerate(tg_idx):
            cell = rec[i]
            if not cell.strip(" \t"):
                mask_row[j] = False
                d_row[j] = 0.0
                continue
            v = _number(cell)
            if v is None:
                raise BadRowError(line, header[i], f"target is not a number: {cell!r} (plain ASCII decimal "
                                  "numbers only; leave the cell empty or write NaN for 'no target')")
            if math.isnan(v):
                mask_row[j] = False
                d_row[j] = 0.0
            elif math.isinf(v):
                raise BadRowError(line, header[i], f"target is {cell.strip()!r}; use an empty cell or NaN for "
                                  "'no target'")
            else:
                if raw_d is not None:
                    raw_d[j] = v
                    v = t_stats.add_one(j, v)
                lo_j, hi_j = lo[j], hi[j]
                if not lo_j <= v <= hi_j:
                    if not self.clip_targets:
                        act = self.learner.activation
                        what = "standardised target" if raw_d is not None else "target"
                        raise BadRowError(
                            line, header[i], f"{what} {cell.strip() if raw_d is None else f'{v:g}'} is outside the "
                            f"range [{lo_j:g}, {hi_j:g}] of its {act if isinstance(act, str) else act[j]} unit: it "
                            "can never be reached and would drive the weights without bound; rescale the targets, "
                            "give the target units a linear activation (--output-activation linear), or clip them "
                            "to the range (--clip-targets)")
                    v = lo_j if v < lo_j else hi_j
                    clipped += 1
                mask_row[j] = True
                d_row[j] = v
        return clipped

