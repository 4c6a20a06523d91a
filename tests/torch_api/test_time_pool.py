"""TimeMaxPool: direct steps and (partial) resets, rollouts and batched envs against TorchRL, specs, state, errors."""
import pickle

import batched_helpers
import numpy as np
import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (
    Bounded,
    Composite,
    Compose,
    GymEnv,
    SerialEnv,
    TimeMaxPool,
    TransformedEnv,
    Unbounded,
)
from tensordict import TensorDict

RIGHT = torch.tensor([0, 1])  # CartPole falls over after about 10 steps of pushing right
LEFT = torch.tensor([1, 0])


def _td_path(env, steps, actions):
    return env._td_rollout(steps, None, None, actions, True, False, False, None, False)


def _data(rng, batch, dtype):
    x = torch.from_numpy(rng.normal(size=batch + (3,)) * 4)
    return x.to(dtype) if dtype.is_floating_point else x.round().to(dtype)


def _buffers(t):
    return {name: buf for name, buf in t.named_buffers()}


# --------------------------------------------------------------- direct calls
@pytest.mark.torchrl
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.uint8, torch.float16])
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
@pytest.mark.parametrize("T", [1, 2, 4])
def test_steps_and_resets_match_torchrl(torchrl, dtype, batch, T):
    from torchrl.envs import TimeMaxPool as RLTimeMaxPool

    keys = ["obs", ("nested", "obs")]
    ours = TimeMaxPool(keys, T=T, reset_key="_reset")
    theirs = RLTimeMaxPool(keys, T=T, reset_key="_reset")
    rng = np.random.default_rng(0)
    prev = None
    for step in range(14):
        x = _data(rng, batch, dtype)
        td = TensorDict({"obs": x, ("nested", "obs"): x.flip(-1).clone()}, batch)
        kind = step % 5
        if kind == 3 or step == 0:  # a reset: all sub-envs, a partial mask, or no mask entry
            root = prev.clone() if prev is not None else td.empty()
            if batch and step != 0:
                root["_reset"] = torch.from_numpy(rng.random(batch + (1,)) < 0.5)
            if step == 0:
                root = TensorDict({}, batch)
            a = ours._reset(root.clone(), td.clone())
            b = theirs._reset(root.clone(), td.clone())
        else:
            a, b = ours._call(td.clone()), theirs._call(td.clone())
        assert_td_equal(a, b)
        assert_td_equal(TensorDict(_buffers(ours), []), TensorDict(_buffers(theirs), []))
        prev = a


@pytest.mark.torchrl
def test_reset_takes_missing_key_from_the_previous_step_as_torchrl(torchrl):
    from torchrl.envs import TimeMaxPool as RLTimeMaxPool

    ours, theirs = TimeMaxPool(["obs"], T=3, reset_key="_reset"), RLTimeMaxPool(["obs"], T=3, reset_key="_reset")
    previous = TensorDict({"obs": torch.tensor([[-1.0, 2.0], [3.0, -4.0]])}, [2])
    for t in (ours, theirs):
        t._call(previous.clone())
    root = previous.clone()
    root["_reset"] = torch.tensor([True, False])
    a, b = ours._reset(root.clone(), TensorDict({}, [2])), theirs._reset(root.clone(), TensorDict({}, [2]))
    assert_td_equal(a, b)
    assert a["obs"].tolist() == [[0.0, 2.0], [0.0, 0.0]]
    with pytest.raises(KeyError, match="could not find 'obs' in the reset data"):
        ours._reset(TensorDict({}, [2]), TensorDict({}, [2]))


@pytest.mark.torchrl
def test_nan_propagates_as_torchrl(torchrl):
    from torchrl.envs import TimeMaxPool as RLTimeMaxPool

    ours, theirs = TimeMaxPool(["obs"], T=2), RLTimeMaxPool(["obs"], T=2)
    for x in ([float("nan"), 1.0], [2.0, float("nan")], [-1.0, 0.5], [3.0, 0.25]):
        td = TensorDict({"obs": torch.tensor(x)}, [])
        assert_td_equal(ours._call(td.clone()), theirs._call(td.clone()))


def test_buffer_is_updated_in_place_and_named_as_torchrl():
    t = TimeMaxPool(in_keys="first key", T=3, reset_key="_reset")
    assert t.in_keys == ["first key"] and t.out_keys == ["first key"]
    assert getattr(t, "_maxpool_buffer_first key") is None
    td = TensorDict({"first key": torch.randn(1, 1, 3, 3)}, [1])
    t._call(td.clone())
    buffer = getattr(t, "_maxpool_buffer_first key")
    assert buffer.shape == (3, 1, 1, 3, 3)
    t._reset(td.clone(), td.empty())
    assert getattr(t, "_maxpool_buffer_first key") is buffer
    assert torch.equal(buffer[0], td["first key"]) and not buffer[1:].any()


