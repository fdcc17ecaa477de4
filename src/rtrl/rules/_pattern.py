"""Sensitivities kept on a fixed pattern: the engine shared by subgrouping and SnAp.

Exact RTRL (paper eq. 12) updates, for every weight row i, the column ``P[:, i, :]`` of
the sensitivities ``P[k, i, j] = dy_k/dw_ij``::

    P(t+1)[k, i, :] = f'_k(t) (sum_l W_rec[k, l] P(t)[l, i, :] + delta_ki z(t))

The approximations here keep, for each row i, only the entries k of a set S_i (always
with i in S_i) and treat the others as zero. The update of column i then reads only the
kept rows, so it closes on itself: with ``P_i`` the (|S_i|, K) block of kept rows (in
the order of S_i, which is sorted)::

    P_i(t+1) = diag(f'_{S_i}(t)) (W_rec[S_i, S_i] P_i(t) + [S_i == i] z(t))       (*)
    dJ(t)/dW[i, :] ~ -sum_{a} e_{S_i[a]}(t) P_i(t+1)[a, :]

Teacher forcing (paper eqs. 17-19) after the gradient and the weight change: forced
units take their target, and every stored row of a forced unit k (row ``a`` of ``P_i``
with ``S_i[a] = k``, for every i) becomes 0. With every S_i = all units this is exact RTRL.

Storage: all blocks in one array ``P`` of shape (sum_i |S_i|, K), the blocks one after the
other; the sets in ``idx`` (S_0, S_1, ... concatenated) and ``off`` (n+1,) with
``S_i = idx[off[i]:off[i+1]]`` and ``P_i = P[off[i]:off[i+1]]`` (row r of P is the
sensitivity of unit ``idx[r]`` to the weights of its row i).
Cost per step: 2 K sum_i |S_i|^2 flops for (*) (plus the O(nK) forward pass); memory
K sum_i |S_i| numbers.

:func:`pattern_step` is the NumPy reference, :func:`pattern_run_kernel` the compiled loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import _f, _fill_z, _fprime
from .base import forward_values

__all__ = ["PatternState", "make_pattern", "groups_pattern", "reach_pattern", "pattern_init", "pattern_step",
           "pattern_run_kernel", "pattern_run", "dense_sensitivities", "pattern_size"]


class PatternState(NamedTuple):
    """State of the pattern rules: y(t) (n,), the kept sensitivities and their pattern.

    ``P`` (off[n], K) the blocks P_i one after the other; ``idx`` (off[n],) int64 the sets
    S_i concatenated (each sorted); ``off`` (n+1,) int64 the offsets of the sets in ``idx``.
    """

    y: np.ndarray
    P: np.ndarray
    idx: np.ndarray
    off: np.ndarray


def make_pattern(sets) -> tuple[np.ndarray, np.ndarray]:
    """(idx, off) int64 arrays from n sets of unit indices; set i must contain i."""
    n = len(sets)
    clean = []
    for i, s in enumerate(sets):
        s = np.unique(np.asarray(s, dtype=np.int64))
        if i not in s or s[0] < 0 or s[-1] >= n:
            raise ValueError(f"pattern: set {i} must hold unit {i} and units in [0, {n}), got {s.tolist()}")
        clean.append(s)
    off = np.zeros(n + 1, np.int64)
    off[1:] = np.cumsum([len(s) for s in clean])
    idx = np.concatenate(clean) if n else np.zeros(0, np.int64)
    return idx, off


def groups_pattern(labels) -> tuple[np.ndarray, np.ndarray]:
    """Subgrouping: S_i = the units with the same label as unit i."""
    labels = np.asarray(labels)
    return make_pattern([np.flatnonzero(labels == labels[i]) for i in range(len(labels))])


def reach_pattern(wmask, n: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """SnAp-``order``: S_i = units reachable from i in at most order-1 hops along the recurrent edges.

    Edge l -> k exists iff ``wmask[k, m+1+l] != 0`` (wmask None: every edge).
    """
    if wmask is None:
        adj = np.ones((n, n), dtype=np.int64)
    else:
        wm = np.asarray(wmask)
        adj = (wm[:, wm.shape[1] - n:] != 0).astype(np.int64)  # adj[k, l]: edge l -> k
    reach = np.eye(n, dtype=np.int64)  # reach[k, i]: k reachable from i
    for _ in range(order - 1):
        nxt = ((reach + adj @ reach) > 0).astype(np.int64)
        if np.array_equal(nxt, reach):
            break  # saturated: every further hop adds nothing
        reach = nxt
    return make_pattern([np.flatnonzero(reach[:, i]) for i in range(n)])


def pattern_size(idx, off) -> int:
    """sum_i |S_i|: the number of kept (k, i) pairs."""
    return int(off[-1])


def pattern_init(W, y0, idx, off) -> PatternState:
    """Zero sensitivities on the pattern (idx, off), outputs y0; arrays of W's float type."""
    K = W.shape[1]
    return PatternState(np.array(y0, dtype=W.dtype), np.zeros((int(off[-1]), K), W.dtype),
                        np.array(idx, dtype=np.int64), np.array(off, dtype=np.int64))


