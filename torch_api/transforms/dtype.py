"""Element-wise transforms: dtype and device casts, clipping and sign.

``DTypeCastTransform``, ``DoubleToFloat``, ``DeviceCastTransform``,
``ClipTransform`` and ``SignTransform`` with TorchRL 0.14.1's arguments, keys
and specs. All of them have the array path of the preallocated rollout:
casts, clips and signs are written by NumPy into buffers the transform owns.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"obs": torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)}, [])
    >>> td = ClipTransform(in_keys=["obs"], low=-1.0, high=1.0)(td)
    >>> DoubleToFloat(in_keys=["obs"])(td)["obs"]
    tensor([-1.0000,  0.5000,  1.0000])
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from .._attrs import set_plain
from .._arrays import numpy_dtype, torch_dtype
from ..specs import Bounded, Unbounded
from .base import Transform
from ._env_chain import container_env
from .keys import INPUT_PARTS, OUTPUT_PARTS, _NoBuffersOnCopy, part_of, spec_key_error

__all__ = ["DTypeCastTransform", "DoubleToFloat", "DeviceCastTransform", "ClipTransform", "SignTransform"]


class _KeyWise(_NoBuffersOnCopy, Transform):
    """A transform applied key by key; subclasses map one tensor, one array and one spec."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        set_plain(self, "_np_bufs", {})

    _np_supported = True

    def _spec_inv(self, spec):
        """The spec of an input entry as the policy sees it (default: the base env's)."""
        return spec

    def _spec(self, spec):
        """The spec of a transformed output entry."""
        return spec

    def _reset(self, tensordict, tensordict_reset):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(in_key, None)  # e.g. no reward at reset
            if value is not None:
                tensordict_reset.set(out_key, self._apply_transform(value))
        return tensordict_reset

    def _np_apply(self, array, out, inverse: bool):
        raise NotImplementedError

    def _buffer(self, tag, array, dtype):
        buf = self._np_bufs.get(tag)
        if buf is None or buf.shape != array.shape or buf.dtype != dtype:
            buf = self._np_bufs[tag] = np.empty(array.shape, dtype=dtype)
        return buf

    def _out_dtype(self, array, inverse: bool):
        return array.dtype

    def _np_pairs(self, arrays, pairs, inverse):
        for in_key, out_key in pairs:
            a = arrays.get(in_key)
            if a is None:
                continue
            buf = self._buffer((inverse, out_key), a, self._out_dtype(a, inverse))
            self._np_apply(a, buf, inverse)
            arrays[out_key] = buf
        return arrays

    def _np_step(self, arrays):
        return self._np_pairs(arrays, zip(self.in_keys, self.out_keys), False)

    def _np_inv(self, arrays):
        return self._np_pairs(arrays, zip(self.out_keys_inv, self.in_keys_inv), True)

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            part = part_of(output_spec, in_key, OUTPUT_PARTS)
            if part is None:
                if self.missing_tolerance:
                    continue
                raise spec_key_error(type(self).__name__, in_key, output_spec, OUTPUT_PARTS)
            family = output_spec[part]
            family[out_key] = self._spec(family[in_key].clone())
        return output_spec

    def _map_family(self, family):
        """``family`` (one Composite, e.g. the observation spec) with each in_key it holds mapped to its out_key."""
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            spec = family.get(in_key, None)
            if spec is not None:
                family[out_key] = self._spec(spec.clone())
        return family

    def transform_observation_spec(self, observation_spec):
        """The observation spec alone (TorchRL's per-part hook): the in_keys it holds are mapped, others kept."""
        return self._map_family(observation_spec)

    def transform_reward_spec(self, reward_spec):
        return self._map_family(reward_spec)

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            part = part_of(input_spec, in_key, INPUT_PARTS)
            if part is None:
                if self.missing_tolerance:
                    continue
                raise spec_key_error(type(self).__name__, in_key, input_spec, INPUT_PARTS)
            family = input_spec[part]
            family[out_key] = self._spec_inv(family[in_key].clone())
        return input_spec


