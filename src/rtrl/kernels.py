"""Numba-compiled RTRL kernels: the default engine.

The whole time loop is compiled (``cache=True``, so a new process loads it from
disk instead of compiling again). Every kernel has the meaning of
:func:`rtrl.reference.rtrl_run` and is tested against it step by step in float64.

How a step is computed
----------------------
The sensitivity update (paper eq. 12) and the per-step gradient are written as one
matrix product. With ``A(t) = diag(f'(s(t))) W_rec(t)`` (n, n) and ``P`` stored as
rows of n*K numbers (n, nK)::

    P(t+1)  = A(t) P(t) + B(t),          B(t)[k, i*K + j] = f'_k(t) delta_ik z_j(t)
    -dJ(t)/dW = e(t)^T P(t+1) = (e^T A) P(t) + (e o f') (x) z(t)

so stacking ``A`` and the row ``e^T A`` into ``Aext`` (n+1, n) gives both P(t+1) and
the gradient from a single (n+1, n) . (n, nK) product: the step costs one product
of the issue's shape plus O(nK) work. Teacher forcing zeroes the forced rows of
P(t+1); instead of writing those zeros, the kernels keep P(t+1) as it is and zero
the matching *columns* of the next ``A`` (the same numbers: a zeroed row of P only
ever enters through those columns), and zero the rows once, in the returned P.

Two regimes, chosen by :func:`choose_blas` and overridable:

* explicit loops (small networks, n up to ~16: call overhead dominates);
* a BLAS product ``np.dot`` (larger networks: the step *is* the product).

Batched kernels run B independent streams at once. For small networks the batch is
the innermost (SIMD) axis, so every operation is vectorised across streams; for
large networks each stream runs the single-stream BLAS kernel in turn.

Kernels are generic over the float type: float64 arrays give float64 kernels (the
default), float32 arrays float32 ones.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .optim import opt_apply
from .threads import blas_threads, get_threads, parallel_map, split

__all__ = ["rtrl_run_kernel", "rtrl_run_batched_kernel", "run_batched", "choose_blas", "BLAS_MIN_UNITS",
           "BATCH_INNER_MAX_UNITS", "KERNELS"]

#: From this many units on, the sensitivity update uses a BLAS product (measured on a
#: 2-core Xeon, AVX-512; see docs/performance.md). Override with ``kernel="blas"``/``"loops"``.
BLAS_MIN_UNITS = 6

#: Up to this many units, batched streams run in the batch-innermost kernel; above, one
#: stream after the other through the single-stream kernel (measured faster from n = 8 on).
BATCH_INNER_MAX_UNITS = 5

#: From this many units on, batched streams on several threads run one after the other, each step's
#: product on BLAS's threads; below, the streams are split over the threads (see :func:`run_batched`).
#: NOTE (measured, 2 cores): streams split over threads scale up to n = 24 (80-90 %); at n = 32 and 64
#: concurrent BLAS calls of that size no longer run in parallel (OpenBLAS's shared buffers), while one
#: stream's product on two BLAS threads does (86 % at n = 64).
BATCH_BLAS_THREADS_MIN_UNITS = 32

#: Names accepted by :func:`choose_blas` (``"auto"`` picks by size).
KERNELS = ("auto", "loops", "blas")


def choose_blas(n_units: int, kernel: str = "auto") -> bool:
    """Return True if a network of ``n_units`` units should use the BLAS path.

    ``kernel="auto"`` decides by size (``n_units >= BLAS_MIN_UNITS``); ``"loops"`` and
    ``"blas"`` force a regime.
    """
    if kernel == "auto":
        return n_units >= BLAS_MIN_UNITS
    if kernel == "blas":
        return True
    if kernel == "loops":
        return False
    raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")


@njit(cache=True, inline="always")
def _f(s, code):
    """f(s) for one unit of activation ``code`` (0 logistic, 1 tanh, 2 linear; :mod:`rtrl.activations`)."""
    if code == 0:
        # NOTE: 1 / (1 + exp(-s)) instead of the reference's 0.5 (1 + tanh(s / 2)): the same
        # function to rounding (and exact in relative terms near 0), but libm exp costs ~6 ns
        # against ~21 ns for tanh, a third of a step at n = 3. exp overflow gives 0, not NaN.
        return 1.0 / (1.0 + np.exp(-s))
    if code == 1:
        return np.tanh(s)
    return s


@njit(cache=True, inline="always")
def _fprime(y, code):
    """f'(s) from the output y = f(s), for one unit of activation ``code``."""
    if code == 0:
        return y * (1.0 - y)
    if code == 1:
        return 1.0 - y * y
    return 1.0 + 0.0 * y


