"""Canonical crossbar problems with exact answers (torchdiffeq's ``problems.py``).

Each `Problem` carries the circuit, the exact expected values of some
solution fields, and its own tolerance. The exact answers are derived here
from circuit theory, independently of both the package and tests/naive.py:

``ideal_read``, ``ideal_read_batch``
    r_wl = r_bl = 0, ideal drives, read configuration:
    ``i_out = G.T @ x`` exactly (docs/CIRCUIT.md, "Ideal limit").
``ladder_*``
    One line of ``n`` nodes with uniform segments ``r`` and a device ``g``
    at every node to a grounded node, driven at one end and open at the
    other. Interior KCL ``v[k-1] - (2 + r g) v[k] + v[k+1] = 0`` has the
    solutions ``cosh(gamma k), sinh(gamma k)`` with ``cosh(gamma) = 1 + r g / 2``;
    the open end ``v[n-2] = (1 + r g) v[n-1]`` is the interior equation with a
    mirror node ``v[n] = v[n-1]``, so the solution is symmetric about
    ``k = n - 1/2``:  ``v[k] = v[0] cosh(gamma (n - 1/2 - k)) / cosh(gamma (n - 1/2))``.
    The current into the driven end is ``g v[0] + (v[0] - v[1]) / r``, i.e. an
    input conductance ``G_in = g + (1 - c(n - 3/2) / c(n - 1/2)) / r``
    (``c(t) = cosh(gamma t)``); behind a source resistance ``R_s`` the end
    node sits at ``v[0] = V / (1 + R_s G_in)``.
``divider_1x1``, ``four_ends_1x1``, ``four_ends_1x1_ideal_left``
    One device between two nodes, each node fed by up to two sources with
    resistances: Thevenin equivalents on both sides and a series circuit.
``resistor_chain``
    A word line with every device open between two ideal drives: a series
    chain of its (non-uniform, partly 0 ohm) segments.
``equipotential``
    A single ideal drive and every other end floating: no current can flow,
    every node sits at the drive voltage. The bit lines hang on devices
    only (1e-4 S against 1..2 S of wire), the hard case for a residual
    measured against wire-sized currents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import xbarsim as xs
from naive import end_arrays

__all__ = [
    "Problem", "PROBLEMS", "FIELDS", "Circuit", "random_circuit",
    "has_ideal_wire", "refuses_ideal_wire",
    "assert_matches", "assert_close_scaled", "assert_solutions_close", "assert_within_voltage_bound",
    "rounding_floor", "REL", "ENDS",
]

FIELDS = ("v_wl", "v_bl", "i_device", "i_out", "left", "right", "top", "bottom")
"""Keys of `Problem.expected`: solution fields, and end names for terminal currents."""

VOLT_FIELDS = ("v_wl", "v_bl")


class _AsCircuit:
    """What a problem and a random circuit both offer: ``g``, ``r_wl``,
    ``r_bl`` and ``drives`` as `xbarsim.solve` and `naive_solve` take them."""

    def crossbar(self):
        return xs.Crossbar(self.g, r_wl=self.r_wl, r_bl=self.r_bl)

    def naive_args(self):
        return dict(g=self.g, r_wl=self.r_wl, r_bl=self.r_bl, **self.drives)

    @property
    def has_ideal_wire(self):
        return has_ideal_wire(self.g, self.r_wl, self.r_bl)


@dataclass
class Problem(_AsCircuit):
    name: str
    g: np.ndarray
    r_wl: object
    r_bl: object
    drives: dict
    """Keyword arguments left/right/top/bottom for `xbarsim.solve`."""
    expected: dict
    """Field (see `FIELDS`) -> exact value."""
    rtol: float
    """Relative tolerance of this problem."""
    atol_v: float = 1e-15
    """Absolute floor, volts, for entries whose exact value is 0."""
    atol_i: float = 1e-18
    """Absolute floor, amperes, for entries whose exact value is 0."""


def has_ideal_wire(g, r_wl, r_bl):
    """True when some wire segment of the array has r = 0."""
    M, N = np.shape(g)
    return bool(np.any(np.broadcast_to(r_wl, (M, N - 1)) == 0)
                or np.any(np.broadcast_to(r_bl, (M - 1, N)) == 0))


def refuses_ideal_wire(method):
    """Methods documented to refuse (ParameterError) arrays with a 0-ohm segment.

    ``"mg"``: its 2 x 2 coarsening needs every node to be its own unknown
    (xbarsim/solve.py, xbarsim/_multigrid.py).
    """
    return method == "mg"


def solution_field(sol, key):
    """Field `key` of an `xbarsim.Solution` or a `naive.NaiveSolution`."""
    if key in ("left", "right", "top", "bottom"):
        return sol.i_terminal[key]
    return getattr(sol, key)


def assert_matches(sol, problem):
    """Every expected field of `problem` within its tolerance."""
    for key, exact in problem.expected.items():
        got = solution_field(sol, key)
        atol = problem.atol_v if key in VOLT_FIELDS else problem.atol_i
        assert got.shape == np.shape(exact), (problem.name, key, got.shape)
        np.testing.assert_allclose(
            got, exact, rtol=problem.rtol, atol=atol, equal_nan=True,
            err_msg=f"problem {problem.name}, field {key}",
        )


# ----------------------------------------------------------------------------
# Comparing solutions
# ----------------------------------------------------------------------------

REL = 1e-9
"""Agreement between methods and with the oracle, relative to the largest magnitude."""

ENDS = ("left", "right", "top", "bottom")


def assert_close_scaled(actual, desired, rel=REL, err_msg=""):
    """|actual - desired| <= rel * max|desired| elementwise; NaN only where desired is NaN."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, (err_msg, actual.shape, desired.shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(desired), err_msg=err_msg)
    finite = ~np.isnan(desired)
    if not finite.any():
        return
    scale = np.max(np.abs(desired[finite]))
    np.testing.assert_allclose(actual[finite], desired[finite], rtol=0, atol=rel * scale, err_msg=err_msg)


