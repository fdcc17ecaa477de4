"""A stateful, one-step-at-a-time real-time RTRL learner for streams.

A thin wrapper over the pure functions of :mod:`rtrl.api` and the learning rules of
:mod:`rtrl.rules`: it holds a :class:`LearnerState` and replaces it after every call. Feeding a stream
step by step, in chunks, or in one pass gives exactly the same weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from ._validation import (check_memory, check_method, check_positive, check_random_state, check_real_array,
                          check_sequences)
from .activations import Activation, activation_codes, check_activation
from .api import (ENGINES, RTRLState, _check_batched_sequences, check_weight_mask, init_rule_states, resolve_rule,
                  run_rule)
from .kernels import choose_blas, forward_kernel, prepare_row, rtrl_step_inplace, step_arena_size
from .network import DEFAULT_WEIGHT_SCALE, _check_count, init_weights
from . import threads as _threads_mod
from .threads import resolve_threads, set_threads
from .optim import SGD, Constant, EmptyState, Optimizer, Schedule, apply_update, make_optimizer, make_schedule

if TYPE_CHECKING:
    from .rules.base import Rule

_NO_MASK = np.zeros(0, dtype=bool)  # stands for "no mask given" in prepare_row
_NO_FEEDBACK = np.zeros(0, dtype=np.int64)  # no input line fed back (forward_kernel)
_NO_WMASK = np.zeros((0, 0))  # fully connected (rtrl_step_inplace)
_F64 = np.dtype(np.float64)
_NAN_ROWS: dict = {}  # n -> a row of n NaN (no target), shared read-only by the step kernels
#: The messages of the kernels' row checks (status 1, 2, 3: rtrl.kernels._check_row).
_ROW_ERRORS = ("x: contains NaN or inf; inputs must be finite", "target: contains inf; use NaN for 'no target'",
               "target: NaN where mask is True")

__all__ = ["OnlineLearner", "LearnerState"]

#: What a compiled step may raise once numbers have overflowed (a division by an infinite norm's
#: reciprocal, ...): treated as divergence, like a state that became NaN or inf.
ARITHMETIC_ERRORS = (ZeroDivisionError, FloatingPointError, OverflowError)


@njit(cache=True)
def _finite_flat(a):
    acc = 0.0
    for v in a:
        acc += v * 0.0  # NaN for NaN or inf, 0 otherwise
    return acc == 0.0


def _finite(a) -> bool:
    """True if every number of the float array ``a`` is finite (one compiled pass, ~0.3 us for small arrays)."""
    return _finite_flat(a.ravel())


def _real(value, name) -> np.ndarray:
    """``value`` as a float64 array; TypeError naming ``name`` for complex numbers, text or objects."""
    if type(value) is np.ndarray and value.dtype == np.float64:
        return value
    try:
        a = np.asarray(value)
    except ValueError as exc:  # a ragged nesting of lists
        raise ValueError(f"{name}: expected an array of numbers, got a ragged sequence ({exc})") from None
    if a.dtype.kind not in "fiub":
        check_real_array(value, name)
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected an array of numbers, got {type(value).__name__} ({exc})") from None
    return a.astype(np.float64, copy=False)


def _bool_mask(value, name) -> np.ndarray:
    """A mask as booleans: bools, or numbers that are all 0 or 1."""
    a = _real(value, name) if np.asarray(value).dtype != bool else np.asarray(value)
    if a.dtype != bool:
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name}: expected booleans (or 0/1), got other values")
        a = a.astype(bool)
    return a


def _check_size(n, m, B, rule) -> None:
    """Refuse at once a network whose weights and rule state cannot fit in memory (naming the argument)."""
    K = m + 1 + n
    streams = 1 if B is None else B
    what = (f"n_units={n}, n_inputs={m}" + ("" if B is None else f", n_streams={B}"))
    if B is not None:
        per = 8 * n * K
        check_memory(per * B, "n_streams" if per <= 2**30 else ("n_units" if n >= m else "n_inputs"),
                     f"the weights of {what}", "choose fewer streams or a smaller network")
    else:
        check_memory(8 * n * K, "n_units" if n >= m else "n_inputs", f"the weights of {what}",
                     "choose a smaller network")
    try:
        numbers = int(rule.numbers(n, K))
    except Exception:  # a rule that cannot say: only the weights are checked
        return
    total = 8 * streams * (n * K + 2 * n + numbers)
    name = "n_streams" if B is not None and 8 * (n * K + 2 * n + numbers) <= 2**30 else "n_units"
    check_memory(total, name, f"the weights and the state of rule {rule.spec!r} ({numbers} numbers per stream) "
                 f"for {what}", "choose a smaller network" + (" or fewer streams" if B is not None else "")
                 + " or a rule with a smaller state (docs/rules.md)")


class LearnerState(NamedTuple):
    """The state of a learner: weights, the learning rule's state, the step count and the optimizer's state.

    ``y`` and (for the exact rules) ``P`` read through to the rule's state. ``opt_state`` is
    empty for SGD (:mod:`rtrl.optim`).
    """

    W: np.ndarray
    rule_state: Any  # the rule's NamedTuple (rtrl.rules)
    t: int
    opt_state: Any = EmptyState()  # the optimizer's NamedTuple (rtrl.optim)

    @property
    def y(self) -> np.ndarray:
        return self.rule_state.y

    @property
    def P(self) -> np.ndarray:
        try:
            return self.rule_state.P
        except AttributeError:
            raise AttributeError(f"P: this learner's rule keeps no full sensitivities (its state holds "
                                 f"{list(self.rule_state._fields)})") from None


def _checked_state(got_state: Any, template: Any, owner: str, where: str, shape_note: str) -> list:
    """A rule's or optimizer's state given by a user, checked against ``template`` (fields, shapes, finite
    numbers, counts >= 0) and copied into the template's dtypes; ValueError naming the field otherwise."""
    if not isinstance(got_state, tuple) or getattr(got_state, "_fields", None) != template._fields:
        raise ValueError(f"state: expected the state of {owner} with fields {list(template._fields)}, got "
                         f"{getattr(got_state, '_fields', type(got_state).__name__)}")
    arrays = []
    for name, want, got in zip(template._fields, template, got_state):
        check_real_array(got, where + name)
        a = np.array(got, dtype=want.dtype)
        if a.shape != want.shape:
            raise ValueError(f"state: expected {name} of shape {want.shape}{shape_note}, got {a.shape}")
        if (a.dtype.kind == "f" and not np.all(np.isfinite(a))) or (a.dtype.kind == "i" and np.any(a < 0)):
            raise ValueError(f"state: {name} contains NaN, inf or a negative count; the state must be finite")
        arrays.append(a)
    return arrays


