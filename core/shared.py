"""Named shared-memory blocks holding a layout of numpy arrays.

A :class:`SharedArrays` block is a POSIX shared-memory object (``/dev/shm``
on Linux) made by one process, the owner, and attached by name by others.
It starts with a header that describes its arrays, so an attaching process
needs nothing but the name::

    offset 0   magic  b"NUMBARL\\x00"                 8 bytes
    offset 8   layout version (uint32, little endian)  4 bytes
    offset 12  length of the layout text (uint32)     4 bytes
    offset 16  total size of the block (uint64)       8 bytes
    offset 24  layout text: JSON list of {"name", "dtype", "shape", "offset"}
    ...        arrays, each at a multiple of 64 bytes after the header

Array offsets in the layout text count from the first multiple of 64 after
the text. Mappings are page aligned, so every array is 64-byte aligned.

Lifetime: only the owner unlinks the block, on :meth:`SharedArrays.close` or
when the owner object is garbage collected, in the process that created it
(a forked child that inherited the owner object never unlinks). The owner
registers the block with ``multiprocessing.resource_tracker`` so it is
removed if the owner dies without closing it. Attaching processes map the
block directly rather than through ``multiprocessing.shared_memory``, which
in Python 3.11 registers every attachment with the resource tracker and so
unlinks the block when any attaching process exits. Unregistering after
attaching is not enough: processes started by ``multiprocessing`` share
their parent's tracker, and its record of a name is a set, so an attacher's
unregister would also drop the owner's registration.

Names come from ``secrets`` (``numbarl_`` and 16 hex digits) and the block is
created with permissions 0o600 (owner only).
"""
import fcntl
import json
import math
import mmap
import os
import secrets
import struct
import threading
import weakref
from multiprocessing import resource_tracker

import _posixshmem
import numpy as np

__all__ = ["SharedArrays"]

PREFIX = "numbarl_"
MAGIC = b"NUMBARL\x00"
LAYOUT_VERSION = 1
ALIGN = 64
_HEAD = struct.Struct("<8sIIQ")
_TOKEN = object()


def _align(n):
    return -(-n // ALIGN) * ALIGN


def _plan(layout):
    """Validate a layout dict; return [(name, dtype, shape, relative offset)] and the data size."""
    if not isinstance(layout, dict):
        raise TypeError(f"SharedArrays.create requires layout as a dict name -> (shape, dtype), got {type(layout).__name__}")
    entries = []
    rel = 0
    for name, spec in layout.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"SharedArrays.create requires non-empty str array names, got {name!r}")
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise TypeError(f"SharedArrays.create requires layout[{name!r}] as (shape, dtype), got {spec!r}")
        shape, dtype = spec
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape
        ):
            raise TypeError(f"SharedArrays.create requires layout[{name!r}] shape as a tuple of ints, got {shape!r}")
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"SharedArrays.create requires non-negative dimensions, got {shape} for {name!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"SharedArrays.create got an invalid dtype {dtype!r} for {name!r}") from None
        if dt.hasobject or dt.fields is not None or dt.subdtype is not None:
            raise TypeError(f"SharedArrays.create requires plain numeric dtypes, got {dt} for {name!r}")
        entries.append((name, dt, shape, rel))
        rel = _align(rel + dt.itemsize * int(np.prod(shape, dtype=np.int64)))
    return entries, rel


def _encode(entries):
    text = json.dumps(
        [{"name": n, "dtype": dt.str, "shape": list(s), "offset": o} for n, dt, s, o in entries],
        separators=(",", ":"),
    ).encode()
    return text, _align(_HEAD.size + len(text))


