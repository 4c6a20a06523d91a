"""Numba kernels for pixel layout, colour and crop operations.

Every kernel takes arrays and scalars only and writes into a preallocated
output. Batch dimensions are merged into one leading axis by the wrappers in
:mod:`numbarl.core.pixels`; the kernels see ``[B, ...]`` arrays.

Arithmetic follows the order and precision of the PyTorch expressions that
TorchRL evaluates, so that float32 results are bit-identical:

* ``x.div(255)`` is a float32 division (not a multiplication by 1/255);
* grayscale is ``(0.2989 * r + 0.587 * g) + 0.114 * b`` with float32 products
  and sums, and a uint8 result is the truncation of that float32 sum.
"""
import numpy as np
from numba import njit, prange

GRAY_R = np.float32(0.2989)
GRAY_G = np.float32(0.587)
GRAY_B = np.float32(0.114)
F255 = np.float32(255.0)


@njit(cache=True, nogil=True)
def _hwc_to_chw(x, out, scale):
    """``out[b, c, h, w] = x[b, h, w * C + c]`` (divided by 255 in float32 if ``scale``).

    ``x`` is ``[B, H, W * C]`` (HWC images with the last two axes merged),
    uint8 or float32; ``out`` is ``[B, C, H, W]`` float32 or float64. The
    value is formed in float32 and then cast to the output dtype. Three
    channels (RGB) are written in one sweep over the pixels.
    """
    nb, nh = x.shape[0], x.shape[1]
    nc, nw = out.shape[1], out.shape[3]
    for b in range(nb):
        if nc == 3:
            for h in range(nh):
                src = x[b, h]
                d0 = out[b, 0, h]
                d1 = out[b, 1, h]
                d2 = out[b, 2, h]
                if scale:
                    for w in range(nw):
                        d0[w] = np.float32(src[3 * w]) / F255
                        d1[w] = np.float32(src[3 * w + 1]) / F255
                        d2[w] = np.float32(src[3 * w + 2]) / F255
                else:
                    for w in range(nw):
                        d0[w] = np.float32(src[3 * w])
                        d1[w] = np.float32(src[3 * w + 1])
                        d2[w] = np.float32(src[3 * w + 2])
            continue
        for c in range(nc):
            for h in range(nh):
                src = x[b, h]
                dst = out[b, c, h]
                if scale:
                    for w in range(nw):
                        dst[w] = np.float32(src[w * nc + c]) / F255
                else:
                    for w in range(nw):
                        dst[w] = np.float32(src[w * nc + c])


@njit(cache=True, nogil=True, parallel=True)
def _hwc_to_chw_parallel(x, out, scale):
    """:func:`_hwc_to_chw` with the batch split over threads."""
    for b in prange(x.shape[0]):
        _hwc_to_chw(x[b : b + 1], out[b : b + 1], scale)


@njit(cache=True, nogil=True)
def _gray_planes_f32(x, out):
    """ITU-R 601 luma of ``x`` ``[B, 3, N]`` float32 into ``out`` ``[B, N]``."""
    for b in range(x.shape[0]):
        r = x[b, 0]
        g = x[b, 1]
        bl = x[b, 2]
        dst = out[b]
        for i in range(dst.shape[0]):
            dst[i] = (GRAY_R * r[i] + GRAY_G * g[i]) + GRAY_B * bl[i]


@njit(cache=True, nogil=True)
def _gray_planes_u8(x, out):
    """Luma of uint8 ``x`` ``[B, 3, N]`` into ``out`` ``[B, N]``, truncated to uint8."""
    for b in range(x.shape[0]):
        r = x[b, 0]
        g = x[b, 1]
        bl = x[b, 2]
        dst = out[b]
        for i in range(dst.shape[0]):
            v = (GRAY_R * np.float32(r[i]) + GRAY_G * np.float32(g[i])) + GRAY_B * np.float32(bl[i])
            dst[i] = np.uint8(np.int32(v))


