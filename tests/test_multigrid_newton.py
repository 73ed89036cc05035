"""Multigrid-preconditioned CG, damped Newton for sinh devices, re-solves."""

import dataclasses
import re

import numpy as np
import pytest

import xbarsim as xs
from xbarsim import _newton as newton_module
from xbarsim._multigrid import MultigridPreconditioner
from xbarsim._pcg import VTOL_PER_TOL
from xbarsim.circuit import build_network
from xbarsim.spice import ngspice_available, run_ngspice

from problems import (REL, Circuit, assert_within_voltage_bound, check_sinh_column, kcl_violations,
                      rounding_floor)
from threads import with_threads


def _random(rng, M, N, r=1.0, v0=None, open_frac=0.0):
    g = 1.0 / rng.uniform(2e3, 1e4, (M, N))
    g[rng.random((M, N)) < open_frac] = 0.0
    r_wl = rng.uniform(0.5 * r, 1.5 * r, (M, N - 1))
    r_bl = rng.uniform(0.5 * r, 1.5 * r, (M - 1, N))
    return xs.Crossbar(g, r_wl=r_wl, r_bl=r_bl, v0=v0)


def _close(a, b, rtol):
    scale = np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("shape", [(40, 70), (33, 17), (64, 64)])
def test_mg_matches_direct_on_odd_shapes(shape):
    rng = np.random.default_rng(sum(shape))
    M, N = shape
    xbar = _random(rng, M, N, r=2.0, open_frac=0.05)
    x = rng.uniform(-0.3, 0.3, (M, 3))
    floating = rng.random(M) < 0.2
    drives = dict(left=xs.Drive(x, r=0.0), right=xs.Drive(0.1, r=5.0, floating=floating),
                  top=xs.Drive(0.0, r=2.0, floating=rng.random(N) < 0.5), bottom=xs.Drive(0.0, r=1.0))
    mg = xs.solve(xbar, **drives, method="mg")
    ref = xs.solve(xbar, **drives, method="direct")
    net = build_network(xbar, **drives)
    assert MultigridPreconditioner(net).depth >= 2  # at least one coarse level
    for name in ("v_wl", "v_bl", "i_out"):
        _close(getattr(mg, name), getattr(ref, name), 1e-9)
    for end in ("left", "top", "bottom"):
        _close(mg.i_terminal[end], ref.i_terminal[end], 1e-9)
    assert mg.kcl_error < 1e-9


@pytest.mark.parametrize("shape", [(9, 14), (16, 16), (7, 3)])
def test_coarsening_without_fixed_nodes_takes_the_unmasked_path_with_the_same_values(shape):
    """A level with no fixed node (every drive behind a resistance) is
    coarsened without masks (what `Level.coarsen` picks for it); that gives
    exactly the arrays of the general masked coarsening."""
    from xbarsim._multigrid import _fine_level

    rng = np.random.default_rng(shape[0])
    M, N = shape
    xbar = _random(rng, M, N, r=1.5, open_frac=0.1)
    net = build_network(xbar, left=xs.Drive(rng.uniform(0, 0.3, M), r=2.0),
                        right=xs.Drive(0.0, r=3.0, floating=rng.random(M) < 0.5),
                        bottom=xs.Drive(0.0, r=1.0))
    level = _fine_level(net)
    assert not (level.fixed[0].any() or level.fixed[1].any())
    fast, general = level.coarsen(masked=False), level.coarsen(masked=True)
    assert fast.shape == general.shape
    np.testing.assert_array_equal(fast.g, general.g)
    for k in (0, 1):
        np.testing.assert_array_equal(fast.seg[k], general.seg[k])
        np.testing.assert_array_equal(fast.shunt[k], general.shunt[k])
        np.testing.assert_array_equal(fast.fixed[k], general.fixed[k])
    # with an ideal drive the level has fixed nodes and keeps the masked path
    fixed_net = build_network(xbar, left=xs.Drive(0.2, r=0.0), bottom=xs.Drive(0.0, r=1.0))
    assert _fine_level(fixed_net).fixed[0].any()


