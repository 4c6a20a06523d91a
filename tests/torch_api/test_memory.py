"""PinMemoryTransform: no keys or spec changes, pinned outputs where torch can pin, TorchRL's errors where it cannot."""
import pickle

import pytest
import torch
from compare import assert_spec_matches_torchrl
from numbarl.torch_api import Compose, GymEnv, PinMemoryTransform, TransformedEnv
from tensordict import TensorDict

HAS_ACCELERATOR = torch.cuda.is_available()
needs_accelerator = pytest.mark.skipif(not HAS_ACCELERATOR, reason="pinning memory needs an accelerator")
without_accelerator = pytest.mark.skipif(HAS_ACCELERATOR, reason="checks the refusal on machines without one")


def _data():
    return TensorDict({"a": torch.randn(3), ("n", "b"): torch.arange(4)}, [])


def test_no_keys_and_no_spec_change():
    t = PinMemoryTransform()
    assert t.in_keys == t.out_keys == t.in_keys_inv == t.out_keys_inv == []
    base = GymEnv("Pendulum-v1")
    env = TransformedEnv(GymEnv("Pendulum-v1"), t)
    assert env.output_spec == base.output_spec and env.input_spec == base.input_spec


@pytest.mark.torchrl
def test_specs_match_torchrl(torchrl):
    from torchrl.envs import GymEnv as RLGymEnv, PinMemoryTransform as RLPin, TransformedEnv as RLTransformedEnv

    ours = TransformedEnv(GymEnv("Pendulum-v1"), PinMemoryTransform())
    theirs = RLTransformedEnv(RLGymEnv("Pendulum-v1"), RLPin())
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert_spec_matches_torchrl(ours.full_done_spec, theirs.full_done_spec)
    assert_spec_matches_torchrl(ours.full_action_spec, theirs.full_action_spec)


@without_accelerator
@pytest.mark.torchrl
@pytest.mark.parametrize("where", ["reset", "step", "forward", "compose"])
def test_refused_like_torchrl_without_an_accelerator(torchrl, where):
    from torchrl.envs import GymEnv as RLGymEnv, PinMemoryTransform as RLPin, TransformedEnv as RLTransformedEnv

    def run(env_cls, gym_cls, pin_cls):
        if where == "forward":
            return pin_cls()(_data())
        if where == "compose":
            return Compose(pin_cls())(_data()) if pin_cls is PinMemoryTransform else None
        env = env_cls(gym_cls("Pendulum-v1"), pin_cls())
        if where == "reset":
            return env.reset()
        # step without the transform's reset: build the input from the base env
        td = env.base_env.reset()
        td["action"] = env.action_spec.zero()
        return env.step(td)

    messages = []
    for classes in ((TransformedEnv, GymEnv, PinMemoryTransform), (RLTransformedEnv, RLGymEnv, RLPin)):
        if where == "compose" and classes[2] is RLPin:
            continue
        with pytest.raises(RuntimeError) as info:
            run(*classes)
        messages.append(str(info.value))
    assert all(m == messages[0] for m in messages) and "accelerator" in messages[0]


@needs_accelerator
def test_outputs_are_pinned():
    env = TransformedEnv(GymEnv("Pendulum-v1"), PinMemoryTransform())
    env.set_seed(0)
    td = env.reset()
    assert all(v.is_pinned() for v in td.values(True, True))
    td = env.rand_step(td)
    assert all(v.is_pinned() for v in td["next"].values(True, True))
    assert all(v.is_pinned() for v in PinMemoryTransform()(_data()).values(True, True))


@needs_accelerator
def test_device_tensors_refused():
    with pytest.raises(RuntimeError, match="cannot pin"):
        PinMemoryTransform()(_data().to("cuda"))


@pytest.mark.parametrize("how", ["clone", "pickle", "compose"])
def test_copies(how):
    t = PinMemoryTransform()
    out = {"clone": lambda: t.clone(), "pickle": lambda: pickle.loads(pickle.dumps(t)),
           "compose": lambda: Compose(t)[0]}[how]()
    assert type(out) is PinMemoryTransform and repr(out) == "PinMemoryTransform()"


def test_takes_no_arguments():
    with pytest.raises(TypeError):
        PinMemoryTransform(["a"])
