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
rounded half up and clamped to [0, 255].
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


@njit(cache=True, nogil=True)
def _round_u8(orow, drow):
    """Round half up and clamp a float32 row into a uint8 row."""
    for i in range(drow.shape[0]):
        v = orow[i]
        if v <= 0.0:
            drow[i] = 0
        elif v >= 255.0:
            drow[i] = 255
        else:
            drow[i] = np.int32(v + np.float32(0.5))


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


@njit(cache=True, nogil=True)
def _gray_rows(frame, g, rows, wr, wg, wb, div255):
    """Float32 luma ``(wr * r + wg * g) + wb * b`` of the flagged rows of one frame.

    ``frame`` is ``[H, 3 * W]`` (RGB interleaved). With ``div255`` each
    channel is first divided by 255 in float32, which reproduces
    ``grayscale(to_tensor_image(frame))`` bit for bit; without it the caller
    may fold the 1/255 into the weights (three multiplications instead of
    three divisions, within 2e-7 of the divided values).
    """
    nh, nw = g.shape
    for h in range(nh):
        if rows[h]:
            src = frame[h]
            dst = g[h]
            if div255:
                for w in range(nw):
                    r = np.float32(src[3 * w]) / F255
                    gg = np.float32(src[3 * w + 1]) / F255
                    b = np.float32(src[3 * w + 2]) / F255
                    dst[w] = (wr * r + wg * gg) + wb * b
            else:
                for w in range(nw):
                    r = np.float32(src[3 * w])
                    gg = np.float32(src[3 * w + 1])
                    b = np.float32(src[3 * w + 2])
                    dst[w] = (wr * r + wg * gg) + wb * b


@njit(cache=True, nogil=True)
def _gray_resize_frames(x, dst, rows, yi, yw, xs, xw, wr, wg, wb, div255):
    """Fused luma + resample of ``x`` ``[B, H, 3 * W]`` into float32 ``dst`` ``[B, oh, ow]``."""
    nh, nw = x.shape[1], x.shape[2] // 3
    g = np.empty((nh, nw), dtype=np.float32)
    tmp = np.empty(nw + xw.shape[1] - 1, dtype=np.float32)
    for b in range(x.shape[0]):
        _gray_rows(x[b], g, rows, wr, wg, wb, div255)
        _resize_plane_f32(g, dst[b], yi, yw, xs, xw, tmp)


@njit(cache=True, nogil=True, parallel=True)
def _gray_resize_frames_parallel(x, dst, rows, yi, yw, xs, xw, wr, wg, wb, div255):
    """:func:`_gray_resize_frames` with the frames split over threads."""
    nh, nw = x.shape[1], x.shape[2] // 3
    for b in prange(x.shape[0]):
        g = np.empty((nh, nw), dtype=np.float32)
        tmp = np.empty(nw + xw.shape[1] - 1, dtype=np.float32)
        _gray_rows(x[b], g, rows, wr, wg, wb, div255)
        _resize_plane_f32(g, dst[b], yi, yw, xs, xw, tmp)
