"""Reward2GoTransform on its CUDA path, under the Numba CUDA simulator: the returns on the device,
the time dim by name, the one flag read back by the checks, gamma read once; compared with the CPU path.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda``; skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numbarl.torch_api import (BinarizeReward, InitTracker, NextObservationDelta, Reward2GoTransform,  # noqa: E402
                               RewardClipping, RewardScaling, RewardSum, StepCounter)
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

RETURNS = "numbarl.core.cuda.returns"
BATCH = 3
RESET = torch.tensor([True, False, True])


def _assert_same(got, want):
    """Same dtype and shape; float32 within 1e-5, float64 within 1e-12, others exact (NaN equal to NaN)."""
    assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape, (got, want)
    if want.is_floating_point():
        tol = 1e-5 if want.dtype in (torch.float32, torch.float16) else 1e-12
        np.testing.assert_allclose(got.float().numpy() if want.dtype == torch.float16 else got.numpy(),
                                   want.float().numpy() if want.dtype == torch.float16 else want.numpy(),
                                   rtol=tol, atol=tol, equal_nan=True)
    else:
        assert torch.equal(got, want), (got, want)


def _assert_all_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, dict):
            assert sorted(g) == sorted(w)
            for k in w:
                _assert_same(g[k], w[k])
        else:
            _assert_same(g, w)


def _on_device(run):
    """``run()`` inside the harness, checked to copy nothing to the host; returns (result, kernel modules used)."""
    with simulated_cuda() as sim:
        result = run()
    assert sim.attempts == []
    return result, sim.kernel_modules


# ------------------------------------------------------- Reward2GoTransform
def _trajectories(seed=5, truncated=True):
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(2, 8, 1, generator=gen) < 0.25
    done[:, -1] = True
    entries = {"reward": torch.randn(2, 8, 1, generator=gen), "done": done}
    if truncated:
        entries["truncated"] = torch.rand(2, 8, 1, generator=gen) < 0.1
    return TensorDict({"next": entries}, [2, 8])


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("truncated", [True, False])
def test_reward_to_go_on_the_device(gamma, truncated):
    def make():
        return Reward2GoTransform(gamma=gamma, out_keys=["rtg"], open_end="truncate")

    td = _trajectories(truncated=truncated)
    td["next", "done"][0, -1] = False  # an open tail, cut where the data ends
    dev = make()
    (got, modules) = _on_device(lambda: dev.inv(td.clone())["rtg"])
    assert set(modules) == {RETURNS}
    _assert_same(got, make().inv(td.clone())["rtg"])


def test_reward_to_go_time_dim_by_name():
    td = _trajectories().permute(1, 0)
    td.refine_names("time", None)
    dev = Reward2GoTransform(gamma=0.5, out_keys=["rtg"], open_end="truncate")
    (got, _) = _on_device(lambda: dev.inv(td.clone())["rtg"])
    _assert_same(got, Reward2GoTransform(gamma=0.5, out_keys=["rtg"], open_end="truncate").inv(td.clone())["rtg"])


@pytest.mark.parametrize("open_end", ["torchrl", "error"])
def test_reward_to_go_checks_read_back_one_flag(open_end):
    """The checks of these modes decide whether to raise: their one read-back (and nothing else) is refused here."""
    td = _trajectories()
    dev = Reward2GoTransform(gamma=0.9, out_keys=["rtg"], open_end=open_end)
    with simulated_cuda() as sim:
        with pytest.raises(AssertionError, match="device-to-host copy"):
            dev.inv(td.clone())
    assert len(sim.attempts) == 1


def test_reward_to_go_reads_gamma_once():
    t = Reward2GoTransform(gamma=0.25, open_end="truncate")
    t.gamma.fill_(0.5)  # changed in place: read again, outside the per-call path
    assert t._host_value("gamma") == 0.5
    clone = t.clone()
    td = _trajectories()
    (got, _) = _on_device(lambda: clone.inv(td.clone())["next", "reward"])
    _assert_same(got, Reward2GoTransform(gamma=0.5, open_end="truncate").inv(td.clone())["next", "reward"])
