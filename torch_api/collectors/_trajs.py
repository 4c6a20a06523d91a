"""Trajectory bookkeeping of the collectors: ids, the id pool, splitting a batch into padded trajectories.

All three work on whole batches with array operations: the Python work per
batch is O(number of keys), never O(frames).
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

__all__ = ["TrajPool", "assign_traj_ids", "split_trajectories"]


class TrajPool:
    """The counter that hands out trajectory ids (``0, 1, 2, ...``), as TorchRL's collectors number them.

    ``counter`` may be a one-element int64 array in shared memory (with
    ``lock`` its cross-process lock), so that several worker processes draw
    unique ids from one pool.

    Examples:
        >>> pool = TrajPool()
        >>> pool.take(3), pool.take(1)
        (array([0, 1, 2]), array([3]))
    """

    def __init__(self, counter: np.ndarray | None = None, lock=None):
        self.counter = np.zeros(1, dtype=np.int64) if counter is None else counter
        self.lock = lock

    def take(self, n: int) -> np.ndarray:
        """``n`` fresh consecutive ids."""
        if self.lock is None:
            start = int(self.counter[0])
            self.counter[0] = start + n
        else:
            with self.lock:
                start = int(self.counter[0])
                self.counter[0] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def state_dict(self) -> dict:
        return {"traj_id": torch.tensor(int(self.counter[0]))}

    def load_state_dict(self, state: dict) -> None:
        self.counter[0] = int(state["traj_id"])


def assign_traj_ids(current: np.ndarray, done: np.ndarray, pool: TrajPool) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory ids of a batch and the ids after it.

    ``current`` (shape ``[n]``) holds the ids of the envs' running
    trajectories, ``done`` (shape ``[n, T]``) the end-of-trajectory flags of
    the batch. An env that ends a trajectory at step ``t`` gets a fresh id
    from ``pool`` from step ``t + 1`` on; fresh ids go in step order, then env
    order within a step, as TorchRL assigns them step by step.

    Examples:
        >>> pool = TrajPool(); cur = pool.take(2)
        >>> ids, cur = assign_traj_ids(cur, np.array([[0, 1, 0], [1, 0, 0]], bool), pool)
        >>> ids.tolist(), cur.tolist()
        ([[0, 0, 3], [1, 2, 2]], [3, 2])
    """
    n, steps = done.shape
    d = np.ascontiguousarray(done.T)  # [T, n]: events in step order, then env order
    count = int(d.sum())
    if not count:
        return np.broadcast_to(current[:, None], (n, steps)).copy(), current
    base = pool.take(count)[0]
    event = np.cumsum(d.reshape(-1)).reshape(steps, n) - 1
    last = np.maximum.accumulate(np.where(d, event, -1), axis=0)  # last event at or before t
    before = np.concatenate([np.full((1, n), -1, dtype=last.dtype), last[:-1]], axis=0)
    ids = np.where(before >= 0, base + before, current[None, :])
    after = np.where(last[-1] >= 0, base + last[-1], current)
    return np.ascontiguousarray(ids.T), after.astype(np.int64)


def split_trajectories(batch: TensorDictBase, prefix="collector") -> TensorDictBase:
    """Split a batch into zero-padded trajectories ``[num_trajs, max_len]``, as TorchRL's ``split_trajectories``.

    Consecutive runs of equal ``(prefix, "traj_ids")`` along the flattened
    batch become rows; ``(prefix, "mask")`` marks the valid steps. When every
    run has the full time length the batch is returned as it is (with a
    leading dim when it has one dim) plus an all-true mask.

    Examples:
        >>> td = TensorDict({"x": torch.arange(5.0),
        ...                  "collector": {"traj_ids": torch.tensor([0, 0, 0, 1, 1])}}, [5])
        >>> out = split_trajectories(td)
        >>> out["x"].tolist(), out["collector", "mask"].tolist()
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 0.0]], [[True, True, True], [True, True, False]])
    """
    ids_key, mask_key = (prefix, "traj_ids"), (prefix, "mask")
    batch = batch.copy()
    ids = batch.get(ids_key).reshape(-1).numpy()
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    lengths = np.diff(np.concatenate([starts, [ids.size]]))
    steps = batch.shape[-1]
    if (lengths == steps).all():
        batch.set(mask_key, torch.ones(batch.shape, dtype=torch.bool))
        return batch.unsqueeze(0) if batch.ndim == 1 else batch
    longest = int(lengths.max())
    mask = np.arange(longest)[None, :] < lengths[:, None]
    mask_t = torch.from_numpy(mask)
    flat = batch.reshape(-1)
    out = TensorDict(batch_size=(len(lengths), longest), device=batch.device)
    for key in flat.keys(True, True):
        value = flat.get(key)
        padded = value.new_zeros((len(lengths), longest, *value.shape[1:]))
        padded[mask_t] = value
        out.set(key, padded)
    out.set(mask_key, mask_t)
    return out


def complete_trajectories(batch: TensorDictBase, held: dict, done_keys) -> tuple[list, dict]:
    """The trajectories a batch completes (each a 1-D TensorDict), and those still in flight.

    ``held`` maps a trajectory id to the pieces of it seen in earlier batches;
    a trajectory is complete when its last step has a done flag set. The
    completed ones come env by env, in time order within each env.
    """
    flat = batch.reshape(-1)
    ids = flat.get(("collector", "traj_ids")).numpy()
    ends = None
    for key in done_keys:
        flag = flat.get(("next",) + (key if isinstance(key, tuple) else (key,))).reshape(flat.shape[0], -1).any(-1)
        ends = flag if ends is None else ends | flag
    ends = ends.numpy()
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    stops = np.concatenate([starts[1:], [ids.size]])
    held = dict(held)
    done = []
    for lo, hi in zip(starts.tolist(), stops.tolist()):
        tid = int(ids[lo])
        piece = flat[lo:hi]
        pieces = held.pop(tid, []) + [piece]
        if ends[hi - 1]:
            done.append(torch.cat(pieces, 0) if len(pieces) > 1 else piece.clone())
        else:
            held[tid] = [torch.cat(pieces, 0) if len(pieces) > 1 else piece.clone()]
    return done, held
