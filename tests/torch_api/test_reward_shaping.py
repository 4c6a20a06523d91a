"""Reward-shaping transforms: LineariseRewards and TargetReturn.

Differential tests against torchrl 0.14.1: the same multi-objective env
(written once, built against either library), the same weights, seeds and
actions give the same specs and rollouts, also with partial resets in a
batch and inside ``SerialEnv`` / ``ParallelEnv``; the array path of the
rollout against the TensorDict path; bad input.
"""
import functools
import warnings

import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl import torch_api as N
from transform_diff import FAMILIES, Replay

warnings.filterwarnings("ignore", category=DeprecationWarning)

torchrl = pytest.importorskip("torchrl", reason="torchrl 0.14.1 is an optional peer for differential tests")
import torchrl.data as TD  # noqa: E402
import torchrl.envs as TE  # noqa: E402


# ------------------------------------------------------------------ a multi-objective env, in both libraries
def _mo_env(lib, num_rewards=3, bounded=False, batch=(), dtype=torch.float32, horizon=5):
    """An env with a vector reward of ``num_rewards`` entries; sub-env ``i`` ends after ``horizon + i`` steps."""
    EnvBase, Composite, Unbounded, Bounded = lib

    class MultiObjectiveEnv(EnvBase):
        def __init__(self):
            super().__init__(batch_size=torch.Size(batch))
            self.observation_spec = Composite(observation=Unbounded((*batch, 3)), shape=batch)
            self.action_spec = Bounded(-1.0, 1.0, (*batch, 1))
            if bounded:
                low = torch.linspace(-1.0, -0.5, num_rewards).expand(*batch, num_rewards)
                self.reward_spec = Bounded(low, -2 * low, (*batch, num_rewards), dtype=dtype)
            else:
                self.reward_spec = Unbounded((*batch, num_rewards), dtype=dtype)
            self._gen = torch.Generator().manual_seed(0)
            self._t = torch.zeros(batch, dtype=torch.int64)
            self._ends = horizon + torch.arange(int(torch.Size(batch).numel())).reshape(batch)

        def _reset(self, td):
            request = None if td is None else td.get("_reset", None)
            mask = torch.ones(batch, dtype=torch.bool) if request is None else request.reshape(batch)
            self._t = torch.where(mask, torch.zeros_like(self._t), self._t)
            flags = torch.zeros((*batch, 1), dtype=torch.bool)
            return TensorDict({"observation": torch.rand((*batch, 3), generator=self._gen), "done": flags,
                               "terminated": flags.clone()}, batch)

        def _step(self, td):
            self._t = self._t + 1
            reward = torch.rand((*batch, num_rewards), generator=self._gen, dtype=dtype) - 0.5
            done = (self._t >= self._ends).unsqueeze(-1)
            return TensorDict({"observation": torch.rand((*batch, 3), generator=self._gen), "reward": reward,
                               "done": done, "terminated": done.clone()}, batch)

        def _set_seed(self, seed):
            self._gen.manual_seed(seed)

    return MultiObjectiveEnv()


OURS = (N.EnvBase, N.Composite, N.Unbounded, N.Bounded)
THEIRS = (TE.EnvBase, TD.Composite, TD.Unbounded, TD.Bounded)


def _both(transforms, **env_kwargs):
    """``(ours, theirs)``: TransformedEnv of the multi-objective env with ``transforms(lib)`` in each library."""
    return (N.TransformedEnv(_mo_env(OURS, **env_kwargs), transforms(N)),
            TE.TransformedEnv(_mo_env(THEIRS, **env_kwargs), transforms(TE)))


def _compare(ours, theirs, steps=14, atol=0.0, rtol=0.0, td_path=False):
    for family in FAMILIES:
        assert_spec_matches_torchrl(getattr(ours, family), getattr(theirs, family), (family,))
    torch.manual_seed(0)
    actions = [ours.full_action_spec[ours.action_key].rand() for _ in range(steps)]
    out = []
    for env in (ours, theirs):
        env.set_seed(0)
        kwargs = {"callback": (lambda *a: None)} if td_path and env is ours else {}
        out.append(env.rollout(steps, Replay(actions), break_when_any_done=False, **kwargs))
    assert_td_equal(out[0], out[1], atol=atol, rtol=rtol)
    N.check_env_specs(ours, seed=0)
    return out


