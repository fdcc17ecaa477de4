"""Exact real-time gradients at O(n^3) per step: Schmidhuber's (1992) RTRL/BPTT hybrid.

Schmidhuber, J. (1992). "A fixed size storage O(n^3) time complexity learning algorithm
for fully recurrent continually running networks". Neural Computation 4(2):243-248.

The sensitivity recursion of RTRL (paper eq. 12, with teacher forcing) is linear in P::

    P(t+1) = D(t) [A(t) P(t) + B(t)]        P: (n, n, K), seen as (n, nK)
    A(t) = diag(f'(s(t))) W_rec(t)           (n, n), with the weights *of step t*
    B(t)[k, i, j] = f'_k(t) delta_ik z_j(t)
    D(t) = diag(1 - forced(t))               (identity without teacher forcing)

and the per-step gradient is ``dJ(t)/dW = -e(t)^T [A(t) P(t) + B(t)]`` (the un-zeroed
P(t+1)). The hybrid keeps the full P only at block boundaries t0, t0+h, ... Inside a block
it stores A(tau), f'(tau), z(tau), D(tau) for each step (O(h n^2) numbers) and gets the
gradient of step t by propagating e(t) back to t0 (BPTT within the block)::

    lambda_t = e(t);   c_tau = lambda_tau o f'(tau);   lambda_{tau-1} = D(tau-1) A(tau)^T lambda_tau
    dJ(t)/dW = -sum_{tau=t0..t} c_tau (x) z(tau)  -  (A(t0)^T lambda_t0)^T P(t0)

at O(n^2 h + n K h + n^2 K) per step. At the block's end P(t0+h) is advanced once by the
accumulated products (O(n^3 h + n^2 h K + n^3 K)). With h ~ n every step costs O(n^3) on
average instead of RTRL's O(n^4), and the storage stays O(n^3), independent of T.

Nothing is approximated: the same sums are formed in another order. Because each step's
A(t) is stored with the weights of that step, the weights may change after every step
(real-time learning) and the result equals real-time RTRL to rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import _combine_rows, _f, _fill_z, _fprime

__all__ = ["hybrid_run_kernel", "default_block"]


def default_block(n_units: int) -> int:
    """Block length h used when none is given: about n/2 (at least 4)."""
    # NOTE: h ~ n/2 balances the per-step back-propagation (O(n^2 h)) against the block-end
    # products amortised over h steps (O(n^3 K / h)); measured best near h = n/2 on our
    # machine (n = 32, 64, 128; docs/performance.md).
    return max(4, int(n_units) // 2)


#: From this many numbers in P(t0) on, the per-step read goes through BLAS when more than one thread
#: is in use (:func:`use_blas_read`).
PARALLEL_READ_MIN = 1 << 17


def use_blas_read(n: int, K: int, threads: int) -> bool:
    """Whether the hybrid reads P(t0) with BLAS (dgemv, multithreaded) rather than its own loop.

    NOTE (measured at n = 128 on the 2-core development machine): the loop is ~5 % faster on one
    thread; dgemv on two threads is ~1.8x faster than either. A parallel Numba loop was tried and
    is slower: its OpenMP threads and OpenBLAS's spin against each other on the same cores.
    """
    return threads > 1 and n * n * K >= PARALLEL_READ_MIN


@njit(cache=True, nogil=True, fastmath={"contract"})
def hybrid_run_kernel(W, y, P, xs, ds, mask, lr, act, tf, block, clip_norm, wmask=None, fault=None, blas_read=False):
    """Real-time learning with the exact RTRL gradients, computed by the block hybrid.

    Same arguments and results as :func:`rtrl.kernels.rtrl_run_kernel` (less ``use_blas``,
    plus ``block``, the block length h >= 1; ``wmask`` as there): W (n, K), y (n,), P (n, n, K) float64
    C-contiguous (the sensitivities at the start, already zeroed for forced units);
    xs (T, m); ds, mask (T, n). Returns (W, y, P, ys (T, n), G (n, K)).

    ``blas_read``: read P(t0) each step with BLAS (multithreaded) instead of the loop
    (:func:`use_blas_read`); the same sums in another order (rounding).

    ``fault`` is for tests only (None, the default, compiles to the exact method): 1 drops the
    carried sensitivities Phi P(t0) at each block end (BPTT within blocks without RTRL's carry),
    a wrong block boundary the tests must catch.
    """
    n, K = W.shape
    m = K - 1 - n
    nK = n * K
    T = xs.shape[0]
    h = block
    dt = W.dtype
    # float32: products of many A(tau) fall below 1e-30 within a block, into the subnormal numbers,
    # whose arithmetic is ~100x slower on x86; they are 1e23 times below float32's resolution of the
    # sums they enter, so they are set to 0 (measured: 3.5x faster at n = 128). float64: nothing.
    flush = 1e-30 if W.itemsize == 4 else 0.0
    W = W.copy()
    y = y.copy()
    # NOTE: explicit copies instead of reshape: it pulls in Numba's error formatting (slow compile).
    P0 = np.empty((n, nK), dt)  # P(t0): (n, nK)
    for k in range(n):
        for i in range(n):
            for j in range(K):
                P0[k, i * K + j] = P[k, i, j]
    As = np.empty((h, n, n), dt)  # A(tau) = diag(f') W_rec(tau)
    fps = np.empty((h, n), dt)  # f'(s(tau))
    Zs = np.empty((h, K), dt)  # z(tau)
    keeps = np.empty((h, n), dt)  # diagonal of D(tau)
    C = np.empty((h, n), dt)  # c_tau for the current step
    lam = np.empty(n, dt)
    lam2 = np.empty(n, dt)
    g = np.empty(nK, dt)  # -dJ(t)/dW as a row of nK numbers
    gz = np.empty((n, K), dt)
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    z = np.empty(K, dt)
    e = np.empty(n, dt)
    sv = np.empty(n, dt)
    Psi = np.empty((n, n), dt)
    Psi2 = np.empty((n, n), dt)
    CM = np.empty((h, n * n), dt)  # block end: CM[tau, k*n + i] = Psi_tau[k, i] f'_i(tau)
    Pnew = np.empty((n * n, K), dt)  # rows k*n + i: the same numbers as (n, nK)
    Ptmp = np.empty((n, nK), dt)
    s_in = 0  # steps stored in the current block
    for t in range(T):
        r0 = s_in
        # forward step with the current weights: z(t), y(t+1), f', e(t)
        _fill_z(z, xs[t], y, m, n)
        any_target = False
        np.dot(W, z, sv)  # s(t) = W z(t)
        for k in range(n):
            yk = _f(sv[k], act[k])
            ys[t, k] = yk
            fk = _fprime(yk, act[k])
            fps[r0, k] = fk
            if mask[t, k]:
                e[k] = ds[t, k] - yk
                any_target = True
            else:
                e[k] = 0.0
            for l in range(n):
                As[r0, k, l] = fk * W[k, m + 1 + l]
        for j in range(K):
            Zs[r0, j] = z[j]
        if any_target:
            # back-propagate e(t) through the block: c_tau and finally lambda at t0
            for k in range(n):
                lam[k] = e[k]
            for r in range(r0, -1, -1):
                for k in range(n):
                    C[r, k] = lam[k] * fps[r, k]
                # lam2 = A(tau)^T lam, by rows of A (vectorised axpys). NOTE: explicit loops, not BLAS:
                # the same speed on one thread, and no small BLAS call per step for BLAS's threads to
                # wake up for when several are in use.
                Ar = As[r]
                for l in range(n):
                    lam2[l] = 0.0
                for k in range(n):
                    lk = lam[k]
                    row = Ar[k]
                    for l in range(n):
                        lam2[l] += lk * row[l]
                if r > 0:
                    kp = keeps[r - 1]
                    for l in range(n):
                        lam[l] = lam2[l] * kp[l]
                else:
                    for l in range(n):
                        lam[l] = lam2[l]
                if flush > 0.0:
                    for l in range(n):
                        if abs(lam[l]) < flush:
                            lam[l] = 0.0
            # -dJ(t)/dW = lambda^T P(t0) + sum_tau c_tau (x) z(tau)
            # g = lam^T P(t0), the step's one read of all of P(t0) (the hybrid's per-step floor).
            # NOTE: a loop over four rows of P(t0) per pass: ~5 % faster here than BLAS dgemv
            # (and Numba's vector @ matrix path is ~5x slower).
            if blas_read:
                np.dot(P0.T, lam, g)  # BLAS dgemv: the step's one read of P(t0), on all threads
            else:
                _combine_rows(g, lam, P0, n, nK)
            np.dot(C[:r0 + 1].T, Zs[:r0 + 1], gz)  # sum_tau c_tau (x) z(tau): (n, K)
            for i in range(n):
                gi = gz[i]
                base = i * K
                for j in range(K):
                    g[base + j] += gi[j]
            if wmask is not None:  # the connectivity mask (weights that stay zero)
                for i in range(n):
                    for j in range(K):
                        g[i * K + j] *= wmask[i, j]
            for i in range(n):
                for j in range(K):
                    G[i, j] -= g[i * K + j]
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
                        W[i, j] += scale * g[i * K + j]
        # teacher forcing: D(t), and what z(t+1) holds
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                keeps[r0, k] = 0.0
            else:
                y[k] = ys[t, k]
                keeps[r0, k] = 1.0
        s_in += 1
        if s_in == h or t == T - 1:
            # Block end: P(t0+s) = sum_tau Psi_tau B(tau) + Phi P(t0) with
            # Psi_{last} = D(last), Psi_{tau-1} = Psi_tau A(tau) D(tau-1), Phi = Psi_0 A(0).
            last = s_in - 1
            for k in range(n):
                for i in range(n):
                    Psi[k, i] = keeps[last, i] if k == i else 0.0
            for r in range(last, -1, -1):
                fr = fps[r]
                for k in range(n):
                    for i in range(n):
                        CM[r, k * n + i] = Psi[k, i] * fr[i]
                np.dot(Psi, As[r], Psi2)  # Psi_tau A(tau)
                if r > 0:
                    kp = keeps[r - 1]
                    for k in range(n):
                        for i in range(n):
                            Psi[k, i] = Psi2[k, i] * kp[i]
                else:
                    for k in range(n):
                        for i in range(n):
                            Psi[k, i] = Psi2[k, i]  # Phi
                if flush > 0.0:
                    for k in range(n):
                        for i in range(n):
                            if abs(Psi[k, i]) < flush:
                                Psi[k, i] = 0.0
            # sum_tau Psi_tau B(tau): (n*n, s) @ (s, K) -> (n*n, K) == (n, nK)
            np.dot(CM[:s_in].T, Zs[:s_in], Pnew)
            np.dot(Psi, P0, Ptmp)
            if fault is not None:  # tests only (pruned from the default compilation)
                if fault == 1:
                    Ptmp[:] = 0.0  # the wrong boundary: P(t0) is not carried into the next block
            for k in range(n):
                for i in range(n):
                    pk = Pnew[k * n + i]
                    for j in range(K):
                        P0[k, i * K + j] = pk[j] + Ptmp[k, i * K + j]
            s_in = 0
    Pout = np.empty((n, n, K), dt)
    for k in range(n):
        for i in range(n):
            for j in range(K):
                Pout[k, i, j] = P0[k, i * K + j]
    return W, y, Pout, ys, G