@njit(cache=True, inline="always")
def _fill_z(z, x, y, m, n):
    """z = [x (m), 1 (bias), y (n)]: the paper's z(t), written in place."""
    for j in range(m):
        z[j] = x[j]
    z[m] = 1.0
    for k in range(n):
        z[m + 1 + k] = y[k]


@njit(cache=True, inline="always")
def _combine_rows(out, coef, rows, n, nK):
    """out[:nK] = sum_l coef[l] * rows[l, :nK] for l < n (a vector-matrix product by explicit loops).

    NOTE: 1-D row views and four rows per pass let LLVM vectorise the inner loop; the sum keeps
    the order of the plain loop over l.
    """
    for q in range(nK):
        out[q] = 0.0
    l = 0
    while l + 4 <= n:
        a0 = coef[l]
        a1 = coef[l + 1]
        a2 = coef[l + 2]
        a3 = coef[l + 3]
        p0 = rows[l]
        p1 = rows[l + 1]
        p2 = rows[l + 2]
        p3 = rows[l + 3]
        for q in range(nK):
            out[q] = out[q] + a0 * p0[q] + a1 * p1[q] + a2 * p2[q] + a3 * p3[q]
        l += 4
    while l < n:
        a0 = coef[l]
        p0 = rows[l]
        for q in range(nK):
            out[q] = out[q] + a0 * p0[q]
        l += 1


