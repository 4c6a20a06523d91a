"""``AsyncEnvPool``: TorchRL 0.14.1's pool of envs stepped asynchronously, on numbarl's shared-memory workers.

The pool is one batched env of batch size ``[num_envs, *env_batch]``:
``reset``, ``step`` and ``rollout`` step every env (on the array path), and
the ``async_*_send`` / ``async_*_recv`` pairs step any subset while the
caller does something else (EnvPool's model: run the policy on one half of
the envs while the other half steps).

Backends:

- ``"multiprocessing"``: worker processes, each hosting ``envs_per_worker``
  envs stepped one after the other. Inputs and outputs live in one
  ``SharedArrays`` block; a send writes the envs' action rows, flags them
  and wakes their workers through the command words of the block (no pipe
  message, no pickling); a receive waits for their ready flags. This is
  TorchRL's ``exchange="shm"``; the other exchanges are accepted and use it
  too (the data is fixed-shape tensors by construction).
- ``"threading"``: the envs live in this process and step in threads (one
  task per env), for envs that release the GIL.

A collector that overlaps policy and env calls ``async_step_send(td_a)`` for
one group of envs, computes the policy on the other group, then
``async_step_recv(env_index=...)`` (see :meth:`AsyncEnvPool.async_step_send`).
"""
from __future__ import annotations

import pickle
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .._attrs import set_plain
from ._async_pool_io import AsyncIO
from .batched import _POOLS, SubEnvMethod, _BatchedEnv, _check_affinity, _check_seconds, _cpu_count, _missing, \
    _payload, _start_method
from ._worker import (OP_RESET, OP_RESET_ALL, OP_STEP, REQ_RESET, REQ_STEP, REQ_STEP_RESET, EnvWorkerError,
                      SubEnvs, WorkerPool, allocate, check_env_layout, control_layout, make_layout, maybe_reset_rows)

__all__ = ["AsyncEnvPool"]

_BACKENDS = ("threading", "multiprocessing")
_MASKED_RESET = 100  # threading backend: reset the members flagged in ``mask`` (a synchronous partial reset)


class _Threads:
    """The ``"threading"`` backend: one SubEnvs per env, tasks in a thread pool."""

    def __init__(self, envs, arrays, layout, max_threads: int):
        from concurrent.futures import ThreadPoolExecutor

        self.subs = [SubEnvs([env], arrays, layout, i) for i, env in enumerate(envs)]
        self.executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="numbarl-AsyncEnvPool")
        self.futures = {}
        self.closed = False

    def _job(self, i: int, code: int) -> None:
        sub = self.subs[i]
        if code in (REQ_STEP, REQ_STEP_RESET):
            sub.step()
            if code == REQ_STEP_RESET:
                maybe_reset_rows(sub, [0])
        elif code == REQ_RESET:
            sub.reset(use_mask=False)
        elif code == _MASKED_RESET:
            sub.reset()

    def post(self, idx, code: int) -> None:
        for i in idx.tolist():
            self.futures[i] = self.executor.submit(self._job, i, code)

    def run_all(self, code: int) -> None:
        every = np.arange(len(self.subs))
        self.post(every, code)
        self.wait_ready(every, every.size, None)
        self.release(every)

    def wait_ready(self, idx, min_get: int, deadline) -> np.ndarray:
        """Indices among ``idx`` whose task finished, after waiting for ``min_get`` of them."""
        from concurrent.futures import FIRST_COMPLETED, wait

        futures = [self.futures[i] for i in idx.tolist()]
        while True:
            done = np.array([f.done() for f in futures], dtype=bool)
            if done.sum() >= min_get:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return idx[done]
            wait([f for f, d in zip(futures, done) if not d], timeout=left, return_when=FIRST_COMPLETED)
        for i, f in zip(idx.tolist(), futures):
            if f.done() and f.exception() is not None:
                err = f.exception()
                text = "".join(traceback.format_exception(err))
                self.shutdown()
                raise EnvWorkerError(f"AsyncEnvPool env {i} raised in its thread; the pool is closed", text)
        return idx[done]

    def release(self, idx) -> None:
        for i in idx.tolist():
            self.futures.pop(i, None)

    def set_seed(self, seed, static_seed):
        for sub in self.subs:
            seed = sub.set_seed(seed, static_seed)
        return seed

    def query(self, name, call, args, kwargs):
        return [v for sub in self.subs for v in sub.query(name, call, args, kwargs)]

    def shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        first = None
        for sub in self.subs:
            try:
                sub.close()
            except Exception as err:  # noqa: BLE001 - re-raised below
                first = first or err
        if first is not None:
            raise first


