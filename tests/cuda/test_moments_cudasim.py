"""CUDA running moments against the CPU kernels, under the Numba CUDA simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.

The simulator's reduction blocks are small (see ``REDUCE_THREADS`` and
friends in numbarl.core.cuda.moments), so a few dozen rows already span
several chunks, and feature sizes above 8 several feature blocks.
"""
from cudasim_helpers import run_doctests, skip_unless_simulator

skip_unless_simulator()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from numba import cuda  # noqa: E402
from numbarl.core import moments as cpu  # noqa: E402
from numbarl.core.cuda import moments as gpu  # noqa: E402

# NaN and inf reach the simulated kernels as NumPy scalars, which warn.
pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


@st.composite
def batches(draw):
    feature = tuple(draw(st.lists(st.integers(1, 5), max_size=2)))
    batch = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e3]))
    offset = draw(st.sampled_from([0.0, 5.0, -1e4]))
    seed = draw(st.integers(0, 2**32 - 1))
    return feature, batch, np.dtype(dtype), scale, offset, seed


def _sample(rng, shape, dtype, scale, offset):
    x = rng.standard_normal(shape) * scale + offset
    return np.round(x).astype(dtype) if dtype.kind == "i" else x.astype(dtype)


def _assert_state(g, c, dtype):
    h = g.copy_to_host()
    assert h.count[0] == c.count[0]
    np.testing.assert_allclose(h.weight, c.weight, rtol=1e-12)
    # float32 input: the CPU sums blocks of rows in float32 (about 1e-7
    # relative), these kernels in float64; float64 input: rounding only
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    spread = np.sqrt(np.maximum(c.var, 0)).max() + 1.0
    np.testing.assert_allclose(h.loc, c.loc, rtol=rtol, atol=rtol * spread)
    np.testing.assert_allclose(h.m2, c.m2, rtol=rtol, atol=rtol * float(c.weight[0]) * spread**2)


@settings(max_examples=20, deadline=None)
@given(b=batches(), decay=st.sampled_from([1.0, 0.9, 0.5]), steps=st.integers(1, 3))
def test_update_matches_cpu(b, decay, steps):
    feature, batch, dtype, scale, offset, seed = b
    rng = np.random.default_rng(seed)
    c, g = cpu.moments_init(feature), gpu.moments_init(feature)
    for _ in range(steps):
        x = _sample(rng, batch + feature, dtype, scale, offset)
        assert gpu.moments_update(cuda.to_device(x), *g.arrays, decay=decay) == 0
        cpu.moments_update(x, *c.arrays, decay=decay)
        _assert_state(g, c, dtype)


@settings(max_examples=15, deadline=None)
@given(b=batches(), decay=st.sampled_from([1.0, 0.8]), eps=st.sampled_from([1e-4, 1.0]),
       out_dtype=st.sampled_from([None, np.float32, np.float64]))
def test_update_normalize_and_normalize_match_cpu(b, decay, eps, out_dtype):
    feature, batch, dtype, scale, offset, seed = b
    rng = np.random.default_rng(seed)
    c, g = cpu.moments_init(feature), gpu.moments_init(feature)
    for _ in range(2):
        x = _sample(rng, batch + feature, dtype, scale, offset)
        c_out = None if out_dtype is None else np.empty(x.shape, out_dtype)
        g_out = None if out_dtype is None else cuda.device_array(x.shape, out_dtype)
        want = cpu.moments_update_normalize(x, *c.arrays, decay, eps, out=c_out)
        got = gpu.moments_update_normalize(cuda.to_device(x), *g.arrays, decay, eps, out=g_out)
        assert g_out is None or got is g_out
        got = got.copy_to_host()
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        _assert_state(g, c, dtype)
    want = cpu.moments_normalize(x, c.loc, c.m2, c.weight, eps)
    got = gpu.moments_normalize(cuda.to_device(x), g.loc, g.m2, g.weight, eps).copy_to_host()
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20), f=st.integers(1, 10),
       frac=st.sampled_from([0.1, 0.5, 1.0]), fused=st.booleans(), decay=st.sampled_from([1.0, 0.7]))
