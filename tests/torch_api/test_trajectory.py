"""Trajectory transforms: TrajCounter, AutoResetTransform and AutoResetEnv.

Differential tests against torchrl 0.14.1: rollouts with several episodes
(break_when_any_done False and True), a batched env whose sub-envs end at
different steps (partial resets), nested keys, specs, state_dict, and
auto-resetting envs (kept observations, fill values); the array path against
the TensorDict path; a counter shared by the sub-envs of SerialEnv /
ParallelEnv built from EnvCreator; bad input.
"""
import pickle
import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl import torch_api as N

warnings.filterwarnings("ignore", category=DeprecationWarning)


def cartpole_policy(td):
    """Deterministic CartPole policy; episodes end at varied steps. NaN observations push right."""
    obs = torch.nan_to_num(td["observation"])
    right = (obs[..., 1:2] + 3 * obs[..., 2:3] < 0).long()
    td.set("action", torch.cat([1 - right, right], -1))
    return td


def counting_class(lib):
    """A batched env counting steps, sub-env i done after ``max_steps[i]``; with ``auto`` it resets itself."""
    from tensordict import TensorDict as TD

    if lib is N:
        S = N
    else:
        import torchrl.data as S

    class Counting(lib.EnvBase):
        def __init__(self, max_steps=(2, 3, 5), auto=False):
            # an int: one env without batch dims
            batch = () if isinstance(max_steps, int) else (len(max_steps),)
            super().__init__(batch_size=batch)
            self.max_steps = torch.tensor(max_steps).reshape(*batch, 1)
            self.auto = auto
            self.observation_spec = S.Composite(observation=S.Unbounded((*batch, 1)),
                                                steps=S.Unbounded((*batch, 1), dtype=torch.int64), shape=batch)
            self.action_spec = S.Unbounded((*batch, 1))
            self.reward_spec = S.Unbounded((*batch, 1))
            self.full_done_spec = S.Composite(
                done=S.Categorical(2, (*batch, 1), dtype=torch.bool),
                terminated=S.Categorical(2, (*batch, 1), dtype=torch.bool), shape=batch)
            self.count = torch.zeros(*batch, 1, dtype=torch.int64)

        def _obs(self, done):
            return TD(observation=self.count.float() * 1.5, steps=self.count.clone(), done=done.clone(),
                      terminated=done.clone(), batch_size=self.batch_size)

        def _reset(self, td):
            request = None if td is None else td.get("_reset", None)
            if self.auto and request is not None:
                return td.copy()
            if request is None:
                self.count.zero_()
            else:
                self.count[request] = 0
            return self._obs(torch.zeros_like(self.count, dtype=torch.bool))

        def _step(self, td):
            self.count += 1
            done = self.count >= self.max_steps
            out = self._obs(done)
            out.set("reward", td["action"].clone())
            if self.auto and done.any():
                self.count[done] = 0
                out.set("observation", torch.where(done, 0.0, out["observation"]))
                out.set("steps", torch.where(done, 0, out["steps"]))
            return out

        def _set_seed(self, seed):
            pass

    return Counting


def actions(n, b=3):
    return [torch.full((b, 1), float(i)) for i in range(n)]


class Replay:
    def __init__(self, acts):
        self.acts, self.i = acts, 0

    def __call__(self, td):
        td.set("action", self.acts[self.i].clone())
        self.i += 1
        return td


def both(make, transform):
    """``(numbarl env, torchrl env)``: ``make(lib)`` wrapped with ``transform(lib)``."""
    import torchrl.envs as T

    return N.TransformedEnv(make(N), transform(N)), T.TransformedEnv(make(T), transform(T))


def _roll(env, steps, policy=None, td_path=False, **kw):
    env.set_seed(0)
    extra = {"callback": lambda *a: None} if td_path else {}
    return env.rollout(steps, policy, **extra, **kw)