def assert_within_voltage_bound(sol, ref, tol, what="", times=1.0):
    """Assert `sol`'s node voltages within `times` the voltage bound at `tol`
    (VTOL_PER_TOL tol of the largest node voltage of `ref`) of `ref`'s;
    returns that largest node voltage."""
    from xbarsim._pcg import VTOL_PER_TOL

    vmax = max(np.max(np.abs(ref.v_wl)), np.max(np.abs(ref.v_bl)))
    for name in ("v_wl", "v_bl"):
        np.testing.assert_allclose(getattr(sol, name), getattr(ref, name), rtol=0,
                                   atol=times * VTOL_PER_TOL * tol * vmax, err_msg=f"{what} {name}")
    return vmax


def assert_solutions_close(sol, ref, rel=REL, current_floor=0.0, voltage_floor=0.0):
    """Voltages, device currents, terminal currents and i_out of two solutions.

    Voltages within ``rel`` of the largest voltage plus `voltage_floor`
    (volts: where every node sits at 0 V, the dense oracle's answer is its
    rounding noise, 2e-16 of a 1 V drive); currents within ``rel``
    of the largest terminal current plus `current_floor` (amperes, see
    `rounding_floor`: a circuit in which no current flows has terminal
    currents that are pure rounding noise).
    """
    # both layers on one scale: the largest node voltage (a layer pinned at 0 V
    # holds only the oracle's rounding noise, 1e-26 V next to 1e-6 V drives)
    v_scale = max(float(np.max(np.abs(np.nan_to_num(getattr(ref, name))), initial=0.0)) for name in ("v_wl", "v_bl"))
    for name in ("v_wl", "v_bl"):
        a, d = getattr(sol, name), getattr(ref, name)
        assert a.shape == d.shape, name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(d), err_msg=name)
        np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(d), rtol=0, atol=rel * v_scale + voltage_floor,
                                   err_msg=name)
    # currents on one common scale: the largest terminal current
    scale = max(np.max(np.abs(np.nan_to_num(ref.i_terminal[e]))) for e in ENDS)
    atol = rel * scale + current_floor
    for e in ENDS:
        a, d = sol.i_terminal[e], ref.i_terminal[e]
        assert a.shape == d.shape, e
        np.testing.assert_array_equal(np.isnan(a), np.isnan(d), err_msg=e)
        np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(d), rtol=0, atol=atol, err_msg=e)
    for name in ("i_device", "i_out"):
        a, d = getattr(sol, name), getattr(ref, name)
        assert a.shape == d.shape, name
        device_scale = max(scale, np.max(np.abs(d)))
        np.testing.assert_allclose(a, d, rtol=0, atol=rel * device_scale + current_floor, err_msg=name)


