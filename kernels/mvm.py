"""Batched MVM of many programmed copies of one tile, through the circuit.

Read configuration of CIRCUIT.md: word line ``i`` driven at its left end
with ``v[b, i]``, every bit line held at 0 V at its bottom end. The output of
bit line ``j`` is its sensed current. Per transfer the B inputs are solved
one after another, each started from the ideal-wire voltages (the drives);
with ideal wires the node voltages are the drives and the solve is skipped.
Read noise: each device's current carries an independent relative Gaussian
error of standard deviation ``read_noise``; its sum over a column is drawn
directly (``read_noise * sqrt(sum_i I_ij^2)`` per output).
"""

import math

import numpy as np
from numba import njit, prange

from .config import STRICT_PJIT
from .nodal import column_current, device_current, nodal_work, set_ideal, solve_nodal
from .noise import normal, stream_key


@njit(**STRICT_PJIT)
def mvm_arrays(g, v, v0, v0inv, r_wl, r_bl, read_noise, seed, offset, key, tol, maxit,
               out, fails):
    """``out[t, b, j]``: sensed current of bit line j of transfer t, input b.

    ``g`` (n, M, N) conductances, ``v`` (nv, B, M) word-line voltages with
    ``nv`` 1 (the same inputs for every transfer) or n (inputs per transfer).
    ``fails[t]`` counts the inputs whose solve missed ``tol``.
    """
    n, M, N = g.shape
    nv = v.shape[0]
    B = v.shape[1]
    exact = r_wl == 0.0 and r_bl == 0.0
    for t in prange(n):
        G = g[t]
        wl_drv = np.ones(M, dtype=np.uint8)
        bl_drv = np.ones(N, dtype=np.uint8)
        bl_v = np.zeros(N)
        vwl = np.zeros((M, N))
        vbl = np.zeros((M, N))
        gd = np.zeros((M, N))
        i0 = np.zeros((M, N))
        cp, dq = nodal_work(M, N)
        rate = np.full(1, -1.0)
        st = np.empty(1, dtype=np.uint64)
        st[0] = stream_key(seed, np.uint64(offset + t), key)
        nf = 0
        vt = v[t] if nv > 1 else v[0]
        for b in range(B):
            vb = vt[b]
            vmax = 0.0
            for i in range(M):
                vmax = max(vmax, abs(vb[i]))
            # the ideal-wire voltages are a far better start than the last input's
            set_ideal(vb, wl_drv, bl_v, bl_drv, vwl, vbl)
            if not exact and vmax > 0.0:
                rate[0] = -1.0  # a cold start per input: no contraction carried over
                it = solve_nodal(G, v0, v0inv, r_wl, r_bl, vb, wl_drv, bl_v, bl_drv,
                                 vwl, vbl, gd, i0, cp, dq, tol * vmax, maxit, rate)
                if it < 0:
                    nf += 1
            for j in range(N):
                if read_noise > 0.0:
                    s = 0.0
                    s2 = 0.0
                    for i in range(M):
                        c = device_current(G[i, j], vwl[i, j] - vbl[i, j], v0, v0inv)
                        s += c
                        s2 += c * c
                    out[t, b, j] = s + read_noise * math.sqrt(s2) * normal(st)
                else:
                    out[t, b, j] = column_current(G, v0, v0inv, vwl, vbl, j)
        fails[t] = nf