# ---------------------------------------------------------------- TrajCounter
@pytest.mark.parametrize("td_path", [False, True])
def test_cartpole_rollout_matches_torchrl(torchrl, td_path):
    ours, theirs = both(lambda lib: lib.GymEnv("CartPole-v1"),
                        lambda lib: lib.Compose(lib.StepCounter(7), lib.TrajCounter()))
    a = _roll(ours, 40, cartpole_policy, td_path, break_when_any_done=False)
    b = _roll(theirs, 40, cartpole_policy, break_when_any_done=False)
    assert_td_equal(a, b)
    assert int(a["next", "traj_count"].max()) >= 5
    assert ours.transform[-1].state_dict() == theirs.transform[-1].state_dict()
    assert_spec_matches_torchrl(ours.full_observation_spec, theirs.full_observation_spec)


@pytest.mark.parametrize("td_path", [False, True])
def test_partial_resets_match_torchrl(torchrl, td_path):
    ours, theirs = both(lambda lib: counting_class(lib)(), lambda lib: lib.TrajCounter())
    acts = actions(12)
    a = _roll(ours, 12, Replay(acts), td_path, break_when_any_done=False)
    b = _roll(theirs, 12, Replay(acts), break_when_any_done=False)
    assert_td_equal(a, b)
    # sub-env 0 ends every 2 steps, 1 every 3, 2 every 5: ids in reset order
    assert a["next", "traj_count"][:, :6, 0].tolist() == [[0, 0, 3, 3, 5, 5], [1, 1, 1, 4, 4, 4], [2, 2, 2, 2, 2, 6]]


def test_serial_env_outer_counter_matches_torchrl(torchrl):
    import torchrl.envs as T

    def make(lib):
        return lib.SerialEnv(3, [lambda s=s: lib.TransformedEnv(lib.GymEnv("CartPole-v1"), lib.StepCounter(s))
                                 for s in (3, 4, 6)])

    ours, theirs = both(make, lambda lib: lib.TrajCounter())
    try:
        a = _roll(ours, 15, cartpole_policy, break_when_any_done=False)
        b = _roll(theirs, 15, cartpole_policy, break_when_any_done=False)
        assert_td_equal(a, b)
        assert int(a["next", "traj_count"].max()) == int(b["next", "traj_count"].max()) > 8
    finally:
        ours.close()
        theirs.close()
    assert T is not None


def test_break_when_any_done_and_counter_goes_on(torchrl):
    ours, theirs = both(lambda lib: counting_class(lib)(), lambda lib: lib.TrajCounter())
    outs = []
    for env in (ours, theirs):
        first = _roll(env, 10, Replay(actions(10)), break_when_any_done=True)
        second = env.rollout(4, Replay(actions(4)), break_when_any_done=True)
        outs.append((first, second))
    for x, y in zip(*outs):
        assert_td_equal(x, y)
    assert outs[0][0].shape == (3, 2)
    assert outs[0][1]["traj_count"][:, 0, 0].tolist() == [3, 4, 5]


def test_nested_key_matches_torchrl(torchrl):
    ours, theirs = both(
        lambda lib: lib.GymEnv("CartPole-v1"),
        lambda lib: lib.Compose(lib.StepCounter(5), lib.RenameTransform("done", ("nested", "done"), create_copy=True),
                                lib.TrajCounter(out_key=("nested", ("traj_count",)))))
    a = _roll(ours, 12, cartpole_policy, break_when_any_done=False)
    b = _roll(theirs, 12, cartpole_policy, break_when_any_done=False)
    assert_td_equal(a, b)
    assert a["next", "nested", "traj_count"][:, 0].tolist() == [0] * 5 + [1] * 5 + [2] * 2
    assert ours.transform[-1].out_keys == theirs.transform[-1].out_keys == [("nested", "traj_count")]


def test_state_dict_load_and_clone_share(torchrl):
    import torchrl.envs as T

    for lib in (N, T):
        t = lib.TrajCounter()
        env = lib.TransformedEnv(lib.GymEnv("CartPole-v1"), t)
        env.load_state_dict({"traj_count": 10})
        td = env.reset()
        assert td["traj_count"].tolist() == [10]
        twin = t.clone()
        env2 = lib.TransformedEnv(lib.GymEnv("CartPole-v1"), twin)
        assert env2.reset()["traj_count"].tolist() == [11]
        assert t.state_dict() == twin.state_dict() == {"traj_count": 12}


