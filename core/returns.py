"""Discounted reward-to-go over trajectories that restart at every done.

TorchRL computes the same quantity (``torchrl.objectives.value.functional.
reward2go``, used by ``Reward2GoTransform``) by convolving each episode with a
geometric kernel cut where ``gamma ** k`` falls below 1e-7, so its result
differs from the exact sum by up to ``1e-7 * max|r| / (gamma * (1 - gamma))``
(plus rounding), and it fails for ``gamma == 0``. :func:`reward_to_go` is an exact backward scan,
O(T) per trajectory, accumulated in float64, and accepts every gamma in
[0, 1].
"""
import math
import numbers

import numpy as np

from numbarl.core._returns_kernels import (
    count_open_ends,
    n_work_units,
    reward_to_go_parallel,
    reward_to_go_serial,
)

__all__ = ["reward_to_go"]

# Work below this many steps in all runs on one thread. One thread scans about
# 1.5e9 steps/s here (four rows at a time), so 2**20 steps take ~0.7 ms; a
# second thread saves at most half of that, while waking a thread pool whose
# cores are busy with other work (other processes, torch's spinning OpenMP
# threads) was measured to stall a call by a scheduler time slice (4-8 ms).
# Lower it (module attribute, read at each call) where the cores are free.
PARALLEL_MIN_STEPS = 1 << 20

_OPEN_END_MODES = ("error", "truncate")


def _check_gamma(gamma):
    """Return gamma as a float after checking it is a real number in [0, 1]."""
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"reward_to_go requires gamma to be a real number, got {type(gamma).__name__}")
    value = float(gamma)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"reward_to_go requires gamma in [0, 1], got {gamma!r}")
    return value


def _check_open_end(open_end):
    if not isinstance(open_end, str):
        raise TypeError(f"reward_to_go requires open_end to be a str, got {type(open_end).__name__}")
    if open_end not in _OPEN_END_MODES:
        raise ValueError(f"reward_to_go requires open_end in {_OPEN_END_MODES}, got {open_end!r}")


def _check_dtypes(reward_dtype, done_dtype):
    if reward_dtype not in (np.float32, np.float64):
        raise TypeError(f"reward_to_go requires reward of dtype float32 or float64, got {reward_dtype}")
    if done_dtype != np.bool_ and not np.issubdtype(done_dtype, np.integer):
        raise TypeError(f"reward_to_go requires done of dtype bool (or an integer dtype), got {done_dtype}")


def _check_shapes(reward_shape, done_shape, time_dim):
    """Check the shapes and the time dim; return ``(axis, A, T, C)``.

    ``axis`` is the time dim as a non-negative index; ``A`` and ``C`` are the
    products of the dims before and after it.
    """
    reward_shape = tuple(reward_shape)
    done_shape = tuple(done_shape)
    if reward_shape != done_shape:
        raise ValueError(
            f"reward_to_go requires reward and done of the same shape, got reward shape {reward_shape} "
            f"and done shape {done_shape}"
        )
    if isinstance(time_dim, (bool, np.bool_)) or not isinstance(time_dim, numbers.Integral):
        raise TypeError(f"reward_to_go requires time_dim to be an int, got {type(time_dim).__name__}")
    ndim = len(reward_shape)
    if not -ndim <= time_dim < ndim:
        raise ValueError(
            f"reward_to_go requires time_dim in [{-ndim}, {ndim - 1}] for reward of shape {reward_shape}, "
            f"got {time_dim}"
        )
    axis = int(time_dim) % ndim
    n_rows = math.prod(reward_shape[:axis])
    n_cols = math.prod(reward_shape[axis + 1 :])
    return axis, n_rows, reward_shape[axis], n_cols


