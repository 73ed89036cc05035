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

`stamp_with_digest` closes the remaining gap: a process that imported the
kernels before an edit, and compiles one of them for the first time after
another process dropped the cache, saves it with its old callee under the
unchanged stamp of the kernel's own file, and every later process loaded it
(an MVM read half its current after ``column_current`` was
edited). Each cached kernel of the package is stamped with the digest of
the sources its process imported too, so such an entry is never taken.

`locate_cache` asks Numba where it would cache the kernels, the same way
``@njit(cache=True)`` does when a kernel module is imported: Numba raises
then when it has no usable cache folder at all (read-only install, no
writable ``NUMBA_CACHE_DIR`` or home), and ``kernels/config.py`` turns
caching off instead (with a `KernelCacheWarning`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from typing import NamedTuple

__all__ = ["KernelCacheWarning", "CacheLocation", "locate_cache", "no_cache_requested", "ignored_cache_dir",
           "drop_stale_cache", "stamp_with_digest"]

STAMP = "xbarsim-kernels.sha256"
"""Name of the digest file kept in the cache folder."""


class KernelCacheWarning(RuntimeWarning):
    """Numba's on-disk cache of xbarsim's compiled kernels is off, or its
    stale-cache guard is (results stay correct unless a kernel file is
    edited in place; only compile time is at stake otherwise)."""


class CacheLocation(NamedTuple):
    """Where Numba would cache the kernels of one folder."""

    usable: bool
    """``@njit(cache=True)`` works for a kernel of that folder."""
    folder: str | None
    """The cache folder (None when unusable or unknown)."""
    reason: str | None = None
    """Why caching is unusable (Numba's own message)."""


_warned_unguarded = False


_warned_edited = False


def _warn_edited_since_import():
    """Say once per process that kernel sources changed after its first
    kernel module was imported."""
    global _warned_edited
    if _warned_edited:
        return
    _warned_edited = True
    warnings.warn(
        "xbarsim: a kernel source changed after this process imported its first kernel module; the kernel "
        "modules it imports from now on mix old and new sources, and their compiled code is not cached for "
        "other processes. Restart the process to run the edited kernels throughout.",
        KernelCacheWarning,
        stacklevel=3,
    )


def _warn_unguarded(why):
    """Say once per process that cached kernels are no longer checked against
    the sources (the private Numba API this relies on changed)."""
    global _warned_unguarded
    if _warned_unguarded:
        return
    _warned_unguarded = True
    warnings.warn(
        "xbarsim: the stale-cache guard of the compiled kernels is off "
        f"({why}); a kernel cached before a kernel source changed may keep "
        "running the old code of another file. Delete Numba's cache of "
        "xbarsim's kernels after editing them, or set XBARSIM_NO_CACHE=1.",
        KernelCacheWarning,
        stacklevel=3,
    )


def _kernel_folder():
    from . import kernels

    return os.path.dirname(os.path.abspath(kernels.__file__))


def _source_digest(folder):
    """SHA-256 of the ``*.py`` files of `folder`, by name and content, each
    name ended by a NUL and each content by its length (run together, a
    folder of ``a.py`` = "" and ``b.py`` = "x" hashed as one of ``a.py`` =
    "b.pyx"). A name that cannot be read is skipped: an
    editor's lock file (Emacs's ``.#mvm.py``, a dangling link) made every
    kernel import raise."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and not name.startswith(".#"):
            try:
                with open(os.path.join(folder, name), "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            h.update(name.encode() + b"\0")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest():
    """SHA-256 of every ``*.py`` source of the xbarsim package and of its
    kernels, by folder, name and content: which code made a result, where
    ``__version__`` (the same across commits and editable checkouts) cannot
    tell. `xbarsim moons` reuses a fitted surrogate only when it matches: a
    fit by another checkout's simulator was reused silently.
    """
    root = os.path.dirname(os.path.abspath(__file__))
    folders = sorted({dirpath for dirpath, _, names in os.walk(root) if any(n.endswith(".py") for n in names)}
                     | {_kernel_folder()})
    h = hashlib.sha256()
    for folder in folders:
        rel = os.path.relpath(folder, root) if folder.startswith(root + os.sep) or folder == root else "kernels"
        h.update(rel.replace(os.sep, "/").encode() + b"\0")
        h.update(_source_digest(folder).encode())
    return h.hexdigest()


def locate_cache(kernel_folder):
    """Where Numba caches the kernels of `kernel_folder`, by its own locator
    order (``NUMBA_CACHE_DIR``, next to the sources, the user-wide folder, or
    ``NUMBA_CACHE_LOCATOR_CLASSES``, which turns the per-kernel stamp of
    `stamp_with_digest` off, with a `KernelCacheWarning`).

    A probe function that Numba takes for one defined in
    ``<kernel_folder>/config.py`` is decorated with ``njit(cache=True)``
    (no compilation): that raises exactly when the kernels' own decoration
    would. Never raises."""

    def _cache_probe():  # pragma: no cover - never called, only located
        pass

    source = os.path.join(kernel_folder, "config.py")
    try:
        _cache_probe.__code__ = _cache_probe.__code__.replace(co_filename=source)
        from numba import njit
    except Exception as exc:  # pragma: no cover - no numba: kernels fail anyway
        return CacheLocation(False, None, f"{type(exc).__name__}: {exc}")
    try:
        dispatcher = njit(cache=True)(_cache_probe)
    except Exception as exc:
        # "cannot cache function ...: no locator available for file ..."
        return CacheLocation(False, None, f"{type(exc).__name__}: {exc}")
    if dispatcher is _cache_probe:  # NUMBA_DISABLE_JIT: nothing is cached
        return CacheLocation(True, None)
    # Private: Dispatcher._cache (a FunctionCache) and its _cache_path.
    folder = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    if not isinstance(folder, str):
        _warn_unguarded("Numba's dispatcher no longer exposes _cache._cache_path")
        return CacheLocation(True, None)
    return CacheLocation(True, folder)


def no_cache_requested(environ=None):
    """``XBARSIM_NO_CACHE`` is set to turn caching off (1, true or yes)."""
    environ = os.environ if environ is None else environ
    return environ.get("XBARSIM_NO_CACHE", "").strip().lower() in ("1", "true", "yes")


def ignored_cache_dir(folder, environ=None):
    """``NUMBA_CACHE_DIR`` when it is set but `folder`, where Numba caches
    the kernels, is not inside it: Numba passes over a cache folder it cannot
    create or write (a file, a read-only place) without a word and caches next
    to the sources or in the user's folder. None otherwise."""
    environ = os.environ if environ is None else environ
    wanted = environ.get("NUMBA_CACHE_DIR", "")
    if not wanted or folder is None:
        return None
    try:
        inside = os.path.commonpath([os.path.abspath(wanted), os.path.abspath(folder)]) == os.path.abspath(wanted)
    except ValueError:  # different drives
        inside = False
    return None if inside else wanted


DROPPED = {}
"""Cached-kernel files `drop_stale_cache` deleted in this process, by folder
(`xbarsim cache` reports them: it said "0 files; compiled from the installed
sources" of a cache its own import had just emptied)."""


def drop_stale_cache(folder=None, sources=None, digest=None):
    """Delete the cached kernels (``*.nbi``, ``*.nbc``) in `folder` (default:
    where Numba caches xbarsim's kernels) when the sources in `sources`
    (default: the kernels' folder) differ from the ones they were compiled
    from, and stamp `folder` with the digest of `sources` (``digest``, when
    the caller has it already: `_source_digest`). Best effort: a
    folder that cannot be written is left alone; any other failure warns
    (`KernelCacheWarning`, once) and returns."""
    try:
        sources = sources or _kernel_folder()
        if folder is None:
            folder = locate_cache(sources).folder
        if folder is None:
            return
        digest = digest or _source_digest(sources)
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
                    DROPPED[folder] = DROPPED.get(folder, 0) + 1
                except OSError:
                    pass
        write_stamp(folder, digest)
    except OSError:
        return  # caching is an optimisation, never an error
    except Exception as exc:
        _warn_unguarded(f"{type(exc).__name__}: {exc}")


def write_stamp(folder, digest):
    """Stamp the cache `folder` with `digest`, the kernel sources its files
    were (or will be) compiled from, atomically (another process may be
    reading it); an `OSError` is the caller's."""
    stamp = os.path.join(folder, STAMP)
    tmp = f"{stamp}.{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(digest + "\n")
    os.replace(tmp, stamp)


def stamp_with_digest(folder, digest):
    """Have Numba stamp every cached kernel whose source is in `folder` with
    `digest` (the SHA-256 of the kernel sources this process imported) on
    top of its own file's stamp, so that an entry compiled from other
    sources is a cache miss (recompiled and replaced). Numba compares the
    stamp a cache index was written with to the one its locator gives now.
    Installed once per process, before the kernels are decorated; returns
    whether it is in place (a Numba without the private locator list warns,
    `KernelCacheWarning`, and the folder-wide `drop_stale_cache` remains)."""
    try:
        from numba.core import caching
        from numba.core import config as numba_config

        if getattr(numba_config, "CACHE_LOCATOR_CLASSES", None):
            # Numba then builds its locators from the variable and never reads
            # the list wrapped below: no stamp, without a word
            _warn_unguarded("NUMBA_CACHE_LOCATOR_CLASSES is set, so Numba uses those locators, not the stamped ones")
            return False
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
        classes = impl._locator_classes
        if getattr(impl, "_xbarsim_digests", None) is not None:
            impl._xbarsim_digests[os.path.normcase(folder)] = digest
            return True
        digests = {os.path.normcase(folder): digest}

        def stamped(cls):
            class Stamped(cls):
                def get_source_stamp(self):
                    # called as each kernel is decorated, when its module is
                    # imported: the module's source is the one on disk now
                    stamp = super().get_source_stamp()
                    source = getattr(self, "_py_file", None)
                    if source is None:
                        return stamp
                    where = os.path.normcase(os.path.dirname(os.path.abspath(source)))
                    extra = digests.get(where)
                    if extra is None:
                        return stamp
                    now = _source_digest(where)
                    if now != extra:
                        # a kernel module imported after a kernel source was
                        # edited in this process's lifetime: its kernels mix
                        # sources no digest names. They were saved under the
                        # first digest, and later processes loaded them after
                        # the edit was undone. A stamp that
                        # nothing else carries: never loaded, never reused.
                        _warn_edited_since_import()
                        return (stamp, "xbarsim-kernels", "edited-since-import", extra, now, os.getpid())
                    return (stamp, "xbarsim-kernels", extra)

            Stamped.__name__ = Stamped.__qualname__ = cls.__name__
            return Stamped

        impl._locator_classes = [stamped(cls) for cls in classes]
        impl._xbarsim_digests = digests
        return True
    except Exception as exc:
        _warn_unguarded(f"cannot stamp cached kernels with their sources' digest: {type(exc).__name__}: {exc}")
        return False
