"""UnsqueezeTransform, SqueezeTransform, FlattenObservation: TorchRL parity, views, inverses, errors."""
import numpy as np
import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (
    Bounded,
    Categorical,
    Compose,
    Composite,
    EnvBase,
    FlattenObservation,
    GymEnv,
    SqueezeTransform,
    TransformedEnv,
    Unbounded,
    UnsqueezeTransform,
    check_env_specs,
)
from tensordict import TensorDict

SPEC_23 = lambda: Bounded(torch.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3) + 100)  # noqa: E731
SPEC_213 = lambda: Bounded(torch.zeros(2, 1, 3), torch.arange(6.0).reshape(2, 1, 3) + 1)  # noqa: E731
SPEC_234 = lambda: Bounded(torch.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4) + 1)  # noqa: E731

CASES = [  # (class name, args, kwargs, spec, value shape with a batch of 5)
    ("UnsqueezeTransform", (-1,), {}, SPEC_23, (5, 2, 3)),
    ("UnsqueezeTransform", (-2,), {}, SPEC_23, (5, 2, 3)),
    ("UnsqueezeTransform", (-3,), {}, SPEC_23, (5, 2, 3)),
    ("UnsqueezeTransform", (1,), {"allow_positive_dim": True}, SPEC_23, (2, 3)),
    ("SqueezeTransform", (-2,), {}, SPEC_213, (5, 2, 1, 3)),
    ("SqueezeTransform", (-1,), {}, SPEC_213, (5, 2, 1, 3)),
    ("SqueezeTransform", (1,), {"allow_positive_dim": True}, SPEC_213, (2, 1, 3)),
    ("FlattenObservation", (-3, -1), {}, SPEC_234, (5, 2, 3, 4)),
    ("FlattenObservation", (-2, -1), {}, SPEC_234, (5, 2, 3, 4)),
    ("FlattenObservation", (-3, -2), {}, SPEC_234, (5, 2, 3, 4)),
    ("FlattenObservation", (-1, -1), {}, SPEC_234, (5, 2, 3, 4)),
    ("FlattenObservation", (0, 1), {"allow_positive_dim": True}, SPEC_234, (2, 3, 4)),
]


def _make(module, name, args, kwargs, **keys):
    return getattr(module, name)(*args, **kwargs, **keys)


def _twin(rl_data, spec):
    if isinstance(spec, Bounded):
        return rl_data.Bounded(spec.low.clone(), spec.high.clone(), dtype=spec.dtype)
    if isinstance(spec, Categorical):
        return rl_data.Categorical(spec.n, shape=spec.shape, dtype=spec.dtype)
    return rl_data.Unbounded(spec.shape, dtype=spec.dtype)


@pytest.mark.torchrl
@pytest.mark.parametrize("name,args,kwargs,spec,shape", CASES)
def test_outputs_and_specs_match_torchrl(torchrl, name, args, kwargs, spec, shape):
    import numbarl.torch_api as ours_mod
    from torchrl import data as rl_data
    from torchrl import envs as rl

    x = torch.arange(float(np.prod(shape))).reshape(shape)
    batch = [5] if shape[0] == 5 else []
    for keys in ({"in_keys": ["p"]}, {"in_keys": ["p"], "out_keys": ["q"]}):
        ours_t, theirs_t = _make(ours_mod, name, args, kwargs, **keys), _make(rl, name, args, kwargs, **keys)
        ours = ours_t(TensorDict({"p": x.clone()}, batch))
        assert_td_equal(ours, theirs_t(TensorDict({"p": x.clone()}, batch)))
        arrays = ours_t._np_step({"p": x.numpy()})
        out_key = ours_t.out_keys[0]
        assert torch.equal(torch.from_numpy(arrays[out_key]), ours[out_key])
        assert np.shares_memory(arrays[out_key], x.numpy())  # a view: nothing copied
        for s in (spec(), Unbounded((2, 1, 3), dtype=torch.uint8) if name == "SqueezeTransform" else
                  Unbounded(spec().shape, dtype=torch.uint8), Categorical(4, spec().shape)):
            assert_spec_matches_torchrl(ours_t.transform_observation_spec(Composite(p=s)),
                                        theirs_t.transform_observation_spec(rl_data.Composite(p=_twin(rl_data, s))))


@pytest.mark.torchrl
@pytest.mark.parametrize("name,spec_shape,policy_shape", [("UnsqueezeTransform", (2, 3), (2, 3, 1)),
                                                          ("SqueezeTransform", (2, 3, 1), (2, 3))])
def test_inverse_matches_torchrl(torchrl, name, spec_shape, policy_shape):
    import numbarl.torch_api as ours_mod
    from torchrl import data as rl_data
    from torchrl import envs as rl

    keys = {"in_keys_inv": ["action"], "out_keys_inv": ["policy_action"]}
    ours_t, theirs_t = _make(ours_mod, name, (-1,), {}, **keys), _make(rl, name, (-1,), {}, **keys)
    td = TensorDict({"policy_action": torch.arange(6.0).reshape(policy_shape)}, [])
    assert_td_equal(ours_t.inv(td.clone()), theirs_t.inv(td.clone()))
    arrays = ours_t._np_inv({"policy_action": td["policy_action"].numpy()})
    assert torch.equal(torch.from_numpy(arrays["action"]), theirs_t.inv(td.clone())["action"])
    spec = Bounded(0.0, 1.0, spec_shape)
    ours = ours_t.transform_input_spec(Composite(full_action_spec=Composite(action=spec), full_state_spec=Composite()))
    theirs = theirs_t.transform_input_spec(rl_data.Composite(
        full_action_spec=rl_data.Composite(action=_twin(rl_data, spec)), full_state_spec=rl_data.Composite()))
    assert_spec_matches_torchrl(ours, theirs)


