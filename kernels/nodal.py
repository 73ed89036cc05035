"""A compact nodal solver of one small crossbar, for use inside kernels.

The programming and MVM kernels solve the crossbar circuit (docs/CIRCUIT.md)
thousands of times per array: once per pulse, once per verify read, once per
input vector. They call `solve_nodal`, a nonlinear block Gauss-Seidel
(line relaxation) solve that is warm-started from the caller's last voltages:

* each sweep solves every word line exactly (tridiagonal, bit lines held),
  linearising each device at the present voltages on the way (Newton:
  ``I ~ i0 + gd V`` with ``gd = G cosh(V/V0)``; ``gd = G``, ``i0 = 0`` for a
  linear device), then every bit line exactly (word lines held); all lines
  of one direction are eliminated together so their recurrences overlap;
* a line whose wire resistance is 0 is one node (``r = 0`` is handled
  exactly, never replaced by a small resistance);
* it stops when the error estimated from the last two sweeps' updates is
  under ``tol`` volts (`solve_nodal`).

Drive layout (the read layout of CIRCUIT.md): word line ``i`` is driven at its
``left`` end, ``WL(i, 0)``, by an ideal source ``wl_v[i]`` when
``wl_drv[i] == 1`` and floats otherwise; bit line ``j`` is driven at its
``bottom`` end, ``BL(M-1, j)``, by ``bl_v[j]`` when ``bl_drv[j] == 1``. The
other ends float.
"""

import math

import numpy as np
from numba import njit

from .config import STRICT_JIT


@njit(**STRICT_JIT)
def device_current(G, v, v0, v0inv):
    """``G V0 sinh(V/V0)``, or ``G V`` when ``v0inv == 0`` (linear device)."""
    if v0inv == 0.0:
        return G * v
    return G * v0 * math.sinh(v * v0inv)


@njit(**STRICT_JIT)
def set_ideal(wl_v, wl_drv, bl_v, bl_drv, vwl, vbl):
    """Start voltages: every node at its line's drive (0 where floating).

    Exact when both wires are ideal and no line floats.
    """
    M, N = vwl.shape
    for i in range(M):
        x = wl_v[i] if wl_drv[i] else 0.0
        for j in range(N):
            vwl[i, j] = x
    for i in range(M):
        for j in range(N):
            vbl[i, j] = bl_v[j] if bl_drv[j] else 0.0


_SAFETY = 0.5
"""`solve_nodal` stops when its error estimate is under ``_SAFETY * tol``."""

_RATE_FLOOR = 0.1
"""A warm start's first sweep is judged with the carried contraction, but
with no less than this: the contraction measured at the end of a solve
(often 1e-4 or less on small arrays, where the last sweeps fall to
rounding) is no bound on the first sweep after a change."""

_COLD_RATE_FLOOR = 0.1
"""The least contraction a solve from a cold start (no rate carried) counts
with when it stops: the ratios of its updates from the fourth sweep on can
still be set by fast modes dying out while a slow mode of small amplitude
hides under them (a V/2 pulse on a 16 x 8 array on 10 ohm wires measured
0.0052 where the slowest mode contracts by 0.016, and stopped 1.36x outside
tol; about one cold solve in 3,000-6,000 on wires of 10 ohm or more).
Where the ratios still grow, the next one is extrapolated from
them (a 13 x 32 read on 40 ohm wires measured 0.064 after 0.0096 where the
slow mode contracts by 0.4). The rate carried to the next solve is the
measured one."""

_SETTLED = 2.0
"""A cold start trusts its ratios of updates only once they have settled:
where the last one rose more than this factor over the one before, or fell
more than this factor below either of the two before, the contraction is
counted as at least `_UNSETTLED_RATE`. Past a nonlinear transient (updates
held at the 0.1 V step cap while sinh devices settle, then falling fast:
ratios 0.31, 0.076, 0.021) a slow linear mode (0.63 per sweep) grows out
from under the falling ones, whose max-norm sits on other nodes. Trusted
there, cold solves of sinh arrays (V0 = 0.1 V) at tolerances of 1e-3 to
1e-5 of the drive stopped up to 13x outside them (found by fuzzing
against the direct solve). Over 24,000 random cold solves (1-16 x 1-16,
0-100 ohm wires, linear and sinh devices, drives to 2 V, floating lines)
at 1e-3 to 1e-5 of the drive, 24 stopped outside before (worst 13.4x) and
2 now (worst 1.26x: a fourth sweep where a slow mode hides under
`_COLD_RATE_FLOOR`, and two linear modes of 0.50 and 0.75 per sweep,
the faster one larger for six sweeps, which no estimate from the updates'
max-norm tells apart)."""

