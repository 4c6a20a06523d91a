"""The TensorDict-path runner: the same interface as ``ArrayRunner`` for envs without the array protocol."""
from __future__ import annotations

import torch
from tensordict import TensorDict

__all__ = ["make_runner"]


class TDRunner:
    """Steps any ``EnvBase`` through ``step_and_maybe_reset``; used when the env has no array path."""

    def __init__(self, env, policy=None):
        self.env = env
        self.policy = policy
        self.action_key = env.action_key
        self.td = None
        self.policy_out = None
        self.policy_leaves = {}

    def reset(self) -> None:
        self.td = self.env.reset()

    def reset_done(self) -> None:
        self.td = self.env.maybe_reset(self.td)

    def allocate(self, steps: int) -> TensorDict | None:
        return None

    def run(self, out, steps: int, *, random_policy: bool = False, **_) -> TensorDict:
        env = self.env
        frames = []
        td = self.td
        for _ in range(steps):
            if random_policy or self.policy is None:
                td = env.rand_action(td)
            else:
                result = self.policy(td)
                td = td if result is None else result
                if self.action_key not in td.keys(True, True):
                    raise KeyError(f"the policy did not write the action key {self.action_key!r}; "
                                   f"its output has {sorted(map(str, td.keys(True, True)))}")
            td, nxt = env.step_and_maybe_reset(td)
            frames.append(td.clone(False))
            td = nxt
        self.td = td
        out = torch.stack(frames, dim=len(env.batch_size))
        return out if isinstance(out, TensorDict) else out.to_tensordict()


def make_runner(env, policy):
    """An ``ArrayRunner`` when ``env`` steps on arrays (CPU), else a ``TDRunner``."""
    if env._array_path_ready():
        from ..envs._array_rollout import ArrayRunner

        return ArrayRunner(env, policy)
    return TDRunner(env, policy)