# ------------------------------------------------------------------ LineariseRewards
@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("weights", [None, [1.0, -2.0, 0.5], torch.tensor([2, 0, 1])])
@pytest.mark.parametrize("out_key", ["reward", "scalar"])
def test_linearise_rollouts_match_torchrl(batch, bounded, weights, out_key):
    def transforms(lib):
        return lib.LineariseRewards(in_keys=["reward"], out_keys=[out_key], weights=weights)

    ours, theirs = _both(transforms, bounded=bounded, batch=batch)
    # sums of three float32 products: float64 accumulation here, float32 there (last-bit differences)
    _compare(ours, theirs, atol=1e-6, rtol=1e-6)


def test_linearise_float64_reward_and_target_return_chain_match_torchrl():
    def transforms(lib):
        return lib.Compose(lib.LineariseRewards(in_keys=["reward"], out_keys=["scalar"], weights=[0.5, 0.25]),
                           lib.TargetReturn(3.0, in_keys=["scalar"]))

    ours, theirs = _both(transforms, num_rewards=2, dtype=torch.float64, batch=(2,))
    a, _ = _compare(ours, theirs)
    scalar = a["next", "scalar"]
    assert scalar.dtype == torch.float64
    torch.testing.assert_close(scalar, 0.5 * a["next", "reward"][..., :1] + 0.25 * a["next", "reward"][..., 1:])


@pytest.mark.parametrize("weights, spec", [
    (None, lambda lib: lib.Unbounded(shape=3)),
    (None, lambda lib: lib.Bounded(0.0, 1.0, shape=3)),
    (None, lambda lib: lib.Bounded(low=torch.tensor([-1.0, -2.0]), high=torch.tensor([1.0, 2.0]))),
    ([1.0, 0.0], lambda lib: lib.Bounded(low=torch.tensor([-1.0, -2.0]), high=torch.tensor([1.0, 2.0]))),
    ([1.0, -1.0], lambda lib: lib.Bounded(low=torch.tensor([-1.0, -2.0]), high=torch.tensor([1.0, 2.0]))),
    ([0.5, -3.0], lambda lib: lib.Bounded(low=torch.tensor([[-1.0, 0.0]] * 2), high=torch.tensor([[1.0, 2.0]] * 2),
                                          dtype=torch.float64)),
])
def test_linearise_reward_spec_matches_torchrl(weights, spec):
    ours = N.LineariseRewards(in_keys=["reward"], weights=weights).transform_reward_spec(spec(N))
    theirs = TE.LineariseRewards(in_keys=["reward"], weights=weights).transform_reward_spec(spec(TD))
    assert_spec_matches_torchrl(ours, theirs)


def test_linearise_composite_reward_spec_matches_torchrl():
    def spec(lib):
        return lib.Composite(agent_0=lib.Composite(reward=lib.Bounded(low=torch.zeros(3), high=torch.ones(3))),
                             agent_1=lib.Composite(reward=lib.Bounded(low=-torch.ones(3), high=torch.ones(3))),
                             other=lib.Unbounded(shape=2))
    keys = [("agent_0", "reward"), ("agent_1", "reward")]
    outs = [("agent_0", "r"), ("agent_1", "reward")]
    ours = N.LineariseRewards(in_keys=keys, out_keys=outs).transform_reward_spec(spec(N))
    theirs = TE.LineariseRewards(in_keys=keys, out_keys=outs).transform_reward_spec(spec(TD))
    assert_spec_matches_torchrl(ours, theirs)
    assert ours["agent_0", "r"].high.tolist() == [3.0]
    assert ours["agent_0", "reward"].shape == (3,)  # the in_key stays when the out_key differs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool])
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, -1.0], [1, 2, 3], torch.tensor([1.0, 2.0, 3.0],
                                                                                        dtype=torch.float64)])
def test_linearise_data_matches_torchrl(dtype, weights):
    torch.manual_seed(0)
    reward = (torch.randn(4, 2, 3) * 3).to(dtype)
    ours = N.LineariseRewards(in_keys=[("agents", "reward")], out_keys=[("agents", "sum")], weights=weights)
    theirs = TE.LineariseRewards(in_keys=[("agents", "reward")], out_keys=[("agents", "sum")], weights=weights)
    a = ours(TensorDict({("agents", "reward"): reward}, [4]))["agents", "sum"]
    b = theirs(TensorDict({("agents", "reward"): reward}, [4]))["agents", "sum"]
    assert a.shape == b.shape == (4, 2, 1) and a.dtype == b.dtype
    torch.testing.assert_close(a, b, atol=1e-2 if dtype == torch.float16 else 1e-6, rtol=1e-5)
    assert ours._apply_transform(reward).shape == (4, 2, 1)


