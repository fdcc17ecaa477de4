"""The functional public API: forward pass, loss, gradient and real-time training.

All functions take the weights ``W`` (n, m+1+n), inputs ``xs`` (T, m), targets
(T, n) with NaN for "no target" (or an explicit boolean ``mask``), and never
modify their arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import bptt as _bptt
from ._validation import check_method, check_positive, check_real_array, check_sequences, check_weights
from .activations import Activation, check_activation

if TYPE_CHECKING:
    from .rules.base import Rule

__all__ = ["RTRLState", "init_state", "run", "forward", "loss", "gradient", "train_online",
           "train_online_bptt", "resolve_rule", "NonFiniteResultError", "ENGINES", "GRADIENT_METHODS", "ONLINE_METHODS", "KERNELS",
           "DTYPES"]

#: "jax" is the optional JAX engine (``pip install 'rtrl[jax]'``; GPUs, several devices): rtrl.jax_engine.
ENGINES = ("numba", "numpy", "jax")
GRADIENT_METHODS = ("rtrl", "bptt", "hybrid")
ONLINE_METHODS = ("rtrl", "hybrid")
#: Regimes of the compiled RTRL kernel: "auto" picks explicit loops for small n, BLAS for larger n.
KERNELS = ("auto", "loops", "blas")
#: Float types the compiled engines (Numba, JAX) run in (the NumPy reference is float64 only).
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


def init_state(W: ArrayLike, y0: ArrayLike | None = None) -> RTRLState:
    """Start a run from weights ``W`` and outputs ``y0`` (zeros by default), with P = 0.

    ``W`` of shape (B, n, K) starts B independent streams at once (``y0`` (n,) or (B, n));
    :func:`run` then advances all of them together.
    """
    if np.ndim(W) == 3:
        Wb = _check_batched_weights(W).copy()
        B, n, K = Wb.shape
        y = _check_batched_y0(y0, B, n)
        return RTRLState(Wb, y, np.zeros((B, n, n, K)), 0)
    Wa = check_weights(W).copy()
    n, K = Wa.shape
    if y0 is None:
        y = np.zeros(n)
    else:
        y = np.array(check_real_array(y0, "y0"), dtype=np.float64)
        if y.shape != (n,):
            raise ValueError(f"y0: expected shape (n_units,) = ({n},), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y0: contains NaN or inf; the initial state must be finite")
    return RTRLState(Wa, y, np.zeros((n, n, K)), 0)


def resolve_rule(rule: "str | Rule" = "rtrl", *, method: str | None = None, kernel: str = "auto",
                 block: int | None = None, allowed_methods: tuple = ONLINE_METHODS) -> "Rule":
    """Resolve the rule arguments of the public functions into an :class:`rtrl.rules.Rule`.

    ``method`` is the older spelling of the exact rules ("rtrl", "hybrid"); ``kernel`` and
    ``block`` are the options of the "rtrl" and "hybrid" rules when the rule is given by name.
    """
    from . import rules

    if method is not None:
        check_method(method, allowed_methods)
        if not (isinstance(rule, str) and rule == "rtrl"):
            raise ValueError(f"method: given together with rule={rule!r}; pass only rule= (method= is the older "
                             "name of the exact rules)")
        rule = method
    check_method(kernel, KERNELS, "kernel")
    if block is not None:
        _check_block(block)
    if isinstance(rule, str) and rule in ("rtrl", "hybrid"):
        rule = rules.make("rtrl", kernel=kernel) if rule == "rtrl" else rules.make("hybrid", block=block)
    else:
        rule = rules.make(rule)
        if kernel != "auto" and rule.name != "rtrl":
            raise ValueError(f"kernel: an option of rule 'rtrl', got kernel={kernel!r} with rule {rule.spec!r}")
        if block is not None and rule.name != "hybrid":
            raise ValueError(f"block: an option of rule 'hybrid', got block={block!r} with rule {rule.spec!r}")
    return rule


def check_weight_mask(weight_mask, shape, dtype=np.float64):
    """Validate a connectivity mask (n, K) (or (B, n, K) broadcastable) of 0/1; return it as floats or None."""
    if weight_mask is None:
        return None
    wm = np.asarray(weight_mask)
    if wm.shape != tuple(shape[-2:]):
        raise ValueError(f"weight_mask: expected shape (n_units, n_inputs + 1 + n_units) = {tuple(shape[-2:])}, "
                         f"got {wm.shape}")
    if wm.dtype != bool:
        if wm.dtype.kind not in "iuf" or not np.all((wm == 0) | (wm == 1)):
            raise ValueError("weight_mask: expected booleans (or 0/1): True where a weight exists, False where it "
                             "stays zero")
    return wm.astype(dtype)


def init_rule_states(rule, W, y0, wmask=None):
    """The rule's initial state for one stream (W (n, K), y0 (n,)) or B streams (W (B, n, K), y0 (B, n))."""
    if W.ndim == 2:
        return rule.init(W, y0, wmask=wmask)
    parts = [rule.init(W[b], y0[b], stream=b, wmask=wmask) for b in range(W.shape[0])]
    return type(parts[0])(*(np.stack(f) for f in zip(*parts)))


