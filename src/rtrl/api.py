"""The functional public API: forward pass, loss, gradient and real-time training.

All functions take the weights ``W`` (n, m+1+n), inputs ``xs`` (T, m), targets
(T, n) with NaN for "no target" (or an explicit boolean ``mask``), and never
modify their arguments.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import bptt as _bptt
from . import reference as _reference
from ._validation import check_method, check_positive, check_sequences, check_weights
from .activations import activation_code

__all__ = ["RTRLState", "init_state", "run", "forward", "loss", "gradient", "train_online",
           "train_online_bptt", "ENGINES", "GRADIENT_METHODS", "ONLINE_METHODS"]

ENGINES = ("numba", "numpy")
GRADIENT_METHODS = ("rtrl", "bptt")
ONLINE_METHODS = ("rtrl",)


class RTRLState(NamedTuple):
    """The whole state of a running RTRL network.

    Attributes
    ----------
    W : ndarray (n, K)   weights, columns [inputs, bias, recurrent]
    y : ndarray (n,)     unit outputs y(t) (after teacher forcing, i.e. what z(t) will hold)
    P : ndarray (n, n, K) sensitivities P[k, i, j] = dy_k(t)/dw_ij
    t : int              steps consumed so far
    """

    W: np.ndarray
    y: np.ndarray
    P: np.ndarray
    t: int


def init_state(W, y0=None) -> RTRLState:
    """Start a run from weights ``W`` and outputs ``y0`` (zeros by default), with P = 0."""
    W = check_weights(W).copy()
    n, K = W.shape
    if y0 is None:
        y = np.zeros(n)
    else:
        y = np.array(y0, dtype=np.float64)
        if y.shape != (n,):
            raise ValueError(f"y0: expected shape (n_units,) = ({n},), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y0: contains NaN or inf; the initial state must be finite")
    return RTRLState(W, y, np.zeros((n, n, K)), 0)


def _run_arrays(engine, W, y, P, xs, ds, mask, learning_rate, activation, teacher_forcing, clip_norm=0.0):
    """Dispatch a validated sequence to an engine. Returns (W, y, P, ys, G)."""
    check_method(engine, ENGINES, "engine")
    if engine == "numpy":
        return _reference.rtrl_run(W, y, P, xs, ds, mask, learning_rate=learning_rate,
                                   activation=activation, teacher_forcing=teacher_forcing,
                                   clip_norm=clip_norm)
    from .kernels import choose_blas, rtrl_run_kernel

    n = W.shape[0]
    return rtrl_run_kernel(np.ascontiguousarray(W), np.ascontiguousarray(y), np.ascontiguousarray(P),
                           xs, ds, mask, float(learning_rate), activation_code(activation),
                           bool(teacher_forcing), choose_blas(n), float(clip_norm))


def run(state: RTRLState, xs, targets=None, mask=None, *, learning_rate=0.0, activation="logistic",
        teacher_forcing=False, engine="numba", clip_norm=None):
    """Continue a run for ``len(xs)`` steps of real-time RTRL; pure (returns a new state).

    Running a stream in chunks gives exactly the state of one pass over the whole stream.
    ``clip_norm`` (optional): a per-step gradient with a larger Frobenius norm is scaled down
    to that norm before the weight change.

    Returns
    -------
    state : RTRLState after the last step
    ys : ndarray (T, n), the actual outputs y(t+1) for each input row
    """
    if not isinstance(state, RTRLState):
        raise TypeError(f"state: expected an RTRLState (from rtrl.init_state), got {type(state).__name__}")
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    activation_code(activation)
    seq = check_sequences(state.W, xs, targets, mask, state.y, require_targets=False)
    if teacher_forcing and targets is None:
        raise ValueError("teacher_forcing: needs targets; pass targets or teacher_forcing=False")
    clip = _check_clip(clip_norm)
    W, y, P, ys, _ = _run_arrays(engine, seq.W, seq.y0, state.P, seq.xs, seq.ds, seq.mask, lr,
                                 activation, teacher_forcing, clip)
    return RTRLState(W, y, P, state.t + seq.xs.shape[0]), ys


def _check_clip(clip_norm) -> float:
    """Resolve ``clip_norm`` (None = no clipping) into the kernels' convention (0.0 = none)."""
    return 0.0 if clip_norm is None else check_positive(clip_norm, "clip_norm")


def forward(W, xs, targets=None, mask=None, *, activation="logistic", teacher_forcing=False, y0=None):
    """Run the network with fixed weights and return the outputs ``ys`` (T, n).

    ``ys[t] = y(t+1) = f(W z(t))``. With ``teacher_forcing=True`` the units with a
    target at step t feed the target, not their output, into step t+1 (``ys``
    still holds the actual outputs).
    """
    activation_code(activation)
    seq = check_sequences(W, xs, targets, mask, y0, require_targets=teacher_forcing)
    _, ys, _, _ = _bptt.bptt_forward(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                     teacher_forcing=teacher_forcing)
    return ys


def loss(W, xs, targets, mask=None, *, activation="logistic", teacher_forcing=False, y0=None) -> float:
    """Total error J = 1/2 sum_t sum_k e_k(t)^2 over a sequence with W fixed."""
    activation_code(activation)
    seq = check_sequences(W, xs, targets, mask, y0)
    _, _, _, es = _bptt.bptt_forward(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                     teacher_forcing=teacher_forcing)
    return 0.5 * float(np.sum(es * es))


