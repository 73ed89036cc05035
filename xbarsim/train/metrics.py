"""Per-point accuracy over many transfers, and its bin table.

Drolet et al. (arXiv:2305.18495) judge a transferred network point by point:
for each test point, the fraction of simulated transfers in which it is
classified correctly (its *per-point accuracy*). The headline is the
fraction of test points whose per-point accuracy is at least 0.95.

Counts are compared as integers (``k / T >= 0.95`` as ``100 k >= 95 T``) so
that a point right on a bin edge lands in the same bin on every machine.
"""

from __future__ import annotations

import numpy as np

from .._coerce import as_array
from ..devices import real_scalar
from ..exceptions import ParameterError

__all__ = [
    "BINS",
    "per_point_accuracy",
    "accuracy_bins",
    "summarize",
]

BINS = (
    (">=0.95", 95, None),
    ("0.90-0.95", 90, 95),
    ("0.80-0.90", 80, 90),
    ("0.70-0.80", 70, 80),
    ("0.60-0.70", 60, 70),
    ("0.50-0.60", 50, 60),
    ("<0.50", None, 50),
)
"""Bin label, lower edge (percent, inclusive), upper edge (percent, exclusive)."""


def _plain(value, name, expected):
    """``value`` as a NumPy array (`as_array`: tensors that require grad or
    sit on a GPU raised torch's own error), an `MCResult`
    passed whole refused with the field to pass."""
    if hasattr(value, "correct") and hasattr(value, "logits"):  # an MCResult itself
        raise ParameterError(f"{name} got a {type(value).__name__}; pass its .correct (the (n_transfers, n_points) "
                             "hits), e.g. summarize(result.correct).")
    return as_array(value, name, expected, "0/1 per transfer and point")


def _as_correct(correct):
    arr = _plain(correct, "correct", "(n_transfers, n_points): one row of per-point hits per transfer, each as long")
    if arr.dtype.kind not in "biuf":  # strings: "correct has shape ()"
        raise ParameterError(f"correct must be boolean (or 0/1) hits; got {arr.dtype} values.")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ParameterError(
            f"correct has shape {arr.shape}; expected (n_transfers, n_points) with both >= 1 "
            "(one row of per-point hits per transfer)."
        )
    if arr.dtype != bool:
        if not np.all((arr == 0) | (arr == 1)):
            raise ParameterError("correct must be boolean (or 0/1): whether each point was classified right.")
        arr = arr.astype(bool)
    return arr


def correct_matrix(predictions, labels):
    """Whether each transfer classified each point right.

    Parameters
    ----------
    predictions : array_like, shape (T, P)
        Predicted class (0, 1, ...) per transfer and point.
    labels : array_like, shape (P,)
        True class per point.

    Returns
    -------
    numpy.ndarray of bool, shape (T, P)
    """
    pred = _plain(predictions, "predictions", "(T, P)")
    lab = _plain(labels, "labels", "(P,)")
    if pred.ndim != 2 or lab.ndim != 1 or pred.shape[1] != lab.shape[0]:
        raise ParameterError(
            f"predictions {pred.shape} and labels {lab.shape} do not fit; expected (T, P) and (P,)."
        )
    # classes, not scores: a probability of 0.7 never equals a label
    for name, a in (("predictions", pred), ("labels", lab)):
        if a.dtype.kind not in "biuf" or not np.all((a >= 0) & (a == np.floor(a))):
            raise ParameterError(f"{name} must be classes 0, 1, ... (whole numbers); threshold scores first "
                                 "(logits > 0, or probabilities > 0.5), or take the largest of several outputs "
                                 "(argmax).")
    return pred == lab[None, :]


def per_point_accuracy(correct):
    """Fraction of transfers in which each point is classified correctly.

    Parameters
    ----------
    correct : array_like of bool, shape (T, P)
        ``correct[t, p]``: transfer ``t`` classified point ``p`` right.

    Returns
    -------
    numpy.ndarray, shape (P,)
        Per-point accuracy in [0, 1].

    Examples
    --------
    >>> from xbarsim.train import per_point_accuracy
    >>> per_point_accuracy([[1, 0], [1, 1]]).tolist()
    [1.0, 0.5]
    """
    arr = _as_correct(correct)
    return arr.sum(axis=0) / arr.shape[0]


def _bin_counts(hits, n_transfers):
    """Points per bin, from integer hit counts (exact edges)."""
    pct = 100 * np.asarray(hits, dtype=np.int64)
    total = int(n_transfers)
    rows = []
    for label, lo, hi in BINS:
        sel = np.ones(pct.shape, dtype=bool)
        if lo is not None:
            sel &= pct >= lo * total
        if hi is not None:
            sel &= pct < hi * total
        rows.append((label, int(sel.sum())))
    return rows


def accuracy_bins(correct):
    """The bin table of per-point accuracy.

    Parameters
    ----------
    correct : array_like of bool, shape (T, P)

    Returns
    -------
    list of dict
        One per bin of `BINS`, in order: ``label``, ``lower``, ``upper``
        (fractions; None for an open end), ``count`` (points) and
        ``fraction`` (of all points).
    """
    arr = _as_correct(correct)
    rows = _bin_counts(arr.sum(axis=0), arr.shape[0])
    out = []
    for (label, lo, hi), (_, count) in zip(BINS, rows):
        out.append(
            {
                "label": label,
                "lower": None if lo is None else lo / 100,
                "upper": None if hi is None else hi / 100,
                "count": count,
                "fraction": count / arr.shape[1],
            }
        )
    return out


def _fraction(value, name):
    """A real number in [0, 1] (NaN, "0.9" and 5 were taken as they came)."""
    v = real_scalar(value)
    if v is None or not 0.0 <= v <= 1.0:
        raise ParameterError(f"{name} = {value!r}; a fraction in [0, 1].")
    return v


def summarize(correct, software_accuracy=None):
    """Everything reported about one network's transfers.

    Parameters
    ----------
    correct : array_like of bool, shape (T, P)
    software_accuracy : float, optional
        Accuracy of the network in software (no hardware), copied into the
        result.

    Returns
    -------
    dict
        ``frac_points_ge_95`` (the headline), ``bins`` (`accuracy_bins`),
        ``mean_accuracy`` (mean over transfers of the test accuracy),
        ``accuracy_quantiles`` (5, 50, 95 % over transfers),
        ``software_accuracy``, ``n_transfers``, ``n_points``,
        ``per_point_accuracy_mean`` (the mean over points of each point's
        fraction of transfers right, equal to ``mean_accuracy``).
    """
    arr = _as_correct(correct)
    T, P = arr.shape
    hits = arr.sum(axis=0)
    per_transfer = arr.mean(axis=1)
    bins = accuracy_bins(arr)
    return {
        "frac_points_ge_95": bins[0]["fraction"],
        "bins": bins,
        "mean_accuracy": float(per_transfer.mean()),
        "accuracy_quantiles": {
            "q05": float(np.quantile(per_transfer, 0.05)),
            "q50": float(np.quantile(per_transfer, 0.50)),
            "q95": float(np.quantile(per_transfer, 0.95)),
        },
        "software_accuracy": None if software_accuracy is None else _fraction(software_accuracy, "software_accuracy"),
        "n_transfers": int(T),
        "n_points": int(P),
        "per_point_accuracy_mean": float((hits / T).mean()),
    }