ROUNDING = 1e-13
"""A few hundred ulps: relative rounding noise of a current computed from
node voltages (currents through conductance g between nodes near V carry
an error of order eps * g * V even when no current flows)."""


def max_drive(circuit):
    """The largest |voltage| of any driven end, volts."""
    M, N = np.shape(circuit.g)
    v_max = 0.0
    for name in ENDS:
        v, _, floating, _ = end_arrays(circuit.drives.get(name), M if name in ("left", "right") else N)
        if (~floating).any():
            v_max = max(v_max, float(np.max(np.abs(v[~floating]))))
    return v_max


def kcl_violations(circuit, v_wl, v_bl, i_term, v0=None):
    """(largest current imbalance of any node group, largest element current).

    A group is a maximal run of nodes joined by 0-ohm segments (the current
    inside it is not a function of the voltages); every other element's
    current is computed here from the node voltages (devices linear, or
    ``G V0 sinh(V/V0)`` with ``v0``), terminal currents are taken from the
    solution.
    """
    g = circuit.g
    M, N = g.shape
    r_wl = np.broadcast_to(np.asarray(circuit.r_wl, float), (M, N - 1))
    r_bl = np.broadcast_to(np.asarray(circuit.r_bl, float), (M - 1, N))
    i_dev = g * (v_wl - v_bl) if v0 is None else g * v0 * np.sinh((v_wl - v_bl) / v0)
    inflow_wl = -i_dev  # device current into each word-line node
    inflow_bl = i_dev.copy()
    currents = [np.abs(inflow_wl).ravel()]
    for i in range(M):
        for j in range(N - 1):
            if r_wl[i, j] > 0:
                cur = (v_wl[i, j] - v_wl[i, j + 1]) / r_wl[i, j]
                inflow_wl[i, j] -= cur
                inflow_wl[i, j + 1] += cur
                currents.append([abs(cur)])
    for i in range(M - 1):
        for j in range(N):
            if r_bl[i, j] > 0:
                cur = (v_bl[i, j] - v_bl[i + 1, j]) / r_bl[i, j]
                inflow_bl[i, j] -= cur
                inflow_bl[i + 1, j] += cur
                currents.append([abs(cur)])
    term = i_term
    inflow_wl[:, 0] += term["left"]
    inflow_wl[:, N - 1] += term["right"]
    inflow_bl[0, :] += term["top"]
    inflow_bl[M - 1, :] += term["bottom"]
    currents += [np.abs(t) for t in term.values()]
    worst = 0.0
    # word line i, groups split where r_wl > 0; bit line j, where r_bl > 0
    for i in range(M):
        start = 0
        for j in range(N):
            if j == N - 1 or r_wl[i, j] > 0:
                worst = max(worst, abs(inflow_wl[i, start : j + 1].sum()))
                start = j + 1
    for j in range(N):
        start = 0
        for i in range(M):
            if i == M - 1 or r_bl[i, j] > 0:
                worst = max(worst, abs(inflow_bl[start : i + 1, j].sum()))
                start = i + 1
    return worst, max(np.max(c) if len(c) else 0.0 for c in currents)


def rounding_floor(circuit):
    """Absolute current floor, amperes: ``ROUNDING`` x largest source voltage
    x largest conductance of any element (device, wire segment, terminal)."""
    M, N = np.shape(circuit.g)
    conductances = [np.max(circuit.g)]
    for r, shape in ((circuit.r_wl, (M, N - 1)), (circuit.r_bl, (M - 1, N))):
        r = np.broadcast_to(np.asarray(r, float), shape)
        if np.any(r > 0):
            conductances.append(1.0 / np.min(r[r > 0]))
    for name in ENDS:
        _, r, floating, _ = end_arrays(circuit.drives.get(name), M if name in ("left", "right") else N)
        if np.any(~floating & (r > 0)):
            conductances.append(1.0 / np.min(r[~floating & (r > 0)]))
    return ROUNDING * max_drive(circuit) * max(conductances)


