"""Kernels of the reward-shaping transforms: weighted sums of vector rewards and target returns.

- :func:`linearise`: ``out[..., 0] = sum_j weights[j] * reward[..., j]`` (all
  weights 1 when ``weights`` is None), the multi-objective to single-objective
  reduction of ``LineariseRewards``. Each sum is accumulated in float64 and
  rounded once into ``out``'s dtype; a product of two float32 numbers is exact
  in float64, so a float32 result is the correctly rounded sum whenever the
  float64 sum is exact (few terms of similar size), and never worse than the
  float32 product-then-sum TorchRL computes.
- :func:`target_return_step`: one step of ``TargetReturn``:
  ``out = target - reward`` (mode "reduce") or ``out = target`` (mode
  "constant"), in the precision NumPy's scalar rules give (float32 only
  when both inputs are float32, as torch), written into ``out`` (which may
  be ``target`` itself).
- :func:`target_return_reset`: the reset of ``TargetReturn``: ``out`` holds
  ``value`` where ``mask`` (the leading dims of ``target``) is set and
  ``target`` elsewhere; ``value`` everywhere when ``mask`` or ``target`` is None.

Each public function checks shapes and dtypes (no data pass) and calls one
Numba kernel; outputs are preallocated by the caller.

Examples:
    >>> import numpy as np
    >>> reward = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    >>> out = np.empty((2, 1), dtype=np.float32)
    >>> linearise(reward, np.array([1.0, 0.5], dtype=np.float32), out)
    >>> out[:, 0]
    array([2. , 2.5], dtype=float32)
    >>> target = np.full((2, 1), 10.0, dtype=np.float32)
    >>> target_return_step(target, out, target, reduce=True)
    >>> target[:, 0]
    array([8. , 7.5], dtype=float32)
    >>> target_return_reset(target, np.array([False, True]), 10.0, target)
    >>> target[:, 0]
    array([ 8., 10.], dtype=float32)
"""
import numpy as np
from numba import njit

__all__ = ["linearise", "target_return_step", "target_return_reset", "FLOAT_DTYPES"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@njit(cache=True, nogil=True)
def _linearise(reward, weights, out):
    n, k = reward.shape
    for i in range(n):
        acc = 0.0
        for j in range(k):
            acc += np.float64(weights[j]) * np.float64(reward[i, j])
        out[i] = acc


@njit(cache=True, nogil=True)
def _sum_last(reward, out):
    n, k = reward.shape
    for i in range(n):
        acc = 0.0
        for j in range(k):
            acc += np.float64(reward[i, j])
        out[i] = acc


@njit(cache=True, nogil=True)
def _subtract(target, reward, out):
    for i in range(out.size):
        out.flat[i] = target.flat[i] - reward.flat[i]


@njit(cache=True, nogil=True)
def _copy(target, out):
    for i in range(out.size):
        out.flat[i] = target.flat[i]


@njit(cache=True, nogil=True)
def _reset_rows(target, mask, value, out):
    n, m = out.shape
    for i in range(n):
        if mask[i]:
            for j in range(m):
                out[i, j] = value
        else:
            for j in range(m):
                out[i, j] = target[i, j]


def _check_array(name, a, owner):
    if type(a) is not np.ndarray:
        raise TypeError(f"{owner} requires {name} to be a numpy.ndarray, got {type(a).__name__}")


def _check_float(name, a, owner):
    _check_array(name, a, owner)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner} requires {name} to be float32 or float64, got {a.dtype}")


def _rows(name, out, shape, owner):
    """``out`` (C-contiguous, of ``shape``) as a view with one row per leading index."""
    if out.shape != shape:
        raise ValueError(f"{owner} requires {name} of shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{owner} requires {name} to be C-contiguous (it is written through a view)")
    return out