def test_a_coarse_level_is_the_galerkin_product_of_the_fine_free_nodes():
    """The module docstring's coarse level, against ``C = P^T A_ff P`` (A_ff:
    the fine matrix over the free nodes, whose diagonal holds every
    conductance to a fixed node; P: piecewise constant over the 2 x 2
    blocks): the coarse devices are C's word-line to bit-line couplings, the
    coarse wires WIRE_SCALE times its couplings along a line, and the
    shunts its row sums. Ideal drives on both layers (fixed nodes on either
    end of a block) and 10 ohm devices on 1 ohm wires (devices to fixed
    nodes a tenth of the wires). Counting a device with one fixed end as a
    coarse device, a segment into a fixed node as a coarse wire, a fixed
    node's own couplings as a shunt, or leaving out the devices into fixed
    nodes all left CG's iterations as they were (changes of 1e-4 to 4e-3 in
    a step's contraction) (found by mutation testing)."""
    import scipy.sparse as sp

    from xbarsim._multigrid import WIRE_SCALE, _fine_level

    M, N = 7, 9
    rng = np.random.default_rng(1)
    g = 1.0 / rng.uniform(10.0, 50.0, (M, N))
    xbar = xs.Crossbar(g, r_wl=rng.uniform(0.5, 2.0, (M, N - 1)), r_bl=rng.uniform(0.5, 2.0, (M - 1, N)))
    net = build_network(xbar, left=xs.Drive(rng.uniform(0, 0.3, M), r=2.0), right=xs.Drive(0.0),
                        top=xs.Drive(0.1), bottom=xs.Drive(0.0, r=3.0))
    fine = _fine_level(net)
    assert fine.fixed[0].any() and fine.fixed[1].any()
    coarse = fine.coarsen()
    A = fine.matrix()  # over every fine node, numbered as `Level.matrix` says
    free = np.concatenate([fine.fixed[0].ravel() == 0, fine.fixed[1].ravel() == 0])
    # P: fine node -> its coarse node (same numbering on the coarse shape)
    Mc, Nc = coarse.shape
    agg = np.concatenate([((np.arange(M)[:, None] // 2) * Nc + np.arange(N)[None, :] // 2).ravel(),
                          (Mc * Nc + (np.arange(N)[:, None] // 2) * Mc + np.arange(M)[None, :] // 2).ravel()])
    P = sp.csr_matrix((np.ones(free.sum()), (np.flatnonzero(free), agg[free])), shape=(2 * M * N, 2 * Mc * Nc))
    C = (P.T @ A @ P).toarray()
    cwl = np.arange(Mc * Nc).reshape(Mc, Nc)
    cbl = Mc * Nc + np.arange(Nc * Mc).reshape(Nc, Mc)
    scale = np.abs(C).max()
    np.testing.assert_allclose(-C[cwl, cbl.T], coarse.g, rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(-WIRE_SCALE * C[cwl[:, :-1], cwl[:, 1:]], coarse.seg[0], rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(-WIRE_SCALE * C[cbl[:, :-1], cbl[:, 1:]], coarse.seg[1], rtol=1e-12, atol=1e-14 * scale)
    coarse_free = np.concatenate([coarse.fixed[0].ravel() == 0, coarse.fixed[1].ravel() == 0])
    np.testing.assert_array_equal(coarse_free, np.asarray(P.sum(axis=0)).ravel() > 0)  # fixed: no free fine node
    shunts = np.concatenate([coarse.shunt[0].ravel(), coarse.shunt[1].ravel()])
    np.testing.assert_allclose(shunts[coarse_free], C.sum(axis=1)[coarse_free], rtol=1e-9, atol=1e-12 * scale)


def _mg_iterations_and_worst_steps(drives):
    """`mg`'s iterations and worst per-iteration contraction of the residual
    on random 32^2, 64^2 and 128^2 arrays (2-10 kohm devices, 1 ohm wires),
    driven by ``drives(rng, n)`` (the keyword arguments of `xs.solve`)."""
    its, worst = [], []
    for n in (32, 64, 128):
        rng = np.random.default_rng(n)
        g = 1.0 / rng.uniform(2e3, 1e4, (n, n))
        sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), **drives(rng, n), method="mg")
        its.append(sol.iterations)
        h = sol.residual_history
        worst.append(float(np.max(h[1:] / h[:-1])))
    return its, worst


def test_mg_iterations_stay_flat():
    """Iterations do not grow with the array (the multigrid's point), and
    every iteration cuts the residual by at least 200x (the worst step
    measured: 1.8e-3, at 128^2). Coarse wires at the Galerkin conductance
    (WIRE_SCALE 1) or a resistive end's shunt put at the wrong node of the
    fine level still converged within 6 iterations, to the same answers,
    but their worst steps were 1.4e-2 and 1.2e-2 (found by mutation
    testing: speed only)."""
    its, worst = _mg_iterations_and_worst_steps(
        lambda rng, n: dict(left=xs.Drive(rng.uniform(0, 0.3, n), r=1.0), bottom=xs.Drive(0.0, r=1.0)))
    assert max(its) <= 6, its
    assert max(worst) <= 5e-3, worst


def _preconditioner(n, batch, w_cycle, monkeypatch, seed=0):
    """A multigrid preconditioner of an n x n array with fixed nodes (an
    ideal drive on the word lines) and shunts (100 ohm ends), its W-cycle
    moved down to small levels when ``w_cycle`` (at the default it starts
    at 1024^2)."""
    from xbarsim import _multigrid

    if w_cycle:
        monkeypatch.setattr(_multigrid, "W_MIN_CELLS", 64)
    rng = np.random.default_rng(seed)
    xbar = _random(rng, n, n)
    net = build_network(xbar, left=xs.Drive(rng.uniform(0, 0.3, (n, batch))), right=xs.Drive(0.0, r=100.0),
                        bottom=xs.Drive(0.0, r=100.0))
    pre = MultigridPreconditioner(net)
    assert pre.uses_w_cycle == w_cycle and pre.levels[0].fixed[0].any()
    return pre, rng


@pytest.mark.parametrize("w_cycle", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_multigrid_preconditioner_is_symmetric(batch, w_cycle, monkeypatch):
    """CG needs a symmetric preconditioner: <M r1, r2> = <r1, M r2> on the
    free nodes, to rounding. A fixed node's residual restricted to the
    coarse level (whose correction is never prolonged back to it) broke this
    at 2e-5, and a coarse correction that overwrote the fine one instead of
    adding to it at 1e-3 to 0.1 (found by mutation testing: the first left
    every solve's iterations as they were)."""
    n = 96
    pre, rng = _preconditioner(n, batch, w_cycle, monkeypatch)
    free = [lev == 0 for lev in pre.levels[0].fixed]

    def residual():
        return [rng.standard_normal((n, n, batch)) * f[:, :, None] for f in free]

    def apply(r):
        z = [np.zeros((n, n, batch)) for _ in r]
        pre.apply(r[0], r[1], z[0], z[1])
        return z

    r1, r2 = residual(), residual()
    z1, z2 = apply(r1), apply(r2)
    for b in range(batch):
        d12 = sum(np.sum(z[:, :, b] * r[:, :, b]) for z, r in zip(z1, r2))
        d21 = sum(np.sum(z[:, :, b] * r[:, :, b]) for z, r in zip(z2, r1))
        assert abs(d12 - d21) <= 1e-12 * (abs(d12) + abs(d21)), (b, d12, d21)
        # and positive definite
        assert sum(np.sum(z[:, :, b] * r[:, :, b]) for z, r in zip(z1, r1)) > 0


@pytest.mark.parametrize("batch", [1, 3])
def test_a_coarse_levels_operator_is_its_kirchhoff_sum(batch, monkeypatch):
    """`neg_matvec` on a coarse level (what the W-cycle's second visit
    applies) against the sum `kcl_residual` documents, written in numpy:
    the devices' g (other - x), the wire segments', minus the shunt to
    ground. One column takes the kernel's single-line
    path, a batch its general path; with the general path's shunt sign
    flipped, a batch of three at 100 ohm ends took 8-10 iterations instead
    of 5 (found by mutation testing)."""
    from xbarsim._pcg import neg_matvec

    pre, rng = _preconditioner(64, batch, True, monkeypatch)
    lev = pre.levels[1]
    assert lev.shunt[0].any() and not lev.fixed[0].any()  # the fine level's fixed nodes became shunts
    lay_wl, lay_bl = lev.layers()
    M, N = lev.shape
    x = rng.standard_normal((M, N, batch))
    other = rng.standard_normal((N, M, batch))
    q = np.full((M, N, batch), np.nan)
    neg_matvec(lay_wl, lev.g, lev.shunt[0], x, other, q)
    seg = lev.seg[0][:, :, None]
    want = lev.g[:, :, None] * (other.transpose(1, 0, 2) - x) - lev.shunt[0][:, :, None] * x
    want[:, 1:] += seg * (x[:, :-1] - x[:, 1:])
    want[:, :-1] += seg * (x[:, 1:] - x[:, :-1])
    np.testing.assert_allclose(q, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


def test_w_cycle_that_loses_definiteness_falls_back_to_the_v_cycle():
    """Strong IR drop (100 ohm segments, 1024^2: the smallest array whose
    multigrid has a W-cycle level): the W-cycle stopped being positive
    definite and CG stalled near 1e-6 for thousands of iterations. Now the
    preconditioner falls back to the V-cycle and the solve converges, to the
    answer of the independent line-preconditioned CG. The normal regime
    (1 ohm) keeps its W-cycle."""
    n = 1024
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-4, 5e-4, (n, n))
    drives = dict(left=xs.Drive(rng.uniform(0, 0.2, n), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    strong = xs.Crossbar(g, r_wl=100.0, r_bl=100.0)
    sol = xs.solve(strong, **drives, method="mg", keep_factors=True, maxiter=200)
    assert sol._preconditioner.cycle == 1  # fell back
    assert sol.kcl_error < 1e-12
    ref = xs.solve(strong, **drives, method="pcg")
    np.testing.assert_allclose(sol.i_out, ref.i_out, rtol=1e-9, atol=1e-9 * np.abs(ref.i_out).max())
    normal = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), **drives, method="mg", keep_factors=True)
    assert normal._preconditioner.uses_w_cycle and normal.iterations <= 6


@pytest.mark.parametrize("r_wl, r_bl", [(0.0, 1.0), (1.0, 0.0)])
def test_mg_refuses_ideal_wire_segments(r_wl, r_bl):
    """Ideal segments on either layer are refused (`_multigrid.supports`);
    checking the word lines alone let a 20 x 20 mg solve with ideal bit-line
    segments run (found by mutation testing)."""
    g = np.full((20, 20), 1e-4)
    with pytest.raises(xs.ParameterError, match="mg"):
        xs.solve(xs.Crossbar(g, r_wl=r_wl, r_bl=r_bl), left=xs.Drive(0.1), bottom=xs.Drive(0.0), method="mg")


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    xbar = _random(rng, 48, 40)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, (48, 2)), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    out = {k: with_threads(k, lambda: {m: xs.solve(xbar, **drives, method=m).i_out for m in ("mg", "pcg")})
           for k in (1, 2)}
    first, *rest = out.values()
    for other in rest:
        for m in first:
            assert np.array_equal(first[m], other[m])


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_sinh_results_do_not_depend_on_thread_count(method, monkeypatch):
    """Newton's steps, source stepping's stages (a 3 V column on 0.1 V
    devices, 30 V0) and a re-solve give the same bits on one and two
    threads."""
    rng = np.random.default_rng(8)
    M, N = 24, 20
    xbar = _random(rng, M, N, v0=0.1)
    x = np.stack([rng.uniform(0.0, 0.3, M), np.full(M, 3.0)], axis=1)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    changed = xbar.g * np.where(rng.random((M, N)) < 0.02, 1.5, 1.0)
    stepped = []
    real = newton_module._source_stepping
    monkeypatch.setattr(newton_module, "_source_stepping", lambda *a: stepped.append(1) or real(*a))

    def run():
        sol = xs.solve(xbar, **drives, method=method, keep_factors=True)
        again = sol.resolve(changed)
        return [sol.v_wl, sol.v_bl, sol.i_out, again.v_wl, again.v_bl, again.i_out]

    one = with_threads(1, run)
    two = with_threads(2, run)
    assert stepped  # the 3 V column ran source stepping (on both thread counts)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------- nonlinear


def _assert_every_node_balances(xbar, drives, sol, v0):
    """Kirchhoff's law at every node group, with the element currents
    computed from the returned voltages (tests/problems.py), not from the
    package: ``kcl_error`` sums the terminal currents only."""
    circuit = Circuit(g=xbar.g, r_wl=xbar.r_wl, r_bl=xbar.r_bl, drives=drives)
    worst, scale = kcl_violations(circuit, sol.v_wl, sol.v_bl, sol.i_terminal, v0=v0)
    assert worst <= REL * scale + rounding_floor(circuit), (worst, scale)


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_sinh_strong_case_kirchhoff_and_power(method):
    """V0 = 0.1 V, programming-level drives of +-2 V, 0 ohm terminals and a
    floating line: converges, agrees with ngspice, satisfies KCL, conserves
    power."""
    rng = np.random.default_rng(11)
    M, N = 18, 20
    xbar = _random(rng, M, N, r=1.0, v0=0.1)
    v = np.zeros(M)
    v[3] = 2.0
    v[7] = -2.0
    drives = dict(left=xs.Drive(v, r=0.0, floating=np.arange(M) == 12),
                  bottom=xs.Drive(0.0, r=0.0), top=xs.Drive(0.5, r=10.0))
    sol = xs.solve(xbar, **drives, method=method)
    # The reference is ngspice where it is installed (direct would compare
    # itself with itself); the KCL check below is independent either way.
    ref = run_ngspice(xbar, **drives) if ngspice_available() else xs.solve(xbar, **drives, method="direct")
    # 1e-9, the solve contract, as test_sinh_against_ngspice (it was 1e-8 on the
    # currents alone, where the methods are within 2e-12; found by review)
    for name in ("i_out", "v_wl", "v_bl"):
        _close(getattr(sol, name), getattr(ref, name), 1e-9)
    assert sol.kcl_error < 1e-9
    _assert_every_node_balances(xbar, drives, sol, v0=0.1)
    np.testing.assert_allclose(sol.power_supplied(), sol.power_dissipated(), rtol=1e-12)
    vd = sol.v_wl - sol.v_bl
    np.testing.assert_allclose(sol.i_device, xbar.g * 0.1 * np.sinh(vd / 0.1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_newton_on_the_direct_inner_solver_starts_from_the_linear_solution(seed):
    """Newton's linear start on the direct inner solver was measured
    against the sinh zero state's residual (1e11 times the linear one's
    under 2 V on 0.05 V devices), passed at 0 iterations and stayed the
    zero state: 41-42 Newton steps on this 8 x 8 V/2 pulse against 31-33
    from the other inner solvers (found by the speed review). The same
    start gives the same step counts, give or take rounding."""
    rng = np.random.default_rng(seed)
    xbar = xs.Crossbar(1 / rng.uniform(2e3, 1e4, (8, 8)), 100.0, 100.0, v0=0.05)
    drives = xs.pulse_drives((8, 8), (2, 4), 2.0, "V/2")
    steps = {m: xs.solve(xbar, **drives, method=m).iterations for m in ("pcg", "mg", "direct")}
    assert abs(steps["direct"] - steps["pcg"]) <= 2, steps
    assert steps["direct"] <= 35, steps


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_a_zero_state_whose_currents_overflow_their_norm_is_refused_and_says_so(method):
    """One device of V0 = 5 mV on a V/2-pulsed row (2 V): with the free
    nodes at 0 V it sees 400 V0, whose current squared overflows the norm
    the solve measures its residual against. It was refused (measured
    against the small-signal zero state instead, a circuit whose solution
    keeps devices at 500 V0 came back with a node 0.36 A out of balance;
    found by review); the free nodes are now put at the middle of the ideal
    drives' range instead (1 V: 200 V0), a state a common shift of the
    drives moves with them (a shift of 2-3 V made circuits that solve
    unshifted refuse; found by review), and it solves as ngspice does. At
    V0 = 2.5 mV that state overflows too (400 V0): a ConvergenceError that
    says where the overflow is, and with a terminal resistance on the drives
    the circuit solves."""
    g = np.full((8, 8), 1e-4)
    drives = xs.pulse_drives((8, 8), (2, 5), 2.0, "V/2")
    resistive = {k: None if d is None else xs.Drive(d.v, r=1.0, floating=d.floating) for k, d in drives.items()}
    for a, refused in ((0.005, False), (0.0025, True)):
        v0 = np.full((8, 8), 0.1)
        v0[2, 0] = a
        xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=v0)
        if refused:
            with pytest.raises(xs.ConvergenceError, match="with the free nodes at 0 V, and at the middle of the "
                               "ideal drives' range, the states Newton measures"):
                xs.solve(xbar, method=method, **drives)
        for given in ((resistive,) if refused else (drives, resistive)):
            sol = xs.solve(xbar, method=method, **given)
            _assert_every_node_balances(xbar, given, sol, v0=v0)
            if ngspice_available():
                _close(sol.i_out, run_ngspice(xbar, **given).i_out, 1e-9)


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_a_solution_with_devices_at_500_v0_is_refused_not_returned_wrong(method):
    """A floating bit line between +1 V and -1 V through two devices of V0 =
    2 mV (1e210 A each way): measured against the small-signal zero state,
    the solve returned WL 0's far node at 0.637 V (ngspice: 0.955 V) with
    0.36 A of imbalance, the stopping test's rounding floor set by the
    devices' slope G cosh(500) (found by review). At V0 = 2.5 mV it solves."""
    g = np.full((2, 2), 1e-4)
    drives = dict(left=xs.Drive(np.array([1.0, -1.0])),
                  bottom=xs.Drive(np.zeros(2), floating=np.array([True, False])))
    for a in (0.0015, 0.002):
        xbar = xs.Crossbar(g, r_wl=1.0, r_bl=np.array([[0.0, 1.0]]), v0=np.array([[a, 0.1], [a, 0.1]]))
        with pytest.raises(xs.ConvergenceError, match="device currents overflow double precision"):
            xs.solve(xbar, method=method, **drives)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=np.array([[0.0, 1.0]]), v0=np.array([[0.0025, 0.1], [0.0025, 0.1]]))
    sol = xs.solve(xbar, method=method, **drives)
    # checked without ngspice too (outside CI it is optional; found by review)
    _assert_every_node_balances(xbar, drives, sol, v0=xbar.v0)
    if ngspice_available():
        ref = run_ngspice(xbar, **drives)
        np.testing.assert_allclose(sol.v_wl[0, 1], ref.v_wl[0, 1], rtol=1e-9)
        _close(sol.i_out, ref.i_out, 1e-9)


@pytest.mark.skipif(not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)")
@pytest.mark.parametrize("layer", ["bit", "word"])
def test_line_sums_are_not_taken_where_sinh_currents_cancel_on_the_line(layer):
    """A 0-ohm group of a line driven at one end, between two lines 2 V
    apart through devices of V0 = 20 mV: 7 A flows through it each way. The
    line sum of the device currents (the reported end current where a
    line's devices are weak) cancelled them to 14 A where 6.2 mA flows, and
    a word line's end read 0 A where 0.50 A flows, because the rule compared
    G, not the slope G cosh(V / V0) (found by review)."""
    if layer == "bit":
        xbar = xs.Crossbar(np.array([[1e-4], [2e-4], [1e-4]]), r_bl=np.array([[0.0], [1.0]]),
                           v0=np.array([[0.02], [0.02], [0.1]]))
        drives = dict(left=xs.Drive(np.array([1.0, -1.0, 0.5])), bottom=xs.Drive(0.0))
    else:
        xbar = xs.Crossbar(np.full((1, 3), 1e-4), r_wl=np.array([[1.0, 0.0]]), v0=np.array([[0.1, 0.02, 0.02]]))
        drives = dict(left=xs.Drive(0.5), bottom=xs.Drive(np.array([0.0, 1.0, -1.0])))
    ref = run_ngspice(xbar, **drives)
    for method in ("direct", "pcg"):
        sol = xs.solve(xbar, method=method, **drives)
        for name in drives:
            _close(sol.i_terminal[name], ref.i_terminal[name], 1e-9)


def test_a_hard_driven_batch_column_leaves_a_gentle_ones_end_currents_alone():
    """1 pS sinh devices on 1 ohm wires (the line sums' case): a second
    batch column driving a 20 mV V0 device at 1.2 V sent the first
    column's end currents back to the node sums, 3.8e-6 off its own solve
    and a 40-digit one (found by review); the choice is per column now."""
    g = np.full((2, 2), 1e-12)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=np.array([[0.02, 0.5], [0.5, 0.5]]))
    x = np.array([0.05, 0.2])
    alone = xs.solve(xbar, left=xs.Drive(x), bottom=xs.Drive(0.0))
    both = xs.solve(xbar, left=xs.Drive(np.stack([x, [1.2, 0.2]], 1)), bottom=xs.Drive(0.0))
    for name in ("left", "bottom"):
        _close(both.i_terminal[name][:, 0], alone.i_terminal[name], 1e-12)
    np.testing.assert_allclose(both.power_supplied()[0], both.power_dissipated()[0], rtol=1e-12)
    # each column on its own is Kirchhoff for its word lines: the device currents' sums
    np.testing.assert_allclose(alone.i_terminal["left"], alone.i_device.sum(axis=1), rtol=1e-14)


@pytest.mark.parametrize("volts", [6.0, 8.0, 100.0])
def test_sinh_drive_of_many_v0_converges_with_every_method(volts):
    """A drive of 60 to 1000 V0 through 1 ohm terminals and wires: the
    answer is mild (at most ~1.6 V across a device, the wires take the
    rest), but the linear start puts cosh(60) to overflow into Newton's
    first Jacobian, which SuperLU called singular and the multigrid's
    coarsest level not positive definite (bare RuntimeError / LinAlgError).
    Source stepping finds it: every method agrees, Kirchhoff and power hold,
    and each device satisfies its sinh law at the returned voltages."""
    g = np.full((3, 4), 1e-4)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(volts, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sols = {m: xs.solve(xbar, **drives, method=m) for m in ("direct", "pcg", "mg")}
    for m, sol in sols.items():
        _close(sol.i_out, sols["direct"].i_out, 1e-9)
        assert sol.kcl_error < 1e-9
        _assert_every_node_balances(xbar, drives, sol, v0=0.1)
        np.testing.assert_allclose(sol.power_supplied(), sol.power_dissipated(), rtol=1e-12)
        vd = sol.v_wl - sol.v_bl
        assert np.max(np.abs(vd)) < 2.0
        np.testing.assert_allclose(sol.i_device, g * 0.1 * np.sinh(vd / 0.1), rtol=1e-12, atol=0)
    # the wires and terminals carry the drive: each word line's current is
    # below volts / (its 1 ohm source), and well above a device's own
    total = np.sum(sols["direct"].i_out)
    assert 0.05 * volts < total < 3 * volts


def test_sinh_drive_of_1000_v0_converges_on_a_64x64_array_with_the_default_step_cap():
    """The same 100 V drive on a 64 x 64 array of 100-500 uS devices: the
    source-stepping stage at 66 % of the drives rises to a residual of 7.5
    and then falls 1.3-1.8x per step; a stall test of 8 steps without
    halving, and a cap of 100 Newton steps, made pcg give up (README probe).
    Every method now agrees with the direct solve."""
    g = np.random.default_rng(0).uniform(1e-4, 5e-4, (64, 64))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(np.full(64, 100.0), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ref = xs.solve(xbar, **drives, method="direct")
    for method in ("pcg", "mg"):
        sol = xs.solve(xbar, **drives, method=method)
        _close(sol.i_out, ref.i_out, 1e-9)
        # power balance as elsewhere in the suite (was 1e-8; 2.1e-13 measured with mg)
        np.testing.assert_allclose(sol.power_supplied(), sol.power_dissipated(), rtol=1e-12)


def test_sinh_drive_that_overflows_between_fixed_nodes_is_a_clear_error():
    """A device between two ideal (0 ohm) drives 1000 V0 apart carries a
    current beyond double precision: a ConvergenceError saying so, not NaN."""
    xbar = xs.Crossbar(np.full((2, 2), 1e-4), r_wl=1.0, r_bl=1.0, v0=0.1)
    for method in ("direct", "pcg"):
        with pytest.raises(xs.ConvergenceError, match="overflow"):
            xs.solve(xbar, left=xs.Drive(100.0), bottom=xs.Drive(0.0), method=method)


def _polished_by_mpmath(g, v0, volts, v_wl, v_bl, digits=60):
    """Node voltages of the circuit of
    `test_a_device_between_fixed_nodes_does_not_set_the_free_nodes_accuracy`
    (ideal drive `volts` on every word line's left end, ideal 0 V at every bit
    line's bottom end, 1 ohm wires) by Newton in `digits` digits, started from
    (v_wl, v_bl). The energy is strictly convex, so the root is unique:
    wherever Newton lands, it is the answer."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = digits
    M, N = g.shape
    free = [("w", i, j) for i in range(M) for j in range(1, N)] + [("b", i, j) for i in range(M - 1) for j in range(N)]
    pos = {k: n for n, k in enumerate(free)}
    V0, V = mp.mpf(float(v0)), mp.mpf(float(volts))

    def volt(x, k):
        if k[0] == "w" and k[2] == 0:
            return V
        if k[0] == "b" and k[1] == M - 1:
            return mp.mpf(0)
        return x[pos[k]]

    def fj(x):
        F = mp.matrix(len(free), 1)
        J = mp.matrix(len(free), len(free))

        def flow(a, b, cur, dcur):  # current cur from a to b
            for node, sign in ((a, -1), (b, 1)):
                if node in pos:
                    F[pos[node]] += sign * cur
                    J[pos[node], pos[node]] -= dcur
            if a in pos and b in pos:
                J[pos[a], pos[b]] += dcur
                J[pos[b], pos[a]] += dcur
        for i in range(M):
            for j in range(N):
                if j < N - 1:
                    a, b = ("w", i, j), ("w", i, j + 1)
                    flow(a, b, volt(x, a) - volt(x, b), 1)
                if i < M - 1:
                    a, b = ("b", i, j), ("b", i + 1, j)
                    flow(a, b, volt(x, a) - volt(x, b), 1)
                a, b = ("w", i, j), ("b", i, j)
                vd = volt(x, a) - volt(x, b)
                flow(a, b, mp.mpf(g[i, j]) * V0 * mp.sinh(vd / V0), mp.mpf(g[i, j]) * mp.cosh(vd / V0))
        return F, J

    x = mp.matrix([mp.mpf(float(v_wl[i, j] if t == "w" else v_bl[i, j])) for t, i, j in free])
    for _ in range(100):
        F, J = fj(x)
        d = mp.lu_solve(J, -F)
        t = mp.mpf(1)
        while mp.norm(fj(x + t * d)[0]) >= mp.norm(F) and t > mp.mpf(10) ** -40:
            t /= 2
        x = x + t * d
        if mp.norm(d) < mp.mpf(10) ** -40:
            break
    out_wl, out_bl = np.array(v_wl, dtype=float), np.array(v_bl, dtype=float)
    for k, n in pos.items():
        (out_wl if k[0] == "w" else out_bl)[k[1], k[2]] = float(x[n])
    return out_wl, out_bl


@pytest.mark.parametrize("volts", [20.0, 50.0])
def test_a_device_between_fixed_nodes_does_not_set_the_free_nodes_accuracy(volts):
    """Ideal drives fix both nodes of device (M-1, 0) (word line M-1's left
    end, bit line 0's bottom end). Under 67 and 167 V0 it carries 1e24 and
    1e67 A, and that current, taken into the stopping test's scale, made
    every free node's imbalance look negligible: Newton returned bit-line
    voltages 6 V off (15.80 V for 15.84 V, pcg 9.59 V) and, at 167 V0,
    -9.95e13 V between drives of 0 and 50 V (found by review). Every method
    now gives the 60-digit answer."""
    g = np.random.default_rng(0).uniform(1e-4, 5e-4, (3, 4))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.3)
    for method in ("direct", "pcg", "mg"):
        sol = xs.solve(xbar, left=xs.Drive(volts), bottom=xs.Drive(0.0), method=method)
        ref_wl, ref_bl = _polished_by_mpmath(g, 0.3, volts, sol.v_wl, sol.v_bl)
        assert np.max(np.abs(sol.v_wl - ref_wl)) <= 1e-9 * volts, method
        assert np.max(np.abs(sol.v_bl - ref_bl)) <= 1e-9 * volts, method
        assert 0.0 <= sol.v_bl.min() and sol.v_wl.max() <= volts


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_sinh_solution_scales_exactly_with_drives_and_v0(method):
    """``G V0 sinh(V / V0)`` scales with V and V0 together, so drives and V0
    both times 2^-600 give node voltages and currents times 2^-600, to the
    bit (Newton works at unit drive). In volts, Newton's squared norms
    underflowed at drives of 1e-170 V and it returned its start with a
    residual of 0: i_out 100 % off (found by review)."""
    g = np.random.default_rng(3).uniform(1e-4, 5e-4, (4, 5))
    v = np.array([0.7, 0.2, 0.45, 0.6])
    s = 2.0 ** -600
    ref = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=0.5, v0=0.3), left=xs.Drive(v, r=2.0),
                   bottom=xs.Drive(0.0, r=1.0), method=method)
    tiny = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=0.5, v0=0.3 * s), left=xs.Drive(v * s, r=2.0),
                    bottom=xs.Drive(0.0, r=1.0), method=method)
    assert np.max(np.abs(ref.v_wl - ref.v_bl)) > 0.3  # a nonlinear solve: sinh(1) is 18 % off linear
    np.testing.assert_array_equal(tiny.v_wl, ref.v_wl * s)
    np.testing.assert_array_equal(tiny.v_bl, ref.v_bl * s)
    np.testing.assert_array_equal(tiny.i_out, ref.i_out * s)


@pytest.mark.parametrize("v0", [5e-324, np.array([[0.1, 1e-310], [0.1, 0.1]])])
def test_a_subnormal_v0_is_refused_when_the_crossbar_is_built(v0):
    """A subnormal V0 was taken and ran a solve of 47-122 s to "source
    stepping failed at 0 %" (found by review); the smallest normal V0 (the
    scaling test above goes to 7e-182 V) is still taken."""
    with pytest.raises(xs.ParameterError, match=r"v0 must be at least 2.23e-308 V \(a normal double\)"):
        xs.Crossbar(np.full((2, 2), 1e-4), r_wl=1.0, r_bl=1.0, v0=v0)
    xs.Crossbar(np.full((2, 2), 1e-4), r_wl=1.0, r_bl=1.0, v0=np.finfo(float).tiny)


@pytest.mark.parametrize("tiny_g", [1e-310, 5e-324])
@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_a_floating_ideal_line_held_by_subnormal_devices_is_refused_by_name(tiny_g, method):
    """A floating line of ideal wire held only by subnormal conductances
    ended in "PCG produced a non-finite residual ... this is a bug" (the
    line factor's reciprocal overflowed; found by review). Refused, naming
    the line; the smallest normal conductance and open devices beside a
    normal one still solve, and so does the same subnormal row when driven
    (test_spice checks such a device against ngspice). Floating behind
    resistive wire, such a line is refused as a weak tie (FLOATING_TIE)."""
    g = np.full((8, 8), 1e-4)
    g[3, :] = tiny_g
    g[3, 5] = 0.0
    drives = dict(left=xs.Drive(0.2, floating=np.arange(8) == 3), bottom=0.0)
    with pytest.raises(xs.ParameterError, match=r"WL\[3\] floats \(no driven end\) on ideal wire and is held "
                       r"only by devices below 2.23e-308 S \(subnormal doubles; the strongest on WL\[3\] is"):
        xs.solve(xs.Crossbar(g, r_wl=0.0, r_bl=1.0), **drives, method=method)
    # the same row driven, on resistive wire: the subnormal devices are taken
    sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), left=xs.Drive(0.2), bottom=0.0, method=method)
    assert np.all(np.isfinite(sol.v_wl)) and np.all(np.isfinite(sol.i_out))
    for ok in (np.finfo(float).tiny, 1e-4):
        g2 = g.copy()
        g2[3, 2] = ok
        sol = xs.solve(xs.Crossbar(g2, r_wl=0.0, r_bl=1.0), **drives, method=method)
        assert np.all(np.isfinite(sol.v_wl)) and np.all(np.isfinite(sol.i_out))
        if ok == 1e-4:  # the line sits where its one normal device holds it: at that device's bit-line node
            np.testing.assert_allclose(sol.v_wl[3], sol.v_bl[3, 2], rtol=1e-9)


def test_a_tiny_terminal_resistance_is_refused_without_an_overflow_warning():
    """1 / 1e-310 overflowed with a RuntimeWarning before the terminal's
    resistance was refused by name (found by review)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(xs.ParameterError, match=r"left.r has a resistance of 1e-310 ohms; below 1e-100"):
            xs.solve(xs.Crossbar(np.full((4, 4), 1e-4), r_wl=1.0, r_bl=1.0), left=xs.Drive(0.2, r=1e-310),
                     bottom=0.0)


def test_a_per_cell_v0_far_above_the_drive_stays_finite_at_unit_drive():
    """Per-cell V0 of 1e300 V (linear cells) beside one of 0.1 V, under 1e-9
    V: divided to unit drive the 1e300 became inf and the solve a false
    overflow error (found by review). Every cell is linear to an ulp here, so
    the answer is the linear crossbar's."""
    g = np.full((3, 3), 1e-3)
    v0 = np.full((3, 3), 1e300)
    v0[0, 0] = 0.1
    drives = dict(left=xs.Drive([1e-9, -1e-9, 5e-10]), bottom=xs.Drive(0.0))
    lin = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), method="direct", **drives)
    for method in ("direct", "pcg", "mg"):
        sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=v0), method=method, **drives)
        np.testing.assert_allclose(sol.i_out, lin.i_out, rtol=1e-9, atol=0)  # outputs: 1e-9 (README)


def test_sinh_far_below_v0_is_solved_as_the_linear_law():
    """Drives 1e-300 V under V0 = 1e10 V: sinh is linear far below an ulp,
    and the answer is the linear crossbar's. Newton's unit scaling would
    put V0 at 1e310 (inf); the old build returned i_out 100 % off."""
    g = np.array([[1e-4, 2e-4], [3e-4, 4e-4]])
    lin = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), left=xs.Drive(1.0), bottom=xs.Drive(0.0), method="direct")
    for method in ("direct", "pcg", "mg"):
        sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=1e10), left=xs.Drive(1e-300),
                       bottom=xs.Drive(0.0), method=method)
        np.testing.assert_allclose(sol.i_out, lin.i_out * 1e-300, rtol=1e-12, atol=0)


