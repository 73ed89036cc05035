"""Compile options shared by every kernel (one place, as in stumpy's config).

``FASTMATH`` is a flag subset, never full ``fastmath=True``: ``nnan`` and
``ninf`` would let LLVM delete the NaN / inf checks the solvers rely on.
``CACHE`` writes compiled machine code next to the sources (or into
``NUMBA_CACHE_DIR``) so only the first run of a new install pays compile
time. Set ``XBARSIM_NO_CACHE=1`` to turn it off.
"""

import os

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
"""LLVM fast-math flags allowed in kernels: no nnan / ninf."""

PARALLEL = True
"""Kernels marked parallel use ``prange`` over independent lines."""

CACHE = os.environ.get("XBARSIM_NO_CACHE", "") not in ("1", "true", "yes")
"""On-disk caching of compiled kernels."""

JIT = dict(fastmath=FASTMATH, cache=CACHE, nogil=True)
"""Options of serial kernels."""

PJIT = dict(JIT, parallel=PARALLEL)
"""Options of parallel kernels."""

STRICT_JIT = dict(JIT, fastmath=False)
"""Options of kernels whose loops LLVM vectorizes (kernels/nodal.py): no
fast-math at all, so that no fused multiply-add or reordering depends on
how a particular compilation was optimized. With ``contract`` / ``reassoc``
a kernel loaded from the on-disk cache and the same kernel compiled afresh
differed in the last bit, which breaks the bit-identical transfers across
processes (in-process vs Dask workers)."""
