"""The paper's statistical-only model reproduces the measured TiO2 figures it is built from."""

import numpy as np
import pytest

from xbarsim.exceptions import ParameterError
from xbarsim.train.statistical import StatisticalModel, find_data_file, load_drift_table


def test_offset_tuning_and_failures_match_readme():
    model = StatisticalModel(drift=False)
    rng = np.random.default_rng(0)
    n = 400_000
    for g_uS in (100.0, 300.0, 500.0):
        t = np.full(n, g_uS * 1e-6)
        g, stuck = model.sample(t, 0, rng)
        ok = stuck == 0
        rel = 100 * (g[ok] / t[ok] - 1)  # percent
        # offset N(-0.589, 0.339) % plus tuning N(0, a G + b) %: mean -0.589 %, var sum
        sigma_tune = -6.24e-4 * g_uS + 0.691
        assert rel.mean() == pytest.approx(-0.589, abs=0.005)
        assert rel.std() == pytest.approx(np.hypot(0.339, sigma_tune), rel=0.01)
        assert np.mean(stuck == 1) == pytest.approx(0.005, abs=0.0004)
        assert np.mean(stuck == 2) == pytest.approx(0.005, abs=0.0004)
        assert g[stuck == 1].mean() == pytest.approx(573e-6, rel=0.02)
        assert g[stuck == 2].min() >= 10e-6 and g[stuck == 2].max() <= 100e-6


def test_drift_table_matches_readme_summary():
    assert find_data_file("neighbour_drift.csv") is not None
    table = load_drift_table()
    assert table.source == "csv"
    # README summary (events, mean uS, std uS); pooling widens sparse counts only
    for events, mean, std in ((1, -0.37, 6.68), (2, -0.91, 8.22), (5, -2.17, 10.48), (10, -4.10, 12.09)):
        m, s = table.mean_std(events)
        assert m * 1e6 == pytest.approx(mean, abs=0.05)
        assert s * 1e6 == pytest.approx(std, rel=0.01)
    rng = np.random.default_rng(1)
    d = table.sample(np.full(100_000, 10), rng)
    assert d.mean() * 1e6 == pytest.approx(-4.10, abs=0.2)
    assert np.all(table.sample(np.zeros(10, int), rng) == 0)  # the last device programmed does not drift


def test_readme_fallback_and_bad_parameters(monkeypatch):
    import xbarsim.train.statistical as st

    monkeypatch.setattr(st, "find_data_file", lambda name: None)
    with pytest.warns(RuntimeWarning, match="falls back on Gaussians from the data README's summary table"):
        table = st.load_drift_table()
    assert table.source == "readme"
    m, s = table.mean_std(20)
    assert m * 1e6 == pytest.approx(-5.07, abs=0.01) and s * 1e6 == pytest.approx(14.81, rel=0.01)
    with pytest.raises(ParameterError, match="p_stuck_lrs = 1.5; expected a probability"):
        StatisticalModel(p_stuck_lrs=1.5)
    with pytest.raises(ParameterError, match="target conductances must be finite and >= 0"):
        StatisticalModel().sample(np.array([-1.0]), 0, np.random.default_rng(0))


@pytest.mark.parametrize("kw, word", [
    (dict(a=float("nan")), "finite"),  # all-NaN logits, counted as class 0 by `correct`
    (dict(offset_std=-1.0), "standard deviation"),  # NumPy's raw "scale < 0" at the first sample
    (dict(lrs_std=-1.0), "standard deviation"),
    (dict(hrs_high=float("inf")), "finite"),  # a raw OverflowError
    (dict(p_stuck_lrs="0.1"), "finite"),  # a raw TypeError
    (dict(drift="yes"), "True or False"),
    (dict(lrs_mean=-1e-4), "a conductance >= 0"),  # drawn as negative conductances
    (dict(offset_mean=-200.0), "in percent above -100"),  # every device below 0 S: all-zero logits
    (dict(offset_mean=-100.0), "in percent above -100"),
])
def test_statistical_model_refuses_parameters_it_cannot_sample(kw, word):
    with pytest.raises(ParameterError, match=word):
        StatisticalModel(**kw)


def test_sigma_rel_takes_finite_conductances():
    m = StatisticalModel()
    np.testing.assert_allclose(m.sigma_rel([1e-4, 5e-4]), [(-6.24e-4 * 100 + 0.691) / 100,
                                                           (-6.24e-4 * 500 + 0.691) / 100])
    with pytest.raises(ParameterError, match="g holds strings"):  # a raw UFuncTypeError
        m.sigma_rel("a")
    with pytest.raises(ParameterError, match="g is nan; give finite conductances"):  # returned nan
        m.sigma_rel(float("nan"))
