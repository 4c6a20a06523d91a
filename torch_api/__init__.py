"""TorchRL-compatible environments, specs and transforms backed by ``numbarl.core``.

Replace ``from torchrl.envs import ...`` and ``from torchrl.data import ...``
with ``from numbarl.torch_api import ...``.

The public names are loaded on first use (PEP 562), so that importing a light
submodule such as ``numbarl.torch_api.cli`` (the ``numbarl`` command, whose
``--help`` must not wait for torch) does not import torch.
"""
import importlib as _importlib
import importlib.util  # noqa: F401  (find_spec)

# submodules whose public names are re-exported here, in lookup order
_REEXPORTED = ("envs", "specs", "transforms")
_SPECS = ("Binary", "Bounded", "BoundedContinuous", "BoundedDiscrete", "Categorical", "Composite",
          "MultiCategorical", "MultiOneHot", "NonTensor", "OneHot", "TensorSpec", "Unbounded",
          "UnboundedContinuous", "UnboundedDiscrete")


def _public(name):
    module = _importlib.import_module(f"{__name__}.{name}")
    return _SPECS if name == "specs" else tuple(module.__all__)


def __getattr__(name):
    if name == "__all__":
        value = sorted({n for sub in _REEXPORTED for n in _public(sub)})
        globals()["__all__"] = value
        return value
    for sub in _REEXPORTED:
        if name in _public(sub):
            value = getattr(_importlib.import_module(f"{__name__}.{sub}"), name)
            globals()[name] = value
            return value
    if not name.startswith("_") and _importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return _importlib.import_module(f"{__name__}.{name}")  # a submodule, as after an eager import
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
