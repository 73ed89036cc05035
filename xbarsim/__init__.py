"""xbarsim: exact, fast simulation of passive (selectorless) ReRAM crossbars.

The small public namespace::

    Crossbar, Drive, solve, Solution         the circuit and its solver
    XbarsimError and subclasses              what can go wrong

Everything else lives in submodules (``xbarsim.spice``, ...).
"""

from .circuit import Crossbar, Drive, read_drives
from .exceptions import (
    CircuitError,
    ConvergenceError,
    MemoryLimitError,
    ParameterError,
    SpiceError,
    XbarsimError,
)
from .solve import Solution, solve

__version__ = "0.1.0"

__all__ = [
    "Crossbar",
    "Drive",
    "read_drives",
    "solve",
    "Solution",
    "XbarsimError",
    "ParameterError",
    "CircuitError",
    "ConvergenceError",
    "MemoryLimitError",
    "SpiceError",
]
