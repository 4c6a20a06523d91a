"""Shape transforms: ``UnsqueezeTransform``, ``SqueezeTransform``, ``FlattenObservation``.

Same constructors, defaults and specs as TorchRL 0.14.1. These transforms
move no data: on both the array path and the TensorDict path the output is
a reshaped view of the input (a copy only where the input's strides do not
allow a view), so there is no kernel to call.

Dims are negative (counted from the end, so the same transform works for
any batch size) unless ``allow_positive_dim=True``; a positive dim counts
from the first feature dim, i.e. after the batch dims of the env the
transform belongs to (after none when it is used on its own), as in TorchRL.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"obs": torch.zeros(5, 3)}, [5])
    >>> UnsqueezeTransform(-2, in_keys=["obs"])(td)["obs"].shape
    torch.Size([5, 1, 3])
"""
from __future__ import annotations

import numpy as np
import torch

from .keyed_array import KeyedArrayTransform, check_bool, check_int, env_batch_ndim, mapped_spec

__all__ = ["UnsqueezeTransform", "SqueezeTransform", "FlattenObservation"]


def _positive_rule(owner, name, value):
    return ValueError(f"{owner} requires {name} < 0 (counted from the end, so that any batch size works), got "
                      f"{value}; pass allow_positive_dim=True to count from the first feature dim")


class _ReshapeTransform(KeyedArrayTransform):
    """Forward (and inverse) reshape of each key; subclasses give ``_fwd_shape`` / ``_inv_shape``."""

    def _offset(self) -> int:
        return env_batch_ndim(self)

    def _fwd_shape(self, shape, offset):
        raise NotImplementedError

    def _inv_shape(self, shape, offset):
        raise NotImplementedError

    def _needs_offset(self) -> bool:
        return False

    # -------------------------------------------------------------- arrays
    def _np_step(self, arrays: dict) -> dict:
        offset = self._offset() if self._needs_offset() else 0
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            x = arrays.get(in_key)
            if x is None:
                self._np_missing(in_key, arrays)
                continue
            arrays[out_key] = np.reshape(x, self._fwd_shape(x.shape, offset))
        return arrays

    def _np_inv(self, arrays: dict) -> dict:
        offset = self._offset() if self._needs_offset() else 0
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            x = arrays.get(out_key)
            if x is None:
                self._np_missing(out_key, arrays)
                continue
            x = np.asarray(x)
            arrays[in_key] = np.reshape(x, self._inv_shape(x.shape, offset))
        return arrays

    # --------------------------------------------------------- tensordicts
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        offset = self._offset() if self._needs_offset() else 0
        return value.reshape(self._fwd_shape(value.shape, offset))

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        offset = self._offset() if self._needs_offset() else 0
        return value.reshape(self._inv_shape(value.shape, offset))

    # --------------------------------------------------------------- specs
    def _spec_fwd(self, spec, offset):
        raise NotImplementedError

    def _spec(self, spec, composite):
        return self._spec_fwd(spec, len(composite.shape))

    def transform_input_spec(self, input_spec):
        return self._map_inverse_specs(input_spec.clone(), lambda spec, part: self._spec_fwd(spec, len(part.shape)))


class _DimTransform(_ReshapeTransform):
    """Shared constructor and positions of Unsqueeze / Squeeze."""

    def __init__(self, dim=None, *, allow_positive_dim: bool = False, in_keys=None, out_keys=None,
                 in_keys_inv=None, out_keys_inv=None):
        owner = type(self).__name__
        if dim is None:
            raise TypeError(f"{owner} requires dim to be an int, got None")
        dim = check_int(dim, owner, "dim")
        allow_positive_dim = check_bool(allow_positive_dim, owner, "allow_positive_dim")
        if dim >= 0 and not allow_positive_dim:
            raise _positive_rule(owner, "dim", dim)
        super().__init__(in_keys=in_keys, out_keys=out_keys, in_keys_inv=in_keys_inv, out_keys_inv=out_keys_inv)
        self._dim = dim
        self.allow_positive_dim = allow_positive_dim

    @property
    def dim(self) -> int:
        return self._dim

    def _needs_offset(self) -> bool:
        return self._dim >= 0

    def _unsqueezed(self, shape, offset):
        shape = tuple(shape)
        n = len(shape)
        d = self._dim + offset if self._dim >= 0 else n + 1 + self._dim
        if not 0 <= d <= n:
            raise ValueError(f"{type(self).__name__} cannot insert a dim at {self._dim} into shape {shape} "
                             f"(allowed: {-(n + 1)} to -1)")
        return shape[:d] + (1,) + shape[d:], d

    def _squeezed(self, shape, offset):
        shape = tuple(shape)
        n = len(shape)
        d = self._dim + offset if self._dim >= 0 else n + self._dim
        if not 0 <= d < n:
            raise ValueError(f"{type(self).__name__} cannot squeeze dim {self._dim} of shape {shape} "
                             f"(allowed: {-n} to -1)")
        if shape[d] != 1:  # as torch.squeeze: a dim of another size stays
            return shape, None
        return shape[:d] + shape[d + 1:], d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self._dim}, in_keys={self.in_keys}, in_keys_inv={self.in_keys_inv})"


