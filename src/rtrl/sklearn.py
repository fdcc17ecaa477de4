"""scikit-learn estimators around :class:`rtrl.OnlineLearner`: :class:`RTRLRegressor` and :class:`RTRLClassifier`.

Needs the optional extra ``pip install 'rtrl[sklearn]'`` (scikit-learn >= 1.6; pandas for DataFrames).

The data are **one time-ordered sequence**, not a set of independent samples: row ``t`` of ``X`` is the
input ``x(t)`` of step ``t``, and ``y[t]`` is the target of the output produced after reading ``X[t]``
(``ys[t] = y(t+1)`` in the project's conventions, ``docs/conventions.md``). To forecast the next value of
a series ``s``, pass ``X = s[:-1, None]`` and ``y = s[1:]``. The network's state (its outputs, and the
learning rule's sensitivities) runs on from row to row, so the rows must not be shuffled or subsampled,
and a prediction depends on the rows before it. See ``docs/sklearn.md``.
"""

from __future__ import annotations

import numbers
from typing import Any, Self

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state as _sk_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("rtrl.sklearn needs scikit-learn >= 1.6 (the optional extra): "
                      "pip install 'rtrl[sklearn]'") from exc

from .activations import ACTIVATIONS
from .api import forward
from .learner import OnlineLearner
from .network import DEFAULT_WEIGHT_SCALE

__all__ = ["RTRLRegressor", "RTRLClassifier"]

# The settings that fix the network's structure: they are read when the learner is built, and a
# continuing call (partial_fit, or fit with warm_start=True) refuses them changed.
_STRUCTURE = ("n_hidden", "activation", "output_activation", "rule", "optimizer", "schedule")


def _is_pandas(obj) -> bool:
    return type(obj).__module__.partition(".")[0] == "pandas"


def _target_form(y):
    """How predictions should come back: ("frame", names), ("series", name) or ("array", None)."""
    if _is_pandas(y):
        if getattr(y, "ndim", None) == 2 and hasattr(y, "columns"):
            return "frame", list(y.columns)
        if getattr(y, "ndim", None) == 1 and hasattr(y, "name"):
            return "series", y.name
    return "array", None


def _row_index(X):
    """X's row labels when X is a pandas object (kept on the predictions), else None."""
    return X.index if _is_pandas(X) and hasattr(X, "index") else None


def _check_activation(value, name):
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, ACTIVATIONS))}, got {value!r}")
    return value


