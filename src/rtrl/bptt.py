"""Backpropagation through time: the reference RTRL is measured against.

``bptt_gradient`` is epochwise BPTT: it stores the whole trajectory (memory grows
with T) and returns the exact dJ/dW for a sequence with W held fixed; it equals the
epochwise RTRL gradient to rounding. ``bptt_train_online`` is Williams & Peng's
truncated BPTT(h; h'), an online approximation with memory O(h).
"""

from __future__ import annotations

import numpy as np

from .activations import apply, derivative_from_output

__all__ = ["bptt_forward", "bptt_gradient", "bptt_train_online"]


def bptt_forward(W, xs, ds, mask, y0, *, activation="logistic", teacher_forcing=False):
    """Forward pass storing what BPTT needs.

    Returns ``zs`` (T, K) the z(t) used at each step, ``ys`` (T, n) the actual
    outputs y(t+1), ``fps`` (T, n) f'(s(t)), ``es`` (T, n) the errors e(t).
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    zs = np.empty((T, K))
    ys = np.empty((T, n))
    y = np.array(y0, dtype=np.float64)
    for t in range(T):
        zs[t, :m] = xs[t]
        zs[t, m] = 1.0
        zs[t, m + 1:] = y
        ys[t] = apply(activation, W @ zs[t])
        y = np.where(mask[t], ds[t], ys[t]) if teacher_forcing else ys[t]
    fps = derivative_from_output(activation, ys)
    es = np.where(mask, ds - ys, 0.0)
    return zs, ys, fps, es


def bptt_gradient(W, xs, ds, mask, y0, *, activation="logistic", teacher_forcing=False):
    """Exact dJ/dW over a sequence by epochwise BPTT (memory O(T (n + K)))."""
    n, K = W.shape
    m = K - 1 - n
    zs, ys, fps, es = bptt_forward(W, xs, ds, mask, y0, activation=activation,
                                   teacher_forcing=teacher_forcing)
    W_rec = W[:, m + 1:]  # (n, n)
    G = np.zeros_like(W)
    carry = np.zeros(n)  # dJ/dy(t+1) arriving through s(t+1)
    for t in range(xs.shape[0] - 1, -1, -1):
        if teacher_forcing:
            # A forced y(t+1) is the target, a constant: nothing flows back through it.
            carry = np.where(mask[t], 0.0, carry)
        delta = fps[t] * (carry - es[t])  # dJ/ds(t): (n,)
        G += np.outer(delta, zs[t])
        carry = W_rec.T @ delta
    return G


def bptt_train_online(W, xs, ds, mask, y0, *, learning_rate, truncation, update_every=1,
                      activation="logistic", teacher_forcing=False):
    """Online training by truncated BPTT(h; h') (Williams & Peng, 1990).

    Every ``update_every`` (h') steps, the errors of the last h' steps are propagated
    back ``truncation`` (h >= h') steps from the current step, through the stored
    z, f' of those steps and the *current* weights, and W changes once. BPTT(h) is
    BPTT(h; 1). The gradient is an approximation (it ignores dependencies older than
    h steps and the weight changes inside the window); memory is O(h), not O(T).

    Returns ``(W_final, ys)``.
    """
    W = np.array(W, dtype=np.float64)
    n, K = W.shape
    m = K - 1 - n
    h, hp = int(truncation), int(update_every)
    T = xs.shape[0]
    ys = np.empty((T, n))
    # Ring buffers over the last h steps.
    zs = np.zeros((h, K))
    fps = np.zeros((h, n))
    es = np.zeros((h, n))
    forced = np.zeros((h, n), dtype=bool)
    y = np.array(y0, dtype=np.float64)
    for t in range(T):
        r = t % h
        zs[r, :m] = xs[t]
        zs[r, m] = 1.0
        zs[r, m + 1:] = y
        y_next = apply(activation, W @ zs[r])
        ys[t] = y_next
        fps[r] = derivative_from_output(activation, y_next)
        es[r] = np.where(mask[t], ds[t] - y_next, 0.0)
        forced[r] = mask[t] if teacher_forcing else False
        y = np.where(forced[r], ds[t], y_next)
        if (t + 1) % hp == 0:
            W_rec = W[:, m + 1:]
            G = np.zeros_like(W)
            carry = np.zeros(n)
            for back in range(min(h, t + 1)):
                tau = t - back
                rr = tau % h
                carry = np.where(forced[rr], 0.0, carry)
                inject = es[rr] if back < hp else 0.0
                delta = fps[rr] * (carry - inject)
                G += np.outer(delta, zs[rr])
                carry = W_rec.T @ delta
            W = W - learning_rate * G
    return W, ys
