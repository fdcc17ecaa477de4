"""River estimators around :class:`rtrl.OnlineLearner`: :class:`RTRLRegressor` and :class:`RTRLForecaster`.

Needs the optional extra ``pip install 'rtrl[river]'``. See ``docs/river.md``.

Both hold a small fully recurrent network (unit 0 linear, the target; ``n_hidden`` tanh units) that
learns at every sample by real-time recurrent learning with Adam, so its output can use a learned memory
of the stream. Unlike River's usual models, the network has a *state*: every sample moves it on by
exactly one step, and what it predicts depends on the samples before.

- :class:`RTRLRegressor` (a ``river.base.Regressor``): ``learn_one(x, y)`` / ``predict_one(x)`` on a
  time-ordered stream of feature dicts. The rule that makes the state advance once per sample,
  whatever the order of River's calls, is in its docstring.
- :class:`RTRLForecaster` (a ``river.time_series.base.Forecaster``): ``learn_one(y, x=None)`` /
  ``forecast(horizon, xs=None)``. Its inputs are the series' last ``lags`` values (and
  ``seasonal_lags``), optionally exogenous features; a forecast runs the network freely, feeding its
  own forecasts back as lags.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
from numba import njit

try:
    from river import base
    from river.time_series.base import Forecaster
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("rtrl.river needs River (the optional extra): pip install 'rtrl[river]'") from exc

from .activations import activation_codes
from .learner import OnlineLearner
from .network import DEFAULT_WEIGHT_SCALE

__all__ = ["RTRLRegressor", "RTRLForecaster"]

#: The checks of ``river.checks.check_estimator`` that do not apply: a network has one input line per
#: feature, fixed on the first sample, so a sample with features missing or added is refused
#: (docs/river.md, "River's estimator checks").
SKIPPED_CHECKS = frozenset({"check_emerging_features", "check_disappearing_features",
                            "check_radically_disappearing_features"})

_EMPTY = np.zeros(0)
_EMPTY_CODES = np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------------------- validation
def _number(value, name: str) -> float:
    """``value`` as a finite float; TypeError (not a real number) or ValueError (NaN or inf) naming ``name``."""
    if type(value) is float:
        v = value
    elif isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, np.ndarray):
        v = float(value)
    else:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {shown}")
    if not math.isfinite(v):
        raise ValueError(f"{name}: got {v!r}; values must be finite numbers")
    return v


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _check_real(value, name: str, *, allow_none=False, allow_zero=False) -> float | None:
    if value is None and allow_none:
        return None
    want = ">= 0" if allow_zero else "> 0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a finite number {want}, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise ValueError(f"{name}: expected a finite number {want}, got {value!r}")
    return v


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _order(keys) -> tuple:
    """Feature names in a fixed order: sorted (by type and text when they cannot be compared)."""
    keys = list(keys)
    try:
        return tuple(sorted(keys))
    except TypeError:
        return tuple(sorted(keys, key=lambda k: (type(k).__name__, repr(k))))


def _read_features(x, names, what: str) -> tuple[tuple, np.ndarray]:
    """Validate the feature dict ``x`` against ``names`` (None: not fixed yet); return (names, values).

    Changes nothing: the caller fixes the names once the whole sample has been accepted.
    """
    if not isinstance(x, dict):
        raise TypeError(f"{what}: expected a dict of feature values, got {type(x).__name__}")
    if names is None:
        names = _order(x)
    elif len(x) != len(names) or not all(k in x for k in names):
        known = set(names)
        missing = [k for k in names if k not in x]
        extra = [k for k in x if k not in known]
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
        raise ValueError(f"{what}: features {' and '.join(parts)}; this model's input lines were fixed on its "
                         f"first sample as {list(names)} (one input line per feature): fill in or drop features "
                         f"upstream, e.g. in a compose.Pipeline")
    return names, np.array([_number(x[k], f"{what}[{k!r}]") for k in names], dtype=np.float64)


class _Stats(NamedTuple):
    """Running mean and deviation of some columns (Welford), with the conventions of
    :class:`rtrl.preprocessing.RunningStandardizer` (population deviation; scale 1 while it is 0),
    vectorised and immutable: :meth:`add` returns a new one, so a rejected sample leaves the old in place."""

    n: int  # rows added
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, size: int) -> "_Stats":
        return cls(0, np.zeros(size), np.zeros(size))

    def add(self, row: np.ndarray) -> "_Stats":
        n = self.n + 1
        delta = row - self.mean
        mean = self.mean + delta / n
        return _Stats(n, mean, self.m2 + delta * (row - mean))

    @property
    def scale(self) -> np.ndarray:
        s = np.sqrt(self.m2 / max(self.n, 1))
        return np.where(s > 0.0, s, 1.0)

    def first(self) -> tuple[float, float]:
        """(mean, scale) of the first column, as floats."""
        s = math.sqrt(float(self.m2[0]) / max(self.n, 1))
        return float(self.mean[0]), (s if s > 0.0 else 1.0)


class _Network:
    """The settings and the network shared by both estimators (River clones through ``__init__``)."""

    n_hidden: int
    learning_rate: float
    optimizer: str
    schedule: str
    activation: str
    rule: str
    standardize: bool
    clip_norm: float | None
    weight_scale: float
    seed: int | None
    _net: OnlineLearner | None
    _names: tuple | None
    _act: np.ndarray
    _xstats: _Stats

    def _check_settings(self):
        from .optim import make_optimizer, make_schedule
        from .rules import make as make_rule

        _check_int(self.n_hidden, "n_hidden", 0)
        _check_real(self.learning_rate, "learning_rate", allow_zero=True)
        for name, make in (("optimizer", make_optimizer), ("schedule", make_schedule), ("rule", make_rule)):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected a name (a string), got {value!r}")
            make(value)  # an unknown name or a bad option raises here, naming it
        if self.activation not in ("tanh", "logistic", "linear"):
            raise ValueError(f"activation: expected 'tanh', 'logistic' or 'linear' (the hidden units'), "
                             f"got {self.activation!r}")
        _check_bool(self.standardize, "standardize")
        _check_real(self.clip_norm, "clip_norm", allow_none=True)
        _check_real(self.weight_scale, "weight_scale", allow_zero=True)
        if self.seed is not None:
            _check_int(self.seed, "seed", 0)

    def _new_net(self, n_inputs: int, recurrent: bool = True) -> OnlineLearner:
        """Unit 0 linear (the target), ``n_hidden`` hidden units; recurrent weights fixed at 0 unless ``recurrent``."""
        n = 1 + self.n_hidden
        mask = None
        if not recurrent:
            mask = np.ones((n, n_inputs + 1 + n), dtype=bool)
            mask[:, n_inputs + 1:] = False
        net = OnlineLearner(n, n_inputs, learning_rate=self.learning_rate, optimizer=self.optimizer,
                            schedule=self.schedule, rule=self.rule,
                            activation=["linear"] + [self.activation] * self.n_hidden, clip_norm=self.clip_norm,
                            weight_scale=self.weight_scale, rng=self.seed, weight_mask=mask)
        self._act = activation_codes(net.activation, n)
        return net

    def __getstate__(self):
        # NOTE: an OnlineLearner copied (pickle, deepcopy) while its fast step holds live buffers steps
        # wrongly afterwards (the buffers' views are copied apart from them); assigning its state to
        # itself commits the buffers and drops them, so the copy is exact.
        net = self.__dict__.get("_net")
        if net is not None:
            net.state = net.state
        return self.__dict__.copy()

    @property
    def learner(self) -> OnlineLearner | None:
        """The network, an :class:`rtrl.OnlineLearner` (None before the first sample)."""
        return self._net

    @property
    def feature_names(self) -> tuple | None:
        """The features' names in input-line order, fixed on the first sample (None before it)."""
        return self._names

    @property
    def n_steps(self) -> int:
        """Steps the network has taken."""
        return 0 if self._net is None else self._net.t


