"""The paper's statistical-only transfer model (no circuit).

Drolet et al. (arXiv:2305.18495) modelled a transfer onto a passive TiO2
crossbar with measured statistics alone, applied device by device to the
target conductances:

1. **Programming offset**: a relative error ``N(-0.589 %, 0.339 %)``.
2. **Conductance tuning imprecision** of write-verify: a relative error of
   standard deviation ``sigma(G) [%] = a G + b`` (G in µS,
   ``a = -6.24e-4``, ``b = 0.691``).
3. **Biasing-scheme effect**: a device that has been tuned drifts while the
   devices programmed after it in the same array are tuned; the drift is
   drawn from the measured changes for the same number of subsequent
   programming events (``neighbour_drift.csv``).
4. **Failures**: 0.5 % of devices stuck near LRS (``G ~ N(573, 99) µS``),
   0.5 % stuck in HRS (``G ~ U(10, 100) µS``).

The MVM is ideal (``G.T @ x``, no wires, no read noise). This is the
reference the circuit-in-the-loop evaluation is compared with, to show what
simulating the circuit changes. All figures come from the data README
(``xbarsim/data/tio2/README.md``, ``shared/data/tio2/README.md`` with its licence and notes on the files added);
cite the paper when using them.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

from .._coerce import as_array, as_real_array, where_not_finite
from ..devices import DeviceParams, real_scalar, whole_number
from ..exceptions import ParameterError
from .._docfields import document_fields

_MEASURED = DeviceParams()
"""Failure figures as measured (data README), kept in one place: the device model."""

__all__ = ["StatisticalModel", "DriftTable", "load_drift_table", "find_data_file"]

_README_DRIFT = (
    # events, mean µS, std µS (the data README's summary table, xbarsim/data/tio2/README.md)
    (1, -0.37, 6.68),
    (2, -0.91, 8.22),
    (5, -2.17, 10.48),
    (10, -4.10, 12.09),
    (20, -5.07, 14.81),
    (30, -7.70, 18.46),
    (40, -7.58, 18.50),
)


def find_data_file(name):
    """Path of a measured-data file, or None.

    Looks in ``$XBARSIM_DATA``, the package's ``xbarsim/data/tio2``, then a
    ``shared/data/tio2`` folder next to or above the repository.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    pkg = os.path.dirname(here)
    candidates = []
    env = os.environ.get("XBARSIM_DATA")
    if env:
        candidates.append(os.path.join(env, name))
    candidates.append(os.path.join(pkg, "data", "tio2", name))
    root = os.path.dirname(pkg)
    for up in (root, os.path.dirname(root)):
        candidates.append(os.path.join(up, "shared", "data", "tio2", name))
    for c in candidates:
        if os.path.isfile(c):
            return c
    return None


@dataclass(frozen=True, eq=False)
class DriftTable:
    """Measured biasing-scheme drift, pooled per number of subsequent events.

    ``samples[s]`` holds measured conductance changes (siemens) of devices
    that saw ``s`` subsequent programming events (pooled with neighbouring
    counts where a count has fewer than `min_samples` measurements).
    ``samples[0]`` is ``[0.0]``: the last device programmed does not drift.
    """

    samples: tuple
    """Per event count 0..max, a 1-D float64 array of drifts, siemens."""
    source: str
    """``"csv"`` (measured rows) or ``"readme"`` (Gaussian from the summary table)."""

    @property
    def max_events(self):
        """Largest event count with its own entry (larger counts use it)."""
        return len(self.samples) - 1

    def mean_std(self, events):
        """Mean and std (siemens) of the drift after `events` events (an
        integer >= 0; counts above `max_events` use its pool)."""
        # -1 read the last pool, as 54 does
        s = self.samples[min(whole_number(events, "events", 0), self.max_events)]
        return float(np.mean(s)), float(np.std(s))

    def sample(self, events, rng):
        """One drift (siemens) per entry of the integer array `events`: a
        measured change drawn uniformly from its event count's pool, by one
        vectorized draw (a loop over the event counts cost 0.4 ms a tile)."""
        # negative counts were clipped to no drift and fractions truncated,
        # where mean_std and StatisticalModel.sample refuse them
        return self._draw(_event_counts(events, "events", "an array of integer counts"), rng)

    def _draw(self, events, rng):
        """`sample` of counts already checked (`_event_counts`;
        `StatisticalModel.sample` checks its own once). Counts beyond the
        table's use its last pool, capped in their own dtype: 2**63 as a
        uint64 wrapped to a negative int64, clipped to no drift.
        """
        events = np.minimum(events, self.max_events).astype(np.int64)
        pools, sizes = self._padded
        return pools[events, rng.integers(0, sizes[events])]

    @property
    def _padded(self):
        """The pools as one (max_events + 1, largest pool) array, zero-padded,
        and their sizes (``samples[0]`` is ``[0.0]``: no drift)."""
        cached = self.__dict__.get("_padded_cache")
        if cached is None:
            sizes = np.array([len(p) for p in self.samples], dtype=np.int64)
            pools = np.zeros((len(self.samples), int(sizes.max())))
            for k, p in enumerate(self.samples):
                pools[k, :len(p)] = p
            cached = (pools, sizes)
            object.__setattr__(self, "_padded_cache", cached)
        return cached


