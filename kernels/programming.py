"""Write-verify programming of crossbar arrays, entirely compiled.

`program_arrays` programs ``n`` independent copies ("transfers") of one
M x N array in parallel (``prange`` over transfers). Each transfer draws all
its randomness from the stream ``(seed, offset + t, key)`` (kernels/noise.py),
so the result of transfer ``t`` does not depend on the thread count or on
how the transfers are chunked.

Per device, in the given order, the loop is: read through the crossbar under
the read scheme; if outside the tolerance band, one pulse under the bias
scheme (set when below, reset when above; the amplitude ramps by ``v_step``
while the polarity stays, restarts at the start voltage when it flips, and is
clamped at the limit); every cell of the array switches by the law of
`switch_rate` at the voltage the circuit solve gave it (the selected cell
and every half-selected or unselected cell: the disturb; cells whose mean
change is under ``_G_MEAN_ONLY`` move by their mean only); read again. Time
advances one ``cycle_time`` per pulse + read; relaxation (a geometric
Brownian motion, whose increments compose exactly) is applied to a device
when it is next touched.
"""

import math

import numpy as np
from numba import njit, prange

from .config import STRICT_JIT, STRICT_PJIT
from .nodal import column_current, column_current_spread, nodal_work, set_ideal, solve_nodal
from .noise import (
    P_C2C, P_G_HI, P_G_LO, P_KRESET, P_KSET, P_READ_NOISE, P_RELAX_DRIFT,
    P_RELAX_FAST, P_RELAX_FAST_MEAN, P_RELAX_SIGMA, P_RELAX_TAU, P_TW_REF, P_V0, P_V0INV, P_VRESET, P_VSET, P_VSLOPE, P_VSUB,
    normal, sample_state, stream_key,
)

# Packed write-verify parameters ``wv`` (xbarsim.programming.WriteVerify.pack).
W_V_READ = 0
W_VSET_START = 1
W_VSET_MAX = 2
W_VRESET_START = 3
W_VRESET_MIN = 4
W_V_STEP = 5
W_PULSE_WIDTH = 6
W_CYCLE_TIME = 7
W_TOL = 8
W_MAX_PULSES = 9
W_SOLVE_TOL = 10
W_SOLVE_MAXIT = 11
W_R_WL = 12
W_R_BL = 13
N_WV = 14

# Integer options ``iopt``.
O_SCHEME = 0  # SCHEME_*
O_READ = 1  # READ_*
O_TRACK = 2  # 1: read every earlier device after each device (calibration)
O_FINAL_READ = 3  # 1: read every device through the crossbar at the end
N_OPT = 4

# Codes of ``iopt[O_SCHEME]`` (`xbarsim.BiasScheme`) and ``iopt[O_READ]``
# (`xbarsim.ReadScheme`; HALF_DIFF: V_read/2 minus the background read).
SCHEME_V2, SCHEME_V3, SCHEME_FLOATING = 0, 1, 2
READ_GROUNDED, READ_HALF, READ_FLOATING, READ_HALF_DIFF = 0, 1, 2, 3

# Constant flags passed to other kernels are written ``bool(True)`` /
# ``bool(False)``: Numba types a bare literal as ``Literal[bool]`` and
# compiles the callee once more for it (`_read` and `_sense` three times each).

_EXP_CUT = 36.0  # exp(-36) ~ 2e-16: below this a pulse changes nothing
_EXP_MAX = 700.0  # exp(700) ~ 1e304: past it the rate saturates (any G then clamps to its range),
# not inf (a zero rate constant times inf was NaN: k_set = 0 with a steep v_slope)
_G_NEGLIGIBLE = 1e-12  # S per pulse: switching below this is skipped (see _negligible_voltage)
_G_MEAN_ONLY = 1e-9
"""S per pulse: a cell whose mean change is below this (an unselected cell at
a wire-drop voltage) switches by its mean, without cycle-to-cycle noise or a
relaxation touch (`_pulse`). Even over 1e5 such pulses the noise left out is
at most c2c 1e-9 sqrt(1e5) ~ 0.1 uS, against measured drift spreads of
several uS; the mean is kept exactly."""


