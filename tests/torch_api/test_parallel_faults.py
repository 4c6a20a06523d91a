"""ParallelEnv faults: a worker that raises, dies or hangs makes the parent raise, and nothing is left behind."""
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
from numbarl.torch_api import EnvWorkerError, ParallelEnv


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    """After the module: no child process of this one and none of the shared blocks it made remain."""
    with leaks.nothing_left("the ParallelEnv fault tests"):
        yield


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_released(env, block: str, pids: list) -> None:
    assert env.is_closed or env._pool.closed
    assert block not in leaks.numbarl_blocks(), f"shared block {block} was not unlinked"
    alive = [pid for pid in pids if not gone(pid)]
    assert not alive, f"workers {alive} are still running"
    with pytest.raises(RuntimeError, match="is closed"):
        env.rollout(2)
    env.close()  # harmless after a fault


@pytest.mark.parametrize("processes", [2, 4])
def test_worker_exception_surfaces_with_traceback(processes):
    fns = [H.make_pendulum, functools.partial(H.FailAfter, 3), H.make_pendulum, H.make_pendulum]
    env = ParallelEnv(4, fns, num_processes=processes)
    block, pids = env._pool.shared.name, env.worker_pids
    env.reset()
    with pytest.raises(EnvWorkerError, match="raised") as info:
        env.rollout(10)
    assert "ValueError: boom at step 3" in info.value.worker_traceback
    assert "boom at step 3" in str(info.value)
    assert "in _np_step" in info.value.worker_traceback
    assert_released(env, block, pids)


def test_worker_build_failure_raises_at_construction():
    with leaks.track_blocks() as blocks, pytest.raises(EnvWorkerError, match="cannot build this env"):
        ParallelEnv(2, [H.make_pendulum, H.fail_to_build], num_processes=2)
    assert len(blocks.names) == 1 and not set(blocks.names) & leaks.numbarl_blocks()


def test_sigkill_while_idle_is_noticed():
    env = ParallelEnv(3, H.make_pendulum, num_processes=3)
    block, pids = env._pool.shared.name, env.worker_pids
    env.rollout(3)
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(EnvWorkerError, match=r"worker 1 \(pid \d+, sub-envs 1..1\) was killed by signal SIGKILL"):
        env.rollout(100)
    assert time.monotonic() - start < 10
    assert_released(env, block, pids)


def test_sigkill_during_a_rollout_is_noticed():
    env = ParallelEnv(2, H.make_pendulum, num_processes=2)
    block, pids = env._pool.shared.name, env.worker_pids
    killed = {}

    def kill():
        killed["at"] = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)

    timer = threading.Timer(0.5, kill)
    timer.start()
    try:
        with pytest.raises(EnvWorkerError, match="SIGKILL"):
            env.rollout(10**5, break_when_any_done=False)  # far longer than the 0.5 s before the kill
    finally:
        timer.cancel()
    assert time.monotonic() - killed["at"] < 10
    assert_released(env, block, pids)


def test_unresponsive_worker_times_out():
    env = ParallelEnv(2, [H.make_pendulum, functools.partial(H.SlowStep, 30.0)], num_processes=2, timeout=1.0)
    block, pids = env._pool.shared.name, env.worker_pids
    env.reset()
    start = time.monotonic()
    with pytest.raises(EnvWorkerError, match=r"gave no reply within 1.0 s"):
        env.rand_step()
    assert time.monotonic() - start < 10
    assert_released(env, block, pids)


def test_garbage_collected_env_releases_everything():
    env = ParallelEnv(2, H.make_pendulum)
    block, pids = env._pool.shared.name, env.worker_pids
    env.rollout(2)
    del env
    import gc

    gc.collect()
    assert block not in leaks.numbarl_blocks()
    deadline = time.monotonic() + 10
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(p) for p in pids)


def test_step_after_fault_in_td_api():
    env = ParallelEnv(2, [H.make_pendulum, functools.partial(H.FailAfter, 1)], num_processes=2)
    td = env.reset()
    td.set("action", torch.zeros(2, 1))
    with pytest.raises(EnvWorkerError, match="boom at step 1"):
        env.step(td)
    with pytest.raises(RuntimeError, match="is closed"):
        env.step(td)


def test_interrupted_wait_does_not_desynchronize():
    """A step whose reply was never read (as after a KeyboardInterrupt) is drained before the next command."""
    actions = [torch.rand(2, 1) * 4 - 2 for _ in range(20)]
    with ParallelEnv(2, H.make_pendulum) as env:
        env.set_seed(1)
        env.reset()
        env._pool.send(env._every, b"s")  # its wait "interrupted": the replies stay in the pipes
        env.set_seed(1)
        out = env.rollout(20, actions=actions)
    from numbarl.torch_api import SerialEnv

    with SerialEnv(2, H.make_pendulum) as ref:
        ref.set_seed(1)
        expected = ref.rollout(20, actions=actions)
    torch.testing.assert_close(out["next", "observation"], expected["next", "observation"], rtol=0, atol=0)
