"""Device model of a TiO2 passive-crossbar memristor.

`DeviceParams` is everything a device does in xbarsim: its read I-V, how a
programming pulse changes it, its noise, relaxation and failures. The
calibrated preset for the measured arrays is ``xbarsim.presets.TIO2``.

Model
-----
State
    The small-signal conductance ``G`` (siemens, at 0 V), bounded to the
    physical range ``[g_lo, g_hi]``. The operating window used for weights
    is ``[g_min, g_max]`` = 100-500 uS (2-10 kOhm).
Read I-V
    ``I = G V0 sinh(V / V0)`` (docs/CIRCUIT.md); ``v0 = None`` is linear.
Switching, per pulse of ``V`` volts across the cell and width ``tw``
    ``dG = k exp((|V| - V_th) / s) * room * (tw / tw_ref) * c2c``, with
    ``k = k_set, V_th = v_set, room = (g_hi - G)/(g_hi - g_lo)`` for
    ``V > 0`` and ``k = -k_reset, V_th = v_reset, room = (G - g_lo)/(g_hi -
    g_lo)`` for ``V < 0``. The e-folding voltage ``s`` is ``v_slope`` above
    the threshold and ``v_sub`` below it (the preset's 0.12 V is twice its
    0.06 V ``v_slope``: below the threshold the rate falls off more gently
    per volt, but over the whole threshold voltage; there the exponential
    is shifted and rescaled to be exactly 0 at 0 V and 1 at threshold):
    strongly sub-linear under threshold, so a half-selected cell (about
    ``Vp/2``) moves a little but really. ``v_sub = 0`` is the limit of a
    hard threshold: nothing switches below it, so there is no disturb
    (`DeviceParams.ideal`). ``c2c`` is a mean-one lognormal factor of log-std ``c2c``
    (cycle-to-cycle variation), drawn per cell and pulse, except where the
    mean change is under 1e-9 S per pulse (an unselected cell at a
    wire-drop voltage of a few mV): such a cell moves by its mean only,
    which leaves out at most ~0.1 uS of spread over 1e5 pulses
    (``_G_MEAN_ONLY`` in kernels/programming.py). The state is then
    clipped to ``[g_lo, g_hi]``, and well above threshold the clip, not the
    law, sets the outcome: with the preset (0.06 V ``v_slope``, a factor
    1.4 per 0.02 V step of the ramp) the mean change of one pulse exceeds
    the room left from mid-window (300 uS) from about +1.45 V (set) and
    -1.31 V (reset); a 1.5 V set pulse from 100 uS lands at ``g_hi`` for
    99.8 % of devices, a -1.5 V reset from 500 uS at ``g_lo`` for all (no
    cycle-to-cycle spread there; a reset ramp from -1.1 V gets to -1.31 V
    in 11 steps).
Relaxation
    Two parts, applied to a device whenever it is next touched (read,
    pulsed or half-selected, or at the end), over the elapsed time, as a
    geometric Brownian motion in ``log G``: a slow part with drift (over
    ``dt`` seconds ``G *= exp((relax_drift - relax_sigma^2/2) dt +
    relax_sigma sqrt(dt) xi)``, so ``E[G]`` changes by ``exp(relax_drift
    dt)``) and a post-programming part of the same form in the clock ``1 -
    exp(-(t - t_own)/relax_tau)`` since the device's last own pulse: in all
    a change of ``E[G]`` by ``exp(relax_fast_mean)`` and log-std ``relax_fast``,
    most of it within a few ``relax_tau``. Increments of a geometric
    Brownian motion compose exactly, so touching a device every cycle or
    once after many cycles gives the same law.
Read noise
    Each read of a device carries a relative Gaussian current error
    ``read_noise`` (independent per read and per device). A bit line's
    sensed current, in a verify read as in an MVM, carries the noise of
    every device on it: ``read_noise * sqrt(sum I_i^2)``.
Failures
    ``p_stuck_lrs`` of the devices are stuck near LRS (``G ~ N(573, 99)
    uS``, clipped to ``[g_lo, g_hi]``), ``p_stuck_hrs`` stuck in HRS (``G ~
    U(10, 100) uS``, the published figure; the measured maps'
    high-resistance failures, 1e5-3e6 ohm, are lower: 0.3-10 uS); stuck
    devices do not switch or relax. The others start uniform in
    ``[g_init_lo, g_init_hi]`` (arrays are reset toward HRS before a
    programming run).

What the measured neighbour drift is attributed to
--------------------------------------------------
The data (``xbarsim/data/tio2``) give, per device, ``delta = (read after k
later devices were programmed) - (its last verify read)``. Its spread at
``k = 1`` and its growth with ``k`` have four sources in this model:

* **read noise**: both ends of ``delta`` are single noisy reads, so it adds
  a floor ``sqrt(2) read_noise G`` to the spread at every ``k``, with no
  mean. Together with the switching granularity it also sets the
  tuning-imprecision law and the programming offset (where inside the 1 %
  band write-verify stops).
* **relaxation**: the post-programming part gives most of the spread of
  the first events (std ``relax_fast`` G, approached with the time
  constant ``relax_tau``: 89 cycles of 1 ms, about five events of 17
  cycles, so mostly within the first 15-20 events; its mean ``relax_fast_mean`` is 0 in
  the preset: the measured mean grows about linearly over the first
  events, with no early step); the slow random walk adds a variance growing
  linearly in ``k`` (one event lasts its device's first verify read and
  pulse-and-verify cycles, 17 on average over all devices: 16 pulses) and, with ``relax_drift < 0``, the steady
  downward mean of the later events.
* **disturb**: under V/2 column-major programming, a device is half-selected
  by every later device of its column (bit line shared) and by the device
  of its row in every later column (word line shared); each of those
  pulses moves it by `switch_rate` at about ``Vp/2``, up under the set
  pulses that dominate ramps from the initial state. With the preset,
  disturb of working neighbours is small in arrays without stuck devices
  (on ideal wires +0.14 / +0.70 / +1.02 uS mean and 0.25 / 1.05 / 1.39 uS
  std after 1 / 10 / 30 events; 300 arrays with relaxation and read noise
  off) and several times larger around stuck devices (1.7 / 4.0 / 4.9 uS std at
  k = 1 / 10 / 30 with the preset's failures, the attribution below): their write-verify ramps for the whole pulse budget
  (`WriteVerify.max_pulses`, 40 pulses of 0.02 V from +-1.1 V, so up to
  +-1.88 V; the limits 2.1 V and -2.4 V would take 51 and 66 pulses), and
  half-selected neighbours then see up to about 0.94 V, where the
  sub-threshold rate is already a quarter of its value at threshold. That
  is why the pulse budget matters: it bounds the damage a failed device
  does to its lines.
* **the reads themselves**: on resistive wires the devices programmed after
  a device, up from the initial state, add IR drop to the lines they share
  with it and lower its later reads, with no change of its conductance
  (-0.18 / -0.70 / -0.87 uS mean, 0.21 / 0.65 / 0.77 uS std at k = 1 / 10 /
  30 on 1 ohm wires, with everything else that moves a device off; 0 on
  ideal wires). Until 2026-12-06 this part was booked as disturb, whose own
  mean is upward (found by review).

With the preset, at k = 1 / 10 / 30 events (`xbarsim.calibrate.attribution`,
``xbarsim calibrate --attribution``: 1000 simulated 8x8 arrays, V/2, 1 ohm
wires, parts of the model switched off; changes of 40 uS or more left out,
as in the measured table): the std is 5.0 / 11.5 / 13.5 uS (measured 6.7 /
12.1 / 18.5 uS); disturb alone gives 1.7 / 4.0 / 4.9 uS of it, read noise
(0.1 %) almost nothing, relaxation without disturb 5.1 / 11.4 / 13.3 uS.
The mean (-0.42 / -3.1 / -7.6 uS, measured
-0.37 / -4.1 / -7.7 uS) is relaxation (-0.49 / -3.8 / -9.0 uS without
disturb); disturb with the reads' own part moves it by -0.1 / -0.4 / -0.4
uS, the reads alone by -0.18 / -0.70 / -0.87 uS. The "without
disturb" run is not a clean subtraction: ``v_sub`` near 0 also stops the
first pulses of a device's own ramp, which 1 ohm of wire puts a few mV under
threshold, so it takes 17.4 pulses per device against 15.7 and relaxes
about 11 % longer per programming event, deepening its mean, and it loses
disturb's upward part (on ideal wires, with matching pulse counts, -7.84
against -6.84 uS at k = 30 for the whole model).

Assumed, not measured: the bias scheme of the measured arrays (the paper
does not state it; calibration assumes V/2), the read nonlinearity ``v0``
(no I-V data in the set; 0.45 V is a typical TiO2 value), the initial state
(``g_init_*``), the pulse-to-pulse cycle time (``cycle_time`` of
`xbarsim.programming.WriteVerify`, which converts relaxation per second into
relaxation per programming event), the pulse budget per device
(``WriteVerify.max_pulses`` = 40: the data give none; 40 pulses ramp from
+-1.1 V to +-1.88 V, so the measured runs' limits +2.1 V and -2.4 V are not
reached unless it is raised, to 51 for sets and 66 for resets) and the physical
range ``g_lo``, ``g_hi``.
`xbarsim calibrate --fit` (`xbarsim.calibrate.fit`) fits ``read_noise`` and the relaxation parameters
to the data (Nelder-Mead); ``relax_fast_mean`` is held at 0, where a grid
over it, ``relax_drift``, ``read_noise`` and ``relax_tau`` put the early
drift means inside the band (a negative value gives the early step the
data do not show). The switching law (``k_set``, ``k_reset``, ``v_slope``,
``v_sub``, ``c2c``) was chosen by hand so that write-verify converges in
about 15 pulses and the tuning imprecision is right at the bottom of the
window. Not reproduced (`xbarsim.calibrate`, 1000 arrays): the programming
offset mean (-0.589 %; simulated about -0.13 %): write-verify with a ramped
amplitude enters the 1 % band with a step that is a fixed fraction of the
distance left, larger than the band, so it stops anywhere inside it; the
fall of the programming spread toward 500 uS (the published tuning law and
offset std in quadrature fall from 0.69 % to 0.53 %; simulated flat, about
0.56 %: within +-30 % everywhere, the slope not reproduced); and the drift
mean over k = 5-15 events, 0.65-0.80 x of the measured one (below 0.70 x,
a miss, at k = 12-14, where the measured curve dips).
"""

