"""Gym-specific transforms: ``EndOfLifeTransform``.

Same arguments, keys, specs, warnings and errors as TorchRL 0.14.1's
``torchrl.envs.transforms.gym_transforms.EndOfLifeTransform``. The lives are
read from the gymnasium env the way TorchRL reads them: the dotted
``eol_attribute`` (``"unwrapped.ale.lives"``) is looked up on the base env
(a ``GymEnv`` hands unknown public attributes to its gymnasium env; a
``SerialEnv`` answers with one value per sub-env) and called when callable.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("ALE/Breakout-v5"), EndOfLifeTransform())
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(3, actions=[torch.tensor([0, 1, 0, 0])] * 3)
    >>> td["lives"].tolist(), td["next", "end-of-life"].squeeze(-1).tolist()
    ([5, 5, 5], [False, False, False])
"""
from __future__ import annotations

import warnings

import torch

from .._attrs import set_plain
from .._keys import unravel_key
from ..specs import Unbounded
from ._env_chain import parent_chain
from .base import Transform

__all__ = ["EndOfLifeTransform"]

FORWARD_NOT_IMPLEMENTED = "class {} cannot be executed without a parent environment."


def _one_key(value, name):
    """``value`` as an unravelled key (a str or a tuple of str); TypeError naming ``name`` otherwise."""
    try:
        return unravel_key(value)
    except (TypeError, ValueError):
        raise TypeError(f"EndOfLifeTransform requires {name} to be a non-empty str or tuple of str, got "
                        f"{type(value).__name__}: {value!r}") from None


