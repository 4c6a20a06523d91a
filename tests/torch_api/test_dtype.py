"""DTypeCastTransform, DoubleToFloat, DeviceCastTransform, ClipTransform, SignTransform vs TorchRL 0.14.1."""
import functools
import math

import numpy as np
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


def _both(trl, name, cls, *args, **kwargs):
    ours, theirs = pair(name, getattr(nb, cls)(*args, **kwargs), getattr(trl, cls)(*args, **kwargs))
    return ours, theirs


# ------------------------------------------------------------------ casts
@pytest.mark.parametrize("cls, args, kwargs", [
    ("DoubleToFloat", (), {}),
    ("DoubleToFloat", (), {"in_keys": ["obs"], "in_keys_inv": ["action"]}),
    ("DTypeCastTransform", (torch.uint8, torch.float32), {}),
    ("DTypeCastTransform", (torch.float64, torch.float32), {"in_keys": ["obs"], "out_keys": ["obsf"]}),
    ("DTypeCastTransform", (torch.float64, torch.float32), {"in_keys": ["obs"], "in_keys_inv": ["action"]}),
])
def test_cast_in_env_matches_torchrl(trl, cls, args, kwargs):
    ours, theirs = _both(trl, "double", cls, *args, **kwargs)
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=6)
    t_ours, t_theirs = ours.transform, theirs.transform
    assert (t_ours.in_keys, t_ours.out_keys) == (t_theirs.in_keys, t_theirs.out_keys)
    assert (t_ours.in_keys_inv, t_ours.out_keys_inv) == (t_theirs.in_keys_inv, t_theirs.out_keys_inv)


def test_cast_renamed_inverse_key_adds_an_action_entry(trl):
    args = (torch.float64, torch.float32)
    kwargs = {"in_keys_inv": ["action"], "out_keys_inv": ["action_f"]}
    ours, theirs = pair("double", nb.DTypeCastTransform(*args, **kwargs),
                        trl.DTypeCastTransform(*args, **kwargs))
    compare_specs(ours, theirs)
    td = TensorDict({"action_f": torch.tensor([0.25, -0.5])}, [])
    assert_td_equal(ours.transform.inv(td.clone()), theirs.transform.inv(td.clone()))


def test_cast_offline_scans_every_matching_entry(trl):
    td = TensorDict({"a": torch.ones(2, dtype=torch.float64), "b": {"c": torch.ones(1, dtype=torch.float64)},
                     "i": torch.ones(1, dtype=torch.int64)}, [])
    assert_td_equal(nb.DoubleToFloat()(td.clone()), trl.DoubleToFloat()(td.clone()))
    back = TensorDict({"a": torch.ones(2)}, [])
    assert_td_equal(nb.DoubleToFloat().inv(back.clone()), trl.DoubleToFloat().inv(back.clone()))
    only = nb.DoubleToFloat(in_keys=["a"])(td.clone())
    assert only["a"].dtype == torch.float32 and only["b", "c"].dtype == torch.float64


def test_cast_array_path_matches_tensordict_path():
    env = nb.TransformedEnv(nb.GymWrapper(__import__("transform_cases").DoubleEnv()),
                            nb.DTypeCastTransform(torch.uint8, torch.float16))
    assert env._array_path_ready()
    env.set_seed(3)
    a = env.rollout(5, actions=[torch.full((2,), 0.3, dtype=torch.float64)] * 5)
    env.set_seed(3)
    b = env.rollout(5, actions=[torch.full((2,), 0.3, dtype=torch.float64)] * 5, callback=lambda *x: None)
    assert_td_equal(a, b)
    assert a["pix"].dtype == torch.float16


@pytest.mark.parametrize("kwargs, match", [
    ({"dtype_in": "float64", "dtype_out": torch.float32}, "dtype_in to be a torch.dtype"),
    ({"dtype_in": torch.float64, "dtype_out": 3}, "dtype_out to be a torch.dtype"),
    ({"dtype_in": torch.float64, "dtype_out": torch.float32, "out_keys": ["b"]}, "requires in_keys when out_keys"),
    ({"dtype_in": torch.float64, "dtype_out": torch.float32, "in_keys": ["a"], "out_keys": ["b", "c"]},
     "out_keys must have the same length as in_keys"),
    ({"dtype_in": torch.float64, "dtype_out": torch.float32, "in_keys": [3]}, "in_keys must hold"),
    ({"dtype_in": torch.float64, "dtype_out": torch.float32, "out_keys_inv": ["b"]}, "in_keys_inv when out_keys_inv"),
])
def test_cast_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        nb.DTypeCastTransform(**kwargs)
    with pytest.raises(ValueError, match="out_keys must have the same length"):
        nb.DoubleToFloat(in_keys=["a"], out_keys=["b", "c"])


