"""The learning-rule interface: what every online learning rule provides.

A *rule* estimates the gradient dJ(t)/dW of the current step's error from the network's
history, carrying a small state forward. In the style of optax, a rule is an immutable
object holding its options, with pure functions:

``rule.init(W, y0) -> state``
    The rule's state at the start of a run: a NamedTuple of arrays whose first field is
    ``y`` (n,), the outputs y(t) that z(t) holds next. (P = 0 in the paper's terms.)
``rule.step(W, state, x, d, mask_t, *, activation, teacher_forcing) -> (y_next, g, state)``
    Consume one time step: y(t+1) = f(W z(t)), the rule's estimate ``g`` (n, K) of
    dJ(t)/dW (with J(t) = 1/2 sum_k e_k(t)^2, descend with ``W -= lr * g``), and the new
    state. Teacher forcing (paper eqs. 17-19) is applied to the returned state: the forced
    units hold their targets and their sensitivities are zero. This is the NumPy reference,
    written to be read; nothing is modified in place.
``rule.run_compiled(W, state, xs, ds, mask, lr, act, tf, clip, wmask) -> (W, state, ys, G)``
    The compiled loop over a chunk (Numba), with the meaning of :func:`reference_run` and
    tested against it step by step. Arrays arrive C-contiguous and of one float type;
    ``act`` the activation codes, one per unit (int64 (n,), :func:`rtrl.activations.activation_codes`),
    ``wmask`` None (fully connected) or (n, K);
    nothing passed in is modified.

Applying the gradient is not the rule's business: :func:`reference_run` (and each
compiled loop, which fuses the same update for speed) does ``W -= lr * g`` after every
step (real-time learning) or nothing (``lr = 0``: the weights stay fixed and the summed
``G`` is the epochwise gradient). "Real-time" and "epochwise" are only *when* the loop
applies the estimates.

Every loop applies the same three rules to an estimate before using it:

1. ``g *= wmask`` -- the connectivity mask (n, K) of weights that exist (1) or stay
   zero (0); all ones for the paper's fully connected network;
2. ``G += g`` (the summed estimate, unclipped);
3. with ``clip > 0`` a ``g`` whose Frobenius norm exceeds ``clip`` is scaled to it, then
   ``W -= lr * g``.

Rules are made by name through :func:`rtrl.rules.make` (``"uoro"``, ``"snap-2"``,
``"subgroup:4"``, ...); a rule's options are validated when it is made and again against
the network's size by :meth:`Rule.check`.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ..activations import Activation

#: What a chunk returns: (W, the rule's state, ys (T, n), G (n, K)).
RunResult = tuple  # (np.ndarray, Any, np.ndarray, np.ndarray)

__all__ = ["Rule", "reference_run", "batched_run", "RuleOptionError", "check_int_option", "check_float_option",
           "resolve_seed", "register", "REGISTRY"]

#: name -> Rule subclass, filled by :func:`register` when the rule modules are imported.
REGISTRY: dict = {}


def register(cls: Any) -> Any:
    """Class decorator: add a Rule subclass to the registry under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise RuntimeError(f"rule name {cls.name!r} is empty or registered twice")
    REGISTRY[cls.name] = cls
    return cls


class RuleOptionError(ValueError):
    """A rule's option is invalid (or the rule cannot do what was asked); the message names both."""