def _right_expand(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` with trailing singleton dims added and expanded to ``like``'s shape."""
    return value.reshape(value.shape + (1,) * (like.ndim - value.ndim)).expand_as(like)


class EndOfLifeTransform(Transform):
    """Mark the steps where an Atari game loses a life: an "end-of-life" flag for value estimation (DQN and co).

    At each step the lives are read from the gymnasium env (``eol_attribute``,
    by default ``env.unwrapped.ale.lives()``); the flag ``eol_key`` under
    ``"next"`` is true where the lives went down since the previous step or
    where the ``done_key`` entry is true, and ``lives_key`` holds the lives
    (int64, one per env of the batch). At reset the flag is false and the
    lives are read again. The flag is added to the observation spec (a copy
    of the done entry's spec), not to the done spec: losing a life does not
    reset the env. :meth:`register_keys` tells a loss module or value
    estimator to use the flag as its "done" and "terminated".

    Args:
        eol_key: where the end-of-life flag is written (default ``"end-of-life"``).
        lives_key: where the lives are written (default ``"lives"``).
        done_key: the parent env's done entry, of the flag's shape (default ``"done"``).
        eol_attribute: the dotted path of the lives on the base env (default
            ``"unwrapped.ale.lives"``); an int, an array-like or a callable returning one.

    Raises:
        TypeError: a key is not a str or tuple of str, or ``eol_attribute`` not a str.
        RuntimeError: a step or reset without a parent env (``NO_PARENT_ERR``), or
            ``forward`` called on a tensordict (as TorchRL).
        KeyError: the ``done_key`` entry is missing from the step's output.

    Warns:
        UserWarning: the base env is not a ``GymWrapper`` (e.g. a ``SerialEnv`` of
            gym envs): compatibility is not guaranteed, as in TorchRL.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("ALE/Pong-v5"), EndOfLifeTransform(eol_key="eol"))
        >>> env.observation_spec["eol"].dtype, env.observation_spec["lives"].dtype
        (torch.bool, torch.int64)
        >>> EndOfLifeTransform(done_key=3)
        Traceback (most recent call last):
        ...
        TypeError: EndOfLifeTransform requires done_key to be a non-empty str or tuple of str, got int: 3
    """

    NO_PARENT_ERR = "The {} transform is being executed without a parent env. This is currently not supported."

    def __init__(self, eol_key="end-of-life", lives_key="lives", done_key="done",
                 eol_attribute: str = "unwrapped.ale.lives"):
        eol_key = _one_key(eol_key, "eol_key")
        lives_key = _one_key(lives_key, "lives_key")
        done_key = _one_key(done_key, "done_key")
        if not isinstance(eol_attribute, str) or not all(eol_attribute.split(".")):
            raise TypeError("EndOfLifeTransform requires eol_attribute to be a dotted attribute path such as "
                            f"'unwrapped.ale.lives', got {type(eol_attribute).__name__}: {eol_attribute!r}")
        super().__init__(in_keys=[done_key])
        set_plain(self, "out_keys", [eol_key, lives_key])  # one input, two outputs, as in TorchRL
        self.eol_key = eol_key
        self.lives_key = lives_key
        self.done_key = done_key
        self.eol_attribute = eol_attribute.split(".")

    # ------------------------------------------------------------------ lives
    def _chain(self):
        chain = parent_chain(self)
        if chain is None:
            raise RuntimeError(self.NO_PARENT_ERR.format(type(self)))
        return chain

    def _get_lives(self, base_env, device) -> torch.Tensor:
        from ..envs.gym import GymWrapper

        if not isinstance(base_env, GymWrapper):
            warnings.warn(f"The base_env is not a gym env. Compatibility of {type(self)} is not guaranteed with "
                          "environment types that do not inherit from GymWrapper.", category=UserWarning)
        first, *rest = self.eol_attribute
        lives = getattr(base_env, first)
        for name in rest:
            lives = [getattr(item, name) for item in lives] if isinstance(lives, list) else getattr(lives, name)
        if callable(lives):
            lives = lives()
        elif isinstance(lives, list) and all(callable(item) for item in lives):
            lives = [item() for item in lives]
        return torch.as_tensor(lives, dtype=torch.int64, device=device)

    # ------------------------------------------------------------- env hooks
    def _call(self, next_tensordict):
        return next_tensordict

    def _step(self, tensordict, next_tensordict):
        env, base_env, _ = self._chain()
        lives = self._get_lives(base_env, env.device)
        done = next_tensordict.get(self.done_key, None)
        if done is None:
            raise KeyError(f"The done value pointed by {self.done_key} cannot be found in tensordict with keys "
                           f"{list(next_tensordict.keys(True, True))}. Make sure to pass the appropriate done_key "
                           f"to the {type(self)} transform.")
        previous = tensordict.get(self.lives_key, None)
        if previous is None:  # a step input holding only the action (e.g. from a batched env): the last reading
            previous = self.__dict__.get("_last_lives")
        if previous is None:
            raise KeyError(f"EndOfLifeTransform: key {self.lives_key!r} not found in the step's input (reset the env "
                           f"first); keys present: {sorted(map(str, tensordict.keys(True, True)))}")
        lost = previous.to(lives.device) > lives
        next_tensordict.set(self.eol_key, _right_expand(lost, done) | done)
        next_tensordict.set(self.lives_key, lives)
        set_plain(self, "_last_lives", lives)
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        env, base_env, _ = self._chain()
        lives = self._get_lives(base_env, env.device)
        done = tensordict_reset.get(self.done_key, None)
        shape = done.shape if done is not None else self._done_shape(env)
        tensordict_reset.set(self.eol_key, torch.zeros((), dtype=torch.bool, device=lives.device).expand(shape))
        tensordict_reset.set(self.lives_key, lives)
        set_plain(self, "_last_lives", lives)
        return tensordict_reset

    def _done_shape(self, env):
        return self.parent.output_spec["full_done_spec"][self.done_key].shape

    # ------------------------------------------------------------------ specs
    def _add_specs(self, observation_spec, done_spec):
        spec = done_spec.get(self.done_key) if hasattr(done_spec, "get") else None
        if spec is None:
            raise KeyError(f"EndOfLifeTransform: done_key {self.done_key!r} is not in the parent env's done spec; "
                           f"done keys: {sorted(map(str, done_spec.keys(True, True)))}")
        observation_spec[self.eol_key] = spec.clone()
        observation_spec[self.lives_key] = Unbounded(observation_spec.shape, device=observation_spec.device,
                                                     dtype=torch.int64)
        return observation_spec

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        output_spec["full_observation_spec"] = self._add_specs(output_spec["full_observation_spec"],
                                                               output_spec["full_done_spec"])
        return output_spec

    def transform_observation_spec(self, observation_spec):
        parent = self.parent
        if parent is None:
            raise RuntimeError(self.NO_PARENT_ERR.format(type(self)))
        return self._add_specs(observation_spec, parent.output_spec["full_done_spec"])

    # ------------------------------------------------------------------ other
    def register_keys(self, loss_or_advantage):
        """Make ``loss_or_advantage`` (a loss module or a value estimator) read the flag as "done" and "terminated".

        Same as ``loss_or_advantage.set_keys(done=eol_key, terminated=eol_key)``.
        """
        loss_or_advantage.set_keys(done=self.eol_key, terminated=self.eol_key)

    def forward(self, tensordict):
        raise RuntimeError(FORWARD_NOT_IMPLEMENTED.format(type(self)))

    def __repr__(self) -> str:
        return (f"EndOfLifeTransform(eol_key={self.eol_key!r}, lives_key={self.lives_key!r}, "
                f"done_key={self.done_key!r}, eol_attribute={'.'.join(self.eol_attribute)!r})")
