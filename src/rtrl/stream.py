"""Learning on a live stream of CSV rows: the loop behind ``rtrl stream`` (no argument parsing here).

Every data row is one time step of real-time RTRL (:class:`~rtrl.learner.OnlineLearner`):
the row's input cells are x(t); the network produces y(t+1) = f(W z(t)) with the weights
as they are *before* it learns from this row, writes the target units' outputs as one
prediction line, then learns from the row's target cells (an empty or NaN cell: no target).
So the prediction written for row t is the network's estimate of row t's target columns,
made from the inputs of rows 1..t and the targets of rows 1..t-1 only (a fair,
"predict then learn" score).

The loop owns nothing global: it reads an iterator of text lines, writes bytes to a
binary file object, saves checkpoints through :meth:`OnlineLearner.save` and stops
cleanly between rows when :meth:`Stream.request_stop` is called (the command line calls
it from its SIGINT/SIGTERM handlers).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Stream", "StreamResult", "StreamError", "BadRowError", "DivergedError", "ON_BAD_ROW",
           "parse_columns", "checkpoint_info"]

ON_BAD_ROW = ("error", "skip")
#: Key of the stream's bookkeeping inside a model file's ``extra`` metadata.
CHECKPOINT_KEY = "stream"
#: How many skipped bad rows are described in the final report (the count is always exact).
MAX_BAD_EXAMPLES = 5

_RANGES = {"logistic": (0.0, 1.0), "tanh": (-1.0, 1.0)}


class StreamError(Exception):
    """The stream cannot go on (a bad header, a bad row, divergence); the message says why and what to do."""

    exit_code = 2


class BadRowError(StreamError):
    """A row that cannot be used: wrong number of fields, a non-numeric cell or a non-finite input.

    Attributes: ``line`` (1-based physical line of the input, the header is line 1),
    ``column`` (name, or None when the whole row is wrong), ``reason``.
    """

    exit_code = 1

    def __init__(self, line, column, reason):
        self.line, self.column, self.reason = line, column, reason
        where = f"line {line}" + ("" if column is None else f", column {column!r}")
        super().__init__(f"{where}: {reason}")


class DivergedError(StreamError):
    """The weights or sensitivities became NaN/inf. The learner is rolled back to the last good step."""

    exit_code = 3

    def __init__(self, step, line, learning_rate):
        self.step, self.line = step, line
        super().__init__(
            f"training diverged at step {step} (input line {line}): the weights or sensitivities became NaN "
            f"or inf. Lower the learning rate (now {learning_rate:g}; try {learning_rate / 10:g}) or cap "
            "the gradient with a clip norm")


class _Stop(Exception):
    """Raised by request_stop while the loop is blocked waiting for input."""


@dataclass
class StreamResult:
    """What a call of :meth:`Stream.run` did.

    ``rows_read`` and ``bad_rows`` count from the start of the stream (a resumed stream
    includes what its checkpoint had read); the ``*_this_run`` fields count this call only.
    """

    rows_read: int
    rows_this_run: int
    bad_rows: int
    bad_rows_this_run: int
    bad_examples: list = field(default_factory=list)
    stopped: str | None = None  # why the loop stopped early ("SIGTERM", "output closed", ...), None at end of input
    checkpoint: str | None = None  # path of the last checkpoint saved by this run, if any
    out_bytes: int = 0


def parse_columns(text, name):
    """Split a comma list of column names ("a,b,c") into a tuple; reject empty or repeated names."""
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a comma-separated string of column names, got {type(text).__name__}")
    cols = tuple(c.strip() for c in text.split(","))
    if not cols or any(c == "" for c in cols):
        raise ValueError(f"{name}: expected a comma-separated list of column names, got {text!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{name}: a column is named twice in {text!r}")
    return cols


def checkpoint_info(meta):
    """The stream bookkeeping stored in a model file's metadata, or None if it is not a stream checkpoint."""
    info = (meta.get("extra") or {}).get(CHECKPOINT_KEY)
    return info if isinstance(info, dict) else None


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
    every : int
        Save a checkpoint every ``every`` rows (0: only at the end, on a stop request and
        before reporting a bad row).
    on_bad_row : {"error", "skip"}
        ``"error"``: raise :class:`BadRowError` (after saving a checkpoint of the state before
        the row). ``"skip"``: count the row, leave the state alone and write a prediction line
        with empty cells, so that output line i always answers input row i.
    rows_read, bad_rows : int
        Counts carried over from a checkpoint when resuming.
    source, out_path : str, optional
        Recorded in checkpoints (``out_path`` lets a resumed run continue the same output file).
    run_info : dict, optional
        JSON data recorded in checkpoints as it is (the command line stores how the run was
        started: the seed and the settings it resolved).
    log : callable, optional
        Receives warnings (one line each); default writes to stderr.
    """

    def __init__(self, learner, inputs, targets, *, checkpoint=None, every=0, on_bad_row="error", rows_read=0,
                 bad_rows=0, source="-", out_path=None, run_info=None, log=None):
        from .learner import OnlineLearner

        if not isinstance(learner, OnlineLearner):
            raise TypeError(f"learner: expected an rtrl.OnlineLearner, got {type(learner).__name__}")
        self.inputs = tuple(inputs)
        self.targets = tuple(targets)
        if len(self.inputs) != learner.n_inputs:
            raise ValueError(f"inputs: the model has {learner.n_inputs} input lines, got {len(self.inputs)} "
                             f"columns {list(self.inputs)}")
        if not 1 <= len(self.targets) <= learner.n_units:
            raise ValueError(f"targets: expected 1 to n_units = {learner.n_units} columns (one per target unit), "
                             f"got {len(self.targets)}")
        if on_bad_row not in ON_BAD_ROW:
            raise ValueError(f"on_bad_row: expected one of {ON_BAD_ROW}, got {on_bad_row!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every: expected an integer >= 0, got {every!r}")
        if every and checkpoint is None:
            raise ValueError("every: needs a checkpoint path; pass checkpoint=... or every=0")
        self.learner = learner
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.every = every
        self.on_bad_row = on_bad_row
        self.rows_read = int(rows_read)
        self.bad_rows = int(bad_rows)
        self.source = source
        self.out_path = out_path
        self.run_info = run_info
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._stop = None
        self._waiting = False
        self._out_bytes = 0
        self._out = None
        self.last_checkpoint = None

    # -- control ------------------------------------------------------------------------------
    def request_stop(self, reason="stop requested") -> None:
        """Ask the loop to stop after the current row (safe to call from a signal handler).

        If the loop is blocked waiting for the next input line, it stops at once; a row
        is never half processed.
        """
        self._stop = reason
        if self._waiting:
            raise _Stop

    def save_checkpoint(self) -> None:
        """Save the learner with the stream's counts to ``checkpoint`` (atomic)."""
        if self.checkpoint is None:
            return
        if self.out_path is not None and self._out is not None:
            # The checkpoint records how many output bytes belong to it: make them durable first.
            self._out.flush()
            try:
                os.fsync(self._out.fileno())
            except (AttributeError, OSError, ValueError):  # not a real file (a pipe, a BytesIO)
                pass
        info = {"rows_read": self.rows_read, "bad_rows": self.bad_rows, "inputs": list(self.inputs),
                "targets": list(self.targets), "source": self.source, "out_path": self.out_path,
                "out_bytes": self._out_bytes if self.out_path is not None else None, "run": self.run_info}
        self.learner.save(self.checkpoint, extra={CHECKPOINT_KEY: info})
        self.last_checkpoint = self.checkpoint

    # -- the loop -----------------------------------------------------------------------------
    def header_line(self) -> str:
        """The header of the prediction output: ``row`` and one ``pred_<target>`` per target column."""
        return ",".join(["row"] + [f"pred_{c}" for c in self.targets]) + "\n"

    def run(self, lines, out, *, skip=0, out_bytes=0, write_header=True) -> StreamResult:
        """Consume ``lines`` (an iterator of text lines, header first) until it ends or a stop is requested.

        Parameters
        ----------
        lines : iterator of str
            CSV text; the first record is the header. Blank lines are ignored.
        out : binary file object
            Receives the prediction lines, flushed after every row.
        skip : int
            Data rows to pass over without learning (a resumed file input skips what its
            checkpoint consumed).
        out_bytes : int
            Bytes already in ``out`` (a resumed output file), so checkpoints record the offset.
        write_header : bool
            Write :meth:`header_line` first.
        """
        self._out_bytes = int(out_bytes)
        self._out = out
        rows_at_start, bad_at_start = self.rows_read, self.bad_rows
        examples = []
        try:
            # Overflow near a divergence is detected and reported below, not warned about.
            with np.errstate(over="ignore", invalid="ignore"):
                self._loop(lines, out, int(skip), write_header, examples)
        except _Stop:
            pass  # a stop request arrived while waiting for input: no row was half processed
        finally:
            self._waiting = False
        self.save_checkpoint()
        return StreamResult(rows_read=self.rows_read, rows_this_run=self.rows_read - rows_at_start,
                            bad_rows=self.bad_rows, bad_rows_this_run=self.bad_rows - bad_at_start,
                            bad_examples=examples, stopped=self._stop, checkpoint=self.last_checkpoint,
                            out_bytes=self._out_bytes)

    def _next(self, reader):
        """The next CSV record (None at the end), the only place where a stop request may interrupt."""
        self._waiting = True
        try:
            return next(reader, None)
        except csv.Error as exc:
            return exc  # a malformed quoted field: a bad row like any other
        finally:
            self._waiting = False

    def _loop(self, lines, out, to_skip, write_header, examples):
        learner = self.learner
        n, m, k_out = learner.n_units, learner.n_inputs, len(self.targets)
        reader = csv.reader(lines)

        def write(text):
            data = text.encode()
            out.write(data)
            out.flush()
            self._out_bytes += len(data)

        header = self._next(reader)
        if header is None or isinstance(header, csv.Error):
            raise StreamError("the input is empty: expected a CSV header line naming the columns"
                              if header is None else f"the CSV header line cannot be parsed ({header})")
        header = [h.strip() for h in header]
        n_fields = len(header)
        in_idx = [self._column(header, c, "inputs") for c in self.inputs]
        tg_idx = [self._column(header, c, "targets") for c in self.targets]
        lo, hi = _RANGES.get(learner.activation, (-math.inf, math.inf))
        warned_range = False

        # Reused row buffers: x (1, m), d (1, n) with 0 where no target, mask (1, n).
        x = np.zeros((1, m))
        d = np.zeros((1, n))
        mask = np.zeros((1, n), dtype=bool)
        x_row, d_row, mask_row = x[0], d[0], mask[0]
        empty_pred = "," * k_out + "\n"
        if write_header:
            try:
                write(self.header_line())
            except BrokenPipeError:
                self._stop = "output closed"

        while self._stop is None:
            line = reader.line_num + 1  # where this record starts
            rec = self._next(reader)
            if rec is None:
                break
            if not rec:
                continue  # blank line
            if to_skip:
                to_skip -= 1
                continue
            try:
                if isinstance(rec, csv.Error):
                    raise BadRowError(line, None, f"malformed CSV ({rec})")
                if reader.line_num > line and len(rec) != n_fields:
                    raise BadRowError(line, None, f"expected {n_fields} fields as in the header, got {len(rec)} "
                                      f"in a record that runs on to line {reader.line_num} (an unclosed quote?)")
                wild = self._parse(rec, line, n_fields, in_idx, tg_idx, header, x_row, d_row, mask_row, lo, hi)
            except BadRowError as err:
                if self.on_bad_row == "error":
                    self.save_checkpoint()  # the state before this row
                    raise
                self.bad_rows += 1
                self.rows_read += 1
                if len(examples) < MAX_BAD_EXAMPLES:
                    examples.append(str(err))
                try:
                    write(f"{self.rows_read}{empty_pred}")
                except BrokenPipeError:
                    self._stop = "output closed"
                if self.every and self.rows_read % self.every == 0:
                    self.save_checkpoint()
                continue
            if wild >= 0 and not warned_range:
                warned_range = True
                j = wild
                self.log(f"rtrl stream: warning: line {line}, column {self.targets[j]!r}: target {d_row[j]:g} "
                         f"is outside the range ({lo:g}, {hi:g}) of {learner.activation} units, so it can never "
                         "be reached; rescale the targets (warned once)")

            before = learner.state
            ys = learner._step_checked(x, d, mask)
            st = learner.state
            flat = [st.W.ravel()] + [a.ravel() for a in st.rule_state if a.dtype.kind == "f"]
            # Cheap test first (one BLAS dot each); the exact test only when it fails
            # (a sum of squares can overflow while every entry is still finite).
            if not math.isfinite(sum(float(a @ a) for a in flat)):
                if not all(np.all(np.isfinite(a)) for a in flat):
                    learner.state = before  # keep the last good state in memory
                    raise DivergedError(st.t, line, learner.learning_rate)
            self.rows_read += 1
            try:
                write(f"{self.rows_read},{','.join(map(repr, ys[0, :k_out].tolist()))}\n")
            except BrokenPipeError:
                self._stop = "output closed"
            if self.every and self.rows_read % self.every == 0:
                self.save_checkpoint()

    def _column(self, header, name, what):
        hits = [i for i, h in enumerate(header) if h == name]
        if len(hits) != 1:
            problem = "is not in" if not hits else "appears more than once in"
            raise StreamError(f"--{what}: column {name!r} {problem} the CSV header; the header has {header}")
        return hits[0]

    def _parse(self, rec, line, n_fields, in_idx, tg_idx, header, x_row, d_row, mask_row, lo, hi):
        """Fill the row buffers from one CSV record, or raise BadRowError (buffers are then junk).

        Returns the index of the first target outside [lo, hi] (the activation's range), or -1.
        """
        wild = -1
        if len(rec) != n_fields:
            raise BadRowError(line, None, f"expected {n_fields} fields as in the header, got {len(rec)}")
        for j, i in enumerate(in_idx):
            cell = rec[i]
            try:
                v = float(cell)
            except ValueError:
                raise BadRowError(line, header[i], f"input is not a number: {cell!r}") from None
            if not math.isfinite(v):
                raise BadRowError(line, header[i], f"input is {cell.strip()!r}; inputs must be finite numbers")
            x_row[j] = v
        for j, i in enumerate(tg_idx):
            cell = rec[i]
            if cell == "" or cell.isspace():
                mask_row[j] = False
                d_row[j] = 0.0
                continue
            try:
                v = float(cell)
            except ValueError:
                raise BadRowError(line, header[i], f"target is not a number: {cell!r} (leave the cell empty or "
                                  "write NaN for 'no target')") from None
            if math.isnan(v):
                mask_row[j] = False
                d_row[j] = 0.0
            elif math.isinf(v):
                raise BadRowError(line, header[i], f"target is {cell.strip()!r}; use an empty cell or NaN for "
                                  "'no target'")
            else:
                mask_row[j] = True
                d_row[j] = v
                if wild < 0 and not lo <= v <= hi:
                    wild = j
        return wild
