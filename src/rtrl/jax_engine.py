"""The JAX engine (``engine="jax"``): exact RTRL and Schmidhuber's hybrid on GPUs and several devices.

Optional: ``pip install 'rtrl[jax]'``. ``import rtrl`` never imports JAX; this module imports it
when a run asks for it, and says how to install it when it is missing.

What runs
---------
The same numbers as the NumPy reference (:func:`rtrl.rules.base.reference_run` with
:meth:`rtrl.rules.RTRL.step`), with the whole chunk of T steps inside one ``jax.jit``
(``lax.scan`` over time): real-time RTRL with masks, teacher forcing in the paper's order,
clipping, the connectivity mask, per-unit activations; Schmidhuber's (1992) hybrid; B batched
streams (``jax.vmap``); float32 and float64.

RTRL step (the fused product of :mod:`rtrl.kernels`). With ``A(t) = diag(f') W_rec(t)`` and P
stored as rows of nK numbers (n, nK)::

    [P(t+1) ; -dJ(t)/dW - (e o f') (x) z]  =  [A ; e^T A] . P(t)          (n+1, n) . (n, nK)
    P(t+1)[k, i*K + j] += f'_k delta_ik z_j                               (paper eq. 12)

so a step is one product of the issue's shape plus O(nK) work. NOTE: the carry of the time
loop is that (n+1, nK) product itself (its last row, the gradient, is multiplied by a zero
column in the next step), and the loop is unrolled by two so that each product writes into
the buffer of the product two steps back: no step copies P (checked in the compiled HLO); the
first step of a chunk reads the (n, nK) state directly. Teacher forcing zeroes the forced rows
of P(t+1) by zeroing the matching columns of the next A (the same numbers, as in the Numba
kernels) and the rows once, at the chunk's end.

Hybrid (the block method of :mod:`rtrl.hybrid`, same equations): BPTT inside blocks of h
steps (a backward pass over the stored A's for each step's gradient, ``lax.fori_loop``), the
full P(t0) carried across block boundaries; a chunk's end closes a block, as in the Numba kernel.

Several devices
---------------
``with options(devices=4):`` (or ``"all"``) shards P over the weight-row index i on a
one-axis ``jax.sharding.Mesh`` with ``shard_map``: device d holds P[:, i, :] for its n/D rows
i, and the product ``A . P[:, i, :]`` needs nothing from the other devices. Every device
computes the O(nK) forward step (y, z, f', e) itself; the only exchange per step is an
all-gather of the gradient's rows (n x K numbers), after which every device applies the same
update to its copy of W. D must divide n. One device (the default) runs the same code
without the mesh.

Precision and float types
-------------------------
Matrix products use ``precision="highest"`` by default: true float32 (on NVIDIA GPUs from
Ampere on, JAX's default would use TF32, about 3 significant digits) and float64 as float64.
``options(precision="default")`` lets the device pick its fastest mode (TF32 on such GPUs),
``"high"`` the middle one; both are for speed and are not what the tests check.
float64 needs JAX's x64 mode: each call runs inside ``jax.enable_x64(True)`` (a thread-local,
scoped setting) and float32 inside ``jax.enable_x64(False)``; the process-wide setting is
never changed.

Memory
------
P holds n^2 K numbers (n = 1024, float32: 4.3 GB; n = 2048: 34 GB). A call of the fused
form holds about three P at once (the incoming P and the loop's two (n+1, nK) buffers). The
lean form (``options(lean=True)``, chosen by itself when three P would not fit in the device's
memory) computes ``e^T A P(t)`` as a second product, one more read of P per step (a few per
cent at n >= 1024), and runs in the donated input's buffer: two P (a P that arrives as NumPy
is always donated on accelerators; a ``jax.Array`` with ``donate=True``). Sharding over D
devices divides all of it by D.

States on the device
--------------------
``Rule.run(..., engine="jax")`` takes and returns NumPy arrays like every engine (the state
can continue in another engine or go into a model file). Each field of the state (and W)
comes back as the kind it arrived as: a ``jax.Array`` stays on its device(s) (sharded as the
run requires), so a long real-time run fed in chunks copies P between host and device only
once: ``state = to_device(state)`` before the loop, ``to_host(state)`` after it. ``ys`` and
``G`` are NumPy unless W arrived as a ``jax.Array``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
from typing import Any

import numpy as np

__all__ = ["JaxOptions", "options", "current_options", "require_jax", "available", "run", "to_device", "to_host",
           "resolve_devices", "PRECISIONS", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'rtrl[jax]'"
#: Names accepted by ``options(precision=...)`` (jax.lax.Precision levels).
PRECISIONS = ("highest", "high", "default")


# ------------------------------------------------------------------------------------- options
@dataclasses.dataclass(frozen=True)
class JaxOptions:
    """Settings of the JAX engine (see :func:`options`).

    Attributes
    ----------
    precision : {"highest", "high", "default"}
        Precision of the matrix products (``jax.lax.Precision``); "highest" (default) is
        true float32 / float64.
    devices : None, int, "all" or a sequence of ``jax.Device``
        Where P lives: None (default) one device (``jax.devices()[0]``); an int D the first D
        devices of the default backend; "all" every one; D > 1 shards P over its rows i.
    donate : bool
        Let a run reuse the buffer of a P that arrived as a ``jax.Array`` (that array is then
        deleted; lowers peak memory by one P). A NumPy P is never touched: its device copy is
        the engine's own (and is donated on accelerators, where it cannot share host memory).
    lean : None or bool
        RTRL's memory form: False the fused product (one product per step, about 3 P of
        device memory during a call), True two products over P per step (one more read of P,
        about 2 P with ``donate``); None (default) picks lean only when 3 P would not fit.
    """

    precision: str = "highest"
    devices: Any = None
    donate: bool = False
    lean: Any = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        d = self.devices
        ok = (d is None or d == "all" or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1)
              or (isinstance(d, (list, tuple)) and len(d) >= 1))
        if not ok:
            raise ValueError(f"devices: expected None (one device), an integer >= 1, 'all' or a list of jax "
                             f"devices, got {d!r}")
        if not isinstance(self.donate, bool):
            raise TypeError(f"donate: expected a bool, got {self.donate!r}")
        if self.lean not in (None, True, False):
            raise TypeError(f"lean: expected None (automatic) or a bool, got {self.lean!r}")


_OPTIONS: contextvars.ContextVar[JaxOptions] = contextvars.ContextVar("rtrl_jax_options", default=JaxOptions())


def current_options() -> JaxOptions:
    """The JAX engine's settings in force here (the defaults outside any :func:`options` block)."""
    return _OPTIONS.get()


