"""CUDA twins of :mod:`numbarl.core.frames`: the frame-stack ring buffer.

Same names, arguments and results as the CPU functions, plus ``stream`` and
``check``, for C-contiguous device arrays (numba device arrays or anything
with ``__cuda_array_interface__``). The ring state is the same two arrays,
on the device: ``buffer`` ``[*batch, N, *frame]`` and int64 ``pos``
``[*batch]``. Every kernel runs one thread per element it writes.

A position outside ``[0, N)`` is found on the device: that sub-environment
is left untouched and the first such index is recorded. With ``check=True``
(the default) that record is read back, which waits for the stream, and a
ValueError is raised as on the CPU (the CPU stops at the first bad index,
so sub-environments after it may differ). With ``check=False`` nothing is
read back and nothing waits.

:func:`frames_next_slot` is the one function here that always reads back:
the slot it returns a view of is ``pos``, so it copies ``pos`` to the host
(waiting for the stream). Callers that must not wait track the slot
themselves (positions start at 0, a push advances every one of them and a
reset none) and call ``frames_push(buffer, pos, None)`` after writing there.

Importing this module imports ``numba.cuda``; ``numbarl.core`` does not.
"""
import numpy as np
from numba import cuda
from numbarl.core import frames as _cpu
from numbarl.core.cuda._common import (
    SIMULATOR,
    THREADS_PER_BLOCK,
    blocks_for,
    check_contiguous,
    device_array,
    is_device_array,
    overlaps,
    prepare_out,
    scratch,
)

__all__ = ["frames_state", "frames_push", "frames_next_slot", "frames_reset", "frames_stack", "frames_stack_offline",
           "frames_window_mask"]

_NO_BAD = np.iinfo(np.int64).max


# ----------------------------------------------------------------- kernels
@cuda.jit
def _fill_kernel(a, value):
    i = cuda.grid(1)
    if i < a.size:
        a[i] = value


@cuda.jit(device=True)
def _flag_bad(bad, b):
    cuda.atomic.min(bad, 0, b)


# Threads per block of the push kernel (one block per sub-environment).
PUSH_THREADS = 8 if SIMULATOR else 512


@cuda.jit
def _push_kernel(buf, pos, frame, use_frame, out, bad):
    """Push for sub-environment ``blockIdx.x``: new frame into slot ``pos``, ordered stack out, ``pos`` advanced.

    ``out[b, p, j, i]``: slot ``(pos[b] + 1 + j) % N`` of the ring, except
    the newest (``j = N - 1``), which is the frame itself, also written into
    slot ``pos[b]`` when ``use_frame``. The block's threads stride along the
    contiguous last axis (coalesced reads and writes). No thread reads the
    slot another writes; once every thread of the block has read ``pos[b]``
    (the barrier), thread 0 advances it, so one launch does the whole push.
    """
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    step = cuda.blockDim.x
    npre = out.shape[1]
    n = out.shape[2]
    nl = out.shape[3]
    s = pos[b]
    if s < 0 or s >= n:
        if tid == 0:
            _flag_bad(bad, b)
        return
    for p in range(npre):
        for j in range(n - 1):
            slot = s + 1 + j
            if slot >= n:
                slot -= n
            for i in range(tid, nl, step):
                out[b, p, j, i] = buf[b, slot, p, i]
        for i in range(tid, nl, step):
            if use_frame:
                v = frame[b, p, i]
                buf[b, s, p, i] = v
            else:
                v = buf[b, s, p, i]
            out[b, p, n - 1, i] = v
    cuda.syncthreads()
    if tid == 0:
        s += 1
        if s >= n:
            s = 0
        pos[b] = s


