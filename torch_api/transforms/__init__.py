"""Environment transforms, one family per module."""
from .base import Compose, Transform
from .transformed_env import TransformedEnv

__all__ = ["Compose", "Transform", "TransformedEnv"]
