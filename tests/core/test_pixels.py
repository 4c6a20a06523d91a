"""Tests of numbarl.core.pixels against naive references, PyTorch, TorchRL and OpenCV."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_pixels as naive
from numbarl.core import pixels

torch = pytest.importorskip("torch")
F = torch.nn.functional

SETTINGS = settings(max_examples=40, deadline=None)
dtypes = st.sampled_from([np.uint8, np.float32])
batch_shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)
sizes = st.integers(1, 40)


def _image(rng, shape, dtype):
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.random(shape, dtype=np.float32)


def _interpolate(x, h, w, mode, antialias):
    kw = {"align_corners": False} if mode == "bilinear" else {}
    t = torch.from_numpy(np.ascontiguousarray(x))
    lead = t.shape[:-2]
    t4 = t.reshape(-1, 1, *t.shape[-2:])
    y = F.interpolate(t4, size=(h, w), mode=mode, antialias=antialias, **kw)
    return y.reshape(*lead, h, w).numpy()


def test_core_pixels_and_frames_do_not_import_torch():
    code = (
        "import sys; import numbarl.core.pixels, numbarl.core.frames; "
        "assert 'torch' not in sys.modules and 'tensordict' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ to_tensor_image
@SETTINGS
@given(batch=batch_shapes, h=sizes, w=sizes, c=st.integers(1, 4), dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_to_tensor_image_bit_identical_to_torch(batch, h, w, c, dtype, seed):
    x = _image(np.random.default_rng(seed), batch + (h, w, c), dtype)
    y = pixels.to_tensor_image(x)
    t = torch.from_numpy(x)
    ref = t.permute(*range(t.ndim - 3), -1, -3, -2).float().div(255).numpy()
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(y, naive.to_tensor_image(x))


def test_to_tensor_image_every_uint8_value_matches_torch():
    x = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, -1)
    ref = torch.from_numpy(x).permute(2, 0, 1).div(255).numpy()
    np.testing.assert_array_equal(pixels.to_tensor_image(x), ref)


def test_to_tensor_image_options():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pixels.to_tensor_image(x, from_int=False), naive.to_tensor_image(x, scale=False))
    np.testing.assert_array_equal(pixels.to_tensor_image(x, from_int=None), naive.to_tensor_image(x))
    xf = x.astype(np.float32)
    np.testing.assert_array_equal(pixels.to_tensor_image(xf, from_int=None), naive.to_tensor_image(xf, scale=False))
    y64 = pixels.to_tensor_image(x, dtype=np.float64)
    ref64 = torch.from_numpy(x).permute(0, 3, 1, 2).div(255).to(torch.float64).numpy()
    assert y64.dtype == np.float64
    np.testing.assert_array_equal(y64, ref64)
    out = np.empty((2, 3, 5, 6), np.float32)
    assert pixels.to_tensor_image(x, out=out) is out
    np.testing.assert_array_equal(out, naive.to_tensor_image(x))


def test_to_tensor_image_strided_input_and_output():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 9, 8, 3), dtype=np.uint8)[::2, ::2]
    big = np.zeros((2, 3, 5, 8, 2), np.float32)
    out = big[..., 0]  # not viewable as [B, ...] without a copy
    pixels.to_tensor_image(x, out=out)
    np.testing.assert_array_equal(out, naive.to_tensor_image(x))


# ----------------------------------------------------------------- grayscale
@SETTINGS
@given(batch=batch_shapes, h=sizes, w=sizes, dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_grayscale_bit_identical_to_torchrl_functional(batch, h, w, dtype, seed):
    from torchrl.envs.transforms.functional import rgb_to_grayscale

    x = _image(np.random.default_rng(seed), batch + (3, h, w), dtype)
    y = pixels.grayscale(x)
    assert y.shape == batch + (1, h, w) and y.dtype == x.dtype
    np.testing.assert_array_equal(y, naive.grayscale(x))
    if x.size:
        np.testing.assert_array_equal(y, rgb_to_grayscale(torch.from_numpy(x)).numpy())


def test_grayscale_uint8_truncates():
    white = np.full((3, 1, 1), 255, np.uint8)
    assert pixels.grayscale(white).item() == 254  # 0.9999 * 255 = 254.97, truncated


def test_grayscale_out_and_strided_input():
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 6, 10), dtype=np.float32)[..., ::2]
    out = np.empty((2, 1, 6, 5), np.float32)
    assert pixels.grayscale(x, out=out) is out
    np.testing.assert_array_equal(out, naive.grayscale(x))


# -------------------------------------------------------------------- resize
resize_modes = st.sampled_from([("bilinear", False), ("bilinear", True), ("nearest", False)])


@settings(max_examples=80, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
    hw_in=st.tuples(sizes, sizes),
    hw_out=st.tuples(sizes, sizes),
    mode=resize_modes,
    dtype=dtypes,
    seed=st.integers(0, 2**32 - 1),
)
def test_resize_matches_torch_interpolate(batch, hw_in, hw_out, mode, dtype, seed):
    (n_h, n_w), (h, w), (mode, aa) = hw_in, hw_out, mode
    x = _image(np.random.default_rng(seed), batch + (n_h, n_w), dtype)
    y = pixels.resize(x, h, w, mode=mode, antialias=aa)
    assert y.shape == batch + (h, w) and y.dtype == x.dtype
    if aa and dtype == np.float32 and w == 1 and h != n_h:
        return  # PyTorch's float antialias kernel is wrong for width 1: see the test below
    ref = _interpolate(x, h, w, mode, aa)
    if mode == "nearest":
        np.testing.assert_array_equal(y, ref)
    elif dtype == np.uint8:
        assert np.abs(y.astype(np.int16) - ref.astype(np.int16)).max() <= 1
    else:
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


@SETTINGS
@given(hw_in=st.tuples(sizes, sizes), hw_out=st.tuples(sizes, sizes), mode=resize_modes, seed=st.integers(0, 2**32 - 1))
def test_resize_matches_naive_reference(hw_in, hw_out, mode, seed):
    (n_h, n_w), (h, w), (mode, aa) = hw_in, hw_out, mode
    x = np.random.default_rng(seed).random((2, n_h, n_w), dtype=np.float32)
    y = pixels.resize(x, h, w, mode=mode, antialias=aa)
    np.testing.assert_allclose(y, naive.resize(x, h, w, mode, aa), rtol=0, atol=1e-5)


def test_resize_antialias_width_one_follows_the_definition():
    # torch's float antialias path returns the first output row everywhere when
    # the output width is 1; its uint8 path and the naive reference agree with us
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 4, 3) * 20
    y = pixels.resize(x, 2, 1, antialias=True)
    np.testing.assert_allclose(y[0, 0, :, 0], naive.resize(x, 2, 1, "bilinear", True)[0, 0, :, 0], atol=1e-5)
    ref_u8 = _interpolate(x.astype(np.uint8), 2, 1, "bilinear", True)
    assert np.abs(np.rint(y).astype(int) - ref_u8.astype(int)).max() <= 1


@SETTINGS
@given(hw_in=st.tuples(st.integers(2, 60), st.integers(2, 60)),
       hw_out=st.tuples(st.integers(2, 60), st.integers(2, 60)), dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_resize_bilinear_matches_opencv_linear(hw_in, hw_out, dtype, seed):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is an optional peer for pixel comparisons")
    (n_h, n_w), (h, w) = hw_in, hw_out
    x = _image(np.random.default_rng(seed), (n_h, n_w), dtype)
    ref = cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)
    y = pixels.resize(x[None], h, w)[0]
    if dtype == np.uint8:
        assert np.abs(y.astype(np.int16) - ref.astype(np.int16)).max() <= 1
    else:
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


def test_resize_atari_sizes_against_torch():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (4, 3, 210, 160), dtype=np.uint8)
    for aa in (False, True):
        y = pixels.resize(x, 84, 84, antialias=aa)
        assert np.abs(y.astype(int) - _interpolate(x, 84, 84, "bilinear", aa).astype(int)).max() <= 1
        xf = x.astype(np.float32) / 255
        np.testing.assert_allclose(pixels.resize(xf, 84, 84, antialias=aa), _interpolate(xf, 84, 84, "bilinear", aa),
                                   atol=1e-5, rtol=0)


def test_resize_out_strided_and_cache():
    rng = np.random.default_rng(4)
    x = rng.random((3, 2, 20, 30), dtype=np.float32)[:, :, ::2]
    big = np.zeros((3, 2, 7, 5, 2), np.float32)
    out = big[..., 1]
    assert pixels.resize(x, 7, 5, out=out) is out
    np.testing.assert_allclose(out, _interpolate(x, 7, 5, "bilinear", False), atol=1e-5)
    assert pixels._axis_table(10, 7, "bilinear", True) is pixels._axis_table(10, 7, "bilinear", True)
    assert not pixels._axis_table(10, 7, "bilinear", True)[2].flags.writeable


def test_resize_empty_batch():
    assert pixels.resize(np.zeros((0, 3, 5, 5), np.uint8), 2, 2).shape == (0, 3, 2, 2)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"h": -3}, ValueError, r"resize requires h > 0, got -3"),
        ({"w": 0}, ValueError, r"resize requires w > 0, got 0"),
        ({"h": 2.5}, TypeError, r"resize requires h to be an int, got float"),
        ({"mode": "bicubic"}, ValueError, r"resize requires mode 'bilinear' or 'nearest', got 'bicubic'"),
        ({"mode": "nearest", "antialias": True}, ValueError, r"antialias=True only with mode='bilinear'"),
        ({"antialias": 1}, TypeError, r"resize requires antialias to be a bool"),
        ({"out": np.empty((1, 3, 2, 2), np.float32)}, TypeError, r"requires out of dtype uint8, got float32"),
        ({"out": np.empty((1, 3, 2, 3), np.uint8)}, ValueError, r"requires out of shape \(1, 3, 2, 2\)"),
    ],
)
def test_resize_bad_arguments(kwargs, exc, match):
    args = {"h": 2, "w": 2}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        pixels.resize(np.zeros((1, 3, 4, 4), np.uint8), **args)


def test_bad_arrays():
    with pytest.raises(TypeError, match=r"resize requires x to be a numpy.ndarray, got list"):
        pixels.resize([[1, 2]], 2, 2)
    with pytest.raises(TypeError, match=r"resize requires x of dtype uint8 or float32, got float64"):
        pixels.resize(np.zeros((2, 2)), 2, 2)
    with pytest.raises(ValueError, match=r"resize requires x with at least 2 dimensions"):
        pixels.resize(np.zeros(4, np.uint8), 2, 2)
    with pytest.raises(ValueError, match=r"resize requires a non-empty image, got H=0"):
        pixels.resize(np.zeros((1, 0, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match=r"grayscale requires 3 channels at dim -3 of x, got 4"):
        pixels.grayscale(np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"grayscale requires x with at least 3 dimensions"):
        pixels.grayscale(np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"to_tensor_image requires x with at least 3 dimensions"):
        pixels.to_tensor_image(np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"to_tensor_image requires dtype float32 or float64, got int32"):
        pixels.to_tensor_image(np.zeros((1, 1, 3), np.uint8), dtype=np.int32)
    with pytest.raises(ValueError, match=r"requires out not to overlap x"):
        x = np.zeros((2, 3, 4, 4), np.float32)
        pixels.grayscale(x, out=x[:, :1])
    with pytest.raises(ValueError, match=r"gray_resize requires 3 channels at dim -1 of x, got 4"):
        pixels.gray_resize(np.zeros((5, 5, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match=r"gray_resize requires crop <= \(h, w\) = \(4, 4\), got \(5, 2\)"):
        pixels.gray_resize(np.zeros((5, 5, 3), np.uint8), 4, 4, crop=(5, 2))
    with pytest.raises(ValueError, match=r"crop requires h > 0, got 0"):
        pixels.crop(np.zeros((5, 5), np.uint8), 0, 0, 0, 2)
    with pytest.raises(ValueError, match=r"permute_last requires dims to be a permutation of range\(3\)"):
        pixels.permute_last(np.zeros((2, 2, 2)), (0, 0, 1))


# --------------------------------------------------------------- gray_resize
@SETTINGS
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    hw_in=st.tuples(sizes, sizes),
    hw_out=st.tuples(sizes, sizes),
    mode=resize_modes,
    dtype=dtypes,
    seed=st.integers(0, 2**32 - 1),
)
def test_gray_resize_matches_unfused_sequence(batch, hw_in, hw_out, mode, dtype, seed):
    (n_h, n_w), (h, w), (mode, aa) = hw_in, hw_out, mode
    x = _image(np.random.default_rng(seed), batch + (n_h, n_w, 3), dtype)
    y = pixels.gray_resize(x, h, w, aa, mode=mode)
    seq = pixels.resize(pixels.grayscale(pixels.to_tensor_image(x, from_int=None)), h, w, mode=mode, antialias=aa)
    assert y.shape == batch + (1, h, w) and y.dtype == np.float32
    np.testing.assert_array_equal(y, seq)  # bit for bit, uint8 included
    y_raw = pixels.gray_resize(x, h, w, aa, mode=mode, from_int=False)
    seq_raw = pixels.resize(pixels.grayscale(pixels.to_tensor_image(x, from_int=False)), h, w, mode=mode, antialias=aa)
    np.testing.assert_array_equal(y_raw, seq_raw)


@SETTINGS
@given(hw_out=st.tuples(st.integers(2, 40), st.integers(2, 40)), data=st.data(), aa=st.booleans())
def test_gray_resize_crop_equals_center_crop(hw_out, data, aa):
    h, w = hw_out
    ch, cw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    x = np.random.default_rng(h * 100 + w).integers(0, 256, (2, 30, 25, 3), dtype=np.uint8)
    y = pixels.gray_resize(x, h, w, aa, crop=(ch, cw))
    np.testing.assert_array_equal(y, pixels.center_crop(pixels.gray_resize(x, h, w, aa), ch, cw))


@pytest.fixture(scope="module")
def pong_frames():
    gym = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for _ in range(11):
        obs, *_ = env.step(env.action_space.sample())
        frames.append(obs)
    env.close()
    return np.stack(frames)  # [12, 210, 160, 3] uint8


@pytest.mark.parametrize("aa", [False, True])
def test_gray_resize_on_pong_frames(pong_frames, aa):
    from torchrl.envs.transforms.functional import rgb_to_grayscale

    x = pong_frames.reshape(3, 4, 210, 160, 3)
    y = pixels.gray_resize(x, 84, 84, aa)
    seq = pixels.resize(pixels.grayscale(pixels.to_tensor_image(x)), 84, 84, antialias=aa)
    np.testing.assert_array_equal(y, seq)
    t = torch.from_numpy(x).permute(0, 1, 4, 2, 3).div(255)
    ref = _interpolate(rgb_to_grayscale(t).numpy(), 84, 84, "bilinear", aa)
    np.testing.assert_allclose(y, ref, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- crop
@SETTINGS
@given(batch=batch_shapes, hw_in=st.tuples(sizes, sizes), hw=st.tuples(sizes, sizes),
       tl=st.tuples(st.integers(-10, 45), st.integers(-10, 45)), dtype=dtypes)
def test_crop_matches_naive(batch, hw_in, hw, tl, dtype):
    x = _image(np.random.default_rng(0), batch + hw_in, dtype)
    np.testing.assert_array_equal(pixels.crop(x, tl[0], tl[1], *hw), naive.crop(x, tl[0], tl[1], *hw))


@SETTINGS
@given(batch=batch_shapes, hw_in=st.tuples(sizes, sizes), hw=st.tuples(sizes, sizes), dtype=dtypes)
def test_center_crop_matches_torchvision_recipe(batch, hw_in, hw, dtype):
    x = _image(np.random.default_rng(1), batch + hw_in, dtype)
    y = pixels.center_crop(x, *hw)
    assert y.shape == batch + hw
    np.testing.assert_array_equal(y, naive.center_crop(x, *hw))


def test_center_crop_rounds_half_to_even():
    x = np.arange(7, dtype=np.uint8).reshape(1, 7)
    assert pixels.center_crop(x, 1, 2).tolist() == [[2, 3]]  # round(2.5) == 2
    x = np.arange(5, dtype=np.uint8).reshape(1, 5)
    assert pixels.center_crop(x, 1, 2).tolist() == [[2, 3]]  # round(1.5) == 2


# ------------------------------------------------------------------- permute
@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5), data=st.data(),
       dtype=st.sampled_from([np.uint8, np.float32, np.int64, np.bool_]))
def test_permute_last_matches_transpose(shape, data, dtype):
    k = data.draw(st.integers(1, len(shape)))
    dims = data.draw(st.permutations(range(k)))
    if data.draw(st.booleans()):
        dims = [d - k for d in dims]
    x = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    y = pixels.permute_last(x, dims)
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(y, naive.permute_last(x, dims))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("shape, dims", [((2, 5, 7, 3), (2, 0, 1)), ((2, 5, 7, 4), (-1, -3, -2)),
                                         ((2, 3, 5, 7), (1, 2, 0)), ((4, 5, 6), (1, 2, 0)), ((3, 5), (1, 0))])
def test_permute_last_interleave_paths(shape, dims, dtype):
    x = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    np.testing.assert_array_equal(pixels.permute_last(x, dims), naive.permute_last(x, dims))


# ------------------------------------------------------------ parallel paths
def test_parallel_kernels_agree_with_serial(monkeypatch):
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (3, 21, 16, 3), dtype=np.uint8)
    planes = rng.integers(0, 256, (3, 21, 16), dtype=np.uint8)
    serial = (pixels.gray_resize(frames, 8, 8, True), pixels.resize(planes, 8, 9), pixels.to_tensor_image(frames),
              pixels.resize(planes.astype(np.float32), 30, 7))
    monkeypatch.setattr(pixels, "_PARALLEL_MIN_WORK", 0)
    par = (pixels.gray_resize(frames, 8, 8, True), pixels.resize(planes, 8, 9), pixels.to_tensor_image(frames),
           pixels.resize(planes.astype(np.float32), 30, 7))
    for a, b in zip(serial, par):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------- gray_resize is exact for every input
def _unfused_gray_resize(x, h, w, antialias, mode, crop, from_int):
    scale = from_int if from_int is not None else x.dtype == np.uint8
    y = pixels.resize(pixels.grayscale(pixels.to_tensor_image(x, from_int=scale)), h, w, mode=mode,
                      antialias=antialias)
    return y if crop is None else pixels.center_crop(y, *crop)


def test_division_free_byte_scaling_is_exact():
    assert pixels._exact_scale_holds()


@settings(max_examples=40, deadline=None)
@given(batch=st.sampled_from([(), (1,), (3,), (2, 2)]), hw_in=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       hw_out=st.tuples(st.integers(1, 30), st.integers(1, 30)), mode=st.sampled_from(["bilinear", "nearest"]),
       antialias=st.booleans(), dtype=st.sampled_from([np.uint8, np.float32]),
       from_int=st.sampled_from([None, True, False]), crop=st.booleans(), seed=st.integers(0, 2**16))
def test_gray_resize_equals_unfused_sequence_bit_for_bit(batch, hw_in, hw_out, mode, antialias, dtype, from_int, crop, seed):
    antialias = antialias and mode == "bilinear"
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, batch + hw_in + (3,)).astype(dtype)
    box = (max(1, hw_out[0] - 1), max(1, hw_out[1] - 2)) if crop else None
    y = pixels.gray_resize(x, *hw_out, antialias, mode=mode, crop=box, from_int=from_int)
    assert y.dtype == np.float32
    assert np.array_equal(y, _unfused_gray_resize(x, *hw_out, antialias, mode, box, from_int))


def test_gray_resize_atari_frames_into_strided_out():
    x = np.random.default_rng(0).integers(0, 256, (4, 210, 160, 3), dtype=np.uint8)
    ring = np.zeros((4, 3, 1, 84, 84), np.float32)
    pixels.gray_resize(x, 84, 84, True, out=ring[:, 1])
    assert np.array_equal(ring[:, 1], _unfused_gray_resize(x, 84, 84, True, "bilinear", None, None))
    assert not ring[:, 0].any() and not ring[:, 2].any()
