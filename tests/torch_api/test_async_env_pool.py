"""AsyncEnvPool: TorchRL 0.14.1's send/recv semantics, both backends, faults, nothing left behind."""
from __future__ import annotations

import functools
import os
import signal
import threading
import time

import batched_helpers as H
import leaks
import pytest
import torch
from compare import assert_td_equal
from numbarl.torch_api import AsyncEnvPool, EnvWorkerError
from tensordict import TensorDict

BACKENDS = [("multiprocessing", {"envs_per_worker": 2}), ("threading", {})]


@pytest.fixture
def trl(torchrl):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchrl.envs as envs
    return envs


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    with leaks.nothing_left("the AsyncEnvPool tests"):
        yield


def makers(n=4, fn=H.seeded_pendulum):
    return [functools.partial(fn, 10 + i) for i in range(n)]


def strip(td):
    return td.exclude("env_index")


def actions(k, seed):
    return torch.rand(k, 1, generator=torch.Generator().manual_seed(seed)) * 4 - 2


def _ints(index) -> list:
    """env_index as a list of ints (a tensor here, a NonTensorStack in TorchRL)."""
    if isinstance(index, int):
        return [index]
    values = index.tolist() if hasattr(index, "tolist") else list(index)
    if isinstance(values, int):
        return [values]
    return [int(v[0]) if isinstance(v, list) else int(v) for v in values]


def send_recv_sequence(pool):
    """Reset, two interleaved half-batch steps received out of order, a full step, a partial reset."""
    out = []
    root = pool.reset()
    out.append(strip(root))
    a = root[:2].clone()
    a["action"] = actions(2, 0)
    b = root[2:].clone()
    b["action"] = actions(2, 1)
    pool.async_step_send(a)
    pool.async_step_send(b)
    both = pool.async_step_recv(min_get=4)
    assert _ints(both["env_index"]) == [0, 1, 2, 3]
    out.append(strip(both))
    nxt = strip(both)["next"].exclude("reward")
    nxt["action"] = actions(4, 2)
    pool.async_step_send(nxt[2].clone(), env_index=2)  # single envs, received out of order
    pool.async_step_send(nxt[0].clone(), env_index=0)
    r0 = pool.async_step_recv(env_index=0)
    r2 = pool.async_step_recv(env_index=2)
    assert _ints(r0["env_index"]) == [0] and _ints(r2["env_index"]) == [2]
    out += [strip(r0), strip(r2)]
    pool.async_reset_send(env_index=[1, 3])
    reset = pool.async_reset_recv(min_get=2)
    assert _ints(reset["env_index"]) == [1, 3]
    out.append(reset.select("observation"))
    return out


@pytest.mark.torchrl
@pytest.mark.parametrize("backend, kw", BACKENDS)
def test_send_recv_sequence_matches_torchrl(trl, backend, kw):
    ref = trl.AsyncEnvPool(makers(fn=H.trl_seeded_pendulum), backend="threading")
    try:
        expected = send_recv_sequence(ref)
    finally:
        ref.close()
    with AsyncEnvPool(makers(), backend=backend, **kw) as pool:
        got = send_recv_sequence(pool)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert_td_equal(g, e)


@pytest.mark.torchrl
@pytest.mark.parametrize("backend, kw", BACKENDS)
def test_sync_step_and_maybe_reset_matches_torchrl(trl, backend, kw):
    results = []
    ref = trl.AsyncEnvPool(makers(fn=H.trl_seeded_pendulum), backend="threading")
    pool = AsyncEnvPool(makers(), backend=backend, **kw)
    try:
        for env in (ref, pool):
            td = env.reset()
            seq = []
            for t in range(3):
                td["action"] = actions(4, 10 + t)
                _, td = env.step_and_maybe_reset(td)
                seq.append(td.select("observation").clone())
            results.append(seq)
    finally:
        ref.close()
        pool.close()
    for g, e in zip(results[1], results[0]):
        assert_td_equal(g, e)


