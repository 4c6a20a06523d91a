"""CUDA twins of :mod:`numbarl.core.pixels`: layout, grayscale, resize and crop.

Same names, arguments and results as the CPU functions, plus ``stream``, for
C-contiguous device arrays (numba device arrays or anything with
``__cuda_array_interface__``, such as CUDA tensors). Every kernel runs one
thread per output element, so the work spreads over the whole GPU whatever
the batch size.

The float32 arithmetic follows the CPU kernels operation by operation, each
product and sum rounded on its own (see :mod:`numbarl.core.cuda._common`):
``to_tensor_image`` and ``grayscale`` give the CPU's bits, and ``resize``
sums its taps in the CPU kernels' order (vertical taps per source column,
then horizontal taps), so it gives the same float32 values and the same
uint8 rounding (half to even). ``gray_resize`` also has the CPU's uint8
chain (``dtype=np.uint8``).

Resize tables (per-axis source indices and weights) are built on the host by
the CPU module's table builders, copied to the device once per ``(size in,
size out, mode, antialias)`` and device, and cached.

Importing this module imports ``numba.cuda``; ``numbarl.core`` does not import
it. Set ``NUMBA_ENABLE_CUDASIM=1`` before the first import of ``numba.cuda``
to run it on the simulator.
"""
import math

import numpy as np
from numba import cuda
from numbarl.core import pixels as _cpu
from numbarl.core._pixel_kernels import F255, GRAY_B, GRAY_G, GRAY_R
from numbarl.core._resize_kernels import SCALE_DIVIDE as _SCALE_DIVIDE, SCALE_HI as _SCALE_HI, SCALE_LO as _SCALE_LO
from numbarl.core._resize_kernels import SCALE_NONE as _SCALE_NONE, SCALE_SPLIT as _SCALE_SPLIT
from numbarl.core.cuda._common import (
    SIMULATOR,
    THREADS_PER_BLOCK,
    add32,
    blocks_for,
    check_contiguous,
    device_array,
    device_id,
    mul32,
    prepare_out,
)

__all__ = [
    "to_tensor_image",
    "grayscale",
    "resize",
    "gray_resize",
    "center_crop",
    "crop",
    "permute_last",
]

_DEVICE_TABLES = {}
_DEVICE_TABLES_MAX = 512
_U8 = np.dtype(np.uint8)


# ----------------------------------------------------------------- kernels
@cuda.jit
def _hwc_to_chw_kernel(x, out, scale):
    """``out[b, c, h, w] = x[b, h, w * C + c]`` (divided by 255 in float32 if ``scale``)."""
    i = cuda.grid(1)
    nb, nc, nh, nw = out.shape
    if i >= nb * nc * nh * nw:
        return
    w = i % nw
    t = i // nw
    h = t % nh
    t = t // nh
    c = t % nc
    b = t // nc
    v = np.float32(x[b, h, w * nc + c])
    if scale:
        v = v / F255
    out[b, c, h, w] = v


@cuda.jit
def _gray_kernel(x, out, to_u8):
    """Luma ``(r * 0.2989 + g * 0.587) + b * 0.114`` of ``x`` ``[B, 3, N]`` into ``out`` ``[B, N]``."""
    i = cuda.grid(1)
    nb, n = out.shape
    if i >= nb * n:
        return
    k = i % n
    b = i // n
    v = add32(add32(mul32(GRAY_R, x[b, 0, k]), mul32(GRAY_G, x[b, 1, k])), mul32(GRAY_B, x[b, 2, k]))
    if to_u8:
        out[b, k] = np.uint8(np.int32(v))
    else:
        out[b, k] = v


@cuda.jit(device=True)
def _column(src, p, oy, col, yi, yw):
    """Vertical pass at one source column: ``sum_k yw[oy, k] * src[p, yi[oy, k], col]`` in tap order."""
    acc = mul32(yw[oy, 0], src[p, yi[oy, 0], col])
    for k in range(1, yw.shape[1]):
        acc = add32(acc, mul32(yw[oy, k], src[p, yi[oy, k], col]))
    return acc


