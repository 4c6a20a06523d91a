"""TorchRL-compatible environments, specs and transforms backed by ``numbarl.core``.

Replace ``from torchrl.envs import ...`` and ``from torchrl.data import ...``
with ``from numbarl.torch_api import ...``.
"""
import types as _types

from .envs import *  # noqa: F401,F403
from .specs import (Binary, Bounded, BoundedContinuous, BoundedDiscrete, Categorical, Composite,  # noqa: F401
                    MultiCategorical, MultiOneHot, NonTensor, OneHot, TensorSpec, Unbounded, UnboundedContinuous,
                    UnboundedDiscrete)
from .transforms import *  # noqa: F401,F403

__all__ = sorted(n for n, v in list(globals().items()) if not n.startswith("_") and not isinstance(v, _types.ModuleType))