@contextlib.contextmanager
def options(**settings):
    """Settings for every ``engine="jax"`` run inside the ``with`` block (context-local).

    Keywords are the fields of :class:`JaxOptions` (``precision``, ``devices``, ``donate``, ``lean``);
    those not given keep their current value. Nothing global changes: the settings end with
    the block (and do not leak into other threads or asyncio tasks).

    Examples
    --------
    >>> import rtrl, rtrl.jax_engine
    >>> with rtrl.jax_engine.options(devices="all", precision="highest"):   # doctest: +SKIP
    ...     W, ys = rtrl.train_online(W0, xs, ds, learning_rate=0.1, engine="jax")
    """
    new = dataclasses.replace(_OPTIONS.get(), **settings)
    token = _OPTIONS.set(new)
    try:
        yield new
    finally:
        _OPTIONS.reset(token)


# ---------------------------------------------------------------------------------- jax access
def require_jax():
    """Import and return ``jax``; raise ImportError saying how to install it when it is missing."""
    try:
        import jax  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"engine 'jax' needs JAX, which is not installed here: {INSTALL_HINT} (or "
                          f"'pip install jax' / a CUDA build of JAX for GPUs); the other engines are "
                          f"engine='numba' and engine='numpy' ({exc})") from None
    return jax


def available() -> bool:
    """True when JAX can be imported (engine="jax" can run)."""
    try:
        require_jax()
    except ImportError:
        return False
    return True


def _x64(on: bool):
    """A scoped (thread-local) x64 setting: ``jax.enable_x64`` on new JAX, ``jax.experimental`` on old."""
    jax = require_jax()
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None and callable(ctx):
        return ctx(on)
    from jax.experimental import disable_x64, enable_x64  # type: ignore[attr-defined]  # older JAX (0.4.30)

    return enable_x64() if on else disable_x64()


