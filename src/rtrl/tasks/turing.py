"""The Turing-machine task (paper section 3): the network must *be* the controller of a parenthesis checker.

The machine (after Minsky 1967) decides whether a string of ``(`` and ``)`` is balanced. Its tape
holds one end-marker symbol ``A`` on each side of the string, ``A w A``, over the alphabet
{A, (, ), X}; the head starts on the first symbol of w in state R. The controller has three states:

======  =========  ===========================================  ==========
state   reads      action                                       next state
======  =========  ===========================================  ==========
R       ``(``/X    move right                                   R
R       ``)``      write X, move left                           L
R       A          move left (the right end)                    C
L       X          move left                                    L
L       ``(``      write X, move right                          R
L       A          halt: not balanced (a ``)`` has no ``(``)    R (next string)
C       X          move left                                    C
C       ``(``      halt: not balanced (a ``(`` is left over)    R (next string)
C       A          halt: balanced                               R (next string)
======  =========  ===========================================  ==========

R scans right to the first ``)`` and crosses it out; L scans left to the nearest ``(`` and
crosses it out; at the right end C scans left once more for a leftover ``(``. No other
(state, symbol) pair can occur. Both ends carry the same marker, as in Minsky's machine: which end
the head is at is part of the state the network must hold (R only ever meets the right ``A``,
L and C only the left one).

What the network sees and must do (the controller's state is never shown):

* input ``x(t)``: the symbol under the head, one-hot over 4 lines ``[A, (, ), X]``;
* targets, one unit each: unit 0 *write* (high = write X), unit 1 *move* (high = right,
  low = left; no target on a halting step), unit 2 *halt* (high on the halting step), unit 3
  *verdict* (high = balanced; a target only on the halting step).

NOTE (choices the paper leaves open, see docs/experiments.md):

* **No lookahead.** The next symbol is shown only after the action for the current one has been
  applied to the tape. ``hold=1`` (default): the action for the symbol read at step t is due at
  y(t+1) (``targets[t]`` is the action for ``xs[t]``) and the tape moves before x(t+1). Over the
  (state, symbol) pairs that occur, every action and next state is a linearly separable function
  of a one-hot state and the symbol, so one step suffices. ``hold=2``: each symbol is shown for two
  steps and its action is due on the second (``targets[t+1]``, none on the first), which leaves one
  step for a hidden layer.
* **Training drives the tape by the teacher's (correct) actions**; the network's own actions move
  the head only in the closed-loop test (:meth:`TuringParens.closed_loop`).
* Strings: with probability ``p_balanced`` a balanced string (k pairs, k uniform in
  1..max_length//2, a uniformly shuffled arrangement of k ``(`` and k ``)`` redrawn until balanced),
  otherwise a random string of length uniform in ``min_length..max_length``, each symbol ``(`` or
  ``)`` with probability 1/2, redrawn until unbalanced. A new string starts on the step after the
  halt, with no reset of the network.

Earlier versions (rtrl 0.1) used two different end markers and an action due two steps after its
symbol while the tape moved at once; the network could then read the result of the action before
emitting it. That encoding is gone: it was an easier, different task.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np

from .._validation import check_random_state
from .base import Params, Task, check_int, check_levels, check_real, register

__all__ = ["TuringParens", "TuringParams", "SYMBOLS", "ACTIONS", "controller", "run_machine", "is_balanced",
           "ClosedLoopResult", "MAX_MACHINE_STEPS"]

#: Tape symbols in input-line order.
SYMBOLS = "A()X"
#: Target units in order.
ACTIONS = ("write", "move", "halt", "verdict")


def is_balanced(string: str) -> bool:
    """True if every ``)`` closes an earlier ``(`` and none is left open."""
    depth = 0
    for c in string:
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0


def MAX_MACHINE_STEPS(length: int) -> int:  # noqa: N802 - a bound, read like a constant
    """An upper bound on the machine's steps for a string of ``length`` symbols (it halts well before)."""
    return 2 * (length + 2) ** 2 + 10


class Action(NamedTuple):
    """One controller step: ``write`` X?, ``move`` (+1 right, -1 left, 0 on halt), ``halt``,
    ``balanced`` (only meaningful on a halt), and the ``next`` state."""

    write: bool
    move: int
    halt: bool
    balanced: bool
    next: str


_TABLE = {
    ("R", "("): Action(False, +1, False, False, "R"),
    ("R", "X"): Action(False, +1, False, False, "R"),
    ("R", ")"): Action(True, -1, False, False, "L"),
    ("R", "A"): Action(False, -1, False, False, "C"),
    ("L", "X"): Action(False, -1, False, False, "L"),
    ("L", "("): Action(True, +1, False, False, "R"),
    ("L", "A"): Action(False, 0, True, False, "R"),
    ("C", "X"): Action(False, -1, False, False, "C"),
    ("C", "("): Action(False, 0, True, False, "R"),
    ("C", "A"): Action(False, 0, True, True, "R"),
}


def controller(state: str, symbol: str) -> Action:
    """The controller's table (see the module docstring); ValueError for an impossible pair."""
    try:
        return _TABLE[(state, symbol)]
    except KeyError:
        raise ValueError(f"controller: state {state!r} cannot read {symbol!r}") from None


def run_machine(string: str) -> list[tuple[str, str, Action]]:
    """Run the machine on one string; return ``(state, symbol read, action)`` per step until the halt.

    Raises RuntimeError if the machine runs past :func:`MAX_MACHINE_STEPS` (it cannot: a guard).

    >>> [(s, c, a.next) for s, c, a in run_machine("()")][:3]
    [('R', '(', 'R'), ('R', ')', 'L'), ('L', '(', 'R')]
    """
    tape = list("A" + string + "A")
    head, state, trace = 1, "R", []
    for _ in range(MAX_MACHINE_STEPS(len(string))):
        sym = tape[head]
        act = controller(state, sym)
        trace.append((state, sym, act))
        if act.halt:
            return trace
        if act.write:
            tape[head] = "X"
        head += act.move
        state = act.next
        if not 0 <= head < len(tape):  # a guard: the controller above never moves past a marker
            raise RuntimeError(f"run_machine: no halt: the head left the tape on {string!r}")
    raise RuntimeError(f"run_machine: no halt within {MAX_MACHINE_STEPS(len(string))} steps on {string!r}")


@dataclasses.dataclass(frozen=True)
class TuringParams(Params):
    """``min_length``/``max_length``: string lengths; ``p_balanced``: probability that a string
    is balanced; ``hold``: steps each symbol is shown (its action is due on the last);
    ``low``/``high``: target levels."""

    min_length: int = 1
    max_length: int = 8
    p_balanced: float = 0.5
    hold: int = 1
    low: float = 0.1
    high: float = 0.9

    def validate(self, task):
        check_int(self.min_length, "min_length", task, minimum=1, maximum=64)
        check_int(self.max_length, "max_length", task, minimum=max(2, self.min_length), maximum=64)
        check_real(self.p_balanced, "p_balanced", task, low=0.0, high=1.0)
        check_int(self.hold, "hold", task, minimum=1, maximum=2)
        check_levels(self.low, self.high, task)


class TuringState(NamedTuple):
    """The environment's state: the current string (None between strings) and how many of its
    stream steps have been shown."""

    string: str | None
    pos: int


class ClosedLoopResult(NamedTuple):
    """Outcome of a closed-loop test: strings run and failed, machine steps taken, and per failed
    string ``(string, step, what was wrong)`` (at most 10)."""

    strings: int
    failed: int
    steps: int
    failures: list

    @property
    def error(self) -> float:
        """Fraction of strings not run perfectly."""
        return self.failed / max(1, self.strings)


@functools.lru_cache(maxsize=4096)
def _trace_arrays(string: str, low: float, high: float, hold: int) -> tuple[np.ndarray, np.ndarray]:
    """The machine's whole run on ``string`` as a stream: inputs (S*hold, 4) one-hot and targets
    (S*hold, 4), NaN = none (targets only on the last step of each held symbol)."""
    trace = run_machine(string)
    S = len(trace)
    xs = np.zeros((S * hold, len(SYMBOLS)))
    vs = np.full((S * hold, len(ACTIONS)), np.nan)
    lvl = (low, high)
    for i, (_, sym, act) in enumerate(trace):
        xs[i * hold:(i + 1) * hold, SYMBOLS.index(sym)] = 1.0
        r = (i + 1) * hold - 1  # the action is due after the last step the symbol is shown
        vs[r, 0] = lvl[act.write]
        vs[r, 2] = lvl[act.halt]
        if act.halt:
            vs[r, 3] = lvl[act.balanced]
        else:
            vs[r, 1] = lvl[act.move > 0]
    xs.flags.writeable = False
    vs.flags.writeable = False
    return xs, vs


@register
class TuringParens(Task):
    __doc__ = __doc__
    name = "turing-parens"
    description = "be the controller of a balanced-parentheses Turing machine: symbol under the head -> action"
    params_class = TuringParams

    n_inputs = len(SYMBOLS)
    n_targets = len(ACTIONS)

    def draw_string(self, rng, max_length: int | None = None) -> str:
        """One random string (balanced with probability ``p_balanced``); lengths up to ``max_length``
        (default the task's)."""
        rng = check_random_state(rng)
        p = self.params
        top = p.max_length if max_length is None else int(max_length)
        if rng.random() < p.p_balanced:
            k = int(rng.integers(1, top // 2 + 1))
            while True:
                s = "".join(rng.permutation(list("(" * k + ")" * k)))
                if is_balanced(s):
                    return s
        while True:
            length = int(rng.integers(p.min_length, top + 1))
            s = "".join(np.where(rng.random(length) < 0.5, "(", ")"))
            if not is_balanced(s):
                return s

    def trace(self, string: str) -> tuple[np.ndarray, np.ndarray]:
        """The machine's run on one string as a stream: inputs (S*hold, 4) one-hot and targets (S*hold, 4)."""
        p = self.params
        return _trace_arrays(string, p.low, p.high, p.hold)

    def reset(self, rng):
        return TuringState(None, 0)

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
        xs = np.concatenate(xs_parts) if xs_parts else np.empty((0, len(SYMBOLS)))
        ds = np.concatenate(vs_parts) if vs_parts else np.empty((0, len(ACTIONS)))
        return TuringState(string, pos), xs.copy(), ds.copy()

    def closed_loop(self, net_step, rng, n_steps: int, max_length: int | None = None) -> ClosedLoopResult:
        """Let the network run the machine: its own actions write on the tape and move the head.

        ``net_step(x) -> y`` advances the (frozen) network one step on input x (4,) and returns its
        outputs (units 0..3 are read). Fresh strings (lengths up to ``max_length``, default twice
        the training ``max_length``) are run one after another, without resetting the network,
        until ``n_steps`` network steps have been used (the last string is finished). A string
        passes only if every action (write, move, halt) and the final verdict are right, each read
        as output > 0.5; a wrong action ends that string (counted failed) and the next one starts.
        """
        rng = check_random_state(rng)
        p = self.params
        top = 2 * p.max_length if max_length is None else int(max_length)
        strings = failed = steps = 0
        failures: list = []
        while steps < n_steps:
            w = self.draw_string(rng, max_length=top)
            tape = list("A" + w + "A")
            head, state = 1, "R"
            strings += 1
            for k in range(MAX_MACHINE_STEPS(len(w))):
                x = np.zeros(len(SYMBOLS))
                x[SYMBOLS.index(tape[head])] = 1.0
                for _ in range(p.hold):
                    y = np.asarray(net_step(x), dtype=float)
                    steps += 1
                want = controller(state, tape[head])
                write, right, halt, balanced = (bool(v > 0.5) for v in y[:4])
                wrong = None
                if halt != want.halt:
                    wrong = "halt" if halt else "missed the halt"
                elif halt and balanced != want.balanced:
                    wrong = f"verdict {'balanced' if balanced else 'not balanced'}"
                elif not halt and (write != want.write or right != (want.move > 0)):
                    wrong = "write" if write != want.write else "move"
                if wrong is not None:
                    failed += 1
                    if len(failures) < 10:
                        failures.append((w, k, f"{wrong} in state {state} reading {tape[head]}"))
                    break
                if halt:
                    break
                if write:  # the network's own action, which is the right one here
                    tape[head] = "X"
                head += 1 if right else -1
                state = want.next
            else:  # pragma: no cover - the check above ends every wrong run before the bound
                failed += 1
        return ClosedLoopResult(strings, failed, steps, failures)
