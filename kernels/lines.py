"""Line relaxation: tridiagonal (Thomas) factor and solve of every line.

A *layer* is the set of word lines or the set of bit lines, stored
line-major: ``(L, n)`` arrays, line ``l``, node ``k``. Nodes joined by
ideal wire form groups (``gid``), the unknowns of each line's tridiagonal
system; a group of fixed voltage (ideal drive) is an identity row whose
correction is always zero.

The same two kernels serve word lines and bit lines (pyamg-style: the
caller passes the layer, the kernel does not know which it is). The other
layer is read in its own layout, ``other[k, l]``: node ``k`` of line ``l``
of this layer sits on line ``k`` of the other layer at its node ``l``.
"""

import numpy as np
from numba import njit, prange

from .config import JIT, PJIT

TERM_RESISTIVE = 1
"""``term_mode`` of a line end driven through a resistive terminal
(`xbarsim.circuit.RESISTIVE`; 0 floating, 2 ideal source)."""

TILE = 8
"""Lines per tile of the line kernels: one 64-byte cache line of doubles
of the other layer (`gather_other`)."""


@njit(**PJIT)
def factor_lines(gid, ngroups, g, seg_g, term_mode, term_g, fixed, shunt, has_shunt, lower, cprime, invden, diag):
    """Thomas factors of every line's group tridiagonal system.

    Diagonal of group k: its devices' conductance, the non-ideal segments at
    its two boundaries, the resistive terminals on it and, when
    ``has_shunt``, its nodes' conductance to ground ``shunt`` (L, n) (coarse
    levels of the multigrid hierarchy). Off-diagonals:
    minus the boundary segment conductance, zero next to a fixed group.

    Writes ``invden`` (0 on fixed rows, so their solution is 0) and, for
    a layer with ideal wire (groups), ``lower[l, k]`` (sub-diagonal entry of
    row k), ``cprime`` and the work array ``diag``; a layer without passes
    them empty ((0, 0)): its lines take `_factor_line_single` and its solves
    rebuild both from ``seg_g``.

    Returns the number of lines whose elimination met a pivot of exactly 0
    (the system is SPD, so only rounding does that: a floating line's
    devices below what an ulp of its segments' conductance resolves). Such
    a line's factors are not used: the caller refuses the circuit. A zero
    pivot raised ZeroDivisionError inside the parallel loop, which reached
    the user as Numba's SystemError. A pivot that rounding made negative
    is kept: the factors still precondition CG, whose own tests judge the
    answer (refusing those too turned away circuits pcg and mg solved to
    their bound).
    """
    L, n = gid.shape
    bad = 0
    for l in prange(L):
        ng = ngroups[l]
        if ng == n:
            # np.int64: Numba types the prange index int64 when it infers
            # this function and uint64 in the parallel loop it lowers, and
            # would compile the callee once for each
            bad += _factor_line_single(np.int64(l), n, g, seg_g, term_mode, term_g, fixed, shunt, has_shunt,
                                       lower, cprime, invden)
            continue
        for k in range(ng):
            diag[l, k] = 0.0
            lower[l, k] = 0.0
        for j in range(n):
            diag[l, gid[l, j]] += g[l, j]
        if has_shunt:
            for j in range(n):
                diag[l, gid[l, j]] += shunt[l, j]
        for j in range(n - 1):
            ka = gid[l, j]
            kb = gid[l, j + 1]
            if ka != kb:
                s = seg_g[l, j]
                diag[l, ka] += s
                diag[l, kb] += s
                if fixed[l, ka] == 0 and fixed[l, kb] == 0:
                    lower[l, kb] = -s
        if term_mode[l, 0] == TERM_RESISTIVE:
            diag[l, 0] += term_g[l, 0]
        if term_mode[l, 1] == TERM_RESISTIVE:
            diag[l, ng - 1] += term_g[l, 1]
        prev_c = 0.0
        lost = 0
        for k in range(ng):
            if fixed[l, k]:
                invden[l, k] = 0.0
                cprime[l, k] = 0.0
                prev_c = 0.0
                continue
            den = diag[l, k] - lower[l, k] * prev_c
            if den == 0.0:  # 1 / 0 raised; a negative one (rounding) still preconditions, and CG's checks hold
                lost = 1
                den = 1.0
            inv = 1.0 / den
            invden[l, k] = inv
            if k + 1 < ng:
                c = lower[l, k + 1] * inv
            else:
                c = 0.0
            cprime[l, k] = c
            prev_c = c
        bad += lost
    return bad