def _run_arrays(engine, W, y, P, xs, ds, mask, learning_rate, activation, teacher_forcing, clip_norm=0.0, *,
                method="rtrl", kernel="auto", block=None):
    """Exact RTRL (or the hybrid) on validated arrays; returns (W, y, P, ys, G). Kept for the pure RTRL API."""
    from .rules.rtrl import SensitivityState

    check_method(engine, ENGINES, "engine")
    rule = resolve_rule(method=method, kernel=kernel, block=block)
    if rule.name == "hybrid" and engine == "numpy":
        raise ValueError("method: 'hybrid' runs on a compiled engine only; use engine='numba' or 'jax' "
                         "(the NumPy reference of the same gradients is method='rtrl', engine='numpy')")
    W, st, ys, G = rule.run(W, SensitivityState(y, P), xs, ds, mask, lr=float(learning_rate), activation=activation,
                            teacher_forcing=bool(teacher_forcing), clip=float(clip_norm), engine=engine)
    return W, st.y, st.P, ys, G


def run_rule(rule, engine, W, state, xs, ds, mask, *, lr, activation, teacher_forcing, clip, wmask):
    """Run a validated chunk with ``rule`` on ``engine``; returns (W, state, ys, G)."""
    check_method(engine, ENGINES, "engine")
    if rule.name == "hybrid" and engine == "numpy":
        raise ValueError("rule 'hybrid' runs on a compiled engine only; use engine='numba' or 'jax' "
                         "(the NumPy reference of the same gradients is rule='rtrl', engine='numpy')")
    try:
        return rule.run(W, state, xs, ds, mask, lr=float(lr), activation=activation,
                        teacher_forcing=bool(teacher_forcing), clip=float(clip), wmask=wmask, engine=engine)
    except ZeroDivisionError:  # a compiled rule divided by a norm that overflowed to inf or fell to 0
        raise NonFiniteResultError(f"rule {rule.spec!r}: a norm in its estimate overflowed: the network diverged; "
                                   "lower learning_rate or set clip_norm") from None


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
    if dt != np.float64 and engine == "numpy":
        raise ValueError(f"dtype: {dt.name} needs a compiled engine; use engine='numba' or 'jax', or "
                         "dtype='float64'")
    return dt


def _check_batched_weights(W, dtype=np.float64):
    W = np.asarray(check_real_array(W, "W"), dtype=dtype)
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
    y = np.array(check_real_array(y0, "y0"), dtype=dtype)
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


def run(state: RTRLState, xs: ArrayLike, targets: ArrayLike | None = None, mask: ArrayLike | None = None, *,
        learning_rate: float = 0.0, activation: Activation = "logistic", teacher_forcing: bool = False,
        engine: str = "numba", clip_norm: float | None = None, threads: int | None = None
        ) -> tuple[RTRLState, np.ndarray]:
    """Continue a run for ``len(xs)`` steps of real-time RTRL; pure (returns a new state).

    Running a stream in chunks gives exactly the state of one pass over the whole stream.
    A batched state (from ``init_state`` with W of shape (B, n, K)) takes xs (B, T, m) and
    targets/mask (B, T, n), and returns ys (B, T, n); each stream runs as it would alone.
    ``clip_norm`` (optional): a per-step gradient with a larger Frobenius norm is scaled down
    to that norm before the weight change. ``threads`` as in :func:`gradient`.

    Returns
    -------
    state : RTRLState after the last step
    ys : ndarray (T, n), the actual outputs y(t+1) for each input row
    """
    if not isinstance(state, RTRLState):
        raise TypeError(f"state: expected an RTRLState (from rtrl.init_state), got {type(state).__name__}")
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    check_activation(activation)
    _use_threads(threads)
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


_RESCALE = "the inputs, targets or weights are too large for this network; rescale them"


class NonFiniteResultError(ValueError, FloatingPointError):
    """A computation overflowed to inf/NaN (diverged training, inputs or targets too large).

    Both a ValueError (what the public functions raise for input they cannot use) and a
    FloatingPointError. The message names the function and what to change.
    """


def _finite(value, who: str, fix: str):
    """Raise NonFiniteResultError naming ``who`` when a result overflowed to inf/NaN (never return it silently)."""
    if not np.all(np.isfinite(value)):
        raise NonFiniteResultError(f"{who}: the result is not finite (an overflow inside the computation); {fix}")
    return value


