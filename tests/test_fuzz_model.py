"""Fuzzing model files (issue 10: tests that must be able to fail), beyond the hand-made cases of
tests/test_hardening_io.py.

Hypothesis damages saved models of several rules and shapes: truncations, bit flips anywhere (zip
headers, .npy headers, array data, the metadata), random bytes and files of other formats, mutated
JSON metadata, arrays swapped for ones of a wrong shape or dtype, and saves that fail at a random
point. The properties:

- ``load`` returns a learner identical to the saved one (every array bit for bit, t and settings),
  or raises :class:`ModelFileError` (a ValueError) whose message names the file; never another
  exception type;
- a learner that loads from a file with edited (but well-formed) metadata is usable: it saves and
  reloads identically and steps (or reports divergence as the documented ValueError);
- a save that fails (disk full or I/O error at any byte, a failed fsync or rename, an interrupt, a
  state that may not be saved) leaves the file it would have replaced byte for byte as it was, and
  no temporary file behind.
"""

import contextlib
import errno
import functools
import gzip
import io
import json
import os
import pickle
import struct
import tempfile
import zipfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

import rtrl
import rtrl.io
from rtrl.io import ModelFileError, load, load_with_metadata, save

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])

MODELS = {
    "rtrl": dict(),
    "uoro": dict(rule="uoro"),  # integer state fields (a random key and a counter)
    "snap": dict(rule="snap-1", weight_mask="random"),  # a sparse mask stored as its own entry
    "batched": dict(n_streams=2),
    "bptt-tanh": dict(rule="bptt:3", activation="tanh", clip_norm=1.0),
}


