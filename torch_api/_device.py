"""The device seam: where a transform's computation meets the data's device.

A transform states its computation once, as calls of ``numbarl.core``
functions on the data it is given; this module decides everything that
depends on the device:

- :func:`launch` is the ONE function through which torch_api calls a kernel
  function of ``numbarl.core`` (CPU) or ``numbarl.core.cuda`` (CUDA): it
  picks the module for the data's device (:func:`~._arrays.kernels_for`),
  turns every tensor argument into an array view (:func:`~._arrays.as_array`)
  and adds the keyword that orders the call on torch's current stream
  (:func:`~._arrays.stream_kwargs`). Per-call host work on CUDA (device-array
  views and stream wrappers, cached per (storage, stream)) belongs here and
  nowhere else, and tests that count kernel launches and array conversions
  per transform call do it by wrapping this function.
- :func:`map_on_device` is the template of a tensor -> new tensor map: it
  allocates the output on the data's device and fills it with the
  transform's one ``compute(x, out)``; CPU tensors are handed over as NumPy
  views, CUDA tensors stay tensors on their device, and tensors on any other
  device go through the CPU path and come back.
- :func:`as_torch` gives a zero-copy tensor of an array or a tensor, for the
  few computations that fall back to torch operations where no kernel takes
  the data (a dtype the kernels lack): written once, they run on both
  devices.

Examples:
    >>> import numpy as np, torch
    >>> out = np.empty((1, 1, 1), dtype=np.float32)
    >>> _ = launch(out, "pixels", "grayscale", np.ones((3, 1, 1), np.float32), out=out)
    >>> out.round(3).tolist()
    [[[1.0]]]
    >>> map_on_device(torch.arange(3.0), lambda x: (x.shape, x.dtype), lambda x, o: np.negative(x, out=o))
    tensor([-0., -1., -2.])
"""
from __future__ import annotations

import importlib

import numpy as np
import torch

from ._arrays import as_array, device_view, is_cuda, kernels_for, numpy_dtype, stream_kwargs, torch_dtype

__all__ = ["launch", "device_array", "clear_view_cache", "kernel_module", "map_on_device", "as_torch", "np_dtype", "torch_dtype"]

_CPU_MODULES = {}

def _cpu_module(name: str):
    module = _CPU_MODULES.get(name)
    if module is None:
        module = _CPU_MODULES[name] = importlib.import_module("numbarl.core." + name)
    return module


def kernel_module(ref, module: str):
    """``numbarl.core.<module>`` for CPU data, its ``numbarl.core.cuda`` twin for CUDA data (:func:`kernels_for`)."""
    return kernels_for(ref, module) if is_cuda(ref) else _cpu_module(module)


def _arg(value):
    return as_array(value) if isinstance(value, torch.Tensor) else value


# Device-array views of CUDA tensors, made once per (pointer, shape, strides, dtype, device): making
# one costs about as much as a kernel launch. The key holds the whole layout, so memory freed and
# reused with another shape or dtype gets a view of its own; a view is served only for a live tensor
# with that pointer and layout, which is why the views need not (and do not) keep their tensors alive.
_VIEWS = {}
_MAX_VIEWS = 256


def device_array(tensor: torch.Tensor):
    """The device-array view of CUDA ``tensor`` that kernels take, from the view cache (made on a miss).

    A non-contiguous tensor is copied to a contiguous one first, as
    :func:`~._arrays.as_array` does, and its view is not cached (the copy
    is new on every call). At most 256 views are kept; the oldest goes first.
    """
    if not tensor.is_contiguous():
        return as_array(tensor)
    key = (tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype, tensor.device)
    view = _VIEWS.get(key)
    if view is None:
        # on a CUDA device an owner-less view; anything else that counts as CUDA (a simulated device)
        # takes as_array's view
        view = device_view(tensor) if tensor.device.type == "cuda" else as_array(tensor)
        if len(_VIEWS) >= _MAX_VIEWS:
            del _VIEWS[next(iter(_VIEWS))]
        _VIEWS[key] = view
    return view


def clear_view_cache() -> None:
    """Forget every cached device-array view (they are remade on the next launch)."""
    _VIEWS.clear()


def launch(ref, module, name: str, *args, check=None, **kwargs):
    """Call ``numbarl.core[.cuda].<module>.<name>`` for ``ref``'s device; tensors become array views.

    CPU data takes the short path: NumPy views of the tensors (cheap) and the
    call. CUDA data takes device-array views from a cache kept per (pointer,
    shape, strides, dtype, device) (:func:`device_array`) and the Numba
    wrapper of torch's current stream, made once per stream
    (:func:`~._arrays.cuda_stream`); nothing is read back to the host here.

    Args:
        ref: the data that decides the device and the stream.
        module: the core module (``"pixels"``, ``"frames"``, ``"moments"``,
            ``"returns"``, or a CPU-only one such as ``"episode"``), or the
            module :func:`kernel_module` chose for ``ref`` (a transform that
            launches several kernels in one call picks it once).
        name: the function.
        *args, **kwargs: its arguments; ``torch.Tensor`` values are replaced
            by their array views, anything else is passed as it is.
        check: ``False`` asks the CUDA functions that take it not to read a
            status back (see :func:`~._arrays.stream_kwargs`).

    Returns:
        what the function returns.
    """
    if not is_cuda(ref):
        fn = getattr(_cpu_module(module) if module.__class__ is str else module, name)
        args = tuple(map(_arg, args))
        for key, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                kwargs[key] = as_array(value)
        return fn(*args, **kwargs)
    fn = getattr(kernels_for(ref, module) if module.__class__ is str else module, name)
    args = tuple(device_array(a) if isinstance(a, torch.Tensor) else a for a in args)
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            kwargs[key] = device_array(value)
    kwargs.update(stream_kwargs(ref, check))
    return fn(*args, **kwargs)


def map_on_device(value: torch.Tensor, out_meta, compute) -> torch.Tensor:
    """A new tensor on ``value``'s device: ``compute(x, out)`` with the output allocated there.

    ``out_meta(x) -> (shape, dtype)`` (NumPy or torch dtype) gives the
    output. CPU tensors reach ``compute`` as NumPy views, CUDA tensors as
    (detached) tensors on their device, and tensors on another device (e.g.
    ``meta``-less accelerators without kernels) go through the CPU path, the
    result being moved back to their device.
    """
    if is_cuda(value):
        x = value.detach()
        shape, dtype = out_meta(x)
        out = torch.empty(shape, dtype=torch_dtype(dtype), device=x.device)
        compute(x, out)
        return out
    device = value.device
    x = as_array(value if device.type == "cpu" else value.cpu())
    shape, dtype = out_meta(x)
    out = torch.empty(shape, dtype=torch_dtype(dtype))
    compute(x, out.numpy())
    return out if device.type == "cpu" else out.to(device)


def as_torch(a) -> torch.Tensor:
    """``a`` as a tensor sharing its memory: NumPy arrays through ``torch.from_numpy``, tensors as they are."""
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    raise TypeError(f"as_torch requires a torch.Tensor or a numpy.ndarray, got {type(a).__name__}")


def np_dtype(a) -> np.dtype:
    """The NumPy dtype of an array or a tensor."""
    return np.dtype(numpy_dtype(a.dtype)) if isinstance(a, torch.Tensor) else a.dtype
