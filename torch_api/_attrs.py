"""The one way torch_api writes an attribute past ``torch.nn.Module.__setattr__``.

Transforms and envs are ``nn.Module``\\ s, whose ``__setattr__`` files every
value by type: a Module becomes a submodule, a tensor may become a buffer,
and every write pays for those checks. :func:`set_plain` stores the value
as a plain instance attribute instead, for three kinds of state:

- a link to a Module that must NOT become a submodule: the ``container`` a
  transform sits in (an env or a Compose holds the transform, so filing it
  as a child would make a cycle in ``modules()``, ``state_dict`` and ``to``);
- caches and per-step bookkeeping written on the hot path (buffers,
  positions, cached plans), where the registry checks are pure cost;
- settings that must stay out of ``state_dict`` and ``_buffers`` even when
  they hold a tensor.

Examples:
    >>> import torch
    >>> m = torch.nn.Module()
    >>> set_plain(m, "peer", torch.nn.Linear(1, 1))
    >>> list(m.children()), type(m.peer).__name__
    ([], 'Linear')
"""
from __future__ import annotations

__all__ = ["set_plain"]


def set_plain(module, name: str, value) -> None:
    """``module.<name> = value`` as a plain attribute, bypassing ``nn.Module.__setattr__`` (see module docstring).

    The value goes straight into the instance ``__dict__`` (no descriptor is
    called: a subclass may expose the name as a read-only property, e.g.
    ``Compose.in_keys``, while the base class keeps its own copy).
    """
    module.__dict__[name] = value  # the one write past nn.Module.__setattr__ (see above)
