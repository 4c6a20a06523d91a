"""EnvBase subclassing contract, step_mdp, and agreement with torchrl 0.14.1 for a user-written env."""
import pytest
import torch
from tensordict import TensorDict

from compare import assert_td_equal
from numbarl.torch_api import Composite, EnvBase, Unbounded, check_env_specs, seed_generator, step_mdp


def make_counter(base):
    """The same user env written against a given EnvBase / spec module."""

    class Counter(base["EnvBase"]):
        def __init__(self, limit=3):
            super().__init__()
            self.limit = limit
            self.observation_spec = base["Composite"](count=base["Unbounded"]((1,)))
            self.action_spec = base["Unbounded"]((1,))
            self.reward_spec = base["Unbounded"]((1,))

        def _reset(self, td):
            self.n = torch.zeros(1)
            return TensorDict({"count": self.n.clone()}, [])

        def _step(self, td):
            self.n = self.n + td["action"]
            return TensorDict({"count": self.n.clone(), "reward": -self.n.clone(),
                               "done": self.n >= self.limit}, [])

        def _set_seed(self, seed):
            self.seed = seed

    return Counter


OURS = {"EnvBase": EnvBase, "Composite": Composite, "Unbounded": Unbounded}


def test_subclass_rollout_fills_done_keys():
    env = make_counter(OURS)()
    td = env.rollout(10, actions=[torch.ones(1)] * 10)
    assert td.batch_size == (3,)
    assert torch.equal(td["next", "terminated"], td["next", "done"])
    assert not td["done"].any() and td["next", "done"][-1].all()
    assert env.done_keys == ["done", "terminated"]


def test_subclass_auto_reset_continues():
    env = make_counter(OURS)(limit=2)
    td = env.rollout(7, actions=[torch.ones(1)] * 7, break_when_any_done=False)
    assert td["next", "count"].squeeze(-1).tolist() == [1, 2, 1, 2, 1, 2, 1]
    assert td["count"].squeeze(-1).tolist() == [0, 1, 0, 1, 0, 1, 0]


def test_set_seed_returns_next_seed():
    env = make_counter(OURS)()
    assert env.set_seed(3) == seed_generator(3)
    assert env.seed == 3
    assert env.set_seed(3, static_seed=True) == 3


def test_spec_setters_validate():
    env = make_counter(OURS)()
    with pytest.raises(TypeError, match="observation_spec must be a Composite"):
        env.observation_spec = Unbounded((3,))
    with pytest.raises(TypeError, match="action_spec must be a TensorSpec"):
        env.action_spec = "a"
    batched = EnvBase(batch_size=[4])
    with pytest.raises(ValueError, match="batch_size"):
        batched.action_spec = Unbounded((1,))
    batched.action_spec = Unbounded((4, 1))
    assert batched.full_action_spec.shape == (4,)


def test_rollout_arguments_validated():
    env = make_counter(OURS)()
    with pytest.raises(ValueError, match="max_steps"):
        env.rollout(0)
    with pytest.raises(ValueError, match="policy or actions"):
        env.rollout(2, policy=lambda td: td, actions=[torch.ones(1)] * 2)
    with pytest.raises(ValueError, match="auto_reset=False"):
        env.rollout(2, auto_reset=False)


def test_missing_methods_raise():
    env = EnvBase()
    with pytest.raises(NotImplementedError, match="_reset"):
        env.reset()


def test_step_mdp():
    td = TensorDict({"observation": torch.zeros(2), "action": torch.ones(1), "other": torch.ones(3),
                     "done": torch.zeros(1, dtype=torch.bool),
                     "next": {"observation": torch.ones(2), "reward": torch.ones(1),
                              "done": torch.ones(1, dtype=torch.bool)}}, [])
    out = step_mdp(td)
    assert set(out.keys()) == {"observation", "done", "other"}
    assert out["done"].all() and torch.equal(out["observation"], torch.ones(2))
    kept = step_mdp(td, exclude_reward=False, exclude_action=False, keep_other=False)
    assert set(kept.keys()) == {"observation", "done", "reward", "action"}