@njit(cache=True, nogil=True)
def _crop_planes(x, out, top, left):
    """``out[p, i, j] = x[p, top + i, left + j]``, zero where outside ``x``.

    ``x`` is ``[P, H, W]``, ``out`` is ``[P, h, w]``. ``top`` and ``left`` may
    be negative and the window may reach past the bottom or right edge;
    those pixels are set to zero.
    """
    nh, nw = x.shape[1], x.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    # columns of the output that read inside x: [j0, j1)
    j0 = min(max(-left, 0), ow)
    j1 = max(min(nw - left, ow), j0)
    n = j1 - j0
    for p in range(x.shape[0]):
        for i in range(oh):
            dst = out[p, i]
            r = top + i
            if r < 0 or r >= nh:
                for j in range(ow):
                    dst[j] = 0
                continue
            src = x[p, r][left + j0 : left + j1]
            inside = dst[j0:j1]
            for j in range(j0):
                dst[j] = 0
            for j in range(n):
                inside[j] = src[j]
            for j in range(j1, ow):
                dst[j] = 0


@njit(cache=True, nogil=True)
def _deinterleave(x, out):
    """``out[b, s, r] = x[b, r * S + s]`` for ``S = out.shape[1]`` of 3 or 4."""
    ns = out.shape[1]
    for b in range(x.shape[0]):
        src = x[b]
        d0 = out[b, 0]
        d1 = out[b, 1]
        d2 = out[b, 2]
        if ns == 3:
            for r in range(d0.shape[0]):
                d0[r] = src[3 * r]
                d1[r] = src[3 * r + 1]
                d2[r] = src[3 * r + 2]
        else:
            d3 = out[b, 3]
            for r in range(d0.shape[0]):
                d0[r] = src[4 * r]
                d1[r] = src[4 * r + 1]
                d2[r] = src[4 * r + 2]
                d3[r] = src[4 * r + 3]


@njit(cache=True, nogil=True)
def _interleave(x, out):
    """``out[b, s * R + r] = x[b, r, s]`` for ``R = x.shape[1]`` of 3 or 4."""
    nr = x.shape[1]
    for b in range(x.shape[0]):
        dst = out[b]
        s0 = x[b, 0]
        s1 = x[b, 1]
        s2 = x[b, 2]
        if nr == 3:
            for s in range(s0.shape[0]):
                dst[3 * s] = s0[s]
                dst[3 * s + 1] = s1[s]
                dst[3 * s + 2] = s2[s]
        else:
            s3 = x[b, 3]
            for s in range(s0.shape[0]):
                dst[4 * s] = s0[s]
                dst[4 * s + 1] = s1[s]
                dst[4 * s + 2] = s2[s]
                dst[4 * s + 3] = s3[s]


@njit(cache=True, nogil=True)
def _permute_copy(x, out, shape, strides):
    """Copy every row of ``x`` ``[B, n]`` into ``out`` ``[B, n]`` in a new order.

    The output row is read in C order over ``shape`` (the permuted core
    shape); ``strides`` holds, for each output axis, the element stride of
    that axis in the input row. An odometer over the outer axes carries the
    input offset, and the last axis is a strided copy.
    """
    nb = x.shape[0]
    k = shape.shape[0]
    inner = shape[k - 1]
    inner_stride = strides[k - 1]
    n = out.shape[1]
    counter = np.zeros(k, dtype=np.int64)
    for b in range(nb):
        xb = x[b]
        ob = out[b]
        counter[:] = 0
        src = 0
        dst = 0
        while dst < n:
            s = xb[src:]
            d = ob[dst : dst + inner]
            for i in range(inner):
                d[i] = s[i * inner_stride]
            dst += inner
            # advance the odometer over the outer axes
            ax = k - 2
            while ax >= 0:
                counter[ax] += 1
                src += strides[ax]
                if counter[ax] < shape[ax]:
                    break
                src -= strides[ax] * shape[ax]
                counter[ax] = 0
                ax -= 1
