"""A stateful, one-step-at-a-time real-time RTRL learner for streams.

A thin wrapper over the pure functions of :mod:`rtrl.api`: it holds an
:class:`~rtrl.api.RTRLState` and replaces it after every call. Feeding a stream
step by step, in chunks, or in one pass gives exactly the same weights.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_method, check_positive, check_random_state
from .activations import activation_code
from .api import ENGINES, RTRLState, _run_arrays, init_state, run
from .kernels import prepare_row
from .network import DEFAULT_WEIGHT_SCALE, init_weights

_NO_MASK = np.zeros(0, dtype=bool)  # stands for "no mask given" in prepare_row

__all__ = ["OnlineLearner"]


class OnlineLearner:
    """Real-time RTRL on a live stream, one step (or one chunk) at a time.

    Parameters
    ----------
    n_units : int
        Number of fully connected units n.
    n_inputs : int
        Number of external input lines m (the bias line is added internally).
    learning_rate : float
        Step size alpha of the real-time update ``W -= alpha * dJ(t)/dW`` after every step.
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
    engine : {"numba", "numpy"}
    clip_norm : float, optional
        Cap on the Frobenius norm of each per-step gradient before it is applied (None: no cap).
    n_streams : int, optional
        Run B = ``n_streams`` independent networks side by side (batched streams, one set of
        settings): W (B, n, K) (each stream drawn in turn from ``rng``, or given), ``step`` takes
        x (B, m) and target (B, n) and returns (B, n), ``partial_fit`` takes xs (B, T, m).
        Each stream is exactly what it would be alone. None (default): one stream, no batch axis.

    Attributes
    ----------
    state : RTRLState
        Weights W (n, K), outputs y (n,), sensitivities P (n, n, K) and step count t
        (with a leading axis B on W, y and P for batched streams).

    Examples
    --------
    >>> import rtrl
    >>> net = rtrl.OnlineLearner(3, 2, learning_rate=0.1, rng=0)
    >>> y = net.step([1.0, 0.0], target=[0.5, float("nan"), float("nan")])
    >>> y.shape, net.t
    ((3,), 1)
    """

    def __init__(self, n_units, n_inputs, *, learning_rate, activation="logistic", teacher_forcing=False,
                 weight_scale=DEFAULT_WEIGHT_SCALE, rng=None, W=None, y0=None, engine="numba", clip_norm=None,
                 n_streams=None):
        self.learning_rate = check_positive(learning_rate, "learning_rate", allow_zero=True)
        activation_code(activation)
        self.activation = activation
        self.teacher_forcing = bool(teacher_forcing)
        self.engine = check_method(engine, ENGINES, "engine")
        self.clip_norm = None if clip_norm is None else check_positive(clip_norm, "clip_norm")
        if n_streams is not None and (isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer))
                                      or n_streams < 1):
            raise ValueError(f"n_streams: expected None or an integer >= 1, got {n_streams!r}")
        batch = () if n_streams is None else (int(n_streams),)
        if W is None:
            if batch:
                rng = check_random_state(rng)
                W = np.stack([init_weights(n_units, n_inputs, scale=weight_scale, rng=rng) for _ in range(batch[0])])
            else:
                W = init_weights(n_units, n_inputs, scale=weight_scale, rng=rng)
        W = np.array(W, dtype=np.float64)
        if W.shape != batch + (n_units, n_inputs + 1 + n_units):
            lead = f"(n_streams, n_units, n_inputs + 1 + n_units) = ({batch[0]}, " if batch else \
                "(n_units, n_inputs + 1 + n_units) = ("
            raise ValueError(f"W: expected shape {lead}{n_units}, {n_inputs + 1 + n_units}), got {W.shape}")
        self.state = init_state(W, y0)
        self._y0 = self.state.y.copy()

    # -- views of the state -------------------------------------------------------------------
    @property
    def W(self) -> np.ndarray:
        return self.state.W

    @property
    def y(self) -> np.ndarray:
        return self.state.y

    @property
    def P(self) -> np.ndarray:
        return self.state.P

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

    def config(self) -> dict:
        """The learner's settings (everything but the state), as plain JSON-able values."""
        return {"n_units": self.n_units, "n_inputs": self.n_inputs, "learning_rate": self.learning_rate,
                "activation": self.activation, "teacher_forcing": self.teacher_forcing, "engine": self.engine,
                "clip_norm": self.clip_norm, "n_streams": self.n_streams}

    # -- learning -----------------------------------------------------------------------------
    def step(self, x, target=None, mask=None) -> np.ndarray:
        """Consume one input row x (m,), learn from ``target`` (n,) and return y(t+1) (n,).

        ``target`` may hold NaN for units without a target; ``None`` means no target at all.
        The state is unchanged if the arguments are rejected. Batched streams: x (B, m),
        target and mask (B, n), returns (B, n).
        """
        if self.n_streams is not None:
            xs = np.asarray(x, dtype=np.float64)
            if xs.shape != (self.n_streams, self.n_inputs):
                raise ValueError(f"x: expected shape (n_streams, n_inputs) = ({self.n_streams}, {self.n_inputs}), "
                                 f"got {xs.shape}")
            add_axis = (lambda a: None if a is None else np.asarray(a)[:, None])  # noqa: E731
            return self.partial_fit(xs[:, None], add_axis(target), add_axis(mask))[:, 0]
        n, m = self.n_units, self.n_inputs
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (m,):
            raise ValueError(f"x: expected shape (n_inputs,) = ({m},), got {x.shape}")
        if target is None:
            if mask is not None:
                raise ValueError("mask: given without target; pass target as well")
            d = np.full(n, np.nan)
        else:
            d = np.asarray(target, dtype=np.float64)
            if d.shape != (n,):
                raise ValueError(f"target: expected shape (n_units,) = ({n},), got {d.shape} (NaN for no target)")
        if mask is None:
            mk_in = _NO_MASK
        else:
            mk_in = np.asarray(mask, dtype=bool)
            if mk_in.shape != (n,):
                raise ValueError(f"mask: expected shape (n_units,) = ({n},), got {mk_in.shape}")
        ds = np.empty((1, n))
        mk = np.empty((1, n), dtype=bool)
        status = prepare_row(x, d, mk_in, mask is not None, ds, mk)
        if status:
            raise ValueError(("x: contains NaN or inf; inputs must be finite",
                              "target: contains inf; use NaN for 'no target'",
                              "target: NaN where mask is True")[status - 1])
        return self._step_checked(x[None, :], ds, mk)[0]

    def _step_checked(self, xs, ds, mask) -> np.ndarray:
        """One step from already validated arrays xs (1, m), ds (1, n) (0 where no target), mask (1, n).

        The fast path of :meth:`step` for callers that validated the row themselves (the
        stream command); returns ys (1, n).
        """
        s = self.state
        W, y, P, ys, _ = _run_arrays(self.engine, s.W, s.y, s.P, xs, ds, mask,
                                     self.learning_rate, self.activation, self.teacher_forcing,
                                     0.0 if self.clip_norm is None else self.clip_norm)
        self.state = RTRLState(W, y, P, s.t + 1)
        return ys

    def partial_fit(self, xs, targets=None, mask=None) -> np.ndarray:
        """Consume a chunk xs (T, m) with targets (T, n); return the outputs ys (T, n).

        Batched streams: xs (B, T, m), targets and mask (B, T, n), returns (B, T, n).
        Equivalent to T calls of :meth:`step`, and to one pass over the concatenated stream.
        """
        self.state, ys = run(self.state, xs, targets, mask, learning_rate=self.learning_rate,
                             activation=self.activation, teacher_forcing=self.teacher_forcing,
                             engine=self.engine, clip_norm=self.clip_norm)
        return ys

    # -- model files ---------------------------------------------------------------------------
    @classmethod
    def from_state(cls, state, *, learning_rate, activation="logistic", teacher_forcing=False, y0=None,
                   engine="numba", clip_norm=None) -> "OnlineLearner":
        """A learner that continues from ``state`` (an :class:`~rtrl.api.RTRLState`), e.g. one read from a file.

        ``W``, ``y``, ``P`` and ``t`` are copied as they are (P is not reset); ``y0`` (zeros by
        default) is only used by :meth:`reset_state`. Other arguments as in the constructor.
        """
        if not isinstance(state, RTRLState):
            raise TypeError(f"state: expected an RTRLState, got {type(state).__name__}")
        W = np.asarray(state.W, dtype=np.float64)
        if W.ndim not in (2, 3) or W.shape[-1] < W.shape[-2] + 1:
            raise ValueError(f"state.W: expected shape ([n_streams,] n_units, n_inputs + 1 + n_units), got {W.shape}")
        batch = W.shape[:-2]
        n, K = W.shape[-2:]
        net = cls(n, K - 1 - n, learning_rate=learning_rate, activation=activation,
                  teacher_forcing=teacher_forcing, W=W, y0=y0, engine=engine, clip_norm=clip_norm,
                  n_streams=batch[0] if batch else None)
        y = np.array(state.y, dtype=np.float64)
        P = np.array(state.P, dtype=np.float64)
        if y.shape != batch + (n,) or P.shape != batch + (n, n, K):
            raise ValueError(f"state: expected y {batch + (n,)} and P {batch + (n, n, K)} for W {W.shape}, "
                             f"got y {y.shape} and P {P.shape}")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(P))):
            raise ValueError("state: y or P contains NaN or inf; the state must be finite")
        t = state.t
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"state.t: expected an integer >= 0, got {t!r}")
        net.state = RTRLState(net.state.W, y, P, int(t))
        return net

    def save(self, path, *, extra=None) -> None:
        """Write the whole state and settings to ``path`` atomically (see :func:`rtrl.io.save`).

        Read it back with :func:`rtrl.io.load`; the loaded learner continues bit for bit.
        """
        from .io import save

        save(self, path, extra=extra)

    def reset_state(self) -> None:
        """Start a new sequence: outputs back to y0 and sensitivities to 0; weights are kept."""
        s = self.state
        self.state = RTRLState(s.W, self._y0.copy(), np.zeros_like(s.P), s.t)

    def __repr__(self) -> str:
        streams = "" if self.n_streams is None else f", n_streams={self.n_streams}"
        return (f"OnlineLearner(n_units={self.n_units}, n_inputs={self.n_inputs}{streams}, "
                f"learning_rate={self.learning_rate}, activation={self.activation!r}, "
                f"teacher_forcing={self.teacher_forcing}, t={self.t})")