@njit(**JIT)
def _factor_line_single(l, n, g, seg_g, term_mode, term_g, fixed, shunt, has_shunt, lower, cprime, invden):
    """`factor_lines` for a line without ideal wire (every node its own
    group): each diagonal summed in the same order, in registers; ``lower``
    and ``cprime`` are written only where the layer keeps them (arrays with
    a row per line), since `solve_lines` rebuilds both from ``seg_g``.
    Returns 1 where a pivot was exactly 0, else 0."""
    keep_lower = lower.shape[0] > l
    keep_c = cprime.shape[0] > l
    prev_c = 0.0
    lost = 0
    for k in range(n):
        d = g[l, k]
        if has_shunt:
            d += shunt[l, k]
        if k > 0:
            d += seg_g[l, k - 1]
        if k < n - 1:
            d += seg_g[l, k]
        if k == 0 and term_mode[l, 0] == TERM_RESISTIVE:
            d += term_g[l, 0]
        if k == n - 1 and term_mode[l, 1] == TERM_RESISTIVE:
            d += term_g[l, 1]
        lk = 0.0
        if k > 0 and fixed[l, k - 1] == 0 and fixed[l, k] == 0:
            lk = -seg_g[l, k - 1]
        if keep_lower:
            lower[l, k] = lk
        if fixed[l, k]:
            invden[l, k] = 0.0
            if keep_c:
                cprime[l, k] = 0.0
            prev_c = 0.0
            continue
        den = d - lk * prev_c
        if den == 0.0:  # 1 / 0 raised; a negative one (rounding) still preconditions, and CG's checks hold
            lost = 1
            den = 1.0
        inv = 1.0 / den
        invden[l, k] = inv
        c = 0.0
        if k + 1 < n and fixed[l, k + 1] == 0:
            c = -seg_g[l, k] * inv
        if keep_c:
            cprime[l, k] = c
        prev_c = c
    return lost


