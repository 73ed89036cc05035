"""The half-moons data set of the paper's experiment, and CSV loading.

Drolet et al. (arXiv:2305.18495) trained a 2-8-1 network on scikit-learn's
``make_moons``. Here: 1200 points split 875 train / 125 validation / 200
test, Gaussian noise 0.2, both features min-max scaled to [0, 1] so that
they can be applied to the crossbar as non-negative read voltages.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .._coerce import is_number
from ..devices import real_scalar
from ..exceptions import ParameterError
from ._checks import check_count, check_flag, check_seed, seed32
from .._docfields import document_fields

__all__ = ["MoonsData", "make_moons", "make_moons_split", "load_csv_dir", "save_csv_dir", "CSV_COLUMNS", "SPLIT"]

CSV_COLUMNS = ("x1", "x2", "label")
"""Header of the ``train.csv`` / ``val.csv`` / ``test.csv`` files."""
SPLIT = (875, 125, 200)
"""Default train / validation / test sizes (1200 points)."""


@document_fields
@dataclass(frozen=True, eq=False)
class MoonsData:
    """A train / validation / test split of a binary problem.

    Features are float64 ``(n, features)`` arrays (2 for the half moons;
    `train` and the evaluations take any number, the CSV files of
    `load_csv_dir` / `save_csv_dir` two), labels int64 ``(n,)`` arrays of
    0 and 1.
    """

    x_train: np.ndarray
    """Training features, (n_train, features); the half moons scaled to [0, 1]."""
    y_train: np.ndarray
    """Training labels, (n_train,), 0 or 1."""
    x_val: np.ndarray
    """Validation features, (n_val, features)."""
    y_val: np.ndarray
    """Validation labels, (n_val,)."""
    x_test: np.ndarray
    """Test features, (n_test, features)."""
    y_test: np.ndarray
    """Test labels, (n_test,)."""
    source: str = "make_moons"
    """Where the data came from: ``"make_moons"`` or the CSV directory."""

    def sizes(self):
        """(n_train, n_val, n_test)."""
        return len(self.y_train), len(self.y_val), len(self.y_test)


def _minmax(parts):
    """Scale every part by the min and max of all parts together (to [0, 1])."""
    allx = np.concatenate(parts, axis=0)
    lo, hi = allx.min(axis=0), allx.max(axis=0)
    with np.errstate(over="ignore"):
        span = hi - lo
    # in halves in the columns where hi - lo overflows (values near the
    # largest double: the scaled features came out NaN);
    # halving is exact there, and elsewhere would drop subnormal bits
    big = ~np.isfinite(span)
    span = np.where(hi > lo, np.where(big, 0.5 * hi - 0.5 * lo, span), 1.0)
    shift = np.where(big, 0.5, 1.0)
    return [np.clip((shift * p - shift * lo) / span, 0.0, 1.0) for p in parts]


def _check_noise(noise):
    """`noise` as a float >= 0 ("0.2" and None raised NumPy's TypeError, an
    array an ambiguous truth value)."""
    level = real_scalar(noise)
    if level is None or not (np.isfinite(level) and level >= 0):
        raise ParameterError(f"noise must be a finite number >= 0; got {noise!r}.")
    return level


def make_moons(n, noise, state):
    """``sklearn.datasets.make_moons(n, noise=noise, random_state=state,
    shuffle=True)``, the same draws bit for bit (tested against it): two
    half circles of ``n // 2`` and ``n - n // 2`` points, shuffled, then
    Gaussian noise of standard deviation ``noise``, from a legacy
    ``RandomState(state)``. Written here so that scikit-learn, which the
    package used for this one call, is not a dependency."""
    n = check_count(n, "n", what=" (the number of points)")
    noise = _check_noise(noise)
    if isinstance(state, (bool, np.bool_)) or not isinstance(state, (int, np.integer)) or not 0 <= state < 2**32:
        raise ParameterError(f"state = {state!r}; an integer in [0, 2**32) (NumPy's legacy RandomState seed).")
    n_out = n // 2
    n_in = n - n_out
    gen = np.random.RandomState(state)
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)),
                   np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    order = np.arange(n)
    gen.shuffle(order)
    x, y = x[order], y[order]
    x += gen.normal(scale=noise, size=x.shape)
    return x, y


def make_moons_split(n_train=SPLIT[0], n_val=SPLIT[1], n_test=SPLIT[2], noise=0.2, seed=0):
    """Half moons as ``sklearn.datasets.make_moons`` draws them (`make_moons`), split and scaled.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Sizes of the three parts (875 / 125 / 200 by default, 1200 points).
    noise : float
        Standard deviation of the Gaussian noise added by ``make_moons``.
    seed : int
        Seed of the draw and of the shuffled split. The split permutes with
        ``np.random.default_rng(seed)``, the stream ``TrainConfig(seed=seed)``
        orders its batches from and ``convert(net, surrogate, seed=seed)``
        gives layer 0: pass distinct seeds for independent draws, as
        ``xbarsim moons`` does with `xbarsim.moons.stream_seed`.

    Returns
    -------
    MoonsData
        Features min-max scaled to [0, 1] over all the points, 1200 by
        default (one scaling for all parts, so the three share one
        coordinate system). This is
        what the paper's own code does (3it-inpaqt/Hardware-Aware-Article,
        ``dataset/moon_dataset.py``: ``MinMaxScaler().fit_transform`` on
        every point before the split): the test points' feature ranges,
        never their labels, take part in the scaling.

    Examples
    --------
    >>> from xbarsim.train.data import make_moons_split
    >>> make_moons_split(seed=1).sizes()
    (875, 125, 200)
    """
    sizes = (n_train, n_val, n_test)
    if any(isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1 for k in sizes):
        raise ParameterError(f"n_train, n_val, n_test must be positive integers; got {sizes}.")
    seed = check_seed(seed)
    noise = _check_noise(noise)
    n = sum(sizes)
    from .._memory import require

    # the points, labels, shuffles and sklearn's own copies (2e8 points ran 11 s into a raw MemoryError)
    require(80 * n, f"make_moons_split of {n} points", "ask for fewer points")
    # sklearn takes a 32-bit seed: larger seeds are hashed down (they were
    # taken mod 2**32, so seed and seed + 2**32 drew the same points);
    # smaller ones keep their points of earlier versions
    state = seed32(seed)
    x, y = make_moons(n, noise, state)
    if not np.all(np.isfinite(x)):  # refused only after the surrogate fit, as NaN training data
        raise ParameterError(f"noise = {noise:g} puts points beyond double precision; give a noise of at most "
                             "about 1e300 (the paper's experiment uses 0.2).")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    x, y = x[perm], y[perm].astype(np.int64)
    a, b = n_train, n_train + n_val
    xs_ = _minmax([x[:a], x[a:b], x[b:]])
    return MoonsData(xs_[0], y[:a], xs_[1], y[a:b], xs_[2], y[b:], source="make_moons")


def _read_csv(path):
    try:
        return _read_csv_text(path)
    except UnicodeDecodeError as err:  # a raw traceback, from the header or any later line
        raise ParameterError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as a "
                             f"UTF-8 (or ASCII) CSV with the header {','.join(CSV_COLUMNS)}.") from None


def _read_csv_text(path):
    if os.path.exists(path) and not os.path.isfile(path):  # a folder was "not found"
        raise ParameterError(f"{path} is not a file (a folder?); --data DIR must hold the files train.csv, "
                             f"val.csv and test.csv with the header {','.join(CSV_COLUMNS)}.")
    if not os.path.isfile(path):
        raise ParameterError(
            f"{path} not found; --data DIR must hold train.csv, val.csv and test.csv "
            f"with the header {','.join(CSV_COLUMNS)}."
        )
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ParameterError(f"{path} is empty; expected a header {','.join(CSV_COLUMNS)}.") from None
        while len(header) > 1 and not header[-1]:
            header.pop()  # a comma at the end of the header, as rows may end in one
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            # a file without a header, or separated by ';' or tabs, got no
            # hint what was wrong with it
            hint = ""
            if not any(header):
                hint = " Its first line is empty: the header line must come first."
            elif any(sep in h for h in header for sep in ";\t"):
                hint = " The file seems separated by ';' or tabs: save it with commas."
            elif all(is_number(h) for h in header):
                hint = f" Its first line holds numbers: add the header line {','.join(CSV_COLUMNS)} above them."
            raise ParameterError(
                f"{path} has columns {header}; missing {missing}. Expected {','.join(CSV_COLUMNS)}.{hint}"
            )
        extra = [c for c in header if c not in CSV_COLUMNS]
        if extra:
            if header[0] == "":
                # pandas' to_csv() writes its index as an unnamed first column: the
                # hint to drop features could not help
                raise ParameterError(f"{path} has an unnamed first column (pandas writes its index so): save it "
                                     f"with DataFrame.to_csv(path, index=False), or drop that column.")
            raise ParameterError(
                f"{path} has extra columns {extra}; the network takes two features. Give exactly "
                f"{','.join(CSV_COLUMNS)} (drop or project the other features first)."
            )
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            # x1,x2,x1,label read the first x1 and dropped the other without a word
            raise ParameterError(f"{path} names column(s) {repeated} more than once ({','.join(header)}); give "
                                 f"each of {','.join(CSV_COLUMNS)} once.")
        idx = [header.index(c) for c in CSV_COLUMNS]
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header) or any(c.strip() for c in row[len(header):]):
                # a row with an extra field was read from its first three, the rest
                # dropped without a word; a short one was "not numbers".
                # Empty trailing fields (a comma at the end of the row) hold nothing to drop.
                raise ParameterError(f"{path}, line {lineno} has {len(row)} fields; the header has {len(header)} "
                                     f"({','.join(header)}). Give every row one value per column.")
            try:
                rows.append([float(row[k]) for k in idx])
            except (ValueError, IndexError):
                raise ParameterError(f"{path}, line {lineno}: cannot read {row!r} as numbers.") from None
    if not rows:
        raise ParameterError(f"{path} holds a header but no data rows.")
    arr = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{path} holds NaN or inf values; every value must be finite.")
    labels = arr[:, 2]
    if not np.all((labels == 0) | (labels == 1)):
        bad = np.unique(labels[(labels != 0) & (labels != 1)])[:5]
        raise ParameterError(f"{path}: labels must be 0 or 1; found {bad.tolist()}.")
    return arr[:, :2], labels.astype(np.int64)


def load_csv_dir(directory, scale=True):
    """Read ``train.csv``, ``val.csv`` and ``test.csv`` from `directory`.

    Parameters
    ----------
    directory : str or path
        Folder holding the three files, each with the header ``x1,x2,label``
        and labels 0 or 1.
    scale : bool
        Min-max scale the features to [0, 1] over all three files (the
        crossbar takes non-negative read voltages), as the paper's code
        scales its points before the split: the test file's feature
        ranges, never its labels, take part. ``False`` keeps them as they
        are (scale them yourself, e.g. on the training file alone, to keep
        the test file out of it).

    Returns
    -------
    MoonsData
    """
    if not isinstance(directory, (str, os.PathLike)):  # None: a bare TypeError from os.stat
        raise ParameterError(f"directory = {directory!r}; give the path (str or pathlib.Path) of the folder "
                             f"holding train.csv, val.csv and test.csv (header {','.join(CSV_COLUMNS)}).")
    scale = check_flag(scale, "scale")  # scale="no" scaled
    if not os.path.isdir(directory):  # "" read train.csv of the working folder
        raise ParameterError(f"{str(directory)!r} is not a folder; give the folder holding train.csv, "
                             f"val.csv and test.csv (header {','.join(CSV_COLUMNS)}).")
    parts = [_read_csv(os.path.join(directory, f"{name}.csv")) for name in ("train", "val", "test")]
    classes = np.unique(parts[0][1])
    if classes.size < 2:
        raise ParameterError(
            f"{os.path.join(directory, 'train.csv')} holds only class {int(classes[0])}; a classifier "
            "needs training points of both classes (labels 0 and 1)."
        )
    xs_ = [p[0] for p in parts]
    if scale:
        xs_ = _minmax(xs_)
    return MoonsData(xs_[0], parts[0][1], xs_[1], parts[1][1], xs_[2], parts[2][1], source=str(directory))


def save_csv_dir(data, directory):
    """Write `data` as ``train.csv``, ``val.csv``, ``test.csv`` (the format `load_csv_dir` reads:
    two features, the half moons' and ``xbarsim moons --data``'s)."""
    for name in ("x_train", "x_val", "x_test"):
        shape = np.shape(getattr(data, name))
        if len(shape) != 2 or shape[1] != 2:  # a 4-feature split: a bare "too many values to unpack"
            raise ParameterError(f"data.{name} has shape {shape}; the CSV format ({','.join(CSV_COLUMNS)}) holds two "
                                 "features. Save other data with NumPy (np.savez).")
        labels = np.asarray(getattr(data, "y" + name[1:]))
        # zip cut the file to the shorter array, and int() wrote 0.6 as class 0
        if labels.shape != shape[:1]:
            raise ParameterError(f"data.y{name[1:]} has shape {labels.shape} and data.{name} {shape}; give one label "
                                 "per point, (n,) for (n, 2) points.")
        if labels.dtype.kind not in "biuf" or not np.all((labels == 0) | (labels == 1)):
            raise ParameterError(f"data.y{name[1:]} holds labels other than 0 and 1; the CSV format holds the two "
                                 "classes of the half moons as 0 / 1.")
    os.makedirs(directory, exist_ok=True)
    for name, x, y in (
        ("train", data.x_train, data.y_train),
        ("val", data.x_val, data.y_val),
        ("test", data.x_test, data.y_test),
    ):
        with open(os.path.join(directory, f"{name}.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for (a, b), lab in zip(x, y):
                w.writerow([repr(float(a)), repr(float(b)), int(lab)])