@njit(**STRICT_JIT)
def switch_rate(G, V, dp, tw_ratio):
    """Mean conductance change (S) of one pulse of ``V`` volts across a cell.

    ``k f(|V|)`` with ``f = exp((|V| - V_th) / v_slope)`` above the
    threshold and an exponential in ``v_sub`` below it, pinned to 0
    at 0 V (`_voltage_factor`; strongly sub-linear disturb), times
    the room left in the state window: ``(g_hi - G)`` for set (V > 0),
    ``(G - g_lo)`` for reset (V < 0), normalised by ``g_hi - g_lo``.
    """
    ks, kr, es, er, isub = _rate_constants(dp, tw_ratio)
    return _switch_rate(G, V, dp, ks, kr, es, er, isub)


@njit(**STRICT_JIT)
def _rate_constants(dp, tw_ratio):
    """The cell-independent part of `switch_rate`, which a pulse computes
    once for all its cells: ``(k_set tw / span, k_reset tw / span,
    exp(-V_set/v_sub), exp(-V_reset/v_sub), 1/v_sub)``; ``v_sub = 0`` (a hard
    threshold) gives ``(..., 0, 0, inf)``, for which `_voltage_factor` is 0
    below threshold."""
    sub = dp[P_VSUB]
    span = dp[P_G_HI] - dp[P_G_LO]
    if sub == 0.0:
        return dp[P_KSET] * tw_ratio / span, dp[P_KRESET] * tw_ratio / span, 0.0, 0.0, math.inf
    return (dp[P_KSET] * tw_ratio / span, dp[P_KRESET] * tw_ratio / span,
            math.exp(-dp[P_VSET] / sub), math.exp(-dp[P_VRESET] / sub), 1.0 / sub)


@njit(**STRICT_JIT)
def _switch_rate(G, V, dp, ks, kr, es, er, isub):
    """`switch_rate` from the constants of `_rate_constants`."""
    if V > 0.0:
        room = dp[P_G_HI] - G
        if room <= 0.0:
            return 0.0
        return ks * _voltage_factor(V, dp[P_VSET], dp[P_VSLOPE], isub, es) * room
    elif V < 0.0:
        room = G - dp[P_G_LO]
        if room <= 0.0:
            return 0.0
        return -kr * _voltage_factor(-V, dp[P_VRESET], dp[P_VSLOPE], isub, er) * room
    return 0.0


@njit(**STRICT_JIT)
def _voltage_factor(a, vth, slope, isub, e0):
    """1 at threshold (for a hard threshold, within 1e-12 of it);
    ``exp((a - vth)/slope)`` above it; below it
    ``(exp((a - vth)/sub) - e0) / (1 - e0)`` with ``e0 = exp(-vth/sub)``,
    continuous at the threshold and exactly 0 at 0 V (no switching without
    voltage); 0 where ``(a - vth)/sub < -_EXP_CUT`` (always, for a hard
    threshold: ``isub`` infinite); capped at ``exp(_EXP_MAX)`` above
    threshold, so that the rate stays finite. Near 0 V (``a/sub <
    0.05``: the unselected cells of a pulse) it is evaluated as ``e0
    expm1(a/sub) / (1 - e0)``, the same value without the cancellation."""
    x = a - vth
    if x >= 0.0 or (isub == math.inf and x >= -1e-12 * vth):
        # a hard threshold reached to within rounding counts as reached, as
        # in `_negligible_voltage`: the ideal device's first set pulse is
        # exactly its threshold, which a solve on 1e-30 ohm wires returned
        # an ulp below, so that pulse switched at 0 ohm and not there (8 %
        # more pulses)
        return math.exp(min(max(x, 0.0) / slope, _EXP_MAX))
    x = x * isub
    if x < -_EXP_CUT:
        return 0.0
    # 1 - e0 without the cancellation where v_sub is far above the threshold
    # (e0 near 1; at v_sub ~ 1e17 V it rounded to 0 and the rate to inf)
    den = 1.0 - e0 if e0 < 0.5 else -math.expm1(-vth * isub)
    u = a * isub
    if u < 0.05:
        return e0 * _expm1(u) / den
    return (math.exp(x) - e0) / den


