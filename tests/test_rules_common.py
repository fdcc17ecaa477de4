"""The suite every learning rule must pass (parametrised over the registry, so a new rule is tested at once)."""

import dataclasses
import json
import zipfile

import numpy as np
import pytest

import rtrl
from rtrl import rules
from rtrl.rules.base import RuleOptionError, reference_run

from conftest import mixed_activation, random_problem

# One spec per registered rule (with its options exercised where it has some).
SPECS = {"rtrl": "rtrl", "hybrid": "hybrid:3", "bptt": "bptt:4", "subgroup": "subgroup:2", "snap": "snap-1",
         "uoro": "uoro", "kf-rtrl": "kf-rtrl", "rflo": "rflo", "eprop": "eprop"}


def test_every_registered_rule_is_in_the_suite():
    assert set(rules.list_rules()) == set(SPECS), "add the new rule to SPECS so the shared suite covers it"


def _rule(spec):
    rule = rules.make(spec)
    if "rng" in rule.options():
        rule = rules.make(rule.name, **{**rule.options(), "rng": 7})
    return rule


@pytest.fixture(params=sorted(SPECS))
def rule(request):
    return _rule(SPECS[request.param])


def _problem(seed=3, n=4, m=2, T=40, activation="logistic"):
    rng = np.random.default_rng(seed)
    W, xs, ds = random_problem(rng, n, m, T, activation=activation)
    return W * 0.7, xs, ds


def test_describes_itself(rule):
    assert rule.name in rules.list_rules()
    assert rule.cost and rule.memory and rule.dtypes
    assert rules.make(rule.name, **rule.options()) == rule  # options rebuild an equal rule
    json.dumps(rule.options())  # JSON-able, for model files and reports
    assert rule.numbers(4, 7) > 0
    if rule.exact:
        assert rule.unbiased


def test_step_shapes_and_purity(rule):
    W, xs, ds = _problem()
    n, K = W.shape
    state = rule.init(W, np.zeros(n))
    assert state._fields[0] == "y" and state.y.shape == (n,)
    copies = [a.copy() for a in state]
    mask = ~np.isnan(ds[0])
    y, g, new = rule.step(W, state, xs[0], np.where(mask, ds[0], 0.0), mask)
    assert y.shape == (n,) and g.shape == (n, K) and type(new) is type(state)
    for a, b in zip(state, copies):
        np.testing.assert_array_equal(a, b)  # the old state is untouched
    for a, b in zip(new, state):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype


