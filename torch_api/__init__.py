"""TorchRL-compatible environments, specs and transforms backed by ``numbarl.core``.

Replace ``from torchrl.envs import ...`` and ``from torchrl.data import ...``
with ``from numbarl.torch_api import ...``.

The environment names (``GymEnv``, ``ParallelEnv``, ...) are looked up in
:mod:`numbarl.torch_api.envs` on first use, so that importing one submodule
(e.g. ``numbarl.torch_api.transforms.base``) loads no more than it needs.
"""
import types as _types

from . import envs as _envs
from .envs.common import *  # noqa: F401,F403
from .envs.utils import *  # noqa: F401,F403
from .specs import (Binary, Bounded, BoundedContinuous, BoundedDiscrete, Categorical, Composite,  # noqa: F401
                    MultiCategorical, MultiOneHot, NonTensor, OneHot, TensorSpec, Unbounded, UnboundedContinuous,
                    UnboundedDiscrete)
from .transforms import *  # noqa: F401,F403


def __getattr__(name):
    if name == "__all__":
        for env_name in _envs.__all__:
            globals().setdefault(env_name, getattr(_envs, env_name))
        names = sorted(n for n, v in list(globals().items())
                       if not n.startswith("_") and not isinstance(v, _types.ModuleType))
        globals()["__all__"] = names
        return names
    if not name.startswith("__"):
        try:
            value = getattr(_envs, name)
        except AttributeError:
            pass
        else:
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
