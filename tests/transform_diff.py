"""Helpers for the differential transform tests: the same env and transform in numbarl and in TorchRL.

``pair(name, ours, theirs)`` builds ``TransformedEnv(env, transform)`` twice,
over the same gymnasium env (``transform_cases.make_env`` names);
``compare_specs`` checks every spec family; ``compare_rollouts`` replays the
same actions in both (drawn once from numbarl's action spec, or given) and
checks keys, shapes, dtypes and values.
"""
from __future__ import annotations

import torch

from compare import assert_spec_matches_torchrl, assert_td_equal
from transform_cases import BoxActionEnv, DoubleEnv, MatrixActionEnv, TinyImageEnv, make_env

__all__ = ["torchrl_env", "pair", "compare_specs", "compare_rollouts", "Replay", "FAMILIES"]

FAMILIES = ("full_observation_spec", "full_reward_spec", "full_done_spec", "full_action_spec", "full_state_spec")


def torchrl_env(name: str):
    """The TorchRL env matching ``transform_cases.make_env(name)``."""
    from torchrl.envs import GymEnv, GymWrapper

    if name == "pendulum":
        return GymEnv("Pendulum-v1")
    if name == "cartpole":
        return GymEnv("CartPole-v1")
    wrapped = {"image": TinyImageEnv, "double": DoubleEnv, "matrix": MatrixActionEnv, "box": BoxActionEnv}[name]
    return GymWrapper(wrapped())


def pair(name: str, ours, theirs):
    """``(numbarl TransformedEnv, torchrl TransformedEnv)`` of env ``name`` with the given transforms."""
    from torchrl.envs import TransformedEnv as TorchRLTransformedEnv

    from numbarl.torch_api import TransformedEnv

    return TransformedEnv(make_env(name), ours), TorchRLTransformedEnv(torchrl_env(name), theirs)


def compare_specs(ours, theirs, families=FAMILIES):
    for family in families:
        assert_spec_matches_torchrl(getattr(ours, family), getattr(theirs, family), (family,))


class Replay:
    """A policy that writes pre-drawn actions, one per call."""

    def __init__(self, actions, key="action"):
        self.actions, self.key, self.i = actions, key, 0

    def __call__(self, td):
        td.set(self.key, self.actions[self.i].clone())
        self.i += 1
        return td


def compare_rollouts(ours, theirs, steps=8, seed=0, actions=None, break_when_any_done=False, atol=0, rtol=0):
    """Roll both envs out with the same seed and actions; assert equal data. Returns both rollouts."""
    key = ours.action_key
    if actions is None:
        torch.manual_seed(seed)
        actions = [ours.full_action_spec[key].rand() for _ in range(steps)]
    out = []
    for env in (ours, theirs):
        env.set_seed(seed)
        torch.manual_seed(seed)
        out.append(env.rollout(steps, Replay(actions, key), break_when_any_done=break_when_any_done))
    assert_td_equal(out[0], out[1], atol=atol, rtol=rtol)
    return out
