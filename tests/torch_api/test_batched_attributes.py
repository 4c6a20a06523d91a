"""Attributes of the sub-envs reached through SerialEnv / ParallelEnv, as TorchRL 0.14.1's dispatchers do."""
from __future__ import annotations

import functools

import leaks
import pytest
from numbarl.torch_api import EnvBase, GymEnv, ParallelEnv, SerialEnv
from numbarl.torch_api.specs import Composite, Unbounded


class Counter(EnvBase):
    """A one-number env with a public attribute, methods that take arguments, and one that fails."""

    def __init__(self, start: int = 0):
        super().__init__()
        self.start = start
        self.label = f"counter-{start}"
        self.observation_spec = Composite(obs=Unbounded((1,)))
        self.action_spec = Unbounded((1,))
        self.reward_spec = Unbounded((1,))

    def scaled(self, factor, offset=0):
        return self.start * factor + offset

    def fail(self):
        raise ValueError(f"sub-env {self.start} refuses")

    def unpicklable(self):
        return lambda: None

    def _reset(self, tensordict):
        return self.full_observation_spec.zero().update(self.full_done_spec.zero())

    def _step(self, tensordict):
        out = self.full_observation_spec.zero().update(self.full_done_spec.zero())
        out.update(self.full_reward_spec.zero())
        return out

    def _set_seed(self, seed):
        return seed


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    with leaks.nothing_left("the attribute tests"):
        yield


def make_fns(n):
    return [functools.partial(Counter, start=i) for i in range(n)]


def test_serial_env_lists_values_and_dispatches_methods():
    env = SerialEnv(3, make_fns(3))
    try:
        assert env.label == ["counter-0", "counter-1", "counter-2"]
        assert env.start == [0, 1, 2]
        assert env.scaled(10, offset=1) == [1, 11, 21]
        with pytest.raises(ValueError, match="sub-env 0 refuses"):
            env.fail()
        with pytest.raises(AttributeError, match=r"SerialEnv has no attribute 'missing', and neither have its"):
            env.missing
        with pytest.raises(AttributeError, match=r"private names are not looked up"):
            env._private_thing
        assert getattr(env, "transforms", None) is None  # probes of absent names stay absent
        # the batched env's own attributes win over the sub-envs'
        assert env.batch_size == (3,) and env.num_workers == 3
    finally:
        env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.scaled(1)


def test_parallel_env_calls_in_the_workers_and_survives_errors():
    env = ParallelEnv(4, make_fns(4), num_processes=2)
    try:
        assert env.label() == ["counter-0", "counter-1", "counter-2", "counter-3"]  # TorchRL: attr() reads
        assert env.scaled(10, offset=1) == [1, 11, 21, 31]
        with pytest.raises(ValueError, match=r"(?s)ParallelEnv.fail\(\) in worker 0 \(sub-envs 0..1\).*sub-env 0 "
                                             r"refuses.*worker traceback"):
            env.fail()
        with pytest.raises(TypeError, match="cannot be sent back from the worker"):
            env.unpicklable()
        with pytest.raises(TypeError, match="'label' of the sub-envs is a str, not callable"):
            env.label(3)
        with pytest.raises(TypeError, match="the arguments cannot be sent to the workers"):
            env.scaled(lambda: 1)
        with pytest.raises(AttributeError, match=r"ParallelEnv has no attribute 'missing', and neither"):
            env.missing
        with pytest.raises(AttributeError, match="private names"):
            env._private_thing
        assert getattr(env, "transforms", None) is None
        # the workers are still up and the env still steps after every error above
        td = env.rollout(3)
        assert td.batch_size == (4, 3)
        assert env.start() == [0, 1, 2, 3]
    finally:
        env.close()


def test_gym_attributes_match_torchrl_usage():
    env = SerialEnv(2, functools.partial(GymEnv, "Pendulum-v1"))
    penv = ParallelEnv(2, functools.partial(GymEnv, "Pendulum-v1"))
    try:
        assert env.from_pixels == [False, False] and penv.from_pixels() == [False, False]
        assert penv.frame_skip() == env.frame_skip
    finally:
        env.close()
        penv.close()


def test_same_answers_as_torchrl(torchrl):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchrl.envs as trl
    make_ours = functools.partial(GymEnv, "Pendulum-v1", frame_skip=2)
    make_theirs = functools.partial(trl.GymEnv, "Pendulum-v1", frame_skip=2)
    ours, theirs = SerialEnv(2, make_ours), trl.SerialEnv(2, make_theirs)
    pours, ptheirs = ParallelEnv(2, make_ours), trl.ParallelEnv(2, make_theirs)
    try:
        theirs.reset()  # TorchRL starts its sub-envs lazily; attributes are reachable after that
        ptheirs.reset()
        for name in ("from_pixels", "frame_skip", "batch_size"):
            assert getattr(ours, name) == getattr(theirs, name), name
        for name in ("from_pixels", "frame_skip"):
            assert getattr(pours, name)() == getattr(ptheirs, name)(), name
    finally:
        for env in (ours, theirs, pours, ptheirs):
            env.close()
