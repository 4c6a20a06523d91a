"""Helpers shared by the reward and episode transforms.

- Finding the env a transform sits in, and the transforms that come before
  it (``container_env``, ``parent_chain``), to read specs or to step the
  env from inside a transform.
- Reading a ``"_reset"`` mask out of a tensordict as a NumPy bool array of
  the batch shape (``reset_mask``), and zeroing state where it is set.
- ``RunningState``: per-key state (episode returns, step counts, last
  observations) kept across steps, saved in ``state_dict`` as extra state and
  restored by ``load_state_dict``. It is a NumPy array for CPU data and a
  tensor on the data's device for CUDA data (``state_on`` moves it there,
  ``host_state`` back, nothing lost).
- The CUDA twins of the per-step episode kernels and of the reset helpers,
  as torch operations on the device (``count_steps_tensor``,
  ``add_into_tensor``, ``device_reset_mask``, ``zero_where_tensor``): the
  reset mask stays on the device, so nothing is read back to the host.
- ``BufferMirrors``: settings held in buffers (TorchRL's ``state_dict``
  keys) read once on the host, and buffers copied once to the data's device.

Examples:
    >>> import numpy as np
    >>> state = np.arange(3.0)
    >>> zero_where(state, np.array([True, False, True]))
    >>> state
    array([0., 1., 0.])
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .._arrays import as_array
from ..envs.utils import unravel_key

__all__ = ["env_above", "container_env", "parent_chain", "ensure_specs", "reset_mask", "zero_where", "RunningState",
           "key_tuple", "with_leaf", "check_str_key", "check_int", "chain_step", "chain_reset",
           "BufferMirrors", "batch_view", "device_reset_mask", "zero_where_tensor", "add_into_tensor",
           "count_steps_tensor", "state_on", "host_state", "first_leaf"]


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
    reset = base_env._reset_output(tensordict)
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
    """Mixin for transforms that keep per-key state across steps.

    Subclasses name the dict attributes holding ``{key: state}`` in
    ``_state_names``; a state is a NumPy array (CPU data) or a tensor on the
    device of CUDA data. Those states go into ``state_dict()`` (as the
    module's extra state, tensors on the state's device) and come back with
    ``load_state_dict`` as NumPy arrays (moved to the device at the next CUDA
    step); a state dict without them (e.g. saved by TorchRL) loads and leaves
    the state empty, so it starts again from zero.
    """

    _state_names: tuple = ()

    def _init_state(self) -> None:
        for name in self._state_names:
            self.__dict__[name] = {}

    def get_extra_state(self):
        return {name: {key: _saved(value) for key, value in self.__dict__[name].items()}
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


def _saved(value) -> torch.Tensor:
    """A copy of a kept state as a tensor (on the state's device)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value.detach().clone()


def host_state(store: dict, key):
    """``store[key]`` as a NumPy array (a state kept on a device is copied back once and replaced), or None."""
    state = store.get(key)
    if state is not None and type(state) is not np.ndarray:
        state = store[key] = state.detach().cpu().numpy()
    return state


def state_on(store: dict, key, like: torch.Tensor, dtype=None) -> torch.Tensor:
    """``store[key]`` as a tensor on ``like``'s device, of ``like``'s shape.

    A state of that shape kept elsewhere (a NumPy array, or a tensor on another
    device) is moved there (a host-to-device copy, once) and keeps its dtype;
    without one, the state starts at zeros of ``dtype`` (default: ``like``'s).
    The tensor replaces the entry, so later steps update it in place.
    """
    state = store.get(key)
    if isinstance(state, torch.Tensor) and state.device == like.device and state.shape == like.shape:
        return state
    if state is not None and tuple(state.shape) == tuple(like.shape):
        source = torch.from_numpy(state) if isinstance(state, np.ndarray) else state.detach()
        state = source.to(device=like.device, copy=True)
    else:
        state = torch.zeros(like.shape, dtype=like.dtype if dtype is None else dtype, device=like.device)
    store[key] = state
    return state


# ------------------------------------------------------------- device twins
def first_leaf(tensordict):
    """The first tensor of ``tensordict`` (nested entries included), or None; it tells the device of the data."""
    for value in tensordict.values(True, True):
        if isinstance(value, torch.Tensor):
            return value
    return None


def batch_view(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """``mask`` (of the batch shape) with size-1 dims appended up to ``ndim`` dims, to broadcast over a state."""
    extra = ndim - mask.ndim
    return mask if extra <= 0 else mask.reshape(tuple(mask.shape) + (1,) * extra)


def device_reset_mask(tensordict, key, batch_shape, device):
    """The reset request at ``key`` as a bool tensor of ``batch_shape`` on ``device``, or None when there is none.

    The twin of :func:`reset_mask` for CUDA data: the request stays on the
    device, so a request that resets every sub-env is not told apart from a
    partial one (the masked updates of the callers give the same result for
    both). A request of shape ``[*batch, 1]`` or ``[*batch]`` is accepted.

    Raises:
        ValueError: a request whose size does not fit ``batch_shape``.
    """
    if tensordict is None:
        return None
    request = tensordict.get(key, None)
    if request is None:
        return None
    size = math.prod(batch_shape) if batch_shape else 1
    if request.numel() != size:
        raise ValueError(f"the reset request {key!r} has shape {tuple(request.shape)}, which does not fit the batch "
                         f"shape {tuple(batch_shape)}")
    return request.to(device=device, dtype=torch.bool).reshape(tuple(batch_shape))


def zero_where_tensor(state: torch.Tensor, mask) -> None:
    """:func:`zero_where` for a tensor and a bool tensor mask (or None: everywhere), on the state's device."""
    if mask is None:
        state.zero_()
    else:
        state.masked_fill_(batch_view(mask, state.ndim), 0)


def add_into_tensor(total: torch.Tensor, value: torch.Tensor) -> None:
    """``total += value`` in place in ``total``'s dtype, as :func:`numbarl.core.episode.add_into` does on arrays.

    Raises:
        ValueError: different shapes.
    """
    if value.shape != total.shape:
        raise ValueError(f"value must have shape {tuple(total.shape)}, got {tuple(value.shape)}")
    if value.dtype == total.dtype:
        total.add_(value)
    else:
        total.copy_(total + value)


def count_steps_tensor(count: torch.Tensor, done=None, truncated=None, max_steps=None, update_done=True):
    """Add one to every step count in place; with ``max_steps``, return ``(done_out, trunc_out)``.

    The twin of :func:`numbarl.core.episode.count_steps` for tensors:
    ``trunc_out = (count >= max_steps) | truncated`` and, when
    ``update_done``, ``done_out = done | (count >= max_steps)`` (else None),
    after the increment. Returns ``(None, None)`` without ``max_steps``.

    Raises:
        TypeError: ``count`` not int64, or ``done`` / ``truncated`` not bool.
        ValueError: flags of another shape than ``count``.
    """
    if count.dtype != torch.int64:
        raise TypeError(f"count must have dtype int64, got {count.dtype}")
    for name, flag in (("done", done), ("truncated", truncated)):
        if flag is None:
            continue
        if flag.dtype != torch.bool:
            raise TypeError(f"{name} must have dtype bool, got {flag.dtype}")
        if flag.shape != count.shape:
            raise ValueError(f"{name} must have shape {tuple(count.shape)}, got {tuple(flag.shape)}")
    count.add_(1)
    if max_steps is None:
        return None, None
    cut = count >= max_steps
    trunc_out = cut if truncated is None else cut | truncated
    return (done | cut) if update_done else None, trunc_out


# ------------------------------------------------------------ buffer mirrors
class BufferMirrors:
    """Mixin: read settings held in buffers without touching the device at every call.

    TorchRL keeps settings such as a discount or a flag in buffers (they are
    its ``state_dict`` keys), and ``Module.to`` may put them on a GPU, where
    each ``float(buffer)`` would wait for the device. ``_host_buffers`` maps
    such buffer names to a conversion (``float``, ``bool``);
    :meth:`_host_value` gives the converted value, read again only when the
    buffer is replaced or changed in place (at construction, after a load or
    a copy, never on the per-step path). :meth:`_buffer_on` gives a buffer on
    the data's device and dtype: the buffer itself when it is there already,
    else a copy made once and kept until the buffer changes.
    """

    _host_buffers: dict = {}

    def _host_value(self, name):
        buf = self._buffers.get(name)
        cache = self.__dict__.setdefault("_host_values", {})
        hit = cache.get(name)
        if hit is not None and hit[0] is buf and (buf is None or hit[1] == buf._version):
            return hit[2]
        value = None if buf is None else self._host_buffers[name](buf)
        cache[name] = (buf, None if buf is None else buf._version, value)
        return value

    def _prime_host_values(self) -> None:
        """Read every host value now (the buffers were made, loaded or copied)."""
        self.__dict__["_host_values"] = {}
        for name in self._host_buffers:
            self._host_value(name)

    def _buffer_on(self, name, device, dtype=None):
        buf = self._buffers.get(name)
        if buf is None or (buf.device == device and (dtype is None or buf.dtype == dtype)):
            return buf
        cache = self.__dict__.setdefault("_device_copies", {})
        key = (name, device, dtype)
        hit = cache.get(key)
        if hit is not None and hit[0] is buf and hit[1] == buf._version:
            return hit[2]
        copy = buf.detach().to(device=device, dtype=buf.dtype if dtype is None else dtype, copy=True)
        cache[key] = (buf, buf._version, copy)
        return copy

    def _apply(self, fn, *args, **kwargs):
        before = {name: (self._buffers.get(name), self._host_value(name)) for name in self._host_buffers}
        result = super()._apply(fn, *args, **kwargs)
        cache = self.__dict__.setdefault("_host_values", {})
        for name, (old, value) in before.items():
            new = self._buffers.get(name)
            if new is not None and old is not None and new is not old:
                if new.dtype == old.dtype:  # moved, not converted: the value is the same
                    cache[name] = (new, new._version, value)
                else:
                    cache.pop(name, None)
        self.__dict__["_device_copies"] = {}
        return result

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._prime_host_values()
        self.__dict__["_device_copies"] = {}

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_host_values", None)
        state.pop("_device_copies", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._prime_host_values()