from __future__ import annotations

import decimal
import math
import numbers
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from .exceptions import ParameterError
from ._docfields import document_fields

__all__ = ["DeviceParams"]


def real_scalar(value):
    """``value`` as a Python float if it is one real number (int, float, a
    NumPy integer or floating scalar, or a 0-d NumPy array or torch tensor
    of such a dtype), else None. Booleans are not numbers here (``True``
    would be read as 1 volt, siemens, ...), and neither are strings; an int
    too large for a float is None too."""
    if getattr(value, "is_meta", False):  # a torch tensor of shape only: .item() raised NotImplementedError
        return None
    if getattr(value, "ndim", None) == 0 and hasattr(value, "detach") and hasattr(value, "item"):
        # a 0-d torch tensor (torch.tensor(0.01)), as arrays take tensors: its Python number, checked
        # below like any (a bool or complex one gives a bool or complex, refused there)
        value = value.detach().cpu().item()
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # its NumPy scalar, checked below
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating,
                                                                   numbers.Real, decimal.Decimal)):
        return None  # (Fraction and Decimal are numbers: float() took them)
    try:
        return float(value)
    except (OverflowError, ValueError):  # ValueError: Decimal('sNaN')
        return None


def zero_d_item(value):
    """A 0-d NumPy array's or torch tensor's own scalar (an integer one
    stays exact: 2**53 + 1); anything else as it is. A meta tensor has no
    value and stays as it is."""
    if getattr(value, "ndim", None) == 0 and not getattr(value, "is_meta", False):
        return value.detach().cpu().item() if hasattr(value, "detach") else value[()]
    return value


