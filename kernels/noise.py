"""Counter-based random streams and the noise-sampling kernels.

Every random quantity of a transfer is drawn from a *stream* keyed by
``(seed, a, b)`` (for example ``(seed, transfer index, tile index)`` or
``(seed, device index, 0)``). A stream is a SplitMix64 sequence whose start
is a hash of its key, held in a one-element ``uint64`` array the kernel
advances in place. Nothing depends on numba's per-thread generator state, so
results are bit-identical for any thread count and any chunking.
"""

import math

import numpy as np
from numba import njit, prange

from .config import STRICT_JIT, STRICT_PJIT

# Layout of the packed device parameter vector ``dp`` (filled by
# xbarsim.devices.DeviceParams.pack; kept here so kernels need no Python).
P_G_LO = 0
P_G_HI = 1
P_V0INV = 2
P_V0 = 3
P_VSET = 4
P_VRESET = 5
P_KSET = 6
P_KRESET = 7
P_VSLOPE = 8
P_VSUB = 9
P_TW_REF = 10
P_C2C = 11
P_READ_NOISE = 12
P_RELAX_SIGMA = 13
P_RELAX_DRIFT = 14
P_P_LRS = 15
P_LRS_MEAN = 16
P_LRS_STD = 17
P_P_HRS = 18
P_HRS_LO = 19
P_HRS_HI = 20
P_INIT_LO = 21
P_INIT_HI = 22
P_RELAX_FAST = 23
P_RELAX_TAU = 24
P_RELAX_FAST_MEAN = 25
N_DEVICE_PARAMS = 26

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_M3 = np.uint64(0xD6E8FEB86659FD93)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


