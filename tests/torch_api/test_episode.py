"""Episode transforms: StepCounter, InitTracker, NoopResetEnv, FrameSkipTransform, TerminateTransform,
NextObservationDelta.

Differential tests against torchrl 0.14.1 inside ``TransformedEnv(GymEnv)``
rollouts with several episodes and in a ``SerialEnv`` whose sub-envs are done
at different steps; the array path against the TensorDict path; partial
resets and ``state_dict``; bad input.
"""
import functools
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl import torch_api as N

warnings.filterwarnings("ignore", category=DeprecationWarning)

STEPS = 80
SPEC_PARTS = ("full_observation_spec", "full_reward_spec", "full_done_spec", "full_state_spec",
              "full_action_spec")


def cartpole_action(i, batch=()):
    return torch.nn.functional.one_hot(torch.tensor((i * 7) % 3 % 2), 2).expand(*batch, 2).clone()


def pendulum_action(i, batch=()):
    return torch.full((*batch, 1), float(np.sin(i) * 2), dtype=torch.float32)


ACTIONS = {"CartPole-v1": cartpole_action, "Pendulum-v1": pendulum_action}


def policy(td):
    """Deterministic policy from the observation; CartPole episodes end at varied steps."""
    obs = td["observation"]
    if obs.shape[-1] == 4:
        right = (obs[..., 1:2] + 3 * obs[..., 2:3] < 0).long()
        td.set("action", torch.cat([1 - right, right], -1))
    else:
        td.set("action", (-0.5 * obs[..., 2:3]).clamp(-2.0, 2.0))
    return td


def needs_serial():
    if not hasattr(N, "SerialEnv"):
        pytest.skip("numbarl.torch_api.SerialEnv is not there yet")


def envs(name, make, batched=0):
    import torchrl.envs as T

    if batched:
        needs_serial()

        def ours():
            return N.GymEnv(name)

        def theirs():
            return T.GymEnv(name)

        return (N.TransformedEnv(N.SerialEnv(batched, ours), make(N)),
                T.TransformedEnv(T.SerialEnv(batched, theirs), make(T)))
    return N.TransformedEnv(N.GymEnv(name), make(N)), T.TransformedEnv(T.GymEnv(name), make(T))


def assert_specs(ours, theirs):
    for part in SPEC_PARTS:
        assert_spec_matches_torchrl(getattr(ours, part), getattr(theirs, part))


def both_paths(env, steps, actions=None, pol=None, seed=0, break_when_any_done=False):
    """(array-path rollout, TensorDict-path rollout) from the same seed."""
    assert env._array_path_ready()
    env.set_seed(seed)
    fast = env.rollout(steps, pol, actions=actions, break_when_any_done=break_when_any_done)
    env.set_seed(seed)
    slow = env._td_rollout(steps, pol, None, actions, True, break_when_any_done, False, None, False)
    return fast, slow


STEPWISE = {
    "count": lambda M: M.StepCounter(),
    "count_truncate": lambda M: M.StepCounter(7),
    "count_no_done_update": lambda M: M.StepCounter(7, update_done=False),
    "count_custom_keys": lambda M: M.StepCounter(9, truncated_key="cut", step_count_key="t"),
    "init": lambda M: M.InitTracker(),
    "init_key": lambda M: M.InitTracker("first"),
    "all": lambda M: M.Compose(M.RewardSum(), M.StepCounter(15), M.InitTracker()),
}


# ------------------------------------------------------------- vs torchrl
@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("case", sorted(STEPWISE))
def test_rollout_matches_torchrl(torchrl, name, case):
    ours, theirs = envs(name, STEPWISE[case])
    assert_specs(ours, theirs)
    acts = [ACTIONS[name](i) for i in range(STEPS)]
    fast, slow = both_paths(ours, STEPS, actions=acts)
    theirs.set_seed(0)
    ref = theirs.rollout(STEPS, actions=acts, break_when_any_done=False)
    assert ref["next", "done"].sum() >= 2 or case in ("count", "init", "init_key", "count_no_done_update")
    assert_td_equal(fast, ref)
    assert_td_equal(slow, ref)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("case", ["count_truncate", "count_no_done_update", "init", "all"])
def test_serial_env_with_done_sub_envs_matches_torchrl(torchrl, name, case):
    batched_cases = {**STEPWISE, "count_truncate": lambda M: M.StepCounter(19),  # some sub-envs end before 19 steps
                     "all": lambda M: M.Compose(M.RewardSum(), M.StepCounter(19), M.InitTracker())}
    ours, theirs = envs(name, batched_cases[case], batched=3)
    assert_specs(ours, theirs)
    fast, slow = both_paths(ours, 50, pol=policy)
    theirs.set_seed(0)
    ref = theirs.rollout(50, policy, break_when_any_done=False)
    if name == "CartPole-v1":
        done = ref["next", "done"].squeeze(-1)
        assert done.any(1).all() and not (done == done[0]).all()  # sub-envs done at different steps
    assert_td_equal(fast, ref)
    assert_td_equal(slow, ref)


