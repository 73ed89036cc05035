"""Scaling study: how large can a passive array be? (``xbarsim scale``)

For every combination of array size, wire resistance, device window, device
model and number of input vectors, solve the read (MVM) configuration of
docs/CIRCUIT.md -- word lines driven at the left through ``r_terminal``,
bit lines sensed at 0 V at the bottom through ``r_terminal`` -- on random
conductances uniform in the window and random inputs uniform in
``[0, v_read]``, and compare the sense currents with the ideal product
``G.T @ x``.

Each point is one task; points fan out through Dask (in this process by
default, or on a `distributed` cluster). Every finished point is appended to
``results.csv`` at once (flushed and fsync'ed), keyed by a stable point id,
so a sweep that is interrupted and restarted with the same output folder
only computes what is missing, and the points the memory guard refused
(whether one fits depends on the memory free at the time). (Two sweeps
writing into one folder at the same time are not coordinated: they may
compute a point twice; the last row of an id wins.) A ``results.csv`` that
this tool did not write is refused, never overwritten.

Python use::

    >>> from xbarsim.scale import SweepParams, run_sweep
    >>> rows = run_sweep(SweepParams(sizes=((16, 16), (32, 32)), r_wire=(1.0,)),
    ...                  "scale-out", progress=False)            # doctest: +SKIP
    >>> [round(r["rel_error"], 4) for r in rows]                  # doctest: +SKIP

The CSV columns (`COLUMNS`) carry their unit in the name.

What "peak memory" means
------------------------
Both numbers come from the worker process's resident-set size (RSS, what
the OS really holds in RAM, including SuperLU's fill and numba's arrays,
which ``tracemalloc`` would not see), with no cost to the timed solve:

``peak_rss_mib``
    The process's RSS high-water mark (``VmHWM``) during ``xs.solve``, after
    resetting it just before the solve through ``/proc/self/clear_refs``
    (Linux). It includes the interpreter and libraries (about 150-200 MiB)
    and the point's conductances and inputs, so it answers "how much RAM
    does a process need to run this point".
``solve_rss_mib``
    ``peak_rss_mib`` minus the RSS just before the solve: the solver's own
    working set. Approximate: memory that earlier points freed but the C
    allocator kept counts in the baseline, so this can read lower than what
    the solver allocated.
``mem_estimate_mib``
    What `xbarsim._memory.estimate` predicts for the solve: the number the
    memory guard compares with available memory (on the points it refused,
    ``skipped``, too).

Both RSS columns are NaN where the high-water mark cannot be reset
(non-Linux). Points running concurrently in one process (an external
cluster with several threads per worker) share one number.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import functools
import io
import math
import os
import shutil
import socket
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from ._dask import (check_scheduler_address, client_problem, close_client, close_cluster, connect_scheduler,
                    normalized_address, one_line, scheduler_lost, start_local_cluster, usable_cores)
from .exceptions import MemoryLimitError, ParameterError, XbarsimError
from .circuit import G_SUSPECT
from .cli import SEED_LIMIT, refuse_non_folder, seed_arg
from .solve import METHODS

__all__ = [
    "ScalePoint",
    "SweepParams",
    "DEFAULT_SWEEP",
    "COLUMNS",
    "run_point",
    "run_sweep",
    "load_results",
    "plot_results",
    "format_table",
    "register",
]

RESULTS_NAME = "results.csv"
"""File name of the results table inside the output folder."""
COLUMNS_NAME = "results_columns.txt"
"""Beside the results: every column of results.csv with its type, meaning
and unit (`column_key`)."""

STATUSES = ("ok", "skipped", "failed")
"""``ok``: solved; ``skipped``: refused before compute (memory guard; tried
again by every run, as the memory free may have changed); ``failed``: the
solver raised (bad parameter such as an unsupported ``v0``, no convergence,
a worker lost); ``message`` holds the reason."""

# name, type, meaning (unit in the name where there is one)
_COLUMN_SPEC = (
    ("point_id", str, "stable id of the point; a restart skips ids already in the file"),
    ("status", str, "ok | skipped | failed"),
    ("message", str, "reason when skipped or failed; for an ok point, why a metric is empty"),
    ("rows", int, "word lines M"),
    ("cols", int, "bit lines N"),
    ("r_wire_ohm", float, "wire segment resistance, word and bit lines, ohms"),
    ("r_terminal_ohm", float, "driver and sense-amplifier terminal resistance, ohms"),
    ("g_min_s", float, "device window lower end, siemens"),
    ("g_max_s", float, "device window upper end, siemens"),
    ("device", str, "linear | sinh"),
    ("v0_v", float, "sinh voltage scale, volts (empty for linear)"),
    ("inputs", int, "input vectors solved at once (batch columns)"),
    ("v_read_v", float, "inputs are uniform in [0, v_read], volts"),
    ("seed", int, "random seed of conductances and inputs"),
    ("method_requested", str, "auto | mg | pcg | direct"),
    ("tol", float, "relative Kirchhoff residual asked of the solver (or its rounding level, where higher: "
     "residual can read a few times a tol near 1e-14 on low-resistance wires)"),
    ("method", str, "solver method that ran"),
    ("rel_error", float, "||i_out - G.T x|| / ||G.T x|| over all outputs and inputs"),
    ("max_rel_error", float, "max over outputs j (and inputs) of |i_out_j - (G.T x)_j| / (G.T x)_j"),
    ("rel_error_wires", float, "||i_out - I_0|| / ||I_0||, I_0 the output of the same devices with ideal "
     "wires and terminals (sinh: sum_i G_ij v0 sinh(x_i / v0)); equals rel_error for linear devices"),
    ("ir_drop_wl_v", float, "max over word lines of V_drive - V(far node WL(i, N-1)), volts"),
    ("ir_drop_wl_frac", float, "worst over input vectors of (its largest word-line IR drop / its largest "
     "input); with several vectors not always ir_drop_wl_v's vector"),
    ("bl_rise_v", float, "max bit-line node voltage (ideal: 0 V), volts"),
    ("bl_rise_frac", float, "worst over input vectors of (its bit-line rise / its largest input); with several "
     "vectors not always bl_rise_v's vector"),
    ("time_s", float, "wall time of xs.solve, seconds (JIT warmed up beforehand; the best of up to "
                      "5 solves within 0.25 s, one solve when it alone takes longer)"),
    ("iterations", int, "solver iterations: CG iterations (1 for a direct linear solve, more where it refined; 0 "
     "where the drives fix every node, as with ideal wires and terminals: nothing to solve), Newton steps summed "
     "over the inputs for sinh devices"),
    ("residual", float, "relative Kirchhoff residual reached"),
    ("kcl_error", float, "Kirchhoff's current law over the whole array, worst input: |sum of terminal currents| / "
     "(sum |terminal currents| + largest drive x sum of device conductances + a rounding floor); "
     "xbarsim.Solution.kcl_error (the column said the first ratio alone, about 2x the value written for "
     "2-10 kohm devices)"),
    ("peak_rss_mib", float, "worker process RSS high-water mark during the solve, MiB (module docstring)"),
    ("solve_rss_mib", float, "peak_rss_mib minus the RSS just before the solve, MiB"),
    ("mem_estimate_mib", float, "memory guard's estimate for the solve, MiB"),
    ("code", str, "which xbarsim sources computed the row (the first 16 hex digits of "
     "xbarsim._kernel_cache.code_digest()); a rerun computes a point again whose row other sources made "
     "(empty: a row of a version before this column)"),
    ("worker", str, "host:pid of the process that ran the point"),
    ("finished_utc", str, "when the point finished, ISO 8601 UTC"),
)
COLUMNS = tuple(name for name, _, _ in _COLUMN_SPEC)
"""Columns of results.csv, in order."""


def _write_column_key(path):
    """`column_key` into ``path``, unless it already holds it (a rerun in a
    folder it cannot write, which only read before, went on); a path that
    cannot take it is a warning, not the sweep's end: the results are the
    table."""
    text = column_key()
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
        path.write_text(text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        from ._warn import warn

        warn(f"could not write {path} ({type(exc).__name__}: {exc}); the column key is also "
             "xbarsim.scale.column_key().", UserWarning)


def column_key():
    """Every column of results.csv, a line each: name, type and meaning
    (units in the names, or said): what a sweep writes as `COLUMNS_NAME`
    (the README and ``--help`` name the quantities only)."""
    return "".join(f"{name} ({typ.__name__}): {meaning}\n" for name, typ, meaning in _COLUMN_SPEC)


_TYPES = {name: typ for name, typ, _ in _COLUMN_SPEC}
_MIB = 2.0**20

_KEY_COLUMNS = ("point_id", "status", "rows", "cols")
"""How a results.csv of another xbarsim version is told from another program's
file: its header starts with ``point_id,status`` and names ``rows`` and
``cols`` (every version did; the ``code`` column came later). A file with any
other header is never overwritten."""

_OPTIONAL_COLUMNS = ("code",)
"""Columns a results.csv of an earlier version may lack; such a row is read
with the column empty (its ``code`` unknown: computed again unless
``reuse_other_code``)."""

SCHEDULER_TIMEOUT_S = 10.0
"""Seconds ``--scheduler`` allows for connecting to the scheduler and
completing Dask's handshake, all together."""

WORKER_BASELINE_BYTES = 256 * 2**20
"""What a local Dask worker process takes before any point: about 190 MiB
idle. `--workers` whose share of the machine's memory (a `LocalCluster`
gives each 1/N, its nanny restarting it past 95 % of that) falls below it
are refused: 1000 on 23 GiB spent five minutes starting workers and
computed nothing, after a warning only (found by review)."""

WORKER_WAIT_S = 30.0
"""Seconds ``--scheduler`` waits for a first worker when the scheduler has
none."""

EXIT_NONE_OK = 3
"""Exit status of ``xbarsim scale`` when the sweep finished but none of its
points succeeded (every one skipped or failed)."""

_RETRYABLE = ("KilledWorker", "CommClosedError", "FutureCancelledError")
"""Failures that come from losing a Dask worker, not from the point: only
these can succeed when the same point is run again (``--retry``)."""


# ----------------------------------------------------------------------------
# The points of a sweep
# ----------------------------------------------------------------------------