class _Live:
    """The fast step's own buffers (see :meth:`OnlineLearner.step`): two flat copies of (W, y, P, y(t+1)
    and the optimizer's state), the current one at index ``cur``; ``dirty`` once they have moved past the
    learner's ``_state``."""

    __slots__ = ("arena", "bufs", "views", "youts", "opt_views", "work", "cur", "t", "dirty")

    def __init__(self, state: LearnerState):
        W, y, P = state.W, state.rule_state.y, state.rule_state.P
        n, K = W.shape
        nK = n * K
        self.arena = np.zeros((2, step_arena_size(n, K)))
        self.bufs = (self.arena[0], self.arena[1])
        self.views = []
        self.opt_views = []
        o = nK + n + (n + 1) * nK + n
        for a in self.arena:
            self.views.append((a[:nK].reshape(n, K), a[nK:nK + n], a[nK + n:nK + n + n * nK].reshape(n, n, K),
                               a[nK + n + (n + 1) * nK:o]))
            self.opt_views.append((a[o:o + nK].reshape(n, K), a[o + nK:o + 2 * nK].reshape(n, K),
                                   a[o + 2 * nK:o + 2 * nK + 1]))
        self.youts = (self.views[0][3], self.views[1][3])
        Wv, yv, Pv, _ = self.views[0]
        Wv[...] = W
        yv[...] = y
        Pv[...] = P
        # the optimizer's moment arrays (n, K), in field order, then its count (Adam) as a float
        arrays = [f for f in state.opt_state if np.shape(f) == (n, K)]
        for view, f in zip(self.opt_views[0][:2], arrays):
            view[...] = f
        if "count" in getattr(state.opt_state, "_fields", ()):
            self.opt_views[0][2][0] = float(state.opt_state.count)
        self.work = np.zeros((n + 1) * n + K + 4 * n)
        self.cur = 0
        self.t = state.t
        self.dirty = False

    def opt_state(self, template):
        """The optimizer's state now, as copies in the type of ``template``."""
        a, b, c = self.opt_views[self.cur]
        moments = iter((a, b))
        fields = []
        for name, f in zip(template._fields, template):
            if name == "count":
                fields.append(np.array(int(c[0]), dtype=np.int64))
            else:
                fields.append(next(moments).copy())
        return type(template)(*fields)