_UNSETTLED_RATE = 0.9
"""The least contraction counted while the ratios have not settled
(`_SETTLED`): the solve stops there only where the update is under
``tol / 18``. Not trusting them at all cost a 3 x 16 read twice its
sweeps (4 -> 9), whose ratios jump between 1e-4 and 3e-3 all the way down
to rounding; this costs 0.5-0.7 % more sweeps over random cold solves at
1e-10 to 1e-8 of the drive, 1.4-2.4 % at 1e-5 to 1e-3."""

_TAYLOR = 0.5
"""Below this |V/V0| `sinh_cosh` sums the series (error < 1e-16 relative)."""

_TAYLOR_SHORT = 0.04
"""Below this |V/V0| (the unselected cells of a pulse or read, at wire-drop
voltages) four terms of the sinh series and five of the cosh series
suffice: the first left out is below 0.04^8 / 9! = 2e-17 relative."""


@njit(**STRICT_JIT, inline="always")
def sinh_cosh(x):
    """``(sinh x, cosh x)``: a Taylor sum for small ``|x|`` (most cells of a
    pulse or read sit near 0 V), one ``exp`` otherwise."""
    ax = abs(x)
    if ax < _TAYLOR_SHORT:
        y = x * x
        s = x * (1.0 + y * (1.0 / 6 + y * (1.0 / 120 + y * (1.0 / 5040))))
        c = 1.0 + y * (0.5 + y * (1.0 / 24 + y * (1.0 / 720 + y * (1.0 / 40320))))
        return s, c
    if ax < _TAYLOR:
        y = x * x
        s = x * (1.0 + y * (1.0 / 6 + y * (1.0 / 120 + y * (1.0 / 5040 + y * (
            1.0 / 362880 + y * (1.0 / 39916800 + y * (1.0 / 6227020800)))))))
        c = 1.0 + y * (0.5 + y * (1.0 / 24 + y * (1.0 / 720 + y * (1.0 / 40320 + y * (
            1.0 / 3628800 + y * (1.0 / 479001600 + y * (1.0 / 87178291200)))))))
        return s, c
    e = math.exp(x)
    ie = 1.0 / e
    return 0.5 * (e - ie), 0.5 * (e + ie)


@njit(**STRICT_JIT, inline="always")
def _worst(a, b):
    """``max(a, b)`` that keeps a NaN (numba's ``max`` drops a NaN second
    argument), so a NaN voltage can never pass for a converged sweep."""
    return a if a >= b or a != a else b


@njit(**STRICT_JIT, inline="always")
def _linear_part(g, v, v0, v0inv):
    """Device linearised at ``v``: ``I ~ i0 + gd V``; returns ``(gd, i0)``."""
    if v0inv == 0.0:
        return g, 0.0
    s, c = sinh_cosh(v * v0inv)
    d = g * c
    return d, g * v0 * s - d * v


@njit(**STRICT_JIT)
def _linearise(G, v0, v0inv, vwl, vbl, gd, i0, cols):
    """Every device linearised at the present voltages (`_linear_part`),
    into ``gd``, ``i0``: one pass in memory order, before a sweep.

    Most cells of a pulse or read sit at wire-drop voltages, inside the
    short series of `sinh_cosh`. Each row is first linearised with that
    series alone, a loop with no branch that the compiler vectorizes (the
    same operations in the same order as `sinh_cosh`, so the same bits),
    counting the cells outside its range. In a row that has such cells,
    their columns are gathered into ``cols`` (work of length >= N, holding
    the column numbers as floats, exact) by a branch-free compaction, and
    only those cells are recomputed. A V/2 pulse puts one such cell in
    every row (the selected bit line): testing each cell of the row with a
    branch instead cost 5 ns a cell, three quarters of the linearisation
    and a third of the sweep.
    """
    M, N = G.shape
    if v0inv == 0.0:
        for i in range(M):
            for j in range(N):
                gd[i, j] = G[i, j]
                i0[i, j] = 0.0
        return
    for i in range(M):
        big = 0
        jsum = 0
        for j in range(N):
            g = G[i, j]
            v = vwl[i, j] - vbl[i, j]
            x = v * v0inv
            y = x * x
            s = x * (1.0 + y * (1.0 / 6 + y * (1.0 / 120 + y * (1.0 / 5040))))
            c = 1.0 + y * (0.5 + y * (1.0 / 24 + y * (1.0 / 720 + y * (1.0 / 40320))))
            d = g * c
            gd[i, j] = d
            i0[i, j] = g * v0 * s - d * v
            f = 0 if abs(x) < _TAYLOR_SHORT else 1
            big += f
            jsum += f * j
        if big == 1:  # one such cell (the selected bit line's): its column is the sum
            _redo(G, v0, v0inv, vwl, vbl, gd, i0, i, jsum)
        elif big:
            n = 0
            for j in range(N):  # compaction: j kept where outside the short series
                cols[n] = j
                n += 0 if abs((vwl[i, j] - vbl[i, j]) * v0inv) < _TAYLOR_SHORT else 1
            for k in range(n):
                _redo(G, v0, v0inv, vwl, vbl, gd, i0, i, int(cols[k]))


