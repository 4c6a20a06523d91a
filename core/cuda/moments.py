"""CUDA twins of :mod:`numbarl.core.moments`: running moments on the GPU.

Same names, arguments and state as the CPU functions, plus ``stream`` (and
``check``, ``status``), for C-contiguous device arrays: ``loc`` and ``m2``
float64 of the feature shape, ``weight`` float64 ``(1,)``, ``count`` int64
``(1,)``, all on the device.

An update runs as a few small kernels on one stream, with no host work in
between:

1. block reduction: a block of ``TF x TR`` threads covers ``TF`` features
   and a chunk of rows; each thread sums its rows in float64 about its first
   value (shifted sums, so nothing cancels), the ``TR`` row lanes are merged
   in shared memory with Chan's formula, and each block writes one partial
   (count, mean, centred second moment) per feature;
2. only when a sum came out non-finite: the rows holding NaN or inf are
   marked, and the partials are recomputed without them;
3. one thread per feature merges the chunks and then the batch into the
   float64 state with Chan's formula (decay as on the CPU), into scratch;
4. one thread per feature commits the scratch to the state unless the batch
   was rejected (NaN/inf with ``nonfinite="raise"``, or overflow anywhere),
   so a rejected batch leaves every feature unchanged, as on the CPU; the
   fused variant also forms the normalisation parameters here;
5. normalisation, one thread per element (skipped when rejected).

The outcome is an int64 status on the device: the number of skipped rows,
or ``-1`` (NaN/inf, not skipped) or ``-2`` (overflow). With ``check=True``
(the default) it is read back, which waits for the stream, and errors are
raised as on the CPU; with ``check=False`` nothing is read back.

Results equal the CPU's to float64 rounding for float64 input; for float32
input the CPU sums blocks of rows in float32 (within about 1e-7 relative
of exact, see :mod:`numbarl.core._moments_kernels`) while these kernels sum
in float64.

Importing this module imports ``numba.cuda``; ``numbarl.core`` does not.
"""
import math

import numpy as np
from numba import cuda
from numbarl.core import moments as _cpu
from numbarl.core.cuda._common import (
    SIMULATOR,
    THREADS_PER_BLOCK,
    blocks_for,
    check_contiguous,
    device_array,
    prepare_out,
    scratch,
)
from numbarl.core.moments import MomentState, NonFiniteError
from numbarl.core._checks import check_bool

__all__ = [
    "DeviceMoments",
    "NonFiniteError",
    "moments_init",
    "moments_merge",
    "moments_normalize",
    "moments_update",
    "moments_update_normalize",
]

STATUS_NONFINITE = -1
STATUS_OVERFLOW = -2

# Threads of a reduction block (a power of two), the most feature lanes in
# it, and the rows each row lane sums per chunk. The simulator runs each
# thread as a Python thread: small blocks and chunks, so that small tests
# still cover several lanes and chunks.
REDUCE_THREADS = 32 if SIMULATOR else 256
MAX_FEATURE_LANES = 8 if SIMULATOR else 32
ROWS_PER_LANE = 2 if SIMULATOR else 16
_MAX_CHUNKS = 65535

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_F32_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------- kernels
@cuda.jit(device=True)
def _chan(na, ma, qa, nb, mb, qb):
    """Merge (count, mean, centred second moment) ``b`` into ``a``."""
    if nb == 0.0:
        return na, ma, qa
    if na == 0.0:
        return nb, mb, qb
    n = na + nb
    d = mb - ma
    f = nb / n
    return n, ma + d * f, qa + qb + d * d * na * f


@cuda.jit
def _zero_flags_kernel(flags):
    i = cuda.grid(1)
    if i < flags.size:
        flags[i] = 0


