"""NumPy + Numba kernels of numbarl. This package never imports torch."""