def _number(v):
    """Whether ``v`` is a real number (Python or NumPy; not a bool): what
    `SweepParams` and `ScalePoint` take for their numeric fields."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _whole_seed(seed):
    """Whether ``seed`` is a whole number in [0, 2**63), as ``--seed`` takes
    it (`cli.seed_arg`)."""
    return isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < SEED_LIMIT


@dataclass(frozen=True)
class ScalePoint:
    """One solve of the study: an array, its wires, devices and inputs."""

    rows: int
    """Word lines M."""
    cols: int
    """Bit lines N."""
    r_wire: float
    """Wire segment resistance of word and bit lines, ohms."""
    g_min: float
    """Lower end of the conductance window, siemens."""
    g_max: float
    """Upper end of the conductance window, siemens."""
    device: str = "linear"
    """``"linear"`` or ``"sinh"``."""
    v0: Optional[float] = None
    """sinh voltage scale, volts (None for linear devices)."""
    inputs: int = 1
    """Input vectors (batch columns) solved on one conductance state."""
    v_read: float = 0.2
    """Inputs are uniform in ``[0, v_read]``, volts."""
    r_terminal: float = 1.0
    """Driver and sense-amplifier terminal resistance, ohms."""
    seed: int = 0
    """Random seed. Conductances and inputs depend on (seed, M, N, inputs)
    only, so every wire resistance and window of one size sees the same
    random draw: comparisons across them are paired."""
    method: str = "auto"
    """Solver method passed to `xbarsim.solve`."""
    tol: Optional[float] = None
    """Solver tolerance; None for the solver's default."""

    @property
    def point_id(self):
        """A stable text id naming every parameter that changes the result."""
        def num(x):  # exact, with -0.0 as 0.0 (--r-wire 0,-0 made two ids of one point)
            return repr(float(x) + 0.0)

        dev = self.device if self.v0 is None else f"{self.device}{num(self.v0)}"
        tol = "default" if self.tol is None else num(self.tol)
        return (
            f"{self.rows}x{self.cols}_rw{num(self.r_wire)}_rt{num(self.r_terminal)}"
            f"_g{num(self.g_min)}-{num(self.g_max)}_{dev}_b{self.inputs}"
            f"_vr{num(self.v_read)}_s{self.seed}_{self.method}_tol{tol}"
        )

    def validate(self):
        """Raise ParameterError if this point cannot be solved as asked."""
        if not all(_number(v) and isinstance(v, (int, np.integer)) for v in (self.rows, self.cols, self.inputs)):
            # 8.5 rows passed, and NumPy's seeding refused it after results.csv was made
            raise ParameterError(f"rows, cols and inputs must be whole numbers (int); got {self.rows!r}, "
                                 f"{self.cols!r}, {self.inputs!r}.")
        for name in ("r_wire", "r_terminal", "g_min", "g_max", "v_read", "v0"):
            value = getattr(self, name)
            if not (_number(value) or (name == "v0" and value is None)):
                raise ParameterError(f"{name} must be a number; got {value!r}.")
        if self.rows < 1 or self.cols < 1:
            raise ParameterError(f"array size {self.rows} x {self.cols}: both must be >= 1.")
        if not (math.isfinite(self.r_wire) and self.r_wire >= 0):
            raise ParameterError(f"r_wire must be a finite number of ohms >= 0; got {self.r_wire!r}.")
        if not (math.isfinite(self.r_terminal) and self.r_terminal >= 0):
            raise ParameterError(f"r_terminal must be a finite number of ohms >= 0; got {self.r_terminal!r}.")
        if not (0 <= self.g_min <= self.g_max and self.g_max > 0 and math.isfinite(self.g_max)):
            raise ParameterError(
                f"conductance window {self.g_min!r}:{self.g_max!r} S: need 0 <= g_min <= g_max, g_max > 0."
            )
        if self.device not in ("linear", "sinh"):
            raise ParameterError(f"device must be 'linear' or 'sinh'; got {self.device!r}.")
        if self.device == "sinh" and not (self.v0 is not None and self.v0 > 0 and math.isfinite(self.v0)):
            raise ParameterError(f"a sinh device needs v0 > 0 volts; got {self.v0!r}.")
        if self.device == "linear" and self.v0 is not None:
            raise ParameterError("a linear device takes no v0; use device='sinh' for a nonlinear one.")
        if self.inputs < 1:
            raise ParameterError(f"inputs must be >= 1; got {self.inputs}.")
        if not (self.v_read > 0 and math.isfinite(self.v_read)):
            raise ParameterError(f"v_read must be > 0 volts; got {self.v_read!r}.")
        from .solve import _check_method

        method = _check_method(self.method)  # an unknown one refused there, with the nearest
        if method != self.method:
            raise ParameterError(f"method {self.method!r}: give it as {method!r} (the point's id and its results "
                                 "rows name it; SweepParams takes any case).")
        self._validate_combination()

    def _validate_combination(self):
        """The circuit's checks that concern values together (`Crossbar`,
        `read_drives`, `solve`), made here with the sweep's names: they were
        made in each point's solve, so a sweep with one impossible value ran
        every other point and recorded the rest as failed, naming ``r_wl``
        and ``left.r``."""
        from .circuit import DYNAMIC_RANGE, R_TINY
        from .solve import _check_tol

        if not _whole_seed(self.seed):
            from ._coerce import seed_refused

            raise ParameterError(seed_refused(self.seed, "seed (--seed)", "a whole number in [0, 2**63)."))
        if self.method == "mg" and self.r_wire == 0:  # was run, and recorded failed, point by point
            raise ParameterError("method 'mg' (--method mg) needs every wire segment to have r > 0; drop 0 from "
                                 "r_wire (--r-wire), or use method 'auto' (which takes pcg there) or 'pcg'.")
        if self.tol is not None:
            try:
                _check_tol(self.tol, None)
            except ParameterError as exc:
                raise ParameterError(f"tol (--tol): {exc}") from None
        for name, r in (("r_wire (--r-wire)", self.r_wire), ("r_terminal (--r-terminal)", self.r_terminal)):
            if 0 < r < R_TINY:
                raise ParameterError(f"{name} = {r:g} ohms: below {R_TINY:.0e} ohms the circuit solver cannot "
                                     "work; give 0 for an ideal part (handled exactly).")
        if self.g_max * self.r_wire > DYNAMIC_RANGE:
            raise ParameterError(
                f"window up to {self.g_max:.3g} S (--g-range) on {self.r_wire:g} ohm wires (--r-wire): a device "
                f"{self.g_max * self.r_wire:.2g} times the wire's conductance; beyond {DYNAMIC_RANGE:.0e} double "
                "precision cannot resolve the wires next to it. Check the units (siemens, ohms).")
        if self.r_wire > 0 and self.r_terminal > DYNAMIC_RANGE * self.r_wire:
            raise ParameterError(
                f"r_terminal (--r-terminal) = {self.r_terminal:g} ohms is {self.r_terminal / self.r_wire:.2g} times "
                f"the {self.r_wire:g} ohm wire segments (--r-wire); beyond {DYNAMIC_RANGE:.0e} double precision "
                "cannot resolve a line against its terminal. Give a smaller terminal resistance (0: ideal), or "
                "check --r-wire: 0 makes the wires ideal (handled exactly).")
        if self.r_terminal > 0:
            from ._pcg import kcl_bound

            # the solvers' refusal of drives whose whole current is below their
            # stopping test's floor (`solve_pcg`), made here for the sweep with a
            # 10x margin on that floor: it failed point by point, depending on
            # the random conductances
            gmax = max(self.g_max, 1.0 / self.r_wire if self.r_wire > 0 else 0.0)
            if math.sqrt(self.rows) / self.r_terminal <= 10 * kcl_bound(0.0, 0.0, 1.0, gmax):
                raise ParameterError(
                    f"r_terminal (--r-terminal) = {self.r_terminal:g} ohms: the drives reach the {self.rows} word "
                    f"lines through terminals so weak that their current is below what double precision resolves "
                    f"beside the {gmax:.3g} S parts of the array. Give a smaller terminal resistance (0: ideal); "
                    "check its units (ohms).")
        if self.v_read < np.finfo(float).tiny:
            raise ParameterError(f"v_read (--v-read) = {self.v_read:g} V, a subnormal double: the solvers scale "
                                 "the drives to unit voltage, which needs a normal one (at least 1e-300 V, say); "
                                 "the study's errors and IR-drop fractions do not depend on it for linear devices.")
        with np.errstate(over="ignore"):
            current = 2.0 * self.v_read * max(self.g_max, 1.0 / self.r_wire if self.r_wire > 0 else 0.0,
                                              1.0 / self.r_terminal if self.r_terminal > 0 else 0.0) \
                * (self.rows + self.cols)
        if not current < np.finfo(float).max / 16:
            raise ParameterError(f"v_read (--v-read) = {self.v_read:g} V would let the currents of this window "
                                 "and these wires exceed double precision's range; give a smaller --v-read.")


@dataclass(frozen=True)
class SweepParams:
    """The grid of a scaling study; `points` expands it (sizes vary fastest last,
    so that the small, cheap points of every series finish first)."""

    sizes: tuple = ((64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024), (2048, 2048), (4096, 4096))
    """Array sizes: (M, N) pairs, or N for N x N (``(16, 32)`` is two square
    sizes, as ``--sizes 16,32`` is; one 16 x 32 array is ``((16, 32),)``)."""
    r_wire: tuple = (0.1, 1.0, 10.0)
    """Wire segment resistances, ohms (one number: a tuple of it; so for
    ``inputs``, and for one window or device pair)."""
    g_ranges: tuple = ((100e-6, 500e-6), (1e-6, 10e-6))
    """Conductance windows (g_min, g_max), siemens: by default the measured
    TiO2 window (2-10 kOhm, xbarsim.presets) and a high-resistance one
    (0.1-1 MOhm) for contrast."""
    devices: tuple = (("linear", None),)
    """(model, v0) pairs: ("linear", None) or ("sinh", v0 in volts)."""
    inputs: tuple = (1,)
    """Numbers of input vectors (batch columns)."""
    v_read: float = 0.2
    """Inputs uniform in [0, v_read], volts."""
    r_terminal: float = 1.0
    """Terminal resistance of drivers and sense amplifiers, ohms."""
    seed: int = 0
    """Random seed."""
    method: str = "auto"
    """Solver method."""
    tol: Optional[float] = None
    """Solver tolerance (None: the solver's default)."""

    def __post_init__(self):
        # One value where a tuple is expected, and sizes given as N (for N x
        # N), are taken as such; anything else that cannot be a grid is a
        # ParameterError here (``sizes=(16, 32)`` and ``r_wire=1.0`` were a
        # bare TypeError from `points`).
        def listed(name, value, scalar):
            if scalar(value):
                return (value,)
            try:
                return tuple(value)
            except TypeError:
                raise ParameterError(f"SweepParams.{name} must be a tuple of values; got {value!r}.") from None

        count = lambda v: _number(v) and math.isfinite(v) and v >= 1 and v == int(v)  # a whole number >= 1
        sizes = []
        for size in listed("sizes", self.sizes, _number):
            pair = (size, size) if _number(size) else tuple(size) if isinstance(size, (tuple, list)) else None
            if pair is None or len(pair) != 2 or not all(count(n) for n in pair):
                raise ParameterError(f"SweepParams.sizes: {size!r} is not an array size; give N (for N x N) or "
                                     "an (M, N) pair of whole numbers >= 1, e.g. sizes=(64, (128, 256)).")
            sizes.append((int(pair[0]), int(pair[1])))
        object.__setattr__(self, "sizes", tuple(sizes))
        for name in ("v_read", "r_terminal"):  # None was a raw TypeError in `points`
            if not _number(getattr(self, name)):
                raise ParameterError(f"SweepParams.{name} must be a number; got {getattr(self, name)!r}.")
        if not _whole_seed(self.seed):
            # 1.5 was cut to 1 by `points`, and a resume took seed 1's rows for it
            from ._coerce import seed_refused

            raise ParameterError(seed_refused(self.seed, "SweepParams.seed", "a whole number in [0, 2**63)."))
        object.__setattr__(self, "r_wire", listed("r_wire", self.r_wire, _number))
        object.__setattr__(self, "inputs", listed("inputs", self.inputs, _number))
        pair_of_numbers = lambda v: isinstance(v, (tuple, list)) and len(v) == 2 and all(map(_number, v))
        object.__setattr__(self, "g_ranges", listed("g_ranges", self.g_ranges, pair_of_numbers))
        # v0 a number or None: ('sinh', 'abc') was a raw ValueError in `points`
        one_device = lambda v: (isinstance(v, (tuple, list)) and len(v) == 2 and isinstance(v[0], str)
                                and (v[1] is None or _number(v[1])))
        object.__setattr__(self, "devices", listed("devices", self.devices, one_device))
        for name, items, ok, want in (
                ("g_ranges", self.g_ranges, pair_of_numbers, "(g_min, g_max) pairs in siemens"),
                ("devices", self.devices, one_device, "(model, v0) pairs, e.g. ('linear', None) or ('sinh', 0.25)"),
                ("r_wire", self.r_wire, lambda v: _number(v) and math.isfinite(v) and v >= 0,
                 "finite numbers of ohms >= 0"),
                ("inputs", self.inputs, count, "whole numbers >= 1 of input vectors")):
            bad = [v for v in items if not ok(v)]
            if bad:
                raise ParameterError(f"SweepParams.{name} must hold {want}; got {bad[0]!r}.")
        for name in ("sizes", "r_wire", "inputs", "g_ranges", "devices"):
            if not getattr(self, name):
                # a grid of no point: run_sweep returned [] and removed the
                # folder's earlier figures
                raise ParameterError(f"SweepParams.{name} is empty; give at least one value (the grid is every "
                                     "combination of sizes, g_ranges, devices, inputs and r_wire).")
        from .solve import _check_method

        object.__setattr__(self, "method", _check_method(self.method))  # any case, as xs.solve and --method
        if self.tol is not None and not _number(self.tol):
            # "1e-9" went through float(); "abc" raised a raw ValueError in `points`
            raise ParameterError(f"SweepParams.tol must be None (the solver's default) or a number, e.g. 1e-9; "
                                 f"got {self.tol!r}.")

    def points(self):
        """Every point of the grid, smallest arrays first."""
        out = []
        for M, N in sorted(self.sizes, key=lambda s: (s[0] * s[1], s)):
            for g_min, g_max in self.g_ranges:
                for device, v0 in self.devices:
                    for batch in self.inputs:
                        for r in self.r_wire:
                            out.append(
                                ScalePoint(
                                    rows=int(M), cols=int(N), r_wire=float(r), g_min=float(g_min),
                                    g_max=float(g_max), device=device,
                                    v0=None if v0 is None else float(v0), inputs=int(batch),
                                    v_read=float(self.v_read), r_terminal=float(self.r_terminal),
                                    seed=int(self.seed), method=self.method,
                                    tol=None if self.tol is None else float(self.tol),
                                )
                            )
        return out