def whole_number(value, name, low=1, reason=None):
    """``value`` as a Python int ``>= low``: an integer (exactly, also beyond
    a float's range), or a whole finite real number (3.0, a 0-d array or
    tensor), else `ParameterError` before any work. Bools and strings are
    refused. ``name`` names the argument (a command-line option as
    ``--arrays``), ``reason`` says why it needs ``low``."""
    k = None
    value = zero_d_item(value)
    if isinstance(value, (bool, np.bool_, str, bytes)):
        pass
    elif isinstance(value, (int, np.integer)):
        k = int(value)
    else:
        r = real_scalar(value)
        if r is not None and math.isfinite(r) and r == round(r):
            k = int(r)
    if k is None or k < low:
        sep = " " if name.startswith("--") else " = "
        raise ParameterError(f"{name}{sep}{value!r}: {reason + '; give' if reason else 'give'} a whole number "
                             f">= {low}.")
    return k


C2C_MAX = 3.0
"""Largest cycle-to-cycle log-std `DeviceParams` takes (a pulse's median
change is then 1 % of its mean; the preset's c2c is 0.3)."""

RELAX_FAST_MEAN_MAX = 1.0
"""Largest |relax_fast_mean| `DeviceParams` takes: the post-programming
relaxation scales a device's mean conductance by ``exp(relax_fast_mean)``
(x 0.37 to x 2.7 at the bounds)."""