@njit(cache=True, nogil=True, fastmath={"contract"})
def rtrl_run_kernel(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm=0.0, wmask=None):
    """Compiled real-time RTRL over a sequence; arguments are not modified.

    W (n, K), y (n,), P (n, n, K) C-contiguous, one float type; xs (T, m); ds, mask (T, n);
    lr float (0 = weights fixed); act int code; tf bool; use_blas bool;
    clip_norm float (> 0: a per-step gradient with a larger Frobenius norm is scaled to that
    norm before the weight change); wmask (n, K) or None: the connectivity mask, multiplied
    into each per-step gradient (weights where it is 0 never change). Returns (W, y, P,
    ys (T, n), G (n, K)) as :func:`rtrl.reference.rtrl_run` (G sums the unclipped per-step
    gradients).
    """
    n, K = W.shape
    m = K - 1 - n
    nK = n * K
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    # Two buffers of n+1 rows: rows :n hold P (n, nK), row n the gradient row of the product.
    # NOTE: explicit copies instead of reshape / slice assignment: those pull in Numba's
    # error-message formatting, which alone doubles the compile time.
    Pa = np.zeros((n + 1, nK), dt)
    for k in range(n):
        for i in range(n):
            for j in range(K):
                Pa[k, i * K + j] = P[k, i, j]
    Pb = np.zeros((n + 1, nK), dt)
    Aext = np.zeros((n + 1, n), dt)  # [diag(f') W_rec diag(keep); e^T (that)]
    keep = np.ones(n, dt)  # 0 for units forced at the previous step (their P rows count as 0)
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    z = np.empty(K, dt)
    fp = np.empty(n, dt)
    e = np.empty(n, dt)
    for t in range(T):
        _fill_z(z, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        # s(t) = W z(t); y(t+1) = f(s(t)); e(t) = mask (d - y(t+1))
        any_target = False
        for k in range(n):
            s = 0.0
            for j in range(K):
                s += W[k, j] * z[j]
            yk = _f(s, act[k])
            ys[t, k] = yk
            fp[k] = _fprime(yk, act[k])
            if mask[t, k]:
                e[k] = ds[t, k] - yk
                any_target = True
            else:
                e[k] = 0.0
        # Aext: A(t) = diag(f') W_rec diag(keep); last row e^T A(t)
        for l in range(n):
            Aext[n, l] = 0.0
        for k in range(n):
            c = fp[k]
            ek = e[k]
            for l in range(n):
                a = c * W[k, m + 1 + l] * keep[l]
                Aext[k, l] = a
                Aext[n, l] += ek * a
        rows = n + 1 if any_target else n
        # Paper eq. 12 (and the gradient row): Pb[:rows] = Aext[:rows] @ P(t)
        if use_blas:
            np.dot(Aext[:rows], Pa[:n], Pb[:rows])
        else:
            # NOTE: 1-D row views and four rows of P per pass let LLVM vectorise this loop; the
            # sum keeps the order of the plain loop over l.
            for k in range(rows):
                _combine_rows(Pb[k], Aext[k], Pa, n, nK)
        # + B(t): f'_k z_j on the diagonal blocks; the gradient row gets (e o f') (x) z
        for k in range(n):
            c = fp[k]
            base = k * K
            for j in range(K):
                Pb[k, base + j] += c * z[j]
        if any_target:
            # Row n now holds -dJ(t)/dW (paper eq. 13 with the un-zeroed P(t+1)).
            for i in range(n):
                c = e[i] * fp[i]
                base = i * K
                for j in range(K):
                    Pb[n, base + j] += c * z[j]
            if wmask is not None:
                for i in range(n):
                    for j in range(K):
                        Pb[n, i * K + j] *= wmask[i, j]
            for i in range(n):
                for j in range(K):
                    G[i, j] -= Pb[n, i * K + j]
            if lr != 0.0:
                scale = lr
                if clip_norm > 0.0:
                    norm = 0.0
                    for q in range(nK):
                        norm += Pb[n, q] * Pb[n, q]
                    norm = np.sqrt(norm)
                    if norm > clip_norm:
                        scale = lr * clip_norm / norm
                # Real-time update W -= lr dJ(t)/dW (paper eq. 14, every step)
                for i in range(n):
                    for j in range(K):
                        W[i, j] += scale * Pb[n, i * K + j]
        # Teacher forcing (paper eqs. 17-19): forced units feed their target forward and
        # their sensitivities count as zero from now on (applied through `keep`).
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
    Pout = np.empty((n, n, K), dt)
    for k in range(n):
        for i in range(n):
            for j in range(K):
                Pout[k, i, j] = Pa[k, i * K + j] * keep[k]
    return W, y, Pout, ys, G


@njit(cache=True, nogil=True, fastmath={"contract"})
def rtrl_run_batched_kernel(W, y, P, xs, ds, mask, lr, act, tf, clip_norm):
    """Compiled real-time RTRL over B independent streams, batch axis innermost.

    Layout (all C-contiguous, one float type; b = stream, innermost for SIMD):
    W (n, K, B), y (n, B), P (n, nK, B), xs (T, m, B), ds (T, n, B), mask (T, n, B) bool.
    Same arithmetic as :func:`rtrl_run_kernel` with explicit loops, per stream.
    Returns (W (n, K, B), y (n, B), P (n, nK, B), ys (T, n, B), G (n, K, B)).
    """
    n, K, B = W.shape
    m = K - 1 - n
    nK = n * K
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    Pa = np.zeros((n + 1, nK, B), dt)
    for k in range(n):
        for q in range(nK):
            for b in range(B):
                Pa[k, q, b] = P[k, q, b]
    Pb = np.zeros((n + 1, nK, B), dt)
    Aext = np.zeros((n + 1, n, B), dt)
    keep = np.ones((n, B), dt)
    ys = np.empty((T, n, B), dt)
    G = np.zeros((n, K, B), dt)
    z = np.empty((K, B), dt)
    fp = np.empty((n, B), dt)
    e = np.empty((n, B), dt)
    ef = np.empty((n, B), dt)
    acc = np.empty(B, dt)
    scale = np.empty(B, dt)
    # NOTE: every inner loop runs over the stream axis b through 1-D views, which LLVM vectorises.
    for t in range(T):
        for j in range(m):
            for b in range(B):
                z[j, b] = xs[t, j, b]
        for b in range(B):
            z[m, b] = 1.0
        for k in range(n):
            for b in range(B):
                z[m + 1 + k, b] = y[k, b]
        # s(t) = W z(t); y(t+1) = f(s(t)); e(t)
        for k in range(n):
            acc[:] = 0.0
            for j in range(K):
                w = W[k, j]
                zj = z[j]
                for b in range(B):
                    acc[b] = acc[b] + w[b] * zj[b]
            yt = ys[t, k]
            fk = fp[k]
            ek = e[k]
            efk = ef[k]
            dk = ds[t, k]
            mk = mask[t, k]
            for b in range(B):  # the libm calls alone, so the loop below vectorises
                yt[b] = _f(acc[b], act[k])
            for b in range(B):
                yk = yt[b]
                fk[b] = _fprime(yk, act[k])
                ek[b] = dk[b] - yk if mk[b] else 0.0
                efk[b] = ek[b] * fk[b]
        # Aext = [diag(f') W_rec diag(keep); e^T (that)]
        an = Aext[n]
        an[:, :] = 0.0
        for k in range(n):
            fk = fp[k]
            ek = e[k]
            for l in range(n):
                w = W[k, m + 1 + l]
                kp = keep[l]
                ak = Aext[k, l]
                anl = an[l]
                for b in range(B):
                    a = fk[b] * w[b] * kp[b]
                    ak[b] = a
                    anl[b] = anl[b] + ek[b] * a
        # Pb = Aext @ P(t), per stream (1-D views over the stream axis vectorise; the first
        # row of P initialises the sum, which keeps the order of the plain loop over l)
        for k in range(n + 1):
            for q in range(nK):
                o = Pb[k, q]
                a = Aext[k, 0]
                p = Pa[0, q]
                for b in range(B):
                    o[b] = a[b] * p[b]
                for l in range(1, n):
                    a = Aext[k, l]
                    p = Pa[l, q]
                    for b in range(B):
                        o[b] = o[b] + a[b] * p[b]
        # + B(t), and (e o f') (x) z on the gradient row n (which then holds -dJ(t)/dW)
        for k in range(n):
            fk = fp[k]
            efk = ef[k]
            for j in range(K):
                zj = z[j]
                o = Pb[k, k * K + j]
                g = Pb[n, k * K + j]
                gs = G[k, j]
                for b in range(B):
                    o[b] = o[b] + fk[b] * zj[b]
                    g[b] = g[b] + efk[b] * zj[b]
                    gs[b] = gs[b] - g[b]
        if lr != 0.0:
            scale[:] = lr
            if clip_norm > 0.0:
                acc[:] = 0.0
                for q in range(nK):
                    g = Pb[n, q]
                    for b in range(B):
                        acc[b] = acc[b] + g[b] * g[b]
                for b in range(B):
                    norm = np.sqrt(acc[b])
                    if norm > clip_norm:
                        scale[b] = lr * clip_norm / norm
            # real-time update W -= lr dJ(t)/dW, per stream
            for i in range(n):
                for j in range(K):
                    w = W[i, j]
                    g = Pb[n, i * K + j]
                    for b in range(B):
                        w[b] = w[b] + scale[b] * g[b]
        # teacher forcing: forced units feed their target; their P rows count as 0
        for k in range(n):
            yk = y[k]
            kp = keep[k]
            yt = ys[t, k]
            dk = ds[t, k]
            mk = mask[t, k]
            for b in range(B):
                forced = tf and mk[b]
                yk[b] = dk[b] if forced else yt[b]
                kp[b] = 0.0 if forced else 1.0
        tmp = Pa
        Pa = Pb
        Pb = tmp
    Pout = np.empty((n, nK, B), dt)
    for k in range(n):
        for q in range(nK):
            for b in range(B):
                Pout[k, q, b] = Pa[k, q, b] * keep[k, b]
    return W, y, Pout, ys, G


@njit(cache=True, nogil=True, fastmath={"contract"})
def _run_streams_kernel(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm):
    """B streams one after the other with the single-stream kernel (larger networks).

    W (B, n, K), y (B, n), P (B, n, n, K), xs (B, T, m), ds, mask (B, T, n).
    """
    Bn = W.shape[0]
    T = xs.shape[1]
    n, K = W.shape[1], W.shape[2]
    Wo = np.empty_like(W)
    yo = np.empty_like(y)
    Po = np.empty_like(P)
    ys = np.empty((Bn, T, n), W.dtype)
    G = np.empty((Bn, n, K), W.dtype)
    for b in range(Bn):
        Wb, yb, Pb, ysb, Gb = rtrl_run_kernel(W[b], y[b], P[b], xs[b], ds[b], mask[b], lr, act, tf, use_blas,
                                              clip_norm)
        for k in range(n):
            yo[b, k] = yb[k]
            for j in range(K):
                Wo[b, k, j] = Wb[k, j]
                G[b, k, j] = Gb[k, j]
            for i in range(n):
                for j in range(K):
                    Po[b, k, i, j] = Pb[k, i, j]
        for t in range(T):
            for k in range(n):
                ys[b, t, k] = ysb[t, k]
    return Wo, yo, Po, ys, G


def run_batched(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm=0.0):
    """Run B independent streams; stream-first arrays in and out.

    W (B, n, K), y (B, n), P (B, n, n, K), xs (B, T, m), ds (B, T, n), mask (B, T, n) bool,
    all of one float type. Networks of up to ``BATCH_INNER_MAX_UNITS`` units without
    ``use_blas`` run in the batch-innermost loop kernel; otherwise each stream runs through
    the single-stream kernel (loops or BLAS as ``use_blas`` says). Returns
    (W (B, n, K), y (B, n), P (B, n, n, K), ys (B, T, n), G (B, n, K)); each stream's result
    is that of :func:`rtrl_run_kernel` on it alone (to rounding).
    """
    Bn, n, K = W.shape
    threads = min(get_threads(), Bn)
    if threads > 1 and n < BATCH_BLAS_THREADS_MIN_UNITS:
        # Independent streams spread over the threads, one group of streams per thread (the kernels
        # release the GIL), each stream through the same kernel as on one thread: bit for bit the
        # same result. BLAS runs on one thread inside (which also parks BLAS's own worker threads:
        # spinning beside ours, they took the speed-up away).
        def part(rng):
            a, b = rng
            return _run_batched_serial(W[a:b], y[a:b], P[a:b], xs[a:b], ds[a:b], mask[a:b], lr, act, tf, use_blas,
                                       clip_norm)
        with blas_threads(1):
            parts = parallel_map(part, split(Bn, threads), threads)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(5))
    # one thread, or large networks: stream after stream, each product on BLAS's threads
    return _run_batched_serial(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm)


