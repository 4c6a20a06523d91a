"""Per-step kernels of the episode transforms (step counters, running returns).

Each public function checks its arrays cheaply (shapes and dtypes, no data
pass) and calls one fused Numba kernel, so a transform pays one call per key
and step instead of one NumPy call per operation. The arrays are small (one
entry per sub-env) and updated in place.

Examples:
    >>> import numpy as np
    >>> count = np.array([[3], [9]])
    >>> done = np.array([[False], [False]])
    >>> done_out, trunc_out = np.empty_like(done), np.empty_like(done)
    >>> count_steps(count, done, None, 10, True, done_out, trunc_out)
    >>> count[:, 0], done_out[:, 0], trunc_out[:, 0]
    (array([ 4, 10]), array([False,  True]), array([False,  True]))
"""
import numpy as np
from numba import njit

__all__ = ["count_steps", "add_into"]


@njit(cache=True, nogil=True)
def _count_steps(count, done, truncated, has_truncated, max_steps, update_done, done_out, trunc_out):
    n = count.size
    for i in range(n):
        c = count.flat[i] + 1
        count.flat[i] = c
        cut = c >= max_steps
        if update_done:
            done_out.flat[i] = done.flat[i] or cut
        if has_truncated:
            cut = cut or truncated.flat[i]
        trunc_out.flat[i] = cut


@njit(cache=True, nogil=True)
def _increment(count):
    for i in range(count.size):
        count.flat[i] += 1


@njit(cache=True, nogil=True)
def _add_into(total, value):
    for i in range(total.size):
        total.flat[i] += value.flat[i]


_INT64 = np.dtype(np.int64)
_BOOL = np.dtype(np.bool_)


def _check(name, array, shape, dtype=None):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {array.dtype}")


def _flags_ok(shape, *arrays):
    """True when every array is a bool ndarray of ``shape`` (one cheap pass, no messages)."""
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype is not _BOOL or a.shape != shape:
            return False
    return True


def count_steps(count, done=None, truncated=None, max_steps=None, update_done=True, done_out=None, trunc_out=None):
    """Add one to every step count; with ``max_steps``, also write the truncation and done flags.

    ``trunc_out = (count >= max_steps) | truncated`` and, when ``update_done``,
    ``done_out = done | (count >= max_steps)``, after the increment.

    Args:
        count: int64 array of counts, updated in place.
        done: bool array of ``count``'s shape (needed with ``max_steps``).
        truncated: bool array of ``count``'s shape, or None (no truncation from the env).
        max_steps: int >= 1, or None to only count.
        update_done: write ``done_out``.
        done_out, trunc_out: bool arrays of ``count``'s shape to write into.

    Raises:
        TypeError: an argument that is not a NumPy array of the right dtype.
        ValueError: arrays of different shapes.
    """
    if type(count) is not np.ndarray or count.dtype is not _INT64:
        _check("count", count, getattr(count, "shape", None), np.int64)
    if max_steps is None:
        _increment(count)
        return
    shape = count.shape
    if not update_done:
        done_out = trunc_out
    has_truncated = truncated is not None
    if not has_truncated:
        truncated = done
    if not _flags_ok(shape, done, truncated, done_out, trunc_out):  # the slow checks, for the message
        for name, a in (("done", done), ("truncated", truncated), ("done_out", done_out), ("trunc_out", trunc_out)):
            _check(name, a, shape, np.bool_)
    _count_steps(count, done, truncated, has_truncated, max_steps, update_done, done_out, trunc_out)


def add_into(total, value):
    """``total += value`` in place, element by element in ``total``'s dtype (same shape).

    Raises:
        TypeError: not NumPy arrays.
        ValueError: different shapes.

    Examples:
        >>> total = np.zeros(2, dtype=np.float32)
        >>> add_into(total, np.array([0.5, 1.5], dtype=np.float32))
        >>> total
        array([0.5, 1.5], dtype=float32)
    """
    if type(total) is not np.ndarray or type(value) is not np.ndarray or value.shape != total.shape:
        _check("total", total, getattr(total, "shape", None))
        _check("value", value, total.shape)
    _add_into(total, value)
