"""Calibration agreement at the preset's parameters (xbarsim calibrate).

Simulated V/2, column-major write-verify of 8x8 arrays (1 ohm wires) against
the measured TiO2 data, +-30 %. The items the model does not reproduce are
marked xfail(strict=True) with the measured numbers, one test per item, so
that a fix shows up as an XPASS and nothing is hidden.
"""

import csv
import dataclasses
import json
import re

import numpy as np
import pytest

import xbarsim as xs
from xbarsim import calibrate as C
from xbarsim.cli import main

N_ARRAYS = 1000
"""8-16 s. At 100 arrays the drift means near the +-30 % line passed or
failed with the seed (6 of 10 seeds failed one at the old 10 event counts);
at 1000 arrays seeds 0-2 and 2000 arrays give the same misses (seed 3 also
misses k = 9 and 11, at 0.70 and 0.69 x: the test fixes seed 0)."""

DRIFT_MEAN_MISSES = {12: -5.33, 13: -5.60, 14: -5.90}
"""Event counts whose measured drift mean (uS) the preset misses: the
simulated mean undershoots over k = 5-15 (0.73-0.80 x; 0.84 x at 16), worst here, where
the measured mean dips (-5.3 to -5.9 uS, back to -4.5 at k = 19, standard
error ~0.6 uS): 0.68-0.70 x at seed 0, 0.65-0.68 x at seeds 1-3."""


@pytest.fixture(scope="module")
def table():
    sim = C.simulate(xs.presets.TIO2, n_arrays=N_ARRAYS, seed=0, r_wire=1.0)
    return {r[0]: r for r in C.compare(sim)}, sim


def test_measured_table_matches_readme():
    m = C.measured()
    k = list(m["events"])
    # the data README's summary table, computed from the CSV; its stds are population ones
    # (ddof=0), measured() gives sample ones (ddof=1) as the simulated stds it is compared with:
    # 18.46 uS against 18.51 uS at 30 events (the test allowed 0.1 uS and so held either; found by review)
    assert m["drift_mean"][k.index(1)] * 1e6 == pytest.approx(-0.37, abs=0.005)
    assert m["drift_std"][k.index(1)] * 1e6 == pytest.approx(6.68, abs=0.005)
    assert m["drift_std"][k.index(30)] * 1e6 == pytest.approx(18.51, abs=0.005)
    n30 = m["drift_count"][k.index(30)]
    assert m["drift_std"][k.index(30)] * 1e6 * np.sqrt((n30 - 1) / n30) == pytest.approx(18.46, abs=0.005)
    assert m["drift_count"][k.index(10)] == 650


def test_simulation_is_sane(table):
    rows, sim = table
    assert sim["solver_failures"] == 0
    # write-verify converges for all but a handful of the ~63,340 working devices (3 at seed 0 run out
    # of pulses: their neighbours' disturb or a slow ramp), none lost to a solver failure
    assert sim["converged_working"] >= 0.9999


@pytest.mark.parametrize("k", [int(k) for k in C.DRIFT_EVENTS])
def test_drift_std_within_30pct(table, k):
    rows, _ = table
    name, s, m, ratio, ok = rows[f"drift_std_uS[k={k}]"]
    assert ok, f"drift std after {k} events: simulated {s:.2f} uS, measured {m:.2f} uS"


@pytest.mark.parametrize("k", [pytest.param(int(k), marks=pytest.mark.xfail(
    strict=True, raises=AssertionError, reason=f"measured mean {DRIFT_MEAN_MISSES[int(k)]} uS, where the measured curve dips; the "
    "simulated one, low over k = 5-15, is 0.68-0.70 x of it")) if int(k) in DRIFT_MEAN_MISSES else int(k) for k in C.DRIFT_EVENTS])
def test_drift_mean_within_30pct(table, k):
    rows, _ = table
    name, s, m, ratio, ok = rows[f"drift_mean_uS[k={k}]"]
    assert ok, f"drift mean after {k} events: simulated {s:.2f} uS, measured {m:.2f} uS"


@pytest.mark.parametrize("where", ["G=150uS", "G=250uS", "G=350uS", "G=450uS", "window"])
def test_programming_spread_within_30pct(table, where):
    """The std of the programming error against the published tuning law and
    offset std in quadrature, as the data's publishers combine them."""
    rows, _ = table
    name, s, m, ratio, ok = rows[f"spread_pct[{where}]"]
    assert ok, f"programming spread at {where}: simulated {s:.3f} %, published {m:.3f} %"


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="the simulated spread is flat across the window (-4.0e-6 %/uS at seed 0) "
                   "where the published law falls by -5.2e-4 %/uS: write-verify's band sets it, not the device")
def test_programming_spread_slope(table):
    """The tuning law's slope as it shows in the combined spread (a line
    through the four bins): the device-sensitive part of the tuning law (the
    bins pass for an ideal device too, `test_the_spread_bins_pass_for_an_ideal_device`)."""
    rows, _ = table
    assert rows["spread_slope_pct_per_uS"][4]


def test_the_slope_row_compares_the_fitted_and_the_published_slopes(table):
    """Outside the strict xfail above, where a wrong value in the row would
    read as the expected failure (found by review)."""
    rows, sim = table
    assert rows["spread_slope_pct_per_uS"][1] == sim["spread_fit"][0] == np.polyfit(C.TUNING_G, sim["spread"], 1)[0]
    assert rows["spread_slope_pct_per_uS"][2] == pytest.approx(
        np.polyfit(C.TUNING_G, C.published_spread(C.TUNING_G), 1)[0], rel=1e-12)
    assert rows["spread_slope_pct_per_uS"][2] == pytest.approx(-5.16e-4, rel=1e-3)


@pytest.mark.slow
def test_the_spread_bins_pass_for_an_ideal_device():
    """A negative control: the spread rows are set by the 1 % band, and an
    ideal device (no noise, relaxation, disturb or failures) passes them;
    only the slope and the drift tell it from the preset."""
    sim = C.simulate(xs.presets.TIO2.ideal(), n_arrays=200, seed=0, r_wire=0.0)
    rows = {r[0]: r for r in C.compare(sim)}
    assert all(rows[f"spread_pct[{w}]"][4] for w in ("G=150uS", "G=250uS", "G=350uS", "G=450uS", "window"))
    assert not rows["spread_slope_pct_per_uS"][4]
    assert not any(rows[f"drift_std_uS[k={k}]"][4] for k in (1, 10, 30))


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="write-verify stops anywhere in the band (mean ~ -0.14 %) instead of "
                   "the measured -0.589 %: the ramped amplitude enters the 1 % band with a step larger than "
                   "the band")
def test_programming_offset_mean(table):
    rows, _ = table
    assert rows["offset_mean_pct"][4]


def test_the_known_misses_are_no_worse_than_when_they_were_marked(table):
    """The strict xfails above assert only each row's verdict, so a miss that
    grew would still read as the expected failure (found by review): each
    stays within its margin of the figure its reason names."""
    rows, _ = table
    for k in DRIFT_MEAN_MISSES:  # 0.68-0.70 x at seed 0
        assert rows[f"drift_mean_uS[k={k}]"][3] >= 0.65, f"drift mean at k = {k}"
    assert -2e-4 <= rows["spread_slope_pct_per_uS"][1] <= 2e-4  # flat (-4.0e-6 %/uS), not reversed
    assert -0.25 <= rows["offset_mean_pct"][1] < 0.0  # -0.134 %: inside the band, below the target


