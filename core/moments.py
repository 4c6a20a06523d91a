"""Running moments: weighted mean and centred second moment, merged by batch.

The state is four explicit arrays (see :class:`MomentState`):

- ``loc``: weighted mean, float64, shape = feature shape;
- ``m2``: weighted centred sum of squares, float64, same shape;
- ``weight``: float64, shape (1,), the sum of the sample weights;
- ``count``: int64, shape (1,), the number of samples accepted.

The variance is ``m2 / weight`` (population variance; taken as 1 while
``weight`` is 0, so normalizing an empty state is the identity up to ``eps``).

``decay == 1`` weighs every sample the same, and then ``weight == count``.
``decay < 1`` is an exponential moving average with bias correction, kept as
weighted moments: each update first multiplies ``weight`` and ``m2`` by
``decay`` and then merges the batch with Chan's parallel formula. The batch
mean thus gets weight ``n / (decay * W + n)``; with one sample per update this
is the bias-corrected EMA, and one update over a batch of N samples equals the
merged statistics of N trackers fed one sample each. The decay is applied once
per update that accepts at least one sample.

Batch moments are shifted sums accumulated in float64, with a second pass
about the batch mean where the shifted sums would cancel; ``E[x**2] -
E[x]**2`` is never formed. Details are in ``_moments_kernels``.

Functions named ``*_unchecked`` skip argument validation, for callers that
validated the state once (the state must then be C-contiguous float64/int64
arrays of the documented shapes and x a native float32/float64 array).
"""
import numpy as np

# Absolute import: the kernels' on-disk cache records the module name, so they
# must be compiled under one name even when this file is loaded as a
# top-level module (pytest --doctest-modules core/moments.py).
from numbarl.core import _moments_kernels as _k

__all__ = [
    "MomentState",
    "NonFiniteError",
    "moments_init",
    "moments_merge",
    "moments_normalize",
    "moments_update",
    "moments_update_normalize",
]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_ONE = (1,)
_INF = float("inf")
_SKIP = {"raise": False, "skip": True}
_UNUSED = object()


class NonFiniteError(ValueError):
    """x holds NaN or inf and ``nonfinite="raise"``; the statistics are unchanged."""


class MomentState:
    """Running moments of one feature shape, as four explicit arrays.

    Args:
        loc: weighted mean, float64, feature shape.
        m2: weighted centred sum of squares, float64, feature shape.
        weight: sum of sample weights, float64, shape (1,).
        count: number of samples accepted, int64, shape (1,).

    The arrays are held, not copied, so they may be views into shared memory.

    Raises:
        TypeError: an argument is not an array of the required dtype.
        ValueError: shapes do not fit or an array is not C-contiguous.

    Examples:
        >>> import numpy as np
        >>> s = moments_init((2,))
        >>> _ = moments_update(np.array([[1.0, 2.0], [3.0, 2.0]]), *s.arrays)
        >>> s.loc, s.var, s.count
        (array([2., 2.]), array([1., 0.]), array([2]))
        >>> s.std(eps=0.5)
        array([1. , 0.5])
    """

    __slots__ = ("loc", "m2", "weight", "count")

    def __init__(self, loc, m2, weight, count):
        _check_state("MomentState", loc, m2, weight, count)
        self.loc = loc
        self.m2 = m2
        self.weight = weight
        self.count = count

    @property
    def arrays(self):
        """(loc, m2, weight, count), the argument order of the functions here."""
        return self.loc, self.m2, self.weight, self.count

    @property
    def var(self):
        """m2 / weight, or ones while weight is 0."""
        w = self.weight[0]
        if w > 0.0:
            v = self.m2.copy()
            v /= w
            return v
        return np.ones_like(self.m2)

    def std(self, eps=0.0):
        """max(sqrt(var), eps), the scale used by ``moments_normalize``."""
        v = self.var
        np.sqrt(v, out=v)
        np.maximum(v, eps, out=v)
        return v

    def copy(self):
        """A MomentState holding copies of the four arrays."""
        return MomentState(self.loc.copy(), self.m2.copy(), self.weight.copy(), self.count.copy())

    def __repr__(self):
        return f"MomentState(feature_shape={self.loc.shape}, count={int(self.count[0])}, weight={float(self.weight[0])!r})"


