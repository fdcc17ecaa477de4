"""Zipser's subgrouping: RTRL run within subnetworks (an approximation).

Zipser, D. (1989). "A subgrouping strategy that reduces complexity and speeds up learning in
recurrent networks". Neural Computation 1(4):552-558.

The n units are split into g groups. A unit keeps sensitivities only for the weights into
units of its own group: with S_i the group of unit i, the entries P[k, i, :] for k outside
S_i are taken as zero, i.e. the connections coming from other groups are treated like
external inputs (their values enter through z, their dependence on the weights is ignored).
In our notation (``docs/conventions.md``), for every weight row i with P_i = P[S_i, i, :]::

    P_i(t+1) = diag(f'_{S_i}(t)) (W_rec[S_i, S_i] P_i(t) + [S_i == i] z(t))
    dJ(t)/dW[i, :] ~ -sum_{k in S_i} e_k(t) P(t+1)[k, i, :]

with teacher forcing as in RTRL (forced units take their target, their stored rows become 0).
With g = 1 (one group) this is exact RTRL; with g = n it keeps only P[i, i, :].

Cost per step: groups of n/g units give 2 n^3 K / g^2 flops for the sensitivities (RTRL's
2 n^3 K divided by g^2), plus the O(nK) forward pass; with g ~ n/4 a step is O(n^2).
Memory: n^2 K / g numbers (P[k, i, :] for k, i in the same group).

Zipser reports the Turing-machine task of Williams & Zipser (1989) learned about 10 times
faster with subgroups than with full RTRL. A weight row i only ever receives error from the
target units of its own group (the gradient above sums over k in S_i), so **each group needs
at least one unit with a target to learn anything**; this rule does not enforce it (a group
without targets simply keeps its incoming weights).

``groups`` is an int g (the units split into g contiguous groups of nearly equal size, as
``np.array_split(range(n), g)``) or a list of n group labels (any ints; equal labels share a
group, which need not be contiguous). The default g = 2 is a project default. The compiled loop
is the shared pattern engine :func:`rtrl.rules._pattern.pattern_run_kernel`.
"""

from __future__ import annotations

import dataclasses
import numbers as _numbers

import numpy as np

from ._pattern import PatternState, groups_pattern, pattern_init, pattern_run, pattern_step
from .base import Rule, RuleOptionError, check_int_option, register

__all__ = ["Subgroup"]


@register
@dataclasses.dataclass(frozen=True)
class Subgroup(Rule):
    """Zipser's (1989) subgrouping: sensitivities only within each group of units.

    Parameters
    ----------
    groups : int or sequence of int
        g contiguous groups of nearly equal size (1 <= g <= n; g = 1 is exact RTRL), or one
        group label per unit. Default 2 (project default).

    Examples
    --------
    >>> import numpy as np
    >>> from rtrl import rules
    >>> rule = rules.make("subgroup:2")
    >>> rule.labels(5).tolist()
    [0, 0, 0, 1, 1]
    >>> W = np.zeros((4, 6)); state = rule.init(W, np.zeros(4))
    >>> state.P.shape  # two groups of two: 4 rows i with 2 kept units each, K = 6
    (8, 6)
    """

    groups: int | tuple = 2

    name = "subgroup"
    structural_fields = ("idx", "off")  # the sensitivity pattern, made from the groups by init
    exact = False  # exact with groups = 1
    unbiased = False
    cost = "O(n^3 K / g^2): 2 n^3 K / g^2 flops"
    memory = "n^2 K / g (P)"
    dtypes = ("float64", "float32")
    short_option = "groups"

    def __post_init__(self):
        g = self.groups
        if isinstance(g, _numbers.Integral) and not isinstance(g, bool):
            object.__setattr__(self, "groups", check_int_option(self.name, "groups", g))
            return
        if isinstance(g, (str, bytes)) or not hasattr(g, "__len__") or len(g) == 0:
            raise RuleOptionError(f"rule {self.name!r}: option groups: expected a number of groups >= 1 or a "
                                  f"non-empty list of one integer group label per unit, got {g!r}")
        labels = list(g) if not isinstance(g, np.ndarray) or g.ndim == 1 else [g]
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, _numbers.Integral) for v in labels):
            raise RuleOptionError(f"rule {self.name!r}: option groups: group labels must be a flat list of "
                                  f"integers, one per unit, got {g!r}")
        object.__setattr__(self, "groups", tuple(int(v) for v in labels))

    @property
    def spec(self):
        # A label list has no short form (``make`` cannot parse it after a colon).
        return f"{self.name}:{self.groups}" if isinstance(self.groups, int) else self.name

    def check(self, n, K):
        if isinstance(self.groups, int):
            if self.groups > n:
                raise RuleOptionError(f"rule {self.name!r}: option groups: expected at most n = {n} groups "
                                      f"(one unit each), got {self.groups}")
        elif len(self.groups) != n:
            raise RuleOptionError(f"rule {self.name!r}: option groups: expected one label per unit ({n}), "
                                  f"got {len(self.groups)} labels")

    def labels(self, n: int) -> np.ndarray:
        """The group label of each of n units (n,) int64."""
        self.check(n, n)
        if isinstance(self.groups, int):
            out = np.empty(n, np.int64)
            for label, part in enumerate(np.array_split(np.arange(n), self.groups)):
                out[part] = label
            return out
        return np.array(self.groups, dtype=np.int64)

    def init(self, W, y0, *, stream=0, wmask=None):
        n, K = W.shape
        self.check(n, K)
        idx, off = groups_pattern(self.labels(n))
        return pattern_init(W, y0, idx, off)

    def step(self, W, state, x, d, mask_t, *, activation="logistic", teacher_forcing=False):
        return pattern_step(W, state, x, d, mask_t, activation=activation, teacher_forcing=teacher_forcing)

    def run_compiled(self, W, state, xs, ds, mask, lr, act, tf, clip, wmask):
        return pattern_run(W, PatternState(*state), xs, ds, mask, lr, act, tf, clip, wmask)

    def numbers(self, n, K):
        sizes = np.bincount(np.unique(self.labels(n), return_inverse=True)[1])
        kept = int(np.sum(sizes * sizes))  # sum_i |S_i|
        return n + kept * K + kept + n + 1  # y, P, and the pattern's indices
