"""Waiting on an int32 in shared memory: a short spin, then a futex sleep.

Batched envs step their workers through command and completion words kept in
a :class:`numbarl.core.shared.SharedArrays` block rather than through a pipe
message per step. The parent stores a command and bumps a sequence word, then
wakes the worker; the worker stores its completion and wakes the parent. A
waiter first re-reads the word for ``spin`` seconds (cheap when the other side
answers within microseconds and a core is free), then sleeps in the kernel
with ``FUTEX_WAIT`` until the word changes, a ``FUTEX_WAKE`` arrives or the
timeout expires. A batch step thus costs one wake-up per worker.

The futex calls are Linux system calls made through ``ctypes``; the shared
mapping is not private, so the calls use the shared (non-``PRIVATE``) futex
operations. Elsewhere, :func:`wait_change` falls back to sleeping in short
slices. Plain 4-byte aligned loads and stores are atomic on the CPUs numbarl
runs on (x86-64 and arm64); the system call on each wake-up orders the data
written before the word.

Examples:
    >>> import numpy as np
    >>> words = np.zeros(16, dtype=np.int32)
    >>> flags = Words(words)
    >>> flags[3] = 7
    >>> flags[3], int(words[3])
    (7, 7)
    >>> flags.wait_change(3, 7, timeout=0.01)  # nothing changes it: times out
    False
    >>> flags.wake(3)
    0
"""
from __future__ import annotations

import ctypes
import os
import platform
import time

import numpy as np

__all__ = ["Words", "futex_available"]

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall():
    if _SYS_FUTEX is None or not platform.system() == "Linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_syscall = _load_syscall()


def futex_available() -> bool:
    """Whether waits sleep on a futex (Linux x86-64 / arm64) rather than in short slices."""
    return _syscall is not None


class Words:
    """Read, write, wait on and wake the int32 words of a (shared) array.

    Args:
        array: a C-contiguous int32 numpy array, typically a view into a
            shared-memory block (every process maps the same words).

    Raises:
        TypeError: ``array`` is not a C-contiguous int32 numpy array.

    Examples:
        >>> w = Words(np.zeros(4, dtype=np.int32))
        >>> w[0] = 1; w[0]
        1
    """

    __slots__ = ("_array", "_mv", "_base")

    def __init__(self, array):
        if not isinstance(array, np.ndarray) or array.dtype != np.int32 or not array.flags.c_contiguous:
            raise TypeError(f"Words requires a C-contiguous int32 numpy array, got {type(array).__name__} "
                            f"{getattr(array, 'dtype', '')}")
        self._array = array
        self._mv = memoryview(array.reshape(-1)).cast("B").cast("i")
        self._base = array.ctypes.data

    def __getitem__(self, i: int) -> int:
        return self._mv[i]

    def __setitem__(self, i: int, value: int) -> None:
        self._mv[i] = value

    def wake(self, i: int, n: int = 2**31 - 1) -> int:
        """Wake up to ``n`` processes sleeping on word ``i``; return how many were woken."""
        if _syscall is None:
            return 0
        return int(_syscall(_SYS_FUTEX, ctypes.c_void_p(self._base + 4 * i), _FUTEX_WAKE, n, None, None, 0))

    def sleep(self, i: int, expected: int, timeout: float) -> None:
        """Sleep while word ``i`` equals ``expected``, at most ``timeout`` seconds (spurious returns possible)."""
        if _syscall is None:
            time.sleep(min(timeout, 0.0005))
            return
        ts = _Timespec(int(timeout), int((timeout - int(timeout)) * 1e9))
        _syscall(_SYS_FUTEX, ctypes.c_void_p(self._base + 4 * i), _FUTEX_WAIT, ctypes.c_int(expected),
                 ctypes.byref(ts), None, 0)

    def wait_change(self, i: int, old: int, timeout: float, spin: float = 0.0) -> bool:
        """Wait until word ``i`` differs from ``old``: spin ``spin`` seconds, then sleep; False on timeout."""
        mv = self._mv
        if mv[i] != old:
            return True
        now = time.perf_counter
        start = now()
        if spin > 0:
            while now() - start < spin:
                if mv[i] != old:
                    return True
        while True:
            left = timeout - (now() - start)
            if left <= 0:
                return mv[i] != old
            self.sleep(i, old, left)
            if mv[i] != old:
                return True


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
