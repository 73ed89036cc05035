"""Warnings attributed to the user's line, however deep the library called.

A fixed ``stacklevel`` is right for one call path only: ``xs.mvm`` and
``xs.mvm_many`` reach the same check at different depths, and a layer's
forward runs under torch's ``Module.__call__``. `warn` points the warning at
the first frame outside xbarsim, its kernels and torch (Python 3.12's
``skip_file_prefixes`` does this, but xbarsim supports 3.10).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings

__all__ = ["warn"]


def _library_folders():
    folders = []
    for name in ("xbarsim", "xbarsim.kernels", "torch"):
        module = sys.modules.get(name)  # only what is loaded: nothing imported here
        path = getattr(module, "__file__", None)
        if path:
            folders.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(folders)


def _inside(code, folders):
    """Whether a frame of ``code`` belongs to the libraries: their files, and
    the ``__init__`` a dataclass generates (file ``<string>``) and the
    standard ``dataclasses`` module (``replace``) on the way to a
    ``__post_init__`` check."""
    if code.co_filename == "<string>" and code.co_name == "__init__":
        return True
    path = os.path.abspath(code.co_filename)
    return path.startswith(folders) or path == _DATACLASSES


_DATACLASSES = os.path.abspath(dataclasses.__file__)


def warn(message, category):
    """``warnings.warn(message, category)`` at the caller's first frame outside the libraries."""
    folders = _library_folders()
    level = 2  # 1 would name this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and _inside(frame.f_code, folders):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
