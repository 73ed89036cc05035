"""xbarsim: exact, fast simulation of passive (selectorless) ReRAM crossbars.

The public namespace (``__all__``)::

    Crossbar, Drive, solve, Solution           the circuit and its solver
    read_drives, pulse_drives, verify_drives   drives of a read, a programming
                                               pulse, a verify read
    XbarsimError and its subclasses,           what can go wrong
    KernelCacheWarning
    DeviceParams, WriteVerify, TransferConfig  the device model and how to program
    BiasScheme, ReadScheme, Order              it (presets: xbarsim.presets.TIO2)
    program, ProgramResult                     write-verify of one array
    transfer, Programmed, mvm                  a layer into crossbars, and its MVM
    transfer_many, TransferBatch, mvm_many,    Monte Carlo transfers, in memory or
    iter_transfers, ConvergenceTally           streamed in chunks
    devices, mapping, presets                  submodules

Everything else lives in submodules (``xbarsim.spice``, ``xbarsim.scale``,
``xbarsim.train``, ...). ``xbarsim.solve`` and ``xbarsim.transfer`` name the
functions; their modules are ``sys.modules["xbarsim.solve"]`` and
``sys.modules["xbarsim.transfer"]``.
"""

from . import _source_tree

_source_tree.install(__path__[0])  # xbarsim.kernels from a checkout's kernels/ (python -m pytest there)

from .circuit import Crossbar, Drive, pulse_drives, read_drives, verify_drives
from .exceptions import (
    CircuitError,
    ConvergenceError,
    DriveOverflowError,
    ForkError,
    KernelCacheWarning,
    MemoryLimitError,
    ParameterError,
    SpiceError,
    XbarsimError,
)
from .solve import Solution, solve
from . import _fork  # noqa: F401 - its fork hook, registered before any kernel runs
from . import devices, mapping, presets, programming  # noqa: F401 - submodules as attributes
from .devices import DeviceParams
from .programming import BiasScheme, ReadScheme, Order, WriteVerify, TransferConfig, ProgramResult, program
from .transfer import (Programmed, TransferBatch, ConvergenceTally, transfer, transfer_many, iter_transfers, mvm,
                       mvm_many)

from importlib.metadata import PackageNotFoundError as _NotFound, version as _version

try:  # one source of truth: the installed metadata (pyproject's version)
    __version__ = _version("xbarsim")
except _NotFound:  # a source tree that was never installed
    __version__ = "0.1.0+unknown"
del _NotFound, _version

__all__ = [
    "Crossbar",
    "Drive",
    "read_drives",
    "pulse_drives",
    "verify_drives",
    "solve",
    "Solution",
    "XbarsimError",
    "ParameterError",
    "CircuitError",
    "ConvergenceError",
    "DriveOverflowError",
    "MemoryLimitError",
    "SpiceError",
    "ForkError",
    "KernelCacheWarning",
    "DeviceParams",
    "TransferConfig",
    "WriteVerify",
    "BiasScheme",
    "ReadScheme",
    "Order",
    "ProgramResult",
    "program",
    "Programmed",
    "TransferBatch",
    "transfer",
    "transfer_many",
    "iter_transfers",
    "ConvergenceTally",
    "mvm",
    "mvm_many",
    "devices",
    "mapping",
    "presets",
]