def test_pickled_counter_goes_on_from_its_value():
    t = N.TrajCounter()
    t.load_state_dict({"traj_count": 7})
    copy = pickle.loads(pickle.dumps(t))
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), copy)
    assert env.reset()["traj_count"].tolist() == [7]
    assert t.state_dict() == {"traj_count": 7}  # an unshared counter is not shared by pickling


def _make_counted(max_steps=4, t=None):
    t = N.TrajCounter() if t is None else t.clone()
    return N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.Compose(N.StepCounter(max_steps), t))


@pytest.mark.parametrize("predefined", [True, False])
@pytest.mark.parametrize("batched", ["SerialEnv", "ParallelEnv"])
def test_shared_counter_across_sub_envs(batched, predefined):
    if predefined:
        t = N.TrajCounter()
        creators = [N.EnvCreator(_make_counted, max_steps=4, t=t), N.EnvCreator(_make_counted, max_steps=5, t=t)]
    else:
        first = N.EnvCreator(_make_counted)
        creators = [first, first.make_variant(max_steps=5)]
    env = getattr(N, batched)(2, creators)
    try:
        r = env.rollout(30, break_when_any_done=False)
    finally:
        env.close()
        for c in creators:
            c.close()
    s0, s1 = (set(r[i]["traj_count"].flatten().tolist()) for i in range(2))
    assert not s0 & s1
    assert s0 | s1 == set(range(len(s0) + len(s1)))  # no id skipped: 30 steps of 4 and 5 -> 8 + 6 episodes
    assert len(s0) + len(s1) == 14


def test_serial_env_of_tensordict_sub_envs_shares_counter(torchrl):
    """Sub-envs without the array path are stepped with the action alone: the ids kept at reset carry on."""
    import torchrl.envs as T

    outs = []
    for lib in (N, T):
        t = lib.TrajCounter()
        env = lib.SerialEnv(2, [lambda: lib.TransformedEnv(counting_class(lib)(2), t.clone()),
                                lambda: lib.TransformedEnv(counting_class(lib)(3), t.clone())])
        try:
            outs.append(env.rollout(8, Replay(actions(8, 2)), break_when_any_done=False))
        finally:
            env.close()
    assert outs[0]["next", "traj_count"].tolist() == outs[1]["next", "traj_count"].tolist()
    assert outs[0]["next", "traj_count"][..., 0].tolist() == [[0, 0, 2, 2, 4, 4, 5, 5], [1, 1, 1, 3, 3, 3, 6, 6]]


def test_array_path_writes_with_kernel():
    from numbarl.core.traj_count import assign_ids, reset_count

    ids = np.zeros((4, 2), dtype=np.int64)
    mask = np.array([False, True, False, True])
    assert reset_count(ids, mask) == 4
    assign_ids(ids, mask, 5)
    expected = np.zeros((4, 2), dtype=np.int64)
    expected[mask] = np.arange(5, 9).reshape(2, 2)
    np.testing.assert_array_equal(ids, expected)
    with pytest.raises(ValueError, match="leading dims"):
        assign_ids(ids, np.ones(3, dtype=bool), 0)
    with pytest.raises(TypeError, match="int64"):
        assign_ids(ids.astype(np.int32), None, 0)


def test_trajcounter_errors(torchrl):
    import torchrl.envs as T

    td = TensorDict({"observation": torch.zeros(3)}, [])
    for lib in (N, T):
        with pytest.raises(RuntimeError, match="TrajCounter can only be called within an environment step or reset"):
            lib.TrajCounter()(td)
        env = lib.TransformedEnv(counting_class(lib)(), lib.TrajCounter())
        with pytest.raises(RuntimeError, match="_step was called before _reset was called"):
            env.rand_step(env.full_observation_spec.zero().update(env.full_done_spec.zero()))
    with pytest.raises(TypeError, match="out_key"):
        N.TrajCounter(out_key=3)
    with pytest.raises(ValueError, match="repeats"):
        N.TrajCounter(repeats=-1)
    with pytest.raises(KeyError, match="could not find the root"):
        N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.TrajCounter(out_key=("agent", "traj_count"))).output_spec


