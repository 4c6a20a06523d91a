"""numbarl.core.distributed.moments_merge_ranks against naive pooled moments (ranks run as threads)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numbarl.core.distributed import LocalRanks, moments_merge_ranks
from numbarl.core.moments import moments_init, moments_update


def _states(datas, decay=1.0):
    states = []
    for x in datas:
        s = moments_init(x.shape[1:])
        moments_update(x, *s.arrays, decay=decay)
        states.append(s)
    return states


def _merge(states, **kw):
    ranks = LocalRanks(len(states))
    ranks.run(lambda r: moments_merge_ranks([states[r].arrays], ranks.reducer(r), np.zeros, **kw))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=2, max_size=4), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_decay_one_equals_pooled_data(sizes, f, seed):
    rng = np.random.default_rng(seed)
    datas = [rng.normal(1e4, 1.0 + i, size=(n, f)) for i, n in enumerate(sizes)]
    states = _states(datas)
    _merge(states)
    pooled = np.concatenate(datas)
    for s in states:
        np.testing.assert_allclose(s.loc, pooled.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.m2 / s.weight[0], pooled.var(0), rtol=1e-9)
        assert s.count[0] == len(pooled) and s.weight[0] == len(pooled)


def test_base_counts_merged_statistics_once():
    rng = np.random.default_rng(0)
    first = [rng.normal(size=(4 + i, 2)) for i in range(3)]
    states = _states(first)
    _merge(states)
    base = [tuple(a.copy() for a in s.arrays) for s in states]
    more = [rng.normal(3.0, size=(2 + i, 2)) for i in range(3)]
    for s, x in zip(states, more):
        moments_update(x, *s.arrays)
    ranks = LocalRanks(3)
    ranks.run(lambda r: moments_merge_ranks([states[r].arrays], ranks.reducer(r), np.zeros,
                                            base=None if r == 0 else [base[r]]))
    pooled = np.concatenate(first + more)
    for s in states:
        np.testing.assert_allclose(s.loc, pooled.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.m2 / s.weight[0], pooled.var(0), rtol=1e-9)
        assert s.count[0] == len(pooled)


def test_average_keeps_mean_and_variance_divides_weight():
    rng = np.random.default_rng(1)
    datas = [rng.normal(i, size=(5, 3)) for i in range(2)]
    states = _states(datas, decay=0.9)
    w = np.array([s.weight[0] for s in states])
    mu = np.stack([s.loc for s in states])
    m2 = np.stack([s.m2 for s in states])
    mean = (w[:, None] * mu).sum(0) / w.sum()
    var = (m2 + w[:, None] * (mu - mean) ** 2).sum(0) / w.sum()
    _merge(states, average=True, n_ranks=2)
    for s in states:
        np.testing.assert_allclose(s.loc, mean, rtol=1e-12)
        np.testing.assert_allclose(s.m2 / s.weight[0], var, rtol=1e-12)
        np.testing.assert_allclose(s.weight[0], w.sum() / 2, rtol=1e-15)


def test_failing_sum_leaves_states_unchanged():
    s = _states([np.arange(6.0).reshape(3, 2)])[0]
    before = [a.copy() for a in s.arrays]
    calls = []

    def reduce_sum(buf):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("network down")

    with pytest.raises(OSError):
        moments_merge_ranks([s.arrays], reduce_sum, np.zeros)
    for a, b in zip(s.arrays, before):
        np.testing.assert_array_equal(a, b)


def test_base_of_wrong_length_raises():
    s = _states([np.ones((2, 1))])[0]
    with pytest.raises(ValueError, match="one state per key"):
        moments_merge_ranks([s.arrays], lambda b: None, np.zeros, base=[s.arrays, s.arrays])
