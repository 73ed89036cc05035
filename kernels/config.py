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
would keep running the old callee after that file changed. On import, this
module therefore drops every cached kernel of the package when any kernel
source changed (`drop_stale_cache`, a SHA-256 stamp over the sources).
"""

import hashlib
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


def _source_digest(folder):
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            h.update(name.encode())
            with open(os.path.join(folder, name), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def _cache_folder():
    """Where Numba caches this package's kernels (its own locator order:
    NUMBA_CACHE_DIR, next to the sources, the user-wide folder)."""
    from numba.core import caching

    def probe():  # pragma: no cover - never called, only located
        pass

    for cls in getattr(caching.CacheImpl, "_locator_classes", ()):
        locator = cls.from_function(probe, __file__)
        if locator is not None:
            return locator.get_cache_path()
    return None


def drop_stale_cache(folder=None, sources=None):
    """Delete the cached kernels in `folder` (default: this package's) when
    any source in `sources` (default: this package's folder) differs from
    the ones they were compiled from (see the module docstring). Best
    effort: a folder that cannot be written is left alone."""
    try:
        folder = _cache_folder() if folder is None else folder
        if folder is None:
            return
        digest = _source_digest(sources or os.path.dirname(os.path.abspath(__file__)))
        stamp = os.path.join(folder, "xbarsim-kernels.sha256")
        try:
            with open(stamp) as fh:
                if fh.read().strip() == digest:
                    return
        except OSError:
            pass
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith((".nbi", ".nbc")):
                try:
                    os.remove(os.path.join(folder, name))
                except OSError:
                    pass
        tmp = f"{stamp}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(digest + "\n")
        os.replace(tmp, stamp)
    except Exception:  # pragma: no cover - caching is an optimisation, never an error
        return


if CACHE:
    drop_stale_cache()