@pytest.mark.torchrl
def test_serial_env_rollout_with_actions_matches_torchrl(torchrl):
    ours, theirs = envs("CartPole-v1", STEPWISE["all"], batched=3)
    acts = [cartpole_action(i, (3,)) for i in range(50)]
    ours.set_seed(0)
    theirs.set_seed(0)
    assert_td_equal(ours.rollout(50, actions=acts, break_when_any_done=False),
                    theirs.rollout(50, actions=acts, break_when_any_done=False))


def _counter_env(lib):
    """An env with done and terminated but no truncated entry, built on ``lib``'s EnvBase."""
    Composite, Unbounded = (lib.Composite, lib.Unbounded) if lib is N else _torchrl_specs()

    class Walker(lib.EnvBase):
        def __init__(self):
            super().__init__()
            self.observation_spec = Composite(x=Unbounded((1,)))
            self.action_spec = Unbounded((1,))
            self.reward_spec = Unbounded((1,))

        def _reset(self, td):
            self.x = torch.zeros(1)
            return TensorDict({"x": self.x.clone()}, [])

        def _step(self, td):
            self.x = self.x + td["action"]
            done = self.x.abs() > 4
            return TensorDict({"x": self.x.clone(), "reward": -self.x.abs(), "done": done,
                               "terminated": done.clone()}, [])

        def _set_seed(self, seed):
            pass

    return Walker()


def _torchrl_specs():
    import torchrl.data as TD

    return TD.Composite, TD.Unbounded


@pytest.mark.torchrl
def test_step_counter_adds_truncated_when_the_env_has_none(torchrl):
    import torchrl.envs as T

    ours = N.TransformedEnv(_counter_env(N), N.StepCounter(3))
    theirs = T.TransformedEnv(_counter_env(T), T.StepCounter(3))
    assert "truncated" not in N.TransformedEnv(_counter_env(N), N.StepCounter()).full_done_spec
    assert_specs(ours, theirs)
    acts = [torch.tensor([1.5 if i % 5 else -2.0]) for i in range(20)]
    a = ours.rollout(20, actions=acts, break_when_any_done=False)
    assert_td_equal(a, theirs.rollout(20, actions=acts, break_when_any_done=False))
    N.check_env_specs(ours)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("random", [False, True])
def test_noop_reset_matches_torchrl(torchrl, name, random):
    ours, theirs = envs(name, lambda M: M.NoopResetEnv(12, random=random))
    assert_specs(ours, theirs)
    for seed in range(3):
        ours.set_seed(seed)
        theirs.set_seed(seed)
        torch.manual_seed(seed)
        a = ours.reset()
        torch.manual_seed(seed)
        assert_td_equal(a, theirs.reset())
    ours.set_seed(1)
    theirs.set_seed(1)
    torch.manual_seed(1)
    a = ours.rollout(STEPS, break_when_any_done=False)
    torch.manual_seed(1)
    assert_td_equal(a, theirs.rollout(STEPS, break_when_any_done=False))


def test_noop_reset_errors():
    env = N.TransformedEnv(N.GymEnv("CartPole-v1"), N.NoopResetEnv(300, random=False))
    env.set_seed(0)
    with pytest.raises(RuntimeError, match=r"done before 300 no-op steps 11 times in a row; lower noops") as info:
        env.reset()  # TorchRL's type, and a ValueError by this package's rule
    assert isinstance(info.value, ValueError)
    needs_serial()
    env = N.TransformedEnv(N.SerialEnv(2, lambda: N.GymEnv("Pendulum-v1")), N.NoopResetEnv(3))
    with pytest.raises(ValueError, match=r"unbatched envs .* batch_size \(2,\)"):
        env.reset()


