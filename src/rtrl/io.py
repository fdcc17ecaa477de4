"""Model files: save and load the whole state of an :class:`~rtrl.learner.OnlineLearner`.

A model file is a NumPy ``.npz`` archive (uncompressed zip) of arrays and one JSON string:

==================  ===========  ======================================================
entry               shape        meaning
==================  ===========  ======================================================
``W``               (n, K)       weights, columns ``[inputs, bias, recurrent]``
``y0``              (n,)         initial outputs, used by ``reset_state``
``state.FIELD``     any          each field of the learning rule's state, e.g.
                                 ``state.y`` (n,) and ``state.P`` (n, n, K) for RTRL
``wmask``           (n, K)       the connectivity mask, only for sparse networks
``meta``            ()           JSON: format, versions, configuration, the rule's name
                                 and options, optimizer, step count t, SHA-256 of each
                                 array, and free ``extra`` data
==================  ===========  ======================================================

(Batched streams add a leading axis B to every array but ``wmask``.) Format version 1
(rtrl 0.1) stored ``y`` and ``P`` as top-level arrays and had no rule: it is read as the
"rtrl" rule. The rule's state is saved without the file format knowing which rule made it:
its fields are checked against the state the rule itself builds for that network.

Writes are atomic: the archive goes to a temporary file in the target folder, is
fsync'ed, renamed over the target and the folder is fsync'ed, so a crash mid-write
leaves either the old file or the new one, never a broken one. Reading never
unpickles (``allow_pickle=False``); a truncated, corrupted, foreign or incompatible
file raises :class:`ModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from ._version import __version__

__all__ = ["save", "load", "load_with_metadata", "ModelFileError", "FORMAT_NAME", "FORMAT_VERSION",
           "atomic_write"]

#: Written into every model file; a file without it is not an rtrl model.
FORMAT_NAME = "rtrl.model"
#: Bumped when the layout changes in a way older readers cannot understand.
FORMAT_VERSION = 2
#: The optimizers this version can restore (the learner does plain SGD).
OPTIMIZERS = ("sgd",)

_ARRAYS_V1 = ("W", "y", "P", "y0")

# The process umask, read once, so that files written through mkstemp (mode 0600) get
# the same permissions as a plain open() would give them.
_UMASK = os.umask(0)
os.umask(_UMASK)


class ModelFileError(ValueError):
    """A model file cannot be read: truncated, corrupted, foreign or incompatible.

    Attributes
    ----------
    path : str
        The file that was being read.
    """

    def __init__(self, path, message):
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file and move it over ``path`` atomically.

    The temporary file lives in the same folder (so the rename is atomic), is flushed
    and fsync'ed before ``os.replace``, and the folder is fsync'ed after, so the new
    name survives a power loss. On any error the temporary file is removed and ``path``
    is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        dfd = os.open(folder, flags)
    except OSError:  # pragma: no cover - platforms that cannot open a folder (Windows)
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on a folder
        pass
    finally:
        os.close(dfd)


def _digest(a: np.ndarray) -> str:
    if a.dtype == np.float64:
        return hashlib.sha256(np.ascontiguousarray(a, dtype="<f8").tobytes()).hexdigest()
    # other dtypes (a rule's counters, keys, float32 states): the dtype is part of what is checked
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.dtype.str.encode() + a.tobytes()).hexdigest()


def save(learner, path, *, extra=None) -> None:
    """Write the whole state of ``learner`` to ``path`` (a NumPy ``.npz`` archive), atomically.

    Parameters
    ----------
    learner : OnlineLearner
    path : str or os.PathLike
        Written exactly as given (no ``.npz`` suffix is added).
    extra : dict, optional
        JSON-serialisable data stored with the model (the stream command keeps its row
        count here) and returned by :func:`load_with_metadata`.

    Examples
    --------
    >>> import os, tempfile, rtrl
    >>> from rtrl.io import save, load
    >>> net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    >>> _ = net.step([1.0, 0.0], target=[0.5, float("nan"), float("nan")])
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> save(net, path)
    >>> again = load(path)
    >>> again.t, bool((again.W == net.W).all())
    (1, True)
    """
    from .learner import OnlineLearner

    if not isinstance(learner, OnlineLearner):
        raise TypeError(f"learner: expected an rtrl.OnlineLearner, got {type(learner).__name__}")
    s = learner.state
    arrays = {"W": np.ascontiguousarray(s.W, dtype=np.float64), "y0": np.ascontiguousarray(learner._y0,
                                                                                         dtype=np.float64)}
    for name, value in zip(s.rule_state._fields, s.rule_state):
        arrays["state." + name] = np.ascontiguousarray(value) if np.ndim(value) else np.array(value)  # 0-d stays 0-d
    if learner.weight_mask is not None:
        arrays["wmask"] = learner.weight_mask.astype(np.float64)
    config = learner.config()
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "rtrl_version": __version__,
        "config": {k: config[k] for k in ("n_units", "n_inputs", "activation", "teacher_forcing", "engine",
                                          "n_streams")},
        "rule": config["rule"],
        # NOTE: the learner does plain SGD; its settings are stored as an optimizer entry
        # of their own so that a future optimizer (with state arrays) fits the format.
        "optimizer": {"kind": "sgd", "learning_rate": config["learning_rate"], "clip_norm": config["clip_norm"]},
        "t": int(s.t),
        "sha256": {k: _digest(v) for k, v in arrays.items()},
        "extra": {} if extra is None else extra,
    }
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra: expected JSON-serialisable data without NaN/inf, got {extra!r} ({exc})") from None

    def write(f):
        np.savez(f, meta=np.array(text), **arrays)

    atomic_write(path, write)


def _read(path):
    """Open and check a model file; return (arrays, meta) or raise ModelFileError."""
    spath = os.fspath(path)
    if not os.path.exists(spath):
        raise ModelFileError(spath, "no such file")
    if os.path.isdir(spath):
        raise ModelFileError(spath, "is a folder, not a model file")
    try:
        archive = np.load(spath, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(spath, "not a readable rtrl model file: it is truncated, corrupted or not a NumPy "
                             f".npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(spath, "is a single NumPy array (.npy), not an rtrl model file (.npz archive)")
    with archive:
        names = set(archive.files)
        if "meta" not in names:
            raise ModelFileError(spath, f"is a NumPy .npz archive but not an rtrl model file (no 'meta' entry; "
                                 f"entries: {sorted(names)})")
        try:
            raw = {name: archive[name] for name in names}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(spath, f"is truncated or corrupted: an entry cannot be read "
                                 f"({type(exc).__name__}: {exc})") from None
    meta_arr = raw.pop("meta")
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise ModelFileError(spath, "is not an rtrl model file (its 'meta' entry is not a JSON string)")
    try:
        meta = json.loads(str(meta_arr))
    except ValueError as exc:
        raise ModelFileError(spath, f"is corrupted: its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(spath, "is not an rtrl model file (its metadata is not a JSON object)")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(spath, f"is not an rtrl model file (format {meta.get('format')!r}, "
                             f"expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(spath, f"has model format version {version!r} (written by rtrl "
                             f"{meta.get('rtrl_version', '?')}); this rtrl {__version__} reads versions up to "
                             f"{FORMAT_VERSION}: upgrade rtrl to read it")
    return raw, meta


def _check(spath, raw, meta):
    """Check the metadata, the checksums and the network arrays; return (config, optimizer, t, rule, arrays).

    ``arrays`` maps the version-2 names (``W``, ``y0``, ``state.FIELD``, ``wmask``) to the
    file's arrays (a version-1 file's ``y`` and ``P`` become ``state.y`` and ``state.P``).
    """
    from . import rules

    try:
        config = meta["config"]
        optimizer = meta["optimizer"]
        t = meta["t"]
        digests = meta["sha256"]
        n, m = config["n_units"], config["n_inputs"]
        kind = optimizer["kind"]
    except (KeyError, TypeError) as exc:
        raise ModelFileError(spath, f"is incomplete: its metadata lacks {exc}") from None
    if kind not in OPTIMIZERS:
        raise ModelFileError(spath, f"uses optimizer {kind!r}; this rtrl {__version__} knows {OPTIMIZERS}: "
                             "upgrade rtrl to read it")
    if not (isinstance(n, int) and isinstance(m, int) and n >= 1 and m >= 0):
        raise ModelFileError(spath, f"has an invalid configuration (n_units={n!r}, n_inputs={m!r})")
    if not isinstance(config.get("teacher_forcing"), bool) or not isinstance(config.get("activation"), str):
        raise ModelFileError(spath, f"has an invalid configuration (activation={config.get('activation')!r}, "
                             f"teacher_forcing={config.get('teacher_forcing')!r})")
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ModelFileError(spath, f"has an invalid step count t={t!r}")
    if not isinstance(digests, dict):
        raise ModelFileError(spath, "is corrupted: its checksums are not a JSON object")
    B = config.get("n_streams")  # absent in files of a single stream
    if B is not None and (isinstance(B, bool) or not isinstance(B, int) or B < 1):
        raise ModelFileError(spath, f"has an invalid configuration (n_streams={B!r})")
    if meta["format_version"] == 1:
        names = dict(zip(_ARRAYS_V1, ("W", "state.y", "state.P", "y0")))
        rule_meta = {"name": "rtrl", "options": {}}
    else:
        names = {name: name for name in raw}
        rule_meta = meta.get("rule")
    if set(raw) - set(names):
        raise ModelFileError(spath, f"is not an rtrl model file of format version {meta['format_version']}: "
                             f"unexpected entries {sorted(set(raw) - set(names))}")
    try:
        rule = rules.make(rule_meta["name"], **rule_meta["options"])
    except (KeyError, TypeError) as exc:
        raise ModelFileError(spath, f"is incomplete: its rule entry is missing or malformed ({exc!r})") from None
    except ValueError as exc:
        raise ModelFileError(spath, f"names a learning rule this rtrl {__version__} cannot build ({exc}); "
                             "upgrade rtrl to read it") from None
    arrays = {}
    for old, new in names.items():
        a = raw[old]
        if digests.get(old) != _digest(a):
            raise ModelFileError(spath, f"is corrupted: array {old!r} does not match its SHA-256 checksum")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ModelFileError(spath, f"array {old!r} contains NaN or inf; the saved state had diverged")
        arrays[new] = a
    batch = () if B is None else (B,)
    K = m + 1 + n
    shapes = {"W": batch + (n, K), "y0": batch + (n,)}
    for name, shape in shapes.items():
        if name not in arrays:
            raise ModelFileError(spath, f"is incomplete: the array {name!r} is missing")
        a = arrays[name]
        if a.dtype != np.float64 or a.shape != shape:
            raise ModelFileError(spath, f"array {name!r}: expected float64 of shape {shape} for n_units={n}, "
                                 f"n_inputs={m}, got {a.dtype} of shape {a.shape}")
    return config, optimizer, t, rule, arrays


def load_with_metadata(path):
    """Read a model file; return ``(learner, meta)``.

    ``meta`` is the file's metadata dict (``"rtrl_version"``, ``"config"``, ``"rule"``,
    ``"optimizer"``, ``"t"``, ``"extra"``, ...). See :func:`load`.
    """
    from .learner import LearnerState, OnlineLearner

    spath = os.fspath(path)
    raw, meta = _read(spath)
    config, optimizer, t, rule, arrays = _check(spath, raw, meta)
    try:
        wmask = arrays.get("wmask")
        W = arrays["W"]
        n, K = W.shape[-2:]
        B = config.get("n_streams")
        blank = OnlineLearner(n, K - 1 - n, learning_rate=0.0, rule=rule, W=W, y0=arrays["y0"], weight_mask=wmask,
                              n_streams=B, engine=config.get("engine", "numba"))
        template = blank.state.rule_state
        fields = []
        for name, want in zip(template._fields, template):
            key = "state." + name
            if key not in arrays:
                raise ModelFileError(spath, f"is incomplete: the state array {key!r} of rule {rule.spec!r} "
                                     "is missing")
            a = arrays[key]
            if a.dtype != want.dtype or a.shape != want.shape:
                raise ModelFileError(spath, f"array {key!r}: expected {want.dtype} of shape {want.shape} for rule "
                                     f"{rule.spec!r}, n_units={n}, got {a.dtype} of shape {a.shape}")
            fields.append(a)
        extra = sorted(k for k in arrays if k.startswith("state.") and k[6:] not in template._fields)
        if extra:
            raise ModelFileError(spath, f"has state arrays {extra} that rule {rule.spec!r} does not keep")
        learner = OnlineLearner.from_state(
            LearnerState(W, type(template)(*fields), t), rule=rule, y0=arrays["y0"], weight_mask=wmask,
            learning_rate=optimizer["learning_rate"], clip_norm=optimizer.get("clip_norm"),
            activation=config["activation"], teacher_forcing=config["teacher_forcing"],
            engine=config.get("engine", "numba"))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(spath, f"has an invalid configuration: {exc}") from None
    return learner, meta


def load(path):
    """Read a model file written by :func:`save` (or ``OnlineLearner.save``) into a new learner.

    The learner continues exactly where the saved one stopped: the same weights, outputs,
    sensitivities, step count and settings, so stepping on gives bit-identical results.

    Raises
    ------
    ModelFileError (a ValueError)
        The file is missing, truncated, corrupted (zip CRC or SHA-256 mismatch), not an
        rtrl model, written by a newer format, or inconsistent; the message names the file.
    """
    return load_with_metadata(path)[0]
