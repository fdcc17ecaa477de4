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
           "train_online_bptt", "ENGINES", "GRADIENT_METHODS", "ONLINE_METHODS", "KERNELS", "DTYPES"]

ENGINES = ("numba", "numpy")
GRADIENT_METHODS = ("rtrl", "bptt", "hybrid")
ONLINE_METHODS = ("rtrl", "hybrid")
#: Regimes of the compiled RTRL kernel: "auto" picks explicit loops for small n, BLAS for larger n.
KERNELS = ("auto", "loops", "blas")
#: Float types the compiled engine runs in (the NumPy reference is float64 only).
DTYPES = ("float64", "float32")


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
    """Start a run from weights ``W`` and outputs ``y0`` (zeros by default), with P = 0.

    ``W`` of shape (B, n, K) starts B independent streams at once (``y0`` (n,) or (B, n));
    :func:`run` then advances all of them together.
    """
    if np.ndim(W) == 3:
        W = _check_batched_weights(W).copy()
        B, n, K = W.shape
        y = _check_batched_y0(y0, B, n)
        return RTRLState(W, y, np.zeros((B, n, n, K)), 0)
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


def _run_arrays(engine, W, y, P, xs, ds, mask, learning_rate, activation, teacher_forcing, clip_norm=0.0, *,
                method="rtrl", kernel="auto", block=None):
    """Dispatch a validated sequence (or a batch of streams) to an engine. Returns (W, y, P, ys, G).

    One stream: W (n, K), y (n,), P (n, n, K), xs (T, m), ds and mask (T, n). A batch of
    independent streams: the same with a leading axis B. ``method`` "rtrl" (forward
    sensitivities) or "hybrid" (Schmidhuber's block method, compiled only); ``kernel`` picks
    the compiled RTRL regime; ``block`` the hybrid's block length (None: about n).
    There is no fallback between engines: an unavailable combination raises.
    """
    check_method(engine, ENGINES, "engine")
    check_method(method, ONLINE_METHODS)
    check_method(kernel, KERNELS, "kernel")
    batched = W.ndim == 3
    n = W.shape[-2]
    c = np.ascontiguousarray
    lr, act, tf, clip = float(learning_rate), activation_code(activation), bool(teacher_forcing), float(clip_norm)
    if method == "hybrid":
        if engine != "numba":
            raise ValueError("method: 'hybrid' is implemented by the compiled engine only; use engine='numba' "
                             "(the NumPy reference of the same gradients is method='rtrl', engine='numpy')")
        from .hybrid import default_block, hybrid_run_kernel

        h = default_block(n) if block is None else _check_block(block)
        if not batched:
            return hybrid_run_kernel(c(W), c(y), c(P), xs, ds, mask, lr, act, tf, h, clip)
        outs = [hybrid_run_kernel(c(W[b]), c(y[b]), c(P[b]), c(xs[b]), c(ds[b]), c(mask[b]), lr, act, tf, h, clip)
                for b in range(W.shape[0])]
        return tuple(np.stack(parts) for parts in zip(*outs))
    if engine == "numpy":
        if W.dtype != np.float64:
            raise ValueError(f"dtype: the NumPy reference engine runs in float64 only, got {W.dtype}; "
                             "use engine='numba' for float32")
        if not batched:
            return _reference.rtrl_run(W, y, P, xs, ds, mask, learning_rate=lr, activation=activation,
                                       teacher_forcing=tf, clip_norm=clip)
        outs = [_reference.rtrl_run(W[b], y[b], P[b], xs[b], ds[b], mask[b], learning_rate=lr,
                                    activation=activation, teacher_forcing=tf, clip_norm=clip)
                for b in range(W.shape[0])]
        return tuple(np.stack(parts) for parts in zip(*outs))
    from .kernels import choose_blas, rtrl_run_kernel, run_batched

    use_blas = choose_blas(n, kernel)
    if batched:
        return run_batched(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip)
    return rtrl_run_kernel(c(W), c(y), c(P), xs, ds, mask, lr, act, tf, use_blas, clip)


