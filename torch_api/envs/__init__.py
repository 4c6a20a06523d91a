"""Environments, one family per module; each module's ``__all__`` is re-exported.

``common`` and ``utils`` load with the package; ``gym``, ``batched`` and
``env_creator`` (gymnasium, multiprocessing, shared memory) load on first use
of one of their names, so that importing the base classes (e.g. from
``numbarl.torch_api.transforms.base``) does not pull them in.
"""
import importlib as _importlib
import types as _types

from .common import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

_LAZY_MODULES = ("gym", "batched", "env_creator", "async_env_pool", "pendulum", "gym_backends")


def _load_all():
    for name in _LAZY_MODULES:
        module = _importlib.import_module(f"{__name__}.{name}")
        for attr in getattr(module, "__all__", ()):
            globals().setdefault(attr, getattr(module, attr))


def __getattr__(name):
    if name == "__all__":
        _load_all()
        names = sorted(n for n, v in list(globals().items())
                       if not n.startswith("_") and not isinstance(v, _types.ModuleType))
        globals()["__all__"] = names
        return names
    if not name.startswith("__"):
        for module_name in _LAZY_MODULES:
            module = _importlib.import_module(f"{__name__}.{module_name}")
            if name in getattr(module, "__all__", ()):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
