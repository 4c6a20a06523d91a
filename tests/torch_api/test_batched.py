"""SerialEnv, ParallelEnv and EnvCreator: TorchRL 0.14.1 semantics, the array path, shared statistics."""
from __future__ import annotations

import functools
import pickle

import batched_helpers as H
import leaks
import numpy as np
import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (
    Compose,
    EnvCreator,
    EnvWorkerError,
    GymEnv,
    ParallelEnv,
    SerialEnv,
    Transform,
    TransformedEnv,
)
from numbarl.torch_api.envs.utils import seed_generator
from tensordict import TensorDict

BATCHED = [SerialEnv, ParallelEnv]
SPEC_NAMES = ("full_observation_spec", "full_action_spec", "full_reward_spec", "full_done_spec", "full_state_spec")


@pytest.fixture
def trl(torchrl):
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when it is not installed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchrl.envs as envs
    return envs


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    """After the module: no child process of this one and none of the shared blocks it made remain."""
    with leaks.nothing_left("the batched-env tests"):
        yield


def actions_for(name: str, steps: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if name == "CartPole-v1":
        return torch.nn.functional.one_hot(torch.randint(0, 2, (steps, n), generator=g), 2)
    return torch.rand((steps, n, 1), generator=g) * 4 - 2


def scripted(actions):
    """A policy writing ``actions[t]`` at its t-th call."""
    state = {"t": 0}

    def policy(td):
        td.set("action", actions[state["t"]].clone())
        state["t"] += 1
        return td

    return policy


def first_transform(env):
    """The first transform of a TransformedEnv (``env.transform`` is the transform itself until a second one)."""
    t = env.transform
    return t[0] if isinstance(t, Compose) else t


def make_fn(name):
    return H.make_cartpole if name == "CartPole-v1" else H.make_pendulum


_REFERENCE = {}


def torchrl_reference(trl, name, steps=150, n=3, seed=7):
    """TorchRL SerialEnv: specs, set_seed's return, reset and a rollout with scripted actions (cached)."""
    key = (name, steps, n, seed)
    if key not in _REFERENCE:
        env = trl.SerialEnv(n, functools.partial(trl.GymEnv, name))
        out = {k: getattr(env, k).clone() for k in SPEC_NAMES}
        out["seed"] = env.set_seed(seed)
        out["reset"] = env.reset()
        env.set_seed(seed)
        out["rollout"] = env.rollout(steps, scripted(actions_for(name, steps, n)), break_when_any_done=False)
        env.set_seed(seed)
        out["stop"] = env.rollout(steps, scripted(actions_for(name, steps, n)))
        env.close()
        _REFERENCE[key] = out
    return _REFERENCE[key]


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize("cls", BATCHED)
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="num_workers >= 1, got 0"):
        cls(0, H.make_pendulum)
    with pytest.raises(TypeError, match="num_workers to be an int, got str"):
        cls("2", H.make_pendulum)
    with pytest.raises(TypeError, match="create_env_fn to be a callable or a list of callables, got int"):
        cls(2, 3)
    with pytest.raises(ValueError, match="create_env_fn to hold num_workers=2 callables, got 3"):
        cls(2, [H.make_pendulum] * 3)
    with pytest.raises(TypeError, match="create_env_kwargs to be a dict or a list of dicts, got str"):
        cls(2, H.make_pendulum, "x")
    with pytest.raises(ValueError, match="create_env_kwargs to hold num_workers=2 dicts, got 1"):
        cls(2, H.make_pendulum, [{}])
    with pytest.raises(ValueError, match="device must be None or 'cpu', got 'cuda'"):
        cls(2, H.make_pendulum, device="cuda")
    # ParallelEnv finds it in the worker that builds the second env: EnvWorkerError carries the ValueError
    with pytest.raises((ValueError, EnvWorkerError), match="specs of the first one"):
        cls(2, [H.make_pendulum, H.make_cartpole])


def test_parallel_bad_arguments():
    with pytest.raises(ValueError, match="num_processes in 1..num_workers=2, got 3"):
        ParallelEnv(2, H.make_pendulum, num_processes=3)
    with pytest.raises(ValueError, match="mp_start_method to be one of .*, got 'thread'"):
        ParallelEnv(2, H.make_pendulum, mp_start_method="thread")
    with pytest.raises(ValueError, match=r"timeout to be a positive number of seconds \(inf or None: no limit\), got -1"):
        ParallelEnv(2, H.make_pendulum, timeout=-1)
    assert isinstance(ParallelEnv(1, H.make_pendulum, serial_for_single=True), SerialEnv)


