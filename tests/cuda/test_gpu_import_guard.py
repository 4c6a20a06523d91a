"""Importing ``numbarl.core.cuda`` with a numba-cuda that does not import gives a clear ImportError.

numba-cuda 0.30.4 calls ``np.row_stack``, which NumPy 2.5 removed; the failure
is simulated here by making ``from numba import cuda`` raise that
AttributeError. Runs on any machine (no GPU needed).
"""
import builtins

import pytest

import numbarl.core.cuda as core_cuda


def _failing_import(real_import):
    def fake(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "numba" and fromlist and "cuda" in fromlist:
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real_import(name, globals, locals, fromlist, level)

    return fake


def test_numba_cuda_import_failure_names_versions_and_fix(monkeypatch):
    monkeypatch.setattr(builtins, "__import__", _failing_import(builtins.__import__))
    with pytest.raises(ImportError) as info:
        core_cuda._import_numba_cuda()
    message = str(info.value)
    import numpy

    assert f"numpy {numpy.__version__}" in message
    assert "numba-cuda " in message and "row_stack" in message
    assert "numpy<2.5" in message
    assert isinstance(info.value.__cause__, AttributeError)


def test_working_numba_cuda_is_returned():
    from numba import cuda

    assert core_cuda._import_numba_cuda() is cuda
