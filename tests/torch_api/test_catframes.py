"""CatFrames: online stacks with (partial) resets, offline stacks of trajectories, specs, errors."""
import warnings

import numpy as np
import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (
    Bounded,
    CatFrames,
    Compose,
    Composite,
    GymEnv,
    TransformedEnv,
    Unbounded,
    UnsqueezeTransform,
)
from numbarl.torch_api.envs._array_env import ArrayEnvBase
from tensordict import TensorDict

pytestmark = pytest.mark.filterwarnings("ignore:The last dimension of the tensordict should be marked as 'time'")

RIGHT = torch.tensor([0, 1])  # CartPole falls over after about 10 steps of pushing right


def _td_path(env, steps, actions):
    return env._td_rollout(steps, None, None, actions, True, False, False, None, False)


# ------------------------------------------------------------ online, 1 env
@pytest.mark.torchrl
@pytest.mark.parametrize("padding,value", [("same", 0), ("constant", 0), ("constant", -1.5)])
def test_cartpole_rollout_with_resets_matches_torchrl(torchrl, padding, value):
    from torchrl import envs as rl

    actions = [RIGHT] * 40
    kw = dict(N=3, dim=-1, in_keys=["observation"], padding=padding, padding_value=value)
    theirs_env = rl.TransformedEnv(rl.GymEnv("CartPole-v1"), rl.CatFrames(**kw))
    ours_env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(**kw))
    assert_spec_matches_torchrl(ours_env.observation_spec, theirs_env.observation_spec)
    theirs_env.set_seed(0)
    theirs = theirs_env.rollout(40, actions=actions, break_when_any_done=False)
    assert int(theirs["next", "done"].sum()) >= 3  # resets in the middle of the rollout
    ours_env.set_seed(0)
    assert_td_equal(ours_env.rollout(40, actions=actions, break_when_any_done=False), theirs)  # array path
    ours_env.set_seed(0)
    assert_td_equal(_td_path(ours_env, 40, actions), theirs)
    ours_env.set_seed(0)
    assert_td_equal(ours_env.rollout(40, actions=actions), theirs[: int(theirs["next", "done"].nonzero()[0, 0]) + 1])


@pytest.mark.torchrl
def test_unsqueezed_frames_match_torchrl(torchrl):
    from torchrl import envs as rl

    actions = [torch.full((1,), 0.5)] * 6
    theirs_env = rl.TransformedEnv(rl.GymEnv("Pendulum-v1"), rl.Compose(
        rl.UnsqueezeTransform(-2, in_keys=["observation"]), rl.CatFrames(4, dim=-2, in_keys=["observation"])))
    ours_env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(
        UnsqueezeTransform(-2, in_keys=["observation"]), CatFrames(4, dim=-2, in_keys=["observation"])))
    assert_spec_matches_torchrl(ours_env.observation_spec, theirs_env.observation_spec)
    theirs_env.set_seed(1)
    ours_env.set_seed(1)
    theirs = theirs_env.rollout(6, actions=actions)
    assert theirs["observation"].shape == (6, 4, 3)
    assert_td_equal(ours_env.rollout(6, actions=actions), theirs)


# ------------------------------------------------ transform-level sequences
def _sequence():
    """(method, reset request or None, frames) calls on a batch of 3 sub-envs."""
    g = torch.Generator().manual_seed(1)
    frame = lambda: torch.randint(0, 9, (3, 2), generator=g).float()  # noqa: E731
    return [("step", None, frame()), ("step", None, frame()),
            ("reset", {}, frame()), ("step", None, frame()),
            ("reset", {"_reset": torch.tensor([[True], [False], [True]])}, frame()),
            ("step", None, frame()), ("step", None, frame()),
            ("reset", {"_reset": torch.tensor([False, True, False])}, frame()),
            ("reset", {"_reset": torch.zeros(3, 1, dtype=torch.bool)}, frame()),
            ("step", None, frame())]


