"""CUDA twin of :func:`numbarl.core.returns.reward_to_go`.

The arrays are viewed as ``[A, T, C]`` (dims before the time dim merged into
``A``, dims after it into ``C``); each trajectory ``(a, c)`` is scanned
backwards in time by one thread, accumulating in float64 in the CPU kernel's
order, so results are the CPU's.

* ``C == 1`` (time contiguous, the usual ``[..., T, 1]`` layout): a block
  takes ``TILE_ROWS`` trajectories and walks them back in tiles of
  ``TILE_STEPS`` steps. All its threads load a tile into shared memory with
  reads coalesced along time, ``TILE_ROWS`` threads scan it in shared memory,
  and all threads store it back coalesced. (One thread per trajectory reading
  global memory directly would touch a new cache line at every step.)
* ``C > 1``: thread ``i = a * C + c`` scans trajectory ``(a, c)`` straight
  from global memory; neighbouring threads read neighbouring addresses at
  each step, so the loads coalesce.

Importing this module imports ``numba.cuda``; ``numbarl.core`` does not import
it. Set ``NUMBA_ENABLE_CUDASIM=1`` before the first import of ``numba.cuda``
to run it on the simulator.
"""
import numbers

import numpy as np
from numba import cuda
from numbarl.core.cuda._common import (
    SIMULATOR,
    THREADS_PER_BLOCK,
    blocks_for,
    check_contiguous,
    device_array,
    is_device_array,
    scratch,
)
from numbarl.core.returns import (
    _bootstrap_rows,
    _check_dtypes,
    _check_gamma,
    _check_open_end,
    _check_shapes,
    _open_end_error,
)

__all__ = ["reward_to_go"]


@cuda.jit
def _reward_to_go_kernel(reward, done, gamma, boot, boot_value, use_boot, out, open_info):
    """Scan trajectory ``cuda.grid(1)`` of the ``[A, T, C]`` views.

    The carry after the last step is ``boot[a, c]`` when ``use_boot`` else
    ``boot_value``. Trajectories whose last step is not done are counted in
    ``open_info[0]``, and the smallest such index is kept in ``open_info[1]``.
    """
    i = cuda.grid(1)
    n_rows, n_steps, n_cols = reward.shape
    if i >= n_rows * n_cols:
        return
    a = i // n_cols
    c = i - a * n_cols
    g = boot_value
    if use_boot:
        g = np.float64(boot[a, c])
    if not done[a, n_steps - 1, c]:
        cuda.atomic.add(open_info, 0, 1)
        cuda.atomic.min(open_info, 1, i)
    for t in range(n_steps - 1, -1, -1):
        k = gamma
        if done[a, t, c]:
            k = 0.0
        g = np.float64(reward[a, t, c]) + k * g
        out[a, t, c] = g


# Tiled kernel: trajectories per block, steps per tile, threads per block.
# 16 x 256 float64 + bytes in shared memory is 37 KB, under the 48 KB static
# limit; 4096 trajectories make 256 blocks, two per multiprocessor on an H200,
# so one block's loads overlap the other's scan. The simulator gets small
# tiles so that its tests cross tile and block boundaries.
TILE_ROWS, TILE_STEPS, TILE_THREADS = (4, 8, 16) if SIMULATOR else (16, 256, 256)