@cuda.jit
def _chunk_kernel(x, bad, masked, flags, chunk_rows, part):
    """Per-block partial moments of ``x`` ``[n, F]``: ``part[:, chunk, feature]``.

    ``part[0]`` holds the count, ``part[1]`` the mean and ``part[2]`` the
    centred second moment of the rows of the chunk (``blockIdx.y``) for the
    feature. Unmasked (``masked`` False), a non-finite sum sets ``flags[0]``;
    masked, rows with ``bad[row]`` are left out, and the kernel does nothing
    unless ``flags[1]`` (rows were marked).
    """
    if masked and flags[1] == 0:
        return
    n, f = x.shape
    tf = cuda.blockDim.x
    tr = cuda.blockDim.y
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * tf + tx
    chunk = cuda.blockIdx.y
    row0 = chunk * chunk_rows
    row1 = min(row0 + chunk_rows, n)
    cnt = 0.0
    shift = 0.0
    s1 = 0.0
    s2 = 0.0
    if j < f:
        for r in range(row0 + ty, row1, tr):
            if masked and bad[r]:
                continue
            v = np.float64(x[r, j])
            if cnt == 0.0:
                shift = v
            d = v - shift
            s1 += d
            s2 += d * d
            cnt += 1.0
    mean = 0.0
    m2 = 0.0
    if cnt > 0.0:
        mean = shift + s1 / cnt
        m2 = s2 - s1 * (s1 / cnt)
        if m2 < 0.0:
            m2 = 0.0
        if not masked and not (math.isfinite(mean) and math.isfinite(m2)):
            flags[0] = 1
    sh_n = cuda.shared.array(REDUCE_THREADS, np.float64)
    sh_mean = cuda.shared.array(REDUCE_THREADS, np.float64)
    sh_m2 = cuda.shared.array(REDUCE_THREADS, np.float64)
    slot = ty * tf + tx
    sh_n[slot] = cnt
    sh_mean[slot] = mean
    sh_m2[slot] = m2
    cuda.syncthreads()
    stride = tr // 2
    while stride > 0:
        if ty < stride:
            other = slot + stride * tf
            a_n, a_mean, a_m2 = _chan(sh_n[slot], sh_mean[slot], sh_m2[slot],
                                      sh_n[other], sh_mean[other], sh_m2[other])
            sh_n[slot] = a_n
            sh_mean[slot] = a_mean
            sh_m2[slot] = a_m2
        cuda.syncthreads()
        stride //= 2
    if ty == 0 and j < f:
        part[0, chunk, j] = sh_n[tx]
        part[1, chunk, j] = sh_mean[tx]
        part[2, chunk, j] = sh_m2[tx]


@cuda.jit
def _mark_rows_kernel(x, flags, bad):
    """Only after a non-finite sum: ``bad[row]`` for rows holding NaN or inf, counted in ``flags[1]``."""
    if flags[0] == 0:
        return
    r = cuda.grid(1)
    n, f = x.shape
    if r >= n:
        return
    ok = True
    for j in range(f):
        if not math.isfinite(np.float64(x[r, j])):
            ok = False
            break
    bad[r] = not ok
    if not ok:
        cuda.atomic.add(flags, 1, 1)


@cuda.jit
def _merge_kernel(part, loc, m2, weight, decay, skip, flags, new):
    """One thread per feature: chunks, then the batch, into the state, written to ``new``.

    ``new[0]`` and ``new[1]`` get the new ``loc`` and ``m2``, ``new[2, 0]``
    the new weight. A non-finite result sets ``flags[2]``.
    """
    j = cuda.grid(1)
    f = loc.size
    if j >= f:
        return
    if flags[1] > 0 and not skip:
        return
    bn = 0.0
    bmean = 0.0
    bm2 = 0.0
    for c in range(part.shape[1]):
        bn, bmean, bm2 = _chan(bn, bmean, bm2, part[0, c, j], part[1, c, j], part[2, c, j])
    if bn == 0.0:
        return
    w_old = weight[0]
    w = w_old * decay if w_old > 0.0 else 0.0
    nw = w + bn
    if w > 0.0:
        a = bn / nw
        delta = bmean - loc[j]
        nl = loc[j] + delta * a
        nm = m2[j] * decay + bm2 + delta * delta * (w * a)
    else:
        nl = bmean
        nm = bm2
    if not (math.isfinite(nl) and math.isfinite(nm)):
        flags[2] = 1
    new[0, j] = nl
    new[1, j] = nm
    if j == 0:
        new[2, 0] = nw


