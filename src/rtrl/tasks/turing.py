"""The Turing-machine task (paper section 3): imitate the controller of a parenthesis checker.

The machine (after Minsky 1967) decides whether a string of ``(`` and ``)`` is balanced.
Its tape holds ``<`` (left end marker), the string, and ``>`` (right end marker); the head
starts on the first symbol after ``<`` in state R. The controller has three states:

======  =========  ===========================================  ==========
state   reads      action                                       next state
======  =========  ===========================================  ==========
R       ``(``/X    move right                                   R
R       ``)``      write X, move left                           L
R       ``>``      move left                                    C
L       X          move left                                    L
L       ``(``      write X, move right                          R
L       ``<``      halt: not balanced (a ``)`` has no ``(``)    R (next string)
C       X          move left                                    C
C       ``(``      halt: not balanced (a ``(`` is left over)    R (next string)
C       ``<``      halt: balanced                               R (next string)
======  =========  ===========================================  ==========

R scans right to the first ``)`` and crosses it out; L scans left to the nearest ``(`` and
crosses it out; at the right end marker C scans left once more for a leftover ``(``. No other
(state, symbol) pair can occur (R never meets ``<``; L and C never meet ``)`` or ``>``).

What the network sees and must say (the controller's state is never shown):

* input ``x(t)``: the symbol under the head, one-hot over 5 lines
  ``[<, (, ), X, >]`` (lines 0..4);
* targets, one unit each: unit 0 *write* (high = write X), unit 1 *move* (high = right,
  low = left; no target on a halting step, where the head does not move), unit 2 *halt*
  (high on the halting step), unit 3 *verdict* (high = balanced; a target only on the
  halting step).

NOTE (choices the paper leaves open, see docs/experiments.md):

* Pace: one tape symbol per step; the environment applies the *correct* action at once, so the
  tape never depends on the network's mistakes.
* Latency: the action for the symbol read at step t is due ``delay`` = 2 steps later, at y(t+2),
  i.e. ``targets[t]`` is the action for ``xs[t-1]``. With the state held as a one-hot code,
  "write" = (R and ``)``) or (L and ``(``) is not linearly separable in (state, symbol), so no
  single layer can give it at y(t+1): one hidden step is needed, as in pipelined XOR.
* Strings: with probability ``p_balanced`` a balanced string (k pairs, k uniform in
  1..max_length//2, a uniformly shuffled arrangement of k ``(`` and k ``)`` redrawn until balanced),
  otherwise a random string of length uniform in ``min_length..max_length`` with each symbol ``(``
  or ``)`` with probability 1/2, redrawn until unbalanced. A new string starts on the step after
  the halt, with no reset of the network.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, check_real, register

__all__ = ["TuringParens", "TuringParams", "SYMBOLS", "ACTIONS", "controller", "run_machine", "is_balanced"]

#: Tape symbols in input-line order.
SYMBOLS = "<()X>"
#: Target units in order.
ACTIONS = ("write", "move", "halt", "verdict")
LEFT, OPEN, CLOSE, CROSS, RIGHT = range(5)


def is_balanced(string: str) -> bool:
    """True if every ``)`` closes an earlier ``(`` and none is left open."""
    depth = 0
    for c in string:
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0


class Action(NamedTuple):
    """One controller step: ``write`` X?, ``move`` (+1 right, -1 left, 0 on halt), ``halt``,
    ``balanced`` (only meaningful on a halt), and the ``next`` state."""

    write: bool
    move: int
    halt: bool
    balanced: bool
    next: str


def controller(state: str, symbol: str) -> Action:
    """The controller's table (see the module docstring); ValueError for an impossible pair."""
    table = {
        ("R", "("): Action(False, +1, False, False, "R"),
        ("R", "X"): Action(False, +1, False, False, "R"),
        ("R", ")"): Action(True, -1, False, False, "L"),
        ("R", ">"): Action(False, -1, False, False, "C"),
        ("L", "X"): Action(False, -1, False, False, "L"),
        ("L", "("): Action(True, +1, False, False, "R"),
        ("L", "<"): Action(False, 0, True, False, "R"),
        ("C", "X"): Action(False, -1, False, False, "C"),
        ("C", "("): Action(False, 0, True, False, "R"),
        ("C", "<"): Action(False, 0, True, True, "R"),
    }
    try:
        return table[(state, symbol)]
    except KeyError:
        raise ValueError(f"controller: state {state!r} cannot read {symbol!r}") from None


def run_machine(string: str) -> list[tuple[str, str, Action]]:
    """Run the machine on one string; return ``(state, symbol read, action)`` per step until the halt.

    >>> [(s, c, a.next) for s, c, a in run_machine("()")][:3]
    [('R', '(', 'R'), ('R', ')', 'L'), ('L', '(', 'R')]
    """
    tape = list("<" + string + ">")
    head, state, trace = 1, "R", []
    while True:
        sym = tape[head]
        act = controller(state, sym)
        trace.append((state, sym, act))
        if act.halt:
            return trace
        if act.write:
            tape[head] = "X"
        head += act.move
        state = act.next


@dataclasses.dataclass(frozen=True)
class TuringParams(Params):
    """``min_length``/``max_length``: string lengths; ``p_balanced``: probability that a string
    is balanced; ``delay``: steps from the symbol read to its action (2: one hidden step);
    ``low``/``high``: target levels."""

    min_length: int = 1
    max_length: int = 8
    p_balanced: float = 0.5
    delay: int = 2
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_int(self.min_length, "min_length", task, minimum=1, maximum=64)
        check_int(self.max_length, "max_length", task, minimum=max(2, self.min_length), maximum=64)
        check_real(self.p_balanced, "p_balanced", task, low=0.0, high=1.0)
        check_int(self.delay, "delay", task, minimum=1, maximum=64)
        check_levels(self.low, self.high, task)


class TuringState(NamedTuple):
    """The environment's state: the current string (None between strings), how many of its
    machine steps have been shown, and the action targets not yet due (``delay - 1`` of them)."""

    string: str | None
    pos: int
    pending: tuple


@functools.lru_cache(maxsize=4096)
def _trace_arrays(string: str, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """The machine's whole run on ``string``: inputs (S, 5) one-hot and actions (S, 4), NaN = none."""
    trace = run_machine(string)
    xs = np.zeros((len(trace), len(SYMBOLS)))
    vs = np.full((len(trace), len(ACTIONS)), np.nan)
    lvl = (low, high)
    for i, (_, sym, act) in enumerate(trace):
        xs[i, SYMBOLS.index(sym)] = 1.0
        vs[i, 0] = lvl[act.write]
        vs[i, 2] = lvl[act.halt]
        if act.halt:
            vs[i, 3] = lvl[act.balanced]
        else:
            vs[i, 1] = lvl[act.move > 0]
    xs.flags.writeable = False
    vs.flags.writeable = False
    return xs, vs


@register
class TuringParens(Task):
    __doc__ = __doc__
    name = "turing-parens"
    description = "imitate a balanced-parentheses Turing machine's controller: symbol under head -> actions"
    params_class = TuringParams

    n_inputs = len(SYMBOLS)
    n_targets = len(ACTIONS)

    def draw_string(self, rng) -> str:
        """One random string (balanced with probability ``p_balanced``)."""
        rng = check_random_state(rng)
        p = self.params
        if rng.random() < p.p_balanced:
            k = int(rng.integers(1, p.max_length // 2 + 1))
            while True:
                s = "".join(rng.permutation(list("(" * k + ")" * k)))
                if is_balanced(s):
                    return s
        while True:
            length = int(rng.integers(p.min_length, p.max_length + 1))
            s = "".join(np.where(rng.random(length) < 0.5, "(", ")"))
            if not is_balanced(s):
                return s

    def trace(self, string: str) -> tuple[np.ndarray, np.ndarray]:
        """The machine's run on one string: symbols read (S, 5) one-hot and actions (S, 4)."""
        return _trace_arrays(string, self.params.low, self.params.high)

    def reset(self, rng):
        nan = (np.nan,) * len(ACTIONS)
        return TuringState(None, 0, (nan,) * (self.params.delay - 1))

    def rollout(self, state, n_steps, rng):
        """Whole strings at a time: the machine's run on each string is computed once (cached).

        A new string is drawn when a step starts with no string on the tape (the first step
        of the stream, or the step after a halt), exactly as a loop of :meth:`step` would.
        """
        rng = check_random_state(rng)
        xs_parts, vs_parts = [], []
        string, pos, left = state.string, state.pos, n_steps
        while left > 0:
            if string is None:
                string, pos = self.draw_string(rng), 0
            txs, tvs = self.trace(string)
            take = min(left, len(txs) - pos)
            xs_parts.append(txs[pos:pos + take])
            vs_parts.append(tvs[pos:pos + take])
            pos += take
            left -= take
            if pos == len(txs):
                string, pos = None, 0
        k = len(ACTIONS)
        xs = np.concatenate(xs_parts) if xs_parts else np.empty((0, len(SYMBOLS)))
        vs = np.concatenate(vs_parts) if vs_parts else np.empty((0, k))
        full = np.concatenate([np.asarray(state.pending, dtype=np.float64).reshape(-1, k), vs])
        ds = full[:n_steps].copy()  # targets[t] = action for xs[t + 1 - delay]
        pending = tuple(tuple(row) for row in full[n_steps:].tolist())
        return TuringState(string, pos, pending), xs, ds
