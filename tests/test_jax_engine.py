"""The JAX engine (engine="jax") against the NumPy reference, BPTT, the Numba engine and itself.

Everything here runs on the CPU in float64 (the engine's float64 is exact to rounding); the
several-device tests are in test_jax_sharding.py (a subprocess with four host devices).
Small n and few distinct chunk lengths keep the JIT compilations few.
"""

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import rtrl  # noqa: E402
import rtrl.io  # noqa: E402
from rtrl import jax_engine, rules  # noqa: E402
from rtrl.rules.base import RuleOptionError, reference_run  # noqa: E402
from rtrl.rules.rtrl import SensitivityState  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-12)


def _problem(seed=0, n=5, m=2, T=14, B=None, p_target=0.6, scale=1.0):
    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    K = m + 1 + n
    W = rng.uniform(-scale, scale, lead + (n, K))
    xs = rng.standard_normal(lead + (T, m))
    mask = rng.random(lead + (T, n)) < p_target
    ds = np.where(mask, rng.uniform(0.1, 0.9, lead + (T, n)), 0.0)
    wmask = (rng.random((n, K)) < 0.75).astype(float)
    return W, xs, ds, mask, wmask


def _state(W):
    n, K = W.shape[-2:]
    lead = W.shape[:-2]
    return SensitivityState(np.zeros(lead + (n,)), np.zeros(lead + (n, n, K)))


def _close(a, b, tol=TOL):
    """Every result of two runs (W, state fields, ys, G) equal to rounding."""
    (Wa, sa, ysa, Ga), (Wb, sb, ysb, Gb) = a, b
    for x, y in ((Wa, Wb), (sa.y, sb.y), (sa.P, sb.P), (ysa, ysb), (Ga, Gb)):
        np.testing.assert_allclose(x, y, **tol)


# Settings the reference comparisons cover: (activation, teacher forcing, clip, connectivity mask).
CASES = [("logistic", False, 0.0, False), ("logistic", True, 0.3, True), ("tanh", False, 0.3, True),
         ("tanh", True, 0.0, False), (("linear", "tanh", "logistic", "linear", "tanh"), True, 0.3, True)]


@pytest.mark.parametrize("activation,tf,clip,use_wmask", CASES)
def test_rtrl_equals_the_numpy_reference_chunk_by_chunk(activation, tf, clip, use_wmask):
    W, xs, ds, mask, wmask = _problem(seed=1, T=15, scale=0.8)
    wm = wmask if use_wmask else None
    rule = rules.make("rtrl")
    kw = dict(lr=0.4, activation=activation, teacher_forcing=tf, clip=clip, wmask=wm)
    ref_state = jax_state = rule.init(W, np.zeros(W.shape[0]))
    W_ref = W_jax = W
    # chunks of 7, 1 and 7 steps: every step's output, and the whole state after each chunk
    for a, b in ((0, 7), (7, 8), (8, 15)):
        ref = reference_run(rule, W_ref, ref_state, xs[a:b], ds[a:b], mask[a:b], **kw)
        out = rule.run(W_jax, jax_state, xs[a:b], ds[a:b], mask[a:b], engine="jax", **kw)
        _close(out, ref)
        W_ref, ref_state = ref[:2]
        W_jax, jax_state = out[:2]
        assert isinstance(W_jax, np.ndarray) and isinstance(jax_state.P, np.ndarray)
        assert jax_state.P.flags.writeable
    if tf:
        assert np.all(jax_state.P[mask[-1]] == 0.0)  # forced units carry no sensitivity


def test_epochwise_gradient_equals_bptt_and_the_reference():
    W, xs, ds, mask, wmask = _problem(seed=2, T=15)
    targets = np.where(mask, ds, np.nan)
    for tf in (False, True):
        G_bptt = rtrl.gradient(W, xs, targets, method="bptt", teacher_forcing=tf)
        for rule in ("rtrl", "hybrid"):
            G = rtrl.gradient(W, xs, targets, rule=rule, engine="jax", teacher_forcing=tf)
            np.testing.assert_allclose(G, G_bptt, rtol=1e-9, atol=1e-12)
    G = rtrl.gradient(W, xs, targets, engine="jax", weight_mask=wmask.astype(bool))
    np.testing.assert_allclose(G, rtrl.gradient(W, xs, targets, engine="numpy", weight_mask=wmask.astype(bool)),
                               **TOL)


