"""Tests of numbarl.core.shared.SharedArrays."""
import gc
import json
import multiprocessing
import os
import pickle
import secrets
import struct
import threading
from multiprocessing import shared_memory

import numpy as np
import pytest

from naive_moments import attach_and_increment, locked_update_worker, naive_mean_var, worker_data
from numbarl.core.moments import MomentState, moments_update
from numbarl.core.shared import LAYOUT_VERSION, MAGIC, SharedArrays

SHM = "/dev/shm"
pytestmark = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs POSIX shared memory in /dev/shm")


def moments_layout(features):
    return {
        "loc": ((features,), np.float64),
        "m2": ((features,), np.float64),
        "weight": ((1,), np.float64),
        "count": ((1,), np.int64),
    }


def exists(name):
    return os.path.exists(os.path.join(SHM, name))


def test_create_layout_alignment_permissions():
    layout = {"a": ((3,), np.float32), "b": ((2, 5), "int16"), "c": (7, np.uint8), "d": ((0,), np.float64)}
    with SharedArrays.create(layout) as s:
        assert s.name.startswith("numbarl_") and len(s.name) == len("numbarl_") + 16
        assert os.stat(os.path.join(SHM, s.name)).st_mode & 0o777 == 0o600
        assert s.owner and not s.closed and len(s) == 4 and "b" in s and list(s) == ["a", "b", "c", "d"]
        for key, (shape, dtype) in layout.items():
            arr = s[key]
            assert arr.shape == (tuple(shape) if isinstance(shape, tuple) else (shape,))
            assert arr.dtype == np.dtype(dtype)
            assert arr.ctypes.data % 64 == 0
            assert not arr.any()  # zero-filled
        assert s.layout["b"] == ((2, 5), np.dtype(np.int16))
        with pytest.raises(KeyError, match=r"no array 'z'; it has \['a', 'b', 'c', 'd'\]"):
            s["z"]
    assert not exists(s.name)


def test_attach_by_name_shares_memory():
    with SharedArrays.create(moments_layout(3)) as owner:
        other = SharedArrays.attach(owner.name)
        other["loc"][:] = [1.0, 2.0, 3.0]
        owner["count"][0] = 7
        np.testing.assert_array_equal(owner["loc"], [1.0, 2.0, 3.0])
        assert other["count"][0] == 7
        assert not other.owner and other.layout == owner.layout
        other.close()
        assert exists(owner.name)  # an attachment never unlinks
    assert not exists(owner.name)


def test_pickle_sends_name_only():
    with SharedArrays.create({"big": ((1024, 1024), np.float64)}) as owner:  # 8 MiB
        owner["big"][3, 4] = 42.0
        data = pickle.dumps(owner)
        assert len(data) < 256
        assert owner.name.encode() in data
        with pickle.loads(data) as clone:
            assert not clone.owner and clone["big"][3, 4] == 42.0
            clone["big"][0, 0] = -1.0
            assert owner["big"][0, 0] == -1.0
    with pytest.raises(ValueError, match="is closed and cannot be pickled"):
        pickle.dumps(owner)


def test_close_twice_gc_and_views_after_close():
    owner = SharedArrays.create(moments_layout(2))
    view = owner["loc"]
    name = owner.name
    owner.close()
    owner.close()
    assert owner.closed and not exists(name)
    view[:] = 5.0  # the mapping lives as long as a view does
    assert view.sum() == 10.0
    with pytest.raises(ValueError, match="is closed"):
        owner["loc"]
    with pytest.raises(ValueError, match="is closed"):
        with owner.lock():
            pass
    collected = SharedArrays.create(moments_layout(2))
    name = collected.name
    del collected
    gc.collect()
    assert not exists(name)


def test_constructor_and_layout_errors():
    with pytest.raises(TypeError, match="made by SharedArrays.create"):
        SharedArrays(None, None, [], 0)
    with pytest.raises(TypeError, match="layout as a dict"):
        SharedArrays.create([("a", (3,), np.float32)])
    with pytest.raises(TypeError, match=r"layout\['a'\] as \(shape, dtype\)"):
        SharedArrays.create({"a": (3,)})
    with pytest.raises(TypeError, match="plain numeric dtypes, got object"):
        SharedArrays.create({"a": ((3,), object)})
    with pytest.raises(TypeError, match="invalid dtype"):
        SharedArrays.create({"a": ((3,), "not-a-dtype")})
    with pytest.raises(ValueError, match=r"non-negative dimensions, got \(-1,\)"):
        SharedArrays.create({"a": ((-1,), np.float32)})


