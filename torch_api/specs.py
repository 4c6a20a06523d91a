"""TorchRL-compatible tensor specs: :class:`Composite` plus the leaf specs.

Same names, constructor arguments and behaviour as ``torchrl.data`` (0.14.1),
so that ``from numbarl.torch_api.specs import Composite, Bounded`` can replace
``from torchrl.data import Composite, Bounded``.

Deliberate differences from TorchRL 0.14.1 (each one where TorchRL's result is
inconsistent, random or an error):

- ``is_in`` always returns a Python bool and checks dtype and shape for every
  spec, masked ones included; a masked spec keeps its mask through ``expand``,
  indexing and ``to_one_hot_spec``.
- ``project`` is deterministic: ``OneHot`` / ``MultiOneHot`` take the argmax
  (per group), masked categorical specs move to the nearest legal value (ties
  go low). TorchRL draws a random legal value there.
- ``encode`` also accepts leading batch dims and casts tensors to the spec's
  dtype; ``OneHot.encode`` takes a bool array as one-hot and a numeric one as
  category indices. Like TorchRL it shares memory with a NumPy array of the
  spec's dtype and returns a tensor of the right dtype as is.
- Bad arguments raise TypeError / ValueError at construction (``Bounded``
  with ``low > high``, ``Categorical(0)``, wrong shapes and dtypes), and
  ``expand`` accepts ``-1`` for the existing dims.
- ``squeeze()`` removes every size-1 batch dim, as ``torch.squeeze`` does.
- ``Composite``: ``key in spec`` follows nested keys, ``get`` defaults to None,
  ``one()`` keeps every leaf's dtype, a locked Composite also refuses deletion.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from tensordict import TensorDict, TensorDictBase

from ._spec_base import (
    _EMPTY, BoxList, CategoricalBox, ContinuousBox, TensorSpec, _as_device, _as_shape, _expanded_shape, _lead,
    _norm_dim, _norm_index,
)
from ._spec_leaves import (
    Binary, Bounded, BoundedContinuous, BoundedDiscrete, Categorical, NonTensor, OneHot, Unbounded,
    UnboundedContinuous, UnboundedDiscrete,
)
from ._spec_multi import MultiCategorical, MultiOneHot

__all__ = [
    "TensorSpec", "Composite", "Bounded", "BoundedContinuous", "BoundedDiscrete", "Unbounded",
    "UnboundedContinuous", "UnboundedDiscrete", "Categorical", "Binary", "MultiCategorical",
    "OneHot", "MultiOneHot", "NonTensor", "ContinuousBox", "CategoricalBox", "BoxList",
]

_NO_DEFAULT = object()


def _key_tuple(key):
    """A nested key as a non-empty tuple of str; TypeError otherwise."""
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key
    raise TypeError(f"Composite keys must be a str or a non-empty tuple of str, got {key!r}")


def _show(key):
    """A key tuple as the user writes it: a str for top-level keys."""
    return key[0] if isinstance(key, tuple) and len(key) == 1 else key


def _is_key(key):
    return isinstance(key, str) or (isinstance(key, tuple) and len(key) > 0
                                    and all(isinstance(k, str) for k in key))


def _default_is_leaf(cls):
    return not issubclass(cls, Composite)


class _CompositeView:
    """Lazy view over the keys, values or items of a :class:`Composite`.

    >>> spec = Composite(a=Unbounded(1), b=Composite(c=Unbounded(1)))
    >>> spec.keys(include_nested=True)
    _CompositeView(keys=['a', ('b', 'c'), 'b'])
    """

    def __init__(self, spec, what, include_nested, leaves_only, is_leaf):
        self._spec, self._what = spec, what
        self._args = (include_nested, leaves_only, is_leaf or _default_is_leaf)

    def __iter__(self):
        items = self._spec._walk(*self._args, ())
        if self._what == "keys":
            return (k for k, _ in items)
        if self._what == "values":
            return (v for _, v in items)
        return items

    def __len__(self):
        return sum(1 for _ in self._spec._walk(*self._args, ()))

    def __contains__(self, item):
        if self._what != "keys":
            return item in list(self)
        if not _is_key(item):
            return False
        item = _show(item)
        include_nested, leaves_only, _ = self._args
        if not include_nested and not leaves_only:
            return isinstance(item, str) and item in self._spec._specs
        return any(k == item for k in self)

    def __repr__(self):
        return f"_CompositeView({self._what}={list(self)!r})"


class SpecDeviceError(ValueError, RuntimeError):
    """A child spec on another device than its Composite (TorchRL raises RuntimeError there)."""


class Composite(TensorSpec):
    """Dict-like spec of nested specs, sampled into a ``tensordict.TensorDict``.

    Keys are str or tuples of str (nested keys); setting a nested key creates
    the intermediate Composites. ``shape`` is the leading batch shape that
    every child's shape must start with. ``rand`` / ``zero`` / ``one`` return a
    TensorDict with ``batch_size = shape + self.shape``. Unlike TorchRL,
    ``key in spec`` follows nested tuple keys, ``get`` defaults to None, a
    locked Composite also refuses deletions, ``dtype`` is the common dtype of
    the leaves (None when they differ) and ``is_in`` answers False for a
    missing entry instead of raising.

    Args:
        *args: at most one mapping (or Composite) of key -> spec.
        shape: leading batch shape, default ``()``.
        device: None (children may live anywhere) or the device of every child.
        data_cls, step_mdp_static, names: kept for compatibility.
        **kwargs: key=spec entries; a value may be None, or a (nested) dict of
            specs, which becomes a Composite of this shape and device.

    Raises:
        TypeError: a key that is not a str / tuple of str, a value that is not a spec.
        ValueError: a child whose shape does not start with ``shape``, or on another
            device (``SpecDeviceError``, also a RuntimeError as in TorchRL).
        KeyError: a missing key (the message lists the keys that exist).

    >>> spec = Composite(obs=Bounded(-1.0, 1.0, shape=(2, 3)), shape=(2,))
    >>> spec["agent", "action"] = Categorical(4, shape=(2,))
    >>> list(spec.keys(include_nested=True, leaves_only=True))
    ['obs', ('agent', 'action')]
    >>> td = spec.zero((5,))
    >>> td.batch_size, td["agent", "action"].shape
    (torch.Size([5, 2]), torch.Size([5, 2]))
    >>> spec.is_in(spec.rand())
    True
    """

    domain = "composite"

    def __init__(self, *args, shape=None, device=None, data_cls=None, step_mdp_static=False,
                 names=None, **kwargs):
        if len(args) > 1:
            raise TypeError(f"Composite accepts at most one positional mapping, got {len(args)}")
        self._specs = {}
        self._locked = False
        self._shape = _as_shape(shape, "Composite", _EMPTY)
        self._device = None if device is None else _as_device(device, "Composite")
        self.data_cls, self.step_mdp_static, self.names = data_cls, step_mdp_static, names
        if args and args[0] is not None:
            source = args[0]
            if not isinstance(source, (Mapping, Composite)):
                raise TypeError(f"Composite requires a mapping of specs as positional argument, got {source!r}")
            for key, value in source.items():
                self.set(key, value)
        for key, value in kwargs.items():
            self.set(key, value)

    # ---- properties
    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, value):
        """Set the batch shape; nested Composites whose shape does not start with it take it too."""
        value = _as_shape(value, "Composite", _EMPTY)
        self._check_reshape(value, ())
        self._apply_reshape(value)

    def _check_reshape(self, value, prefix):
        nd = len(value)
        for name, spec in self._specs.items():
            if spec is None or spec.shape[:nd] == value:
                continue
            key = prefix + (name,)
            if not isinstance(spec, Composite):
                raise ValueError(f"Composite key {_show(key)!r}: the spec shape {tuple(spec.shape)} must "
                                 f"start with the Composite shape {tuple(value)}")
            spec._check_reshape(value, key)

    def _apply_reshape(self, value):
        nd = len(value)
        for spec in self._specs.values():
            if isinstance(spec, Composite) and spec.shape[:nd] != value:
                spec._apply_reshape(value)
        self._shape = value

    @property
    def device(self):
        return self._device

    @device.setter
    def device(self, device):
        device = None if device is None else _as_device(device, "Composite")
        if device is not None:
            for key, spec in self._specs.items():
                self._check_device((key,), spec, device)
            for spec in self._specs.values():
                if isinstance(spec, Composite) and spec.device is None:
                    spec.device = device
        self._device = device

    @property
    def batch_size(self):
        return self.shape

    @property
    def dtype(self):
        dtypes = {v.dtype for _, v in self._walk(True, True, _default_is_leaf, ()) if v is not None}
        return dtypes.pop() if len(dtypes) == 1 else None

    @property
    def locked(self):
        return self._locked

    def lock_(self, recurse=None):
        """Refuse any later set / delete / pop, here and in nested Composites."""
        return self._set_lock(True)

    def unlock_(self, recurse=None):
        """Allow changes again, here and in nested Composites."""
        return self._set_lock(False)

    def _set_lock(self, flag):
        self._locked = flag
        for spec in self._specs.values():
            if isinstance(spec, Composite):
                spec._set_lock(flag)
        return self

    def _check_unlocked(self):
        if self._locked:
            raise RuntimeError("Cannot modify a locked Composite; call unlock_() first")

    # ---- dict interface
    def _missing(self, key):
        return KeyError(f"key {key!r} not found in Composite; existing keys: {list(self.keys(True))}")

    def _node(self, key):
        """Parent Composite and last name of a nested key; KeyError if a parent is missing."""
        node = self
        for name in key[:-1]:
            nxt = node._specs.get(name)
            if not isinstance(nxt, Composite):
                raise self._missing(_show(key))
            node = nxt
        return node, key[-1]

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._specs[key]
            except KeyError:
                raise self._missing(key) from None
        if _is_key(key):
            node, name = self._node(key)
            if name not in node._specs:
                raise self._missing(_show(key))
            return node._specs[name]
        if isinstance(key, tuple) and len(key) == 0:
            return self
        return self._index(key)

    def get(self, key, default=None):
        """The spec at ``key`` (str or nested tuple), or ``default`` when it is missing."""
        try:
            return self[_key_tuple(key)]
        except KeyError:
            return default

    def __setitem__(self, key, value):
        self.set(key, value)

    def set(self, key, spec):
        """Set ``spec`` (a TensorSpec or None) at ``key``, creating nested Composites; returns self."""
        key = _key_tuple(key)
        if spec is not None and not isinstance(spec, (TensorSpec, Mapping)):
            raise TypeError(f"Composite values must be TensorSpec, a mapping of specs or None, got {type(spec).__name__} "
                            f"for key {_show(key)!r}")
        self._set(key, spec, key)
        return self

    def _set(self, key, spec, full):
        self._check_unlocked()
        if len(key) > 1:
            head = key[0]
            sub = self._specs.get(head)
            if sub is None:
                if isinstance(spec, TensorSpec):
                    self._check_shape(full, spec)
                sub = Composite(shape=self.shape, device=self._device)
                self._specs[head] = sub
            elif not isinstance(sub, Composite):
                raise ValueError(f"Composite cannot set {_show(full)!r}: {head!r} holds a "
                                 f"{type(sub).__name__}, not a Composite")
            sub._set(key[1:], spec, full)
            return
        if isinstance(spec, Mapping):  # a nested dict becomes a Composite of our shape and device
            spec = Composite(spec, shape=self.shape, device=self._device)
        if spec is not None:
            spec = self._adopt(full, spec)
        self._specs[key[0]] = spec

    def _check_shape(self, full, spec):
        nd = len(self.shape)
        if spec.shape[:nd] != self.shape:
            raise ValueError(f"Composite key {_show(full)!r}: the spec shape {tuple(spec.shape)} must start "
                             f"with the Composite shape {tuple(self.shape)}")

    def _check_device(self, full, spec, device):
        if spec is None or isinstance(spec, Composite) and spec.device is None:
            return
        # host devices ("cpu", "cpu:0", "cpu:1") share memory: a Composite on one may hold specs on another
        if spec.device != device and not (spec.device is not None and spec.device.type == device.type == "cpu"):
            raise SpecDeviceError(f"Composite key {_show(full)!r}: the spec is on device {spec.device} but the "
                             f"Composite is on {device}; move it with spec.to({str(device)!r})")

    def _adopt(self, full, spec):
        """Validate a child; a nested Composite with a shorter shape or no device takes ours (as a copy)."""
        nd = len(self.shape)
        if (isinstance(spec, Composite) and len(spec.shape) < nd
                and self.shape[:len(spec.shape)] == spec.shape):
            spec._check_reshape(self.shape, full)
            spec = spec._copy_tree()
            spec._apply_reshape(self.shape)
        self._check_shape(full, spec)
        if self._device is not None:
            if isinstance(spec, Composite) and spec.device is None:
                spec = spec._copy_tree()
                spec.device = self._device
            self._check_device(full, spec, self._device)
        return spec

    def __delitem__(self, key):
        self._check_unlocked()
        key = _key_tuple(key)
        node, name = self._node(key)
        if name not in node._specs:
            raise self._missing(_show(key))
        del node._specs[name]

    def pop(self, key, default=_NO_DEFAULT):
        """Remove and return the spec at ``key``; ``default`` (if given) when it is missing."""
        self._check_unlocked()
        if key not in self:
            if default is _NO_DEFAULT:
                _key_tuple(key)
                raise self._missing(key)
            return default
        value = self[key]
        del self[key]
        return value

    def __contains__(self, key):
        if not _is_key(key):
            return False
        key = _key_tuple(key)
        node = self
        for name in key[:-1]:
            node = node._specs.get(name)
            if not isinstance(node, Composite):
                return False
        return key[-1] in node._specs

    def __len__(self):
        return len(self._specs)

    def __iter__(self):
        return iter(self._specs)

    def _walk(self, include_nested, leaves_only, is_leaf, prefix):
        for name, spec in self._specs.items():
            key = prefix + (name,)
            if include_nested and isinstance(spec, Composite):
                yield from spec._walk(True, leaves_only, is_leaf, key)
            if not leaves_only or is_leaf(type(spec)):
                yield (name if not prefix else key), spec

    def keys(self, include_nested=False, leaves_only=False, *, is_leaf=None, step_mdp_static_only=False):
        """Keys view; nested keys come before the key of their Composite, as in TorchRL.

        ``is_leaf(cls)`` decides which entries count as leaves under ``leaves_only``
        (default: every non-Composite class).
        """
        return _CompositeView(self, "keys", include_nested, leaves_only, is_leaf)

    def values(self, include_nested=False, leaves_only=False, *, is_leaf=None, step_mdp_static_only=False):
        """Values view, in the order of :meth:`keys`."""
        return _CompositeView(self, "values", include_nested, leaves_only, is_leaf)

    def items(self, include_nested=False, leaves_only=False, *, is_leaf=None, step_mdp_static_only=False):
        """(key, spec) view, in the order of :meth:`keys`."""
        return _CompositeView(self, "items", include_nested, leaves_only, is_leaf)

    def update(self, dict_or_spec):
        """Set every entry of a mapping or Composite; nested Composites are merged. Returns self."""
        for key, value in dict_or_spec.items():
            if isinstance(value, Composite) and isinstance(self.get(key), Composite):
                self[key].update(value)
            else:
                self[key] = value
        return self

    def empty(self):
        """A Composite with the same shape and device and no entries."""
        return Composite(shape=self.shape, device=self._device, data_cls=self.data_cls)

    def is_empty(self):
        """True when there is no entry at all."""
        return not self._specs

    # ---- values
    def _td(self, source, batch):
        return TensorDict(source, batch_size=batch, device=self._device)

    def rand(self, shape=None):
        """TensorDict of random values, batch size ``shape + self.shape``."""
        lead = _lead(shape)
        return self._td({k: v.rand(lead) for k, v in self._specs.items() if v is not None}, lead + self.shape)

    def zero(self, shape=None):
        """TensorDict of zeros, batch size ``shape + self.shape``."""
        lead = _lead(shape)
        return self._td({k: v.zero(lead) for k, v in self._specs.items() if v is not None}, lead + self.shape)

    def one(self, shape=None):
        """TensorDict of ones, batch size ``shape + self.shape``."""
        lead = _lead(shape)
        return self._td({k: v.one(lead) for k, v in self._specs.items() if v is not None}, lead + self.shape)

    def is_in(self, val):
        """Whether every entry of ``val`` (TensorDict or dict) is in its spec; False if one is missing."""
        for key, spec in self._specs.items():
            if spec is None:
                continue
            item = val.get(key, None)
            if item is None or not spec.is_in(item):
                return False
        return True

    def project(self, val):
        """Copy of ``val`` (TensorDict or dict) with every entry projected into its spec."""
        out = val.copy()
        for key, spec in self._specs.items():
            if spec is not None:
                item = val.get(key, None)
                if item is not None:
                    out[key] = spec.project(item)
        return out

    def encode(self, vals, *, ignore_device=False):
        """TensorDict of every entry of a (nested) mapping encoded by its spec.

        The batch size is ``self.shape`` plus any leading batch dims of the values.
        """
        out, lead = {}, None
        for key, value in vals.items():
            spec = self._specs.get(key, _NO_DEFAULT) if isinstance(key, str) else _NO_DEFAULT
            if spec is _NO_DEFAULT:
                raise self._missing(key)
            if spec is None:
                continue
            enc = out[key] = spec.encode(value, ignore_device=ignore_device)
            if lead is None:
                got = enc.batch_size if isinstance(enc, TensorDictBase) else enc.shape
                lead = got[:len(got) - spec.ndim]
        return TensorDict(out, batch_size=(lead or _EMPTY) + self.shape,
                          device=None if ignore_device else self._device)

    def to_numpy(self, val, safe=None):
        """Nested dict of NumPy arrays of the entries of ``val``."""
        return {k: s.to_numpy(val[k], safe) for k, s in self._specs.items() if s is not None and k in val.keys()}

    def assert_is_in(self, value):
        """Raise AssertionError unless ``is_in(value)``."""
        if not self.is_in(value):
            raise AssertionError(f"value is not in the Composite space; call project(val) first. "
                                 f"value={value!r}, spec={self!r}")

    # ---- shape algebra
    def _map(self, fn, shape, device=_NO_DEFAULT):
        new = object.__new__(Composite)
        new.__dict__.update(self.__dict__)
        new._specs = {k: (None if v is None else fn(v)) for k, v in self._specs.items()}
        new._shape = torch.Size(shape)
        new._locked = False
        if device is not _NO_DEFAULT:
            new._device = device
        return new

    def _copy_tree(self):
        """Copy of the nested Composites; the leaf specs are shared."""
        return self._map(lambda v: v._copy_tree() if isinstance(v, Composite) else v, self.shape)

    def expand(self, *shape):
        """Composite with extra leading batch dims and/or size-1 batch dims broadcast (children follow)."""
        new = _expanded_shape(self, shape)
        nd = len(self.shape)
        return self._map(lambda v: v.expand(new + v.shape[nd:]), new)

    def _index(self, idx):
        idx = _norm_index(idx, len(self.shape))
        dummy = torch.zeros((), device=self._device).expand(self.shape)
        return self._map(lambda v: v[idx], dummy[idx].shape)

    def squeeze(self, dim=None):
        """Remove size-1 batch dims (all of them, or ``dim``)."""
        if dim is None:
            out = self
            for d in reversed(range(len(self.shape))):
                if self.shape[d] == 1:
                    out = out.squeeze(d)
            return out if out is not self else self.clone()
        d = _norm_dim(dim, len(self.shape), "Composite", "squeeze")
        if self.shape[d] != 1:
            return self.clone()
        return self._map(lambda v: v.squeeze(d), self.shape[:d] + self.shape[d + 1:])

    def unsqueeze(self, dim):
        """Insert a size-1 batch dim at ``dim``."""
        d = _norm_dim(dim, len(self.shape) + 1, "Composite", "unsqueeze")
        return self._map(lambda v: v.unsqueeze(d), self.shape[:d] + (1,) + self.shape[d:])

    def unbind(self, dim=0):
        """Tuple of the Composites along batch dim ``dim``."""
        d = _norm_dim(dim, len(self.shape), "Composite", "unbind")
        pre = (slice(None),) * d
        return tuple(self._index(pre + (i,)) for i in range(self.shape[d]))

    def clone(self):
        """Deep copy (unlocked)."""
        return self._map(lambda v: v.clone(), self.shape)

    def to(self, dest):
        """Copy with every leaf cast to a dtype or moved to a device (which becomes the Composite's)."""
        if isinstance(dest, str) and isinstance(getattr(torch, dest, None), torch.dtype):
            dest = getattr(torch, dest)
        if isinstance(dest, torch.dtype):
            return self._map(lambda v: v.to(dest), self.shape)
        device = _as_device(dest, "Composite.to")
        return self._map(lambda v: v.to(device), self.shape, device)

    def clear_device_(self) -> "Composite":
        """Forget the device of this Composite and of every nested one (in place), so children on several
        devices may live in it, as TorchRL allows; returns self.

        Examples:
            >>> c = Composite(a=Unbounded(1), device="cpu")
            >>> c.clear_device_().device is None
            True
        """
        self._device = None
        for spec in self._specs.values():
            if isinstance(spec, Composite):
                spec.clear_device_()
        return self

    # ---- comparison and display
    def __eq__(self, other):
        if type(other) is not Composite or self.shape != other.shape or self._device != other._device:
            return False
        if self._specs.keys() != other._specs.keys():
            return False
        return all(v == other._specs[k] for k, v in self._specs.items())

    def __repr__(self):
        tail = f"device={self._device}, shape={self.shape}, data_cls={self.data_cls}"
        if not self._specs:
            return f"Composite({tail})"
        body = ",\n".join(f"    {k}: {v!r}".replace("\n", "\n    ") for k, v in self._specs.items())
        return f"Composite(\n{body},\n    {tail.replace(', ', ',' + chr(10) + '    ')})"
