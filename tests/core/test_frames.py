"""Tests of numbarl.core.frames against a deque reference and TorchRL's CatFrames."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_pixels as naive
from numbarl.core import frames

SETTINGS = settings(max_examples=40, deadline=None)
dtypes = st.sampled_from([np.uint8, np.float32, np.float64, np.int64])


def _frame_and_dim(draw):
    frame_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    dims = [None] + list(range(-len(frame_shape), 0))
    return frame_shape, draw(st.sampled_from(dims))


@SETTINGS
@given(data=st.data(), batch=st.lists(st.integers(1, 3), max_size=2).map(tuple), n=st.integers(1, 5),
       padding=st.sampled_from(["same", "constant"]), dtype=dtypes, steps=st.integers(1, 12))
def test_ring_matches_deque_reference(data, batch, n, padding, dtype, steps):
    frame_shape, dim = _frame_and_dim(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    buffer, pos = frames.frames_state(batch, n, frame_shape, dtype)
    ref = naive.CatFramesOnline(n, padding, padding_value=7)
    envs = list(np.ndindex(*batch))
    axis = None if dim is None else len(frame_shape) + dim

    def draw_frames():
        return np.asarray(rng.integers(0, 100, batch + frame_shape)).astype(dtype)

    f = draw_frames()
    frames.frames_reset(buffer, pos, f, padding=padding, padding_value=7)
    for e in envs:
        ref.reset(e, f[e])
    for _ in range(steps):
        f = draw_frames()
        if rng.random() < 0.3:
            mask = np.asarray(rng.random(batch) < 0.5)
            out = frames.frames_reset(buffer, pos, f, mask=mask, padding=padding, padding_value=7,
                                      out=np.empty(frames._stack_shape(batch, n, frame_shape, dim), dtype), dim=dim)
            for e in envs:
                if mask[e]:
                    ref.reset(e, f[e])
        else:
            out = frames.frames_push(buffer, pos, f, dim=dim)
            for e in envs:
                ref.push(e, f[e])
        for e in envs:
            np.testing.assert_array_equal(out[e], ref.stack(e, axis))
            np.testing.assert_array_equal(frames.frames_stack(buffer, pos, dim=dim)[e], ref.stack(e, axis))


@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("dim", [-1, -3])
def test_ring_matches_torchrl_catframes_online(torchrl, padding, dim):
    import torch
    from tensordict import TensorDict
    from torchrl.envs.transforms import CatFrames

    n, batch, frame_shape = 4, (3,), (1, 2, 2)
    cf = CatFrames(N=n, dim=dim, in_keys=["pixels"], padding=padding, padding_value=-1.0)
    buffer, pos = frames.frames_state(batch, n, frame_shape, np.float32)
    rng = np.random.default_rng(0)
    out = np.empty(frames._stack_shape(batch, n, frame_shape, dim), np.float32)
    for step in range(10):
        f = rng.random(batch + frame_shape, dtype=np.float32)
        td = TensorDict({"pixels": torch.from_numpy(f.copy())}, list(batch))
        if step == 0 or step % 4 == 3:
            mask = np.ones(batch, bool) if step == 0 else np.array([True, False, step % 8 == 3])
            ref = cf._call(td, _reset=torch.from_numpy(mask))["pixels"].numpy()
            frames.frames_reset(buffer, pos, f, mask=mask, padding=padding, padding_value=-1.0, out=out, dim=dim)
        else:
            ref = cf._call(td)["pixels"].numpy()
            frames.frames_push(buffer, pos, f, out=out, dim=dim)
        np.testing.assert_array_equal(out, ref)


@SETTINGS
@given(data=st.data(), nb=st.integers(1, 3), nt=st.integers(1, 10), n=st.integers(1, 5),
       padding=st.sampled_from(["same", "constant"]), dtype=dtypes, with_initial=st.booleans())
def test_offline_matches_naive(data, nb, nt, n, padding, dtype, with_initial):
    frame_shape, dim = _frame_and_dim(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 100, (nb, nt) + frame_shape).astype(dtype)
    init = rng.integers(0, 100, x.shape).astype(dtype) if with_initial else None
    done = rng.random((nb, nt)) < 0.3
    axis = None if dim is None else len(frame_shape) + dim
    y = frames.frames_stack_offline(x, done, n, dim, padding, 5, initial=init)
    ref = naive.stack_offline(x, done, n, axis, padding, 5, initial=init)
    np.testing.assert_array_equal(y, ref)
    # the same boundaries given as episode starts
    start = np.zeros_like(done)
    start[:, 1:] = done[:, :-1]
    y2 = frames.frames_stack_offline(x, start[..., None], n, dim, padding, 5, mask_is="reset", initial=init)
    np.testing.assert_array_equal(y2, ref)


@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("n", [2, 3, 12])
def test_offline_matches_torchrl_catframes_forward(torchrl, padding, n):
    import torch
    from tensordict import TensorDict
    from torchrl.envs.transforms import CatFrames

    rng = np.random.default_rng(1)
    nb, nt = 2, 9
    # TorchRL's ("next", key) fix-up only handles frames with one axis
    obs = rng.random((nb, nt, 3), dtype=np.float32)
    nxt = rng.random((nb, nt, 3), dtype=np.float32)
    done = np.zeros((nb, nt, 1), bool)
    done[0, 2] = done[0, 3] = done[1, 6] = True
    td = TensorDict({"obs": torch.from_numpy(obs), "next": {"obs": torch.from_numpy(nxt),
                                                         "done": torch.from_numpy(done)}}, [nb, nt])
    td.refine_names(None, "time")
    cf = CatFrames(N=n, dim=-1, in_keys=["obs", ("next", "obs")], padding=padding, padding_value=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cf(td)
    y = frames.frames_stack_offline(obs, done, n, -1, padding, -1.0)
    np.testing.assert_array_equal(y, res["obs"].numpy())
    y_next = frames.frames_stack_offline(nxt, done, n, -1, padding, -1.0, initial=obs)
    np.testing.assert_array_equal(y_next, res["next", "obs"].numpy())


def _naive_future(x, done, n, padding, value):
    """Windows of steps t .. t + n - 1 of t's episode, by a per-step Python loop."""
    nb, nt = done.shape
    out = np.empty((nb, nt, n) + x.shape[2:], x.dtype)
    mask = np.zeros((nb, nt, n), bool)
    for b in range(nb):
        for t in range(nt):
            e = t
            while e < nt - 1 and not done[b, e]:
                e += 1
            for j in range(n):
                if t + j <= e:
                    out[b, t, j] = x[b, t + j]
                else:
                    mask[b, t, j] = True
                    out[b, t, j] = x[b, e] if padding == "same" else value
    return out, mask