class _Block:
    """One mapping of a block in this process, and the fd its lock uses."""

    __slots__ = ("name", "mm", "owner_pid", "lock_fd", "lock_pid", "tlock")

    def __init__(self, name, mm, fd, owner_pid):
        self.name = name
        self.mm = mm
        self.owner_pid = owner_pid
        self.lock_fd = fd
        self.lock_pid = os.getpid()
        self.tlock = threading.Lock()

    def fd_for_lock(self):
        """An fd on the block opened by this process (flock is per open file)."""
        pid = os.getpid()
        if self.lock_pid != pid:
            # Inherited through fork: that fd shares the parent's open file
            # and so its flock. Open the same file again, even if unlinked.
            inherited, self.lock_fd = self.lock_fd, -1
            try:
                fd = os.open(f"/proc/self/fd/{inherited}", os.O_RDONLY)
            except OSError:
                fd = _posixshmem.shm_open("/" + self.name, os.O_RDONLY, mode=0o600)
            os.close(inherited)
            self.lock_fd = fd
            self.lock_pid = pid
            self.tlock = threading.Lock()
        return self.lock_fd


def _release(block):
    """Drop the mapping, close the lock fd and, in the owner's own process, unlink.

    The mapping is never closed explicitly: numpy views hold the mmap object
    but no buffer export, so an explicit close would leave them dangling. It
    is unmapped when the last view of it is dropped.
    """
    block.mm = None
    if block.lock_fd >= 0 and block.lock_pid == os.getpid():
        os.close(block.lock_fd)
    block.lock_fd = -1
    if block.owner_pid == os.getpid():
        block.owner_pid = 0
        try:
            _posixshmem.shm_unlink("/" + block.name)
        except FileNotFoundError:
            pass
        resource_tracker.unregister("/" + block.name, "shared_memory")


class _Lock:
    """Context manager: a thread lock, then an exclusive flock on the block."""

    __slots__ = ("_block",)

    def __init__(self, block):
        self._block = block

    def __enter__(self):
        block = self._block
        if block.mm is None:
            raise ValueError(f"SharedArrays block {block.name!r} is closed")
        fd = block.fd_for_lock()
        block.tlock.acquire()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            block.tlock.release()
            raise
        return self

    def __exit__(self, *exc):
        block = self._block
        fcntl.flock(block.lock_fd, fcntl.LOCK_UN)
        block.tlock.release()
        return False


