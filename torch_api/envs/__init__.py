"""Environments, one family per module; each module's ``__all__`` is re-exported."""
import types as _types

from .common import *  # noqa: F401,F403
from .gym import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
from .batched import *  # noqa: F401,F403
from .env_creator import *  # noqa: F401,F403
from .pendulum import *  # noqa: F401,F403
from .gym_backends import *  # noqa: F401,F403

__all__ = sorted(n for n, v in list(globals().items()) if not n.startswith("_") and not isinstance(v, _types.ModuleType))
