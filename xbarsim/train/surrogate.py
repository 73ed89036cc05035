"""A variability model fitted to the simulator's own Monte Carlo: `Surrogate`.

The full simulator (write-verify on the circuit, then the MVM through the
circuit) is far too slow to sit inside a training loop. `Surrogate` is a
cheap, differentiable-where-it-matters stand-in, fitted from the
simulator's samples and checked against fresh ones (`check`).

Model of one programmed device of target ``t`` (siemens), at tile position
``(i, j)``, programmed ``k``-th of the ``K`` devices of its tile:

**Own write-verify** (``g_after_own``)
    ``g_own = t (1 + m(t) + kappa_read * delta_read + s(t) z1)``. ``m`` and
    ``s`` are the mean and spread of the relative error (the programming
    offset and the tuning imprecision): measured in ``n_bins`` target bins,
    smoothed by a count-weighted quadratic in ``t`` and interpolated
    between bin centres; targets exactly at ``g_min`` (the idle device of a
    differential pair, reached from the initial state) have their own. ``delta_read`` is the
    first-order IR drop the device's own verify reads suffer (word line:
    ``r_wl sum_l G_il min(l, j)`` with the row's conductances at that time,
    targets for devices already programmed and the mean initial state for
    the others; bit line: ``r_bl (M - 1 - i) t``): write-verify stops when
    the *sensed* conductance is inside the band, so the true one ends high
    by about that drop. ``z1`` follows the pooled, standardised empirical
    distribution of the residuals (heavy tails included: devices that did
    not converge).
**Drift after the own write-verify** (``(g_final - g_after_own) / t``)
    ``d = mu + sigma z2``, driven by what is programmed after the device in
    its tile (`drift_bases`): a relaxation clock ``1 - exp(-elapsed /
    relax_cycles)`` with ``elapsed`` the expected pulse-and-verify cycles of
    the later devices (their expected pulses: a linear fit in the target)
    and ``relax_cycles`` fitted by a grid search; ``elapsed`` itself (slow
    relaxation); and the later devices sharing the device's word or bit
    line, counted and summed over powers of their targets (half-selected
    pulses: the biasing-scheme disturb). ``mu``: least squares on those
    bases times (1, ``t/g_max``, target at ``g_min``); ``sigma^2``:
    non-negative least squares of the squared residuals on the bases and
    ``t/g_max`` times them; ``z2`` pooled standardised residuals.
**Failures**
    Probabilities of a device stuck near LRS / in HRS, and the empirical
    distribution of the stuck conductances. Failures are drawn apart from
    the drift: the extra disturb a stuck device's neighbours see while it
    spends its whole pulse budget (`xbarsim.devices`) is spread over every
    device by the fit rather than put on its neighbours (a review measured,
    on an 8 x 7 layer, an error std of 0.095 next to a stuck device against
    0.061 elsewhere in the simulator, 0.069 and 0.065 here).

The verify reads are modelled as reads of the device alone plus the IR
drop (``delta_read``): right for ``read_scheme="grounded"`` and
``"V/2-diff"``. Under ``"V/2"`` and ``"floating"`` reads the sensed
current also carries the bit line's sneak currents, which the model does
not have; `Surrogate.fit` warns, and `check` shows the mismatch.

Circuit of the MVM (weight units, per input vector):
    sinh read non-linearity (exact), IR drop on word and bit lines to first
    order in the wire resistance (scaled by fitted factors ``kappa_wl``,
    ``kappa_bl``), and the simulator's read noise (``read_noise *
    sqrt(sum_i I_ij^2)`` per column current).

Stored as ``.npz`` of plain arrays plus a JSON string (`save`, `load`);
loading never unpickles.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, fields

import numpy as np

from .._coerce import as_real_array
from .._kernel_cache import code_digest as _code_digest
from ..devices import real_scalar
from ..exceptions import ParameterError
from .._fork import check_fork_safe
from ._checks import check_count, check_flag, check_seed, failure_scale
from .layers import LayerSample, float64_array
from .._docfields import document_fields
from .._repr import compact_repr

__all__ = ["Surrogate", "cfg_to_dict", "cfg_from_dict", "tile_features", "FORMAT_VERSION"]

FORMAT_VERSION = 5
"""Version of the saved surrogate file format."""

_Z_LEVELS = np.concatenate(
    [[0.0005, 0.001, 0.002, 0.005], np.linspace(0.01, 0.99, 99), [0.995, 0.998, 0.999, 0.9995]]
)
"""Probability levels of the stored standardised-residual quantiles."""


# ----------------------------------------------------------------------------
# TransferConfig <-> plain dict (for storage and cache checks)
# ----------------------------------------------------------------------------


def cfg_to_dict(cfg):
    """A JSON-able dict of everything in a `TransferConfig`."""
    d = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.name in ("device", "write_verify"):
            v = asdict(v)
        elif hasattr(v, "value"):  # enums
            v = v.value
        elif isinstance(v, tuple):
            v = list(v)
        d[f.name] = v
    return d


DEFAULT_LAYERS = ((8, 2), (1, 8))
"""Layer shapes (out, in) `Surrogate.fit` programs by default: the moons network's."""


def _window_resolved(d):
    """A `cfg_to_dict` dict with its ``window`` as the (g_min, g_max) the
    mapping uses (`TransferConfig.g_window`)."""
    d = dict(d)
    w = d.get("window")
    d["window"] = [d["device"]["g_min"], d["device"]["g_max"]] if w is None else [float(x) for x in w]
    return d


def cfg_from_dict(d):
    """Rebuild a `TransferConfig` from `cfg_to_dict` output."""
    from ..devices import DeviceParams
    from ..programming import TransferConfig, WriteVerify

    d = dict(d)
    d["device"] = DeviceParams(**d["device"])
    d["write_verify"] = WriteVerify(**d["write_verify"])
    d["tile"] = tuple(d["tile"])
    if d.get("window") is not None:
        d["window"] = tuple(d["window"])
    known = {f.name for f in fields(TransferConfig)}
    return TransferConfig(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------
# Per-tile features
# ----------------------------------------------------------------------------


def tile_features(shape, order):
    """Order-derived features of an (M, N) tile (cached; read-only arrays).

    Returns
    -------
    order_index : (M, N) int
        Position in the programming order.
    n_later : (M, N) float
        Devices of the tile programmed after this one.
    n_line : (M, N) float
        Of those, the ones sharing its word line or its bit line.
    """
    key = (tuple(int(v) for v in shape), getattr(order, "value", order))
    hit = _FEATURE_CACHE.get(key)
    if hit is not None:
        return hit
    out = _tile_features(key[0], order)
    for a in out:
        a.setflags(write=False)
    _FEATURE_CACHE[key] = out
    return out


_FEATURE_CACHE = {}


def _tile_features(shape, order):
    from ..programming import programming_order

    M, N = shape
    pairs = programming_order((M, N), order)
    oi = np.empty((M, N), dtype=np.int64)
    oi[pairs[:, 0], pairs[:, 1]] = np.arange(M * N)
    n_later = (M * N - 1 - oi).astype(float)
    row_later = (oi[:, None, :] > oi[:, :, None]).sum(axis=2)  # [i, j]: #{l: oi[i,l] > oi[i,j]}
    col_later = (oi[None, :, :] > oi[:, None, :]).sum(axis=1)  # [i, j]: #{k: oi[k,j] > oi[i,j]}
    return oi, n_later, (row_later + col_later).astype(float)


def _read_drop(target, oi, r_wl, r_bl, g_init):
    """First-order relative IR drop seen by each device's verify read.

    ``target`` (..., M, N). Word line: ``r_wl sum_l G_il min(l, j)`` with
    ``G_il`` the target if device (i, l) was programmed before (i, j), else
    the mean initial conductance; bit line: ``r_bl (M - 1 - i) t_ij``.
    """
    M, N = oi.shape
    t = np.asarray(target, dtype=float)
    jj = np.arange(N)
    cmin = np.minimum(jj[:, None], jj[None, :]).astype(float)  # [l, j]
    before = oi[:, :, None] < oi[:, None, :]  # [i, l, j]: (i,l) programmed before (i,j)
    before = before | (jj[:, None] == jj[None, :])[None]  # the device itself: at its target
    G = np.where(before, t[..., :, :, None], g_init)  # (..., i, l, j)
    wl = r_wl * np.einsum("...ilj,lj->...ij", G, cmin)
    bl = r_bl * (M - 1 - np.arange(M))[:, None] * t
    return wl + bl


def _drift_mean_features(base, tau, at_min):
    """(..., 12): the 4 drift bases times (1, tau, target at g_min)."""
    one = np.ones_like(tau)
    powers = [one, tau, at_min * one]
    return np.concatenate([base * p[..., None] for p in powers], axis=-1)


def _drift_var_features(base, tau):
    """(..., 12): the 6 variance bases and tau times each."""
    return np.concatenate([base, base * tau[..., None]], axis=-1)


def _after(a, axis):
    """Sum of the entries after each one along ``axis`` (exclusive reverse
    cumulative sum)."""
    a = np.moveaxis(a, axis, -1)
    out = np.zeros_like(a)
    out[..., :-1] = np.cumsum(a[..., :0:-1], axis=-1)[..., ::-1]
    return np.moveaxis(out, -1, axis)


def later_sums(values, oi):
    """Sums of ``values`` (..., M, N) over the devices programmed after each
    device of an (M, N) tile whose programming positions are ``oi``
    (`tile_features`): ``(all_later, line_later)``, the second over those
    sharing the device's word line or bit line.

    O(M N) per tile, by cumulative sums in programming order along the
    whole tile, each row and each column (a device other than itself never
    shares both its row and its column). They were products with (K, K)
    matrices, K = M N, cached for good: 5 GiB and 16 s for one 128 x 128
    tile, a raw MemoryError at 256 x 256.
    """
    M, N = oi.shape
    v = np.asarray(values, dtype=float)
    lead = v.shape[:-2]
    flat = v.reshape(lead + (M * N,))
    pos = np.argsort(oi.ravel(), kind="stable")  # the device programmed at each position
    total = np.empty_like(flat)
    total[..., pos] = _after(flat[..., pos], -1)
    rows, in_row = np.arange(M)[:, None], np.argsort(oi, axis=1, kind="stable")  # each row's columns in order
    cols, in_col = np.arange(N)[None, :], np.argsort(oi, axis=0, kind="stable")  # each column's rows in order
    line = np.empty_like(v)
    line[..., rows, in_row] = _after(v[..., rows, in_row], -1)
    line[..., in_col, cols] += _after(v[..., in_col, cols], -2)
    return total.reshape(v.shape), line


def _pulses(t, coef, g_min, g_max):
    """Expected own write-verify pulses of devices at targets `t` (linear model)."""
    t = np.asarray(t, dtype=float)
    return np.maximum(coef[0] + coef[1] * t / g_max + coef[2] * (t <= g_min * (1 + 1e-9)), 0.0)


def drift_bases(target, pulse_coef, relax_cycles, cfg):
    """What is programmed after each device of a tile (or a stack of tiles).

    Returns
    -------
    mean_base : (..., M, N, 4)
        ``relax`` = ``1 - exp(-elapsed / relax_cycles)`` (the clock of a
        relaxation that settles after programming), the count and the
        summed ``t/g_max`` of the later devices sharing the device's word or
        bit line (half-selected pulses: disturb), and ``elapsed / 100``.
    var_base : (..., M, N, 6)
        ``relax``, ``elapsed / 100``, and the later line-sharing devices'
        sums of 1, ``t/g_max``, ``(t/g_max)^2`` and ``[t = g_min]``.

    ``elapsed`` is the expected number of pulse-and-verify cycles of all
    devices programmed later in the tile (pulses of each from
    `pulse_coef`, plus one read).
    """
    t = np.asarray(target, dtype=float)
    if t.ndim < 2:  # a raw "not enough values to unpack"
        raise ParameterError(f"target has shape {t.shape}; expected a tile's (M, N) conductances or a stack "
                             "(..., M, N) of them.")
    M, N = t.shape[-2:]
    oi = tile_features((M, N), cfg.order)[0]
    g_min, g_max = cfg.g_window
    tau = t / g_max
    at_min = (t <= g_min * (1 + 1e-9)) * 1.0
    elapsed = later_sums(_pulses(t, pulse_coef, g_min, g_max) + 1.0, oi)[0]
    relax = 1.0 - np.exp(-elapsed / max(float(relax_cycles), 1e-9))
    l0 = np.broadcast_to(tile_features((M, N), cfg.order)[2], t.shape)
    l1, l2, l3 = (later_sums(f, oi)[1] for f in (tau, tau * tau, at_min))
    mean_base = np.stack([relax, l0, l1, elapsed / 100.0], axis=-1)
    var_base = np.stack([relax, elapsed / 100.0, l0, l1, l2, l3], axis=-1)
    return mean_base, var_base


_RELAX_GRID = np.geomspace(10.0, 1000.0, 15)
"""Candidate relaxation clocks (pulse-and-verify cycles) of the drift fit."""


def _device_records(cfg, tiles):
    """Per working device: target, own error, read drop, drift, features; plus all stuck codes."""
    dev = cfg.device
    g_min, g_max = cfg.g_window
    g_init = 0.5 * (dev.g_init_lo + dev.g_init_hi)
    # pulses of the own write-verify against the target (working devices)
    T = np.concatenate([a[0][a[3] == 0] for a in tiles])
    P = np.concatenate([a[4][a[3] == 0] for a in tiles]).astype(float)
    A = np.stack([np.ones_like(T), T / g_max, (T <= g_min * (1 + 1e-9)) * 1.0], axis=1)
    pulse_coef, *_ = np.linalg.lstsq(A, P, rcond=None)
    rec = {k: [] for k in ("t", "e_own", "dread", "drift", "stuck", "g", "tile", "mask")}
    for tgt, g_own, g_fin, stuck, _ in tiles:
        oi, _, _ = tile_features(tgt.shape, cfg.order)
        ok = stuck == 0
        rec["t"].append(tgt[ok])
        rec["e_own"].append((g_own / tgt - 1.0)[ok])
        rec["dread"].append(_read_drop(tgt, oi, cfg.r_wl, cfg.r_bl, g_init)[ok])
        rec["drift"].append((g_fin - g_own)[ok])
        rec["stuck"].append(stuck.ravel())
        rec["g"].append(g_fin.ravel())
    tiles_t = [a[0] for a in tiles]
    masks = [a[3] == 0 for a in tiles]
    rec.pop("tile")
    rec.pop("mask")
    R = {k: np.concatenate(v) for k, v in rec.items()}
    R["pulse_coef"] = pulse_coef
    R["tiles"] = (tiles_t, masks)
    return R


def _working_bases(cfg, tiles_t, masks, pulse_coef, relax_cycles):
    """Drift bases of the working devices of the fit's tiles, in record order."""
    mb, vb = [], []
    for tgt, ok in zip(tiles_t, masks):
        m, v = drift_bases(tgt, pulse_coef, relax_cycles, cfg)
        mb.append(m[ok])
        vb.append(v[ok])
    return np.concatenate(mb), np.concatenate(vb)


def _layer_shapes(layers):
    """``layers`` as a tuple of ``(out_features, in_features)`` pairs of Python ints.

    Any iterable of pairs (a generator too) is read once; a dimension must be
    an integer >= 1 (not 2.5, "8" or True), else `ParameterError`.
    """
    def refuse(why):
        return ParameterError(f"layers = {layers!r}: {why}. Give a sequence of (out_features, in_features) "
                              "pairs of positive integers, e.g. ((8, 2), (1, 8)).")

    if isinstance(layers, (str, bytes)):
        raise refuse("a string")
    try:
        items = tuple(layers)
    except TypeError:
        raise refuse("not a sequence") from None
    if not items:
        raise refuse("no layer")
    shapes = []
    for shape in items:
        try:
            pair = tuple(shape)
        except TypeError:
            raise refuse(f"{shape!r} is not an (out_features, in_features) pair") from None
        if len(pair) != 2 or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 1
                                 for d in pair):
            raise refuse(f"{shape!r} is not a pair of positive integers")
        shapes.append((int(pair[0]), int(pair[1])))
    return tuple(shapes)