# ------------------------------------------------------- AutoResetTransform
def self_resetting_class(lib):
    class SelfResetting(lib.GymEnv):
        def _step(self, td):
            out = super()._step(td)
            if out["done"].any():
                out.update(super()._reset(None).exclude(*self.done_keys))
            return out

        def _reset(self, td=None, **kwargs):
            if td is not None and "_reset" in td.keys():
                return td.copy()
            return super()._reset(td, **kwargs)

    return SelfResetting


KWARGS = [{}, {"replace": False}, {"fill_float": 3.0}, {"fill_float": None}]


@pytest.mark.parametrize("kwargs", KWARGS)
def test_auto_reset_gym_matches_torchrl(torchrl, kwargs):
    import torchrl.envs as T

    outs = []
    for lib in (N, T):
        env = lib.AutoResetEnv(self_resetting_class(lib)("CartPole-v1"), lib.AutoResetTransform(**kwargs))
        outs.append(_roll(env, 60, cartpole_policy, break_when_any_done=False))
    assert_td_equal(outs[0], outs[1])
    done = outs[0]["next", "done"].squeeze(-1)
    assert int(done.sum()) >= 2
    filled = outs[0]["next", "observation"][done]
    assert bool(filled.isnan().all()) == (kwargs == {})
    assert not outs[0]["observation"].isnan().any()  # the reset hands back the kept observations


@pytest.mark.parametrize("kwargs", [{}, {"fill_int": 7, "fill_float": -2.0}, {"replace": False}])
def test_auto_reset_partial_matches_torchrl(torchrl, kwargs):
    import torchrl.envs as T

    outs = []
    for lib in (N, T):
        env = lib.AutoResetEnv(counting_class(lib)(auto=True), lib.AutoResetTransform(**kwargs))
        outs.append(_roll(env, 11, Replay(actions(11)), break_when_any_done=False))
    assert_td_equal(outs[0], outs[1])
    steps = outs[0]["next", "steps"][..., 0]
    if "fill_int" in kwargs:
        assert steps[0, 1] == 7
    # after an auto-reset the root holds the new episode's first observation
    assert outs[0]["steps"][0, :4, 0].tolist() == [0, 1, 0, 1]


def test_auto_reset_with_trajcounter_outside(torchrl):
    import torchrl.envs as T

    outs = []
    for lib in (N, T):
        env = lib.TransformedEnv(lib.AutoResetEnv(counting_class(lib)(auto=True), lib.AutoResetTransform()),
                                 lib.Compose(lib.StepCounter(), lib.TrajCounter()))
        outs.append(_roll(env, 9, Replay(actions(9)), break_when_any_done=False))
    assert_td_equal(outs[0], outs[1])


def test_auto_reset_errors(torchrl):
    import torchrl.envs as T

    for lib in (N, T):
        env = lib.TransformedEnv(lib.GymEnv("CartPole-v1"), lib.AutoResetTransform())
        with pytest.raises(RuntimeError, match="The AutoResetTransform container must be of type AutoResetEnv"):
            env.reset()
    with pytest.raises(RuntimeError, match="Cannot insert a transform in AutoResetEnv"):
        N.AutoResetEnv(N.GymEnv("CartPole-v1"), N.AutoResetTransform()).insert_transform(0, N.StepCounter())
    with pytest.raises(ValueError, match="fill_float"):
        N.AutoResetTransform(fill_float="inf")
    with pytest.raises(TypeError, match="fill_int"):
        N.AutoResetTransform(fill_int=1.5)
    with pytest.raises(TypeError, match="fill_bool"):
        N.AutoResetTransform(fill_bool=1)
    with pytest.raises(TypeError, match="replace"):
        N.AutoResetTransform(replace="no")
    with pytest.raises(RuntimeError, match="within an environment step or reset"):
        N.AutoResetTransform()(TensorDict({}, []))
    t = N.AutoResetTransform(replace=False)
    assert (t.fill_float, t.fill_int, t.fill_bool) == (None, None, None)
    assert np.isnan(N.AutoResetTransform().fill_float)
