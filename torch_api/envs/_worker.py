"""The worker process of ``ParallelEnv`` / ``AsyncEnvPool`` and the parent's side of it (:class:`WorkerPool`).

The batch layout and the stepping of a slice of sub-envs (:class:`SubEnvs`)
live in ``_sub_envs``; their names stay importable from here.

Flag protocol (steps and resets, no pipe message per step): the block holds
a ``"ctl"`` array of ``CTL_WORDS`` int32 words per worker (two 64-byte
lines, one written by each side). The parent writes the command word
``CMD`` (``OP_STEP``, ``OP_RESET`` for the sub-envs flagged in ``mask``,
``OP_RESET_ALL``, ``OP_ROWS`` for the per-env requests of an
``AsyncEnvPool``, ``OP_PIPE`` for "read a message from the pipe"), bumps
``SEQ`` and wakes the worker (futex). The worker, sleeping on ``SEQ`` after
a short spin, runs the command, stores ``STATUS`` (0, or 1 after sending
its traceback on the pipe) and ``DONE = SEQ``, and wakes the parent. A
batch step is one wake-up per worker each way.

Pipe protocol (seeding, attribute queries, close, and every command of a
pool made without flags): the parent sends a one-byte command, optionally
followed by a pickled payload; the worker answers ``b"k"`` (and a pickled
payload where there is one) or ``b"E"`` followed by the formatted
traceback of the exception it caught.

======  =========================================  ===================
byte    meaning                                    reply payload
======  =========================================  ===================
``s``   step every sub-env on the ``action`` rows  none
``r``   reset the sub-envs flagged in ``mask``     none
``d``   seed: payload ``(seed, static_seed)``      the next seed
``a``   attribute query of the sub-envs            the pickled list
``c``   close the sub-envs and exit                none
======  =========================================  ===================

The worker reports ``b"k"`` once its sub-envs are built (or ``b"E"``),
pins itself to its CPUs when given some, keeps torch to one thread,
ignores SIGINT (the parent handles interrupts) and exits when its pipe
closes or the parent process disappears.
"""
from __future__ import annotations

import os
import pickle
import signal
import traceback

import numpy as np
import torch

__all__ = []

# The layout and the sub-env stepping live in ``_sub_envs``; these names stay importable from here.
from ._sub_envs import GROUPS, SubEnvs, _array_ready, allocate, check_env_layout, check_worker_env, make_layout  # noqa: E402,F401

# Command words (see "Flag protocol" in the module docstring).
CTL_WORDS = 32  # int32 words per worker: two 64-byte lines, one written by each side
SEQ, CMD, ARG = 0, 1, 2  # written by the parent (first line)
DONE, STATUS = 16, 17  # written by the worker (second line)
OP_STEP, OP_RESET, OP_RESET_ALL, OP_PIPE, OP_ROWS = 1, 2, 3, 4, 5
# per-env request codes (``AsyncEnvPool``): the "req" array of the block
REQ_STEP, REQ_RESET, REQ_STEP_RESET = 1, 2, 3


def control_layout(num_processes: int, num_envs: int | None = None) -> dict:
    """The extra arrays of a flag-stepped block: command words, and per-env request/ready flags for a pool."""
    out = {"ctl": ((num_processes, CTL_WORDS), np.int32)}
    if num_envs is not None:
        out["req"] = ((num_envs,), np.int8)
        out["ready"] = ((num_envs,), np.int8)
    return out


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


def _apply_affinity(cpus) -> None:
    if cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))