@pytest.mark.torchrl
@pytest.mark.filterwarnings("ignore:.*already returned terminated")
@pytest.mark.parametrize("name", ["Pendulum-v1", "CartPole-v1"])
def test_frame_skip_matches_torchrl(torchrl, name):
    if name == "Pendulum-v1":  # the repeats go through the transforms before FrameSkipTransform
        make = lambda M: M.Compose(M.RewardScaling(0.5, 2.0), M.FrameSkipTransform(3), M.RewardSum())
    else:
        make = lambda M: M.Compose(M.FrameSkipTransform(3), M.RewardSum())
    ours, theirs = envs(name, make)
    assert_specs(ours, theirs)
    acts = [ACTIONS[name](i) for i in range(40)]
    ours.set_seed(0)
    theirs.set_seed(0)
    a = ours.rollout(40, actions=acts, break_when_any_done=False)
    b = theirs.rollout(40, actions=acts, break_when_any_done=False)
    if name == "Pendulum-v1":
        assert_td_equal(a, b)
        return
    # TorchRL keeps stepping an env that is done within the skipped frames (gymnasium's CartPole then
    # returns reward 0 and moves on); here the repeats stop at the done, so only the observation differs.
    done = b["next", "done"].squeeze(-1)
    assert done.sum() >= 3
    obs = ("observation", ("next", "observation"))
    assert_td_equal(a.exclude(*obs), b.exclude(*obs))
    keep = ~done
    assert torch.equal(a["next", "observation"][keep], b["next", "observation"][keep])
    raw = N.GymEnv(name)
    raw.set_seed(0)
    base = raw.rollout(120, actions=[acts[i // 3] for i in range(120)], break_when_any_done=True)
    first = int(done.nonzero()[0])
    assert torch.equal(a["next", "observation"][first], base["next", "observation"][-1])


@pytest.mark.torchrl
@pytest.mark.parametrize("write_done", [True, False])
@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_terminate_matches_torchrl(torchrl, write_done, break_when_any_done):
    for name, stop in (("Pendulum-v1", lambda td: td["observation"][..., 2:3] < -1.5),
                       ("CartPole-v1", lambda td: td["observation"][..., 0] > 0.05)):
        ours, theirs = envs(name, lambda M, stop=stop: M.TerminateTransform(stop, write_done=write_done))
        assert_specs(ours, theirs)
        acts = [ACTIONS[name](i) for i in range(60)]
        ours.set_seed(0)
        theirs.set_seed(0)
        a = ours.rollout(60, actions=acts, break_when_any_done=break_when_any_done)
        assert a["next", "terminated"].any()
        assert_td_equal(a, theirs.rollout(60, actions=acts, break_when_any_done=break_when_any_done))


@pytest.mark.torchrl
def test_terminate_in_serial_env_matches_torchrl(torchrl):
    def stop(td):
        return td["observation"][..., 2] < -1.5  # batch shape: fitted to the done entries

    ours, theirs = envs("Pendulum-v1", lambda M: M.TerminateTransform(stop), batched=3)
    ours.set_seed(0)
    theirs.set_seed(0)
    torch.manual_seed(0)
    a = ours.rollout(30, break_when_any_done=False)
    torch.manual_seed(0)
    b = theirs.rollout(30, break_when_any_done=False)
    assert a["next", "done"].any()
    assert_td_equal(a, b)


def test_terminate_bad_result_shape_and_forward():
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.TerminateTransform(lambda td: torch.ones(5, dtype=torch.bool)))
    env.set_seed(0)
    with pytest.raises(ValueError, match=r"stop returned shape \(5,\)"):
        env.rollout(2)
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.TerminateTransform(lambda td: 1))
    env.set_seed(0)
    assert env.rollout(5).shape == (1,)  # nonzero counts as True
    with pytest.raises(RuntimeError, match="inside a TransformedEnv"):
        N.TerminateTransform(lambda td: True)(TensorDict({}, []))


@pytest.mark.torchrl
@pytest.mark.parametrize("name, batched", [("CartPole-v1", 0), ("Pendulum-v1", 0), ("CartPole-v1", 3)])
@pytest.mark.parametrize("delta_dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("keys", ["auto", "explicit"])
def test_next_observation_delta_matches_torchrl(torchrl, name, batched, delta_dtype, keys):
    import torchrl.envs as T

    in_keys = None if keys == "auto" else ["observation"]
    ours, theirs = envs(name, lambda M: M.NextObservationDelta(in_keys, delta_dtype=delta_dtype), batched)
    assert ours.transform.in_keys == theirs.transform.in_keys == ["observation"]
    assert_specs(ours, theirs)
    ours.set_seed(0)
    theirs.set_seed(0)
    torch.manual_seed(0)
    a = ours.rollout(60, policy, break_when_any_done=False)
    torch.manual_seed(0)
    b = theirs.rollout(60, policy, break_when_any_done=False).to_tensordict()
    # TorchRL's layout: the root observation and ("next", "delta", obs); no ("next", obs), no root delta
    assert ("next", "observation") not in a.keys(True, True)
    assert a["next", "delta", "observation"].dtype == delta_dtype
    if batched:
        assert a["next", "done"].any()
    assert_td_equal(a, b)
    assert_td_equal(ours.fake_tensordict(), theirs.fake_tensordict())
    ours.set_seed(0)
    slow = ours._td_rollout(60, policy, None, None, True, False, False, None, False)
    assert_td_equal(a, slow)
    # replay-buffer side: rebuild ("next", "observation") from the stored delta
    for restore in ("root", torch.float64):
        for drop in (True, False):
            mine = N.NextObservationDelta(in_keys=["observation"], restore_dtype=restore, drop_delta=drop)(a.clone())
            ref = T.NextObservationDelta(in_keys=["observation"], restore_dtype=restore, drop_delta=drop)(a.clone())
            assert_td_equal(mine, ref)
            assert (("next", "delta", "observation") in mine.keys(True, True)) is not drop


@pytest.mark.torchrl
@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_next_observation_delta_step_and_rollout_paths_match_torchrl(torchrl, break_when_any_done):
    ours, theirs = envs("CartPole-v1", lambda M: M.NextObservationDelta())
    for env in (ours, theirs):
        env.set_seed(3)
    actions = [cartpole_action(i) for i in range(40)]
    a = ours.rollout(40, actions=actions, break_when_any_done=break_when_any_done)
    given = iter(actions)
    b = theirs.rollout(40, lambda td: td.set("action", next(given)), break_when_any_done=break_when_any_done)
    assert_td_equal(a, b)
    assert a["next", "done"].any()
    ours.set_seed(3)
    slow = ours._td_rollout(40, None, None, actions, True, break_when_any_done, False, None, False)
    assert_td_equal(a, slow)
    # env.step keeps ("next", obs) beside the delta; step_and_maybe_reset drops it, the next root keeps it
    for env in (ours, theirs):
        env.set_seed(0)
    root_a, root_b = ours.reset(), theirs.reset()
    for td in (root_a, root_b):
        td.set("action", cartpole_action(0))
    assert_td_equal(ours.step(root_a.clone()), theirs.step(root_b.clone()))
    (sa, na), (sb, nb) = ours.step_and_maybe_reset(root_a), theirs.step_and_maybe_reset(root_b)
    assert_td_equal(sa, sb)
    assert_td_equal(na, nb)
    assert ("next", "observation") not in sa.keys(True, True) and na["observation"].dtype == torch.float32
    assert_td_equal(ours.fake_tensordict(), theirs.fake_tensordict())


@pytest.mark.torchrl
def test_next_observation_delta_auto_keys_skip_integer_observations(torchrl):
    ours, theirs = envs("CartPole-v1", lambda M: M.Compose(
        M.CatTensors(["observation"], "obs_copy", del_keys=False),
        M.DTypeCastTransform(torch.float32, torch.float64, in_keys=["obs_copy"]),
        M.StepCounter(), M.NextObservationDelta()))
    assert ours.transform[-1].in_keys == theirs.transform[-1].in_keys == ["observation", "obs_copy"]
    for env in (ours, theirs):
        env.set_seed(1)
    torch.manual_seed(0)
    a = ours.rollout(30, policy, break_when_any_done=False)
    torch.manual_seed(0)
    b = theirs.rollout(30, policy, break_when_any_done=False)
    assert ("next", "step_count") in a.keys(True, True)
    assert_td_equal(a, b)
    assert a["next", "delta", "obs_copy"].dtype == torch.float16


@pytest.mark.torchrl
def test_next_observation_delta_collector_matches_torchrl(torchrl):
    import torchrl.envs as T
    from torchrl.collectors import Collector as TCollector

    def make(M):
        return lambda: M.TransformedEnv(M.GymEnv("CartPole-v1"), M.NextObservationDelta(in_keys=["observation"]))

    batches = []
    for M, C in ((N, N.collectors.Collector), (T, TCollector)):
        env = make(M)()
        env.set_seed(0)
        torch.manual_seed(0)
        collector = C(env, policy, frames_per_batch=32, total_frames=64)
        try:
            batches.append([b.exclude("collector") for b in collector])
        finally:
            collector.shutdown()
    for mine, ref in zip(*batches):
        assert ("next", "observation") not in mine.keys(True, True)
        assert_td_equal(mine, ref)


@pytest.mark.torchrl
def test_next_observation_delta_bfloat16_matches_torchrl(torchrl):
    # bfloat16 has no NumPy dtype: the rollout takes the TensorDict path
    ours, theirs = envs("Pendulum-v1", lambda M: M.NextObservationDelta(delta_dtype=torch.bfloat16))
    assert not ours._array_path_ready()
    for env in (ours, theirs):
        env.set_seed(0)
    torch.manual_seed(0)
    a = ours.rollout(20, policy)
    torch.manual_seed(0)
    assert_td_equal(a, theirs.rollout(20, policy))
    assert a["next", "delta", "observation"].dtype == torch.bfloat16


def test_next_observation_delta_in_a_transformed_base_env():
    inner = N.TransformedEnv(N.GymEnv("CartPole-v1"), N.NextObservationDelta())
    env = N.TransformedEnv(inner, N.StepCounter(12))
    fast, slow = both_paths(env, 40, pol=policy)
    assert_td_equal(fast, slow)
    assert ("next", "observation") not in fast.keys(True, True)
    assert set(env.fake_tensordict().keys(True, True)) == set(fast.keys(True, True))
    N.check_env_specs(env, seed=0)


def test_next_observation_delta_partial_reset():
    needs_serial()
    env = N.TransformedEnv(N.SerialEnv(3, lambda: N.GymEnv("CartPole-v1")), N.NextObservationDelta())
    fast, slow = both_paths(env, 50, pol=policy)
    assert_td_equal(fast, slow)
    done = fast["next", "done"].squeeze(-1)
    assert done.any() and not done.all()
    # within an episode the delta is the change to the next root observation, in float16
    expected = (fast["observation"][:, 1:] - fast["observation"][:, :-1]).to(torch.float16)
    keep = ~done[:, :-1]
    assert torch.equal(fast["next", "delta", "observation"][:, :-1][keep], expected[keep])
    assert ("delta", "observation") not in fast.keys(True, True)


def test_next_observation_delta_in_batched_worker_raises():
    needs_serial()

    def make():
        return N.TransformedEnv(N.GymEnv("CartPole-v1"), N.Compose(N.StepCounter(), N.NextObservationDelta()))

    with pytest.raises(RuntimeError, match="cannot live inside a SerialEnv/ParallelEnv worker"):
        N.SerialEnv(2, make)
    if hasattr(N, "ParallelEnv"):
        with pytest.raises(RuntimeError, match="cannot live inside a SerialEnv/ParallelEnv worker"):
            N.ParallelEnv(2, make, mp_start_method="fork")


# ----------------------------------------------------- running state
@pytest.mark.parametrize("path", ["td", "array"])
def test_step_counter_partial_reset(path):
    needs_serial()
    env = N.TransformedEnv(N.SerialEnv(3, lambda: N.GymEnv("Pendulum-v1")), N.Compose(N.StepCounter(), N.InitTracker()))
    env.set_seed(0)
    td = env.reset()
    for _ in range(4):
        td = N.step_mdp(env.rand_step(td))
    assert td["step_count"].squeeze(-1).tolist() == [4, 4, 4]
    mask = torch.tensor([False, True, False])
    if path == "td":
        request = td.clone()
        request.set("_reset", mask.unsqueeze(-1))
        out = env.reset(request)
        count, init = out["step_count"], out["is_init"]
    else:
        arrays = env._np_reset(mask.numpy())
        count = torch.from_numpy(np.array(arrays["step_count"]))
        init = torch.from_numpy(np.array(arrays["is_init"]))
    assert count.squeeze(-1).tolist() == [4, 0, 4]
    assert init.squeeze(-1).tolist() == [False, True, False]


def test_step_counter_running_counts_resume_through_extra_state():
    """The counts are not in state_dict (TorchRL's format); get/set_extra_state move them, as does an
    earlier checkpoint that still holds them under ``_extra_state``."""
    def make():
        return N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.StepCounter(max_steps=15))

    acts = [pendulum_action(i) for i in range(20)]
    env = make()
    env.set_seed(5)
    first = env.rollout(10, actions=acts[:10])
    assert "_extra_state" not in env.transform.state_dict()
    state = {"_extra_state": env.transform.get_extra_state()}  # an earlier version's checkpoint
    assert state["_extra_state"]["_counts"]["step_count"].tolist() == [10]
    start = N.step_mdp(first[-1])
    resumed = make()
    resumed.transform.load_state_dict(pickle.loads(pickle.dumps(state)))
    resumed.set_seed(5)
    resumed.base_env.rollout(10, actions=acts[:10])
    again = resumed.rollout(10, actions=acts[10:], auto_reset=False, tensordict=start)
    assert again["next", "step_count"].squeeze(-1).tolist() == [11, 12, 13, 14, 15]  # truncated at 15
    assert again["next", "truncated"][-1].item()
    import torchrl.envs as T

    fresh = N.StepCounter(3)
    fresh.load_state_dict(T.StepCounter(3).state_dict())  # TorchRL keeps no counts: they start from zero


@pytest.mark.parametrize("cls", [N.StepCounter, N.InitTracker, N.NoopResetEnv, N.FrameSkipTransform])
def test_forward_outside_an_env_raises(cls):
    with pytest.raises(NotImplementedError, match="inside a TransformedEnv"):
        cls()(TensorDict({"done": torch.zeros(1, dtype=torch.bool)}, []))


@pytest.mark.parametrize("case", sorted(STEPWISE) + ["delta"])
def test_check_env_specs(case):
    make = (lambda M: M.NextObservationDelta()) if case == "delta" else STEPWISE[case]
    N.check_env_specs(N.TransformedEnv(N.GymEnv("CartPole-v1"), make(N)), seed=0)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: N.StepCounter(0), ValueError, "max_steps >= 1, got 0"),
    (lambda: N.StepCounter(-3), ValueError, "max_steps >= 1, got -3"),
    (lambda: N.StepCounter(1.5), TypeError, "max_steps to be an int, got float"),
    (lambda: N.StepCounter(True), TypeError, "max_steps to be an int, got bool"),
    (lambda: N.StepCounter(5, truncated_key=("a", "b")), TypeError, "truncated_key to be a str"),
    (lambda: N.StepCounter(5, step_count_key=3), TypeError, "step_count_key to be a str"),
    (lambda: N.StepCounter(5, update_done="no"), TypeError, "update_done to be a bool"),
    (lambda: N.InitTracker(init_key=("a", "b")), TypeError, "init_key can only be of type str"),
    (lambda: N.InitTracker(init_key=("a", "b")), ValueError, "init_key can only be of type str"),
    (lambda: N.NoopResetEnv(-1), ValueError, "noops >= 0, got -1"),
    (lambda: N.NoopResetEnv("30"), TypeError, "noops to be an int"),
    (lambda: N.NoopResetEnv(3, random=None), TypeError, "random to be a bool"),
    (lambda: N.FrameSkipTransform(0), ValueError, "frame_skip >= 1, got 0"),
    (lambda: N.FrameSkipTransform(1.5), TypeError, "frame_skip to be an int"),
    (lambda: N.TerminateTransform(3), TypeError, "stop to be a callable"),
    (lambda: N.TerminateTransform(bool, write_done=1), TypeError, "write_done to be a bool"),
    (lambda: N.NextObservationDelta(delta_dtype=torch.int32), ValueError, "delta_dtype to be a floating"),
    (lambda: N.NextObservationDelta(delta_dtype="float16"), TypeError, "delta_dtype to be a torch.dtype"),
    (lambda: N.NextObservationDelta(restore_dtype="x"), ValueError, "restore_dtype"),
    (lambda: N.NextObservationDelta(restore_dtype=3), ValueError, "restore_dtype"),
    (lambda: N.NextObservationDelta(restore_dtype=torch.int64), ValueError, "restore_dtype"),
    (lambda: N.NextObservationDelta(in_keys=[3]), TypeError, "in_keys"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_terminate_transform_refuses_a_non_callable_with_torchrl_type_too():
    with pytest.raises(ValueError, match="callable") as info:  # TorchRL's type
        N.TerminateTransform(stop=3)
    assert isinstance(info.value, TypeError)


def test_next_observation_delta_forward_skips_what_it_cannot_rebuild():
    # as TorchRL: no in_keys outside an env, or no stored delta, leaves the data as it is
    td = TensorDict({"observation": torch.zeros(3)}, [])
    assert N.NextObservationDelta().in_keys is None
    assert_td_equal(N.NextObservationDelta()(td.clone()), td)
    assert_td_equal(N.NextObservationDelta(in_keys=["observation"])(td.clone()), td)
    other = TensorDict({"other": torch.zeros(3)}, [])
    assert_td_equal(N.Compose(N.NextObservationDelta(in_keys=["observation"]))(other.clone()), other)
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.NextObservationDelta(in_keys=["velocity"]))
    with pytest.raises(KeyError, match="'velocity' is not in the observation spec"):
        env.observation_spec


