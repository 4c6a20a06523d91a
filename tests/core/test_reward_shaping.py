"""numbarl.core.reward_shaping: the LineariseRewards and TargetReturn kernels against plain NumPy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbarl.core.reward_shaping import linearise, target_return_reset, target_return_step

FLOATS = [np.float32, np.float64]


def naive_linearise(reward, weights):
    """Weighted sum over the last dim, one Python float64 addition at a time."""
    k = reward.shape[-1]
    rows = reward.reshape(-1, k).astype(np.float64)
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    sums = [sum(float(w[j]) * float(row[j]) for j in range(k)) for row in rows]
    return np.array(sums, dtype=np.float64).reshape(reward.shape[:-1] + (1,))


@settings(max_examples=80, deadline=None)
@given(batch=st.sampled_from([(), (1,), (4,), (3, 2)]), k=st.integers(1, 6), seed=st.integers(0, 2**16),
       rdtype=st.sampled_from(FLOATS), wdtype=st.sampled_from(FLOATS + [None]), odtype=st.sampled_from(FLOATS))
def test_linearise_matches_naive(batch, k, seed, rdtype, wdtype, odtype):
    rng = np.random.default_rng(seed)
    reward = (rng.standard_normal(batch + (k,)) * 10).astype(rdtype)
    weights = None if wdtype is None else rng.uniform(-2, 2, k).astype(wdtype)
    out = np.full(batch + (1,), np.nan, dtype=odtype)
    linearise(reward, weights, out)
    want = naive_linearise(reward, weights)
    # float64 accumulation, one rounding into out's dtype
    tol = 1e-12 if odtype == np.float64 else 0
    np.testing.assert_allclose(out, want.astype(odtype), rtol=tol, atol=tol)


def test_linearise_non_contiguous_reward_and_empty_batch():
    reward = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]  # strided view, k = 3
    out = np.empty((4, 1), dtype=np.float32)
    linearise(reward, np.array([1.0, -1.0, 0.5]), out)
    np.testing.assert_array_equal(out[:, 0], reward[:, 0] - reward[:, 1] + 0.5 * reward[:, 2])
    empty = np.empty((0, 1))
    linearise(np.zeros((0, 3)), None, empty)
    assert empty.shape == (0, 1)


def test_linearise_float32_sum_is_rounded_once():
    # 1 + 2**-24 + 2**-24 in float32 steps gives 1; rounded once from float64 it is 1 + 2**-23
    reward = np.array([1.0, 2.0 ** -24, 2.0 ** -24], dtype=np.float32)
    out = np.empty(1, dtype=np.float32)
    linearise(reward, None, out)
    assert out[0] == np.float32(1.0 + 2.0 ** -23)


def test_linearise_bad_input():
    out = np.empty((2, 1))
    with pytest.raises(ValueError, match="The number of rewards and weights should match. Got: 3 and 2"):
        linearise(np.zeros((2, 3)), np.ones(2), out)
    with pytest.raises(ValueError, match=r"out of shape \(2, 1\), got \(2,\)"):
        linearise(np.zeros((2, 3)), None, np.empty(2))
    with pytest.raises(TypeError, match="reward to be float32 or float64, got int64"):
        linearise(np.zeros((2, 3), dtype=np.int64), None, out)
    with pytest.raises(TypeError, match="reward to be a numpy.ndarray, got list"):
        linearise([[1.0]], None, out)
    with pytest.raises(ValueError, match="at least one dim"):
        linearise(np.ones(()), None, np.empty(1))
    with pytest.raises(ValueError, match="C-contiguous"):
        linearise(np.zeros((2, 3)), None, np.empty((2, 2))[:, :1])


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(1,), (3, 1), (2, 2, 1), (5,)]), seed=st.integers(0, 2**16),
       tdtype=st.sampled_from(FLOATS), rdtype=st.sampled_from(FLOATS), reduce=st.booleans(),
       in_place=st.booleans())
def test_target_return_step_matches_numpy(shape, seed, tdtype, rdtype, reduce, in_place):
    rng = np.random.default_rng(seed)
    target = rng.standard_normal(shape).astype(tdtype)
    reward = rng.standard_normal(shape).astype(rdtype)
    want = (target - reward) if reduce else target.copy()  # NumPy's promotion, one rounding
    out = target if in_place and want.dtype == target.dtype else np.empty(shape, dtype=want.dtype)
    target_return_step(target, reward, out, reduce)
    np.testing.assert_array_equal(out, want)


@settings(max_examples=60, deadline=None)
@given(batch=st.sampled_from([(1,), (4,), (3, 2)]), tail=st.sampled_from([(1,), (2, 1), ()]),
       seed=st.integers(0, 2**16), dtype=st.sampled_from(FLOATS), in_place=st.booleans(),
       value=st.floats(-100, 100))
def test_target_return_reset_matches_numpy(batch, tail, seed, dtype, in_place, value):
    rng = np.random.default_rng(seed)
    target = rng.standard_normal(batch + tail).astype(dtype)
    mask = rng.random(batch) < 0.5
    want = np.where(mask.reshape(batch + (1,) * len(tail)), dtype(value), target)
    out = target if in_place else np.empty_like(target)
    target_return_reset(target, mask, value, out)
    np.testing.assert_array_equal(out, want)


def test_target_return_reset_fills_without_mask_or_target():
    out = np.zeros((3, 1), dtype=np.float32)
    target_return_reset(np.ones((3, 1), dtype=np.float32), None, 2.5, out)
    assert out.tolist() == [[2.5]] * 3
    target_return_reset(None, np.array([True, False, False]), -1.0, out)
    assert out.tolist() == [[-1.0]] * 3


def test_target_return_bad_input():
    t = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"The shape of the reward \(\(2,\)\) and target return \(\(2, 1\)\) must "
                                         r"match"):
        target_return_step(t, np.zeros(2), t)
    with pytest.raises(TypeError, match="reward to be float32 or float64, got int64"):
        target_return_step(t, np.zeros((2, 1), dtype=np.int64), t)
    with pytest.raises(ValueError, match=r"out of shape \(2, 1\), got \(2,\)"):
        target_return_step(t, t, np.zeros(2))
    with pytest.raises(TypeError, match="mask to be a bool array, got int64"):
        target_return_reset(t, np.array([1, 0]), 1.0, t)
    with pytest.raises(ValueError, match=r"shape is a prefix of \(2, 1\), got \(3,\)"):
        target_return_reset(t, np.array([True, False, True]), 1.0, t)
