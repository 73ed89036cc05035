"""Conjugate gradients preconditioned by line relaxation or multigrid.

The nodal matrix A (free groups of both layers) is symmetric positive
definite. Two preconditioners:

``"line"``
    One symmetric block Gauss-Seidel sweep over the two layers: word lines,
    bit lines, word lines, each line solved exactly by its Thomas factors
    (kernels/lines.py).
``"mg"``
    A multigrid cycle whose coarse levels are crossbars (_multigrid.py),
    with the same line sweeps as smoother.

Factors are computed once per conductance state and shared by every
iteration and batch column; each batch column runs its own CG recurrence in
lock step. `pcg_core` solves ``A d = r`` for a given residual: the linear
solve and every Newton step of the nonlinear solve (_newton.py) use it.
"""

from __future__ import annotations

import numpy as np

from .circuit import FLOATING, IDEAL, RESISTIVE
from .exceptions import ConvergenceError, ParameterError
from .kernels.lines import factor_lines, solve_lines
from .kernels.operator import absmax_lines, cg_update, dot_lines, kcl_residual, xpby

_NO_SHUNT = np.zeros((1, 1))
"""Placeholder for "no shunt" / "linear devices" in kernel calls."""


class LineFactors:
    """Thomas factors of every line of one layer (one conductance state)."""

    def __init__(self, layer, g, shunt=None):
        L, n = layer.gid.shape
        self.layer = layer
        self.g = g
        self.grouped = bool(np.any(layer.ngroups < n))
        # the sub-diagonal and c' are kept only when groups need them; lines
        # without ideal wire rebuild both from seg_g (see solve_lines)
        shape = (L, n) if self.grouped else (0, 0)
        self.lower = lower = np.empty(shape)
        self.cprime = np.empty(shape)
        self.invden = np.empty((L, n))
        if shunt is None:
            shunt = _NO_SHUNT
        diag = np.empty(shape)  # only needed while factoring grouped lines
        lost = factor_lines(layer.gid, layer.ngroups, g, layer.seg_g, layer.term_mode, layer.term_g,
                            layer.fixed, shunt, shunt is not _NO_SHUNT, lower, self.cprime, self.invden,
                            diag)
        if lost:
            raise ParameterError(_lost_pivot_message(lost, layer, g))

    def solve(self, src, other, out, couple=True):
        lay = self.layer
        solve_lines(lay.gid, lay.ngroups, self.lower, self.grouped, lay.seg_g, self.cprime, self.invden,
                    src, self.g, other, couple, out)


def _lost_pivot_message(lines, layer, g):
    """Why `LineFactors` refuses a layer whose elimination met a pivot of 0
    (`kernels.lines.factor_lines`)."""
    free = layer.seg_g[layer.seg_g > 0]
    seg = f"up to {float(free.max()):.3g} S" if free.size else "its segments"
    weak = g[g > 0]
    dev = f", devices from {float(weak.min()):.3g} S" if weak.size else ""
    return (f"{lines} line{'s' if lines > 1 else ''} of this circuit cannot be solved line by line in double "
            f"precision: along a line, a wire segment's conductance ({seg}{dev}) exceeds what the line's devices "
            "and terminals hold to the other layer and to ground by more than an ulp resolves, and its "
            "elimination cancelled to a pivot of 0 (a floating line of 1e-12 S devices with a 1e-6 ohm segment "
            "does). Make such near-ideal segments ideal (r = 0: merged exactly into one node), or the devices "
            "stronger; method='direct', whose factorization pivots otherwise, may solve it.")


class LinePreconditioner:
    """Symmetric line Gauss-Seidel: WL solve, BL solve, WL solve."""

    exact = False
    """Leaves slow modes that CG estimates (`pcg_core`)."""

    def __init__(self, net):
        self.wl = LineFactors(net.wl, net.g)
        self.bl = LineFactors(net.bl, net.g_t)

    def refresh_fine(self, net):
        """This preconditioner for `net` (same wires, new conductances): the
        line factors are all there is, so they are recomputed."""
        return LinePreconditioner(net)

    def apply(self, r_wl, r_bl, z_wl, z_bl):
        self.wl.solve(r_wl, z_bl, z_wl, couple=False)
        self.bl.solve(r_bl, z_wl, z_bl)
        self.wl.solve(r_wl, z_bl, z_wl)


def make_preconditioner(net, kind):
    """``"line"``: symmetric line Gauss-Seidel; ``"mg"``: multigrid cycle."""
    if kind == "mg":
        from ._multigrid import MultigridPreconditioner

        line = LinePreconditioner(net)
        return MultigridPreconditioner(net, fine_factors=(line.wl, line.bl))
    return LinePreconditioner(net)


def residual(net, v_wl, v_bl, r_wl, r_bl, g=None, g_t=None, zero_fixed=True):
    """Kirchhoff residual (current into every free group) of both layers.

    Uses the device law of `net` (linear, or sinh when ``net.v0`` is set).
    """
    g = net.g if g is None else g
    g_t = net.g_t if g_t is None else g_t
    for layer, own, other, gg, v0, res in (
        (net.wl, v_wl, v_bl, g, net.v0, r_wl),
        (net.bl, v_bl, v_wl, g_t, net.v0_t, r_bl),
    ):
        kcl_residual(layer.gid, layer.fixed, gg, v0, not net.linear, layer.seg_g, layer.term_mode,
                     layer.term_g, layer.term_v, _NO_SHUNT, False, own, other, True, zero_fixed, res)


class AccuracyCheck:
    """The physical half of the stopping test, on the preconditioned
    residual ``z ~ A^-1 r`` (an estimate of the voltage error):

    - every node voltage within `vtol` of the largest node voltage of the
      solution (`voltage_bound`: at least `VOLTAGE_FLOOR` of the largest
      drive voltage, and never below what double precision resolves);
    - every terminal current within `itol` of its own value, plus a floor of
      1e-3 of the larger of the largest terminal current and the current a
      typical line would carry at the largest drive voltage (so currents near
      zero do not demand the impossible). A resistive end's current error is
      ``g_t |z|`` at its node; an ideal end's, or a resistive end's that is
      the stronger side of its node (`stiff_ends`), is the sum over
      everything else joined to its node group, whence `end_currents` takes
      its current, of ``conductance x |z - z_node|`` (for devices, of the
      bound ``|z| + |z_node|``; z is 0 at an ideal end's node);
    - every node's Kirchhoff imbalance within `itol` of
      the total terminal current, plus what double precision resolves at
      the largest device or wire conductance (`KCL_ULPS`), and at a
      resistive end's node its terminal's too (`TerminalNodes`).

    The Kirchhoff residual alone is not enough: a floating line held only
    by weak devices, or the node next to an ideal sense terminal, can hide a
    voltage error behind a small current. Nor is its norm relative to the
    zero state's: an ideal drive next to a 0.1 ohm segment puts 10 A per volt
    into that norm, though only 0.5 mA flow, and pcg stopped with 1e-11 A of
    imbalance at bit-line nodes (2e-8 of the currents; found by the property
    test of Kirchhoff's laws).
    """

    def __init__(self, net, vtol, itol):
        self.vscale = net.drive_scale()
        M, N = net.shape
        self.line_current = typical_line_current(net, self.vscale)
        self.vtol = vtol
        self.itol = itol
        self.gmax = max(float(np.max(net.g, initial=0.0)), segment_gmax(net))
        self.terminal_nodes = TerminalNodes(net)
        # lines with both ends floating: held by their devices alone
        self.floating = []
        for k, (layer, g) in enumerate(((net.wl, net.g), (net.bl, net.g_t))):
            lines = np.nonzero((layer.term_mode[:, 0] == FLOATING) & (layer.term_mode[:, 1] == FLOATING)
                               & ~np.any(layer.fixed, axis=1))[0]
            held = g[lines].sum(axis=1)
            lines, held = lines[held > 0], held[held > 0]
            if lines.size:
                self.floating.append((k, lines, held[:, None]))
        self.ends = []
        for k, (layer, g) in enumerate(((net.wl, net.g), (net.bl, net.g_t))):
            for side in range(2):
                mode = layer.term_mode[:, side]
                stiff = stiff_ends(layer, g, side)
                plain = np.setdiff1d(np.nonzero(mode == RESISTIVE)[0], stiff)
                if plain.size:
                    self.ends.append(("resistive", k, plain, 0 if side == 0 else layer.gid.shape[1] - 1,
                                      layer.term_g[plain, side][:, None], layer.term_v[plain, side, :]))
                # an ideal end, or a resistive one stronger than the array at
                # its node: the current from Kirchhoff's law at the node
                # (`end_currents`), its error from the node's neighbours
                lines = np.concatenate([stiff, np.nonzero(mode == IDEAL)[0]])
                if lines.size:
                    self.ends.append(("node", k, lines, EndGroup(layer, g, lines, side), None, None))

    def passed(self, x, z, work, r, gain):
        """Bool (B,): columns whose estimated errors are within bounds
        (``x`` node voltages, ``z`` preconditioned residual, ``r`` residual;
        ``gain`` (B,) or a float: the factor by which the true error may
        exceed ``z``, `slow_mode_gain`)."""
        zmax = gain * np.maximum(np.maximum(*(self._absmax(a, work) for a in z)), self.level_error(r))
        ok = zmax <= self.vtol * self.vscale  # the larger bound (no node exceeds the drives): first
        if ok.any():
            xmax = np.maximum(*(self._absmax(a, work) for a in x))
            ok &= zmax <= voltage_bound(self.vtol, xmax, self.vscale)
        if not self.ends:
            return ok
        cur, err, gmax = [], [], []
        for kind, k, lines, node, g, vs in self.ends:
            if kind == "resistive":
                cur.append(g * (vs - x[k][lines, node, :]))
                err.append(gain * g * np.abs(z[k][lines, node, :]))
                gmax.append(g)
            else:
                grp = node
                vrep, zrep = x[k][lines, grp.rep], z[k][lines, grp.rep]  # (k, B); z is 0 at an ideal end's
                cur.append(grp.seg * (vrep - x[k][lines, grp.across]) + grp.tg * (vrep - grp.tv)
                           + grp.device_sum(vrep, x[1 - k]))
                err.append(gain * (grp.seg * np.abs(zrep - z[k][lines, grp.across]) + grp.tg * np.abs(zrep)
                                   + grp.device_sum(zrep, z[1 - k], absolute=True)))
                gmax.append(grp.garr)
        imax = np.max([np.max(np.abs(c), axis=0) for c in cur], axis=0)
        floor = CURRENT_FLOOR * np.maximum(imax, self.line_current)
        eps = 8 * np.finfo(float).eps * self.vscale  # what double precision can resolve
        for c, e, g in zip(cur, err, gmax):
            ok &= np.all(e <= self.itol * (np.abs(c) + floor) + g * eps, axis=0)
        if ok.any():
            total = np.sum([np.sum(np.abs(c), axis=0) for c in cur], axis=0)
            ok &= self.terminal_nodes.kcl_met(r, lambda a: np.maximum(*(self._absmax(b, work) for b in a)),
                                              self.itol, total, self.vscale, self.gmax)
        return ok

    def level_error(self, r):
        """(B,): the largest error of a floating line's level that the
        residual ``r`` shows: its devices' net current over their
        conductance (its segments' currents cancel along the line); 0
        without floating lines. Where rounding drops those devices from the
        line's factors, ``z`` does not show that error: pcg stopped after 2
        iterations with a line of 1.4e-14 S devices strapped by 1e-7 ohm
        segments 0.04 V off, 5.9e4 times the bound (found by review)."""
        out = np.zeros(r[0].shape[2])
        for k, lines, held in self.floating:
            out = np.maximum(out, (np.abs(r[k][lines].sum(axis=1)) / held).max(axis=0))
        return out

    def levels_met(self, r, gain):
        """Bool (B,): `level_error` of the residual ``r`` within the bound."""
        return gain * self.level_error(r) <= self.vtol * self.vscale

    @staticmethod
    def _absmax(a, work):
        part = work.part_w if a.shape[0] == work.part_w.shape[0] else work.part_b
        absmax_lines(a, part)
        return part.max(axis=0)


