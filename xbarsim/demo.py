"""``xbarsim demo``: one read of a crossbar, solved three ways, reported.

A quick end-to-end check of an install: a 256 x 256 array of 2-10 kOhm
devices on 1 ohm wires and terminals, driven with random inputs, solved by
the multigrid CG, the line-relaxation CG and the sparse direct solve; prints
iterations, times, agreement, Kirchhoff error and the MVM error against the
ideal product ``G.T @ x``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .cli import check_r_wire, help_text, seed_arg


DIRECT_MAX = 512
"""Largest N the demo solves with the sparse direct method unless asked
(``--direct``): SuperLU's fill grows faster than the array, and at 1024 it
already takes about a minute on 2 cores, against a fraction of a second for
the iterative solvers."""


def register(subparsers):
    p = subparsers.add_parser(
        "demo", help="solve one crossbar read three ways and report",
        description=help_text(__doc__.split("\n", 2)[2]),
        epilog=f"The direct solve runs only up to N = {DIRECT_MAX} unless --direct is given.")
    p.add_argument("--size", type=int, default=256, metavar="N", help="array size N (N x N), default 256")
    p.add_argument("--r-wire", type=float, default=1.0, metavar="OHM",
                   help="word- and bit-line segment resistance, ohms (default 1)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="SEED", help="seed of the random conductances and inputs (default 0)")
    p.add_argument("--direct", action="store_true",
                   help=f"also run the sparse direct solve above N = {DIRECT_MAX} (slow, memory-hungry)")
    p.set_defaults(func=run)


def run(args):
    import xbarsim as xs
    from . import _memory

    n = args.size
    if n < 1:
        raise xs.ParameterError(f"--size must be >= 1; got {n}.")
    # before "warming up the solvers"; devices of 2-10 kOhm, 1 ohm terminals
    check_r_wire(args.r_wire, gmax=1.0 / 2e3, terminal=1.0)
    methods = [m for m in ("mg", "pcg", "direct")
               if not (m == "mg" and args.r_wire == 0) and not (m == "direct" and n > DIRECT_MAX and not args.direct)]
    # Refuse before allocating: the demo's own arrays (G, its inverse draw,
    # the ideal product) plus the hungriest solve it will run.
    need = 3 * 8 * n * n + max(_memory.estimate(m, n, n, 1) for m in methods)
    _memory.require(need, f"the {n} x {n} demo", "give a smaller --size" +
                    (" or leave out --direct" if "direct" in methods and n > DIRECT_MAX else ""))

    # A first run compiles the kernels (tens of seconds); do it on a small
    # array so that the times below are solve times, not compile times: one
    # with multigrid levels where the real solve has them (a 4 x 4 array is
    # its own coarsest level; `xbarsim.solve.warm_up_shape`)
    from .solve import WIRE_DEVICE_RATIO_MAX, warm_up, wire_device_ratio

    print("xbarsim demo: warming up the solvers (the first run of an install compiles them)...", file=sys.stderr,
          flush=True)
    for method in methods:
        # the kernels of resistive or ideal wires, at most 1 ohm: with the
        # real --r-wire above 1e7 the warm-up's 1e-4 S devices made pcg and
        # mg refuse it (wires that outweigh the devices) before any row
        r = min(args.r_wire, 1.0)
        warm_up((n, n), method, r, r, r_terminal=1.0)

    rng = np.random.default_rng(args.seed)
    g = 1.0 / rng.uniform(2e3, 1e4, (n, n))
    x = rng.uniform(0.0, 0.2, n)
    xbar = xs.Crossbar(g, r_wl=args.r_wire, r_bl=args.r_wire)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ideal = g.T @ x
    print(f"xbarsim demo: {n} x {n} crossbar, 2-10 kOhm devices, {args.r_wire:g} ohm wires, "
          f"1 ohm terminals, inputs in [0, 0.2] V")
    print(f"{'method':>8} {'iters':>6} {'time (s)':>9} {'rel. residual':>14} {'KCL error':>10} "
          f"{'MVM error vs G.T x':>19}", flush=True)
    sols = {}
    failed = {}
    # pcg and mg are refused where the wires outweigh the devices
    # (`xbarsim.solve.WIRE_DEVICE_RATIO_MAX`): a row each, not the run's end
    outweighed = wire_device_ratio(xbar) > WIRE_DEVICE_RATIO_MAX
    for method in methods:
        if outweighed and method in ("pcg", "mg"):
            failed[method] = (f"{method} refused: a wire segment outweighs its line's strongest device by more "
                              f"than {WIRE_DEVICE_RATIO_MAX:g} (r g)")
            print(f"{method:>8} refused: the wires outweigh the devices beyond what it is held to", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            sol = xs.solve(xbar, **drives, method=method)
        except xs.ConvergenceError as exc:
            # a row that says so, not the run's end: pcg on 1e6 ohm wires
            # stopped the demo after its first row, advising options the
            # demo does not have
            failed[method] = exc
            print(f"{method:>8} did not converge in {exc.iterations} iterations", flush=True)
            continue
        dt = time.perf_counter() - t0
        sols[method] = sol
        err = np.linalg.norm(sol.i_out - ideal) / np.linalg.norm(ideal)
        print(f"{method:>8} {sol.iterations:>6d} {dt:>9.3f} {sol.residual:>14.2e} "
              f"{sol.kcl_error:>10.1e} {err:>19.4%}", flush=True)
    if "direct" not in methods:
        print(f"(direct solve skipped above N = {DIRECT_MAX}; --direct runs it)")
    if "mg" not in methods:  # it was left out without a word
        print("(multigrid skipped: it needs every wire segment resistive, and --r-wire 0 makes them ideal)")
    if not sols:
        raise xs.ConvergenceError(f"no method solved this array ({next(iter(failed.values()))}); the demo "
                                  "takes no solver options: try a smaller --r-wire, --direct (the direct solve, "
                                  f"skipped above N = {DIRECT_MAX}), or `xbarsim solve --method direct`.")
    if failed:
        print(f"({', '.join(failed)}: the wires are far more resistive than the devices, where line relaxation "
              "converges slowly and its error estimate misses the lines' slow mode; `xbarsim solve --method "
              "direct` solves such arrays)")
    ref_name = next(m for m in ("direct", "pcg", "mg") if m in sols)
    ref = sols[ref_name].i_out
    for method, sol in sols.items():
        if method != ref_name:
            diff = np.max(np.abs(sol.i_out - ref)) / np.max(np.abs(ref))
            print(f"{method} vs {ref_name}: max relative difference of outputs {diff:.1e}")
    drop = float(np.max(x[:, None] - sols[ref_name].v_wl))
    print(f"worst word-line IR drop, input to far end (its 1 ohm terminal included): {drop * 1e3:.2f} mV")
    # a newcomer read the large MVM error as a fault of the install
    print("(the MVM error is the circuit's, not the solvers': the methods agree above, and the wires' and "
          "terminals' IR drop moves every output from the ideal G.T x; see `xbarsim scale` for how it grows "
          "with the array and the wire resistance)")
    return 0
