"""Parallel kernels in a forked process: a clear error instead of SIGTERM.

Numba's threading layer here is GNU OpenMP (``omp``) unless TBB is
installed where Numba finds it. Once a process has started that layer (its
first parallel kernel, compiled or loaded), a child it forks (the
``fork`` start method of `multiprocessing`, Linux's default before Python
3.14, and of ``torch.utils.data.DataLoader`` workers) is terminated by
Numba the moment it runs a parallel kernel: "Terminating: fork() called
from a process already using GNU OpenMP, this is unsafe.", exit code -15,
and a ``Pool.map`` over such workers hangs; a child of
that child (a grandchild) hangs in the kernel instead. A child that runs no
parallel kernel is unaffected.

So a child remembers, at the fork, whether its parent had started that
layer (a grandchild inherits the record), and the entry points that run
parallel kernels (`check_fork_safe`: the solvers, the programming kernel,
the training surrogate's read noise) raise `ForkError` with the remedies
before any of them runs. The record is made by a fork hook that importing
xbarsim registers: a child that imports xbarsim only after the fork is not
covered. Importing this module imports nothing heavy: Numba is only looked
up in ``sys.modules``.
"""

from __future__ import annotations

import os
import sys

from .exceptions import ForkError

_forked_from = None
"""Process id of the process that had started the GNU OpenMP threads this
process inherited by fork (its parent, or further up for a grandchild);
None: not forked from such a process."""


def _omp_started():
    """Whether this process has started Numba's GNU OpenMP threading layer."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or getattr(parallel, "_threading_layer", None) != "omp":
        return False
    omp = sys.modules.get("numba.np.ufunc.omppool")
    return getattr(omp, "openmp_vendor", "GNU") == "GNU"  # Intel's OpenMP is fork-safe


def _after_fork_in_child():
    global _forked_from
    if _forked_from is None and _omp_started():  # a grandchild keeps its parent's record
        _forked_from = os.getppid()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def check_fork_safe(what):
    """Raise `ForkError` when this process was forked after its parent
    started Numba's GNU OpenMP threads (see the module docstring); `what`
    names the call."""
    if _forked_from is None:
        return
    raise ForkError(
        f"{what}: this process was forked from process {_forked_from} (or from a child of it), which had "
        "started Numba's GNU OpenMP threads, and a parallel kernel in a forked process is terminated by Numba "
        "(or hangs, in a grandchild). Start the worker processes "
        "with 'spawn' or 'forkserver' (multiprocessing.get_context('spawn'); "
        "torch.utils.data.DataLoader(..., multiprocessing_context='spawn')), or set "
        "NUMBA_THREADING_LAYER=workqueue before the parent imports Numba (fork-safe, but then no xbarsim call "
        "may run in several threads of one process at once).")
