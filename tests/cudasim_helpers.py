"""Shared pieces of the CUDA simulator tests (tests/cuda): the skip, tolerances, helpers.

The simulator must be switched on before numba.cuda is first imported, so
these tests run in a pytest process of their own:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

(tests/core/test_cuda_simulator.py starts that process, so a plain pytest run
covers them.)
"""
import os

import numpy as np
import pytest

SKIP_REASON = (
    "runs under the Numba CUDA simulator in a pytest process of its own, started by "
    "tests/core/test_cuda_simulator.py (alone: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda)"
)


def skip_unless_simulator():
    """Skip the calling test module unless the simulator is on."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip(SKIP_REASON, allow_module_level=True)


def assert_close(got, want, uint8_slack=1):
    """float32: within 1e-5; float64: within 1e-12; uint8: within ``uint8_slack``; others exact."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    if want.dtype == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    elif want.dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    elif want.dtype == np.uint8:
        assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max(initial=0) <= uint8_slack
    else:
        np.testing.assert_array_equal(got, want)


def run_doctests(module):
    """Run the ``>>>`` examples of ``module``; assert some ran and none failed."""
    import doctest

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
