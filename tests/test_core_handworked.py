"""A two-step example worked out by hand (one logistic unit, one input line)."""

import math

import numpy as np

import rtrl

W = np.array([[0.5, -0.2, 0.3]])  # [w_x, w_bias, w_rec]
XS = np.array([[1.0], [0.0]])
DS = np.array([[0.6], [0.4]])


def sigma(s):
    return 1.0 / (1.0 + math.exp(-s))


def test_two_steps_by_hand():
    # step 0: z(0) = [1, 1, y(0)=0]; s(0) = 0.5 - 0.2 = 0.3
    y1 = sigma(0.3)
    p1 = [y1 * (1 - y1) * v for v in (1.0, 1.0, 0.0)]  # dy(1)/dw = f'(s0) z(0)
    e0 = 0.6 - y1
    # step 1: z(1) = [0, 1, y1]; s(1) = -0.2 + 0.3 y1
    y2 = sigma(-0.2 + 0.3 * y1)
    fp2 = y2 * (1 - y2)
    p2 = [fp2 * (0.3 * p1[0] + 0.0), fp2 * (0.3 * p1[1] + 1.0), fp2 * (0.3 * p1[2] + y1)]
    e1 = 0.4 - y2
    expected_G = np.array([[-(e0 * p1[j] + e1 * p2[j]) for j in range(3)]])
    expected_J = 0.5 * (e0 ** 2 + e1 ** 2)

    np.testing.assert_allclose(rtrl.forward(W, XS), [[y1], [y2]], rtol=1e-15)
    assert math.isclose(rtrl.loss(W, XS, DS), expected_J, rel_tol=1e-14)
    for method in ("rtrl", "bptt"):
        np.testing.assert_allclose(rtrl.gradient(W, XS, DS, method=method), expected_G, rtol=1e-13)
    np.testing.assert_allclose(rtrl.gradient(W, XS, DS, engine="numpy"), expected_G, rtol=1e-13)


def test_two_steps_by_hand_teacher_forced():
    y1 = sigma(0.3)
    p1 = [y1 * (1 - y1) * v for v in (1.0, 1.0, 0.0)]
    e0 = 0.6 - y1  # error from the actual output, gradient from the un-zeroed P(1)
    # forcing: z(1) carries the target 0.6, and P(1) is zeroed for the next step
    y2 = sigma(-0.2 + 0.3 * 0.6)
    fp2 = y2 * (1 - y2)
    p2 = [0.0, fp2 * 1.0, fp2 * 0.6]
    e1 = 0.4 - y2
    expected_G = np.array([[-(e0 * p1[j] + e1 * p2[j]) for j in range(3)]])
    for method in ("rtrl", "bptt"):
        G = rtrl.gradient(W, XS, DS, method=method, teacher_forcing=True)
        np.testing.assert_allclose(G, expected_G, rtol=1e-13)


def test_real_time_update_by_hand():
    """Real-time RTRL: the second step runs with the weights changed after the first."""
    lr = 0.7
    y1 = sigma(0.3)
    p1 = np.array([y1 * (1 - y1) * v for v in (1.0, 1.0, 0.0)])
    W1 = W[0] + lr * (0.6 - y1) * p1  # W <- W + lr e(0) P(1)
    y2 = sigma(W1[1] + W1[2] * y1)
    fp2 = y2 * (1 - y2)
    p2 = fp2 * (W1[2] * p1 + np.array([0.0, 1.0, y1]))
    W2 = W1 + lr * (0.4 - y2) * p2
    W_final, ys = rtrl.train_online(W, XS, DS, learning_rate=lr)
    np.testing.assert_allclose(ys, [[y1], [y2]], rtol=1e-14)
    np.testing.assert_allclose(W_final, [W2], rtol=1e-13)
