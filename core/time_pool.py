"""Max pooling over time for TimeMaxPool: the last ``T`` observations of each sub-environment and their maximum.

State is one array that the caller owns and hands in on every call:

* ``buffer`` ``[T, *batch, *obs]``: the last ``T`` observations of every
  sub-environment, slot 0 the newest. Slots not yet filled since the last
  reset hold 0, so they take part in the maximum as zeros (TorchRL 0.14.1's
  ``TimeMaxPool`` keeps the same layout and the same zeros, so its buffers
  and these are interchangeable).

:func:`time_pool_push` ages the history by one step, writes the new
observation in slot 0 and gives the elementwise maximum over the ``T``
slots; :func:`time_pool_reset` empties the history of the sub-environments a
mask selects before writing their reset observation. Both update only the
masked sub-environments (all of them without a mask) and write 0 in the
output rows of the others, as TorchRL does on a partial reset.

The maximum propagates NaN (a NaN among the last ``T`` observations gives
NaN), as ``torch.max`` does. The kernels take bool, integer, float32 and
float64 arrays; other dtypes (float16) raise TypeError.

Examples:
    >>> buffer = time_pool_state(3, (2,))
    >>> time_pool_reset(buffer, np.array([1.0, -2.0]))
    array([1., 0.])
    >>> time_pool_push(buffer, np.array([-1.0, -3.0]))
    array([1., 0.])
    >>> buffer[:, 1]
    array([-3., -2.,  0.])
"""
import math

import numpy as np

from numbarl.core import _time_pool_kernels as _tk
from numbarl.core._checks import check_int
from numbarl.core.pixels import _view

__all__ = ["time_pool_state", "time_pool_push", "time_pool_reset"]

_DTYPES = frozenset(np.dtype(d) for d in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                          np.uint32, np.uint64, np.float32, np.float64))
_EVERY = np.ones(1, dtype=np.bool_)  # the mask of "every sub-env" (one row: the whole frame)


def _check_array(a, fn, name):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn} requires {name} to be a numpy.ndarray, got {type(a).__name__}")


def time_pool_state(T, obs_shape, dtype=np.float64):
    """A zero-filled history ``[T, *obs_shape]`` (``obs_shape`` includes the batch dims).

    Args:
        T: number of observations kept, an int >= 1.
        obs_shape: shape of one step's observations (batch dims first).
        dtype: their dtype.

    Raises:
        TypeError: ``T`` not an int. ValueError: ``T < 1``.

    Examples:
        >>> time_pool_state(4, (2, 3), np.uint8).shape
        (4, 2, 3)
    """
    T = check_int(T, "time_pool_state", "T", minimum=1)
    return np.zeros((T,) + tuple(obs_shape), dtype=dtype)


