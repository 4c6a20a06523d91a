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


def test_hang_message_names_sub_envs_default_and_fix():
    env = ParallelEnv(2, [H.make_pendulum, functools.partial(H.SlowStep, 30.0)], num_processes=2, timeout=0.5)
    block, pids = env._pool.shared.name, env.worker_pids
    env.reset()
    with pytest.raises(EnvWorkerError) as info:
        env.rand_step()
    text = str(info.value)
    assert f"worker 1 (pid {pids[1]}, sub-envs 1..1) gave no reply within 0.5 s" in text
    assert "default timeout is 300 s" in text and "timeout=seconds" in text and "timeout=None" in text
    assert_released(env, block, pids)


@pytest.mark.parametrize("value, error, match", [
    (float("nan"), ValueError, r"timeout to be a positive number of seconds \(inf or None: no limit\), got nan"),
    (-2.0, ValueError, "got -2.0"),
    (0, ValueError, "got 0.0"),
    ("10", TypeError, "timeout to be a positive number of seconds, inf or None, got str"),
])
def test_bad_timeout_is_refused_before_starting_anything(value, error, match):
    before = set(leaks.python_children())
    with leaks.track_blocks() as blocks, pytest.raises(error, match=match):
        ParallelEnv(2, H.make_pendulum, timeout=value)
    assert not blocks.names and set(leaks.python_children()) == before


def test_infinite_timeout_means_no_limit():
    with ParallelEnv(2, H.make_pendulum, timeout=float("inf")) as env:
        assert env._pool.timeout is None
        assert env.rollout(3).batch_size == torch.Size([2, 3])


def _mapped(name: str) -> int:
    with open("/proc/self/maps") as f:
        return sum(name in line for line in f)


def _fds_on(name: str) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += name in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return n


def test_closed_env_drops_its_descriptor_and_mapping():
    env = ParallelEnv(2, H.make_pendulum)
    name = env._pool.shared.name
    env.rollout(3)
    held = _mapped(name), _fds_on(name)  # (mmap keeps a duplicate descriptor of its own)
    env.close()
    assert held[0] >= 1 and held[1] >= 1
    assert _mapped(name) == 0 and _fds_on(name) == 0  # env still referenced, nothing of the block held
    assert name not in leaks.numbarl_blocks()


def test_env_creator_close_unlinks_its_block():
    from numbarl.torch_api import EnvCreator

    creator = EnvCreator(H.make_counted_pendulum)
    with ParallelEnv(2, creator) as env:
        env.rollout(3)
    block = creator._handles[next(iter(creator._handles))]
    assert block in leaks.numbarl_blocks()
    creator.close()
    assert block not in leaks.numbarl_blocks()  # at close(), not at garbage collection
    creator.close()  # harmless


def test_worker_affinity_pins_the_workers():
    cpus = sorted(os.sched_getaffinity(0))
    with ParallelEnv(2, H.make_pendulum, worker_affinity=[[cpus[0]], [cpus[-1]]]) as env:
        assert [os.sched_getaffinity(p) for p in env.worker_pids] == [{cpus[0]}, {cpus[-1]}]
    with pytest.raises(ValueError, match="one CPU set per worker process"):
        ParallelEnv(2, H.make_pendulum, worker_affinity=[[cpus[0]]])
    with pytest.raises(ValueError, match="names CPU 100000, which this process may not use"):
        ParallelEnv(2, H.make_pendulum, worker_affinity=lambda w: [100000])
