"""The gym library path: the same names as ``numbarl.torch_api.envs.libs.gym``.

>>> from numbarl.torch_api.libs.gym import GymEnv, set_gym_backend
>>> with set_gym_backend("gymnasium"):
...     GymEnv("Pendulum-v1").observation_spec["observation"].shape
torch.Size([3])
"""
from ..envs.libs.gym import GymEnv, GymWrapper, gym_backend, set_gym_backend  # noqa: F401

__all__ = ["GymEnv", "GymWrapper", "gym_backend", "set_gym_backend"]