def test_parallel_env_matches_serial_env():
    if not hasattr(N, "ParallelEnv"):
        pytest.skip("numbarl.torch_api.ParallelEnv is not there yet")
    import functools

    make = functools.partial(N.GymEnv, "CartPole-v1")

    def stats():
        return N.Compose(N.RewardSum(), N.StepCounter(19), N.InitTracker(), N.NextObservationDelta())

    serial_env = N.TransformedEnv(N.SerialEnv(2, make), stats())
    serial_env.set_seed(0)
    reference = serial_env.rollout(40, policy, break_when_any_done=False)
    parallel = N.TransformedEnv(N.ParallelEnv(2, make), stats())
    try:
        fast, slow = both_paths(parallel, 40, pol=policy)
    finally:
        parallel.close()
    assert reference["next", "done"].any()
    assert_td_equal(fast, reference)
    assert_td_equal(slow, reference)


class _NestedDoneEnv(N.EnvBase):
    """done / terminated / reward nested under "data" (as TorchRL's NestedCountingEnv with nest_done)."""

    def __init__(self):
        super().__init__()
        self.observation_spec = N.Composite(observation=N.Unbounded((1,)))
        self.action_spec = N.Bounded(-1.0, 1.0, (1,))
        self.reward_spec = N.Composite(data=N.Composite(reward=N.Unbounded((1,))))
        self.done_spec = N.Composite(data=N.Composite(done=N.Categorical(2, (1,), dtype=torch.bool),
                                                      terminated=N.Categorical(2, (1,), dtype=torch.bool)))

    def _reset(self, td):
        return TensorDict({"observation": torch.zeros(1), "data": {"done": torch.zeros(1, dtype=torch.bool),
                                                                   "terminated": torch.zeros(1, dtype=torch.bool)}}, [])

    def _step(self, td):
        return TensorDict({"observation": torch.zeros(1), "data": {
            "reward": torch.zeros(1), "done": torch.zeros(1, dtype=torch.bool),
            "terminated": torch.zeros(1, dtype=torch.bool)}}, [])

    def _set_seed(self, seed):
        pass


