"""Environments: ``EnvBase``, ``GymEnv`` / ``GymWrapper`` and their helpers."""
from .common import EnvBase
from .gym import GymEnv, GymWrapper, gym_space_to_spec
from .utils import check_env_specs, seed_generator, step_mdp

__all__ = ["EnvBase", "GymEnv", "GymWrapper", "gym_space_to_spec", "check_env_specs", "seed_generator", "step_mdp"]
