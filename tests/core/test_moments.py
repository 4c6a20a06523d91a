"""Tests of numbarl.core.moments against the references in naive_moments."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naive_moments import ema_weights, naive_ema, naive_mean_var, naive_weighted
from numbarl.core.moments import (
    MomentState,
    NonFiniteError,
    moments_init,
    moments_merge,
    moments_normalize,
    moments_normalize_unchecked,
    moments_update,
    moments_update_normalize,
    moments_update_normalize_unchecked,
    moments_update_unchecked,
)

FEATURE_SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)
SPLITS = st.lists(st.integers(1, 24), min_size=1, max_size=6)
OFFSETS = st.sampled_from([0.0, 1.0, -50.0, 1e3])
SCALES = st.sampled_from([1e-2, 1.0, 30.0])
DTYPES = st.sampled_from([np.float32, np.float64])


def make_data(seed, n, feature_shape, offset, scale, dtype):
    rng = np.random.default_rng(seed)
    center = offset + rng.normal(size=feature_shape)
    return (center + scale * rng.normal(size=(n, *feature_shape))).astype(dtype)


def assert_moments(state, mean, var, rtol):
    """loc within rtol of mean (relative to |mean| + std) and var within rtol."""
    std = np.sqrt(var)
    np.testing.assert_allclose(state.loc, mean, rtol=rtol, atol=rtol * float(np.max(std)))
    np.testing.assert_allclose(state.var, var, rtol=rtol)


def snapshot(state):
    return tuple(a.copy() for a in state.arrays)


def assert_unchanged(state, snap):
    for a, b in zip(state.arrays, snap):
        np.testing.assert_array_equal(a, b)


# -- decay == 1: batch merge, one-by-one, numpy ----------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), feature_shape=FEATURE_SHAPES, splits=SPLITS, offset=OFFSETS, scale=SCALES, dtype=DTYPES)
def test_decay_one_batches_equal_one_by_one_and_numpy(seed, feature_shape, splits, offset, scale, dtype):
    x = make_data(seed, sum(splits), feature_shape, offset, scale, dtype)
    mean, var = naive_mean_var(x, len(feature_shape))
    # float64: 1e-6; float32 input: the documented float32 block-sum bound
    rtol = 1e-6 if dtype == np.float64 else 2e-5

    batched = moments_init(feature_shape)
    start = 0
    for n in splits:
        assert moments_update(x[start : start + n], *batched.arrays) == 0
        start += n
    one_by_one = moments_init(feature_shape)
    for row in x:
        moments_update(row, *one_by_one.arrays)  # x of the feature shape: a batch of one
    whole = moments_init(feature_shape)
    moments_update(x, *whole.arrays)

    for state in (batched, one_by_one, whole):
        assert state.count[0] == len(x)
        assert state.weight[0] == len(x)  # decay 1: weight == count exactly
        assert_moments(state, mean, var, rtol)
    np.testing.assert_allclose(batched.var, one_by_one.var, rtol=rtol)


def test_decay_one_float64_matches_numpy_tightly():
    x = make_data(1, 5000, (7,), 3.0, 2.0, np.float64)
    s = moments_init((7,))
    for chunk in np.array_split(x, 13):
        moments_update(chunk, *s.arrays)
    mean, var = naive_mean_var(x, 1)
    np.testing.assert_allclose(s.loc, mean, rtol=1e-12)
    np.testing.assert_allclose(s.var, var, rtol=1e-12)


# -- decay < 1: bias-corrected EMA ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), decay=st.floats(0.5, 0.999), n=st.integers(1, 60), features=st.integers(1, 4))
def test_ema_one_sample_per_update_matches_naive_ema(seed, decay, n, features):
    x = make_data(seed, n, (features,), 2.0, 1.5, np.float64)
    s = moments_init((features,))
    for row in x:
        moments_update(row, *s.arrays, decay=decay)
    mean, var = naive_ema(x, decay)
    np.testing.assert_allclose(s.loc, mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s.var, var, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(s.weight[0], (1 - decay**n) / (1 - decay), rtol=1e-12)
    assert s.count[0] == n


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), decay=st.floats(0.3, 1.0), splits=SPLITS, feature_shape=FEATURE_SHAPES, dtype=DTYPES)
def test_ema_batches_match_weighted_reference(seed, decay, splits, feature_shape, dtype):
    x = make_data(seed, sum(splits), feature_shape, 5.0, 2.0, dtype)
    s = moments_init(feature_shape)
    start = 0
    for n in splits:
        moments_update(x[start : start + n], *s.arrays, decay=decay)
        start += n
    flat = x.reshape(len(x), -1)
    mean, var = naive_weighted(flat, ema_weights(splits, decay))
    rtol = 1e-6 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(s.loc.reshape(-1), mean, rtol=rtol)
    np.testing.assert_allclose(s.var.reshape(-1), var, rtol=rtol)


def test_ema_batch_equals_merged_per_env_trackers():
    n_envs, steps, decay = 6, 40, 0.9
    x = make_data(3, steps * n_envs, (3,), 1.0, 2.0, np.float64).reshape(steps, n_envs, 3)
    batched = moments_init((3,))
    per_env = [moments_init((3,)) for _ in range(n_envs)]
    for t in range(steps):
        moments_update(x[t], *batched.arrays, decay=decay)
        for e in range(n_envs):
            moments_update(x[t, e], *per_env[e].arrays, decay=decay)
    merged = moments_init((3,))
    for s in per_env:
        moments_merge(*merged.arrays, *s.arrays)
    np.testing.assert_allclose(merged.loc, batched.loc, rtol=1e-12)
    np.testing.assert_allclose(merged.var, batched.var, rtol=1e-10)
    np.testing.assert_allclose(merged.weight, batched.weight, rtol=1e-12)
    assert merged.count[0] == batched.count[0] == steps * n_envs


# -- normalization ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    feature_shape=FEATURE_SHAPES,
    n=st.integers(1, 40),
    decay=st.floats(0.5, 1.0),
    eps=st.sampled_from([1e-8, 1e-4, 1e-2, 1.0, 100.0]),
    dtype=DTYPES,
    offset=OFFSETS,
    scale=SCALES,
)
def test_update_normalize_matches_numpy(seed, feature_shape, n, decay, eps, dtype, offset, scale):
    x = make_data(seed, n, feature_shape, offset, scale, dtype)
    fused = moments_init(feature_shape)
    out = moments_update_normalize(x, *fused.arrays, decay=decay, eps=eps)
    split = moments_init(feature_shape)
    moments_update(x, *split.arrays, decay=decay)
    out2 = moments_normalize(x, split.loc, split.m2, split.weight, eps=eps)
    assert out.dtype == dtype and out2.dtype == dtype and out.shape == x.shape
    for a, b in zip(fused.arrays, split.arrays):
        np.testing.assert_array_equal(a, b)  # update first, then normalize
    np.testing.assert_array_equal(out, out2)
    scale_ref = np.maximum(np.sqrt(fused.var), eps)
    expected = (x.astype(np.float64) - fused.loc) / scale_ref
    # float32: loc rounded to float32 (half an ulp of the mean) and float32 rounding
    atol = 1e-12 if dtype == np.float64 else float(np.max(np.abs(fused.loc) * 2**-24 / scale_ref)) + 1e-6
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=atol)


def test_normalize_output_dtypes_and_out():
    s = moments_init((2,))
    x32 = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    moments_update(x32, *s.arrays)
    assert moments_normalize(x32, s.loc, s.m2, s.weight, 1e-6).dtype == np.float32
    assert moments_normalize(x32.astype(np.float64), s.loc, s.m2, s.weight, 1e-6).dtype == np.float64
    assert moments_normalize(np.array([[1, 2]]), s.loc, s.m2, s.weight, 1e-6).dtype == np.float64
    out64 = np.empty((2, 2))
    assert moments_normalize(x32, s.loc, s.m2, s.weight, 1e-6, out=out64) is out64
    np.testing.assert_allclose(out64, [[-1.0, -1.0], [1.0, 1.0]])
    inplace = x32.copy()
    assert moments_normalize(inplace, s.loc, s.m2, s.weight, 1e-6, out=inplace) is inplace
    np.testing.assert_allclose(inplace, out64, rtol=1e-6)


def test_normalize_reads_a_read_only_state():
    s = moments_init((2,))
    moments_update(np.array([[1.0, 2.0], [3.0, 6.0]]), *s.arrays)
    for a in s.arrays:
        a.flags.writeable = False
    out = moments_normalize(np.array([[3.0, 6.0]]), s.loc, s.m2, s.weight, 1e-6)
    np.testing.assert_allclose(out, [[1.0, 1.0]])
    with pytest.raises(ValueError, match="requires a writeable loc"):
        moments_update(np.ones((1, 2)), *s.arrays)


def test_empty_state_normalizes_as_identity_up_to_eps():
    s = moments_init((3,))
    x = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(moments_normalize(x, s.loc, s.m2, s.weight, 1e-8), x)
    np.testing.assert_array_equal(moments_normalize(x, s.loc, s.m2, s.weight, 4.0), x / 4.0)
    np.testing.assert_array_equal(s.var, np.ones(3))


# -- numerics -----------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [1, 100])
def test_float32_large_mean_small_std(chunks):
    """float32 data, mean 1e4 and std 0.1, 10**5 samples: std within 1% of truth."""
    rng = np.random.default_rng(0)
    x = (1e4 + 0.1 * rng.normal(size=(100_000, 2))).astype(np.float32)
    truth = np.std(x.astype(np.float64), axis=0)
    s = moments_init((2,))
    out = np.empty_like(x)
    for xc, oc in zip(np.array_split(x, chunks), np.array_split(out, chunks)):
        moments_update_normalize(xc, *s.arrays, decay=1.0, eps=1e-8, out=oc)
    np.testing.assert_allclose(np.sqrt(s.var), truth, rtol=1e-2)
    np.testing.assert_allclose(np.sqrt(s.var), 0.1, rtol=1e-2)
    np.testing.assert_allclose(s.loc, np.mean(x.astype(np.float64), axis=0), rtol=1e-9)
    if chunks == 1:  # normalized by the statistics of all the data
        np.testing.assert_allclose(out.std(axis=0, dtype=np.float64), 1.0, rtol=1e-2)
        np.testing.assert_allclose(out.mean(axis=0, dtype=np.float64), 0.0, atol=1e-2)


@pytest.mark.parametrize("dtype, center, spread", [(np.float64, 1e6, 1e-3), (np.float32, 1e4, 0.1)])
def test_batch_far_from_loc_takes_second_pass(dtype, center, spread):
    """The batch second moment stays accurate when the shift (loc) is far away.

    A tiny decay makes the state almost forget its past, so the variance after
    the update is the batch's own: summed about loc = 0 without the second
    pass it would be the difference of two numbers ~ (center / spread)**2
    times larger.
    """
    s = moments_init((3,))
    moments_update(np.zeros((4, 3)), *s.arrays)
    x = (center + spread * np.random.default_rng(5).normal(size=(1000, 3))).astype(dtype)
    moments_update(x, *s.arrays, decay=1e-300)
    mean, var = naive_mean_var(x, 1)
    np.testing.assert_allclose(s.var, var, rtol=1e-6 if dtype == np.float64 else 2e-5)
    np.testing.assert_allclose(s.loc, mean, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_feature_gives_finite_output(dtype):
    rng = np.random.default_rng(2)
    s = moments_init((3,))
    for step in range(5):
        x = rng.normal(size=(16, 3)).astype(dtype)
        x[:, 1] = 7.25
        out = moments_update_normalize(x, *s.arrays, decay=0.99, eps=1e-8)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[:, 1], 0.0)
    assert s.m2[1] == 0.0 and s.loc[1] == 7.25
    # a constant that later moves: scale floored at eps, output finite
    x[:, 1] = 7.5
    out = moments_update_normalize(x, *s.arrays, decay=0.99, eps=1e-3)
    assert np.all(np.isfinite(out))


def test_single_sample_has_zero_variance():
    s = moments_init((2,))
    moments_update(np.array([3.0, -1.0]), *s.arrays)
    np.testing.assert_array_equal(s.var, [0.0, 0.0])
    np.testing.assert_array_equal(s.loc, [3.0, -1.0])


def test_float32_huge_values_do_not_overflow_float32_sums():
    """Squares of float32 deviations ~1e24 overflow float32, not float64."""
    x = (1e25 + 1e24 * np.random.default_rng(11).normal(size=(64, 2))).astype(np.float32)
    s = moments_init((2,))
    out = moments_update_normalize(x, *s.arrays, decay=1.0, eps=1e-8)
    mean, var = naive_mean_var(x, 1)
    assert_moments(s, mean, var, 2e-5)
    assert np.all(np.isfinite(out))


def test_overflow_raises_and_leaves_state():
    s = moments_init((1,))
    moments_update(np.array([[1.0]]), *s.arrays)
    snap = snapshot(s)
    with pytest.raises(ValueError, match="overflow float64"):
        moments_update(np.array([[1e200], [-1e200]]), *s.arrays)
    assert_unchanged(s, snap)


# -- non-finite input ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fused", [False, True])
def test_nonfinite_raises_and_leaves_state(bad, dtype, fused):
    s = moments_init((3,))
    moments_update(np.arange(6.0).reshape(2, 3), *s.arrays)
    snap = snapshot(s)
    x = np.ones((20, 3), dtype=dtype)
    x[11, 2] = bad
    out = np.full(x.shape, -5.0, dtype=dtype)
    with pytest.raises(NonFiniteError, match="NaN or inf in x; statistics left unchanged"):
        if fused:
            moments_update_normalize(x, *s.arrays, decay=0.9, eps=1e-6, out=out)
        else:
            moments_update(x, *s.arrays, decay=0.9)
    assert issubclass(NonFiniteError, ValueError)
    assert_unchanged(s, snap)
    np.testing.assert_array_equal(out, -5.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad_rows", [[0], [3, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
@pytest.mark.parametrize("empty_state", [True, False])
def test_nonfinite_skip_drops_rows(dtype, bad_rows, empty_state):
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 3.0, size=(12, 2)).astype(dtype)
    s, ref = moments_init((2,)), moments_init((2,))
    if not empty_state:
        prior = rng.normal(size=(5, 2))
        moments_update(prior, *s.arrays)
        moments_update(prior, *ref.arrays)
    for r in bad_rows:
        x[r, r % 2] = np.nan if r % 3 else np.inf
    good = np.ones(len(x), dtype=bool)
    good[bad_rows] = False
    assert moments_update(x, *s.arrays, decay=0.95, nonfinite="skip") == len(bad_rows)
    moments_update(x[good], *ref.arrays, decay=0.95)
    # float32: the skipping path sums row by row, the other in blocks of eight
    assert_moments(s, ref.loc, ref.var, 1e-6 if dtype == np.float32 else 1e-12)
    assert s.count[0] == ref.count[0]
    out = moments_update_normalize(x, *s.arrays, decay=0.95, eps=1e-6, nonfinite="skip")
    assert np.all(np.isfinite(out[good])) and not np.any(np.isfinite(out[~good]).all(axis=1))


def test_nonfinite_skip_all_rows_changes_nothing():
    s = moments_init((2,))
    moments_update(np.ones((3, 2)), *s.arrays)
    snap = snapshot(s)
    assert moments_update(np.full((4, 2), np.nan), *s.arrays, decay=0.5, nonfinite="skip") == 4
    assert_unchanged(s, snap)


# -- shapes, dtypes, layouts ----------------------------------------------------------


def test_batch_dims_are_merged_in_one_step():
    x = make_data(6, 20, (2, 3), 1.0, 1.0, np.float64).reshape(4, 5, 2, 3)
    a, b = moments_init((2, 3)), moments_init((2, 3))
    moments_update(x, *a.arrays, decay=0.5, batch_ndim=2)
    moments_update(x.reshape(20, 2, 3), *b.arrays, decay=0.5)
    np.testing.assert_array_equal(a.loc, b.loc)
    np.testing.assert_allclose(a.m2, b.m2, rtol=1e-14)
    assert a.count[0] == 20 and a.weight[0] == 20.0  # one update: decay applied once, to nothing
    with pytest.raises(ValueError, match="batch_ndim"):
        moments_update(x, *a.arrays, batch_ndim=1)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_and_bool_input_cast_to_float64(dtype):
    x = (np.arange(12).reshape(4, 3) % 2).astype(dtype)
    s = moments_init((3,))
    out = moments_update_normalize(x, *s.arrays, decay=1.0, eps=1e-6)
    assert out.dtype == np.float64
    mean, var = naive_mean_var(x, 1)
    assert_moments(s, mean, var, 1e-12)


def test_non_contiguous_input_and_output():
    base = make_data(8, 40, (6,), 0.0, 1.0, np.float32)
    x = base[::2, ::2]  # strided rows and features
    a, b = moments_init((3,)), moments_init((3,))
    out = np.zeros((20, 6), dtype=np.float32)[:, ::2]
    moments_update_normalize(x, *a.arrays, decay=1.0, eps=1e-6, out=out)
    ref = moments_update_normalize(np.ascontiguousarray(x), *b.arrays, decay=1.0, eps=1e-6)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(a.loc, b.loc)
    x3 = base[::2].reshape(20, 2, 3)[:, :, ::-1]
    s = moments_init((2, 3))
    o3 = np.empty((20, 2, 3), dtype=np.float32)[:, :, ::-1]  # cannot be viewed as rows
    with pytest.raises(ValueError, match="requires out whose memory"):
        moments_update_normalize(x3, *s.arrays, decay=1.0, eps=1e-6, out=o3)


def test_unchecked_variants_match():
    x = make_data(9, 30, (4,), 1.0, 2.0, np.float32)
    a, b = moments_init((4,)), moments_init((4,))
    assert moments_update_unchecked(x, *a.arrays, 0.9, False) == moments_update(x, *b.arrays, decay=0.9)
    o1 = moments_update_normalize_unchecked(x, *a.arrays, 0.9, 1e-4)
    o2 = moments_update_normalize(x, *b.arrays, decay=0.9, eps=1e-4)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(
        moments_normalize_unchecked(x, a.loc, a.m2, a.weight, 1e-4), moments_normalize(x, b.loc, b.m2, b.weight, 1e-4)
    )
    with pytest.raises(NonFiniteError):
        moments_update_unchecked(np.full((2, 4), np.nan, dtype=np.float32), *a.arrays, 1.0, False)


# -- merge --------------------------------------------------------------------------


def test_merge_equals_union():
    x = make_data(10, 50, (3,), 4.0, 2.0, np.float64)
    a, b, empty = moments_init((3,)), moments_init((3,)), moments_init((3,))
    moments_update(x[:20], *a.arrays)
    moments_update(x[20:], *b.arrays)
    moments_merge(*a.arrays, *b.arrays)
    mean, var = naive_mean_var(x, 1)
    assert_moments(a, mean, var, 1e-12)
    assert a.count[0] == 50
    snap = snapshot(a)
    moments_merge(*a.arrays, *empty.arrays)
    assert_unchanged(a, snap)
    moments_merge(*empty.arrays, *a.arrays)
    assert_moments(empty, mean, var, 1e-12)
    with pytest.raises(ValueError, match="same feature shape"):
        moments_merge(*a.arrays, *moments_init((2,)).arrays)


# -- argument errors ------------------------------------------------------------------


def test_argument_errors():
    s = moments_init((3,))
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"moments_update requires decay in \(0, 1\], got 1.5"):
        moments_update(x, *s.arrays, decay=1.5)
    with pytest.raises(ValueError, match=r"decay in \(0, 1\], got 0.0"):
        moments_update(x, *s.arrays, decay=0)
    with pytest.raises(TypeError, match="requires decay as a float, got str"):
        moments_update(x, *s.arrays, decay="0.9")
    with pytest.raises(ValueError, match=r"requires eps > 0 and finite, got 0.0"):
        moments_update_normalize(x, *s.arrays, decay=1.0, eps=0.0)
    with pytest.raises(ValueError, match=r"requires nonfinite in \('raise', 'skip'\), got 'ignore'"):
        moments_update(x, *s.arrays, nonfinite="ignore")
    with pytest.raises(TypeError, match="x of float32, float64, integer or bool dtype, got complex128"):
        moments_update(x.astype(complex), *s.arrays)
    with pytest.raises(ValueError, match=r"x of shape \[\*batch, \*\(3,\)\]"):
        moments_update(np.ones((2, 4)), *s.arrays)
    with pytest.raises(TypeError, match="loc of dtype float64, got float32"):
        moments_update(x, s.loc.astype(np.float32), s.m2, s.weight, s.count)
    with pytest.raises(TypeError, match="count of dtype int64"):
        moments_update(x, s.loc, s.m2, s.weight, s.count.astype(np.int32))
    with pytest.raises(ValueError, match=r"m2 of the shape of loc \(3,\), got \(2,\)"):
        moments_update(x, s.loc, s.m2[:2], s.weight, s.count)
    with pytest.raises(ValueError, match="C-contiguous loc"):
        moments_update(np.ones((2, 2)), np.zeros(4)[::2], np.zeros(2), s.weight, s.count)
    with pytest.raises(ValueError, match=r"weight of shape \(1,\), got \(2,\)"):
        moments_update(x, s.loc, s.m2, np.zeros(2), s.count)
    ro = s.loc.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable loc"):
        moments_update(x, ro, s.m2, s.weight, s.count)
    with pytest.raises(TypeError, match="out of dtype float32 or float64, got int64"):
        moments_normalize(x, s.loc, s.m2, s.weight, 1e-3, out=np.empty((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"out of the shape of x \(2, 3\), got \(3, 3\)"):
        moments_update_normalize(x, *s.arrays, decay=1.0, eps=1e-3, out=np.empty((3, 3)))
    with pytest.raises(TypeError, match="moments_update requires count as a numpy.ndarray, got NoneType"):
        moments_update(x, s.loc, s.m2, s.weight, None)
    with pytest.raises(TypeError, match="MomentState requires m2 as a numpy.ndarray"):
        MomentState(np.zeros(3), [0.0, 0.0, 0.0], np.zeros(1), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="positive dimensions"):
        moments_init((3, 0))
    with pytest.raises(TypeError, match="feature_shape as an int or a tuple of ints"):
        moments_init("3")
    assert s.count[0] == 0  # every failed call left the state alone


def test_moment_state_helpers():
    s = moments_init(2)
    moments_update(np.array([[1.0, 5.0], [3.0, 5.0]]), *s.arrays)
    np.testing.assert_array_equal(s.std(), [1.0, 0.0])
    np.testing.assert_array_equal(s.std(eps=0.25), [1.0, 0.25])
    c = s.copy()
    moments_update(np.array([[9.0, 9.0]]), *c.arrays)
    assert s.count[0] == 2 and c.count[0] == 3
    assert "count=2" in repr(s)