def check_sinh_column(circuit, v_wl, v_bl, i_device, i_term, v0, what=""):
    """Assert one batch column of a sinh solve: every device carries
    ``G V0 sinh(V/V0)`` at the returned voltages (to 1e-12), and every node
    group balances (`kcl_violations`) to `REL` of the largest element current
    plus the rounding floor, which counts the devices' small-signal
    conductance ``G cosh(V/V0)``. Returns that floor."""
    vd = v_wl - v_bl
    np.testing.assert_allclose(i_device, circuit.g * v0 * np.sinh(vd / v0), rtol=1e-12, atol=0, err_msg=what)
    gcosh = float(np.max(circuit.g * np.cosh(vd / v0)))
    floor = max(rounding_floor(circuit), ROUNDING * float(np.max(np.abs(vd), initial=0.0)) * gcosh)
    worst, scale = kcl_violations(circuit, v_wl, v_bl, i_term, v0=v0)
    assert worst <= REL * scale + floor, (what, "node KCL", worst, scale, floor)
    return floor


def _open(n, batch=None):
    """The current of a floating end: none."""
    return np.zeros((n,) if batch is None else (n, batch))


# ----------------------------------------------------------------------------
# The problems
# ----------------------------------------------------------------------------


def _ideal_read(batch=None):
    rng = np.random.default_rng(11)
    M, N = 5, 4
    g = rng.uniform(1e-4, 5e-4, (M, N))
    g[1, 2] = 0.0  # an open device changes nothing in the ideal limit
    x = rng.uniform(-0.5, 0.5, (M,) if batch is None else (M, batch))
    bcast = (slice(None), None) if batch is None else (slice(None), None, slice(None))
    v_wl = np.broadcast_to(x[bcast], (M, N) if batch is None else (M, N, batch))
    g_b = g if batch is None else g[:, :, None]
    return Problem(
        name="ideal_read" if batch is None else "ideal_read_batch",
        g=g, r_wl=0.0, r_bl=0.0,
        drives=dict(left=xs.Drive(x), right=None, top=None, bottom=xs.Drive(0.0)),
        expected={
            "i_out": g.T @ x,
            "v_wl": v_wl,
            "v_bl": np.zeros_like(v_wl),
            "i_device": g_b * v_wl,
            "left": g.sum(axis=1)[(slice(None),) + (None,) * (x.ndim - 1)] * x,
            "bottom": -(g.T @ x),
            "right": _open(M, batch),
            "top": _open(N, batch),
        },
        rtol=1e-12,
    )


def _ladder_profile(n, r, g):
    """(v[k] / v[0] for k < n, input conductance) of the open-ended R-G ladder."""
    gamma = np.arccosh(1.0 + r * g / 2.0)
    k = np.arange(n)
    ratio = np.cosh(gamma * (n - 0.5 - k)) / np.cosh(gamma * (n - 0.5))
    if n == 1:
        g_in = g
    else:
        g_in = g + (1.0 - np.cosh(gamma * (n - 1.5)) / np.cosh(gamma * (n - 0.5))) / r
    return ratio, g_in


def _ladder_wl(r_source):
    n, r, g, V = 40, 2.5, 1e-3, 0.7
    ratio, g_in = _ladder_profile(n, r, g)
    v0 = V / (1.0 + r_source * g_in)
    v = v0 * ratio[None, :]
    return Problem(
        name=f"ladder_wl_rs{r_source:g}",
        g=np.full((1, n), g), r_wl=r, r_bl=0.0,
        drives=dict(left=xs.Drive(V, r=r_source), right=None, top=None, bottom=xs.Drive(0.0)),
        expected={
            "v_wl": v,
            "v_bl": np.zeros((1, n)),
            "i_device": g * v,
            "i_out": g * v[0],
            "left": np.array([v0 * g_in]),
            "right": _open(1),
            "top": _open(n),
            "bottom": -g * v[0],
        },
        rtol=1e-11,
    )