@functools.lru_cache(maxsize=None)
def model(name):
    """A trained learner of kind ``name`` and the bytes of its model file (with some ``extra`` data)."""
    kw = dict(MODELS[name])
    rng = np.random.default_rng(len(name))
    if kw.get("weight_mask") == "random":
        mask = rng.random((3, 6)) < 0.7
        mask[:, 3] = True  # every unit keeps a bias
        kw["weight_mask"] = mask
    net = rtrl.OnlineLearner(3, 2, learning_rate=0.3, rng=1, **kw)
    B = kw.get("n_streams")
    lead = (B,) if B else ()
    lo, hi = (-0.8, 0.8) if kw.get("activation") == "tanh" else (0.1, 0.9)
    net.partial_fit(rng.standard_normal(lead + (12, 2)), rng.uniform(lo, hi, lead + (12, 3)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        save(net, path, extra={"note": "fuzz", "rows": [1, 2, 3]})
        with open(path, "rb") as f:
            return net, f.read()


model_names = st.sampled_from(sorted(MODELS))


def _bits(a):
    a = np.asarray(a)
    return a.dtype.str, a.shape, a.tobytes()


def identical(a, b):
    """Every array bit for bit, the step count and the settings."""
    return (a.t == b.t and a.config() == b.config() and _bits(a.W) == _bits(b.W) and _bits(a._y0) == _bits(b._y0)
            and [_bits(x) for x in a.state.rule_state] == [_bits(x) for x in b.state.rule_state]
            and (a.weight_mask is None) == (b.weight_mask is None)
            and (a.weight_mask is None or _bits(a.weight_mask) == _bits(b.weight_mask)))


@contextlib.contextmanager
def file_with(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        with open(path, "wb") as f:
            f.write(data)
        yield path


def load_or_error(path):
    """load(path), or None after checking it raised a ModelFileError naming the file (any other
    exception escapes and fails the test)."""
    try:
        return load(path)
    except ModelFileError as exc:
        assert isinstance(exc, ValueError) and exc.path == path and str(exc).startswith(f"{path}: ")
        assert len(str(exc)) > len(path) + 10  # says what is wrong
        return None


def entries(data):
    """The entries of a model file's archive, as arrays."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def archive(content):
    buf = io.BytesIO()
    np.savez(buf, **content)
    return buf.getvalue()


# -- truncations, bit flips, random bytes, other formats ------------------------------------------------------
@FUZZ
@given(model_names, st.data())
def test_a_truncated_file_is_refused(name, data):
    _, raw = model(name)
    cut = data.draw(st.one_of(st.integers(0, len(raw) - 1), st.integers(max(0, len(raw) - 64), len(raw) - 1)))
    with file_with(raw[:cut]) as path:
        assert load_or_error(path) is None


@FUZZ
@given(model_names, st.data())
def test_bit_flips_anywhere_are_refused_or_harmless(name, data):
    net, raw = model(name)
    n = data.draw(st.integers(1, 6))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)), min_size=n, max_size=n))
    bad = bytearray(raw)
    for pos, mask in flips:
        bad[pos] ^= mask
    with file_with(bytes(bad)) as path:
        back = load_or_error(path)
    event("refused" if back is None else "loaded")
    if back is not None:  # a flip in a field nobody reads (a zip timestamp, a comment): the same learner
        assert identical(back, net), flips


def _other_formats():
    arrays = st.lists(st.floats(allow_nan=True, width=64), max_size=20).map(np.array)
    small_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                              lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                              max_leaves=10)

    def npy(a):
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    def zip_of(members):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for k, v in members.items():
                z.writestr(k, v)
        return buf.getvalue()

    return st.one_of(
        st.binary(max_size=400),
        st.tuples(st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY", b"\x1f\x8b", b"\x89HDF\r\n\x1a\n",
                                   b"\x80\x04", b"{", b"PK\x03\x04\x14\x00\x00\x00\x00\x00"]),
                  st.binary(max_size=200)).map(b"".join),
        arrays.map(npy),  # a single .npy array
        st.dictionaries(st.sampled_from(["W", "y0", "x", "meta2"]), arrays, max_size=3).map(archive),  # no meta
        st.tuples(small_json, st.dictionaries(st.sampled_from(["W", "y0", "state.y"]), arrays, max_size=3)).map(
            lambda t: archive({"meta": np.array(json.dumps(t[0])), **t[1]})),  # meta of any JSON
        arrays.map(lambda a: archive({"meta": a})),  # meta that is not a string
        st.dictionaries(st.sampled_from(["meta.npy", "W.npy", "readme.txt"]), st.binary(max_size=50),
                        max_size=3).map(zip_of),  # a zip of anything
        small_json.map(lambda j: json.dumps(j).encode()),
        model_names.map(lambda n: gzip.compress(model(n)[1])),  # a compressed model file
        st.just(archive({"meta": np.array([{"format": "rtrl.model"}], dtype=object)})),  # a pickled entry
        st.just(pickle.dumps({"W": np.zeros((3, 6))})),
    )


@FUZZ
@given(_other_formats())
def test_random_bytes_and_files_of_other_formats_are_refused(data):
    with file_with(data) as path:
        assert load_or_error(path) is None


@FUZZ
@given(model_names, st.binary(max_size=300), st.sampled_from(["junk", "model"]))
def test_a_model_file_after_other_bytes_is_refused_or_read_whole(name, junk, what):
    """zipfile finds an archive by its end (as in self-extracting archives): what is before it is not read."""
    net, raw = model(name)
    with file_with((junk if what == "junk" else model(sorted(MODELS)[len(junk) % len(MODELS)])[1]) + raw) as path:
        back = load_or_error(path)
    assert back is None or identical(back, net)


# -- mutated metadata -----------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, 1, -1, 3, 2**63, 10**400])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
    | st.sampled_from(["rtrl", "uoro", "snap", "bptt", "sgd", "numba", "numpy", "jax", "logistic", "tanh",
                      "rtrl.model", "auto"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6)


def _paths(obj, prefix=()):
    """Every path to a value inside a JSON object."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


#: Plausible values of the settings a file may carry (valid ones among them): edits that may well load.
PLAUSIBLE = {
    ("optimizer", "learning_rate"): [0, 0.0, 1e-300, 5, 1e300, True, "0.1", -1, None, float("nan")],
    ("optimizer", "clip_norm"): [None, 0.5, 1e-300, 0, -1, float("inf"), "1", False],
    ("config", "activation"): ["logistic", "tanh", "relu", "", None, 1],
    ("config", "teacher_forcing"): [True, False, 0, 1, None, "true"],
    ("config", "engine"): ["numpy", "numba", "jax", "cuda", None, 3],
    ("config", "n_streams"): [None, 1, 2, 3, 0, True, -1],
    ("config", "n_units"): [3, 2, 4, 0, True, 3.0],
    ("config", "n_inputs"): [2, 1, 0, 3, -1],
    ("t",): [0, 5, 2**63, 2**64, -1, 1.5, True, None],
    ("rule", "name"): ["rtrl", "uoro", "snap", "bptt", "hybrid", "rflo", "", None],
    ("rtrl_version",): ["0.0.1", "99.0", None, 3],
    ("format_version",): [1, 2, 3, 0, True, "2", None],
}


@st.composite
def mutated_meta(draw, meta):
    meta = json.loads(json.dumps(meta))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 2)):  # mostly a setting edited to a plausible value
            path = draw(st.sampled_from(sorted(PLAUSIBLE, key=str) + [("extra",), ("rule", "options")]))
            parent = meta
            for key in path[:-1]:
                parent = parent.setdefault(key, {}) if isinstance(parent, dict) else {}
            if isinstance(parent, dict):
                parent[path[-1]] = draw(st.sampled_from(PLAUSIBLE[path]) if path in PLAUSIBLE else json_values)
            continue
        paths = [p for p in _paths(meta) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = meta
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if how == "delete":
            del parent[path[-1]]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return meta


@FUZZ
@given(model_names, st.data())
def test_edited_metadata_is_refused_or_gives_a_usable_learner(name, data):
    net, raw = model(name)
    content = entries(raw)
    meta = data.draw(mutated_meta(json.loads(str(content["meta"]))))
    try:
        text = json.dumps(meta)  # NaN and inf are written as JSON's NaN/Infinity extensions
    except ValueError:  # a circular or unencodable value: nothing to write
        return
    content["meta"] = np.array(text)
    with file_with(archive(content)) as path:
        back = load_or_error(path)
    event("refused" if back is None else "loaded")
    if back is None:
        return
    # the arrays are the file's (they are checksummed), the settings are the edited metadata's
    assert _bits(back.W) == _bits(net.W) and [_bits(a) for a in back.state.rule_state] == [
        _bits(a) for a in net.state.rule_state]
    with tempfile.TemporaryDirectory() as tmp:  # what load accepts, save accepts and reads back the same
        again = os.path.join(tmp, "again.npz")
        back.save(again)
        assert identical(load(again), back)
    B = back.n_streams
    lead = (B,) if B else ()
    try:
        back.partial_fit(np.full(lead + (2, 2), 0.5), np.full(lead + (2, 3), 0.5))
    except ValueError as exc:  # divergence, or settings the rule cannot run with (e.g. engine 'jax' with
        # rule 'bptt': the constructor accepts it too, the first step says what to change)
        assert "diverged" in str(exc) or "engine" in str(exc), exc


# -- arrays of a wrong shape or dtype --------------------------------------------------------------------------
TRANSFORMS = {
    "float32": lambda a: a.astype(np.float32),
    "int64": lambda a: a.astype(np.int64),
    "uint8": lambda a: a.astype(np.uint8),
    "complex": lambda a: a.astype(np.complex128),
    "bool": lambda a: a.astype(bool),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "text": lambda a: a.astype("U8"),
    "flat": lambda a: a.reshape(-1),
    "extra axis": lambda a: a[None],
    "transposed": lambda a: a.T,
    "one less": lambda a: a.reshape(-1)[:-1],
    "one more": lambda a: np.concatenate([a.reshape(-1), a.reshape(-1)[:1]]),
    "empty": lambda a: a.reshape(-1)[:0],
    "scalar": lambda a: np.array(a.reshape(-1)[0] if a.size else 0.0),
    "other": lambda a: np.zeros((2, 5)),
}


@FUZZ
@given(model_names, st.data(), st.sampled_from(sorted(TRANSFORMS)), st.booleans())
def test_an_array_of_a_wrong_shape_or_dtype_is_refused(name, data, transform, fix_checksum):
    net, raw = model(name)
    content = entries(raw)
    key = data.draw(st.sampled_from(sorted(k for k in content if k != "meta")))
    old = content[key]
    new = np.ascontiguousarray(TRANSFORMS[transform](old))
    assume((new.dtype, new.shape) != (old.dtype, old.shape))  # the same shape and dtype is not this test's case
    content[key] = new
    if fix_checksum:  # as a writer that computes the checksums of what it writes would: the checks must hold
        meta = json.loads(str(content["meta"]))
        meta["sha256"][key] = rtrl.io._digest(new)
        content["meta"] = np.array(json.dumps(meta))
    with file_with(archive(content)) as path:
        back = load_or_error(path)
    # (only the mask may change its dtype: it is read as booleans, so 0/1 in another dtype is the same mask)
    assert back is None or (key == "wmask" and identical(back, net)), (key, transform, fix_checksum)


@FUZZ
@given(model_names, st.sampled_from(["drop", "add", "rename", "duplicate"]), st.integers(0, 99), st.integers(0, 99),
       st.sampled_from(["state.extra", "wmask", "W2", "state.P2", "w", "W ", "state.Y", "y", "P"]))
@example("snap", "drop", 5, 0, "W2")  # the mask: the file would load as a dense network
def test_missing_extra_and_renamed_entries_are_refused(name, how, i, j, new):
    net, raw = model(name)
    content = entries(raw)
    keys = sorted(k for k in content if k != "meta")
    key, other = keys[i % len(keys)], keys[j % len(keys)]
    meta = json.loads(str(content["meta"]))
    if how == "drop":
        del content[key]
    elif how == "add":
        assume(new not in content)
        content[new] = np.zeros(3)
        meta["sha256"][new] = rtrl.io._digest(content[new])
    elif how == "rename":  # a damaged member name (the checksums still name the old entry)
        assume(new not in content)
        content[new] = content.pop(key)
    else:  # another entry's data under this name (the same shape only where it happens to match)
        assume(_bits(content[other]) != _bits(content[key]))
        content[key] = content[other]
        meta["sha256"][key] = meta["sha256"][other]
    content["meta"] = np.array(json.dumps(meta))
    with file_with(archive(content)) as path:
        back = load_or_error(path)
    if back is not None:  # an entry nobody reads (the same learner), or two arrays of one shape and dtype swapped
        assert identical(back, net) or (how == "duplicate" and content[key].shape == content[other].shape), (how, key)


# -- a save that fails never damages the file it would replace --------------------------------------------------
class _FailingFile:
    """A file object whose writes fail (raise ``exc``) once ``room`` bytes are written (the part that fits
    is written first, as a real full disk does)."""

    def __init__(self, f, room, exc):
        self._f, self._room, self._exc = f, room, exc

    def write(self, data):
        data = bytes(data)
        if len(data) > self._room:
            self._f.write(data[:self._room])
            self._room = 0
            raise self._exc
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


failures = st.one_of(
    st.tuples(st.just("write"), st.floats(0.0, 0.95),
              st.sampled_from([errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EROFS])),
    st.tuples(st.just("interrupt"), st.floats(0.0, 0.95), st.just(0)),
    st.tuples(st.sampled_from(["fsync", "replace", "mkstemp"]), st.just(0),
              st.sampled_from([errno.ENOSPC, errno.EIO, errno.EACCES])),
    st.tuples(st.sampled_from(["nan state", "negative t"]), st.just(0), st.just(0)),
)


@FUZZ
@given(model_names, failures, st.booleans())
@example("rtrl", ("write", 0.0, errno.ENOSPC), True)
@example("snap", ("interrupt", 0.02, 0), False)
def test_a_failed_save_leaves_the_previous_file_as_it_was(name, failure, through_learner):
    net, raw = model(name)
    with file_with(raw) as path:
        newer = load(path)  # the same learner, one step on: what the new save would hold
    B = newer.n_streams
    lead = (B,) if B else ()
    newer.partial_fit(np.full(lead + (1, 2), 0.25), np.full(lead + (1, 3), 0.5))
    kind, frac, code = failure
    room = int(frac * len(raw))  # the bytes that fit before the disk is full
    real_savez, real_fsync = np.savez, os.fsync
    exc = KeyboardInterrupt() if kind == "interrupt" else OSError(code, os.strerror(code))
    patches = []
    if kind in ("write", "interrupt"):
        patches.append(mock.patch.object(rtrl.io.np, "savez", lambda f, **a: real_savez(_FailingFile(f, room, exc),
                                                                                       **a)))
    elif kind == "fsync":
        def fsync(fd):
            if not os.path.isdir(f"/proc/self/fd/{fd}"):  # the file's fsync (the folder's is best effort)
                raise exc
            return real_fsync(fd)
        patches.append(mock.patch.object(rtrl.io.os, "fsync", fsync))
    elif kind == "replace":
        patches.append(mock.patch.object(rtrl.io.os, "replace", mock.Mock(side_effect=exc)))
    elif kind == "mkstemp":
        patches.append(mock.patch.object(rtrl.io.tempfile, "mkstemp", mock.Mock(side_effect=exc)))
    elif kind == "nan state":
        newer.state = newer.state._replace(W=newer.W * np.nan)
    else:
        newer.state = newer.state._replace(t=-1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        with open(path, "wb") as f:
            f.write(raw)
        expected = (KeyboardInterrupt if kind == "interrupt" else ValueError if kind in ("nan state", "negative t")
                    else OSError)
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p)
            with pytest.raises(expected) as info:
                newer.save(path) if through_learner else save(newer, path)
        if expected is OSError:
            assert info.value.errno == code
        with open(path, "rb") as f:
            assert f.read() == raw  # byte for byte the previous file
        assert os.listdir(tmp) == ["m.npz"]  # no temporary file left behind
        assert identical(load(path), net)
        newer.state = newer.state._replace(W=np.nan_to_num(newer.W), t=max(newer.t, 0))
        newer.save(path)  # and the next save, once the fault is gone, goes through
        assert identical(load(path), newer)


def test_the_fuzzed_models_are_what_the_tests_think_they_are():
    """Guards the generators: each model round-trips, and the damage above starts from real model files."""
    for name in MODELS:
        net, raw = model(name)
        with file_with(raw) as path:
            back, meta = load_with_metadata(path)
        assert identical(back, net) and meta["extra"] == {"note": "fuzz", "rows": [1, 2, 3]}
        assert raw[:4] == b"PK\x03\x04" and struct.unpack("<I", raw[-22:-18])[0] == 0x06054B50


def test_a_snap_pattern_that_does_not_fit_the_mask_is_refused_at_load():
    _, raw = model("snap")
    content = entries(raw)
    idx = content["state.idx"].copy()
    idx[:] = 10**9
    content["state.idx"] = idx
    meta = json.loads(str(content["meta"]))
    meta["sha256"]["state.idx"] = rtrl.io._digest(idx)
    content["meta"] = np.array(json.dumps(meta))
    with file_with(archive(content)) as path:
        back = load_or_error(path)
    assert back is None, "loaded a learner that cannot step"


def test_an_unknown_entry_in_a_version_2_file_is_refused():
    """A renamed 'wmask' (checksums rewritten to match) must not load as a dense network."""
    _, raw = model("snap")
    content = entries(raw)
    content["mask"] = content.pop("wmask")
    meta = json.loads(str(content["meta"]))
    meta["sha256"]["mask"] = meta["sha256"].pop("wmask")
    content["meta"] = np.array(json.dumps(meta))
    with file_with(archive(content)) as path:
        with pytest.raises(ModelFileError, match="unexpected entries"):
            load_with_metadata(path)


def test_engine_jax_is_refused_at_once_for_a_rule_without_a_jax_loop():
    with pytest.raises(ValueError, match="no loop for engine 'jax'"):
        rtrl.OnlineLearner(3, 1, learning_rate=0.1, rule="bptt:4", engine="jax")
