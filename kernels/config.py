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
``NUMBA_CACHE_DIR``, or the user's cache folder) so only the first run of a
new install pays compile time. Set ``XBARSIM_NO_CACHE=1`` to turn it off.
Where Numba finds none of those folders writable (a read-only install run by
a user without a home), ``@njit(cache=True)`` would raise on import: caching
is then turned off for the process instead, with one `KernelCacheWarning`
saying how to keep the compiled kernels (a writable ``NUMBA_CACHE_DIR``).

Numba keys each cached kernel on its own source file only, so a kernel that
calls a kernel of another file (the programming and MVM kernels call
`nodal.solve_nodal`) would keep running the old callee after that file
changed: on import, this module has every cached kernel of the package
dropped when any kernel source changed, and each stamped with the digest of
the sources this process imported (`xbarsim._kernel_cache`).
"""

import os
import warnings

from .._kernel_cache import (KernelCacheWarning, _source_digest, drop_stale_cache, ignored_cache_dir, locate_cache,
                             no_cache_requested, stamp_with_digest)

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
"""LLVM fast-math flags allowed in kernels: no nnan / ninf."""

PARALLEL = True
"""Kernels marked parallel use ``prange`` over independent lines."""

_FOLDER = os.path.dirname(os.path.abspath(__file__))


def _cache_setting(environ=None, locate=locate_cache):
    """Decide `CACHE`: ``(cache, folder, warning)``, where `folder` is where
    Numba caches the kernels (None when off or unknown) and `warning` the
    message to warn with, or None. Never raises: with no usable cache folder,
    ``@njit(cache=True)`` would raise when a kernel module is imported."""
    environ = os.environ if environ is None else environ
    if no_cache_requested(environ):
        return False, None, None
    try:
        where = locate(_FOLDER)
        if where.usable:
            ignored = ignored_cache_dir(where.folder, environ)
            return True, where.folder, None if ignored is None else (
                f"xbarsim: NUMBA_CACHE_DIR={ignored!r} is not a folder Numba can create or write, so it "
                f"passes over it and caches the compiled kernels in {where.folder}; point NUMBA_CACHE_DIR "
                "at a writable folder, or unset it.")
        reason = where.reason
    except Exception as exc:  # a bug of `locate`: compile without the cache
        reason = f"{type(exc).__name__}: {exc}"
    # the folder NUMBA_CACHE_DIR names, passed over, was not said
    given = environ.get("NUMBA_CACHE_DIR")
    set_text = f" (NUMBA_CACHE_DIR={given!r} is set, and Numba did not use it)" if given else ""
    return False, None, (
        "xbarsim: Numba found no writable folder to cache the compiled kernels "
        f"in ({reason}), so they are compiled again on every run, which takes "
        f"tens of seconds. Set NUMBA_CACHE_DIR to a writable folder{set_text} to keep "
        "them, or XBARSIM_NO_CACHE=1 to compile every run without this warning."
    )


CACHE, _CACHE_FOLDER, _warning = _cache_setting()
"""On-disk caching of compiled kernels (decided once, on import)."""

if _warning is not None:
    warnings.warn(_warning, KernelCacheWarning, stacklevel=2)
del _warning

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
    _digest = _source_digest(_FOLDER)  # read once for both
    # every kernel module imports this one first: in place before any is decorated
    stamp_with_digest(_FOLDER, _digest)
    if _CACHE_FOLDER is not None:
        drop_stale_cache(folder=_CACHE_FOLDER, sources=_FOLDER, digest=_digest)
    del _digest
