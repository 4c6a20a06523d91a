"""Sub-env stepping shared by ``SerialEnv`` and ``ParallelEnv``, and the worker process of ``ParallelEnv``.

Batch arrays: every key a sub-env reads or writes has one array of shape
``[num_workers, *leaf_shape]`` (the *layout*, built from the first sub-env's
specs): ``"action"`` entries (written by the parent), ``"root"`` entries
(observations and done flags after a reset), ``"next"`` entries
(observations, rewards and done flags after a step) and a ``"mask"`` array
of shape ``[num_workers]`` flagging the sub-envs to reset. ``SerialEnv``
keeps them in process memory; ``ParallelEnv`` keeps them in one
``numbarl.core.shared.SharedArrays`` block that the workers attach by name.

:class:`SubEnvs` steps a contiguous slice of sub-envs and writes their rows:
through the array protocol (``_np_step`` / ``_np_reset``) when a sub-env has
it, else through the TensorDict API.

Worker protocol (one ``multiprocessing`` pipe per worker process): the
parent sends a one-byte command, optionally followed by a pickled payload;
the worker answers ``b"k"`` (and a pickled payload where there is one) or
``b"E"`` followed by the formatted traceback of the exception it caught.

======  =========================================  ===================
byte    meaning                                    reply payload
======  =========================================  ===================
``s``   step every sub-env on the ``action`` rows  none
``r``   reset the sub-envs flagged in ``mask``     none
``d``   seed: payload ``(seed, static_seed)``      the next seed
``c``   close the sub-envs and exit                none
======  =========================================  ===================

The worker reports ``b"k"`` once its sub-envs are built (or ``b"E"``), keeps
torch to one thread, ignores SIGINT (the parent handles interrupts) and
exits when its pipe closes or the parent process disappears.
"""
from __future__ import annotations

import os
import pickle
import signal
import traceback

import numpy as np
import torch
from tensordict import TensorDict

from .._arrays import numpy_dtype

__all__ = []

GROUPS = ("action", "root", "next")


def _array_ready(env) -> bool:
    ready = getattr(env, "_array_path_ready", None)
    return bool(ready is not None and ready() and hasattr(env, "_np_step") and hasattr(env, "_np_reset"))


def make_layout(env, num_workers: int) -> dict:
    """The batch layout for ``num_workers`` copies of ``env`` (an env with an empty batch_size).

    Returns a dict with, for each group, a list of ``(name, key, shape, numpy dtype)``
    and ``"shm"``, the ``SharedArrays`` layout (name -> (shape, dtype)) of every array.
    """
    obs = list(env.full_observation_spec.keys(True, True))
    done = list(env.full_done_spec.keys(True, True))
    reward = list(env.full_reward_spec.keys(True, True))
    specs = {
        "action": [(k, env.full_action_spec[k]) for k in env.full_action_spec.keys(True, True)],
        "root": [(k, env.full_observation_spec[k]) for k in obs] + [(k, env.full_done_spec[k]) for k in done],
        "next": ([(k, env.full_observation_spec[k]) for k in obs] + [(k, env.full_reward_spec[k]) for k in reward]
                 + [(k, env.full_done_spec[k]) for k in done]),
    }
    layout = {"num_workers": num_workers, "shm": {"mask": ((num_workers,), np.bool_)}}
    for group in GROUPS:
        entries = []
        for i, (key, spec) in enumerate(specs[group]):
            name = f"{group}{i}"
            shape, dtype = tuple(spec.shape), numpy_dtype(spec.dtype)
            entries.append((name, key, shape, dtype))
            layout["shm"][name] = ((num_workers, *shape), dtype)
        layout[group] = entries
    return layout


def check_env_layout(env, layout: dict, where: str) -> None:
    """Raise ValueError unless ``env`` reads and writes exactly the keys, shapes and dtypes of ``layout``."""
    if tuple(env.batch_size) != ():
        raise ValueError(f"{where}: batched envs require sub-envs with an empty batch_size, "
                         f"got {tuple(env.batch_size)}")
    other = make_layout(env, layout["num_workers"])
    for group in GROUPS:
        mine = [(k, s, np.dtype(d)) for _, k, s, d in layout[group]]
        theirs = [(k, s, np.dtype(d)) for _, k, s, d in other[group]]
        if mine != theirs:
            raise ValueError(f"{where}: every sub-env must have the specs of the first one; {group} keys "
                             f"(key, shape, dtype) differ: first env {mine}, this env {theirs}")


def allocate(layout: dict) -> dict:
    """Process-local zero-filled batch arrays for ``layout`` (the ``SerialEnv`` storage)."""
    return {name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in layout["shm"].items()}


