"""The one place where tensors become arrays for numbarl.core and back.

CPU tensors become NumPy views with :meth:`torch.Tensor.numpy` (made contiguous
first only when they are not); CUDA tensors become Numba device arrays with
``numba.cuda.as_cuda_array``. Outputs are written into preallocated tensors
whose memory the returned arrays share, so nothing is copied at the boundary.

Examples:
    >>> import torch
    >>> t = torch.arange(3.0)
    >>> a = as_array(t)
    >>> a[0] = 7.0
    >>> t
    tensor([7., 1., 2.])
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_array", "as_tensor", "is_cuda", "empty_like_spec_array", "cuda_stream"]


def is_cuda(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` lives on a CUDA device (and so takes the CUDA kernels)."""
    return tensor.device.type == "cuda"


def as_array(tensor: torch.Tensor):
    """A zero-copy array view of ``tensor``'s memory.

    CPU tensors give a ``numpy.ndarray`` and CUDA tensors a Numba device
    array. A non-contiguous tensor is made contiguous first, so the view is of
    that copy: callers that write through the view pass contiguous tensors.
    """
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


def cuda_stream(device=None):
    """The Numba stream wrapping torch's current CUDA stream, so kernels are ordered with torch's work."""
    from numba import cuda

    stream = torch.cuda.current_stream(device)
    return cuda.external_stream(stream.cuda_stream)


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


def numpy_dtype(dtype: torch.dtype):
    """The NumPy dtype matching a torch dtype."""
    try:
        return _NP_OF_TORCH[dtype]
    except KeyError:
        raise TypeError(f"no NumPy dtype for {dtype}; allowed: {sorted(str(d) for d in _NP_OF_TORCH)}") from None


def empty_like_spec_array(shape, dtype: torch.dtype) -> np.ndarray:
    """An uninitialised NumPy array of a spec's shape and (torch) dtype."""
    return np.empty(tuple(shape), dtype=numpy_dtype(dtype))