@njit(**STRICT_JIT)
def _expm1(u):
    """``exp(u) - 1``: the series for small ``|u|`` (an unselected cell at a
    few mV; the truncation error is below 1e-17 relative), libm's ``expm1``
    otherwise."""
    if abs(u) < 0.05:
        return u * (1.0 + u * (1.0 / 2 + u * (1.0 / 6 + u * (1.0 / 24 + u * (1.0 / 120 + u * (
            1.0 / 720 + u * (1.0 / 5040 + u * (1.0 / 40320 + u * (1.0 / 362880)))))))))
    return math.expm1(u)


@njit(**STRICT_JIT)
def _negligible_voltage(dp, tw_ratio, g_per_pulse):
    """|V| below which a pulse changes no cell by more than ``g_per_pulse``
    siemens (at full room; `switch_rate`).

    With ``_G_NEGLIGIBLE``: cells that are skipped (their change would be
    under 1e-12 S per pulse). With ``_G_MEAN_ONLY``: cells that switch by
    their mean only.
    """
    k = max(dp[P_KSET], dp[P_KRESET]) * tw_ratio
    if k <= 0.0:
        return 1e300
    vth = min(dp[P_VSET], dp[P_VRESET])
    sub = dp[P_VSUB]
    if sub == 0.0:
        # hard threshold: nothing below it switches (a cell exactly at it does)
        return vth * (1.0 - 1e-12)
    e0 = math.exp(-vth / sub)
    r = g_per_pulse / k
    if r >= 1.0:
        return vth
    if e0 < 0.5:
        return max(vth + sub * math.log(r * (1.0 - e0) + e0), 0.0)
    # v_sub far above the threshold: the same cut as sub log1p(r (1 - e0) / e0),
    # without the cancellations (it jumped to the threshold at v_sub ~ 1e17 V)
    return max(sub * math.log1p(r * -math.expm1(-vth / sub) / e0), 0.0)


@njit(**STRICT_JIT)
def _pulse_constants(dp, wv):
    """What every pulse of a programming run shares, computed once:
    ``(`_rate_constants`..., |V| cut of skipped cells, |V| cut of mean-only
    cells)``, as one array."""
    tw_ratio = wv[W_PULSE_WIDTH] / dp[P_TW_REF]
    ks, kr, es, er, isub = _rate_constants(dp, tw_ratio)
    return np.array([ks, kr, es, er, isub, _negligible_voltage(dp, tw_ratio, _G_NEGLIGIBLE),
                     _negligible_voltage(dp, tw_ratio, _G_MEAN_ONLY)])


@njit(**STRICT_JIT)
def _exp_decay(x):
    """``exp(-x)``, returning the exact 0 directly where it underflows
    (a device never programmed has ``tprog = -1e300``): libm's underflow
    path is slow."""
    if x > 746.0:
        return 0.0
    return math.exp(-x)


@njit(**STRICT_JIT)
def _restart_clock(tlast, tprog, clock, i, j, t, rx):
    """Device (i, j) had an own pulse at ``t``: restart its fast-relaxation clock."""
    tprog[i, j] = t
    clock[i, j] = _exp_decay((tlast[i, j] - t) / rx[3])