def _ladder_bl():
    """A bit line driven at its bottom end, word lines (one node each) grounded."""
    m, r, g, V = 30, 1.5, 2e-3, 0.4
    ratio, g_in = _ladder_profile(m, r, g)
    v = V * ratio[::-1][:, None]  # node 0 of the ladder is BL(m-1, 0)
    return Problem(
        name="ladder_bl_bottom",
        g=np.full((m, 1), g), r_wl=0.0, r_bl=r,
        drives=dict(left=xs.Drive(0.0), right=None, top=None, bottom=xs.Drive(V)),
        expected={
            "v_wl": np.zeros((m, 1)),
            "v_bl": v,
            "i_device": -g * v,
            "i_out": np.array([-V * g_in]),  # out of the array through the bottom
            "bottom": np.array([V * g_in]),
            "left": -g * v[:, 0],
            "right": _open(m),
            "top": _open(1),
        },
        rtol=1e-11,
    )


def _divider_1x1():
    g, V, rs, ro = 1.0 / 3000.0, 0.8, 120.0, 75.0
    i = V / (rs + 1.0 / g + ro)
    return Problem(
        name="divider_1x1",
        g=np.array([[g]]), r_wl=0.0, r_bl=0.0,
        drives=dict(left=xs.Drive([V], r=rs), right=None, top=None, bottom=xs.Drive(0.0, r=ro)),
        expected={
            "v_wl": np.array([[V - i * rs]]),
            "v_bl": np.array([[i * ro]]),
            "i_device": np.array([[i]]),
            "i_out": np.array([i]),
            "left": np.array([i]),
            "bottom": np.array([-i]),
            "right": _open(1),
            "top": _open(1),
        },
        rtol=1e-13,
    )


def _four_ends_1x1(ideal_left):
    """Both ends of the single word line and bit line driven through resistors."""
    g = 1.0 / 4700.0
    (v1, r1), (v2, r2) = (0.9, 0.0 if ideal_left else 330.0), (-0.2, 510.0)
    (v3, r3), (v4, r4) = (0.35, 220.0), (-0.6, 1000.0)
    # Thevenin equivalents of the word-line side and the bit-line side.
    if r1 == 0.0:
        va, ra = v1, 0.0
    else:
        va, ra = (v1 / r1 + v2 / r2) / (1 / r1 + 1 / r2), r1 * r2 / (r1 + r2)
    vb, rb = (v3 / r3 + v4 / r4) / (1 / r3 + 1 / r4), r3 * r4 / (r3 + r4)
    i = (va - vb) / (ra + 1.0 / g + rb)
    a, b = va - i * ra, vb + i * rb
    i2 = (v2 - a) / r2
    i1 = i - i2 if r1 == 0.0 else (v1 - a) / r1
    i3, i4 = (v3 - b) / r3, (v4 - b) / r4
    return Problem(
        name="four_ends_1x1" + ("_ideal_left" if ideal_left else ""),
        g=np.array([[g]]), r_wl=0.0, r_bl=0.0,
        drives=dict(left=xs.Drive(v1, r=r1), right=xs.Drive(v2, r=r2),
                    top=xs.Drive(v3, r=r3), bottom=xs.Drive(v4, r=r4)),
        expected={
            "v_wl": np.array([[a]]),
            "v_bl": np.array([[b]]),
            "i_device": np.array([[i]]),
            "left": np.array([i1]),
            "right": np.array([i2]),
            "top": np.array([i3]),
            "bottom": np.array([i4]),
            "i_out": np.array([-i4]),
        },
        rtol=1e-12,
    )


def _resistor_chain():
    r = np.array([[2.0, 0.0, 3.5, 0.0, 1.0]])
    v1, v2 = 1.0, -0.5
    total = r.sum()
    cum = np.concatenate([[0.0], np.cumsum(r[0])])
    v = v1 + (v2 - v1) * cum / total
    i = (v1 - v2) / total
    n = r.shape[1] + 1
    return Problem(
        name="resistor_chain",
        g=np.zeros((1, n)), r_wl=r, r_bl=0.0,
        drives=dict(left=xs.Drive(v1), right=xs.Drive(v2), top=None, bottom=xs.Drive(0.0)),
        expected={
            "v_wl": v[None, :],
            "v_bl": np.zeros((1, n)),
            "i_device": np.zeros((1, n)),
            "i_out": np.zeros(n),
            "left": np.array([i]),
            "right": np.array([-i]),
            "top": _open(n),
            "bottom": np.zeros(n),
        },
        rtol=1e-13,
    )


