"""Argument handling and float32 arithmetic shared by the CUDA twins.

Inputs are numba device arrays or objects with ``__cuda_array_interface__``
(a CUDA tensor, a CuPy array); they are viewed, never copied. Outputs are
device arrays given by the caller, or allocated on the device. Host arrays
are refused: a kernel launched with a NumPy argument would copy it to the
device and back, which is the transfer these functions exist to avoid.

``mul32`` and ``add32`` are float32 products and sums rounded one at a time
(no fused multiply-add), so that kernels reproduce the CPU kernels' float32
results bit for bit. On the GPU they call libdevice's ``__fmul_rn`` and
``__fadd_rn``, which the compiler never contracts; under the simulator they
are plain NumPy float32 operations.
"""
import numpy as np
from numba import config, cuda

__all__ = [
    "SIMULATOR",
    "THREADS_PER_BLOCK",
    "add32",
    "blocks_for",
    "check_contiguous",
    "device_array",
    "device_id",
    "is_device_array",
    "mul32",
    "prepare_out",
    "overlaps",
    "scratch",
]

SIMULATOR = bool(config.ENABLE_CUDASIM)
_SCRATCH = {}
_SCRATCH_MAX = 64
# Threads per block of the elementwise kernels. The simulator runs each
# thread as a Python thread, so it gets small blocks.
THREADS_PER_BLOCK = 64 if SIMULATOR else 256


if SIMULATOR:

    @cuda.jit(device=True)
    def mul32(a, b):
        """float32 ``a * b``, rounded once."""
        return np.float32(a) * np.float32(b)

    @cuda.jit(device=True)
    def add32(a, b):
        """float32 ``a + b``, rounded once."""
        return np.float32(a) + np.float32(b)

else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def mul32(a, b):
        """float32 ``a * b``, rounded once (never fused into an FMA)."""
        return libdevice.fmul_rn(np.float32(a), np.float32(b))

    @cuda.jit(device=True)
    def add32(a, b):
        """float32 ``a + b``, rounded once (never fused into an FMA)."""
        return libdevice.fadd_rn(np.float32(a), np.float32(b))


def is_device_array(obj):
    """Whether ``obj`` is a numba device array or exposes ``__cuda_array_interface__``."""
    return bool(getattr(obj, "__cuda_ndarray__", False)) or hasattr(obj, "__cuda_array_interface__")


def device_array(obj, fn, name):
    """``obj`` as a numba device array, without copying; TypeError for anything else."""
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    if hasattr(obj, "__cuda_array_interface__") and hasattr(cuda, "as_cuda_array"):
        return cuda.as_cuda_array(obj)
    raise TypeError(
        f"{fn} (CUDA) requires {name} to be a CUDA device array (a numba device array or an object with "
        f"__cuda_array_interface__), got {type(obj).__name__}; copy host arrays with numba.cuda.to_device"
    )


def check_contiguous(a, fn, name):
    """ValueError unless device array ``a`` is C-contiguous."""
    if a.size and not a.is_c_contiguous():
        raise ValueError(
            f"{fn} (CUDA) requires a C-contiguous {name}, got strides {tuple(a.strides)} for shape "
            f"{tuple(a.shape)}; pass a contiguous copy"
        )


def _address_range(a):
    """``(start, end)`` byte addresses of device array ``a``'s memory."""
    iface = getattr(a, "__cuda_array_interface__", None)
    if iface is not None:
        start = iface["data"][0]
    else:  # the simulator's arrays wrap a NumPy array
        start = a._ary.__array_interface__["data"][0]
    return start, start + a.size * np.dtype(a.dtype).itemsize


def overlaps(a, b):
    """Whether the memory of two C-contiguous device arrays overlaps."""
    if a.size == 0 or b.size == 0:
        return False
    a0, a1 = _address_range(a)
    b0, b1 = _address_range(b)
    return a0 < b1 and b0 < a1


def prepare_out(out, shape, dtype, fn, stream, others=()):
    """``(result, device view)`` of ``out``, allocating it on the device when None.

    ``result`` is ``out`` as given (a tensor stays a tensor) or the new
    device array; the view is what kernels write. ``others`` lists
    ``(name, device array)`` pairs that ``out`` must not overlap.
    """
    shape = tuple(int(d) for d in shape)
    dtype = np.dtype(dtype)
    if out is None:
        dev = cuda.device_array(shape, dtype=dtype, stream=stream)
        return dev, dev
    dev = device_array(out, fn, "out")
    if tuple(dev.shape) != shape:
        raise ValueError(f"{fn} (CUDA) requires out of shape {shape}, got {tuple(dev.shape)}")
    if np.dtype(dev.dtype) != dtype:
        raise TypeError(f"{fn} (CUDA) requires out of dtype {dtype}, got {np.dtype(dev.dtype)}")
    check_contiguous(dev, fn, "out")
    for name, other in others:
        if other is not None and overlaps(dev, other):
            raise ValueError(f"{fn} (CUDA) requires out not to overlap {name}; pass a separate array")
    return out, dev


def blocks_for(n, threads=None):
    """Number of blocks of ``threads`` (default THREADS_PER_BLOCK) covering ``n`` threads."""
    threads = THREADS_PER_BLOCK if threads is None else threads
    return max(1, (int(n) + threads - 1) // threads)


def device_id():
    """Id of the current CUDA device (0 under the simulator)."""
    return getattr(cuda.get_current_device(), "id", 0) or 0


def _stream_key(stream):
    """A key for ``stream`` that is the same for every wrapper of one CUDA stream."""
    if not stream:
        return 0
    try:
        return int(stream)
    except TypeError:  # the simulator's streams have no handle (and run synchronously)
        return id(stream)


def scratch(name, shape, dtype, stream=0):
    """A device work array, reused by later calls on the same device and stream.

    Kernels on one stream run in order, so a call's kernels finish with the
    array before the next call's kernels touch it. Only for arrays that no
    caller keeps: reading one on the host must wait for the stream first.
    Allocating afresh on every call would cost a ``cudaMalloc`` (and later a
    synchronising free) per call.
    """
    key = (name, tuple(int(d) for d in shape), np.dtype(dtype).str, device_id(), _stream_key(stream))
    array = _SCRATCH.get(key)
    if array is None:
        if len(_SCRATCH) >= _SCRATCH_MAX:
            _SCRATCH.clear()
        array = _SCRATCH[key] = cuda.device_array(key[1], dtype=dtype, stream=stream)
    return array