def test_nonfinite_skip_matches_cpu(seed, n, f, frac, fused, decay):
    rng = np.random.default_rng(seed)
    c, g = cpu.moments_init((f,)), gpu.moments_init((f,))
    warm = rng.standard_normal((5, f))
    cpu.moments_update(warm, *c.arrays)
    gpu.moments_update(cuda.to_device(warm), *g.arrays)
    x = rng.standard_normal((n, f)).astype(np.float32)
    bad = rng.random(x.shape) < frac / f
    x[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    n_bad = int(bad.any(axis=1).sum())
    if fused:
        want = cpu.moments_update_normalize(x, *c.arrays, decay, 1e-3, nonfinite="skip")
        status = cuda.device_array(1, np.int64)
        got = gpu.moments_update_normalize(cuda.to_device(x), *g.arrays, decay, 1e-3, nonfinite="skip",
                                           status=status).copy_to_host()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # NaN where the CPU has NaN
        assert status.copy_to_host()[0] == n_bad
    else:
        assert cpu.moments_update(x, *c.arrays, decay=decay, nonfinite="skip") == n_bad
        assert gpu.moments_update(cuda.to_device(x), *g.arrays, decay=decay, nonfinite="skip") == n_bad
    _assert_state(g, c, np.float32)


def test_nonfinite_raise_leaves_state_and_out_untouched():
    g = gpu.moments_init((3,))
    gpu.moments_update(cuda.to_device(np.arange(6.0).reshape(2, 3)), *g.arrays)
    before = g.copy_to_host()
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(cpu.NonFiniteError, match=r"moments_update got NaN or inf in x; statistics left unchanged"):
        gpu.moments_update(cuda.to_device(x), *g.arrays)
    out = cuda.to_device(np.full((4, 3), 7.0))
    with pytest.raises(cpu.NonFiniteError, match=r"nonfinite='skip'"):
        gpu.moments_update_normalize(cuda.to_device(x), *g.arrays, 1.0, 1e-3, out=out)
    np.testing.assert_array_equal(out.copy_to_host(), 7.0)
    # without check nothing is raised or read back; the status tells
    status = gpu.moments_update(cuda.to_device(x), *g.arrays, check=False)
    assert status.copy_to_host()[0] == gpu.STATUS_NONFINITE
    gpu.moments_update_normalize(cuda.to_device(x), *g.arrays, 1.0, 1e-3, out=out, check=False)
    np.testing.assert_array_equal(out.copy_to_host(), 7.0)
    after = g.copy_to_host()
    for name in ("loc", "m2", "weight", "count"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))


def test_overflow_is_refused_as_on_cpu():
    g, c = gpu.moments_init((2,)), cpu.moments_init((2,))
    x = np.array([[1e300, 1.0], [-1e300, 2.0], [1e300, 3.0]])
    with pytest.raises(ValueError, match=r"moments_update: squared deviations of x overflow float64"):
        cpu.moments_update(x, *c.arrays)
    with pytest.raises(ValueError, match=r"moments_update: squared deviations of x overflow float64"):
        gpu.moments_update(cuda.to_device(x), *g.arrays)
    assert g.copy_to_host().count[0] == 0


def test_all_rows_skipped_and_empty_batch():
    g = gpu.moments_init((2,))
    gpu.moments_update(cuda.to_device(np.ones((3, 2))), *g.arrays, decay=0.5)
    assert gpu.moments_update(cuda.to_device(np.full((2, 2), np.nan)), *g.arrays, decay=0.5, nonfinite="skip") == 2
    assert gpu.moments_update(cuda.to_device(np.zeros((0, 2))), *g.arrays) == 0
    h = g.copy_to_host()
    assert h.count[0] == 3 and h.weight[0] == 3.0  # no decay without an accepted sample


def test_many_rows_per_lane_when_chunks_are_capped(monkeypatch):
    monkeypatch.setattr(gpu, "_MAX_CHUNKS", 2)
    rng = np.random.default_rng(9)
    c, g = cpu.moments_init((3,)), gpu.moments_init((3,))
    x = rng.standard_normal((45, 3)) * 4 - 2
    tf, tr, chunk_rows, n_chunks = gpu._reduce_layout(45, 3)
    assert n_chunks == 2 and chunk_rows > tr * gpu.ROWS_PER_LANE
    cpu.moments_update(x, *c.arrays)
    gpu.moments_update(cuda.to_device(x), *g.arrays)
    _assert_state(g, c, np.float64)


