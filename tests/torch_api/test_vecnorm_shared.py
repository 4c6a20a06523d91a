"""VecNorm statistics in shared memory: the _make_shared / _shared_handle / _attach_shared protocol.

The multiprocess test spawns workers whose target is the builtin ``exec`` on
the source in ``WORKER``: a function of a test module cannot be imported by
name in a spawned process, a builtin always can.
"""
import gc
import multiprocessing
import os
import pickle

import numpy as np
import pytest
import torch
from tensordict import TensorDict

import leaks
from numbarl.core.shared import SharedArrays
from numbarl.torch_api import GymEnv, TransformedEnv, VecNorm, VecNormV2

SHM = "/dev/shm"
N_WORKERS, N_STEPS = 4, 10_000

WORKER = """
import numpy as np
import torch
from tensordict import TensorDict

data = np.random.default_rng(seed).normal(1000.0, 3.0, size=(n, 3))
vecnorm(TensorDict({"obs": torch.from_numpy(data[0])}, []))  # compile and warm up before the barrier
barrier.wait()
for row in data[1:]:
    vecnorm(TensorDict({"obs": torch.from_numpy(row)}, []))
"""


def worker_data(seed):
    return np.random.default_rng(seed).normal(1000.0, 3.0, size=(N_STEPS, 3))


@pytest.fixture(autouse=True)
def no_block_left():
    """Every block made during a test is gone from /dev/shm once its owners are collected."""
    with leaks.track_blocks() as blocks:
        yield blocks.names
    gc.collect()
    left = sorted(set(blocks.names) & leaks.numbarl_blocks())
    assert not left, f"shared-memory blocks left behind: {left}"


