"""Half-moons data: split sizes, scaling, CSV round trip and bad files."""

import numpy as np
import pytest

from xbarsim.exceptions import ParameterError
from xbarsim.train.data import load_csv_dir, make_moons_split, save_csv_dir


def _write_parts(folder, text):
    """``text`` as each of train.csv, val.csv and test.csv in ``folder``."""
    for name in ("train", "val", "test"):
        (folder / f"{name}.csv").write_text(text)


def test_moons_split_and_scaling():
    d = make_moons_split(seed=3)
    assert d.sizes() == (875, 125, 200)
    allx = np.concatenate([d.x_train, d.x_val, d.x_test])
    assert allx.min() == pytest.approx(0.0) and allx.max() == pytest.approx(1.0)
    assert set(np.unique(d.y_test)) == {0, 1}
    d2 = make_moons_split(seed=3)
    np.testing.assert_array_equal(d.x_test, d2.x_test)


def test_csv_round_trip(tmp_path):
    """Exact to the bit, every part (at atol 1e-12, values written to 15
    significant digits passed; found by mutation testing)."""
    d = make_moons_split(n_train=30, n_val=10, n_test=20, seed=1)
    save_csv_dir(d, tmp_path)
    for scale in (False, True):  # the saved points span [0, 1] already: rescaling them changes nothing
        e = load_csv_dir(tmp_path, scale=scale)
        for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
            np.testing.assert_array_equal(getattr(e, name), getattr(d, name), err_msg=name)


def test_csv_errors(tmp_path):
    with pytest.raises(ParameterError, match="train.csv"):
        load_csv_dir(tmp_path)
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    load_csv_dir(tmp_path)
    (tmp_path / "val.csv").write_text("x1,x2,y\n0.1,0.2,1\n")
    with pytest.raises(ParameterError, match="missing"):
        load_csv_dir(tmp_path)
    (tmp_path / "val.csv").write_text("x1,x2,label\n0.1,0.2,3\n")
    with pytest.raises(ParameterError, match="labels"):
        load_csv_dir(tmp_path)


def test_csv_that_is_not_utf8_is_refused_and_a_byte_order_mark_is_read(tmp_path):
    """A Latin-1 or UTF-16 file raised a raw UnicodeDecodeError, and Excel's
    "CSV UTF-8" (a byte-order mark) was refused as a missing column x1
    (found by review)."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    (tmp_path / "val.csv").write_bytes("\ufeffx1,x2,label\n0.1,0.2,1\n".encode("utf-8"))
    assert load_csv_dir(tmp_path).x_val.shape == (1, 2)
    (tmp_path / "val.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(ParameterError, match="not UTF-8"):
        load_csv_dir(tmp_path)
    (tmp_path / "val.csv").write_bytes(b"x1,x2,label\n" + b"0.1,0.2,1\n" * 2000 + b"\xe9,0.2,1\n")  # past the first block
    with pytest.raises(ParameterError, match="not UTF-8"):
        load_csv_dir(tmp_path)


def test_an_empty_or_missing_folder_is_refused(tmp_path, monkeypatch):
    """--data "" read train.csv of the working folder."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    monkeypatch.chdir(tmp_path)
    for bad in ("", str(tmp_path / "train.csv"), str(tmp_path / "nowhere")):
        with pytest.raises(ParameterError, match="not a folder"):
            load_csv_dir(bad)


