"""CUDA frame-stack ring against the CPU one, under the Numba CUDA simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import run_doctests, skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from numba import cuda  # noqa: E402
from numbarl.core import frames as cpu  # noqa: E402
from numbarl.core.cuda import frames as gpu  # noqa: E402

pytestmark = pytest.mark.cudasim


@st.composite
def rings(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    frame = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    n = draw(st.integers(1, 4))
    dim = draw(st.sampled_from([None] + list(range(-len(frame), 0))))
    dtype = draw(st.sampled_from([np.float32, np.uint8, np.int64]))
    return batch, n, frame, dim, np.dtype(dtype)


def _frame(rng, shape, dtype):
    return rng.integers(0, 200, shape).astype(dtype)


def _assert_same_state(g_buffer, g_pos, c_buffer, c_pos):
    np.testing.assert_array_equal(g_pos.copy_to_host(), c_pos)
    np.testing.assert_array_equal(g_buffer.copy_to_host(), c_buffer)


@settings(max_examples=40, deadline=None)
@given(ring=rings(), ops=st.lists(st.sampled_from(["push", "push_none", "reset", "reset_out", "stack"]),
                                  min_size=1, max_size=6),
       seed=st.integers(0, 2**32 - 1), padding=st.sampled_from(["same", "constant"]))
def test_ring_matches_cpu(ring, ops, seed, padding):
    batch, n, frame_shape, dim, dtype = ring
    rng = np.random.default_rng(seed)
    c_buffer, c_pos = cpu.frames_state(batch, n, frame_shape, dtype)
    g_buffer, g_pos = gpu.frames_state(batch, n, frame_shape, dtype)
    first = _frame(rng, batch + frame_shape, dtype)
    cpu.frames_reset(c_buffer, c_pos, first)
    gpu.frames_reset(g_buffer, g_pos, cuda.to_device(first))
    for op in ops:
        frame = _frame(rng, batch + frame_shape, dtype)
        if op == "push":
            want = cpu.frames_push(c_buffer, c_pos, frame, dim=dim)
            got = gpu.frames_push(g_buffer, g_pos, cuda.to_device(frame), dim=dim).copy_to_host()
        elif op == "push_none":
            # the frames are written into the next slots first (positions are equal)
            cpu.frames_next_slot(c_buffer, c_pos)[...] = frame
            host = g_buffer.copy_to_host()
            host[(slice(None),) * len(batch) + (int(c_pos.reshape(-1)[0]),)] = frame
            g_buffer.copy_to_device(host)
            want = cpu.frames_push(c_buffer, c_pos, None, dim=dim)
            got = gpu.frames_push(g_buffer, g_pos, None, dim=dim).copy_to_host()
        elif op.startswith("reset"):
            mask = rng.random(batch) < 0.5
            kwargs = dict(mask=mask if batch else None, padding=padding, padding_value=7)
            if op == "reset_out":
                shape = cpu.frames_stack(c_buffer, c_pos, dim=dim).shape
                kwargs.update(out=np.empty(shape, dtype), dim=dim)
                want = cpu.frames_reset(c_buffer, c_pos, frame, **kwargs)
                kwargs["out"] = cuda.device_array(shape, dtype)
                got = gpu.frames_reset(g_buffer, g_pos, cuda.to_device(frame), **kwargs).copy_to_host()
            else:
                cpu.frames_reset(c_buffer, c_pos, frame, **kwargs)
                gpu.frames_reset(g_buffer, g_pos, cuda.to_device(frame), **kwargs)
                want = got = None
        else:
            want = cpu.frames_stack(c_buffer, c_pos, dim=dim)
            got = gpu.frames_stack(g_buffer, g_pos, dim=dim).copy_to_host()
        if want is not None:
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
        _assert_same_state(g_buffer, g_pos, c_buffer, c_pos)


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 7), frame=st.lists(st.integers(1, 3), max_size=2),
       n=st.integers(1, 4), padding=st.sampled_from(["same", "constant"]),
       mask_is=st.sampled_from(["done", "reset"]), with_initial=st.booleans(), trailing=st.booleans(),
       use_dim=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_stack_offline_matches_cpu(b, t, frame, n, padding, mask_is, with_initial, trailing, use_dim, seed):
    rng = np.random.default_rng(seed)
    frame = tuple(frame)
    x = rng.standard_normal((b, t) + frame).astype(np.float32)
    mask = rng.random((b, t, 1) if trailing else (b, t)) < 0.3
    initial = rng.standard_normal(x.shape).astype(np.float32) if with_initial else None
    dim = -1 if (use_dim and frame) else None
    kwargs = dict(dim=dim, padding=padding, padding_value=-2.0, mask_is=mask_is)
    want = cpu.frames_stack_offline(x, mask, n, initial=initial, **kwargs)
    got = gpu.frames_stack_offline(cuda.to_device(x), cuda.to_device(mask), n,
                                   initial=None if initial is None else cuda.to_device(initial), **kwargs)
    np.testing.assert_array_equal(got.copy_to_host(), want)


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 7), frame=st.lists(st.integers(1, 3), max_size=2),
       n=st.integers(1, 4), padding=st.sampled_from(["same", "constant"]),
       mask_is=st.sampled_from(["done", "reset"]), trailing=st.booleans(), use_dim=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_future_stack_and_window_mask_match_cpu(b, t, frame, n, padding, mask_is, trailing, use_dim, seed):
    rng = np.random.default_rng(seed)
    frame = tuple(frame)
    x = rng.standard_normal((b, t) + frame).astype(np.float32)
    mask = rng.random((b, t, 1) if trailing else (b, t)) < 0.3
    dim = -1 if (use_dim and frame) else None
    kwargs = dict(dim=dim, padding=padding, padding_value=-2.0, mask_is=mask_is, future=True)
    want = cpu.frames_stack_offline(x, mask, n, **kwargs)
    got = gpu.frames_stack_offline(cuda.to_device(x), cuda.to_device(mask), n, **kwargs)
    np.testing.assert_array_equal(got.copy_to_host(), want)
    for future in (False, True):
        want = cpu.frames_window_mask(mask, n, mask_is=mask_is, future=future)
        got = gpu.frames_window_mask(cuda.to_device(mask), n, mask_is=mask_is, future=future)
        np.testing.assert_array_equal(got.copy_to_host(), want)


def test_preallocated_out_and_stream():
    stream = cuda.stream()
    buffer, pos = gpu.frames_state((2,), 3, (1, 2), np.float32, stream=stream)
    frame = cuda.to_device(np.arange(4, dtype=np.float32).reshape(2, 1, 2), stream=stream)
    gpu.frames_reset(buffer, pos, frame, stream=stream)
    out = cuda.device_array((2, 3, 2), np.float32)
    assert gpu.frames_push(buffer, pos, frame, out=out, dim=-2, stream=stream) is out
    stream.synchronize()
    np.testing.assert_array_equal(out.copy_to_host()[0], [[0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(pos.copy_to_host(), [1, 1])


def test_bad_position_raises_with_check_and_is_skipped_without():
    buffer, pos = gpu.frames_state((3,), 2, (2,))
    pos.copy_to_device(np.array([0, 5, 1]))
    frame = cuda.to_device(np.ones((3, 2), np.float32))
    message = r"frames_push \(CUDA\) requires 0 <= pos < N = 2, got pos = 5 at flat index 1"
    with pytest.raises(ValueError, match=message):
        gpu.frames_push(buffer, pos, frame)
    np.testing.assert_array_equal(pos.copy_to_host(), [1, 5, 0])  # the valid ones advanced
    out = gpu.frames_stack(buffer, pos, check=False).copy_to_host()
    np.testing.assert_array_equal(out[0], [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match=r"frames_reset \(CUDA\) requires 0 <= pos < N = 2, got pos = 5"):
        gpu.frames_reset(buffer, pos, frame)


def _ring():
    return gpu.frames_state((2,), 3, (4,))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda b, p: gpu.frames_push(b, p, np.zeros((2, 4), np.float32)), TypeError,
         r"frames_push \(CUDA\) requires frame to be a CUDA device array"),
        (lambda b, p: gpu.frames_push(b.copy_to_host(), p, None), TypeError,
         r"requires buffer to be a CUDA device array"),
        (lambda b, p: gpu.frames_push(b, cuda.to_device(np.zeros(2, np.int32)), None), TypeError,
         r"pos of dtype int64, got int32"),
        (lambda b, p: gpu.frames_push(b, p, cuda.to_device(np.zeros((2, 5), np.float32))), ValueError,
         r"frame of shape \(2, 4\) \(batch \+ buffer frame shape\), got \(2, 5\)"),
        (lambda b, p: gpu.frames_push(b, p, cuda.to_device(np.zeros((2, 4), np.float64))), TypeError,
         r"frame of the buffer's dtype float32, got float64"),
        (lambda b, p: gpu.frames_push(b, p, None, dim=-2), ValueError, r"-1 <= dim <= -1"),
        (lambda b, p: gpu.frames_stack(b, p, out=cuda.device_array((2, 3, 5), np.float32)), ValueError,
         r"out of shape \(2, 3, 4\), got \(2, 3, 5\)"),
        (lambda b, p: gpu.frames_push(b, p, None, check=1), TypeError, r"check to be a bool, got int"),
        (lambda b, p: gpu.frames_reset(b, p, cuda.to_device(np.zeros((2, 4), np.float32)), padding="edge"),
         ValueError, r"padding 'same' or 'constant', got 'edge'"),
        (lambda b, p: gpu.frames_reset(b, p, cuda.to_device(np.zeros((2, 4), np.float32)),
                                       mask=np.array([1, 0])), TypeError, r"mask of dtype bool, got int64"),
        (lambda b, p: gpu.frames_reset(b, p, cuda.to_device(np.zeros((2, 4), np.float32)),
                                       mask=np.array([True])), ValueError, r"mask of shape \(2,\)"),
        (lambda b, p: gpu.frames_state((2,), 0, (4,)), ValueError, r"n >= 1, got 0"),
        (lambda b, p: gpu.frames_stack_offline(cuda.to_device(np.zeros((2, 3))),
                                               cuda.to_device(np.zeros((2, 3), np.int8)), 2), TypeError,
         r"done_or_reset_mask of dtype bool, got int8"),
    ],
)
def test_bad_input(call, error, match):
    buffer, pos = _ring()
    with pytest.raises(error, match=match):
        call(buffer, pos)


def test_doctests():
    run_doctests(gpu)


# ------------------------------------------------------------ frames_next_slot
def _slot_index(batch, slot):
    return (slice(None),) * len(batch) + (slot,)


@settings(max_examples=25, deadline=None)
@given(ring=rings(), ops=st.lists(st.sampled_from(["push", "next_slot", "reset"]), min_size=1, max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_next_slot_matches_cpu(ring, ops, seed):
    batch, n, frame_shape, dim, dtype = ring
    rng = np.random.default_rng(seed)
    c_buffer, c_pos = cpu.frames_state(batch, n, frame_shape, dtype)
    g_buffer, g_pos = gpu.frames_state(batch, n, frame_shape, dtype)
    first = _frame(rng, batch + frame_shape, dtype)
    cpu.frames_reset(c_buffer, c_pos, first)
    gpu.frames_reset(g_buffer, g_pos, cuda.to_device(first))
    for op in ops:
        frame = _frame(rng, batch + frame_shape, dtype)
        if op == "push":
            want = cpu.frames_push(c_buffer, c_pos, frame, dim=dim)
            got = gpu.frames_push(g_buffer, g_pos, cuda.to_device(frame), dim=dim).copy_to_host()
            np.testing.assert_array_equal(got, want)
        elif op == "next_slot":
            c_slot = cpu.frames_next_slot(c_buffer, c_pos)
            g_slot = gpu.frames_next_slot(g_buffer, g_pos)
            assert tuple(g_slot.shape) == c_slot.shape == batch + frame_shape
            np.testing.assert_array_equal(g_slot.copy_to_host(), c_slot)
            # what is written into the view is the frame the next push stacks
            c_slot[...] = frame
            g_slot[...] = frame
            want = cpu.frames_push(c_buffer, c_pos, None, dim=dim)
            got = gpu.frames_push(g_buffer, g_pos, None, dim=dim).copy_to_host()
            np.testing.assert_array_equal(got, want)
        else:
            mask = rng.random(batch) < 0.5
            cpu.frames_reset(c_buffer, c_pos, frame, mask=mask if batch else None, padding="constant")
            gpu.frames_reset(g_buffer, g_pos, cuda.to_device(frame), mask=mask if batch else None,
                             padding="constant")
        _assert_same_state(g_buffer, g_pos, c_buffer, c_pos)


def test_next_slot_is_a_view_of_the_slot_at_pos():
    buffer, pos = gpu.frames_state((2,), 3, (1, 2), np.float32)
    pos.copy_to_device(np.array([2, 2]))
    slot = gpu.frames_next_slot(buffer, pos)
    slot[...] = np.full((2, 1, 2), 5.0, np.float32)
    host = buffer.copy_to_host()
    np.testing.assert_array_equal(host[:, 2], np.full((2, 1, 2), 5.0))
    np.testing.assert_array_equal(host[:, :2], np.zeros((2, 2, 1, 2)))
    np.testing.assert_array_equal(pos.copy_to_host(), [2, 2])  # not moved
    # one sub-env: a C-contiguous view that a pixel kernel can write as its out
    one_buffer, one_pos = gpu.frames_state((), 2, (1, 3, 3), np.float32)
    assert gpu.frames_next_slot(one_buffer, one_pos).is_c_contiguous()


def test_next_slot_with_a_stream_and_an_empty_batch():
    stream = cuda.stream()
    buffer, pos = gpu.frames_state((2,), 2, (3,), np.uint8, stream=stream)
    assert tuple(gpu.frames_next_slot(buffer, pos, stream=stream).shape) == (2, 3)
    empty_buffer, empty_pos = gpu.frames_state((0,), 2, (3,), np.uint8)
    assert tuple(gpu.frames_next_slot(empty_buffer, empty_pos).shape) == (0, 3)
    assert tuple(cpu.frames_next_slot(*cpu.frames_state((0,), 2, (3,), np.uint8)).shape) == (0, 3)


@pytest.mark.parametrize(
    "positions,error,match",
    [
        ([0, 1], ValueError, r"frames_next_slot \(CUDA\) requires equal positions in pos, got 0 to 1; use "
                             r"frames_push with frame arrays instead"),
        ([3, 3], ValueError, r"frames_next_slot \(CUDA\) requires 0 <= pos < N = 3, got 3"),
        ([-1, -1], ValueError, r"frames_next_slot \(CUDA\) requires 0 <= pos < N = 3, got -1"),
    ],
)
def test_next_slot_bad_positions(positions, error, match):
    buffer, pos = _ring()
    pos.copy_to_device(np.array(positions))
    with pytest.raises(error, match=match):
        gpu.frames_next_slot(buffer, pos)
    c_buffer, c_pos = cpu.frames_state((2,), 3, (4,))
    c_pos[:] = positions
    with pytest.raises(error, match=match.replace(r" \(CUDA\)", "")):
        cpu.frames_next_slot(c_buffer, c_pos)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda b, p: gpu.frames_next_slot(b.copy_to_host(), p), TypeError,
         r"frames_next_slot \(CUDA\) requires buffer to be a CUDA device array"),
        (lambda b, p: gpu.frames_next_slot(b, cuda.to_device(np.zeros(2, np.int32))), TypeError,
         r"frames_next_slot \(CUDA\) requires pos of dtype int64, got int32"),
        (lambda b, p: gpu.frames_next_slot(b, cuda.to_device(np.zeros(3, np.int64))), ValueError,
         r"frames_next_slot \(CUDA\) requires buffer of shape \[\*batch, N, \*frame\] with batch = pos.shape"),
    ],
)
def test_next_slot_bad_input(call, error, match):
    buffer, pos = _ring()
    with pytest.raises(error, match=match):
        call(buffer, pos)
