"""Shared machinery of the kernel-backed observation transforms (image, shape, frames).

:class:`KeyedArrayTransform` holds what every per-key transform repeats: it
reads each ``in_key``, lets the subclass compute the output into an array,
and writes it to the ``out_key``, on both paths:

- the array path (``_np_step`` / ``_np_reset``): the output goes into an array
  the transform owns (allocated once per key, reallocated only when the
  shape or dtype changes) and replaces ``arrays[out_key]``;
- the TensorDict path (``_call`` and so ``_step``, ``_reset``, ``forward``):
  the output is a fresh tensor (rollouts keep every step's tensors), written
  in place through its NumPy view.

A subclass implements ``_out_meta(x) -> (shape, numpy dtype)``, one
``_compute(x, out)`` and ``_spec(spec, composite)`` for the observation spec.

``_compute`` states the computation once for both devices, through the device
seam (:mod:`numbarl.torch_api._device`): it receives NumPy arrays for CPU data
and tensors for CUDA data (:func:`~numbarl.torch_api._device.map_on_device`
allocates the output on the data's device), calls its kernel with
:func:`~numbarl.torch_api._device.launch` (which picks the CPU or CUDA
twin), and falls back to torch operations on
:func:`~numbarl.torch_api._device.as_torch` views for dtypes the kernels do
not take; nothing is copied to the host. Tensors on other devices go through
the CPU kernels and the result is moved back to their device.

Examples:
    >>> import numpy as np, torch
    >>> from tensordict import TensorDict
    >>> class Neg(KeyedArrayTransform):
    ...     def _out_meta(self, x):
    ...         return x.shape, x.dtype
    ...     def _compute(self, x, out):
    ...         torch.neg(as_torch(x), out=as_torch(out))
    >>> t = Neg(in_keys=["x"], out_keys=["y"])
    >>> t(TensorDict({"x": torch.ones(2)}, [2]))["y"]
    tensor([-1., -1.])
    >>> t._np_step({"x": np.arange(3.0)})["y"]
    array([-0., -1., -2.])
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .._attrs import set_plain
from .._arrays import as_array, numpy_dtype
from .._device import as_torch, map_on_device, torch_dtype  # noqa: F401  (as_torch: the docstring example)
from ..specs import Bounded, Composite, Unbounded
from ._checks import check_bool, check_int
from ._env_chain import env_batch_ndim
from .base import Transform

__all__ = ["ArrayMeta", "KeyedArrayTransform", "array_meta", "check_bool", "check_int", "copy_view", "derived_spec",
           "device_bits", "env_batch_ndim", "kernel_bits", "mapped_spec", "torch_dtype"]

def copy_view(a: np.ndarray) -> np.ndarray:
    """``a`` as an array the copy kernels take: float16 (which Numba lacks) viewed as int16, bit for bit."""
    return a.view(np.int16) if a.dtype == np.float16 else a


def device_bits(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor the CUDA copy kernels take: float16 viewed as int16, bit for bit (as :func:`copy_view`)."""
    return t.view(torch.int16) if t.dtype is torch.float16 else t


def kernel_bits(a):
    """An array or tensor as the copy kernels take it: float16 viewed as int16 (:func:`copy_view`, :func:`device_bits`)."""
    return copy_view(a) if isinstance(a, np.ndarray) else device_bits(a)


