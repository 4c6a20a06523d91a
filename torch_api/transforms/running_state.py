"""State that transforms keep across steps.

- ``RunningState``: per-key state (episode returns, step counts, last
  observations) kept across steps, saved in ``state_dict`` as extra state and
  restored by ``load_state_dict``. It is a NumPy array for CPU data and a
  tensor on the data's device for CUDA data (the executors of the device
  seam move it there, ``host_state`` back, nothing lost).
- ``BufferMirrors``: settings held in buffers (TorchRL's ``state_dict``
  keys) read once on the host, and buffers copied once to the data's device.

Examples:
    >>> import numpy as np
    >>> store = {"x": np.arange(2.0)}
    >>> host_state(store, "x")
    array([0., 1.])
"""
from __future__ import annotations

import numpy as np
import torch

from .._attrs import set_plain
from .._device import HOST


__all__ = ["RunningState", "host_state", "BufferMirrors"]


class RunningState:
    """Mixin for transforms that keep per-key state across steps.

    Subclasses name the dict attributes holding ``{key: state}`` in
    ``_state_names``; a state is a NumPy array (CPU data) or a tensor on the
    device of CUDA data. As in TorchRL, ``state_dict()`` leaves them out (so
    TorchRL loads numbarl's checkpoints, strict): ``get_extra_state()`` gives
    them (tensors on the state's device) and ``set_extra_state`` puts them
    back as NumPy arrays (moved to the device at the next CUDA step). A state
    dict holding them (``_extra_state``, written by earlier versions) still
    loads them; one without them leaves the state empty, so it starts again
    from zero.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import RewardSum
        >>> t = RewardSum()
        >>> t.set_extra_state({"_sums": {"episode_reward": torch.tensor([2.0])}})
        >>> list(t.state_dict()), t.get_extra_state()["_sums"]["episode_reward"]
        ([], tensor([2.]))
    """

    _state_names: tuple = ()

    def _init_state(self) -> None:
        for name in self._state_names:
            set_plain(self, name, {})

    def get_extra_state(self):
        return {name: {key: _saved(value) for key, value in self.__dict__[name].items()}
                for name in self._state_names}

    def set_extra_state(self, state) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"{type(self).__name__}.set_extra_state requires a dict, got {type(state).__name__}")
        for name in self._state_names:
            values = state.get(name, {})
            set_plain(self, name, {key: np.array(torch.as_tensor(v).cpu().numpy(), copy=True)
                                   for key, v in values.items()})

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination.pop(prefix + "_extra_state", None)  # running state is not a checkpoint entry (TorchRL's format)

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
    return HOST.held(store, key)


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
        set_plain(self, "_host_values", {})
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
        set_plain(self, "_device_copies", {})
        return result

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._prime_host_values()
        set_plain(self, "_device_copies", {})

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_host_values", None)
        state.pop("_device_copies", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._prime_host_values()