class OnlineLearner:
    """Real-time learning on a live stream, one step (or one chunk) at a time, with any learning rule.

    Parameters
    ----------
    n_units : int
        Number of fully connected units n.
    n_inputs : int
        Number of external input lines m (the bias line is added internally).
    learning_rate : float
        Step size alpha of the real-time update ``W -= alpha * g(t)`` after every step (the
        base rate of the optimizer and schedule below).
    optimizer : str or rtrl.optim.Optimizer
        What to do with each step's estimate g(t): "sgd" (the paper's update, the default),
        "momentum", "rmsprop", "adam", or an object such as ``rtrl.optim.Adam(beta2=0.99)``.
        Its state is part of ``state`` and of model files.
    schedule : str or rtrl.optim.Schedule
        Learning-rate schedule over the step count: "constant" (default), "inverse-time",
        "cosine" (with warm restarts), e.g. ``"cosine:5000"`` or ``rtrl.optim.CosineRestarts(...)``.
    rule : str or rtrl.rules.Rule
        The learning rule that estimates g(t) = dJ(t)/dW: "rtrl" (exact, the default),
        "hybrid", "bptt", "subgroup", "snap-1", "uoro", "kf-rtrl", "rflo", "eprop", ...
        (``rtrl.rules.list_rules()``, ``docs/rules.md``).
    activation : {"logistic", "tanh", "linear"} or a sequence of them (one per unit)
        The units' f_k; e.g. ``["linear"] + ["tanh"] * 4`` for a real-valued target on unit 0.
    teacher_forcing : bool
        Units with a target feed the target forward (paper section 2.3).
    weight_scale : float
        Initial weights are U(-weight_scale, weight_scale) (project default 0.1).
    rng : None, int or numpy.random.Generator
        Randomness for the initial weights.
    W : array (n_units, n_inputs + 1 + n_units), optional
        Initial weights; overrides ``weight_scale`` and ``rng``.
    y0 : array (n_units,), optional
        Initial outputs (zeros by default).
    engine : {"numba", "numpy", "jax"}
    clip_norm : float, optional
        Cap on the Frobenius norm of each per-step gradient before it is applied (None: no cap).
    n_streams : int, optional
        Run B = ``n_streams`` independent networks side by side (batched streams, one set of
        settings): W (B, n, K) (each stream drawn in turn from ``rng``, or given), ``step`` takes
        x (B, m) and target (B, n) and returns (B, n), ``partial_fit`` takes xs (B, T, m).
        Each stream is exactly what it would be alone. None (default): one stream, no batch axis.
    weight_mask : bool array (n_units, n_inputs + 1 + n_units), optional
        Connectivity: weights where it is False are set to 0 and stay 0 (a sparse network).
    threads : int, optional
        Threads for the compiled loops and BLAS while this learner computes (:mod:`rtrl.threads`;
        process-wide, set when one of its calls runs). None (default): the setting in force (the
        cores available, or ``RTRL_NUM_THREADS``). Results do not depend on it beyond rounding.

    Attributes
    ----------
    state : LearnerState
        Weights W (n, K), the rule's state (outputs y (n,), and e.g. sensitivities P (n, n, K)
        for the exact rules) and step count t (with a leading axis B for batched streams).
    learning_rate, clip_norm : validated on assignment (a bad value raises and changes nothing).

    Examples
    --------
    >>> import rtrl
    >>> net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    >>> y = net.step([1.0, 0.0], target=[0.5, float("nan"), float("nan")])
    >>> y.shape, net.t
    ((3,), 1)
    >>> rtrl.OnlineLearner(3, 2, learning_rate=0.1, rule="uoro", rng=0).rule.name
    'uoro'
    """

    _state: LearnerState

    def __init__(self, n_units: int, n_inputs: int, *, learning_rate: float, rule: "str | Rule" = "rtrl",
                 activation: Activation = "logistic", teacher_forcing: bool = False,
                 weight_scale: float = DEFAULT_WEIGHT_SCALE, rng: Any = None, W: ArrayLike | None = None,
                 y0: ArrayLike | None = None, engine: str = "numba", clip_norm: float | None = None,
                 n_streams: int | None = None, weight_mask: ArrayLike | None = None,
                 optimizer: "str | Optimizer" = "sgd", schedule: "str | Schedule" = "constant",
                 threads: int | None = None) -> None:
        self.threads = threads
        self._live: _Live | None = None  # the fast step's buffers, while it is in use
        # the fast step's settings (rtrl_step_inplace's params), rebuilt after a setting changes
        self._params: np.ndarray | None = None
        self._optimizer = make_optimizer(optimizer)
        self.schedule = schedule
        self._stale = False  # forward-only steps since the last learning step: the rule's state restarts
        self.learning_rate = learning_rate
        self.clip_norm = clip_norm
        self.activation = activation
        self.teacher_forcing = teacher_forcing
        self._rule = resolve_rule(rule)
        self.engine = engine
        n_units = _check_count(n_units, "n_units", 1)
        n_inputs = _check_count(n_inputs, "n_inputs", 0)
        if n_streams is not None and (isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer))
                                      or n_streams < 1):
            raise ValueError(f"n_streams: expected None or an integer >= 1, got {n_streams!r}")
        batch = () if n_streams is None else (int(n_streams),)
        _check_size(n_units, n_inputs, batch[0] if batch else None, self._rule)
        if W is None:
            try:
                if batch:
                    rng = check_random_state(rng)
                    W = np.stack([init_weights(n_units, n_inputs, scale=weight_scale, rng=rng)
                                  for _ in range(batch[0])])
                else:
                    W = init_weights(n_units, n_inputs, scale=weight_scale, rng=rng)
            except MemoryError:
                raise MemoryError(f"n_units: the weights of n_units={n_units}, n_inputs={n_inputs}"
                                  + ("" if not batch else f", n_streams={batch[0]}") + " do not fit in the memory "
                                  "free now; choose a smaller network or free memory") from None
        check_real_array(W, "W")
        try:
            W = np.array(W, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"W: expected an array of numbers, got {type(W).__name__} ({exc})") from None
        if W.shape != batch + (n_units, n_inputs + 1 + n_units):
            lead = f"(n_streams, n_units, n_inputs + 1 + n_units) = ({batch[0]}, " if batch else \
                "(n_units, n_inputs + 1 + n_units) = ("
            raise ValueError(f"W: expected shape {lead}{n_units}, {n_inputs + 1 + n_units}), got {W.shape}")
        if y0 is not None:
            check_real_array(y0, "y0")
        Wv: np.ndarray
        if batch:
            Wv, _, _, _, y = _check_batched_sequences(W, np.zeros((batch[0], 0, n_inputs)), None, None, y0,
                                                      require_targets=False)
        else:
            seq = check_sequences(W, np.zeros((0, n_inputs)), None, None, y0, require_targets=False)
            Wv, y = seq.W.copy(), seq.y0
        self._rule.check(n_units, n_inputs + 1 + n_units)
        self._wmask = check_weight_mask(weight_mask, Wv.shape)
        self._wm_arg = _NO_WMASK if self._wmask is None else self._wmask  # (the fast step's argument)
        if self._wmask is not None:
            Wv = Wv * self._wmask
        self._y0 = y.copy()
        try:
            rule_state = init_rule_states(self._rule, Wv, y, self._wmask)
        except MemoryError:
            raise MemoryError(f"n_units: the state of rule {self._rule.spec!r} for n_units={n_units}, n_inputs="
                              f"{n_inputs}" + ("" if not batch else f", n_streams={batch[0]}") + " does not fit in "
                              "the memory free now; choose a smaller network or free memory") from None
        self._shape = Wv.shape
        self._xshape = (n_inputs,)  # (the fast step's checks)
        self._dshape = (n_units,)
        self._update_fast()
        self.state = LearnerState(Wv, rule_state, 0, self._optimizer.init(Wv))
        self.activation = activation  # now checked against n_units

    # -- validated settings ----------------------------------------------------------------------
    # Every setting that can change after construction is checked on assignment (a bad value
    # raises and changes nothing), so a learner never holds a setting that save() would write
    # and load() would refuse.
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = check_positive(value, "learning_rate", allow_zero=True)
        self._params = None

    @property
    def clip_norm(self) -> float | None:
        return self._clip_norm

    @clip_norm.setter
    def clip_norm(self, value: float | None) -> None:
        self._clip_norm = None if value is None else check_positive(value, "clip_norm")
        self._params = None

    @property
    def activation(self) -> str | tuple[str, ...]:
        """One name for every unit, or a tuple of one name per unit."""
        return self._activation

    @activation.setter
    def activation(self, value: Activation) -> None:
        n = self.n_units if hasattr(self, "_shape") else None  # (the constructor sets it again once n is known)
        act = check_activation(value, n)
        self._act_codes = np.zeros(0, np.int64) if n is None else activation_codes(act, n)
        self._activation = act

    @property
    def teacher_forcing(self) -> bool:
        return self._teacher_forcing

    @teacher_forcing.setter
    def teacher_forcing(self, value: bool) -> None:
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
            self._teacher_forcing = bool(value)
            self._params = None
        else:
            raise TypeError(f"teacher_forcing: expected a bool, got {value!r}")

    @property
    def engine(self) -> str:
        return self._engine

    @engine.setter
    def engine(self, value: str) -> None:
        check_method(value, ENGINES, "engine")
        if self._rule.name == "hybrid" and value == "numpy":
            raise ValueError("rule 'hybrid' runs on a compiled engine only: engine='numba' or 'jax'")
        if value == "jax" and not hasattr(self._rule, "run_jax"):
            from .rules.base import REGISTRY

            have = sorted(name for name, cls in REGISTRY.items() if hasattr(cls, "run_jax"))
            raise ValueError(f"engine: rule {self._rule.name!r} has no loop for engine 'jax' (the rules with one: "
                             f"{have}); use engine='numba' or 'numpy'")
        self._engine = value
        self._update_fast()

    @property
    def threads(self) -> int | None:
        """Threads this learner's calls use (None: the process's setting); validated on assignment."""
        return self._threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._threads = None if value is None else resolve_threads(value)

    def _use_threads(self) -> None:
        if self._threads is not None and _threads_mod._current != self._threads:
            set_threads(self._threads)

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer (read-only: its state lives in ``state``; build a new learner to change it)."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value: Any) -> None:
        raise AttributeError("optimizer: read-only (its state was built for optimizer "
                             f"{self._optimizer.name!r}); build a new OnlineLearner(..., optimizer=...) to change it")

    @property
    def schedule(self) -> Schedule:
        """The learning-rate schedule (:mod:`rtrl.optim`); may be replaced at any time."""
        return self._schedule

    @schedule.setter
    def schedule(self, value: "str | Schedule") -> None:
        self._schedule = make_schedule(value)
        self._scheduled = type(self._schedule) is not Constant
        self._params = None
        if hasattr(self, "_rule"):
            self._update_fast()

    @property
    def _fused(self) -> bool:
        """SGD at a constant rate: the update stays fused in the rule's compiled loop."""
        return type(self._optimizer) is SGD and type(self._schedule) is Constant

    @property
    def rule(self) -> "Rule":
        """The learning rule (read-only: its state lives in ``state``; build a new learner to change it)."""
        return self._rule

    @rule.setter
    def rule(self, value: Any) -> None:
        raise AttributeError("rule: read-only (the state was built for rule "
                             f"{self._rule.spec!r}); build a new OnlineLearner(..., rule=...) to change it")

    def __getstate__(self) -> dict:
        """For pickle and copy: the state as a plain LearnerState (the fast step's buffers are not copied;
        a copy starts its own from it, so it continues exactly like the original)."""
        self.state  # commits the fast step's buffers into _state  # noqa: B018
        d = self.__dict__.copy()
        d["_live"] = None
        return d

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)

    # -- the state ------------------------------------------------------------------------------
    @property
    def state(self) -> LearnerState:
        """The whole state (:class:`LearnerState`). Its arrays are never changed in place by the learner:
        a state read once stays what it was (a snapshot), whatever the learner does next."""
        live = self._live
        if live is not None and live.dirty:
            Wv, yv, Pv, _ = live.views[live.cur]
            base: LearnerState = self._state
            self._state = LearnerState(Wv.copy(), base.rule_state._replace(y=yv.copy(), P=Pv.copy()), live.t,
                                       live.opt_state(base.opt_state))
            live.dirty = False
        return self._state

    @state.setter
    def state(self, value: LearnerState) -> None:
        self._state = value
        self._live = None  # the fast step starts again from this state

    # -- views of the state (copies while the fast step runs: never aliased to what changes) -------
    @property
    def W(self) -> np.ndarray:
        live = self._live
        if live is not None and live.dirty:
            return live.views[live.cur][0].copy()
        return self._state.W

    @property
    def y(self) -> np.ndarray:
        live = self._live
        if live is not None and live.dirty:
            return live.views[live.cur][1].copy()
        return self._state.y

    @property
    def P(self) -> np.ndarray:
        """The full sensitivities P (n, n, K) of the exact rules (AttributeError for the others)."""
        return self.state.P

    @property
    def rule_state(self) -> Any:
        return self.state.rule_state

    @property
    def t(self) -> int:
        live = self._live
        return live.t if live is not None else self._state.t

    @property
    def n_units(self) -> int:
        return self._shape[-2]

    @property
    def n_inputs(self) -> int:
        return self._shape[-1] - 1 - self._shape[-2]

    @property
    def n_streams(self) -> int | None:
        """B for batched streams, None for a single stream."""
        return self._shape[0] if len(self._shape) == 3 else None

    @property
    def weight_mask(self) -> np.ndarray | None:
        """The connectivity mask (n, K) as booleans, or None for the fully connected network."""
        return None if self._wmask is None else self._wmask.astype(bool)

    def config(self) -> dict:
        """The learner's settings (everything but the state), as plain JSON-able values."""
        return {"n_units": self.n_units, "n_inputs": self.n_inputs, "learning_rate": self.learning_rate,
                "activation": self.activation if isinstance(self.activation, str) else list(self.activation),
                "teacher_forcing": self.teacher_forcing, "engine": self.engine,
                "clip_norm": self.clip_norm, "n_streams": self.n_streams, "threads": self.threads,
                "rule": {"name": self.rule.name, "options": self.rule.options()},
                "optimizer": {"name": self.optimizer.name, "options": self.optimizer.options()},
                "schedule": {"name": self.schedule.name, "options": self.schedule.options()}}

    # -- learning -----------------------------------------------------------------------------
    def step(self, x: ArrayLike, target: ArrayLike | None = None, mask: ArrayLike | None = None) -> np.ndarray:
        """Consume one input row x (m,), learn from ``target`` (n,) and return y(t+1) (n,).

        ``target`` may hold NaN for units without a target; ``None`` means no target at all.
        The state is unchanged if the arguments are rejected. Batched streams: x (B, m),
        target and mask (B, n), returns (B, n).
        """
        if self._threads is not None and _threads_mod._current != self._threads:
            set_threads(self._threads)
        if self._fast:
            return self._fast_step(x, target, mask)
        if self.n_streams is not None:
            xs = _real(x, "x")
            if xs.shape != (self.n_streams, self.n_inputs):
                raise ValueError(f"x: expected shape (n_streams, n_inputs) = ({self.n_streams}, {self.n_inputs}), "
                                 f"got {xs.shape}")
            add_axis = (lambda a: None if a is None else np.asarray(a)[:, None] if np.ndim(a) else a)  # noqa: E731
            return self.partial_fit(xs[:, None], add_axis(target), add_axis(mask))[:, 0]
        n = self.n_units
        x, d, mk_in = self._row_args(x, target, mask)
        ds = np.empty((1, n))
        mk = np.empty((1, n), dtype=bool)
        status = prepare_row(x, d, mk_in, mask is not None, ds, mk)
        if status:
            raise ValueError(_ROW_ERRORS[status - 1])
        before = self.state
        try:
            ys = self._step_checked(x[None, :], ds, mk)
        except ARITHMETIC_ERRORS:  # a rule's kernel dividing by an overflowed norm: divergence too
            self._diverged(before)
        if not _finite(self.state.W):  # NOTE: the weights only, one dot product: the per-step cost stays small
            self._diverged(before)
        return ys[0]

    def _update_fast(self) -> None:
        """Whether :meth:`step` takes the fast step: exact RTRL with SGD at a constant rate, compiled,
        one stream (recomputed whenever one of these settings changes)."""
        self._fast = (hasattr(self, "_shape") and len(self._shape) == 2 and self._rule.name == "rtrl"
                      and self._engine == "numba" and not self._stale)

    def _row_args(self, x, target, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row's arguments of :meth:`step` as the kernels take them: x (m,) and d (n,) float64 (NaN: no
        target; a shared NaN row for ``target=None``), the mask (n,) bool or empty; errors name the argument.
        (Values are checked by the kernels: see ``_ROW_ERRORS``.)"""
        if type(x) is not np.ndarray or x.dtype != _F64:
            x = _real(x, "x")
        if x.shape != self._xshape:
            raise ValueError(f"x: expected shape (n_inputs,) = ({self.n_inputs},), got {x.shape}")
        if target is None:
            if mask is not None:
                raise ValueError("mask: given without target; pass target as well")
            n = self._shape[-2]
            d = _NAN_ROWS.get(n)
            if d is None:
                d = _NAN_ROWS.setdefault(n, np.full(n, np.nan))
        else:
            d = target if type(target) is np.ndarray and target.dtype == _F64 else _real(target, "target")
            if d.shape != self._dshape:
                raise ValueError(f"target: expected shape (n_units,) = ({self.n_units},), got {d.shape} (NaN for no "
                                 "target)")
        if mask is None:
            return x, d, _NO_MASK
        mk = _bool_mask(mask, "mask")
        if mk.shape != self._dshape:
            raise ValueError(f"mask: expected shape (n_units,) = ({self.n_units},), got {mk.shape}")
        return x, d, mk

    def _fast_step(self, x, target, mask) -> np.ndarray:
        """:meth:`step` in one compiled call on the learner's own double buffers (``_Live``).

        NOTE: the issue's goal, a step from Python at little more than its arithmetic: at n = 8 the
        arithmetic is ~1 us, and passing arrays into and out of a compiled function costs ~0.1 us per
        argument and ~0.25 us per array returned, so the new state is written into the second buffer
        and committed by switching buffers (the old one stays intact until then: a rejected row or a
        diverged step changes nothing). ``state``, ``W``, ``y`` and ``P`` hand out copies.
        """
        x, d, mk = self._row_args(x, target, mask)
        live = self._live
        if live is None:
            live = self._live = _Live(self._state)
        params = self._params
        if params is None:
            params = self._live_params()
        if self._scheduled:
            params[0] = self._learning_rate * self._schedule.factor(live.t)
        cur = live.cur
        bufs = live.bufs
        status = rtrl_step_inplace(bufs[cur], bufs[1 - cur], x, d, mk, params, self._act_codes, self._wm_arg,
                                   live.work)
        if status:
            if status == 4:
                self._diverged_at(live.t + 1)
            raise ValueError(_ROW_ERRORS[status - 1])
        live.cur = 1 - cur
        live.t += 1
        live.dirty = True
        return live.youts[1 - cur].copy()

    def _live_params(self) -> np.ndarray:
        opt = self._optimizer
        params = self._params = np.array([self._learning_rate, self._clip_norm or 0.0,
                                          1.0 if self._teacher_forcing else 0.0,
                                 1.0 if choose_blas(self._shape[-2], getattr(self._rule, "kernel", "auto")) else 0.0,
                                 opt.code, *opt.hyper()])
        return params

    def _run_live(self, xs, ds, mask) -> np.ndarray:
        """A chunk through the fast step's kernel, one call per step (exact RTRL with an optimizer or schedule:
        the same arithmetic as :meth:`step`, bit for bit). Raises FloatingPointError on divergence (the caller
        rolls back to its snapshot)."""
        live = self._live
        if live is None:
            live = self._live = _Live(self._state)
        params = self._params if self._params is not None else self._live_params()
        scheduled = self._scheduled
        act, work, bufs, wm = self._act_codes, live.work, live.bufs, self._wm_arg
        T = xs.shape[0]
        ys = np.empty((T, self.n_units))
        for t in range(T):
            if scheduled:
                params[0] = self._learning_rate * self._schedule.factor(live.t)
            cur = live.cur
            status = rtrl_step_inplace(bufs[cur], bufs[1 - cur], xs[t], ds[t], mask[t], params, act, wm, work)
            if status:
                raise FloatingPointError("the weights became NaN or inf")  # (rows are validated: 4 only)
            live.cur = 1 - cur
            live.t += 1
            live.dirty = True
            ys[t] = live.views[1 - cur][3]
        return ys

    def _run_checked(self, xs, ds, mask) -> np.ndarray:
        """Advance over already validated arrays xs (T, m), ds (T, n) (0 where no target), mask (T, n)."""
        self._use_threads()
        self._refresh()
        if not self._fused:
            if self._fast:
                return self._run_live(np.ascontiguousarray(xs), np.ascontiguousarray(ds), np.ascontiguousarray(mask))
            return self._run_stepwise(xs, ds, mask)
        s = self.state
        W, rs, ys, _ = run_rule(self.rule, self.engine, s.W, s.rule_state, xs, ds, mask, lr=self.learning_rate,
                                activation=self.activation, teacher_forcing=self.teacher_forcing,
                                clip=0.0 if self.clip_norm is None else self.clip_norm, wmask=self._wmask)
        self.state = LearnerState(W, rs, s.t + xs.shape[-2], s.opt_state)
        return ys

    def _run_stepwise(self, xs, ds, mask) -> np.ndarray:
        """Any optimizer or schedule: the rule runs one step at a time with its own update off (lr = 0),
        and the optimizer applies each step's (masked, clipped) estimate. A step without any target is
        no update (as in the fused loops). Works on copies: ``self.state`` is replaced at the end."""
        s = self.state
        W = s.W.copy()
        opt_state = type(s.opt_state)(*(np.array(a, copy=True) for a in s.opt_state))
        rs = s.rule_state
        T = xs.shape[-2]
        ys = np.empty(xs.shape[:-1] + (self.n_units,))
        clip = 0.0 if self.clip_norm is None else self.clip_norm
        batched = W.ndim == 3
        direct = self.engine == "numba" and not batched  # (as in _step_checked: arrays already of the kernel's kind)
        if direct:
            xs, ds, mask = (np.ascontiguousarray(a) for a in (xs, ds, mask))
        for t in range(T):
            sl = slice(t, t + 1)
            if direct:
                try:
                    _, rs, y_t, g = self.rule.run_compiled(W, rs, xs[sl], ds[sl], mask[sl], 0.0, self._act_codes,
                                                           self._teacher_forcing, 0.0, self._wmask)
                except ZeroDivisionError:
                    raise FloatingPointError("a norm in the rule's estimate overflowed") from None
            else:
                _, rs, y_t, g = run_rule(self.rule, self.engine, W, rs, xs[..., sl, :], ds[..., sl, :],
                                         mask[..., sl, :], lr=0.0, activation=self.activation,
                                         teacher_forcing=self.teacher_forcing, clip=0.0, wmask=self._wmask)
            ys[..., t, :] = y_t[..., 0, :]
            lr_t = self._learning_rate * self._schedule.factor(s.t + t)
            for b in range(W.shape[0]) if batched else (None,):
                has = mask[b, t] if batched else mask[t]
                if not has.any():
                    continue
                gb = np.ascontiguousarray(g[b] if batched else g, dtype=np.float64)
                if batched:
                    # stream b's view of the (copied) state: its moments change in place; a per-stream
                    # counter (B,) comes back as a 0-d array and is stored into its slot
                    sb = type(opt_state)(*(a[b] if np.ndim(a) else a for a in opt_state))
                    new = apply_update(self._optimizer, W[b], gb, sb, lr_t, clip)
                    for a, nb in zip(opt_state, new):
                        if np.ndim(a) == 1:
                            a[b] = nb
                else:
                    opt_state = apply_update(self._optimizer, W, gb, opt_state, lr_t, clip)
        self.state = LearnerState(W, rs, s.t + T, opt_state)
        return ys

    def _refresh(self) -> None:
        """After forward-only steps: the rule's state restarts from the current outputs (see :meth:`forward`)."""
        if self._stale:
            s = self.state
            self.state = s._replace(rule_state=init_rule_states(self.rule, s.W, s.y.copy(), self._wmask))
            self._stale = False
            self._update_fast()

    # -- inference ---------------------------------------------------------------------------
    def _forward_arrays(self, xs, fb_in, fb_unit) -> np.ndarray:
        W, y = self.state.W, self.state.y
        if W.ndim == 3:
            return np.stack([forward_kernel(W[b], y[b], xs[b], self._act_codes, fb_in, fb_unit)
                             for b in range(W.shape[0])])
        return forward_kernel(W, y, xs, self._act_codes, fb_in, fb_unit)

    def _check_xs(self, xs, name="xs") -> np.ndarray:
        lead = () if self.n_streams is None else (self.n_streams,)
        a = _real(xs, name)
        if a.ndim == len(lead) + 1 and a.shape[:len(lead)] == lead and self.n_inputs == 0:
            a = a.reshape(lead + (a.shape[-1], 0))
        if a.ndim != len(lead) + 2 or a.shape[:len(lead)] != lead or a.shape[-1] != self.n_inputs:
            want = ", ".join(["n_streams"] * bool(lead) + ["T", "n_inputs"])
            got_lead = f"{self.n_streams}, " if lead else ""
            raise ValueError(f"{name}: expected shape ({want}) = ({got_lead}T, {self.n_inputs}), got {a.shape}")
        if not _finite(a):
            raise ValueError(f"{name}: contains NaN or inf; inputs must be finite")
        return np.ascontiguousarray(a)

    def predict(self, xs: ArrayLike) -> np.ndarray:
        """Outputs ys (T, n) for inputs xs (T, m), continuing from the current state, without learning.

        Costs O(n K) per step (no sensitivities) and changes nothing: the learner is as before,
        so ``predict`` may be called any number of times (a what-if). To move the network on
        without learning, use :meth:`forward`. Batched streams: xs (B, T, m) -> (B, T, n).
        """
        xs = self._check_xs(xs)
        return self._forward_arrays(xs, _NO_FEEDBACK, _NO_FEEDBACK)

    def forward(self, xs: ArrayLike) -> np.ndarray:
        """Consume xs (T, m) without learning: the outputs and step count move on, the weights stay.

        Costs O(n K) per step, like :meth:`predict` (serving a trained model at forward speed).
        The learning rule's state (e.g. the sensitivities P) is not carried through these steps;
        when learning resumes it restarts from the current outputs with zero sensitivities, as at
        the start of a stream. Returns ys (T, n).
        """
        xs = self._check_xs(xs)
        ys = self._forward_arrays(xs, _NO_FEEDBACK, _NO_FEEDBACK)
        if xs.shape[-2]:
            s = self.state
            y_new = np.ascontiguousarray(ys[..., -1, :])
            self.state = s._replace(rule_state=s.rule_state._replace(y=y_new), t=s.t + xs.shape[-2])
            self._stale = True
            self._update_fast()
        return ys

    def generate(self, steps: int, feedback: "Mapping[int, int] | Callable[[np.ndarray], ArrayLike] | None" = None,
                 xs: ArrayLike | None = None) -> np.ndarray:
        """Run the network freely for ``steps`` steps from the current state; return ys (steps, n).

        ``feedback`` says what feeds the input lines: a mapping ``{input_line: unit}`` (input line
        ``i`` reads unit ``k``'s output of the previous step, e.g. ``{0: 0}`` for a forecaster
        whose unit 0 predicts its own next input), a callable ``f(y) -> x`` (any map from the
        outputs y(t) (n,) to the whole input row x(t) (m,)), or None (inputs from ``xs`` only).
        ``xs`` (steps, m) gives the inputs not fed back (zeros if None). Costs O(n K) per step; the
        learner itself is unchanged. Single stream only.
        """
        if self.n_streams is not None:
            raise ValueError("generate: runs a single stream; index the batched state, or use predict()")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
        m, n = self.n_inputs, self.n_units
        check_memory(8 * int(steps) * (n + (m if xs is None else 0)), "steps",
                     f"the outputs of {steps} generated steps", "generate fewer steps at a time (the state is "
                     "unchanged: call generate on a copy advanced with forward() to continue)")
        given_xs = xs is not None
        xs = np.zeros((int(steps), m)) if xs is None else self._check_xs(xs)
        if xs.shape[0] != steps:
            raise ValueError(f"xs: expected {steps} rows (one per step), got {xs.shape[0]}")
        if callable(feedback):
            if given_xs:
                raise ValueError("xs: not used with a callable feedback (it returns the whole input row); "
                                 "leave xs out, or pass feedback as a mapping {input_line: unit}")
            W, y = self.state.W, self.state.y.copy()
            ys = np.empty((int(steps), n))
            for t in range(int(steps)):
                x = _real(feedback(y.copy()), "feedback(y)")
                if x.shape != (m,) or not _finite(x):
                    raise ValueError(f"feedback(y): expected {m} finite inputs (n_inputs,), got {x.shape} "
                                     f"{'with NaN or inf' if x.shape == (m,) else ''}".rstrip())
                y = forward_kernel(W, y, x[None, :], self._act_codes, _NO_FEEDBACK, _NO_FEEDBACK)[0]
                ys[t] = y
            return ys
        if feedback is None:
            fb_in = fb_unit = _NO_FEEDBACK
        else:
            try:
                pairs = sorted(dict(feedback).items())
            except (TypeError, ValueError):
                raise TypeError(f"feedback: expected a mapping {{input_line: unit}}, a callable or None, "
                                f"got {type(feedback).__name__}") from None
            for i, k in pairs:
                for v, what, hi in ((i, "input line", m), (k, "unit", n)):
                    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < hi:
                        raise ValueError(f"feedback: {what} {v!r} out of range; expected an integer in [0, {hi})")
            fb_in = np.array([i for i, _ in pairs], dtype=np.int64)
            fb_unit = np.array([k for _, k in pairs], dtype=np.int64)
        return forward_kernel(self.state.W, self.state.y, xs, self._act_codes, fb_in, fb_unit)

    def _step_checked(self, xs, ds, mask) -> np.ndarray:
        """One step from already validated arrays xs (1, m), ds (1, n) (0 where no target), mask (1, n).

        The fast path of :meth:`step` for callers that validated the row themselves (the
        stream command); returns ys (1, n).
        """
        s = self.state
        if self.engine == "numba" and s.W.ndim == 2 and self._fused and not self._stale:
            # (the learner's arrays are float64: every rule has it)
            # NOTE: the per-call fast path (issue: one step from Python should cost little more than
            # the kernel): the state is already contiguous and of the kernel's type, so the compiled
            # loop is called directly, with the same arguments Rule.run would pass.
            W, rs, ys, _ = self.rule.run_compiled(s.W, s.rule_state, xs, ds, mask, self._learning_rate,
                                                  self._act_codes, self.teacher_forcing,
                                                  0.0 if self._clip_norm is None else self._clip_norm, self._wmask)
            self.state = LearnerState(W, rs, s.t + 1, s.opt_state)
            return ys
        return self._run_checked(xs, ds, mask)

    def partial_fit(self, xs: ArrayLike, targets: ArrayLike | None = None,
                    mask: ArrayLike | None = None) -> np.ndarray:
        """Consume a chunk xs (T, m) with targets (T, n); return the outputs ys (T, n).

        Batched streams: xs (B, T, m), targets and mask (B, T, n), returns (B, T, n).
        Equivalent to T calls of :meth:`step`, and to one pass over the concatenated stream.
        """
        if self.teacher_forcing and targets is None:
            raise ValueError("teacher_forcing: needs targets; pass targets or teacher_forcing=False")
        if self.n_streams is not None:
            _, xv, dv, mv, _ = _check_batched_sequences(self.W, xs, targets, mask, self.y, require_targets=False)
        else:
            seq = check_sequences(self.W, xs, targets, mask, self.y, require_targets=False)
            xv, dv, mv = seq.xs, seq.ds, seq.mask
        before = self.state
        try:
            ys = self._run_checked(xv, dv, mv)
        except ARITHMETIC_ERRORS:  # a rule's kernel dividing by an overflowed norm: divergence too
            self._diverged(before)
        st = self.state
        if not (_finite(st.W) and all(_finite(a) for a in st.rule_state if a.dtype.kind == "f")):
            self._diverged(before)
        return ys

    def _diverged(self, before):
        """Roll back to ``before`` and raise: the state became NaN or inf (never returned silently)."""
        t = self.state.t
        self.state = before
        self._diverged_at(t)

    def _diverged_at(self, t):
        lr = self.learning_rate
        raise ValueError(f"learning_rate: training diverged by step {t} (the weights or the rule's state became "
                         f"NaN or inf); the learner keeps its state from before this call. Lower the learning rate "
                         f"(now {lr:g}; try {lr / 10:g}), set clip_norm, or scale the inputs to order 1")

    # -- model files ---------------------------------------------------------------------------
    @classmethod
    def from_state(cls, state: "LearnerState | RTRLState", *, learning_rate: float, rule: "str | Rule" = "rtrl",
                   activation: Activation = "logistic", teacher_forcing: bool = False, y0: ArrayLike | None = None,
                   engine: str = "numba", clip_norm: float | None = None, weight_mask: ArrayLike | None = None,
                   optimizer: "str | Optimizer" = "sgd", schedule: "str | Schedule" = "constant") -> "OnlineLearner":
        """A learner that continues from ``state``, e.g. one read from a file.

        ``state`` is a :class:`LearnerState` (W, rule_state, t) of the given rule, or for the
        exact rules an :class:`~rtrl.api.RTRLState` (W, y, P, t). Arrays are copied as they are
        (sensitivities are not reset); ``y0`` (zeros by default) is only used by
        :meth:`reset_state`. Other arguments as in the constructor.
        """
        if isinstance(state, RTRLState):
            from .rules.rtrl import SensitivityState

            state = LearnerState(state.W, SensitivityState(state.y, state.P), state.t)
        if not isinstance(state, LearnerState):
            raise TypeError(f"state: expected an RTRLState or a LearnerState, got {type(state).__name__}")
        W = _real(state.W, "state.W")
        if W.ndim not in (2, 3) or W.shape[-1] < W.shape[-2] + 1:
            raise ValueError(f"state.W: expected shape ([n_streams,] n_units, n_inputs + 1 + n_units), got {W.shape}")
        batch = W.shape[:-2]
        n, K = W.shape[-2:]
        net = cls(n, K - 1 - n, learning_rate=learning_rate, rule=rule, activation=activation,
                  teacher_forcing=teacher_forcing, W=W, y0=y0, engine=engine, clip_norm=clip_norm,
                  n_streams=batch[0] if batch else None, weight_mask=weight_mask, optimizer=optimizer,
                  schedule=schedule)
        template = net.state.rule_state
        arrays = _checked_state(state.rule_state, template, f"rule {net.rule.spec!r}", "state.", f" for W {W.shape}")
        t = state.t
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"state.t: expected an integer >= 0, got {t!r}")
        opt_template = net.state.opt_state
        os_ = state.opt_state
        if len(os_) == 0 and len(opt_template):
            os_ = opt_template  # a state without the optimizer's: it starts afresh
        opt_arrays = _checked_state(os_, opt_template, f"optimizer {net.optimizer.name!r}", "state.opt_state.", "")
        net.state = LearnerState(net.state.W, type(template)(*arrays), int(t), type(opt_template)(*opt_arrays))
        return net

    def save(self, path: "str | os.PathLike[str]", *, extra: dict | None = None) -> None:
        """Write the whole state and settings to ``path`` atomically (see :func:`rtrl.io.save`).

        Read it back with :func:`rtrl.io.load`; the loaded learner continues bit for bit.
        """
        from .io import save

        save(self, path, extra=extra)

    def reset_state(self) -> None:
        """Start a new sequence: outputs back to y0 and the rule's state to its start; weights are kept."""
        s = self.state
        self.state = s._replace(rule_state=init_rule_states(self.rule, s.W, self._y0.copy(), self._wmask))
        self._stale = False
        self._update_fast()

    def __repr__(self) -> str:
        streams = "" if self.n_streams is None else f", n_streams={self.n_streams}"
        return (f"OnlineLearner(n_units={self.n_units}, n_inputs={self.n_inputs}{streams}, "
                f"learning_rate={self.learning_rate}, rule={self.rule.spec!r}, activation={self.activation!r}, "
                f"teacher_forcing={self.teacher_forcing}, t={self.t})")