@cuda.jit
def _stack_kernel(buf, pos, out, bad):
    """``out[b, p, j, i] = buf[b, (pos[b] + j) % N, p, i]``."""
    idx = cuda.grid(1)
    nb, npre, n, nl = out.shape
    if idx >= nb * npre * n * nl:
        return
    i = idx % nl
    t = idx // nl
    j = t % n
    t = t // n
    p = t % npre
    b = t // npre
    s = pos[b]
    if s < 0 or s >= n:
        if i == 0 and j == 0 and p == 0:
            _flag_bad(bad, b)
        return
    slot = s + j
    if slot >= n:
        slot -= n
    out[b, p, j, i] = buf[b, slot, p, i]


@cuda.jit
def _reset_kernel(buf, pos, frame, mask, use_mask, same, value, bad):
    """Refill the ring of every masked sub-environment (see :func:`frames_reset`)."""
    idx = cuda.grid(1)
    nb, n, npre, nl = buf.shape
    if idx >= nb * n * npre * nl:
        return
    i = idx % nl
    t = idx // nl
    p = t % npre
    t = t // npre
    slot = t % n
    b = t // n
    s = pos[b]
    if s < 0 or s >= n:
        if i == 0 and p == 0 and slot == 0:
            _flag_bad(bad, b)
        return
    if use_mask and not mask[b]:
        return
    newest = s - 1
    if newest < 0:
        newest = n - 1
    if same or slot == newest:
        buf[b, slot, p, i] = frame[b, p, i]
    else:
        buf[b, slot, p, i] = value


@cuda.jit
def _stack_offline_kernel(x, init, start, has_init, same, value, out):
    """Windows of ``N`` frames along time, restarted at every episode start.

    ``x`` ``[B, T, P, L]``, ``out`` ``[B, T, P, N, L]``; the rules are those of
    the CPU kernel. The episode start ``u`` of step ``t`` matters only when it
    falls inside the window, so each thread looks back at most ``N - 1`` steps.
    """
    idx = cuda.grid(1)
    nb, nt, npre, n, nl = out.shape
    if idx >= nb * nt * npre * n * nl:
        return
    i = idx % nl
    r = idx // nl
    j = r % n
    r = r // n
    p = r % npre
    r = r // npre
    t = r % nt
    b = r // nt
    lo = t - n + 1
    u = lo
    if u < 0:
        u = 0
    k = t
    while k > lo and k > 0:
        if start[b, k]:
            u = k
            break
        k -= 1
    s = t - n + 1 + j
    if s >= u:
        out[b, t, p, j, i] = x[b, s, p, i]
    elif has_init and (same or s == u - 1):
        out[b, t, p, j, i] = init[b, u, p, i]
    elif same:
        out[b, t, p, j, i] = x[b, u, p, i]
    else:
        out[b, t, p, j, i] = value


@cuda.jit
def _starts_kernel(mask, is_done, start):
    """``start[b, t]``: an episode begins at ``t`` (from done or reset flags)."""
    idx = cuda.grid(1)
    nb, nt = start.shape
    if idx >= nb * nt:
        return
    t = idx % nt
    b = idx // nt
    if t == 0:
        start[b, t] = True
    elif is_done:
        start[b, t] = mask[b, t - 1]
    else:
        start[b, t] = mask[b, t]


@cuda.jit(device=True)
def _episode_end(end, b, t, n, nt):
    """The last step of the episode of step ``t``, looked for at most ``N - 1`` steps ahead."""
    hi = t + n - 1
    if hi > nt - 1:
        hi = nt - 1
    k = t
    while k < hi:
        if end[b, k]:
            return k
        k += 1
    return hi


@cuda.jit(device=True)
def _episode_start(start, b, t, n):
    """The first step of the episode of step ``t``, looked for at most ``N - 1`` steps back."""
    lo = t - n + 1
    if lo < 0:
        lo = 0
    k = t
    while k > lo:
        if start[b, k]:
            return k
        k -= 1
    return lo


