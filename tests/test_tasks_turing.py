"""The Turing-machine task: the network must be the controller (no lookahead), tested in closed loop."""

import itertools

import numpy as np
import pytest

import rtrl
from rtrl.tasks.turing import ACTIONS, SYMBOLS, MAX_MACHINE_STEPS, controller, is_balanced, run_machine

LO, HI = 0.1, 0.9


def test_machine_decides_every_short_string():
    for n in range(1, 9):
        for chars in itertools.product("()", repeat=n):
            s = "".join(chars)
            trace = run_machine(s)
            assert len(trace) <= MAX_MACHINE_STEPS(n)
            last = trace[-1][2]
            assert last.halt and last.balanced == is_balanced(s)


def test_hand_worked_trace_of_the_machine():
    # ")(" : R reads ')' -> write X, left; L reads the left A -> halt, not balanced
    assert [(st, c, (a.write, a.move, a.halt, a.balanced)) for st, c, a in run_machine(")(")] == [
        ("R", ")", (True, -1, False, False)), ("L", "A", (False, 0, True, False))]
    # "()" : R '(' right; R ')' write, left; L '(' write, right; R X right; R A left -> C; C X left; C X left;
    # C A -> halt balanced
    got = [(st, c) for st, c, _ in run_machine("()")]
    assert got == [("R", "("), ("R", ")"), ("L", "("), ("R", "X"), ("R", "A"), ("C", "X"), ("C", "X"), ("C", "A")]
    assert run_machine("()")[-1][2].balanced
    with pytest.raises(ValueError, match="cannot read"):
        controller("L", ")")


def test_one_end_marker_and_actions_as_targets():
    task = rtrl.tasks.make("turing-parens")
    assert task.n_inputs == len(SYMBOLS) == 4 and task.n_targets == len(ACTIONS) == 4
    xs, ds = task.trace(")(")
    np.testing.assert_array_equal(xs, [[0, 0, 1, 0], [1, 0, 0, 0]])  # ')' then the left 'A'
    np.testing.assert_allclose(ds[0], [HI, LO, LO, np.nan])  # write, move left, no halt
    np.testing.assert_allclose(ds[1], [LO, np.nan, HI, LO])  # halt: not balanced; no move target


def test_no_lookahead_each_target_depends_only_on_the_past_and_the_present_symbol():
    """Old flaw: the action was due at y(t+2) while the tape moved at once, so the network read the action's
    result x(t+1) before emitting it. Now targets[t] (compared with y(t+1) = f(W z(t)), z(t) holding x(t)) is
    the controller's action for (its state, xs[t]), and the state follows from the earlier symbols alone."""
    task = rtrl.tasks.make("turing-parens")
    _, xs, ds = task.rollout(task.reset(0), 5000, np.random.default_rng(0))
    state, writes_after_open = "R", set()
    for t in range(len(xs)):
        sym = SYMBOLS[int(xs[t].argmax())]
        a = controller(state, sym)
        assert ds[t, 0] == (HI if a.write else LO) and ds[t, 2] == (HI if a.halt else LO)
        if sym == "(":
            writes_after_open.add(a.write)
        state = "R" if a.halt else a.next
    assert writes_after_open == {True, False}  # the symbol alone does not give the action: the state is needed


def test_hold_two_shows_each_symbol_twice_with_the_action_on_the_second_step():
    task = rtrl.tasks.make("turing-parens", hold=2)
    xs1, ds1 = rtrl.tasks.make("turing-parens").trace("(())")
    xs2, ds2 = task.trace("(())")
    np.testing.assert_array_equal(xs2[0::2], xs1)
    np.testing.assert_array_equal(xs2[1::2], xs1)
    assert np.all(np.isnan(ds2[0::2]))
    np.testing.assert_array_equal(ds2[1::2], ds1)


def test_rollout_in_chunks_equals_one_pass():
    task = rtrl.tasks.make("turing-parens", hold=2)
    _, xa, da = task.rollout(task.reset(0), 700, np.random.default_rng(3))
    state, parts = task.reset(0), []
    rng = np.random.default_rng(3)
    for n in (1, 99, 250, 350):
        state, x, d = task.rollout(state, n, rng)
        parts.append((x, d))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xa)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), da)


class OracleNet:
    """A 'network' that is the controller: it keeps the true state itself (and can be told to err)."""

    def __init__(self, wrong_verdict=False, hold=1):
        self.state, self.wrong_verdict, self.hold, self.calls = "R", wrong_verdict, hold, 0

    def __call__(self, x):
        self.calls += 1
        sym = SYMBOLS[int(np.argmax(x))]
        a = controller(self.state, sym)
        if self.calls % self.hold:  # first step of a held symbol: the output is not read
            return np.zeros(4)
        self.state = a.next if not a.halt else "R"
        verdict = (not a.balanced) if self.wrong_verdict else a.balanced
        return np.array([a.write, a.move > 0, a.halt, verdict], dtype=float) * 0.8 + 0.1


@pytest.mark.parametrize("hold", [1, 2])
def test_closed_loop_passes_the_controller_and_catches_a_wrong_one(hold):
    task = rtrl.tasks.make("turing-parens", hold=hold)
    res = task.closed_loop(OracleNet(hold=hold), np.random.default_rng(0), 3000)
    assert res.failed == 0 and res.strings > 20 and res.steps >= 3000
    bad = task.closed_loop(OracleNet(wrong_verdict=True, hold=hold), np.random.default_rng(0), 3000)
    assert bad.failed == bad.strings and "verdict" in bad.failures[0][2]


def test_closed_loop_runs_longer_strings_than_training():
    task = rtrl.tasks.make("turing-parens", max_length=6)
    seen = []

    class Spy(OracleNet):
        pass

    net = Spy()
    rng = np.random.default_rng(1)
    orig = task.draw_string
    task.draw_string = lambda r, max_length=None: seen.append(max_length) or orig(r, max_length=max_length)
    task.closed_loop(net, rng, 2000)
    assert set(seen) == {12}


def test_a_network_that_only_emits_a_constant_fails_every_string():
    task = rtrl.tasks.make("turing-parens")
    res = task.closed_loop(lambda x: np.full(4, 0.1), np.random.default_rng(0), 500)
    assert res.failed == res.strings > 0


def test_run_one_tests_the_turing_task_in_closed_loop():
    from rtrl.experiments.training import make_spec, run_one

    r = run_one(make_spec("turing-parens", seed=1, units=6, steps=200_000))
    assert r.success, r.extra
    cl = r.extra["closed_loop"]
    assert cl["failed"] == 0 and cl["strings"] > 10 and "closed loop" in r.extra["curve_measure"]
