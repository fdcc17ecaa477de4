"""`rtrl stream` as a separate process: a live pipe, SIGTERM / SIGKILL mid-stream and --resume.

Every wait has a bounded timeout, so a hang fails the test instead of blocking the suite.
"""

import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rtrl.io import load, load_with_metadata

RTRL = [sys.executable, "-m", "rtrl"]
TIMEOUT = 60.0
ARGS = ["--inputs", "x,c", "--targets", "d", "--units", "3", "--lr", "0.7", "--seed", "5"]


def _rows(T, seed=0):
    """Data lines of a delayed-echo task with a cue column and some empty targets."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, T)
    lines = []
    for t in range(T):
        d = "" if t == 0 or t % 7 == 3 else f"{0.1 + 0.8 * x[t - 1]}"
        lines.append(f"{x[t]},{t % 3 - 1},{d}\n")
    return lines


HEADER = "x,c,d\n"


def _readline(fd, buf, timeout=TIMEOUT):
    """Read one line from a raw fd within ``timeout`` seconds (buf keeps what came after it)."""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"no output line within {timeout} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail("the process closed its output")
        buf.extend(chunk)
    i = buf.index(b"\n")
    line = bytes(buf[:i + 1])
    del buf[:i + 1]
    return line.decode()


def _start(extra, **kw):
    return subprocess.Popen(RTRL + ["stream", *ARGS, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, **kw)


def _wait(p):
    if p.stdin and not p.stdin.closed:
        p.stdin.close()
    try:
        p.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the stream process did not exit")
    return p.returncode, p.stderr.read().decode()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One run over the whole file: its final checkpoint and its prediction file."""
    d = tmp_path_factory.mktemp("full")
    data = d / "data.csv"
    data.write_text(HEADER + "".join(_rows(600)))
    out, ck = d / "pred.csv", d / "ck.npz"
    r = subprocess.run(RTRL + ["stream", str(data), *ARGS, "--out", str(out), "--checkpoint", str(ck)],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    return data, load(ck), out.read_bytes()


def _assert_same_end(ck, uninterrupted):
    _, ref, _ = uninterrupted
    got = load(ck)
    for name in ("W", "y", "P"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    assert got.t == ref.t == 600  # one step per row, with or without a target
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 600


def test_pipe_answers_each_row_before_the_next_is_written(tmp_path, uninterrupted):
    """The writer keeps the pipe open; every prediction must arrive before the next row is sent."""
    _, _, ref_out = uninterrupted
    ref_lines = ref_out.decode().splitlines(keepends=True)
    p = _start([])
    try:
        fd, buf = p.stdout.fileno(), bytearray()
        p.stdin.write(HEADER.encode())
        assert _readline(fd, buf) == "row,pred_d\n"
        for i, row in enumerate(_rows(40)):
            p.stdin.write(row.encode())  # pipe stays open: no EOF until the end
            assert _readline(fd, buf) == ref_lines[i + 1]
        p.stdin.close()
        rc, err = _wait(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0 and "40 rows this run" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_checkpoint_and_resume_is_bit_identical(tmp_path, uninterrupted, sig):
    """Stream 250 rows through a pipe, signal the process while it waits for more, resume on the file."""
    data, _, ref_out = uninterrupted
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    p = _start(["--checkpoint", str(ck), "--every", "100", "--out", str(out)])
    try:
        p.stdin.write((HEADER + "".join(_rows(250))).encode())
        deadline = time.monotonic() + TIMEOUT
        while not out.exists() or out.read_bytes().count(b"\n") < 251:  # header + 250 predictions: all rows consumed
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.01)
        p.send_signal(sig)  # blocked reading stdin, pipe still open
        rc, err = _wait(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0 and f"stopped by {sig.name}" in err, err
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 250
    r = subprocess.run(RTRL + ["stream", str(data), *ARGS, "--checkpoint", str(ck), "--every", "100",
                               "--out", str(out), "--resume"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    _assert_same_end(ck, uninterrupted)
    assert out.read_bytes() == ref_out


def test_sigkill_mid_stream_and_resume_is_bit_identical(tmp_path, uninterrupted):
    """SIGKILL gives no chance to save: resume from the last periodic checkpoint; the output file is cut back."""
    data, _, ref_out = uninterrupted
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    p = _start(["--checkpoint", str(ck), "--every", "64", "--out", str(out)])
    try:
        p.stdin.write((HEADER + "".join(_rows(300))).encode())
        deadline = time.monotonic() + TIMEOUT
        while not out.exists() or out.read_bytes().count(b"\n") < 301:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.01)
        p.kill()  # SIGKILL after row 300, between checkpoints (256 was the last)
        p.wait(TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 256
    assert out.read_bytes().count(b"\n") == 301  # rows 257..300 were written but not checkpointed
    r = subprocess.run(RTRL + ["stream", str(data), *ARGS, "--checkpoint", str(ck), "--every", "64",
                               "--out", str(out), "--resume"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    _assert_same_end(ck, uninterrupted)
    assert out.read_bytes() == ref_out


def test_sigkill_at_a_random_moment_on_a_file(tmp_path):
    """A file run killed at an uncontrolled moment (maybe mid-checkpoint) resumes to the same end."""
    T = 40000
    data = tmp_path / "data.csv"
    data.write_text(HEADER + "".join(_rows(T, seed=1)))
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    cmd = RTRL + ["stream", str(data), *ARGS, "--checkpoint", str(ck), "--every", "1000", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while not ck.exists() or not out.exists() or out.stat().st_size < 200_000:
        if p.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    p.kill()
    p.wait(TIMEOUT)
    killed_mid_stream = p.returncode == -signal.SIGKILL
    r = subprocess.run(cmd + ["--resume"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    resumed_pred, resumed = out.read_bytes(), load(ck)
    ck.unlink()
    r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0
    ref = load(ck)
    for name in ("W", "y", "P"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(ref, name), err_msg=name)
    assert resumed_pred == out.read_bytes()
    assert killed_mid_stream  # the test is only meaningful if the kill happened mid-stream


def test_stdin_resume_continues_row_count(tmp_path, uninterrupted):
    """Resuming on stdin treats every row as new: feed rows 301.. after a checkpoint at 300."""
    data, _, ref_out = uninterrupted
    rows = _rows(600)
    ck = tmp_path / "ck.npz"
    first = subprocess.run(RTRL + ["stream", "-", *ARGS, "--checkpoint", str(ck)],
                           input=(HEADER + "".join(rows[:300])).encode(), capture_output=True, timeout=TIMEOUT)
    assert first.returncode == 0
    second = subprocess.run(RTRL + ["stream", "-", *ARGS, "--checkpoint", str(ck), "--resume"],
                            input=(HEADER + "".join(rows[300:])).encode(), capture_output=True, timeout=TIMEOUT)
    assert second.returncode == 0
    assert "stdin rows are all new rows" in second.stderr.decode()
    _assert_same_end(ck, uninterrupted)
    ref_lines = ref_out.decode().splitlines(keepends=True)
    got = first.stdout.decode().splitlines(keepends=True) + second.stdout.decode().splitlines(keepends=True)[1:]
    assert got == ref_lines


def test_reader_closing_the_pipe_stops_cleanly(tmp_path):
    """`rtrl stream ... | head -3`: the closed output ends the run with a checkpoint, exit 0, no traceback."""
    data = tmp_path / "data.csv"  # far more output than a pipe buffer holds, so the writer must wait
    data.write_text(HEADER + "".join(_rows(200_000)))
    ck = tmp_path / "ck.npz"
    p = subprocess.Popen(RTRL + ["stream", str(data), *ARGS, "--checkpoint", str(ck)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0)
    buf = bytearray()
    lines = [_readline(p.stdout.fileno(), buf) for _ in range(3)]
    p.stdout.close()
    try:
        p.wait(TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read().decode()
    assert lines[0] == "row,pred_d\n"
    assert p.returncode == 0 and "stopped by output closed" in err and "Traceback" not in err, err
    rows = load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"]
    assert 2 <= rows < 100_000
