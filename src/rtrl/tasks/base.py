"""Tasks as streams: the common interface, the parameter checks and the registry.

A task is a pure, stateless description (its frozen ``params``) plus two functions
in the gymnax style: ``reset(rng) -> state`` and ``step(state, rng) -> (state, x, target)``.
Everything random takes an explicit ``rng`` (a ``numpy.random.Generator``); the task
object itself never changes, and states are immutable values, so a state can be kept
and continued twice (e.g. a frozen test forked off a training run).

Conventions (``docs/conventions.md``): the step-t input ``x`` is ``xs[t]``; ``target`` is the
target for ``ys[t] = y(t+1)``, the output produced after consuming ``xs[t]``; NaN means "no
target at this step". Targets go to the network's units ``0 .. n_targets-1``; any further units
are hidden.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_random_state

__all__ = ["Task", "TaskInfo", "Params", "ParamTypeError", "register", "make", "list_tasks", "check_int",
           "check_real", "check_choice", "check_levels"]


# -- parameters ----------------------------------------------------------------------------------
class ParamTypeError(TypeError, ValueError):
    """A task parameter of the wrong type. Both a TypeError and a ValueError, so callers that
    catch ValueError for "invalid parameter" (as ``make`` documents) catch it too."""


@dataclasses.dataclass(frozen=True)
class Params:
    """Base class of every task's frozen parameter dataclass."""

    def asdict(self) -> dict:
        """The parameters as a plain dict (JSON-able)."""
        return dataclasses.asdict(self)

    def validate(self, task: str) -> None:  # pragma: no cover - overridden
        """Raise ValueError/TypeError if a value is invalid."""


def check_int(value, name: str, task: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check an integer task parameter; ``task`` names the task in the message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParamTypeError(f"{task}: parameter {name!r}: expected an integer, got "
                             f"{type(value).__name__} {value!r}")
    value = int(value)
    lo = "" if minimum is None else f">= {minimum}"
    hi = "" if maximum is None else f"<= {maximum}"
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{task}: parameter {name!r}: expected an integer {' and '.join(x for x in (lo, hi) if x)},"
                         f" got {value}")
    return value


def check_real(value, name: str, task: str, *, low: float, high: float, open_low: bool = False,
               open_high: bool = False) -> float:
    """Check a real task parameter lies in the interval [low, high] (ends open if asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParamTypeError(f"{task}: parameter {name!r}: expected a real number, got "
                             f"{type(value).__name__} {value!r}")
    value = float(value)
    bad = (not math.isfinite(value) or value < low or value > high or (open_low and value == low)
           or (open_high and value == high))
    if bad:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{task}: parameter {name!r}: expected a number in {interval}, got {value}")
    return value


def check_choice(value, name: str, task: str, choices: tuple) -> Any:
    """Check a parameter is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{task}: parameter {name!r}: expected one of {choices}, got {value!r}")
    return value


def check_levels(low, high, task: str) -> None:
    """The two target levels of a binary task: 0 <= low < 0.5 < high <= 1."""
    check_real(low, "low", task, low=0.0, high=0.5, open_high=True)
    check_real(high, "high", task, low=0.5, high=1.0, open_low=True)