def _naive_past_mask(done, n):
    nb, nt = done.shape
    mask = np.zeros((nb, nt, n), bool)
    for b in range(nb):
        for t in range(nt):
            u = t
            while u > 0 and not done[b, u - 1]:
                u -= 1
            for j in range(n):
                mask[b, t, j] = t - n + 1 + j < u
    return mask


@SETTINGS
@given(data=st.data(), nb=st.integers(1, 3), nt=st.integers(1, 10), n=st.integers(1, 5),
       padding=st.sampled_from(["same", "constant"]), dtype=dtypes)
def test_offline_future_and_window_mask_match_naive(data, nb, nt, n, padding, dtype):
    frame_shape, dim = _frame_and_dim(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 100, (nb, nt) + frame_shape).astype(dtype)
    done = rng.random((nb, nt)) < 0.3
    ref, ref_mask = _naive_future(x, done, n, padding, 5)
    if dim is not None:  # the window axis joins the frame axis dim
        ref = np.concatenate([ref[:, :, j] for j in range(n)], axis=2 + len(frame_shape) + dim)
    y = frames.frames_stack_offline(x, done, n, dim, padding, 5, future=True)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(frames.frames_window_mask(done, n, future=True), ref_mask)
    np.testing.assert_array_equal(frames.frames_window_mask(done[..., None], n), _naive_past_mask(done, n))
    # the same boundaries given as episode starts
    start = np.zeros_like(done)
    start[:, 1:] = done[:, :-1]
    y2 = frames.frames_stack_offline(x, start, n, dim, padding, 5, mask_is="reset", future=True)
    np.testing.assert_array_equal(y2, ref)
    np.testing.assert_array_equal(frames.frames_window_mask(start, n, mask_is="reset", future=True), ref_mask)
    np.testing.assert_array_equal(frames.frames_window_mask(start, n, mask_is="reset"), _naive_past_mask(done, n))