# ------------------------------------------------------------------ dtype casts
def _as_dtype(value, owner, name):
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{owner} requires {name} to be a torch.dtype, got {value!r}")
    return value


class DTypeCastTransform(_KeyWise):
    """Cast entries from ``dtype_in`` to ``dtype_out`` (and inputs back from ``dtype_out`` to ``dtype_in``).

    With keys, only those entries are cast. Without ``in_keys`` the transform
    finds its keys in the env: every observation and reward entry of dtype
    ``dtype_in`` (forward) and, when ``in_keys_inv`` is not given either,
    every action and state entry of dtype ``dtype_in`` (inverse). Outside an
    env, a transform without keys casts every ``dtype_in`` tensor it finds.
    As in TorchRL, an inverse entry renamed by ``out_keys_inv`` is added to the
    action spec next to the base env's one.

    Args:
        dtype_in: the dtype inside the env.
        dtype_out: the dtype outside it.
        in_keys, out_keys, in_keys_inv, out_keys_inv: as for ``Transform``.

    Raises:
        TypeError: ``dtype_in`` / ``dtype_out`` is not a torch.dtype, or a key is not a str or tuple of str.
        ValueError: ``out_keys`` without ``in_keys`` (or ``out_keys_inv`` without
            ``in_keys_inv``), or key lists of different lengths.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = DTypeCastTransform(torch.float64, torch.float32, in_keys=["obs"])
        >>> t(TensorDict({"obs": torch.ones(1, dtype=torch.float64)}, []))["obs"].dtype
        torch.float32
    """

    def __init__(self, dtype_in, dtype_out, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None):
        owner = type(self).__name__
        _as_dtype(dtype_in, owner, "dtype_in")
        _as_dtype(dtype_out, owner, "dtype_out")
        if in_keys is None and out_keys is not None:
            raise ValueError(f"{owner} requires in_keys when out_keys is given, got out_keys={out_keys!r}")
        if in_keys_inv is None and out_keys_inv is not None:
            raise ValueError(f"{owner} requires in_keys_inv when out_keys_inv is given, got "
                             f"out_keys_inv={out_keys_inv!r}")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        set_plain(self, "dtype_in", dtype_in)
        set_plain(self, "dtype_out", dtype_out)
        set_plain(self, "_auto", in_keys is None)
        set_plain(self, "_auto_inv", in_keys is None and in_keys_inv is None)
        set_plain(self, "_resolved", False)
        set_plain(self, "_resolved_inv", False)

    def _resolve(self):
        if (self._auto and not self._resolved) or (self._auto_inv and not self._resolved_inv):
            env = container_env(self)
            if env is not None:
                env.output_spec, env.input_spec  # noqa: B018 - computing the specs records the keys

    @property
    def _np_supported(self) -> bool:
        self._resolve()
        return (not self._auto or self._resolved) and (not self._auto_inv or self._resolved_inv)

    def _apply_transform(self, obs):
        return obs.to(self.dtype_out)

    def _inv_apply_transform(self, state):
        return state.to(self.dtype_in)

    def _scan(self, tensordict, dtype_from, dtype_to):
        for key in list(tensordict.keys(True, True)):
            value = tensordict.get(key)
            if isinstance(value, torch.Tensor) and value.dtype == dtype_from:
                tensordict.set(key, value.to(dtype_to))
        return tensordict

    def _call(self, next_tensordict):
        self._resolve()
        if self._auto and not self._resolved:
            return self._scan(next_tensordict, self.dtype_in, self.dtype_out)
        return super()._call(next_tensordict)

    def _reset(self, tensordict, tensordict_reset):
        self._resolve()
        if self._auto and not self._resolved:
            return self._scan(tensordict_reset, self.dtype_in, self.dtype_out)
        return super()._reset(tensordict, tensordict_reset)

    def _inv_call(self, tensordict):
        self._resolve()
        if self._auto_inv and not self._resolved_inv:
            return self._scan(tensordict, self.dtype_out, self.dtype_in)
        return super()._inv_call(tensordict)

    def _out_dtype(self, array, inverse):
        return numpy_dtype(self.dtype_in if inverse else self.dtype_out)

    def _np_apply(self, array, out, inverse):
        np.copyto(out, array, casting="unsafe")

    def _spec(self, spec):
        # the spec keeps its class and domain (as TorchRL's ``to(dtype)`` does): only the dtype changes
        dtype = self.dtype_out
        if isinstance(spec, Unbounded):
            return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype, domain=spec.domain)
        if isinstance(spec, Bounded):
            return Bounded(spec.low, spec.high, spec.shape, spec.device, dtype, domain=spec.domain)
        return spec.to(dtype).clone()

    _spec_inv = _spec

    def transform_output_spec(self, output_spec):
        if self._auto and not self._resolved:
            keys = [k for part in ("full_observation_spec", "full_reward_spec") if part in output_spec.keys()
                    for k, s in output_spec[part].items(True, True) if s.dtype == self.dtype_in]
            set_plain(self, "in_keys", keys)
            set_plain(self, "out_keys", list(keys))
            set_plain(self, "_resolved", True)
        return super().transform_output_spec(output_spec)

    def transform_input_spec(self, input_spec):
        if self._auto_inv and not self._resolved_inv:
            keys = [k for part in INPUT_PARTS if part in input_spec.keys()
                    for k, s in input_spec[part].items(True, True) if s.dtype == self.dtype_in]
            set_plain(self, "in_keys_inv", keys)
            set_plain(self, "out_keys_inv", list(keys))
            set_plain(self, "_resolved_inv", True)
        return super().transform_input_spec(input_spec)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_keys={self.in_keys}, out_keys={self.out_keys}, "
                f"in_keys_inv={self.in_keys_inv}, out_keys_inv={self.out_keys_inv})")