def moments_init(feature_shape):
    """A zeroed :class:`MomentState` for samples of ``feature_shape``.

    Args:
        feature_shape: int or tuple of non-negative ints; the size must be > 0.

    Raises:
        TypeError: feature_shape is not an int or a tuple of ints.
        ValueError: a dimension is negative or the feature size is 0.

    Examples:
        >>> s = moments_init((3,))
        >>> s.loc, s.weight, s.count
        (array([0., 0., 0.]), array([0.]), array([0]))
    """
    if isinstance(feature_shape, (int, np.integer)) and not isinstance(feature_shape, bool):
        feature_shape = (int(feature_shape),)
    if not isinstance(feature_shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in feature_shape
    ):
        raise TypeError(f"moments_init requires feature_shape as an int or a tuple of ints, got {feature_shape!r}")
    shape = tuple(int(d) for d in feature_shape)
    if any(d < 0 for d in shape) or int(np.prod(shape)) == 0:
        raise ValueError(f"moments_init requires a feature_shape with positive dimensions, got {shape}")
    return MomentState(np.zeros(shape), np.zeros(shape), np.zeros(1), np.zeros(1, dtype=np.int64))


# -- validation ---------------------------------------------------------------


def _check_state(fn, loc, m2, weight, count, writeable=True):
    """Raise on a bad state; count is not checked when None and not writeable."""
    for name, a, dt in (("loc", loc, _F64), ("m2", m2, _F64), ("weight", weight, _F64), ("count", count, _I64)):
        if a is None and not writeable:
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{fn} requires {name} as a numpy.ndarray, got {type(a).__name__}")
        if a.dtype != dt:
            raise TypeError(f"{fn} requires {name} of dtype {dt}, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{fn} requires a C-contiguous {name}; pass numpy.ascontiguousarray({name})")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{fn} requires a writeable {name}")
    if m2.shape != loc.shape:
        raise ValueError(f"{fn} requires m2 of the shape of loc {loc.shape}, got {m2.shape}")
    if loc.size == 0:
        raise ValueError(f"{fn} requires a feature size > 0, got loc of shape {loc.shape}")
    if weight.shape != (1,):
        raise ValueError(f"{fn} requires weight of shape (1,), got {weight.shape}")
    if count is not None and count.shape != (1,):
        raise ValueError(f"{fn} requires count of shape (1,), got {count.shape}")


def _check_x(fn, x, loc, batch_ndim=None):
    if type(x) is not np.ndarray:
        x = np.asarray(x)  # a base-class view of ndarray subclasses, no copy
    dt = x.dtype
    if dt != _F32 and dt != _F64:
        if dt.kind not in "fiub" or dt.itemsize > 8:
            raise TypeError(f"{fn} requires x of float32, float64, integer or bool dtype, got {dt}")
        x = x.astype(_F32 if dt.char == "f" else _F64)
    fnd = loc.ndim
    if batch_ndim is not None:
        if not isinstance(batch_ndim, (int, np.integer)) or isinstance(batch_ndim, bool):
            raise TypeError(f"{fn} requires batch_ndim as an int or None, got {batch_ndim!r}")
        if batch_ndim < 0 or x.ndim != batch_ndim + fnd:
            raise ValueError(
                f"{fn} requires x.ndim == batch_ndim + loc.ndim, got x.ndim={x.ndim}, batch_ndim={batch_ndim}, loc.ndim={fnd}"
            )
    if x.ndim < fnd or x.shape[x.ndim - fnd :] != loc.shape:
        raise ValueError(f"{fn} requires x of shape [*batch, *{loc.shape}] (feature shape of loc), got {x.shape}")
    return x


def _check_decay(fn, decay):
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn} requires decay as a float, got {type(decay).__name__}")
    decay = float(decay)
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"{fn} requires decay in (0, 1], got {decay!r}")
    return decay


def _check_eps(fn, eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn} requires eps as a float, got {type(eps).__name__}")
    eps = float(eps)
    if not 0.0 < eps < np.inf:
        raise ValueError(f"{fn} requires eps > 0 and finite, got {eps!r}")
    return eps