@njit(**STRICT_JIT)
def _touch(G, tlast, tprog, clock, stuck, i, j, t, dp, rx, state):
    """Bring device (i, j) to time ``t``: relaxation over the elapsed cycles.

    ``rx = (slow sigma per sqrt(cycle), drift per cycle, fast sigma, fast
    time constant in cycles, fast mean)``, both parts geometric Brownian
    motions (``G *= exp(mean - var/2 + sqrt(var) xi)``, ``E[G]`` scaled by
    ``exp(mean)``). The fast part runs in the clock ``1 - exp(-(t - tprog) / tau)`` restarted by
    each own pulse (``tprog``): variance ``fast^2`` and mean ``fast mean``
    in all, mostly within ``tau``. ``clock`` holds ``exp(-(tlast - tprog) /
    tau)`` (`_restart_clock`), so each touch evaluates one exponential.
    """
    dt = t - tlast[i, j]
    if dt <= 0.0:
        return
    tlast[i, j] = t
    if stuck[i, j] != 0:
        return
    var = rx[0] * rx[0] * dt
    mean = rx[1] * dt
    if rx[2] > 0.0 or rx[4] != 0.0:
        a = clock[i, j]
        b = _exp_decay((t - tprog[i, j]) / rx[3])
        clock[i, j] = b
        var += rx[2] * rx[2] * (a - b)
        mean += rx[4] * (a - b)
    if var == 0.0 and mean == 0.0:
        return
    # geometric Brownian motion: E[f] = exp(mean) and increments compose
    # exactly, so a device touched after many cycles gets the same law as one
    # touched every cycle (cells only disturbed at their mean are not touched)
    lf = mean - 0.5 * var
    if var > 0.0:
        lf += math.sqrt(var) * normal(state)
    g = G[i, j] * math.exp(lf)
    G[i, j] = min(max(g, dp[P_G_LO]), dp[P_G_HI])


@njit(**STRICT_JIT)
def _select(isel, jsel, v, u_wl, u_bl, floating, wl_v, wl_drv, bl_v, bl_drv):
    """Drives selecting device (isel, jsel): its word line at ``v``, its bit
    line at 0, the other word / bit lines at ``u_wl`` / ``u_bl`` or floating."""
    for i in range(wl_v.shape[0]):
        wl_v[i] = u_wl
        wl_drv[i] = 0 if floating else 1
    for j in range(bl_v.shape[0]):
        bl_v[j] = u_bl
        bl_drv[j] = 0 if floating else 1
    wl_v[isel] = v
    wl_drv[isel] = 1
    bl_v[jsel] = 0.0
    bl_drv[jsel] = 1


@njit(**STRICT_JIT)
def _pulse_drives(scheme, isel, jsel, vp, wl_v, wl_drv, bl_v, bl_drv):
    """Bias scheme of a pulse (CIRCUIT.md): a ``SCHEME_*`` code."""
    if scheme == SCHEME_V3:
        _select(isel, jsel, vp, vp / 3.0, 2.0 * vp / 3.0, bool(False), wl_v, wl_drv, bl_v, bl_drv)
    else:
        _select(isel, jsel, vp, 0.5 * vp, 0.5 * vp, scheme == SCHEME_FLOATING, wl_v, wl_drv, bl_v, bl_drv)


@njit(**STRICT_JIT)
def _read_drives(read_scheme, isel, jsel, vr, wl_v, wl_drv, bl_v, bl_drv):
    """Read scheme of a verify read: a ``READ_*`` code (``READ_HALF_DIFF``:
    its first read, at V_read/2 as ``READ_HALF``)."""
    u = 0.5 * vr if read_scheme == READ_HALF or read_scheme == READ_HALF_DIFF else 0.0
    _select(isel, jsel, vr, u, u, read_scheme == READ_FLOATING, wl_v, wl_drv, bl_v, bl_drv)


@njit(**STRICT_JIT)
def _sense(G, isel, jsel, dp, wv, exact, new_cell, wl_v, wl_drv, bl_v, bl_drv, vwl, vbl, gd, i0, cp,
           dq, state, rate, abort):
    """The current sensed on bit line ``jsel`` under the drives given, with
    the read noise of every device on it (independent, relative to each
    device's current); returns ``(current, solver failed)``.
    ``vwl``, ``vbl``, ``rate``: this read's warm start (`solve_nodal`)."""
    v0 = dp[P_V0]
    v0inv = dp[P_V0INV]
    failed = False
    if exact or new_cell:
        set_ideal(wl_v, wl_drv, bl_v, bl_drv, vwl, vbl)
        rate[0] = -1.0
    if not exact:
        it = solve_nodal(G, v0, v0inv, wv[W_R_WL], wv[W_R_BL], wl_v, wl_drv, bl_v, bl_drv,
                         vwl, vbl, gd, i0, cp, dq, wv[W_SOLVE_TOL] * wv[W_V_READ],
                         int(wv[W_SOLVE_MAXIT]), rate, abort)
        failed = it < 0
    sn = dp[P_READ_NOISE]
    if sn <= 0.0:
        return column_current(G, v0, v0inv, vwl, vbl, jsel), failed
    # every device of the sensed bit line adds its own independent noise
    # (as in `xs.mvm`): under "V/2" and "floating" reads the half-selected
    # and sneak currents are noisy too (only the selected device's was, which
    # made those reads quieter than the MVM's)
    e = min(max(math.frexp(wv[W_V_READ])[1], -1000), 1000)
    cur, spread = column_current_spread(G, v0, v0inv, vwl, vbl, jsel, math.ldexp(1.0, -e))
    return cur + sn * (spread * math.ldexp(1.0, e)) * normal(state), failed


