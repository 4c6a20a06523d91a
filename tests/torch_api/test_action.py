"""ActionScaling, FlattenAction, ActionDiscretizer, ActionMask vs TorchRL 0.14.1."""
import functools

import numpy as np
import pytest
import torch
from tensordict import TensorDict

import numbarl.torch_api as nb
from compare import assert_td_equal
from transform_cases import BoxActionEnv, make_env
from transform_diff import compare_rollouts, compare_specs, pair

pytestmark = pytest.mark.torchrl

@pytest.fixture
def trl():
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is an optional peer for differential tests")


def _both(trl, env, cls, *args, **kwargs):
    return pair(env, getattr(nb, cls)(*args, **kwargs), getattr(trl, cls)(*args, **kwargs))


def _state(t):
    return TensorDict({k: v for k, v in t.state_dict().items()}, [])


# ------------------------------------------------------------------ ActionScaling
@pytest.mark.parametrize("kwargs", [
    {},
    {"standard_normal": False},
    {"loc": torch.tensor([0.3, 0.1, -1.0, 0.0]), "scale": torch.tensor([1.7, 2.3, 0.4, 3.0])},
    {"loc": torch.tensor([0.3, 0.1, -1.0, 0.0]), "scale": torch.tensor([1.7, 2.3, 0.4, 3.0]),
     "standard_normal": False},
    {"out_keys_inv": ["pol"]},
])
def test_action_scaling_matches_torchrl(trl, kwargs):
    ours, theirs = _both(trl, "box", "ActionScaling", **kwargs)
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)
    assert_td_equal(_state(ours.transform), _state(theirs.transform))
    assert ours._array_path_ready()
    t_ours, t_theirs = ours.transform, theirs.transform
    assert (t_ours.in_keys, t_ours.out_keys, t_ours.in_keys_inv, t_ours.out_keys_inv) == \
        (t_theirs.in_keys, t_theirs.out_keys, t_theirs.in_keys_inv, t_theirs.out_keys_inv)


def test_action_scaling_maps_the_unit_box_to_the_bounds():
    env = nb.TransformedEnv(make_env("box"), nb.ActionScaling())
    low, high = env.base_env.action_spec.low, env.base_env.action_spec.high
    t = env.transform
    _ = env.action_spec
    torch.testing.assert_close(t.denormalize(-torch.ones(4)), low)
    torch.testing.assert_close(t.denormalize(torch.ones(4)), high)
    x = torch.rand(16, 4) * 2 - 1
    torch.testing.assert_close(t.normalize(t.denormalize(x)), x)


def test_action_scaling_offline_and_from_stats(trl):
    td = TensorDict({"action": torch.tensor([[3.0, 6.0], [0.0, 1.0]])}, [2])
    for kwargs in ({"loc": 1.0, "scale": 2.0}, {"loc": 1.0, "scale": 2.0, "standard_normal": False},
                   {"loc": 1.0, "scale": 2.0, "in_keys_inv": []}):
        ours, theirs = nb.ActionScaling(**kwargs), trl.ActionScaling(**kwargs)
        assert_td_equal(ours(td.clone()), theirs(td.clone()))
        if kwargs.get("in_keys_inv") != []:
            assert_td_equal(ours.inv(td.clone()), theirs.inv(td.clone()))
        assert_td_equal(_state(ours), _state(theirs))
    for stats in ({"mean": torch.tensor([1.0, 2.0]), "std": torch.tensor([2.0, 0.0])},
                  {"low": torch.tensor([1.0, 2.0]), "high": torch.tensor([2.0, 5.0])}):
        ours, theirs = nb.ActionScaling.from_stats(**stats), trl.ActionScaling.from_stats(**stats)
        assert_td_equal(_state(ours), _state(theirs))
        assert_td_equal(ours(td.clone()), theirs(td.clone()))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"loc": 1.0}, ValueError, "loc and scale together"),
    ({"in_keys_inv": ["a", "b"]}, ValueError, "at most one key in in_keys_inv"),
    ({"in_keys_inv": []}, ValueError, r"in_keys_inv=\[\] \(forward-only mode\) requires explicit loc and scale"),
    ({"loc": 0.0, "scale": 0.0}, ValueError, "scale without zero entries"),
    ({"loc": "a", "scale": 1.0}, TypeError, "loc to be a number or a tensor"),
    ({"loc": float("inf"), "scale": 1.0}, ValueError, "finite loc"),
    ({"standard_normal": 1}, TypeError, "standard_normal to be a bool"),
    ({"in_keys_inv": ["a"], "out_keys_inv": ["b", "c"]}, ValueError, "out_keys_inv must have the same length"),
    ({"in_keys_inv": [3]}, TypeError, "in_keys_inv must hold"),
])
def test_action_scaling_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.ActionScaling(**kwargs)


