"""One training run (run_one), its spec, and the claims' bookkeeping."""

import dataclasses
import doctest
import json
import pickle

import numpy as np
import pytest

import rtrl.experiments.training as training
from rtrl.experiments.claims import CLAIMS, MIN_RATE, Claim, get_claim
from rtrl.experiments.training import RunResult, RunSpec, make_spec, run_one, task_defaults
from rtrl.tasks import list_tasks


def spec(**kw):
    base = dict(task="flip-flop", task_params=(), units=1, learning_rate=1.0, teacher_forcing=False,
                steps=20_000, seed=0, weight_scale=0.1, window=2000, eval_steps=2000)
    base.update(kw)
    return RunSpec(**base)


# -- RunSpec ---------------------------------------------------------------------------------------
def test_spec_normalises_params_is_hashable_and_json():
    a = spec(task="pipelined-xor", task_params={"low": 0.2, "delay": 3}, units=4)
    b = spec(task="pipelined-xor", task_params=(("delay", 3), ("low", 0.2)), units=4)
    assert a == b and hash(a) == hash(b)
    assert a.task_params == (("delay", 3), ("low", 0.2))
    d = json.loads(json.dumps(a.to_dict()))
    assert d["task_params"] == {"delay": 3, "low": 0.2} and d["units"] == 4
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.units = 5


@pytest.mark.parametrize("kw, match", [
    ({"task": "xor"}, "unknown task"),
    ({"task_params": {"delay": 2}}, "no parameter"),
    ({"task": "turing-parens", "units": 3}, "units.*4 target units"),
    ({"steps": 0}, "steps"),
    ({"seed": -1}, "seed"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"weight_scale": float("nan")}, "weight_scale"),
    ({"activation": "relu"}, "activation"),
])
def test_spec_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        spec(**kw)


def test_task_defaults_cover_every_task():
    for name in list_tasks():
        d = task_defaults(name)
        for key in ("units", "learning_rate", "teacher_forcing", "steps", "weight_scale"):
            assert key in d
        s = make_spec(name, seed=1)
        assert s.units >= s.make_task().n_targets
    assert task_defaults("oscillator", wave="square")["units"] == 2
    with pytest.raises(ValueError, match="unknown task"):
        task_defaults("nope")


# -- run_one ---------------------------------------------------------------------------------------
def test_run_learns_flip_flop_and_is_deterministic():
    r1, r2 = run_one(spec()), run_one(spec())
    assert r1.success and r1.final_error == 0.0
    assert r1.steps_to_learn is not None and 0 < r1.steps_to_learn < r1.extra["steps_trained"]
    # early stop: the run ended soon after the window held, not at the budget
    assert r1.extra["steps_trained"] <= r1.steps_to_learn + 2000 + 500 + 500
    assert r1.curve == r2.curve and r1.steps_to_learn == r2.steps_to_learn
    r3 = run_one(spec(seed=1))
    assert r3.curve != r1.curve
    d = json.loads(json.dumps(r1.to_dict()))
    assert d["success"] is True and d["spec"]["task"] == "flip-flop" and len(d["curve"]) == len(r1.curve)


def test_no_learning_means_no_success():
    """The success test is not trivially passed: with learning off nothing is learned."""
    r = run_one(spec(task="pipelined-xor", units=3, learning_rate=0.0, steps=20_000))
    assert not r.success and r.steps_to_learn is None
    assert 0.2 < r.final_error <= 1.0
    assert r.extra["steps_trained"] == 20_000
    assert r.curve[-1][0] == 20_000 and all(0.0 <= e <= 1.0 for _, e in r.curve)
    steps = [s for s, _ in r.curve]
    assert steps == sorted(set(steps)) and len(steps) == 200  # 100-step bins: no merging needed
    long = run_one(spec(task="pipelined-xor", units=2, learning_rate=0.0, steps=95_000))
    assert len(long.curve) <= training.CURVE_POINTS and long.curve[-1][0] == 95_000


