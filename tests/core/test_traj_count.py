"""numbarl.core.traj_count: trajectory ids of a reset against a per-entry Python loop."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbarl.core.traj_count import assign_ids, reset_count


def reference(ids, mask, start):
    """Ids ``start, start + 1, ...`` given entry by entry, in C order, to the rows where ``mask`` holds."""
    out = ids.copy()
    nxt = start
    for index in np.ndindex(*out.shape):
        row = index[:mask.ndim] if mask is not None else None
        if mask is None or mask[row]:
            out[index] = nxt
            nxt += 1
    return out, nxt - start


@settings(max_examples=60, deadline=None)
@given(batch=st.sampled_from([(), (1,), (4,), (2, 3)]), tail=st.sampled_from([(1,), (2,), (2, 2)]),
       seed=st.integers(0, 2**16), start=st.integers(0, 2**40), with_mask=st.booleans())
def test_assign_ids_matches_loop(batch, tail, seed, start, with_mask):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 100, size=batch + tail).astype(np.int64)
    mask = (rng.random(batch) < 0.5) if (with_mask and batch) else None
    want, n = reference(ids, mask, start)
    assert reset_count(ids, mask) == n
    assign_ids(ids, mask, start)
    np.testing.assert_array_equal(ids, want)


def test_bad_input():
    ids = np.zeros((3, 1), dtype=np.int64)
    with pytest.raises(TypeError, match="ids must have dtype int64"):
        assign_ids(ids.astype(np.float64), None, 0)
    with pytest.raises(TypeError, match="mask must be a bool"):
        assign_ids(ids, np.ones(3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="leading dims"):
        reset_count(ids, np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="C-contiguous"):
        assign_ids(np.zeros((3, 2), dtype=np.int64)[:, ::2], None, 0)