@cuda.jit(device=True)
def _params(loc_j, m2_j, w, eps, cap, params, j):
    """``params[0, j] = loc``, ``params[1, j] = min(1 / max(sqrt(var), eps), cap)``."""
    var = m2_j / w if w > 0.0 else 1.0
    sd = math.sqrt(var) if var > 0.0 else 0.0
    r = 1.0 / (sd if sd > eps else eps)
    params[0, j] = loc_j
    params[1, j] = r if r < cap else cap


@cuda.jit
def _commit_kernel(loc, m2, weight, count, n_rows, skip, flags, new, status, want_params, eps, cap, params):
    """Write ``new`` into the state unless the batch is rejected; set ``status``.

    With ``want_params`` the normalisation parameters of the resulting state
    go into ``params``.
    """
    j = cuda.grid(1)
    f = loc.size
    if j >= f:
        return
    n_bad = flags[1]
    if n_bad > 0 and not skip:
        st = STATUS_NONFINITE
    elif flags[2] != 0:
        st = STATUS_OVERFLOW
    else:
        st = n_bad
    accepted = n_rows - n_bad
    commit = st >= 0 and accepted > 0
    if commit:
        loc[j] = new[0, j]
        m2[j] = new[1, j]
        w = new[2, 0]
    else:
        w = weight[0]
    if j == 0:
        status[0] = st
        if commit:
            weight[0] = w
            count[0] += accepted
    if want_params:
        _params(loc[j], m2[j], w, eps, cap, params, j)


@cuda.jit
def _params_kernel(loc, m2, weight, eps, cap, params):
    j = cuda.grid(1)
    if j < loc.size:
        _params(loc[j], m2[j], weight[0], eps, cap, params, j)


@cuda.jit(device=True)
def _apply_one(x, params, out, idx):
    n, f = out.shape
    if idx < n * f:
        j = idx % f
        i = idx // f
        out[i, j] = (x[i, j] - params[0, j]) * params[1, j]


@cuda.jit
def _apply_kernel(x, params, out):
    """``out[i, j] = (x[i, j] - params[0, j]) * params[1, j]``."""
    _apply_one(x, params, out, cuda.grid(1))


@cuda.jit
def _apply_if_kernel(x, params, out, status):
    """:func:`_apply_kernel` unless the update was rejected (``status[0] < 0``)."""
    if status[0] >= 0:
        _apply_one(x, params, out, cuda.grid(1))


@cuda.jit
def _merge_states_kernel(loc, m2, weight, loc_b, m2_b, weight_b):
    """One thread per feature: Chan's merge of state ``b`` into ``loc, m2`` (weights read only)."""
    j = cuda.grid(1)
    if j >= loc.size:
        return
    wa = weight[0]
    wb = weight_b[0]
    if wb > 0.0:
        if wa > 0.0:
            a = wb / (wa + wb)
            delta = loc_b[j] - loc[j]
            loc[j] += delta * a
            m2[j] += m2_b[j] + delta * delta * (wa * a)
        else:
            loc[j] = loc_b[j]
            m2[j] = m2_b[j]


@cuda.jit
def _merge_counts_kernel(weight, count, weight_b, count_b):
    if cuda.grid(1) == 0:
        if weight_b[0] > 0.0:
            weight[0] += weight_b[0]
        count[0] += count_b[0]


# ----------------------------------------------------------------- helpers
class DeviceMoments:
    """Running-moment state on the device: ``loc``, ``m2``, ``weight``, ``count``.

    Made by :func:`moments_init`; ``arrays`` gives them in the argument order
    of the functions here, and :meth:`copy_to_host` a CPU
    :class:`numbarl.core.moments.MomentState` (a copy, waiting for the
    stream).
    """

    __slots__ = ("loc", "m2", "weight", "count")

    def __init__(self, loc, m2, weight, count):
        self.loc, self.m2, self.weight, self.count = loc, m2, weight, count

    @property
    def arrays(self):
        """(loc, m2, weight, count)."""
        return self.loc, self.m2, self.weight, self.count

    def copy_to_host(self):
        """A :class:`MomentState` holding host copies of the four arrays."""
        return MomentState(*(a.copy_to_host() for a in self.arrays))


