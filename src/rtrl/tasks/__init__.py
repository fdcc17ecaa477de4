"""Tasks as streams, after the paper's experiments (Williams & Zipser 1989, section 3).

``make(name, **params)`` builds a task; ``list_tasks()`` lists them with their parameters.
A task has frozen ``params``, ``n_inputs`` (m), ``n_targets`` (its target units are the
network's units 0 .. n_targets-1) and the stream functions ``reset(rng)``,
``step(state, rng) -> (state, x, target)``, ``rollout(state, n_steps, rng)`` and
``generate(n_steps, rng) -> (xs, targets)`` with NaN for "no target".

Examples
--------
>>> import rtrl.tasks
>>> task = rtrl.tasks.make("pipelined-xor", delay=2)
>>> xs, ds = task.generate(4, rng=0)
>>> xs.shape, ds.shape
((4, 2), (4, 1))
>>> sorted(rtrl.tasks.list_tasks())[:3]
['add', 'delayed-nonmatch', 'flip-flop']
"""

from .base import Params, Task, TaskInfo, list_tasks, make, register
from . import add, dnms, flipflop, oscillator, seqrec, turing, xor  # noqa: F401  (registers the tasks)

__all__ = ["Task", "TaskInfo", "Params", "make", "list_tasks", "register"]