def _use_threads(threads) -> None:
    """``threads=`` of the public functions: set rtrl's threads process-wide (:mod:`rtrl.threads`); None leaves them."""
    if threads is not None:
        from .threads import set_threads

        set_threads(threads)


def _check_clip(clip_norm) -> float:
    """Resolve ``clip_norm`` (None = no clipping) into the kernels' convention (0.0 = none)."""
    return 0.0 if clip_norm is None else check_positive(clip_norm, "clip_norm")


def forward(W: ArrayLike, xs: ArrayLike, targets: ArrayLike | None = None, mask: ArrayLike | None = None, *,
            activation: Activation = "logistic", teacher_forcing: bool = False,
            y0: ArrayLike | None = None) -> np.ndarray:
    """Run the network with fixed weights and return the outputs ``ys`` (T, n).

    ``ys[t] = y(t+1) = f(W z(t))``. With ``teacher_forcing=True`` the units with a
    target at step t feed the target, not their output, into step t+1 (``ys``
    still holds the actual outputs).
    """
    check_activation(activation)
    seq = check_sequences(W, xs, targets, mask, y0, require_targets=teacher_forcing)
    _, ys, _, _ = _bptt.bptt_forward(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                     teacher_forcing=teacher_forcing)
    return ys


def loss(W: ArrayLike, xs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, *,
         activation: Activation = "logistic", teacher_forcing: bool = False, y0: ArrayLike | None = None) -> float:
    """Total error J = 1/2 sum_t sum_k e_k(t)^2 over a sequence with W fixed."""
    check_activation(activation)
    seq = check_sequences(W, xs, targets, mask, y0)
    _, _, _, es = _bptt.bptt_forward(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                     teacher_forcing=teacher_forcing)
    with np.errstate(over="ignore", invalid="ignore"):
        J = 0.5 * float(np.sum(es * es))
    return _finite(J, "loss", "targets of this size cannot be compared; rescale them into the units' range")


