"""Fuzzing the CSV reader of `rtrl stream` (issue 10: tests that must be able to fail).

Hypothesis builds byte inputs from valid rows and their damaged forms: random bytes, truncations,
mutated headers, mixed line endings (\\n, \\r\\n, a lone \\r), quoting, huge and tiny numbers
(1e308, 1e309, 1e-320, -0, denormals), unicode look-alikes, NUL bytes and overlong lines. Every
input is judged against an *oracle*: an independent reading of the rules in docs/streaming.md
("Input and output", "Bad rows") and a reference learner stepped on the rows the oracle accepts,
with the values ``float(cell)`` gives. So a test fails when the stream

- accepts a cell the documented number syntax refuses (or refuses one it allows), or reads a
  value other than ``float(cell)`` (the weights and the predictions would differ bit for bit);
- lets a rejected row change the learner, loses or duplicates a row before a bad one, or numbers
  the output lines wrongly;
- raises anything but the documented error (a StreamError subclass naming the line and column;
  exit code 1 / 2 / 3 and one ``rtrl stream: error:`` line on the command line).
"""

import contextlib
import csv
import io
import math
import os
import re
import struct
import tempfile

import numpy as np
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import rtrl
from rtrl.cli import main
from rtrl.io import load_with_metadata
from rtrl.stream import (NUMBER, BadRowError, DivergedError, Stream, StreamError, _number, parse_columns,
                         read_lines)

INPUTS, TARGETS = ("x", "y"), ("d", "e")
N_UNITS, LR = 3, 0.1
MAXB = 96  # the line limit of the in-process runs (the command line's is 1 MiB)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])

# -- the oracle: docs/streaming.md, written out independently of rtrl.stream ------------------------------
#: "an optional sign, digits with an optional fraction and exponent, or nan, inf, infinity in any case,
#: with optional spaces or tabs around. Nothing else is a number" (ASCII only: re.ASCII).
DOC_NUMBER = re.compile(r"[ \t]*[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)"
                        r"[ \t]*", re.IGNORECASE | re.ASCII)


def doc_number(cell):
    """The documented value of a cell: float(cell) where DOC_NUMBER matches, else None."""
    return float(cell) if DOC_NUMBER.fullmatch(cell) else None


def _bits(v):
    return struct.pack("<d", v)