def linearise(reward, weights, out) -> None:
    """Write the weighted sum over the last dim of ``reward`` into ``out`` (shape ``reward.shape[:-1] + (1,)``).

    Args:
        reward: float32 or float64 array of shape ``(..., k)``.
        weights: float32 or float64 array of ``k`` entries (any shape of that
            size, e.g. 0-dim for ``k == 1``), or None for all ones.
        out: float32 or float64 C-contiguous array of shape ``(..., 1)``, written.

    Raises:
        TypeError: not NumPy arrays, or a dtype other than float32 / float64.
        ValueError: ``reward`` without a last dim, a wrong ``out`` shape, or
            ``weights`` whose size is not ``k``.

    Examples:
        >>> out = np.empty(1)
        >>> linearise(np.array([1.0, 2.0, 3.0]), None, out)
        >>> out
        array([6.])
    """
    owner = "linearise"
    _check_float("reward", reward, owner)
    _check_float("out", out, owner)
    if reward.ndim == 0:
        raise ValueError(f"{owner} requires reward with at least one dim (the rewards to sum), got a 0-dim array")
    k = reward.shape[-1]
    _rows("out", out, reward.shape[:-1] + (1,), owner)
    rows = reward.reshape(-1, k) if reward.size else np.zeros((out.size, k), reward.dtype)
    if weights is None:
        _sum_last(rows, out.reshape(-1))
        return
    _check_float("weights", weights, owner)
    if weights.size != k:
        raise ValueError(f"The number of rewards and weights should match. Got: {k} and {weights.size}.")
    _linearise(rows, weights.reshape(-1), out.reshape(-1))


def target_return_step(target, reward, out, reduce: bool = True) -> None:
    """``out = target - reward`` when ``reduce``, else ``out = target`` (``out`` may be ``target``).

    Args:
        target: float32 or float64 array, the target return before the step.
        reward: float32 or float64 array of ``target``'s shape (read only when ``reduce``).
        out: float32 or float64 array of ``target``'s shape, written.
        reduce: subtract the reward (mode "reduce") or keep the target (mode "constant").

    Raises:
        TypeError: not NumPy arrays, or a dtype other than float32 / float64.
        ValueError: arrays of different shapes (the message names both).

    Examples:
        >>> out = np.empty(2)
        >>> target_return_step(np.array([5.0, 5.0]), np.array([1.0, -2.0]), out)
        >>> out
        array([4., 7.])
    """
    owner = "target_return_step"
    _check_float("target", target, owner)
    _check_float("out", out, owner)
    if out.shape != target.shape:
        raise ValueError(f"{owner} requires out of shape {target.shape}, got {out.shape}")
    if not reduce:
        if out is not target:
            _copy(target, out)
        return
    _check_float("reward", reward, owner)
    if reward.shape != target.shape:
        raise ValueError(f"The shape of the reward ({reward.shape}) and target return ({target.shape}) must match.")
    _subtract(target, reward, out)


def target_return_reset(target, mask, value: float, out) -> None:
    """``out`` = ``value`` where ``mask`` holds and ``target`` elsewhere; ``value`` everywhere without either.

    Args:
        target: float32 or float64 array, or None (first reset: no earlier target).
        mask: bool array whose shape is a prefix of ``out``'s shape (the batch
            dims), or None (every entry is reset).
        value: the target return to start from.
        out: float32 or float64 C-contiguous array of ``target``'s shape, written (may be ``target``).

    Raises:
        TypeError: not NumPy arrays, a mask that is not bool, or a float dtype other than float32 / float64.
        ValueError: a mask whose shape is not a prefix of ``out``'s shape, or ``target`` of another shape.

    Examples:
        >>> out = np.empty((2, 1), dtype=np.float32)
        >>> target_return_reset(None, None, 3.0, out)
        >>> out[:, 0]
        array([3., 3.], dtype=float32)
    """
    owner = "target_return_reset"
    _check_float("out", out, owner)
    value = float(value)
    if target is None or mask is None:
        out.fill(value)
        return
    _check_float("target", target, owner)
    _check_array("mask", mask, owner)
    if mask.dtype != np.bool_:
        raise TypeError(f"{owner} requires mask to be a bool array, got {mask.dtype}")
    if target.shape != out.shape:
        raise ValueError(f"{owner} requires target of shape {out.shape}, got {target.shape}")
    if out.shape[:mask.ndim] != mask.shape:
        raise ValueError(f"{owner} requires a mask whose shape is a prefix of {out.shape}, got {mask.shape}")
    _rows("out", out, out.shape, owner)
    n = mask.size
    m = out.size // n if n else 0
    _reset_rows(target.reshape(n, m), mask.reshape(-1), value, out.reshape(n, m))
