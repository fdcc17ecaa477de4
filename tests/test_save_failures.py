"""Saves that fail (issue 10): a full disk or a read-only folder keeps the previous checkpoint byte for
byte and says which path and why, through the API (`learner.save`, `rtrl.io.save`) and through
`rtrl stream`; two streams on one checkpoint: the second is refused and touches nothing.

What tests/test_hardening_stream.py already pins is not repeated here (the in-process Stream on a
full disk, RLIMIT_FSIZE on the command line, a simulated read-only folder at start, the lock refusal
in one process and the exit code 2 of a second process). The real full disk and read-only folder
below use a small tmpfs mounted in a private mount namespace (`unshare -rm`, no root needed where
user namespaces are allowed; skipped otherwise); the chmod variant runs where the user is not root.
Every subprocess has a bounded timeout.
"""

import contextlib
import errno
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import rtrl
import rtrl.io
from rtrl.cli import main
from rtrl.io import load, load_with_metadata
from rtrl.stream import CheckpointBusyError, Stream

RTRL = [sys.executable, "-m", "rtrl"]
TIMEOUT = 60
ARGS = ["--inputs", "x", "--targets", "d", "--units", "4", "--lr", "0.5", "--seed", "3"]


def _rows(T, seed=0):
    rng = np.random.default_rng(seed)
    return "x,d\n" + "".join(f"{rng.uniform(-1, 1)!r},{rng.uniform(0.1, 0.9)!r}\n" for _ in range(T))


