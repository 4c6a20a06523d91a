"""``Stack``: stack several entries (tensors or sub-tensordicts) into one along a new dim.

TorchRL 0.14.1's arguments, keys, specs and inverse. Specs are stacked with
:func:`stack_specs`: specs that are equal give the same spec with the new dim,
as in TorchRL; ``Bounded`` specs with different bounds (or categorical specs
with different masks) give one spec of the same class whose bounds (masks)
are stacked, where TorchRL builds a lazy stacked spec: the values it admits
and draws are the same. Specs of different classes, dtypes or keys cannot be
stacked (TorchRL refuses them too, or gives a lazy spec numbarl does not have).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"a": torch.zeros(3), "b": torch.ones(3)}, [])
    >>> out = Stack(["a", "b"], "ab", dim=-2)(td)
    >>> out["ab"], sorted(out.keys())
    (tensor([[0., 0., 0.],
            [1., 1., 1.]]), ['ab'])
"""
from __future__ import annotations

import numpy as np
import torch

from .._attrs import set_plain
from .._keys import key_list
from ..specs import Composite
from ._checks import CompatValueError, check_bool, check_unique
from ._env_chain import container_env
from .base import Transform
from .keys import _NoBuffersOnCopy, one_key

__all__ = ["Stack"]


def _norm_dim(dim, ndim, what):
    d = dim + ndim + 1 if dim < 0 else dim
    if not 0 <= d <= ndim:
        raise ValueError(f"Stack cannot insert dim {dim} into {what} with {ndim} dims "
                         f"(allowed: {-ndim - 1} to {ndim})")
    return d


def stack_specs(specs, dim: int):
    """One spec for the values ``torch.stack(values, dim)`` of values in ``specs``.

    ``Composite`` specs need the same keys and shape; their entries are
    stacked at the same position (counted from the front). Leaf specs need the
    same class, dtype, shape and device; their bound / mask tensors are
    stacked along with them.

    Raises:
        ValueError: no spec, or the specs differ in class, keys, shape, dtype or device,
            or ``dim`` falls inside a one-hot (feature) dim.

    Examples:
        >>> from numbarl.torch_api import Bounded
        >>> s = stack_specs([Bounded(0.0, 1.0, (2,)), Bounded(0.0, 3.0, (2,))], dim=-1)
        >>> s.shape, s.high
        (torch.Size([2, 2]), tensor([[1., 3.],
                [1., 3.]]))
    """
    specs = list(specs)
    if not specs:
        raise ValueError("Stack cannot stack an empty list of specs")
    first = specs[0]
    for s in specs[1:]:
        if type(s) is not type(first):
            raise CompatValueError(f"Stack cannot stack specs of different classes: {type(first).__name__} "
                                   f"and {type(s).__name__}")
        if s.shape != first.shape:
            raise ValueError(f"Stack requires specs of one shape, got {tuple(first.shape)} and {tuple(s.shape)}")
        if s.device != first.device:
            raise ValueError(f"Stack requires specs on one device, got {first.device} and {s.device}")
    if isinstance(first, Composite):
        d = _norm_dim(dim, first.ndim, "a Composite spec")
        names = list(first.keys())
        for s in specs[1:]:
            if set(s.keys()) != set(names):
                raise ValueError(f"Stack requires Composite specs with the same keys, got {sorted(names)} and "
                                 f"{sorted(s.keys())}")
        shape = first.shape[:d] + (len(specs),) + first.shape[d:]
        return Composite({k: stack_specs([s[k] for s in specs], d) for k in names}, shape=shape,
                         device=first.device)
    if any(s.dtype != first.dtype for s in specs):
        raise ValueError(f"Stack requires specs of one dtype, got {sorted({str(s.dtype) for s in specs})}")
    for attr in first._eq_attrs:
        if any(getattr(s, attr) != getattr(first, attr) for s in specs):
            raise ValueError(f"Stack requires specs with the same {attr}, got {[getattr(s, attr) for s in specs]}")
    d = _norm_dim(dim, first.ndim, f"a spec of shape {tuple(first.shape)}")
    if d > first._batch_ndim:
        raise ValueError(f"Stack cannot insert dim {dim} inside the feature dims of {type(first).__name__}")
    out = first._derive(first.shape[:d] + (len(specs),) + first.shape[d:])
    for name in first._aux:
        parts = [s.__dict__.get(name) for s in specs]
        if all(p is None for p in parts):
            continue
        if any(p is None for p in parts):
            raise ValueError(f"Stack cannot stack {type(first).__name__} specs where only some have a {name}")
        # aux tensors (bounds, masks) are plain attributes named in _aux, set directly before _refresh checks them
        out.__dict__[name] = torch.stack(parts, d)
    out._refresh()
    return out


