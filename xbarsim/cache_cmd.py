"""``xbarsim cache``: where the compiled kernels are cached, and clearing it.

xbarsim's Numba kernels compile on first use (tens of seconds) and are kept
on disk (`xbarsim._kernel_cache`; README, "Compiled-kernel cache"). This
command says where, how much is there and whether it was compiled from the
installed sources; ``--clear`` deletes it (the next solve or transfer
compiles again). ``pip uninstall`` leaves a cache kept next to the installed
sources behind, so clear it first.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ._kernel_cache import STAMP, _source_digest, ignored_cache_dir, no_cache_requested, write_stamp

__all__ = ["CacheReport", "cache_report", "clear_cache"]

_SUFFIXES = (".nbi", ".nbc")
"""Numba's index and data files of cached kernels."""


class CacheReport(NamedTuple):
    """What `cache_report` found."""

    enabled: bool
    """Kernels are cached on disk in this process."""
    folder: str | None
    """Where (None when caching is off or the folder is unknown)."""
    files: int
    """Cached-kernel files (``*.nbi``, ``*.nbc``) in `folder`."""
    size: int
    """Their bytes."""
    current: bool | None
    """The folder's stamp is the digest of the kernel sources installed now
    (None: no stamp, e.g. an empty cache)."""


def _cached_files(folder):
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if n.endswith(_SUFFIXES)]


def cache_report(folder=None, sources=None, enabled=None):
    """A `CacheReport` of `folder` (default: the folder this process caches
    the kernels in, ``xbarsim.kernels.config``; with caching turned off by
    ``XBARSIM_NO_CACHE``, where Numba would keep them, which may still hold
    an earlier run's), against the kernel sources in `sources` (default:
    the installed ones)."""
    from .kernels import config

    if enabled is None:
        enabled = bool(config.CACHE)
    sources = config._FOLDER if sources is None else sources
    if folder is None:
        folder = config._CACHE_FOLDER
        if folder is None and not config.CACHE and no_cache_requested():
            from ._kernel_cache import locate_cache

            folder = locate_cache(sources).folder
    if folder is None:
        return CacheReport(enabled, None, 0, 0, None)
    files = _cached_files(folder)
    size = 0
    for path in files:
        try:
            size += os.path.getsize(path)
        except OSError:  # removed meanwhile by another process
            pass
    try:
        with open(os.path.join(folder, STAMP)) as fh:
            current = fh.read().strip() == _source_digest(sources)
    except OSError:
        current = None
    return CacheReport(enabled, folder, len(files), size, current)