# ------------------------------------------------------------------ device
@pytest.mark.parametrize("kwargs", [{}, {"in_keys": ["observation"], "in_keys_inv": ["action"]}])
def test_device_cast_on_cpu_matches_torchrl(trl, kwargs):
    ours, theirs = pair("pendulum", nb.DeviceCastTransform("cpu", **kwargs),
                        trl.DeviceCastTransform("cpu", **kwargs))
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=5)
    assert ours.transform.device == theirs.transform.device == torch.device("cpu")


def test_device_cast_offline_and_errors():
    td = nb.DeviceCastTransform("cpu", "cpu")(TensorDict({"a": torch.zeros(1)}, []))
    assert td.device == torch.device("cpu")
    assert repr(nb.DeviceCastTransform("cpu")) == "DeviceCastTransform(device=cpu, orig_device=None)"
    with pytest.raises(TypeError, match="device to be a torch.device"):
        nb.DeviceCastTransform(3.5)
    with pytest.raises(ValueError, match="device to name a device"):
        nb.DeviceCastTransform("foo")
    with pytest.raises(ValueError, match="orig_device to name a device"):
        nb.DeviceCastTransform("cpu", "bar")
    with pytest.raises(ValueError, match="out_keys must have the same length"):
        nb.DeviceCastTransform("cpu", in_keys=["a"], out_keys=["b", "c"])


# ------------------------------------------------------------------ clip
@pytest.mark.parametrize("env, kwargs", [
    ("pendulum", {"in_keys": ["observation"], "low": -0.5, "high": 0.5}),
    ("pendulum", {"in_keys": ["observation"], "out_keys": ["clipped"], "low": -2, "high": 0.1}),
    ("pendulum", {"in_keys": ["reward"], "low": -0.5}),
    ("pendulum", {"in_keys": ["observation"], "high": 0.3}),
    ("pendulum", {"in_keys_inv": ["action"], "low": -0.5, "high": 0.2}),
    ("double", {"in_keys": ["obs"], "low": -0.3, "high": 0.1}),
])
def test_clip_matches_torchrl(trl, env, kwargs):
    ours, theirs = pair(env, nb.ClipTransform(**kwargs), trl.ClipTransform(**kwargs))
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)
    assert_td_equal(TensorDict(dict(ours.transform.state_dict()), []),
                    TensorDict(dict(theirs.transform.state_dict()), []))
    assert ours._array_path_ready()


def test_clip_integer_entries_stay_integers(trl):
    ours, theirs = pair("double", nb.ClipTransform(in_keys=["pix"], low=10, high=200.5),
                        trl.ClipTransform(in_keys=["pix"], low=10, high=200.5))
    spec, theirs_spec = ours.observation_spec["pix"], theirs.observation_spec["pix"]
    assert type(spec).__name__ == type(theirs_spec).__name__ == "BoundedDiscrete"
    # TorchRL truncates its widened bounds (low 9) and its data turn float; ours are the integers inside
    assert (int(spec.low.min()), int(spec.high.max())) == (10, 200)
    assert int(theirs_spec.low.min()) == 9
    ours.set_seed(0)
    pix = ours.rollout(3)["next", "pix"]
    assert pix.dtype == torch.uint8 and int(pix.min()) >= 10 and int(pix.max()) <= 200


def test_clip_nan_passes_through_both_paths():
    t = nb.ClipTransform(in_keys=["x"], low=-1.0, high=1.0)
    x = torch.tensor([float("nan"), -3.0, 0.5, math.inf])
    expected = torch.tensor([float("nan"), -1.0, 0.5, 1.0])
    torch.testing.assert_close(t(TensorDict({"x": x.clone()}, []))["x"], expected, equal_nan=True)
    out = t._np_step({"x": x.numpy().copy()})["x"]
    torch.testing.assert_close(torch.from_numpy(out), expected, equal_nan=True)


@pytest.mark.parametrize("kwargs, error, match", [
    ({}, TypeError, "requires low or high"),
    ({"low": 1, "high": 0}, ValueError, "requires low < high"),
    ({"low": 1.0, "high": 1.0}, ValueError, "requires low < high"),
    ({"low": torch.tensor([0.0, 1.0])}, TypeError, "low to be a scalar"),
    ({"high": "a"}, TypeError, "high to be a real number"),
    ({"low": float("nan")}, ValueError, "low not to be NaN"),
    ({"low": 0.0, "in_keys": ["a"], "out_keys": ["b", "c"]}, ValueError, "out_keys must have the same length"),
])
def test_clip_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.ClipTransform(**kwargs)


