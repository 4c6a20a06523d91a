"""TensorDictPrimer, BatchSizeTransform, BurnInTransform vs TorchRL 0.14.1."""
import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

import numbarl.torch_api as nb
from compare import assert_td_equal
from transform_cases import make_env
from transform_diff import compare_rollouts, compare_specs, pair

pytestmark = pytest.mark.torchrl

@pytest.fixture
def trl():
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is an optional peer for differential tests")


def _specs(module, kind):
    """The same primer specs, built with numbarl's or TorchRL's spec classes."""
    if kind == "plain":
        return {"mykey": module.Unbounded((3,))}
    if kind == "mixed":
        return {"mykey": module.Unbounded((2,)), "count": module.Unbounded((1,), dtype=torch.int64)}
    if kind == "nested":
        return {"a": module.Unbounded((2,)), ("n", "b"): module.Bounded(-1.0, 1.0, (1,))}
    raise ValueError(kind)


def _spec_module(trl):
    import torchrl.data

    return torchrl.data


def _five():
    return torch.full((1,), 0.5)


# ------------------------------------------------------------------ TensorDictPrimer
@pytest.mark.parametrize("kind, kwargs", [
    ("plain", {}),
    ("mixed", {"default_value": 2.0}),
    ("nested", {"default_value": {"a": 1.0, ("n", "b"): _five}}),
])
def test_primer_matches_torchrl(trl, kind, kwargs):
    ours, theirs = pair("pendulum", nb.TensorDictPrimer(_specs(nb, kind), **kwargs),
                        trl.TensorDictPrimer(_specs(_spec_module(trl), kind), **kwargs))
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=6)
    nb.check_env_specs(ours, seed=0)


def test_primer_keyword_specs_and_random(trl):
    ours, theirs = pair("pendulum", nb.TensorDictPrimer(mykey=nb.Unbounded((3,)), random=True),
                        trl.TensorDictPrimer(mykey=_spec_module(trl).Unbounded((3,)), random=True))
    compare_specs(ours, theirs)
    for env in (ours, theirs):
        env.set_seed(0)
        td = env.rollout(4)
        assert td["mykey"].shape == (4, 3) and td["mykey"].dtype == torch.float32
        assert torch.equal(td["mykey"], td["next", "mykey"]) and bool((td["mykey"] != 0).any())
        assert torch.equal(td["mykey"][0], td["mykey"][-1])  # drawn at reset, carried afterwards


class _Bump:
    """A policy pushing the cart right and adding 1 to the primed entry."""

    def __call__(self, tensordict):
        tensordict["action"] = torch.tensor([0, 1])
        tensordict["mykey"] = tensordict["mykey"] + 1
        return tensordict


def test_primer_carries_the_policy_value_and_resets_on_done(trl):
    out = []
    for module, env in ((nb, nb.TransformedEnv(nb.GymEnv("CartPole-v1"), None)),
                        (trl, trl.TransformedEnv(trl.GymEnv("CartPole-v1")))):
        env.append_transform(module.TensorDictPrimer(mykey=_spec_module(trl).Unbounded((1,)) if module is trl
                                                     else nb.Unbounded((1,)), default_value=3.0))
        env.set_seed(0)
        out.append(env.rollout(14, _Bump(), break_when_any_done=False))
    assert_td_equal(out[0], out[1])
    done_at = int(out[0]["next", "done"].squeeze(-1).nonzero()[0])
    assert out[0]["mykey"][done_at + 1].item() == 4.0


def test_primer_partial_reset_on_a_batched_env(trl):
    envs = (nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "pendulum")),
                              nb.TensorDictPrimer(mykey=nb.Unbounded((2, 3)), default_value=3.0, expand_specs=True)),
            trl.TransformedEnv(trl.SerialEnv(2, lambda: trl.GymEnv("Pendulum-v1")),
                               trl.TensorDictPrimer(mykey=_spec_module(trl).Unbounded((2, 3)), default_value=3.0,
                                                    expand_specs=True)))
    results = []
    try:
        compare_specs(*envs, families=("full_state_spec",))
        for env in envs:
            assert env.full_observation_spec["mykey"].shape == (2, 2, 3)
            env.set_seed(0)
            td = env.reset()
            td["mykey"] = td["mykey"] + 1
            td["_reset"] = torch.tensor([[True], [False]])
            results.append(env.reset(td)["mykey"])
        assert_td_equal(TensorDict({"m": results[0]}, []), TensorDict({"m": results[1]}, []))
        assert results[0][0].eq(3).all() and results[0][1].eq(4).all()
        nb.check_env_specs(envs[0], seed=0)
    finally:
        for env in envs:
            env.close()


