"""One training run: real-time RTRL on a task's stream, with a success test a skeptic can accept.

:func:`run_one` is a pure function of its :class:`RunSpec` (every random draw comes from
``spec.seed``), module-level and picklable, so a runner can send it to worker processes
and get the same numbers back.

How a run goes (all NOTE: choices are project defaults, not the paper's; see docs/experiments.md):

1. ``W ~ U(-weight_scale, weight_scale)``, y(0) = 0, P = 0; the task's stream starts.
2. The stream is consumed in chunks of ``chunk`` steps with real-time RTRL (the weights change
   after every step; the next step uses them), with teacher forcing if asked. The task's
   targets go to units 0 .. n_targets-1; the other units are hidden.
3. A targeted output is *wrong* if it is on the wrong side of 0.5 (binary tasks) or more than
   ``tolerance`` away from its target (continuous targets: the sine). The learning curve is
   the fraction of wrong targeted outputs per stretch of steps (at most ``CURVE_POINTS`` points:
   bins of ``CURVE_BIN`` steps, merged in equal groups for long runs).
4. Once the last ``window`` training steps held no wrong output, the network is *tested*:
   from its current state, on fresh steps of the stream, with learning OFF and teacher
   forcing OFF, for ``eval_steps`` steps. Every targeted output of the test must be right.
   (For the oscillators this is the free run.) If the test passes the run has learned and
   stops; ``steps_to_learn`` is the first training step of the error-free window. If it
   fails, training goes on (the window starts again).
5. A run that does not pass within ``steps`` training steps has failed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from .. import api as _api
from .._validation import check_sequences
from ..network import init_weights
from ..tasks import make

__all__ = ["RunSpec", "RunResult", "run_one", "task_defaults", "make_spec", "TASK_DEFAULTS", "CURVE_POINTS",
           "CURVE_BIN"]

#: The learning curve has at most this many points ...
CURVE_POINTS = 300
#: ... each summing whole bins of this many steps.
CURVE_BIN = 100


def _normalise_params(task_params) -> tuple:
    if task_params is None:
        return ()
    items: Any
    if isinstance(task_params, dict):
        items = task_params.items()
    else:
        try:
            items = [tuple(kv) for kv in task_params]
        except TypeError:
            raise TypeError("RunSpec: task_params: expected a dict or a sequence of (key, value) pairs, got "
                            f"{type(task_params).__name__}") from None
        if any(len(kv) != 2 for kv in items):
            raise ValueError(f"RunSpec: task_params: expected (key, value) pairs, got {task_params!r}")
    return tuple(sorted((str(k), v) for k, v in items))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that decides one run (frozen, hashable, picklable).

    Parameters
    ----------
    task : str
        A task name (``rtrl.tasks.list_tasks()``).
    task_params : tuple of (key, value)
        The task's parameters as sorted items (a dict is accepted and converted).
    units : int
        n, the number of fully connected units (at least the task's ``n_targets``).
    learning_rate : float
        alpha of real-time RTRL (W <- W - alpha dJ(t)/dW after every step).
    teacher_forcing : bool
        Feed the targets instead of the outputs of the target units while training.
    steps : int
        Budget of training steps (the run stops earlier once it has learned).
    seed : int
        Seeds the weights, the training stream and the test streams.
    weight_scale : float
        Initial weights ~ U(-weight_scale, weight_scale).
    window : int
        Consecutive error-free training steps needed before the test.
    eval_steps : int
        Length of the frozen test (learning and teacher forcing off); the free run of an oscillator.
    chunk : int
        Steps per chunk (the success window is checked at chunk ends); 0 (default) is resolved at
        construction to about steps / 200, at least 500.
    tolerance : float
        For continuous targets: the largest |y - d| that counts as right.
    activation : str
        "logistic" (the paper's) or "tanh".
    clip_norm : float or None
        Optional per-step gradient norm cap (None = the paper's plain gradient).
    rule : str
        The learning rule (``rtrl.rules.list_rules()``; "rtrl", the paper's exact algorithm, by
        default), as a name or ``name:VALUE``.
    rule_options : tuple of (key, value)
        The rule's options as sorted items (a dict is accepted).
    """

    task: str
    task_params: tuple
    units: int
    learning_rate: float
    teacher_forcing: bool
    steps: int
    seed: int
    weight_scale: float
    window: int = 5000
    eval_steps: int = 5000
    chunk: int = 0
    tolerance: float = 0.1
    activation: str = "logistic"
    clip_norm: float | None = None
    rule: str = "rtrl"
    rule_options: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "task_params", _normalise_params(self.task_params))
        object.__setattr__(self, "rule_options", _normalise_params(self.rule_options))
        self.make_rule()  # rejects unknown rules and bad options
        task = make(self.task, **dict(self.task_params))  # rejects unknown tasks and bad parameters
        for name, minimum in (("units", task.n_targets), ("steps", 1), ("seed", 0), ("window", 1),
                              ("eval_steps", 1), ("chunk", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"RunSpec: {name}: expected an integer >= {minimum}, got {value!r}"
                                 + (f" (task {self.task!r} has {task.n_targets} target units)"
                                    if name == "units" else ""))
            object.__setattr__(self, name, int(value))
        for name in ("learning_rate", "weight_scale", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"RunSpec: {name}: expected a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.teacher_forcing, (bool, np.bool_)):
            raise TypeError(f"RunSpec: teacher_forcing: expected a bool, got {self.teacher_forcing!r}")
        object.__setattr__(self, "teacher_forcing", bool(self.teacher_forcing))
        if self.activation not in ("logistic", "tanh"):
            raise ValueError(f"RunSpec: activation: expected 'logistic' or 'tanh', got {self.activation!r}")
        self.make_rule().check(self.units, task.n_inputs + 1 + self.units)  # e.g. more subgroups than units
        if self.chunk == 0:  # resolved here, so every recorded spec shows the chunk its run used
            object.__setattr__(self, "chunk", max(500, self.steps // 200))

    @property
    def params(self) -> dict:
        """The task parameters as a dict."""
        return dict(self.task_params)

    def make_task(self):
        """The task this spec trains on."""
        return make(self.task, **self.params)

    def make_rule(self):
        """The learning rule of this run; a rule that draws random numbers is seeded by ``seed`` unless
        ``rule_options`` sets ``rng``."""
        from ..rules import make as make_rule

        options = dict(self.rule_options)
        rule = make_rule(self.rule, **options)
        if "rng" in rule.options() and "rng" not in options:
            rule = make_rule(self.rule, rng=self.seed, **options)
        return rule

    def to_dict(self) -> dict:
        """JSON-able dict (task_params as a dict)."""
        d = dataclasses.asdict(self)
        d["task_params"] = dict(self.task_params)
        d["rule_options"] = dict(self.rule_options)
        return d


@dataclasses.dataclass
class RunResult:
    """The outcome of one run.

    Attributes
    ----------
    spec : RunSpec
    success : bool
        The frozen test passed within the step budget.
    steps_to_learn : int or None
        The first training step of the error-free window that preceded the passed test.
    final_error : float
        Fraction of wrong targeted outputs in the last frozen test (1.0 if it diverged).
    curve : list of (int, float)
        (training steps so far, fraction of wrong targeted outputs since the previous point);
        at most ``CURVE_POINTS`` points.
    extra : dict
        JSON-able details: "steps_trained", "tests", "diverged", "curve_measure"; for tasks without
        inputs (the oscillators) "free_run" and "target" (unit 0 in the last test).
    seconds : float
        Wall-clock time of the run.
    train_seconds : float
        The part of ``seconds`` spent in the learning rule's loop (the compute per training step is
        ``train_seconds / extra["steps_trained"]``).
    """

    spec: RunSpec
    success: bool
    steps_to_learn: int | None
    final_error: float
    curve: list
    extra: dict
    seconds: float
    train_seconds: float = 0.0

    @property
    def us_per_step(self) -> float | None:
        """Microseconds per training step of the learning rule (None before any step)."""
        steps = self.extra.get("steps_trained") or 0
        return 1e6 * self.train_seconds / steps if steps else None

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "success": bool(self.success),
                "steps_to_learn": None if self.steps_to_learn is None else int(self.steps_to_learn),
                "final_error": float(self.final_error),
                "curve": [[int(s), float(e)] for s, e in self.curve],
                "extra": self.extra, "seconds": float(self.seconds), "train_seconds": float(self.train_seconds)}


# -- project defaults per task --------------------------------------------------------------------
#: NOTE: project defaults (the paper gives none), chosen by the sweeps in docs/experiments.md.
TASK_DEFAULTS = {
    "pipelined-xor": dict(units=3, learning_rate=1.0, teacher_forcing=False, steps=200_000, weight_scale=0.1,
                          window=5000, eval_steps=5000),
    "sequence-recognition": dict(units=2, learning_rate=1.0, teacher_forcing=False, steps=100_000,
                                 weight_scale=0.1, window=5000, eval_steps=5000),
    "delayed-nonmatch": dict(units=6, learning_rate=1.0, teacher_forcing=False, steps=400_000,
                             weight_scale=0.1, window=5000, eval_steps=5000),
    "flip-flop": dict(units=1, learning_rate=1.0, teacher_forcing=False, steps=100_000, weight_scale=0.1,
                      window=5000, eval_steps=5000),
    "oscillator": dict(units=1, learning_rate=3.0, teacher_forcing=True, steps=200_000, weight_scale=0.1,
                       window=1000, eval_steps=200),
    "add": dict(units=6, learning_rate=0.5, teacher_forcing=False, steps=200_000, weight_scale=0.1,
                window=5000, eval_steps=5000),
    "turing-parens": dict(units=15, learning_rate=1.0, teacher_forcing=False, steps=500_000,
                          weight_scale=0.1, window=10_000, eval_steps=20_000),
}

#: Per oscillator wave: the paper's unit counts (1 unit for 0101, 2 for 00110011 and the sine) and the
#: free-run length. NOTE: the sine's free run is 4 periods (100 steps): a learned near-sine runs with a
#: period a little off 25 and drifts out of phase over longer runs (see docs/experiments.md).
_OSC = {"alternating": dict(units=1, eval_steps=200), "square": dict(units=2, eval_steps=200),
        "sine": dict(units=2, eval_steps=100)}


def task_defaults(task: str, **task_params) -> dict:
    """Project-default run settings for ``rtrl run TASK``: units, learning_rate, teacher_forcing,
    steps, weight_scale, window, eval_steps (and task_params, as given)."""
    make(task, **task_params)  # clear error for unknown tasks / parameters
    d: dict[str, Any] = dict(TASK_DEFAULTS[task])
    if task == "oscillator":
        d.update(_OSC[task_params.get("wave", "alternating")])
    d["task_params"] = dict(task_params)
    return d


def make_spec(task: str, *, seed: int = 0, task_params=None, **overrides) -> RunSpec:
    """A RunSpec from the task's project defaults, with any field overridden by keyword."""
    d = task_defaults(task, **dict(task_params or {}))
    d.update(overrides)
    return RunSpec(task=task, seed=seed, **d)


# -- one run ---------------------------------------------------------------------------------------
def _wrong(ys, ds, binary: bool, tolerance: float):
    """Boolean (T, k): targeted outputs that are wrong; and the mask of targeted outputs."""
    mask = ~np.isnan(ds)
    d = np.where(mask, ds, 0.0)
    if binary:
        bad = (ys > 0.5) != (d > 0.5)
    else:
        bad = np.abs(ys - d) > tolerance
    return bad & mask, mask


def _padded(ds, n):
    """Targets (T, k) for units 0..k-1 -> (T, n) with NaN for the hidden units."""
    full = np.full((ds.shape[0], n), np.nan)
    full[:, :ds.shape[1]] = ds
    return full


def _merge_curve(bins: list) -> list:
    """(end step, wrong, targeted) bins -> at most CURVE_POINTS (end step, wrong fraction) points."""
    group = max(1, -(-len(bins) // CURVE_POINTS))  # ceil
    curve = []
    for i in range(0, len(bins), group):
        part = bins[i:i + group]
        wrong, targeted = sum(b[1] for b in part), sum(b[2] for b in part)
        curve.append((part[-1][0], wrong / targeted if targeted else 0.0))
    return curve


def run_one(spec: RunSpec) -> RunResult:
    """Train one network on one task stream by real-time learning (the spec's rule) and test it.

    Deterministic in ``spec``.

    Examples
    --------
    >>> from rtrl.experiments.training import make_spec, run_one
    >>> r = run_one(make_spec("flip-flop", seed=0))
    >>> r.success
    True
    """
    if not isinstance(spec, RunSpec):
        raise TypeError(f"run_one: spec: expected a RunSpec, got {type(spec).__name__}")
    t0 = time.perf_counter()
    task = spec.make_task()
    n, k = spec.units, task.n_targets
    w_seq, s_seq, e_seq = np.random.SeedSequence(spec.seed).spawn(3)
    stream_rng, test_rng = np.random.default_rng(s_seq), np.random.default_rng(e_seq)
    W = init_weights(n, task.n_inputs, scale=spec.weight_scale, rng=np.random.default_rng(w_seq))
    rule = spec.make_rule()
    rule.check(n, W.shape[1])
    net = (W, rule.init(W, np.zeros(n)))  # (weights, the rule's state)
    tstate = task.reset(stream_rng)
    chunk = spec.chunk
    binary = task.binary
    clip = 0.0 if spec.clip_norm is None else spec.clip_norm

    def advance(net, xs, ds, learning_rate, teacher_forcing):
        seq = check_sequences(net[0], xs, ds, None, net[1].y, require_targets=False)
        W, rs, ys, _ = _api.run_rule(rule, "numba", seq.W, net[1], seq.xs, seq.ds, seq.mask, lr=learning_rate,
                                     activation=spec.activation, teacher_forcing=teacher_forcing, clip=clip,
                                     wmask=None)
        return (W, rs), ys

    no_target = np.full((1, n), np.nan)

    def test(net, tstate):
        """Frozen test from the current state: learning off, teacher forcing off."""
        if hasattr(task, "closed_loop"):  # the network runs the machine itself (the Turing task)
            holder = [net]

            def net_step(x):
                holder[0], ys = advance(holder[0], x[None, :], no_target, 0.0, False)
                return ys[0, :k]

            res = task.closed_loop(net_step, test_rng, spec.eval_steps)
            return res.error, None, res
        _, xs, ds = task.rollout(tstate, spec.eval_steps, test_rng)
        _, ys = advance(net, xs, _padded(ds, n), 0.0, False)
        bad, mask = _wrong(ys[:, :k], ds, binary, spec.tolerance)
        return bad.sum() / max(1, mask.sum()), ys[:, :k], ds

    bins, t, last_wrong = [], 0, -1  # bins: (end step, wrong outputs, targeted outputs)
    success, steps_to_learn, diverged, tests, last_test = False, None, False, 0, None
    train_seconds = 0.0  # time inside the learning rule's loop (for the compute per step)
    while t < spec.steps:
        L = min(chunk, spec.steps - t)
        tstate, xs, ds = task.rollout(tstate, L, stream_rng)
        t_train = time.perf_counter()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                net_new, ys = advance(net, xs, _padded(ds, n), spec.learning_rate, spec.teacher_forcing)
        except FloatingPointError:  # a rule's norm overflowed (rtrl.api.run_rule): the run diverged
            diverged = True
            break
        train_seconds += time.perf_counter() - t_train
        if not (np.all(np.isfinite(net_new[0])) and np.all(np.isfinite(ys))):
            diverged = True
            break
        net = net_new
        bad, mask = _wrong(ys[:, :k], ds, binary, spec.tolerance)
        w_rows, m_rows = bad.sum(axis=1), mask.sum(axis=1)  # (L,) per step
        for a in range(0, L, CURVE_BIN):
            bins.append((t + min(a + CURVE_BIN, L), int(w_rows[a:a + CURVE_BIN].sum()),
                         int(m_rows[a:a + CURVE_BIN].sum())))
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            last_wrong = t + int(rows[-1])
        t += L
        if t - (last_wrong + 1) >= spec.window:
            tests += 1
            last_test = test(net, tstate)
            if last_test[0] == 0:
                success, steps_to_learn = True, last_wrong + 1
                break
            last_wrong = t - 1  # the test failed: a new error-free window must start
    if diverged:
        final_error = 1.0
    else:
        if last_test is None or not success:
            last_test = test(net, tstate)
        final_error = float(last_test[0])
    extra: dict[str, Any] = {"steps_trained": int(t), "tests": int(tests), "diverged": bool(diverged),
             "curve_measure": "fraction of targeted outputs on the wrong side of 0.5" if binary
             else f"fraction of targeted outputs more than {spec.tolerance} from the target"}
    if hasattr(task, "closed_loop") and last_test is not None:
        res = last_test[2]
        extra["closed_loop"] = {"strings": res.strings, "failed": res.failed, "steps": res.steps,
                                "failures": [list(f) for f in res.failures[:3]]}
        extra["curve_measure"] += "; the test is the closed loop (the network's own actions drive the tape)"
    if task.n_inputs == 0 and last_test is not None:  # oscillators: the free run, for a figure
        extra["free_run"] = [float(v) for v in last_test[1][:, 0]]
        extra["target"] = [float(v) for v in last_test[2][:, 0]]
    return RunResult(spec, success, steps_to_learn, final_error, _merge_curve(bins), extra,
                     time.perf_counter() - t0, train_seconds)