class UnsqueezeTransform(_DimTransform):
    """Insert a dim of size 1 at ``dim`` (and remove it from actions in the inverse).

    Args:
        dim: where the new dim goes in the output, negative unless
            ``allow_positive_dim``.
        allow_positive_dim: keyword-only; count a non-negative ``dim`` from the
            first feature dim (see the module docstring).
        in_keys, out_keys: forward keys (default: none).
        in_keys_inv, out_keys_inv: inverse keys: what the policy writes at
            ``out_keys_inv`` loses the dim before the env reads ``in_keys_inv``.

    Raises:
        TypeError: ``dim`` missing or not an int, bad keys.
        ValueError: ``dim >= 0`` without ``allow_positive_dim``; at run time,
            a ``dim`` out of range for the tensor.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = UnsqueezeTransform(-1, in_keys=["obs"], out_keys=["obs1"])
        >>> t(TensorDict({"obs": torch.zeros(4, 3)}, [4]))["obs1"].shape
        torch.Size([4, 3, 1])
    """

    def _fwd_shape(self, shape, offset):
        return self._unsqueezed(shape, offset)[0]

    def _inv_shape(self, shape, offset):
        return self._squeezed(shape, offset)[0]

    def _spec_fwd(self, spec, offset):
        shape, d = self._unsqueezed(spec.shape, offset)
        return mapped_spec(spec, shape, lambda t: t.unsqueeze(d), "UnsqueezeTransform")


class SqueezeTransform(_DimTransform):
    """Remove the dim ``dim`` when its size is 1 (as ``torch.squeeze``; other sizes are left alone).

    The inverse inserts the dim into what the policy writes.

    Args:
        dim: the dim to remove, negative unless ``allow_positive_dim``.
        allow_positive_dim: keyword-only; see ``UnsqueezeTransform``.
        in_keys, out_keys, in_keys_inv, out_keys_inv: as ``UnsqueezeTransform``.

    Raises:
        TypeError: ``dim`` missing or not an int, bad keys.
        ValueError: ``dim >= 0`` without ``allow_positive_dim``; at run time,
            a ``dim`` out of range for the tensor.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = SqueezeTransform(-1, in_keys=["reward"])
        >>> t(TensorDict({"reward": torch.zeros(4, 1)}, [4]))["reward"].shape
        torch.Size([4])
    """

    def _fwd_shape(self, shape, offset):
        return self._squeezed(shape, offset)[0]

    def _inv_shape(self, shape, offset):
        return self._unsqueezed(shape, offset)[0]

    def _spec_fwd(self, spec, offset):
        shape, d = self._squeezed(spec.shape, offset)
        if d is None:
            return mapped_spec(spec, shape, lambda t: t.clone(), "SqueezeTransform")
        return mapped_spec(spec, shape, lambda t: t.squeeze(d), "SqueezeTransform")


class FlattenObservation(_ReshapeTransform):
    """Merge the dims ``first_dim`` to ``last_dim`` (both included) into one.

    Args:
        first_dim, last_dim: the range to merge, negative unless
            ``allow_positive_dim``.
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.
        allow_positive_dim: count non-negative dims from the first feature
            dim (see the module docstring).

    Raises:
        TypeError: a dim that is not an int, bad keys.
        ValueError: a non-negative dim without ``allow_positive_dim``,
            ``first_dim > last_dim``; at run time, dims out of range.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = FlattenObservation(-3, -1)
        >>> t(TensorDict({"pixels": torch.zeros(2, 4, 84, 84)}, [2]))["pixels"].shape
        torch.Size([2, 28224])
    """

    def __init__(self, first_dim: int, last_dim: int, in_keys=None, out_keys=None, allow_positive_dim: bool = False):
        owner = "FlattenObservation"
        first_dim = check_int(first_dim, owner, "first_dim")
        last_dim = check_int(last_dim, owner, "last_dim")
        allow_positive_dim = check_bool(allow_positive_dim, owner, "allow_positive_dim")
        if not allow_positive_dim:
            for name, value in (("first_dim", first_dim), ("last_dim", last_dim)):
                if value >= 0:
                    raise _positive_rule(owner, name, value)
        if (first_dim < 0) == (last_dim < 0) and first_dim > last_dim:
            raise ValueError(f"{owner} requires first_dim <= last_dim, got {first_dim} and {last_dim}")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.first_dim = first_dim
        self.last_dim = last_dim
        self.allow_positive_dim = allow_positive_dim

    def _needs_offset(self) -> bool:
        return self.first_dim >= 0 or self.last_dim >= 0

    def _range(self, shape, offset):
        n = len(shape)
        f = self.first_dim + offset if self.first_dim >= 0 else n + self.first_dim
        last = self.last_dim + offset if self.last_dim >= 0 else n + self.last_dim
        if not 0 <= f <= last < n:
            raise ValueError(f"FlattenObservation cannot flatten dims {self.first_dim} to {self.last_dim} of shape "
                             f"{tuple(shape)}")
        return f, last

    def _fwd_shape(self, shape, offset):
        shape = tuple(shape)
        f, last = self._range(shape, offset)
        return shape[:f] + (int(np.prod(shape[f:last + 1], dtype=np.int64)),) + shape[last + 1:]

    def _spec_fwd(self, spec, offset):
        f, last = self._range(spec.shape, offset)
        return mapped_spec(spec, self._fwd_shape(spec.shape, offset), lambda t: t.flatten(f, last),
                           "FlattenObservation")

    def __repr__(self) -> str:
        return f"FlattenObservation(first_dim={self.first_dim}, last_dim={self.last_dim}, in_keys={self.in_keys})"