class DoubleToFloat(DTypeCastTransform):
    """``DTypeCastTransform(torch.float64, torch.float32, ...)``: float64 entries become float32.

    Args:
        in_keys, out_keys, in_keys_inv, out_keys_inv: as for ``DTypeCastTransform``
            (without keys, every float64 entry of the env is cast).

    Raises:
        TypeError: a key is not a str or tuple of str.
        ValueError: ``out_keys`` without ``in_keys``, or key lists of different lengths.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> td = DoubleToFloat()(TensorDict({"a": torch.ones(1, dtype=torch.float64)}, []))
        >>> td["a"].dtype
        torch.float32
    """

    def __init__(self, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None):
        super().__init__(torch.float64, torch.float32, in_keys, out_keys, in_keys_inv, out_keys_inv)


# ------------------------------------------------------------------ device cast
def _as_device(value, owner, name):
    try:
        return torch.device(value)
    except TypeError:
        raise TypeError(f"{owner} requires {name} to be a torch.device or a device string, got {value!r}") from None
    except RuntimeError as err:
        raise ValueError(f"{owner} requires {name} to name a device, got {value!r}: {err}") from None


class DeviceCastTransform(_KeyWise):
    """Move entries to ``device`` on the way out and back to ``orig_device`` on the way in.

    Without keys the whole tensordict is moved (and, in an env, every spec).
    ``orig_device`` defaults to the env's device. On CPU-only data the
    transform keeps the array path (it only renames, if asked to).

    Args:
        device: the device outside the env.
        orig_device: the device inside the env (default: the env's).
        in_keys, out_keys, in_keys_inv, out_keys_inv: keyword-only, as for ``Transform``.

    Raises:
        TypeError: ``device`` / ``orig_device`` is not a device, or a key is not a str or tuple of str.
        ValueError: a device string names no device, or key lists of different lengths.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> DeviceCastTransform("cpu")(TensorDict({"obs": torch.ones(1)}, [])).device
        device(type='cpu')
    """

    def __init__(self, device, orig_device=None, *, in_keys=None, out_keys=None, in_keys_inv=None,
                 out_keys_inv=None):
        device = _as_device(device, "DeviceCastTransform", "device")
        orig_device = None if orig_device is None else _as_device(orig_device, "DeviceCastTransform", "orig_device")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        set_plain(self, "device", device)
        set_plain(self, "_orig_device", orig_device)
        set_plain(self, "_whole", in_keys is None and in_keys_inv is None)

    @property
    def orig_device(self):
        """The device inside the env: the one given, else the env's once the transform is in one (else None)."""
        return self._inner_device()

    def _inner_device(self):
        if self._orig_device is not None:
            return self._orig_device
        env = container_env(self)
        return None if env is None else env.base_env.device

    @property
    def _np_supported(self) -> bool:
        inner = self._inner_device()
        return self.device.type == "cpu" and (inner is None or inner.type == "cpu")

    def _apply_transform(self, obs):
        return obs.to(self.device)

    def _inv_apply_transform(self, state):
        inner = self._inner_device()
        return state if inner is None else state.to(inner)

    def _call(self, next_tensordict):
        if self._whole:
            return next_tensordict.to(self.device)
        out = super()._call(next_tensordict)
        if out.device is not None and out.device != self.device:
            out.clear_device_()  # its entries now live on two devices (TorchRL's rule too)
        return out

    def _reset(self, tensordict, tensordict_reset):
        return self._call(tensordict_reset)

    def _inv_call(self, tensordict):
        inner = self._inner_device()
        if self._whole:
            return tensordict if inner is None else tensordict.to(inner)
        if inner is None:
            return tensordict
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is not None:  # what the policy wrote, moved in for the base env
                tensordict.set(in_key, value.to(inner))
                continue
            value = tensordict.get(in_key, None)
            if value is None:
                self._missing(out_key, tensordict)
                continue
            # TorchRL's layout when only the inner key is there: it is moved and filed under out_key too
            tensordict.set(out_key, value.to(inner))
        if tensordict.device is not None and tensordict.device != inner:
            tensordict.clear_device_()
        return tensordict

    def _np_pairs(self, arrays, pairs, inverse):
        for in_key, out_key in pairs:
            if in_key in arrays and in_key != out_key:
                arrays[out_key] = arrays[in_key]
        return arrays

    def _spec(self, spec):
        return spec.to(self.device)

    def _spec_inv(self, spec):
        return spec.to(self.device)

    def transform_output_spec(self, output_spec):
        if self._whole:
            return output_spec.to(self.device)
        if output_spec.device is not None and output_spec.device != self.device:
            output_spec = output_spec.clone().clear_device_()  # some entries move: the specs' device is mixed
        return super().transform_output_spec(output_spec)

    def transform_input_spec(self, input_spec):
        if self._whole:
            return input_spec.to(self.device)
        if input_spec.device is not None and input_spec.device != self.device:
            input_spec = input_spec.clone().clear_device_()
        return super().transform_input_spec(input_spec)

    def transform_env_device(self, device):
        """The env's device as seen through this transform: ``device`` for a whole cast; None (mixed) for a
        partial cast to another device, as in TorchRL."""
        if self._whole:
            return self.device
        return device if device == self.device else None

    def __repr__(self) -> str:
        return f"DeviceCastTransform(device={self.device}, orig_device={self.orig_device})"


