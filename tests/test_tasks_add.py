import numpy as np
import pytest

import rtrl


def test_add_task_hand_worked_targets():
    task = rtrl.tasks.make("add", lag1=1, lag2=2)
    state = task.reset(0)
    xs_all, ds_all = [], []
    rng = np.random.default_rng(4)
    for n in (3, 1, 6):  # chunks give one continuous stream
        state, xs, ds = task.rollout(state, n, rng)
        xs_all.append(xs), ds_all.append(ds)
    x = np.concatenate(xs_all)[:, 0]
    d = np.concatenate(ds_all)[:, 0]
    assert np.isnan(d[0])  # x(t - 1) does not exist yet at t = 0
    for t in range(1, len(x)):  # lag1 = 1: the input just consumed; lag2 = 2: the one before
        assert d[t] == pytest.approx(0.1 + 0.8 * (0.5 + 0.5 * x[t] - 0.25 * x[t - 1]))
    assert set(np.round(d[1:], 6)) <= {0.3, 0.5, 0.7, 0.9}


def test_add_task_rejects_bad_lags():
    with pytest.raises(ValueError, match="lag2"):
        rtrl.tasks.make("add", lag1=3, lag2=3)
    with pytest.raises(ValueError, match="lag1"):
        rtrl.tasks.make("add", lag1=0)