def test_the_fit_simulates_on_the_wires_the_figures_are_judged_on(monkeypatch):
    """The fit ran on ideal wires, whose drift means are 10-45 % shallower
    than on the 1 ohm wires of the evaluation, and overshot (found by
    review): it simulates with `simulate`'s own wires."""
    import inspect

    seen = []
    real = C.simulate
    monkeypatch.setattr(C, "simulate", lambda *a, **k: seen.append(k.get("r_wire")) or real(*a, **k))
    with pytest.warns(RuntimeWarning, match="Nelder-Mead stopped after 1 iterations"):
        C.fit(n_arrays=2, maxiter=1)
    assert seen and set(seen) == {inspect.signature(real).parameters["r_wire"].default} == {1.0}


def test_published_spread_combines_the_tuning_law_and_the_offset_std():
    """sqrt(sigma(G)^2 + 0.339^2) at a target, and over targets uniform in
    100-500 uS (the exact mean of the squared law, against a fine grid)."""
    assert C.published_spread(150.0) == pytest.approx(np.hypot(-6.24e-4 * 150 + 0.691, 0.339))
    g = np.linspace(100.0, 500.0, 400001)
    grid = np.sqrt(np.mean((-6.24e-4 * g + 0.691) ** 2) + 0.339**2)
    assert C.published_spread() == pytest.approx(grid, rel=1e-6)  # the grid's mean: O(1 / points)
    m = C.measured()
    np.testing.assert_allclose(m["spread"], C.published_spread(C.TUNING_G))
    assert m["spread_window"] == C.published_spread()


def test_the_drift_cut_is_the_measured_tables_own(table):
    """The measured changes all lie below DRIFT_CUT (largest 39.99 uS), and
    the simulation leaves out only the few beyond it (a few % at most)."""
    _, sim = table
    assert C.measured()["drift_max"] < C.DRIFT_CUT
    assert np.all(sim["drift_cut_fraction"] < 0.1) and sim["drift_cut_fraction"][-1] > 0


def test_failure_rates(table):
    """The failure probabilities are model inputs set from the measured
    rates: a check of their sampling (binomial, over every simulated device),
    not a reproduced figure (`calibrate.INPUT_ROWS`)."""
    rows, sim = table
    n = N_ARRAYS * 64
    for key, p in (("p_stuck_lrs", 0.005), ("p_stuck_hrs", 0.005)):
        assert key in C.INPUT_ROWS
        s = rows[key][1]
        assert abs(s - p) <= 4 * np.sqrt(p * (1 - p) / n), (key, s)


def _status(out):
    """The exit status `xbarsim calibrate` documents for the run written in
    ``out``: 0 when every compared figure is within +-30 %, else 3 (the
    tests accepted either, whatever the run found; found by review)."""
    return 0 if json.loads((out / "calibration.json").read_text())["all_within_30pct"] else 3


def test_cli_writes_png_csv_json(tmp_path):
    from xbarsim.cli import main

    rc = main(["calibrate", "--out", str(tmp_path), "--arrays", "6"])
    assert rc == _status(tmp_path)  # 3: some items outside +-30 % (reported, not hidden)
    for name in ("calibration.png", "calibration.csv", "calibration.json"):
        assert (tmp_path / name).stat().st_size > 0
    import json

    summary = json.loads((tmp_path / "calibration.json").read_text())
    assert summary["n_items"] == len(summary["rows"]) - len(C.INPUT_ROWS) > 20  # inputs not counted
    # spread_fit is a line through the combined spread: the file names what to compare it with
    # (a reader compared it with the tuning law alone; found by review)
    rows = {r["quantity"]: r for r in summary["rows"]}
    assert summary["spread_fit"][0] == pytest.approx(rows["spread_slope_pct_per_uS"]["simulated"], rel=1e-12)
    assert summary["published_spread_fit"][0] == pytest.approx(rows["spread_slope_pct_per_uS"]["measured"], rel=1e-12)
    assert set(summary["definitions"]) == {"drift", "spread_fit", "published_spread_fit"}


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
    # with nothing moving a device after its own write-verify, its reads still drift down on the 1 ohm
    # wires (later devices, programmed up, add IR drop to the shared lines), and this was booked as
    # disturb (found by review); on ideal wires they do not move at all
    reads = parts["reads alone (no disturb, relaxation or read noise)"]
    assert np.all(reads[0] < 0) and np.all(reads[1] < disturb_std)
    # the device's own relaxation switched off whole: a device with a fast relaxation of non-zero mean
    # (the preset's is 0) kept it in every "no relaxation" row (found by mutation testing)
    for base in (xs.presets.TIO2, dataclasses.replace(xs.presets.TIO2, relax_fast_mean=-0.2)):
        still = dataclasses.replace(base, **C.ATTRIBUTION_PARTS["reads alone (no disturb, relaxation or read noise)"])
        ideal = C.simulate(still, n_arrays=4, seed=0, r_wire=0.0)
        assert np.all(ideal["drift_mean"] == 0.0) and np.all(ideal["drift_std"] == 0.0)


def test_cli_attribution_prints_the_parts(tmp_path, capsys):
    from xbarsim.cli import main

    import json

    code = main(["calibrate", "--out", str(tmp_path), "--arrays", "4", "--attribution"])
    summary = json.loads((tmp_path / "calibration.json").read_text())
    assert code == (0 if summary["all_within_30pct"] else 3)  # the documented exit status
    out = capsys.readouterr().out
    for name in C.ATTRIBUTION_PARTS:
        assert name in out
    # it says what it wrote, as every other command does (found by a review of the output)
    assert out.splitlines()[-1] == (f"wrote attribution.csv, calibration.csv, calibration.json, calibration.png "
                                    f"in {tmp_path}")
    # and saved (it was printed only; found by review): the CSV, the summary
    # and the printed table hold the same figures
    parts = summary["attribution"]["parts"]
    assert summary["attribution"]["events"] == [1, 10, 30] and list(parts) == list(C.ATTRIBUTION_PARTS)
    # the whole evaluated device and the version (the summary held the five fitted fields only; found by review)
    assert xs.DeviceParams(**summary["device"]) == xs.presets.TIO2
    assert summary["xbarsim_version"] == xs.__version__
    lines = (tmp_path / "attribution.csv").read_text().splitlines()
    assert lines[0] == "model,events,drift_mean_uS,drift_std_uS" and len(lines) == 1 + 3 * len(parts)
    for line in lines[1:]:
        name, k, m, sd = next(csv.reader([line]))
        i = [1, 10, 30].index(int(k))
        np.testing.assert_allclose([float(m), float(sd)], [parts[name]["mean_uS"][i], parts[name]["std_uS"][i]],
                                   rtol=1e-5)
    for name, part in parts.items():
        assert f"mean {' / '.join(f'{x:.2f}' for x in part['mean_uS'])}" in out
    # in one column, the longest part name (51 characters) included
    printed = [ln for ln in out.splitlines() if ln.startswith("  ") and " mean " in ln]
    assert len(printed) == len(parts) and len({ln.index(" mean ") for ln in printed}) == 1
    # the "all" row is the evaluated model's, taken from the run's own simulation (it was simulated again):
    # the same as a fresh one and as the compared drift rows
    fresh = C.attribution(n_arrays=4, seed=0, events=(1, 10, 30))["all"]
    np.testing.assert_array_equal(parts["all"]["mean_uS"], fresh[0])
    rows = {r["quantity"]: r["simulated"] for r in summary["rows"]}
    np.testing.assert_allclose(parts["all"]["mean_uS"], [rows[f"drift_mean_uS[k={k}]"] for k in (1, 10, 30)],
                               rtol=1e-12)
    # a run without --attribution removes the earlier one's (it would read as this run's)
    assert main(["calibrate", "--out", str(tmp_path), "--arrays", "4", "--no-progress"]) == _status(tmp_path)
    assert not (tmp_path / "attribution.csv").exists()
    assert "attribution" not in json.loads((tmp_path / "calibration.json").read_text())


