"""`rtrl stream` at its edges (issue 13): bad bytes, failed writes, unwritable checkpoints, devices,
stale temporary files, two runs on one checkpoint, saturation, resumes that count what they skipped.

Each test pins one class of defect and fails if it comes back. Subprocesses have bounded timeouts.
"""

import contextlib
import errno
import io
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

import rtrl
from rtrl.cli import main
from rtrl.io import load, load_with_metadata
from rtrl.stream import (NUMBER, BadRowError, CheckpointBusyError, SaturatedError, Stream, StreamError, WriteError,
                         _number, read_lines, stale_temporaries)

RTRL = [sys.executable, "-m", "rtrl"]
TIMEOUT = 60


def _rows(T, seed=0, bad=()):
    """CSV text x,d with T data rows; rows (1-based) in ``bad`` get a non-numeric input."""
    rng = np.random.default_rng(seed)
    lines = ["x,d"]
    for t in range(1, T + 1):
        x = "oops" if t in bad else f"{rng.uniform(-1, 1)!r}"
        lines.append(f"{x},{rng.uniform(0.1, 0.9)!r}")
    return "\n".join(lines) + "\n"


def _cli(tmp_path, *args, data=None, expect=None):
    """Run `rtrl stream` in ``tmp_path`` (in this process; in a subprocess when ``data`` is its stdin);
    return (exit code, stderr). An exception escaping main() fails the test like a traceback would."""
    argv = ["stream", *map(str, args)]
    if data is None:
        err_buf, cwd = io.StringIO(), os.getcwd()
        os.chdir(tmp_path)
        try:
            with contextlib.redirect_stderr(err_buf):
                code = main(argv)
        finally:
            os.chdir(cwd)
        err = err_buf.getvalue()
    else:
        r = subprocess.run(RTRL + argv, capture_output=True, timeout=TIMEOUT, cwd=tmp_path, input=data)
        code, err = r.returncode, r.stderr.decode()
    assert "Traceback" not in err, err
    if expect is not None:
        assert code == expect, err
    return code, err


def _rows_read(ck):
    return load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"]


# -- 1. bytes that are not UTF-8 -----------------------------------------------------------------------
def test_non_utf8_bytes_are_a_bad_row_naming_the_line(tmp_path):
    """The issue's reproduction: exit 1 naming line 3, the row before it learned and checkpointed."""
    data = tmp_path / "u.csv"
    data.write_bytes(b"x,d\n0.1,0.2\n\xff\xfe,0.5\n0.3,0.4\n")
    ck = tmp_path / "u.ck.npz"
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--out", "o.csv")
    assert code == 1
    assert "line 3: not UTF-8 text: byte 0xff at byte 1 of the line" in err and len(err.strip().splitlines()) == 1
    assert _rows_read(ck) == 1 and load(ck).t == 1
    # skipped under --on-bad-row skip, and the rows after it are learned
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--out", "o.csv",
                     "--on-bad-row", "skip", expect=0)
    assert "skipped 1 bad rows" in err and _rows_read(ck) == 3 and load(ck).t == 2
    assert (tmp_path / "o.csv").read_text().splitlines()[2] == "2,"


def test_a_bad_byte_after_many_rows_does_not_lose_the_rows_before_it(tmp_path):
    """Decoding is per line: 2 000 rows (far more than one 8 KB block) are learned before the bad one."""
    good = _rows(2000)
    data = tmp_path / "d.csv"
    data.write_bytes(good.encode() + b"0.5,\xc3\x28\n" + b"0.1,0.2\n")
    ck = tmp_path / "ck.npz"
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--out", "o.csv")
    assert code == 1 and "line 2002: not UTF-8 text: byte 0xc3 at byte 5" in err
    assert _rows_read(ck) == 2000


def test_header_that_is_not_utf8_is_a_clear_error(tmp_path):
    data = tmp_path / "h.csv"
    data.write_bytes(b"x,\xe9\n0.1,0.2\n")
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", expect=2)
    assert "the CSV header line cannot be read (line 1: not UTF-8 text" in err


def test_utf8_byte_order_mark_and_crlf_line_ends(tmp_path):
    net_a, net_b = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0), rtrl.OnlineLearner(2, 1, learning_rate=0.5,
                                                                                         rng=0)
    text = _rows(30)
    out_a, out_b = io.BytesIO(), io.BytesIO()
    Stream(net_a, ("x",), ("d",)).run(read_lines(io.BytesIO(text.encode())), out_a)
    crlf = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    Stream(net_b, ("x",), ("d",)).run(read_lines(io.BytesIO(crlf)), out_b)
    assert out_a.getvalue() == out_b.getvalue()