# ------------------------------------------------------------------ clip / sign
def _bound(value, name):
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"ClipTransform requires {name} to be a scalar, got a tensor of shape "
                            f"{tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"ClipTransform requires {name} to be a real number, got {value!r}")
    if value != value:
        raise ValueError(f"ClipTransform requires {name} not to be NaN")
    return torch.tensor(float(value))


class ClipTransform(_KeyWise):
    """Clip entries to ``[low, high]`` (either bound may be left out).

    The bounds are kept as float32 buffers ``low`` / ``high``; a clipped
    observation or reward gets a ``Bounded`` spec with those bounds widened by
    float32's resolution (1e-6; a missing bound is the float32 range), as in
    TorchRL. Inputs (``in_keys_inv``) are
    clipped before the base env sees them; their spec is unchanged. Unlike
    TorchRL, integer entries stay integers (clipped to the integers inside
    the bounds, which are also their spec's bounds) instead of turning into
    floats with a spec whose widened bounds are truncated (9 for ``low=10``).

    Args:
        in_keys, out_keys, in_keys_inv, out_keys_inv: as for ``Transform``.
        low: the lower bound (keyword-only).
        high: the upper bound (keyword-only).

    Raises:
        TypeError: neither bound is given, a bound is not a real scalar, or a key is not a str or tuple of str.
        ValueError: a bound is NaN, ``low >= high``, or key lists of different lengths.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = ClipTransform(in_keys=["r"], low=-1, high=0.5)
        >>> t(TensorDict({"r": torch.tensor([-3.0, 0.2, 9.0])}, []))["r"]
        tensor([-1.0000,  0.2000,  0.5000])
    """

    def __init__(self, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None, *, low=None, high=None):
        if low is None and high is None:
            raise TypeError("ClipTransform: Either one or both of `high` and `low` must be provided (it requires low or "
                            "high, got neither)")
        lo, hi = _bound(low, "low"), _bound(high, "high")
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"ClipTransform requires low < high, got low={lo.item()} and high={hi.item()}")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.register_buffer("low", lo)
        self.register_buffer("high", hi)

    def _limits(self, dtype):
        lo = None if self.low is None else self.low.item()
        hi = None if self.high is None else self.high.item()
        if not dtype.is_floating_point:
            info = torch.iinfo(dtype) if dtype != torch.bool else None
            if info is not None:
                lo = None if lo is None else int(min(max(np.ceil(lo), info.min), info.max))
                hi = None if hi is None else int(max(min(np.floor(hi), info.max), info.min))
        return lo, hi

    def _apply_transform(self, obs):
        lo, hi = self._limits(obs.dtype)
        return obs.clamp(lo, hi)

    _inv_apply_transform = _apply_transform

    def _np_apply(self, array, out, inverse):
        lo, hi = self._limits(_torch_dtype(array))
        np.clip(array, lo, hi, out=out)

    def _spec(self, spec):
        dtype = spec.dtype
        if dtype.is_floating_point:
            # as in TorchRL: the bounds widened by float32's resolution, a missing one is float32's range
            info = torch.finfo(torch.float32)
            lo = (self.low - info.resolution).item() if self.low is not None else info.min
            hi = (self.high + info.resolution).item() if self.high is not None else info.max
        else:
            lo, hi = self._limits(dtype)
            info = torch.iinfo(dtype)
            lo = info.min if lo is None else lo
            hi = info.max if hi is None else hi
        return Bounded(low=lo, high=hi, shape=spec.shape, dtype=dtype, device=spec.device)

    def __repr__(self) -> str:
        return f"ClipTransform(keys={self.in_keys}, low={self.low}, high={self.high})"