def _event_counts(value, name, expected):
    """`value` as an array of event counts (devices programmed after each
    one), refused unless whole and >= 0; its own dtype (a uint64 2**63 is
    no int64)."""
    arr = as_array(value, name, expected, "devices programmed after each one")
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.isfinite(arr))
                                           and np.all(arr == np.round(arr))):
        # inf was taken for a count and wrapped to no drift
        what = ""
        if arr.dtype.kind == "f":
            what = " holding NaN or inf" if not np.all(np.isfinite(arr)) else " holding fractions"
        raise ParameterError(f"{name} must be integer counts (devices programmed after each one, finite); "
                             f"got dtype {arr.dtype}{what}.")
    if np.any(arr < 0):
        # clipped to 0 without a word
        raise ParameterError(f"{name} holds a negative count; it is the number of devices programmed "
                             "after each one in its array (0 for the last).")
    return arr


def load_drift_table(path=None, min_samples=50):
    """Build a `DriftTable` from ``neighbour_drift.csv``.

    Falls back on Gaussians interpolated from the README's summary table
    when the file cannot be found (source ``"readme"``), with a warning: a
    package installed without its data changed the statistical model's
    figures silently.
    """
    # an int path was opened as a file descriptor, and closed (the caller's
    # own file)
    if path is not None and (isinstance(path, (bool, int, np.integer)) or not isinstance(path, (str, os.PathLike))
                             or not os.fspath(path)):  # "" loaded the packaged file
        raise ParameterError(f"path = {path!r}; give the path of neighbour_drift.csv (a str or os.PathLike), or "
                             "None to use the packaged file.")
    min_samples = whole_number(min_samples, "min_samples", 1)
    path = path or find_data_file("neighbour_drift.csv")
    if path is not None and not os.path.isfile(path):
        raise ParameterError(f"{path!r} is not a file; give the path of neighbour_drift.csv, or None to use the "
                             "packaged file.")
    if path is None:
        warnings.warn("neighbour_drift.csv (the measured drift rows) was not found in $XBARSIM_DATA, "
                      "xbarsim/data/tio2 or a shared/data/tio2 folder beside the repository; the statistical "
                      "model's drift falls back on Gaussians from the data README's summary table. Reinstall "
                      "xbarsim, or set XBARSIM_DATA to the folder holding the file.", RuntimeWarning, stacklevel=2)
        ev = np.array([r[0] for r in _README_DRIFT], dtype=float)
        mu = np.array([r[1] for r in _README_DRIFT]) * 1e-6
        sd = np.array([r[2] for r in _README_DRIFT]) * 1e-6
        q = (np.arange(200) + 0.5) / 200
        from scipy.stats import norm

        z = norm.ppf(q)
        samples = [np.zeros(1)]
        for s in range(1, 60):
            m = np.interp(s, ev, mu)
            d = np.interp(s, ev, sd)
            samples.append(m + d * z)
        return DriftTable(tuple(samples), "readme")
    events, delta = [], []
    expected = ["subsequent_programming_events", "delta_conductance_S"]
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or header[:2] != expected:
            raise ParameterError(f"{path}: header {header}; expected the columns {expected} of the measured data's "
                                 "neighbour_drift.csv.")
        for row in reader:
            if not any(cell.strip() for cell in row):
                # a blank line (a trailing one after editing), skipped as
                # calibrate's np.loadtxt of the same file skips it
                continue
            try:
                k, d = int(row[0]), float(row[1])
            except (IndexError, ValueError):
                raise ParameterError(f"{path}, line {reader.line_num}: {row!r} is not an event count and a "
                                     "conductance change (siemens).") from None
            if k < 0 or not math.isfinite(d):
                raise ParameterError(f"{path}, line {reader.line_num}: {row!r}; event counts are >= 0 and "
                                     "changes finite.")
            events.append(k)
            delta.append(d)
    if not events:
        raise ParameterError(f"{path} holds no data rows under its header.")
    events = np.asarray(events)
    delta = np.asarray(delta)
    smax = int(events.max())
    samples = [np.zeros(1)]
    for s in range(1, smax + 1):
        width = 0
        while True:
            sel = (events >= s - width) & (events <= s + width) & (events >= 1)
            if sel.sum() >= min_samples or width > smax:
                break
            width += 1
        samples.append(delta[sel].copy())
    return DriftTable(tuple(samples), "csv")


