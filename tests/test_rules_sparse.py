"""The sparse/truncated rules: Zipser's subgrouping, SnAp-n and online BPTT(h; h').

Each compiled loop is checked against its NumPy reference step by step; each rule against
exact RTRL (or BPTT) where theory says they coincide; and the approximations are checked to
really differ from RTRL where they should.
"""

import doctest

import numpy as np
import pytest

import rtrl
from rtrl import rules
from rtrl.bptt import bptt_train_online
from rtrl.rules import RuleOptionError, reference_run
from rtrl.rules import _pattern, bptt as bptt_rule, snap as snap_rule, subgroup as subgroup_rule
from rtrl.rules._pattern import dense_sensitivities
from conftest import random_problem


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def _problem(seed, n, m, T, activation="logistic", p_target=0.5, weight_scale=0.7):
    rng = np.random.default_rng(seed)
    W, xs, ds_nan = random_problem(rng, n, m, T, activation=activation, p_target=p_target,
                                   weight_scale=weight_scale)
    mask = ~np.isnan(ds_nan)
    return W, xs, ds_nan, np.where(mask, ds_nan, 0.0), mask


def _random_wmask(seed, n, K, p=0.75):
    wm = (np.random.default_rng(seed).random((n, K)) < p).astype(np.float64)
    wm[np.arange(n), K - n + np.arange(n)] = 1.0  # keep the self-connections
    return wm


def _assert_states_close(a, b, rtol, atol=1e-13, what=""):
    assert type(a) is type(b)
    for name, x, y in zip(a._fields, a, b):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "iub":
            np.testing.assert_array_equal(x.reshape(-1), y.reshape(-1), err_msg=f"{what} {name}")
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"{what} {name}")


RULES = [
    pytest.param(lambda: rules.make("subgroup:2"), id="subgroup:2"),
    pytest.param(lambda: rules.make("subgroup", groups=[1, 0, 1, 2, 0, 1]), id="subgroup-labels"),
    pytest.param(lambda: rules.make("snap-1"), id="snap-1"),
    pytest.param(lambda: rules.make("snap-2"), id="snap-2"),
    pytest.param(lambda: rules.make("bptt:4", update_every=2), id="bptt-4-2"),
    pytest.param(lambda: rules.make("bptt:3"), id="bptt-3-1"),
]


# ----------------------------------------------------------------------------------------------
# compiled loop == NumPy reference


