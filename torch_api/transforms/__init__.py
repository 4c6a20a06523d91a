"""Environment transforms, one family per module; each module's ``__all__`` is re-exported."""
import types as _types

from .base import *  # noqa: F401,F403
from .transformed_env import *  # noqa: F401,F403
from .reward import *  # noqa: F401,F403
from .returns import *  # noqa: F401,F403
from .episode import *  # noqa: F401,F403
from .stepping import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .vecnorm import *  # noqa: F401,F403
from .image import *  # noqa: F401,F403
from .frames import *  # noqa: F401,F403
from .time_pool import *  # noqa: F401,F403
from . import fused_pixels  # noqa: F401,E402  (registers the pixel-run fuser with Compose)
from .shape import *  # noqa: F401,F403
from .action import *  # noqa: F401,F403
from .keys import *  # noqa: F401,F403
from .dtype import *  # noqa: F401,F403
from .utility import *  # noqa: F401,F403
from .multistep import *  # noqa: F401,F403
from .timing import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .gym_transforms import *  # noqa: F401,F403
from .reward_shaping import *  # noqa: F401,F403
from .trajectory import *  # noqa: F401,F403
from .stacking import *  # noqa: F401,F403
from .unary import *  # noqa: F401,F403

__all__ = sorted(n for n, v in list(globals().items()) if not n.startswith("_") and not isinstance(v, _types.ModuleType))