@pytest.mark.parametrize("activation,tf", [("logistic", False), ("tanh", True), ("mixed", False), ("mixed", True)])
def test_compiled_equals_reference(rule, activation, tf):
    if activation == "mixed":
        activation = mixed_activation(4)  # linear, tanh, logistic, linear
    W, xs, ds = _problem(activation=activation)
    seq = rtrl._validation.check_sequences(W, xs, ds)
    n = W.shape[0]
    wmask = (np.random.default_rng(1).random(W.shape) < 0.8).astype(float)
    kw = dict(lr=0.3, activation=activation, teacher_forcing=tf, clip=0.8, wmask=wmask)
    s_ref = s_fast = rule.init(W, seq.y0, wmask=wmask)
    W_ref = W_fast = W * wmask
    for sl in (slice(0, 13), slice(13, 14), slice(14, 40)):  # chunks of several lengths
        W_ref, s_ref, ys_r, G_r = reference_run(rule, W_ref, s_ref, seq.xs[sl], seq.ds[sl], seq.mask[sl], **kw)
        W_fast, s_fast, ys_f, G_f = rule.run(W_fast, s_fast, seq.xs[sl], seq.ds[sl], seq.mask[sl], engine="numba",
                                             **kw)
        np.testing.assert_allclose(ys_f, ys_r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(G_f, G_r, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(W_fast, W_ref, rtol=1e-10, atol=1e-12)
    for a, b, c in zip(s_fast, s_ref, rule.init(W, seq.y0, wmask=wmask)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        assert np.shape(a) == np.shape(c) and np.asarray(a).dtype == np.asarray(c).dtype  # as init built it
    assert np.all(W_fast[wmask == 0] == 0)  # masked weights never move
    assert n == ys_f.shape[1]


def test_learner_chunked_equals_one_pass_and_steps(rule):
    W, xs, ds = _problem(T=60)
    n, K = W.shape
    kw = dict(learning_rate=0.4, rule=rule, W=W, teacher_forcing=True, clip_norm=2.0)
    one = rtrl.OnlineLearner(n, K - 1 - n, **kw)
    ys_one = one.partial_fit(xs, ds)
    chunked = rtrl.OnlineLearner(n, K - 1 - n, **kw)
    ys_chunks = np.concatenate([chunked.partial_fit(xs[a:b], ds[a:b]) for a, b in ((0, 7), (7, 8), (8, 60))])
    stepped = rtrl.OnlineLearner(n, K - 1 - n, **kw)
    ys_steps = np.array([stepped.step(x, d) for x, d in zip(xs, ds)])
    # NOTE: the hybrid ends a block at every chunk end (its state between chunks is the full P), so
    # other chunkings sum the same terms in another order: equal to rounding, not bit for bit.
    same = (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)) if rule.name == "hybrid" \
        else np.testing.assert_array_equal
    same(ys_chunks, ys_one)
    same(ys_steps, ys_one)
    same(chunked.W, one.W)
    same(stepped.W, one.W)
    for a, b in zip(chunked.rule_state, one.rule_state):
        same(a, b)
    assert one.t == 60
    assert not np.array_equal(one.W, W)  # it learned something


def test_same_seed_same_run_and_learning_changes_the_weights(rule):
    W, xs, ds = _problem(T=50)
    a, _ = rtrl.train_online(W, xs, ds, learning_rate=0.5, rule=_rule(SPECS[rule.name]))
    b, _ = rtrl.train_online(W, xs, ds, learning_rate=0.5, rule=_rule(SPECS[rule.name]))
    np.testing.assert_array_equal(a, b)
    if "rng" in rule.options() and rule.options().get("feedback") != "symmetric":  # another seed, another estimate
        other = rules.make(rule.name, **{**rule.options(), "rng": 8})
        c, _ = rtrl.train_online(W, xs, ds, learning_rate=0.5, rule=other)
        assert not np.array_equal(a, c)


def test_model_file_round_trip_continues_bit_for_bit(rule, tmp_path):
    W, xs, ds = _problem(T=60)
    n, K = W.shape
    net = rtrl.OnlineLearner(n, K - 1 - n, learning_rate=0.3, rule=rule, W=W, teacher_forcing=True,
                             y0=np.full(n, 0.2))
    net.partial_fit(xs[:30], ds[:30])
    path = tmp_path / "m.npz"
    net.save(path)
    back = rtrl.load(path)
    assert back.rule == net.rule and back.t == 30
    for a, b in zip(back.rule_state, net.rule_state):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.partial_fit(xs[30:], ds[30:]), net.partial_fit(xs[30:], ds[30:]))
    np.testing.assert_array_equal(back.W, net.W)
    net.reset_state(), back.reset_state()
    np.testing.assert_array_equal(back.y, net.y)


def test_batched_streams_equal_each_stream_alone(rule):
    rng = np.random.default_rng(5)
    B, n, m, T = 3, 4, 2, 30
    W = rng.uniform(-0.7, 0.7, (B, n, m + 1 + n))
    xs = rng.standard_normal((B, T, m))
    ds = rng.uniform(0.1, 0.9, (B, T, n))
    ds[rng.random((B, T, n)) < 0.4] = np.nan
    Wb, ysb = rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule)
    for b in range(B):
        alone = rule.init(W[b], np.zeros(n), stream=b)  # stream b's own random draws, if any
        seq = rtrl._validation.check_sequences(W[b], xs[b], ds[b])
        Wa, _, ysa, _ = rule.run(seq.W, alone, seq.xs, seq.ds, seq.mask, lr=0.3)
        np.testing.assert_allclose(ysb[b], ysa, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(Wb[b], Wa, rtol=1e-12, atol=1e-14)


def test_float32_where_offered(rule):
    W, xs, ds = _problem(T=30)
    if "float32" not in rule.dtypes:
        with pytest.raises(ValueError, match="float32"):
            rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule, dtype="float32")
        return
    W32, ys32 = rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule, dtype="float32")
    W64, ys64 = rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule)
    assert W32.dtype == np.float32
    np.testing.assert_allclose(ys32, ys64, rtol=1e-3, atol=1e-4)


def test_numpy_engine_equals_compiled_through_the_api(rule):
    W, xs, ds = _problem(T=25)
    if rule.name == "hybrid":
        with pytest.raises(ValueError, match="compiled engine only"):
            rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule, engine="numpy")
        return
    Wn, ysn = rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule, engine="numpy")
    Wc, ysc = rtrl.train_online(W, xs, ds, learning_rate=0.3, rule=rule)
    np.testing.assert_allclose(Wc, Wn, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ysc, ysn, rtol=1e-10, atol=1e-12)