def _mdp_input(lazy: bool = False):
    """A (32, 1) batch with a nested (32, 1, 4) agent tensordict, a nested action and extra root entries."""
    def one(n):
        agents = TensorDict({"obs": torch.zeros(n, 1, 4, 2), "action": torch.ones(n, 1, 4, 1)}, [n, 1, 4])
        return TensorDict({"obs": torch.zeros(n, 1, 3), "extra": torch.ones(n, 1), "agents": agents,
                           "action": torch.ones(n, 1, 1), "done": torch.zeros(n, 1, 1, dtype=torch.bool),
                           "reward": torch.full((n, 1, 1), 5.0),
                           "next": {"obs": torch.ones(n, 1, 3), "reward": torch.ones(n, 1, 1),
                                    "terminated": torch.ones(n, 1, 1, dtype=torch.bool),
                                    "agents": TensorDict({"obs": torch.ones(n, 1, 4, 2),
                                                          "reward": torch.ones(n, 1, 4, 1)}, [n, 1, 4])}},
                          [n, 1])
    if lazy:
        return TensorDict.lazy_stack([one(32)[:, 0], one(32)[:, 0]], 1)
    return one(32)


@pytest.mark.torchrl
@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("kwargs", [
    {}, {"keep_other": False}, {"keep_other": False, "exclude_action": False},
    {"exclude_reward": False, "exclude_done": True}, {"exclude_action": False},
    {"action_keys": [("agents", "action")], "reward_keys": [("agents", "reward")],
     "done_keys": ["done", "terminated"], "exclude_done": True},
    {"keep_other": False, "exclude_action": False, "action_keys": ("agents", "action")},
])
def test_step_mdp_matches_torchrl(torchrl, kwargs, lazy):
    """Nested tensordicts keep their own batch size (here (32, 1, 4) under a (32, 1) env), as in TorchRL."""
    from torchrl.envs.utils import step_mdp as theirs

    ours = step_mdp(_mdp_input(lazy), **kwargs)
    ref = theirs(_mdp_input(lazy), **kwargs)
    assert_td_equal(ours, ref)
    assert type(ours) is type(ref)
    if not lazy and "agents" in ours.keys():
        assert ours["agents"].batch_size == torch.Size([32, 1, 4])


@pytest.mark.torchrl
def test_step_mdp_into_next_tensordict_matches_torchrl(torchrl):
    from torchrl.envs.utils import step_mdp as theirs

    dest_ours, dest_ref = TensorDict({"kept": torch.zeros(32, 1)}, [32, 1]), TensorDict({"kept": torch.zeros(32, 1)}, [32, 1])
    out = step_mdp(_mdp_input(), next_tensordict=dest_ours)
    assert out is dest_ours
    theirs(_mdp_input(), next_tensordict=dest_ref)
    assert_td_equal(dest_ours, dest_ref)


def test_step_mdp_bad_input():
    with pytest.raises(KeyError, match="'next' entry"):
        step_mdp(TensorDict({"obs": torch.zeros(2)}, []))
    with pytest.raises(TypeError, match="tensordict to be a TensorDictBase"):
        step_mdp({"next": {}})


def test_append_transform_returns_transformed_env():
    from numbarl.torch_api import Compose, TransformedEnv

    env = make_counter(OURS)().append_transform(Compose())
    assert isinstance(env, TransformedEnv)


@pytest.mark.torchrl
def test_user_env_matches_torchrl(torchrl):
    from torchrl.data import Composite as TC, Unbounded as TU
    from torchrl.envs import EnvBase as TE

    ours = make_counter(OURS)(limit=3)
    theirs = make_counter({"EnvBase": TE, "Composite": TC, "Unbounded": TU})(limit=3)
    acts = [torch.ones(1)] * 8
    for kwargs in ({}, {"break_when_any_done": False}):
        assert_td_equal(ours.rollout(8, actions=acts, **kwargs), theirs.rollout(8, actions=acts, **kwargs))
    assert_td_equal(ours.fake_tensordict(), theirs.fake_tensordict())
    assert sorted(ours.done_keys) == sorted(theirs.done_keys)


def make_full_reset(lib):
    """A batch of 3 whose ``_reset`` ignores the ``"_reset"`` mask and always returns fresh values for all."""

    class FullReset(lib["EnvBase"]):
        def __init__(self):
            super().__init__(batch_size=[3])
            self.observation_spec = lib["Composite"](obs=lib["Unbounded"]((3, 1)), shape=(3,))
            self.action_spec = lib["Unbounded"]((3, 1))
            self.reward_spec = lib["Unbounded"]((3, 1))

        def _reset(self, td):
            return TensorDict({"obs": torch.full((3, 1), 100.0)}, [3])

        def _step(self, td):
            done = torch.tensor([[True], [False], [False]])
            return TensorDict({"obs": td["obs"] + 1, "reward": torch.zeros(3, 1), "done": done,
                               "terminated": done.clone()}, [3])

        def _set_seed(self, seed):
            return seed

    return FullReset