def gradient(W: ArrayLike, xs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, *,
             rule: "str | Rule" = "rtrl", method: str | None = None, activation: Activation = "logistic",
             teacher_forcing: bool = False, y0: ArrayLike | None = None, engine: str = "numba", kernel: str = "auto",
             block: int | None = None, dtype: "str | np.dtype" = "float64",
             weight_mask: ArrayLike | None = None, threads: int | None = None) -> np.ndarray:
    """dJ/dW over one sequence with W held fixed (the epochwise gradient), by any learning rule.

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
    rule : str or rtrl.rules.Rule
        The learning rule whose per-step estimates are summed (``rtrl.rules.list_rules()``):
        "rtrl" (exact forward sensitivities, O(n^3) memory, O(n^4) per step; paper eqs. 12-15),
        "hybrid" (Schmidhuber's exact O(n^3) block method, engines "numba" and "jax"), or an
        approximation ("uoro", "snap-1", "subgroup:4", ...). See ``docs/rules.md``.
    method : {"rtrl", "bptt", "hybrid"}, optional
        The older spelling of the exact methods; "bptt" is epochwise backpropagation through
        time (memory grows with T), the independent reference. All exact methods give the
        same gradient to rounding.
    activation : {"logistic", "tanh", "linear"} or a sequence of them (one per unit)
    teacher_forcing : bool
        Units with a target feed it forward instead of their output (paper section 2.3).
    y0 : array (n,), optional
        Initial outputs, zeros by default.
    engine : {"numba", "numpy", "jax"}
        The compiled loop (default), the rule's NumPy reference, or the JAX engine (rules "rtrl"
        and "hybrid"; GPUs and several devices; ``pip install 'rtrl[jax]'``; settings such as
        devices and matmul precision with ``rtrl.jax_engine.options``; ``docs/jax.md``).
    kernel : {"auto", "loops", "blas"}
        Regime of the compiled RTRL loop: "auto" uses explicit loops below
        ``rtrl.kernels.BLAS_MIN_UNITS`` units and a BLAS product from there on.
    block : int, optional
        Block length h of the hybrid (default about n/2).
    dtype : {"float64", "float32"}
        Float type of the compiled computation (float32: engines "numba" and "jax").
    weight_mask : bool array (n, m+1+n), optional
        Connectivity: False where a weight does not exist; its gradient is reported as 0.
    threads : int, optional
        Threads for the compiled loops and BLAS (:mod:`rtrl.threads`, process-wide); None leaves
        the setting in force (by default the cores available, or ``RTRL_NUM_THREADS``).

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
    check_activation(activation)
    _use_threads(threads)
    check_method(engine, ENGINES, "engine")
    dt = _check_dtype(dtype, engine)
    if method == "bptt":
        check_method(kernel, KERNELS, "kernel")
        if not (isinstance(rule, str) and rule == "rtrl"):
            raise ValueError(f"method: given together with rule={rule!r}; pass only one of them")
        seq = check_sequences(W, xs, targets, mask, y0)
        wm = check_weight_mask(weight_mask, seq.W.shape)
        G = _bptt.bptt_gradient(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, activation=activation,
                                teacher_forcing=teacher_forcing)
        return _finite(G if wm is None else G * wm, "gradient", _RESCALE)
    rule = resolve_rule(rule, method=method, kernel=kernel, block=block, allowed_methods=GRADIENT_METHODS)
    seq = check_sequences(W, xs, targets, mask, y0, dtype=dt)
    rule.check(*seq.W.shape)
    wm = check_weight_mask(weight_mask, seq.W.shape, dt)
    state = rule.init(seq.W, seq.y0, wmask=wm)
    *_, G = run_rule(rule, engine, seq.W, state, seq.xs, seq.ds, seq.mask, lr=0.0, activation=activation,
                     teacher_forcing=teacher_forcing, clip=0.0, wmask=wm)
    return _finite(G, "gradient", _RESCALE)


def train_online(W: ArrayLike, xs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, *,
                 learning_rate: float, rule: "str | Rule" = "rtrl", activation: Activation = "logistic",
                 teacher_forcing: bool = False, y0: ArrayLike | None = None, method: str | None = None,
                 engine: str = "numba", clip_norm: float | None = None, kernel: str = "auto",
                 block: int | None = None, dtype: "str | np.dtype" = "float64",
                 weight_mask: ArrayLike | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real-time learning: the weights change after every step, and the next step uses them.

    ``W <- W - learning_rate * g(t)`` after each step t, where ``g(t)`` is the rule's estimate
    of dJ(t)/dW (paper section 2.2 for ``rule="rtrl"``, the exact gradient); the rule's state
    (e.g. the sensitivities) is carried on, not reset. Arguments as in :func:`gradient`;
    ``clip_norm`` (optional) caps the Frobenius norm of each per-step estimate before it is
    applied. ``rule="hybrid"`` computes the very same per-step gradients as "rtrl" (hence the
    same weight trajectory, to rounding) by Schmidhuber's O(n^3)-per-step block method.
    ``weight_mask`` (n, K) keeps the weights where it is False at their initial value
    (set them to 0 for a sparse network). ``threads`` as in :func:`gradient`.

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
    >>> W, ys = rtrl.train_online(rtrl.init_weights(2, 1, rng=0), xs, ds, learning_rate=0.5, rule="uoro")
    """
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    check_activation(activation)
    _use_threads(threads)
    check_method(engine, ENGINES, "engine")
    rule = resolve_rule(rule, method=method, kernel=kernel, block=block)
    dt = _check_dtype(dtype, engine)
    clip = _check_clip(clip_norm)
    if np.ndim(W) == 3:
        Wv, xv, dv, mv, yv = _check_batched_sequences(W, xs, targets, mask, y0, dtype=dt)
    else:
        seq = check_sequences(W, xs, targets, mask, y0, dtype=dt)
        Wv, xv, dv, mv, yv = seq.W, seq.xs, seq.ds, seq.mask, seq.y0
    rule.check(*Wv.shape[-2:])
    wm = check_weight_mask(weight_mask, Wv.shape, dt)
    state = init_rule_states(rule, Wv, yv, wm)
    W_final, _, ys, _ = run_rule(rule, engine, Wv, state, xv, dv, mv, lr=lr, activation=activation,
                                 teacher_forcing=teacher_forcing, clip=clip, wmask=wm)
    _finite(ys, "train_online", "the network diverged: lower learning_rate, set clip_norm, or rescale the inputs")
    return _finite(W_final, "train_online", "the weights diverged: lower learning_rate or set clip_norm"), ys


def train_online_bptt(W: ArrayLike, xs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, *,
                      learning_rate: float, truncation: int, update_every: int = 1,
                      activation: Activation = "logistic", teacher_forcing: bool = False,
                      y0: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Online training by truncated BPTT(h; h') (Williams & Peng), for comparison with RTRL.

    Every ``update_every`` (h') steps the errors of the last h' steps are propagated back
    ``truncation`` (h) steps, and W changes once. BPTT(h) is ``update_every=1``. Memory is
    O(h); the gradient is approximate (RTRL's is exact). Returns ``(W_final, ys)``.
    """
    lr = check_positive(learning_rate, "learning_rate", allow_zero=True)
    check_activation(activation)
    for name, value in (("truncation", truncation), ("update_every", update_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if update_every > truncation:
        raise ValueError(f"update_every: expected <= truncation ({truncation}), got {update_every}")
    seq = check_sequences(W, xs, targets, mask, y0)
    return _bptt.bptt_train_online(seq.W, seq.xs, seq.ds, seq.mask, seq.y0, learning_rate=lr,
                                   truncation=truncation, update_every=update_every, activation=activation,
                                   teacher_forcing=teacher_forcing)
