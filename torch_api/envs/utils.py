"""Helpers shared by the environments: ``step_mdp``, ``seed_generator``, ``check_env_specs``.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"observation": torch.zeros(2), "action": torch.ones(1),
    ...                  "next": {"observation": torch.ones(2), "reward": torch.ones(1),
    ...                           "done": torch.zeros(1, dtype=torch.bool)}}, [])
    >>> sorted(step_mdp(td).keys())
    ['done', 'observation']
    >>> step_mdp(td)["observation"]
    tensor([1., 1.])
"""
from __future__ import annotations

import numpy as np
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import InteractionType, set_interaction_type

from .._keys import key_list, unravel_key

__all__ = ["step_mdp", "seed_generator", "check_env_specs", "unravel_key", "key_list", "ExplorationType",
           "set_exploration_type"]

# TorchRL's names for tensordict's interaction types, importable where TorchRL users import them.
ExplorationType = InteractionType
set_exploration_type = set_interaction_type

_MAX_SEED = 2**32 - 1


def seed_generator(seed: int) -> int:
    """The seed that follows ``seed``, as TorchRL derives it (used for worker seeds too)."""
    rng = np.random.default_rng(seed)
    return int.from_bytes(rng.bytes(8), "big") % _MAX_SEED


def step_mdp(
    tensordict: TensorDictBase,
    next_tensordict: TensorDictBase | None = None,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    reward_keys="reward",
    done_keys=("done", "terminated", "truncated"),
    action_keys="action",
) -> TensorDictBase:
    """The tensordict of the next step: the content of ``"next"`` moved to the root.

    Reward keys are dropped unless ``exclude_reward=False``, action keys unless
    ``exclude_action=False``; other root keys are kept when ``keep_other``.
    """
    reward_keys = key_list(reward_keys, "reward_keys")
    done_keys = key_list(done_keys, "done_keys")
    action_keys = key_list(action_keys, "action_keys")
    nxt = tensordict.get("next")
    out = next_tensordict if next_tensordict is not None else TensorDict(batch_size=tensordict.batch_size, device=tensordict.device)
    if keep_other:
        skip = {"next"}
        skip.update(k for k in done_keys)
        skip.update(k for k in reward_keys)
        if exclude_action:
            skip.update(k for k in action_keys)
        for key in tensordict.keys(True, True):
            if key in skip or (isinstance(key, tuple) and key[0] == "next"):
                continue
            if key in nxt.keys(True, True):
                continue
            out.set(key, tensordict.get(key))
    elif not exclude_action:
        for key in action_keys:
            if key in tensordict.keys(True, True):
                out.set(key, tensordict.get(key))
    for key in nxt.keys(True, True):
        if exclude_reward and key in reward_keys:
            continue
        if exclude_done and key in done_keys:
            continue
        out.set(key, nxt.get(key))
    return out


def check_env_specs(env, return_contiguous: bool = True, check_dtype: bool = True, seed: int | None = None,
                    tensordict=None, break_when_any_done: bool | str = False) -> None:
    """Check that a short rollout of ``env`` matches its specs, key by key.

    Raises:
        AssertionError: naming the first key whose presence, shape, dtype or
            value does not fit the spec.
    """
    if seed is not None:
        env.set_seed(seed)
    fake = env.fake_tensordict()
    real = env.rollout(3, break_when_any_done=bool(break_when_any_done), tensordict=tensordict,
                       auto_reset=tensordict is None)
    step0 = real[..., 0]
    fake_keys = set(fake.keys(True, True))
    real_keys = set(step0.keys(True, True))
    if fake_keys != real_keys:
        raise AssertionError(
            f"rollout keys and spec keys differ: only in the rollout {sorted(map(str, real_keys - fake_keys))}, "
            f"only in the specs {sorted(map(str, fake_keys - real_keys))}"
        )
    for key in fake_keys:
        a, b = fake.get(key), step0.get(key)
        if a.shape != b.shape:
            raise AssertionError(f"key {key!r}: the specs give shape {tuple(a.shape)}, the rollout {tuple(b.shape)}")
        if check_dtype and a.dtype != b.dtype:
            raise AssertionError(f"key {key!r}: the specs give dtype {a.dtype}, the rollout {b.dtype}")
    specs = {}
    for key in env.observation_spec.keys(True, True):
        specs[key] = env.observation_spec[key]
    for key in env.full_done_spec.keys(True, True):
        specs[key] = env.full_done_spec[key]
    for t in range(real.shape[-1]):
        step = real[..., t]
        for key, spec in specs.items():
            for where in (key, ("next",) + (key if isinstance(key, tuple) else (key,))):
                value = step.get(where)
                if not spec.is_in(value):
                    raise AssertionError(f"key {where!r} at step {t}: value {value} is not in its spec {spec}")
