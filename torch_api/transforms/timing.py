"""``Timer``: how long the env's steps and resets, and the policy between them, take.

Same arguments, keys, specs and errors as TorchRL 0.14.1's ``Timer``. The
clock is ``time.perf_counter`` (monotonic, sub-microsecond) where TorchRL
reads ``time.time``: an interval can never come out negative when the
system clock is adjusted, and short steps are not rounded to the wall
clock's resolution.

Examples:
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), Timer())
    >>> td = env.rollout(4)
    >>> td["time_policy"][0].item(), bool((td["next", "time_step"] > 0).all())
    (0.0, True)
    >>> td["next", "time_reset"].eq(0).all().item(), td["time_step"].dtype
    (True, torch.float32)
"""
from __future__ import annotations

import time

import torch
from tensordict import TensorDictBase

from .._attrs import set_plain
from .._keys import key_list
from ..specs import Unbounded
from .base import Transform

__all__ = ["Timer"]

FORWARD_NOT_IMPLEMENTED = "class {} cannot be executed without a parent environment."


def _set_expanded(tensordict: TensorDictBase, key, seconds: float) -> None:
    """Write ``seconds`` (default float dtype) at ``key``, expanded to the batch size of the tensordict holding it."""
    value = torch.tensor(seconds, dtype=torch.get_default_dtype(), device=tensordict.device)
    holder = tensordict
    if isinstance(key, tuple) and len(key) > 1:
        inner = tensordict.get(key[:-1], None)
        if inner is not None:
            holder, key = inner, key[-1]
    holder.set(key, value.expand(holder.batch_size))


class Timer(Transform):
    """Record the time the env spends in ``step`` and ``reset`` and the time the policy spends between them.

    Three entries are written, named ``f"{time_key}_step"``,
    ``f"{time_key}_policy"`` and ``f"{time_key}_reset"`` by default (or
    ``out_keys``, in that order), in seconds, with torch's default float
    dtype, expanded to the batch size:

    - under ``"next"`` after a step: ``*_step`` is the time from the policy's
      action reaching the env to the step's output, ``*_policy`` the time
      from the previous output to that action, ``*_reset`` is 0;
    - at a reset: ``*_reset`` is the time the base env's reset took,
      ``*_step`` and ``*_policy`` are 0.

    A nested out_key whose sub-tensordict does not exist yet is created
    (TorchRL 0.14.1 raises AttributeError there).

    So in a rollout the root entries are 0 where an episode starts and the
    ``"next"`` entries are never 0 for step and policy. The entries are
    added to the observation spec as ``Unbounded`` with the env's batch shape.

    Args:
        out_keys: three keys (step, policy, reset), or None for the defaults.
        time_key: the prefix of the default keys (default ``"time"``).

    Raises:
        TypeError: ``out_keys`` is not three keys (as TorchRL), a key is not a
            str or tuple of str, or ``time_key`` is not a str.
        NotImplementedError: called on a tensordict outside an env (as TorchRL).

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("CartPole-v1"), Timer(time_key="t"))
        >>> sorted(k for k in env.observation_spec.keys() if k.startswith("t_"))
        ['t_policy', 't_reset', 't_step']
        >>> Timer(out_keys=["a", "b"])
        Traceback (most recent call last):
        ...
        TypeError: Expected three out_keys. Got out_keys=['a', 'b'].
    """

    def __init__(self, out_keys=None, time_key: str = "time"):
        if not isinstance(time_key, str):
            raise TypeError(f"Timer requires time_key to be a str, got {type(time_key).__name__}: {time_key!r}")
        if out_keys is None:
            out_keys = [f"{time_key}_step", f"{time_key}_policy", f"{time_key}_reset"]
        elif isinstance(out_keys, (str, tuple)) or not hasattr(out_keys, "__len__") or len(out_keys) != 3:
            raise TypeError(f"Expected three out_keys. Got out_keys={out_keys}.")
        keys = key_list(out_keys, "out_keys")
        super().__init__()
        set_plain(self, "out_keys", keys)  # three outputs and no input, as in TorchRL
        self.time_key = time_key
        self.time_step_key, self.time_policy_key, self.time_reset_key = keys
        self.last_inv_time = None
        self.last_call_time = None
        self.last_reset_time = None
        set_plain(self, "_policy_time", None)
        set_plain(self, "_clock", time.perf_counter)

    def _reset_env_preprocess(self, tensordict):
        self.last_reset_time = self.last_inv_time = self._clock()
        return tensordict

    def _reset(self, tensordict, tensordict_reset):
        now = self._clock()
        reset_time = 0.0 if self.last_reset_time is None else now - self.last_reset_time
        _set_expanded(tensordict_reset, self.time_reset_key, reset_time)
        _set_expanded(tensordict_reset, self.time_step_key, 0.0)
        _set_expanded(tensordict_reset, self.time_policy_key, 0.0)
        self.last_call_time = now
        set_plain(self, "_policy_time", None)
        return tensordict_reset

    def _inv_call(self, tensordict):
        now = self._clock()
        if self.last_call_time is not None:
            _set_expanded(tensordict, self.time_policy_key, now - self.last_call_time)
            # the env's step reads it from here: TransformedEnv hands _step the policy's tensordict
            set_plain(self, "_policy_time", tensordict.get(self.time_policy_key))
        self.last_inv_time = now
        return tensordict

    def _step(self, tensordict, next_tensordict):
        now = self._clock()
        if self.last_inv_time is not None:
            _set_expanded(next_tensordict, self.time_step_key, now - self.last_inv_time)
            _set_expanded(next_tensordict, self.time_reset_key, 0.0)
        self.last_call_time = now
        policy = self.__dict__["_policy_time"]
        set_plain(self, "_policy_time", None)
        if policy is None:
            policy = tensordict.get(self.time_policy_key)
        next_tensordict.set(self.time_policy_key, policy)
        return next_tensordict

    def transform_observation_spec(self, observation_spec):
        for key in (self.time_step_key, self.time_policy_key, self.time_reset_key):
            observation_spec[key] = Unbounded(shape=observation_spec.shape, device=observation_spec.device)
        return observation_spec

    def forward(self, tensordict):
        raise NotImplementedError(FORWARD_NOT_IMPLEMENTED.format(type(self)))

    def __repr__(self) -> str:
        return f"Timer(out_keys={self.out_keys})"