def test_sinh_node_voltages_meet_the_linear_solves_accuracy():
    """Bit lines that float, held only through their devices (ideal bit-line
    wire): the Kirchhoff residual alone passed Newton with node voltages
    ~1e-10 of the drive off. Newton now also demands, as the linear solves
    do (`AccuracyCheck`), that the next correction be within 10 tol of the
    largest drive: every node is at the drive, 0.32 V, to 1e-11 relative."""
    rng = np.random.default_rng(0)
    for seed in range(4):
        g = np.random.default_rng(seed).uniform(1e-4, 1e-3, (7, 4))
        xbar = xs.Crossbar(g, r_wl=1.0, r_bl=0.0, v0=0.1)
        x = rng.uniform(0.1, 0.4)
        for method in ("direct", "pcg"):
            sol = xs.solve(xbar, left=xs.Drive(x), method=method, tol=1e-12)
            assert np.max(np.abs(sol.v_wl - x)) <= 1e-11 * x
            assert np.max(np.abs(sol.v_bl - x)) <= 1e-11 * x


def _review_sinh_circuits():
    """Sinh circuits (V0 = 0.1 V, drives to 1.9 V, 0-100 ohm per-segment
    wire, ideal and resistive ends) on which Newton returned voltages 3.1x
    and 3.2x outside the bound with the line-relaxation inner solve, and a
    third (below) 1.5x with multigrid."""
    g = np.array([[0.0059, 0.0089, 0.008, 0.0088], [0.0005, 0.0034, 0.006, 0.0045], [0.0006, 0.0053, 0.008, 0.0049]])
    rw = np.array([[66.2879, 90.2586, 82.0726], [43.8662, 20.4749, 93.2038], [47.5528, 98.177, 53.0255]])
    rb = np.array([[75.5971, 49.3077, 21.9923, 45.6302], [34.5332, 34.227, 47.0299, 44.3568]])
    a = (xs.Crossbar(g, r_wl=rw, r_bl=rb, v0=0.1),
         dict(left=xs.Drive([-0.8808, -1.1121, -0.8052], r=1.0),
              right=xs.Drive([1.7547, -1.0582, 0.4248], r=[0.0, 12.086, 0.0]),
              top=xs.Drive([-1.8085, 1.3811, 1.8456, -0.5597], r=[42.0797, 45.4022, 1.527, 37.0125])), 1e-12)
    g = np.array([[0.0078, 0.006, 0.006, 0.0075], [0.0099, 0.0035, 0.0099, 0.0015]])
    rw = np.array([[86.0364, 52.6871, 11.8906], [51.4066, 6.9619, 75.797]])
    rb = np.array([[8.3133, 21.9065, 75.0629, 79.4989]])
    b = (xs.Crossbar(g, r_wl=rw, r_bl=rb, v0=0.1),
         dict(left=xs.Drive([0.9778, 1.9806], r=1.0), right=xs.Drive([1.8321, 0.6283], r=[0.0, 5.5401]),
              top=xs.Drive([0.8037, -1.0582, -0.139, 0.3016], r=[0.0, 4.3424, 21.3223, 25.3285])), 1e-6)
    # a 17 x 13 array (V0 = 0.166 V, drives to 2 V, 0-100 ohm wire) on which
    # multigrid Newton stopped 1.5x outside the bound at tol 1e-4 on one cycle
    # of the last step's hierarchy (found by the review of the first fix)
    rng = np.random.default_rng(0)
    M, N = (int(k) for k in rng.integers(1, 20, 2))
    g = rng.uniform(1e-4, 1e-2, (M, N))
    v0 = float(rng.uniform(0.1, 1.0))
    rw, rb = rng.uniform(0, 100, (M, N - 1)), rng.uniform(0, 100, (M - 1, N))

    def drive(n):
        r = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0, 50, n))
        return xs.Drive(rng.uniform(-2, 2, n), r=r)

    drives = dict(left=drive(M), top=drive(N))
    if rng.random() < 0.5:
        drives["right"] = drive(M)
    if rng.random() < 0.3:
        drives["bottom"] = drive(N)
    c = (xs.Crossbar(g, r_wl=rw, r_bl=rb, v0=v0), drives, 1e-4)
    return a, b, c


@pytest.mark.parametrize("method", ["pcg", "mg", "direct"])
def test_sinh_voltages_are_within_the_bound_with_every_inner_solve(method):
    """Newton stopped when one application of the last step's preconditioner
    (z) was within the voltage bound; one line-relaxation sweep is a weak
    stand-in for the Jacobian's inverse, and z fell 3x short of the error
    (found by review). Every method now meets 10 tol of the largest node
    voltage against a tol = 1e-14 direct solve (within 1e-15 V of ngspice)."""
    for xbar, drives, tol in _review_sinh_circuits():
        ref = xs.solve(xbar, **drives, method="direct", tol=1e-14)
        sol = xs.solve(xbar, **drives, method=method, tol=tol)
        vmax = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
        err = max(np.abs(sol.v_wl - ref.v_wl).max(), np.abs(sol.v_bl - ref.v_bl).max())
        assert err <= 10 * tol * vmax


def test_sinh_reduces_to_linear_for_large_v0():
    rng = np.random.default_rng(2)
    xbar = _random(rng, 12, 9)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.01, 12), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    lin = xs.solve(xbar, **drives, method="direct")
    nl = xs.solve(xs.Crossbar(xbar.g, xbar.r_wl, xbar.r_bl, v0=100.0), **drives, method="direct")
    _close(nl.i_out, lin.i_out, 1e-8)


@pytest.mark.parametrize("method", ["pcg", "direct"])
def test_sinh_batch_equals_columns(method):
    """Each column of a sinh batch is solved as it is alone, at its own unit
    drive (`_unit_drive`: drives and V0 divided by a power of two at or
    above the column's largest drive). Column 3, of 1e-170 V drives beside
    columns of up to 0.3 V, scaled by column 0's drive, had its squared norms
    underflow, its start pass as converged and its i_out come back 100 %
    off (found by mutation testing: the resistive ends' voltages of column
    0 read for every column)."""
    rng = np.random.default_rng(3)
    xbar = _random(rng, 10, 7, v0=0.25)
    x = rng.uniform(0, 0.3, (10, 3))
    x = np.hstack([x, rng.uniform(0.5, 1.0, (10, 1)) * 1e-170])
    both = xs.solve(xbar, left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0), method=method)
    for b in range(4):
        one = xs.solve(xbar, left=xs.Drive(x[:, b], r=1.0), bottom=xs.Drive(0.0, r=1.0), method=method)
        _close(both.i_out[:, b], one.i_out, 1e-10)


@pytest.mark.ngspice
@pytest.mark.skipif(not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinh_against_ngspice(seed):
    rng = np.random.default_rng(100 + seed)
    M, N = rng.integers(2, 7, size=2)
    v0 = rng.uniform(0.1, 0.5, (M, N))
    xbar = _random(rng, M, N, r=rng.uniform(0.5, 5.0), v0=v0, open_frac=0.1)
    drives = dict(left=xs.Drive(rng.uniform(-1.0, 1.0, M), r=rng.uniform(0, 2)), bottom=xs.Drive(0.0, r=1.0),
                  top=xs.Drive(0.2, r=3.0, floating=rng.random(N) < 0.5))
    ref = run_ngspice(xbar, **drives)  # all three seeds are well posed: a refusal is a failure
    for method in ("direct", "pcg"):
        sol = xs.solve(xbar, **drives, method=method)
        # 1e-9, the solve contract (the issue asks 1e-6; measured worst 3.4e-11 over these seeds)
        _close(sol.i_out, ref.i_out, 1e-9)
        _close(sol.v_wl, ref.v_wl, 1e-9)
        _close(sol.v_bl, ref.v_bl, 1e-9)


# ---------------------------------------------------------------- re-solves


@pytest.mark.parametrize("method", ["mg", "pcg", "direct"])
def test_resolve_matches_cold_solve(method):
    rng = np.random.default_rng(7)
    xbar = _random(rng, 40, 36)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, 40), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method=method)
    g2 = xbar.g.copy()
    g2[5, 7] *= 1.5
    g2[20, 30] = 1e-4
    warm = sol.resolve(g2)
    cold = xs.solve(xbar.with_g(g2), **drives, method="direct")
    _close(warm.i_out, cold.i_out, 1e-9)
    _close(warm.v_bl, cold.v_bl, 1e-9)
    assert warm.method == sol.method


@pytest.mark.parametrize("method", ["mg", "pcg"])
def test_resolve_with_kept_factors_refreshes_the_fine_level_only(method):
    """keep_factors=True: the re-solve reuses the coarse multigrid levels
    (the same objects), recomputes the fine line factors for the new
    conductances, and still matches a cold direct solve."""
    rng = np.random.default_rng(8)
    xbar = _random(rng, 48, 40)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, 48), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method=method, keep_factors=True)
    g2 = xbar.g.copy()
    idx = rng.choice(g2.size, g2.size // 100, replace=False)
    g2.flat[idx] = 1.0 / rng.uniform(2e3, 1e4, idx.size)
    warm = sol.resolve(g2)
    cold = xs.solve(xbar.with_g(g2), **drives, method="direct")
    _close(warm.i_out, cold.i_out, 1e-9)
    _close(warm.v_wl, cold.v_wl, 1e-9)
    old, new = sol._preconditioner, warm._preconditioner
    if method == "mg":
        assert len(old.levels) > 2
        assert all(a is b for a, b in zip(old.levels[1:], new.levels[1:]))
        assert all(a is b for a, b in zip(old.factors[1:], new.factors[1:]))
        assert new.levels[0].g is not old.levels[0].g
        fine_old, fine_new = old.factors[0][0], new.factors[0][0]
    else:
        fine_old, fine_new = old.wl, new.wl
    assert fine_new.g is warm.network.g
    assert not np.array_equal(fine_new.invden, fine_old.invden)


def test_kept_factors_are_kept_through_a_direct_re_solve():
    """An auto solve with keep_factors=True, re-solved with devices that
    outweigh the wires 2e3-fold (direct, which keeps no factors), then with
    the first conductances again (pcg): the last re-solve kept no factors,
    since the request lived only in the factors the direct one dropped
    (found by review)."""
    rng = np.random.default_rng(3)
    g = 1.0 / rng.uniform(2e3, 1e4, (40, 40))
    xbar = xs.Crossbar(g, r_wl=1e5, r_bl=1e5)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, 40), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, keep_factors=True)
    assert sol.method == "pcg" and sol._preconditioner is not None
    strong = sol.resolve(np.full((40, 40), 0.02))
    assert strong.method == "direct"
    back = strong.resolve(g)
    assert back.method == "pcg" and back._preconditioner is not None
    assert back.resolve(g)._preconditioner is not None
    assert xs.solve(xbar, **drives).resolve(g)._preconditioner is None  # not asked for: none kept


