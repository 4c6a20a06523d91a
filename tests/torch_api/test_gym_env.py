"""GymEnv / GymWrapper: spec mapping, rollouts, seeding, and differential tests against torchrl 0.14.1."""
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (Binary, Bounded, Categorical, Composite, GymEnv, GymWrapper, MultiCategorical,
                               MultiOneHot, OneHot, Unbounded, check_env_specs)
from numbarl.torch_api.envs.gym import gym_space_to_spec

warnings.filterwarnings("ignore", category=DeprecationWarning)


class DictObsEnv(gym.Env):
    """A small env with a Dict observation (nested) and a MultiDiscrete action."""

    def __init__(self):
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-10.0, 10.0, (2,), np.float32),
            "velocity": spaces.Box(-np.inf, np.inf, (2,), np.float32),
            "sensors": spaces.Dict({"flag": spaces.Discrete(3), "level": spaces.Box(0, 5, (1,), np.int64)}),
        })
        self.action_space = spaces.MultiDiscrete([3, 3])
        self._t = 0

    def _obs(self):
        p = self._pos.astype(np.float32)
        return {"position": p, "velocity": (p * 0.5).astype(np.float32),
                "sensors": {"flag": int(self._t % 3), "level": np.array([self._t % 6], dtype=np.int64)}}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-1, 1, 2)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._pos = np.clip(self._pos + (np.asarray(action) - 1) * 0.5, -10, 10)
        self._t += 1
        terminated = bool(np.abs(self._pos).max() > 2.5)
        truncated = self._t >= 12
        return self._obs(), float(-np.abs(self._pos).sum()), terminated, truncated, {}


gym.register("NumbarlDictObs-v0", entry_point=DictObsEnv)


# ----------------------------------------------------------------- specs
@pytest.mark.parametrize("space, cls, shape, dtype", [
    (spaces.Box(-1.0, 1.0, (3,), np.float32), Bounded, (3,), torch.float32),
    (spaces.Box(-np.inf, np.inf, (2,), np.float64), Unbounded, (2,), torch.float64),
    (spaces.Box(0, 255, (4, 4, 3), np.uint8), Unbounded, (4, 4, 3), torch.uint8),
    (spaces.Box(0, 10, (2,), np.int64), Bounded, (2,), torch.int64),
    (spaces.Discrete(4), OneHot, (4,), torch.int64),
    (spaces.MultiDiscrete([3, 4]), MultiOneHot, (7,), torch.int64),
    (spaces.MultiBinary(5), Binary, (5,), torch.int8),
])
def test_space_to_spec(space, cls, shape, dtype):
    spec = gym_space_to_spec(space)
    assert isinstance(spec, cls)
    assert tuple(spec.shape) == shape and spec.dtype == dtype


def test_categorical_encoding_and_tuple_spaces():
    assert isinstance(gym_space_to_spec(spaces.Discrete(3), categorical_action_encoding=True), Categorical)
    assert isinstance(gym_space_to_spec(spaces.MultiDiscrete([2, 5]), True), MultiCategorical)
    same = gym_space_to_spec(spaces.Tuple((spaces.Box(0, 1, (2,)), spaces.Box(0, 1, (2,)))))
    assert tuple(same.shape) == (2, 2)
    mixed = gym_space_to_spec(spaces.Tuple((spaces.Box(0, 1, (2,)), spaces.Discrete(2))))
    assert isinstance(mixed, Composite) and set(mixed.keys()) == {"0", "1"}


def test_unsupported_space_raises():
    with pytest.raises(TypeError, match="not supported"):
        gym_space_to_spec(spaces.Text(5))


