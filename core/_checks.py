"""Argument checks for every layer: one definition each, one argument order, one message style.

Every check takes ``(value, owner, name, ...)`` and raises with a message of
the form ``"<owner> requires <name> <rule>, got <value>"``: ``TypeError``
for a wrong type, ``ValueError`` for a wrong value. ``numbarl.torch_api``
re-exports them (``numbarl.torch_api.transforms._checks``).

Examples:
    >>> check_int(3, "Resize", "w", above=0)
    3
    >>> check_int(0, "Resize", "w", above=0)
    Traceback (most recent call last):
    ...
    ValueError: Resize requires w > 0, got 0
    >>> check_bool(1, "Owner", "flag")
    Traceback (most recent call last):
    ...
    TypeError: Owner requires flag to be a bool, got int: 1
    >>> check_number(0.5, "VecNorm", "decay", 0.0, 1.0)
    0.5
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_bool", "check_int", "check_number"]


def check_bool(value, owner: str, name: str) -> bool:
    """``value`` as a bool (NumPy bools included); TypeError naming ``owner`` and ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner} requires {name} to be a bool, got {type(value).__name__}: {value!r}")
    return bool(value)


def check_int(value, owner: str, name: str, minimum=None, maximum=None, *, above=None, below=None) -> int:
    """``value`` as an int; TypeError for non-ints (bool included), ValueError outside the bounds.

    ``minimum`` / ``maximum`` are inclusive bounds (the message says
    ``>= minimum`` / ``<= maximum``), ``above`` / ``below`` exclusive ones
    (``> above`` / ``< below``): the caller picks the rule its users read.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner} requires {name} to be an int, got {type(value).__name__}: {value!r}")
    value = int(value)
    for bound, fails, rule in ((minimum, lambda b: value < b, ">="), (above, lambda b: value <= b, ">"),
                               (maximum, lambda b: value > b, "<="), (below, lambda b: value >= b, "<")):
        if bound is not None and fails(bound):
            raise ValueError(f"{owner} requires {name} {rule} {bound}, got {value}")
    return value


def check_number(value, owner: str, name: str, low=-float("inf"), high=float("inf"), low_open=True,
                 allow_none=False):
    """``value`` as a finite float in ``(low, high]`` (``[low, high]`` when not ``low_open``); None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner} requires {name} as a float, got {type(value).__name__}: {value!r}")
    value = float(value)
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok or value != value:
        bounds = f"in ({low:g}, {high:g}]" if high != float("inf") else f"> {low:g} and finite"
        raise ValueError(f"{owner} requires {name} {bounds}, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{owner} requires a finite {name}, got {value!r}")
    return value
