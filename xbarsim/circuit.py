"""The passive crossbar circuit (docs/CIRCUIT.md) and its drives.

`Crossbar` holds what the array is (device conductances, wire resistances,
device nonlinearity); `Drive` holds what is attached to one end of every line
of one kind. `build_network` turns both into the per-layer arrays the
kernels work on, checking that the circuit has a unique solution first.

Layout used by the kernels
--------------------------
Each *layer* (word lines, bit lines) is stored line-major, so that walking
along a line is contiguous in memory: word-line data is ``(M, N)`` indexed
``[i, j]``; bit-line data is ``(N, M)`` indexed ``[j, i]`` (the transpose).
Nodes joined by an ideal (0 ohm) wire form one *group*, the unknown of the
line's tridiagonal system; ``gid[l, k]`` is the group of node ``k`` of line
``l``. A group holding an ideal (0 ohm) drive has a fixed voltage.
"""

from __future__ import annotations

import enum
import math
import weakref
from dataclasses import dataclass, field

import numpy as np

from ._coerce import where_not_finite
from ._repr import compact_repr
from .exceptions import CircuitError, ParameterError
from . import _memory
from ._docfields import document_fields

__all__ = ["Crossbar", "Drive", "read_drives", "pulse_drives", "verify_drives"]

FLOATING, RESISTIVE, IDEAL = 0, 1, 2
"""Terminal modes, as stored in `Layer.term_mode`."""


def _as_float_array(value, name):
    from ._coerce import as_real_array

    return as_real_array(value, name)


def _owned(arr, source):
    """`arr` (converted from the user's `source`) as an array the Crossbar
    owns, read-only: a copy when it still shares the caller's memory (a
    float64 input, a view, a torch tensor's buffer), so that changing the
    caller's array later cannot bypass the checks made here. An array a
    Crossbar already owns (`with_g` passes the wires on) is shared as is."""
    if _OWNED.get(id(arr)) is arr:
        return arr
    if arr is source or not arr.flags.owndata:
        arr = np.array(arr, dtype=np.float64, order="C")
    view = arr.view()
    view.flags.writeable = False
    _OWNED[id(view)] = view
    return view


_OWNED = weakref.WeakValueDictionary()
"""The read-only arrays Crossbars own, by id (`_owned`)."""


def kernel_array(arr):
    """``arr`` as the compiled kernels take it: for an array a Crossbar owns
    (a read-only view, `_owned`), its writable base, which no kernel writes
    to and which only the solver's internal `Network` holds besides; any
    read-only array as a writable copy (a caller's, or a contiguous
    broadcast: ``np.ascontiguousarray(np.broadcast_to(a, (1, n)))`` is still
    the read-only view); any other array as is.

    Numba compiles a separate specialization for read-only arrays: handing
    the kernels the Crossbar's read-only ``g`` on the fine level and
    writable arrays on the coarse levels and in Newton steps compiled
    ``factor_lines``, ``solve_lines``, ``kcl_residual``, ``restrict_coupling``,
    ``block_sum`` and ``transpose`` twice each, in every fresh Numba cache.
    """
    if _OWNED.get(id(arr)) is arr and isinstance(arr.base, np.ndarray):
        return arr.base
    if isinstance(arr, np.ndarray) and not arr.flags.writeable:
        return np.array(arr, order="C")  # a caller's read-only array, or a broadcast
    return arr


DYNAMIC_RANGE = 1e10
"""Largest ratio of resistances one solve takes between parts that meet at
the nodes of a line; beyond it the weaker part falls below what double
precision resolves next to the stronger one. Two cases break (measured on 8 x 8
and 16 x 16 arrays of 100-500 uS devices):

* a wire segment far more conductive than its line's terminal: the plain
  direct solve lost about 1e-16 x (terminal r / segment r), checked against
  a 40-digit solve: 2e-8 at 1e8 (1 ohm wires, 1e8 ohm terminals), 1.1e-5 at
  1e11, and 53 % at 1e15 (1e-15 ohm wires with 1 ohm terminals), with no sign
  of trouble. Refined and checked as it now is (`xbarsim._direct`), with
  the iterative methods asked for no less residual than double precision
  resolves, all three methods stay within 2e-12 of a 60-digit solve up to
  this limit (8 x 8, 1e8 and 1e10 ohm terminals on 1 ohm wires). A segment
  that small is numerically ideal: give 0, which merges its nodes exactly;
  a terminal that large is an open end: give ``floating=True``. An ideal
  (0 ohm) terminal pins the line exactly.
* a device far more conductive than a wire segment (1e300 S
  gave a negative sense current): a unit error, or a short.

Devices far *less* conductive than the wires are fine (1e-20 S devices on 1
ohm wires solve to 1e-15; a floating line held only by 1e-12 S devices on
1 ohm wires to 1e-16 V, down to `FLOATING_TIE`), and ideal (0 ohm) parts are
exact.

Each line is judged by its own parts, so lines of very different wires
share one array. The accuracy above is relative to the circuit's largest
currents. A line behind a weak terminal among strongly driven ones carries
a current far below its devices' own: each device's current is the
difference of node voltages known to ulps of the drive, and they cancel in
the line's small sum. Measured against a 40-digit solve on 6 x 6 arrays of
1e-4 S devices, that line's device currents were off by up to 1.4e-9 of
their own size behind 1e10 ohm terminals on 1 ohm wires (one line ending in
0 ohm), 1.2e-9 behind 1e13 ohm terminals on 1e4 ohm wires with one line on
1e-6 ohm wire ending in 1 ohm, and 6e-9 at the per-line limit (1e14 ohm
terminals on 1e4 ohm wires, one line of 1e-8 ohm). Every current stayed
within 5e-15 of the largest."""


R_TINY = 1e-100
"""Smallest non-zero wire or terminal resistance, ohms (0 is ideal, exact)."""

G_TINY = 1e-100
"""Smallest largest device conductance, siemens, of an array that conducts
at all (all zero, open, is exact). Below it the currents' squares, on which
the solvers' convergence tests rest, can underflow double precision (the
bound is conservative: on 1 ohm wires 1e-300 S devices solved, whose
convergence tests the wires' currents carried): 1e-170 S
devices on 1e165 ohm wires (the circuit of 1e-4 S on 0.1 ohm, every
conductance scaled by 1e-166) came back after 0 iterations as converged,
most bit lines at 0 A (found by review)."""

G_SUSPECT = 1.0
"""Device conductances above this many siemens (a device of under 1 ohm)
draw a warning that ``g`` is in siemens: resistances in ohms (2e3-1e4 for
2-10 kOhm devices) or conductances in microsiemens passed as ``g`` solved
without a word."""


