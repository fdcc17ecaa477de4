"""Model files at their edges (issue 13): every bad file is a ModelFileError, nothing blocks, and
save() never writes what load() refuses."""

import os
import struct
import threading
import zipfile

import numpy as np
import pytest

import rtrl
from rtrl.io import ModelFileError, load, save


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(0)
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, rng=1)
    net.partial_fit(rng.standard_normal((20, 2)), rng.uniform(0.1, 0.9, (20, 3)))
    path = tmp_path / "m.npz"
    net.save(path)
    return net, path


def _same(a, b):
    for name in ("W", "y", "P"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.t == b.t and a.config() == b.config()


def _central_directory(data):
    eocd = data.rfind(b"PK\x05\x06")
    size, offset = struct.unpack("<II", data[eocd + 12:eocd + 20])
    return offset, size


def _entries(data):
    """Offsets of the central directory's file headers."""
    offset, size = _central_directory(data)
    out, pos = [], offset
    while pos < offset + size:
        assert data[pos:pos + 4] == b"PK\x01\x02"
        n_name, n_extra, n_comment = struct.unpack("<HHH", data[pos + 28:pos + 34])
        out.append(pos)
        pos += 46 + n_name + n_extra + n_comment
    return out


@pytest.mark.parametrize("field, offset, value", [
    ("compression method", 10, 99),  # zipfile: NotImplementedError "compression type 99"
    ("general purpose flags: encrypted", 8, 1),  # zipfile: RuntimeError "... is encrypted"
    ("version needed to extract", 6, 255),  # zipfile: NotImplementedError "zip file version 25.5"
    ("compression method: deflate on stored data", 10, 8),  # zlib.error
    ("compression method: bzip2 on stored data", 10, 12),  # OSError / EOFError from bz2
    ("compression method: lzma on stored data", 10, 14),  # lzma.LZMAError
])
def test_zip_header_faults_are_model_file_errors(tmp_path, model, field, offset, value):
    _, path = model
    data = bytearray(path.read_bytes())
    for entry in _entries(data):
        bad = bytearray(data)
        struct.pack_into("<H", bad, entry + offset, value)
        # the same field in the entry's local header, where zipfile reads it too
        local = struct.unpack("<I", bad[entry + 42:entry + 46])[0]
        struct.pack_into("<H", bad, local + offset - 2, value)
        dest = tmp_path / "bad.npz"
        dest.write_bytes(bytes(bad))
        with pytest.raises(ModelFileError) as info:
            load(dest)
        assert str(dest) in str(info.value), field


def test_every_bit_flip_of_the_central_directory_fails_cleanly_or_loads_the_same(tmp_path, model):
    """A sample of the issue's 42 816 flips: the part where zipfile raised NotImplementedError/RuntimeError."""
    net, path = model
    data = path.read_bytes()
    offset, size = _central_directory(data)
    rng = np.random.default_rng(3)
    dest = tmp_path / "flip.npz"
    outcomes = {"error": 0, "same": 0}
    for pos in rng.choice(np.arange(offset, len(data)), size=250, replace=False):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        dest.write_bytes(bytes(bad))
        try:
            back = load(dest)
        except ModelFileError:
            outcomes["error"] += 1
        else:
            _same(net, back)
            outcomes["same"] += 1
    assert outcomes["error"] > 50


def _load_in_thread(path, timeout=10.0):
    box = {}

    def target():
        try:
            box["result"] = load(path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"load({path}) hangs"
    return box


def test_fifo_device_and_links_to_them_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.npz"
    os.mkfifo(fifo)
    link = tmp_path / "link.npz"
    link.symlink_to(fifo)
    for path in (fifo, link, "/dev/null", "/dev/zero"):
        box = _load_in_thread(path)
        assert isinstance(box.get("error"), ModelFileError), box
        assert "not a regular file" in str(box["error"]) and str(path) in str(box["error"])


def test_unreadable_and_odd_paths(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "nope" / "m.npz")
    with pytest.raises(ModelFileError, match="is a folder"):
        load(tmp_path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a readable rtrl model file"):
        load(empty)


def test_hostile_metadata_is_a_model_file_error(tmp_path, model):
    """Metadata of absurd types or sizes never escapes as another exception."""
    import json

    _, path = model
    with np.load(path) as z:
        content = {k: z[k] for k in z.files}
    meta = json.loads(str(content["meta"]))
    cases = [
        lambda m: m.update(config=[1, 2]),
        lambda m: m.update(optimizer={"kind": ["sgd"]}),
        lambda m: m["optimizer"].update(learning_rate="fast"),
        lambda m: m["optimizer"].update(learning_rate=-0.5),  # what save() used to write after `lr = -0.5`
        lambda m: m["optimizer"].update(clip_norm=0),
        lambda m: m.update(rule={"name": "rtrl", "options": {"kernel": 10**400}}),
        lambda m: m.update(rule={"name": "hybrid", "options": {"block": 10**15}}),
        lambda m: m.update(rule={"name": "bptt", "options": {"truncation": 10**400}}),  # a state of 1e400 numbers
        lambda m: m.update(rule=["rtrl"]),
        lambda m: m["config"].update(engine="cuda"),
        lambda m: m["config"].update(n_streams=True),
        lambda m: m.update(t=2**70) or None,
        lambda m: m.update(format_version=True),
        lambda m: m.update(sha256=[]),
    ]
    for i, change in enumerate(cases):
        m = json.loads(json.dumps(meta))
        change(m)
        c = dict(content)
        c["meta"] = np.array(json.dumps(m))
        dest = tmp_path / f"h{i}.npz"
        np.savez(dest, **c)
        try:
            load(dest)
        except ModelFileError as exc:
            assert str(dest) in str(exc)
        else:
            assert i == 11, f"case {i} loaded"  # a huge t is a valid (if odd) step count


def test_deep_json_nesting_is_a_model_file_error(tmp_path, model):
    _, path = model
    with np.load(path) as z:
        content = {k: z[k] for k in z.files}
    content["meta"] = np.array("[" * 100_000 + "]" * 100_000)
    dest = tmp_path / "deep.npz"
    np.savez(dest, **content)
    with pytest.raises(ModelFileError):
        load(dest)


# -- save() never writes what load() refuses ---------------------------------------------------------------
@pytest.mark.parametrize("setting, value, exc", [
    ("learning_rate", float("nan"), ValueError), ("learning_rate", -0.5, ValueError),
    ("learning_rate", None, TypeError), ("learning_rate", float("inf"), ValueError),
    ("learning_rate", "0.1", TypeError), ("learning_rate", 1j, TypeError),
    ("clip_norm", -0.5, ValueError), ("clip_norm", 0, ValueError), ("clip_norm", float("nan"), ValueError),
    ("clip_norm", float("inf"), ValueError), ("clip_norm", "1", TypeError),
    ("activation", "relu", ValueError), ("activation", None, TypeError),
    ("teacher_forcing", "yes", TypeError), ("teacher_forcing", 2, TypeError), ("teacher_forcing", None, TypeError),
    ("engine", "cuda", ValueError), ("engine", None, TypeError),
    ("rule", "uoro", AttributeError),
])
def test_settings_are_validated_on_assignment_and_nothing_changes(tmp_path, model, setting, value, exc):
    net, _ = model
    before = getattr(net, setting)
    with pytest.raises(exc, match=setting):
        setattr(net, setting, value)
    assert getattr(net, setting) == before
    net.save(tmp_path / "again.npz")
    _same(net, load(tmp_path / "again.npz"))


def test_valid_changes_after_construction_round_trip(tmp_path, model):
    net, _ = model
    net.learning_rate, net.clip_norm, net.activation, net.teacher_forcing, net.engine = 0.0, 2.5, "tanh", True, "numpy"
    net.save(tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    _same(net, back)
    net.clip_norm = None
    assert net.config()["clip_norm"] is None


def test_save_refuses_a_diverged_or_foreign_state(tmp_path, model):
    net, _ = model
    good = net.state
    dest = tmp_path / "x.npz"
    cases = [
        (good._replace(W=good.W * np.nan), "W contains NaN or inf"),
        (good._replace(rule_state=good.rule_state._replace(P=good.rule_state.P * np.inf)), "state.P contains NaN"),
        (good._replace(rule_state=good.rule_state._replace(P=good.rule_state.P[:, :, :-1])), "'P' is float64 of shape"),
        (good._replace(rule_state=(good.y,)), "rule state has fields"),
        (good._replace(t=-1), "step count t"),
        (good._replace(W=good.W.astype(np.float32)), "W is float32"),
    ]
    for state, match in cases:
        net.state = state
        with pytest.raises(ValueError, match=f"learner: cannot be saved, a model file of it would not load: .*{match}"):
            net.save(dest)
        assert not dest.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    net.state = good
    net.save(dest)
    _same(net, load(dest))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name a descriptor")
def test_save_writes_the_temporary_file_durably_before_renaming_it(tmp_path, model, monkeypatch):
    """The order that makes a save atomic across a power loss: write, fsync(file), rename, fsync(folder)."""
    import rtrl.io

    net, _ = model
    calls = []
    real_fsync, real_replace, real_savez = os.fsync, os.replace, np.savez

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(("fsync", "folder" if os.path.isdir(target) else os.path.basename(target)))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.basename(src), os.path.basename(dst)))
        return real_replace(src, dst)

    def savez(f, **arrays):
        calls.append(("write", os.path.basename(os.readlink(f"/proc/self/fd/{f.fileno()}"))))
        return real_savez(f, **arrays)

    monkeypatch.setattr(rtrl.io.os, "fsync", fsync)
    monkeypatch.setattr(rtrl.io.os, "replace", replace)
    monkeypatch.setattr(rtrl.io.np, "savez", savez)
    save(net, tmp_path / "ordered.npz")
    tmp = calls[0][1]
    assert tmp.startswith(".ordered.npz.") and tmp.endswith(".tmp")
    assert calls == [("write", tmp), ("fsync", tmp), ("replace", tmp, "ordered.npz"), ("fsync", "folder")]


def test_zip_entries_of_a_saved_file_are_stored_plain(model):
    """Nothing in a model file needs a zip feature the loader would have to trust (no compression, no flags)."""
    _, path = model
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1
