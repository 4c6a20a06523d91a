"""TorchRL's env-level API on EnvBase: batch_locked, specs, check_env_specs, class-level specs in __new__."""
import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl
from numbarl.torch_api import Composite, EnvBase, GymEnv, StepCounter, TransformedEnv, Unbounded


class ClassSpecEnv(EnvBase):
    """Sets its specs on the class in ``__new__``, as TorchRL's mock envs do."""

    def __new__(cls, *args, **kwargs):
        cls._output_spec = Composite(
            full_observation_spec=Composite(obs=Unbounded((3,))),
            full_reward_spec=Composite(reward=Unbounded((1,))),
            full_done_spec=Composite(done=Unbounded((1,), dtype=torch.bool),
                                     terminated=Unbounded((1,), dtype=torch.bool)),
        )
        cls._input_spec = Composite(full_action_spec=Composite(action=Unbounded((3,))),
                                    full_state_spec=Composite())
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        super().__init__()

    def _reset(self, td, **kwargs):
        return TensorDict({"obs": torch.zeros(3), "done": torch.zeros(1, dtype=torch.bool),
                           "terminated": torch.zeros(1, dtype=torch.bool)}, [])

    def _step(self, td):
        return TensorDict({"obs": td["action"].clone(), "reward": torch.ones(1),
                           "done": torch.zeros(1, dtype=torch.bool),
                           "terminated": torch.zeros(1, dtype=torch.bool)}, [])

    def _set_seed(self, seed):
        return seed


def test_class_level_specs_move_to_the_instance():
    env = ClassSpecEnv(1, some_kwarg=2)
    assert "_output_spec" not in ClassSpecEnv.__dict__
    assert list(env.observation_spec.keys()) == ["obs"]
    assert env.action_spec.shape == (3,)
    env.check_env_specs()
    # a second instance gets its own copy, not the first one's
    other = ClassSpecEnv()
    assert other.observation_spec is not env.observation_spec


def test_batch_locked_default_setter_and_transformed():
    env = GymEnv("CartPole-v1")
    assert env.batch_locked is True
    with pytest.raises(RuntimeError, match="batch_locked is a read-only property"):
        env.batch_locked = False
    env._batch_locked = False  # what an env class does in its __init__
    assert env.batch_locked is False
    transformed = TransformedEnv(env, StepCounter())
    assert transformed.batch_locked is False
    with pytest.raises(RuntimeError, match="batch_locked is a read-only property"):
        transformed.batch_locked = True
    assert ClassSpecEnv(_batch_locked=False).batch_locked is False


@pytest.mark.torchrl
def test_batch_locked_read_only_as_torchrl(torchrl):
    from torchrl.envs import GymEnv as TGymEnv

    for env in (GymEnv("CartPole-v1"), TGymEnv("CartPole-v1")):
        assert env.batch_locked is True
        with pytest.raises(RuntimeError, match="batch_locked is a read-only property"):
            env.batch_locked = False


def test_specs_holds_input_and_output_and_is_locked():
    env = GymEnv("Pendulum-v1")
    specs = env.specs
    assert set(specs.keys()) == {"input_spec", "output_spec"}
    assert specs["output_spec", "full_observation_spec", "observation"].shape == (3,)
    assert specs["input_spec", "full_action_spec", "action"].shape == (1,)
    assert specs.locked
    with pytest.raises(RuntimeError):
        specs["extra"] = Unbounded(())
    # the env's own specs stay settable
    env.observation_spec = Composite(observation=Unbounded((3,)))


def test_check_env_specs_method_raises_on_a_wrong_spec():
    env = ClassSpecEnv()
    env.check_env_specs()
    env.observation_spec = Composite(obs=Unbounded((4,)))
    with pytest.raises(AssertionError, match="obs"):
        env.check_env_specs()


@pytest.mark.torchrl
def test_specs_match_torchrl(torchrl):
    from torchrl.envs import GymEnv as TGymEnv

    ours, theirs = GymEnv("Pendulum-v1"), TGymEnv("Pendulum-v1")
    assert ours.batch_locked == theirs.batch_locked
    assert_spec_matches_torchrl(ours.specs["output_spec"], theirs.specs["output_spec"])
    assert_spec_matches_torchrl(ours.specs["input_spec"], theirs.specs["input_spec"])


class BatchedEnv(EnvBase):
    def __init__(self):
        super().__init__(batch_size=(2,))


def test_unbatched_specs_read_and_assign():
    env = BatchedEnv()
    env.observation_spec_unbatched = Composite(obs=Unbounded((3,)), extra=Unbounded((1,)))
    assert env.observation_spec["obs"].shape == (2, 3)
    assert env.observation_spec["extra"].shape == (2, 1)
    assert env.observation_spec_unbatched["obs"].shape == (3,)
    env.action_spec_unbatched = Unbounded((4,))
    assert env.action_spec.shape == (2, 4)
    assert env.action_spec_unbatched.shape == (4,)
    env.reward_spec_unbatched = Unbounded((1,))
    assert env.reward_spec.shape == (2, 1)
    env.full_done_spec_unbatched = Composite(done=Unbounded((1,), dtype=torch.bool))
    assert env.full_done_spec["done"].shape == (2, 1)
    env.state_spec_unbatched = Composite(hidden=Unbounded((5,)))
    assert env.state_spec["hidden"].shape == (2, 5)
    assert env.output_spec_unbatched.shape == ()
    assert env.input_spec_unbatched["full_action_spec", "action"].shape == (4,)
    with pytest.raises(AttributeError):
        env.output_spec_unbatched = env.output_spec_unbatched


@pytest.mark.torchrl
def test_unbatched_specs_match_torchrl(torchrl):
    from torchrl.envs import GymEnv as TGymEnv, SerialEnv as TSerialEnv
    from numbarl.torch_api import SerialEnv

    ours = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    theirs = TSerialEnv(2, lambda: TGymEnv("Pendulum-v1"))
    try:
        assert_spec_matches_torchrl(ours.observation_spec_unbatched, theirs.observation_spec_unbatched)
        assert_spec_matches_torchrl(ours.action_spec_unbatched, theirs.action_spec_unbatched)
        assert_spec_matches_torchrl(ours.full_done_spec_unbatched, theirs.full_done_spec_unbatched)
    finally:
        ours.close()
        theirs.close(raise_if_closed=False)


class SpecsBeforeInitEnv(ClassSpecEnv.__base__):
    """Sets its specs before calling EnvBase.__init__, as TorchRL allows."""

    def __init__(self):
        self.observation_spec = Composite(obs=Unbounded((3,)))
        self.action_spec = Unbounded((3,))
        self.reward_spec = Unbounded((1,))
        super().__init__()

    _reset = ClassSpecEnv._reset
    _step = ClassSpecEnv._step
    _set_seed = ClassSpecEnv._set_seed


def test_specs_set_before_init_are_kept():
    env = SpecsBeforeInitEnv()
    assert list(env.observation_spec.keys()) == ["obs"]
    assert env.action_spec.shape == (3,)
    env.check_env_specs()
    assert env._supports_set_state is False
    # a plain env still starts from empty specs
    assert list(BatchedEnv().observation_spec.keys()) == []