def _min_positive(r):
    """Smallest resistance above 0 (inf when none), without copying `r`."""
    return float(np.min(r, where=r > 0, initial=np.inf)) if r.size else np.inf


def largest_drive(ends, batch):
    """Largest |drive voltage| per batch column (volts), (B,), over the
    driven (not floating) lines of `ends` (end name -> `_EndSpec` or None)."""
    out = np.zeros(batch)
    for spec in ends.values():
        if spec is not None:
            driven = spec.mode != FLOATING
            if driven.any():
                out = np.maximum(out, np.max(np.abs(spec.v[driven]), axis=0))
    return out


def driven_ends(ends, shape):
    """End name -> (M,) / (N,) bool: the lines driven at that end (False where
    it floats), for `ends` (end name -> `_EndSpec` or None) of an (M, N) array."""
    return {name: _driven_lines(ends, (name,), shape[0] if name in ("left", "right") else shape[1])
            for name in ("left", "right", "top", "bottom")}


def _driven_lines(ends, names, n_lines):
    """(n_lines,) bool: lines with a driven (not floating) end among the ends
    `names` of one layer."""
    driven = np.zeros(n_lines, dtype=bool)
    for name in names:
        if ends[name] is not None:
            driven |= ends[name].mode != FLOATING
    return driven


def _check_drive_range(shape, specs, batch, gmax):
    """Drive voltages the solvers can scale and whose currents stay finite.

    The iterative solvers work at unit drive (the circuit is linear in its
    drives) and scale back; the largest drive of a column must then have an
    exact reciprocal, which a subnormal voltage (below about 2.2e-308 V) does
    not. And where a node voltage is bounded by the drives (maximum
    principle), a current is bounded by ``2 |V| G`` per branch and ``M + N``
    branches per line: beyond double precision's range the solve would end
    in inf (it raised a "this is a bug" ConvergenceError after computing).
    ``gmax``: the largest conductance of any part (`_check_dynamic_range`'s)."""
    M, N = shape
    vmax = largest_drive(specs, batch)
    tiny = np.finfo(float).tiny
    sub = np.nonzero((vmax > 0) & (vmax < tiny))[0]
    if sub.size:
        raise ParameterError(
            f"the largest drive voltage of batch column {int(sub[0])} is {vmax[sub[0]]:.3g} V, a subnormal double "
            f"(below {tiny:.3g}), which the solvers cannot scale to unit drive. Give 0 V for an undriven "
            "column, or drives of at least 1e-300 V (the circuit is linear in its drives for linear devices: "
            "solve at a larger voltage and scale the result)."
        )
    with np.errstate(over="ignore"):
        i_bound = 2.0 * float(np.max(vmax, initial=0.0)) * gmax * (M + N)
    if not i_bound < np.finfo(float).max / 16:
        raise ParameterError(
            f"drives up to {float(np.max(vmax)):.3g} V on conductances up to {gmax:.3g} S could carry currents "
            f"beyond double precision's range (~1e308 A) in a {M} x {N} array. Scale the drives down (the "
            "circuit is linear in its drives for linear devices) or check the units of the voltages and "
            "conductances."
        )


def _check_dynamic_range(g, wires, terminals=None):
    """Refuse (`ParameterError`) a circuit whose resistances span more than
    `DYNAMIC_RANGE` where it matters: ``wires`` and ``terminals`` map a
    name to a resistance array in ohms (0 = ideal, ignored); ``terminals``
    is ``{"wl": {...}, "bl": {...}}`` by layer, matched with the layer's
    wire (``wires`` keys ``"r_wl"``, ``"r_bl"``). Returns the largest
    conductance of any part (device, wire segment, terminal), S."""
    gmax = float(np.max(g))
    if 0.0 < gmax < G_TINY:
        raise ParameterError(
            f"the largest device conductance is {gmax:.3g} S; below {G_TINY:.0e} S the solvers' convergence tests, "
            "on squared currents, can underflow double precision (1e-170 S devices on 1e165 ohm wires came back "
            "as converged, 100 % off; the bound is conservative). Give 0 for open devices. A circuit's node "
            "voltages do not change when every conductance (devices, and wires and terminals as 1 / r) is "
            "multiplied by one factor: solve with them scaled up (conductances x k, resistances / k) and divide "
            "the currents by k.")
    parts = dict(wires)
    for by_name in (terminals or {}).values():
        parts.update(by_name)
    rmin = {name: _min_positive(r) for name, r in parts.items()}
    for name, r in parts.items():
        if rmin[name] < R_TINY:
            raise ParameterError(
                f"{name} has a resistance of {rmin[name]:.3g} ohms; below {R_TINY:.0e} ohms the squared "
                "conductances overflow the iterative solvers. Give 0 for an ideal wire or terminal: it is "
                "handled exactly."
            )
    # Parts are compared where they meet, on a line. A check of the array's
    # extremes is enough when it passes; when it fails, the lines are
    # compared one by one, so a weak device or terminal on one line is not
    # refused for another line's wire.
    axis = {"r_wl": 1, "r_bl": 0}  # a word line is a row of g and of r_wl, a bit line a column
    for name, r in wires.items():  # a weak terminal is only a weak tie, like a weak device
        rmax = float(np.max(r)) if r.size else 0.0
        if gmax * rmax > DYNAMIC_RANGE:
            if r.ndim == 2:  # per segment: each line's devices against its own wire
                ratio = np.max(g, axis=axis[name]) * np.max(r, axis=axis[name])
                line = int(np.argmax(ratio))
                if ratio[line] <= DYNAMIC_RANGE:
                    continue
                g_line = float(np.max(np.take(g, line, axis=1 - axis[name])))  # the line's devices
                rmax = float(np.max(np.take(r, line, axis=1 - axis[name])))
                where = f" on {'word' if name == 'r_wl' else 'bit'} line {line}"
            else:
                g_line, where = gmax, ""
            raise ParameterError(
                f"the largest device conductance{where} ({g_line:.3g} S) is {g_line * rmax:.2g} times the "
                f"conductance of the {rmax:.3g} ohm {name}; beyond {DYNAMIC_RANGE:.0e} double precision cannot "
                "resolve the wires next to it. Check the units (siemens, ohms), or model such a device as a short "
                "by other means."
            )
    for layer, wire in (("wl", "r_wl"), ("bl", "r_bl")):
        if not np.isfinite(rmin[wire]):
            continue  # ideal wire only
        r = wires[wire]
        for name, rt in (terminals or {}).get(layer, {}).items():
            rt_max = float(np.max(rt)) if rt.size else 0.0  # ideal (0) ends pin the line: no limit
            if rt_max <= DYNAMIC_RANGE * rmin[wire]:
                continue
            # each line's terminal (one per line, 0 where ideal or floating)
            # against that line's shortest segment (inf: ideal wire only)
            line_min = (np.full(rt.shape, rmin[wire]) if r.ndim != 2
                        else np.min(r, axis=axis[wire], where=r > 0, initial=np.inf))
            ratio = np.where(np.isfinite(line_min), rt / line_min, 0.0)
            line = int(np.argmax(ratio))
            if ratio[line] > DYNAMIC_RANGE:
                raise ParameterError(
                    f"the {rt[line]:.3g} ohm {name} of line {line} is {ratio[line]:.2g} times its "
                    f"{line_min[line]:.3g} ohm segments of {wire}; beyond {DYNAMIC_RANGE:.0e} double precision "
                    "cannot resolve the line against its terminal (about 1e-16 x that ratio is lost). Give 0 for an "
                    "ideal wire segment (merged exactly), Drive(floating=True) for an open end, or a smaller "
                    "terminal resistance."
                )
    return max([gmax] + [1.0 / r for r in rmin.values() if math.isfinite(r)])


