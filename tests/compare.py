"""Comparison helpers shared by the differential tests.

``assert_spec_matches_torchrl`` checks a numbarl spec against the TorchRL spec
built from the same arguments; ``assert_td_equal`` checks two TensorDicts
entry by entry. Both raise AssertionError naming the nested key that differs.

>>> import torch
>>> from tensordict import TensorDict
>>> a = TensorDict({"x": torch.zeros(2)}, batch_size=[2])
>>> assert_td_equal(a, a.clone())
"""
from __future__ import annotations

import torch
from tensordict import is_non_tensor

__all__ = ["assert_spec_matches_torchrl", "assert_td_equal"]


def _ensure(cond, message):
    """Raise AssertionError(message) unless cond (plain raise: no assertion rewriting)."""
    if not cond:
        raise AssertionError(message)


def _name(key):
    return "<root>" if key == () else (key[0] if len(key) == 1 else key)


def _as_list(x):
    return torch.as_tensor(x).tolist()


def assert_spec_matches_torchrl(ours, theirs, key=()):
    """Assert that a numbarl spec and a TorchRL spec describe the same space.

    Recursive over Composite: same keys (as a set, and the same nested keys),
    then for every entry the same class name, shape and dtype, and where they
    apply the same ``low`` / ``high``, ``n``, ``nvec`` and mask.

    >>> from numbarl.torch_api.specs import Categorical
    >>> assert_spec_matches_torchrl(Categorical(3), Categorical(3))
    >>> assert_spec_matches_torchrl(Categorical(3), Categorical(4))
    Traceback (most recent call last):
    ...
    AssertionError: spec <root>: n 3 != 4
    """
    where = f"spec {_name(key)}"
    if ours is None or theirs is None:
        _ensure(ours is None and theirs is None, f"{where}: {ours!r} vs {theirs!r}")
        return
    a, b = type(ours).__name__, type(theirs).__name__
    _ensure(a == b, f"{where}: class {a} != {b}")
    _ensure(tuple(ours.shape) == tuple(theirs.shape), f"{where}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}")
    if a == "Composite":
        ka = set(ours.keys(True))
        kb = set(theirs.keys(True))
        _ensure(ka == kb, f"{where}: keys differ, only ours {sorted(map(str, ka - kb))}, "
                          f"only theirs {sorted(map(str, kb - ka))}")
        for k in ours.keys():
            assert_spec_matches_torchrl(ours[k], theirs[k], key + (k,))
        return
    _ensure(ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} != {theirs.dtype}")
    if hasattr(theirs, "low") and hasattr(theirs, "high"):
        for attr in ("low", "high"):
            x, y = getattr(ours, attr), getattr(theirs, attr)
            _ensure(x.dtype == y.dtype and torch.equal(x.cpu(), y.cpu()), f"{where}: {attr} {x} != {y}")
    for attr in ("n", "nvec"):
        if hasattr(theirs, attr):
            x, y = getattr(ours, attr, None), getattr(theirs, attr)
            _ensure(x is not None, f"{where}: ours has no {attr}")
            _ensure(_as_list(x) == _as_list(y), f"{where}: {attr} {_as_list(x)} != {_as_list(y)}")
    x, y = getattr(ours, "mask", None), getattr(theirs, "mask", None)
    if x is not None and y is not None:
        _ensure(torch.equal(x.cpu(), y.cpu()), f"{where}: mask {x} != {y}")


def assert_td_equal(a, b, atol=0, rtol=0, key=()):
    """Assert that two TensorDicts (or dicts) hold the same nested keys, shapes, dtypes and values.

    Values are compared with ``torch.testing.assert_close`` (NaN equal to NaN);
    ``atol = rtol = 0`` asks for exact equality.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> assert_td_equal(TensorDict({"x": torch.zeros(2)}), TensorDict({"x": torch.ones(2)}))
    Traceback (most recent call last):
    ...
    AssertionError: key 'x': values differ: ...
    """
    where = f"key {_name(key)!r}" if key else "root"
    ka, kb = set(a.keys()), set(b.keys())
    _ensure(ka == kb, f"{where}: keys differ, only in a {sorted(ka - kb)}, only in b {sorted(kb - ka)}")
    bsa, bsb = getattr(a, "batch_size", None), getattr(b, "batch_size", None)
    _ensure(bsa == bsb, f"{where}: batch_size {bsa} != {bsb}")
    for k in a.keys():
        x, y, sub = a.get(k), b.get(k), key + (k,)
        name = f"key {_name(sub)!r}"
        if is_non_tensor(x) or is_non_tensor(y):
            xd, yd = getattr(x, "data", x), getattr(y, "data", y)
            _ensure(xd == yd, f"{name}: non-tensor values {xd!r} != {yd!r}")
            continue
        if hasattr(x, "keys") and not isinstance(x, torch.Tensor):
            _ensure(hasattr(y, "keys"), f"{name}: a holds a TensorDict, b a {type(y).__name__}")
            assert_td_equal(x, y, atol, rtol, sub)
            continue
        _ensure(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor),
                f"{name}: {type(x).__name__} vs {type(y).__name__}")
        _ensure(x.shape == y.shape, f"{name}: shape {tuple(x.shape)} != {tuple(y.shape)}")
        _ensure(x.dtype == y.dtype, f"{name}: dtype {x.dtype} != {y.dtype}")
        try:
            torch.testing.assert_close(x.cpu(), y.cpu(), atol=atol, rtol=rtol, equal_nan=True)
        except AssertionError as err:
            raise AssertionError(f"{name}: values differ: {err}") from None