# -- the task interface --------------------------------------------------------------------------
class Task:
    """One task kind: frozen ``params``, ``reset`` and ``step`` (and a batched ``rollout``).

    Attributes
    ----------
    name : str
        The registry name (``make(name)``).
    params : Params
        Frozen dataclass of the task's parameters (``params.asdict()``).
    n_inputs : int
        m, the number of external input lines (``x`` has shape (m,)).
    n_targets : int
        Units 0 .. n_targets-1 of the network get targets; the others are hidden.
    binary : bool
        True when every target is one of two levels and "right side of 0.5" is the
        correctness test; False for continuous targets (the sine wave).
    """

    name: str = ""
    description: str = ""
    params_class: type = Params
    binary: bool = True

    def __init__(self, params: Params):
        if not isinstance(params, self.params_class):
            raise TypeError(f"{self.name}: params: expected {self.params_class.__name__}, got {type(params).__name__}")
        params.validate(self.name)
        self.params: Any = params  # (each task's own Params subclass)

    # subclasses define these two
    @property
    def n_inputs(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def n_targets(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def reset(self, rng) -> Any:
        """Return the state at the start of the stream (the random draws use ``rng``)."""
        raise NotImplementedError  # pragma: no cover

    def step(self, state, rng) -> tuple[Any, np.ndarray, np.ndarray]:
        """Advance one step: ``(state, x (m,), target (n_targets,) with NaN = no target)``.

        Subclasses override :meth:`step` or :meth:`rollout` (or both); by default one step is a
        rollout of length one, so the two always draw the same numbers from ``rng``.
        """
        state, xs, ds = self.rollout(state, 1, rng)
        return state, xs[0], ds[0]

    def rollout(self, state, n_steps: int, rng) -> tuple[Any, np.ndarray, np.ndarray]:
        """``n_steps`` calls of :meth:`step`: ``(state, xs (T, m), targets (T, n_targets))``.

        Subclasses may override this with a vectorised version; it must give exactly the
        arrays of the step loop for the same ``rng`` (the tests check this).
        """
        n_steps = check_int(n_steps, "n_steps", self.name, minimum=0)
        rng = check_random_state(rng)
        xs = np.empty((n_steps, self.n_inputs))
        ds = np.empty((n_steps, self.n_targets))
        for t in range(n_steps):
            state, xs[t], ds[t] = self.step(state, rng)
        return state, xs, ds

    def generate(self, n_steps: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """A fresh stream of ``n_steps`` steps: ``(xs (T, m), targets (T, n_targets))``.

        Examples
        --------
        >>> import rtrl.tasks
        >>> xs, ds = rtrl.tasks.make("pipelined-xor", delay=2).generate(5, rng=0)
        >>> xs.shape, ds.shape
        ((5, 2), (5, 1))
        """
        rng = check_random_state(rng)
        state = self.reset(rng)
        _, xs, ds = self.rollout(state, n_steps, rng)
        return xs, ds

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.asdict().items())
        return f"make({self.name!r}, {args})"


class TaskInfo(NamedTuple):
    """What ``list_tasks`` says about one task."""

    name: str
    description: str
    params: dict


_REGISTRY: dict[str, Any] = {}


def register(cls: Any) -> Any:
    """Class decorator: add a Task subclass to the registry under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"register: task name {cls.name!r} is empty or already taken")
    _REGISTRY[cls.name] = cls
    return cls


def list_tasks() -> dict[str, TaskInfo]:
    """All registered tasks: name -> TaskInfo(name, description, params with their defaults)."""
    out = {}
    for name, cls in sorted(_REGISTRY.items()):
        defaults = {f.name: f.default for f in dataclasses.fields(cls.params_class)}
        out[name] = TaskInfo(name, cls.description, defaults)
    return out


def make(name: str, **params) -> Task:
    """Build a task by name, e.g. ``make("pipelined-xor", delay=3)``.

    Raises
    ------
    ValueError
        For an unknown task name (the message lists the known ones), an unknown
        parameter (the message lists the task's parameters) or an invalid value (a value
        of the wrong type raises :class:`ParamTypeError`, a TypeError and a ValueError).

    Examples
    --------
    >>> import rtrl.tasks
    >>> rtrl.tasks.make("pipelined-xor", delay=3).params.delay
    3
    """
    if not isinstance(name, str):
        raise TypeError(f"make: task name: expected a string, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"make: unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    fields = [f.name for f in dataclasses.fields(cls.params_class)]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"make: task {name!r} has no parameter(s) {unknown}; its parameters are "
                         f"{fields or 'none'}")
    return cls(cls.params_class(**params))