def _bootstrap_rows(bootstrap, reward_shape, axis):
    """Return ``bootstrap`` as a contiguous float64 ``[A, C]`` array.

    Accepted: a scalar, or an array that broadcasts to the reward's shape
    without its time dim (``[...batch, 1]`` for a ``[...batch, T, 1]``
    reward); an array with as many dims as the reward must have size 1 in the
    time dim.
    """
    value = np.asarray(bootstrap)
    if value.dtype == np.bool_ or not (
        np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
    ):
        raise TypeError(f"reward_to_go requires a real-valued bootstrap, got dtype {value.dtype}")
    batch_shape = tuple(reward_shape[:axis]) + tuple(reward_shape[axis + 1 :])
    if value.ndim == len(reward_shape):
        if value.shape[axis] != 1:
            with_time = tuple(reward_shape[:axis]) + (1,) + tuple(reward_shape[axis + 1 :])
            raise ValueError(
                f"reward_to_go requires bootstrap of shape {batch_shape} (or {with_time} with time dim 1), "
                f"got {value.shape}"
            )
        value = value.reshape(value.shape[:axis] + value.shape[axis + 1 :])
    try:
        value = np.broadcast_to(value, batch_shape)
    except ValueError:
        raise ValueError(
            f"reward_to_go requires bootstrap to broadcast to the reward shape without its time dim, "
            f"{batch_shape}, got shape {np.shape(bootstrap)}"
        ) from None
    n_rows = math.prod(reward_shape[:axis])
    return np.ascontiguousarray(value, dtype=np.float64).reshape(n_rows, -1)


def _open_end_error(n_open, n_total, first, batch_shape):
    """ValueError for trajectories whose last step is not done."""
    index = np.unravel_index(int(first), batch_shape) if batch_shape else ()
    index = tuple(int(i) for i in index)
    return ValueError(
        f"reward_to_go: {n_open} of {n_total} trajectories open (first at batch index {index}): "
        f"a trajectory ends without done; pass open_end='truncate' or a bootstrap value"
    )


def _same_elements(a, b):
    """True when ``a`` and ``b`` address the same memory element for element."""
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _rows_view(array, n_rows, n_steps, n_cols):
    """``array`` as an ``[A, T, C]`` view, or None when that needs a copy."""
    try:
        return array.reshape((n_rows, n_steps, n_cols), copy=False)
    except ValueError:
        return None