def moments_init(feature_shape, stream=0):
    """A zeroed :class:`DeviceMoments` for samples of ``feature_shape``.

    Raises:
        TypeError, ValueError: as :func:`numbarl.core.moments.moments_init`.

    Examples:
        >>> s = moments_init((3,))
        >>> s.copy_to_host()
        MomentState(feature_shape=(3,), count=0, weight=0.0)
    """
    host = _cpu.moments_init(feature_shape)
    return DeviceMoments(*(cuda.to_device(a, stream=stream) for a in host.arrays))


def _state(fn, loc, m2, weight, count=None):
    """The state as device arrays, checked as the CPU checks it."""
    arrays = []
    for name, a, dt in (("loc", loc, _F64), ("m2", m2, _F64), ("weight", weight, _F64), ("count", count, _I64)):
        if a is None:
            arrays.append(None)
            continue
        a = device_array(a, fn, name)
        if np.dtype(a.dtype) != dt:
            raise TypeError(f"{fn} (CUDA) requires {name} of dtype {dt}, got {np.dtype(a.dtype)}")
        check_contiguous(a, fn, name)
        arrays.append(a)
    loc, m2, weight, count = arrays
    if tuple(m2.shape) != tuple(loc.shape):
        raise ValueError(f"{fn} (CUDA) requires m2 of the shape of loc {tuple(loc.shape)}, got {tuple(m2.shape)}")
    if loc.size == 0:
        raise ValueError(f"{fn} (CUDA) requires a feature size > 0, got loc of shape {tuple(loc.shape)}")
    if tuple(weight.shape) != (1,):
        raise ValueError(f"{fn} (CUDA) requires weight of shape (1,), got {tuple(weight.shape)}")
    if count is not None and tuple(count.shape) != (1,):
        raise ValueError(f"{fn} (CUDA) requires count of shape (1,), got {tuple(count.shape)}")
    return loc, m2, weight, count


def _x(fn, x, loc, batch_ndim=None):
    """``x`` as a C-contiguous real-valued device array ``[*batch, *loc.shape]``."""
    x = device_array(x, fn, "x")
    dt = np.dtype(x.dtype)
    if dt.kind not in "fiub" or dt.itemsize > 8:
        raise TypeError(f"{fn} (CUDA) requires x of float32, float64, integer or bool dtype, got {dt}")
    xshape, fshape = tuple(x.shape), tuple(loc.shape)
    fnd = len(fshape)
    if batch_ndim is not None:
        if not isinstance(batch_ndim, (int, np.integer)) or isinstance(batch_ndim, bool):
            raise TypeError(f"{fn} (CUDA) requires batch_ndim as an int or None, got {batch_ndim!r}")
        if batch_ndim < 0 or len(xshape) != batch_ndim + fnd:
            raise ValueError(
                f"{fn} (CUDA) requires x.ndim == batch_ndim + loc.ndim, got x.ndim={len(xshape)}, "
                f"batch_ndim={batch_ndim}, loc.ndim={fnd}"
            )
    if len(xshape) < fnd or xshape[len(xshape) - fnd :] != fshape:
        raise ValueError(
            f"{fn} (CUDA) requires x of shape [*batch, *{fshape}] (feature shape of loc), got {xshape}"
        )
    check_contiguous(x, fn, "x")
    return x


def _out(fn, out, x, stream):
    """``(result, [n, F] device view)``: ``out`` checked, or a new device array."""
    if out is None:
        dtype = _F32 if np.dtype(x.dtype) == _F32 else _F64
        return prepare_out(None, x.shape, dtype, fn, stream)
    dev = device_array(out, fn, "out")
    if np.dtype(dev.dtype) not in (_F32, _F64):
        raise TypeError(f"{fn} (CUDA) requires out of dtype float32 or float64, got {np.dtype(dev.dtype)}")
    return prepare_out(out, x.shape, dev.dtype, fn, stream)