@pytest.mark.parametrize("backend, kw", BACKENDS)
def test_async_step_and_maybe_reset_resets_done_envs(backend, kw):
    with AsyncEnvPool([functools.partial(H.Tiny, 2)] * 3, backend=backend, **kw) as pool:
        td = pool.reset()
        for t in range(2):
            td["action"] = torch.ones(3, 1)
            pool.async_step_and_maybe_reset_send(td)
            out, td = pool.async_step_and_maybe_reset_recv(min_get=3)
        assert out["next", "done"].all()  # Tiny is done after 2 steps
        assert (out["next", "observation"][:, 0] == 2).all()
        assert (td["observation"][:, 0] == 0).all()  # the next roots are the reset data
        assert td["env_index"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("backend, kw", BACKENDS)
def test_recv_arguments(backend, kw):
    with AsyncEnvPool(makers(), backend=backend, **kw) as pool:
        root = pool.reset()
        root["action"] = torch.zeros(4, 1)
        pool.async_step_send(root)
        with pytest.raises(RuntimeError, match=r"envs \[0, 1, 2, 3\] have a request in flight"):
            pool.async_step_send(root)
        with pytest.raises(RuntimeError, match="still processing an asynchronous request"):
            pool.rollout(2)
        first = pool.async_step_recv(min_get=1, max_get=1)
        assert first.batch_size == torch.Size([1])
        rest = pool.async_step_recv(min_get=3)
        assert sorted(first["env_index"].tolist() + rest["env_index"].tolist()) == [0, 1, 2, 3]
        with pytest.raises(RuntimeError, match="no step request is in flight"):
            pool.async_step_recv()
        assert pool.stats() == {"sent": 4, "received": 4}


def test_recv_timeout_keeps_results():
    fns = [H.make_pendulum, functools.partial(H.SlowStep, 1.0)]
    with AsyncEnvPool(fns, backend="multiprocessing", envs_per_worker=1) as pool:
        root = pool.reset()
        root["action"] = torch.zeros(2, 1)
        pool.async_step_send(root)
        with pytest.raises(TimeoutError, match="1 of the 2 results asked for were ready within 0.2 s"):
            pool.async_step_recv(min_get=2, timeout=0.2)
        out = pool.async_step_recv(min_get=2)
        assert out["env_index"].tolist() == [0, 1]


def test_default_does_not_oversubscribe():
    n = 3 * (len(os.sched_getaffinity(0))) + 1
    with AsyncEnvPool([H.make_pendulum] * n, backend="multiprocessing") as pool:
        assert pool.num_workers <= len(os.sched_getaffinity(0))
        assert pool.envs_per_worker * pool.num_workers >= n
        assert pool.resolved_exchange == "shm" and pool.exchange_keys == ("action",)
        assert pool.rollout(3).batch_size == torch.Size([n, 3])


def test_worker_affinity_pins_processes():
    cpus = sorted(os.sched_getaffinity(0))
    with AsyncEnvPool([H.make_pendulum] * 2, backend="multiprocessing", envs_per_worker=1,
                      worker_affinity=lambda w: [cpus[w % len(cpus)]]) as pool:
        assert [os.sched_getaffinity(p) for p in pool.worker_pids] == [{cpus[0]}, {cpus[1 % len(cpus)]}]


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend to be one of"):
        AsyncEnvPool([H.make_pendulum], backend="asyncio")
    with pytest.raises(ValueError, match="exchange='shm' is only supported with backend='multiprocessing'"):
        AsyncEnvPool([H.make_pendulum], backend="threading", exchange="shm")
    with pytest.raises(ValueError, match="envs_per_worker is only supported with backend='multiprocessing'"):
        AsyncEnvPool([H.make_pendulum], backend="threading", envs_per_worker=2)
    with pytest.raises(ValueError, match="envs_per_worker to be a positive int, got 0"):
        AsyncEnvPool([H.make_pendulum], backend="multiprocessing", envs_per_worker=0)
    with pytest.raises(ValueError, match="stack to be"):
        AsyncEnvPool([H.make_pendulum], stack="tall")
    with pytest.raises(TypeError, match="env_makers to be callables, got int at position 1"):
        AsyncEnvPool([H.make_pendulum, 3])
    with pytest.raises(ValueError, match="timeout to be a positive number"):
        AsyncEnvPool([H.make_pendulum], backend="multiprocessing", timeout=float("nan"))


# ------------------------------------------------------------ faults
def released(pool, block, pids):
    assert block not in leaks.numbarl_blocks()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="is closed"):
        pool.reset()
    pool.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_exception_in_async_step_has_its_traceback():
    fns = [H.make_pendulum, H.make_pendulum, functools.partial(H.FailAfter, 1), H.make_pendulum]
    pool = AsyncEnvPool(fns, backend="multiprocessing", envs_per_worker=2)
    block, pids = pool._pool.shared.name, pool.worker_pids
    root = pool.reset()
    root["action"] = torch.zeros(4, 1)
    pool.async_step_send(root)
    with pytest.raises(EnvWorkerError, match=r"worker 1 \(pid \d+, sub-envs 2..3\) raised") as info:
        pool.async_step_recv(min_get=4)
    assert "ValueError: boom at step 1" in info.value.worker_traceback
    released(pool, block, pids)


