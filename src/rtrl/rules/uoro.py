"""UORO: Unbiased Online Recurrent Optimization (Tallec & Ollivier, ICLR 2018).

UORO keeps a rank-one stochastic estimate of RTRL's sensitivities,
``P[k, i, j] ~ ytil_k * thetil[i, j]``, whose expectation is the exact P of the paper at
every step. In the notation of ``docs/conventions.md`` (W (n, K), z(t) = [x(t), 1, y(t)])::

    y(t+1) = f(W z(t)),  f' = f'(s(t)) (n,)
    nu        = random signs +-1 (n,), fresh at every step (:mod:`rtrl.rules._random`)
    a         = f' o (W_rec ytil)                                (n,)    the transported part
    b         = (nu o f') (x) z(t)                                (n, K)  the new part, projected on nu
    rho0      = sqrt((||thetil|| + eps) / (||a|| + eps))                   (eq. u1)
    rho1      = sqrt((||b|| + eps) / (||nu|| + eps))                       (eq. u2)
    ytil'     = rho0 a + rho1 nu                                           (eq. u3)
    thetil'   = thetil / rho0 + b / rho1                                   (eq. u4)
    e(t)      = mask(t) o (d(t) - y(t+1))
    g         = -(e . ytil') thetil'     (estimate of dJ(t)/dW)            (eq. u5)

Unbiasedness: the exact recursion is P' = diag(f') W_rec P + diag(f') (x) z. If
E[ytil (x) thetil] = P, then E[ytil' (x) thetil'] = a (x) thetil + E[nu (x) b] + cross terms,
where E[a (x) thetil] = diag(f') W_rec P; E[nu_k b_ij] = E[nu_k nu_i] f'_i z_j = delta_ki f'_i z_j;
and the cross terms (rho0 / rho1) a (x) b and (rho1 / rho0) nu (x) thetil are linear in the fresh
nu, independent of the past (rho1 sees nu only through |nu_i| = 1, rho0 not at all), so their
mean is 0. The rho's only
balance the two factors' norms to reduce the variance. With W fixed the summed g is an unbiased
estimate of the epochwise gradient (tested).

Teacher forcing (paper eqs. 17-19): the gradient uses the un-zeroed ytil'; then forced units
take their target and ytil'[forced] = 0 (their rows of the estimated P are zero, as in RTRL).

Cost per step: O(nK) -- one (n, n) matrix-vector product and a few passes over (n, K)
arrays, about 10 nK flops. Memory: ytil (n) + thetil (nK), plus y (n) and two counters of the
random stream (``key``, ``count``, 0-d uint64 arrays).

The rule's int seed (option ``rng``) and the batched-stream number fix the draws, so the
same seed gives the same run, chunked or in one pass.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import _f, _fill_z, _fprime
from ._random import as_u64, derive_key, sign_nb, signs
from .base import Rule, check_float_option, forward_values, register, resolve_seed

__all__ = ["UORO", "UOROState", "uoro_run_kernel"]


class UOROState(NamedTuple):
    """UORO's state: y(t) (n,), ytil (n,), thetil (n, K), and the random stream's key and count (0-d uint64)."""

    y: np.ndarray
    ytil: np.ndarray
    thetil: np.ndarray
    key: np.ndarray
    count: np.ndarray  # type: ignore[assignment]  # (a field named like tuple.count)


@register
@dataclasses.dataclass(frozen=True)
class UORO(Rule):
    """Unbiased Online Recurrent Optimization: a rank-one, unbiased estimate of RTRL's P.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        Source of the random signs, resolved once into an int seed kept as the option
        (so ``options()`` is JSON-able and rebuilds the same rule).
    eps : float > 0
        Added to the norms in the rescaling factors rho0, rho1 (default 1e-7).

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("uoro", rng=0)
    >>> W = np.zeros((2, 4)); state = rule.init(W, np.zeros(2))
    >>> y, g, state = rule.step(W, state, np.ones(1), np.array([1.0, 0.0]), np.array([True, False]))
    >>> g.shape, state.thetil.shape, int(state.count)
    ((2, 4), (2, 4), 2)
    """

    rng: int | None = dataclasses.field(default=None)
    eps: float = 1e-7

    name = "uoro"
    exact = False
    unbiased = True
    cost = "O(nK): about 10 nK flops"
    memory = "n + nK (ytil, thetil)"
    dtypes = ("float64", "float32")

    def __post_init__(self):
        object.__setattr__(self, "rng", resolve_seed(self.name, self.rng))
        object.__setattr__(self, "eps", check_float_option(self.name, "eps", self.eps))

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        return UOROState(np.array(y0, dtype=W.dtype), np.zeros(n, W.dtype), np.zeros((n, K), W.dtype),
                         derive_key(self.rng, stream), np.array(0, dtype=np.uint64))

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        n, K = W.shape
        m = K - 1 - n
        eps = self.eps
        z, y_next, fp = forward_values(W, state.y, x, activation)  # z(t) (K,), y(t+1) (n,), f'(s(t)) (n,)
        nu = signs(state.key, state.count, n)  # random signs: (n,)
        a = fp * (W[:, m + 1:] @ state.ytil)  # f' o (W_rec ytil): (n,)
        b = np.outer(nu * fp, z)  # (nu o f') (x) z: (n, K)
        rho0 = np.sqrt((np.linalg.norm(state.thetil) + eps) / (np.linalg.norm(a) + eps))  # eq. u1
        rho1 = np.sqrt((np.linalg.norm(b) + eps) / (np.linalg.norm(nu) + eps))  # eq. u2
        ytil = rho0 * a + rho1 * nu  # eq. u3: (n,)
        thetil = state.thetil / rho0 + b / rho1  # eq. u4: (n, K)
        e = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
        g = -(e @ ytil) * thetil  # eq. u5, -sum_k e_k P~[k]: (n, K)
        y = y_next
        if teacher_forcing:  # paper eqs. 17-19: forced rows of P~ are zero
            y = np.where(mask_t, d, y_next)  # (n,)
            ytil = np.where(mask_t, 0.0, ytil)  # (n,)
        count = np.array(as_u64(state.count) + np.uint64(n), dtype=np.uint64)
        return y_next, g, UOROState(y, ytil, thetil, np.array(as_u64(state.key), dtype=np.uint64), count)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        key = as_u64(state.key)
        W, y, ytil, thetil, count, ys, G = uoro_run_kernel(
            W, state.y, state.ytil, state.thetil, key, as_u64(state.count), xs, ds, mask, lr, act, tf, clip,
            wmask, self.eps)
        st = UOROState(y, ytil, thetil, np.array(key, dtype=np.uint64), np.array(count, dtype=np.uint64))
        return W, st, ys, G

    def numbers(self, n, K):
        return 2 * n + n * K


@njit(cache=True, inline="always")
def _dot(W, k, off, v, L):
    """sum_{l < L} W[k, off + l] v[l] with eight partial sums.

    NOTE: shared by the kernels of the approximate rules (UORO, KF-RTRL, RFLO). A plain
    ``s += ...`` loop is one chain of dependent additions (no reassociation without fastmath),
    latency-bound at ~4 cycles per term; eight independent chains run ~5x faster. The order of
    the sum is fixed, so runs are reproducible bit for bit.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    s5 = 0.0
    s6 = 0.0
    s7 = 0.0
    l = 0
    while l + 8 <= L:
        s0 += W[k, off + l] * v[l]
        s1 += W[k, off + l + 1] * v[l + 1]
        s2 += W[k, off + l + 2] * v[l + 2]
        s3 += W[k, off + l + 3] * v[l + 3]
        s4 += W[k, off + l + 4] * v[l + 4]
        s5 += W[k, off + l + 5] * v[l + 5]
        s6 += W[k, off + l + 6] * v[l + 6]
        s7 += W[k, off + l + 7] * v[l + 7]
        l += 8
    while l < L:
        s0 += W[k, off + l] * v[l]
        l += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True, inline="always")