def _status_array(fn, status, stream, returned):
    """The status array: ``status`` checked, or a new one when it is ``returned``, else scratch."""
    if status is None:
        if returned:
            return cuda.device_array(1, dtype=np.int64, stream=stream)
        return scratch("moments.status", (1,), np.int64, stream)
    status = device_array(status, fn, "status")
    if np.dtype(status.dtype) != _I64 or tuple(status.shape) != (1,):
        raise ValueError(
            f"{fn} (CUDA) requires status as an int64 device array of shape (1,), got dtype "
            f"{np.dtype(status.dtype)} and shape {tuple(status.shape)}"
        )
    return status


def _reduce_layout(n, f):
    """``(feature lanes, row lanes, rows per chunk, chunks)`` of the reduction grid."""
    tf = 1
    while tf < f and tf < MAX_FEATURE_LANES:
        tf *= 2
    tr = REDUCE_THREADS // tf
    chunk_rows = tr * ROWS_PER_LANE
    if (n + chunk_rows - 1) // chunk_rows > _MAX_CHUNKS:  # the grid's y dimension is limited
        per_lane = (n + _MAX_CHUNKS * tr - 1) // (_MAX_CHUNKS * tr)
        chunk_rows = tr * per_lane
    return tf, tr, chunk_rows, (n + chunk_rows - 1) // chunk_rows