class SubEnvs:
    """Sub-envs ``lo .. lo + len(envs) - 1`` of a batch, stepping into the rows of the batch arrays.

    Args:
        envs: the sub-env objects.
        arrays: mapping from layout names to batch arrays (a dict or a ``SharedArrays``).
        layout: from :func:`make_layout`.
        lo: the batch index of ``envs[0]``.
    """

    def __init__(self, envs, arrays, layout: dict, lo: int = 0):
        self.envs = list(envs)
        self.lo = lo
        self.rows = range(lo, lo + len(self.envs))
        self.action = [(key, arrays[name]) for name, key, _, _ in layout["action"]]
        self.root = [(key, arrays[name]) for name, key, _, _ in layout["root"]]
        self.next = [(key, arrays[name]) for name, key, _, _ in layout["next"]]
        hi = lo + len(self.envs)
        # (key, batch array, its rows lo..hi with the first two dims merged): one concatenate fills them
        self.next_flat = [(key, dst, dst[lo:hi].reshape(-1, *dst.shape[2:]) if dst.ndim > 1 else None)
                          for key, dst in self.next]
        self.mask = arrays["mask"]
        single_action = len(self.action) == 1
        self.fast = [single_action and _array_ready(env) for env in self.envs]
        self.all_fast = all(self.fast)

    def step(self) -> None:
        """Step every sub-env with its ``action`` row; write its ``next`` rows."""
        if self.all_fast:
            act = self.action[0][1]
            outs = [env._np_step(act[i]) for i, env in zip(self.rows, self.envs)]
            self._gather(outs, self.next_flat)
            return
        nxt = self.next
        for i, env, fast in zip(self.rows, self.envs, self.fast):
            if fast:
                out = env._np_step(self.action[0][1][i])
                for key, dst in nxt:
                    dst[i] = out[key]
                continue
            td = TensorDict(batch_size=())
            for key, src in self.action:
                td.set(key, torch.from_numpy(np.array(src[i])))  # np.array: 0-d rows become arrays too
            out = env.step(td).get("next")
            for key, dst in nxt:
                dst[i] = out.get(key).numpy()

    def _gather(self, outs: list, triples: list) -> None:
        """Write ``outs[j][key]`` into row ``lo + j`` of each batch array: one concatenate per key."""
        for key, dst, flat in triples:
            parts = [out[key] for out in outs]
            if flat is not None:
                try:
                    np.concatenate(parts, out=flat)
                    continue
                except (ValueError, TypeError):  # 0-d or oddly shaped leaves: one row at a time
                    pass
            for i, part in zip(self.rows, parts):
                dst[i] = part

    def reset(self, use_mask: bool = True) -> None:
        """Reset the sub-envs flagged in ``mask`` (all of them when not ``use_mask``); write their ``root`` rows."""
        mask = self.mask
        root = self.root
        for i, env, fast in zip(self.rows, self.envs, self.fast):
            if use_mask and not mask[i]:
                continue
            if fast:
                out = env._np_reset()
                for key, dst in root:
                    dst[i] = out[key]
            else:
                out = env.reset()
                for key, dst in root:
                    dst[i] = out.get(key).numpy()

    def query(self, name: str, call: bool, args: tuple = (), kwargs: dict | None = None) -> list:
        """``getattr(env, name)`` of every sub-env, called with ``args`` / ``kwargs`` when ``call``, as a list.

        Calling a non-callable attribute reads it (TorchRL's
        ``ParallelEnv.attr()`` convention) and takes no arguments.
        """
        kwargs = kwargs or {}
        out = []
        for env in self.envs:
            value = getattr(env, name)
            if call:
                if callable(value):
                    value = value(*args, **kwargs)
                elif args or kwargs:
                    raise TypeError(f"attribute {name!r} of the sub-envs is a {type(value).__name__}, not callable; "
                                    f"call it without arguments to read it")
            out.append(value)
        return out

    def set_seed(self, seed, static_seed: bool):
        """Seed the sub-envs in order, each with the seed the previous one returned; return the last."""
        for env in self.envs:
            seed = env.set_seed(seed, static_seed=static_seed)
        return seed

    def close(self) -> None:
        """Close every sub-env (errors of one do not stop the others; the first is raised)."""
        first = None
        for env in self.envs:
            try:
                env.close()
            except Exception as err:  # noqa: BLE001 - re-raised below
                first = first or err
        if first is not None:
            raise first


def _error(text: str) -> bytes:
    return b"E" + text.encode("utf-8", "replace")