def wire_segments(r, shape):
    """A wire resistance as `_check_dynamic_range` takes it: a scalar as it
    is (a broadcast would scan every segment), an empty array when the lines
    have no segment (``shape`` (M, 0) or (0, N), an array one line wide,
    whose scalar wire resistance was checked against devices and
    terminals it never meets)."""
    return np.empty(shape) if 0 in shape else r


def _check_finite_nonneg(arr, name, unit, allow_zero=True):
    """Refuse NaN, inf and negative (or, without `allow_zero`, zero) values;
    returns the largest value (None for an empty array), which the check
    finds anyway."""
    if arr.size == 0:
        return None
    # min and max propagate NaN and reach +-inf: two passes, no temporaries
    # (an elementwise isfinite / < 0 test would allocate a mask per check)
    lo, hi = np.min(arr), np.max(arr)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        must = "it must be" if arr.ndim == 0 else "every value must be"
        raise ParameterError(f"{name} {where_not_finite(arr)}; {must} a finite number of {unit}.")
    if lo < 0 or (not allow_zero and lo == 0):
        lower = "> 0" if not allow_zero else ">= 0"
        raise ParameterError(
            f"{name} must be {lower} {unit}; its smallest value is {float(lo)!r}."
        )
    return float(hi)


def _per_segment(value, shape, name):
    """Validate a wire resistance given as a scalar or per segment."""
    arr = _as_float_array(value, name)
    if arr.ndim != 0 and arr.shape != shape:
        raise ParameterError(
            f"{name} has shape {arr.shape}; expected a scalar or {shape}."
        )
    _check_finite_nonneg(arr, name, "ohms")
    return arr


@document_fields
@dataclass(frozen=True, eq=False)
class Crossbar:
    """A passive M x N crossbar array.

    Parameters
    ----------
    g : array_like, shape (M, N)
        Device conductances in siemens (small-signal, at 0 V). ``0`` is an
        open device.
    r_wl : float or array_like, shape (M, N-1)
        Word-line segment resistance in ohms between ``WL(i,j)`` and
        ``WL(i,j+1)``. ``0`` is an ideal wire (the nodes are one node).
    r_bl : float or array_like, shape (M-1, N)
        Bit-line segment resistance in ohms between ``BL(i,j)`` and
        ``BL(i+1,j)``.
    v0 : None, float or array_like, shape (M, N)
        ``None`` for linear devices ``I = G V``; otherwise the sinh scale in
        volts of ``I = G V0 sinh(V / V0)`` (docs/CIRCUIT.md).

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> xbar = xs.Crossbar(np.full((4, 3), 1e-4), r_wl=1.0, r_bl=1.0)
    >>> xbar.shape
    (4, 3)
    """

    __repr__ = compact_repr

    g: np.ndarray
    """Device conductance, siemens, (M, N)."""
    r_wl: object = 0.0
    """Word-line segment resistance, ohms, scalar or (M, N-1)."""
    r_bl: object = 0.0
    """Bit-line segment resistance, ohms, scalar or (M-1, N)."""
    v0: object = None
    """sinh voltage scale, volts, scalar or (M, N); None for linear devices."""

    def __post_init__(self):
        for name in ("g", "r_wl", "r_bl", "v0"):  # each is copied (a float64 g too)
            value = getattr(self, name)
            if _OWNED.get(id(value)) is not value:  # `with_g` shares what a Crossbar owns
                _memory.check_copy(value, name, copied=True)
        g = _as_float_array(self.g, "g")
        if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1:
            raise ParameterError(
                f"g has shape {g.shape}; expected a 2-D (M, N) array of conductances "
                "in siemens with M, N >= 1."
            )
        gmax = _check_finite_nonneg(g, "g", "siemens")  # the largest g, which the check finds anyway
        if gmax > G_SUSPECT:
            from ._warn import warn

            warn(f"g holds conductances up to {gmax:.3g} S, a device of {1.0 / gmax:.3g} ohm: g is in siemens. "
                 "Resistances in ohms go in as 1 / R, microsiemens times 1e-6.", UserWarning)
        M, N = g.shape
        r_wl = _per_segment(self.r_wl, (M, N - 1), "r_wl")
        r_bl = _per_segment(self.r_bl, (M - 1, N), "r_bl")
        _check_dynamic_range(g, {"r_wl": wire_segments(r_wl, (M, N - 1)),  # device against wire
                                 "r_bl": wire_segments(r_bl, (M - 1, N))})
        # Stored arrays are the Crossbar's own and read-only: `with_g` (or
        # `Solution.resolve`) is the way to change conductances.
        object.__setattr__(self, "g", _owned(g, self.g))
        object.__setattr__(self, "r_wl", _owned(r_wl, self.r_wl))
        object.__setattr__(self, "r_bl", _owned(r_bl, self.r_bl))
        if self.v0 is not None:
            v0 = _as_float_array(self.v0, "v0")
            if v0.ndim != 0 and v0.shape != (M, N):
                raise ParameterError(f"v0 has shape {v0.shape}; expected None, a scalar or {(M, N)}.")
            _check_finite_nonneg(v0, "v0", "volts", allow_zero=False)
            if np.min(v0) < np.finfo(float).tiny:
                # a subnormal V0 ran a solve of a minute or two to a
                # "source stepping failed at 0 %"
                raise ParameterError(
                    f"v0 must be at least {np.finfo(float).tiny:.3g} V (a normal double); its smallest value is "
                    f"{float(np.min(v0))!r}, at which sinh(V / V0) is a step at any drive. Give V0 in volts "
                    "(the sinh law's knee, typically 0.05-1 V).")
            object.__setattr__(self, "v0", _owned(v0, self.v0))

    def __setstate__(self, state):
        # unpickled (or deep-copied) arrays came back writable: g[0, 0] = -1
        # then solved without a word. Owned again, as
        # `__post_init__` leaves them: read-only views that `kernel_array`
        # passes to the kernels without a copy (made read-only alone, g was
        # copied at every solve of an unpickled Crossbar)
        self.__dict__.update({name: _owned(value, None) if isinstance(value, np.ndarray) else value
                              for name, value in state.items()})

    @property
    def shape(self):
        """(M, N): word lines, bit lines."""
        return self.g.shape

    @property
    def linear(self):
        """True for linear devices (``v0 is None``)."""
        return self.v0 is None

    def r_wl_full(self):
        """Word-line segment resistances as a full (M, N-1) array."""
        M, N = self.shape
        return np.broadcast_to(self.r_wl, (M, N - 1))

    def r_bl_full(self):
        """Bit-line segment resistances as a full (M-1, N) array."""
        M, N = self.shape
        return np.broadcast_to(self.r_bl, (M - 1, N))

    def v0_full(self):
        """sinh scale as a full (M, N) array (inf for linear devices)."""
        if self.v0 is None:
            return np.full(self.shape, np.inf)
        return np.broadcast_to(self.v0, self.shape)

    def with_g(self, g):
        """A copy with new conductances (same wires and nonlinearity)."""
        return Crossbar(g, r_wl=self.r_wl, r_bl=self.r_bl, v0=self.v0)