def _equipotential():
    g = np.full((1, 4), 1.1798e-4)
    V = 1.0
    return Problem(
        name="equipotential",
        g=g, r_wl=np.array([[1.0, 1.0, 0.5]]), r_bl=0.0,
        drives=dict(left=None, right=xs.Drive(V), top=None, bottom=None),
        expected={
            "v_wl": np.full((1, 4), V),
            "v_bl": np.full((1, 4), V),
            "i_device": np.zeros((1, 4)),
            "i_out": np.zeros(4),
            "right": np.zeros(1),
            "left": _open(1),
            "top": _open(4),
            "bottom": _open(4),
        },
        # voltages to REL of V; currents to REL of what the devices would
        # carry with V across them
        rtol=REL, atol_v=REL * V, atol_i=REL * V * g.sum(),
    )


PROBLEMS = [
    _ideal_read(),
    _ideal_read(batch=3),
    _ladder_wl(0.0),
    _ladder_wl(50.0),
    _ladder_bl(),
    _divider_1x1(),
    _four_ends_1x1(ideal_left=False),
    _four_ends_1x1(ideal_left=True),
    _resistor_chain(),
    _equipotential(),
]


# ----------------------------------------------------------------------------
# Random circuits for the contract tests
# ----------------------------------------------------------------------------


@dataclass
class Circuit(_AsCircuit):
    """A crossbar plus drives, as both `xbarsim.solve` and `naive_solve` take them."""

    g: np.ndarray
    r_wl: object
    r_bl: object
    drives: dict = field(default_factory=dict)


def random_circuit(rng, M, N, batch=None, wires=True, ends="read", p_open=0.0, p_ideal_wire=0.0):
    """A random, well-posed test circuit.

    Parameters
    ----------
    rng : numpy.random.Generator
    M, N : int
    batch : None or int
        None: drive voltages (L,); int: (L, batch) on the left end (and on the
        top end for ``ends="mixed"``).
    wires : bool
        Random per-segment wire resistances 0.5..5 ohm when True; ideal
        (0 ohm) wires otherwise.
    ends : {"read", "mixed"}
        ``"read"``: left driven through 0..100 ohm, bottom at 0 V through
        0..50 ohm. ``"mixed"``: left ideal, right resistive on some lines
        and floating on the rest, top through 1 kohm on half of the bit
        lines, bottom ideal at random voltages.
    p_open : float
        Probability that a device is open.
    p_ideal_wire : float
        With ``wires``, probability that a segment is exactly 0 ohm.
    """
    g = rng.uniform(1e-4, 5e-4, (M, N))
    g[rng.random((M, N)) < p_open] = 0.0
    if wires:
        r_wl = rng.uniform(0.5, 5.0, (M, N - 1))
        r_bl = rng.uniform(0.5, 5.0, (M - 1, N))
        r_wl[rng.random(r_wl.shape) < p_ideal_wire] = 0.0
        r_bl[rng.random(r_bl.shape) < p_ideal_wire] = 0.0
    else:
        r_wl = r_bl = 0.0
    vshape_m = (M,) if batch is None else (M, batch)
    vshape_n = (N,) if batch is None else (N, batch)
    if ends == "read":
        drives = dict(
            left=xs.Drive(rng.uniform(-0.5, 0.5, vshape_m), r=rng.uniform(0.0, 100.0, M)),
            right=None,
            top=None,
            bottom=xs.Drive(0.0, r=rng.uniform(0.0, 50.0, N)),
        )
    elif ends == "mixed":
        drives = dict(
            left=xs.Drive(rng.uniform(-0.5, 0.5, vshape_m)),
            right=xs.Drive(rng.uniform(-0.5, 0.5, M), r=rng.uniform(10.0, 500.0, M),
                           floating=rng.random(M) < 0.5),
            top=xs.Drive(rng.uniform(-0.5, 0.5, vshape_n), r=1000.0,
                         floating=np.arange(N) % 2 == 1),
            bottom=xs.Drive(rng.uniform(-0.2, 0.2, N)),
        )
    else:
        raise ValueError(ends)
    return Circuit(g=g, r_wl=r_wl, r_bl=r_bl, drives=drives)