def check_int_option(rule: str, name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int in [minimum, maximum]; raise RuleOptionError naming the rule and option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RuleOptionError(f"rule {rule!r}: option {name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum or (maximum is not None and int(value) > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise RuleOptionError(f"rule {rule!r}: option {name}: expected an integer {bound}, got {value!r}")
    return int(value)


def check_float_option(rule: str, name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = False) -> float:
    """Return ``value`` as a finite float > minimum (>= with ``inclusive``); raise RuleOptionError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RuleOptionError(f"rule {rule!r}: option {name}: expected a real number, got {value!r}")
    v = float(value)
    ok = np.isfinite(v) and (v >= minimum if inclusive else v > minimum)
    if not ok:
        op = ">=" if inclusive else ">"
        raise RuleOptionError(f"rule {rule!r}: option {name}: expected a finite number {op} {minimum}, got {value!r}")
    return v


def resolve_seed(rule: str, rng: Any) -> int:
    """Resolve a rule's ``rng`` option (None, int seed or numpy Generator) into a 63-bit int seed.

    The seed is kept in the rule's options (and so in model files): the same seed gives the
    same run. None draws a fresh seed from the operating system's entropy.
    """
    if rng is None:
        return int(np.random.default_rng().integers(2**63))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and 0 <= int(rng) < 2**63:
        return int(rng)
    raise RuleOptionError(f"rule {rule!r}: option rng: expected None, an int seed in [0, 2**63) or a "
                          f"numpy.random.Generator, got {rng!r}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Base class of the learning rules (subclasses are frozen dataclasses of options).

    Class attributes describe the rule: ``name`` (registry name), ``exact`` (computes the
    exact RTRL gradient), ``unbiased`` (its estimate's expectation is the exact gradient),
    ``cost`` and ``memory`` (per-step work and stored numbers as O(.) strings, n units,
    K = m + 1 + n), ``dtypes`` (float types of its compiled loop).
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = False
    unbiased: ClassVar[bool] = False
    cost: ClassVar[str] = ""
    memory: ClassVar[str] = ""
    dtypes: ClassVar[tuple] = ("float64",)
    #: The option that ``"name:VALUE"`` sets (e.g. ``subgroup:4`` sets ``groups``), if any.
    short_option: ClassVar[str | None] = None
    #: State fields fixed by ``init`` (a sparsity pattern): a model file's must equal them.
    structural_fields: ClassVar[tuple] = ()

    # -- to provide ------------------------------------------------------------------------
    def init(self, W: np.ndarray, y0: np.ndarray, *, stream: int = 0, wmask: np.ndarray | None = None) -> Any:
        """The state at the start of a run (sensitivities zero).

        ``stream`` numbers batched streams (rules with random draws give each stream its own);
        ``wmask`` is the connectivity mask (n, K) the run will use (None: fully connected).
        """
        raise NotImplementedError

    def step(self, W: np.ndarray, state: Any, x: np.ndarray, d: np.ndarray, mask_t: np.ndarray, *,
             activation: Activation = "logistic", teacher_forcing: bool = False) -> tuple[np.ndarray, np.ndarray, Any]:
        """One step of the NumPy reference: returns ``(y_next (n,), g (n, K), new_state)``."""
        raise NotImplementedError

    def run_compiled(self, W: np.ndarray, state: Any, xs: np.ndarray, ds: np.ndarray, mask: np.ndarray, lr: float,
                     act: np.ndarray, tf: bool, clip: float, wmask: np.ndarray | None) -> RunResult:
        """The compiled loop over a chunk; returns ``(W, state, ys, G)`` (see module docstring)."""
        raise NotImplementedError

    def numbers(self, n: int, K: int) -> int:
        """How many numbers the rule's state holds for n units and K = m + 1 + n columns (memory)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def check(self, n: int, K: int) -> None:
        """Validate the options against a network of n units and K columns (RuleOptionError)."""

    def options(self) -> dict:
        """The rule's options as JSON-able values; ``make(rule.name, **rule.options())`` rebuilds it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def spec(self) -> str:
        """A short label: the name, with the short option (``subgroup:4``) where there is one."""
        if self.short_option is None:
            return self.name
        return f"{self.name}:{getattr(self, self.short_option)}"

    def run(self, W: np.ndarray, state: Any, xs: np.ndarray, ds: np.ndarray, mask: np.ndarray, *, lr: float = 0.0,
            activation: Activation = "logistic", teacher_forcing: bool = False, clip: float = 0.0,
            wmask: np.ndarray | None = None, engine: str = "numba") -> RunResult:
        """Run a chunk with the compiled loop (``engine="numba"``), the reference (``"numpy"``) or JAX (``"jax"``).

        Arrays are validated by the caller: W (n, K), xs (T, m), ds (T, n) with 0 where no
        target, mask (T, n) bool, state from :meth:`init`. A batched W (B, n, K) runs B
        streams (state fields with a leading B axis). There is no fallback between engines.
        """
        from ..activations import activation_codes

        act = activation_codes(activation, W.shape[-2])
        if engine == "jax":
            # The JAX engine (optional extra, rtrl.jax_engine) is a ``run_jax`` method a rule may provide,
            # with the arguments of this method; batched W (B, n, K), float32/float64 and devices are its own.
            run_jax = getattr(self, "run_jax", None)
            if run_jax is None:
                have = sorted(name for name, cls in REGISTRY.items() if hasattr(cls, "run_jax"))
                raise RuleOptionError(f"rule {self.name!r} has no loop for engine 'jax' (the rules with one: "
                                      f"{have}); use engine='numba' or engine='numpy' with rule {self.name!r}")
            return run_jax(W, state, xs, ds, mask, lr=float(lr), activation=activation,
                           teacher_forcing=bool(teacher_forcing), clip=float(clip), wmask=wmask)
        if W.ndim == 3:
            return batched_run(self, W, state, xs, ds, mask, lr=lr, activation=activation,
                               teacher_forcing=teacher_forcing, clip=clip, wmask=wmask, engine=engine)
        if engine == "numpy":
            if W.dtype != np.float64:
                raise ValueError(f"dtype: the NumPy reference engine runs in float64 only, got {W.dtype}; "
                                 "use engine='numba' for float32")
            return reference_run(self, W, state, xs, ds, mask, lr=lr, activation=activation,
                                 teacher_forcing=teacher_forcing, clip=clip, wmask=wmask)
        if W.dtype.name not in self.dtypes:
            raise ValueError(f"dtype: rule {self.name!r} has compiled loops for {self.dtypes}, got {W.dtype.name}")
        c = np.ascontiguousarray
        state = type(state)(*(c(a) if np.ndim(a) else np.array(a) for a in state))  # 0-d fields stay 0-d
        wm = None if wmask is None else c(wmask, dtype=W.dtype)
        return self.run_compiled(c(W), state, c(xs), c(ds), c(mask), float(lr), act, bool(teacher_forcing),
                                 float(clip), wm)


def reference_run(rule: Rule, W: np.ndarray, state: Any, xs: np.ndarray, ds: np.ndarray, mask: np.ndarray, *,
                  lr: float = 0.0, activation: Activation = "logistic", teacher_forcing: bool = False,
                  clip: float = 0.0, wmask: np.ndarray | None = None) -> RunResult:
    """The NumPy reference loop: ``rule.step`` at every step, then the update (module docstring).

    Returns ``(W, state, ys (T, n), G (n, K))``; ``G`` sums the (masked, unclipped) per-step
    estimates, each taken with the weights of its own step.
    """
    W = np.array(W, dtype=np.float64)
    wmask = np.ones_like(W) if wmask is None else wmask
    T = xs.shape[0]
    ys = np.empty((T, W.shape[0]))
    G = np.zeros_like(W)
    for t in range(T):
        y_next, g, state = rule.step(W, state, xs[t], ds[t], mask[t], activation=activation,
                                     teacher_forcing=teacher_forcing)
        g = g * wmask
        ys[t] = y_next
        G += g
        if lr != 0.0:
            if clip > 0.0:
                norm = np.sqrt(np.sum(g * g))
                if norm > clip:
                    g = g * (clip / norm)
            W = W - lr * g
    return W, state, ys, G


def batched_run(rule: Rule, W: np.ndarray, state: Any, xs: np.ndarray, ds: np.ndarray, mask: np.ndarray,
                **kwargs: Any) -> RunResult:
    """B independent streams (W (B, n, K), state fields (B, ...), xs (B, T, m)), spread over the threads.

    Each stream's result is exactly what it would be alone (each runs on one thread; the compiled
    loops release the GIL). Rules with a batched kernel of their own override :meth:`Rule.run`
    for this case.
    """
    from ..threads import blas_threads, get_threads, parallel_map

    def one(b):
        sb = type(state)(*(np.array(a[b]) if np.ndim(a) == 1 else a[b] for a in state))  # (B,) -> 0-d
        return rule.run(W[b], sb, xs[b], ds[b], mask[b], **kwargs)

    threads = 1 if kwargs.get("engine", "numba") != "numba" else min(get_threads(), W.shape[0])
    if threads > 1:
        with blas_threads(1):  # the threads are the streams'
            outs = parallel_map(one, range(W.shape[0]), threads)
    else:
        outs = [one(b) for b in range(W.shape[0])]
    Ws, states, ys, Gs = zip(*outs)
    stacked = type(state)(*(np.stack(parts) for parts in zip(*states)))
    return np.stack(Ws), stacked, np.stack(ys), np.stack(Gs)


def forward_values(W, state_y, x, activation):
    """z(t) = [x, 1, y(t)], y(t+1) = f(W z(t)) and f'(s(t)) for the NumPy references: (z, y_next, fp)."""
    from ..activations import apply, derivative_from_output

    z = np.concatenate([x, [1.0], state_y])  # z(t): (K,)
    y_next = apply(activation, W @ z)  # y(t+1): (n,)
    return z, y_next, derivative_from_output(activation, y_next)
