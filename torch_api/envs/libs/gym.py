"""``torchrl.envs.libs.gym``'s public names, so that ``from ...envs.libs.gym import GymEnv`` keeps working.

>>> from numbarl.torch_api.envs.libs.gym import GymEnv
>>> GymEnv("CartPole-v1").action_spec.shape
torch.Size([2])
"""
from ..gym import GymEnv, GymWrapper  # noqa: F401
from ..gym_backends import gym_backend, set_gym_backend  # noqa: F401

__all__ = ["GymEnv", "GymWrapper", "gym_backend", "set_gym_backend"]
