"""Exact fused ``ToTensorImage -> GrayScale -> Resize [-> CenterCrop]`` for HWC frames.

:func:`gray_resize_exact` gives, bit for bit, what
``resize(grayscale(to_tensor_image(x)), h, w)`` (then a centre crop) gives,
in one pass per frame. :func:`numbarl.core.pixels.gray_resize` folds the
1/255 of uint8 input into the luma weights, which is fast but off by up to
3e-7. Here each channel value ``v / 255`` is formed without a division as
``float32(v) * HI + float32(v) * LO``, where ``HI`` is 1/255 cut to 16
significant bits (so ``float32(v) * HI`` is exact for a uint8 ``v``) and
``LO = float32(1/255 - HI)``: for every ``v`` in 0..255 that is exactly the
float32 quotient ``float32(v) / 255`` that ``to_tensor_image`` computes.
:func:`exact_scale_holds` checks all 256 values with the compiled kernel
code; should it ever fail (a compiler that fuses the multiply-add), the
kernel divides instead. The luma is then ``(0.2989 * r + 0.587 * g) + 0.114
* b`` in float32, the operations of the unfused kernels, and the resampling
is the kernel of :func:`numbarl.core.pixels.resize`. Inputs other than
scaled uint8 go to :func:`numbarl.core.pixels.gray_resize`, which is exact
for them.

Examples:
    >>> import numpy as np
    >>> from numbarl.core.pixels import grayscale, resize, to_tensor_image
    >>> x = np.random.default_rng(0).integers(0, 256, (2, 210, 160, 3), dtype=np.uint8)
    >>> y = gray_resize_exact(x, 84, 84, antialias=True)
    >>> y.shape, bool((y == resize(grayscale(to_tensor_image(x)), 84, 84, antialias=True)).all())
    ((2, 1, 84, 84), True)
"""
import numpy as np
from numba import njit
from numbarl.core import _pixel_kernels as _pk
from numbarl.core import pixels as _px
from numbarl.core._resize_kernels import _resize_plane_f32

__all__ = ["gray_resize_exact", "exact_scale_holds"]

_HI = (np.array(np.float32(1.0 / 255.0)).view(np.int32) & np.int32(~((1 << 8) - 1))).view(np.float32)[()]
_LO = np.float32(1.0 / 255.0 - float(_HI))
_GR, _GG, _GB, _F255 = _pk.GRAY_R, _pk.GRAY_G, _pk.GRAY_B, _pk.F255
_CHECKED = {}
_PLANS = {}  # (frame shape, arguments) -> checked arguments and tables


@njit(cache=True, nogil=True, inline="always")
def _scaled(v, divide):
    f = np.float32(v)
    if divide:
        return f / _F255
    return f * _HI + f * _LO


@njit(cache=True, nogil=True)
def _scaled_all(out, divide):
    for v in range(256):
        out[v] = _scaled(np.uint8(v), divide)


def exact_scale_holds() -> bool:
    """Whether the kernels' division-free ``v / 255`` equals ``float32(v) / 255`` for every uint8 ``v``.

    Examples:
        >>> exact_scale_holds()
        True
    """
    ok = _CHECKED.get("ok")
    if ok is None:
        product = np.empty(256, np.float32)
        _scaled_all(product, False)
        ok = _CHECKED["ok"] = bool(np.array_equal(product, np.arange(256, dtype=np.float32) / np.float32(255.0)))
    return ok


@njit(cache=True, nogil=True)
def _luma_rows(frame, g, rows, divide):
    """Float32 luma of the flagged rows of one ``[H, 3 * W]`` uint8 frame, channels scaled by 1/255."""
    nh, nw = g.shape
    for h in range(nh):
        if rows[h]:
            src = frame[h]
            dst = g[h]
            for w in range(nw):
                r = _scaled(src[3 * w], divide)
                gg = _scaled(src[3 * w + 1], divide)
                b = _scaled(src[3 * w + 2], divide)
                dst[w] = (_GR * r + _GG * gg) + _GB * b


@njit(cache=True, nogil=True)
def _gray_resize_u8(x, dst, rows, yi, yw, xs, xw, divide):
    """Exact luma + resample of uint8 ``x`` ``[B, H, 3 * W]`` into float32 ``dst`` ``[B, oh, ow]``."""
    nh, nw = x.shape[1], x.shape[2] // 3
    g = np.empty((nh, nw), dtype=np.float32)
    tmp = np.empty(nw + xw.shape[1] - 1, dtype=np.float32)
    for b in range(x.shape[0]):
        _luma_rows(x[b], g, rows, divide)
        _resize_plane_f32(g, dst[b], yi, yw, xs, xw, tmp)


