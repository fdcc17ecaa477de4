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

Writes are atomic: the archive goes to a temporary file ``.NAME.PID.XXXXXXXX.tmp`` in the
target folder, is fsync'ed, renamed over the target and the folder is fsync'ed, so a crash
mid-write leaves either the old file or the new one, never a broken one. :func:`save`
refuses (ValueError) what :func:`load` would refuse: a non-finite state or one that does
not fit its rule. Reading never unpickles (``allow_pickle=False``) and never blocks (a
FIFO, a device or a socket is refused unopened); a truncated, corrupted, foreign or
incompatible file raises :class:`ModelFileError` naming the file and what is wrong,
whatever the zip, zlib or NumPy layer underneath raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from typing import IO, TYPE_CHECKING, Any, Callable

import numpy as np

from ._version import __version__

if TYPE_CHECKING:
    from .learner import OnlineLearner

__all__ = ["save", "load", "load_with_metadata", "ModelFileError", "FORMAT_NAME", "FORMAT_VERSION",
           "atomic_write", "probe_writable"]

#: Written into every model file; a file without it is not an rtrl model.
FORMAT_NAME = "rtrl.model"
#: Bumped when the layout changes in a way older readers cannot understand.
FORMAT_VERSION = 2
#: The optimizers this version can restore (:mod:`rtrl.optim`).
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")

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

    def __init__(self, path: str, message: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


def _tmp_prefix(path: str) -> str:
    """Prefix of the temporary files of saves of ``path``: ``.NAME.PID.`` (the writer's process id, so a
    leftover of a killed save can be told from a file a live process is writing)."""
    return "." + os.path.basename(path) + f".{os.getpid()}."


def probe_writable(path: "str | os.PathLike[str]") -> None:
    """Raise OSError (with the reason) if a file cannot be created next to ``path`` the way a save does it.

    Creates and removes one empty temporary file in the folder of ``path``; ``path`` itself is
    not touched. A missing folder raises FileNotFoundError naming the folder.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, f"No such folder {folder}")
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file and move it over ``path`` atomically.

    The temporary file ``.NAME.PID.XXXXXXXX.tmp`` lives in the same folder (so the rename is
    atomic), is flushed and fsync'ed before ``os.replace``, and the folder is fsync'ed after,
    so the new name survives a power loss. On any error the temporary file is removed and
    ``path`` is left as it was. (A process killed mid-save leaves its temporary file; the PID
    in its name tells ``rtrl stream`` that it is stale.)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.filename is None:  # (a failed write or fsync names no file): name the model file
            raise type(exc)(exc.errno, exc.strerror or str(exc), path) from None
        raise
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


def save(learner: "OnlineLearner", path: "str | os.PathLike[str]", *, extra: dict | None = None) -> None:
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
    learner._refresh()  # after forward-only steps: the rule's state as learning would resume from it
    _check_savable(learner)
    s = learner.state
    arrays = {"W": np.ascontiguousarray(s.W, dtype=np.float64), "y0": np.ascontiguousarray(learner._y0,
                                                                                         dtype=np.float64)}
    for name, value in zip(s.rule_state._fields, s.rule_state):
        arrays["state." + name] = np.ascontiguousarray(value) if np.ndim(value) else np.array(value)  # 0-d stays 0-d
    for name, value in zip(s.opt_state._fields, s.opt_state):
        arrays["optim." + name] = np.ascontiguousarray(value) if np.ndim(value) else np.array(value)
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
        # the optimizer's state arrays are the entries "optim.<field>"
        "optimizer": {"kind": config["optimizer"]["name"], "learning_rate": config["learning_rate"],
                      "clip_norm": config["clip_norm"], "options": config["optimizer"]["options"],
                      "schedule": config["schedule"]},
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


def _same_layout(got: Any, template: Any, what: str, owner: str) -> None:
    """ValueError unless the state ``got`` has the fields, dtypes and shapes of ``template``."""
    if getattr(got, "_fields", None) != template._fields:
        raise ValueError(f"the {what} state has fields {getattr(got, '_fields', type(got).__name__)}; {owner} "
                         f"keeps {list(template._fields)}")
    for name, want, a in zip(template._fields, template, got):
        a = np.asarray(a)
        if a.dtype != want.dtype or a.shape != want.shape:
            raise ValueError(f"the {what} state's {name!r} is {a.dtype} of shape {a.shape}; {owner} keeps "
                             f"{want.dtype} of shape {want.shape}")


def _check_savable(learner) -> None:
    """Refuse to write what :func:`load` would refuse: settings changed to invalid values after
    construction, a diverged (non-finite) state, or a state that does not fit the rule."""
    from . import rules
    from .activations import check_activation
    from .api import ENGINES, init_rule_states
    from .learner import LearnerState

    where = "learner"
    try:
        lr = learner.learning_rate
        clip = learner.clip_norm
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not np.isfinite(lr) or lr < 0:
            raise ValueError(f"learning_rate is {lr!r}; expected a finite number >= 0")
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float, np.floating))
                                 or not np.isfinite(clip) or clip <= 0):
            raise ValueError(f"clip_norm is {clip!r}; expected None or a finite number > 0")
        try:
            check_activation(learner.activation, learner.n_units)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"activation is {learner.activation!r} ({exc})") from None
        if not isinstance(learner.teacher_forcing, bool):
            raise ValueError(f"teacher_forcing is {learner.teacher_forcing!r}; expected a bool")
        if learner.engine not in ENGINES:
            raise ValueError(f"engine is {learner.engine!r}; expected one of {ENGINES}")
        rule = learner.rule
        again = rules.make(rule.name, **rule.options())
        if again != rule:
            raise ValueError(f"rule {rule!r} does not round-trip through its name and options")
        st = learner.state
        if not isinstance(st, LearnerState):
            raise ValueError(f"state is a {type(st).__name__}; expected an rtrl.learner.LearnerState")
        t = st.t
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"the step count t is {t!r}; expected an integer >= 0")
        W = np.asarray(st.W)
        batch = () if learner.n_streams is None else (learner.n_streams,)
        n, K = W.shape[-2:]
        if W.dtype != np.float64 or W.ndim != len(batch) + 2:
            raise ValueError(f"W is {W.dtype} of shape {W.shape}; expected float64 ([n_streams,] n, K)")
        y0 = np.asarray(learner._y0)
        if y0.dtype != np.float64 or y0.shape != batch + (n,):
            raise ValueError(f"y0 is {y0.dtype} of shape {y0.shape}; expected float64 of shape {batch + (n,)}")
        template = init_rule_states(rule, np.zeros(W.shape), np.zeros(y0.shape), learner._wmask)
        rs = st.rule_state
        _same_layout(rs, template, "rule", f"rule {rule.spec!r}")
        os_ = st.opt_state
        _same_layout(os_, learner.optimizer.init(np.zeros(W.shape)), "optimizer",
                     f"optimizer {learner.optimizer.name!r}")
        for name, a in ([("W", W), ("y0", y0)] + list(zip(("state." + f for f in rs._fields), rs))
                        + list(zip(("optim." + f for f in os_._fields), os_))):
            a = np.asarray(a)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"{name} contains NaN or inf (training diverged); roll back to a good state or "
                                 "lower the learning rate")
    except ValueError as exc:
        raise ValueError(f"{where}: cannot be saved, a model file of it would not load: {exc}") from None


def _open_regular(spath):
    """Open ``spath`` for reading as a binary file object; refuse anything that is not a regular file.

    Never blocks: a FIFO, a device or a socket is refused (opened, if at all, without waiting).
    """
    try:
        st = os.stat(spath)
    except FileNotFoundError:
        raise ModelFileError(spath, "no such file") from None
    except OSError as exc:
        raise ModelFileError(spath, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(spath, "is a folder, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(spath, "is not a regular file (a pipe, a device or a socket); a model file is a "
                             "regular .npz file")
    try:
        fd = os.open(spath, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ModelFileError(spath, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the two looks
        os.close(fd)
        raise ModelFileError(spath, "is not a regular file; a model file is a regular .npz file")
    return os.fdopen(fd, "rb")


def _read(path):
    """Open and check a model file; return (arrays, meta) or raise ModelFileError."""
    spath = os.fspath(path)
    with _open_regular(spath) as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except Exception as exc:  # zipfile, zlib, numpy and OS errors alike: not a readable model file
            raise ModelFileError(spath, "not a readable rtrl model file: it is truncated, corrupted or not a "
                                 f"NumPy .npz archive ({type(exc).__name__}: {exc})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ModelFileError(spath, "is a single NumPy array (.npy), not an rtrl model file (.npz archive)")
        with archive:
            try:
                names = set(archive.files)
            except Exception as exc:  # pragma: no cover - NpzFile reads its names when opened
                raise ModelFileError(spath, f"is corrupted ({type(exc).__name__}: {exc})") from None
            if "meta" not in names:
                raise ModelFileError(spath, f"is a NumPy .npz archive but not an rtrl model file (no 'meta' "
                                     f"entry; entries: {sorted(names)})")
            try:
                raw = {name: archive[name] for name in names}
            except Exception as exc:  # bad CRC, an unsupported zip feature, a broken .npy header, ...
                raise ModelFileError(spath, f"is truncated or corrupted: an entry cannot be read "
                                     f"({type(exc).__name__}: {exc})") from None
    odd = sorted(name for name, a in raw.items() if not isinstance(a, np.ndarray))
    if odd:  # a zip member without the .npy suffix: NpzFile hands over its raw bytes
        raise ModelFileError(spath, f"is not an rtrl model file: its entries {odd} are not NumPy arrays (.npy)")
    meta_arr = raw.pop("meta")
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise ModelFileError(spath, "is not an rtrl model file (its 'meta' entry is not a JSON string)")
    try:
        meta = json.loads(str(meta_arr))
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(spath, f"is corrupted: its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(spath, "is not an rtrl model file (its metadata is not a JSON object)")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(spath, f"is not an rtrl model file (format {meta.get('format')!r}, "
                             f"expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
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
    act = config.get("activation")
    if not isinstance(config.get("teacher_forcing"), bool) or not (
            isinstance(act, str) or (isinstance(act, list) and all(isinstance(a, str) for a in act))):
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
        # the entries a version-2 file may hold; anything else (a renamed 'wmask', ...) is refused
        names = {name: name for name in raw
                 if name in ("W", "y0", "wmask") or name.startswith(("state.", "optim."))}
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
    except Exception as exc:  # options of absurd types or sizes
        raise ModelFileError(spath, f"has a malformed rule entry ({type(exc).__name__}: {exc})") from None
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
    # an optional array listed in the checksums but absent (a dropped 'wmask' would load as a dense network);
    # a missing state array is named by load_with_metadata
    lost = sorted(k for k in set(digests) - set(raw) if not str(k).startswith("state."))
    if lost:
        raise ModelFileError(spath, f"is incomplete: the arrays {lost} named in its checksums are missing")
    return config, optimizer, t, rule, arrays


def _state_arrays(spath: str, arrays: dict, prefix: str, template: Any, owner: str,
                  structural: tuple = ()) -> list:
    """The arrays ``prefix + field`` of a state shaped like ``template`` (a rule's or an optimizer's), checked:
    each present with the template's dtype and shape, ``structural`` fields equal to the template's, and no
    other ``prefix`` entries. ModelFileError naming the array otherwise."""
    fields = []
    for name, want in zip(template._fields, template):
        key = prefix + name
        if key not in arrays:
            raise ModelFileError(spath, f"is incomplete: the state array {key!r} of {owner} is missing")
        a = arrays[key]
        if a.dtype != want.dtype or a.shape != want.shape:
            raise ModelFileError(spath, f"array {key!r}: expected {want.dtype} of shape {want.shape} for {owner}, "
                                 f"got {a.dtype} of shape {a.shape}")
        if name in structural and not np.array_equal(a, want):
            raise ModelFileError(spath, f"array {key!r} does not fit the file's {owner} and connectivity mask (the "
                                 "pattern init() makes from them); the file was altered")
        fields.append(a)
    extra = sorted(k for k in arrays if k.startswith(prefix) and k[len(prefix):] not in template._fields)
    if extra:
        raise ModelFileError(spath, f"has state arrays {extra} that {owner} does not keep")
    return fields


def load_with_metadata(path: "str | os.PathLike[str]") -> tuple["OnlineLearner", dict]:
    """Read a model file; return ``(learner, meta)``.

    ``meta`` is the file's metadata dict (``"rtrl_version"``, ``"config"``, ``"rule"``,
    ``"optimizer"``, ``"t"``, ``"extra"``, ...). See :func:`load`.
    """
    from .learner import LearnerState, OnlineLearner
    from .optim import OptimizerOptionError, make_optimizer, make_schedule

    spath = os.fspath(path)
    raw, meta = _read(spath)
    try:
        config, optimizer, t, rule, arrays = _check(spath, raw, meta)
        wmask = arrays.get("wmask")
        W = arrays["W"]
        n, K = W.shape[-2:]
        B = config.get("n_streams")
        blank = OnlineLearner(n, K - 1 - n, learning_rate=0.0, rule=rule, W=W, y0=arrays["y0"], weight_mask=wmask,
                              n_streams=B, engine=config.get("engine", "numba"))
        template = blank.state.rule_state
        fields = _state_arrays(spath, arrays, "state.", template, f"rule {rule.spec!r}", rule.structural_fields)
        try:
            opt = make_optimizer(optimizer["kind"], **optimizer.get("options", {}))
            sched_meta = optimizer.get("schedule", {"name": "constant", "options": {}})
            sched = make_schedule(sched_meta["name"], **sched_meta["options"])
        except (OptimizerOptionError, TypeError, KeyError, AttributeError) as exc:
            raise ModelFileError(spath, f"has a malformed optimizer entry ({type(exc).__name__}: {exc})") from None
        opt_template: Any = opt.init(np.zeros(W.shape))
        opt_fields = _state_arrays(spath, arrays, "optim.", opt_template, f"optimizer {opt.name!r}")
        learner = OnlineLearner.from_state(
            LearnerState(W, type(template)(*fields), t, type(opt_template)(*opt_fields)), rule=rule,
            y0=arrays["y0"], weight_mask=wmask,
            learning_rate=optimizer["learning_rate"], clip_norm=optimizer.get("clip_norm"),
            activation=config["activation"], teacher_forcing=config["teacher_forcing"],
            engine=config.get("engine", "numba"), optimizer=opt, schedule=sched)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(spath, f"has an invalid configuration: {exc}") from None
    except Exception as exc:  # anything else a hostile file can provoke (sizes, types): still a bad file
        raise ModelFileError(spath, f"has an invalid configuration ({type(exc).__name__}: {exc})") from None
    return learner, meta


def load(path: "str | os.PathLike[str]") -> "OnlineLearner":
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
