"""Numba kernels for separable image resampling.

A resize is described per axis by tables built once by
:mod:`numbarl.core.pixels`: ``idx[o, k]`` (int32, the source index of tap
``k`` of output ``o``, clamped into the image) and ``wgt[o, k]`` (float32,
its weight). Every output has the same number of taps ``K``; unused taps
carry weight 0. Along the width the taps of output ``o`` are the contiguous
run ``start[o] + k`` (``start = idx[:, 0]``, uint32); the row buffer holds
``K - 1`` copies of its last value past the end, so a run may overhang the
right edge, where PyTorch repeats the edge pixel.

The kernels run the vertical pass first (one output row at a time, a sum of
whole source rows, which vectorises over the width) into a float32 row
buffer, then the horizontal pass from that buffer, with the sum for each
output taken tap by tap in order. Accumulation is float32. A uint8 output is
rounded half to even and clamped to [0, 255]: torchvision's tensor ``resize``
(which TorchRL's ``Resize`` calls) resizes a uint8 image in float32 and then
applies ``torch.round`` (half to even) and ``.to(torch.uint8)``.
"""
import numpy as np
from numba import njit, prange
from numbarl.core._pixel_kernels import F255


@njit(cache=True, nogil=True)
def _vpass(src, oy, yi, yw, tmp):
    """``tmp[:W] = sum_k yw[oy, k] * src[yi[oy, k], :]``; pad ``tmp`` past ``W``."""
    nw = src.shape[1]
    ky = yw.shape[1]
    row = src[yi[oy, 0]]
    wv = yw[oy, 0]
    for x in range(nw):
        tmp[x] = wv * np.float32(row[x])
    for k in range(1, ky):
        row = src[yi[oy, k]]
        wv = yw[oy, k]
        for x in range(nw):
            tmp[x] += wv * np.float32(row[x])
    edge = tmp[nw - 1]
    for x in range(nw, tmp.shape[0]):
        tmp[x] = edge


@njit(cache=True, nogil=True)
def _hpass(tmp, drow, xs, xw):
    """``drow[o] = sum_k xw[o, k] * tmp[xs[o] + k]``, summed in tap order.

    Tap counts up to 4 are unrolled (same order of operations).
    """
    ow = drow.shape[0]
    kx = xw.shape[1]
    if kx == 1:
        for ox in range(ow):
            drow[ox] = xw[ox, 0] * tmp[xs[ox]]
    elif kx == 2:
        for ox in range(ow):
            s = xs[ox]
            w = xw[ox]
            drow[ox] = w[0] * tmp[s] + w[1] * tmp[s + 1]
    elif kx == 3:
        for ox in range(ow):
            s = xs[ox]
            w = xw[ox]
            drow[ox] = (w[0] * tmp[s] + w[1] * tmp[s + 1]) + w[2] * tmp[s + 2]
    elif kx == 4:
        for ox in range(ow):
            s = xs[ox]
            w = xw[ox]
            drow[ox] = ((w[0] * tmp[s] + w[1] * tmp[s + 1]) + w[2] * tmp[s + 2]) + w[3] * tmp[s + 3]
    else:
        for ox in range(ow):
            s = xs[ox]
            w = xw[ox]
            acc = w[0] * tmp[s]
            for k in range(1, kx):
                acc += w[k] * tmp[s + k]
            drow[ox] = acc


@njit(cache=True, nogil=True, inline="always")
def round_u8(v):
    """float32 ``v`` rounded half to even (as ``torch.round``) and clamped to [0, 255], as an int32."""
    if v <= 0.0:
        return np.int32(0)
    if v >= 255.0:
        return np.int32(255)
    f = np.floor(v)
    i = np.int32(f)
    d = v - f  # exact: v < 256 has at least 15 fraction bits
    if d > 0.5 or (d == 0.5 and (i & 1) == 1):
        i += 1
    return i