def test_cli_attribution_after_fit_splits_the_refitted_model(tmp_path, monkeypatch, capsys):
    """``--fit --attribution`` split the preset's drift, not the model it had
    just fitted and evaluated (found by review). The fitted parameters print
    to 6 digits (a value the log-space fit kept read 0.0010000000000000002)."""
    import json
    from dataclasses import replace

    from xbarsim.cli import main

    seen = []
    real = C.attribution
    monkeypatch.setattr(C, "attribution", lambda device=None, **kw: seen.append(device) or real(device, **kw))
    code = main(["calibrate", "--out", str(tmp_path), "--arrays", "2", "--fit", "--fit-arrays", "2", "--fit-iter",
                 "1", "--attribution", "--no-progress"])
    assert code == _status(tmp_path)
    fitted = replace(xs.presets.TIO2, **json.loads((tmp_path / "calibration.json").read_text())["parameters"])
    assert fitted != xs.presets.TIO2
    assert seen == [fitted]
    # the summary's device is the evaluated one, the refitted (it was checked only without --fit)
    assert json.loads((tmp_path / "calibration.json").read_text())["device"] == dataclasses.asdict(fitted)
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("fitted parameters:")]
    assert line == "fitted parameters: " + ", ".join(f"{p} = {getattr(fitted, p):.6g}" for p in C.FIT_PARAMETERS)


def test_fit_moves_only_the_fit_parameters():
    from dataclasses import asdict

    report = {}
    with pytest.warns(RuntimeWarning, match=r"stopped after 3 iterations \(\d+ simulations\) without converging"):
        dev, loss = C.fit(n_arrays=4, maxiter=3, report=report)
    assert report["converged"] is False and report["iterations"] == 3 and report["evaluations"] > 3
    assert np.isfinite(loss)
    base, new = asdict(xs.presets.TIO2), asdict(dev)
    moved = {k for k in base if base[k] != new[k]}
    assert moved and moved <= set(C.FIT_PARAMETERS)
    assert new["relax_fast_mean"] == 0.0  # held, not fitted


