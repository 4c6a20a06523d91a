"""Helpers shared by the reward and episode transforms.

- Finding the env a transform sits in, and the transforms that come before
  it (``container_env``, ``parent_chain``), to read specs or to step the
  env from inside a transform.
- Reading a ``"_reset"`` mask out of a tensordict as a NumPy bool array of
  the batch shape (``reset_mask``), and zeroing state where it is set.
- ``RunningState``: per-key NumPy arrays (episode returns, step counts, last
  observations) kept across steps, saved in ``state_dict`` as extra state and
  restored by ``load_state_dict``.

Examples:
    >>> import numpy as np
    >>> state = np.arange(3.0)
    >>> zero_where(state, np.array([True, False, True]))
    >>> state
    array([0., 1., 0.])
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from .._arrays import as_array
from ..envs.utils import unravel_key

__all__ = ["env_above", "container_env", "parent_chain", "ensure_specs", "reset_mask", "zero_where", "RunningState",
           "key_tuple", "with_leaf", "check_str_key", "check_bool", "check_int", "chain_step", "chain_reset"]


def key_tuple(key) -> tuple:
    """``key`` as a tuple of str."""
    key = unravel_key(key)
    return key if isinstance(key, tuple) else (key,)


def with_leaf(key, leaf: str):
    """``key`` with its last element replaced by ``leaf`` (``("a", "reward") -> ("a", leaf)``)."""
    parts = key_tuple(key)[:-1] + (leaf,)
    return parts[0] if len(parts) == 1 else parts


def check_str_key(owner: str, name: str, value) -> str:
    """``value`` when it is a str; TypeError naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{owner} requires {name} to be a str (a leaf name), got {type(value).__name__}: {value!r}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner} requires {name} to be a bool, got {type(value).__name__}: {value!r}")
    return bool(value)


def check_int(owner: str, name: str, value, low: int) -> int:
    """``value`` as an int >= ``low``; TypeError for a non-int (bool included), ValueError below ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner} requires {name} to be an int, got {type(value).__name__}: {value!r}")
    if value < low:
        raise ValueError(f"{owner} requires {name} >= {low}, got {value}")
    return int(value)


def env_above(node):
    """The env at the top of a chain of containers starting at ``node`` (a Compose or an env), or None."""
    from ..envs.common import EnvBase

    while node is not None and not isinstance(node, EnvBase):
        node = node.container
    return node


def container_env(transform):
    """The ``TransformedEnv`` holding ``transform`` (through any ``Compose``), or None."""
    return env_above(transform.container)


def parent_chain(transform):
    """``(env, base_env, preceding)``: the env holding ``transform``, its base env, and the transforms before it.

    The transforms are the live instances (not copies), in order. Returns
    None when ``transform`` is not inside an env.
    """
    from ..envs.common import EnvBase

    preceding = []
    child, node = transform, transform.container
    while node is not None:
        if isinstance(node, EnvBase):
            return node, node.base_env, preceding
        index = next(i for i, t in enumerate(node.transforms) if t is child)
        preceding = list(node.transforms[:index]) + preceding
        child, node = node, node.container
    return None


def chain_step(base_env, preceding, tensordict):
    """One step of ``base_env`` seen through ``preceding`` transforms: the "next" tensordict."""
    inner = tensordict.clone(False)
    for t in reversed(preceding):
        inner = t._inv_call(inner)
    next_td = base_env._complete_done(base_env._step(inner), at_reset=False)
    for t in preceding:
        next_td = t._step(tensordict, next_td)
    return next_td


def chain_reset(base_env, preceding, tensordict):
    """A reset of ``base_env`` seen through ``preceding`` transforms."""
    reset = base_env.reset(tensordict)
    for t in preceding:
        reset = t._reset(tensordict, reset)
    return reset


def ensure_specs(transform) -> None:
    """Make the env holding ``transform`` (if any) compute its transformed specs, which runs the spec hooks."""
    env = container_env(transform)
    if env is not None:
        env.output_spec


def reset_mask(tensordict, key, batch_shape):
    """The reset request at ``key`` in ``tensordict`` as a bool array of ``batch_shape``, or None (reset all).

    A request of shape ``[*batch, 1]`` or ``[*batch]`` is accepted.
    """
    if tensordict is None:
        return None
    request = tensordict.get(key, None)
    if request is None:
        return None
    mask = as_array(request).astype(bool, copy=False)
    size = int(np.prod(batch_shape)) if batch_shape else 1
    if mask.size != size:
        raise ValueError(f"the reset request {key!r} has shape {tuple(mask.shape)}, which does not fit the batch "
                         f"shape {tuple(batch_shape)}")
    mask = mask.reshape(tuple(batch_shape))
    if mask.all():
        return None
    return mask


def zero_where(state: np.ndarray, mask) -> None:
    """Set ``state`` to 0 where ``mask`` (batch shape, leading dims of ``state``) holds; everywhere when None."""
    if mask is None:
        state[...] = 0
    elif mask.ndim == 0:
        if mask:
            state[...] = 0
    else:
        state[mask] = 0


class RunningState:
    """Mixin for transforms that keep per-key arrays across steps.

    Subclasses name the dict attributes holding ``{key: numpy array}`` in
    ``_state_names``. Those arrays go into ``state_dict()`` (as the module's
    extra state, tensors) and come back with ``load_state_dict``; a state
    dict without them (e.g. saved by TorchRL) loads and leaves the state
    empty, so it starts again from zero.
    """

    _state_names: tuple = ()

    def _init_state(self) -> None:
        for name in self._state_names:
            self.__dict__[name] = {}

    def get_extra_state(self):
        return {name: {key: torch.from_numpy(value.copy()) for key, value in self.__dict__[name].items()}
                for name in self._state_names}

    def set_extra_state(self, state) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"{type(self).__name__}.set_extra_state requires a dict, got {type(state).__name__}")
        for name in self._state_names:
            values = state.get(name, {})
            self.__dict__[name] = {key: np.array(torch.as_tensor(v).cpu().numpy(), copy=True)
                                   for key, v in values.items()}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "_extra_state"
        present = key in state_dict
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if not present and key in missing_keys:
            missing_keys.remove(key)
            self._init_state()

    def reset_state(self) -> None:
        """Forget the running state; it starts again from zero."""
        self._init_state()