@document_fields
@dataclass(frozen=True, eq=False)
class Drive:
    """What is attached to one end of every line of one kind.

    Parameters
    ----------
    v : float or array_like, shape (L,) or (L, B)
        Source voltage in volts per line; a trailing batch dimension solves
        B input vectors on one conductance state. A scalar broadcasts.
    r : float or array_like, shape (L,)
        Terminal resistance in ohms (source or sense-amplifier input
        resistance). ``0`` fixes the node voltage exactly.
    floating : None, bool or array_like of bool, shape (L,)
        Lines whose end is left open (no source at all). ``None``: none;
        a scalar applies to every line.
    """

    v: object = 0.0
    """Source voltage, volts: scalar, (L,) or (L, B)."""
    r: object = 0.0
    """Terminal resistance, ohms: scalar or (L,)."""
    floating: object = None
    """Bool mask (L,) of open ends; None: every end is driven."""


def read_drives(x, r_in=0.0, r_out=0.0):
    """The usual read / MVM configuration (docs/CIRCUIT.md).

    Word lines driven at the left with `x` through `r_in`, bit lines held at
    0 V at the bottom through `r_out`, the other ends floating.

    Parameters
    ----------
    x : float or array_like, (M,) or (M, B)
        Word-line drive voltages, V: one per word line, or a batch of B
        input columns (a scalar drives every word line alike).
    r_in, r_out : float or array_like
        Source resistance of the word-line drivers and of the bit lines'
        virtual grounds, ohms (0: ideal), one value or one per line.

    Returns
    -------
    dict
        ``left``, ``right``, ``top`` and ``bottom`` drives to splat into
        `xbarsim.solve` (whose ``i_out`` are then the bit-line currents).
        The values are checked by the solve, against the array's shape.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> sol = xs.solve(xs.Crossbar(np.full((2, 3), 1e-4)), **xs.read_drives([0.2, 0.1]))
    >>> bool(np.allclose(sol.i_out, 3e-5))
    True
    """
    return {"left": Drive(x, r=r_in), "right": None, "top": None, "bottom": Drive(0.0, r=r_out)}


PULSE_SCHEMES = {"V/2": (0.5, 0.5), "V/3": (1.0 / 3.0, 2.0 / 3.0), "floating": None}
"""Unselected word- and bit-line levels of each programming bias scheme, as
fractions of the pulse amplitude (docs/CIRCUIT.md); None: floating."""

VERIFY_SCHEMES = {"grounded": 0.0, "V/2": 0.5, "floating": None}
"""Unselected line level of each verify-read scheme, as a fraction of
``V_read``; None: floating."""


def _selected_drives(shape, cell, v, u_wl, u_bl, what):
    """Selected word line at ``v`` and bit line at 0, the others at ``u_wl``
    / ``u_bl`` (None: floating): word lines driven at the left, bit lines at
    the bottom, as the programming kernels drive them."""
    def integers(pair):  # two Python or NumPy integers (1.7, True and "12" used to pass as 1, 1 and (1, 2))
        try:
            if isinstance(pair, (str, bytes)) or np.ndim(pair) != 1 or len(pair) != 2:
                return None
        except (TypeError, ValueError):  # ragged, or no length
            return None
        if any(isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) for n in pair):
            return None
        return tuple(int(n) for n in pair)

    M_N, i_j = integers(shape), integers(cell)
    if M_N is None or i_j is None:
        raise ParameterError(f"{what}: give shape=(M, N) and cell=(i, j) as integers; got shape={shape!r}, "
                             f"cell={cell!r}.")
    (M, N), (i, j) = M_N, i_j
    if M < 1 or N < 1:
        raise ParameterError(f"{what}: shape {(M, N)} has no devices.")
    if M > 2**53 or N > 2**53:  # the memory check below raised a raw OverflowError (10**400 lines)
        raise ParameterError(f"{what}: a shape of more than 2**53 lines ({min(M, N)} by a number of "
                             f"{len(str(max(M, N)))} digits) is larger than any array that fits in memory; check "
                             "the shape.")
    if not (0 <= i < M and 0 <= j < N):
        raise ParameterError(f"{what}: cell {(i, j)} is outside the {M} x {N} array (rows 0..{M - 1}, "
                             f"columns 0..{N - 1}).")
    # 9 bytes per line (level and floating flag), and the array they are
    # for, whose conductances alone take 8 bytes a cell: (1e9, 1e9)
    # allocated 17 GB of drives unchecked
    _memory.require(9.0 * (M + N) + 8.0 * M * N, f"{what}: a {M} x {N} array (its conductances and these drives)",
                    "check the shape")
    wl = np.full(M, 0.0 if u_wl is None else u_wl)
    bl = np.full(N, 0.0 if u_bl is None else u_bl)
    wl[i], bl[j] = v, 0.0
    wl_float = np.full(M, u_wl is None)
    bl_float = np.full(N, u_bl is None)
    wl_float[i] = bl_float[j] = False
    return {"left": Drive(wl, floating=wl_float), "right": None, "top": None,
            "bottom": Drive(bl, floating=bl_float)}


