"""``xbarsim.kernels`` when xbarsim is imported from a source checkout.

The repository keeps the compiled kernels in a top-level ``kernels/`` folder,
beside ``xbarsim/``, and installs them as ``xbarsim.kernels`` (never as a
top-level ``kernels``: that name belongs to another PyPI project). An
installed package and an editable install both find them. But ``python -m
pytest`` (or ``python -m xbarsim``) run inside a checkout or an unpacked
sdist puts that folder first on ``sys.path``, so ``xbarsim`` comes from the
tree, where there is no ``xbarsim/kernels``: every kernel import failed with
``No module named 'xbarsim.kernels'``. `install` adds a
finder that maps ``xbarsim.kernels`` to the tree's ``kernels/``, first in
``sys.meta_path``: it answers for that one name only, and only once
``xbarsim`` itself came from the tree, so the tree's kernels go with the
tree's Python. (Last, it was asked only when no other finder knew the name,
and in a second checkout or a copy run with the first one's editable
install, that install's finder answered: the copy's Python ran the other
tree's kernels without a word, edits to them ignored.)
Nothing is imported until a kernel is.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_NAME = "xbarsim.kernels"


class _SourceKernels(importlib.abc.MetaPathFinder):
    """Finds ``xbarsim.kernels`` in the checkout's ``kernels/`` folder."""

    def __init__(self, folder):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _NAME:
            return None  # its submodules come from the package's __path__
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(self.folder, "__init__.py"), submodule_search_locations=[self.folder])


def install(package_dir):
    """Add the finder when ``package_dir`` (``xbarsim/``) sits in a source
    tree: no ``kernels`` inside it, the tree's ``kernels/`` and
    ``pyproject.toml`` beside it."""
    if os.path.isdir(os.path.join(package_dir, "kernels")):
        return  # an installed package (or a checkout with a link there)
    root = os.path.dirname(package_dir)
    folder = os.path.join(root, "kernels")
    if not (os.path.isfile(os.path.join(folder, "__init__.py")) and os.path.isfile(os.path.join(folder, "config.py"))
            and os.path.isfile(os.path.join(root, "pyproject.toml"))):
        return
    if not any(isinstance(f, _SourceKernels) and f.folder == folder for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceKernels(folder))
