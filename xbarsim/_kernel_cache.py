"""Keep Numba's on-disk cache of the kernels consistent with their sources.

Numba keys each cached kernel on its own source file only (modification
time and size). A kernel that calls a kernel of another file -- the
programming and MVM kernels call ``kernels/nodal.py``'s `solve_nodal` --
would therefore keep running the old callee after that other file changed.
`drop_stale_cache` stamps the cache folder with a SHA-256 digest of every
kernel source and, when the digest differs, deletes the package's cached
kernels first. ``kernels/config.py`` runs it when the first kernel module is
imported (Numba is being imported then anyway, so ``import xbarsim`` stays
light; kernels load from the cache only on their first call, later).
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["drop_stale_cache"]

STAMP = "xbarsim-kernels.sha256"
"""Name of the digest file kept in the cache folder."""


def _kernel_folder():
    from . import kernels

    return os.path.dirname(os.path.abspath(kernels.__file__))


def _source_digest(folder):
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            h.update(name.encode())
            with open(os.path.join(folder, name), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def _cache_folder(kernel_folder):
    """Where Numba caches the kernels of `kernel_folder`, by its own locator
    order (NUMBA_CACHE_DIR, next to the sources, the user-wide folder)."""
    from numba.core import caching

    def probe():  # pragma: no cover - never called, only located
        pass

    source = os.path.join(kernel_folder, "config.py")
    for cls in getattr(caching.CacheImpl, "_locator_classes", ()):
        locator = cls.from_function(probe, source)
        if locator is not None:
            return locator.get_cache_path()
    return None


def drop_stale_cache(folder=None, sources=None):
    """Delete the cached kernels (``*.nbi``, ``*.nbc``) in `folder` (default:
    where Numba caches xbarsim's kernels) when the sources in `sources`
    (default: the kernels' folder) differ from the ones they were compiled
    from. Best effort: a folder that cannot be written is left alone."""
    try:
        sources = sources or _kernel_folder()
        folder = _cache_folder(sources) if folder is None else folder
        if folder is None:
            return
        digest = _source_digest(sources)
        stamp = os.path.join(folder, STAMP)
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