@njit(cache=True, nogil=True)
def _round_u8(orow, drow):
    """Round a float32 row into a uint8 row with :func:`round_u8`."""
    for i in range(drow.shape[0]):
        drow[i] = round_u8(orow[i])


@njit(cache=True, nogil=True)
def _resize_plane_f32(src, dst, yi, yw, xs, xw, tmp):
    """Resample one ``[H, W]`` plane into float32 ``dst`` ``[oh, ow]``.

    ``tmp`` is float32 scratch of length ``W + K - 1``.
    """
    for oy in range(dst.shape[0]):
        _vpass(src, oy, yi, yw, tmp)
        _hpass(tmp, dst[oy], xs, xw)


@njit(cache=True, nogil=True)
def _resize_plane_u8(src, dst, yi, yw, xs, xw, tmp, orow):
    """Resample one ``[H, W]`` plane into uint8 ``dst`` (``orow``: float32 ``[ow]``)."""
    for oy in range(dst.shape[0]):
        _vpass(src, oy, yi, yw, tmp)
        _hpass(tmp, orow, xs, xw)
        _round_u8(orow, dst[oy])


@njit(cache=True, nogil=True)
def _resize_planes(src, dst, yi, yw, xs, xw, to_u8):
    """Resample every plane of ``src`` ``[P, H, W]`` into ``dst`` ``[P, oh, ow]``.

    ``to_u8`` must be true exactly when ``dst`` is uint8.
    """
    tmp = np.empty(src.shape[2] + xw.shape[1] - 1, dtype=np.float32)
    if to_u8:
        orow = np.empty(dst.shape[2], dtype=np.float32)
        for p in range(src.shape[0]):
            _resize_plane_u8(src[p], dst[p], yi, yw, xs, xw, tmp, orow)
    else:
        for p in range(src.shape[0]):
            _resize_plane_f32(src[p], dst[p], yi, yw, xs, xw, tmp)


@njit(cache=True, nogil=True, parallel=True)
def _resize_planes_parallel(src, dst, yi, yw, xs, xw, to_u8):
    """:func:`_resize_planes` with the planes split over threads."""
    n = src.shape[2] + xw.shape[1] - 1
    if to_u8:
        for p in prange(src.shape[0]):
            tmp = np.empty(n, dtype=np.float32)
            orow = np.empty(dst.shape[2], dtype=np.float32)
            _resize_plane_u8(src[p], dst[p], yi, yw, xs, xw, tmp, orow)
    else:
        for p in prange(src.shape[0]):
            tmp = np.empty(n, dtype=np.float32)
            _resize_plane_f32(src[p], dst[p], yi, yw, xs, xw, tmp)


@njit(cache=True, nogil=True)
def _nearest_planes(src, dst, yi, xs):
    """Nearest-neighbour resampling: ``dst[p, i, j] = src[p, yi[i, 0], xs[j]]``."""
    oh, ow = dst.shape[1], dst.shape[2]
    for p in range(src.shape[0]):
        for i in range(oh):
            row = src[p, yi[i, 0]]
            drow = dst[p, i]
            for j in range(ow):
                drow[j] = row[xs[j]]


# v / 255 for a uint8 v without a division: HI is 1/255 cut to 16 significant
# bits, so float32(v) * HI is exact for every byte, and LO = float32(1/255 - HI);
# float32(v) * HI + float32(v) * LO then equals float32(v) / 255 for all 256
# bytes as long as the two products are not fused into one multiply-add
# (checked once per process by numbarl.core.pixels._exact_scale_holds).
SCALE_HI = (np.array(np.float32(1.0 / 255.0)).view(np.int32) & np.int32(~0xFF)).view(np.float32)[()]
SCALE_LO = np.float32(1.0 / 255.0 - float(SCALE_HI))
SCALE_NONE, SCALE_DIVIDE, SCALE_SPLIT = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _scaled(v, how):
    f = np.float32(v)
    if how == SCALE_DIVIDE:
        return f / F255
    if how == SCALE_SPLIT:
        return f * SCALE_HI + f * SCALE_LO
    return f