def test_a_fit_that_converges_in_its_last_allowed_iteration_is_converged(monkeypatch):
    """SciPy tests Nelder-Mead's tolerances at the top of each iteration, so
    a fit meeting them in its last allowed one came back "maxiter" and read
    as unconverged, with a warning (found by review). On a quadratic loss in
    the log parameters: the unlimited fit's iteration count, given as
    maxiter, converges without a warning; one fewer does not. The test on
    the final simplex takes SciPy's fatol too: one within xatol whose values
    spread 1e-2 is not converged, 5e-4 is (a fatol of 1e-1 passed every
    test: found by mutation testing)."""
    import warnings

    import scipy.optimize

    start = np.array([np.log(abs(getattr(xs.presets.TIO2, p))) for p in C.FIT_PARAMETERS])
    monkeypatch.setattr(C, "simulate", lambda dev, **kw: dev)
    monkeypatch.setattr(C, "compare", lambda dev, meas: dev)
    monkeypatch.setattr(C, "_loss", lambda dev: float(np.sum(
        (np.log([abs(getattr(dev, p)) for p in C.FIT_PARAMETERS]) - start - 0.2) ** 2)))
    free = {}
    C.fit(n_arrays=2, maxiter=1000, report=free)
    assert free["converged"] and free["iterations"] < 1000
    exact = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.fit(n_arrays=2, maxiter=free["iterations"], report=exact)
    assert exact == free
    with pytest.warns(RuntimeWarning, match="without converging"):
        C.fit(n_arrays=2, maxiter=free["iterations"] - 1)

    def stopped_with(spread):  # Nelder-Mead out of iterations, its simplex one point, its values `spread` apart
        def minimize(f, x0, **kwargs):
            sim = np.vstack([x0] * (len(x0) + 1))
            return scipy.optimize.OptimizeResult(
                x=x0, fun=1.0, success=False, message="Maximum number of iterations has been exceeded.", nit=7,
                nfev=9, final_simplex=(sim, 1.0 + spread * (np.arange(len(x0) + 1) > 0)))
        return minimize

    monkeypatch.setattr(scipy.optimize, "minimize", stopped_with(1e-2))
    spread = {}
    with pytest.warns(RuntimeWarning, match="without converging"):
        C.fit(n_arrays=2, maxiter=7, report=spread)
    assert spread["converged"] is False
    monkeypatch.setattr(scipy.optimize, "minimize", stopped_with(5e-4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.fit(n_arrays=2, maxiter=7, report=spread)
    assert spread["converged"] is True


def test_fit_refuses_a_parameter_that_starts_at_zero(monkeypatch):
    """On a log scale a parameter at 0 cannot move: the start was log(0),
    the simplex NaN, and the fit returned the parameter at 0 with only
    NumPy warnings (found by review). It is refused before any simulation."""
    from dataclasses import replace

    monkeypatch.setattr(C, "simulate", lambda *a, **k: pytest.fail("simulated before refusing"))
    with pytest.raises(xs.ParameterError, match=r"relax_drift = 0.*nonzero.*relax_drift=-0\.06"):
        C.fit(replace(xs.presets.TIO2, relax_drift=0.0), n_arrays=2, maxiter=1)


@pytest.mark.parametrize("argv, message", [
    (["--arrays", "1000000000"], "simulate fewer arrays"),  # was NumPy's MemoryError, after --out was made
    # one array has no spread to compare; taken here, it reached the simulation's own refusal (after a
    # whole fit with --fit; found by mutation testing)
    (["--arrays", "1"], "--arrays 1: the drift statistics need at least 2 arrays"),
    (["--fit-arrays", "5"], "add --fit"),  # were ignored without --fit
    (["--fit-iter", "0"], "add --fit"),
])
def test_cli_refuses_before_making_the_folder(tmp_path, capsys, argv, message):
    from xbarsim.cli import main

    assert main(["calibrate", "--out", str(tmp_path / "cal"), "--no-progress"] + argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cal").exists()


def test_the_fit_refuses_fixed_settings_it_cannot_run_instead_of_scoring_them():
    """The fit scores a refused point as outside the model; a refusal of its
    fixed settings (a negative wire, a verify read at the threshold) made
    every point refused, and fit returned the start with loss 1e6 and no error
    (found by review)."""
    with pytest.raises(xs.ParameterError, match="r_wl = -1.0"):
        C.fit(n_arrays=2, maxiter=2, r_wire=-1.0)
    with pytest.raises(xs.ParameterError, match="reaches the device's switching threshold"):
        C.fit(dataclasses.replace(xs.presets.TIO2, v_set=0.15), n_arrays=2, maxiter=2)


@pytest.mark.parametrize("call, message", [
    (lambda: C.simulate(n_arrays=0), r"n_arrays = 0: give a whole number >= 2"),
    (lambda: C.simulate(n_arrays=-1), r"n_arrays = -1"),
    (lambda: C.simulate(n_arrays=2.5), r"n_arrays = 2.5"),
    (lambda: C.simulate(n_arrays=float("nan")), r"n_arrays = nan"),
    (lambda: C.simulate(n_arrays=2, shape=(4, 4)), r"16 devices; the drift is compared up to k = 30"),
    (lambda: C.simulate(n_arrays=2, shape=(3,)), r"give \(rows, columns\)"),
    (lambda: C.simulate(n_arrays=2, shape=(0, 8)), r"shape = \(0, 8\): entry = 0"),
    (lambda: C.simulate(n_arrays=2, seed=-1), r"seed = -1; an integer in \[0, 2\*\*64\)"),
    (lambda: C.simulate(n_arrays=2, seed=1.5), r"seed = 1.5"),
    (lambda: C.fit(n_arrays=2, maxiter=1, seed=-1), r"seed = -1"),
    (lambda: C.fit(n_arrays=float("inf"), maxiter=1), r"fit: n_arrays = inf: the drift statistics need at least 2 arrays; give a whole"),
    (lambda: C.attribution(n_arrays=2, events=(0,)), r"events = \(0,\); give a sequence of event counts in 1..30"),
    (lambda: C.attribution(n_arrays=2, events=(31,)), r"events = \(31,\)"),
    (lambda: C.attribution(n_arrays=0), r"attribution: n_arrays = 0"),
    (lambda: C.attribution(n_arrays=2, events=10), r"events = 10; give a sequence of event counts"),
    (lambda: C.attribution(n_arrays=2, events=None), r"events = None"),
    (lambda: C.attribution(n_arrays=2, events=(True,)), r"events = \(True,\)"),
    (lambda: C.simulate(n_arrays=2, shape=(n for n in (4, 4))), r"shape = \(4, 4\): 16 devices"),
])
def test_library_calls_refuse_bad_arguments_before_simulating(monkeypatch, call, message):
    """`simulate` checked none of its arguments: 0 arrays or a 4x4 shape
    returned NaN statistics, a negative seed or count NumPy's own error,
    2.0 arrays a TypeError from inside (found by review). Each is a
    ParameterError before any array is programmed."""
    import xbarsim.programming as P

    monkeypatch.setattr(P, "_program_batch", lambda *a, **k: pytest.fail("simulated before refusing"))
    with pytest.raises(xs.ParameterError, match=message):
        call()


def test_whole_float_counts_are_taken_as_integers(monkeypatch):
    """2.0 arrays passed `fit`'s and `run`'s checks, then failed inside
    `simulate` with a TypeError (found by review): a whole float is a count."""
    seen = []
    real = C.simulate
    monkeypatch.setattr(C, "simulate", lambda *a, **k: seen.append(k["n_arrays"]) or real(*a, **k))
    with pytest.warns(RuntimeWarning, match="Nelder-Mead stopped"):
        C.fit(n_arrays=2.0, maxiter=1.0)
    assert seen and all(type(n) is int and n == 2 for n in seen)


def test_run_refuses_a_bad_seed_before_making_the_folder(tmp_path):
    """A negative seed gave NumPy's ValueError after `run` had made the
    folder, which stayed behind empty (found by review)."""
    with pytest.raises(xs.ParameterError, match="seed = -1"):
        C.run(str(tmp_path / "cal"), n_arrays=2, seed=-1, verbose=False)
    assert not (tmp_path / "cal").exists()


@pytest.mark.parametrize("flag", ["do_fit", "verbose", "progress", "do_attribution"])
def test_run_refuses_a_flag_that_is_not_a_bool_before_making_the_folder(tmp_path, flag):
    """do_fit="no" ran the fit (a truthy string; found by review)."""
    with pytest.raises(xs.ParameterError, match=f"{flag} = 'no'; give True or False"):
        C.run(str(tmp_path / "cal"), n_arrays=2, **{flag: "no"})
    assert not (tmp_path / "cal").exists()


def test_run_refuses_fit_arrays_past_memory_before_making_the_folder(tmp_path, monkeypatch):
    """`run` checks the memory of the larger of ``n_arrays`` and
    ``fit_arrays`` before it makes the folder: checking ``n_arrays`` alone,
    a fit of 1e9 arrays made the folder and failed inside the fit, and
    passed every test (found by mutation testing)."""
    monkeypatch.setattr(C, "fit", lambda *a, **k: pytest.fail("fitted before refusing"))
    with pytest.raises(xs.MemoryLimitError, match="simulate fewer arrays"):
        C.run(str(tmp_path / "cal"), do_fit=True, n_arrays=2, fit_arrays=10**9, fit_iter=1, verbose=False)
    assert not (tmp_path / "cal").exists()


def test_run_takes_a_numpy_seed(tmp_path, monkeypatch):
    """A NumPy integer seed passed the check, then failed the JSON summary
    after the simulation (found by review): the summary records an int."""
    real = C.simulate
    monkeypatch.setattr(C, "simulate", lambda *a, **k: real(*a, **{**k, "n_arrays": 2}))
    summary = C.run(str(tmp_path / "cal"), n_arrays=2, seed=np.int64(3), verbose=False)
    assert type(summary["seed"]) is int and summary["seed"] == 3
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["seed"] == 3


def test_the_fit_of_the_last_seed_wraps_to_seed_zero(tmp_path, monkeypatch):
    """`run` fits on the seed after the evaluation's: seed 2**64 - 1 made the
    fit refuse 2**64, a seed the caller never gave (found by review)."""
    seeds = []
    monkeypatch.setattr(C, "fit", lambda *a, **k: seeds.append(k["seed"]) or (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        C.run(str(tmp_path / "out"), do_fit=True, n_arrays=2, seed=2**64 - 1, fit_arrays=2, fit_iter=1, verbose=False)
    assert seeds == [0]


def test_cli_removes_the_folder_it_made_when_the_run_is_interrupted(tmp_path, monkeypatch):
    """An interrupted (or failed) run left its new, empty --out behind
    (found by review); a folder that existed before stays."""
    from xbarsim.cli import main

    monkeypatch.setattr(C, "simulate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    out = tmp_path / "cal"
    assert main(["calibrate", "--out", str(out), "--arrays", "3", "--no-progress"]) == 130
    assert not out.exists()
    out.mkdir()
    assert main(["calibrate", "--out", str(out), "--arrays", "3", "--no-progress"]) == 130
    assert out.is_dir()
    nested = tmp_path / "a" / "b" / "c"  # every folder the run made goes, not the last one only
    assert main(["calibrate", "--out", str(nested), "--arrays", "3", "--no-progress"]) == 130
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("n, words", [(10**20, "1e\\+20 arrays of 8 x 8 devices .* needs about 4.1e\\+15 GiB"),
                                      (10**400, "over 1e308 arrays .* needs more than 1e308 bytes")])
def test_simulate_refuses_counts_past_memory_and_past_a_float(n, words):
    """10**400 arrays raised a raw OverflowError from the memory check (found by review)."""
    with pytest.raises(xs.MemoryLimitError, match=words):
        C.simulate(n_arrays=n)


def test_a_printed_ratio_never_reads_on_the_other_side_of_its_verdict():
    """Seed 3 printed "drift_mean_uS[k=9] ... 0.700 MISS" (0.69994; found by
    review): a ratio is written with the decimals that keep the reader's
    reading and the verdict together, in the table and the CSV."""
    from decimal import Decimal

    rng = np.random.default_rng(0)
    edges = np.array([1 - C.REL_TOL, 1 + C.REL_TOL])
    ratios = np.concatenate([(edges[:, None] + rng.uniform(-1e-4, 1e-4, (2, 500))).ravel(), [0.69994, 1.5, 0.2]])
    for ratio in ratios:
        ok = bool(abs(ratio - 1) <= C.REL_TOL + 1e-12)  # compare's verdict
        text = C._ratio_text(float(ratio), ok)
        assert (abs(Decimal(text) - 1) <= Decimal("0.3") + Decimal("1e-12")) == ok, (ratio, text)
        assert abs(float(text) - ratio) <= 5e-5
    assert C._ratio_text(0.69994, False) == "0.6999" and C._ratio_text(1.5, False) == "1.5000"
    assert C._ratio_text(1.3000049, False) == "1.300005"
    # the edges themselves are within (0.7 read MISS as "0.7000000000000000"; review of the fix)
    sim = {k: v for k, v in C.measured().items()}
    rows = {r[0]: r for r in C.compare({**sim, "offset_mean": 0.7 * sim["offset_mean"]})}
    assert rows["offset_mean_pct"][4] and C._ratio_text(rows["offset_mean_pct"][3], True) == "0.7000"


@pytest.mark.parametrize("text", [None, "", "events,delta\n", "events,delta\n1,abc\n",
                                  "events,delta\n" + "".join(f"{k},1e-6\n{k},2e-6\n" for k in range(1, 20)),
                                  "events,delta\n3,nan\n" + "".join(f"{k},1e-6\n{k},2e-6\n" for k in range(1, 31))])
def test_missing_or_damaged_installed_data_is_an_error_naming_the_file(tmp_path, monkeypatch, capsys, text):
    """A missing file, an empty one, a bad cell: raw tracebacks; event counts
    with no rows: NaN targets, scored as misses and written as bare NaN
    into calibration.json (found by review). A NaN drift in an otherwise
    whole table is damage too (checking the event column alone took it:
    found by mutation testing)."""
    from xbarsim.cli import main

    tmp_path = tmp_path / "a{b}_x{}"  # braces in the path too (a str.format template broke on them)
    tmp_path.mkdir()
    path = tmp_path / "neighbour_drift.csv"
    if text is not None:
        path.write_text(text)
    monkeypatch.setattr(C, "_data_path", lambda name: tmp_path / name)
    with pytest.raises(xs.XbarsimError, match=r"neighbour_drift.csv, is missing or damaged .*; reinstall xbarsim"):
        C.measured()
    assert main(["calibrate", "--out", str(tmp_path / "out"), "--arrays", "4", "--no-progress"]) == 1
    assert "is missing or damaged" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# Found by mutation testing of the command-line commands: each test below
# fails on a mutant that every other test passed.


def _sim_like_measured(meas, **change):
    """A `simulate` result whose figures equal the measured ones (every row
    within), with ``change`` applied."""
    sim = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in meas.items()}
    sim.update(drift_cut_fraction=np.zeros(len(meas["events"])), spread_fit=(-5e-4, 0.75), pulses_mean=15.0,
               converged_working=1.0, solver_failures=0, n_arrays=2, r_wire=1.0)
    sim.update(change)
    return sim


def test_calibrate_exit_status_and_count_leave_the_model_inputs_out(tmp_path, monkeypatch):
    """Every reproduced figure within +-30 % and only a stuck-device rate
    (a model input, a sampling check) off: exit 0, 67 of 67; with a drift
    std off too: exit 3, 66 of 67."""
    meas = C.measured()
    sims = iter([_sim_like_measured(meas, p_stuck_lrs=3 * meas["p_stuck_lrs"]),
                 _sim_like_measured(meas, p_stuck_lrs=3 * meas["p_stuck_lrs"],
                                    drift_std=np.r_[2 * meas["drift_std"][0], meas["drift_std"][1:]])])
    monkeypatch.setattr(C, "simulate", lambda *a, **k: next(sims))
    assert main(["calibrate", "--out", str(tmp_path / "a"), "--arrays", "2", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert summary["all_within_30pct"] is True and (summary["n_within"], summary["n_items"]) == (67, 67)
    assert main(["calibrate", "--out", str(tmp_path / "b"), "--arrays", "2", "--no-progress"]) == 3
    summary = json.loads((tmp_path / "b" / "calibration.json").read_text())
    assert summary["all_within_30pct"] is False and (summary["n_within"], summary["n_items"]) == (66, 67)


def test_calibrate_csv_holds_the_simulated_then_the_measured_figure(tmp_path, monkeypatch, capsys):
    """calibration.csv's columns, and the printed table's, are as their
    headers name them: simulated twice the measured drift std at k = 1
    reads 13.36 / 6.68 / 2.0000."""
    meas = C.measured()
    sim = _sim_like_measured(meas, drift_std=np.r_[2 * meas["drift_std"][0], meas["drift_std"][1:]])
    monkeypatch.setattr(C, "simulate", lambda *a, **k: sim)
    assert main(["calibrate", "--out", str(tmp_path), "--arrays", "2", "--no-progress"]) == 3
    with open(tmp_path / "calibration.csv") as fh:
        rows = {r["quantity"]: r for r in csv.DictReader(fh)}
    row = rows["drift_std_uS[k=1]"]
    assert float(row["simulated"]) == pytest.approx(2 * 6.68, abs=0.01)
    assert float(row["measured"]) == pytest.approx(6.68, abs=0.005)
    assert row["ratio"] == "2.0000" and row["within_30pct"] == "0"
    assert float(rows["offset_mean_pct"]["measured"]) == pytest.approx(-0.589)
    printed = capsys.readouterr().out
    assert re.search(r"quantity +simulated +measured +ratio", printed)
    assert re.search(r"drift_std_uS\[k=1\] +13\.36 +6\.679 +2\.0000 MISS", printed), printed


def test_calibrate_png_bars_put_each_figure_under_its_label(tmp_path, monkeypatch):
    """The bar panel (offset, window spread, stuck rates): the bars labelled
    "measured" are the measured figures, those labelled "simulated" the
    simulation's (an offset of -0.134 % against -0.589 % tells them apart)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    meas = C.measured()
    sim = _sim_like_measured(meas, offset_mean=-0.134, p_stuck_lrs=0.0052)
    bars = {}
    real = Axes.bar

    def bar(self, x, height, *a, label=None, **kw):
        bars[label] = list(height)
        return real(self, x, height, *a, label=label, **kw)

    monkeypatch.setattr(Axes, "bar", bar)
    C.plot(sim, meas, str(tmp_path / "c.png"), C.compare(sim, meas))
    assert bars["measured"] == pytest.approx([-0.589, meas["spread_window"], 0.5, 0.5])
    assert bars["simulated"] == pytest.approx([-0.134, meas["spread_window"], 0.52, 0.5])


# Found by mutation testing of xbarsim/calibrate.py: each test below fails on
# a mutant that every other test let through.


def _known_programming(monkeypatch):
    """Replace the write-verify kernel by a programming whose statistics are
    known by construction; returns the list of calls it saw (targets, cfg,
    seed). Two arrays, 8x8, in the order `simulate` passes:

    * stuck: array 0 has its 1st device (in programming order) stuck near
      LRS and its 2nd in HRS, array 1 its 1st and 2nd in HRS: p_stuck_lrs =
      1/128, p_stuck_hrs = 3/128; each array's 6th device is working but did
      not converge (read 50 % off its target);
    * read after its own write-verify: +0.5 % off the target in array 0,
      -0.5 % in array 1 (converged working devices): offset mean 0, window
      std 0.5 % (ddof=1 over 122 devices);
    * the read of device q after k later devices: its own read - k uS - 1 uS
      in array 0, + 1 uS in array 1 (mean -k uS, std 1 uS, ddof=1); the
      stuck devices drift +20 uS (not counted), and device 10 drifts
      +-50 uS after 5 later devices (beyond the cut, left out);
    * pulses: 10 for each working device, 100 for each stuck one.
    """
    import xbarsim.programming as P

    calls = []

    def fake(targets, cfg, seed, order_pairs=None, track=False, final_read=True, progress=False, label=""):
        calls.append((targets.copy(), cfg, seed))
        n, M, N = targets.shape
        r, c = order_pairs[:, 0], order_pairs[:, 1]
        K = len(r)
        stuck = np.zeros((n, M, N), np.int8)
        stuck[0, r[0], c[0]], stuck[0, r[1], c[1]] = 1, 2
        stuck[1, r[0], c[0]], stuck[1, r[1], c[1]] = 2, 2
        converged = (stuck == 0).astype(np.uint8)
        converged[:, r[5], c[5]] = 0
        err = np.where(np.arange(n)[:, None, None] == 0, 0.005, -0.005) * np.ones((n, M, N))
        err[converged == 0] = 0.5
        own = targets * (1.0 + err)
        own_o = own[:, r, c]
        p, q = np.meshgrid(np.arange(K), np.arange(K))
        trk = np.empty((n, K, K))
        for t, shift in ((0, -1e-6), (1, 1e-6)):
            trk[t] = own_o[t][:, None] - (p - q) * 1e-6 + shift
            trk[t, :2, :] = own_o[t, :2][:, None] + 20e-6  # the stuck ones
        trk[0, 10, 15] = own_o[0, 10] + 50e-6
        trk[1, 10, 15] = own_o[1, 10] - 50e-6
        pulses = np.where(stuck == 0, 10, 100).astype(np.int32)
        return dict(read_after_own=own, converged=converged, stuck=stuck, track=trk, pulses=pulses,
                    fails=np.zeros(n, np.int64))

    monkeypatch.setattr(P, "_program_batch", fake)
    return calls


def test_simulate_statistics_of_a_known_programming(monkeypatch):
    """Each statistic of `simulate` on a programming whose figures are known
    (`_known_programming`): drift of working devices only, k later devices
    on, the cut applied, sample stds; the stuck rates by kind; the offset,
    window spread and spread in bins of target of converged working devices
    as read / target - 1 (the bins taking the unconverged device too passed
    every test: found by mutation testing)."""
    calls = _known_programming(monkeypatch)
    sim = C.simulate(n_arrays=2, seed=0)
    (t, _, _), = calls
    rel = np.where(np.arange(2)[:, None, None] == 0, 0.5, -0.5) * np.ones(t.shape)
    counted = np.ones(t.shape, bool)
    counted[:, [0, 1, 5], 0] = False  # column-major: the two stuck devices and the unconverged one
    want = [rel[counted & (np.abs(t * 1e6 - c) <= 50.0)].std(ddof=1) for c in C.TUNING_G]
    np.testing.assert_allclose(sim["spread"], want, rtol=1e-9)
    k = C.DRIFT_EVENTS
    n_samples = 2 * (64 - k - 2)  # devices followed by k others, less the 2 stuck ones, in 2 arrays
    n_samples[k == 5] -= 2  # the two beyond the cut
    np.testing.assert_allclose(sim["drift_mean"], -k * 1e-6, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sim["drift_std"], 1e-6 * np.sqrt(n_samples / (n_samples - 1)), rtol=1e-9)
    np.testing.assert_allclose(sim["drift_cut_fraction"], np.where(k == 5, 2 / 114, 0.0), rtol=1e-12, atol=0)
    assert sim["p_stuck_lrs"] == 1 / 128 and sim["p_stuck_hrs"] == 3 / 128
    assert sim["converged_working"] == 122 / 124
    assert sim["pulses_mean"] == 10.0 and sim["solver_failures"] == 0
    assert sim["offset_mean"] == pytest.approx(0.0, abs=1e-9)
    assert sim["spread_window"] == pytest.approx(0.5 * np.sqrt(122 / 121), rel=1e-9)


def test_simulate_programs_the_measured_configuration_with_its_seed_and_wires(monkeypatch):
    """The runs `simulate` programs are the measured ones (V/2, grounded
    reads, column-major, 1 % band) on the wires it is given, with targets
    uniform in the 100-500 uS window drawn from ``seed``, the seed also
    handed to the programming."""
    calls = _known_programming(monkeypatch)
    C.simulate(n_arrays=2, seed=5, r_wire=0.5)
    C.simulate(n_arrays=2, seed=5, r_wire=0.5)
    C.simulate(n_arrays=2, seed=6)
    (t5, cfg, s5), (t5b, _, _), (t6, cfg1, s6) = calls
    assert (cfg.scheme.value, cfg.read_scheme.value, cfg.order.value, cfg.tolerance) == (
        "V/2", "grounded", "column-major", 0.01)
    assert cfg.r_wl == cfg.r_bl == 0.5 and cfg1.r_wl == cfg1.r_bl == 1.0
    assert (s5, s6) == (5, 6)
    np.testing.assert_array_equal(t5, t5b)
    assert not np.any(t5 == t6)
    assert 100e-6 <= t5.min() and t5.max() <= 500e-6 and t5.shape == (2, 8, 8)


def test_measured_drift_max_is_the_largest_change_of_either_sign():
    """The measured table's largest change is -39.99 uS (its largest rise,
    39.64 uS, is smaller): the magnitude is the one the cut is set from."""
    assert C.measured()["drift_max"] == pytest.approx(39.99e-6, abs=0.005e-6)


def test_compare_reads_each_stuck_rate_from_its_own_kind():
    """The p_stuck_lrs and p_stuck_hrs rows hold the simulation's rate of
    their own kind (both inputs are 0.5 %, so a swap reads as a pass)."""
    meas = C.measured()
    sim = {**meas, "p_stuck_lrs": 0.004, "p_stuck_hrs": 0.009, "spread_fit": (0.0, 0.0)}
    rows = {r[0]: r for r in C.compare(sim, meas)}
    assert rows["p_stuck_lrs"][1:3] == (0.004, 0.005) and rows["p_stuck_lrs"][4]
    assert rows["p_stuck_hrs"][1:3] == (0.009, 0.005) and not rows["p_stuck_hrs"][4]


def _rows(**ratios):
    """`compare`-like rows, every ratio 1 (loss 0) but those given."""
    meas = C.measured()
    rows = C.compare(meas, meas)
    return [(r[0], r[1] * ratios.get(r[0], 1.0), r[2], r[3] * ratios.get(r[0], 1.0),
             bool(abs(r[3] * ratios.get(r[0], 1.0) - 1) <= 0.3)) for r in rows]


def test_the_fit_loss_weighs_each_row_as_documented():
    """`_loss`: squared log ratios, the drift mean at k = 1 at weight 0.3,
    the slope row and the stuck rates (unless asked for) left out, a ratio
    <= 0 at 10 times its weight."""
    e2 = np.e ** 2
    assert C._loss(_rows()) == 0.0
    assert C._loss(_rows(**{"drift_std_uS[k=7]": e2})) == pytest.approx(4.0)
    assert C._loss(_rows(**{"drift_std_uS[k=7]": 1 / e2})) == pytest.approx(4.0)
    assert C._loss(_rows(**{"drift_mean_uS[k=1]": np.e})) == pytest.approx(0.3)
    assert C._loss(_rows(**{"drift_mean_uS[k=11]": np.e})) == pytest.approx(1.0)
    assert C._loss(_rows(**{"spread_slope_pct_per_uS": 5.0})) == 0.0
    assert C._loss(_rows(p_stuck_lrs=np.e)) == 0.0
    assert C._loss(_rows(p_stuck_lrs=np.e), include_failures=True) == pytest.approx(1.0)
    assert C._loss(_rows(offset_mean_pct=-1.0)) == pytest.approx(10.0)
    assert C._loss(_rows(**{"drift_mean_uS[k=1]": -1.0})) == pytest.approx(3.0)


def test_fit_keeps_each_parameters_sign_and_simulates_its_seed(monkeypatch):
    """The fit moves each parameter on a log scale with its sign kept (the
    preset's relax_drift is negative) and simulates the arrays of its own
    ``seed`` at every evaluation."""
    import warnings

    seeds, devices = [], []

    def fake_simulate(dev, **kw):
        seeds.append(kw["seed"])
        devices.append(dev)
        return dev

    monkeypatch.setattr(C, "simulate", fake_simulate)
    monkeypatch.setattr(C, "compare", lambda dev, meas: dev)
    monkeypatch.setattr(C, "_loss", lambda dev: float(sum(
        (np.log(abs(getattr(dev, p))) - np.log(abs(getattr(xs.presets.TIO2, p))) - 0.2) ** 2
        for p in C.FIT_PARAMETERS)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dev, loss = C.fit(n_arrays=2, seed=7, maxiter=200)
    assert set(seeds) == {7}
    assert all(np.sign(getattr(d, p)) == np.sign(getattr(xs.presets.TIO2, p))
               for d in devices for p in C.FIT_PARAMETERS)
    assert xs.presets.TIO2.relax_drift < 0 and dev.relax_drift == pytest.approx(
        xs.presets.TIO2.relax_drift * np.exp(0.2), rel=1e-2)
    assert loss < 1e-3


def test_run_evaluates_the_fitted_model(tmp_path, monkeypatch):
    """After --fit, the figures written are those of the fitted device (the
    one whose parameters the summary records), not the preset's."""
    import json
    from dataclasses import replace

    fitted = replace(xs.presets.TIO2, read_noise=2 * xs.presets.TIO2.read_noise)
    monkeypatch.setattr(C, "fit", lambda *a, **k: (fitted, 0.5))
    seen = []
    meas = C.measured()

    def fake_simulate(dev, **kw):
        seen.append(dev)
        sim = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in meas.items()}
        sim.update(drift_cut_fraction=np.zeros(30), spread_fit=(-5e-4, 0.75), pulses_mean=15.0,
                   converged_working=1.0, solver_failures=0, n_arrays=2, r_wire=1.0)
        return sim

    monkeypatch.setattr(C, "simulate", fake_simulate)
    summary = C.run(str(tmp_path / "o"), do_fit=True, n_arrays=2, fit_arrays=2, fit_iter=1, verbose=False)
    assert seen == [fitted]
    assert summary["parameters"]["read_noise"] == 2 * xs.presets.TIO2.read_noise
    assert json.loads((tmp_path / "o" / "calibration.json").read_text())["parameters"]["read_noise"] == \
        2 * xs.presets.TIO2.read_noise


def _plotted(monkeypatch, tmp_path, sim, meas, rows):
    """Every line `plot` draws, as {label: (x, y)}, and every band."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    lines, bands, titles = {}, {}, []
    real_plot, real_fill, real_title = Axes.plot, Axes.fill_between, Axes.set_title

    def plot(self, *args, label=None, **kw):
        xy = [a for a in args if not isinstance(a, str)]
        lines.setdefault(label, []).append(tuple(np.asarray(v, dtype=float) for v in xy))
        return real_plot(self, *args, label=label, **kw)

    def fill(self, x, y1, y2=0, *a, label=None, **kw):
        bands[label] = (np.asarray(x, float), np.asarray(y1, float), np.asarray(y2, float))
        return real_fill(self, x, y1, y2, *a, label=label, **kw)

    monkeypatch.setattr(Axes, "plot", plot)
    monkeypatch.setattr(Axes, "fill_between", fill)
    monkeypatch.setattr(Axes, "set_title", lambda self, text, *a, **kw: titles.append(text) or real_title(
        self, text, *a, **kw))
    C.plot(sim, meas, str(tmp_path / "c.png"), rows)
    return lines, bands, titles


def test_calibrate_png_curves_put_each_figure_under_its_label(tmp_path, monkeypatch):
    """The drift panel: "measured mean" is the measured curve, "simulated
    mean" the simulation's, the band +-30 % of the measured one; the spread
    panel's simulated points are the simulated bins; in the ratio panels the
    misses are the red crosses and the hits the green dots."""
    meas = C.measured()
    sim = {**meas, "drift_mean": 0.5 * meas["drift_mean"], "spread": 1.1 * meas["spread"],
           "spread_fit": (1e-3, 0.35), "drift_cut_fraction": np.zeros(30), "n_arrays": 2, "r_wire": 1.0}
    rows = C.compare(sim, meas)
    lines, bands, titles = _plotted(monkeypatch, tmp_path, sim, meas, rows)
    np.testing.assert_allclose(lines["measured mean"][0][1], meas["drift_mean"] * 1e6)
    np.testing.assert_allclose(lines["simulated mean"][0][1], 0.5 * meas["drift_mean"] * 1e6)
    x, lo, hi = bands["measured mean ±30 %"]
    np.testing.assert_allclose(lo, 0.7 * meas["drift_mean"] * 1e6)
    np.testing.assert_allclose(hi, 1.3 * meas["drift_mean"] * 1e6)
    np.testing.assert_allclose(lines["simulated (bins of target)"][0][1], 1.1 * C.published_spread(C.TUNING_G))
    # ratio panels: drift means at 0.5 x are misses, the rest (at 1.0 x, spreads at 1.1 x) hits
    miss_y = np.concatenate([xy[1] for xy in lines["miss"]])
    hit_y = np.concatenate([xy[1] for xy in lines["within ±30 %"]])
    assert np.all(np.abs(miss_y - 1) > 0.3) and np.all(np.abs(hit_y - 1) <= 0.3 + 1e-12)
    assert np.count_nonzero(miss_y == 0.5) == 30  # the 30 drift means
    # the reproduced figures only (the stuck rates are model inputs): 67, of which all but the 30 means within
    assert any("37 of 67 within" in t for t in titles), titles
    assert len(miss_y) + len(hit_y) == 67


def test_attribution_switches_off_the_documented_parts(monkeypatch):
    """Each row simulates the model with its parts off (no relaxation:
    relax_fast, relax_sigma, relax_drift 0; disturb only: read noise 0 too;
    no disturb: v_sub tiny, the rest as given; reads alone: all of these
    off, failures kept) on the same arrays; only the
    "all" row is taken from ``full``."""
    seen = {}

    def fake_simulate(dev, n_arrays, seed, progress, label):
        seen[label] = (dev, n_arrays, seed)
        v = 1e-6 * len(seen)  # a figure of its own for each simulation
        return dict(drift_mean=np.full(30, -v), drift_std=np.full(30, v))

    monkeypatch.setattr(C, "simulate", fake_simulate)
    full = dict(drift_mean=-9e-6 * np.arange(1, 31), drift_std=9e-6 * np.arange(1, 31))
    out = C.attribution(n_arrays=3, seed=4, events=(1, 30), full=full)
    base = xs.presets.TIO2
    np.testing.assert_allclose(out["all"][0], [-9.0, -270.0])
    np.testing.assert_allclose(out["all"][1], [9.0, 270.0])
    assert len(seen) == 4 and all(n == 3 and s == 4 for _, n, s in seen.values())
    dev = {label.split(": ", 1)[1]: d for label, (d, _, _) in seen.items()}
    nr = dev["disturb + read noise (no relaxation)"]
    assert (nr.relax_fast, nr.relax_sigma, nr.relax_drift, nr.read_noise, nr.v_sub) == (
        0.0, 0.0, 0.0, base.read_noise, base.v_sub)
    do = dev["disturb only"]
    assert (do.relax_fast, do.relax_sigma, do.relax_drift, do.read_noise, do.v_sub) == (0.0, 0.0, 0.0, 0.0, base.v_sub)
    nd = dev["relaxation + read noise (no disturb)"]
    assert nd.v_sub == 1e-3 and nd.v_sub < base.v_sub and (nd.relax_fast, nd.read_noise) == (
        base.relax_fast, base.read_noise)
    ro = dev["reads alone (no disturb, relaxation or read noise)"]
    assert (ro.relax_fast, ro.relax_sigma, ro.relax_drift, ro.read_noise, ro.v_sub) == (0.0, 0.0, 0.0, 0.0, 1e-3)
    assert (ro.p_stuck_lrs, ro.p_stuck_hrs) == (base.p_stuck_lrs, base.p_stuck_hrs)
    for name in ("disturb + read noise (no relaxation)", "disturb only", "relaxation + read noise (no disturb)",
                 "reads alone (no disturb, relaxation or read noise)"):
        assert not np.allclose(out[name][0], out["all"][0])


def test_simulate_refuses_an_array_of_exactly_30_devices(monkeypatch):
    """No device of a 30-device array is followed by 30 others: refused
    like 16 (its k = 30 statistics were NaN)."""
    import xbarsim.programming as P

    monkeypatch.setattr(P, "_program_batch", lambda *a, **k: pytest.fail("simulated before refusing"))
    with pytest.raises(xs.ParameterError, match=r"shape = \(5, 6\): 30 devices; the drift is compared up to k = 30"):
        C.simulate(n_arrays=2, shape=(5, 6))

def test_simulate_refuses_a_device_whose_window_misses_the_measured_targets(monkeypatch):
    """The measured runs programmed targets uniform in 100-500 uS, which
    `simulate` draws whatever the device's window; a device that cannot hold
    them is refused before any work (a 100-300 uS window returned NaN
    spreads with NumPy's warnings only), one that covers them is taken."""
    calls = _known_programming(monkeypatch)
    narrow = dataclasses.replace(xs.presets.TIO2, g_max=300e-6)
    with pytest.raises(xs.ParameterError, match=r"window is 100-300 uS; the measured runs programmed targets "
                                                r"uniform in 100-500 uS"):
        C.simulate(narrow, n_arrays=2)
    with pytest.raises(xs.ParameterError, match=r"window is 100-300 uS"):
        C.fit(narrow, n_arrays=2, maxiter=1)
    # and the window's lower side (a 150 uS g_min ran, a third of the 150 uS bin below its window;
    # found by mutation testing)
    with pytest.raises(xs.ParameterError, match=r"window is 150-500 uS; the measured runs programmed targets"):
        C.simulate(dataclasses.replace(xs.presets.TIO2, g_min=150e-6), n_arrays=2)
    assert calls == []
    wide = dataclasses.replace(xs.presets.TIO2, g_min=50e-6, g_max=600e-6)
    C.simulate(wide, n_arrays=2, seed=5)
    C.simulate(n_arrays=2, seed=5)
    (t_wide, _, _), (t_preset, _, _) = calls
    np.testing.assert_array_equal(t_wide, t_preset)  # the measured window's targets, not the device's


def test_measured_refuses_a_table_of_fractional_event_counts(tmp_path, monkeypatch):
    """A damaged row "1.5" was counted at event count 1."""
    from importlib import resources

    text = resources.files("xbarsim").joinpath("data", "tio2", "neighbour_drift.csv").read_text()
    lines = text.splitlines()
    head, first = lines[0], lines[1].split(",")
    first[0] = str(float(first[0]) + 0.5)
    (tmp_path / "neighbour_drift.csv").write_text("\n".join([head, ",".join(first)] + lines[2:]) + "\n")
    monkeypatch.setattr(C, "_data_path", lambda name: tmp_path / name)
    with pytest.raises(xs.XbarsimError, match=r"neighbour_drift.csv, is missing or damaged \(event counts must be "
                                              r"whole numbers\)"):
        C.measured()


def test_measured_refuses_an_event_count_with_a_single_row(tmp_path, monkeypatch):
    """One row at an event count has no sample std (NaN, with NumPy's
    warning only): refused like a missing count. Refusing only a count with
    no row passed every test (found by mutation testing)."""
    from importlib import resources

    text = resources.files("xbarsim").joinpath("data", "tio2", "neighbour_drift.csv").read_text()
    head, *rows = text.splitlines()
    at_7 = [r for r in rows if int(float(r.split(",")[0])) == 7]
    keep = [r for r in rows if int(float(r.split(",")[0])) != 7] + at_7[:1]
    (tmp_path / "neighbour_drift.csv").write_text("\n".join([head] + keep) + "\n")
    monkeypatch.setattr(C, "_data_path", lambda name: tmp_path / name)
    with pytest.raises(xs.XbarsimError, match=r"fewer than two rows at event count\(s\) \[7\]"):
        C.measured()


def test_calibrate_png_spread_band_and_title_follow_the_tolerance_and_shape(tmp_path, monkeypatch):
    """The spread panel's band is +-REL_TOL of the published spread, and the
    title names the simulated arrays' shape."""
    import matplotlib.figure

    meas = C.measured()
    sim = {**meas, "spread_fit": (1e-3, 0.35), "drift_cut_fraction": np.zeros(30), "n_arrays": 2,
           "r_wire": 1.0, "shape": (6, 7)}
    suptitles = []
    real = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, t, *a, **k: suptitles.append(t) or real(self, t, *a, **k))
    monkeypatch.setattr(C, "REL_TOL", 0.2)
    lines, bands, titles = _plotted(monkeypatch, tmp_path, sim, meas, None)
    g, lo, hi = bands["published ±20 %"]
    np.testing.assert_allclose(lo, 0.8 * C.published_spread(g))
    np.testing.assert_allclose(hi, 1.2 * C.published_spread(g))
    assert "2 simulated 6x7 arrays" in suptitles[0], suptitles


def test_the_converged_share_never_reads_100_percent_short_of_all():
    """0.99995 of the working devices converged (about 3 did not) printed
    as "converged 100.00 %" (found by review): the share keeps 2 decimals,
    and takes as many more as it needs not to read 100.00 when it is not
    all."""
    from xbarsim.calibrate import percent_of_all

    assert [percent_of_all(x) for x in (1.0, 0.99995, 122 / 124, 0.0)] == ["100.00", "99.995", "98.39", "0.00"]
    # as many as it needs, also past 3 decimals: 5 here, not the float's 16 digits (found by mutation testing)
    assert percent_of_all(0.9999999) == "99.99999"
    assert float(percent_of_all(1 - 1e-12)) < 100


def test_the_summary_records_the_largest_cut_fraction(tmp_path, monkeypatch, capsys):
    """``drift_cut_fraction_max`` is the largest share of simulated drift
    changes left out by the cut over k = 1..30, printed with the k it is at:
    its mean over k, and the k of the smallest, each passed the tests (found
    by mutation testing)."""
    meas = C.measured()
    cut = np.zeros(len(meas["events"]))
    cut[4] = 0.05  # at k = 5 only
    monkeypatch.setattr(C, "simulate", lambda *a, **k: _sim_like_measured(meas, drift_cut_fraction=cut))
    summary = C.run(str(tmp_path / "cal"), n_arrays=2, verbose=True)
    assert summary["drift_cut_fraction_max"] == 0.05
    assert "(up to 5.0 % of them, at k = 5)" in capsys.readouterr().out


def test_a_run_without_a_fit_records_no_fit_settings(tmp_path, monkeypatch):
    """Without ``do_fit`` the summary's ``fit_arrays`` and ``fit_iter`` are
    None, as ``fit_loss``: recording the unused default of 24 arrays read as
    a fit that never ran and passed the tests (found by mutation testing)."""
    meas = C.measured()
    monkeypatch.setattr(C, "simulate", lambda *a, **k: _sim_like_measured(meas))
    summary = C.run(str(tmp_path / "cal"), n_arrays=2, verbose=False)
    assert (summary["refit"], summary["fit_loss"], summary["fit_arrays"], summary["fit_iter"]) == (
        False, None, None, None)