def test_action_scaling_needs_a_bounded_spec():
    with pytest.raises(TypeError, match="requires a Bounded action spec"):
        _ = nb.TransformedEnv(nb.GymEnv("CartPole-v1"), nb.ActionScaling()).action_spec
    # TorchRL raises RuntimeError for both: ours are TypeError / ValueError and RuntimeError too
    with pytest.raises(RuntimeError, match="ActionScaling requires a Bounded action spec"):
        _ = nb.TransformedEnv(nb.GymEnv("CartPole-v1"), nb.ActionScaling()).action_spec
    half_open = nb.Composite(full_action_spec=nb.Composite(action=nb.Bounded(
        torch.tensor([-1.0, -float("inf")]), torch.tensor([1.0, 1.0]), (2,))))
    with pytest.raises(RuntimeError, match="ActionScaling requires finite bounds") as info:
        nb.ActionScaling().transform_input_spec(half_open)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="has no loc / scale yet"):
        nb.ActionScaling().inv(TensorDict({"action": torch.zeros(1)}, []))


# ------------------------------------------------------------------ FlattenAction
@pytest.mark.parametrize("kwargs", [{}, {"out_keys_inv": ["flat"]}])
def test_flatten_action_matches_torchrl(trl, kwargs):
    ours, theirs = _both(trl, "matrix", "FlattenAction", **kwargs)
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)
    assert ours.action_spec.shape == (6,)
    assert ours._array_path_ready()


def test_flatten_action_offline(trl):
    flat = TensorDict({"action": torch.arange(12.0).reshape(2, 6)}, [2])
    ours, theirs = nb.FlattenAction(action_shape=(2, 3)), trl.FlattenAction(action_shape=(2, 3))
    assert_td_equal(ours.inv(flat.clone()), theirs.inv(flat.clone()))
    full = TensorDict({"action": torch.arange(12.0).reshape(2, 2, 3)}, [2])
    assert_td_equal(ours(full.clone()), theirs(full.clone()))
    assert ours.state_dict() == theirs.state_dict() == {}


def test_flatten_action_over_a_batched_env():
    env = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "matrix")), nb.FlattenAction())
    try:
        assert env.action_spec.shape == (2, 6)
        nb.check_env_specs(env, seed=0)
    finally:
        env.close()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"first_dim": 0}, ValueError, "negative first_dim"),
    ({"last_dim": 1}, ValueError, "negative last_dim"),
    ({"first_dim": -1, "last_dim": -2}, ValueError, "first_dim <= last_dim"),
    ({"first_dim": 1.0}, TypeError, "first_dim to be an int"),
    ({"action_shape": (2, 0)}, ValueError, "positive sizes in action_shape"),
    ({"action_shape": (2, 3, 4)}, ValueError, "action_shape to have"),
    ({"action_shape": 5}, TypeError, "action_shape to be a sequence"),
    ({"in_keys_inv": ["a"], "out_keys_inv": ["b", "c"]}, ValueError, "out_keys_inv must have the same length"),
    ({"allow_positive_dim": "no"}, TypeError, "allow_positive_dim to be a bool"),
])
def test_flatten_action_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.FlattenAction(**kwargs)


def test_flatten_action_needs_enough_dims():
    with pytest.raises(ValueError, match="does not fit the action spec"):
        _ = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.FlattenAction()).action_spec
    with pytest.raises(ValueError, match="no env-side shape"):
        nb.FlattenAction().inv(TensorDict({"action": torch.zeros(6)}, []))


# ------------------------------------------------------------------ ActionDiscretizer
@pytest.mark.parametrize("args, kwargs", [
    ((4,), {}),
    ((torch.tensor([2, 3, 4, 5]),), {}),
    ((4,), {"categorical": False}),
    ((torch.tensor([2, 3, 4, 5]),), {"categorical": False}),
    ((3,), {"out_action_key": "action_disc"}),
    ((7,), {"sampling": 1}),
    ((7,), {"sampling": 2}),
])
def test_action_discretizer_matches_torchrl(trl, args, kwargs):
    if "sampling" in kwargs:
        kwargs = dict(kwargs, sampling=trl.ActionDiscretizer.SamplingStrategy(kwargs["sampling"]))
    ours, theirs = _both(trl, "box", "ActionDiscretizer", *args, **kwargs)
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)
    assert_td_equal(_state(ours.transform), _state(theirs.transform))


