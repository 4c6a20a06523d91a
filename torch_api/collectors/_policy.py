"""Policies of the collectors: ``RandomPolicy`` and the wrapping of what users pass as ``policy``."""
from __future__ import annotations

import inspect

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase

__all__ = ["RandomPolicy"]


class RandomPolicy:
    """A policy that writes a random action drawn from ``action_spec``, as TorchRL's ``RandomPolicy``.

    Args:
        action_spec: the spec to draw from (a leaf spec, or a Composite holding ``action_key``).
        action_key: where the action is written (default ``"action"``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from numbarl.torch_api import Bounded
        >>> policy = RandomPolicy(Bounded(-1.0, 1.0, shape=(2,)))
        >>> td = policy(TensorDict())
        >>> td["action"].shape, bool((td["action"].abs() <= 1).all())
        (torch.Size([2]), True)
    """

    def __init__(self, action_spec=None, action_key="action"):
        self.action_spec = action_spec
        self.action_key = action_key

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        spec = self.action_spec
        if spec is None:
            raise RuntimeError("RandomPolicy needs an action_spec to draw from; pass one to its constructor")
        if hasattr(spec, "keys") and not hasattr(spec, "n") and self.action_key in spec.keys(True, True):
            spec = spec[self.action_key]
        return td.set(self.action_key, spec.rand())


def _takes_tensordict(module: torch.nn.Module) -> bool:
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) != 1:
        return False
    p = params[0]
    if p.name in ("tensordict", "td"):
        return True
    ann = p.annotation
    return isinstance(ann, type) and issubclass(ann, TensorDictBase)


def _module_in_keys(module, env, owner: str) -> list:
    obs = env.observation_keys
    try:
        names = [p.name for p in inspect.signature(module.forward).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    if names and all(n in obs for n in names):
        return names
    if len(names) == 1 and "observation" in obs:
        return ["observation"]
    if len(obs) == 1:
        return list(obs)
    raise TypeError(f"{owner}: cannot tell which observation keys {obs} the policy module "
                    f"{type(module).__name__} takes; wrap it in a TensorDictModule with in_keys")


def resolve_policy(policy, policy_factory, env, owner: str):
    """The callable a collector runs: ``policy``, ``policy_factory()``, or ``None`` (random actions)."""
    if policy is not None and policy_factory is not None:
        raise TypeError(f"{owner}: policy_factory cannot be used with the policy argument; pass one of them")
    if policy_factory is not None:
        if not callable(policy_factory):
            raise TypeError(f"{owner} requires policy_factory to be callable, got {type(policy_factory).__name__}")
        policy = policy_factory()
    if policy is None:
        return None
    if isinstance(policy, TensorDictModuleBase):
        return policy
    if isinstance(policy, torch.nn.Module) and not _takes_tensordict(policy):
        # As TorchRL: a plain module maps observations (matched by its forward's argument names) to the actions.
        return TensorDictModule(policy, in_keys=_module_in_keys(policy, env, owner), out_keys=env.action_keys)
    if not callable(policy):
        raise TypeError(f"{owner} requires policy to be a TensorDictModule, a callable on a TensorDict or None, "
                        f"got {type(policy).__name__}")
    return policy