def _run_batched_serial(W, y, P, xs, ds, mask, lr, act, tf, use_blas, clip_norm):
    Bn, n, K = W.shape
    if use_blas or n > BATCH_INNER_MAX_UNITS:
        c = np.ascontiguousarray
        return _run_streams_kernel(c(W), c(y), c(P), c(xs), c(ds), c(mask), lr, act, tf, use_blas, clip_norm)
    # NOTE: stream axis moved innermost so each operation runs across all streams at once.
    Wt = np.ascontiguousarray(np.moveaxis(W, 0, -1))  # (n, K, B)
    yt = np.ascontiguousarray(y.T)  # (n, B)
    Pt = np.ascontiguousarray(np.moveaxis(P.reshape(Bn, n, n * K), 0, -1))  # (n, nK, B)
    xt = np.ascontiguousarray(np.moveaxis(xs, 0, -1))  # (T, m, B)
    dt_ = np.ascontiguousarray(np.moveaxis(ds, 0, -1))  # (T, n, B)
    mt = np.ascontiguousarray(np.moveaxis(mask, 0, -1))  # (T, n, B)
    Wo, yo, Po, ys, G = rtrl_run_batched_kernel(Wt, yt, Pt, xt, dt_, mt, lr, act, tf, clip_norm)
    return (np.ascontiguousarray(np.moveaxis(Wo, -1, 0)), np.ascontiguousarray(yo.T),
            np.ascontiguousarray(np.moveaxis(Po, -1, 0)).reshape(Bn, n, n, K),
            np.ascontiguousarray(np.moveaxis(ys, -1, 0)), np.ascontiguousarray(np.moveaxis(G, -1, 0)))


