"""Numba kernels for running moments (mean and centred second moment).

Every kernel takes only arrays and scalars. The state is four float64/int64
arrays: ``loc`` (weighted mean, shape (F,)), ``m2`` (weighted centred sum of
squares, shape (F,)), ``weight`` (shape (1,), sum of sample weights) and
``count`` (shape (1,), number of samples accepted). Batches arrive as 2-D
arrays ``x`` of shape (n, F): one row per sample, one column per feature.

Numerics
--------
Batch moments are sums of shifted deviations accumulated in float64. The shift
is the current ``loc`` (or the first accepted row when the state is empty), so
the deviations are small and ``s2 - s1**2 / n`` does not cancel. When it would
cancel anyway (the batch mean is far from the shift, measured per feature by
``s2 - s1**2 / n <= s2 * tol``) the batch is summed a second time about its
own mean (two-pass), so the batch second moment is never the small difference
of two large numbers.

For float32 input the shift is rounded to float32 and the deviations
``x - shift`` are float32: exact when ``x`` is within a factor two of the
shift (Sterbenz), otherwise rounded relative to the deviation itself, never
to the magnitude of ``x``. Their sums and sums of squares over blocks of eight
rows are float32 too, then accumulated in float64 (block sums that overflow
float32 are redone in float64). That block rounding is at most about
``24 * 2**-24`` of ``s2``, and a float32 batch takes the second pass unless
``s2 < 4 * (s2 - s1**2 / n)``, so the batch second moment is within about
6e-6 relative of exact in the worst case (about 1e-7 typically): below the
resolution of float32 data, for about a quarter less time than float64
arithmetic on every element. float64 input is float64 throughout.

Decay
-----
Before a batch of ``n`` samples (each of weight one) is merged, ``weight`` and
``m2`` are multiplied by ``decay``. The merge is Chan's parallel formula, so
the batch mean gets weight ``n / (decay * W + n)``: with one sample per update
this is exactly an exponential moving average with bias correction, and one
update over a batch of N rows equals the merge of N per-row trackers.

Return codes
------------
``update`` and ``update_normalize*`` return the number of rows skipped (>= 0),
or ``STATUS_NONFINITE`` when a row holds NaN/inf and skipping is off, or
``STATUS_OVERFLOW`` when finite input overflows float64. With a negative code
the state is left untouched (and, for the fused kernels, ``out`` too).
"""
import numpy as np
from numba import njit

STATUS_NONFINITE = -1
STATUS_OVERFLOW = -2

# Second pass when s2 - s1**2/n <= s2 * tol (see "Numerics"). float64 keeps
# about 52 - 20 = 32 bits of the batch second moment before the second pass.
_TOL64 = 2.0 ** -20
_TOL32 = 2.0 ** -2
_F32_MAX = 3.4028234663852886e38


@njit(cache=True, nogil=True)
def _batch_sums(x, shift, s1, s2):
    """Add sum(x - shift) and sum((x - shift)**2) over rows into s1, s2.

    ``shift`` has the dtype of ``x`` or float64. Deviations and the partial
    sums of each block of eight rows are formed in the dtype of ``shift``,
    then accumulated in float64. Keeping the block loop in one dtype lets it
    vectorise at the full width; the conversion runs once per block.
    """
    n, f = x.shape
    part = np.empty((2, f), dtype=shift.dtype)
    p1 = part[0]
    p2 = part[1]
    i = 0
    while i + 8 <= n:
        for j in range(f):
            sh = shift[j]
            e0 = x[i, j] - sh
            e1 = x[i + 1, j] - sh
            e2 = x[i + 2, j] - sh
            e3 = x[i + 3, j] - sh
            e4 = x[i + 4, j] - sh
            e5 = x[i + 5, j] - sh
            e6 = x[i + 6, j] - sh
            e7 = x[i + 7, j] - sh
            p1[j] = ((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7))
            p2[j] = ((e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)) + ((e4 * e4 + e5 * e5) + (e6 * e6 + e7 * e7))
        for j in range(f):
            s1[j] += np.float64(p1[j])
            s2[j] += np.float64(p2[j])
        i += 8
    while i < n:
        for j in range(f):
            d = np.float64(x[i, j] - shift[j])
            s1[j] += d
            s2[j] += d * d
        i += 1


