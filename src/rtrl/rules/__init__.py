"""Online learning rules, exact and approximate, behind one interface (see :mod:`rtrl.rules.base`).

``make(spec, **options)`` builds a rule by name: ``"rtrl"``, ``"hybrid"``, ``"bptt"``,
``"subgroup"``, ``"snap"``, ``"uoro"``, ``"kf-rtrl"``, ``"rflo"``, ``"eprop"``. A spec may
carry the rule's main option after a colon (``"subgroup:4"``, ``"bptt:10"``), and
``"snap-1"`` / ``"snap-2"`` are SnAp of that order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import REGISTRY, Rule, RuleOptionError, reference_run
from . import rtrl as _rtrl  # noqa: F401  (each module registers its rules)
from . import hybrid as _hybrid  # noqa: F401

for _name in ("bptt", "subgroup", "snap", "uoro", "kfrtrl", "rflo"):
    try:
        __import__(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - modules still being written
        if _exc.name != f"{__name__}.{_name}":
            raise

__all__ = ["Rule", "RuleOptionError", "make", "list_rules", "reference_run", "REGISTRY", "parse_option_value",
           "parse_rule_options", "make_from_cli"]


def list_rules() -> list[str]:
    """Names of the registered rules."""
    return sorted(REGISTRY)


def _parse_short(name: str, cls, text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise RuleOptionError(f"rule {name!r}: option {cls.short_option}: expected a number after "
                                  f"'{name}:', got {text!r}") from None


def make(spec: "str | Rule" = "rtrl", **options: Any) -> Rule:
    """Build a rule from a name (or ``name:VALUE``), or pass a :class:`Rule` through.

    Raises ValueError (``RuleOptionError``) for an unknown name or option, naming the
    known ones. ``make(rule.name, **rule.options())`` rebuilds an equal rule.

    Examples
    --------
    >>> from rtrl import rules
    >>> rules.make("subgroup:2").options()
    {'groups': 2}
    >>> rules.make("snap-1").spec
    'snap:1'
    """
    if isinstance(spec, Rule):
        if options:
            raise RuleOptionError(f"rule {spec.name!r}: options {sorted(options)} given with a Rule object; "
                                  "pass a name instead, or set the options on the object")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"rule: expected a rule name (one of {list_rules()}) or an rtrl.rules.Rule, "
                        f"got {type(spec).__name__}")
    name, _, short = spec.strip().partition(":")
    if name.startswith("snap-") and name[5:].isdigit() and not short:
        name, short = "snap", name[5:]
    if name not in REGISTRY:
        raise RuleOptionError(f"rule: unknown rule {spec!r}; expected one of {list_rules()} "
                              "(a main option may follow a colon, e.g. 'subgroup:4', 'snap-2')")
    cls = REGISTRY[name]
    if short:
        if cls.short_option is None:
            raise RuleOptionError(f"rule {name!r} takes no ':VALUE' option; pass options by name")
        if cls.short_option in options:
            raise RuleOptionError(f"rule {name!r}: option {cls.short_option} given twice ({spec!r} and by name)")
        options[cls.short_option] = _parse_short(name, cls, short)
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RuleOptionError(f"rule {name!r}: unknown option(s) {unknown}; its options are {sorted(known)}")
    return cls(**options)


def parse_option_value(text: str) -> Any:
    """A command-line option value: int, float, true/false, none, or the text itself."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_rule_options(pairs: Iterable[str] | None = (), flag: str = "--rule-option") -> dict:
    """``--rule-option KEY=VALUE`` pairs as a dict of typed values (RuleOptionError names the flag)."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RuleOptionError(f"{flag}: expected KEY=VALUE (e.g. tau=2), got {pair!r}")
        options[key.strip().replace("-", "_")] = parse_option_value(value)
    return options


def make_from_cli(spec: str, pairs: Iterable[str] | None = (), flag: str = "--rule-option") -> Rule:
    """Build a rule from ``--rule SPEC`` and ``--rule-option KEY=VALUE`` pairs (ValueError names the flag)."""
    return make(spec, **parse_rule_options(pairs, flag))
