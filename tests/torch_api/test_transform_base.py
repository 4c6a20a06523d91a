"""Transform / Compose / TransformedEnv: a user transform written for TorchRL works unchanged."""
import pickle
import sys

import pytest
import torch
from tensordict import TensorDict

from compare import assert_td_equal
from numbarl.torch_api import Compose, GymEnv, Transform, TransformedEnv, Unbounded, check_env_specs


class AddOne(Transform):
    """A user transform as written against TorchRL's Transform."""

    def _apply_transform(self, obs):
        return obs + 1

    def _inv_apply_transform(self, state):
        return state - 1

    def transform_observation_spec(self, observation_spec):
        for i, o in zip(self.in_keys, self.out_keys):
            if o != i:  # shifted values leave the input's bounds
                spec = observation_spec[i]
                observation_spec[o] = Unbounded(spec.shape, dtype=spec.dtype)
        return observation_spec


def test_keys_validated():
    with pytest.raises(ValueError, match="out_keys must have the same length as in_keys, got 2 and 1"):
        AddOne(in_keys=["a"], out_keys=["b", "c"])
    with pytest.raises(TypeError, match="in_keys"):
        AddOne(in_keys=[3])
    with pytest.raises(TypeError, match=r"Compose \(position 1\) requires a Transform or a callable taking a "
                                        r"TensorDict, got str"):
        Compose(AddOne(in_keys=["a"]), "x")


def test_forward_inverse_and_missing_keys():
    t = AddOne(in_keys=["x"], out_keys=["y"], in_keys_inv=["action"], out_keys_inv=["policy_action"])
    td = t(TensorDict({"x": torch.zeros(2)}, []))
    assert torch.equal(td["y"], torch.ones(2))
    inv = t.inv(TensorDict({"policy_action": torch.ones(1)}, []))
    assert torch.equal(inv["action"], torch.zeros(1))
    with pytest.raises(KeyError, match="'x' not found"):
        t(TensorDict({"z": torch.zeros(1)}, []))
    t.set_missing_tolerance(True)
    assert "y" not in t(TensorDict({"z": torch.zeros(1)}, [])).keys()


def test_compose_indexing_append_insert_nesting():
    a, b, c = AddOne(in_keys=["x"]), AddOne(in_keys=["x"]), AddOne(in_keys=["x"])
    comp = Compose(a, Compose(b))
    comp.append(c)
    comp.insert(0, AddOne(in_keys=["x"]))
    assert len(comp) == 4 and comp[1] is a and comp[-1] is c
    assert isinstance(comp[1:3], Compose) and len(comp[1:3]) == 2
    out = comp(TensorDict({"x": torch.zeros(1)}, []))
    assert out["x"].item() == 4
    with pytest.raises(IndexError, match="Compose.insert index"):
        comp.insert(10, AddOne(in_keys=["x"]))


def test_transformed_env_specs_and_rollout():
    env = TransformedEnv(GymEnv("Pendulum-v1"), AddOne(in_keys=["observation"], out_keys=["obs1"]))
    assert "obs1" in env.observation_spec.keys()
    check_env_specs(env, seed=0)
    env.set_seed(0)
    td = env.rollout(5)
    assert torch.equal(td["obs1"], td["observation"] + 1)
    assert torch.equal(td["next", "obs1"], td["next", "observation"] + 1)


def test_nested_transformed_env_and_insert():
    inner = TransformedEnv(GymEnv("Pendulum-v1"), AddOne(in_keys=["observation"]))
    outer = TransformedEnv(inner, AddOne(in_keys=["observation"]))
    outer.insert_transform(0, AddOne(in_keys=["observation"]))
    raw = GymEnv("Pendulum-v1")
    raw.set_seed(4)
    outer.set_seed(4)
    acts = [torch.zeros(1)] * 3
    assert torch.allclose(outer.rollout(3, actions=acts)["observation"], raw.rollout(3, actions=acts)["observation"] + 3)
    assert outer.env_name == "Pendulum-v1"  # attribute lookup falls back to the base env


def test_parent_holds_preceding_transforms():
    first, second = AddOne(in_keys=["observation"]), AddOne(in_keys=["observation"])
    _attached = TransformedEnv(GymEnv("Pendulum-v1"), Compose(first, second))
    parent = second.parent
    assert isinstance(parent, TransformedEnv) and len(parent.transform) == 1
    assert len(first.parent.transform) == 0
    assert AddOne(in_keys=["x"]).parent is None


def test_clone_and_pickle_keep_behaviour():
    t = Compose(AddOne(in_keys=["x"]), AddOne(in_keys=["x"], out_keys=["y"]))
    td = TensorDict({"x": torch.zeros(1)}, [])
    for copy_ in (t.clone(), pickle.loads(pickle.dumps(t))):
        assert_td_equal(copy_(td.clone()), t(td.clone()))
        assert all(child.container is copy_ for child in copy_)