def test_thread_exception_surfaces():
    pool = AsyncEnvPool([H.make_pendulum, functools.partial(H.FailAfter, 1)], backend="threading")
    root = pool.reset()
    root["action"] = torch.zeros(2, 1)
    pool.async_step_send(root)
    with pytest.raises(EnvWorkerError, match="env 1 raised") as info:
        pool.async_step_recv(min_get=2)
    assert "boom at step 1" in info.value.worker_traceback
    pool.close()


def test_sigkill_during_async_wait_is_noticed():
    pool = AsyncEnvPool([functools.partial(H.SlowStep, 30.0)] * 2, backend="multiprocessing", envs_per_worker=1)
    block, pids = pool._pool.shared.name, pool.worker_pids
    root = pool.reset()
    root["action"] = torch.zeros(2, 1)
    pool.async_step_send(root)
    threading.Timer(0.3, os.kill, (pids[1], signal.SIGKILL)).start()
    start = time.monotonic()
    with pytest.raises(EnvWorkerError, match=r"worker 1 \(pid \d+, sub-envs 1..1\) was killed by signal SIGKILL"):
        pool.async_step_recv(min_get=2)
    assert time.monotonic() - start < 10
    released(pool, block, pids)


def test_hang_times_out():
    pool = AsyncEnvPool([H.make_pendulum, functools.partial(H.SlowStep, 30.0)], backend="multiprocessing",
                        envs_per_worker=1, timeout=0.5)
    block, pids = pool._pool.shared.name, pool.worker_pids
    pool.reset()
    with pytest.raises(EnvWorkerError, match=r"worker 1 \(pid \d+, sub-envs 1..1\) gave no reply within 0.5 s"):
        pool.rand_step()
    released(pool, block, pids)


def test_async_hang_times_out():
    pool = AsyncEnvPool([functools.partial(H.SlowStep, 30.0)], backend="multiprocessing", timeout=0.5)
    block, pids = pool._pool.shared.name, pool.worker_pids
    root = pool.reset()
    root["action"] = torch.zeros(1, 1)
    pool.async_step_send(root)
    with pytest.raises(EnvWorkerError, match="gave no reply within 0.5 s"):
        pool.async_step_recv()
    released(pool, block, pids)


def test_garbage_collected_pool_releases_everything():
    import gc

    pool = AsyncEnvPool([H.make_pendulum] * 2, backend="multiprocessing")
    block, pids = pool._pool.shared.name, pool.worker_pids
    pool.rollout(2)
    del pool
    gc.collect()
    assert block not in leaks.numbarl_blocks()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


@pytest.mark.parametrize("backend, kw", BACKENDS)
def test_partial_reset_resets_only_the_flagged_envs(backend, kw):
    with AsyncEnvPool(makers(), backend=backend, **kw) as pool:
        before = pool.rand_step(pool.reset())["next", "observation"].clone()
        mask = torch.tensor([True, False, False, True])
        out = pool.reset(TensorDict({"_reset": mask.unsqueeze(-1)}, [4]))
        torch.testing.assert_close(out["observation"][~mask], before[~mask], rtol=0, atol=0)
        assert (out["observation"][mask] != before[mask]).all()
