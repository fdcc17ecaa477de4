"""RFLO (Murray, eLife 2019) and e-prop for rate units (Bellec et al., Nat. Commun. 2020).

Both drop the recurrent part of RTRL's sensitivity recursion: each weight w_ij keeps one
*eligibility trace* p[i, j], a low-pass filter of its immediate effect f'(s_i) z_j on its own
unit, and the error reaches unit i through a fixed *feedback* matrix instead of through the
network's Jacobian. Neither is exact nor unbiased; both cost O(nK) per step.

NOTE: project choice. Murray's RFLO is written for a leaky network with separate linear
readouts, and e-prop for spiking / leaky units with readout weights. For the paper's network
(no leak, every unit may be an output, ``docs/conventions.md``) this project defines::

    y(t+1) = f(W z(t)),  z(t) = [x(t), 1, y(t)],  f' = f'(s(t)) (n,)
    p(t+1) = (1 - 1/tau) p(t) + (1/tau) f' (x) z(t)          (n, K)        (eq. r1)
    e(t)   = mask(t) o (d(t) - y(t+1))
    L(t)   = B e(t),  B = I + F,  diag(F) = 0                 (n,)          (eq. r2)
    g[i, j] = -L_i(t) p(t+1)[i, j]    (estimate of dJ(t)/dW)                (eq. r3)

with ``tau >= 1`` (option, default 1: then p(t+1) is the immediate Jacobian f' (x) z(t),
dy(t+1)/dW with y(t) held fixed) and the feedback F:

``feedback="random"``
    F fixed, its off-diagonal entries drawn once N(0, 1/n) from the rule's seed and the
    batched-stream number (each stream its own, like the random draws of UORO); kept in the
    state so that model files hold it.
``feedback="symmetric"``
    F[i, k] = W_rec[k, i] for k != i, with the current weights: the weight that carries unit
    i's output to unit k, i.e. the error of unit k is sent back along the true forward weight
    (one step of backpropagation through the recurrent weights, no further).

The identity part of B is a unit's own error (its output *is* the output for its target).

Teacher forcing (paper eqs. 17-19): the gradient uses the un-zeroed p(t+1); then forced units
take their target and their trace rows are zeroed (as RTRL zeroes their P rows).

Cost per step: O(nK + n^2): the trace update and the gradient are passes over (n, K), the
feedback one (n, n) matrix-vector product. Memory: p (nK), plus F (n^2) for random feedback
and y (n).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import _f, _fill_z, _fprime
from .uoro import _dot
from .base import Rule, RuleOptionError, check_float_option, forward_values, register, resolve_seed

__all__ = ["RFLO", "EProp", "TraceState", "rflo_run_kernel", "FEEDBACKS"]

#: The accepted values of the ``feedback`` option.
FEEDBACKS = ("random", "symmetric")


class TraceState(NamedTuple):
    """State of RFLO / e-prop: y(t) (n,), eligibility traces p (n, K), feedback F (n, n) (random
    feedback) or an empty (0, 0) array (symmetric feedback: F comes from the current W)."""

    y: np.ndarray
    p: np.ndarray
    F: np.ndarray


def random_feedback(seed: int, stream: int, n: int) -> np.ndarray:
    """The fixed random feedback F (n, n): off-diagonal N(0, 1/n), zero diagonal, from (seed, stream)."""
    gen = np.random.default_rng(np.random.SeedSequence([int(seed), int(stream) % (1 << 64), 0x52464C4F]))
    F = gen.standard_normal((n, n)) / np.sqrt(n)
    np.fill_diagonal(F, 0.0)
    return F


@register
@dataclasses.dataclass(frozen=True)
class RFLO(Rule):
    """Random feedback local online learning: eligibility traces and a fixed feedback matrix.

    Parameters
    ----------
    tau : float >= 1
        Time constant of the eligibility trace (steps); 1 (default) keeps only the last
        step's immediate Jacobian.
    feedback : {"random", "symmetric"}
        How errors reach the units: a fixed random matrix (RFLO, default) or the transposed
        recurrent weights (e-prop's symmetric feedback).
    rng : None, int or numpy.random.Generator
        Seed of the random feedback, resolved once into an int seed kept as the option.

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("rflo", tau=2.0, rng=0)
    >>> W = np.zeros((2, 4)); state = rule.init(W, np.zeros(2))
    >>> y, g, state = rule.step(W, state, np.ones(1), np.array([1.0, 0.0]), np.array([True, False]))
    >>> g.shape, state.p.shape, state.F.shape
    ((2, 4), (2, 4), (2, 2))
    """

    tau: float = 1.0
    feedback: str = "random"
    rng: int | None = dataclasses.field(default=None)

    name = "rflo"
    exact = False
    unbiased = False
    cost = "O(nK + n^2)"
    memory = "nK (p) + n^2 (random feedback F)"
    dtypes = ("float64", "float32")
    short_option = "tau"

    def __post_init__(self):
        object.__setattr__(self, "tau", check_float_option(self.name, "tau", self.tau, minimum=1.0, inclusive=True))
        if not isinstance(self.feedback, str) or self.feedback not in FEEDBACKS:
            raise RuleOptionError(f"rule {self.name!r}: option feedback: expected one of {FEEDBACKS}, "
                                  f"got {self.feedback!r}")
        object.__setattr__(self, "rng", resolve_seed(self.name, self.rng))

    @property
    def spec(self):
        """The name, with ``:tau`` when tau is not 1 (``"rflo:4"``)."""
        return self.name if self.tau == 1.0 else f"{self.name}:{self.tau:g}"

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        if self.feedback == "random":
            F = random_feedback(self.rng, stream, n).astype(W.dtype)
        else:
            F = np.zeros((0, 0), W.dtype)
        return TraceState(np.array(y0, dtype=W.dtype), np.zeros((n, K), W.dtype), F)

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        n, K = W.shape
        m = K - 1 - n
        z, y_next, fp = forward_values(W, state.y, x, activation)  # z(t) (K,), y(t+1) (n,), f'(s(t)) (n,)
        p = (1.0 - 1.0 / self.tau) * state.p + np.outer(fp, z) / self.tau  # eq. r1: (n, K)
        e = np.where(mask_t, d - y_next, 0.0)  # e(t): (n,)
        if self.feedback == "random":
            F = state.F  # (n, n)
        else:
            F = W[:, m + 1:].T.copy()  # F[i, k] = W_rec[k, i]: (n, n)
            np.fill_diagonal(F, 0.0)
        L = e + F @ e  # eq. r2, L = (I + F) e: (n,)
        g = -L[:, None] * p  # eq. r3: (n, K)
        y = y_next
        if teacher_forcing:  # paper eqs. 17-19: forced units' traces are zero
            y = np.where(mask_t, d, y_next)  # (n,)
            p = np.where(mask_t[:, None], 0.0, p)  # (n, K)
        return y_next, g, TraceState(y, p, state.F)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        symmetric = self.feedback == "symmetric"
        F = state.F if not symmetric else np.zeros((0, 0), W.dtype)
        W, y, p, ys, G = rflo_run_kernel(W, state.y, state.p, F, symmetric, self.tau, xs, ds, mask, lr, act, tf,
                                         clip, wmask)
        return W, TraceState(y, p, state.F.copy()), ys, G

    def numbers(self, n, K):
        return n + n * K + (n * n if self.feedback == "random" else 0)


@register
@dataclasses.dataclass(frozen=True)
class EProp(RFLO):
    """e-prop for rate units (Bellec et al. 2020): here RFLO with symmetric feedback by default.

    For units without adaptation (no slow threshold variable), e-prop's eligibility trace of
    w_ij is the low-pass filter of the pseudo-derivative times the presynaptic activity,
    f'(s_i) z_j (filtered with the membrane's time constant; for the paper's leak-free units
    only the last step remains, tau = 1), and its learning signal is the output error fed back
    to each unit, L_i = sum_k B_ik e_k. That is exactly RFLO's update (eqs. r1-r3): Bellec et
    al. say so themselves -- random e-prop, with a fixed random B, *is* RFLO (Murray 2019), and
    symmetric e-prop uses the true output weights as B. In the paper's network the "output
    weight" from unit i to output unit k is W_rec[k, i], hence ``feedback="symmetric"``
    (the default here) and the project's choice of adding the unit's own error (B = I + F).
    The options are RFLO's; ``eprop`` with ``feedback="random"`` computes the same as ``rflo``.
    """

    feedback: str = "symmetric"

    name = "eprop"


@njit(cache=True, nogil=True, fastmath={"contract"})
def rflo_run_kernel(W, y, p, F, symmetric, tau, xs, ds, mask, lr, act, tf, clip, wmask):
    """Compiled RFLO / e-prop over a chunk, with the meaning of :func:`rtrl.rules.base.reference_run`.

    W (n, K), y (n,), p (n, K) of one float type; F (n, n) the random feedback (ignored, and
    may be (0, 0), when ``symmetric``: F[i, k] = W_rec[k, i] with the current weights);
    returns (W, y, p, ys (T, n), G (n, K)); nothing passed in is modified.
    """
    n, K = W.shape
    m = K - 1 - n
    T = xs.shape[0]
    dt = W.dtype
    W = W.copy()
    y = y.copy()
    p = p.copy()
    ys = np.empty((T, n), dt)
    G = np.zeros((n, K), dt)
    z = np.empty(K, dt)
    fp = np.empty(n, dt)
    e = np.empty(n, dt)
    L = np.empty(n, dt)
    decay = 1.0 - 1.0 / tau
    inv_tau = 1.0 / tau
    for t in range(T):
        _fill_z(z, xs[t], y, m, n)  # z(t) = [x(t), 1, y(t)]
        any_target = False
        for k in range(n):
            yk = _f(_dot(W, k, 0, z, K), act[k])
            ys[t, k] = yk
            fp[k] = _fprime(yk, act[k])
            if mask[t, k]:
                e[k] = ds[t, k] - yk
                any_target = True
            else:
                e[k] = 0.0
        # eq. r2: L = e + F e, with the weights of this step (before the update)
        if any_target:
            if symmetric:
                # F[i, k] = W_rec[k, i] (k != i): row k of W_rec scattered with e_k
                for i in range(n):
                    L[i] = 0.0
                for k in range(n):
                    ek = e[k]
                    if ek != 0.0:
                        for i in range(k):
                            L[i] += ek * W[k, m + 1 + i]
                        for i in range(k + 1, n):
                            L[i] += ek * W[k, m + 1 + i]
                for i in range(n):
                    L[i] = e[i] + L[i]
            else:
                for i in range(n):
                    L[i] = e[i] + _dot(F, i, 0, e, n)
        # eq. r1: p(t+1) = (1 - 1/tau) p(t) + (1/tau) f' (x) z(t)
        for i in range(n):
            c = fp[i] * inv_tau
            for j in range(K):
                p[i, j] = decay * p[i, j] + c * z[j]
        if any_target:
            # eq. r3: g[i, j] = -L_i p(t+1)[i, j] (masked); G += g; clipped real-time update
            scale = lr
            if lr != 0.0 and clip > 0.0:
                gn2 = 0.0
                for i in range(n):
                    Li = L[i]
                    for j in range(K):
                        gv = Li * p[i, j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        gn2 += gv * gv
                norm = np.sqrt(gn2)
                if norm > clip:
                    scale = lr * clip / norm
            if lr != 0.0:  # G += g and the real-time update W -= lr g, in one pass
                for i in range(n):
                    Li = L[i]
                    for j in range(K):
                        gv = -Li * p[i, j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
                        W[i, j] -= scale * gv
            else:
                for i in range(n):
                    Li = L[i]
                    for j in range(K):
                        gv = -Li * p[i, j]
                        if wmask is not None:
                            gv *= wmask[i, j]
                        G[i, j] += gv
        # Teacher forcing: forced units feed their target forward; their trace rows are zero.
        for k in range(n):
            if tf and mask[t, k]:
                y[k] = ds[t, k]
                for j in range(K):
                    p[k, j] = 0.0
            else:
                y[k] = ys[t, k]
    return W, y, p, ys, G
