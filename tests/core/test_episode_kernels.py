"""numbarl.core.episode: fused per-step kernels against plain NumPy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbarl.core.episode import add_into, count_steps


def reference(count, done, truncated, max_steps, update_done):
    count = count + 1
    cut = count >= max_steps
    done_out = done | cut if update_done else None
    trunc_out = cut | truncated if truncated is not None else cut
    return count, done_out, trunc_out


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(1,), (3, 1), (2, 2, 1), (5,)]), seed=st.integers(0, 2**16),
       max_steps=st.integers(1, 6), update_done=st.booleans(), with_truncated=st.booleans())
def test_count_steps_matches_numpy(shape, seed, max_steps, update_done, with_truncated):
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 8, size=shape).astype(np.int64)
    done = rng.random(shape) < 0.3
    truncated = (rng.random(shape) < 0.3) if with_truncated else None
    want = reference(count, done, truncated, max_steps, update_done)
    done_out, trunc_out = np.zeros(shape, bool), np.zeros(shape, bool)
    count_steps(count, done, truncated, max_steps, update_done, done_out, trunc_out)
    np.testing.assert_array_equal(count, want[0])
    np.testing.assert_array_equal(trunc_out, want[2])
    if update_done:
        np.testing.assert_array_equal(done_out, want[1])


def test_count_only_and_add_into():
    count = np.array([0, 4], dtype=np.int64)
    count_steps(count)
    assert count.tolist() == [1, 5]
    for dtype in (np.float32, np.float64, np.int64):
        total = np.arange(3).astype(dtype)
        value = np.full(3, 0.1 if dtype != np.int64 else 2, dtype=dtype)
        want = total + value
        add_into(total, value)
        np.testing.assert_array_equal(total, want)  # same rounding as one NumPy add


def test_bad_arrays():
    with pytest.raises(TypeError, match="count must be a numpy.ndarray"):
        count_steps([1, 2])
    with pytest.raises(TypeError, match="count must have dtype int64"):
        count_steps(np.zeros(2, dtype=np.int32))
    with pytest.raises(ValueError, match=r"done must have shape \(2,\), got \(3,\)"):
        count_steps(np.zeros(2, dtype=np.int64), np.zeros(3, bool), None, 4, True, np.zeros(2, bool), np.zeros(2, bool))
    with pytest.raises(ValueError, match=r"value must have shape \(2,\)"):
        add_into(np.zeros(2), np.zeros(3))