@njit(**STRICT_JIT)
def mix64(z):
    """SplitMix64 finaliser: a bijective 64-bit hash."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**STRICT_JIT)
def stream_key(seed, a, b):
    """Start state of the stream keyed by ``(seed, a, b)`` (all uint64)."""
    return mix64(mix64(mix64(seed + _GOLDEN) ^ (a + _M1)) ^ (b + _M2))


@njit(**STRICT_JIT)
def substream_key(key, i):
    """Start state of substream ``i`` (uint64) of the stream whose start
    state is ``key`` (`stream_key`): a fourth key, so that each input of
    an MVM draws from a stream of its own."""
    return mix64(key ^ (i + _M3))


@njit(**STRICT_JIT)
def next_u64(state):
    state[0] += _GOLDEN
    return mix64(state[0])


@njit(**STRICT_JIT)
def uniform(state):
    """Uniform on [0, 1) with 53 random bits."""
    return float(next_u64(state) >> _S11) * _TWO_M53


def _ziggurat_tables(n=256, r=3.6541528853610088, v=0.00492867323399):
    """Layers of the Marsaglia-Tsang ziggurat for the standard normal, in the
    layout of numpy's generator (52-bit magnitudes): ``ki`` acceptance bounds,
    ``wi`` layer widths per unit of magnitude, ``fi`` the density at each
    layer edge. ``r`` is the right edge of the base layer and ``v`` the
    common area of the layers (Marsaglia & Tsang, J. Stat. Softw. 5(8), 2000)."""
    m1 = 2.0**52
    ki = np.zeros(n, dtype=np.uint64)
    wi = np.zeros(n)
    fi = np.zeros(n)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m1)
    wi[0] = q / m1
    wi[n - 1] = dn / m1
    fi[0] = 1.0
    fi[n - 1] = math.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m1)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi


_ZIG_K, _ZIG_W, _ZIG_F = _ziggurat_tables()
_ZIG_R = 3.6541528853610088
_ZIG_INV_R = 1.0 / _ZIG_R
_MASK8 = np.uint64(0xFF)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_ONE = np.uint64(1)
_S8 = np.uint64(8)


@njit(**STRICT_JIT)
def normal(state):
    """Standard normal by the 256-layer ziggurat (Marsaglia & Tsang), exact.

    One 64-bit draw gives the layer (8 bits), the sign (1 bit) and the
    magnitude (52 bits); about 99 % of draws are accepted at once, with no
    transcendental call. The rest are the wedges (one ``exp``) and the tail
    beyond ``r`` (Marsaglia's exponential method). About 5x cheaper than
    Box-Muller's log + sqrt + cos, which mattered: every disturbed cell
    draws normals on every pulse.
    """
    while True:
        r = next_u64(state)
        idx = int(r & _MASK8)
        r = r >> _S8
        rabs = (r >> _ONE) & _MASK52
        # sign without a branch (a random branch mispredicts half the time)
        x = float(np.int64(rabs)) * _ZIG_W[idx] * (1.0 - 2.0 * float(np.int64(r & _ONE)))
        if rabs < _ZIG_K[idx]:
            return x
        if idx == 0:
            while True:
                xx = -_ZIG_INV_R * math.log1p(-uniform(state))
                yy = -math.log1p(-uniform(state))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if (rabs >> _S8) & _ONE else _ZIG_R + xx
        elif (_ZIG_F[idx - 1] - _ZIG_F[idx]) * uniform(state) + _ZIG_F[idx] < math.exp(-0.5 * x * x):
            return x


@njit(**STRICT_PJIT)
def fill_normal(seed, a, out):
    """``out[k]`` standard normal from stream ``(seed, a, k)``, in parallel."""
    state_all = np.empty((out.shape[0], 1), dtype=np.uint64)
    for k in prange(out.shape[0]):
        st = state_all[k]
        st[0] = stream_key(seed, a, np.uint64(k))
        out[k] = normal(st)


@njit(**STRICT_PJIT)
def fill_uniform(seed, a, out):
    """``out[k]`` uniform on [0, 1) from stream ``(seed, a, k)``, in parallel."""
    state_all = np.empty((out.shape[0], 1), dtype=np.uint64)
    for k in prange(out.shape[0]):
        st = state_all[k]
        st[0] = stream_key(seed, a, np.uint64(k))
        out[k] = uniform(st)


@njit(**STRICT_PJIT)
def fill_row_normals(seed, first, key, row0, out):
    """``out[t, b, j]`` is the ``j``-th standard normal of substream
    ``row0 + b`` of stream ``(seed, first + t, key)``, in parallel over
    ``t``: every entry depends on its own indices alone, so neither the
    inputs read beside it nor how a batch is cut into calls changes it
    (the read noise of the training surrogate, as `mvm.mvm_range` keys
    the circuit's)."""
    n, rows, cols = out.shape
    state_all = np.empty((n, 1), dtype=np.uint64)
    for t in prange(n):
        st = state_all[t]
        k = stream_key(seed, np.uint64(first + t), key)
        for b in range(rows):
            st[0] = substream_key(k, np.uint64(row0 + b))
            for j in range(cols):
                out[t, b, j] = normal(st)


@njit(**STRICT_JIT)
def sample_state(state, dp, M, N, g, stuck):
    """Initial conductance and failure class of an M x N array.

    ``dp`` is the packed device parameter vector (xbarsim.devices). Failed
    devices: stuck near LRS (``stuck = 1``, G ~ N(mean, std), clipped to
    ``[g_lo, g_hi]``) or in HRS (``stuck = 2``, G ~ U(lo, hi)); the others start
    uniform in ``[g_init_lo, g_init_hi]`` (``stuck = 0``).
    """
    p_lrs = dp[P_P_LRS]
    p_hrs = dp[P_P_HRS]
    for i in range(M):
        for j in range(N):
            u = uniform(state)
            if u < p_lrs:
                stuck[i, j] = 1
                gv = dp[P_LRS_MEAN] + dp[P_LRS_STD] * normal(state)
                g[i, j] = min(max(gv, dp[P_G_LO]), dp[P_G_HI])  # the physical range bounds every state
            elif u < p_lrs + p_hrs:
                stuck[i, j] = 2
                g[i, j] = dp[P_HRS_LO] + (dp[P_HRS_HI] - dp[P_HRS_LO]) * uniform(state)
            else:
                stuck[i, j] = 0
                g[i, j] = dp[P_INIT_LO] + (dp[P_INIT_HI] - dp[P_INIT_LO]) * uniform(state)