def test_action_discretizer_on_pendulum(trl):
    ours, theirs = _both(trl, "pendulum", "ActionDiscretizer", 5)
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)
    assert ours._array_path_ready()


def test_action_discretizer_bins():
    low, high = np.array([-1.0, 0.0], np.float32), np.array([1.0, 3.0], np.float32)
    S = nb.ActionDiscretizer.SamplingStrategy
    expected = {S.MEDIAN: [[-0.75, -0.25, 0.25, 0.75], [0.375, 1.125, 1.875, 2.625]],
                S.LOW: [[-1.0, -0.5, 0.0, 0.5], [0.0, 0.75, 1.5, 2.25]],
                S.HIGH: [[-0.5, 0.0, 0.5, 1.0], [0.75, 1.5, 2.25, 3.0]]}
    for sampling, values in expected.items():
        env = nb.TransformedEnv(nb.GymWrapper(BoxActionEnv(low, high)), nb.ActionDiscretizer(4, sampling=sampling))
        _ = env.action_spec
        torch.testing.assert_close(env.transform.intervals, torch.tensor(values))
    env = nb.TransformedEnv(nb.GymWrapper(BoxActionEnv(low, high)), nb.ActionDiscretizer(4, sampling=S.RANDOM))
    assert not env._array_path_ready() and env.transform.state_dict() == {}
    idx = torch.tensor([[0, 3]] * 500)
    cont = env.transform.inv(TensorDict({"action": idx}, [500]))["action"]
    assert bool(((cont[:, 0] >= -1.0) & (cont[:, 0] <= -0.5)).all()) and bool(((cont[:, 1] >= 2.25) & (cont[:, 1] <= 3.0)).all())
    assert cont.std(0).min() > 0.05


def test_action_discretizer_scalar_action_gives_categorical():
    class Scalar(BoxActionEnv):
        def __init__(self):
            import gymnasium as gym

            super().__init__()
            self.action_space = gym.spaces.Box(-2.0, 2.0, (), np.float32)

    for categorical, cls in ((True, "Categorical"), (False, "OneHot")):
        env = nb.TransformedEnv(nb.GymWrapper(Scalar()), nb.ActionDiscretizer(5, categorical=categorical))
        assert type(env.action_spec).__name__ == cls and env.action_spec.shape == ((5,) if not categorical else ())
        nb.check_env_specs(env, seed=0)
        idx = torch.tensor(3) if categorical else torch.nn.functional.one_hot(torch.tensor(3), 5).bool()
        assert env.transform.inv(TensorDict({"action": idx}, []))["action"].item() == pytest.approx(0.8)


def test_action_discretizer_over_a_batched_env():
    env = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "box")), nb.ActionDiscretizer(3))
    try:
        assert env.action_spec.shape == (2, 4)
        nb.check_env_specs(env, seed=0)
        env.set_seed(0)
        td = env.rollout(3, actions=[torch.tensor([[0, 1, 2, 0], [2, 2, 2, 2]])] * 3)
        low, high = env.base_env.action_spec.low[1], env.base_env.action_spec.high[1]
        torch.testing.assert_close(td["next", "observation"][1, 0], low + (high - low) * 5 / 6)
    finally:
        env.close()


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((0,), {}, ValueError, "num_intervals >= 1"),
    ((1.5,), {}, TypeError, "num_intervals to be an int or a 1-D sequence"),
    ((True,), {}, TypeError, "num_intervals to be an int"),
    ((torch.tensor([2, 0]),), {}, ValueError, "every num_intervals entry >= 1"),
    ((4,), {"action_key": 3}, TypeError, "action_key to be a key"),
    ((4,), {"out_action_key": 3}, TypeError, "out_action_key to be a key"),
    ((4,), {"sampling": 7}, ValueError, "sampling to be one of MEDIAN"),
    ((4,), {"categorical": 1}, TypeError, "categorical to be a bool"),
])
def test_action_discretizer_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.ActionDiscretizer(*args, **kwargs)


def test_action_discretizer_bad_specs():
    with pytest.raises(TypeError, match="requires a Bounded action spec"):
        _ = nb.TransformedEnv(nb.GymEnv("CartPole-v1"), nb.ActionDiscretizer(3)).action_spec
    with pytest.raises(ValueError, match="one num_intervals entry per action entry"):
        _ = nb.TransformedEnv(make_env("box"), nb.ActionDiscretizer(torch.tensor([2, 3]))).action_spec


