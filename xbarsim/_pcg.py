"""Conjugate gradients preconditioned by symmetric line relaxation.

The nodal matrix A (free groups of both layers) is symmetric positive
definite. The preconditioner is one symmetric block Gauss-Seidel sweep over
the two layers: word lines, bit lines, word lines, each line solved exactly
by its Thomas factors (kernels/lines.py). Factors are computed once per
conductance state and shared by every iteration and batch column; each
batch column runs its own CG recurrence in lock step.
"""

from __future__ import annotations

import numpy as np

from .exceptions import ConvergenceError
from .kernels.lines import factor_lines, solve_lines
from .kernels.operator import cg_update, dot_lines, kcl_residual, matvec_dot, xpby


_NO_SHUNT = np.zeros((1, 1))


class LineFactors:
    """Thomas factors of every line of one layer (one conductance state)."""

    def __init__(self, layer, g, shunt=None):
        L, n = layer.gid.shape
        self.layer = layer
        self.g = g
        self.lower = np.empty((L, n))
        self.cprime = np.empty((L, n))
        self.invden = np.empty((L, n))
        self.diag = np.empty((L, n))
        if shunt is None:
            shunt = _NO_SHUNT
        factor_lines(layer.gid, layer.ngroups, g, layer.seg_g, layer.term_mode, layer.term_g,
                     layer.fixed, shunt, self.lower, self.cprime, self.invden, self.diag)

    def solve(self, src, other, out, couple=True):
        lay = self.layer
        solve_lines(lay.gid, lay.ngroups, self.lower, self.cprime, self.invden, src, self.g,
                    other, couple, out)


class LinePreconditioner:
    """Symmetric line Gauss-Seidel: WL solve, BL solve, WL solve."""

    def __init__(self, net):
        self.wl = LineFactors(net.wl, net.g)
        self.bl = LineFactors(net.bl, net.g_t)

    def apply(self, r_wl, r_bl, z_wl, z_bl):
        self.wl.solve(r_wl, z_bl, z_wl, couple=False)
        self.bl.solve(r_bl, z_wl, z_bl)
        self.wl.solve(r_wl, z_bl, z_wl)


def _residual(net, v_wl, v_bl, r_wl, r_bl):
    for layer, own, other, g, res in ((net.wl, v_wl, v_bl, net.g, r_wl), (net.bl, v_bl, v_wl, net.g_t, r_bl)):
        kcl_residual(layer.gid, layer.fixed, g, layer.seg_g, layer.term_mode, layer.term_g,
                     layer.term_v, _NO_SHUNT, own, other, True, True, res)


def _initial_voltages(net, x0):
    """Fixed groups at their drive voltage; the rest from x0 or zero."""
    B = net.batch
    out = []
    for layer, key in ((net.wl, "v_wl"), (net.bl, "v_bl")):
        L, n = layer.gid.shape
        if x0 is not None:
            prev = getattr(x0, key)
            if key == "v_bl":
                prev = np.swapaxes(prev, 0, 1)
            prev = prev.reshape(L, n, -1)
            v = np.empty((L, n, B))
            v[...] = prev if prev.shape[2] in (1, B) else prev[:, :, :1]
        else:
            v = np.zeros((L, n, B))
        fl, fk = np.nonzero(layer.fixed)
        if fl.size:
            # every node of a fixed group takes the group's voltage
            node_fixed = np.take_along_axis(layer.fixed, layer.gid.astype(np.int64), axis=1).astype(bool)
            grp_v = np.take_along_axis(layer.fixed_v, layer.gid.astype(np.int64)[:, :, None], axis=1)
            v[node_fixed] = grp_v[node_fixed]
        out.append(v)
    return out


def make_preconditioner(net, kind):
    """``"line"``: symmetric line Gauss-Seidel; ``"mg"``: multigrid V-cycle."""
    if kind == "mg":
        from ._multigrid import MultigridPreconditioner

        line = LinePreconditioner(net)
        return MultigridPreconditioner(net, fine_factors=(line.wl, line.bl))
    return LinePreconditioner(net)


