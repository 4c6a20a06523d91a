"""Device dispatch of numbarl.torch_api._arrays, under the Numba CUDA simulator.

The CUDA path must never copy device memory back to the host: here every
device-to-host copy of the simulator (``copy_to_host``, which is also how a
kernel launched with a host array writes that array back) is made to fail
while an Atari-style pipeline, running moments and reward-to-go run through
the dispatch on simulator device arrays. The results are compared with the
CPU path afterwards.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import numbarl.core.cuda.frames  # noqa: E402
import numbarl.core.cuda.moments  # noqa: E402
import numbarl.core.cuda.pixels  # noqa: E402
import numbarl.core.cuda.returns  # noqa: E402
import numbarl.core.moments  # noqa: E402
import numbarl.core.pixels  # noqa: E402
import numbarl.core.returns  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numba import cuda  # noqa: E402
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray  # noqa: E402
from numbarl.torch_api._arrays import as_array, is_cuda, kernels_for, stream_kwargs  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


@pytest.fixture
def no_device_to_host(monkeypatch):
    """Make every device-to-host copy of the simulator raise; yields the list of attempts."""
    attempts = []

    def refuse(self, *args, **kwargs):
        attempts.append(tuple(self.shape))
        raise AssertionError(f"device-to-host copy of an array of shape {tuple(self.shape)} on the CUDA path")

    monkeypatch.setattr(FakeCUDAArray, "copy_to_host", refuse)
    yield attempts
    monkeypatch.undo()


def test_kernels_for_picks_the_module_of_the_device():
    d = cuda.to_device(np.zeros(3, np.float32))
    assert is_cuda(d) and not is_cuda(torch.zeros(3)) and not is_cuda(np.zeros(3))
    assert kernels_for(d, "pixels") is numbarl.core.cuda.pixels
    assert kernels_for(d, "numbarl.core.moments") is numbarl.core.cuda.moments
    assert kernels_for(d, numbarl.core.returns) is numbarl.core.cuda.returns
    assert kernels_for(d, "frames") is numbarl.core.cuda.frames
    assert kernels_for(torch.zeros(3), "pixels") is numbarl.core.pixels
    assert kernels_for(np.zeros(3), numbarl.core.moments) is numbarl.core.moments
    assert as_array(d) is d and stream_kwargs(d) == {} and stream_kwargs(torch.zeros(1)) == {}
    assert stream_kwargs(d, check=False) == {"check": False} and stream_kwargs(np.zeros(1), check=False) == {}
    with pytest.raises(ValueError, match=r"kernels_for requires cpu_module_name in \('frames', 'moments', "
                                         r"'pixels', 'returns'\).* got 'shared'"):
        kernels_for(d, "shared")
    with pytest.raises(ValueError, match=r"got 'numbarl.torch_api.pixels'"):
        kernels_for(d, "numbarl.torch_api.pixels")
    with pytest.raises(TypeError, match=r"cpu_module_name as a str or a module, got int"):
        kernels_for(d, 3)
    with pytest.raises(TypeError, match=r"as_array requires a torch.Tensor, a numpy.ndarray or a CUDA device array, "
                                        r"got list"):
        as_array([1.0])


def test_the_detector_sees_copies(no_device_to_host):
    d = cuda.to_device(np.ones((2, 3)))
    with pytest.raises(AssertionError, match="device-to-host"):
        d.copy_to_host()
    # a host array handed to a kernel is copied back to the host after it
    with pytest.raises(AssertionError, match="device-to-host"):
        numbarl.core.cuda.frames._fill_kernel[1, 8](np.zeros(8), 1)
    # checking a result on the host reads it back
    state = numbarl.core.cuda.moments.moments_init((3,))
    with pytest.raises(AssertionError, match="device-to-host"):
        numbarl.core.cuda.moments.moments_update(d, *state.arrays, check=True)
    assert len(no_device_to_host) == 3


def _pipeline(x, reward, done, obs, ring, state, outs):
    """One step of every kernel family through the dispatch; ``outs`` are preallocated outputs."""
    kw = stream_kwargs(x)
    pix = kernels_for(x, "pixels")
    chw = pix.to_tensor_image(as_array(x), out=as_array(outs["chw"]), **kw)
    gray = pix.grayscale(chw, out=as_array(outs["gray"]), **kw)
    small = pix.resize(gray, 6, 6, antialias=True, out=as_array(outs["small"]), **kw)
    pix.gray_resize(as_array(x), 6, 6, antialias=True, out=as_array(outs["fused"]), crop=(5, 5), **kw)
    pix.resize(gray, 4, 7, mode="nearest", out=as_array(outs["nearest"]), **kw)
    pix.center_crop(small, 4, 4, out=as_array(outs["crop"]), **kw)
    pix.permute_last(chw, (1, 2, 0), out=as_array(outs["hwc"]), **kw)
    frames = kernels_for(x, "frames")
    buffer, pos = ring
    async_kw = stream_kwargs(x, check=False)
    frames.frames_reset(buffer, pos, small, **async_kw)
    frames.frames_push(buffer, pos, small, out=as_array(outs["stack"]), dim=-3, **async_kw)
    moments = kernels_for(obs, "moments")
    moments.moments_update_normalize(as_array(obs), *state, 0.99, 1e-4, out=as_array(outs["norm"]), **async_kw)
    moments.moments_update(as_array(obs), *state, decay=0.9, nonfinite="skip", **async_kw)
    moments.moments_normalize(as_array(obs), state[0], state[1], state[2], 1e-4, out=as_array(outs["norm2"]), **kw)
    returns = kernels_for(reward, "returns")
    returns.reward_to_go(as_array(reward), as_array(done), 0.9, out=as_array(outs["rtg"]), open_end="truncate",
                         **kw)


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 10, 8, 3), dtype=np.uint8)
    reward = rng.standard_normal((3, 12, 1)).astype(np.float32)
    done = rng.random((3, 12, 1)) < 0.2
    obs = (rng.standard_normal((6, 4)) * 2 + 1).astype(np.float32)
    return x, reward, done, obs


def _out_shapes():
    return {
        "chw": ((2, 3, 10, 8), np.float32), "gray": ((2, 1, 10, 8), np.float32),
        "small": ((2, 1, 6, 6), np.float32), "fused": ((2, 1, 5, 5), np.float32),
        "nearest": ((2, 1, 4, 7), np.float32), "crop": ((2, 1, 4, 4), np.float32),
        "hwc": ((2, 10, 8, 3), np.float32), "stack": ((2, 4, 6, 6), np.float32),
        "norm": ((6, 4), np.float32), "norm2": ((6, 4), np.float32), "rtg": ((3, 12, 1), np.float32),
    }


def test_cuda_path_copies_nothing_to_host(monkeypatch):
    x, reward, done, obs = _inputs()
    # inputs, outputs and state go to the device first (host-to-device copies are fine)
    d = {name: cuda.to_device(a) for name, a in (("x", x), ("reward", reward), ("done", done), ("obs", obs))}
    outs = {name: cuda.device_array(shape, dtype) for name, (shape, dtype) in _out_shapes().items()}
    ring = numbarl.core.cuda.frames.frames_state((2,), 4, (1, 6, 6))
    state = numbarl.core.cuda.moments.moments_init((4,)).arrays
    numbarl.core.cuda.pixels.resize(cuda.device_array((1, 10, 8), np.float32), 6, 6)  # not the first table copy

    attempts = []

    def refuse(self, *args, **kwargs):
        attempts.append(tuple(self.shape))
        raise AssertionError(f"device-to-host copy of an array of shape {tuple(self.shape)} on the CUDA path")

    with monkeypatch.context() as patch:
        patch.setattr(FakeCUDAArray, "copy_to_host", refuse)
        _pipeline(d["x"], d["reward"], d["done"], d["obs"], ring, state, outs)
    assert attempts == []

    # the CPU path through the same dispatch gives the same numbers
    cpu_outs = {name: torch.empty(shape, dtype=torch.float32) for name, (shape, _) in _out_shapes().items()}
    cpu_ring = numbarl.core.frames.frames_state((2,), 4, (1, 6, 6))
    cpu_state = numbarl.core.moments.moments_init((4,)).arrays
    _pipeline(torch.from_numpy(x), torch.from_numpy(reward), torch.from_numpy(done), torch.from_numpy(obs),
              cpu_ring, cpu_state, cpu_outs)
    for name, out in outs.items():
        np.testing.assert_allclose(out.copy_to_host(), cpu_outs[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    for got, want in zip(state, cpu_state, strict=True):
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-5)
    np.testing.assert_array_equal(ring[1].copy_to_host(), cpu_ring[1])