RELAXATION_FIELDS = ("relax_sigma", "relax_drift", "relax_fast", "relax_fast_mean")
"""The `DeviceParams` fields of the relaxation after programming; all 0:
none (`DeviceParams.ideal`, the calibration's "no relaxation" rows). The
kernel applies the fast relaxation's mean whenever it is non-zero, so a
list that left it out kept it."""

SCALE_MIN = {"v_slope": 1e-9, "v_sub": 1e-9, "tw_ref": 1e-15, "relax_tau": 1e-15}
"""Smallest voltage and time scales `DeviceParams` takes (a nanovolt, a
femtosecond; ``v_sub`` may also be 0, a hard threshold): below them the
rates they divide overflow (a 5e-324 s ``tw_ref`` pinned every device at
``g_hi``, with the unconverged-devices warning as the only sign).
The switching change per actual pulse, ``k * pulse_width /
tw_ref``, is bounded by `TransferConfig`, which knows the pulse width."""


SINH_ARG_MAX = 700.0
"""Largest |V| / v0 of a pulse or read: the sinh device current overflows double precision near 710."""

_UNITS = {"g_": "S", "v_": "V", "v0": "V", "k_set": "S per pulse of tw_ref", "k_reset": "S per pulse of tw_ref",
          "tw_ref": "s",
          "relax_tau": "s", "relax_sigma": "per sqrt(s)", "relax_drift": "per s"}


def _preset_hint(name):
    """`` (the preset's is <value> <unit>)`` for a `DeviceParams` field: the
    refusals named no value to start from."""
    default = getattr(DeviceParams, name, None)
    if default is None:
        return " (None: linear devices)" if name == "v0" else ""
    unit = _unit(name)
    return f" (the preset's is {default:g}{' ' + unit if unit else ''})"


def _unit(name):
    """The unit of a `DeviceParams` field (`_UNITS`), or "" for a ratio."""
    return next((u for prefix, u in _UNITS.items()
                 if name == prefix or (prefix.endswith("_") and name.startswith(prefix))), "")


