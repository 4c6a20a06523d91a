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

import numpy as np

__all__ = ["check_bool"]


def check_bool(value, owner: str, name: str) -> bool:
    """``value`` as a bool (NumPy bools included); TypeError naming ``owner`` and ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner} requires {name} to be a bool, got {type(value).__name__}: {value!r}")
    return bool(value)