# -- attach validation ----------------------------------------------------------------


def raw_block(payload, size=None):
    """A numbarl_-named block holding ``payload`` bytes, not made by SharedArrays."""
    shm = shared_memory.SharedMemory(name="numbarl_" + secrets.token_hex(8), create=True, size=size or max(len(payload), 1))
    shm.buf[: len(payload)] = payload
    return shm


def header(text, total, magic=MAGIC, version=LAYOUT_VERSION):
    return struct.pack("<8sIIQ", magic, version, len(text), total) + text


ENTRY = json.dumps([{"name": "a", "dtype": "<f8", "shape": [4], "offset": 0}]).encode()


@pytest.mark.parametrize(
    "payload, size, match",
    [
        (b"\x00" * 8, 8, "too small for a header"),
        (header(ENTRY, 4096, magic=b"NOTNUMBA"), 4096, "not a numbarl SharedArrays block"),
        (header(ENTRY, 4096, version=LAYOUT_VERSION + 1), 4096, "layout version"),
        (header(ENTRY, 8192), 4096, "refusing a truncated block"),
        (header(b"{not json", 4096), 4096, "unreadable layout"),
        (header(json.dumps([{"name": "a"}]).encode(), 4096), 4096, "unreadable layout"),
        (
            header(json.dumps([{"name": "a", "dtype": "<f8", "shape": [4000], "offset": 0}]).encode(), 4096),
            4096,
            "inconsistent layout entry 'a'",
        ),
        (
            header(json.dumps([{"name": "a", "dtype": "<f8", "shape": [4], "offset": 8}]).encode(), 4096),
            4096,
            "inconsistent layout entry 'a'",
        ),
        (header(json.dumps([{"name": "a", "dtype": "|O", "shape": [4], "offset": 0}]).encode(), 4096), 4096, "inconsistent"),
    ],
)
def test_attach_refuses_wrong_blocks(payload, size, match):
    shm = raw_block(payload, size)
    try:
        with pytest.raises(ValueError, match=match):
            SharedArrays.attach(shm.name)
    finally:
        shm.close()
        shm.unlink()


def test_attach_accepts_a_valid_raw_block_and_checks_expected_layout():
    shm = raw_block(header(ENTRY, 4096), 4096)
    try:
        s = SharedArrays.attach(shm.name, {"a": ((4,), np.float64)})
        assert s["a"].shape == (4,)
        s.close()
        with pytest.raises(ValueError, match=r"holds \{'a': \(\(4,\), dtype\('float64'\)\)\}, expected"):
            SharedArrays.attach(shm.name, {"a": ((4,), np.float32)})
    finally:
        shm.close()
        shm.unlink()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def mapped_blocks(name):
    with open("/proc/self/maps") as f:
        return sum(name in line for line in f)


@pytest.mark.parametrize("shape", [[2**62, 2**62], [2**40, 2**40, 2**40], [-1, 4]])
def test_attach_refuses_an_overflowing_shape_and_leaks_nothing(shape):
    text = json.dumps([{"name": "a", "dtype": "<f8", "shape": shape, "offset": 0}]).encode()
    shm = raw_block(header(text, 4096), 4096)
    try:
        before = open_fds()
        with pytest.raises(ValueError, match="inconsistent layout entry 'a'"):
            SharedArrays.attach(shm.name)
        gc.collect()
        assert open_fds() == before
        assert mapped_blocks(shm.name) == 1  # only the test's own mapping
    finally:
        shm.close()
        shm.unlink()


def test_attach_refuses_a_block_open_to_group_or_others():
    shm = raw_block(header(ENTRY, 4096), 4096)
    try:
        os.chmod(os.path.join(SHM, shm.name), 0o644)
        before = open_fds()
        with pytest.raises(PermissionError, match=r"mode 0o644, which gives access to group or others"):
            SharedArrays.attach(shm.name)
        assert open_fds() == before
    finally:
        shm.close()
        shm.unlink()


