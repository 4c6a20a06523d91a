"""Tests of numbarl.core.nstep.n_step_returns against a plain-Python reference."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numbarl.core.nstep import n_step_returns


def naive_n_step(done, n, gamma, reward, axis):
    """Per trajectory and step: walk forward until n steps, a done or the end of the data."""
    done = np.moveaxis(np.asarray(done, bool), axis, -1)
    feat = reward.shape[done.ndim:]
    rew = np.moveaxis(reward.astype(np.float64), axis, done.ndim - 1)
    steps = np.zeros(done.shape, np.int64)
    nxt = np.zeros(done.shape, np.int64)
    total = np.zeros(rew.shape, np.float64)
    n_t = done.shape[-1]
    for idx in np.ndindex(*done.shape[:-1]):
        for t in range(n_t):
            k = 0
            acc = np.zeros(feat)
            while True:
                acc = acc + gamma ** k * rew[idx + (t + k,)]
                k += 1
                if k == n or done[idx + (t + k - 1,)] or t + k == n_t:
                    break
            steps[idx + (t,)] = k
            nxt[idx + (t,)] = t + k - 1
            total[idx + (t,)] = acc
    return (np.moveaxis(steps, -1, axis), np.moveaxis(nxt, -1, axis),
            np.moveaxis(total, done.ndim - 1, axis))


@st.composite
def cases(draw):
    before = draw(st.lists(st.integers(1, 3), max_size=2))
    after = draw(st.sampled_from([[], [1], [2]]))
    n_t = draw(st.integers(1, 40))
    shape = tuple(before) + (n_t,) + tuple(after)
    feat = draw(st.sampled_from([(), (1,), (2,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    done = rng.random(shape) < draw(st.sampled_from([0.0, 0.1, 0.4, 1.0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    reward = (rng.standard_normal(shape + feat) * 10).astype(dtype)
    n = draw(st.integers(1, 12))
    gamma = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    axis = len(before)
    time_dim = draw(st.sampled_from([axis, axis - len(shape)]))
    return done, n, gamma, reward, time_dim


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_reference(case):
    done, n, gamma, reward, time_dim = case
    steps, nxt, total = n_step_returns(done, n, gamma, reward=reward, time_dim=time_dim)
    want_steps, want_next, want_total = naive_n_step(done, n, gamma, reward, time_dim % done.ndim)
    np.testing.assert_array_equal(steps, want_steps)
    np.testing.assert_array_equal(nxt, want_next)
    assert total.dtype == reward.dtype and total.shape == reward.shape
    tol = 1e-12 if reward.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(total, want_total.astype(reward.dtype), rtol=tol, atol=tol * 100)


def test_stops_at_episode_end_and_data_end():
    done = np.array([[False, False, False, True, False, False]])
    reward = np.arange(1.0, 7.0).reshape(1, 6)
    steps, nxt, total = n_step_returns(done, 3, 0.5, reward=reward[..., None])
    assert steps.tolist() == [[3, 3, 2, 1, 2, 1]]
    assert nxt.tolist() == [[2, 3, 3, 3, 5, 5]]
    assert total[..., 0].tolist() == [[1 + 1 + 0.75, 2 + 1.5 + 1, 3 + 2, 4, 5 + 3, 6]]


def test_long_trajectory_has_no_cancellation():
    # a huge reward early on must not leak into later windows (a sliding sum would leave rounding residue)
    reward = np.ones((1, 200, 1))
    reward[0, 0] = 1e17
    done = np.zeros((1, 200), bool)
    _, _, total = n_step_returns(done, 4, 0.9, reward=reward)
    np.testing.assert_array_equal(total[0, 1:197, 0], np.full(196, 1 + 0.9 + 0.81 + 0.729))


def test_indices_only_and_out_arrays():
    done = np.zeros((2, 5), bool)
    steps_out = np.empty((2, 5), np.int64)
    next_out = np.empty((2, 5), np.int64)
    steps, nxt, total = n_step_returns(done, 2, steps_out=steps_out, next_out=next_out)
    assert total is None and steps is steps_out and nxt is next_out
    assert steps.tolist() == [[2, 2, 2, 2, 1]] * 2
    reward = np.ones((2, 5), np.float32)
    out = np.empty_like(reward)
    assert n_step_returns(done, 2, 1.0, reward=reward, reward_out=out)[2] is out


def test_non_contiguous_inputs():
    rng = np.random.default_rng(0)
    done = rng.random((6, 7)) < 0.3
    reward = rng.standard_normal((6, 7, 1))
    got = n_step_returns(done.T, 3, 0.7, reward=reward.transpose(1, 0, 2), time_dim=0)
    want = naive_n_step(done.T, 3, 0.7, reward.transpose(1, 0, 2), 0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_steps=0), ValueError, "n_steps >= 1, got 0"),
    (dict(n_steps=2.0), TypeError, "n_steps to be an int"),
    (dict(n_steps=True), TypeError, "n_steps to be an int"),
    (dict(gamma=1.5), ValueError, r"gamma in \[0, 1\], got 1.5"),
    (dict(gamma="x"), TypeError, "gamma"),
    (dict(time_dim=2), ValueError, "time_dim <= 1, got 2"),
    (dict(reward=np.ones((2, 4))), ValueError, "reward of shape done.shape"),
    (dict(reward=np.ones((2, 3), np.int64)), TypeError, "reward of dtype float32 or float64"),
    (dict(reward=[1.0]), TypeError, "reward to be a numpy.ndarray"),
    (dict(steps_out=np.empty((2, 3), np.int32)), ValueError, "steps_out of shape"),
])
def test_bad_arguments(kwargs, err, match):
    args = dict(done=np.zeros((2, 3), bool), n_steps=2, gamma=0.9)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        n_step_returns(**args)


def test_bad_done():
    with pytest.raises(TypeError, match="done to be a numpy.ndarray"):
        n_step_returns([[True]], 2)
    with pytest.raises(TypeError, match="done of dtype bool"):
        n_step_returns(np.zeros((1, 2), np.float32), 2)
    with pytest.raises(ValueError, match="time dim"):
        n_step_returns(np.array(True), 2)
