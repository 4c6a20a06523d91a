"""Differential tests: numbarl's Collector against TorchRL 0.14.1's on the same env, weights and seed."""
import warnings

import pytest
import torch
from tensordict.nn import TensorDictModule

from compare import assert_td_equal
import numbarl.torch_api as nt
from numbarl.torch_api.collectors import Collector

pytestmark = pytest.mark.torchrl


def policy():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    return TensorDictModule(net, ["observation"], ["action"])


def ours(batched, step_counter=True):
    def make():
        env = nt.GymEnv("Pendulum-v1")
        return nt.TransformedEnv(env, nt.StepCounter(max_steps=13)) if step_counter else env
    env = nt.TransformedEnv(nt.SerialEnv(2, make) if batched else make(), nt.RewardSum())
    env.set_seed(0)
    return env


def theirs(batched, step_counter=True):
    import torchrl.envs as te

    def make():
        env = te.GymEnv("Pendulum-v1")
        return te.TransformedEnv(env, te.StepCounter(max_steps=13)) if step_counter else env
    env = te.TransformedEnv(te.SerialEnv(2, make) if batched else make(), te.RewardSum())
    env.set_seed(0)
    return env


def both(batched, step_counter=True, **kwargs):
    from torchrl.collectors import Collector as TCollector

    p = policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(5)
        a = list(Collector(ours(batched, step_counter), p, frames_per_batch=40, total_frames=120, **kwargs))
        torch.manual_seed(5)
        b = list(TCollector(theirs(batched, step_counter), p, frames_per_batch=40, total_frames=120, **kwargs))
    assert len(a) == len(b) == 3
    return a, b


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"split_trajs": True}, {"reset_at_each_iter": True},
                                    {"split_trajs": True, "reset_at_each_iter": True}],
                         ids=["plain", "split_trajs", "reset_at_each_iter", "split+reset"])
def test_batches_equal_torchrl(batched, kwargs):
    a, b = both(batched, **kwargs)
    for x, y in zip(a, b):
        assert_td_equal(x, y, atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_max_frames_per_traj_with_split_trajs(batched):
    a, b = both(batched, step_counter=False, max_frames_per_traj=5, split_trajs=True)
    for x, y in zip(a, b):
        assert ("collector", "mask") in x.keys(True)
        assert x["step_count"].max() == 4
        assert_td_equal(x, y, atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_init_random_frames(batched):
    a, b = both(batched, init_random_frames=40)
    assert a[0].batch_size == b[0].batch_size
    assert set(a[0].keys(True, True)) == set(b[0].keys(True, True))
    # The policy part, after the random batch, follows the same states.
    for x, y in zip(a[1:], b[1:]):
        assert_td_equal(x, y, atol=1e-5)
    # The random batch is not the policy's action.
    with torch.no_grad():
        acted = policy()(a[0].select("observation").clone())["action"]
    assert not torch.allclose(acted, a[0]["action"])


def test_traj_ids_numbering_batched():
    a, b = both(True)
    ids = torch.cat([x["collector", "traj_ids"] for x in a], -1)
    assert ids[:, 0].tolist() == [0, 1]
    assert torch.equal(ids, torch.cat([y["collector", "traj_ids"] for y in b], -1))
    assert ids.max() > 1  # trajectories ended (StepCounter 13) and took fresh ids


def test_set_seed_matches_torchrl():
    from torchrl.collectors import Collector as TCollector

    p = policy()
    c1 = Collector(ours(False), p, frames_per_batch=30, total_frames=30)
    c2 = TCollector(theirs(False), p, frames_per_batch=30, total_frames=30)
    assert c1.set_seed(7) == c2.set_seed(7)
    assert_td_equal(next(iter(c1)), next(iter(c2)), atol=1e-5)
    c1.shutdown(); c2.shutdown()


@pytest.mark.parametrize("buffer", ["ReplayBuffer", "TensorDictReplayBuffer"])
def test_replay_buffer_holds_the_same_frames(buffer):
    import torchrl.data as td_data
    from torchrl.collectors import Collector as TCollector

    def rb():
        return getattr(td_data, buffer)(storage=td_data.LazyTensorStorage(500))

    p = policy()
    ours_rb, theirs_rb = rb(), rb()
    out_a = list(Collector(ours(True), p, frames_per_batch=40, total_frames=120, replay_buffer=ours_rb))
    out_b = list(TCollector(theirs(True), p, frames_per_batch=40, total_frames=120, replay_buffer=theirs_rb))
    assert out_a == [None] * 3 == out_b
    assert len(ours_rb) == len(theirs_rb) > 0
    n = len(ours_rb)
    assert_td_equal(ours_rb[:n], theirs_rb[:n], atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("traj_format", ["padded", "cat"])
@pytest.mark.parametrize("kwargs", [{}, {"reset_at_each_iter": True, "set_truncated": True}],
                         ids=["plain", "reset+truncated"])
def test_trajs_per_batch_equal_torchrl(batched, traj_format, kwargs):
    """Batches of complete trajectories: same trajectories, padding, mask and count as TorchRL's."""
    from torchrl.collectors import Collector as TCollector

    p = policy()
    kwargs = dict(frames_per_batch=20, total_frames=120, trajs_per_batch=3, traj_format=traj_format, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(5)
        a = list(Collector(ours(batched), p, **kwargs))
        torch.manual_seed(5)
        b = list(TCollector(theirs(batched), p, **kwargs))
    assert len(a) == len(b) >= 2
    for x, y in zip(a, b):
        assert x.batch_size == y.batch_size
        if traj_format == "padded":
            assert x.batch_size[0] == 3
        assert_td_equal(x, y)
    if traj_format == "padded" and kwargs.get("set_truncated") and not batched:
        # episodes cut by the reset at each batch are kept, shorter than the 13 steps of a finished one
        assert sorted(set(a[0]["collector", "mask"].sum(-1).tolist())) == [7, 13]
