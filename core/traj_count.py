"""Trajectory ids: hand out consecutive ids to the sub-envs a reset starts.

``TrajCounter`` keeps one counter (possibly in a shared-memory block, so
that several processes draw from it) and, at each reset, gives the next
``n`` values to the ``n`` entries being reset, in C order; the entries not
reset keep their id. :func:`reset_count` says how many ids a reset takes,
:func:`assign_ids` writes them (one pass, no allocation).

Examples:
    >>> import numpy as np
    >>> ids = np.array([[4], [5], [6]])
    >>> mask = np.array([True, False, True])
    >>> reset_count(ids, mask)
    2
    >>> assign_ids(ids, mask, 10)
    >>> ids[:, 0]
    array([10,  5, 11])
    >>> assign_ids(ids, None, 0)
    >>> ids[:, 0]
    array([0, 1, 2])
"""
import numpy as np
from numba import njit

__all__ = ["reset_count", "assign_ids"]


@njit(cache=True, nogil=True)
def _assign_ids(ids, mask, start):
    # ids: (B, K) int64, mask: (B,) bool
    nxt = start
    for b in range(ids.shape[0]):
        if mask[b]:
            for k in range(ids.shape[1]):
                ids[b, k] = nxt
                nxt += 1


@njit(cache=True, nogil=True)
def _assign_all(ids, start):
    for i in range(ids.size):
        ids.flat[i] = start + i


def _check_ids(ids):
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"ids must be a numpy.ndarray, got {type(ids).__name__}")
    if ids.dtype != np.int64:
        raise TypeError(f"ids must have dtype int64, got {ids.dtype}")


def _rows(ids, mask):
    """``mask`` flattened to (B,) and ``ids`` viewed as (B, K), B the size of ``mask``."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a bool numpy.ndarray or None, got {getattr(mask, 'dtype', type(mask).__name__)}")
    rows = mask.size
    if rows == 0 or ids.size % rows or ids.shape[:mask.ndim] != mask.shape:
        raise ValueError(f"mask of shape {mask.shape} must match the leading dims of ids, of shape {ids.shape}")
    return ids.reshape(rows, ids.size // rows), mask.reshape(rows)


def reset_count(ids: np.ndarray, mask) -> int:
    """How many ids a reset of the rows of ``ids`` where ``mask`` holds takes (``mask`` None: all of them)."""
    _check_ids(ids)
    if mask is None:
        return int(ids.size)
    rows, flat = _rows(ids, mask)
    return int(np.count_nonzero(flat)) * rows.shape[1]


def assign_ids(ids: np.ndarray, mask, start: int) -> None:
    """Write ``start, start + 1, ...`` into the entries of ``ids`` where ``mask`` holds, in C order (in place).

    Args:
        ids: int64 array, C-contiguous; its leading dims are the batch.
        mask: bool array of the batch shape, or None for every entry.
        start: the first id.

    Raises:
        TypeError: ``ids`` not an int64 array or ``mask`` not a bool array.
        ValueError: ``ids`` not C-contiguous, or ``mask`` not of its leading shape.
    """
    _check_ids(ids)
    if not ids.flags.c_contiguous:
        raise ValueError("ids must be C-contiguous")
    if mask is None:
        _assign_all(ids, int(start))
        return
    rows, flat = _rows(ids, mask)
    _assign_ids(rows, flat, int(start))
