"""The one place where tensors become arrays for numbarl.core and back.

CPU tensors become NumPy views with :meth:`torch.Tensor.numpy` (made contiguous
first only when they are not); CUDA tensors become Numba device arrays with
``numba.cuda.as_cuda_array``. Outputs are written into preallocated tensors
whose memory the returned arrays share, so nothing is copied at the boundary.

This module also picks the kernels: :func:`kernels_for` gives the CPU module
of ``numbarl.core`` for CPU tensors and its twin in ``numbarl.core.cuda`` for
CUDA tensors (and device arrays), and :func:`stream_kwargs` the keyword that
orders the CUDA kernels on torch's current stream (plus ``check=False`` on
request, for the CUDA functions that would otherwise read a status back). A
transform writes one call for both devices::

    fn = kernels_for(x, "pixels").grayscale
    fn(as_array(x), out=as_array(out), **stream_kwargs(x))

``numba.cuda`` is imported only when a CUDA input shows up.

Examples:
    >>> import torch
    >>> t = torch.arange(3.0)
    >>> a = as_array(t)
    >>> a[0] = 7.0
    >>> t
    tensor([7., 1., 2.])
"""
from __future__ import annotations

import importlib

import numpy as np
import torch

__all__ = [
    "as_array",
    "as_tensor",
    "is_cuda",
    "cuda_stream",
    "device_view",
    "kernels_for",
    "stream_kwargs",
    "numpy_dtype",
    "torch_dtype",
]

# The core modules that have a CUDA twin in numbarl.core.cuda.
KERNEL_MODULES = ("frames", "moments", "pixels", "returns")
_MODULES = {}


def is_cuda(tensor) -> bool:
    """Whether ``tensor`` takes the CUDA kernels.

    True for a tensor on a CUDA device, a numba device array, or any other
    object exposing ``__cuda_array_interface__``; False for CPU tensors and
    NumPy arrays.
    """
    if isinstance(tensor, torch.Tensor):
        return tensor.device.type == "cuda"
    return bool(getattr(tensor, "__cuda_ndarray__", False)) or hasattr(tensor, "__cuda_array_interface__")


def _module_key(cpu_module_name):
    name = getattr(cpu_module_name, "__name__", cpu_module_name)
    if not isinstance(name, str):
        raise TypeError(f"kernels_for requires cpu_module_name as a str or a module, got {type(name).__name__}")
    short = name.rsplit(".", 1)[-1]
    if short not in KERNEL_MODULES or name not in (short, f"numbarl.core.{short}"):
        raise ValueError(
            f"kernels_for requires cpu_module_name in {KERNEL_MODULES} (or 'numbarl.core.<name>'), got {name!r}"
        )
    return short


def kernels_for(tensor, cpu_module_name):
    """The kernel module for ``tensor``'s device: ``numbarl.core.<name>`` or ``numbarl.core.cuda.<name>``.

    Both modules have the same functions with the same arguments; the CUDA
    ones also take ``stream`` (see :func:`stream_kwargs`).

    Args:
        tensor: the input that decides the device (see :func:`is_cuda`).
        cpu_module_name: ``"moments"``, ``"pixels"``, ``"frames"`` or
            ``"returns"``, the full name ``"numbarl.core.pixels"``, or the
            CPU module itself.

    Raises:
        TypeError: ``cpu_module_name`` is neither a str nor a module.
        ValueError: no such kernel module.

    Examples:
        >>> import torch
        >>> kernels_for(torch.zeros(3), "pixels").__name__
        'numbarl.core.pixels'
    """
    on_cuda = is_cuda(tensor)
    module = _MODULES.get((cpu_module_name, on_cuda)) if cpu_module_name.__class__ is str else None
    if module is None:
        key = (_module_key(cpu_module_name), on_cuda)
        module = _MODULES.get(key)
    if module is None:
        name = key[0]
        module = importlib.import_module(("numbarl.core.cuda." if on_cuda else "numbarl.core.") + name)
        _MODULES[key] = module
        if cpu_module_name.__class__ is str:
            _MODULES[(cpu_module_name, on_cuda)] = module  # the spelling used, for the next lookup
    return module


def stream_kwargs(tensor, check=None) -> dict:
    """Keyword arguments that put a kernel call on the right stream for ``tensor``.

    ``{"stream": <torch's current stream of tensor's device>}`` for a CUDA
    tensor, so the kernels are ordered with torch's work; ``{}`` for CPU
    tensors, NumPy arrays and numba device arrays (their default stream).

    Args:
        tensor: the input that decides the device.
        check: for the CUDA functions that take it (``moments_update*``,
            ``frames_*``): ``False`` adds ``check=False``, so that they read
            nothing back to the host and never wait for the GPU. CPU calls
            always check (it costs nothing there), so nothing is added for
            them.

    Examples:
        >>> import torch
        >>> stream_kwargs(torch.zeros(3)), stream_kwargs(torch.zeros(3), check=False)
        ({}, {})
    """
    if not is_cuda(tensor):
        return {}
    kwargs = {}
    if isinstance(tensor, torch.Tensor):
        kwargs["stream"] = cuda_stream(tensor.device)
    if check is not None:
        kwargs["check"] = bool(check)
    return kwargs


