"""Multigrid preconditioner: a coarse crossbar is again a crossbar.

Coarsening merges 2 x 2 cells. On the coarse level, device conductances of
the block add, wire segments that cross between blocks add over the two
merged lines and are halved (two segments in series per coarse cell), and
every conductance from a free node to a node of fixed voltage (an ideal
drive) or to a terminal becomes a shunt to ground, summed over the block.
The device and shunt parts are the Galerkin product P^T A P for piecewise
constant P; the wire part is half of it, the energy-correct scaling for
smooth error (plain aggregation over-stiffens the wires by 2 and stalls).

One cycle, used as the preconditioner of CG, on each level (a V-cycle as
written; coarse levels of `W_MIN_CELLS` and more are visited `CYCLE` times,
a W-cycle, until `MultigridPreconditioner.fall_back_to_v_cycle`):

1. word-line sweep, bit-line sweep (from zero);
2. the residual then lives on the word lines only (``g * z_bl``): restrict;
3. coarse cycle (the coarsest level, at most 64 cells, is factored
   densely once: Cholesky, `kernels.multigrid.cholesky_factor`);
4. prolong onto the word lines; bit-line sweep, word-line sweep.

Pre- and post-smoothing are each other's adjoint, so the V-cycle is a
symmetric preconditioner. Factors of every level are built once per
conductance state and shared by all iterations and batch columns.

Needs a circuit without ideal (0 ohm) wire segments (each node its own
unknown); the solver falls back to line relaxation alone otherwise.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from .circuit import Layer, RESISTIVE, transposed
from ._direct import HELD_LOSS_MAX, rounding_loss, spd_lu
from ._pcg import LineFactors, LinePreconditioner, neg_matvec
from .kernels.multigrid import block_sum, cholesky_factor, cholesky_solve, prolong_add, restrict_coupling

COARSEST_CELLS = 64
"""Stop coarsening when a level has at most this many cells; factor it
(dense Cholesky of at most 128 unknowns, `DENSE_SERIAL_MAX`)."""
DENSE_SERIAL_MAX = 512
"""Largest coarsest level factored by the serial kernel
(kernels/multigrid.py); a larger one (only with a larger ``coarsest_cells``)
goes to SuperLU. Serial on purpose: at 1024^2 the threaded LAPACK
factor-and-solve of a 512-unknown coarsest level took 15-28 ms of a 0.42 s
solve, mostly waiting for a BLAS thread while the kernels' own threads held
the second core; the serial kernel takes about 1 ms for 128 unknowns."""
WIRE_SCALE = 0.5
"""Coarse wire conductance relative to the Galerkin (aggregation) value."""
CYCLE = 2
"""Coarse visits per level: 1 is a V-cycle, 2 a W-cycle (two stationary
sweeps of the coarser cycle, which keeps the preconditioner linear and
symmetric and the iteration count flat in the array size)."""
W_MIN_CELLS = 262144
"""Levels smaller than this are visited once (V-cycle): below it the W-cycle's
exponentially many small visits cost Python overhead, not convergence
(bench: 1024^2 0.93 s with W everywhere, 0.75 s with W on 512^2 and up)."""


def _blocksum(a):
    """Sum 2 x 2 blocks of a 2-D float array (odd trailing row/column alone)."""
    L, n = a.shape
    out = np.empty(((L + 1) // 2, (n + 1) // 2))
    block_sum(np.ascontiguousarray(a, dtype=np.float64), out)
    return out


def _rowpairsum(a):
    """Sum pairs of rows (odd trailing row alone)."""
    L = a.shape[0]
    if L & 1:
        a = np.concatenate([a, np.zeros((1,) + a.shape[1:], dtype=a.dtype)])
    return a[0::2] + a[1::2]


class Level:
    """One level: the two layers as plain crossbar arrays in shunt form."""

    def __init__(self, g, seg_wl, seg_bl, shunt_wl, shunt_bl, fixed_wl, fixed_bl, g_t=None):
        self.g = np.ascontiguousarray(g)
        self.g_t = transposed(g) if g_t is None else g_t
        self.seg = (seg_wl, seg_bl)
        self.shunt = (shunt_wl, shunt_bl)
        self.fixed = (fixed_wl.astype(np.uint8), fixed_bl.astype(np.uint8))

    @property
    def shape(self):
        return self.g.shape

    def layers(self):
        """`Layer` views (identity groups, no terminals) for the kernels."""
        out = []
        for seg, fixed in zip(self.seg, self.fixed):
            L, n = fixed.shape
            gid = np.tile(np.arange(n, dtype=np.int32), (L, 1))  # writable (`kernel_array`)
            out.append(Layer(
                gid=gid, ngroups=np.full(L, n, dtype=np.int32),
                seg_g=np.ascontiguousarray(seg if seg.shape[1] else np.zeros((L, 1))),
                term_mode=np.zeros((L, 2), np.int8), term_g=np.zeros((L, 2)),
                term_v=np.zeros((L, 2, 1)), fixed=fixed,
            ))
        return out

    def effective_shunts(self):
        """Each free node's conductance to ground or to fixed nodes."""
        out = []
        for k, (seg, shunt, fixed) in enumerate(zip(self.seg, self.shunt, self.fixed)):
            other_fixed = self.fixed[1 - k].T
            g = self.g if k == 0 else self.g_t
            eff = shunt + g * other_fixed
            if seg.shape[1]:
                eff[:, 1:] += seg * fixed[:, :-1]
                eff[:, :-1] += seg * fixed[:, 1:]
            out.append(eff * (fixed == 0))
        return out

    def coarsen(self, masked=None):
        """The next coarser level (module docstring).

        Fixed nodes are masked out and their couplings turned into shunts.
        A level with none (the usual read: every drive behind a terminal
        resistance) skips the masks (``masked=None`` decides by that): the
        same values, since the masks multiply by 1 and add 0, without the
        full-size masked temporaries.
        """
        if masked is None:
            masked = bool(self.fixed[0].any() or self.fixed[1].any())
        free = [(f == 0) for f in self.fixed]
        if masked:
            g_c = _blocksum(self.g * (free[0] & free[1].T))
            shunt_c = [_blocksum(e) for e in self.effective_shunts()]
            fixed_c = [(_blocksum(fr.astype(np.float64)) == 0) for fr in free]
        else:
            g_c = _blocksum(self.g)
            shunt_c = [_blocksum(sh) for sh in self.shunt]
            fixed_c = [np.zeros(((L + 1) // 2, (n + 1) // 2), dtype=bool) for L, n in (f.shape for f in free)]
        seg_c = []
        for seg, fr in zip(self.seg, free):
            L, n = fr.shape
            nc = (n + 1) // 2
            if nc < 2:
                seg_c.append(np.zeros(((L + 1) // 2, 0)))
                continue
            cross = seg[:, 1::2][:, : nc - 1]
            if masked:
                cross = cross * fr[:, 1:-1:2][:, : nc - 1] * fr[:, 2::2][:, : nc - 1]
            seg_c.append(np.ascontiguousarray(WIRE_SCALE * _rowpairsum(cross)))
        return Level(g_c, seg_c[0], seg_c[1], shunt_c[0], shunt_c[1], fixed_c[0], fixed_c[1])

    def matrix(self):
        """This level's operator over all its nodes, fixed ones included
        (sparse, 2 M N square): word-line node (i, j) is ``i N + j``, bit-line
        node (j, i) is ``M N + j M + i``; devices, wire segments and the
        shunts to ground."""
        M, N = self.shape
        n_wl = M * N
        idx_wl = np.arange(n_wl).reshape(M, N)
        idx_bl = n_wl + np.arange(N * M).reshape(N, M)
        rows, cols, vals = [], [], []

        def stamp(u, w, c):
            rows.extend([u, w, u, w])
            cols.extend([u, w, w, u])
            vals.extend([c, c, -c, -c])

        stamp(idx_wl.ravel(), idx_bl.T.ravel(), self.g.ravel())
        for idx, seg in ((idx_wl, self.seg[0]), (idx_bl, self.seg[1])):
            if seg.shape[1]:
                stamp(idx[:, :-1].ravel(), idx[:, 1:].ravel(), seg.ravel())
        diag = np.concatenate([self.shunt[0].ravel(), self.shunt[1].ravel()])
        rows.append(np.arange(2 * n_wl))
        cols.append(np.arange(2 * n_wl))
        vals.append(diag)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(2 * n_wl, 2 * n_wl))

    def factor_direct(self):
        """Factors of this level's operator over its free nodes: dense
        Cholesky by the serial kernel up to `DENSE_SERIAL_MAX` unknowns (every
        coarsest level the hierarchy builds with the default
        `COARSEST_CELLS`), SuperLU beyond (a larger ``coarsest_cells``)."""
        A = self.matrix()
        free = np.concatenate([self.fixed[0].ravel() == 0, self.fixed[1].ravel() == 0])
        self._free = free
        self._dense = None
        self._lu = None
        if free.any():
            A_ff = A[free][:, free]
            if A_ff.shape[0] <= DENSE_SERIAL_MAX:
                dense = A_ff.toarray()
                if not cholesky_factor(dense):
                    raise np.linalg.LinAlgError("coarsest multigrid level is not positive definite")
                self._dense = dense
            else:
                self._lu = spd_lu(A_ff)

    def solve_direct(self, r_wl, r_bl, z_wl, z_bl):
        M, N = self.shape
        B = r_wl.shape[2]
        r = np.concatenate([r_wl.reshape(M * N, B), r_bl.reshape(N * M, B)])
        z = np.zeros_like(r)
        if self._dense is not None:
            zf = np.empty((self._dense.shape[0], B))
            cholesky_solve(self._dense, np.ascontiguousarray(r[self._free]), zf)
            z[self._free] = zf
        elif self._lu is not None:
            z[self._free] = self._lu.solve(np.ascontiguousarray(r[self._free]))
        z_wl[...] = z[: M * N].reshape(M, N, B)
        z_bl[...] = z[M * N:].reshape(N, M, B)


def supports(net):
    """True when the multigrid applies: no ideal wire segments."""
    return bool(np.all(net.wl.ngroups == net.wl.gid.shape[1]) and np.all(net.bl.ngroups == net.bl.gid.shape[1]))


def _fine_level(net):
    shunts = []
    for layer in (net.wl, net.bl):
        L, n = layer.gid.shape
        sh = np.zeros((L, n))
        for side, node in ((0, 0), (1, n - 1)):
            res = layer.term_mode[:, side] == RESISTIVE
            sh[res, node] += layer.term_g[res, side]
        shunts.append(sh)
    seg_wl = net.wl.seg_g[:, : net.shape[1] - 1]
    seg_bl = net.bl.seg_g[:, : net.shape[0] - 1]
    return Level(net.g, seg_wl, seg_bl, shunts[0], shunts[1], net.wl.fixed, net.bl.fixed, g_t=net.g_t)


class MultigridPreconditioner:
    """V- or W-cycle over a hierarchy of coarse crossbars (see module docstring)."""

    def __init__(self, net, fine_factors=None, coarsest_cells=COARSEST_CELLS, cycle=None):
        self.batch = net.batch
        self.cycle = CYCLE if cycle is None else cycle
        level = _fine_level(net)
        self.levels = [level]
        while level.shape[0] * level.shape[1] > coarsest_cells and max(level.shape) > 1:
            coarse = level.coarsen()
            if len(self.levels) == 1:
                # the fine level's copies (transposed g, shunts) were only
                # needed to build level 1; the fine smoother uses `net`
                level.g_t = level.seg = level.shunt = None
            level = coarse
            self.levels.append(level)
        self.levels[-1].factor_direct()
        self._faithful = len(self.levels) > 1 or rounding_loss(net) <= HELD_LOSS_MAX
        self.factors = []
        for k, lev in enumerate(self.levels[:-1]):
            if k == 0:
                self.factors.append(fine_factors if fine_factors is not None else
                                    (LineFactors(net.wl, net.g), LineFactors(net.bl, net.g_t)))
                continue
            lay_wl, lay_bl = lev.layers()
            self.factors.append((LineFactors(lay_wl, lev.g, lev.shunt[0]),
                                 LineFactors(lay_bl, lev.g_t, lev.shunt[1])))
        self._allocate_scratch()

    def _allocate_scratch(self):
        """The coarse levels' vectors `apply` writes (``work``, ``extra``):
        every preconditioner its own, so that solves running at once in
        threads (re-solves of one solution) never share them."""
        B = self.batch
        self.work = []
        for lev in self.levels[1:]:
            M, N = lev.shape
            self.work.append(dict(
                r_wl=np.zeros((M, N, B)), r_bl=np.zeros((N, M, B)),
                z_wl=np.zeros((M, N, B)), z_bl=np.zeros((N, M, B)),
            ))
        self.extra = []
        for k, lev in enumerate(self.levels[1:-1], start=1):
            M, N = lev.shape
            lay = self.factors[k][0].layer, self.factors[k][1].layer
            self.extra.append(dict(
                layers=lay,
                q_wl=np.zeros((M, N, B)), q_bl=np.zeros((N, M, B)),
                e_wl=np.zeros((M, N, B)), e_bl=np.zeros((N, M, B)),
            ))

    @property
    def depth(self):
        return len(self.levels)

    def refresh_fine(self, net):
        """A preconditioner for `net` (same wires and drives, conductances
        changed a little) that refactors the fine level only and shares the
        coarse hierarchy with this one.

        The fine line factors are one pass over the array (a few per cent
        of a solve), and it is the fine smoother that must see the new
        conductances: a changed device is a local perturbation that the
        coarse levels, built for the old ones, still correct well. At
        1024^2 with 1 % of devices changed, a warm re-solve then takes 4
        iterations instead of the 6 with the old factors throughout.
        """
        if len(self.levels) == 1:
            # the fine level is the coarsest, solved by its dense factor of
            # the old conductances: reused, it made CG's accuracy estimate
            # stale and re-solves of <= 64 cells stopped 4 % off.
            # Refactored: a few dozen unknowns
            return MultigridPreconditioner(net, cycle=self.cycle)
        new = copy.copy(self)
        fine = copy.copy(self.levels[0])
        fine.g = net.g
        new.levels = [fine] + self.levels[1:]
        line = LinePreconditioner(net)
        new.factors = [(line.wl, line.bl)] + self.factors[1:]
        # its own scratch vectors: shared with this one, two re-solves of one
        # solution in two threads wrote each other's coarse corrections
        # (3 iterations became 6-672, results changed, and some ended in a
        # false ConvergenceError)
        new._allocate_scratch()
        return new

    @property
    def exact(self):
        """Whether `apply` is ``A^-1`` itself: a hierarchy of one level, the
        fine level solved by its dense factor (`xbarsim._pcg.pcg_core`),
        of a matrix whose rounding dropped no fair part of what holds a line
        (`xbarsim._direct.rounding_loss`)."""
        return len(self.levels) == 1 and self._faithful

    @property
    def uses_w_cycle(self):
        """Whether `apply` visits some level twice (a W-cycle somewhere)."""
        return self.cycle > 1 and any(lev.shape[0] * lev.shape[1] >= W_MIN_CELLS for lev in self.levels[1:-1])

    def fall_back_to_v_cycle(self):
        """Use the V-cycle from now on (`_pcg.pcg_core` calls this when the
        W-cycle stops being positive definite; the levels and factors do not
        depend on the cycle, so nothing is rebuilt). Kept by re-solves and
        Newton steps that reuse this preconditioner."""
        self.cycle = 1

    def apply(self, r_wl, r_bl, z_wl, z_bl, k=0):
        lev = self.levels[k]
        if k == len(self.levels) - 1:
            lev.solve_direct(r_wl, r_bl, z_wl, z_bl)
            return
        fw, fb = self.factors[k]
        fw.solve(r_wl, z_bl, z_wl, couple=False)
        fb.solve(r_bl, z_wl, z_bl)
        w = self.work[k]
        restrict_coupling(lev.g, z_bl, lev.fixed[0], w["r_wl"])
        self.apply(w["r_wl"], w["r_bl"], w["z_wl"], w["z_bl"], k + 1)
        coarse = self.levels[k + 1]
        if self.cycle > 1 and k + 1 < len(self.levels) - 1 and coarse.shape[0] * coarse.shape[1] >= W_MIN_CELLS:
            self._second_visit(k + 1, w)
        prolong_add(w["z_wl"], lev.fixed[0], z_wl)
        fb.solve(r_bl, z_wl, z_bl)
        fw.solve(r_wl, z_bl, z_wl)

    def _second_visit(self, k, w):
        """z += cycle(r - A z) on level k: the second leg of a W-cycle."""
        lev = self.levels[k]
        x = self.extra[k - 1]
        lay_wl, lay_bl = x["layers"]
        q_wl, q_bl = x["q_wl"], x["q_bl"]
        neg_matvec(lay_wl, lev.g, lev.shunt[0], w["z_wl"], w["z_bl"], q_wl)  # q = -A z
        neg_matvec(lay_bl, lev.g_t, lev.shunt[1], w["z_bl"], w["z_wl"], q_bl)
        np.add(w["r_wl"], q_wl, out=q_wl)  # r - A z
        np.add(w["r_bl"], q_bl, out=q_bl)
        self.apply(q_wl, q_bl, x["e_wl"], x["e_bl"], k)
        w["z_wl"] += x["e_wl"]
        w["z_bl"] += x["e_bl"]