def _cli(*args):
    """`rtrl stream ARGS` in this process: (exit code, stderr). An exception escaping main() fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["stream", *map(str, args)])
    text = err.getvalue()
    assert "Traceback" not in text, text
    return code, text


def _same(a, b):
    for name in ("W", "y", "P"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.t == b.t


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


class _FullAfter:
    """A file object that takes ``room`` bytes, then fails as a full disk does (the part that fits is written)."""

    def __init__(self, f, room):
        self._f, self._room = f, room

    def write(self, data):
        data = bytes(data)
        if len(data) > self._room:
            self._f.write(data[:self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


def _full_disk(monkeypatch, room):
    real = np.savez
    monkeypatch.setattr(rtrl.io.np, "savez", lambda f, **arrays: real(_FullAfter(f, room), **arrays))


# -- the API ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("room", [0, 1000])  # nothing fits / a partial archive was written
@pytest.mark.parametrize("how", ["learner.save", "rtrl.io.save"])
def test_a_full_disk_through_the_api_keeps_the_previous_file(tmp_path, monkeypatch, how, room):
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, rng=1)
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()
    net.partial_fit(np.ones((4, 2)), np.full((4, 3), 0.5))
    _full_disk(monkeypatch, room)
    with pytest.raises(OSError) as info:
        net.save(path) if how == "learner.save" else rtrl.io.save(net, path)
    assert info.value.errno == errno.ENOSPC and "No space left on device" in str(info.value)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    monkeypatch.undo()
    net.save(path)  # the disk has room again: the save goes through
    _same(load(path), net)


def test_the_api_error_of_a_failed_save_names_the_path(tmp_path, monkeypatch):
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, rng=1)
    path = tmp_path / "m.npz"
    _full_disk(monkeypatch, 1000)
    with pytest.raises(OSError) as info:
        net.save(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores permission bits (the read-only mount test covers root)")
def test_a_read_only_folder_by_chmod_keeps_the_previous_file(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, rng=1)
    path = folder / "m.npz"
    net.save(path)
    before = path.read_bytes()
    net.partial_fit(np.ones((4, 2)), np.full((4, 3), 0.5))
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            net.save(path)
        assert str(folder) in str(info.value)  # the temporary file it could not create, in that folder
        assert path.read_bytes() == before and _leftovers(folder) == []
        # the command line refuses before the first row, naming the flag, the path and the reason
        data = tmp_path / "data.csv"
        data.write_text(_rows(20))
        code, err = _cli(data, *ARGS[:4], "--checkpoint", path, "--out", tmp_path / "p.csv")
        assert code == 4 and err.count("\n") == 1, err
        assert f"cannot write --checkpoint {path}: Permission denied (EACCES)" in err
        assert path.read_bytes() == before and not (tmp_path / "p.csv").exists()
    finally:
        folder.chmod(0o755)


# -- rtrl stream, a full disk on the Nth checkpoint, then a resume -----------------------------------------------------
@pytest.mark.parametrize("fail_at", [2, 5])
def test_a_full_disk_mid_stream_keeps_the_last_checkpoint_and_the_resume_ends_right(tmp_path, monkeypatch, fail_at):
    data = tmp_path / "data.csv"
    data.write_text(_rows(300))
    ref_ck, ref_out = tmp_path / "ref.npz", tmp_path / "ref.csv"
    assert _cli(data, *ARGS, "--checkpoint", ref_ck, "--out", ref_out)[0] == 0

    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    real = np.savez
    calls, seen = [], {}

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == fail_at:
            seen["before"] = ck.read_bytes()  # the checkpoint on disk when the save fails
            return real(_FullAfter(f, 3000), **arrays)
        return real(f, **arrays)

    monkeypatch.setattr(rtrl.io.np, "savez", savez)
    code, err = _cli(data, *ARGS, "--checkpoint", ck, "--every", "40", "--out", out)
    monkeypatch.undo()
    assert code == 4 and err.count("\n") == 1, err
    assert err == (f"rtrl stream: error: cannot write --checkpoint {ck}: No space left on device (ENOSPC); the last "
                   "checkpoint saved before (if any) is left as it was\n")
    assert ck.read_bytes() == seen["before"] and _leftovers(tmp_path) == []
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 40 * (fail_at - 1)
    # the disk has room again: --resume continues from that checkpoint to the uninterrupted run's end
    code, err = _cli(data, *ARGS, "--checkpoint", ck, "--every", "40", "--out", out, "--resume")
    assert code == 0, err
    _same(load(ck), load(ref_ck))
    assert out.read_bytes() == ref_out.read_bytes()


# -- a real full disk and a real read-only folder: a small tmpfs in a private mount namespace -----------------
@functools.lru_cache(maxsize=None)
def _namespaces():
    """None if `unshare -rm` can mount a tmpfs here, else the reason it cannot."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "needs Linux and unshare(1)"
    try:
        with tempfile.TemporaryDirectory() as probe:  # the mount is private to the namespace and gone with it
            r = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1"', "sh", probe],
                               capture_output=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {r.stderr.decode().strip()}"


def _in_tmpfs(tmp_path, size, script):
    """Run the Python ``script`` (with MNT, a fresh tmpfs of ``size``, and PY) in a private mount namespace;
    return the JSON object it prints last."""
    reason = _namespaces()
    if reason:
        pytest.skip(reason)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    path = tmp_path / "script.py"
    path.write_text("import json, os, subprocess, sys\nMNT, PY = sys.argv[1], sys.executable\n"
                    + textwrap.dedent(script))
    r = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" "$4" "$2"',
                        "sh", size, str(mnt), sys.executable, str(path)],
                       capture_output=True, timeout=4 * TIMEOUT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_a_real_full_disk_through_the_api(tmp_path):
    """A 30-unit model (~240 KB) in a 300 KB tmpfs: the first save fits, the next cannot (old + new)."""
    res = _in_tmpfs(tmp_path, "300k", """
        import numpy as np, rtrl, rtrl.io
        net = rtrl.OnlineLearner(30, 1, learning_rate=0.1, rng=0)
        path = os.path.join(MNT, "m.npz")
        net.save(path)
        before = open(path, "rb").read()
        net.partial_fit(np.zeros((3, 1)), np.full((3, 30), 0.5))
        res = {}
        for how in ("learner.save", "rtrl.io.save"):
            try:
                net.save(path) if how == "learner.save" else rtrl.io.save(net, path)
                res[how] = "saved"
            except OSError as exc:
                res[how] = [exc.errno, str(exc)]
            res[how + " same"] = open(path, "rb").read() == before
            res[how + " files"] = sorted(os.listdir(MNT))
        print(json.dumps(res))
    """)
    for how in ("learner.save", "rtrl.io.save"):
        assert res[how][0] == errno.ENOSPC and "No space left on device" in res[how][1], res
        assert res[how + " same"] and res[how + " files"] == ["m.npz"], res