def physical_lines(data):
    """The physical lines of ``data``: split after each \\n only (a lone \\r does not end a line)."""
    parts = data.split(b"\n")
    return [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _too_long(raw, max_bytes):
    """More than max_bytes bytes, the terminator (\\n or \\r\\n) excluded."""
    body = len(raw) - (2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0)
    return body > max_bytes


def _text(raw):
    text = raw.decode("utf-8")  # UnicodeDecodeError: a bad row
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _fields(text):
    """None for a malformed line (a carriage return inside, a broken quote), else the fields."""
    if "\r" in text:
        return None
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error:
        return None


class Header(Exception):
    """The oracle's verdict that the header cannot be used (the stream must raise a plain StreamError)."""

    def __init__(self, line, what):
        self.line, self.what = line, what


def oracle_rows(data, max_bytes):
    """Read ``data`` by the documented rules: a list of ('good', line, x, d) and ('bad', line, column).

    Raises Header for an input whose header line is missing, unreadable or lacks a column.
    """
    lines = physical_lines(data)
    i = 0
    while True:  # the header: the first line that is not blank
        if i == len(lines):
            raise Header(None, "empty")
        raw, i = lines[i], i + 1
        if _too_long(raw, max_bytes):
            raise Header(i, "long")
        try:
            text = _text(raw)
        except UnicodeDecodeError:
            raise Header(i, "utf-8") from None
        if i == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if text.strip(" \t"):
            header = _fields(text)
            if header is None:
                raise Header(i, "malformed")
            break
    header = [h.strip() for h in header]
    for c in INPUTS + TARGETS:
        if header.count(c) != 1:
            raise Header(None, c)
    in_idx = [header.index(c) for c in INPUTS]
    tg_idx = [header.index(c) for c in TARGETS]
    rows = []
    for line, raw in enumerate(lines[i:], start=i + 1):
        if _too_long(raw, max_bytes):
            rows.append(("bad", line, None))
            continue
        try:
            text = _text(raw)
        except UnicodeDecodeError:
            rows.append(("bad", line, None))
            continue
        if not text.strip(" \t"):
            continue  # a blank line is not a row
        rec = _fields(text)
        if rec is None or len(rec) != len(header):
            rows.append(("bad", line, None))
            continue
        x, d, bad = [], [], None
        for k in in_idx:
            v = doc_number(rec[k])
            if v is None or not math.isfinite(v):
                bad = header[k]
                break
            x.append(v)
        if bad is None:
            for k in tg_idx:
                cell = rec[k]
                v = math.nan if not cell.strip(" \t") else doc_number(cell)
                if v is None or math.isinf(v) or not (math.isnan(v) or 0.0 <= v <= 1.0):
                    bad = header[k]
                    break
                d.append(v)
        rows.append(("bad", line, bad) if bad is not None else ("good", line, x, d))
    return rows


def new_learner():
    return rtrl.OnlineLearner(N_UNITS, len(INPUTS), learning_rate=LR, rng=0)


def _finite_state(net):
    return all(np.all(np.isfinite(a)) for a in (net.W, *net.state.rule_state))


class Expected:
    """What a stream over the oracle's rows must produce: the output lines, the reference learner after
    each row, where it stops (the first bad row under 'error', a divergence) and why."""

    def __init__(self, rows, on_bad_row):
        ref = new_learner()
        self.out = ["row," + ",".join(f"pred_{c}" for c in TARGETS) + "\n"]
        self.stop = None  # ('bad', line, column) or ('diverged', line)
        self.bad = 0
        for n, row in enumerate(rows, start=1):
            if row[0] == "bad":
                if on_bad_row == "error":
                    self.stop = row
                    break
                self.bad += 1
                self.out.append(f"{n}," + "," * (len(TARGETS) - 1) + "\n")
                continue
            _, line, x, d = row
            before = ref.state
            try:
                ys = ref.step(np.array(x), target=np.array(d + [math.nan] * (N_UNITS - len(d))))
            except ValueError:  # diverged: the weights became NaN/inf (the learner rolled back)
                ys = None
            if ys is None or not _finite_state(ref):
                ref.state = before
                self.stop = ("diverged", line)
                break
            self.out.append(f"{n}," + ",".join(repr(float(v)) for v in ys[:len(TARGETS)]) + "\n")
        self.rows = len(self.out) - 1
        self.learner = ref


def same_state(a, b):
    return (a.t == b.t and a.W.tobytes() == b.W.tobytes()
            and all(p.tobytes() == q.tobytes() for p, q in zip(a.state.rule_state, b.state.rule_state)))


# -- generated inputs ----------------------------------------------------------------------------------------
SPECIAL_FLOATS = [0.0, -0.0, 1.0, 0.5, 1e308, -1e308, 1.7976931348623157e308, 1e-320, -1e-320, 5e-324,
                  2.2250738585072014e-308, 2.225073858507201e-308, 1e-5, 0.9999999999999999, 1.0000000000000002]
floats = st.one_of(st.floats(-2.0, 2.0), st.floats(0.0, 1.0), st.sampled_from(SPECIAL_FLOATS),
                   st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True))
SPACE = st.sampled_from(["", "", "", " ", "\t", " \t "])


@st.composite
def number_cells(draw):
    """A float written in one of the forms a CSV file may use (any of them may be refused: 1e309, nan, ...)."""
    v = draw(floats)
    form = draw(st.sampled_from(["repr", "repr", "e", "E", "g", "f", "plus", "int", "quoted"]))
    if form == "e":
        text = f"{v:.6e}"
    elif form == "E":
        text = f"{v:.17E}"
    elif form == "g":
        text = f"{v:.3g}"
    elif form == "f" and (not math.isfinite(v) or abs(v) < 1e20):
        text = f"{v:f}"
    elif form == "plus":
        text = ("+" if math.copysign(1.0, v) > 0 else "") + repr(v)
    elif form == "int" and math.isfinite(v) and abs(v) < 1e20:
        text = str(int(v))
    else:
        text = repr(v)
    text = draw(SPACE) + text + draw(SPACE)
    return f'"{text}"' if form == "quoted" else text