def _interp_bins(t, centres, values):
    return np.interp(t, centres, values)


def _inverse_cdf(u, quantiles):
    return np.interp(u, _Z_LEVELS, quantiles)


_MIN_RESIDUALS = 10
"""Fewest residuals a fitted quantile table is made from."""


def _standardised_quantiles(z, what):
    """Quantiles at `_Z_LEVELS` of the standardised residuals `z`.

    With fewer than `_MIN_RESIDUALS` of them, the own-error table (``what ==
    "own"``) is refused, and the drift table, which then has (almost) no
    variance to shape, is the standard normal's. Both were all zeros: a
    surrogate with no noise at all, silently."""
    z = np.asarray(z, dtype=float)
    z = z[np.isfinite(z)]
    if z.size >= _MIN_RESIDUALS:
        return np.quantile(z, _Z_LEVELS)
    if what == "own":
        raise ParameterError(f"the fit kept {z.size} working devices' residuals, fewer than {_MIN_RESIDUALS}, "
                             "too few for the error distribution; raise n_transfers or fit on larger layers.")
    return _norm_ppf(_Z_LEVELS)


def _field_shapes(n_bins):
    """Shape of every numeric field of a `Surrogate` with `n_bins` target bins (as `fit` writes them)."""
    nz = _Z_LEVELS.size
    return {
        "bin_edges": (n_bins + 1,), "own_mean": (n_bins,), "own_std": (n_bins,), "own_at_min": (2,),
        "kappa_read": (), "own_z": (nz,), "pulse_coef": (3,), "relax_cycles": (), "drift_mean_coef": (12,),
        "drift_var_coef": (12,), "drift_z": (nz,), "p_lrs": (), "p_hrs": (), "lrs_q": (nz,), "hrs_q": (nz,),
        "kappa_wl": (), "kappa_bl": (),
    }


# ----------------------------------------------------------------------------