LEVEL_RESTARTS = 3
"""Times CG goes on from the true residual where it shows a floating line's
level outside the bound (`solve_pcg`)."""
STALL_ITERATIONS = 8
"""CG iterations without halving the residual after which a W-cycle
preconditioner is taken to have lost definiteness (`pcg_core`); a healthy
multigrid iteration gains about 100x each."""
VTOL_PER_TOL = 10.0
"""Node-voltage error bound, relative to the largest node voltage, per unit
of the requested Kirchhoff tolerance (1e-11 at the default tol = 1e-12;
`voltage_bound`)."""
KCL_ULPS = 64
"""A node's Kirchhoff imbalance is resolved to this many units in the last
place of (largest drive x largest conductance): a node sums a few currents
of up to that size (`AccuracyCheck`)."""
VOLTAGE_FLOOR = 1e-3
"""The node-voltage bound is relative to the largest node voltage, but to no
less than this fraction of the largest drive voltage (`voltage_bound`)."""
ITOL_PER_TOL = 100.0
"""Terminal-current error bound, relative to the current (see AccuracyCheck),
per unit of the requested tolerance (1e-10 at the default tol)."""
RITZ_SETTLED = 1.03
"""A cold CG solve stops only where its slow-mode gain (`slow_mode_gain`)
grew by no more than this factor over its last step, and not before its
second step (`pcg_core`)..."""

RITZ_STILL = 1.01
"""... and, where it grew by more than this factor and that growth is not
dying out (the last step's more than `RITZ_SHRINK` times the one before),
only where the accuracy check passes with `RITZ_GROWING` times the gain. A
gain still creeping up by 1-3 % a step (2.17, 2.84, 3.20, 3.33, 3.42 on a
strong-IR array whose true gain is 9.1) had not settled: that solve stopped
1.33x outside the voltage bound (found by fuzzing). Refusing such a stop
outright instead cost 1-2 % more iterations on the fuzzed strong-IR and
16-64-line sets (a 16 x 16 read at tol 1e-3: 2 -> 3), this 0-0.4 %."""

RITZ_SHRINK = 0.7
"""A gain's growth is dying out where its last step's is at most this share
of the step's before (`RITZ_STILL`)."""

RITZ_GROWING = 1.5
"""The margin on a gain still growing (`RITZ_STILL`)."""


def slow_mode_gain(alphas, betas, columns):
    """How far the true error ``A^-1 r`` may exceed the preconditioned
    residual ``z = P^-1 r`` that the stopping test reads, per batch column
    (B,): ``1 / theta``, theta the smallest eigenvalue of the Lanczos matrix
    that CG's step lengths ``alphas`` and ratios ``betas`` (lists of (B,)
    arrays since CG last started) build, the Ritz estimate of the smallest
    eigenvalue of ``P^-1 A``; never below 1. Computed for `columns` (bool
    (B,)) only, 1 elsewhere.

    The error's component along an eigenvector of ``P^-1 A`` is z's over its
    eigenvalue, so where the preconditioner leaves a slow mode (line
    relaxation under strong IR drop: 100 ohm segments, theta 0.03-0.05 on
    16 x 18 arrays; a multigrid cycle on a shallow hierarchy: 0.16) z alone
    let solves stop 2-11x outside the voltage bound (found by fuzzing against
    the direct solve). CG finds the extreme eigenvalues of ``P^-1 A`` first,
    and the Ritz value lies above the true one, so the estimate errs towards
    trusting z; on a well-preconditioned solve theta is near 1 and costs
    nothing."""
    from scipy.linalg import eigvalsh_tridiagonal

    gain = np.ones(columns.shape)
    if not alphas:
        return gain
    all_a = np.array(alphas).reshape(len(alphas), -1)  # (k, B)
    all_b = np.array(betas).reshape(len(betas), all_a.shape[1])
    for c in np.nonzero(columns)[0]:
        a = all_a[:, c]
        k = int(np.argmin(a > 0)) if np.any(a <= 0) else a.size  # CG stepped this column k times
        if k == 0:
            continue
        a = a[:k]
        b = all_b[:k - 1, c]
        diag = 1.0 / a
        diag[1:] += b / a[:-1]
        if k == 1:
            theta = diag[0]
        else:
            theta = eigvalsh_tridiagonal(diag, np.sqrt(b) / a[:-1], select="i", select_range=(0, 0))[0]
        if theta > 0:
            gain[c] = max(1.0, 1.0 / theta)
    return gain


def voltage_bound(vtol, vmax, vscale):
    """Largest node-voltage error a converged solve may keep: ``vtol`` times
    the largest node voltage ``vmax``, counted as at least `VOLTAGE_FLOOR` of
    the largest drive voltage ``vscale`` (arrays per batch column, or floats),
    and no less than 8 ulp of the drive (what double precision resolves).

    Relative to the drive alone, a circuit whose terminal resistance drops
    most of the drive left its node voltages relatively far less accurate:
    a 1 V drive through 67 ohm onto a 0.1 ohm word line puts the nodes at
    at most 5.9 mV, and pcg stopped 1e-11 V off on the floating bit lines
    (1.7e-9 of the node voltages; found by the property test that compares
    every method with the direct solve).
    """
    ref = np.maximum(vmax, VOLTAGE_FLOOR * vscale)
    return np.maximum(vtol * ref, 8 * np.finfo(float).eps * vscale)


CURRENT_FLOOR = 1e-3
"""The terminal-current test's floor, as a share of the larger of the largest
terminal current and `typical_line_current` (`AccuracyCheck`): currents near
zero do not demand the impossible."""


def typical_line_current(net, vscale):
    """The current a typical line carries at drive ``vscale`` (volts, a
    scalar or per batch column): ``vscale`` times the devices' total
    conductance over the M + N lines."""
    M, N = net.shape
    return vscale * float(np.sum(net.g)) / (M + N)


def segment_gmax(net):
    """Largest wire-segment conductance of either layer (terminals are
    `TerminalNodes`')."""
    return max(float(np.max(layer.seg_g, initial=0.0)) for layer in (net.wl, net.bl))


def end_extent(layer, lines, side):
    """``(lo, hi)``, (k,) each: the nodes ``lo <= j < hi`` of the group at one
    end (``side`` 0: first node, 1: last) of each of ``lines``, a run of
    nodes joined by ideal wire; ``lo`` is where `kcl_residual` sums the
    group's current."""
    n = layer.gid.shape[1]
    lo = np.zeros(lines.size, np.int64) if side == 0 else np.full(lines.size, n - 1, np.int64)
    hi = lo + 1
    grouped = layer.ngroups[lines] < n
    if np.any(grouped):
        gl = lines[grouped]
        if side == 0:  # group 0: the nodes with gid 0 (a run from the first node)
            hi[grouped] = np.count_nonzero(layer.gid[gl] == 0, axis=1)
        else:  # the last group: from its first node on
            lo[grouped] = np.count_nonzero(layer.gid[gl] < (layer.ngroups[gl] - 1)[:, None], axis=1)
    return lo, hi