def test_linearise_array_path_matches_tensordict_path():
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.LineariseRewards(in_keys=["reward"], out_keys=["r2"],
                                                                       weights=[-3.0]))
    assert env._array_path_ready()
    out = []
    for callback in (None, lambda *a: None):
        env.set_seed(0)
        torch.manual_seed(0)
        out.append(env.rollout(10, **({} if callback is None else {"callback": callback})))
    assert_td_equal(out[0], out[1])
    torch.testing.assert_close(out[0]["next", "r2"], -3.0 * out[0]["next", "reward"])


def test_linearise_bad_input():
    with pytest.raises(ValueError, match="Expected weights to be a unidimensional tensor"):
        N.LineariseRewards(in_keys=("reward",), weights=torch.ones(2, 4))
    N.LineariseRewards(in_keys=("reward",), weights=-torch.ones(2))  # negative weights are fine
    with pytest.raises(TypeError, match="real-valued weights, got dtype torch.bool"):
        N.LineariseRewards(in_keys=["reward"], weights=[True, False])
    with pytest.raises(TypeError, match="weights as a sequence of real numbers"):
        N.LineariseRewards(in_keys=["reward"], weights="ab")
    with pytest.raises(ValueError, match="finite weights"):
        N.LineariseRewards(in_keys=["reward"], weights=[1.0, float("nan")])
    with pytest.raises(TypeError, match="requires in_keys"):
        N.LineariseRewards(in_keys=None)
    t = N.LineariseRewards(in_keys=["reward"], weights=[1.0, 2.0])
    with pytest.raises(NotImplementedError, match="Aggregation of rewards that take discrete values is not "
                                                  "supported."):
        t.transform_reward_spec(N.Categorical(n=2))
    with pytest.raises(ValueError, match="The number of rewards and weights should match. Got: 3 and 2"):
        t.transform_reward_spec(N.Unbounded(shape=3))
    with pytest.raises(ValueError, match="The number of rewards and weights should match. Got: 3 and 2."):
        t(TensorDict({"reward": torch.zeros(3)}, []))
    with pytest.raises(KeyError, match="'reward' not found"):
        t(TensorDict({"other": torch.zeros(2)}, []))
    with pytest.raises(ValueError, match="weights should match"):
        N.TransformedEnv(_mo_env(OURS, num_rewards=3), N.LineariseRewards(["reward"], weights=[1.0])).reward_spec


def test_linearise_weights_are_a_buffer():
    t = N.LineariseRewards(in_keys=["reward"], weights=[1.0, 2.0])
    assert list(t.state_dict()) == list(TE.LineariseRewards(in_keys=["reward"], weights=[1.0, 2.0]).state_dict())
    t.load_state_dict({"weights": torch.tensor([3.0, 0.0])})
    assert t(TensorDict({"reward": torch.tensor([1.0, 5.0])}, []))["reward"].tolist() == [3.0]
    t.weights.mul_(2)  # in-place changes are seen by the kernel path
    assert t(TensorDict({"reward": torch.tensor([1.0, 5.0])}, []))["reward"].tolist() == [6.0]


# ------------------------------------------------------------------ TargetReturn
@pytest.mark.parametrize("mode", ["reduce", "constant"])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_target_return_rollouts_match_torchrl(mode, batch):
    def transforms(lib):
        return lib.Compose(lib.LineariseRewards(in_keys=["reward"], weights=[1.0, -1.0]),
                           lib.TargetReturn(target_return=4.0, mode=mode))

    ours, theirs = _both(transforms, num_rewards=2, batch=batch)
    a, _ = _compare(ours, theirs)  # 14 steps: several episodes, partial resets in the batch
    if mode == "constant":
        assert (a["next", "target_return"] == 4.0).all()


@pytest.mark.parametrize("mode", ["reduce", "constant"])
def test_target_return_gym_array_and_tensordict_paths_match_torchrl(mode):
    ours = N.TransformedEnv(N.GymEnv("CartPole-v1"), N.TargetReturn(10.0, mode=mode))
    theirs = TE.TransformedEnv(TE.GymEnv("CartPole-v1"), TE.TargetReturn(10.0, mode=mode))
    assert ours._array_path_ready()
    _compare(ours, theirs, steps=40)
    _compare(ours, theirs, steps=40, td_path=True)


@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_target_return_serial_env_matches_torchrl(inside, break_when_any_done):
    rollouts = []
    for lib in (N, TE):
        if inside:
            env = lib.SerialEnv(2, lambda lib=lib: lib.TransformedEnv(lib.GymEnv("CartPole-v1"),
                                                                       lib.TargetReturn(10.0)))
        else:
            env = lib.TransformedEnv(lib.SerialEnv(2, lambda lib=lib: lib.GymEnv("CartPole-v1")),
                                     lib.TargetReturn(10.0))
        env.set_seed(0)
        torch.manual_seed(0)
        rollouts.append(env.rollout(60, break_when_any_done=break_when_any_done))
        env.close()
    assert_td_equal(rollouts[0], rollouts[1])


