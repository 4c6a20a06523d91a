"""Nested keys, spelled one way everywhere: the one home of key normalisation in torch_api.

TorchRL spells a top-level key as a ``str`` and a nested one as a flat tuple
of str. :func:`unravel_key` brings any nesting to that form (it checks every
part, which ``tensordict.unravel_key`` does not: it accepts ``("a", 1)``),
:func:`key_list` does it for a key or a list of keys, :func:`key_tuple`
gives the tuple form, :func:`key_of` turns a tuple back into a key and
:func:`with_leaf` swaps the last part.

Examples:
    >>> unravel_key(("next", ("agent", "reward")))
    ('next', 'agent', 'reward')
    >>> key_list("pixels"), key_tuple("done"), key_of(("done",)), with_leaf(("agent", "reward"), "done")
    (['pixels'], ('done',), 'done', ('agent', 'done'))
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["unravel_key", "key_list", "key_tuple", "key_of", "with_leaf"]


def unravel_key(key):
    """A key as TorchRL spells it: a ``str`` for top-level keys, a flat tuple otherwise.

    Raises:
        TypeError: a part is neither a str nor a tuple.
        ValueError: an empty key (``""``, ``()`` or a tuple holding ``""``): it names no entry a
            user could read back.
    """
    if isinstance(key, str):
        if not key:
            raise ValueError("a key must not be empty, got ''")
        return key
    if isinstance(key, tuple):
        flat = []
        for part in key:
            part = unravel_key(part)
            flat.extend(part if isinstance(part, tuple) else (part,))
        if not flat:
            raise ValueError(f"a key must not be empty, got {key!r}")
        return flat[0] if len(flat) == 1 else tuple(flat)
    raise TypeError(f"a key must be a str or a tuple of str, got {type(key).__name__}: {key!r}")


def key_list(keys, name: str = "keys") -> list:
    """Normalise a key or a sequence of keys to a list of unravelled keys.

    Raises:
        TypeError: when an element is neither a str nor a tuple of str; the
            message names the argument.
        ValueError: when an element is an empty key (``""``); the message
            names the argument.
    """
    if keys is None:
        return []
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    if not isinstance(keys, (list, Sequence)) or isinstance(keys, (bytes, bytearray)):
        raise TypeError(f"{name} must be a key or a list of keys (str or tuple of str), got {type(keys).__name__}")
    out = []
    for key in keys:
        try:
            out.append(unravel_key(key))
        except TypeError:
            raise TypeError(f"{name} must hold str or tuple-of-str keys, got {type(key).__name__}: {key!r}") from None
        except ValueError:
            raise ValueError(f"{name} must hold non-empty keys, got {key!r} in {list(keys)!r}") from None
    return out


def key_tuple(key) -> tuple:
    """``key`` as a tuple of str."""
    key = unravel_key(key)
    return key if isinstance(key, tuple) else (key,)


def key_of(parts: tuple):
    """The key of a tuple of str: its single element, or the tuple itself."""
    return parts[0] if len(parts) == 1 else parts


def with_leaf(key, leaf: str):
    """``key`` with its last element replaced by ``leaf`` (``("a", "reward") -> ("a", leaf)``)."""
    return key_of(key_tuple(key)[:-1] + (leaf,))
