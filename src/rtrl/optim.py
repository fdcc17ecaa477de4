"""Optimizers and learning-rate schedules for real-time learning, in the init/update style.

A learning rule gives, at every step t, an estimate g(t) of dJ(t)/dW (:mod:`rtrl.rules`). What
to do with it is the optimizer's business:

========== =================================================================== =====================
name       update (``lr_t`` from the schedule, ``g`` clipped first if asked)  state
========== =================================================================== =====================
``sgd``    ``W -= lr_t g``  (the paper's eq. 14; the default)                 none
``momentum`` ``v = mu v + g;  W -= lr_t v``  (``nesterov``: ``W -= lr_t (g + mu v)``) ``v``
``rmsprop`` ``s = rho s + (1 - rho) g^2;  W -= lr_t g / (sqrt(s) + eps)``      ``s``
``adam``   Kingma & Ba (2015): moments ``m``, ``v``, bias-corrected by ``count`` ``m``, ``v``, ``count``
========== =================================================================== =====================

Learning-rate schedules multiply the base rate by a factor of the learner's step count ``t``
(steps consumed so far, with or without a target):

- ``constant`` -- factor 1 (the default);
- ``inverse-time`` -- ``1 / (1 + t / steps)``: Robbins-Monro decay for a stationary stream;
- ``cosine`` -- cosine annealing with warm restarts (Loshchilov & Hutter 2017):
  ``floor + (1 - floor) (1 + cos(pi tau / P_i)) / 2``, the period ``P_i`` starting at
  ``period`` and multiplied by ``mult`` after each restart, so a never-ending stream keeps
  being annealed and re-warmed.

Every optimizer is an immutable settings object: ``opt.init(W)`` returns its state (a
NamedTuple of arrays, saved in model files as ``optim.<field>``), and ``opt.update(W, g,
state, lr)`` returns the new weights and state. ``update`` is the NumPy reference;
:func:`apply_update` does the same in place with one compiled call (what the learner uses),
and the two are tested to agree.

With ``sgd`` and a ``constant`` schedule the learner keeps the weight update fused inside the
rule's compiled loop (the fastest path). Any other choice runs the rule one step at a time
with its update turned off and applies :func:`apply_update` after each step: the same
real-time learning, at a few microseconds more per step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numba import njit

__all__ = ["Optimizer", "SGD", "Momentum", "RMSProp", "Adam", "Schedule", "Constant", "InverseTime",
           "CosineRestarts", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "make_schedule", "apply_update",
           "OptimizerOptionError"]


class OptimizerOptionError(ValueError):
    """An unknown optimizer or schedule, or a bad option for one (the message names it)."""


class EmptyState(NamedTuple):
    """The state of an optimizer without one (SGD)."""


class VelocityState(NamedTuple):
    v: np.ndarray


class SquareState(NamedTuple):
    s: np.ndarray


class AdamState(NamedTuple):
    m: np.ndarray
    v: np.ndarray
    # int64, 0-d ((B,) for batched streams): updates applied so far (the bias correction)
    count: np.ndarray  # type: ignore[assignment]


def _positive(value, name, *, below_one=False, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptimizerOptionError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0) and (v < 1 if below_one else True)
    if not ok:
        rng = ("in [0, 1)" if allow_zero else "in (0, 1)") if below_one else (">= 0" if allow_zero else "> 0")
        raise OptimizerOptionError(f"{name}: expected a finite number {rng}, got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Base class: settings only (hashable, comparable); the state lives apart, from :meth:`init`."""

    name: ClassVar[str] = ""
    code: ClassVar[int] = 0

    def options(self) -> dict[str, Any]:
        """The options as JSON-able values; ``make_optimizer(opt.name, **opt.options())`` rebuilds it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def spec(self) -> str:
        return self.name

    def init(self, W: np.ndarray) -> Any:
        return EmptyState()

    def hyper(self) -> tuple[float, float, float]:
        """Three numbers for the compiled update (their meaning depends on the optimizer)."""
        return (0.0, 0.0, 0.0)

    def update(self, W: np.ndarray, g: np.ndarray, state: Any, lr: float) -> tuple[np.ndarray, Any]:
        """The NumPy reference: return ``(W_new, state_new)``; nothing is modified in place."""
        return W - lr * g, state


@dataclasses.dataclass(frozen=True)
class SGD(Optimizer):
    """Plain stochastic gradient descent, ``W -= lr g`` (the paper's real-time update)."""

    name: ClassVar[str] = "sgd"
    code: ClassVar[int] = 0


@dataclasses.dataclass(frozen=True)
class Momentum(Optimizer):
    """Heavy-ball momentum: ``v = momentum v + g; W -= lr v`` (``nesterov``: ``W -= lr (g + momentum v)``)."""

    momentum: float = 0.9
    nesterov: bool = False
    name: ClassVar[str] = "momentum"
    code: ClassVar[int] = 1

    def __post_init__(self):
        object.__setattr__(self, "momentum", _positive(self.momentum, "momentum", below_one=True, allow_zero=True))
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise OptimizerOptionError(f"nesterov: expected true or false, got {self.nesterov!r}")
        object.__setattr__(self, "nesterov", bool(self.nesterov))

    def init(self, W: np.ndarray) -> Any:
        return VelocityState(np.zeros_like(W))

    def hyper(self) -> tuple[float, float, float]:
        return (self.momentum, 1.0 if self.nesterov else 0.0, 0.0)

    def update(self, W: np.ndarray, g: np.ndarray, state: Any, lr: float) -> tuple[np.ndarray, Any]:
        v = self.momentum * state.v + g
        step = g + self.momentum * v if self.nesterov else v
        return W - lr * step, VelocityState(v)


@dataclasses.dataclass(frozen=True)
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): ``s = decay s + (1 - decay) g^2; W -= lr g / (sqrt(s) + eps)``."""

    decay: float = 0.99
    eps: float = 1e-8
    name: ClassVar[str] = "rmsprop"
    code: ClassVar[int] = 2

    def __post_init__(self):
        object.__setattr__(self, "decay", _positive(self.decay, "decay", below_one=True))
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def init(self, W: np.ndarray) -> Any:
        return SquareState(np.zeros_like(W))

    def hyper(self) -> tuple[float, float, float]:
        return (self.decay, self.eps, 0.0)

    def update(self, W: np.ndarray, g: np.ndarray, state: Any, lr: float) -> tuple[np.ndarray, Any]:
        s = self.decay * state.s + (1.0 - self.decay) * (g * g)
        return W - lr * g / (np.sqrt(s) + self.eps), SquareState(s)


@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``eps`` is added outside the square root."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    code: ClassVar[int] = 3

    def __post_init__(self):
        object.__setattr__(self, "beta1", _positive(self.beta1, "beta1", below_one=True, allow_zero=True))
        object.__setattr__(self, "beta2", _positive(self.beta2, "beta2", below_one=True))
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def init(self, W: np.ndarray) -> Any:
        # count: one per stream (0-d for one stream, (B,) for batched W (B, n, K))
        return AdamState(np.zeros_like(W), np.zeros_like(W), np.zeros(np.shape(W)[:-2], dtype=np.int64))

    def hyper(self) -> tuple[float, float, float]:
        return (self.beta1, self.beta2, self.eps)

    def update(self, W: np.ndarray, g: np.ndarray, state: Any, lr: float) -> tuple[np.ndarray, Any]:
        count = int(state.count) + 1
        m = self.beta1 * state.m + (1.0 - self.beta1) * g
        v = self.beta2 * state.v + (1.0 - self.beta2) * (g * g)
        m_hat = m / (1.0 - self.beta1 ** count)
        v_hat = v / (1.0 - self.beta2 ** count)
        return W - lr * m_hat / (np.sqrt(v_hat) + self.eps), AdamState(m, v, np.array(count, dtype=np.int64))


OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (SGD, Momentum, RMSProp, Adam)}


# ------------------------------------------------------------------------------------ schedules
@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``factor(t)`` multiplies the base learning rate at step t."""

    name: ClassVar[str] = ""

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def constant(self) -> bool:
        return False

    def factor(self, t: int) -> float:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    """Factor 1 at every step."""

    name: ClassVar[str] = "constant"

    @property
    def constant(self) -> bool:
        return True

    def factor(self, t: int) -> float:
        return 1.0