@pytest.mark.parametrize("block", [1, 3, 40])
def test_hybrid_equals_rtrl_on_jax_and_the_numba_hybrid(block):
    # from a mid-run state (P nonzero), with teacher forcing, clipping and a connectivity mask
    W, xs, ds, mask, wmask = _problem(seed=3, T=15, scale=0.8)
    kw = dict(lr=0.4, activation="tanh", teacher_forcing=True, clip=0.3, wmask=wmask)
    rtrl_rule, hyb = rules.make("rtrl"), rules.make("hybrid", block=block)
    W1, s1, _, _ = rtrl_rule.run(W, rtrl_rule.init(W, np.zeros(5)), xs[:7], ds[:7], mask[:7], engine="numba", **kw)
    want = rtrl_rule.run(W1, s1, xs[7:], ds[7:], mask[7:], engine="jax", **kw)
    got = hyb.run(W1, s1, xs[7:], ds[7:], mask[7:], engine="jax", **kw)
    _close(got, want, dict(rtol=1e-9, atol=1e-11))
    _close(got, hyb.run(W1, s1, xs[7:], ds[7:], mask[7:], engine="numba", **kw), dict(rtol=1e-9, atol=1e-11))


def test_hybrid_without_targets_leaves_the_weights_alone():
    W, xs, ds, _, _ = _problem(seed=4, T=8)
    none = np.zeros(ds.shape, bool)
    out = rules.make("hybrid", block=3).run(W, _state(W), xs, ds * 0, none, lr=0.5, engine="jax")
    np.testing.assert_array_equal(out[0], W)
    np.testing.assert_array_equal(out[3], 0.0)


@pytest.mark.parametrize("spec", ["rtrl", "hybrid:3"])
def test_batched_streams_equal_each_stream_alone(spec):
    W, xs, ds, mask, wmask = _problem(seed=5, T=9, B=3)
    rule = rules.make(spec)
    kw = dict(lr=0.3, activation="logistic", teacher_forcing=True, clip=0.5, wmask=wmask)
    Wb, sb, ysb, Gb = rule.run(W, _state(W), xs, ds, mask, engine="jax", **kw)
    assert Wb.shape == W.shape and sb.P.shape == (3, 5, 5, 8) and ysb.shape == (3, 9, 5) and Gb.shape == W.shape
    for b in range(3):
        one = rule.run(W[b], _state(W[b]), xs[b], ds[b], mask[b], engine="numba", **kw)
        _close((Wb[b], SensitivityState(sb.y[b], sb.P[b]), ysb[b], Gb[b]), one)