def test_step_counter_key_lists_follow_torchrl():
    flat = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.StepCounter(10)).transform
    assert (flat.step_count_keys, flat.truncated_keys, flat.done_keys, flat.reset_keys, flat.terminated_keys) == (
        ["step_count"], ["truncated"], ["done"], ["_reset"], ["terminated"])
    nested = N.TransformedEnv(_NestedDoneEnv(), N.StepCounter(10)).transform
    # TorchRL 0.14.1 on NestedCountingEnv(nest_done=True) gives these lists
    assert nested.step_count_keys == [("data", "step_count")]
    assert nested.truncated_keys == nested.all_truncated_keys == [("data", "truncated")]
    assert nested.done_keys == nested.all_done_keys == [("data", "done")]
    assert nested.reset_keys == [("data", "_reset")]
    assert nested.terminated_keys == [("data", "terminated")]


@pytest.mark.parametrize("batch", [(), (4,)])
def test_step_counter_reset_output_without_done_takes_the_input_shape(torchrl, batch):
    """TorchRL's StepCounter._reset works when the reset output carries no done flags (its Compose tests do it)."""
    tr_envs = pytest.importorskip("torchrl.envs")
    outs = []
    for lib in (N, tr_envs):
        counter = lib.StepCounter(max_steps=3)
        counter._step_count_keys, counter._done_keys = ["step_count"], ["done"]
        counter._truncated_keys, counter._terminated_keys = ["truncated"], ["terminated"]
        counter._reset_keys = ["_reset"]
        done = torch.zeros(*batch, 1, dtype=torch.bool)
        td = TensorDict({"done": done, "terminated": done, "step_count": torch.full((*batch, 1), 2)}, batch)
        outs.append(counter._reset(td, td.empty()))
    assert outs[0]["step_count"].shape == (*batch, 1)
    assert_td_equal(outs[0], outs[1])
    with pytest.raises(KeyError, match="StepCounter: 'done' is in neither the reset output nor its input"):
        c = N.StepCounter()
        c._reset(TensorDict({}, []), TensorDict({}, []))