class EndGroup:
    """The node group at one end (``side`` 0: first node, 1: last) of each of
    ``lines`` (k of them), a run of nodes joined by ideal wire:

    - ``rep`` (k,): its first node, where `kcl_residual` sums its current;
    - ``seg`` (k, 1): the segment leaving it, ``across`` (k,) the node
      beyond (0 where the group is the whole line);
    - ``tg`` (k, 1), ``tv`` (k, B): the other end's terminal where the
      line is one group and that end resistive (0 elsewhere);
    - ``garr`` (k, 1): everything at the group but its own terminal;
    - `device_sum`: sums over the group's devices, from one entry per
      device (line, node, conductance), built on first use only (an (L, n)
      array per end cost 537 MB at 8192^2; `stiff_ends` and `end_currents`
      need ``garr`` and ``rep`` alone; built for them too, with three
      gathers per sum, the entries made a 2048^2 solve on ideal bit lines
      with 1 ohm terminals 15-40 % slower and 213 MiB larger).
    """

    def __init__(self, layer, g, lines, side):
        L, n = layer.gid.shape
        k = lines.size
        lo, hi = end_extent(layer, lines, side)
        whole = (lo == 0) & (hi == n)
        seg_idx = hi - 1 if side == 0 else lo - 1
        self.lines, self.g, self.lo, self.hi = lines, g, lo, hi
        self.rep = lo
        self.across = np.where(whole, 0, hi if side == 0 else lo - 1)
        self.seg = np.where(whole, 0.0, layer.seg_g[lines, np.clip(seg_idx, 0, layer.seg_g.shape[1] - 1)])[:, None]
        shared = whole & (layer.term_mode[lines, 1 - side] == RESISTIVE)
        self.tg = np.where(shared, layer.term_g[lines, 1 - side], 0.0)[:, None]
        self.tv = np.where(shared[:, None], layer.term_v[lines, 1 - side, :], 0.0)
        gsum = np.zeros(k)
        single = hi - lo == 1
        gsum[single] = g[lines[single], lo[single]]
        if np.any(whole):
            gsum[whole] = g.sum(axis=1)[lines[whole]]
        for i in np.nonzero(~single & ~whole)[0]:  # a run of ideal wire at the end only: rare
            gsum[i] = g[lines[i], lo[i]:hi[i]].sum()
        self.garr = self.seg + gsum[:, None] + self.tg
        self._devices = None

    def device_sum(self, vrep, other_layer, absolute=False):
        """Per group, (k, B): ``sum gdev (vrep - v)`` over its devices, for
        ``vrep`` (k, B) the group's value and ``v`` the other layer's at
        each device, from ``other_layer`` (n, L, B); with ``absolute``,
        the bound ``sum gdev (|vrep| + |v|)``. One gather of the other
        layer per sum, with int32 entries."""
        if self._devices is None:
            sizes = self.hi - self.lo
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
            rows = np.repeat(np.arange(self.lines.size, dtype=np.int32), sizes)
            nodes = (self.lo[rows] + (np.arange(rows.size) - starts[rows])).astype(np.int32)
            gdev = self.g[self.lines[rows], nodes]
            self._devices = self.lines[rows].astype(np.int32), nodes, gdev, starts, self.garr - self.seg - self.tg
        lines, nodes, gdev, starts, gsum = self._devices
        if not gdev.size:
            return np.zeros_like(vrep)
        v = other_layer[nodes, lines, :]
        if absolute:
            np.abs(v, out=v)
        v *= gdev[:, None]
        summed = np.add.reduceat(v, starts, axis=0)
        return gsum * np.abs(vrep) + summed if absolute else gsum * vrep - summed


def stiff_ends(layer, g, side):
    """Lines whose resistive end on ``side`` is more conductive than
    everything else at its node (`EndGroup`): their current is taken from
    the node's Kirchhoff sum (`end_currents`). Not where an ideal drive at
    the line's other end fixes the node (a line of ideal wire): ``g_t (V -
    v)`` is then exact. (A threshold far above 1 was tried, to spare
    per-device sums: a 1e-3 ohm drive into a line of 1e-10 S devices on 1
    ohm wire, 1000 times the rest of its node, then read its 1.8e-9 A
    current 1.6e-5 off.)"""
    lines = np.nonzero(layer.term_mode[:, side] == RESISTIVE)[0]
    if lines.size:
        lines = lines[(layer.ngroups[lines] > 1) | (layer.term_mode[lines, 1 - side] != IDEAL)]
    if lines.size:
        lines = lines[layer.term_g[lines, side] > EndGroup(layer, g, lines, side).garr[:, 0]]
    return lines


class TerminalNodes:
    """The nodes of resistive ends, for the per-node Kirchhoff test.

    A node's imbalance is resolved to `KCL_ULPS` ulps of (drive x the
    largest conductance meeting there). The test allows every node that
    much for the largest device or wire conductance; a resistive end's
    node also has its terminal's, which may be far larger (a 1e-15 ohm
    sense end: 1e15 S). Counted at every node, it let a solve stop before
    its first iteration with every free node at 0 V; it
    is counted at its own node only.
    """

    def __init__(self, net):
        self.nodes = []  # per layer: (lines, nodes, summed terminal conductance)
        for layer in (net.wl, net.bl):
            n = layer.gid.shape[1]
            lines, nodes, gt = [], [], []
            for side in range(2):
                on = np.nonzero(layer.term_mode[:, side] == RESISTIVE)[0]
                lines.append(on)
                nodes.append(end_extent(layer, on, side)[0])
                gt.append(layer.term_g[on, side])
            # both ends of a line of ideal wire meet at one node: summed
            key, where = np.unique(np.concatenate(lines) * n + np.concatenate(nodes), return_inverse=True)
            self.nodes.append((key // n, key % n, np.bincount(where, weights=np.concatenate(gt),
                                                               minlength=key.size)))

    def kcl_met(self, r, absmax, itol, total, vscale, gmax):
        """Bool (B,): every node's imbalance in ``r`` (both layers,
        (L, n, B)) within `kcl_bound` at the largest device or wire
        conductance ``gmax``, and at a terminal's node at ``gmax`` plus its
        terminal conductance. ``absmax(r)``: the largest |r| over both
        layers, (B,). ``gmax`` may also be a pair of per-node arrays, one
        per layer ((L, n, 1): the conductance meeting at each node; Newton's
        `_node_conductances`)."""
        if isinstance(gmax, tuple):
            ok = True
            for rk, bound in zip(r, self.bounds(itol, total, vscale, gmax)):
                ok = ok & np.all(np.abs(rk) <= bound, axis=(0, 1))
            return ok
        picked, saved = [], []
        for k, (lines, nodes, gt) in enumerate(self.nodes):
            big = gt > gmax
            if np.any(big):
                picked.append((k, lines[big], nodes[big], gt[big]))
                saved.append(r[k][lines[big], nodes[big], :].copy())
                r[k][lines[big], nodes[big], :] = 0.0
        try:
            ok = absmax(r) <= kcl_bound(itol, total, vscale, gmax)
        finally:
            for (k, lines, nodes, _), s in zip(picked, saved):
                r[k][lines, nodes, :] = s
        for (k, lines, nodes, gt), s in zip(picked, saved):
            ok = ok & np.all(np.abs(s) <= kcl_bound(itol, total, vscale, gmax + gt[:, None]), axis=0)
        return ok

    def bounds(self, itol, total, vscale, gmax):
        """Per layer, `kcl_bound` at every node ((L, n, 1) arrays): at the
        conductance meeting there (``gmax``, a pair of per-node arrays as in
        `kcl_met`), plus a resistive end's terminal conductance at its own
        node."""
        out = []
        for k, (lines, nodes, gt) in enumerate(self.nodes):
            gk = gmax[k]
            if lines.size:
                gk = gk.copy()
                np.add.at(gk, (lines, nodes), gt[:, None])
            out.append(kcl_bound(itol, total, vscale, gk))
        return out


def kcl_bound(itol, total, vscale, gmax):
    """Largest Kirchhoff imbalance a converged solve may keep at any node:
    ``itol`` times the total terminal current ``total``, plus what double
    precision resolves where currents of up to (largest drive ``vscale`` x
    largest conductance ``gmax``) meet (`KCL_ULPS`)."""
    return itol * total + KCL_ULPS * np.finfo(float).eps * vscale * gmax


def _node_sum_lines(layer, side, stiff):
    """The lines whose end on ``side`` takes its current from its node's
    Kirchhoff sum: ideal ends, and the resistive ends ``stiff`` (stiffer
    than their node, `stiff_ends`)."""
    return np.concatenate([stiff, np.nonzero(layer.term_mode[:, side] == IDEAL)[0]])


