"""Collector (direct backend): arguments, methods and bad input."""
import functools
import sys

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

import leaks
import numbarl.torch_api as nt
from numbarl.torch_api.collectors import Collector, ExplorationType, RandomPolicy, set_exploration_type


def make_env():
    return nt.TransformedEnv(nt.GymEnv("Pendulum-v1"), nt.StepCounter(max_steps=10))


def policy(seed=0):
    torch.manual_seed(seed)
    return TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])


def test_exploration_names_reexported():
    from numbarl.torch_api.envs.utils import ExplorationType as E2, set_exploration_type as s2

    assert ExplorationType is nt.ExplorationType is E2
    assert set_exploration_type is nt.set_exploration_type is s2
    assert ExplorationType.RANDOM == "random"


@pytest.mark.parametrize("fpb", [0, -5])
def test_frames_per_batch_must_be_positive(fpb):
    with pytest.raises(ValueError, match="frames_per_batch"):
        Collector(make_env, policy(), frames_per_batch=fpb, total_frames=100)


def test_frames_per_batch_type():
    with pytest.raises(TypeError, match="frames_per_batch"):
        Collector(make_env, policy(), frames_per_batch=10.0, total_frames=100)


def test_total_frames_not_multiple_warns_and_rounds_up():
    with pytest.warns(UserWarning, match="total_frames"):
        c = Collector(make_env, policy(), frames_per_batch=30, total_frames=70)
    batches = list(c)
    assert [b.numel() for b in batches] == [30, 30, 30]
    assert len(c) == 3


def test_policy_without_action_key():
    bad = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["not_action"])
    with leaks.nothing_left("bad policy"):
        with pytest.raises(KeyError, match="policy.*'action'"):
            Collector(lambda: nt.SerialEnv(2, make_env), bad, frames_per_batch=10)


def test_env_factory_raises():
    def broken():
        raise OSError("no such env")

    with pytest.raises(RuntimeError, match="create_env_fn.*OSError: no such env"):
        Collector(broken, policy(), frames_per_batch=10)


def test_env_factory_returns_non_env():
    with pytest.raises(TypeError, match="create_env_fn"):
        Collector(lambda: object(), policy(), frames_per_batch=10)


@pytest.mark.parametrize("name,value", [("interruptor", object()), ("compile_policy", True),
                                        ("weight_updater", object()), ("compact_obs", True),
                                        ("track_policy_version", True)])
def test_unsupported_arguments_are_named(name, value):
    with pytest.raises(NotImplementedError, match=name):
        Collector(make_env, policy(), frames_per_batch=10, **{name: value})


def test_unknown_keyword():
    with pytest.raises(TypeError, match="frames_per_btach"):
        Collector(make_env, policy(), frames_per_batch=10, frames_per_btach=3)


def test_ray_backend_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r'pip install "numbarl\[ray\]"'):
        Collector(make_env, policy(), frames_per_batch=10, backend="ray", num_collectors=2)


def test_bad_backend_and_devices():
    with pytest.raises(ValueError, match="backend"):
        Collector(make_env, policy(), frames_per_batch=10, backend="mpi")
    with pytest.raises(NotImplementedError, match="storing_device"):
        Collector(make_env, policy(), frames_per_batch=10, storing_device="cuda")


def test_reset_when_done_false_and_split_without_ids():
    with pytest.raises(ValueError, match="reset_when_done"):
        Collector(make_env, policy(), frames_per_batch=10, reset_when_done=False)
    with pytest.raises(ValueError, match="track_traj_ids"):
        Collector(make_env, policy(), frames_per_batch=10, split_trajs=True, track_traj_ids=False)


def test_random_policy_when_none():
    c = Collector(make_env(), None, frames_per_batch=20, total_frames=20)
    (batch,) = list(c)
    assert batch["action"].abs().max() <= 2.0
    assert batch["action"].std() > 0


def test_random_policy_class():
    env = make_env()
    td = RandomPolicy(env.action_spec)(TensorDict())
    assert env.action_spec.is_in(td["action"])