class ArrayMeta(NamedTuple):
    """The shape and NumPy dtype of a tensor: what ``_out_meta`` reads, without touching the tensor's memory."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def array_meta(tensor: torch.Tensor) -> ArrayMeta:
    """:class:`ArrayMeta` of ``tensor``; TypeError for dtypes without a NumPy twin (e.g. bfloat16)."""
    return ArrayMeta(tuple(tensor.shape), np.dtype(numpy_dtype(tensor.dtype)))


def derived_spec(spec, shape, dtype: torch.dtype, low=None, high=None, keep_unbounded_class: bool = False):
    """A spec like ``spec`` with a new shape, dtype and bounds, classed as TorchRL 0.14.1 does.

    A ``Bounded`` spec keeps its class and domain (a ``BoundedDiscrete``
    stays one with a float dtype) and takes ``low`` / ``high``. An
    ``Unbounded`` spec becomes ``Unbounded(shape, dtype)`` (continuous for
    float dtypes), or keeps its class and domain with
    ``keep_unbounded_class`` (what TorchRL's ``ToTensorImage`` does). Other
    spec classes raise TypeError.
    """
    if isinstance(spec, Bounded):
        return type(spec)(low=low, high=high, shape=torch.Size(shape), device=spec.device, dtype=dtype)
    if isinstance(spec, Unbounded):
        if keep_unbounded_class:
            return type(spec)(shape=torch.Size(shape), device=spec.device, dtype=dtype, domain=spec.domain)
        return Unbounded(shape=torch.Size(shape), device=spec.device, dtype=dtype)
    raise TypeError(f"pixel transforms take Bounded or Unbounded specs, got {type(spec).__name__}")


def mapped_spec(spec, shape, fn, owner: str):
    """``spec`` with a new shape and its bound / mask tensors mapped by ``fn`` (dims counted from the front).

    Used by the shape transforms; ``fn`` receives tensors whose leading dims
    are the spec's shape (a ``Categorical`` mask has one more trailing dim).
    """
    if spec._feature_ndim != 0:
        raise TypeError(f"{owner} transforms specs without feature dims (Bounded, Unbounded, Categorical, "
                        f"Binary), got {type(spec).__name__}")
    if isinstance(spec, Unbounded):  # rebuilt, so classed by its dtype, as TorchRL does
        return Unbounded(shape=torch.Size(shape), device=spec.device, dtype=spec.dtype)
    return spec._derive(torch.Size(shape), fn)


class KeyedArrayTransform(Transform):
    """Base of transforms that map each ``in_key`` to its ``out_key`` with a kernel call.

    Subclasses implement ``_out_meta``, ``_compute`` (NumPy arrays for CPU
    data, tensors for CUDA data) and ``_spec``; see the module docstring
    (which has an example).

    Args:
        in_keys, out_keys, in_keys_inv, out_keys_inv: as :class:`Transform`.

    Raises:
        TypeError, ValueError: bad keys, as :class:`Transform`; KeyError at run
            time for a missing ``in_key`` (unless missing keys are tolerated).
    """

    _np_supported = True

    # ---------------------------------------------------------- subclassing
    def _out_meta(self, x: np.ndarray):
        raise NotImplementedError

    def _compute(self, x: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _spec(self, spec, composite):
        return spec

    # ---------------------------------------------------------------- arrays
    def _np_out(self, key, shape, dtype) -> np.ndarray:
        bufs = self.__dict__.get("_np_bufs")
        if bufs is None:
            bufs = {}
            set_plain(self, "_np_bufs", bufs)
        out = bufs.get(key)
        if out is None or out.shape != tuple(shape) or out.dtype != dtype:
            out = bufs[key] = np.empty(shape, dtype=dtype)
        return out

    def _np_missing(self, key, arrays) -> None:
        if not self._missing_tolerance:
            raise KeyError(f"{type(self).__name__}: key {key!r} not found; keys present: "
                           f"{sorted(map(str, arrays))}")

    def _np_step(self, arrays: dict) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            x = arrays.get(in_key)
            if x is None:
                self._np_missing(in_key, arrays)
                continue
            shape, dtype = self._out_meta(x)
            out = self._np_out(out_key, shape, dtype)
            self._compute(x, out)
            arrays[out_key] = out
        return arrays

    def _np_reset(self, arrays: dict, mask) -> dict:
        # as on the TensorDict path, keys a reset does not carry are skipped
        tolerant = self._missing_tolerance
        set_plain(self, "_missing_tolerance", True)
        try:
            return self._np_step(arrays)
        finally:
            set_plain(self, "_missing_tolerance", tolerant)

    # ----------------------------------------------------------- tensordicts
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return map_on_device(value, self._meta, self._compute)

    def _meta(self, x):
        """``_out_meta`` of an array or a tensor (read as :class:`ArrayMeta`, without touching its memory)."""
        return self._out_meta(x if isinstance(x, np.ndarray) else array_meta(x))

    # ------------------------------------------------------------------ specs
    def transform_observation_spec(self, observation_spec):
        if not isinstance(observation_spec, Composite):  # a leaf spec is mapped as the spec of an in_key
            return self._spec(observation_spec, Composite())
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            spec = observation_spec.get(in_key)
            if spec is None:
                continue
            observation_spec[out_key] = self._spec(spec, observation_spec)
        return observation_spec

    def _bounds(self, spec):
        """``(low, high)`` of a Bounded spec mapped by ``_compute``, as tensors."""
        out = []
        for bound in (spec.low, spec.high):
            x = as_array(bound.cpu())
            shape, dtype = self._out_meta(x)
            y = np.empty(shape, dtype=dtype)
            self._compute(x, y)
            out.append(torch.from_numpy(y).to(spec.device))
        return out

    def _pixel_spec(self, spec, keep_unbounded_class: bool = False):
        """The spec of ``_compute``'s output for a Bounded / Unbounded input spec."""
        if isinstance(spec, Composite):
            raise TypeError(f"{type(self).__name__} transforms leaf specs, got a Composite")
        probe = np.zeros(tuple(spec.shape), dtype=numpy_dtype(spec.dtype))
        shape, dtype = self._out_meta(probe)
        if isinstance(spec, Bounded):
            low, high = self._bounds(spec)
            return derived_spec(spec, shape, torch_dtype(dtype), low, high)
        return derived_spec(spec, shape, torch_dtype(dtype), keep_unbounded_class=keep_unbounded_class)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_keys={self.in_keys}, out_keys={self.out_keys})"