@pytest.mark.parametrize("make_rule", RULES)
@pytest.mark.parametrize("activation", ["logistic", "tanh"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_compiled_equals_reference_step_by_step(make_rule, activation, teacher_forcing):
    """Real-time learning with clipping and a random connectivity mask: every step, and chunked."""
    rule = make_rule()
    n, m, T = 6, 2, 40
    K = m + 1 + n
    W, xs, _, ds, mask = _problem(3 + teacher_forcing, n, m, T, activation)
    wmask = _random_wmask(7, n, K)
    W = W * wmask
    kw = dict(lr=0.5, activation=activation, teacher_forcing=teacher_forcing, clip=0.3, wmask=wmask)
    state0 = rule.init(W, np.zeros(n), wmask=wmask)

    # the reference, one step at a time; the compiled loop for that single step from the same state
    Wr, sr = W, state0
    ys_ref = np.empty((T, n))
    G_ref = np.zeros_like(W)
    clipped = 0
    for t in range(T):
        sl = slice(t, t + 1)
        Wc, sc, yc, Gc = rule.run(Wr, sr, xs[sl], ds[sl], mask[sl], **kw)
        Wr, sr, yr, Gr = reference_run(rule, Wr, sr, xs[sl], ds[sl], mask[sl], **kw)
        clipped += np.sqrt(np.sum(Gr * Gr)) > 0.3
        np.testing.assert_allclose(Wc, Wr, rtol=1e-10, atol=1e-13, err_msg=f"W at step {t}")
        np.testing.assert_allclose(yc, yr, rtol=1e-10, atol=1e-13, err_msg=f"ys at step {t}")
        np.testing.assert_allclose(Gc, Gr, rtol=1e-10, atol=1e-13, err_msg=f"G at step {t}")
        _assert_states_close(sc, sr, 1e-10, what=f"state at step {t}")
        ys_ref[t] = yr[0]
        G_ref += Gr
    assert clipped > 0  # clipping was exercised
    assert _rel(Wr, W) > 1e-2  # the weights really moved
    assert np.all(Wr[wmask == 0] == W[wmask == 0])  # masked weights never change

    # one compiled pass over the chunk == the reference
    W1, s1, ys1, G1 = rule.run(W, state0, xs, ds, mask, **kw)
    np.testing.assert_allclose(W1, Wr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ys1, ys_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(G1, G_ref, rtol=1e-10, atol=1e-11)
    _assert_states_close(s1, sr, 1e-9, atol=1e-12, what="one pass")

    # chunked compiled == one pass
    Wc, sc, ys_parts, G_sum = W, state0, [], np.zeros_like(W)
    for a, b in [(0, 7), (7, 8), (8, 21), (21, T)]:
        Wc, sc, ysc, Gc = rule.run(Wc, sc, xs[a:b], ds[a:b], mask[a:b], **kw)
        ys_parts.append(ysc)
        G_sum += Gc
    np.testing.assert_allclose(Wc, W1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.concatenate(ys_parts), ys1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(G_sum, G1, rtol=1e-12, atol=1e-13)
    _assert_states_close(sc, s1, 1e-12, atol=1e-14, what="chunked")


@pytest.mark.parametrize("spec", ["subgroup:3", "snap-2", "bptt:5"])
def test_float32_and_batched_streams(spec):
    rule = rules.make(spec)
    n, m, T = 6, 2, 30
    W, xs, _, ds, mask = _problem(11, n, m, T)
    W64, s64, ys64, G64 = rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask, lr=0.3)
    W32 = W.astype(np.float32)
    out = rule.run(W32, rule.init(W32, np.zeros(n, np.float32)), xs.astype(np.float32), ds.astype(np.float32), mask,
                   lr=0.3)
    assert out[0].dtype == np.float32 and out[2].dtype == np.float32
    assert _rel(out[0], W64) < 1e-4 and _rel(out[2], ys64) < 1e-4
    # two streams in one call give each stream's own result
    Wb = np.stack([W, 0.8 * W])
    s0 = rule.init(W, np.zeros(n))
    sb = type(s0)(*(np.stack([f, f]) for f in s0))
    Wo, so, yso, Go = rule.run(Wb, sb, np.stack([xs, xs]), np.stack([ds, ds]), np.stack([mask, mask]), lr=0.3)
    np.testing.assert_allclose(Wo[0], W64, rtol=1e-12)
    np.testing.assert_allclose(yso[0], ys64, rtol=1e-12)
    W2 = rule.run(0.8 * W, s0, xs, ds, mask, lr=0.3)[0]
    np.testing.assert_allclose(Wo[1], W2, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# exact where theory says so


def _rtrl_dense(rule, W, state):
    """Full (n, n, K) sensitivities of a pattern rule's state."""
    return dense_sensitivities(state, W.shape[1])


@pytest.mark.parametrize("activation", ["logistic", "tanh"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
@pytest.mark.parametrize("lr", [0.0, 0.4])
def test_one_subgroup_is_exact_rtrl(activation, teacher_forcing, lr):
    n, m, T = 5, 2, 60
    W, xs, _, ds, mask = _problem(21, n, m, T, activation)
    kw = dict(lr=lr, activation=activation, teacher_forcing=teacher_forcing)
    exact = rules.make("rtrl")
    We, se, yse, Ge = reference_run(exact, W, exact.init(W, np.zeros(n)), xs, ds, mask, **kw)
    for rule in (rules.make("subgroup:1"), rules.make("subgroup", groups=[4] * n)):
        Ws, ss, yss, Gs = reference_run(rule, W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)
        assert _rel(Ws, We) < 1e-12 and _rel(yss, yse) < 1e-12 and _rel(Gs, Ge) < 1e-12
        assert _rel(_rtrl_dense(rule, W, ss), se.P) < 1e-12
        Wc, sc, ysc, Gc = rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)  # compiled too
        assert _rel(Wc, We) < 1e-10 and _rel(Gc, Ge) < 1e-10
    if lr:
        assert _rel(We, W) > 1e-2


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_snap2_on_a_dense_network_is_exact_rtrl(teacher_forcing):
    n, m, T = 5, 2, 60
    W, xs, _, ds, mask = _problem(22, n, m, T)
    kw = dict(lr=0.4, teacher_forcing=teacher_forcing)
    exact, rule = rules.make("rtrl"), rules.make("snap-2")
    We, se, yse, Ge = reference_run(exact, W, exact.init(W, np.zeros(n)), xs, ds, mask, **kw)
    state = rule.init(W, np.zeros(n))
    assert state.P.shape == (n * n, m + 1 + n)  # every unit kept
    Ws, ss, yss, Gs = reference_run(rule, W, state, xs, ds, mask, **kw)
    assert _rel(Ws, We) < 1e-12 and _rel(yss, yse) < 1e-12 and _rel(Gs, Ge) < 1e-12
    assert _rel(_rtrl_dense(rule, W, ss), se.P) < 1e-12
    Wc, _, _, Gc = rule.run(W, state, xs, ds, mask, **kw)
    assert _rel(Wc, We) < 1e-10 and _rel(Gc, Ge) < 1e-10


def _chain_mask(n, m, ring):
    """Recurrent edges l -> l+1 (and n-1 -> 0 for a ring), self-loops, all inputs and biases."""
    K = m + 1 + n
    wm = np.zeros((n, K))
    wm[:, :m + 1] = 1.0
    for l in range(n):
        wm[l, m + 1 + l] = 1.0
        if l + 1 < n or ring:
            wm[(l + 1) % n, m + 1 + l] = 1.0
    return wm


@pytest.mark.parametrize("ring", [False, True], ids=["chain", "ring"])
@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_saturated_snap_on_a_sparse_network_is_exact_rtrl(ring, teacher_forcing):
    n, m, T = 6, 2, 60
    W, xs, _, ds, mask = _problem(23, n, m, T)
    wm = _chain_mask(n, m, ring)
    W = W * wm
    kw = dict(lr=0.4, teacher_forcing=teacher_forcing, wmask=wm)
    exact = rules.make("rtrl")
    We, se, yse, Ge = reference_run(exact, W, exact.init(W, np.zeros(n)), xs, ds, mask, **kw)
    rule = rules.make("snap", order=n)
    state = rule.init(W, np.zeros(n), wmask=wm)
    kept = n * (n + 1) // 2 if not ring else n * n  # chain: unit i reaches i..n-1
    assert state.P.shape[0] == kept
    Ws, ss, yss, Gs = reference_run(rule, W, state, xs, ds, mask, **kw)
    assert _rel(Ws, We) < 1e-12 and _rel(yss, yse) < 1e-12 and _rel(Gs, Ge) < 1e-12
    assert _rel(_rtrl_dense(rule, W, ss), se.P) < 1e-12
    Wc, _, _, Gc = rule.run(W, state, xs, ds, mask, **kw)
    assert _rel(Wc, We) < 1e-10 and _rel(Gc, Ge) < 1e-10
    # below saturation the pattern is smaller and the gradient differs
    low = rules.make("snap-2")
    s2 = low.init(W, np.zeros(n), wmask=wm)
    assert s2.P.shape[0] == (2 * n - (0 if ring else 1))
    G2 = reference_run(low, W, s2, xs, ds, mask, lr=0.0, teacher_forcing=teacher_forcing, wmask=wm)[3]
    G_exact = reference_run(exact, W, exact.init(W, np.zeros(n)), xs, ds, mask, lr=0.0,
                            teacher_forcing=teacher_forcing, wmask=wm)[3]
    assert _rel(G2, G_exact) > 1e-3


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_bptt_without_truncation_is_the_epochwise_gradient(teacher_forcing):
    n, m, T = 5, 2, 40
    W, xs, ds_nan, ds, mask = _problem(24, n, m, T)
    G_exact = rtrl.gradient(W, xs, ds_nan, teacher_forcing=teacher_forcing, engine="numpy")
    for h in (T, T + 5):
        rule = rules.make("bptt", truncation=h)
        kw = dict(lr=0.0, teacher_forcing=teacher_forcing)
        G_ref = reference_run(rule, W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)[3]
        G_c = rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)[3]
        assert _rel(G_ref, G_exact) < 1e-12
        assert _rel(G_c, G_exact) < 1e-10
    short = rules.make("bptt", truncation=3)
    G_short = reference_run(short, W, short.init(W, np.zeros(n)), xs, ds, mask, teacher_forcing=teacher_forcing)[3]
    assert _rel(G_short, G_exact) > 1e-3  # truncation really truncates


@pytest.mark.parametrize("h, hp", [(1, 1), (3, 1), (4, 2), (5, 5), (7, 3)])
@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_bptt_rule_is_bptt_train_online(h, hp, teacher_forcing):
    n, m, T = 4, 2, 50
    activation = "tanh" if h % 2 else "logistic"
    W, xs, ds_nan, ds, mask = _problem(25 + h, n, m, T, activation)
    W_online, ys_online = bptt_train_online(W, xs, ds_nan, mask, np.zeros(n), learning_rate=0.5, truncation=h,
                                            update_every=hp, activation=activation,
                                            teacher_forcing=teacher_forcing)
    rule = rules.make("bptt", truncation=h, update_every=hp)
    kw = dict(lr=0.5, activation=activation, teacher_forcing=teacher_forcing)
    Wr, sr, ysr, _ = reference_run(rule, W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)
    assert _rel(Wr, W_online) < 1e-12 and _rel(ysr, ys_online) < 1e-12
    Wc, sc, ysc, _ = rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask, **kw)
    assert _rel(Wc, W_online) < 1e-10 and _rel(ysc, ys_online) < 1e-10
    assert int(np.asarray(sc.count).reshape(-1)[0]) == T
    assert _rel(W_online, W) > 1e-2


def test_bptt_changes_weights_only_every_update_every_steps():
    n, m, T = 4, 1, 12
    W, xs, _, ds, mask = _problem(26, n, m, T, p_target=1.0)
    rule = rules.make("bptt:6", update_every=4)
    state = rule.init(W, np.zeros(n))
    for t in range(T):
        _, g, state = rule.step(W, state, xs[t], ds[t], mask[t])
        assert np.any(g != 0) == ((t + 1) % 4 == 0), t


# ----------------------------------------------------------------------------------------------
# the approximations are approximations


@pytest.mark.parametrize("spec", ["subgroup:2", "subgroup:5", "snap-1"])
def test_approximations_differ_from_rtrl(spec):
    n, m, T = 5, 2, 60
    W, xs, _, ds, mask = _problem(31, n, m, T, p_target=0.7)
    exact, rule = rules.make("rtrl"), rules.make(spec)
    G_exact = reference_run(exact, W, exact.init(W, np.zeros(n)), xs, ds, mask)[3]
    G_ref = reference_run(rule, W, rule.init(W, np.zeros(n)), xs, ds, mask)[3]
    G_c = rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask)[3]
    assert _rel(G_ref, G_exact) > 1e-3
    assert _rel(G_c, G_ref) < 1e-10
    # the approximation keeps a part of the exact sensitivities: the pattern's own rows agree
    # with RTRL after one step from P = 0 (nothing has been dropped yet)
    s1 = rule.step(W, rule.init(W, np.zeros(n)), xs[0], ds[0], mask[0])[2]
    e1 = exact.step(W, exact.init(W, np.zeros(n)), xs[0], ds[0], mask[0])[2]
    np.testing.assert_allclose(dense_sensitivities(s1, W.shape[1]), e1.P, rtol=1e-14, atol=1e-16)


def test_subgroup_sets_and_snap_sets():
    assert rules.make("subgroup:3").labels(7).tolist() == [0, 0, 0, 1, 1, 2, 2]
    idx, off = _pattern.groups_pattern([1, 0, 1, 2])
    assert [idx[off[i]:off[i + 1]].tolist() for i in range(4)] == [[0, 2], [1], [0, 2], [3]]
    n, m = 4, 1
    wm = _chain_mask(n, m, ring=False)
    for order, want in [(1, [[0], [1], [2], [3]]), (2, [[0, 1], [1, 2], [2, 3], [3]]),
                        (3, [[0, 1, 2], [1, 2, 3], [2, 3], [3]]), (9, [[0, 1, 2, 3], [1, 2, 3], [2, 3], [3]])]:
        idx, off = snap_rule.snap_pattern(wm, n, order)
        assert [idx[off[i]:off[i + 1]].tolist() for i in range(n)] == want, order
    idx, off = snap_rule.snap_pattern(None, n, 2)
    assert off[-1] == n * n


def test_snap_state_must_match_the_run_mask():
    n, m = 4, 1
    W, xs, _, ds, mask = _problem(32, n, m, 10)
    wm = _chain_mask(n, m, ring=False)
    rule = rules.make("snap-2")
    with pytest.raises(ValueError, match="connectivity mask"):
        rule.run(W, rule.init(W, np.zeros(n)), xs, ds, mask, wmask=wm)  # state made for a dense network
    rule.run(W * wm, rule.init(W, np.zeros(n), wmask=wm), xs, ds, mask, wmask=wm)


# ----------------------------------------------------------------------------------------------
# options


@pytest.mark.parametrize("call, option", [
    (lambda: rules.make("subgroup:0"), "groups"),
    (lambda: rules.make("subgroup", groups=2.5), "groups"),
    (lambda: rules.make("subgroup", groups=True), "groups"),
    (lambda: rules.make("subgroup", groups=[]), "groups"),
    (lambda: rules.make("subgroup", groups="abc"), "groups"),
    (lambda: rules.make("subgroup", groups=[0, 1.5, 1]), "groups"),
    (lambda: rules.make("subgroup", groups=[0, [1], 1]), "groups"),
    (lambda: rules.make("subgroup:5").check(4, 7), "groups"),
    (lambda: rules.make("subgroup:5").init(np.zeros((4, 7)), np.zeros(4)), "groups"),
    (lambda: rules.make("subgroup", groups=[0, 1, 1]).check(4, 7), "groups"),
    (lambda: rules.make("subgroup", groups=[0, 1, 1]).init(np.zeros((4, 7)), np.zeros(4)), "groups"),
    (lambda: rules.make("snap", order=0), "order"),
    (lambda: rules.make("snap-0"), "order"),
    (lambda: rules.make("snap", order=1.0), "order"),
    (lambda: rules.make("bptt:0"), "truncation"),
    (lambda: rules.make("bptt", truncation=3, update_every=4), "update_every"),
    (lambda: rules.make("bptt", update_every=0), "update_every"),
])
def test_bad_options_name_the_rule_and_the_option(call, option):
    with pytest.raises(RuleOptionError) as info:
        call()
    msg = str(info.value)
    assert option in msg and any(f"'{name}'" in msg for name in ("subgroup", "snap", "bptt"))


def test_options_round_trip_and_descriptions():
    for rule in (rules.make("subgroup:3"), rules.make("subgroup", groups=np.array([0, 0, 1])), rules.make("snap-2"),
                 rules.make("bptt:8", update_every=3)):
        assert rules.make(rule.name, **rule.options()) == rule
        assert not rule.exact and not rule.unbiased and rule.cost and rule.memory
        assert set(rule.dtypes) == {"float64", "float32"}
    assert rules.make("subgroup", groups=np.array([0, 0, 1])).groups == (0, 0, 1)
    assert rules.make("snap-2").spec == "snap:2" and rules.make("subgroup:4").spec == "subgroup:4"
    assert rules.make("bptt").truncation == 10 and rules.make("bptt").update_every == 1
    n, K = 8, 11
    W = np.zeros((n, K))
    for spec in ("subgroup:2", "snap-1", "snap-2", "bptt:5"):
        rule = rules.make(spec)
        state = rule.init(W, np.zeros(n))
        assert rule.numbers(n, K) == sum(np.asarray(a).size for a in state), spec
    assert rules.make("subgroup:2").numbers(n, K) < rules.make("rtrl").numbers(n, K)


@pytest.mark.parametrize("module", [subgroup_rule, snap_rule, bptt_rule], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