def _shard_map():
    jax = require_jax()
    fn = getattr(jax, "shard_map", None)
    if fn is None:  # older JAX (0.4.30)
        from jax.experimental.shard_map import shard_map as fn
    return fn


def resolve_devices(devices, n: int | None = None) -> tuple:
    """The tuple of ``jax.Device`` that ``devices`` names; with ``n``, check that their count divides n."""
    jax = require_jax()
    avail = jax.devices()
    if devices is None:
        devs = (avail[0],)
    elif devices == "all":
        devs = tuple(avail)
    elif isinstance(devices, (int, np.integer)):
        if devices > len(avail):
            raise ValueError(f"devices: asked for {devices} devices, the {avail[0].platform} backend has "
                             f"{len(avail)} ({avail}); pass devices <= {len(avail)}")
        devs = tuple(avail[:int(devices)])
    else:
        devs = tuple(devices)
    if n is not None and n % len(devs) != 0:
        fits = [d for d in range(1, len(devs) + 1) if n % d == 0]
        raise ValueError(f"devices: P is sharded over its n = {n} weight rows, and {len(devs)} devices do not "
                         f"divide {n}; pass devices= one of {fits} (or choose n divisible by the device count)")
    return devs


def _mesh(devs):
    from jax.sharding import Mesh

    return Mesh(np.array(devs, dtype=object), ("i",))


# ------------------------------------------------------------------------------------ the loops
# NOTE: the activation, teacher forcing, the clipping bound and the connectivity mask are traced
# values, not compile-time constants: one compiled loop serves every combination (each costs O(n)
# or O(nK) per step, nothing against the O(n^2 K) of a step), so a new setting never recompiles.
def _act(s, act):
    import jax.numpy as jnp

    # logistic written as the reference writes it, 0.5 (1 + tanh(s / 2)); act (n,): per-unit codes,
    # 0 logistic, 1 tanh, 2 linear
    return jnp.where(act == 0, 0.5 * (1.0 + jnp.tanh(0.5 * s)), jnp.where(act == 1, jnp.tanh(s), s))


def _fprime(y, act):
    import jax.numpy as jnp

    # f'(s) from the output y = f(s)
    return jnp.where(act == 0, y * (1.0 - y), jnp.where(act == 1, 1.0 - y * y, jnp.ones_like(y)))


def _forward(W, y, x, act, m, prec):
    """z(t), y(t+1) = f(W z(t)) and f'(s(t)): (z (K,), y_next (n,), fp (n,))."""
    import jax.numpy as jnp

    z = jnp.concatenate([x, jnp.ones((1,), W.dtype), y])  # z(t): (K,)
    y_next = _act(jnp.dot(W, z, precision=prec), act)  # y(t+1) = f(W z(t)): (n,)
    return z, y_next, _fprime(y_next, act)


def _apply(W, G, g, lr, clip, cfg):
    """G += g; clip g to its norm bound; W -= lr g (module docstring of rtrl.rules.base)."""
    import jax.numpy as jnp

    G = G + g
    if cfg["learn"]:
        norm = jnp.sqrt(jnp.sum(g * g))
        g = jnp.where((clip > 0.0) & (norm > clip), g * (clip / norm), g)  # clip = 0: no clipping
        W = W - lr * g
    return W, G


def _gather(g_loc, axis):
    """The gradient's rows from every device (only this moves between devices each step): (n, K)."""
    from jax import lax

    return lax.all_gather(g_loc, axis, tiled=True) if axis else g_loc


