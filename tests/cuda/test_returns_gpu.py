"""CUDA reward-to-go against the CPU kernel on a real GPU (skipped without one)."""
import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("runs on a real CUDA GPU, not under the simulator", allow_module_level=True)

import numpy as np
from numba import cuda

if not cuda.is_available():
    pytest.skip("no CUDA GPU available", allow_module_level=True)

from numbarl.core.cuda.returns import reward_to_go as gpu_reward_to_go
from numbarl.core.returns import reward_to_go as cpu_reward_to_go

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("shape,time_dim", [((64, 2000, 1), -2), ((1, 100000, 1), -2), ((300, 64), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_cpu(shape, time_dim, dtype):
    rng = np.random.default_rng(0)
    reward = rng.standard_normal(shape).astype(dtype)
    done = rng.random(shape) < 0.005
    want = cpu_reward_to_go(reward, done, 0.99, time_dim=time_dim, open_end="truncate")
    got = gpu_reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.99, time_dim=time_dim,
                           open_end="truncate").copy_to_host()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_open_end_error_and_bootstrap():
    reward = np.ones((3, 50, 1), dtype=np.float32)
    done = np.zeros((3, 50, 1), dtype=bool)
    with pytest.raises(ValueError, match="trajectory ends without done"):
        gpu_reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.9)
    boot = np.array([[1.0], [2.0], [3.0]])
    got = gpu_reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.9, bootstrap=boot).copy_to_host()
    np.testing.assert_allclose(got, cpu_reward_to_go(reward, done, 0.9, bootstrap=boot), rtol=1e-6)


def test_torch_cuda_tensor():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    reward = torch.randn(8, 100, 1, device="cuda")
    done = torch.rand(8, 100, 1, device="cuda") < 0.05
    out = torch.empty_like(reward)
    gpu_reward_to_go(reward, done, 0.95, out=out, open_end="truncate")
    torch.cuda.synchronize()
    want = cpu_reward_to_go(reward.cpu().numpy(), done.cpu().numpy(), 0.95, open_end="truncate")
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-5, atol=1e-5)