def test_plain_module_policy_is_wrapped():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    c = Collector(make_env, net, frames_per_batch=10, total_frames=10)
    batch = c.next()
    with torch.no_grad():
        # one row at a time vs one batched matmul: float32 rounding differs near zero
        assert torch.allclose(batch["action"], net(batch["observation"]), atol=1e-6)
    assert c.next() is None


def test_return_same_td_postproc_and_set_truncated():
    seen = []
    c = Collector(make_env, policy(), frames_per_batch=7, total_frames=21, return_same_td=True, set_truncated=True,
                  postproc=lambda td: seen.append(td["next", "observation"].clone()) or td)
    outs = [b for b in c]
    assert all(o is outs[0] for o in outs)
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])
    assert outs[0]["next", "truncated"][-1].all() and outs[0]["next", "done"][-1].all()


def test_update_policy_weights_copies_weights():
    p = policy(0)
    c = Collector(make_env, p, frames_per_batch=5, total_frames=-1)
    other = policy(1)
    c.update_policy_weights_(other)
    assert torch.equal(p.module.weight, other.module.weight)
    c.update_policy_weights_(TensorDict.from_module(policy(2)))
    assert torch.equal(p.module.weight, policy(2).module.weight)
    c.shutdown()
    assert c.env.is_closed


def test_state_dict_round_trip_and_reset():
    c = Collector(make_env, policy(), frames_per_batch=8, total_frames=-1)
    it = iter(c)
    next(it); next(it)
    state = c.state_dict()
    assert state["frames"] == 16 and int(state["traj_pool"]["traj_id"]) >= 1
    c2 = Collector(make_env, policy(), frames_per_batch=8, total_frames=-1)
    c2.load_state_dict(state)
    assert c2._frames == 16
    before = int(c._traj_pool.counter[0])
    c.reset()
    batch = next(it)
    assert batch["collector", "traj_ids"][0] == before
    assert batch["step_count"][0] == 0
    c.shutdown(); c2.shutdown()


def test_partial_reset_batched():
    c = Collector(lambda: nt.TransformedEnv(nt.SerialEnv(2, lambda: nt.GymEnv("Pendulum-v1")), nt.StepCounter(max_steps=10)),
                  policy(), frames_per_batch=6, total_frames=-1)
    it = iter(c)
    next(it)
    c.reset(index=1)
    batch = next(it)
    assert batch["step_count"][1, 0] == 0 and batch["step_count"][0, 0] == 3
    assert batch["collector", "traj_ids"][1, 0] == 2
    c.shutdown()


@pytest.mark.parametrize("fmt", [None, "cat"])
def test_trajs_per_batch(fmt):
    c = Collector(make_env, policy(), frames_per_batch=7, total_frames=70, trajs_per_batch=2, traj_format=fmt)
    batches = list(c)
    assert len(batches) == 3  # 70 frames hold 7 complete trajectories of 10 steps
    for b in batches:
        if fmt == "cat":
            assert b.batch_size == torch.Size([20]) and b["next", "done"].sum() == 2
        else:
            assert b.batch_size == torch.Size([2, 10]) and b["collector", "mask"].all()
            assert (b["step_count"][:, 0] == 0).all() and b["next", "done"][:, -1].all()


def test_exploration_type_is_set_while_the_policy_runs():
    from tensordict.nn.probabilistic import interaction_type

    seen = []

    def spy(td):
        seen.append(interaction_type())
        return td.set("action", torch.zeros(1))

    list(Collector(make_env, spy, frames_per_batch=3, total_frames=3, exploration_type=ExplorationType.DETERMINISTIC))
    assert set(seen) == {ExplorationType.DETERMINISTIC}


def test_process_backend_dispatch_type():
    from numbarl.torch_api.collectors import MultiAsyncCollector, MultiSyncCollector

    c = Collector(functools.partial(nt.GymEnv, "Pendulum-v1"), policy(), frames_per_batch=20, total_frames=20,
                  backend="process", num_collectors=2, sync=True)
    try:
        assert isinstance(c, MultiSyncCollector)
    finally:
        c.shutdown()
    c = Collector([functools.partial(nt.GymEnv, "Pendulum-v1")], policy(), frames_per_batch=20, total_frames=20,
                  backend="process")
    try:
        assert isinstance(c, MultiAsyncCollector)
    finally:
        c.shutdown()
