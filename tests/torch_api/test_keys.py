"""RenameTransform, SelectTransform, ExcludeTransform, CatTensors, ExpandAs vs TorchRL 0.14.1."""
import pytest
import torch
from tensordict import TensorDict

import numbarl.torch_api as nb
from compare import assert_td_equal
from transform_diff import compare_rollouts, compare_specs, pair

pytestmark = pytest.mark.torchrl

@pytest.fixture
def trl():
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is an optional peer for differential tests")


def _both(trl, env, cls, *args, **kwargs):
    return pair(env, getattr(nb, cls)(*args, **kwargs), getattr(trl, cls)(*args, **kwargs))


def _check(ours, theirs, steps=8):
    compare_specs(ours, theirs)
    ours_td, _ = compare_rollouts(ours, theirs, steps=steps)
    return ours_td


def _offline(trl, cls, td, *args, call="forward", **kwargs):
    ours, theirs = getattr(nb, cls)(*args, **kwargs), getattr(trl, cls)(*args, **kwargs)
    a = getattr(ours, call)(td.clone())
    assert_td_equal(a, getattr(theirs, call)(td.clone()))
    return a


# ------------------------------------------------------------------ RenameTransform
@pytest.mark.parametrize("env, args, kwargs", [
    ("pendulum", (["observation"], ["stuff"]), {}),
    ("pendulum", (["observation"], ["stuff"]), {"create_copy": True}),
    ("pendulum", (["reward", "done"], ["r2", "d2"]), {"create_copy": True}),
    ("pendulum", (["reward"], ["r2"]), {}),
    ("pendulum", (["observation"], [("nested", "obs")]), {}),
    ("image", (["observation", "velocity"], ["o", "v"]), {}),
    ("pendulum", (["observation"], ["stuff"], ["action"], ["act"]), {}),
])
def test_rename_matches_torchrl(trl, env, args, kwargs):
    ours, theirs = _both(trl, env, "RenameTransform", *args, **kwargs)
    td = _check(ours, theirs)
    assert ours._array_path_ready()
    out_keys = args[1]
    assert all(("next",) + (k if isinstance(k, tuple) else (k,)) in td.keys(True, True) for k in out_keys)


def test_rename_offline_forward_and_inverse(trl):
    td = TensorDict({"a": torch.zeros(1), "w": torch.ones(1)}, [])
    _offline(trl, "RenameTransform", td, ["a"], ["z"])
    _offline(trl, "RenameTransform", td, ["a"], ["z"], create_copy=True)
    _offline(trl, "RenameTransform", td, ["x"], ["y"], ["a"], ["w"], call="inv")
    _offline(trl, "RenameTransform", td, ["x"], ["y"], ["a"], ["w"], call="inv", create_copy=True)


def test_rename_array_path_matches_tensordict_path():
    env = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.RenameTransform(["observation"], ["o"], ["action"], ["a"]))
    acts = [torch.full((1,), 0.5)] * 4
    env.set_seed(0)
    fast = env.rollout(4, actions=acts)
    env.set_seed(0)
    assert_td_equal(fast, env.rollout(4, actions=acts, callback=lambda *x: None))


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((None, ["b"]), {}, TypeError, "requires in_keys and out_keys"),
    ((["a"], ["b", "c"]), {}, ValueError, "out_keys must have the same length as in_keys"),
    ((["a"], [3]), {}, TypeError, "out_keys must hold"),
    ((["a"], ["b"], ["c"], ["d", "e"]), {}, ValueError, "out_keys_inv must have the same length"),
    ((["a"], ["b"]), {"create_copy": "yes"}, TypeError, "create_copy to be a bool"),
])
def test_rename_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.RenameTransform(*args, **kwargs)


def test_rename_unknown_key_in_env():
    env = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.RenameTransform(["nope"], ["x"]))
    with pytest.raises(KeyError, match="'nope' not found"):
        _ = env.observation_spec


# ------------------------------------------------------------------ SelectTransform / ExcludeTransform
@pytest.mark.parametrize("args, kwargs", [
    (("observation",), {}),
    (("observation", "reward", "done"), {"keep_dones": False}),
    (("observation",), {"keep_rewards": False, "keep_dones": False}),
    (("reward",), {}),
])
def test_select_matches_torchrl(trl, args, kwargs):
    ours, theirs = _both(trl, "pendulum", "SelectTransform", *args, **kwargs)
    _check(ours, theirs)


