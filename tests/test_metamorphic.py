"""Metamorphic properties of the circuit solve (hypothesis).

Where tests/test_properties.py checks each solution on its own (the methods
against each other and the dense oracle, Kirchhoff, power balance), these
check how solutions of *related* circuits relate, each relation derived from
circuit theory alone (docs/CIRCUIT.md):

- transposition: the N x M array whose word lines are the old bit lines
  has the transposed solution, every device current of the opposite sign;
- line order reversed (as copies and as strided views): the solution
  reversed, the two ends of the other lines swapped;
- scaling: conductances x k, resistances / k, voltages (and V0) x s give
  voltages x s and currents x k s, exactly or refused, over 16 decades;
- superposition of source voltages and reciprocity of the transfer
  conductances (linear devices);
- the maximum principle and passivity: no node outside the source voltages,
  no device supplying power; Rayleigh: raising a conductance never lowers
  the power drawn;
- a batch solves as its columns; a warm start from another state, and a
  `Solution.resolve`, land on the cold answer;
- input layout and dtype (Fortran order, strided views, float32) do not
  change a bit;
- per-device V0 obeys each device's own law; `pulse_drives` put CIRCUIT.md's
  bias table across the cells; a grounded `verify_drives` read senses the
  selected device alone.

The circuits are test_properties' `circuits()` strategy (up to 6 x 6, batches
of up to 3 columns, floating / resistive / ideal ends). Adopted from a
review's property hunt (2026-12-06), which found no failure in the library.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import xbarsim as xs
from naive import end_arrays
from problems import ENDS, REL, Circuit, check_sinh_column, refuses_ideal_wire, rounding_floor
from test_properties import circuits, reject_if_singular, source_voltage

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
ALL = ["direct", "pcg", "mg"]
V0S = [None, 0.25]  # linear devices, and sinh ones driven to V / V0 = 4


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def draw(data, method):
    return data.draw(circuits(ideal_wires=not refuses_ideal_wire(method)), label="circuit")


def solve(circuit, method="direct", v0=None, **kw):
    """The solution, or `assume(False)` where the circuit has none (confirmed
    by the dense oracle: a refusal of a solvable circuit fails)."""
    xbar = xs.Crossbar(circuit.g, r_wl=circuit.r_wl, r_bl=circuit.r_bl, v0=v0)
    try:
        return xs.solve(xbar, method=method, **circuit.drives, **kw)
    except xs.CircuitError as err:
        reject_if_singular(circuit, err)


def scales(sol):
    """The largest node voltage and the largest current of a solution."""
    v = max(float(np.max(np.abs(sol.v_wl))), float(np.max(np.abs(sol.v_bl))))
    i = max([float(np.max(np.abs(sol.i_terminal[e]), initial=0.0)) for e in ENDS]
            + [float(np.max(np.abs(sol.i_device)))])
    return v, i


def bound_voltage(sol):
    """The voltage the solvers' stopping bound is relative to (README: every
    node within 10 tol "of the largest node voltage (counted as at least 1e-3
    of the largest drive)"; the largest drive over the driven lines, as the
    solver's `Network.drive_scale` takes it): where the terminals drop most
    of the drive, the nodes sit far below it and the bound is the drive's (a
    1 V drive through 3788 ohm onto a 0.25 ohm bit line held at 0 V: nodes
    at 66 uV, bound 1e-14 V; found by a helper's unseeded Hypothesis run, a
    warm and a cold pcg solve 5e-15 V apart)."""
    from xbarsim._pcg import VOLTAGE_FLOOR

    return max(scales(sol)[0], VOLTAGE_FLOOR * float(np.max(sol.network.drive_scale())))


def tolerances(sol, circuit, extra=1.0):
    """Voltage and current tolerances of a comparison of two solves: the
    package's contract (REL of the solution's scale) and the rounding floor
    of the circuit's currents."""
    v, i = scales(sol)
    return REL * v * extra, REL * i * extra + rounding_floor(circuit)


def close(a, b, atol, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=what)


def swap(a):
    """The first two axes swapped (a trailing batch axis kept)."""
    a = np.asarray(a)
    return np.swapaxes(a, 0, 1) if a.ndim >= 2 else a