@pytest.mark.torchrl
@pytest.mark.parametrize("padding", ["same", "constant"])
def test_step_and_partial_reset_sequence_matches_torchrl(torchrl, padding):
    from torchrl.envs import CatFrames as RLCatFrames

    kw = dict(N=3, dim=-1, in_keys=["x"], padding=padding, padding_value=-1)
    theirs_t, ours_t, arrays_t = RLCatFrames(reset_key="_reset", **kw), CatFrames(**kw), CatFrames(**kw)
    TransformedEnv(Counters(), arrays_t)  # the array path reads the batch dims from its env
    for method, request, x in _sequence():
        if method == "step":
            theirs = theirs_t._call(TensorDict({"x": x.clone()}, [3]))["x"]
            ours = ours_t._call(TensorDict({"x": x.clone()}, [3]))["x"]
            arr = arrays_t._np_step({"x": x.numpy()})["x"]
        else:
            theirs = theirs_t._reset(TensorDict(request, [3]), TensorDict({"x": x.clone()}, [3]))["x"]
            ours = ours_t._reset(TensorDict(request, [3]), TensorDict({"x": x.clone()}, [3]))["x"]
            mask = request.get("_reset")
            mask = None if mask is None else mask.reshape(3).numpy()
            arr = arrays_t._np_reset({"x": x.numpy()}, mask)["x"]
        assert torch.equal(ours, theirs), (method, request)
        assert torch.equal(torch.from_numpy(arr.copy()), theirs)


@pytest.mark.parametrize("frame", [torch.full((2, 3), 5.0), torch.full((2, 1), 5.0, dtype=torch.float64)])
def test_frame_shape_or_dtype_change_mid_episode_raises(frame):
    t = CatFrames(N=2, dim=-1, in_keys=["x"], padding="constant", padding_value=7)
    t._reset(None, TensorDict({"x": torch.ones(2, 1)}, [2]))
    with pytest.raises(ValueError, match=r"CatFrames keeps the frame history of 'x'.*middle of an episode"):
        t._call(TensorDict({"x": frame}, [2]))
    before = t._call(TensorDict({"x": torch.full((2, 1), 2.0)}, [2]))["x"]
    assert torch.equal(before, torch.tensor([[1.0, 2.0]] * 2))  # the history was kept


def test_history_restarts_with_a_new_frame_shape_at_a_full_reset():
    t = CatFrames(N=2, dim=-1, in_keys=["x"], padding="constant", padding_value=7)
    t._reset(None, TensorDict({"x": torch.ones(2, 1)}, [2]))
    t._reset(None, TensorDict({"x": torch.full((2, 3), 4.0)}, [2]))
    out = t._call(TensorDict({"x": torch.full((2, 3), 5.0)}, [2]))["x"]
    assert torch.equal(out, torch.tensor([[4.0] * 3 + [5.0] * 3] * 2))


def test_duplicate_keys_rejected():
    with pytest.raises(ValueError, match="CatFrames requires distinct in_keys, got 'x' more than once"):
        CatFrames(N=2, dim=-1, in_keys=["x", "x"], out_keys=["a", "b"])
    with pytest.raises(ValueError, match="CatFrames requires distinct out_keys, got 'a' more than once"):
        CatFrames(N=2, dim=-1, in_keys=["x", "y"], out_keys=["a", "a"])


@pytest.mark.torchrl
def test_float16_and_uint8_frames(torchrl):
    from torchrl.envs import CatFrames as RLCatFrames

    for dtype in (torch.float16, torch.uint8):
        x = (torch.arange(12.0).reshape(2, 3, 2) * 3.7).to(dtype)
        kw = dict(N=3, dim=-2, in_keys=["x"], padding="constant", padding_value=-3)
        theirs_t, ours_t = RLCatFrames(reset_key="_reset", **kw), CatFrames(**kw)
        for td in (TensorDict({"x": x}, [2]), TensorDict({"x": x + 1}, [2])):
            a = ours_t._call(td.clone())["x"]
            assert torch.equal(a, theirs_t._call(td.clone())["x"])
        a = ours_t._reset(TensorDict({}, [2]), TensorDict({"x": x}, [2]))["x"]
        assert torch.equal(a, theirs_t._reset(TensorDict({}, [2]), TensorDict({"x": x}, [2]))["x"])