@dataclasses.dataclass(frozen=True)
class InverseTime(Schedule):
    """``1 / (1 + t / steps)``: the rate halves after ``steps`` steps, thirds after 2 ``steps``, ..."""

    steps: float = 1000.0
    name: ClassVar[str] = "inverse-time"

    def __post_init__(self):
        object.__setattr__(self, "steps", _positive(self.steps, "steps"))

    def factor(self, t: int) -> float:
        return 1.0 / (1.0 + t / self.steps)


@dataclasses.dataclass(frozen=True)
class CosineRestarts(Schedule):
    """Cosine annealing from 1 to ``floor`` over ``period`` steps, then a restart; each period ``mult`` x longer."""

    period: float = 1000.0
    mult: float = 1.0
    floor: float = 0.0
    name: ClassVar[str] = "cosine"

    def __post_init__(self):
        object.__setattr__(self, "period", _positive(self.period, "period"))
        object.__setattr__(self, "mult", _positive(self.mult, "mult"))
        if self.mult < 1.0:
            raise OptimizerOptionError(f"mult: expected a number >= 1 (each period as long or longer), "
                                       f"got {self.mult!r}")
        object.__setattr__(self, "floor", _positive(self.floor, "floor", below_one=True, allow_zero=True))

    def factor(self, t: int) -> float:
        tau, period = float(t), self.period
        if self.mult == 1.0:
            tau = math.fmod(tau, period)
        else:
            # the restart index i solves period (mult^i - 1) / (mult - 1) <= t
            i = math.floor(math.log1p(tau * (self.mult - 1.0) / period) / math.log(self.mult))
            start = period * (self.mult ** i - 1.0) / (self.mult - 1.0)
            if start > tau:  # rounding at a boundary
                i -= 1
                start = period * (self.mult ** i - 1.0) / (self.mult - 1.0)
            tau, period = tau - start, period * self.mult ** i
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * tau / period))