def _run(fn, buffer, frame, mask, out, clear):
    _check_array(buffer, fn, "buffer")
    _check_array(frame, fn, "frame")
    if buffer.ndim < 1 or buffer.shape[0] < 1:
        raise ValueError(f"{fn} requires buffer of shape [T, *obs] with T >= 1, got {buffer.shape}")
    if buffer.dtype not in _DTYPES:
        raise TypeError(f"{fn} takes bool, integer, float32 and float64 arrays, got {buffer.dtype}")
    if frame.shape != buffer.shape[1:]:
        raise ValueError(f"{fn} requires frame of shape {buffer.shape[1:]} (the buffer without its T axis), "
                         f"got {frame.shape}")
    if frame.dtype != buffer.dtype:
        raise TypeError(f"{fn} requires frame of the buffer's dtype {buffer.dtype}, got {frame.dtype}")
    if not buffer.flags.writeable:
        raise ValueError(f"{fn} requires a writeable buffer")
    if np.may_share_memory(frame, buffer):
        raise ValueError(f"{fn} requires frame not to overlap buffer")
    if mask is None:
        nbd = 0
        mask1 = _EVERY
    else:
        if isinstance(mask, (bool, np.bool_)):
            mask = np.array(mask)
        _check_array(mask, fn, "mask")
        if mask.dtype != np.bool_:
            raise TypeError(f"{fn} requires mask of dtype bool, got {mask.dtype}")
        nbd = mask.ndim
        if mask.shape != frame.shape[:nbd]:
            raise ValueError(f"{fn} requires mask of the batch shape (the leading dims of frame, "
                             f"{frame.shape}), got {mask.shape}")
        mask1 = mask.reshape(-1)
    if out is None:
        out = np.empty(frame.shape, dtype=frame.dtype)
    else:
        _check_array(out, fn, "out")
        if out.shape != frame.shape:
            raise ValueError(f"{fn} requires out of shape {frame.shape}, got {out.shape}")
        if out.dtype != frame.dtype:
            raise TypeError(f"{fn} requires out of dtype {frame.dtype}, got {out.dtype}")
        if not out.flags.writeable:
            raise ValueError(f"{fn} requires a writeable out")
        if np.may_share_memory(out, buffer):
            raise ValueError(f"{fn} requires out not to overlap buffer")
    if frame.size == 0:
        return out
    nb = math.prod(frame.shape[:nbd])
    nl = frame.size // nb
    # C-contiguous arrays (the common case) reshape to views directly; others are checked by _view
    buf3 = buffer.reshape(buffer.shape[0], nb, nl) if buffer.flags.c_contiguous else \
        _view(buffer, (buffer.shape[0], nb, nl))
    if buf3 is None:
        raise ValueError(f"{fn} requires a buffer viewable as [T, B, L] without a copy (e.g. C-contiguous)")
    frame2 = frame.reshape(nb, nl) if frame.flags.c_contiguous else np.ascontiguousarray(frame).reshape(nb, nl)
    out2 = out.reshape(nb, nl) if out.flags.c_contiguous else _view(out, (nb, nl))
    scratch = out2 is None
    if scratch:
        out2 = np.empty((nb, nl), dtype=out.dtype)
    _tk._push(buf3, frame2, mask1, clear, out2)
    if scratch:
        out[...] = out2.reshape(out.shape)
    return out


def time_pool_push(buffer, frame, out=None, mask=None):
    """Add ``frame`` to the history and return the maximum over the last ``T`` observations.

    Each selected sub-environment's slots move back one place (the oldest
    is dropped), ``frame`` goes in slot 0, and ``out`` gets the elementwise
    maximum over the ``T`` slots.

    Args:
        buffer: ``[T, *obs]`` history (updated in place), slot 0 the newest.
        frame: ``[*obs]`` new observations, of the buffer's dtype.
        out: optional ``[*obs]`` output array.
        mask: optional bool array of the batch shape (the leading dims of
            ``frame``): only those sub-environments are updated; the other
            rows of ``out`` become 0. ``None``: every sub-environment.

    Returns:
        The maximum (``out`` when given).

    Raises:
        TypeError: non-array arguments, dtype mismatch, an unsupported dtype, a non-bool mask.
        ValueError: inconsistent shapes, overlapping arrays.

    Examples:
        >>> buffer = time_pool_state(2, (2, 1), np.int64)
        >>> time_pool_push(buffer, np.array([[3], [-1]]))
        array([[3],
               [0]])
        >>> time_pool_push(buffer, np.array([[1], [5]]), mask=np.array([False, True]))
        array([[0],
               [5]])
    """
    return _run("time_pool_push", buffer, frame, mask, out, False)


def time_pool_reset(buffer, frame, out=None, mask=None):
    """Restart the history of the selected sub-environments with ``frame``; return the maximum there.

    The selected sub-environments' slots become 0 and ``frame`` goes in
    slot 0, so ``out`` there is ``max(frame, 0)`` (``frame`` itself when
    ``T == 1``). The other sub-environments keep their history and get 0
    in ``out``, as TorchRL's ``TimeMaxPool`` gives on a partial reset.

    Args:
        buffer, frame, out, mask: as :func:`time_pool_push`.

    Returns:
        The maximum (``out`` when given).

    Raises:
        TypeError, ValueError: as :func:`time_pool_push`.

    Examples:
        >>> buffer = time_pool_state(2, (2,))
        >>> _ = time_pool_push(buffer, np.array([4.0, 5.0]))
        >>> time_pool_reset(buffer, np.array([-1.0, 7.0]), mask=np.array([True, False]))
        array([0., 0.])
        >>> buffer
        array([[-1.,  5.],
               [ 0.,  0.]])
    """
    return _run("time_pool_reset", buffer, frame, mask, out, True)