def test_select_offline(trl):
    td = TensorDict({"a": 1, "reward": 2.0, "done": True, "b": {"c": 2, "d": 3}, "terminated": True}, [])
    _offline(trl, "SelectTransform", td, "a", ("b", "c"))
    _offline(trl, "SelectTransform", td, "a", keep_rewards=False, keep_dones=False)


@pytest.mark.parametrize("args, kwargs", [
    (("truncated",), {}),
    (("observation",), {}),
    (("reward",), {}),
    (("observation", "truncated"), {}),
])
def test_exclude_matches_torchrl(trl, args, kwargs):
    ours, theirs = _both(trl, "pendulum", "ExcludeTransform", *args, **kwargs)
    _check(ours, theirs)
    assert ours._array_path_ready()


def test_exclude_offline(trl):
    td = TensorDict({"a": 1, "reward": 2.0, "b": {"c": 2, "d": 3}}, [])
    _offline(trl, "ExcludeTransform", td, "a", ("b", "c"))
    _offline(trl, "ExcludeTransform", td, "b")
    _offline(trl, "ExcludeTransform", td, "a", inverse=True)
    _offline(trl, "ExcludeTransform", td, "a", inverse=True, call="inv")


def test_select_exclude_without_done_fall_back_to_tensordicts():
    for t in (nb.ExcludeTransform("done"), nb.SelectTransform("observation", keep_dones=False)):
        env = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), t)
        assert not env._array_path_ready()
        nb.check_env_specs(env, seed=0)


@pytest.mark.parametrize("cls", ["SelectTransform", "ExcludeTransform"])
def test_select_exclude_bad_arguments(cls):
    name = "selected_keys" if cls == "SelectTransform" else "excluded_keys"
    with pytest.raises(TypeError, match=f"{cls} requires each of {name} to be a key"):
        getattr(nb, cls)("a", 3)
    with pytest.raises(TypeError, match=f"each of {name} to be a key"):
        getattr(nb, cls)(["a", "b"])
    flag = "keep_dones" if cls == "SelectTransform" else "inverse"
    with pytest.raises(TypeError, match=f"{flag} to be a bool"):
        getattr(nb, cls)("a", **{flag: 1})


# ------------------------------------------------------------------ CatTensors
@pytest.mark.parametrize("args, kwargs", [
    ((["observation", "velocity"], "vec"), {}),
    ((["velocity", "observation"], "vec"), {"sort": False, "del_keys": False}),
    ((["observation"], "vec"), {}),
])
def test_cat_tensors_matches_torchrl(trl, args, kwargs):
    ours, theirs = _both(trl, "image", "CatTensors", *args, **kwargs)
    td = _check(ours, theirs)
    assert td["next", "vec"].shape[-1] == sum(ours.base_env.observation_spec[k].shape[-1] for k in args[0])
    assert ours._array_path_ready()


def test_cat_tensors_finds_its_keys_in_the_env(trl):
    ours, theirs = _both(trl, "pendulum", "CatTensors", out_key="vec")
    _check(ours, theirs)
    assert ours.transform.in_keys == theirs.transform.in_keys == ["observation"]


def test_cat_tensors_offline(trl):
    td = TensorDict({"a": torch.zeros(2, dtype=torch.int64), "b": torch.ones(1)}, [])
    assert _offline(trl, "CatTensors", td, ["a", "b"], "v")["v"].dtype == torch.float32
    td = TensorDict({"a": torch.zeros(3, 2), "b": torch.ones(2)}, [])
    assert _offline(trl, "CatTensors", td, ["a", "b"], "v", dim=-2, unsqueeze_if_oor=True)["v"].shape == (4, 2)
    td = TensorDict({"key1": torch.zeros(1, 1), "key2": torch.ones(1, 1)}, [1])
    _offline(trl, "CatTensors", td, ["key2", "key1"], sort=False)