def pulse_drives(shape, cell, vp, scheme="V/2"):
    """The drives of one programming pulse on cell ``(i, j)`` (CIRCUIT.md).

    The selected word line at ``vp`` (negative: a reset pulse), the selected
    bit line at 0 V, the unselected lines at ``vp/2`` (``"V/2"``), at
    ``vp/3`` and ``2 vp/3`` (``"V/3"``) or floating (``"floating"``); word
    lines driven at the left end, bit lines at the bottom, the other ends
    floating, all through ideal sources: exactly the circuit
    `xbarsim.program` solves for every pulse.

    Parameters
    ----------
    shape : (int, int)
        The array's ``(M, N)``.
    cell : (int, int)
        The selected device ``(i, j)``: word line i, bit line j.
    vp : float
        Pulse amplitude, V (positive: set; negative: reset).
    scheme : {"V/2", "V/3", "floating"} or xbarsim.BiasScheme
        Bias of the unselected lines (any case).

    Returns
    -------
    dict
        Drives to splat into `xbarsim.solve`, whose ``v_wl - v_bl`` is then
        the voltage every selected, half-selected and unselected cell sees.

    Raises
    ------
    ParameterError
        A shape or cell that is not two integers, a cell outside the array,
        an unknown scheme (or a `ReadScheme` member), a non-finite ``vp``.
    MemoryLimitError
        An array whose drives and conductances cannot fit in memory.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> xbar = xs.Crossbar(np.full((4, 4), 3e-4), r_wl=1.0, r_bl=1.0, v0=0.45)
    >>> sol = xs.solve(xbar, **xs.pulse_drives((4, 4), (1, 2), 1.6, "V/2"))
    >>> v = sol.v_wl - sol.v_bl
    >>> bool(0.79 < v[1, 0] < 0.8 and abs(v[0, 0]) < 1e-3)  # half-selected, unselected
    True
    """
    scheme = _scheme_name(scheme, PULSE_SCHEMES, "pulse_drives", "BiasScheme")
    vp = _real(vp, "pulse_drives: vp")
    levels = PULSE_SCHEMES[scheme]
    u_wl, u_bl = (None, None) if levels is None else (levels[0] * vp, levels[1] * vp)
    return _selected_drives(shape, cell, vp, u_wl, u_bl, "pulse_drives")


def verify_drives(shape, cell, v_read=0.2, scheme="grounded"):
    """The drives of one verify read of cell ``(i, j)`` (CIRCUIT.md).

    The selected word line at ``v_read``, the selected bit line sensed at
    0 V (its ``i_out`` is the read current), the unselected lines at 0 V
    (``"grounded"``), at ``v_read/2`` (``"V/2"``) or floating
    (``"floating"``); laid out as `pulse_drives`. (``"V/2-diff"`` of
    `xbarsim.TransferConfig` is the difference of the ``"V/2"`` read and
    one with the selected word line at ``v_read/2`` too.)

    Parameters
    ----------
    shape, cell
        As `pulse_drives`' (``cell``: the device read).
    v_read : float
        Read voltage, V.
    scheme : {"grounded", "V/2", "floating"} or xbarsim.ReadScheme
        Bias of the unselected lines (any case).

    Returns
    -------
    dict
        Drives to splat into `xbarsim.solve`; the read current is the
        solution's ``i_out[j]``.

    Raises
    ------
    ParameterError
        As `pulse_drives`, and ``"V/2-diff"`` (two reads, not one set of
        drives: the message says how to build them).
    MemoryLimitError
        As `pulse_drives`.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> xbar = xs.Crossbar(np.full((4, 4), 3e-4), r_wl=1.0, r_bl=1.0)
    >>> sol = xs.solve(xbar, **xs.verify_drives((4, 4), (1, 2), 0.2))
    >>> bool(abs(sol.i_out[2] / 0.2 / 3e-4 - 1) < 1e-2)  # the device's conductance, less the wires' drop
    True
    """
    if isinstance(scheme, (str, enum.Enum)) and str(getattr(scheme, "value", scheme)).lower() == "v/2-diff":
        raise ParameterError("verify_drives: 'V/2-diff' is two reads, not one set of drives: the 'V/2' read "
                             "minus a background read with the selected word line at V_read/2 too; call "
                             "verify_drives with scheme='V/2' and build the background read from it.")
    scheme = _scheme_name(scheme, VERIFY_SCHEMES, "verify_drives", "ReadScheme")
    v_read = _real(v_read, "verify_drives: v_read")
    level = VERIFY_SCHEMES[scheme]
    u = None if level is None else level * v_read
    return _selected_drives(shape, cell, v_read, u, u, "verify_drives")


def _scheme_name(scheme, known, what, kind):
    """The name of `scheme`: one of `known`'s keys, or a member of the enum
    named `kind` whose value is one (`xbarsim.BiasScheme.V3`,
    `xbarsim.ReadScheme.GROUNDED`, as `xbarsim.TransferConfig` takes them).
    A member of the other enum is refused, as `TransferConfig` refuses it:
    ``ReadScheme.HALF`` was taken as the V/2 pulse."""
    if isinstance(scheme, enum.Enum):
        from . import programming  # the enums' module imports this one

        if not isinstance(scheme, getattr(programming, kind)):
            raise ParameterError(f"{what}: {scheme!r} is a {type(scheme).__name__}, not a {kind}; give "
                                 f"an xbarsim.{kind} member or one of {sorted(known)}.")
        scheme = scheme.value
    if isinstance(scheme, str):  # any case, as TransferConfig takes them ("v/3" was refused here only)
        for name in known:
            if scheme.lower() == name.lower():
                return name
    from ._coerce import nearest_hint

    raise ParameterError(f"{what}: unknown scheme {scheme!r}; choose one of {sorted(known)}"
                         f"{nearest_hint(scheme, sorted(known))}.")


def _real(value, what):
    """A finite real number of volts (`as_real_array`'s refusals, then one
    value and finite)."""
    from ._coerce import as_real_array

    a = as_real_array(value, what, "scalar", "volts")
    if a.ndim != 0:
        raise ParameterError(f"{what} must be one real number of volts; got shape {a.shape}.")
    if not np.isfinite(a):
        raise ParameterError(f"{what} = {float(a)!r} is not finite.")
    return float(a)


# ----------------------------------------------------------------------------
# Assembly into kernel arrays
# ----------------------------------------------------------------------------

END_NAMES = {"wl": ("left", "right"), "bl": ("top", "bottom")}


@dataclass(frozen=True, eq=False)
class _EndSpec:
    mode: np.ndarray  # (L,) int8 FLOATING / RESISTIVE / IDEAL
    g: np.ndarray  # (L,) conductance for RESISTIVE, else 0
    v: np.ndarray  # (L, B) source voltage (0 where floating)
    batched: bool
    r: np.ndarray  # (L,) resistance as given for RESISTIVE, else 0 (1 / g loses the last bit of 16 % of values)


def as_drive(value):
    """`value` as what is attached to one end: a `Drive` or None (floating)
    as given, anything else the voltages of ideal sources (``Drive(value)``,
    ``r = 0``): ``xs.solve(xbar, left=x, bottom=0.0)`` is the ideal read of
    CIRCUIT.md. `_normalize_drive` validates it."""
    return value if value is None or isinstance(value, Drive) else Drive(v=value)