def reorder(drive, index):
    """``drive`` with its per-line arrays re-indexed (None stays None)."""
    if drive is None:
        return None
    v, r = np.asarray(drive.v, float), np.asarray(drive.r, float)
    floating = drive.floating
    return xs.Drive(v[index] if v.ndim else v, r=r[index] if r.ndim else r,
                    floating=None if floating is None or np.ndim(floating) == 0 else np.asarray(floating)[index])


def transposed(c):
    """Word lines <-> bit lines: word line j of the N x M array is the old
    bit line j; left / right take the old top / bottom ends."""
    r_wl, r_bl = np.asarray(c.r_wl, float), np.asarray(c.r_bl, float)
    d = c.drives
    return Circuit(g=c.g.T.copy(), r_wl=r_bl.T.copy() if r_bl.ndim == 2 else float(r_bl),
                   r_bl=r_wl.T.copy() if r_wl.ndim == 2 else float(r_wl),
                   drives=dict(left=d.get("top"), right=d.get("bottom"), top=d.get("left"), bottom=d.get("right")))


def rows_reversed(c):
    """Word-line order reversed, every array a strided view: top <-> bottom."""
    r_wl, r_bl = np.asarray(c.r_wl, float), np.asarray(c.r_bl, float)
    d, rev = c.drives, slice(None, None, -1)
    return Circuit(g=c.g[::-1], r_wl=r_wl[::-1] if r_wl.ndim == 2 else float(r_wl),
                   r_bl=r_bl[::-1] if r_bl.ndim == 2 else float(r_bl),
                   drives=dict(left=reorder(d.get("left"), rev), right=reorder(d.get("right"), rev),
                               top=d.get("bottom"), bottom=d.get("top")))


def columns_reversed(c):
    """Bit-line order reversed (copies): left <-> right."""
    r_wl, r_bl = np.asarray(c.r_wl, float), np.asarray(c.r_bl, float)
    d, rev = c.drives, slice(None, None, -1)
    return Circuit(g=c.g[:, ::-1].copy(), r_wl=r_wl[:, ::-1].copy() if r_wl.ndim == 2 else float(r_wl),
                   r_bl=r_bl[:, ::-1].copy() if r_bl.ndim == 2 else float(r_bl),
                   drives=dict(left=d.get("right"), right=d.get("left"), top=reorder(d.get("top"), rev),
                               bottom=reorder(d.get("bottom"), rev)))


def scaled(c, k=1.0, s=1.0):
    """Conductances x k (wire and terminal resistances / k), source voltages x s."""
    drives = {name: None if d is None else xs.Drive(np.asarray(d.v, float) * s, r=np.asarray(d.r, float) / k,
                                                    floating=d.floating)
              for name, d in c.drives.items()}
    r_wl, r_bl = np.asarray(c.r_wl, float) / k, np.asarray(c.r_bl, float) / k
    return Circuit(g=c.g * k, r_wl=r_wl if r_wl.ndim else float(r_wl), r_bl=r_bl if r_bl.ndim else float(r_bl),
                   drives=drives)


def column(drives, b):
    """Batch column ``b`` of every drive."""
    return {k: None if d is None else xs.Drive(np.asarray(d.v, float)[:, b] if np.ndim(d.v) == 2 else d.v, r=d.r,
                                               floating=d.floating)
            for k, d in drives.items()}


def source_range(c, b):
    """(lowest, highest) source voltage of batch column ``b``, over driven lines."""
    M, N = c.g.shape
    lo, hi = np.inf, -np.inf
    for name in ENDS:
        v, _, floating, _ = end_arrays(c.drives.get(name), M if name in ("left", "right") else N)
        vb = v[:, 0] if v.shape[1] == 1 else v[:, b]
        if (~floating).any():
            lo, hi = min(lo, vb[~floating].min()), max(hi, vb[~floating].max())
    return lo, hi


def batch_columns(sol):
    """Per batch column, a function taking a solution array to that column."""
    if sol.v_wl.ndim == 2:
        return [lambda a: a]
    return [lambda a, b=b: a[..., b] for b in range(sol.v_wl.shape[2])]