def test_inverse_applies_to_action():
    class Halve(Transform):
        def _inv_apply_transform(self, action):
            return action / 2

        def _apply_transform(self, obs):
            return obs

    env = TransformedEnv(GymEnv("Pendulum-v1"), Halve(in_keys_inv=["action"]))
    raw = GymEnv("Pendulum-v1")
    env.set_seed(1)
    raw.set_seed(1)
    a = env.rollout(4, actions=[torch.ones(1)] * 4)
    b = raw.rollout(4, actions=[torch.full((1,), 0.5)] * 4)
    assert torch.equal(a["next", "observation"], b["next", "observation"])


def test_single_transform_is_kept_until_a_second_is_appended():
    t = AddOne(in_keys=["observation"])
    env = TransformedEnv(GymEnv("Pendulum-v1"), t)
    assert env.transform is t and t.container is env  # as in TorchRL
    second = AddOne(in_keys=["observation"])
    env.append_transform(second)
    assert isinstance(env.transform, Compose) and env.transform[0] is t and env.transform[1] is second
    assert t.container is env.transform and env.transform.container is env


def test_compose_tells_children_when_attached():
    seen = []

    class Refuses(AddOne):
        def set_container(self, container):
            super().set_container(container)
            node = container
            while node is not None and not isinstance(node, TransformedEnv):
                node = getattr(node, "container", None)
            seen.append(node is not None)

    comp = Compose(Refuses(in_keys=["observation"]))
    assert seen == [False]
    TransformedEnv(GymEnv("Pendulum-v1"), comp)
    assert seen[-1] is True


def test_reset_skips_keys_absent_at_reset():
    """The default _reset tolerates keys a reset does not carry (the reward), as TorchRL's does."""
    env = TransformedEnv(GymEnv("Pendulum-v1"), AddOne(in_keys=["reward"]))
    env.set_seed(0)
    td = env.reset()
    assert "reward" not in td.keys()
    acts = [torch.zeros(1)] * 3
    raw = GymEnv("Pendulum-v1")
    raw.set_seed(0)
    env.set_seed(0)
    assert torch.equal(env.rollout(3, actions=acts)["next", "reward"], raw.rollout(3, actions=acts)["next", "reward"] + 1)


def test_reward_keys_that_are_state_keys_survive_step_mdp():
    """A key in both the reward and the observation spec stays in the root between steps."""

    class Total(Transform):
        def _call(self, td):
            return td

        def _step(self, td, next_td):
            next_td.set("total", td.get("total") + next_td.get("reward"))
            return next_td

        def _reset(self, td, td_reset):
            td_reset.set("total", torch.zeros(1))
            return td_reset

        def transform_observation_spec(self, spec):
            spec["total"] = Unbounded((1,))
            return spec

        def transform_reward_spec(self, spec):
            spec["total"] = Unbounded((1,))
            return spec

    env = TransformedEnv(GymEnv("Pendulum-v1"), Total())
    env.set_seed(0)
    td = env.rollout(5, break_when_any_done=False)
    assert torch.allclose(td["next", "total"].squeeze(-1), td["next", "reward"].squeeze(-1).cumsum(0))