def _make_block_as(uid, conn):
    """In a child: become ``uid`` (effective), create a valid block, send its name."""
    os.setegid(uid)
    os.seteuid(uid)
    shm = raw_block(header(ENTRY, 4096), 4096)
    conn.send(shm.name)
    shm.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="simulating another user's block needs root to switch the effective uid")
def test_attach_refuses_a_block_made_by_another_user():
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=_make_block_as, args=(65534, theirs))
    proc.start()
    name = mine.recv()
    proc.join(30)
    assert proc.exitcode == 0
    try:
        assert os.stat(os.path.join(SHM, name)).st_uid == 65534
        before = open_fds()
        with pytest.raises(PermissionError, match=r"belongs to uid 65534, not to this process's uid 0"):
            SharedArrays.attach(name)
        assert open_fds() == before
    finally:
        os.unlink(os.path.join(SHM, name))


def test_attach_name_errors():
    with pytest.raises(TypeError, match="name as a str, got int"):
        SharedArrays.attach(3)
    with pytest.raises(ValueError, match="name starting with 'numbarl_', got 'psm_123'"):
        SharedArrays.attach("psm_123")
    with pytest.raises(FileNotFoundError, match="no block named 'numbarl_0000'"):
        SharedArrays.attach("numbarl_0000")


# -- processes ------------------------------------------------------------------------

CONTEXTS = [c for c in ("fork", "spawn") if c in multiprocessing.get_all_start_methods()]


def close_inherited(shared):
    shared["count"][0] += 1
    shared.close()


@pytest.mark.parametrize("method", CONTEXTS)
def test_exiting_attacher_does_not_unlink(method):
    ctx = multiprocessing.get_context(method)
    with SharedArrays.create(moments_layout(1)) as owner:
        for _ in range(2):
            p = ctx.Process(target=attach_and_increment, args=(owner.name,))
            p.start()
            p.join(120)
            assert p.exitcode == 0
        assert exists(owner.name) and owner["count"][0] == 2
        SharedArrays.attach(owner.name).close()


def test_forked_child_closing_inherited_owner_does_not_unlink():
    if "fork" not in CONTEXTS:
        pytest.skip("needs the fork start method")
    with SharedArrays.create(moments_layout(1)) as owner:
        p = multiprocessing.get_context("fork").Process(target=close_inherited, args=(owner,))
        p.start()
        p.join(120)
        assert p.exitcode == 0
        assert exists(owner.name) and owner["count"][0] == 1


@pytest.mark.parametrize("method", CONTEXTS)
def test_locked_updates_from_four_processes_lose_nothing(method):
    workers, n, features = 4, 10_000, 3
    ctx = multiprocessing.get_context(method)
    with SharedArrays.create(moments_layout(features)) as owner:
        start = ctx.Barrier(workers)  # all update at the same time
        procs = [
            ctx.Process(target=locked_update_worker, args=(owner.name, seed, n, features, start)) for seed in range(workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        assert [p.exitcode for p in procs] == [0] * workers
        state = MomentState(owner["loc"], owner["m2"], owner["weight"], owner["count"])
        assert state.count[0] == workers * n
        assert state.weight[0] == workers * n
        data = np.concatenate([worker_data(seed, n, features) for seed in range(workers)])
        mean, var = naive_mean_var(data, 1)
        np.testing.assert_allclose(state.loc, mean, rtol=1e-6)
        np.testing.assert_allclose(state.var, var, rtol=1e-6)
        single = MomentState(np.zeros(features), np.zeros(features), np.zeros(1), np.zeros(1, np.int64))
        moments_update(data, *single.arrays)
        np.testing.assert_allclose(state.var, single.var, rtol=1e-6)


def test_lock_orders_threads_of_one_process():
    def work(shared, seed):
        rows = worker_data(seed, 2000, 2)
        for i in range(len(rows)):
            with shared.lock():
                moments_update(rows[i : i + 1], shared["loc"], shared["m2"], shared["weight"], shared["count"])

    with SharedArrays.create(moments_layout(2)) as owner, SharedArrays.attach(owner.name) as other:
        # two threads per object, and two objects (two open files) in one process
        threads = [threading.Thread(target=work, args=(s, k)) for k, s in enumerate([owner, owner, other, other])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert owner["count"][0] == 8000 and owner["weight"][0] == 8000.0
