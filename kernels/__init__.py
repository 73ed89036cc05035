"""Numba kernels of xbarsim (installed as ``xbarsim.kernels``).

Every jitted function lives here and nothing else does. Kernels assume
validated, C-contiguous float64 inputs and write into arrays they are given;
the public wrappers in ``xbarsim`` validate and allocate.
"""