@document_fields
@dataclass(frozen=True)
class DeviceParams:
    """Parameters of the device model (see the module docstring).

    All fields are SI: siemens, volts, seconds. Construct with keywords and
    derive variants with `dataclasses.replace` or the helper methods.
    """

    g_min: float = 100e-6
    """Bottom of the operating window (HRS end), S."""
    g_max: float = 500e-6
    """Top of the operating window (LRS end), S."""
    g_lo: float = 5e-6
    """Lowest conductance a working device can reach, S."""
    g_hi: float = 1000e-6
    """Highest conductance a working device can reach, S."""
    v0: Optional[float] = 0.45
    """sinh read nonlinearity scale, V (``I = G V0 sinh(V/V0)``); None: linear."""
    v_set: float = 1.1
    """Set threshold, V (positive pulses)."""
    v_reset: float = 1.1
    """Reset threshold magnitude, V (negative pulses)."""
    k_set: float = 3e-6
    """Set conductance change at threshold, for a full room factor and tw_ref, S per pulse (a
    `TransferConfig` refuses more than g_hi - g_lo per pulse of its own width)."""
    k_reset: float = 30e-6
    """Reset conductance change at threshold, for a full room factor and tw_ref, S per pulse."""
    v_slope: float = 0.06
    """e-folding voltage of the switching rate above threshold, V; at least 1e-9."""
    v_sub: float = 0.12
    """e-folding voltage of the switching rate below threshold (disturb), V; 0: a hard
    threshold (no switching below it, no disturb)."""
    tw_ref: float = 1e-6
    """Reference pulse width of k_set / k_reset, s (rates scale linearly with width); at least 1e-15."""
    c2c: float = 0.3
    """Cycle-to-cycle log-std of the switching change (mean-one lognormal factor); at most `C2C_MAX`."""
    read_noise: float = 0.001
    """Relative standard deviation of one read of a device's current; below 1."""
    relax_sigma: float = 0.0474
    """Relaxation random walk, relative per sqrt(second)."""
    relax_drift: float = -0.06
    """Relaxation drift, relative per second (negative: decay)."""
    relax_fast: float = 0.0334
    """Post-programming relaxation: total log-std (about the relative std when small), reached within a few
    relax_tau after the last own pulse; at most 3."""
    relax_fast_mean: float = 0.0
    """Post-programming relaxation: log of the factor on the mean conductance (``E[G]`` scaled by
    ``exp(relax_fast_mean)``, about ``1 + relax_fast_mean`` when small; negative: decay); in [-1, 1]."""
    relax_tau: float = 0.089
    """Time constant of the post-programming relaxation, s; at least 1e-15."""
    p_stuck_lrs: float = 0.005
    """Probability that a device is stuck near LRS."""
    g_stuck_lrs_mean: float = 573e-6
    """Mean conductance of a device stuck near LRS, S."""
    g_stuck_lrs_std: float = 99e-6
    """Standard deviation of the conductance of a device stuck near LRS, S."""
    p_stuck_hrs: float = 0.005
    """Probability that a device is stuck in HRS."""
    g_stuck_hrs_lo: float = 10e-6
    """Lower bound of the (uniform) conductance of a device stuck in HRS, S."""
    g_stuck_hrs_hi: float = 100e-6
    """Upper bound of the (uniform) conductance of a device stuck in HRS, S."""
    g_init_lo: float = 50e-6
    """Lower bound of the (uniform) initial conductance of a working device, S."""
    g_init_hi: float = 100e-6
    """Upper bound of the (uniform) initial conductance of a working device, S."""

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name == "v0" and value is None:
                continue
            number = real_scalar(value)
            if number is None or not math.isfinite(number):
                linear = ("; for linear devices (the sinh law's limit as v0 grows) give v0=None"
                          if name == "v0" and number is not None and math.isinf(number) else "")
                raise ParameterError(f"DeviceParams.{name} = {value!r}; expected a finite number{_preset_hint(name)}"
                                     f"{linear}.")
            object.__setattr__(self, name, number)  # numpy scalars stored as float (JSON, pack)
        positive = ("g_min", "g_max", "g_lo", "g_hi", "v_set", "v_reset", "v_slope", "tw_ref", "relax_tau")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ParameterError(f"DeviceParams.{name} = {getattr(self, name)!r}; it must be > 0"
                                     f"{_preset_hint(name)}.")
        if self.v0 is not None and self.v0 < np.finfo(float).tiny:  # 1 / v0 overflows for a subnormal v0
            raise ParameterError(f"DeviceParams.v0 = {self.v0!r}; give a sinh scale > 0 V (a normal double, at "
                                 f"least {np.finfo(float).tiny:.4g} V; the preset's is 0.45 V), or None for linear devices.")
        for name in ("v_sub", "k_set", "k_reset", "c2c", "read_noise", "relax_sigma", "relax_fast", "g_stuck_lrs_std"):
            if getattr(self, name) < 0:
                raise ParameterError(f"DeviceParams.{name} = {getattr(self, name)!r}; it must be >= 0"
                                     f"{_preset_hint(name)}.")
        for name, low in SCALE_MIN.items():
            value = getattr(self, name)
            if value < low and not (name == "v_sub" and value == 0):
                why = ("0 is a hard threshold, and a scale this small is one already" if name == "v_sub" else
                       "below it the switching or relaxation rates it divides overflow")
                raise ParameterError(f"DeviceParams.{name} = {value!r}; at least {low:g} {_unit(name)}"
                                     f"{_preset_hint(name)}: {why}.")
        if self.relax_fast > C2C_MAX:
            raise ParameterError(f"DeviceParams.relax_fast = {self.relax_fast!r}; the post-programming relaxation's "
                                 f"log-std must be at most {C2C_MAX:g}. The preset's is 0.0334.")
        for name in ("p_stuck_lrs", "p_stuck_hrs"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"DeviceParams.{name} = {getattr(self, name)!r}; a probability in [0, 1]"
                                     f"{_preset_hint(name)}.")
        if self.p_stuck_lrs + self.p_stuck_hrs > 1:
            raise ParameterError(f"p_stuck_lrs + p_stuck_hrs = {self.p_stuck_lrs!r} + {self.p_stuck_hrs!r} exceeds 1; "
                                 "lower the failure probabilities (the preset's are 0.005 each).")
        # relative spreads beyond which the model means nothing: they ran, converged no device and
        # gave reads of -4e6 S, with converged=False as the only sign
        if self.read_noise >= 1:
            raise ParameterError(f"DeviceParams.read_noise = {self.read_noise!r}; the relative std of one read "
                                 "must be < 1 (at 1, one read in six comes out below 0 S). The preset's is 0.001.")
        if not abs(self.relax_fast_mean) <= RELAX_FAST_MEAN_MAX:
            # the kernel scales E[G] by exp(relax_fast_mean) (a log-mean; the
            # message called -1 "a conductance relaxed to 0": it is x 0.37)
            raise ParameterError(f"DeviceParams.relax_fast_mean = {self.relax_fast_mean!r}; the post-programming "
                                 "relaxation scales a device's mean conductance by exp(relax_fast_mean), which must "
                                 f"lie in [-{RELAX_FAST_MEAN_MAX:g}, {RELAX_FAST_MEAN_MAX:g}] (x 0.37 to x 2.7). The "
                                 "preset's is 0.")
        if self.c2c > C2C_MAX:
            raise ParameterError(f"DeviceParams.c2c = {self.c2c!r}; the cycle-to-cycle log-std must be at most "
                                 f"{C2C_MAX:g}: the median switching change is exp(-c2c^2 / 2) of its mean ("
                                 f"{100 * math.exp(-C2C_MAX ** 2 / 2):.2g} % of it at {C2C_MAX:g}). The preset's is 0.3.")
        if not (self.g_lo < self.g_min < self.g_max < self.g_hi):
            raise ParameterError(
                f"need g_lo < g_min < g_max < g_hi; got {self.g_lo}, {self.g_min}, {self.g_max}, "
                f"{self.g_hi} S. Put the operating window inside the device's physical range."
            )
        if not (self.g_lo <= self.g_init_lo <= self.g_init_hi <= self.g_hi):
            raise ParameterError(
                f"need g_lo <= g_init_lo <= g_init_hi <= g_hi for the initial state; got {self.g_lo:.3g}, "
                f"{self.g_init_lo:.3g}, {self.g_init_hi:.3g}, {self.g_hi:.3g} S (the preset's initial state is "
                f"{DeviceParams.g_init_lo:g} to {DeviceParams.g_init_hi:g} S). Move g_init_lo / g_init_hi inside "
                "the physical range.")
        if not (self.g_lo <= self.g_stuck_hrs_lo <= self.g_stuck_hrs_hi <= self.g_hi
                and self.g_lo <= self.g_stuck_lrs_mean <= self.g_hi):
            # outside it they came out of programming beyond the range that bounds every state, and
            # devices stuck open (0 S) left a floating line undetermined (a solver error mid-run)
            raise ParameterError(
                f"stuck devices sit in the physical range [g_lo, g_hi] = [{self.g_lo:.3g}, {self.g_hi:.3g}] S: need "
                f"g_lo <= g_stuck_hrs_lo <= g_stuck_hrs_hi <= g_hi and g_lo <= g_stuck_lrs_mean <= g_hi (got "
                f"{self.g_stuck_hrs_lo:.3g}, {self.g_stuck_hrs_hi:.3g} and {self.g_stuck_lrs_mean:.3g} S); widen "
                "g_lo / g_hi or move the stuck conductances.")
        if self.g_stuck_lrs_std > self.g_hi - self.g_lo:  # after the ordering checks: the span is then > 0
            raise ParameterError(f"DeviceParams.g_stuck_lrs_std = {self.g_stuck_lrs_std!r} S exceeds the device's "
                                 f"whole range g_hi - g_lo = {self.g_hi - self.g_lo:.3g} S; the preset's is "
                                 f"{DeviceParams.g_stuck_lrs_std:g} S.")

    # ------------------------------------------------------------------
    def read_current(self, g, v):
        """Device current, A, at ``v`` volts (CIRCUIT.md sinh law or linear).

        ``g`` finite and >= 0 (CIRCUIT.md), ``v`` finite, and for sinh
        devices ``|v| / v0`` at most `SINH_ARG_MAX` (700), past which the current overflows
        (`ParameterError` otherwise: a negative or NaN conductance gave a
        current, an overflow inf with NumPy's warning)."""
        from ._coerce import as_real_array, where_not_finite

        g = as_real_array(g, "g", "conductances")
        v = as_real_array(v, "v", "voltages")
        if not np.all(np.isfinite(g)) or np.any(g < 0):
            where = where_not_finite(g) if not np.all(np.isfinite(g)) else "holds a negative value"
            raise ParameterError(f"g {where}; conductances are finite and >= 0 S (CIRCUIT.md).")
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"v {where_not_finite(v)}; give finite voltages.")
        try:
            np.broadcast_shapes(g.shape, v.shape)
        except ValueError:  # NumPy's raw "operands could not be broadcast"
            raise ParameterError(f"g has shape {g.shape} and v {v.shape}, which do not broadcast together; give "
                                 "one voltage per conductance, or a scalar for either.") from None
        if self.v0 is not None and v.size and float(np.max(np.abs(v))) / self.v0 > SINH_ARG_MAX:
            raise ParameterError(f"|v| up to {float(np.max(np.abs(v))):.4g} V is past {SINH_ARG_MAX:g} v0 = "
                                 f"{SINH_ARG_MAX * self.v0:.4g} V, where the sinh current overflows double "
                                 "precision; give smaller voltages.")
        if self.v0 is None:
            return g * v
        return g * self.v0 * np.sinh(v / self.v0)

    def ideal(self, disturb=False):
        """This device without noise, relaxation or failures (tests, ideal limits).

        Without sub-threshold disturb too (a hard switching threshold,
        ``v_sub = 0``), unless ``disturb=True``: half-selected cells of a
        V/2 or V/3 pulse then stay exactly where they are while their share
        of the pulse is below the switching threshold, so with ideal wires a
        converged device ends inside its write-verify band unless a later
        pulse past twice the threshold (V/2; three times for V/3) switched
        it. The default budget of 40 pulses never gets there (its ramps stop
        at +-1.88 V; the set ramp's limit is 2.1 V); the reset ramp, from
        -1.1 V in 0.02 V steps to its -2.4 V limit, passes -2.2 V at its 57th
        pulse, so a budget of that size can.
        Disturb is deterministic physics, not noise; ``disturb=True`` keeps
        it to study it alone.
        """
        from .programming import _check_flag

        disturb = _check_flag(disturb, "disturb")  # disturb="no" kept the disturb
        return replace(self, c2c=0.0, read_noise=0.0, **dict.fromkeys(RELAXATION_FIELDS, 0.0),
                       p_stuck_lrs=0.0, p_stuck_hrs=0.0, v_sub=self.v_sub if disturb else 0.0)

    def linear(self):
        """This device with a linear read I-V (``v0 = None``)."""
        return replace(self, v0=None)

    def pack(self):
        """Parameter vector in the layout of ``kernels/noise.py`` (float64)."""
        from .kernels import noise as K

        dp = np.zeros(K.N_DEVICE_PARAMS)
        dp[K.P_G_LO] = self.g_lo
        dp[K.P_G_HI] = self.g_hi
        dp[K.P_V0] = 0.0 if self.v0 is None else self.v0
        dp[K.P_V0INV] = 0.0 if self.v0 is None else 1.0 / self.v0
        dp[K.P_VSET] = self.v_set
        dp[K.P_VRESET] = self.v_reset
        dp[K.P_KSET] = self.k_set
        dp[K.P_KRESET] = self.k_reset
        dp[K.P_VSLOPE] = self.v_slope
        dp[K.P_VSUB] = self.v_sub
        dp[K.P_TW_REF] = self.tw_ref
        dp[K.P_C2C] = self.c2c
        dp[K.P_READ_NOISE] = self.read_noise
        dp[K.P_RELAX_SIGMA] = self.relax_sigma
        dp[K.P_RELAX_DRIFT] = self.relax_drift
        dp[K.P_RELAX_FAST] = self.relax_fast
        dp[K.P_RELAX_TAU] = self.relax_tau
        dp[K.P_RELAX_FAST_MEAN] = self.relax_fast_mean
        dp[K.P_P_LRS] = self.p_stuck_lrs
        dp[K.P_LRS_MEAN] = self.g_stuck_lrs_mean
        dp[K.P_LRS_STD] = self.g_stuck_lrs_std
        dp[K.P_P_HRS] = self.p_stuck_hrs
        dp[K.P_HRS_LO] = self.g_stuck_hrs_lo
        dp[K.P_HRS_HI] = self.g_stuck_hrs_hi
        dp[K.P_INIT_LO] = self.g_init_lo
        dp[K.P_INIT_HI] = self.g_init_hi
        return dp
