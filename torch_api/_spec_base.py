"""Base of the tensor specs: argument checks, spaces, masked sampling and ``TensorSpec``.

Each spec holds its ``shape``, ``dtype``, ``device`` and ``domain`` plus a few
"aux" tensors (bounds, masks, ``nvec``) whose leading dims are the spec's batch
dims. Shape operations (``expand``, indexing, ``squeeze``, ``unsqueeze``,
``unbind``, ``to``) apply one function to every aux tensor, so each class only
says what its aux tensors are. ``OneHot``, ``MultiOneHot`` and
``MultiCategorical`` keep their last dim as a feature dim that shape operations
leave alone. Sampling, membership and projection are vectorised torch
operations; the per-call Python work is a few attribute reads.
"""
from __future__ import annotations

import operator

import numpy as np
import torch

__all__ = ["TensorSpec", "ContinuousBox", "CategoricalBox", "BoxList"]

_EMPTY = torch.Size([])
_CPU = torch.device("cpu")


# ----------------------------------------------------------------- argument checks
def _as_shape(shape, owner, default=None, name="shape"):
    """``shape`` as a torch.Size; TypeError / ValueError naming ``owner``."""
    if shape is None:
        return default
    if isinstance(shape, torch.Size):
        dims = tuple(shape)
    elif isinstance(shape, (tuple, list)):
        try:
            dims = tuple(operator.index(s) for s in shape)
        except TypeError:
            raise TypeError(f"{owner} requires {name} to be an int or a sequence of ints, got {shape!r}") from None
        if any(isinstance(s, bool) for s in shape):
            raise TypeError(f"{owner} requires {name} to be an int or a sequence of ints, got {shape!r}")
    elif isinstance(shape, bool) or not hasattr(shape, "__index__"):
        raise TypeError(f"{owner} requires {name} to be an int or a sequence of ints, got {shape!r}")
    else:
        dims = (operator.index(shape),)
    if any(s < 0 for s in dims):
        raise ValueError(f"{owner} requires {name} to have no negative dims, got {dims}")
    return torch.Size(dims)


def _as_dtype(dtype, owner, default):
    """``dtype`` (torch dtype, its name, or a NumPy dtype) as a torch.dtype."""
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype[6:] if dtype.startswith("torch.") else dtype, None)
        if isinstance(found, torch.dtype):
            return found
        raise ValueError(f"{owner} requires dtype to be a torch.dtype or its name, got {dtype!r}")
    if isinstance(dtype, (type, np.dtype)):
        try:
            return torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype
        except TypeError:
            pass
    raise TypeError(f"{owner} requires dtype to be a torch.dtype, got {dtype!r}")


def _as_device(device, owner, default=_CPU):
    """``device`` (torch.device, str or int) as a torch.device."""
    if device is None:
        return default
    if isinstance(device, torch.device):
        return device
    if isinstance(device, (str, int)) and not isinstance(device, bool):
        try:
            return torch.device(device)
        except RuntimeError:
            raise ValueError(f"{owner} requires a valid device, got {device!r}") from None
    raise TypeError(f"{owner} requires device to be a torch.device, str or int, got {device!r}")


def _reject_kwargs(owner, kwargs):
    for old, new in (("minimum", "low"), ("maximum", "high")):
        if old in kwargs:
            raise TypeError(f"{owner} got {old!r}, which has been removed: use {new!r} instead")
    raise TypeError(f"{owner} got unexpected keyword arguments {sorted(kwargs)}")


def _lead(shape):
    """Extra leading shape for rand / zero / one."""
    if shape is None:
        return _EMPTY
    if isinstance(shape, int):
        return torch.Size((shape,))
    return torch.Size(shape)