def _answer_query(subs: SubEnvs, request: bytes) -> bytes:
    """The reply to an attribute query: ``k`` + the pickled list, or ``x`` + (error type, message, traceback).

    An error here is the caller's (a missing attribute, a bad argument, a
    value that cannot be pickled): the worker stays up and the env usable.
    """
    try:
        name, call, args, kwargs = pickle.loads(request)
        values = subs.query(name, call, args, kwargs)
        try:
            return b"k" + pickle.dumps(values)
        except Exception as err:  # noqa: BLE001 - reported to the caller
            raise TypeError(f"the values of {name!r} cannot be sent back from the worker: "
                            f"{type(err).__name__}: {err}") from None
    except Exception as err:  # noqa: BLE001 - reported to the caller
        return b"x" + pickle.dumps((type(err).__name__, str(err), traceback.format_exc()))


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_main(conn, payload, shared, lo: int, layout: dict, parent_pid: int, threads: int = 1) -> None:
    """Entry point of a worker process: build the sub-envs, then serve commands (see the module docstring).

    ``payload`` is ``(create_env_fns, create_env_kwargs)`` for this worker's
    sub-envs, pickled (or the objects themselves under the fork start method).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    subs = None
    fns, envs = [], []
    try:
        try:
            fns, kwargs = pickle.loads(payload) if isinstance(payload, bytes) else payload
            for j, (fn, kw) in enumerate(zip(fns, kwargs)):
                envs.append(fn(**kw))
                check_env_layout(envs[-1], layout, f"sub-env {lo + j}")
            subs = SubEnvs(envs, shared, layout, lo)
        except BaseException:
            text = traceback.format_exc()
            for env in envs:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - the build error is the one to report
                    pass
            conn.send_bytes(_error(f"while building sub-envs {lo}..{lo + max(len(fns), 1) - 1}:\n{text}"))
            return
        conn.send_bytes(b"k")
        _serve(conn, subs, parent_pid)
    finally:
        if subs is not None:
            try:
                subs.close()
            except Exception:  # noqa: BLE001 - the process is ending; nothing to report to
                pass
        try:
            shared.close()
        except Exception:  # noqa: BLE001
            pass
        conn.close()


def _serve(conn, subs: SubEnvs, parent_pid: int) -> None:
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
            if cmd == b"s":
                subs.step()
                reply = b"k"
            elif cmd == b"r":
                subs.reset()
                reply = b"k"
            elif cmd == b"d":
                seed, static = pickle.loads(msg[1:])
                reply = b"k" + pickle.dumps(subs.set_seed(seed, static))
            elif cmd == b"a":
                reply = _answer_query(subs, msg[1:])
            elif cmd == b"c":
                try:
                    subs.close()
                    reply = b"k"
                finally:
                    subs.envs = []
                conn.send_bytes(reply)
                return
            else:
                reply = _error(f"unknown command {cmd!r}")
        except Exception:  # noqa: BLE001 - every error goes back to the parent
            reply = _error(f"in sub-envs {subs.lo}..{subs.lo + len(subs.envs) - 1}:\n" + traceback.format_exc())
        try:
            conn.send_bytes(reply)
        except (BrokenPipeError, OSError):
            return


# ---------------------------------------------------------------------------- parent side
class EnvWorkerError(RuntimeError):
    """A worker process of a ``ParallelEnv`` raised, died or stopped answering; the env is closed.

    Raised by ``ParallelEnv`` after every worker has been ended and the shared
    block unlinked. The message names the worker, its process id and its
    sub-envs and ends with the worker's traceback, also kept in
    ``worker_traceback`` (empty when the worker died without one, e.g.
    killed by a signal).

    Args:
        message: what happened, and to which worker.
        worker_traceback: the traceback formatted in the worker, if any.

    Raises:
        Nothing itself; ``ParallelEnv`` raises it.

    Examples:
        >>> err = EnvWorkerError("worker 0 raised", "ValueError: boom")
        >>> err.worker_traceback
        'ValueError: boom'
        >>> print(err)
        worker 0 raised
        <BLANKLINE>
        worker traceback:
        ValueError: boom
        >>> isinstance(err, RuntimeError)
        True
    """

    def __init__(self, message: str, worker_traceback: str = ""):
        super().__init__(message + (f"\n\nworker traceback:\n{worker_traceback}" if worker_traceback else ""))
        self.worker_traceback = worker_traceback


def _exit_text(code) -> str:
    if code is None:
        return "is not answering"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerPool:
    """The worker processes of one ``ParallelEnv``, their pipes and the batch's shared block.

    The pool owns all three: :meth:`shutdown` (also run by the env's
    finalizer) ends every process and closes (unlinks) the block; any fault
    seen by :meth:`command` does the same before raising
    :class:`EnvWorkerError`. Every wait polls the pipes together with the
    process sentinels, so a worker that dies is seen at once, and gives up
    after ``timeout`` seconds.
    """

    def __init__(self, ctx, slices, payloads, shared, layout: dict, *, daemon: bool, timeout: float | None,
                 startup_timeout: float | None, shutdown_timeout: float, threads: int = 1):
        import select

        self.shared = shared
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.procs, self.conns, self.slices = [], [], list(slices)
        self.poller = select.poll()
        self.events = select.POLLIN | select.POLLHUP | select.POLLERR
        self.fds = {}
        self.owing = set()  # workers whose reply to an earlier command has not been read (interrupted wait)
        self.closed = False
        try:
            for w, ((lo, hi), payload) in enumerate(zip(self.slices, payloads)):
                mine, theirs = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=worker_main, args=(theirs, payload, shared, lo, layout, os.getpid(), threads),
                                   daemon=daemon, name=f"numbarl-ParallelEnv-worker-{w}")
                proc.start()
                theirs.close()
                self.procs.append(proc)
                self.conns.append(mine)
                self.fds[mine.fileno()] = (False, w)
                self.fds[proc.sentinel] = (True, w)
                self.poller.register(mine.fileno(), self.events)
                self.poller.register(proc.sentinel, self.events)
                self.owing.add(w)
            self.collect(range(len(self.procs)), startup_timeout)
        except BaseException:
            self.shutdown(graceful=False)
            raise

    @property
    def pids(self) -> list:
        return [p.pid for p in self.procs]

    def fault(self, message: str, worker_traceback: str = ""):
        """End every worker, release the block and raise EnvWorkerError."""
        self.shutdown(graceful=False)
        raise EnvWorkerError(message, worker_traceback)

    def send(self, workers, message: bytes) -> None:
        if self.closed:
            raise EnvWorkerError("the ParallelEnv is closed: its workers have been shut down")
        if self.owing:  # a wait was interrupted (e.g. KeyboardInterrupt): read those replies first
            self.collect(sorted(self.owing), self.timeout)
        for w in workers:
            try:
                self.conns[w].send_bytes(message)
            except OSError:
                self._died(w)
            self.owing.add(w)

    def _died(self, w: int):
        proc = self.procs[w]
        proc.join(1.0)
        lo, hi = self.slices[w]
        self.fault(f"ParallelEnv worker {w} (pid {proc.pid}, sub-envs {lo}..{hi - 1}) "
                   f"{_exit_text(proc.exitcode)}; every worker has been shut down")

    def collect(self, workers, timeout) -> dict:
        """Wait for one reply from each of ``workers``; return ``{worker: payload}``."""
        import time

        pending = set(workers)
        replies = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            wait = 1000 if deadline is None else max(0, min(1000, int((deadline - time.monotonic()) * 1000) + 1))
            events = self.poller.poll(wait)
            if not events:
                for w, proc in enumerate(self.procs):
                    if not proc.is_alive():
                        self._died(w)
                if deadline is not None and time.monotonic() >= deadline:
                    self.fault(f"ParallelEnv workers {sorted(pending)} gave no reply within {timeout} s; "
                               "every worker has been shut down (raise the env's timeout for slow envs)")
                continue
            for fd, _ in events:
                is_sentinel, w = self.fds[fd]
                if is_sentinel:
                    self._died(w)
                try:
                    msg = self.conns[w].recv_bytes()
                except (EOFError, OSError):
                    self._died(w)
                if msg[:1] == b"E":
                    lo, hi = self.slices[w]
                    self.fault(f"ParallelEnv worker {w} (pid {self.procs[w].pid}, sub-envs {lo}..{hi - 1}) raised; "
                               "every worker has been shut down", msg[1:].decode("utf-8", "replace"))
                replies[w] = msg[1:] if msg[:1] == b"k" else msg  # other replies keep their tag (``x``)
                pending.discard(w)
                self.owing.discard(w)
        return replies

    def command(self, workers, message: bytes) -> dict:
        """Send ``message`` to ``workers`` and wait for their replies."""
        self.send(workers, message)
        return self.collect(workers, self.timeout)

    def shutdown(self, graceful: bool = True) -> None:
        """Close the workers (asking first when ``graceful``), then the pipes and the block. Idempotent."""
        import time

        if self.closed:
            return
        self.closed = True
        alive = [(c, p) for c, p in zip(self.conns, self.procs) if p.is_alive()]
        if graceful:
            for conn, _ in alive:
                try:
                    conn.send_bytes(b"c")
                except OSError:
                    pass
            deadline = time.monotonic() + self.shutdown_timeout
            for _, proc in alive:
                proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        for fd in self.fds:
            try:
                self.poller.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            if proc.exitcode is not None:
                proc.close()
        self.shared.close()