def _check_block(block) -> int:
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block: expected an integer >= 1 (steps per block of the hybrid), got {block!r}")
    return int(block)


def _check_dtype(dtype, engine):
    """Resolve ``dtype`` into a NumPy float type the chosen engine supports."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected one of {DTYPES}, got {dtype!r}") from None
    if dt.name not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dt.name!r}")
    if dt != np.float64 and engine != "numba":
        raise ValueError(f"dtype: {dt.name} needs the compiled engine; use engine='numba' or dtype='float64'")
    return dt


def _check_batched_weights(W, dtype=np.float64):
    W = np.asarray(W, dtype=dtype)
    if W.ndim != 3 or W.shape[0] < 1:
        raise ValueError(f"W: expected (B, n_units, n_inputs + 1 + n_units) for B streams, got shape {W.shape}")
    for b in range(W.shape[0]):
        try:
            check_weights(W[b], dtype=dtype)
        except ValueError as exc:
            raise ValueError(f"stream {b}: {exc}") from None
    return W


def _check_batched_y0(y0, B, n, dtype=np.float64):
    if y0 is None:
        return np.zeros((B, n), dtype=dtype)
    y = np.array(y0, dtype=dtype)
    if y.shape == (n,):
        y = np.broadcast_to(y, (B, n)).copy()
    if y.shape != (B, n):
        raise ValueError(f"y0: expected shape (n_units,) = ({n},) or (B, n_units) = ({B}, {n}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y0: contains NaN or inf; the initial state must be finite")
    return y


def _check_batched_sequences(W, xs, targets, mask, y0, *, require_targets=True, dtype=np.float64):
    """Validate B independent streams: W (B, n, K), xs (B, T, m), targets and mask (B, T, n).

    Each stream is checked as one sequence (messages name the stream). Returns
    (W, xs, ds, mask, y0) stacked, with NaN targets replaced by 0 and a boolean mask.
    """
    W = _check_batched_weights(W, dtype)
    B, n, _ = W.shape
    xs = np.asarray(xs)
    if xs.ndim != 3 or xs.shape[0] != B:
        raise ValueError(f"xs: expected shape (B, T, n_inputs) with B = {B} streams like W, got {xs.shape}")
    for name, arr in (("targets", targets), ("mask", mask)):
        if arr is not None and (np.ndim(arr) != 3 or np.shape(arr)[0] != B):
            raise ValueError(f"{name}: expected shape (B, T, n_units) with B = {B} streams like W, "
                             f"got {np.shape(arr)}")
    y0 = _check_batched_y0(y0, B, n, dtype)
    seqs = []
    for b in range(B):
        try:
            seqs.append(check_sequences(W[b], xs[b], None if targets is None else targets[b],
                                        None if mask is None else mask[b], y0[b],
                                        require_targets=require_targets, dtype=dtype))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"stream {b}: {exc}") from None
    return (W, np.stack([s.xs for s in seqs]), np.stack([s.ds for s in seqs]), np.stack([s.mask for s in seqs]),
            y0)


def run(state: RTRLState, xs, targets=None, mask=None, *, learning_rate=0.0, activation="logistic",
        teacher_forcing=False, engine="numba", clip_norm=None):
    """Continue a run for ``len(xs)`` steps of real-time RTRL; pure (returns a new state).

    Running a stream in chunks gives exactly the state of one pass over the whole stream.
    A batched state (from ``init_state`` with W of shape (B, n, K)) takes xs (B, T, m) and
    targets/mask (B, T, n), and returns ys (B, T, n); each stream runs as it would alone.
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
    if teacher_forcing and targets is None:
        raise ValueError("teacher_forcing: needs targets; pass targets or teacher_forcing=False")
    clip = _check_clip(clip_norm)
    if np.ndim(state.W) == 3:
        W, xs_, ds, mk, y0 = _check_batched_sequences(state.W, xs, targets, mask, state.y, require_targets=False)
        W, y, P, ys, _ = _run_arrays(engine, W, y0, state.P, xs_, ds, mk, lr, activation, teacher_forcing, clip)
        return RTRLState(W, y, P, state.t + xs_.shape[1]), ys
    seq = check_sequences(state.W, xs, targets, mask, state.y, require_targets=False)
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
             y0=None, engine="numba", kernel="auto", block=None, dtype="float64"):
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
    method : {"rtrl", "bptt", "hybrid"}
        Forward sensitivities (O(n^3) memory, O(n^4) per step; paper eqs. 12-15),
        backpropagation through time (memory grows with T), or Schmidhuber's (1992) hybrid
        (BPTT inside blocks of ~n steps, full sensitivities carried across blocks: O(n^3)
        memory and O(n^3) per step; compiled engine only). All give the same gradient to
        rounding.
    activation : {"logistic", "tanh"}
    teacher_forcing : bool
        Units with a target feed it forward instead of their output (paper section 2.3).
    y0 : array (n,), optional
        Initial outputs, zeros by default.
    engine : {"numba", "numpy"}
        For ``method="rtrl"``: the compiled kernel (default) or the NumPy reference.
    kernel : {"auto", "loops", "blas"}
        Regime of the compiled RTRL kernel: "auto" uses explicit loops below
        ``rtrl.kernels.BLAS_MIN_UNITS`` units and a BLAS product from there on.
    block : int, optional
        Block length h of ``method="hybrid"`` (default about n).
    dtype : {"float64", "float32"}
        Float type of the compiled computation (float32: compiled engine only).

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
    check_method(kernel, KERNELS, "kernel")
    dt = _check_dtype(dtype, engine)
    if method == "bptt":
        seq = check_sequences(W, xs, targets, mask, y0)
        return _bptt.bptt_gradient(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                   teacher_forcing=teacher_forcing)
    seq = check_sequences(W, xs, targets, mask, y0, dtype=dt)
    n, K = seq.W.shape
    *_, G = _run_arrays(engine, seq.W, seq.y0, np.zeros((n, n, K), dt), seq.xs, seq.ds, seq.mask, 0.0,
                        activation, teacher_forcing, method=method, kernel=kernel, block=block)
    return G