# ---------------------------------------------------------------------------------------- regressor
class RTRLRegressor(_Network, base.Regressor):
    """A recurrent network that learns online, as a River regressor: ``learn_one(x, y)``, ``predict_one(x)``.

    The samples are a **time-ordered stream**: at every sample the network reads the features ``x``
    (one input line per feature) and its linear unit 0 predicts the target, using what the network
    remembers of the samples before (the outputs of its ``n_hidden`` hidden units and its own, fed
    back). All units are fully connected and learn by real-time recurrent learning (``rule``) with
    ``optimizer`` after every sample.

    **The call-order rule.** The network advances exactly one step per sample, whatever River calls:

    - ``predict_one(x)`` computes the prediction for ``x`` from the current state *without*
      advancing it, and keeps ``x`` as the *open* sample. Asked again for the same ``x`` (equal
      values), it returns the same prediction and does nothing else.
    - ``learn_one(x, y)`` advances the network one step on ``x``, learning from ``y``, and closes the
      open sample: the ``predict_one`` / ``learn_one`` pair of one sample (as in
      ``evaluate.progressive_val_score``) is one step, and so is a ``learn_one`` alone. It uses the
      ``x`` it is given: in a ``compose.Pipeline`` a scaler updates its statistics between the two
      calls, so the values differ slightly from those ``predict_one`` saw.
    - ``predict_one`` of a *different* ``x`` while a sample is open (a stream that is only being
      predicted) first consumes the open sample, one step without a target, then opens the new
      one; so a predict-only stream advances once per sample too. (Two consecutive predict-only
      samples with exactly equal values count as one.)

    Delayed labels (``progressive_val_score(..., delay=...)``) are not supported: ``learn_one``
    belongs to the latest sample. Feature names are fixed on the first sample (sorted, one input
    line each); a later sample with missing or extra keys is an error naming them. With
    ``standardize`` (default) the features and the target are standardised online, each sample
    with the statistics that include it, and predictions come back in the target's units. A
    rejected sample (a non-numeric or non-finite value, a NaN target, other features) changes
    nothing.

    Parameters
    ----------
    n_hidden : int
        Hidden units besides the linear target unit (0: the target unit alone, with its recurrent
        self-connection).
    learning_rate : float
        The optimizer's step size.
    optimizer : str
        ``"adam"`` (default), ``"sgd"``, ``"momentum"`` or ``"rmsprop"`` (:mod:`rtrl.optim`).
    schedule : str
        Learning-rate schedule (:mod:`rtrl.optim`): ``"constant"`` (default), ``"inverse-time:1000"``, ...
    activation : str
        The hidden units' activation: ``"tanh"`` (default), ``"logistic"`` or ``"linear"``.
    rule : str
        The learning rule (``docs/rules.md``): ``"rtrl"`` (exact, default), ``"uoro"``, ``"snap-1"``, ...
    standardize : bool
        Standardise the features and the target online (running mean and deviation).
    clip_norm : float, optional
        Cap on the norm of each step's gradient (None: no cap).
    weight_scale : float
        Initial weights are drawn from U(-weight_scale, weight_scale).
    seed : int, optional
        Seed of the initial weights (None: a fresh draw).

    Examples
    --------
    >>> from river import compose, datasets, evaluate, metrics, preprocessing
    >>> from rtrl.river import RTRLRegressor
    >>> model = compose.Pipeline(preprocessing.StandardScaler(), RTRLRegressor(seed=0))
    >>> metric = evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    >>> model["RTRLRegressor"].n_steps   # one step per sample
    1001
    """

    def __init__(self, n_hidden: int = 4, learning_rate: float = 0.01, optimizer: str = "adam",
                 schedule: str = "constant", activation: str = "tanh", rule: str = "rtrl", standardize: bool = True,
                 clip_norm: float | None = None, weight_scale: float = DEFAULT_WEIGHT_SCALE,
                 seed: int | None = None):
        self.n_hidden = n_hidden
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.schedule = schedule
        self.activation = activation
        self.rule = rule
        self.standardize = standardize
        self.clip_norm = clip_norm
        self.weight_scale = weight_scale
        self.seed = seed
        self._check_settings()
        self._names = None  # the feature names, fixed on the first sample
        self._net = None
        self._act = _EMPTY_CODES
        self._xstats = _Stats.empty(0)
        self._ystats = _Stats.empty(1)
        # (values, prediction) of the sample predict_one opened and learn_one has not closed
        self._open: tuple[np.ndarray, float] | None = None

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"n_hidden": 2, "standardize": False, "seed": 1}

    def _unit_test_skips(self):
        return set(SKIPPED_CHECKS)

    def _start(self, names) -> OnlineLearner:
        if self._net is None:
            self._net = self._new_net(len(names))
            self._names = names
            self._xstats = _Stats.empty(len(names))
        return self._net

    def _inputs(self, raw):
        """The input row for the values ``raw`` and the statistics that include them."""
        if not self.standardize or raw.size == 0:
            return raw, self._xstats
        stats = self._xstats.add(raw)
        return (raw - stats.mean) / stats.scale, stats

    def _advance(self, raw, y):
        """One step on ``raw``, learning from ``y`` (None: no target); the statistics change only on success."""
        u, xstats = self._inputs(raw)
        ystats = self._ystats
        target = None
        if y is not None:
            target = np.full(self._net.n_units, np.nan)
            if self.standardize:
                ystats = ystats.add(np.array([y]))
                mean, scale = ystats.first()
                target[0] = (y - mean) / scale
            else:
                target[0] = y
        self._net.step(u, target)  # a diverging step raises and leaves the learner as it was
        self._xstats, self._ystats = xstats, ystats

    def predict_one(self, x: dict) -> float:
        """The prediction for the sample ``x`` from the current state (opens the sample: see the call-order rule)."""
        names, raw = _read_features(x, self._names, "x")
        opened = self._open
        if opened is not None:
            if np.array_equal(opened[0], raw):
                return opened[1]
            self._advance(opened[0], None)  # predicted, never learned: one step without a target
            self._open = None
        net = self._start(names)
        u, _ = self._inputs(raw)
        out = float(net.predict(u[None, :])[0, 0])
        if self.standardize:
            mean, scale = self._ystats.first()
            out = out * scale + mean
        self._open = (raw, out)
        return out

    def learn_one(self, x: dict, y: float) -> None:
        """Advance one step on the sample ``x`` and learn from its target ``y`` (closes the open sample)."""
        names, raw = _read_features(x, self._names, "x")
        yv = _number(y, "y")
        fresh = self._net is None
        self._start(names)
        try:
            self._advance(raw, yv)
        except Exception:
            if fresh:  # the first sample was rejected: nothing is fixed yet
                self._net, self._names, self._xstats = None, None, _Stats.empty(0)
            raise
        self._open = None


