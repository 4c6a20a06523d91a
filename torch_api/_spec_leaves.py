"""Leaf tensor specs: the spaces of single tensors (bounded, unbounded, categorical, non-tensor).

The multi-categorical specs are in ``_spec_multi``."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from ._spec_base import (
    _EMPTY, CategoricalBox, ContinuousBox, TensorSpec, _as_device, _as_dtype, _as_shape, _lead, _masked_contains, _masked_nearest, _masked_sample, _reject_kwargs, _short,
)

__all__ = [
    "Bounded", "BoundedContinuous", "BoundedDiscrete",
    "Unbounded", "UnboundedContinuous", "UnboundedDiscrete",
    "Categorical", "Binary", "OneHot", "NonTensor",
]


# ----------------------------------------------------------------- bounded / unbounded
def _dispatch_new(base, cont, disc, args, kwargs, dtype_pos, default=None):
    """Pick the continuous or discrete subclass from the dtype / domain arguments."""
    dtype = kwargs.get("dtype", args[dtype_pos] if len(args) > dtype_pos else None)
    dtype = _as_dtype(dtype, base.__name__, default or torch.get_default_dtype())
    domain = kwargs.get("domain")
    if domain is None:
        return cont if dtype.is_floating_point or dtype.is_complex else disc
    return disc if domain == "discrete" else cont


class Bounded(TensorSpec):
    """A tensor whose entries lie in ``[low, high]`` (both ends included).

    ``Bounded(...)`` returns a :class:`BoundedContinuous` for floating dtypes and
    a :class:`BoundedDiscrete` for integer and bool dtypes (or as ``domain``
    says). ``low`` and ``high`` broadcast to ``shape``; when ``shape`` is left
    out it is taken from them. Integer ``rand`` draws uniformly from
    ``low..high`` with ``high`` included.

    Args:
        low, high: numbers, arrays or tensors broadcastable to ``shape``.
        shape: int or sequence of ints; required when low and high are scalars.
        device: default cpu. dtype: default ``torch.get_default_dtype()``.
        domain: "continuous" or "discrete"; default from the dtype.

    Raises:
        TypeError: low / high / shape / dtype / device of the wrong type.
        ValueError: low > high somewhere, or shapes that do not broadcast.

    >>> spec = Bounded(-1.0, 1.0, shape=(2,))
    >>> type(spec).__name__, spec.low, spec.is_in(torch.tensor([0.5, -1.0]))
    ('BoundedContinuous', tensor([-1., -1.]), True)
    >>> Bounded(0, 5, shape=(3,), dtype=torch.int64).project(torch.tensor([-2, 3, 9]))
    tensor([0, 3, 5])
    """

    _aux = ("_low", "_high")
    _default_domain = None

    def __new__(cls, *args, **kwargs):
        if cls is Bounded:
            cls = _dispatch_new(Bounded, BoundedContinuous, BoundedDiscrete, args, kwargs, 4)
        return super().__new__(cls)

    def __init__(self, low=None, high=None, shape=None, device=None, dtype=None, domain=None, **kwargs):
        owner = type(self).__name__
        if kwargs:
            _reject_kwargs(owner, kwargs)
        dtype = _as_dtype(dtype, owner, torch.get_default_dtype())
        device = _as_device(device, owner)
        if domain is None:
            domain = self._default_domain or ("continuous" if dtype.is_floating_point else "discrete")
        elif domain not in ("continuous", "discrete"):
            raise ValueError(f"{owner} requires domain 'continuous' or 'discrete', got {domain!r}")
        bounds = []
        for name, v in (("low", low), ("high", high)):
            try:
                if v is None or isinstance(v, str):
                    raise TypeError
                bounds.append(torch.as_tensor(v, device=device))
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"{owner} requires {name} to be a number, array or tensor, got {v!r}") from None
        lo, hi = bounds
        shape = _as_shape(shape, owner)
        try:
            common = torch.broadcast_shapes(lo.shape, hi.shape, *(() if shape is None else (shape,)))
        except RuntimeError:
            common = None
        if shape is None:
            if common is None or len(common) == 0:
                raise ValueError(f"{owner} requires shape when low and high are scalars or do not "
                                 f"broadcast, got low shape {tuple(lo.shape)} and high shape "
                                 f"{tuple(hi.shape)}; pass shape=() for a scalar spec")
            shape = common
        elif common != shape:
            raise ValueError(f"{owner} requires low and high to broadcast to shape {tuple(shape)}, got "
                             f"low shape {tuple(lo.shape)} and high shape {tuple(hi.shape)}")
        self._low = lo.to(dtype).expand(shape).clone()
        self._high = hi.to(dtype).expand(shape).clone()
        if not bool((self._low <= self._high).all()):
            raise ValueError(f"{owner} requires low <= high everywhere (and no NaN), got "
                             f"low={_short(self._low)} and high={_short(self._high)}")
        self.shape, self.device, self.dtype, self.domain = shape, device, dtype, domain
        self._refresh()

    def _refresh(self):
        self._span = None
        self._ints = None

    @property
    def low(self):
        return self._low

    @property
    def high(self):
        return self._high

    @property
    def space(self):
        return ContinuousBox(self._low, self._high)

    def rand(self, shape=None):
        full = _lead(shape) + self.shape
        low, high, dtype = self._low, self._high, self.dtype
        if dtype.is_floating_point:
            span = self._span
            if span is None:
                span = self._span = high - low
                self._finite = bool(torch.isfinite(span).all())
            if not self._finite:
                return self._rand_wide(full)
            out = torch.addcmul(low, torch.rand(full, dtype=dtype, device=self.device), span)
            return out.clamp_(min=low, max=high)
        if dtype == torch.bool:
            out = torch.rand(full, device=self.device) < 0.5
            return (out & high) | low
        ints = self._ints
        if ints is None:
            lo64, hi64 = low.long(), high.long()
            a, b, c, d = (int(x) for x in (lo64.min(), lo64.max(), hi64.min(), hi64.max()))
            ints = self._ints = (a, c) if a == b and c == d and c - a < 2 ** 62 else False
        if ints:
            return torch.randint(ints[0], ints[1] + 1, full, device=self.device).to(dtype)
        lo64 = low.double()
        out = torch.rand(full, dtype=torch.float64, device=self.device).mul_(high.double() - lo64 + 1)
        out = out.floor_().add_(lo64).to(dtype)
        return torch.minimum(out, high)

    def _rand_wide(self, full):
        """Sampling where some bounds are infinite or the range overflows the dtype."""
        low, high = self._low.double(), self._high.double()
        u = torch.rand(full, dtype=torch.float64, device=self.device)
        out = low + u * (high - low)
        n = torch.randn(full, dtype=torch.float64, device=self.device)
        lo_inf, hi_inf = torch.isinf(low), torch.isinf(high)
        out = torch.where(lo_inf & ~hi_inf, high - n.abs(), out)
        out = torch.where(hi_inf & ~lo_inf, low + n.abs(), out)
        out = torch.where(lo_inf & hi_inf, n, out)
        return out.to(self.dtype).clamp_(min=self._low, max=self._high)

    def _values_in(self, val):
        return bool(((val >= self._low) & (val <= self._high)).all())

    def project(self, val):
        val = torch.as_tensor(val, device=self.device)
        low, high, dtype = self._low, self._high, self.dtype
        if dtype == torch.bool:
            return (val.bool() & high) | low
        if val.dtype != dtype:
            if val.is_floating_point() and not dtype.is_floating_point:
                val = val.round()
            if val.dtype != torch.bool:
                val = torch.clamp(val, low.to(val.dtype), high.to(val.dtype))
            val = val.to(dtype)
        return torch.clamp(val, low, high)

    def _to_dtype(self, dtype):
        return Bounded(self._low, self._high, self.shape, self.device, dtype)


class BoundedContinuous(Bounded):
    """:class:`Bounded` spec of the continuous domain (float dtypes).

    >>> BoundedContinuous(0.0, 1.0, shape=(2,)).domain
    'continuous'
    """

    _default_domain = "continuous"


class BoundedDiscrete(Bounded):
    """:class:`Bounded` spec of the discrete domain (integer and bool dtypes).

    >>> BoundedDiscrete(0, 3, shape=(2,), dtype=torch.int64).rand().dtype
    torch.int64
    """

    _default_domain = "discrete"


class Unbounded(TensorSpec):
    """A tensor of any value of its dtype.

    ``Unbounded(...)`` returns an :class:`UnboundedContinuous` for floating
    dtypes and an :class:`UnboundedDiscrete` otherwise. ``rand`` draws from a
    standard normal for floats, from ``[0, max]`` of the dtype for integers
    and uniformly for bool. ``space`` holds the finite dtype limits.

    Args:
        shape: int or sequence of ints, default ``(1,)``.
        device: default cpu. dtype: default ``torch.get_default_dtype()``.

    >>> spec = Unbounded(shape=(2,))
    >>> type(spec).__name__, spec.zero(), spec.is_in(torch.tensor([1e30, -5.0]))
    ('UnboundedContinuous', tensor([0., 0.]), True)
    """

    _default_dtype = None

    def __new__(cls, *args, **kwargs):
        if issubclass(cls, Unbounded):
            cls = _dispatch_new(Unbounded, UnboundedContinuous, UnboundedDiscrete, args, kwargs, 2,
                                cls._default_dtype)
        return super().__new__(cls)

    def __init__(self, shape=torch.Size([1]), device=None, dtype=None, **kwargs):
        owner = type(self).__name__
        domain = kwargs.pop("domain", None)
        if kwargs:
            _reject_kwargs(owner, kwargs)
        dtype = _as_dtype(dtype, owner, self._default_dtype or torch.get_default_dtype())
        self.shape = _as_shape(shape, owner, torch.Size([1]))
        self.device = _as_device(device, owner)
        self.dtype = dtype
        self.domain = domain or ("continuous" if dtype.is_floating_point else "discrete")

    @property
    def space(self):
        dtype = self.dtype
        if dtype == torch.bool:
            lo, hi = False, True
        else:
            info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
            lo, hi = info.min, info.max
        return ContinuousBox(torch.full(self.shape, lo, dtype=dtype, device=self.device),
                             torch.full(self.shape, hi, dtype=dtype, device=self.device))

    def rand(self, shape=None):
        full, dtype = _lead(shape) + self.shape, self.dtype
        if dtype.is_floating_point:
            return torch.randn(full, dtype=dtype, device=self.device)
        if dtype == torch.bool:
            return torch.rand(full, device=self.device) < 0.5
        hi = torch.iinfo(dtype).max
        return torch.randint(0, hi if dtype == torch.int64 else hi + 1, full,
                             device=self.device).to(dtype)

    def _to_dtype(self, dtype):
        return Unbounded(self.shape, self.device, dtype)


class UnboundedContinuous(Unbounded):
    """:class:`Unbounded` spec of the continuous domain (an integer dtype gives :class:`UnboundedDiscrete`).

    >>> UnboundedContinuous(shape=(2,)).dtype
    torch.float32
    """



class UnboundedDiscrete(Unbounded):
    """:class:`Unbounded` spec of the discrete domain; default dtype int64.

    >>> UnboundedDiscrete(shape=(2,)).zero()
    tensor([0, 0])
    """

    _default_dtype = torch.int64


# ----------------------------------------------------------------- categorical family
def _as_n(n, owner, name="n"):
    if isinstance(n, torch.Tensor) and n.numel() == 1 and not n.is_floating_point():
        n = n.item()
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"{owner} requires {name} to be an int, got {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"{owner} requires {name} >= 1, got {n}")
    return n


def _as_mask(mask, full, device, owner):
    mask = torch.as_tensor(mask, device=device)
    if mask.dtype != torch.bool:
        mask = mask.bool()
    try:
        return mask.expand(full)
    except RuntimeError:
        raise ValueError(f"{owner}.update_mask requires a mask broadcastable to {tuple(full)}, "
                         f"got shape {tuple(mask.shape)}") from None


class Categorical(TensorSpec):
    """Integer tensor whose entries are categories ``0..n-1``.

    ``mask`` (shape ``shape + (n,)`` or broadcastable to it) marks the legal
    categories; ``rand`` then draws only legal ones and ``is_in`` rejects the
    others. ``update_mask`` replaces it at any time (``None`` clears it).

    Args:
        n: number of categories (>= 1). shape: default ``()``.
        device: default cpu. dtype: default int64. mask: optional bool tensor.

    >>> spec = Categorical(4, mask=torch.tensor([True, False, True, False]))
    >>> spec.rand((6,)).remainder(2).sum().item(), spec.is_in(torch.tensor(1))
    (0, False)
    >>> spec.to_one_hot(torch.tensor(2))
    tensor([False, False,  True, False])
    """

    _aux = ("mask",)
    _eq_attrs = ("n",)
    domain = "discrete"

    def __init__(self, n, shape=None, device=None, dtype=torch.int64, mask=None):
        owner = type(self).__name__
        self.n = _as_n(n, owner)
        self.shape = _as_shape(shape, owner, _EMPTY)
        self.device = _as_device(device, owner)
        self.dtype = _as_dtype(dtype, owner, torch.int64)
        self.domain = "discrete"
        self.mask = None
        if mask is not None:
            self.update_mask(mask)

    @property
    def space(self):
        return CategoricalBox(self.n)

    def update_mask(self, mask):
        """Set the legal categories (bool, broadcastable to ``shape + (n,)``), or clear them with None."""
        self.mask = None if mask is None else _as_mask(
            mask, self.shape + (self.n,), self.device, type(self).__name__)

    def rand(self, shape=None):
        lead = _lead(shape)
        if self.mask is not None:
            out = _masked_sample(self.mask, lead)
            return out if self.dtype == torch.int64 else out.to(self.dtype)
        if self.dtype == torch.bool:
            return torch.rand(lead + self.shape, device=self.device) < 0.5
        return torch.randint(0, self.n, lead + self.shape, dtype=self.dtype, device=self.device)

    def _values_in(self, val):
        if not bool(((val >= 0) & (val < self.n)).all()):
            return False
        return self.mask is None or _masked_contains(self.mask, val)

    def project(self, val):
        val = torch.as_tensor(val, device=self.device)
        if val.is_floating_point():
            val = val.round()
        val = val.clamp(0, self.n - 1) if val.dtype != torch.bool else val
        if self.mask is not None:
            val = _masked_nearest(self.mask, val)
        return val.to(self.dtype)

    def to_categorical(self, val, safe=None):
        """Identity: the values already are category indices."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_categorical_spec(self):
        """Identity: this spec already describes category indices."""
        return self

    def to_one_hot(self, val, safe=None):
        """One-hot bool encoding of category values."""
        if safe:
            self.assert_is_in(val)
        return F.one_hot(val.long(), self.n).bool()

    def to_one_hot_spec(self):
        """The :class:`OneHot` spec of the one-hot encoding, mask included."""
        return OneHot(self.n, self.shape + (self.n,), self.device, torch.bool, mask=self.mask)


