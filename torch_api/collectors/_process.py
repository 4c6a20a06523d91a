"""Worker processes of the multi-process collectors, on the machinery of ``ParallelEnv``.

Each worker builds one :class:`~numbarl.torch_api.collectors.Collector` (its
env, policy and options come pickled once, at start) and collects batches
into its rows of one ``numbarl.core.shared.SharedArrays`` block; the parent
reads them there. The pipe carries one command byte per batch, never data.

Start-up, in two steps: the worker builds its collector and answers with the
layout of one batch (key -> shape, dtype); the parent makes the block (one
array per key with a leading worker dim, the policy weights, the trajectory-id
counter and a weights version) and sends its name to each worker in turn,
which attaches it and takes its first trajectory ids from the shared counter.

======  =========================================  ===================
byte    meaning                                    reply payload
======  =========================================  ===================
``c``   collect one batch (policy actions)         frames collected
``R``   collect one batch with random actions      frames collected
``a``   attach: payload is the block's name        none
``d``   seed: payload ``(seed, static_seed)``      the next seed
``e``   reset: payload ``index`` (or None)         none
``q``   state_dict of the worker's env             the state dict
``x``   close the collector and exit               none
======  =========================================  ===================

Policy weights live in the block; the parent bumps ``weights_version`` after
writing new ones (under the block's lock), and a worker copies them into its
policy module at the start of a batch when the version changed: no module is
pickled per batch. Faults are handled by ``_worker.WorkerPool``: an exception
in a worker comes back with its traceback, a dead worker is seen through its
process sentinel, and either way every worker is ended and the block unlinked.
"""
from __future__ import annotations

import os
import pickle
import signal
import traceback

import numpy as np
import torch

from .._arrays import numpy_dtype
from ..envs._worker import WorkerPool, _error, _parent_alive

__all__ = []


def key_name(key) -> str:
    return "/".join(key) if isinstance(key, tuple) else key


def name_key(name: str):
    parts = tuple(name.split("/"))
    return parts[0] if len(parts) == 1 else parts


def policy_tensors(policy) -> dict:
    """name -> tensor of every parameter and buffer of a module policy (empty for other callables)."""
    if not isinstance(policy, torch.nn.Module):
        return {}
    out = dict(policy.named_parameters())
    out.update(policy.named_buffers())
    return out


class _Worker:
    def __init__(self, payload):
        from .collector import Collector

        create_env_fn, policy, policy_factory, kwargs, worker_idx = (
            pickle.loads(payload) if isinstance(payload, bytes) else payload)
        if policy_factory is not None:
            policy = policy_factory()
        self.policy = policy  # as given: its parameter names are the parent's
        self.collector = Collector(create_env_fn, policy, worker_idx=worker_idx, return_same_td=True, **kwargs)
        self.idx = worker_idx
        self.shared = None
        self.version = 0

    def layout(self) -> dict:
        c = self.collector
        out = c._allocate()
        if out is None:
            raise TypeError("the multi-process collectors need envs with numbarl's array path")
        out.set(("collector", "traj_ids"), torch.zeros(out.shape, dtype=torch.int64))
        return {key_name(k): (tuple(out.get(k).shape), numpy_dtype(out.get(k).dtype)) for k in out.keys(True, True)}

    def attach(self, name: str) -> None:
        from ...core.shared import SharedArrays
        from ._trajs import TrajPool

        self.shared = SharedArrays.attach(name)
        c = self.collector
        c._traj_pool = TrajPool(self.shared["traj_counter"], self.shared.lock())
        c._traj_current = c._traj_pool.take(c.n_env)
        self.rows = [(k, self.shared[k][self.idx]) for k in self.shared.keys()
                     if not k.startswith(("policy:", "traj_counter", "weights_version"))]
        self.weights = [(t, self.shared["policy:" + n]) for n, t in policy_tensors(self.policy).items()]
        self._sync_weights()

    def _sync_weights(self) -> None:
        version = int(self.shared["weights_version"][0])
        if version == self.version or not self.weights:
            return
        with self.shared.lock():
            with torch.no_grad():
                for tensor, arr in self.weights:
                    tensor.copy_(torch.from_numpy(arr))
            self.version = int(self.shared["weights_version"][0])

    def collect(self, random: bool) -> int:
        c = self.collector
        self._sync_weights()
        out = c.rollout(random=random)
        for key, row in self.rows:
            row[...] = out.get(name_key(key)).numpy()
        return out.numel()

    def close(self) -> None:
        try:
            self.collector.shutdown()
        finally:
            if self.shared is not None:
                self.shared.close()


