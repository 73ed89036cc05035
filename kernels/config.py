"""Compile options shared by every kernel (one place, as in stumpy's config).

``FASTMATH`` is a flag subset, never full ``fastmath=True``: ``nnan`` and
``ninf`` would let LLVM delete the NaN / inf checks the solvers rely on. The
solver kernels use it; the transfer-simulation kernels use no fast-math at
all (`STRICT_JIT`), because they promise bit-identical results across
processes.

They also use ``error_model="numpy"``: a float division by zero gives inf /
NaN (IEEE) instead of raising ZeroDivisionError. Numba's default (Python)
model puts a test and an exception branch on every division, and that branch
keeps LLVM from vectorizing the elimination loops of `nodal._line_pass`
(vectorized, 64x64 programming runs about 15 % faster, with the same bits).
No division in these kernels has a divisor that can be zero in a valid
circuit, and the solves test their voltages for NaN / inf, so a degenerate
case still ends in a clear error from the Python layer. The solver kernels
keep the default: their line solves are sequential recurrences that would
not vectorize anyway.

``CACHE`` writes compiled machine code next to the sources (or into
``NUMBA_CACHE_DIR``) so only the first run of a new install pays compile
time. Set ``XBARSIM_NO_CACHE=1`` to turn it off. Numba keys each cached
kernel on its own source file only, so a kernel that calls a kernel of
another file (the programming and MVM kernels call `nodal.solve_nodal`)
would keep running the old callee after that file changed: on import,
this module has every cached kernel of the package dropped when any kernel
source changed (`xbarsim._kernel_cache`).
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

STRICT_JIT = dict(JIT, fastmath=False, error_model="numpy")
"""Options of the transfer-simulation kernels (nodal, programming, noise,
MVM): no fast-math at all. Their results are promised bit-identical across
thread counts, chunking and processes, and with ``contract`` / ``arcp`` /
``reassoc`` the last bit depends on how one compilation was optimized
(inlining, vectorization): a kernel loaded from the on-disk cache and the same
kernel compiled afresh differed, so Dask-worker transfers differed from
in-process ones on a fresh clone."""

STRICT_PJIT = dict(STRICT_JIT, parallel=PARALLEL)
"""Parallel variant of `STRICT_JIT`."""

if CACHE:
    from .._kernel_cache import drop_stale_cache

    drop_stale_cache()
