"""Numba-compiled RTRL kernels: the default engine.

The whole time loop is compiled (``cache=True``, so a new process loads it from
disk instead of compiling again). The kernels have the same meaning as
:func:`rtrl.reference.rtrl_run` and are tested against it step by step.

Two inner products are offered for the sensitivity update ``W_rec @ P``:
explicit loops (small networks, where call overhead dominates) and a BLAS
matrix product (larger networks). :func:`choose_blas` picks one by size.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["rtrl_run_kernel", "choose_blas", "BLAS_MIN_UNITS"]

#: From this many units on, the sensitivity update uses a BLAS product.
BLAS_MIN_UNITS = 24


def choose_blas(n_units: int) -> bool:
    """Return True if a network of ``n_units`` units should use the BLAS path."""
    return n_units >= BLAS_MIN_UNITS


@njit(cache=True, inline="always")
def _f(s, act):
    if act == 0:
        return 0.5 * (1.0 + np.tanh(0.5 * s))
    return np.tanh(s)


@njit(cache=True, inline="always")
def _fprime(y, act):
    if act == 0:
        return y * (1.0 - y)
    return 1.0 - y * y


@njit(cache=True)
def rtrl_run_kernel(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm=0.0):
    """Compiled RTRL over a sequence; arguments are not modified.

    W (n, K), y (n,), P (n, n, K) C-contiguous float64; xs (T, m); ds, mask (T, n);
    lr float (0 = weights fixed); act int code; tf bool; use_blas bool;
    clip_norm float (> 0: per-step gradient norm clipping before the weight change).
    Returns (W, y, P, ys (T, n), G (n, K)) as in :func:`rtrl.reference.rtrl_run`.
    """
    n, K = W.shape
    m = K - 1 - n
    nK = n * K
    T = xs.shape[0]
    W = W.copy()
    y = y.copy()
    P2 = P.copy().reshape(n, nK)  # P as rows of n*K numbers: (n, nK)
    Pn2 = np.empty((n, nK))
    Wrec = np.ascontiguousarray(W[:, m + 1:])  # (n, n), kept in step with W
    ys = np.empty((T, n))
    G = np.zeros((n, K))
    z = np.empty(K)
    yn = np.empty(n)
    fp = np.empty(n)
    e = np.empty(n)
    g = np.empty(nK)
    for t in range(T):
        # z(t) = [x(t), 1, y(t)]
        for j in range(m):
            z[j] = xs[t, j]
        z[m] = 1.0
        for k in range(n):
            z[m + 1 + k] = y[k]
        # s(t) = W z(t); y(t+1) = f(s(t))
        any_target = False
        for k in range(n):
            s = 0.0
            for j in range(K):
                s += W[k, j] * z[j]
            yn[k] = _f(s, act)
            fp[k] = _fprime(yn[k], act)
            if mask[t, k]:
                e[k] = ds[t, k] - yn[k]
                any_target = True
            else:
                e[k] = 0.0
            ys[t, k] = yn[k]
        # P(t+1) = diag(f') (W_rec P(t) + delta z)   (paper eq. 12)
        if use_blas:
            np.dot(Wrec, P2, Pn2)
        else:
            for k in range(n):
                for q in range(nK):
                    Pn2[k, q] = 0.0
                for l in range(n):
                    w = Wrec[k, l]
                    if w != 0.0:
                        for q in range(nK):
                            Pn2[k, q] += w * P2[l, q]
        for k in range(n):
            base = k * K
            for j in range(K):
                Pn2[k, base + j] += z[j]
            c = fp[k]
            for q in range(nK):
                Pn2[k, q] *= c
        # dJ(t)/dW = -sum_k e_k P(t+1)[k]; real-time update W -= lr * dJ(t)/dW
        if any_target:
            for q in range(nK):
                g[q] = 0.0
            for k in range(n):
                ek = e[k]
                if ek != 0.0:
                    for q in range(nK):
                        g[q] -= ek * Pn2[k, q]
            for i in range(n):
                for j in range(K):
                    G[i, j] += g[i * K + j]
            if lr != 0.0:
                scale = lr
                if clip_norm > 0.0:
                    norm = 0.0
                    for q in range(nK):
                        norm += g[q] * g[q]
                    norm = np.sqrt(norm)
                    if norm > clip_norm:
                        scale = lr * clip_norm / norm
                for i in range(n):
                    for j in range(K):
                        W[i, j] -= scale * g[i * K + j]
                    for l in range(n):
                        Wrec[i, l] = W[i, m + 1 + l]
        # Teacher forcing: forced units feed their target and lose their sensitivity.
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                for q in range(nK):
                    Pn2[k, q] = 0.0
            else:
                y[k] = yn[k]
        tmp = P2
        P2 = Pn2
        Pn2 = tmp
    return W, y, P2.reshape(n, n, K).copy(), ys, G