# ------------------------------------------------------------ against torchrl
@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("cls", BATCHED)
def test_specs_seed_reset_match_torchrl(trl, cls, name):
    ref = torchrl_reference(trl, name)
    with cls(3, make_fn(name)) as env:
        assert env.batch_size == torch.Size([3])
        for spec in SPEC_NAMES:
            assert_spec_matches_torchrl(getattr(env, spec), ref[spec])
        assert env.set_seed(7) == ref["seed"]
        assert_td_equal(env.reset(), ref["reset"])


def test_seeds_chain_per_worker():
    seeds = [11]
    for _ in range(3):
        seeds.append(seed_generator(seeds[-1]))
    singles = []
    for s in seeds[:3]:
        single = GymEnv("CartPole-v1")
        single.set_seed(s)
        singles.append(single.reset()["observation"])
        single.close()
    for cls in BATCHED:
        with cls(3, H.make_cartpole) as env:
            assert env.set_seed(11) == seeds[3]
            torch.testing.assert_close(env.reset()["observation"], torch.stack(singles), rtol=0, atol=0)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("cls", BATCHED)
def test_rollout_matches_torchrl(trl, cls, name):
    ref = torchrl_reference(trl, name)
    steps = ref["rollout"].shape[1]
    with cls(3, make_fn(name)) as env:
        env.set_seed(7)
        out = env.rollout(steps, scripted(actions_for(name, steps, 3)), break_when_any_done=False)
        assert out.batch_size == torch.Size([3, steps])
        assert_td_equal(out, ref["rollout"])
        env.set_seed(7)
        assert_td_equal(env.rollout(steps, scripted(actions_for(name, steps, 3))), ref["stop"])
    if name == "CartPole-v1":  # episodes ended at different times: partial resets were exercised
        done = ref["rollout"]["next", "done"].squeeze(-1)
        assert (done.sum(0) == 1).any() and len({tuple(d.nonzero().flatten().tolist()) for d in done}) == 3


@pytest.mark.torchrl
def test_parallel_matches_torchrl_parallel(trl):
    steps, a = 60, actions_for("CartPole-v1", 60, 3, seed=3)
    ref_env = trl.ParallelEnv(3, functools.partial(trl.GymEnv, "CartPole-v1"))
    try:
        seed = ref_env.set_seed(5)
        ref = ref_env.rollout(steps, scripted(a), break_when_any_done=False)
    finally:
        ref_env.close()
    with ParallelEnv(3, H.make_cartpole) as env:
        assert env.set_seed(5) == seed
        assert_td_equal(env.rollout(steps, scripted(a), break_when_any_done=False), ref)


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_reset_mask_matches_torchrl(trl, cls):
    ref_env = trl.SerialEnv(3, functools.partial(trl.GymEnv, "CartPole-v1"))
    env = cls(3, H.make_cartpole)
    try:
        a = actions_for("CartPole-v1", 4, 3)
        for e in (ref_env, env):
            e.set_seed(2)
            e.reset()
        for t in range(4):
            ref_td = ref_env.step(TensorDict({"action": a[t]}, [3]))
            td = env.step(TensorDict({"action": a[t]}, [3]))
            assert_td_equal(td, ref_td)
        current = td["next", "observation"]
        for mask in (torch.tensor([[True], [False], [True]]), torch.tensor([False, True, False])):
            ref_r = ref_env.reset(TensorDict({"_reset": mask}, [3]))
            r = env.reset(TensorDict({"_reset": mask}, [3]))
            rows = mask.reshape(3)
            assert_td_equal(r[rows], ref_r[rows])
            # rows not reset keep their current values (TorchRL returns zeros there)
            torch.testing.assert_close(r["observation"][~rows], current[~rows], rtol=0, atol=0)
            assert not r["done"].any()
            current = r["observation"]
        kept = env.reset(TensorDict({"_reset": torch.zeros(3, 1, dtype=torch.bool)}, [3]))
        torch.testing.assert_close(kept["observation"], current, rtol=0, atol=0)
    finally:
        ref_env.close()
        env.close()


# ------------------------------------------------------------ other behaviour
class BatchMean(Transform):
    """A transform that needs the whole batch: subtracts the batch mean of the observation."""

    def __init__(self):
        super().__init__(in_keys=["observation"], out_keys=["centred"])
        self.seen = []

    def _apply_transform(self, obs):
        self.seen.append(tuple(obs.shape))
        return obs - obs.mean(0, keepdim=True)

    def transform_observation_spec(self, spec):
        spec = spec.clone()
        spec["centred"] = spec["observation"].clone()
        return spec


