"""Run code under a given Numba thread count (thread-count independence tests)."""

import numba


def with_threads(n, fn):
    """``fn()`` with ``n`` Numba threads (capped at the pool size), restored after."""
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(old)