def as_array(tensor):
    """A zero-copy array view of ``tensor``'s memory.

    CPU tensors give a ``numpy.ndarray`` and CUDA tensors a Numba device
    array. A non-contiguous tensor is made contiguous first, so the view is of
    that copy: callers that write through the view pass contiguous tensors.
    NumPy arrays and device arrays are returned as they are.
    """
    if not isinstance(tensor, torch.Tensor):
        if isinstance(tensor, np.ndarray) or is_cuda(tensor):
            return tensor
        raise TypeError(
            f"as_array requires a torch.Tensor, a numpy.ndarray or a CUDA device array, got {type(tensor).__name__}"
        )
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    if tensor.device.type == "cuda":
        from numba import cuda

        return cuda.as_cuda_array(tensor.detach())
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.dtype is torch.bfloat16:
        raise TypeError("numbarl kernels take float16/32/64 and integer tensors, got torch.bfloat16")
    return tensor.numpy()


def as_tensor(array) -> torch.Tensor:
    """A tensor sharing the memory of a NumPy array or a CUDA device array."""
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    return torch.as_tensor(array, device="cuda")


# Numba wrappers of torch streams, one per stream handle (made once: ``cuda.external_stream`` costs
# about as much as a kernel launch). A handle names one stream while it lives, and a wrapper only holds
# the handle, so a handle reused by a later stream is served by the same, still correct, wrapper.
_STREAMS = {}
_MAX_STREAMS = 64
_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # the handle without a Stream object


def _current_stream_handle(device) -> int:
    if _RAW_STREAM is not None:
        if isinstance(device, torch.device):
            device = device.index
        return _RAW_STREAM(torch.cuda.current_device() if device is None else device)
    return torch.cuda.current_stream(device).cuda_stream


def cuda_stream(device=None):
    """The Numba stream wrapping torch's current CUDA stream, so kernels are ordered with torch's work.

    0 (numba's default stream) when torch's current stream is the legacy
    default stream, which has no handle to wrap. The wrapper is made once
    per stream handle and kept (at most 64; the oldest is dropped first),
    so inside ``torch.cuda.stream(s)`` or a CUDA-graph capture the kernels
    go to that stream without a new wrapper per call.
    """
    handle = _current_stream_handle(device)
    if not handle:
        return 0
    stream = _STREAMS.get(handle)
    if stream is None:
        from numba import cuda

        if len(_STREAMS) >= _MAX_STREAMS:
            del _STREAMS[next(iter(_STREAMS))]
        stream = _STREAMS[handle] = cuda.external_stream(handle)
    return stream


def device_view(tensor):
    """A Numba device array over a contiguous CUDA tensor's memory that does NOT keep the tensor alive.

    The view is made from the tensor's pointer, shape, strides and dtype
    (no ``__cuda_array_interface__`` round trip, no stream synchronisation).
    It is for the view cache of :func:`numbarl.torch_api._device.launch`,
    which serves it only for a live tensor with that same pointer and
    layout, so it never outlives memory it is used on; anything that keeps
    an array past the tensor it came from uses :func:`as_array`.
    """
    from numba import cuda

    itemsize = tensor.element_size()
    desc = {"shape": tuple(tensor.shape), "strides": tuple(s * itemsize for s in tensor.stride()),
            "typestr": np.dtype(numpy_dtype(tensor.dtype)).str, "data": (tensor.data_ptr(), False), "version": 3}
    return cuda.from_cuda_array_interface(desc, owner=None, sync=False)


_NP_OF_TORCH = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.uint8: np.uint8,
    torch.int8: np.int8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
    torch.bool: np.bool_,
}


_TORCH_OF_NP = {np.dtype(v): k for k, v in _NP_OF_TORCH.items()}


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a NumPy dtype (a torch dtype is returned as it is); TypeError for others."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _TORCH_OF_NP[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"no torch dtype for {dtype!r}; allowed: {sorted(map(str, _TORCH_OF_NP))}") from None


def numpy_dtype(dtype: torch.dtype):
    """The NumPy dtype matching a torch dtype."""
    try:
        return _NP_OF_TORCH[dtype]
    except KeyError:
        raise TypeError(f"no NumPy dtype for {dtype}; allowed: {sorted(str(d) for d in _NP_OF_TORCH)}") from None
