"""A stateful, one-step-at-a-time real-time RTRL learner for streams.

A thin wrapper over the pure functions of :mod:`rtrl.api` and the learning rules of
:mod:`rtrl.rules`: it holds a :class:`LearnerState` and replaces it after every call. Feeding a stream
step by step, in chunks, or in one pass gives exactly the same weights.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._validation import (check_memory, check_method, check_positive, check_random_state, check_real_array,
                          check_sequences)
from .activations import ACTIVATION_CODES, activation_code
from .api import (ENGINES, RTRLState, _check_batched_sequences, check_weight_mask, init_rule_states, resolve_rule,
                  run_rule)
from .kernels import prepare_row
from .network import DEFAULT_WEIGHT_SCALE, _check_count, init_weights

_NO_MASK = np.zeros(0, dtype=bool)  # stands for "no mask given" in prepare_row

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
    """The state of a learner: weights, the learning rule's state and the step count.

    ``y`` and (for the exact rules) ``P`` read through to the rule's state.
    """

    W: np.ndarray
    rule_state: tuple
    t: int

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


class OnlineLearner:
    """Real-time learning on a live stream, one step (or one chunk) at a time, with any learning rule.

    Parameters
    ----------
    n_units : int
        Number of fully connected units n.
    n_inputs : int
        Number of external input lines m (the bias line is added internally).
    learning_rate : float
        Step size alpha of the real-time update ``W -= alpha * g(t)`` after every step.
    rule : str or rtrl.rules.Rule
        The learning rule that estimates g(t) = dJ(t)/dW: "rtrl" (exact, the default),
        "hybrid", "bptt", "subgroup", "snap-1", "uoro", "kf-rtrl", "rflo", "eprop", ...
        (``rtrl.rules.list_rules()``, ``docs/rules.md``).
    activation : {"logistic", "tanh"}
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

    def __init__(self, n_units, n_inputs, *, learning_rate, rule="rtrl", activation="logistic",
                 teacher_forcing=False, weight_scale=DEFAULT_WEIGHT_SCALE, rng=None, W=None, y0=None,
                 engine="numba", clip_norm=None, n_streams=None, weight_mask=None):
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
        if batch:
            W, _, _, _, y = _check_batched_sequences(W, np.zeros((batch[0], 0, n_inputs)), None, None, y0,
                                                     require_targets=False)
        else:
            seq = check_sequences(W, np.zeros((0, n_inputs)), None, None, y0, require_targets=False)
            W, y = seq.W.copy(), seq.y0
        self._rule.check(n_units, n_inputs + 1 + n_units)
        self._wmask = check_weight_mask(weight_mask, W.shape)
        if self._wmask is not None:
            W = W * self._wmask
        self._y0 = y.copy()
        try:
            rule_state = init_rule_states(self._rule, W, y, self._wmask)
        except MemoryError:
            raise MemoryError(f"n_units: the state of rule {self._rule.spec!r} for n_units={n_units}, n_inputs="
                              f"{n_inputs}" + ("" if not batch else f", n_streams={batch[0]}") + " does not fit in "
                              "the memory free now; choose a smaller network or free memory") from None
        self.state = LearnerState(W, rule_state, 0)

    # -- validated settings ----------------------------------------------------------------------
    # Every setting that can change after construction is checked on assignment (a bad value
    # raises and changes nothing), so a learner never holds a setting that save() would write
    # and load() would refuse.
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = check_positive(value, "learning_rate", allow_zero=True)

    @property
    def clip_norm(self) -> float | None:
        return self._clip_norm

    @clip_norm.setter
    def clip_norm(self, value):
        self._clip_norm = None if value is None else check_positive(value, "clip_norm")

    @property
    def activation(self) -> str:
        return self._activation

    @activation.setter
    def activation(self, value):
        activation_code(value)
        self._activation = value

    @property
    def teacher_forcing(self) -> bool:
        return self._teacher_forcing

    @teacher_forcing.setter
    def teacher_forcing(self, value):
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
            self._teacher_forcing = bool(value)
        else:
            raise TypeError(f"teacher_forcing: expected a bool, got {value!r}")

    @property
    def engine(self) -> str:
        return self._engine

    @engine.setter
    def engine(self, value):
        check_method(value, ENGINES, "engine")
        if self._rule.name == "hybrid" and value == "numpy":
            raise ValueError("rule 'hybrid' runs on a compiled engine only: engine='numba' or 'jax'")
        self._engine = value

    @property
    def rule(self):
        """The learning rule (read-only: its state lives in ``state``; build a new learner to change it)."""
        return self._rule

    @rule.setter
    def rule(self, value):
        raise AttributeError("rule: read-only (the state was built for rule "
                             f"{self._rule.spec!r}); build a new OnlineLearner(..., rule=...) to change it")

    # -- views of the state -------------------------------------------------------------------
    @property
    def W(self) -> np.ndarray:
        return self.state.W

    @property
    def y(self) -> np.ndarray:
        return self.state.y

    @property
    def P(self) -> np.ndarray:
        """The full sensitivities P (n, n, K) of the exact rules (AttributeError for the others)."""
        return self.state.P

    @property
    def rule_state(self):
        return self.state.rule_state

    @property
    def t(self) -> int:
        return self.state.t

    @property
    def n_units(self) -> int:
        return self.state.W.shape[-2]

    @property
    def n_inputs(self) -> int:
        return self.state.W.shape[-1] - 1 - self.n_units

    @property
    def n_streams(self) -> int | None:
        """B for batched streams, None for a single stream."""
        return self.state.W.shape[0] if self.state.W.ndim == 3 else None

    @property
    def weight_mask(self) -> np.ndarray | None:
        """The connectivity mask (n, K) as booleans, or None for the fully connected network."""
        return None if self._wmask is None else self._wmask.astype(bool)

    def config(self) -> dict:
        """The learner's settings (everything but the state), as plain JSON-able values."""
        return {"n_units": self.n_units, "n_inputs": self.n_inputs, "learning_rate": self.learning_rate,
                "activation": self.activation, "teacher_forcing": self.teacher_forcing, "engine": self.engine,
                "clip_norm": self.clip_norm, "n_streams": self.n_streams,
                "rule": {"name": self.rule.name, "options": self.rule.options()}}

    # -- learning -----------------------------------------------------------------------------
    def step(self, x, target=None, mask=None) -> np.ndarray:
        """Consume one input row x (m,), learn from ``target`` (n,) and return y(t+1) (n,).

        ``target`` may hold NaN for units without a target; ``None`` means no target at all.
        The state is unchanged if the arguments are rejected. Batched streams: x (B, m),
        target and mask (B, n), returns (B, n).
        """
        if self.n_streams is not None:
            xs = _real(x, "x")
            if xs.shape != (self.n_streams, self.n_inputs):
                raise ValueError(f"x: expected shape (n_streams, n_inputs) = ({self.n_streams}, {self.n_inputs}), "
                                 f"got {xs.shape}")
            add_axis = (lambda a: None if a is None else np.asarray(a)[:, None] if np.ndim(a) else a)  # noqa: E731
            return self.partial_fit(xs[:, None], add_axis(target), add_axis(mask))[:, 0]
        n, m = self.n_units, self.n_inputs
        x = _real(x, "x")
        if x.shape != (m,):
            raise ValueError(f"x: expected shape (n_inputs,) = ({m},), got {x.shape}")
        if target is None:
            if mask is not None:
                raise ValueError("mask: given without target; pass target as well")
            d = np.full(n, np.nan)
        else:
            d = _real(target, "target")
            if d.shape != (n,):
                raise ValueError(f"target: expected shape (n_units,) = ({n},), got {d.shape} (NaN for no target)")
        if mask is None:
            mk_in = _NO_MASK
        else:
            mk_in = _bool_mask(mask, "mask")
            if mk_in.shape != (n,):
                raise ValueError(f"mask: expected shape (n_units,) = ({n},), got {mk_in.shape}")
        ds = np.empty((1, n))
        mk = np.empty((1, n), dtype=bool)
        status = prepare_row(x, d, mk_in, mask is not None, ds, mk)
        if status:
            raise ValueError(("x: contains NaN or inf; inputs must be finite",
                              "target: contains inf; use NaN for 'no target'",
                              "target: NaN where mask is True")[status - 1])
        before = self.state
        try:
            ys = self._step_checked(x[None, :], ds, mk)
        except ARITHMETIC_ERRORS:  # a rule's kernel dividing by an overflowed norm: divergence too
            self._diverged(before)
        if not _finite(self.state.W):  # NOTE: the weights only, one dot product: the per-step cost stays small
            self._diverged(before)
        return ys[0]

    def _run_checked(self, xs, ds, mask) -> np.ndarray:
        """Advance over already validated arrays xs (T, m), ds (T, n) (0 where no target), mask (T, n)."""
        s = self.state
        W, rs, ys, _ = run_rule(self.rule, self.engine, s.W, s.rule_state, xs, ds, mask, lr=self.learning_rate,
                                activation=self.activation, teacher_forcing=self.teacher_forcing,
                                clip=0.0 if self.clip_norm is None else self.clip_norm, wmask=self._wmask)
        self.state = LearnerState(W, rs, s.t + xs.shape[-2])
        return ys

    def _step_checked(self, xs, ds, mask) -> np.ndarray:
        """One step from already validated arrays xs (1, m), ds (1, n) (0 where no target), mask (1, n).

        The fast path of :meth:`step` for callers that validated the row themselves (the
        stream command); returns ys (1, n).
        """
        s = self.state
        if self.engine == "numba" and s.W.ndim == 2:  # (the learner's arrays are float64: every rule has it)
            # NOTE: the per-call fast path (issue: one step from Python should cost little more than
            # the kernel): the state is already contiguous and of the kernel's type, so the compiled
            # loop is called directly, with the same arguments Rule.run would pass.
            W, rs, ys, _ = self.rule.run_compiled(s.W, s.rule_state, xs, ds, mask, self._learning_rate,
                                                  ACTIVATION_CODES[self.activation], self.teacher_forcing,
                                                  0.0 if self._clip_norm is None else self._clip_norm, self._wmask)
            self.state = LearnerState(W, rs, s.t + 1)
            return ys
        return self._run_checked(xs, ds, mask)

    def partial_fit(self, xs, targets=None, mask=None) -> np.ndarray:
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
        lr = self.learning_rate
        raise ValueError(f"learning_rate: training diverged by step {t} (the weights or the rule's state became "
                         f"NaN or inf); the learner keeps its state from before this call. Lower the learning rate "
                         f"(now {lr:g}; try {lr / 10:g}), set clip_norm, or scale the inputs to order 1")

    # -- model files ---------------------------------------------------------------------------
    @classmethod
    def from_state(cls, state, *, learning_rate, rule="rtrl", activation="logistic", teacher_forcing=False,
                   y0=None, engine="numba", clip_norm=None, weight_mask=None) -> "OnlineLearner":
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
                  n_streams=batch[0] if batch else None, weight_mask=weight_mask)
        template = net.state.rule_state
        rs = state.rule_state
        if not isinstance(rs, tuple) or getattr(rs, "_fields", None) != template._fields:
            raise ValueError(f"state: expected the state of rule {net.rule.spec!r} with fields "
                             f"{list(template._fields)}, got {getattr(rs, '_fields', type(rs).__name__)}")
        arrays = []
        for name, want, got in zip(template._fields, template, rs):
            check_real_array(got, f"state.{name}")
            a = np.array(got, dtype=want.dtype)
            if a.shape != want.shape:
                raise ValueError(f"state: expected {name} of shape {want.shape} for W {W.shape}, got {a.shape}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"state: {name} contains NaN or inf; the state must be finite")
            arrays.append(a)
        t = state.t
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"state.t: expected an integer >= 0, got {t!r}")
        net.state = LearnerState(net.state.W, type(template)(*arrays), int(t))
        return net

    def save(self, path, *, extra=None) -> None:
        """Write the whole state and settings to ``path`` atomically (see :func:`rtrl.io.save`).

        Read it back with :func:`rtrl.io.load`; the loaded learner continues bit for bit.
        """
        from .io import save

        save(self, path, extra=extra)

    def reset_state(self) -> None:
        """Start a new sequence: outputs back to y0 and the rule's state to its start; weights are kept."""
        s = self.state
        self.state = LearnerState(s.W, init_rule_states(self.rule, s.W, self._y0.copy(), self._wmask), s.t)

    def __repr__(self) -> str:
        streams = "" if self.n_streams is None else f", n_streams={self.n_streams}"
        return (f"OnlineLearner(n_units={self.n_units}, n_inputs={self.n_inputs}{streams}, "
                f"learning_rate={self.learning_rate}, rule={self.rule.spec!r}, activation={self.activation!r}, "
                f"teacher_forcing={self.teacher_forcing}, t={self.t})")