def kcl_floor(net, stiff=None):
    """(B,): the imbalance double precision leaves in the sum of end
    currents that `Solution.kcl_error` checks. Each end's current comes from
    voltages a solve knows to a few ulps of the largest drive, times the
    conductances meeting at its node (the wire segment leaving it, its
    devices: `EndGroup`'s ``garr``), `KCL_ULPS` ulps each, as `kcl_bound`
    allows a node: an end whose current is its node's sum (an ideal end, a
    stiff resistive one: `end_currents`) counts what meets at its node, a
    resistive end whose current is ``g_t (V - v)`` its terminal's
    conductance alone. Counting a 1e-14 ohm terminal's 1e14 S at its node
    let a solve stopped at tol 1e-3 read 8.5e-6, and a weak end on a line
    of ideal wire, whose node holds the other end's terminal, 4e-5.
    ``stiff``: `stiff_by_end` of `net`, computed when None.

    The voltages are known to a few ulps of the largest drive, not of
    themselves (counting each part at its own voltages read 0.16 on an exact
    solve whose bit lines came back at exactly 0 V). So
    near-ideal terminals (1e-12 ohm and below) set a floor, g_t times an ulp
    of the drive, that can exceed the currents flowing, and then
    `kcl_error` cannot see an unconverged solve: a pair of 1e-16 ohm ends at
    0 V on a line of ideal wire read 1.8e-7 for a pcg tol 1e-3 solve 7.7e-4
    off. The check is blind there, not wrong: those end
    currents are known to no better.

    Negligible beside the currents that flow unless the devices are some
    1e12 times weaker than their wires: with 1e-20 S devices on 1 ohm wires,
    or 1e-6 S devices on 1e-12 ohm segments, the sum of end currents is
    rounding noise, and `kcl_error` read 0.3-1 on solutions exact to 1e-16."""
    stiff = stiff_by_end(net) if stiff is None else stiff
    total = 0.0
    for layer, g, names in ((net.wl, net.g, ("left", "right")), (net.bl, net.g_t, ("top", "bottom"))):
        for side, name in enumerate(names):
            lines = np.nonzero(layer.term_mode[:, side] != FLOATING)[0]
            if lines.size:
                at_node = EndGroup(layer, g, lines, side).garr[:, 0]
                by_node = (layer.term_mode[lines, side] != RESISTIVE) | np.isin(lines, stiff[name])
                total += float(np.sum(np.where(by_node, at_node, layer.term_g[lines, side])))
    return KCL_ULPS * np.finfo(float).eps * net.drive_scale() * total


END_RESOLUTION_WARN = 1e-3
"""`coarse_end_currents` names the ends of lines driven at both ends whose
current double precision resolves only to more than this fraction of the
current scale."""

END_RESOLUTION_FLOOR = 1e-6
"""`coarse_end_currents` names no end whose resolution is below this
fraction of the array's device current scale."""

END_RESOLUTION_FLOWING = 1e-13
"""`coarse_end_currents` judges a column only where its devices' summed
|current| exceeds this fraction of the drive times the array's device
conductance: below it (all ends at one voltage) the currents are rounding,
about 2e-15 of that scale, and their ends were named 9.5e3 times off where
nothing flows. (At 1e-12 a line 3e-13 V off a 1 V common mode returned
i_out 60 % off without a word.)"""

END_RESOLUTION_ULPS = 4
"""Ulps of a line's drive voltage `coarse_end_currents` counts."""


def coarse_end_currents(net, currents, i_device, array, better=None):
    """The ends of lines driven at both ends whose current is resolved only
    coarsely: ``(worst ratio of resolution to the line's current scale,
    [(name, lines)])``. Such an end's current (`end_currents`: ``g_t (V -
    v)`` or its node's sum, whichever conductance is smaller) is a
    difference of voltages near the line's drive, so it is known to no
    better than an ulp of that drive times that conductance
    (`END_RESOLUTION_ULPS` of them); a line at 0 V (a sense line) resolves
    its currents finely whatever its terminals. On a line driven at one end
    only the reported current is the line's device sum
    (`line_sum_currents`). With 1e-14 ohm terminals on 1e-13 ohm wire both
    ends of a line driven at 0.2 V came back -2.6e-4 A where +4e-5 A flows,
    without a word: `_finish` warns where the resolution
    exceeds `END_RESOLUTION_WARN` of the line's own current scale (its
    devices' currents and its ends' currents; against the whole array's, a
    weak line beside strong ones went unnamed 70 times off; with the line's
    drive times its devices' conductance in it, a line near a common-mode
    drive, 1 V + 1e-7 V, carrying 1e-7 of that, went unnamed 9 times off)
    and `END_RESOLUTION_FLOOR` of what flows through the array's devices
    (their summed |current|; a column where that is below
    `END_RESOLUTION_FLOWING` of ``array``, the largest drive times the
    array's device conductance, as `_finish` has it, is not judged): an open
    line of 1 ohm wire among 10 nS devices was named for 1e-16 A of noise
    where nothing flows, and a floor that counted the end currents let one
    line's end-to-end current hide another's wrong ones. An array of open
    devices only is not judged (nothing flows through devices). ``better``:
    `cut_currents`' conductances, where an end's current was taken across
    a better-resolved cut of its line."""
    worst = np.zeros(net.batch)
    found = []
    floor = None
    per_word_line = None  # |i_device| summed along each word line, (M, B): taken once
    for layer, g, names, axis in ((net.wl, net.g, ("left", "right"), 1), (net.bl, net.g_t, ("top", "bottom"), 0)):
        both = np.nonzero((layer.term_mode[:, 0] != FLOATING) & (layer.term_mode[:, 1] != FLOATING))[0]
        if not both.size:
            continue
        if floor is None:
            # what flows through the devices, not what would at the largest
            # drive: near a common-mode drive (1 V + 1e-7 V) that was 1e7
            # times the current, and an end 9x off went unnamed. A column
            # where that is rounding (every end at one voltage: 1e-15 of
            # the drive's scale) carries nothing to judge
            per_word_line = _abs_line_sums(i_device, 1)
            flowing = per_word_line.sum(axis=0)  # (B,)
            floor = np.where(flowing > END_RESOLUTION_FLOWING * array, END_RESOLUTION_FLOOR * flowing, np.inf)
        v_line = np.max(np.abs(layer.term_v[both]), axis=1)  # (k, B)
        unit = END_RESOLUTION_ULPS * np.finfo(float).eps * v_line
        devices = (per_word_line if axis == 1 else _abs_line_sums(i_device, axis))[both]  # (k, B)
        line_scale = devices + sum(np.abs(currents[name][both]) for name in names)
        for side, name in enumerate(names):
            cond = EndGroup(layer, g, both, side).garr[:, 0]
            resistive = layer.term_mode[both, side] == RESISTIVE
            cond = np.where(resistive, np.minimum(cond, layer.term_g[both, side]), cond)[:, None]
            if better is not None and name in better:  # taken across another cut of the line: (k, B)
                lines, across = better[name]
                at = np.searchsorted(both, lines)
                cond = np.repeat(cond, across.shape[1], axis=1)
                cond[at] = np.minimum(cond[at], across)
            res = cond * unit  # (k, B) amperes
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(line_scale > 0, res / np.where(line_scale > 0, line_scale, 1.0), 0.0)
            judged = (ratio > END_RESOLUTION_WARN) & (res > floor[None, :]) & (array[None, :] > 0)
            coarse = np.any(judged, axis=1)
            if np.any(coarse):
                found.append((name, both[coarse]))
                # over the judged columns only: a skipped column's ratio (rounding over rounding) read 1.2e7
                worst = np.maximum(worst, np.max(np.where(judged, ratio, 0.0)[coarse], axis=0))
    return float(np.max(worst)), found


def _abs_line_sums(i_device, axis, rows=256):
    """Sum of |i_device| (M, N, B) along ``axis`` (1: per word line, (M, B);
    0: per bit line, (N, B)), a block of rows at a time: no temporary of the
    whole array (fancy indexing and np.abs copied it, 512 MiB at 8192^2)."""
    M = i_device.shape[0]
    if axis == 1:
        return np.concatenate([np.abs(i_device[r:r + rows]).sum(axis=1) for r in range(0, M, rows)], axis=0)
    out = np.zeros(i_device.shape[1:])
    for r in range(0, M, rows):
        out += np.abs(i_device[r:r + rows]).sum(axis=0)
    return out


def stiff_by_end(net):
    """`stiff_ends` of every end, by name ("left", "right", "top", "bottom"):
    fixed by the circuit, so a solve's `end_currents` and
    `line_sum_currents` classify the ends once between them."""
    return {name: stiff_ends(layer, g, side)
            for layer, g, names in ((net.wl, net.g, ("left", "right")), (net.bl, net.g_t, ("top", "bottom")))
            for side, name in enumerate(names)}


def end_currents(net, v_wl, v_bl, stiff=None):
    """Current into the array through every end, (L, B), 0 where floating.

    An ideal end's current is the one Kirchhoff's law at its node asks of
    the source: what flows from the node into the array. So is a resistive
    end's where its terminal conductance exceeds the array's at that node
    (its devices and the wire segment leaving it; `EndGroup`): ``g_t (V -
    v)`` knows the current only to ``g_t ulp(V)``, which at 1e-12 ohm and
    0.5 V next to mS devices was 2.5e-2 of it, and all of it from 1e-15
    ohm. Elsewhere ``g_t (V - v)`` is the better of the
    two (the smaller conductance times the voltage error). Every end's
    current is thus its own node's: their sum, `Solution.kcl_error`, checks
    Kirchhoff's law over the whole array (`line_sum_currents` refines the
    reported ones). ``stiff``: `stiff_by_end` of `net`, computed when None."""
    stiff = stiff_by_end(net) if stiff is None else stiff
    out = {}
    for layer, own, other, g, v0, names in (
        (net.wl, v_wl, v_bl, net.g, net.v0, ("left", "right")),
        (net.bl, v_bl, v_wl, net.g_t, net.v0_t, ("top", "bottom")),
    ):
        L, n = layer.gid.shape
        by_node = []  # per side: lines whose current comes from the node's Kirchhoff sum
        mode = layer.term_mode.copy()
        for side, name in enumerate(names):
            mode[stiff[name], side] = 0  # the terminal left out: the residual is the array's current
            by_node.append(_node_sum_lines(layer, side, stiff[name]))
        res = None
        if any(lines.size for lines in by_node):
            res = np.empty_like(own)
            kcl_residual(layer.gid, layer.fixed, g, v0, not net.linear, layer.seg_g, mode,
                         layer.term_g, layer.term_v, _NO_SHUNT, False, own, other, True, False, res)
        for side, name in enumerate(names):
            spec = net.ends[name]
            cur = np.zeros((L, net.batch))  # an open end carries no current
            if spec is not None:
                node = 0 if side == 0 else n - 1
                rmask = spec.mode == RESISTIVE
                cur[rmask] = spec.g[rmask, None] * (layer.term_v[rmask, side, :] - own[rmask, node, :])
                lines = by_node[side]
                if lines.size:
                    cur[lines] = 0.0 - res[lines, end_extent(layer, lines, side)[0], :]  # not -x: no -0.0
                    if not net.linear and stiff[name].size:
                        _terminal_where_softer(layer, g, v0, own, other, stiff[name], side, cur)
            out[name] = cur
    return out


