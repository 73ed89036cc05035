"""Solve a crossbar circuit: `solve` and its `Solution`.

The methods share one validated `Network`:

``"mg"``
    Conjugate gradients preconditioned by a multigrid cycle whose coarse
    levels are again crossbars (2 x 2 cells merged) and whose smoother is the
    line relaxation below (xbarsim/_multigrid.py): a W-cycle on coarse
    levels of 512 x 512 cells and more, a V-cycle below (and everywhere
    once the W-cycle stops being positive definite, as on wires far more
    resistive than the devices). Iterations stay nearly flat as the array
    grows. Needs non-zero wire segments.
``"pcg"``
    Conjugate gradients preconditioned by symmetric line relaxation: solve
    every word line exactly (bit lines fixed), then every bit line, then
    every word line again, each a tridiagonal (Thomas) solve per line, in
    parallel over lines. The line factors are computed once per conductance
    state and reused across iterations and all B input columns.
``"direct"``
    The sparse nodal matrix over the same unknowns, factored once by SciPy's
    SuperLU and solved for all B columns: the reference path, best for small
    arrays. The factorization preconditions the same checked CG loop, so
    its first iteration is the direct solve and its result is held to the
    same checks; a further iteration is iterative refinement, where the
    assembled matrix loses digits (devices 1e12 weaker than the wires of a
    floating line).
``"auto"``
    ``"direct"`` up to 32 x 32 cells with linear devices, ``"pcg"`` up to
    128 x 128 cells (and sinh devices from the smallest), ``"mg"`` above
    when every wire segment has r > 0 (else ``"pcg"``); ``"direct"`` where
    its linear ``"pcg"`` does not converge, and wherever a wire segment's
    resistance times its line's largest device conductance exceeds
    `WIRE_DEVICE_RATIO_MAX` (1e3), where ``"pcg"`` and ``"mg"`` are
    refused: their error estimate misses the slow mode such wires leave.

Convergence is judged on the Kirchhoff residual: the current imbalance at
every free node, relative to the current the drives push into the circuit,
down to what double precision resolves (node voltages quantized to an ulp
leave an imbalance of an ulp of the largest conductance times the drive),
and on the estimated node-voltage and terminal-current errors.
The default tolerance makes terminal currents agree with the direct solve to
about 1e-10 relative. A solve that misses its tolerance raises
`ConvergenceError` with the residual history; nothing unconverged is
returned.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional

import numpy as np

from ._repr import compact_repr
from ._fork import check_fork_safe
from .circuit import Crossbar, Network, as_drive, build_network, driven_ends, kernel_array, read_drives, transposed
from ._coerce import as_real_array, shape_of
from .devices import real_scalar
from .exceptions import ConvergenceError, ParameterError
from . import _memory
from ._docfields import document_fields

__all__ = ["solve", "Solution", "choose_method", "METHODS", "DEFAULT_TOL"]

METHODS = ("auto", "mg", "pcg", "direct")
DEFAULT_TOL = 1e-12
"""Default relative Kirchhoff residual: terminal currents to ~1e-10."""
AUTO_DIRECT_MAX_CELLS = 32 * 32
"""``method="auto"`` uses the direct factorization up to this many cells
with linear devices: exact to rounding for a few milliseconds (1.3-2.5x
pcg's time from 8 x 8 to 32 x 32). Not with sinh devices, where Newton
stops at the same tolerance whatever its inner solver, and refactoring
each step took 1.4-3.5x pcg's time on reads and 6x on a 32 x 32 V/2 pulse
on 0.05 V devices (2026-12-06, `bench/HISTORY.md`)."""
AUTO_PCG_MAX_CELLS = 128 * 128
"""...line-relaxation CG up to this many (fewer levels of Python overhead),
multigrid above: on 1 ohm wires mg took 0.66-1.28x pcg's time from
128^2 to 512^2, while on 100 ohm wires mg took 0.37x pcg's time at 256^2
and 0.30x at 512^2 (pcg's iterations grow with the IR drop: 77 and 149
against mg's 13 and 23; it was 512^2)."""

WIRE_DEVICE_RATIO_MAX = 1e3
"""Largest product of a wire segment's resistance and the largest device
conductance on its line (`wire_device_ratio`) at which ``"pcg"`` and
``"mg"`` solve:
beyond it the line relaxation leaves a slow mode (the lines' voltage as a
whole behind their wires) that their voltage-error estimate does not see
in its first iterations. Measured (2026-12-06, `bench/HISTORY.md`; 16 x 16
to 48 x 48, 40-100 uS devices, 1 ohm to 100 kohm input terminals, tol
1e-3 to 1e-6, against the direct solve): within 0.4x of the bound up to
r g = 1e3; at 1e4 up to 56x outside at tol 1e-3, at 1e5 up to 740x at
1e-4, at 1e6 up to 5e4x at 1e-6. ``"auto"`` takes ``"direct"`` there;
``"pcg"`` and ``"mg"`` are refused. (Physical crossbars sit at 1e-3 or
below: 1 ohm segments, mS devices.)"""

SINH_LINEAR = 1e-8
"""A sinh crossbar whose largest drive is at most this fraction of half its
smallest V0 is solved as linear: ``V0 sinh(V / V0)`` is ``V`` to within
``(V / V0)^2 / 6 < 2e-17`` there, below double precision."""


@document_fields
@dataclass(frozen=True, eq=False)
class Solution:
    """Node voltages and currents of a solved crossbar.

    Shapes are (M, N) / (N,) etc., with a trailing batch dimension B when
    any drive voltage had one.
    """

    __repr__ = compact_repr

    v_wl: np.ndarray
    """Word-line node voltages, volts, (M, N[, B])."""
    v_bl: np.ndarray
    """Bit-line node voltages, volts, (M, N[, B])."""
    i_device: np.ndarray
    """Device currents, amperes, (M, N[, B]), positive from word line into bit line."""
    i_out: np.ndarray
    """Sense current of each bit line, amperes, (N[, B]): out of the array through its bottom end (0 where it floats)."""
    i_terminal: dict
    """Current into the array through each end, amperes: keys left/right (M[, B]) and top/bottom (N[, B]);
    0 where the end floats (an open circuit carries none; `driven` says which ends are driven)."""
    iterations: int
    """Iterations run: CG iterations (1 for a direct linear solve, more where it refined; 0 when the
    drives fix every node of a linear array, or when a warm start (``x0``, `resolve`) already meets
    the tolerance); for sinh devices, Newton steps summed over the batch columns."""
    residual: float
    """Relative Kirchhoff residual reached (worst batch column): the residual
    norm over the zero state's (the currents with every free node at 0 V).
    For sinh devices under strong drives that state's currents are
    astronomical (1e63 A at 100 V0), so this reads 1e-50 or less; the
    stopping test does not rely on it alone (every node's imbalance and the
    voltage error are bounded too), and `kcl_error` is the physical check."""
    method: str
    """The method that produced this solution."""
    residual_history: np.ndarray = field(default_factory=partial(np.zeros, 0))
    """The starting relative residual, then the one after each iteration
    (worst batch column): ``iterations`` + 1 entries. For sinh devices, Newton solves the batch columns one after another, and this is
    their histories end to end, each its start's residual and then one per
    Newton step (so ``iterations`` + the number of columns entries, or more
    where source stepping ran stages)."""
    kcl_error: float = 0.0
    """|sum of terminal currents| / (sum |terminal currents| + largest drive x sum of device
    conductances + what double precision resolves of the terminal currents), worst batch column:
    Kirchhoff's current law over the whole array. The second term keeps an equipotential circuit
    (no current) from reading rounding noise over itself; the third, 64 ulps of the largest drive
    times the conductances at each driven end's node, is negligible unless the devices are some
    1e12 times weaker than their wires, where the terminal currents, read from node voltages a
    few ulps apart, are rounding noise (`xbarsim._pcg.kcl_floor`): there an exact solution reads
    up to about 1e-2 (1e-9 S devices on 1e-12 ohm wires: 2.3e-3), the noise over the floor. It
    checks the currents each end's node gives, not `i_terminal`, whose line sums balance the
    array by construction."""
    network: Optional[Network] = field(default=None, repr=False)
    """The validated circuit this solution belongs to (for warm starts and power balance)."""

    @property
    def shape(self):
        """``(M, N)``: word lines, bit lines."""
        return self.v_wl.shape[:2]

    @property
    def driven(self):
        """Which ends are driven: keys as `i_terminal`, boolean (M,) / (N,) arrays, False where the end floats."""
        net = self._network("tell its driven ends")
        return driven_ends(net.ends, net.shape)

    def resolve(self, g, *, tol=None, maxiter=None, callback=None, refactor_fraction=0.05):
        """Solve again after the device conductances changed to `g`.

        Wires, drives and nonlinearity stay as they were, and so does the
        method asked for: an ``"auto"`` solve chooses again for the new
        conductances (`choose_method`; where the wires now outweigh the
        devices beyond `WIRE_DEVICE_RATIO_MAX`, the direct solve). Starts from this
        solution's voltages; when at most `refactor_fraction` of the devices
        changed and the first solve kept its factors (``keep_factors=True``),
        the coarse levels of the multigrid hierarchy are reused as they are
        -- still a valid symmetric positive definite preconditioner, just
        built for nearby conductances -- and only the fine level's line
        factors are recomputed (one pass over the array). A ``"direct"``
        re-solve factors the new array afresh: the old factors as CG's
        preconditioner took 5-8 iterations, 7-10x faster at 512 x 512, but
        the error estimate read from them (exact only for the array they
        factor) passed solutions 1e4-1e5 tol off where floating lines lost
        the devices that held them. The new solution keeps the factors it
        used.

        Parameters
        ----------
        g : array_like, shape (M, N)
            New conductances, siemens.
        tol, maxiter, callback
            As in `solve` (tol defaults to this solution's).
        refactor_fraction : float in [0, 1]
            Largest share of devices that may change with the kept factors
            reused; above it everything is factored afresh.

        Returns
        -------
        Solution

        Raises
        ------
        ParameterError
            Before any compute: ``g`` of another shape, negative or not
            finite, or one that leaves a line with no path to a drive; a
            bad ``tol``, ``maxiter``, ``callback`` or ``refactor_fraction``;
            a `Solution` built by hand (no circuit to re-solve).
        MemoryLimitError
            Before any compute: the re-solve and its copies do not fit.
        ConvergenceError
            The re-solve missed ``tol`` within ``maxiter``, as in `solve`.

        Examples
        --------
        >>> import numpy as np, xbarsim as xs
        >>> g = np.full((8, 8), 2e-4)
        >>> sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), **xs.read_drives(np.full(8, 0.2)))
        >>> g2 = g.copy(); g2[3, 4] = 1e-4  # one device reprogrammed
        >>> new = sol.resolve(g2)
        >>> cold = xs.solve(xs.Crossbar(g2, r_wl=1.0, r_bl=1.0), **xs.read_drives(np.full(8, 0.2)))
        >>> bool(np.allclose(new.i_out, cold.i_out, rtol=1e-8))
        True
        """
        net = self._network("resolve")
        check_fork_safe("resolve")  # before any kernel (the transposed conductances, the solvers)
        # the arguments first (a string refactor_fraction was a bare numpy
        # error, NaN or -1 passed silently; tol was checked after the
        # refactoring)
        tol = getattr(self, "_tol", DEFAULT_TOL) if tol is None else tol
        tol = _check_tol(tol, maxiter, callback)
        fraction = real_scalar(refactor_fraction)
        if fraction is None or not 0 <= fraction <= 1:
            raise ParameterError(f"refactor_fraction must be a number in [0, 1] (the share of devices that may "
                                 f"change while the factors are kept); got {refactor_fraction!r}.")
        # the solve and the copies made on the way to it (converted g, the
        # Crossbar's, its transpose), before the first of them
        _memory.check(self.method, *net.shape, net.batch, nonlinear=not net.linear, ideal_wires=_ideal_wires(net.xbar),
                      pcg=_pcg_hint(net.xbar))
        _memory.check_copy(g, "g", copied=True)
        g = as_real_array(g, "g", "(M, N)", "conductances in siemens")  # a ragged list: not a raw ValueError
        shape = g.shape
        if shape != net.shape:
            raise ParameterError(f"g has shape {shape}; resolve keeps the array, expected {net.shape}.")
        xbar = net.xbar.with_g(g)
        changed = np.count_nonzero(xbar.g != net.g) / xbar.g.size
        new_net = dataclasses.replace(net, xbar=xbar, g=kernel_array(xbar.g), g_t=transposed(xbar.g))
        from .circuit import check_connected, check_floating_ties, check_ranges

        check_ranges(xbar, net.ends, net.batch)  # the terminals and drives against the new conductances
        if np.any((xbar.g > 0) != (net.g > 0)):
            # open devices changed: well-posedness must be checked again
            check_connected(xbar.g, net.ends)
        check_floating_ties(xbar, net.ends)  # as solve does: a bare RuntimeError / SystemError otherwise
        pre = getattr(self, "_preconditioner", None) if changed <= fraction else None
        if pre is not None:
            pre = pre.refresh_fine(new_net)
        # asked for by the first solve; carried by each re-solve, also
        # through a direct one, which keeps no factors (a later re-solve of
        # pcg or mg then kept none either)
        keep = getattr(self, "_keep_factors", getattr(self, "_preconditioner", None) is not None)
        method = getattr(self, "_requested_method", self.method)
        return _solve_network(new_net, method, tol, maxiter, callback, self, pre=pre, keep_factors=keep)

    def _network(self, what):
        """The circuit of this solution, or a ParameterError for a Solution
        built by hand (``network=None``)."""
        if self.network is None:
            raise ParameterError(f"this Solution carries no circuit (network=None: built by hand, not by xs.solve), "
                                 f"so it cannot {what}; solve the circuit with xs.solve and use that solution.")
        return self.network

    def power_supplied(self):
        """Power delivered by the ideal sources, watts (per batch column)."""
        net = self._network("report power")
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for name, spec in net.ends.items():
                if spec is None:
                    continue
                cur = self.i_terminal[name]  # 0 where a line's end floats
                v = spec.v if net.batched else spec.v[:, 0]
                total = total + np.sum(v * cur, axis=0)
        return _finite_power(total, net)

    def power_dissipated(self):
        """Power dissipated in devices, wires and terminal resistors, watts."""
        net = self._network("report power")
        with np.errstate(over="ignore", invalid="ignore"):
            return _finite_power(self._dissipated(net), net)

    def _dissipated(self, net):
        xbar = net.xbar
        vd = self.v_wl - self.v_bl
        pdev = np.sum(self.i_device * vd, axis=(0, 1))
        extra = (None,) * (vd.ndim - 2)
        # the devices' conductance a line's wire current is judged against:
        # G, or for sinh devices their slope G cosh(V / V0) in each batch
        # column (by G alone, lines of devices carrying 1e91 A took the wire
        # current as a difference of device currents, and "dissipated"
        # 9.3e156 W of 3.3e92 supplied)
        g_line = xbar.g
        if not net.linear:
            with np.errstate(over="ignore", invalid="ignore"):
                g_dev = xbar.g[(...,) + extra]
                g_line = np.where(g_dev > 0, g_dev * np.cosh(vd / xbar.v0_full()[(...,) + extra]), 0.0)
        pw = 0.0
        for v, r, i_first, axis in ((self.v_wl, xbar.r_wl_full(), self.i_terminal["left"], 1),
                                    (self.v_bl, xbar.r_bl_full(), self.i_terminal["top"], 0)):
            if r.size:
                pw = pw + _wire_power(v, r[(...,) + extra], self.i_device, g_line, i_first, axis)
        pt = 0.0
        for name, spec in net.ends.items():
            if spec is None:
                continue
            cur = self.i_terminal[name]
            pt = pt + np.sum(spec.r[(...,) + extra] * cur * cur, axis=0)
        return pdev + pw + pt


def _finite_power(total, net):
    """`total` (watts), or a ParameterError where it overflowed: drives the
    range check accepts (it bounds the currents) can carry V I past double
    precision (1e300 V: inf W with NumPy's overflow warnings).
    """
    if np.all(np.isfinite(total)):
        return total
    vmax = float(np.max(net.drive_scale()))
    where = "this solution"
    if net.batched:  # which columns: the others' powers are finite
        bad = np.flatnonzero(~np.isfinite(np.atleast_1d(total)))
        where = f"batch column(s) {', '.join(map(str, bad[:10]))}{' ...' if bad.size > 10 else ''} of this solution"
    raise ParameterError(f"the power of {where} overflows double precision (drives up to {vmax:.3g} V); "
                         "its currents and voltages are finite, but volts times amperes is not: solve with "
                         "drives scaled down (for linear devices the power scales with their square).")


def _wire_power(v, r, i_device, g, i_first, axis):
    """Power in one layer's wire segments (``r`` along ``axis`` of the
    (M, N) layout, batch dims broadcast), per batch column.

    A segment's power is ``dv^2 / r`` from its two node voltages, or
    ``r I^2`` with its current from Kirchhoff's law along the line (the
    current entering at the first end, less the devices' currents up to the
    segment), whichever knows it better: a line whose devices conduct less
    in all than its segments (``max r x sum G < 1``) takes the current. A
    dv a few ulps wide (1e-99 ohm wires: 5.5e67 W "dissipated" against
    7.6e-4 W supplied) is known to an ulp of the node
    voltage, the current to the devices' share of it."""
    steps = np.diff(v, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(r == 0, 0.0, steps * steps / np.where(r == 0, 1.0, r))
    r_line = np.max(r, axis=axis, keepdims=True)
    g_sum = np.sum(g, axis=axis, keepdims=True)  # (M, N) devices, or per batch column (sinh slopes)
    by_current = r_line * g_sum[(...,) + (None,) * (r.ndim - g_sum.ndim)] < 1.0
    if np.any(by_current):
        sign = 1.0 if axis == 1 else -1.0  # word lines lose the devices' current, bit lines gain it
        first = np.expand_dims(i_first, axis)
        current = first - sign * np.cumsum(i_device, axis=axis).take(range(v.shape[axis] - 1), axis=axis)
        p = np.where(by_current, r * current * current, p)
    return np.sum(p, axis=(0, 1))


# ----------------------------------------------------------------------------


def _check_method(method):
    """`method` as one of `METHODS`, named in any case (as the command line
    and the enums of `xbarsim.TransferConfig` take their choices); an unknown
    one is a ParameterError naming the nearest."""
    from ._coerce import nearest_hint

    if isinstance(method, str):
        for name in METHODS:
            if method.lower() == name:
                return name
    alias = {"multigrid": "mg", "cg": "pcg", "lu": "direct", "spsolve": "direct"}.get(str(method).lower())
    near = f" (did you mean {alias!r}?)" if alias else nearest_hint(method, METHODS)
    raise ParameterError(f"unknown method {method!r:.60}; choose one of {METHODS}{near}.")


MIN_TOL = 1e-14
"""Smallest `tol` accepted: below it the Kirchhoff residual sits at the
rounding level of double precision, and a solve could stop on its
recurrence without the true residual reaching `tol` (1e-17 "converged" at
6e-16). Just above it, the rounding level itself can lie above `tol` on
low-resistance wires, whose currents dwarf the devices': a solve then stops
there, with every node's imbalance within what double precision resolves
(`xbarsim._pcg.kcl_bound`), and `Solution.residual` reads a few times
`tol` (1.5e-14 to 4e-14 for tol 1e-14 on a 256 x 256 array with 0.1 ohm
wires, by method)."""


def _check_tol(tol, maxiter, callback=None, name=None):
    """`tol` as a float, or a ParameterError (also for `maxiter` and
    `callback`). A 0-d array or tensor is a number, as everywhere else:
    ``tol=np.array(1e-6)`` was refused as "not a number in (0, 1)".
    `name`: how the messages name the value, value included
    (the command line's ``"--tol 1e-20"``); default ``tol`` and ``tol =
    <value>``."""
    value = real_scalar(tol)
    if value is None or not (math.isfinite(value) and 0 < value < 1):
        raise ParameterError(f"{name or 'tol'} must be a number in (0, 1); got {tol!r}.")
    tol = value
    if tol < MIN_TOL:
        raise ParameterError(f"{name or f'tol = {tol:g}'} is below what double precision resolves; give at least "
                             f"{MIN_TOL:g} (the default, {DEFAULT_TOL:g}, is already near the rounding level).")
    if maxiter is not None and (isinstance(maxiter, (bool, np.bool_)) or not isinstance(maxiter, (int, np.integer))
                                or maxiter < 1):
        raise ParameterError(f"maxiter must be a positive integer or None; got {maxiter!r}.")
    if callback is not None and not callable(callback):
        raise ParameterError(
            f"callback must be a function callback(iteration, relative_residual) or None; "
            f"got {type(callback).__name__}."
        )
    if callback is not None:
        import inspect

        try:
            inspect.signature(callback).bind(0, 0.0)
        except TypeError:  # it failed at the first iteration, mid-solve, with Python's raw TypeError
            name = getattr(callback, "__name__", type(callback).__name__)
            raise ParameterError(f"callback must take two arguments, callback(iteration, relative_residual); "
                                 f"{name}{inspect.signature(callback)} does not.") from None
        except ValueError:  # no signature to read (some builtins): called as it is
            pass
    return tol


def solve(
    xbar: Crossbar,
    left=None,
    right=None,
    top=None,
    bottom=None,
    *,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
    maxiter: Optional[int] = None,
    callback: Optional[Callable[[int, float], None]] = None,
    x0: Optional[Solution] = None,
    keep_factors: bool = False,
) -> Solution:
    """Solve the crossbar circuit (docs/CIRCUIT.md) for its node voltages.

    Parameters
    ----------
    xbar : Crossbar
        The array: conductances, wire resistances.
    left, right : Drive, voltages or None
        Word-line ends (``WL(i, 0)`` / ``WL(i, N-1)``); None floats them all.
        A number or an array (M,) / (M, B) is ``Drive(v)``: ideal sources
        (``r = 0``) of those voltages.
    top, bottom : Drive, voltages or None
        Bit-line ends (``BL(0, j)`` / ``BL(M-1, j)``), as left / right:
        ``bottom=0.0`` holds every bit line at 0 V.
    method : {"auto", "mg", "pcg", "direct"}
        Solver. ``"mg"``: conjugate gradients preconditioned by a multigrid
        cycle whose coarse levels are again crossbars, iterations nearly flat
        in the array size (needs every wire segment r > 0). ``"pcg"``:
        conjugate gradients preconditioned by symmetric line relaxation
        (a tridiagonal solve per line, parallel over lines). ``"direct"``:
        SciPy's SuperLU on the sparse nodal matrix (small arrays; the
        reference). ``"auto"``: direct up to 1024 cells (32 x 32; linear
        devices), pcg up to 16384 (128 x 128), mg above where the wires allow, and direct
        wherever a wire segment outweighs its line's strongest device by
        more than `WIRE_DEVICE_RATIO_MAX` (r g > 1e3), where pcg and mg are
        refused. All are held to the same checks.
        (More in the module's docstring: the module is
        ``sys.modules["xbarsim.solve"]``, as ``xbarsim.solve`` names this
        function.)
    tol : float
        Relative Kirchhoff residual to reach, or double precision's rounding
        level where that is higher (every node's imbalance within 64 ulps of
        the largest drive times the conductances at it; near `MIN_TOL` on
        low-resistance wires, where ``residual`` then reads a few times
        ``tol``).
    maxiter : int, optional
        Iteration cap; default ``max(200, 4 (M + N))``; for sinh devices
        the cap on Newton steps per input column (default 500).
    callback : callable, optional
        ``callback(iteration, relative_residual)`` after every iteration
        (for sinh devices, every Newton step of each batch column in turn,
        source-stepping stages and the accepted last step included, the
        count starting again at 1 with each column: as many calls as
        ``iterations``).
    x0 : Solution, optional
        Warm start: a previous solution of a circuit of the same shape (for
        example before a few conductances changed). Every method starts from
        its voltages (the direct one refines from there).
    keep_factors : bool
        Keep the preconditioner (line factors, multigrid hierarchy) in the
        solution so that `Solution.resolve` can reuse it. Costs about as much
        memory as the solve itself, so it is off by default. A direct solve
        keeps nothing: its re-solve factors afresh (`Solution.resolve`).
        Linear devices only: a Newton solve (sinh devices) factors each
        step's Jacobian afresh, so there is nothing to keep, and `resolve`
        of its solution starts from its voltages alone.

    Returns
    -------
    Solution

    Raises
    ------
    ParameterError, CircuitError
        Bad input or an ill-posed circuit, before any compute.
    MemoryLimitError
        The solve would not fit in available memory.
    ConvergenceError
        The iteration did not reach `tol` within `maxiter`.
    DriveOverflowError
        Sinh device currents that the drives alone push past double
        precision, before any Newton step (both of the above).

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> g = np.full((2, 3), 1e-4)
    >>> sol = xs.solve(xs.Crossbar(g), left=xs.Drive([0.1, 0.2]), bottom=xs.Drive(0.0))
    >>> np.allclose(sol.i_out, g.T @ [0.1, 0.2])
    True
    """
    method = _check_method(method)
    tol = _check_tol(tol, maxiter, callback)
    if not isinstance(keep_factors, (bool, np.bool_)):  # "no" would be truthy
        raise ParameterError(f"keep_factors = {keep_factors!r}; give True or False.")
    if x0 is not None and not isinstance(x0, Solution):
        raise ParameterError(f"x0 must be a Solution from a previous solve; got {type(x0).__name__}.")
    if not isinstance(xbar, Crossbar):
        raise ParameterError(f"xbar must be an xbarsim.Crossbar; got {type(xbar).__name__}.")
    _check_memory(xbar, method, left, right, top, bottom)  # before the network is built
    check_fork_safe("solve")  # before any kernel (building the network runs one)
    net = build_network(xbar, left=left, right=right, top=top, bottom=bottom)
    M, N = xbar.shape
    if x0 is not None:
        try:
            shape = x0.shape
            # complex voltages lost their imaginary part with NumPy's ComplexWarning only
            if any(np.iscomplexobj(getattr(x0, k)) for k in ("v_wl", "v_bl")):
                raise TypeError
            finite = all(np.all(np.isfinite(np.asarray(getattr(x0, k), dtype=float))) for k in ("v_wl", "v_bl"))
        except (AttributeError, TypeError, ValueError):
            raise ParameterError("x0 must be a Solution from a previous solve, with real numeric v_wl and v_bl "
                                 "arrays.") from None
        if shape != (M, N):
            raise ParameterError(f"x0 is a solution of a {shape} array; this one is {(M, N)}. Give x0 a Solution "
                                 "of this array (its conductances may differ), or x0=None for a cold start.")
        wl, bl = np.shape(x0.v_wl), np.shape(x0.v_bl)
        if wl != bl or len(wl) not in (2, 3):
            # a reshape's bare ValueError deep in the solver
            raise ParameterError(f"x0 has v_wl of shape {wl} and v_bl of shape {bl}; a Solution's are both "
                                 f"(M, N) or (M, N, B). Give x0 a Solution from a previous solve.")
        b0 = wl[2] if len(wl) == 3 else 1
        if b0 not in (1, net.batch):
            # only its first column was used, silently
            raise ParameterError(f"x0 is a solution of {b0} input columns; this solve has {net.batch}. Give x0 "
                                 "a solve of the same inputs' batch, or of one column (it starts every column).")
        if not finite:  # a NaN start read as "non-finite voltages ... a bug" after the solve
            raise ParameterError("x0 holds NaN or inf node voltages; give a converged Solution, or no x0.")
    return _solve_network(net, method, tol, maxiter, callback, x0, keep_factors=keep_factors)


def _check_memory(xbar, method, left=None, right=None, top=None, bottom=None, pcg="method='pcg'"):
    """`solve`'s memory refusal (`MemoryLimitError`), from the array and the
    drives' shapes alone, before the network is built (building it already
    takes (lines, B) arrays per drive): the method ``"auto"`` will run
    (`has_ideal_wire`) at the batch the drives ask for (`_batch_of`), as a
    Newton solve when the devices are sinh (``xbar.v0``). The command
    line's pre-checks call it too, with ``pcg="--method pcg"`` (the hint's
    spelling)."""
    M, N = xbar.shape
    batch = _batch_of(left, right, top, bottom, lines=(M, M, N, N))
    nonlinear = xbar.v0 is not None
    ratio = wire_device_ratio(xbar)
    chosen = choose_method(xbar.shape, method, ideal_wire=has_ideal_wire(xbar), nonlinear=nonlinear,
                           wire_ratio=ratio)
    _memory.check(chosen, M, N, batch, nonlinear=nonlinear, ideal_wires=_ideal_wires(xbar),
                  pcg=_pcg_hint(xbar, pcg, ratio))


def _pcg_hint(xbar, spelling="method='pcg'", ratio=None):
    """How a memory refusal offers pcg (`_memory.check`'s ``pcg``): not at
    all where the wires outweigh the devices, which refuses it."""
    ratio = wire_device_ratio(xbar) if ratio is None else ratio
    return spelling if ratio <= WIRE_DEVICE_RATIO_MAX else None


def _ideal_wires(xbar):
    """`_memory.ideal_wire_count` of `xbar`."""
    return _memory.ideal_wire_count(*xbar.shape, xbar.r_wl, xbar.r_bl)


def _batch_of(*drives, lines=None):
    """The batch size the drives ask for, from their shapes alone (no
    conversion): the largest trailing dimension of a 2-D ``v``; 1 when
    there is none. Validation proper is `build_network`'s. ``lines``: the
    number of lines of each drive's side (M for left and right, N for top
    and bottom); a 2-D ``v`` of another length is left to `build_network`
    to refuse (a transposed (B, M) input was refused as a solve of M columns
    needing 1 TiB)."""
    batch = 1
    for k, d in enumerate(drives):
        v = as_drive(d).v if d is not None else None  # a bare voltage array is Drive(v)
        if getattr(v, "is_nested", False):
            continue  # no shape to read (np.shape's lengths are symbolic); build_network refuses it by name
        shape = shape_of(v)
        if shape is None:
            try:
                shape = np.shape(v)
            except Exception:  # ragged or odd: build_network says what is wrong
                shape = ()
        if len(shape) == 2 and (lines is None or shape[0] == lines[k]):
            batch = max(batch, int(shape[1]))
    return batch


def wire_device_ratio(xbar):
    """How far the wires of `xbar` outweigh its devices, line by line: the
    largest, over word and bit lines, of a line's largest segment
    resistance times its largest device conductance (0 without segments),
    which `choose_method` holds against `WIRE_DEVICE_RATIO_MAX`. Per line:
    with the whole array's largest r and g, a 1e8 ohm word line of 1e-9 S
    devices (r g = 0.1 on it) refused pcg and mg on an array of 1e-4 S
    devices."""
    M, N = xbar.shape
    g = np.asarray(xbar.g, dtype=float)
    worst = 0.0
    if N > 1:  # word lines: r_wl (M, N-1) or a scalar
        r = np.broadcast_to(np.asarray(xbar.r_wl, dtype=float), (M, N - 1))
        worst = max(worst, float(np.max(r.max(axis=1) * g.max(axis=1))))
    if M > 1:  # bit lines: r_bl (M-1, N)
        r = np.broadcast_to(np.asarray(xbar.r_bl, dtype=float), (M - 1, N))
        worst = max(worst, float(np.max(r.max(axis=0) * g.max(axis=0))))
    return worst


def has_ideal_wire(xbar):
    """Whether some wire segment of `xbar` is ideal (0 ohm): then ``"auto"``
    picks ``"pcg"`` over ``"mg"`` (`choose_method`), and the memory check
    must size that solve (it sized a multigrid one and refused a solve
    that fits)."""
    M, N = xbar.shape  # a 1-wide array has no segments of that kind (no broadcast to (M, N - 1) here)
    return bool((N > 1 and np.any(np.asarray(xbar.r_wl) == 0)) or (M > 1 and np.any(np.asarray(xbar.r_bl) == 0)))


def choose_method(shape, method="auto", ideal_wire=False, nonlinear=False, wire_ratio=0.0):
    """The method `solve` uses for an array of `shape` when asked for
    `method`: ``"auto"`` picks ``"direct"`` up to `AUTO_DIRECT_MAX_CELLS`
    cells (linear devices only), ``"pcg"`` up to `AUTO_PCG_MAX_CELLS`, else
    ``"mg"`` (or ``"pcg"`` when some wire segment is ideal). Where
    `wire_ratio` (`wire_device_ratio`) exceeds `WIRE_DEVICE_RATIO_MAX`,
    ``"auto"`` picks ``"direct"`` and ``"pcg"`` / ``"mg"`` are refused
    (`ParameterError`)."""
    method = _check_method(method)
    if wire_ratio > WIRE_DEVICE_RATIO_MAX:
        if method in ("pcg", "mg"):
            raise ParameterError(
                f"method={method!r}: a wire segment here is {wire_ratio:.3g} times as resistive as the strongest "
                f"device on its line is (r x g); beyond {WIRE_DEVICE_RATIO_MAX:g} the iterative methods' "
                "error estimate misses the lines' slow mode, and their answers came back up to 5e4 times outside "
                "the tolerance. Use method='direct' (or 'auto', which takes it here), or lower the wire "
                "resistance.")
        if method == "auto":
            return "direct"
    if method != "auto":
        return method
    M, N = shape
    if M * N <= AUTO_DIRECT_MAX_CELLS and not nonlinear:
        return "direct"
    if M * N <= AUTO_PCG_MAX_CELLS or ideal_wire:
        return "pcg"
    return "mg"


WARM_UP_CELLS = 1600
"""Most cells of an iterative method's warm-up array (`warm_up_shape`;
40 x 40, just above the direct solver's cutoff): enough for a multigrid
hierarchy of several levels, cheap next to any solve that needs one."""


def warm_up_shape(shape, method):
    """The array a command line solves first, so that the solve it times
    (`xbarsim solve`, `xbarsim scale`) measures the solve and not Numba's
    compiling or cache loading: never larger than `shape` in either
    dimension, and as large as it up to `WARM_UP_CELLS` cells in its
    orientation, so that a multigrid solve builds coarse levels whenever the
    real one does (a 4 x 4 or 2 x 2 array is its own coarsest level: the
    line smoother and the restriction kernels then compiled inside the timed
    solve). A direct solve takes the same kernels at any
    size: 4 x 4 at most. `method` as `choose_method` resolves it."""
    rows, cols = (int(n) for n in shape)
    if method == "direct":
        return min(4, rows), min(4, cols)
    side = math.isqrt(WARM_UP_CELLS)
    short = min(rows, cols, side)
    long_ = min(max(rows, cols), WARM_UP_CELLS // short)
    return (short, long_) if rows <= cols else (long_, short)


def warm_up(shape, method, r_wl, r_bl, v0=None, batch=False, r_terminal=0.0):
    """Solve, once, the `warm_up_shape` array of ``shape`` with a command
    line's method (as `choose_method` resolves it), wires, device law,
    batching and terminals: the kernels the real solve takes are then loaded
    (or, on an install's first run, compiled) before it is timed."""
    shape = warm_up_shape(shape, method)
    x = np.full((shape[0], 2) if batch else shape[0], 0.1)
    solve(Crossbar(np.full(shape, 1e-4), r_wl=r_wl, r_bl=r_bl, v0=v0), **read_drives(x, r_terminal, r_terminal),
          method=method)


def _resolve_method(net, method, wire_ratio=None):
    from ._multigrid import supports

    wire_ratio = wire_device_ratio(net.xbar) if wire_ratio is None else wire_ratio
    method = choose_method(net.shape, method, ideal_wire=not supports(net), nonlinear=not net.linear,
                           wire_ratio=wire_ratio)
    if method == "mg" and not supports(net):
        raise ParameterError(
            "method='mg' needs every wire segment to have r > 0 (ideal wire segments "
            "merge nodes, which the 2 x 2 coarsening does not handle); use method='pcg' "
            "or 'auto'."
        )
    return method


def _solve_network(net, method, tol, maxiter, callback, x0, pre=None, keep_factors=False):
    """Solve a validated network; `pre` reuses a linear preconditioner."""
    M, N = net.shape
    requested = method
    ratio = wire_device_ratio(net.xbar)  # one pass over the array, for every use below
    method = _resolve_method(net, method, ratio)
    if not net.linear:
        vmax, v0min = float(np.max(net.drive_scale(), initial=0.0)), float(np.min(net.v0))
        if not math.isfinite(vmax / v0min):
            # a drive over v0 past double precision: a raw SystemError (ZeroDivisionError) from the residual kernel
            raise ParameterError(f"drives up to {vmax:.3g} V on sinh devices of v0 down to {v0min:.3g} V: V / v0 "
                                 "overflows double precision. Give v0 in volts (0.1-1 V for TiO2-like devices) and "
                                 "drives within a few hundred v0.")
        if 2.0 * vmax <= SINH_LINEAR * v0min:
            # No device can see more than twice the largest drive (every node
            # lies between the drives), and sinh(x) / x - 1 < x^2 / 6 is below
            # an ulp: the sinh law is the linear one in double precision (and
            # V0 / drive beyond 1e308 would overflow Newton's unit scaling).
            net = dataclasses.replace(net, linear=True)
    _memory.check(method, M, N, net.batch, nonlinear=not net.linear, ideal_wires=_ideal_wires(net.xbar),
                  pcg=_pcg_hint(net.xbar, ratio=ratio))
    if not net.linear:
        from ._newton import solve_newton

        inner = {"direct": "direct", "pcg": "line", "mg": "mg"}[method]
        v_wl, v_bl, iterations, residual, history = solve_newton(
            net, tol=tol, maxiter=maxiter, callback=callback, x0=x0, inner=inner)
        pre, gain = None, 1.0
    elif method == "direct":
        from ._direct import solve_direct

        try:
            v_wl, v_bl, iterations, residual, history, pre = solve_direct(
                net, tol=tol, maxiter=maxiter, callback=callback, x0=x0)
        except ConvergenceError as exc:
            if not (requested == "auto" and maxiter is None and ratio <= WIRE_DEVICE_RATIO_MAX):
                raise
            # auto's direct solve whose factorization lost the digits a
            # floating line of 3e-14 S devices on near-ideal segments needs
            # (refinement stalled): the line solves of pcg keep them apart
            return _auto_fallback(net, "the direct solve", "pcg", exc, tol, maxiter, callback, x0, keep_factors)
        gain = pre.slow_mode_gain
        pre = None  # nothing of it is reused (`Solution.resolve`): SuperLU's factors held for nothing
    else:
        from ._pcg import solve_pcg

        try:
            v_wl, v_bl, iterations, residual, history, pre = solve_pcg(
                net, tol=tol, maxiter=maxiter, callback=callback, x0=x0,
                preconditioner="mg" if method == "mg" else "line", pre=pre,
                gain=getattr(x0, "_slow_mode_gain", 1.0),
            )
            gain = pre.slow_mode_gain
        except np.linalg.LinAlgError:
            # the multigrid's coarsest level lost definiteness to rounding
            # (a floating line whose segments outweigh its devices by about
            # what double precision resolves): NumPy's bare error reached the user
            raise ParameterError(
                f"method={method!r}: the multigrid hierarchy's coarsest level is not positive definite in double "
                "precision: on some line the wire segments' conductance outweighs the devices' by about what "
                "double precision resolves (near-ideal segments on a floating line of very weak devices). "
                "Make such segments ideal (r = 0), or use method='pcg' or 'direct'.") from None
        except ConvergenceError as exc:
            if not (requested == "auto" and method == "pcg" and maxiter is None and pre is None):
                raise
            # auto's pcg on wires far more resistive than the devices (1e6
            # ohm segments on 2-10 kOhm devices at 64 x 64) did not converge
            # in its default iterations, and the default solve failed:
            # the exact solve instead, where it fits
            try:
                _memory.check("direct", M, N, net.batch, ideal_wires=_ideal_wires(net.xbar))
            except MemoryError:
                raise exc from None
            return _auto_fallback(net, "pcg", "direct", exc, tol, maxiter, callback, x0, keep_factors)
    sol = _finish(net, v_wl, v_bl, method, iterations, residual, history)
    object.__setattr__(sol, "_preconditioner", pre if keep_factors else None)
    object.__setattr__(sol, "_keep_factors", bool(keep_factors))
    object.__setattr__(sol, "_tol", tol)
    # the method asked for: a re-solve of an "auto" solve chooses again (the
    # new conductances can call for another method; it was held to pcg and
    # refused where the wires now outweigh the devices)
    object.__setattr__(sol, "_requested_method", requested)
    # CG's estimate of how far its error exceeds the preconditioned residual
    # (`xbarsim._pcg.slow_mode_gain`), the floor of a re-solve's or x0 start's:
    # their first iterations cannot see the slow mode yet, and re-solves
    # stopped after one iteration 3x outside the voltage bound (found by fuzzing)
    object.__setattr__(sol, "_slow_mode_gain", gain)
    return sol


def _auto_fallback(net, failed, method, exc, tol, maxiter, callback, x0, keep_factors):
    """``method="auto"``'s second try: warn that `failed` did not converge
    (`exc`) and solve with `method`, which is asked for by name, so that a
    failure there raises instead of bouncing back; the solution records
    "auto" as asked for, so that a re-solve chooses again."""
    from ._warn import warn

    warn(f"method='auto': {failed} did not converge in {exc.iterations} iterations; solved with "
         f"method={method!r} instead.", RuntimeWarning)
    sol = _solve_network(net, method, tol, maxiter, callback, x0, keep_factors=keep_factors)
    object.__setattr__(sol, "_requested_method", "auto")
    return sol


def _finish(net, v_wl, v_bl, method, iterations, residual, history):
    """Currents, Kirchhoff check and output shapes common to every method."""
    from ._pcg import (coarse_end_currents, cut_currents, end_currents, kcl_floor, line_sum_currents,
                       stiff_by_end)
    from .kernels.lines import TILE
    from .kernels.operator import device_currents

    v_bl_mn = v_bl.transpose(1, 0, 2)
    i_device = np.empty_like(v_wl)
    finite = np.ones(-(-net.shape[0] // TILE), dtype=np.bool_)
    device_currents(net.g, net.v0, not net.linear, v_wl, v_bl, i_device, finite)
    if not finite.all():
        if np.all(np.isfinite(v_wl)) and np.all(np.isfinite(v_bl)) and not net.linear:
            # finite voltages, overflowing currents: a sinh between nodes the
            # drives fix (every node fixed: no Newton iteration looked)
            from ._newton import _overflow

            raise _overflow(history)
        raise ConvergenceError(f"{method} solve produced non-finite node voltages or device currents; this "
                               "is a bug, please report it.", residual_history=history, iterations=iterations)
    stiff = stiff_by_end(net)  # the ends' classification, shared by both current passes
    terminals = end_currents(net, v_wl, v_bl, stiff)
    stacked = np.concatenate(list(terminals.values()), axis=0)
    # current scale: what flows, or what would if every device saw the
    # largest drive voltage (so an equipotential circuit reads ~0, not
    # noise/noise), plus what double precision resolves of the end currents
    device_scale = net.drive_scale() * float(np.sum(net.g))  # (B,): every device at the largest drive
    scale = np.sum(np.abs(stacked), axis=0) + device_scale + kcl_floor(net, stiff)
    with np.errstate(invalid="ignore", divide="ignore"):
        kcl = np.where(scale > 0, np.abs(np.sum(stacked, axis=0)) / np.where(scale > 0, scale, 1.0), 0.0)
    # the reported currents: the kcl sum above keeps each end's own node's
    # current, which line sums would balance by construction
    terminals = line_sum_currents(net, v_wl, v_bl, i_device, terminals, stiff)
    better = cut_currents(net, v_wl, v_bl, i_device, terminals)  # lines driven at both ends
    worst, coarse = coarse_end_currents(net, terminals, i_device, device_scale, better)
    if coarse:
        from ._warn import warn
        from .circuit import _line_names

        where = "; ".join(f"{name} ends of {_line_names('WL' if name in ('left', 'right') else 'BL', lines)}"
                          for name, lines in coarse)
        # i_out is the bottom ends' current: affected where they are named
        spared = ("i_device and the node voltages are not affected; i_out, the bottom ends' current, is"
                  if any(name == "bottom" for name, _ in coarse)
                  else "i_out, i_device and the node voltages are not affected")
        warn(f"terminal currents of lines driven at both ends are resolved only to about {worst:.2g} times the "
             f"current of their line at the {where}: with near-ideal terminals or wire, each end's share is a "
             f"difference of node voltages within an ulp of the drive ({spared}). Give those ends larger terminal "
             "resistances (their lines larger wire segments, where they have any), or drive each such line at "
             "one end only.", RuntimeWarning)
    bottom = net.ends["bottom"]
    i_out = np.zeros((net.shape[1], net.batch))
    if bottom is not None:
        i_out = 0.0 - terminals["bottom"]  # not -x: no -0.0 where a bottom end floats
    if not net.batched:
        squeeze = lambda a: a[..., 0]
        v_wl, v_bl_mn, i_device, i_out = map(squeeze, (v_wl, v_bl_mn, i_device, i_out))
        terminals = {k: squeeze(v) for k, v in terminals.items()}
    return Solution(
        v_wl=v_wl,
        v_bl=v_bl_mn,
        i_device=i_device,
        i_out=i_out,
        i_terminal=terminals,
        iterations=int(iterations),
        residual=float(residual),
        method=method,
        residual_history=history,
        kcl_error=float(np.max(kcl)),
        network=net,
    )