@cuda.jit
def _reward_to_go_tiled_kernel(reward, done, gamma, boot, boot_value, use_boot, out, open_info):
    """Scan trajectories ``blockIdx.x * TILE_ROWS + [0, TILE_ROWS)`` of the ``[A, T]`` views, tile by tile.

    Same results as ``_reward_to_go_kernel`` with ``C == 1``.
    """
    values = cuda.shared.array((TILE_ROWS, TILE_STEPS + 1), np.float64)
    dones = cuda.shared.array((TILE_ROWS, TILE_STEPS + 1), np.uint8)
    tid = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * TILE_ROWS
    n_rows, n_steps = reward.shape
    a = row0 + tid
    walker = tid < TILE_ROWS and a < n_rows
    g = np.float64(boot_value)
    if walker:
        if use_boot:
            g = np.float64(boot[a, 0])
        if not done[a, n_steps - 1]:
            cuda.atomic.add(open_info, 0, 1)
            cuda.atomic.min(open_info, 1, a)
    n_tiles = (n_steps + TILE_STEPS - 1) // TILE_STEPS
    for tile in range(n_tiles - 1, -1, -1):
        t0 = tile * TILE_STEPS
        for e in range(tid, TILE_ROWS * TILE_STEPS, TILE_THREADS):
            rr = e // TILE_STEPS
            j = e - rr * TILE_STEPS
            if row0 + rr < n_rows and t0 + j < n_steps:
                values[rr, j] = np.float64(reward[row0 + rr, t0 + j])
                dones[rr, j] = 1 if done[row0 + rr, t0 + j] else 0
        cuda.syncthreads()
        if walker:
            for j in range(min(TILE_STEPS, n_steps - t0) - 1, -1, -1):
                k = gamma
                if dones[tid, j]:
                    k = 0.0
                g = values[tid, j] + k * g
                values[tid, j] = g
        cuda.syncthreads()
        for e in range(tid, TILE_ROWS * TILE_STEPS, TILE_THREADS):
            rr = e // TILE_STEPS
            j = e - rr * TILE_STEPS
            if row0 + rr < n_rows and t0 + j < n_steps:
                out[row0 + rr, t0 + j] = values[rr, j]
        cuda.syncthreads()


def _rows(array, name, n_rows, n_steps, n_cols):
    check_contiguous(array, "reward_to_go", name)
    return array.reshape(n_rows, n_steps, n_cols)


def _device_bootstrap(boot, reward_shape, axis, n_rows, n_cols):
    """Check a device bootstrap array and view it as ``[A, C]``."""
    dtype = np.dtype(boot.dtype)
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"reward_to_go requires a real-valued bootstrap, got dtype {dtype}")
    batch_shape = tuple(reward_shape[:axis]) + tuple(reward_shape[axis + 1 :])
    with_time = tuple(reward_shape[:axis]) + (1,) + tuple(reward_shape[axis + 1 :])
    if tuple(boot.shape) not in (batch_shape, with_time):
        raise ValueError(
            f"reward_to_go (CUDA) requires a device bootstrap of shape {batch_shape} or {with_time}, got "
            f"{tuple(boot.shape)}; host arrays and scalars broadcast"
        )
    check_contiguous(boot, "reward_to_go", "device bootstrap")
    return boot.reshape(n_rows, n_cols)