@document_fields
@dataclass(frozen=True)
class StatisticalModel:
    """The paper's statistical transfer model, device by device.

    Defaults are the measured TiO2 figures (xbarsim/data/tio2/README.md).
    """

    a: float = -6.24e-4
    """Slope of the tuning imprecision law, % per µS: ``sigma [%] = a G + b``."""
    b: float = 0.691
    """Intercept of the tuning imprecision law, %."""
    offset_mean: float = -0.589
    """Mean programming offset, % of the target."""
    offset_std: float = 0.339
    """Standard deviation of the programming offset, %."""
    p_stuck_lrs: float = _MEASURED.p_stuck_lrs
    """Probability that a device is stuck near LRS."""
    lrs_mean: float = _MEASURED.g_stuck_lrs_mean
    """Mean conductance of an LRS-stuck device, siemens."""
    lrs_std: float = _MEASURED.g_stuck_lrs_std
    """Standard deviation of an LRS-stuck device's conductance, siemens."""
    p_stuck_hrs: float = _MEASURED.p_stuck_hrs
    """Probability that a device is stuck in HRS."""
    hrs_low: float = _MEASURED.g_stuck_hrs_lo
    """Lower bound of an HRS-stuck device's conductance, siemens (uniform)."""
    hrs_high: float = _MEASURED.g_stuck_hrs_hi
    """Upper bound of an HRS-stuck device's conductance, siemens (uniform)."""
    drift: bool = True
    """Apply the measured biasing-scheme drift."""

    def __post_init__(self):
        for name in ("a", "b", "offset_mean", "offset_std", "p_stuck_lrs", "lrs_mean", "lrs_std", "p_stuck_hrs",
                     "hrs_low", "hrs_high"):
            value = real_scalar(getattr(self, name))
            if value is None or not math.isfinite(value):
                # NaN gave all-NaN logits that `correct` then counted as class 0; "0.1" a raw TypeError
                raise ParameterError(f"StatisticalModel.{name} = {getattr(self, name)!r}; a finite number.")
            object.__setattr__(self, name, value)
        for name in ("offset_std", "lrs_std"):
            if getattr(self, name) < 0:  # a raw "scale < 0" from NumPy at the first sample
                raise ParameterError(f"StatisticalModel.{name} = {getattr(self, name)!r}; a standard deviation >= 0.")
        if not isinstance(self.drift, (bool, np.bool_)):
            raise ParameterError(f"StatisticalModel.drift = {self.drift!r}; True or False.")
        for name in ("p_stuck_lrs", "p_stuck_hrs"):
            p = getattr(self, name)
            if not (0 <= p <= 1):
                raise ParameterError(f"{name} = {p!r}; expected a probability in [0, 1].")
        if self.p_stuck_lrs + self.p_stuck_hrs > 1:
            raise ParameterError("p_stuck_lrs + p_stuck_hrs exceeds 1; each is a fraction of devices.")
        if self.lrs_mean < 0:  # a negative conductance, drawn as such
            raise ParameterError(f"StatisticalModel.lrs_mean = {self.lrs_mean!r}; a conductance >= 0 (siemens).")
        if self.offset_mean <= -100:  # percent: -200 programmed every device below 0 S, all-zero logits
            raise ParameterError(f"StatisticalModel.offset_mean = {self.offset_mean!r}; a relative offset in "
                                 "percent above -100 (-100 % would program every device to 0 S).")
        if not (0 <= self.hrs_low <= self.hrs_high):
            raise ParameterError(f"need 0 <= hrs_low <= hrs_high; got {self.hrs_low}, {self.hrs_high}.")
        for name in ("lrs_mean", "lrs_std", "hrs_low", "hrs_high"):
            if getattr(self, name) > 1.0:
                # the module's figures are quoted in µS: 573 for 573e-6 programmed
                # failed devices at 573 S, and logits of 1e5
                raise ParameterError(f"StatisticalModel.{name} = {getattr(self, name)!r}, above 1 S: conductances "
                                     "are in siemens (573 µS is 573e-6), not microsiemens.")

    def sigma_rel(self, g):
        """Relative tuning imprecision (a fraction) at conductance `g` (siemens)."""
        g = as_real_array(g, "g", units="conductances in siemens")  # "a": a raw UFuncTypeError
        if not np.all(np.isfinite(g)):
            raise ParameterError(f"g {where_not_finite(g)}; give finite conductances in siemens.")
        return np.maximum(self.a * (g * 1e6) + self.b, 0.0) / 100.0

    def sample(self, target, subsequent, rng, drift_table=None):
        """Programmed conductances for target conductances.

        Parameters
        ----------
        target : array_like
            Target conductances, siemens, any shape ``S``.
        subsequent : array_like of int, broadcastable to ``S``
            Devices programmed after each one in its array (0 for the last).
        rng : numpy.random.Generator
        drift_table : DriftTable, optional
            Defaults to `load_drift_table()` (cached).

        Returns
        -------
        g : numpy.ndarray, shape S
            Programmed conductances, siemens (>= 0).
        stuck : numpy.ndarray of int8, shape S
            0 for a working device, 1 stuck near LRS, 2 stuck in HRS.
        """
        from .surrogate import check_rng

        check_rng(rng)  # an int raised a raw AttributeError
        # tensors, strings, ragged and complex values: a specific error (a
        # bare torch / NumPy one, or the imaginary part dropped)
        target = as_real_array(target, "target", "conductance", "target conductances in siemens")
        if np.any(~np.isfinite(target)) or np.any(target < 0):
            raise ParameterError("target conductances must be finite and >= 0 siemens.")
        if np.any(target > 1.0):
            # microsiemens given for siemens went through, the tuning law
            # clamped to 0
            raise ParameterError(f"target holds {float(np.max(target)):g} S, above 1 S: conductances are in "
                                 "siemens (300 µS is 300e-6), not microsiemens.")
        sub_arr = _event_counts(subsequent, "subsequent", "integer counts shaped like the targets")
        shape = target.shape
        try:
            fits = np.broadcast_shapes(sub_arr.shape, shape) == shape  # broadcast *to* the targets' shape
        except ValueError:
            fits = False
        if not fits:
            raise ParameterError(f"subsequent has shape {sub_arr.shape}, which does not broadcast to the targets' "
                                 f"{shape}.")
        if drift_table is not None and not isinstance(drift_table, DriftTable):
            raise ParameterError(f"drift_table = {drift_table!r}; give a DriftTable (load_drift_table(path)) or "
                                 "None (the measured data's).")
        offset = rng.normal(self.offset_mean, self.offset_std, size=shape) / 100.0
        tune = rng.standard_normal(shape) * self.sigma_rel(target)
        g = target * (1.0 + offset + tune)
        if self.drift:
            table = drift_table or _cached_drift()
            g = g + table._draw(np.broadcast_to(sub_arr, shape), rng)
        u = rng.random(shape)
        stuck = np.zeros(shape, dtype=np.int8)
        stuck[u < self.p_stuck_lrs] = 1
        stuck[(u >= self.p_stuck_lrs) & (u < self.p_stuck_lrs + self.p_stuck_hrs)] = 2
        n1, n2 = int((stuck == 1).sum()), int((stuck == 2).sum())
        if n1:
            g[stuck == 1] = rng.normal(self.lrs_mean, self.lrs_std, size=n1)
        if n2:
            g[stuck == 2] = rng.uniform(self.hrs_low, self.hrs_high, size=n2)
        return np.maximum(g, 0.0), stuck


_DRIFT_CACHE = {}


def _cached_drift():
    """The packaged (or $XBARSIM_DATA's) drift table, loaded once per file
    that `find_data_file` finds: the first table loaded was kept after
    XBARSIM_DATA pointed elsewhere (found by review)."""
    key = find_data_file("neighbour_drift.csv")
    key = None if key is None else os.path.realpath(key)
    if key not in _DRIFT_CACHE:
        _DRIFT_CACHE[key] = load_drift_table(key)
    return _DRIFT_CACHE[key]