# --------------------------------------------------------------------------------------- forecaster
@njit(cache=True)
def _free_run(W, y, act, buf, n0, lags, exog):
    """Run the network freely for ``exog.shape[0]`` steps, in place: step h writes the target unit's output
    into ``buf[n0 + h]`` (the modelled series, in the network's coordinates) after reading ``buf[n0 + h - k]``
    for each lag k, the exogenous row ``exog[h]``, the bias and the previous outputs (starting from ``y``).
    ``buf[:n0]`` holds the known history. The arithmetic of :func:`rtrl.kernels.forward_kernel`."""
    n, K = W.shape
    nl = lags.shape[0]
    e = exog.shape[1]
    m = nl + e
    z = np.empty(K)
    cur = y.copy()
    nxt = np.empty(n)
    for h in range(exog.shape[0]):
        p = n0 + h
        for i in range(nl):
            z[i] = buf[p - lags[i]]
        for i in range(e):
            z[nl + i] = exog[h, i]
        z[m] = 1.0
        for k in range(n):
            z[m + 1 + k] = cur[k]
        for k in range(n):
            s = 0.0
            for j in range(K):
                s += W[k, j] * z[j]
            c = act[k]
            if c == 0:
                s = 1.0 / (1.0 + np.exp(-s))
            elif c == 1:
                s = np.tanh(s)
            nxt[k] = s
        for k in range(n):
            cur[k] = nxt[k]
        buf[p] = cur[0]
    return buf