def test_test_failure_restarts_the_window(monkeypatch):
    """A window without training errors is not enough: the frozen test must pass too."""
    calls = []
    orig = training._wrong

    def wrong_only_in_tests(ys, ds, binary, tol):
        bad, mask = orig(ys, ds, binary, tol)
        calls.append(len(ys))
        if len(ys) == 777:  # the frozen test: call everything wrong
            return mask.copy(), mask
        return np.zeros_like(bad), mask

    monkeypatch.setattr(training, "_wrong", wrong_only_in_tests)
    r = run_one(spec(steps=10_000, window=1000, eval_steps=777, chunk=500))
    assert not r.success and r.final_error == 1.0
    assert r.extra["tests"] == 10  # one test per 1000 error-free steps, each failing


def _spy_runs(monkeypatch):
    """Record every chunk run_one hands to the engine: its weights in and out, y in, lr, teacher forcing."""
    calls = []
    real = training._api.run_rule

    def spy(rule, engine, W, state, xs, ds, mask, **kw):
        out = real(rule, engine, W, state, xs, ds, mask, **kw)
        calls.append({"W_in": np.array(W), "y_in": np.array(state.y), "lr": kw["lr"],
                      "tf": kw["teacher_forcing"], "W_out": np.array(out[0]), "ys": np.array(out[2])})
        return out

    monkeypatch.setattr(training._api, "run_rule", spy)
    return calls


@pytest.mark.parametrize("wave", ["alternating", "square"])
def test_oscillator_run_reports_free_run(monkeypatch, wave):
    """A run reported as learned, re-run freely (no forcing, no learning) from its final weights by the
    NumPy reference, reproduces its recorded free run, and that free run stays on the wave."""
    from rtrl import reference

    calls = _spy_runs(monkeypatch)
    s = make_spec("oscillator", seed=0, task_params={"wave": wave})
    r = run_one(s)
    assert r.success and s.teacher_forcing
    fr, tg = np.array(r.extra["free_run"]), np.array(r.extra["target"])
    assert fr.shape == tg.shape == (s.eval_steps,)
    assert set(np.unique(tg)) == {0.1, 0.9}
    test, last_training = calls[-1], calls[-2]
    assert (test["lr"], test["tf"]) == (0.0, False)  # the final test: learning and teacher forcing off
    assert (last_training["lr"], last_training["tf"]) == (s.learning_rate, True)
    np.testing.assert_array_equal(test["W_in"], last_training["W_out"])  # the run's final weights
    n = s.units
    xs = np.zeros((s.eval_steps, 0))
    _, _, _, ys, _ = reference.rtrl_run(test["W_in"], test["y_in"], np.zeros((n, n, n + 1)), xs,
                                        np.zeros((s.eval_steps, n)), np.zeros((s.eval_steps, n), bool),
                                        learning_rate=0.0, teacher_forcing=False)
    np.testing.assert_allclose(ys[:, 0], fr, rtol=1e-9, atol=1e-12)  # the recorded free run, reproduced
    assert np.all((ys[:, 0] > 0.5) == (tg > 0.5))  # on the right side of 0.5 everywhere
    assert np.all(np.abs(ys[:, 0] - tg) < 0.4)


def test_chunk_size_does_not_change_training_before_the_first_test(monkeypatch):
    """The stream and the weights do not depend on the chunking (the test comes at chunk ends only):
    the final weights, the learning curve and the frozen test's outputs are identical."""
    calls = _spy_runs(monkeypatch)
    a = run_one(spec(task="pipelined-xor", units=3, steps=3000, chunk=1000, window=10**6))
    calls_a = list(calls)
    calls.clear()
    b = run_one(spec(task="pipelined-xor", units=3, steps=3000, chunk=300, window=10**6))
    assert [len(c["ys"]) for c in calls_a] == [1000] * 3 + [2000]  # 3 training chunks, then the test
    assert [len(c["ys"]) for c in calls] == [300] * 10 + [2000]
    np.testing.assert_array_equal(calls_a[-1]["W_in"], calls[-1]["W_in"])  # final weights, bit for bit
    np.testing.assert_array_equal(calls_a[-1]["ys"], calls[-1]["ys"])  # the frozen test's outputs
    assert a.curve == b.curve and len(a.curve) == 30
    assert a.final_error == b.final_error and a.extra["steps_trained"] == b.extra["steps_trained"] == 3000
    assert not np.array_equal(calls_a[0]["W_in"], calls_a[-1]["W_in"])  # it did learn something