def test_a_real_full_disk_through_rtrl_stream(tmp_path):
    (tmp_path / "first.csv").write_text(_rows(50))
    (tmp_path / "all.csv").write_text(_rows(300))
    res = _in_tmpfs(tmp_path, "300k", """
        ck = os.path.join(MNT, "ck.npz")
        args = ["--inputs", "x", "--targets", "d", "--units", "30", "--checkpoint", ck]
        first = subprocess.run([PY, "-m", "rtrl", "stream", "first.csv", *args, "--out", "p1.csv"],
                               capture_output=True, timeout=60)
        before = open(ck, "rb").read()
        second = subprocess.run([PY, "-m", "rtrl", "stream", "all.csv", *args, "--every", "50", "--resume",
                                 "--out", "p2.csv"], capture_output=True, timeout=60)
        print(json.dumps({"first": first.returncode, "code": second.returncode, "err": second.stderr.decode(),
                          "same": open(ck, "rb").read() == before, "files": sorted(os.listdir(MNT))}))
    """)
    ck = tmp_path / "mnt" / "ck.npz"
    assert res["first"] == 0 and res["code"] == 4, res
    err = res["err"].splitlines()
    assert err[-1] == (f"rtrl stream: error: cannot write --checkpoint {ck}: No space left on device (ENOSPC); "
                       "the last checkpoint saved before (if any) is left as it was"), res
    assert "Traceback" not in res["err"]
    assert res["same"] and res["files"] == [".ck.npz.lock", "ck.npz"], res
    # the predictions of the rows after that checkpoint are there, and no more than were read
    assert (tmp_path / "p2.csv").read_text().count("\n") == 1 + 50  # header + rows 51..100


def test_a_real_read_only_folder_through_the_api_and_rtrl_stream(tmp_path):
    (tmp_path / "data.csv").write_text(_rows(50))
    res = _in_tmpfs(tmp_path, "1m", """
        import rtrl
        ck = os.path.join(MNT, "ck.npz")
        args = ["--inputs", "x", "--targets", "d", "--checkpoint", ck]
        first = subprocess.run([PY, "-m", "rtrl", "stream", "data.csv", *args, "--out", "p1.csv"],
                               capture_output=True, timeout=60)
        before = open(ck, "rb").read()
        subprocess.run(["mount", "-o", "remount,ro", MNT], check=True, timeout=60)
        res = {"first": first.returncode}
        net = rtrl.load(ck)
        try:
            net.save(ck)
            res["api"] = "saved"
        except OSError as exc:
            res["api"] = [exc.errno, str(exc)]
        again = subprocess.run([PY, "-m", "rtrl", "stream", "data.csv", *args, "--resume", "--out", "p2.csv"],
                               capture_output=True, timeout=60)
        res.update(code=again.returncode, err=again.stderr.decode(), same=open(ck, "rb").read() == before,
                   files=sorted(os.listdir(MNT)), out=os.path.exists("p2.csv"))
        print(json.dumps(res))
    """)
    ck = tmp_path / "mnt" / "ck.npz"
    assert res["first"] == 0, res
    assert res["api"][0] == errno.EROFS and str(tmp_path / "mnt") in res["api"][1], res
    assert res["code"] == 4 and res["err"].count("\n") == 1, res
    assert res["err"] == (f"rtrl stream: error: cannot write --checkpoint {ck}: Read-only file system (EROFS); "
                          "refused before the first row (nothing was read): choose a writable checkpoint path\n"), res
    assert res["same"] and res["files"] == [".ck.npz.lock", "ck.npz"] and not res["out"], res


