"""The NumPy reference engine: exact RTRL written to be read.

This is the oracle the compiled kernels are tested against, step by step. It
follows the paper's equations line by line; speed is not its concern.

Conventions (``docs/conventions.md``): ``z(t) = [x(t), 1, y(t)]`` of length
``K = m + 1 + n``; ``s(t) = W z(t)``; ``y(t+1) = f(s(t))``; ``ys[t] = y(t+1)``;
sensitivities ``P[k, i, j] = dy_k / dw_ij`` of shape (n, n, K).
"""

from __future__ import annotations

import numpy as np

from .activations import apply, derivative_from_output

__all__ = ["rtrl_step", "rtrl_run"]


def rtrl_step(W, y, P, x, d, mask_t, *, activation="logistic"):
    """One step of exact RTRL with ``W`` held fixed.

    Parameters
    ----------
    W : (n, K) weights; y : (n,) outputs y(t); P : (n, n, K) sensitivities P(t);
    x : (m,) inputs x(t); d : (n,) targets d(t) (any value where ``mask_t`` is False);
    mask_t : (n,) bool, the units with a target at this step (the paper's T(t)).

    Returns
    -------
    y_next : (n,) the actual outputs y(t+1)
    P_next : (n, n, K) sensitivities P(t+1) (not yet zeroed for teacher forcing)
    e : (n,) errors e(t) = mask * (d - y(t+1))
    g : (n, K) the per-step gradient dJ(t)/dW
    """
    n, K = W.shape
    m = K - 1 - n
    z = np.concatenate([x, [1.0], y])  # z(t): (K,)
    s = W @ z  # s(t): (n,)
    y_next = apply(activation, s)  # y(t+1) = f(s(t)): (n,)
    fp = derivative_from_output(activation, y_next)  # f'(s(t)): (n,)
    W_rec = W[:, m + 1:]  # (n, n)
    # Eq. 12: P(t+1)[k,i,j] = f'(s_k) (sum_l W_rec[k,l] P(t)[l,i,j] + delta_ik z_j)
    P_next = np.tensordot(W_rec, P, axes=(1, 0))  # (n, n, K)
    P_next[np.arange(n), np.arange(n), :] += z
    P_next *= fp[:, None, None]
    e = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
    # dJ(t)/dw_ij = -sum_k e_k(t) P(t+1)[k,i,j]
    g = -np.tensordot(e, P_next, axes=(0, 0))  # (n, K)
    return y_next, P_next, e, g


def rtrl_run(W, y, P, xs, ds, mask, *, learning_rate=0.0, activation="logistic", teacher_forcing=False,
             clip_norm=0.0):
    """Run RTRL over a sequence, from state (W, y, P); inputs are not modified.

    With ``learning_rate == 0`` the weights stay fixed (the epochwise form);
    otherwise W changes after every step (the real-time form) and the next step
    uses the changed W. Teacher forcing follows the order of ``docs/conventions.md``:
    gradient from the actual output and the un-zeroed P(t+1), then the weight
    change, then forced units take their target and their sensitivities are zeroed.

    ``clip_norm > 0`` rescales a per-step gradient whose Frobenius norm exceeds it to that
    norm before the weight change (``G`` still sums the unclipped gradients).

    Returns ``(W, y, P, ys, G)`` where ``G`` is the sum of the per-step gradients
    (each taken with the weights of its own step) and ``ys`` (T, n) the actual outputs.
    """
    W = np.array(W, dtype=np.float64)
    y = np.array(y, dtype=np.float64)
    P = np.array(P, dtype=np.float64)
    T = xs.shape[0]
    n = W.shape[0]
    ys = np.empty((T, n))
    G = np.zeros_like(W)
    for t in range(T):
        y_next, P, e, g = rtrl_step(W, y, P, xs[t], ds[t], mask[t], activation=activation)
        ys[t] = y_next
        G += g
        if learning_rate != 0.0:
            if clip_norm > 0.0:
                norm = np.sqrt(np.sum(g * g))
                if norm > clip_norm:
                    g = g * (clip_norm / norm)
            W = W - learning_rate * g  # real-time update (paper eq. 14 applied every step)
        if teacher_forcing:
            # NOTE: forced units feed their target forward and lose their sensitivity (paper eqs. 17-19).
            forced = mask[t]
            y_next = np.where(forced, ds[t], y_next)
            P[forced] = 0.0
        y = y_next
    return W, y, P, ys, G