@njit(**PJIT)
def solve_lines(gid, ngroups, lower, grouped, seg_g, cprime, invden, src, g, other, couple, out):
    """Solve every line of a layer exactly, the other layer held fixed.

    The sub-diagonal is ``lower`` when the layer has groups (``grouped``);
    otherwise it is ``-seg_g`` read in place (``lower`` unused), which saves
    an array: next to a fixed row the product with its zero solution
    vanishes anyway.

    Right-hand side of group k: ``src`` summed over the group's nodes (the
    residual is stored on the group's first node) plus, when ``couple``,
    ``g * other`` over its nodes (device current from the other layer).
    Result replicated on every node of the group, in ``out`` (L, n, B).
    ``out`` doubles as the per-line work space, so nothing is allocated.
    """
    L, n = gid.shape
    B = out.shape[2]
    for blk in prange((L + TILE - 1) // TILE):
        l0 = blk * TILE
        l1 = min(l0 + TILE, L)
        buf = gather_other(other, l0, l1, B == 1 and couple)
        for l in range(l0, l1):
            if B == 1 and ngroups[l] == n:
                _solve_line_single(l, n, seg_g, invden, src, g, buf[l - l0], couple, out)
            else:
                _solve_line_general(l, gid, ngroups, lower, grouped, seg_g, cprime, invden, src, g, other,
                                    couple, out)


@njit(**JIT)
def gather_other(other, l0, l1, gather):
    """``buf[q, k] = other[k, l0 + q, 0]``: the other layer's voltages along
    lines ``l0..l1`` of this layer, gathered once for the tile of lines
    (an empty (l1 - l0, 0) array when not ``gather``: batched layouts read
    ``other`` in place).

    The other layer is stored in its own line-major layout, so along one
    line of this layer its values are a column (a stride of a whole line).
    Read line by line, every value costs a cache line, and at 4096^2 those
    n cache lines do not stay in cache until the next line reuses them;
    read for `TILE` lines at once, each cache line is used whole (a line
    solve at 4096^2: 110 ms line by line, 64 ms tiled, same bits).
    """
    n = other.shape[0]
    buf = np.empty((l1 - l0, n if gather else 0))
    if gather:
        for k in range(n):
            for q in range(l1 - l0):
                buf[q, k] = other[k, l0 + q, 0]
    return buf


@njit(**JIT)
def _solve_line_general(l, gid, ngroups, lower, grouped, seg_g, cprime, invden, src, g, other, couple, out):
    """Line ``l`` of `solve_lines`, any groups and batch."""
    n = gid.shape[1]
    B = out.shape[2]
    kprev = -1
    for j in range(n):
        k = gid[l, j]
        if k != kprev:
            for b in range(B):
                out[l, k, b] = src[l, j, b]
            kprev = k
        if couple:
            gj = g[l, j]
            for b in range(B):
                out[l, k, b] += gj * other[j, l, b]
    ng = ngroups[l]
    for b in range(B):
        out[l, 0, b] *= invden[l, 0]
    for k in range(1, ng):
        lk = lower[l, k] if grouped else -seg_g[l, k - 1]
        ik = invden[l, k]
        for b in range(B):
            out[l, k, b] = (out[l, k, b] - lk * out[l, k - 1, b]) * ik
    for k in range(ng - 2, -1, -1):
        ck = cprime[l, k] if grouped else -(seg_g[l, k] * invden[l, k])
        for b in range(B):
            out[l, k, b] -= ck * out[l, k + 1, b]
    if ng < n:
        for j in range(n - 1, -1, -1):
            k = gid[l, j]
            if k != j:
                for b in range(B):
                    out[l, j, b] = out[l, k, b]


@njit(**JIT)
def _solve_line_single(l, n, seg_g, invden, src, g, ob, couple, out):
    """The common case of `solve_lines`: one input column, no ideal wire
    (every node its own group, sub-diagonal ``-seg_g``); scalar
    recurrences, no inner batch loops. ``ob`` (n,) is the other layer along
    the line (`gather_other`)."""
    # y_k = b_k + w_k y_(k-1) with b_k, w_k off the dependency chain: one
    # multiply-add per node on the chain instead of a multiply-add and a multiply
    if couple:
        y = (src[l, 0, 0] + g[l, 0] * ob[0]) * invden[l, 0]
        out[l, 0, 0] = y
        for k in range(1, n):
            ik = invden[l, k]
            y = (src[l, k, 0] + g[l, k] * ob[k]) * ik + (seg_g[l, k - 1] * ik) * y
            out[l, k, 0] = y
    else:
        y = src[l, 0, 0] * invden[l, 0]
        out[l, 0, 0] = y
        for k in range(1, n):
            ik = invden[l, k]
            y = src[l, k, 0] * ik + (seg_g[l, k - 1] * ik) * y
            out[l, k, 0] = y
    # back substitution with c'_k = -seg_k / den_k, rebuilt from arrays the
    # forward pass just brought into cache instead of a stored c' (one
    # stream of memory less); next to a fixed row the product meets its zero
    x = out[l, n - 1, 0]
    for k in range(n - 2, -1, -1):
        x = out[l, k, 0] + (seg_g[l, k] * invden[l, k]) * x
        out[l, k, 0] = x