class SharedArrays:
    """Named arrays in one shared-memory block, made by an owner, attached by name.

    Create with :meth:`create` (the owner) or :meth:`attach` (any other
    process, or the same one). ``shared[key]`` is a numpy view into the
    block, 64-byte aligned, zero-filled at creation. Pickling sends only the
    name; unpickling attaches. ``close()`` (or ``with`` exit, or garbage
    collection) unmaps, and the owner also unlinks the name; closing twice is
    harmless. Views taken before ``close()`` stay valid (the memory is
    unmapped when the last of them is dropped). Keep the owner object alive while others may attach.

    Locking: ``with shared.lock(): ...`` excludes every other holder of the
    lock on the same block, in any process. It is ``fcntl.flock`` on the
    block's own file, opened once per process. That choice needs no extra
    named resource and no process inheritance (a ``multiprocessing.Lock``
    can only be handed to children at start, not found by name), works for
    any process that can attach, and the kernel drops the lock if its holder
    dies, so a crashed worker cannot leave the block locked. A flock is per
    open file, shared by threads, so a ``threading.Lock`` per object orders
    threads too; the lock is not reentrant. POSIX only.

    Raises:
        TypeError: a layout entry of the wrong type.
        ValueError: a bad layout value, a block that does not match its
            header or the expected layout, or use after close.
        FileNotFoundError: attaching a name that does not exist.
        PermissionError: attaching a block owned by another user, or readable or
            writable by group or others.

    Examples:
        >>> import pickle
        >>> import numpy as np
        >>> owner = SharedArrays.create({"loc": ((3,), np.float64), "count": ((1,), np.int64)})
        >>> owner.name.startswith("numbarl_"), sorted(owner.keys())
        (True, ['count', 'loc'])
        >>> other = pickle.loads(pickle.dumps(owner))  # attaches by name
        >>> with other.lock():
        ...     other["loc"][:] = [1.0, 2.0, 3.0]
        ...     other["count"][0] += 1
        >>> owner["loc"], owner["count"]
        (array([1., 2., 3.]), array([1]))
        >>> other.close(); owner.close(); owner.close()
        >>> owner.closed
        True
    """

    def __init__(self, token, block, entries, data_start):
        if token is not _TOKEN:
            raise TypeError("SharedArrays is made by SharedArrays.create(layout) or SharedArrays.attach(name)")
        self._block = block
        self._lock = _Lock(block)
        self._layout = {n: (s, dt) for n, dt, s, _ in entries}
        self._arrays = {
            n: np.ndarray(s, dtype=dt, buffer=block.mm, offset=data_start + o) for n, dt, s, o in entries
        }
        self._finalizer = weakref.finalize(self, _release, block)

    @classmethod
    def create(cls, layout):
        """Make a new block holding ``layout`` (dict name -> (shape, dtype)), zero-filled.

        Examples:
            >>> import numpy as np
            >>> s = SharedArrays.create({"x": ((2, 3), np.float32)})
            >>> s["x"].shape, s["x"].dtype, s["x"].ctypes.data % 64
            ((2, 3), dtype('float32'), 0)
            >>> s.close()
        """
        entries, data_size = _plan(layout)
        text, data_start = _encode(entries)
        total = data_start + max(data_size, ALIGN)
        for _ in range(8):
            name = PREFIX + secrets.token_hex(8)
            try:
                fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
            except FileExistsError:
                continue
            break
        else:
            raise FileExistsError("SharedArrays.create could not find a free block name")
        try:
            os.fchmod(fd, 0o600)
            os.ftruncate(fd, total)
            mm = mmap.mmap(fd, total)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink("/" + name)
            raise
        resource_tracker.register("/" + name, "shared_memory")
        mm[: _HEAD.size + len(text)] = _HEAD.pack(MAGIC, LAYOUT_VERSION, len(text), total) + text
        return cls(_TOKEN, _Block(name, mm, fd, os.getpid()), entries, data_start)

    @classmethod
    def attach(cls, name, layout=None):
        """Map the existing block ``name``; check it against ``layout`` if given.

        The header is validated (magic, version, layout text, sizes, offsets)
        and a block that does not match is refused with ValueError.

        Examples:
            >>> import numpy as np
            >>> owner = SharedArrays.create({"w": ((1,), np.float64)})
            >>> SharedArrays.attach(owner.name, {"w": ((1,), np.float64)})["w"]
            array([0.])
            >>> SharedArrays.attach(owner.name, {"w": ((2,), np.float64)})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: SharedArrays.attach: block ... holds {'w': ((1,), dtype('float64'))}, expected {'w': ((2,), dtype('float64'))}
            >>> owner.close()
        """
        if not isinstance(name, str):
            raise TypeError(f"SharedArrays.attach requires name as a str, got {type(name).__name__}")
        if not name.startswith(PREFIX) or "/" in name:
            raise ValueError(f"SharedArrays.attach requires a name starting with {PREFIX!r}, got {name!r}")
        try:
            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise FileNotFoundError(f"SharedArrays.attach found no block named {name!r}") from None
        try:
            st = os.fstat(fd)
            _check_owner(name, st)
            size = st.st_size
            if size < _HEAD.size:
                raise ValueError(f"SharedArrays.attach: block {name!r} has {size} bytes, too small for a header")
            mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        try:
            entries, data_start = _read_header(name, mm, size)
            if layout is not None:
                expected = {n: (s, dt) for n, dt, s, _ in _plan(layout)[0]}
                found = {n: (s, dt) for n, dt, s, _ in entries}
                if expected != found:
                    raise ValueError(f"SharedArrays.attach: block {name!r} holds {found}, expected {expected}")
            return cls(_TOKEN, _Block(name, mm, fd, 0), entries, data_start)
        except BaseException:
            mm.close()
            os.close(fd)
            raise

    @property
    def name(self):
        """The block's name, to attach it elsewhere."""
        return self._block.name

    @property
    def owner(self):
        """Whether this object will unlink the block (created here, in this process)."""
        return self._block.owner_pid == os.getpid()

    @property
    def closed(self):
        return self._block.mm is None

    @property
    def layout(self):
        """dict name -> (shape, dtype)."""
        return dict(self._layout)

    def keys(self):
        return self._arrays.keys()

    def __getitem__(self, key):
        if self._block.mm is None:
            raise ValueError(f"SharedArrays block {self._block.name!r} is closed")
        try:
            return self._arrays[key]
        except KeyError:
            raise KeyError(f"SharedArrays has no array {key!r}; it has {sorted(self._arrays)}") from None

    def __contains__(self, key):
        return key in self._arrays

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def lock(self):
        """Context manager holding the cross-process lock of this block (see class docs)."""
        return self._lock

    def close(self):
        """Unmap (and, for the owner, unlink) the block. Calling it again does nothing."""
        self._arrays = {}
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __reduce__(self):
        if self._block.mm is None:
            raise ValueError(f"SharedArrays block {self._block.name!r} is closed and cannot be pickled")
        return (SharedArrays.attach, (self._block.name,))

    def __repr__(self):
        state = "closed" if self.closed else ("owner" if self.owner else "attached")
        return f"SharedArrays({self.name!r}, {state}, arrays={list(self._layout)})"