# -- two processes on one checkpoint --------------------------------------------------------------------------------
def _holder(tmp_path, ck, out, rows=b""):
    """A stream on stdin holding the lock of ``ck`` (it has answered its first row when this returns)."""
    p = subprocess.Popen(RTRL + ["stream", "-", *ARGS, "--checkpoint", str(ck), "--every", "1", "--out", str(out)],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    p.stdin.write(b"x,d\n0.1,0.2\n" + rows)
    p.stdin.flush()
    deadline = time.monotonic() + TIMEOUT
    while not (ck.exists() and out.exists() and out.read_bytes().count(b"\n") >= 2):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"the first stream did not start: {p.stderr.read().decode()}")
        time.sleep(0.01)
    return p


def test_the_refused_second_stream_touches_neither_the_checkpoint_nor_the_output(tmp_path):
    """The same --checkpoint and the same --out: the second run is refused before it opens (and truncates)
    the output the first one is writing."""
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    data = tmp_path / "data.csv"
    data.write_text(_rows(30))
    p = _holder(tmp_path, ck, out)
    try:
        ck_before, out_before = ck.read_bytes(), out.read_bytes()
        for extra in ([], ["--resume"]):
            code, err = _cli(data, *ARGS, "--checkpoint", ck, "--out", out, *extra)
            assert code == 2 and err.count("\n") == 1, err
            assert f"the checkpoint {ck} is in use by another running rtrl stream (pid {p.pid})" in err
            assert ck.read_bytes() == ck_before and out.read_bytes() == out_before
        p.stdin.write(b"0.3,0.4\n")  # the first run goes on undisturbed
        p.stdin.close()
        assert p.wait(TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 2
    assert out.read_text().splitlines()[0] == "row,pred_d" and out.read_text().count("\n") == 3


def test_a_sigkilled_holder_frees_the_checkpoint(tmp_path):
    """A lock is never stale: the kernel drops it with its process, so a resume after a crash is not refused."""
    ck, out = tmp_path / "ck.npz", tmp_path / "pred.csv"
    p = _holder(tmp_path, ck, out)
    p.kill()
    p.wait(TIMEOUT)
    assert (tmp_path / ".ck.npz.lock").exists()  # the lock file stays, its lock does not
    r = subprocess.run(RTRL + ["stream", "-", *ARGS, "--checkpoint", str(ck), "--resume"], input=b"x,d\n0.5,0.5\n",
                       capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert load_with_metadata(ck)[1]["extra"]["stream"]["rows_read"] == 2


def test_the_lock_holds_for_every_spelling_of_the_path(tmp_path, monkeypatch):
    """Relative, absolute, with ./ and .. and through a symlinked folder: one checkpoint, one lock."""
    folder = tmp_path / "a"
    folder.mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    monkeypatch.chdir(folder)
    net = rtrl.OnlineLearner(2, 1, learning_rate=0.5, rng=0)
    first = Stream(net, ("x",), ("d",), checkpoint="ck.npz")
    first.prepare()
    try:
        for other in (folder / "ck.npz", "./ck.npz", "../b/../a/ck.npz", tmp_path / "link" / "ck.npz"):
            with pytest.raises(CheckpointBusyError, match="is in use by another running rtrl stream"):
                Stream(net, ("x",), ("d",), checkpoint=other).prepare()
    finally:
        first.close()
    again = Stream(net, ("x",), ("d",), checkpoint=tmp_path / "link" / "ck.npz")
    again.prepare()  # free again
    again.close()