@njit(**STRICT_JIT, inline="always")
def _redo(G, v0, v0inv, vwl, vbl, gd, i0, i, j):
    """Cell (i, j) linearised by `_linear_part`."""
    d, c0 = _linear_part(G[i, j], vwl[i, j] - vbl[i, j], v0, v0inv)
    gd[i, j] = d
    i0[i, j] = c0


@njit(**STRICT_JIT)
def _line_pass(r, drv, vd, end, sgn, gd, i0, xs, xo, cp, dp, x, dm):
    """Solve every line of one direction exactly, the other held; returns max |change|.

    One kernel for both directions (the caller passes views, pyamg-style):
    every array is indexed ``[node, line]`` (word lines: the transposes;
    bit lines: the arrays themselves). ``xs`` are this direction's voltages
    (updated), ``xo`` the crossing lines'; ``sgn`` is +1 for word lines and
    -1 for bit lines (current leaving this line through a device ``sgn i0 +
    gd (xs - xo)``, the devices as `_linearise` left them). Node ``end`` of
    line ``l`` is an identity row when ``drv[l]``.

    Lines are independent given the crossing ones, so all of them are
    eliminated together (inner loop over lines, with no branch in it): the
    Thomas recurrences of different lines overlap instead of each waiting on
    its own division chain, and on contiguous lines the compiler can use
    vector instructions. ``cp``, ``dp``: work shaped like ``xs``; ``x``,
    ``dm``: one per line.
    """
    n, L = xs.shape
    gw = 1.0 / r
    for k in range(n):
        right = gw if k < n - 1 else 0.0
        if k == 0:
            for l in range(L):
                d = gd[0, l]
                inv = 1.0 / (d + right)
                cp[0, l] = -right * inv
                dp[0, l] = (d * xo[0, l] - sgn * i0[0, l]) * inv
        else:
            for l in range(L):
                d = gd[k, l]
                den = d + right
                den += gw + gw * cp[k - 1, l]
                rhs = d * xo[k, l] - sgn * i0[k, l]
                rhs += gw * dp[k - 1, l]
                inv = 1.0 / den
                cp[k, l] = -right * inv
                dp[k, l] = rhs * inv
        if k == end:
            for l in range(L):
                if drv[l]:
                    cp[k, l] = 0.0
                    dp[k, l] = vd[l]
    for l in range(L):
        if not drv[l]:
            _floating_line(l, gw, sgn, gd, i0, xo, cp, dp)
    for l in range(L):
        xk = dp[n - 1, l]
        x[l] = xk
        dm[l] = abs(xk - xs[n - 1, l])
        xs[n - 1, l] = xk
    for k in range(n - 2, -1, -1):
        for l in range(L):
            xk = dp[k, l] - cp[k, l] * x[l]
            x[l] = xk
            dm[l] = _worst(dm[l], abs(xk - xs[k, l]))
            xs[k, l] = xk
    dmax = 0.0
    for l in range(L):
        dmax = _worst(dmax, dm[l])
    return dmax