ODD_CELLS = ["", " ", "\t", "nan", "NaN", "-nan", "+inf", "-Infinity", "inf", "INF", "1e309", "-1e309",
             "1e-400", "1E+2", ".5", "5.", "-.5e-1", "00.5", "-0", "+0.", "1_0", "0x1p-2", "０.５", "٠.٥", "ınf",
             "İnf", "½", "1,5", "1e", "e1", ".", "-", "+", "--1", "1..2", "0.5\x00", "\x00", "nan(1)", "infinit",
             "\u00a00.5", "0.5\u2009", "\x0b0.5", "0.5\x0c", "\x1c0.5", "é", '"0.5"', '" 0.5 "', '"0.5', '0.5"',
             '""', '"0""5"', '"0,5"', "'0.5'", "\r", "0.5\r", "\x85", "\u2028", "\ufeff0.5", "0.5 0.5", "1e+", "1e-"]
#: Cells Python's float() reads but the documented syntax refuses (digit separators, other digits and spaces).
float_only_cells = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{1,3}(_[0-9]{1,3})+(\.[0-9]{1,3}(_[0-9])?)?\Z"),
    st.tuples(st.sampled_from(["", "\u00a0", "\u2009", "\x0b", "\x0c", "\u3000", "\x1c"]), st.floats(0, 1).map(repr),
              st.sampled_from(["", "\u00a0", "\u2009", "\x0c", "\u2028"])).filter(lambda t: t[0] or t[2]).map("".join),
    st.sampled_from(["０.５", "٠.٥", "１", "0.٥", "1_000", "0.5_5", "1e1_0"]),
)
cells = st.one_of(
    number_cells(),
    st.sampled_from(ODD_CELLS),
    float_only_cells,
    st.text(st.sampled_from(list('0123456789.eE+-, "\t\r_naif') + ["\x00", "é", "０", "ı", "\ufeff"]),
            max_size=8),
)
#: A target cell of a good row: a value in [0, 1], no target, or anything else.
target_cells = st.one_of(st.floats(0.0, 1.0).map(repr), st.sampled_from(["", "NaN", "nan", " ", "0", "1"]), cells)
good_inputs = st.floats(-3.0, 3.0).map(repr)
good_targets = st.one_of(st.floats(0.0, 1.0).map(repr), st.sampled_from(["", "NaN"]))
ENDINGS = st.sampled_from([b"\n"] * 12 + [b"\r\n"] * 6 + [b"\r", b"\r\r\n", b""])  # a lone \r joins two lines


@st.composite
def data_lines(draw, names):
    """One line (with its ending) for a header of ``names``: mostly a valid row, else some damaged form."""
    kind = draw(st.sampled_from(["good"] * 14 + ["cells", "fields", "bytes", "blank", "long"]))
    if kind == "blank":
        body = draw(st.sampled_from(["", " ", "\t", " \t ", "\r"])).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=24))
    elif kind == "long":  # near the line limit, in valid and invalid bytes
        n = draw(st.sampled_from([MAXB - 1, MAXB, MAXB + 1, MAXB + 2, 3 * MAXB]))
        body = draw(st.sampled_from([b"0", b"9,", b"\xff", b"\xc3\xa9"])) * n
        body = body[:n]
    else:
        row = []
        for name in names:
            if kind == "good" and name in INPUTS:
                row.append(draw(st.sampled_from([good_inputs] * 6 + [number_cells()]).flatmap(lambda s: s)))
            elif kind == "good" and name in TARGETS:
                row.append(draw(st.sampled_from([good_targets] * 8 + [target_cells]).flatmap(lambda s: s)))
            elif kind == "good":
                row.append(draw(st.text(max_size=5).map(lambda s: s.replace(",", ";").replace('"', "'"))))
            else:
                row.append(draw(cells))
        if kind == "fields":  # one field too many or too few
            if row and draw(st.booleans()):
                row.pop(draw(st.integers(0, len(row) - 1)))
            else:
                row.insert(draw(st.integers(0, len(row))), draw(cells))
        body = ",".join(row).encode("utf-8", "surrogatepass")
    return body + draw(ENDINGS)


