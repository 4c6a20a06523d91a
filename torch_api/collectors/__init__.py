"""TorchRL 0.14.1's collectors for numbarl envs: ``Collector``, ``MultiSyncCollector``, ``MultiAsyncCollector``, ``RayCollector``.

Replace ``from torchrl.collectors import ...`` with
``from numbarl.torch_api.collectors import ...``.
"""
from ..envs.utils import ExplorationType, set_exploration_type  # noqa: F401

from ._policy import RandomPolicy  # noqa: F401
from ._trajs import split_trajectories  # noqa: F401
from .collector import Collector  # noqa: F401
from .multi import MultiAsyncCollector, MultiSyncCollector  # noqa: F401
from ._ray import RayCollector  # noqa: F401

__all__ = ["Collector", "ExplorationType", "MultiAsyncCollector", "MultiSyncCollector", "RandomPolicy", "RayCollector",
           "set_exploration_type", "split_trajectories"]