@cuda.jit(device=True)
def _store(dst, p, oy, ox, v, to_u8):
    """Write float32 ``v``; a uint8 ``dst`` gets it rounded half to even and clamped to [0, 255]."""
    if to_u8:
        if v <= 0.0:
            dst[p, oy, ox] = 0
        elif v >= 255.0:
            dst[p, oy, ox] = 255
        else:
            i = np.int32(math.floor(v))
            d = v - np.float32(i)  # exact below 256
            if d > 0.5 or (d == 0.5 and (i & 1) == 1):
                i += 1
            dst[p, oy, ox] = i
    else:
        dst[p, oy, ox] = v


@cuda.jit
def _resize_kernel(src, dst, yi, yw, xs, xw, to_u8):
    """Resample every plane of ``src`` ``[P, H, W]`` into ``dst`` ``[P, oh, ow]``.

    Horizontal taps ``xs[ox] + k`` past the right edge read the last column,
    as the CPU kernels' padded row buffer does.
    """
    i = cuda.grid(1)
    n_p, oh, ow = dst.shape
    if i >= n_p * oh * ow:
        return
    ox = i % ow
    t = i // ow
    oy = t % oh
    p = t // oh
    last = src.shape[2] - 1
    start = np.int64(xs[ox])
    col = min(start, last)
    acc = mul32(xw[ox, 0], _column(src, p, oy, col, yi, yw))
    for k in range(1, xw.shape[1]):
        col = min(start + k, last)
        acc = add32(acc, mul32(xw[ox, k], _column(src, p, oy, col, yi, yw)))
    _store(dst, p, oy, ox, acc, to_u8)


# Row kernels of resize and gray_resize: one block per output row, its threads
# first along the source width (vertical pass, reads coalesced along the input
# row), then along the output width (horizontal pass from shared memory).
# Wider sources than GR_MAX_W take the one-thread-per-pixel kernels.
GR_THREADS, GR_MAX_W = (8, 64) if SIMULATOR else (256, 4096)