def test_returned_status_arrays_are_not_reused():
    g = gpu.moments_init((2,))
    nan_row = np.array([[np.nan, 1.0], [2.0, 3.0]])
    first = gpu.moments_update(cuda.to_device(nan_row), *g.arrays, nonfinite="skip", check=False)
    second = gpu.moments_update(cuda.to_device(np.ones((3, 2))), *g.arrays, check=False)
    assert first is not second
    assert first.copy_to_host()[0] == 1 and second.copy_to_host()[0] == 0


def test_merge_matches_cpu():
    rng = np.random.default_rng(7)
    ca, cb = cpu.moments_init((4,)), cpu.moments_init((4,))
    ga, gb = gpu.moments_init((4,)), gpu.moments_init((4,))
    xa, xb = rng.standard_normal((9, 4)), rng.standard_normal((5, 4)) + 3
    cpu.moments_update(xa, *ca.arrays, decay=0.9)
    cpu.moments_update(xb, *cb.arrays)
    gpu.moments_update(cuda.to_device(xa), *ga.arrays, decay=0.9)
    gpu.moments_update(cuda.to_device(xb), *gb.arrays)
    cpu.moments_merge(*ca.arrays, *cb.arrays)
    gpu.moments_merge(*ga.arrays, *gb.arrays)
    _assert_state(ga, ca, np.float64)
    gpu.moments_merge(*ga.arrays, *gpu.moments_init((4,)).arrays)  # merging an empty state changes nothing
    _assert_state(ga, ca, np.float64)


def test_batch_ndim_and_stream():
    stream = cuda.stream()
    g, c = gpu.moments_init((2, 3)), cpu.moments_init((2, 3))
    x = np.random.default_rng(8).standard_normal((4, 5, 2, 3))
    assert gpu.moments_update(cuda.to_device(x), *g.arrays, batch_ndim=2, stream=stream) == 0
    cpu.moments_update(x, *c.arrays, batch_ndim=2)
    _assert_state(g, c, np.float64)
    with pytest.raises(ValueError, match=r"x.ndim == batch_ndim \+ loc.ndim, got x.ndim=4, batch_ndim=1"):
        gpu.moments_update(cuda.to_device(x), *g.arrays, batch_ndim=1)


def _state():
    return gpu.moments_init((3,)).arrays


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda s: gpu.moments_update(np.ones((2, 3)), *s), TypeError,
         r"moments_update \(CUDA\) requires x to be a CUDA device array"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3), np.complex64)), *s), TypeError,
         r"x of float32, float64, integer or bool dtype, got complex64"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 4))), *s), ValueError,
         r"x of shape \[\*batch, \*\(3,\)\]"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3))), *s, decay=0.0), ValueError,
         r"decay in \(0, 1\], got 0.0"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3))), *s, nonfinite="drop"), ValueError,
         r"nonfinite in \('raise', 'skip'\), got 'drop'"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3))), *s, check="yes"), TypeError,
         r"check to be a bool, got str"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3))), s[0], s[1],
                                      cuda.to_device(np.zeros(1, np.float32)), s[3]), TypeError,
         r"weight of dtype float64, got float32"),
        (lambda s: gpu.moments_update(cuda.to_device(np.ones((2, 3))), *s,
                                      status=cuda.to_device(np.zeros(2, np.int64))), ValueError,
         r"status as an int64 device array of shape \(1,\)"),
        (lambda s: gpu.moments_normalize(cuda.to_device(np.ones((2, 3))), s[0], s[1], s[2], eps=0.0), ValueError,
         r"eps > 0 and finite, got 0.0"),
        (lambda s: gpu.moments_normalize(cuda.to_device(np.ones((2, 3))), s[0], s[1], s[2], 1e-3,
                                         out=cuda.to_device(np.ones((2, 3), np.int32))), TypeError,
         r"out of dtype float32 or float64, got int32"),
        (lambda s: gpu.moments_normalize(cuda.to_device(np.ones((2, 3))), s[0], s[1], s[2], 1e-3,
                                         out=cuda.device_array((3, 2))), ValueError,
         r"out of shape \(2, 3\), got \(3, 2\)"),
        (lambda s: gpu.moments_merge(*s, *gpu.moments_init((4,)).arrays), ValueError,
         r"states of the same feature shape, got \(3,\) and \(4,\)"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(_state())


def test_doctests():
    run_doctests(gpu)
