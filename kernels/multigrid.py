"""Grid transfers of the crossbar multigrid: 2 x 2 cell aggregation.

A coarse level of a crossbar is again a crossbar: node (I, J) of a coarse
layer aggregates the nodes (2I..2I+1, 2J..2J+1) of the fine layer.
Prolongation is piecewise constant (zero on fixed fine nodes); restriction
is its transpose (a sum over the block). The coarsest level is solved
densely (`cholesky_factor`, `cholesky_solve`).
"""

import numpy as np
from numba import njit, prange

from .config import JIT, PJIT
from .lines import TILE, gather_other


@njit(**PJIT)
def restrict_coupling(g, z_other, fixed_own, out):
    """Restrict the residual ``g * z_other`` left on this layer by a
    word-line-then-bit-line sweep (the other layer's residual is zero).

    ``out[I, J, b] = sum`` over free nodes (i, j) of the 2 x 2 block of
    ``g[i, j] * z_other[j, i, b]``. Layouts: this layer (L, n), other layer
    (n, L), coarse (ceil(L/2), ceil(n/2)).
    """
    Lc, nc, B = out.shape
    L, n = g.shape
    half = TILE // 2
    for blk in prange((Lc + half - 1) // half):
        i0 = 2 * half * blk
        i1 = min(i0 + TILE, L)
        gathered = B == 1
        buf = gather_other(z_other, i0, i1, gathered)
        for I in range(half * blk, min(half * blk + half, Lc)):
            for J in range(nc):
                for b in range(B):
                    out[I, J, b] = 0.0
            for i in range(2 * I, min(2 * I + 2, L)):
                if gathered:
                    zb = buf[i - i0]
                    for j in range(n):
                        if fixed_own[i, j] == 0:
                            out[I, j >> 1, 0] += g[i, j] * zb[j]
                    continue
                for j in range(n):
                    if fixed_own[i, j] == 0:
                        gij = g[i, j]
                        J = j >> 1
                        for b in range(B):
                            out[I, J, b] += gij * z_other[j, i, b]


@njit(**PJIT)
def prolong_add(zc, fixed_own, z):
    """``z[i, j] += zc[i // 2, j // 2]`` on free nodes."""
    L, n, B = z.shape
    for i in prange(L):
        I = i >> 1
        for j in range(n):
            if fixed_own[i, j] == 0:
                J = j >> 1
                for b in range(B):
                    z[i, j, b] += zc[I, J, b]


@njit(**PJIT)
def block_sum(a, out):
    """``out[I, J]`` = sum of ``a`` over the 2 x 2 block ``(2I..2I+1,
    2J..2J+1)``; an odd trailing row or column forms blocks on its own."""
    L, n = a.shape
    Lc, nc = out.shape
    for I in prange(Lc):
        i1 = min(2 * I + 2, L)
        for J in range(nc):
            j1 = min(2 * J + 2, n)
            s = 0.0
            for i in range(2 * I, i1):
                for j in range(2 * J, j1):
                    s += a[i, j]
            out[I, J] = s


@njit(**JIT)
def cholesky_factor(a):
    """Lower Cholesky factor of the dense SPD matrix ``a`` (n, n), in place
    (row by row; the upper triangle is left as it was). Returns False when
    ``a`` is not positive definite. The coarsest multigrid level (at most a
    few hundred unknowns): serial, so no BLAS thread pool competes with the
    kernels' threads for the cores."""
    n = a.shape[0]
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= a[i, k] * a[j, k]
            if i == j:
                if not s > 0.0:
                    return False
                a[i, i] = np.sqrt(s)
            else:
                a[i, j] = s / a[j, j]
    return True


@njit(**JIT)
def cholesky_solve(lf, r, z):
    """``z = A^-1 r`` for every column of ``r`` (n, B), ``lf`` the factor of
    `cholesky_factor`."""
    n, B = r.shape
    y = np.empty(n)
    for b in range(B):
        for i in range(n):
            s = r[i, b]
            for k in range(i):
                s -= lf[i, k] * y[k]
            y[i] = s / lf[i, i]
        for i in range(n - 1, -1, -1):
            x = y[i] / lf[i, i]
            z[i, b] = x
            for k in range(i):
                y[k] -= lf[i, k] * x