_STRONG_WIRE = 1.0
"""A floating line whose devices, summed and times its node count, conduct
at most this fraction of one wire segment is solved by `_floating_line`.
At 1e-3 the Thomas solve of lines just above it (held by devices ~1e3
times weaker than a segment) misplaced them by ~1e-12 of the drive, which
the level correction undid every sweep: a cycle just above tol / 2 at tol
1e-12 (found by fuzzing). At 1 the profile's ``beta`` stays below
cosh(1) - 1."""


@njit(**STRICT_JIT)
def _floating_line(l, gw, sgn, gd, i0, xo, cp, dp):
    """Solve floating line ``l`` (no driven end) as a level plus a profile
    when its wire is strong (`_STRONG_WIRE`), between `_line_pass`'s
    elimination and its back substitution (arguments as there): the
    solution goes into ``dp[:, l]`` with ``cp[:, l] = 0``, so the back
    substitution copies it and measures the change as for every line.

    On a line with no driven end the Thomas recurrence subtracts wire
    conductances to find the device conductances, ``gw + gw cp ~ d``: with
    wire segments 1e9 times the devices (1e-6 ohm against 1 mS) that lost
    1e-7 of the level, far above the solve's tolerance, and the solve ran
    to its sweep cap. Here, with ``s_k`` the current from
    node k + 1 into node k, Kirchhoff at node k reads ``s_k = s_(k-1) + d_k
    x_k - rhs_k`` (``s_(-1) = 0``) and ``x_(k+1) = x_k + s_k / gw``. Written
    as ``x_k = a + alpha_k + beta_k a`` (``a = x_0``) the recurrence runs
    forward in well-scaled terms (``alpha``, ``beta`` are wire drops, small
    on strong wire: ``beta`` grows like ``cosh(k sqrt(d / gw)) - 1``, below
    0.55 under `_STRONG_WIRE`), and the open
    far end, ``s_(n-1) = 0``, gives the level ``a``, a conductance-weighted
    mean as on an ideal line (`_merged_pass`). Exact in exact arithmetic,
    like the Thomas solve; a line on weaker wire keeps the Thomas solve
    (there ``beta`` could grow like a cosh). Two passes of the same
    operations: the first finds ``a``, the second writes the voltages."""
    n = gd.shape[0]
    dsum = 0.0
    for k in range(n):
        dsum += gd[k, l]
    if not (dsum > 0.0 and n * dsum <= _STRONG_WIRE * gw):
        return  # weak wire, or no device: the Thomas solve stands (a line of open devices only is ill-posed:
        # xs.solve refuses it, programming never builds one, and its 0 / 0 ends the solve as not converged)
    a = 0.0
    for final in range(2):
        sa = 0.0  # s_k = sa + sb a
        sb = 0.0
        al = 0.0
        be = 0.0
        for k in range(n):
            d = gd[k, l]
            if final:
                cp[k, l] = 0.0
                dp[k, l] = a + al + be * a
            sa += d * al - (d * xo[k, l] - sgn * i0[k, l])
            sb += d * (1.0 + be)
            al += sa / gw
            be += sb / gw
        a = -sa / sb


@njit(**STRICT_JIT)
def _merged_pass(drv, vd, sgn, gd, i0, xs, xo):
    """Lines that are one node each (0 ohm wire, or a single node), both
    directions through the views of `_line_pass` (``[node, line]``, same
    ``sgn``, devices as `_linearise` left them): a driven line sits at its
    drive, a floating one at the conductance-weighted mean of its crossings."""
    n, L = xs.shape
    dmax = 0.0
    for l in range(L):
        num = 0.0
        den = 0.0
        for k in range(n):
            d = gd[k, l]
            num += d * xo[k, l] - sgn * i0[k, l]
            den += d
        if drv[l]:
            x = vd[l]
        elif den <= 0.0:
            continue  # isolated floating line: left where it is
        else:
            x = num / den  # a NaN sum lands here and fails the solve
        for k in range(n):
            dmax = _worst(dmax, abs(x - xs[k, l]))
            xs[k, l] = x
    return dmax


@njit(**STRICT_JIT)
def _slope_current(g, v, v0, v0inv):
    """A device's ``(dI/dV, I)`` at ``v`` volts."""
    if v0inv == 0.0:
        return g, g * v
    s, c = sinh_cosh(v * v0inv)
    return g * c, g * v0 * s


