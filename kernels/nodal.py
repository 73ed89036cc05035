"""A compact nodal solver of one small crossbar, for use inside kernels.

The programming and MVM kernels solve the crossbar circuit (shared/CIRCUIT.md)
thousands of times per array: once per pulse, once per verify read, once per
input vector. They call `solve_nodal`, a nonlinear block Gauss-Seidel
(line relaxation) solve that is warm-started from the caller's last voltages:

* each sweep linearises every device at the present voltages (Newton:
  ``I ~ i0 + gd V`` with ``gd = G cosh(V/V0)``; ``gd = G``, ``i0 = 0`` for a
  linear device), then solves every word line exactly (tridiagonal, bit
  lines held) and every bit line exactly (word lines held);
* a line whose wire resistance is 0 is one node (``r = 0`` is handled
  exactly, never replaced by a small resistance);
* it stops when no node moved by more than ``tol`` volts in a sweep.

Drive layout (the read layout of CIRCUIT.md): word line ``i`` is driven at its
``left`` end, ``WL(i, 0)``, by an ideal source ``wl_v[i]`` when
``wl_drv[i] == 1`` and floats otherwise; bit line ``j`` is driven at its
``bottom`` end, ``BL(M-1, j)``, by ``bl_v[j]`` when ``bl_drv[j] == 1``. The
other ends float.
"""

import math

from numba import njit

from .config import JIT


@njit(**JIT)
def device_current(G, v, v0, v0inv):
    """``G V0 sinh(V/V0)``, or ``G V`` when ``v0inv == 0`` (linear device)."""
    if v0inv == 0.0:
        return G * v
    return G * v0 * math.sinh(v * v0inv)


@njit(**JIT)
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


@njit(**JIT)
def _linearise(G, v0, v0inv, vwl, vbl, gd, i0):
    M, N = G.shape
    if v0inv == 0.0:
        for i in range(M):
            for j in range(N):
                gd[i, j] = G[i, j]
                i0[i, j] = 0.0
        return
    for i in range(M):
        for j in range(N):
            v = vwl[i, j] - vbl[i, j]
            e = math.exp(v * v0inv)
            ie = 1.0 / e
            g = G[i, j]
            cur = g * v0 * 0.5 * (e - ie)
            d = g * 0.5 * (e + ie)
            gd[i, j] = d
            i0[i, j] = cur - d * v


@njit(**JIT)
def _solve_wl(i, r, drv, vd, gd, i0, vwl, vbl, cp, dp):
    """Word line ``i`` exactly, bit lines held; returns max |change|."""
    N = vwl.shape[1]
    dmax = 0.0
    if r == 0.0 or N == 1:
        if drv:
            x = vd
        else:
            num = 0.0
            den = 0.0
            for j in range(N):
                num += gd[i, j] * vbl[i, j] - i0[i, j]
                den += gd[i, j]
            if den <= 0.0:
                return 0.0
            x = num / den
        for j in range(N):
            d = abs(x - vwl[i, j])
            if d > dmax:
                dmax = d
            vwl[i, j] = x
        return dmax
    gw = 1.0 / r
    # Thomas forward sweep; node 0 is an identity row when driven.
    for j in range(N):
        if j == 0 and drv:
            a = 0.0
            b = 1.0
            c = 0.0
            d = vd
        else:
            a = -gw if j > 0 else 0.0
            c = -gw if j < N - 1 else 0.0
            b = gd[i, j] - a - c
            d = gd[i, j] * vbl[i, j] - i0[i, j]
        if j == 0:
            cp[0] = c / b
            dp[0] = d / b
        else:
            den = b - a * cp[j - 1]
            cp[j] = c / den
            dp[j] = (d - a * dp[j - 1]) / den
    x = dp[N - 1]
    dd = abs(x - vwl[i, N - 1])
    if dd > dmax:
        dmax = dd
    vwl[i, N - 1] = x
    for j in range(N - 2, -1, -1):
        x = dp[j] - cp[j] * x
        dd = abs(x - vwl[i, j])
        if dd > dmax:
            dmax = dd
        vwl[i, j] = x
    return dmax


@njit(**JIT)
def _solve_bl(j, r, drv, vd, gd, i0, vwl, vbl, cp, dp):
    """Bit line ``j`` exactly, word lines held; driven at node M-1."""
    M = vbl.shape[0]
    dmax = 0.0
    if r == 0.0 or M == 1:
        if drv:
            x = vd
        else:
            num = 0.0
            den = 0.0
            for i in range(M):
                num += gd[i, j] * vwl[i, j] + i0[i, j]
                den += gd[i, j]
            if den <= 0.0:
                return 0.0
            x = num / den
        for i in range(M):
            d = abs(x - vbl[i, j])
            if d > dmax:
                dmax = d
            vbl[i, j] = x
        return dmax
    gw = 1.0 / r
    for i in range(M):
        if i == M - 1 and drv:
            a = 0.0
            b = 1.0
            c = 0.0
            d = vd
        else:
            a = -gw if i > 0 else 0.0
            c = -gw if i < M - 1 else 0.0
            b = gd[i, j] - a - c
            d = gd[i, j] * vwl[i, j] + i0[i, j]
        if i == 0:
            cp[0] = c / b
            dp[0] = d / b
        else:
            den = b - a * cp[i - 1]
            cp[i] = c / den
            dp[i] = (d - a * dp[i - 1]) / den
    x = dp[M - 1]
    dd = abs(x - vbl[M - 1, j])
    if dd > dmax:
        dmax = dd
    vbl[M - 1, j] = x
    for i in range(M - 2, -1, -1):
        x = dp[i] - cp[i] * x
        dd = abs(x - vbl[i, j])
        if dd > dmax:
            dmax = dd
        vbl[i, j] = x
    return dmax


@njit(**JIT)
def solve_nodal(G, v0, v0inv, r_wl, r_bl, wl_v, wl_drv, bl_v, bl_drv,
                vwl, vbl, gd, i0, cp, dp, tol, maxit):
    """Solve the circuit in place in ``vwl``, ``vbl`` (warm start).

    Returns the number of sweeps run, or ``-1`` when ``maxit`` sweeps did
    not bring the largest node update under ``tol`` volts.
    ``cp``, ``dp``: work vectors of length ``max(M, N)``.
    """
    M, N = G.shape
    for it in range(1, maxit + 1):
        _linearise(G, v0, v0inv, vwl, vbl, gd, i0)
        dmax = 0.0
        for i in range(M):
            d = _solve_wl(i, r_wl, wl_drv[i], wl_v[i], gd, i0, vwl, vbl, cp, dp)
            if d > dmax:
                dmax = d
        for j in range(N):
            d = _solve_bl(j, r_bl, bl_drv[j], bl_v[j], gd, i0, vwl, vbl, cp, dp)
            if d > dmax:
                dmax = d
        if dmax <= tol:
            return it
    return -1


@njit(**JIT)
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
