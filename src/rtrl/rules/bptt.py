"""Truncated BPTT(h; h') as an online rule (Williams & Peng, 1990).

Williams, R. J. & Peng, J. (1990). "An efficient gradient-based algorithm for on-line training
of recurrent network trajectories". Neural Computation 2(4):490-501.

The rule stores the last h steps (z(tau), f'(s(tau)), e(tau), and which units were forced)
in ring buffers. Every h' steps (when the step count t+1 is a multiple of h'), the errors of
the last h' steps are propagated back h steps from the current step t, through the stored
values and the *current* weights W (the ones passed to this step), in our notation
(``docs/conventions.md``)::

    carry = 0
    for tau = t, t-1, ..., t-h+1 (not before the stream's start):
        carry = 0 where unit k was forced at tau (a forced y(tau+1) is a constant)
        delta(tau) = f'(s(tau)) o (carry - [t - tau < h'] e(tau))      # dJ/ds(tau)
        g += delta(tau) (x) z(tau)
        carry = W_rec^T delta(tau)                                       # dJ/dy(tau)

and ``g`` is the estimate of dJ/dW for that step; on the other steps g = 0 (the weights do not
change). BPTT(h) is BPTT(h; 1). It ignores dependencies older than h steps and the weight
changes inside the window, so it is approximate; it is exact (the epochwise gradient, equal
to RTRL's) when h >= T, h' = 1 and the weights are fixed (lr = 0). Driven by
:func:`rtrl.rules.base.reference_run`, it reproduces :func:`rtrl.bptt.bptt_train_online`.

Cost per step: the O(nK) forward pass plus, on average, O(h (n K + n^2) / h') = O(h n K / h')
for the backward passes (one of h steps every h' steps). Memory: the ring buffers,
h (K + 3n) numbers, O(h K). The default truncation h = 10 (and h' = 1) is a project default.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import _f, _fill_z, _fprime
from .base import Rule, check_int_option, forward_values, register

__all__ = ["BPTT", "BPTTState", "bptt_run_kernel"]


class BPTTState(NamedTuple):
    """State of BPTT(h; h'): y(t) (n,), ring buffers of the last h steps, and the step count.

    ``zs`` (h, K) z(tau), ``fps`` (h, n) f'(s(tau)), ``es`` (h, n) e(tau), ``forced`` (h, n)
    1.0 where unit k took its target after step tau, each at row tau % h; ``count`` 0-d
    int64, the number of steps consumed so far.
    """

    y: np.ndarray
    zs: np.ndarray
    fps: np.ndarray
    es: np.ndarray
    forced: np.ndarray
    count: np.ndarray  # type: ignore[assignment]  # (a field named like tuple.count)


def _count(a) -> int:
    # 0-d in a state from init/step; np.ascontiguousarray (Rule.run) makes it shape (1,).
    return int(np.asarray(a).reshape(-1)[0])


@njit(cache=True, nogil=True, fastmath={"contract"})
def bptt_run_kernel(W, y, zs, fps, es, forced, count, h, hp, xs, ds, mask, lr, act, tf, clip_norm, wmask):
    """Compiled BPTT(h; h') over a chunk; arguments are not modified.

    W (n, K), y (n,), zs (h, K), fps, es, forced (h, n) of one float type, C-contiguous;
    count int (steps consumed so far); h, hp the truncation and update interval; xs (T, m),
    ds, mask (T, n); lr, act, tf, clip_norm, wmask as :func:`rtrl.kernels.rtrl_run_kernel`.
    Returns (W, y, zs, fps, es, forced, count, ys (T, n), G (n, K)).
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    zs = zs.copy()
    fps = fps.copy()
    es = es.copy()
    forced = forced.copy()
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    g = np.zeros((n, K), dt)
    carry = np.zeros(n, dt)
    delta = np.zeros(n, dt)
    cnt = count
    for t in range(T):
        r = cnt % h
        zr = zs[r]
        _fill_z(zr, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        for k in range(n):  # y(t+1) = f(W z(t)), f', e(t)
            s = 0.0
            for j in range(K):
                s += W[k, j] * zr[j]
            yk = _f(s, act[k])
            ys[t, k] = yk
            fps[r, k] = _fprime(yk, act[k])
            es[r, k] = ds[t, k] - yk if mask[t, k] else 0.0
            forced[r, k] = 1.0 if (tf and mask[t, k]) else 0.0
        cnt += 1
        if cnt % hp == 0:
            # back-propagate the errors of the last hp steps through the last h steps
            for i in range(n):
                carry[i] = 0.0
                for j in range(K):
                    g[i, j] = 0.0
            steps = h if cnt > h else cnt
            for back in range(steps):
                rr = (cnt - 1 - back) % h
                for k in range(n):
                    c = 0.0 if forced[rr, k] != 0.0 else carry[k]
                    inject = es[rr, k] if back < hp else 0.0
                    delta[k] = fps[rr, k] * (c - inject)  # dJ/ds(tau)
                for k in range(n):
                    dk = delta[k]
                    if dk != 0.0:
                        for j in range(K):
                            g[k, j] += dk * zs[rr, j]
                if back + 1 < steps:
                    for l in range(n):  # carry = W_rec^T delta
                        carry[l] = 0.0
                    for k in range(n):
                        dk = delta[k]
                        if dk != 0.0:
                            for l in range(n):
                                carry[l] += W[k, m + 1 + l] * dk
            if wmask is not None:
                for i in range(n):
                    for j in range(K):
                        g[i, j] *= wmask[i, j]
            for i in range(n):
                for j in range(K):
                    G[i, j] += g[i, j]
            if lr != 0.0:
                scale = lr
                if clip_norm > 0.0:
                    norm = 0.0
                    for i in range(n):
                        for j in range(K):
                            norm += g[i, j] * g[i, j]
                    norm = np.sqrt(norm)
                    if norm > clip_norm:
                        scale = lr * clip_norm / norm
                for i in range(n):
                    for j in range(K):
                        W[i, j] -= scale * g[i, j]
        for k in range(n):  # teacher forcing: forced units feed their target
            y[k] = ds[t, k] if forced[r, k] != 0.0 else ys[t, k]
    return W, y, zs, fps, es, forced, cnt, ys, G


@register
@dataclasses.dataclass(frozen=True)
class BPTT(Rule):
    """Truncated backpropagation through time, BPTT(h; h') (Williams & Peng 1990), online.

    Parameters
    ----------
    truncation : int
        h >= 1, how many steps back each backward pass goes. Default 10 (project default).
    update_every : int
        h' in [1, h]: a backward pass (and a weight change) every h' steps, carrying the
        errors of the last h' steps. Default 1 (BPTT(h)).

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("bptt:4", update_every=2)
    >>> W = np.zeros((2, 4)); state = rule.init(W, np.zeros(2))
    >>> y, g, state = rule.step(W, state, np.ones(1), np.array([1.0, 0.0]), np.array([True, False]))
    >>> bool(np.all(g == 0)), int(state.count)  # no backward pass after the first step
    (True, 1)
    """

    truncation: int = 10
    update_every: int = 1

    name = "bptt"
    exact = False  # exact (epochwise) with h >= T, h' = 1, lr = 0
    unbiased = False
    cost = "O(h n K / h') on average (+ the O(nK) forward pass)"
    memory = "h (K + 3n): O(h K)"
    dtypes = ("float64", "float32")
    short_option = "truncation"

    def __post_init__(self):
        h = check_int_option(self.name, "truncation", self.truncation)
        object.__setattr__(self, "truncation", h)
        object.__setattr__(self, "update_every", check_int_option(self.name, "update_every", self.update_every,
                                                                  1, h))

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        h, dt = self.truncation, W.dtype
        return BPTTState(np.array(y0, dtype=dt), np.zeros((h, K), dt), np.zeros((h, n), dt), np.zeros((h, n), dt),
                         np.zeros((h, n), dt), np.array(0, dtype=np.int64))

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        y, zs, fps, es, forced, count = state
        h, hp = self.truncation, self.update_every
        n, K = W.shape
        m = K - 1 - n
        t = _count(count)
        r = t % h  # ring-buffer row of step t
        z, y_next, fp = forward_values(W, y, x, activation)  # z(t) (K,), y(t+1) (n,), f'(s(t)) (n,)
        zs, fps, es, forced = zs.copy(), fps.copy(), es.copy(), forced.copy()
        zs[r], fps[r] = z, fp
        es[r] = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
        forced[r] = np.where(np.asarray(mask_t, dtype=bool) & bool(teacher_forcing), 1.0, 0.0)
        g = np.zeros((n, K))
        if (t + 1) % hp == 0:
            W_rec = W[:, m + 1:]  # the current weights: (n, n)
            carry = np.zeros(n)  # dJ/dy(tau+1) through s(tau+1): (n,)
            for back in range(min(h, t + 1)):
                rr = (t - back) % h
                carry = np.where(forced[rr] != 0.0, 0.0, carry)
                inject = es[rr] if back < hp else 0.0
                delta = fps[rr] * (carry - inject)  # dJ/ds(tau): (n,)
                g += np.outer(delta, zs[rr])
                carry = W_rec.T @ delta
        y_new = np.where(forced[r] != 0.0, d, y_next)
        return y_next, g, BPTTState(y_new, zs, fps, es, forced, np.array(t + 1, dtype=np.int64))

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        y, zs, fps, es, forced, count = state
        W, y, zs, fps, es, forced, cnt, ys, G = bptt_run_kernel(
            W, y, zs, fps, es, forced, _count(count), self.truncation, self.update_every, xs, ds, mask, lr, act, tf,
            clip, wmask)
        return W, BPTTState(y, zs, fps, es, forced, np.array(cnt, dtype=np.int64)), ys, G

    def numbers(self, n, K):
        return n + self.truncation * (K + 3 * n) + 1