# ------------------------------------------------ online, batched env
class Counters(ArrayEnvBase):
    """Three sub-envs counting steps; sub-env i ends after LENGTHS[i] steps. obs = [count, 10 * episode + i]."""

    LENGTHS = np.array([3, 5, 4])

    def __init__(self):
        super().__init__(batch_size=[3])
        self.observation_spec = Composite(obs=Unbounded((3, 2)), shape=(3,))
        self.action_spec = Unbounded((3, 1))
        self.reward_spec = Unbounded((3, 1))
        self.count = np.zeros(3)
        self.episode = np.zeros(3)
        self.buf = {"obs": np.zeros((3, 2), np.float32), "done": np.zeros((3, 1), bool),
                    "terminated": np.zeros((3, 1), bool), "reward": np.zeros((3, 1), np.float32)}

    def _out(self, keys):
        self.buf["obs"][:, 0] = self.count
        self.buf["obs"][:, 1] = 10 * self.episode + np.arange(3)
        return {k: self.buf[k] for k in keys}

    def _np_reset(self, mask=None):
        m = np.ones(3, bool) if mask is None else mask
        self.count[m] = 0
        self.episode[m] += 1
        self.buf["done"][m] = False
        self.buf["terminated"][m] = False
        return self._out(("obs", "done", "terminated"))

    def _np_current(self):
        return self._out(("obs", "done", "terminated"))

    def _np_step(self, action):
        self.count += 1
        self.buf["done"][:, 0] = self.count >= self.LENGTHS
        self.buf["terminated"][:] = self.buf["done"]
        return self._out(("obs", "reward", "done", "terminated"))

    def _set_seed(self, seed):
        self.count[:] = 0
        self.episode[:] = 0


def _torchrl_counters():
    from torchrl import data as rl_data
    from torchrl import envs as rl

    class RLCounters(rl.EnvBase):
        def __init__(self):
            super().__init__(batch_size=[3])
            self.observation_spec = rl_data.Composite(obs=rl_data.Unbounded((3, 2)), shape=(3,))
            self.action_spec = rl_data.Unbounded((3, 1))
            self.reward_spec = rl_data.Unbounded((3, 1))
            self.count = torch.zeros(3)
            self.episode = torch.zeros(3)

        def _obs(self):
            return torch.stack([self.count, 10 * self.episode + torch.arange(3.0)], -1)

        def _reset(self, td):
            mask = td.get("_reset", None) if td is not None else None
            mask = torch.ones(3, dtype=torch.bool) if mask is None else mask.reshape(3)
            self.count[mask] = 0
            self.episode[mask] += 1
            done = torch.zeros(3, 1, dtype=torch.bool)
            return TensorDict({"obs": self._obs(), "done": done, "terminated": done.clone()}, [3])

        def _step(self, td):
            self.count += 1
            done = (self.count >= torch.tensor([3.0, 5.0, 4.0])).unsqueeze(-1)
            return TensorDict({"obs": self._obs(), "reward": torch.zeros(3, 1), "done": done,
                               "terminated": done.clone()}, [3])

        def _set_seed(self, seed):
            self.count.zero_()
            self.episode.zero_()

    return RLCounters()