@st.composite
def headers(draw):
    names = list(draw(st.permutations(list(INPUTS + TARGETS) + draw(st.sampled_from([[], ["note"]])))))
    mutation = draw(st.sampled_from([None] * 24 + ["spaces", "quoted", "duplicate", "drop", "rename", "bytes",
                                                  "bom", "blank-first", "bom-after-blank"]))
    cols = list(names)
    if mutation == "spaces":
        cols = [draw(SPACE) + c + draw(st.sampled_from(["", " ", "\u00a0", "\u3000"])) for c in cols]
    elif mutation == "quoted":
        cols = [f'"{c}"' if draw(st.booleans()) else c for c in cols]
    elif mutation == "duplicate":
        cols.insert(draw(st.integers(0, len(cols))), draw(st.sampled_from(cols)))
    elif mutation == "drop":
        cols.pop(draw(st.integers(0, len(cols) - 1)))
    elif mutation == "rename":
        cols[draw(st.integers(0, len(cols) - 1))] = draw(st.text(max_size=3))
    line = ",".join(cols).encode("utf-8", "surrogatepass")
    if mutation == "bytes":
        line = draw(st.binary(max_size=12)) + line
    if mutation == "bom":
        line = b"\xef\xbb\xbf" + line
    before = b""
    if mutation in ("blank-first", "bom-after-blank"):
        before = draw(st.sampled_from([b"\n", b"  \n", b"\t\r\n", b"\n\n"]))
        if mutation == "bom-after-blank":
            line = b"\xef\xbb\xbf" + line  # a byte-order mark counts only on line 1
    return names, before + line + draw(st.sampled_from([b"\n", b"\n", b"\r\n"]) if mutation is None else ENDINGS)


@st.composite
def csv_inputs(draw, max_rows=25):
    names, head = draw(headers())
    rows = [draw(data_lines(names)) for _ in range(draw(st.integers(0, max_rows)))]
    data = head + b"".join(rows)
    damage = draw(st.sampled_from([None] * 9 + ["truncate", "flip", "nul"]))
    if damage == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
        data = bytes(buf)
    elif damage == "nul" and data:
        k = draw(st.integers(0, len(data)))
        data = data[:k] + b"\x00" + data[k:]
    return data


# -- the fast number parser against float() and the documented syntax -----------------------------------------
@FUZZ
@given(st.one_of(st.text(), st.sampled_from(ODD_CELLS), number_cells(), float_only_cells,
                 st.from_regex(DOC_NUMBER, fullmatch=True),
                 st.text(st.sampled_from(list("0123456789+-.eE_ \tnaifty") + ["ı", "İ", "K", "ſ", "\x0b", "٣"]),
                         max_size=10)))
@example("ınf")  # a dotless i: only an IGNORECASE pattern without re.ASCII matches it
@example("1e309")
@example("1_0")  # float() reads 10.0
@example("-0")
@example("5e-324")
def test_a_cell_is_read_as_float_reads_it_or_refused_as_documented(cell):
    want, got = doc_number(cell), _number(cell)
    assert (got is None) == (want is None), repr(cell)
    if got is not None:  # bit for bit what float() reads, the sign of zero and NaN included
        assert _bits(got) == _bits(want) or (math.isnan(got) and math.isnan(want)), repr(cell)
    # the exported pattern documents the same set of cells as the parser uses
    assert (NUMBER.fullmatch(cell) is not None) == (want is not None), repr(cell)


@FUZZ
@given(st.binary(max_size=300) | st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"0" * 7, b"\xff"]),
                                          max_size=60).map(b"".join),
       st.integers(1, 40))
def test_read_lines_keeps_every_byte_and_marks_only_overlong_lines(data, max_bytes):
    got = list(read_lines(io.BytesIO(data), max_bytes=max_bytes))
    want = physical_lines(data)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(g, bytes):
            assert g == w and not _too_long(w, max_bytes)
        else:  # a marker of a line over the limit, with its true length
            assert _too_long(w, max_bytes) and g.n_bytes == len(w)


