"""Nodal operator of one layer: Kirchhoff residual, products, updates.

Vectors of the conjugate-gradient iteration live on nodes, (L, n, B):
voltages are replicated over every node of a group, currents (residuals,
matrix-vector products) sit on the group's first node with zeros elsewhere,
so a plain sum of products over nodes is the inner product over groups.

Reductions are written per line into ``partial[l, b]`` and summed by the
caller in a fixed order: results do not depend on the thread count.
"""

import math

import numpy as np
from numba import njit, prange

from .config import JIT, PJIT
from .lines import TERM_RESISTIVE, TILE, gather_other



@njit(**PJIT)
def kcl_residual(gid, fixed, g, v0, nonlinear, seg_g, term_mode, term_g, term_v, shunt, has_shunt, x, other,
                 sources, zero_fixed, res):
    """Current flowing into each group from the rest of the circuit.

    ``res[l, rep, b]`` = sum over the group's devices of g (other - x) (or
    g v0 sinh((other - x) / v0) when ``nonlinear``, docs/CIRCUIT.md), over
    its non-ideal boundary segments of seg_g (x_neighbour - x), over its
    resistive terminals of term_g (term_v - x) (``term_v`` taken as 0 when
    ``sources`` is False: the operator acting on a correction) and, when
    ``has_shunt``, minus ``shunt * x`` (coarse multigrid levels). Zero on
    fixed groups when ``zero_fixed``; otherwise there it is minus the
    current the ideal source must supply. ``b - A x`` for the free groups.
    """
    L, n = gid.shape
    B = x.shape[2]
    for blk in prange((L + TILE - 1) // TILE):
        l0 = blk * TILE
        l1 = min(l0 + TILE, L)
        buf = gather_other(other, l0, l1, B == 1)
        for l in range(l0, l1):
            if B == 1 and gid[l, n - 1] == n - 1:
                _kcl_line_single(l, n, fixed, g, v0, nonlinear, seg_g, term_mode, term_g, term_v, shunt,
                                 has_shunt, x, buf[l - l0], sources, zero_fixed, res)
            else:
                _kcl_line_general(l, gid, fixed, g, v0, nonlinear, seg_g, term_mode, term_g, term_v, shunt,
                                  has_shunt, x, other, sources, zero_fixed, res)


@njit(**JIT)
def _kcl_line_single(l, n, fixed, g, v0, nonlinear, seg_g, term_mode, term_g, term_v, shunt, has_shunt, x, ob,
                     sources, zero_fixed, res):
    """Line ``l`` of `kcl_residual` with one column and every node its own
    group; ``ob`` (n,) is the other layer along the line (`gather_other`)."""
    # one pass, each node's current summed in the order of
    # `_kcl_line_general` (left segment, device, shunt, right segment)
    for j in range(n):
        xj = x[l, j, 0]
        a = 0.0
        if j > 0:
            a -= seg_g[l, j - 1] * (xj - x[l, j - 1, 0])
        gj = g[l, j]
        if gj != 0.0:
            if nonlinear:
                vj = v0[l, j]
                a += gj * vj * np.sinh((ob[j] - xj) / vj)
            else:
                a += gj * (ob[j] - xj)
        if has_shunt:
            a -= shunt[l, j] * xj
        if j < n - 1:
            a += seg_g[l, j] * (x[l, j + 1, 0] - xj)
        res[l, j, 0] = a
    for side in range(2):
        if term_mode[l, side] == TERM_RESISTIVE:
            node = 0 if side == 0 else n - 1
            vs = term_v[l, side, 0] if sources else 0.0
            res[l, node, 0] += term_g[l, side] * (vs - x[l, node, 0])
    if zero_fixed:
        for j in range(n):
            if fixed[l, j]:
                res[l, j, 0] = 0.0


@njit(**JIT)
def _kcl_line_general(l, gid, fixed, g, v0, nonlinear, seg_g, term_mode, term_g, term_v, shunt, has_shunt, x,
                      other, sources, zero_fixed, res):
    """Line ``l`` of `kcl_residual`, any groups and batch."""
    n = gid.shape[1]
    B = x.shape[2]
    for j in range(n):
        for b in range(B):
            res[l, j, b] = 0.0
    rep = 0
    for j in range(n):
        if j > 0 and gid[l, j] != gid[l, j - 1]:
            s = seg_g[l, j - 1]
            for b in range(B):
                cur = s * (x[l, j, b] - x[l, j - 1, b])
                res[l, rep, b] += cur
                res[l, j, b] -= cur
            rep = j
        gj = g[l, j]
        if gj != 0.0:
            if nonlinear:
                vj = v0[l, j]
                for b in range(B):
                    res[l, rep, b] += gj * vj * np.sinh((other[j, l, b] - x[l, j, b]) / vj)
            else:
                for b in range(B):
                    res[l, rep, b] += gj * (other[j, l, b] - x[l, j, b])
        if has_shunt:
            sj = shunt[l, j]
            for b in range(B):
                res[l, rep, b] -= sj * x[l, j, b]
    for side in range(2):
        if term_mode[l, side] == TERM_RESISTIVE:
            node = 0 if side == 0 else n - 1
            r0 = 0
            if side == 1:
                r0 = rep
            gt = term_g[l, side]
            for b in range(B):
                vs = term_v[l, side, b] if sources else 0.0
                res[l, r0, b] += gt * (vs - x[l, node, b])
    if zero_fixed:
        kprev = -1
        for j in range(n):
            k = gid[l, j]
            if k != kprev:
                kprev = k
                if fixed[l, k]:
                    for b in range(B):
                        res[l, j, b] = 0.0


@njit(**PJIT)
def dot_lines(a, c, partial):
    """``partial[l, b] = sum_k a[l, k, b] c[l, k, b]``."""
    L, n, B = a.shape
    for l in prange(L):
        if B == 1:
            s = 0.0
            for j in range(n):
                s += a[l, j, 0] * c[l, j, 0]
            partial[l, 0] = s
            continue
        for b in range(B):
            partial[l, b] = 0.0
        for j in range(n):
            for b in range(B):
                partial[l, b] += a[l, j, b] * c[l, j, b]


@njit(**PJIT)
def cg_update(x, r, p, q, alpha, partial):
    """``x += alpha p``; ``r += alpha q``; ``partial[l, b] = |r_l|^2``.

    ``q`` is ``-A p`` (`xbarsim._pcg.neg_matvec`: the Kirchhoff residual of
    ``p``), so ``r`` becomes ``r - alpha A p``, the same bits."""
    L, n, B = x.shape
    for l in prange(L):
        if B == 1:
            a = alpha[0]
            s = 0.0
            for j in range(n):
                x[l, j, 0] += a * p[l, j, 0]
                rv = r[l, j, 0] + a * q[l, j, 0]
                r[l, j, 0] = rv
                s += rv * rv
            partial[l, 0] = s
            continue
        for b in range(B):
            partial[l, b] = 0.0
        for j in range(n):
            for b in range(B):
                a = alpha[b]
                x[l, j, b] += a * p[l, j, b]
                rv = r[l, j, b] + a * q[l, j, b]
                r[l, j, b] = rv
                partial[l, b] += rv * rv


@njit(**PJIT)
def xpby(z, beta, p):
    """``p = z + beta p`` (the new search direction)."""
    L, n, B = z.shape
    for l in prange(L):
        for j in range(n):
            for b in range(B):
                p[l, j, b] = z[l, j, b] + beta[b] * p[l, j, b]


@njit(**PJIT)
def absmax_lines(a, partial):
    """``partial[l, b] = max_k |a[l, k, b]|`` (NaN propagates: once a line's
    entry is NaN no later value replaces it; a NaN before the last node of
    its line was overwritten by the next finite value)."""
    L, n, B = a.shape
    for l in prange(L):
        for b in range(B):
            partial[l, b] = 0.0
        for j in range(n):
            for b in range(B):
                v = abs(a[l, j, b])
                p = partial[l, b]
                if p == p and not v <= p:
                    partial[l, b] = v


SINH_IS_LINEAR = 1e-8
"""|V / V0| below which `device_currents` takes ``G V`` for ``G V0 sinh(V /
V0)``: sinh(x) = x (1 + x^2 / 6) rounds to x there."""


@njit(**PJIT)
def device_currents(g, v0, nonlinear, v_wl, v_bl, out, finite):
    """``out[i, j, b]``: the current of device (i, j) from word line to bit
    line, ``g dv`` or ``g v0 sinh(dv / v0)`` (docs/CIRCUIT.md) with ``dv
    = v_wl[i, j, b] - v_bl[j, i, b]``. ``finite[t]`` is cleared when tile
    ``t`` of word lines met a non-finite voltage (either layer) or current
    (a sinh that overflows between fixed nodes)."""
    M, N = g.shape
    B = v_wl.shape[2]
    for blk in prange((M + TILE - 1) // TILE):
        i0 = blk * TILE
        i1 = min(i0 + TILE, M)
        gathered = B == 1
        buf = gather_other(v_bl, i0, i1, gathered)
        ok = True
        for i in range(i0, i1):
            for j in range(N):
                gij = g[i, j]
                for b in range(B):
                    vw = v_wl[i, j, b]
                    vb = buf[i - i0, j] if gathered else v_bl[j, i, b]
                    if not (math.isfinite(vw) and math.isfinite(vb)):
                        ok = False
                    dv = vw - vb
                    if gij == 0.0:
                        # an open device carries nothing at any voltage: 0 *
                        # sinh(> 710) was NaN, and a converged solve raised
                        # "currents overflow"
                        c = 0.0
                    elif nonlinear:
                        s = v0[i, j]
                        x = dv / s
                        if abs(x) < SINH_IS_LINEAR:
                            # sinh(x) = x to double precision: the linear law,
                            # exact also where x is subnormal (a per-device
                            # V0 of 1e308 read 1e-7 V 1.5e-9 off)
                            c = dv * gij
                        else:
                            c = (gij * s) * np.sinh(x)
                    else:
                        c = dv * gij
                    out[i, j, b] = c
                    if not math.isfinite(c):
                        ok = False
        finite[blk] = ok


@njit(**PJIT)
def transpose(a, out):
    """``out = a.T`` for a 2-D array, in tiles of `TILE` rows of ``a`` (each
    cache line of ``out`` written whole per tile); at 4096^2 NumPy's strided
    copy took 0.17-0.5 s, this 21-25 ms."""
    L = a.shape[0]
    n = a.shape[1]
    for blk in prange((n + TILE - 1) // TILE):
        j0 = blk * TILE
        j1 = min(j0 + TILE, n)
        for i in range(L):
            for j in range(j0, j1):
                out[j, i] = a[i, j]