@njit(**STRICT_JIT)
def _line_shifts(G, v0, v0inv, vwl, vbl, wl_drv, bl_drv):
    """Galerkin correction of the floating lines' levels; returns the largest
    shift applied, or -1.0 (nothing applied) when the coarse system is
    singular (a floating line whose devices are all open).

    Gauss-Seidel sweeps settle the level of a floating line only through its
    devices, a small share of its coupling when few lines are driven (the
    ``floating`` bias and read schemes): the level of every floating line
    then converges by about ``1/N`` per sweep, hundreds of sweeps a solve.
    The coarse space here is one constant shift per floating line (numbered
    by `_floating_slots`, word lines and bit lines apart); the shifts that null
    each floating line's net device current, with the devices linearised at
    the present voltages, solve the (M_f + N_f) system

        ``[diag(dw)  -gc; -gc^T  diag(db)] [c; d] = [rw; rb]``

    (``dw``, ``db``: a line's total device conductance; ``gc``: the devices
    between floating lines; ``rw``, ``rb``: the lines' net device currents,
    into the line). Wire currents inside a line do not change under a
    constant shift, so this is the exact Galerkin product ``P^T A P``. The
    word-line block is diagonal: it is eliminated and the bit-line Schur
    complement is factored by dense Cholesky (N_f^3 / 3 operations, about
    0.1 ms at 64 x 64). Its work arrays are allocated here, so that solves
    without floating lines (V/2, V/3, grounded reads) allocate nothing.
    """
    M, N = G.shape
    apos = _floating_slots(wl_drv)
    bpos = _floating_slots(bl_drv)
    mf = apos.max() + 1  # floating word lines
    nf = bpos.max() + 1  # floating bit lines
    dw = np.zeros(mf)
    rw = np.zeros(mf)
    db = np.zeros(nf)
    rb = np.zeros(nf)
    gc = np.empty((mf, nf))
    S = np.empty((nf, nf))
    # one pass over the cells that touch a floating line, each device
    # linearised once
    for i in range(M):
        a = apos[i]
        for j in range(N):
            b = bpos[j]
            if a < 0 and b < 0:
                continue
            d, cur = _slope_current(G[i, j], vwl[i, j] - vbl[i, j], v0, v0inv)
            if a >= 0:
                dw[a] += d
                rw[a] -= cur
            if b >= 0:
                db[b] += d
                rb[b] += cur
                if a >= 0:
                    gc[a, b] = d
    for a in range(mf):
        if not dw[a] > 0.0:
            return -1.0
    for b in range(nf):
        if not db[b] > 0.0:
            return -1.0
    # bit-line Schur complement S = diag(db) - gc^T diag(1/dw) gc, rhs in rb
    for b1 in range(nf):
        for b2 in range(nf):
            S[b1, b2] = 0.0
        S[b1, b1] = db[b1]
    for a in range(mf):
        inv = 1.0 / dw[a]
        for b1 in range(nf):
            w = gc[a, b1] * inv
            if w == 0.0:
                continue
            rb[b1] += w * rw[a]
            for b2 in range(nf):
                S[b1, b2] -= w * gc[a, b2]
    # Cholesky, lower triangle in place; then d in rb
    for k in range(nf):
        p = S[k, k]
        for q in range(k):
            p -= S[k, q] * S[k, q]
        if not p > 0.0:
            return -1.0
        p = math.sqrt(p)
        S[k, k] = p
        for r in range(k + 1, nf):
            t = S[r, k]
            for q in range(k):
                t -= S[r, q] * S[k, q]
            S[r, k] = t / p
    for k in range(nf):
        t = rb[k]
        for q in range(k):
            t -= S[k, q] * rb[q]
        rb[k] = t / S[k, k]
    for k in range(nf - 1, -1, -1):
        t = rb[k]
        for q in range(k + 1, nf):
            t -= S[q, k] * rb[q]
        rb[k] = t / S[k, k]
    # word-line shifts c = (rw + gc d) / dw, in rw
    for a in range(mf):
        t = rw[a]
        for b in range(nf):
            t += gc[a, b] * rb[b]
        rw[a] = t / dw[a]
    return _worst(_shift_lines(vwl, apos, rw), _shift_lines(vbl.T, bpos, rb))


@njit(**STRICT_JIT)
def _floating_slots(drv):
    """``slot[l]``: line ``l``'s index among the floating lines, -1 where
    the line is driven."""
    slot = np.full(drv.shape[0], -1, dtype=np.int64)
    k = 0
    for l in range(drv.shape[0]):
        if drv[l] == 0:
            slot[l] = k
            k += 1
    return slot