class Binary(Categorical):
    """Tensor of 0 / 1 entries; ``n`` (the length of the last dim) or ``shape`` is required.

    Its ``space`` is ``CategoricalBox(n=2)`` and ``.n`` is 2, as in TorchRL.

    >>> spec = Binary(3)
    >>> spec.shape, spec.dtype, spec.project(torch.tensor([0.2, 0.7, -1.0]))
    (torch.Size([3]), torch.int8, tensor([0, 1, 0], dtype=torch.int8))
    """

    def __init__(self, n=None, shape=None, device=None, dtype=torch.int8):
        if n is None and shape is None:
            raise TypeError("Binary requires n or shape, got neither")
        if n is not None:
            n = _as_n(n, "Binary")
        shape = _as_shape(shape, "Binary", torch.Size([n]) if n is not None else None)
        if n is not None and (len(shape) == 0 or shape[-1] != n):
            raise ValueError(f"Binary requires shape[-1] == n, got n={n} and shape={tuple(shape)}")
        super().__init__(2, shape, device, dtype)


class OneHot(TensorSpec):
    """One-hot tensor over ``n`` categories; the last dim of ``shape`` is ``n``.

    ``encode`` takes category indices (or a bool one-hot array as is);
    ``to_numpy`` returns category indices; ``project`` takes the argmax.
    ``mask`` (shape ``shape``, or broadcastable) marks legal categories.

    Args:
        n: number of categories. shape: default ``(n,)``; must end with n.
        device: default cpu. dtype: default bool. use_register: ignored.
        mask: optional bool tensor.

    >>> spec = OneHot(3)
    >>> spec.encode(1), spec.to_categorical(torch.tensor([False, False, True]))
    (tensor([False,  True, False]), tensor(2))
    """

    _aux = ("mask",)
    _eq_attrs = ("n",)
    _feature_ndim = 1
    domain = "discrete"

    def __init__(self, n, shape=None, device=None, dtype=torch.bool, use_register=False, mask=None):
        owner = type(self).__name__
        self.n = _as_n(n, owner)
        self.shape = _as_shape(shape, owner, torch.Size([self.n]))
        if len(self.shape) == 0 or self.shape[-1] != self.n:
            raise ValueError(f"{owner} requires shape[-1] == n, got n={self.n} and shape={tuple(self.shape)}")
        self.device = _as_device(device, owner)
        self.dtype = _as_dtype(dtype, owner, torch.bool)
        self.use_register = use_register
        self.domain = "discrete"
        self.mask = None
        if mask is not None:
            self.update_mask(mask)

    @property
    def space(self):
        return CategoricalBox(self.n)

    def update_mask(self, mask):
        """Set the legal categories (bool, broadcastable to ``shape``), or clear them with None."""
        self.mask = None if mask is None else _as_mask(mask, self.shape, self.device, type(self).__name__)

    def _index(self, lead):
        if self.mask is not None:
            return _masked_sample(self.mask, lead)
        return torch.randint(0, self.n, lead + self.shape[:-1], device=self.device)

    def rand(self, shape=None):
        return F.one_hot(self._index(_lead(shape)), self.n).to(self.dtype)

    def _values_in(self, val):
        b = val if val.dtype == torch.bool else val.bool()
        if val.dtype != torch.bool and not bool(((val == 0) | (val == 1)).all()):
            return False
        if not bool((b.sum(-1) == 1).all()):
            return False
        return self.mask is None or not bool((b & ~self.mask).any())

    def project(self, val):
        val = torch.as_tensor(val, device=self.device)
        score = val.float()
        if self.mask is not None:
            score = score.masked_fill(~self.mask, float("-inf"))
        return F.one_hot(score.argmax(-1), self.n).to(self.dtype)

    def encode(self, val, *, ignore_device=False):
        t = torch.as_tensor(val, device=None if ignore_device else self.device)
        if t.dtype == torch.bool and t.shape[-1:] == self.shape[-1:]:
            return self._fit(t.to(self.dtype))
        if t.is_floating_point():
            t = t.long()
        if bool(((t < 0) | (t >= self.n)).any()):
            raise ValueError(f"{type(self).__name__}.encode requires category indices in [0, {self.n}), "
                             f"got {_short(t)}")
        return self._fit(F.one_hot(t.long(), self.n).to(self.dtype))

    def to_numpy(self, val, safe=None):
        if safe:
            self.assert_is_in(val)
        return self.to_categorical(val).detach().cpu().numpy()

    def to_one_hot(self, val, safe=None):
        """Identity: the values already are one-hot."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_one_hot_spec(self):
        """Identity: this spec already describes one-hot values."""
        return self

    def to_categorical(self, val, safe=None):
        """Category indices (int64) of one-hot values."""
        if safe:
            self.assert_is_in(val)
        return (val.to(torch.uint8) if val.dtype == torch.bool else val).argmax(-1)

    def to_categorical_spec(self):
        """The :class:`Categorical` spec of the category indices, mask included."""
        return Categorical(self.n, self.shape[:-1], self.device, torch.int64, mask=self.mask)


class NonTensor(TensorSpec):
    """Spec of non-tensor data (strings, objects): ``rand`` / ``zero`` / ``one`` return the example.

    Values are ``tensordict.NonTensorData`` with batch size = extra shape +
    ``shape``. Anything that is not a tensor is in the space.

    >>> spec = NonTensor(shape=(), example_data="hello")
    >>> spec.rand().data, spec.is_in("bye"), spec.is_in(torch.zeros(1))
    ('hello', True, False)
    """

    domain = None

    def __init__(self, shape=torch.Size([1]), device=None, dtype=None, example_data=None,
                 batched=None, feature_dims=None, **kwargs):
        owner = "NonTensor"
        if kwargs:
            _reject_kwargs(owner, kwargs)
        self.shape = _as_shape(shape, owner, torch.Size([1]))
        self.device = None if device is None else _as_device(device, owner)
        self.dtype = dtype
        self.example_data, self.batched, self.feature_dims = example_data, batched, feature_dims
        self.domain = None

    space = None

    def _data(self, data, shape):
        from tensordict import NonTensorData
        return NonTensorData(data=data, batch_size=_lead(shape) + self.shape, device=self.device)

    def rand(self, shape=None):
        return self._data(self.example_data, shape)

    zero = one = rand

    def is_in(self, val):
        return not isinstance(val, torch.Tensor)

    def project(self, val):
        return val

    def encode(self, val, *, ignore_device=False):
        return self._data(val, None)

    def to_numpy(self, val, safe=None):
        return getattr(val, "data", val)

    def _to_dtype(self, dtype):
        return self

    def __eq__(self, other):
        if type(other) is not type(self) or self.shape != other.shape or self.device != other.device:
            return False
        try:
            return bool(self.example_data == other.example_data)
        except Exception:
            return self.example_data is other.example_data

    def __repr__(self):
        return (f"NonTensor(\n    shape={self.shape},\n    space=None,\n    device={self.device},\n"
                f"    dtype={self.dtype},\n    domain=None,\n    example_data={self.example_data})")