def test_primer_needs_expand_specs_on_a_batched_env():
    env = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "pendulum")),
                            nb.TensorDictPrimer(mykey=nb.Unbounded((3,))))
    try:
        with pytest.raises(ValueError, match="does not fit the batch size"):
            _ = env.observation_spec
    finally:
        env.close()


def test_primer_offline(trl):
    ours = nb.TensorDictPrimer(mykey=nb.Unbounded((3,)), default_value=1.5)
    theirs = trl.TensorDictPrimer(mykey=_spec_module(trl).Unbounded((3,)), default_value=1.5)
    for td in (TensorDict({}, []), TensorDict({"mykey": torch.zeros(3)}, [])):
        assert_td_equal(ours(td.clone()), theirs(td.clone()))
    assert ours(TensorDict({}, [4]))["mykey"].shape == (4, 3)  # TorchRL refuses a batch the primers lack
    assert ours.state_dict() == theirs.state_dict() == {}


def test_primer_single_default_value():
    calls = []

    def make(reset=None):
        calls.append(reset)
        n = 2 if reset is None else int(reset.sum())
        return TensorDict({"h": torch.full((n, 2), 7.0)}, [n])

    env = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "pendulum")),
                            nb.TensorDictPrimer(h=nb.Unbounded((2,)), default_value=make, single_default_value=True,
                                                expand_specs=True))
    try:
        td = env.reset()
        assert td["h"].eq(7).all()
        td["h"] = td["h"] * 0
        td["_reset"] = torch.tensor([[False], [True]])
        out = env.reset(td)["h"]
        assert out[0].eq(0).all() and out[1].eq(7).all()
        assert calls[-1].tolist() == [False, True]
    finally:
        env.close()


class _ReadsPrimer(nb.EnvBase):
    """A batch of 2 whose reset observation is ``h[:, :1] + 5`` for the ``h`` its reset input holds (0 without)."""

    def __init__(self):
        super().__init__(batch_size=[2])
        self.observation_spec = nb.Composite(obs=nb.Unbounded((2, 1)), shape=(2,))
        self.action_spec = nb.Unbounded((2, 1))
        self.reward_spec = nb.Unbounded((2, 1))
        self.inputs = []

    def _reset(self, td):
        self.inputs.append(None if td is None else td.clone())
        h = td.get("h") if td is not None and "h" in td.keys() else torch.zeros(2, 3)
        return TensorDict({"obs": h[:, :1] + 5}, [2])

    def _step(self, td):
        return TensorDict({"obs": td["obs"] + 1, "reward": torch.zeros(2, 1)}, [2])

    def _set_seed(self, seed):
        return seed


@pytest.mark.parametrize("before", [False, True])
def test_primer_call_before_env_reset(before):
    env = nb.TransformedEnv(_ReadsPrimer(), nb.TensorDictPrimer(h=nb.Unbounded((3,)), default_value=2.0,
                                                                call_before_env_reset=before, expand_specs=True))
    td = env.reset()
    seen = env.base_env.inputs[-1]
    if before:  # the base env read the primed value; the output has it as well
        assert seen["h"].eq(2).all() and td["obs"].eq(7).all()
    else:
        assert seen is None and td["obs"].eq(5).all()
    assert td["h"].eq(2).all()
    # partial reset: the sub-env not reset keeps its value, in the env's input and in the output
    request = td.clone()
    request["h"] = torch.full((2, 3), 9.0)
    request["_reset"] = torch.tensor([[True], [False]])
    out = env.reset(request)
    assert out["h"][:, 0].tolist() == [2.0, 9.0]
    if before:
        assert env.base_env.inputs[-1]["h"][:, 0].tolist() == [2.0, 9.0]
        assert out["obs"].flatten().tolist() == [7.0, 7.0]  # the sub-env not reset keeps its observation
    assert out is request and "_reset" not in out.keys()  # TorchRL: reset(td) updates td and returns it
    nb.check_env_specs(env)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((), {"primers": {"a": 3}}, TypeError, "TensorSpec primers"),
    ((), {"primers": [1]}, TypeError, "primers to be a dict or a Composite"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "mykey": nb.Unbounded(1)}, ValueError, "primers or keyword specs"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "random": True, "default_value": 1.0}, ValueError,
     "setting random to True and providing a default_value are incompatible, got default_value=1.0"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "default_value": {"b": 1.0}}, ValueError, "default_value keys"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "default_value": "x"}, TypeError, "default_value to be a number"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "reset_key": 3}, TypeError, "reset_key to be a key"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "random": 1}, TypeError, "random to be a bool"),
    ((), {"primers": {"a": nb.Unbounded(1)}, "single_default_value": True, "default_value": 1.0}, TypeError,
     "callable default_value"),
    ((), {"primers": {3: nb.Unbounded(1)}}, TypeError, "a primer key to be a key"),
])
def test_primer_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.TensorDictPrimer(*args, **kwargs)


