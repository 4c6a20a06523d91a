"""Tests of numbarl.core.time_pool against a per-sub-env list reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbarl.core import time_pool

SETTINGS = settings(max_examples=60, deadline=None)
dtypes = st.sampled_from([np.uint8, np.int32, np.int64, np.float32, np.float64, np.bool_])


class NaivePool:
    """The last T observations of one sub-env in a plain list (newest first), zeros after a reset."""

    def __init__(self, T, shape, dtype):
        self.T, self.shape, self.dtype = T, shape, dtype
        self.slots = [np.zeros(shape, dtype) for _ in range(T)]

    def push(self, frame, clear=False):
        if clear:
            self.slots = [np.zeros(self.shape, self.dtype) for _ in range(self.T)]
        self.slots = [np.array(frame, copy=True)] + self.slots[: self.T - 1]
        out = self.slots[0].copy()
        for s in self.slots[1:]:
            out = np.where((s > out) | np.isnan(s.astype(np.float64)), s, out)
        return out


@SETTINGS
@given(data=st.data(), batch=st.lists(st.integers(1, 3), max_size=2).map(tuple),
       obs=st.lists(st.integers(1, 3), max_size=2).map(tuple), T=st.integers(1, 5), dtype=dtypes,
       steps=st.integers(1, 15))
def test_matches_list_reference(data, batch, obs, T, dtype, steps):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    buffer = time_pool.time_pool_state(T, batch + obs, dtype)
    envs = list(np.ndindex(*batch))
    refs = {e: NaivePool(T, obs, dtype) for e in envs}
    for _ in range(steps):
        frame = rng.integers(-50, 50, batch + obs).astype(dtype)
        kind = rng.integers(0, 3)
        mask = None if (kind == 0 or not batch) else rng.random(batch) < 0.5
        clear = bool(rng.integers(0, 4) == 0)
        fn = time_pool.time_pool_reset if clear else time_pool.time_pool_push
        out = fn(buffer, frame, mask=mask)
        for e in envs:
            if mask is None or mask[e]:
                np.testing.assert_array_equal(out[e], refs[e].push(frame[e], clear))
            else:
                np.testing.assert_array_equal(out[e], np.zeros(obs, dtype))
            np.testing.assert_array_equal(buffer[(slice(None),) + e], np.stack(refs[e].slots))


def test_nan_propagates_until_it_leaves_the_window():
    buffer = time_pool.time_pool_state(2, (3,))
    outs = [time_pool.time_pool_push(buffer, np.array(x)) for x in
            ([np.nan, 1.0, -1.0], [0.5, np.nan, -2.0], [0.25, 3.0, -3.0], [0.0, 0.0, -4.0])]
    np.testing.assert_array_equal(outs[0], [np.nan, 1.0, 0.0])
    np.testing.assert_array_equal(outs[1], [np.nan, np.nan, -1.0])
    np.testing.assert_array_equal(outs[2], [0.5, np.nan, -2.0])
    np.testing.assert_array_equal(outs[3], [0.25, 3.0, -3.0])


def test_out_argument_and_strided_inputs():
    buffer = time_pool.time_pool_state(3, (2, 4), np.float32)
    frame = np.arange(16, dtype=np.float32).reshape(4, 4)[:, ::2].T.copy(order="F")  # not C-contiguous
    out = np.empty((4, 2), np.float32).T  # a strided view as out
    res = time_pool.time_pool_push(buffer, frame, out=out)
    assert res is out
    np.testing.assert_array_equal(out, np.maximum(frame, 0))
    np.testing.assert_array_equal(buffer[0], frame)


def test_reset_leaves_unmasked_history_alone():
    buffer = time_pool.time_pool_state(3, (2, 1), np.int64)
    for x in (5, 7, 9):
        time_pool.time_pool_push(buffer, np.array([[x], [-x]]))
    out = time_pool.time_pool_reset(buffer, np.array([[-1], [2]]), mask=np.array([False, True]))
    np.testing.assert_array_equal(out, [[0], [2]])
    np.testing.assert_array_equal(buffer[:, 0, 0], [9, 7, 5])
    np.testing.assert_array_equal(buffer[:, 1, 0], [2, 0, 0])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(buffer=[0.0], frame=np.zeros(())), TypeError, "buffer to be a numpy.ndarray"),
    (dict(frame=np.zeros(3)), ValueError, r"frame of shape \(2,\)"),
    (dict(frame=np.zeros(2, np.float32)), TypeError, "buffer's dtype float64"),
    (dict(mask=np.array([1, 0])), TypeError, "mask of dtype bool"),
    (dict(mask=np.array([True, False, True])), ValueError, "mask of the batch shape"),
    (dict(out=np.zeros(3)), ValueError, r"out of shape \(2,\)"),
    (dict(out=np.zeros(2, np.int64)), TypeError, "out of dtype float64"),
    (dict(buffer=np.zeros((2, 2), np.float16), frame=np.zeros(2, np.float16)), TypeError, "float16"),
])
def test_bad_arguments(kwargs, error, match):
    args = dict(buffer=np.zeros((2, 2)), frame=np.zeros(2))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        time_pool.time_pool_push(args.pop("buffer"), args.pop("frame"), **args)


def test_overlapping_arrays_are_refused():
    buffer = np.zeros((2, 2))
    with pytest.raises(ValueError, match="frame not to overlap buffer"):
        time_pool.time_pool_push(buffer, buffer[1])
    with pytest.raises(ValueError, match="out not to overlap buffer"):
        time_pool.time_pool_push(buffer, np.zeros(2), out=buffer[1])


def test_state_checks_T():
    with pytest.raises(ValueError, match="time_pool_state requires T >= 1, got 0"):
        time_pool.time_pool_state(0, (2,))
    with pytest.raises(TypeError, match="T to be an int"):
        time_pool.time_pool_state(2.0, (2,))