def _check_skip(fn, nonfinite):
    try:
        return _SKIP[nonfinite]
    except (KeyError, TypeError):
        raise ValueError(f"{fn} requires nonfinite in ('raise', 'skip'), got {nonfinite!r}") from None


def _check_out(fn, out, x):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn} requires out as a numpy.ndarray or None, got {type(out).__name__}")
    if out.dtype != _F32 and out.dtype != _F64:
        raise TypeError(f"{fn} requires out of dtype float32 or float64, got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"{fn} requires out of the shape of x {x.shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{fn} requires a writeable out")


def _fast_ok(x, loc, m2, weight, count):
    """True for the usual valid arguments (count is _UNUSED when only read); else use _validate."""
    try:
        return (
            type(x) is np.ndarray
            and (x.dtype is _F32 or x.dtype is _F64)
            and x.shape[x.ndim - loc.ndim :] == loc.shape  # a short x fails: its slice is shorter
            and loc.dtype is _F64
            and m2.dtype is _F64
            and weight.dtype is _F64
            and m2.shape == loc.shape
            and weight.shape == _ONE
            and loc.size > 0
            and loc.flags.carray  # C-contiguous, aligned and writeable
            and m2.flags.carray
            and weight.flags.writeable
            and (count is _UNUSED or (count.dtype is _I64 and count.shape == _ONE and count.flags.writeable))
        )
    except AttributeError:
        return False


def _out_ok(out, x):
    return out is None or (
        type(out) is np.ndarray and (out.dtype is _F32 or out.dtype is _F64) and out.shape == x.shape and out.flags.writeable
    )


def _validate(fn, x, loc, m2, weight, count, decay=_UNUSED, eps=_UNUSED, nonfinite=_UNUSED, out=None, batch_ndim=None):
    """Full checks with precise errors; returns x (cast if needed), decay, eps, skip.

    ``count`` is _UNUSED for functions that only read the state.
    """
    if count is _UNUSED:
        _check_state(fn, loc, m2, weight, None, writeable=False)
    else:
        _check_state(fn, loc, m2, weight, count)
    x = _check_x(fn, x, loc, batch_ndim)
    if decay is not _UNUSED:
        decay = _check_decay(fn, decay)
    if eps is not _UNUSED:
        eps = _check_eps(fn, eps)
    skip = False if nonfinite is _UNUSED else _check_skip(fn, nonfinite)
    if out is not None:
        _check_out(fn, out, x)
    return x, decay, eps, skip


def _raise_status(fn, status):
    if status == _k.STATUS_NONFINITE:
        raise NonFiniteError(
            f"{fn} got NaN or inf in x; statistics left unchanged (pass nonfinite='skip' to drop such samples)"
        )
    raise ValueError(f"{fn}: squared deviations of x overflow float64; statistics left unchanged")


def _flat(a):
    return a if a.ndim == 1 else a.reshape(-1)


def _rows(x, f):
    return x if x.ndim == 2 and x.shape[1] == f else x.reshape(-1, f)


def _new_out(x):
    return np.empty(x.shape, dtype=_F32 if x.dtype is _F32 else _F64)


def _out_rows(fn, out, f):
    if type(out) is not np.ndarray:
        out = np.asarray(out)  # a base-class view of ndarray subclasses, no copy
    if out.ndim == 2 and out.shape[1] == f:
        return out
    out2 = out.reshape(-1, f)
    if not out.flags.c_contiguous and not np.may_share_memory(out2, out):
        raise ValueError(f"{fn} requires out whose memory can be viewed as rows of the feature size; pass a C-contiguous out")
    return out2


# -- public functions ---------------------------------------------------------


def moments_update(x, loc, m2, weight, count, decay=1.0, batch_ndim=None, nonfinite="raise"):
    """Merge the samples of x into the running moments, in place.

    Args:
        x: array of shape [*batch, *feature] with feature = loc.shape; all
            batch dimensions are merged in one step. float32 and float64 are
            used as they are; integer and bool are cast to float64.
        loc, m2, weight, count: the state (see :class:`MomentState`).
        decay: in (0, 1]; 1 weighs every sample the same, < 1 is a
            bias-corrected exponential moving average.
        batch_ndim: number of batch dimensions of x, or None to infer it
            from loc.ndim; given, it must equal x.ndim - loc.ndim.
        nonfinite: "raise" (default) raises :class:`NonFiniteError` when a
            sample holds NaN or inf; "skip" drops such samples (a sample is
            one row over the feature dimensions).

    Returns:
        The number of samples skipped (0 with ``nonfinite="raise"``).

    Raises:
        NonFiniteError: NaN or inf in x and ``nonfinite="raise"``.
        TypeError, ValueError: wrong argument types or values.

    The state is never changed by a rejected sample or a failed call.

    Examples:
        >>> import numpy as np
        >>> s = moments_init(())
        >>> moments_update(np.array([1.0, 2.0, 3.0, 4.0]), *s.arrays)
        0
        >>> s.loc, s.var, s.weight, s.count
        (array(2.5), array(1.25), array([4.]), array([4]))
        >>> moments_update(np.array([np.nan, 5.0]), *s.arrays, nonfinite="skip")
        1
        >>> s.loc, s.count
        (array(3.), array([5]))
    """
    if (
        batch_ndim is None
        and _fast_ok(x, loc, m2, weight, count)
        and type(decay) is float
        and 0.0 < decay <= 1.0
        and type(nonfinite) is str
        and nonfinite in _SKIP
    ):
        skip = _SKIP[nonfinite]
    else:
        x, decay, _, skip = _validate("moments_update", x, loc, m2, weight, count, decay, _UNUSED, nonfinite, None, batch_ndim)
    return moments_update_unchecked(x, loc, m2, weight, count, decay, skip)


def moments_update_unchecked(x, loc, m2, weight, count, decay, skip):
    """``moments_update`` without validation; ``skip`` is a bool."""
    status = _k.update(_rows(x, loc.size), _flat(loc), _flat(m2), weight, count, decay, skip)
    if status < 0:
        _raise_status("moments_update", status)
    return status


def moments_normalize(x, loc, m2, weight, eps, out=None):
    """Write (x - loc) / max(sqrt(var), eps) into out and return it.

    ``eps`` floors the standard deviation, so a constant feature gives finite
    output. With float32 x and out the arithmetic is float32 (loc rounded to
    float32 once, an error of at most half an ulp of the mean); otherwise it
    is float64.

    Args:
        x: array of shape [*batch, *loc.shape]; float32 and float64 are used
            as they are, integer and bool are cast to float64.
        loc, m2, weight: the state (count is not needed).
        eps: floor of the standard deviation, > 0.
        out: float32 or float64 array of x's shape, or None to allocate one
            (float32 for float32 x, float64 otherwise). May be x itself.

    Returns:
        out.

    Raises:
        TypeError, ValueError: wrong argument types or values.

    Examples:
        >>> import numpy as np
        >>> s = moments_init((2,))
        >>> _ = moments_update(np.array([[0.0, 5.0], [2.0, 5.0]]), *s.arrays)
        >>> moments_normalize(np.array([[3.0, 5.0]], dtype=np.float32), s.loc, s.m2, s.weight, eps=1e-3)
        array([[2., 0.]], dtype=float32)
    """
    if not (_fast_ok(x, loc, m2, weight, _UNUSED) and type(eps) is float and 0.0 < eps < _INF and _out_ok(out, x)):
        x, _, eps, _ = _validate("moments_normalize", x, loc, m2, weight, _UNUSED, _UNUSED, eps, _UNUSED, out)
    return moments_normalize_unchecked(x, loc, m2, weight, eps, out)


def moments_normalize_unchecked(x, loc, m2, weight, eps, out=None):
    """``moments_normalize`` without validation."""
    f = loc.size
    if out is None:
        out = _new_out(x)
        out2 = _rows(out, f)
    else:
        out2 = _out_rows("moments_normalize", out, f)
    kern = _k.normalize_f32 if (x.dtype is _F32 and out.dtype is _F32) else _k.normalize
    kern(_rows(x, f), _flat(loc), _flat(m2), weight, eps, out2)
    return out


def moments_update_normalize(x, loc, m2, weight, count, decay, eps, out=None, nonfinite="raise"):
    """Update the moments with x, then normalize x with the updated moments.

    The order is update first: the returned values are normalized by
    statistics that already include x. This equals ``moments_update``
    followed by ``moments_normalize`` in one kernel call. With
    ``nonfinite="skip"`` the skipped samples are still written to out (as
    NaN/inf); with ``"raise"`` neither the state nor out is touched.

    Args:
        x, loc, m2, weight, count, decay, nonfinite: as in ``moments_update``.
        eps, out: as in ``moments_normalize``.

    Returns:
        out. The number of accepted samples is the increase of count.

    Raises:
        NonFiniteError: NaN or inf in x and ``nonfinite="raise"``.
        TypeError, ValueError: wrong argument types or values.

    Examples:
        >>> import numpy as np
        >>> s = moments_init((1,))
        >>> moments_update_normalize(np.array([[1.0], [3.0]]), *s.arrays, decay=1.0, eps=1e-6)
        array([[-1.],
               [ 1.]])
        >>> s.loc, s.var
        (array([2.]), array([1.]))
    """
    if (
        _fast_ok(x, loc, m2, weight, count)
        and type(decay) is float
        and 0.0 < decay <= 1.0
        and type(eps) is float
        and 0.0 < eps < _INF
        and type(nonfinite) is str
        and nonfinite in _SKIP
        and _out_ok(out, x)
    ):
        skip = _SKIP[nonfinite]
    else:
        fn = "moments_update_normalize"
        x, decay, eps, skip = _validate(fn, x, loc, m2, weight, count, decay, eps, nonfinite, out)
    return moments_update_normalize_unchecked(x, loc, m2, weight, count, decay, eps, out, skip)


def moments_update_normalize_unchecked(x, loc, m2, weight, count, decay, eps, out=None, skip=False):
    """``moments_update_normalize`` without validation; ``skip`` is a bool."""
    f = loc.size
    if out is None:
        out = np.empty(x.shape, dtype=_F32 if x.dtype is _F32 else _F64)
        out2 = out.reshape(-1, f)
    elif out.ndim == 2 and loc.ndim == 1 and type(out) is np.ndarray:
        out2 = out
    else:
        out2 = _out_rows("moments_update_normalize", out, f)
    if loc.ndim == 1:
        x2 = x if x.ndim == 2 else x.reshape(-1, f)
    else:
        x2 = x.reshape(-1, f)
        loc = loc.reshape(-1)
        m2 = m2.reshape(-1)
    kern = _k.update_normalize_f32 if (x.dtype is _F32 and out.dtype is _F32) else _k.update_normalize
    status = kern(x2, loc, m2, weight, count, decay, eps, skip, out2)
    if status < 0:
        _raise_status("moments_update_normalize", status)
    return out


def moments_merge(loc, m2, weight, count, other_loc, other_m2, other_weight, other_count):
    """Merge the state ``other_*`` into the state ``loc, m2, weight, count`` in place.

    Chan's parallel formula: the result equals the moments of the union of
    the samples (with their weights) of both states.

    Raises:
        TypeError, ValueError: wrong types, or feature shapes that differ.

    Examples:
        >>> import numpy as np
        >>> a, b = moments_init(()), moments_init(())
        >>> _ = moments_update(np.array([1.0, 2.0]), *a.arrays)
        >>> _ = moments_update(np.array([3.0, 4.0]), *b.arrays)
        >>> moments_merge(*a.arrays, *b.arrays)
        >>> a.loc, a.var, a.count
        (array(2.5), array(1.25), array([4]))
    """
    fn = "moments_merge"
    _check_state(fn, loc, m2, weight, count)
    _check_state(fn, other_loc, other_m2, other_weight, other_count, writeable=False)
    if other_loc.shape != loc.shape:
        raise ValueError(f"{fn} requires states of the same feature shape, got {loc.shape} and {other_loc.shape}")
    _k.merge(_flat(loc), _flat(m2), weight, count, _flat(other_loc), _flat(other_m2), other_weight, other_count)