# ------------------------------------------------------------------ BatchSizeTransform
def _reshape_1_1(td):
    return td.reshape(1, 1)


def _reshape_1_2(td):
    return td.reshape(1, 2)


def _unsqueeze_0(td):
    return td.unsqueeze(0)


def test_batch_size_reshape_matches_torchrl(trl):
    ours, theirs = pair("cartpole", nb.BatchSizeTransform(reshape_fn=_reshape_1_1),
                        trl.BatchSizeTransform(reshape_fn=_reshape_1_1))
    assert ours.batch_size == theirs.batch_size == torch.Size([1, 1])
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=12)
    nb.check_env_specs(ours, seed=0)


@pytest.mark.parametrize("fn, shape", [(_reshape_1_2, (1, 2)), (_unsqueeze_0, (1, 2))])
def test_batch_size_over_a_batched_env_matches_torchrl(trl, fn, shape):
    ours = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "cartpole")),
                             nb.BatchSizeTransform(reshape_fn=fn))
    theirs = trl.TransformedEnv(trl.SerialEnv(2, lambda: trl.GymEnv("CartPole-v1")),
                                trl.BatchSizeTransform(reshape_fn=fn))
    try:
        assert ours.batch_size == theirs.batch_size == torch.Size(shape)
        compare_specs(ours, theirs)
        compare_rollouts(ours, theirs, steps=5)
        nb.check_env_specs(ours, seed=0)
    finally:
        ours.close()
        theirs.close()


def test_batch_size_expands_a_batch_locked_env():
    env = nb.TransformedEnv(nb.GymEnv("CartPole-v1"), nb.BatchSizeTransform(batch_size=[1]))
    assert env.batch_size == (1,) and env.observation_spec["observation"].shape == (1, 4)
    nb.check_env_specs(env, seed=0)
    env.set_seed(0)
    td = env.rollout(30, break_when_any_done=False)
    assert td.batch_size == (1, 30) and td["next", "done"].any()


class _Stateless(nb.EnvBase):
    """An env that takes any batch size: its outputs follow the input's."""

    def __init__(self):
        super().__init__()
        self.observation_spec = nb.Composite(observation=nb.Unbounded((3,)))
        self.reward_spec = nb.Unbounded((1,))
        self.action_spec = nb.Unbounded((1,))

    def _reset(self, tensordict=None, **kwargs):
        batch = tensordict.batch_size if tensordict is not None else torch.Size([])
        out = TensorDict({"observation": torch.zeros(*batch, 3)}, batch)
        out.update(self.full_done_spec.zero(batch))
        return out

    def _step(self, tensordict):
        batch = tensordict.batch_size
        out = TensorDict({"observation": tensordict["action"].expand(*batch, 3).clone(),
                          "reward": torch.ones(*batch, 1)}, batch)
        out.update(self.full_done_spec.zero(batch))
        return out

    def _set_seed(self, seed):
        pass


def _reset_five(tensordict, tensordict_reset, env):
    out = env.observation_spec.zero()
    out.update(env.full_done_spec.zero())
    return out


def test_batch_size_on_an_env_that_takes_any_batch():
    env = nb.TransformedEnv(_Stateless(), nb.BatchSizeTransform(batch_size=[5]))
    assert env.batch_size == (5,)
    td = env.rollout(3)
    assert td.batch_size == (5, 3) and td["next", "observation"].shape == (5, 3, 3)
    env = nb.TransformedEnv(_Stateless(), nb.BatchSizeTransform(batch_size=[5], reset_func=_reset_five,
                                                                env_kwarg=True))
    assert env.reset().batch_size == (5,) and env.rollout(2).batch_size == (5, 2)