class Stack(_NoBuffersOnCopy, Transform):
    """Stack several entries (tensors, or tensordicts such as one per agent) into one along a new dim.

    The entries must have one shape. With ``del_keys`` the stacked entries
    are removed, and so are the sub-tensordicts they leave empty. The inverse
    (``in_key_inv`` / ``out_keys_inv``) unbinds an entry along ``dim`` into
    several; in an env this splits a stacked action back into the base env's
    entries. The step output and the action / state specs are stacked alike.

    Args:
        in_keys: the entries to stack.
        out_key: the stacked entry (must not be one of ``in_keys``).
        in_key_inv: the entry to unbind in ``inv`` (given with ``out_keys_inv``).
        out_keys_inv: the entries it is unbound into.
        dim: where the new dim goes (default -1); negative unless ``allow_positive_dim``.
        allow_positive_dim: accept ``dim >= 0`` (counted from the front, batch dims included).
        del_keys: drop the stacked entries (default True).

    Raises:
        TypeError: a key is not a str or tuple of str, ``dim`` is not an int, or a flag is not a bool.
        ValueError: ``dim >= 0`` without ``allow_positive_dim``; ``out_key`` is one of ``in_keys``;
            only one of ``in_key_inv`` / ``out_keys_inv`` is given.
        KeyError: (when called) an entry of ``in_keys`` is missing.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = Stack(["a", "b"], "ab", in_key_inv="ab", out_keys_inv=["a", "b"])
        >>> td = t(TensorDict({"a": torch.zeros(2), "b": torch.ones(2)}, []))
        >>> td["ab"].shape, sorted(t.inv(td).keys())
        (torch.Size([2, 2]), ['a', 'b'])
    """

    invertible = True

    def __init__(self, in_keys, out_key, in_key_inv=None, out_keys_inv=None, dim: int = -1,
                 allow_positive_dim: bool = False, *, del_keys: bool = True):
        owner = "Stack"
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"Stack requires dim to be an int, got {type(dim).__name__}: {dim!r}")
        check_bool(allow_positive_dim, owner, "allow_positive_dim")
        check_bool(del_keys, owner, "del_keys")
        if dim >= 0 and not allow_positive_dim:
            raise ValueError(f"Stack requires a negative dim (counted from the end, so envs of any batch size "
                             f"work), got dim={dim}; pass allow_positive_dim=True for a dim counted from the front")
        if in_keys is None:
            raise TypeError("Stack requires in_keys, got None")
        keys = check_unique(owner, "in_keys", key_list(in_keys, "in_keys"))
        out_key = one_key(out_key, owner, "out_key")
        if (in_key_inv is None) != (out_keys_inv is None):
            given, other = ("out_keys_inv", "in_key_inv") if in_key_inv is None else ("in_key_inv", "out_keys_inv")
            raise ValueError(f"Stack: {given} was given without {other}; give both or neither")
        inv_keys = [] if in_key_inv is None else [one_key(in_key_inv, owner, "in_key_inv")]
        inv_outs = check_unique(owner, "out_keys_inv", key_list(out_keys_inv, "out_keys_inv"))
        super().__init__(in_keys=keys)
        # one output for several inputs (and the reverse): set past the base class's one-to-one check
        set_plain(self, "out_keys", [out_key])
        set_plain(self, "in_keys_inv", inv_keys)
        set_plain(self, "out_keys_inv", inv_outs)
        if out_key in self.in_keys:
            raise ValueError(f"Stack requires out_key to differ from every in_key, got out_key={out_key!r} "
                             f"in in_keys={self.in_keys}")
        parents = {k[:i] for k in self.in_keys if isinstance(k, tuple) for i in range(1, len(k))}
        parents = sorted(parents, key=len, reverse=True)
        set_plain(self, "dim", dim)
        set_plain(self, "allow_positive_dim", allow_positive_dim)
        set_plain(self, "_del_keys", del_keys)
        set_plain(self, "_maybe_del_parent_keys", [p[0] if len(p) == 1 else p for p in parents])
        set_plain(self, "_leaf_inputs", None)  # whether every in_key is an observation leaf (array path)
        set_plain(self, "_np_bufs", {})

    @property
    def del_keys(self) -> bool:
        return self._del_keys

    # ------------------------------------------------------------ tensordicts
    def _drop_empty_parents(self, td):
        for parent in self._maybe_del_parent_keys:
            sub = td.get(parent, None)
            if sub is not None and hasattr(sub, "keys") and len(sub.keys()) == 0:
                td.exclude(parent, inplace=True)

    def _call(self, next_tensordict):
        values = []
        for key in self.in_keys:
            value = next_tensordict.get(key, None)
            if value is None:
                self._missing(key, next_tensordict)
                continue
            values.append(value)
        if not values:
            return next_tensordict
        next_tensordict.set(self.out_keys[0], torch.stack(values, dim=self.dim))
        if self._del_keys:
            next_tensordict.exclude(*self.in_keys, inplace=True)
            self._drop_empty_parents(next_tensordict)
        return next_tensordict

    def _inv_call(self, tensordict):
        if not self.in_keys_inv:
            return tensordict
        key = self.in_keys_inv[0]
        value = tensordict.get(key, None)
        if value is None:
            return tensordict
        parts = value.unbind(self.dim)
        if len(parts) != len(self.out_keys_inv):
            raise ValueError(f"Stack.inv: {key!r} has {len(parts)} entries along dim {self.dim}, but "
                             f"out_keys_inv names {len(self.out_keys_inv)}: {self.out_keys_inv}")
        for part, out_key in zip(parts, self.out_keys_inv):
            tensordict.set(out_key, part)
        return tensordict.exclude(key)

    # ----------------------------------------------------------------- arrays
    @property
    def _np_supported(self) -> bool:
        if self.in_keys_inv:
            return False
        if self._leaf_inputs is None:
            env = container_env(self)
            if env is not None:
                env.output_spec  # noqa: B018 - computing the specs records whether the inputs are leaves
        return bool(self._leaf_inputs)

    def _np_step(self, arrays):
        values = [arrays[k] for k in self.in_keys if k in arrays]
        if not values:
            return arrays
        sig = tuple((v.shape, v.dtype) for v in values)
        buf = self._np_bufs.get(sig)
        if buf is None:
            d = _norm_dim(self.dim, values[0].ndim, "the entries")
            shape = values[0].shape[:d] + (len(values),) + values[0].shape[d:]
            buf = self._np_bufs[sig] = np.empty(shape, dtype=np.result_type(*values))
        np.stack(values, axis=self.dim, out=buf)
        if self._del_keys:
            for k in self.in_keys:
                arrays.pop(k, None)
        arrays[self.out_keys[0]] = buf
        return arrays

    # ------------------------------------------------------------------ specs
    def _transform_spec(self, spec):
        if not isinstance(spec, Composite):
            raise TypeError(f"{self}: only Composite specs can be transformed, got {type(spec).__name__}")
        keys = [k for k in self.in_keys if k in spec]
        if not keys:
            return spec
        spec[self.out_keys[0]] = stack_specs([spec[k] for k in keys], self.dim)
        if self._del_keys:
            for k in keys:
                del spec[k]
            for parent in self._maybe_del_parent_keys:
                sub = spec.get(parent)
                if isinstance(sub, Composite) and len(sub) == 0:
                    del spec[parent]
        return spec

    def transform_output_spec(self, output_spec):
        obs = output_spec["full_observation_spec"]
        leaves = all(k in obs and not isinstance(obs[k], Composite) for k in self.in_keys)
        set_plain(self, "_leaf_inputs", leaves)
        return super().transform_output_spec(output_spec)

    def transform_observation_spec(self, observation_spec):
        return self._transform_spec(observation_spec)

    def transform_reward_spec(self, reward_spec):
        return self._transform_spec(reward_spec)

    def transform_done_spec(self, done_spec):
        return self._transform_spec(done_spec)

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        for part in ("full_state_spec", "full_action_spec"):
            if part in input_spec.keys():
                self._transform_spec(input_spec[part])
        return input_spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_keys={self.in_keys}, out_key={self.out_keys[0]}, dim={self.dim})"