def test_init_tracker_init_keys_and_outside_env_error_like_torchrl(torchrl):
    tr_envs = pytest.importorskip("torchrl.envs")
    ours = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.InitTracker(init_key="first"))
    theirs = tr_envs.TransformedEnv(tr_envs.GymEnv("Pendulum-v1"), tr_envs.InitTracker(init_key="first"))
    assert ours.transform.init_keys == theirs.transform.init_keys == ["first"]
    td = TensorDict({"done": torch.zeros(1, dtype=torch.bool)}, [])
    for lib in (N, tr_envs):
        with pytest.raises(NotImplementedError, match="class InitTracker cannot be executed without a parent"):
            lib.InitTracker()(td.clone())
    with pytest.raises(NotImplementedError, match="needs the transform to be in an env"):
        N.InitTracker().init_keys


@pytest.mark.parametrize("make", [lambda lib: lib.FrameSkipTransform(0), lambda lib: lib.ClipTransform(),
                                  lambda lib: lib.ActionScaling(in_keys_inv=["a", "b"]),
                                  lambda lib: lib.ActionScaling(in_keys_inv=[]),
                                  lambda lib: lib.ActionScaling.from_stats(mean=torch.zeros(2)),
                                  lambda lib: lib.ActionScaling.from_stats(low=torch.zeros(2))])