def reward_to_go(reward, done, gamma, out=None, time_dim=-2, bootstrap=None, open_end="error"):
    """Discounted reward-to-go, restarting at every done.

    For each trajectory along ``time_dim``, ``G[t] = r[t]`` where ``done[t]``
    (the episode ends at ``t``), else ``G[t] = r[t] + gamma * G[t + 1]``. The
    scan is exact (no truncated kernel), O(T) per trajectory, summed in float64
    and written in the reward's dtype. Trajectories (every index of the other
    dims) are independent; large batches are spread over threads.

    Args:
        reward: float32 or float64 array ``[..., T, 1]`` (or ``[..., T]`` with
            ``time_dim=-1``); any number of batch dims before and after the
            time dim.
        done: bool (or integer) array of the reward's shape.
        gamma: discount factor, a real number in [0, 1].
        out: optional array of the reward's shape and dtype to write into; it
            may be ``reward`` itself. Allocated when None.
        time_dim: the time dim of ``reward``. Defaults to -2.
        bootstrap: value of the state after the last step, used where the last
            step is not done (``G[T-1] = r[T-1] + gamma * bootstrap``): a
            scalar or an array of the reward's shape without the time dim
            (``[..., 1]`` for a ``[..., T, 1]`` reward), broadcast. When given,
            ``open_end`` is not consulted.
        open_end: what to do, without a bootstrap, with a trajectory whose
            last step is not done: ``"error"`` raises, ``"truncate"`` ends it
            there (``G[T-1] = r[T-1]``, as TorchRL does).

    Returns:
        ``out``, holding the reward-to-go.

    Raises:
        TypeError: reward, done or out not a numpy array or of a wrong dtype;
            gamma or time_dim not a number, open_end not a str; bootstrap
            not real-valued.
        ValueError: reward and done (or out) of different shapes, gamma outside
            [0, 1], time_dim out of range, a bootstrap that does not broadcast,
            an unknown open_end, or a trajectory that ends without done under
            ``open_end="error"``.

    Examples:
        >>> import numpy as np
        >>> reward = np.ones((1, 6, 1), dtype=np.float32)
        >>> done = np.zeros((1, 6, 1), dtype=bool)
        >>> done[0, [2, 5]] = True
        >>> reward_to_go(reward, done, 0.5)[0, :, 0]
        array([1.75, 1.5 , 1.  , 1.75, 1.5 , 1.  ], dtype=float32)

        A trajectory cut before its episode ends needs a decision:

        >>> reward = np.array([[1.0, 1.0, 1.0]])
        >>> done = np.zeros((1, 3), dtype=bool)
        >>> reward_to_go(reward, done, 0.5, time_dim=-1)
        Traceback (most recent call last):
        ...
        ValueError: reward_to_go: 1 of 1 trajectories open (first at batch index (0,)): a trajectory ends without done; pass open_end='truncate' or a bootstrap value
        >>> reward_to_go(reward, done, 0.5, time_dim=-1, open_end="truncate")
        array([[1.75, 1.5 , 1.  ]])
        >>> reward_to_go(reward, done, 0.5, time_dim=-1, bootstrap=np.array([[8.0]]))
        array([[2.75, 3.5 , 5.  ]])
    """
    if not isinstance(reward, np.ndarray):
        raise TypeError(f"reward_to_go requires reward to be a numpy.ndarray, got {type(reward).__name__}")
    if not isinstance(done, np.ndarray):
        raise TypeError(f"reward_to_go requires done to be a numpy.ndarray, got {type(done).__name__}")
    _check_dtypes(reward.dtype, done.dtype)
    axis, n_rows, n_steps, n_cols = _check_shapes(reward.shape, done.shape, time_dim)
    gamma = _check_gamma(gamma)
    _check_open_end(open_end)
    if out is None:
        out = np.empty_like(reward)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"reward_to_go requires out to be a numpy.ndarray or None, got {type(out).__name__}")
        if out.dtype != reward.dtype:
            raise TypeError(f"reward_to_go requires out of the reward's dtype {reward.dtype}, got {out.dtype}")
        if out.shape != reward.shape:
            raise ValueError(
                f"reward_to_go requires out of the reward's shape {reward.shape}, got {out.shape}"
            )
        if not out.flags.writeable:
            raise ValueError("reward_to_go requires a writeable out array, got a read-only one")

    if bootstrap is not None:
        boot = _bootstrap_rows(bootstrap, reward.shape, axis)
    else:
        boot = np.zeros((n_rows, n_cols), dtype=np.float64)
    if n_rows * n_steps * n_cols == 0:
        return out

    done3 = _rows_view(done, n_rows, n_steps, n_cols)
    if done3 is None:
        done3 = np.ascontiguousarray(done).reshape(n_rows, n_steps, n_cols)
    if bootstrap is None and open_end == "error":
        n_open, first = count_open_ends(done3)
        if n_open:
            batch_shape = reward.shape[:axis] + reward.shape[axis + 1 :]
            raise _open_end_error(n_open, n_rows * n_cols, first, batch_shape)

    # An out that overlaps reward or done other than element for element would
    # be read after being written: scan from copies then.
    if np.may_share_memory(out, reward) and not _same_elements(out, reward):
        reward = reward.copy()
    if np.may_share_memory(out, done3):
        done3 = done3.copy()
    reward3 = _rows_view(reward, n_rows, n_steps, n_cols)
    if reward3 is None:
        reward3 = np.ascontiguousarray(reward).reshape(n_rows, n_steps, n_cols)
    out3 = _rows_view(out, n_rows, n_steps, n_cols)
    scratch = out3 is None
    if scratch:
        out3 = np.empty((n_rows, n_steps, n_cols), dtype=reward.dtype)

    kernel = reward_to_go_serial
    if n_rows * n_steps * n_cols >= PARALLEL_MIN_STEPS and n_work_units(n_rows, n_cols) > 1:
        kernel = reward_to_go_parallel
    kernel(reward3, done3, gamma, boot, out3)
    if scratch:
        out[...] = out3.reshape(reward.shape)
    return out

