"""Batched MVM of many programmed copies of one tile, through the circuit.

Read configuration of CIRCUIT.md: word line ``i`` driven at its left end
with ``v[b, i]``, every bit line held at 0 V at its bottom end. The output of
bit line ``j`` is its sensed current. Every input is solved from the
ideal-wire voltages (the drives), so inputs are independent: transfers run
in parallel, and so do runs of one transfer's inputs when there are few
transfers (`mvm_range`, run in threads by `xbarsim.transfer`); with ideal wires the node voltages are the drives
and the solve is skipped.
Read noise: each device's current carries an independent relative Gaussian
error of standard deviation ``read_noise``; its sum over a column is drawn
directly (``read_noise * sqrt(sum_i I_ij^2)`` per output), each input from
a stream of its own.
"""

import math

import numpy as np
from numba import njit

from .config import STRICT_JIT
from .nodal import column_current, column_current_spread, nodal_work, set_ideal, solve_nodal
from .noise import normal, stream_key, substream_key


@njit(**STRICT_JIT)
def _mvm_inputs(G, vt, b0, b1, v0, v0inv, r_wl, r_bl, read_noise, key, row0, tol, maxit, out_t):
    """Inputs ``b0 <= b < b1`` of one transfer into ``out_t[b, j]``; returns
    the count of solves that missed ``tol``. Input ``b`` draws its read
    noise, column by column, from substream ``row0 + b`` of the stream
    whose start state is ``key`` (`kernels.noise.substream_key`), so no
    input's noise depends on which others are read, or in which run."""
    M, N = G.shape
    exact = r_wl == 0.0 and r_bl == 0.0
    wl_drv = np.ones(M, dtype=np.uint8)
    bl_drv = np.ones(N, dtype=np.uint8)
    bl_v = np.zeros(N)
    vwl = np.zeros((M, N))
    vbl = np.zeros((M, N))
    gd = np.zeros((M, N))
    i0 = np.zeros((M, N))
    cp, dq = nodal_work(M, N)
    rate = np.full(1, -1.0)
    never = np.zeros(1, dtype=np.uint8)  # no abort flag here: the type the programming kernel passes (one compile)
    st = np.empty(1, dtype=np.uint64)
    nf = 0
    for b in range(b0, b1):
        vb = vt[b]
        vmax = 0.0
        for i in range(M):
            vmax = max(vmax, abs(vb[i]))
        down = 1.0
        up = 1.0
        if vmax > 0.0:
            # clamped: below ~5.6e-309 V (subnormal) 2**-e overflowed to inf and the noise to NaN
            e = min(max(math.frexp(vmax)[1], -1000), 1000)
            down = math.ldexp(1.0, -e)
            up = math.ldexp(1.0, e)
        # the ideal-wire voltages are a far better start than the last input's
        set_ideal(vb, wl_drv, bl_v, bl_drv, vwl, vbl)
        if not exact and vmax > 0.0:
            rate[0] = -1.0  # a cold start per input: no contraction carried over
            it = solve_nodal(G, v0, v0inv, r_wl, r_bl, vb, wl_drv, bl_v, bl_drv,
                             vwl, vbl, gd, i0, cp, dq, tol * vmax, maxit, rate, never)
            if it < 0:
                nf += 1
        if read_noise > 0.0:
            st[0] = substream_key(key, np.uint64(row0 + b))
            for j in range(N):
                s, spread = column_current_spread(G, v0, v0inv, vwl, vbl, j, down)
                out_t[b, j] = s + read_noise * (spread * up) * normal(st)
        else:
            for j in range(N):
                out_t[b, j] = column_current(G, v0, v0inv, vwl, vbl, j)
    return nf


@njit(**STRICT_JIT)
def mvm_range(g, v, v0, v0inv, r_wl, r_bl, read_noise, seed, offset, key, row0, tol, maxit,
              out, fails, per, c0, c1):
    """Items ``c0 <= c < c1`` of a batched MVM (`xbarsim.transfer._mvm_arrays`).

    ``out[t, b, j]``: sensed current of bit line j of transfer t, input b;
    ``g`` (n, M, N) conductances, ``v`` (nv, B, M) word-line voltages with
    ``nv`` 1 (the same inputs for every transfer) or n (inputs per transfer).

    Item ``c`` is run ``k = c % chunks`` of transfer ``t = c // chunks``
    (``chunks = fails.shape[1]``): inputs ``k per <= b < (k + 1) per``, the
    count of their solves that missed ``tol`` in ``fails[t, k]``. Every
    input starts from the ideal-wire voltages and draws its read noise from
    substream ``row0 + b`` of the stream ``(seed, offset + t, key)``, so the
    result depends neither on the runs nor on the thread count, and input
    ``b`` of a call with ``row0`` 0 equals input ``b - r`` of one with
    ``row0`` r. Serial: threads run chunks of the items in parallel
    (`xbarsim._parallel`).
    """
    nv = v.shape[0]
    B = v.shape[1]
    chunks = fails.shape[1]
    for c in range(c0, c1):
        t = c // chunks
        k = c % chunks
        b0 = k * per
        b1 = min(B, b0 + per)
        if b0 < b1:
            fails[t, k] = _mvm_inputs(g[t], v[t] if nv > 1 else v[0], b0, b1, v0, v0inv, r_wl, r_bl,
                                      read_noise, stream_key(seed, np.uint64(offset + t), key), row0, tol,
                                      maxit, out[t])
