"""The shipped gradient checker must catch a wrong gradient (after autograd's test_tests)."""

import numpy as np
import pytest

import rtrl
from conftest import random_problem


def test_checker_accepts_the_true_gradient(rng):
    W, xs, ds = random_problem(rng, 3, 2, 10)
    G = rtrl.gradient(W, xs, ds)
    assert rtrl.check_gradient(lambda V: rtrl.loss(V, xs, ds), G, W) < 1e-7


@pytest.mark.parametrize("bug", ["one_entry", "sign", "scale", "drop_recurrent", "no_teacher_forcing"])
def test_checker_catches_an_injected_wrong_gradient(rng, bug):
    W, xs, ds = random_problem(rng, 3, 2, 10, p_target=1.0)
    G = rtrl.gradient(W, xs, ds, teacher_forcing=True)
    wrong = G.copy()
    if bug == "one_entry":
        wrong[1, 2] += 1e-3 * max(1.0, np.abs(G).max())
    elif bug == "sign":
        wrong = -wrong
    elif bug == "scale":
        wrong = 1.01 * wrong
    elif bug == "drop_recurrent":
        wrong[:, 3:] = 0.0
    else:
        wrong = rtrl.gradient(W, xs, ds, teacher_forcing=False)
    loss = lambda V: rtrl.loss(V, xs, ds, teacher_forcing=True)  # noqa: E731
    with pytest.raises(rtrl.GradientCheckError, match="gradient check failed"):
        rtrl.check_gradient(loss, wrong, W, n_directions=8)


def test_checker_rejects_a_gradient_of_the_wrong_shape(rng):
    W, xs, ds = random_problem(rng, 2, 1, 5)
    with pytest.raises(ValueError, match="grad: expected the shape of W"):
        rtrl.check_gradient(lambda V: rtrl.loss(V, xs, ds), np.zeros((2, 3)), W)
