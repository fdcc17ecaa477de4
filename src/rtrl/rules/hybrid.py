"""Schmidhuber's (1992) hybrid: the exact RTRL gradients at O(n^3) per step.

Schmidhuber, J. (1992). "A fixed size storage O(n^3) time complexity learning algorithm for
fully recurrent continually running networks". Neural Computation 4(2):243-248.

The sensitivity recursion of RTRL is linear in P, so the same per-step gradients can be
formed in another order: BPTT inside blocks of h steps, the full P carried across block
boundaries (equations in :mod:`rtrl.hybrid`). Nothing is approximated; the weight
trajectory equals real-time RTRL's to rounding.

Cost per step: O(n^2 h + n^2 K) plus the block end's O(n^3 K)/h, O(n^3) on average with
h ~ n. Memory: P at the block start (n^2 K) plus the block's O(h n^2) history.

Its state between chunks is RTRL's (:class:`~rtrl.rules.rtrl.SensitivityState`): a chunk ends
a block, so P is always the full sensitivity. Its NumPy reference is exact RTRL's step (the
two compute the same numbers); the compiled loop is :func:`rtrl.hybrid.hybrid_run_kernel`, the
JAX loop (``engine="jax"``) :mod:`rtrl.jax_engine`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..hybrid import default_block, hybrid_run_kernel, use_blas_read
from ..threads import get_threads
from .base import Rule, check_int_option, register
from .rtrl import RTRL, SensitivityState

__all__ = ["Hybrid"]


@register
@dataclasses.dataclass(frozen=True)
class Hybrid(Rule):
    """Exact real-time gradients by Schmidhuber's RTRL/BPTT block hybrid (compiled engine).

    Parameters
    ----------
    block : int, optional
        Block length h (steps of BPTT between full sensitivity updates); None: about n/2.
    """

    block: int | None = None

    name = "hybrid"
    exact = True
    unbiased = True
    cost = "O(n^3) on average (h ~ n)"
    memory = "n^2 K + O(h n^2)"
    dtypes = ("float64", "float32")
    short_option = "block"

    def __post_init__(self):
        if self.block is not None:
            check_int_option(self.name, "block", self.block)

    @property
    def spec(self):
        return self.name if self.block is None else f"hybrid:{self.block}"

    def init(self, W, y0, *, stream=0, wmask=None):
        return RTRL().init(W, y0)

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        # The hybrid computes exactly RTRL's per-step gradients; its readable form is RTRL's step.
        return RTRL().step(W, state, x, d, mask_t, activation=activation, teacher_forcing=teacher_forcing)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        h = default_block(W.shape[0]) if self.block is None else self.block
        if use_blas_read(W.shape[0], W.shape[1], get_threads()):
            W, y, P, ys, G = hybrid_run_kernel(W, state.y, state.P, xs, ds, mask, lr, act, tf, h, clip, wmask, None,
                                               True)
        elif wmask is None:
            W, y, P, ys, G = hybrid_run_kernel(W, state.y, state.P, xs, ds, mask, lr, act, tf, h, clip)
        else:
            W, y, P, ys, G = hybrid_run_kernel(W, state.y, state.P, xs, ds, mask, lr, act, tf, h, clip, wmask)
        return W, SensitivityState(y, P), ys, G

    def run_jax(self, W, state, xs, ds, mask, *, lr, activation, teacher_forcing, clip, wmask):
        """The JAX engine's loop (:mod:`rtrl.jax_engine`), meaning of :meth:`run_compiled`; W (n, K) or (B, n, K)."""
        from .. import jax_engine

        h = default_block(W.shape[-2]) if self.block is None else self.block
        W, y, P, ys, G = jax_engine.run("hybrid", W, state.y, state.P, xs, ds, mask, lr=lr, activation=activation,
                                        teacher_forcing=teacher_forcing, clip=clip, wmask=wmask, block=h)
        return W, SensitivityState(y, P), ys, G

    def numbers(self, n, K):
        h = default_block(n) if self.block is None else self.block
        return n + n * n * K + h * (n * n + 2 * n + K)