@njit(cache=True, nogil=True)
def scaled_bytes(out, how):
    """``out[v]`` = byte ``v`` scaled as :func:`_gray_rows` scales it (to check the split scaling)."""
    for v in range(256):
        out[v] = _scaled(np.uint8(v), how)


@njit(cache=True, nogil=True)
def _gray_rows(frame, g, rows, wr, wg, wb, how, trunc):
    """Float32 luma ``(wr * r + wg * g) + wb * b`` of the flagged rows of one frame.

    ``frame`` is ``[H, 3 * W]`` (RGB interleaved). Each channel is first
    scaled as ``how`` says: not at all, divided by 255, or (uint8 only) the
    division-free split, which gives the same float32 values. Either scaled
    form reproduces ``grayscale(to_tensor_image(frame))`` bit for bit. With
    ``trunc`` the luma is truncated to an integer, the value a uint8
    ``grayscale`` stores (kept in float32, which holds it exactly).
    """
    nh, nw = g.shape
    for h in range(nh):
        if rows[h]:
            src = frame[h]
            dst = g[h]
            for w in range(nw):
                r = _scaled(src[3 * w], how)
                gg = _scaled(src[3 * w + 1], how)
                b = _scaled(src[3 * w + 2], how)
                v = (wr * r + wg * gg) + wb * b
                dst[w] = np.float32(np.int32(v)) if trunc else v


@njit(cache=True, nogil=True)
def _gray_resize_frame(frame, out, rows, yi, yw, xs, xw, wr, wg, wb, how, to_u8, g, tmp, orow):
    """One frame of :func:`_gray_resize_frames`; ``g``, ``tmp`` and ``orow`` are float32 scratch."""
    _gray_rows(frame, g, rows, wr, wg, wb, how, to_u8)
    if to_u8:
        _resize_plane_u8(g, out, yi, yw, xs, xw, tmp, orow)
    else:
        _resize_plane_f32(g, out, yi, yw, xs, xw, tmp)


@njit(cache=True, nogil=True)
def _gray_resize_frames(x, dst, rows, yi, yw, xs, xw, wr, wg, wb, how, to_u8):
    """Fused luma + resample of ``x`` ``[B, H, 3 * W]`` into ``dst`` ``[B, oh, ow]``.

    ``dst`` is float32, or uint8 when ``to_u8`` (then ``how`` must be
    ``SCALE_NONE``): the luma is truncated as a uint8 ``grayscale`` and the
    resampled value rounded as a uint8 ``resize``.
    """
    nh, nw = x.shape[1], x.shape[2] // 3
    g = np.empty((nh, nw), dtype=np.float32)
    tmp = np.empty(nw + xw.shape[1] - 1, dtype=np.float32)
    orow = np.empty(dst.shape[2], dtype=np.float32)
    for b in range(x.shape[0]):
        _gray_resize_frame(x[b], dst[b], rows, yi, yw, xs, xw, wr, wg, wb, how, to_u8, g, tmp, orow)


@njit(cache=True, nogil=True, parallel=True)
def _gray_resize_frames_parallel(x, dst, rows, yi, yw, xs, xw, wr, wg, wb, how, to_u8):
    """:func:`_gray_resize_frames` with the frames split over threads."""
    nh, nw = x.shape[1], x.shape[2] // 3
    for b in prange(x.shape[0]):
        g = np.empty((nh, nw), dtype=np.float32)
        tmp = np.empty(nw + xw.shape[1] - 1, dtype=np.float32)
        orow = np.empty(dst.shape[2], dtype=np.float32)
        _gray_resize_frame(x[b], dst[b], rows, yi, yw, xs, xw, wr, wg, wb, how, to_u8, g, tmp, orow)