def test_resolves_of_one_solution_in_threads_give_the_serial_answers():
    """Re-solves of one kept-factor mg solution, run at once in threads
    (the kernels release the GIL), give exactly the serial answers and
    iteration counts. The refreshed preconditioners shared the coarse
    levels' scratch vectors: each thread wrote the others' coarse
    corrections, 3 iterations became up to 672, the answers changed, and
    some re-solves ended in a false ConvergenceError (found by review)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(21)
    xbar = _random(rng, 96, 96)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, (96, 3)), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method="mg", keep_factors=True)
    assert len(sol._preconditioner.levels) > 2  # coarse levels with scratch vectors
    news = []
    for _ in range(12):
        g2 = xbar.g.copy()
        idx = rng.choice(g2.size, g2.size // 33, replace=False)
        g2.flat[idx] = 1.0 / rng.uniform(2e3, 1e4, idx.size)
        news.append(g2)
    serial = [sol.resolve(g) for g in news]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            threaded = list(pool.map(sol.resolve, news))
            assert [t.iterations for t in threaded] == [s.iterations for s in serial]
            for t, s in zip(threaded, serial):
                np.testing.assert_array_equal(t.v_wl, s.v_wl)
                np.testing.assert_array_equal(t.i_out, s.i_out)


def _floating_bit_lines_losing_their_ties(rng, M, N, n_float, strong, log_g=False):
    """An array whose floating bit lines are held by a few strong devices
    (the rest 1e-9 S), and the conductances after those strong ones dropped
    to 1e-9 S too: the re-solve's error then sits in the lines' common
    voltage, which one preconditioner application underestimates."""
    g = 10 ** rng.uniform(-4, -3, (M, N)) if log_g else rng.uniform(1e-4, 1e-3, (M, N))
    fl = np.zeros(N, bool)
    fl[rng.choice(N, n_float, replace=False)] = True
    for j in np.nonzero(fl)[0]:
        g[:, j] = 1e-9
        g[rng.choice(M, strong, replace=False), j] = 1e-3
    drives = dict(left=xs.Drive(rng.uniform(0, 1, M), r=1.0), bottom=xs.Drive(0.0, r=1.0, floating=fl),
                  top=xs.Drive(0.2, r=1.0, floating=fl))
    g2 = g.copy()
    g2[(g == 1e-3) & fl[None, :]] = 1e-9
    return g, g2, drives


def _tight_cold(g, drives):
    """The reference: a cold direct solve at the tightest tol (cold solves of
    such circuits are checked against exact rational and ngspice solves in
    test_solve_contract / test_spice; a dense float64 elimination here loses
    ~1e-8 to the 1e9 conductance ratio, and a 40-digit one takes minutes)."""
    return xs.solve(xs.Crossbar(g, 1.0, 1.0), **drives, method="direct", tol=1e-14)  # the least tol accepted


def _voltage_error(sol, ref):
    """Largest node-voltage error over the largest node voltage (the solve
    contract's measure: within 10 tol)."""
    vmax = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
    return max(np.abs(sol.v_wl - ref.v_wl).max(), np.abs(sol.v_bl - ref.v_bl).max()) / vmax


@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_mg_resolve_of_a_single_level_array_refactors_it(tol):
    """At <= 64 cells the multigrid hierarchy is one level, factored densely;
    `refresh_fine` kept that factor of the old conductances, and re-solves
    at tol 1e-5 to 1e-7 stopped 4 % off (the accuracy estimate used the
    stale inverse; found by review). Refactored, the preconditioner is the
    new ``A^-1`` and CG's first step is the answer (one iteration; two allowed
    for the rounding check at tol 1e-9): the stale factor since reached the
    bound too, through the accuracy check, but in 3 and 8 iterations (found
    by mutation testing)."""
    g, g2, drives = _floating_bit_lines_losing_their_ties(np.random.default_rng(0), 8, 8, 1, 3)
    sol = xs.solve(xs.Crossbar(g, 1.0, 1.0), **drives, method="mg", tol=tol, keep_factors=True)
    assert sol._preconditioner.depth == 1
    warm = sol.resolve(g2)
    assert warm._preconditioner is not None  # a re-solve with the kept (refreshed) factors
    assert _voltage_error(warm, _tight_cold(g2, drives)) <= 10 * tol
    assert warm.iterations <= 2, warm.residual_history


def test_the_voltage_bound_is_its_three_documented_terms():
    """`_pcg.voltage_bound`: ``vtol`` times the largest node voltage, that
    voltage counted as at least `VOLTAGE_FLOOR` of the largest drive, and
    never less than 8 ulp of the drive. At tol 1e-14 (`MIN_TOL`) the ulp
    floor is what holds; without it a 1 V drive through 1 Mohm onto an 8 x 8
    array (nodes at 0.52 mV) took a second mg and direct iteration chasing
    2e-16 V (found by mutation testing: speed only)."""
    from xbarsim._pcg import VOLTAGE_FLOOR, voltage_bound

    ulp8 = 8 * np.finfo(float).eps
    assert voltage_bound(1e-3, 0.5, 1.0) == 1e-3 * 0.5
    assert voltage_bound(1e-3, 1e-9, 2.0) == 1e-3 * VOLTAGE_FLOOR * 2.0
    assert voltage_bound(1e-13, 5.2e-4, 1.0) == ulp8
    assert voltage_bound(1e-13, 5.2e-4, 4.0) == 4 * ulp8
    np.testing.assert_array_equal(voltage_bound(1e-13, np.array([5.2e-4, 0.5]), np.array([1.0, 1.0])),
                                  [ulp8, max(ulp8, 1e-13 * 0.5)])


@pytest.mark.parametrize("start", ["x0", "resolve"])
def test_pcg_warm_starts_stop_inside_the_voltage_bound(start):
    """From a warm start, pcg stopped 1.22x outside the voltage bound (floating
    bit lines whose holding devices dropped to 1e-9 S; found by review): a
    warm start's estimate must now pass half the bound."""
    g, g2, drives = _floating_bit_lines_losing_their_ties(np.random.default_rng(21), 12, 20, 5, 2, log_g=True)
    old = xs.solve(xs.Crossbar(g, 1.0, 1.0), **drives, method="pcg", keep_factors=True)
    if start == "x0":
        warm = xs.solve(xs.Crossbar(g2, 1.0, 1.0), **drives, method="pcg", x0=old)
    else:
        warm = old.resolve(g2)
    assert _voltage_error(warm, _tight_cold(g2, drives)) <= 10 * 1e-12


@pytest.mark.parametrize("bad", ["0.05", float("nan"), -1, 1.5, True, None])
def test_resolve_checks_refactor_fraction_and_tol_first(bad):
    """A string was NumPy's bare error, NaN and -1 passed silently; tol was
    checked only after the fine level was refactored (found by review)."""
    sol = xs.solve(xs.Crossbar(np.full((3, 3), 1e-4), 1.0, 1.0), left=xs.Drive(0.1), bottom=xs.Drive(0.0),
                   method="mg", keep_factors=True)
    with pytest.raises(xs.ParameterError, match="refactor_fraction must be a number in"):
        sol.resolve(sol.network.g, refactor_fraction=bad)
    with pytest.raises(xs.ParameterError, match="tol must be"):
        sol.resolve("not even conductances", tol=-1)


def test_resolve_takes_refactor_fraction_one_and_the_first_solves_tol():
    """`Solution.resolve`: ``refactor_fraction`` is a number in [0, 1], so 1
    (reuse the kept factors whatever changed) is accepted, and ``tol``
    defaults to the first solve's, not to `DEFAULT_TOL`: a re-solve of a tol
    1e-3 solve is the same solve as one asked for tol 1e-3 explicitly, and
    not one run on to 1e-12 (found by mutation testing)."""
    g = np.full((8, 8), 2e-4)
    g2 = g.copy()
    g2[3, 4] = 1e-4
    drives = xs.read_drives(np.full(8, 0.2))
    sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), **drives, method="mg", keep_factors=True)
    whole = sol.resolve(g2, refactor_fraction=1)
    assert np.allclose(whole.i_out, sol.resolve(g2, refactor_fraction=0.5).i_out, rtol=1e-9, atol=0)
    for method in ("pcg", "mg", "direct"):
        loose = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), **drives, method=method, tol=1e-3)
        default, explicit = loose.resolve(g2), loose.resolve(g2, tol=1e-3)
        assert default.iterations == explicit.iterations, method
        assert default.residual == explicit.residual, method
        # the start already meets tol 1e-3 (one device of 64 changed by half): no iteration at all, where
        # a re-solve held to 1e-12 runs on
        assert default.iterations < loose.resolve(g2, tol=1e-12).iterations, method


def test_resolve_checks_new_open_devices():
    g = np.full((3, 3), 1e-4)
    sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0), left=xs.Drive(0.1), top=xs.Drive(0.0, floating=np.array([False, False, True])))
    g2 = g.copy()
    g2[:, 2] = 0.0
    with pytest.raises(xs.CircuitError) as err:
        sol.resolve(g2)
    assert err.value.bit_lines == [2]


@pytest.mark.parametrize("g_new, word", [
    (np.full((3, 4), 1e-4), "expected"),
    ([[1e-4] * 3, [1e-4] * 3, [1e-4] * 2], "g"),  # ragged: was NumPy's raw ValueError
    ("abc", "string"),
    (None, "None"),
])
def test_resolve_bad_conductances(g_new, word):
    g = np.full((3, 3), 1e-4)
    sol = xs.solve(xs.Crossbar(g), left=xs.Drive(0.1), bottom=xs.Drive(0.0))
    with pytest.raises(xs.ParameterError, match=word):
        sol.resolve(g_new)


@pytest.mark.filterwarnings("ignore:g holds conductances up to")  # large g on purpose
@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_resolve_checks_the_drive_range_against_the_new_conductances(method):
    """The currents that 1e300 S devices would carry overflow: `solve`
    refuses them before computing, and so must `resolve` (it skipped the
    check and computed)."""
    g = np.full((3, 3), 1e-4)
    sol = xs.solve(xs.Crossbar(g), left=xs.Drive(1e10), bottom=xs.Drive(0.0), method=method)
    g2 = g.copy()
    g2[1, 1] = 1e300
    with pytest.raises(xs.ParameterError, match="beyond double precision's range"):
        xs.solve(xs.Crossbar(g2), left=xs.Drive(1e10), bottom=xs.Drive(0.0), method=method)
    with pytest.raises(xs.ParameterError, match="beyond double precision's range"):
        sol.resolve(g2)


def test_coarsest_level_dense_cholesky_kernel_solves_and_refuses_indefinite():
    """The serial Cholesky of the coarsest level (kernels/multigrid.py)
    against NumPy, several right-hand sides; an indefinite matrix is refused,
    and so are a singular one (an exact zero pivot) and a NaN (refusing only
    negative pivots passed every test: found by mutation testing)."""
    from xbarsim.kernels.multigrid import cholesky_factor, cholesky_solve

    rng = np.random.default_rng(3)
    n = 37
    q = rng.normal(size=(n, n))
    a = q @ q.T + n * np.eye(n)
    r = rng.normal(size=(n, 3))
    lf = a.copy()
    assert cholesky_factor(lf)
    np.testing.assert_allclose(np.tril(lf), np.linalg.cholesky(a), rtol=1e-12, atol=1e-12)
    z = np.empty_like(r)
    cholesky_solve(lf, r, z)
    np.testing.assert_allclose(z, np.linalg.solve(a, r), rtol=1e-10, atol=1e-12)
    bad = a.copy()
    bad[5, 5] = -1.0
    assert not cholesky_factor(bad)
    assert not cholesky_factor(np.ones((2, 2)))  # second pivot 1 - 1 * 1 = 0 exactly
    assert not cholesky_factor(np.full((1, 1), np.nan))


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_a_sinh_device_between_two_resistive_terminals_carries_the_current_of_its_law(method):
    """One sinh device, driven through 100 ohm at its word line's left end
    and sensed through 100 ohm at its bit line's bottom end: the current
    ``I`` solves ``I = G V0 sinh((V - 2 R I) / V0)`` (docs/CIRCUIT.md). The
    methods share Newton's residual (`kcl_residual`) and agree with each
    other whatever it says, so only the device law itself checks it: with
    the device current's sign flipped in the residual of a line without
    ideal wire, Newton did not converge here, and a 4 x 5 array came back
    with bit-line currents 4-7 % off at a Kirchhoff error of 1e-15, all
    three methods alike (found by mutation testing)."""
    from scipy.optimize import brentq

    g, v0, v, r = 1e-3, 0.25, 0.8, 100.0
    want = brentq(lambda i: i - g * v0 * np.sinh((v - 2 * r * i) / v0), 0.0, v / (2 * r), xtol=1e-18, rtol=1e-15)
    sol = xs.solve(xs.Crossbar(np.full((1, 1), g), v0=v0), method=method, left=xs.Drive(v, r=r),
                   bottom=xs.Drive(0.0, r=r))
    np.testing.assert_allclose(sol.i_out, [want], rtol=1e-9)
    np.testing.assert_allclose(sol.i_device, [[want]], rtol=1e-9)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("ends", ["left", "right", "both"])
def test_line_solves_are_exact_where_every_bit_line_node_is_fixed(grouped, ends):
    """Ideal bit lines held at their bottom by ideal drives fix every
    bit-line node: the word lines decouple, and the line preconditioner's
    word-line solve (kernels/lines.py: each line's Thomas factors, its
    resistive ends on the diagonal, ideal-wire groups merged) is the exact
    inverse, so pcg stops after 2 iterations, on word lines with and without
    0 ohm segments and terminals of unequal resistance at either or both
    ends. The grouped factor adding the left terminal's conductance at the
    right end took 6 iterations to the same voltages: within tol, the count
    alone tells (found by mutation testing)."""
    rng = np.random.default_rng(4)
    M, N = 5, 9
    g = rng.uniform(1e-4, 5e-4, (M, N))
    r_wl = rng.uniform(0.5, 3.0, (M, N - 1))
    if grouped:
        r_wl[:, 1::3] = 0.0
    xbar = xs.Crossbar(g, r_wl=r_wl, r_bl=0.0)
    drives = dict(bottom=xs.Drive(rng.uniform(-0.1, 0.1, N), r=0.0))
    if ends in ("left", "both"):
        drives["left"] = xs.Drive(rng.uniform(0.0, 0.3, M), r=rng.uniform(1.0, 30.0, M))
    if ends in ("right", "both"):
        drives["right"] = xs.Drive(rng.uniform(0.0, 0.3, M), r=rng.uniform(100.0, 3000.0, M))
    sol = xs.solve(xbar, method="pcg", **drives)
    ref = xs.solve(xbar, method="direct", **drives)
    _close(sol.v_wl, ref.v_wl, 1e-9)
    assert sol.iterations <= 2, sol.iterations