def gradient(W, xs, targets, mask=None, *, method="rtrl", activation="logistic", teacher_forcing=False,
             y0=None, engine="numba"):
    """Exact dJ/dW over one sequence with W held fixed (the epochwise gradient).

    Parameters
    ----------
    W : array (n, m+1+n)
        Weights; columns are [inputs, bias, recurrent].
    xs : array (T, m)
        Inputs; ``xs[t]`` is x(t).
    targets : array (T, n)
        Targets for ``ys[t] = y(t+1)``; NaN where a unit has no target (unless ``mask`` is given).
    mask : bool array (T, n), optional
        True where unit k has a target at step t. Default: ``~isnan(targets)``.
    method : {"rtrl", "bptt"}
        Forward sensitivities (O(n^3) memory, paper eqs. 12-15) or backpropagation through
        time (memory grows with T). Both give the same gradient to rounding.
    activation : {"logistic", "tanh"}
    teacher_forcing : bool
        Units with a target feed it forward instead of their output (paper section 2.3).
    y0 : array (n,), optional
        Initial outputs, zeros by default.
    engine : {"numba", "numpy"}
        For ``method="rtrl"``: the compiled kernel (default) or the NumPy reference.

    Returns
    -------
    G : ndarray (n, m+1+n), dJ/dW with J = 1/2 sum_t sum_k e_k(t)^2. Descend with ``W -= lr * G``.

    Examples
    --------
    >>> import numpy as np, rtrl
    >>> W = rtrl.init_weights(3, 2, rng=0)
    >>> xs = np.ones((5, 2)); ds = np.full((5, 3), np.nan); ds[:, 0] = 0.5
    >>> G = rtrl.gradient(W, xs, ds)
    >>> np.allclose(G, rtrl.gradient(W, xs, ds, method="bptt"))
    True
    """
    activation_code(activation)
    check_method(method, GRADIENT_METHODS)
    check_method(engine, ENGINES, "engine")
    seq = check_sequences(W, xs, targets, mask, y0)
    if method == "bptt":
        return _bptt.bptt_gradient(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                   teacher_forcing=teacher_forcing)
    n, K = seq.W.shape
    *_, G = _run_arrays(engine, seq.W, seq.y0, np.zeros((n, n, K)), seq.xs, seq.ds, seq.mask, 0.0,
                        activation, teacher_forcing)
    return G


def train_online(W, xs, targets, mask=None, *, learning_rate, activation="logistic", teacher_forcing=False,
                 y0=None, method="rtrl", engine="numba", clip_norm=None):
    """Real-time RTRL: the weights change after every step, and the next step uses them.

    ``W <- W - learning_rate * dJ(t)/dW`` after each step t (paper section 2.2); the
    sensitivities are carried on, not reset. Arguments as in :func:`gradient`; ``clip_norm``
    (optional) caps the Frobenius norm of each per-step gradient before it is applied.

    Returns
    -------
    W_final : ndarray (n, m+1+n)
    ys : ndarray (T, n), the actual outputs produced while learning

    Examples
    --------
    >>> import numpy as np, rtrl
    >>> rng = np.random.default_rng(0)
    >>> xs = rng.integers(0, 2, size=(200, 1)).astype(float)
    >>> ds = np.full((200, 2), np.nan); ds[1:, 0] = xs[:-1, 0]      # unit 0 echoes the last input
    >>> W, ys = rtrl.train_online(rtrl.init_weights(2, 1, rng=0), xs, ds, learning_rate=0.5)
    >>> W.shape, ys.shape
    ((2, 4), (200, 2))
    """
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    activation_code(activation)
    check_method(method, ONLINE_METHODS)
    check_method(engine, ENGINES, "engine")
    seq = check_sequences(W, xs, targets, mask, y0)
    n, K = seq.W.shape
    W_final, _, _, ys, _ = _run_arrays(engine, seq.W, seq.y0, np.zeros((n, n, K)), seq.xs, seq.ds, seq.mask,
                                       lr, activation, teacher_forcing, _check_clip(clip_norm))
    return W_final, ys


def train_online_bptt(W, xs, targets, mask=None, *, learning_rate, truncation, update_every=1,
                      activation="logistic", teacher_forcing=False, y0=None):
    """Online training by truncated BPTT(h; h') (Williams & Peng), for comparison with RTRL.

    Every ``update_every`` (h') steps the errors of the last h' steps are propagated back
    ``truncation`` (h) steps, and W changes once. BPTT(h) is ``update_every=1``. Memory is
    O(h); the gradient is approximate (RTRL's is exact). Returns ``(W_final, ys)``.
    """
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    activation_code(activation)
    for name, value in (("truncation", truncation), ("update_every", update_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if update_every > truncation:
        raise ValueError(f"update_every: expected <= truncation ({truncation}), got {update_every}")
    seq = check_sequences(W, xs, targets, mask, y0)
    return _bptt.bptt_train_online(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, learning_rate=lr,
                                   truncation=truncation, update_every=update_every, activation=activation,
                                   teacher_forcing=teacher_forcing)