@njit(cache=True)
def prepare_row(x, d, mask, has_mask, ds_out, mk_out):
    """Check one learner row and fill ds_out (0 where no target) and mk_out; return a status code.

    x (m,), d (n,) float64; mask (n,) bool, read only if ``has_mask``. Codes: 0 ok, 1 x holds
    NaN/inf, 2 d holds inf, 3 d holds NaN where mask is True. The outputs are only meaningful
    for code 0. One compiled call instead of several NumPy passes keeps ``OnlineLearner.step`` cheap.
    """
    return _check_row(x, d, mask, has_mask, mk_out[0], ds_out[0])[0]


@njit(cache=True, inline="always")
def _check_row(x, d, mask, has_mask, tgt, val):
    """Check one row: (status, any target); fills tgt[k] (whether unit k has a target) and val[k] (its
    target, 0 where none). Status 0 ok, 1 x holds NaN/inf, 2 d holds inf, 3 d holds NaN where mask is True
    (then tgt and val are junk)."""
    for j in range(x.shape[0]):
        if not np.isfinite(x[j]):
            return 1, False
    any_target = False
    for k in range(d.shape[0]):
        v = d[k]
        if np.isinf(v):
            return 2, False
        target = (not np.isnan(v)) if not has_mask else mask[k]
        if target and np.isnan(v):
            return 3, False
        tgt[k] = target
        val[k] = v if target else 0.0
        any_target = any_target or target
    return 0, any_target