DEFAULT_SWEEP = SweepParams()
"""The sweep ``xbarsim scale --out DIR`` runs: N = 64..4096, wire
resistances 0.1, 1, 10 ohm, windows 100-500 uS (TiO2) and 1-10 uS, linear
devices, one input vector: 42 points. Sized to finish within 10 minutes on a
2-core machine: 73-86 s wall (warm Numba cache, in-process), of which the
six 4096^2 points take about 55 s of solves (10 ohm with 100-500 uS: 28-38
s, 71 iterations of the V-cycle fallback of `xbarsim._pcg.pcg_core`); 148 s
on a slower VM (123 s and 75 s); peak memory about
3 GB, at 4096^2."""


# ----------------------------------------------------------------------------
# One point
# ----------------------------------------------------------------------------


def _reset_peak_rss():
    """Reset this process's RSS high-water mark; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_bytes(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_bytes():
    """RSS high-water mark since the last reset, bytes."""
    return _status_bytes("VmHWM:")


def _rss_bytes():
    """Current RSS, bytes."""
    return _status_bytes("VmRSS:")


_WARMED = set()
"""(circuit kind, warm-up shape) pairs whose kernels (and lazy imports) this
process has already loaded."""


def _warm_up(point, method):
    """Solve a small circuit of the point's kind once per process and warm-up
    shape (`xbarsim.solve.warm_up_shape`), so that time_s measures the
    solve, not numba compilation or cache loading (ideal wires or
    terminals, batches, devices and methods take different code paths, and
    so does a multigrid solve with coarse levels from one small enough to
    be its own coarsest level: a later, larger point is warmed again at its
    own shape)."""
    from .solve import warm_up, warm_up_shape

    shape = warm_up_shape((point.rows, point.cols), method)
    kind = (method, point.inputs > 1, point.r_wire == 0, point.r_terminal == 0, point.v0 is None, shape)
    if kind in _WARMED:
        return
    warm_up((point.rows, point.cols), method, point.r_wire, point.r_wire, point.v0, batch=point.inputs > 1,
            r_terminal=point.r_terminal)
    _WARMED.add(kind)


def _expected_method(point):
    """The method ``xs.solve(method=point.method)`` will pick (its "auto"
    rule), for the memory pre-check and the warm-up; the row records the
    method the solver reports."""
    from .solve import choose_method

    return choose_method((point.rows, point.cols), point.method, ideal_wire=point.r_wire == 0,
                         nonlinear=point.v0 is not None, wire_ratio=point.r_wire * point.g_max)


def _base_row(point):
    return {
        "point_id": point.point_id,
        "status": "",
        "message": "",
        "rows": point.rows,
        "cols": point.cols,
        "r_wire_ohm": point.r_wire,
        "r_terminal_ohm": point.r_terminal,
        "g_min_s": point.g_min,
        "g_max_s": point.g_max,
        "device": point.device,
        "v0_v": point.v0,
        "inputs": point.inputs,
        "v_read_v": point.v_read,
        "seed": point.seed,
        "method_requested": point.method,
        "tol": point.tol,
        "code": code_id(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


@functools.lru_cache(maxsize=1)
def code_id():
    """The first 16 hex digits of `xbarsim._kernel_cache.code_digest`: which
    sources compute this process's rows (the ``code`` column). A resumed
    sweep took rows of other sources as its own: a solver fix or an upgrade
    left the old results beside the new ones, in one table and one figure."""
    from ._kernel_cache import code_digest

    return code_digest()[:16]


def _stamp(row):
    row["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


_TIME_REPEATS = 5
"""Most solves of one point timed (``time_s`` is their best)."""
_TIME_BUDGET_S = 0.25
"""Seconds of solves after which a point is timed no more."""


def _out_of_memory_row(point, exc):
    """A point whose allocation failed although the memory estimate passed:
    recorded as skipped, so that the sweep goes on (it ended the sweep, and
    every rerun at the same point). Any other
    RuntimeError is a bug and propagates."""
    if isinstance(exc, RuntimeError) and "malloc" not in str(exc).lower():
        raise exc
    return _failed_row(point, "skipped", MemoryLimitError(
        f"out of memory during the solve, after the estimate passed ({type(exc).__name__}: "
        f"{str(exc) or 'no message'}); an address-space limit (ulimit -v) or other processes may leave less "
        "than the estimate counts on. Free memory, raise the limit, or drop this size."))


def _failed_row(point, status, exc):
    row = _base_row(point)
    row["status"] = status
    row["message"] = one_line(f"{type(exc).__name__}: {exc}")
    return _stamp(row)


def _rel_norm(diff, ref):
    """``|diff| / |ref|`` (2-norms), NaN when ``ref`` is 0. Each is scaled
    near its own largest entry first, by a power of two (the same ratio,
    bit for bit, where nothing overflowed), so currents past 1e154 A
    (drives of 1e300 V) do not overflow the squares into "no current", an
    error 1e228 times the product does not read as inf, and a product
    below 1e-308 A is not NaN."""
    n_ref, e_ref = _scaled_norm(ref)
    if not n_ref > 0:
        return float("nan")
    n_diff, e_diff = _scaled_norm(diff)
    with np.errstate(over="ignore"):
        return float(np.ldexp(n_diff / n_ref, e_diff - e_ref))


def _scaled_norm(a):
    """``(n, e)`` with ``|a| = n 2**e``: the 2-norm of ``a`` scaled by the
    power of two of its largest entry (``n`` in [1, sqrt(size)]); ``(0, 0)``
    for a zero array, NaN or inf as they come."""
    a = np.asarray(a, dtype=float)
    top = float(np.max(np.abs(a), initial=0.0))
    if not (top > 0 and math.isfinite(top)):
        return top, 0
    e = int(np.frexp(top)[1])
    return float(np.linalg.norm(np.ldexp(a, -e))), e


def _metrics(g, x, sol, v0):
    """MVM error and IR drop of one solution (x and i_out as (L, B); v0 a
    scalar or None). Errors, drops and rises are magnitudes, for inputs of
    either sign; an error relative to an ideal product of 0 (no input, or no
    device) is NaN.

    The reference of ``rel_error`` is the intended product ``G.T @ x``, so
    for sinh devices it includes the device nonlinearity; ``rel_error_wires``
    compares with the same devices on ideal wires, isolating the wires'
    share. That reference can overflow where the solved circuit does not:
    on ideal wires a device sees its full input, on real ones less. It is
    then NaN, and ``message`` says why.
    """
    ideal = g.T @ x
    i_out = sol.i_out.reshape(ideal.shape)
    diff = i_out - ideal
    rel = _rel_norm(diff, ideal)
    notes = []  # why a metric is empty or inf, joined into `message`
    if v0 is None:
        rel_wires = rel
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            ideal_wires = g.T @ (v0 * np.sinh(x / v0))  # every device sees its full input
        if np.all(np.isfinite(ideal_wires)):
            rel_wires = _rel_norm(i_out - ideal_wires, ideal_wires)
        else:
            # 8 x 8 at v_read / v0 = 1e4: numpy's overflow warnings, and an
            # empty field that nothing explained
            rel_wires = float("nan")
            notes.append(
                f"rel_error_wires not computed: on ideal wires a device would see up to "
                f"{float(np.max(np.abs(x))) / v0:.3g} V0, where its current G V0 sinh(V / V0) overflows double "
                "precision (|V/V0| > 710); the circuit itself solved, its wires and terminals keep every device "
                "below that")
    flows = ideal != 0  # inputs of either sign (xbarsim solve --v-in -0.2): magnitudes throughout
    with np.errstate(over="ignore"):  # an error past 1e308 times its product is inf, said in `message`
        max_rel = float(np.max(np.abs(diff[flows]) / np.abs(ideal[flows]))) if np.any(flows) else float("nan")
    if math.isinf(rel) or math.isinf(max_rel):
        # sinh devices at 700 V0 on ideal wires: 1e296 A against a product that cancels to 1e-21 A read
        # "n/a (no current)", with NumPy's raw overflow warning (found by mutation testing)
        past = " and ".join(name for name, value in (("rel_error", rel), ("max_rel_error", max_rel))
                            if math.isinf(value))
        notes.append(
            f"{past} past double precision's range: the sensed currents differ from the ideal product G.T x by "
            "more than 1e308 times it (a product that inputs of both signs cancel, against devices far up their "
            "sinh curve)")
    v_wl = sol.v_wl if sol.v_wl.ndim == 3 else sol.v_wl[:, :, None]
    v_bl = sol.v_bl if sol.v_bl.ndim == 3 else sol.v_bl[:, :, None]
    drop = np.abs(x - v_wl[:, -1, :])  # (M, B): source voltage against the far node of each word line
    full_scale = np.max(np.abs(x), axis=0)  # (B,)
    rise = np.max(np.abs(v_bl), axis=(0, 1))  # (B,)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop_frac = np.where(full_scale > 0, np.max(drop, axis=0) / full_scale, np.nan)
        rise_frac = np.where(full_scale > 0, rise / full_scale, np.nan)
    return {
        "rel_error": rel,
        "max_rel_error": max_rel,
        "rel_error_wires": rel_wires,
        "ir_drop_wl_v": float(np.max(drop)),
        "ir_drop_wl_frac": float(np.nanmax(drop_frac)) if np.any(np.isfinite(drop_frac)) else float("nan"),
        "bl_rise_v": float(np.max(rise)),
        "bl_rise_frac": float(np.nanmax(rise_frac)) if np.any(np.isfinite(rise_frac)) else float("nan"),
        **({"message": "; ".join(notes)} if notes else {}),
    }


def run_point(point, numba_threads=None):
    """Solve one point of the study and return its results row (a dict).

    Errors the user can cause or that the machine imposes are recorded, not
    raised: `MemoryLimitError` gives status ``"skipped"``, and so does an
    allocation that fails after the estimate passed (a `MemoryError`, or
    SuperLU's ``RuntimeError`` "... MALLOC fails ...": under an address-space
    limit, ``ulimit -v``, that the estimate of resident memory misses);
    `ParameterError`
    (for example sinh devices before the nonlinear solver exists),
    `ConvergenceError` and other `XbarsimError` give ``"failed"``, with the
    error text in ``message``. Anything else is a bug and propagates.

    Parameters
    ----------
    point : ScalePoint
    numba_threads : int, optional
        Threads the numba kernels may use in this process (set for Dask
        workers so that workers x threads stays within the cores).

    Returns
    -------
    dict
        One row, keys `COLUMNS`.
    """
    from ._parallel import numba_threads as threads_capped

    # restored after: run in this process, the cap stayed on the caller's
    # thread for everything it ran next
    with threads_capped(numba_threads):
        return _run_point(point)


def _run_point(point):
    import xbarsim as xs
    from . import _memory

    need = float("nan")
    try:
        point.validate()
        method = _expected_method(point)
        M, N, B = point.rows, point.cols, point.inputs
        # Refuse before drawing the random array, which alone may not fit.
        ideal = _memory.ideal_wire_count(M, N, point.r_wire, point.r_wire)
        need = _memory.estimate(method, M, N, B, nonlinear=point.device == "sinh", ideal_wires=ideal)
        _memory.check(method, M, N, B, nonlinear=point.device == "sinh", ideal_wires=ideal, pcg="--method pcg")
        try:
            _warm_up(point, method)
        except XbarsimError:
            pass  # the real solve below raises the same error and records it
    except MemoryLimitError as exc:
        # with the estimate it refused: the column was empty on exactly these rows (found by review)
        row = _failed_row(point, "skipped", exc)
        row["mem_estimate_mib"] = need / _MIB
        return row
    except XbarsimError as exc:
        return _failed_row(point, "failed", exc)
    except (MemoryError, RuntimeError) as exc:
        return _out_of_memory_row(point, exc)

    row = _base_row(point)
    kwargs = {} if point.tol is None else {"tol": point.tol}
    try:
        rng = np.random.default_rng([point.seed, M, N, B])
        g = rng.random((M, N))
        g *= point.g_max - point.g_min
        g += point.g_min
        x = rng.random((M, B))
        x *= point.v_read
        xbar = xs.Crossbar(g, r_wl=point.r_wire, r_bl=point.r_wire, v0=point.v0)
        drive = x if B > 1 else x[:, 0]
        drives = xs.read_drives(drive, r_in=point.r_terminal, r_out=point.r_terminal)
        rss_before = _rss_bytes()
        rss_ok = _reset_peak_rss()
        t0 = time.perf_counter()
        sol = xs.solve(xbar, **drives, method=point.method, **kwargs)
        elapsed = spent = time.perf_counter() - t0
        rss_peak = _peak_rss_bytes() if rss_ok else float("nan")
        # a cheap solve timed once read as anything up to 30x its time when
        # another process held the cores (a 64^2 solve: 2.3-77 ms over 30
        # runs): the best of a few, within a fixed budget
        for _ in range(_TIME_REPEATS - 1):
            if spent >= _TIME_BUDGET_S:
                break
            t0 = time.perf_counter()
            xs.solve(xbar, **drives, method=point.method, **kwargs)
            dt = time.perf_counter() - t0
            elapsed, spent = min(elapsed, dt), spent + dt
    except MemoryLimitError as exc:
        return _failed_row(point, "skipped", exc)
    except XbarsimError as exc:
        return _failed_row(point, "failed", exc)
    except (MemoryError, RuntimeError) as exc:
        return _out_of_memory_row(point, exc)
    row.update(_metrics(g, x, sol, point.v0))
    row.update(
        status="ok",
        method=sol.method,
        time_s=elapsed,
        iterations=sol.iterations,
        residual=sol.residual,
        kcl_error=sol.kcl_error,
        peak_rss_mib=rss_peak / _MIB,
        solve_rss_mib=max(rss_peak - rss_before, 0.0) / _MIB,
        mem_estimate_mib=_memory.estimate(sol.method, M, N, B, nonlinear=not sol.network.linear,
                                          ideal_wires=ideal) / _MIB,
    )
    return _stamp(row)


# ----------------------------------------------------------------------------
# results.csv: append-only, one line per finished point
# ----------------------------------------------------------------------------


def _format_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (np.floating,)):
        return _format_value(float(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def _int(text):
    """An integer column's value: exact at any size (through float, a seed
    above 2**53 came back as another number); an integral float such as
    ``8.0`` (a table another program rewrote) is read too."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise ValueError(f"{text!r} is not an integer") from None
        return int(value)