def _torch_dtype(array):
    return torch_dtype(array.dtype)


class SignTransform(_KeyWise):
    """Replace entries by their sign (-1, 0 or 1, same dtype; NaN gives 0, as ``torch.sign`` does).

    A transformed observation or reward gets a ``Bounded(-1, 1)`` spec
    (``Bounded(0, 1)`` for unsigned dtypes, where TorchRL fails); inputs are
    signed before the base env sees them and keep their spec.

    Args:
        in_keys, out_keys, in_keys_inv, out_keys_inv: as for ``Transform``.

    Raises:
        TypeError: a key is not a str or tuple of str.
        ValueError: key lists of different lengths.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> SignTransform(in_keys=["r"])(TensorDict({"r": torch.tensor([-3.0, 0.0, 2.0])}, []))["r"]
        tensor([-1.,  0.,  1.])
    """

    def __init__(self, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None):
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)

    def _apply_transform(self, obs):
        return torch.sign(obs)

    _inv_apply_transform = _apply_transform

    def _np_apply(self, array, out, inverse):
        np.sign(array, out=out)
        if out.dtype.kind == "f":
            np.nan_to_num(out, copy=False, nan=0.0)

    def _spec(self, spec):
        dtype = spec.dtype
        unsigned = dtype == torch.bool or (not dtype.is_floating_point and torch.iinfo(dtype).min == 0)
        return Bounded(low=0 if unsigned else -1, high=1, shape=spec.shape, dtype=dtype, device=spec.device)

    def __repr__(self) -> str:
        return f"SignTransform(keys={self.in_keys})"
