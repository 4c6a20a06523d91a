"""Reward and episode transforms on their CUDA path, under the Numba CUDA simulator.

Inside ``simulated_cuda()`` every tensor counts as a CUDA tensor: the
transforms must keep their running state on the data's device, use torch
operations there (or the kernels of ``numbarl.core.cuda.returns``), keep
reset masks on the device and never copy to the host (each attempt fails the
test). Every result is compared with a fresh transform fed the same data on
the CPU path, outside the harness.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
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


# ------------------------------------------------------------------ rollouts
def _flags(gen, p=0.3):
    return torch.rand(BATCH, 1, generator=gen) < p


def _episode_script(seed=0, steps=6, reset_at=3, with_truncated=True):
    """A rollout as the env hands it to a transform: ``[("reset", root, td) | ("step", next_td)]``."""
    gen = torch.Generator().manual_seed(seed)

    def step():
        td = {"reward": torch.randn(BATCH, 1, generator=gen), "done": _flags(gen),
              "observation": torch.randn(BATCH, 2, generator=gen)}
        if with_truncated:
            td["truncated"] = _flags(gen, 0.2)
        return TensorDict(td, [BATCH])

    def reset_td():
        td = {"done": torch.zeros(BATCH, 1, dtype=torch.bool), "observation": torch.randn(BATCH, 2, generator=gen)}
        if with_truncated:
            td["truncated"] = torch.zeros(BATCH, 1, dtype=torch.bool)
        return TensorDict(td, [BATCH])

    script = [("reset", None, reset_td())]
    for i in range(steps):
        if i == reset_at:
            script.append(("reset", TensorDict({"_reset": RESET.clone()}, [BATCH]), reset_td()))
        script.append(("step", step()))
    return script


def _copy(script):
    return [tuple(e.clone() if isinstance(e, TensorDict) else e for e in entry) for entry in script]


def _roll(t, script, keys, root=None):
    """Feed ``script`` through ``t`` as a rollout does (the root carries the previous results).

    Returns the ``keys`` of each result, and the last root (to go on from).
    """
    outs = []
    for entry in script:
        if entry[0] == "reset":
            request = entry[1]
            if request is not None and root is not None:
                request.update(root)
            root = t._reset(request, entry[2])
        else:
            nxt = t._step(root, entry[1])
            root = nxt.clone()
        outs.append({k: root.get(k) for k in keys if root.get(k, None) is not None})
    return outs, root


def _both(make, script, keys):
    dev, host = make(), make()
    (got, _), modules = _on_device(lambda: _roll(dev, _copy(script), keys))
    want, _ = _roll(host, _copy(script), keys)
    _assert_all_same(got, want)
    return dev, host, modules


# ---------------------------------------------------------------- RewardSum
def test_reward_sum_on_the_device():
    # outside an env the shape of the sums is known from the first step on: start with a step (as the CPU must)
    script = _episode_script()[1:]
    dev, host, modules = _both(lambda: RewardSum(reset_keys=["_reset"]), script, ["episode_reward"])
    assert modules == []  # torch operations only
    state = dev._sums["episode_reward"]
    assert isinstance(state, torch.Tensor)
    _assert_same(dev.get_extra_state()["_sums"]["episode_reward"], host.get_extra_state()["_sums"]["episode_reward"])


def test_reward_sum_reads_the_previous_sums_from_the_root():
    """As in TorchRL the root's sums win over the kept ones, at a step and for the sub-envs a reset leaves alone."""
    script = _episode_script(steps=5, reset_at=3)[1:]
    keys = ["episode_reward"]

    def run(t):
        outs = []
        root = None
        for i, part in enumerate((script[:2], script[2:3], script[3:4], script[4:])):  # the 3rd is the reset
            if root is not None:
                root["episode_reward"] = root["episode_reward"] + (10.0 if i == 1 else -3.0)
            more, root = _roll(t, _copy(part), keys, root)
            outs += more
        return outs

    dev, host = RewardSum(reset_keys=["_reset"]), RewardSum(reset_keys=["_reset"])
    got, _ = _on_device(lambda: run(dev))
    want = run(host)
    _assert_all_same(got, want)
    # sub-env 1, left alone by the reset, goes on from the root's sum (3 less than what was kept)
    assert float(want[2]["episode_reward"][1]) > 5.0
    assert float(want[3]["episode_reward"][1]) == pytest.approx(float(want[2]["episode_reward"][1]) - 3.0)


