"""Image operations on NumPy arrays: layout, grayscale, resize and crop.

The functions here validate their arguments, allocate the output when
``out`` is ``None``, merge any number of leading batch dimensions into one
(as a view) and call a Numba kernel. They reproduce the numbers of the
PyTorch code that TorchRL 0.14.1 runs for ``ToTensorImage``, ``GrayScale``,
``Resize``, ``CenterCrop`` and ``Crop``:

* :func:`to_tensor_image` is bit-identical to
  ``torch.from_numpy(x).permute(..., -1, -3, -2).div(255)``;
* :func:`grayscale` is bit-identical to TorchRL's ``rgb_to_grayscale``
  (weights 0.2989, 0.587, 0.114; uint8 results are truncated, not rounded);
* :func:`resize` matches ``torch.nn.functional.interpolate`` with
  ``align_corners=False`` to 1e-5 for float32; uint8 images are resampled in
  float32 and rounded half to even, as torchvision's tensor ``resize`` does
  (within 1 of ``interpolate`` on uint8, whose fixed-point path differs);
* :func:`center_crop` and :func:`crop` follow torchvision, including zero
  padding when the window leaves the image.

:func:`gray_resize` fuses ``ToTensorImage -> GrayScale -> Resize`` (and
optionally a centre crop) for HWC uint8 frames such as Atari screens, bit for
bit equal to the three steps run one after the other.
"""
import numba
import numpy as np
from numbarl.core import _pixel_kernels as _pk
from numbarl.core import _resize_kernels as _rk
from numbarl.core._checks import check_int

__all__ = [
    "to_tensor_image",
    "grayscale",
    "resize",
    "gray_resize",
    "center_crop",
    "crop",
    "permute_last",
]

_FLOAT_OUT = (np.dtype(np.float32), np.dtype(np.float64))
_PIXEL_IN = (np.dtype(np.uint8), np.dtype(np.float32))
# Work (multiply-adds or elements) below which a call stays on one thread.
# Threads pay only for large batches: on a 2-core machine shared with other
# processes a parallel region waits for its slowest thread, and for a batch of
# 16 Atari frames (about 5e6) that wait cost far more than the serial run.
_PARALLEL_MIN_WORK = 50_000_000
_TABLE_CACHE = {}
_TABLE_CACHE_MAX = 512


# ----------------------------------------------------------------- checks
def _check_array(x, fn, name="x"):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn} requires {name} to be a numpy.ndarray, got {type(x).__name__}")


def _check_pixel_dtype(x, fn, name="x"):
    if x.dtype not in _PIXEL_IN:
        raise TypeError(f"{fn} requires {name} of dtype uint8 or float32, got {x.dtype}")


def _check_ndim(x, fn, min_ndim, layout):
    if x.ndim < min_ndim:
        raise ValueError(
            f"{fn} requires x with at least {min_ndim} dimensions {layout}, got shape {x.shape}"
        )


def _check_int(value, fn, name, minimum=None):
    """:func:`check_int` as ``numbarl.core.cuda.pixels`` calls it: ``minimum`` (1) said as ``> minimum - 1``."""
    return check_int(value, fn, name, above=None if minimum is None else minimum - 1)


def _view(a, shape):
    """``a`` reshaped to ``shape`` as a view, or ``None`` when that needs a copy."""
    try:
        return np.reshape(a, shape, copy=False)
    except ValueError:
        return None
    except TypeError:  # NumPy < 2.1 has no copy argument
        v = a.view()
        try:
            v.shape = shape
        except AttributeError:
            return None
        return v


def _batch_size(shape, core_ndim):
    return int(np.prod(shape[: len(shape) - core_ndim], dtype=np.int64))