@njit(**STRICT_JIT)
def _read(G, isel, jsel, dp, wv, read_scheme, exact, new_cell, wl_v, wl_drv, bl_v, bl_drv,
          vwl, vbl, gd, i0, cp, dq, state, ss_factor, rate, vwl_b, vbl_b, rate_b, abort):
    """One verify read of (isel, jsel) through the crossbar.

    Returns ``(sensed conductance in small-signal units, solver failed)``:
    the sensed current over ``V_read``, with the read noise of every device
    on the sensed bit line, divided by ``sinh(V_read/V0) V0 / V_read`` so that a perfect read
    of an isolated device returns its G.

    Read scheme 3 ("V/2-diff") reads twice: as scheme 1 (selected word line
    at ``V_read``, every other line at ``V_read/2``), then with the selected
    word line at ``V_read/2`` too. The half-selected devices of the sensed
    bit line carry the same current in both (exactly so with ideal wires),
    and the difference is the selected device's alone: ``(I1 - I2) /
    (V_read/2)``, divided by ``ss_factor = V0 (sinh(V_read/V0) -
    sinh(V_read/2V0)) / (V_read/2)``. Each read draws its own read noise;
    the second has its own warm start (``vwl_b``, ``vbl_b``, ``rate_b``).
    """
    vr = wv[W_V_READ]
    _read_drives(read_scheme, isel, jsel, vr, wl_v, wl_drv, bl_v, bl_drv)
    cur, failed = _sense(G, isel, jsel, dp, wv, exact, new_cell, wl_v, wl_drv, bl_v, bl_drv,
                         vwl, vbl, gd, i0, cp, dq, state, rate, abort)
    if read_scheme != READ_HALF_DIFF:
        return cur / vr / ss_factor, failed
    u = 0.5 * vr
    _select(isel, jsel, u, u, u, bool(False), wl_v, wl_drv, bl_v, bl_drv)
    bg, failed_b = _sense(G, isel, jsel, dp, wv, exact, new_cell, wl_v, wl_drv, bl_v, bl_drv,
                          vwl_b, vbl_b, gd, i0, cp, dq, state, rate_b, abort)
    return (cur - bg) / (vr - u) / ss_factor, failed or failed_b