@njit(cache=True, nogil=True)
def _masked_sums(x, good, shift, s1, s2):
    """Like ``_batch_sums`` over the rows i with good[i] only."""
    n, f = x.shape
    for i in range(n):
        if good[i]:
            for j in range(f):
                d = np.float64(x[i, j] - shift[j])
                s1[j] += d
                s2[j] += d * d


@njit(cache=True, nogil=True)
def _mark_finite_rows(x, good):
    """Set good[i] to whether row i is all finite; return the number of bad rows."""
    n, f = x.shape
    bad = 0
    for i in range(n):
        acc = 0.0
        for j in range(f):
            acc += np.float64(x[i, j]) * 0.0
        ok = acc == 0.0
        good[i] = ok
        if not ok:
            bad += 1
    return bad


@njit(cache=True, nogil=True)
def _all_finite(a, b):
    acc = 0.0
    for j in range(a.shape[0]):
        acc += a[j] * 0.0 + b[j] * 0.0
    return acc == 0.0


@njit(cache=True, nogil=True)
def _sums(x, good, use_mask, shift, s1, s2):
    s1[:] = 0.0
    s2[:] = 0.0
    if use_mask:
        _masked_sums(x, good, shift, s1, s2)
    else:
        _batch_sums(x, shift, s1, s2)


@njit(cache=True, nogil=True)
def _update_core(x, loc, m2, weight, count, decay, skip):
    """Merge the rows of x into the state; see the module docstring."""
    n, f = x.shape
    if n == 0:
        return 0
    w_old = weight[0]
    shift = np.empty(f, dtype=x.dtype)
    for j in range(f):
        if w_old > 0.0:
            shift[j] = loc[j]
            if not np.isfinite(shift[j]):  # loc beyond the float32 range
                shift[j] = x[0, j]
        else:
            shift[j] = x[0, j]
    work = np.empty((7, f))  # only the two sums need zeros; the rest is written before it is read
    s1 = work[0]
    s2 = work[1]
    s1[:] = 0.0
    s2[:] = 0.0
    center = work[2]
    off = work[3]
    m2b = work[4]
    new_loc = work[5]
    new_m2 = work[6]
    good = np.empty(0, dtype=np.bool_)
    use_mask = False
    m = n
    nskip = 0
    _batch_sums(x, shift, s1, s2)
    if not _all_finite(s1, s2):
        good = np.empty(n, dtype=np.bool_)
        nbad = _mark_finite_rows(x, good)
        if nbad > 0:
            if not skip:
                return STATUS_NONFINITE
            nskip = nbad
            m = n - nbad
            if m == 0:
                return nskip
            use_mask = True
            first = 0
            while not good[first]:
                first += 1
            for j in range(f):
                if not np.isfinite(shift[j]) or w_old <= 0.0:
                    shift[j] = x[first, j]
        # sum the accepted rows again in float64: float32 block sums of
        # finite data may overflow where float64 does not
        for j in range(f):
            center[j] = shift[j]
        _sums(x, good, use_mask, center, s1, s2)
        if not _all_finite(s1, s2):
            return STATUS_OVERFLOW

    tol = _TOL32 if shift.itemsize == 4 else _TOL64
    again = False
    inv_m = 1.0 / m
    for j in range(f):
        mu = s1[j] * inv_m
        q = s2[j] - s1[j] * mu
        center[j] = np.float64(shift[j])
        off[j] = mu
        m2b[j] = q
        if m > 1 and s2[j] > 0.0 and not q > s2[j] * tol:  # one row has no spread to lose
            again = True
    if again:
        # second pass about the batch mean, in float64
        for j in range(f):
            center[j] = center[j] + off[j]
        _sums(x, good, use_mask, center, s1, s2)
        for j in range(f):
            mu = s1[j] * inv_m
            off[j] = mu
            q = s2[j] - s1[j] * mu
            m2b[j] = q if q > 0.0 else 0.0

    w = w_old * decay if w_old > 0.0 else 0.0
    nw = w + m
    a = m / nw
    wa = w * a
    finite = 0.0
    if w > 0.0:
        for j in range(f):
            delta = (center[j] - loc[j]) + off[j]
            nl = loc[j] + delta * a
            nm = m2[j] * decay + m2b[j] + delta * delta * wa
            new_loc[j] = nl
            new_m2[j] = nm
            finite += (nl - nl) + (nm - nm)  # stays 0.0 unless some value is inf or NaN
    else:
        for j in range(f):
            nl = center[j] + off[j]
            nm = m2b[j]
            new_loc[j] = nl
            new_m2[j] = nm
            finite += (nl - nl) + (nm - nm)
    if finite != 0.0:
        return STATUS_OVERFLOW
    for j in range(f):
        loc[j] = new_loc[j]
        m2[j] = new_m2[j]
    weight[0] = nw
    count[0] += m
    return nskip