def reward_to_go(reward, done, gamma, out=None, time_dim=-2, bootstrap=None, open_end="error", stream=0):
    """Discounted reward-to-go on the GPU, one thread scanning each trajectory.

    Same arguments and results as :func:`numbarl.core.returns.reward_to_go`,
    for device arrays: ``G[t] = r[t]`` where ``done[t]``, else
    ``G[t] = r[t] + gamma * G[t + 1]``, summed in float64 and written in the
    reward's dtype.

    Args:
        reward: C-contiguous float32 or float64 device array (a numba device
            array or anything with ``__cuda_array_interface__``, such as a CUDA
            tensor), ``[..., T, 1]`` or ``[..., T]`` with ``time_dim=-1``.
        done: C-contiguous bool (or integer) device array of the same shape.
        gamma: discount factor, a real number in [0, 1].
        out: C-contiguous device array of the reward's shape and dtype, or None
            to allocate one on the device. It may be ``reward`` itself.
        time_dim: the time dim of ``reward``. Defaults to -2.
        bootstrap: value after the last step where it is not done: a scalar,
            a host array (broadcast as on the CPU and copied over), or a device
            array of the reward's shape without its time dim (or with it of
            size 1).
        open_end: ``"error"`` or ``"truncate"``, as on the CPU. ``"error"``
            synchronises ``stream`` to read back the check; ``out`` then holds
            the truncated result when it raises.
        stream: CUDA stream to run on (0: the default stream).

    Returns:
        ``out`` as given (a tensor stays a tensor), or the device array
        allocated for it, holding the reward-to-go.

    Raises:
        TypeError: an argument that is not a device array, or of a wrong dtype.
        ValueError: as on the CPU, and for a non-contiguous array.

    Examples:
        >>> import numpy as np
        >>> from numba import cuda
        >>> reward = cuda.to_device(np.ones((1, 4, 1), dtype=np.float32))
        >>> done = cuda.to_device(np.array([[[False], [True], [False], [True]]]))
        >>> reward_to_go(reward, done, 0.5).copy_to_host()[0, :, 0]
        array([1.5, 1. , 1.5, 1. ], dtype=float32)
    """
    reward = device_array(reward, "reward_to_go", "reward")
    done = device_array(done, "reward_to_go", "done")
    _check_dtypes(np.dtype(reward.dtype), np.dtype(done.dtype))
    axis, n_rows, n_steps, n_cols = _check_shapes(reward.shape, done.shape, time_dim)
    gamma = _check_gamma(gamma)
    _check_open_end(open_end)
    if out is None:
        out = result = cuda.device_array(reward.shape, dtype=reward.dtype, stream=stream)
    else:
        result = out
        out = device_array(out, "reward_to_go", "out")
        if np.dtype(out.dtype) != np.dtype(reward.dtype):
            raise TypeError(f"reward_to_go requires out of the reward's dtype {reward.dtype}, got {out.dtype}")
        if tuple(out.shape) != tuple(reward.shape):
            raise ValueError(
                f"reward_to_go requires out of the reward's shape {tuple(reward.shape)}, got {tuple(out.shape)}"
            )

    use_boot = False
    boot_value = 0.0
    boot = None
    if bootstrap is not None:
        if is_device_array(bootstrap):
            boot = _device_bootstrap(device_array(bootstrap, "reward_to_go", "bootstrap"), reward.shape, axis, n_rows,
                                     n_cols)
            use_boot = True
        elif isinstance(bootstrap, numbers.Real) and not isinstance(bootstrap, (bool, np.bool_)):
            boot_value = float(bootstrap)
        else:
            boot = cuda.to_device(_bootstrap_rows(bootstrap, reward.shape, axis), stream=stream)
            use_boot = True
    n_traj = n_rows * n_cols
    if n_traj * n_steps == 0:
        return result
    if boot is None:
        boot = scratch("reward_to_go.boot", (1, 1), np.float64, stream)

    reward3 = _rows(reward, "reward", n_rows, n_steps, n_cols)
    done3 = _rows(done, "done", n_rows, n_steps, n_cols)
    out3 = _rows(out, "out", n_rows, n_steps, n_cols)
    check = bootstrap is None and open_end == "error"
    if check:
        open_info = cuda.to_device(np.array([0, n_traj], dtype=np.int64), stream=stream)
    else:
        open_info = scratch("reward_to_go.open_info", (2,), np.int64, stream)
    if n_cols == 1:
        _reward_to_go_tiled_kernel[blocks_for(n_rows, TILE_ROWS), TILE_THREADS, stream](
            reward3.reshape(n_rows, n_steps), done3.reshape(n_rows, n_steps), gamma, boot, boot_value, use_boot,
            out3.reshape(n_rows, n_steps), open_info
        )
    else:
        _reward_to_go_kernel[blocks_for(n_traj), THREADS_PER_BLOCK, stream](
            reward3, done3, gamma, boot, boot_value, use_boot, out3, open_info
        )
    if check:
        host_info = open_info.copy_to_host(stream=stream)
        if stream:
            stream.synchronize()
        n_open, first = int(host_info[0]), int(host_info[1])
        if n_open:
            batch_shape = tuple(reward.shape[:axis]) + tuple(reward.shape[axis + 1 :])
            raise _open_end_error(n_open, n_traj, first, batch_shape)
    return result
