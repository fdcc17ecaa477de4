"""The public API is typed: every public function and method has annotated parameters and a return type.

mypy checks the annotations themselves (CI runs ``mypy``, configured in pyproject.toml); this test
makes sure they exist, so an untyped public function cannot slip in. The package ships ``py.typed``.
"""

import importlib
import inspect
from pathlib import Path

import pytest

import rtrl

#: module -> the public names it exports (its __all__)
MODULES = ["rtrl", "rtrl.api", "rtrl.learner", "rtrl.io", "rtrl.optim", "rtrl.preprocessing", "rtrl.activations",
           "rtrl.network", "rtrl.checking", "rtrl.rules", "rtrl.rules.base", "rtrl.datasets", "rtrl.stream"]
OPTIONAL = {"rtrl.sklearn": "sklearn", "rtrl.river": "river"}


def _untyped(fn, where):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    out = [f"{where}: parameter {name!r} has no annotation" for name in missing]
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        out.append(f"{where}: no return annotation")
    return out


def _public_members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property):
            yield f"{name} (property)", member.fget
            if member.fset is not None:
                yield f"{name} (setter)", member.fset
        elif isinstance(member, (staticmethod, classmethod)):
            yield name, member.__func__
        elif inspect.isfunction(member):
            yield name, member


def _problems(module_name):
    mod = importlib.import_module(module_name)
    problems = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isfunction(obj) and obj.__module__.startswith("rtrl"):
            problems += _untyped(obj, f"{module_name}.{name}")
        elif inspect.isclass(obj) and obj.__module__.startswith("rtrl") and not issubclass(obj, tuple):
            for member_name, fn in _public_members(obj):
                if getattr(fn, "__module__", "").startswith("rtrl"):
                    problems += _untyped(fn, f"{module_name}.{name}.{member_name}")
    return problems


@pytest.mark.parametrize("module_name", MODULES)
def test_public_functions_and_methods_are_annotated(module_name):
    problems = _problems(module_name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module_name", sorted(OPTIONAL))
def test_optional_modules_are_annotated(module_name):
    pytest.importorskip(OPTIONAL[module_name])
    problems = _problems(module_name)
    assert not problems, "\n".join(problems)


def test_the_package_ships_py_typed():
    assert (Path(rtrl.__file__).parent / "py.typed").is_file()


def test_the_check_can_fail():
    def untyped(a, b: int):
        return a

    assert _untyped(untyped, "f") == ["f: parameter 'a' has no annotation", "f: no return annotation"]