def gray_resize_exact(x, h, w, antialias=False, out=None, *, mode="bilinear", crop=None, from_int=None):
    """:func:`numbarl.core.pixels.gray_resize`, bit-identical to the unfused sequence for every input.

    Same arguments, checks and output as ``gray_resize`` (see there); for
    uint8 input that is scaled (``from_int`` ``None`` or ``True``) the luma
    is formed as described in the module docstring.

    Raises:
        TypeError, ValueError: as :func:`numbarl.core.pixels.gray_resize`.

    Examples:
        >>> x = np.full((1, 4, 4, 3), 255, np.uint8)
        >>> float(gray_resize_exact(x, 2, 2)[0, 0, 0, 0])
        0.9999000430107117
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or from_int is False:
        return _px.gray_resize(x, h, w, antialias, out, mode=mode, crop=crop, from_int=from_int)
    fn = "gray_resize_exact"
    _px._check_ndim(x, fn, 3, "[..., H, W, 3]")
    try:  # typed, so that a cached plan never admits a value the checks refuse (True for 1, 84.0 for 84)
        key = tuple((type(a), a) for a in (h, w, mode, antialias, from_int))
        key += (x.shape[-3:], None if crop is None else tuple((type(c), c) for c in crop))
        plan = _PLANS.get(key)
    except TypeError:  # unhashable or malformed arguments: checked (and refused) by _plan
        key = plan = None
    if plan is None:
        plan = _plan(fn, x.shape[-3:], h, w, mode, antialias, crop, from_int)
        if key is not None:
            if len(_PLANS) >= 64:
                _PLANS.clear()
            _PLANS[key] = plan
    yi, yw, xs, xw, rows, oh, ow = plan
    out = _px._check_out(out, x, x.shape[:-3] + (1, oh, ow), np.dtype(np.float32), fn)
    if out.size == 0:
        return out
    n_h, n_w = x.shape[-3], x.shape[-2]
    xv = x.reshape(-1, n_h, n_w * 3) if x.flags.c_contiguous else _px._batched_input(x, 3, (n_h, n_w * 3))
    if out.flags.c_contiguous:
        ov, scratch = out.reshape(-1, oh, ow), False
    else:
        ov, scratch = _px._out_view(out, 3, (oh, ow))
    _gray_resize_u8(xv, ov, rows, yi, yw, xs, xw, not exact_scale_holds())
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


def _plan(fn, frame_shape, h, w, mode, antialias, crop, from_int):
    """Checked arguments and the resampling tables of one frame shape: ``(yi, yw, xs, xw, rows, oh, ow)``."""
    n_h, n_w, c = frame_shape
    if c != 3:
        raise ValueError(f"{fn} requires 3 channels at dim -1 of x, got {c}")
    if from_int not in (True, None):
        raise ValueError(f"{fn} requires from_int to be True, False or None, got {from_int!r}")
    h, w, antialias = _px._check_resize_args(fn, h, w, mode, antialias)
    if n_h == 0 or n_w == 0:
        raise ValueError(f"{fn} requires a non-empty image, got H={n_h}, W={n_w}")
    yi, _, yw = _px._axis_table(n_h, h, mode, antialias)
    _, xs, xw = _px._axis_table(n_w, w, mode, antialias)
    oh, ow = h, w
    if crop is not None:
        if not isinstance(crop, (tuple, list)) or len(crop) != 2:
            raise TypeError(f"{fn} requires crop to be a (height, width) pair, got {crop!r}")
        ch = _px._check_int(crop[0], fn, "crop height", 1)
        cw = _px._check_int(crop[1], fn, "crop width", 1)
        if ch > h or cw > w:
            raise ValueError(f"{fn} requires crop <= (h, w) = ({h}, {w}), got ({ch}, {cw})")
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        yi, yw = yi[top:top + ch], yw[top:top + ch]
        xs, xw = xs[left:left + cw], xw[left:left + cw]
        oh, ow = ch, cw
    rows = np.zeros(n_h, dtype=np.bool_)
    rows[yi.ravel()] = True
    rows.setflags(write=False)
    return yi, yw, xs, xw, rows, oh, ow
