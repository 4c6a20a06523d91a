"""Transforms on CUDA tensors against the same transforms on CPU tensors, on a real GPU.

Skipped without a CUDA GPU (and a CUDA build of torch), and under the
simulator, whose tests (``*_transforms_cudasim.py``) cover the same paths on
small shapes. Here the shapes are the real ones, and torch's sync debug mode
turns any host synchronisation on the per-step path into an error.
"""
import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("runs on a real CUDA GPU, not under the simulator", allow_module_level=True)

import torch  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU available to torch", allow_module_level=True)

from tensordict import TensorDict  # noqa: E402

from numbarl.torch_api import (CatFrames, Compose, GrayScale, Resize, Reward2GoTransform,  # noqa: E402
                               ToTensorImage, VecNormV2)

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


class no_host_sync:
    """torch's sync debug mode set to "error" inside the block."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        return False


def atari_pipeline():
    return Compose(ToTensorImage(in_keys=["pixels"]), GrayScale(in_keys=["pixels"]),
                   Resize(84, 84, in_keys=["pixels"]), CatFrames(4, dim=-3, in_keys=["pixels"]))


def test_atari_pipeline_on_256_frames_with_a_partial_reset():
    g = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (256, 210, 160, 3), dtype=torch.uint8, generator=g) for _ in range(4)]
    reset = torch.zeros(256, 1, dtype=torch.bool)
    reset[::7] = True
    outs = {}
    for device in ("cpu", CUDA):
        t = atari_pipeline()
        # Host-to-device copies synchronise: make them before the checked block.
        on_device = [f.to(device) for f in frames]
        reset_on_device = reset.to(device)
        got = [t._reset(None, TensorDict({"pixels": on_device[0]}, [256]))["pixels"]]
        with no_host_sync() if device == CUDA else torch.no_grad():
            got.append(t._call(TensorDict({"pixels": on_device[1]}, [256]))["pixels"])
            got.append(t._reset(TensorDict({"_reset": reset_on_device}, [256]),
                                TensorDict({"pixels": on_device[2]}, [256]))["pixels"])
            got.append(t._call(TensorDict({"pixels": on_device[3]}, [256]))["pixels"])
        outs[str(device)] = got
    for cpu, gpu in zip(outs["cpu"], outs["cuda"]):
        assert gpu.device.type == "cuda" and gpu.shape == (256, 4, 84, 84)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduce", [False, True])
def test_vecnorm_statistics_stay_on_the_device(reduce):
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(1024, 64, generator=g) * 3 + 5 for _ in range(5)]
    results = {}
    for device in ("cpu", CUDA):
        t = VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=reduce)
        outs = []
        on_device = [x.to(device) for x in xs]
        t(TensorDict({"x": on_device[0]}, [1024]))
        with no_host_sync() if device == CUDA else torch.no_grad():
            for x in on_device[1:]:
                outs.append(t(TensorDict({"x": x}, [1024]))["x"])
        results[str(device)] = (outs, t)
    for cpu, gpu in zip(results["cpu"][0], results["cuda"][0]):
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)
    loc_gpu = results["cuda"][1].loc["x"]
    assert loc_gpu.device.type == "cuda"
    torch.testing.assert_close(loc_gpu.cpu().double(), results["cpu"][1].loc["x"].double(), rtol=1e-9, atol=1e-9)


def test_reward_to_go_on_4096_trajectories():
    g = torch.Generator().manual_seed(2)
    reward = torch.randn(4096, 1000, 1, generator=g)
    done = torch.rand(4096, 1000, 1, generator=g) < 0.005
    done[:, -1] = True
    outs = {}
    for device in ("cpu", CUDA):
        t = Reward2GoTransform(gamma=0.99, out_keys=["reward_to_go"])
        td = TensorDict({"next": {"reward": reward.to(device), "done": done.to(device)}}, [4096, 1000])
        outs[str(device)] = t.inv(td)["reward_to_go"]
    assert outs["cuda"].device.type == "cuda"
    torch.testing.assert_close(outs["cuda"].cpu(), outs["cpu"], rtol=1e-5, atol=1e-4)