def _normalize_drive(drive, n_lines, name):
    """Validate one `Drive` (or None, or voltages of ideal sources:
    `as_drive`) against its line count."""
    if drive is None:
        return None
    shorthand = not isinstance(drive, Drive)
    drive = as_drive(drive)
    vname = name if shorthand else f"{name}.v"  # left=x: "left has shape ...", not "left.v"
    try:
        v = _as_float_array(drive.v, vname)
    except ParameterError as exc:
        if not shorthand:
            raise
        raise ParameterError(f"{name} must be an xbarsim.Drive, voltages of ideal sources (a number, or an "
                             f"array of one per line: Drive(v) with r = 0), or None (floating); {exc}") from None
    if v.ndim == 0:
        v = np.full((n_lines, 1), float(v))
        batched = False
    elif v.ndim == 1:
        if v.shape[0] != n_lines:
            raise ParameterError(f"{vname} has shape {v.shape}; expected a scalar, ({n_lines},) or ({n_lines}, B).")
        v = v[:, None]
        batched = False
    elif v.ndim == 2:
        if v.shape[0] != n_lines or v.shape[1] < 1:
            raise ParameterError(f"{vname} has shape {v.shape}; expected a scalar, ({n_lines},) or ({n_lines}, B) with B >= 1.")
        batched = True
    else:
        raise ParameterError(f"{vname} has {v.ndim} dimensions; expected a scalar, ({n_lines},) or ({n_lines}, B).")
    if not np.all(np.isfinite(v)):
        raise ParameterError(f"{vname} holds NaN or inf; drive voltages must be finite volts.")
    r = _as_float_array(drive.r, f"{name}.r")
    if r.ndim != 0 and r.shape != (n_lines,):
        raise ParameterError(f"{name}.r has shape {r.shape}; expected a scalar or ({n_lines},).")
    _check_finite_nonneg(r, f"{name}.r", "ohms")
    r = np.broadcast_to(r, (n_lines,))
    if drive.floating is None:
        floating = np.zeros(n_lines, dtype=bool)
    else:
        floating = drive.floating
        if hasattr(floating, "detach") and hasattr(floating, "cpu"):
            # a torch tensor: made dense, refused by name when nested or meta
            # (torch's raw errors from np.asarray)
            from ._coerce import _strided

            floating = _strided(floating.detach(), f"{name}.floating", "None, a bool or a bool array").cpu()
        if isinstance(floating, np.ma.MaskedArray):
            # np.asarray dropped the mask: the hidden data decided
            if np.ma.getmaskarray(floating).any():
                raise ParameterError(f"{name}.floating is a masked array with masked entries; fill them first "
                                     f"({name}.floating.filled(False)), the simulator has no notion of a "
                                     "missing value.")
            floating = floating.data
        try:
            floating = np.asarray(floating)
        except (ValueError, TypeError, RuntimeError):  # ragged rows, tensors that require grad: NumPy's raw errors
            raise ParameterError(f"{name}.floating does not convert to an array; expected None, a bool or a bool "
                                 f"array of shape ({n_lines},).") from None
        if floating.dtype != bool or floating.shape not in ((), (n_lines,)):
            raise ParameterError(
                f"{name}.floating has dtype {floating.dtype} and shape {floating.shape}; "
                f"expected None, a bool or a bool array of shape ({n_lines},)."
            )
        floating = np.broadcast_to(floating, (n_lines,))
    mode = np.where(floating, FLOATING, np.where(r == 0, IDEAL, RESISTIVE)).astype(np.int8)
    with np.errstate(divide="ignore", over="ignore"):  # `_check_dynamic_range` refuses r < R_TINY by name
        g = np.where(mode == RESISTIVE, 1.0 / np.where(r == 0, 1.0, r), 0.0)
    v = np.where(floating[:, None], 0.0, v)
    return _EndSpec(mode=mode, g=g, v=v, batched=batched, r=np.where(mode == RESISTIVE, r, 0.0))


@dataclass(eq=False)
class Layer:
    """Kernel arrays of one layer (word lines or bit lines), line-major.

    ``L`` lines of ``n`` nodes. Word lines: ``L = M, n = N``; bit lines:
    ``L = N, n = M``.
    """

    gid: np.ndarray  # (L, n) int32 group of each node
    ngroups: np.ndarray  # (L,) int32
    seg_g: np.ndarray  # (L, max(n-1,1)) segment conductance (ignored where ideal)
    term_mode: np.ndarray  # (L, 2) int8 start/end mode
    term_g: np.ndarray  # (L, 2) conductance of RESISTIVE ends
    term_v: np.ndarray  # (L, 2, B) source voltage
    fixed: np.ndarray  # (L, n) uint8: group k of line l has a fixed voltage
    # (the voltage of an ideal end: term_v[l, 0] for group 0, term_v[l, 1]
    # for the last group)


@dataclass(eq=False)
class Network:
    """A crossbar plus its drives, validated and laid out for the kernels."""

    xbar: Crossbar
    wl: Layer
    bl: Layer
    g: np.ndarray  # (M, N)
    g_t: np.ndarray  # (N, M)
    batch: int
    batched: bool
    ends: dict = field(default_factory=dict)  # name -> _EndSpec or None
    linear: bool = True  # device law: linear, or sinh with v0
    v0: np.ndarray = field(default_factory=lambda: np.ones((1, 1)))  # (M, N) sinh scale when not linear
    v0_t: np.ndarray = field(default_factory=lambda: np.ones((1, 1)))  # (N, M)

    def drive_scale(self):
        """Largest |drive voltage| per batch column (volts), (B,)."""
        return largest_drive(self.ends, self.batch)

    @property
    def shape(self):
        return self.xbar.shape


def transposed(a):
    """``a.T`` as a new C-contiguous float array (the bit-line layout of a
    word-line-layout array), by the tiled kernel: at 4096^2 NumPy's strided
    copy took 0.16-0.5 s, the kernel 0.02 s."""
    from .kernels.operator import transpose

    a = kernel_array(np.asarray(a, dtype=float))
    out = np.empty((a.shape[1], a.shape[0]))
    transpose(a, out)
    return out


