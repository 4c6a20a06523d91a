"""``MultiSyncCollector`` and ``MultiAsyncCollector``: one collector per worker process, batches in shared memory."""
from __future__ import annotations

import math
import pickle
import weakref
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

import torch
from tensordict import TensorDict, TensorDictBase

from ..envs.common import EnvBase
from ..envs.utils import ExplorationType
from . import _checks
from ._process import CollectorPool, name_key, policy_tensors
from ._trajs import split_trajectories

__all__ = ["MultiSyncCollector", "MultiAsyncCollector"]


class _MultiCollector:
    """What the two multi-process collectors share; see :class:`MultiSyncCollector`."""

    _sync = True

    def __init__(self, create_env_fn, policy=None, *, num_workers: int | None = None, policy_factory=None,
                 frames_per_batch: int, total_frames: int = -1, device=None, storing_device=None, env_device=None,
                 policy_device=None, create_env_kwargs=None, max_frames_per_traj: int | None = None,
                 init_random_frames: int | None = None, reset_at_each_iter: bool = False,
                 postproc: Callable | None = None, split_trajs: bool | None = None,
                 exploration_type=ExplorationType.RANDOM, reset_when_done: bool = True, cat_results=None,
                 set_truncated: bool = False, replay_buffer=None, extend_buffer: bool = True,
                 trajs_per_batch: int | None = None, traj_format=None, num_sub_threads: int = 1,
                 mp_start_method: str | None = None, timeout: float | None = 300.0, **kwargs):
        from ..envs.batched import _POOLS, _payload, _start_method

        owner = type(self).__name__
        self.closed = True
        _checks.reject_unsupported(owner, kwargs)
        if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, (str, bytes)):
            fns = list(create_env_fn)
            if num_workers is not None and num_workers != len(fns):
                raise ValueError(f"{owner}: num_workers={num_workers} does not match the {len(fns)} env constructors")
        else:
            fns = [create_env_fn] * (num_workers or 1)
        if not fns:
            raise ValueError(f"{owner} requires at least one env constructor in create_env_fn")
        for fn in fns:
            if isinstance(fn, EnvBase) or not callable(fn):
                raise TypeError(f"{owner} requires create_env_fn to hold callables returning numbarl envs "
                                f"(env instances cannot be sent to worker processes), got {type(fn).__name__}")
        if isinstance(frames_per_batch, Sequence):
            raise NotImplementedError(f"{owner}: frames_per_batch as a per-worker sequence is not supported; "
                                      "pass an int")
        frames_per_batch = _checks.positive_int(owner, "frames_per_batch", frames_per_batch)
        for name, value in (("device", device), ("storing_device", storing_device), ("env_device", env_device),
                            ("policy_device", policy_device)):
            _checks.cpu_device(owner, name, value)
        if trajs_per_batch is not None or traj_format is not None:
            raise NotImplementedError(f"{owner} does not support trajs_per_batch/traj_format yet; use Collector")
        if not reset_when_done:
            raise ValueError(f"{owner}: reset_when_done=False is not supported")
        if cat_results is not None and cat_results != "stack" and not isinstance(cat_results, int):
            raise ValueError(f"{owner} requires cat_results to be 'stack', an int dim or None, got {cat_results!r}")
        if not self._sync and cat_results is not None:
            raise ValueError(f"{owner}: cat_results is only valid for MultiSyncCollector")
        if policy is not None and policy_factory is not None:
            raise TypeError(f"{owner}: policy_factory cannot be used with the policy argument; pass one of them")
        if replay_buffer is not None and not hasattr(replay_buffer, "extend"):
            raise TypeError(f"{owner} requires replay_buffer to have an extend method")
        if postproc is not None and not callable(postproc):
            raise TypeError(f"{owner} requires postproc to be callable or None")
        n = len(fns)
        if create_env_kwargs is None:
            env_kwargs = [{}] * n
        elif isinstance(create_env_kwargs, dict):
            env_kwargs = [create_env_kwargs] * n
        else:
            env_kwargs = list(create_env_kwargs)
            if len(env_kwargs) != n:
                raise ValueError(f"{owner}: create_env_kwargs has {len(env_kwargs)} entries for {n} workers")
        self.num_workers = n
        self.requested_frames_per_batch = frames_per_batch
        self.frames_per_batch_worker = -(-frames_per_batch // n) if self._sync else frames_per_batch
        if self._sync and frames_per_batch % n:
            import warnings

            warnings.warn(f"{owner}: frames_per_batch ({frames_per_batch}) is not divisible by the number of "
                          f"workers ({n}); each batch holds {self.frames_per_batch_worker * n} frames",
                          UserWarning, stacklevel=2)
        self.total_frames = _checks.total_frames_of(owner, total_frames, frames_per_batch)
        self.init_random_frames = int(init_random_frames) if init_random_frames not in (None, -1) else 0
        self.postproc = postproc
        self.split_trajs = bool(split_trajs)
        self.cat_results = "stack" if cat_results is None else cat_results
        self.replay_buffer = replay_buffer
        self.extend_buffer = bool(extend_buffer)
        self.exploration_type = exploration_type
        self.policy = policy
        template = policy if policy is not None else (policy_factory() if policy_factory is not None else None)
        self._weights = policy_tensors(template)
        inner = dict(frames_per_batch=self.frames_per_batch_worker, total_frames=-1,
                     max_frames_per_traj=max_frames_per_traj, reset_at_each_iter=reset_at_each_iter,
                     exploration_type=exploration_type, set_truncated=set_truncated)
        method, ctx = _start_method(owner, mp_start_method)
        payloads = [_payload(owner, (fn, policy, policy_factory, dict(inner, create_env_kwargs=kw or None), w),
                             method) for w, (fn, kw) in enumerate(zip(fns, env_kwargs))]
        self._pool = pool = CollectorPool(ctx, payloads, owner, timeout=timeout,
                                          startup_timeout=None if timeout is None else 10 * timeout,
                                          shutdown_timeout=10.0)
        self._finalizer = weakref.finalize(self, pool.shutdown)
        _POOLS.add(pool)
        try:
            self._make_block(owner)
        except BaseException:
            pool.shutdown(graceful=False)
            raise
        self._frames = 0
        self._iter = -1
        self._iterator = None
        self.closed = False

    def _make_block(self, owner: str) -> None:
        from ...core.shared import SharedArrays

        pool = self._pool
        first = pool.layouts[0]
        for w, layout in pool.layouts.items():
            if layout != first:
                raise ValueError(f"{owner}: worker {w} collects batches {layout} but worker 0 {first}; "
                                 "every worker's env must give the same keys, shapes and dtypes")
        block = {name: ((self.num_workers, *shape), dtype) for name, (shape, dtype) in first.items()}
        for name, tensor in self._weights.items():
            from .._arrays import numpy_dtype

            block["policy:" + name] = (tuple(tensor.shape), numpy_dtype(tensor.dtype))
        block["traj_counter"] = ((1,), "int64")
        block["weights_version"] = ((1,), "int64")
        shared = SharedArrays.create(block)
        pool.shared = shared
        self._shared = shared
        self._write_weights(self._weights)
        for w in range(self.num_workers):  # in turn: first trajectory ids in worker order
            pool.command([w], b"a" + shared.name.encode())
        self._views = TensorDict(batch_size=[self.num_workers])
        for name in first:
            self._views.set(name_key(name), torch.from_numpy(shared[name]))
        self._views.batch_size = self._views.get(("collector", "traj_ids")).shape

    def _write_weights(self, tensors: dict) -> None:
        if not tensors:
            return
        shared = self._shared
        with shared.lock(), torch.no_grad():
            for name, tensor in tensors.items():
                shared["policy:" + name][...] = tensor.detach().cpu().numpy()
            shared["weights_version"][0] += 1

    # ---------------------------------------------------------------- batches
    def _command(self, workers) -> bytes:
        return b"R" if self._frames < self.init_random_frames else b"c"

    def _finish(self, out: TensorDictBase):
        if self.split_trajs:
            out = split_trajectories(out, prefix="collector")
        if self.postproc is not None:
            out = self.postproc(out)
        if self.replay_buffer is not None:
            if self.extend_buffer:
                self.replay_buffer.extend(out)
            else:
                for t in range(out.shape[-1]):
                    self.replay_buffer.add(out[..., t])
            return None
        return out

    __iter__ = lambda self: self.iterator()  # noqa: E731

    def next(self):
        """The next batch of the collector's own iterator, or ``None`` when it is exhausted."""
        if self._iterator is None:
            self._iterator = iter(self)
        try:
            return next(self._iterator)
        except StopIteration:
            return None

    def __len__(self) -> int:
        if self.total_frames == float("inf"):
            raise RuntimeError("a collector with total_frames=-1 has no length")
        return math.ceil(self.total_frames / self.requested_frames_per_batch)

    # ------------------------------------------------------------------ state
    def _check_open(self) -> None:
        if self.closed or self._pool.closed:
            self.closed = True
            raise RuntimeError(f"{type(self).__name__} is shut down (by shutdown() or after a worker fault)")

    def update_policy_weights_(self, policy_or_weights=None, *, worker_ids=None, **kwargs) -> None:
        """Write the policy's current weights (or ``policy_or_weights``) to shared memory for every worker.

        Workers pick them up at the start of their next batch; no module is
        pickled. ``worker_ids`` is accepted for compatibility (all workers
        share one copy of the weights).
        """
        self._check_open()
        if not self._weights:
            return
        if policy_or_weights is None:
            tensors = policy_tensors(self.policy) if self.policy is not None else self._weights
        elif isinstance(policy_or_weights, torch.nn.Module):
            tensors = policy_tensors(policy_or_weights)
        elif isinstance(policy_or_weights, (TensorDictBase, dict)):
            flat = policy_or_weights.flatten_keys(".") if isinstance(policy_or_weights, TensorDictBase) else \
                policy_or_weights
            tensors = {k: flat[k] for k in flat.keys()}
        else:
            raise TypeError(f"update_policy_weights_ takes a module, a TensorDict or a dict of weights, got "
                            f"{type(policy_or_weights).__name__}")
        missing = set(self._weights) - set(tensors)
        if missing:
            raise KeyError(f"update_policy_weights_: the weights lack {sorted(missing)}")
        self._write_weights({k: tensors[k] for k in self._weights})

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed worker 0's env with ``seed`` and each next one with the seed the previous returned."""
        self._check_open()
        for w in range(self.num_workers):
            seed = pickle.loads(self._pool.command([w], b"d" + pickle.dumps((seed, static_seed)))[w])
        return seed

    def reset(self, reset_idx=None, **kwargs) -> None:
        """Reset the envs of every worker (or of the workers flagged in ``reset_idx``)."""
        self._check_open()
        workers = range(self.num_workers) if reset_idx is None else \
            [w for w, flag in enumerate(reset_idx) if flag]
        self._pool.command(list(workers), b"e" + pickle.dumps(None))

    def state_dict(self) -> OrderedDict:
        """Each worker's collector state (``"worker{i}"``) and the frame count."""
        self._check_open()
        state = OrderedDict()
        replies = self._pool.command(list(range(self.num_workers)), b"q")
        for w in range(self.num_workers):
            state[f"worker{w}"] = pickle.loads(replies[w])
        state["frames"] = self._frames
        state["iter"] = self._iter
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the frame count; worker env states are not sent back (see the class docs)."""
        self._frames = int(state_dict.get("frames", self._frames))
        self._iter = int(state_dict.get("iter", self._iter))

    def shutdown(self, timeout: float | None = None, close_env: bool = True, raise_on_error: bool = True) -> None:
        """Stop every worker and unlink the shared block. Calling it again does nothing."""
        self.closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()

    @property
    def worker_pids(self) -> list:
        return self._pool.pids

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_workers={self.num_workers}, frames_per_batch="
                f"{self.requested_frames_per_batch}, total_frames={self.total_frames})")


class MultiSyncCollector(_MultiCollector):
    """Collect with one env per worker process and yield the workers' batches together, as TorchRL 0.14.1.

    Each worker runs a :class:`Collector` on numbarl's array path and writes
    its ``frames_per_batch // num_workers`` frames into its rows of one shared
    memory block (``numbarl.core.shared.SharedArrays``); the pipe carries one
    command byte per batch. Each yielded batch is a copy: stacked along a new
    leading worker dim (``cat_results="stack"``, the default) or concatenated
    along dim ``cat_results``. Policy weights live in the block:
    :meth:`update_policy_weights_` writes the parent policy's weights there and
    every worker picks them up before its next batch, with no module pickled.
    Trajectory ids come from one counter in the block, unique across workers;
    with ``split_trajs`` they are renumbered per batch as TorchRL does.

    Faults: a worker that raises, dies (e.g. SIGKILL) or gives no answer within
    ``timeout`` seconds makes the call raise ``EnvWorkerError`` with the
    worker's traceback, after every worker has been ended and the block
    unlinked, as for ``ParallelEnv``. Workers are started with the fork server
    (``mp_start_method``), so a script must build the collector under
    ``if __name__ == "__main__":``.

    Differences from TorchRL 0.14.1: ``frames_per_batch`` as a per-worker
    sequence, ``trajs_per_batch``, ``preemptive_threshold`` and the
    arguments :class:`Collector` does not support raise; devices are CPU only;
    ``load_state_dict`` restores the frame count only; ``mp_start_method``,
    ``timeout`` and ``num_sub_threads`` are numbarl's.

    Args:
        create_env_fn: a list of callables (one per worker) making numbarl envs, or one callable with ``num_workers``.
        policy: as for :class:`Collector`; pickled once to each worker.
        num_workers: the number of workers when ``create_env_fn`` is one callable.
        frames_per_batch: frames per yielded batch, over all workers.
        total_frames, max_frames_per_traj, init_random_frames, reset_at_each_iter, postproc, split_trajs,
            exploration_type, set_truncated, replay_buffer, extend_buffer, policy_factory, create_env_kwargs,
            devices: as for :class:`Collector`.
        cat_results: ``"stack"`` (default) or the dim to concatenate the workers' batches along.

    Examples:
        >>> import functools, torch
        >>> from tensordict.nn import TensorDictModule
        >>> from numbarl.torch_api import GymEnv
        >>> policy = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])
        >>> make = functools.partial(GymEnv, "Pendulum-v1")
        >>> collector = MultiSyncCollector([make, make], policy, frames_per_batch=100, total_frames=200)
        >>> [batch.batch_size for batch in collector]
        [torch.Size([2, 50]), torch.Size([2, 50])]
        >>> collector.shutdown()
    """

    _sync = True

    def iterator(self) -> Iterator[TensorDictBase]:
        workers = list(range(self.num_workers))
        while self._frames < self.total_frames:
            self._check_open()
            self._iter += 1
            self._pool.command(workers, self._command(workers))
            if self.cat_results == "stack":
                out = self._views.clone()
            else:
                out = torch.cat([self._views[w] for w in workers], self.cat_results).clone()
            self._frames += out.numel()
            if self.split_trajs and self.cat_results == "stack":
                ids = out.get(("collector", "traj_ids"))
                offset = 0
                for w in workers:  # renumber per batch, as TorchRL does before splitting
                    ids[w] += offset
                    offset = int(ids[w].max()) + 1
            out = self._finish(out)
            yield out
        self.shutdown()


class MultiAsyncCollector(_MultiCollector):
    """Collect with one env per worker process and yield each worker's batch as soon as it is ready.

    Workers collect continuously: when one finishes a batch the parent copies
    it out of the shared block, sends the worker on to its next batch, and
    yields the copy (shape ``[*env.batch_size, frames_per_batch]``). Weights,
    trajectory ids, faults and differences from TorchRL are as for
    :class:`MultiSyncCollector`; weights reach a worker at the start of its
    next batch.

    Examples:
        >>> import functools, torch
        >>> from tensordict.nn import TensorDictModule
        >>> from numbarl.torch_api import GymEnv
        >>> policy = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])
        >>> make = functools.partial(GymEnv, "Pendulum-v1")
        >>> collector = MultiAsyncCollector([make, make], policy, frames_per_batch=50, total_frames=150)
        >>> [batch.batch_size for batch in collector]
        [torch.Size([50]), torch.Size([50]), torch.Size([50])]
        >>> collector.shutdown()
    """

    _sync = False

    def iterator(self) -> Iterator[TensorDictBase]:
        pool = self._pool
        busy = set()
        self._sent = {}
        while self._frames < self.total_frames:
            self._check_open()
            for w in range(self.num_workers):
                if w not in busy:
                    self._send(w, self._command([w]))
                    busy.add(w)
            done = self._first_reply(busy)
            busy.discard(done)
            out = self._views[done].clone()
            self._iter += 1
            self._frames += out.numel()
            if self._frames < self.total_frames:
                self._send(done, self._command([done]))
                busy.add(done)
            out = self._finish(out)
            yield out
        self.shutdown()

    def _send(self, w: int, message: bytes) -> None:
        """Send to one worker while others still owe a reply (``WorkerPool.send`` would wait for those)."""
        pool = self._pool
        if pool.closed:
            raise RuntimeError(f"{type(self).__name__} is shut down")
        pool.send_to(w, message)
        self._sent[w] = self._sends = getattr(self, "_sends", 0) + 1

    def _read(self, w: int) -> bytes:
        """Read worker ``w``'s reply (``WorkerPool.collect`` would also take the other workers' replies)."""
        pool = self._pool
        msg = pool.recv_from(w)
        if msg[:1] == b"E":
            pool.fault(f"ParallelEnv worker {w} (pid {pool.procs[w].pid}, sub-envs {w}..{w}) raised; "
                       "every worker has been shut down", msg[1:].decode("utf-8", "replace"))
        return msg[1:]

    def _first_reply(self, busy) -> int:
        """Wait for the first of the ``busy`` workers to finish its batch; return its index."""
        pool = self._pool
        while True:
            ready = [w for w in busy if pool.conns[w].poll(0)]
            if ready:
                w = min(ready, key=self._sent.__getitem__)  # the one waiting longest first
                self._read(w)
                return w
            import multiprocessing.connection as mpc

            waitables = [pool.conns[w] for w in busy] + [pool.procs[w].sentinel for w in busy]
            if not mpc.wait(waitables, timeout=pool.timeout):
                pool.collect(sorted(busy), 0.001)  # raises: no reply within the timeout
            pool.check_alive(busy)