def _parse_row(raw):
    """Typed row from CSV strings; None if the record is damaged."""
    if raw is not None:
        # a column absent from the header (an earlier version's file) reads
        # as empty; one a short line lacks stays None: a damaged row
        raw = {**{c: "" for c in _OPTIONAL_COLUMNS if c not in raw}, **raw}
    if raw is None or any(raw.get(c) is None for c in COLUMNS) or raw.get("status") not in STATUSES:
        return None
    row = {}
    try:
        for name in COLUMNS:
            text = raw[name]
            typ = _TYPES[name]
            if typ is str:
                row[name] = text
            elif text == "":
                row[name] = None if name in ("v0_v", "tol") else (float("nan") if typ is float else None)
            else:
                row[name] = typ(text) if typ is float else _int(text)
    except ValueError:
        return None
    if _row_point_id(row) != row["point_id"]:
        # parameter columns edited (an empty rows cell was taken as a done
        # point, and every later run failed in the plots)
        return None
    return row


def _row_point_id(row):
    """The point id a row's parameter columns make, None where they make no point."""
    try:
        return ScalePoint(rows=row["rows"], cols=row["cols"], r_wire=row["r_wire_ohm"], g_min=row["g_min_s"],
                          g_max=row["g_max_s"], device=row["device"], v0=row["v0_v"], inputs=row["inputs"],
                          v_read=row["v_read_v"], r_terminal=row["r_terminal_ohm"], seed=row["seed"],
                          method=row["method_requested"], tol=row["tol"]).point_id
    except (TypeError, ValueError):
        return None


def _csv_line(row):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format_value(row.get(c)) for c in COLUMNS])
    return buf.getvalue()


def _header_line():
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
    return buf.getvalue()


def _write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):  # the write or the move failed: no temporary file stays
            os.remove(tmp)


def _is_complete_row(line):
    """Whether `line` (the text of one results line, no newline) is a whole
    row: every column, each readable, and the finished time written in full
    (the last column, so a write cut short inside it shows there)."""
    try:
        fields = next(csv.reader(io.StringIO(line)), [])
    except csv.Error:
        return False
    if len(fields) != len(COLUMNS) or _parse_row(dict(zip(COLUMNS, fields))) is None:
        return False
    stamp = fields[COLUMNS.index("finished_utc")]
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return when.tzinfo is not None and when.isoformat(timespec="seconds") == stamp


def _read_text(path):
    """A results file's text, UTF-8, without the byte-order mark a
    spreadsheet's "CSV UTF-8" puts first (it read as another program's
    header, and the sweep refused to resume)."""
    return Path(path).read_text(encoding="utf-8-sig")


def load_results(path):
    """Rows of a results.csv, typed, one per point (damaged lines dropped).

    A line cut short by an interrupted write is dropped; `run_sweep`
    recomputes that point. A point recomputed by a later run (a skipped or,
    with ``retry``, a failed one) is given by its last row, at that row's
    place in the file: a run interrupted before it tidied the file left both
    rows, and the figures counted the point twice.
    """
    return _one_per_point(_file_rows(path))


def _one_per_point(rows):
    """The last of each point id's rows, each at its place in `rows`."""
    latest = {}
    for row in rows:
        latest.pop(row["point_id"], None)
        latest[row["point_id"]] = row
    return list(latest.values())


def _file_rows(path):
    """Every readable row of a results.csv, typed, in file order."""
    path = Path(path)
    if not path.exists():
        return []
    text = _read_text(path)
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row = _parse_row(raw)
        if row is not None:
            rows.append(row)
    return rows


def _backup_name(path):
    """``results.csv.bak``, or ``.bak2``, ``.bak3``... if taken: a backup never
    replaces an earlier one."""
    candidate = path.with_name(path.name + ".bak")
    k = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{k}")
        k += 1
    return candidate


def _results_state(path):
    """``"missing"``, ``"empty"``, ``"current"`` (header `COLUMNS`) or
    ``"older"`` (another xbarsim version's columns, `_KEY_COLUMNS`) for the
    results file at `path`; a file that is none of these is another
    program's, and is refused with `ParameterError` rather than overwritten."""
    path = Path(path)
    if not path.exists():
        return "missing"
    what = None
    if not path.is_file():
        what = "is not a file"
    else:
        try:
            text = _read_text(path)
        except UnicodeDecodeError:
            what = "is not a text file"
        except OSError as exc:
            raise ParameterError(f"cannot read {path} ({exc.strerror or exc}); check its permissions, or "
                                 "pick another --out folder.") from None
    if what is None:
        if not text.strip():
            return "empty"
        header = next(csv.reader(io.StringIO(text)), [])
        if header == list(COLUMNS):
            return "current"
        if header[:2] == list(_KEY_COLUMNS[:2]) and set(_KEY_COLUMNS) <= set(header):
            return "older"
        first = text.split("\n", 1)[0]
        what = f"has the header {first[:60] + ('...' if len(first) > 60 else '')!r}"
    raise ParameterError(
        f"{path} exists and {what}: it is not a results table of xbarsim scale, which would overwrite "
        "it. Pick another --out folder, or move that file away."
    )


