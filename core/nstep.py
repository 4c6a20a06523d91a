"""n-step returns of stored trajectories: discounted n-step reward sums and where the n-step target lies.

For a trajectory cut into episodes by done flags, and a horizon ``n``, step
``t`` looks ahead ``k[t] = min(n, steps left in its episode)`` steps (the
episode ends at the first done at or after ``t``, or where the data ends):

    steps[t]      = k[t]                                   (1 <= k[t] <= n)
    next_index[t] = t + k[t] - 1       (whose "next" entries are the target)
    R[t]          = sum_{j < k[t]} gamma**j * r[t + j]

This is what TorchRL's ``MultiStepTransform`` (and its ``MultiStep``
post-processor) computes; TorchRL convolves each episode's masked rewards
with ``[1, gamma, ..., gamma**(n-1)]`` in the reward's dtype, one pass per
episode index. Here one O(T) pass per trajectory does it without
subtraction (a sliding sum ``R[t] = r[t] + gamma * R[t+1] - gamma**n *
r[t+n]`` would cancel): time is cut into blocks of ``n`` steps, every window
``[t, t + k[t])`` covers the tail of ``t``'s block and at most the head of
the next, and the two pieces are a backward suffix scan and a forward prefix
scan, both restarted at block edges and episode ends. Sums are kept in
float64 and rounded once to the reward's dtype.

Examples:
    >>> import numpy as np
    >>> done = np.array([[False, False, True, False, False]])
    >>> reward = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    >>> steps, next_index, total = n_step_returns(done, 2, 0.5, reward=reward)
    >>> steps.tolist(), next_index.tolist()
    ([[2, 2, 1, 2, 1]], [[1, 2, 2, 4, 4]])
    >>> total.tolist()
    [[2.0, 3.5, 3.0, 6.5, 5.0]]
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from numbarl.core._checks import check_int, check_number

__all__ = ["n_step_returns"]

_OWNER = "n_step_returns"


@njit(cache=True, nogil=True)
def _steps_kernel(done, n, steps, next_index):
    """``steps`` and ``next_index`` of every ``(a, c)`` trajectory of ``done`` ``[A, T, C]`` (backward scan)."""
    n_rows, n_t, n_cols = done.shape
    for a in range(n_rows):
        for c in range(n_cols):
            left = 0
            for t in range(n_t - 1, -1, -1):
                left = 1 if (done[a, t, c] or t == n_t - 1) else left + 1
                k = left if left < n else n
                steps[a, t, c] = k
                next_index[a, t, c] = t + k - 1


@njit(cache=True, nogil=True)
def _sums_kernel(reward, done, steps, n, powers, out, head):
    """Discounted window sums of ``reward`` ``[A, T, C, D]`` over ``[t, t + steps[t])``.

    ``head`` is float64 scratch of length T: the forward prefix sums of each
    block (restarted at a block start or after a done), weighted from the
    block's start. The backward pass keeps the block-tail sum ``tail`` of
    ``[t, end of block or episode]`` and adds the head of the next block
    where the window reaches into it.
    """
    n_rows, n_t, n_cols, n_feat = reward.shape
    for a in range(n_rows):
        for c in range(n_cols):
            for d in range(n_feat):
                start = 0
                pos = 0  # u % n, kept without a division
                for u in range(n_t):
                    if pos == 0 or done[a, u - 1, c]:
                        start = u
                        head[u] = np.float64(reward[a, u, c, d])
                    else:
                        head[u] = head[u - 1] + powers[u - start] * np.float64(reward[a, u, c, d])
                    pos = 0 if pos == n - 1 else pos + 1
                tail = 0.0
                pos = (n_t - 1) % n  # t % n
                for t in range(n_t - 1, -1, -1):
                    r = np.float64(reward[a, t, c, d])
                    if done[a, t, c] or t == n_t - 1 or pos == n - 1:
                        tail = r
                    else:
                        tail = r + powers[1] * tail
                    last = t + steps[a, t, c] - 1
                    block_end = t - pos + n - 1
                    if last <= block_end:
                        out[a, t, c, d] = tail
                    else:
                        out[a, t, c, d] = tail + powers[block_end + 1 - t] * head[last]
                    pos = n - 1 if pos == 0 else pos - 1


def _check_out(array, name, shape, dtype):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{_OWNER} requires {name} to be a numpy.ndarray or None, got {type(array).__name__}")
    if array.shape != shape or array.dtype != dtype:
        raise ValueError(f"{_OWNER} requires {name} of shape {shape} and dtype {np.dtype(dtype)}, got "
                         f"{array.shape} and {array.dtype}")
    if not array.flags.writeable:
        raise ValueError(f"{_OWNER} requires a writeable {name} array, got a read-only one")
    return array


def _view(array, shape):
    """``array`` reshaped without a copy when it can be, else a contiguous copy."""
    try:
        return array.reshape(shape, copy=False)
    except (ValueError, TypeError):
        return np.ascontiguousarray(array).reshape(shape)


def n_step_returns(done, n_steps, gamma=1.0, reward=None, time_dim=-1, *, steps_out=None, next_out=None,
                   reward_out=None):
    """Look-ahead lengths, target indices and discounted n-step reward sums of trajectories.

    Args:
        done: bool (or integer) array; every index of the dims other than
            ``time_dim`` is one trajectory, cut into episodes after each done.
        n_steps: the horizon ``n`` (an int >= 1): at most ``n`` rewards summed.
        gamma: discount, a real number in [0, 1].
        reward: optional float32 or float64 array of shape
            ``done.shape + feature_dims`` (e.g. ``[B, T, 1]`` for ``done``
            ``[B, T]``); None to compute ``steps`` and ``next_index`` only.
        time_dim: the time dim of ``done`` (default -1).
        steps_out, next_out: optional int64 arrays of ``done``'s shape to write into.
        reward_out: optional array of the reward's shape and dtype to write into.

    Returns:
        ``(steps, next_index, reward_sum)``: int64 arrays of ``done``'s shape
        (see the module docstring) and the sums in the reward's shape and
        dtype (None without ``reward``).

    Raises:
        TypeError: a non-array input, a wrong dtype, a non-int ``n_steps`` or ``time_dim``.
        ValueError: ``n_steps < 1``, gamma outside [0, 1], ``time_dim`` out of
            range, a reward whose shape does not start with ``done``'s, a
            wrong output array.

    Examples:
        >>> import numpy as np
        >>> done = np.zeros((1, 4), dtype=bool)
        >>> steps, next_index, total = n_step_returns(done, 3, 0.5, reward=np.ones((1, 4, 1), np.float32))
        >>> steps[0].tolist(), next_index[0].tolist(), total[0, :, 0].tolist()
        ([3, 3, 2, 1], [2, 3, 3, 3], [1.75, 1.75, 1.5, 1.0])
    """
    if not isinstance(done, np.ndarray):
        raise TypeError(f"{_OWNER} requires done to be a numpy.ndarray, got {type(done).__name__}")
    if done.dtype != np.bool_ and not np.issubdtype(done.dtype, np.integer):
        raise TypeError(f"{_OWNER} requires done of dtype bool (or an integer dtype), got {done.dtype}")
    n = check_int(n_steps, _OWNER, "n_steps", minimum=1)
    gamma = check_number(gamma, _OWNER, "gamma")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"{_OWNER} requires gamma in [0, 1], got {gamma!r}")
    ndim = done.ndim
    if ndim == 0:
        raise ValueError(f"{_OWNER} requires done with a time dim, got a 0-d array")
    axis = check_int(time_dim, _OWNER, "time_dim", -ndim, ndim - 1) % ndim
    shape = done.shape
    rows, n_t, cols = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    d3 = _view(done.astype(np.bool_, copy=False), (rows, n_t, cols))
    steps = np.empty(shape, np.int64) if steps_out is None else _check_out(steps_out, "steps_out", shape, np.int64)
    nxt = np.empty(shape, np.int64) if next_out is None else _check_out(next_out, "next_out", shape, np.int64)
    s3, x3 = _view(steps, (rows, n_t, cols)), _view(nxt, (rows, n_t, cols))
    _steps_kernel(d3, n, s3, x3)
    if not np.shares_memory(s3, steps):
        steps[...] = s3.reshape(shape)
        nxt[...] = x3.reshape(shape)
    if reward is None:
        return steps, nxt, None
    if not isinstance(reward, np.ndarray):
        raise TypeError(f"{_OWNER} requires reward to be a numpy.ndarray or None, got {type(reward).__name__}")
    if reward.dtype not in (np.float32, np.float64):
        raise TypeError(f"{_OWNER} requires reward of dtype float32 or float64, got {reward.dtype}")
    if reward.shape[:ndim] != shape:
        raise ValueError(f"{_OWNER} requires reward of shape done.shape + feature dims, got reward shape "
                         f"{reward.shape} for done shape {shape}")
    feat = math.prod(reward.shape[ndim:])
    out = np.empty(reward.shape, reward.dtype) if reward_out is None else _check_out(
        reward_out, "reward_out", reward.shape, reward.dtype)
    o4 = _view(out, (rows, n_t, cols, feat))
    powers = gamma ** np.arange(n + 1, dtype=np.float64)
    _sums_kernel(_view(reward, (rows, n_t, cols, feat)), d3, s3, n, powers, o4, np.empty(n_t, np.float64))
    if not np.shares_memory(o4, out):
        out[...] = o4.reshape(reward.shape)
    return steps, nxt, out
