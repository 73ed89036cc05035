"""Damped Newton for sinh (selectorless) devices.

The nodal equations of ``I = G V0 sinh(V / V0)`` devices, linear wires and
terminals are the gradient of a strictly convex energy

    E(V) = sum_devices G V0^2 cosh(Vd / V0) + sum_wires g dV^2 / 2
           + sum_terminals g (V - Vs)^2 / 2,

so Newton's method with a line search on E converges from any start. The
Jacobian is the crossbar's own nodal matrix with device conductance
``G cosh(Vd / V0)``: every Newton step is a linear crossbar solve
(`pcg_core` with the line or multigrid preconditioner, or SuperLU),
its factors refreshed once per step. Inner solves are inexact (forcing
term ``min(0.1, rel)`` relative reduction), which keeps the outer
convergence superlinear.

The line search works on ``phi(t) = E(V + t d)``, through its derivative
``phi'(t) = -F(V + t d) . d`` (F the Kirchhoff residual), so cosh never has
to be summed and an overflowing trial point just reads as "too far".
A batch of inputs is solved column by column (each has its own Jacobian).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .circuit import transposed
from .exceptions import ConvergenceError
from ._pcg import (Workspace, initial_voltages, make_preconditioner, pcg_core, residual,
                   residual_scale, solve_pcg)


def _column(net, b):
    """The network restricted to batch column b."""
    def lay(layer):
        return dataclasses.replace(layer, term_v=np.ascontiguousarray(layer.term_v[:, :, b:b + 1]))
    ends = {k: (None if s is None else dataclasses.replace(s, v=s.v[:, b:b + 1] if s.v.shape[1] > 1 else s.v)) for k, s in net.ends.items()}
    return dataclasses.replace(net, wl=lay(net.wl), bl=lay(net.bl), batch=1, ends=ends)


def _linearized(net, g_eff):
    return dataclasses.replace(net, g=g_eff, g_t=transposed(g_eff), linear=True)


def _make_inner(net_j, kind):
    if kind == "direct":
        from ._direct import DirectPreconditioner

        return DirectPreconditioner(net_j)
    return make_preconditioner(net_j, kind)


def _newton_column(net, tol, maxiter, callback, x0, inner, history):
    M, N = net.shape
    work = Workspace(M, N, 1)
    scale = residual_scale(net, work)
    safe = np.where(scale > 0, scale, 1.0)
    if x0 is None:
        # start from the linear (small-signal) solution
        lin = dataclasses.replace(net, linear=True)
        if inner == "direct":
            v_wl, v_bl = initial_voltages(lin)
            r_wl = np.empty((M, N, 1)); r_bl = np.empty((N, M, 1))
            residual(lin, v_wl, v_bl, r_wl, r_bl)
            d_wl = np.zeros_like(v_wl); d_bl = np.zeros_like(v_bl)
            pcg_core(lin, lin.g, lin.g_t, _make_inner(lin, "direct"), r_wl, r_bl, d_wl, d_bl,
                     scale, 1e-6, 10, work)
            v_wl += d_wl; v_bl += d_bl
        else:
            v_wl, v_bl, *_ = solve_pcg(lin, tol=1e-6, preconditioner=inner)
    else:
        v_wl, v_bl = x0
    F_wl = np.empty((M, N, 1)); F_bl = np.empty((N, M, 1))
    T_wl = np.empty((M, N, 1)); T_bl = np.empty((N, M, 1))
    G_wl = np.empty((M, N, 1)); G_bl = np.empty((N, M, 1))
    d_wl = np.empty((M, N, 1)); d_bl = np.empty((N, M, 1))
    residual(net, v_wl, v_bl, F_wl, F_bl)
    rel = float((np.sqrt(work.dot(F_wl, F_wl, F_bl, F_bl)) / safe)[0]) if scale[0] > 0 else 0.0
    history.append(rel)
    inner_iters = 0
    stalled = 0
    for it in range(1, maxiter + 1):
        if rel <= tol:
            return v_wl, v_bl, it - 1, inner_iters, rel
        vd = v_wl[:, :, 0] - v_bl[:, :, 0].T
        with np.errstate(over="ignore"):
            g_eff = net.g * np.cosh(vd / net.v0)
        net_j = _linearized(net, g_eff)
        pre = _make_inner(net_j, inner)
        d_wl[...] = 0.0
        d_bl[...] = 0.0
        np.copyto(T_wl, F_wl)
        np.copyto(T_bl, F_bl)
        eta = max(0.1 * tol, min(0.1, rel) * rel)
        k, ok = pcg_core(net_j, net_j.g, net_j.g_t, pre, T_wl, T_bl, d_wl, d_bl, scale, eta,
                         max(200, 4 * (M + N)), work)
        inner_iters += k
        if not ok:
            raise ConvergenceError(
                f"Newton step {it}: the inner linear solve did not converge (relative residual "
                f"{rel:.3g}); the Jacobian is too ill-conditioned. Use method='direct'.",
                residual_history=np.array(history), iterations=it)
        slope0 = -float(work.dot(F_wl, d_wl, F_bl, d_bl)[0])
        if not slope0 < 0:
            raise ConvergenceError(
                f"Newton step {it} is not a descent direction (slope {slope0:.3g}); "
                "tighten the inner tolerance or use method='direct'.",
                residual_history=np.array(history), iterations=it)

        def slope(t):
            np.multiply(d_wl, t, out=T_wl); np.add(T_wl, v_wl, out=T_wl)
            np.multiply(d_bl, t, out=T_bl); np.add(T_bl, v_bl, out=T_bl)
            with np.errstate(over="ignore", invalid="ignore"):
                residual(net, T_wl, T_bl, G_wl, G_bl)
                val = -float(work.dot(G_wl, d_wl, G_bl, d_bl)[0])
            return val if np.isfinite(val) else np.inf

        t_lo, s_lo, t_hi = 0.0, slope0, 1.0
        s_hi = slope(1.0)
        t = 1.0
        if s_hi > 0:
            # phi' is increasing (E convex): find its root in (0, 1)
            side = 0
            for _ in range(60):
                if np.isfinite(s_hi):
                    t = (t_lo * s_hi - t_hi * s_lo) / (s_hi - s_lo)
                    t = min(max(t, t_lo + 1e-3 * (t_hi - t_lo)), t_hi - 1e-3 * (t_hi - t_lo))
                else:
                    t = 0.5 * (t_lo + t_hi)
                s = slope(t)
                if abs(s) <= 0.1 * abs(slope0):
                    break
                if s > 0:
                    t_hi, s_hi = t, s
                    if side == 1 and np.isfinite(s_hi):
                        s_lo *= 0.5  # Illinois
                    side = 1
                else:
                    t_lo, s_lo = t, s
                    if side == -1 and np.isfinite(s_hi):
                        s_hi *= 0.5
                    side = -1
            else:
                raise ConvergenceError(
                    f"Newton step {it}: the line search found no acceptable step.",
                    residual_history=np.array(history), iterations=it)
        # T (trial voltages) and G (their residual) hold the accepted point
        v_wl, T_wl = T_wl, v_wl
        v_bl, T_bl = T_bl, v_bl
        F_wl, G_wl = G_wl, F_wl
        F_bl, G_bl = G_bl, F_bl
        new_rel = float((np.sqrt(work.dot(F_wl, F_wl, F_bl, F_bl)) / safe)[0]) if scale[0] > 0 else 0.0
        history.append(new_rel)
        if callback is not None:
            callback(it, new_rel)
        stalled = stalled + 1 if new_rel >= 0.5 * rel else 0
        rel = new_rel
        if stalled >= 8:
            break
    if rel <= tol:
        return v_wl, v_bl, maxiter, inner_iters, rel
    raise ConvergenceError(
        f"Newton did not reach tol={tol:g} (relative Kirchhoff residual {rel:.3g} after "
        f"{len(history) - 1} steps). Loosen tol or raise maxiter; the residual history is "
        "attached.", residual_history=np.array(history), iterations=len(history) - 1)


def solve_newton(net, tol, maxiter=None, callback=None, x0=None, inner="line"):
    """Nonlinear solve of every batch column; returns the same tuple as
    `solve_pcg` (iterations = Newton steps summed over columns)."""
    M, N = net.shape
    B = net.batch
    maxiter = 100 if maxiter is None else maxiter
    v_wl = np.empty((M, N, B))
    v_bl = np.empty((N, M, B))
    history = []
    steps = 0
    worst = 0.0
    starts = initial_voltages(net, x0) if x0 is not None else None
    for b in range(B):
        col = _column(net, b)
        start = None
        if starts is not None:
            start = (np.ascontiguousarray(starts[0][:, :, b:b + 1]),
                     np.ascontiguousarray(starts[1][:, :, b:b + 1]))
        vw, vb, k, _, rel = _newton_column(col, tol, maxiter, callback, start, inner, history)
        v_wl[:, :, b] = vw[:, :, 0]
        v_bl[:, :, b] = vb[:, :, 0]
        steps += k
        worst = max(worst, rel)
    return v_wl, v_bl, steps, worst, np.array(history)
