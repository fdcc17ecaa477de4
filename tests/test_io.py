"""Model files: round trips, atomic writes, and clear errors for every kind of bad file."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import rtrl
from rtrl.io import FORMAT_VERSION, ModelFileError, atomic_write, load, load_with_metadata, save


def _trained(rng, n=4, m=2, T=60, **kw):
    """A learner that has run T steps (so W, y, P and t are all non-trivial) and its data."""
    kw.setdefault("learning_rate", 0.3)
    net = rtrl.OnlineLearner(n, m, rng=rng, y0=rng.uniform(0.1, 0.9, n), **kw)
    xs = rng.standard_normal((2 * T, m))
    ds = rng.uniform(0.1, 0.9, (2 * T, n))
    ds[rng.random((2 * T, n)) < 0.5] = np.nan
    net.partial_fit(xs[:T], ds[:T])
    return net, xs[T:], ds[T:]


def _assert_same_learner(a, b):
    for name in ("W", "y", "P"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a._y0, b._y0)
    assert a.t == b.t
    assert a.config() == b.config()


@pytest.mark.parametrize("kw", [dict(), dict(activation="tanh", teacher_forcing=True, clip_norm=0.5),
                                dict(engine="numpy", learning_rate=0.0)])
def test_round_trip_state_and_continuation_bit_identical(tmp_path, rng, kw):
    net, xs, ds = _trained(rng, **kw)
    path = tmp_path / "model.npz"
    net.save(path)
    back = load(path)
    _assert_same_learner(net, back)
    # Continuing after the load gives exactly what continuing without it gives.
    ys_a = net.partial_fit(xs, ds)
    ys_b = np.array([back.step(x, d) for x, d in zip(xs, ds)])
    np.testing.assert_array_equal(ys_a, ys_b)
    _assert_same_learner(net, back)
    # reset_state uses the saved y0
    net.reset_state(), back.reset_state()
    np.testing.assert_array_equal(net.y, back.y)


def test_metadata_records_config_optimizer_version_and_extra(tmp_path, rng):
    net, _, _ = _trained(rng, clip_norm=2.0)
    save(net, tmp_path / "m.npz", extra={"note": "hello", "rows": 60})
    _, meta = load_with_metadata(tmp_path / "m.npz")
    assert meta["rtrl_version"] == rtrl.__version__
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["optimizer"] == {"kind": "sgd", "learning_rate": 0.3, "clip_norm": 2.0, "options": {},
                                 "schedule": {"name": "constant", "options": {}}}
    assert meta["config"] == {"n_units": 4, "n_inputs": 2, "activation": "logistic", "teacher_forcing": False,
                              "engine": "numba", "n_streams": None}
    assert meta["t"] == 60
    assert meta["extra"] == {"note": "hello", "rows": 60}


def test_path_is_written_exactly_as_given_and_with_plain_permissions(tmp_path, rng):
    net, _, _ = _trained(rng)
    path = tmp_path / "model.ckpt"  # no .npz suffix added
    net.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_save_rejects_bad_arguments(tmp_path, rng):
    net, _, _ = _trained(rng)
    with pytest.raises(TypeError, match="learner"):
        save("not a learner", tmp_path / "x.npz")
    with pytest.raises(TypeError, match="extra"):
        net.save(tmp_path / "x.npz", extra={"bad": object()})
    assert not os.listdir(tmp_path)


def test_crash_mid_write_leaves_old_file_and_no_temporary(tmp_path, rng):
    net, xs, ds = _trained(rng)
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()

    def crashing_write(f):
        f.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        atomic_write(path, crashing_write)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]

    # A crash in the middle of np.savez (inside save) behaves the same.
    net.partial_fit(xs[:5], ds[:5])
    real_savez = np.savez

    def savez_dies(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(100)
        raise OSError("disk gone")

    np.savez = savez_dies
    try:
        with pytest.raises(OSError, match="disk gone"):
            net.save(path)
    finally:
        np.savez = real_savez
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.fixture
def model_file(tmp_path, rng):
    net, _, _ = _trained(rng)
    path = tmp_path / "good.npz"
    net.save(path)
    return net, path


def _expect_error(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)  # the message names the file
    assert info.value.path == str(path)
    return info.value


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, 0.9, -1])
def test_truncated_file(tmp_path, model_file, keep):
    _, path = model_file
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    n = keep if isinstance(keep, int) and keep >= 0 else (len(data) - 1 if keep == -1 else int(len(data) * keep))
    cut.write_bytes(data[:n])
    _expect_error(cut, "truncated|corrupted|not a")


def test_flipped_bytes_never_load_a_different_state(tmp_path, model_file, rng):
    net, path = model_file
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.npz"
    raised = 0
    for pos in rng.choice(len(data), size=60, replace=False):
        copy = bytearray(data)
        copy[pos] ^= 0xFF
        bad.write_bytes(bytes(copy))
        try:
            back = load(bad)
        except ModelFileError:
            raised += 1
        else:  # a byte the format does not depend on (a timestamp, ...): the state must be intact
            _assert_same_learner(net, back)
    assert raised > 40


def test_flipped_byte_inside_array_data_is_detected(tmp_path, model_file):
    _, path = model_file
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("state.P.npy")
    # Local header: 30 bytes + name + extra, then the .npy bytes; flip a byte near the end of P's data.
    pos = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 5
    data[pos] ^= 0x01
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    _expect_error(bad, "corrupted")


def _rewrite(path, dest, *, meta=None, arrays=None):
    """Copy a model file with its metadata and/or arrays changed (checksums left as they were)."""
    with np.load(path, allow_pickle=False) as z:
        content = {k: z[k] for k in z.files}
    m = json.loads(str(content["meta"]))
    if meta:
        meta(m)
    content["meta"] = np.array(json.dumps(m))
    if arrays:
        arrays(content)
    np.savez(dest, **content)
    return dest


def test_checksum_catches_changed_array_with_valid_zip(tmp_path, model_file):
    _, path = model_file

    def nudge(c):
        c["W"] = c["W"].copy()
        c["W"][0, 0] = np.nextafter(c["W"][0, 0], 1.0)

    _expect_error(_rewrite(path, tmp_path / "x.npz", arrays=nudge), "'W'.*checksum")


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model\n")
    _expect_error(text, "not a")
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3.0))
    _expect_error(npy, r"single NumPy array")
    npz = tmp_path / "other.npz"
    np.savez(npz, a=np.arange(3.0))
    _expect_error(npz, r"not an rtrl model file \(no 'meta'")
    odd = tmp_path / "odd.npz"
    np.savez(odd, meta=np.array(json.dumps({"format": "something.else"})))
    _expect_error(odd, "not an rtrl model file")
    odd2 = tmp_path / "odd2.npz"
    np.savez(odd2, meta=np.array("{not json"))
    _expect_error(odd2, "not valid JSON")
    _expect_error(tmp_path / "missing.npz", "no such file")
    _expect_error(tmp_path, "folder")


def test_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    pk = tmp_path / "evil.pkl"
    pk.write_bytes(pickle.dumps(Evil()))
    _expect_error(pk, "not a")
    npz = tmp_path / "evil.npz"
    with zipfile.ZipFile(npz, "w") as zf:  # an archive whose 'meta' entry is an object array (a pickle)
        with zf.open("meta.npy", "w") as f:
            np.lib.format.write_array(f, np.array([Evil()], dtype=object), allow_pickle=True)
    _expect_error(npz, "truncated|corrupted|not")
    assert not marker.exists()


def test_incompatible_files(tmp_path, model_file):
    _, path = model_file

    def newer(m):
        m["format_version"] = FORMAT_VERSION + 1

    err = _expect_error(_rewrite(path, tmp_path / "a.npz", meta=newer), "format version")
    assert "upgrade rtrl" in str(err)

    def adam(m):
        m["optimizer"]["kind"] = "adam"

    _expect_error(_rewrite(path, tmp_path / "b.npz", meta=adam), "optimizer 'adam'")

    def wider(m):
        m["config"]["n_inputs"] += 1

    _expect_error(_rewrite(path, tmp_path / "c.npz", meta=wider), "expected float64 of shape")

    def no_p(c):
        del c["state.P"]

    _expect_error(_rewrite(path, tmp_path / "d.npz", arrays=no_p), "'state.P' of rule 'rtrl' is missing")

    def as_float32(c):
        from rtrl.io import _digest

        c["state.y"] = c["state.y"].astype(np.float32)
        m = json.loads(str(c["meta"]))
        m["sha256"]["state.y"] = _digest(c["state.y"])  # a valid checksum: only the dtype check can catch it
        c["meta"] = np.array(json.dumps(m))

    _expect_error(_rewrite(path, tmp_path / "e.npz", arrays=as_float32), "'state.y': expected float64")

    def unknown_rule(m):
        m["rule"] = {"name": "no-such-rule", "options": {}}

    _expect_error(_rewrite(path, tmp_path / "h.npz", meta=unknown_rule), "cannot build.*no-such-rule")

    def stray_entry(c):
        c["state.Q"] = np.zeros(3)

    _expect_error(_rewrite(path, tmp_path / "i.npz", arrays=stray_entry), "state.Q")

    def no_config(m):
        del m["config"]

    _expect_error(_rewrite(path, tmp_path / "f.npz", meta=no_config), "lacks 'config'")

    def bad_activation(m):
        m["config"]["activation"] = "relu"

    _expect_error(_rewrite(path, tmp_path / "g.npz", meta=bad_activation), "activation")


def test_diverged_state_in_file_is_rejected(tmp_path, model_file):
    _, path = model_file

    def nan_p(c):
        c["state.P"] = c["state.P"].copy()
        c["state.P"][0, 0, 0] = np.nan

    dest = _rewrite(path, tmp_path / "n.npz", arrays=nan_p)
    # give it a valid checksum so only the finiteness check can catch it
    from rtrl.io import _digest

    with np.load(dest) as z:
        content = {k: z[k] for k in z.files}
    m = json.loads(str(content["meta"]))
    m["sha256"]["state.P"] = _digest(content["state.P"])
    content["meta"] = np.array(json.dumps(m))
    np.savez(dest, **content)
    _expect_error(dest, "'state.P' contains NaN")


def test_from_state_validates(rng):
    net, _, _ = _trained(rng)
    s = net.state
    with pytest.raises(TypeError, match="RTRLState"):
        rtrl.OnlineLearner.from_state((s.W, s.y, s.P, s.t), learning_rate=0.1)
    with pytest.raises(ValueError, match="P"):
        rtrl.OnlineLearner.from_state(rtrl.RTRLState(s.W, s.y, s.P[:, :, :-1], s.t), learning_rate=0.1)
    with pytest.raises(ValueError, match="state.t"):
        rtrl.OnlineLearner.from_state(rtrl.RTRLState(s.W, s.y, s.P, -1), learning_rate=0.1)
    with pytest.raises(ValueError, match="NaN"):
        rtrl.OnlineLearner.from_state(rtrl.RTRLState(s.W, s.y * np.nan, s.P, 3), learning_rate=0.1)
    back = rtrl.OnlineLearner.from_state(s, learning_rate=0.3)
    np.testing.assert_array_equal(back.P, s.P)
    assert back.t == s.t


def test_docstring_examples():
    import doctest

    import rtrl.io

    result = doctest.testmod(rtrl.io, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
