"""Run code under a given Numba thread count (thread-count independence tests)."""

import numba
import pytest


def with_threads(n, fn):
    """``fn()`` with ``n`` Numba threads, restored after. A pool smaller than
    ``n`` (``NUMBA_NUM_THREADS=1``, a one-core runner) skips the test: it
    was capped, and a 1-vs-2-thread comparison then passed comparing 1
    thread with 1 (found by review)."""
    if n > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"needs a Numba pool of {n} threads (NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS})")
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)
