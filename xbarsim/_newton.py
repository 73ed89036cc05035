"""Damped Newton for sinh (selectorless) devices.

The nodal equations of ``I = G V0 sinh(V / V0)`` devices, linear wires and
terminals are the gradient of a strictly convex energy

    E(V) = sum_devices G V0^2 cosh(Vd / V0) + sum_wires g dV^2 / 2
           + sum_terminals g (V - Vs)^2 / 2,

so Newton's method with a line search on E converges from any start. The
Jacobian is the crossbar's own nodal matrix with device conductance
``G cosh(Vd / V0)``: every Newton step is a linear crossbar solve
(`pcg_core` with the line or multigrid preconditioner, or SuperLU),
its factors refreshed once per step. Inner solves are inexact: the
residual ``rel`` is cut to ``max(0.1 tol, min(0.1, rel) rel)`` (a forcing
term of ``min(0.1, rel)``, never below a tenth of the tolerance), which
keeps the outer convergence superlinear; once Kirchhoff's law is met, the
step that may end the solve is solved to ``0.01 rel`` and on until its
voltage correction is accurate enough to serve as the error estimate.

The line search works on ``phi(t) = E(V + t d)``, through its derivative
``phi'(t) = -F(V + t d) . d`` (F the Kirchhoff residual), so cosh never has
to be summed and an overflowing trial point just reads as "too far".
A batch of inputs is solved column by column (each has its own Jacobian).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .circuit import transposed
from .exceptions import ConvergenceError, DriveOverflowError, ParameterError
from ._pcg import (ITOL_PER_TOL, VTOL_PER_TOL, TerminalNodes, Workspace, end_currents, initial_voltages,
                   make_preconditioner, pcg_core, residual, residual_scale, segment_gmax, solve_pcg,
                   voltage_bound)


def _column(net, b):
    """The network restricted to batch column b."""
    def lay(layer):
        return dataclasses.replace(layer, term_v=np.ascontiguousarray(layer.term_v[:, :, b:b + 1]))
    ends = {k: (None if s is None else dataclasses.replace(s, v=s.v[:, b:b + 1] if s.v.shape[1] > 1 else s.v)) for k, s in net.ends.items()}
    return dataclasses.replace(net, wl=lay(net.wl), bl=lay(net.bl), batch=1, ends=ends)


def _linearized(net, g_eff):
    return dataclasses.replace(net, g=g_eff, g_t=transposed(g_eff), linear=True)


class _CorrectionCheck:
    """`pcg_core`'s accuracy check for a Newton correction: CG's estimate
    of the correction's own voltage error, ``gain |z|`` (`slow_mode_gain`),
    within ``bound`` volts."""

    def __init__(self, bound):
        self.bound = bound

    def passed(self, x, z, work, r, gain):
        return gain * _absmax(*z) <= self.bound


def _make_inner(net_j, kind):
    if kind == "direct":
        from ._direct import factor_or_refuse

        return factor_or_refuse(net_j, newton=True)
    return make_preconditioner(net_j, kind)


def _absmax(a_wl, a_bl):
    """Largest |value| over both layers (a voltage correction's size); NaN
    when either holds one (Python's ``max(x, nan)`` is ``x``: a NaN in the
    bit-line layer passed the overflow guard)."""
    a, b = float(np.max(np.abs(a_wl))), float(np.max(np.abs(a_bl)))
    return a if (a >= b or a != a) else b


class _Conductances:
    """The conductances `_kirchhoff_met`'s rounding floor counts: ``largest``
    over the array (devices' Jacobian ``g_eff`` and wire segments ``gwire``),
    and `per_node` (`_node_conductances`), computed on first use."""

    def __init__(self, net, g_eff, gwire):
        self.net, self.g_eff = net, g_eff
        self.largest = max(gwire, float(np.max(g_eff, initial=0.0)))
        self._nodes = None

    def per_node(self):
        if self._nodes is None:
            self._nodes = _node_conductances(self.net, self.g_eff)
        return self._nodes


def _node_conductances(net, g_eff):
    """Per layer, (L, n, 1) arrays: the conductance meeting at each node's
    group (its devices' ``g_eff``, the Jacobian's, and its non-ideal wire
    segments, summed over the nodes an ideal wire merges), on every node of
    the group (the residual sits on its first)."""
    out = []
    for layer, gd in ((net.wl, g_eff), (net.bl, g_eff.T)):
        L, n = layer.gid.shape
        a = np.array(gd, dtype=float)
        if n > 1:
            seg = np.where(layer.gid[:, 1:] != layer.gid[:, :-1], layer.seg_g[:, :n - 1], 0.0)
            a[:, :-1] += seg
            a[:, 1:] += seg
        if np.all(layer.ngroups == n):  # every node its own group: nothing to sum
            out.append(a[:, :, None])
            continue
        flat = (np.arange(L, dtype=np.intp)[:, None] * n + layer.gid).ravel()
        total = np.bincount(flat, weights=a.ravel(), minlength=L * n).reshape(L, n)
        out.append(np.take_along_axis(total, layer.gid.astype(np.intp), axis=1)[:, :, None])
    return tuple(out)


def _device_slopes(net, x):
    """``G cosh(x)``, the devices' small-signal conductances at ``x = V / V0``
    (M, N): an open device (G = 0) contributes 0, also where cosh overflows
    (0 * inf was NaN, with a RuntimeWarning)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(net.g > 0, net.g * np.cosh(x), 0.0)


def _kirchhoff_met(net, v_wl, v_bl, F_wl, F_bl, rel, tol, vscale, gmax, nodes):
    """``(met, every node met)`` for the Kirchhoff residual ``F``.

    Met: the relative residual ``rel <= tol``, or no node's imbalance above
    what double precision resolves at the conductances meeting at that
    node (``gmax``, `_Conductances`: per layer, (L, n, 1); device
    Jacobian ``G cosh(V/V0)`` and wire segments; `kcl_bound`), plus a
    resistive end's at its own node (`TerminalNodes` ``nodes``). The floor
    was the array's largest conductance at every node: two devices at 135 V0
    carrying 1e55 A between them set it to 1e38 A, and an independent bit
    line 1e24 A out of balance (1.1 V off) was returned as converged.
    Unlike CG's recursively
    updated residual, Newton's is evaluated from the voltages, and it has
    that floor: a 1 V drive through 2.5 kohm into devices on 0.25 ohm wire
    (4 S) sets the relative residual's scale to 0.4 mA, while rounding at
    0.5 V across 4 S leaves 4e-16 A, 1e-12 of it; Newton stalled at 1.3e-12
    and raised ConvergenceError (found by the sinh property test).

    Every node: each node's imbalance within the linear solves' bound,
    `ITOL_PER_TOL` tol of the total terminal current (plus the same
    floor). The relative residual alone is measured against the zero state,
    into which an ideal drive next to a 0.1 ohm segment puts 10 A per volt:
    Newton stopped with 3.8e-12 A at a bit-line node of a circuit carrying
    1.2 mA (V0 = 1 V, the circuit of
    `test_kirchhoff_holds_next_to_an_ideal_drive_on_a_low_resistance_bit_line`)."""
    F = (F_wl, F_bl)
    worst = _absmax(F_wl, F_bl)

    def met(itol, total):
        # the per-node floor costs O(nodes) arrays: asked only where the
        # imbalance needs a floor and passes the array-wide one (which is
        # no smaller at any node)
        if worst <= itol * total:
            return True
        if not bool(np.all(nodes.kcl_met(F, lambda F: _absmax(*F), itol, total, vscale, gmax.largest))):
            return False
        return bool(np.all(nodes.kcl_met(F, lambda F: _absmax(*F), itol, total, vscale, gmax.per_node())))

    # an iterate whose currents or Jacobian overflow is not an answer,
    # however loose a bound infinity makes
    if not (math.isfinite(worst) and math.isfinite(gmax.largest) and (rel <= tol or met(0.0, 0.0))):
        return False, False
    with np.errstate(over="ignore", invalid="ignore"):
        total = sum(float(np.sum(np.abs(c))) for c in end_currents(net, v_wl, v_bl).values())
    return True, math.isfinite(total) and met(ITOL_PER_TOL * tol, total)


OVERFLOW_ADVICE = "lower the drive voltages, raise v0, or give the drives a terminal resistance."
"""The advice of an overflow error (`xbarsim solve` words it as its options)."""


def _overflow(history, at_zero_state=False):
    """The error of a drive whose device currents overflow double precision:
    between nodes the drives fix, or (``at_zero_state``) in the norm of the
    residual of the zero state (the free nodes at 0 V, and again at the
    middle of the ideal drives' range), which the solve measures its
    residual against."""
    where = ("with the free nodes at 0 V, and at the middle of the ideal drives' range, the states Newton "
             "measures its residual against, a device next to an ideal drive sees over some 355 V0 and the "
             "currents' norm overflows (the solution itself may not; the solve cannot tell)" if at_zero_state else
             "between nodes the drives fix (|V/V0| > 710)")
    return DriveOverflowError(
        f"device currents overflow double precision: {where}; {OVERFLOW_ADVICE}",
        residual_history=np.array(history), iterations=0)


def _ideal_midrange(net):
    """The middle of the range of the ideal drives' voltages (0 without
    any), where `_newton_column` puts the free nodes of the state its
    residual is measured against when 0 V overflows."""
    v_wl, v_bl = initial_voltages(net)
    fixed = [v[_fixed_nodes(layer)] for v, layer in ((v_wl[:, :, 0], net.wl), (v_bl[:, :, 0], net.bl))]
    values = np.concatenate(fixed)
    return 0.5 * (float(values.max()) + float(values.min())) if values.size else 0.0


def _newton_column(net, tol, maxiter, report, x0, inner, history, staged=False):
    """Newton on one batch column; ``report(relative_residual)``, if given,
    is called after every step that `history` records, the accepted last one
    and source-stepping stages' included."""
    M, N = net.shape
    if all(_fixed_nodes(layer).all() for layer in (net.wl, net.bl)):
        # the drives fix every node (ideal wires and drives): nothing to
        # solve. A Newton step that moved nothing was counted, one per
        # column, where a linear solve says 0
        history.append(0.0)
        v_wl, v_bl = initial_voltages(net)
        return v_wl, v_bl, 0, 0, 0.0
    work = Workspace(M, N, 1)
    stepped = 0  # Newton steps of source stepping (`_source_stepping`)
    free = 0.0  # the free nodes' voltage in the state the residual is measured against
    with np.errstate(over="ignore", invalid="ignore"):
        scale = residual_scale(net, work)
        if not np.all(np.isfinite(scale)):
            # The zero state's sinh currents overflow their norm: a device
            # next to an ideal drive sees some 355 V0 or more with the free
            # nodes at 0 V. Ideal drives shifted together by a few volts did
            # that to circuits that solve unshifted: the
            # free nodes are put at the middle of the ideal drives' range
            # instead, which a common shift moves with them.
            free = _ideal_midrange(net)
            scale = residual_scale(net, work, free)
    if not np.all(np.isfinite(scale)):
        # Some such circuits solve at modest |V/V0| (ngspice: <= 15), but
        # measuring them against the small-signal zero state instead (tried,
        # session 29) let the stopping test's rounding floor, set by the
        # largest device slope G cosh(V / V0), pass a node 0.36 A out of
        # balance where the solution keeps devices at 500 V0: a wrong answer
        # in place of this error.
        raise _overflow(history, at_zero_state=True)
    safe = np.where(scale > 0, scale, 1.0)
    vscale = float(net.drive_scale()[0])
    gwire = segment_gmax(net)
    nodes = TerminalNodes(net)
    F_wl = np.empty((M, N, 1)); F_bl = np.empty((N, M, 1))
    if x0 is not None:
        # a warm start no closer than the zero state is dropped: with
        # all-zero drives (scale 0) the old voltages passed as converged at
        # once; a kept one keeps its residual F
        with np.errstate(over="ignore", invalid="ignore"):
            residual(net, x0[0], x0[1], F_wl, F_bl)
            start = float(np.sqrt(work.dot(F_wl, F_wl, F_bl, F_bl))[0])
        if not (staged or start < float(scale[0])):
            x0 = None
    if x0 is None:
        # start from the linear (small-signal) solution
        v_wl, v_bl = _linear_solve(dataclasses.replace(net, linear=True), inner, work)
        xmax = float(np.max(np.abs(v_wl[:, :, 0] - v_bl[:, :, 0].T) / net.v0))
        if xmax > X_START:
            v_wl, v_bl, stepped = _source_stepping(net, v_wl, v_bl, X_START / xmax, maxiter, inner, history,
                                                   report)
    else:
        v_wl, v_bl = x0
    T_wl = np.empty((M, N, 1)); T_bl = np.empty((N, M, 1))
    G_wl = np.empty((M, N, 1)); G_bl = np.empty((N, M, 1))
    d_wl = np.empty((M, N, 1)); d_bl = np.empty((N, M, 1))
    if x0 is None:
        with np.errstate(over="ignore", invalid="ignore"):
            residual(net, v_wl, v_bl, F_wl, F_bl)
    if not (np.all(np.isfinite(F_wl)) and np.all(np.isfinite(F_bl))):
        # the start overflows sinh (a linear start under a drive of hundreds
        # of V0): start from the drives alone, the free nodes as in the
        # state the residual is measured against
        v_wl, v_bl = initial_voltages(net, out=(np.full((M, N, 1), free), np.full((N, M, 1), free)))
        with np.errstate(over="ignore", invalid="ignore"):
            residual(net, v_wl, v_bl, F_wl, F_bl)
        if not (np.all(np.isfinite(F_wl)) and np.all(np.isfinite(F_bl))):
            raise _overflow(history, at_zero_state=True)
    rel = float((np.sqrt(work.dot(F_wl, F_wl, F_bl, F_bl)) / safe)[0]) if scale[0] > 0 else 0.0
    history.append(rel)
    inner_iters = 0
    recent = []  # residuals of the last STALL_STEPS full Newton steps (cap inactive)
    cap = np.inf  # largest |V/V0| at which the Jacobian's devices are evaluated
    pre = None  # the last step's inner preconditioner
    pre_gain = np.ones(1)  # its CG's slow-mode gain (`slow_mode_gain`)

    def corrected(c_wl, c_bl, gmax):
        """``T = v + c`` and its residual ``G``; returns T's relative residual
        and whether T passes Kirchhoff at every node."""
        np.add(v_wl, c_wl, out=T_wl)
        np.add(v_bl, c_bl, out=T_bl)
        with np.errstate(over="ignore", invalid="ignore"):
            residual(net, T_wl, T_bl, G_wl, G_bl)
        trial = float((np.sqrt(work.dot(G_wl, G_wl, G_bl, G_bl)) / safe)[0]) if scale[0] > 0 else 0.0
        return trial, _kirchhoff_met(net, T_wl, T_bl, G_wl, G_bl, trial, tol, vscale, gmax, nodes)[1]

    last_move = np.inf  # largest node change of the last accepted step
    v0_min = float(np.min(net.v0))
    it = 0
    while stepped + it < maxiter:
        it += 1
        x = np.abs(v_wl[:, :, 0] - v_bl[:, :, 0].T) / net.v0
        if cap < np.inf:
            np.minimum(x, cap, out=x)
        # Stopping test, as for linear solves: the Kirchhoff residual, at
        # every node too (`_kirchhoff_met`), and the node voltages within
        # VTOL_PER_TOL * tol of the largest node voltage (`voltage_bound`:
        # at least 1e-3 of the largest drive). A step that moved no node by
        # more than that, and by no more than NEWTON_LOCAL of V0, leaves an
        # error far below it (quadratic convergence); otherwise the next
        # correction is solved to 1 % (and until CG's estimate of its own
        # voltage error is within half the bound, `_CorrectionCheck`) and its
        # size is the error estimate. A floating line held only through its
        # devices can hide 1e-10 V of error behind a 1e-13 residual.
        g_eff = _device_slopes(net, x)  # the Jacobian's device conductances
        gmax = _Conductances(net, g_eff, gwire)
        global_met, kcl_met = _kirchhoff_met(net, v_wl, v_bl, F_wl, F_bl, rel, tol, vscale, gmax, nodes)
        if kcl_met:  # the voltage bound is read only once Kirchhoff is met
            vtol = float(voltage_bound(VTOL_PER_TOL * tol, _absmax(v_wl, v_bl), vscale))
            # A Newton step's size measures the error it leaves only where the
            # devices' conductances change little over it (`NEWTON_LOCAL`):
            # from the steep side of a device at 100 V0, Newton moves a node
            # about V0 a step however far it is from the answer, and at tol
            # 1e-3 (a bound of 1.2 V0) solves under drives of 75-150 V0
            # stopped up to 22x outside the bound (found by fuzzing against a
            # dense solve). Source-stepping stages only prepare a start.
            etol = vtol if staged else min(vtol, NEWTON_LOCAL * v0_min)
        if kcl_met and last_move <= etol:
            return v_wl, v_bl, stepped + it - 1, inner_iters, rel
        # the last full step's Jacobian is within ~1 % of this one
        still = kcl_met and cap == np.inf and last_move <= JACOBIAN_STILL * v0_min
        if still and pre is not None and inner == "mg":
            # The last full step moved no node by more than 1 % of V0, so the
            # Jacobian it factored is within ~1 % of the current one, and its
            # multigrid cycle P can judge the voltages without a new
            # hierarchy and inner solve: one preconditioned Richardson step,
            # z1 = P F(v), T = v + z1, z2 = P F(T), leaves an error at T of
            # about z2 / (1 - q), q = z2 / z1; T is the answer when that is
            # within half the bound (`Z_SAFETY`) and T passes Kirchhoff.
            # Without these conditions (z1 or z2 alone at the full bound,
            # after any step, and with the line or exact preconditioner too)
            # the estimate fell 1.2-3.7x short of the error.
            z_wl, z_bl = work.z
            pre.apply(F_wl, F_bl, z_wl, z_bl)
            z1 = _absmax(z_wl, z_bl)
            trial, passed = corrected(z_wl, z_bl, gmax)
            if passed:
                pre.apply(G_wl, G_bl, z_wl, z_bl)
                z2 = _absmax(z_wl, z_bl)
                q = z2 / z1 if z1 > 0 else 0.0
                # the error left at T: z2 / (1 - q) for the modes the two
                # steps saw, and at most `pre_gain` z2 (`slow_mode_gain`, as
                # found by the step's own CG) for the slow modes they did
                # not: the ratio alone let a re-solve stop 1.13x outside the
                # bound (q 0.27 where the gain was 1.9; found by fuzzing)
                if q < 1 and max(z2 / (1 - q), float(pre_gain[0]) * z2) <= Z_SAFETY * vtol:
                    history.append(trial)
                    if report is not None:
                        report(trial)
                    return T_wl, T_bl, stepped + it, inner_iters, trial
        d_wl[...] = 0.0
        d_bl[...] = 0.0
        np.copyto(T_wl, F_wl)
        np.copyto(T_bl, F_bl)
        eta = 0.01 * rel if global_met else max(0.1 * tol, min(0.1, rel) * rel)
        # Where this step may end the solve (Kirchhoff met), its correction
        # is the error estimate and must be accurate in voltage, not only in
        # residual: the inner solve runs on until CG's estimate of its own
        # voltage error (`_CorrectionCheck`) is within Z_SAFETY of the bound.
        # Solved to the residual alone, one multigrid cycle gave a
        # correction a fifth of the error it was to measure, and a source-
        # stepped solve stopped 1.13x outside the bound (found by fuzzing)
        check = _CorrectionCheck(Z_SAFETY * vtol) if kcl_met else None
        try:
            net_j = _linearized(net, g_eff)
            pre = _make_inner(net_j, inner)
            # raised by pcg_core as its CG runs; kept from the last step while
            # the Jacobian is within ~1 % of the one it solved. Restarted at
            # 1, a correction solved from a residual at rounding took two CG
            # iterations that saw no slow mode, and a 150 V0 solve ended 2.6x
            # outside the voltage bound where the last steps' CG had found a
            # gain of 32 (found by fuzzing against a dense solve)
            if not still:
                pre_gain = np.ones(1)
            with np.errstate(over="ignore", invalid="ignore"):
                k, ok = pcg_core(net_j, net_j.g, net_j.g_t, pre, T_wl, T_bl, d_wl, d_bl, scale, eta,
                                 max(200, 4 * (M + N)), work, check=check, gain=pre_gain,
                                 cold=np.ones(1, dtype=bool))  # d starts at 0
                slope0 = -float(work.dot(F_wl, d_wl, F_bl, d_bl)[0])
        except (RuntimeError, np.linalg.LinAlgError):
            # a Jacobian too ill-conditioned to factor (SuperLU: singular;
            # multigrid: a coarsest level that lost definiteness)
            pre, k, ok, slope0 = None, 0, False, np.nan
        if kcl_met and ok and _absmax(d_wl, d_bl) <= etol:
            # the correction d, solved to eta, is within the bound: v is the
            # answer, and v + d (its Newton step, error ~ |d|^2) a better one
            # when it passes Kirchhoff too
            inner_iters += k
            trial, passed = corrected(d_wl, d_bl, gmax)
            if passed:
                history.append(trial)
                if report is not None:
                    report(trial)
                return T_wl, T_bl, stepped + it, inner_iters, trial
            return v_wl, v_bl, stepped + it - 1, inner_iters, rel
        inner_iters += k
        t = _line_search(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl,
                         slope0) if ok and slope0 < 0 else None
        if t is None and not kcl_met and ok and slope0 < 0:
            t = _rounding_step(net, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0,
                               nodes.bounds(0.0, 0.0, vscale, gmax.per_node()))
        if t is None and kcl_met and ok and slope0 < 0:
            # Kirchhoff is met at every node, but the correction is above the
            # voltage bound and the line search, whose slope sums over every
            # node, cannot judge it: rounding of huge currents at one node
            # (two devices at 135 V0 carrying 1e55 A between fixed lines)
            # drowns a 1e24 A imbalance at another. This returned the
            # iterate as the answer, 1.1 V off. The step
            # is taken with every node's move limited to V0 (SPICE's voltage
            # limiting), and the stopping tests judge the next iterate.
            t = min(1.0, v0_min / max(_absmax(d_wl, d_bl), np.finfo(float).tiny))
            np.multiply(d_wl, t, out=T_wl); np.add(T_wl, v_wl, out=T_wl)
            np.multiply(d_bl, t, out=T_bl); np.add(T_bl, v_bl, out=T_bl)
            with np.errstate(over="ignore", invalid="ignore"):
                residual(net, T_wl, T_bl, G_wl, G_bl)
            if not (np.all(np.isfinite(G_wl)) and np.all(np.isfinite(G_bl))):
                t = None
        if t is None:
            # A start far from the solution (the linear one, under a drive of
            # many V0) puts cosh of tens into the Jacobian: conductances 1e20
            # times the wires'. Any symmetric positive definite matrix gives
            # a descent direction of the convex energy, so the step is taken
            # again with the devices' Jacobian evaluated at |V/V0| <= cap,
            # halving the cap until a step succeeds; after each accepted
            # step the cap doubles, so near the solution it is inactive and
            # the steps are Newton's again.
            top = float(np.max(x)) if np.all(np.isfinite(x)) else np.inf
            cap = min(top, 600.0) / 2 if cap == np.inf else cap / 2
            pre = None
            if cap >= 0.25:
                it -= 1
                continue
            reason = ("the inner linear solve did not converge" if not ok else
                      f"the step is not a descent direction (slope {slope0:.3g})" if not slope0 < 0 else
                      "the line search found no acceptable step")
            raise ConvergenceError(
                f"Newton step {it}: {reason}, even with the device Jacobian limited to |V/V0| <= 0.25 "
                f"(relative Kirchhoff residual {rel:.3g}). Lower the drive voltages or raise v0, or "
                "loosen tol; the residual history is attached.",
                residual_history=np.array(history), iterations=it)
        # T (trial voltages) and G (their residual) hold the accepted point
        v_wl, T_wl = T_wl, v_wl
        v_bl, T_bl = T_bl, v_bl
        F_wl, G_wl = G_wl, F_wl
        F_bl, G_bl = G_bl, F_bl
        # a full step leaves an error of order its size squared, a damped
        # one about (1 - t) / t times the move: only a full step's size
        # bounds the error left (`last_move` exit)
        last_move = _absmax(d_wl, d_bl) if t == 1.0 else np.inf
        new_rel = float((np.sqrt(work.dot(F_wl, F_wl, F_bl, F_bl)) / safe)[0]) if scale[0] > 0 else 0.0
        history.append(new_rel)
        if report is not None:
            report(new_rel)
        # Stalled: STALL_STEPS full Newton steps in a row that did not even
        # halve the residual together. (Each step gaining less than 2x is
        # not a stall: far from the solution, damped steps gain 1.3-1.8x
        # each and still arrive.)
        recent = recent[-(STALL_STEPS - 1):] + [rel] if cap == np.inf else []
        rel = new_rel
        cap = cap * 2 if cap < 600.0 else np.inf
        if len(recent) == STALL_STEPS and rel > tol and rel >= 0.5 * recent[0]:
            break
    raise ConvergenceError(
        f"Newton did not reach tol={tol:g} (relative Kirchhoff residual {rel:.3g} after "
        f"{len(history) - 1} steps; node voltages are converged when the next correction is "
        f"within {VTOL_PER_TOL:g} tol of the largest node voltage and {NEWTON_LOCAL:g} of the smallest "
        "V0). Loosen tol or raise maxiter; the residual history is attached.",
        residual_history=np.array(history), iterations=len(history) - 1)


NEWTON_MAXITER = 500
"""Default cap on Newton steps per batch column, source-stepping stages
included (a 100 V drive of V0 = 0.1 V devices through 1 ohm takes 43-44
steps at 48-128 squared with the line-relaxation inner solve, 39-42 with
multigrid and direct; 110-125 and 77-93 before source stepping's stages
started from a predicted start)."""

NEWTON_LOCAL = 0.1
"""Newton stops on the size of its last full step, or of its next correction,
only where that is within this fraction of the smallest V0 as well as within
the voltage bound: over such a step no device's conductance changes by more
than ~10 %, so the error left is a small fraction of the step. Farther out a
step says little (about V0 a step from the steep side of a device at many
V0, whatever the distance to the answer)."""

JACOBIAN_STILL = 0.01
"""With the multigrid inner solve, Newton may stop on one cycle of the last
step's hierarchy (a preconditioned Richardson step) when that step moved
no node by more than this fraction of the smallest V0 (its Jacobian then
within ~1 % of the current one)."""

Z_SAFETY = 0.5
"""That Richardson step's error estimate must be within this fraction of
the voltage bound, and so must a correction's own error (CG's estimate,
`_CorrectionCheck`) where the correction may end the solve."""

STALL_STEPS = 20
"""Full Newton steps after which a residual that has not halved over them
ends the iteration (`ConvergenceError`). The residual is not monotone under
the energy line search: far from the solution it can rise tenfold in one
step and then fall 1.3-1.8x per step (8 steps stopped such a stage early)."""

X_START = 20.0
"""Largest |V/V0| of a device in the linear start that Newton takes as it
is; beyond it (a drive of many V0) the drives are stepped up
(`_source_stepping`)."""


def _linear_solve(lin, inner, work=None):
    """The node voltages of the linear network `lin` to relative Kirchhoff
    residual 1e-6 with Newton's inner solver: Newton's start, and source
    stepping's predictor. `work`: a `Workspace` of `lin`'s shape to use
    (the direct solve's CG), or None for a new one."""
    if inner != "direct":
        return solve_pcg(lin, tol=1e-6, preconditioner=inner)[:2]
    M, N = lin.shape
    if work is None:
        work = Workspace(M, N, 1)
    v_wl, v_bl = initial_voltages(lin)
    r_wl = np.empty((M, N, 1)); r_bl = np.empty((N, M, 1))
    residual(lin, v_wl, v_bl, r_wl, r_bl)
    d_wl = np.zeros_like(v_wl); d_bl = np.zeros_like(v_bl)
    # measured against the linear circuit's own zero state, as
    # `solve_pcg` measures it: against the sinh one's (1e11 times
    # larger under 2 V on 0.05 V devices) the start passed at 0
    # iterations, stayed the zero state, and Newton took twice the
    # steps of the other inner solvers
    pcg_core(lin, lin.g, lin.g_t, _make_inner(lin, "direct"), r_wl, r_bl, d_wl, d_bl,
             residual_scale(lin, work), 1e-6, 10, work)
    return v_wl + d_wl, v_bl + d_bl


def _source_stepping(net, v_wl, v_bl, s, maxiter, inner, history, report=None):
    """Source stepping, as SPICE does when its operating point fails: the
    linear start ``v`` puts ``|V/V0|`` of a device far above `X_START`
    (``s`` times the drives would bring it there), where ``cosh`` makes the
    Jacobian's device conductances 1e20 times the wires' and Newton's steps
    meaningless. Solve with the drives scaled by ``s`` (from the linear start
    scaled alike, exact for those drives), then double ``s`` up to 1, each
    stage to 1e-6 Kirchhoff from the last one's voltages plus their linear
    response to the drive increment, evaluated where the devices sit
    (`_predicted`; the increment halved while that start overflows).
    Returns the start for the full drives and the Newton steps spent."""
    from ._pcg import _scaled

    v_wl = v_wl * s
    v_bl = v_bl * s
    steps = 0
    while s < 1.0:
        stage = _scaled(net, np.array([s]))
        try:
            # staged: the stage's start is kept however far its residual
            # (the first one's equalled the zero state's, was dropped, and
            # its linear re-solve, at X_START (1 + eps), stepped again
            # inside the stage)
            v_wl, v_bl, k, _, _ = _newton_column(stage, 1e-6, maxiter - steps, report, (v_wl, v_bl), inner,
                                                 history, staged=True)
        except ConvergenceError as exc:
            raise ConvergenceError(
                f"source stepping (the drives raised in stages, as SPICE does for a start far from the "
                f"solution) failed at {100 * s:.3g} % of the drives after {len(history) - 1} Newton steps in "
                "all. Raise maxiter, try method='direct' or 'mg' (stronger inner solves), lower the drive "
                "voltages or raise v0.",
                residual_history=np.array(history), iterations=len(history) - 1) from exc
        steps += k
        g_eff = _device_slopes(net, (v_wl[:, :, 0] - v_bl[:, :, 0].T) / net.v0)
        nxt = min(1.0, 2.0 * s)
        for _ in range(STAGE_HALVINGS):
            # The next stage starts from this one's voltages plus their
            # linear response to the drive increment, at the devices'
            # conductance G cosh(V / V0) where they sit (an Euler predictor).
            # With only the fixed nodes moved, a device between a fixed node
            # and a free one saw the whole increment: 0.02 V devices on an
            # ideal 18 V drive, doubled from 50 % to 100 %, 446 V0, their
            # currents' norm overflowed and every step was "not a descent
            # direction". Where the start still overflows, the increment is
            # halved.
            after = _scaled(net, np.array([nxt]))
            start = _predicted(net, after, v_wl, v_bl, g_eff, s, nxt, inner)
            if _norm_finite(after, *start):
                break
            nxt = 0.5 * (s + nxt)
        s = nxt
        v_wl, v_bl = start
    return v_wl, v_bl, steps


STAGE_HALVINGS = 30
"""Source stepping halves a stage's drive increment at most this many times
while the start it gives overflows the currents' norm."""


def _predicted(net, after, v_wl, v_bl, g_eff, s, nxt, inner):
    """The start of the stage `after` (`net` with its drives scaled by `nxt`)
    from the solution ``v`` at `s`: ``v`` plus the linear response to the
    drive increment at device conductances `g_eff`; with only the fixed
    nodes moved where `g_eff` or that solve fails (SuperLU's singular
    factor, refused as a ParameterError when a Newton step meets it, is no
    reason to refuse a start)."""
    from types import SimpleNamespace

    from ._pcg import _scaled

    if np.all(np.isfinite(g_eff)):
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                d_wl, d_bl = _linear_solve(_linearized(_scaled(net, np.array([nxt - s])), g_eff), inner)
            if np.all(np.isfinite(d_wl)) and np.all(np.isfinite(d_bl)):
                v_wl, v_bl = v_wl + d_wl, v_bl + d_bl
        except (RuntimeError, np.linalg.LinAlgError, ParameterError):
            pass
    # the fixed nodes at their drives exactly (s V + (nxt - s) V is not nxt V
    # in floating point: ideal ends were off by up to 2.8e-14 V)
    return initial_voltages(after, SimpleNamespace(v_wl=v_wl, v_bl=np.swapaxes(v_bl, 0, 1)))


def _norm_finite(net, v_wl, v_bl):
    """Whether the Kirchhoff residual at ``v`` and its norm are finite."""
    r_wl = np.empty_like(v_wl)
    r_bl = np.empty_like(v_bl)
    with np.errstate(over="ignore", invalid="ignore"):
        residual(net, v_wl, v_bl, r_wl, r_bl)
        return bool(np.isfinite(np.sqrt(np.sum(r_wl * r_wl) + np.sum(r_bl * r_bl))))


def _rounding_step(net, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0, bounds):
    """1, the full Newton step (left in ``T``, its residual in ``G``), where
    the line search could not judge it: its slope at 0, ``-F . d``, is within
    what rounding leaves in ``F`` at each node (``bounds``: per layer, the
    node's `kcl_bound` at the conductance meeting there) times the step's
    move at that node, and the step lowers the largest node imbalance
    measured in its node's bound. None otherwise.

    A near-ideal segment (2.8e-6 ohm, 3.6e5 S) leaves ~1e-11 A of rounding
    at its nodes whatever the voltages; it swamped the slope of a step that
    was to remove 6e-16 A from a floating line of 3e-3 S of devices, the
    line search found no step, and a 2 x 2 array at |V/V0| <= 0.02 raised
    ConvergenceError (found by a differential fuzz against a dense solve of
    CIRCUIT.md; `direct` or `pcg` depending on rounding)."""
    b_wl, b_bl = bounds
    noise = float(np.sum(np.abs(d_wl) * b_wl) + np.sum(np.abs(d_bl) * b_bl))
    if not -slope0 <= noise:
        return None
    tiny = np.finfo(float).tiny

    def worst(r_wl, r_bl):  # the largest imbalance in units of its node's bound
        return max(float(np.max(np.abs(r_wl) / np.maximum(b_wl, tiny))),
                   float(np.max(np.abs(r_bl) / np.maximum(b_bl, tiny))))

    np.add(v_wl, d_wl, out=T_wl)
    np.add(v_bl, d_bl, out=T_bl)
    with np.errstate(over="ignore", invalid="ignore"):
        residual(net, T_wl, T_bl, G_wl, G_bl)
        after = worst(G_wl, G_bl)
    return 1.0 if after < worst(F_wl, F_bl) else None


def _line_search(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0):
    """Step length along ``d`` from ``v``: 1, or a root of ``phi'(t) = -F(v +
    t d) . d`` in (0, 1) found by the Illinois method (``phi`` is convex);
    the accepted point is left in ``T`` and its residual in ``G``. None when
    no acceptable step is found."""

    def slope(t):
        np.multiply(d_wl, t, out=T_wl); np.add(T_wl, v_wl, out=T_wl)
        np.multiply(d_bl, t, out=T_bl); np.add(T_bl, v_bl, out=T_bl)
        with np.errstate(over="ignore", invalid="ignore"):
            residual(net, T_wl, T_bl, G_wl, G_bl)
            val = -float(work.dot(G_wl, d_wl, G_bl, d_bl)[0])
        return val if np.isfinite(val) else np.inf

    t_lo, s_lo, t_hi = 0.0, slope0, 1.0
    s_hi = slope(1.0)
    t = 1.0
    if not s_hi > 0:
        return t
    # phi' is increasing (E convex): find its root in (0, 1)
    side = 0
    for _ in range(60):
        if np.isfinite(s_hi):
            t = (t_lo * s_hi - t_hi * s_lo) / (s_hi - s_lo)
            t = min(max(t, t_lo + 1e-3 * (t_hi - t_lo)), t_hi - 1e-3 * (t_hi - t_lo))
        else:
            t = 0.5 * (t_lo + t_hi)
        s = slope(t)
        if abs(s) <= 0.1 * abs(slope0):
            return t
        if s > 0:
            t_hi, s_hi = t, s
            if side == 1 and np.isfinite(s_hi):
                s_lo *= 0.5  # Illinois
            side = 1
        else:
            t_lo, s_lo = t, s
            if side == -1 and np.isfinite(s_hi):
                s_hi *= 0.5
            side = -1
    # phi' can grow by twenty orders across the bracket (a step from a
    # capped Jacobian into cosh of hundreds): regula falsi then creeps from
    # t_lo by the 1e-3 floor while Illinois halves s_hi some 70 times, and
    # 60 rounds ended with no step, so a common-mode shift of 1 V made a
    # one-device circuit that solves at 0 V raise ConvergenceError.
    # Bisect the bracket left instead.
    for _ in range(60):
        t = 0.5 * (t_lo + t_hi)
        s = slope(t)
        if abs(s) <= 0.1 * abs(slope0):
            return t
        if s > 0:
            t_hi = t
        else:
            t_lo = t
    return None


def _unit_drive(col):
    """``(network, unit)``: batch column `col` with its drives and ``V0``
    divided by ``unit``, the power of two at or above its largest drive.

    ``G V0 sinh(V / V0)`` scales exactly with V and V0 together, so the
    node voltages of the scaled network times ``unit`` are the answer, and
    Newton's norms and energy neither underflow nor overflow whatever the
    volts (a power of two: the scaling and its undoing are exact). In volts,
    drives of 1e-170 V squared to zero in the line search and Newton took
    its start as converged: i_out 100 % off, with a residual of 0.
    """
    from ._pcg import _scaled, unit_scale

    v = float(col.drive_scale()[0])
    if not v > 0:
        return col, 1.0
    unit = float(unit_scale(v))
    scaled = _scaled(col, np.array([1.0 / unit]))
    # A V0 beyond 1e300 volts at unit drive is linear far below an ulp, and
    # stays so capped there; divided through it could reach inf (a per-cell
    # V0 of 1e300 under a 1e-9 V drive: a false overflow error).
    with np.errstate(over="ignore"):
        v0, v0_t = (np.minimum(a / unit, 1e300) for a in (col.v0, col.v0_t))
    return dataclasses.replace(scaled, v0=v0, v0_t=v0_t), unit


def _fixed_nodes(layer):
    """Bool (L, n): the nodes of one layer that a drive fixes (their group's
    ``fixed`` flag)."""
    return np.take_along_axis(layer.fixed, layer.gid.astype(np.intp), axis=1).astype(bool)


def _fixed_pairs(net):
    """(M, N) bool: the devices whose two nodes the drives fix."""
    ff = None
    for layer, trans in ((net.wl, False), (net.bl, True)):
        nodes = _fixed_nodes(layer)
        nodes = nodes.T if trans else nodes
        ff = nodes if ff is None else ff & nodes
    return ff


def _check_fixed_pairs(net, fixed_pairs):
    """Raise the overflow error before any Newton step where a working
    device between two fixed nodes (``fixed_pairs``, `_fixed_pairs`)
    carries a current beyond double precision: the drives alone say so, and
    the error names the case (the zero state's overflow, checked next, would
    say it less exactly)."""
    ff = fixed_pairs & (net.g > 0)
    if not ff.any():
        return
    v_wl, v_bl = initial_voltages(net)
    v0 = np.broadcast_to(net.v0, net.shape)[ff][:, None]
    x = (v_wl[ff] - v_bl.transpose(1, 0, 2)[ff]) / v0
    with np.errstate(over="ignore", invalid="ignore"):
        i = net.g[ff][:, None] * v0 * np.sinh(x)
    if not np.all(np.isfinite(i)):
        raise _overflow([])


def _without_fixed_pairs(net, ff):
    """The network with every device whose two nodes the drives fix taken
    out (G = 0; V0 = 1e300 keeps ``G V0 sinh(V / V0)`` and its Jacobian at
    exactly 0 for any drive).

    Such a device enters no free node's Kirchhoff equation, so the node
    voltages are the same; its current (computed afterwards from the full
    network) does not then set the scale of the stopping test. Under a
    drive of 67 V0 one carried 1e24 A, which made every free node's
    imbalance "within 1e-10 of the terminal currents": Newton returned
    voltages 6 V off, and under 167 V0 ones at -1e14 V.
    ``ff``: those devices, (M, N) bool (`_fixed_pairs`).
    """
    if not ff.any():
        return net
    g = np.where(ff, 0.0, net.g)
    v0 = np.where(ff, 1e300, np.broadcast_to(net.v0, net.shape))
    return dataclasses.replace(net, g=g, g_t=transposed(g), v0=v0, v0_t=transposed(v0))


class _StepCounter:
    """``callback(step, relative_residual)`` with the steps of one batch
    column counted from 1, as `_newton_column`'s ``report``."""

    def __init__(self, callback):
        self.callback = callback
        self.steps = 0

    def __call__(self, rel):
        self.steps += 1
        self.callback(self.steps, rel)


def solve_newton(net, tol, maxiter=None, callback=None, x0=None, inner="line"):
    """Nonlinear solve of every batch column; returns the same tuple as
    `solve_pcg` (iterations = Newton steps summed over columns)."""
    M, N = net.shape
    B = net.batch
    maxiter = NEWTON_MAXITER if maxiter is None else maxiter
    v_wl = np.empty((M, N, B))
    v_bl = np.empty((N, M, B))
    history = []
    steps = 0
    worst = 0.0
    starts = initial_voltages(net, x0) if x0 is not None else None
    fixed_pairs = _fixed_pairs(net)
    _check_fixed_pairs(net, fixed_pairs)
    net = _without_fixed_pairs(net, fixed_pairs)  # the same devices in every column
    for b in range(B):
        col, unit = _unit_drive(_column(net, b))
        start = None
        if starts is not None:
            start = (starts[0][:, :, b:b + 1] / unit, starts[1][:, :, b:b + 1] / unit)
        h0 = len(history)
        # the callback hears every Newton step of this column, counted from 1:
        # it missed each column's accepted last step
        report = None if callback is None else _StepCounter(callback)
        try:
            vw, vb, k, _, rel = _newton_column(col, tol, maxiter, report, start, inner, history)
        except ConvergenceError:
            # steps of this column's warm attempt: `history` holds every
            # column's residuals (its start's, then one per step)
            failed_steps = max(0, len(history) - h0 - 1)
            if start is None or failed_steps >= maxiter:
                raise
            # a warm start from far away (other drives of tens of V0) skips
            # the source stepping a cold start gets, and its first Jacobian
            # can be past any line search: that circuit solved cold, and
            # failed warm in every method. Solve it cold,
            # within what is left of the column's maxiter; its residuals
            # follow the warm attempt's in the history.
            vw, vb, k, _, rel = _newton_column(col, tol, maxiter - failed_steps, report, None, inner, history)
            k += failed_steps
        np.multiply(vw[:, :, 0], unit, out=v_wl[:, :, b])
        np.multiply(vb[:, :, 0], unit, out=v_bl[:, :, b])
        steps += k
        worst = max(worst, rel)
    return v_wl, v_bl, steps, worst, np.array(history)