def _expand_arg(shape):
    """Accept ``expand(4, 3)``, ``expand((4, 3))`` and ``expand(torch.Size([4, 3]))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _expanded_shape(spec, shape):
    """Check and resolve the argument of ``expand`` against ``spec.shape``; returns the new full shape.

    torch's rule: the new shape has at least as many dims as the spec; each of
    the spec's dims is kept (equal size, or ``-1``) or, when it is 1,
    broadcast to the new size; new leading dims must be non-negative.
    """
    shape = _expand_arg(shape)
    own = tuple(spec.shape)
    nd = len(own)
    if len(shape) < nd:
        raise ValueError(
            f"{type(spec).__name__}.expand requires at least {nd} dims (the spec shape {own}), got {shape}")
    lead, tail = shape[:len(shape) - nd], shape[len(shape) - nd:]
    resolved = []
    for t, o in zip(tail, own):
        if t == -1 or t == o:
            resolved.append(o)
        elif o == 1 and t >= 0:
            resolved.append(t)
        else:
            raise ValueError(
                f"{type(spec).__name__}.expand requires a shape whose last {nd} dims match the spec shape "
                f"{own} (or broadcast its size-1 dims), got {shape}")
    if any(s < 0 for s in lead):
        raise ValueError(f"{type(spec).__name__}.expand requires non-negative new leading dims, got {shape}")
    return torch.Size(lead + tuple(resolved))


def _norm_dim(dim, ndim, owner, what):
    if not -ndim <= dim < ndim:
        raise ValueError(f"{owner}.{what} requires dim in [{-ndim}, {ndim - 1}], got {dim}")
    return dim + ndim if dim < 0 else dim


def _norm_index(idx, ndim):
    """``idx`` as a tuple whose Ellipsis (if any) is spelled out over ``ndim`` dims."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    if not any(i is Ellipsis for i in idx):
        return idx
    used = 0
    for i in idx:
        if i is None or i is Ellipsis:
            continue
        if isinstance(i, torch.Tensor) and i.dtype == torch.bool:
            used += i.ndim
        elif isinstance(i, np.ndarray) and i.dtype == np.bool_:
            used += i.ndim
        else:
            used += 1
    at = next(k for k, i in enumerate(idx) if i is Ellipsis)
    return idx[:at] + (slice(None),) * max(ndim - used, 0) + idx[at + 1:]


def _short(t):
    return t.tolist() if t.numel() <= 8 else f"tensor of shape {tuple(t.shape)}"


# ----------------------------------------------------------------- masked sampling
def _masked_sample(mask, lead):
    """Uniform draw of an allowed index along the last dim of ``mask``.

    ``mask`` has shape ``S + (n,)``; the result (int64) has shape ``lead + S``.
    Random scores are drawn for every position, forbidden ones are set to -1 and
    the argmax is taken, which is uniform over the allowed positions.
    """
    if not bool(mask.any(-1).all()):
        raise ValueError("rand requires the mask to allow at least one value in every row, "
                         "got a row with no allowed value")
    scores = torch.rand(lead + mask.shape, device=mask.device)
    return scores.masked_fill_(~mask, -1.0).argmax(-1)


def _masked_contains(mask, idx):
    """Whether every index of ``idx`` (already in range) is allowed by ``mask``."""
    m = mask.expand(idx.shape + mask.shape[-1:])
    return bool(m.gather(-1, idx.long().unsqueeze(-1)).all())


def _masked_nearest(mask, idx):
    """The allowed index nearest to each of ``idx`` (ties go to the lower one)."""
    n = mask.shape[-1]
    dist = (torch.arange(n, device=mask.device) - idx.long().unsqueeze(-1)).abs().float()
    return dist.masked_fill_(~mask, float("inf")).argmin(-1)


class _Groups:
    """Layout of concatenated categorical groups of sizes ``nvec`` padded to ``max(nvec)``."""

    def __init__(self, nvec, device):
        self.nvec = list(nvec)
        self.count, self.width, self.total = len(nvec), max(nvec), sum(nvec)
        pos = [j * self.width + k for j, n in enumerate(nvec) for k in range(n)]
        self.pos = torch.tensor(pos, dtype=torch.long, device=device)

    def pad(self, x, fill):
        """``(..., total)`` to ``(..., count, width)``, padding with ``fill``."""
        out = x.new_full(x.shape[:-1] + (self.count * self.width,), fill)
        out[..., self.pos] = x
        return out.reshape(x.shape[:-1] + (self.count, self.width))

    def unpad(self, p):
        """``(..., count, width)`` back to ``(..., total)``."""
        return p.reshape(p.shape[:-2] + (self.count * self.width,)).index_select(-1, self.pos)


# ----------------------------------------------------------------- spaces
class ContinuousBox:
    """Box space of a :class:`Bounded` or :class:`Unbounded` spec.

    >>> ContinuousBox(torch.zeros(2), torch.ones(2)).high
    tensor([1., 1.])
    """

    def __init__(self, low, high):
        self.low, self.high = low, high

    def __eq__(self, other):
        return (isinstance(other, ContinuousBox) and self.low.shape == other.low.shape
                and torch.equal(self.low, other.low) and torch.equal(self.high, other.high))

    __hash__ = None

    def __repr__(self):
        def one(t):
            return (f"Tensor(shape={t.shape}, device={t.device}, dtype={t.dtype}, "
                    f"contiguous={t.is_contiguous()})")
        return f"ContinuousBox(\n    low={one(self.low)},\n    high={one(self.high)})"


class CategoricalBox:
    """Space of ``n`` categories, as held by :class:`Categorical` and :class:`OneHot`.

    >>> CategoricalBox(4)
    CategoricalBox(n=4)
    """

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, CategoricalBox) and self.n == other.n

    __hash__ = None

    def __repr__(self):
        return f"CategoricalBox(n={self.n})"