def _update(x2, loc, m2, weight, count, decay, skip, status, stream, params=None, eps=1.0, cap=1.0):
    """Launch the update kernels for ``x2`` ``[n, F]`` (n > 0); see the module docstring."""
    n, f = x2.shape
    tf, tr, chunk_rows, n_chunks = _reduce_layout(n, f)
    flags = scratch("moments.flags", (3,), np.int64, stream)
    part = scratch("moments.part", (3, n_chunks, f), np.float64, stream)
    bad = scratch("moments.bad", (n,), np.bool_, stream)
    new = scratch("moments.new", (3, f), np.float64, stream)
    grid = ((f + tf - 1) // tf, n_chunks)
    _zero_flags_kernel[1, 32, stream](flags)
    _chunk_kernel[grid, (tf, tr), stream](x2, bad, False, flags, chunk_rows, part)
    _mark_rows_kernel[blocks_for(n), THREADS_PER_BLOCK, stream](x2, flags, bad)
    _chunk_kernel[grid, (tf, tr), stream](x2, bad, True, flags, chunk_rows, part)
    fb = blocks_for(f)
    _merge_kernel[fb, THREADS_PER_BLOCK, stream](part, loc, m2, weight, decay, skip, flags, new)
    want = params is not None
    if not want:
        params = new
    _commit_kernel[fb, THREADS_PER_BLOCK, stream](
        loc, m2, weight, count, n, skip, flags, new, status, want, eps, cap, params
    )


def _raise_status(fn, status, stream):
    """Read the status back (waiting for ``stream``); raise as the CPU does, or return the skipped rows."""
    value = int(status.copy_to_host(stream=stream)[0])
    if stream:
        stream.synchronize()
    if value == STATUS_NONFINITE:
        raise NonFiniteError(
            f"{fn} got NaN or inf in x; statistics left unchanged (pass nonfinite='skip' to drop such samples)"
        )
    if value == STATUS_OVERFLOW:
        raise ValueError(f"{fn}: squared deviations of x overflow float64; statistics left unchanged")
    return value


def _params_dtype(x, out_dtype):
    return _F32 if (np.dtype(x.dtype) == _F32 and np.dtype(out_dtype) == _F32) else _F64


# ---------------------------------------------------------------- functions
def moments_update(x, loc, m2, weight, count, decay=1.0, batch_ndim=None, nonfinite="raise", stream=0, check=True,
                   status=None):
    """Merge the samples of device array ``x`` into the device state, in place.

    Same arguments and statistics as :func:`numbarl.core.moments.moments_update`.

    Args:
        x: C-contiguous device array ``[*batch, *loc.shape]`` (float32,
            float64, integer or bool); all batch dimensions merge in one step.
        loc, m2, weight, count: the device state.
        decay, batch_ndim, nonfinite: as on the CPU.
        stream: CUDA stream to run on.
        check: read the status back (waits for the stream) and raise as the
            CPU does; False reads nothing back.
        status: optional int64 device array ``(1,)`` that receives the status
            (skipped rows, or -1 for NaN/inf, -2 for overflow).

    Returns:
        With ``check``, the number of samples skipped (an int); without, the
        device status array.

    Raises:
        NonFiniteError: NaN or inf in x, ``nonfinite="raise"`` and ``check``.
        TypeError, ValueError: wrong argument types or values (and overflow
            with ``check``).

    Examples:
        >>> import numpy as np
        >>> s = moments_init(())
        >>> moments_update(cuda.to_device(np.array([1.0, 2.0, 3.0, 4.0])), *s.arrays)
        0
        >>> h = s.copy_to_host()
        >>> h.loc, h.var, h.count
        (array(2.5), array(1.25), array([4]))
        >>> status = moments_update(cuda.to_device(np.array([np.nan, 5.0])), *s.arrays, nonfinite="skip",
        ...                         check=False)
        >>> status.copy_to_host(), s.copy_to_host().loc
        (array([1]), array(3.))
    """
    fn = "moments_update"
    loc, m2, weight, count = _state(fn, loc, m2, weight, count)
    x = _x(fn, x, loc, batch_ndim)
    decay = _cpu._check_decay(fn, decay)
    skip = _cpu._check_skip(fn, nonfinite)
    check = check_bool(check, f"{fn} (CUDA)", "check")
    status = _status_array(fn, status, stream, returned=not check)
    f = loc.size
    n = x.size // f
    if n == 0:
        _zero_flags_kernel[1, 32, stream](status)
        return 0 if check else status
    _update(x.reshape(n, f), loc.reshape(f), m2.reshape(f), weight, count, decay, skip, status, stream)
    if check:
        return _raise_status(fn, status, stream)
    return status


def moments_normalize(x, loc, m2, weight, eps, out=None, stream=0):
    """Write ``(x - loc) / max(sqrt(var), eps)`` into ``out`` on the GPU and return it.

    Same arguments and results as :func:`numbarl.core.moments.moments_normalize`
    (float32 arithmetic for float32 ``x`` and ``out``, float64 otherwise),
    for C-contiguous device arrays. Nothing is read back.

    Raises:
        TypeError, ValueError: wrong argument types or values.

    Examples:
        >>> import numpy as np
        >>> s = moments_init((2,))
        >>> _ = moments_update(cuda.to_device(np.array([[0.0, 5.0], [2.0, 5.0]])), *s.arrays)
        >>> x = cuda.to_device(np.array([[3.0, 5.0]], dtype=np.float32))
        >>> moments_normalize(x, s.loc, s.m2, s.weight, eps=1e-3).copy_to_host()
        array([[2., 0.]], dtype=float32)
    """
    fn = "moments_normalize"
    loc, m2, weight, _ = _state(fn, loc, m2, weight)
    x = _x(fn, x, loc)
    eps = _cpu._check_eps(fn, eps)
    result, dev = _out(fn, out, x, stream)
    f = loc.size
    n = x.size // f
    if n == 0:
        return result
    pdt = _params_dtype(x, dev.dtype)
    params = scratch("moments.params", (2, f), pdt, stream)
    cap = _F32_MAX if pdt == _F32 else 1.0e308
    _params_kernel[blocks_for(f), THREADS_PER_BLOCK, stream](loc.reshape(f), m2.reshape(f), weight, eps, cap, params)
    _apply_kernel[blocks_for(n * f), THREADS_PER_BLOCK, stream](x.reshape(n, f), params, dev.reshape(n, f))
    return result


def moments_update_normalize(x, loc, m2, weight, count, decay, eps, out=None, nonfinite="raise", stream=0,
                             check=True, status=None):
    """Update the device state with ``x``, then normalize ``x`` with the updated state.

    Same arguments and results as
    :func:`numbarl.core.moments.moments_update_normalize`, for C-contiguous
    device arrays. A rejected batch (NaN/inf with ``nonfinite="raise"``, or
    overflow) leaves both the state and ``out`` untouched.

    Args:
        x, loc, m2, weight, count, decay, eps, out, nonfinite: as on the CPU.
        stream: CUDA stream to run on.
        check: read the status back (waits for the stream) and raise as the
            CPU does; False reads nothing back.
        status: optional int64 device array ``(1,)`` that receives the status.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        NonFiniteError: NaN or inf in x, ``nonfinite="raise"`` and ``check``.
        TypeError, ValueError: wrong argument types or values.

    Examples:
        >>> import numpy as np
        >>> s = moments_init((1,))
        >>> x = cuda.to_device(np.array([[1.0], [3.0]]))
        >>> moments_update_normalize(x, *s.arrays, decay=1.0, eps=1e-6).copy_to_host()
        array([[-1.],
               [ 1.]])
    """
    fn = "moments_update_normalize"
    loc, m2, weight, count = _state(fn, loc, m2, weight, count)
    x = _x(fn, x, loc)
    decay = _cpu._check_decay(fn, decay)
    eps = _cpu._check_eps(fn, eps)
    skip = _cpu._check_skip(fn, nonfinite)
    check = check_bool(check, f"{fn} (CUDA)", "check")
    status = _status_array(fn, status, stream, returned=False)
    result, dev = _out(fn, out, x, stream)
    f = loc.size
    n = x.size // f
    if n == 0:
        _zero_flags_kernel[1, 32, stream](status)
        return result
    pdt = _params_dtype(x, dev.dtype)
    params = scratch("moments.params", (2, f), pdt, stream)
    cap = _F32_MAX if pdt == _F32 else 1.0e308
    x2 = x.reshape(n, f)
    _update(x2, loc.reshape(f), m2.reshape(f), weight, count, decay, skip, status, stream, params, eps, cap)
    _apply_if_kernel[blocks_for(n * f), THREADS_PER_BLOCK, stream](x2, params, dev.reshape(n, f), status)
    if check:
        _raise_status(fn, status, stream)
    return result


def moments_merge(loc, m2, weight, count, other_loc, other_m2, other_weight, other_count, stream=0):
    """Merge the device state ``other_*`` into ``loc, m2, weight, count`` in place.

    Same as :func:`numbarl.core.moments.moments_merge` (Chan's parallel
    formula), one thread per feature.

    Raises:
        TypeError, ValueError: wrong types, or feature shapes that differ.

    Examples:
        >>> import numpy as np
        >>> a, b = moments_init(()), moments_init(())
        >>> _ = moments_update(cuda.to_device(np.array([1.0, 2.0])), *a.arrays)
        >>> _ = moments_update(cuda.to_device(np.array([3.0, 4.0])), *b.arrays)
        >>> moments_merge(*a.arrays, *b.arrays)
        >>> h = a.copy_to_host()
        >>> h.loc, h.var, h.count
        (array(2.5), array(1.25), array([4]))
    """
    fn = "moments_merge"
    loc, m2, weight, count = _state(fn, loc, m2, weight, count)
    other_loc, other_m2, other_weight, other_count = _state(fn, other_loc, other_m2, other_weight, other_count)
    if tuple(other_loc.shape) != tuple(loc.shape):
        raise ValueError(
            f"{fn} (CUDA) requires states of the same feature shape, got {tuple(loc.shape)} and "
            f"{tuple(other_loc.shape)}"
        )
    f = loc.size
    _merge_states_kernel[blocks_for(f), THREADS_PER_BLOCK, stream](
        loc.reshape(f), m2.reshape(f), weight, other_loc.reshape(f), other_m2.reshape(f), other_weight
    )
    _merge_counts_kernel[1, 1, stream](weight, count, other_weight, other_count)
