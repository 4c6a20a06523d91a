"""CUDA twins of the CPU kernels (numba.cuda), same names and arguments.

Importing this package imports ``numba.cuda`` (the numba-cuda package). A
numba-cuda release that does not work with the installed NumPy fails here with
an ImportError that names both versions and the fix, instead of an
AttributeError from deep inside numba-cuda (numba-cuda 0.30.4 calls
``np.row_stack``, which NumPy 2.5 removed).
"""
from importlib import metadata as _metadata


def _version(dist):
    try:
        return _metadata.version(dist)
    except _metadata.PackageNotFoundError:
        return "not installed"


def _import_numba_cuda():
    """``numba.cuda``, or an ImportError that says which versions clash and how to fix it."""
    try:
        from numba import cuda
    except (AttributeError, ImportError) as exc:
        import numpy

        raise ImportError(
            f"numbarl.core.cuda could not import numba.cuda (numba-cuda {_version('numba-cuda')}, "
            f"numba {_version('numba')}, numpy {numpy.__version__}): {type(exc).__name__}: {exc}. "
            "numba-cuda 0.30.x does not work with numpy 2.5 or later (np.row_stack was removed); "
            "install numpy<2.5 (pip install 'numpy<2.5', or pip install 'numbarl[cuda]'), "
            "or a numba-cuda release that supports your numpy"
        ) from exc
    return cuda


_import_numba_cuda()