# ------------------------------------------------------------------ ActionMask
def _torchrl_masked_env(trl):
    from torchrl.data import Binary, Categorical, Composite, Unbounded

    class MaskedEnv(trl.EnvBase):
        def __init__(self):
            super().__init__()
            self.action_spec = Categorical(4)
            self.observation_spec = Composite(obs=Unbounded((3,)), action_mask=Binary(4, dtype=torch.bool))
            self.reward_spec = Unbounded((1,))

        def _reset(self, tensordict=None, **kwargs):
            self.mask = torch.ones(4, dtype=torch.bool)
            return TensorDict({"obs": torch.zeros(3), "action_mask": self.mask.clone()}, [])

        def _step(self, tensordict):
            action = tensordict["action"]
            assert bool(self.mask[action])
            self.mask[action] = False
            return TensorDict({"obs": torch.full((3,), float(action)), "action_mask": self.mask.clone(),
                               "reward": torch.ones(1), "done": (~self.mask.any()).view(1)}, [])

        def _set_seed(self, seed):
            pass

    return MaskedEnv()


def test_action_mask_matches_torchrl(trl):
    ours = nb.TransformedEnv(make_env("masked"), nb.ActionMask())
    theirs = trl.TransformedEnv(_torchrl_masked_env(trl), trl.ActionMask())
    compare_specs(ours, theirs)
    t_ours, t_theirs = ours.transform, theirs.transform
    assert (t_ours.in_keys, t_ours.out_keys, t_ours.in_keys_inv) == (t_theirs.in_keys, t_theirs.out_keys,
                                                                     t_theirs.in_keys_inv)
    for env in (ours, theirs):
        torch.manual_seed(0)
        td = env.rollout(12, break_when_any_done=False)
        assert td["action"].shape == (12,) and td["action_mask"].shape == (12, 4)
        episodes = td["action"][:12].reshape(3, 4)
        assert all(sorted(e.tolist()) == [0, 1, 2, 3] for e in episodes)  # only legal actions were drawn
    assert ours.action_spec.mask is not None and bool(ours.action_spec.mask.all())


def test_action_mask_over_a_batched_env_with_one_hot_actions():
    def make():
        env = make_env("masked")
        env.action_spec = nb.OneHot(4)
        step = env._step

        def one_hot_step(td):
            td = td.clone(False)
            td.set("action", td["action"].long().argmax(-1))
            return step(td)

        env._step = one_hot_step
        return env

    env = nb.TransformedEnv(nb.SerialEnv(3, make), nb.ActionMask())
    try:
        torch.manual_seed(1)
        td = env.rollout(8, break_when_any_done=False)
        assert td["action"].shape == (3, 8, 4)
        chosen = td["action"].long().argmax(-1)
        for i in range(3):
            for start in (0, 4):
                assert sorted(chosen[i, start:start + 4].tolist()) == [0, 1, 2, 3]
    finally:
        env.close()


def test_action_mask_errors():
    with pytest.raises(TypeError, match="action_key to be a key"):
        nb.ActionMask(action_key=3)
    with pytest.raises(TypeError, match="mask_key to be a key"):
        nb.ActionMask(mask_key=4)
    with pytest.raises(ValueError, match="ActionMask needs an env"):
        nb.ActionMask()(TensorDict({"action_mask": torch.ones(4, dtype=torch.bool)}, []))
    with pytest.raises(TypeError, match="requires a Categorical, OneHot"):
        _ = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.ActionMask()).action_spec


@pytest.mark.parametrize("stats", [{"action_mean": [1.0, 2.0], "action_std": [2.0, 4.0]},
                                   {"action_low": [-1.0, 0.0], "action_high": [1.0, 4.0]}, {}])
def test_action_scaling_from_metadata_like_torchrl(trl, stats):
    vla = pytest.importorskip("torchrl.data.vla", reason="torchrl 0.14.1 is an optional peer")
    meta = vla.RobotDatasetMetadata("bridge", action_dim=2, **{k: torch.tensor(v) for k, v in stats.items()})
    if not stats:
        for cls in (nb.ActionScaling, trl.ActionScaling):
            with pytest.raises(ValueError, match="no action normalization statistics"):
                cls.from_metadata(meta)
        return
    ours, theirs = nb.ActionScaling.from_metadata(meta), trl.ActionScaling.from_metadata(meta)
    assert ours.in_keys_inv == theirs.in_keys_inv
    x = torch.tensor([[3.0, 6.0], [-1.0, 0.5]])
    torch.testing.assert_close(ours.normalize(x), theirs.normalize(x))
    td = TensorDict({"action": x}, [2])
    assert_td_equal(ours(td.clone()), theirs(td.clone()))