def _sumsq(A, rows, cols):
    """sum of A[i, j]^2 over i < rows, j < cols, with eight partial sums (see :func:`_dot`)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    s5 = 0.0
    s6 = 0.0
    s7 = 0.0
    for i in range(rows):
        r = A[i]
        j = 0
        while j + 8 <= cols:
            s0 += r[j] * r[j]
            s1 += r[j + 1] * r[j + 1]
            s2 += r[j + 2] * r[j + 2]
            s3 += r[j + 3] * r[j + 3]
            s4 += r[j + 4] * r[j + 4]
            s5 += r[j + 5] * r[j + 5]
            s6 += r[j + 6] * r[j + 6]
            s7 += r[j + 7] * r[j + 7]
            j += 8
        while j < cols:
            s0 += r[j] * r[j]
            j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True, nogil=True, fastmath={"contract"})
def uoro_run_kernel(W, y, ytil, thetil, key, count, xs, ds, mask, lr, act, tf, clip, wmask, eps):
    """Compiled UORO over a chunk, with the meaning of :func:`rtrl.rules.base.reference_run`.

    W (n, K), y (n,), ytil (n,), thetil (n, K) of one float type; key, count uint64; returns
    (W, y, ytil, thetil, count, ys (T, n), G (n, K)); nothing passed in is modified.
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    yt = ytil.copy()
    th = thetil.copy()
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    z = np.empty(K, dt)
    fp = np.empty(n, dt)
    e = np.empty(n, dt)
    nu = np.empty(n, dt)
    a = np.empty(n, dt)
    cnt = count
    one = np.uint64(1)
    nnu = np.sqrt(np.float64(n))  # ||nu|| for signs +-1
    nth2 = _sumsq(th, n, K)  # ||thetil||^2, carried from step to step
    for t in range(T):
        _fill_z(z, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        any_target = False
        nfp2 = 0.0
        na2 = 0.0
        for k in range(n):
            yk = _f(_dot(W, k, 0, z, K), act[k])
            ys[t, k] = yk
            c = _fprime(yk, act[k])
            fp[k] = c
            nfp2 += c * c
            if mask[t, k]:
                e[k] = ds[t, k] - yk
                any_target = True
            else:
                e[k] = 0.0
            # a = f' o (W_rec ytil), with the weights of this step
            ak = c * _dot(W, k, m + 1, yt, n)
            a[k] = ak
            na2 += ak * ak
            nu[k] = sign_nb(key, cnt)
            cnt += one
        nz2 = 0.0
        for j in range(K):
            nz2 += z[j] * z[j]
        nb = np.sqrt(nfp2) * np.sqrt(nz2)  # ||(nu o f') (x) z|| = ||f'|| ||z||
        rho0 = np.sqrt((np.sqrt(nth2) + eps) / (np.sqrt(na2) + eps))  # eq. u1
        rho1 = np.sqrt((nb + eps) / (nnu + eps))  # eq. u2
        # eq. u3: ytil' = rho0 a + rho1 nu; the gradient's coefficient -(e . ytil')
        coef = 0.0
        for k in range(n):
            v = rho0 * a[k] + rho1 * nu[k]
            yt[k] = v
            coef -= e[k] * v
        # eq. u4: thetil' = thetil / rho0 + b / rho1 (and its squared norm)
        inv0 = 1.0 / rho0
        inv1 = 1.0 / rho1
        for i in range(n):
            ci = nu[i] * fp[i] * inv1
            for j in range(K):
                th[i, j] = th[i, j] * inv0 + ci * z[j]
        nth2 = _sumsq(th, n, K)  # as at a chunk's start: one pass gives the chunked run's bits
        if any_target:
            # eq. u5: g = coef * thetil' (masked); G += g; clipped real-time update
            scale = lr
            if lr != 0.0 and clip > 0.0:
                if wmask is None:
                    gn2 = coef * coef * nth2
                else:
                    gn2 = 0.0
                    for i in range(n):
                        for j in range(K):
                            gv = coef * th[i, j] * wmask[i, j]
                            gn2 += gv * gv
                norm = np.sqrt(gn2)
                if norm > clip:
                    scale = lr * clip / norm
            if lr != 0.0:  # G += g and the real-time update W -= lr g, in one pass
                for i in range(n):
                    for j in range(K):
                        gv = coef * th[i, j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
                        W[i, j] -= scale * gv
            else:
                for i in range(n):
                    for j in range(K):
                        gv = coef * th[i, j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
        # Teacher forcing: forced units feed their target forward; their rows of P~ are zero.
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                yt[k] = 0.0
            else:
                y[k] = ys[t, k]
    return W, y, yt, th, cnt, ys, G
