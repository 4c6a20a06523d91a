"""EndOfLifeTransform: flags, lives, keys and specs against TorchRL on seeded Atari rollouts; batched envs; errors."""
import warnings

import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (Compose, EndOfLifeTransform, GymEnv, SerialEnv, TransformedEnv,
                               check_env_specs)
from tensordict import TensorDict
from torch import nn

pytest.importorskip("ale_py", reason="the Atari envs need ale-py")

FIRE, RIGHT = torch.tensor([0, 1, 0, 0]), torch.tensor([0, 0, 0, 1])
# launch the ball and move away from it: Breakout (seed 0) loses its first life at step 210
ACTIONS = [FIRE if i % 60 == 0 else RIGHT for i in range(216)]
LIFE_LOST_AT = 210


def _breakout(**kwargs):
    return GymEnv("ALE/Breakout-v5", obs_type="ram", **kwargs)


def _rollout(env, actions):
    env.set_seed(0)
    return env.rollout(len(actions), actions=actions, break_when_any_done=False)


# ------------------------------------------------------------------ against TorchRL
@pytest.mark.torchrl
@pytest.mark.parametrize("keys", [{}, {"eol_key": ("nested", "eol"), "lives_key": "lv"}])
def test_breakout_rollout_matches_torchrl(torchrl, keys):
    from torchrl.envs import EndOfLifeTransform as RLEndOfLife, GymEnv as RLGymEnv
    from torchrl.envs import TransformedEnv as RLTransformedEnv

    ours = TransformedEnv(_breakout(), EndOfLifeTransform(**keys))
    theirs = RLTransformedEnv(RLGymEnv("ALE/Breakout-v5", obs_type="ram"), RLEndOfLife(**keys))
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert ours.transform.in_keys == theirs.transform.in_keys
    assert ours.transform.out_keys == theirs.transform.out_keys
    a, b = _rollout(ours, ACTIONS), _rollout(theirs, ACTIONS)
    assert_td_equal(a, b)
    eol = keys.get("eol_key", "end-of-life")
    lives = keys.get("lives_key", "lives")
    flags = a["next", eol].squeeze(-1)
    assert flags.nonzero().flatten().tolist() == [LIFE_LOST_AT]
    assert a[lives][: LIFE_LOST_AT + 1].eq(5).all() and a["next", lives][LIFE_LOST_AT:].eq(4).all()
    assert not a[eol][: LIFE_LOST_AT + 1].any() and torch.equal(a[eol][1:], a["next", eol][:-1])


@pytest.mark.torchrl
def test_pong_pixels_keys_and_specs_match_torchrl(torchrl):
    from torchrl.envs import EndOfLifeTransform as RLEndOfLife, GymEnv as RLGymEnv
    from torchrl.envs import TransformedEnv as RLTransformedEnv

    ours = TransformedEnv(GymEnv("ALE/Pong-v5"), EndOfLifeTransform())
    theirs = RLTransformedEnv(RLGymEnv("ALE/Pong-v5"), RLEndOfLife())
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert_spec_matches_torchrl(ours.full_done_spec, theirs.full_done_spec)
    actions = [torch.nn.functional.one_hot(torch.tensor(i % 6), 6) for i in range(5)]
    assert_td_equal(_rollout(ours, actions), _rollout(theirs, actions))


@pytest.mark.torchrl
def test_register_keys_sets_the_loss_keys(torchrl):
    from torchrl.objectives import DQNLoss
    from torchrl.objectives.value import GAE
    from tensordict.nn import TensorDictModule

    t = EndOfLifeTransform(eol_key="eol")
    loss = DQNLoss(nn.Identity(), action_space="categorical")
    t.register_keys(loss)
    assert loss.tensor_keys.done == "eol" and loss.tensor_keys.terminated == "eol"
    assert ("next", "eol") in loss.in_keys
    gae = GAE(gamma=0.9, lmbda=0.9, value_network=TensorDictModule(nn.Identity(), ["x"], ["y"]))
    t.register_keys(gae)
    assert ("next", "eol") in gae.in_keys


# ------------------------------------------------------------------ batched envs
def test_inside_a_serial_env():
    env = SerialEnv(2, lambda: TransformedEnv(_breakout(), EndOfLifeTransform()))
    try:
        check_env_specs(env, seed=0)
        td = env.rollout(3)
        assert td["next", "lives"].shape == torch.Size([2, 3]) and td["next", "lives"].eq(5).all()
        assert td["next", "end-of-life"].shape == torch.Size([2, 3, 1])
    finally:
        env.close()


def test_over_a_serial_env_warns_and_reads_each_sub_env():
    env = TransformedEnv(SerialEnv(2, _breakout), EndOfLifeTransform())
    try:
        with pytest.warns(UserWarning, match="The base_env is not a gym env"):
            check_env_specs(env, seed=0)
        assert env.observation_spec["lives"].shape == torch.Size([2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env.set_seed(0)
            td = env.rollout(len(ACTIONS), actions=[a.expand(2, 4) for a in ACTIONS], break_when_any_done=False)
        assert td["next", "lives"].shape == torch.Size([2, len(ACTIONS)])
        assert td["next", "end-of-life"].squeeze(-1).sum(-1).tolist() == [1, 1]
    finally:
        env.close()


def test_own_lives_attribute():
    class Counter:
        def __init__(self):
            self.n = 3

        def lives(self):
            return self.n

    base = _breakout()
    base.unwrapped.counter = Counter()
    env = TransformedEnv(base, EndOfLifeTransform(eol_attribute="unwrapped.counter.lives"))
    td = env.reset()
    assert td["lives"].item() == 3
    base.unwrapped.counter.n = 2
    td = env.step(td.set("action", FIRE))
    assert td["next", "end-of-life"].item() and td["next", "lives"].item() == 2


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("wrap", [lambda t: t, Compose])
def test_no_parent(wrap):
    t = EndOfLifeTransform()
    with pytest.raises(RuntimeError, match=t.NO_PARENT_ERR.format(type(t))):
        wrap(t)._step(TensorDict(), TensorDict())


def test_forward_refused():
    t = EndOfLifeTransform()
    with pytest.raises(RuntimeError, match="cannot be executed without a parent environment"):
        nn.Sequential(t)(TensorDict())


@pytest.mark.parametrize("name", ["eol_key", "lives_key", "done_key"])
def test_bad_keys(name):
    with pytest.raises(TypeError, match=f"{name} to be a non-empty str or tuple of str"):
        EndOfLifeTransform(**{name: 1})


def test_bad_attribute():
    with pytest.raises(TypeError, match="eol_attribute"):
        EndOfLifeTransform(eol_attribute=["unwrapped"])


def test_missing_done_key():
    env = TransformedEnv(_breakout(), EndOfLifeTransform(done_key="nope"))
    with pytest.raises(KeyError, match="nope"):
        env.observation_spec
