"""Argument checks shared by the transforms: one message format for every class.

Examples:
    >>> check_bool(True, "Owner", "flag")
    True
    >>> check_bool(1, "Owner", "flag")
    Traceback (most recent call last):
    ...
    TypeError: Owner requires flag to be a bool, got int: 1
"""
from __future__ import annotations

from numbarl.core._checks import check_bool, check_int, check_number

from .._keys import key_list

__all__ = ["CompatTypeError", "CompatTypeValueError", "CompatValueError", "check_bool", "check_choice", "check_int",
           "check_keys", "check_lock", "check_number", "check_str_key", "check_unique"]


class CompatValueError(ValueError, RuntimeError):
    """A wrong value that TorchRL refuses with RuntimeError: a ValueError by this package's rule, and a
    RuntimeError too, so code written against TorchRL (``except RuntimeError``) keeps working."""


class CompatTypeError(TypeError, RuntimeError):
    """A wrong type that TorchRL refuses with RuntimeError: a TypeError here, and a RuntimeError for TorchRL code."""


class CompatTypeValueError(TypeError, ValueError):
    """A wrong type that TorchRL refuses with ValueError: a TypeError here, and a ValueError for TorchRL code."""


def check_str_key(value, owner: str, name: str) -> str:
    """``value`` when it is a str; TypeError naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{owner} requires {name} to be a str (a leaf name), got {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{owner} requires {name} to be a non-empty str, got ''")
    return value


def check_unique(owner, name, keys) -> list:
    """``keys`` (a list of unravelled keys) when no key repeats; ValueError naming the argument and the key.

    A repeated in_key is read twice and a repeated out_key written twice
    (the last write wins): either silently drops or doubles data.

    Examples:
        >>> check_unique("CatTensors", "in_keys", ["a", ("b", "c")])
        ['a', ('b', 'c')]
        >>> check_unique("CatTensors", "in_keys", ["a", "b", "a"])
        Traceback (most recent call last):
        ...
        ValueError: CatTensors requires distinct in_keys, got 'a' more than once in ['a', 'b', 'a']
    """
    seen = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{owner} requires distinct {name}, got {key!r} more than once in {list(keys)!r}")
        seen.add(key)
    return keys


def check_keys(owner, in_keys, out_keys):
    """Validated (in_keys, out_keys) lists; TypeError / ValueError naming the argument.

    Keys must be non-empty and distinct within in_keys and within out_keys.
    """
    lists = []
    for name, keys in (("in_keys", in_keys), ("out_keys", out_keys)):
        try:
            lists.append(key_list(keys, name))
        except TypeError:
            raise TypeError(f"{owner} requires {name} as a key or a list of keys (str or tuple of str), "
                            f"got {keys!r}") from None
        except ValueError as err:
            raise ValueError(f"{owner}: {err}") from None
    ins, outs = lists
    if out_keys is None:
        outs = list(ins)
    if len(outs) != len(ins):
        raise ValueError(f"{owner} requires out_keys of the same length as in_keys ({len(ins)}), got {len(outs)}: "
                         f"{outs}")
    check_unique(owner, "in_keys", ins)
    check_unique(owner, "out_keys", outs)
    return ins, outs


def check_choice(value, owner, name, choices):
    """``value`` when it is one of the str ``choices``; ValueError naming them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner} requires {name} in {choices}, got {value!r}")
    return value


def check_lock(value, owner, name="lock"):
    """``value`` when it is None or a context manager (a lock); TypeError otherwise."""
    if value is not None and not (hasattr(value, "__enter__") and hasattr(value, "__exit__")):
        raise TypeError(f"{owner} requires {name} as a context manager (e.g. multiprocessing.Lock()) or None, "
                        f"got {type(value).__name__}")
    return value