def test_base_module_loads_no_concrete_env_or_transform():
    """transforms.base knows no concrete transform and loads neither gym nor the batched envs."""
    import subprocess
    import sys

    code = ("import sys, numbarl.torch_api.transforms.base as b; "
            "print(sorted(m for m in sys.modules if m.startswith('numbarl.torch_api.envs.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "numbarl.torch_api.envs.gym" not in loaded
    assert "numbarl.torch_api.envs.batched" not in loaded
    source = open(sys.modules["numbarl.torch_api.transforms.base"].__file__).read()
    for name in ("fused_pixels", ".image", ".frames", ".normalization", ".reward", "_vecnorm"):
        assert f"from {name if name.startswith('.') else '.' + name} import" not in source, name


def _mark(td):
    return td.set("mark", torch.ones(td.batch_size))


def test_callables_become_transforms_like_torchrl(torchrl):
    from numbarl.torch_api import RewardSum, StepCounter
    torchrl = pytest.importorskip("torchrl.envs")

    ours = TransformedEnv(GymEnv("Pendulum-v1"), _mark)
    theirs = torchrl.TransformedEnv(torchrl.GymEnv("Pendulum-v1"), _mark)
    for env in (ours, theirs):
        env.set_seed(0)
    a, b = ours.rollout(3), theirs.rollout(3)
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    assert (a["mark"] == 1).all() and (a["next", "mark"] == 1).all()
    for env, lib in ((ours, None), (theirs, torchrl)):
        compose = (Compose if lib is None else lib.Compose)
        counter, rsum = (StepCounter, RewardSum) if lib is None else (lib.StepCounter, lib.RewardSum)
        env.append_transform(compose(counter(), rsum()))  # flattened into the env's Compose
        env.append_transform(_mark)
        env.insert_transform(0, _mark)
    assert [type(t).__name__ for t in ours.transform] == [type(t).__name__ for t in theirs.transform]
    assert [t.training for t in ours.transform] == [t.training for t in theirs.transform] == [False] * 5
    with pytest.raises(TypeError, match="append_transform requires a Transform or a callable taking a TensorDict, "
                                        "got int"):
        ours.append_transform(3)
    with pytest.raises(TypeError, match="TransformedEnv requires a Transform or a callable"):
        TransformedEnv(GymEnv("Pendulum-v1"), "observation")


def test_compose_append_flattens_and_insert_keeps_nesting_like_torchrl(torchrl):
    from numbarl.torch_api import RewardSum, StepCounter
    torchrl = pytest.importorskip("torchrl.envs")

    names = []
    for lib in (None, torchrl):
        C, S, R = (Compose, StepCounter, RewardSum) if lib is None else (lib.Compose, lib.StepCounter, lib.RewardSum)
        c = C(S(), C(R()))  # the constructor keeps a nested Compose
        c.append(C(R(in_keys=["reward"], out_keys=["other"])))
        c.insert(0, C(S(step_count_key="s2")))
        names.append([type(t).__name__ for t in c])
        assert [t.training for t in c] == [False, True, True, False]
    assert names[0] == names[1] == ["Compose", "StepCounter", "Compose", "RewardSum"]


def _count_y(data):
    if "y" in data.keys():
        data["y"] += 1
        return data
    return data.set("y", torch.zeros(data.shape))


def test_transform_attribute_takes_callables_and_compose_pops():
    from numbarl.torch_api import RewardSum, StepCounter

    env = TransformedEnv(GymEnv("Pendulum-v1"), _count_y)
    env.append_transform(_count_y)
    env.insert_transform(0, _count_y)
    env.transform.append(_count_y)
    assert env.reset()["y"] == 3  # four calls: zero, then three increments
    env.transform = _count_y
    assert env.reset()["y"] == 0
    assert not TransformedEnv(GymEnv("Pendulum-v1")).transform.training
    c = Compose(StepCounter(), RewardSum())
    last = c.pop()
    assert type(last).__name__ == "RewardSum" and last.parent is None and len(c) == 1
    with pytest.raises(IndexError, match="index -1 is out of range"):
        Compose().pop()


def test_internal_attribute_errors_are_not_hidden_by_the_base_env():
    class Buggy(Transform):
        def transform_output_spec(self, output_spec):
            raise AttributeError("inner")

    env = TransformedEnv(GymEnv("Pendulum-v1"), Buggy())
    with pytest.raises(AttributeError, match="because an internal error was raised.*inner"):
        env.observation_spec
    with pytest.raises(AttributeError, match="GymEnv has no attribute 'tralala', nor has its gymnasium env"):
        env.tralala
    with pytest.raises(RuntimeError, match="_allow_done_after_reset is a read-only property for TransformedEnvs"):
        env._allow_done_after_reset = True
    assert env._allow_done_after_reset is False


def test_transforms_leave_the_device_choice_to_the_seam():
    """No transform module asks ``is_cuda`` itself: ``_device`` (on_device hooks, ops_for, cuda_device) decides."""
    import pathlib
    import re

    root = pathlib.Path(sys.modules["numbarl.torch_api.transforms.base"].__file__).parent
    calls = {p.name: len(re.findall(r"\bis_cuda\(", p.read_text())) for p in root.glob("*.py")}
    assert sum(calls.values()) <= 3, {k: v for k, v in calls.items() if v}


def test_compose_takes_a_list_or_transforms_keyword_like_torchrl(torchrl):
    from numbarl.torch_api import RewardSum, StepCounter
    torchrl = pytest.importorskip("torchrl.envs")

    for lib in (None, torchrl):
        C, S, R = (Compose, StepCounter, RewardSum) if lib is None else (lib.Compose, lib.StepCounter, lib.RewardSum)
        for c in (C([S(), R()]), C(transforms=[S(), R()])):
            assert [type(t).__name__ for t in c] == ["StepCounter", "RewardSum"]
        assert len(C(transforms=[])) == 0
        with pytest.raises(ValueError, match="nexpected keyword"):
            C(S(), trsf=[R()])
    with pytest.raises(TypeError, match="either positionally or as transforms="):
        Compose(StepCounter(), transforms=[RewardSum()])