class BoxList:
    """List of :class:`CategoricalBox`, the space of multi-categorical specs.

    >>> BoxList([CategoricalBox(2), CategoricalBox(3)])
    BoxList(boxes=[CategoricalBox(n=2), CategoricalBox(n=3)])
    """

    def __init__(self, boxes):
        self.boxes = list(boxes)

    def __eq__(self, other):
        return isinstance(other, BoxList) and self.boxes == other.boxes

    __hash__ = None

    def __repr__(self):
        return f"BoxList(boxes={self.boxes!r})"


# ----------------------------------------------------------------- base
class TensorSpec:
    """Abstract base of all specs: shape, dtype, device, domain and shape algebra.

    Subclasses name their aux tensors in ``_aux`` (leading dims = batch dims)
    and their trailing feature dims in ``_feature_ndim``.

    >>> from numbarl.torch_api.specs import TensorSpec, Unbounded
    >>> spec = Unbounded(shape=(3,))
    >>> isinstance(spec, TensorSpec), spec.ndim
    (True, 1)
    """

    _aux = ()
    _feature_ndim = 0
    _eq_attrs = ()
    __hash__ = None

    # ---- construction helpers
    def _derive(self, shape, fn=None, device=None):
        """Copy of ``self`` with ``shape`` and every aux tensor mapped by ``fn``."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.shape = torch.Size(shape)
        if device is not None:
            new.device = device
        if fn is not None:
            for name in self._aux:
                t = self.__dict__.get(name)
                if t is not None:
                    new.__dict__[name] = fn(t)  # an aux tensor (see _aux), mapped like the spec
        new._refresh()
        return new

    def _refresh(self):
        """Drop caches derived from the aux tensors."""

    # ---- basic properties
    @property
    def ndim(self):
        return len(self.shape)

    def ndimension(self):
        """Number of dims of ``shape``."""
        return len(self.shape)

    @property
    def _batch_ndim(self):
        return len(self.shape) - self._feature_ndim

    # ---- values
    def rand(self, shape=None):
        """Random value in the space, with extra leading dims ``shape``."""
        raise NotImplementedError

    def sample(self, shape=None):
        """A random value in the space: the same as :meth:`rand` (TorchRL's alias)."""
        return self.rand(shape)

    def zero(self, shape=None):
        """Zeros of the spec's dtype and device, with extra leading dims ``shape``."""
        return torch.zeros(_lead(shape) + self.shape, dtype=self.dtype, device=self.device)

    def one(self, shape=None):
        """Ones of the spec's dtype and device, with extra leading dims ``shape``."""
        return torch.ones(_lead(shape) + self.shape, dtype=self.dtype, device=self.device)

    def zeros(self, shape=None):
        """Same as ``zero`` (TorchRL's alias); a Composite gives a TensorDict.

        >>> from numbarl.torch_api import Composite, Unbounded
        >>> Composite(a=Unbounded(3)).zeros()["a"]
        tensor([0., 0., 0.])
        """
        return self.zero(shape)

    def ones(self, shape=None):
        """Same as ``one`` (TorchRL's alias)."""
        return self.one(shape)

    def is_in(self, val):
        """Whether ``val`` is a tensor of the spec's dtype, shape (leading batch dims allowed) and space."""
        if not isinstance(val, torch.Tensor) or val.dtype != self.dtype:
            return False
        nd = len(self.shape)
        if nd and (val.ndim < nd or val.shape[val.ndim - nd:] != self.shape):
            return False
        return self._values_in(val)

    def _values_in(self, val):
        return True

    def assert_is_in(self, value):
        """Raise AssertionError unless ``is_in(value)``."""
        if not self.is_in(value):
            raise AssertionError(f"value is not in the {type(self).__name__} space; call project(val) "
                                 f"first. value={value!r}, spec={self!r}")

    def project(self, val):
        """The value of the space nearest to ``val``, in the spec's dtype."""
        return torch.as_tensor(val, device=self.device).to(self.dtype)

    def encode(self, val, *, ignore_device=False):
        """``val`` (array, list, scalar or tensor) as a tensor of the spec's dtype, device and shape."""
        t = torch.as_tensor(val, dtype=self.dtype, device=None if ignore_device else self.device)
        return t if t.shape == self.shape else self._fit(t)

    def _fit(self, t):
        """Accept leading batch dims, or any value with as many elements as the spec."""
        shape, nd = self.shape, len(self.shape)
        if t.ndim >= nd and t.shape[t.ndim - nd:] == shape:
            return t
        if t.numel() == shape.numel():
            return t.reshape(shape)
        raise ValueError(f"{type(self).__name__}.encode requires a value of shape {tuple(shape)} "
                         f"(optionally with leading batch dims), got shape {tuple(t.shape)}")

    def to_numpy(self, val, safe=None):
        """``val`` as a NumPy array (checked against the space when ``safe``)."""
        if safe:
            self.assert_is_in(val)
        return val.detach().cpu().numpy()

    # ---- shape algebra
    def expand(self, *shape):
        """Spec with extra leading dims and/or size-1 dims broadcast, as ``torch.Tensor.expand``.

        >>> from numbarl.torch_api import Unbounded
        >>> Unbounded((1, 1)).expand(6, 1).shape
        torch.Size([6, 1])
        """
        new = _expanded_shape(self, shape)
        own = self.shape
        lead = new[:len(new) - len(own)]
        # aux tensors shaped like the spec broadcast with it; others (e.g. a per-feature nvec) get the new lead
        return self._derive(new, lambda t: t.expand(new) if t.shape == own else t.expand(lead + t.shape))

    def __getitem__(self, idx):
        """Spec of ``value[idx]``, indexing the batch dims as torch does."""
        bnd = self._batch_ndim
        idx = _norm_index(idx, bnd)
        dummy = torch.zeros((), device=self.device).expand(self.shape[:bnd])
        return self._derive(dummy[idx].shape + self.shape[bnd:], lambda t: t[idx])

    def squeeze(self, dim=None):
        """Remove size-1 batch dims (all of them, or ``dim``)."""
        bnd, shape = self._batch_ndim, self.shape
        if dim is None:
            keep = [i for i in range(bnd) if shape[i] != 1]
        else:
            d = _norm_dim(dim, len(shape), type(self).__name__, "squeeze")
            if d >= bnd:
                raise ValueError(f"{type(self).__name__}.squeeze cannot remove the feature dim {dim}")
            keep = [i for i in range(bnd) if i != d or shape[i] != 1]
        new = torch.Size([shape[i] for i in keep])
        return self._derive(new + shape[bnd:], lambda t: t.reshape(new + t.shape[bnd:]))

    def unsqueeze(self, dim):
        """Insert a size-1 dim at ``dim`` (before any feature dim)."""
        bnd = self._batch_ndim
        d = _norm_dim(dim, len(self.shape) + 1, type(self).__name__, "unsqueeze")
        if d > bnd:
            raise ValueError(f"{type(self).__name__}.unsqueeze requires dim to come before the "
                             f"feature dim, got {dim}")
        return self._derive(self.shape[:d] + (1,) + self.shape[d:], lambda t: t.unsqueeze(d))

    def unbind(self, dim=0):
        """Tuple of the specs along batch dim ``dim``."""
        d = _norm_dim(dim, len(self.shape), type(self).__name__, "unbind")
        if d >= self._batch_ndim:
            raise ValueError(f"{type(self).__name__}.unbind cannot split the feature dim {dim}")
        pre = (slice(None),) * d
        return tuple(self[pre + (i,)] for i in range(self.shape[d]))

    def clone(self):
        """Deep copy."""
        return self._derive(self.shape, torch.Tensor.clone)

    def to(self, dest):
        """Spec cast to a dtype or moved to a device; ``self`` when nothing changes."""
        if isinstance(dest, str) and isinstance(getattr(torch, dest, None), torch.dtype):
            dest = getattr(torch, dest)
        if isinstance(dest, torch.dtype):
            return self if dest == self.dtype else self._to_dtype(dest)
        device = _as_device(dest, f"{type(self).__name__}.to")
        if device == self.device:
            return self
        return self._derive(self.shape, lambda t: t.to(device), device=device)

    def _to_dtype(self, dtype):
        new = self._derive(self.shape)
        new.dtype = dtype
        return new

    def cpu(self):
        """``self.to("cpu")``."""
        return self.to("cpu")

    def cuda(self, device=None):
        """``self.to("cuda")``."""
        return self.to("cuda" if device is None else torch.device("cuda", device))

    # ---- comparison and display
    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        if (self.shape != other.shape or self.dtype != other.dtype or self.device != other.device
                or self.domain != other.domain):
            return False
        if any(getattr(self, a) != getattr(other, a) for a in self._eq_attrs):
            return False
        for name in self._aux:
            a, b = self.__dict__.get(name), other.__dict__.get(name)
            if (a is None) != (b is None):
                return False
            if a is not None and (a.shape != b.shape or not torch.equal(a, b)):
                return False
        return True

    def _space_repr(self):
        return repr(self.space).replace("\n", "\n    ")

    def __repr__(self):
        return (f"{type(self).__name__}(\n    shape={self.shape},\n    space={self._space_repr()},\n"
                f"    device={self.device},\n    dtype={self.dtype},\n    domain={self.domain})")