def test_compose_steps_like_the_transform_alone():
    rng = np.random.default_rng(1)
    alone, composed = TimeMaxPool(["obs"], T=3), Compose(TimeMaxPool(["obs"], T=3))
    xs = [torch.from_numpy(rng.normal(size=(1, 4))) for _ in range(8)]
    for x in xs:
        a = alone._call(TensorDict({"obs": x}, [1]))
        b = composed._call(TensorDict({"obs": x}, [1]))
    assert_td_equal(a, b)
    assert torch.equal(a["obs"], torch.stack(xs[-3:]).max(0).values)


def test_forward_refuses_data_outside_an_env():
    t = TimeMaxPool(in_keys=["observation"], T=3)
    td = TensorDict({"observation": torch.ones(5, 4)}, [5])
    with pytest.raises(NotImplementedError, match="TimeMaxPool cannot be called independently"):
        t(td)
    with pytest.raises(NotImplementedError, match="TimeMaxPool cannot be called independently"):
        torch.nn.Sequential(t, torch.nn.Identity())(td)
    assert t.inv(td) is not td and torch.equal(t.inv(td)["observation"], td["observation"])


# ------------------------------------------------------------------ rollouts
@pytest.mark.torchrl
@pytest.mark.parametrize("out_keys", [None, ["pooled"], [("some", "other")]])
@pytest.mark.parametrize("T", [1, 3])
def test_cartpole_rollout_with_resets_matches_torchrl(torchrl, out_keys, T):
    from torchrl import envs as rl

    actions = [RIGHT] * 40
    kw = dict(in_keys=["observation"], out_keys=out_keys, T=T)
    theirs_env = rl.TransformedEnv(rl.GymEnv("CartPole-v1"), rl.TimeMaxPool(**kw))
    ours_env = TransformedEnv(GymEnv("CartPole-v1"), TimeMaxPool(**kw))
    assert_spec_matches_torchrl(ours_env.observation_spec, theirs_env.observation_spec)
    theirs_env.set_seed(0)
    theirs = theirs_env.rollout(40, actions=actions, break_when_any_done=False)
    assert int(theirs["next", "done"].sum()) >= 3  # resets in the middle of the rollout
    ours_env.set_seed(0)
    assert_td_equal(ours_env.rollout(40, actions=actions, break_when_any_done=False), theirs)  # array path
    ours_env.set_seed(0)
    assert_td_equal(_td_path(ours_env, 40, actions), theirs)
    ours_env.set_seed(0)
    first_done = int(theirs["next", "done"].nonzero()[0, 0])
    assert_td_equal(ours_env.rollout(40, actions=actions), theirs[: first_done + 1])