# ----------------------------------------------------------------------------
# symmetries
# ----------------------------------------------------------------------------


def _same(a):
    return a


def _flipped(a):
    return a[::-1]


# relation: (the related circuit, the solution's arrays mapped to it, its ends from the
# original's: new end -> (old end, per-line arrays reversed), its i_out from the original's)
SYMMETRIES = {
    # word line j of the N x M array is the old bit line j: a device runs from the old bit line
    "transposed": (transposed, lambda a: dict(v_wl=swap(a.v_bl), v_bl=swap(a.v_wl), i_device=-swap(a.i_device)),
                   {"left": ("top", _same), "right": ("bottom", _same), "top": ("left", _same),
                    "bottom": ("right", _same)},
                   lambda a: -a.i_terminal["right"]),
    "word lines reversed (views)": (
        rows_reversed, lambda a: dict(v_wl=a.v_wl[::-1], v_bl=a.v_bl[::-1], i_device=a.i_device[::-1]),
        {"left": ("left", _flipped), "right": ("right", _flipped), "top": ("bottom", _same),
         "bottom": ("top", _same)},
        lambda a: -a.i_terminal["top"]),
    "bit lines reversed": (
        columns_reversed, lambda a: dict(v_wl=a.v_wl[:, ::-1], v_bl=a.v_bl[:, ::-1], i_device=a.i_device[:, ::-1]),
        {"left": ("right", _same), "right": ("left", _same), "top": ("top", _flipped),
         "bottom": ("bottom", _flipped)},
        lambda a: a.i_out[::-1]),
}


@pytest.mark.parametrize("symmetry", list(SYMMETRIES))
@pytest.mark.parametrize("v0", V0S)
@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_a_transposed_or_reversed_array_has_the_transposed_or_reversed_solution(method, v0, symmetry, data):
    related, arrays, ends, i_out = SYMMETRIES[symmetry]
    c = draw(data, method)
    a = solve(c, method, v0=v0)
    b = solve(related(c), method, v0=v0)
    vt, it = tolerances(a, c)
    for name, want in arrays(a).items():
        close(getattr(b, name), want, vt if name.startswith("v_") else it, name)
    for new, (old, order) in ends.items():
        close(b.i_terminal[new], order(a.i_terminal[old]), it, new)
        np.testing.assert_array_equal(b.driven[new], order(a.driven[old]))
    close(b.i_out, i_out(a), it, "i_out")


@pytest.mark.filterwarnings("ignore:g holds conductances up to")  # the unit check's hint at k = 1e8: expected
@pytest.mark.parametrize("v0", V0S)
@pytest.mark.parametrize("method", ALL)
@settings(SETTINGS, suppress_health_check=list(HealthCheck))
@given(data=st.data(), log_k=st.floats(-8, 8), log_s=st.floats(-150, 2))
def test_scaling_conductances_and_voltages_scales_the_solution_or_is_refused(method, v0, data, log_k, log_s):
    """g x k, every resistance / k, voltages and V0 x s: voltages x s and
    currents x k s, over 16 decades of k and 152 of s, unless the scaled
    circuit is refused as out of double precision's range."""
    c = draw(data, method)
    k, s = 10.0 ** log_k, 10.0 ** log_s
    a = solve(c, method, v0=v0)
    sc = scaled(c, k, s)
    try:
        b = xs.solve(xs.Crossbar(sc.g, r_wl=sc.r_wl, r_bl=sc.r_bl, v0=None if v0 is None else v0 * s),
                     method=method, **sc.drives)
    except (xs.ParameterError, xs.DriveOverflowError):
        event("scaled circuit refused")
        assume(False)
    vt, it = tolerances(a, c, extra=10.0)
    close(b.v_wl / s, a.v_wl, vt, "v_wl")
    close(b.v_bl / s, a.v_bl, vt, "v_bl")
    close(b.i_device / (k * s), a.i_device, it, "i_device")
    close(b.i_out / (k * s), a.i_out, it, "i_out")
    for e in ENDS:
        close(b.i_terminal[e] / (k * s), a.i_terminal[e], it, e)