def _rtrl_local(W, y, P, xs, ds, mask, lr, clip, wmask, act, tf, cfg):
    """Real-time RTRL over a chunk, one stream, on the rows i of P that this device holds.

    W (n, K), y (n,), P (n, nl, K) with nl = n / devices, xs (T, m), ds and mask (T, n),
    wmask (n, K) (ones: fully connected); scalars lr, clip (0: none), act (activation code), tf
    (teacher forcing). Returns (W, y, P (n, nl, K), ys (T, n), G (n, K)).
    """
    import jax.numpy as jnp
    from jax import lax

    n, K = W.shape
    m = K - 1 - n
    nl = P.shape[1]
    prec, axis = cfg["precision"], cfg["axis"]
    off = lax.axis_index(axis) * nl if axis else 0  # the first row i held here
    ii = jnp.arange(nl)
    rows = jnp.broadcast_to((off + ii)[:, None], (nl, K))  # k = i
    cols = ii[:, None] * K + jnp.arange(K)[None, :]  # column i*K + j of the (., nl*K) layout
    wm = lax.dynamic_slice_in_dim(wmask, off, nl, 0)

    def step(carry, inp):
        W, y, R, keep, G = carry  # R: (n or n+1, nl*K), P(t) in its first n rows
        x, d, mk = inp
        z, y_next, fp = _forward(W, y, x, act, m, prec)
        e = jnp.where(mk, d - y_next, 0.0)  # e(t): (n,)
        A = fp[:, None] * W[:, m + 1:] * keep[None, :]  # diag(f') W_rec, forced columns zeroed: (n, n)
        eA = jnp.dot(e, A, precision=prec)  # e^T A: (n,)
        if cfg["lean"]:  # two products, one carry of P's size (module docstring, "Memory")
            grow = jnp.dot(eA, R, precision=prec)  # e^T A P(t): (nl*K,)
            R = jnp.dot(A, R, precision=prec)  # eq. 12: (n, nl*K)
        else:
            Aext = jnp.concatenate([A, eA[None, :]], axis=0)  # (n+1, n)
            if R.shape[0] == n + 1:  # the carry's last row holds the last gradient: a zero column skips it
                Aext = jnp.concatenate([Aext, jnp.zeros((n + 1, 1), W.dtype)], axis=1)
            R = jnp.dot(Aext, R, precision=prec)  # eq. 12 and e^T A P(t): (n+1, nl*K)
        R = R.at[rows, cols].add(fp[rows] * z[None, :])  # + f'_k delta_ik z_j (eq. 12), in place
        if not cfg["lean"]:
            grow = R[n]  # read after the in-place add (rows k < n): reading before it would copy R
        ef = lax.dynamic_slice_in_dim(e * fp, off, nl)  # (nl,)
        g_loc = -(grow.reshape(nl, K) + ef[:, None] * z[None, :]) * wm  # dJ(t)/dW, rows i here (eq. 13)
        W, G = _apply(W, G, _gather(g_loc, axis), lr, clip, cfg)
        # NOTE: forcing after the update (paper eqs. 17-19); P's rows are zeroed through the next A.
        forced = mk & tf
        keep = jnp.where(forced, 0.0, 1.0).astype(W.dtype)
        return (W, jnp.where(forced, d, y_next), R, keep, G), y_next

    T = xs.shape[0]
    G = jnp.zeros_like(W)
    keep = jnp.ones(n, W.dtype)
    if T == 0:
        return W, y, P, jnp.zeros((0, n), W.dtype), G, keep
    carry = (W, y, P.reshape(n, nl * K), keep, G)
    # NOTE: unroll=2 lets each product write into the buffer of the step before last: without it
    # XLA copies the new P into the loop's buffer at every step (an extra pass over P).
    if cfg["lean"]:
        carry, ys = lax.scan(step, carry, (xs, ds, mask), unroll=2)
        W, y, R, keep, G = carry
        # the loop's buffer is the output (the donated input's, without a copy); the forced rows
        # are zeroed afterwards, in place (run(): _zero_rows)
        return W, y, R.reshape(n, nl, K), ys, G, keep
    else:
        # NOTE: the first step reads the (n, nl*K) state, the rest the (n+1, nl*K) carry: P is never copied.
        carry, y1 = step(carry, (xs[0], ds[0], mask[0]))
        ys = y1[None]
        if T > 1:
            carry, ys_rest = lax.scan(step, carry, (xs[1:], ds[1:], mask[1:]), unroll=2)
            ys = jnp.concatenate([ys, ys_rest], axis=0)
    W, y, R, keep, G = carry
    P = (R[:n] * keep[:, None]).reshape(n, nl, K)  # forced rows zeroed once, in the copy out of the carry
    return W, y, P, ys, G, jnp.ones(n, W.dtype)