def worker_main(conn, payload, shared, lo: int, layout: dict, parent_pid: int, threads: int = 1,
                index: int | None = None, affinity=None, spin: float = 0.0) -> None:
    """Entry point of a worker process: build the sub-envs, then serve commands (see the module docstring).

    ``payload`` is ``(create_env_fns, create_env_kwargs)`` for this worker's
    sub-envs, pickled (or the objects themselves under the fork start method).
    With ``index`` (this worker's number) and a ``"ctl"`` array in ``shared``,
    commands come through the flag protocol; otherwise through the pipe.
    ``affinity``: CPUs to pin this process to, before anything is built.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _apply_affinity(affinity)
    torch.set_num_threads(threads)
    subs = None
    fns, envs = [], []
    try:
        try:
            fns, kwargs = pickle.loads(payload) if isinstance(payload, bytes) else payload
            for j, (fn, kw) in enumerate(zip(fns, kwargs)):
                envs.append(fn(**kw))
                check_worker_env(envs[-1])
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
        if index is not None and "ctl" in shared:
            _serve_flags(conn, subs, shared, index, parent_pid, spin)
        else:
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


def _handle(conn, subs: SubEnvs, msg: bytes):
    """The reply to a pipe command, and whether the worker must stop."""
    cmd = msg[:1]
    try:
        if cmd == b"s":
            subs.step()
            return b"k", False
        if cmd == b"r":
            subs.reset()
            return b"k", False
        if cmd == b"d":
            seed, static = pickle.loads(msg[1:])
            return b"k" + pickle.dumps(subs.set_seed(seed, static)), False
        if cmd == b"a":
            return _answer_query(subs, msg[1:]), False
        if cmd == b"c":
            try:
                subs.close()
            finally:
                subs.envs = []
            return b"k", True
        return _error(f"unknown command {cmd!r}"), False
    except Exception:  # noqa: BLE001 - every error goes back to the parent
        return _error(f"in sub-envs {subs.lo}..{subs.lo + len(subs.envs) - 1}:\n" + traceback.format_exc()), False


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
        reply, stop = _handle(conn, subs, msg)
        try:
            conn.send_bytes(reply)
        except (BrokenPipeError, OSError):
            return
        if stop:
            return


def _run_rows(subs: SubEnvs, req, ready) -> None:
    """Serve the per-env requests of this worker's rows (``AsyncEnvPool``): step, reset, or step then maybe reset."""
    lo = subs.lo
    n = len(subs.envs)
    pending = [j for j in range(n) if req[lo + j]]
    if not pending:
        return
    codes = [int(req[lo + j]) for j in pending]
    steps = [j for j, c in zip(pending, codes) if c in (REQ_STEP, REQ_STEP_RESET)]
    if steps:
        subs.step(steps)
    resets = [j for j, c in zip(pending, codes) if c == REQ_RESET]
    if resets:
        subs.reset(use_mask=False, which=resets)
    maybe = [j for j, c in zip(pending, codes) if c == REQ_STEP_RESET]
    if maybe:
        maybe_reset_rows(subs, maybe)
    for j in pending:
        req[lo + j] = 0
        ready[lo + j] = 1


def maybe_reset_rows(subs: SubEnvs, which) -> None:
    """Reset the members of the sub-envs ``which`` (local indices) whose ``next`` done flag is set."""
    done = dict(subs.next).get("done")
    if done is None:
        return
    mask, lo = subs.mask, subs.lo
    flagged = []
    for j in which:
        row = done[lo + j]
        mask[lo + j] = row.reshape(*row.shape[:len(subs.sub_batch)], -1).any(-1) if subs.sub_batch else row.any()
        if mask[lo + j].any():
            flagged.append(j)
    if flagged:
        subs.reset(use_mask=True, which=flagged)


