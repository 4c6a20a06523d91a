"""``set_gym_backend`` / ``gym_backend``: TorchRL's backend selection, for code written against TorchRL.

numbarl's ``GymEnv`` runs on gymnasium. Selecting gymnasium (by name, module
or a callable returning it) works as in TorchRL, as a context manager, a
decorator or with ``.set()``; any other backend is refused with a ValueError
that says so, rather than silently running gymnasium in its place.

Examples:
    >>> import gymnasium
    >>> with set_gym_backend("gymnasium"):
    ...     gym_backend() is gymnasium
    True
    >>> gym_backend("spaces") is gymnasium.spaces
    True
"""
from __future__ import annotations

import functools
import importlib
import types

__all__ = ["set_gym_backend", "gym_backend"]

_SUPPORTED = "gymnasium"
_current: list = []  # stack of the backends set by set_gym_backend; empty means gymnasium


def _resolve(backend) -> types.ModuleType:
    if isinstance(backend, str):
        name = backend
        if name != _SUPPORTED:
            raise ValueError(f"set_gym_backend: numbarl's GymEnv runs on {_SUPPORTED!r} only, got backend {name!r}")
        return importlib.import_module(name)
    if isinstance(backend, types.ModuleType):
        module = backend
    elif callable(backend):
        module = backend()
    else:
        raise TypeError(f"set_gym_backend requires a module, a module name or a callable returning a module, "
                        f"got {type(backend).__name__}")
    if not isinstance(module, types.ModuleType) or module.__name__.split(".")[0] != _SUPPORTED:
        raise ValueError(f"set_gym_backend: numbarl's GymEnv runs on {_SUPPORTED!r} only, got {module!r}")
    return module


class set_gym_backend:  # noqa: N801 - TorchRL's name
    """Select the gym backend (gymnasium) for a block, a function, or the rest of the program.

    Args:
        backend: ``"gymnasium"``, the gymnasium module, or a callable returning it.

    Raises:
        ValueError: any other backend (``"gym"`` included): numbarl runs on gymnasium only.
        TypeError: ``backend`` is neither a str, a module nor a callable.

    >>> @set_gym_backend("gymnasium")
    ... def backend_name():
    ...     return gym_backend().__name__
    >>> backend_name()
    'gymnasium'
    """

    def __init__(self, backend):
        self.backend = _resolve(backend)

    def set(self) -> None:
        """Set the backend for the rest of the program."""
        _current[:] = [self.backend]

    def __enter__(self):
        _current.append(self.backend)
        return self

    def __exit__(self, *exc) -> None:
        _current.pop()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_gym_backend(self.backend):
                return fn(*args, **kwargs)
        return wrapper


def gym_backend(submodule: str | None = None) -> types.ModuleType:
    """The gym backend module (gymnasium), or its ``submodule`` (e.g. ``"wrappers"``)."""
    module = _current[-1] if _current else importlib.import_module(_SUPPORTED)
    if submodule is None:
        return module
    return importlib.import_module(f"{module.__name__}.{submodule}")