def _hybrid_local(W, y, P, xs, ds, mask, lr, clip, wmask, act, tf, cfg):
    """Schmidhuber's hybrid over a chunk (blocks of h steps; the chunk's end closes a block).

    Same arguments and results as :func:`_rtrl_local`; the equations are those of
    :mod:`rtrl.hybrid`. Every device keeps the block's A, f', z and forcing flags (O(h n^2))
    and runs the backward passes itself; only the products with P(t0) are sharded.
    """
    import jax.numpy as jnp
    from jax import lax

    n, K = W.shape
    m = K - 1 - n
    nl = P.shape[1]
    prec, axis, h = cfg["precision"], cfg["axis"], cfg["block"]
    dt = W.dtype
    off = lax.axis_index(axis) * nl if axis else 0
    wm = lax.dynamic_slice_in_dim(wmask, off, nl, 0)

    def block(carry, inp):
        W, y, P0, G = carry  # P0 = P(t0): (n, nl*K)
        xb, db, mb = inp
        L = xb.shape[0]

        def step(c, inp):
            W, y, G, As, fps, Zs, keeps = c
            r, x, d, mk = inp  # r: position in the block
            z, y_next, fp = _forward(W, y, x, act, m, prec)
            e = jnp.where(mk, d - y_next, 0.0)
            As = As.at[r].set(fp[:, None] * W[:, m + 1:])  # A(tau) with the weights of step tau
            fps = fps.at[r].set(fp)
            Zs = Zs.at[r].set(z)

            def gradient(_):
                # BPTT within the block: lambda_t = e(t), c_tau = lambda_tau o f'(tau),
                # lambda_{tau-1} = D(tau-1) A(tau)^T lambda_tau; the c_tau (x) z(tau) summed on the way.
                def back(it, c2):
                    lam, gz = c2
                    rr = r - it
                    c_loc = lax.dynamic_slice_in_dim(lam * fps[rr], off, nl)
                    gz = gz + c_loc[:, None] * Zs[rr][None, :]
                    lam = jnp.dot(lam, As[rr], precision=prec)  # A(tau)^T lambda
                    lam = lam * jnp.where(rr > 0, keeps[jnp.maximum(rr - 1, 0)], 1.0)
                    return lam, gz

                lam, gz = lax.fori_loop(0, r + 1, back, (e, jnp.zeros((nl, K), dt)))
                # -dJ(t)/dW = (A(t0)^T lambda_t0)^T P(t0) + sum_tau c_tau (x) z(tau)
                g_loc = -(jnp.dot(lam, P0, precision=prec).reshape(nl, K) + gz) * wm
                return _gather(g_loc, axis)

            g = lax.cond(jnp.any(mk), gradient, lambda _: jnp.zeros((n, K), dt), None)
            W, G = _apply(W, G, g, lr, clip, cfg)  # g = 0 without targets: W and G unchanged
            forced = mk & tf
            keeps = keeps.at[r].set(jnp.where(forced, 0.0, 1.0).astype(dt))  # D(t)
            return (W, jnp.where(forced, d, y_next), G, As, fps, Zs, keeps), y_next

        init = (W, y, G, jnp.zeros((L, n, n), dt), jnp.zeros((L, n), dt), jnp.zeros((L, K), dt),
                jnp.ones((L, n), dt))
        (W, y, G, As, fps, Zs, keeps), ys = lax.scan(step, init, (jnp.arange(L), xb, db, mb))
        # Block end: P(t0+L) = sum_tau Psi_tau B(tau) + Phi P(t0), with Psi_last = D(last),
        # Psi_{tau-1} = Psi_tau A(tau) D(tau-1), Phi = Psi_0 A(t0).
        keeps_before = jnp.concatenate([jnp.ones((1, n), dt), keeps[:-1]], axis=0)  # D(tau-1); none at t0

        def back_block(Psi, inp):
            A, fp, kp = inp
            CM = Psi * fp[None, :]  # CM[k, i] = Psi_tau[k, i] f'_i(tau)
            return jnp.dot(Psi, A, precision=prec) * kp[None, :], CM

        Phi, CMs = lax.scan(back_block, jnp.diag(keeps[L - 1]), (As, fps, keeps_before), reverse=True)
        CM_loc = lax.dynamic_slice_in_dim(CMs, off, nl, axis=2)  # (L, n, nl)
        Pnew = jnp.einsum("rki,rj->kij", CM_loc, Zs, precision=prec).reshape(n, nl * K)
        P0 = Pnew + jnp.dot(Phi, P0, precision=prec)
        return (W, y, P0, G), ys

    T = xs.shape[0]
    nb, rest = divmod(T, h)
    carry = (W, y, P.reshape(n, nl * K), jnp.zeros_like(W))
    parts = []
    if nb:
        cut = nb * h
        carry, ys = lax.scan(block, carry, (xs[:cut].reshape(nb, h, -1), ds[:cut].reshape(nb, h, n),
                                            mask[:cut].reshape(nb, h, n)))
        parts.append(ys.reshape(cut, n))
    if rest:
        carry, ys = block(carry, (xs[nb * h:], ds[nb * h:], mask[nb * h:]))
        parts.append(ys)
    W, y, P0, G = carry
    ys = jnp.concatenate(parts, axis=0) if parts else jnp.zeros((0, n), dt)
    return W, y, P0.reshape(n, nl, K), ys, G, jnp.ones(n, dt)