def _terminal_where_softer(layer, g, v0, own, other, lines, side, cur):
    """Sinh devices: on the resistive ``lines`` `stiff_ends` judged by the
    devices' G, the end's current is ``g_t (V - v)`` in each batch column
    where the node's devices' slopes ``G cosh(V / V0)`` there exceed the
    terminal's conductance (the better of the two, as `end_currents` picks
    for linear devices). By G alone, a bit line between two devices at 135
    V0 (1.6e55 A through it) took its 8 A end current from the node's
    Kirchhoff sum: 1.2e41 A of rounding. O(lines) per
    column: only the end groups' devices are evaluated."""
    group = EndGroup(layer, g, lines, side)
    tg = layer.term_g[lines, side]
    v0 = np.broadcast_to(v0, g.shape)
    garr = (group.seg + group.tg) + np.zeros((1, own.shape[2]))  # (k, B): the group's segment and shared terminal

    def slopes(ls, nodes):  # (k, B): G cosh(V / V0) of the devices at (ls, nodes)
        with np.errstate(over="ignore", invalid="ignore"):
            x = (own[ls, nodes, :] - other[nodes, ls, :]) / v0[ls, nodes][:, None]
            gd = g[ls, nodes][:, None]
            return np.where(gd > 0, gd * np.cosh(x), 0.0)

    single = group.hi - group.lo == 1  # an end group of one node: the usual case, vectorized
    garr[single] += slopes(lines[single], group.lo[single])
    for k in np.nonzero(~single)[0]:  # a run of ideal wire at the end
        nodes = np.arange(group.lo[k], group.hi[k])
        garr[k] += slopes(np.full(nodes.size, lines[k]), nodes).sum(axis=0)
    softer = tg[:, None] < garr
    if np.any(softer):
        k, b = np.nonzero(softer)
        on = lines[k]
        cur[on, b] = tg[k] * (layer.term_v[on, side, b] - own[on, group.rep[k], b])


def line_sum_currents(net, v_wl, v_bl, i_device, currents, stiff):
    """The end currents a solution reports: `end_currents`' ``currents``,
    except that a line driven at one end only (the other floats: the read
    configuration) takes its end's current from Kirchhoff's law for the
    whole line, the sum of its device currents ``i_device`` (M, N, B),
    where the line's devices conduct less in all than the conductance whose
    ulp error the node's sum or ``g_t (V - v)`` carries. The node's sum
    reads a wire current from two node voltages a few ulps apart when the
    devices are weak (1 nS devices on 1 ohm wires: ``i_out`` 8e-8 off).
    For sinh devices the line's conductance is its
    devices' slopes ``G cosh(V / V0)``, in each batch column (a batch took
    its worst column's, and a hard-driven column sent a gentle one's
    currents back to the node sum): compared
    by G alone, two devices of a 0-ohm group between lines 2 V apart (V0 =
    20 mV: 7 A each way) summed to 14 A where 6.2 mA flows.
    ``kcl_error`` keeps `end_currents`' sums: line sums balance
    the whole array by construction, converged or not. ``stiff``: the
    `stiff_by_end` that ``currents`` were computed with."""
    out = {}
    for layer, g, names, axis, sign in ((net.wl, net.g, ("left", "right"), 1, 1.0),
                                        (net.bl, net.g_t, ("top", "bottom"), 0, -1.0)):
        slopes = _Once(lambda g=g, axis=axis: (g.sum(axis=1)[:, None] if net.linear
                                               else _line_slopes(net, v_wl, v_bl, axis)))
        for side, name in enumerate(names):
            cur = currents[name].copy()
            if net.ends[name] is not None:
                by_node = _node_sum_lines(layer, side, stiff[name])
                _line_sums(layer, g, slopes, side, by_node, i_device, axis, sign, cur)
            out[name] = cur
    return out


CUT_GAIN = 2.0
"""`cut_currents` takes an end's current across another cut of its line only
where that cut's conductance is below the current choice's by this factor."""