class _Processes:
    """The ``"multiprocessing"`` backend: a WorkerPool stepping per-env requests through the command words."""

    def __init__(self, pool: WorkerPool, starts, num_envs: int):
        self.pool = pool
        self.owner = np.repeat(np.arange(len(starts)), np.diff([*starts, num_envs]))
        self.req = pool.shared["req"]
        self.ready = pool.shared["ready"]

    @property
    def closed(self) -> bool:
        return self.pool.closed

    def post(self, idx, code: int) -> None:
        self.req[idx] = code
        pool = self.pool
        pool._check_open()
        for w in np.unique(self.owner[idx]).tolist():
            pool.post_rows(w)

    def run_all(self, code: int) -> None:
        self.pool.run(range(len(self.pool.procs)), code)

    def wait_ready(self, idx, min_get: int, deadline) -> np.ndarray:
        pool, ready = self.pool, self.ready
        while True:
            done = ready[idx].astype(bool)
            if done.sum() >= min_get:
                return idx[done]
            owners = np.unique(self.owner[idx[~done]]).tolist()
            busy = [w for w in owners if pool.busy(w)]
            for w in owners:
                if w not in busy:  # finished without marking its rows ready: it raised
                    pool.raise_status(w)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return idx[done]
            if not busy:  # the rows were marked ready after ``done`` was read
                continue
            pool.wait_some(busy, pool.WAIT_SLICE if left is None else min(left, pool.WAIT_SLICE))

    def release(self, idx) -> None:
        self.ready[idx] = 0