_LOCAL = {"rtrl": _rtrl_local, "hybrid": _hybrid_local}


@functools.lru_cache(maxsize=64)
def _compiled(kind, learn, batched, precision, devs, block, donate, lean):
    """The jitted chunk function for one static configuration (shapes are jit's own cache key)."""
    import inspect

    import jax
    from jax.sharding import PartitionSpec as Spec

    axis = "i" if len(devs) > 1 else None
    cfg = {"learn": learn, "precision": precision, "axis": axis, "block": block, "lean": lean}
    local = functools.partial(_LOCAL[kind], cfg=cfg)
    fn = jax.vmap(local, in_axes=(0, 0, 0, 0, 0, 0) + (None,) * 5) if batched else local
    if axis:
        shard_map = _shard_map()
        rep = Spec()
        ps = Spec(None, None, "i", None) if batched else Spec(None, "i", None)
        # NOTE: the replication checker is off: W, y, ys and G are replicated by construction (every
        # device applies the same all-gathered gradient), which the checker cannot see through scan.
        check = "check_vma" if "check_vma" in inspect.signature(shard_map).parameters else "check_rep"
        fn = shard_map(fn, mesh=_mesh(devs), in_specs=(rep, rep, ps) + (rep,) * 8,
                       out_specs=(rep, rep, ps, rep, rep, rep), **{check: False})
    return jax.jit(fn, donate_argnums=(2,) if donate else ())


@functools.lru_cache(maxsize=8)
def _zero_rows_fn():
    """P[..., k, :, :] *= keep[..., k] in place (P donated): the lean form's last teacher forcing."""
    import jax

    return jax.jit(lambda P, keep: P * keep[..., :, None, None], donate_argnums=(0,))


def _device_bytes(dev):
    """Memory of one device in bytes (None where the backend does not say, e.g. CPUs)."""
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001  (backends without memory statistics)
        return None
    limit = stats.get("bytes_limit")
    return None if limit is None else int(limit)


def _lean(opts, devs, p_bytes):
    """Whether RTRL runs in the lean form: as asked, else when three copies of P would not fit."""
    if opts.lean is not None:
        return bool(opts.lean)
    limit = _device_bytes(devs[0])
    return limit is not None and 3 * p_bytes / len(devs) > 0.85 * limit


def _placements(devs, batched):
    """(replicated, P's) placements: one device, or NamedShardings on the mesh."""
    if len(devs) == 1:
        return devs[0], devs[0]
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as Spec

    mesh = _mesh(devs)
    ps = Spec(None, None, "i", None) if batched else Spec(None, "i", None)
    return NamedSharding(mesh, Spec()), NamedSharding(mesh, ps)


def _is_jax(a) -> bool:
    try:
        import jax
    except ImportError:  # pragma: no cover
        return False
    return isinstance(a, jax.Array)


def _to_numpy(a):
    out = np.asarray(a)
    return out if out.flags.writeable else out.copy()  # owned and writable, like every engine's results


