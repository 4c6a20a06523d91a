"""Short import paths for the environment libraries (``from numbarl.torch_api.libs.gym import GymEnv``)."""