def _node_groups(seg_r, n_nodes):
    """``(gid, seg_g)`` of lines of ``n_nodes`` nodes with segments ``seg_r``
    (L, n_nodes - 1): the merged node (group) of each node, numbered along
    its line (nodes joined by ideal, 0 ohm, segments share one), and each
    segment's conductance (0 where ideal)."""
    n_lines = seg_r.shape[0]
    ideal = seg_r == 0  # (L, n-1)
    if ideal.any():
        gid = np.zeros((n_lines, n_nodes), dtype=np.int32)
        if n_nodes > 1:
            np.cumsum(~ideal, axis=1, out=gid[:, 1:])
        with np.errstate(divide="ignore"):
            seg_g = np.where(ideal, 0.0, 1.0 / np.where(ideal, 1.0, seg_r))
    else:
        # every segment resistive (the usual case): each node its own group,
        # and no masked temporaries (at 4096^2 each is 134 MB)
        gid = np.tile(np.arange(n_nodes, dtype=np.int32), (n_lines, 1))  # writable (`kernel_array`)
        seg_g = np.divide(1.0, seg_r)
    return gid, seg_g


def _build_layer(seg_r, ends, n_lines, n_nodes, batch):
    """Group nodes joined by ideal wire and lay out terminals of one layer."""
    gid, seg_g = _node_groups(seg_r, n_nodes)
    ngroups = (gid[:, -1] + 1).astype(np.int32)
    if n_nodes == 1:
        seg_g = np.zeros((n_lines, 1))
    term_mode = np.zeros((n_lines, 2), dtype=np.int8)
    term_g = np.zeros((n_lines, 2))
    term_v = np.zeros((n_lines, 2, batch))
    fixed = np.zeros((n_lines, n_nodes), dtype=np.uint8)
    for side, spec in enumerate(ends):
        if spec is None:
            continue
        term_mode[:, side] = spec.mode
        term_g[:, side] = spec.g
        term_v[:, side, :] = spec.v  # broadcasts (L,1) over batch
        ideal_lines = np.nonzero(spec.mode == IDEAL)[0]
        group = 0 if side == 0 else ngroups[ideal_lines] - 1
        fixed[ideal_lines, group] = 1
    return Layer(
        gid=np.ascontiguousarray(gid),
        ngroups=ngroups,
        seg_g=np.ascontiguousarray(seg_g),
        term_mode=term_mode,
        term_g=term_g,
        term_v=term_v,
        fixed=fixed,
    )


def _line_names(kind, idx, limit=10):
    idx = list(map(int, idx))
    shown = ", ".join(f"{kind}[{i}]" for i in idx[:limit])
    return shown + (f" ... ({len(idx)} in all)" if len(idx) > limit else "")


def check_connected(g, ends):
    """Raise `CircuitError` naming every line with no finite-resistance path
    to a driven end (`ends`: end name -> `_EndSpec` or None)."""
    from .kernels.graph import reachable_lines

    M, N = g.shape
    anchored_wl = _driven_lines(ends, ("left", "right"), M).astype(np.uint8)
    anchored_bl = _driven_lines(ends, ("top", "bottom"), N).astype(np.uint8)
    if anchored_wl.all() and anchored_bl.all():
        return
    reached_wl, reached_bl = reachable_lines(g, anchored_wl, anchored_bl)
    lost_wl = np.nonzero(reached_wl == 0)[0]
    lost_bl = np.nonzero(reached_bl == 0)[0]
    if lost_wl.size or lost_bl.size:
        parts = [p for p in (_line_names("WL", lost_wl), _line_names("BL", lost_bl)) if p]
        one = lost_wl.size + lost_bl.size == 1
        # the reason as it is: "every device open" was said also of floating
        # lines joined to each other by working devices
        why = ("no end of any line is driven" if not (anchored_wl.any() or anchored_bl.any()) else
               "both ends floating, and no chain of devices with g > 0 reaches a driven line")
        raise CircuitError(
            f"{' and '.join(parts)} {'has' if one else 'have'} no finite-resistance path to a driven end "
            f"({why}), so "
            f"{'its voltage is' if one else 'their voltages are'} undetermined. {FLOATING_ADVICE[one]}",
            word_lines=lost_wl,
            bit_lines=lost_bl,
        )


FLOATING_ADVICE = {
    True: "Drive one end of this line, or give it a device with g > 0 connecting to a driven line.",
    False: "Drive one end of these lines, or give them a device with g > 0 connecting to a driven line.",
}
"""The advice of `check_connected`'s error, for one line (True) or several
(`xbarsim solve --pulse` words it as its options)."""

FLOATING_TIE = 1e-15
"""Smallest ratio, on a line with no driven end, of a device to the wire
segments that meet at its node; such a line is held only by its devices,
and at least one of them must reach it. Below half an ulp (1.1e-16),
``g_wire + g`` rounds to ``g_wire``: where that holds at every node the
line's equations are singular in double precision (1e-16 S devices on 1
ohm wire: SuperLU called the matrix singular, and pcg returned bit lines
0.75 V off). 3e-16 still solved to 2e-14 V against a 40-digit solve; the
limit keeps a factor 9 from the edge. Node by node, so a near-ideal strap
elsewhere on the line (1e-12 ohm: it only merges two nodes) does not count
against the devices of the other nodes; nodes joined by ideal (0 ohm)
segments are one node, whose devices add up against the resistive segments
at its two edges."""


