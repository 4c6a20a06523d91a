"""Numba CPU kernels for discounted reward-to-go.

Every kernel works on three-dimensional views ``[A, T, C]``: the dims before
the time dim merged into ``A``, the time dim ``T`` and the dims after it merged
into ``C``. Each ``(a, c)`` pair is one trajectory, scanned backwards in time
on its own, exactly, in O(T):

    G[t] = r[t]                     if done[t]
    G[t] = r[t] + gamma * G[t + 1]  otherwise, with G[T] = boot[a, c]

The running sum is kept in float64 whatever the reward dtype; each step is
rounded once, to the output dtype, when it is written.

The work is cut into units that touch disjoint trajectories, so the serial and
the parallel drivers give bitwise identical results:

* ``C == 1``: a unit is four consecutive rows, scanned in lockstep. The four
  recurrences are independent, so their multiply-adds overlap in the pipeline
  instead of waiting on one another (a single row is bound by the latency of
  one multiply-add per step).
* ``C > 1``: a unit is one ``a`` and a block of at most ``COLUMN_BLOCK``
  columns. The scan walks time backwards and, at each step, updates the whole
  block from one contiguous slice, which the compiler vectorises.
"""
import numpy as np
from numba import njit, prange

# Width of the column blocks of the C > 1 path: 512 float64 running sums fill
# 4 KiB, which stays in the L1 cache next to the slices being streamed.
COLUMN_BLOCK = 512
# Number of rows scanned in lockstep by the C == 1 path.
ROW_GROUP = 4

# "contract" lets LLVM fuse r + k * g into one fused multiply-add: one rounding
# instead of two, and half the latency on the sequential dependency chain.
_FASTMATH = {"contract"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _scan_row(r, d, o, gamma, g):
    """Scan one trajectory given as 1-D views, starting from carry ``g``."""
    for t in range(r.shape[0] - 1, -1, -1):
        g = np.float64(r[t]) + (0.0 if d[t] else gamma) * g
        o[t] = g


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _scan_row_group(reward, done, gamma, boot, out, a):
    """Scan rows ``a .. a + 3`` (with ``C == 1``) in lockstep."""
    r0 = reward[a, :, 0]
    r1 = reward[a + 1, :, 0]
    r2 = reward[a + 2, :, 0]
    r3 = reward[a + 3, :, 0]
    d0 = done[a, :, 0]
    d1 = done[a + 1, :, 0]
    d2 = done[a + 2, :, 0]
    d3 = done[a + 3, :, 0]
    o0 = out[a, :, 0]
    o1 = out[a + 1, :, 0]
    o2 = out[a + 2, :, 0]
    o3 = out[a + 3, :, 0]
    g0 = boot[a, 0]
    g1 = boot[a + 1, 0]
    g2 = boot[a + 2, 0]
    g3 = boot[a + 3, 0]
    for t in range(r0.shape[0] - 1, -1, -1):
        g0 = np.float64(r0[t]) + (0.0 if d0[t] else gamma) * g0
        g1 = np.float64(r1[t]) + (0.0 if d1[t] else gamma) * g1
        g2 = np.float64(r2[t]) + (0.0 if d2[t] else gamma) * g2
        g3 = np.float64(r3[t]) + (0.0 if d3[t] else gamma) * g3
        o0[t] = g0
        o1[t] = g1
        o2[t] = g2
        o3[t] = g3


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _scan_column_block(reward, done, gamma, boot, out, a, c0, c1):
    """Scan the trajectories ``(a, c0) .. (a, c1 - 1)`` together."""
    acc = np.empty(c1 - c0, dtype=np.float64)
    for j in range(c1 - c0):
        acc[j] = boot[a, c0 + j]
    for t in range(reward.shape[1] - 1, -1, -1):
        rt = reward[a, t, c0:c1]
        dt = done[a, t, c0:c1]
        ot = out[a, t, c0:c1]
        for j in range(c1 - c0):
            v = np.float64(rt[j])
            if not dt[j]:
                v += gamma * acc[j]
            acc[j] = v
            ot[j] = v


@njit(cache=True, nogil=True)
def count_open_ends(done):
    """Trajectories of an ``[A, T, C]`` done array whose last step is not done.

    Returns ``(count, first)``: how many there are and the flat ``a * C + c``
    index of the first one (``A * C`` when there is none).
    """
    n_rows, n_steps, n_cols = done.shape
    count = 0
    first = n_rows * n_cols
    for a in range(n_rows):
        for c in range(n_cols):
            if not done[a, n_steps - 1, c]:
                if count == 0:
                    first = a * n_cols + c
                count += 1
    return count, first


@njit(cache=True, nogil=True)
def n_work_units(n_rows, n_cols):
    """Number of independent work units of an ``[n_rows, T, n_cols]`` scan."""
    if n_cols == 1:
        return (n_rows + ROW_GROUP - 1) // ROW_GROUP
    return n_rows * ((n_cols + COLUMN_BLOCK - 1) // COLUMN_BLOCK)


@njit(cache=True, nogil=True)
def _run_unit(reward, done, gamma, boot, out, u):
    """Scan the trajectories of work unit ``u``."""
    n_rows = reward.shape[0]
    n_cols = reward.shape[2]
    if n_cols == 1:
        a = u * ROW_GROUP
        if a + ROW_GROUP <= n_rows:
            _scan_row_group(reward, done, gamma, boot, out, a)
        else:
            for b in range(a, n_rows):
                _scan_row(reward[b, :, 0], done[b, :, 0], out[b, :, 0], gamma, boot[b, 0])
    else:
        n_blocks = (n_cols + COLUMN_BLOCK - 1) // COLUMN_BLOCK
        a = u // n_blocks
        c0 = (u % n_blocks) * COLUMN_BLOCK
        c1 = min(c0 + COLUMN_BLOCK, n_cols)
        _scan_column_block(reward, done, gamma, boot, out, a, c0, c1)


@njit(cache=True, nogil=True)
def reward_to_go_serial(reward, done, gamma, boot, out):
    """Reward-to-go of every trajectory of ``[A, T, C]`` views, one thread.

    Args:
        reward: float32 or float64 array ``[A, T, C]``.
        done: bool or integer array ``[A, T, C]``; nonzero ends an episode.
        gamma: discount in [0, 1].
        boot: float64 array ``[A, C]``, the value after the last step of each
            trajectory (zero for a truncated end; unused where the last step is
            done).
        out: array ``[A, T, C]`` of the reward's dtype, written in place. It
            may be ``reward`` itself.
    """
    for u in range(n_work_units(reward.shape[0], reward.shape[2])):
        _run_unit(reward, done, gamma, boot, out, u)


@njit(cache=True, nogil=True, parallel=True)
def reward_to_go_parallel(reward, done, gamma, boot, out):
    """Same as :func:`reward_to_go_serial`, work units spread over threads."""
    for u in prange(n_work_units(reward.shape[0], reward.shape[2])):
        _run_unit(reward, done, gamma, boot, out, u)