@njit(**STRICT_JIT)
def _shift_lines(v, slot, shifts):
    """``v[l, :] += shifts[slot[l]]`` for the floating lines (``slot[l] >=
    0``; ``v`` indexed ``[line, node]``: word lines as stored, bit lines
    through the transpose); returns the largest ``|shift|``."""
    smax = 0.0
    for l in range(slot.shape[0]):
        a = slot[l]
        if a < 0:
            continue
        c = shifts[a]
        smax = _worst(smax, abs(c))
        row = v[l]
        for k in range(row.shape[0]):
            row[k] += c
    return smax


@njit(**STRICT_JIT)
def nodal_work(M, N):
    """Work vectors ``(cp, dp)`` for `solve_nodal` on an M x N array."""
    n = M * N + 2 * max(M, N)
    return np.zeros(n), np.zeros(n)


@njit(**STRICT_JIT)
def solve_nodal(G, v0, v0inv, r_wl, r_bl, wl_v, wl_drv, bl_v, bl_drv,
                vwl, vbl, gd, i0, cp, dp, tol, maxit, rate, abort=None):
    """Solve the circuit in place in ``vwl``, ``vbl`` (warm start).

    Each sweep solves every word line (devices linearised on the way), then
    every bit line. The iteration converges linearly; with ``d`` the largest
    node update of a sweep and ``q`` its contraction, the error left is about
    ``d q / (1 - q)``, and the solve stops when that is at most ``tol / 2``
    volts (the factor 2 covers the estimate's own error). ``q`` is the larger
    of the last two ratios of updates, and no less than the carried rate.

    ``rate`` (one-element array, in/out) carries ``q`` between solves of
    the same circuit and drive pattern (the caller resets it to -1 when the
    pattern changes): with a known rate, a warm start whose first sweep
    already meets the test, with ``q`` counted as at least `_RATE_FLOOR`,
    stops after that sweep instead of running a second one only to measure
    ``q``. A first sweep with no known rate stops only when it moved no node
    by more than ``tol``. After such a cold start the first update is the
    jump from the start pattern, and the next ones are dominated by fast
    modes dying out, so ``q`` is trusted from the fourth sweep on (the
    second sweep's ``q`` left a 5 x 1 array 20x outside ``tol``, the third
    sweep's a 3 x 3 array with floating word lines 3.3x), counted as at
    least `_COLD_RATE_FLOOR` there, extrapolated while the ratios grow, and
    counted as at least `_UNSETTLED_RATE` until they have settled
    (`_SETTLED`).
    Updates under ``tol / 2`` that no longer shrink are rounding (a
    floating line on 0.1 ohm wire cycles at ~1e-12 of the drive): the solve
    stops there too.

    Returns the number of sweeps run, or ``-1`` when ``maxit`` sweeps did
    not get there. ``cp``, ``dp``: work of length ``M*N + 2 max(M, N)``
    (`nodal_work`). ``abort`` (optional, a one-element array the caller's
    thread sets on Ctrl-C or SIGTERM, `xbarsim.programming._run_interruptible`)
    is read before every sweep: non-zero, the solve returns ``-1`` at once
    (one cold solve of a 1024 x 1024 pulse ran 327 sweeps, 20 s; at 3000 x
    3000 one device's write-verify outlasted a 4-minute wait after SIGTERM).
    """
    M, N = G.shape
    K = M * N
    x = cp[K:K + max(M, N)]
    dm = cp[K + max(M, N):K + 2 * max(M, N)]
    cols = dp[K:K + max(M, N)]  # `_linearise`'s work
    cw = cp[:K].reshape((N, M))
    dw = dp[:K].reshape((N, M))
    cb = cp[:K].reshape((M, N))
    db = dp[:K].reshape((M, N))
    merged_wl = r_wl == 0.0 or N == 1
    merged_bl = r_bl == 0.0 or M == 1
    floating = 0
    for i in range(M):
        floating += 1 - wl_drv[i]
    for j in range(N):
        floating += 1 - bl_drv[j]
    last = 0.0
    last2 = 0.0
    last3 = 0.0
    # the sweep from which the contraction is trusted: after a cold start
    # (no rate carried) the first update is the jump from the start pattern,
    # and the next two can still contract far faster than the slowest mode
    first_q = 2 if rate[0] >= 0.0 else 4
    for it in range(1, maxit + 1):
        if abort is not None and abort[0] != 0:
            return -1  # interrupted: the caller discards this run
        _linearise(G, v0, v0inv, vwl, vbl, gd, i0, cols)
        if merged_wl:
            dmax = _merged_pass(wl_drv, wl_v, 1.0, gd.T, i0.T, vwl.T, vbl.T)
        else:
            dmax = _line_pass(r_wl, wl_drv, wl_v, 0, 1.0, gd.T, i0.T, vwl.T, vbl.T, cw, dw, x, dm)
        if merged_bl:
            d = _merged_pass(bl_drv, bl_v, -1.0, gd, i0, vbl, vwl)
        else:
            d = _line_pass(r_bl, bl_drv, bl_v, M - 1, -1.0, gd, i0, vbl, vwl, cb, db, x, dm)
        d = _worst(dmax, d)
        if floating:  # correct the floating lines' levels (`_line_shifts`)
            d = _worst(d, _line_shifts(G, v0, v0inv, vwl, vbl, wl_drv, bl_drv))
        if d != d:
            return -1  # NaN: the circuit produced no finite voltages
        if it == 1:
            q = max(rate[0], _RATE_FLOOR) if rate[0] >= 0.0 else -1.0
            if d <= tol or (0.0 <= q < 1.0 and d * q <= _SAFETY * tol * (1.0 - q)):
                return it
        elif d >= last and d <= _SAFETY * tol:
            return it  # updates under tol / 2 that no longer shrink: rounding
        elif it >= first_q and d < last:
            # q: the larger of this sweep's contraction and the previous
            # one's, and no less than the contraction carried in (rate[0],
            # still the carried value here: -1 when none). One ratio alone
            # understates it where the sweep before was a jump to the new
            # pattern (a warm start's first sweep) or a fast mode dying out:
            # trusted alone, it stopped 2.5 % of the solves programming a
            # 16 x 16 array on 20 ohm wires up to 30x outside tol
            q = max(d / last, last / last2 if last2 > 0.0 else 0.0, rate[0])
            qs = q
            if rate[0] < 0.0:
                # a cold start: no less than the floor, and where the ratios
                # still grow (fast modes dying out, a slow one surfacing) the
                # next one extrapolated from them
                qs = max(q, _COLD_RATE_FLOOR)
                if last2 > 0.0 and d * last2 > last * last:
                    qs = max(qs, (d / last) * (d / last) / (last / last2))
                # ratios that have not settled (`_SETTLED`): counted as at least `_UNSETTLED_RATE`
                if last2 > 0.0 and last3 > 0.0 and (d * last2 > _SETTLED * last * last
                                                    or d * _SETTLED < last * max(last / last2, last2 / last3)):
                    qs = max(qs, _UNSETTLED_RATE)
            if qs < 1.0 and d * qs <= _SAFETY * tol * (1.0 - qs):
                rate[0] = q
                return it  # estimated error d q / (1 - q) <= tol / 2
        last3 = last2
        last2 = last
        last = d
    return -1