def test_carriage_return_inside_a_line_and_overlong_lines_are_bad_rows():
    text = b"x,d\n0.1,0.2\n0.3\r0.4,0.5\n" + b"9" * 300 + b",0.5\n0.1,0.2\n"
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    result = Stream(net, ("x",), ("d",), on_bad_row="skip").run(read_lines(io.BytesIO(text), max_bytes=100),
                                                                io.BytesIO())
    assert (result.rows_read, result.bad_rows, net.t) == (4, 2, 2)
    assert "line 3: a carriage return inside the line" in result.bad_examples[0]
    assert "line 4: the line is 305 bytes long" in result.bad_examples[1]


# -- 10, 11, 14: numbers, blank lines, quotes ----------------------------------------------------------
@pytest.mark.parametrize("cell", ["1", "-1.5", "+.5", "1.", "1e-3", "2.5E+2", " 0.25 ", "\t0.5", "NaN", "-inf",
                                  "Infinity"])
def test_plain_ascii_numbers_are_accepted(cell):
    assert NUMBER.fullmatch(cell)
    v = _number(cell)
    assert v is not None and (v == float(cell) or (math.isnan(v) and math.isnan(float(cell))))


@pytest.mark.parametrize("cell", ["０.５", "٠.٥", "0.5_5", "1_000", "0x10", "1e", "e5", ".", "", "--1", "1,5", "½",
                                  "0.5\u00a0", "\u20000.5", "nan(1)", "infinit", "1.2.3", "\x0b0.5", "0.5\x0c",
                                  "\x1c0.5", "0\n", "1 2"])
def test_anything_else_is_not_a_number(cell):
    assert not NUMBER.fullmatch(cell)
    assert _number(cell) is None  # the fast parser used per cell agrees with the documented pattern


def test_fast_number_parser_agrees_with_the_pattern_on_random_ascii():
    rng = np.random.default_rng(5)
    alphabet = list("0123456789+-.eE_ \tnaifNIF") + ["\x0b", "\x0c", "inf", "nan", "infinity", "1e5"]
    agree = 0
    for _ in range(20000):
        cell = "".join(rng.choice(alphabet, size=int(rng.integers(1, 7))))
        assert (NUMBER.fullmatch(cell) is not None) == (_number(cell) is not None), repr(cell)
        agree += _number(cell) is not None
    assert agree > 1000


def test_whitespace_only_lines_are_ignored_like_blank_lines():
    text = _rows(20)
    lines = text.splitlines(keepends=True)
    spaced = "".join(lines[:5] + ["   \n", "\t\n", " \t \r\n", "\n"] + lines[5:])
    outs = []
    for t in (text, spaced):
        net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
        out = io.BytesIO()
        result = Stream(net, ("x",), ("d",)).run(read_lines(io.BytesIO(t.encode())), out)
        assert result.bad_rows == 0 and result.rows_read == 20
        outs.append(out.getvalue())
    assert outs[0] == outs[1]


def test_unclosed_quote_under_skip_is_one_bad_line_and_the_rest_is_learned():
    rows = _rows(150).splitlines(keepends=True)
    rows[5] = '"0.5,0.2\n'  # an unclosed quote on data row 5 (physical line 6)
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    result = Stream(net, ("x",), ("d",), on_bad_row="skip").run(read_lines(io.BytesIO("".join(rows).encode())),
                                                                io.BytesIO())
    assert (result.rows_read, result.bad_rows, net.t) == (150, 1, 149)
    assert result.bad_examples[0].startswith("line 6: malformed CSV") and "unclosed quote" in result.bad_examples[0]
    # a well-formed quoted cell is read as usual
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    result = Stream(net, ("x",), ("d",)).run(io.StringIO('x,d\n"0.5","0.25"\n'), io.BytesIO())
    assert (result.rows_read, result.bad_rows) == (1, 0)


def test_lines_of_another_type_are_a_stream_error():
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    with pytest.raises(StreamError, match="lines: expected str or bytes lines, got int"):
        Stream(net, ("x",), ("d",)).run(iter(["x,d\n", 5]), io.BytesIO())


