"""KF-RTRL: Kronecker-factored RTRL (Mujika, Meier & Steger, NeurIPS 2018).

The sensitivities are kept as one Kronecker product, ``P[k, i, j] ~ A[k, i] u[j]`` with
A (n, n) and u (K,), an unbiased estimate of the exact P at every step. In the notation of
``docs/conventions.md`` (W (n, K), z(t) = [x(t), 1, y(t)], W_rec = W[:, m+1:])::

    y(t+1) = f(W z(t)),  f' = f'(s(t)) (n,)
    exact:  P' = diag(f') W_rec P + diag(f') (x) z(t)   (paper eq. 12; with P = A (x) u:
            P' = M (x) u + diag(f') (x) z, a sum of two Kronecker products)
    M     = f'[:, None] * (W_rec A)                                   (n, n)      (eq. k1)
    p1    = sqrt((||M|| + eps) / (||u|| + eps))                                   (eq. k2)
    p2    = sqrt((||f'|| + eps) / (||z|| + eps))                                  (eq. k3)
    c1, c2 = two independent random signs +-1 (:mod:`rtrl.rules._random`)
    u'    = c1 p1 u + c2 p2 z                                         (K,)        (eq. k4)
    A'    = (c1 / p1) M + (c2 / p2) diag(f')                          (n, n)      (eq. k5)
    e(t)  = mask(t) o (d(t) - y(t+1))
    g[i, j] = -(e^T A')_i u'_j         (estimate of dJ(t)/dW)                     (eq. k6)

Unbiasedness: A' (x) u' = c1^2 M (x) u + c2^2 diag(f') (x) z
+ c1 c2 ((p2 / p1) M (x) z + (p1 / p2) diag(f') (x) u). Since c1^2 = c2^2 = 1 and
E[c1 c2] = 0 (independent fair signs, independent of everything before; p1, p2 do not depend
on them), E[A' (x) u' | past] = M (x) u + diag(f') (x) z, which is the exact recursion
applied to the previous estimate A (x) u. The recursion is linear, so by induction
E[A (x) u] = P at every step (with W fixed), and E[g] = -e^T P(t+1) = dJ(t)/dW. The factors
p1, p2 only balance the norms of the two terms of each product to reduce the variance.

Teacher forcing (paper eqs. 17-19): the gradient uses the un-zeroed A'; then forced units
take their target and their rows of A' are zeroed (P[k] = A[k] (x) u = 0 for them).

Cost per step: O(n^3) -- the (n, n) . (n, n) product W_rec A (2 n^3 flops) plus O(n^2 + nK).
Memory: A (n^2) + u (K), plus y (n) and the random stream's ``key`` and ``count``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import _f, _fill_z, _fprime
from ._random import as_u64, derive_key, sign_nb, signs
from .uoro import _dot, _sumsq
from .base import Rule, check_float_option, forward_values, register, resolve_seed

__all__ = ["KFRTRL", "KFState", "kfrtrl_run_kernel"]


class KFState(NamedTuple):
    """KF-RTRL's state: y(t) (n,), A (n, n), u (K,), and the random stream's key and count (0-d uint64)."""

    y: np.ndarray
    A: np.ndarray
    u: np.ndarray
    key: np.ndarray
    count: np.ndarray  # type: ignore[assignment]  # (a field named like tuple.count)


@register
@dataclasses.dataclass(frozen=True)
class KFRTRL(Rule):
    """Kronecker-factored RTRL: an unbiased estimate P ~ A (x) u at O(n^3) per step.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        Source of the random signs, resolved once into an int seed kept as the option.
    eps : float > 0
        Added to the norms in the balancing factors p1, p2 (default 1e-7).

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("kf-rtrl", rng=0)
    >>> W = np.zeros((2, 4)); state = rule.init(W, np.zeros(2))
    >>> y, g, state = rule.step(W, state, np.ones(1), np.array([1.0, 0.0]), np.array([True, False]))
    >>> g.shape, state.A.shape, state.u.shape, int(state.count)
    ((2, 4), (2, 2), (4,), 2)
    """

    rng: int | None = dataclasses.field(default=None)
    eps: float = 1e-7

    name = "kf-rtrl"
    exact = False
    unbiased = True
    cost = "O(n^3): 2 n^3 flops (W_rec A)"
    memory = "n^2 + K (A, u)"
    dtypes = ("float64", "float32")

    def __post_init__(self):
        object.__setattr__(self, "rng", resolve_seed(self.name, self.rng))
        object.__setattr__(self, "eps", check_float_option(self.name, "eps", self.eps))

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        return KFState(np.array(y0, dtype=W.dtype), np.zeros((n, n), W.dtype), np.zeros(K, W.dtype),
                       derive_key(self.rng, stream), np.array(0, dtype=np.uint64))

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        n, K = W.shape
        m = K - 1 - n
        eps = self.eps
        z, y_next, fp = forward_values(W, state.y, x, activation)  # z(t) (K,), y(t+1) (n,), f'(s(t)) (n,)
        M = fp[:, None] * (W[:, m + 1:] @ state.A)  # eq. k1: (n, n)
        p1 = np.sqrt((np.linalg.norm(M) + eps) / (np.linalg.norm(state.u) + eps))  # eq. k2
        p2 = np.sqrt((np.linalg.norm(fp) + eps) / (np.linalg.norm(z) + eps))  # eq. k3
        c1, c2 = signs(state.key, state.count, 2)  # two independent signs
        u = c1 * p1 * state.u + c2 * p2 * z  # eq. k4: (K,)
        A = (c1 / p1) * M + (c2 / p2) * np.diag(fp)  # eq. k5: (n, n)
        e = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
        g = -np.outer(e @ A, u)  # eq. k6, -sum_k e_k A[k, i] u[j]: (n, K)
        y = y_next
        if teacher_forcing:  # paper eqs. 17-19: forced rows of P~ = A (x) u are zero
            y = np.where(mask_t, d, y_next)  # (n,)
            A = np.where(mask_t[:, None], 0.0, A)  # (n, n)
        count = np.array(as_u64(state.count) + np.uint64(2), dtype=np.uint64)
        return y_next, g, KFState(y, A, u, np.array(as_u64(state.key), dtype=np.uint64), count)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        key = as_u64(state.key)
        W, y, A, u, count, ys, G = kfrtrl_run_kernel(
            W, state.y, state.A, state.u, key, as_u64(state.count), xs, ds, mask, lr, act, tf, clip, wmask,
            self.eps)
        st = KFState(y, A, u, np.array(key, dtype=np.uint64), np.array(count, dtype=np.uint64))
        return W, st, ys, G

    def numbers(self, n, K):
        return n + n * n + K


@njit(cache=True, nogil=True, fastmath={"contract"})
def kfrtrl_run_kernel(W, y, A, u, key, count, xs, ds, mask, lr, act, tf, clip, wmask, eps):
    """Compiled KF-RTRL over a chunk, with the meaning of :func:`rtrl.rules.base.reference_run`.

    W (n, K), y (n,), A (n, n), u (K,) of one float type; key, count uint64; returns
    (W, y, A, u, count, ys (T, n), G (n, K)); nothing passed in is modified.
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    Aa = A.copy()  # A (the estimate's left factor)
    Ab = np.empty((n, n), dt)  # the next A
    uu = u.copy()
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    z = np.empty(K, dt)
    fp = np.empty(n, dt)
    e = np.empty(n, dt)
    v = np.empty(n, dt)  # e^T A'
    cnt = count
    one = np.uint64(1)
    for t in range(T):
        _fill_z(z, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        any_target = False
        nfp2 = 0.0
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
        # eq. k1: M = f' o (W_rec A), written into Ab; four rows of A per pass (vectorised over i)
        for k in range(n):
            Mk = Ab[k]
            for i in range(n):
                Mk[i] = 0.0
            l = 0
            while l + 4 <= n:
                w0 = W[k, m + 1 + l]
                w1 = W[k, m + 2 + l]
                w2 = W[k, m + 3 + l]
                w3 = W[k, m + 4 + l]
                r0 = Aa[l]
                r1 = Aa[l + 1]
                r2 = Aa[l + 2]
                r3 = Aa[l + 3]
                for i in range(n):
                    Mk[i] = Mk[i] + w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]
                l += 4
            while l < n:
                w0 = W[k, m + 1 + l]
                r0 = Aa[l]
                for i in range(n):
                    Mk[i] = Mk[i] + w0 * r0[i]
                l += 1
            c = fp[k]
            for i in range(n):
                Mk[i] = c * Mk[i]
        nM2 = _sumsq(Ab, n, n)
        nu2 = 0.0
        nz2 = 0.0
        for j in range(K):
            nu2 += uu[j] * uu[j]
            nz2 += z[j] * z[j]
        p1 = np.sqrt((np.sqrt(nM2) + eps) / (np.sqrt(nu2) + eps))  # eq. k2
        p2 = np.sqrt((np.sqrt(nfp2) + eps) / (np.sqrt(nz2) + eps))  # eq. k3
        c1 = sign_nb(key, cnt)
        c2 = sign_nb(key, cnt + one)
        cnt += np.uint64(2)
        # eq. k4: u' = c1 p1 u + c2 p2 z
        a1 = c1 * p1
        a2 = c2 * p2
        for j in range(K):
            uu[j] = a1 * uu[j] + a2 * z[j]
        # eq. k5: A' = (c1 / p1) M + (c2 / p2) diag(f'); v = e^T A'
        b1 = c1 / p1
        b2 = c2 / p2
        for i in range(n):
            v[i] = 0.0
        for k in range(n):
            Ak = Ab[k]
            for i in range(n):
                Ak[i] = b1 * Ak[i]
            Ak[k] += b2 * fp[k]
            ek = e[k]
            if ek != 0.0:
                for i in range(n):
                    v[i] += ek * Ak[i]
        if any_target:
            # eq. k6: g[i, j] = -v_i u'_j (masked); G += g; clipped real-time update
            scale = lr
            if lr != 0.0 and clip > 0.0:
                gn2 = 0.0
                if wmask is None:
                    nv2 = 0.0
                    for i in range(n):
                        nv2 += v[i] * v[i]
                    nuu2 = 0.0
                    for j in range(K):
                        nuu2 += uu[j] * uu[j]
                    gn2 = nv2 * nuu2
                else:
                    for i in range(n):
                        for j in range(K):
                            gv = v[i] * uu[j] * wmask[i, j]
                            gn2 += gv * gv
                norm = np.sqrt(gn2)
                if norm > clip:
                    scale = lr * clip / norm
            if lr != 0.0:  # G += g and the real-time update W -= lr g, in one pass
                for i in range(n):
                    vi = v[i]
                    for j in range(K):
                        gv = -vi * uu[j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
                        W[i, j] -= scale * gv
            else:
                for i in range(n):
                    vi = v[i]
                    for j in range(K):
                        gv = -vi * uu[j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
        # Teacher forcing: forced units feed their target forward; their rows of A are zero.
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                for i in range(n):
                    Ab[k, i] = 0.0
            else:
                y[k] = ys[t, k]
        tmp = Aa
        Aa = Ab
        Ab = tmp
    return W, y, Aa, uu, cnt, ys, G