def test_argument_errors_start_with_torchrl_words(torchrl, make):
    """Our messages keep TorchRL's phrase (what its users and tests match on), then add the detail."""
    tr_envs = pytest.importorskip("torchrl.envs")
    with pytest.raises(Exception) as theirs:
        make(tr_envs)
    with pytest.raises(type(theirs.value)) as ours:
        make(N)
    phrase = re.split(r"[.:] ", str(theirs.value))[0].rstrip(".")
    assert phrase in str(ours.value), (phrase, str(ours.value))


@pytest.mark.parametrize("name,words", [("StepCounter", "StepCounter cannot be called independently"),
                                        ("FrameSkipTransform", "parent not found for FrameSkipTransform"),
                                        ("TerminateTransform", "without a parent environment")])
def test_outside_env_errors_start_with_torchrl_words(name, words):
    td = TensorDict({"done": torch.zeros(1, dtype=torch.bool), "reward": torch.zeros(1)}, [])
    t = getattr(N, name)() if name != "TerminateTransform" else N.TerminateTransform(stop=lambda td: td["done"])
    with pytest.raises(NotImplementedError, match=words):
        t(td)


def _root_and_group_env(lib):
    """A root done and an ("agents", ...) done group of 3 agents (TorchRL's NestedCountingEnv(has_root_done=True))."""

    def flag(*shape):
        return lib.Categorical(2, shape, dtype=torch.bool)

    class RootAndGroup(lib.EnvBase):
        def __init__(self):
            super().__init__()
            self.observation_spec = lib.Composite(observation=lib.Unbounded((1,)))
            self.action_spec = lib.Bounded(-1.0, 1.0, (1,))
            self.reward_spec = lib.Unbounded((1,))
            self.done_spec = lib.Composite(done=flag(1), terminated=flag(1), agents=lib.Composite(
                done=flag(3, 1), terminated=flag(3, 1), shape=(3,)))

        def _flags(self):
            return {"done": torch.zeros(1, dtype=torch.bool), "terminated": torch.zeros(1, dtype=torch.bool),
                    "agents": TensorDict({"done": torch.zeros(3, 1, dtype=torch.bool),
                                          "terminated": torch.zeros(3, 1, dtype=torch.bool)}, [3])}

        def _reset(self, td):
            return TensorDict({"observation": torch.zeros(1), **self._flags()}, [])

        def _step(self, td):
            return TensorDict({"observation": td["action"].clone(), "reward": torch.ones(1), **self._flags()}, [])

        def _set_seed(self, seed):
            pass

    return RootAndGroup()


