"""Frame stacking for CatFrames: an explicit ring buffer and an offline stacker.

Online state is two arrays that the caller owns and hands in on every call:

* ``buffer`` ``[*batch, N, *frame]``: the last ``N`` frames of every
  sub-environment, in ring order;
* ``pos`` int64 ``[*batch]``: for each sub-environment, the slot the next
  frame is written to, which is also the slot of its oldest frame.

:func:`frames_push` adds a frame and writes the ordered stack (oldest
first), :func:`frames_reset` refills the history of the sub-environments a
mask selects, as TorchRL's ``CatFrames`` does on reset. A reset leaves
``pos`` alone, so sub-environments stepped together keep equal positions.

The stack is written either along a new axis (``dim=None``: ``out`` is
``[*batch, N, *frame]``) or concatenated along an existing frame axis
(``dim < 0``, as ``CatFrames(dim=...)``: that axis of ``out`` is ``N`` times
longer).

:func:`frames_stack_offline` builds the same stacks for a stored
``[B, T, *frame]`` trajectory, restarting at episode boundaries exactly as
``CatFrames.forward`` (its replay-buffer path) does, or the windows of the
``N`` upcoming steps (``future=True``); :func:`frames_window_mask` flags the
window slots that such stacks fill with padding.
"""
import numpy as np
from numbarl.core import _frame_kernels as _fk
from numbarl.core.pixels import _view

__all__ = ["frames_state", "frames_push", "frames_next_slot", "frames_reset", "frames_stack", "frames_stack_offline",
           "frames_window_mask"]

_PADDINGS = ("same", "constant")


def _check_array(a, fn, name):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn} requires {name} to be a numpy.ndarray, got {type(a).__name__}")


def _split(frame_shape, dim, fn):
    """``(P, L)``: frame sizes before and from the concatenation axis ``dim``."""
    if dim is None:
        return 1, int(np.prod(frame_shape, dtype=np.int64))
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{fn} requires dim to be a negative int or None, got {type(dim).__name__}")
    nd = len(frame_shape)
    if not -nd <= dim <= -1:
        raise ValueError(
            f"{fn} requires -{nd} <= dim <= -1 for frames of shape {tuple(frame_shape)} "
            f"(or dim=None to stack along a new axis), got {dim}"
        )
    a = nd + int(dim)
    return int(np.prod(frame_shape[:a], dtype=np.int64)), int(np.prod(frame_shape[a:], dtype=np.int64))


def _stack_shape(lead, n, frame_shape, dim):
    if dim is None:
        return tuple(lead) + (n,) + tuple(frame_shape)
    a = len(frame_shape) + int(dim)
    fs = list(frame_shape)
    fs[a] *= n
    return tuple(lead) + tuple(fs)


def _check_out(out, shape, dtype, fn, others):
    if out is None:
        return np.empty(shape, dtype=dtype)
    _check_array(out, fn, "out")
    if out.shape != tuple(shape):
        raise ValueError(f"{fn} requires out of shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{fn} requires out of dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn} requires a writeable out")
    for name, a in others:
        if np.may_share_memory(out, a):
            raise ValueError(f"{fn} requires out not to overlap {name}")
    return out


def _state_views(buffer, pos, frame, fn):
    """Check the ring state and ``frame``; return ``(B, N, frame_shape, pos as [B])``."""
    _check_array(buffer, fn, "buffer")
    _check_array(pos, fn, "pos")
    if pos.dtype != np.int64:
        raise TypeError(f"{fn} requires pos of dtype int64, got {pos.dtype}")
    nb_dims = pos.ndim
    if buffer.ndim < nb_dims + 1 or buffer.shape[:nb_dims] != pos.shape:
        raise ValueError(
            f"{fn} requires buffer of shape [*batch, N, *frame] with batch = pos.shape = {pos.shape}, "
            f"got {buffer.shape}"
        )
    n = buffer.shape[nb_dims]
    if n < 1:
        raise ValueError(f"{fn} requires N >= 1 history slots, got buffer of shape {buffer.shape}")
    frame_shape = buffer.shape[nb_dims + 1 :]
    if not buffer.flags.writeable or not pos.flags.writeable:
        raise ValueError(f"{fn} requires a writeable buffer and pos")
    nb = int(np.prod(pos.shape, dtype=np.int64))
    pos1 = _view(pos, (nb,))
    if pos1 is None:
        raise ValueError(f"{fn} requires pos to be viewable as one dimension (e.g. C-contiguous)")
    if frame is not None:
        _check_array(frame, fn, "frame")
        if frame.shape != pos.shape + frame_shape:
            raise ValueError(
                f"{fn} requires frame of shape {pos.shape + frame_shape} (batch + buffer frame shape), "
                f"got {frame.shape}"
            )
        if frame.dtype != buffer.dtype:
            raise TypeError(f"{fn} requires frame of the buffer's dtype {buffer.dtype}, got {frame.dtype}")
    return nb, n, frame_shape, pos1