def run(kind, W, y, P, xs, ds, mask, *, lr=0.0, activation="logistic", teacher_forcing=False, clip=0.0,
        wmask=None, block=None, opts: JaxOptions | None = None):
    """A chunk of real-time RTRL (``kind="rtrl"``) or the hybrid (``"hybrid"``, ``block`` h) on JAX.

    Arguments as :meth:`rtrl.rules.Rule.run` (already validated): W (n, K) or (B, n, K), y (n,)
    or (B, n), P (n, n, K) or (B, n, n, K), xs (T, m), ds (T, n) with 0 where no target, mask
    (T, n) bool (with a leading B for batched streams), wmask None or (n, K). ``opts``: the
    engine's settings (default :func:`current_options`). Returns ``(W, y, P, ys, G)``; each of
    W, y, P comes back as the kind (NumPy or ``jax.Array``) it arrived as, ys and G as W.
    """
    from .activations import activation_codes

    jax = require_jax()
    opts = current_options() if opts is None else opts
    dtype = np.dtype(W.dtype)
    if dtype.name not in ("float64", "float32"):
        raise ValueError(f"dtype: engine 'jax' runs in float64 or float32, got {dtype.name}")
    batched = W.ndim == 3
    n, K = W.shape[-2:]
    devs = resolve_devices(opts.devices, n)
    p_is_jax = _is_jax(P)
    lean = _lean(opts, devs, int(np.prod(np.shape(P))) * dtype.itemsize) if kind == "rtrl" else False
    # NOTE: our own device copy of a NumPy P may be donated, except on CPUs (where it may share the
    # caller's memory); a jax.Array P only when the caller allows it.
    donate = bool(opts.donate) if p_is_jax else devs[0].platform != "cpu"
    T = xs.shape[-2]
    if lean and donate and T % 2 == 1:
        # NOTE: the lean form keeps two P only when the loop runs an even number of steps into the
        # donated buffer (scan's unroll=2); an odd chunk runs as T - 1 steps, then 1 step undonated.
        segments = [(0, T - 1, True), (T - 1, T, False)] if T > 1 else [(0, 1, False)]
    else:
        segments = [(0, T, donate)]
    rep, p_place = _placements(devs, batched)
    with _x64(dtype == np.float64):
        def put(a, place, dt=dtype):
            return jax.device_put(a if _is_jax(a) and a.dtype == dt else np.asarray(a, dt), place)

        Wn, yn, Pn = put(W, rep), put(y, rep), put(P, p_place)
        xs_, ds_, mask_ = put(xs, rep), put(ds, rep), put(mask, rep, np.bool_)
        consts = (jax.device_put(np.asarray(lr, dtype), rep), jax.device_put(np.asarray(clip, dtype), rep),
                  put(np.ones((n, K), dtype) if wmask is None else wmask, rep),
                  jax.device_put(activation_codes(activation, n).astype(np.int32), rep),
                  jax.device_put(np.bool_(teacher_forcing), rep))
        ys_parts, G = [], None
        for a, b, don in segments:
            fn = _compiled(kind, lr != 0.0, batched, opts.precision, devs, None if block is None else int(block),
                           don, lean)
            cut = (slice(None),) * (xs.ndim - 2) + (slice(a, b),)
            if len(segments) > 1:
                Wn, yn, Pn, ys, Gs, keep = fn(Wn, yn, Pn, xs_[cut], ds_[cut], mask_[cut], *consts)
            else:
                Wn, yn, Pn, ys, Gs, keep = fn(Wn, yn, Pn, xs_, ds_, mask_, *consts)
            if lean and teacher_forcing:
                Pn = _zero_rows_fn()(Pn, keep)
            ys_parts.append(ys)
            G = Gs if G is None else G + Gs
        ys = ys_parts[0] if len(ys_parts) == 1 else jax.numpy.concatenate(ys_parts, axis=-2)
        if not _is_jax(W):
            Wn, ys, G = _to_numpy(Wn), _to_numpy(ys), _to_numpy(G)
        if not _is_jax(y):
            yn = _to_numpy(yn)
        if not p_is_jax:
            Pn = _to_numpy(Pn)
    return Wn, yn, Pn, ys, G


# ------------------------------------------------------------------------- states on the device
def to_device(state, *, opts: JaxOptions | None = None):
    """The state with its sensitivities P as a ``jax.Array`` placed (and sharded) as the options say.

    Runs with ``engine="jax"`` then keep P on the device(s) between chunks (module docstring).
    """
    jax = require_jax()
    opts = current_options() if opts is None else opts
    P = state.P
    batched = np.ndim(P) == 4
    devs = resolve_devices(opts.devices, P.shape[-2])
    _, place = _placements(devs, batched)
    with _x64(np.dtype(P.dtype) == np.float64):
        return state._replace(P=jax.device_put(P, place))


def to_host(state):
    """The state with every field as a NumPy array (for another engine, or a model file)."""
    return type(state)(*(_to_numpy(a) if _is_jax(a) else a for a in state))
