"""A dense, obviously-correct oracle for small crossbars (stumpy's ``naive.py``).

Modified Nodal Analysis over all ``2 M N`` array nodes, written straight
from docs/CIRCUIT.md and sharing no code with the package's assembly:

* every device ``(i, j)`` is a conductance ``g[i, j]`` between ``WL(i,j)``
  and ``BL(i,j)``;
* every wire segment with ``r > 0`` is a conductance ``1 / r``; every
  segment with ``r = 0`` is a 0 V voltage source with its own current
  unknown (nodes are *not* merged);
* a driven end with ``R = 0`` is a voltage source from ground to the end
  node, with its own current unknown; a driven end with ``R > 0`` is a
  voltage source from ground to an extra internal node plus a resistor
  ``R`` from that node to the end node; a floating end is nothing at all.

The dense system is solved with ``numpy.linalg.solve``, one batch column at a
time. Linear devices only. Meant for arrays of a few dozen cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NaiveSolution", "naive_solve", "naive_singular", "end_arrays"]

END_LINES = {"left": "wl", "right": "wl", "top": "bl", "bottom": "bl"}


@dataclass
class NaiveSolution:
    v_wl: np.ndarray
    """(M, N[, B]) word-line node voltages."""
    v_bl: np.ndarray
    """(M, N[, B]) bit-line node voltages."""
    i_device: np.ndarray
    """(M, N[, B]) device currents, word line -> bit line."""
    i_terminal: dict
    """end name -> (L[, B]) current into the array, 0 where floating (an open end carries none)."""
    i_out: np.ndarray
    """(N[, B]) current out of the array through the bottom ends, 0 where floating."""
    driven: dict
    """end name -> (L,) bool, False where the end floats."""


def end_arrays(drive, n_lines):
    """``(v (L, B), r (L,), floating (L,), batched)`` of one end; None floats every line.

    Accepts an ``xbarsim.Drive`` or anything with ``v``, ``r``, ``floating``
    attributes; only reads them.
    """
    if drive is None:
        return np.zeros((n_lines, 1)), np.zeros(n_lines), np.ones(n_lines, bool), False
    v = np.asarray(drive.v, dtype=float)
    batched = v.ndim == 2
    if v.ndim == 0:
        v = np.full((n_lines, 1), float(v))
    elif v.ndim == 1:
        v = v.reshape(n_lines, 1)
    r = np.broadcast_to(np.asarray(drive.r, dtype=float), (n_lines,)).copy()
    if drive.floating is None:
        floating = np.zeros(n_lines, bool)
    else:
        floating = np.asarray(drive.floating, dtype=bool).copy()
    return v, r, floating, batched


def naive_singular(g, r_wl=0.0, r_bl=0.0, left=None, right=None, top=None, bottom=None):
    """Whether the circuit's dense MNA matrix is singular (``matrix_rank``
    below its size): no unique solution, the only reason a solver may
    refuse a circuit with `xbarsim.CircuitError`. Arguments as
    `naive_solve`; the device pattern of `g` decides, as for sinh devices."""
    A = naive_solve(g, r_wl, r_bl, left, right, top, bottom, _matrix=True)
    return np.linalg.matrix_rank(A) < A.shape[0]


def naive_solve(g, r_wl=0.0, r_bl=0.0, left=None, right=None, top=None, bottom=None, digits=None, _matrix=False):
    """Solve the crossbar by dense MNA. Arguments as `xbarsim.Crossbar` / `xbarsim.solve`.

    ``digits``: solve in that many decimal digits with mpmath (the matrix
    built from the exact float inputs, ``1 / r`` taken in that precision)
    and round the answer to float64: an oracle for circuits whose float64
    elimination itself loses digits (devices 1e12 weaker than their wires).
    ``_matrix``: return the MNA matrix instead (`naive_singular`)."""
    g = np.asarray(g, dtype=float)
    M, N = g.shape
    r_wl = np.broadcast_to(np.asarray(r_wl, dtype=float), (M, N - 1))
    r_bl = np.broadcast_to(np.asarray(r_bl, dtype=float), (M - 1, N))
    ends = {
        "left": end_arrays(left, M),
        "right": end_arrays(right, M),
        "top": end_arrays(top, N),
        "bottom": end_arrays(bottom, N),
    }
    batches = {e[0].shape[1] for e in ends.values() if e[3]}
    assert len(batches) <= 1, "mismatched batch sizes"
    B = batches.pop() if batches else 1
    batched = any(e[3] for e in ends.values())

    def wl(i, j):
        return i * N + j

    def bl(i, j):
        return M * N + i * N + j

    def end_node(name, line):
        return {
            "left": wl(line, 0),
            "right": wl(line, N - 1),
            "top": bl(0, line),
            "bottom": bl(M - 1, line),
        }[name]

    # Conductances between nodes; node index -1 is ground.
    conductors = []  # (a, b, conductance)
    sources = []  # (node, voltage key); the source pushes its current into `node`
    wires0 = []  # (a, b): 0 V source, current unknown flowing a -> b
    for i in range(M):
        for j in range(N):
            if g[i, j] != 0:
                conductors.append((wl(i, j), bl(i, j), g[i, j]))
    for i in range(M):
        for j in range(N - 1):
            if r_wl[i, j] == 0:
                wires0.append((wl(i, j), wl(i, j + 1)))
            else:
                conductors.append((wl(i, j), wl(i, j + 1), ("r", r_wl[i, j])))
    for i in range(M - 1):
        for j in range(N):
            if r_bl[i, j] == 0:
                wires0.append((bl(i, j), bl(i + 1, j)))
            else:
                conductors.append((bl(i, j), bl(i + 1, j), ("r", r_bl[i, j])))
    n_nodes = 2 * M * N
    terminal_source = {}  # (end, line) -> index in `sources`
    for name, (v, r, floating, _) in ends.items():
        for line in range(len(r)):
            if floating[line]:
                continue
            node = end_node(name, line)
            if r[line] == 0:
                src_node = node
            else:
                src_node = n_nodes  # a new internal node behind the resistor
                n_nodes += 1
                conductors.append((src_node, node, ("r", r[line])))
            terminal_source[name, line] = len(sources)
            sources.append((src_node, (name, line)))

    n_src = len(sources)
    n_w0 = len(wires0)
    size = n_nodes + n_src + n_w0
    if digits is None:
        zero, one = 0.0, 1.0
        conductance = lambda c: 1.0 / c[1] if isinstance(c, tuple) else c  # noqa: E731
    else:
        import mpmath

        ctx = mpmath.MPContext()
        ctx.dps = digits
        zero, one = ctx.mpf(0), ctx.mpf(1)
        conductance = lambda c: one / ctx.mpf(c[1]) if isinstance(c, tuple) else ctx.mpf(c)  # noqa: E731
    A = np.full((size, size), zero, dtype=float if digits is None else object)
    for a, b, c in conductors:
        c = conductance(c)
        A[a, a] += c
        A[b, b] += c
        A[a, b] -= c
        A[b, a] -= c
    # Rows of KCL: (sum of currents leaving the node through conductors)
    # - (currents entering through source / 0 V wire branches) = 0.
    for k, (node, _) in enumerate(sources):
        col = n_nodes + k
        A[node, col] -= 1.0  # source current enters `node`
        A[col, node] = 1.0  # branch equation: v(node) = V
    for k, (a, b) in enumerate(wires0):
        col = n_nodes + n_src + k
        A[a, col] += 1.0  # current leaves a
        A[b, col] -= 1.0  # and enters b
        A[col, a] = 1.0  # branch equation: v(a) - v(b) = 0
        A[col, b] = -1.0
    if _matrix:
        return A

    v_wl = np.empty((M, N, B))
    v_bl = np.empty((M, N, B))
    i_term = {name: np.zeros((len(e[1]), B)) for name, e in ends.items()}
    for col in range(B):
        rhs = np.full(size, zero, dtype=A.dtype)
        for k, (_, (name, line)) in enumerate(sources):
            v_end = ends[name][0]  # (L, 1) when this end carries no batch
            v = v_end[line, col if v_end.shape[1] > 1 else 0]
            rhs[n_nodes + k] = v if digits is None else ctx.mpf(v)
        if digits is None:
            x = np.linalg.solve(A, rhs)
        else:
            x = np.array([float(t) for t in ctx.lu_solve(ctx.matrix(A.tolist()), ctx.matrix(rhs.tolist()))])
        v_wl[:, :, col] = x[: M * N].reshape(M, N)
        v_bl[:, :, col] = x[M * N : 2 * M * N].reshape(M, N)
        for (name, line), k in terminal_source.items():
            i_term[name][line, col] = x[n_nodes + k]
    i_device = g[:, :, None] * (v_wl - v_bl)
    i_out = -i_term["bottom"]
    if not batched:
        v_wl, v_bl, i_device, i_out = (a[..., 0] for a in (v_wl, v_bl, i_device, i_out))
        i_term = {k: a[..., 0] for k, a in i_term.items()}
    driven = {name: ~e[2] for name, e in ends.items()}
    return NaiveSolution(v_wl=v_wl, v_bl=v_bl, i_device=i_device, i_terminal=i_term, i_out=i_out, driven=driven)