def _buffer_view(buffer, nb, n, p, l, fn):
    buf4 = _view(buffer, (nb, n, p, l))
    if buf4 is None:
        raise ValueError(f"{fn} requires a buffer viewable as [B, N, P, L] without a copy (e.g. C-contiguous)")
    return buf4


def _check_bad(bad, pos1, n, fn):
    if bad >= 0:
        raise ValueError(f"{fn} requires 0 <= pos < N = {n}, got pos = {int(pos1[bad])} at flat index {bad}")


def _out_view(out, shape):
    v = _view(out, shape)
    if v is None:
        return np.empty(shape, dtype=out.dtype), True
    return v, False


def frames_state(batch_shape, n, frame_shape, dtype=np.float32):
    """Allocate an empty ring: ``(buffer, pos)`` of shapes ``[*batch, N, *frame]`` and ``[*batch]``.

    The buffer is zero-filled; call :func:`frames_reset` before the first
    :func:`frames_push` to fill it as TorchRL does on reset.

    Args:
        batch_shape: shape of the batch of sub-environments (``()`` for one).
        n: number of frames kept (``CatFrames``'s ``N``), at least 1.
        frame_shape: shape of one frame.
        dtype: dtype of the frames.

    Raises:
        TypeError: ``n`` not an int. ValueError: ``n < 1``.

    Examples:
        >>> buffer, pos = frames_state((2,), 4, (1, 84, 84), np.uint8)
        >>> buffer.shape, pos.shape, pos.dtype
        ((2, 4, 1, 84, 84), (2,), dtype('int64'))
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"frames_state requires n to be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"frames_state requires n >= 1, got {n}")
    batch_shape, frame_shape = tuple(batch_shape), tuple(frame_shape)
    return np.zeros(batch_shape + (int(n),) + frame_shape, dtype=dtype), np.zeros(batch_shape, dtype=np.int64)


def frames_push(buffer, pos, frame, out=None, dim=None):
    """Append ``frame`` to the ring and write the ordered stack (oldest first).

    Writes ``frame`` into slot ``pos`` of each sub-environment, advances
    ``pos`` (in place) and writes the last ``N`` frames into ``out``.

    Args:
        buffer: ``[*batch, N, *frame]`` ring of past frames (updated in place).
        pos: int64 ``[*batch]`` write positions (updated in place).
        frame: ``[*batch, *frame]`` new frames, of the buffer's dtype; or
            ``None`` when they were already written into the slots ``pos``
            (e.g. a kernel wrote straight into :func:`frames_next_slot`).
        out: optional stack array: ``[*batch, N, *frame]`` when ``dim`` is
            ``None``, else the frame shape with axis ``dim`` ``N`` times longer.
        dim: ``None`` to stack along a new axis, or a negative frame axis to
            concatenate along, as ``CatFrames(dim=...)``.

    Returns:
        The stack (``out`` when given).

    Raises:
        TypeError: non-array arguments, ``pos`` not int64, dtype mismatch.
        ValueError: inconsistent shapes, ``dim`` out of range, ``pos``
            outside ``[0, N)``.

    Examples:
        >>> buffer, pos = frames_state((), 3, (2,))
        >>> frames_reset(buffer, pos, np.array([1.0, 2.0], np.float32))
        >>> frames_push(buffer, pos, np.array([3.0, 4.0], np.float32), dim=-1)
        array([1., 2., 1., 2., 3., 4.], dtype=float32)
        >>> frames_push(buffer, pos, np.array([5.0, 6.0], np.float32))
        array([[1., 2.],
               [3., 4.],
               [5., 6.]], dtype=float32)
    """
    fn = "frames_push"
    nb, n, frame_shape, pos1 = _state_views(buffer, pos, frame, fn)
    p, l = _split(frame_shape, dim, fn)
    others = (("buffer", buffer),) if frame is None else (("buffer", buffer), ("frame", frame))
    out = _check_out(out, _stack_shape(pos.shape, n, frame_shape, dim), buffer.dtype, fn, others)
    if nb == 0 or l == 0:
        return out
    buf4 = _buffer_view(buffer, nb, n, p, l, fn)
    ov, scratch = _out_view(out, (nb, p, n, l))
    if frame is None:
        _check_bad(_fk._advance(buf4, pos1, ov), pos1, n, fn)
    else:
        frame3 = _view(frame, (nb, p, l))
        if frame3 is None:
            frame3 = np.ascontiguousarray(frame).reshape(nb, p, l)
        _check_bad(_fk._push(buf4, pos1, frame3, ov), pos1, n, fn)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


def frames_next_slot(buffer, pos):
    """View ``[*batch, *frame]`` of the slots the next :func:`frames_push` writes.

    Valid when every sub-environment has the same position, which holds for
    sub-environments pushed together (a reset does not move ``pos``). Write
    the new frames there (e.g. as the ``out`` of an image kernel), then call
    ``frames_push(buffer, pos, None, ...)``: the frames are not copied again.

    Raises:
        ValueError: the positions differ, or the ring state is inconsistent.

    Examples:
        >>> buffer, pos = frames_state((2,), 3, (1,))
        >>> frames_reset(buffer, pos, np.zeros((2, 1), np.float32))
        >>> frames_next_slot(buffer, pos)[:] = [[1.0], [2.0]]
        >>> frames_push(buffer, pos, None, dim=-1)
        array([[0., 0., 1.],
               [0., 0., 2.]], dtype=float32)
    """
    fn = "frames_next_slot"
    nb, n, _, pos1 = _state_views(buffer, pos, None, fn)
    if nb == 0:
        return buffer[(slice(None),) * pos.ndim + (0,)]
    first = int(pos1[0])
    if not (pos1 == first).all():
        raise ValueError(f"{fn} requires equal positions in pos, got {pos1.min()} to {pos1.max()}; "
                         "use frames_push with frame arrays instead")
    if not 0 <= first < n:
        raise ValueError(f"{fn} requires 0 <= pos < N = {n}, got {first}")
    return buffer[(slice(None),) * pos.ndim + (first,)]


def frames_reset(buffer, pos, frame, mask=None, padding="same", padding_value=0.0, out=None, dim=None):
    """Restart the history of the sub-environments selected by ``mask``.

    As TorchRL's ``CatFrames`` on reset: with ``padding="same"`` every slot
    becomes a copy of the reset ``frame``; with ``"constant"`` every slot but
    the newest becomes ``padding_value`` and the newest is ``frame``. Other
    sub-environments are untouched; ``pos`` is not changed.

    Args:
        buffer, pos: the ring state (see :func:`frames_push`).
        frame: ``[*batch, *frame]`` reset frames (rows outside ``mask`` are
            ignored).
        mask: bool ``[*batch]`` (a plain bool when there is no batch), or
            ``None`` for all sub-environments.
        padding: ``"same"`` (default) or ``"constant"``.
        padding_value: fill value for ``"constant"`` (cast to the dtype).
        out: if given, the ordered stack of every sub-environment is written
            there, as :func:`frames_push` would (shape set by ``dim``).
        dim: see :func:`frames_push`; only used with ``out``.

    Returns:
        ``out`` (``None`` when not given).

    Raises:
        TypeError: as :func:`frames_push`; ``mask`` not bool.
        ValueError: as :func:`frames_push`; unknown ``padding``.

    Examples:
        >>> buffer, pos = frames_state((2,), 3, (1,))
        >>> frames_reset(buffer, pos, np.array([[7.0], [8.0]], np.float32))
        >>> out = np.empty((2, 3), np.float32)
        >>> frames_reset(buffer, pos, np.array([[9.0], [0.0]], np.float32),
        ...              mask=np.array([True, False]), padding="constant",
        ...              padding_value=-1.0, out=out, dim=-1)
        array([[-1., -1.,  9.],
               [ 8.,  8.,  8.]], dtype=float32)
    """
    fn = "frames_reset"
    nb, n, frame_shape, pos1 = _state_views(buffer, pos, frame, fn)
    if padding not in _PADDINGS:
        raise ValueError(f"{fn} requires padding 'same' or 'constant', got {padding!r}")
    if mask is None:
        mask1 = np.ones(nb, dtype=np.bool_)
    else:
        if isinstance(mask, (bool, np.bool_)):
            mask = np.array(mask)
        _check_array(mask, fn, "mask")
        if mask.dtype != np.bool_:
            raise TypeError(f"{fn} requires mask of dtype bool, got {mask.dtype}")
        if mask.shape != pos.shape:
            raise ValueError(f"{fn} requires mask of shape {pos.shape} (the batch shape), got {mask.shape}")
        mask1 = mask.reshape(nb)
    if out is not None or dim is not None:
        _split(frame_shape, dim, fn)
    if out is not None:
        out = _check_out(out, _stack_shape(pos.shape, n, frame_shape, dim), buffer.dtype, fn,
                         (("buffer", buffer), ("frame", frame)))
    l = int(np.prod(frame_shape, dtype=np.int64))
    if nb == 0 or l == 0:
        return out
    buf4 = _buffer_view(buffer, nb, n, 1, l, fn)
    frame3 = _view(frame, (nb, 1, l))
    if frame3 is None:
        frame3 = np.ascontiguousarray(frame).reshape(nb, 1, l)
    value = np.array(padding_value).astype(buffer.dtype)[()]
    _check_bad(_fk._reset(buf4, pos1, frame3, mask1, padding == "same", value), pos1, n, fn)
    if out is not None:
        frames_stack(buffer, pos, out=out, dim=dim)
    return out


def frames_stack(buffer, pos, out=None, dim=None):
    """Write the current ordered stack (oldest first) without adding a frame.

    Args:
        buffer, pos: the ring state (see :func:`frames_push`); not modified.
        out: optional stack array, shaped as for :func:`frames_push`.
        dim: ``None`` for a new axis, or a negative frame axis to concatenate along.

    Returns:
        The stack (``out`` when given).

    Raises:
        TypeError, ValueError: as :func:`frames_push`.

    Examples:
        >>> buffer, pos = frames_state((), 2, (1,))
        >>> frames_reset(buffer, pos, np.array([3.0], np.float32), padding="constant")
        >>> frames_stack(buffer, pos, dim=-1)
        array([0., 3.], dtype=float32)
    """
    fn = "frames_stack"
    nb, n, frame_shape, pos1 = _state_views(buffer, pos, None, fn)
    p, l = _split(frame_shape, dim, fn)
    out = _check_out(out, _stack_shape(pos.shape, n, frame_shape, dim), buffer.dtype, fn, (("buffer", buffer),))
    if nb == 0 or l == 0:
        return out
    buf4 = _buffer_view(buffer, nb, n, p, l, fn)
    ov, scratch = _out_view(out, (nb, p, n, l))
    _check_bad(_fk._write_stack(buf4, pos1, ov), pos1, n, fn)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


def frames_stack_offline(x, done_or_reset_mask, N, dim=None, padding="same", padding_value=0.0, out=None, *,
                         mask_is="done", initial=None, future=False):
    """Frame stacks of a stored trajectory ``[B, T, *frame]``, episode by episode.

    For each step ``t`` the window holds steps ``t - N + 1 .. t`` of the same
    episode; steps before the episode's first step are padded with that
    first frame (``"same"``) or ``padding_value`` (``"constant"``). This is
    what TorchRL's ``CatFrames.forward`` (the replay-buffer path) computes.

    Episode boundaries come from ``done_or_reset_mask``, ``[B, T]`` or
    ``[B, T, 1]``: with ``mask_is="done"`` (TorchRL's ``("next", "done")``)
    ``True`` at ``t`` means the episode ends after step ``t``, so one starts
    at ``t + 1``; with ``mask_is="reset"`` (e.g. ``"is_init"``) ``True`` at
    ``t`` means one starts at ``t``. Step 0 always starts an episode.

    With ``future=True`` the window of ``t`` holds steps ``t .. t + N - 1``
    of the same episode instead, and the steps after the episode's last step
    are padded with that last frame (``"same"``) or ``padding_value``.

    For ``("next", obs)`` data pass the root observations as ``initial``:
    the window of ``t`` is then taken from ``initial[u], x[u], ..., x[t]``
    (``u`` the episode start), matching the stack of the following root
    step, as ``CatFrames.forward`` does for next-observations.

    Args:
        x: ``[B, T, *frame]`` frames (any dtype).
        done_or_reset_mask: bool ``[B, T]`` or ``[B, T, 1]``.
        N: window length (int >= 1).
        dim: ``None`` (new axis after ``T``) or a negative frame axis to
            concatenate along.
        padding: ``"same"`` or ``"constant"``; padding_value: for ``"constant"``.
        out: optional output (``[B, T, N, *frame]`` or concatenated shape).
        mask_is: ``"done"`` (default) or ``"reset"``.
        initial: optional ``[B, T, *frame]`` root observations (see above).
        future: windows of upcoming steps instead of past ones (no ``initial``).

    Returns:
        The stacks (``out`` when given).

    Raises:
        TypeError: non-array inputs, non-bool mask, non-int ``N``, dtype mismatch.
        ValueError: bad shapes, ``N < 1``, bad ``dim``, ``padding`` or
            ``mask_is``; ``initial`` with ``future=True``.

    Examples:
        >>> x = np.array([[1, 2, 3, 4]], np.int64)[..., None]  # B=1, T=4, frame (1,)
        >>> done = np.array([[False, True, False, False]])
        >>> frames_stack_offline(x, done, 3, dim=-1)[0]
        array([[1, 1, 1],
               [1, 1, 2],
               [3, 3, 3],
               [3, 3, 4]])
        >>> frames_stack_offline(x, done, 3, dim=-1, padding="constant")[0]
        array([[0, 0, 1],
               [0, 1, 2],
               [0, 0, 3],
               [0, 3, 4]])
        >>> frames_stack_offline(x, done, 3, dim=-1, future=True)[0]
        array([[1, 2, 2],
               [2, 2, 2],
               [3, 4, 4],
               [4, 4, 4]])
    """
    fn = "frames_stack_offline"
    _check_array(x, fn, "x")
    n = _check_n(N, fn)
    if x.ndim < 2:
        raise ValueError(f"{fn} requires x of shape [B, T, *frame], got {x.shape}")
    nb, nt = x.shape[:2]
    frame_shape = x.shape[2:]
    mask = _check_bounds_mask(done_or_reset_mask, nb, nt, mask_is, fn)
    if padding not in _PADDINGS:
        raise ValueError(f"{fn} requires padding 'same' or 'constant', got {padding!r}")
    future = _check_future(future, fn)
    if future and initial is not None:
        raise ValueError(f"{fn} requires initial=None with future=True (initial observations precede past windows "
                         "only)")
    if initial is not None:
        _check_array(initial, fn, "initial")
        if initial.shape != x.shape:
            raise ValueError(f"{fn} requires initial of the shape of x {x.shape}, got {initial.shape}")
        if initial.dtype != x.dtype:
            raise TypeError(f"{fn} requires initial of the dtype of x {x.dtype}, got {initial.dtype}")
    if dim is not None and len(frame_shape) == 0:
        raise ValueError(f"{fn} requires frames with at least one axis to concatenate along dim={dim}")
    p, l = _split(frame_shape, dim, fn)
    shape = _stack_shape((nb, nt), n, frame_shape, dim)
    others = (("x", x),) if initial is None else (("x", x), ("initial", initial))
    out = _check_out(out, shape, x.dtype, fn, others)
    if out.size == 0:
        return out
    x4 = np.ascontiguousarray(x).reshape(nb, nt, p, l)
    ov, scratch = _out_view(out, (nb, nt, p, n, l))
    value = np.array(padding_value).astype(x.dtype)[()]
    if future:
        _fk._stack_offline_future(x4, _episode_ends(mask, mask_is), padding == "same", value, ov)
    else:
        init4 = x4 if initial is None else np.ascontiguousarray(initial).reshape(nb, nt, p, l)
        _fk._stack_offline(x4, init4, _episode_starts(mask, mask_is), initial is not None, padding == "same", value,
                           ov)
    if scratch:
        out[...] = ov.reshape(out.shape)
    return out


def frames_window_mask(done_or_reset_mask, N, *, mask_is="done", future=False, out=None):
    """Which window slots of :func:`frames_stack_offline` hold padding.

    ``out[b, t, j]`` is true where slot ``j`` (oldest first) of the window of
    step ``t`` lies outside the step's episode (before its first step, or
    after its last one with ``future=True``), i.e. where the stack holds a
    padding frame. This is TorchRL's ``CatFrames(mask_key=...)`` entry.

    Args:
        done_or_reset_mask: bool ``[B, T]`` or ``[B, T, 1]`` episode
            boundaries, read as in :func:`frames_stack_offline`.
        N: window length (int >= 1).
        mask_is: ``"done"`` (default) or ``"reset"``.
        future: windows of upcoming steps instead of past ones.
        out: optional bool ``[B, T, N]`` output.

    Returns:
        The bool ``[B, T, N]`` mask (``out`` when given).

    Raises:
        TypeError: non-array or non-bool inputs, non-int ``N``.
        ValueError: bad shapes, ``N < 1``, bad ``mask_is``.

    Examples:
        >>> done = np.array([[False, True, False, False]])
        >>> frames_window_mask(done, 3)[0].astype(int)
        array([[1, 1, 0],
               [1, 0, 0],
               [1, 1, 0],
               [1, 0, 0]])
        >>> frames_window_mask(done, 3, future=True)[0].astype(int)
        array([[0, 0, 1],
               [0, 1, 1],
               [0, 0, 1],
               [0, 1, 1]])
    """
    fn = "frames_window_mask"
    n = _check_n(N, fn)
    _check_array(done_or_reset_mask, fn, "done_or_reset_mask")
    if done_or_reset_mask.ndim < 2:
        raise ValueError(f"{fn} requires done_or_reset_mask of shape [B, T] or [B, T, 1], got "
                         f"{done_or_reset_mask.shape}")
    nb, nt = done_or_reset_mask.shape[:2]
    mask = _check_bounds_mask(done_or_reset_mask, nb, nt, mask_is, fn)
    future = _check_future(future, fn)
    out = _check_out(out, (nb, nt, n), np.dtype(np.bool_), fn, (("done_or_reset_mask", mask),))
    if out.size == 0:
        return out
    ov, scratch = _out_view(out, (nb, nt, n))
    if future:
        _fk._window_mask(np.ones((nb, nt), np.bool_), _episode_ends(mask, mask_is), True, ov)
    else:
        _fk._window_mask(_episode_starts(mask, mask_is), np.ones((nb, nt), np.bool_), False, ov)
    if scratch:
        out[...] = ov
    return out


def _check_n(N, fn):
    if isinstance(N, (bool, np.bool_)) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"{fn} requires N to be an int, got {type(N).__name__}")
    if N < 1:
        raise ValueError(f"{fn} requires N >= 1, got {N}")
    return int(N)


def _check_future(future, fn):
    if not isinstance(future, (bool, np.bool_)):
        raise TypeError(f"{fn} requires future to be a bool, got {type(future).__name__}")
    return bool(future)


def _check_bounds_mask(mask, nb, nt, mask_is, fn):
    """``done_or_reset_mask`` checked and viewed as ``[B, T]``."""
    _check_array(mask, fn, "done_or_reset_mask")
    if mask.dtype != np.bool_:
        raise TypeError(f"{fn} requires done_or_reset_mask of dtype bool, got {mask.dtype}")
    if mask.shape not in ((nb, nt), (nb, nt, 1)):
        raise ValueError(f"{fn} requires done_or_reset_mask of shape {(nb, nt)} or {(nb, nt, 1)}, got {mask.shape}")
    if mask_is not in ("done", "reset"):
        raise ValueError(f"{fn} requires mask_is 'done' or 'reset', got {mask_is!r}")
    return mask.reshape(nb, nt)


def _episode_starts(mask, mask_is):
    """``[B, T]`` bool: an episode begins at ``t`` (always at ``t = 0``)."""
    if mask_is == "done":
        start = np.empty(mask.shape, dtype=np.bool_)
        start[:, 1:] = mask[:, :-1]
    else:
        start = mask.copy()
    start[:, 0] = True
    return start


def _episode_ends(mask, mask_is):
    """``[B, T]`` bool: an episode ends at ``t`` (always at ``t = T - 1``)."""
    if mask_is == "done":
        end = mask.copy()
    else:
        end = np.empty(mask.shape, dtype=np.bool_)
        end[:, :-1] = mask[:, 1:]
    end[:, -1] = True
    return end