def _row_threads(n_w):
    """Threads of a row block: the source width rounded up to whole warps, at most GR_THREADS."""
    if SIMULATOR:
        return GR_THREADS
    return min(GR_THREADS, (n_w + 31) // 32 * 32)


@cuda.jit
def _resize_rows_kernel(src, dst, yi, yw, xs, xw, to_u8):
    """Same results as ``_resize_kernel``; block ``p * oh + oy`` makes output row ``oy`` of plane ``p``.

    The vertical pass at each source column is computed once per output row
    (threads along the input row, coalesced) into shared memory, then the
    horizontal pass runs along the output width in tap order.
    """
    cols = cuda.shared.array(GR_MAX_W, np.float32)
    oh = dst.shape[1]
    ow = dst.shape[2]
    row = cuda.blockIdx.x
    p = row // oh
    oy = row - p * oh
    tid = cuda.threadIdx.x
    step = cuda.blockDim.x
    n_w = src.shape[2]
    for col in range(tid, n_w, step):
        cols[col] = _column(src, p, oy, col, yi, yw)
    cuda.syncthreads()
    last = n_w - 1
    for ox in range(tid, ow, step):
        start = np.int64(xs[ox])
        acc = mul32(xw[ox, 0], cols[min(start, last)])
        for k in range(1, xw.shape[1]):
            acc = add32(acc, mul32(xw[ox, k], cols[min(start + k, last)]))
        _store(dst, p, oy, ox, acc, to_u8)


@cuda.jit
def _nearest_kernel(src, dst, yi, xs):
    """``dst[p, i, j] = src[p, yi[i, 0], xs[j]]``."""
    i = cuda.grid(1)
    n_p, oh, ow = dst.shape
    if i >= n_p * oh * ow:
        return
    ox = i % ow
    t = i // ow
    oy = t % oh
    p = t // oh
    dst[p, oy, ox] = src[p, yi[oy, 0], xs[ox]]


@cuda.jit(device=True)
def _scale(v, how):
    """A channel value scaled as the CPU kernel scales it (none, / 255, or the exact division-free split)."""
    f = np.float32(v)
    if how == _SCALE_DIVIDE:
        return f / F255
    if how == _SCALE_SPLIT:
        return add32(mul32(f, _SCALE_HI), mul32(f, _SCALE_LO))
    return f


@cuda.jit(device=True)
def _luma(x, b, row, col, wr, wg, wb, how, trunc):
    """float32 ``(wr * r + wg * g) + wb * b`` of HWC pixel ``(row, col)`` of frame ``b`` (truncated if ``trunc``)."""
    r = _scale(x[b, row, 3 * col], how)
    g = _scale(x[b, row, 3 * col + 1], how)
    bl = _scale(x[b, row, 3 * col + 2], how)
    v = add32(add32(mul32(wr, r), mul32(wg, g)), mul32(wb, bl))
    if trunc:
        return np.float32(np.int32(v))
    return v


@cuda.jit(device=True)
def _gray_column(x, b, oy, col, yi, yw, wr, wg, wb, how, trunc):
    """Vertical pass over the luma at one source column, in tap order."""
    acc = mul32(yw[oy, 0], _luma(x, b, yi[oy, 0], col, wr, wg, wb, how, trunc))
    for k in range(1, yw.shape[1]):
        acc = add32(acc, mul32(yw[oy, k], _luma(x, b, yi[oy, k], col, wr, wg, wb, how, trunc)))
    return acc


@cuda.jit
def _gray_resize_kernel(x, dst, yi, yw, xs, xw, wr, wg, wb, how, to_u8):
    """Fused luma + resample of ``x`` ``[B, H, 3 * W]`` into ``dst`` ``[B, oh, ow]``.

    ``dst`` is float32, or uint8 when ``to_u8``: then the luma is truncated
    (as uint8 ``grayscale``) and the result rounded (as uint8 ``resize``).
    """
    i = cuda.grid(1)
    nb, oh, ow = dst.shape
    if i >= nb * oh * ow:
        return
    ox = i % ow
    t = i // ow
    oy = t % oh
    b = t // oh
    last = x.shape[2] // 3 - 1
    start = np.int64(xs[ox])
    col = min(start, last)
    acc = mul32(xw[ox, 0], _gray_column(x, b, oy, col, yi, yw, wr, wg, wb, how, to_u8))
    for k in range(1, xw.shape[1]):
        col = min(start + k, last)
        acc = add32(acc, mul32(xw[ox, k], _gray_column(x, b, oy, col, yi, yw, wr, wg, wb, how, to_u8)))
    _store(dst, b, oy, ox, acc, to_u8)


@cuda.jit
def _gray_resize_rows_kernel(x, dst, yi, yw, xs, xw, wr, wg, wb, how, to_u8):
    """Same results as ``_gray_resize_kernel``; block ``b * oh + oy`` makes output row ``oy`` of frame ``b``.

    Each source column's vertical pass is computed once per output row (not
    once per output pixel that reads it) and kept in shared memory; the
    horizontal pass then reads it in tap order, so the float32 operations
    are the other kernel's, in the same order.
    """
    cols = cuda.shared.array(GR_MAX_W, np.float32)
    oh = dst.shape[1]
    ow = dst.shape[2]
    row = cuda.blockIdx.x
    b = row // oh
    oy = row - b * oh
    tid = cuda.threadIdx.x
    step = cuda.blockDim.x
    n_w = x.shape[2] // 3
    for col in range(tid, n_w, step):
        cols[col] = _gray_column(x, b, oy, col, yi, yw, wr, wg, wb, how, to_u8)
    cuda.syncthreads()
    last = n_w - 1
    for ox in range(tid, ow, step):
        start = np.int64(xs[ox])
        acc = mul32(xw[ox, 0], cols[min(start, last)])
        for k in range(1, xw.shape[1]):
            acc = add32(acc, mul32(xw[ox, k], cols[min(start + k, last)]))
        _store(dst, b, oy, ox, acc, to_u8)


@cuda.jit
def _crop_kernel(x, out, top, left):
    """``out[p, i, j] = x[p, top + i, left + j]``, zero outside ``x``."""
    i = cuda.grid(1)
    n_p, oh, ow = out.shape
    if i >= n_p * oh * ow:
        return
    j = i % ow
    t = i // ow
    r = t % oh
    p = t // oh
    sr = top + r
    sc = left + j
    if 0 <= sr < x.shape[1] and 0 <= sc < x.shape[2]:
        out[p, r, j] = x[p, sr, sc]
    else:
        out[p, r, j] = 0


@cuda.jit
def _permute_kernel(x, out, shape, strides):
    """Row ``b`` of ``out`` ``[B, n]`` is row ``b`` of ``x`` read in permuted order.

    ``shape`` is the permuted core shape and ``strides[a]`` the element
    stride, in an input row, of output axis ``a``.
    """
    i = cuda.grid(1)
    nb, n = out.shape
    if i >= nb * n:
        return
    o = i % n
    b = i // n
    rem = o
    src = 0
    for a in range(len(shape) - 1, -1, -1):
        c = rem % shape[a]
        rem = rem // shape[a]
        src += c * strides[a]
    out[b, o] = x[b, src]


# ----------------------------------------------------------------- helpers
def _pixels_in(x, fn, min_ndim, layout):
    """``x`` as a C-contiguous uint8/float32 device array with at least ``min_ndim`` dims."""
    x = device_array(x, fn, "x")
    dtype = np.dtype(x.dtype)
    if dtype not in _cpu._PIXEL_IN:
        raise TypeError(f"{fn} (CUDA) requires x of dtype uint8 or float32, got {dtype}")
    if len(x.shape) < min_ndim:
        raise ValueError(
            f"{fn} (CUDA) requires x with at least {min_ndim} dimensions {layout}, got shape {tuple(x.shape)}"
        )
    check_contiguous(x, fn, "x")
    return x


def _batched(a, core_ndim, core_shape):
    """C-contiguous device array ``a`` viewed as ``[B, *core_shape]``."""
    shape = tuple(a.shape)
    b = int(np.prod(shape[: len(shape) - core_ndim], dtype=np.int64))
    return a.reshape((b,) + tuple(int(d) for d in core_shape))


def _launch(kernel, n, stream, *args):
    """Run ``kernel`` with one thread per each of ``n`` outputs."""
    kernel[blocks_for(n), THREADS_PER_BLOCK, stream](*args)


def _device_table(n_in, n_out, mode, antialias):
    """Device copies ``(idx, start, wgt)`` of :func:`numbarl.core.pixels._axis_table`, cached.

    The copy is synchronous and made once per table and device; the cached
    arrays are only read by kernels.
    """
    key = (n_in, n_out, mode, antialias, device_id())
    table = _DEVICE_TABLES.get(key)
    if table is None:
        host = _cpu._axis_table(n_in, n_out, mode, antialias)
        table = tuple(cuda.to_device(a) for a in host)
        if len(_DEVICE_TABLES) >= _DEVICE_TABLES_MAX:
            _DEVICE_TABLES.clear()
        _DEVICE_TABLES[key] = table
    return table


# ---------------------------------------------------------------- functions
def to_tensor_image(x, out=None, dtype=np.float32, from_int=True, stream=0):
    """``[..., H, W, C]`` pixels to ``[..., C, H, W]`` floats, scaled by 1/255, on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.to_tensor_image`
    (bit-identical), for C-contiguous device arrays.

    Args:
        x: uint8 or float32 device array ``[..., H, W, C]``.
        out: device array ``[..., C, H, W]`` of ``dtype``, or None to allocate one.
        dtype: float32 (default) or float64.
        from_int: ``True`` scales by 1/255, ``False`` only permutes and casts,
            ``None`` scales integer input only.
        stream: CUDA stream to run on (0: the default stream).

    Returns:
        ``out`` as given (a tensor stays a tensor), or the new device array.

    Raises:
        TypeError: a host array, or a dtype that is not allowed.
        ValueError: fewer than 3 dimensions, a bad ``dtype`` or ``from_int``,
            ``out`` of the wrong shape, overlapping or non-contiguous arrays.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> x = cuda.to_device(np.array([[[0, 255, 51]]], dtype=np.uint8))  # H=1, W=1, C=3
        >>> to_tensor_image(x).copy_to_host()[:, 0, 0]
        array([0. , 1. , 0.2], dtype=float32)
    """
    fn = "to_tensor_image"
    x = _pixels_in(x, fn, 3, "[..., H, W, C]")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{fn} (CUDA) requires dtype float32 or float64, got {dtype!r}") from None
    if dtype not in _cpu._FLOAT_OUT:
        raise ValueError(f"{fn} (CUDA) requires dtype float32 or float64, got {dtype}")
    if from_int not in (True, False, None):
        raise ValueError(f"{fn} (CUDA) requires from_int to be True, False or None, got {from_int!r}")
    scale = bool(from_int) if from_int is not None else np.dtype(x.dtype) == _U8
    *batch, h, w, c = tuple(x.shape)
    result, dev = prepare_out(out, (*batch, c, h, w), dtype, fn, stream, (("x", x),))
    if dev.size == 0:
        return result
    xv = _batched(x, 3, (h, w * c))
    ov = _batched(dev, 3, (c, h, w))
    _launch(_hwc_to_chw_kernel, ov.size, stream, xv, ov, scale)
    return result


def grayscale(x, out=None, stream=0):
    """ITU-R 601 luma of ``[..., 3, H, W]`` RGB images, as ``[..., 1, H, W]``, on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.grayscale`
    (bit-identical: float32 products and sums rounded one at a time, uint8
    results truncated), for C-contiguous device arrays.

    Args:
        x: uint8 or float32 device array ``[..., 3, H, W]``.
        out: device array ``[..., 1, H, W]`` of ``x.dtype``, or None.
        stream: CUDA stream to run on.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError: a host array or a wrong dtype.
        ValueError: fewer than 3 dimensions, a channel count other than 3,
            bad ``out``.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> x = np.array([[255, 10], [255, 200], [255, 30]], np.uint8).reshape(3, 1, 2)
        >>> grayscale(cuda.to_device(x)).copy_to_host()
        array([[[254, 123]]], dtype=uint8)
    """
    fn = "grayscale"
    x = _pixels_in(x, fn, 3, "[..., 3, H, W]")
    shape = tuple(x.shape)
    if shape[-3] != 3:
        raise ValueError(f"{fn} (CUDA) requires 3 channels at dim -3 of x, got {shape[-3]} (shape {shape})")
    result, dev = prepare_out(out, shape[:-3] + (1,) + shape[-2:], x.dtype, fn, stream, (("x", x),))
    if dev.size == 0:
        return result
    n = shape[-2] * shape[-1]
    xv = _batched(x, 3, (3, n))
    ov = _batched(dev, 3, (n,))
    _launch(_gray_kernel, ov.size, stream, xv, ov, np.dtype(x.dtype) == _U8)
    return result


def resize(x, h, w, mode="bilinear", antialias=False, out=None, stream=0):
    """Resize ``[..., H, W]`` images to ``h x w`` on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.resize`
    (``torch.nn.functional.interpolate`` with ``align_corners=False``), for
    C-contiguous device arrays. The taps are summed in the CPU kernel's
    order with float32 rounding at each step, so the values equal the CPU's.

    Args:
        x: uint8 or float32 device array with at least 2 dimensions.
        h, w: output height and width, positive ints.
        mode: ``"bilinear"`` (default) or ``"nearest"``.
        antialias: low-pass filter when shrinking (bilinear only).
        out: device array ``[..., h, w]`` of ``x.dtype``, or None.
        stream: CUDA stream to run on.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError: a host array, a wrong dtype, non-int sizes, non-bool
            ``antialias``.
        ValueError: bad sizes or ``mode``, ``antialias`` with ``"nearest"``,
            an empty image, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> x = cuda.to_device(np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32))
        >>> resize(x, 1, 4).copy_to_host()
        array([[[1.  , 1.25, 1.75, 2.  ]]], dtype=float32)
        >>> resize(x, 1, 1, antialias=True).copy_to_host()
        array([[[1.5]]], dtype=float32)
    """
    fn = "resize"
    x = _pixels_in(x, fn, 2, "[..., H, W]")
    h, w, antialias = _cpu._check_resize_args(fn, h, w, mode, antialias)
    shape = tuple(x.shape)
    n_h, n_w = shape[-2:]
    if n_h == 0 or n_w == 0:
        raise ValueError(f"{fn} (CUDA) requires a non-empty image, got H={n_h}, W={n_w}")
    result, dev = prepare_out(out, shape[:-2] + (h, w), x.dtype, fn, stream, (("x", x),))
    if dev.size == 0:
        return result
    yi, _, yw = _device_table(n_h, h, mode, antialias)
    _, xs, xw = _device_table(n_w, w, mode, antialias)
    xv = _batched(x, 2, (n_h, n_w))
    ov = _batched(dev, 2, (h, w))
    if mode == "nearest":
        _launch(_nearest_kernel, ov.size, stream, xv, ov, yi, xs)
    else:
        to_u8 = np.dtype(x.dtype) == _U8
        if n_w <= GR_MAX_W:
            _resize_rows_kernel[ov.shape[0] * h, _row_threads(n_w), stream](xv, ov, yi, yw, xs, xw, to_u8)
        else:
            _launch(_resize_kernel, ov.size, stream, xv, ov, yi, yw, xs, xw, to_u8)
    return result


def gray_resize(x, h, w, antialias=False, out=None, *, mode="bilinear", crop=None, from_int=None,
                dtype=np.float32, stream=0):
    """``ToTensorImage -> GrayScale -> Resize`` (-> ``CenterCrop``) in one kernel.

    Same arguments and results as :func:`numbarl.core.pixels.gray_resize`,
    for C-contiguous device arrays: HWC frames ``[..., H, W, 3]`` to float32
    ``[..., 1, h, w]`` (or ``[..., 1, *crop]``), one thread per output pixel
    computing the luma of the source pixels it reads.

    Args:
        x: uint8 or float32 device array ``[..., H, W, 3]``.
        h, w: size of the resized image, positive ints.
        antialias: as in :func:`resize`.
        out: float32 device array of the output shape, or None.
        mode: ``"bilinear"`` (default) or ``"nearest"``.
        crop: optional ``(ch, cw)`` centre crop of the resized image.
        from_int: scale by 1/255 when ``True``; ``None`` scales uint8 only.
        dtype: ``np.float32`` (default) or ``np.uint8`` (uint8 ``x`` with
            ``from_int=False``: the uint8 chain, as the CPU function).
        stream: CUDA stream to run on.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError, ValueError: as :func:`numbarl.core.pixels.gray_resize`,
            and for host or non-contiguous arrays.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> frames = cuda.to_device(np.full((2, 21, 16, 3), 255, np.uint8))
        >>> out = cuda.device_array((2, 1, 8, 8), np.float32)
        >>> y = gray_resize(frames, 8, 8, antialias=True, out=out).copy_to_host()
        >>> y.shape, round(float(y.max()), 4)
        ((2, 1, 8, 8), 0.9999)
    """
    fn = "gray_resize"
    x = _pixels_in(x, fn, 3, "[..., H, W, 3]")
    shape = tuple(x.shape)
    if shape[-1] != 3:
        raise ValueError(f"{fn} (CUDA) requires 3 channels at dim -1 of x, got {shape[-1]} (shape {shape})")
    h, w, antialias = _cpu._check_resize_args(fn, h, w, mode, antialias)
    if from_int not in (True, False, None):
        raise ValueError(f"{fn} (CUDA) requires from_int to be True, False or None, got {from_int!r}")
    is_u8 = np.dtype(x.dtype) == _U8
    to_u8 = _cpu._gray_resize_dtype(x, dtype, from_int, fn + " (CUDA)")
    scale = bool(from_int) if from_int is not None else is_u8
    n_h, n_w = shape[-3], shape[-2]
    if n_h == 0 or n_w == 0:
        raise ValueError(f"{fn} (CUDA) requires a non-empty image, got H={n_h}, W={n_w}")
    yi, _, yw = _device_table(n_h, h, mode, antialias)
    _, xs, xw = _device_table(n_w, w, mode, antialias)
    oh, ow = h, w
    if crop is not None:
        if not isinstance(crop, (tuple, list)) or len(crop) != 2:
            raise TypeError(f"{fn} (CUDA) requires crop to be a (height, width) pair, got {crop!r}")
        ch = _cpu._check_int(crop[0], fn, "crop height", 1)
        cw = _cpu._check_int(crop[1], fn, "crop width", 1)
        if ch > h or cw > w:
            raise ValueError(f"{fn} (CUDA) requires crop <= (h, w) = ({h}, {w}), got ({ch}, {cw})")
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        yi, yw = yi[top : top + ch], yw[top : top + ch]
        xs, xw = xs[left : left + cw], xw[left : left + cw]
        oh, ow = ch, cw
    result, dev = prepare_out(out, shape[:-3] + (1, oh, ow), np.uint8 if to_u8 else np.float32, fn, stream,
                              (("x", x),))
    if dev.size == 0:
        return result
    xv = _batched(x, 3, (n_h, n_w * 3))
    ov = _batched(dev, 3, (oh, ow))
    if not scale:
        how = _SCALE_NONE
    elif is_u8 and _cpu._exact_scale_holds():
        how = _SCALE_SPLIT  # the float32 v / 255 of every byte, as the CPU kernel forms it
    else:
        how = _SCALE_DIVIDE
    if n_w <= GR_MAX_W:
        _gray_resize_rows_kernel[ov.shape[0] * oh, _row_threads(n_w), stream](
            xv, ov, yi, yw, xs, xw, GRAY_R, GRAY_G, GRAY_B, how, to_u8
        )
    else:
        _launch(_gray_resize_kernel, ov.size, stream, xv, ov, yi, yw, xs, xw, GRAY_R, GRAY_G, GRAY_B, how, to_u8)
    return result


def crop(x, top, left, h, w, out=None, stream=0):
    """Window ``x[..., top:top + h, left:left + w]``, zero outside the image, on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.crop`, for
    C-contiguous device arrays.

    Args:
        x: uint8 or float32 device array ``[..., H, W]``.
        top, left: the window's top-left corner (ints, may be negative).
        h, w: window size, positive ints.
        out: device array ``[..., h, w]`` of ``x.dtype``, or None.
        stream: CUDA stream to run on.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError: a host array, wrong dtypes or types.
        ValueError: ``h <= 0`` or ``w <= 0``, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> x = cuda.to_device(np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3))
        >>> crop(x, 1, 1, 2, 3).copy_to_host()
        array([[[5, 6, 0],
                [8, 9, 0]]], dtype=uint8)
    """
    fn = "crop"
    x = _pixels_in(x, fn, 2, "[..., H, W]")
    top = _cpu._check_int(top, fn, "top")
    left = _cpu._check_int(left, fn, "left")
    h = _cpu._check_int(h, fn, "h", 1)
    w = _cpu._check_int(w, fn, "w", 1)
    shape = tuple(x.shape)
    result, dev = prepare_out(out, shape[:-2] + (h, w), x.dtype, fn, stream, (("x", x),))
    if dev.size == 0:
        return result
    xv = _batched(x, 2, shape[-2:])
    ov = _batched(dev, 2, (h, w))
    _launch(_crop_kernel, ov.size, stream, xv, ov, top, left)
    return result


def center_crop(x, h, w, out=None, stream=0):
    """Centre ``h x w`` window of ``[..., H, W]`` images, as torchvision, on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.center_crop`
    (same offsets, zero padding where the window is larger than the image).

    Raises:
        TypeError, ValueError: as :func:`crop`.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> x = cuda.to_device(np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3))
        >>> center_crop(x, 1, 1).copy_to_host()
        array([[[5]]], dtype=uint8)
    """
    fn = "center_crop"
    x = device_array(x, fn, "x")
    h = _cpu._check_int(h, fn, "h", 1)
    w = _cpu._check_int(w, fn, "w", 1)
    if len(x.shape) < 2:
        raise ValueError(f"{fn} (CUDA) requires x with at least 2 dimensions [..., H, W], got shape {tuple(x.shape)}")
    n_h, n_w = tuple(x.shape)[-2:]
    top = -((h - n_h) // 2) if h > n_h else int(round((n_h - h) / 2.0))
    left = -((w - n_w) // 2) if w > n_w else int(round((n_w - w) / 2.0))
    return crop(x, top, left, h, w, out=out, stream=stream)


def permute_last(x, dims, out=None, stream=0):
    """Copy ``x`` with its last ``len(dims)`` axes permuted, on the GPU.

    Same arguments and results as :func:`numbarl.core.pixels.permute_last`
    (any dtype), for C-contiguous device arrays.

    Args:
        x: device array with at least ``len(dims)`` dimensions.
        dims: a permutation of ``range(k)`` or of ``range(-k, 0)``.
        out: C-contiguous device array of the permuted shape, or None.
        stream: CUDA stream to run on.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError: a host array, ``dims`` not a sequence of ints.
        ValueError: ``dims`` not a permutation, too few dimensions, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> permute_last(cuda.to_device(np.arange(6).reshape(1, 2, 3)), (1, 0)).copy_to_host()
        array([[[0, 3],
                [1, 4],
                [2, 5]]])
    """
    fn = "permute_last"
    x = device_array(x, fn, "x")
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__"):
        raise TypeError(f"{fn} (CUDA) requires dims to be a sequence of ints, got {dims!r}")
    dims = [_cpu._check_int(d, fn, "each entry of dims") for d in dims]
    k = len(dims)
    if k == 0:
        raise ValueError(f"{fn} (CUDA) requires at least one entry in dims, got {tuple(dims)}")
    if all(d < 0 for d in dims):
        dims = [d + k for d in dims]
    if sorted(dims) != list(range(k)):
        raise ValueError(
            f"{fn} (CUDA) requires dims to be a permutation of range({k}) or of range({-k}, 0), got {tuple(dims)}"
        )
    shape = tuple(x.shape)
    if len(shape) < k:
        raise ValueError(f"{fn} (CUDA) requires x with at least {k} dimensions (len(dims) = {k}), got shape {shape}")
    check_contiguous(x, fn, "x")
    core = shape[len(shape) - k :]
    shape_out = shape[: len(shape) - k] + tuple(core[d] for d in dims)
    result, dev = prepare_out(out, shape_out, x.dtype, fn, stream, (("x", x),))
    if dev.size == 0:
        return result
    n = int(np.prod(core, dtype=np.int64))
    elem_strides = np.cumprod((core[1:] + (1,))[::-1])[::-1]
    strides = tuple(int(elem_strides[d]) for d in dims)
    kshape = tuple(int(core[d]) for d in dims)
    xv = _batched(x, k, (n,))
    ov = _batched(dev, k, (n,))
    _launch(_permute_kernel, ov.size, stream, xv, ov, kshape, strides)
    return result