def _check_owner(name, st):
    """Refuse a block that another user owns or that others may read or write.

    After the owner unlinks a block, another local user could create one
    with the same name (names travel in pickles and are listed in
    /dev/shm); checking the owner and the mode of the open file refuses it.
    """
    euid = os.geteuid()
    if st.st_uid != euid:
        raise PermissionError(f"SharedArrays.attach: block {name!r} belongs to uid {st.st_uid}, not to this "
                              f"process's uid {euid}; refusing a block made by another user")
    if st.st_mode & 0o077:
        raise PermissionError(f"SharedArrays.attach: block {name!r} has mode {oct(st.st_mode & 0o777)}, which "
                              "gives access to group or others; numbarl blocks are owner-only (0o600)")


def _read_header(name, mm, size):
    """Parse and check a block header; return the entries and the data start."""
    magic, version, text_len, total = _HEAD.unpack_from(mm, 0)
    where = f"SharedArrays.attach: block {name!r}"
    if magic != MAGIC:
        raise ValueError(f"{where} is not a numbarl SharedArrays block (magic {magic!r}, expected {MAGIC!r})")
    if version != LAYOUT_VERSION:
        raise ValueError(f"{where} has layout version {version}, this numbarl reads version {LAYOUT_VERSION}")
    if total > size or _HEAD.size + text_len > total:
        raise ValueError(f"{where} has {size} bytes but its header describes {total}; refusing a truncated block")
    try:
        raw = json.loads(bytes(mm[_HEAD.size : _HEAD.size + text_len]).decode())
        entries = [(str(e["name"]), np.dtype(e["dtype"]), tuple(int(d) for d in e["shape"]), int(e["offset"])) for e in raw]
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{where} has an unreadable layout in its header ({err})") from None
    data_start = _align(_HEAD.size + text_len)
    end = data_start
    for n, dt, shape, off in entries:
        if min(shape, default=0) < 0:
            raise ValueError(f"{where} has an inconsistent layout entry {n!r} ({dt}, {shape}, offset {off})")
        nbytes = dt.itemsize * math.prod(shape)  # Python ints: a crafted shape cannot overflow
        if (
            dt.hasobject
            or min(shape, default=0) < 0
            or off % ALIGN
            or data_start + off < end
            or data_start + off + nbytes > total
        ):
            raise ValueError(f"{where} has an inconsistent layout entry {n!r} ({dt}, {shape}, offset {off})")
        end = data_start + off + nbytes
    return entries, data_start
