"""Task streams: the registry, parameter checks, and every stream against hand-computed targets.

References are written independently of the tasks' (vectorised) code: plain per-step loops over
the generated inputs, and machine traces written out by hand.
"""

import dataclasses
import doctest
import math
import sys

import numpy as np
import pytest

import rtrl.tasks
import rtrl.tasks.base
import rtrl.tasks.turing
from rtrl.tasks import list_tasks, make
from rtrl.tasks.turing import SYMBOLS, controller, is_balanced, run_machine

#: A bound no correct run comes near: a machine run on a string of at most 64 symbols takes fewer than
#: 5 000 steps; a test draws at most a few thousand strings.
MACHINE_STEP_LIMIT = 10_000
STRING_CHECK_LIMIT = 200_000


@pytest.fixture(autouse=True)
def step_limit(monkeypatch):
    """Every Turing-machine loop runs under a step limit, so a machine that never halts (or a string
    draw that never ends) fails here by an assertion instead of hanging the suite."""
    turing = rtrl.tasks.turing
    count = {"steps": 0, "checks": 0}
    real_controller, real_run, real_balanced = turing.controller, turing.run_machine, turing.is_balanced

    def controller(state, symbol):
        count["steps"] += 1
        assert count["steps"] <= MACHINE_STEP_LIMIT, (
            f"the machine ran {MACHINE_STEP_LIMIT} steps without halting (last: state {state!r} reading {symbol!r})")
        return real_controller(state, symbol)

    def run_machine(string):
        count["steps"] = 0
        return real_run(string)

    def is_balanced(string):
        count["checks"] += 1
        assert count["checks"] <= STRING_CHECK_LIMIT, f"{STRING_CHECK_LIMIT} strings drawn in one test: a draw loops"
        return real_balanced(string)

    monkeypatch.setattr(turing, "controller", controller)
    monkeypatch.setattr(turing, "run_machine", run_machine)
    monkeypatch.setattr(turing, "is_balanced", is_balanced)
    monkeypatch.setattr(sys.modules[__name__], "run_machine", run_machine)
    turing._trace_arrays.cache_clear()  # traces are computed under the limit, not taken from another test
    yield count
    turing._trace_arrays.cache_clear()


ALL = ["add", "pipelined-xor", "sequence-recognition", "delayed-nonmatch", "turing-parens", "oscillator", "flip-flop"]
LO, HI = 0.1, 0.9


def nan_equal(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


# -- registry and parameters ------------------------------------------------------------------------
def test_list_tasks_names_descriptions_and_defaults():
    tasks = list_tasks()
    assert sorted(tasks) == sorted(ALL)
    for name, info in tasks.items():
        assert info.name == name and info.description and "\n" not in info.description
        task = make(name)
        assert task.params.asdict() == info.params
        assert task.name == name


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="unknown task 'xor'.*pipelined-xor"):
        make("xor")


def test_unknown_parameter_lists_parameters():
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['tau'\].*delay"):
        make("pipelined-xor", tau=2)


@pytest.mark.parametrize("name, params, exc, match", [
    ("pipelined-xor", {"delay": 0}, ValueError, "delay"),
    ("pipelined-xor", {"delay": 2.5}, TypeError, "delay"),
    ("pipelined-xor", {"delay": True}, TypeError, "delay"),
    ("pipelined-xor", {"low": 0.6}, ValueError, "low"),
    ("pipelined-xor", {"high": 1.5}, ValueError, "high"),
    ("sequence-recognition", {"n_lines": 1}, ValueError, "n_lines"),
    ("delayed-nonmatch", {"p_cue": 1.0}, ValueError, "p_cue"),
    ("delayed-nonmatch", {"p_cue": float("nan")}, ValueError, "p_cue"),
    ("flip-flop", {"p_pulse": 0.6}, ValueError, "p_pulse"),
    ("flip-flop", {"bits": 0}, ValueError, "bits"),
    ("oscillator", {"wave": "triangle"}, ValueError, "wave"),
    ("oscillator", {"wave": "square", "period": 5}, ValueError, "even"),
    ("oscillator", {"wave": "alternating", "period": 4}, ValueError, "period 2"),
    ("oscillator", {"amplitude": 0.6}, ValueError, "amplitude"),
    ("turing-parens", {"max_length": 1}, ValueError, "max_length"),
    ("turing-parens", {"min_length": 5, "max_length": 4}, ValueError, "max_length"),
    ("turing-parens", {"p_balanced": -0.1}, ValueError, "p_balanced"),
])
def test_invalid_parameters_are_rejected(name, params, exc, match):
    with pytest.raises(exc, match=match):
        make(name, **params)
    with pytest.raises(ValueError, match=match):  # make() documents ValueError for every bad parameter
        make(name, **params)