def test_reward_sum_carries_host_sums_to_the_device_and_back():
    script = _episode_script(steps=7, reset_at=2)[1:]
    keys = ["episode_reward"]
    want, _ = _roll(RewardSum(reset_keys=["_reset"]), _copy(script), keys)
    t = RewardSum(reset_keys=["_reset"])
    got, root = _roll(t, _copy(script[:3]), keys)
    assert isinstance(t._sums["episode_reward"], np.ndarray)
    (more, root), _ = _on_device(lambda: _roll(t, _copy(script[3:6]), keys, root.clone()))
    assert isinstance(t._sums["episode_reward"], torch.Tensor)
    last, _ = _roll(t, _copy(script[6:]), keys, root)
    assert isinstance(t._sums["episode_reward"], np.ndarray)
    _assert_all_same(got + more + last, want)


def test_reward_sum_forward_on_stored_data():
    gen = torch.Generator().manual_seed(3)
    reward = torch.randn(2, 7, 1, generator=gen, dtype=torch.float64)
    done = torch.rand(2, 7, 1, generator=gen) < 0.3
    td = TensorDict({"reward": reward, "done": done}, [2, 7], names=[None, "time"])
    (got, modules) = _on_device(lambda: RewardSum()(td.clone())["episode_reward"])
    assert set(modules) == {RETURNS}
    _assert_same(got, RewardSum()(td.clone())["episode_reward"])


# -------------------------------------------------------------- StepCounter
@pytest.mark.parametrize("max_steps, update_done, truncated", [(None, True, True), (2, True, True),
                                                               (2, False, True), (3, True, False)])
def test_step_counter_on_the_device(max_steps, update_done, truncated):
    def make():
        return StepCounter(max_steps=max_steps, update_done=update_done)

    script = _episode_script(steps=7, reset_at=4, with_truncated=truncated)
    keys = ["step_count", "truncated", "done"]
    dev, host, modules = _both(make, script, keys)
    assert modules == []
    assert isinstance(dev._counts["step_count"], torch.Tensor)
    _assert_same(dev.get_extra_state()["_counts"]["step_count"], host.get_extra_state()["_counts"]["step_count"])


def test_step_counter_extra_state_from_the_device_loads_on_the_host():
    script = _episode_script(steps=4, reset_at=2)
    dev, host, _ = _both(lambda: StepCounter(max_steps=5), script, ["step_count"])
    restored = StepCounter(max_steps=5)
    restored.load_state_dict({"_extra_state": dev.get_extra_state()})
    _assert_same(torch.from_numpy(restored._counts["step_count"]), torch.from_numpy(host._counts["step_count"]))


# ---------------------------------------------------- InitTracker, deltas
def test_init_tracker_on_the_device():
    _, _, modules = _both(InitTracker, _episode_script(), ["is_init"])
    assert modules == []


def test_next_observation_delta_on_the_device():
    def make():
        return NextObservationDelta(in_keys=["observation"])

    dev, host, modules = _both(make, _episode_script(), [("delta", "observation")])
    assert modules == []
    _assert_same(dev.get_extra_state()["_last"]["observation"], host.get_extra_state()["_last"]["observation"])
    # right after a partial reset the kept observation is the new one only for the sub-envs reset
    dev, host, _ = _both(make, _episode_script(steps=4, reset_at=2)[:4], [("delta", "observation")])
    _assert_same(dev.get_extra_state()["_last"]["observation"], host.get_extra_state()["_last"]["observation"])


# ---------------------------------------------------------- reward maps
MAPS = [
    lambda: RewardScaling(loc=0.5, scale=2.0),
    lambda: RewardScaling(loc=torch.tensor([0.25]), scale=torch.tensor([3.0]), standard_normal=True),
    lambda: RewardScaling(loc=1.0, scale=torch.tensor(0.1, dtype=torch.float64), standard_normal=True),
    lambda: RewardClipping(-0.5, 0.75),
    lambda: RewardClipping(clamp_max=0.1),
    lambda: RewardClipping(clamp_min=torch.tensor(0.0, dtype=torch.float64)),
    lambda: BinarizeReward(),
]


@pytest.mark.parametrize("make", MAPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_reward_maps_on_the_device(make, dtype):
    gen = torch.Generator().manual_seed(4)
    reward = torch.randn(BATCH, 1, generator=gen) * 2
    reward = (reward * 3).round().to(dtype) if dtype == torch.int64 else reward.to(dtype)
    if dtype.is_floating_point:
        reward[1, 0] = float("nan")
    td = TensorDict({"reward": reward}, [BATCH])
    dev, host = make(), make()
    (got, modules) = _on_device(lambda: [dev(td.clone())["reward"], dev._reset(None, td.clone())["reward"]])
    assert modules == []
    _assert_all_same(got, [host(td.clone())["reward"], host._reset(None, td.clone())["reward"]])