@FUZZ
@given(st.text(max_size=30))
def test_parse_columns_returns_clean_names_or_a_value_error(text):
    try:
        cols = parse_columns(text, "--inputs")
    except ValueError as exc:
        assert str(exc).startswith("--inputs: ")
        parts = [c.strip() for c in text.split(",")]
        assert "" in parts or len(set(parts)) != len(parts)
    else:
        assert cols == tuple(c.strip() for c in text.split(","))
        assert all(cols) and len(set(cols)) == len(cols)


# -- whole inputs, in this process -----------------------------------------------------------------------------
def _run_stream(data, on_bad_row, checkpoint=None):
    net = new_learner()
    out = io.BytesIO()
    stream = Stream(net, INPUTS, TARGETS, on_bad_row=on_bad_row, checkpoint=checkpoint, saturation_rows=0,
                    log=lambda msg: None)
    try:
        result = stream.run(read_lines(io.BytesIO(data), max_bytes=MAXB), out)
    except StreamError as exc:
        return net, out.getvalue(), exc
    return net, out.getvalue(), result


def _check_against_oracle(data, on_bad_row, net, out, outcome, checkpoint=None):
    fresh = new_learner()
    try:
        rows = oracle_rows(data, MAXB)
    except Header as h:
        event(f"header refused: {h.what}")
        # a header that cannot be used: a plain StreamError before any row, nothing written or learned
        assert type(outcome) is StreamError, (data, outcome)
        msg = str(outcome)
        if h.what == "empty":
            assert "the input is empty" in msg
        elif h.line is not None:
            assert msg.startswith(f"the CSV header line cannot be read (line {h.line}:"), msg
        else:
            assert f"column {h.what!r}" in msg and "the CSV header" in msg, msg
        assert out == b"" and same_state(net, fresh)
        return
    want = Expected(rows, on_bad_row)
    event(f"stop: {want.stop and want.stop[0]}; rows: {min(want.rows, 10) // 5 * 5}+; bad rows: {min(want.bad, 3)}")
    assert out.decode() == "".join(want.out), data
    assert same_state(net, want.learner), data  # a rejected row never changed the state
    if want.stop is None:
        assert not isinstance(outcome, Exception), (data, outcome)
        assert (outcome.rows_read, outcome.bad_rows, outcome.stopped) == (want.rows, want.bad, None)
        assert outcome.bad_rows_this_run == want.bad and len(outcome.bad_examples) == min(want.bad, 5)
        for text in outcome.bad_examples:
            assert re.match(r"line [0-9]+(, column '[^']*')?: ", text), text
    elif want.stop[0] == "diverged":
        assert type(outcome) is DivergedError and outcome.line == want.stop[1], (data, outcome)
    else:
        _, line, column = want.stop
        assert type(outcome) is BadRowError, (data, outcome)
        assert (outcome.line, outcome.column) == (line, column), (data, str(outcome))
        assert str(outcome).startswith(f"line {line}" + ("" if column is None else f", column {column!r}") + ": ")
        assert outcome.exit_code == 1
        if checkpoint is not None:  # the state before the bad row is saved: no row before it is lost
            saved, meta = load_with_metadata(checkpoint)
            assert same_state(saved, want.learner) and meta["extra"]["stream"]["rows_read"] == want.rows


@FUZZ
@given(csv_inputs())
@example(b"x,y,d,e\n0.5,0.25,0.5,\n" + b"0" * (MAXB - 7) + b",0,0,\r\n0.1,0.2,0.3,0.4\n")  # CRLF at the limit
@example(b"x,y,d,e\n1e308,1e308,1,1\n-1e308,5e-324,-0,1e-320\n")
@example(b"\n\xef\xbb\xbfx,y,d,e\n0,0,0,0\n")  # a byte-order mark after a blank line is part of the name
def test_skip_mode_learns_exactly_the_good_rows(data):
    net, out, outcome = _run_stream(data, "skip")
    _check_against_oracle(data, "skip", net, out, outcome)
    if isinstance(outcome, Exception) or any(isinstance(r, bytes) and _too_long(r, MAXB)
                                             for r in physical_lines(data)):
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    # str lines (the Python API) read exactly as bytes lines (the command line)
    net2, out2 = new_learner(), io.BytesIO()
    Stream(net2, INPUTS, TARGETS, on_bad_row="skip", saturation_rows=0).run(
        [p.decode() for p in physical_lines(data)], out2)
    assert out2.getvalue() == out and same_state(net2, net)


