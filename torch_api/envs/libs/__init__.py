"""TorchRL's ``torchrl.envs.libs`` import paths (``from numbarl.torch_api.envs.libs.gym import GymEnv``)."""