class AsyncEnvPool(AsyncIO, _BatchedEnv):
    """Envs stepped asynchronously in worker processes (or threads), TorchRL 0.14.1's ``AsyncEnvPool`` API.

    Args:
        env_makers: a callable returning an env, or a list of them (one env each).
        backend: ``"multiprocessing"`` (worker processes, several envs each) or ``"threading"``
            (TorchRL's default). TorchRL's ``"asyncio"`` is not provided.
        stack: ``"dense"``, ``"maybe_dense"`` or ``"lazy"``; the envs share one set of specs, so
            results are always dense tensordicts.
        exchange: ``None``, ``"queue"``, ``"shm"`` or ``"auto"``. The multiprocessing backend
            always exchanges through shared memory (``resolved_exchange == "shm"``);
            ``"shm"`` with the threading backend raises ValueError as in TorchRL.
        worker_affinity: CPUs per worker process: a list of one CPU set per process or a
            callable of the process index (multiprocessing only).
        envs_per_worker: envs hosted by each worker process (multiprocessing only). Default
            ``None``: ``ceil(num_envs / cpu count)``, so there are never more worker processes
            than cores (TorchRL's default is 1, one process per env).
        create_env_kwargs: a dict or a list of ``num_envs`` dicts for ``env_makers``.
        timeout: seconds a step of the whole pool may take (numbarl; default 300; ``None`` or
            inf: no limit). A worker that dies is noticed within 0.05 s whatever the timeout.
        mp_start_method: as for ``ParallelEnv``.

    Where numbarl differs from TorchRL: ``set_seed`` seeds the envs in order (TorchRL raises
    NotImplementedError); ``env_index`` is an int64 tensor in the results (TorchRL puts a
    NonTensorStack); a send to an env whose previous result was not received raises
    RuntimeError.

    Raises:
        TypeError: ``env_makers`` not callables, ``create_env_kwargs`` not dicts.
        ValueError: an unknown ``backend``, ``stack`` or ``exchange``; ``envs_per_worker`` or
            ``worker_affinity`` with the threading backend; a bad ``envs_per_worker``.
        EnvWorkerError: a worker (or a thread's env) raised, died or timed out.

    Examples:
        >>> import functools, torch
        >>> from numbarl.torch_api import GymEnv
        >>> pool = AsyncEnvPool([functools.partial(GymEnv, "Pendulum-v1")] * 4, backend="multiprocessing",
        ...                     envs_per_worker=2)
        >>> pool.batch_size, pool.num_workers
        (torch.Size([4]), 2)
        >>> td = pool.reset()
        >>> half = td[:2].clone()
        >>> half["action"] = torch.zeros(2, 1)
        >>> pool.async_step_send(half)            # envs 0 and 1 step ...
        >>> out = pool.async_step_recv(min_get=2)  # ... while this process is free until here
        >>> out["env_index"].tolist(), out["next", "observation"].shape
        ([0, 1], torch.Size([2, 3]))
        >>> pool.close()
    """

    def __init__(self, env_makers: Callable | Sequence[Callable], *, backend: str = "threading",
                 stack: str = "dense", exchange: str | None = None, worker_affinity=None,
                 envs_per_worker: int | None = None, create_env_kwargs: dict | Sequence[dict] | None = None,
                 timeout: float | None = 300.0, mp_start_method: str | None = None, device=None):
        name = type(self).__name__
        makers = list(env_makers) if isinstance(env_makers, Sequence) else [env_makers]
        if not makers:
            raise ValueError(f"{name} requires at least one env maker")
        bad = [i for i, f in enumerate(makers) if not callable(f)]
        if bad:
            raise TypeError(f"{name} requires env_makers to be callables, got {type(makers[bad[0]]).__name__} "
                            f"at position {bad[0]}")
        n = len(makers)
        if create_env_kwargs is None:
            kwargs = [{} for _ in range(n)]
        elif isinstance(create_env_kwargs, Mapping):
            kwargs = [dict(create_env_kwargs) for _ in range(n)]
        else:
            kwargs = [dict(k) for k in create_env_kwargs]
            if len(kwargs) != n:
                raise ValueError(f"{name} requires create_env_kwargs to be a dict or a list of {n} dicts, "
                                 f"got {len(kwargs)}")
        if backend not in _BACKENDS:
            raise ValueError(f"{name} requires backend to be one of {list(_BACKENDS)}, got {backend!r}")
        if stack not in ("dense", "maybe_dense", "lazy"):
            raise ValueError(f"{name} requires stack to be 'dense', 'maybe_dense' or 'lazy', got {stack!r}")
        if exchange not in (None, "queue", "shm", "auto"):
            raise ValueError(f"{name} requires exchange to be 'queue', 'shm' or 'auto', got {exchange!r}")
        if backend != "multiprocessing":
            if exchange == "shm":
                raise ValueError(f"{name}: exchange='shm' is only supported with backend='multiprocessing'")
            if envs_per_worker not in (None, 1):
                raise ValueError(f"{name}: envs_per_worker is only supported with backend='multiprocessing', "
                                 f"got {envs_per_worker!r} with backend={backend!r}")
            if worker_affinity is not None:
                raise ValueError(f"{name}: worker_affinity is only supported with backend='multiprocessing'")
        if envs_per_worker is None:
            envs_per_worker = -(-n // _cpu_count()) if backend == "multiprocessing" else 1
        if isinstance(envs_per_worker, bool) or not isinstance(envs_per_worker, int) or envs_per_worker < 1:
            raise ValueError(f"{name} requires envs_per_worker to be a positive int, got {envs_per_worker!r}")
        timeout = _check_seconds(name, "timeout", timeout, allow_none=True)
        num_procs = -(-n // envs_per_worker)
        affinity = _check_affinity(name, worker_affinity, num_procs) if backend == "multiprocessing" else None
        d = self.__dict__
        d.update(env_makers=makers, num_envs=n, backend=backend, stack=stack, exchange=exchange,
                 worker_affinity=worker_affinity, envs_per_worker=envs_per_worker, create_env_kwargs=kwargs,
                 min_get=1)
        if backend == "threading":
            self._setup_threads(name, makers, kwargs, device)
        else:
            self._setup_processes(name, makers, kwargs, device, num_procs, affinity, timeout, mp_start_method)
        d["_inflight"] = np.zeros(n, dtype=np.int8)  # 0 idle, else the request code sent
        d["_sent"] = None  # the last tensordict rows sent per env (the root of the step results)
        d["_counts"] = {"sent": 0, "received": 0}

    def _setup_threads(self, name, makers, kwargs, device):
        envs = []
        try:
            for fn, kw in zip(makers, kwargs):
                envs.append(fn(**kw))
            layout = make_layout(envs[0], len(envs))
            for i, env in enumerate(envs):
                check_env_layout(env, layout, f"{name}: the env of env_makers number {i}")
        except BaseException:
            for env in envs:
                env.close()
            raise
        super().__init__(device=device, batch_size=[len(envs), *layout["sub_batch"]])
        arrays = allocate(layout)
        self._set_specs(envs[0])
        self._set_arrays(layout, arrays)
        runner = _Threads(envs, arrays, layout, max_threads=min(len(envs), _cpu_count()))
        set_plain(self, "_runner", runner)
        set_plain(self, "_subs", runner)
        set_plain(self, "_finalizer", weakref.finalize(self, runner.shutdown))

    def _setup_processes(self, name, makers, kwargs, device, num_procs, affinity, timeout, mp_start_method):
        from ...core.shared import SharedArrays

        method, ctx = _start_method(name, mp_start_method)
        n = len(makers)
        meta = makers[0](**kwargs[0])
        try:
            layout = make_layout(meta, n)
            check_env_layout(meta, layout, f"{name}: the env of env_makers")
            super().__init__(device=device, batch_size=[n, *layout["sub_batch"]])
            self._set_specs(meta)
            sub_attrs = frozenset(a for a in dir(meta) if not a.startswith("_"))
        finally:
            meta.close()
        epw = self.envs_per_worker
        slices = [(lo, min(lo + epw, n)) for lo in range(0, n, epw)]
        payloads = [_payload(name, (makers[lo:hi], kwargs[lo:hi]), method) for lo, hi in slices]
        shared = SharedArrays.create({**layout["shm"], **control_layout(num_procs, n)})
        spin = 50e-6 if num_procs < _cpu_count() else 0.0
        try:
            pool = WorkerPool(ctx, slices, payloads, shared, layout, daemon=False, timeout=timeout,
                              startup_timeout=None if timeout is None else 10 * timeout, shutdown_timeout=10.0,
                              flags=True, affinity=affinity, spin=spin, name=name)
        except BaseException:
            shared.close()
            raise
        self._set_arrays(layout, {k: shared[k] for k in layout["shm"]})
        d = self.__dict__
        d["_pool"] = pool
        d["_sub_attrs"] = sub_attrs
        d["_runner"] = _Processes(pool, [lo for lo, _ in slices], n)
        d["_starts"] = np.array([lo for lo, _ in slices], dtype=np.intp)
        d["_every"] = list(range(num_procs))
        d["_finalizer"] = weakref.finalize(self, pool.shutdown)
        d["mp_start_method"] = method
        _POOLS.add(pool)

    # ------------------------------------------------------------ TorchRL attributes
    @property
    def env_batch_sizes(self) -> list:
        """The batch size of every env."""
        return [torch.Size(self.batch_size[1:])] * self.num_envs

    @property
    def num_workers(self) -> int:
        """Worker processes (multiprocessing) or threads at most (threading)."""
        if self.backend == "multiprocessing":
            return len(self._pool.procs)
        return self._runner.executor._max_workers

    @property
    def worker_pids(self) -> list:
        """The process ids of the workers (multiprocessing backend)."""
        return self._pool.pids if self.backend == "multiprocessing" else []

    @property
    def resolved_exchange(self) -> str:
        """``"shm"`` for the multiprocessing backend, ``"queue"`` for threading (as TorchRL reports)."""
        return "shm" if self.backend == "multiprocessing" else "queue"

    @property
    def exchange_keys(self) -> tuple:
        """The keys exchanged through shared memory (empty for the threading backend)."""
        if self.backend != "multiprocessing":
            return ()
        return tuple(key for group in ("action", "state") for _, key, _, _ in self._layout[group])

    def stats(self, *, reset: bool = False) -> dict:
        """Counts of the env steps sent and received asynchronously."""
        out = dict(self._counts)
        if reset:
            self._counts.update(sent=0, received=0)
        return out

    # ------------------------------------------------------------ synchronous API
    def _check_idle(self) -> None:
        if self._inflight.any():
            raise RuntimeError(f"{type(self).__name__}: envs {np.flatnonzero(self._inflight).tolist()} are still "
                               "processing an asynchronous request; receive their results first")

    def _run_step(self) -> None:
        self._check_idle()
        self._runner.run_all(OP_STEP if self.backend == "multiprocessing" else REQ_STEP)

    def _run_reset(self, every: bool) -> None:
        self._check_idle()
        if self.backend == "multiprocessing":
            self._runner.run_all(OP_RESET_ALL if every else OP_RESET)
        else:
            self._runner.run_all(REQ_RESET if every else _MASKED_RESET)

    def _with_index(self, td):
        td.set("env_index", torch.arange(self.num_envs))
        return td

    def reset(self, tensordict=None, **kwargs):
        """Reset every env (or those flagged by ``"_reset"``); the result carries ``"env_index"``."""
        return self._with_index(super().reset(tensordict, **kwargs))

    def step(self, tensordict):
        """Step every env; the result carries ``"env_index"``."""
        return self._with_index(super().step(tensordict))

    def _check_open(self) -> None:
        if self.is_closed or self._runner.closed:
            set_plain(self, "is_closed", True)
            raise RuntimeError(f"{type(self).__name__} is closed (by close() or after a worker fault); make a new one")

    # ------------------------------------------------------------ seeding, attributes, closing
    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed env 0 with ``seed`` and each next one with the seed the previous returned; return the last."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self._check_open()
        self._check_idle()
        if self.backend == "threading":
            return self._runner.set_seed(seed, static_seed)
        for w in self._every:
            seed = pickle.loads(self._pool.command([w], b"d" + pickle.dumps((seed, static_seed)))[w])
        return seed

    def _sub_env_attribute(self, name):
        if self.backend == "multiprocessing" and name not in self.__dict__["_sub_attrs"]:
            raise _missing(self, name, "neither have its envs")
        return SubEnvMethod(self, name)

    def _query_sub_envs(self, name: str, call: bool, args: tuple, kwargs: dict) -> list:
        from .batched import ParallelEnv

        self._check_open()
        if self.backend == "threading":
            return self._runner.query(name, call, args, kwargs)
        return ParallelEnv._query_sub_envs(self, name, call, args, kwargs)

    def shutdown(self) -> None:
        """Stop the workers (or threads) and release the shared block; as ``close()``."""
        self.close()

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Stop the workers (or threads) and unlink the shared block; closing twice is harmless."""
        set_plain(self, "is_closed", True)
        finalizer = self.__dict__.get("_finalizer")
        if finalizer is not None:
            finalizer()
        self._drop_arrays()
        super().close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_envs={self.num_envs}, backend={self.backend!r}, "
                f"envs_per_worker={self.envs_per_worker}, batch_size={self.batch_size})")