def check_floating_ties(xbar, ends):
    """Raise `ParameterError` for a floating line (no driven end) none of
    whose devices double precision can see next to the wire at its node
    (`FLOATING_TIE`); `ends`: end name -> `_EndSpec` or None."""
    tiny = np.finfo(np.float64).tiny
    for kind, names, g, seg in (("WL", ("left", "right"), xbar.g, xbar.r_wl_full()),
                                ("BL", ("top", "bottom"), xbar.g.T, xbar.r_bl_full().T)):
        lines = np.nonzero(~_driven_lines(ends, names, g.shape[0]))[0]
        if lines.size == 0:
            continue
        # A floating line of ideal wire (or of one node) is one node held by
        # its devices alone: with every one of them subnormal (below the
        # smallest normal double), the reciprocal of their sum overflowed in
        # the line factors and the solve ended in "non-finite residual ...
        # this is a bug". Behind resistive wire such a
        # device is only invisible, and taken.
        gl = g[lines]
        r = seg[lines]
        held = np.max(gl, axis=1)
        if r.shape[1]:
            held[np.any(r > 0, axis=1)] = np.inf  # held by wire too
        sub = (held > 0) & (held < tiny)
        if sub.any():
            bad = lines[sub]
            raise ParameterError(
                f"{_line_names(kind, bad)} {'floats' if bad.size == 1 else 'float'} (no driven end) on ideal wire "
                f"and {'is' if bad.size == 1 else 'are'} held only by devices below {tiny:.3g} S (subnormal "
                f"doubles; the strongest on {kind}[{int(bad[0])}] is {float(held[sub][0])!r} S), whose sum's "
                "reciprocal overflows. Drive one end of the line, give it a device of a normal conductance, or make "
                "those devices open (0 S).")
        if seg.shape[1] == 0:
            continue  # one node per line: no wire to hide the devices behind
        # Ideal (0 ohm) segments merge nodes into one: the test is per merged
        # node, its devices' sum against the resistive segments at its two
        # edges (node by node, a node between two ideal segments met no wire,
        # so any device passed: a floating line of [0, 1, 0] ohm wire held by
        # 1e-30 S devices reached SuperLU's "singular" and pcg's "this is a
        # bug"; found by a mutation audit).
        n_lines, n_nodes = gl.shape
        group, seg_g = _node_groups(r, n_nodes)  # as the solvers merge them
        flat = group + n_nodes * np.arange(n_lines, dtype=np.int64)[:, None]  # unique over the lines
        size = n_lines * n_nodes
        dev = np.bincount(flat.ravel(), weights=gl.ravel(), minlength=size).reshape(gl.shape)
        wire = (np.bincount(flat[:, :-1].ravel(), weights=seg_g.ravel(), minlength=size)  # left end of each
                + np.bincount(flat[:, 1:].ravel(), weights=seg_g.ravel(), minlength=size)).reshape(gl.shape)
        weak = ~np.any((dev >= FLOATING_TIE * wire) & (dev > 0), axis=1)  # numbers past a line's last: 0 S
        if weak.any():
            bad = lines[weak]
            ratio = np.where(wire[weak] > 0, dev[weak] / np.where(wire[weak] > 0, wire[weak], 1.0), 0.0)
            k = int(np.argmin(np.max(ratio, axis=1)))
            raise ParameterError(
                f"{_line_names(kind, bad)} {'floats' if bad.size == 1 else 'float'} (no driven end) and "
                f"{'is' if bad.size == 1 else 'are'} held only by devices too weak for double precision to "
                f"see next to their wires: on {kind}[{int(bad[k])}] the devices of no node (nodes joined by 0 ohm "
                f"segments count as one) reach {FLOATING_TIE:.0e} of the wire conductance at that node (at best "
                f"{np.max(ratio[k]):.2g}). Drive one end of the line "
                "(a resistive Drive), give it stronger devices, or make its wire ideal (0 ohm), which merges "
                "its nodes exactly.")


def check_ranges(xbar, specs, batch):
    """Refuse (`ParameterError`) conductances, wires and terminals that span
    more than double precision resolves (`_check_dynamic_range`) and drives
    the solvers cannot scale or whose currents could overflow
    (`_check_drive_range`). ``specs``: the normalized ends of
    `build_network` (also `Solution.resolve`'s, with new conductances)."""

    def terminal_r(spec):  # ohms of each line's end, 0 where ideal or floating (no limit there)
        return spec.r

    M, N = xbar.shape
    gmax = _check_dynamic_range(xbar.g, {"r_wl": wire_segments(xbar.r_wl, (M, N - 1)),
                                         "r_bl": wire_segments(xbar.r_bl, (M - 1, N))}, {
        layer: {f"{name}.r": terminal_r(specs[name]) for name in names if specs[name] is not None}
        for layer, names in (("wl", ("left", "right")), ("bl", ("top", "bottom")))})
    _check_drive_range(xbar.shape, specs, batch, gmax)


def build_network(xbar, left=None, right=None, top=None, bottom=None):
    """Validate drives against `xbar` and build the kernel arrays.

    Raises
    ------
    ParameterError
        Bad shapes, NaN/inf, negative resistance, mismatched batch sizes.
    CircuitError
        No unique solution: a line with no finite-resistance path to a
        driven end, or two ideal drives joined by ideal wire.
    """

    if not isinstance(xbar, Crossbar):
        raise ParameterError(f"xbar must be an xbarsim.Crossbar; got {type(xbar).__name__}.")
    M, N = xbar.shape
    specs = {
        "left": _normalize_drive(left, M, "left"),
        "right": _normalize_drive(right, M, "right"),
        "top": _normalize_drive(top, N, "top"),
        "bottom": _normalize_drive(bottom, N, "bottom"),
    }
    batches = {name: s.v.shape[1] for name, s in specs.items() if s is not None and s.batched}
    sizes = set(batches.values())
    if len(sizes) > 1:
        raise ParameterError(
            f"drive batch sizes differ: {batches}; give every batched drive the same B "
            "(trailing dimension), or a scalar / (L,) voltage that broadcasts."
        )
    batch = sizes.pop() if sizes else 1
    batched = bool(batches)
    check_ranges(xbar, specs, batch)

    # Two ideal drives on one group (a line with both ends at 0 ohm and
    # only ideal wire between) fix one node twice: no unique current split.
    for layer_name, (a, b), seg, n_lines, kind in (
        ("wl", ("left", "right"), xbar.r_wl_full(), M, "word line"),
        ("bl", ("top", "bottom"), xbar.r_bl_full().T, N, "bit line"),
    ):
        sa, sb = specs[a], specs[b]
        if sa is None or sb is None:
            continue
        single_group = np.all(seg == 0, axis=1) if seg.shape[1] else np.ones(n_lines, bool)
        clash = np.nonzero((sa.mode == IDEAL) & (sb.mode == IDEAL) & single_group)[0]
        if clash.size:
            lines = _line_names("WL" if layer_name == "wl" else "BL", clash)
            # a line of one node has no segment to give a resistance
            joined, fix = (("on the line's one node (it crosses a single line: no wire segment)", "")
                           if seg.shape[1] == 0 else ("joined by ideal (0 ohm) wire", " a wire resistance > 0,"))
            raise CircuitError(
                f"{lines}: both ends are ideal (0 ohm) drives {joined}, "
                f"so the current through the {kind} is undetermined. Give one end a terminal "
                f"resistance r > 0,{fix} or let one end float.",
                word_lines=clash if layer_name == "wl" else (),
                bit_lines=clash if layer_name == "bl" else (),
            )

    check_connected(xbar.g, specs)
    check_floating_ties(xbar, specs)
    wl = _build_layer(xbar.r_wl_full(), (specs["left"], specs["right"]), M, N, batch)
    bl = _build_layer(xbar.r_bl_full().T, (specs["top"], specs["bottom"]), N, M, batch)
    net = Network(
        xbar=xbar,
        wl=wl,
        bl=bl,
        g=kernel_array(xbar.g),
        g_t=transposed(xbar.g),
        batch=batch,
        batched=batched,
        ends=specs,
    )
    if not xbar.linear:
        net.linear = False
        # a scalar v0 is filled in (a broadcast of it is read-only, and one
        # of shape (1, 1) is contiguous, so ascontiguousarray kept it as such)
        if xbar.v0.ndim == 2:
            net.v0 = np.ascontiguousarray(kernel_array(xbar.v0))
        else:
            net.v0 = np.full(xbar.shape, float(xbar.v0))
        net.v0_t = transposed(net.v0)
    return net