def test_bad_arguments():
    with pytest.raises(TypeError, match="env_name"):
        GymEnv(3)
    with pytest.raises(ValueError, match="env_name='NoSuchEnv-v0'"):
        GymEnv("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="frame_skip"):
        GymEnv("Pendulum-v1", frame_skip=0)
    with pytest.raises(TypeError, match="gymnasium.Env"):
        GymWrapper(object())


# -------------------------------------------------------------- behaviour
def test_rollout_layout_and_terminated_truncated():
    env = GymEnv("CartPole-v1")
    env.set_seed(0)
    td = env.rollout(200, break_when_any_done=False)
    assert td.batch_size == (200,)
    done = td["next", "done"]
    assert torch.equal(done, td["next", "terminated"] | td["next", "truncated"])
    assert done.sum() >= 2
    first_done = int(done.squeeze(-1).nonzero()[0])
    # the step after a done starts a fresh episode: its root done flag is False
    assert not td["done"][first_done + 1].any()
    assert not torch.equal(td["observation"][first_done + 1], td["next", "observation"][first_done])
    # elsewhere the root observation is the previous step's next observation
    same = [t for t in range(1, 200) if not done[t - 1].any()]
    assert torch.equal(td["observation"][same], td["next", "observation"][[t - 1 for t in same]])


def test_rollout_breaks_on_done():
    env = GymEnv("CartPole-v1")
    env.set_seed(1)
    td = env.rollout(500)
    assert td["next", "done"][-1].all() and not td["next", "done"][:-1].any()


def test_seeding_reproduces():
    env = GymEnv("Pendulum-v1")
    acts = [torch.tensor([0.3 * ((-1) ** i)]) for i in range(20)]
    env.set_seed(5)
    a = env.rollout(20, actions=acts)
    env.set_seed(5)
    b = env.rollout(20, actions=acts)
    assert_td_equal(a, b)
    env.set_seed(6)
    c = env.rollout(20, actions=acts)
    assert not torch.equal(a["observation"], c["observation"])


def test_array_and_tensordict_paths_agree():
    """The preallocated rollout equals the TensorDict step-by-step path."""
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    acts = [torch.tensor(i % 2) for i in range(60)]
    env.set_seed(3)
    fast = env.rollout(60, actions=acts, break_when_any_done=False)
    env.set_seed(3)
    slow = env._td_rollout(60, None, None, acts, True, False, False, None, False)
    assert_td_equal(fast, slow)


def test_policy_sees_current_observation():
    env = GymEnv("Pendulum-v1")
    seen = []

    def policy(td):
        seen.append(td["observation"].clone())
        td["action"] = torch.zeros(1)
        return td

    env.set_seed(0)
    td = env.rollout(5, policy)
    assert torch.equal(torch.stack(seen), td["observation"])


def test_continue_rollout_from_tensordict():
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    first = env.rollout(3)
    start = first[-1]["next"].exclude("reward")
    second = env.rollout(3, auto_reset=False, tensordict=start)
    assert torch.equal(second["observation"][0], first["next", "observation"][-1])


def test_step_and_maybe_reset_and_rand_step():
    env = GymEnv("CartPole-v1")
    env.set_seed(0)
    td = env.reset()
    for _ in range(100):
        td = env.rand_action(td)
        td, nxt = env.step_and_maybe_reset(td)
        if td["next", "done"].any():
            assert not nxt["done"].any()
            break
        td = nxt
    else:
        pytest.fail("CartPole never finished an episode in 100 random steps")
    step = env.rand_step(env.reset())
    assert "next" in step.keys() and step["next", "reward"].shape == (1,)


def test_check_env_specs_and_fake_tensordict():
    for env in (GymEnv("Pendulum-v1"), GymEnv("CartPole-v1"), GymEnv("NumbarlDictObs-v0")):
        check_env_specs(env, seed=0)
        fake = env.fake_tensordict()
        assert ("next", "reward") in fake.keys(True, True)


def test_dict_observation_keys():
    env = GymEnv("NumbarlDictObs-v0", categorical_action_encoding=True)
    env.set_seed(0)
    td = env.rollout(30, break_when_any_done=False)
    assert td["sensors", "level"].dtype == torch.int64
    assert td["next", "sensors", "flag"].shape == (30,)  # categorical encoding applies to observations too
    assert isinstance(env.action_spec, Categorical) and env.action_spec.shape == (2,)  # equal nvec
    onehot = GymEnv("NumbarlDictObs-v0")
    assert onehot.observation_spec["sensors", "flag"].shape == (3,)
    assert isinstance(onehot.action_spec, OneHot) and onehot.action_spec.shape == (2, 3)
    onehot.set_seed(0)
    assert onehot.rollout(5)["next", "sensors", "flag"].sum(-1).eq(1).all()


def test_frame_skip_sums_rewards():
    a, b = GymEnv("Pendulum-v1"), GymEnv("Pendulum-v1", frame_skip=2)
    acts = [torch.tensor([0.5])] * 8
    a.set_seed(0)
    b.set_seed(0)
    ra = a.rollout(8, actions=acts)["next", "reward"]
    rb = b.rollout(4, actions=acts)["next", "reward"]
    assert torch.allclose(rb.squeeze(-1), ra.view(4, 2).sum(-1).squeeze(-1) if ra.dim() == 1 else ra.view(4, 2, 1).sum(1).squeeze(-1))


def test_atari_pixels():
    pytest.importorskip("ale_py", reason="ale-py is an optional peer for Atari frames")
    env = GymEnv("ALE/Pong-v5")
    assert env.observation_spec["pixels"].shape == (210, 160, 3)
    env.set_seed(0)
    td = env.rollout(5)
    assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].shape == (5, 210, 160, 3)
    env.close()
    env.close()


@pytest.mark.parametrize("pixels_only", [False, True])
def test_atari_from_pixels_gives_one_frame_entry(pixels_only):
    pytest.importorskip("ale_py", reason="ale-py is an optional peer for Atari frames")
    env = GymEnv("ALE/Pong-v5", from_pixels=True, pixels_only=pixels_only)
    assert list(env.observation_spec.keys()) == ["pixels"]
    td = env.rollout(2)
    assert "observation" not in td.keys() and "observation" not in td["next"].keys()
    assert td["next", "pixels"].shape == (2, 210, 160, 3)
    env.close()