def _batched_input(x, core_ndim, core_shape):
    """``x`` as ``[B, *core_shape]`` (its last ``core_ndim`` axes regrouped).

    A view when the strides allow it, otherwise a C-contiguous copy.
    """
    shape = (_batch_size(x.shape, core_ndim),) + tuple(core_shape)
    v = _view(x, shape)
    if v is None:
        v = np.ascontiguousarray(x).reshape(shape)
    return v


def _check_out(out, x, shape, dtype, fn):
    """Allocate ``out`` or check its type, shape, dtype and aliasing."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    _check_array(out, fn, "out")
    if out.shape != tuple(shape):
        raise ValueError(f"{fn} requires out of shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{fn} requires out of dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn} requires a writeable out")
    if np.may_share_memory(out, x):
        raise ValueError(f"{fn} requires out not to overlap x; pass a separate array")
    return out


def _out_view(out, core_ndim, core_shape):
    """``out`` as ``[B, *core_shape]`` view, or a scratch array to copy back."""
    shape = (_batch_size(out.shape, core_ndim),) + tuple(core_shape)
    v = _view(out, shape)
    if v is None:
        return np.empty(shape, dtype=out.dtype), True
    return v, False


def _use_parallel(work):
    return work >= _PARALLEL_MIN_WORK and numba.get_num_threads() > 1


# ---------------------------------------------------------- to_tensor_image
def to_tensor_image(x, out=None, dtype=np.float32, from_int=True):
    """Turn ``[..., H, W, C]`` pixels into ``[..., C, H, W]`` floats, scaled by 1/255.

    The value is ``x / 255`` computed in float32 (a true division, as
    ``torch.Tensor.div(255)``), then cast to ``dtype``; results are
    bit-identical to ``torch.from_numpy(x).permute(..., -1, -3, -2).div(255)``.

    Args:
        x: uint8 or float32 array ``[..., H, W, C]`` (at least 3 dimensions).
        out: optional ``[..., C, H, W]`` array of ``dtype`` to write into.
        dtype: float32 (default) or float64.
        from_int: ``True`` scales by 1/255, ``False`` only permutes and casts,
            ``None`` scales integer input only (TorchRL's default).

    Returns:
        The ``[..., C, H, W]`` array (``out`` when given).

    Raises:
        TypeError: ``x`` or ``out`` is not an array of an allowed dtype.
        ValueError: ``x`` has fewer than 3 dimensions, ``dtype`` is not a
            float type, or ``out`` has the wrong shape.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[[0, 255, 51]]], dtype=np.uint8)  # H=1, W=1, C=3
        >>> to_tensor_image(x)
        array([[[0. ]],
        <BLANKLINE>
               [[1. ]],
        <BLANKLINE>
               [[0.2]]], dtype=float32)
        >>> to_tensor_image(np.zeros((4, 2, 84, 84, 3), np.uint8)).shape
        (4, 2, 3, 84, 84)
    """
    fn = "to_tensor_image"
    _check_array(x, fn)
    _check_pixel_dtype(x, fn)
    _check_ndim(x, fn, 3, "[..., H, W, C]")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{fn} requires dtype float32 or float64, got {dtype!r}") from None
    if dtype not in _FLOAT_OUT:
        raise ValueError(f"{fn} requires dtype float32 or float64, got {dtype}")
    if from_int not in (True, False, None):
        raise ValueError(f"{fn} requires from_int to be True, False or None, got {from_int!r}")
    scale = bool(from_int) if from_int is not None else x.dtype == np.uint8
    *batch, h, w, c = x.shape
    out = _check_out(out, x, (*batch, c, h, w), dtype, fn)
    if out.size == 0:
        return out
    xv = _batched_input(x, 3, (h, w * c))
    ov, scratch = _out_view(out, 3, (c, h, w))
    kernel = _pk._hwc_to_chw_parallel if _use_parallel(xv.size * 4) else _pk._hwc_to_chw
    kernel(xv, ov, scale)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


# ---------------------------------------------------------------- grayscale
def grayscale(x, out=None):
    """ITU-R 601 luma of ``[..., 3, H, W]`` RGB images, as ``[..., 1, H, W]``.

    ``(0.2989 * r + 0.587 * g) + 0.114 * b`` in float32, as TorchRL's
    ``rgb_to_grayscale`` (and torchvision's). For uint8 input the float32
    sum is truncated towards zero, as ``Tensor.to(torch.uint8)`` does: the
    result is never rounded up, and pure white (255, 255, 255) maps to 254
    because the weights sum to 0.9999.

    Args:
        x: uint8 or float32 array ``[..., 3, H, W]``.
        out: optional ``[..., 1, H, W]`` array of ``x.dtype``.

    Returns:
        The ``[..., 1, H, W]`` array (``out`` when given), dtype of ``x``.

    Raises:
        TypeError: ``x`` or ``out`` is not an array of an allowed dtype.
        ValueError: fewer than 3 dimensions, a channel count other than 3,
            or ``out`` of the wrong shape.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[255, 10], [255, 200], [255, 30]], np.uint8).reshape(3, 1, 2)
        >>> grayscale(x)  # white is 254: truncated, weights sum to 0.9999
        array([[[254, 123]]], dtype=uint8)
        >>> grayscale(np.ones((3, 1, 1), np.float32))
        array([[[0.99990004]]], dtype=float32)
    """
    fn = "grayscale"
    _check_array(x, fn)
    _check_pixel_dtype(x, fn)
    _check_ndim(x, fn, 3, "[..., 3, H, W]")
    if x.shape[-3] != 3:
        raise ValueError(f"{fn} requires 3 channels at dim -3 of x, got {x.shape[-3]} (shape {x.shape})")
    shape = x.shape[:-3] + (1,) + x.shape[-2:]
    out = _check_out(out, x, shape, x.dtype, fn)
    if out.size == 0:
        return out
    n = x.shape[-2] * x.shape[-1]
    xv = _batched_input(x, 3, (3, n))
    ov, scratch = _out_view(out, 3, (n,))
    kernel = _pk._gray_planes_u8 if x.dtype == np.uint8 else _pk._gray_planes_f32
    kernel(xv, ov)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


# ------------------------------------------------------------ resize tables
def _nearest_table(n_in, n_out):
    # floor(i * scale) with scale = n_in / n_out, all in float32, as PyTorch
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    idx = np.minimum(src, n_in - 1).reshape(n_out, 1)
    return idx, np.ones((n_out, 1), dtype=np.float32)


def _linear_table(n_in, n_out):
    # source coordinate (i + 0.5) * scale - 0.5 (float32 scale, float64
    # product, rounded to float32), clamped below at 0; the two neighbours
    # and their float32 weights, as PyTorch's CPU kernel forms them
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    src = (scale * (np.arange(n_out) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)
    lam1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))
    i0 = np.minimum(i0, n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    lam0 = np.float32(1.0) - lam1
    return np.stack([i0, i1], axis=1), np.stack([lam0, lam1], axis=1).astype(np.float32)


def _antialias_table(n_in, n_out):
    # triangle filter widened by the scale when shrinking, so every source
    # pixel under an output pixel contributes; weights renormalised to sum 1.
    # All in float32, in PyTorch's order of operations, so the weights are
    # the ones its CPU kernel uses for float32 images.
    f32 = np.float32
    half = f32(0.5)
    scale = f32(n_in) / f32(n_out)
    support = scale if scale >= 1.0 else f32(1.0)
    inv = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    center = scale * (np.arange(n_out, dtype=f32) + half)
    lo = np.maximum(((center - support) + half).astype(np.int64), 0)
    hi = np.minimum(((center + support) + half).astype(np.int64), n_in)
    ntap = int((hi - lo).max())
    idx = lo[:, None] + np.arange(ntap)[None, :]
    dist = ((idx.astype(f32) - center[:, None]) + half) * inv
    wgt = np.maximum(f32(0.0), f32(1.0) - np.abs(dist))
    wgt[idx >= hi[:, None]] = 0.0
    total = np.zeros(n_out, dtype=f32)
    for k in range(ntap):  # sequential float32 sum, tap by tap
        total += wgt[:, k]
    total = total[:, None]
    wgt = np.divide(wgt, total, out=np.zeros_like(wgt), where=total != 0)
    idx = np.minimum(idx, hi[:, None] - 1)
    return idx, wgt


def _axis_table(n_in, n_out, mode, antialias):
    """Cached ``(idx, start, wgt)`` for one axis.

    ``idx`` int32 ``[n_out, K]``: source index of each tap, clamped into the
    image; ``start`` uint32 ``[n_out]``: ``idx[:, 0]``, the first of ``K``
    consecutive taps; ``wgt`` float32 ``[n_out, K]``. All read-only.
    """
    key = (n_in, n_out, mode, antialias)
    table = _TABLE_CACHE.get(key)
    if table is None:
        if mode == "nearest":
            idx, wgt = _nearest_table(n_in, n_out)
        elif antialias:
            idx, wgt = _antialias_table(n_in, n_out)
        else:
            idx, wgt = _linear_table(n_in, n_out)
        idx = np.ascontiguousarray(idx, dtype=np.int32)
        start = np.ascontiguousarray(idx[:, 0], dtype=np.uint32)
        wgt = np.ascontiguousarray(wgt, dtype=np.float32)
        for a in (idx, start, wgt):
            a.setflags(write=False)
        if len(_TABLE_CACHE) >= _TABLE_CACHE_MAX:
            _TABLE_CACHE.clear()
        table = _TABLE_CACHE[key] = (idx, start, wgt)
    return table


def _check_resize_args(fn, h, w, mode, antialias):
    h = check_int(h, fn, "h", above=0)
    w = check_int(w, fn, "w", above=0)
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"{fn} requires mode 'bilinear' or 'nearest', got {mode!r}")
    if not isinstance(antialias, (bool, np.bool_)):
        raise TypeError(f"{fn} requires antialias to be a bool, got {type(antialias).__name__}")
    if antialias and mode == "nearest":
        raise ValueError(f"{fn} supports antialias=True only with mode='bilinear', got mode='nearest'")
    return h, w, bool(antialias)


# ------------------------------------------------------------------- resize
def resize(x, h, w, mode="bilinear", antialias=False, out=None):
    """Resize ``[..., H, W]`` images (usually ``[..., C, H, W]``) to ``h x w``.

    Matches ``torch.nn.functional.interpolate(x, (h, w), mode=mode,
    align_corners=False, antialias=antialias)``: to 1e-5 for float32. A
    uint8 image is resampled in float32 and rounded half to even (clamped to
    [0, 255]), the values of torchvision's tensor ``resize`` (float32
    ``interpolate``, ``torch.round``, cast) that TorchRL's ``Resize`` runs;
    that is within 1 of ``interpolate`` on uint8 itself, whose fixed-point
    path rounds differently. ``mode="nearest"`` picks ``floor(i * H / h)`` as PyTorch's
    legacy ``"nearest"`` (not ``"nearest-exact"``) and copies values exactly.
    With ``antialias=True`` a shrinking axis averages every source pixel
    under the output pixel (the triangle filter widened by the scale).

    The per-axis source indices and weights are computed once for each
    ``(size in, size out, mode, antialias)`` and cached; the kernel then runs
    a vertical and a horizontal pass.

    Args:
        x: uint8 or float32 array with at least 2 dimensions.
        h, w: output height and width, positive ints.
        mode: ``"bilinear"`` (default) or ``"nearest"``.
        antialias: low-pass filter when shrinking (bilinear only).
        out: optional ``[..., h, w]`` array of ``x.dtype``.

    Returns:
        The resized array (``out`` when given), dtype of ``x``.

    Raises:
        TypeError: non-array ``x`` or ``out``, a dtype other than uint8 or
            float32, non-int ``h``/``w``, non-bool ``antialias``.
        ValueError: ``h <= 0``, ``w <= 0``, an unknown ``mode``,
            ``antialias`` with ``"nearest"``, an empty image, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32)
        >>> resize(x, 4, 4)
        array([[[0.  , 0.25, 0.75, 1.  ],
                [0.5 , 0.75, 1.25, 1.5 ],
                [1.5 , 1.75, 2.25, 2.5 ],
                [2.  , 2.25, 2.75, 3.  ]]], dtype=float32)
        >>> resize(x, 1, 1, antialias=True)
        array([[[1.5]]], dtype=float32)
        >>> resize(x.astype(np.uint8), 1, 3, mode="nearest")
        array([[[0, 0, 1]]], dtype=uint8)
    """
    fn = "resize"
    _check_array(x, fn)
    _check_pixel_dtype(x, fn)
    _check_ndim(x, fn, 2, "[..., H, W]")
    h, w, antialias = _check_resize_args(fn, h, w, mode, antialias)
    n_h, n_w = x.shape[-2:]
    if n_h == 0 or n_w == 0:
        raise ValueError(f"{fn} requires a non-empty image, got H={n_h}, W={n_w}")
    out = _check_out(out, x, x.shape[:-2] + (h, w), x.dtype, fn)
    if out.size == 0:
        return out
    yi, _, yw = _axis_table(n_h, h, mode, antialias)
    _, xs, xw = _axis_table(n_w, w, mode, antialias)
    xv = _batched_input(x, 2, (n_h, n_w))
    ov, scratch = _out_view(out, 2, (h, w))
    if mode == "nearest":
        _rk._nearest_planes(xv, ov, yi, xs)
    else:
        work = xv.shape[0] * h * (n_w * yw.shape[1] + w * xw.shape[1])
        kernel = _rk._resize_planes_parallel if _use_parallel(work) else _rk._resize_planes
        kernel(xv, ov, yi, yw, xs, xw, x.dtype == np.uint8)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


# -------------------------------------------------------------- gray_resize
def _gray_resize_dtype(x, dtype, from_int, fn) -> bool:
    """Whether ``gray_resize`` writes uint8 (checked: ``dtype`` and, for uint8, ``x`` and ``from_int``)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn} requires dtype np.float32 or np.uint8, got {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise ValueError(f"{fn} requires dtype np.float32 or np.uint8, got {dtype}")
    if dtype != np.uint8:
        return False
    if x.dtype != np.uint8 or from_int is not False:
        raise ValueError(f"{fn} with dtype=np.uint8 requires uint8 x and from_int=False (no scaling), "
                         f"got x of dtype {x.dtype} and from_int={from_int!r}")
    return True


_SCALE_CHECK = {}


def _exact_scale_holds() -> bool:
    """Whether the compiled split scaling equals ``float32(v) / 255`` for every byte (checked once)."""
    ok = _SCALE_CHECK.get("ok")
    if ok is None:
        got = np.empty(256, np.float32)
        _rk.scaled_bytes(got, _rk.SCALE_SPLIT)
        ok = _SCALE_CHECK["ok"] = bool(np.array_equal(got, np.arange(256, dtype=np.float32) / np.float32(255.0)))
    return ok


def gray_resize(x, h, w, antialias=False, out=None, *, mode="bilinear", crop=None, from_int=None, dtype=np.float32):
    """``ToTensorImage -> GrayScale -> Resize`` (-> ``CenterCrop``) in one pass.

    Takes HWC frames ``[..., H, W, 3]`` straight to ``[..., 1, h, w]``
    float32: per frame, the luma of the needed rows, then the same
    resampling kernel as :func:`resize`. The result is bit-identical to
    ``resize(grayscale(to_tensor_image(x)), h, w)`` (the unfused sequence)
    for every input; for uint8 input each byte's ``v / 255`` is formed
    without a division as ``v * HI + v * LO`` (``HI`` is 1/255 cut to 16
    significant bits, so the first product is exact), which equals the
    float32 quotient for all 256 bytes (checked once per process; the kernel
    divides should a compiler ever fuse the two products).

    With ``dtype=np.uint8`` (uint8 ``x``, ``from_int=False``) the frames stay
    bytes end to end, bit-identical to the uint8 chain
    ``resize(grayscale(permute_last(x, (-1, -3, -2))), h, w)``: the luma is
    truncated to an integer as uint8 ``grayscale`` stores it, and the
    resampled value is rounded as uint8 ``resize`` rounds it.

    Args:
        x: uint8 or float32 array ``[..., H, W, 3]``.
        h, w: size of the resized image, positive ints.
        antialias: as in :func:`resize` (TorchRL's ``Resize`` uses ``True``).
        out: optional float32 ``[..., 1, h, w]`` array (``[..., 1, *crop]``
            with ``crop``).
        mode: ``"bilinear"`` (default) or ``"nearest"``.
        crop: optional ``(ch, cw)``: keep only the centre ``ch x cw`` of the
            resized image, as :func:`center_crop` would (``ch <= h``,
            ``cw <= w``); only the kept pixels are computed.
        from_int: scale by 1/255 when ``True``; ``None`` (default) scales
            uint8 input only, as ``ToTensorImage``.
        dtype: ``np.float32`` (default) or ``np.uint8`` (see above).

    Returns:
        The array of ``dtype`` (``out`` when given).

    Raises:
        TypeError: wrong types, as :func:`resize`.
        ValueError: fewer than 3 dimensions, a last dimension other than 3,
            bad sizes, a crop larger than ``(h, w)``, another ``dtype``, or
            ``dtype=np.uint8`` with non-uint8 ``x`` or ``from_int`` not False.

    Examples:
        >>> import numpy as np
        >>> frames = np.full((2, 210, 160, 3), 255, np.uint8)
        >>> y = gray_resize(frames, 84, 84, antialias=True)
        >>> y.shape, y.dtype, round(float(y.max()), 4)
        ((2, 1, 84, 84), dtype('float32'), 0.9999)
        >>> gray_resize(frames, 84, 84, crop=(64, 64)).shape
        (2, 1, 64, 64)
        >>> gray_resize(frames, 84, 84, antialias=True, from_int=False, dtype=np.uint8).max()
        np.uint8(254)
    """
    fn = "gray_resize"
    _check_array(x, fn)
    _check_pixel_dtype(x, fn)
    _check_ndim(x, fn, 3, "[..., H, W, 3]")
    if x.shape[-1] != 3:
        raise ValueError(f"{fn} requires 3 channels at dim -1 of x, got {x.shape[-1]} (shape {x.shape})")
    h, w, antialias = _check_resize_args(fn, h, w, mode, antialias)
    if from_int not in (True, False, None):
        raise ValueError(f"{fn} requires from_int to be True, False or None, got {from_int!r}")
    to_u8 = _gray_resize_dtype(x, dtype, from_int, fn)
    scale = bool(from_int) if from_int is not None else x.dtype == np.uint8
    n_h, n_w = x.shape[-3], x.shape[-2]
    if n_h == 0 or n_w == 0:
        raise ValueError(f"{fn} requires a non-empty image, got H={n_h}, W={n_w}")
    yi, _, yw = _axis_table(n_h, h, mode, antialias)
    _, xs, xw = _axis_table(n_w, w, mode, antialias)
    oh, ow = h, w
    if crop is not None:
        if not isinstance(crop, (tuple, list)) or len(crop) != 2:
            raise TypeError(f"{fn} requires crop to be a (height, width) pair, got {crop!r}")
        ch = check_int(crop[0], fn, "crop height", above=0)
        cw = check_int(crop[1], fn, "crop width", above=0)
        if ch > h or cw > w:
            raise ValueError(f"{fn} requires crop <= (h, w) = ({h}, {w}), got ({ch}, {cw})")
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        yi, yw = yi[top : top + ch], yw[top : top + ch]
        xs, xw = xs[left : left + cw], xw[left : left + cw]
        oh, ow = ch, cw
    out = _check_out(out, x, x.shape[:-3] + (1, oh, ow), np.dtype(np.uint8 if to_u8 else np.float32), fn)
    if out.size == 0:
        return out
    xv = _batched_input(x, 3, (n_h, n_w * 3))
    ov, scratch = _out_view(out, 3, (oh, ow))
    rows = np.zeros(n_h, dtype=np.bool_)
    rows[yi.ravel()] = True
    work = xv.shape[0] * (n_h * n_w * 3 + oh * (n_w * yw.shape[1] + ow * xw.shape[1]))
    kernel = _rk._gray_resize_frames_parallel if _use_parallel(work) else _rk._gray_resize_frames
    if not scale:
        how = _rk.SCALE_NONE
    elif x.dtype == np.uint8 and _exact_scale_holds():
        how = _rk.SCALE_SPLIT  # the float32 v / 255 of every byte, without a division
    else:
        how = _rk.SCALE_DIVIDE
    kernel(xv, ov, rows, yi, yw, xs, xw, _pk.GRAY_R, _pk.GRAY_G, _pk.GRAY_B, how, to_u8)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


# --------------------------------------------------------------------- crop
def crop(x, top, left, h, w, out=None):
    """Window ``x[..., top:top + h, left:left + w]``, zero outside the image.

    As torchvision's ``crop``: ``top`` and ``left`` may be negative and the
    window may extend past the image; pixels outside are 0.

    Args:
        x: uint8 or float32 array ``[..., H, W]`` (usually ``[..., C, H, W]``).
        top, left: position of the window's top-left corner (ints).
        h, w: window size, positive ints.
        out: optional ``[..., h, w]`` array of ``x.dtype``.

    Returns:
        The cropped array (``out`` when given).

    Raises:
        TypeError: wrong types. ValueError: ``h <= 0`` or ``w <= 0``, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3)
        >>> crop(x, 1, 1, 2, 3)
        array([[[5, 6, 0],
                [8, 9, 0]]], dtype=uint8)
    """
    fn = "crop"
    _check_array(x, fn)
    _check_pixel_dtype(x, fn)
    _check_ndim(x, fn, 2, "[..., H, W]")
    top = check_int(top, fn, "top")
    left = check_int(left, fn, "left")
    h = check_int(h, fn, "h", above=0)
    w = check_int(w, fn, "w", above=0)
    out = _check_out(out, x, x.shape[:-2] + (h, w), x.dtype, fn)
    if out.size == 0:
        return out
    xv = _batched_input(x, 2, x.shape[-2:])
    ov, scratch = _out_view(out, 2, (h, w))
    _pk._crop_planes(xv, ov, top, left)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


def center_crop(x, h, w, out=None):
    """Centre ``h x w`` window of ``[..., H, W]`` images, as torchvision.

    The offset is ``top = int(round((H - h) / 2.0))`` (Python's round, half
    to even) and likewise for ``left``. Along an axis where the window is
    larger than the image, the image is centred in the window with
    ``(h - H) // 2`` zero rows before it and the rest after.

    Args:
        x: uint8 or float32 array ``[..., H, W]`` (usually ``[..., C, H, W]``).
        h, w: window size, positive ints.
        out: optional ``[..., h, w]`` array of ``x.dtype``.

    Returns:
        The cropped array (``out`` when given).

    Raises:
        TypeError: wrong types. ValueError: ``h <= 0`` or ``w <= 0``, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3)
        >>> center_crop(x, 1, 1)
        array([[[5]]], dtype=uint8)
        >>> center_crop(x, 2, 4)  # top = round(0.5) = 0; one zero column after
        array([[[1, 2, 3, 0],
                [4, 5, 6, 0]]], dtype=uint8)
    """
    fn = "center_crop"
    _check_array(x, fn)
    h = check_int(h, fn, "h", above=0)
    w = check_int(w, fn, "w", above=0)
    _check_ndim(x, fn, 2, "[..., H, W]")
    n_h, n_w = x.shape[-2:]
    top = -((h - n_h) // 2) if h > n_h else int(round((n_h - h) / 2.0))
    left = -((w - n_w) // 2) if w > n_w else int(round((n_w - w) / 2.0))
    return crop(x, top, left, h, w, out=out)


# ------------------------------------------------------------------ permute
def permute_last(x, dims, out=None):
    """Copy ``x`` with its last ``len(dims)`` axes permuted into a contiguous array.

    ``dims`` lists, for each output axis, which of the last ``k = len(dims)``
    input axes it takes: either ``0 .. k-1`` or ``-k .. -1``. The leading
    axes are kept. Any dtype is accepted.

    Args:
        x: array with at least ``len(dims)`` dimensions.
        dims: a permutation of ``range(k)`` or of ``range(-k, 0)``.
        out: optional C-contiguous-compatible array of the permuted shape.

    Returns:
        The permuted copy (``out`` when given).

    Raises:
        TypeError: ``x`` not an array, ``dims`` not a sequence of ints.
        ValueError: ``dims`` not a permutation, too few dimensions, bad ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(6).reshape(1, 2, 3)
        >>> permute_last(x, (1, 0))
        array([[[0, 3],
                [1, 4],
                [2, 5]]])
        >>> permute_last(np.zeros((5, 84, 84, 3)), (-1, -3, -2)).shape
        (5, 3, 84, 84)
    """
    fn = "permute_last"
    _check_array(x, fn)
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__"):
        raise TypeError(f"{fn} requires dims to be a sequence of ints, got {dims!r}")
    dims = [check_int(d, fn, "each entry of dims") for d in dims]
    k = len(dims)
    if k == 0:
        raise ValueError(f"{fn} requires at least one entry in dims, got {tuple(dims)}")
    if all(d < 0 for d in dims):
        dims = [d + k for d in dims]
    if sorted(dims) != list(range(k)):
        raise ValueError(
            f"{fn} requires dims to be a permutation of range({k}) or of range({-k}, 0), got {tuple(dims)}"
        )
    _check_ndim(x, fn, k, f"(len(dims) = {k})")
    core = x.shape[x.ndim - k :]
    shape_out = x.shape[: x.ndim - k] + tuple(core[d] for d in dims)
    out = _check_out(out, x, shape_out, x.dtype, fn)
    if out.size == 0:
        return out
    n = int(np.prod(core, dtype=np.int64))
    xv = _batched_input(x, k, (n,))
    ov, scratch = _out_view(out, k, (n,))
    # a rotation (last k - j axes moved to the front) is a 2-D transpose
    # [R, S] -> [S, R]; with 3 or 4 on one side it is an (de)interleave
    j = dims[0]
    rotation = dims == list(range(j, k)) + list(range(j))
    n_r = int(np.prod(core[:j], dtype=np.int64))
    n_s = n // n_r if n_r else 0
    if rotation and n_s in (3, 4):
        _pk._deinterleave(xv, ov.reshape(ov.shape[0], n_s, n_r))
    elif rotation and n_r in (3, 4):
        _pk._interleave(xv.reshape(xv.shape[0], n_r, n_s), ov)
    else:
        elem_strides = np.cumprod((core[1:] + (1,))[::-1])[::-1].astype(np.int64)
        strides = np.array([elem_strides[d] for d in dims], dtype=np.int64)
        kshape = np.array([core[d] for d in dims], dtype=np.int64)
        _pk._permute_copy(xv, ov, kshape, strides)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out
