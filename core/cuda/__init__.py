"""CUDA twins of the CPU kernels (numba.cuda), same names and arguments."""