# ------------------------------------------------------------------ sign
@pytest.mark.parametrize("env, kwargs", [
    ("pendulum", {"in_keys": ["observation"]}),
    ("pendulum", {"in_keys": ["observation", "reward"]}),
    ("pendulum", {"in_keys": ["observation"], "out_keys": ["so"]}),
    ("pendulum", {"in_keys_inv": ["action"]}),
    ("double", {"in_keys": ["obs"]}),
])
def test_sign_matches_torchrl(trl, env, kwargs):
    ours, theirs = pair(env, nb.SignTransform(**kwargs), trl.SignTransform(**kwargs))
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=8)


def test_sign_nan_and_unsigned():
    t = nb.SignTransform(in_keys=["x"])
    x = np.array([np.nan, -2.0, 0.0, 3.0], np.float32)
    assert t._np_step({"x": x})["x"].tolist() == torch.sign(torch.from_numpy(x)).tolist() == [0.0, -1.0, 0.0, 1.0]
    env = nb.TransformedEnv(nb.GymWrapper(__import__("transform_cases").DoubleEnv()), nb.SignTransform(in_keys=["pix"]))
    spec = env.observation_spec["pix"]
    assert spec.dtype == torch.uint8 and int(spec.low.min()) == 0 and int(spec.high.max()) == 1
    nb.check_env_specs(env, seed=0)


def test_sign_bad_arguments():
    with pytest.raises(TypeError, match="in_keys must hold"):
        nb.SignTransform(in_keys=[1.5])
    with pytest.raises(ValueError, match="out_keys must have the same length"):
        nb.SignTransform(in_keys=["a"], out_keys=["b", "c"])


def _cast_env(lib, **keys):
    return lib.TransformedEnv(lib.GymEnv("Pendulum-v1", device="cpu:0"), lib.DeviceCastTransform("cpu:1", **keys))


@pytest.mark.parametrize("keys", [{}, {"in_keys": ["observation"], "in_keys_inv": ["action"]}],
                         ids=["whole", "partial"])
def test_device_cast_sets_the_env_device_like_torchrl(keys):
    trl = pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is the reference")
    ours, theirs = _cast_env(nb, **keys), _cast_env(trl, **keys)
    assert ours.device == theirs.device == (torch.device("cpu:1") if not keys else None)
    nb.check_env_specs(ours)
    serial = nb.SerialEnv(2, functools.partial(_cast_env, nb, **keys))
    assert serial.device == (torch.device("cpu:1") if not keys else None)  # the sub-envs' device, as TorchRL
    nb.check_env_specs(serial)
    serial.close()


def test_partial_device_cast_leaves_a_tensordict_without_device():
    t = nb.DeviceCastTransform("cpu:1", "cpu:0", in_keys=["a"], out_keys=["b"])
    out = t._call(TensorDict({"a": torch.randn(())}, [], device="cpu:0"))
    assert out.device is None and "b" in out.keys()
    whole = nb.DeviceCastTransform("cpu:1", "cpu:0")
    assert whole._call(TensorDict({}, [], device="cpu:0")).device == torch.device("cpu:1")


@pytest.mark.parametrize("keys", [["observation", ("some_other", "nested_key")], ["observation_pixels"], ["action"]])
def test_cast_observation_spec_alone_matches_torchrl(trl, keys):
    """TorchRL's per-part hook: transform_observation_spec maps the in_keys the Composite holds, keeps the rest."""
    import torchrl.data as trd

    def spec(lib):
        leaves = {key: lib.Bounded(0, 1, (1, 3, 3), dtype=torch.double) for key in keys}
        leaves["untouched"] = lib.Bounded(0, 1, (1, 3, 3), dtype=torch.double)
        return lib.Composite(leaves)

    ours = nb.DoubleToFloat(in_keys=keys).transform_observation_spec(spec(nb))
    theirs = trl.DoubleToFloat(in_keys=keys).transform_observation_spec(spec(trd))
    for key in [*keys, "untouched"]:
        assert ours[key].dtype == theirs[key].dtype, key
    assert [ours[key].dtype for key in keys] == [torch.float32] * len(keys)
    assert ours["untouched"].dtype == torch.float64
