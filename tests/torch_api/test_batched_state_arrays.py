"""Batched envs whose sub-envs have state inputs stay on the array path and give the TensorDict path's data."""
from __future__ import annotations

import batched_helpers as H
import leaks
import pytest
import torch
from compare import assert_td_equal
from numbarl.torch_api import GymEnv, ParallelEnv, SerialEnv, StepCounter, TransformedEnv
from numbarl.torch_api.collectors import Collector

BATCHED = [SerialEnv, ParallelEnv]


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    with leaks.nothing_left("the batched state-array tests"):
        yield


def scripted(actions):
    count = {"t": 0}

    def policy(td):
        td.set("action", actions[count["t"]].clone())
        count["t"] += 1
        return td

    return policy


def counted_pendulum():
    return TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=7))


def counted_serial():
    return SerialEnv(2, counted_pendulum)


def td_rollout(env, steps, seed):
    """The same rollout through the TensorDict path (a callback keeps rollout off the array path)."""
    env.set_seed(seed)
    torch.manual_seed(seed)
    return env.rollout(steps, break_when_any_done=False, callback=lambda *_: None)


def array_rollout(env, steps, seed):
    env.set_seed(seed)
    torch.manual_seed(seed)
    return env.rollout(steps, break_when_any_done=False)


@pytest.mark.parametrize("cls", BATCHED)
@pytest.mark.parametrize("make", [counted_pendulum, counted_serial, H.StateEnv],
                         ids=["step-counter", "nested-step-counter", "state-env"])
def test_state_inputs_keep_the_array_path(cls, make):
    with cls(2, make) as env:
        assert env.full_state_spec.keys()  # the sub-envs do have state inputs
        assert env._array_path_ready()
        out = array_rollout(env, 20, seed=4)
        expected = td_rollout(env, 20, seed=4)
        assert out["next", "done"].any()  # resets happened in the middle of the rollout
        assert_td_equal(out, expected)


@pytest.mark.parametrize("cls", BATCHED)
def test_step_count_runs_and_truncates_on_the_array_path(cls):
    with cls(2, counted_pendulum) as env:
        out = array_rollout(env, 10, seed=0)
    counts = out["next", "step_count"][0, :, 0].tolist()
    assert counts == [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]
    assert out["next", "truncated"][0, :, 0].tolist() == [False] * 6 + [True] + [False] * 3


@pytest.mark.parametrize("cls", BATCHED)
def test_a_state_given_on_the_tensordict_path_is_still_used(cls):
    """After array-path steps, a step through the TensorDict API with a chosen step_count uses that value."""
    with cls(2, counted_pendulum) as env:
        array_rollout(env, 3, seed=0)
        td = env.reset()
        td.set("step_count", torch.tensor([[6], [0]]))
        td = env.rand_action(td)
        out = env.step(td)["next"]
        assert out["step_count"][:, 0].tolist() == [7, 1]
        assert out["truncated"][:, 0].tolist() == [True, False]  # max_steps=7 reached from the given 6


@pytest.mark.parametrize("cls", BATCHED)
def test_collector_on_state_inputs_matches_the_tensordict_path(cls):
    batches = []
    for force_td in (False, True):
        env = cls(2, counted_pendulum)
        env.set_seed(2)
        torch.manual_seed(2)
        if force_td:
            env.__dict__["_array_path_ready"] = lambda: False
        collector = Collector(env, None, frames_per_batch=30, total_frames=60)
        try:
            batches.append([b.clone() for b in collector])
        finally:
            collector.shutdown()
            env.close()
    assert len(batches[0]) == 2
    for got, expected in zip(*batches):
        assert_td_equal(got, expected)


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_step_counter_sub_envs_match_torchrl(torchrl, cls):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchrl.envs as trl

    def ref_make():
        return trl.TransformedEnv(trl.GymEnv("Pendulum-v1"), trl.StepCounter(max_steps=7))

    steps = 12
    actions = [torch.linspace(-1.0, 1.0, 2).reshape(2, 1) * (0.1 * i) for i in range(steps)]

    outs = []
    for env in (cls(2, counted_pendulum), getattr(trl, cls.__name__)(2, ref_make)):
        policy = scripted(actions)
        try:
            env.set_seed(3)
            outs.append(env.rollout(steps, policy, break_when_any_done=False))
        finally:
            env.close()
    assert outs[0]["next", "truncated"].any()
    assert_td_equal(outs[0], outs[1])