@settings(FUZZ, max_examples=100)
@given(csv_inputs())
def test_error_mode_stops_at_the_first_bad_row_with_the_rows_before_it_saved(data):
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "ck.npz")
        net, out, outcome = _run_stream(data, "error", checkpoint=ck)
        _check_against_oracle(data, "error", net, out, outcome, checkpoint=ck)


# -- whole inputs, through the command line (in this process: no interpreter start per example) ----------------
@settings(FUZZ, max_examples=60)
@given(csv_inputs(max_rows=12), st.sampled_from(["error", "skip"]))
def test_the_command_line_exits_with_the_documented_code_and_one_line(data, on_bad_row):
    if any(_too_long(r, 1 << 20) for r in physical_lines(data)):  # (never: lines here are short)
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, out, ck = (os.path.join(tmp, name) for name in ("in.csv", "out.csv", "ck.npz"))
        with open(src, "wb") as f:
            f.write(data)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["stream", src, "--inputs", ",".join(INPUTS), "--targets", ",".join(TARGETS),
                         "--units", str(N_UNITS), "--lr", str(LR), "--seed", "0", "--out", out, "--checkpoint", ck,
                         "--on-bad-row", on_bad_row])
        err = err.getvalue()
        assert "Traceback" not in err
        try:
            rows = oracle_rows(data, 1 << 20)
        except Header:
            assert code == 2 and err.startswith(f"rtrl stream: error: {src}: ") and err.count("\n") == 1, err
            assert not os.path.exists(ck)
            return
        want = Expected(rows, on_bad_row)
        with open(out, "rb") as f:
            assert f.read().decode() == "".join(want.out)
        if want.stop is None:
            assert code == 0, err
            saved, meta = load_with_metadata(ck)
            assert same_state(saved, want.learner) and meta["extra"]["stream"]["rows_read"] == want.rows
        elif want.stop[0] == "diverged":
            assert code == 3 and err.startswith("rtrl stream: error: training diverged") and err.count("\n") == 1
        else:
            _, line, column = want.stop
            assert code == 1 and err.count("\n") == 1, err
            where = f"line {line}" + ("" if column is None else f", column {column!r}")
            assert err.startswith(f"rtrl stream: error: {src}: {where}: "), err
            saved, meta = load_with_metadata(ck)
            assert same_state(saved, want.learner) and meta["extra"]["stream"]["rows_read"] == want.rows


def test_a_line_over_the_real_limit_of_one_mebibyte_is_one_bad_row():
    """The command line's limit (1 MiB, terminator excluded), at its edge, with \\n and \\r\\n ends."""
    from rtrl.stream import MAX_LINE_BYTES

    fits = b"0." + b"0" * (MAX_LINE_BYTES - 7) + b",0,0,"  # exactly MAX_LINE_BYTES bytes
    assert len(fits) == MAX_LINE_BYTES
    data = (b"x,y,d,e\n" + fits + b"\n" + fits + b"\r\n" + fits + b"0\n" + fits + b"0\r\n" + b"0.5,0.5,0.5,\n")
    net, out, outcome = _run_stream_limit(data)
    assert (outcome.rows_read, outcome.bad_rows) == (5, 2), outcome.bad_examples
    assert [e.split(":")[0] for e in outcome.bad_examples] == ["line 4", "line 5"]
    assert net.t == 3


def _run_stream_limit(data):
    net = new_learner()
    out = io.BytesIO()
    result = Stream(net, INPUTS, TARGETS, on_bad_row="skip", saturation_rows=0).run(read_lines(io.BytesIO(data)),
                                                                                     out)
    return net, out.getvalue(), result