SCHEDULES: dict[str, type[Schedule]] = {c.name: c for c in (Constant, InverseTime, CosineRestarts)}


def _make(kind: str, registry: dict, value: Any, options: dict, cls_base: type) -> Any:
    if isinstance(value, cls_base):
        if options:
            raise OptimizerOptionError(f"{kind}: options {sorted(options)} given with a ready-made {kind} object; "
                                       f"set them on the object instead")
        return value
    if value is None:
        value = "sgd" if kind == "optimizer" else "constant"
    if not isinstance(value, str):
        raise TypeError(f"{kind}: expected a name {tuple(registry)} or an rtrl.optim object, "
                        f"got {type(value).__name__}")
    name, _, short = value.partition(":")
    cls = registry.get(name)
    if cls is None:
        raise OptimizerOptionError(f"{kind}: unknown name {name!r}; expected one of {tuple(registry)}")
    fields = [f.name for f in dataclasses.fields(cls)]
    options = dict(options)
    if short:
        if not fields:
            raise OptimizerOptionError(f"{kind} {name!r} takes no options, got {value!r}")
        from .rules import parse_option_value

        options.setdefault(fields[0], parse_option_value(short))
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise OptimizerOptionError(f"{kind} {name!r}: unknown option(s) {unknown}; its options are {fields}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise OptimizerOptionError(f"{kind} {name!r}: {exc}") from None


def make_optimizer(value: "str | Optimizer | None" = None, **options: Any) -> Optimizer:
    """An optimizer from its name (``"adam"``, ``"momentum:0.95"``) and options, or an :class:`Optimizer` as is."""
    return _make("optimizer", OPTIMIZERS, value, options, Optimizer)


def make_schedule(value: "str | Schedule | None" = None, **options: Any) -> Schedule:
    """A schedule from its name (``"constant"``, ``"inverse-time:500"``, ``"cosine:1000"``) and options."""
    return _make("schedule", SCHEDULES, value, options, Schedule)


# --------------------------------------------------------------------------- the compiled update
@njit(cache=True, fastmath={"contract"})
def opt_apply(W, g, gsign, clip, lr, code, h0, h1, h2, a_in, b_in, a_out, b_out, count):
    """One optimizer update, compiled; shared by :func:`apply_update` and the learner's fast step.

    Flat arrays: W (N,) changed in place; g (N,) the estimate, used as ``gsign * g`` (the fast
    step keeps -dJ/dW); clip > 0 scales the estimate to that Frobenius norm if it is longer
    (the norm summed in index order); a_in, b_in -> a_out, b_out the optimizer's moment arrays
    (may be the same arrays; empty when unused); count the number of updates so far (Adam).
    Returns the new count.

    NOTE: compiled without fused multiply-adds (no ``fastmath``): the learner's fast step calls
    it from a kernel that allows them, and LLVM would fuse differently there than in
    :func:`apply_update`; without them every caller rounds the same, bit for bit.
    """
    N = W.shape[0]
    scale = gsign
    if clip > 0.0:
        norm = 0.0
        for q in range(N):
            norm += g[q] * g[q]
        norm = np.sqrt(norm)
        if norm > clip:
            scale = gsign * (clip / norm)
    if code == 0:
        for q in range(N):
            W[q] -= lr * (scale * g[q])
    elif code == 1:
        for q in range(N):
            gq = scale * g[q]
            v = h0 * a_in[q] + gq
            a_out[q] = v
            W[q] -= lr * (gq + h0 * v if h1 != 0.0 else v)
    elif code == 2:
        for q in range(N):
            gq = scale * g[q]
            s = h0 * a_in[q] + (1.0 - h0) * (gq * gq)
            a_out[q] = s
            W[q] -= lr * gq / (np.sqrt(s) + h1)
    else:
        count += 1
        c1 = 1.0 - h0 ** float(count)  # (a float power: libm's pow, as Python's float ** int)
        c2 = 1.0 - h1 ** float(count)
        for q in range(N):
            gq = scale * g[q]
            m = h0 * a_in[q] + (1.0 - h0) * gq
            v = h1 * b_in[q] + (1.0 - h1) * (gq * gq)
            a_out[q] = m
            b_out[q] = v
            W[q] -= lr * (m / c1) / (np.sqrt(v / c2) + h2)
    return count


@njit(cache=True, fastmath={"contract"})
def _update_kernel(W, g, clip, code, lr, h0, h1, h2, a, b, count):
    """In place on flat views: W, g (N,), a, b (N,) or empty; count int64 (1,) (Adam)."""
    count[0] = opt_apply(W, g, 1.0, clip, lr, code, h0, h1, h2, a, b, a, b, count[0])


_EMPTY = np.zeros(0)
_NO_COUNT = np.zeros(1, dtype=np.int64)


def apply_update(opt: Optimizer, W: np.ndarray, g: np.ndarray, state: tuple, lr: float, clip: float = 0.0) -> tuple:
    """``opt.update`` in place with one compiled call: W (C-contiguous float64) and the state's
    arrays change; returns the state (its 0-d ``count`` replaced by the new count). ``clip > 0``
    first scales ``g`` to that Frobenius norm if it is longer."""
    h0, h1, h2 = opt.hyper()
    fields = list(state)
    a = fields[0].reshape(-1) if len(fields) >= 1 else _EMPTY
    b = fields[1].reshape(-1) if len(fields) >= 2 else _EMPTY
    count = _NO_COUNT
    if isinstance(state, AdamState):
        count = np.array([int(state.count)], dtype=np.int64)
    _update_kernel(W.reshape(-1), g.reshape(-1), float(clip), opt.code, lr, h0, h1, h2, a, b, count)
    if isinstance(state, AdamState):
        return AdamState(state.m, state.v, np.array(count[0], dtype=np.int64))
    return state