def test_four_processes_lose_no_update(no_block_left):
    vecnorm = VecNorm(in_keys=["obs"], decay=1.0, shapes=[(3,)])
    vecnorm._make_shared()
    name = vecnorm._shared_handle().name
    assert name.startswith("numbarl_") and os.path.exists(os.path.join(SHM, name))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_WORKERS)
    procs = [ctx.Process(target=exec, args=(WORKER, {"seed": seed, "n": N_STEPS, "vecnorm": vecnorm,
                                                       "barrier": barrier}))
             for seed in range(N_WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * N_WORKERS
    state = vecnorm.get_extra_state()
    data = np.concatenate([worker_data(seed) for seed in range(N_WORKERS)])
    assert state["obs_samples"].item() == N_WORKERS * N_STEPS
    var = (state["obs_m2"] / state["obs_weight"]).numpy()
    np.testing.assert_allclose(state["obs_loc"].numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, data.var(0), rtol=1e-6)
    single = VecNorm(in_keys=["obs"], decay=1.0)
    single(TensorDict({"obs": torch.from_numpy(data)}, [len(data)]))
    one = single.get_extra_state()
    np.testing.assert_allclose(state["obs_loc"].numpy(), one["obs_loc"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(var, (one["obs_m2"] / one["obs_weight"]).numpy(), rtol=1e-6)
    del vecnorm
    gc.collect()
    assert not os.path.exists(os.path.join(SHM, name))


@pytest.mark.parametrize("cls", [VecNorm, VecNormV2])
def test_protocol_make_attach_and_pickle_by_name(cls):
    a = cls(in_keys=["obs"], decay=1.0)
    twin = cls(in_keys=["obs"], decay=1.0)
    a(TensorDict({"obs": torch.tensor([1.0, 2.0])}, []))
    assert a._shared_handle() is None
    before = a.get_extra_state()
    a._make_shared()
    handle = a._shared_handle()
    assert isinstance(handle, SharedArrays) and handle.owner
    assert all(torch.equal(v, a.get_extra_state()[k]) for k, v in before.items())  # values moved, not reset
    twin._attach_shared(pickle.loads(pickle.dumps(handle)))
    twin(TensorDict({"obs": torch.tensor([3.0, 2.0])}, []))
    loc = [v for k, v in a.get_extra_state().items() if "loc" in k][0]
    assert torch.equal(loc, torch.tensor([2.0, 2.0], dtype=torch.float64))
    copy = pickle.loads(pickle.dumps(a))
    copy(TensorDict({"obs": torch.tensor([5.0, 2.0])}, []))
    count = [v for k, v in a.get_extra_state().items() if "count" in k][0]
    assert count.item() == 3
    clone = a.clone()  # a clone is an independent snapshot
    assert clone._shared_handle() is None
    clone(TensorDict({"obs": torch.tensor([5.0, 2.0])}, []))
    assert [v for k, v in a.get_extra_state().items() if "count" in k][0].item() == 3


def test_pickle_sends_the_name_not_the_data():
    big = VecNorm(in_keys=["obs"], decay=1.0, shapes=[(4096,)])
    big._make_shared()
    payload = pickle.dumps(big)
    assert len(payload) < 4096 * 8 and big._shared_handle().name.encode() in payload
    local = VecNorm(in_keys=["obs"], decay=1.0, shapes=[(4096,)])
    local(TensorDict({"obs": torch.zeros(4096)}, []))
    assert len(pickle.dumps(local)) > 2 * 4096 * 8


def test_make_shared_takes_shapes_from_the_env_specs():
    t = VecNormV2(in_keys=["observation", "reward"], decay=1.0)
    env = TransformedEnv(GymEnv("Pendulum-v1"), t)
    t._make_shared()
    twin = VecNormV2(in_keys=["observation", "reward"], decay=1.0)
    twin._attach_shared(t._shared_handle())
    env.set_seed(0)
    env.rollout(10)
    assert twin.loc["observation"].shape == (3,) and twin.loc["reward"].shape == (1,)
    assert twin.get_extra_state()["count.-|-.observation"].item() == 11


def _make_pendulum():
    return GymEnv("Pendulum-v1").append_transform(
        VecNormV2(in_keys=["observation", "reward"], out_keys=["observation_norm", "reward_norm"], decay=1.0))


def test_env_creator_shares_statistics():
    """The VecNormV2 doc example: envs made by one EnvCreator update the same statistics."""
    from numbarl.torch_api import EnvCreator, SerialEnv

    make = EnvCreator(_make_pendulum)
    local = make()
    env = SerialEnv(2, [make] * 2)
    env.set_seed(0)
    env.rollout(10)
    assert local.transform.get_extra_state()["count.-|-.reward"].item() == 20
    assert local.transform.scale["reward"].item() > 0
    # TorchRL's EnvCreator.state_dict: the template env's, shared statistics included
    assert make.state_dict()["_extra_state"]["count.-|-.reward"].item() == 20
    env.close()
    make.close()
    with pytest.raises(RuntimeError, match="EnvCreator.state_dict needs the template env"):
        make.state_dict()


def test_stateless_has_nothing_to_share():
    t = VecNormV2(in_keys=["obs"], stateful=False)
    t._make_shared()
    assert t._shared_handle() is None


def test_shared_errors():
    with pytest.raises(ValueError, match="cannot share statistics of unknown shape for \\['obs'\\]"):
        VecNormV2(in_keys=["obs"])._make_shared()
    a = VecNorm(in_keys=["obs"], shapes=[(3,)])
    a._make_shared()
    with pytest.raises(ValueError, match="expected the statistics of 2 keys"):
        VecNorm(in_keys=["obs", "r"])._attach_shared(a._shared_handle())
    b = VecNorm(in_keys=["obs"])
    b(TensorDict({"obs": torch.zeros(2)}, []))
    with pytest.raises(ValueError, match="has statistics of shape \\(2,\\), the block holds \\(3,\\)"):
        b._attach_shared(a._shared_handle())
    with pytest.raises(TypeError, match="requires a SharedArrays handle"):
        b._attach_shared("numbarl_x")


def test_build_td_for_shared_vecnorm_and_lock():
    env = GymEnv("Pendulum-v1")
    td = VecNorm.build_td_for_shared_vecnorm(env, ["observation", "reward"])
    assert td.is_shared()
    lock = multiprocessing.get_context("spawn").Lock()
    a = VecNorm(shared_td=td, lock=lock, decay=1.0)
    b = VecNorm(shared_td=td, lock=lock, decay=1.0)
    a(TensorDict({"observation": torch.ones(3), "reward": torch.ones(1)}, []))
    b(TensorDict({"observation": torch.ones(3) * 3, "reward": torch.ones(1)}, []))
    assert td["count", "observation"].item() == 2
    assert torch.equal(td["loc", "observation"], torch.full((3,), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="requires shared_td to hold \\('loc', 'pixels'\\)"):
        VecNorm(in_keys=["pixels"], shared_td=td)
