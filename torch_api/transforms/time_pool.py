"""``TimeMaxPool``: the elementwise maximum of each observation over its last ``T`` steps.

Each in_key keeps a history ``[T, *batch, *obs]`` (slot 0 the newest) in a
buffer named as TorchRL 0.14.1 names it (``_maxpool_buffer_<key>``), so that
``state_dict`` entries are interchangeable with TorchRL's. A step ages the
history by one slot and writes the new observation in slot 0; a reset
empties the history of the sub-envs it resets (all of them, or those
flagged by the reset key) before writing their reset observation. Empty
slots hold 0 and take part in the maximum, as in TorchRL: until ``T``
observations have been seen, the output is at least 0.

CPU observations of bool, integer, float32 and float64 dtypes are pooled by
the kernel of :mod:`numbarl.core.time_pool`, in place in the history,
through NumPy views; other dtypes (float16, bfloat16) and other devices
(CUDA included, where the history lives on the data's device and nothing is
read back to the host) use a few torch operations with the same result.

Examples:
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), TimeMaxPool(in_keys=["observation"], out_keys=["pooled"], T=3))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(5)
    >>> obs, pooled = td["next", "observation"], td["next", "pooled"]
    >>> bool((pooled[4] == obs[2:5].max(0).values).all())
    True
"""
from __future__ import annotations

import numpy as np
import torch

from .._arrays import as_array, numpy_dtype, torch_dtype
from .._attrs import set_plain
from .._device import launch, ops_for
from .._keys import unravel_key
from ._checks import CompatValueError, check_int, check_unique
from ._env_chain import container_env
from ._reset_masks import batch_view
from .keyed_array import KeyedArrayTransform, derived_spec
from ..specs import Bounded

__all__ = ["TimeMaxPool"]

# dtypes the kernel of numbarl.core.time_pool takes
_KERNEL_DTYPES = frozenset((torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                            torch.float32, torch.float64))
_KERNEL_NP_DTYPES = frozenset(np.dtype(numpy_dtype(d)) for d in _KERNEL_DTYPES)
_CPU = torch.device("cpu")


def _buffer_name(key) -> str:
    """TorchRL's name of the history buffer of ``key`` (nested keys joined with ``_``)."""
    return "_maxpool_buffer_" + ("_".join(key) if isinstance(key, tuple) else key)


def _check_reset_key(value):
    if value is None:
        return None
    try:
        return unravel_key(value)
    except TypeError:
        raise TypeError(f"TimeMaxPool requires reset_key to be a str or a tuple of str, got "
                        f"{type(value).__name__}: {value!r}") from None
    except ValueError as err:
        raise ValueError(f"TimeMaxPool requires reset_key to be a non-empty key: {err}") from None


def _pool_torch(buf, x, mask, clear):
    """The pooling step in torch operations on ``buf``'s device (see :func:`numbarl.core.time_pool.time_pool_push`).

    ``mask`` is None (every sub-env) or a bool tensor of the batch shape on that device.
    """
    if mask is None:
        if clear:
            buf.zero_()
        elif buf.shape[0] > 1:
            buf[1:] = buf[:-1].clone()
        buf[0] = x
        return buf.max(0).values
    aged = torch.zeros_like(buf) if clear else torch.cat([buf[:1], buf[:-1]])
    aged[0] = x
    keep = batch_view(mask, x.ndim)
    buf.copy_(torch.where(keep.unsqueeze(0), aged, buf))
    return torch.where(keep, buf.max(0).values, torch.zeros((), dtype=x.dtype, device=x.device))


