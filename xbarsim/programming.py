"""Write-verify programming of a crossbar on its circuit: `program`.

Devices are programmed one at a time in a configurable order. For each, the
write-verify loop of the measured TiO2 runs (data README): read at
``V_read``; below the band ``|read - target| <= tolerance * target``, a set
pulse, above it a reset pulse; every further pulse of the same polarity is
``v_step`` larger, from the start voltage up to the limit; stop inside the
band or after ``max_pulses`` (then the device is reported not converged).

Everything is a circuit simulation (compiled, kernels/programming.py):

* every pulse is applied with the bias scheme (`BiasScheme`: V/2, V/3,
  floating; docs/CIRCUIT.md) and the voltage across **every** cell comes
  from a nodal solve of the crossbar with its wire resistance and sinh
  devices (kernels/nodal.py); each cell then switches by the device law at
  the voltage it saw, so half-selected cells are disturbed;
* every verify read goes through the crossbar under the read scheme
  (`ReadScheme`), with sneak currents and IR drop: the "measured"
  conductance is the sensed current over ``V_read`` (with read noise),
  expressed in small-signal units (divided by ``V0 sinh(V_read/V0) /
  V_read``) so that it compares directly with a small-signal target;
* with ideal wires (``r_wl = r_bl = 0``) and no floating line, node voltages
  equal the drives exactly and the solve is skipped.

Randomness (initial state, failures, cycle-to-cycle, read noise,
relaxation) comes from the stream ``(seed, transfer, tile)``, so a result is
bit-identical for any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._coerce import Choice, as_choice
from ._repr import compact_repr
from .devices import SINH_ARG_MAX, DeviceParams, real_scalar, zero_d_item
from .exceptions import ConvergenceError, ParameterError
from ._fork import check_fork_safe
from ._docfields import document_fields

__all__ = [
    "BiasScheme",
    "ReadScheme",
    "Order",
    "WriteVerify",
    "TransferConfig",
    "ProgramResult",
    "program",
    "programming_order",
]


class BiasScheme(Choice):
    """Bias of the unselected lines during a programming pulse (CIRCUIT.md)."""

    V2 = "V/2"
    V3 = "V/3"
    FLOATING = "floating"


class ReadScheme(Choice):
    """Bias of the unselected lines during a verify read.

    The sensed current is the whole bit line's, as on hardware:

    * ``"grounded"``: unselected lines at 0 V. The other devices of the
      sensed bit line sit at ~0 V; only wire drops leak in.
    * ``"V/2"``: unselected lines at ``V_read/2``. Every other device of the
      sensed bit line is half-selected and adds ``G V_read/2`` to the read
      (in a passive array, (M-1)/2 times the selected device's share), so
      write-verify tunes the *sum* to the target and leaves devices far
      below it: on an 8x8 array with the ideal device and ideal wires, 53 %
      converge and the final error is -82 % on average.
    * ``"V/2-diff"``: the V/2 read minus a background read with the selected
      word line at ``V_read/2`` too; the half-selected currents cancel
      (exactly with ideal wires), leaving the selected device's (two reads
      per verify, each with its own read noise and the noise of every device
      on the bit line: about 8x one device's on 32 x 32,
      `diff_read_noise_factor`).
    * ``"floating"``: unselected lines floating. Sneak paths through three
      devices in series add to the read and cannot be subtracted: the same
      8x8 case ends at -78 %. This is the sneak-path problem itself.
    """

    GROUNDED = "grounded"
    HALF = "V/2"
    HALF_DIFF = "V/2-diff"
    FLOATING = "floating"


class Order(Choice):
    """Order in which devices are programmed."""

    COLUMN_MAJOR = "column-major"
    ROW_MAJOR = "row-major"




def _check_flag(value, name):
    """``value`` as a bool; anything but True / False (a string such as "no"
    is truthy) is a `ParameterError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} = {value!r}; give True or False.")
    return bool(value)


@document_fields
@dataclass(frozen=True)
class WriteVerify:
    """Write-verify pulse settings (defaults: the settings recorded with
    three of the five measured TiO2 maps: read voltage, first and largest
    set and reset amplitudes, step and pulse width; the pulse budget and
    the cycle time assumed: `xbarsim.presets`)."""

    v_read: float = 0.2
    """Read voltage on the selected word line, V."""
    v_set_start: float = 1.1
    """First set pulse amplitude, V."""
    v_set_max: float = 2.1
    """Largest set pulse amplitude, V."""
    v_reset_start: float = -1.1
    """First reset pulse amplitude, V (negative)."""
    v_reset_min: float = -2.4
    """Largest-magnitude reset pulse amplitude, V (negative)."""
    v_step: float = 0.02
    """Amplitude increment per successive pulse of one polarity, V."""
    pulse_width: float = 1.04e-6
    """Pulse width, s."""
    cycle_time: float = 1e-3
    """Time of one pulse-and-verify cycle, s (sets relaxation per event; assumed)."""
    max_pulses: int = 40
    """Pulse budget per device; a device still outside the band is not converged.
    Assumed: the data give none. 40 pulses ramp from +-1.1 V to +-1.88 V in
    0.02 V steps, so ``v_set_max`` and ``v_reset_min`` (the measured runs'
    limits) are reached only with a budget of 51 (sets) and 66 (resets)."""

    def ramp_tops(self):
        """``(set, reset)``: the largest amplitude, in volts (both positive),
        that each ramp reaches within the budget, at its limit or short of it."""
        last = self.v_step * (self.max_pulses - 1)
        return (min(self.v_set_max, self.v_set_start + last), min(-self.v_reset_min, -self.v_reset_start + last))

    def __post_init__(self):
        for name in ("v_read", "v_set_start", "v_set_max", "v_reset_start", "v_reset_min", "v_step",
                     "pulse_width", "cycle_time"):
            value = getattr(self, name)
            number = real_scalar(value)
            if number is None or not math.isfinite(number):
                raise ParameterError(f"WriteVerify.{name} = {value!r}; expected a finite number (volts or "
                                     "seconds, see the field's docstring).")
            object.__setattr__(self, name, number)  # numpy scalars stored as float (JSON, pack)
        for name in ("v_read", "v_set_start", "v_set_max", "v_reset_start", "v_reset_min", "v_step"):
            if abs(getattr(self, name)) > _V_PULSE_LIMIT:
                raise ParameterError(f"WriteVerify.{name} = {getattr(self, name)!r} V; pulse and read voltages "
                                     f"must stay within +-{_V_PULSE_LIMIT:g} V (the measured runs start at "
                                     "+-1.1 V; the preset ramps up to +2.1 / -2.4 V).")
        # each check names the fields it compares, their values and the
        # defaults: one message for three different mistakes named none of
        # them
        sets = "0 < v_read < v_set_start <= v_set_max"
        if not self.v_read > 0:
            _order_error(self, f"v_read = {self.v_read!r} V is not positive", sets)
        if not self.v_read < self.v_set_start:
            _order_error(self, f"v_read = {self.v_read!r} V is not below v_set_start = {self.v_set_start!r} V",
                         sets)
        if not self.v_set_start <= self.v_set_max:
            _order_error(self, f"v_set_start = {self.v_set_start!r} V is above v_set_max = "
                         f"{self.v_set_max!r} V", sets)
        if self.v_read < _V_READ_MIN:  # 1e-320 V read every device as 0 A, silently
            raise ParameterError(f"WriteVerify.v_read = {self.v_read!r} V; a read needs at least "
                                 f"{_V_READ_MIN:g} V (the measured arrays read at 0.2 V).")
        resets = "v_reset_min <= v_reset_start < 0"
        if not self.v_reset_start < 0:
            _order_error(self, f"v_reset_start = {self.v_reset_start!r} V is not negative", resets)
        if not self.v_reset_min <= self.v_reset_start:
            _order_error(self, f"v_reset_min = {self.v_reset_min!r} V is above v_reset_start = "
                         f"{self.v_reset_start!r} V", resets)
        for name in ("v_step", "pulse_width", "cycle_time"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"WriteVerify.{name} = {getattr(self, name)!r}; it must be > 0 "
                                     f"(default {_field_default(name)!r}).")
        if self.cycle_time > _CYCLE_TIME_LIMIT:
            raise ParameterError(f"WriteVerify.cycle_time = {self.cycle_time!r} s; one pulse-and-verify cycle "
                                 f"lasts at most {_CYCLE_TIME_LIMIT:g} s here (the measured arrays: about 1e-3 s).")
        if self.pulse_width > self.cycle_time:
            raise ParameterError(f"WriteVerify.pulse_width = {self.pulse_width!r} s is longer than cycle_time = "
                                 f"{self.cycle_time!r} s; a pulse must fit in its pulse-and-verify cycle "
                                 "(the measured arrays: 1.04e-6 s pulses).")
        mp = _int_in(self.max_pulses, 1, MAX_PULSES_LIMIT)
        if mp is None:
            raise ParameterError(f"max_pulses = {self.max_pulses!r}; an integer pulse budget per device in "
                                 f"1..{MAX_PULSES_LIMIT} (default 40, an assumption: the data give none).")
        object.__setattr__(self, "max_pulses", mp)


def _field_default(name):
    """The default of `WriteVerify` field `name` (the measured settings)."""
    return WriteVerify.__dataclass_fields__[name].default


def _order_error(wv, what, rule):
    """Raise the `ParameterError` for `WriteVerify` amplitudes that break the
    ordering `rule`; `what` says which pair and how."""
    fields = [f for f in ("v_read", "v_set_start", "v_set_max", "v_reset_start", "v_reset_min") if f in rule]
    defaults = ", ".join(f"{f} = {_field_default(f)!r}" for f in fields)
    raise ParameterError(f"WriteVerify.{what}; the read and pulse amplitudes need {rule} (volts). "
                         f"The measured settings: {defaults}.")


def _int_in(value, low, high):
    """`value` as a Python int when it is an integer (not a bool) in
    [low, high], else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value) if low <= value <= high else None


_V_PULSE_LIMIT = 100.0
"""Largest |voltage| a `WriteVerify` accepts, V (the preset ramps up to +2.1 / -2.4 V)."""
_V_READ_MIN = 1e-9
"""Smallest read voltage a `WriteVerify` accepts, V: far below it the read
currents reach the subnormal range and verify reads return 0."""
RELAX_PER_CYCLE_MAX = 1.0
"""Largest slow-relaxation drift ``|relax_drift| * cycle_time`` and variance
``relax_sigma**2 * cycle_time`` (log scale) one pulse-and-verify cycle may
carry (the preset's: 6e-5 and 2.2e-6)."""
_CYCLE_TIME_LIMIT = 3600.0
"""Longest pulse-and-verify cycle a `WriteVerify` accepts, s."""
MAX_PULSES_LIMIT = 10**6
"""Largest `WriteVerify.max_pulses` (the kernel counts pulses in 32-bit integers)."""


SOLVE_MAXITER_LIMIT = 10**9
"""Largest `TransferConfig.solve_maxiter` (a float64 in the kernels' parameter vector)."""


SOLVE_TOL_PER_NODE = 2e-15
"""Smallest ``solve_tol`` per node of an array's longest line that the
in-kernel circuit solve reaches in double precision (`TransferConfig.check_array`).
Measured with the TiO2 preset on 1 ohm wires under V/2, V/3 and floating
bias (2026-12-02): 16 x 16 missed 1e-14 and reached 3e-14, 32 x 32 missed
3e-14 and reached 1e-13, 64 x 64 missed 6e-14 and reached 1.3e-13."""


MEASURED_TOLERANCE = 0.01
"""The write-verify band of the measured TiO2 arrays (relative half-width),
`TransferConfig.tolerance`'s default."""


@document_fields
@dataclass(frozen=True)
class TransferConfig:
    """Everything that decides how weights end up in a crossbar.

    Strings are accepted for the enum fields (``scheme="V/3"``).
    """

    device: DeviceParams = None
    """Device model; None: ``xbarsim.presets.TIO2``."""
    scheme: BiasScheme = BiasScheme.V2
    """Programming bias scheme: "V/2", "V/3" or "floating"."""
    read_scheme: ReadScheme = ReadScheme.GROUNDED
    """Verify-read bias of unselected lines: "grounded", "V/2", "V/2-diff" (V/2 minus a background
    read) or "floating" (`ReadScheme`: V/2 and floating reads include the other devices' currents)."""
    mapping: object = "differential"
    """Weight mapping: "differential" (G+ - G-) or "reference" (one reference column per tile)."""
    tolerance: float = MEASURED_TOLERANCE
    """Relative write-verify tolerance (band half-width / target), in (0, 1). Mapping weights also
    needs a window wider than the band, g_max - g_min > 2 tolerance g_max (below 0.4 for the
    100-500 uS window; `check_mapping_band`)."""
    order: Order = Order.COLUMN_MAJOR
    """Programming order: "column-major" or "row-major"."""
    r_wl: float = 1.0
    """Word-line segment resistance, ohms (0: ideal wire)."""
    r_bl: float = 1.0
    """Bit-line segment resistance, ohms (0: ideal wire)."""
    tile: tuple = (64, 64)
    """Largest physical array (rows, columns); bigger layers are split into tiles."""
    write_verify: WriteVerify = field(default_factory=WriteVerify)
    """Pulse settings."""
    window: Optional[tuple] = None
    """Conductance window (g_min, g_max), S, for mapping, inside the device's operating window
    (``device.g_min``, ``device.g_max``); None: all of it."""
    input_scale: float = 1.0
    """Input magnitude mapped to V_read (inputs in [-s, s] -> [-V_read, V_read])."""
    solve_tol: float = 1e-9
    """Node-voltage error at which a circuit solve stops, relative to the drive (the error is
    estimated from the sweep contraction, kernels/nodal.py `solve_nodal`)."""
    solve_maxiter: int = 5000
    """Sweep cap of one circuit solve."""

    def __post_init__(self):
        # each check in turn, each field normalised (enums, floats, tuples)
        # where it is checked; the first mistake found is the one reported
        self._check_modes()
        self._check_band_wires_tile()
        self._check_window_and_inputs()
        self._check_solver()
        self._check_device_against_pulses()

    def _check_modes(self):
        """The device, and the schemes, mapping and order as enum members."""
        from .mapping import MappingScheme

        if self.device is None:
            from .presets import TIO2

            object.__setattr__(self, "device", TIO2)
        if not isinstance(self.device, DeviceParams):
            raise ParameterError(f"device must be an xbarsim.devices.DeviceParams; got {type(self.device).__name__}.")
        object.__setattr__(self, "scheme", as_choice(BiasScheme, self.scheme, "bias scheme"))
        object.__setattr__(self, "read_scheme", as_choice(ReadScheme, self.read_scheme, "read scheme"))
        object.__setattr__(self, "mapping", as_choice(MappingScheme, self.mapping, "mapping"))
        if not isinstance(self.order, (Order, str)):
            raise ParameterError(
                f"order = {self.order!r:.60}; TransferConfig.order is 'column-major' or 'row-major' (the order "
                "of every tile of a layer). An explicit (M*N, 2) array of (row, column) pairs programs one "
                "array: pass it to xs.program(..., order=...).")
        object.__setattr__(self, "order", as_choice(Order, self.order, "order"))

    def _check_band_wires_tile(self):
        """The write-verify band, the wire resistances, the tile shape and the
        pulse settings' type."""
        tol = real_scalar(self.tolerance)
        if tol is None or not math.isfinite(tol) or not 0 < tol < 1:
            raise ParameterError(
                f"tolerance = {self.tolerance!r}; give the relative write-verify band half-width as a "
                "number in (0, 1), e.g. 0.01 for 1 %."
            )
        object.__setattr__(self, "tolerance", tol)
        from .circuit import _check_dynamic_range

        for name in ("r_wl", "r_bl"):
            r = real_scalar(getattr(self, name))
            if r is None or not math.isfinite(r) or r < 0:
                raise ParameterError(f"{name} = {getattr(self, name)!r}; a wire segment resistance in ohms, "
                                     ">= 0 (scalar).")
            object.__setattr__(self, name, r)
        # the limits xs.Crossbar sets, by its own check: 5e-324 ohm wires ran the whole simulation into
        # NaN and a ConvergenceError advising a larger solve_maxiter
        _check_dynamic_range(np.array([self.device.g_hi]), {n: np.array([getattr(self, n)]) for n in ("r_wl", "r_bl")})
        try:
            tile = tuple(self.tile)
        except TypeError:
            raise ParameterError(f"tile = {self.tile!r}; give (rows, columns) as two positive integers.") from None
        if len(tile) != 2 or any(isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 1
                                 for t in tile):
            raise ParameterError(f"tile = {self.tile!r}; give (rows, columns) as two positive integers.")
        if tile[1] < 2:  # refused only when a layer was mapped
            raise ParameterError(f"tile = {self.tile!r} has fewer than 2 columns; both mapping schemes need 2 "
                                 "(a differential pair, or a device and its reference column).")
        object.__setattr__(self, "tile", tuple(int(t) for t in tile))
        if not isinstance(self.write_verify, WriteVerify):
            raise ParameterError("write_verify must be an xbarsim.programming.WriteVerify.")

    def _check_window_and_inputs(self):
        """The conductance window, inside the device's operating window, and
        the input scale."""
        dev = self.device
        if self.window is not None:
            try:
                # real_scalar: a bool or a meta tensor is no number (float() took True as 1 S, and a meta
                # tensor raised RuntimeError)
                w = tuple(real_scalar(x) for x in self.window)
            except (TypeError, ValueError, RuntimeError, NotImplementedError):
                w = (None,)
            if None in w:
                raise ParameterError(f"window = {self.window!r:.80}; give (g_min, g_max) as two numbers in "
                                     "siemens, e.g. (100e-6, 500e-6).") from None
            if len(w) != 2 or not all(math.isfinite(x) for x in w) or not (w[0] < w[1]):
                raise ParameterError(f"window = {self.window!r}; give (g_min, g_max) in siemens with g_min < g_max.")
            object.__setattr__(self, "window", w)
        g_min, g_max = self.g_window
        if not (dev.g_min <= g_min and g_max <= dev.g_max):
            # the device's range is its operating window (2-10 kOhm for TiO2), where its model is calibrated
            # and the tuning law measured; the reachable range (g_lo, g_hi) only bounds that window
            # enough digits to tell the numbers apart: a float32 1e-4 is a
            # hair below 1e-4 and read "(0.0001, 0.0005) outside 0.0001 to
            # 0.0005" at 3 digits
            digits = 3
            while digits < 17 and (f"{g_min:.{digits}g}" == f"{dev.g_min:.{digits}g}" and g_min < dev.g_min
                                   or f"{g_max:.{digits}g}" == f"{dev.g_max:.{digits}g}" and g_max > dev.g_max):
                digits += 1
            # (2000, 10000): resistances, as the issue and the data give the window; named only where the
            # siemens they mean fit the device
            if g_min >= 1.0 > dev.g_max and dev.g_min <= 1 / g_max and 1 / g_min <= dev.g_max:
                raise ParameterError(
                    f"window ({g_min:g}, {g_max:g}) S lies outside the device's operating window, {dev.g_min:g} "
                    f"to {dev.g_max:g} S, and looks like resistances in ohms. The window is conductances in "
                    f"siemens: window=({1 / g_max:.4g}, {1 / g_min:.4g}) for {g_min:g} to {g_max:g} ohm.")
            raise ParameterError(
                f"window ({g_min:.{digits}g}, {g_max:.{digits}g}) S lies outside the device's operating window, "
                f"{dev.g_min:.{digits}g} to {dev.g_max:.{digits}g} S; choose a window inside it, or widen the device's "
                f"operating window first (dataclasses.replace(device, g_min=..., g_max=...), inside its "
                f"reachable range {dev.g_lo:.3g} to {dev.g_hi:.3g} S)."
            )
        # (a window no wider than the write-verify band is refused where
        # weights are mapped into it, `check_mapping_band`: `program` maps none)
        s_in = real_scalar(self.input_scale)
        if s_in is None or not math.isfinite(s_in) or s_in <= 0:
            raise ParameterError(f"input_scale = {self.input_scale!r}; a finite positive number (the input "
                                 "magnitude read at V_read).")
        object.__setattr__(self, "input_scale", s_in)

    def _check_solver(self):
        """The in-kernel circuit solver's tolerance and sweep cap."""
        from .solve import MIN_TOL

        st = real_scalar(self.solve_tol)
        if st is None or not 0 < st < 1e-3:
            raise ParameterError(f"solve_tol = {self.solve_tol!r}; a number in (0, 1e-3) (node-voltage error "
                                 "relative to the drive, default 1e-9).")
        if st < MIN_TOL and self.solves:
            # as xs.solve: below it the node voltages cannot be resolved in
            # double precision, and programming failed after the work with a
            # hint (raise solve_maxiter) that could not help
            raise ParameterError(f"solve_tol = {self.solve_tol!r} is below {MIN_TOL:g}: double precision cannot "
                                 f"resolve node voltages that finely. Give a solve_tol of at least {MIN_TOL:g} "
                                 "(the default 1e-9 is already far below the read noise).")
        object.__setattr__(self, "solve_tol", st)
        mi = _int_in(self.solve_maxiter, 1, SOLVE_MAXITER_LIMIT)
        if mi is None:
            raise ParameterError(f"solve_maxiter = {self.solve_maxiter!r}; a positive integer up to "
                                 f"{SOLVE_MAXITER_LIMIT:g} (sweeps per circuit solve, default 5000).")
        object.__setattr__(self, "solve_maxiter", mi)

    def _check_device_against_pulses(self):
        """The device model against the pulse settings: relaxation and switching
        rates that the cycle and pulse width make meaningless, a read that
        would switch, ramps that never cross a threshold (warned), and sinh
        overflow."""
        dev = self.device
        wv = self.write_verify
        # the slow relaxation per pulse-and-verify cycle (DeviceParams gives it
        # per second): an e-fold of drift or spread in one cycle is no
        # relaxation; relax_drift = 1e10 pinned every device at g_hi, with the
        # unconverged-devices warning blaming IR drop
        for name, per_cycle in (("relax_drift", abs(dev.relax_drift) * wv.cycle_time),
                                ("relax_sigma", dev.relax_sigma * dev.relax_sigma * wv.cycle_time)):  # inf, not OverflowError
            if per_cycle > RELAX_PER_CYCLE_MAX:
                raise ParameterError(
                    f"device.{name} = {getattr(dev, name)!r} with write_verify.cycle_time = {wv.cycle_time:g} s "
                    f"gives a relaxation {'drift' if name == 'relax_drift' else 'variance'} of {per_cycle:.3g} per "
                    f"cycle (log scale); at most {RELAX_PER_CYCLE_MAX:g}. Give it per second (the preset's: "
                    f"{getattr(DeviceParams, name):g}) or shorten the cycle.")  # the class's defaults, the preset's
        # the switching change at threshold per pulse of this width: k is
        # per tw_ref (a free reference width), so only k * width / tw_ref
        # has a meaning; beyond the whole range one pulse at threshold would
        # jump from g_lo to g_hi (bounding k alone refused the
        # preset's rate stated per millisecond, and took 1000x it through a
        # 1 ms pulse)
        per_pulse = max(dev.k_set, dev.k_reset) * (wv.pulse_width / dev.tw_ref)
        if per_pulse > dev.g_hi - dev.g_lo:
            raise ParameterError(
                f"the device switches by up to {per_pulse:.3g} S per {wv.pulse_width:g} s pulse at threshold "
                f"(max(k_set, k_reset) = {max(dev.k_set, dev.k_reset):g} S per tw_ref = {dev.tw_ref:g} s), more than "
                f"its whole range g_hi - g_lo = {dev.g_hi - dev.g_lo:.3g} S: lower k_set / k_reset or the pulse "
                f"width, or raise tw_ref, the width k is per (the preset: {DeviceParams.k_set:g} / "
                f"{DeviceParams.k_reset:g} S per {DeviceParams.tw_ref:g} s).")
        vth = min(dev.v_set, dev.v_reset)
        if wv.v_read >= vth:
            raise ParameterError(
                f"write_verify.v_read = {wv.v_read:g} V reaches the device's switching threshold ({vth:g} V): a "
                "verify read would program the device. Read well below it (0.2 V in the measured arrays).")
        # pulses that never reach a threshold (the device then moves only by
        # its sub-threshold law, if at all): no write-verify converges, and it
        # ran with no word
        set_top, reset_top = wv.ramp_tops()
        for name, start, limit, vth_k, top in (("set", wv.v_set_start, wv.v_set_max, dev.v_set, set_top),
                                               ("reset", -wv.v_reset_start, -wv.v_reset_min, dev.v_reset, reset_top)):
            if top < vth_k:
                from ._warn import warn

                warn(f"write-verify {name} pulses reach at most {top:g} V ({start:g} V ramped by {wv.v_step:g} V "
                     f"over max_pulses = {wv.max_pulses}, capped at {limit:g} V), below the device's {name} "
                     f"threshold of {vth_k:g} V: devices can {name} only by the sub-threshold law, and write-verify "
                     "will mostly not converge. Raise the pulse start, limit or budget, or lower the threshold.",
                     RuntimeWarning)
        # a switching rate so small that no budget crosses one band: tw_ref =
        # 1e300 left every device where it started, and the unconverged
        # warning advised a larger budget. Bounded without
        # the budget (the surrogate fit's deliberate 1-pulse configuration,
        # and wide bands that need no pulse, drew a first version's warning;
        # review of the fix): full room, every pulse at the ramp's limit,
        # the largest budget WriteVerify takes.
        for name, limit, vth_k, k in (("set", wv.v_set_max, dev.v_set, dev.k_set),
                                      ("reset", -wv.v_reset_min, dev.v_reset, dev.k_reset)):
            # the exponent capped as the kernel caps it (kernels/programming.py `_EXP_MAX`); a
            # product past double precision is inf, no warning to silence
            per_pulse = k * (wv.pulse_width / dev.tw_ref) * math.exp(min(max((limit - vth_k) / dev.v_slope, 0.0),
                                                                         700.0))
            band = self.tolerance * dev.g_min
            if per_pulse * MAX_PULSES_LIMIT < band:
                from ._warn import warn

                warn(f"write-verify {name} pulses move a device by at most {per_pulse:.3g} S each, even at the "
                     f"ramp's limit of {limit:g} V (k_{name} = {k:g} S per pulse of tw_ref = {dev.tw_ref:g} s; pulses "
                     f"of {wv.pulse_width:g} s): not even {MAX_PULSES_LIMIT:g} of them, the largest budget, cross "
                     f"the {100 * self.tolerance:g} % band at g_min ({band:.3g} S), so write-verify cannot tune a "
                     f"device by {name} pulses. Check k_{name}, tw_ref and the pulse width (the preset: "
                     f"{getattr(DeviceParams, 'k_' + name):g} S per {DeviceParams.tw_ref:g} s, pulses of "
                     f"{WriteVerify.pulse_width:g} s).", RuntimeWarning)
        v_pulse = max(wv.v_set_max, -wv.v_reset_min)
        if dev.v0 is not None and v_pulse / dev.v0 > SINH_ARG_MAX:
            raise ParameterError(
                f"write_verify pulses up to {v_pulse:g} V overflow the device's sinh current (v0 = {dev.v0:g} V: "
                f"|V| / v0 must stay below {SINH_ARG_MAX:g}); lower v_set_max / raise v_reset_min, or use a "
                "device with a larger v0.")

    @property
    def solves(self):
        """Whether pulses or verify reads need a circuit solve: resistive
        wires, or a floating scheme (else the voltages are known exactly)."""
        return (self.r_wl > 0 or self.r_bl > 0 or self.scheme is BiasScheme.FLOATING
                or self.read_scheme is ReadScheme.FLOATING)

    def check_array(self, shape):
        """Refuse (`ParameterError`) a ``solve_tol`` below what the in-kernel
        circuit solve of an array of ``shape`` resolves in double precision
        (`SOLVE_TOL_PER_NODE` per node of its longest line): programming
        stopped at the first solve that missed it, after the work before.
        Called by `_program_batch`, which every programming path goes
        through, and by `map_layer`, whose tiles the MVM reads too."""
        floor = SOLVE_TOL_PER_NODE * max(shape)
        if self.solve_tol < floor and self.solves:
            raise ParameterError(
                f"solve_tol = {self.solve_tol:g} is below what the in-kernel circuit solve of a {shape[0]} x "
                f"{shape[1]} array resolves in double precision (about {floor:.2g}: {SOLVE_TOL_PER_NODE:g} per node "
                f"of its longest line), and programming would stop at the first solve that misses it. Give a "
                f"solve_tol of at least {floor:.2g} (the default 1e-9 is already far below the read noise).")

    def check_mapping_band(self):
        """Refuse (`ParameterError`) a window no wider than the write-verify
        band: write-verify stops anywhere in +-tolerance x G, so weights
        mapped into such a window encode nothing but programming noise,
        scaled up by 1 / (its width) (mvm gave -1e5 for a weight ~1).
        Called wherever weights are mapped (`xbarsim.mapping.map_layer`);
        `program`, which takes conductances, does not need it."""
        g_min, g_max = self.g_window
        tol = self.tolerance
        if g_max - g_min <= 2.0 * tol * g_max:
            dev = self.device
            raise ParameterError(
                f"window ({g_min:.6g}, {g_max:.6g}) S is no wider than the write-verify band of +-{tol:g} x G "
                f"({2.0 * tol * g_max:.3g} S at its top): every weight mapped into it would land in the same "
                f"band. Widen the window (this device's operating window is {dev.g_min:.3g} to {dev.g_max:.3g} S) "
                "or lower the tolerance."
            )

    @property
    def g_window(self):
        """(g_min, g_max) used for mapping, S."""
        if self.window is not None:
            return self.window
        return (self.device.g_min, self.device.g_max)

    def pack(self):
        """(wv, iopt) vectors in the layout of kernels/programming.py."""
        from .kernels import programming as K

        w = self.write_verify
        wv = np.zeros(K.N_WV)
        wv[K.W_V_READ] = w.v_read
        wv[K.W_VSET_START] = w.v_set_start
        wv[K.W_VSET_MAX] = w.v_set_max
        wv[K.W_VRESET_START] = w.v_reset_start
        wv[K.W_VRESET_MIN] = w.v_reset_min
        wv[K.W_V_STEP] = w.v_step
        wv[K.W_PULSE_WIDTH] = w.pulse_width
        wv[K.W_CYCLE_TIME] = w.cycle_time
        wv[K.W_TOL] = self.tolerance
        wv[K.W_MAX_PULSES] = w.max_pulses
        wv[K.W_SOLVE_TOL] = self.solve_tol
        wv[K.W_SOLVE_MAXIT] = self.solve_maxiter
        wv[K.W_R_WL] = self.r_wl
        wv[K.W_R_BL] = self.r_bl
        iopt = np.zeros(K.N_OPT, dtype=np.int64)
        iopt[K.O_SCHEME] = {BiasScheme.V2: K.SCHEME_V2, BiasScheme.V3: K.SCHEME_V3,
                            BiasScheme.FLOATING: K.SCHEME_FLOATING}[self.scheme]
        iopt[K.O_READ] = {ReadScheme.GROUNDED: K.READ_GROUNDED, ReadScheme.HALF: K.READ_HALF,
                          ReadScheme.FLOATING: K.READ_FLOATING,
                          ReadScheme.HALF_DIFF: K.READ_HALF_DIFF}[self.read_scheme]
        return wv, iopt


def programming_order(shape, order):
    """(K, 2) int64 array of (row, column) in programming order.

    ``order`` is an `Order` (or its string) or an explicit (K, 2) array / list
    of (row, column) pairs covering every device once.
    """
    M, N = shape
    if isinstance(order, (Order, str)):
        order = as_choice(Order, order, "order")
        ii, jj = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
        if order is Order.COLUMN_MAJOR:
            pairs = np.stack([ii.T.ravel(), jj.T.ravel()], axis=1)
        else:
            pairs = np.stack([ii.ravel(), jj.ravel()], axis=1)
        return np.ascontiguousarray(pairs, dtype=np.int64)
    if order is None:
        raise ParameterError("order is None; give 'column-major', 'row-major' or an explicit "
                             f"({M * N}, 2) array of (row, column) pairs.")
    try:
        pairs = np.asarray(order)
    except (TypeError, ValueError):  # ragged lists
        pairs = np.asarray(order, dtype=object)
    if pairs.ndim != 2 or pairs.shape != (M * N, 2):
        raise ParameterError(f"an explicit order must have shape ({M * N}, 2); got {pairs.shape}.")
    kind = pairs.dtype.kind
    if kind == "f" and np.all(np.isfinite(pairs)) and np.all(pairs == np.round(pairs)):
        kind = "i"  # whole numbers stored as floats
    if kind not in "iu":
        raise ParameterError(f"an explicit order holds {pairs.dtype} values; give (row, column) pairs as "
                             "integers (a non-integer index would be truncated).")
    if (pairs.min() < 0 or np.any(pairs[:, 0] >= M) or np.any(pairs[:, 1] >= N)
            or np.unique(pairs.astype(np.int64) @ np.array([N, 1], dtype=np.int64)).size != M * N):
        raise ParameterError(f"an explicit order must list every (row, column) of the {M} x {N} array exactly "
                             "once (a permutation of its cells).")
    return np.ascontiguousarray(pairs, dtype=np.int64)


@document_fields
@dataclass(frozen=True, eq=False)
class ProgramResult:
    """Outcome of programming one array; every array field is (M, N)."""

    __repr__ = compact_repr

    order_index: np.ndarray
    """Position of each device in the programming order (0 = first)."""
    target: np.ndarray
    """Target small-signal conductance, S."""
    pulses: np.ndarray
    """Pulses applied during the device's own write-verify."""
    g_after_own: np.ndarray
    """True conductance when the device's own write-verify finished, S."""
    g_final: np.ndarray
    """True conductance after the whole array was programmed, S: relaxed
    to the final read, one pulse-and-verify cycle after the last device's
    event."""
    read_after_own: np.ndarray
    """Last verify read of the device (sensed, small-signal units), S."""
    read_final: np.ndarray
    """A read of the device through the crossbar after the whole array was programmed, S."""
    converged: np.ndarray
    """True where the device works and its last verify read was inside the
    tolerance band (a stuck device is never converged, also where its read
    lands in the band by chance)."""
    stuck: np.ndarray
    """True where the device failed (stuck near LRS or in HRS: `stuck_state`)."""
    stuck_state: np.ndarray
    """int8 codes: 0 working, 1 stuck near LRS, 2 stuck in HRS."""
    solver_failures: int = 0
    """Circuit solves that missed their tolerance: always 0 in a returned result (a miss raises
    `ConvergenceError`); kept for the record."""
    drift_reads: Optional[np.ndarray] = None
    """With ``track=True``, (K, K), K = M*N, in programming order: ``drift_reads[q, p]`` is the read of the
    q-th device programmed after the p-th finished (NaN for p <= q); None otherwise."""

    @property
    def working(self):
        """(M, N) bool: True where the device is not stuck (``~stuck``)."""
        return ~self.stuck


def _check_target(target_g, dev, track=False, name="target_g"):
    """`target_g` as a float64 (M, N) array inside the device's range
    (``name``: what the messages call it, e.g. ``--targets``)."""
    from .circuit import _as_float_array

    from ._coerce import shape_of

    shape = shape_of(target_g)
    if shape is not None and len(shape) == 2:
        # before the float64 copy too; an option's hint names it, not tiles
        check_program_memory(shape, track=track, hint=f"give a smaller {name} array" if name.startswith("--") else None)
    t = _as_float_array(target_g, name)  # refuses complex and boolean values
    if t.ndim != 2 or min(t.shape) < 1:
        # a 1-D row got no hint how to pass it
        hint = "" if t.ndim != 1 or not t.size else (
            " For one row of devices, save it as one: np.save(path, g.reshape(1, -1))." if name.startswith("--")
            else " For one row of devices, pass g.reshape(1, -1).")
        raise ParameterError(f"{name} has shape {t.shape}; expected a 2-D (M, N) array in siemens.{hint}")
    check_program_memory(t.shape, track=track)
    if not np.all(np.isfinite(t)):
        raise ParameterError(f"{name} holds NaN or inf; give finite conductances in siemens.")
    outside = (t <= dev.g_lo) | (t >= dev.g_hi)
    if np.any(outside):
        # the span alone, at 3 digits, read "spans [0.0003, 0.001] S, outside
        # (5e-06, 0.001) S" of a target of 1.0004e-3 S, and named no entry
        i, j = (int(k) for k in np.argwhere(outside)[0])
        raise ParameterError(
            f"{name} has {np.count_nonzero(outside)} of {t.size} targets at or past the device's reachable "
            f"range ({dev.g_lo!r}, {dev.g_hi!r}) S, limits excluded, the first [{i}, {j}] = {float(t[i, j])!r} S; "
            f"targets must lie inside it (the operating window is [{dev.g_min:.3g}, {dev.g_max:.3g}] S)."
            + _unit_hint(t, dev)
        )
    return np.ascontiguousarray(t)


def _unit_hint(t, dev):
    """What targets of 1 or more (no device conducts 1 S) were given in, where
    they fit the device's range read so: 300 (uS) or 3000 (ohm) got only
    "outside the range", and targets of 1 were told they looked like
    microsiemens or ohms, which fit neither (found by review)."""
    if t.min() < 1.0:
        return ""
    units = [u for u, g in (("microsiemens", t * 1e-6), ("ohms", 1.0 / t)) if np.all((g > dev.g_lo) & (g < dev.g_hi))]
    example = " give siemens, e.g. 300e-6 for 300 uS (a 3.3 kohm device)."
    return f" These look like {' or '.join(units)}:{example}" if units else f" Targets are conductances:{example}"


PROGRAM_BYTES_PER_CELL = 176
"""Working memory of one programmed array per cell: the kernel's 14 (M, N)
float64 work arrays (voltages of the pulse and read solves, their
extrapolation history, linearised devices, relaxation clocks) and the
result's 9 fields."""


def check_program_memory(shape, track=False, n=1, hint=None):
    """Refuse to program ``n`` arrays of ``shape`` whose working memory
    cannot fit, before anything is allocated (`MemoryLimitError`, with
    ``hint`` as its fix when given). With ``track``, each also keeps the
    (K, K) float64 matrix of drift reads (K = M N devices: 8 K^2 bytes, 12.8
    GB at 200 x 200)."""
    from ._memory import require

    cells = float(np.prod(shape, dtype=np.float64))
    # n as a float: a count past a float's range (10**400) is inf bytes, refused by
    # `require`, not a raw OverflowError
    count = float(n) if n < 1e308 else float("inf")
    need = count * (PROGRAM_BYTES_PER_CELL * cells + (8.0 * cells * cells if track else 0.0))
    many = f"{n} arrays" if n < 1e15 else f"{count:.3g} arrays" if count < float("inf") else "over 1e308 arrays"
    what = f"programming {'an array' if n == 1 else many} of {shape[0]} x {shape[1]} devices"
    if track:
        require(need, what + f" with track=True (a {int(cells)} x {int(cells)} matrix of reads)",
                hint or "track a smaller array (the matrix grows as (M N)^2), or program without track=True")
    else:
        require(need, what, hint or "program a smaller array (a layer larger than TransferConfig.tile is split "
                "into tiles by xs.transfer)")


def _check_seed(seed):
    given = seed
    seed = zero_d_item(seed)  # a 0-d integer array or tensor, as `whole_number` takes (refused)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 64:
        from ._coerce import seed_refused

        raise ParameterError(seed_refused(given, "seed", "an integer in [0, 2**64) (the random streams are keyed "
                                                         "by a 64-bit seed)."))
    return np.uint64(int(seed))


def _program_batch(targets, cfg, seed, offset=0, key=0, order_pairs=None, track=False,
                   final_read=True, progress=False, label="program"):
    """Program ``targets`` (n, M, N) with the kernel; returns a dict of arrays.

    Array ``t`` uses the random stream ``(seed, offset + t, key)``, or
    ``(seed, offset[t], key[t])`` where ``offset`` and ``key`` are arrays
    (`kernels.programming.program_arrays`). With ``progress``, a bar over
    the n x M x N devices follows the kernel's ``done`` counters
    (`_run_interruptible`, which also stops it on Ctrl-C)."""
    check_fork_safe("write-verify programming")  # before its kernel module loads: a parallel kernel
    from .kernels.programming import O_FINAL_READ, O_TRACK, program_arrays
    from .circuit import kernel_array

    n, M, N = targets.shape
    cfg.check_array((M, N))
    if track:
        check_program_memory((M, N), track=True, n=n)
    pairs = order_pairs if order_pairs is not None else programming_order((M, N), cfg.order)
    K = pairs.shape[0]
    dp = cfg.device.pack()
    wv, iopt = cfg.pack()
    iopt[O_TRACK] = 1 if track else 0
    iopt[O_FINAL_READ] = 1 if final_read else 0
    out = dict(
        g=np.empty((n, M, N)),
        stuck=np.empty((n, M, N), dtype=np.int8),
        pulses=np.empty((n, M, N), dtype=np.int32),
        g_after_own=np.empty((n, M, N)),
        read_after_own=np.empty((n, M, N)),
        g_final=np.empty((n, M, N)),
        read_final=np.empty((n, M, N)),
        converged=np.empty((n, M, N), dtype=np.uint8),
        track=np.full((n, K, K) if track else (n, 0, 0), np.nan),
        fails=np.zeros(n, dtype=np.int64),
    )
    done = np.zeros(n, dtype=np.int64)
    abort = np.zeros(1, dtype=np.uint8)
    offsets = (np.ascontiguousarray(offset, dtype=np.int64) if np.ndim(offset)
               else np.int64(offset) + np.arange(n, dtype=np.int64))
    keys = np.full(n, key, dtype=np.uint64)
    args = (kernel_array(np.ascontiguousarray(targets)), pairs, dp, wv, iopt, np.uint64(seed), offsets, keys,
            out["g"], out["stuck"], out["pulses"], out["g_after_own"], out["read_after_own"],
            out["g_final"], out["read_final"], out["converged"], out["track"], out["fails"], done, abort)
    # compiled (a first run's tens of seconds) or loaded from the cache here, in
    # the calling thread, where a Ctrl-C or SIGTERM stops it: in the worker
    # thread the interrupt waited for the compile, as the abort flag is read
    # only once the kernel runs (25 s after a Ctrl-C; found by review)
    if hasattr(program_arrays, "typeof_pyval"):  # the dispatcher (a test may stand a function in)
        program_arrays.compile(tuple(program_arrays.typeof_pyval(a) for a in args))
    _run_interruptible(lambda: program_arrays(*args), abort, done, n * K, label if progress else None)
    # A missed solve stops the run (`kernels.programming.program_one`), so
    # the outputs of devices it never reached are unwritten memory: read
    # them, and an error was blamed on the device model at random.
    # The live state (``g``: every device, also one a neighbour's
    # pulse brought up to time) decides: a non-finite conductance there is
    # the device model's, and also ends any solve that meets it.
    live_bad = int(np.count_nonzero(~np.isfinite(out.pop("g"))))
    if out["fails"].any() and not live_bad:
        near_rounding = cfg.solve_tol < 1e-12
        raise ConvergenceError(
            f"{int(out['fails'].sum())} circuit solves of the write-verify simulation missed "
            f"solve_tol = {cfg.solve_tol:g} within solve_maxiter = {cfg.solve_maxiter} sweeps, and programming "
            "stopped there; " + (
                "this solve_tol is near double precision's rounding of the node voltages, where more sweeps "
                "seldom help: loosen cfg.solve_tol first (the default is 1e-9), then raise cfg.solve_maxiter "
                "if needed." if near_rounding else
                "raise cfg.solve_maxiter or loosen cfg.solve_tol, or lower the wire resistance (cfg.r_wl, "
                "cfg.r_bl: the line relaxation slows as rows x wire resistance x device conductance "
                "grows).") + " A NaN in the circuit also ends here.")
    bad = live_bad if out["fails"].any() else sum(
        int(np.count_nonzero(~np.isfinite(out[name]))) for name in ("g_after_own", "g_final"))
    if bad:
        # finite parameters can still overflow inside the device model (a
        # relax_sigma of 1e160: inf - inf in the relaxation step), which with
        # ideal wires no circuit solve caught: NaN conductances, no error
        raise ParameterError(
            f"the device model produced {bad} non-finite conductance(s): DeviceParams values this extreme "
            "overflow double precision in the switching or relaxation law (k_set, k_reset, relax_sigma, "
            "relax_fast, or relax_tau next to write_verify.cycle_time); bring them to physical magnitudes.")
    return out


def _run_interruptible(run, abort, counter, total, label=None):
    """Call ``run()``, a kernel that releases the GIL, in a worker thread, so
    that Ctrl-C reaches this (the main) thread at once: it sets ``abort[0]``,
    which the kernel reads before each device, waits for the kernel to stop
    there and re-raises the KeyboardInterrupt. With a ``label``, a progress
    bar follows ``counter.sum()`` out of ``total`` four times a second."""
    import threading

    import numba

    from ._progress import Progress

    failure = []
    finished = threading.Event()  # not Thread.join: an interrupted join can leave is_alive() stuck (3.11)
    threads = numba.get_num_threads()  # Numba's count is per thread: a new one starts at the pool size

    def target():
        try:
            numba.set_num_threads(threads)  # the caller's cap (numba.set_num_threads) holds here too
            run()
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="xbarsim-program", daemon=True)
    with Progress(total, label=label or "", enabled=label is not None) as bar:
        try:  # start() inside: a Ctrl-C landing just after it left the kernel running (a CI flake)
            thread.start()
            while not finished.wait(0.25):
                bar.update(int(counter.sum()) - bar.done)
        except KeyboardInterrupt:
            abort[0] = 1  # read by the kernel before each device, also its first
            while not finished.wait(0.05):
                if thread.ident is None and not thread.is_alive():
                    break  # interrupted before the thread started: nothing to wait for
            raise
        bar.update(int(counter.sum()) - bar.done)
        # a missed solve stops the kernel early and is raised after the bar
        bar.stopped = bool(failure) or bar.done < total
    if failure:
        raise failure[0]


def program(target_g, cfg: Optional[TransferConfig] = None, seed: int = 0, *, order=None,
            track: bool = False, progress: bool = False) -> ProgramResult:
    """Program an array to ``target_g`` by write-verify on its circuit.

    Parameters
    ----------
    target_g : array_like, shape (M, N)
        Target small-signal conductances, S, inside the device's
        physical range ``(g_lo, g_hi)``. The operating window ``[g_min,
        g_max]`` is where `transfer` maps weights; `program` also takes
        targets outside it (to study the device's whole range), so a target
        outside the window is not an error here.
    cfg : TransferConfig, optional
        Device, bias / read schemes, tolerance, wires, pulses. Default
        ``TransferConfig()`` (TIO2, V/2, grounded reads, 1 ohm wires).
        Its ``tile`` and mapping fields play no part: ``target_g`` is one
        physical array, of its own shape (`transfer` splits a layer into
        tiles of at most ``cfg.tile``).
    seed : int
        Seed of every random draw (stream ``(seed, 0, 0)``), an integer in
        [0, 2**64).
    order : Order, str or (M*N, 2) array, optional
        Overrides ``cfg.order``.
    track : bool
        Also read every earlier device through the crossbar after each
        device finishes (``drift_reads``; used by calibration). Those reads
        draw their read noise, and bring the devices' relaxation up to
        their time, from the same stream as the programming, so a tracked
        run is another realization than an untracked one at the same seed
        (the same law: relaxation composes exactly over any touch times).
    progress : bool
        Show a progress bar over the devices (stderr): a 64x64 array with
        1 ohm wires takes 30-50 s on 2 cores.

    Returns
    -------
    ProgramResult
        Every array field (M, N) (``drift_reads`` (M*N, M*N) with
        ``track``): the order, targets, pulses, conductances after the
        device's own write-verify and at the end, the verify reads,
        ``converged`` and the stuck codes.

    Raises
    ------
    ParameterError
        Before any programming: targets of the wrong shape, non-finite or
        outside ``(g_lo, g_hi)``; a bad order or seed; a solve_tol the
        array's solves cannot reach.
    MemoryLimitError
        Before any programming: the run does not fit in memory.
    ConvergenceError
        A circuit solve missed ``cfg.solve_tol`` within ``cfg.solve_maxiter``.

    Warns
    -----
    RuntimeWarning
        Write-verify left more than 5 % of the working devices outside the
        band, or verify reads "converged" most devices far from their
        targets (biased reads' sneak currents, or a large array's IR drop;
        the warning names the likely causes).

    Notes
    -----
    Follows the write-verify settings of the measured TiO2 arrays (Drolet et
    al., arXiv:2305.18495); see the module docstring for the circuit model.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> res = xs.program(np.full((4, 4), 300e-6), xs.TransferConfig(), seed=0)
    >>> res.g_final.shape
    (4, 4)
    """
    cfg = TransferConfig() if cfg is None else cfg
    res = program_quietly(target_g, cfg, seed, order=order, track=track, progress=progress)
    warn_unconverged([res.converged], [res.stuck_state], cfg, "programming", [res.target], [res.g_after_own])
    return res


def program_quietly(target_g, cfg=None, seed=0, *, order=None, track=False, progress=False):
    """`program` without its warning of unconverged devices: for callers
    that program many arrays and warn once for all of them
    (`xbarsim.train.Surrogate.fit`, which silenced the warnings with a
    process-wide filter, taking other threads' with them)."""
    cfg = TransferConfig() if cfg is None else cfg
    if not isinstance(cfg, TransferConfig):
        raise ParameterError(f"cfg must be an xbarsim.TransferConfig; got {type(cfg).__name__}.")
    track = _check_flag(track, "track")
    progress = _check_flag(progress, "progress")
    t = _check_target(target_g, cfg.device, track=track)
    s = _check_seed(seed)
    pairs = programming_order(t.shape, cfg.order if order is None else order)
    out = _program_batch(t[None], cfg, s, order_pairs=pairs, track=track, progress=progress)
    return _program_result(out, t, pairs, track)


UNCONVERGED_WARN = 0.05
"""Fraction of working devices left outside the band above which programming warns."""


def diff_read_noise_factor(targets, v_read=None, v0=None):
    """Read noise of a V/2-diff verify read over one device's, for devices
    at `targets` (M x N, siemens): the median over devices of
    `diff_read_noise_factors`."""
    return float(np.median(diff_read_noise_factors(targets, v_read, v0)))


def diff_read_noise_factors(targets, v_read=None, v0=None):
    """Per device, the relative read noise of a V/2-diff verify read over
    the relative noise of one device's read (`DeviceParams`, "Read noise"),
    with ideal wires (an estimate: devices programmed later are not yet at
    their targets).

    The read at ``V_read`` carries ``G f(V_read)`` and the half-selected
    ``G_k f(V_read / 2)`` of the other devices k of the sensed bit line
    (column), the background read ``G f(V_read / 2)`` and the same ``G_k
    f(V_read / 2)``, each current with its own relative noise; their
    difference is ``G (f(V_read) - f(V_read / 2))``. So the factor is
    ``sqrt(f(V)^2 + f(V/2)^2 + 2 sum_k (G_k / G)^2 f(V/2)^2) / (f(V) -
    f(V/2))``: ``sqrt(5 + 2 sum_k (G_k / G)^2)`` for linear devices (``f(v)
    = v``; `v0` None), somewhat less for sinh ones (``f(v) = v0 sinh(v /
    v0)``, which needs `v_read`)."""
    t = np.asarray(targets, dtype=float)
    others = np.sum(t * t, axis=0) - t * t
    if v0 is None:
        full, half = 1.0, 0.5
    else:
        full, half = math.sinh(v_read / v0), math.sinh(0.5 * v_read / v0)
    return np.sqrt(full * full + half * half * (1.0 + 2.0 * others / (t * t))) / (full - half)


BIASED_READS = (ReadScheme.HALF, ReadScheme.FLOATING)
"""Verify reads that carry the other devices' currents (V/2-diff subtracts
them): write-verify tunes the sum, which `warn_unconverged` checks for."""

BIASED_READ_WARN = 5.0
"""Bands from their targets beyond which converged devices count as tuned
by biased verify reads: V/2 and floating reads add sneak currents, so
write-verify leaves the devices below their targets; wire drops on the read
path err the other way, above."""


def off_target_counts(g_true, targets, converged, stuck_state, tolerance):
    """``(below, above, converged)``: of the converged working devices
    (``converged`` of them), how many sit more than `BIASED_READ_WARN` bands
    below and above their targets right after their own write-verify
    (``g_true``). Lists of arrays, one per tile; a target array broadcasts
    over a batch of transfers (`xbarsim.transfer_many`)."""
    below = above = conv = 0
    for g, t, c, st in zip(g_true, targets, converged, stuck_state):
        ok = c & (st == 0)
        conv += int(np.count_nonzero(ok))
        below += int(np.count_nonzero(ok & (g < t * (1.0 - BIASED_READ_WARN * tolerance))))
        above += int(np.count_nonzero(ok & (g > t * (1.0 + BIASED_READ_WARN * tolerance))))
    return below, above, conv


def ir_drop_estimate(shape, cfg):
    """Rough relative IR drop of a pulse on an array of ``shape``: the
    selected lines carry the half-selected devices' currents (about
    ``g_max V/2`` each) through their segments, a drop of about
    ``r g_max (M^2 + N^2) / 4`` of the pulse. Only decides whether
    `warn_unconverged` names IR drop as a cause (it was named on any
    resistive wire, also 1e-12 ohm), through `ir_drop_steps` for devices
    left unconverged and against the band for devices that converged off
    target."""
    M, N = shape
    return max(cfg.r_wl, cfg.r_bl) * cfg.device.g_max * (M * M + N * N) / 4.0


def ir_drop_steps(shape, cfg):
    """Roughly how many steps of the write-verify ramp the IR drop of its
    top pulse (`ir_drop_estimate`) costs: a device the drop keeps under its
    switching voltage waits that many more pulses. Below one step the
    ramp's own granularity hides the drop, so an unconverged device is not
    blamed on it: it was, whenever the drop exceeded the band (a 0.1 % band
    on a 4 x 4 array on 1 ohm wires, a drop of 0.4 % of a pulse: 0.4 of a
    step), and "lower-resistance wires" came first among the remedies,
    where ideal wires converge no more devices (found by review)."""
    wv = cfg.write_verify
    return ir_drop_estimate(shape, cfg) * max(wv.ramp_tops()) / wv.v_step


def warn_unconverged(converged, stuck_state, cfg, what, targets=None, g_true=None, off=None):
    """Warn when write-verify left more than `UNCONVERGED_WARN` of the
    working devices outside the band: results that looked complete held
    half their devices unconverged under V/2 verify reads, and a quarter on
    64x64 arrays on 1 ohm wires, without a word.
    ``converged`` / ``stuck_state``: lists of arrays of one shape each.
    ``targets``, where the caller has them: the targets (a list like
    ``converged``), to name targets outside the operating window as a
    cause. ``g_true`` with them (the conductances right after each device's
    own write-verify), or ``off`` (`off_target_counts`, for a caller that
    counted as it went): then verify reads that "converged" more than half
    the devices far from their targets are warned of too: V/2 and floating
    reads' sneak currents (all converged at -71 %, without a word), and the
    IR drop and sneak paths of large tiles on resistive wires (a 10 x 100
    layer in 64 x 64 tiles on 1 ohm wires: 78-92 % of the converged devices
    more than 5 % above their targets, the MVM 62 % off, without a word).
    """
    per_array = [None] * len(converged) if targets is None else targets
    counts = [unconverged_counts(c, st, cfg.device, t) for c, st, t in zip(converged, stuck_state, per_array)]
    working, missed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    outside = None if targets is None else sum(c[2] for c in counts)
    shape = max((c.shape[-2:] for c in converged), key=lambda sh: sh[0] * sh[1])
    if off is None and g_true is not None and not (working and missed > UNCONVERGED_WARN * working):
        off = off_target_counts(g_true, targets, converged, stuck_state, cfg.tolerance)
    warn_unconverged_counts(working, missed, outside, shape, cfg, what, off)


def unconverged_counts(converged, stuck_state, device, targets=None):
    """``(working, missed, outside)`` of one array or stack of arrays:
    working devices, those of them write-verify left outside the band, and
    those of these whose targets (broadcast against them) lie outside
    ``device``'s operating window (None without ``targets``). Shared by
    `warn_unconverged` and `xbarsim.transfer.ConvergenceTally`."""
    working = stuck_state == 0
    missed = ~converged & working
    outside = None
    if targets is not None:
        outside = int(np.count_nonzero(missed & ((targets < device.g_min) | (targets > device.g_max))))
    return int(np.count_nonzero(working)), int(np.count_nonzero(missed)), outside


def warn_unconverged_counts(working, missed, outside, shape, cfg, what, off=None):
    """`warn_unconverged` from counts: ``working`` devices, ``missed`` of
    them unconverged, ``outside`` of those with targets outside the
    operating window (None: not known), on arrays of at most ``shape``;
    ``off`` as there. For callers that count as they go, in constant
    memory (`xbarsim.transfer.ConvergenceTally`)."""
    from ._warn import warn

    # V/2-diff subtracts the half-selected currents: not biased (it was
    # blamed, and grounded reads offered as the fix)
    biased = cfg.read_scheme in BIASED_READS

    def grounded_reads(why=""):
        return (f"grounded verify reads (read_scheme='grounded'; `xbarsim program --read-scheme grounded`; "
                f"this run's: '{cfg.read_scheme.value}'{why})")

    if working and missed > UNCONVERGED_WARN * working:
        wv = cfg.write_verify
        # only the remedies this configuration has not taken: the hint named
        # grounded reads to runs that used them, and tiles
        # to xs.program, which has none
        # and only the causes this run has: IR drop and sneak currents were
        # blamed on 0 ohm wires with grounded reads, where a 0.1 % band was
        # the cause
        # never past the budget's limit, which WriteVerify refuses (advised at
        # 600,000 pulses: 1,200,000)
        more = min(max(100, 2 * wv.max_pulses), MAX_PULSES_LIMIT)
        remedies = [] if more <= wv.max_pulses else [
            f"a larger budget (WriteVerify(max_pulses={more}); `xbarsim program --max-pulses {more}`)"]
        causes = []
        default_budget = WriteVerify().max_pulses
        if wv.max_pulses < default_budget:
            causes.append(f"a {wv.max_pulses}-pulse budget, below the default {default_budget}")
        if cfg.tolerance < MEASURED_TOLERANCE:
            causes.append(f"a {100 * cfg.tolerance:g} % band is narrower than the measured 1 %: a pulse near "
                          "threshold moves a device by more than that, so write-verify steps over it and tries again")
            remedies.append("a wider band (tolerance=0.01; `xbarsim program --tolerance 0.01`)")
        if outside is not None and outside > UNCONVERGED_WARN * working:
            # 6 uS targets on 1 ohm wires were blamed on IR drop
            dev = cfg.device
            causes.append(f"{outside} of the unconverged devices' targets lie outside the operating window "
                          f"({dev.g_min:g} to {dev.g_max:g} S), where the ramp needs more pulses")
        outside = outside or 0
        # and only where the devices inside the window would have drawn the
        # warning alone: 6 uS targets on an 8 x 8 array were
        if ir_drop_steps(shape, cfg) > 1.0 and missed - outside > UNCONVERGED_WARN * working:
            causes.append("IR drop leaves the ramp short of the voltage a device needs, more so on larger arrays")
            # first, and naming the wires: a larger budget, offered first
            # alone, cannot raise the ramp's top voltage (1 kohm wires: 62 of
            # 64 unconverged at 40 pulses and at 100), and `--size` cannot go
            # with --targets
            remedies[:0] = (["wires of lower resistance (r_wl, r_bl; `xbarsim program --r-wire`)",
                             "smaller arrays (`xbarsim program --size`, or --targets of fewer rows and columns)"]
                            if what == "programming" else ["wires of lower resistance (r_wl, r_bl)", "smaller tiles"])
        if biased:
            # first: a larger budget lands these reads in the band, not the
            # conductances (V/2 reads at 100 pulses: all "converged", the
            # median true error 94 %)
            causes.append(f"sneak currents bias {cfg.read_scheme.value} verify reads")
            remedies.insert(0, grounded_reads("; with its biased reads, a larger budget lands the reads in the "
                                              "band, not the conductances"))
        why = "; ".join(causes) if causes else "the ramp ran out of pulses before the read entered the band"
        more = f" More converge with {'; '.join(remedies)}." if remedies else ""
        warn(f"{what} left {missed} of {working} working devices ({100 * missed / working:.1f} %) outside the "
             f"{100 * cfg.tolerance:g} % band within the {wv.max_pulses}-pulse budget (.converged says which). "
             f"Likely causes: {why}.{more}", RuntimeWarning)
        # and on: the devices that did converge may sit far from their targets
        # too (64 x 64 on 1 ohm wires: 25.7 % unconverged, and 98.8 % of the
        # rest more than 5 % above target, which this warning alone hid;
        # found by review), where they are most of the working devices
        if off is None or not off[2] > 0.5 * working:
            return
    if off is None or not off[2]:
        return
    below, above, conv = off
    band = f"{100 * BIASED_READ_WARN * cfg.tolerance:g} %"
    head = (f"{what}: {conv} of {working} working devices converged by their {cfg.read_scheme.value} verify "
            "reads, but ")
    own_reads = (f"The devices themselves are read with {grounded_reads()} or V/2-diff reads "
                 "(read_scheme='V/2-diff'; `xbarsim program --read-scheme V/2-diff`).")
    if biased and below > 0.5 * conv:
        warn(f"{head}{below} of them ({100 * below / conv:.0f} %) sit more than {band} below their targets: "
             f"sneak currents through the other devices add to these reads, and write-verify tuned the sum. "
             f"{own_reads}", RuntimeWarning)
    elif below + above > 0.5 * conv:
        M, N = shape
        head += (f"{below + above} of them ({100 * (below + above) / conv:.0f} %) sit more than {band} from their "
                 f"targets ({above} above, {below} below) right after their own write-verify")
        little_drop = ir_drop_estimate(shape, cfg) <= cfg.tolerance
        if biased and little_drop:
            warn(f"{head}: sneak currents through the other devices add to these reads, so write-verify tuned what "
                 f"the circuit shows, not the devices. {own_reads}", RuntimeWarning)
            return
        if little_drop and cfg.device.read_noise > 0:
            # ideal (or nearly ideal) wires: not the IR drop, which it was blamed on at 0 ohm
            warn(f"{head}: each read carries noise (read_noise = {cfg.device.read_noise:g} of the current), and a "
                 f"{100 * cfg.tolerance:g} % band near or below it lets write-verify stop on a read that landed in "
                 "the band by chance. A wider band (tolerance=; `xbarsim program --tolerance`) lands the devices "
                 "themselves in it.", RuntimeWarning)
            return
        smaller = "smaller arrays (`xbarsim program --size`)" if what == "programming" else \
            "smaller tiles (TransferConfig(tile=...))"
        warn(f"{head}: the reads go "
             f"through the {M} x {N} crossbar (r_wl = {cfg.r_wl:g}, r_bl = {cfg.r_bl:g} ohm), whose IR drop they "
             "see, so write-verify tuned what the circuit shows, not the devices, and an MVM through them "
             f"inherits the error. The devices land nearer their targets on {smaller} or wires of "
             "lower resistance.", RuntimeWarning)


def _program_result(out, target, pairs, track=False):
    """`ProgramResult` of the single transfer in ``out`` (from `_program_batch`)."""
    M, N = target.shape
    order_index = np.empty((M, N), dtype=np.int64)
    order_index[pairs[:, 0], pairs[:, 1]] = np.arange(M * N)
    return ProgramResult(
        order_index=order_index,
        target=target.copy(),
        pulses=out["pulses"][0],
        g_after_own=out["g_after_own"][0],
        g_final=out["g_final"][0],
        read_after_own=out["read_after_own"][0],
        read_final=out["read_final"][0],
        converged=out["converged"][0].astype(bool),
        stuck=out["stuck"][0] != 0,
        stuck_state=out["stuck"][0],
        solver_failures=int(out["fails"][0]),
        drift_reads=out["track"][0] if track else None,
    )
