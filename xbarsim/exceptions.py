"""Exceptions raised by xbarsim.

Every error a user can cause has its own class, raised before any compute,
with a message that says what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "XbarsimError",
    "ParameterError",
    "CircuitError",
    "ConvergenceError",
    "DriveOverflowError",
    "MemoryLimitError",
    "SpiceError",
    "ForkError",
    "KernelCacheWarning",
]

from ._kernel_cache import KernelCacheWarning  # noqa: E402 - a warning, defined where it is raised


class XbarsimError(Exception):
    """Base class of every error xbarsim raises on purpose."""


class ParameterError(XbarsimError, ValueError):
    """A parameter has the wrong shape, type, sign or value (NaN, inf...)."""


class CircuitError(XbarsimError):
    """The circuit is ill-posed: it has no unique solution.

    Attributes
    ----------
    word_lines, bit_lines : list of int
        The lines at fault.
    """

    def __init__(self, message, word_lines=(), bit_lines=()):
        super().__init__(message)
        # Python ints (NumPy's int64 failed isinstance(i, int) and json.dumps)
        self.word_lines = [int(i) for i in word_lines]
        self.bit_lines = [int(j) for j in bit_lines]


class ConvergenceError(XbarsimError):
    """An iterative solve did not reach its tolerance.

    Attributes
    ----------
    residual_history : numpy.ndarray
        The starting relative residual, then the one after each iteration
        (worst batch column; `xbarsim.Solution.residual_history`).
    iterations : int
        Iterations run before giving up.
    """

    def __init__(self, message, residual_history=None, iterations=0):
        super().__init__(message)
        self.residual_history = residual_history
        self.iterations = iterations


class DriveOverflowError(ParameterError, ConvergenceError):
    """The drives push sinh device currents past double precision
    (``|V / V0|`` beyond about 710 between nodes the drives fix, or some 355
    V0 next to an ideal drive at the state the residual is measured
    against). Raised before any Newton step, from the drives and ``v0``
    alone: a `ParameterError`, since the drives or ``v0`` must change, and a
    `ConvergenceError` as well (``residual_history``, ``iterations = 0``),
    so that code written to catch a failed solve still catches it."""


class MemoryLimitError(XbarsimError, MemoryError):
    """A request would not fit in memory; refused before allocating."""

    def __reduce__(self):
        # a reducer of its own: Dask sends a worker's exception back through
        # tblib, which rebuilds one with the built-in reducer as
        # ``cls.__new__(cls)``, and MemoryError refuses that for a subclass,
        # so a chunk refused on a worker reached the caller as a bare
        # Exception holding its repr (found by review)
        return type(self), self.args, self.__dict__ or None


class SpiceError(XbarsimError):
    """ngspice is missing, failed, or returned output that cannot be read."""


class ForkError(XbarsimError, RuntimeError):
    """A parallel kernel was asked for in a process forked from one whose
    Numba threads run on GNU OpenMP, where Numba would terminate it
    (SIGTERM), or a grandchild would hang; refused before it starts
    (`xbarsim._fork`)."""