def test_train_online_batched_and_float32_through_the_api():
    W, xs, ds, mask, _ = _problem(seed=6, T=9, B=2)
    targets = np.where(mask, ds, np.nan)
    Wj, ysj = rtrl.train_online(W, xs, targets, learning_rate=0.3, engine="jax")
    Wn, ysn = rtrl.train_online(W, xs, targets, learning_rate=0.3)
    np.testing.assert_allclose(Wj, Wn, **TOL)
    np.testing.assert_allclose(ysj, ysn, **TOL)
    for rule in ("rtrl", "hybrid"):
        W32, ys32 = rtrl.train_online(W[0], xs[0], targets[0], learning_rate=0.3, rule=rule, engine="jax",
                                      dtype="float32")
        assert W32.dtype == np.float32 and ys32.dtype == np.float32
        np.testing.assert_allclose(W32, Wn[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ys32, ysn[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", ["rtrl", "hybrid:4"])
def test_a_state_continues_in_the_other_engine(spec):
    W, xs, ds, mask, _ = _problem(seed=7, T=14)
    rule = rules.make(spec)
    kw = dict(lr=0.4, activation="logistic", teacher_forcing=True, clip=0.0, wmask=None)
    first = rule.run(W, _state(W), xs[:7], ds[:7], mask[:7], engine="numba", **kw)
    whole = rule.run(first[0], first[1], xs[7:], ds[7:], mask[7:], engine="numba", **kw)
    # numba -> jax and jax -> numba give what numba gives throughout
    _close(rule.run(first[0], first[1], xs[7:], ds[7:], mask[7:], engine="jax", **kw), whole)
    first_j = rule.run(W, _state(W), xs[:7], ds[:7], mask[:7], engine="jax", **kw)
    _close(first_j, first)
    _close(rule.run(first_j[0], first_j[1], xs[7:], ds[7:], mask[7:], engine="numba", **kw), whole)


def test_model_files_written_by_one_engine_resume_in_the_other(tmp_path):
    W, xs, ds, mask, _ = _problem(seed=8, n=4, T=14)
    targets = np.where(mask[..., :4], ds[..., :4], np.nan)
    xs = xs[:, :2]

    def learner(engine):
        return rtrl.OnlineLearner(4, 2, learning_rate=0.3, rng=0, teacher_forcing=True, engine=engine)

    stay = learner("numba")
    stay.partial_fit(xs, targets)
    for first, second in (("numba", "jax"), ("jax", "numba")):
        net = learner(first)
        net.partial_fit(xs[:7], targets[:7])
        path = tmp_path / f"{first}.npz"
        net.save(path)
        back = rtrl.io.load(path)
        assert back.engine == first
        back.engine = second
        back.partial_fit(xs[7:], targets[7:])
        np.testing.assert_allclose(back.W, stay.W, **TOL)
        np.testing.assert_allclose(back.P, stay.P, **TOL)


def test_states_kept_on_the_device_give_the_same_run():
    W, xs, ds, mask, _ = _problem(seed=9, T=14)
    rule = rules.make("rtrl")
    kw = dict(lr=0.4, activation="logistic", teacher_forcing=False, clip=0.0, wmask=None)
    want = rule.run(W, _state(W), xs[:7], ds[:7], mask[:7], engine="jax", **kw)
    state = jax_engine.to_device(_state(W))
    assert isinstance(state.P, jax.Array) and isinstance(state.y, np.ndarray)
    Wd, state, ys, G = rule.run(W, state, xs[:7], ds[:7], mask[:7], engine="jax", **kw)
    assert isinstance(state.P, jax.Array) and isinstance(Wd, np.ndarray)  # each field keeps its kind
    _close((Wd, jax_engine.to_host(state), ys, G), want)
    host = jax_engine.to_host(state)
    assert isinstance(host.P, np.ndarray) and host.P.flags.writeable
    # a device state continues in the Numba engine too (it takes the arrays as NumPy)
    _close(rule.run(Wd, state, xs[7:], ds[7:], mask[7:], engine="numba", **kw),
           rule.run(want[0], want[1], xs[7:], ds[7:], mask[7:], engine="numba", **kw))


@pytest.mark.parametrize("T", [1, 8, 9])
def test_the_lean_memory_form_with_donation_gives_the_same_run(T):
    # two products per step, the donated device state reused in place; odd chunks run as T-1 and 1
    W, xs, ds, mask, wmask = _problem(seed=12, T=T, B=2)
    rule = rules.make("rtrl")
    kw = dict(lr=0.4, activation="tanh", teacher_forcing=True, clip=0.3, wmask=wmask)
    want = rule.run(W, _state(W), xs, ds, mask, engine="numba", **kw)
    with jax_engine.options(lean=True, donate=True):
        state = jax_engine.to_device(_state(W))
        got = rule.run(W, state, xs, ds, mask, engine="jax", **kw)
    _close((got[0], jax_engine.to_host(got[1]), got[2], got[3]), want)
    assert state.P.is_deleted() == (T > 1)  # donated: the caller's array is gone (documented)


def test_precision_settings_and_the_options_block():
    W, xs, ds, mask, _ = _problem(seed=10, T=7)
    rule = rules.make("rtrl")
    base = rule.run(W, _state(W), xs, ds, mask, lr=0.3, engine="jax")
    assert jax_engine.current_options().precision == "highest"
    with jax_engine.options(precision="default") as opts:
        assert opts.precision == "default" and jax_engine.current_options() == opts
        fast = rule.run(W, _state(W), xs, ds, mask, lr=0.3, engine="jax")
    assert jax_engine.current_options() == jax_engine.JaxOptions()  # nothing leaks out of the block
    np.testing.assert_allclose(fast[0], base[0], rtol=1e-6)  # float64 on the CPU: the same either way
    assert not jax.config.jax_enable_x64  # the x64 switch is scoped to the engine's calls


def test_bad_settings_and_combinations_are_refused_clearly(monkeypatch):
    W, xs, ds, mask, _ = _problem(seed=11, T=4)
    with pytest.raises(ValueError, match="precision: expected one of"):
        jax_engine.options(precision="tf32").__enter__()
    with pytest.raises(ValueError, match="devices: expected"):
        jax_engine.JaxOptions(devices=0)
    with jax_engine.options(devices=len(jax.devices()) + 1):
        with pytest.raises(ValueError, match="devices: asked for"):
            rules.make("rtrl").run(W, _state(W), xs, ds, mask, engine="jax")
    # a rule without a JAX loop names itself and the engine
    with pytest.raises(RuleOptionError, match="rule 'uoro' has no loop for engine 'jax'"):
        rtrl.train_online(W, xs, np.where(mask, ds, np.nan), learning_rate=0.1, rule="uoro", engine="jax")
    with pytest.raises(ValueError, match="engine: expected one of"):
        rtrl.train_online(W, xs, np.where(mask, ds, np.nan), learning_rate=0.1, engine="cuda")
    # JAX missing: the message says how to install it
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"pip install 'rtrl\[jax\]'"):
        rtrl.train_online(W, xs, np.where(mask, ds, np.nan), learning_rate=0.1, engine="jax")
    assert not jax_engine.available()


def test_importing_rtrl_does_not_import_jax():
    code = ("import sys, rtrl, rtrl.rules, rtrl.api, rtrl.bench, rtrl.learner, rtrl.jax_engine, rtrl.jax_bench; "
            "assert 'jax' not in sys.modules, 'jax was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
