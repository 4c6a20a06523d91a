"""CUDA pixel, frame-stack and moment kernels against the CPU ones on a real GPU.

Skipped without a CUDA GPU, and under the simulator (tests/cuda/*_cudasim.py
cover the same functions there on small shapes). Shapes here are the real
ones: batches of Atari frames, thousands of environments.
"""
import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("runs on a real CUDA GPU, not under the simulator", allow_module_level=True)

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("no CUDA GPU available", allow_module_level=True)

from numbarl.core import frames as cpu_frames  # noqa: E402
from numbarl.core import moments as cpu_moments  # noqa: E402
from numbarl.core import pixels as cpu_pixels  # noqa: E402
from numbarl.core.cuda import frames as gpu_frames  # noqa: E402
from numbarl.core.cuda import moments as gpu_moments  # noqa: E402
from numbarl.core.cuda import pixels as gpu_pixels  # noqa: E402

pytestmark = pytest.mark.gpu


def _close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == np.uint8:
        assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max() <= 1
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def atari():
    return np.random.default_rng(0).integers(0, 256, (16, 210, 160, 3), dtype=np.uint8)


def test_atari_pipeline_matches_cpu(atari):
    d = cuda.to_device(atari)
    chw = gpu_pixels.to_tensor_image(d)
    np.testing.assert_array_equal(chw.copy_to_host(), cpu_pixels.to_tensor_image(atari))
    gray = gpu_pixels.grayscale(chw)
    want_gray = cpu_pixels.grayscale(cpu_pixels.to_tensor_image(atari))
    _close(gray.copy_to_host(), want_gray)
    for antialias in (False, True):
        _close(gpu_pixels.resize(gray, 84, 84, antialias=antialias).copy_to_host(),
               cpu_pixels.resize(want_gray, 84, 84, antialias=antialias))
        _close(gpu_pixels.gray_resize(d, 84, 84, antialias=antialias).copy_to_host(),
               cpu_pixels.gray_resize(atari, 84, 84, antialias=antialias))
    _close(gpu_pixels.gray_resize(d, 110, 84, crop=(84, 84)).copy_to_host(),
           cpu_pixels.gray_resize(atari, 110, 84, crop=(84, 84)))
    chw8 = np.ascontiguousarray(atari.transpose(0, 3, 1, 2))
    d8 = cuda.to_device(chw8)
    _close(gpu_pixels.grayscale(d8).copy_to_host(), cpu_pixels.grayscale(chw8))
    _close(gpu_pixels.resize(d8, 84, 84, antialias=True).copy_to_host(),
           cpu_pixels.resize(chw8, 84, 84, antialias=True))
    np.testing.assert_array_equal(gpu_pixels.resize(d8, 84, 84, mode="nearest").copy_to_host(),
                                  cpu_pixels.resize(chw8, 84, 84, mode="nearest"))
    np.testing.assert_array_equal(gpu_pixels.center_crop(d8, 160, 160).copy_to_host(),
                                  cpu_pixels.center_crop(chw8, 160, 160))
    np.testing.assert_array_equal(gpu_pixels.permute_last(d, (-1, -3, -2)).copy_to_host(),
                                  cpu_pixels.permute_last(atari, (-1, -3, -2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4096, 64), (256, 1, 84, 84), (100000, 3)])
def test_moments_match_cpu(dtype, shape):
    rng = np.random.default_rng(1)
    feature = shape[1:]
    c, g = cpu_moments.moments_init(feature), gpu_moments.moments_init(feature)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 3 + 50).astype(dtype)
        want = cpu_moments.moments_update_normalize(x, *c.arrays, 0.99, 1e-4)
        got = gpu_moments.moments_update_normalize(cuda.to_device(x), *g.arrays, 0.99, 1e-4)
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-5, atol=1e-5)
    h = g.copy_to_host()
    assert h.count[0] == c.count[0]
    np.testing.assert_allclose(h.loc, c.loc, rtol=1e-6)
    np.testing.assert_allclose(h.m2, c.m2, rtol=1e-5)


def test_moments_nonfinite_without_check():
    g = gpu_moments.moments_init((8,))
    x = np.random.default_rng(2).standard_normal((5000, 8))
    x[17, 3] = np.nan
    status = gpu_moments.moments_update(cuda.to_device(x), *g.arrays, nonfinite="skip", check=False)
    assert status.copy_to_host()[0] == 1 and g.copy_to_host().count[0] == 4999
    with pytest.raises(cpu_moments.NonFiniteError):
        gpu_moments.moments_update(cuda.to_device(x), *g.arrays)
    assert g.copy_to_host().count[0] == 4999


def test_frame_ring_matches_cpu():
    rng = np.random.default_rng(3)
    c_buf, c_pos = cpu_frames.frames_state((16,), 4, (1, 84, 84), np.float32)
    g_buf, g_pos = gpu_frames.frames_state((16,), 4, (1, 84, 84), np.float32)
    first = rng.random((16, 1, 84, 84), dtype=np.float32)
    cpu_frames.frames_reset(c_buf, c_pos, first)
    gpu_frames.frames_reset(g_buf, g_pos, cuda.to_device(first))
    for step in range(6):
        frame = rng.random((16, 1, 84, 84), dtype=np.float32)
        want = cpu_frames.frames_push(c_buf, c_pos, frame, dim=-3)
        got = gpu_frames.frames_push(g_buf, g_pos, cuda.to_device(frame), dim=-3, check=False)
        np.testing.assert_array_equal(got.copy_to_host(), want)
        if step == 3:
            mask = rng.random(16) < 0.5
            cpu_frames.frames_reset(c_buf, c_pos, frame, mask=mask, padding="constant")
            gpu_frames.frames_reset(g_buf, g_pos, cuda.to_device(frame), mask=cuda.to_device(mask),
                                    padding="constant")
    np.testing.assert_array_equal(g_buf.copy_to_host(), c_buf)


def test_torch_cuda_tensors_through_the_dispatch(monkeypatch, atari):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

    x = torch.from_numpy(atari).cuda()
    out = torch.empty((16, 1, 84, 84), device="cuda")
    stack = torch.empty((16, 4, 84, 84), device="cuda")
    buffer = torch.zeros((16, 4, 1, 84, 84), device="cuda")
    pos = torch.zeros(16, dtype=torch.int64, device="cuda")

    def refuse(self, *args, **kwargs):
        raise AssertionError("device-to-host copy on the CUDA path")

    with monkeypatch.context() as patch:
        patch.setattr(DeviceNDArray, "copy_to_host", refuse)
        patch.setattr(torch.Tensor, "cpu", refuse)
        pix = kernels_for(x, "pixels")
        assert pix is gpu_pixels
        pix.gray_resize(as_array(x), 84, 84, antialias=True, out=as_array(out), **stream_kwargs(x))
        frames = kernels_for(out, "frames")
        frames.frames_reset(as_array(buffer), as_array(pos), as_array(out), **stream_kwargs(out, check=False))
        frames.frames_push(as_array(buffer), as_array(pos), as_array(out), out=as_array(stack), dim=-3,
                           **stream_kwargs(out, check=False))
    torch.cuda.synchronize()
    want = cpu_pixels.gray_resize(atari, 84, 84, antialias=True)
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stack.cpu().numpy(), np.repeat(want, 4, axis=1), rtol=1e-5, atol=1e-5)
