"""Direct sparse solve of the nodal equations (the reference path).

Unknowns are the free groups of both layers (nodes joined by ideal wire are
one unknown; groups held by an ideal drive are known and move to the
right-hand side). The matrix is assembled in O(M N) with NumPy, factored
once by SuperLU and applied to every batch column, as the preconditioner of
the checked CG loop (`solve_direct`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .circuit import IDEAL, RESISTIVE
from .exceptions import ParameterError


def _group_ids(layer, offset):
    """Global id of every (line, group) slot of a layer, or -1 past ngroups."""
    L, n = layer.gid.shape
    slot = np.arange(n)[None, :] < layer.ngroups[:, None]
    ids = np.full((L, n), -1, dtype=np.int64)
    ids[slot] = offset + np.arange(int(slot.sum()))
    return ids, int(slot.sum())


def assemble(net):
    """Nodal conductance matrix over every group and the source currents.

    Returns ``(A, b, fixed_mask, fixed_v, wl_ids, bl_ids)`` with ``A`` the
    (n_groups x n_groups) CSR Laplacian-plus-terminals matrix, ``b`` the
    (n_groups, B) current injected by resistive terminals, and the fixed
    groups (ideal drives) with their voltages.
    """
    wl, bl = net.wl, net.bl
    wl_ids, n_wl = _group_ids(wl, 0)
    bl_ids, n_bl = _group_ids(bl, n_wl)
    n_all = n_wl + n_bl
    B = net.batch
    rows, cols, vals = [], [], []

    def stamp(u, w, c):
        keep = c != 0
        u, w, c = u[keep], w[keep], c[keep]
        rows.extend([u, w, u, w])
        cols.extend([u, w, w, u])
        vals.extend([c, c, -c, -c])

    M, N = net.shape
    # devices: WL(i,j) group -- BL(i,j) group
    gw = np.take_along_axis(wl_ids, wl.gid.astype(np.int64), axis=1)  # (M, N)
    gb = np.take_along_axis(bl_ids, bl.gid.astype(np.int64), axis=1).T  # (M, N)
    stamp(gw.ravel(), gb.ravel(), net.g.ravel())
    # non-ideal wire segments
    for layer, ids in ((wl, wl_ids), (bl, bl_ids)):
        node_ids = np.take_along_axis(ids, layer.gid.astype(np.int64), axis=1)
        if node_ids.shape[1] > 1:
            a, c = node_ids[:, :-1], node_ids[:, 1:]
            cut = a != c
            stamp(a[cut], c[cut], layer.seg_g[cut])
    b = np.zeros((n_all, B))
    diag_extra = np.zeros(n_all)
    fixed_mask = np.zeros(n_all, dtype=bool)
    fixed_v = np.zeros((n_all, B))
    for layer, ids in ((wl, wl_ids), (bl, bl_ids)):
        L = ids.shape[0]
        for side in range(2):
            grp = np.zeros(L, dtype=np.int64) if side == 0 else layer.ngroups.astype(np.int64) - 1
            gid_global = ids[np.arange(L), grp]
            res = layer.term_mode[:, side] == RESISTIVE
            np.add.at(diag_extra, gid_global[res], layer.term_g[res, side])
            np.add.at(b, gid_global[res], layer.term_g[res, side, None] * layer.term_v[res, side, :])
        fl, fk = np.nonzero(layer.fixed)
        fixed_mask[ids[fl, fk]] = True
        for side in range(2):
            ideal = np.nonzero(layer.term_mode[:, side] == IDEAL)[0]
            grp = np.zeros(ideal.size, dtype=np.int64) if side == 0 else layer.ngroups[ideal].astype(np.int64) - 1
            fixed_v[ids[ideal, grp]] = layer.term_v[ideal, side, :]
    rows.append(np.arange(n_all))
    cols.append(np.arange(n_all))
    vals.append(diag_extra)
    A = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_all, n_all)
    )
    return A, b, fixed_mask, fixed_v, wl_ids, bl_ids


HELD_LOSS_MAX = 1e-2
"""Largest `rounding_loss` at which a factorization of the assembled nodal
matrix is taken as ``A^-1`` itself (``exact``: its first CG step stands).
Past it, the loop estimates the error from CG's own steps, as for every
other preconditioner."""


def rounding_loss(net):
    """Worst ratio, over the lines with no ideal drive, of the conductance
    rounding may drop from the line's assembled diagonals (an ulp of each
    node's diagonal, summed along the line) to the conductance that holds
    the line (its devices and resistive terminals).

    A line with no ideal drive finds its level from its devices alone. Where
    they are weak next to its wire segments, the ulps of its diagonals add up
    to a fair part of them, and a factorization of the matrix as rounded
    solves another circuit: a floating bit line of 3e-14 S devices whose
    nodes are strapped by 1e-7 ohm segments (ratio 2e4) came back at 7e-6 V
    instead of -0.042 V, and the step after it, through the same factors,
    saw nothing left to correct. An ordinary floating line (1 ohm wire, 1e-6
    S devices) sits near 2e-10.
    """
    eps = np.finfo(np.float64).eps
    worst = 0.0
    for layer, g in ((net.wl, net.g), (net.bl, net.g_t)):
        n = layer.gid.shape[1]
        lines = ~np.any(layer.fixed, axis=1)
        if not lines.any():
            continue
        ends = np.where(layer.term_mode == RESISTIVE, layer.term_g, 0.0)
        diag = np.array(g, dtype=np.float64)
        if n > 1:
            seg = np.where(layer.gid[:, 1:] != layer.gid[:, :-1], layer.seg_g[:, : n - 1], 0.0)
            diag[:, :-1] += seg
            diag[:, 1:] += seg
        diag[:, 0] += ends[:, 0]
        diag[:, -1] += ends[:, 1]
        lost = eps * diag[lines].sum(axis=1)
        held = g[lines].sum(axis=1) + ends[lines].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(held > 0, lost / np.where(held > 0, held, 1.0), 0.0)
        worst = max(worst, float(ratio.max()))
    return worst


def solve_direct(net, tol, maxiter=None, callback=None, x0=None):
    """Voltages of both layers, (M, N, B) and (N, M, B), by one factorization,
    checked and refined like every other solve.

    The factorization is the preconditioner of the checked CG loop of
    `solve_pcg`: its first iteration is the plain direct solve, and
    the loop's true-residual and accuracy checks then hold the result to
    `tol` like every other method's. Further iterations are iterative
    refinement; they matter where the assembled matrix itself loses digits:
    a line held only by devices 1e12 weaker than its wires (1e-12 S on
    1 ohm) sums ``1 + 1e-12`` on its diagonal, keeps the device conductance
    to 1e-4, and the plain solve left that line 2.5e-5 V off at 0.75 V.
    Returns ``(v_wl, v_bl, iterations, residual, history, pre)`` as
    `solve_pcg` does.
    """
    from ._pcg import solve_pcg

    return solve_pcg(net, tol=tol, maxiter=maxiter, callback=callback, x0=x0, pre=factor_or_refuse(net))


def factor_or_refuse(net, newton=False):
    """`DirectPreconditioner` of `net` (a circuit, or with ``newton`` a
    Newton step's linearised one), with SuperLU's bare "Factor is exactly
    singular" RuntimeError a `ParameterError` that says why: a floating word
    line of 1e-12 S devices on 3e-14 ohm segments, and sinh devices on a
    line of 1e8 and 1e-20 ohm segments (the linear solve of the same circuit
    refused it by name), gave SciPy's own. A Newton step's matrix is also
    singular where the devices' slopes span that range by themselves: 3 uS
    devices on 1 ohm wire driven at 461 V0 (cosh 1e200) were told to mend
    their wires, where method='pcg' solves them (found by fuzzing)."""
    try:
        return DirectPreconditioner(net)
    except RuntimeError as exc:
        if "singular" not in str(exc):
            raise  # SuperLU's malloc failure, for one (`xbarsim scale` reports it as out of memory)
        if newton:
            raise ParameterError(
                f"a Newton step's Jacobian is singular in double precision (SuperLU: {exc}): the sinh devices' "
                "slopes G cosh(V / V0) at the step's voltages, or the conductances that meet on one line, span more "
                "than double precision resolves (|V| / V0 in the hundreds: cosh(461) is 1e200). Use method='pcg' "
                "(or 'auto'), whose line solves keep them apart, or drive the devices less hard (a larger v0, "
                "smaller drives).") from None
        raise ParameterError(
            "the nodal matrix is singular in double precision (SuperLU: "
            f"{exc}): conductances that meet on one line span more than double precision resolves "
            "(for example 1e-12 S devices on 1e-14 ohm wire segments). Give 0 for wire segments that small "
            "(ideal parts are merged exactly), or drop the devices that weak (g = 0).") from None


def spd_lu(A):
    """SuperLU factors of a symmetric positive definite sparse matrix (the
    free block of a nodal matrix, of a Newton Jacobian, G cosh > 0, or of a
    coarse multigrid level): minimum-degree ordering of A + A^T and the
    diagonal pivots, which are stable for such a matrix. SuperLU's default
    threshold pivoting took 15.7 s instead of 0.1 s at 130 x 129 with 5 % of
    the devices open, for the same fill."""
    return spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))


class DirectPreconditioner:
    """Exact ``A^-1`` by one SuperLU factorization: as a CG preconditioner it
    makes CG converge in one iteration (the direct path of Newton steps)."""

    exact = True
    """Its first CG step is the answer: no slow mode to estimate
    (`xbarsim._pcg.pcg_core`). Not where rounding dropped a fair part of
    what holds a line (`rounding_loss`): the factors then solve another
    circuit, and CG estimates the error as for any preconditioner."""

    stall_advice = ("The sparse factorization lost the digits this circuit needs (conductances that meet on one "
                    "line span about what double precision resolves); try method='pcg', whose line solves keep "
                    "them apart, or make near-ideal wire segments ideal (r = 0)")
    """What `xbarsim._pcg.solve_pcg` advises when this preconditioner's
    refinement stalls (its default, ``method='direct'``, pointed at itself)."""

    def __init__(self, net):
        A, _, fixed_mask, _, wl_ids, bl_ids = assemble(net)
        self.free = ~fixed_mask
        self.n = A.shape[0]
        A_ff = A[self.free][:, self.free].tocsc()
        self.lu = spd_lu(A_ff) if A_ff.shape[0] else None
        self.exact = rounding_loss(net) <= HELD_LOSS_MAX
        self.node_ids = [np.take_along_axis(ids, lay.gid.astype(np.int64), axis=1)
                         for ids, lay in ((wl_ids, net.wl), (bl_ids, net.bl))]

    def apply(self, r_wl, r_bl, z_wl, z_bl):
        B = r_wl.shape[2]
        r = np.zeros((self.n, B))
        for ids, src in zip(self.node_ids, (r_wl, r_bl)):
            for b in range(B):
                r[:, b] += np.bincount(ids.ravel(), weights=src[:, :, b].ravel(), minlength=self.n)
        z = np.zeros_like(r)
        if self.lu is not None:
            z[self.free] = self.lu.solve(np.ascontiguousarray(r[self.free]))
        z_wl[...] = z[self.node_ids[0]]
        z_bl[...] = z[self.node_ids[1]]