def test_docstring_example():
    result = doctest.testmod(training, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- claims ----------------------------------------------------------------------------------------
def fake(spec_, success, steps=1000):
    return RunResult(spec_, success, steps if success else None, 0.0 if success else 0.5, [], {}, 0.0)


def test_claims_are_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for needed in ("xor-tau2-3units", "xor-delay-units", "seqrec-2units", "dnms", "turing-units",
                   "osc-0101-tf", "osc-0101-notf", "osc-square-tf", "osc-sine-tf", "flip-flop"):
        assert needed in ids
    for c in CLAIMS:
        q, f = c.specs(quick=True), c.specs(quick=False)
        assert 0 < len(q) < len(f)
        assert len(c.specs(quick=True, seeds=1)) == len(c.grid)
        assert all(s.task == c.task for s in f)
        assert len(set(f)) == len(f)  # no duplicate runs
    assert get_claim("dnms").task == "delayed-nonmatch"
    with pytest.raises(ValueError, match="unknown claim"):
        get_claim("nope")


@pytest.mark.parametrize("kind, wins, holds", [("positive", 3, True), ("positive", 2, False),
                                               ("negative", 2, True), ("negative", 3, False),
                                               ("all", 5, True), ("all", 4, False)])
def test_summarise_kinds(kind, wins, holds):
    assert MIN_RATE == 0.5
    c = Claim("x", "flip-flop", "c", "p", settings=dict(units=1), kind=kind)
    specs = c.specs(quick=False, seeds=5 if kind == "all" else 5)
    results = [fake(s, i < wins) for i, s in enumerate(specs)]
    sm = c.summarise(results)
    assert sm["holds"] is holds and sm["successes"] == wins and sm["seeds"] == 5
    assert sm["median_steps"] == 1000 and isinstance(sm["measured"], str)
    json.dumps(sm)


@pytest.mark.parametrize("kind, seeds, wins, holds", [
    ("positive", 4, 2, True), ("positive", 2, 1, True), ("positive", 4, 1, False),  # exactly half holds
    ("negative", 4, 2, False), ("negative", 4, 1, True),  # a negative claim needs fewer than half
])
def test_claim_boundary_at_exactly_half_the_seeds(kind, seeds, wins, holds):
    c = Claim("x", "flip-flop", "c", "p", settings=dict(units=1), kind=kind)
    results = [fake(s, i < wins) for i, s in enumerate(c.specs(quick=False, seeds=seeds))]
    assert c.summarise(results)["holds"] is holds


def test_claim_runs_use_seeds_zero_to_n_minus_one():
    c = Claim("x", "flip-flop", "c", "p", settings=dict(steps=1000), grid=({"units": 1}, {"units": 2}),
              seeds_quick=2, seeds_full=5)
    for quick, seeds, n in ((True, None, 2), (False, None, 5), (False, 3, 3)):
        specs = c.specs(quick=quick, seeds=seeds)
        assert len(specs) == n * len(c.grid)
        for g, cfg in enumerate(c.grid):
            mine = specs[g * n:(g + 1) * n]
            assert [s.seed for s in mine] == list(range(n))
            assert all(s.units == cfg["units"] and s.steps == 1000 for s in mine)


@pytest.mark.parametrize("kind", ["positive", "negative", "all"])
def test_a_claim_with_no_results_does_not_hold(kind):
    c = Claim("x", "flip-flop", "c", "p", settings=dict(units=1), kind=kind)
    sm = c.summarise([])
    assert sm["holds"] is False and sm["successes"] == 0 and sm["seeds"] == 0
    for table in ("xor-delay-units", "turing-units"):
        assert get_claim(table).summarise([])["holds"] is False


def test_xor_table_verdict():
    c = get_claim("xor-delay-units")
    specs = c.specs(quick=False, seeds=2)
    need = {2: 3, 3: 4, 4: 5}
    results = [fake(s, s.units >= need[s.params["delay"]]) for s in specs]
    sm = c.summarise(results)
    assert sm["holds"] and "tau=4: 5 units" in sm["measured"]
    rows = {(r["delay"], r["units"]): r for r in sm["table"]}
    assert rows[(3, 3)]["success_rate"] == 0.0 and rows[(3, 4)]["success_rate"] == 1.0
    flat = [fake(s, s.units >= 3) for s in specs]  # every delay learns with 3 units: claim fails
    assert not c.summarise(flat)["holds"]


def test_turing_table_verdict():
    c = get_claim("turing-units")
    specs = c.specs(quick=False, seeds=2)
    assert not c.summarise([fake(s, s.units >= 8) for s in specs])["holds"]
    sm = c.summarise([fake(s, s.units >= 12) for s in specs])
    assert sm["holds"] and "smallest tested that learned: 12" in sm["measured"]
    small = c.summarise([fake(s, s.units >= 5) for s in specs])  # smaller nets learn under both encodings
    assert not small["holds"] and small["measured"].startswith("not reproduced: smaller networks learn")
    mixed = c.summarise([fake(s, s.units >= (12 if s.params["hold"] == 1 else 5)) for s in specs])
    assert not mixed["holds"] and "not reproduced" not in mixed["measured"]


def test_zipser_subgroup_verdict_uses_compute_to_learn():
    c = get_claim("turing-subgroup")
    specs = c.specs(quick=False, seeds=2)
    assert {s.rule for s in specs} == {"rtrl", "subgroup"} and {s.units for s in specs} == {12}
    labels = {dict(s.rule_options).get("groups") for s in specs if s.rule == "subgroup"}
    assert labels == {tuple(k % 2 for k in range(12)), tuple(k % 4 for k in range(12))}

    def timed(spec, steps, us):
        r = fake(spec, True)
        r.steps_to_learn, r.extra["steps_trained"], r.train_seconds = steps, steps + 10_000, us * (steps + 10_000) / 1e6
        return r

    fast = [timed(s, 100_000, 40.0) if s.rule == "rtrl" else timed(s, 150_000, 2.0) for s in specs]
    sm = c.summarise(fast)
    assert sm["holds"] and "less compute to learn than g=1" in sm["measured"]
    slow = [timed(s, 100_000, 40.0) if s.rule == "rtrl" else timed(s, 1_500_000, 2.0) for s in specs]
    assert not c.summarise(slow)["holds"]  # only 1.3x less compute: not "about 10x"


def test_every_claim_spec_runs():
    """Each claim's settings make a valid run (shortened to 2 000 steps)."""
    for c in CLAIMS:
        for s in c.specs(quick=True, seeds=1):
            r = run_one(dataclasses.replace(s, steps=2000))
            assert r.extra["steps_trained"] <= 2000 and 0.0 <= r.final_error <= 1.0
            json.dumps(r.to_dict())


@pytest.mark.parametrize("claim_id, learns", [
    ("xor-tau2-3units", True), ("seqrec-2units", True), ("dnms", True), ("turing-15units", True),
    ("osc-0101-tf", True), ("osc-square-tf", True), ("osc-sine-tf", True), ("flip-flop", True),
    ("osc-0101-notf", False), ("osc-sine-notf", False),
])
def test_tuned_defaults_reproduce_seed_zero(claim_id, learns):
    """Regression guard: with the project defaults, seed 0 of each claim does what the full set says."""
    s = get_claim(claim_id).specs(quick=True, seeds=1)[0]
    assert s.seed == 0
    r = run_one(s)
    assert r.spec == s and r.spec.seed == 0
    assert r.success is learns
    assert (r.final_error == 0.0) is learns


def test_learning_rate_sweep_verdict():
    c = get_claim("osc-square-notf-lr")
    specs = c.specs(quick=False, seeds=2)
    assert sorted({s.learning_rate for s in specs}) == [0.3, 1.0, 3.0] and not any(s.teacher_forcing for s in specs)
    inverse_square = [fake(s, True, steps=int(50_000 / s.learning_rate ** 2)) for s in specs]
    sm = c.summarise(inverse_square)
    assert sm["holds"] and "spread of lr^2 x steps: 1.00x" in sm["measured"]
    inverse = [fake(s, True, steps=int(50_000 / s.learning_rate)) for s in specs]  # 1/lr: a 10x spread
    assert not c.summarise(inverse)["holds"]
    small_fails = [fake(s, s.learning_rate > 0.5, steps=int(50_000 / s.learning_rate ** 2)) for s in specs]
    assert not c.summarise(small_fails)["holds"]
