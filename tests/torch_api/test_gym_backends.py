"""set_gym_backend / gym_backend and TorchRL's import paths for the gym library."""
import gymnasium
import pytest

from numbarl.torch_api import gym_backend, set_gym_backend


@pytest.mark.parametrize("backend", ["gymnasium", gymnasium, lambda: gymnasium])
def test_set_gym_backend_forms(backend):
    with set_gym_backend(backend):
        assert gym_backend() is gymnasium
    assert gym_backend() is gymnasium

    @set_gym_backend(backend)
    def inner():
        return gym_backend("wrappers")
    assert inner() is gymnasium.wrappers


def test_set_gym_backend_refuses_other_backends():
    with pytest.raises(ValueError, match="gymnasium' only, got backend 'gym'"):
        set_gym_backend("gym")
    with pytest.raises(ValueError, match="gymnasium' only"):
        set_gym_backend(lambda: pytest)
    with pytest.raises(TypeError, match="module name or a callable"):
        set_gym_backend(3)


def test_set_is_global_and_nesting_restores():
    set_gym_backend("gymnasium").set()
    with set_gym_backend(gymnasium):
        with set_gym_backend("gymnasium"):
            assert gym_backend() is gymnasium
    assert gym_backend() is gymnasium


def test_torchrl_import_paths():
    from numbarl.torch_api import GymEnv
    from numbarl.torch_api.envs.libs.gym import GymEnv as A, set_gym_backend as sa
    from numbarl.torch_api.libs.gym import GymEnv as B, GymWrapper, gym_backend as gb

    assert A is GymEnv and B is GymEnv and sa is set_gym_backend and gb is gym_backend
    assert GymWrapper.__name__ == "GymWrapper"


@pytest.mark.torchrl
def test_same_names_as_torchrl_libs_gym(torchrl):
    import torchrl.envs.libs.gym as theirs

    import numbarl.torch_api.envs.libs.gym as ours

    for name in ours.__all__:
        assert hasattr(theirs, name), name
    with theirs.set_gym_backend("gymnasium"), set_gym_backend("gymnasium"):
        assert theirs.gym_backend() is gym_backend() is gymnasium