def dense_sensitivities(state: PatternState, K: int) -> np.ndarray:
    """The kept sensitivities as a full (n, n, K) array P[k, i, j] (zero off the pattern)."""
    idx, off = state.idx, state.off
    n = off.shape[0] - 1
    P = np.zeros((n, n, K), state.P.dtype)
    for i in range(n):
        S = idx[off[i]:off[i + 1]]
        P[S, i, :] = state.P[off[i]:off[i + 1]]
    return P


def pattern_step(W, state: PatternState, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
    """One step of the NumPy reference: ``(y_next (n,), g (n, K), new_state)``; nothing is modified."""
    y, P, idx, off = state
    n, K = W.shape
    m = K - 1 - n
    z, y_next, fp = forward_values(W, y, x, activation)  # z(t) (K,), y(t+1) (n,), f'(s(t)) (n,)
    W_rec = W[:, m + 1:]  # (n, n)
    e = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
    forced = np.asarray(mask_t, dtype=bool) & bool(teacher_forcing)  # (n,)
    P_next = np.empty_like(P)
    g = np.zeros((n, K))
    for i in range(n):
        S = idx[off[i]:off[i + 1]]  # S_i: (s,)
        Pi = P[off[i]:off[i + 1]]  # P_i(t): (s, K)
        Qi = W_rec[np.ix_(S, S)] @ Pi  # (s, K)
        Qi[S == i] += z
        Qi *= fp[S][:, None]  # P_i(t+1), eq. (*)
        g[i] = -(e[S] @ Qi)  # the gradient uses the un-zeroed P_i(t+1)
        Qi[forced[S]] = 0.0  # teacher forcing: a forced unit's sensitivities are 0
        P_next[off[i]:off[i + 1]] = Qi
    y_new = np.where(forced, d, y_next)
    return y_next, g, PatternState(y_new, P_next, idx, off)


@njit(cache=True, inline="always")
def _forward(W, z, ys_t, fp, e, ds_t, mask_t, act, n, K):
    """y(t+1) = f(W z(t)) into ys_t, f' into fp, e(t) into e."""
    for k in range(n):
        s = 0.0
        for j in range(K):
            s += W[k, j] * z[j]
        yk = _f(s, act[k])
        ys_t[k] = yk
        fp[k] = _fprime(yk, act[k])
        e[k] = ds_t[k] - yk if mask_t[k] else 0.0


@njit(cache=True, inline="always")
def _combine(out, ro, C, a, R, r0, size, K, zc, z):
    """out[ro, j] = zc z[j] + sum_b C[a, b] R[r0 + b, j] for j < K, b < size (size >= 1).

    NOTE: plain 2-D indexing (no row views: views assigned in several places cost reference
    counting inside the loops, 2-4x slower as measured) and four rows of R per pass, which
    LLVM vectorises over j; the sum keeps the order of the plain loop over b.
    """
    if size >= 4:
        a0 = C[a, 0]
        a1 = C[a, 1]
        a2 = C[a, 2]
        a3 = C[a, 3]
        for j in range(K):
            out[ro, j] = zc * z[j] + a0 * R[r0, j] + a1 * R[r0 + 1, j] + a2 * R[r0 + 2, j] + a3 * R[r0 + 3, j]
        b = 4
    else:
        d0 = C[a, 0]
        for j in range(K):
            out[ro, j] = zc * z[j] + d0 * R[r0, j]
        b = 1
    while b + 4 <= size:
        c0 = C[a, b]
        c1 = C[a, b + 1]
        c2 = C[a, b + 2]
        c3 = C[a, b + 3]
        rb = r0 + b
        for j in range(K):
            out[ro, j] = out[ro, j] + c0 * R[rb, j] + c1 * R[rb + 1, j] + c2 * R[rb + 2, j] + c3 * R[rb + 3, j]
        b += 4
    while b < size:
        f0 = C[a, b]
        if f0 != 0.0:
            rb = r0 + b
            for j in range(K):
                out[ro, j] = out[ro, j] + f0 * R[rb, j]
        b += 1


@njit(cache=True, inline="always")
def _apply_update(W, g, grow, G, wmask, lr, clip_norm, n, K):
    """g *= wmask; G += g; with lr != 0: clip g to ``clip_norm`` (> 0), then W -= lr g.

    Only the rows i with ``grow[i]`` hold an estimate; the other rows of g count as zero.
    """
    if wmask is not None:
        for i in range(n):
            if grow[i]:
                for j in range(K):
                    g[i, j] *= wmask[i, j]
    scale = lr
    if lr != 0.0 and clip_norm > 0.0:
        norm = 0.0
        for i in range(n):
            if grow[i]:
                for j in range(K):
                    norm += g[i, j] * g[i, j]
        norm = np.sqrt(norm)
        if norm > clip_norm:
            scale = lr * clip_norm / norm
    for i in range(n):
        if grow[i]:
            for j in range(K):
                G[i, j] += g[i, j]
            if lr != 0.0:
                for j in range(K):
                    W[i, j] -= scale * g[i, j]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _sensitivity_step(W, Pa, Pb, A, idx, off, fp, e, keep, z, g, grow, n, m, K):
    """Pb = P(t+1) from Pa = P(t) on the pattern (eq. (*)); rows of g from the new rows.

    Returns whether any row of g holds an estimate (``grow`` marks them).

    NOTE: a function of its own (not inlined): with the buffers swapped in the caller's loop,
    LLVM no longer vectorised the row loops (measured 2x slower); as arguments they are.
    """
    any_row = False
    for i in range(n):
        o = off[i]
        size = off[i + 1] - o  # P_i(t) = Pa[o:o + size]
        for a in range(size):  # A = diag(f'_{S_i}) W_rec[S_i, S_i] diag(keep)
            k = idx[o + a]
            fk = fp[k]
            for b in range(size):
                l = idx[o + b]
                A[a, b] = fk * W[k, m + 1 + l] * keep[l]
        started = False
        for a in range(size):
            k = idx[o + a]
            r = o + a
            # eq. (*): P_i(t+1) = A P_i(t) + f'_i z on row i
            _combine(Pb, r, A, a, Pa, o, size, K, fp[k] if k == i else 0.0, z)
            ek = e[k]
            if ek != 0.0:  # g[i, :] = -sum_a e_{S_i[a]} P_i(t+1)[a, :], only rows with an error
                if started:
                    for j in range(K):
                        g[i, j] -= ek * Pb[r, j]
                else:
                    for j in range(K):
                        g[i, j] = -(ek * Pb[r, j])
                    started = True
        grow[i] = started
        any_row = any_row or started
    return any_row


@njit(cache=True, nogil=True, fastmath={"contract"})
def pattern_run_kernel(W, y, P, idx, off, xs, ds, mask, lr, act, tf, clip_norm, wmask):
    """The compiled loop of the pattern rules over a chunk; arguments are not modified.

    W (n, K), y (n,), P (off[n], K) of one float type, C-contiguous; idx, off int64 (the
    pattern); xs (T, m), ds, mask (T, n); lr (0: weights fixed), act (activation code),
    tf (teacher forcing), clip_norm (> 0: clip each step's gradient to that Frobenius norm
    before W -= lr g), wmask (n, K) or None. Returns (W, y, P, ys (T, n), G (n, K)) with the
    meaning of :func:`rtrl.rules.base.reference_run` driving :func:`pattern_step`.

    Per block i, the coefficients ``A = diag(f'_{S_i}) W_rec[S_i, S_i] diag(keep)`` give
    P_i(t+1) = A P_i(t) + f'_i z on row i; the gradient row is accumulated from the new rows
    of units with an error only (rows of g without one are skipped, not zeroed).
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    Pa = P.copy()
    Pb = np.zeros(P.shape, dt)
    smax = 0
    for i in range(n):
        smax = max(smax, off[i + 1] - off[i])
    A = np.zeros((smax, smax), dt)  # the block's coefficients
    grow = np.zeros(n, np.bool_)  # rows of g that hold an estimate this step (the others are 0)
    keep = np.ones(n, dt)  # 0 for units forced at the previous step: their stored rows count as 0
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    g = np.zeros((n, K), dt)  # dJ(t)/dW
    z = np.empty(K, dt)
    fp = np.empty(n, dt)
    e = np.empty(n, dt)
    for t in range(T):
        _fill_z(z, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        _forward(W, z, ys[t], fp, e, ds[t], mask[t], act, n, K)  # y(t+1), f', e(t)
        any_row = _sensitivity_step(W, Pa, Pb, A, idx, off, fp, e, keep, z, g, grow, n, m, K)
        if any_row:
            _apply_update(W, g, grow, G, wmask, lr, clip_norm, n, K)
        # teacher forcing: forced units feed their target; their rows count as 0 (through keep)
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                keep[k] = 0.0
            else:
                y[k] = ys[t, k]
                keep[k] = 1.0
        tmp = Pa
        Pa = Pb
        Pb = tmp
    # the rows of units forced at the last step are zero in the returned state
    for r in range(idx.shape[0]):
        if keep[idx[r]] == 0.0:
            for j in range(K):
                Pa[r, j] = 0.0
    return W, y, Pa, ys, G


def pattern_run(W, state: PatternState, xs, ds, mask, lr, act, tf, clip, wmask):
    """Run :func:`pattern_run_kernel` on a state; returns ``(W, state, ys, G)``."""
    W, y, P, ys, G = pattern_run_kernel(W, state.y, state.P, state.idx, state.off, xs, ds, mask, lr, act, tf,
                                        clip, wmask)
    return W, PatternState(y, P, state.idx, state.off), ys, G