def train_online(W, xs, targets, mask=None, *, learning_rate, activation="logistic", teacher_forcing=False,
                 y0=None, method="rtrl", engine="numba", clip_norm=None, kernel="auto", block=None,
                 dtype="float64"):
    """Real-time RTRL: the weights change after every step, and the next step uses them.

    ``W <- W - learning_rate * dJ(t)/dW`` after each step t (paper section 2.2); the
    sensitivities are carried on, not reset. Arguments as in :func:`gradient`; ``clip_norm``
    (optional) caps the Frobenius norm of each per-step gradient before it is applied.
    ``method="hybrid"`` computes the very same per-step gradients (hence the same weight
    trajectory, to rounding) by Schmidhuber's O(n^3)-per-step block method.

    Batched streams: W of shape (B, n, K), xs (B, T, m), targets and mask (B, T, n), y0 (n,)
    or (B, n) run B independent streams at once (each exactly as it would run alone) and
    return W_final (B, n, K) and ys (B, T, n).

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
    check_method(kernel, KERNELS, "kernel")
    dt = _check_dtype(dtype, engine)
    clip = _check_clip(clip_norm)
    if np.ndim(W) == 3:
        Wb, xb, db, mb, yb = _check_batched_sequences(W, xs, targets, mask, y0, dtype=dt)
        B, n, K = Wb.shape
        W_final, _, _, ys, _ = _run_arrays(engine, Wb, yb, np.zeros((B, n, n, K), dt), xb, db, mb, lr,
                                           activation, teacher_forcing, clip, method=method, kernel=kernel,
                                           block=block)
        return W_final, ys
    seq = check_sequences(W, xs, targets, mask, y0, dtype=dt)
    n, K = seq.W.shape
    W_final, _, _, ys, _ = _run_arrays(engine, seq.W, seq.y0, np.zeros((n, n, K), dt), seq.xs, seq.ds, seq.mask,
                                       lr, activation, teacher_forcing, clip, method=method, kernel=kernel,
                                       block=block)
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