@pytest.mark.torchrl
def test_partial_reset_keeps_the_other_sub_envs_as_torchrl(torchrl):
    """A partial reset updates the given tensordict: sub-envs not reset keep their values, whatever _reset says."""
    from torchrl.data import Composite as TC, Unbounded as TU
    from torchrl.envs import EnvBase as TE

    outs = []
    for lib in (OURS, {"EnvBase": TE, "Composite": TC, "Unbounded": TU}):
        env = make_full_reset(lib)()
        td = env.step(env.reset().set("action", torch.zeros(3, 1)))["next"].clone()
        td["_reset"] = td["done"].clone()
        td["extra"] = torch.arange(3.0)
        out = env.reset(td)
        assert out is td and "_reset" not in out.keys()
        assert out["obs"].flatten().tolist() == [100.0, 101.0, 101.0]
        outs.append(out)
        rollout = env.rollout(4, break_when_any_done=False)  # done sub-env 0 is reset, the others continue
        assert rollout["next", "obs"][1].flatten().tolist() == [101.0, 102.0, 103.0, 104.0]
    assert_td_equal(outs[0], outs[1])


def make_scalar_done_env(base):
    """A user env whose _step gives done / terminated as Python bools (shape []), as TorchRL's test mocks do."""

    class ScalarDone(base["EnvBase"]):
        def __init__(self):
            super().__init__()
            self.observation_spec = base["Composite"](obs=base["Unbounded"]((2,)))
            self.action_spec = base["Unbounded"]((1,))
            self.reward_spec = base["Unbounded"]((1,))

        def _reset(self, td):
            self.t = 0
            return TensorDict({"obs": torch.zeros(2)}, [])

        def _step(self, td):
            self.t += 1
            return TensorDict({"obs": torch.full((2,), float(self.t)), "reward": torch.ones(1),
                               "done": self.t >= 3, "terminated": self.t >= 3}, [])

        def _set_seed(self, seed):
            pass

    return ScalarDone


def test_scalar_done_flags_take_the_spec_shape_like_torchrl(torchrl):
    envs = pytest.importorskip("torchrl.envs")
    import torchrl.data as data

    ours = make_scalar_done_env(OURS)()
    theirs = make_scalar_done_env({"EnvBase": envs.EnvBase, "Composite": data.Composite,
                                   "Unbounded": data.Unbounded})()
    a = ours.rollout(5, actions=[torch.ones(1)] * 5, break_when_any_done=False)
    b = theirs.rollout(5, lambda td: td.set("action", torch.ones(1)), break_when_any_done=False)
    assert a["next", "done"].shape == (5, 1)
    assert_td_equal(a, b)


def make_group_env(base):
    """A user env with a group holding both an observation and the action (a multi-agent layout)."""

    class Grouped(base["EnvBase"]):
        def __init__(self):
            super().__init__()
            self.observation_spec = base["Composite"](agents=base["Composite"](obs=base["Unbounded"]((2, 3))))
            self.action_spec = base["Composite"](agents=base["Composite"](action=base["Unbounded"]((2, 1))))
            self.reward_spec = base["Unbounded"]((1,))

        def _reset(self, td):
            return TensorDict({"agents": {"obs": torch.zeros(2, 3)}}, [])

        def _step(self, td):
            obs = td["agents", "action"].expand(2, 3).clone()
            done = torch.zeros(1, dtype=torch.bool)
            return TensorDict({"agents": {"obs": obs}, "reward": torch.ones(1), "done": done}, [])

        def _set_seed(self, seed):
            self.seed = seed

    return Grouped


@pytest.mark.torchrl
def test_fake_tensordict_keeps_a_grouped_action_out_of_next_like_torchrl(torchrl):
    from torchrl.data import Composite as TC, Unbounded as TU
    from torchrl.envs import EnvBase as TE

    ours = make_group_env(OURS)()
    theirs = make_group_env({"EnvBase": TE, "Composite": TC, "Unbounded": TU})()
    keys = set(ours.fake_tensordict().keys(True, True))
    assert ("agents", "action") in keys and ("next", "agents", "action") not in keys
    assert keys == set(theirs.fake_tensordict().keys(True, True))
    check_env_specs(ours)