@cuda.jit
def _stack_offline_future_kernel(x, end, same, value, out):
    """Windows of the ``N`` upcoming frames, cut at episode ends (the CPU kernel's rules)."""
    idx = cuda.grid(1)
    nb, nt, npre, n, nl = out.shape
    if idx >= nb * nt * npre * n * nl:
        return
    i = idx % nl
    r = idx // nl
    j = r % n
    r = r // n
    p = r % npre
    r = r // npre
    t = r % nt
    b = r // nt
    e = _episode_end(end, b, t, n, nt)
    s = t + j
    if s <= e:
        out[b, t, p, j, i] = x[b, s, p, i]
    elif same:
        out[b, t, p, j, i] = x[b, e, p, i]
    else:
        out[b, t, p, j, i] = value


@cuda.jit
def _ends_kernel(mask, is_done, end):
    """``end[b, t]``: an episode ends at ``t`` (from done or reset flags)."""
    idx = cuda.grid(1)
    nb, nt = end.shape
    if idx >= nb * nt:
        return
    t = idx % nt
    b = idx // nt
    if t == nt - 1:
        end[b, t] = True
    elif is_done:
        end[b, t] = mask[b, t]
    else:
        end[b, t] = mask[b, t + 1]


@cuda.jit
def _window_mask_kernel(bounds, future, out):
    """``out[b, t, j]``: window slot ``j`` of step ``t`` is padding (``bounds``: starts, or ends if ``future``)."""
    idx = cuda.grid(1)
    nb, nt, n = out.shape
    if idx >= nb * nt * n:
        return
    j = idx % n
    r = idx // n
    t = r % nt
    b = r // nt
    if future:
        out[b, t, j] = t + j > _episode_end(bounds, b, t, n, nt)
    else:
        out[b, t, j] = t - n + 1 + j < _episode_start(bounds, b, t, n)


# ----------------------------------------------------------------- helpers
def _launch(kernel, n, stream, *args):
    """Run ``kernel`` with one thread per each of ``n`` elements."""
    kernel[blocks_for(n), THREADS_PER_BLOCK, stream](*args)


def _state(buffer, pos, frame, fn):
    """Check the device ring state and ``frame``; return ``(buffer, pos, frame, B, N, frame_shape)``."""
    buffer = device_array(buffer, fn, "buffer")
    pos = device_array(pos, fn, "pos")
    if np.dtype(pos.dtype) != np.int64:
        raise TypeError(f"{fn} (CUDA) requires pos of dtype int64, got {np.dtype(pos.dtype)}")
    pshape, bshape = tuple(pos.shape), tuple(buffer.shape)
    nbd = len(pshape)
    if len(bshape) < nbd + 1 or bshape[:nbd] != pshape:
        raise ValueError(
            f"{fn} (CUDA) requires buffer of shape [*batch, N, *frame] with batch = pos.shape = {pshape}, "
            f"got {bshape}"
        )
    n = bshape[nbd]
    if n < 1:
        raise ValueError(f"{fn} (CUDA) requires N >= 1 history slots, got buffer of shape {bshape}")
    frame_shape = bshape[nbd + 1 :]
    check_contiguous(buffer, fn, "buffer")
    check_contiguous(pos, fn, "pos")
    if frame is not None:
        frame = device_array(frame, fn, "frame")
        if tuple(frame.shape) != pshape + frame_shape:
            raise ValueError(
                f"{fn} (CUDA) requires frame of shape {pshape + frame_shape} (batch + buffer frame shape), "
                f"got {tuple(frame.shape)}"
            )
        if np.dtype(frame.dtype) != np.dtype(buffer.dtype):
            raise TypeError(
                f"{fn} (CUDA) requires frame of the buffer's dtype {np.dtype(buffer.dtype)}, "
                f"got {np.dtype(frame.dtype)}"
            )
        check_contiguous(frame, fn, "frame")
        if overlaps(frame, buffer):
            raise ValueError(f"{fn} (CUDA) requires frame not to overlap buffer")
    nb = int(np.prod(pshape, dtype=np.int64))
    return buffer, pos, frame, nb, n, frame_shape