# ------------------------------------------------------------ differential
def _pair(torchrl, name, **kwargs):
    from torchrl.envs import GymEnv as TGymEnv

    return GymEnv(name, **kwargs), TGymEnv(name, **kwargs)


@pytest.mark.torchrl
@pytest.mark.parametrize("name, kwargs, action", [
    ("Pendulum-v1", {}, lambda i: torch.tensor([np.sin(i) * 2], dtype=torch.float32)),
    ("CartPole-v1", {}, lambda i: torch.nn.functional.one_hot(torch.tensor((i * 7) % 3 % 2), 2)),
    ("CartPole-v1", {"categorical_action_encoding": True}, lambda i: torch.tensor((i * 7) % 3 % 2)),
    ("NumbarlDictObs-v0", {"categorical_action_encoding": True}, lambda i: torch.tensor([i % 3, (i // 2) % 3])),
])
@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_rollout_matches_torchrl(torchrl, name, kwargs, action, break_when_any_done):
    ours, theirs = _pair(torchrl, name, **kwargs)
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert_spec_matches_torchrl(ours.full_action_spec, theirs.full_action_spec)
    assert_spec_matches_torchrl(ours.full_reward_spec, theirs.full_reward_spec)
    assert_spec_matches_torchrl(ours.full_done_spec, theirs.full_done_spec)
    assert_td_equal(ours.fake_tensordict(), theirs.fake_tensordict())
    acts = [action(i) for i in range(120)]
    assert ours.set_seed(11) == theirs.set_seed(11)
    a = ours.rollout(120, actions=acts, break_when_any_done=break_when_any_done)
    b = theirs.rollout(120, actions=acts, break_when_any_done=break_when_any_done)
    assert_td_equal(a, b)


@pytest.mark.torchrl
def test_reset_and_step_match_torchrl(torchrl):
    ours, theirs = _pair(torchrl, "Pendulum-v1")
    ours.set_seed(2)
    theirs.set_seed(2)
    a, b = ours.reset(), theirs.reset()
    assert_td_equal(a, b)
    a["action"] = b["action"] = torch.tensor([1.0])
    assert_td_equal(ours.step(a), theirs.step(b))


@pytest.mark.torchrl
@pytest.mark.parametrize("pixels_only", [True, False])
def test_from_pixels_matches_torchrl(torchrl, pixels_only):
    pytest.importorskip("pygame", reason="pygame renders classic-control frames")
    ours, theirs = _pair(torchrl, "Pendulum-v1", from_pixels=True, pixels_only=pixels_only)
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert ("observation" in ours.observation_spec.keys()) is not pixels_only
    acts = [torch.tensor([0.5])] * 3
    ours.set_seed(0)
    theirs.set_seed(0)
    a = ours.rollout(3, actions=acts)
    assert a["next", "pixels"].dtype == torch.uint8 and a["next", "pixels"].shape[-1] == 3
    assert_td_equal(a, theirs.rollout(3, actions=acts))


def test_from_pixels_needs_rgb_array():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        GymWrapper(gym.make("Pendulum-v1"), from_pixels=True)


@pytest.mark.torchrl
def test_random_policy_rollouts_match_torchrl_across_early_stops(torchrl):
    """Random actions are drawn in bulk, yet the generator ends where per-step draws leave it."""
    ours, theirs = _pair(torchrl, "CartPole-v1")
    out = []
    for env in (ours, theirs):
        env.set_seed(3)
        torch.manual_seed(7)
        first = env.rollout(500)  # stops early, at the first done
        second = env.rollout(40, break_when_any_done=False)
        out.append((first, second, torch.rand(3)))
    assert out[0][0].shape[0] < 500
    assert_td_equal(out[0][0], out[1][0])
    assert_td_equal(out[0][1], out[1][1])
    assert torch.equal(out[0][2], out[1][2])


def test_state_dict_of_gym_envs():
    from numbarl.torch_api import TransformedEnv

    assert GymEnv("Pendulum-v1").state_dict() == {}
    assert isinstance(TransformedEnv(GymEnv("Pendulum-v1")).state_dict(), dict)


@pytest.mark.torchrl
@pytest.mark.parametrize("kwargs", [{}, {"frame_skip": 4}, {"from_pixels": True, "pixels_only": False},
                                    {"from_pixels": True}])
def test_atari_frames_match_torchrl(torchrl, kwargs):
    pytest.importorskip("ale_py", reason="ale-py is an optional peer for Atari frames")
    ours, theirs = _pair(torchrl, "ALE/Pong-v5", **kwargs)
    assert ours.env.unwrapped._frameskip == theirs._env.unwrapped._frameskip
    acts = [torch.nn.functional.one_hot(torch.tensor(i % 6), 6) for i in range(12)]
    ours.set_seed(0)
    theirs.set_seed(0)
    assert_td_equal(ours.rollout(12, actions=acts), theirs.rollout(12, actions=acts))
