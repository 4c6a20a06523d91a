"""Running moments merged across ranks: Chan's parallel formula over two sums.

Each rank holds, per key, the moments of :class:`numbarl.core.moments.MomentState`
(``loc``, ``m2``, ``weight``, ``count``). :func:`moments_merge_ranks` turns
them into the moments of the union of every rank's samples, identical on
every rank, with two sums across ranks (an all-reduce; the caller passes the
function that does it):

1. per key ``[w, c, w * loc]`` (F + 2 float64 values): the total weight
   ``W``, the total count and ``S``; the global mean is ``g = S / W``;
2. per key ``m2 + w * (loc - g)**2`` (F values): the centred sum of squares
   about ``g``, ``M2``.

That is Chan's formula written as sums: nothing cancels (the deviations are
taken about the global mean, in float64), and the result is exact up to
rounding for ``decay == 1``. All keys go in one buffer, so a merge costs two
all-reduces of ``sum(2 F + 2)`` float64 values whatever the number of keys.

Repeated merges (e.g. once per collected batch) must not count the
statistics merged last time once per rank. ``base`` gives, per key, the
moments every rank held after the previous merge; a rank that passes it
sends only what it gained since (its moments minus the base, as sums), so
one rank (and only one) passes ``base=None``. With ``average=True`` (meant
for ``decay < 1``, where each rank decayed the old statistics by its own
factor and no base can be taken out) the weights are merged as they are and
the total weight, ``M2`` and count are divided by the number of ranks: the
mean and variance are those of the union, while the weight stays that of
one rank's stream, so statistics already merged keep their weight.

The arithmetic uses only the operators of NumPy arrays (``+ - * / **``,
``abs``, ``//``, slicing, ``reshape`` and item assignment), so the same
function runs on NumPy arrays and on other array types that have them (the
torch layer passes CUDA tensors, which then stay on their device).

Examples:
    >>> import numpy as np
    >>> from numbarl.core.moments import moments_init, moments_update
    >>> ranks = [moments_init(()), moments_init(())]
    >>> _ = moments_update(np.array([1.0, 2.0]), *ranks[0].arrays)
    >>> _ = moments_update(np.array([3.0, 4.0, 5.0]), *ranks[1].arrays)
    >>> sums = LocalRanks(2)  # runs the two ranks in turn, for the example
    >>> sums.run(lambda r: moments_merge_ranks([ranks[r].arrays], sums.reducer(r), np.zeros))
    >>> ranks[0].loc, ranks[0].var, ranks[0].count, ranks[1].loc
    (array(3.), array(2.), array([5]), array(3.))
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["LocalRanks", "moments_merge_ranks", "rank_buffer_sizes"]


def rank_buffer_sizes(sizes) -> tuple:
    """Lengths of the two buffers summed across ranks for keys of ``sizes`` features each.

    Examples:
        >>> rank_buffer_sizes([3, 1])
        (8, 4)
    """
    sizes = [int(s) for s in sizes]
    return sum(sizes) + 2 * len(sizes), sum(sizes)


def _relu(a):
    return (a + abs(a)) * 0.5


def moments_merge_ranks(states, reduce_sum, zeros, base=None, average: bool = False, n_ranks: int = 1) -> None:
    """Merge the moments ``states`` of this rank with those of every other rank, in place.

    Every rank of the group must call it with states of the same feature
    shapes, in the same order (check that first: a sum of buffers of other
    lengths fails or hangs in the all-reduce).

    Args:
        states: list of ``(loc, m2, weight, count)`` (float64, float64,
            float64 ``(1,)``, int64 ``(1,)``), one per key.
        reduce_sum: ``reduce_sum(buf)`` replaces the 1-D float64 ``buf`` by
            its sum over the ranks, in place (an all-reduce).
        zeros: ``zeros(n)``: a new 1-D float64 zero array of length ``n``
            where the states live.
        base: None, or a list of ``(loc, m2, weight, count)`` per key: the
            merged moments of the previous call, to take out of this rank's
            contribution (every rank but one passes it; see the module
            docstring). Ignored with ``average``.
        average: divide the merged weight, ``m2`` and count by ``n_ranks``
            (for ``decay < 1``).
        n_ranks: the number of ranks (used with ``average``).

    The states are written only once both sums are done: a failing
    ``reduce_sum`` leaves them as they were.

    Examples:
        >>> import numpy as np
        >>> from numbarl.core.moments import moments_init, moments_update
        >>> s = moments_init((2,))
        >>> _ = moments_update(np.array([[0.0, 1.0], [2.0, 1.0]]), *s.arrays)
        >>> moments_merge_ranks([s.arrays], lambda buf: None, np.zeros)  # a group of one rank
        >>> s.loc, s.m2, s.weight, s.count
        (array([1., 1.]), array([2., 0.]), array([2.]), array([2]))
    """
    if base is not None and (average or len(base) != len(states)):
        base = None if average else _bad_base(len(base), len(states))
    sizes = [int(s[0].reshape(-1).shape[0]) for s in states]
    n1, n2 = rank_buffer_sizes(sizes)
    first, second = zeros(n1), zeros(n2)
    off = 0
    for i, (loc, m2, weight, count) in enumerate(states):
        f = sizes[i]
        first[off:off + 1] = weight
        first[off + 1:off + 2] = count
        first[off + 2:off + 2 + f] = weight * loc.reshape(-1)
        if base is not None:
            bl, bm2, bw, bc = base[i]
            first[off:off + 1] = first[off:off + 1] - bw
            first[off + 1:off + 2] = first[off + 1:off + 2] - bc
            first[off + 2:off + 2 + f] = first[off + 2:off + 2 + f] - bw * bl.reshape(-1)
        off += f + 2
    reduce_sum(first)
    means, off = [], 0
    for f in sizes:
        total = first[off:off + 1]
        means.append(first[off + 2:off + 2 + f] / (total + (total == 0)))
        off += f + 2
    off = 0
    for i, (loc, m2, weight, count) in enumerate(states):
        f, g = sizes[i], means[i]
        part = m2.reshape(-1) + weight * (loc.reshape(-1) - g) ** 2
        if base is not None:
            bl, bm2, bw, bc = base[i]
            part = part - (bm2.reshape(-1) + bw * (bl.reshape(-1) - g) ** 2)
        second[off:off + f] = part
        off += f
    reduce_sum(second)
    scale = 1.0 / n_ranks if average else 1.0
    off1 = off2 = 0
    for i, (loc, m2, weight, count) in enumerate(states):
        f = sizes[i]
        total = first[off1:off1 + 1]
        loc[...] = means[i].reshape(loc.shape)
        m2[...] = _relu(second[off2:off2 + f] * scale).reshape(m2.shape)
        weight[...] = _relu(total * scale)
        count[...] = (_relu(first[off1 + 1:off1 + 2] * scale) + 0.5) // 1
        off1 += f + 2
        off2 += f


def _bad_base(got: int, want: int):
    raise ValueError(f"moments_merge_ranks requires base with one state per key ({want}), got {got}")


class LocalRanks:
    """``n`` ranks run as threads of this process, with a sum across them: for examples and tests.

    ``run(fn)`` calls ``fn(rank)`` for every rank, each in its own thread;
    ``reducer(rank)`` is the ``reduce_sum`` of that rank for
    :func:`moments_merge_ranks`: it waits for every rank's buffer and gives
    each the sum, added in rank order.

    Examples:
        >>> import numpy as np
        >>> ranks = LocalRanks(3)
        >>> out = [np.full(2, float(r)) for r in range(3)]
        >>> ranks.run(lambda r: ranks.reducer(r)(out[r]))
        >>> out[2]
        array([3., 3.])
    """

    def __init__(self, n: int):
        self.n = int(n)
        self._barrier = threading.Barrier(self.n)
        self._bufs = [None] * self.n

    def reducer(self, rank: int):
        def reduce_sum(buf):
            self._bufs[rank] = np.array(buf, dtype=np.float64)
            self._barrier.wait()
            total = self._bufs[0].copy()
            for other in self._bufs[1:]:
                total += other
            self._barrier.wait()
            buf[...] = total

        return reduce_sum

    def run(self, fn) -> None:
        errors = []

        def target(rank):
            try:
                fn(rank)
            except BaseException as err:  # re-raised below, in the caller's thread
                errors.append(err)
                self._barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