@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("future", [False, True])
@pytest.mark.parametrize("n", [1, 3, 12])
def test_future_windows_and_mask_match_torchrl_catframes(torchrl, padding, future, n):
    import torch
    from tensordict import TensorDict
    from torchrl.envs.transforms import CatFrames

    rng = np.random.default_rng(3)
    nb, nt = 2, 9
    obs = rng.random((nb, nt, 2, 3), dtype=np.float32)
    done = np.zeros((nb, nt, 1), bool)
    done[0, 2] = done[0, 3] = done[1, 6] = True
    td = TensorDict({"obs": torch.from_numpy(obs), ("next", "done"): torch.from_numpy(done)}, [nb, nt])
    td.refine_names(None, "time")
    cf = CatFrames(N=n, dim=-2, in_keys=["obs"], padding=padding, padding_value=-1.0, future=future,
                   mask_key="pad")
    res = cf(td)
    y = frames.frames_stack_offline(obs, done, n, -2, padding, -1.0, future=future)
    np.testing.assert_array_equal(y, res["obs"].numpy())
    np.testing.assert_array_equal(frames.frames_window_mask(done, n, future=future), res["pad"].numpy())


def test_push_writes_into_strided_out_and_keeps_positions():
    buffer, pos = frames.frames_state((2,), 3, (2, 2), np.float32)
    frames.frames_reset(buffer, pos, np.ones((2, 2, 2), np.float32))
    big = np.zeros((2, 3, 2, 2, 2), np.float32)
    out = big[..., 0]
    frames.frames_push(buffer, pos, np.full((2, 2, 2), 2, np.float32), out=out)
    assert pos.tolist() == [1, 1]
    np.testing.assert_array_equal(out[:, :, 0, 0], [[1, 1, 2], [1, 1, 2]])
    frames.frames_reset(buffer, pos, np.full((2, 2, 2), 5, np.float32), mask=np.array([False, True]))
    assert pos.tolist() == [1, 1]
    np.testing.assert_array_equal(frames.frames_stack(buffer, pos)[:, :, 0, 0], [[1, 1, 2], [5, 5, 5]])


def test_push_from_next_slot_equals_push_of_frames():
    from numbarl.core.pixels import gray_resize

    rng = np.random.default_rng(2)
    a_buf, a_pos = frames.frames_state((3,), 4, (1, 8, 8), np.float32)
    b_buf, b_pos = frames.frames_state((3,), 4, (1, 8, 8), np.float32)
    for step in range(7):
        x = rng.integers(0, 256, (3, 21, 16, 3), dtype=np.uint8)
        if step in (0, 4):
            mask = None if step == 0 else np.array([False, True, False])
            frames.frames_reset(a_buf, a_pos, gray_resize(x, 8, 8), mask=mask)
            frames.frames_reset(b_buf, b_pos, gray_resize(x, 8, 8), mask=mask)
            continue
        a = frames.frames_push(a_buf, a_pos, gray_resize(x, 8, 8), dim=-3)
        gray_resize(x, 8, 8, out=frames.frames_next_slot(b_buf, b_pos))
        b = frames.frames_push(b_buf, b_pos, None, dim=-3)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (3, 4, 8, 8)
    with pytest.raises(ValueError, match=r"frames_next_slot requires equal positions in pos, got 0 to 1"):
        frames.frames_next_slot(a_buf, np.array([0, 1, 0]))