@pytest.mark.parametrize("kwargs, error, match", [
    ({}, ValueError, "exactly one of batch_size and reshape_fn"),
    ({"batch_size": [1], "reshape_fn": _unsqueeze_0}, ValueError, "exactly one of batch_size and reshape_fn"),
    ({"batch_size": "a"}, TypeError, "batch_size to be a torch.Size"),
    ({"batch_size": [-1]}, ValueError, "non-negative sizes"),
    ({"reshape_fn": 3}, TypeError, "reshape_fn to be callable"),
    ({"batch_size": [1], "reset_func": 3}, TypeError, "reset_func to be callable"),
    ({"batch_size": [1], "env_kwarg": True}, ValueError, "reset_func when env_kwarg"),
    ({"batch_size": [1], "reset_func": _reset_five, "env_kwarg": 1}, TypeError, "env_kwarg to be a bool"),
])
def test_batch_size_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nb.BatchSizeTransform(**kwargs)


def test_batch_size_impossible_size():
    env = nb.TransformedEnv(nb.SerialEnv(2, functools.partial(make_env, "cartpole")),
                            nb.BatchSizeTransform(batch_size=[3]))
    try:
        with pytest.raises(ValueError, match=r"cannot turn the env batch size \(2,\) into batch_size=\(3,\)"):
            _ = env.batch_size
    finally:
        env.close()


# ------------------------------------------------------------------ BurnInTransform
class _Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, obs, hidden):
        return self.lin(obs), torch.tanh(hidden + self.lin(obs))


def _module():
    torch.manual_seed(0)
    return TensorDictModule(_Cell(), in_keys=["observation", "hidden"], out_keys=["inter", ("next", "hidden")])


def _data(batch=(2, 7)):
    g = torch.Generator().manual_seed(3)
    return TensorDict({"observation": torch.randn(*batch, 3, generator=g),
                       "hidden": torch.randn(*batch, 2, generator=g),
                       "is_init": torch.zeros(*batch, 1, dtype=torch.bool)}, list(batch))


@pytest.mark.parametrize("burn_in", [1, 3, 6])
def test_burn_in_matches_torchrl(trl, burn_in):
    module = _module()
    ours, theirs = nb.BurnInTransform([module], burn_in), trl.BurnInTransform([module], burn_in)
    assert set(ours.in_keys) == set(theirs.in_keys) and ours.out_keys == theirs.out_keys  # TorchRL's order varies
    data = _data()
    out = ours(data.clone())
    assert_td_equal(out, theirs(data.clone()))
    assert out.batch_size == (2, 7 - burn_in)
    assert ours.state_dict() == theirs.state_dict() == {}


def test_burn_in_single_module_out_keys_and_one_sequence(trl):
    module = _module()
    ours = nb.BurnInTransform(module, 2, out_keys=["hidden"])
    theirs = trl.BurnInTransform([module], 2, out_keys=["hidden"])
    data = _data()
    assert_td_equal(ours(data.clone()), theirs(data.clone()))
    single = ours(data[0].clone())
    assert_td_equal(single, ours(data.clone())[0])


def test_burn_in_refuses_envs_and_bad_arguments():
    module = _module()
    with pytest.raises(TypeError, match="not inside an env"):
        nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.BurnInTransform([module], 2)).reset()
    with pytest.raises(TypeError, match="not inside an env"):
        _ = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.BurnInTransform([module], 2)).observation_spec
    with pytest.raises(TypeError, match="TensorDictModuleBase modules"):
        nb.BurnInTransform([3], 2)
    with pytest.raises(TypeError, match="burn_in to be an int"):
        nb.BurnInTransform([module], 2.5)
    with pytest.raises(ValueError, match="burn_in >= 1"):
        nb.BurnInTransform([module], 0)
    with pytest.raises(TypeError, match="out_keys must hold"):
        nb.BurnInTransform([module], 2, out_keys=[3])
    with pytest.raises(ValueError, match="longer than burn_in=2"):
        nb.BurnInTransform([module], 2)(_data((2, 2)))


@pytest.mark.parametrize("default_value", [0.0, 0, None, {}])
def test_primer_random_with_a_zero_or_empty_default_is_random_like_torchrl(default_value):
    env = nb.TransformedEnv(nb.GymEnv("Pendulum-v1"), nb.TensorDictPrimer(
        random=True, default_value=default_value, mykey=nb.Bounded(-3.0, 3.0, (4,))))
    env.set_seed(0)
    value = env.reset()["mykey"]
    assert value.shape == (4,) and (value != 0).any() and (value.abs() <= 3).all()