def test_cat_tensors_array_path_promotes_like_torch():
    t = nb.CatTensors(["a", "b"], "v", del_keys=False)
    import numpy as np

    out = t._np_step({"a": np.arange(2, dtype=np.int64), "b": np.ones(1, np.float32)})
    assert out["v"].dtype == np.float32 and out["v"].tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"in_keys": ["a"], "out_key": 3}, TypeError, "out_key to be a key"),
    ({"in_keys": ["a", 3]}, TypeError, "in_keys must hold"),
    ({"in_keys": ["a"], "dim": 0}, ValueError, "negative dim"),
    ({"in_keys": ["a"], "dim": 1.5}, TypeError, "dim to be an int"),
    ({"in_keys": ["a"], "del_keys": None}, TypeError, "del_keys to be a bool"),
])
def test_cat_tensors_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.CatTensors(**kwargs)


def test_cat_tensors_refuses_keys_outside_the_observation_spec():
    env = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.CatTensors(["observation", "reward"], "v"))
    with pytest.raises(ValueError, match="in_keys in the observation spec"):
        _ = env.observation_spec


# ------------------------------------------------------------------ ExpandAs
@pytest.mark.parametrize("args", [("done", "observation", "done3"), ("reward", "observation"),
                                  ("reward", "observation", "r3")])
def test_expand_as_matches_torchrl(trl, args):
    ours, theirs = _both(trl, "pendulum", "ExpandAs", *args)
    _check(ours, theirs)
    assert ours._array_path_ready()


def test_expand_as_offline(trl):
    td = TensorDict({"a": torch.arange(2.0).reshape(2, 1), "x": torch.zeros(2, 3)}, [2])
    assert _offline(trl, "ExpandAs", td, "a", "x")["a"].shape == (2, 3)
    td = TensorDict({"a": torch.arange(2.0), "x": torch.zeros(2, 3, 4)}, [2])
    assert _offline(trl, "ExpandAs", td, "a", "x", "y")["y"].shape == (2, 3, 4)


@pytest.mark.parametrize("kwargs, match", [
    ({"in_key": 3, "ref_key": "a"}, "in_key to be a key"),
    ({"in_key": "a", "ref_key": ("b", 1)}, "ref_key to be a key"),
    ({"in_key": "a", "ref_key": "b", "out_key": 2.0}, "out_key to be a key"),
])
def test_expand_as_bad_arguments(kwargs, match):
    with pytest.raises(TypeError, match=match):
        nb.ExpandAs(**kwargs)


def test_rename_and_cattensors_refuse_repeated_or_empty_keys():
    import pytest as _pytest
    from numbarl.torch_api import CatTensors, RenameTransform, VecNorm

    with _pytest.raises(ValueError, match="RenameTransform requires distinct out_keys, got 'c' more than once"):
        RenameTransform(["a", "b"], ["c", "c"])
    with _pytest.raises(ValueError, match="CatTensors requires distinct in_keys, got 'a' more than once"):
        CatTensors(["a", "a"], "c")
    with _pytest.raises(ValueError, match="RenameTransform: in_keys must hold non-empty keys"):
        RenameTransform([""], ["c"])
    with _pytest.raises(ValueError, match="VecNorm requires at least one in_key"):
        VecNorm(in_keys=[])
    with _pytest.raises(ValueError, match="VecNorm requires distinct in_keys"):
        VecNorm(in_keys=["a", "a"])


def test_cat_tensors_leaf_observation_spec_like_torchrl(trl):
    """A leaf spec stands for the one in_key: TorchRL returns it as it is; several in_keys need a Composite."""
    import torchrl.data as trd

    ours = nb.CatTensors(in_keys=["a"], out_key="out", dim=-2).transform_observation_spec(nb.Bounded(0, 1, (1, 4, 32)))
    theirs = trl.CatTensors(in_keys=["a"], out_key="out", dim=-2).transform_observation_spec(
        trd.Bounded(0, 1, (1, 4, 32)))
    assert ours.shape == theirs.shape == torch.Size([1, 4, 32])
    assert type(ours).__name__ == type(theirs).__name__
    with pytest.raises(ValueError, match="pass a Composite"):
        nb.CatTensors(in_keys=["a", "b"], out_key="out").transform_observation_spec(nb.Bounded(0, 1, (3,)))
