"""SnAp-n: RTRL's sensitivities kept on the sparsity pattern of n steps (an approximation).

Menick, J., Elsen, E., Evci, U., Osindero, S., Simonyan, K. & Graves, A. (2021). "Practical
real time recurrent learning with a sparse approximation". ICLR 2021.

A weight w_ij first moves y_i (one step), then the units that i feeds (two steps), and so on.
SnAp-n keeps the sensitivity P[k, i, :] = dy_k/dw_i: only where w_i can reach unit k within
n steps, i.e. for k in S_i = the units reachable from i in at most n-1 hops along the recurrent
connections (edge l -> k iff ``wmask[k, m+1+l] != 0``; wmask None: fully connected), and
treats the other entries as zero. In our notation (``docs/conventions.md``), with
P_i = P[S_i, i, :]::

    P_i(t+1) = diag(f'_{S_i}(t)) (W_rec[S_i, S_i] P_i(t) + [S_i == i] z(t))
    dJ(t)/dW[i, :] ~ -sum_{k in S_i} e_k(t) P(t+1)[k, i, :]

with teacher forcing as in RTRL. SnAp-1 keeps only P[i, i, :] (S_i = {i}); SnAp-2 keeps i and
the units i feeds. **With a dense W_rec, SnAp-2 already keeps every entry: it is full RTRL.**
In general, once n is large enough that S_i holds every unit reachable from i (saturation,
at most n_units - 1 hops), the dropped entries are exactly zero in RTRL too, and SnAp-n *is*
exact RTRL on that (sparse) network.

Cost per step: 2 K sum_i |S_i|^2 flops for the sensitivities plus the O(nK) forward pass:
SnAp-1 is O(nK) (O(n^2) in all), SnAp-2 with d outgoing connections per unit O(n d^2 K).
Memory: K sum_i |S_i| numbers: n K for SnAp-1, n (d + 1) K for SnAp-2, n^2 K when saturated
on a dense network.

The pattern is computed once from the ``wmask`` given to :meth:`SnAp.init` and kept in the
state (``idx``, ``off``; :class:`rtrl.rules._pattern.PatternState`); :meth:`SnAp.run_compiled`
checks that its ``wmask`` gives the same pattern. The default order 1 is a project default.
The compiled loop is the shared pattern engine :func:`rtrl.rules._pattern.pattern_run_kernel`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._pattern import PatternState, pattern_init, pattern_run, pattern_step, reach_pattern
from .base import Rule, check_int_option, register

__all__ = ["SnAp"]

_CACHE: dict = {}  # (n, order, mask bytes) -> (idx, off)
_CACHE_SIZE = 32


def snap_pattern(wmask, n: int, order: int):
    """(idx, off) of SnAp-``order`` for n units and connectivity ``wmask`` (cached)."""
    key: tuple
    if wmask is None:
        key = (n, order, None)
    else:
        nz = np.ascontiguousarray(np.asarray(wmask) != 0)
        key = (n, order, nz.shape, nz.tobytes())
    hit = _CACHE.get(key)
    if hit is None:
        hit = reach_pattern(wmask, n, order)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = hit
    return hit


@register
@dataclasses.dataclass(frozen=True)
class SnAp(Rule):
    """SnAp-n (Menick et al. 2021): sensitivities only where n steps of connectivity reach.

    Parameters
    ----------
    order : int
        n >= 1: keep dy_k/dw_i: for units k within n-1 hops of unit i. Default 1 (project
        default). ``rules.make("snap-2")`` is order 2. With a dense W, order 2 is exact RTRL.

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("snap-1")
    >>> W = np.zeros((3, 5)); state = rule.init(W, np.zeros(3))
    >>> state.P.shape  # one row of K = 5 per unit
    (3, 5)
    >>> rules.make("snap-2").init(W, np.zeros(3)).P.shape  # dense: every unit, full RTRL
    (9, 5)
    """

    order: int = 1

    name = "snap"
    structural_fields = ("idx", "off")  # the sensitivity pattern, made from the mask by init
    exact = False  # exact at saturation (order 2 on a dense network)
    unbiased = False
    cost = "O(K sum_i |S_i|^2): O(n K) for SnAp-1, O(n^3 K) for SnAp-2 on a dense network"
    memory = "K sum_i |S_i|: n K for SnAp-1, n^2 K at saturation"
    dtypes = ("float64", "float32")
    short_option = "order"

    def __post_init__(self):
        object.__setattr__(self, "order", check_int_option(self.name, "order", self.order))

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        idx, off = snap_pattern(wmask, n, self.order)
        return pattern_init(W, y0, idx, off)

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        return pattern_step(W, state, x, d, mask_t, activation=activation, teacher_forcing=teacher_forcing)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        state = PatternState(*state)
        idx, off = snap_pattern(wmask, W.shape[0], self.order)
        if not (np.array_equal(idx, state.idx) and np.array_equal(off, state.off)):
            raise ValueError(f"rule {self.name!r}: the state's sensitivity pattern was made for another "
                             "connectivity mask; make the state with init(..., wmask=) of the mask the run uses")
        return pattern_run(W, state, xs, ds, mask, lr, act, tf, clip, wmask)

    def numbers(self, n, K):
        """Numbers of the state on a fully connected network (a sparse mask keeps fewer)."""
        kept = n if self.order == 1 else n * n
        return n + kept * K + kept + n + 1  # y, P, and the pattern's indices
