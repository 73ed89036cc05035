"""Half-moons data: split sizes, scaling, CSV round trip and bad files."""

import numpy as np
import pytest

from xbarsim.exceptions import ParameterError
from xbarsim.train.data import load_csv_dir, make_moons_split, save_csv_dir


def test_moons_split_and_scaling():
    d = make_moons_split(seed=3)
    assert d.sizes() == (875, 125, 200)
    allx = np.concatenate([d.x_train, d.x_val, d.x_test])
    assert allx.min() == pytest.approx(0.0) and allx.max() == pytest.approx(1.0)
    assert set(np.unique(d.y_test)) == {0, 1}
    d2 = make_moons_split(seed=3)
    np.testing.assert_array_equal(d.x_test, d2.x_test)


def test_csv_round_trip(tmp_path):
    d = make_moons_split(n_train=30, n_val=10, n_test=20, seed=1)
    save_csv_dir(d, tmp_path)
    e = load_csv_dir(tmp_path)
    np.testing.assert_allclose(e.x_train, d.x_train, atol=1e-12)
    np.testing.assert_array_equal(e.y_test, d.y_test)


def test_csv_errors(tmp_path):
    with pytest.raises(ParameterError, match="train.csv"):
        load_csv_dir(tmp_path)
    for name in ("train", "val", "test"):
        (tmp_path / f"{name}.csv").write_text("x1,x2,label\n0.1,0.2,1\n0.3,0.4,0\n")
    load_csv_dir(tmp_path)
    (tmp_path / "val.csv").write_text("x1,x2,y\n0.1,0.2,1\n")
    with pytest.raises(ParameterError, match="missing"):
        load_csv_dir(tmp_path)
    (tmp_path / "val.csv").write_text("x1,x2,label\n0.1,0.2,3\n")
    with pytest.raises(ParameterError, match="labels"):
        load_csv_dir(tmp_path)