def _seed(random_state):
    """The learner's ``rng`` from scikit-learn's ``random_state`` (None, int, RandomState or Generator)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**32:
            raise ValueError(f"random_state: expected an integer in [0, 2**32), got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**32))
    try:
        return int(_sk_random_state(random_state).randint(2**32, dtype=np.uint64))
    except ValueError:
        raise ValueError(f"random_state: expected None, an int, a numpy.random.RandomState or a "
                         f"numpy.random.Generator, got {random_state!r}") from None


class _RTRLEstimator(BaseEstimator):
    """What the regressor and the classifier share: the learner, its targets and the passes over X."""

    # -- what a subclass provides ----------------------------------------------------------------
    def _out_activation(self) -> str:
        return _check_activation(self.output_activation, "output_activation")

    # -- building and checking -------------------------------------------------------------------
    def _structure(self) -> dict:
        return {name: getattr(self, name, None) for name in _STRUCTURE}

    def _check_params(self):
        n_hidden = self.n_hidden
        if isinstance(n_hidden, bool) or not isinstance(n_hidden, numbers.Integral) or n_hidden < 0:
            raise ValueError(f"n_hidden: expected an integer >= 0, got {n_hidden!r}")
        n_epochs = self.n_epochs
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, numbers.Integral) or n_epochs < 1:
            raise ValueError(f"n_epochs: expected an integer >= 1, got {n_epochs!r}")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start: expected a bool, got {self.warm_start!r}")
        _check_activation(self.activation, "activation")
        self._out_activation()

    def _build(self, n_features, n_outputs) -> OnlineLearner:
        activation = [self._out_activation()] * n_outputs + [self.activation] * int(self.n_hidden)
        return OnlineLearner(n_outputs + int(self.n_hidden), n_features, learning_rate=self.learning_rate,
                             rule=self.rule, activation=activation, teacher_forcing=self.teacher_forcing,
                             weight_scale=self.weight_scale, rng=_seed(self.random_state),
                             clip_norm=self.clip_norm, optimizer=self.optimizer, schedule=self.schedule)

    def _sync(self, net):
        """The settings a running learner may change (set_params between partial_fit calls takes effect)."""
        changed = [k for k, v in self._built_with_.items() if getattr(self, k, None) != v]
        if changed:
            raise ValueError(f"{', '.join(changed)}: changed since the network was built "
                             f"({', '.join(f'{k}={self._built_with_[k]!r}' for k in changed)}); the structure of a "
                             f"fitted network is fixed. Call fit (with warm_start=False) to build a new one")
        net.learning_rate = self.learning_rate
        net.clip_norm = self.clip_norm
        net.teacher_forcing = self.teacher_forcing

    def _targets(self, Y, n_units):
        """The learner's targets (T, n_units): Y on the output units, NaN (no target) on the hidden ones."""
        D = np.full((Y.shape[0], n_units), np.nan)
        D[:, :Y.shape[1]] = Y
        return D

    def _learn(self, net, X, Y, n_epochs, reset_first):
        """``n_epochs`` passes over (X, Y); each pass starts from the initial state (outputs y0, zero
        sensitivities; weights, optimizer state and step count carried on). Returns the per-pass MSE."""
        D = self._targets(Y, net.n_units)
        X = np.ascontiguousarray(X, dtype=np.float64)
        losses = []
        for epoch in range(n_epochs):
            if epoch > 0 or reset_first:
                net.reset_state()
            ys = net.partial_fit(X, D)
            losses.append(float(np.mean((ys[:, :Y.shape[1]] - Y) ** 2)))
        return losses

    def _outputs(self, X, from_start):
        """The output units' values (T, n_outputs) for X, from the current state or from the start."""
        net = self.learner_
        X = np.ascontiguousarray(X, dtype=np.float64)
        if from_start:
            ys = forward(net.W, X, activation=net.activation, y0=np.zeros(net.n_units))
        else:
            ys = net.predict(X)
        return ys[:, :self.n_outputs_]

    # -- the two ways to learn -----------------------------------------------------------------------
    def _fit(self, X, Y, form):
        self._check_params()
        continuing = bool(self.warm_start) and hasattr(self, "learner_")
        if continuing:
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(f"y: expected {self.n_outputs_} output(s) as in the earlier fit "
                                 f"(warm_start=True), got {Y.shape[1]}")
            net = self.learner_
            self._sync(net)
            before = net.state
            try:
                losses = self._learn(net, X, Y, int(self.n_epochs), reset_first=True)
            except BaseException:
                net.state = before  # a failed warm fit leaves the fitted estimator as it was
                raise
            self.loss_curve_ = self.loss_curve_ + losses
            return self
        net = self._build(X.shape[1], Y.shape[1])
        losses = self._learn(net, X, Y, int(self.n_epochs), reset_first=False)
        self.learner_ = net
        self.n_outputs_ = Y.shape[1]
        self._built_with_ = self._structure()
        self._target_form_ = form
        self.loss_curve_ = losses
        return self

    def _partial_fit(self, X, Y, form, first):
        if first:
            self._check_params()
            net = self._build(X.shape[1], Y.shape[1])
            losses = self._learn(net, X, Y, 1, reset_first=False)
            self.learner_ = net
            self.n_outputs_ = Y.shape[1]
            self._built_with_ = self._structure()
            self._target_form_ = form
            self.loss_curve_ = losses
            return self
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} output(s) as in the earlier calls, got {Y.shape[1]}")
        self._sync(self.learner_)
        self.loss_curve_ = self.loss_curve_ + self._learn(self.learner_, X, Y, 1, reset_first=False)
        return self

    # -- predictions in the form of the targets ------------------------------------------------------
    def _wrap(self, values, index):
        """``values`` (T, k) or (T,) as a DataFrame / Series with the target names when y was one."""
        kind, names = self._target_form_
        if kind in ("array", "2d"):
            return values
        import pandas as pd

        if kind == "frame":
            return pd.DataFrame(values.reshape(len(values), -1), columns=names, index=index)
        return pd.Series(values.reshape(len(values)), name=names, index=index)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False  # with an int random_state: bit for bit
        return tags