@pytest.mark.parametrize("cls", BATCHED)
def test_append_transform_sees_the_batch(cls):
    env = cls(4, H.make_pendulum).append_transform(BatchMean())
    try:
        assert isinstance(env, TransformedEnv)
        env.set_seed(0)
        out = env.rollout(5)
        assert out.batch_size == torch.Size([4, 5])
        assert set(first_transform(env).seen) == {(4, 3)}
        torch.testing.assert_close(out["next", "centred"].mean(0), torch.zeros(5, 3), atol=1e-6, rtol=0)
    finally:
        env.close()


@pytest.mark.parametrize("cls", BATCHED)
def test_lists_of_fns_and_kwargs(cls):
    fns = [functools.partial(H.Tiny, horizon=3), functools.partial(H.Tiny, horizon=4)]
    with cls(2, fns, [{"offset": 10.0}, {"offset": 20.0}]) as env:
        out = env.rollout(8, actions=[torch.ones(2, 1)] * 8, break_when_any_done=False)
        assert out["observation"][:, 0, 0].tolist() == [10.0, 20.0]
        assert out["next", "done"].squeeze(-1).sum(1).tolist() == [2, 2]
        assert out["next", "observation"][1, :, 0].tolist() == [21, 22, 23, 24, 21, 22, 23, 24]
        assert out["observation"][0, :, 0].tolist() == [10, 11, 12, 10, 11, 12, 10, 11]
        assert out["observation"][1, :, 0].tolist() == [20, 21, 22, 23, 20, 21, 22, 23]


def test_tensordict_only_sub_envs_serial_equals_parallel():
    a = [torch.randn(3, 1) for _ in range(12)]
    outs = []
    for cls in BATCHED:
        with cls(3, H.Tiny, {"horizon": 4}) as env:
            assert env.set_seed(1) == seed_generator(seed_generator(seed_generator(1)))
            outs.append(env.rollout(12, actions=a, break_when_any_done=False))
    assert_td_equal(outs[0], outs[1])
    assert outs[0]["next", "done"].sum() == 9


def test_close_context_manager_and_state():
    with SerialEnv(2, H.make_pendulum) as env:
        env.rollout(3)
    assert env.is_closed
    env.close()
    env = ParallelEnv(2, H.make_pendulum)
    name, pids = env._pool.shared.name, env.worker_pids
    env.close()
    env.close()
    assert name not in leaks.numbarl_blocks()
    assert not any(pid in {p for p, _ in leaks.python_children()} for pid in pids)
    with pytest.raises(RuntimeError, match="is closed"):
        env.rollout(2)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_parallel_start_methods_one_process_per_worker(method):
    with ParallelEnv(2, H.make_cartpole, num_processes=2, mp_start_method=method, timeout=60) as env:
        assert env.num_processes == 2 and env.mp_start_method == method
        env.set_seed(4)
        out = env.rollout(30, break_when_any_done=False)
    with SerialEnv(2, H.make_cartpole) as ref:
        ref.set_seed(4)
        assert_td_equal(ref.rollout(30, actions=out["action"].unbind(1), break_when_any_done=False), out)


def test_64_workers_on_a_tiny_env():
    for processes in (None, 64):
        with ParallelEnv(64, H.Tiny, {"horizon": 3}, num_processes=processes) as env:
            out = env.rollout(10, break_when_any_done=False)
            assert out.batch_size == torch.Size([64, 10])
            assert int(out["next", "done"].sum()) == 64 * 3
            assert env.num_processes == (processes or min(64, len(__import__("os").sched_getaffinity(0))))


def test_lambda_create_env_fn():
    pytest.importorskip("cloudpickle")
    with ParallelEnv(2, lambda: GymEnv("Pendulum-v1")) as env:
        assert env.rollout(3).batch_size == torch.Size([2, 3])


# ----------------------------------------------------------------- EnvCreator
def test_env_creator_shares_statistics():
    creator = EnvCreator(H.make_counted_pendulum)
    assert len(creator.shared_modules) == 1
    creator2 = pickle.loads(pickle.dumps(creator))
    local = creator2()
    counter = first_transform(local)
    assert counter.shared is not None and counter.stats.tolist() == [0.0, 0.0]
    steps, n = 200, 4
    collected = []
    for cls in BATCHED:
        with cls(n, creator) as env:
            env.set_seed(0)
            out = env.rollout(steps, break_when_any_done=False)
            collected.append(out["next", "observation"].double())
    obs = torch.cat(collected, 0)
    assert counter.stats[0] == 2 * n * steps
    assert counter.stats[1] == pytest.approx(float(obs.sum()), rel=1e-12)
    local.close()
    del local, counter, creator2
    creator.close()