def _serial_actions():
    return [torch.stack([RIGHT, LEFT if (i // 4) % 2 else RIGHT]) for i in range(40)]


@pytest.mark.torchrl
def test_serial_env_partial_resets_match_torchrl(torchrl):
    from torchrl import envs as rl

    actions = _serial_actions()
    kw = dict(in_keys=["observation"], out_keys=["observation_max"], T=3)
    theirs_env = rl.TransformedEnv(rl.SerialEnv(2, lambda: rl.GymEnv("CartPole-v1")), rl.TimeMaxPool(**kw))
    theirs_env.set_seed(0)
    theirs = theirs_env.rollout(40, actions=actions, break_when_any_done=False)
    done = theirs["next", "done"].squeeze(-1)
    assert bool((done[0] != done[1]).any())  # the sub-envs reset at different steps
    ours_env = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")), TimeMaxPool(**kw))
    try:
        ours_env.set_seed(0)
        assert_td_equal(ours_env.rollout(40, actions=actions, break_when_any_done=False), theirs)
        ours_env.set_seed(0)
        assert_td_equal(_td_path(ours_env, 40, actions), theirs)
    finally:
        ours_env.close()
        theirs_env.close()


@pytest.mark.parametrize("batched", ["serial", "parallel"])
def test_pool_inside_and_outside_a_batched_env_agree(batched):
    from numbarl.torch_api import ParallelEnv

    cls = SerialEnv if batched == "serial" else ParallelEnv
    actions = _serial_actions()
    outside = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")),
                             TimeMaxPool(in_keys=["observation"], out_keys=["observation_max"], T=3))
    inside = cls(2, batched_helpers.make_pooled_cartpole)
    try:
        outside.set_seed(0)
        expected = outside.rollout(40, actions=actions, break_when_any_done=False)
        inside.set_seed(0)
        assert_td_equal(inside.rollout(40, actions=actions, break_when_any_done=False), expected)
    finally:
        outside.close()
        inside.close()


# --------------------------------------------------------------------- specs
@pytest.mark.torchrl
def test_pendulum_spec_matches_torchrl(torchrl):
    from torchrl import envs as rl

    kw = dict(in_keys=["observation"], out_keys=["pooled"], T=2)
    ours = TransformedEnv(GymEnv("Pendulum-v1"), TimeMaxPool(**kw))
    theirs = rl.TransformedEnv(rl.GymEnv("Pendulum-v1"), rl.TimeMaxPool(**kw))
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert ours.observation_spec["pooled"] is not ours.observation_spec["observation"]


def test_bounded_spec_is_widened_to_hold_the_empty_slots():
    t = TimeMaxPool(in_keys=["a", "b", "c"], out_keys=["pa", "pb", "pc"], T=2)
    spec = Composite(a=Bounded(1.0, 2.0, shape=(2,)), b=Bounded(-3, -1, shape=(1,), dtype=torch.int64),
                     c=Unbounded(shape=(3,)))
    out = t.transform_observation_spec(spec.clone())
    assert out["pa"].low.tolist() == [0.0, 0.0] and out["pa"].high.tolist() == [2.0, 2.0]
    assert out["pb"].low.tolist() == [-3] and out["pb"].high.tolist() == [0] and out["pb"].dtype == torch.int64
    assert isinstance(out["pc"], Unbounded) and out["pc"].shape == (3,)
    assert out["a"].low.tolist() == [1.0, 1.0]  # the in_key keeps its spec


# --------------------------------------------------------------------- state
@pytest.mark.torchrl
def test_torchrl_state_dict_loads_and_continues(torchrl):
    from torchrl.envs import TimeMaxPool as RLTimeMaxPool

    rng = np.random.default_rng(2)
    theirs = RLTimeMaxPool(["obs"], T=4)
    xs = [torch.from_numpy(rng.normal(size=(3, 2))).float() for _ in range(10)]
    for x in xs[:5]:
        theirs._call(TensorDict({"obs": x}, [3]))
    ours = TimeMaxPool(["obs"], T=4)
    ours.load_state_dict(theirs.state_dict())
    for x in xs[5:]:
        td = TensorDict({"obs": x}, [3])
        assert_td_equal(ours._call(td.clone()), theirs._call(td.clone()))


def test_state_dict_before_use_is_empty_and_copies_keep_history():
    t = TimeMaxPool(["obs"], T=3)
    assert dict(t.state_dict()) == {}
    for x in (5.0, 1.0):
        t._call(TensorDict({"obs": torch.full((2,), x)}, [2]))
    for copy in (t.clone(), pickle.loads(pickle.dumps(t))):
        out = copy._call(TensorDict({"obs": torch.zeros(2)}, [2]))["obs"]
        assert out.tolist() == [5.0, 5.0]
    out = t._call(TensorDict({"obs": torch.zeros(2)}, [2]))["obs"]
    assert out.tolist() == [5.0, 5.0]


def test_changed_observations_mid_episode_raise_and_a_full_reset_restarts():
    t = TimeMaxPool(["obs"], T=2, reset_key="_reset")
    t._call(TensorDict({"obs": torch.ones(2, 3)}, [2]))
    with pytest.raises(ValueError, match="in the middle of an episode"):
        t._call(TensorDict({"obs": torch.ones(2, 4)}, [2]))
    root = TensorDict({"_reset": torch.tensor([True, False])}, [2])
    with pytest.raises(ValueError, match="reset every sub-env"):
        t._reset(root, TensorDict({"obs": torch.ones(2, 4, dtype=torch.float64)}, [2]))
    out = t._reset(TensorDict({}, [2]), TensorDict({"obs": -torch.ones(2, 4, dtype=torch.float64)}, [2]))
    assert out["obs"].dtype == torch.float64 and not out["obs"].any()
    assert t._maxpool_buffer_obs.shape == (2, 2, 4)


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(T=0), ValueError, "TimeMaxPool requires T >= 1, got 0"),
    (dict(T=-2), ValueError, "TimeMaxPool requires T >= 1, got -2"),
    (dict(T=1.5), TypeError, "TimeMaxPool requires T to be an int, got float"),
    (dict(T="3"), TypeError, "TimeMaxPool requires T to be an int, got str"),
    (dict(T=True), TypeError, "TimeMaxPool requires T to be an int, got bool"),
    (dict(in_keys=["a"], out_keys=["b", "c"]), ValueError, "same length"),
    (dict(in_keys=["a", "a"]), ValueError, "distinct in_keys"),
    (dict(in_keys=["a", "b"], out_keys=["c", "c"]), ValueError, "distinct out_keys"),
    (dict(in_keys=[("a", "b"), "a_b"]), ValueError, "distinct buffer names"),
    (dict(in_keys=["a.b"]), ValueError, "cannot contain '.'"),
    (dict(in_keys=[3]), TypeError, "in_keys"),
    (dict(reset_key=3), TypeError, "reset_key to be a str or a tuple of str"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TimeMaxPool(**kwargs)


def test_reset_key_defaults_and_setter():
    t = TimeMaxPool()
    assert t.in_keys == ["observation"] and t.T == 1 and t.buffer_size == 1
    assert t.reset_key == "_reset"
    t.reset_key = ("agent", "_reset")
    assert t.reset_key == ("agent", "_reset")
    with pytest.raises(TypeError, match="reset_key"):
        t.reset_key = 1.0


def test_missing_key_on_a_step_raises_keyerror():
    t = TimeMaxPool(["obs"], T=2)
    with pytest.raises(KeyError, match="'obs' not found"):
        t._call(TensorDict({"other": torch.zeros(1)}, []))
    with pytest.raises(KeyError, match="'obs' not found"):
        t._np_step({"other": np.zeros(1)})