@pytest.mark.torchrl
@pytest.mark.parametrize("padding", ["same", "constant"])
def test_batched_env_partial_resets_match_torchrl(torchrl, padding):
    from torchrl import envs as rl

    kw = dict(N=3, dim=-1, in_keys=["obs"], padding=padding, padding_value=-1)
    actions = [torch.zeros(3, 1)] * 12
    theirs_env = rl.TransformedEnv(_torchrl_counters(), rl.CatFrames(**kw))
    theirs_env.set_seed(0)
    theirs = theirs_env.rollout(12, actions=actions, break_when_any_done=False)
    ours_env = TransformedEnv(Counters(), CatFrames(**kw))
    ours_env.set_seed(0)
    ours = ours_env.rollout(12, actions=actions, break_when_any_done=False)  # array path, partial resets
    assert ours["next", "obs"].shape == (3, 12, 6)
    assert_td_equal(ours, theirs)
    ours_env.set_seed(0)
    assert_td_equal(_td_path(ours_env, 12, actions), theirs)


@pytest.mark.torchrl
@pytest.mark.parametrize("padding", ["same", "constant"])
def test_serial_env_partial_resets_match_torchrl(torchrl, padding):
    from numbarl.torch_api import SerialEnv
    from torchrl import envs as rl

    left = torch.tensor([1, 0])
    actions = [torch.stack([RIGHT, left if (i // 4) % 2 else RIGHT]) for i in range(40)]
    kw = dict(N=3, dim=-1, in_keys=["observation"], padding=padding, padding_value=-1.0)
    theirs_env = rl.TransformedEnv(rl.SerialEnv(2, lambda: rl.GymEnv("CartPole-v1")), rl.CatFrames(**kw))
    theirs_env.set_seed(0)
    theirs = theirs_env.rollout(40, actions=actions, break_when_any_done=False)
    done = theirs["next", "done"].squeeze(-1)
    assert bool((done[0] != done[1]).any())  # the sub-envs reset at different steps
    ours_env = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")), CatFrames(**kw))
    ours_env.set_seed(0)
    assert_td_equal(ours_env.rollout(40, actions=actions, break_when_any_done=False), theirs)
    ours_env.set_seed(0)
    assert_td_equal(_td_path(ours_env, 40, actions), theirs)
    ours_env.close()
    theirs_env.close()


# ------------------------------------------------------------------ offline
@pytest.fixture(scope="module")
def trajectory():
    env = GymEnv("CartPole-v1")
    env.set_seed(3)
    td = env.rollout(30, actions=[RIGHT] * 30, break_when_any_done=False)
    assert int(td["next", "done"].sum()) >= 2
    return td


@pytest.mark.torchrl
@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("keys", [["observation", ("next", "observation")], [("next", "observation")],
                                  ["observation"], [("next", "observation"), "observation"]])
@pytest.mark.parametrize("n", [1, 3, 40])
def test_offline_forward_matches_torchrl(torchrl, trajectory, padding, keys, n):
    from torchrl.envs import CatFrames as RLCatFrames

    for data in (trajectory, torch.stack([trajectory[:15], trajectory[15:]], 0)):
        kw = dict(N=n, dim=-1, in_keys=keys, padding=padding, padding_value=2.5)
        ours = CatFrames(**kw)(data.clone())
        if n == 1 and len(keys) == 2:  # TorchRL 0.14.1 raises IndexError there; a window of 1 is the frame
            assert_td_equal(ours, data)
            continue
        theirs = RLCatFrames(**kw)(data.clone())
        assert_td_equal(ours, theirs)


@pytest.mark.torchrl
def test_offline_forward_out_keys_dims_and_time_name(torchrl, trajectory):
    from torchrl.envs import CatFrames as RLCatFrames

    data = trajectory.clone()
    data.set("obs2", data["observation"].reshape(30, 2, 2))
    data.set(("next", "obs2"), data["next", "observation"].reshape(30, 2, 2))
    kw = dict(N=3, dim=-2, in_keys=["obs2", ("next", "obs2")], out_keys=["stk", ("next", "stk")])
    assert_td_equal(CatFrames(**kw)(data.clone()), RLCatFrames(**kw)(data.clone()))
    # a time dim that is not the last batch dim, found by its name
    batched = torch.stack([data[:15], data[15:]], 1)
    batched.refine_names("time", None)
    ours = CatFrames(**kw)(batched.clone())
    expected = CatFrames(**kw)(torch.stack([data[:15], data[15:]], 0))
    assert torch.equal(ours["stk"], expected["stk"].transpose(0, 1))


def test_offline_equals_online(trajectory):
    env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(N=4, dim=-1, in_keys=["observation"]))
    env.set_seed(3)
    online = env.rollout(30, actions=[RIGHT] * 30, break_when_any_done=False)
    offline = CatFrames(N=4, dim=-1, in_keys=["observation", ("next", "observation")])(trajectory.clone())
    assert torch.equal(online["observation"], offline["observation"])
    assert torch.equal(online["next", "observation"], offline["next", "observation"])


# -------------------------------------------------------------------- specs
@pytest.mark.torchrl
@pytest.mark.parametrize("dim", [-1, -2, -3])
@pytest.mark.parametrize("make", [lambda: Bounded(torch.zeros(3, 2, 4), torch.arange(24.0).reshape(3, 2, 4)),
                                  lambda: Unbounded((3, 2, 4), dtype=torch.uint8),
                                  lambda: Bounded(0, 255, (5, 3, 2, 4), dtype=torch.uint8)])
def test_spec_matches_torchrl(torchrl, dim, make):
    from torchrl import data as rl_data
    from torchrl.envs import CatFrames as RLCatFrames

    spec = make()
    twin = (rl_data.Bounded(spec.low.clone(), spec.high.clone(), dtype=spec.dtype) if isinstance(spec, Bounded)
            else rl_data.Unbounded(spec.shape, dtype=spec.dtype))
    for kw in ({}, {"out_keys": ["stacked"]}):
        ours = CatFrames(4, dim, in_keys=["x"], **kw).transform_observation_spec(Composite(x=spec))
        theirs = RLCatFrames(4, dim, in_keys=["x"], **kw).transform_observation_spec(rl_data.Composite(x=twin))
        assert_spec_matches_torchrl(ours, theirs)
    # a leaf spec is mapped as the spec of an in_key
    ours = CatFrames(4, dim, in_keys=["x"]).transform_observation_spec(spec.clone())
    theirs = RLCatFrames(4, dim, in_keys=["x"]).transform_observation_spec(twin.clone())
    assert_spec_matches_torchrl(ours, theirs)


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(N=0, dim=-1), ValueError, "CatFrames requires N > 0, got 0"),
    (dict(N=-2, dim=-1), ValueError, "CatFrames requires N > 0, got -2"),
    (dict(N=2.5, dim=-1), TypeError, "CatFrames requires N to be an int, got float"),
    (dict(N=4, dim=1), ValueError, "CatFrames requires dim < 0, got 1"),
    (dict(N=4, dim=0), ValueError, "CatFrames requires dim < 0, got 0"),
    (dict(N=4, dim=-1, padding="zeros"), ValueError, "CatFrames requires padding 'same' or 'constant', got 'zeros'"),
    (dict(N=4, dim=-1, padding=None), TypeError, "CatFrames requires padding to be a str"),
    (dict(N=4, dim=-1, padding_value="x"), TypeError, "CatFrames requires padding_value to be a number"),
    (dict(N=4, dim=-1, as_inverse=1), TypeError, "CatFrames requires as_inverse to be a bool"),
    (dict(N=4, dim=-1, future=1), TypeError, "CatFrames requires future to be a bool"),
    (dict(N=4, dim=-1, mask_key=5), TypeError, "CatFrames requires mask_key to be a str"),
    (dict(N=4, dim=-1, in_keys=[3]), TypeError, "in_keys must hold str or tuple-of-str keys"),
    (dict(N=4, dim=-1, reset_key=5), TypeError, "CatFrames requires reset_key to be a str"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CatFrames(**kwargs)


def test_bad_inputs(trajectory):
    t = CatFrames(N=3, dim=-3, in_keys=["observation"])
    with pytest.raises(ValueError, match=r"cannot concatenate along dim -3 frames of shape \(4,\)"):
        t._call(TensorDict({"observation": torch.zeros(2, 4)}, [2]))
    with pytest.raises(ValueError, match="cannot concatenate along dim -3 a spec of shape"):
        t.transform_observation_spec(Composite(observation=Unbounded((4,))))
    with pytest.raises(KeyError, match="entry to delimit trajectories"):
        CatFrames(N=3, dim=-1, in_keys=["observation"])(trajectory.exclude(("next", "done")))
    with pytest.raises(ValueError, match="cannot process unbatched tensordict"):
        CatFrames(N=3, dim=-1, in_keys=["observation"])(trajectory[0])
    with pytest.raises(KeyError, match="'pixels' not found"):
        CatFrames(N=3, dim=-1)._np_step({"observation": np.zeros(4, np.float32)})
    env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(N=3, dim=-1, in_keys=["observation"], as_inverse=True))
    with pytest.raises(ValueError, match="cannot run inside an env"):
        env.rollout(3)


def test_as_inverse_stacks_in_the_inverse(trajectory):
    t = CatFrames(N=3, dim=-1, in_keys=["observation"], as_inverse=True)
    assert torch.equal(t(trajectory.clone())["observation"], trajectory["observation"])
    expected = CatFrames(N=3, dim=-1, in_keys=["observation"])(trajectory.clone())["observation"]
    assert torch.equal(t.inv(trajectory.clone())["observation"], expected)


# ------------------------------------------------- future windows and masks
@pytest.mark.torchrl
@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("future", [False, True])
@pytest.mark.parametrize("n", [1, 3, 40])
def test_unfolding_future_and_mask_match_torchrl(torchrl, trajectory, padding, future, n):
    from torchrl.envs import CatFrames as RLCatFrames

    batched = torch.stack([trajectory[:15], trajectory[15:]], 0)
    for data in (trajectory, batched, batched.exclude(("next", "done")), batched.transpose(0, 1)):
        if ("next", "done") not in data.keys(True) and not future:
            continue
        data = data.clone()
        if data is not trajectory and data.batch_size[0] == 15:
            data.names = ["time", None]
        kw = dict(N=n, dim=-1, in_keys=["observation"], out_keys=["stack"], padding=padding,
                  padding_value=-2.0, future=future, mask_key="pad")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = RLCatFrames(**kw).unfolding(data.clone())
            ours = CatFrames(**kw).unfolding(data.clone())
        assert_td_equal(ours, theirs)


def test_future_windows_example():
    obs = torch.arange(4.0).view(1, 4, 1)
    done = torch.tensor([[False, True, False, False]]).unsqueeze(-1)
    td = TensorDict({"obs": obs, ("next", "done"): done}, [1, 4]).refine_names(None, "time")
    out = CatFrames(N=3, dim=-1, in_keys=["obs"], future=True, mask_key="pad")(td)
    assert out["obs"][0].tolist() == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
    assert out["pad"][0].int().tolist() == [[0, 0, 1], [0, 1, 1], [0, 0, 1], [0, 1, 1]]


def test_unnamed_time_dim_warns(trajectory):
    with pytest.warns(UserWarning, match="name it 'time'"):
        CatFrames(N=3, dim=-1, in_keys=["observation"])(trajectory.clone())


@pytest.mark.parametrize("kw", [dict(future=True), dict(mask_key="pad")])
def test_offline_only_options_refused_in_env(kw):
    env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(N=3, dim=-1, in_keys=["observation"], **kw))
    with pytest.raises(RuntimeError, match="offline"):
        env.reset()
    with pytest.raises(RuntimeError, match="offline"):
        env.rollout(3)


def test_future_with_root_and_next_keys_refused(trajectory):
    t = CatFrames(N=3, dim=-1, in_keys=["observation", ("next", "observation")], future=True)
    with pytest.raises(NotImplementedError, match="history"):
        t(trajectory.clone())
