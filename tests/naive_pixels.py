"""Slow, obvious references for the image and frame-stacking kernels.

Each function follows the written definition with plain loops or basic NumPy
calls; none shares code with ``numbarl.core``.
"""
import collections

import numpy as np


def to_tensor_image(x, scale=True):
    """``[..., H, W, C] -> [..., C, H, W]``, divided by 255 in float32."""
    out = np.empty(x.shape[:-3] + (x.shape[-1], x.shape[-3], x.shape[-2]), dtype=np.float32)
    for c in range(x.shape[-1]):
        v = x[..., c].astype(np.float32)
        out[..., c, :, :] = v / np.float32(255) if scale else v
    return out


def grayscale(x):
    """``(0.2989 r + 0.587 g) + 0.114 b`` in float32; uint8 input truncated."""
    f = x.astype(np.float32)
    r, g, b = f[..., 0, :, :], f[..., 1, :, :], f[..., 2, :, :]
    y = (np.float32(0.2989) * r + np.float32(0.587) * g) + np.float32(0.114) * b
    if x.dtype == np.uint8:
        y = np.trunc(y).astype(np.uint8)
    return y[..., None, :, :]


def _linear_weights(n_in, n_out):
    """Dense ``[n_out, n_in]`` weights of align_corners=False linear interpolation."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = min(src - i0, 1.0)
        m[o, i0] += 1.0 - lam
        m[o, i1] += lam
    return m


def _antialias_weights(n_in, n_out):
    """Dense weights of the triangle filter, widened by the scale when shrinking."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    support = max(scale, 1.0)
    for o in range(n_out):
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        for i in range(lo, hi):
            d = (i + 0.5 - center) / support
            m[o, i] = max(0.0, 1.0 - abs(d))
        total = m[o].sum()
        if total > 0:
            m[o] /= total
    return m


def _nearest_weights(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = np.float32(o) * (np.float32(n_in) / np.float32(n_out))  # float32, as PyTorch
        m[o, min(int(np.floor(src)), n_in - 1)] = 1.0
    return m


def resize(x, h, w, mode="bilinear", antialias=False):
    """Resize ``[..., H, W]`` in float64 by dense per-axis weight matrices."""
    if mode == "nearest":
        wy, wx = _nearest_weights(x.shape[-2], h), _nearest_weights(x.shape[-1], w)
    elif antialias:
        wy, wx = _antialias_weights(x.shape[-2], h), _antialias_weights(x.shape[-1], w)
    else:
        wy, wx = _linear_weights(x.shape[-2], h), _linear_weights(x.shape[-1], w)
    return np.einsum("oh,...hw,pw->...op", wy, x.astype(np.float64), wx)


def crop(x, top, left, h, w):
    """Window at ``(top, left)``, zero outside the image, by explicit loops."""
    out = np.zeros(x.shape[:-2] + (h, w), dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            r, c = top + i, left + j
            if 0 <= r < x.shape[-2] and 0 <= c < x.shape[-1]:
                out[..., i, j] = x[..., r, c]
    return out


def center_crop(x, h, w):
    """torchvision's recipe: zero-pad to at least ``(h, w)``, then crop the centre."""
    n_h, n_w = x.shape[-2:]
    if h > n_h or w > n_w:
        pads = [(0, 0)] * (x.ndim - 2)
        pads.append(((h - n_h) // 2, (h - n_h + 1) // 2) if h > n_h else (0, 0))
        pads.append(((w - n_w) // 2, (w - n_w + 1) // 2) if w > n_w else (0, 0))
        x = np.pad(x, pads)
        n_h, n_w = x.shape[-2:]
    top = int(round((n_h - h) / 2.0))
    left = int(round((n_w - w) / 2.0))
    return x[..., top : top + h, left : left + w].copy()


def permute_last(x, dims):
    k = len(dims)
    lead = list(range(x.ndim - k))
    return np.ascontiguousarray(np.transpose(x, lead + [x.ndim - k + (d % k) for d in dims]))


class CatFramesOnline:
    """Per-environment deque of the last ``N`` frames, reset as TorchRL does."""

    def __init__(self, n, padding="same", padding_value=0.0):
        self.n, self.padding, self.padding_value = n, padding, padding_value
        self.hist = {}

    def reset(self, env, frame):
        if self.padding == "same":
            pad = [frame.copy() for _ in range(self.n - 1)]
        else:
            pad = [np.full_like(frame, self.padding_value) for _ in range(self.n - 1)]
        self.hist[env] = collections.deque(pad + [frame.copy()], maxlen=self.n)

    def push(self, env, frame):
        self.hist[env].append(frame.copy())

    def stack(self, env, axis=None):
        frames = list(self.hist[env])
        if axis is None:
            return np.stack(frames)
        return np.concatenate(frames, axis=axis)


def stack_offline(x, done, n, axis=None, padding="same", padding_value=0.0, initial=None):
    """Offline windows over ``[B, T, *frame]`` with episodes split after each done."""
    nb, nt = x.shape[:2]
    out = []
    for b in range(nb):
        rows = []
        for t in range(nt):
            u = t
            while u > 0 and not done[b, u - 1]:
                u -= 1
            seq = list(x[b, u : t + 1])
            if initial is not None:
                seq = [initial[b, u]] + seq
            first = seq[0]
            while len(seq) < n:
                seq.insert(0, first.copy() if padding == "same" else np.full_like(first, padding_value))
            seq = seq[-n:]
            rows.append(np.stack(seq) if axis is None else np.concatenate(seq, axis=axis))
        out.append(np.stack(rows))
    return np.stack(out)
