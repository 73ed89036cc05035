"""``xbarsim demo``: one read of a crossbar, solved three ways, reported.

A quick end-to-end check of an install: a 256 x 256 array of 2-10 kOhm
devices on 1 ohm wires and terminals, driven with random inputs, solved by
the multigrid CG, the line-relaxation CG and the sparse direct solve; prints
iterations, times, agreement, Kirchhoff error and the MVM error against the
ideal product ``G.T @ x``.
"""

from __future__ import annotations

import time

import numpy as np

from .cli import seed_arg


def register(subparsers):
    p = subparsers.add_parser("demo", help="solve one crossbar read three ways and report")
    p.add_argument("--size", type=int, default=256, help="array size N (N x N), default 256")
    p.add_argument("--r-wire", type=float, default=1.0, help="wire segment resistance, ohm")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.set_defaults(func=run)


def run(args):
    import xbarsim as xs

    n = args.size
    if n < 1:
        raise xs.ParameterError(f"--size must be >= 1; got {n}.")
    rng = np.random.default_rng(args.seed)
    g = 1.0 / rng.uniform(2e3, 1e4, (n, n))
    x = rng.uniform(0.0, 0.2, n)
    xbar = xs.Crossbar(g, r_wl=args.r_wire, r_bl=args.r_wire)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ideal = g.T @ x
    print(f"xbarsim demo: {n} x {n} crossbar, 2-10 kOhm devices, {args.r_wire:g} ohm wires, "
          f"1 ohm terminals, inputs in [0, 0.2] V")
    print(f"{'method':>8} {'iters':>6} {'time (s)':>9} {'rel. residual':>14} {'KCL error':>10} "
          f"{'MVM error vs G.T x':>19}")
    sols = {}
    for method in ("mg", "pcg", "direct"):
        if method == "mg" and args.r_wire == 0:
            continue
        t0 = time.perf_counter()
        sol = xs.solve(xbar, **drives, method=method)
        dt = time.perf_counter() - t0
        sols[method] = sol
        err = np.linalg.norm(sol.i_out - ideal) / np.linalg.norm(ideal)
        print(f"{method:>8} {sol.iterations:>6d} {dt:>9.3f} {sol.residual:>14.2e} "
              f"{sol.kcl_error:>10.1e} {err:>19.4%}")
    ref = sols["direct"].i_out
    for method, sol in sols.items():
        if method != "direct":
            diff = np.max(np.abs(sol.i_out - ref)) / np.max(np.abs(ref))
            print(f"{method} vs direct: max relative difference of outputs {diff:.1e}")
    drop = float(np.max(x[:, None] - sols["direct"].v_wl))
    print(f"worst word-line IR drop: {drop * 1e3:.2f} mV")
    return 0