def _check_appendable(path):
    """Refuse, before any point is computed, a results file at `path` that
    exists but cannot be appended to (read-only, immutable, owned by another
    user): the sweep computed a point and then stopped with a
    PermissionError traceback."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ParameterError(f"{path} is not writable ({exc.strerror or exc}); the sweep appends every point "
                             "to it. Check its permissions, or pick another --out folder.") from None


def _write_failed(path, exc):
    """The error of a results file that could not be written mid-sweep."""
    return XbarsimError(f"could not write {path} ({exc.strerror or exc}); the points finished before are saved "
                        "there. Free space or fix its permissions, then rerun the same command to resume.")


class _ResultsFile:
    """Append-only results.csv: every row is on disk before the next point."""

    def __init__(self, path):
        self.path = Path(path)
        self.backup = None
        state = _results_state(self.path)
        _check_appendable(self.path)
        if state == "missing":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.path, _header_line())
        elif state == "empty":
            _write_atomic(self.path, _header_line())
        elif state == "older":
            # Another xbarsim version's columns: keep the file as it was, then
            # carry its readable rows over (those with every current column
            # but `_OPTIONAL_COLUMNS`; the others are recomputed).
            self.backup = _backup_name(self.path)
            shutil.copy2(self.path, self.backup)
            with open(self.path, newline="") as fh:
                n_lines = sum(1 for _ in csv.reader(fh)) - 1
            rows = load_results(self.path)
            _write_atomic(self.path, _header_line() + "".join(_csv_line(r) for r in rows))
            print(f"xbarsim scale: note: {self.path} has another xbarsim version's columns; kept it as "
                  f"{self.backup}. {len(rows)} of its {n_lines} row(s) are readable "
                  "and were carried over; the other points are computed again.", file=sys.stderr)
        else:
            text = _read_text(self.path)
            complete = text[: text.rfind("\n") + 1]
            if self.path.read_bytes().startswith(codecs.BOM_UTF8):
                # saved by a spreadsheet as "CSV UTF-8": its byte-order mark
                # goes, so that appended rows and other tools read one table
                _write_atomic(self.path, text)
            if not complete:
                # The header alone, without its newline (a file saved by an
                # editor): dropping it as a cut-short line lost the header,
                # and the next run refused its own folder.
                _write_atomic(self.path, _header_line())
            elif complete != text:
                # No newline at the end: a row whose write was cut short is
                # dropped (recomputed); a complete one, missing its newline
                # only, is kept.
                last = text[len(complete):]
                _write_atomic(self.path, complete + (last + "\n" if _is_complete_row(last) else ""))

    def rows(self):
        return load_results(self.path)

    def append(self, row):
        try:
            with open(self.path, "a", newline="") as fh:
                fh.write(_csv_line(row))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise _write_failed(self.path, exc) from None

    def compact(self):
        """Keep the last row of every point id (after retries), atomically."""
        rows = _file_rows(self.path)  # read once
        latest = _one_per_point(rows)
        if len(latest) != len(rows):
            try:
                _write_atomic(self.path, _header_line() + "".join(_csv_line(r) for r in latest))
            except OSError as exc:
                raise _write_failed(self.path, exc) from None


# ----------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------


def _note(point):
    """The progress bar's label: every swept parameter that tells points apart
    ('32x32 r=0.1' was two points with two windows)."""
    dev = "" if point.v0 is None else f" sinh{point.v0:g}"
    batch = "" if point.inputs == 1 else f" B={point.inputs}"
    return (f"{point.rows}x{point.cols} r={point.r_wire:g} "
            f"{point.g_min * 1e6:g}:{point.g_max * 1e6:g}uS{dev}{batch}")


def _run_in_process(todo, record, numba_threads):
    """Points one at a time, in order, in this process, each as a Dask task
    on the synchronous scheduler: the numba kernels already use every core,
    so running two points at once would only contend, and computing them one
    by one records each row the moment it is done."""
    import dask

    for point in todo:
        (row,) = dask.compute(dask.delayed(run_point, pure=False)(point, numba_threads),
                              scheduler="synchronous")
        record(point, row)


def _run_distributed(todo, record, client, numba_threads):
    from distributed import as_completed

    from ._dask import WorkerWatch

    futures = {client.submit(run_point, p, numba_threads, pure=False): p for p in todo}
    watch = WorkerWatch.of_run(client, "xbarsim scale", "points (the finished ones are kept)")
    try:
        with watch:
            for fut in as_completed(list(futures), loop=client.loop):  # not the default client's
                point = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:
                    # A worker that died (killed for memory, lost connection)
                    # fails its point; a bug inside run_point propagates.
                    if type(exc).__name__ not in _RETRYABLE:
                        raise
                    if scheduler_lost(exc, client):
                        # the scheduler, not a worker, is gone: every pending
                        # point would be cancelled and written as failed (136
                        # of them, exit 0, and a rerun computed nothing)
                        raise XbarsimError(
                            "lost the connection to the Dask scheduler; the points finished before it are saved "
                            f"in {RESULTS_NAME}. Rerun the same command to resume once the scheduler runs "
                            "again.") from None
                    row = _failed_row(point, "failed", exc)
                record(point, row)
    except BaseException:
        try:
            client.cancel(list(futures))
        except Exception:  # noqa: BLE001 - a client that lost its scheduler has nothing to cancel
            pass
        raise


def _as_points(points_or_params):
    if isinstance(points_or_params, SweepParams):
        return points_or_params.points()
    if isinstance(points_or_params, ScalePoint):
        return [points_or_params]
    try:
        points = list(points_or_params)
    except TypeError:  # a number: a raw "object is not iterable"
        points = [points_or_params]
    for p in points:
        if not isinstance(p, ScalePoint):
            raise ParameterError(
                f"run_sweep takes a SweepParams or ScalePoint objects; got {type(p).__name__}."
            )
    if not points:  # it returned [] and removed the folder's earlier figures
        raise ParameterError("run_sweep was given no point; give a SweepParams or at least one ScalePoint.")
    return points


def _check_run_args(out_dir, progress, retry, plots, numba_threads, table, reuse_other_code=False):
    """`run_sweep`'s own arguments, refused by name before anything is
    written: retry="no" recomputed failed points, plots="no" wrote the
    figures, numba_threads=-1 or 2.5 were taken, out_dir="" wrote into the
    working folder and out_dir=5 raised a raw TypeError."""
    from .programming import _check_flag

    for name, value in (("progress", progress), ("retry", retry), ("plots", plots), ("table", table),
                        ("reuse_other_code", reuse_other_code)):
        _check_flag(value, name)
    if numba_threads is not None and (isinstance(numba_threads, (bool, np.bool_))
                                      or not isinstance(numba_threads, (int, np.integer)) or numba_threads < 1):
        raise ParameterError(f"numba_threads = {numba_threads!r}; None (numba's own count) or a whole number >= 1 "
                             "of threads per point.")
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise ParameterError(f"out_dir = {out_dir!r}; give the output folder's path, e.g. 'scale-out' (a "
                             "folder that does not exist yet is made).")


def _check_client(client):
    """None or an open `distributed.Client`; refused before anything is
    written (an address string, a cluster or a number raised a raw
    AttributeError at the first submit, after results.csv was made).
    """
    if client is None:
        return
    from distributed import Client

    if not isinstance(client, Client):
        hint = ("connect to it first: client=distributed.Client(ADDRESS)" if isinstance(client, str) else
                "wrap it: client=distributed.Client(cluster)" if hasattr(client, "scheduler_address") else
                "pass a distributed.Client, or None to run the points in this process")
        raise ParameterError(f"client = {client!r:.60} is not a distributed.Client; {hint}.")
    problem = client_problem(client)
    if problem is not None:
        raise ParameterError(f"client is a distributed.Client that cannot be used: {problem}, or None to run "
                             "the points in this process.")


def run_sweep(points_or_params, out_dir, client=None, progress=True, retry=False, plots=True,
              numba_threads=None, table=False, counts=None, reuse_other_code=False):
    """Run a scaling study, resuming from ``out_dir/results.csv``.

    Parameters
    ----------
    points_or_params : SweepParams or iterable of ScalePoint
        The points to compute.
    out_dir : str or Path
        Output folder: ``results.csv`` and the PNG figures.
    client : distributed.Client, optional
        Run the points on this cluster; default: one at a time in this
        process through Dask's synchronous scheduler.
    progress : bool
        Show a progress bar over points (stderr).
    retry : bool
        Recompute points recorded as failed too (ok points are never
        recomputed; skipped ones, refused by the memory guard for the memory
        free then, always are: refused again before compute, they cost
        nothing).
    plots : bool
        Write the figures (`plot_results`). False also removes the figures
        an earlier sweep left in ``out_dir``: they would not show this
        run's rows.
    numba_threads : int, optional
        Threads the numba kernels may use per task.
    table : bool
        Print `format_table` of the rows to stdout at the end.
    counts : dict, optional
        Filled with ``"computed"`` (points this run computed) and
        ``"reused"`` (taken from ``results.csv`` as an earlier run left
        them), also when the run is interrupted.
    reuse_other_code : bool
        Reuse rows that other xbarsim sources computed (their ``code``
        differs from `code_id`: another version, a checkout with changes,
        or a version before the column). Default False: such points are
        computed again, with a warning saying how many, as a change of
        the solver or the metrics may have changed their results.

    Returns
    -------
    list of dict
        One row per requested point (keys `COLUMNS`), in the order given,
        including points finished by an earlier run.

    Raises
    ------
    ParameterError
        ``out_dir/results.csv`` exists and is not a results table of this
        tool (it is never overwritten). One of another xbarsim version
        (`_KEY_COLUMNS`) is copied to ``results.csv.bak`` first, then its
        readable rows are carried over.
    """
    from ._progress import Progress

    _check_run_args(out_dir, progress, retry, plots, numba_threads, table, reuse_other_code)
    points = _as_points(points_or_params)
    unique = {}
    for p in points:
        p.validate()
        unique.setdefault(p.point_id, p)
    points = list(unique.values())
    _check_client(client)
    out_dir = Path(out_dir)
    # raw FileExistsError / NotADirectoryError (a file, a path under a file, a dangling link)
    refuse_non_folder(out_dir, "out_dir")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"out_dir {str(out_dir)!r} cannot be created ({exc.strerror or exc}); give a folder in "
                             "a writable place.") from None
    results = _ResultsFile(out_dir / RESULTS_NAME)
    _write_column_key(out_dir / COLUMNS_NAME)
    done = {r["point_id"]: r for r in results.rows()}
    keep = ("ok",) if retry else ("ok", "failed")
    here = code_id()
    todo, stale = [], 0  # stale: kept rows that other sources computed, computed again
    for p in points:
        row = done.get(p.point_id)
        if row is None or row["status"] not in keep:
            todo.append(p)
        elif not (reuse_other_code or row["code"] == here):
            todo.append(p)
            stale += 1
    if stale:
        from ._warn import warn

        warn(f"{results.path} holds {stale} of this sweep's points computed by other xbarsim sources (code "
             f"column other than {here}: another version, or a checkout since changed); they are computed "
             "again, as the solver or the metrics may have changed their results. To keep them instead, pass "
             "reuse_other_code=True (xbarsim scale --reuse-other-code).", UserWarning)
    if counts is not None:
        counts.update(computed=0, reused=len(points) - len(todo))

    with Progress(len(todo), label="scale", enabled=progress and bool(todo)) as bar:
        said_other = False

        def record(point, row):
            nonlocal said_other
            if row.get("code") != here and not said_other:
                # a --scheduler cluster's worker with another install: a
                # later run would compute its rows again, every time
                from ._warn import warn

                said_other = True
                theirs = f"code {row.get('code')}" if row.get("code") else "a version before the code column"
                warn(f"worker {row.get('worker')} runs other xbarsim sources ({theirs}) than this process "
                     f"({here}); a later run computes its rows again. Install the same xbarsim on every "
                     "worker (others may differ too).", UserWarning)
            results.append(row)
            if counts is not None:
                counts["computed"] += 1
            done[point.point_id] = _parse_row({c: _format_value(row.get(c)) for c in COLUMNS}) or row
            bar.update(1, note=_note(point))

        try:
            if todo:
                if client is None:
                    _run_in_process(todo, record, numba_threads)
                else:
                    _run_distributed(todo, record, client, numba_threads)
        finally:
            # every run, also an interrupted one: a point recomputed by a run
            # stopped before this left its old row for good
            results.compact()
    rows = [done[p.point_id] for p in points if p.point_id in done]
    others = len(done) - len(rows)
    if others:
        # a restart with other flags added its rows to the same table while
        # the figures showed this sweep alone, without a word
        from ._warn import warn

        warn(f"{results.path} also holds {others} row(s) of points outside this sweep (an earlier sweep with "
             "other settings); they stay in the file, but this run's table and figures leave them out. Give "
             "each sweep its own output folder, or plot every row with xbarsim.scale.plot_results("
             f"xbarsim.scale.load_results({str(results.path)!r}), {str(out_dir)!r}).", UserWarning)
    if plots:
        plot_results(rows, out_dir)
    else:
        _remove_figures(out_dir)
    if table:
        print(format_table(rows))
    return rows


# ----------------------------------------------------------------------------
# Figures and table
# ----------------------------------------------------------------------------

_SERIES_KEYS = ("g_min_s", "g_max_s", "device", "v0_v", "inputs", "v_read_v", "r_terminal_ohm",
                "method_requested", "seed", "tol", "aspect")
"""What tells lines apart besides the wire resistance: row columns, and
``aspect`` (`_aspect`)."""


def _aspect(r):
    """The shape M:N of a row's array in lowest terms: 8 x 16 and 16 x 32 are
    one series (1:2), 16 x 8 another (2:1)."""
    k = math.gcd(r["rows"], r["cols"])
    return r["rows"] // k, r["cols"] // k


def _series_value(r, name):
    return _aspect(r) if name == "aspect" else r[name]


def _series_label(key, varying):
    parts = []
    d = dict(zip(("r_wire_ohm",) + _SERIES_KEYS, key))
    parts.append(f"r = {d['r_wire_ohm']:g} Ω")
    if "g_min_s" in varying or "g_max_s" in varying:
        parts.append(f"G ∈ [{d['g_min_s'] * 1e6:g}, {d['g_max_s'] * 1e6:g}] µS")
    if "device" in varying or "v0_v" in varying:
        parts.append("linear" if d["device"] == "linear" else f"sinh V0 = {d['v0_v']:g} V")
    if "inputs" in varying:
        parts.append(f"B = {d['inputs']}")
    for name, fmt in (("v_read_v", "V_read = {:g} V"), ("r_terminal_ohm", "R_term = {:g} Ω"),
                      ("method_requested", "{}"), ("seed", "seed {}")):
        if name in varying:
            parts.append(fmt.format(d[name]))
    if "tol" in varying:  # "tol None" for the default
        from .solve import DEFAULT_TOL

        parts.append(f"tol {DEFAULT_TOL:g} (default)" if d["tol"] is None else f"tol {d['tol']:g}")
    if "aspect" in varying:
        parts.append("M:N = {}:{}".format(*d["aspect"]))
    return ", ".join(parts)


def _by_value(value):
    """Sort key of series settings: numbers by value, None first, text after
    numbers, tuples element by element."""
    if value is None:
        return (0,)
    if isinstance(value, tuple):
        return (1, tuple(_by_value(v) for v in value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (1, float(value))
    return (2, str(value))


def _series(rows):
    """Group ok rows into lines: one per wire resistance and other setting."""
    ok = [r for r in rows if r["status"] == "ok"]
    groups = {}
    for r in ok:
        key = (r["r_wire_ohm"],) + tuple(_series_value(r, k) for k in _SERIES_KEYS)
        groups.setdefault(key, []).append(r)
    varying = {k for k in _SERIES_KEYS if len({_series_value(r, k) for r in ok}) > 1}
    r_values = sorted({k[0] for k in groups})
    # by value: as text, windows came [100, 500], [1000, 5000], [10, 50] µS
    others = sorted({k[1:] for k in groups}, key=_by_value)
    out = []
    for key in sorted(groups, key=lambda k: (others.index(k[1:]), k[0])):
        pts = sorted(groups[key], key=lambda r: r["rows"] * r["cols"])
        out.append((key, _series_label(key, varying), r_values.index(key[0]), others.index(key[1:]), pts))
    return out, len(r_values)


def _size(r, square):
    """A point's place on the size axis: N of an N x N array when every
    array of the figure is square, else its cells M·N, each aspect ratio
    its own line (`_aspect`; against √(M·N), 8 x 16 and 16 x 8 fell on one
    x of one line)."""
    return math.sqrt(r["rows"] * r["cols"]) if square else r["rows"] * r["cols"]


def _setup_size_axis(ax, rows, square):
    sizes = sorted({_size(r, square) for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:g}" if square else f"{s:d}" for s in sizes])
    # the x axis only: minorticks_off() took the labels of a log y axis that
    # spans less than a decade, where the minor ticks carry them
    from matplotlib.ticker import NullLocator

    ax.xaxis.set_minor_locator(NullLocator())
    if square:
        label = "array size N (N × N cells)"
    else:
        aspects = {_aspect(r) for r in rows}
        shape = "M:N = {}:{} throughout".format(*aspects.pop()) if len(aspects) == 1 else "M:N in the legend"
        label = f"array size M·N (cells; {shape})"
    ax.set_xlabel(label, fontsize=12)
    ax.grid(True, which="major", alpha=0.3)


def _empty_panel_text(column, ok, zeros):
    """What an empty panel says: why the column has nothing to draw."""
    ideal = all(r["r_wire_ohm"] == 0 and r["r_terminal_ohm"] == 0 for r in ok)
    if column in ("ir_drop_wl_frac", "bl_rise_frac") and ideal:
        return "no IR drop:\nall wire and terminal resistances are 0 Ω"
    if zeros:
        return f"all {zeros} value(s) are ≤ 0:\nnothing to show on a log axis"
    return "no value to show"


FIGURES = ("error_vs_size.png", "time_vs_size.png", "ir_drop_vs_size.png")
"""The figures `plot_results` writes."""


def _iterations_title(ok):
    """The iterations panel's title: what is counted (Newton steps only when
    a point has sinh devices) and which method solved which sizes (the
    counts of a direct solve and of CG sat on one line, unexplained)."""
    sizes = {}
    for r in ok:
        sizes.setdefault(r.get("method") or "-", set()).add(r["rows"] * r["cols"])
    methods = ", ".join(
        f"{m} {_cells_text(min(c))}" + (f"-{_cells_text(max(c))}" if len(c) > 1 else "")
        for m, c in sorted(sizes.items(), key=lambda item: min(item[1])))
    what = ("Newton steps (sinh) or iterations, summed over inputs" if any(r["device"] == "sinh" for r in ok)
            else "Solver iterations")
    # what a direct linear count means, here and not in the axis label,
    # which it made too long for the axis (found by review)
    direct = any(r.get("method") == "direct" and r["device"] == "linear" for r in ok)
    note = "\ndirect, linear: 1 + refinements; all nodes fixed: 0" if direct else ""
    return f"{what}\n({methods}){note}"


def _iterations_label(ok):
    """The iterations panel's axis label: Newton steps summed over the
    inputs where a point has sinh devices, else iterations (the title says
    what a direct solve counts, `_iterations_title`)."""
    if any(r["device"] == "sinh" for r in ok):
        return "Newton steps, summed over inputs"
    return "iterations"


def _cells_text(cells):
    side = math.isqrt(cells)
    return f"{side}²" if side * side == cells else f"{cells} cells"


def _remove_figures(out_dir, say=True):
    """Remove the figures an earlier sweep left in `out_dir` (files and
    links: a folder of a figure's name stays), saying which unless not
    `say` (``--no-plots`` left them beside a newer results.csv, showing
    other rows without a word)."""
    gone = []
    for name in FIGURES:
        path = Path(out_dir) / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            gone.append(name)
    if gone and say:
        print(f"xbarsim scale: note: removed the earlier figures {', '.join(gone)} from {out_dir}: they do not "
              "show this run's rows (no figures were asked for). Plot every row with xbarsim.scale.plot_results("
              f"xbarsim.scale.load_results({str(Path(out_dir) / RESULTS_NAME)!r}), {str(out_dir)!r}).",
              file=sys.stderr)
    return gone


def plot_results(rows, out_dir):
    """Write the study's figures into `out_dir`; returns their paths.

    ``error_vs_size.png``: relative MVM error and worst per-output error vs
    N; ``time_vs_size.png``: solve time and iterations vs N;
    ``ir_drop_vs_size.png``: word-line drop and bit-line rise (fraction of
    the input) vs N. One line per wire resistance (colour) and per other
    setting that varies (marker and line style; past the 15 settings the
    markers tell apart, the colour's shade too), the arrays' aspect ratio M:N included;
    arrays that are not all square are drawn against their cells M·N. Only
    ``ok`` points are drawn; a panel with nothing to draw (no IR drop with
    ideal wires and terminals: zero on a log axis) says so. Returns ``[]``
    when no point is ``ok``, and then removes an earlier sweep's figures
    from `out_dir`.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series, n_r = _series(rows)
    if not series:
        _remove_figures(out_dir, say=False)  # an earlier sweep's figures in this folder are not this one's
        return []
    ok = [r for s in series for r in s[4]]
    n_missing = sum(r["status"] != "ok" for r in rows)
    square = all(r["rows"] == r["cols"] for r in ok)
    cmap = plt.get_cmap("viridis")
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "<", ">", "p", "h", "*", "P", "X", "d", "8", "H"]
    # the marker tells apart len(markers) settings besides r (the line style
    # too, where a series has two points or more: a one-point series shows
    # its marker alone, and with 5 markers the sixth setting was the first's
    # circle); past that, each further block of them takes
    # its own shades of the wire resistances' colours, so no two lines look
    # alike (the legend was ambiguous)
    combos = len(markers)
    blocks = -(-(max(s[3] for s in series) + 1) // combos)
    n_colours = n_r * blocks
    windows = sorted({(r["g_min_s"], r["g_max_s"]) for r in ok})
    g_text = (f"G uniform in [{windows[0][0] * 1e6:g}, {windows[0][1] * 1e6:g}] µS" if len(windows) == 1
              else "G uniform in each window")
    devices = sorted({(r["device"], r["v0_v"]) for r in ok}, key=str)
    if len(devices) == 1:  # one device model for every point: say which (the legend names it only when it varies)
        kind, v0 = devices[0]
        dev_text = f"sinh devices, V0 = {v0:g} V" if kind == "sinh" else "linear devices"
    else:
        dev_text = "devices: see legend"
    # read voltage and terminal resistance: named here when every point shares
    # them, in the legend (`_series_label`) when they vary
    v_reads = sorted({r["v_read_v"] for r in ok})
    r_terms = sorted({r["r_terminal_ohm"] for r in ok})
    parts = [dev_text, g_text, f"inputs U[0, {v_reads[0]:g} V]" if len(v_reads) == 1 else "inputs U[0, V_read]"]
    if len(r_terms) == 1:
        parts.append(f"R_term = {r_terms[0]:g} Ω")
    parts.append("r: per wire segment")  # the legend's r: each segment's, not a line's (found by review)
    subtitle = "; ".join(parts)
    if len(subtitle) > 110:
        subtitle = f"{dev_text}; random G and inputs; r: per wire segment; see legend"

    # The legend below the panels, so that it never hides the data (inside
    # the first panel, "best" place, it covered points of a few series), in
    # as many columns (up to 3) as the longest label lets the two panels'
    # width hold: three columns of long labels ran off both sides.
    # About 0.075 in a character at 10 pt, and 0.9 in of marker
    # and spacing an entry.
    longest = max((len(label) for _, label, *_ in series), default=0)
    ncol = max(1, min(3, len(series), int(0.95 * 2 * 6.4 // (0.9 + 0.075 * longest))))
    legend_rows = -(-len(series) // ncol)
    legend_h = 0.27 * legend_rows
    note_h = 0.3 if n_missing else 0.0

    def draw(panels, name, suptitle):
        height = 5.2 + legend_h + note_h
        fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), height), squeeze=False)
        for ax, (column, ylabel, title, logy) in zip(axes[0], panels):
            zeros = 0
            drawn_y = []  # every value drawn on this panel
            for key, label, ci, si, pts in series:
                xs_ = [_size(r, square) for r in pts]
                ys = [r[column] for r in pts]
                finite = [(a, b) for a, b in zip(xs_, ys) if b is not None and math.isfinite(b)]
                keep = [(a, b) for a, b in finite if b > 0 or not logy]
                zeros += len(finite) - len(keep)
                if not keep:
                    continue
                drawn_y += [b for _, b in keep]
                color = cmap(0.85 * (ci * blocks + si // combos) / max(n_colours - 1, 1))
                ax.plot(*zip(*keep), linestyle=styles[si % len(styles)],
                        # a marker of its own per series: a one-point series draws no
                        # line, and two windows at one size were the same circle
                        marker=markers[si % combos],
                        color=color, label=label, linewidth=2, markersize=6)
            if logy and drawn_y:
                ax.set_yscale("log")
                # whole decades: points below the lowest labelled decade
                # read as off the scale
                lo = math.floor(math.log10(min(drawn_y)))
                hi = max(math.ceil(math.log10(max(drawn_y))), lo + 1)
                ax.set_ylim(10.0 ** lo, 10.0 ** hi)
            if column == "iterations":  # a count: no 1.5 iterations on the axis
                from matplotlib.ticker import MaxNLocator

                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                lo, hi = ax.get_ylim()
                if drawn_y and hi - lo < 2:
                    # every point at one count: the locator fell back to
                    # 0.945 ... 1.050
                    mid = round((lo + hi) / 2)
                    ax.set_ylim(max(mid - 1, 0) - 0.5, mid + 1.5)
            _setup_size_axis(ax, ok, square)
            ax.set_ylabel(ylabel, fontsize=12)
            if drawn_y and zeros:
                title += f"\n({zeros} point(s) ≤ 0 not shown on the log axis)"
            ax.set_title(title, fontsize=13)
            ax.tick_params(labelsize=11)
            if not drawn_y:
                # Nothing to draw (ideal wires and terminals give no IR drop,
                # which a log axis cannot show): say so instead of an empty frame.
                ax.set_yticks([])
                sizes = [_size(r, square) for r in ok]
                ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
                ax.text(0.5, 0.5, _empty_panel_text(column, ok, zeros), transform=ax.transAxes,
                        ha="center", va="center", fontsize=12, color="0.3", wrap=True)
        handles, labels = [], []
        for ax in axes[0]:  # the first panel may be empty; take each series once
            for handle, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=10, frameon=False,
                       bbox_to_anchor=(0.5, note_h / height))
        if n_missing:
            fig.text(0.01, 0.01, f"{n_missing} point(s) skipped or failed, not drawn (see results.csv)",
                     fontsize=10, color="0.3")
        fig.suptitle(f"{suptitle}\n{subtitle}", fontsize=14)
        fig.tight_layout(rect=(0, (legend_h + note_h) / height, 1, 1))
        try:
            fig.savefig(files.path(name), dpi=110)
        finally:
            plt.close(fig)
        return out_dir / name

    # The three figures are put in place together (`RunFiles`): Ctrl-C while
    # they were drawn left a cut-short PNG (124 bytes) beside the earlier
    # sweep's other figures; now the earlier set stays.
    from .cli import RunFiles

    with RunFiles(out_dir) as files:
        paths = [
            draw([("rel_error", r"$\|I_{out} - G^T x\|\,/\,\|G^T x\|$", "Relative MVM error", True),
                  ("max_rel_error", r"$\max_j\ |I_{out,j} - (G^T x)_j|\,/\,(G^T x)_j$", "Worst output error", True)]
                 # a sinh device's error against G^T x is mostly its own curve: the
                 # wires' share, against the same devices on ideal wires, beside it
                 + [("rel_error_wires", r"$\|I_{out} - I_0\|\,/\,\|I_0\|$, $I_0$: the same devices on ideal wires",
                     "The wires' share of the error", True)] * any(r["device"] == "sinh" for r in ok),
                 FIGURES[0], "Passive crossbar MVM error vs array size"),
            draw([("time_s", "solve time (s, wall)", "Solve time", True),
                  # short enough for the axis: the 67-character label ran into
                  # the figure's title and legend (found by review); what a
                  # count means is the panel title's (`_iterations_title`)
                  ("iterations", _iterations_label(ok), _iterations_title(ok), False)],
                 FIGURES[1], "Solve cost vs array size"),
            draw([("ir_drop_wl_frac", r"$\max_i\ (V_{drive,i} - V_{WL}(i, N-1))\,/\,\max_i x_i$",
                   "Word-line IR drop (far end)", True),
                  ("bl_rise_frac", r"$\max\ V_{BL}\,/\,\max_i x_i$", "Bit-line rise above 0 V", True)],
                 FIGURES[2], "IR drop vs array size"),
        ]
    return paths


def _fmt(value, spec):
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-".rjust(width)
    return format(value, spec)


def format_table(rows, width=100):
    """A short text table of the rows (one line per point), each column as
    wide as its widest entry, so that the table fits a terminal; the key
    below it is wrapped at ``width`` characters."""
    head = ("size", "r_ohm", "window_uS", "device", "B", "rel_err", "max_err", "wl_drop", "bl_rise",
            "time_s", "iter", "rss_MiB", "method")
    cells = []
    for r in rows:
        cells.append((
            f"{r['rows']}x{r['cols']}", f"{r['r_wire_ohm']:g}",
            f"{r['g_min_s'] * 1e6:g}:{r['g_max_s'] * 1e6:g}",
            r["device"] if r["v0_v"] is None else f"sinh{r['v0_v']:g}", str(r["inputs"]),
            _fmt(r.get("rel_error"), ".2e"), _fmt(r.get("max_rel_error"), ".2e"),
            _fmt(r.get("ir_drop_wl_frac"), ".2e"), _fmt(r.get("bl_rise_frac"), ".2e"),
            _fmt(r.get("time_s"), ".3f"), _fmt(r.get("iterations"), "d"),
            _fmt(r.get("peak_rss_mib"), ".0f"), r.get("method") or "-",
        ))
    widths = [max(len(text) for text in column) for column in zip(head, *cells)]

    def line(texts, last):
        return " ".join(text.rjust(w) for text, w in zip(texts, widths)) + " " + last

    lines = [line(head, "status")]
    lines.append("-" * len(lines[0]))
    for r, texts in zip(rows, cells):
        lines.append(line(texts, r["status"] if r["status"] == "ok" else f"{r['status']}: {r['message'][:60]}"))
    lines += textwrap.wrap(
        "rel_err, max_err: MVM error against G.T x (relative, all outputs / worst output); wl_drop, "
        "bl_rise: worst word-line IR drop and bit-line rise, as fractions of the largest input; "
        "time_s: the solve, seconds (best of up to 5 within 0.25 s); iter: CG iterations (direct: 1 + "
        "refinements), Newton steps summed over the inputs for sinh devices; rss_MiB: peak resident memory of "
        "the process, the interpreter's ~190 MiB included; method: the solver auto chose. Every column of "
        "results.csv, with its unit: results_columns.txt", width)
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def _split(text):
    items = [t.strip() for t in text.split(",")]
    if not items or any(t == "" for t in items):
        raise argparse.ArgumentTypeError(f"empty item in {text!r}; give a comma-separated list")
    return items


def _sizes_arg(text):
    out = []
    for tok in _split(text):
        parts = tok.lower().split("x")
        try:
            dims = [int(p) for p in parts]
        except ValueError:
            dims = []
        if len(dims) not in (1, 2) or min(dims) < 1:
            raise argparse.ArgumentTypeError(
                f"bad size {tok!r}; expected N (an N x N array) or MxN with positive integers, "
                "e.g. 64,128,256x512"
            )
        out.append((dims[0], dims[-1]))
    return tuple(out)


def _float(tok, what, positive=False):
    try:
        value = float(tok)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {tok!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"{what} {tok!r} must be finite and {'> 0' if positive else '>= 0'}")
    return value + 0.0  # -0 as 0


def _tol_arg(tok):
    from .solve import MIN_TOL

    value = _float(tok, "tol", positive=True)
    if not MIN_TOL <= value < 1:
        raise argparse.ArgumentTypeError(f"tol {tok!r} must be in [{MIN_TOL:g}, 1), e.g. 1e-9 (below {MIN_TOL:g} "
                                         "double precision cannot resolve the residual)")
    return value


def _floats_arg(what, positive=False):
    def parse(text):
        return tuple(_float(tok, what, positive) for tok in _split(text))

    return parse


def _positive_int(text, what):
    """``text`` as a positive integer, or an argparse error (exit 2) naming
    ``what`` it counts."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"number of {what} {text!r} must be a positive integer")
    return value


def _ints_arg(text):
    return tuple(_positive_int(tok, "inputs") for tok in _split(text))


def _workers_arg(text):
    """``--workers``: a positive integer, refused by the parser as every
    malformed value is (``--workers 0`` exited 1, not 2)."""
    return _positive_int(text, "workers")


def _windows_arg(text):
    out = []
    for tok in _split(text):
        parts = tok.split(":")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(
                f"bad window {tok!r}; expected GMIN:GMAX in siemens, e.g. 100e-6:500e-6"
            )
        lo = _float(parts[0], "g_min")
        hi = _float(parts[1], "g_max", positive=True)
        if lo > hi:
            raise argparse.ArgumentTypeError(f"window {tok!r} has g_min > g_max")
        if hi > G_SUSPECT:
            # the results table shows windows in uS, and 100:500 copied back
            # from it ran a whole sweep of 100-500 S devices
            raise argparse.ArgumentTypeError(
                f"window {tok!r} reaches {hi:g} S, a device of {1.0 / hi:.3g} ohm: --g-range is in siemens "
                f"(100e-6:500e-6 for 100-500 uS, 2-10 kohm devices)")
        out.append((lo, hi))
    return tuple(out)


def _devices_arg(text):
    items = tuple(d.lower() for d in _split(text))  # in any case, as the other choices
    for d in items:
        if d not in ("linear", "sinh"):
            raise argparse.ArgumentTypeError(f"unknown device {d!r}; choose linear, sinh or both (linear,sinh)")
    return items


def _fmt_sizes(sizes):
    return ",".join(str(m) if m == n else f"{m}x{n}" for m, n in sizes)


_EPILOG = f"""\
examples:
  xbarsim scale --out scale-out                      # default sweep (below)
  xbarsim scale --out s2 --sizes 64,256,1024 --r-wire 0.5,2 --g-range 1e-6:10e-6,10e-6:100e-6
  xbarsim scale --out s3 --device linear,sinh --v0 0.15 --batch 1,64 --workers 2
  xbarsim scale --out s4 --scheduler tcp://127.0.0.1:8786

default sweep (42 points, 70-150 s on 2 cores with a warm Numba cache, 3 GB peak):
sizes {_fmt_sizes(DEFAULT_SWEEP.sizes)}, r-wire {','.join(f'{r:g}' for r in DEFAULT_SWEEP.r_wire)} ohm,
g-range 100e-6:500e-6,1e-6:10e-6 S, linear devices, 1 input, v-read 0.2 V, r-terminal 1 ohm.

Rerunning with the same --out skips the points already in results.csv, except
those the memory guard refused (skipped), which it tries again.

exit status:
  0    the sweep finished and at least one of its points succeeded (the table and
       results.csv give the reason for any skipped or failed one)
  {EXIT_NONE_OK}    the sweep finished but none of its points succeeded (all refused by the
       memory guard or failed: the reasons are printed and in results.csv)
  1    an error (message on stderr), e.g. a bad --out or --scheduler, or values that
       cannot work together
  2    a malformed command line, e.g. --sizes 0 (usage on stderr)
  130  interrupted (Ctrl-C): finished points are saved; rerun the same command to resume
  143  terminated (SIGTERM, e.g. a batch system's time limit): the same as 130
"""


def register(subparsers):
    """Add the ``scale`` subcommand to the xbarsim command line."""
    p = subparsers.add_parser(
        "scale",
        help="scaling study: MVM error, IR drop and solve cost vs array size",
        # wrapped here: the raw formatter (for the epilog's layout) printed it as
        # one line of 300 characters
        description=(
            "Sweep array size, wire resistance, device window, device model and number of\n"
            "inputs; solve the read configuration on random conductances and inputs; record\n"
            "the MVM error against G.T @ x, the worst IR drop, solve time, iterations and\n"
            "memory in OUT/results.csv, and plot them."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULT_SWEEP
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (results.csv, *.png); reused to resume")
    p.add_argument("--sizes", type=_sizes_arg, default=d.sizes, metavar="N[,MxN...]",
                   help=f"array sizes (default {_fmt_sizes(d.sizes)})")
    p.add_argument("--r-wire", type=_floats_arg("wire resistance"), default=d.r_wire, metavar="OHM[,...]",
                   help="wire segment resistance of word and bit lines, ohms (default 0.1,1,10)")
    p.add_argument("--r-terminal", type=lambda t: _float(t, "terminal resistance"), default=d.r_terminal,
                   metavar="OHM", help="driver and sense-amplifier resistance, ohms (default 1)")
    p.add_argument("--g-range", type=_windows_arg, default=d.g_ranges, metavar="GMIN:GMAX[,...]",
                   help="device conductance windows, siemens (default 100e-6:500e-6,1e-6:10e-6)")
    p.add_argument("--device", type=_devices_arg, default=("linear",), metavar="linear|sinh[,...]",
                   help="device model(s) (default linear)")
    p.add_argument("--v0", type=_floats_arg("v0", positive=True), default=None, metavar="VOLT[,...]",
                   help="sinh voltage scale(s), volts (required with --device sinh)")
    p.add_argument("--batch", type=_ints_arg, default=d.inputs, dest="inputs", metavar="B[,...]",
                   help="input vectors solved at once (default 1)")
    # the name before --batch, kept working; hidden because `xbarsim solve --inputs` names a file of
    # input vectors, not their number
    p.add_argument("--inputs", type=_ints_arg, dest="inputs", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--v-read", type=lambda t: _float(t, "v-read", positive=True), default=d.v_read,
                   metavar="VOLT", help="inputs uniform in [0, V_READ], volts (default 0.2)")
    p.add_argument("--seed", type=seed_arg, default=d.seed, metavar="SEED", help="random seed (default 0)")
    p.add_argument("--method", choices=METHODS, default=d.method,
                   help="solver method of xbarsim.solve (default auto)")
    p.add_argument("--tol", type=_tol_arg, default=None, metavar="REL",
                   help="solver relative residual (default: the solver's)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_workers_arg, default=None, metavar="N",
                       help="start a local Dask cluster of N worker processes on 127.0.0.1")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--retry", action="store_true",
                   help="recompute points recorded as failed too (skipped ones are tried again anyway)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true",
                   help="write results.csv only (an earlier sweep's figures in --out are removed)")
    p.add_argument("--reuse-other-code", action="store_true",
                   help="reuse rows of results.csv that other xbarsim sources computed (by default they are "
                        "computed again: a solver change may have changed them)")
    p.set_defaults(func=_main)
    return p


def _params_from_args(args):
    devices = []
    v0s = args.v0
    if "sinh" in args.device and not v0s:
        raise ParameterError("--device sinh needs --v0 VOLTS (the sinh voltage scale), e.g. --v0 0.15")
    if v0s and "sinh" not in args.device:
        raise ParameterError("--v0 applies to sinh devices only; add --device sinh (or linear,sinh)")
    if args.method == "mg" and any(r == 0 for r in args.r_wire):
        raise ParameterError("--method mg needs every wire segment to have r > 0 (ideal wire merges nodes, which its "
                             "2 x 2 coarsening does not handle); drop 0 from --r-wire, or use --method auto (which "
                             "takes pcg there) or pcg.")
    for dev in dict.fromkeys(args.device):
        if dev == "linear":
            devices.append(("linear", None))
        else:
            devices.extend(("sinh", v) for v in v0s)
    return SweepParams(
        sizes=args.sizes, r_wire=args.r_wire, g_ranges=args.g_range, devices=tuple(devices),
        inputs=args.inputs, v_read=args.v_read, r_terminal=args.r_terminal, seed=args.seed,
        method=args.method, tol=args.tol,
    )


def _connect_scheduler(address):
    """A `distributed.Client` of the scheduler at `address` with at least one
    worker (`xbarsim._dask.connect_scheduler`, with this module's limits)."""
    return connect_scheduler(address, "xbarsim scale", SCHEDULER_TIMEOUT_S, WORKER_WAIT_S)


def _report_interrupt(params, out, how="interrupted"):
    """The one line of an interrupted sweep (stderr); ``how``: "interrupted"
    (Ctrl-C) or "terminated (SIGTERM)"."""
    ids = {p.point_id for p in params.points()}
    path = Path(out) / RESULTS_NAME
    if not path.exists():  # stopped before the sweep began (waiting for a worker): named a file never made
        print(f"xbarsim scale: {how} before the first point; nothing was written. Rerun the same command to "
              "start.", file=sys.stderr)
        return
    try:
        saved = len(ids & {r["point_id"] for r in load_results(path)})
    except (OSError, UnicodeDecodeError):
        saved = 0
    print(f"xbarsim scale: {how}: {saved} of {len(ids)} points saved in {path}; rerun the same "
          "command to resume.", file=sys.stderr)


def _report_problems(rows, plots):
    """Say why points were skipped or failed and what can help (stderr);
    the exit status: `EXIT_NONE_OK` when no point succeeded, else 0."""
    noted = [r for r in rows if r["status"] == "ok" and r["message"]]
    if noted:
        print(f"{len(noted)} point(s) solved with a metric left empty: {noted[0]['message']} (the message column "
              "of results.csv says so for each).", file=sys.stderr)
    bad = [r for r in rows if r["status"] != "ok"]
    if not bad:
        return 0
    memory = [r for r in bad if r["message"].startswith("MemoryLimitError")]
    lost = [r for r in bad if r["message"].split(":", 1)[0] in _RETRYABLE]
    other = [r for r in bad if r not in memory and r not in lost]
    none_ok = len(bad) == len(rows)
    err = sys.stderr
    if none_ok:
        print(f"xbarsim scale: error: no point of this sweep succeeded ({len(bad)} of {len(rows)} skipped "
              "or failed):", file=err)
        reasons = {}
        for r in bad:
            reasons.setdefault(r["message"], []).append(r)
        for message, group in reasons.items():
            text = message if len(message) <= 160 else message[:157] + "..."
            print(f"  {len(group)} x {group[0]['status']}: {text}", file=err)
        if plots:
            print("xbarsim scale: no figures written: there is no successful point to draw.", file=err)
    if memory:
        print(f"{len(memory)} point(s) were refused by the memory guard (more memory than is available "
              "here): choose smaller --sizes or a smaller --batch, or rerun the same command once more memory "
              "is free, or with --scheduler on a machine with more (a rerun tries refused points again).",
              file=err)
    if other:
        hint = ""
        def overflowed(r):  # (rows of earlier versions name an overflow a ConvergenceError)
            return (r["message"].startswith(("DriveOverflowError", "ConvergenceError"))
                    and "overflow double precision" in r["message"])

        if any(overflowed(r) for r in other):
            # a looser tol or another method does not help there
            hint += " Device currents that overflow need a lower --v-read or a larger --v0."
        stalled = [r for r in other if r["message"].startswith("ConvergenceError") and not overflowed(r)]
        if any("raise v0" in r["message"] for r in stalled):
            # the solver's own advice, cut from the table: "a looser --tol or --method
            # direct" was given for a point that direct had run
            hint += (" A sinh point whose Newton steps stalled needs a lower --v-read or a larger --v0 (more "
                     "solver effort seldom helps there).")
        if any("raise v0" not in r["message"] for r in stalled):
            hint += " A solver that did not converge may need a looser --tol or --method direct."
        print(f"{len(other)} point(s) failed: the reason is in the table above and in the message column "
              f"of results.csv; the same point fails again on --retry.{hint}", file=err)
    if lost:
        print(f"{len(lost)} point(s) were lost with their Dask worker: rerun with --retry to compute them "
              "again.", file=err)
    return EXIT_NONE_OK if none_ok else 0


def _main(args):
    from .cli import check_out_dir, remove_if_made_and_empty

    params = _params_from_args(args)
    if args.workers is not None:
        from distributed.system import MEMORY_LIMIT  # the machine's (or its cgroup's) memory, as Dask reads it

        most = max(1, int(0.95 * MEMORY_LIMIT // WORKER_BASELINE_BYTES))
        if args.workers > most:
            raise ParameterError(
                f"--workers {args.workers}: a local cluster gives each worker 1/{args.workers} of the machine's "
                f"{MEMORY_LIMIT / 2**30:.1f} GiB ({MEMORY_LIMIT / args.workers / 2**20:.0f} MiB), less than a worker "
                f"process takes idle (about {WORKER_BASELINE_BYTES / 2**20:.0f} MiB with room to work), so its nanny "
                f"would restart them without end; give --workers {most} or fewer (at most the "
                f"{usable_cores()} cores is best).")
    if args.scheduler is not None:
        args.scheduler = normalized_address(args.scheduler)
        check_scheduler_address(args.scheduler, "--scheduler")
    for point in _as_points(params):  # before --out exists: a refused point left it behind, empty
        point.validate()
    made_out = check_out_dir(args.out, (RESULTS_NAME, COLUMNS_NAME) + (() if args.no_plots else FIGURES))
    _results_state(Path(args.out) / RESULTS_NAME)  # refuse another program's results.csv now
    _check_appendable(Path(args.out) / RESULTS_NAME)  # and one that cannot be written
    client = cluster = None
    numba_threads = None
    interrupted = False
    try:
        try:
            if args.workers is not None:
                from distributed import Client

                cores = usable_cores()
                if args.workers > cores:
                    print(f"xbarsim scale: warning: {args.workers} workers on {cores} cores; "
                          "points will contend for the CPU", file=sys.stderr)
                # One point at a time per worker process (so each worker's
                # peak RSS belongs to one point); its numba kernels get an
                # equal share of the cores: workers x threads <= cores.
                numba_threads = max(1, cores // args.workers)
                # a Ctrl-C while the workers start comes out of here as
                # KeyboardInterrupt once they are up (`start_local_cluster`)
                cluster = start_local_cluster(args.workers)
                client = Client(cluster)
            elif args.scheduler is not None:
                try:
                    client = _connect_scheduler(args.scheduler)
                except XbarsimError:
                    remove_if_made_and_empty(args.out, made_out)
                    raise
            t0 = time.perf_counter()
            work = {}
            rows = run_sweep(params, args.out, client=client, progress=not args.no_progress,
                             retry=args.retry, plots=not args.no_plots, numba_threads=numba_threads,
                             counts=work, reuse_other_code=args.reuse_other_code)
            wall = time.perf_counter() - t0
        except KeyboardInterrupt as exc:
            from .cli import Terminated

            interrupted = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            # before the first point (waiting for a worker, or for ours to
            # start): the folder made for it stayed, empty
            remove_if_made_and_empty(args.out, made_out)
            if cluster is not None:
                # Closing our own cluster under a running point makes the
                # nannies (in this process) warn that they kill a busy worker
                # after a grace period: expected here, so not shown.
                import logging

                logging.getLogger("distributed").setLevel(logging.ERROR)
    finally:
        if cluster is not None:  # ours: drained, then closed (a short drain after Ctrl-C)
            close_cluster(cluster, client, drain_s=0.5 if interrupted else 5.0)
        elif client is not None:
            close_client(client, quiet=client.status != "running")  # a lost scheduler: its close's traceback
    if interrupted:
        _report_interrupt(params, args.out, interrupted)
        return 130  # 143 for SIGTERM (`cli.main`)
    print(format_table(rows))
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    # a rerun of a finished sweep printed "24 points: 24 ok; wall 1.5 s" with
    # no word that none was computed (found by review)
    reused = work.get("reused", 0)
    again = f" ({reused} of them from an earlier run in this folder)" if reused else ""
    print(f"\n{len(rows)} points{again}: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} "
          f"failed; wall {wall:.1f} s. Results: {Path(args.out) / RESULTS_NAME}")
    sys.stdout.flush()  # the table before the notes on stderr
    return _report_problems(rows, plots=not args.no_plots)
