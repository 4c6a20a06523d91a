"""Timer: keys and specs against TorchRL, the intervals' structure in rollouts, exact values on a stepped clock, errors."""
import pickle

import pytest
import torch
from compare import assert_spec_matches_torchrl
from numbarl.torch_api import Compose, GymEnv, SerialEnv, StepCounter, Timer, TransformedEnv
from tensordict import TensorDict
from torch import nn

DEFAULT = ["time_step", "time_policy", "time_reset"]


class SquareClock:
    """A clock whose k-th reading is k**2: consecutive intervals are 1, 3, 5, 7, ..."""

    def __init__(self):
        self.k = -1

    def __call__(self):
        self.k += 1
        return float(self.k ** 2)


def _time_keys(td):
    return sorted((k for k in td.keys(True, True) if "time" in str(k) or "t_" in str(k)), key=str)


# ------------------------------------------------------------------ keys and specs
@pytest.mark.torchrl
@pytest.mark.parametrize("kwargs", [{}, {"time_key": "clock"},
                                    {"out_keys": ["a", ("nested", "b"), "c"]}])
def test_keys_and_specs_match_torchrl(torchrl, kwargs):
    from torchrl.envs import GymEnv as RLGymEnv, Timer as RLTimer, TransformedEnv as RLTransformedEnv

    ours = TransformedEnv(GymEnv("CartPole-v1"), Timer(**kwargs))
    theirs = RLTransformedEnv(RLGymEnv("CartPole-v1"), RLTimer(**kwargs))
    assert ours.transform.out_keys == theirs.transform.out_keys
    assert ours.transform.in_keys == theirs.transform.in_keys == []
    assert ours.transform.time_key == theirs.transform.time_key
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    if "out_keys" in kwargs:
        # TorchRL 0.14.1 fails to write a nested key whose sub-tensordict does not exist yet
        # (AttributeError on None); numbarl creates it (test_nested_keys_expand_to_the_batch)
        return
    ours.set_seed(0)
    theirs.set_seed(0)
    a, b = ours.rollout(4), theirs.rollout(4)
    assert sorted(map(str, a.keys(True, True))) == sorted(map(str, b.keys(True, True)))
    for key in b.keys(True, True):
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key


@pytest.mark.torchrl
def test_batched_specs_match_torchrl(torchrl):
    from torchrl.envs import GymEnv as RLGymEnv, SerialEnv as RLSerialEnv, Timer as RLTimer
    from torchrl.envs import TransformedEnv as RLTransformedEnv

    ours = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")), Timer())
    theirs = RLTransformedEnv(RLSerialEnv(2, lambda: RLGymEnv("CartPole-v1")), RLTimer())
    try:
        assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
        assert ours.observation_spec["time_step"].shape == torch.Size([2])
    finally:
        theirs.close(raise_if_closed=False)
        ours.close()


# ------------------------------------------------------------------ rollouts
def test_rollout_structure_with_resets():
    env = TransformedEnv(GymEnv("CartPole-v1"), Timer())
    env.append_transform(StepCounter(max_steps=5))
    env.set_seed(0)
    td = env.rollout(10, break_when_any_done=False)
    assert not isinstance(td, type(None)) and td.batch_size == torch.Size([10])
    for key in DEFAULT:
        for k in (key, ("next", key)):
            assert td[k].dtype == torch.get_default_dtype() and td[k].shape == torch.Size([10])
            assert (td[k] >= 0).all(), k
    # two episodes of 5 steps: the roots at their starts carry the reset time, the "next" entries never do
    starts = torch.tensor([True, False, False, False, False] * 2)
    assert torch.equal(td["time_reset"] > 0, starts)
    assert torch.equal(td["time_policy"] == 0, starts)
    assert torch.equal(td["time_step"] == 0, starts)
    assert (td["next", "time_reset"] == 0).all()
    assert (td["next", "time_policy"] > 0).all() and (td["next", "time_step"] > 0).all()
    # the root policy time is the previous step's (the policy ran before that step)
    assert torch.equal(td["time_policy"][1:5], td["next", "time_policy"][:4])
    cumulative = torch.cumsum(td["next", "time_step"] + td["next", "time_policy"], 0)
    assert (cumulative[1:] > cumulative[:-1]).all()


def test_exact_intervals_on_a_stepped_clock():
    timer = Timer()
    timer._clock = SquareClock()
    env = TransformedEnv(GymEnv("CartPole-v1"), timer)
    env.set_seed(0)
    td = env.rollout(3, actions=[torch.tensor([1, 0])] * 3)
    # readings 0 (before the base reset) 1 (after), then 4/9, 16/25, 36/49 (policy / step) at each step
    assert td["time_reset"].tolist() == [1.0, 0.0, 0.0]
    assert td["next", "time_policy"].tolist() == [3.0, 7.0, 11.0]
    assert td["next", "time_step"].tolist() == [5.0, 9.0, 13.0]
    assert td["time_policy"].tolist() == [0.0, 3.0, 7.0]
    assert td["time_step"].tolist() == [0.0, 5.0, 9.0]


def test_nested_keys_expand_to_the_batch():
    timer = Timer(out_keys=[("t", "step"), ("t", "policy"), "reset_time"])
    timer._clock = SquareClock()
    env = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")), timer)
    try:
        env.set_seed(0)
        td = env.rollout(2)
        assert td["next", "t", "step"].shape == torch.Size([2, 2])
        assert td["next", "t", "step"].tolist() == [[5.0, 9.0], [5.0, 9.0]]
        assert td["reset_time"][:, 0].tolist() == [1.0, 1.0]
    finally:
        env.close()


def test_inside_and_around_serial_envs():
    from numbarl.torch_api import check_env_specs

    for env in (SerialEnv(2, lambda: TransformedEnv(GymEnv("CartPole-v1"), Timer())),
                TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1")), Timer())):
        try:
            check_env_specs(env, seed=0)
            td = env.rollout(3)
            assert td["next", "time_step"].shape == torch.Size([2, 3])
            assert (td["next", "time_step"] > 0).all()
        finally:
            env.close()


@pytest.mark.parametrize("how", ["clone", "pickle"])
def test_copies_keep_the_keys(how):
    t = Timer(time_key="x")
    t = t.clone() if how == "clone" else pickle.loads(pickle.dumps(t))
    env = TransformedEnv(GymEnv("CartPole-v1"), t)
    td = env.rollout(2)
    assert {"x_step", "x_policy", "x_reset"} <= set(td["next"].keys())


# ------------------------------------------------------------------ errors
@pytest.mark.torchrl
@pytest.mark.parametrize("out_keys", [["a", "b"], ["a", "b", "c", "d"]])
def test_three_out_keys_required_like_torchrl(torchrl, out_keys):
    from torchrl.envs import Timer as RLTimer

    with pytest.raises(TypeError, match="Expected three out_keys"):
        RLTimer(out_keys=out_keys)
    with pytest.raises(TypeError, match=r"Expected three out_keys. Got out_keys="):
        Timer(out_keys=out_keys)


@pytest.mark.parametrize("kwargs, match", [({"out_keys": "abc"}, "Expected three out_keys"),
                                           ({"out_keys": 3}, "Expected three out_keys"),
                                           ({"out_keys": ["a", 1, "c"]}, "out_keys"),
                                           ({"time_key": 1}, "time_key to be a str")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Timer(**kwargs)


@pytest.mark.parametrize("wrap", [lambda t: t, Compose, nn.Sequential])
def test_outside_an_env(wrap):
    with pytest.raises(NotImplementedError, match="cannot be executed without a parent environment"):
        wrap(Timer())(TensorDict())