def clear_cache(folder=None, sources=None):
    """Delete the cached kernels of `folder` (default: this process's, as
    `cache_report`); other files (a ``__pycache__``'s ``*.pyc``) stay.
    Returns ``(files, bytes)`` deleted.

    A folder elsewhere (``NUMBA_CACHE_DIR``, the user's cache) keeps a
    digest stamp of the kernel sources in `sources` (default: the installed
    ones): deleting it made the next import drop, as compiled from other
    sources, the valid kernels that a process running meanwhile saved there.
    The stamp of a cache next to the sources (their
    ``__pycache__``) is deleted, so that ``pip uninstall`` after a clear
    leaves nothing behind; there that race
    costs one more compile."""
    from .kernels import config

    sources = config._FOLDER if sources is None else sources
    report = cache_report(folder, sources)
    if report.folder is None or not os.path.isdir(report.folder):
        return 0, 0  # (a missing folder was reported unwritable by the stamp)
    from .exceptions import ParameterError

    beside = os.path.normcase(os.path.dirname(os.path.abspath(report.folder))) == \
        os.path.normcase(os.path.abspath(sources))

    deleted = size = 0
    for path in _cached_files(report.folder):
        try:
            n = os.path.getsize(path)
            os.remove(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ParameterError(f"cannot delete {path} ({exc.strerror}); delete the folder's *.nbi and *.nbc "
                                 "files as a user who may write it.") from None
        deleted, size = deleted + 1, size + n
    try:
        if beside:
            try:
                os.remove(os.path.join(report.folder, STAMP))
            except FileNotFoundError:
                pass
        else:
            write_stamp(report.folder, _source_digest(sources))
    except OSError as exc:
        raise ParameterError(f"deleted the cached kernels, but cannot {'delete' if beside else 'write'} the stamp "
                             f"{STAMP} in {report.folder} ({exc.strerror}). Make the folder writable, and clear "
                             "again.") from None
    return deleted, size


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


def register(subparsers):
    from .cli import help_text

    p = subparsers.add_parser(
        "cache", help="where the compiled kernels are cached on disk; --clear deletes them",
        description=help_text(__doc__.split("\n", 2)[2]),
    )
    p.add_argument("--clear", action="store_true",
                   help="delete the cached kernels (the next solve or transfer compiles them again)")

    def main(args):
        from ._kernel_cache import DROPPED  # at call time: the dict the import's drop filled

        import numba

        if numba.config.DISABLE_JIT:
            # njit is a no-op then, so Numba names no cache folder: --clear
            # printed "deleted 0 ... (no cache folder)" over a full cache
            # and the report said "on"
            if args.clear:
                from .exceptions import ParameterError

                raise ParameterError("NUMBA_DISABLE_JIT is set, so Numba compiles nothing and does not say where "
                                     "it caches the kernels; nothing was deleted. Run it without the variable: "
                                     "NUMBA_DISABLE_JIT=0 xbarsim cache --clear")
            print("compiled-kernel cache: not used (NUMBA_DISABLE_JIT is set: the kernels run as plain Python); "
                  "run without it to see the cache")
            return 0
        report = cache_report()
        ignored = ignored_cache_dir(report.folder)  # warned of on import (kernels.config)
        if ignored is not None and args.clear:
            from .exceptions import ParameterError

            raise ParameterError(f"NUMBA_CACHE_DIR={ignored!r} is set, but Numba cannot create or write it, so it "
                                 f"caches xbarsim's kernels in {report.folder}, and --clear would delete those; "
                                 "point NUMBA_CACHE_DIR at a writable folder, or unset it, and run again.")
        if args.clear:
            files, size = clear_cache()
            where = report.folder or "(no cache folder)"
            stale = DROPPED.get(report.folder, 0)
            # the import had emptied a stale cache already: "deleted 0" alone misled
            stale = f"; {stale} more, compiled from other kernel sources, as xbarsim loaded" if stale else ""
            print(f"deleted {files} cached-kernel files ({_mib(size)}) from {where}{stale}")
            return 0
        if not report.enabled and no_cache_requested():
            left = "" if report.folder is None else (
                f"; {report.files} files ({_mib(report.size)}) left in {report.folder} by earlier runs")
            print(f"compiled-kernel cache: off (XBARSIM_NO_CACHE is set): the kernels compile in every process{left}")
            return 0
        if report.folder is None:
            if report.enabled:
                print("compiled-kernel cache: on, in a folder Numba does not say (a Numba whose private cache "
                      "API changed)")
            else:
                print("compiled-kernel cache: off (Numba has no writable folder for it): the kernels compile in "
                      "every process; set NUMBA_CACHE_DIR to a writable folder to keep them")
            return 0
        dropped = DROPPED.get(report.folder, 0)
        dropped = (f"; {dropped} files compiled from other kernel sources were deleted as xbarsim loaded "
                   "(they could never be used)") if dropped else ""
        if report.files == 0:
            print(f"compiled-kernel cache: {report.folder}\n"
                  f"  empty: the kernels compile on the next solve or transfer{dropped}")
            return 0
        stamp = {True: "compiled from the installed sources",
                 False: "compiled from other sources, so never loaded (the folder is not writable to drop them)",
                 None: "no stamp yet"}[report.current]
        print(f"compiled-kernel cache: {report.folder}\n"
              f"  {report.files} files, {_mib(report.size)}; {stamp}{dropped}")
        return 0

    p.set_defaults(func=main)
    return p