@document_fields
@dataclass(frozen=True, eq=False)
class Surrogate:
    """Fitted variability model of a transfer (see the module docstring).

    Build with `Surrogate.fit`, store with `save`, reload with `load`.
    """

    __repr__ = compact_repr  # every fitted array in full ran to 9,500 characters

    cfg_json: str
    """The `TransferConfig` it was fitted for, as JSON (`cfg_to_dict`)."""
    bin_edges: np.ndarray
    """Target-conductance bin edges, S, (n_bins + 1,)."""
    own_mean: np.ndarray
    """Mean relative error of the own write-verify per bin (IR-drop part removed), (n_bins,)."""
    own_std: np.ndarray
    """Std of the relative error of the own write-verify per bin, (n_bins,)."""
    own_at_min: np.ndarray
    """(mean, std) of that error for targets exactly at g_min (idle devices of pairs)."""
    kappa_read: float
    """Factor on the first-order verify-read IR drop (relative error per unit drop)."""
    own_z: np.ndarray
    """Quantiles of the standardised own-error residuals at `_Z_LEVELS`."""
    pulse_coef: np.ndarray
    """Own write-verify pulses against the target: ``c0 + c1 t/g_max + c2 [t = g_min]``."""
    relax_cycles: float
    """Clock of the settling relaxation, pulse-and-verify cycles (fitted)."""
    drift_mean_coef: np.ndarray
    """Least-squares coefficients of the relative drift mean on its 12 features."""
    drift_var_coef: np.ndarray
    """Non-negative coefficients of the relative drift variance on its 12 features."""
    drift_z: np.ndarray
    """Quantiles of the standardised drift residuals at `_Z_LEVELS`."""
    p_lrs: float
    """Probability of a device stuck near LRS."""
    p_hrs: float
    """Probability of a device stuck in HRS."""
    lrs_q: np.ndarray
    """Quantiles of the LRS-stuck conductance at `_Z_LEVELS`, S."""
    hrs_q: np.ndarray
    """Quantiles of the HRS-stuck conductance at `_Z_LEVELS`, S."""
    kappa_wl: float = 1.0
    """Factor on the first-order word-line IR drop in the MVM."""
    kappa_bl: float = 1.0
    """Factor on the first-order bit-line IR drop in the MVM."""
    meta_json: str = "{}"
    """Fit provenance (transfers, seed, layer shapes, residuals, the xbarsim
    version that fitted it) as JSON."""

    # ------------------------------------------------------------------ config
    @property
    def cfg(self):
        """The `TransferConfig` the surrogate was fitted for."""
        cached = self.__dict__.get("_cfg_cache")
        if cached is None:
            cached = cfg_from_dict(json.loads(self.cfg_json))
            object.__setattr__(self, "_cfg_cache", cached)
        return cached

    @property
    def meta(self):
        """Fit provenance as a dict."""
        return json.loads(self.meta_json)

    @property
    def mapping(self):
        """Mapping scheme name ("differential" or "reference")."""
        return self.cfg.mapping.value

    def matches(self, cfg):
        """Whether this surrogate was fitted for a configuration equal to
        `cfg`, with the mapping window compared as it is used: ``window=None``
        (the device's) equals the device's window given explicitly."""
        import xbarsim as xs

        if not isinstance(cfg, xs.TransferConfig):  # "TIO2": a raw TypeError
            raise ParameterError(f"matches compares with an xbarsim.TransferConfig; got {type(cfg).__name__} "
                                 "(xbarsim.TransferConfig(device=...)).")
        return _window_resolved(json.loads(self.cfg_json)) == _window_resolved(
            json.loads(json.dumps(cfg_to_dict(cfg))))

    def tile_devices(self, out_features, in_features, bias=True):
        """Devices in the largest tile of an (out, in) layer under this
        surrogate's configuration (mapping, tile size, bias row): the first
        tile's, the largest both ways (`tile_shape`; it mapped a layer cut to
        one tile's size)."""
        rows, cols = self.tile_shape(out_features, in_features, bool(bias))
        return rows * cols

    @property
    def fitted_layers(self):
        """The (out, in) layer shapes the fit programmed (`meta` ``layers``)."""
        return _layer_shapes(self.meta.get("layers", DEFAULT_LAYERS))

    def tile_shape(self, out_features, in_features, bias=True):
        """(word lines, bit lines) of the largest tile of an (out, in) layer
        under this surrogate's configuration: the first, the largest both
        ways."""
        from ..mapping import _first_tile_shape

        out_features, in_features = check_count(out_features, "out_features"), check_count(in_features, "in_features")
        return _first_tile_shape((out_features, in_features), check_flag(bias, "bias"), self.cfg)

    def covers(self, out_features, in_features, bias=True):
        """``(tile, fitted)``: the (rows, columns) of this layer's largest
        tile (`tile_shape`) and those of the largest tile of each layer the
        fit programmed (`meta` ``layers``); `is_covered` compares them."""
        fitted = tuple(self.tile_shape(o, i) for o, i in self.fitted_layers)
        return self.tile_shape(out_features, in_features, bias), fitted

    def is_covered(self, out_features, in_features, bias=True):
        """Whether the layer's largest tile stays within what the fit saw:
        word lines no longer, bit lines no longer and no more devices than
        the fitted tiles' largest. The drift model counts the devices
        programmed after each one in its tile, and the read model the
        devices along its lines; past the fitted ones both extrapolate (a
        16 x 12 layer, 13 x 32 devices in a tile, against the 3 x 16 and
        9 x 2 of a fit on the moons shapes drew a layer-output error std
        1.17x the simulator's, 1.31x on working devices, and 0.99x from a
        fit on that shape; a 1 x 23 layer, a 24 x 2 tile of as many devices
        as the 3 x 16, was taken as covered by its count alone and drew
        1.32x on working devices). Each bound alone: an 8
        -> 2 layer's 9 x 4 tile, within all three, drew 1.04x as the fitted
        shapes' 1.05-1.09x, and was warned of by a fit-inside-one-tile rule."""
        (rows, cols), fitted = self.covers(out_features, in_features, bias)
        if not fitted:
            return False
        return (rows <= max(r for r, _ in fitted) and cols <= max(c for _, c in fitted)
                and rows * cols <= max(r * c for r, c in fitted))

    @property
    def bin_centres(self):
        """Centres of the target-conductance bins (siemens), between `bin_edges`."""
        return 0.5 * (self.bin_edges[1:] + self.bin_edges[:-1])

    # ------------------------------------------------------------------ storage
    def save(self, path):
        """Write an ``.npz`` of plain arrays (no pickle) to `path` (a file
        name, or a binary file object, as `load` reads them); returns it."""
        arrays = {}
        for f in fields(self):
            v = getattr(self, f.name)
            arrays[f.name] = np.asarray(v) if not isinstance(v, str) else np.array(v)
        arrays["format_version"] = np.array(FORMAT_VERSION)
        if hasattr(path, "write"):  # a BytesIO raised a raw TypeError in open()
            if isinstance(path, io.TextIOBase):  # zipfile's raw TypeError
                raise ParameterError("Surrogate.save needs a binary file object (open(path, 'wb')) or a path; "
                                     "got a text-mode file.")
            np.savez_compressed(path, **arrays)
            return path
        if not isinstance(path, (str, bytes, os.PathLike)):  # None: a raw TypeError from open()
            raise ParameterError(f"path must be a file name or a binary file object; got {type(path).__name__}.")
        try:
            with open(path, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        except OSError as exc:  # a missing folder: a raw FileNotFoundError
            raise ParameterError(f"cannot write the surrogate to {path}: {exc.strerror or exc}. Give a path in an "
                                 "existing, writable folder.") from None
        return path

    @classmethod
    def load(cls, path):
        """Read a file written by `save` (``allow_pickle=False``: never runs code).

        Everything `sample_layer` and `layer_output` use is checked here: the
        archive, every field's type, shape and finiteness (as `fit` writes
        them), the probabilities, and the stored `TransferConfig`. A damaged
        or edited file is a `ParameterError` now, not NaN weights later.
        """
        import os
        import zipfile
        import zlib

        if not isinstance(path, (str, bytes, os.PathLike)) and not hasattr(path, "read"):
            raise ParameterError(f"path = {path!r}; the path (str or os.PathLike) of an .npz written by "
                                 "Surrogate.save, or a binary file object open on one.")

        def refuse(why):
            return ParameterError(f"cannot read surrogate file {path}: {why}. Expected an .npz written by "
                                  "Surrogate.save (xbarsim moons writes one as surrogate.npz).")

        # EOFError: an empty file; NotImplementedError and RuntimeError: zip
        # entries whose damaged header names an unknown compression method or
        # encryption (raw errors, and xbarsim moons did not refit)
        damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
        try:
            z = np.load(path, allow_pickle=False)
        except damaged as exc:
            why = str(exc) or "the file is empty"
            if "pickle" in why:  # NumPy's guess for any file that is not .npy / .npz (a CSV...)
                why = "it is not a NumPy .npz archive"
            raise refuse(why) from exc
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise refuse(f"it holds a single {type(z).__name__} (an .npy), not an .npz archive")
        try:
            with z:
                data = {k: z[k] for k in z.files}
        except damaged as exc:
            raise refuse(f"a damaged archive ({exc})") from exc
        if "format_version" not in data:  # any other .npz (a solution.npz, results): not "format -1"
            raise refuse(f"it has no format_version (its arrays: {', '.join(sorted(data)) or 'none'}), so it is not "
                         "a surrogate file")
        version = data.pop("format_version")
        if version.shape != () or version.dtype.kind not in "iu":
            raise refuse(f"its format_version is {version!r}, not an integer")
        if int(version) != FORMAT_VERSION:
            raise ParameterError(
                f"{path} has surrogate format {int(version)}; this xbarsim reads {FORMAT_VERSION}. Refit it."
            )
        kwargs = {}
        for f in fields(cls):
            if f.name not in data:
                raise ParameterError(f"{path} lacks field {f.name!r}; not a surrogate file, or a damaged one.")
            v = data[f.name]
            if f.name.endswith("_json"):
                if v.shape != () or v.dtype.kind != "U":
                    raise refuse(f"field {f.name!r} holds {v.dtype} values of shape {v.shape}, not a JSON string")
                kwargs[f.name] = str(v)
            elif v.dtype.kind not in "iuf":
                raise refuse(f"field {f.name!r} holds {v.dtype} values, not real numbers")
            else:
                kwargs[f.name] = v.astype(np.float64)
        edges = kwargs["bin_edges"]
        if edges.ndim != 1 or edges.size < 2:
            raise refuse(f"field 'bin_edges' has shape {edges.shape}; expected (n_bins + 1,) with n_bins >= 1")
        for name, shape in _field_shapes(edges.size - 1).items():
            a = kwargs[name]
            if a.shape != shape:
                raise refuse(f"field {name!r} has shape {a.shape}; expected {shape}")
            if not np.all(np.isfinite(a)):
                raise refuse(f"field {name!r} holds NaN or inf")
            if shape == ():
                kwargs[name] = float(a)
        if not np.all(np.diff(edges) > 0):
            raise refuse("its bin_edges are not increasing")
        p_lrs, p_hrs = kwargs["p_lrs"], kwargs["p_hrs"]
        if not (0 <= p_lrs <= 1 and 0 <= p_hrs <= 1 and p_lrs + p_hrs <= 1):
            raise refuse(f"its failure probabilities p_lrs = {p_lrs!r}, p_hrs = {p_hrs!r} are not in [0, 1] "
                         "with a sum <= 1")
        try:
            cfg_dict = json.loads(kwargs["cfg_json"])
            meta = json.loads(kwargs["meta_json"])
        except (ValueError, TypeError) as exc:
            raise refuse(f"its cfg_json or meta_json is not what Surrogate.save writes ({exc})") from exc
        try:
            cfg = cfg_from_dict(cfg_dict)
        except ParameterError as exc:
            # a configuration this version's TransferConfig refuses (a file
            # from an older version, or edited): say so, not "not what save writes"
            raise refuse(f"its TransferConfig is one this version of xbarsim refuses ({exc}); refit the "
                         "surrogate with Surrogate.fit for a configuration it accepts") from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise refuse(f"its cfg_json or meta_json is not what Surrogate.save writes ({exc})") from exc
        if not isinstance(meta, dict):
            raise refuse(f"its meta_json holds a {type(meta).__name__}, not a JSON object")
        sur = cls(**kwargs)
        object.__setattr__(sur, "_cfg_cache", cfg)
        return sur

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, cfg, n_transfers=200, seed=0, layers=DEFAULT_LAYERS, n_bins=20, weight_scale=1.0,
            n_probe=32, n_fail_devices=100_000, progress=False):
        """Fit to the simulator's Monte Carlo.

        Parameters
        ----------
        cfg : xbarsim.TransferConfig
            The transfer to model (device, schemes, mapping, wires, tile).
        n_transfers : int
            Random layers programmed per layer shape.
        seed : int
            Seed of the random weights and of the simulator.
        layers : sequence of (out, in)
            Layer shapes to fit on (with bias); the moons network by default.
            Random weights uniform in ``[-weight_scale, weight_scale]``.
        weight_scale : float
            Half-width of the random weights' uniform range.
        n_bins : int
            Target-conductance bins of the own-error model.
        n_probe : int
            Probe inputs per probed transfer for fitting the MVM IR-drop
            factors: the first ``max(8, n_transfers // 4)`` transfers of each
            layer shape are probed.
        n_fail_devices : int
            Extra simulator devices for the failure statistics
            (`failure_samples`); the programmed layers' devices count too.
        progress : bool
            Show a progress bar.

        Returns
        -------
        Surrogate
        """
        import xbarsim as xs

        from .._progress import Progress
        from ..mapping import map_layer

        if not isinstance(cfg, xs.TransferConfig):
            raise ParameterError(f"cfg must be an xbarsim.TransferConfig; got {type(cfg).__name__}.")
        n_transfers = check_count(n_transfers, "n_transfers", 2)
        n_bins = check_count(n_bins, "n_bins", 1)
        n_probe = check_count(n_probe, "n_probe", 1)
        n_fail_devices = check_count(n_fail_devices, "n_fail_devices", 0)
        progress = check_flag(progress, "progress")
        scale = real_scalar(weight_scale)
        # 1e300 fitted and saved inf IR-drop figures, with overflow warnings only
        if scale is None or not (1e-100 <= scale <= 1e100):
            raise ParameterError(f"weight_scale = {weight_scale!r}; a number in [1e-100, 1e100] (random weights are "
                                 "uniform in [-weight_scale, weight_scale]; your layers' typical weight magnitude, "
                                 "1.0 by default).")
        weight_scale = scale
        layers = _layer_shapes(layers)
        seed = check_seed(seed)  # here, not after the loop: seed + 7919 below must be a 64-bit seed too
        if cfg.read_scheme.value in ("V/2", "floating"):
            from .._warn import warn

            # fitted anyway, as before; said once here rather than left to
            # check's failed bins
            warn(f"the surrogate models the verify reads as the device's own current plus its IR drop; under "
                 f"read_scheme={cfg.read_scheme.value!r} the sensed current also carries the bit line's sneak "
                 "currents, which it does not model (check(surrogate) shows the mismatch). Fit it for "
                 "read_scheme='grounded' or 'V/2-diff' where you can.", UserWarning)
        from .._memory import require

        # device records and the bins' design matrix, the probe MVMs, the failure devices: n_bins = 1e8 ran
        # the whole fit into a raw MemoryError for 197 GiB
        devices = n_transfers * sum(2 * (in_f + 1) * out_f for out_f, in_f in layers)
        probes = min(n_transfers, max(8, n_transfers // 4)) * n_probe * sum(in_f + 4 * out_f for out_f, in_f in layers)
        # per device: its records, and the binned least squares' design matrix three times (the
        # one-hot matrix, its column selection, LAPACK's copy), and about 1 kB besides whatever
        # n_bins (the records' working copies, drift features, lstsq / nnls copies: measured, a
        # 64 x 64 layer at n_bins 2 and 20; without it the guard counted 0.21-0.58 of the peak,
        # and a fit that passed it failed in SciPy after programming: found by review)
        require(8 * (devices * (3 * (n_bins + 2) + 12 + 128) + 4 * probes + 2 * n_fail_devices)
                + 16 * max(out_f * (in_f + 1) for out_f, in_f in layers),
                f"Surrogate.fit on layers {list(layers)[:4]} with n_transfers={n_transfers}, n_bins={n_bins}, "
                f"n_probe={n_probe}, n_fail_devices={n_fail_devices}",
                "lower n_transfers, n_bins, n_probe or n_fail_devices, or fit on smaller layers")
        per = sum(tile.target.size for out_f, in_f in layers
                  for tile in map_layer(np.zeros((out_f, in_f)), np.zeros(out_f), cfg).tiles)
        if n_transfers * per < _MIN_RESIDUALS:
            raise ParameterError(f"n_transfers={n_transfers} on layers {list(layers)} programs {n_transfers * per} "
                                 f"devices, fewer than the {_MIN_RESIDUALS} the error distribution is fitted "
                                 f"from; use n_transfers >= {-(-_MIN_RESIDUALS // per)}.")
        rng = np.random.default_rng(seed)
        tiles = []  # (target, g_after_own, g_final, stuck, pulses), each (M, N)
        mvm_jobs = []  # (mapping, tile g list, x) for the circuit-factor fit
        total = n_transfers * len(layers)
        from .._parallel import numba_threads

        # one small array per call: thread start-up costs more than it saves
        from ..programming import program_quietly, warn_unconverged

        # each xs.program warned of its own unconverged devices: up to
        # hundreds of warnings in one fit; one at the end
        converged = []
        with numba_threads(1), Progress(total, label="surrogate fit", enabled=progress) as bar:
            for li, (out_f, in_f) in enumerate(layers):
                for t in range(n_transfers):
                    W = rng.uniform(-weight_scale, weight_scale, (out_f, in_f))
                    b = rng.uniform(-weight_scale, weight_scale, out_f)
                    lm = map_layer(W, b, cfg)
                    tile_g = []
                    for k, tile in enumerate(lm.tiles):
                        res = program_quietly(tile.target, cfg, seed=int(rng.integers(0, 2**62)))
                        tiles.append((res.target, res.g_after_own, res.g_final, res.stuck_state, res.pulses))
                        converged.append(res.converged)
                        tile_g.append(res.g_final)
                    if t < max(8, n_transfers // 4):
                        mvm_jobs.append((lm, tile_g, rng.uniform(0, cfg.input_scale, (n_probe, in_f))))
                    bar.update()
        warn_unconverged(converged, [tile[3] for tile in tiles], cfg, "the surrogate fit's programming",
                         [tile[0] for tile in tiles], [tile[1] for tile in tiles])
        R = _device_records(cfg, tiles)
        if n_fail_devices:
            fs, fg = failure_samples(cfg, n_fail_devices, seed + 7919)
            R["stuck"] = np.concatenate([R["stuck"], fs])
            R["g"] = np.concatenate([R["g"], fg])
        return cls._from_samples(cfg, R, mvm_jobs, n_bins, meta={
            "n_transfers": n_transfers, "seed": seed, "layers": [list(s) for s in layers],
            "weight_scale": float(weight_scale), "n_bins": int(n_bins), "n_probe": int(n_probe),
            "n_devices": int(R["stuck"].size),
            "n_fail_devices": int(n_fail_devices), "xbarsim_version": xs.__version__,
            "code_digest": _code_digest(),
        })

    @classmethod
    def _from_samples(cls, cfg, R, mvm_jobs, n_bins, meta):
        from scipy.optimize import nnls

        g_min, g_max = cfg.g_window
        edges = np.linspace(g_min, g_max, n_bins + 1)
        edges[0] -= 1e-12  # targets exactly at g_min belong to the first bin
        t = R["t"]
        e = R["e_own"]
        dr = R["dread"]
        bins = np.clip(np.digitize(t, edges) - 1, 0, n_bins - 1)
        at_min = t <= g_min * (1 + 1e-9)
        # own error: per-bin offsets plus kappa * read drop, jointly by least squares
        A = np.zeros((t.size, n_bins + 2))
        A[np.arange(t.size), np.where(at_min, n_bins, bins)] = 1.0
        A[:, -1] = dr
        present = np.bincount(np.where(at_min, n_bins, bins), minlength=n_bins + 1) > 0
        cols = np.concatenate([np.flatnonzero(present), [n_bins + 1]])
        coef, *_ = np.linalg.lstsq(A[:, cols], e, rcond=None)
        kappa_read = float(coef[-1]) if np.ptp(dr) > 0 else 0.0
        r = e - kappa_read * dr
        # devices exactly at g_min (the idle device of a differential pair) on their own
        own_at_min = np.array([r[at_min].mean(), r[at_min].std()]) if at_min.sum() >= 2 else np.array([np.nan, np.nan])
        # the others: raw per-bin moments, smoothed by a count-weighted quadratic in t
        centres = 0.5 * (edges[1:] + edges[:-1])
        raw = np.full((2, n_bins), np.nan)
        cnt = np.zeros(n_bins)
        for b in range(n_bins):
            sel = (bins == b) & ~at_min
            cnt[b] = sel.sum()
            if cnt[b] >= 2:
                raw[:, b] = r[sel].mean(), r[sel].std()
        good = cnt >= 2
        if good.sum() == 0:
            if not np.all(np.isfinite(own_at_min)):
                raise ParameterError("no target bin holds samples; raise n_transfers.")
            own_mean = np.full(n_bins, own_at_min[0])
            own_std = np.full(n_bins, own_at_min[1])
        else:
            deg = int(min(2, good.sum() - 1))
            x = (centres - g_min) / (g_max - g_min)
            w = np.sqrt(cnt[good])
            own_mean = np.polyval(np.polyfit(x[good], raw[0, good], deg, w=w), x)
            own_std = np.maximum(np.polyval(np.polyfit(x[good], raw[1, good], deg, w=w), x), 1e-6)
        if not np.all(np.isfinite(own_at_min)):
            own_at_min = np.array([own_mean[0], own_std[0]])
        m_t = np.where(at_min, own_at_min[0], _interp_bins(t, centres, own_mean))
        s_t = np.where(at_min, own_at_min[1], _interp_bins(t, centres, own_std))
        own_z = _standardised_quantiles((r - m_t) / s_t, "own")
        # drift, relative to the target, against what is programmed after the device;
        # the relaxation clock by a grid search on the variance fit
        tau = t / g_max
        d = R["drift"] / t
        best = None
        for cyc in _RELAX_GRID:
            mb, vb = _working_bases(cfg, *R["tiles"], R["pulse_coef"], cyc)
            Fm = _drift_mean_features(mb, tau, at_min)
            mcoef, *_ = np.linalg.lstsq(Fm, d, rcond=None)
            res = d - Fm @ mcoef
            Fv = _drift_var_features(vb, tau)
            scale = max(float(np.mean(res**2)), 1e-30)
            vcoef, rnorm = nnls(Fv, res**2 / scale)
            if best is None or rnorm < best[0]:
                best = (rnorm, cyc, mcoef, vcoef * scale, res, Fv)
        _, relax_cycles, mcoef, vcoef, res, Fv = best
        sig = np.sqrt(np.maximum(Fv @ vcoef, 0.0))
        okz = sig > 0
        drift_z = _standardised_quantiles(res[okz] / sig[okz], "drift")
        # failures
        stuck = R["stuck"]
        g = R["g"]
        p_lrs = float(np.mean(stuck == 1))
        p_hrs = float(np.mean(stuck == 2))
        dev = cfg.device
        lrs_q = (np.quantile(g[stuck == 1], _Z_LEVELS) if np.sum(stuck == 1) >= 5
                 else dev.g_stuck_lrs_mean + dev.g_stuck_lrs_std * _norm_ppf(_Z_LEVELS))
        hrs_q = (np.quantile(g[stuck == 2], _Z_LEVELS) if np.sum(stuck == 2) >= 5
                 else dev.g_stuck_hrs_lo + (dev.g_stuck_hrs_hi - dev.g_stuck_hrs_lo) * _Z_LEVELS)
        sur = cls(
            cfg_json=json.dumps(cfg_to_dict(cfg)),
            bin_edges=edges,
            own_mean=own_mean,
            own_std=own_std,
            own_at_min=own_at_min,
            kappa_read=kappa_read,
            own_z=own_z,
            pulse_coef=R["pulse_coef"],
            relax_cycles=float(relax_cycles),
            drift_mean_coef=mcoef,
            drift_var_coef=vcoef,
            drift_z=drift_z,
            p_lrs=p_lrs,
            p_hrs=p_hrs,
            lrs_q=np.maximum(lrs_q, 0.0),
            hrs_q=np.maximum(hrs_q, 0.0),
        )
        kwl, kbl, circ_meta = sur._fit_circuit(mvm_jobs)
        meta = dict(meta, **circ_meta)
        object.__setattr__(sur, "kappa_wl", kwl)
        object.__setattr__(sur, "kappa_bl", kbl)
        object.__setattr__(sur, "meta_json", json.dumps(meta))
        return sur

    def _fit_circuit(self, jobs):
        """Fit the IR-drop factors against the simulator's noiseless MVM."""
        import xbarsim as xs

        cfg = self.cfg
        if not jobs or (cfg.r_wl == 0 and cfg.r_bl == 0):
            return 1.0, 1.0, {"circuit_fit_points": 0}
        ys, y0s, awls, abls = [], [], [], []
        for lm, tile_g, x in jobs:
            batch = _batch_from(lm, cfg, [g[None] for g in tile_g])
            y = xs.mvm_many(batch, x, noise=False)[0]
            y0, awl, abl = self._circuit_parts(lm, [g[None] for g in tile_g], x)
            ys.append(y.ravel())
            y0s.append(y0[0].ravel())
            awls.append(awl[0].ravel())
            abls.append(abl[0].ravel())
        y, y0, awl, abl = (np.concatenate(a) for a in (ys, y0s, awls, abls))
        A = np.stack([awl, abl], axis=1)
        use = [np.ptp(awl) > 0, np.ptp(abl) > 0]
        k = np.ones(2)
        if any(use):
            sol, *_ = np.linalg.lstsq(A[:, use], y - y0, rcond=None)
            k[np.array(use)] = sol
        resid = y - y0 - A @ k
        return float(k[0]), float(k[1]), {
            "circuit_fit_points": int(y.size),
            "circuit_rms_ir_effect": float(np.sqrt(np.mean((A @ k) ** 2))),
            "circuit_rms_residual": float(np.sqrt(np.mean(resid**2))),
        }

    # ------------------------------------------------------------------ sampling
    def own_mean_std(self, t):
        """The fitted location ``m(t)`` and scale ``s(t)`` of the relative own
        write-verify error at targets `t` (no IR part). Not the sampled
        moments: a sample is ``m + kappa_read delta_read
        + s z1``, with ``z1`` drawn from the fitted quantiles ``own_z``,
        whose variance is not exactly 1 (`penalty` uses the sampled ones)."""
        t = np.asarray(t, dtype=float)
        c = self.bin_centres
        at_min = t <= self.cfg.g_window[0] * (1 + 1e-9)
        m = np.where(at_min, self.own_at_min[0], _interp_bins(t, c, self.own_mean))
        s = np.where(at_min, self.own_at_min[1], _interp_bins(t, c, self.own_std))
        return m, s

    def drift_mean_std(self, t):
        """The fitted location and scale of the relative drift of the devices
        of a tile (or stack of tiles) `t`; a sample is location + scale
        ``z``, ``z`` from the fitted drift quantiles, whose variance is not
        exactly 1 (as `own_mean_std`)."""
        cfg = self.cfg
        g_min, g_max = cfg.g_window
        t = np.asarray(t, dtype=float)
        mb, vb = drift_bases(t, self.pulse_coef, self.relax_cycles, cfg)
        tau = t / g_max
        Fm = _drift_mean_features(mb, tau, (t <= g_min * (1 + 1e-9)) * 1.0)
        Fv = _drift_var_features(vb, tau)
        return Fm @ self.drift_mean_coef, np.sqrt(np.maximum(Fv @ self.drift_var_coef, 0.0))

    def program_tile(self, target, rng, noise=True, failures=True):
        """Sample programmed conductances of a tile.

        Parameters
        ----------
        target : array_like, (M, N) or (n, M, N)
            Target conductances, S.
        rng : numpy.random.Generator
        noise : bool
            Sample the own-write-verify error and the drift (else exact targets).
        failures : bool or float
            Sample stuck devices; a number scales the fitted failure
            probabilities (a dropout rate above the hardware's, for training).

        Returns
        -------
        g : ndarray, shape of `target`
            Programmed conductances, S.
        stuck : ndarray of int8
            0 working, 1 stuck near LRS, 2 stuck in HRS.
        """
        check_rng(rng)  # an int raised "'int' object has no attribute 'random'"
        k = failure_scale(failures)
        noise = check_flag(noise, "noise")  # 'no' sampled the noise
        cfg = self.cfg
        # strings, complex values and tensors: a specific error
        t = as_real_array(target, "target", "(M, N) or (n, M, N)", "target conductances in siemens")
        # negative targets came back as 0 S and NaN ones as NaN, a 1-D
        # target raised a raw ValueError
        if t.ndim < 2 or not np.all(t >= 0) or not np.all(np.isfinite(t)):
            raise ParameterError(f"target must be (M, N) or (n, M, N) conductances, finite and >= 0 siemens; got "
                                 f"shape {t.shape}" + ("" if t.ndim < 2 else " holding a negative, NaN or inf value")
                                 + " (a tile's targets: xbarsim.mapping.map_layer(...).tiles[k].target).")
        g_hi = cfg.device.g_hi
        top = float(np.max(t)) if t.size else 0.0
        if top > g_hi * (1.0 + 1e-6):  # float32's rounding of g_hi itself is not refused
            # 200 (microsiemens for siemens) came back as 1.5e12 S, 1e-2 S as
            # 19x its target: the drift model extrapolated
            raise ParameterError(f"target holds {top:.8g} S, above the device's reachable {g_hi:g} S; targets "
                                 f"are in siemens (300 µS is 300e-6), and the fit covers its window "
                                 f"{cfg.g_window[0]:g} to {cfg.g_window[1]:g} S.")
        lo, hi = cfg.g_window
        if top > hi * (1.0 + 1e-6) or (t.size and float(np.min(t)) < lo * (1.0 - 1e-6)):
            from .._warn import warn

            # mapped targets never leave the window; a direct call's were
            # extrapolated without a word
            # 8 digits: at 4 a target a hair outside read as the window itself
            warn(f"program_tile: targets from {float(np.min(t)):.8g} to {top:.8g} S reach outside the window the "
                 f"surrogate was fitted on ({lo:.8g} to {hi:.8g} S); its error and drift models are extrapolated "
                 "there.", UserWarning)
        shape = t.shape
        M, N = shape[-2:]
        g = t.copy()
        if noise:
            oi, _, _ = tile_features((M, N), cfg.order)
            dev = cfg.device
            g_init = 0.5 * (dev.g_init_lo + dev.g_init_hi)
            m, s = self.own_mean_std(t)
            dr = _read_drop(t, oi, cfg.r_wl, cfg.r_bl, g_init)
            z1 = _inverse_cdf(rng.random(shape), self.own_z)
            g_own = t * (1.0 + m + self.kappa_read * dr + s * z1)
            dm, ds = self.drift_mean_std(t)
            z2 = _inverse_cdf(rng.random(shape), self.drift_z)
            g = g_own + t * (dm + ds * z2)
        stuck = np.zeros(shape, dtype=np.int8)
        if k:
            p_lrs, p_hrs = k * self.p_lrs, k * self.p_hrs
            if p_lrs + p_hrs > 1:
                raise ParameterError(f"failures={failures!r} scales the failure probability above 1.")
            u = rng.random(shape)
            stuck[u < p_lrs] = 1
            stuck[(u >= p_lrs) & (u < p_lrs + p_hrs)] = 2
            for code, q in ((1, self.lrs_q), (2, self.hrs_q)):
                sel = stuck == code
                if sel.any():
                    g[sel] = _inverse_cdf(rng.random(int(sel.sum())), q)
        return np.maximum(g, 0.0), stuck

    def sample_tiles(self, lm, rng, n=None, noise=True, failures=True):
        """Programmed conductances of every tile of a `LayerMapping`.

        Returns lists (one per tile) of conductances and stuck codes, each
        (M, N), or (n, M, N) when `n` is given.
        """
        _check_mapping(lm)
        check_rng(rng)
        if n is not None:
            n = check_count(n, "n")  # -1 and 2.5 raised NumPy's raw errors
            from .._memory import require

            # the samples (8 + 1 bytes a device) and program_tile's working
            # arrays, about five more of the largest tile: n = 1e9 was a raw
            # MemoryError
            require(9.0 * n * sum(t.target.size for t in lm.tiles) + 40.0 * n * max(t.target.size for t in lm.tiles),
                    f"surrogate samples of {n} transfers", "give a smaller n, or sample in chunks")
        gs, st = [], []
        for tile in lm.tiles:
            tgt = tile.target if n is None else np.broadcast_to(tile.target, (n,) + tile.shape)
            g, s = self.program_tile(tgt, rng, noise=noise, failures=failures)
            gs.append(g)
            st.append(s)
        return gs, st

    def sample_layer(self, weight, bias, rng, noise=True, failures=True):
        """One transfer of a layer (the `HardwareAwareLinear` protocol).

        Returns a `LayerSample` whose ``circuit`` computes the layer's output
        through the surrogate circuit (`layer_output`).
        """
        from ..mapping import map_layer

        lm = map_layer(weight, bias, self.cfg)
        gs, st = self.sample_tiles(lm, rng, noise=noise, failures=failures)
        W, b = lm.effective_weights(gs)
        fw, fb = failed_weights(lm, st)
        sur = self

        def circuit(x, read_noise=noise, _lm=lm, _gs=gs, _rng=rng):
            return sur.layer_output(_lm, [g[None] for g in _gs], x, _rng, noise=read_noise)[0]

        return LayerSample(W, b, fw, fb, circuit=circuit, input_gain=self.input_gain())

    # ------------------------------------------------------------------ circuit
    def _f(self, v):
        v0 = self.cfg.device.v0
        if v0 is None:
            return v, np.ones_like(v)
        return v0 * np.sinh(v / v0), np.cosh(v / v0)

    def input_gain(self):
        """(v_read, v0, input_scale) for the differentiable sinh input map of a layer."""
        cfg = self.cfg
        v0 = cfg.device.v0
        return (float(cfg.write_verify.v_read), None if v0 is None else float(v0), float(cfg.input_scale))

    def input_limits(self):
        """Bounds on a layer's input magnitude ``|x|``, input units: ``(fitted, switching, overflow)``.

        ``fitted``: ``input_scale``, the largest input of the fit (read at
        ``v_read``); beyond it the first-order IR-drop model, which grows as
        ``sinh cosh`` of the read voltage, can be far from the circuit.
        ``switching``: the input whose read voltage reaches the devices'
        switching threshold. ``overflow``: above it the sinh read current
        overflows (``|V| / v0 > 700``, where ``xs.mvm`` refuses too); inf for
        linear devices.
        """
        from ..transfer import _SINH_MAX

        cfg = self.cfg
        dev = cfg.device
        per_volt = float(cfg.input_scale) / float(cfg.write_verify.v_read)
        overflow = np.inf if dev.v0 is None else _SINH_MAX * float(dev.v0) * per_volt
        return float(cfg.input_scale), min(dev.v_set, dev.v_reset) * per_volt, overflow

    def _check_circuit_inputs(self, x):
        """Refuse inputs the circuit model cannot take (before computing): NaN, inf, sinh overflow."""
        if x.size == 0:
            return
        x_max = float(np.max(np.abs(x)))
        if not np.isfinite(x_max):
            raise ParameterError("x holds NaN or inf; the surrogate's circuit model needs finite inputs.")
        _, _, overflow = self.input_limits()
        if x_max > overflow:
            raise ParameterError(_overflow_message(self, x_max))

    def _circuit_parts(self, lm, tile_g, x):
        """Ideal-wire sinh output and the two first-order IR-drop terms, weight units.

        ``tile_g``: per tile (n, M, N). Returns three (n, B, out) arrays.
        """
        cfg = self.cfg
        v_all = lm.input_voltages(np.asarray(x, dtype=float))
        n = tile_g[0].shape[0]
        B = v_all.shape[0]
        out = [np.zeros((n, B, lm.out_features)) for _ in range(3)]
        for k, tile in enumerate(lm.tiles):
            G = np.asarray(tile_g[k], dtype=float)
            M, N = G.shape[-2:]
            v = v_all[:, tile.rows[0]:tile.rows[1]]  # (B, M)
            fv, fpv = self._f(v)
            I0 = G[:, None, :, :] * fv[None, :, :, None]  # (n, B, M, N)
            jj = np.arange(N)
            cmin = np.minimum(jj[:, None], jj[None, :]).astype(float)
            ii = np.arange(M)
            dmax = (M - 1 - np.maximum(ii[:, None], ii[None, :])).astype(float)
            drop = cfg.r_wl * (I0 @ cmin)  # (n, B, M, N): sum_l I_il min(l, j)
            rise = cfg.r_bl * np.einsum("il,nblj->nbij", dmax, I0)
            gfp = G[:, None, :, :] * fpv[None, :, :, None]
            parts = (I0.sum(axis=2), -(gfp * drop).sum(axis=2), -(gfp * rise).sum(axis=2))
            for o, p in zip(out, parts):
                o[:, :, tile.outputs[0]:tile.outputs[1]] += lm.tile_outputs(k, p)
        return tuple(lm.decode(o) for o in out)

    def layer_output(self, lm, tile_g, x, rng, noise=True, max_elements=2_000_000):
        """Layer outputs through the surrogate circuit, weight units.

        Parameters
        ----------
        lm : xbarsim.mapping.LayerMapping
        tile_g : list of (n, M, N) arrays
            Programmed conductances per tile (n transfers).
        x : array_like, (B, in) or (n, B, in)
            Inputs, shared by all transfers or one set per transfer.
        rng : numpy.random.Generator
            Read noise: one key is drawn from it per call, and the noise of
            transfer ``t``, tile ``k`` and input ``b`` (its position in the
            call) is that key's stream ``(t, k, b)``, as the circuit MVM
            keys it: the inputs read after it and `max_elements` do not
            change it.
        noise : bool
            Add the simulator's read noise.
        max_elements : int
            Working-array budget (transfers x inputs x tile cells) per step.

        Returns
        -------
        ndarray, (n, B, out)
        """
        cfg = self.cfg
        _check_mapping(lm)
        check_rng(rng)  # None raised a raw AttributeError
        noise = check_flag(noise, "noise")
        tile_g = _check_tile_g(lm, tile_g)
        from .._memory import check_copy, require

        max_elements = check_count(max_elements, "max_elements")  # NaN, 'a' and 0
        check_copy(x, "x")  # a float32 x the size of the machine: refused, not copied
        # tensors that require grad, strings, complex values: a specific
        # error (torch's own, or the imaginary part dropped)
        x = as_real_array(x, "x", f"(B, {lm.in_features})", "input features, in weight units")
        if x.ndim not in (2, 3) or x.shape[-1] != lm.in_features:  # (in,) raised a raw IndexError
            raise ParameterError(f"x has shape {x.shape}; this layer takes {lm.in_features} input features: give "
                                 f"(B, {lm.in_features}) inputs, or (n, B, {lm.in_features}) for one set per "
                                 "transfer (one input: x[None]).")
        self._check_circuit_inputs(x)
        n = tile_g[0].shape[0]
        per_transfer = x.ndim == 3
        if per_transfer and x.shape[0] != n:
            raise ParameterError(f"x has {x.shape[0]} input sets for {n} transfers.")
        B = x.shape[-2]
        cells = max(int(np.prod(g.shape[-2:])) for g in tile_g)
        # the outputs, and a step's working arrays (about six of max_elements
        # floats): unchecked, 400,000 inputs of 200 transfers took 1.4 GB
        # with 64 MiB free, where mvm_many refused the same job
        work = min(max(int(max_elements), cells), (B if per_transfer else n * B) * cells)  # a step's elements
        require(8.0 * n * B * lm.out_features + 48.0 * work,
                f"surrogate outputs of {n} transfers x {B} inputs x {lm.out_features} outputs",
                "give fewer inputs or transfers at a time")
        y = np.empty((n, B, lm.out_features))
        rn = cfg.device.read_noise if noise else 0.0
        # one key a call; the noise of transfer t, tile k and input b is
        # then its own stream's (`fill_row_normals`), as in the circuit's
        # MVM. Drawn in sequence from `rng` step by step, an input's noise
        # changed with the other inputs read beside it and with
        # max_elements.
        key = np.uint64(rng.integers(0, 2**63)) if rn > 0 else None
        bstep = max(1, min(B, max_elements // cells))
        nstep = 1 if per_transfer else max(1, max_elements // (cells * bstep))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, not warned about
            for s in range(0, n, nstep):
                e = min(n, s + nstep)
                gs = [g[s:e] for g in tile_g]
                for b0 in range(0, B, bstep):
                    b1 = min(B, b0 + bstep)
                    xx = x[s, b0:b1] if per_transfer else x[b0:b1]
                    y[s:e, b0:b1] = self._one_output(lm, gs, xx, rn, key, s, b0)
        if not np.all(np.isfinite(y)):
            raise ParameterError(_overflow_message(self, float(np.max(np.abs(x), initial=0.0)), circuit=True))
        return y

    def _one_output(self, lm, tile_g, x, rn, key, first, row0):
        """Outputs of transfers ``first ...`` of a `layer_output` call on its
        inputs ``row0 ...``, `x`; read noise `rn` keyed by `key`."""
        if rn > 0:
            check_fork_safe("the surrogate's read noise")  # a parallel kernel
            from ..kernels.noise import fill_row_normals  # here: importing xbarsim.train loads no Numba
        cfg = self.cfg
        v_all = lm.input_voltages(x)
        n = tile_g[0].shape[0]
        y = np.zeros((n, v_all.shape[0], lm.out_features))
        jj_cache = {}
        for k, tile in enumerate(lm.tiles):
            G = tile_g[k]
            M, N = G.shape[-2:]
            v = v_all[:, tile.rows[0]:tile.rows[1]]
            fv, fpv = self._f(v)
            I0 = G[:, None, :, :] * fv[None, :, :, None]
            if (M, N) not in jj_cache:
                jj = np.arange(N)
                ii = np.arange(M)
                jj_cache[(M, N)] = (
                    np.minimum(jj[:, None], jj[None, :]).astype(float),
                    (M - 1 - np.maximum(ii[:, None], ii[None, :])).astype(float),
                )
            cmin, dmax = jj_cache[(M, N)]
            corr = I0 @ (self.kappa_wl * cfg.r_wl * cmin)
            corr += np.matmul(self.kappa_bl * cfg.r_bl * dmax, I0)
            corr *= G[:, None, :, :]
            corr *= fpv[None, :, :, None]
            I = I0
            I -= corr
            cur = I.sum(axis=2)
            if rn > 0:
                z = np.empty(cur.shape)
                fill_row_normals(key, np.uint64(first), np.uint64(k), np.uint64(row0), z)
                cur = cur + rn * np.sqrt((I * I).sum(axis=2)) * z
            y[:, :, tile.outputs[0]:tile.outputs[1]] += lm.tile_outputs(k, cur)
        return lm.decode(y)

    # ------------------------------------------------------------------ penalty
    def penalty(self, weight, bias, failures=True):
        """Variance of a layer's weight errors after transfer (torch, differentiable).

        For every device at its target conductance ``G``, the variance of
        its own write-verify and drift error (their means, a systematic
        shift, are left out) and, with `failures` (True, False, or a scale
        of the failure probabilities, as in `program_tile`), ``p_lrs E[(G_lrs -
        G)^2] + p_hrs E[(G_hrs - G)^2]`` (the failures' mean square);
        summed over the devices of each weight, divided by ``alpha^2``
        (weight units) and summed over the layer. It matches the sampled
        weight-error variance (`test_penalty_is_the_sampled_weight_error_variance`);
        it is not the mean squared error, which the programming-order drift
        mean dominates in large tiles (0.98 against 3.95 on a 16 x 12 layer,
        failures off, from the surrogate's own samples). Under
        ``mapping="reference"`` the devices of a weight are its own and its
        row's reference device (at the window's middle), whose error enters
        every weight of the row.

        Notes
        -----
        The regularizer of this project (the issue's "term of your design").
        The gradient reaches the conductances (pushing them toward where the
        surrogate says programming is most precise: in absolute terms, low
        conductance) and the layer scale through ``alpha = (g_max - g_min)
        / max|w|``: every device error scales with ``max|w|``, so one large
        weight makes the whole layer imprecise. The reparametrization trick
        passes gradients straight through the sampled noise and never sees
        that; this term does.

        The gradient is not the exact derivative of the value: the drift
        bases (`drift_bases`: what the devices programmed after a device do
        to it, computed in NumPy from the current weights) are constants of
        the step. The gradient follows each device's own conductance through
        every term and the scale ``alpha``, but not how a weight moves the
        drift of the devices programmed before it, nor how ``alpha`` moves
        the drift bases. Against central differences (float64, 16 x 4 and 3
        x 16 layers, seeds 0-2) the gradient is off by at most 0.07-0.16 %
        of its largest entry, except on the entry of the largest ``|w|``
        (which sets ``alpha``): 0.6-2.1 % there. A penalty beyond the weights'
        dtype (float16 past 65504) is refused, not returned as inf.
        """
        import torch

        cfg = self.cfg
        g_min, g_max = cfg.g_window
        s_in = float(cfg.input_scale)
        # at least single precision: squared conductance errors (~1e-12 S^2)
        # underflow in half precision, and the penalty came out 0/0 = NaN;
        # the result is cast back to the weights' dtype
        _check_penalty_args(weight, bias)
        # a scale, as in `program_tile`: failures=5.0 counted as 1 and 'no'
        # as True
        k = failure_scale(failures)
        if k * (self.p_lrs + self.p_hrs) > 1:
            raise ParameterError(f"failures={failures!r} scales the failure probability above 1.")
        out_dtype = weight.dtype
        work = torch.promote_types(weight.dtype, torch.float32)
        weight = weight.to(work)
        bias = None if bias is None else bias.to(work)
        w_aug = weight if bias is None else torch.cat([weight, (bias / s_in)[:, None]], dim=1)
        wmax = w_aug.abs().max()
        # an all-zero layer is mapped with max|w| = 1 (`map_layer`); so is its penalty
        wmax = torch.where(wmax > 0, wmax, torch.ones_like(wmax))
        # the backward pass of mse / alpha^2 takes alpha^3 = (span / max|w|)^3,
        # which overflowed to a NaN gradient (finite penalty) for max|w| below
        # ~1e-20 in float32: a layer that small counts as
        # one at the floor, where alpha^3 stays a thousandth of the largest
        # float (larger layers: the same bits)
        span = g_max - g_min
        wmax = torch.clamp_min(wmax, span * 10.0 * float(torch.finfo(work).max) ** (-1.0 / 3.0))
        feats = self._penalty_features(float64_array(weight), float64_array(bias))
        vb_p, vb_n = (torch.as_tensor(f, dtype=w_aug.dtype, device=w_aug.device) for f in feats)
        if cfg.mapping.value == "differential":
            alpha = span / wmax
            gp = g_min + alpha * torch.relu(w_aug)
            gn = g_min + alpha * torch.relu(-w_aug)
        else:
            alpha = span / (2 * wmax)
            gp = 0.5 * (g_min + g_max) + alpha * w_aug
            gn = torch.full_like(w_aug, 0.5 * (g_min + g_max))  # the row's reference device
        mse = self._torch_var(gp, vb_p, k) + self._torch_var(gn, vb_n, k)
        err2 = mse / alpha**2
        if bias is not None and s_in != 1.0:
            scale = torch.ones(w_aug.shape[1], dtype=w_aug.dtype, device=w_aug.device)
            scale[-1] = s_in**2
            err2 = err2 * scale
        total = err2.sum()
        out = total.to(out_dtype)
        # cast back, the sum of a half-precision layer with max|w| ~ 550 (3 x 4)
        # or ~ 16 (128 x 128) overflowed to inf without a word
        if not bool(torch.isfinite(out.detach())):
            raise ParameterError(
                f"penalty: the hardware penalty of these {tuple(weight.shape)} weights (max|w| = "
                f"{float(wmax):.4g}) is {float(total):.4g}, beyond what {out_dtype} holds. "
                + ("Train this layer in float32 or float64 (layer.float()), or keep its weights smaller (weight "
                   "decay)." if torch.finfo(out_dtype).bits < 32 else "Keep its weights smaller (weight decay)."))
        return out

    def _torch_var(self, g, var_base, fail_scale=1.0):
        """Mean squared programming error (S^2) of devices at targets `g`."""
        import torch

        c = torch.as_tensor(self.bin_centres, dtype=g.dtype, device=g.device)
        s = torch.as_tensor(self.own_std, dtype=g.dtype, device=g.device)
        # piecewise-linear interpolation of the own std, clamped at the ends
        if len(c) == 1:  # one bin, one std: the interpolation divided 0 by 0
            sd = s[0] * torch.ones_like(g)
        else:
            gc = g.clamp(c[0], c[-1])
            idx = torch.searchsorted(c, gc.detach().reshape(-1)).clamp(1, len(c) - 1).reshape(g.shape)
            c0, c1 = c[idx - 1], c[idx]
            s0, s1 = s[idx - 1], s[idx]
            sd = s0 + (s1 - s0) * (gc - c0) / (c1 - c0)
        g_min = self.cfg.g_window[0]
        at_min = torch.as_tensor(float(self.own_at_min[1]), dtype=g.dtype, device=g.device)
        sd = torch.where(g.detach() <= g_min * (1 + 1e-9), at_min, sd)
        # the sampled errors are std x z, z from the fitted quantile tables,
        # whose variance is not exactly 1 (1.01-1.11 on small fits): the
        # penalty came out 5-9 % below the sampled variance
        own_var = (sd * g) ** 2 * _quantile_moments(self.own_z)[1]
        tau = g / self.cfg.g_window[1]
        vc = torch.as_tensor(self.drift_var_coef, dtype=g.dtype, device=g.device)
        k = var_base.shape[-1]
        drift_var = (((var_base @ vc[:k]) + tau * (var_base @ vc[k:])).clamp_min(0.0) * g * g
                     * _quantile_moments(self.drift_z)[1])
        total = own_var + drift_var
        if fail_scale:
            for p, q in ((fail_scale * self.p_lrs, self.lrs_q), (fail_scale * self.p_hrs, self.hrs_q)):
                if p > 0:
                    m, v = _quantile_moments(q)
                    total = total + p * ((m - g) ** 2 + v)
        return total

    def _penalty_features(self, weight, bias):
        """Drift-variance bases of the G+ (or G) and G- (or reference) device of
        each logical weight, (out, in + bias, 6) arrays, for the current weights
        (constants of the step)."""
        from ..mapping import map_layer

        lm = map_layer(weight, bias, self.cfg)
        rows = lm.in_features + int(lm.has_bias)
        P = np.zeros((2, lm.out_features, rows, 6))
        for tile in lm.tiles:
            _, vb = drift_bases(tile.target, self.pulse_coef, self.relax_cycles, self.cfg)
            r0, r1 = tile.rows
            o0, o1 = tile.outputs
            if self.cfg.mapping.value == "differential":
                P[0, o0:o1, r0:r1] = np.swapaxes(vb[:, 0::2], 0, 1)
                P[1, o0:o1, r0:r1] = np.swapaxes(vb[:, 1::2], 0, 1)
            else:
                P[0, o0:o1, r0:r1] = np.swapaxes(vb[:, :-1], 0, 1)
                P[1, o0:o1, r0:r1] = vb[None, :, -1]  # each row's reference device
        return P[0], P[1]


def _overflow_message(sur, x_max, circuit=False, dtype="double precision"):
    """Why inputs up to ``|x| = x_max`` are refused, and the fix.

    ``circuit``: the computed output overflowed (the first-order IR-drop
    term grows as ``sinh cosh`` of the read voltage); else the sinh read
    current itself would (refused before computing).
    """
    v_read, v0, s_in = sur.input_gain()
    fitted, switching, _ = sur.input_limits()
    v = x_max * v_read / s_in
    if not circuit:
        what = f"the sinh read current (v0 = {v0:g} V) overflows {dtype}"
    elif v0 is not None:
        what = (f"the layer's output overflows {dtype} (the surrogate's first-order IR-drop term grows as sinh x "
                f"cosh of V / v0, v0 = {v0:g} V)")
    else:
        what = f"the layer's output overflows {dtype}"
    return (f"inputs up to |x| = {x_max:.4g} drive the word lines at {v:.3g} V, where {what}. The surrogate was "
            f"fitted on inputs in [0, input_scale = {fitted:g}] (read at up to {v_read:g} V), and from |x| = "
            f"{switching:.4g} on a read reaches the devices' switching threshold. Keep the layer's inputs in that "
            "range (a bounded activation such as a sigmoid, or scaled features), or fit the surrogate for a "
            "larger TransferConfig.input_scale.")


def check_rng(rng):
    """``rng`` must be a NumPy Generator (None or an int raised raw errors deep inside)."""
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(f"rng must be a numpy.random.Generator; got {type(rng).__name__} "
                             "(np.random.default_rng(seed)).")


def _check_mapping(lm):
    from ..mapping import LayerMapping

    if not isinstance(lm, LayerMapping):
        raise ParameterError(f"lm must be an xbarsim.mapping.LayerMapping; got {type(lm).__name__} "
                             "(xbarsim.mapping.map_layer(weight, bias, surrogate.cfg)).")


def _check_tile_g(lm, tile_g):
    """``tile_g`` as a list with one (n, M, N) float array of finite
    conductances >= 0 per tile of ``lm``, n the same for all (an (M, N)
    array, a wrong tile shape or an empty list raised NumPy's raw errors, and
    NaN conductances were blamed on the inputs)."""
    shapes = [t.shape for t in lm.tiles]
    expect = ", ".join(f"(n, {M}, {N})" for M, N in shapes)
    if not isinstance(tile_g, (list, tuple)) or len(tile_g) != len(shapes):
        got = f"{len(tile_g)} entries" if isinstance(tile_g, (list, tuple)) else type(tile_g).__name__
        raise ParameterError(f"tile_g must be a list with one array per tile of the layer ({len(shapes)}: "
                             f"{expect}), as sample_tiles(lm, rng, n=...) returns; got {got}.")
    out = [np.asarray(g, dtype=float) for g in tile_g]
    n = out[0].shape[0] if out[0].ndim == 3 else None
    for k, (g, shape) in enumerate(zip(out, shapes)):
        if g.ndim != 3 or g.shape[1:] != shape or g.shape[0] != n or n == 0:
            raise ParameterError(f"tile_g[{k}] has shape {g.shape}; expected (n, {shape[0]}, {shape[1]}) with the "
                                 f"same n >= 1 for every tile ({expect}; one transfer: g[None]).")
        if not np.all(np.isfinite(g)) or np.any(g < 0):
            raise ParameterError(f"tile_g[{k}] holds NaN, inf or negative conductances; programmed conductances "
                                 "are finite and >= 0 siemens.")
    return out


def _check_penalty_args(weight, bias):
    """The layer's torch tensors: NumPy arrays raised torch's raw TypeError,
    a bias of the wrong length a raw RuntimeError."""
    import torch

    if not (isinstance(weight, torch.Tensor) and weight.is_floating_point() and weight.ndim == 2):
        got = f"a {weight.ndim}-D {weight.dtype} tensor" if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ParameterError(f"penalty takes the layer's torch parameters: weight a 2-D (out, in) floating-point "
                             f"tensor; got {got} (torch.as_tensor(w, dtype=torch.float64)).")
    if weight.numel() == 0:  # torch's raw "max(): Expected reduction dim"
        raise ParameterError(f"penalty needs a layer with weights; got an empty {tuple(weight.shape)} weight.")
    if bias is not None and not (isinstance(bias, torch.Tensor) and bias.is_floating_point()
                                 and tuple(bias.shape) == (weight.shape[0],)):
        got = f"shape {tuple(bias.shape)}" if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ParameterError(f"penalty takes bias as None or a ({weight.shape[0]},) floating-point torch tensor "
                             f"(one per output of the {tuple(weight.shape)} weight); got {got}.")


def extrapolation_message(sur, x_max, who):
    """What inputs up to ``x_max``, past the surrogate's fitted range, do
    (``who``: what the inputs are, e.g. "HardwareAwareLinear inputs")."""
    v_read, _, _ = sur.input_gain()
    fitted, switching, _ = sur.input_limits()
    beyond = (f"; from |x| = {switching:.4g} on (these inputs reach it) the read voltage is at or above "
              "the devices' switching threshold, where a read would disturb them on hardware"
              if x_max >= switching else
              f"; from |x| = {switching:.4g} on a read would also reach the devices' switching threshold")
    return (f"{who} up to |x| = {x_max:.4g} exceed input_scale = {fitted:g}, the largest input the surrogate "
            f"was fitted on (read at {v_read:g} V). There the surrogate's first-order IR-drop model can be far "
            f"from the circuit (xs.mvm solves it){beyond}. Keep the inputs in [0, {fitted:g}] (a bounded "
            "activation such as a sigmoid, or scaled features), or fit the surrogate for a larger "
            "TransferConfig.input_scale.")


def failed_weights(lm, stuck):
    """Which weights / biases hold at least one stuck device.

    ``stuck``: per tile, (..., M, N) codes. Returns ``(failed_w, failed_b)``
    with shapes (..., out, in) and (..., out) (``failed_b`` None without
    bias).
    """
    lead = np.shape(stuck[0])[:-2]
    rows = lm.in_features + int(lm.has_bias)
    F = np.zeros(lead + (lm.out_features, rows), dtype=bool)
    for tile, s in zip(lm.tiles, stuck):
        bad = np.asarray(s) != 0
        if lm.scheme.value == "differential":
            per = bad[..., 0::2] | bad[..., 1::2]
        else:
            per = bad[..., :-1] | bad[..., -1:]
        F[..., tile.outputs[0]:tile.outputs[1], tile.rows[0]:tile.rows[1]] |= np.swapaxes(per, -1, -2)
    if lm.has_bias:
        return F[..., :-1], F[..., -1]
    return F, None


def _batch_from(lm, cfg, tile_g, offset=0, seed=0):
    """A `TransferBatch` holding given conductances (for the simulator's MVM)."""
    import xbarsim as xs

    return xs.TransferBatch(
        mapping=lm, cfg=cfg, seed=seed, offset=offset, g=[np.ascontiguousarray(g) for g in tile_g],
        converged=[np.ones(g.shape, bool) for g in tile_g],
        stuck_state=[np.zeros(g.shape, np.int8) for g in tile_g],
        pulses=[np.zeros(g.shape, np.int32) for g in tile_g],
    )


def failure_samples(cfg, n_devices, seed):
    """Stuck codes and conductances of ``n_devices`` fresh simulator devices.

    Failures are drawn when an array is initialised and do not depend on
    the programming (xbarsim.devices: stuck devices neither switch nor
    relax), but their rates must be known to a few hundredths of a point, which
    takes ~10^5 devices. So the simulator programs 8 x 8 arrays with a
    one-pulse budget and ideal wires (no circuit solves): same failure draws, a
    fraction of the cost.

    Returns
    -------
    stuck : (n,) int8
    g : (n,) float
        Final conductance (the stuck value where stuck != 0), S.
    """
    import dataclasses

    import xbarsim as xs

    cheap = dataclasses.replace(
        cfg, r_wl=0.0, r_bl=0.0, tile=(8, 8),
        write_verify=dataclasses.replace(cfg.write_verify, max_pulses=1),
    )
    # a 4-output, 7-input layer with bias fills one 8 x 8 differential tile
    out_f, in_f = (4, 7) if cheap.mapping.value == "differential" else (7, 7)
    per = sum(t.target.size for t in xs.mapping.map_layer(np.zeros((out_f, in_f)), np.zeros(out_f), cheap).tiles)
    n = -(-int(n_devices) // per)
    # iter_transfers: transfer_many's streams, without its warning that the
    # one-pulse budget leaves most devices unconverged (as it does on purpose)
    chunks = list(xs.iter_transfers(np.zeros((out_f, in_f)), np.zeros(out_f), cheap, n=n, seed=int(seed),
                                    chunk=1024))
    stuck = np.concatenate([np.concatenate([a.reshape(len(c), -1) for a in c.stuck_state], axis=1)
                            for c in chunks]).ravel()
    g = np.concatenate([np.concatenate([a.reshape(len(c), -1) for a in c.g], axis=1) for c in chunks]).ravel()
    return stuck[:n_devices], g[:n_devices]


def _quantile_moments(q):
    """Mean and variance of ``_inverse_cdf(u, q)`` for ``u`` uniform in [0,
    1], exactly: linear between the levels, the end quantiles below the
    first level and above the last (the law the surrogate samples). It
    integrated over the levels' range alone, leaving the tails out."""
    q = np.asarray(q, dtype=float)
    du = np.diff(_Z_LEVELS)
    a, b = q[:-1], q[1:]
    lo, hi = _Z_LEVELS[0], 1.0 - _Z_LEVELS[-1]
    mean = float(np.sum(du * (a + b) / 2) + lo * q[0] + hi * q[-1])
    second = float(np.sum(du * (a * a + a * b + b * b) / 3) + lo * q[0] ** 2 + hi * q[-1] ** 2)
    return mean, max(second - mean * mean, 0.0)


def _norm_ppf(p):
    from scipy.stats import norm

    return norm.ppf(p)


# ----------------------------------------------------------------------------
# Check against fresh simulator samples
# ----------------------------------------------------------------------------


def _ls_weights(x, y):
    """Least-squares ``(W, b)`` of ``y ~ x W^T + b`` over the B rows (per transfer)."""
    X = np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1)
    sol, *_ = np.linalg.lstsq(X, y, rcond=None)
    return sol.T  # (out, in + 1)


def _check_probes(n_probe, layers):
    """`check`'s probe inputs per layer shape: ``n_probe`` (refused below
    ``in + 1`` for any shape, where the least-squares weights are
    underdetermined), or ``max(32, 2 (in + 1))`` when None."""
    if n_probe is None:
        return {s: max(32, 2 * (s[1] + 1)) for s in layers}
    n_probe = check_count(n_probe, "n_probe")
    widest = max(in_f for _, in_f in layers)
    if n_probe < widest + 1:
        raise ParameterError(f"n_probe={n_probe} probe inputs cannot measure the effective weights of a layer with "
                             f"{widest} inputs: each row has {widest + 1} unknowns (bias included), so the least-"
                             f"squares fit is underdetermined and its errors mean nothing. Give n_probe >= "
                             f"{widest + 1} (2 x that or more averages the read noise), or None (max(32, 2 (in + 1)) "
                             "per layer shape).")
    return {s: n_probe for s in layers}


_CHECK_STREAM = 0x636865636B
"""Key of `check`'s random streams (ASCII "check"), apart from `fit`'s."""


BIN_ERROR_MEAN_TOL = 0.25
"""`check`'s ``bins_error_mean`` criterion: the surrogate's mean programming
error per target bin within this many of the simulator's error stds."""


BIN_DEVICES_ENOUGH = 450
"""`check` warns below this many devices in a target bin: a spread from n
samples is known to about 1/sqrt(2n), here a third of the 10 % criteria."""


def check(surrogate, cfg=None, n_layers=20, per_layer=50, seed=12345, layers=None, reps=4, n_probe=None,
          n_fail_devices=100_000, progress=False):
    """Compare a surrogate with fresh simulator samples (the acceptance report).

    For each layer shape, `n_layers` fresh random layers (uniform weights,
    from streams keyed apart from the fit's for any `seed`) are each transferred `per_layer` times
    by the simulator (``xs.transfer_many``, MVM through the circuit with read
    noise) and sampled ``reps * per_layer`` times by the surrogate. ``cfg``
    is the simulator's configuration: by default the surrogate's own (one
    it was not fitted for is warned about: the figures then measure that
    mismatch).

    Returns
    -------
    dict
        ``bins``: per target bin, devices, mean and std of the programmed
        conductance ``g`` of working devices and of its error ``g - t``
        (simulator, surrogate) with their relative differences;
        ``failures``: stuck-LRS / stuck-HRS rates and the differences in
        percentage points (fresh devices of the layers plus
        `n_fail_devices` more, `failure_samples`); ``layers``: per layer
        shape, mean and std of the effective-weight error ``W_eff - W`` (in
        units of the layer's ``max|w|``), the effective weights measured by
        least squares on the MVM outputs of `n_probe` random inputs (by
        default ``max(32, 2 (in + 1))`` per layer shape; at least ``in + 1``,
        the unknowns of a row, bias included: with fewer the fit is
        underdetermined and its minimum-norm answer made the simulator's and
        the surrogate's errors agree, a false pass); ``pass``:
        the issue's criteria (bins: mean and std of ``g`` within 10 %, and
        the stricter ``bins_error_std``: std of ``g - t`` within 10 %;
        failures within 0.1 point; layers: std within 15 % and mean within
        15 % of the simulator's std, as the mean error is close to 0) and
        ``bins_error_mean``: in every bin the surrogate's mean error
        ``g - t`` within `BIN_ERROR_MEAN_TOL` (a quarter) of the simulator's
        std of it. The issue's 10 % on the mean of ``g`` is wider than the
        programming error itself (a few per cent of ``g``), and the layers'
        pooled mean error cancels a conductance gain over weights of both
        signs: surrogates off by a constant 3-8 % of every conductance, or
        without their drift-mean model, met the issue's four criteria (found
        by review). Its worst bin measured 0.09-0.16 for fits of the
        default configuration, 0.77-0.84 for such fits off by 3 % and
        0.57 for one without its drift mean.
        The bin criteria fail when no bin holds 20 devices of each, as
        nothing was compared, and a check whose smallest bin holds fewer
        than `BIN_DEVICES_ENOUGH` warns that its bin verdicts may be chance
        (``min_bin_devices`` holds that count).
    """
    import xbarsim as xs

    from .._progress import Progress

    if not isinstance(surrogate, Surrogate):  # "x": a bare AttributeError on .cfg
        raise ParameterError(f"check compares a Surrogate with the simulator; got {type(surrogate).__name__}. "
                             "Fit one with Surrogate.fit(cfg) or load one with Surrogate.load(path).")
    if cfg is None:
        cfg = surrogate.cfg
    elif not isinstance(cfg, xs.TransferConfig):
        raise ParameterError(f"cfg must be an xbarsim.TransferConfig (or None: the surrogate's own); got "
                             f"{type(cfg).__name__}.")
    elif not surrogate.matches(cfg):
        # compared the surrogate with a simulator it was not fitted to, and
        # could pass, without a word
        from .._warn import warn

        warn("check compares the surrogate with the simulator under a TransferConfig other than the one it was "
             "fitted for (mapping, input scale, device, wires...): its figures then measure that mismatch, not "
             "the fit. Leave cfg=None to check the fit itself.", UserWarning)
    layers = surrogate.fitted_layers if layers is None else _layer_shapes(layers)
    n_layers = check_count(n_layers, "n_layers")
    per_layer = check_count(per_layer, "per_layer")
    reps = check_count(reps, "reps")
    probes = _check_probes(n_probe, layers)
    n_fail_devices = check_count(n_fail_devices, "n_fail_devices", 0)
    seed = check_seed(seed)
    progress = check_flag(progress, "progress")
    scale = surrogate.meta.get("weight_scale", 1.0)
    # streams of their own, keyed (seed, _CHECK_STREAM, ...): `fit` draws from
    # default_rng(seed) and seed + 7919, so check(seed=S) after fit(seed=S)
    # tested the fit's own first layer and tile, and a seed 104729 - 7919
    # above the fit's its own failure devices
    rng = np.random.default_rng([seed, _CHECK_STREAM, 0])
    srng = np.random.default_rng([seed, _CHECK_STREAM, 1])
    fail_seed = int(np.random.SeedSequence([seed, _CHECK_STREAM, 2]).generate_state(1, np.uint64)[0])
    t_sim, g_sim, t_sur, g_sur = [], [], [], []
    stuck_sim = []
    stuck_sur = []
    layer_err = {s: {"sim": [], "sur": [], "sim_ok": [], "sur_ok": []} for s in layers}
    with Progress(n_layers * len(layers), label="surrogate check", enabled=progress) as bar:
        for shape in layers:
            out_f, in_f = shape
            for _ in range(n_layers):
                W = rng.uniform(-scale, scale, shape)
                b = rng.uniform(-scale, scale, out_f)
                batch = xs.transfer_many(W, b, cfg, n=per_layer, seed=int(rng.integers(0, 2**62)))
                lm = batch.mapping
                wmax = max(np.abs(W).max(), np.abs(b / cfg.input_scale).max())
                W_aug = np.concatenate([W, b[:, None]], axis=1)
                x = rng.uniform(0, cfg.input_scale, (probes[shape], in_f))
                y = batch.mvm(x, seed=int(rng.integers(0, 2**62)))
                fw, fb = failed_weights(lm, batch.stuck_state)
                ok = ~np.concatenate([fw, fb[..., None]], axis=-1)
                n_sur = reps * per_layer
                gs, ss = surrogate.sample_tiles(lm, srng, n=n_sur)
                ys = surrogate.layer_output(lm, gs, x, srng, noise=True)
                fws, fbs = failed_weights(lm, ss)
                oks = ~np.concatenate([fws, fbs[..., None]], axis=-1)
                for key, yy, okk in (("sim", y, ok), ("sur", ys, oks)):
                    for r in range(yy.shape[0]):
                        E = (_ls_weights(x, yy[r]) - W_aug) / wmax
                        layer_err[shape][key].append(E.ravel())
                        layer_err[shape][key + "_ok"].append(E[okk[r]].ravel())
                for k, tile in enumerate(lm.tiles):
                    st = batch.stuck_state[k]
                    okd = st == 0
                    t_sim.append(np.broadcast_to(tile.target, st.shape)[okd])
                    g_sim.append(batch.g[k][okd])
                    stuck_sim.append(st.ravel())
                    oks_d = ss[k] == 0
                    t_sur.append(np.broadcast_to(tile.target, ss[k].shape)[oks_d])
                    g_sur.append(gs[k][oks_d])
                    stuck_sur.append(ss[k].ravel())
                bar.update()
    t_sim, g_sim, t_sur, g_sur = (np.concatenate(a) for a in (t_sim, g_sim, t_sur, g_sur))
    edges = surrogate.bin_edges
    nb = len(edges) - 1
    bsim = np.clip(np.digitize(t_sim, edges) - 1, 0, nb - 1)
    bsur = np.clip(np.digitize(t_sur, edges) - 1, 0, nb - 1)
    rows = []
    for k in range(nb):
        a, c = g_sim[bsim == k], g_sur[bsur == k]
        ea, ec = a - t_sim[bsim == k], c - t_sur[bsur == k]
        if a.size < 20 or c.size < 20:
            continue
        row = {
            "lo_uS": edges[k] * 1e6, "hi_uS": edges[k + 1] * 1e6, "n_sim": int(a.size), "n_sur": int(c.size),
            "mean_sim_uS": a.mean() * 1e6, "mean_sur_uS": c.mean() * 1e6,
            "std_sim_uS": a.std() * 1e6, "std_sur_uS": c.std() * 1e6,
            "err_mean_sim_uS": ea.mean() * 1e6, "err_mean_sur_uS": ec.mean() * 1e6,
            "err_std_sim_uS": ea.std() * 1e6, "err_std_sur_uS": ec.std() * 1e6,
        }
        row["mean_rel_diff"] = (row["mean_sur_uS"] - row["mean_sim_uS"]) / row["mean_sim_uS"]
        row["std_rel_diff"] = (row["std_sur_uS"] - row["std_sim_uS"]) / row["std_sim_uS"]
        row["err_mean_diff_in_std"] = (row["err_mean_sur_uS"] - row["err_mean_sim_uS"]) / row["err_std_sim_uS"]
        row["err_std_rel_diff"] = (row["err_std_sur_uS"] - row["err_std_sim_uS"]) / row["err_std_sim_uS"]
        rows.append(row)
    n_min = min((min(r["n_sim"], r["n_sur"]) for r in rows), default=0)
    if rows and n_min < BIN_DEVICES_ENOUGH:
        # a check of 6 x 50 transfers failed a correct surrogate and passed
        # broken ones alike, without a word (found by review)
        from .._warn import warn

        warn(f"check: the smallest target bin holds {n_min} devices, whose spread is known to about "
             f"{100 / np.sqrt(2 * n_min):.0f} % (1/sqrt(2n)) against the bin criteria's 10 %, so their verdicts "
             f"here may be chance. Raise n_layers or per_layer (to {BIN_DEVICES_ENOUGH} devices a bin or more; the "
             "default 20 x 50 holds about 1000 a bin on the moons shapes).", UserWarning)
    ss_layers = np.concatenate(stuck_sim)
    ss_sim = ss_layers
    if n_fail_devices:
        ss_sim = np.concatenate([ss_layers, failure_samples(cfg, n_fail_devices, fail_seed)[0]])
    ss_sur = np.concatenate(stuck_sur)
    fail = {
        "n_devices_sim": int(ss_sim.size),
        "lrs_sim_pct": 100 * float(np.mean(ss_sim == 1)), "lrs_sur_pct": 100 * float(np.mean(ss_sur == 1)),
        "hrs_sim_pct": 100 * float(np.mean(ss_sim == 2)), "hrs_sur_pct": 100 * float(np.mean(ss_sur == 2)),
        "lrs_model_pct": 100 * surrogate.p_lrs, "hrs_model_pct": 100 * surrogate.p_hrs,
        "n_devices_layers": int(ss_layers.size),
        "lrs_layers_pct": 100 * float(np.mean(ss_layers == 1)),
        "hrs_layers_pct": 100 * float(np.mean(ss_layers == 2)),
    }
    fail["lrs_diff_pp"] = fail["lrs_model_pct"] - fail["lrs_sim_pct"]
    fail["hrs_diff_pp"] = fail["hrs_model_pct"] - fail["hrs_sim_pct"]
    lay = {}
    for shape, d in layer_err.items():
        e = {k: np.concatenate(v) for k, v in d.items()}
        row = {}
        for key in ("", "_ok"):
            a, c = e["sim" + key], e["sur" + key]
            row["mean_sim" + key] = float(a.mean())
            row["mean_sur" + key] = float(c.mean())
            row["std_sim" + key] = float(a.std())
            row["std_sur" + key] = float(c.std())
            row["std_rel_diff" + key] = (c.std() - a.std()) / a.std()
            row["mean_diff_in_std" + key] = (c.mean() - a.mean()) / a.std()
        lay["x".join(map(str, shape))] = row
    # no bin with 20 devices on each side compares nothing: not a pass
    # (all([]) passed a 1x1 layer's check)
    ok_bins = bool(rows) and all(abs(r["mean_rel_diff"]) <= 0.10 and abs(r["std_rel_diff"]) <= 0.10 for r in rows)
    ok_err = bool(rows) and all(abs(r["err_std_rel_diff"]) <= 0.10 for r in rows)
    ok_emean = bool(rows) and all(abs(r["err_mean_diff_in_std"]) <= BIN_ERROR_MEAN_TOL for r in rows)
    ok_fail = abs(fail["lrs_diff_pp"]) <= 0.1 and abs(fail["hrs_diff_pp"]) <= 0.1
    ok_lay = all(abs(r["std_rel_diff"]) <= 0.15 and abs(r["mean_diff_in_std"]) <= 0.15 for r in lay.values())
    return {
        "bins": rows, "failures": fail, "layers": lay,
        "pass": {"bins": bool(ok_bins), "bins_error_std": bool(ok_err), "bins_error_mean": bool(ok_emean),
                 "failures": bool(ok_fail), "layers": bool(ok_lay)},
        "n_layers": int(n_layers), "per_layer": int(per_layer), "seed": int(seed), "reps": int(reps),
        "min_bin_devices": int(n_min),
    }


def format_check(rep):
    """The `check` report as text tables."""
    lines = [
        "Programmed conductance g of working devices per target bin t (simulator vs surrogate);",
        "the error g - t is the stricter comparison (the spread of g alone includes the bin width).",
        "target bin (uS)    n_sim  mean g sim/sur (uS)  d_mean | std g sim/sur   d_std | err mean sim/sur  d/std"
        " | err std sim/sur  d_std",
    ]
    for r in rep["bins"]:
        lines.append(
            f"{r['lo_uS']:6.1f}-{r['hi_uS']:6.1f}  {r['n_sim']:6d}  {r['mean_sim_uS']:8.2f} {r['mean_sur_uS']:8.2f}"
            f"  {100 * r['mean_rel_diff']:+6.2f}% | {r['std_sim_uS']:6.2f} {r['std_sur_uS']:6.2f} {100 * r['std_rel_diff']:+6.1f}%"
            f" | {r['err_mean_sim_uS']:+6.2f} {r['err_mean_sur_uS']:+6.2f} {r['err_mean_diff_in_std']:+6.3f}"
            f" | {r['err_std_sim_uS']:6.2f} {r['err_std_sur_uS']:6.2f} {100 * r['err_std_rel_diff']:+6.1f}%"
        )
    f = rep["failures"]
    lines.append(
        f"failures: stuck LRS sim {f['lrs_sim_pct']:.3f}% model {f['lrs_model_pct']:.3f}% ({f['lrs_diff_pp']:+.3f} pp); "
        f"stuck HRS sim {f['hrs_sim_pct']:.3f}% model {f['hrs_model_pct']:.3f}% ({f['hrs_diff_pp']:+.3f} pp) "
        f"over {f['n_devices_sim']} fresh devices (in the programmed layers alone: LRS {f['lrs_layers_pct']:.3f}%, "
        f"HRS {f['hrs_layers_pct']:.3f}% of {f['n_devices_layers']}; surrogate draws LRS {f['lrs_sur_pct']:.3f}%, "
        f"HRS {f['hrs_sur_pct']:.3f}%)"
    )
    for name, r in rep["layers"].items():
        lines.append(
            f"layer {name}: effective-weight error (x max|w|) mean sim {r['mean_sim']:+.4f} sur {r['mean_sur']:+.4f}"
            f" (diff {r['mean_diff_in_std']:+.3f} std), std sim {r['std_sim']:.4f} sur {r['std_sur']:.4f}"
            f" ({100 * r['std_rel_diff']:+.1f}%); working weights only: std sim {r['std_sim_ok']:.4f}"
            f" sur {r['std_sur_ok']:.4f} ({100 * r['std_rel_diff_ok']:+.1f}%)"
        )
    lines.append(f"pass: {rep['pass']}")
    # the dict alone gave no verdict
    missed = [k for k, ok in rep["pass"].items() if not ok]
    lines.append(f"surrogate check: {len(rep['pass']) - len(missed)} of {len(rep['pass'])} criteria met"
                 + (f" (missed: {', '.join(missed)})" if missed else ""))
    return "\n".join(lines)
