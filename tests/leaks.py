"""Leak checks shared by the tests: child processes and shared-memory blocks left behind.

``track_blocks`` records the name of every ``SharedArrays`` block this
process creates (other processes on the machine may create ``numbarl_``
blocks at the same time, so checks look at these names, not at all of
/dev/shm); ``snapshot`` and ``leftovers`` compare the live children and the
recorded blocks with what existed before. Nested ``track_blocks`` (session,
module, test) each record every block made inside them.
"""
from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import time

from numbarl.core.shared import SharedArrays


def _ppid(pid: str):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def python_children() -> list:
    """(pid, command line) of the python processes whose parent is this process."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(entry) == me:
            cmd = _cmdline(int(entry))
            if "python" in cmd:
                out.append((int(entry), cmd))
    return out


def numbarl_blocks() -> set:
    return {name for name in os.listdir("/dev/shm") if name.startswith("numbarl_")}


class track_blocks:
    """Context manager recording the name of every ``SharedArrays`` block this process creates.

    Other processes on the machine may create ``numbarl_`` blocks at the same
    time, so leak checks look at these names rather than at all of /dev/shm.
    """

    def __enter__(self):
        self.names = []
        self._original = SharedArrays.__dict__["create"]
        create = self._original.__func__
        names = self.names

        def recording(cls, layout):
            block = create(cls, layout)
            names.append(block.name)
            return block

        SharedArrays.create = classmethod(recording)
        return self

    def __exit__(self, *exc):
        SharedArrays.create = self._original
        return False


def open_worker_pools() -> list:
    """The ParallelEnv worker pools of this process that are not shut down."""
    import sys

    batched = sys.modules.get("numbarl.torch_api.envs.batched")
    if batched is None:
        return []
    return [pool for pool in list(batched._POOLS) if not pool.closed]


def stop_forkserver() -> None:
    """Stop this process's multiprocessing fork server, if it runs (it is a python child of this process)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
        server._stop()


def snapshot() -> tuple:
    """The live multiprocessing children and python child processes of this process, before a test module."""
    return set(multiprocessing.active_children()), {pid for pid, _ in python_children()}


def leftovers(created: list, before: tuple = (set(), set())) -> list:
    """What this process left behind since ``before`` (from :func:`snapshot`): live children, and those of
    the ``created`` blocks still in /dev/shm."""
    gc.collect()
    problems = []
    deadline = time.monotonic() + 10
    while set(multiprocessing.active_children()) - before[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    active = set(multiprocessing.active_children()) - before[0]
    if active:
        problems.append(f"active children {sorted(active, key=str)}")
    pools = open_worker_pools()
    if pools:
        # reported, then ended: the fork server waits for its children, so stopping it would never return
        problems.append(f"{len(pools)} ParallelEnv worker pool(s) left open (pids {[p.pids for p in pools]})")
        for pool in pools:
            pool.shutdown(graceful=False)
    stop_forkserver()
    from multiprocessing import resource_tracker

    tracker = getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)
    stray = [c for c in python_children() if c[0] != tracker and c[0] not in before[1]]
    if stray:
        problems.append(f"python children {stray}")
    blocks = sorted(set(created) & numbarl_blocks())
    if blocks:
        problems.append(f"shared blocks {blocks}")
    return problems


@contextlib.contextmanager
def nothing_left(label: str):
    """Around a block (a session, a test module): afterwards, assert it left no child process and no block."""
    before = snapshot()
    with track_blocks() as blocks:
        yield
    problems = leftovers(blocks.names, before)
    assert not problems, f"{label} left {problems}"