def cut_currents(net, v_wl, v_bl, i_device, currents, chunk=1 << 22):
    """The end currents of lines driven at both ends, taken across the cut of
    each line that double precision resolves best: updates ``currents`` in
    place, returns ``better``.

    Kirchhoff's law over the nodes between an end and any cut of its line
    (a wire segment, or either terminal) gives that end's current as the
    current across the cut plus the current the line's devices before it
    carry away. Across a cut of conductance ``g_c`` the current is known to
    ``g_c`` times an ulp of the voltages, each device's to its own slope's;
    `end_currents` looks only at the end's terminal and the segment next to
    it. A bit line driven at both ends through a 1e-10 ohm segment beside a
    1e5 ohm one, its devices carrying nothing, reported its top current 11 %
    off (0 A with a 1e-100 ohm segment) without a word (found by the fuzzing
    review): across the 1e5 ohm segment it is exact. An end takes the cut
    whose conductance, with its devices' slopes before it (``G cosh(V /
    V0)`` per batch column for sinh devices), is below the current choice's
    by `CUT_GAIN`. ``currents``: the reported currents (`line_sum_currents`'
    fresh arrays; lines driven at one end keep theirs). ``better``: per end
    name, ``(lines, conductance (k, B))``, the conductance the chosen cut
    resolves each column to (inf where the end kept its current), for
    `coarse_end_currents`. O(lines x nodes) over the lines driven at both
    ends, a block of about ``chunk`` values (lines x nodes x batch) at a
    time."""
    better = {}
    for layer, g, v0, own, other, names, sign in (
        (net.wl, net.g, net.v0, v_wl, v_bl, ("left", "right"), 1.0),
        (net.bl, net.g_t, net.v0_t, v_bl, v_wl, ("top", "bottom"), -1.0),
    ):
        mode = layer.term_mode
        both = np.nonzero((mode[:, 0] != FLOATING) & (mode[:, 1] != FLOATING) & (layer.ngroups > 1))[0]
        rows = max(1, chunk // (layer.gid.shape[1] * net.batch))
        for r in range(0, both.size, rows):
            lines, gc = _cut_candidates(layer, g, both[r:r + rows])
            if lines.size:
                devices = (i_device[lines] if sign > 0 else i_device[:, lines].transpose(1, 0, 2),
                           other[:, lines].transpose(1, 0, 2))
                _cut_lines(net, layer, g, v0, own, devices, lines, gc, names, sign, currents, better)
    return better


def _cut_lines(net, layer, g, v0, own, devices, lines, gc, names, sign, currents, better):
    """`cut_currents` on ``lines`` of one layer: ``devices`` is their device
    currents and the other layer's voltages at them, (k, n, B) each; ``gc``
    their `_cut_conductances`, (k, n + 1)."""
    i_dev, v_other = devices
    gdev = g[lines][:, :, None]  # (k, n, 1), or (k, n, B): the devices' slopes
    if not net.linear:
        with np.errstate(over="ignore", invalid="ignore"):
            x = (own[lines] - v_other) / np.broadcast_to(v0, g.shape)[lines][:, :, None]
            gdev = np.where(gdev > 0, gdev * np.cosh(x), 0.0)
    slopes = _end_sums(gdev)  # per side, (k, n + 1, B or 1): the devices' slopes between the end and each cut
    carried = _end_sums(sign * i_dev)  # per side: the current the line's devices there carry away
    across = _cut_flows(layer, lines, own, gc)  # (k, n + 1, B): across each cut, first end to last
    for side, name in enumerate(names):
        cost, now = _cut_costs(layer, lines, gc[:, :, None], slopes, side)
        best = np.argmin(cost, axis=1)[:, None, :]  # (k, 1, B or 1)
        low = np.take_along_axis(cost, best, axis=1)[:, 0, :]
        take = low * CUT_GAIN < now
        if np.any(take):
            flow = np.take_along_axis(across, best, axis=1)[:, 0, :]
            away = np.take_along_axis(carried[side], best, axis=1)[:, 0, :]
            cur = away + flow if side == 0 else away - flow
            currents[name][lines] = np.where(take, cur, currents[name][lines])
            kept = better.get(name, (lines[:0], np.zeros((0, take.shape[1]))))
            better[name] = (np.concatenate([kept[0], lines]),
                            np.concatenate([kept[1], np.where(take, low, np.inf)]))


def _cut_conductances(layer, lines):
    """(k, n + 1): the conductance of each cut of ``lines``: cut 0 the first
    end's terminal, cut ``j`` (1..n-1) the segment between nodes ``j - 1``
    and ``j``, cut ``n`` the last end's terminal; inf where ideal (a 0 ohm
    terminal or segment: no current is known across it)."""
    n = layer.gid.shape[1]
    gc = np.full((lines.size, n + 1), np.inf)
    for side in (0, 1):
        resistive = layer.term_mode[lines, side] == RESISTIVE
        gc[resistive, 0 if side == 0 else n] = layer.term_g[lines[resistive], side]
    if n > 1:
        gid = layer.gid[lines]
        gc[:, 1:n] = np.where(gid[:, 1:] != gid[:, :-1], layer.seg_g[lines, : n - 1], np.inf)
    return gc


def _first_segment(layer, lines, side):
    """(k,): the cut (`_cut_conductances`) of the segment leaving the end
    group of each of ``lines`` at ``side`` (0: first end, 1: last)."""
    lo, hi = end_extent(layer, lines, side)
    return hi if side == 0 else lo


def _cut_flows(layer, lines, own, gc):
    """(k, n + 1, B): the current across each cut of ``lines``
    (`_cut_conductances`), from the first end towards the last; 0 across
    ideal cuts (never chosen)."""
    n = layer.gid.shape[1]
    v = own[lines]  # (k, n, B)
    flow = np.zeros((lines.size, n + 1, v.shape[2]))
    tv = layer.term_v[lines]  # (k, 2, B)
    finite = np.isfinite(gc)
    flow[:, 0, :] = np.where(finite[:, :1], gc[:, :1], 0.0) * (tv[:, 0, :] - v[:, 0, :])
    flow[:, n, :] = np.where(finite[:, n:], gc[:, n:], 0.0) * (v[:, n - 1, :] - tv[:, 1, :])
    if n > 1:
        flow[:, 1:n, :] = np.where(finite[:, 1:n], gc[:, 1:n], 0.0)[:, :, None] * (v[:, :-1, :] - v[:, 1:, :])
    return flow


def _end_sums(a):
    """``(before, after)``, (k, n + 1, ...) each, of ``a`` (k, n, ...) per
    line node: the sums over the nodes before each cut (`_cut_conductances`)
    and over those after it, each summed from its own end: the after sums
    as differences of the before ones lost the far end's devices beside a
    strong one at the first end (1e20 S beside 1e-4 S sums to 1e20 S both
    ways)."""
    zero = np.zeros_like(a[:, :1])
    return (np.concatenate([zero, np.cumsum(a, axis=1)], axis=1),
            np.concatenate([np.cumsum(a[:, ::-1], axis=1)[:, ::-1], zero], axis=1))


def _cut_candidates(layer, g, lines):
    """Those of ``lines`` (driven at both ends) where some cut's conductance
    with the devices' G before it is below the current choice's by
    `CUT_GAIN` at either end, with their `_cut_conductances`: a superset of
    where the slopes of sinh devices (never below G, and summed further from
    a farther cut) make it so."""
    gc = _cut_conductances(layer, lines)
    if not lines.size:
        return lines, gc
    sums = _end_sums(g[lines])
    keep = np.zeros(lines.size, bool)
    for side in (0, 1):
        cost, now = _cut_costs(layer, lines, gc, sums, side)
        keep |= cost.min(axis=1) * CUT_GAIN < now
    return lines[keep], gc[keep]


def _cut_costs(layer, lines, gc, sums, side):
    """``(cost, now)`` of the ends of ``lines`` at ``side``: each cut's
    conductance ``gc`` with the devices' ``sums`` (`_end_sums`) between the
    end and it, (k, n + 1[, B]), and that of the current choice, (k[, B]):
    the end's own terminal, or its node's sum (the segment leaving its end
    group), whichever is smaller (`end_currents`)."""
    cost = gc + sums[side]
    own = cost[:, 0 if side == 0 else layer.gid.shape[1]]
    return cost, np.minimum(own, cost[np.arange(lines.size), _first_segment(layer, lines, side)])


class _Once:
    """A value computed on first call and kept: per line, the devices'
    conductance `_line_sums` compares, needed only where a line is driven at
    one end."""

    def __init__(self, make):
        self._make, self._value = make, None

    def __call__(self):
        if self._value is None:
            self._value = self._make()
        return self._value


def _line_slopes(net, v_wl, v_bl, axis, rows=256):
    """Per line (word lines: ``axis`` 1, bit lines: 0) and batch column,
    (L, B), the sum of its sinh devices' slopes ``G cosh(V / V0)``; ``rows``
    word lines at a time, so that the temporaries stay small."""
    M, N = net.shape
    v0 = np.broadcast_to(net.v0, (M, N))
    out = np.zeros((M if axis == 1 else N, net.batch))
    for i0 in range(0, M, rows):
        i1 = min(i0 + rows, M)
        g = net.g[i0:i1, :, None]
        with np.errstate(over="ignore", invalid="ignore"):
            x = (v_wl[i0:i1] - v_bl[:, i0:i1].transpose(1, 0, 2)) / v0[i0:i1, :, None]
            slope = np.where(g > 0, g * np.cosh(x), 0.0)  # an open device: 0, also where cosh overflows
        if axis == 1:
            out[i0:i1] = slope.sum(axis=1)
        else:
            out += slope.sum(axis=0)
    return out


def _line_sums(layer, g, slopes, side, by_node, i_device, axis, sign, cur):
    """`line_sum_currents`' line sums: on the lines driven at ``side``
    alone, in each batch column where the line's device conductance
    ``slopes()`` ((L, B), or (L, 1) for linear devices) is below the node's
    (lines in ``by_node``) or the terminal's, ``cur`` becomes the sum of the
    line's device currents (``i_device`` summed along ``axis``), negated
    where ``sign`` is -1 (bit lines: their devices' current flows in)."""
    driven = layer.term_mode[:, side] != FLOATING
    lines = np.nonzero(driven & (layer.term_mode[:, 1 - side] == FLOATING))[0]
    if not lines.size:
        return
    scale = layer.term_g[lines, side].copy()
    at_node = np.isin(lines, by_node)
    if np.any(at_node):
        scale[at_node] = EndGroup(layer, g, lines[at_node], side).garr[:, 0]
    use = slopes()[lines] < scale[:, None]
    keep = use.any(axis=1)
    lines, use = lines[keep], use[keep]
    if lines.size:
        total = (i_device[lines] if axis == 1 else i_device[:, lines]).sum(axis=axis)
        total = total if sign > 0 else 0.0 - total  # not -x: no -0.0
        cur[lines] = np.where(use, total, cur[lines])


def neg_matvec(layer, g, shunt, p, other, q):
    """``q = -A p`` on one layer's free groups (a correction: no sources,
    zero on fixed groups): the Kirchhoff residual of ``p``, exactly as
    `kcl_residual` writes it. ``shunt`` is a coarse level's conductance to
    ground, or None. The callers fold the sign into their own updates
    (negation is exact, so every result has the bits of ``A p``); a separate
    pass to negate ``q`` would write the whole vector once more."""
    has_shunt = shunt is not None
    kcl_residual(layer.gid, layer.fixed, g, _NO_SHUNT, False, layer.seg_g, layer.term_mode, layer.term_g,
                 layer.term_v, shunt if has_shunt else _NO_SHUNT, has_shunt, p, other, False, True, q)


class Workspace:
    """Vectors of one CG run, allocated once and reused (Newton steps)."""

    def __init__(self, M, N, B):
        self.part_w = np.empty((M, B))
        self.part_b = np.empty((N, B))
        self.z = (np.zeros((M, N, B)), np.zeros((N, M, B)))
        self.p = (np.zeros((M, N, B)), np.zeros((N, M, B)))
        # q = -A p and z = M^-1 r share storage: within a CG iteration q is
        # dead once the updates have used it, before the preconditioner
        # writes z, and z is dead once p = z + beta p, before the next
        # product writes q. Every preconditioner overwrites all of z (none
        # reads its old content), so nothing changes but 16 bytes per cell
        # and input column less to allocate and fault in.
        self.q = self.z

    def dot(self, a_w, c_w, a_b, c_b):
        """Inner product over both layers, per batch column (fixed order)."""
        dot_lines(a_w, c_w, self.part_w)
        dot_lines(a_b, c_b, self.part_b)
        return self.part_w.sum(axis=0) + self.part_b.sum(axis=0)


def pcg_core(net, g, g_t, pre, r_wl, r_bl, d_wl, d_bl, scale, tol, maxiter, work, callback=None,
             history=None, check=None, gain=None, cold=None):
    """Solve ``A d = r`` by PCG, A the (linear) nodal matrix with device
    conductance `g`. `d` accumulates the solution (start from its content
    with `r` the matching residual); `r` is updated in place.

    Stops when ``|r| / scale <= tol`` in every batch column and, when an
    `AccuracyCheck` is given (`d` then holds node voltages), when it passes
    too. Returns the iterations run and whether every column converged;
    appends the worst relative residual of each iteration to `history`.
    The check reads ``z`` times `gain` (B,), raised in place to CG's
    estimate of how far the error may exceed z (`slow_mode_gain`) as the
    iterations reveal it: a warm start passes in the gain its earlier solve
    found, which a re-solve's first iterations cannot see yet. Without a
    check, a `gain` passed in is raised to that estimate when every column
    has converged (Newton reads it to judge its last preconditioner).

    That estimate comes from the steps CG has taken. A `cold` column (bool
    (B,): started from the zero state) trusts it only once it has settled:
    it stops only where its gain grew by no more than `RITZ_SETTLED` over
    the last step, and not before its second step (after one, the estimate
    is the start's Rayleigh quotient alone); where a growth above
    `RITZ_STILL` is not dying out (`RITZ_SHRINK`), the check must pass with
    `RITZ_GROWING` times the gain. Solves of arrays held by a few
    driven word lines, every other line floating, stopped after one step
    up to 28x outside the voltage bound at tol 1e-3, and under strong IR
    drop after 3-6 steps whose estimate was still falling (up to 3.4x;
    found by fuzzing against the direct solve). An exact preconditioner
    (``pre.exact``: the direct solve, a multigrid hierarchy of one level)
    has nothing to estimate, and its first step stands. A warm column
    starts from the gain its cold solve settled at; asking it to settle
    again cost 5762 fuzzed re-solves 6-8 % more iterations and moved none
    of them inside the bound.

    A multigrid W-cycle is a symmetric preconditioner but positive definite
    only while each coarse cycle, repeated as a stationary iteration,
    converges. In the strong-IR regime (wire segments of tens of ohms on a
    large array: 10 ohm at 4096^2, 100 ohm at 1024^2) it may not, and CG
    then stalls near 1e-4 to 1e-6 for thousands of iterations. On the signs
    of that (``r . z <= 0``, or `STALL_ITERATIONS` iterations without
    halving the residual) the preconditioner is switched to the V-cycle,
    which is always positive definite, and CG restarts from where it is
    (`MultigridPreconditioner.fall_back_to_v_cycle`). Well-conditioned
    solves gain about 100x per iteration and never trip it.
    """
    safe = np.where(scale > 0, scale, 1.0)
    rel = np.where(scale > 0, np.sqrt(work.dot(r_wl, r_wl, r_bl, r_bl)) / safe, 0.0)
    active = rel > tol
    report_gain = gain is not None and check is None
    if gain is None:
        gain = np.ones(scale.shape)
    if cold is None:
        cold = np.zeros(scale.shape, dtype=bool)
    estimated = not getattr(pre, "exact", False)
    if not active.any() and check is None:
        return 0, True
    z_wl, z_bl = work.z
    p_wl, p_bl = work.p
    q_wl, q_bl = work.q
    z_wl[...] = 0.0
    z_bl[...] = 0.0
    pre.apply(r_wl, r_bl, z_wl, z_bl)
    if check is not None and not active.all():
        # A start within tol (a warm one) is taken only where the accuracy
        # check passes too: next to a near-ideal driven end, the zero
        # state's residual (the scale) is about g_t V, and re-solves after
        # one device changed kept the old currents, 3.5 % off, after 0
        # iterations
        active |= (scale > 0) & ~check.passed((d_wl, d_bl), (z_wl, z_bl), work, (r_wl, r_bl), gain)
        if not active.any():
            return 0, True
    p_wl[...] = z_wl
    p_bl[...] = z_bl
    rz = work.dot(r_wl, z_wl, r_bl, z_bl)
    wl, bl = net.wl, net.bl
    guard = getattr(pre, "uses_w_cycle", False)  # watch a W-cycle for a loss of definiteness
    best, best_it = np.inf, 0
    alphas, betas = [], []  # CG's coefficients since it last started (`slow_mode_gain`)
    it = 0
    for it in range(1, maxiter + 1):
        neg_matvec(wl, g, None, p_wl, p_bl, q_wl)  # q = -A p
        neg_matvec(bl, g_t, None, p_bl, p_wl, q_bl)
        pq = -work.dot(p_wl, q_wl, p_bl, q_bl)  # p . A p
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(active & (pq > 0), rz / np.where(pq > 0, pq, 1.0), 0.0)
        alphas.append(alpha)
        cg_update(d_wl, r_wl, p_wl, q_wl, alpha, work.part_w)
        cg_update(d_bl, r_bl, p_bl, q_bl, alpha, work.part_b)
        rnorm = np.sqrt(work.part_w.sum(axis=0) + work.part_b.sum(axis=0))
        rel = np.where(scale > 0, rnorm / safe, 0.0)
        worst = float(rel.max())
        if history is not None:
            history.append(worst)
        if callback is not None:
            callback(it, worst)
        if not np.isfinite(worst):
            return it, False
        done = rel <= tol
        if check is None:
            active = active & ~done
            if not active.any():
                if report_gain:
                    np.maximum(gain, slow_mode_gain(alphas, betas, np.ones(gain.shape, dtype=bool)), out=gain)
                return it, True
        pre.apply(r_wl, r_bl, z_wl, z_bl)
        if check is not None:
            if done.any():
                now = slow_mode_gain(alphas, betas, done)
                np.maximum(gain, now, out=gain)
                margin = 1.0
                settle = done & cold if estimated else None
                if settle is not None and settle.any():
                    # settled: the gain one and two steps ago (betas: one fewer than alphas)
                    before = slow_mode_gain(alphas[:-1], betas[:-1], settle)
                    before2 = slow_mode_gain(alphas[:-2], betas[:-2], settle)
                    done &= ~settle | ((now <= RITZ_SETTLED * before) & (it >= 2))
                    calm = (now <= RITZ_STILL * before) | (
                        (it >= 3) & (now - before <= RITZ_SHRINK * (before - before2)))
                    margin = np.where(settle & ~calm, RITZ_GROWING, 1.0)  # still growing: checked with a margin
                done &= check.passed((d_wl, d_bl), (z_wl, z_bl), work, (r_wl, r_bl), gain * margin)
            active = active & ~done
            if not active.any():
                return it, True
        rz_new = work.dot(r_wl, z_wl, r_bl, z_bl)
        if guard:
            if worst < 0.5 * best:
                best, best_it = worst, it
            if it - best_it >= STALL_ITERATIONS or np.any(active & (rz_new <= 0.0)):
                pre.fall_back_to_v_cycle()
                guard = False
                pre.apply(r_wl, r_bl, z_wl, z_bl)  # restart: p = z, from the present iterate
                rz = work.dot(r_wl, z_wl, r_bl, z_bl)
                p_wl[...] = z_wl
                p_bl[...] = z_bl
                alphas, betas = [], []
                continue
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.where(active & (rz > 0), rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        betas.append(beta)
        rz = rz_new
        xpby(z_wl, beta, p_wl)
        xpby(z_bl, beta, p_bl)
    return it, False


def initial_voltages(net, x0=None, out=None):
    """Fixed groups at their drive voltage; the rest from x0 or zero.
    Writes into `out` (two zeroed arrays) when given."""
    B = net.batch
    given = out
    out = []
    for k, (layer, key) in enumerate(((net.wl, "v_wl"), (net.bl, "v_bl"))):
        L, n = layer.gid.shape
        v = np.zeros((L, n, B)) if given is None else given[k]
        if x0 is not None:
            prev = getattr(x0, key)
            if key == "v_bl":
                prev = np.swapaxes(prev, 0, 1)
            prev = prev.reshape(L, n, -1)
            v[...] = prev if prev.shape[2] in (1, B) else prev[:, :, :1]
            if np.any(layer.ngroups < n):
                # nodes this circuit joins by ideal wire take one voltage
                # (their group's first node's): an x0 from a circuit with
                # other ideal segments left them apart, and the solve kept
                # them so
                L_idx = np.arange(n)[None, :]
                start = np.ones((L, n), dtype=bool)
                start[:, 1:] = layer.gid[:, 1:] != layer.gid[:, :-1]
                first = np.maximum.accumulate(np.where(start, L_idx, 0), axis=1)
                v[...] = np.take_along_axis(v, first[:, :, None], axis=1)
        for side in range(2):
            for l in np.nonzero(layer.term_mode[:, side] == IDEAL)[0]:
                group = 0 if side == 0 else layer.ngroups[l] - 1
                v[l, layer.gid[l] == group, :] = layer.term_v[l, side, :]
        out.append(v)
    return out


def residual_scale(net, work, free=0.0):
    """Per-column norm of the residual of the zero state (drives only; the
    free nodes at `free` volts, 0 but in `xbarsim._newton`'s fallback): the
    current scale the relative Kirchhoff residual is measured against.
    Uses the workspace's z and p vectors as scratch."""
    zw, zb = work.z
    r_wl, r_bl = work.p
    zw[...] = free
    zb[...] = free
    fixed = initial_voltages(net, None, out=(zw, zb))
    residual(net, fixed[0], fixed[1], r_wl, r_bl)
    return np.sqrt(work.dot(r_wl, r_wl, r_bl, r_bl))


def unit_scale(vmax):
    """The power of two at or above each largest drive `vmax` (1 where it is
    0), by which solves divide their drives to work at unit drive: a power of
    two, so the scaling and its undoing are exact."""
    vmax = np.asarray(vmax, dtype=float)
    return np.where(vmax > 0, np.ldexp(1.0, np.frexp(vmax)[1]), 1.0)


def _check_weak_ends(net, v_wl, v_bl, r_wl, r_bl, columns):
    """Refuse (`ParameterError`) the answer of a column whose residual test
    was vacuous (all its drives' current below what double precision
    resolves beside the largest conductance) when a resistive driven end
    injects a current that its node does not pass on: the Kirchhoff residual
    there (``r_wl``, ``r_bl``: the true residual of ``v_wl``, ``v_bl``)
    holds more than half of the end's current. A 1e20 ohm input on ideal
    wires came back as all-zero device currents, relative residual 1.0.
    Such a column with ideal drives only, or whose ends'
    currents go on into the array, is an answer: 1e-15 S devices between
    ideally driven lines are solved exactly, and a check made before the
    solve refused them (review of the fix)."""
    bad = np.zeros(columns.shape, dtype=bool)
    for layer, v, r in ((net.wl, v_wl, r_wl), (net.bl, v_bl, r_bl)):
        for side in range(2):
            lines = np.nonzero(layer.term_mode[:, side] == RESISTIVE)[0]
            if lines.size == 0:
                continue
            node, _ = end_extent(layer, lines, side)  # where kcl_residual sums the end's group
            inject = layer.term_g[lines, side][:, None] * (layer.term_v[lines, side, :] - v[lines, node, :])
            held = np.abs(r[lines, node, :]) > 0.5 * np.abs(inject)
            bad |= np.any(held & (inject != 0), axis=0)
    bad &= columns
    if bad.any():
        raise ParameterError(
            "the drives reach this circuit only through terminals so weak that all their current is below what "
            "double precision resolves beside its largest conductance: the solve could not tell the answer from "
            f"zero ({int(bad.sum())} of {bad.size} input column(s)). Give smaller terminal resistances (check "
            "their units: ohms; --r-in / --r-out / --r-terminal on the command line), or Drive(floating=True) "
            "for an end meant to be open.")


WARM_SAFETY = 0.5
"""A warm-started solve's voltage-error estimate must pass this share of the
bound (`solve_pcg`)."""


def solve_pcg(net, tol, maxiter=None, callback=None, x0=None, preconditioner="line", pre=None, gain=1.0):
    """Linear solve to relative Kirchhoff residual `tol`.

    `pre` reuses an already built preconditioner (any SPD one is valid, also
    one built for slightly different conductances: warm re-solves).
    `gain` is the least factor by which the error may exceed the
    preconditioned residual (`slow_mode_gain`; a warm start's earlier solve
    found it); the gain this solve reached is left in ``pre.slow_mode_gain``.
    Returns ``(v_wl (M,N,B), v_bl (N,M,B), iterations, residual, history, pre)``.
    """
    M, N = net.shape
    B = net.batch
    if maxiter is None:
        maxiter = max(200, 4 * (M + N))
    # Solve for unit drive voltages (the circuit is linear) so that norms
    # neither underflow nor overflow whatever the volts; rescale at the end.
    # (a power of two: the scaling and its undoing are exact, so ideal
    # drives come back exactly as given: an ideal wire's far node read
    # 1.4e-17 V off its 0.2 V source through x / v * v)
    vunit = unit_scale(net.drive_scale())
    net = _scaled(net, 1.0 / vunit)
    if pre is None:  # before the vectors: its set-up temporaries then fit in their place
        pre = make_preconditioner(net, preconditioner)
    work = Workspace(M, N, B)
    scale = residual_scale(net, work)
    if not np.all(np.isfinite(scale)):
        # unreachable through the public checks; a NaN scale was taken as a
        # residual of 0, "converged" at iteration 0
        raise ConvergenceError(
            "the drives' currents are not finite (an array of the circuit changed after its checks?); "
            "nothing was solved. Build the Crossbar and drives again and solve.",
            residual_history=np.array([np.nan]), iterations=0)
    v_wl, v_bl = initial_voltages(net, x0)
    if x0 is not None:
        # the warm start is in volts: to unit drive, and the fixed nodes back
        # at their (unit) drives, which the division had scaled a second
        # time (an ideal 0.2 V drive came back at 0.8 V from every re-solve
        # and x0= solve)
        v_wl /= vunit
        v_bl /= vunit
        initial_voltages(net, None, out=(v_wl, v_bl))
    # From a warm start the error left sits in slow modes (a floating line's
    # common voltage) that one preconditioner application underestimates:
    # pcg re-solves stopped 1.22x outside the voltage bound (floating bit
    # lines whose holding devices dropped to 1e-9 S).
    # There the estimate must pass half the bound, as Newton's (`Z_SAFETY`).
    vtol = VTOL_PER_TOL * tol * (WARM_SAFETY if x0 is not None else 1.0)
    check = AccuracyCheck(net, vtol, ITOL_PER_TOL * tol)
    r_wl = np.empty((M, N, B))
    r_bl = np.empty((N, M, B))
    if x0 is None:  # the zero state, whose residual `residual_scale` left in work.p
        np.copyto(r_wl, work.p[0])
        np.copyto(r_bl, work.p[1])
    else:
        residual(net, v_wl, v_bl, r_wl, r_bl)
        # A warm start no closer than the zero state is dropped, column by
        # column: with all-zero drives (scale 0) the old voltages passed as
        # converged at once, and a start from 1e6 times the drives ended
        # outside the accuracy bound.
        start = np.sqrt(work.dot(r_wl, r_wl, r_bl, r_bl))
        cold = ~(start < scale)
        if np.any(cold):
            z_wl, z_bl = work.z  # the zero state, as `residual_scale` left it (its residual in work.p)
            v_wl[:, :, cold] = z_wl[:, :, cold]
            v_bl[:, :, cold] = z_bl[:, :, cold]
            r_wl[:, :, cold] = work.p[0][:, :, cold]
            r_bl[:, :, cold] = work.p[1][:, :, cold]
    safe = np.where(scale > 0, scale, 1.0)
    # What double precision resolves: where wires far stronger than the
    # devices hold a line (1e-12 S devices on a floating 1 ohm line), node
    # voltages quantized to an ulp leave Kirchhoff imbalances of that order
    # at every node, which no solver can remove; there the relative residual
    # is asked only to reach that floor (the accuracy check on the voltage
    # error estimate still applies in full).
    floor = kcl_bound(0.0, 0.0, 1.0, check.gmax)
    # columns whose whole zero-state current is below that floor: the
    # residual test cannot tell their answer from zero (checked after the solve)
    vacuous = (scale > 0) & (floor >= scale)
    rtol = np.maximum(tol, floor / safe)  # (B,): the floor at unit drive
    history = [float(np.max(np.where(scale > 0, np.sqrt(work.dot(r_wl, r_wl, r_bl, r_bl)) / safe, 0.0)))]
    gains = np.full(B, max(1.0, float(gain)))
    it, ok = pcg_core(net, net.g, net.g_t, pre, r_wl, r_bl, v_wl, v_bl, scale, rtol, maxiter, work,
                      callback=callback, history=history, check=check, gain=gains,
                      cold=np.ones(B, dtype=bool) if x0 is None else cold)
    pre.slow_mode_gain = float(np.max(gains))
    advice = getattr(pre, "stall_advice", "Raise maxiter, loosen tol, or use method='direct'")
    if not ok and not np.isfinite(history[-1]):
        # "raise maxiter" cannot mend a NaN (reached only by
        # injecting one: the inputs are checked finite and in range)
        raise ConvergenceError(f"PCG produced a non-finite residual ({history[-1]}) after {it} iterations; this is "
                               "a bug, please report it.", residual_history=np.array(history), iterations=it)
    if not ok:
        # the residual can meet tol while the voltage-error estimate does not
        # (wires far more resistive than the devices: 1e6 ohm segments on 2-10
        # kOhm devices); the message said "did not reach tol" beside a residual
        # below it
        # (or the estimate had not settled: a cold solve takes 2 iterations
        # at least, `pcg_core`; maxiter=1 named only the bound)
        why = (f"its relative Kirchhoff residual reached {history[-1]:.3g}, but its estimate of the voltage "
               "and current errors had not met the accuracy bound, or had not yet settled; a solve from "
               "the zero state takes 2 iterations at least" if history[-1] <= float(np.max(rtol))
               else f"relative Kirchhoff residual {history[-1]:.3g}")
        raise ConvergenceError(
            f"PCG did not reach tol={tol:g} in {it} iterations ({why}). {advice}; the residual history is "
            "attached as .residual_history.",
            residual_history=np.array(history),
            iterations=it,
        )
    # The recursive residual drifts from the true one in floating point:
    # confirm convergence on the true Kirchhoff residual.
    residual(net, v_wl, v_bl, r_wl, r_bl)
    for _ in range(LEVEL_RESTARTS):
        # a floating line's level from the true residual: the recursive one
        # had drifted to read 1e-24 V where the line was 1.2e-10 V off, 24x
        # the bound at tol 1e-12 (direct, a line of 2e-12 S devices strapped
        # by a 9e-7 ohm segment); CG goes on from the true residual
        if check.levels_met((r_wl, r_bl), gains).all() or it >= maxiter:
            break
        more, ok = pcg_core(net, net.g, net.g_t, pre, r_wl, r_bl, v_wl, v_bl, scale, rtol, maxiter - it, work,
                            callback=None if callback is None else (lambda i, res, done=it: callback(done + i, res)),
                            history=history, check=check, gain=gains, cold=np.zeros(B, dtype=bool))
        it += more
        residual(net, v_wl, v_bl, r_wl, r_bl)
    if not check.levels_met((r_wl, r_bl), gains).all():
        raise ConvergenceError(
            f"PCG did not reach tol={tol:g} in {it} iterations: the true Kirchhoff residual leaves a floating "
            "line's level outside the accuracy bound (its devices are far weaker than its wire segments). "
            f"{advice}; the residual history is attached as .residual_history.",
            residual_history=np.array(history), iterations=it)
    history = np.array(history)  # a list until the restarts above had appended to it
    true_col = np.where(scale > 0, np.sqrt(work.dot(r_wl, r_wl, r_bl, r_bl)) / safe, 0.0)
    true_rel = float(np.max(true_col))
    if np.any(true_col > 100 * rtol):
        raise ConvergenceError(
            f"PCG's recursive residual reached tol={tol:g} but the true Kirchhoff residual is "
            f"{true_rel:.3g}: the system is too ill-conditioned for this tolerance. "
            "Loosen tol or use method='direct'.",
            residual_history=history,
            iterations=it,
        )
    if vacuous.any():
        _check_weak_ends(net, v_wl, v_bl, r_wl, r_bl, vacuous)
    v_wl *= vunit
    v_bl *= vunit
    return v_wl, v_bl, it, true_rel, history, pre


def _scaled(net, factor):
    """The network with every drive voltage multiplied by `factor` (B,)."""
    import dataclasses

    ends = {k: (None if s is None else dataclasses.replace(s, v=s.v * factor)) for k, s in net.ends.items()}
    return dataclasses.replace(
        net, ends=ends,
        wl=dataclasses.replace(net.wl, term_v=net.wl.term_v * factor),
        bl=dataclasses.replace(net.bl, term_v=net.bl.term_v * factor),
    )