def test_params_are_frozen_and_task_names_the_call():
    task = make("pipelined-xor", delay=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.params.delay = 4
    assert repr(task).startswith("make('pipelined-xor', delay=3")


# -- stream mechanics shared by all tasks -----------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_shapes_determinism_and_levels(name):
    task = make(name)
    xs, ds = task.generate(300, rng=7)
    assert xs.shape == (300, task.n_inputs) and ds.shape == (300, task.n_targets)
    xs2, ds2 = task.generate(300, rng=7)
    assert np.array_equal(xs, xs2) and nan_equal(ds, ds2)
    xs3, _ = task.generate(300, rng=8)
    if task.n_inputs:
        assert not np.array_equal(xs, xs3)
    if task.binary:
        vals = ds[~np.isnan(ds)]
        assert set(np.unique(vals)) <= {LO, HI}


@pytest.mark.parametrize("name", ALL)
def test_step_loop_equals_rollout_and_chunks(name):
    """``step`` n times == one ``rollout`` == rollouts in uneven chunks (same rng)."""
    task = make(name)
    rng = np.random.default_rng(3)
    state = task.reset(rng)
    xs_s, ds_s = [], []
    for _ in range(120):
        state, x, d = task.step(state, rng)
        xs_s.append(x)
        ds_s.append(d)
    xs_one, ds_one = task.generate(120, rng=3)
    assert np.array_equal(np.array(xs_s).reshape(120, -1), xs_one) and nan_equal(ds_s, ds_one)
    rng = np.random.default_rng(3)
    state = task.reset(rng)
    parts = []
    for n in (1, 0, 17, 50, 52):
        state, xs, ds = task.rollout(state, n, rng)
        parts.append((xs, ds))
    assert np.array_equal(np.concatenate([p[0] for p in parts]), xs_one)
    assert nan_equal(np.concatenate([p[1] for p in parts]), ds_one)


# -- each task against an independent reference -----------------------------------------------------
@pytest.mark.parametrize("delay", [1, 2, 3, 4])
def test_pipelined_xor_target_is_xor_tau_steps_back(delay):
    xs, ds = make("pipelined-xor", delay=delay).generate(200, rng=1)
    assert set(np.unique(xs)) == {0.0, 1.0}
    for t in range(200):
        src = t + 1 - delay  # y(t+1) judges x(t+1-tau)
        if src < 0:
            assert np.isnan(ds[t, 0])
        else:
            a, b = int(xs[src, 0]), int(xs[src, 1])
            assert ds[t, 0] == (HI if a ^ b else LO)


def test_pipelined_xor_by_hand():
    # inputs (1,0) (1,1) (0,0) (0,1) -> XORs 1 0 0 1; with tau = 2 the targets are nan, 1, 0, 0
    xs, ds = make("pipelined-xor", delay=2, low=0.0, high=1.0).generate(4, rng=0)
    xors = [int(a) ^ int(b) for a, b in xs]
    assert nan_equal(ds[:, 0], [np.nan] + xors[:3])


def test_sequence_recognition_against_flag_loop():
    task = make("sequence-recognition", n_lines=4)
    xs, ds = task.generate(2000, rng=5)
    assert np.all(xs.sum(axis=1) == 1)
    armed = False
    for t in range(2000):
        sym = int(np.argmax(xs[t]))
        assert ds[t, 0] == (HI if (sym == 1 and armed) else LO)
        if sym == 0:
            armed = True
        elif sym == 1:
            armed = False
    assert np.sum(ds == HI) > 50


def test_sequence_recognition_by_hand():
    # the rule on a written-out string: a c b b a a b c b -> 1 only at the first b after an a
    task = make("sequence-recognition", n_lines=3)
    # find, in a long stream, the pattern "a c b b" and check its targets by hand
    xs, ds = task.generate(5000, rng=11)
    sym = "".join("abc"[i] for i in xs.argmax(1))
    i = sym.find("acbb")
    assert i >= 0
    assert list(ds[i:i + 4, 0]) == [LO, LO, HI, LO]
    j = sym.find("aab")
    assert j >= 0
    assert list(ds[j:j + 3, 0]) == [ds[j, 0], LO, HI]


@pytest.mark.parametrize("delay, p_cue", [(2, 0.5), (1, 0.3), (3, 0.2)])
def test_delayed_nonmatch_against_loop(delay, p_cue):
    xs, ds = make("delayed-nonmatch", delay=delay, p_cue=p_cue).generate(3000, rng=2)
    stored, judged = None, []
    for t in range(3000):
        bit, cue = xs[t]
        if cue:
            stored = bit
            judged.append(np.nan)
        elif stored is None:
            judged.append(np.nan)
        else:
            judged.append(HI if bit != stored else LO)
    expected = [np.nan] * (delay - 1) + judged[:3000 - delay + 1]
    assert nan_equal(ds[:, 0], expected)
    assert abs(xs[:, 1].mean() - p_cue) < 0.05
    assert np.sum(ds == HI) > 100 and np.sum(ds == LO) > 100


def test_flip_flop_against_loop():
    task = make("flip-flop", bits=2, p_pulse=0.15)
    xs, ds = task.generate(3000, rng=4)
    assert xs.shape == (3000, 4) and ds.shape == (3000, 2)
    for i in range(2):
        s, r = xs[:, 2 * i], xs[:, 2 * i + 1]
        assert not np.any((s == 1) & (r == 1))
        held = np.nan
        for t in range(3000):
            if s[t]:
                held = HI
            elif r[t]:
                held = LO
            assert nan_equal(ds[t, i], held)
        assert abs(s.mean() - 0.15) < 0.03 and abs(r.mean() - 0.15) < 0.03


def test_oscillator_waves_by_hand():
    _, ds = make("oscillator", wave="alternating").generate(6, rng=0)
    assert list(ds[:, 0]) == [HI, LO, HI, LO, HI, LO]  # y(0)=0 then y(1..6) = 1 0 1 0 1 0
    _, ds = make("oscillator", wave="square").generate(8, rng=0)
    assert list(ds[:, 0]) == [LO, HI, HI, LO, LO, HI, HI, LO]  # w(0..8) = 0 0 1 1 0 0 1 1 0
    _, ds = make("oscillator", wave="square", period=6).generate(6, rng=0)
    assert list(ds[:, 0]) == [LO, LO, HI, HI, HI, LO]
    task = make("oscillator", wave="sine", period=25)
    xs, ds = task.generate(50, rng=0)
    assert xs.shape == (50, 0) and not task.binary
    assert np.allclose(ds[:, 0], [0.5 + 0.4 * math.sin(2 * math.pi * (t + 1) / 25) for t in range(50)])


# -- the Turing machine -----------------------------------------------------------------------------
# (string, symbols read, actions written out by hand: W = write X, R/L = move, H+ / H- = halt balanced / not)
HAND_TRACES = [
    ("()", "()(XAXXA", ["R", "WL", "WR", "R", "L", "L", "L", "H+"]),
    (")(", ")A", ["WL", "H-"]),
    ("(", "(A(", ["R", "L", "H-"]),
    ("())", "()(X)XXA", ["R", "WL", "WR", "R", "WL", "L", "L", "H-"]),
    ("(())", "(()(X)XX(XXXAXXXXA", ["R", "R", "WL", "WR", "R", "WL", "L", "L", "WR",
                                    "R", "R", "R", "L", "L", "L", "L", "L", "H+"]),
]


def _code(action):
    if action.halt:
        return "H+" if action.balanced else "H-"
    return ("W" if action.write else "") + ("R" if action.move > 0 else "L")


@pytest.mark.parametrize("string, symbols, actions", HAND_TRACES)
def test_machine_by_hand(string, symbols, actions):
    trace = run_machine(string)
    assert "".join(sym for _, sym, _ in trace) == symbols
    assert [_code(a) for _, _, a in trace] == actions
    assert trace[-1][2].balanced == is_balanced(string)


@pytest.mark.parametrize("string, symbols, actions", HAND_TRACES)
def test_task_encodes_hand_traces(string, symbols, actions):
    task = make("turing-parens")
    xs, vs = task.trace(string)
    assert "".join(SYMBOLS[i] for i in xs.argmax(1)) == symbols
    for code, (write, move, halt, verdict) in zip(actions, vs):
        assert write == (HI if "W" in code else LO)
        assert halt == (HI if code.startswith("H") else LO)
        if code.startswith("H"):
            assert np.isnan(move) and verdict == (HI if code == "H+" else LO)
        else:
            assert move == (HI if code.endswith("R") else LO) and np.isnan(verdict)


def test_a_machine_that_never_halts_fails_by_assertion(monkeypatch):
    """The guard itself: a controller that never halts is stopped (by the test's step limit or the machine's own
    bound), never hangs."""
    turing = rtrl.tasks.turing
    real = turing.controller

    def never_halts(state, symbol):
        act = real(state, symbol)
        return act._replace(halt=False, move=-1 if act.halt else act.move) if symbol != "A" else \
            turing.Action(False, +1, False, False, "R")

    monkeypatch.setattr(turing, "controller", never_halts)
    with pytest.raises((AssertionError, RuntimeError), match="without halting|no halt|left the tape"):
        turing.run_machine("()")


def test_run_machine_is_bounded_by_the_string_length():
    import itertools
    for n in range(1, 9):
        for chars in itertools.product("()", repeat=n):
            assert len(run_machine("".join(chars))) <= (n + 2) ** 2


def test_machine_decides_balance_for_all_short_strings():
    import itertools
    for n in range(1, 9):
        for chars in itertools.product("()", repeat=n):
            s = "".join(chars)
            assert run_machine(s)[-1][2].balanced == is_balanced(s)


def test_controller_rejects_impossible_pairs():
    with pytest.raises(ValueError, match="cannot read"):
        controller("L", ")")


def test_turing_stream_is_the_machine_with_the_action_due_next_step():
    """Cut the stream at the halts; each piece is one string's trace, each action due for its own symbol."""
    task = make("turing-parens", max_length=6)
    xs, ds = task.generate(3000, rng=9)
    assert not np.isnan(ds[0, 0])  # the first symbol's action is due at once: no lookahead gap
    halts = np.flatnonzero(ds[:, 2] == HI)  # the halting steps
    start, n_strings = 0, 0
    for h in halts:
        sym = "".join(SYMBOLS[i] for i in xs[start:h + 1].argmax(1))
        _, vs = task.trace(_string_from_stream(sym))  # the string whose run reads exactly these symbols
        assert nan_equal(ds[start:h + 1], vs)
        start, n_strings = h + 1, n_strings + 1
    assert n_strings > 50


def _string_from_stream(symbols):
    """Recover the tape string from one string's symbol sequence by brute force (short strings)."""
    import itertools
    for n in range(1, 9):
        for chars in itertools.product("()", repeat=n):
            s = "".join(chars)
            if "".join(sym for _, sym, _ in run_machine(s)) == symbols:
                return s
    raise AssertionError(f"no string reads as {symbols}")


@pytest.mark.parametrize("p_balanced, verdict", [(1.0, HI), (0.0, LO)])
def test_turing_string_mix(p_balanced, verdict):
    task = make("turing-parens", p_balanced=p_balanced, min_length=2, max_length=6)
    rng = np.random.default_rng(0)
    strings = [task.draw_string(rng) for _ in range(300)]
    assert all(is_balanced(s) == (p_balanced == 1.0) for s in strings)
    assert all(2 <= len(s) <= 6 for s in strings)
    _, ds = task.generate(2000, rng=1)
    v = ds[:, 3][~np.isnan(ds[:, 3])]
    assert len(v) > 20 and np.all(v == verdict)


def test_task_docstring_examples(monkeypatch):
    monkeypatch.undo()  # doctest finds only the module's own functions, not the step-limit wrappers
    for module in (rtrl.tasks, rtrl.tasks.base, rtrl.tasks.turing):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0