@njit(**STRICT_JIT)
def _pulse(G, tlast, tprog, clock, stuck, t, isel, jsel, vp, dp, wv, pc, scheme, exact, a1, a0,
           wl_v, wl_drv, bl_v, bl_drv, vwl, vbl, vwl_0, vbl_0, gd, i0, cp, dq, state, rx, rate, abort):
    """Apply one programming pulse; every cell switches at its own voltage
    (``pc``: `_pulse_constants`).

    ``vwl``, ``vbl`` hold the solution of the last pulse of this cell's ramp,
    at amplitude ``a1`` (0: none), and ``vwl_0``, ``vbl_0`` the one before,
    at ``a0`` (0: none); the solve starts from their extrapolation to ``vp``
    (linear in the amplitude with two, scaled with one, the drive pattern
    with none) and leaves the new solution in ``vwl``, the last in ``vwl_0``.
    """
    M, N = G.shape
    _pulse_drives(scheme, isel, jsel, vp, wl_v, wl_drv, bl_v, bl_drv)
    failed = False
    if exact or a1 == 0.0:
        set_ideal(wl_v, wl_drv, bl_v, bl_drv, vwl, vbl)
    elif a0 == 0.0:
        # same cell, new amplitude: the last solution scaled is a close start
        ratio = vp / a1
        for i in range(M):
            for j in range(N):
                vwl_0[i, j] = vwl[i, j]
                vbl_0[i, j] = vbl[i, j]
                vwl[i, j] *= ratio
                vbl[i, j] *= ratio
    else:
        # the last two solutions extrapolated linearly in the amplitude
        # (0 at the clamp, where the amplitude repeats)
        f = (vp - a1) / (a1 - a0) if a1 != a0 else 0.0
        for i in range(M):
            for j in range(N):
                a = vwl[i, j]
                vwl[i, j] = a + (a - vwl_0[i, j]) * f
                vwl_0[i, j] = a
                b = vbl[i, j]
                vbl[i, j] = b + (b - vbl_0[i, j]) * f
                vbl_0[i, j] = b
    if not exact:
        it = solve_nodal(G, dp[P_V0], dp[P_V0INV], wv[W_R_WL], wv[W_R_BL], wl_v, wl_drv,
                         bl_v, bl_drv, vwl, vbl, gd, i0, cp, dq,
                         wv[W_SOLVE_TOL] * abs(vp), int(wv[W_SOLVE_MAXIT]), rate, abort)
        failed = it < 0
    c2c = dp[P_C2C]
    ks, kr, es, er, isub, vcut, vmean = pc[0], pc[1], pc[2], pc[3], pc[4], pc[5], pc[6]
    for i in range(M):
        for j in range(N):
            if stuck[i, j] != 0:
                continue
            v = vwl[i, j] - vbl[i, j]
            av = abs(v)
            if av <= vcut:
                continue
            if av <= vmean:
                # unselected cell at a wire-drop voltage: its mean change, no
                # noise, no relaxation touch (relaxation is applied lazily)
                g = G[i, j] + _switch_rate(G[i, j], v, dp, ks, kr, es, er, isub)
                G[i, j] = min(max(g, dp[P_G_LO]), dp[P_G_HI])
                continue
            _touch(G, tlast, tprog, clock, stuck, i, j, t, dp, rx, state)
            dg = _switch_rate(G[i, j], v, dp, ks, kr, es, er, isub)
            if dg == 0.0:
                continue
            if c2c > 0.0:
                dg *= math.exp(c2c * normal(state) - 0.5 * c2c * c2c)
            g = G[i, j] + dg
            G[i, j] = min(max(g, dp[P_G_LO]), dp[P_G_HI])
    return failed