@njit(**STRICT_JIT)
def column_current_spread(G, v0, v0inv, vwl, vbl, j, down):
    """``(current, spread)`` of bit line ``j``: its current as
    `column_current`, and ``sqrt(sum (down I_i)^2)`` over its devices, the
    root of their squared currents scaled by ``down``. Read noise
    independent per device makes the sensed current's standard deviation
    ``read_noise * spread / down``; ``down``, a power of two near 1 / the
    drive, keeps the squares from underflowing (below ~1e-150 V the noise
    vanished) and the scaling exact."""
    M = G.shape[0]
    s = 0.0
    s2 = 0.0
    for i in range(M):
        c = device_current(G[i, j], vwl[i, j] - vbl[i, j], v0, v0inv)
        s += c
        cs = c * down
        s2 += cs * cs
    return s, math.sqrt(s2)


@njit(**STRICT_JIT)
def column_current(G, v0, v0inv, vwl, vbl, j):
    """Current flowing into bit line ``j`` through its devices (A).

    With the top end floating this is, by Kirchhoff, the current out of its
    bottom terminal: the sensed current.
    """
    M = G.shape[0]
    s = 0.0
    for i in range(M):
        s += device_current(G[i, j], vwl[i, j] - vbl[i, j], v0, v0inv)
    return s