def test_features_near_the_largest_double_scale_without_overflow(tmp_path):
    """max - min of features near 1e308 overflowed, and the scaled features
    came out NaN (found by review); a noise that overflows the points
    themselves is refused."""
    for name, rows in (("train", "1e308,-1e308,1\n-1e308,1e308,0\n"), ("val", "0,0,1\n"), ("test", "5e307,0,0\n")):
        (tmp_path / f"{name}.csv").write_text("x1,x2,label\n" + rows)
    d = load_csv_dir(tmp_path)
    np.testing.assert_array_equal(d.x_train, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(d.x_val, [[0.5, 0.5]])
    np.testing.assert_array_equal(d.x_test, [[0.75, 0.5]])
    with pytest.raises(ParameterError, match="beyond double precision"):
        make_moons_split(noise=1e308)


def test_subnormal_features_scale_as_before(tmp_path):
    """Scaling every part in halves dropped the last bit of subnormal
    features, and a column spanning 0 to 5e-324 came out NaN (found by
    review); halves are used only where max - min overflows."""
    for name, rows in (("train", "0,0,1\n5e-324,1,0\n"), ("val", "0,0.5,1\n"), ("test", "5e-324,0,0\n")):
        (tmp_path / f"{name}.csv").write_text("x1,x2,label\n" + rows)
    d = load_csv_dir(tmp_path)
    np.testing.assert_array_equal(d.x_train, [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(d.x_test, [[1.0, 0.0]])
    # also beside a column whose span overflows (halves there only)
    from xbarsim.train.data import _minmax

    np.testing.assert_array_equal(_minmax([np.array([[-1e308, 0.0], [1e308, 5e-324]])])[0], [[0, 0], [1, 1]])


def test_seeds_a_multiple_of_2_to_the_32_apart_draw_other_points():
    """sklearn's 32-bit seed was the seed mod 2**32: seed 0 and 2**32 drew
    the same points, only split differently (found by review). Seeds below
    2**32 keep their points."""
    from sklearn.datasets import make_moons

    from xbarsim.train.data import make_moons_split

    def points(d):
        return np.sort(np.concatenate([d.x_train, d.x_val, d.x_test]), axis=0)

    assert not np.array_equal(points(make_moons_split(seed=0)), points(make_moons_split(seed=2**32)))
    a = make_moons_split(seed=5)
    x, _ = make_moons(n_samples=len(a.x_train) + len(a.x_val) + len(a.x_test), noise=0.2, random_state=5)
    # the same points, up to the affine min-max scaling
    for k in range(2):
        assert np.corrcoef(np.sort(x[:, k]), points(a)[:, k])[0, 1] > 1 - 1e-12


@pytest.mark.parametrize("n, noise, state", [(1200, 0.2, 0), (1200, 0.2, 5), (1201, 0.05, 2**32 - 1), (3, 0.0, 7),
                                             (1, 0.2, 1), (1200, 1e300, 3)])
def test_make_moons_draws_what_sklearn_draws_bit_for_bit(n, noise, state):
    # scikit-learn was a core dependency for this one call; the port must
    # keep every moons figure, so it draws the same bits
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from xbarsim.train.data import make_moons

    x, y = make_moons(n, noise, state)
    with np.errstate(over="ignore", invalid="ignore"):
        x_ref, y_ref = sklearn_datasets.make_moons(n_samples=n, noise=noise, random_state=state, shuffle=True)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert x.dtype == x_ref.dtype and y.dtype == y_ref.dtype


@pytest.mark.parametrize("row, fields", [("0.5,0.6,1,0.9", 4), ("0.5,0.6", 2)])
def test_csv_refuses_a_row_with_more_or_fewer_fields_than_the_header(tmp_path, row, fields):
    """A data row with an extra field ('0.5,0.6,1,0.9' under x1,x2,label) was
    read from its first three fields, the rest dropped without a word; a
    short row was reported as "cannot read ... as numbers" (found by review)."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    (tmp_path / "val.csv").write_text(f"x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n{row}\n")
    with pytest.raises(ParameterError, match=rf"val.csv, line 4 has {fields} fields; the header has 3"):
        load_csv_dir(tmp_path)
    # empty trailing fields (a comma at the end of each row) hold nothing to drop
    (tmp_path / "val.csv").write_text("x1,x2,label\n0.1,0.2,1,\n0.3,0.4,0,,\n")
    assert load_csv_dir(tmp_path).x_val.shape == (2, 2)


def test_save_csv_dir_refuses_what_it_would_drop_or_change(tmp_path):
    """`zip(x, y)` cut a split to the shorter array, and `int(0.6)` wrote
    class 0 (found by review). The format holds two features: a split of
    three is refused before any file is written (a check of "at least two"
    failed with a raw ValueError after making the folder and half writing
    train.csv; found by mutation testing)."""
    import dataclasses

    data = make_moons_split(n_train=20, n_val=5, n_test=5, seed=0)
    with pytest.raises(ParameterError, match=r"data.y_train has shape \(15,\) and data.x_train \(20, 2\)"):
        save_csv_dir(dataclasses.replace(data, y_train=data.y_train[:15]), tmp_path / "short")
    with pytest.raises(ParameterError, match="data.y_val holds labels other than 0 and 1"):
        save_csv_dir(dataclasses.replace(data, y_val=np.full(5, 0.6)), tmp_path / "frac")
    three = dataclasses.replace(data, **{f"x_{k}": np.c_[x, x[:, :1]] for k, x in
                                         (("train", data.x_train), ("val", data.x_val), ("test", data.x_test))})
    with pytest.raises(ParameterError, match=r"data.x_train has shape \(20, 3\); the CSV format .* holds two"):
        save_csv_dir(three, tmp_path / "three")
    assert not any((tmp_path / name).exists() for name in ("short", "frac", "three"))


@pytest.mark.parametrize("text, message", [
    (",x1,x2,label\n0,0.1,0.2,1\n1,0.3,0.4,0\n", r"an unnamed first column \(pandas writes its index so\): save it "
                                                  r"with DataFrame.to_csv\(path, index=False\)"),
    ("x1;x2;label\n0.1;0.2;1\n", "seems separated by ';' or tabs: save it with commas"),
    ("x1\tx2\tlabel\n0.1\t0.2\t1\n", "seems separated by ';' or tabs: save it with commas"),
    ("0.1,0.2,1\n0.3,0.4,0\n", "Its first line holds numbers: add the header line x1,x2,label above them"),
    ("\nx1,x2,label\n0.1,0.2,1\n", r"has columns \[\]; .* Its first line is empty: the header line must come first"),
])
def test_csv_of_a_common_wrong_layout_gets_the_hint_that_fixes_it(tmp_path, text, message):
    """A pandas index column was told to drop features; a file without a
    header, or separated by ';' or tabs, got no hint (found by review)."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    (tmp_path / "val.csv").write_text(text)
    with pytest.raises(ParameterError, match=message):
        load_csv_dir(tmp_path)


def test_csv_header_may_end_in_a_comma_as_its_rows_may(tmp_path):
    """'x1,x2,label,' was refused as an extra column '' (found by review)."""
    _write_parts(tmp_path, "x1,x2,label,\n0.1,0.2,1\n0.3,0.4,0,\n")
    d = load_csv_dir(tmp_path)
    assert d.x_val.shape == (2, 2) and list(d.y_val) == [1, 0]
    (tmp_path / "val.csv").write_text("x1,x2,label,\n0.1,0.2,1,7\n")  # a value under no name: still refused
    with pytest.raises(ParameterError, match="line 2 has 4 fields; the header has 3"):
        load_csv_dir(tmp_path)


# Found by mutation testing of xbarsim/train/data.py: each test below fails on a mutant
# that every other test let through.


def test_split_is_sklearns_points_permuted_by_default_rng_of_the_seed_and_scaled_together():
    """make_moons_split, as its docstring defines it: sklearn's make_moons(n, noise,
    random_state=seed), permuted by np.random.default_rng(seed).permutation(n), cut
    train / val / test in that order, every feature min-max scaled over all n points;
    each label stays with its point."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    seed, sizes = 4, (30, 10, 20)
    n = sum(sizes)
    x, y = sklearn_datasets.make_moons(n_samples=n, noise=0.2, random_state=seed, shuffle=True)
    perm = np.random.default_rng(seed).permutation(n)
    x, y = x[perm], y[perm]
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    d = make_moons_split(*sizes, noise=0.2, seed=seed)
    cuts = np.cumsum((0,) + sizes)
    for k, (xp, yp) in enumerate(((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test))):
        np.testing.assert_allclose(xp, x[cuts[k]:cuts[k + 1]], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(yp, y[cuts[k]:cuts[k + 1]])
        assert yp.dtype == np.int64


def test_csv_columns_are_read_by_name_in_any_order(tmp_path):
    _write_parts(tmp_path, "label,x2,x1\n1,0.2,0.1\n0,0.4,0.3\n")
    d = load_csv_dir(tmp_path, scale=False)
    np.testing.assert_array_equal(d.x_train, [[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(d.y_test, [1, 0])


def test_csv_rows_of_empty_fields_are_skipped(tmp_path):
    """A spreadsheet's blank row comes out as ',,': nothing to read, not a bad row."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n,,\n0.3,0.4,0\n , ,\n")
    d = load_csv_dir(tmp_path, scale=False)
    np.testing.assert_array_equal(d.x_val, [[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(d.y_val, [1, 0])


# Found by mutation testing of xbarsim/train/data.py (2026-12-07): each test below fails on a
# mutant that every other test passed.

def test_a_constant_feature_scales_to_zero_not_nan(tmp_path):
    """A feature with one value in every file has no range: min-max scaling
    maps it to 0 (it was 0 / 0 = NaN where hi - lo = 0 is divided)."""
    for name, rows in (("train", "0.1,0.5,1\n0.3,0.5,0\n"), ("val", "0.2,0.5,1\n"), ("test", "0.3,0.5,0\n")):
        (tmp_path / f"{name}.csv").write_text("x1,x2,label\n" + rows)
    d = load_csv_dir(tmp_path)
    np.testing.assert_allclose(d.x_train[:, 0], [0.0, 1.0], atol=1e-15)
    for part in (d.x_train, d.x_val, d.x_test):
        np.testing.assert_array_equal(part[:, 1], 0.0)


def test_a_fractional_label_is_refused(tmp_path):
    """Labels are 0 or 1: 0.5 was read (and cast to class 0)."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    (tmp_path / "val.csv").write_text("x1,x2,label\n0.1,0.2,0.5\n")
    with pytest.raises(ParameterError, match=r"labels must be 0 or 1; found \[0.5\]"):
        load_csv_dir(tmp_path)


def test_a_training_file_of_one_class_is_refused(tmp_path):
    """A classifier needs training points of both classes: a train.csv of
    one class was taken."""
    _write_parts(tmp_path, "x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    (tmp_path / "train.csv").write_text("x1,x2,label\n0.1,0.2,1\n0.3,0.4,1\n")
    with pytest.raises(ParameterError, match="holds only class 1; a classifier needs training points of both"):
        load_csv_dir(tmp_path)


@pytest.mark.parametrize("sizes", [(0, 10, 10), (10, 0, 10), (10, 10, 0)])
def test_every_part_of_the_split_must_hold_a_point(sizes):
    with pytest.raises(ParameterError, match="must be positive integers"):
        make_moons_split(*sizes, seed=0)