# ----------------------------------------------------------------------------
# linear networks: superposition, reciprocity
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_the_solution_of_summed_sources_is_the_sum_of_solutions(method, data):
    c1 = draw(data, method)
    drives2 = {}
    for name, d in c1.drives.items():
        if d is not None:
            shape = np.shape(d.v)
            # test_properties' voltages: no subnormal drive, which solve refuses (a subnormal
            # st.floats(-1, 1) drew was a refusal, not a counterexample)
            v2 = data.draw(st.lists(source_voltage, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
            d = xs.Drive(np.reshape(v2, shape) if shape else v2[0], r=d.r, floating=d.floating)
        drives2[name] = d
    c2 = Circuit(g=c1.g, r_wl=c1.r_wl, r_bl=c1.r_bl, drives=drives2)
    c3 = Circuit(g=c1.g, r_wl=c1.r_wl, r_bl=c1.r_bl, drives={
        k: None if d is None else xs.Drive(np.asarray(d.v) + np.asarray(drives2[k].v), r=d.r, floating=d.floating)
        for k, d in c1.drives.items()})
    a, b, ab = solve(c1, method), solve(c2, method), solve(c3, method)
    (va, ia), (vb, ib) = scales(a), scales(b)
    vt = 10 * REL * max(va, vb)
    it = 10 * REL * max(ia, ib) + rounding_floor(c1) + rounding_floor(c2) + rounding_floor(c3)
    close(ab.v_wl, a.v_wl + b.v_wl, vt, "v_wl")
    close(ab.v_bl, a.v_bl + b.v_bl, vt, "v_bl")
    close(ab.i_out, a.i_out + b.i_out, it, "i_out")
    for e in ENDS:
        close(ab.i_terminal[e], a.i_terminal[e] + b.i_terminal[e], it, e)


@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_transfer_conductances_are_reciprocal(method, data):
    """The current into bit line j's bottom terminal per volt on word line
    i's left source equals the current into word line i's left terminal per
    volt on bit line j's bottom source (a passive linear network's
    admittance matrix is symmetric), whatever else is attached."""
    c = draw(data, method)
    M, N = c.g.shape
    i, j = data.draw(st.integers(0, M - 1), label="i"), data.draw(st.integers(0, N - 1), label="j")
    resistance = st.one_of(st.just(0.0), st.floats(1.0, 1e3))
    r_left = np.asarray(data.draw(st.lists(resistance, min_size=M, max_size=M)))
    r_bottom = np.asarray(data.draw(st.lists(resistance, min_size=N, max_size=N)))
    others = {k: None if d is None else xs.Drive(0.0, r=d.r, floating=d.floating)
              for k, d in c.drives.items() if k in ("right", "top")}

    def sources(v_left, v_bottom):
        return Circuit(g=c.g, r_wl=c.r_wl, r_bl=c.r_bl,
                       drives=dict(left=xs.Drive(v_left, r=r_left), bottom=xs.Drive(v_bottom, r=r_bottom), **others))

    a = solve(sources(np.eye(M)[i], np.zeros(N)), method)
    b = solve(sources(np.zeros(M), np.eye(N)[j]), method)
    scale = max(scales(a)[1], scales(b)[1])
    assert abs(a.i_terminal["bottom"][j] - b.i_terminal["left"][i]) <= 1e-8 * scale + 1e-15, (
        a.i_terminal["bottom"][j], b.i_terminal["left"][i], scale)


# ----------------------------------------------------------------------------
# maximum principle, passivity, Rayleigh monotonicity
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("v0", V0S)
@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_no_node_leaves_the_source_range_and_no_device_supplies_power(method, v0, data):
    """Every node of a circuit of passive monotone elements sits between the
    lowest and the highest source voltage of its batch column; every device
    current runs down its voltage."""
    c = draw(data, method)
    sol = solve(c, method, v0=v0)
    v_all, i_all = scales(sol)
    for b, col in enumerate(batch_columns(sol)):
        lo, hi = source_range(c, b)
        slack = REL * max(v_all, abs(lo), abs(hi)) + 1e-300
        for name in ("v_wl", "v_bl"):
            v = col(getattr(sol, name))
            assert v.min() >= lo - slack and v.max() <= hi + slack, (name, v.min(), v.max(), lo, hi)
        vd = col(sol.v_wl) - col(sol.v_bl)
        assert np.all(col(sol.i_device) * vd >= -(REL * i_all + rounding_floor(c)) * np.abs(vd)), "a device supplies"


@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data(), factor=st.floats(1.01, 10.0), which=st.sampled_from(["device", "word line", "bit line"]))
def test_raising_a_conductance_never_lowers_the_power_drawn(method, data, factor, which):
    c = draw(data, method)
    M, N = c.g.shape
    a = solve(c, method)
    g, r_wl, r_bl = c.g.copy(), np.array(c.r_wl, float), np.array(c.r_bl, float)
    if which == "device":
        i, j = data.draw(st.integers(0, M - 1)), data.draw(st.integers(0, N - 1))
        g[i, j] = g[i, j] * factor if g[i, j] > 0 else 1e-4
    elif which == "word line":
        assume(N > 1)
        r_wl = np.broadcast_to(r_wl, (M, N - 1)).copy()
        r_wl[data.draw(st.integers(0, M - 1)), data.draw(st.integers(0, N - 2))] /= factor
    else:
        assume(M > 1)
        r_bl = np.broadcast_to(r_bl, (M - 1, N)).copy()
        r_bl[data.draw(st.integers(0, M - 2)), data.draw(st.integers(0, N - 1))] /= factor
    b = solve(Circuit(g=g, r_wl=r_wl, r_bl=r_bl, drives=c.drives), method)
    pa, pb = np.atleast_1d(a.power_supplied()), np.atleast_1d(b.power_supplied())
    slack = REL * np.maximum(np.abs(pa), np.abs(pb)) + 10 * rounding_floor(c) * max(scales(a)[0], scales(b)[0])
    assert np.all(pb >= pa - slack), (which, pa, pb)


# ----------------------------------------------------------------------------
# batches, warm starts, re-solves, layouts
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("v0", [None, 0.45])
@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_a_batch_solves_as_its_columns(method, v0, data):
    c = draw(data, method)
    sol = solve(c, method, v0=v0)
    assume(sol.v_wl.ndim == 3)
    v, i = scales(sol)
    floor = rounding_floor(c) * (1.0 if v0 is None else np.cosh(1.0 / v0))  # small-signal G up to cosh(1 V / V0)
    powers = []
    for b, col in enumerate(batch_columns(sol)):
        one = solve(Circuit(g=c.g, r_wl=c.r_wl, r_bl=c.r_bl, drives=column(c.drives, b)), method, v0=v0)
        close(one.v_wl, col(sol.v_wl), REL * v, f"v_wl column {b}")
        close(one.v_bl, col(sol.v_bl), REL * v, f"v_bl column {b}")
        close(one.i_out, col(sol.i_out), REL * i + floor, f"i_out column {b}")
        for e in ENDS:
            close(one.i_terminal[e], col(sol.i_terminal[e]), REL * i + floor, f"{e} column {b}")
        powers.append(one.power_supplied())
    np.testing.assert_allclose(sol.power_supplied(), powers, rtol=1e-8, atol=1e-8 * v * i + floor * v)


@pytest.mark.parametrize("v0", [None, 0.25])
@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data(), factor=st.floats(0.5, 2.0))
def test_a_warm_start_from_another_circuit_lands_on_the_cold_answer(method, v0, data, factor):
    c = draw(data, method)
    cold = solve(c, method, v0=v0)
    other = solve(Circuit(g=c.g * factor, r_wl=c.r_wl, r_bl=c.r_bl, drives=c.drives), method, v0=v0)
    warm = solve(c, method, v0=v0, x0=other)
    v = bound_voltage(cold)
    # both stop at the default tol 1e-12: 10 tol of the largest node voltage each, at least 1e-3 of the drive's
    close(warm.v_wl, cold.v_wl, 20e-12 * v + 1e-15 * v, "v_wl")
    close(warm.v_bl, cold.v_bl, 20e-12 * v + 1e-15 * v, "v_bl")


