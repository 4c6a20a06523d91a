"""Batched envs with state inputs and batched sub-envs (nesting), against TorchRL 0.14.1."""
from __future__ import annotations

import functools

import batched_helpers as H
import leaks
import pytest
import torch
from compare import assert_td_equal
from numbarl.torch_api import ParallelEnv, SerialEnv
from tensordict import TensorDict

BATCHED = [SerialEnv, ParallelEnv]


@pytest.fixture
def trl(torchrl):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchrl.envs as envs
    return envs


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    with leaks.nothing_left("the nested batched-env tests"):
        yield


def scripted(actions):
    state = {"t": 0}

    def policy(td):
        td.set("action", actions[state["t"]].clone())
        state["t"] += 1
        return td

    return policy


def trl_cls(trl, cls):
    return getattr(trl, cls.__name__)


def rollout_pair(env, ref, steps, actions, seed=3):
    env.set_seed(seed)
    ref.set_seed(seed)
    return (env.rollout(steps, scripted(actions), break_when_any_done=False),
            ref.rollout(steps, scripted(actions), break_when_any_done=False))


# ------------------------------------------------------------ state inputs
@pytest.mark.parametrize("cls", BATCHED)
def test_state_inputs_reach_the_sub_envs(cls):
    """Without the state inputs the sub-env's _step raises KeyError; with them it computes from them."""
    with cls(2, H.StateEnv) as env:
        assert sorted(env.full_state_spec.keys()) == ["action_mask", "hidden"]
        td = env.reset()
        td.set("hidden", torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        td.set("action_mask", torch.tensor([[True, True, False], [False, False, True]]))
        td.set("action", torch.tensor([[1.0], [-1.0]]))
        out = env.step(td)["next"]
        expected_hidden = torch.tensor([[1.5, 2.0], [0.5, 1.0]])
        torch.testing.assert_close(out["hidden"], expected_hidden)
        torch.testing.assert_close(out["observation"], expected_hidden * 2 + torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
        torch.testing.assert_close(out["action_mask"], torch.tensor([[False, True, True], [True, False, False]]))


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_state_input_rollout_matches_torchrl(trl, cls):
    steps = 10  # the sub-envs are done every 4 steps: resets in between
    actions = [torch.full((2, 1), 0.1 * i) for i in range(steps)]
    env = cls(2, H.StateEnv)
    ref = trl_cls(trl, cls)(2, H.TorchRLStateEnv)
    try:
        out, expected = rollout_pair(env, ref, steps, actions)
        assert out["next", "done"].any()
        assert_td_equal(out, expected)
    finally:
        env.close()
        ref.close()


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_state_input_given_to_reset_matches_torchrl(trl, cls):
    env = cls(2, H.StateEnv)
    ref = trl_cls(trl, cls)(2, H.TorchRLStateEnv)
    try:
        outs = []
        for e in (env, ref):
            e.set_seed(1)
            e.reset()
            td = TensorDict({"hidden": torch.tensor([[10.0, 20.0], [30.0, 40.0]])}, [2])
            outs.append(e.reset(td)["hidden"])
        torch.testing.assert_close(outs[0], outs[1])
        assert outs[0][1, 0] > 30  # the given state was used
    finally:
        env.close()
        ref.close()


# ------------------------------------------------------------ batched sub-envs
@pytest.mark.parametrize("cls", BATCHED)
def test_batched_sub_envs_give_a_nested_batch(cls):
    with cls(2, H.make_serial_pendulums) as env:
        assert env.batch_size == torch.Size([2, 3])
        assert env.observation_spec["observation"].shape == torch.Size([2, 3, 3])
        assert env.action_spec.shape == torch.Size([2, 3, 1])
        td = env.rollout(5)
        assert td.batch_size == torch.Size([2, 3, 5])
        assert td["next", "reward"].shape == torch.Size([2, 3, 5, 1])
        assert env._array_path_ready()  # the nested batch runs on the array path


def test_nested_rows_equal_flat_rows():
    """ParallelEnv(2, SerialEnv(3)) and SerialEnv(6) are the same six envs when seeded the same way."""
    actions = [torch.rand(2, 3, 1) * 4 - 2 for _ in range(20)]
    with ParallelEnv(2, H.make_serial_pendulums) as nested:
        nested.set_seed(4)
        out = nested.rollout(20, scripted(actions), break_when_any_done=False)
    with SerialEnv(3, H.make_pendulum) as a, SerialEnv(3, H.make_pendulum) as b:
        seed = a.set_seed(4)
        b.set_seed(seed)
        flat = [e.rollout(20, scripted([x[i] for x in actions]), break_when_any_done=False) for i, e in
                enumerate((a, b))]
    torch.testing.assert_close(out["next", "observation"], torch.stack([f["next", "observation"] for f in flat]),
                               rtol=0, atol=0)


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_nested_rollout_matches_torchrl(trl, cls):
    steps = 12
    actions = [torch.rand(2, 3, 1, generator=torch.Generator().manual_seed(i)) * 4 - 2 for i in range(steps)]
    env = cls(2, H.make_serial_pendulums)
    ref = trl_cls(trl, cls)(2, H.make_trl_serial_pendulums)
    try:
        assert env.batch_size == ref.batch_size == torch.Size([2, 3])
        assert env.set_seed(5) == ref.set_seed(5)
        out = env.rollout(steps, scripted(actions), break_when_any_done=False)
        ref.set_seed(5)
        expected = ref.rollout(steps, scripted(actions), break_when_any_done=False)
        assert_td_equal(out, expected)
    finally:
        env.close()
        ref.close()


@pytest.mark.torchrl
@pytest.mark.parametrize("cls", BATCHED)
def test_nested_partial_reset_matches_torchrl(trl, cls):
    env = cls(2, H.make_serial_pendulums)
    ref = trl_cls(trl, cls)(2, H.make_trl_serial_pendulums)
    mask = torch.tensor([[True, False, True], [False, False, True]]).unsqueeze(-1)
    try:
        outs = []
        for e in (env, ref):
            e.set_seed(9)
            e.reset()
            td = e.rand_step(e.reset())  # one step, then reset a few members of each sub-env
            td = TensorDict({"_reset": mask.clone()}, [2, 3])
            outs.append(e.reset(td)["observation"])
        m = mask.squeeze(-1)
        torch.testing.assert_close(outs[0][m], outs[1][m], rtol=0, atol=0)
    finally:
        env.close()
        ref.close()


@pytest.mark.parametrize("cls", BATCHED)
def test_nested_partial_reset_resets_only_the_flagged_members(cls):
    with cls(2, H.make_serial_pendulums) as env:
        env.set_seed(2)
        td = env.reset()
        before = env.rand_step(td)["next", "observation"].clone()
        mask = torch.tensor([[True, False, False], [False, True, False]])
        out = env.reset(TensorDict({"_reset": mask.unsqueeze(-1)}, [2, 3]))
        torch.testing.assert_close(out["observation"][~mask], before[~mask], rtol=0, atol=0)
        assert (out["observation"][mask] != before[mask]).all()


def test_sub_envs_with_different_batch_sizes_are_refused():
    with pytest.raises(ValueError, match=r"batch_size of the first one, \(3,\); got \(2,\)"):
        SerialEnv(2, [H.make_serial_pendulums, functools.partial(H.make_serial_pendulums, 2)])
