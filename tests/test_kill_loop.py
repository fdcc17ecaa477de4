"""A kill loop (issue 10): `rtrl stream --checkpoint C --every N --out O` on a file of a few thousand rows,
SIGKILLed at >= 20 random moments (at start-up, while it cuts the output back, between rows and inside
checkpoint writes) and resumed each time, must end exactly where an uninterrupted run ends: the same
final model (W, y, P, t bit for bit) and the same prediction file (one line per input row, none
duplicated or missing). After every kill the checkpoint on disk must load and agree with the
predictions written before it.

Every wait is bounded, so a hang fails the test instead of blocking the suite.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rtrl.io import load, load_with_metadata

RTRL = [sys.executable, "-m", "rtrl"]
ARGS = ["--inputs", "x,c", "--targets", "d", "--units", "3", "--lr", "0.7", "--seed", "5"]
T = 5000  # rows
EVERY = 3  # a checkpoint every 3 rows: kills often land inside a write
KILLS = 24
TIMEOUT = 60.0  # for any one process
BUDGET = 120.0  # for the whole loop


def _data(path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, T)
    lines = ["x,c,d"]
    for t in range(T):
        d = "" if t == 0 or t % 7 == 3 else f"{0.1 + 0.8 * x[t - 1]}"
        lines.append(f"{x[t]},{t % 3 - 1},{d}")
    path.write_text("\n".join(lines) + "\n")


def _cmd(data, ck, out):
    return RTRL + ["stream", str(data), *ARGS, "--checkpoint", str(ck), "--every", str(EVERY), "--out", str(out)]


def _checkpoint(ck):
    """(rows_read, out_bytes) of the checkpoint on disk, (0, 0) if none yet; it must load whatever the kill hit."""
    if not ck.exists():
        return 0, 0
    learner, meta = load_with_metadata(ck)  # a ModelFileError here is a damaged checkpoint: the test fails
    info = meta["extra"]["stream"]
    assert learner.t == info["rows_read"]
    return info["rows_read"], info["out_bytes"]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_bit_identical(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    note = f"(random seed {seed})"
    data = tmp_path / "data.csv"
    _data(data)

    # the reference: one uninterrupted run
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    r = subprocess.run(_cmd(data, ref_dir / "ck.npz", ref_dir / "pred.csv"), capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    ref, ref_out = load(ref_dir / "ck.npz"), (ref_dir / "pred.csv").read_bytes()
    assert ref.t == T and ref_out.count(b"\n") == T + 1

    work = tmp_path / "run"
    work.mkdir()
    ck, out = work / "ck.npz", work / "pred.csv"
    cmd = _cmd(data, ck, out) + ["--resume"]
    kills, in_write, completed = [], 0, None
    start = time.monotonic()
    last_rows = 0
    while len(kills) < KILLS:
        assert time.monotonic() - start < BUDGET, f"the kill loop took over {BUDGET} s {note}"
        size_before = out.stat().st_size if out.exists() else 0
        _, out_bytes = _checkpoint(ck)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        mode = rnd.choice(["delay", "in-write", "in-write", "progress", "progress"])
        deadline = time.monotonic() + TIMEOUT
        tmp_name = re.compile(rf"\.ck\.npz\.{p.pid}\.[a-z0-9_]{{8}}\.tmp")
        if mode == "delay":  # anywhere: start-up, taking the lock, cutting the output back, the first rows
            time.sleep(rnd.uniform(0.0, 0.9))
        elif mode == "in-write":  # as soon as this process's temporary checkpoint file appears
            skip = rnd.randrange(0, 8)  # (let a few saves go through first)
            seen = set()
            while p.poll() is None and time.monotonic() < deadline:
                names = {n for n in os.listdir(work) if tmp_name.fullmatch(n)}
                if names - seen:
                    if skip == 0:
                        break
                    skip -= 1
                    seen |= names
                time.sleep(0.0002)
        else:  # after some new rows (each prediction line is ~20 bytes)
            target = max(size_before, out_bytes) + 20 * rnd.randrange(1, 150)
            while p.poll() is None and time.monotonic() < deadline and (
                    not out.exists() or out.stat().st_size < target):
                time.sleep(0.001)
        writing = any(tmp_name.fullmatch(n) for n in os.listdir(work))
        p.send_signal(signal.SIGKILL)
        try:
            p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always ends
            pytest.fail(f"a SIGKILLed stream did not end {note}")
        err = p.stderr.read().decode()
        if p.returncode != -signal.SIGKILL:  # it ended before the kill: it must have ended well
            assert p.returncode == 0 and "Traceback" not in err, err
            completed = len(kills)
            break
        in_write += writing
        rows, out_bytes = _checkpoint(ck)
        assert rows >= last_rows, f"the checkpoint went back from row {last_rows} to {rows} {note}"
        last_rows = rows
        got = out.read_bytes() if out.exists() else b""
        # the predictions the checkpoint counts are on disk and are the uninterrupted run's
        assert len(got) >= out_bytes and got[:out_bytes] == ref_out[:out_bytes], note
        kills.append((mode, rows, writing))

    print(f"kills (mode, checkpointed rows, a temporary file existed): {kills} {note}")
    assert completed is None, f"the stream ended after {completed} kills, before {KILLS}: give it more rows {note}"
    # the last run goes to the end
    r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    err = r.stderr.decode()
    assert r.returncode == 0 and "Traceback" not in err, err

    got = load(ck)
    for name in ("W", "y", "P"):
        assert getattr(got, name).tobytes() == getattr(ref, name).tobytes(), f"{name} differs {note}"
    assert got.t == ref.t == T and _checkpoint(ck)[0] == T
    text = out.read_bytes()
    rows = [int(line.split(b",")[0]) for line in text.splitlines()[1:]]
    assert rows == list(range(1, T + 1)), f"rows missing or duplicated {note}"
    assert text == ref_out, note
    # the kills were spread out: inside checkpoint writes and between them, at many rows
    assert in_write >= 3, (kills, note)
    assert len({r for _, r, _ in kills}) >= 10, (kills, note)
    # no temporary file of a killed save is left (the resumed runs removed the stale ones)
    assert sorted(os.listdir(work)) == [".ck.npz.lock", "ck.npz", "pred.csv"]