def _torchrl_spec_lib():
    """TorchRL's EnvBase and spec classes under the names _root_and_group_env uses."""
    import torchrl.data as tr_data
    import torchrl.envs as tr_envs

    class TorchRLLib:
        EnvBase = tr_envs.EnvBase
        Composite, Unbounded, Bounded, Categorical = (tr_data.Composite, tr_data.Unbounded, tr_data.Bounded,
                                                      tr_data.Categorical)

    return TorchRLLib


def test_step_counter_and_init_tracker_count_at_the_root_beside_nested_groups_like_torchrl(torchrl):
    tr_envs = pytest.importorskip("torchrl.envs")
    TorchRLLib = _torchrl_spec_lib()

    actions = [torch.full((1,), 0.5)] * 7
    results = []
    for lib, envs in ((N, N), (TorchRLLib, tr_envs)):
        env = envs.TransformedEnv(_root_and_group_env(lib), envs.Compose(envs.StepCounter(max_steps=3),
                                                                         envs.InitTracker()))
        counter, tracker = env.transform[0], env.transform[1]
        assert counter.step_count_keys == ["step_count"] and tracker.init_keys == ["is_init"]
        assert counter.all_truncated_keys == ["truncated", ("agents", "truncated")]
        results.append(env.rollout(7, actions=actions, break_when_any_done=False))
    ours, theirs = results
    assert_td_equal(ours, theirs)
    # the root truncation at step 3 reaches every agent's done (no nested truncated entry is added)
    assert ours["next", "truncated"][2].all() and ours["next", "agents", "done"][2].all()
    assert not ours["next", "agents", "done"][:2].any() and ("agents", "truncated") not in ours["next"].keys(True)


def test_step_counter_root_truncation_reaches_nested_groups_on_the_array_path(torchrl):
    """The same rule through SerialEnv's arrays (the array rollout) as through TensorDicts, and as TorchRL."""
    tr_envs = pytest.importorskip("torchrl.envs")
    TorchRLLib = _torchrl_spec_lib()

    actions = [torch.full((2, 1), 0.5)] * 7
    results = []
    for lib, envs in ((N, N), (TorchRLLib, tr_envs)):
        env = envs.TransformedEnv(envs.SerialEnv(2, functools.partial(_root_and_group_env, lib)),
                                  envs.StepCounter(max_steps=3))
        results.append(env.rollout(7, actions=actions, break_when_any_done=False))
        env.close()
    ours, theirs = results
    assert set(ours.keys(True, True)) == set(theirs.keys(True, True))
    for key in theirs.keys(True, True):  # leaf by leaf (the group's sub-tensordict batch size is not compared)
        assert torch.equal(ours[key], theirs[key]), key
    assert ours["next", "agents", "done"][:, 2].all()