@pytest.mark.torchrl
def test_in_env_matches_torchrl(torchrl):
    from torchrl import envs as rl

    actions = [torch.full((1,), -0.3)] * 5
    theirs_env = rl.TransformedEnv(rl.GymEnv("Pendulum-v1"), rl.Compose(
        rl.UnsqueezeTransform(-1, in_keys=["observation"]), rl.FlattenObservation(-2, -1, in_keys=["observation"]),
        rl.UnsqueezeTransform(-2, in_keys=["observation"], out_keys=["obs2"]),
        rl.SqueezeTransform(-2, in_keys=["obs2"])))
    ours_env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(
        UnsqueezeTransform(-1, in_keys=["observation"]), FlattenObservation(-2, -1, in_keys=["observation"]),
        UnsqueezeTransform(-2, in_keys=["observation"], out_keys=["obs2"]), SqueezeTransform(-2, in_keys=["obs2"])))
    assert_spec_matches_torchrl(ours_env.observation_spec, theirs_env.observation_spec)
    theirs_env.set_seed(2)
    theirs = theirs_env.rollout(5, actions=actions)
    for run in (lambda: ours_env.rollout(5, actions=actions),
                lambda: ours_env._td_rollout(5, None, None, actions, True, True, False, None, False)):
        ours_env.set_seed(2)
        assert_td_equal(run(), theirs)


class TwoCounters(EnvBase):
    """Two sub-envs (batch [2]) whose observation [4] counts steps."""

    def __init__(self):
        super().__init__(batch_size=[2])
        self.observation_spec = Composite(x=Unbounded((2, 4)), shape=(2,))
        self.action_spec = Unbounded((2, 1))
        self.reward_spec = Unbounded((2, 1))

    def _reset(self, td):
        self.n = torch.zeros(2, 4)
        return TensorDict({"x": self.n.clone()}, [2])

    def _step(self, td):
        self.n += 1
        return TensorDict({"x": self.n.clone(), "reward": torch.zeros(2, 1),
                           "done": torch.zeros(2, 1, dtype=torch.bool)}, [2])

    def _set_seed(self, seed):
        pass


def test_positive_dims_count_from_the_env_batch():
    t = UnsqueezeTransform(0, allow_positive_dim=True, in_keys=["x"])
    assert t(TensorDict({"x": torch.zeros(3, 4)}, []))["x"].shape == (1, 3, 4)  # no env: from dim 0
    spec = t.transform_observation_spec(Composite(x=Unbounded((2, 4)), shape=(2,)))
    assert spec["x"].shape == (2, 1, 4)  # after the Composite's batch dim
    env = TransformedEnv(TwoCounters(), UnsqueezeTransform(0, allow_positive_dim=True, in_keys=["x"]))
    assert env.observation_spec["x"].shape == (2, 1, 4)
    td = env.rollout(3)
    assert td["next", "x"].shape == (2, 3, 1, 4)  # after the env's batch dim
    check_env_specs(env)
    flat = TransformedEnv(TwoCounters(), Compose(UnsqueezeTransform(-1, in_keys=["x"]),
                                                 FlattenObservation(0, 1, in_keys=["x"], allow_positive_dim=True)))
    assert flat.observation_spec["x"].shape == (2, 4) and flat.rollout(2)["x"].shape == (2, 2, 4)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: UnsqueezeTransform(), TypeError, "UnsqueezeTransform requires dim to be an int, got None"),
    (lambda: UnsqueezeTransform(0), ValueError, "UnsqueezeTransform requires dim < 0"),
    (lambda: UnsqueezeTransform(1.0), TypeError, "UnsqueezeTransform requires dim to be an int, got float"),
    (lambda: SqueezeTransform(None), TypeError, "SqueezeTransform requires dim to be an int, got None"),
    (lambda: SqueezeTransform(2), ValueError, "pass allow_positive_dim=True"),
    (lambda: SqueezeTransform(-1, allow_positive_dim="yes"), TypeError, "allow_positive_dim to be a bool"),
    (lambda: FlattenObservation(0, 2), ValueError, "FlattenObservation requires first_dim < 0"),
    (lambda: FlattenObservation(-1, -3), ValueError, "first_dim <= last_dim, got -1 and -3"),
    (lambda: FlattenObservation(-2, "x"), TypeError, "last_dim to be an int"),
    (lambda: UnsqueezeTransform(-1, in_keys=[None]), TypeError, "in_keys must hold str"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_out_of_range_dims():
    with pytest.raises(ValueError, match=r"cannot insert a dim at -4 into shape \(2, 3\)"):
        UnsqueezeTransform(-4, in_keys=["x"])(TensorDict({"x": torch.zeros(2, 3)}, []))
    with pytest.raises(ValueError, match=r"cannot squeeze dim -3 of shape \(2, 3\)"):
        SqueezeTransform(-3, in_keys=["x"])._np_step({"x": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"cannot flatten dims -4 to -1 of shape \(2, 3, 4\)"):
        FlattenObservation(-4, -1).transform_observation_spec(Composite(pixels=Unbounded((2, 3, 4))))