def solve_pcg(net, tol, maxiter=None, callback=None, x0=None, preconditioner="line"):
    """Run PCG to relative Kirchhoff residual `tol`.

    Returns ``(v_wl (M,N,B), v_bl (N,M,B), iterations, residual, history)``.
    """
    M, N = net.shape
    B = net.batch
    if maxiter is None:
        maxiter = max(200, 4 * (M + N))
    pre = make_preconditioner(net, preconditioner)
    v_wl, v_bl = _initial_voltages(net, x0)

    # Scale: the residual of the zero state (drives only), per column.
    r_wl = np.empty((M, N, B))
    r_bl = np.empty((N, M, B))
    zero_wl, zero_bl = _initial_voltages(net, None)
    _residual(net, zero_wl, zero_bl, r_wl, r_bl)
    del zero_wl, zero_bl
    part_w = np.empty((M, B))
    part_b = np.empty((N, B))

    def dot(a_w, c_w, a_b, c_b):
        dot_lines(a_w, c_w, part_w)
        dot_lines(a_b, c_b, part_b)
        return part_w.sum(axis=0) + part_b.sum(axis=0)

    scale = np.sqrt(dot(r_wl, r_wl, r_bl, r_bl))
    _residual(net, v_wl, v_bl, r_wl, r_bl)
    rnorm = np.sqrt(dot(r_wl, r_wl, r_bl, r_bl))
    safe_scale = np.where(scale > 0, scale, 1.0)
    rel = np.where(scale > 0, rnorm / safe_scale, 0.0)
    history = [float(rel.max())]
    active = rel > tol
    if not active.any():
        return v_wl, v_bl, 0, float(rel.max()), np.array(history)

    z_wl = np.zeros((M, N, B))
    z_bl = np.zeros((N, M, B))
    pre.apply(r_wl, r_bl, z_wl, z_bl)
    p_wl = z_wl.copy()
    p_bl = z_bl.copy()
    q_wl = np.empty((M, N, B))
    q_bl = np.empty((N, M, B))
    rz = dot(r_wl, z_wl, r_bl, z_bl)
    wl, bl = net.wl, net.bl
    it = 0
    for it in range(1, maxiter + 1):
        matvec_dot(wl.gid, wl.fixed, net.g, wl.seg_g, wl.term_mode, wl.term_g, wl.term_v,
                   _NO_SHUNT, p_wl, p_bl, q_wl, part_w)
        matvec_dot(bl.gid, bl.fixed, net.g_t, bl.seg_g, bl.term_mode, bl.term_g, bl.term_v,
                   _NO_SHUNT, p_bl, p_wl, q_bl, part_b)
        pq = part_w.sum(axis=0) + part_b.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(active & (pq > 0), rz / np.where(pq > 0, pq, 1.0), 0.0)
        cg_update(v_wl, r_wl, p_wl, q_wl, alpha, part_w)
        cg_update(v_bl, r_bl, p_bl, q_bl, alpha, part_b)
        rnorm = np.sqrt(part_w.sum(axis=0) + part_b.sum(axis=0))
        rel = np.where(scale > 0, rnorm / safe_scale, 0.0)
        worst = float(rel.max())
        history.append(worst)
        if callback is not None:
            callback(it, worst)
        if not np.isfinite(worst):
            break
        active = active & (rel > tol)
        if not active.any():
            break
        pre.apply(r_wl, r_bl, z_wl, z_bl)
        rz_new = dot(r_wl, z_wl, r_bl, z_bl)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.where(active & (rz > 0), rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        rz = rz_new
        xpby(z_wl, beta, p_wl)
        xpby(z_bl, beta, p_bl)

    history = np.array(history)
    if active.any() or not np.isfinite(history[-1]):
        raise ConvergenceError(
            f"PCG did not reach tol={tol:g} in {it} iterations (relative Kirchhoff residual "
            f"{history[-1]:.3g}). Raise maxiter, loosen tol, or use method='direct'; "
            "the residual history is attached as .residual_history.",
            residual_history=history,
            iterations=it,
        )
    # The recursive residual drifts from the true one in floating point:
    # confirm convergence on the true Kirchhoff residual.
    _residual(net, v_wl, v_bl, r_wl, r_bl)
    true_rel = np.where(scale > 0, np.sqrt(dot(r_wl, r_wl, r_bl, r_bl)) / safe_scale, 0.0)
    if float(true_rel.max()) > 100 * tol:
        raise ConvergenceError(
            f"PCG's recursive residual reached tol={tol:g} but the true Kirchhoff residual is "
            f"{float(true_rel.max()):.3g}: the system is too ill-conditioned for this tolerance. "
            "Loosen tol or use method='direct'.",
            residual_history=history,
            iterations=it,
        )
    return v_wl, v_bl, it, float(true_rel.max()), history