@pytest.mark.parametrize("v0", [None, 0.45])
@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data(), keep=st.booleans())
def test_a_resolve_matches_a_cold_solve_of_the_changed_array(method, v0, data, keep):
    c = draw(data, method)
    M, N = c.g.shape
    a = solve(c, method, v0=v0, keep_factors=keep)
    factor = np.asarray(data.draw(st.lists(st.floats(0.5, 2.0), min_size=M * N, max_size=M * N))).reshape(M, N)
    changed = np.asarray(data.draw(st.lists(st.booleans(), min_size=M * N, max_size=M * N))).reshape(M, N)
    g2 = np.where(changed, c.g * factor, c.g)
    cold = solve(Circuit(g=g2, r_wl=c.r_wl, r_bl=c.r_bl, drives=c.drives), method, v0=v0)
    warm = a.resolve(g2)
    v, i = bound_voltage(cold), scales(cold)[1]
    close(warm.v_wl, cold.v_wl, 20e-12 * v + 1e-15 * v, "v_wl")
    close(warm.v_bl, cold.v_bl, 20e-12 * v + 1e-15 * v, "v_bl")
    floor = rounding_floor(c) * (1.0 if v0 is None else np.cosh(1.0 / v0))
    close(warm.i_out, cold.i_out, 1e3 * REL * i + floor, "i_out")


