"""CUDA pixel kernels against the CPU ones, under the Numba CUDA simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import assert_close, run_doctests, skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from numba import cuda  # noqa: E402
from numbarl.core import pixels as cpu  # noqa: E402
from numbarl.core.cuda import pixels as gpu  # noqa: E402

pytestmark = pytest.mark.cudasim
SETTINGS = settings(max_examples=25, deadline=None)


def _pixels(rng, shape, dtype):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return (rng.random(shape, dtype=np.float32) * 255).astype(np.float32)


@st.composite
def images(draw, core, max_side=6):
    """``[*batch, *core]`` pixels; ``core`` holds ints or None for a random side."""
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    sides = tuple(d if d is not None else draw(st.integers(1, max_side)) for d in core)
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return _pixels(rng, batch + sides, dtype)


@SETTINGS
@given(x=images((None, None, None)), dtype=st.sampled_from([np.float32, np.float64]),
       from_int=st.sampled_from([True, False, None]))
def test_to_tensor_image_matches_cpu(x, dtype, from_int):
    want = cpu.to_tensor_image(x, dtype=dtype, from_int=from_int)
    got = gpu.to_tensor_image(cuda.to_device(x), dtype=dtype, from_int=from_int).copy_to_host()
    np.testing.assert_array_equal(got, want)  # bit-identical
    assert got.dtype == want.dtype


@SETTINGS
@given(x=images((3, None, None)))
def test_grayscale_matches_cpu(x):
    want = cpu.grayscale(x)
    got = gpu.grayscale(cuda.to_device(x)).copy_to_host()
    assert_close(got, want)
    np.testing.assert_array_equal(got, want)  # each float32 operation rounded as on the CPU


@settings(max_examples=40, deadline=None)
@given(x=images((None, None), max_side=9), h=st.integers(1, 9), w=st.integers(1, 9),
       kind=st.sampled_from(["bilinear", "antialias", "nearest"]))
def test_resize_matches_cpu(x, h, w, kind):
    mode = "nearest" if kind == "nearest" else "bilinear"
    antialias = kind == "antialias"
    want = cpu.resize(x, h, w, mode=mode, antialias=antialias)
    got = gpu.resize(cuda.to_device(x), h, w, mode=mode, antialias=antialias).copy_to_host()
    assert_close(got, want)


@SETTINGS
@given(x=images((None, None, 3), max_side=8), h=st.integers(1, 6), w=st.integers(1, 6),
       kind=st.sampled_from(["bilinear", "antialias", "nearest"]), from_int=st.sampled_from([True, False, None]),
       crop=st.booleans())
def test_gray_resize_matches_cpu(x, h, w, kind, from_int, crop):
    mode = "nearest" if kind == "nearest" else "bilinear"
    kwargs = dict(mode=mode, antialias=kind == "antialias", from_int=from_int)
    if crop:
        kwargs["crop"] = (max(1, h - 1), max(1, w - 2))
    want = cpu.gray_resize(x, h, w, **kwargs)
    got = gpu.gray_resize(cuda.to_device(x), h, w, **kwargs).copy_to_host()
    assert_close(got, want)


@SETTINGS
@given(x=images((None, None)), top=st.integers(-3, 7), left=st.integers(-3, 7), h=st.integers(1, 8),
       w=st.integers(1, 8))
def test_crop_and_center_crop_match_cpu(x, top, left, h, w):
    d = cuda.to_device(x)
    np.testing.assert_array_equal(gpu.crop(d, top, left, h, w).copy_to_host(), cpu.crop(x, top, left, h, w))
    np.testing.assert_array_equal(gpu.center_crop(d, h, w).copy_to_host(), cpu.center_crop(x, h, w))


@SETTINGS
@given(data=st.data(), k=st.integers(1, 4), lead=st.integers(0, 2),
       dtype=st.sampled_from([np.uint8, np.float32, np.int64, np.bool_]), negative=st.booleans())
def test_permute_last_matches_cpu(data, k, lead, dtype, negative):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=lead + k, max_size=lead + k)))
    dims = data.draw(st.permutations(range(k)))
    if negative:
        dims = [d - k for d in dims]
    x = (np.arange(int(np.prod(shape))).reshape(shape) % 7).astype(dtype)
    want = cpu.permute_last(x, dims)
    got = gpu.permute_last(cuda.to_device(x), dims).copy_to_host()
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_atari_sized_pipeline_matches_cpu():
    # one 42x32 RGB frame (a fifth of an Atari screen) through the unfused chain and the fused kernel
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 42, 32, 3), dtype=np.uint8)
    d = cuda.to_device(x)
    chw = gpu.to_tensor_image(d)
    gray = gpu.grayscale(chw)
    small = gpu.resize(gray, 17, 17, antialias=True).copy_to_host()
    want = cpu.resize(cpu.grayscale(cpu.to_tensor_image(x)), 17, 17, antialias=True)
    np.testing.assert_array_equal(small, want)
    fused = gpu.gray_resize(d, 17, 17, antialias=True, crop=(15, 15)).copy_to_host()
    np.testing.assert_array_equal(fused, cpu.gray_resize(x, 17, 17, antialias=True, crop=(15, 15)))


def test_preallocated_out_is_written_and_returned():
    rng = np.random.default_rng(4)
    x = _pixels(rng, (2, 3, 5, 4), np.uint8)
    d = cuda.to_device(x)
    out = cuda.device_array((2, 1, 5, 4), np.uint8)
    assert gpu.grayscale(d, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), cpu.grayscale(x))
    out = cuda.device_array((2, 3, 3, 3), np.uint8)
    assert gpu.resize(d, 3, 3, out=out) is out
    assert_close(out.copy_to_host(), cpu.resize(x, 3, 3))


def test_tables_are_copied_to_the_device_once():
    gpu._DEVICE_TABLES.clear()
    x = cuda.to_device(np.zeros((1, 6, 5), np.float32))
    gpu.resize(x, 3, 2, antialias=True)
    tables = dict(gpu._DEVICE_TABLES)
    assert len(tables) == 2
    gpu.resize(x, 3, 2, antialias=True)
    assert all(gpu._DEVICE_TABLES[k] is v for k, v in tables.items())
    gpu.resize(x, 3, 2)  # another (mode, antialias): new tables
    assert len(gpu._DEVICE_TABLES) == 4


def test_empty_batch():
    x = cuda.to_device(np.zeros((0, 4, 4, 3), np.uint8))
    assert gpu.to_tensor_image(x).shape == (0, 3, 4, 4)
    assert gpu.gray_resize(x, 2, 2).shape == (0, 1, 2, 2)
    assert gpu.resize(cuda.to_device(np.zeros((0, 4, 4), np.float32)), 2, 3).shape == (0, 2, 3)


def _f32(*shape):
    return cuda.to_device(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: gpu.grayscale(np.zeros((3, 2, 2), np.float32)), TypeError,
         r"grayscale \(CUDA\) requires x to be a CUDA device array .* got ndarray"),
        (lambda: gpu.grayscale(cuda.to_device(np.zeros((3, 2, 2), np.int16))), TypeError,
         r"x of dtype uint8 or float32, got int16"),
        (lambda: gpu.grayscale(_f32(4, 2, 2)), ValueError, r"3 channels at dim -3 of x, got 4"),
        (lambda: gpu.to_tensor_image(_f32(2, 2)), ValueError, r"at least 3 dimensions \[..., H, W, C\]"),
        (lambda: gpu.to_tensor_image(_f32(2, 2, 3), dtype=np.int32), ValueError,
         r"dtype float32 or float64, got int32"),
        (lambda: gpu.resize(_f32(1, 4, 4), 0, 2), ValueError, r"resize requires h > 0, got 0"),
        (lambda: gpu.resize(_f32(1, 4, 4), 2, 2, mode="cubic"), ValueError,
         r"mode 'bilinear' or 'nearest', got 'cubic'"),
        (lambda: gpu.resize(_f32(1, 4, 4), 2, 2, mode="nearest", antialias=True), ValueError,
         r"antialias=True only with mode='bilinear'"),
        (lambda: gpu.resize(_f32(1, 4, 4), 2, 2, out=_f32(1, 2, 3)), ValueError,
         r"out of shape \(1, 2, 2\), got \(1, 2, 3\)"),
        (lambda: gpu.resize(_f32(1, 4, 4), 2, 2, out=cuda.to_device(np.zeros((1, 2, 2), np.uint8))), TypeError,
         r"out of dtype float32, got uint8"),
        (lambda: gpu.resize(_f32(1, 4, 4), 2, 2, out=np.zeros((1, 2, 2), np.float32)), TypeError,
         r"out to be a CUDA device array"),
        (lambda: gpu.resize(_f32(1, 4, 8)[:, :, ::2], 2, 2), ValueError, r"C-contiguous x"),
        (lambda: gpu.gray_resize(_f32(4, 4, 3), 4, 4, crop=(5, 2)), ValueError,
         r"crop <= \(h, w\) = \(4, 4\), got \(5, 2\)"),
        (lambda: gpu.crop(_f32(1, 4, 4), 0, 0, 2, -1), ValueError, r"crop requires w > 0, got -1"),
        (lambda: gpu.permute_last(_f32(2, 3), (0, 0)), ValueError, r"permutation of range\(2\)"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_overlapping_x_is_refused():
    flat = cuda.to_device(np.zeros(128, np.float32))
    x = flat[:96].reshape(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"out not to overlap x"):
        gpu.grayscale(x, out=flat[64:96].reshape(2, 1, 4, 4))
    gpu.grayscale(x, out=flat[96:].reshape(2, 1, 4, 4))  # adjacent, not overlapping


def test_doctests():
    run_doctests(gpu)


@pytest.mark.parametrize("shape", [(3, 10, 12, 3), (2, 9, 70, 3)])
def test_gray_resize_row_kernel_and_wide_fallback_equal_cpu(shape):
    # 12 source columns: more than a row block's threads; 70: wider than the row kernel's shared row
    x = np.random.default_rng(shape[2]).integers(0, 256, shape, dtype=np.uint8)
    # 35 output columns: with few live threads and wide antialias filters the simulator's block
    # manager starves them of the GIL (a 70 -> 7 antialiased resize took 600 s)
    for antialias in (False, True):
        out = cuda.to_device(np.full((shape[0], 1, 5, 35), np.nan, np.float32))
        gpu.gray_resize(cuda.to_device(x), 5, 35, antialias=antialias, out=out)
        np.testing.assert_array_equal(out.copy_to_host(), cpu.gray_resize(x, 5, 35, antialias=antialias))
    assert (shape[2] > gpu.GR_MAX_W) == (shape[2] == 70)


@pytest.mark.parametrize("shape", [(3, 2, 10, 12), (2, 9, 70)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_resize_row_kernel_and_wide_fallback_equal_cpu(shape, dtype):
    rng = np.random.default_rng(shape[-1])
    x = rng.integers(0, 256, shape).astype(dtype)
    for antialias in (False, True):  # 35 output columns, as in the gray_resize test above
        out = cuda.to_device(np.zeros(shape[:-2] + (5, 35), dtype) + (7 if dtype == np.uint8 else np.nan))
        gpu.resize(cuda.to_device(x), 5, 35, antialias=antialias, out=out)
        np.testing.assert_array_equal(out.copy_to_host(), cpu.resize(x, 5, 35, antialias=antialias))


# ------------------------------------------------------------- uint8 chain
@SETTINGS
@given(data=st.data(), h=st.integers(1, 6), w=st.integers(1, 6),
       kind=st.sampled_from(["bilinear", "antialias", "nearest"]), crop=st.booleans())
def test_uint8_gray_resize_matches_cpu_exactly(data, h, w, kind, crop):
    x = _pixels(np.random.default_rng(data.draw(st.integers(0, 2**16))),
                tuple(data.draw(st.lists(st.integers(1, 2), max_size=2))) + (data.draw(st.integers(1, 8)),
                                                                             data.draw(st.integers(1, 8)), 3), np.uint8)
    kwargs = dict(mode="nearest" if kind == "nearest" else "bilinear", antialias=kind == "antialias",
                  from_int=False, dtype=np.uint8)
    if crop:
        kwargs["crop"] = (max(1, h - 1), max(1, w - 2))
    want = cpu.gray_resize(x, h, w, **kwargs)
    got = gpu.gray_resize(cuda.to_device(x), h, w, **kwargs).copy_to_host()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 10, 12, 3), (1, 3, 70, 3)])
def test_uint8_gray_resize_row_kernel_and_wide_fallback_equal_cpu(shape):
    x = np.random.default_rng(shape[2]).integers(0, 256, shape, dtype=np.uint8)
    out = cuda.to_device(np.full((shape[0], 1, 3, 35), 7, np.uint8))
    gpu.gray_resize(cuda.to_device(x), 3, 35, antialias=True, out=out, from_int=False, dtype=np.uint8)
    want = cpu.gray_resize(x, 3, 35, antialias=True, from_int=False, dtype=np.uint8)
    np.testing.assert_array_equal(out.copy_to_host(), want)


def test_uint8_resize_rounds_ties_half_to_even_as_cpu():
    x = np.array([[[0, 1, 2, 5, 6, 7, 254, 255]]], np.uint8)  # a 2x shrink: 0.5, 3.5, 6.5, 254.5
    got = gpu.resize(cuda.to_device(x), 1, 4).copy_to_host()
    np.testing.assert_array_equal(got, [[[0, 4, 6, 254]]])
    np.testing.assert_array_equal(got, cpu.resize(x, 1, 4))


def test_uint8_gray_resize_refuses_scaling():
    with pytest.raises(ValueError, match=r"gray_resize \(CUDA\) with dtype=np.uint8 requires uint8 x and from_int"):
        gpu.gray_resize(cuda.to_device(np.zeros((4, 4, 3), np.uint8)), 2, 2, dtype=np.uint8)