def test_bad_arguments():
    buffer, pos = frames.frames_state((2,), 3, (4,), np.float32)
    f = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match=r"frames_push requires pos of dtype int64, got int32"):
        frames.frames_push(buffer, pos.astype(np.int32), f)
    with pytest.raises(TypeError, match=r"frames_push requires frame of the buffer's dtype float32, got float64"):
        frames.frames_push(buffer, pos, f.astype(np.float64))
    with pytest.raises(ValueError, match=r"frames_push requires frame of shape \(2, 4\)"):
        frames.frames_push(buffer, pos, f[:, :3])
    with pytest.raises(ValueError, match=r"frames_push requires -1 <= dim <= -1 .* got -2"):
        frames.frames_push(buffer, pos, f, dim=-2)
    with pytest.raises(ValueError, match=r"frames_push requires 0 <= pos < N = 3, got pos = 3 at flat index 1"):
        frames.frames_push(buffer, np.array([0, 3]), f)
    with pytest.raises(ValueError, match=r"frames_reset requires padding 'same' or 'constant', got 'zeros'"):
        frames.frames_reset(buffer, pos, f, padding="zeros")
    with pytest.raises(TypeError, match=r"frames_reset requires mask of dtype bool, got int64"):
        frames.frames_reset(buffer, pos, f, mask=np.array([1, 0]))
    with pytest.raises(ValueError, match=r"frames_push requires buffer of shape \[\*batch, N, \*frame\]"):
        frames.frames_push(buffer[0], pos, f)
    with pytest.raises(ValueError, match=r"frames_stack_offline requires N >= 1, got 0"):
        frames.frames_stack_offline(np.zeros((1, 2, 3)), np.zeros((1, 2), bool), 0)
    with pytest.raises(ValueError, match=r"frames_stack_offline requires done_or_reset_mask of shape \(1, 2\)"):
        frames.frames_stack_offline(np.zeros((1, 2, 3)), np.zeros((2, 1), bool), 2)
    with pytest.raises(ValueError, match=r"frames_stack_offline requires mask_is 'done' or 'reset', got 'is_init'"):
        frames.frames_stack_offline(np.zeros((1, 2, 3)), np.zeros((1, 2), bool), 2, mask_is="is_init")
    with pytest.raises(TypeError, match=r"frames_stack_offline requires x to be a numpy.ndarray, got list"):
        frames.frames_stack_offline([[1.0]], np.zeros((1, 1), bool), 2)
    with pytest.raises(ValueError, match=r"frames_stack_offline requires initial=None with future=True"):
        frames.frames_stack_offline(np.zeros((1, 2, 3)), np.zeros((1, 2), bool), 2, initial=np.zeros((1, 2, 3)),
                                    future=True)
    with pytest.raises(TypeError, match=r"frames_stack_offline requires future to be a bool, got str"):
        frames.frames_stack_offline(np.zeros((1, 2, 3)), np.zeros((1, 2), bool), 2, future="yes")
    with pytest.raises(ValueError, match=r"frames_window_mask requires done_or_reset_mask of shape \(1, 2\) or "
                                         r"\(1, 2, 1\), got \(1, 2, 3\)"):
        frames.frames_window_mask(np.zeros((1, 2, 3), bool), 2)
    with pytest.raises(TypeError, match=r"frames_window_mask requires done_or_reset_mask of dtype bool, got int64"):
        frames.frames_window_mask(np.zeros((1, 2), np.int64), 2)
    with pytest.raises(TypeError, match=r"frames_window_mask requires out of dtype bool, got float32"):
        frames.frames_window_mask(np.zeros((1, 2), bool), 2, out=np.zeros((1, 2, 2), np.float32))