def test_env_creator_errors_and_unshared():
    with pytest.raises(TypeError, match="create_env_fn to be callable, got int"):
        EnvCreator(3)
    with pytest.raises(TypeError, match="create_env_kwargs to be a dict or None, got list"):
        EnvCreator(H.make_pendulum, [])
    creator = EnvCreator(H.make_counted_pendulum, share_memory=False)
    assert creator.shared_modules == []
    env = creator()
    assert first_transform(env).shared is None
    env.close()
    creator.close()


def make_vecnorm_pendulum():
    from numbarl.torch_api import VecNorm

    return TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation", "reward"],
                                                            out_keys=["observation_norm", "reward_norm"], decay=1.0))


def test_vecnorm_nothing_lost():
    """8 worker processes update one shared VecNorm: every sample counted once, moments as if one process saw all."""
    import numbarl.torch_api as api

    if not hasattr(api, "VecNorm"):
        pytest.skip("numbarl.torch_api.VecNorm is not available in this build")
    workers, steps = 8, 10_000
    creator = EnvCreator(make_vecnorm_pendulum)
    try:
        assert len(creator.shared_modules) == 1
        local = creator()
        with ParallelEnv(workers, creator, num_processes=workers) as env:
            env.set_seed(0)
            out = env.rollout(steps, break_when_any_done=False)
        state = first_transform(local).get_extra_state()
        local.close()
        del local
    finally:
        creator.close()
    # rewards: one per step
    rewards = out["next", "reward"].double().reshape(-1, 1)
    assert int(state["reward_samples"]) == workers * steps == 8 * 10**4
    np.testing.assert_allclose(state["reward_loc"], rewards.mean(0), rtol=1e-6)
    np.testing.assert_allclose(state["reward_m2"] / state["reward_weight"], rewards.var(0, unbiased=False), rtol=1e-6)
    # observations: one per step plus the first one of every episode (VecNorm also sees reset observations)
    done = out["next", "done"].squeeze(-1)
    first = torch.ones_like(done)
    first[:, 1:] = done[:, :-1]
    obs = torch.cat([out["next", "observation"].reshape(-1, 3), out["observation"][first]]).double()
    assert int(state["observation_samples"]) == obs.shape[0] == workers * steps + int(first.sum())
    np.testing.assert_allclose(state["observation_loc"], obs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(state["observation_m2"] / state["observation_weight"], obs.var(0, unbiased=False),
                               rtol=1e-6)


def test_cli_collect_parallel(capsys):
    from numbarl.torch_api.cli import main

    assert main(["collect", "--num-envs", "4", "--parallel", "--steps", "2000", "--quiet"]) == 0
    assert main(["collect", "--num-envs", "3", "--steps", "300", "--quiet"]) == 0


def test_unpicklable_create_env_fn():
    import threading

    lock = threading.Lock()  # neither pickle nor cloudpickle takes a lock

    def make():
        with lock:
            return GymEnv("Pendulum-v1")

    with pytest.raises(TypeError, match="requires create_env_fn and create_env_kwargs to be picklable"):
        ParallelEnv(2, make)
    with ParallelEnv(2, make, mp_start_method="fork", timeout=60) as env:  # fork sends no pickle
        assert env.rollout(2).batch_size == torch.Size([2, 2])


def test_scalar_actions_reach_sub_envs_without_array_path():
    """Categorical (0-d) actions go through the TensorDict API of sub-envs that lack the array protocol."""
    from numbarl.torch_api import EnvBase, SerialEnv, Categorical, Composite, Unbounded
    from tensordict import TensorDict

    class Pick(EnvBase):
        def __init__(self):
            super().__init__()
            self.observation_spec = Composite(last=Unbounded((1,)))
            self.action_spec = Categorical(3, shape=())
            self.reward_spec = Unbounded((1,))

        def _reset(self, td):
            return TensorDict({"last": torch.zeros(1)}, [])

        def _step(self, td):
            a = td["action"].float().reshape(1)
            return TensorDict({"last": a, "reward": a, "done": torch.zeros(1, dtype=torch.bool)}, [])

        def _set_seed(self, seed):
            pass

    env = SerialEnv(2, Pick)
    acts = [torch.tensor([t % 3, (t + 1) % 3]) for t in range(4)]
    td = env.rollout(4, actions=acts)
    assert td["next", "last"].squeeze(-1).tolist() == [[0, 1, 2, 0], [1, 2, 0, 1]]
    env.close()