def collector_worker_main(conn, payload, shared, lo: int, layout, parent_pid: int, threads: int = 1) -> None:
    """Entry point of a collector worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    worker = None
    try:
        try:
            worker = _Worker(payload)
            reply = b"k" + pickle.dumps(worker.layout())
        except BaseException:
            conn.send_bytes(_error(f"while building collector {lo}:\n{traceback.format_exc()}"))
            return
        conn.send_bytes(reply)
        _serve(conn, worker, parent_pid)
    finally:
        if worker is not None:
            try:
                worker.close()
            except Exception:  # noqa: BLE001 - the process is ending
                pass
        conn.close()


def _serve(conn, worker: _Worker, parent_pid: int) -> None:
    while True:
        if not conn.poll(1.0):
            if not _parent_alive(parent_pid):
                return
            continue
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        cmd = msg[:1]
        try:
            if cmd in (b"c", b"R"):
                reply = b"k" + pickle.dumps(worker.collect(cmd == b"R"))
            elif cmd == b"a":
                worker.attach(msg[1:].decode())
                reply = b"k"
            elif cmd == b"d":
                seed, static = pickle.loads(msg[1:])
                reply = b"k" + pickle.dumps(worker.collector.set_seed(seed, static))
            elif cmd == b"e":
                worker.collector.reset(pickle.loads(msg[1:]))
                reply = b"k"
            elif cmd == b"q":
                reply = b"k" + pickle.dumps(worker.collector.state_dict())
            elif cmd == b"x":
                conn.send_bytes(b"k")
                return
            else:
                reply = _error(f"unknown command {cmd!r}")
        except Exception:  # noqa: BLE001 - every error goes back to the parent
            reply = _error(f"in collector worker {worker.idx}:\n" + traceback.format_exc())
        try:
            conn.send_bytes(reply)
        except (BrokenPipeError, OSError):
            return


class _NoBlock:
    """Stands in for the shared block until the workers have told its layout."""

    def close(self) -> None:
        pass


class CollectorPool(WorkerPool):
    """``WorkerPool`` with collector workers: same waits, faults and shutdown; one process per collector."""

    def __init__(self, ctx, payloads, owner: str, *, timeout, startup_timeout, shutdown_timeout, daemon=False):
        import select

        self.owner = owner
        self.shared = _NoBlock()
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.procs, self.conns, self.slices = [], [], [(w, w + 1) for w in range(len(payloads))]
        self.poller = select.poll()
        self.events = select.POLLIN | select.POLLHUP | select.POLLERR
        self.fds = {}
        self.owing = set()
        self.closed = False
        self.name = owner
        self.spin = 0.0
        self.words = None  # collector workers take their commands through the pipe, one per batch
        self.posted_at = {}
        try:
            for w, payload in enumerate(payloads):
                mine, theirs = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=collector_worker_main,
                                   args=(theirs, payload, None, w, None, os.getpid(), 1),
                                   daemon=daemon, name=f"numbarl-{owner}-worker-{w}")
                proc.start()
                theirs.close()
                self.procs.append(proc)
                self.conns.append(mine)
                self.fds[mine.fileno()] = (False, w)
                self.fds[proc.sentinel] = (True, w)
                self.poller.register(mine.fileno(), self.events)
                self.poller.register(proc.sentinel, self.events)
                self.owing.add(w)
            self.layouts = {w: pickle.loads(v) for w, v in self.collect(range(len(self.procs)),
                                                                        startup_timeout).items()}
        except BaseException:
            self.shutdown(graceful=False)
            raise

    def fault(self, message: str, worker_traceback: str = ""):
        super().fault(message.replace("ParallelEnv worker", f"{self.owner} worker")
                      .replace("ParallelEnv workers", f"{self.owner} workers")
                      .replace(", sub-envs", ", collector"), worker_traceback)

    def shutdown(self, graceful: bool = True) -> None:
        if not self.closed and graceful:
            # Workers exit on ``x``; the base class sends ``c`` (collect, here), so ask first.
            for conn, proc in zip(self.conns, self.procs):
                if proc.is_alive():
                    try:
                        conn.send_bytes(b"x")
                    except OSError:
                        pass
            import time

            deadline = time.monotonic() + self.shutdown_timeout
            for proc in self.procs:
                proc.join(max(0.0, deadline - time.monotonic()))
        super().shutdown(graceful=False)