class TimeMaxPool(KeyedArrayTransform):
    """Take the elementwise maximum of each in_key over its last ``T`` observations.

    Same arguments, keys, buffers and results as TorchRL 0.14.1's
    ``TimeMaxPool``: the history starts (and restarts at each reset) as
    zeros, so the output is ``max(obs, 0)`` right after a reset and the
    maximum of the last ``T`` observations once ``T`` steps have passed. On a
    partial reset the sub-envs left alone keep their history (their rows of
    the reset output are 0, as TorchRL gives; an env's ``reset`` keeps their
    current values). An in_key missing from the reset data is taken from the
    tensordict given to ``reset``, as in TorchRL.

    Differences from TorchRL: a Bounded spec whose bounds exclude 0 is
    widened to include it (the empty slots make 0 a possible output; TorchRL
    keeps a spec that its own outputs violate); ``state_dict`` works before
    the first step (TorchRL raises on its uninitialised buffers) and loads
    into a new instance; ``reset_key`` defaults to ``"_reset"`` outside an
    env; observations whose shape, dtype or device changes in the middle of
    an episode raise ValueError instead of being cast or broadcast into the
    old history; ``T`` must be an int.

    Args:
        in_keys: keys to pool (default ``["observation"]``).
        out_keys: where to write the maxima (default ``in_keys``).
        T: number of steps pooled over, an int >= 1 (default 1).
        reset_key: the partial-reset entry (default: the env's only reset
            key, ``"_reset"`` outside an env).

    Raises:
        TypeError: ``T`` not an int, a bad key.
        ValueError: ``T < 1``; in_keys and out_keys of different lengths or
            with repeats; an in_key whose buffer name would contain ``"."``
            or repeat another's.
        NotImplementedError: called on a tensordict outside an env (as TorchRL).
        KeyError: an in_key missing from a step, or from both the reset data
            and the tensordict given to reset.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = TimeMaxPool(in_keys=["obs"], T=2)
        >>> for x in ([1.0, -2.0], [-1.0, -3.0], [-1.0, -4.0]):
        ...     out = t._call(TensorDict({"obs": torch.tensor(x)}, []))["obs"]
        >>> out
        tensor([-1., -3.])
        >>> TimeMaxPool(T=0)
        Traceback (most recent call last):
        ...
        ValueError: TimeMaxPool requires T >= 1, got 0
    """

    invertible = False

    def __init__(self, in_keys=None, out_keys=None, T: int = 1, reset_key=None):
        owner = "TimeMaxPool"
        T = check_int(T, owner, "T", minimum=1)
        reset_key = _check_reset_key(reset_key)
        super().__init__(in_keys=["observation"] if in_keys is None else in_keys, out_keys=out_keys)
        check_unique(owner, "in_keys", self.in_keys)
        check_unique(owner, "out_keys", self.out_keys)
        names = {}
        for key in self.in_keys:
            name = _buffer_name(key)
            if "." in name:
                raise ValueError(f"TimeMaxPool keeps the history of {key!r} in the buffer {name!r}, and buffer "
                                 "names cannot contain '.': rename the key")
            if name in names.values():
                other = next(k for k, n in names.items() if n == name)
                raise ValueError(f"TimeMaxPool requires in_keys with distinct buffer names, got {other!r} and "
                                 f"{key!r} (both {name!r})")
            names[key] = name
            self.register_buffer(name, None)
        set_plain(self, "_names", names)
        set_plain(self, "buffer_size", T)
        set_plain(self, "_reset_key", reset_key)

    @property
    def T(self) -> int:
        """The number of steps pooled over (TorchRL's ``buffer_size``)."""
        return self.buffer_size

    @property
    def reset_key(self):
        """The partial-reset entry: the one given, else the env's only reset key (``"_reset"`` outside an env)."""
        key = self.__dict__["_reset_key"]
        if key is not None:
            return key
        env = container_env(self)
        if env is None:
            return "_reset"
        keys = list(env.reset_keys)
        if len(keys) != 1:
            raise CompatValueError(f"TimeMaxPool cannot choose among the reset keys {keys} of its env: pass "
                                   "reset_key=... to the constructor")
        return keys[0]

    @reset_key.setter
    def reset_key(self, value) -> None:
        set_plain(self, "_reset_key", _check_reset_key(value))

    @property
    def _np_supported(self) -> bool:
        return True

    # ----------------------------------------------------------------- history
    def _history(self, key, shape, dtype, device, restart) -> torch.Tensor:
        """The history buffer of ``key`` for observations of ``shape``, ``dtype`` and ``device``.

        Made (zeros) when missing; remade when it does not fit and every
        sub-env is being reset (``restart``); ValueError otherwise.
        """
        name = self._names[key]
        buf = self._buffers.get(name)
        want = (self.buffer_size,) + tuple(shape)
        if buf is not None and tuple(buf.shape) == want and buf.dtype == dtype and buf.device == device:
            if not buf.is_contiguous():  # e.g. loaded from a strided tensor: the kernel writes through a view
                buf = self._buffers[name] = buf.contiguous()
            return buf
        if buf is not None and not restart:
            raise ValueError(f"TimeMaxPool keeps the history of {key!r} as {want[1:]} {buf.dtype} observations on "
                             f"{buf.device} (buffer {tuple(buf.shape)}), but got {tuple(shape)} {dtype} on {device} "
                             "in the middle of an episode; keep the observations' shape, dtype and device, or "
                             "reset every sub-env to restart the history")
        buf = self._buffers[name] = torch.zeros(want, dtype=dtype, device=device)
        return buf

    def _host_history(self, key, x: np.ndarray, restart):
        """The history of ``key`` as a NumPy view for host observations ``x``, or None for dtypes the kernel lacks.

        The view of the buffer is kept with the buffer it was taken from and
        served while that buffer is still the one registered (``.to()``, a
        load with another shape or a restart replace it).
        """
        if x.dtype not in _KERNEL_NP_DTYPES:
            return None
        views = self.__dict__.get("_views")
        if views is None:
            views = {}
            set_plain(self, "_views", views)
        hit = views.get(key)
        if hit is not None:
            buf, view = hit
            if self._buffers.get(self._names[key]) is buf and view.shape[1:] == x.shape and view.dtype == x.dtype:
                return view
        buf = self._history(key, x.shape, torch_dtype(x.dtype), _CPU, restart)
        view = buf.numpy()
        views[key] = (buf, view)
        return view

    def _pool(self, key, value, mask, clear) -> torch.Tensor:
        """One pooling step of ``key`` with observations ``value`` (a tensor); the maxima, a new tensor."""
        if not ops_for(value).cuda and value.device == _CPU:
            x = as_array(value)
            view = self._host_history(key, x, clear and mask is None)
            if view is not None:
                out = torch.empty(value.shape, dtype=value.dtype)
                launch(x, "time_pool", "time_pool_reset" if clear else "time_pool_push", view, x, out=out.numpy(),
                       mask=mask)
                return out
        buf = self._history(key, value.shape, value.dtype, value.device, clear and mask is None)
        if mask is not None:
            mask = torch.as_tensor(mask, device=value.device)
        return _pool_torch(buf, value, mask, clear)

    # ---------------------------------------------------------------- arrays
    def _np_apply(self, arrays, mask, reset):
        fn = "time_pool_reset" if reset else "time_pool_push"
        restart = reset and mask is None
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            x = arrays.get(in_key)
            if x is None:
                self._np_missing(in_key, arrays)
                continue
            out = self._np_out(out_key, x.shape, x.dtype)
            view = self._host_history(in_key, x, restart)
            if view is not None:
                launch(x, "time_pool", fn, view, x, out=out, mask=mask)
            else:  # a dtype the kernel lacks (float16): the torch operations, on views of the same memory
                out[...] = self._pool(in_key, torch.from_numpy(x), mask, reset).numpy()
            arrays[out_key] = out
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        return self._np_apply(arrays, None, False)

    def _np_reset(self, arrays: dict, mask) -> dict:
        return self._np_apply(arrays, mask, True)

    # ----------------------------------------------------------- tensordicts
    def _call(self, next_tensordict):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = next_tensordict.get(in_key, None)
            if value is None:
                self._missing(in_key, next_tensordict)
                continue
            next_tensordict.set(out_key, self._pool(in_key, value.detach(), None, False))
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        reset_key = self.reset_key
        batch = tuple(tensordict_reset.batch_size)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(in_key, None)
            if value is None:  # taken from the previous step, as TorchRL does
                value = tensordict.get(in_key, None) if tensordict is not None else None
                if value is None:
                    raise KeyError(f"TimeMaxPool could not find {in_key!r} in the reset data nor in the tensordict "
                                   f"given to reset; reset data keys: "
                                   f"{sorted(map(str, tensordict_reset.keys(True, True)))}")
                tensordict_reset.set(in_key, value)
            mask = ops_for(value).reset_mask(tensordict, reset_key, batch, value)
            tensordict_reset.set(out_key, self._pool(in_key, value.detach(), mask, True))
        return tensordict_reset

    def forward(self, tensordict):
        raise NotImplementedError("TimeMaxPool cannot be called independently, only its step and reset methods "
                                  "are functional: it pools over the steps of an env, which a tensordict of "
                                  "stored data does not give in order; use it inside a TransformedEnv")

    # ------------------------------------------------------------------ specs
    def _spec(self, spec, composite):
        if isinstance(spec, Bounded):
            zero = torch.zeros((), dtype=spec.low.dtype, device=spec.low.device)
            if bool((spec.low > zero).any()) or bool((spec.high < zero).any()):
                low, high = torch.minimum(spec.low, zero), torch.maximum(spec.high, zero)
                return derived_spec(spec, spec.shape, spec.dtype, low, high)
        return spec.clone()

    # ------------------------------------------------------------ state dict
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A history saved after some steps loads into a transform that has not stepped yet (or with another
        # batch): the buffer takes the saved shape and dtype first, then torch copies the values in.
        for name in self._names.values():
            saved = state_dict.get(prefix + name)
            if not isinstance(saved, torch.Tensor):
                continue
            buf = self._buffers.get(name)
            if buf is None or buf.shape != saved.shape or buf.dtype != saved.dtype:
                device = saved.device if buf is None else buf.device
                self._buffers[name] = torch.zeros(saved.shape, dtype=saved.dtype, device=device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_views", None)  # views of this instance's buffers; a copy takes its own
        return state

    def __repr__(self) -> str:
        return f"TimeMaxPool(in_keys={self.in_keys}, out_keys={self.out_keys}, T={self.buffer_size})"