@njit(cache=True, nogil=True, fastmath={"contract"})
def forward_kernel(W, y, xs, act, fb_in, fb_unit):
    """The network run forward with fixed weights, no sensitivities: O(n K) per step.

    W (n, K), y (n,) the outputs y(t) to start from, xs (T, m), act (n,) activation codes;
    feedback: input line ``fb_in[i]`` is fed unit ``fb_unit[i]``'s output y(t) at every step
    (it overrides xs there; empty arrays for none). Returns ys (T, n), ys[t] = y(t+1).
    Nothing passed in is modified.
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    ys = np.empty((T, n), W.dtype)
    z = np.empty(K, W.dtype)
    cur = y.copy()
    for t in range(T):
        _fill_z(z, xs[t], cur, m, n)
        for i in range(fb_in.shape[0]):
            z[fb_in[i]] = cur[fb_unit[i]]
        for k in range(n):
            s = 0.0
            for j in range(K):
                s += W[k, j] * z[j]
            ys[t, k] = _f(s, act[k])
        for k in range(n):
            cur[k] = ys[t, k]
    return ys



def step_arena_size(n: int, K: int) -> int:
    """Length of one buffer of :func:`rtrl_step_inplace`: W (n K), y (n), P (n n K), the gradient row (n K),
    y(t+1) (n), then the optimizer's two moment arrays (n K each) and its update count (1)."""
    return n * K + n + n * n * K + n * K + n + 2 * n * K + 1