class RTRLForecaster(_Network, Forecaster):
    """A recurrent network on lagged values, as a River forecaster: ``learn_one(y, x=None)``, ``forecast(h)``.

    At every ``learn_one(y, x)`` the network takes one step: it reads the series' previous values
    at the lags ``1..lags`` and ``seasonal_lags`` (and the exogenous features ``x`` of this time
    step, if any; one input line each) and learns to output ``y``. With ``difference`` (default) it
    works on the changes ``y(t) - y(t-1)``: the lags are past changes, the output is the next change,
    added to the last value. The target unit is linear, so with the recurrent weights fixed at 0
    (``recurrent=False``) and ``n_hidden=0`` the model *is* an online linear autoregression on those
    lags (an AR model, or ARI with ``difference``); the ``n_hidden`` tanh units add a learned memory
    on top.

    ``forecast(horizon, xs)`` runs the network freely for ``horizon`` steps from its current state,
    feeding each forecast back as the next step's lag: forward passes only, on copies (the
    model is unchanged and ``forecast`` may be called any number of times). ``xs``, one dict per
    step, gives the exogenous features of the future steps (required when the model was trained with
    features). ``forecast(1)`` is what the network's next ``learn_one`` step outputs before learning
    (exactly so with ``standardize=False``; with it, ``learn_one`` standardises with statistics that
    include the new value).

    With ``standardize`` (default) the modelled series (the values, or their changes) and the
    features are standardised online (running mean and deviation, each value with the statistics
    that include it), and forecasts come back in the series' units. Lags that do not exist yet (at
    the start) read as 0 in the network's coordinates: the running mean. The network takes its
    first step at the second value. A rejected value (a NaN or non-numeric ``y``, bad features)
    changes nothing.

    Parameters
    ----------
    lags : int
        The previous values ``y(t-1), ..., y(t-lags)`` are input lines (>= 1).
    seasonal_lags : tuple of int, optional
        More lags, e.g. ``(24,)`` for ``y(t-24)`` on hourly data (the union with ``1..lags`` is
        used; each >= 1). None (default): none.
    difference : bool
        Model the changes of the series (the lags are past changes, the output the next change).
    n_hidden : int
        Hidden units besides the linear target unit.
    learning_rate : float
        The optimizer's step size.
    optimizer : str
        ``"adam"`` (default), ``"sgd"``, ``"momentum"`` or ``"rmsprop"`` (:mod:`rtrl.optim`).
    schedule : str
        Learning-rate schedule (:mod:`rtrl.optim`): ``"constant"`` (default), ``"inverse-time:1000"``, ...
    activation : str
        The hidden units' activation: ``"tanh"`` (default), ``"logistic"`` or ``"linear"``.
    rule : str
        The learning rule (``docs/rules.md``): ``"rtrl"`` (exact, default), ``"uoro"``, ``"snap-1"``, ...
    standardize : bool
        Standardise the series and the features online.
    recurrent : bool
        False fixes every recurrent weight at 0 (with ``n_hidden=0``: an online linear AR model).
    exogenous : bool
        False ignores ``x`` in ``learn_one`` and ``xs`` in ``forecast`` (a univariate model, e.g. for
        River data sets whose ``x`` holds a date, like ``AirlinePassengers``).
    clip_norm : float, optional
        Cap on the norm of each step's gradient (None: no cap).
    weight_scale : float
        Initial weights are drawn from U(-weight_scale, weight_scale).
    seed : int, optional
        Seed of the initial weights (None: a fresh draw).

    Examples
    --------
    >>> from river import datasets, evaluate, metrics
    >>> from rtrl.river import RTRLForecaster
    >>> model = RTRLForecaster(exogenous=False, seed=0)
    >>> metric = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=3)
    >>> model.n_steps, len(model.forecast(12))
    (140, 12)
    """

    def __init__(self, lags: int = 12, seasonal_lags: tuple | None = None, difference: bool = True, n_hidden: int = 4,
                 learning_rate: float = 0.01, optimizer: str = "adam", schedule: str = "constant",
                 activation: str = "tanh", rule: str = "rtrl", standardize: bool = True, recurrent: bool = True,
                 exogenous: bool = True, clip_norm: float | None = None, weight_scale: float = DEFAULT_WEIGHT_SCALE,
                 seed: int | None = None):
        self.lags = lags
        self.seasonal_lags = seasonal_lags
        self.difference = difference
        self.n_hidden = n_hidden
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.schedule = schedule
        self.activation = activation
        self.rule = rule
        self.standardize = standardize
        self.recurrent = recurrent
        self.exogenous = exogenous
        self.clip_norm = clip_norm
        self.weight_scale = weight_scale
        self.seed = seed
        _check_int(lags, "lags", 1)
        if seasonal_lags is not None and not isinstance(seasonal_lags, (tuple, list)):
            raise ValueError(f"seasonal_lags: expected None or a tuple of integers >= 1, got {seasonal_lags!r}")
        seasonal = [_check_int(s, "seasonal_lags", 1) for s in seasonal_lags or ()]
        _check_bool(difference, "difference")
        _check_bool(recurrent, "recurrent")
        _check_bool(exogenous, "exogenous")
        self._check_settings()
        self._lags = np.array(sorted(set(range(1, lags + 1)) | set(seasonal)), dtype=np.int64)
        self._depth = int(self._lags[-1])
        self._buf = np.zeros(self._depth)  # the last `depth` values of the modelled series (raw), oldest first
        self._count = 0  # values of the modelled series seen so far
        self._last: float | None = None  # the last y
        self._names = None  # the exogenous features' names, fixed on the first learn_one
        self._net = None
        self._act = _EMPTY_CODES
        self._sstats = _Stats.empty(1)  # the modelled series
        self._xstats = _Stats.empty(0)  # the exogenous features

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"lags": 2, "seasonal_lags": (4,), "difference": False, "n_hidden": 1, "seed": 1}

    def _unit_test_skips(self):
        return set(SKIPPED_CHECKS)

    @property
    def input_names(self) -> list | None:
        """What each input line of the network reads, in order (None before the first value)."""
        if self._names is None:
            return None
        kind = "dy" if self.difference else "y"
        return [f"{kind}(t-{k})" for k in self._lags.tolist()] + [f"x[{k!r}]" for k in self._names]

    def _coords(self, stats):
        """(mean, scale) of the network's coordinates for the modelled series."""
        return stats.first() if self.standardize else (0.0, 1.0)

    def _history(self, stats) -> np.ndarray:
        """The buffer of the modelled series in the network's coordinates; values not seen yet read 0."""
        mean, scale = self._coords(stats)
        hist = (self._buf - mean) / scale
        if self._count < self._depth:
            hist[:self._depth - self._count] = 0.0
        return hist

    def _exog(self, raw, stats) -> np.ndarray:
        if raw.size == 0 or not self.standardize:
            return raw
        return (raw - stats.mean) / stats.scale

    def learn_one(self, y: float, x: dict | None = None) -> None:
        """Learn the next value ``y`` of the series (with the exogenous features ``x`` of its time step)."""
        yv = _number(y, "y")
        if self.exogenous:
            try:
                names, raw = _read_features({} if x is None else x, self._names, "x")
            except TypeError as exc:
                raise TypeError(f"{exc} (a univariate model ignores x with exogenous=False)") from None
        else:
            names, raw = (), _EMPTY
        if self._net is None:
            self._net = self._new_net(len(self._lags) + len(names), recurrent=self.recurrent)
            self._names = names
            self._xstats = _Stats.empty(len(names))
        last = self._last
        s = yv if not self.difference else (None if last is None else yv - last)
        sstats = self._sstats if s is None else self._sstats.add(np.array([s]))
        xstats = self._xstats.add(raw) if raw.size else self._xstats
        if last is not None:  # a previous value: one step, learning s
            u = np.concatenate([self._history(sstats)[self._depth - self._lags], self._exog(raw, xstats)])
            target = np.full(self._net.n_units, np.nan)
            mean, scale = self._coords(sstats)
            target[0] = (s - mean) / scale
            self._net.step(u, target)  # a diverging step raises and leaves the learner as it was
        self._sstats, self._xstats = sstats, xstats
        if s is not None:
            buf = self._buf
            buf[:-1] = buf[1:]
            buf[-1] = s
            self._count += 1
        self._last = yv

    def forecast(self, horizon: int, xs: list[dict] | None = None) -> list[float]:
        """The next ``horizon`` values (a list of floats), from a free run of the network."""
        h = _check_int(horizon, "horizon", 1)
        exog = self._future(h, xs)
        if self._net is None or self._net.t == 0:
            return [0.0 if self._last is None else self._last] * h  # nothing learned yet: persistence
        depth = self._depth
        buf = np.empty(depth + h)
        buf[:depth] = self._history(self._sstats)
        net = self._net
        out = _free_run(net.W, net.y, self._act, buf, depth, self._lags, exog)[depth:]
        mean, scale = self._coords(self._sstats)
        with np.errstate(over="ignore", invalid="ignore"):
            values = out * scale + mean
            if self.difference:
                values = self._last + np.cumsum(values)
        return values.tolist()

    def _future(self, h, xs) -> np.ndarray:
        """The exogenous rows (h, features) of the future steps, in the network's coordinates (validated)."""
        if xs is not None:
            try:
                xs = list(xs)
            except TypeError:
                raise TypeError(f"xs: expected a list of {h} dicts (one per step of the horizon), "
                                f"got {type(xs).__name__}") from None
            if len(xs) != h:
                raise ValueError(f"xs: expected {h} dicts (one per step of the horizon), got {len(xs)}")
        names = self._names
        if not self.exogenous or not names:
            return np.zeros((h, 0))
        if xs is None:
            raise ValueError(f"xs: this forecaster reads the exogenous features {list(names)}; pass xs, one dict "
                             f"per step of the horizon ({h})")
        rows = np.empty((h, len(names)))
        for i, x in enumerate(xs):
            rows[i] = _read_features(x, names, f"xs[{i}]")[1]
        if self.standardize:
            rows = (rows - self._xstats.mean) / self._xstats.scale
        return rows