# -- 2, 3: failed writes and an unwritable checkpoint -----------------------------------------------------
def test_checkpoint_in_a_missing_folder_is_refused_before_the_first_row(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(_rows(500))
    for every in ("100", "0"):  # with the default --every 0 the state used to be lost only at the end
        code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", "no/such/dir/ck.npz",
                         "--every", every, "--out", "pred.csv", expect=4)
        assert err.count("\n") == 1 and "cannot write --checkpoint no/such/dir/ck.npz: No such folder" in err
        assert "refused before the first row (nothing was read)" in err
        assert not (tmp_path / "pred.csv").exists()  # nothing was read or written


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_checkpoint_path_that_is_not_a_file_is_refused(tmp_path, kind):
    data = tmp_path / "data.csv"
    data.write_text(_rows(5))
    target = tmp_path / "adir" if kind == "folder" else "/dev/null"
    if kind == "folder":
        target.mkdir()
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", target, "--out", "p.csv",
                     expect=4)
    assert ("it is a folder" if kind == "folder" else "not a regular file") in err


def test_read_only_folder_is_refused_before_the_first_row(tmp_path, monkeypatch, capsys):
    """A read-only folder (simulated: as root, permission bits do not stop writes) -> exit 4 at once."""
    import rtrl.io

    data = tmp_path / "data.csv"
    data.write_text(_rows(50))
    ro = tmp_path / "ro"
    ro.mkdir()
    real = rtrl.io.tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if os.path.abspath(dir) == str(ro):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(rtrl.io.tempfile, "mkstemp", mkstemp)
    rc = main(["stream", str(data), "--inputs", "x", "--targets", "d", "--checkpoint", str(ro / "ck.npz"),
               "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 4 and f"cannot write --checkpoint {ro / 'ck.npz'}: Permission denied (EACCES)" in err
    assert not (tmp_path / "p.csv").exists()


def _limited(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_file_size_limit_on_the_checkpoint_keeps_the_last_good_one(tmp_path):
    """A write that fails mid-run (RLIMIT_FSIZE: 'File too large', as a full disk would) -> exit 4,
    one line naming the path, the previous checkpoint byte for byte as it was."""
    data = tmp_path / "data.csv"
    data.write_text(_rows(300))
    ck = tmp_path / "ck.npz"
    args = ["stream", str(data), "--inputs", "x", "--targets", "d", "--units", "30", "--checkpoint", str(ck),
            "--every", "100", "--out", "/dev/null"]
    r = subprocess.run(RTRL + args[:-2] + ["--out", str(tmp_path / "first.csv")], capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0
    before = ck.read_bytes()
    assert len(before) > 200_000  # P of 30 units: 30 * 30 * 32 floats
    r = subprocess.run(RTRL + args + ["--resume"], capture_output=True, timeout=TIMEOUT,
                       preexec_fn=_limited(100_000))
    err = r.stderr.decode()
    assert r.returncode == 4, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert f"cannot write --checkpoint {ck}: File too large (EFBIG)" in err and "left as it was" in err
    assert ck.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_file_size_limit_on_the_output(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(_rows(3000))
    out = tmp_path / "pred.csv"
    r = subprocess.run(RTRL + ["stream", str(data), "--inputs", "x", "--targets", "d", "--out", str(out)],
                       capture_output=True, timeout=TIMEOUT, preexec_fn=_limited(20_000))
    err = r.stderr.decode()
    assert r.returncode == 4 and "Traceback" not in err and err.count("\n") == 1
    assert f"cannot write --out {out}: File too large (EFBIG)" in err


class _FullDisk(io.BytesIO):
    """An output that accepts ``room`` bytes, then fails like a full disk."""

    def __init__(self, room):
        super().__init__()
        self.room = room

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_disk_full_on_the_output_and_on_the_checkpoint(tmp_path, monkeypatch):
    text = _rows(400)
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    ck = tmp_path / "ck.npz"
    s = Stream(net, ("x",), ("d",), checkpoint=ck, every=50)
    with pytest.raises(WriteError, match=r"cannot write the output stdout: No space left on device \(ENOSPC\)") \
            as info:
        s.run(io.StringIO(text), _FullDisk(2000))
    assert info.value.exit_code == 4 and info.value.what == "output"
    good = _rows_read(ck)
    assert 0 < good < 400 and good % 50 == 0  # the last periodic checkpoint, not the half-written state

    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    real_savez = np.savez
    calls = []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_savez(f, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    ck.unlink()
    with pytest.raises(WriteError, match="cannot write the checkpoint .*ck.npz: No space left on device .*left as it"):
        Stream(net, ("x",), ("d",), checkpoint=ck, every=50).run(io.StringIO(text), io.BytesIO())
    assert _rows_read(ck) == 100  # two saves made it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ck.npz.lock", "ck.npz"]


def test_input_read_error_saves_the_rows_read_and_says_so(tmp_path):
    class Failing(io.BytesIO):
        def readline(self, *a):
            line = super().readline(*a)
            if self.tell() > 300:
                raise OSError(errno.EIO, "Input/output error")
            return line

    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    ck = tmp_path / "ck.npz"
    with pytest.raises(StreamError, match=r"cannot read the input: Input/output error \(EIO\)"):
        Stream(net, ("x",), ("d",), checkpoint=ck).run(read_lines(Failing(_rows(100).encode())), io.BytesIO())
    assert _rows_read(ck) == net.t > 0


# -- 12: a device or a pipe as --out resumes -------------------------------------------------------------
def test_resume_with_out_dev_null(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(_rows(60))
    ck = tmp_path / "ck.npz"
    base = [data, "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--out", "/dev/null"]
    first = tmp_path / "first.csv"
    first.write_text("\n".join(_rows(60).splitlines()[:31]) + "\n")  # rows 1..30 of the same data
    _cli(tmp_path, first, *base[1:], expect=0)
    assert _rows_read(ck) == 30
    assert load_with_metadata(ck)[1]["extra"]["stream"]["out_bytes"] is None  # nothing to cut back
    code, err = _cli(tmp_path, *base, "--resume", expect=0)
    assert "30 rows this run, 60 in all" in err
    ref = tmp_path / "ref.npz"
    _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", ref, "--out", "/dev/null", expect=0)
    np.testing.assert_array_equal(load(ck).W, load(ref).W)


# -- resume bookkeeping ------------------------------------------------------------------------------------
def test_resume_counts_every_skipped_bad_row(tmp_path):
    """Skip k = 3 bad rows, 2 of them before the checkpoint: the final report and the checkpoint count 3."""
    lines = _rows(40, bad=(4, 11, 33)).splitlines()
    lines[4] = "\udcff" + lines[4]  # row 4 is bad by a byte that is not UTF-8 as well
    full = "\n".join(lines) + "\n"
    part = tmp_path / "part.csv"
    part.write_bytes(("\n".join(lines[:21]) + "\n").encode("utf-8", "surrogateescape"))  # rows 1..20
    data = tmp_path / "data.csv"
    data.write_bytes(full.encode("utf-8", "surrogateescape"))
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    args = ["--inputs", "x", "--targets", "d", "--checkpoint", ck, "--on-bad-row", "skip", "--out", out]
    code, err = _cli(tmp_path, part, *args, expect=0)
    assert "skipped 2 bad rows this run (2 in all)" in err
    code, err = _cli(tmp_path, data, *args, "--resume", expect=0)
    assert "20 rows this run, 40 in all" in err and "skipped 1 bad rows this run (3 in all)" in err
    assert "line 34, column 'x'" in err
    info = load_with_metadata(ck)[1]["extra"]["stream"]
    assert (info["rows_read"], info["bad_rows"]) == (40, 3) and load(ck).t == 37
    # the same as one uninterrupted run
    ref = tmp_path / "ref.npz"
    _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--checkpoint", ref, "--on-bad-row", "skip",
         "--out", tmp_path / "ref.csv", expect=0)
    np.testing.assert_array_equal(load(ck).W, load(ref).W)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_resume_into_a_shortened_out_file_fails_and_leaves_it_untouched(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(_rows(30))
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    args = [data, "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--out", out]
    _cli(tmp_path, *args, expect=0)
    short = out.read_bytes()[:-40]
    out.write_bytes(short)
    code, err = _cli(tmp_path, *args, "--resume", expect=2)
    assert f"has {len(short)} bytes but the checkpoint wrote" in err and "resume into a new --out file" in err
    assert out.read_bytes() == short


# -- 13: stale temporary files ----------------------------------------------------------------------------
def test_stale_temporaries_of_the_same_checkpoint_are_removed_and_only_those(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        names = {
            f".ck.npz.{dead.pid}.abcd1234.tmp": False,  # its writer is gone: stale
            f".ck.npz.{live.pid}.abcd1234.tmp": True,  # a live process may be writing it
            ".ck.npz.old_name.tmp": True,  # old-style name (no pid), recent: kept
            ".ck.npz.k2j4h5g6.tmp": False,  # old-style, made below to look two hours old: stale
            f".other.npz.{dead.pid}.abcd1234.tmp": True,  # another checkpoint's
            f"ck.npz.{dead.pid}.abcd1234.tmp": True,  # not a name rtrl makes
            ".ck.npz.lock": True,
        }
        for name in names:
            (tmp_path / name).write_bytes(b"junk")
        old = time.time() - 7200
        os.utime(tmp_path / ".ck.npz.k2j4h5g6.tmp", (old, old))
        assert sorted(stale_temporaries(tmp_path / "ck.npz")) == sorted(
            str(tmp_path / n) for n, keep in names.items() if not keep)
        notes = []
        net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
        Stream(net, ("x",), ("d",), checkpoint=tmp_path / "ck.npz", log=notes.append).run(
            io.StringIO(_rows(5)), io.BytesIO())
        left = set(os.listdir(tmp_path))
        assert left == {n for n, keep in names.items() if keep} | {"ck.npz"}
        assert notes == [f"rtrl stream: removed 2 stale temporary file(s) of interrupted saves of "
                         f"{tmp_path / 'ck.npz'}"]
    finally:
        live.kill()
        live.wait()


def test_temporary_file_names_carry_the_writer_pid(tmp_path, monkeypatch):
    import rtrl.io

    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append(os.path.basename(src))
        return real(src, dst)

    monkeypatch.setattr(rtrl.io.os, "replace", replace)
    rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0).save(tmp_path / "m.npz")
    assert len(seen) == 1 and seen[0].startswith(f".m.npz.{os.getpid()}.") and seen[0].endswith(".tmp")


# -- two processes on one checkpoint -------------------------------------------------------------------------
def test_two_streams_on_one_checkpoint_refuse(tmp_path):
    ck = tmp_path / "ck.npz"
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    a = Stream(net, ("x",), ("d",), checkpoint=ck)
    a.prepare()
    try:
        with pytest.raises(CheckpointBusyError, match=rf"in use by another running rtrl stream \(pid {os.getpid()}\)"):
            Stream(net, ("x",), ("d",), checkpoint=ck).prepare()
    finally:
        a.close()
    Stream(net, ("x",), ("d",), checkpoint=ck).run(io.StringIO(_rows(3)), io.BytesIO())  # free again


def test_a_second_process_on_a_busy_checkpoint_exits_2(tmp_path):
    ck = tmp_path / "ck.npz"
    p = subprocess.Popen(RTRL + ["stream", "-", "--inputs", "x", "--targets", "d", "--checkpoint", str(ck)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"x,d\n0.1,0.2\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"row,pred_d\n"  # the first run holds the lock now
        code, err = _cli(tmp_path, "-", "--inputs", "x", "--targets", "d", "--checkpoint", ck, data=b"x,d\n",
                         expect=2)
        assert f"is in use by another running rtrl stream (pid {p.pid})" in err
        p.stdin.close()
        assert p.wait(TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
    _cli(tmp_path, "-", "--inputs", "x", "--targets", "d", "--checkpoint", ck, "--resume", data=b"x,d\n0.1,0.2\n",
         expect=0)


# -- 9: saturation -------------------------------------------------------------------------------------------
def _pinned_learner():
    """Weights so large that the logistic output is exactly 1.0 for any input >= 0 (f' = 0)."""
    return rtrl.OnlineLearner(2, 1, learning_rate=0.5, W=np.full((2, 4), 100.0))


def test_saturated_target_outputs_stop_the_stream_and_keep_the_last_good_checkpoint(tmp_path):
    rows = "x,d\n" + "0.5,0.5\n" * 30
    ck = tmp_path / "ck.npz"
    net = _pinned_learner()
    with pytest.raises(SaturatedError, match=r"saturated at step 10 \(input line 11\): the output of target 'd' "
                                             r"has sat at the bound 1 of logistic units for 10 rows") as info:
        Stream(net, ("x",), ("d",), checkpoint=ck, every=4, saturation_rows=10).run(io.StringIO(rows), io.BytesIO())
    assert info.value.exit_code == 3
    assert not ck.exists()  # no checkpoint of a pinned state was written (every=4 was deferred)
    # a target at the bound itself is not a streak; nor are rows without a target
    net = _pinned_learner()
    result = Stream(net, ("x",), ("d",), saturation_rows=10).run(io.StringIO("x,d\n" + "0.5,1\n0.5,\n" * 30),
                                                                 io.BytesIO())
    assert result.rows_read == 60
    # off with saturation_rows=0
    net = _pinned_learner()
    assert Stream(net, ("x",), ("d",), saturation_rows=0).run(io.StringIO(rows), io.BytesIO()).rows_read == 30


def test_a_checkpoint_held_back_during_a_short_streak_is_saved_when_it_ends(tmp_path, monkeypatch):
    """Rows 1-5 pinned (target 0.5, output 1.0), then targets at the bound itself: the save due at row 4
    is made after row 6, consistent (the state of rows 1..6 with rows_read = 6), then every 4 rows."""
    saves = []
    real = Stream.save_checkpoint

    def record(self):
        saves.append((self.rows_read, self.learner.t))
        real(self)

    monkeypatch.setattr(Stream, "save_checkpoint", record)
    rows = "x,d\n" + "0.5,0.5\n" * 5 + "0.5,1\n" * 7
    Stream(_pinned_learner(), ("x",), ("d",), checkpoint=tmp_path / "ck.npz", every=4, saturation_rows=10).run(
        io.StringIO(rows), io.BytesIO())
    assert saves == [(6, 6), (8, 8), (12, 12), (12, 12)]  # the last one: the end of the input
    assert _rows_read(tmp_path / "ck.npz") == load(tmp_path / "ck.npz").t == 12


def test_saturation_through_the_command_line(tmp_path):
    model = tmp_path / "m.npz"
    _pinned_learner().save(model)
    data = tmp_path / "d.csv"
    data.write_text("x,d\n" + "0.5,0.5\n" * 200)
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--model", model, "--out", "p.csv",
                     expect=3)
    assert "saturated at step 100" in err and "--clip-norm" in err
    _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--model", model, "--out", "p.csv",
         "--saturation-rows", "0", expect=0)


def test_a_huge_target_no_longer_destroys_the_model(tmp_path):
    """The issue's example: one target of 1e308 among logistic units. It is a bad row now (exit 1), and
    with --on-bad-row skip the model trains on as if the row were absent."""
    rows = _rows(60).splitlines()
    bad = rows[:]
    bad[20] = "0.5,1e308"
    data, ref_data = tmp_path / "d.csv", tmp_path / "r.csv"
    data.write_text("\n".join(bad) + "\n")
    ref_data.write_text("\n".join(rows[:20] + rows[21:]) + "\n")
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--out", "p.csv", expect=1)
    assert "line 21, column 'd': target 1e308 is outside the range [0, 1]" in err
    ck, ref = tmp_path / "ck.npz", tmp_path / "ref.npz"
    _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--out", "p.csv", "--checkpoint", ck,
         "--on-bad-row", "skip", expect=0)
    _cli(tmp_path, ref_data, "--inputs", "x", "--targets", "d", "--out", "rp.csv", "--checkpoint", ref, expect=0)
    np.testing.assert_array_equal(load(ck).W, load(ref).W)
    code, err = _cli(tmp_path, data, "--inputs", "x", "--targets", "d", "--out", "p.csv", "--clip-targets",
                     expect=0)
    assert "clipped 1 targets to the range of the units this run (1 in all)" in err


def test_stream_rejects_bad_settings():
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    for kw, match in ((dict(saturation_rows=-1), "saturation_rows"), (dict(rows_read=1.5), "rows_read"),
                      (dict(bad_rows=-2), "bad_rows")):
        with pytest.raises(ValueError, match=match):
            Stream(net, ("x",), ("d",), **kw)
    with pytest.raises(ValueError, match="single-stream"):
        Stream(rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0, n_streams=2), ("x",), ("d",))
    with pytest.raises(BadRowError):
        Stream(net, ("x",), ("d",)).run(io.StringIO("x,d\n1,2\n"), io.BytesIO())


def test_an_arithmetic_error_in_a_rule_is_divergence(monkeypatch):
    """A compiled rule dividing by an overflowed norm (ZeroDivisionError) ends the stream as divergence
    (exit 3, state rolled back), never as a traceback."""
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    calls = []
    real = type(net.rule).run_compiled

    def flaky(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise ZeroDivisionError("division by zero")
        return real(self, *args)

    monkeypatch.setattr(type(net.rule), "run_compiled", flaky)
    with pytest.raises(rtrl.stream.DivergedError, match=r"diverged at step 4 \(input line 5\)") as info:
        Stream(net, ("x",), ("d",)).run(io.StringIO(_rows(10)), io.BytesIO())
    assert info.value.exit_code == 3 and net.t == 3