def _serve_flags(conn, subs: SubEnvs, shared, index: int, parent_pid: int, spin: float) -> None:
    """Serve commands given through the command words of worker ``index`` (see the module docstring)."""
    from ...core.flags import Words

    words = Words(shared["ctl"][index])
    req = shared["req"] if "req" in shared else None
    ready = shared["ready"] if "ready" in shared else None
    last = 0  # the block starts zero-filled and the parent commands only after this worker said it was ready
    while True:
        if not words.wait_change(SEQ, last, 1.0, spin):
            if not _parent_alive(parent_pid):
                return
            continue
        last = words[SEQ]
        op = words[CMD]
        stop = False
        error = None
        try:
            if op == OP_STEP:
                subs.step()
            elif op == OP_RESET:
                subs.reset()
            elif op == OP_RESET_ALL:
                subs.reset(use_mask=False)
            elif op == OP_ROWS:
                _run_rows(subs, req, ready)
            elif op == OP_PIPE:
                try:
                    msg = conn.recv_bytes()
                except (EOFError, OSError):
                    return
                reply, stop = _handle(conn, subs, msg)
                try:
                    conn.send_bytes(reply)
                except (BrokenPipeError, OSError):
                    return
            else:
                raise ValueError(f"unknown command word {op}")
        except Exception:  # noqa: BLE001 - every error goes back to the parent
            error = _error(f"in sub-envs {subs.lo}..{subs.lo + len(subs.envs) - 1}:\n" + traceback.format_exc())
        if error is not None:
            try:
                conn.send_bytes(error)
            except (BrokenPipeError, OSError):
                return
        words[STATUS] = 0 if error is None else 1
        words[DONE] = last
        words.wake(DONE)
        if stop:
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
    """The worker processes of one batched env, their pipes and the batch's shared block.

    The pool owns all three: :meth:`shutdown` (also run by the env's
    finalizer) ends every process and closes (unlinks) the block; any fault
    seen by :meth:`command` does the same before raising
    :class:`EnvWorkerError`. Every wait watches the process sentinels (or
    polls liveness between futex sleeps), so a worker that dies is seen at
    once, and gives up after ``timeout`` seconds.

    With ``flags`` (the block holds a ``"ctl"`` array from
    :func:`control_layout`), steps and resets go through the command words:
    no pipe message per step. Other commands (seeding, attribute queries,
    close) still travel through the pipes.
    """

    WAIT_SLICE = 0.05  # seconds between liveness checks while sleeping on a completion word

    def __init__(self, ctx, slices, payloads, shared, layout: dict, *, daemon: bool, timeout: float | None,
                 startup_timeout: float | None, shutdown_timeout: float, threads: int = 1, flags: bool = False,
                 affinity=None, spin: float = 0.0, name: str = "ParallelEnv"):
        import select

        self.shared = shared
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.name = name
        self.spin = spin
        self.procs, self.conns, self.slices = [], [], list(slices)
        self.poller = select.poll()
        self.events = select.POLLIN | select.POLLHUP | select.POLLERR
        self.fds = {}
        self.owing = set()  # workers whose reply to an earlier command has not been read (interrupted wait)
        self.closed = False
        self.words = None
        self.posted_at = {}  # worker -> when its last per-env requests were posted
        if flags:
            from ...core.flags import Words

            self.words = [Words(row) for row in shared["ctl"]]
        try:
            for w, ((lo, hi), payload) in enumerate(zip(self.slices, payloads)):
                mine, theirs = ctx.Pipe(duplex=True)
                cpus = None if affinity is None else affinity[w]
                proc = ctx.Process(target=worker_main,
                                   args=(theirs, payload, shared, lo, layout, os.getpid(), threads,
                                         w if flags else None, cpus, spin),
                                   daemon=daemon, name=f"numbarl-{name}-worker-{w}")
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

    def _who(self, w: int) -> str:
        lo, hi = self.slices[w]
        return f"worker {w} (pid {self.procs[w].pid}, sub-envs {lo}..{hi - 1})"

    def _check_open(self) -> None:
        if self.closed:
            raise EnvWorkerError(f"the {self.name} is closed: its workers have been shut down")

    def _hang(self, workers, timeout) -> None:
        who = ", ".join(self._who(w) for w in sorted(workers))
        self.fault(f"{self.name} {who} gave no reply within {timeout} s; every worker has been shut down. "
                   f"The default timeout is 300 s; for slow envs pass {self.name}(..., timeout=seconds), "
                   "or timeout=None (or float('inf')) to wait without a limit")

    # ------------------------------------------------------------ flag protocol
    def _bump(self, w: int, op: int) -> None:
        """Give worker ``w`` the command word ``op`` and wake it (after its previous command is done)."""
        words = self.words[w]
        if words[DONE] != words[SEQ]:  # an earlier wait was interrupted: finish it first
            self.wait([w])
        words[CMD] = op
        words[SEQ] = (words[SEQ] + 1) & 0x3FFFFFFF
        words.wake(SEQ)

    def signal(self, workers, op: int) -> None:
        """Start command ``op`` in ``workers`` without waiting (the send half of :meth:`run`)."""
        self._check_open()
        if self.owing:
            self.collect(sorted(self.owing), self.timeout)
        for w in workers:
            self._bump(w, op)

    def post_rows(self, w: int) -> None:
        """Wake worker ``w`` to serve the per-env requests flagged in ``req`` (``OP_ROWS``), without waiting.

        A worker busy with earlier requests rescans them once done, so
        nothing waits here unless it is running another kind of command.
        """
        import time

        words = self.words[w]
        if words[DONE] != words[SEQ] and words[CMD] != OP_ROWS:
            self.wait([w])
        self.posted_at[w] = time.monotonic()
        words[CMD] = OP_ROWS
        words[SEQ] = (words[SEQ] + 1) & 0x3FFFFFFF
        words.wake(SEQ)

    def wait_some(self, workers, timeout: float) -> None:
        """Sleep until the first of ``workers`` finishes a command (or ``timeout``); raise faults and hangs."""
        import time

        w = workers[0]
        words = self.words[w]
        cur = words[DONE]
        if cur == words[SEQ] or words.wait_change(DONE, cur, timeout, self.spin):
            if words[STATUS]:
                self._read_error(w)
            return
        for v in workers:
            if not self.procs[v].is_alive():
                self._died(v)
        if self.timeout is not None:
            now = time.monotonic()
            late = [v for v in workers if self.busy(v) and now - self.posted_at.get(v, now) >= self.timeout]
            if late:
                self._hang(late, self.timeout)

    def raise_status(self, w: int) -> None:
        """Raise worker ``w``'s error if its last finished command failed (nothing otherwise)."""
        if self.words[w][STATUS]:
            self._read_error(w)

    def busy(self, w: int) -> bool:
        """Whether worker ``w`` has not finished its last command word."""
        words = self.words[w]
        return words[DONE] != words[SEQ]

    def wait(self, workers, timeout="default") -> None:
        """Wait until ``workers`` have finished their last command word; raise their errors."""
        import time

        timeout = self.timeout if timeout == "default" else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        spin = self.spin
        for w in workers:
            words = self.words[w]
            target = words[SEQ]
            while True:
                cur = words[DONE]
                if cur == target:
                    break
                if words.wait_change(DONE, cur, self.WAIT_SLICE, spin):
                    continue
                spin = 0.0
                if not self.procs[w].is_alive():
                    self._died(w)
                if deadline is not None and time.monotonic() >= deadline:
                    self._hang([v for v in workers if self.words[v][DONE] != self.words[v][SEQ]], timeout)
            if words[STATUS]:
                self._read_error(w)

    def _read_error(self, w: int) -> None:
        conn = self.conns[w]
        text = ""
        try:
            if conn.poll(5.0):
                msg = conn.recv_bytes()
                text = msg[1:].decode("utf-8", "replace")
        except (EOFError, OSError):
            pass
        self.fault(f"{self.name} {self._who(w)} raised; every worker has been shut down", text)

    def run(self, workers, op: int) -> None:
        """Command word ``op`` in ``workers``, then wait for all of them: one wake-up per worker."""
        self.signal(workers, op)
        self.wait(workers)

    # ------------------------------------------------------------ pipe protocol
    def send(self, workers, message: bytes) -> None:
        self._check_open()
        if self.owing:  # a wait was interrupted (e.g. KeyboardInterrupt): read those replies first
            self.collect(sorted(self.owing), self.timeout)
        for w in workers:
            if self.words is not None and self.busy(w):
                self.wait([w])
            try:
                self.conns[w].send_bytes(message)
            except OSError:
                self._died(w)
            self.owing.add(w)
            if self.words is not None:
                self._bump(w, OP_PIPE)

    def send_to(self, w: int, message: bytes) -> None:
        """Send ``message`` to worker ``w`` alone, without first reading what other workers still owe."""
        try:
            self.conns[w].send_bytes(message)
        except OSError:
            self._died(w)
        self.owing.add(w)

    def recv_from(self, w: int) -> bytes:
        """Read worker ``w``'s reply, tag included, leaving the other workers' replies unread."""
        try:
            msg = self.conns[w].recv_bytes()
        except (EOFError, OSError):
            self._died(w)
        self.owing.discard(w)
        return msg

    def check_alive(self, workers) -> None:
        """Fault (as a dead worker does everywhere else) if one of ``workers`` exited with no reply left to read."""
        for w in workers:
            if not self.procs[w].is_alive() and not self.conns[w].poll(0):
                self._died(w)

    def _died(self, w: int):
        proc = self.procs[w]
        proc.join(1.0)
        self.fault(f"{self.name} {self._who(w)} {_exit_text(proc.exitcode)}; every worker has been shut down")

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
                    self._hang(pending, timeout)
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
                    self.fault(f"{self.name} {self._who(w)} raised; every worker has been shut down",
                               msg[1:].decode("utf-8", "replace"))
                replies[w] = msg[1:] if msg[:1] == b"k" else msg  # other replies keep their tag (``x``)
                pending.discard(w)
                self.owing.discard(w)
        return replies

    def command(self, workers, message: bytes) -> dict:
        """Send ``message`` to ``workers`` and wait for their replies (steps and resets use the words when set)."""
        if self.words is not None and message in (b"s", b"r"):
            self.run(workers, OP_STEP if message == b"s" else OP_RESET)
            return {w: b"" for w in workers}
        self.send(workers, message)
        return self.collect(workers, self.timeout)

    def shutdown(self, graceful: bool = True) -> None:
        """Close the workers (asking first when ``graceful``), then the pipes and the block. Idempotent."""
        import time

        if self.closed:
            return
        self.closed = True
        alive = [(w, c, p) for w, (c, p) in enumerate(zip(self.conns, self.procs)) if p.is_alive()]
        if graceful:
            for w, conn, _ in alive:
                if self.words is not None and self.busy(w):
                    continue  # still working (or hung): ended below
                try:
                    conn.send_bytes(b"c")
                except OSError:
                    continue
                if self.words is not None:
                    words = self.words[w]
                    words[CMD] = OP_PIPE
                    words[SEQ] = (words[SEQ] + 1) & 0x3FFFFFFF
                    words.wake(SEQ)
            deadline = time.monotonic() + self.shutdown_timeout
            for _, _, proc in alive:
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
        self.words = None
        self.shared.close()
