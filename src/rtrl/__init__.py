"""rtrl: Real-Time Recurrent Learning for continually running, fully recurrent networks.

An implementation of Williams & Zipser (1989), "A Learning Algorithm for Continually
Running Fully Recurrent Neural Networks", Neural Computation 1(2):270-280.
Conventions (weight layout, time alignment, masks, teacher forcing) are in
``docs/conventions.md``.
"""

from ._version import __version__
from .activations import ACTIVATIONS
from .api import (NonFiniteResultError, RTRLState, forward, gradient, init_state, loss, run, train_online,
                  train_online_bptt)
from . import rules, tasks
from .checking import GradientCheckError, check_gradient
from .io import ModelFileError, load, save
from .learner import LearnerState, OnlineLearner
from .network import init_weights

__all__ = [
    "__version__",
    "ACTIVATIONS",
    "RTRLState",
    "NonFiniteResultError",
    "init_state",
    "run",
    "forward",
    "loss",
    "gradient",
    "train_online",
    "train_online_bptt",
    "OnlineLearner",
    "LearnerState",
    "init_weights",
    "check_gradient",
    "GradientCheckError",
    "load",
    "save",
    "ModelFileError",
    "tasks",
    "rules",
]


def __getattr__(name):
    """``rtrl.jax_engine`` on first use, so that ``import rtrl`` never imports JAX."""
    if name == "jax_engine":
        import importlib

        return importlib.import_module(".jax_engine", __name__)
    raise AttributeError(f"module 'rtrl' has no attribute {name!r}")