@njit(cache=True, nogil=True, fastmath={"contract"})
def rtrl_step_inplace(cur, nxt, x, d, mask, params, act, wmask, work):
    """One real-time RTRL step for :meth:`rtrl.OnlineLearner.step`: checks, step and update in one call.

    ``cur`` holds the state (flat float64: W (n, K), y (n,), P (n, n, K), a gradient row (n K,),
    then the last y(t+1) (n,), see :func:`step_arena_size`); the new state is written into ``nxt`` and ``cur`` is
    only read, so the caller commits by swapping the two. x (m,); d (n,) targets, NaN for none;
    mask (n,) bool or empty (then NaN in d means "no target"); params = [lr (this step's, after
    the schedule), clip (0: none), teacher forcing (0/1), BLAS product (0/1) as
    :func:`choose_blas`, optimizer code, its three numbers (:mod:`rtrl.optim`)]; act (n,) codes;
    wmask (n, K) or (0, 0) for none; work: scratch of at least (n + 1) n + K + 4 n numbers. SGD
    (code 0) is the fused update of :func:`rtrl_run_kernel`; any other optimizer is
    :func:`rtrl.optim.opt_apply` on the step's estimate, its moments read from ``cur`` and
    written to ``nxt`` (a step without a target is no update). Returns a status: 0 ok; 1 x holds NaN/inf; 2 d holds
    inf; 3 d holds NaN where mask is True; 4 the new weights are not finite (diverged). The
    arithmetic of :func:`rtrl_run_kernel` over one step (tested equal bit for bit).

    NOTE: one call with few arguments and no arrays returned: passing and returning arrays is
    what costs at n = 8 (about 0.1 us per argument and 0.25 us per returned array).
    """
    n = act.shape[0]
    m = x.shape[0]
    K = m + 1 + n
    nK = n * K
    lr = params[0]
    clip_norm = params[1]
    tf = params[2] != 0.0
    use_blas = params[3] != 0.0
    code = int(params[4])
    has_mask = mask.shape[0] > 0
    W = cur[0:nK]
    y = cur[nK:nK + n]
    Pa = cur[nK + n:nK + n + n * nK]
    Wn = nxt[0:nK]
    yo = nxt[nK:nK + n]
    Pb = nxt[nK + n:nK + n + n * nK]
    Pg = nxt[nK + n:nK + n + (n + 1) * nK]  # P(t+1) and the gradient row below it
    g = nxt[nK + n + n * nK:nK + n + (n + 1) * nK]
    yn = nxt[nK + n + (n + 1) * nK:nK + n + (n + 1) * nK + n]
    o_opt = nK + n + (n + 1) * nK + n  # the optimizer's moments a, b (nK each) and its count
    A = work[0:(n + 1) * n]
    z = work[(n + 1) * n:(n + 1) * n + K]
    o = (n + 1) * n + K
    fp = work[o:o + n]
    e = work[o + n:o + 2 * n]
    ek = work[o + 2 * n:o + 3 * n]
    tk = work[o + 3 * n:o + 4 * n]
    status, any_target = _check_row(x, d, mask, has_mask, tk, ek)  # tk: 1.0 where unit k has a target
    if status:
        return status
    # z(t) = [x(t), 1, y(t)]; y(t+1) = f(W z(t)); e(t)
    for j in range(m):
        z[j] = x[j]
    z[m] = 1.0
    for k in range(n):
        z[m + 1 + k] = y[k]
    for k in range(n):
        s = 0.0
        base = k * K
        for j in range(K):
            s += W[base + j] * z[j]
        yk = _f(s, act[k])
        yn[k] = yk
        fp[k] = _fprime(yk, act[k])
        e[k] = ek[k] - yk if tk[k] != 0.0 else 0.0
    # A(t) = diag(f') W_rec; its row e^T A(t) for the gradient (no unit was forced at t - 1: the
    # caller's P has the forced rows zeroed already)
    for l in range(n):
        A[n * n + l] = 0.0
    for k in range(n):
        c = fp[k]
        for l in range(n):
            a = c * W[k * K + m + 1 + l]
            A[k * n + l] = a
            A[n * n + l] += e[k] * a
    # P(t+1) = A(t) P(t) + B(t) (paper eq. 12), and the gradient row e^T A P(t)
    rows = n + 1 if any_target else n
    Pa2 = Pa.reshape(n, nK)
    Pg2 = Pg.reshape(n + 1, nK)
    A2 = A.reshape(n + 1, n)
    if use_blas:
        np.dot(A2[:rows], Pa2, Pg2[:rows])
    else:
        for k in range(rows):
            _combine_rows(Pg2[k], A2[k], Pa2, n, nK)
    for k in range(n):
        c = fp[k]
        base = k * nK + k * K
        for j in range(K):
            Pb[base + j] += c * z[j]
    for q in range(nK):
        Wn[q] = W[q]
    if any_target:
        for i in range(n):
            c = e[i] * fp[i]
            base = i * K
            for j in range(K):
                g[base + j] += c * z[j]
        if wmask.shape[0] > 0:
            for i in range(n):
                for j in range(K):
                    g[i * K + j] *= wmask[i, j]
        if code != 0:
            # g is -dJ/dW: the optimizer takes -g (a negation, exact)
            nxt[o_opt + 2 * nK] = opt_apply(Wn, g, -1.0, clip_norm, lr, code, params[5], params[6], params[7],
                                            cur[o_opt:o_opt + nK], cur[o_opt + nK:o_opt + 2 * nK],
                                            nxt[o_opt:o_opt + nK], nxt[o_opt + nK:o_opt + 2 * nK],
                                            cur[o_opt + 2 * nK])
            ok = 0.0
            for q in range(nK):
                ok += Wn[q] * 0.0
            if ok != 0.0:
                return 4
        elif lr != 0.0:
            scale = lr
            if clip_norm > 0.0:
                norm = 0.0
                for q in range(nK):
                    norm += g[q] * g[q]
                norm = np.sqrt(norm)
                if norm > clip_norm:
                    scale = lr * clip_norm / norm
            ok = 0.0
            for q in range(nK):
                w = Wn[q] + scale * g[q]
                Wn[q] = w
                ok += w * 0.0
            if ok != 0.0:  # NaN: some new weight is NaN or inf
                return 4
    if code != 0 and not any_target:  # no update: the optimizer's state carries over
        for q in range(o_opt, o_opt + 2 * nK + 1):
            nxt[q] = cur[q]
    for k in range(n):
        if tf and tk[k] != 0.0:
            yo[k] = ek[k]  # teacher forcing: the target feeds forward, the unit's sensitivities count as 0
            for q in range(nK):
                Pb[k * nK + q] = 0.0
        else:
            yo[k] = yn[k]
    return 0