def test_unknown_and_bad_options_are_refused_naming_rule_and_option(rule):
    with pytest.raises(RuleOptionError, match=rf"rule '{rule.name}': unknown option.*'colour'"):
        rules.make(rule.name, colour="blue")
    fields = [f.name for f in dataclasses.fields(rule)]
    for name in fields:
        with pytest.raises((RuleOptionError, TypeError), match=rf"{rule.name}.*{name}|{name}"):
            rules.make(rule.name, **{name: "not a valid value"})


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown rule 'nope'.*'rtrl'"):
        rules.make("nope")
    with pytest.raises(ValueError, match="takes no ':VALUE'"):
        rules.make("uoro:3")
    with pytest.raises(ValueError, match="given twice"):
        rules.make("subgroup:2", groups=3)
    with pytest.raises(TypeError, match="rule name"):
        rules.make(3)
    with pytest.raises(ValueError, match="rule="):
        rtrl.train_online(np.zeros((2, 4)), np.zeros((3, 1)), np.zeros((3, 2)), learning_rate=0.1, rule="uoro",
                          method="hybrid")
    with pytest.raises(ValueError, match="kernel: an option of rule 'rtrl'"):
        rtrl.gradient(np.zeros((2, 4)), np.zeros((3, 1)), np.zeros((3, 2)), rule="uoro", kernel="blas")
    assert rules.make("snap-2").order == 2 and rules.make("bptt:7").truncation == 7
    assert rules.make_from_cli("rflo", ["tau=2", "feedback=symmetric", "rng=3"]) == rules.make(
        "rflo", tau=2, feedback="symmetric", rng=3)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        rules.make_from_cli("rflo", ["tau"])


def test_weight_mask_keeps_absent_weights_at_zero_for_every_rule(rule):
    W, xs, ds = _problem(T=40)
    mask = np.ones(W.shape, bool)
    mask[:, -2:] = False  # the last two units feed nobody
    net = rtrl.OnlineLearner(4, 2, learning_rate=0.5, rule=rule, W=W, weight_mask=mask)
    net.partial_fit(xs, ds)
    assert np.all(net.W[:, -2:] == 0) and np.any(net.W[:, :-2] != W[:, :-2])
    G = rtrl.gradient(W, xs, ds, rule=rule, weight_mask=mask)
    assert np.all(G[:, -2:] == 0)


def test_a_version_1_model_file_loads_as_rtrl(tmp_path):
    """Files written by rtrl 0.1 (format 1: top-level y and P, no rule) still load and continue."""
    from rtrl.io import _digest

    W, xs, ds = _problem(T=40)
    net = rtrl.OnlineLearner(4, 2, learning_rate=0.3, W=W)
    net.partial_fit(xs[:20], ds[:20])
    arrays = {"W": net.W, "y": net.y, "P": net.P, "y0": np.zeros(4)}
    meta = {"format": "rtrl.model", "format_version": 1, "rtrl_version": "0.1.0",
            "config": {"n_units": 4, "n_inputs": 2, "activation": "logistic", "teacher_forcing": False,
                       "engine": "numba", "n_streams": None},
            "optimizer": {"kind": "sgd", "learning_rate": 0.3, "clip_norm": None}, "t": 20,
            "sha256": {k: _digest(v) for k, v in arrays.items()}, "extra": {}}
    path = tmp_path / "v1.npz"
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    with zipfile.ZipFile(path) as zf:
        assert "P.npy" in zf.namelist()
    back = rtrl.load(path)
    assert back.rule.name == "rtrl" and back.t == 20
    np.testing.assert_array_equal(back.partial_fit(xs[20:], ds[20:]), net.partial_fit(xs[20:], ds[20:]))


def test_learner_settings_are_validated_on_assignment():
    net = rtrl.OnlineLearner(3, 1, learning_rate=0.1, rng=0)
    for bad in (float("nan"), -0.5, None, "fast"):
        with pytest.raises((ValueError, TypeError), match="learning_rate"):
            net.learning_rate = bad
    for bad in (-0.5, 0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clip_norm"):
            net.clip_norm = bad
    assert net.learning_rate == 0.1 and net.clip_norm is None
    net.clip_norm = None
    net.learning_rate = 0.2
    assert net.config()["learning_rate"] == 0.2
