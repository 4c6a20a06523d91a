"""TimeMaxPool on its CUDA path, under the Numba CUDA simulator.

Inside ``simulated_cuda()`` every tensor counts as a CUDA tensor: the history
must stay on the data's device, be updated by torch operations there, take
the reset mask as a device tensor and copy nothing to the host (each attempt
fails the test). Results and histories are compared with a fresh transform
fed the same data on the CPU path (the kernel of ``numbarl.core.time_pool``).

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numbarl.torch_api import TimeMaxPool  # noqa: E402
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim]

BATCH = 3


def _script(dtype, seed=0, steps=10):
    """``[(kind, root, data)]``: resets (every sub-env, then partial masks) and steps of random observations."""
    gen = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        x = torch.from_numpy(gen.normal(size=(BATCH, 2, 2)) * 3)
        x = x.to(dtype) if dtype.is_floating_point else x.round().to(dtype)
        data = TensorDict({"obs": x}, [BATCH])
        if i == 0:
            out.append(("reset", TensorDict({}, [BATCH]), data))
        elif i % 4 == 0:
            root = TensorDict({"_reset": torch.from_numpy(gen.random((BATCH, 1)) < 0.5)}, [BATCH])
            out.append(("reset", root, data))
        else:
            out.append(("step", None, data))
    return out


def _run(t, script):
    outs = []
    for kind, root, data in script:
        if kind == "reset":
            outs.append(t._reset(root.clone(), data.clone())["obs"])
        else:
            outs.append(t._call(data.clone())["obs"])
    return outs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.float16])
@pytest.mark.parametrize("T", [1, 3])
def test_steps_and_partial_resets_on_the_device_match_the_host(dtype, T):
    script = _script(dtype)
    host = TimeMaxPool(["obs"], T=T, reset_key="_reset")
    want = _run(host, script)
    dev = TimeMaxPool(["obs"], T=T, reset_key="_reset")
    with simulated_cuda() as sim:
        got = _run(dev, script)
    assert sim.attempts == [] and sim.kernel_modules == []
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and torch.equal(g, w)
    assert torch.equal(dev._maxpool_buffer_obs, host._maxpool_buffer_obs)