def test_target_return_parallel_env():
    env = N.TransformedEnv(N.ParallelEnv(2, functools.partial(N.GymEnv, "CartPole-v1")), N.TargetReturn(10.0))
    try:
        env.set_seed(0)
        td = env.rollout(40, break_when_any_done=False)
    finally:
        env.close()
    ref = TE.TransformedEnv(TE.SerialEnv(2, functools.partial(TE.GymEnv, "CartPole-v1")), TE.TargetReturn(10.0))
    ref.set_seed(0)
    torch.manual_seed(0)
    expected = ref.rollout(40, break_when_any_done=False, policy=Replay(list(td["action"].unbind(1))))
    ref.close()
    assert_td_equal(td.exclude("action"), expected.exclude("action"))


@pytest.mark.parametrize("mode", ["reduce", "constant"])
@pytest.mark.parametrize("key", ["reward", ("agents", "reward")])
def test_target_return_outside_env_matches_torchrl(mode, key):
    out = {}
    reward = torch.randn(4, 1)
    request = torch.tensor([True, False, True, False])
    for lib in (N, TE):
        t = lib.TargetReturn(10.0, mode=mode, in_keys=[key], out_keys=["target"], reset_key="_reset")
        td = TensorDict({("next", key): reward}, [4])
        reset = t._reset(td, td.empty())
        nxt = t._step(reset, td.get("next"))
        # a partial reset keeps the targets of the sub-envs it leaves alone
        root = TensorDict({"target": nxt["target"], "_reset": request.unsqueeze(-1)}, [4])
        out[lib] = (nxt["target"], t._reset(root, root.empty())["target"])
    for a, b in zip(out[N], out[TE]):
        assert_td_equal({"x": a}, {"x": b})
    if mode == "reduce":
        assert torch.equal(out[N][0], 10.0 - reward)
        assert out[N][1][:, 0].tolist() == [10.0, float(10.0 - reward[1]), 10.0, float(10.0 - reward[3])]


def test_target_return_float64_reward_follows_the_spec():
    env = N.TransformedEnv(_mo_env(OURS, num_rewards=2, dtype=torch.float64),
                           N.Compose(N.LineariseRewards(["reward"]), N.TargetReturn(2.0)))
    N.check_env_specs(env, seed=0)  # TorchRL starts float32 targets here, which its own check refuses
    td = env.rollout(3)
    assert td["target_return"].dtype == torch.float64
    torch.testing.assert_close(td["next", "target_return"], 2.0 - td["next", "reward"].cumsum(0))


def test_target_return_bad_input():
    with pytest.raises(ValueError, match="Mode can only be 'reduce' or 'constant'"):
        N.TargetReturn(1.0, mode="sum")
    with pytest.raises(TypeError, match="target_return to be a real number, got str"):
        N.TargetReturn("10")
    with pytest.raises(ValueError, match="got nan"):
        N.TargetReturn(float("nan"))
    t = N.TargetReturn(10.0)
    with pytest.raises(NotImplementedError, match="cannot be executed without a parent"):
        t(TensorDict({("next", "reward"): torch.zeros(3, 1)}, [3]))
    with pytest.raises(NotImplementedError, match="cannot be executed without a parent"):
        torch.nn.Sequential(t, torch.nn.Identity())(TensorDict({}, []))
    with pytest.raises(TypeError, match="in_keys were not given"):
        t.in_keys
    with pytest.raises(ValueError, match="multiple rewards are located at the same level"):
        N.TargetReturn(1.0, in_keys=["reward", "bonus"]).out_keys
    t = N.TargetReturn(1.0, in_keys=["reward"], reset_key="_reset")
    td = TensorDict({"target_return": torch.zeros(2, 1), "reward": torch.zeros(2)}, [2])
    with pytest.raises(ValueError, match="The shape of the reward .* and target return .* must match"):
        t._call(td)
    with pytest.raises(KeyError, match="'target_return' not found in the root tensordict"):
        t._step(TensorDict({}, [2]), TensorDict({"reward": torch.zeros(2, 1)}, [2]))
    env = N.TransformedEnv(_mo_env(OURS), N.TargetReturn(1.0, in_keys=["missing"]))
    with pytest.raises(KeyError, match="in_key 'missing' not found in the env's output specs"):
        env.observation_spec