@pytest.mark.parametrize("batch", [1, 3])
def test_device_current_kernel_matches_the_device_law_and_flags_non_finite_voltages(batch):
    """kernels.operator.device_currents (tiles of word lines, the bit-line
    voltages gathered per tile) against the CIRCUIT.md laws on an odd shape;
    a NaN node voltage clears the flag of its tile only."""
    from xbarsim.kernels.lines import TILE
    from xbarsim.kernels.operator import device_currents

    rng = np.random.default_rng(5)
    M, N = 19, 7
    g = rng.uniform(1e-4, 5e-4, (M, N))
    v0 = rng.uniform(0.2, 0.5, (M, N))
    v_wl = rng.uniform(-0.3, 0.3, (M, N, batch))
    v_bl = rng.uniform(-0.3, 0.3, (N, M, batch))
    dv = v_wl - v_bl.transpose(1, 0, 2)
    for nonlinear, want in ((False, g[:, :, None] * dv),
                            (True, g[:, :, None] * v0[:, :, None] * np.sinh(dv / v0[:, :, None]))):
        out = np.empty_like(v_wl)
        finite = np.ones(-(-M // TILE), dtype=np.bool_)
        device_currents(g, v0, nonlinear, v_wl, v_bl, out, finite)
        np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-20)
        assert finite.all()
    v_bl[2, TILE + 1, 0] = np.nan  # word line TILE + 1 sits in tile 1
    finite = np.ones(-(-M // TILE), dtype=np.bool_)
    device_currents(g, v0, False, v_wl, v_bl, np.empty_like(v_wl), finite)
    assert finite.tolist() == [True, False, True]
    # a NaN bit-line voltage at an open device (whose current is 0 at any
    # voltage) still clears its tile's flag: the docstring's "either layer"
    # (checking the word-line side alone passed every test; found by
    # mutation testing)
    v_bl[2, TILE + 1, 0] = 0.0
    i = 2 * TILE + 1
    g_open = g.copy()
    g_open[i, 3] = 0.0
    v_bl[3, i, 0] = np.nan
    out = np.empty_like(v_wl)
    finite = np.ones(-(-M // TILE), dtype=np.bool_)
    device_currents(g_open, v0, False, v_wl, v_bl, out, finite)
    assert out[i, 3, 0] == 0.0
    assert finite.tolist() == [True, True, False]
    v_bl[3, i, 0] = 0.0
    # finite voltages whose sinh current overflows clear their tile's flag
    # too (the linear law of the same voltages does not): the currents'
    # check dropped, every solve test still passed, the pre-checks of the
    # drives catching such circuits first (found by mutation testing)
    v_bl[2, TILE + 1, 0] = 0.0
    i = 2 * TILE + 1
    v_wl[i, 4, batch - 1] = 800 * v0[i, 4]
    for nonlinear, flags in ((True, [True, True, False]), (False, [True, True, True])):
        out = np.empty_like(v_wl)
        finite = np.ones(-(-M // TILE), dtype=np.bool_)
        device_currents(g, v0, nonlinear, v_wl, v_bl, out, finite)
        assert finite.tolist() == flags
        assert np.isinf(out[i, 4, batch - 1]) == nonlinear


@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (17, 3), (16, 24)])
def test_tiled_transpose_equals_numpy(shape):
    from xbarsim.circuit import transposed

    a = np.random.default_rng(6).normal(size=shape)
    t = transposed(a)
    assert t.flags.c_contiguous
    np.testing.assert_array_equal(t, a.T)


def test_coarsest_level_dense_and_sparse_factors_solve_alike(monkeypatch):
    """Level.factor_direct's two routes (serial dense Cholesky up to
    DENSE_SERIAL_MAX unknowns, SuperLU beyond, as a larger coarsest_cells
    gives) solve the same level to the same answer, with fixed nodes."""
    import xbarsim._multigrid as M

    rng = np.random.default_rng(7)
    xbar = _random(rng, 12, 10, r=2.0, open_frac=0.05)
    net = build_network(xbar, left=xs.Drive(rng.uniform(0, 0.3, 12), r=0.0), bottom=xs.Drive(0.0, r=1.0))
    level = M.MultigridPreconditioner(net, coarsest_cells=10_000).levels[-1]  # the fine level itself
    assert level.shape == (12, 10)
    r_wl = rng.normal(size=(12, 10, 2))
    r_bl = rng.normal(size=(10, 12, 2))
    out = []
    for limit in (10_000, 0):
        monkeypatch.setattr(M, "DENSE_SERIAL_MAX", limit)
        level.factor_direct()
        assert (level._dense is not None) == (limit > 0) and (level._lu is not None) == (limit == 0)
        z_wl, z_bl = np.empty_like(r_wl), np.empty_like(r_bl)
        level.solve_direct(r_wl, r_bl, z_wl, z_bl)
        out.append((z_wl, z_bl))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-10, atol=1e-12 * np.abs(out[1][0]).max())
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-10, atol=1e-12 * np.abs(out[1][1]).max())


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
@pytest.mark.parametrize("v0", [None, 0.25])
def test_warm_starts_and_resolves_keep_ideal_drives_in_volts(method, v0):
    """x0= and Solution.resolve start from the old voltages in volts, while
    linear solves work at unit drive (a power of two): the fixed nodes of
    ideal drives were divided by it twice, so an ideal 0.2 V drive came back
    at 0.8 V and every current 4x (found by review). Both now equal a fresh
    solve, drives exactly."""
    rng = np.random.default_rng(7)
    g = rng.uniform(1e-4, 5e-4, (6, 5))
    g2 = g.copy()
    g2[2, 3] *= 1.5
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=v0)
    drives = dict(left=xs.Drive(np.linspace(0.1, 0.2, 6)), bottom=xs.Drive(0.0),
                  right=xs.Drive(np.full(6, 0.15), r=np.where(np.arange(6) % 2, 2.0, 0.0)))
    sol = xs.solve(xbar, method=method, keep_factors=True, **drives)
    fresh = xs.solve(xbar.with_g(g2), method=method, **drives)
    for other in (sol.resolve(g2), xs.solve(xbar.with_g(g2), method=method, x0=sol, **drives)):
        np.testing.assert_array_equal(other.v_wl[:, 0], np.linspace(0.1, 0.2, 6))
        np.testing.assert_allclose(other.v_wl, fresh.v_wl, rtol=0, atol=1e-11)
        np.testing.assert_allclose(other.i_out, fresh.i_out, rtol=1e-9)


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
@pytest.mark.parametrize("v0", [None, 0.1])
def test_a_warm_start_never_makes_the_answer_worse(method, v0):
    """x0= from a circuit whose answer is far from this one's (found by
    review): all-zero drives returned the old voltages as converged (scale
    0); an x0 from drives 1e6 times larger ended outside the accuracy bound;
    an x0 with other ideal (0 ohm) segments left nodes of this circuit's
    ideal wire apart. Each now equals a fresh solve; an x0 holding NaN is a
    ParameterError."""
    g = np.random.default_rng(8).uniform(1e-4, 5e-4, (4, 4))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=v0)
    drives = dict(left=xs.Drive(np.array([0.1, 0.2, 0.3, 0.25]), r=100.0), bottom=xs.Drive(0.0))
    prev = xs.solve(xbar, method=method, **drives)
    zero = xs.solve(xbar, left=xs.Drive(0.0), bottom=xs.Drive(0.0), method=method, x0=prev)
    assert np.all(zero.v_wl == 0.0) and np.all(zero.i_out == 0.0)
    if v0 is None:
        big = xs.solve(xbar, method=method, left=xs.Drive(drives["left"].v * 1e6, r=100.0), bottom=xs.Drive(0.0))
        fresh = xs.solve(xbar, method=method, **drives)
        warm = xs.solve(xbar, method=method, x0=big, **drives)
        np.testing.assert_allclose(warm.v_wl, fresh.v_wl, rtol=0, atol=1e-11 * 0.3)
        np.testing.assert_allclose(warm.i_out, fresh.i_out, rtol=1e-9)
        if method != "mg":  # mg needs every segment resistive
            joined = xs.Crossbar(g, r_wl=0.0, r_bl=1.0)
            fresh = xs.solve(joined, method=method, **drives)
            warm = xs.solve(joined, method=method, x0=prev, **drives)
            assert np.all(warm.v_wl == warm.v_wl[:, :1])  # one voltage per ideal word line
            np.testing.assert_allclose(warm.i_out, fresh.i_out, rtol=1e-9)
    bad = dataclasses.replace(prev, v_wl=np.where(np.arange(4) == 2, np.nan, prev.v_wl))
    with pytest.raises(xs.ParameterError, match="NaN or inf"):
        xs.solve(xbar, method=method, x0=bad, **drives)


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_a_newton_warm_start_at_the_zero_state_is_dropped(method):
    """README: a warm start no closer than the zero state (by its Kirchhoff
    residual) is dropped. An x0 of all zeros is the zero state itself (the
    drives fix their own nodes), so the solve is the cold one, bit for bit.
    Kept (``start <= scale``), Newton started from it under drives of up to
    300 V0 without source stepping: 292 steps in place of 46 with "pcg",
    and "direct" refused a singular Jacobian (found by mutation testing)."""
    g = np.random.default_rng(8).uniform(1e-4, 5e-4, (4, 4))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.05)
    drives = dict(left=xs.Drive(np.array([5.0, 10.0, 15.0, 12.0])), bottom=xs.Drive(0.0))
    cold = xs.solve(xbar, method=method, **drives)
    zero = dataclasses.replace(cold, v_wl=np.zeros_like(cold.v_wl), v_bl=np.zeros_like(cold.v_bl))
    warm = xs.solve(xbar, method=method, x0=zero, **drives)
    assert warm.iterations == cold.iterations
    np.testing.assert_array_equal(warm.v_wl, cold.v_wl)
    np.testing.assert_array_equal(warm.v_bl, cold.v_bl)