@njit(**STRICT_JIT)
def program_one(target, order, dp, wv, iopt, state, G, stuck, pulses, g_own, read_own,
                g_final, read_final, conv, track, done, abort):
    """Program one array in place; returns the count of unconverged solves.

    ``done[0]`` counts the devices whose write-verify has finished (read by a
    progress bar while the kernel runs; it releases the GIL). A non-zero
    ``abort[0]`` (set by the caller's thread on Ctrl-C or SIGTERM) stops it
    within one solver sweep (`nodal.solve_nodal` reads it too: one device's
    write-verify on 1024 x 1024 took minutes), and its own first unconverged
    solve stops it before the next device; the outputs are then incomplete
    and must be discarded."""
    M, N = target.shape
    K = order.shape[0]
    scheme = iopt[O_SCHEME]
    read_scheme = iopt[O_READ]
    do_track = iopt[O_TRACK] == 1
    exact_pulse = wv[W_R_WL] == 0.0 and wv[W_R_BL] == 0.0 and scheme != SCHEME_FLOATING
    exact_read = wv[W_R_WL] == 0.0 and wv[W_R_BL] == 0.0 and read_scheme != READ_FLOATING
    v0 = dp[P_V0]
    v0inv = dp[P_V0INV]
    vr = wv[W_V_READ]
    ss_factor = 1.0 if v0inv == 0.0 else v0 * math.sinh(vr * v0inv) / vr
    if read_scheme == READ_HALF_DIFF and v0inv != 0.0:  # the difference of reads at V_read and V_read/2
        ss_factor = v0 * (math.sinh(vr * v0inv) - math.sinh(0.5 * vr * v0inv)) / (0.5 * vr)
    rx = np.empty(5)
    rx[0] = dp[P_RELAX_SIGMA] * math.sqrt(wv[W_CYCLE_TIME])
    rx[1] = dp[P_RELAX_DRIFT] * wv[W_CYCLE_TIME]
    rx[2] = dp[P_RELAX_FAST]
    rx[3] = dp[P_RELAX_TAU] / wv[W_CYCLE_TIME]
    rx[4] = dp[P_RELAX_FAST_MEAN]
    pc = _pulse_constants(dp, wv)
    tol = wv[W_TOL]
    max_pulses = int(wv[W_MAX_PULSES])
    step = wv[W_V_STEP]

    wl_v = np.zeros(M)
    bl_v = np.zeros(N)
    wl_drv = np.zeros(M, dtype=np.uint8)
    bl_drv = np.zeros(N, dtype=np.uint8)
    vwl_p = np.zeros((M, N))
    vbl_p = np.zeros((M, N))
    vwl_q = np.zeros((M, N))  # the pulse solution before the last (extrapolation)
    vbl_q = np.zeros((M, N))
    vwl_r = np.zeros((M, N))
    vbl_r = np.zeros((M, N))
    gd = np.zeros((M, N))
    i0 = np.zeros((M, N))
    cp, dq = nodal_work(M, N)
    nb = (M, N) if read_scheme == READ_HALF_DIFF else (1, 1)  # the background reads' warm start
    vwl_b = np.zeros(nb)
    vbl_b = np.zeros(nb)
    rate_b = np.full(1, -1.0)
    rate_r = np.full(1, -1.0)  # sweep contraction of the last read / pulse solve of this cell
    rate_p = np.full(1, -1.0)
    tlast = np.zeros((M, N))
    tprog = np.full((M, N), -1e300)
    clock = np.zeros((M, N))  # exp(-(tlast - tprog) / tau): 0 for a device never programmed

    sample_state(state, dp, M, N, G, stuck)
    t = 0.0
    fails = 0
    last_read_cell = -1
    for p in range(K):
        if fails != 0:
            # a missed solve makes the run an error (`xbarsim.programming`):
            # stop this array now, not after thousands more capped solves
            # (a 16 x 16 array on 1 Mohm wires ran 4 minutes to its error).
            # Only this one: stopping the others too left each at a point
            # set by the threads' timing, and the error's count and kind
            # changed with the thread count
            return fails
        if abort[0] != 0:
            return fails
        i = order[p, 0]
        j = order[p, 1]
        tg = target[i, j]
        t += 1.0
        _touch(G, tlast, tprog, clock, stuck, i, j, t, dp, rx, state)
        cell = i * N + j
        rate_p[0] = -1.0
        rd, bad = _read(G, i, j, dp, wv, read_scheme, exact_read, cell != last_read_cell,
                        wl_v, wl_drv, bl_v, bl_drv, vwl_r, vbl_r, gd, i0, cp, dq, state, ss_factor,
                        rate_r, vwl_b, vbl_b, rate_b, abort)
        last_read_cell = cell
        fails += bad
        npulse = 0
        pol_last = 0
        vp = 0.0
        a1 = 0.0
        a0 = 0.0
        ok = False
        while True:
            if abort[0] != 0:
                return fails  # Ctrl-C / SIGTERM: also between the pulses of one device (its solves stop too)
            if abs(rd - tg) <= tol * tg:
                ok = True
                break
            if npulse >= max_pulses:
                break
            pol = 1 if rd < tg else -1
            if pol != pol_last:
                vp = wv[W_VSET_START] if pol > 0 else wv[W_VRESET_START]
                a1 = 0.0
                a0 = 0.0
            elif pol > 0:
                vp = min(vp + step, wv[W_VSET_MAX])
            else:
                vp = max(vp - step, wv[W_VRESET_MIN])
            pol_last = pol
            fails += _pulse(G, tlast, tprog, clock, stuck, t, i, j, vp, dp, wv, pc, scheme,
                            exact_pulse, a1, a0, wl_v, wl_drv, bl_v, bl_drv, vwl_p, vbl_p,
                            vwl_q, vbl_q, gd, i0, cp, dq, state, rx, rate_p, abort)
            a0 = a1
            a1 = vp
            _restart_clock(tlast, tprog, clock, i, j, t, rx)
            npulse += 1
            t += 1.0
            _touch(G, tlast, tprog, clock, stuck, i, j, t, dp, rx, state)
            rd, bad = _read(G, i, j, dp, wv, read_scheme, exact_read, bool(False),
                            wl_v, wl_drv, bl_v, bl_drv, vwl_r, vbl_r, gd, i0, cp, dq, state,
                            ss_factor, rate_r, vwl_b, vbl_b, rate_b, abort)
            fails += bad
        pulses[i, j] = npulse
        done[0] = p + 1
        conv[i, j] = 1 if ok and stuck[i, j] == 0 else 0  # a stuck device whose read lands in the band: not converged
        g_own[i, j] = G[i, j]
        read_own[i, j] = rd
        if do_track:
            for q in range(p):
                if abort[0] != 0:
                    return fails
                iq = order[q, 0]
                jq = order[q, 1]
                _touch(G, tlast, tprog, clock, stuck, iq, jq, t, dp, rx, state)
                rq, bad = _read(G, iq, jq, dp, wv, read_scheme, exact_read, bool(True),
                                wl_v, wl_drv, bl_v, bl_drv, vwl_r, vbl_r, gd, i0, cp, dq, state,
                                ss_factor, rate_r, vwl_b, vbl_b, rate_b, abort)
                fails += bad
                track[q, p] = rq
            last_read_cell = -1
    t += 1.0
    for i in range(M):
        for j in range(N):
            _touch(G, tlast, tprog, clock, stuck, i, j, t, dp, rx, state)
    for i in range(M):
        for j in range(N):
            g_final[i, j] = G[i, j]
    if iopt[O_FINAL_READ] == 1:
        for p in range(K):
            if abort[0] != 0:
                return fails
            i = order[p, 0]
            j = order[p, 1]
            rq, bad = _read(G, i, j, dp, wv, read_scheme, exact_read, bool(True),
                            wl_v, wl_drv, bl_v, bl_drv, vwl_r, vbl_r, gd, i0, cp, dq, state,
                            ss_factor, rate_r, vwl_b, vbl_b, rate_b, abort)
            fails += bad
            read_final[i, j] = rq
    else:
        for i in range(M):
            for j in range(N):
                read_final[i, j] = np.nan
    return fails


@njit(**STRICT_PJIT)
def program_arrays(target, order, dp, wv, iopt, seed, offset, key, G, stuck, pulses, g_own,
                   read_own, g_final, read_final, conv, track, fails, done, abort):
    """Program ``n`` arrays of one shape in parallel.

    ``target`` is (n, M, N) (each array its own targets) and every output
    is (n, M, N); ``track`` is (n, K, K) when tracking, else (n, 0, 0).
    Array ``t`` uses the stream ``(seed, offset[t], key[t])`` (the transfers
    of one tile: ``offset + t`` and one key; the tiles of one transfer: one
    offset and their tile indices); ``done[t]`` counts its devices finished
    so far (`program_one`); a non-zero ``abort[0]`` stops every array
    before its next device.
    """
    n = target.shape[0]
    states = np.empty((n, 1), dtype=np.uint64)
    for t in prange(n):
        st = states[t]
        st[0] = stream_key(seed, np.uint64(offset[t]), key[t])
        fails[t] = program_one(target[t], order, dp, wv, iopt, st, G[t], stuck[t], pulses[t],
                               g_own[t], read_own[t], g_final[t], read_final[t], conv[t],
                               track[t], done[t:t + 1], abort)
