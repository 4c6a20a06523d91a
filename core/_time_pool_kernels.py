"""Numba kernel for max pooling over time (the history behind TimeMaxPool).

Arrays reach the kernel with their axes regrouped by
:mod:`numbarl.core.time_pool`:

* ``buf``   ``[T, B, L]``: ``T`` history slots per sub-environment, slot 0
  the newest;
* ``frame`` ``[B, L]``: one new observation per sub-environment;
* ``mask``  ``[B]``: the sub-environments to update;
* ``out``   ``[B, L]``: the elementwise maximum of each updated history, 0
  for the others.

``B`` is the product of the batch axes and ``L`` the product of the
observation axes. The loops run over ``L`` innermost, so each slot is read
and written as one contiguous run.
"""
from numba import njit


@njit(cache=True, nogil=True)
def _push(buf, frame, mask, clear, out):
    """Age the history of each masked sub-environment by one step (or empty it, ``clear``), write ``frame`` in
    slot 0 and the maximum over the slots in ``out``; rows outside ``mask`` of ``out`` become 0.

    A NaN anywhere in a history makes that position's maximum NaN, as ``torch.max`` does.
    """
    n, nb, nl = buf.shape
    for b in range(nb):
        dst = out[b]
        if not mask[b]:
            for i in range(nl):
                dst[i] = 0
            continue
        for k in range(n - 1, 0, -1):
            slot = buf[k, b]
            if clear:
                for i in range(nl):
                    slot[i] = 0
            else:
                older = buf[k - 1, b]
                for i in range(nl):
                    slot[i] = older[i]
        newest = buf[0, b]
        src = frame[b]
        for i in range(nl):
            newest[i] = src[i]
            dst[i] = src[i]
        for k in range(1, n):
            slot = buf[k, b]
            for i in range(nl):
                v = slot[i]
                if v > dst[i] or v != v:
                    dst[i] = v
    return None
