"""MultiSyncCollector / MultiAsyncCollector: results, shared weights, faults, nothing left behind."""
import functools
import os
import signal
import time
import warnings

import pytest
import torch
from tensordict.nn import TensorDictModule

import collector_helpers as helpers
import leaks
from compare import assert_td_equal
from numbarl.torch_api.collectors import MultiAsyncCollector, MultiSyncCollector
from numbarl.torch_api.envs.batched import EnvWorkerError


def policy(seed=0):
    torch.manual_seed(seed)
    return TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])


def check_traj_ids(batch):
    """Ids change exactly after a done step, and never repeat across rows."""
    ids, done = batch["collector", "traj_ids"], batch["next", "done"].squeeze(-1)
    changed = ids[..., 1:] != ids[..., :-1]
    assert torch.equal(changed, done[..., :-1])
    rows = [set(r.tolist()) for r in ids.reshape(-1, ids.shape[-1])]
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            assert not rows[i] & rows[j]


@pytest.mark.torchrl
def test_multisync_stack_equals_torchrl():
    from torchrl.collectors import MultiSyncCollector as TMultiSync

    p = policy()
    kwargs = dict(frames_per_batch=40, total_frames=120, cat_results="stack", create_env_kwargs=[{"seed": 0},
                                                                                                {"seed": 1}])
    with leaks.nothing_left("MultiSyncCollector"):
        ours = list(MultiSyncCollector([helpers.pendulum] * 2, p, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(TMultiSync([helpers.torchrl_pendulum] * 2, p, **kwargs))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert a.batch_size == b.batch_size == torch.Size([2, 20])
        check_traj_ids(a)
        assert_td_equal(a.exclude(("collector", "traj_ids")), b.exclude(("collector", "traj_ids")), atol=1e-5)
        assert a["collector", "traj_ids"].dtype == b["collector", "traj_ids"].dtype


def test_multisync_cat_split_and_replay_buffer():
    class Buffer:
        def __init__(self):
            self.items = []

        def extend(self, td):
            self.items.append(td)

    with leaks.nothing_left("MultiSyncCollector"):
        c = MultiSyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=40, total_frames=80, cat_results=-1)
        batches = list(c)
        assert [b.batch_size for b in batches] == [torch.Size([40])] * 2
        c = MultiSyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=40, total_frames=40,
                               split_trajs=True)
        (split,) = list(c)
        assert ("collector", "mask") in split.keys(True)
        assert split["collector", "mask"].sum() == 40
        rb = Buffer()
        c = MultiSyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=40, total_frames=80,
                               replay_buffer=rb)
        assert list(c) == [None, None]
        assert [t.batch_size for t in rb.items] == [torch.Size([2, 20])] * 2


def test_update_policy_weights_reaches_every_worker():
    p = policy()
    with leaks.nothing_left("MultiSyncCollector"):
        c = MultiSyncCollector([helpers.pendulum] * 2, p, frames_per_batch=20, total_frames=-1)
        it = iter(c)
        first = next(it)
        assert first["action"].std() > 0
        with torch.no_grad():
            p.module.weight.zero_()
            p.module.bias.fill_(0.5)
        stale = next(it)  # not pushed yet: workers keep their weights
        assert not torch.all(stale["action"] == 0.5)
        c.update_policy_weights_()
        fresh = next(it)
        assert torch.all(fresh["action"] == 0.5)
        other = policy(3)
        c.update_policy_weights_(other)
        batch = next(it)
        with torch.no_grad():
            expected = other(batch.select("observation").clone())["action"]
        assert torch.allclose(batch["action"], expected)
        c.shutdown()


def test_multiasync_yields_each_worker_batch():
    with leaks.nothing_left("MultiAsyncCollector"):
        c = MultiAsyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=20, total_frames=100)
        batches = list(c)
        assert len(batches) == 5 and all(b.batch_size == torch.Size([20]) for b in batches)
        for b in batches:
            check_traj_ids(b)
    # Which worker replies first depends on timing, so tell the workers apart by their batches instead: worker 0's
    # episodes last 13 steps (1 or 2 dones in 20 frames) and worker 1's last 5 (exactly 4 dones in every 20 frames).
    # Collect until both have delivered; a worker left waiting for 200 batches is a failure, not a slow run.
    with leaks.nothing_left("MultiAsyncCollector until both workers delivered"):
        envs = [functools.partial(helpers.pendulum, max_steps=13), functools.partial(helpers.pendulum, max_steps=5)]
        c = MultiAsyncCollector(envs, policy(), frames_per_batch=20, total_frames=-1)
        seen = set()
        for i, b in enumerate(c):
            dones = int(b["next", "done"].sum())
            assert dones in (1, 2, 4)
            seen.add(1 if dones == 4 else 0)
            if seen == {0, 1} or i == 200:
                break
        c.shutdown()
        assert seen == {0, 1}  # both workers delivered


def test_worker_raises():
    with leaks.nothing_left("raising worker"):
        c = MultiSyncCollector([helpers.pendulum] * 2, helpers.RaisingPolicy(after=15), frames_per_batch=20,
                               total_frames=-1)
        it = iter(c)
        next(it)
        start = time.monotonic()
        with pytest.raises(EnvWorkerError, match="MultiSyncCollector worker") as info:
            next(it)
        assert time.monotonic() - start < 10
        assert "policy failure on purpose" in info.value.worker_traceback
        with pytest.raises(RuntimeError, match="shut down"):
            next(iter(c))


def test_worker_killed():
    with leaks.nothing_left("killed worker"):
        c = MultiAsyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=20, total_frames=-1)
        it = iter(c)
        next(it)
        os.kill(c.worker_pids[1], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(EnvWorkerError, match="SIGKILL"):
            for _ in range(50):
                next(it)
        assert time.monotonic() - start < 10


def test_env_factory_raises_in_worker():
    with leaks.nothing_left("broken factory"):
        with pytest.raises(EnvWorkerError, match="MultiSyncCollector worker") as info:
            MultiSyncCollector([helpers.pendulum, helpers.broken_env], policy(), frames_per_batch=20)
        assert "create_env_fn" in info.value.worker_traceback and "fails on purpose" in info.value.worker_traceback


def test_policy_without_action_key_in_worker():
    bad = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["not_action"])
    with leaks.nothing_left("bad policy"):
        with pytest.raises(EnvWorkerError) as info:
            MultiSyncCollector([helpers.pendulum] * 2, bad, frames_per_batch=20)
        assert "lacks the env's action key 'action'" in info.value.worker_traceback


@pytest.mark.parametrize("cls", [MultiSyncCollector, MultiAsyncCollector])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="frames_per_batch"):
        cls([helpers.pendulum], policy(), frames_per_batch=0)
    with pytest.raises(TypeError, match="create_env_fn"):
        cls([helpers.pendulum()], policy(), frames_per_batch=10)
    with pytest.raises(NotImplementedError, match="interruptor"):
        cls([helpers.pendulum], policy(), frames_per_batch=10, interruptor=object())
    with pytest.warns(UserWarning, match="total_frames"):
        c = cls([functools.partial(helpers.pendulum, max_steps=5)], policy(), frames_per_batch=10, total_frames=15)
    c.shutdown()


def test_set_seed_and_state_dict():
    with leaks.nothing_left("seeded"):
        c = MultiSyncCollector([helpers.pendulum] * 2, policy(), frames_per_batch=20, total_frames=20)
        c.set_seed(0)
        state = c.state_dict()
        assert set(state) >= {"worker0", "worker1", "frames"}
        c.reset()
        (batch,) = list(c)
        assert (batch["step_count"][:, 0] == 0).all()
