"""Tests added by a mutation audit of xbarsim/_pcg.py: each one fails on a
mutant of the module that the existing tests did not catch in the part of
the suite the audit ran, and passes on the module as it is."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsim as xs
from xbarsim import _memory as memory_module

ENDS = ("left", "right", "top", "bottom")


def _mixed_circuit(seed, p_ideal_wire=0.0):
    """A small array with wires of 0.1-100 ohm (each segment 0 ohm with
    probability `p_ideal_wire`), devices of 10 uS-10 mS, and every kind of
    end (ideal, resistive 1 mohm-1 kohm, floating lines)."""
    rng = np.random.default_rng(seed)
    M, N = rng.integers(3, 14, 2)
    g = 10 ** rng.uniform(-5, -2, (M, N))
    rw, rb = 10 ** rng.uniform(-1, 2), 10 ** rng.uniform(-1, 2)
    r_wl = rng.uniform(0.5, 1.5, (M, N - 1)) * rw
    r_bl = rng.uniform(0.5, 1.5, (M - 1, N)) * rb
    if p_ideal_wire:
        r_wl[rng.random(r_wl.shape) < p_ideal_wire] = 0.0
        r_bl[rng.random(r_bl.shape) < p_ideal_wire] = 0.0
    xbar = xs.Crossbar(g, r_wl=r_wl, r_bl=r_bl)

    def end(L, kind):
        if kind == 0:
            return None
        r = 0.0 if kind == 1 else 10 ** rng.uniform(-3, 3, L)
        floating = rng.random(L) < 0.3
        if floating.all():
            floating[0] = False
        return xs.Drive(rng.uniform(-1, 1, L), r=r, floating=floating)

    kinds = rng.integers(0, 3, 4)
    kinds[0] = kinds[0] or 1
    kinds[3] = kinds[3] or 2
    drives = dict(left=end(M, kinds[0]), right=end(M, kinds[1]), top=end(N, kinds[2]), bottom=end(N, kinds[3]))
    return xbar, drives


def _assert_within_contract(sol, ref, xbar, drives, tol):
    """README, "Stopping test": node voltages within 10 tol of the largest
    node voltage (at least 1e-3 of the largest drive); every terminal
    current within its documented bound (`terminal_current_bound`)."""
    from problems import Circuit
    from test_properties import terminal_current_bound

    vdrive = max(float(np.max(np.abs(d.v))) for d in drives.values() if d is not None)
    vnode = max(np.abs(ref.v_wl).max(), np.abs(ref.v_bl).max())
    for name in ("v_wl", "v_bl"):
        err = np.abs(getattr(sol, name) - getattr(ref, name)).max()
        assert err <= 10 * tol * max(vnode, 1e-3 * vdrive), (name, err)
    circuit = Circuit(g=xbar.g, r_wl=xbar.r_wl, r_bl=xbar.r_bl, drives=drives)
    for e in ENDS:
        if drives.get(e) is None:
            continue
        bound = terminal_current_bound(circuit, ref, e, tol)
        err = np.abs(sol.i_terminal[e] - ref.i_terminal[e])
        assert np.all(err <= bound), (e, float(np.max(err / bound)))


@pytest.mark.parametrize("method", ["pcg", "mg"])
@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_an_ideal_or_stiff_end_counts_its_wire_segment_in_its_current_error(method, tol):
    """The current of an ideal (or stiff resistive) end is its node's
    Kirchhoff sum, so its error estimate must count the wire segment leaving
    the node (``seg |z_rep - z_across|``). Without it, pcg stopped at tol
    1e-3 with a bottom end's current here 8.3x outside the documented
    current bound (found by mutation testing)."""
    xbar, drives = _mixed_circuit(23)
    ref = xs.solve(xbar, method="direct", tol=1e-14, **drives)
    sol = xs.solve(xbar, method=method, tol=tol, **drives)
    _assert_within_contract(sol, ref, xbar, drives, tol)


@pytest.mark.parametrize("tol", [1e-3, 1e-5, 1e-7])
def test_an_end_group_of_ideal_wire_reads_the_segment_that_leaves_it(tol):
    """Where 0 ohm segments join the nodes at a line's last end into one
    group, the end current's error estimate takes the resistive segment
    leaving that group (index ``lo - 1``), not the one inside it (``lo``,
    0 ohm): reading that one, pcg stopped at tol 1e-5 with a terminal
    current 1.9x outside the documented bound on this array (found by
    mutation testing). mg needs every segment resistive."""
    xbar, drives = _mixed_circuit(31, p_ideal_wire=0.4)
    ref = xs.solve(xbar, method="direct", tol=1e-14, **drives)
    sol = xs.solve(xbar, method="pcg", tol=tol, **drives)
    _assert_within_contract(sol, ref, xbar, drives, tol)


def test_a_stiff_end_on_a_line_of_ideal_wire_counts_its_devices_far_ends_in_its_current_error():
    """Word lines of ideal wire held by near-ideal (1e-6-1e-3 ohm) left
    terminals, stiffer than the rest of their node: each such end's current
    is the node's Kirchhoff sum, whose error includes the devices' far
    (bit-line) ends, ``sum g |z_bl|`` (`EndGroup.device_sum` with
    ``absolute``). Without that part, pcg stopped at tol 1e-7 after one
    iteration with a terminal current 1.65x outside the documented bound
    (found by mutation testing)."""
    rng = np.random.default_rng(42)
    M, N = rng.integers(2, 10, 2)
    g = 10 ** rng.uniform(-5, -2, (M, N))
    xbar = xs.Crossbar(g, r_wl=0.0, r_bl=10 ** rng.uniform(-1, 2) * rng.uniform(0.5, 1.5, (M - 1, N)))
    drives = dict(left=xs.Drive(rng.uniform(-1, 1, M), r=10 ** rng.uniform(-6, -3, M)),
                  right=xs.Drive(rng.uniform(-1, 1, M), r=10 ** rng.uniform(-6, 3, M),
                                 floating=rng.random(M) < 0.5),
                  bottom=xs.Drive(rng.uniform(-1, 1, N), r=10 ** rng.uniform(0, 4, N)))
    ref = xs.solve(xbar, method="direct", tol=1e-14, **drives)
    for tol in (1e-6, 1e-7, 1e-8):
        sol = xs.solve(xbar, method="pcg", tol=tol, **drives)
        _assert_within_contract(sol, ref, xbar, drives, tol)


@pytest.mark.parametrize("M", [255, 256, 257, 600])
def test_per_bit_line_device_current_sums_count_every_block_of_word_lines(M):
    """`_abs_line_sums` (the line current scale `coarse_end_currents` judges
    a bit line's end resolution against) sums |i_device| over the word lines
    256 rows at a time; every block must count, not only the last (found by
    mutation testing: a mutant that kept the last block's sum alone is
    caught only on arrays of more than 256 word lines)."""
    from xbarsim._pcg import _abs_line_sums

    i_dev = np.random.default_rng(M).standard_normal((M, 3, 2))
    np.testing.assert_allclose(_abs_line_sums(i_dev, 0), np.abs(i_dev).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(_abs_line_sums(i_dev, 1), np.abs(i_dev).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("M, N, expected", [(5, 1, 1), (1, 5, 1), (1, 1, 2), (5, 4, 0)])
def test_ideal_wire_count_counts_a_direction_without_segments_by_its_own_dimension(M, N, expected):
    """Word lines have no segments when N == 1, bit lines when M == 1 (each
    such line is one node); resistive wire elsewhere counts 0. Testing the bit
    lines' direction by N made a 5 x 1 array of 1 ohm bit lines count both
    directions ideal, and the direct solve's memory estimate used the
    ideal-wire fill for it (found by mutation testing)."""
    assert memory_module.ideal_wire_count(M, N, 1.0, 1.0) == expected
