"""Kernel launches and tensor -> device-array conversions per call of each CUDA transform, pinned.

Inside ``simulated_cuda()`` the transforms take their CUDA path; the seam's
``launch`` and ``as_array`` are wrapped (tests/device_calls.py) to count
what each call costs on the host. The input tensor is the same each step
(as an env writing into its buffers gives), so after the first call the
only conversions left are the fresh output tensors of the step: state
buffers (frame rings, statistics) and inputs come from the view cache.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from device_calls import count_device_calls  # noqa: E402
from numbarl.torch_api import (  # noqa: E402
    CatFrames, CenterCrop, Compose, Crop, GrayScale, ObservationNorm, PermuteTransform, Resize, RewardSum,
    ToTensorImage, VecNorm, VecNormV2,
)
from numbarl.torch_api import _device  # noqa: E402
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def _hwc(h=10, w=8):
    return torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _chw():
    return torch.rand(2, 3, 10, 8, generator=torch.Generator().manual_seed(1))


def _vec():
    return torch.randn(2, 4, generator=torch.Generator().manual_seed(2))


# name: (make, data, launches of the first call, conversions of the first call, launches per later call,
#        conversions per later call)
CASES = {
    "ToTensorImage": (ToTensorImage, lambda: {"pixels": _hwc()}, ["pixels.to_tensor_image"], 2,
                      ["pixels.to_tensor_image"], 1),
    "GrayScale": (GrayScale, lambda: {"pixels": _chw()}, ["pixels.grayscale"], 2, ["pixels.grayscale"], 1),
    "Resize": (lambda: Resize(4, 4), lambda: {"pixels": _chw()}, ["pixels.resize"], 2, ["pixels.resize"], 1),
    "CenterCrop": (lambda: CenterCrop(4, 4), lambda: {"pixels": _chw()}, ["pixels.center_crop"], 2,
                   ["pixels.center_crop"], 1),
    "Crop": (lambda: Crop(4, 4, 1, 1), lambda: {"pixels": _chw()}, ["pixels.crop"], 2, ["pixels.crop"], 1),
    "PermuteTransform": (lambda: PermuteTransform((-1, -3, -2), in_keys=["pixels"]), lambda: {"pixels": _chw()},
                         ["pixels.permute_last"], 2, ["pixels.permute_last"], 1),
    "CatFrames": (lambda: CatFrames(4, dim=-3, in_keys=["pixels"]), lambda: {"pixels": _chw()},
                  ["frames.frames_state", "frames.frames_reset", "frames.frames_push"], 3, ["frames.frames_push"], 1),
    "VecNormV2": (lambda: VecNormV2(in_keys=["obs"]), lambda: {"obs": _vec()},
                  ["moments.moments_update_normalize"], 7, ["moments.moments_update_normalize"], 1),
    "VecNorm": (lambda: VecNorm(in_keys=["obs"]), lambda: {"obs": _vec()},
                ["moments.moments_update_normalize"], 7, ["moments.moments_update_normalize"], 1),
    # torch operations on the device, no numba kernel
    "ObservationNorm": (lambda: ObservationNorm(loc=0.5, scale=2.0, in_keys=["obs"]), lambda: {"obs": _vec()},
                        [], 0, [], 0),
    "RewardSum": (RewardSum, lambda: {"reward": _vec()[:, :1].contiguous()}, [], 0, [], 0),
    # the fused Atari pipeline: one gray+resize pass and one push per step (small frames: the counts do
    # not depend on their size, and the simulator runs one Python thread per pixel, whose scheduling made
    # a 52x80 -> 21x21 step take from seconds to over ten minutes)
    "AtariCompose": (lambda: Compose(ToTensorImage(), GrayScale(), Resize(7, 7), CatFrames(4, dim=-3)),
                     lambda: {"pixels": _hwc(13, 20)},
                     ["pixels.gray_resize", "frames.frames_state", "frames.frames_reset", "frames.frames_push"], 4,
                     ["pixels.gray_resize", "frames.frames_push"], 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_launches_and_conversions_per_step_are_pinned(name):
    make, data, first_launches, first_conv, launches, conv = CASES[name]
    _device.clear_view_cache()
    transform, static = make(), data()
    seen = []
    for _ in range(4):
        td = TensorDict(dict(static), [2])
        with simulated_cuda() as sim, count_device_calls() as calls:
            transform._step(TensorDict({}, [2]), td)
        assert sim.attempts == []
        seen.append((calls.launches, calls.conversions))
    assert seen[0] == (first_launches, first_conv)
    assert seen[1:] == [(launches, conv)] * 3


def test_view_cache_keys_on_the_layout_not_only_the_pointer():
    """Views of one memory with another shape, strides or dtype are views of their own."""
    _device.clear_view_cache()
    base = torch.arange(12, dtype=torch.float32)
    with simulated_cuda(default_device=None), count_device_calls() as calls:
        a = _device.device_array(base.view(3, 4))
        b = _device.device_array(base.view(4, 3))
        c = _device.device_array(base.view(torch.int32).view(3, 4))
        again = _device.device_array(base.view(3, 4))
    assert calls.conversions == 3
    assert a.shape == (3, 4) and b.shape == (4, 3) and c.shape == (3, 4)
    assert a.dtype == np.float32 and c.dtype == np.int32
    assert again is a


def test_non_contiguous_tensors_are_converted_every_call():
    """A non-contiguous tensor is copied to a new contiguous one per call: its view is never served from the cache."""
    _device.clear_view_cache()
    x = torch.arange(12, dtype=torch.float32).view(3, 4).t()
    with simulated_cuda(default_device=None), count_device_calls() as calls:
        first = _device.device_array(x)
        x.add_(1.0)
        second = _device.device_array(x)
    assert calls.conversions == 2
    assert second[0, 0] == first[0, 0] + 1.0