@njit(cache=True, nogil=True)
def _scale_params(loc, m2, weight, eps, hi, inv, cap):
    """hi = loc and inv = 1 / max(sqrt(m2 / weight), eps), cast to hi/inv dtype.

    With weight 0 (no sample yet) the variance is taken as 1.
    """
    w = weight[0]
    # One division for the weight, none per feature but the reciprocal of the std.
    inv_w = 1.0 / w if w > 0.0 else 0.0
    var_empty = 0.0 if w > 0.0 else 1.0
    for j in range(loc.shape[0]):
        var = max(m2[j] * inv_w + var_empty, 0.0)
        r = 1.0 / max(np.sqrt(var), eps)
        inv[j] = min(r, cap)
        hi[j] = loc[j]


@njit(cache=True, nogil=True)
def _apply(x, hi, inv, out):
    """out = (x - hi) * inv, in the promoted dtype of x, hi and inv."""
    n, f = x.shape
    for i in range(n):
        for j in range(f):
            out[i, j] = (x[i, j] - hi[j]) * inv[j]


@njit(cache=True, nogil=True)
def update(x, loc, m2, weight, count, decay, skip):
    """Merge the rows of x (n, F) into the state; return skipped rows or a status."""
    return _update_core(x, loc, m2, weight, count, decay, skip)


@njit(cache=True, nogil=True)
def normalize(x, loc, m2, weight, eps, out):
    """out = (x - loc) / max(sqrt(m2 / weight), eps), computed in float64."""
    params = np.empty((2, loc.shape[0]))
    hi = params[0]
    inv = params[1]
    _scale_params(loc, m2, weight, eps, hi, inv, 1.0e308)
    _apply(x, hi, inv, out)


@njit(cache=True, nogil=True)
def normalize_f32(x, loc, m2, weight, eps, out):
    """Like ``normalize`` computed in float32 (float32 x and out).

    loc is rounded to float32 once; the error this adds is at most half an
    ulp of the mean, no more than the rounding already in float32 data of
    that magnitude.
    """
    params = np.empty((2, loc.shape[0]), dtype=np.float32)
    hi = params[0]
    inv = params[1]
    _scale_params(loc, m2, weight, eps, hi, inv, _F32_MAX)
    _apply(x, hi, inv, out)


@njit(cache=True, nogil=True)
def update_normalize(x, loc, m2, weight, count, decay, eps, skip, out):
    """``update`` then ``normalize`` with the updated state (float64 compute)."""
    status = _update_core(x, loc, m2, weight, count, decay, skip)
    if status < 0:
        return status
    normalize(x, loc, m2, weight, eps, out)
    return status


@njit(cache=True, nogil=True)
def update_normalize_f32(x, loc, m2, weight, count, decay, eps, skip, out):
    """``update`` then ``normalize_f32`` with the updated state."""
    status = _update_core(x, loc, m2, weight, count, decay, skip)
    if status < 0:
        return status
    normalize_f32(x, loc, m2, weight, eps, out)
    return status


@njit(cache=True, nogil=True)
def merge(loc, m2, weight, count, loc_b, m2_b, weight_b, count_b):
    """Merge state b into state a in place (Chan's parallel formula)."""
    wa = weight[0]
    wb = weight_b[0]
    f = loc.shape[0]
    if wb > 0.0:
        if wa > 0.0:
            nw = wa + wb
            a = wb / nw
            waa = wa * a
            for j in range(f):
                delta = loc_b[j] - loc[j]
                loc[j] += delta * a
                m2[j] += m2_b[j] + delta * delta * waa
        else:
            nw = wb
            for j in range(f):
                loc[j] = loc_b[j]
                m2[j] = m2_b[j]
        weight[0] = nw
    count[0] += count_b[0]
