"""Numba kernels for frame stacking (the ring buffer behind CatFrames).

Arrays reach the kernels with their axes regrouped by
:mod:`numbarl.core.frames`:

* ``buf``   ``[B, N, P, L]``: ``N`` history slots per sub-environment;
* ``frame`` ``[B, P, L]``: one frame per sub-environment;
* ``out``   ``[B, P, N, L]``: the ordered stack, oldest first.

``P`` is the product of the frame axes before the concatenation axis and
``L`` the product of that axis and the ones after it, so concatenating ``N``
frames along any axis is a copy of ``N`` blocks of ``L`` values for each of
the ``P`` outer indices. Stacking along a new axis is the case ``P = 1``.

``pos[b]`` is the slot the next frame goes to; it is also the slot of the
oldest frame, so the ordered stack reads slots ``pos, pos + 1, ...`` modulo
``N``. The ring kernels return the first sub-environment whose ``pos`` lies
outside ``[0, N)`` (before touching it), or -1 when all are valid.
"""
from numba import njit


@njit(cache=True, nogil=True)
def _write_stack(buf, pos, out):
    """``out[b, p, j] = buf[b, (pos[b] + j) % N, p]`` for every sub-environment."""
    nb, n, npre, nl = buf.shape
    for b in range(nb):
        s = pos[b]
        if s < 0 or s >= n:
            return b
        for j in range(n):
            slot = s + j
            if slot >= n:
                slot -= n
            for p in range(npre):
                src = buf[b, slot, p]
                dst = out[b, p, j]
                for i in range(nl):
                    dst[i] = src[i]
    return -1


@njit(cache=True, nogil=True)
def _push(buf, pos, frame, out):
    """Write ``frame`` into slot ``pos``, advance ``pos``, write the stack into ``out``."""
    nb, n, npre, nl = buf.shape
    for b in range(nb):
        s = pos[b]
        if s < 0 or s >= n:
            return b
        for p in range(npre):
            src = frame[b, p]
            dst = buf[b, s, p]
            for i in range(nl):
                dst[i] = src[i]
        s += 1
        if s >= n:
            s = 0
        pos[b] = s
    return _write_stack(buf, pos, out)


@njit(cache=True, nogil=True)
def _advance(buf, pos, out):
    """Advance ``pos`` past a frame already written into slot ``pos``; write the stack."""
    n = buf.shape[1]
    for b in range(pos.shape[0]):
        s = pos[b]
        if s < 0 or s >= n:
            return b
        s += 1
        if s >= n:
            s = 0
        pos[b] = s
    return _write_stack(buf, pos, out)


@njit(cache=True, nogil=True)
def _reset(buf, pos, frame, mask, same, value):
    """Refill the history of the sub-environments where ``mask`` is true.

    The newest slot (``pos - 1``) gets ``frame``; the other slots get
    ``frame`` too when ``same``, else ``value``. ``pos`` is unchanged.
    """
    nb, n, npre, nl = buf.shape
    for b in range(nb):
        if pos[b] < 0 or pos[b] >= n:
            return b
        if not mask[b]:
            continue
        newest = pos[b] - 1
        if newest < 0:
            newest = n - 1
        for slot in range(n):
            if same or slot == newest:
                for p in range(npre):
                    src = frame[b, p]
                    dst = buf[b, slot, p]
                    for i in range(nl):
                        dst[i] = src[i]
            else:
                for p in range(npre):
                    dst = buf[b, slot, p]
                    for i in range(nl):
                        dst[i] = value
    return -1


@njit(cache=True, nogil=True)
def _stack_offline(x, init, start, has_init, same, value, out):
    """Windows of ``N`` frames along time, restarted at every episode start.

    ``x`` is ``[B, T, P, L]``, ``out`` ``[B, T, P, N, L]``, ``start[b, t]``
    true where an episode begins at ``t`` (``t = 0`` always begins one).
    Window slot ``j`` of step ``t`` holds step ``s = t - N + 1 + j`` when it
    lies in the current episode (which began at ``u``). Otherwise:

    * with ``has_init`` (``x`` holds next-observations and ``init`` the
      observations they follow), slot ``s = u - 1`` holds ``init[b, u]``;
    * remaining slots hold ``init[b, u]`` (``has_init``) or ``x[b, u]``
      when ``same``, else ``value``.
    """
    nb, nt, npre, nl = x.shape
    n = out.shape[3]
    for b in range(nb):
        u = 0
        for t in range(nt):
            if t > 0 and start[b, t]:
                u = t
            for j in range(n):
                s = t - n + 1 + j
                if s >= u:
                    src_t = s
                    use_init = False
                elif has_init and (same or s == u - 1):
                    src_t = u
                    use_init = True
                elif same:
                    src_t = u
                    use_init = False
                else:
                    src_t = -1
                    use_init = False
                for p in range(npre):
                    dst = out[b, t, p, j]
                    if src_t < 0:
                        for i in range(nl):
                            dst[i] = value
                    elif use_init:
                        src = init[b, src_t, p]
                        for i in range(nl):
                            dst[i] = src[i]
                    else:
                        src = x[b, src_t, p]
                        for i in range(nl):
                            dst[i] = src[i]


@njit(cache=True, nogil=True)
def _stack_offline_future(x, end, same, value, out):
    """Windows of the ``N`` upcoming frames along time, cut at every episode end.

    ``x`` is ``[B, T, P, L]``, ``out`` ``[B, T, P, N, L]``, ``end[b, t]`` true
    where an episode ends at ``t`` (``t = T - 1`` always ends one). Window
    slot ``j`` of step ``t`` holds step ``s = t + j`` when it lies in the
    current episode (which ends at ``e``); otherwise ``x[b, e]`` when
    ``same``, else ``value``.
    """
    nb, nt, npre, nl = x.shape
    n = out.shape[3]
    for b in range(nb):
        e = nt - 1
        for t in range(nt - 1, -1, -1):
            if end[b, t]:
                e = t
            for j in range(n):
                s = t + j
                if s <= e:
                    src_t = s
                elif same:
                    src_t = e
                else:
                    src_t = -1
                for p in range(npre):
                    dst = out[b, t, p, j]
                    if src_t < 0:
                        for i in range(nl):
                            dst[i] = value
                    else:
                        src = x[b, src_t, p]
                        for i in range(nl):
                            dst[i] = src[i]


@njit(cache=True, nogil=True)
def _window_mask(start, end, future, out):
    """``out[b, t, j]`` true where window slot ``j`` of step ``t`` is padding.

    ``start``/``end`` ``[B, T]`` flag the first/last step of each episode;
    ``out`` is ``[B, T, N]``. Past windows (``future`` false) pad the slots
    before the episode's first step, future windows those after its last.
    """
    nb, nt, n = out.shape
    for b in range(nb):
        if future:
            e = nt - 1
            for t in range(nt - 1, -1, -1):
                if end[b, t]:
                    e = t
                for j in range(n):
                    out[b, t, j] = t + j > e
        else:
            u = 0
            for t in range(nt):
                if start[b, t]:
                    u = t
                for j in range(n):
                    out[b, t, j] = t - n + 1 + j < u