class RTRLRegressor(RegressorMixin, _RTRLEstimator):
    """A fully recurrent network trained online by RTRL, as a scikit-learn regressor for one sequence.

    The network has ``n_outputs`` output units (one per target column, activation
    ``output_activation``) and ``n_hidden`` hidden units (activation ``activation``), fully connected
    to each other and to the input lines (an :class:`rtrl.OnlineLearner` with
    ``n_units = n_outputs + n_hidden`` and ``n_inputs = n_features``). It learns in real time: at every
    step it first produces its output, then changes its weights from that step's error.

    **The data are one time-ordered sequence.** Row ``t`` of ``X`` is the input of step ``t`` and
    ``y[t]`` the target of the output produced after reading ``X[t]`` (it may use ``X[0..t]``, never
    ``X[t+1]``). To forecast a series ``s`` one step ahead, pass ``X = s[:-1, None]``, ``y = s[1:]``.
    Rows must stay in time order: shuffling or subsampling them changes what is learned.

    Parameters
    ----------
    n_hidden : int, default=8
        Number of hidden units (>= 0).
    activation : {"tanh", "logistic", "linear"}, default="tanh"
        Activation of the hidden units.
    output_activation : {"linear", "tanh", "logistic"}, default="linear"
        Activation of the output units. "linear" for real-valued targets; with "tanh" (or
        "logistic") only targets inside (-1, 1) (or (0, 1)) can be reached.
    learning_rate : float, default=1e-2
        Base step size of the optimizer (>= 0).
    optimizer : str or rtrl.optim.Optimizer, default="adam"
        "sgd" (the paper's update), "momentum", "rmsprop", "adam" or an :mod:`rtrl.optim` object.
    schedule : str or rtrl.optim.Schedule, default="constant"
        Learning-rate schedule over the steps learned: "constant", "inverse-time", "cosine", ...
    rule : str or rtrl.rules.Rule, default="rtrl"
        Learning rule: "rtrl" (exact, O(n^4) per step), or a cheaper one ("uoro", "snap-1",
        "kf-rtrl", "rflo", ..., ``docs/rules.md``).
    n_epochs : int, default=1
        Passes over the sequence in :meth:`fit`. Every pass starts from the initial state (outputs
        zero, sensitivities zero), as the sequence starts again; the weights, the optimizer's state
        and the schedule's step count carry on. :meth:`partial_fit` always makes one pass.
    clip_norm : float or None, default=None
        Cap on the norm of each step's gradient before the optimizer (None: no cap).
    weight_scale : float, default=0.1
        Initial weights are drawn from U(-weight_scale, weight_scale).
    teacher_forcing : bool, default=False
        During learning the output units feed their targets, not their outputs, into the next step
        (paper section 2.3). :meth:`predict` has no targets and always runs free.
    warm_start : bool, default=False
        If True and the estimator is fitted, :meth:`fit` continues from the current weights (and
        optimizer state) instead of building a new network; each pass still starts from the
        initial state. The structure (``n_hidden``, activations, ``rule``, ``optimizer``,
        ``schedule``) cannot change then.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator, default=None
        Randomness of the initial weights. An int gives the same weights, and the same results bit
        for bit, on every fit.

    Attributes
    ----------
    learner_ : rtrl.OnlineLearner
        The trained network; its state is the state at the end of the data learned from.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names of ``X``, when ``X`` was a DataFrame with string column names.
    n_outputs_ : int
        Number of targets (output units).
    loss_curve_ : list of float
        Mean squared error of the online outputs (each produced before learning from its target):
        one entry per pass of :meth:`fit` and per call of :meth:`partial_fit`.

    Notes
    -----
    * :meth:`fit` builds a new network (unless ``warm_start``) and learns from ``X`` from its start;
      :meth:`partial_fit` continues the same stream where the last call stopped (building the
      network on the first call) and returns ``self``. Fitting once with ``n_epochs=1`` and calling
      :meth:`partial_fit` over consecutive chunks of the same rows give the same weights, bit for bit.
      Between ``partial_fit`` calls, ``learning_rate``, ``clip_norm`` and ``teacher_forcing`` may be
      changed with :meth:`set_params`; structural settings may not.
    * :meth:`predict` continues from the state at the end of the data learned from, without changing
      anything: for a split in time (learn from the past, predict the rows that follow) pass the later
      rows. ``predict(X, from_start=True)`` runs from the initial state instead (in-sample fitted
      values of the training rows). :meth:`score` is R^2 of :meth:`predict`.
    * Predictions take the form of the targets: ``y`` 1-D gives (T,), 2-D gives (T, n_outputs); a
      pandas DataFrame ``y`` gives a DataFrame with the same column names (a Series, a Series with
      the same name), indexed by ``X``'s index when ``X`` is a pandas object.
    * NaN or inf in ``X`` or ``y`` raise ValueError (scikit-learn's validation).
    * Learning that diverges raises ValueError (lower ``learning_rate``, set ``clip_norm``, or scale the
      inputs, e.g. with :class:`sklearn.preprocessing.StandardScaler` in a pipeline).

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl.sklearn import RTRLRegressor
    >>> s = np.sin(0.3 * np.arange(400))
    >>> X, y = s[:-1, None], s[1:]            # forecast the next value
    >>> model = RTRLRegressor(n_hidden=4, random_state=0).fit(X[:300], y[:300])
    >>> model.predict(X[300:]).shape          # continues from the end of the training rows
    (99,)
    >>> bool(model.score(X[300:], y[300:]) > 0.9)
    True
    """

    def __init__(self, n_hidden: int = 8, *, activation: str = "tanh", output_activation: str = "linear",
                 learning_rate: float = 1e-2, optimizer: Any = "adam", schedule: Any = "constant", rule: Any = "rtrl",
                 n_epochs: int = 1, clip_norm: float | None = None, weight_scale: float = DEFAULT_WEIGHT_SCALE,
                 teacher_forcing: bool = False, warm_start: bool = False, random_state: Any = None) -> None:
        self.n_hidden = n_hidden
        self.activation = activation
        self.output_activation = output_activation
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.schedule = schedule
        self.rule = rule
        self.n_epochs = n_epochs
        self.clip_norm = clip_norm
        self.weight_scale = weight_scale
        self.teacher_forcing = teacher_forcing
        self.warm_start = warm_start
        self.random_state = random_state

    def _validate(self, X, y, reset):
        form = _target_form(y)
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):  # (scikit-learn checks it too; this names it whatever the version)
            raise ValueError("Input y contains NaN or infinity; every step needs a finite target")
        if form[0] == "array" and y.ndim == 2:
            form = ("2d", None)
        return X, (y[:, None] if y.ndim == 1 else y), form

    def fit(self, X: Any, y: Any) -> Self:
        """Learn from the sequence (X, y), from its start: ``n_epochs`` passes (see the class notes).

        Parameters
        ----------
        X : array-like (T, n_features)
            The inputs, one row per time step, in time order.
        y : array-like (T,) or (T, n_outputs)
            ``y[t]`` is the target of the output produced after reading ``X[t]``.

        Returns
        -------
        self
        """
        reset = not (self.warm_start and hasattr(self, "learner_"))
        X, Y, form = self._validate(X, y, reset)
        return self._fit(X, Y, form)

    def partial_fit(self, X: Any, y: Any) -> Self:
        """Continue the stream with the rows (X, y) (one pass, no reset); build the network on the first call.

        Returns
        -------
        self
        """
        first = not hasattr(self, "learner_")
        X, Y, form = self._validate(X, y, first)
        return self._partial_fit(X, Y, form, first)

    def predict(self, X: Any, *, from_start: bool = False) -> Any:
        """Outputs for the rows X, continuing from the end of the data learned from (nothing changes).

        Parameters
        ----------
        X : array-like (T, n_features)
        from_start : bool, default=False
            Run from the initial state (zero outputs) with the current weights instead, as at the
            start of :meth:`fit` (e.g. the fitted values of the training rows).

        Returns
        -------
        ndarray (T,) or (T, n_outputs), or a pandas DataFrame / Series when ``y`` was one
        """
        check_is_fitted(self)
        index = _row_index(X)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        ys = self._outputs(X, from_start)
        if self._target_form_[0] in ("array",) and self.n_outputs_ == 1:
            ys = ys[:, 0]
        return self._wrap(ys, index)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class RTRLClassifier(ClassifierMixin, _RTRLEstimator):
    """A fully recurrent network trained online by RTRL, as a scikit-learn classifier for one sequence.

    The paper's set-up: logistic output units trained on the squared error. Two classes use one
    output unit (target 1 for ``classes_[1]``, 0 for ``classes_[0]``); more classes use one unit per
    class (one-hot targets). :meth:`predict_proba` reads the outputs as probabilities (for more than
    two classes, normalised to sum to 1); :meth:`predict` takes the most probable class.

    The data are one time-ordered sequence, as for :class:`RTRLRegressor`: ``y[t]`` is the label of
    the step after reading ``X[t]``; rows must not be shuffled. The parameters, attributes and the
    meaning of :meth:`fit`, :meth:`partial_fit` and :meth:`predict` are those of
    :class:`RTRLRegressor`, except that there is no ``output_activation`` (the outputs are logistic).

    Parameters
    ----------
    n_hidden : int, default=8
        Number of hidden units (>= 0).
    activation : {"tanh", "logistic", "linear"}, default="tanh"
        Activation of the hidden units.
    learning_rate : float, default=1e-2
        Base step size of the optimizer.
    optimizer : str or rtrl.optim.Optimizer, default="adam"
        As in :class:`RTRLRegressor`.
    schedule : str or rtrl.optim.Schedule, default="constant"
        As in :class:`RTRLRegressor`.
    rule : str or rtrl.rules.Rule, default="rtrl"
        The learning rule, as in :class:`RTRLRegressor`.
    n_epochs : int, default=1
        Passes over the sequence in :meth:`fit`, each from the initial state.
    clip_norm : float or None, default=None
        Cap on the norm of each step's gradient.
    weight_scale : float, default=0.1
        Initial weights are drawn from U(-weight_scale, weight_scale).
    teacher_forcing : bool, default=False
        The output units feed their targets forward during learning.
    warm_start : bool, default=False
        :meth:`fit` continues from the fitted weights.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator, default=None
        Randomness of the initial weights.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    learner_, n_features_in_, feature_names_in_, loss_curve_
        As in :class:`RTRLRegressor`.
    n_outputs_ : int
        Number of output units: 1 for two classes, else the number of classes.

    Notes
    -----
    :meth:`partial_fit` needs ``classes`` (all the labels the stream will have) on its first call,
    as a chunk may not show them all. ``predict`` returns a pandas Series (``y``'s name, ``X``'s
    index) when ``y`` was a Series; ``predict_proba`` returns an array with one column per class of
    ``classes_``.

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl.sklearn import RTRLClassifier
    >>> x = np.random.default_rng(0).integers(0, 2, 600)
    >>> y = np.r_[0, x[:-1]]                  # the label is the previous input: needs memory
    >>> model = RTRLClassifier(n_hidden=4, random_state=0).fit(x[:500, None], y[:500])
    >>> model.predict_proba(x[500:, None]).shape
    (100, 2)
    >>> bool(model.score(x[500:, None], y[500:]) > 0.9)
    True
    """

    def __init__(self, n_hidden: int = 8, *, activation: str = "tanh", learning_rate: float = 1e-2,
                 optimizer: Any = "adam", schedule: Any = "constant", rule: Any = "rtrl", n_epochs: int = 1,
                 clip_norm: float | None = None, weight_scale: float = DEFAULT_WEIGHT_SCALE,
                 teacher_forcing: bool = False, warm_start: bool = False, random_state: Any = None) -> None:
        self.n_hidden = n_hidden
        self.activation = activation
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.schedule = schedule
        self.rule = rule
        self.n_epochs = n_epochs
        self.clip_norm = clip_norm
        self.weight_scale = weight_scale
        self.teacher_forcing = teacher_forcing
        self.warm_start = warm_start
        self.random_state = random_state

    def _out_activation(self) -> str:
        return "logistic"

    def _validate(self, X, y, reset):
        form = _target_form(y)
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float64)
        check_classification_targets(y)
        return X, y, form

    def _encode(self, y):
        """Targets (T, n_outputs) for the labels y: 0/1 for two classes, one-hot for more."""
        idx = np.searchsorted(self.classes_, y)
        bad = (idx >= len(self.classes_)) | (self.classes_[np.minimum(idx, len(self.classes_) - 1)] != y)
        if np.any(bad):
            raise ValueError(f"y: labels {np.unique(y[bad]).tolist()} are not in classes_ {self.classes_.tolist()}")
        if len(self.classes_) == 2:
            return idx[:, None].astype(np.float64)
        return np.eye(len(self.classes_))[idx]

    def _set_classes(self, classes):
        classes = np.unique(classes)
        if len(classes) < 2:
            raise ValueError(f"y: this classifier needs samples of at least 2 classes, but the data contain only "
                             f"one class: {classes.tolist()}")
        self.classes_ = classes

    def fit(self, X: Any, y: Any) -> Self:
        """Learn from the sequence (X, y), from its start: ``n_epochs`` passes (see :class:`RTRLRegressor`).

        Returns
        -------
        self
        """
        warm = self.warm_start and hasattr(self, "learner_")
        X, y, form = self._validate(X, y, not warm)
        if warm:
            return self._fit(X, self._encode(y), form)
        old = getattr(self, "classes_", None)
        self._set_classes(y)
        try:
            return self._fit(X, self._encode(y), form)
        except BaseException:
            if old is not None:
                self.classes_ = old
            raise

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Self:
        """Continue the stream with the rows (X, y) (one pass, no reset); build the network on the first call.

        Parameters
        ----------
        X : array-like (T, n_features)
        y : array-like (T,)
        classes : array-like, optional
            All the class labels; required on the first call, optional (and then equal to
            ``classes_``) afterwards.

        Returns
        -------
        self
        """
        first = not hasattr(self, "learner_")
        X, y, form = self._validate(X, y, first)
        if first:
            if classes is None:
                raise ValueError("classes: required on the first call to partial_fit (all the labels the stream "
                                 "will have, e.g. classes=np.unique(y_all))")
            self._set_classes(classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes: expected {self.classes_.tolist()} as in the first call, got "
                             f"{np.unique(classes).tolist()}")
        return self._partial_fit(X, self._encode(y), form, first)

    def predict_proba(self, X: Any, *, from_start: bool = False) -> np.ndarray:
        """Class probabilities (T, n_classes), columns in the order of ``classes_`` (see :meth:`predict`)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        out = self._outputs(X, from_start)
        if len(self.classes_) == 2:
            return np.hstack([1.0 - out, out])
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X: Any, *, from_start: bool = False) -> Any:
        """Class labels for the rows X, continuing from the end of the data learned from (nothing changes).

        ``from_start=True`` runs from the initial state instead (as in :meth:`RTRLRegressor.predict`).
        Returns an array (T,), or a pandas Series when ``y`` was one.
        """
        check_is_fitted(self)
        index = _row_index(X)
        labels = self.classes_[np.argmax(self.predict_proba(X, from_start=from_start), axis=1)]
        return self._wrap(labels, index)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags
