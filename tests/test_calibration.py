"""Calibration agreement at the preset's parameters (xbarsim calibrate).

Simulated V/2, column-major write-verify of 8x8 arrays (1 ohm wires) against
the measured TiO2 data, +-30 %. The items the model does not reproduce are
marked xfail(strict=True) with the measured numbers, so that a fix shows up
as an XPASS and nothing is hidden.
"""

import numpy as np
import pytest

import xbarsim as xs
from xbarsim import calibrate as C

N_ARRAYS = 100  # ~7 s; 40 arrays leave borderline items (k=5, k=20) at the mercy of sampling


@pytest.fixture(scope="module")
def table():
    sim = C.simulate(xs.presets.TIO2, n_arrays=N_ARRAYS, seed=0, r_wire=1.0)
    return {r[0]: r for r in C.compare(sim)}, sim


def test_measured_table_matches_readme():
    m = C.measured()
    k = list(m["events"])
    # the README's summary table, computed from the CSV
    assert m["drift_mean"][k.index(1)] * 1e6 == pytest.approx(-0.37, abs=0.01)
    assert m["drift_std"][k.index(1)] * 1e6 == pytest.approx(6.68, abs=0.01)
    assert m["drift_std"][k.index(30)] * 1e6 == pytest.approx(18.46, abs=0.1)
    assert m["drift_count"][k.index(10)] == 650


def test_simulation_is_sane(table):
    rows, sim = table
    assert sim["solver_failures"] == 0
    assert sim["converged_working"] == 1.0


@pytest.mark.parametrize("k", [int(k) for k in C.DRIFT_EVENTS])
def test_drift_std_within_30pct(table, k):
    rows, _ = table
    name, s, m, ratio, ok = rows[f"drift_std_uS[k={k}]"]
    assert ok, f"drift std after {k} events: simulated {s:.2f} uS, measured {m:.2f} uS"


@pytest.mark.parametrize("k", [int(k) for k in C.DRIFT_EVENTS])
def test_drift_mean_within_30pct(table, k):
    rows, _ = table
    name, s, m, ratio, ok = rows[f"drift_mean_uS[k={k}]"]
    assert ok, f"drift mean after {k} events: simulated {s:.2f} uS, measured {m:.2f} uS"


@pytest.mark.parametrize("g", [150, 250, 350])
def test_tuning_law_within_30pct(table, g):
    rows, _ = table
    name, s, m, ratio, ok = rows[f"tuning_sigma_pct[G={g}uS]"]
    assert ok, f"tuning sigma at {g} uS: simulated {s:.3f} %, law {m:.3f} %"


@pytest.mark.xfail(strict=True, reason="the simulated tuning imprecision is flat (~0.56 %) across the "
                   "window; the measured law falls to 0.41 % at 450 uS")
def test_tuning_law_high_end(table):
    rows, _ = table
    assert rows["tuning_sigma_pct[G=450uS]"][4]


@pytest.mark.xfail(strict=True, reason="write-verify stops anywhere in the band (mean ~ -0.15 %, std "
                   "~ 0.56 %) instead of the measured -0.589 % / 0.339 %: the ramped amplitude enters "
                   "the 1 % band with a step larger than the band; and see "
                   "test_published_offset_std_is_below_the_tuning_law")
def test_programming_offset(table):
    rows, _ = table
    assert rows["offset_mean_pct"][4] and rows["offset_std_pct"][4]


def test_published_offset_std_is_below_the_tuning_law():
    """The two published figures cannot both be the std of one quantity,
    ``read_after_own / target - 1``, as `simulate` measures them: over
    targets uniform in the window, the pooled variance is at least the mean
    within-target variance, sqrt(mean sigma(G)^2) = 0.509 % by the
    published tuning law, above the published offset std of 0.339 %. So no
    model meets both items of the table at once; the offset figure must
    describe something else in the paper (unstated)."""
    meas = C.measured()
    g = np.linspace(100.0, 500.0, 40001)
    sigma = C.TUNING_A * g + C.TUNING_B
    floor = float(np.sqrt(np.mean(sigma**2)))
    assert floor == pytest.approx(0.509, abs=1e-3)
    assert meas["offset_std"] < 0.7 * floor  # not within +-30 % of what the law implies


def test_failure_rates(table):
    rows, sim = table
    n = N_ARRAYS * 64
    for key, p in (("p_stuck_lrs", 0.005), ("p_stuck_hrs", 0.005)):
        s = rows[key][1]
        # sampled directly: binomial agreement (the +-30 % check is too tight for 2560 devices)
        assert abs(s - p) <= 4 * np.sqrt(p * (1 - p) / n), (key, s)


def test_cli_writes_png_csv_json(tmp_path):
    from xbarsim.cli import main

    rc = main(["calibrate", "--out", str(tmp_path), "--arrays", "6"])
    assert rc in (0, 3)  # 3: some items outside +-30 % (reported, not hidden)
    for name in ("calibration.png", "calibration.csv", "calibration.json"):
        assert (tmp_path / name).stat().st_size > 0
    import json

    summary = json.loads((tmp_path / "calibration.json").read_text())
    assert summary["n_items"] == len(summary["rows"]) > 20


def test_attribution_splits_the_drift(capsys):
    """Switching parts off: disturb alone gives a small spread, relaxation the
    bulk, and with everything on the spread is at least that of either part."""
    parts = C.attribution(n_arrays=20, seed=0)
    assert set(parts) == set(C.ATTRIBUTION_PARTS)
    for mean, std in parts.values():
        assert mean.shape == std.shape == (3,) and np.all(np.isfinite(mean)) and np.all(std > 0)
    all_std = parts["all"][1]
    disturb_std = parts["disturb only"][1]
    relax_std = parts["relaxation + read noise (no disturb)"][1]
    assert np.all(disturb_std < relax_std)
    assert np.all(all_std >= 0.9 * np.maximum(disturb_std, relax_std))
    # relaxation drifts down; disturb alone moves the mean far less
    assert parts["relaxation + read noise (no disturb)"][0][-1] < 0
    assert abs(parts["disturb only"][0][-1]) < abs(parts["relaxation + read noise (no disturb)"][0][-1])


def test_cli_attribution_prints_the_parts(tmp_path, capsys):
    from xbarsim.cli import main

    main(["calibrate", "--out", str(tmp_path), "--arrays", "4", "--attribution"])
    out = capsys.readouterr().out
    for name in C.ATTRIBUTION_PARTS:
        assert name in out


def test_fit_moves_only_the_fit_parameters():
    from dataclasses import asdict

    dev, loss = C.fit(n_arrays=4, maxiter=3)
    assert np.isfinite(loss)
    base, new = asdict(xs.presets.TIO2), asdict(dev)
    moved = {k for k in base if base[k] != new[k]}
    assert moved and moved <= set(C.FIT_PARAMETERS)
    assert new["relax_fast_mean"] == 0.0  # held, not fitted


@pytest.mark.parametrize("argv, message", [
    (["--arrays", "1000000000"], "simulate fewer arrays"),  # was NumPy's MemoryError, after --out was made
    (["--fit-arrays", "5"], "add --fit"),  # were ignored without --fit
    (["--fit-iter", "0"], "add --fit"),
])
def test_cli_refuses_before_making_the_folder(tmp_path, capsys, argv, message):
    from xbarsim.cli import main

    assert main(["calibrate", "--out", str(tmp_path / "cal"), "--no-progress"] + argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cal").exists()