def _check_flag(check, fn):
    if not isinstance(check, (bool, np.bool_)):
        raise TypeError(f"{fn} (CUDA) requires check to be a bool, got {type(check).__name__}")
    return bool(check)


def _bad_flag(stream):
    bad = scratch("frames.bad", (1,), np.int64, stream)
    _fill_kernel[1, 1, stream](bad, _NO_BAD)
    return bad


def _raise_bad(bad, pos, n, fn, stream):
    """Read the first bad index back (waiting for ``stream``) and raise if there is one."""
    first = int(bad.copy_to_host(stream=stream)[0])
    if stream:
        stream.synchronize()
    if first != _NO_BAD:
        value = int(pos.reshape(pos.size)[first : first + 1].copy_to_host(stream=stream)[0])
        raise ValueError(f"{fn} (CUDA) requires 0 <= pos < N = {n}, got pos = {value} at flat index {first}")


# ---------------------------------------------------------------- functions
def frames_state(batch_shape, n, frame_shape, dtype=np.float32, stream=0):
    """A zeroed device ring ``(buffer, pos)``, as :func:`numbarl.core.frames.frames_state`.

    Raises:
        TypeError: ``n`` not an int. ValueError: ``n < 1``.

    Examples:
        >>> buffer, pos = frames_state((2,), 4, (1, 8, 8), np.uint8)
        >>> buffer.shape, pos.copy_to_host(), int(buffer.copy_to_host().max())
        ((2, 4, 1, 8, 8), array([0, 0]), 0)
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"frames_state (CUDA) requires n to be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"frames_state (CUDA) requires n >= 1, got {n}")
    batch_shape, frame_shape = tuple(batch_shape), tuple(frame_shape)
    buffer = cuda.device_array(batch_shape + (int(n),) + frame_shape, dtype=dtype, stream=stream)
    pos = cuda.device_array(batch_shape, dtype=np.int64, stream=stream)
    for a in (buffer, pos):
        if a.size:
            _launch(_fill_kernel, a.size, stream, a.reshape(a.size), 0)
    return buffer, pos


def frames_push(buffer, pos, frame, out=None, dim=None, stream=0, check=True):
    """Append ``frame`` to the device ring and write the ordered stack (oldest first).

    Same arguments and results as :func:`numbarl.core.frames.frames_push`,
    for C-contiguous device arrays. One kernel, one block per
    sub-environment: it writes the frame into its slot, the ordered stack
    into ``out`` and advances ``pos`` (plus one that clears the position
    check when ``check``).

    Args:
        buffer, pos: the device ring state (updated in place).
        frame: ``[*batch, *frame]`` device array of the buffer's dtype, or
            None when the frames were already written into the slots ``pos``.
        out: stack device array, or None to allocate one.
        dim: None for a new axis, or a negative frame axis to concatenate along.
        stream: CUDA stream to run on.
        check: read back the position check and raise on a bad ``pos``
            (waits for the stream); False leaves sub-environments with a bad
            ``pos`` untouched without reading anything back.

    Returns:
        ``out`` as given, or the new device array.

    Raises:
        TypeError, ValueError: as the CPU function, and for host or
            non-contiguous arrays.

    Examples:
        >>> buffer, pos = frames_state((), 3, (2,))
        >>> frames_reset(buffer, pos, cuda.to_device(np.array([1.0, 2.0], np.float32)))
        >>> frames_push(buffer, pos, cuda.to_device(np.array([3.0, 4.0], np.float32)), dim=-1).copy_to_host()
        array([1., 2., 1., 2., 3., 4.], dtype=float32)
    """
    fn = "frames_push"
    check = _check_flag(check, fn)
    buffer, pos, frame, nb, n, frame_shape = _state(buffer, pos, frame, fn)
    p, size = _cpu._split(frame_shape, dim, fn)
    others = (("buffer", buffer), ("frame", frame), ("pos", pos))
    result, dev = prepare_out(out, _cpu._stack_shape(tuple(pos.shape), n, frame_shape, dim), buffer.dtype, fn,
                              stream, others)
    if nb == 0 or size == 0:
        return result
    buf4 = buffer.reshape(nb, n, p, size)
    pos1 = pos.reshape(nb)
    # without a frame the kernel never reads it: any [B, P, L] array will do
    frame3 = buf4[:, 0] if frame is None else frame.reshape(nb, p, size)
    ov = dev.reshape(nb, p, n, size)
    # without check nothing reads the flag back: skip the launch that clears it
    bad = _bad_flag(stream) if check else scratch("frames.bad", (1,), np.int64, stream)
    _push_kernel[nb, PUSH_THREADS, stream](buf4, pos1, frame3, frame is not None, ov, bad)
    if check:
        _raise_bad(bad, pos, n, fn, stream)
    return result


def frames_next_slot(buffer, pos, stream=0):
    """Device view ``[*batch, *frame]`` of the slots the next :func:`frames_push` writes.

    Same contract as :func:`numbarl.core.frames.frames_next_slot`: valid when
    every sub-environment has the same position, which holds for
    sub-environments pushed together (a reset does not move ``pos``). Write
    the new frames there, then call ``frames_push(buffer, pos, None, ...)``.

    ``pos`` is copied to the host to find the slot, which waits for
    ``stream``. The view has the buffer's strides: it is C-contiguous only
    when the batch has one element, so kernels that require a contiguous
    ``out`` (the ``numbarl.core.cuda.pixels`` functions) can write it only then.

    Args:
        buffer, pos: the device ring state (see :func:`frames_push`); not modified.
        stream: CUDA stream that the read of ``pos`` waits for.

    Returns:
        A device array view of ``buffer``.

    Raises:
        TypeError: host arrays or ``pos`` not int64.
        ValueError: the positions differ or lie outside ``[0, N)``, or the
            ring state is inconsistent.

    Examples:
        >>> buffer, pos = frames_state((2,), 3, (1,))
        >>> frames_reset(buffer, pos, cuda.to_device(np.zeros((2, 1), np.float32)))
        >>> slot = frames_next_slot(buffer, pos)
        >>> slot[:] = np.array([[1.0], [2.0]], np.float32)
        >>> frames_push(buffer, pos, None, dim=-1).copy_to_host()
        array([[0., 0., 1.],
               [0., 0., 2.]], dtype=float32)
    """
    fn = "frames_next_slot"
    buffer, pos, _, nb, n, _ = _state(buffer, pos, None, fn)
    lead = (slice(None),) * len(pos.shape)
    if nb == 0:
        return buffer[lead + (0,)]
    host = pos.reshape(nb).copy_to_host(stream=stream)
    if stream:
        stream.synchronize()
    first = int(host[0])
    if not (host == first).all():
        raise ValueError(f"{fn} (CUDA) requires equal positions in pos, got {host.min()} to {host.max()}; "
                         "use frames_push with frame arrays instead")
    if not 0 <= first < n:
        raise ValueError(f"{fn} (CUDA) requires 0 <= pos < N = {n}, got {first}")
    return buffer[lead + (first,)]


def frames_reset(buffer, pos, frame, mask=None, padding="same", padding_value=0.0, out=None, dim=None, stream=0,
                 check=True):
    """Restart the history of the sub-environments selected by ``mask``, on the GPU.

    Same arguments and results as :func:`numbarl.core.frames.frames_reset`,
    for C-contiguous device arrays. ``mask`` is a bool device array
    ``[*batch]``; a host bool array (or a plain bool) is copied over.

    Raises:
        TypeError, ValueError: as the CPU function, and for host or
            non-contiguous ring arrays.

    Examples:
        >>> buffer, pos = frames_state((2,), 3, (1,))
        >>> frames_reset(buffer, pos, cuda.to_device(np.array([[7.0], [8.0]], np.float32)))
        >>> out = cuda.device_array((2, 3), np.float32)
        >>> frames_reset(buffer, pos, cuda.to_device(np.array([[9.0], [0.0]], np.float32)),
        ...              mask=np.array([True, False]), padding="constant",
        ...              padding_value=-1.0, out=out, dim=-1).copy_to_host()
        array([[-1., -1.,  9.],
               [ 8.,  8.,  8.]], dtype=float32)
    """
    fn = "frames_reset"
    check = _check_flag(check, fn)
    buffer, pos, frame, nb, n, frame_shape = _state(buffer, pos, frame, fn)
    if frame is None:
        raise TypeError(f"{fn} (CUDA) requires frame to be a CUDA device array, got NoneType")
    if padding not in _cpu._PADDINGS:
        raise ValueError(f"{fn} (CUDA) requires padding 'same' or 'constant', got {padding!r}")
    pshape = tuple(pos.shape)
    use_mask = mask is not None
    if use_mask:
        if is_device_array(mask):
            mask = device_array(mask, fn, "mask")
        elif isinstance(mask, (bool, np.bool_, np.ndarray)):
            mask = np.asarray(mask)
            if mask.dtype != np.bool_:
                raise TypeError(f"{fn} (CUDA) requires mask of dtype bool, got {mask.dtype}")
            mask = cuda.to_device(np.ascontiguousarray(mask), stream=stream)
        else:
            raise TypeError(f"{fn} (CUDA) requires mask to be a bool array or None, got {type(mask).__name__}")
        if np.dtype(mask.dtype) != np.bool_:
            raise TypeError(f"{fn} (CUDA) requires mask of dtype bool, got {np.dtype(mask.dtype)}")
        if tuple(mask.shape) != pshape:
            raise ValueError(f"{fn} (CUDA) requires mask of shape {pshape} (the batch shape), got {tuple(mask.shape)}")
        check_contiguous(mask, fn, "mask")
    if out is not None or dim is not None:
        _cpu._split(frame_shape, dim, fn)
    result = dev = None
    if out is not None:
        result, dev = prepare_out(out, _cpu._stack_shape(pshape, n, frame_shape, dim), buffer.dtype, fn, stream,
                                  (("buffer", buffer), ("frame", frame), ("pos", pos)))
    size = int(np.prod(frame_shape, dtype=np.int64))
    if nb == 0 or size == 0:
        return result
    buf4 = buffer.reshape(nb, n, 1, size)
    pos1 = pos.reshape(nb)
    frame3 = frame.reshape(nb, 1, size)
    mask1 = mask.reshape(nb) if use_mask else pos1
    value = np.array(padding_value).astype(np.dtype(buffer.dtype))[()]
    bad = _bad_flag(stream)
    _launch(_reset_kernel, buf4.size, stream, buf4, pos1, frame3, mask1, use_mask, padding == "same", value, bad)
    if dev is not None:
        p, size = _cpu._split(frame_shape, dim, fn)
        ov = dev.reshape(nb, p, n, size)
        _launch(_stack_kernel, ov.size, stream, buffer.reshape(nb, n, p, size), pos1, ov, bad)
    if check:
        _raise_bad(bad, pos, n, fn, stream)
    return result


def frames_stack(buffer, pos, out=None, dim=None, stream=0, check=True):
    """Write the current ordered stack (oldest first) of the device ring.

    Same arguments and results as :func:`numbarl.core.frames.frames_stack`,
    for C-contiguous device arrays; ``check`` as in :func:`frames_push`.

    Raises:
        TypeError, ValueError: as the CPU function.

    Examples:
        >>> buffer, pos = frames_state((), 2, (1,))
        >>> frames_reset(buffer, pos, cuda.to_device(np.array([3.0], np.float32)), padding="constant")
        >>> frames_stack(buffer, pos, dim=-1).copy_to_host()
        array([0., 3.], dtype=float32)
    """
    fn = "frames_stack"
    check = _check_flag(check, fn)
    buffer, pos, _, nb, n, frame_shape = _state(buffer, pos, None, fn)
    p, size = _cpu._split(frame_shape, dim, fn)
    result, dev = prepare_out(out, _cpu._stack_shape(tuple(pos.shape), n, frame_shape, dim), buffer.dtype, fn,
                              stream, (("buffer", buffer), ("pos", pos)))
    if nb == 0 or size == 0:
        return result
    ov = dev.reshape(nb, p, n, size)
    bad = _bad_flag(stream)
    _launch(_stack_kernel, ov.size, stream, buffer.reshape(nb, n, p, size), pos.reshape(nb), ov, bad)
    if check:
        _raise_bad(bad, pos, n, fn, stream)
    return result


def frames_stack_offline(x, done_or_reset_mask, N, dim=None, padding="same", padding_value=0.0, out=None, *,
                         mask_is="done", initial=None, future=False, stream=0):
    """Frame stacks of a stored trajectory ``[B, T, *frame]`` on the GPU.

    Same arguments and results as
    :func:`numbarl.core.frames.frames_stack_offline`, for C-contiguous device
    arrays; one thread per output element.

    Raises:
        TypeError, ValueError: as the CPU function, and for host or
            non-contiguous arrays.

    Examples:
        >>> x = cuda.to_device(np.array([[1, 2, 3, 4]], np.int64)[..., None])  # B=1, T=4, frame (1,)
        >>> done = cuda.to_device(np.array([[False, True, False, False]]))
        >>> frames_stack_offline(x, done, 3, dim=-1).copy_to_host()[0]
        array([[1, 1, 1],
               [1, 1, 2],
               [3, 3, 3],
               [3, 3, 4]])
    """
    fn = "frames_stack_offline"
    x = device_array(x, fn, "x")
    mask = device_array(done_or_reset_mask, fn, "done_or_reset_mask")
    if isinstance(N, (bool, np.bool_)) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"{fn} (CUDA) requires N to be an int, got {type(N).__name__}")
    if N < 1:
        raise ValueError(f"{fn} (CUDA) requires N >= 1, got {N}")
    n = int(N)
    xshape = tuple(x.shape)
    if len(xshape) < 2:
        raise ValueError(f"{fn} (CUDA) requires x of shape [B, T, *frame], got {xshape}")
    nb, nt = xshape[:2]
    frame_shape = xshape[2:]
    if np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"{fn} (CUDA) requires done_or_reset_mask of dtype bool, got {np.dtype(mask.dtype)}")
    if tuple(mask.shape) not in ((nb, nt), (nb, nt, 1)):
        raise ValueError(
            f"{fn} (CUDA) requires done_or_reset_mask of shape {(nb, nt)} or {(nb, nt, 1)}, got {tuple(mask.shape)}"
        )
    if padding not in _cpu._PADDINGS:
        raise ValueError(f"{fn} (CUDA) requires padding 'same' or 'constant', got {padding!r}")
    if mask_is not in ("done", "reset"):
        raise ValueError(f"{fn} (CUDA) requires mask_is 'done' or 'reset', got {mask_is!r}")
    if not isinstance(future, (bool, np.bool_)):
        raise TypeError(f"{fn} (CUDA) requires future to be a bool, got {type(future).__name__}")
    if future and initial is not None:
        raise ValueError(f"{fn} (CUDA) requires initial=None with future=True (initial observations precede past "
                         "windows only)")
    check_contiguous(x, fn, "x")
    check_contiguous(mask, fn, "done_or_reset_mask")
    if initial is not None:
        initial = device_array(initial, fn, "initial")
        if tuple(initial.shape) != xshape:
            raise ValueError(f"{fn} (CUDA) requires initial of the shape of x {xshape}, got {tuple(initial.shape)}")
        if np.dtype(initial.dtype) != np.dtype(x.dtype):
            raise TypeError(
                f"{fn} (CUDA) requires initial of the dtype of x {np.dtype(x.dtype)}, got {np.dtype(initial.dtype)}"
            )
        check_contiguous(initial, fn, "initial")
    if dim is not None and len(frame_shape) == 0:
        raise ValueError(f"{fn} (CUDA) requires frames with at least one axis to concatenate along dim={dim}")
    p, size = _cpu._split(frame_shape, dim, fn)
    shape = _cpu._stack_shape((nb, nt), n, frame_shape, dim)
    result, dev = prepare_out(out, shape, x.dtype, fn, stream, (("x", x), ("initial", initial)))
    if dev.size == 0:
        return result
    x4 = x.reshape(nb, nt, p, size)
    ov = dev.reshape(nb, nt, p, n, size)
    value = np.array(padding_value).astype(np.dtype(x.dtype))[()]
    if future:
        end = scratch("frames.end", (nb, nt), np.bool_, stream)
        _launch(_ends_kernel, nb * nt, stream, mask.reshape(nb, nt), mask_is == "done", end)
        _launch(_stack_offline_future_kernel, ov.size, stream, x4, end, padding == "same", value, ov)
        return result
    start = scratch("frames.start", (nb, nt), np.bool_, stream)
    _launch(_starts_kernel, nb * nt, stream, mask.reshape(nb, nt), mask_is == "done", start)
    init4 = x4 if initial is None else initial.reshape(nb, nt, p, size)
    _launch(_stack_offline_kernel, ov.size, stream, x4, init4, start, initial is not None, padding == "same", value,
            ov)
    return result


def frames_window_mask(done_or_reset_mask, N, *, mask_is="done", future=False, out=None, stream=0):
    """Which window slots of :func:`frames_stack_offline` hold padding, on the GPU.

    Same arguments and result (a bool ``[B, T, N]`` device array) as
    :func:`numbarl.core.frames.frames_window_mask`; one thread per element.

    Raises:
        TypeError, ValueError: as the CPU function, and for host or
            non-contiguous arrays.

    Examples:
        >>> done = cuda.to_device(np.array([[False, True, False, False]]))
        >>> frames_window_mask(done, 3).copy_to_host()[0].astype(int)
        array([[1, 1, 0],
               [1, 0, 0],
               [1, 1, 0],
               [1, 0, 0]])
    """
    fn = "frames_window_mask"
    mask = device_array(done_or_reset_mask, fn, "done_or_reset_mask")
    if isinstance(N, (bool, np.bool_)) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"{fn} (CUDA) requires N to be an int, got {type(N).__name__}")
    if N < 1:
        raise ValueError(f"{fn} (CUDA) requires N >= 1, got {N}")
    n = int(N)
    shape = tuple(mask.shape)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 1):
        raise ValueError(f"{fn} (CUDA) requires done_or_reset_mask of shape [B, T] or [B, T, 1], got {shape}")
    if np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"{fn} (CUDA) requires done_or_reset_mask of dtype bool, got {np.dtype(mask.dtype)}")
    if mask_is not in ("done", "reset"):
        raise ValueError(f"{fn} (CUDA) requires mask_is 'done' or 'reset', got {mask_is!r}")
    if not isinstance(future, (bool, np.bool_)):
        raise TypeError(f"{fn} (CUDA) requires future to be a bool, got {type(future).__name__}")
    check_contiguous(mask, fn, "done_or_reset_mask")
    nb, nt = shape[:2]
    result, dev = prepare_out(out, (nb, nt, n), np.bool_, fn, stream, (("done_or_reset_mask", mask),))
    if dev.size == 0:
        return result
    bounds = scratch("frames.bounds", (nb, nt), np.bool_, stream)
    kernel = _ends_kernel if future else _starts_kernel
    _launch(kernel, nb * nt, stream, mask.reshape(nb, nt), mask_is == "done", bounds)
    _launch(_window_mask_kernel, dev.size, stream, bounds, bool(future), dev.reshape(nb, nt, n))
    return result