@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data())
def test_fortran_order_strided_views_and_float32_give_the_same_bits(method, data):
    c = draw(data, method)
    M, N = c.g.shape
    g32 = c.g.astype(np.float32)  # float32 input is then the same circuit as its float64 values
    ref = solve(Circuit(g=g32.astype(float), r_wl=c.r_wl, r_bl=c.r_bl, drives=c.drives), method)
    padded = np.zeros((2 * M, 3 * N), np.float32)
    padded[::2, ::3] = g32
    for g in (np.asfortranarray(g32), g32, padded[::2, ::3]):
        sol = solve(Circuit(g=g, r_wl=c.r_wl, r_bl=c.r_bl, drives=c.drives), method)
        for name in ("v_wl", "v_bl", "i_device", "i_out"):
            np.testing.assert_array_equal(getattr(sol, name), getattr(ref, name), err_msg=name)

    def fortran(x):
        x = np.asarray(x, float)
        return np.asfortranarray(x) if x.ndim == 2 else x

    def strided(v):
        v = np.asarray(v, float)
        if v.ndim == 0:
            return v
        wide = np.zeros(tuple(2 * n for n in v.shape))
        wide[(slice(None, None, 2),) * v.ndim] = v
        return wide[(slice(None, None, 2),) * v.ndim]

    a = solve(c, method)
    drives = {k: None if d is None else xs.Drive(strided(d.v), r=d.r, floating=d.floating) for k, d in c.drives.items()}
    sol = solve(Circuit(g=np.asfortranarray(c.g), r_wl=fortran(c.r_wl), r_bl=fortran(c.r_bl), drives=drives), method)
    for name in ("v_wl", "v_bl", "i_device", "i_out"):
        np.testing.assert_array_equal(getattr(sol, name), getattr(a, name), err_msg=name)


# ----------------------------------------------------------------------------
# sinh devices per device; the programming drives
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL)
@SETTINGS
@given(data=st.data(), v0_scalar=st.sampled_from([0.1, 0.45]))
def test_per_device_v0_obeys_each_devices_law_and_transposes(method, data, v0_scalar):
    c = draw(data, method)
    M, N = c.g.shape
    a = solve(c, method, v0=v0_scalar)
    b = solve(c, method, v0=np.full((M, N), v0_scalar))
    vt, it = tolerances(a, c, extra=10)
    close(b.v_wl, a.v_wl, vt, "v_wl: a constant V0 array solves as its scalar")
    close(b.i_out, a.i_out, it * np.cosh(1 / v0_scalar), "i_out: a constant V0 array solves as its scalar")
    v0 = np.asarray(data.draw(st.lists(st.floats(0.05, 2.0), min_size=M * N, max_size=M * N))).reshape(M, N)
    s = solve(c, method, v0=v0)
    for col in batch_columns(s):
        check_sinh_column(c, col(s.v_wl), col(s.v_bl), col(s.i_device), {e: col(x) for e, x in s.i_terminal.items()},
                          v0)
    t = solve(transposed(c), method, v0=v0.T.copy())
    vt, it = tolerances(s, c)
    close(t.v_wl, swap(s.v_bl), vt, "transposed v_wl")
    close(t.i_out, -s.i_terminal["right"], 10 * it + rounding_floor(c) * np.cosh(1 / 0.05), "transposed i_out")