def test_warm_started_newton_evaluates_the_start_residual_once(monkeypatch):
    """The residual at a kept warm start (checked against the zero state)
    is the first Newton residual too: computed once, not twice."""
    import xbarsim._newton as newton

    rng = np.random.default_rng(5)
    g = 1.0 / rng.uniform(2e3, 1e4, (6, 5))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.25)
    drives = dict(left=xs.Drive(rng.uniform(0.0, 0.3, 6), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method="pcg")
    g2 = g.copy()
    g2[2, 3] *= 1.5
    calls = []
    real = newton.residual

    def counting(net, v_wl, v_bl, f_wl, f_bl):
        calls.append(v_wl.copy())  # Newton updates its voltages in place
        return real(net, v_wl, v_bl, f_wl, f_bl)

    monkeypatch.setattr(newton, "residual", counting)
    warm = xs.solve(xbar.with_g(g2), **drives, method="pcg", x0=sol)
    start = calls[0]  # the warm start's word-line voltages (sol's, at the solver's unit drive)
    np.testing.assert_allclose(start[:, :, 0] * (sol.v_wl[0, 0] / start[0, 0, 0]), sol.v_wl, rtol=1e-14)
    assert sum(np.array_equal(v, start) for v in calls) == 1
    cold = xs.solve(xbar.with_g(g2), **drives, method="pcg")
    np.testing.assert_allclose(warm.i_out, cold.i_out, rtol=1e-9)


def test_a_far_warm_start_that_defeats_newton_falls_back_to_a_cold_solve():
    """A 4 x 2 array (V0 = 0.1 V) under drives of up to 55 V0 solves cold
    (source stepping), but warm-started from the solution under other
    drives it raised ConvergenceError at Newton step 1 in every method: the
    warm start skips source stepping (found by review). Such a start is now
    dropped and the column solved cold."""
    xbar = xs.Crossbar(np.array([[0.003810134059447757, 0.006358283151454612], [0.00021014946045269517, 0.0003169005778661855], [0.006521573835182146, 0.0002083542043054005], [0.00409981810088538, 0.0033110521510200997]]), r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(np.array([4.643388024872982, -1.2663707864945204, -2.7074108870614113, -4.258076388478841]), r=1.0),
                  right=xs.Drive(np.array([[-3.3876620777535096, -3.329311476891488], [-0.7504025364094407, -2.908336074718908], [2.036234155670936, 2.286827090489954], [-1.9300706864057204, -0.9462325328005639]]), r=1.0),
                  top=xs.Drive(np.array([[-1.9663610845765929, 2.9902771188827852], [-4.514455936150542, -5.548905396878648]]), r=1.0),
                  bottom=xs.Drive(np.array([[-1.0039179973179166, 3.7762445124262563], [-0.17514127175285932, 3.649580037661721]]), r=1.0))
    other = dict(top=xs.Drive(np.array([[-2.04528019024603, 5.819469459021743], [-3.9379240005415954, -5.288995243036054]]), r=100.0))
    x0 = xs.solve(xbar, **other, method="direct", tol=1e-9)
    ref = xs.solve(xbar, **drives, method="direct", tol=1e-14)
    vmax = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
    for method in ("direct", "pcg"):
        sol = xs.solve(xbar, **drives, method=method, tol=1e-9, x0=x0)
        assert max(np.abs(sol.v_wl - ref.v_wl).max(), np.abs(sol.v_bl - ref.v_bl).max()) <= 1e-8 * vmax


def test_the_cold_retry_of_a_failed_warm_start_keeps_to_the_columns_maxiter(monkeypatch):
    """The cold retry got a fresh maxiter (warm and cold together could take
    twice the per-column cap) and counted the warm attempt's steps from the
    error, which holds every column's (found by review)."""
    import xbarsim._newton as nw
    from xbarsim.exceptions import ConvergenceError

    real = nw._newton_column
    calls = []

    def warm_fails_after_7_steps(col, tol, maxiter, callback, start, inner, history):
        calls.append((start is not None, maxiter))
        if start is not None:
            history.extend([1.0] * 8)  # its start's residual, then 7 steps
            raise ConvergenceError("stalled", residual_history=np.array(history), iterations=999)
        return real(col, tol, maxiter, callback, start, inner, history)

    xbar = xs.Crossbar(np.full((3, 4), 1e-3), r_wl=1.0, r_bl=1.0, v0=0.25)
    drives = dict(left=xs.Drive(0.3, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    x0 = xs.solve(xbar, **drives, method="direct")
    cold = xs.solve(xbar, **drives, method="direct", maxiter=30)
    monkeypatch.setattr(nw, "_newton_column", warm_fails_after_7_steps)
    sol = xs.solve(xbar, **drives, method="direct", maxiter=30, x0=x0)
    assert calls == [(True, 30), (False, 23)]
    assert sol.iterations == cold.iterations + 7
    np.testing.assert_array_equal(sol.v_wl, cold.v_wl)
    # a warm attempt that took every step of maxiter leaves nothing to a
    # retry: its own error is the answer. Retried anyway, a cold solve
    # started with maxiter 0 and raised another error, whose history and
    # message were the retry's (found by mutation testing)
    calls.clear()
    with pytest.raises(ConvergenceError, match="stalled") as exc:
        xs.solve(xbar, **drives, method="direct", maxiter=7, x0=x0)
    assert calls == [(True, 7)]
    assert len(exc.value.residual_history) == 8


def test_source_stepping_keeps_each_stages_start_and_says_where_it_failed(monkeypatch):
    """A stage's start (the linear solution scaled to the stage's drives)
    had a residual equal to the zero state's, was dropped as a warm start,
    and the stage's own linear start, at X_START (1 + eps), stepped again
    inside it: 124 Newton steps for this circuit, and on failure a message
    nesting one stepping error in another, quoting the stages' internal
    tol=1e-06 and advising to loosen tol (found by review)."""
    import xbarsim._newton as newton

    calls = []
    real = newton._source_stepping
    monkeypatch.setattr(newton, "_source_stepping", lambda *a: calls.append(a[3]) or real(*a))
    g = 10 ** np.random.default_rng(7).uniform(-5, -3, (8, 8))
    xbar = xs.Crossbar(g, 1.0, 1.0, v0=0.02)
    sol = xs.solve(xbar, left=xs.Drive(2.0), bottom=xs.Drive(-2.0), method="direct")
    assert len(calls) == 1 and sol.kcl_error < 1e-10
    # 35 steps, as mg's 35 and pcg's 39 from the same linear start (124 /
    # 124 / 126 before source stepping predicted its stages' starts, session
    # 62; 110 while the direct path's start was the zero state, its own bug:
    # see test_newton_on_the_direct_inner_solver_starts_from_the_linear_solution)
    assert sol.iterations <= 126
    with pytest.raises(xs.ConvergenceError) as info:
        xs.solve(xs.Crossbar(g, 1.0, 1.0, v0=0.1), left=xs.Drive(2.0), bottom=xs.Drive(-2.0), maxiter=5)
    message = str(info.value)
    # the fraction reached is the solver's to report (50.1 % today), the step count is maxiter's
    assert message.count("source stepping") == 1
    assert re.search(r"failed at \d+(\.\d+)? % of the drives after 5 Newton steps", message), message
    assert "tol=" not in message and "Loosen tol" not in message


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_sinh_devices_between_fixed_nodes_take_no_newton_step(method):
    """Ideal wires and drives fix every node: a linear solve reports 0
    iterations, and so does Newton now (it counted one step that moved
    nothing per column, which `xbarsim scale` recorded; found by review)."""
    g = np.random.default_rng(3).uniform(1e-4, 5e-4, (4, 5))
    x = np.random.default_rng(4).uniform(0.0, 0.3, (4, 3))
    sol = xs.solve(xs.Crossbar(g, 0.0, 0.0, v0=0.25), left=xs.Drive(x), bottom=xs.Drive(0.0), method=method)
    assert sol.iterations == 0
    np.testing.assert_allclose(sol.i_out, np.einsum("mn,mb->nb", g * 0.25, np.sinh(x / 0.25)), rtol=1e-13)


@pytest.mark.parametrize("where", [0, 2, 4])
def test_the_convergence_maxima_keep_a_nan_wherever_it_sits(where):
    """`absmax_lines` (the accuracy check of CG) kept a NaN only at the last
    node of its line, and Newton's `_absmax` only in the word-line layer
    (Python's max(x, nan) is x): a NaN could pass for converged (found by
    review)."""
    from xbarsim._newton import _absmax
    from xbarsim.kernels.operator import absmax_lines

    a = np.zeros((3, 5, 2))
    a[1, :, :] = 1.0
    a[1, where, 1] = np.nan
    partial = np.empty((3, 2))
    absmax_lines(a, partial)
    assert np.isnan(partial[1, 1]) and partial[1, 0] == 1.0 and partial[0, 0] == 0.0
    nan = np.array([1.0, np.nan, 2.0])
    assert np.isnan(_absmax(np.ones(3), nan)) and np.isnan(_absmax(nan, np.ones(3)))
    assert _absmax(np.array([-3.0]), np.array([2.0])) == 3.0


@pytest.mark.parametrize("batch", [1, 3])
def test_the_cg_update_kernel_against_numpy(batch):
    """`cg_update`: ``x += alpha p``, ``r += alpha q`` per column, and each
    line's squared residual norm summed over all its nodes, in the batched
    path as in the one-column one (found by mutation testing: the batched
    norm of the last node alone passed every test; CG's stopping and its
    residual history read these sums)."""
    from xbarsim.kernels.operator import cg_update

    rng = np.random.default_rng(5)
    x, r, p, q = (rng.normal(size=(4, 6, batch)) for _ in range(4))
    alpha = rng.uniform(0.1, 1.0, batch)
    want_x, want_r = x + alpha * p, r + alpha * q
    partial = np.empty((4, batch))
    cg_update(x, r, p, q, alpha, partial)
    np.testing.assert_allclose(x, want_x, rtol=1e-15)
    np.testing.assert_allclose(r, want_r, rtol=1e-15)
    np.testing.assert_allclose(partial, (want_r ** 2).sum(axis=1), rtol=1e-14)


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_huge_currents_at_one_node_do_not_hide_another_nodes_error(method):
    """Bit line 0 sits between two devices at about 135 V0 (fixed word lines
    at +2.8 and -2.6 V), carrying 1.6e55 A through it. Rounding of those
    currents drowned the line search's slope, and Newton returned its
    iterate with bit line 1, an independent device into a 7.14 ohm
    terminal, 1.1 V off and 2.6e24 A out of balance: kcl_error 3e-18 and no
    error (found by review). Bit line 1 now has its exact voltage (a scalar
    root; ngspice agrees); with drives and V0 five times larger (V0 = 0.1 V)
    too, as sinh scales. Bit line 0's end current is its terminal's."""
    import math

    from scipy.optimize import brentq

    g = np.array([[0.0112, 0.049], [0.121, 0.0]])
    for k in (1.0, 5.0):
        v0 = 0.02 * k
        xbar = xs.Crossbar(g, r_wl=0.0, r_bl=0.0, v0=v0)
        left = xs.Drive(np.array([2.8, -2.6]) * k)
        bottom = xs.Drive(np.array([-4.4, -2.3]) * k, r=np.array([0.5614, 7.1438]))
        sol = xs.solve(xbar, left=left, bottom=bottom, method=method)

        def imbalance(v):
            return 0.049 * v0 * math.sinh((2.8 * k - v) / v0) - (v + 2.3 * k) / 7.1438

        exact = brentq(imbalance, -2.3 * k, 2.8 * k, xtol=1e-15)
        assert sol.v_bl[0, 1] == pytest.approx(exact, rel=1e-9)
        assert sol.i_out[1] == pytest.approx((exact + 2.3 * k) / 7.1438, rel=1e-9)
        # bit line 0's 8 A end current, next to 1.6e55 A of devices: read off
        # the node's Kirchhoff sum (by G alone the terminal looked stiffer),
        # it came back as 1.2e41 A of rounding and the power balance 1e26 off
        assert sol.i_out[0] == pytest.approx((sol.v_bl[1, 0] + 4.4 * k) / 0.5614, rel=1e-12)
        assert 0 < sol.i_out[0] < 100
        assert sol.power_dissipated() == pytest.approx(sol.power_supplied(), rel=1e-9)


def test_power_balance_of_a_line_whose_sinh_devices_carry_1e91_amperes():
    """Every node fixed, a bit line of 2.9 ohm between two devices at up to
    300 V0: by G alone the line looked weaker than its wire, and the wire's
    power was computed from a difference of 1e91 A device currents:
    "dissipated" 9.3e156 W of 3.3e92 W supplied (found by review). The
    devices' slope G cosh(V / V0) decides, in each batch column."""
    xbar = xs.Crossbar(np.array([[1.13e-3], [2e-4]]), r_wl=0.0, r_bl=2.9, v0=0.0239)
    left = xs.Drive(np.array([[-2.2, 0.2, 3.2], [3.0, -0.27, 4.1]]))
    top, bottom = xs.Drive(np.array([[3.1, 1.3, -1.28]])), xs.Drive(np.array([[-0.94, 0.012, 0.00068]]))
    sol = xs.solve(xbar, left=left, top=top, bottom=bottom, method="direct")
    supplied, dissipated = sol.power_supplied(), sol.power_dissipated()
    assert supplied.max() > 1e80  # the regime in question
    np.testing.assert_allclose(dissipated, supplied, rtol=1e-9)


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_the_callback_hears_every_newton_step_of_every_column(method):
    """``callback(step, residual)`` for sinh devices: every Newton step of
    each batch column, counted from 1 in each, so that the calls add up to
    ``iterations``. It missed each column's accepted last step, and the
    steps of source stepping (found by review): 7 calls for 10 steps."""
    import xbarsim._newton as newton

    rng = np.random.default_rng(4)
    xbar = _random(rng, 24, 20, v0=0.1)
    x = np.stack([rng.uniform(0.0, 0.3, 24), rng.uniform(-0.5, 0.5, 24), np.full(24, 3.0)], axis=1)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    stepped = []
    real = newton._source_stepping

    def spy(*args):
        out = real(*args)
        stepped.append(out[2])
        return out

    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(newton, "_source_stepping", spy)
        sol = xs.solve(xbar, **drives, method=method, callback=lambda it, res: calls.append((it, res)))
    assert stepped and stepped[0] > 0  # the 3 V column (30 V0) ran source stepping
    steps = [it for it, _ in calls]
    starts = [k for k, it in enumerate(steps) if it == 1]
    assert len(starts) == 3 and starts[0] == 0  # one count per batch column
    for a, b in zip(starts, starts[1:] + [len(steps)]):
        assert steps[a:b] == list(range(1, b - a + 1))
    assert len(calls) == sol.iterations
    assert calls[-1][1] == sol.residual_history[-1]  # the accepted last step is heard


# Found by mutation testing of the stopping criteria: each test below fails on
# a mutant that every other test passed.


def _small_read():
    """A solved 3 x 4 read (1 ohm wires, 100 ohm sense ends, 1e-2 S: stronger
    than any device) whose network the stopping tests below probe with
    residuals of their own."""
    return xs.solve(xs.Crossbar(np.full((3, 4), 1e-4), r_wl=1.0, r_bl=1.0),
                    left=xs.Drive(np.array([0.3, 0.2, 0.1])), bottom=xs.Drive(0.0, r=100.0))


def test_the_per_node_kirchhoff_test_fails_when_any_single_node_is_out_of_balance():
    """`TerminalNodes.kcl_met` with per-node conductances (Newton's stopping
    test, `_node_conductances`) is met only when EVERY node's imbalance is
    within `kcl_bound`: one node 1e-9 A out of balance against a bound of
    1.1e-13 A, every other node exactly balanced, is not met, wherever that
    node is. Met when any node was within its bound passed every test,
    Newton's voltage test holding the solves back (found by mutation
    testing)."""
    from xbarsim._pcg import TerminalNodes, kcl_bound

    sol = _small_read()
    nodes = TerminalNodes(sol.network)
    M, N = sol.network.shape
    gnode = (np.ones((M, N, 1)), np.ones((N, M, 1)))
    r = (np.zeros((M, N, 1)), np.zeros((N, M, 1)))

    def absmax(F):
        return max(float(np.max(np.abs(a))) for a in F)

    assert kcl_bound(1e-10, 1e-3, 1.0, 1.0) < 1e-12
    assert bool(np.all(nodes.kcl_met(r, absmax, 1e-10, 1e-3, 1.0, gnode)))
    for layer, (L, n) in ((0, (M, N)), (1, (N, M))):
        for line, i in ((0, 0), (L - 1, n - 1), (L // 2, 1)):
            r[layer][line, i, 0] = 1e-9
            assert not bool(np.any(nodes.kcl_met(r, absmax, 1e-10, 1e-3, 1.0, gnode))), (layer, line, i)
            r[layer][line, i, 0] = 0.0


def test_multigrid_newton_richardson_exit_stays_inside_the_voltage_bound():
    """A sinh solve with the multigrid inner solve on resistive wires (the
    preconditioner contracts only ~0.6 per cycle there) stops within the
    voltage bound, VTOL_PER_TOL * tol of the largest node voltage, against a
    tol=MIN_TOL direct solve. Newton's one-cycle (Richardson) exit must allow
    for the contraction q and a safety factor: with z2 <= vtol alone it
    stopped 2x outside the bound."""
    rng = np.random.default_rng(7)
    M, N = rng.integers(8, 24, 2)
    g = 10 ** rng.uniform(-6, -3, (M, N))
    xbar = xs.Crossbar(g, r_wl=10 ** rng.uniform(1, 4), r_bl=10 ** rng.uniform(1, 4), v0=rng.uniform(0.05, 0.3))
    kw = dict(left=xs.Drive(rng.uniform(-1, 1, M), r=10.0), bottom=xs.Drive(0.0, r=10.0))
    ref = xs.solve(xbar, **kw, method="direct", tol=1e-14)
    vmax = max(np.max(np.abs(ref.v_wl)), np.max(np.abs(ref.v_bl)))
    for tol in (1e-8, 1e-9):
        s = xs.solve(xbar, **kw, method="mg", tol=tol)
        err = max(np.max(np.abs(s.v_wl - ref.v_wl)), np.max(np.abs(s.v_bl - ref.v_bl)))
        assert err <= 10 * tol * vmax, (tol, err / (10 * tol * vmax))


def test_newton_batch_residual_is_the_worst_columns():
    """Solution.residual of a batched sinh (Newton) solve is its worst column's
    relative Kirchhoff residual, whatever the column order: each column solved
    alone gives the same answer, and the batch's residual is their maximum."""
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-5, 1e-3, (6, 5))
    xbar = xs.Crossbar(g, r_wl=2.0, r_bl=2.0, v0=0.1)
    v = np.stack([np.full(6, 0.3), np.linspace(0.01, 0.02, 6)], axis=1)  # (M, 2)
    for cols in ((0, 1), (1, 0)):
        vb = v[:, cols]
        singles = [xs.solve(xbar, left=xs.Drive(vb[:, b]), bottom=xs.Drive(0.0)).residual for b in range(2)]
        assert singles[0] != singles[1]
        sol = xs.solve(xbar, left=xs.Drive(vb), bottom=xs.Drive(0.0))
        assert sol.residual == max(singles), (cols, sol.residual, singles)


def test_the_kirchhoff_test_checks_nodes_of_terminals_stronger_than_any_device():
    """`TerminalNodes.kcl_met` with one largest conductance (the linear
    solves' test) sets aside the nodes of terminals stronger than it and
    checks them against `kcl_bound` at that conductance plus the terminal's:
    one such node 1e-9 A out of balance, every other node balanced, is not
    met. Dropping that check passed any imbalance at a strong terminal."""
    from xbarsim._pcg import TerminalNodes, kcl_bound

    sol = _small_read()
    nodes = TerminalNodes(sol.network)
    M, N = sol.network.shape
    r = (np.zeros((M, N, 1)), np.zeros((N, M, 1)))

    def absmax(F):
        return np.array([max(float(np.max(np.abs(a))) for a in F)])

    gmax = 1e-3  # below the 1e-2 S bottom terminals
    lines, where, gt = nodes.nodes[1]
    assert lines.size == N and np.all(gt > gmax)
    assert kcl_bound(1e-10, 1e-3, 1.0, gmax + gt.max()) < 1e-12
    assert bool(np.all(nodes.kcl_met(r, absmax, 1e-10, 1e-3, 1.0, gmax)))
    for line, i in zip(lines, where):
        r[1][line, i, 0] = 1e-9
        assert not bool(np.any(nodes.kcl_met(r, absmax, 1e-10, 1e-3, 1.0, gmax))), (line, i)
        assert r[1][line, i, 0] == 1e-9  # the set-aside residual is put back
        r[1][line, i, 0] = 0.0


def test_newtons_per_node_kirchhoff_test_holds_itol_per_tol():
    """Newton's stopping test `_kirchhoff_met` meets Kirchhoff at every node
    only when each node's imbalance is within ITOL_PER_TOL * tol of the total
    terminal current (plus double precision's floor): a single node 3x over
    that bound is refused, one at 0.3x of it is met. A bound loosened 10x
    passed the first."""
    from xbarsim._newton import _Conductances, _kirchhoff_met
    from xbarsim._pcg import ITOL_PER_TOL, TerminalNodes, end_currents, segment_gmax

    sol = _small_read()
    net = sol.network
    M, N = net.shape
    v_wl = np.asarray(sol.v_wl, dtype=float).reshape(M, N, 1)
    v_bl = np.asarray(sol.v_bl, dtype=float).reshape(N, M, 1)
    total = sum(float(np.sum(np.abs(c))) for c in end_currents(net, v_wl, v_bl).values())
    gmax = _Conductances(net, np.asarray(net.g, dtype=float).reshape(M, N), segment_gmax(net))
    nodes = TerminalNodes(net)
    vscale = float(net.drive_scale()[0])
    tol = 1e-6
    bound = ITOL_PER_TOL * tol * total
    assert bound > 1e3 * 64 * np.finfo(float).eps * vscale * gmax.largest  # the floor is negligible
    for scale, expect in ((3.0, False), (0.3, True)):
        F_wl, F_bl = np.zeros((M, N, 1)), np.zeros((N, M, 1))
        F_bl[1, 1, 0] = scale * bound
        met, every = _kirchhoff_met(net, v_wl, v_bl, F_wl, F_bl, 0.0, tol, vscale, gmax, nodes)
        assert met and every == expect, (scale, met, every)


def _fuzzed_circuit(key):
    """A circuit of the fuzz generator that found the two misses below
    (1-20 lines a side, devices over 0.7-3 decades from 1 uS to 100 uS, wire
    0.01-100 ohm, V0 0.1-1 V or linear, each end absent, ideal or resistive,
    some lines floating), drawn from ``default_rng(key)``."""
    rng = np.random.default_rng(key)
    M, N = rng.integers(1, 21, 2)
    lo = rng.choice([1e-6, 1e-5, 1e-4])
    g = 10 ** rng.uniform(np.log10(lo), np.log10(lo) + rng.choice([0.7, 1.5, 3]), (M, N))
    r_wl = rng.choice([0.01, 0.1, 1.0, 10.0, 30.0, 100.0])
    r_bl = rng.choice([0.01, 0.1, 1.0, 10.0, 30.0, 100.0])
    v0 = rng.choice([None, None, 0.1, 0.25, 1.0])
    pf = rng.choice([0.0, 0.3, 0.7])
    amp = rng.choice([0.2, 1.0, 2.0])

    def end(n):
        if rng.random() < 0.25:
            return None
        fl = rng.random(n) < pf
        r = np.where(rng.random(n) < 0.5, 0.0, 10 ** rng.uniform(-2, 3, n))
        return xs.Drive(rng.uniform(-amp, amp, n), r=r, floating=fl)

    ends = {name: end(n) for name, n in (("left", M), ("right", M), ("top", N), ("bottom", N))}
    return g, dict(r_wl=r_wl, r_bl=r_bl, v0=v0), {k: e for k, e in ends.items() if e is not None}, rng


def test_newton_stops_inside_the_voltage_bound_where_one_cycle_misjudged_the_error():
    """Two sinh circuits (V0 = 0.1 V, 100 ohm wire) on which multigrid
    Newton stopped 1.13x outside the bound of 10 tol of the largest node
    voltage (found by fuzzing against the direct solve):

    - a cold solve at tol 1e-3 (17 x 12, source-stepped): the last
      correction, solved to its residual tolerance by one multigrid cycle,
      was a fifth of the error it was taken to measure. Such a correction is
      now solved until CG's estimate of its own voltage error is within half
      the bound (`xbarsim._newton._CorrectionCheck`);
    - a re-solve at tol 1e-9 (8 x 15, 1-3 devices changed by up to 50 %)
      that stopped on one Richardson cycle of the last step's hierarchy,
      its error taken as z2 / (1 - q) with q = 0.27, where that step's CG
      had found a slow-mode gain of 1.9. The gain now bounds it too."""
    g, kw, ends, _ = _fuzzed_circuit([1, 808])
    assert kw["v0"] == 0.1 and g.shape == (17, 12)
    xbar = xs.Crossbar(g, **kw)
    ref = xs.solve(xbar, **ends, method="direct", tol=1e-13)
    sol = xs.solve(xbar, **ends, method="mg", tol=1e-3)
    vmax = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
    err = max(np.abs(sol.v_wl - ref.v_wl).max(), np.abs(sol.v_bl - ref.v_bl).max())
    assert err <= 10 * 1e-3 * vmax, err / (10 * 1e-3 * vmax)

    g, kw, ends, rng = _fuzzed_circuit([1, 2579])
    assert kw["v0"] == 0.1 and g.shape == (8, 15)
    g2 = g.copy()
    for _ in range(rng.integers(1, 4)):
        g2[rng.integers(g.shape[0]), rng.integers(g.shape[1])] *= rng.uniform(0.5, 1.5)
    ref = xs.solve(xs.Crossbar(g2, **kw), **ends, method="direct", tol=1e-13)
    first = xs.solve(xs.Crossbar(g, **kw), **ends, method="mg", tol=1e-9, keep_factors=True)
    sol = first.resolve(g2, tol=1e-9)
    vmax = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
    err = max(np.abs(sol.v_wl - ref.v_wl).max(), np.abs(sol.v_bl - ref.v_bl).max())
    assert err <= 10 * 1e-9 * vmax, err / (10 * 1e-9 * vmax)


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_an_open_device_under_any_voltage_carries_nothing(method):
    """G = 0 is an open device (CIRCUIT.md) at any voltage: 10 V across one
    at V0 = 0.01 V (1000 V0) made ``g V0 sinh(V / V0)`` 0 * inf, and the
    converged solve raised "device currents overflow" (found by review). The
    other device's current is that of the same circuit at 7 V across it,
    with every node fixed (ideal drives) and with every node free."""
    g = np.array([[0.0, 1e-4]])
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.01)
    for r in (0.0, 1.0):
        sols = [xs.solve(xbar, left=xs.Drive(5.0, r=r), bottom=xs.Drive(np.array([vb, 0.0]), r=r), method=method)
                for vb in (-2.0, -5.0)]
        for sol in sols:
            assert sol.i_device[0, 0] == 0.0 and np.isfinite(sol.i_device).all()
        np.testing.assert_allclose(sols[1].i_device, sols[0].i_device, rtol=1e-9, atol=0)
        np.testing.assert_allclose(sols[1].i_out, sols[0].i_out, rtol=1e-9, atol=0)


@pytest.mark.parametrize("method", ["direct", "pcg", "mg"])
def test_a_common_mode_shift_of_every_drive_changes_no_current(method):
    """Adding one voltage to every source changes nothing physical. Newton's
    line search gave up (regula falsi creeping across a bracket whose slope
    grew by twenty orders) at a shift of 1 V on one device behind 1 kohm
    (V0 = 0.05 V), and at 2 V on a 3 x 4 array driven with 6 V through
    1 ohm (V0 = 0.1 V), both of which solve unshifted (found by review)."""
    one = xs.Crossbar(np.array([[1e-4]]), v0=0.05)
    g = np.random.default_rng(0).uniform(1e-4, 5e-4, (3, 4))
    array = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    # a 0.2 V read of a V0 = 10 mV device shifted by 4 V: 400 V0 with the free node at 0 V, whose
    # norm overflowed (refused; found by review): measured with it at the ideal drive's 4 V instead
    read = xs.Crossbar(np.array([[1e-4]]), v0=0.01)
    for xbar, drive, r, shifts in ((one, 3.25, 1e3, (1.0, 2.0)), (array, 6.0, 1.0, (1.0, 2.0, 5.0)),
                                   (read, 0.2, 1e3, (3.0, 4.0))):
        ref = xs.solve(xbar, left=xs.Drive(drive, r=r), top=0.0, method=method)
        for c in shifts:
            sol = xs.solve(xbar, left=xs.Drive(c + drive, r=r), top=c, method=method)
            np.testing.assert_allclose(sol.i_device, ref.i_device, rtol=1e-8, atol=0)
            np.testing.assert_allclose(sol.v_wl - c, ref.v_wl, rtol=0, atol=1e-8 * (c + drive))


def test_a_device_far_below_its_v0_reports_the_linear_law_exactly():
    """A per-device V0 of 1e308 V (a linear device beside sinh ones; inf is
    refused): ``V0 sinh(V / V0)`` with V / V0 subnormal read 1e-7 V 1.5e-9
    off and 1e-9 V 2.3e-7 off (found by review). Below |V / V0| = 1e-8 the
    reported current is ``G V``, which sinh's series rounds to."""
    g = np.array([[1e-4, 2e-4]])
    xbar = xs.Crossbar(g, v0=np.array([[0.1, 1e308]]))
    for v in (1e-5, 1e-7, 1e-9, 3e-300):
        sol = xs.solve(xbar, left=v, bottom=0.0)  # every node fixed: the currents from the law alone
        assert sol.i_device[0, 1] == 2e-4 * v
        assert sol.i_device[0, 0] == pytest.approx(1e-4 * 0.1 * np.sinh(v / 0.1), rel=1e-15)


def test_mg_iterations_stay_flat_with_ideal_drives_at_the_far_ends():
    """Ideal (0 ohm) drives at the right end of the word lines and the top
    of the bit lines: their nodes are fixed, and the coarse levels turn each
    fixed node's coupling into a shunt on its free neighbour
    (`Level.effective_shunts`), the neighbour on either side. Leaving out the
    shunt of a node whose fixed neighbour is the next one (the right /
    bottom end) still converged, to the same answers, but took 5-6
    iterations instead of 3-4 and its worst step was 3e-3 to 1.7e-2
    (base: 1.7e-4 to 2.6e-3) (found by mutation testing: speed only)."""
    its, worst = _mg_iterations_and_worst_steps(
        lambda rng, n: dict(right=xs.Drive(rng.uniform(0, 0.3, n)), top=xs.Drive(0.0)))
    assert max(its) <= 4, its
    assert max(worst) <= 5e-3, worst


def test_mg_iterations_stay_flat_with_an_ideal_drive_on_the_word_lines_only():
    """An ideal drive on one layer only (the word lines' left ends; the bit
    lines behind 1 ohm): its fixed nodes must still be masked out of the
    coarse levels and their couplings turned into shunts. Masking only where
    both layers had fixed nodes still converged, to the same answers, but
    took 5-6 iterations instead of 3-4 and its worst step was 2.8e-3 to
    1.8e-2 (base: 1.4e-4 to 2.1e-3) (found by mutation testing: speed
    only)."""
    its, worst = _mg_iterations_and_worst_steps(
        lambda rng, n: dict(left=xs.Drive(rng.uniform(0, 0.3, n)), bottom=xs.Drive(0.0, r=1.0)))
    assert max(its) <= 4, its
    assert max(worst) <= 5e-3, worst


@pytest.mark.parametrize("shape, both_ends", [((6, 6), False), ((8, 8), False), ((5, 9), False),
                                               ((8, 1), True), ((1, 8), True)])
def test_mg_on_a_single_level_array_is_its_dense_solve_in_one_iteration(shape, both_ends):
    """An array of at most `COARSEST_CELLS` cells is a hierarchy of one level,
    solved by the dense Cholesky factor of its own matrix: the preconditioner
    is ``A^-1`` (`MultigridPreconditioner.exact`) and CG's first step is the
    answer. With the layers' shunts swapped in that factor (1 ohm ends) the
    solves took 14-55 iterations, and with the hierarchy never taken as
    exact 2 (found by mutation testing). One column (one row) driven through
    resistances at both ends of every word (bit) line: the line's single node
    carries both terminals' conductances; keeping only the second end's in
    the fine level's shunts took 5-6 iterations, to the same answers (found
    by mutation testing)."""
    rng = np.random.default_rng(sum(shape))
    g = 1.0 / rng.uniform(2e3, 1e4, shape)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0)
    if both_ends:
        drives = dict(left=xs.Drive(rng.uniform(0, 0.3, shape[0]), r=10.0), right=xs.Drive(0.05, r=20.0),
                      top=xs.Drive(0.1, r=30.0), bottom=xs.Drive(0.0, r=10.0))
    else:
        drives = dict(left=xs.Drive(rng.uniform(0, 0.3, shape[0]), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method="mg")
    assert sol.iterations == 1, sol.residual_history
    ref = xs.solve(xbar, **drives, method="direct")
    np.testing.assert_allclose(sol.i_out, ref.i_out, rtol=1e-9, atol=1e-12 * np.abs(ref.i_out).max())


def _forced_damping(monkeypatch, t_forced):
    """Every Newton step damped to at most `t_forced` (the accepted point and
    its residual left in T and G, as `_line_search` documents)."""
    orig = newton_module._line_search

    def damped(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0):
        t = orig(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0)
        if t is None or t <= t_forced:
            return t
        np.multiply(d_wl, t_forced, out=T_wl); np.add(T_wl, v_wl, out=T_wl)
        np.multiply(d_bl, t_forced, out=T_bl); np.add(T_bl, v_bl, out=T_bl)
        newton_module.residual(net, T_wl, T_bl, G_wl, G_bl)
        return t_forced

    monkeypatch.setattr(newton_module, "_line_search", damped)


@pytest.mark.parametrize("method", ["pcg", "direct"])
def test_newton_does_not_stop_on_the_size_of_a_damped_step(monkeypatch, method):
    """Only a full Newton step's size bounds the error left (`last_move`: a
    damped step of length t leaves about (1 - t) / t times its move). With
    every step damped to t = 0.2 the solve must still end on a correction's
    own estimate, far inside the bound (base: 2e-4 of it); counting the
    damped moves as full ones stopped one step early, at half the bound
    (found by mutation testing)."""
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-4, 5e-4, (6, 6))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(rng.uniform(0.1, 0.5, 6), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ref = xs.solve(xbar, **drives, method="direct", tol=1e-13)
    top = max(np.max(np.abs(ref.v_wl)), np.max(np.abs(ref.v_bl)))
    _forced_damping(monkeypatch, 0.2)
    tol = 1e-4
    sol = xs.solve(xbar, **drives, method=method, tol=tol, maxiter=2000)
    err = max(np.max(np.abs(sol.v_wl - ref.v_wl)), np.max(np.abs(sol.v_bl - ref.v_bl)))
    assert err <= 1e-2 * VTOL_PER_TOL * tol * top, err / (VTOL_PER_TOL * tol * top)


def test_every_damped_step_meets_the_line_searchs_slope_test(monkeypatch):
    """`_line_search` returns 1 or a t where phi'(t) = -F(v + t d) . d is
    within 0.1 of phi'(0) (its residual left in G): accepting 0.9 of it
    took other (fewer) Newton steps to the same answers (found by mutation testing).
    Source stepping's predicted stage starts (session 62) left the cold
    solves of 10 V and 20 V drives without a damped step; warm starts from
    the opposite drives, and 3 V drives, which take none, still damp some."""
    orig = newton_module._line_search
    seen = []

    def checked(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0):
        t = orig(net, work, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl, G_wl, G_bl, slope0)
        if t is not None and t < 1.0:
            s = -float(work.dot(G_wl, d_wl, G_bl, d_bl)[0])
            seen.append(abs(s) / abs(slope0))
        return t

    monkeypatch.setattr(newton_module, "_line_search", checked)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 16
        g = rng.uniform(1e-4, 5e-4, (n, n))
        for v0, vmax in ((0.1, 10.0), (0.05, 20.0), (0.1, 3.0)):
            xbar = xs.Crossbar(g, r_wl=10.0, r_bl=1.0, v0=v0)
            left = rng.uniform(0, vmax, n)
            for x0 in (None, xs.solve(xbar, left=xs.Drive(-left, r=1.0), bottom=xs.Drive(0.0, r=1.0), method="pcg")):
                xs.solve(xbar, left=xs.Drive(left, r=1.0), bottom=xs.Drive(0.0, r=1.0), method="pcg", x0=x0)
    assert seen, "no damped step: the case no longer exercises the line search"
    assert max(seen) <= 0.1 * (1 + 1e-9), max(seen)


def _near_ideal_segment_sinh_family(seed, count):
    """Sinh arrays up to 5 x 4 under drives of 1e-5..3e-2 V at the top
    ends, every other end floating, word-line segments of 1e-6..1 ohm (some
    ideal): near-ideal segments leave rounding at their nodes that no step
    removes."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        M, N = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        g = 10 ** rng.uniform(-8.5, -2.5, (M, N))
        r_wl = 10 ** rng.uniform(-6, 0, (M, N - 1))
        r_wl[rng.random(r_wl.shape) < 0.3] = 0.0
        r_bl = float(10 ** rng.uniform(-1, 2.5))
        v0 = rng.uniform(0.1, 1.0, (M, N))
        top = rng.choice([-1, 1], N) * 10 ** rng.uniform(-5, -1.5, N)
        yield Circuit(g=g, r_wl=r_wl, r_bl=r_bl, drives=dict(top=xs.Drive(top))), v0


@pytest.mark.parametrize("method", ["pcg", "direct"])
def test_newtons_step_cap_halves_down_to_a_quarter_v0_before_it_gives_up(monkeypatch, method):
    """Where no step along Newton's direction is accepted, the step is tried
    again with the devices' Jacobian evaluated at |V/V0| <= cap, the cap
    halved from half the largest |V/V0| each time, and the solve gives up
    only below 0.25, as its ConvergenceError says. With the line search (and
    the rounding step) made to fail, the Jacobians seen must be the uncapped
    one, then exactly halved caps, the last in [0.25, 0.5). A floor of 2.5
    gave up three halvings early while the message still said 0.25 (found
    by mutation testing)."""
    seen = []
    slopes = newton_module._device_slopes

    def recorded(net, x):
        seen.append(float(np.max(x)))
        return slopes(net, x)

    monkeypatch.setattr(newton_module, "_device_slopes", recorded)
    monkeypatch.setattr(newton_module, "_line_search", lambda *args: None)
    monkeypatch.setattr(newton_module, "_rounding_step", lambda *args: None)
    g = np.random.default_rng(0).uniform(1e-4, 5e-4, (4, 4))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    with pytest.raises(xs.ConvergenceError, match=re.escape("limited to |V/V0| <= 0.25")):
        xs.solve(xbar, left=xs.Drive(np.full(4, 2.0), r=1.0), bottom=xs.Drive(0.0, r=1.0), method=method)
    top, capped = seen[0], seen[1:]
    assert top > 10  # the linear start puts ~20 V0 across the devices
    np.testing.assert_allclose(capped, top / 2 ** np.arange(1, len(capped) + 1), rtol=1e-12)
    assert 0.25 <= capped[-1] < 0.5, capped


@pytest.mark.parametrize("v0, top", [(0.1, [2e-3, -4e-5]), (2.0, [2e-2, -4e-4])])
def test_newton_takes_the_step_rounding_at_a_near_ideal_segment_hides_from_the_line_search(v0, top):
    """A 2 x 2 array at |V/V0| <= 0.02, practically linear: word line 1 has
    one 2.8e-6 ohm segment (3.6e5 S), whose nodes keep ~1e-11 A of rounding
    whatever the voltages. It swamped the line search's slope of the step
    that was to balance the floating word line 0 (6e-16 A on 3e-3 S), and
    `direct` (V0 = 0.1) or `pcg` / `auto` (V0 = 2) raised ConvergenceError
    "the line search found no acceptable step ... Lower the drive voltages
    or raise v0" (found by a differential fuzz against a dense solve of
    CIRCUIT.md; the exact answer, at 40 digits: word line 0 at 1.0129e-3 V
    for V0 = 0.1). The full Newton step is taken where its slope is within
    the nodes' rounding and it lowers the largest node imbalance measured in
    each node's bound."""
    g = np.array([[1.6e-3, 1.5e-3], [1.7e-5, 1.9e-6]])
    circuit = Circuit(g=g, r_wl=np.array([[0.0], [2.8e-6]]), r_bl=34.0, drives=dict(top=xs.Drive(np.array(top))))
    xbar = xs.Crossbar(g, r_wl=circuit.r_wl, r_bl=circuit.r_bl, v0=v0)
    sols = {m: xs.solve(xbar, method=m, **circuit.drives) for m in ("direct", "pcg", "auto")}
    for method, sol in sols.items():
        check_sinh_column(circuit, sol.v_wl, sol.v_bl, sol.i_device, sol.i_terminal, v0, method)
        assert_within_voltage_bound(sol, sols["direct"], 1e-12, method)


def test_the_rounding_step_is_taken_only_where_it_lowers_the_worst_node_imbalance():
    """`_rounding_step` returns 1 (the full step left in T, its residual in
    G) only where the step's slope is within the nodes' rounding and the
    step lowers the largest node imbalance in units of the node's bound;
    None otherwise. From the exact solution of a 3 x 4 sinh array moved
    by p: the step -p back to it is taken, the step +p further away is not,
    and neither is a slope beyond the rounding. Taking every step whose
    slope was within rounding passed the tests (found by mutation
    testing)."""
    rng = np.random.default_rng(1)
    xbar = xs.Crossbar(rng.uniform(1e-4, 5e-4, (3, 4)), r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(rng.uniform(0.1, 0.3, 3), r=1.0), bottom=xs.Drive(0.0, r=1.0))
    net = build_network(xbar, **drives)
    ref = xs.solve(xbar, **drives, method="direct", tol=1e-13)
    # the kernel's layout: word-line nodes (M, N, 1), bit-line nodes (N, M, 1)
    p_wl, p_bl = rng.normal(0, 1e-3, (3, 4, 1)), rng.normal(0, 1e-3, (4, 3, 1))
    v_wl, v_bl = ref.v_wl[:, :, None] + p_wl, ref.v_bl.T[:, :, None] + p_bl
    F_wl, F_bl = np.empty_like(v_wl), np.empty_like(v_bl)
    newton_module.residual(net, v_wl, v_bl, F_wl, F_bl)
    bounds = (np.ones_like(v_wl), np.ones_like(v_bl))  # every node's bound 1 A
    T_wl, T_bl, G_wl, G_bl = (np.empty_like(a) for a in (v_wl, v_bl, v_wl, v_bl))

    def step(d_wl, d_bl, slope0):
        return newton_module._rounding_step(net, v_wl, v_bl, d_wl, d_bl, F_wl, F_bl, T_wl, T_bl,
                                            G_wl, G_bl, slope0, bounds)

    assert step(-p_wl, -p_bl, 0.0) == 1.0
    np.testing.assert_allclose(T_wl[:, :, 0], ref.v_wl, rtol=0, atol=1e-15)
    np.testing.assert_allclose(T_bl[:, :, 0], ref.v_bl.T, rtol=0, atol=1e-15)
    assert np.max(np.abs(G_wl)) < 1e-3 * np.max(np.abs(F_wl))  # G is T's residual: near 0
    assert step(p_wl, p_bl, 0.0) is None  # twice as far from the solution
    assert step(-p_wl, -p_bl, -1.0) is None  # a slope beyond the rounding (sum of bound x |d|: ~2e-2)


_SLOW_MODE_GAIN_G = {
    "fuzz-found": [[7.76e-08, 2.02e-09, 1.30e-07, 1.43e-09, 9.22e-09, 5.87e-06],
                   [5.55e-07, 3.54e-06, 1.47e-03, 1.60e-06, 1.34e-06, 2.71e-09],
                   [2.85e-08, 2.19e-07, 1.17e-04, 2.40e-08, 7.08e-03, 8.58e-04],
                   [2.71e-04, 2.31e-05, 3.73e-03, 2.07e-05, 3.36e-03, 1.64e-05],
                   [1.31e-06, 6.86e-05, 4.48e-03, 3.38e-05, 4.19e-09, 6.92e-05]],
    "needs-the-gain": [[1.937e-07, 3.811e-09, 6.905e-08, 9.026e-10, 2.179e-08, 1.879e-06],
                       [1.163e-06, 7.016e-06, 1.365e-03, 1.017e-06, 8.045e-07, 1.541e-09],
                       [2.511e-08, 2.213e-07, 1.323e-04, 7.511e-08, 1.389e-02, 1.137e-03],
                       [8.355e-04, 1.199e-05, 1.706e-03, 2.682e-05, 1.176e-03, 5.630e-06],
                       [1.356e-06, 6.346e-05, 1.171e-02, 4.551e-05, 4.328e-09, 6.870e-05]],
}


@pytest.mark.parametrize("draw", list(_SLOW_MODE_GAIN_G))
def test_pcg_newton_keeps_the_slow_mode_gain_of_the_jacobian_it_is_still_solving(draw):
    """A 5 x 6 array of V0 = 0.102 V devices (2 nS to 7 mS) under drives to
    +-16 V (150 V0) on 0-738 ohm segments (found by a differential fuzz
    against a dense solve of CIRCUIT.md): `pcg` Newton ended after 109 steps,
    the last ones moving nodes by less than 1 % of V0. Each step's CG
    restarted its estimate of the slow-mode gain (`slow_mode_gain`) at 1;
    where the residual had fallen to rounding, two CG iterations met its
    tolerance and saw no slow mode, and the correction that ended the solve
    was a sixth of the error: 1.5x outside the voltage bound of 10 tol of
    the largest node voltage (2.6x for the unrounded draw). While the
    Jacobian is within ~1 % of the last step's (`JACOBIAN_STILL`), the gain
    that step's CG found (about 32) now stands; `direct` was always exact.

    Since source stepping predicts its stages' starts (adf0e28) that circuit
    ("fuzz-found") ends within the bound with the gain restarted too
    (`if not still:` -> `if True:` passed the whole suite; found by mutation
    testing). The same circuit with other device conductances (each within
    10^+-0.5 of the original; 141 V0 at most; "needs-the-gain") ends
    5.2e-10 V off, 3.5x outside the bound, with the gain restarted at every
    step, and 4.7e-14 V off (0.0003x) with it kept, after 68 steps either
    way."""
    g = np.array(_SLOW_MODE_GAIN_G[draw])
    r_bl = np.array([[0.0, 737.6, 0.0, 0.163, 0.0, 0.0365],
                     [0.0, 0.0, 0.0, 38.5, 7.85e-3, 0.0],
                     [30.6, 0.0, 2.59e-3, 0.0, 0.282, 0.0],
                     [8.39e-4, 0.0, 39.8, 91.1, 2.54, 29.9]])
    v0 = 0.102
    circuit = Circuit(g=g, r_wl=2.96e-3, r_bl=r_bl, drives=dict(
        left=xs.Drive([3.67, 15.32, -15.93, -14.14, 12.02], r=[8.13, 1.40e4, 2.16e-2, 4.73e-3, 102.3]),
        right=xs.Drive([9.49, 12.53, -14.83, -12.29, -7.12], r=[0, 0, 0, 0.0256, 0],
                       floating=[False, False, False, False, True]),
        bottom=xs.Drive([6.39, -9.24, -6.73, 0.612, -9.02, 0.804])))
    xbar = xs.Crossbar(g, r_wl=circuit.r_wl, r_bl=r_bl, v0=v0)
    ref = xs.solve(xbar, method="direct", tol=1e-13, **circuit.drives)
    sol = xs.solve(xbar, method="pcg", **circuit.drives)
    assert np.max(np.abs(ref.v_wl - ref.v_bl) / v0) > 100
    assert assert_within_voltage_bound(sol, ref, 1e-12) > 14.8
    check_sinh_column(circuit, sol.v_wl, sol.v_bl, sol.i_device, sol.i_terminal, v0)


def test_newton_does_not_stop_on_steps_of_about_v0_from_the_steep_side_of_a_device():
    """A 5 x 5 array of V0 = 3.57 V devices (3 nS to 9 mS) under drives to
    +-443 V (124 V0), wires 0-599 ohm (found by a differential fuzz against
    a dense Newton solve of CIRCUIT.md at 40 digits, which the `direct`
    solve at tol 1e-13 matches to 1.3e-13 V): at tol 1e-3 the bound of 10 tol
    of the largest node voltage is 1.2 V0, and from the steep side of a
    device at ~90 V0 Newton moves a node about V0 a step whatever its
    distance from the answer. Cold solves (`direct` and `pcg`) stopped on
    such a step 98 V off (22x the bound) after 104 steps, and `resolve`
    after four devices changed 95 V off after one. A step now ends the
    solve only within `NEWTON_LOCAL` of V0 as well (134 steps cold). Since
    source stepping predicts its stages' starts (adf0e28) this circuit no
    longer reaches that exit; `test_newton_does_not_stop_on_steps_of_about_v0_at_two_thirds_of_the_drives`
    pins it (found by mutation testing)."""
    g = np.array([[2.045e-04, 3.010e-09, 1.360e-06, 7.796e-04, 4.362e-07],
                  [6.260e-08, 8.239e-03, 9.154e-08, 9.879e-06, 1.881e-05],
                  [4.479e-04, 1.540e-08, 3.089e-07, 9.905e-06, 6.996e-06],
                  [9.455e-03, 6.497e-08, 1.300e-06, 4.090e-05, 1.018e-06],
                  [2.810e-04, 4.711e-04, 7.327e-08, 9.126e-08, 5.888e-08]])
    g2 = g.copy()
    g2[0, 3], g2[0, 4], g2[3, 4], g2[4, 3] = 3.927e-04, 7.610e-07, 7.800e-07, 8.155e-08
    r_wl = np.array([[63.03, 0, 63.06, 0], [20.09, 54.17, 0, 65.34], [0, 33.35, 62.39, 20.04],
                     [0, 33.26, 50.04, 63.72], [66.75, 64.16, 55.04, 28.90]])
    v0, tol = 3.568, 1e-3
    circuit = Circuit(g=g2, r_wl=r_wl, r_bl=599.1, drives=dict(
        right=xs.Drive([389.5, 442.8, -287.9, -163.4, 283.3], r=[0.8931, 3.644, 0.01215, 0, 8784.],
                       floating=[False, True, True, False, False]),
        top=xs.Drive([433.2, -430.6, -216.4, -217.3, 416.4]),
        bottom=xs.Drive([156.0, 37.50, 387.9, -443.1, 360.8], r=[0, 1.086, 4739., 0.2771, 0.02201])))
    ref = xs.solve(xs.Crossbar(g2, r_wl=r_wl, r_bl=599.1, v0=v0), method="direct", tol=1e-13, **circuit.drives)
    assert np.max(np.abs(ref.v_wl - ref.v_bl) / v0) > 80
    for method in ("direct", "pcg"):
        cold = xs.solve(xs.Crossbar(g2, r_wl=r_wl, r_bl=599.1, v0=v0), method=method, tol=tol, **circuit.drives)
        first = xs.solve(xs.Crossbar(g, r_wl=r_wl, r_bl=599.1, v0=v0), method=method, tol=tol,
                         keep_factors=True, **circuit.drives)
        for how, sol in (("cold", cold), ("resolve", first.resolve(g2))):
            assert_within_voltage_bound(sol, ref, tol, f"{method} {how}")


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_newton_does_not_stop_on_steps_of_about_v0_at_two_thirds_of_the_drives(method):
    """`test_newton_does_not_stop_on_steps_of_about_v0_from_the_steep_side_of_a_device`'s
    circuit no longer reaches the exit it guards: since source stepping
    predicts its stages' starts, its solves pass with the step and
    correction exits on the voltage bound alone (`etol = vtol`, the old
    rule, passed the whole suite). The same array with other conductances
    (within 10^+-0.5) and the drives at 0.677 of theirs (to +-300 V; 62 V0
    at most in the answer) stopped 7.3 V off, 2.5x outside the bound at tol
    1e-3, on a step of about V0 with that rule, in `direct` and `pcg` alike
    (33 / 35 steps); with `NEWTON_LOCAL`, 5e-4 V off (0.0002x) after 38 / 40
    steps (found by mutation testing)."""
    g = np.array([[2.042e-04, 3.802e-09, 4.594e-07, 1.746e-04, 2.040e-06],
                  [2.328e-08, 3.513e-03, 2.570e-07, 1.308e-05, 1.391e-05],
                  [4.598e-04, 2.241e-08, 1.841e-07, 4.304e-06, 1.358e-05],
                  [1.400e-02, 6.685e-08, 2.696e-06, 4.579e-05, 2.361e-06],
                  [1.423e-04, 5.331e-04, 7.056e-08, 5.817e-08, 7.270e-08]])
    r_wl = np.array([[63.03, 0, 63.06, 0], [20.09, 54.17, 0, 65.34], [0, 33.35, 62.39, 20.04],
                     [0, 33.26, 50.04, 63.72], [66.75, 64.16, 55.04, 28.90]])
    v0, tol = 3.568, 1e-3
    drives = dict(
        right=xs.Drive([263.75, 299.84, -194.95, -110.65, 191.83], r=[0.8931, 3.644, 0.01215, 0, 8784.],
                       floating=[False, True, True, False, False]),
        top=xs.Drive([293.34, -291.58, -146.53, -147.14, 281.96]),
        bottom=xs.Drive([105.63, 25.393, 262.66, -300.04, 244.31], r=[0, 1.086, 4739., 0.2771, 0.02201]))
    xbar = xs.Crossbar(g, r_wl=r_wl, r_bl=599.1, v0=v0)
    ref = xs.solve(xbar, method="direct", tol=1e-13, **drives)
    assert np.max(np.abs(ref.v_wl - ref.v_bl) / v0) > 50
    sol = xs.solve(xbar, method=method, tol=tol, **drives)
    assert_within_voltage_bound(sol, ref, tol, method)


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_source_stepping_starts_each_stage_from_the_last_ones_linear_response(method):
    """A 3 x 2 array with per-device V0 from 0.02 V to 5 V: an ideal 17.85 V
    drive on word line 0 over a 7.7 mS, 0.02 V device (892 V0 in the linear
    start) whose bit line leaves through 0.026 ohm (found by a differential
    fuzz against a dense solve of CIRCUIT.md). Each stage of source stepping
    started from the last one's voltages with only the fixed nodes moved,
    so that device took the whole drive increment: from 50 % to 100 % of
    the drives 446 V0, the currents' norm overflowed and every method raised
    ConvergenceError "the step is not a descent direction (slope -0) ...
    residual inf"; with the increment halved instead, 866 Newton steps. A
    stage now starts from the last one's linear response to the increment
    at G cosh(V / V0) (32 steps): the device ends at 6.3 V0."""
    g = np.array([[7.656e-03, 2.446e-05], [3.042e-04, 2.226e-09], [9.987e-05, 5.068e-06]])
    v0 = np.array([[0.02, 5.0], [0.4324, 0.02205], [0.1894, 0.6328]])
    circuit = Circuit(g=g, r_wl=3.645, r_bl=262.0, drives=dict(
        left=xs.Drive([17.85, -16.77, 0.2308], r=[0.0, 0.0, 3.020], floating=[False, True, True]),
        bottom=xs.Drive([0.0, 0.0], r=0.02633)))
    xbar = xs.Crossbar(g, r_wl=circuit.r_wl, r_bl=circuit.r_bl, v0=v0)
    sol = xs.solve(xbar, method=method, **circuit.drives)
    assert sol.iterations < 100
    check_sinh_column(circuit, sol.v_wl, sol.v_bl, sol.i_device, sol.i_terminal, v0, method)
    assert 5 < (sol.v_wl[0, 0] - sol.v_bl[0, 0]) / v0[0, 0] < 8
    assert sol.v_wl[0, 0] == 17.85  # the ideal drive's node exactly, whatever the stages added up to


@pytest.mark.parametrize("volts", [6.3, 9.1])
def test_source_stepped_solves_keep_ideal_drives_exactly(volts):
    """Source stepping's predicted stage start is the last stage's voltages
    plus their response to the drive increment: on an ideal end that sum,
    s V + (t - s) V, missed t V by an ulp (2.2e-16 V at 6.3 V, 4.4e-16 V at
    9.1 V here; 2.8e-14 V in a fuzz), and Newton never moves fixed nodes. The
    start puts them at their drives exactly."""
    g = np.random.default_rng(1).uniform(1e-4, 5e-4, (3, 4))
    left = np.array([volts, -volts * 0.7, volts * 0.3])
    sol = xs.solve(xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1), left=xs.Drive(left), bottom=xs.Drive(0.0, r=1.0),
                   method="pcg")
    assert sol.iterations > 20  # source-stepped
    np.testing.assert_array_equal(sol.v_wl[:, 0], left)


def test_a_stage_start_whose_prediction_fails_is_the_last_stage_with_the_drives_moved(monkeypatch):
    """Source stepping's predictor is a linear solve at the devices'
    G cosh(V / V0); where that fails (SuperLU's singular factor, which a
    Newton step reports as a ParameterError; a multigrid level that lost
    definiteness), the stage starts as before, from the last stage's
    voltages with the fixed nodes moved, and the solve goes on to the same
    answer instead of refusing the circuit."""
    real = newton_module._linear_solve
    calls = []

    def failing_after_the_start(lin, inner, work=None):
        calls.append(inner)
        if len(calls) > 1:  # the first is Newton's linear start
            raise xs.ParameterError("a Newton step's Jacobian is singular in double precision (test)")
        return real(lin, inner, work)

    g = np.full((3, 4), 1e-4)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(8.0, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ref = xs.solve(xbar, **drives, method="direct")
    monkeypatch.setattr(newton_module, "_linear_solve", failing_after_the_start)
    sol = xs.solve(xbar, **drives, method="direct")
    assert len(calls) > 2  # stages were predicted, and each fell back
    assert_within_voltage_bound(sol, ref, 1e-12, times=2)


def test_norm_finite_tells_an_overflowing_start_from_a_finite_one():
    """`_norm_finite` is what sends source stepping's halving loop on: no
    circuit in the suite (nor 3,200 fuzzed ones) predicts a stage start
    that overflows, so `return True` in its place passed every test."""
    from xbarsim.circuit import build_network

    xbar = xs.Crossbar([[1e-3]], v0=0.01)
    net = build_network(xbar, left=xs.Drive(1.0, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    for volts, finite in ((0.1, True), (10.0, False)):  # 10 V0 and 1000 V0 across the device
        v_wl, v_bl = np.full((1, 1, 1), volts), np.zeros((1, 1, 1))
        assert newton_module._norm_finite(net, v_wl, v_bl) is finite, volts


def test_source_stepping_halves_the_increment_while_the_predicted_start_overflows(monkeypatch):
    """Where a predicted stage start overflows (`_norm_finite` False), the
    stage's increment is halved (nxt -> (s + nxt) / 2) and the start
    predicted again, up to `STAGE_HALVINGS` times; the solve ends at the
    unstepped answer. The first prediction of every stage is refused here
    (no fuzzed circuit overflows one), so each stage is predicted twice: at
    2 s, then at 1.5 s. Neither a single try (STAGE_HALVINGS = 1) nor a
    halving towards 0 (nxt / 2, which repeats the stage at s) passes."""
    real_pred, real_finite = newton_module._predicted, newton_module._norm_finite
    tries = []

    def predicted(net, after, v_wl, v_bl, g_eff, s, nxt, inner):
        tries.append((s, nxt))
        return real_pred(net, after, v_wl, v_bl, g_eff, s, nxt, inner)

    def finite(net, v_wl, v_bl):
        # refuse each stage's first prediction
        return real_finite(net, v_wl, v_bl) and len(tries) >= 2 and tries[-1][0] == tries[-2][0]

    g = np.full((3, 4), 1e-4)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.1)
    drives = dict(left=xs.Drive(8.0, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    ref = xs.solve(xbar, **drives, method="direct", tol=1e-13)
    monkeypatch.setattr(newton_module, "_predicted", predicted)
    monkeypatch.setattr(newton_module, "_norm_finite", finite)
    sol = xs.solve(xbar, **drives, method="direct")
    assert len(tries) >= 4, tries
    for (s, first), (s2, second) in zip(tries[::2], tries[1::2]):
        assert s2 == s and first == min(1.0, 2.0 * s) and second == 0.5 * (s + first), tries
    assert_within_voltage_bound(sol, ref, 1e-12)


def test_sinh_arrays_with_near_ideal_segments_solve_with_direct_and_pcg():
    """The fuzz's family (`_near_ideal_segment_sinh_family`), 150 seeded
    draws: before the rounding step, 5 % of them raised ConvergenceError
    with `pcg` and 2 % with `direct` (50 and 23 of 1,500); every one solves
    now, both methods agree within the voltage bound, and each balances
    Kirchhoff with the device law."""
    for k, (circuit, v0) in enumerate(_near_ideal_segment_sinh_family(0, 150)):
        xbar = xs.Crossbar(circuit.g, r_wl=circuit.r_wl, r_bl=circuit.r_bl, v0=v0)
        direct, pcg = (xs.solve(xbar, method=m, **circuit.drives) for m in ("direct", "pcg"))
        assert_within_voltage_bound(pcg, direct, 1e-12, f"draw {k}", times=2)
        check_sinh_column(circuit, direct.v_wl, direct.v_bl, direct.i_device, direct.i_terminal, v0,
                          f"draw {k} direct")
        check_sinh_column(circuit, pcg.v_wl, pcg.v_bl, pcg.i_device, pcg.i_terminal, v0, f"draw {k} pcg")