@SETTINGS
@given(M=st.integers(1, 8), N=st.integers(1, 8), data=st.data(),
       vp=st.floats(0.01, 2.5) | st.floats(-2.5, -0.01),  # no subnormal pulse: solve refuses it
       scheme=st.sampled_from(["V/2", "V/3", "floating"]), v0=st.sampled_from([None, 0.45]),
       r=st.sampled_from([0.0, 1.0, 5.0]))
def test_pulse_drives_put_the_bias_table_across_the_cells(M, N, data, vp, scheme, v0, r):
    """CIRCUIT.md's bias table read back from the solved circuit: on ideal
    wires the selected cell sees Vp, its half-selected neighbours Vp / 2
    (V/2) or Vp / 3 (V/3), the unselected 0 or -Vp / 3; the floating scheme
    puts Vp across the selected cell. On wires every node stays between 0
    and Vp."""
    i, j = data.draw(st.integers(0, M - 1)), data.draw(st.integers(0, N - 1))
    g = np.asarray(data.draw(st.lists(st.floats(1e-4, 5e-4), min_size=M * N, max_size=M * N))).reshape(M, N)
    sol = xs.solve(xs.Crossbar(g, r_wl=r, r_bl=r, v0=v0), **xs.pulse_drives((M, N), (i, j), vp, scheme))
    vd = sol.v_wl - sol.v_bl
    lo, hi = min(0.0, vp), max(0.0, vp)
    slack = 1e-9 * max(abs(vp), 1e-300)
    for v in (sol.v_wl, sol.v_bl):
        assert v.min() >= lo - slack and v.max() <= hi + slack
    assert abs(vd[i, j]) <= abs(vp) + slack
    if r == 0.0 and scheme != "floating":
        wl = np.full(M, vp / 2 if scheme == "V/2" else vp / 3)
        bl = np.full(N, vp / 2 if scheme == "V/2" else 2 * vp / 3)
        wl[i], bl[j] = vp, 0.0
        np.testing.assert_allclose(vd, wl[:, None] - bl[None, :], rtol=0, atol=1e-12 * max(abs(vp), 1e-300))
    if r == 0.0 and scheme == "floating":
        assert abs(vd[i, j] - vp) <= 1e-12 * abs(vp) + 1e-300


@SETTINGS
@given(M=st.integers(1, 8), N=st.integers(1, 8), data=st.data(), v_read=st.floats(0.01, 0.5),
       scheme=st.sampled_from(["grounded", "V/2", "floating"]), v0=st.sampled_from([None, 0.45]))
def test_verify_reads_sense_the_selected_device(M, N, data, v_read, scheme, v0):
    """A grounded read on ideal wires senses the selected device alone; every
    scheme's sensed current rises with the selected device's conductance."""
    i, j = data.draw(st.integers(0, M - 1)), data.draw(st.integers(0, N - 1))
    g = np.asarray(data.draw(st.lists(st.floats(1e-4, 5e-4), min_size=M * N, max_size=M * N))).reshape(M, N)
    drives = xs.verify_drives((M, N), (i, j), v_read, scheme)
    sol = xs.solve(xs.Crossbar(g, r_wl=0.0, r_bl=0.0, v0=v0), **drives)
    if scheme == "grounded":
        own = g[i, j] * (v_read if v0 is None else v0 * np.sinh(v_read / v0))
        np.testing.assert_allclose(sol.i_out[j], own, rtol=1e-12)
    g2 = g.copy()
    g2[i, j] *= 1.5
    raised = xs.solve(xs.Crossbar(g2, r_wl=0.0, r_bl=0.0, v0=v0), **drives)
    assert raised.i_out[j] > sol.i_out[j]
