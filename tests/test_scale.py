"""The scaling-study tool (`xbarsim scale`, `xbarsim.scale.run_sweep`).

Small arrays (mostly 8 x 8 and 16 x 16), except the memory estimate's check
against measured peaks at 512 x 512 (each in a fresh process, a few seconds),
Dask clusters on loopback and fresh-interpreter compile checks; no timing
thresholds.
"""

import csv
import os
import re
import runpy
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import xbarsim as xs
from xbarsim import scale
from xbarsim.cli import main
from xbarsim.scale import COLUMNS, ScalePoint, SweepParams, load_results, plot_results, run_sweep

from clusters import loopback_cluster

WINDOW = ((100e-6, 500e-6),)  # siemens: the measured TiO2 window


def params(**kw):
    """A small sweep, one window, direct solver (independent of the defaults)."""
    kw.setdefault("g_ranges", WINDOW)
    kw.setdefault("method", "direct")
    return SweepParams(**kw)


SMALL = params(sizes=((8, 8), (16, 16)), r_wire=(0.1, 1.0, 10.0))


def _read_csv(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


class CountingRunPoint:
    """Wraps scale.run_point and records the ids of the points it computed."""

    def __init__(self, fail_after=None):
        self.ids = []
        self.fail_after = fail_after

    def __call__(self, point, numba_threads=None):
        if self.fail_after is not None and len(self.ids) >= self.fail_after:
            raise KeyboardInterrupt  # the user stops the sweep
        self.ids.append(point.point_id)
        return REAL_RUN_POINT(point, numba_threads)


REAL_RUN_POINT = scale.run_point


def test_csv_columns_rows_and_figures(tmp_path):
    rows = run_sweep(SMALL, tmp_path, progress=False)
    header, raw = _read_csv(tmp_path / "results.csv")
    assert tuple(header) == COLUMNS
    assert "time_s" in header and "r_wire_ohm" in header and "peak_rss_mib" in header
    assert len(raw) == len(rows) == 6
    assert {(r["rows"], r["r_wire_ohm"]) for r in rows} == {(n, r) for n in (8, 16) for r in (0.1, 1.0, 10.0)}
    assert len({r["point_id"] for r in raw}) == 6
    for r in rows:
        assert r["status"] == "ok", r["message"]
        assert r["method"] == "direct"
        assert 0 < r["rel_error"] < 1 and r["rel_error"] <= r["max_rel_error"] * 1.0000001
        assert r["time_s"] > 0 and r["iterations"] >= 1  # direct: the factorization preconditions one CG step
        assert r["ir_drop_wl_v"] > 0 and r["bl_rise_v"] > 0
        assert 0 < r["ir_drop_wl_frac"] < 1 and 0 < r["bl_rise_frac"] < 1
        assert r["kcl_error"] < 1e-9
    for name in ("error_vs_size.png", "time_vs_size.png", "ir_drop_vs_size.png"):
        png = tmp_path / name
        assert png.stat().st_size > 10_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every column, its type and meaning, beside the results (only the source held them; found by review)
    key = (tmp_path / "results_columns.txt").read_text().splitlines()
    assert [line.split(" (")[0] for line in key] == list(COLUMNS)
    assert any(line.startswith("time_s (float): wall time of xs.solve, seconds") for line in key)


def test_the_iterations_axis_label_is_short_and_says_what_it_counts():
    """The 67-character label ran into the figure's title and legend, and
    spoke of direct solves over Newton steps (found by review)."""
    from xbarsim.scale import _iterations_label

    linear, sinh = dict(device="linear"), dict(device="sinh")
    assert _iterations_label([linear]) == "iterations"
    assert _iterations_label([linear, sinh]) == "Newton steps, summed over inputs"
    assert all(len(_iterations_label(rows)) <= 40 for rows in ([linear], [sinh]))


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_metrics_match_an_independent_solve(method):
    point = ScalePoint(rows=8, cols=12, r_wire=2.0, g_min=1e-5, g_max=1e-4, inputs=3, method=method)
    row = scale.run_point(point)
    # Redraw the same random state and solve it here.
    rng = np.random.default_rng([0, 8, 12, 3])
    g = 1e-5 + (1e-4 - 1e-5) * rng.random((8, 12))
    x = 0.2 * rng.random((8, 3))
    sol = xs.solve(xs.Crossbar(g, r_wl=2.0, r_bl=2.0), **xs.read_drives(x, 1.0, 1.0), method=method)
    # the solver's columns are the solve's own: the residual column written from kcl_error passed
    # every test (found by mutation testing); with pcg the two differ, so a swap shows
    assert (row["method"], row["iterations"]) == (sol.method, sol.iterations)
    assert row["residual"] == pytest.approx(sol.residual, rel=1e-6, abs=0.0)
    assert row["kcl_error"] == pytest.approx(sol.kcl_error, rel=1e-6, abs=0.0)
    if method == "pcg":
        assert row["residual"] != pytest.approx(row["kcl_error"], rel=0.5)
    ideal = g.T @ x
    assert row["rel_error"] == pytest.approx(np.linalg.norm(sol.i_out - ideal) / np.linalg.norm(ideal), rel=1e-9)
    assert row["max_rel_error"] == pytest.approx(np.max(np.abs(sol.i_out - ideal) / ideal), rel=1e-9)
    assert row["rel_error_wires"] == row["rel_error"]  # linear devices
    assert row["ir_drop_wl_v"] == pytest.approx(np.max(x - sol.v_wl[:, -1, :]), rel=1e-9)
    assert row["bl_rise_v"] == pytest.approx(np.max(sol.v_bl), rel=1e-9)
    # the fractions: worst over the input vectors of that vector's largest
    # far-end drop (or bit-line rise) over its own largest input. Dividing by
    # the mean input, taking the best vector, or the two columns written into
    # each other passed every test (found by mutation testing)
    full_scale = x.max(axis=0)
    assert row["ir_drop_wl_frac"] == pytest.approx(np.max(np.max(x - sol.v_wl[:, -1, :], axis=0) / full_scale),
                                                   rel=1e-9)
    assert row["bl_rise_frac"] == pytest.approx(np.max(np.max(sol.v_bl, axis=(0, 1)) / full_scale), rel=1e-9)
    assert row["ir_drop_wl_frac"] > 1.5 * row["bl_rise_frac"]  # different quantities here: a swap shows


def test_ideal_wires_and_terminals_give_the_exact_product(tmp_path):
    sweep = params(sizes=((8, 8),), r_wire=(0.0,), r_terminal=0.0, inputs=(1, 4))
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert len(rows) == 2
    for r in rows:
        assert r["rel_error"] < 1e-12
        assert r["ir_drop_wl_v"] == pytest.approx(0.0, abs=1e-14)


def test_error_grows_with_wire_resistance(tmp_path):
    rows = run_sweep(SMALL, tmp_path, progress=False, plots=False)
    for n in (8, 16):
        errs = [r["rel_error"] for r in sorted((r for r in rows if r["rows"] == n), key=lambda r: r["r_wire_ohm"])]
        assert errs[0] < errs[1] < errs[2]
    # and with the array size at fixed wire resistance
    for rw in (0.1, 1.0, 10.0):
        by_n = {r["rows"]: r["rel_error"] for r in rows if r["r_wire_ohm"] == rw}
        assert by_n[8] < by_n[16]


def test_rerun_computes_nothing_and_returns_the_same_rows(tmp_path, monkeypatch):
    first = run_sweep(SMALL, tmp_path, progress=False, plots=False)
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    again = run_sweep(SMALL, tmp_path, progress=False, plots=False)
    assert counter.ids == []
    fields = ("point_id", "rel_error", "time_s", "finished_utc")
    assert [tuple(r[f] for f in fields) for r in again] == [tuple(r[f] for f in fields) for r in first]
    # A larger sweep into the same folder computes only the new points.
    bigger = params(sizes=((8, 8), (16, 16)), r_wire=(0.1, 1.0, 10.0, 3.0))
    rows = run_sweep(bigger, tmp_path, progress=False, plots=False)
    assert sorted(counter.ids) == sorted(p.point_id for p in bigger.points() if p.r_wire == 3.0)
    assert len(rows) == 8
    assert len(_read_csv(tmp_path / "results.csv")[1]) == 8


def test_a_sweep_into_a_folder_holding_other_points_says_so(tmp_path):
    """A restart with other settings added its rows to the same results.csv,
    while the table and figures showed the new sweep alone, without a word
    (found by review): the run warns how many rows it leaves out, and how to
    plot them all. A sweep covering every row in the file does not warn."""
    bigger = params(sizes=((8, 8), (16, 16)), r_wire=(0.1, 1.0))
    run_sweep(bigger, tmp_path, progress=False, plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(bigger, tmp_path, progress=False, plots=False)
    with pytest.warns(UserWarning, match=r"also holds 3 row\(s\) of points outside this sweep") as rec:
        rows = run_sweep(params(sizes=((8, 8),), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    assert len(rows) == 1 and len(_read_csv(tmp_path / "results.csv")[1]) == 4
    assert "plot_results(xbarsim.scale.load_results(" in str(rec[0].message)


def test_interrupted_sweep_resumes_without_losing_work(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "run_point", CountingRunPoint(fail_after=4))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SMALL, tmp_path, progress=False, plots=False)
    _, saved = _read_csv(tmp_path / "results.csv")
    assert len(saved) == 4
    # A write cut short by the interruption leaves a partial last line.
    with open(tmp_path / "results.csv", "a") as fh:
        fh.write("16x16_rw10.0_partial,ok,,16,1")
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    rows = run_sweep(SMALL, tmp_path, progress=False, plots=False)
    assert len(counter.ids) == 2
    assert not set(counter.ids) & {r["point_id"] for r in saved}
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert len(load_results(tmp_path / "results.csv")) == 6


def test_a_header_without_its_newline_is_kept(tmp_path, monkeypatch):
    """results.csv holding the header alone, its newline missing (saved by
    an editor), was taken for a cut-short last line and emptied: the rows
    went in without a header, and the next run refused its own folder."""
    (tmp_path / "results.csv").write_text(",".join(COLUMNS))
    sweep = params(sizes=((8, 8),), r_wire=(0.1, 1.0))
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    header, raw = _read_csv(tmp_path / "results.csv")
    assert tuple(header) == COLUMNS
    assert [r["point_id"] for r in raw] == [r["point_id"] for r in first]
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    again = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == []
    assert [r["finished_utc"] for r in again] == [r["finished_utc"] for r in first]


def test_a_complete_last_row_without_its_newline_is_kept(tmp_path, monkeypatch):
    """Only a row cut short is recomputed: one that is whole but for its
    newline (an editor's save, a copy) was thrown away and computed again."""
    sweep = params(sizes=((8, 8), (16, 16)), r_wire=(1.0,))
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    path = tmp_path / "results.csv"
    text = path.read_text()
    path.write_text(text.rstrip("\n"))
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    again = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == []
    assert [r["finished_utc"] for r in again] == [r["finished_utc"] for r in first]
    assert path.read_text() == text
    # cut anywhere short of its end (inside the time stamp too), it is recomputed
    last = text.splitlines()[-1]
    # (a stamp cut to one without its zone, or to the minute, reads as a time: taking every readable
    # row as whole passed every test; found by mutation testing)
    for cut in (len(last) - 1, len(last) - 6, len(last) - 7, len(last) - 9, len(last) // 2):
        path.write_text(text[: len(text) - len(last) - 1] + last[:cut])
        counter.ids.clear()
        run_sweep(sweep, tmp_path, progress=False, plots=False)
        assert counter.ids == [first[-1]["point_id"]], cut
        assert len(_read_csv(path)[1]) == 2


def test_integer_columns_are_read_back_exactly(tmp_path, monkeypatch):
    """Integer columns were read through float: a seed above 2**53 (the CLI
    takes up to 2**63 - 1) came back as another number, and after --retry's
    compaction was written back wrong into results.csv."""
    real_solve = xs.solve

    def solve(xbar, **kw):  # the 2 ohm point fails, for --retry
        if xbar.r_wl_full()[0, 0] == 2.0:
            raise xs.ConvergenceError("did not converge (test)")
        return real_solve(xbar, **kw)

    monkeypatch.setattr(xs, "solve", solve)
    seed = 2**63 - 1
    sweep = params(sizes=((4, 4),), r_wire=(1.0, 2.0), seed=seed)
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert [r["seed"] for r in rows] == [seed, seed]
    run_sweep(sweep, tmp_path, progress=False, plots=False, retry=True)
    assert [r["seed"] for r in _read_csv(tmp_path / "results.csv")[1]] == [str(seed)] * 2
    assert [r["seed"] for r in load_results(tmp_path / "results.csv")] == [seed, seed]


def test_solver_errors_are_recorded_not_raised(tmp_path, monkeypatch):
    real_solve = xs.solve

    def solve(xbar, **kw):
        if xbar.shape == (16, 16):
            raise xs.ParameterError("v0 is not supported by this solver (test)")
        return real_solve(xbar, **kw)

    monkeypatch.setattr(xs, "solve", solve)
    sweep = params(sizes=((8, 8), (16, 16)), r_wire=(1.0,))
    rows = run_sweep(sweep, tmp_path, progress=False)
    status = {r["rows"]: r for r in rows}
    assert status[8]["status"] == "ok"
    assert status[16]["status"] == "failed"
    assert "ParameterError: v0 is not supported" in status[16]["message"]
    assert (tmp_path / "error_vs_size.png").stat().st_size > 0
    # failed points are kept on a plain rerun, recomputed with retry=True
    monkeypatch.setattr(xs, "solve", real_solve)
    assert run_sweep(sweep, tmp_path, progress=False, plots=False)[1]["status"] == "failed"
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False, retry=True)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert len(_read_csv(tmp_path / "results.csv")[1]) == 2  # retried row replaced the failed one


def test_sinh_point_is_solved(tmp_path):
    # Ideal wires and terminals: every device sees its input exactly, so the
    # output is sum_i G_ij v0 sinh(x_i / v0), off G.T x by the nonlinearity only.
    # (This test accepted a "failed" row from before the nonlinear solver;
    # found by review, a refused sinh point would have passed it.)
    point = ScalePoint(rows=8, cols=8, r_wire=0.0, r_terminal=0.0, g_min=1e-4, g_max=5e-4, device="sinh",
                       v0=0.15, method="direct")
    (row,) = run_sweep([point], tmp_path, progress=False, plots=False)
    assert row["status"] == "ok", row["message"]
    assert row["v0_v"] == 0.15
    assert row["rel_error_wires"] < 1e-9
    assert row["rel_error"] > 0.01


def test_sinh_point_whose_ideal_wire_reference_overflows_says_why(tmp_path, capsys):
    """At v_read / v0 = 1e4 the circuit solves (its wires and terminals keep
    every device far below that), but the ideal-wire reference
    G V0 sinh(x / V0) overflows: numpy's overflow and invalid-value warnings
    came out raw, and rel_error_wires was written empty with no word why
    (found by review)."""
    import math

    argv = ["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "1", "--g-range", "1e-4:5e-4", "--device",
            "sinh", "--v0", "1e-3", "--v-read", "10", "--no-progress", "--no-plots"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
    (row,) = load_results(tmp_path / "results.csv")
    assert row["status"] == "ok" and row["residual"] < 1e-9 and 1 < row["rel_error"] < 1e3
    assert math.isnan(row["rel_error_wires"])
    assert row["message"].startswith("rel_error_wires not computed: on ideal wires a device would see up to ")
    assert "overflows double precision" in row["message"]
    err = capsys.readouterr().err
    assert err.startswith("1 point(s) solved with a metric left empty: rel_error_wires not computed")
    assert "Warning" not in err


def test_point_that_cannot_fit_is_skipped(tmp_path, monkeypatch):
    from xbarsim import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 10_000)
    rows = run_sweep(params(sizes=((16, 16),), r_wire=(1.0,), method="pcg"), tmp_path,
                     progress=False)
    assert rows[0]["status"] == "skipped"
    assert "MemoryLimitError" in rows[0]["message"]
    # 16 x 16 pcg: 256 cells x (112 + 104) B and 32 lines x (256 + 128) B; 10 kB available, in units that read
    assert "needs about 66.0 KiB, but only 9.8 KiB is available" in rows[0]["message"]
    assert "use a smaller array" in rows[0]["message"]
    # with the estimate it refused (the column was empty on exactly these rows; found by review)
    assert rows[0]["mem_estimate_mib"] == pytest.approx((256 * (112 + 104) + 32 * (256 + 128)) / 2**20)
    # a direct point's hint names the option that picks pcg, not the library's keyword
    rows = run_sweep(params(sizes=((16, 16),), r_wire=(1.0,), method="direct"), tmp_path / "direct",
                     progress=False)
    assert rows[0]["status"] == "skipped"
    assert "use --method pcg, which needs about" in rows[0]["message"], rows[0]["message"]


def test_an_allocation_that_fails_after_the_estimate_passed_skips_the_point(tmp_path, monkeypatch):
    """Under `ulimit -v`, SuperLU could fail to allocate after the resident
    estimate passed: the MemoryError (or SuperLU's "MALLOC fails"
    RuntimeError) ended the sweep, and every rerun at the same point (found
    by review). Such a point is skipped, the sweep goes on; any other
    RuntimeError is a bug and propagates."""
    real_solve = xs.solve
    failure = {}

    def solve(xbar, **kw):
        if xbar.shape == (16, 16):
            raise failure["exc"]
        return real_solve(xbar, **kw)

    monkeypatch.setattr(xs, "solve", solve)
    sweep = params(sizes=((8, 8), (16, 16), (24, 24)), r_wire=(1.0,))
    for k, exc in enumerate((MemoryError(), RuntimeError("SUPERLU_MALLOC fails for buf in intMalloc()"))):
        failure["exc"] = exc
        rows = run_sweep(sweep, tmp_path / str(k), progress=False, plots=False)
        assert [r["status"] for r in rows] == ["ok", "skipped", "ok"]
        assert "out of memory during the solve, after the estimate passed" in rows[1]["message"]
        assert "ulimit -v" in rows[1]["message"]
    failure["exc"] = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        run_sweep(sweep, tmp_path / "bug", progress=False, plots=False)


def _sinh_read(n):
    """A 1 ohm n x n array of sinh devices (V0 = 0.2 V) and its read drives."""
    rng = np.random.default_rng(0)
    g = 1e-4 + 4e-4 * rng.random((n, n))
    return xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=0.2), xs.read_drives(0.2 * rng.random(n), 1.0, 1.0)


@pytest.mark.parametrize("method", ["pcg", "mg"])
def test_memory_guard_refuses_a_sinh_solve_that_needs_more_than_is_available(method, monkeypatch):
    """The guard sized sinh (Newton) solves as linear ones: their working
    set (residual, trial point, correction, Jacobian conductances, a second
    preconditioner) reached 1.7-1.9x its estimate, and a solve it admitted
    could take more than the memory available (found by review). With the
    measured peak (tracemalloc) as the memory available, the guard refuses."""
    import tracemalloc

    from xbarsim import _memory

    xbar, drives = _sinh_read(128)
    # compile outside the trace, at this size: mg's coarse levels compile
    # their own specializations, and a compile in the trace inflated the peak
    xs.solve(xbar, **drives, method=method)
    tracemalloc.start()
    try:
        xs.solve(xbar, **drives, method=method)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    monkeypatch.setattr(_memory, "available_bytes", lambda: peak)
    with pytest.raises(xs.MemoryLimitError, match="array of sinh devices"):
        xs.solve(xbar, **drives, method=method)
    # a linear solve of the same array fits in that memory, as before
    xs.solve(xs.Crossbar(xbar.g, r_wl=1.0, r_bl=1.0), **drives, method=method)


_SINH_DIRECT_RSS = """
from xbarsim.scale import ScalePoint, run_point
row = run_point(ScalePoint(rows=128, cols=128, r_wire=1.0, g_min=1e-4, g_max=5e-4, device="sinh", v0=0.2,
                           method="direct"))
print(row["status"], row["solve_rss_mib"], row["mem_estimate_mib"])
"""


def test_memory_estimate_covers_a_direct_sinh_solve():
    """A direct Newton step factors its Jacobian while the previous step's
    SuperLU factors are still held: the solver's RSS grew 1.5-1.7x the
    guard's estimate for sinh devices (found by review). Measured as the
    row's solve_rss_mib in a fresh process (RSS: SuperLU's fill is not
    Python's to trace)."""
    _assert_solve_rss_within_its_estimate(_SINH_DIRECT_RSS)


def _assert_solve_rss_within_its_estimate(script, *args, env=None):
    """Run ``script`` (printing a row's status, solve_rss_mib and
    mem_estimate_mib) in a fresh process; its solve's RSS must be within
    the estimate."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    status, rss, estimate = proc.stdout.split()
    assert status == "ok"
    if rss == "nan":
        pytest.skip("no RSS high-water mark to reset here (not Linux)")
    assert 0 < float(rss) <= float(estimate)


_RSS_OF_ONE_SOLVE = """
import sys
from xbarsim.scale import ScalePoint, run_point
n, method, r = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
point = lambda n: ScalePoint(rows=n, cols=n, r_wire=r, r_terminal=r, g_min=1e-6, g_max=1e-4, method=method)
run_point(point(48))  # the kernels, compiled or loaded, before the high-water mark is reset
row = run_point(point(n))
print(row["status"], row["solve_rss_mib"], row["mem_estimate_mib"])
"""


@pytest.mark.parametrize("n, method, r", [(512, "direct", 1.0), (512, "pcg", 0.0), (512, "direct", 0.0)])
def test_memory_estimate_covers_a_direct_solve_beyond_256_and_pcg_on_ideal_wire(n, method, r):
    """SuperLU's fill per cell grows with the array (n log n): sized from
    256^2, the estimate fell 1.21x short at 512^2 and 1.41x at 1024^2; and
    pcg on ideal wire (``auto``'s path whenever a wire is ideal) peaked
    1.18-1.30x over its estimate at every size (RSS in a fresh process;
    found by review). A direct solve on ideal wires is sized by its own,
    far smaller fill (`DIRECT_IDEAL_BYTES_PER_CELL`), which must still
    cover it."""
    _assert_solve_rss_within_its_estimate(_RSS_OF_ONE_SOLVE, str(n), method, str(r),
                                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})


def test_memory_estimate_covers_a_batched_direct_solve():
    """A direct solve of many columns runs pcg's CG loop on the factors: it
    was sized at 64 B/cell per column and took 132 (traced; 137-157 of RSS),
    so a batch twice too large was admitted (found by review)."""
    import tracemalloc

    from xbarsim import _memory

    rng = np.random.default_rng(0)
    g, x = rng.uniform(1e-4, 5e-4, (32, 32)), rng.uniform(0, 0.3, (32, 500))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    xs.solve(xbar, **drives, method="direct")
    tracemalloc.start()
    try:
        xs.solve(xbar, **drives, method="direct")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= _memory.estimate("direct", 32, 32, 500)


def test_points_refused_for_memory_are_tried_again_by_a_plain_rerun(tmp_path, monkeypatch, capsys):
    """Whether a point fits depends on the memory free when it runs: a
    skipped row was kept as finished, so the same command never computed it
    again (only --retry did, which the hint said not to use)."""
    from xbarsim import _memory

    sweep = params(sizes=((8, 8), (16, 16)), r_wire=(1.0,), method="pcg")
    real_available = _memory.available_bytes
    monkeypatch.setattr(_memory, "available_bytes", lambda: 30_000)  # pcg: 8 x 8 needs 19.5 KiB, 16 x 16 66 KiB
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert [r["status"] for r in first] == ["ok", "skipped"]
    # still too little memory: refused again, one row per point in the file
    again = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert [r["status"] for r in again] == ["ok", "skipped"]
    assert again[0]["finished_utc"] == first[0]["finished_utc"]
    assert len(_read_csv(tmp_path / "results.csv")[1]) == 2
    # memory is free again: the same sweep computes the refused point only
    monkeypatch.setattr(_memory, "available_bytes", real_available)
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == [first[1]["point_id"]]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    _, raw = _read_csv(tmp_path / "results.csv")
    assert [(r["point_id"], r["status"]) for r in raw] == [(r["point_id"], "ok") for r in first]
    # and the hint says so
    scale._report_problems(first, plots=False)
    hint = capsys.readouterr().err
    assert "rerun the same command once more memory is free" in hint and "--retry" not in hint


def test_sweep_through_a_local_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with loopback_cluster() as cluster, \
            distributed.Client(cluster) as client:
        rows = run_sweep(params(sizes=((8, 8),), r_wire=(0.1, 10.0)), tmp_path,
                         client=client, progress=False, plots=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["rel_error"] < rows[1]["rel_error"]
    # same numbers as the in-process path (same seeded draw)
    local = run_sweep(params(sizes=((8, 8),), r_wire=(0.1, 10.0)), tmp_path / "local",
                      progress=False, plots=False)
    assert [r["rel_error"] for r in local] == pytest.approx([r["rel_error"] for r in rows], rel=1e-12)


def test_the_memory_guard_counts_a_dask_workers_memory_limit():
    """A LocalCluster gives each of --workers N the machine's memory / N,
    and its nanny kills a worker past 95 % of that. The guard compared a
    point with the whole machine's memory: a point between the two killed
    worker after worker, then was recorded failed with a hint to retry
    (found by review). In a worker, the guard now counts what that worker
    may still grow by."""
    distributed = pytest.importorskip("distributed")
    import psutil

    from xbarsim import _memory

    assert _memory.worker_allowance() is None  # not in a worker
    held = psutil.Process().memory_info().rss
    limit = held + 2**31
    with loopback_cluster(memory_limit=limit) as cluster, \
            distributed.Client(cluster) as client:
        allowance = client.submit(_memory.worker_allowance, pure=False).result()
        # 95 % of the limit less what the (in-process) worker holds: this
        # process, grown by the cluster by less than 256 MiB
        assert 0.95 * limit - held - 2**28 < allowance <= 0.95 * limit - held
        refused = client.submit(_memory.require, allowance + 2**24, "a test solve", "use a smaller array",
                                pure=False).exception()
        passed = client.submit(_memory.require, 2**20, "a test solve", "use a smaller array", pure=False)
        assert passed.result() is None
    # (the comm hands the error back wrapped: check its text)
    assert "MemoryLimitError" in repr(refused)
    assert "this Dask worker may grow by only" in str(refused) and "fewer workers (workers=, --workers)" in str(refused)


def test_cli_connects_to_an_existing_scheduler(tmp_path, capsys):
    with loopback_cluster() as cluster:
        code = main(["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "1",
                     "--g-range", "100e-6:500e-6", "--scheduler", cluster.scheduler_address,
                     "--no-progress", "--no-plots"])
    assert code == 0
    (row,) = load_results(tmp_path / "results.csv")
    assert row["status"] == "ok" and row["rel_error"] > 0


def test_cli_runs_a_tiny_sweep(tmp_path, capsys):
    code = main(["scale", "--out", str(tmp_path), "--sizes", "8,8x12", "--r-wire", "0.5,5",
                 "--g-range", "10e-6:50e-6,100e-6:500e-6", "--batch", "1,3", "--method", "direct",
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "rel_err" in out and "16 points: 16 ok" in out
    rows = load_results(tmp_path / "results.csv")
    assert {(r["rows"], r["cols"]) for r in rows} == {(8, 8), (8, 12)}
    assert {(r["g_min_s"], r["g_max_s"]) for r in rows} == {(10e-6, 50e-6), (100e-6, 500e-6)}
    assert (tmp_path / "error_vs_size.png").stat().st_size > 0


def test_the_printed_table_fits_110_columns_at_the_largest_entries():
    """The table's columns are as wide as their entries, and its key is
    wrapped at 100: it was 124 columns wide, with a key of 250 on one line (found
    by the figures review). A failed point's message may run past."""
    from xbarsim.scale import format_table

    def row(n, device, v0, status="ok", **figures):
        return dict(rows=n, cols=n, r_wire_ohm=10.0, g_min_s=1e-6, g_max_s=10e-6, device=device, v0_v=v0,
                    inputs=64, rel_error=0.0123, max_rel_error=0.456, ir_drop_wl_frac=0.789,
                    bl_rise_frac=0.0012, time_s=123.456, iterations=17, peak_rss_mib=11264.0,
                    method="mg", status=status, message="out of memory: needs 40 GiB" if status != "ok" else "",
                    **figures)

    rows = [row(4096, "sinh", 0.25), row(64, "linear", None), row(8192, "linear", None, status="failed")]
    lines = format_table(rows).splitlines()
    width = len(lines[0])
    assert width <= 110 and lines[1] == "-" * width
    assert [len(text) for text in lines[2:4]] == [width - len("status") + len("ok")] * 2
    assert lines[4].endswith("failed: out of memory: needs 40 GiB")
    key = " ".join(lines[5:])
    assert all(len(text) <= 100 for text in lines[5:]) and "time_s: the solve, seconds" in key
    # every column explained, and where the rest are (iter, rss_MiB and method were not; found by review)
    assert all(f"{name}:" in key for name in ("iter", "rss_MiB", "method")) and "results_columns.txt" in key
    assert "4096x4096" in lines[2] and "sinh0.25" in lines[2] and "1:10" in lines[2] and "11264" in lines[2]
    # each figure under its own heading: wl_drop and bl_rise swapped passed (found by mutation testing)
    head, values = lines[0].split(), lines[2].split()
    assert [values[head.index(h)] for h in ("rel_err", "max_err", "wl_drop", "bl_rise")] == \
        ["1.23e-02", "4.56e-01", "7.89e-01", "1.20e-03"]


def test_batch_is_the_number_of_inputs_and_the_old_inputs_flag_still_reads_it(capsys):
    from xbarsim.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["scale", "--out", "o"]).inputs == scale.DEFAULT_SWEEP.inputs == (1,)
    assert parse(["scale", "--out", "o", "--batch", "1,64"]).inputs == (1, 64)
    assert parse(["scale", "--out", "o", "--inputs", "1,64"]).inputs == (1, 64)
    # --batch is the documented name: `xbarsim solve --inputs` is a file of input vectors
    with pytest.raises(SystemExit):
        main(["scale", "--help"])
    text = capsys.readouterr().out
    assert "--batch B[,...]" in text and "--inputs" not in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "64,abc"], "bad size 'abc'"),
        (["--sizes", "0"], "bad size '0'"),
        (["--r-wire", "1,-2"], "must be finite and >= 0"),
        (["--g-range", "5e-4:1e-4"], "g_min > g_max"),
        (["--g-range", "1e-4"], "expected GMIN:GMAX"),
        # the results table's microsiemens copied back: a sweep of 100-500 S devices ran (found by review)
        (["--g-range", "100:500"], "reaches 500 S, a device of 0.002 ohm: --g-range is in siemens"),
        (["--g-range", "1e300:1e305"], "reaches 1e+305 S"),
        (["--batch", "0"], "positive integer"),
        (["--inputs", "0"], "positive integer"),
        (["--device", "tanh"], "unknown device 'tanh'"),
        (["--workers", "1", "--scheduler", "tcp://127.0.0.1:1"], "not allowed with argument"),
        (["--tol", "2"], "must be in [1e-14, 1)"),
        (["--tol", "1e-30"], "below 1e-14 double precision cannot resolve"),
        (["--seed", "-3"], "seed '-3' must be"),
        (["--workers", "0"], "number of workers '0' must be a positive integer"),  # exited 1, not 2 (review)
        (["--workers", "two"], "number of workers 'two' must be a positive integer"),
        # read as 4 x 6, and --tol 1 refused by the sweep with status 1 (found by mutation testing)
        (["--sizes", "4x5x6"], "bad size '4x5x6'; expected N (an N x N array) or MxN"),
        (["--tol", "1"], "tol '1' must be in [1e-14, 1)"),
        # a window whose top alone is in microsiemens-as-siemens: checked by its g_max, not its g_min
        # (found by mutation testing)
        (["--sizes", "2", "--r-wire", "1", "--g-range", "1e-6:100"], "reaches 100 S, a device of 0.01 ohm"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(tmp_path, capsys, args, message):
    """Malformed values: the parser's refusal, exit status 2 (the help's
    exit-status table), before any file is written."""
    with pytest.raises(SystemExit) as exc:
        main(["scale", "--out", str(tmp_path)] + args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "sinh"], "--device sinh needs --v0"),
        (["--v0", "0.1"], "--v0 applies to sinh devices only"),
        # a 1/N share of the memory below an idle worker's: 1000 spent 5 minutes starting workers (review)
        (["--workers", "100000"], "--workers 100000: a local cluster gives each worker 1/100000 of the machine's"),
        (["--method", "mg", "--r-wire", "0,1"], "--method mg needs every wire segment"),  # was a failed row each
        # value combinations the circuit refuses: each point failed, naming r_wl and left.r (found by review)
        (["--r-wire", "1e-20,1"], "r_terminal (--r-terminal) = 1 ohms is 1e+20 times the 1e-20 ohm wire segments "
         "(--r-wire); beyond 1e+10 double precision cannot resolve a line against its terminal. Give a smaller "
         "terminal resistance (0: ideal), or check --r-wire: 0 makes the wires ideal"),  # it named the terminal only
        (["--r-wire", "1e-200"], "r_wire (--r-wire) = 1e-200 ohms: below 1e-100 ohms"),
        (["--r-terminal", "1e15", "--r-wire", "0.1"], "r_terminal (--r-terminal) = 1e+15 ohms is 1e+16 times"),
        (["--g-range", "0.5:1", "--r-wire", "1e12"], "a device 1e+12 times the wire's conductance"),
        (["--v-read", "1e-320"], "v_read (--v-read) = 9.99989e-321 V, a subnormal double: the solvers scale"),
    ],
)
def test_inconsistent_arguments_give_a_clear_error(tmp_path, capsys, args, message):
    # refused before --out is made: a refused point left it behind, empty (found by review)
    assert main(["scale", "--out", str(tmp_path / "out"), "--sizes", "8"] + args) == 1
    err = capsys.readouterr().err
    assert err.startswith("xbarsim scale: error:") and message in err
    assert not (tmp_path / "out").exists()


# --- --scheduler: bad addresses, peers that are not schedulers, no workers ---

SCALE_8 = ["--sizes", "8", "--r-wire", "1", "--g-range", "100e-6:500e-6", "--no-progress", "--no-plots"]


@pytest.mark.parametrize("address", ["foo", "", "http://127.0.0.1:8786", "tcp://127.0.0.1:99999"])
def test_malformed_scheduler_address_is_refused_before_connecting(tmp_path, capsys, address):
    pytest.importorskip("distributed")
    assert main(["scale", "--out", str(tmp_path / "o"), "--scheduler", address] + SCALE_8) == 1
    err = capsys.readouterr().err
    assert err.startswith("xbarsim scale: error: --scheduler") and "tcp://HOST:PORT" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "results.csv").exists()


class SilentPeer:
    """A loopback TCP server that accepts connections and then either never
    says anything (a hung service) or answers `reply` (another protocol)."""

    def __init__(self, reply=None):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self):
        # Also ends the abandoned connection attempt (its read fails).
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _run_bounded(argv, seconds=60):
    """main(argv) in a thread; None if it is still running after `seconds`
    (a guard against a hang, not a timing check)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("code", main(argv)), daemon=True)
    thread.start()
    thread.join(seconds)
    return box.get("code")


@pytest.mark.parametrize("reply", [None, b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4],
                         ids=["never-answers", "speaks-http"])
def test_scheduler_address_that_is_not_a_dask_scheduler(tmp_path, capsys, monkeypatch, reply):
    pytest.importorskip("distributed")
    monkeypatch.setattr(scale, "SCHEDULER_TIMEOUT_S", 1.0)
    peer = SilentPeer(reply)
    try:
        code = _run_bounded(["scale", "--out", str(tmp_path / "new"), "--scheduler", peer.address] + SCALE_8)
    finally:
        peer.close()
    assert code == 1, "scale hung on a peer that is not a Dask scheduler"
    err = capsys.readouterr().err
    assert err.startswith("xbarsim scale: error:") and peer.address in err
    assert "dask scheduler" in err  # says what to check
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists()  # the folder it made for the run is not left behind, empty


def _fake_backend(connector_error=None, connect_error=None):
    """A Dask comm backend whose connector cannot be built (`connector_error`,
    as ucx:// without UCX-Py) or cannot connect (`connect_error`)."""
    from distributed.comm.core import Connector
    from distributed.comm.registry import Backend

    class FailingConnector(Connector):
        async def connect(self, address, deserialize=True, **kwargs):
            raise connect_error

    class FakeBackend(Backend):
        def get_connector(self):
            if connector_error is not None:
                raise connector_error
            return FailingConnector()

        def get_listener(self, loc, handle_comm, deserialize, **connection_args):
            raise NotImplementedError

        def get_address_host(self, loc):
            return loc.rsplit(":", 1)[0]

        def resolve_address(self, loc):
            return loc

        def get_local_address_for(self, loc):
            return "127.0.0.1"

    return FakeBackend()


@pytest.mark.parametrize("scheme", ["ucx", "broken"])
def test_scheduler_scheme_without_a_usable_transport_is_refused_before_connecting(tmp_path, capsys, monkeypatch,
                                                                                scheme):
    """ucx:// is registered by distributed but cannot be used without UCX-Py:
    the address check let it through, the connection failed with a
    TypeError reported as "did not answer as a Dask scheduler", and the
    half-started Client hung the exit for 20 s with a traceback."""
    pytest.importorskip("distributed")
    from distributed.comm.registry import backends

    from xbarsim import _dask

    if scheme == "broken":
        monkeypatch.setitem(backends, "broken", _fake_backend(
            connector_error=TypeError("Can't instantiate abstract class BrokenConnector (test)")))
    else:
        try:
            backends[scheme].get_connector()
        except KeyError:
            pytest.skip("distributed here has no ucx:// transport")
        except Exception:  # noqa: BLE001 - registered, not usable: the case to test
            pass
        else:
            pytest.skip("ucx:// is usable here (UCX-Py installed)")
    address = f"{scheme}://127.0.0.1:8786"
    code = _run_bounded(["scale", "--out", str(tmp_path / "o"), "--scheduler", address] + SCALE_8)
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"xbarsim scale: error: --scheduler '{address}': Dask's {scheme}:// transport cannot "
                          "be used in this installation")
    assert "tcp://HOST:PORT" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    # xs.transfer_many(scheduler=...) connects through the same function
    with pytest.raises(xs.ParameterError, match=f"Dask's {scheme}:// transport cannot be used"):
        _dask.connect_scheduler(address, "test", timeout=2)


def test_a_client_that_fails_to_start_is_closed(monkeypatch):
    """Dask closes a Client whose connection fails with OSError only; one
    that failed otherwise was left half started, and closing it at exit
    waited 20 s and printed a TimeoutError traceback."""
    distributed = pytest.importorskip("distributed")
    import gc

    from distributed.comm.registry import backends

    from xbarsim import _dask

    monkeypatch.setitem(backends, "failing", _fake_backend(connect_error=TypeError("no connect (test)")))
    address = "failing://127.0.0.1:8786"
    with pytest.raises(xs.ParameterError, match="did not answer as a Dask scheduler .TypeError: no connect"):
        _dask.connect_scheduler(address, "test", timeout=2)
    # type(), not isinstance(): gc also holds dead weak proxies, which raise ReferenceError when asked
    clients = [c for c in gc.get_objects() if issubclass(type(c), distributed.Client) and c._start_arg == address]
    assert clients, "no Client was made"
    assert [c.status for c in clients] == ["closed"] * len(clients)


def test_losing_the_scheduler_stops_the_sweep_without_marking_points_failed(monkeypatch):
    """When the scheduler goes away, Dask cancels every pending future with
    reason "scheduler-connection-lost". Those were written to results.csv as
    failed (136 points), blamed on lost workers, and the command exited 0,
    so a rerun computed nothing. Now the sweep stops with an XbarsimError
    that says to rerun, and records nothing for the unfinished points."""
    distributed = pytest.importorskip("distributed")
    from distributed.client import FutureCancelledError

    class Lost:
        key = "run_point-0"

        def result(self):
            raise FutureCancelledError(self.key, "scheduler-connection-lost")

    class Client:
        status = "closed"
        loop = None

        def submit(self, *args, **kwargs):
            return Lost()

        def cancel(self, futures):
            raise OSError("no scheduler to tell")

    monkeypatch.setattr(distributed, "as_completed", lambda futures, loop=None: iter(futures))
    recorded = []
    points = SweepParams(sizes=((8, 8), (16, 16))).points()
    with pytest.raises(xs.XbarsimError, match="Rerun the same command"):
        scale._run_distributed(points, lambda p, row: recorded.append(row), Client(), 1)
    assert recorded == []


def test_scheduler_without_workers_gives_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scale, "WORKER_WAIT_S", 0.5)
    with loopback_cluster(0) as cluster:
        address = cluster.scheduler_address
        code = _run_bounded(["scale", "--out", str(tmp_path), "--scheduler", address] + SCALE_8)
    assert code == 1
    err = capsys.readouterr().err
    assert "has no workers" in err and f"dask worker {address}" in err
    assert load_results(tmp_path / "results.csv") == []


# --- results.csv that is not this version's ---

def test_foreign_results_csv_is_refused_not_overwritten(tmp_path, capsys):
    foreign = "name,score\nalice,3\nbob,4\n"
    (tmp_path / "results.csv").write_text(foreign)
    with pytest.raises(xs.ParameterError, match="not a results table of xbarsim scale"):
        run_sweep(params(sizes=((8, 8),), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 1
    err = capsys.readouterr().err
    assert "'name,score'" in err and "another --out folder" in err
    assert (tmp_path / "results.csv").read_text() == foreign
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
    # a header that starts as ours but lacks rows and cols is another program's too (taken for an older
    # xbarsim's by its first two columns alone, it was rewritten: found by mutation testing)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.csv").write_text("point_id,status,x\np1,ok,3\n")
    with pytest.raises(xs.ParameterError, match="has the header 'point_id,status,x'"):
        run_sweep(params(sizes=((8, 8),), r_wire=(1.0,)), tmp_path / "a", progress=False, plots=False)
    assert (tmp_path / "a" / "results.csv").read_text() == "point_id,status,x\np1,ok,3\n"


def test_older_xbarsim_results_are_backed_up_and_carried_over(tmp_path, monkeypatch, capsys):
    sweep = params(sizes=((8, 8),), r_wire=(0.1, 1.0))
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    # Another version's column set: point_id, status first as always, then
    # one more column and another order.
    path = tmp_path / "results.csv"
    header, raw = _read_csv(path)
    older = header[:2] + ["gpu"] + header[2:][::-1]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, older)
        writer.writeheader()
        writer.writerows({**r, "gpu": "none"} for r in raw)
    old_text = path.read_text()
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == []  # every row had every current column
    assert [r["rel_error"] for r in rows] == [r["rel_error"] for r in first]
    assert (tmp_path / "results.csv.bak").read_text() == old_text
    assert tuple(_read_csv(path)[0]) == COLUMNS
    err = capsys.readouterr().err
    assert "another xbarsim version's columns" in err and "results.csv.bak" in err
    assert "2 of its 2 row(s) are readable" in err  # rows, the header not counted (found by mutation testing)
    # A second conversion keeps the first backup.
    path.write_text(old_text)
    run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert (tmp_path / "results.csv.bak").read_text() == old_text
    assert (tmp_path / "results.csv.bak2").read_text() == old_text


def test_rows_of_other_sources_are_computed_again_unless_reuse_is_asked(tmp_path, monkeypatch):
    """A resumed sweep took rows that other xbarsim sources had computed
    (an upgrade, a solver fix) as its own, beside the new ones in one table
    and one figure (found by review). The `code` column says which sources
    made a row; a rerun computes the others again, with a warning, unless
    reuse_other_code."""
    sweep = params(sizes=((8, 8),), r_wire=(0.1, 1.0))
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert {r["code"] for r in first} == {scale.code_id()} and len(scale.code_id()) == 16
    path = tmp_path / "results.csv"
    header, raw = _read_csv(path)
    raw[1].update(code="0123456789abcdef", rel_error="0.5")  # another checkout's row, another result
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(raw)
    edited = path.read_text()
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False, reuse_other_code=True)
    assert counter.ids == [] and rows[1]["rel_error"] == 0.5 and path.read_text() == edited
    with pytest.warns(UserWarning, match=r"holds 1 of this sweep's points computed by other xbarsim sources .*"
                                         r"--reuse-other-code"):
        rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == [first[1]["point_id"]]
    assert [r["rel_error"] for r in rows] == [r["rel_error"] for r in first]
    assert [r["point_id"] for r in load_results(path)] == [r["point_id"] for r in first]  # the old row replaced
    assert {r["code"] for r in load_results(path)} == {scale.code_id()}
    # A version before the column: its rows are carried over with the code
    # unknown, and computed again (or reused, if asked).
    old_header = [c for c in header if c != "code"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, old_header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(raw[:1])
    counter.ids.clear()
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False, reuse_other_code=True)
    assert counter.ids == [first[1]["point_id"]] and rows[0]["code"] == ""  # only the missing point computed
    assert rows[0]["rel_error"] == first[0]["rel_error"]
    # A skipped row (tried again anyway) is not counted as one of other sources.
    header, raw = _read_csv(path)
    raw[1].update(status="skipped", code="0123456789abcdef")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(raw)
    counter.ids.clear()
    with pytest.warns(UserWarning, match=r"holds 1 of this sweep's points computed by other xbarsim sources"):
        run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert counter.ids == [first[0]["point_id"], first[1]["point_id"]]


def test_the_reuse_other_code_flag_keeps_rows_of_other_sources(tmp_path, capsys, monkeypatch):
    """xbarsim scale --reuse-other-code (no test reached the flag: a review's
    mutant that dropped it survived)."""
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    path = tmp_path / "results.csv"
    header, raw = _read_csv(path)
    raw[0].update(code="0123456789abcdef")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(raw)
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    capsys.readouterr()
    assert main(["scale", "--out", str(tmp_path), "--reuse-other-code"] + SCALE_8) == 0
    assert counter.ids == [] and "other xbarsim sources" not in capsys.readouterr().err
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    assert len(counter.ids) == 1 and "computed by other xbarsim sources" in capsys.readouterr().err


def test_a_worker_of_other_sources_is_named(tmp_path, monkeypatch):
    """A --scheduler cluster's worker installed from other sources writes
    rows every later run computes again: the run says so, once."""
    def other_worker(point, numba_threads=None):
        return {**REAL_RUN_POINT(point, numba_threads), "code": "fedcba9876543210"}

    monkeypatch.setattr(scale, "run_point", other_worker)
    with pytest.warns(UserWarning) as caught:
        run_sweep(params(sizes=((8, 8),), r_wire=(0.1, 1.0)), tmp_path, progress=False, plots=False)
    said = [str(w.message) for w in caught if "runs other xbarsim sources" in str(w.message)]
    assert len(said) == 1 and "(code fedcba9876543210)" in said[0] and scale.code_id() in said[0]

    def old_worker(point, numba_threads=None):  # a version before the column writes none
        return {k: v for k, v in REAL_RUN_POINT(point, numba_threads).items() if k != "code"}

    monkeypatch.setattr(scale, "run_point", old_worker)
    with pytest.warns(UserWarning, match=r"runs other xbarsim sources \(a version before the code column\)"):
        run_sweep(params(sizes=((8, 8),), r_wire=(0.1, 1.0)), tmp_path / "old", progress=False, plots=False)


def test_no_plots_removes_an_earlier_sweeps_figures_and_says_so(tmp_path, capsys):
    """--no-plots left the figures of an earlier sweep beside the newer
    results.csv, showing other rows without a word (found by review)."""
    assert SCALE_8[-1] == "--no-plots"
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8[:-1]) == 0
    assert all((tmp_path / name).is_file() for name in scale.FIGURES)
    capsys.readouterr()
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    assert not any((tmp_path / name).exists() for name in scale.FIGURES)
    err = capsys.readouterr().err
    assert "removed the earlier figures" in err and all(name in err for name in scale.FIGURES)
    assert f"load_results({str(tmp_path / 'results.csv')!r})" in err
    os.symlink(tmp_path / "nowhere.png", tmp_path / scale.FIGURES[0])  # a dangling link goes too
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    assert not os.path.lexists(tmp_path / scale.FIGURES[0]) and "removed the earlier figures" in capsys.readouterr().err
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    assert "removed" not in capsys.readouterr().err  # nothing left to remove: no note


def _failing_appends(monkeypatch, error):
    """Make scale's appends to a results.csv fail with `error` (an OSError)
    while ``state["fail"]`` holds: as a read-only or immutable file, or a
    full disk, would (this test runs as root too, which chmod does not stop)."""
    import builtins

    state = {"fail": True}

    def open_(file, mode="r", *args, **kwargs):
        if state["fail"] and "a" in mode and Path(file).name == "results.csv":
            raise error
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(scale, "open", open_, raising=False)
    return state


def test_results_csv_that_cannot_be_written_is_refused_before_computing(tmp_path, capsys, monkeypatch):
    """An unwritable results.csv in a writable folder: the sweep computed a
    point, then stopped with a PermissionError traceback (found by review)."""
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 0
    before = (tmp_path / "results.csv").read_text()
    capsys.readouterr()
    _failing_appends(monkeypatch, PermissionError(1, "Operation not permitted"))
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    argv = ["scale", "--out", str(tmp_path), "--sizes", "8,12", "--r-wire", "2", "--g-range", "100e-6:500e-6",
            "--no-progress", "--no-plots"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"xbarsim scale: error: {tmp_path / 'results.csv'} is not writable (Operation not "
                          "permitted)")
    assert "Traceback" not in err
    assert counter.ids == []
    assert (tmp_path / "results.csv").read_text() == before
    with pytest.raises(xs.ParameterError, match="is not writable"):  # the Python API too
        run_sweep(params(sizes=((8, 8),), r_wire=(2.0,)), tmp_path, progress=False, plots=False)
    assert counter.ids == []


def test_results_csv_that_fails_mid_sweep_gives_a_clear_error(tmp_path, capsys, monkeypatch):
    """A write that fails once the sweep runs (a full disk) is an error that
    says what is saved, not an OSError traceback."""
    state = _failing_appends(monkeypatch, OSError(28, "No space left on device"))
    state["fail"] = False  # the check before the sweep passes

    def run_point(point, numba_threads=None):
        state["fail"] = True  # then the disk fills up
        return REAL_RUN_POINT(point, numba_threads)

    monkeypatch.setattr(scale, "run_point", run_point)
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"xbarsim scale: error: could not write {tmp_path / 'results.csv'} (No space left on "
                          "device); the points finished before are saved there")
    assert "rerun the same command to resume" in err and "Traceback" not in err
    assert load_results(tmp_path / "results.csv") == []


# --- figures of ideal wires ---

def test_ctrl_c_while_figures_are_drawn_keeps_the_earlier_set(tmp_path, monkeypatch):
    """Ctrl-C while the figures were saved left a cut-short PNG (124 bytes)
    beside the earlier sweep's other figures (found by review). They are put
    in place together: the earlier set stays whole, and no partial file is
    left."""
    from matplotlib.figure import Figure

    rows = run_sweep(params(sizes=((8, 8), (16, 16)), r_wire=(1.0, 10.0)), tmp_path, progress=False, plots=False)
    plot_results([r for r in rows if r["r_wire_ohm"] == 1.0], tmp_path)
    earlier = {name: (tmp_path / name).read_bytes() for name in scale.FIGURES}
    real_savefig = Figure.savefig
    saved = []

    def savefig(fig, path, *args, **kwargs):
        if saved:  # the second figure: cut short by Ctrl-C
            Path(path).write_bytes(b"\x89PNG\r\n\x1a\n cut short")
            raise KeyboardInterrupt
        saved.append(path)
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(KeyboardInterrupt):
        plot_results(rows, tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in scale.FIGURES} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(scale.FIGURES + ("results.csv", "results_columns.txt"))
    # uninterrupted, the new set replaces the earlier one
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    paths = plot_results(rows, tmp_path)
    assert [p.name for p in paths] == list(scale.FIGURES)
    assert all(p.read_bytes() != earlier[p.name] for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(scale.FIGURES + ("results.csv", "results_columns.txt"))


def test_an_iterations_panel_of_one_count_has_whole_ticks(tmp_path, monkeypatch):
    """Every point at one iteration count (a direct solve's 1): the integer
    locator fell back to ticks 0.945 ... 1.050 (found by review)."""
    import matplotlib.pyplot as plt

    rows = run_sweep(params(sizes=((8, 8), (16, 16)), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    assert len({r["iterations"] for r in rows}) == 1
    ticks = []
    real_close = plt.close

    def close(fig):
        fig.canvas.draw()
        for ax in fig.axes:
            if "iterations" in ax.get_ylabel().lower():
                lo, hi = ax.get_ylim()
                ticks.append([t for t in ax.get_yticks() if lo <= t <= hi])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert ticks and all(len(t) >= 2 and all(float(v).is_integer() for v in t) for t in ticks), ticks
    assert all(rows[0]["iterations"] in t for t in ticks)


def test_ideal_wire_figures_say_there_is_no_ir_drop(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    sweep = params(sizes=((8, 8), (16, 16)), r_wire=(0.0,), r_terminal=0.0)
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    texts = []  # the panels' notes, one list per figure in drawing order
    real_close = plt.close

    def close(fig):
        texts.append([t.get_text() for ax in fig.axes for t in ax.texts])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No artists with labels" legend warning, no log-axis warning
        paths = plot_results(rows, tmp_path)
    assert [p.name for p in paths] == ["error_vs_size.png", "time_vs_size.png", "ir_drop_vs_size.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    ir_texts = texts[2]
    assert len(ir_texts) == 2 and all("no IR drop" in t and "0 Ω" in t for t in ir_texts)


def test_iterations_label_and_column_say_what_an_ideal_circuit_records(tmp_path, monkeypatch):
    """With ideal wires and terminals the drives fix every node: nothing is
    solved and 0 iterations are recorded, while the CSV column and the
    figure's y label said "1 for a direct solve" (found by review)."""
    import matplotlib.pyplot as plt

    rows = run_sweep(params(sizes=((8, 8),), r_wire=(0.0, 1.0), r_terminal=0.0), tmp_path, progress=False,
                     plots=False)
    assert [(r["r_wire_ohm"], r["method"], r["iterations"]) for r in rows] == [(0.0, "direct", 0),
                                                                              (1.0, "direct", 1)]
    described = {name: text for name, _, text in scale._COLUMN_SPEC}["iterations"]
    assert "1 for a direct linear solve" in described and "0 where the drives fix every node" in described
    labels, titles, log_limits = [], [], []
    real_close = plt.close

    def close(fig):
        labels.append([ax.get_ylabel() for ax in fig.axes])
        titles.append([ax.get_title() for ax in fig.axes])
        log_limits.extend(np.log10(ax.get_ylim()) for ax in fig.axes if ax.get_yscale() == "log")
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    # "direct, linear": a direct sinh point records its Newton steps (found by review); a direct
    # linear solve that refined reports 2 (found by a review of the figures)
    # the detail in the title: in the axis label it ran into the figure's title and legend (found by review)
    assert labels[1][1] == "iterations"
    # log axes span whole decades: points under the lowest labelled decade read as off the scale
    assert log_limits and all(np.allclose(lim, np.round(lim)) and lim[1] > lim[0] for lim in log_limits)
    # the panel says which method solved which size, and counts no Newton steps for linear devices
    assert titles[1][1] == "Solver iterations\n(direct 8²)\ndirect, linear: 1 + refinements; all nodes fixed: 0"


@pytest.mark.parametrize("devices, expected", [((("sinh", 0.25),), "sinh devices, V0 = 0.25 V"),
                                               ((("linear", None),), "linear devices")])
def test_figures_name_the_device_model_shared_by_every_point(tmp_path, monkeypatch, devices, expected):
    """The legend names the device only when it varies between points; a
    sweep of sinh devices alone looked exactly like a linear one."""
    import matplotlib.pyplot as plt

    rows = run_sweep(params(sizes=((8, 8),), r_wire=(1.0,), devices=devices), tmp_path, progress=False,
                     plots=False)
    titles = []
    real_close = plt.close

    def close(fig):
        titles.append(fig._suptitle.get_text())
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert len(titles) == 3 and all(expected in t for t in titles)
    assert all(t.endswith("; r: per wire segment") for t in titles)  # the legend's "r = 1 Ω" is a segment's
    # the one window, in µS: the same numbers labelled mS passed every test (found by mutation testing)
    assert all("G uniform in [100, 500] µS" in t for t in titles)


def test_figures_do_not_name_one_read_voltage_or_terminal_when_they_vary(tmp_path, monkeypatch):
    """The subtitle took V_read and R_term from the first point even when
    they varied between points (possible through the Python API); they are
    in the legend then, and the subtitle leaves them out."""
    import matplotlib.pyplot as plt

    points = [ScalePoint(8, 8, 1.0, 1e-4, 5e-4, v_read=v, r_terminal=rt, method="direct")
              for v in (0.2, 0.5) for rt in (1.0, 3.0)]
    rows = run_sweep(points, tmp_path, progress=False, plots=False)
    figures = []
    real_close = plt.close

    def close(fig):
        labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        figures.append((fig._suptitle.get_text().split("\n", 1)[1], labels))
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert len(figures) == 3
    for subtitle, labels in figures:
        assert "0.2 V" not in subtitle and "0.5 V" not in subtitle and "R_term" not in subtitle
        assert "inputs U[0, V_read]" in subtitle
        assert sorted(labels) == sorted(f"r = 1 Ω, V_read = {v:g} V, R_term = {rt:g} Ω"
                                        for v in (0.2, 0.5) for rt in (1, 3))
    # one value each: named in the subtitle, as before
    figures.clear()
    plot_results([r for r in rows if r["v_read_v"] == 0.5 and r["r_terminal_ohm"] == 3.0], tmp_path)
    assert all("inputs U[0, 0.5 V]; R_term = 3 Ω" in subtitle for subtitle, _ in figures)


def _drawn_figures(monkeypatch):
    """Patch plt.close to record, per figure: x labels, and each line's
    (legend label, x data), of every panel."""
    import matplotlib.pyplot as plt

    figures = []
    real_close = plt.close

    def close(fig):
        figures.append([(ax.get_xlabel(), [(line.get_label(), list(line.get_xdata())) for line in ax.get_lines()])
                        for ax in fig.axes])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    return figures


def test_arrays_that_are_not_square_are_told_apart_on_the_size_axis(tmp_path, monkeypatch):
    """The size axis was √(M·N): 8 x 16 and 16 x 8 fell on one x, joined in
    one line. Arrays that are not all square are drawn against their cells,
    one line per aspect ratio M:N; square sweeps keep N."""
    sweep = params(sizes=((8, 16), (16, 8), (16, 32), (32, 32)), r_wire=(1.0,))
    rows = run_sweep(sweep, tmp_path, progress=False, plots=False)
    figures = _drawn_figures(monkeypatch)
    plot_results(rows, tmp_path)
    assert len(figures) == 3
    for panels in figures:
        for xlabel, lines in panels:
            assert sorted((label, x) for label, x in lines) == [
                ("r = 1 Ω, M:N = 1:1", [1024]), ("r = 1 Ω, M:N = 1:2", [128, 512]),
                ("r = 1 Ω, M:N = 2:1", [128])]
            assert xlabel == "array size M·N (cells; M:N in the legend)"
    # one aspect ratio, not square: named on the axis
    figures.clear()
    plot_results([r for r in rows if r["rows"] < r["cols"]], tmp_path)
    assert {xlabel for panels in figures for xlabel, _ in panels} == {"array size M·N (cells; M:N = 1:2 throughout)"}
    # square arrays: against N, as before
    figures.clear()
    plot_results([r for r in rows if r["rows"] == r["cols"]], tmp_path)
    assert {xlabel for panels in figures for xlabel, _ in panels} == {"array size N (N × N cells)"}
    assert {(label, tuple(x)) for panels in figures for _, lines in panels for label, x in lines} == {
        ("r = 1 Ω", (32.0,))}


def test_every_line_looks_different_and_windows_are_in_order_of_value(tmp_path, monkeypatch):
    """Lines of one wire resistance were told apart by 4 line styles x 5
    markers only: from the 21st other setting they repeated, and the legend
    was ambiguous. And the windows were ordered as text: [100, 500],
    [1000, 5000], [10, 50] µS (found by review)."""
    import matplotlib.pyplot as plt

    (row,) = run_sweep(params(sizes=((4, 4),), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    windows = ((1e-3, 5e-3), (1e-5, 5e-5), (1e-4, 5e-4))
    rows = [dict(row, g_min_s=lo, g_max_s=hi, seed=seed, r_wire_ohm=r)
            for lo, hi in windows for seed in range(9) for r in (1.0, 2.0)]  # 27 settings besides r
    figures = []
    real_close = plt.close

    def close(fig):
        looks = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in fig.axes[0].get_lines()]
        figures.append((looks, [t.get_text() for legend in fig.legends for t in legend.get_texts()]))
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert len(figures) == 3
    for looks, labels in figures:
        assert len(looks) == len(set(looks)) == len(rows) == len(labels)
        assert [label for label in labels if label.startswith("r = 1 Ω") and label.endswith("seed 0")] == [
            f"r = 1 Ω, G ∈ [{lo:g}, {hi:g}] µS, seed 0" for lo, hi in ((10, 50), (100, 500), (1000, 5000))]


@pytest.mark.parametrize("n_settings", [2, 24])
def test_the_legend_hides_no_point_and_fits_the_figure(tmp_path, monkeypatch, n_settings):
    """A few series had their legend inside the first panel, where it hid
    points; many long labels in three columns ran off both sides of the
    figure (found by review). The legend is below the panels, inside the
    figure, in as many columns as its labels allow."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    (row,) = run_sweep(params(sizes=((4, 4),), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    if n_settings == 2:
        rows = [dict(row, r_wire_ohm=r) for r in (1.0, 2.0)]
    else:  # windows x seeds x aspect ratios x devices and batches: long labels
        rows = [dict(row, g_min_s=lo * 1e-6, g_max_s=5 * lo * 1e-6, seed=seed, rows=m, cols=64 // m, device=device,
                     v0_v=v0, inputs=b)
                for lo in (1, 1000) for seed in range(3) for m in (2, 8)
                for device, v0, b in (("linear", None, 1), ("sinh", 0.15, 3))]
    assert len(rows) == n_settings
    figures = []
    real_close = plt.close

    def close(fig):
        renderer = FigureCanvasAgg(fig).get_renderer()
        boxes = [legend.get_window_extent(renderer) for legend in fig.legends]
        inside = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        panels = [ax.get_window_extent(renderer) for ax in fig.axes]
        figures.append((fig.bbox, boxes, inside, panels))
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert len(figures) == 3
    for frame, boxes, inside, panels in figures:
        assert inside == [] and len(boxes) == 1
        (box,) = boxes
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        assert all(not box.overlaps(panel) for panel in panels)


# --- sweeps where points fail ---

def test_no_successful_point_exits_3_and_says_why(tmp_path, capsys):
    # Refused by the memory guard: --retry cannot help, smaller sizes can.
    (tmp_path / "error_vs_size.png").write_bytes(b"an earlier sweep's figure")  # not this sweep's: removed
    code = main(["scale", "--out", str(tmp_path), "--sizes", "1000000000", "--r-wire", "1", "--g-range",
                 "100e-6:500e-6", "--no-progress"])
    assert code == scale.EXIT_NONE_OK == 3
    captured = capsys.readouterr()
    assert "0 ok, 1 skipped" in captured.out
    err = captured.err
    assert "no point of this sweep succeeded" in err and "MemoryLimitError" in err
    assert "smaller --sizes" in err and "--retry" not in err
    assert "no figures written" in err and "removed the earlier figures" not in err  # removed without a note
    assert not list(tmp_path.glob("*.png"))


def test_points_that_did_not_converge_exit_3_without_the_retry_hint(tmp_path, capsys, monkeypatch):
    def solve(xbar, **kw):
        raise xs.ConvergenceError("PCG did not reach tol=1e-30 (test)")

    monkeypatch.setattr(xs, "solve", solve)
    assert main(["scale", "--out", str(tmp_path)] + SCALE_8) == 3
    err = capsys.readouterr().err
    assert "1 x failed: ConvergenceError: PCG did not reach tol=1e-30 (test)" in err
    assert "looser --tol" in err and "Rerun with --retry" not in err and "rerun with --retry" not in err


def test_points_whose_device_currents_overflow_get_the_hint_that_helps(tmp_path, capsys):
    """sinh devices at 600 V0 between fixed nodes overflow: a looser --tol
    or another method cannot help, which was the only hint (found by
    review)."""
    assert main(["scale", "--out", str(tmp_path), "--sizes", "4", "--r-wire", "0", "--r-terminal", "0",
                 "--g-range", "1e-4:5e-4", "--device", "sinh", "--v0", "0.001", "--v-read", "1",
                 "--no-progress", "--no-plots"]) == 3
    err = capsys.readouterr().err
    assert "overflow double precision" in err and "lower --v-read or a larger --v0" in err
    assert "looser --tol" not in err


def test_a_stalled_sinh_point_gets_the_hint_that_helps(tmp_path, capsys):
    """A sinh point whose source stepping stalled (v0 = 1e-300 V) was told
    to try a looser --tol or --method direct, which it had run; the
    solver's own advice was cut from the table (found by review)."""
    assert main(["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "1", "--g-range", "1e-4:5e-4",
                 "--device", "sinh", "--v0", "1e-300", "--no-progress", "--no-plots"]) == 3
    err = capsys.readouterr().err
    assert "A sinh point whose Newton steps stalled needs a lower --v-read or a larger --v0" in err
    assert "looser --tol" not in err


def test_every_series_of_a_figure_has_its_own_marker(tmp_path, monkeypatch):
    """Two windows at one size were the same dark circle: a one-point
    series draws no line, so its linestyle told nothing (found by review)."""
    import matplotlib.axes

    drawn = []
    real = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append((id(self), tuple(kwargs.get("color", ())), kwargs.get("marker"), kwargs.get("linestyle")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    assert main(["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "1", "--g-range",
                 "1e-5:1e-4,1e-4:5e-4", "--no-progress"]) == 0
    by_panel = {}
    for panel, color, marker, _ in drawn:
        if marker is not None:
            by_panel.setdefault(panel, []).append((color, marker))
    assert by_panel and all(len(set(styles)) == len(styles) == 2 for styles in by_panel.values()), by_panel
    assert all(len({m for _, m in styles}) == 2 for styles in by_panel.values())


def test_six_one_point_series_get_six_markers(tmp_path, monkeypatch):
    """With five markers, the sixth window at one size was the first's
    circle: a one-point series shows no line style (found by review)."""
    import matplotlib.axes

    markers = {}
    real = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        markers.setdefault(id(self), []).append(kwargs.get("marker"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    windows = ((1e-6, 1e-5), (2e-6, 2e-5), (5e-6, 5e-5), (1e-5, 1e-4), (2e-5, 2e-4), (1e-4, 5e-4))
    run_sweep(params(sizes=(8,), r_wire=(1.0,), g_ranges=windows), tmp_path, progress=False)
    drawn = [m for m in markers.values() if len(m) == len(windows)]
    assert drawn and all(len(set(m)) == len(windows) and None not in m for m in drawn), markers


@pytest.mark.parametrize("client, hint", [
    ("tcp://127.0.0.1:8786", r"connect to it first: client=distributed.Client\(ADDRESS\)"),
    (2, "pass a distributed.Client, or None"),
])
def test_run_sweep_refuses_a_client_that_is_not_one_before_writing(tmp_path, client, hint):
    """An address or a number raised AttributeError at the first submit,
    after results.csv was made (found by review)."""
    with pytest.raises(xs.ParameterError, match=hint):
        run_sweep(params(sizes=(8,), r_wire=(1.0,)), tmp_path / "out", client=client, progress=False)
    assert not (tmp_path / "out").exists()


def test_run_sweep_restores_the_callers_numba_threads(tmp_path):
    """numba_threads=1 in this process stayed set after the sweep (found by
    review)."""
    import numba

    before = numba.get_num_threads()
    run_sweep(params(sizes=(8,), r_wire=(1.0,)), tmp_path, progress=False, plots=False, numba_threads=1)
    assert numba.get_num_threads() == before


def test_retry_hint_only_for_points_lost_with_a_worker(tmp_path, capsys, monkeypatch):
    class KilledWorker(Exception):  # what distributed raises for a worker that died
        pass

    def run_point(point, numba_threads=None):
        if point.rows == 16:
            return scale._failed_row(point, "failed", KilledWorker("worker died (test)"))
        return REAL_RUN_POINT(point, numba_threads)

    monkeypatch.setattr(scale, "run_point", run_point)
    argv = ["scale", "--out", str(tmp_path), "--sizes", "8,16", "--r-wire", "1", "--g-range", "100e-6:500e-6",
            "--no-progress", "--no-plots"]
    assert main(argv) == 0  # one point succeeded
    err = capsys.readouterr().err
    assert "no point of this sweep succeeded" not in err
    assert "1 point(s) were lost with their Dask worker: rerun with --retry" in err
    monkeypatch.setattr(scale, "run_point", REAL_RUN_POINT)
    assert main(argv + ["--retry"]) == 0
    assert capsys.readouterr().err == ""
    assert [r["status"] for r in load_results(tmp_path / "results.csv")] == ["ok", "ok"]


def test_memory_refusal_next_to_ok_points_exits_0_with_a_hint(tmp_path, capsys):
    code = main(["scale", "--out", str(tmp_path), "--sizes", "8,1000000000", "--r-wire", "1", "--g-range",
                 "100e-6:500e-6", "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert "1 point(s) were refused by the memory guard" in err and "--retry" not in err
    assert (tmp_path / "error_vs_size.png").stat().st_size > 0


def test_ctrl_c_prints_one_line_and_the_sweep_resumes(tmp_path, capsys, monkeypatch):
    argv = ["scale", "--out", str(tmp_path), "--sizes", "8,16", "--r-wire", "0.1,1,10", "--g-range",
            "100e-6:500e-6", "--method", "direct", "--no-progress", "--no-plots"]
    monkeypatch.setattr(scale, "run_point", CountingRunPoint(fail_after=2))
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"xbarsim scale: interrupted: 2 of 6 points saved in {tmp_path / 'results.csv'}; "
        "rerun the same command to resume."]
    assert captured.out == ""
    assert len(load_results(tmp_path / "results.csv")) == 2
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    assert main(argv) == 0
    assert len(counter.ids) == 4
    assert len(load_results(tmp_path / "results.csv")) == 6


def test_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scale", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and "\n  3 " in out and "\n  130 " in out


def test_example_runs(tmp_path, capsys):
    """The example runs, and answers its title for a 5 % budget from its own
    rows (the budget, min for max and a flipped comparison went unseen:
    found by a mutation audit)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "scaling_study.py"
    result = runpy.run_path(str(example), run_name="scaling_study")
    rows = result["main"](tmp_path)
    assert len(rows) >= 3 and all(r["status"] == "ok" for r in rows), rows
    out = capsys.readouterr().out
    error = {(r["rows"], r["r_wire_ohm"]): r["rel_error"] for r in rows}
    answers = []
    for r in (0.1, 1.0, 10.0):
        (line,) = [ln for ln in out.splitlines()
                   if ln.startswith(f"largest array with an MVM error below 5 % on {r:g} ohm segments: ")]
        fits = [m for m in (16, 32, 64) if error[(m, r)] < 0.05]
        answer = line.split(" segments: ", 1)[1]
        assert answer.startswith(f"{max(fits)}x{max(fits)}" if fits else "none of these"), line
        answers.append(answer)
    assert answers[0] == "32x32" and answers[2].startswith("none of these")  # as measured: both kinds of answer


def test_run_sweep_refuses_a_file_as_its_folder_and_the_example_says_so(tmp_path):
    """run_sweep(params, "a-file") raised a raw FileExistsError, a traceback
    from ``python examples/scaling_study.py a-file`` (found by review)."""
    import subprocess
    import sys

    (tmp_path / "f").write_text("x")
    with pytest.raises(xs.ParameterError, match=r"out_dir '.*f' is a file; give a folder"):
        run_sweep(params(sizes=((8, 8),)), tmp_path / "f", progress=False)
    # a path under a file and a dangling link: raw NotADirectoryError / FileExistsError (review of the fix)
    os.symlink(tmp_path / "gone", tmp_path / "link")
    for where, message in ((tmp_path / "f" / "sub", r"cannot be created \(Not a directory\); give a folder"),
                           (tmp_path / "link", r"is a symbolic link to '.*gone', which does not exist")):
        with pytest.raises(xs.ParameterError, match=message):
            run_sweep(params(sizes=((8, 8),)), where, progress=False)
    example = Path(__file__).resolve().parents[1] / "examples" / "scaling_study.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path / "f")], capture_output=True, text=True)
    assert done.returncode == 2 and "is a file; give a folder" in done.stderr and "Traceback" not in done.stderr


def test_example_shell_command_is_the_same_study_larger():
    """The example's docstring gives the shell command of "the same study,
    larger"; it left out the example's one window (100-500 uS), so the
    command also swept the default 1-10 uS window."""
    import dataclasses
    import shlex

    from xbarsim.cli import build_parser

    example = Path(__file__).resolve().parents[1] / "examples" / "scaling_study.py"
    namespace = runpy.run_path(str(example), run_name="scaling_study")
    (command,) = [line.strip() for line in namespace["__doc__"].splitlines()
                  if line.strip().startswith("xbarsim scale ")]
    shell = scale._params_from_args(build_parser().parse_args(shlex.split(command)[1:]))

    class Stop(Exception):
        pass

    def run_sweep(params, out_dir, **kwargs):
        namespace["params"] = params
        raise Stop

    main_globals = namespace["main"].__globals__
    real, main_globals["run_sweep"] = main_globals["run_sweep"], run_sweep
    try:
        with pytest.raises(Stop):
            namespace["main"]("unused")
    finally:
        main_globals["run_sweep"] = real
    ours = namespace["params"]
    assert max(shell.sizes) > max(ours.sizes)  # larger
    assert dataclasses.replace(shell, sizes=ours.sizes) == ours  # the same study otherwise


def test_size_axis_setup_leaves_the_tick_labels_of_a_log_y_axis_within_a_decade():
    """`_setup_size_axis` drops the minor ticks of the size axis only: it
    used to drop them on both, and a log y axis spanning less than a decade
    (IR drop 0.2-0.6) then had no tick label at all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xbarsim.scale import _setup_size_axis

    fig, ax = plt.subplots()
    ax.plot([64, 128, 256], [0.21, 0.36, 0.58])
    ax.set_yscale("log")
    _setup_size_axis(ax, [dict(rows=n, cols=n) for n in (64, 128, 256)], square=True)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=False) + ax.get_yticklabels(minor=True)
              if t.get_visible() and t.get_text() and 0.21 <= t.get_position()[1] <= 0.58]
    plt.close(fig)
    assert labels, "no y tick label inside the data's range"


def test_ctrl_c_from_a_terminal_with_workers_prints_one_line(tmp_path):
    """A terminal's Ctrl-C goes to the whole process group, Dask's worker
    processes included: each printed its own KeyboardInterrupt traceback
    (73 lines of stderr for two workers), and a Ctrl-C while the cluster
    started left an AssertionError from distributed's exit hook. The workers
    now ignore SIGINT and the command prints its one line. (The signal is
    sent once the first point is saved, so the cluster is up.)"""
    pytest.importorskip("distributed")
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "xbarsim", "scale", "--out", str(out), "--sizes", "8,16,32,64,128",
           "--r-wire", "0.5,1,2", "--device", "linear,sinh", "--v0", "0.15", "--inputs", "1,8",
           "--no-progress", "--no-plots", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's job
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "results.csv").is_file() and len(load_results(out / "results.csv")) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [err.strip()], err
    assert err.startswith("xbarsim scale: interrupted:")


_CTRL_C_WHILE_WORKERS_START = r"""
import os, signal, sys
import distributed
from xbarsim.cli import main

real_init = distributed.LocalCluster.__init__

def init(self, *args, **kwargs):
    os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C (to the process group) as the workers start
    real_init(self, *args, **kwargs)
    os.killpg(0, signal.SIGINT)  # and another once they run, the cluster not yet returned

distributed.LocalCluster.__init__ = init
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_while_the_workers_start_is_not_lost(tmp_path):
    """The command ignored SIGINT while its Dask workers started (so that
    they would inherit "ignored"): a Ctrl-C in that window was dropped, and
    the sweep ran to its end and exited 0 (found by review). It is now
    raised once the cluster is up: one line, exit 130, nothing computed, no
    worker's traceback."""
    pytest.importorskip("distributed")
    import subprocess
    import sys

    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_WORKERS_START, "scale", "--out", str(out),
                           "--workers", "1"] + SCALE_8, capture_output=True, text=True, timeout=240,
                          start_new_session=True)  # its own process group, as a terminal's job
    assert proc.returncode == 130, proc.stderr
    # (it named a results.csv never written, and left the folder; found by review)
    assert proc.stderr.strip().splitlines() == [
        "xbarsim scale: interrupted before the first point; nothing was written. Rerun the same command to start."]
    assert proc.stdout == "" and not out.exists()


def test_progress_bar_on_a_terminal_leaves_no_tail_of_a_longer_note():
    """On a terminal the bar is redrawn after a carriage return, which does
    not clear the line: after the note "8x8 r=20", "8x8 r=1" read
    "8x8 r=10" (found by review)."""
    import io

    from xbarsim._progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with Progress(3, label="scale", stream=stream) as bar:
        bar.update(1, note="8x8 r=20")
        bar.update(1, note="8x8 r=1")
    screen = []  # what the terminal shows after each redraw: "\r" moves to the line's start, overwrites
    line = ""
    for part in stream.getvalue().split("\r")[1:]:
        text, newline, _ = part.partition("\n")
        line = text + line[len(text):]
        screen.append(line.rstrip())
        if newline:
            line = ""
    assert len(screen) == 4
    # the first step has no estimate yet (a first step that compiled made one far too long)
    assert screen[1].endswith("eta      ?  8x8 r=20") and screen[2].endswith("s 8x8 r=1")
    assert screen[3].startswith("scale [") and screen[3].endswith("eta    0.0s")
    # the last draw ends its line, so what is printed next starts on its own
    # (without the newline it passed every test: found by mutation testing)
    assert stream.getvalue().endswith("\n")


def test_the_bar_fills_in_proportion_and_is_full_only_when_every_step_is_done():
    """The bar's fill is the done fraction of its width, truncated as the
    decile is: 59 of 60 steps drew a full bar ("[####...#] 59/60") when it
    was rounded (found by mutation testing)."""
    import io

    from xbarsim._progress import Progress

    def bar(done, total, width=30):
        stream = io.StringIO()
        with Progress(total, stream=stream, width=width) as progress:
            progress.update(done)
        last = stream.getvalue().splitlines()[-1]  # the final line
        return last[last.index("[") + 1:last.index("]")]

    assert bar(59, 60) == "#" * 29 + "."
    assert bar(60, 60) == "#" * 30
    assert bar(1, 3, width=10) == "###" + "." * 7
    assert bar(0, 5) == "." * 30


def test_progress_in_a_log_prints_at_each_tenth_and_at_least_every_minute(monkeypatch):
    """Off a terminal the bar printed at each 10 % only: an 11-hour run
    said nothing for an hour (found by review)."""
    import io

    from xbarsim import _progress
    from xbarsim._progress import Progress

    clock = [0.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: clock[0])
    stream = io.StringIO()
    with Progress(1000, label="program", stream=stream) as bar:
        for k in range(1, 300):
            clock[0] = k * 1.0  # one step a second: 10 % every 100 s
            bar.update(1)
    lines = stream.getvalue().splitlines()
    done = [int(line.split("] ")[1].split("/")[0]) for line in lines]
    # the start, then every 60 s and each new tenth, and the final line
    assert done == [0, 60, 100, 160, 200, 260, 299], done


def test_progress_bar_left_by_an_exception_gives_no_estimate():
    """After Ctrl-C the last line read "23/90000 ... eta 0.0s" of a run
    with 15 hours to go (found by review); a finished bar still ends at 0 s."""
    import io

    from xbarsim._progress import Progress

    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(10, label="program", stream=stream) as bar:
            bar.update(3)
            raise KeyboardInterrupt
    assert stream.getvalue().splitlines()[-1].rstrip().endswith(" 3/10     0.0s  eta stopped")
    stream = io.StringIO()
    with Progress(2, label="program", stream=stream) as bar:
        bar.update(2)
    assert stream.getvalue().splitlines()[-1].rstrip().endswith("eta    0.0s")
    # an exception after the last step stopped nothing still to do: 0 s, not
    # "stopped" (a bar reading "stopped" at 2/2 passed every test: found by
    # mutation testing)
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(2, label="program", stream=stream) as bar:
            bar.update(2)
            raise KeyboardInterrupt
    last = stream.getvalue().splitlines()[-1].rstrip()
    assert "] 2/2 " in last and last.endswith("eta    0.0s")


def test_progress_estimate_is_the_pace_since_the_first_step_times_the_steps_left(monkeypatch):
    """The estimate leaves the first step out: its pace is measured from the
    first step on and multiplies the steps still to do. Counting all the
    steps (done ones too) passed every test (found by mutation testing)."""
    import io

    from xbarsim import _progress
    from xbarsim._progress import Progress

    clock = [0.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: clock[0])
    stream = io.StringIO()
    with Progress(10, label="fit", stream=stream) as bar:
        clock[0] = 30.0  # a first step that compiled: left out of the estimate
        bar.update(1)
        clock[0] = 32.0  # then 2 s a step, 8 steps to go
        bar.update(1)
        lines = stream.getvalue().splitlines()
        assert lines[-2].rstrip().endswith("eta      ?") and lines[-1].rstrip().endswith("eta   16.0s")


def test_progress_counts_no_further_than_its_total():
    """A bar told of more steps than its total reads n/n, not past it."""
    import io

    from xbarsim._progress import Progress

    stream = io.StringIO()
    with Progress(3, label="work", stream=stream) as bar:
        bar.update(2)
        bar.update(5)
        assert bar.done == 3
    assert " 3/3 " in stream.getvalue().splitlines()[-1] and "5/3" not in stream.getvalue()


def test_progress_bar_with_no_stderr_at_all_is_silent(monkeypatch):
    """A process started with stderr closed (``2>&-``, ``sys.stderr is
    None``) and an API call with its progress on (``transfer_many(...,
    progress=True)``): the bar has no stream and stays silent, where writing
    to None raised AttributeError (found by mutation testing)."""
    import sys

    from xbarsim._progress import Progress

    monkeypatch.setattr(sys, "stderr", None)
    with Progress(3, label="work") as bar:
        bar.update(2)
        bar.update(1)
    assert not bar.enabled and bar.done == 3


# --- time_s is the solve's, not the kernels' compilation ---

_COMPILES_IN_TIMED_SOLVE = r"""
import sys
import xbarsim as xs
from numba.core.dispatcher import Dispatcher
from xbarsim.scale import ScalePoint, run_point

def signatures():
    return {f"{name}.{key}": len(value.signatures) for name, module in list(sys.modules.items())
            if name.startswith("xbarsim.kernels") for key, value in vars(module).items()
            if isinstance(value, Dispatcher)}

real_solve = xs.solve
seen = []

def solve(*args, **kwargs):
    seen.append(signatures())  # the last call of a point is its timed solve
    return real_solve(*args, **kwargs)

xs.solve = solve
for rows, cols in ((8, 8), (2, 1000), (128, 128)):
    row = run_point(ScalePoint(rows, cols, 1.0, 1e-4, 5e-4, method="mg"))
    assert row["status"] == "ok", row["message"]
    after = signatures()
    new = sorted(k for k in after if after[k] != seen[-1].get(k, 0))
    print(f"{rows}x{cols}:", " ".join(new) or "-")
"""


def test_a_later_larger_multigrid_point_is_warmed_up_at_its_own_levels():
    """The warm-up array was capped at the first point's size and the kind
    then counted as warm: after an 8 x 8 multigrid point (its own coarsest
    level), a 2 x 1000 or 128 x 128 one compiled the line-smoother and
    restriction kernels of its coarse levels inside its timed solve (10.9 s
    instead of 0.02 s on a fresh install). Counted in a fresh process as
    the kernel signatures that appear during the timed solve: none."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _COMPILES_IN_TIMED_SOLVE], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["8x8: -", "2x1000: -", "128x128: -"]


def test_relative_error_survives_currents_whose_squares_overflow():
    """At 1e300 V drives the currents' squares overflowed the norms: the
    error read "n/a (no current)" while current flowed (found by review).
    The ratio is scale-free, and the same bits where nothing overflows."""
    from xbarsim.scale import _rel_norm

    ref = np.array([[3.0, -4.0], [1.0, 2.0]])
    diff = np.array([[1e-3, 0.0], [-2e-3, 5e-4]])
    plain = float(np.linalg.norm(diff) / np.linalg.norm(ref))
    assert _rel_norm(diff, ref) == plain
    assert _rel_norm(diff * 1e300, ref * 1e300) == pytest.approx(plain, rel=1e-14)
    assert _rel_norm(diff * 1e-300, ref * 1e-300) == pytest.approx(plain, rel=1e-14)
    assert np.isnan(_rel_norm(diff, np.zeros_like(ref)))


def test_relative_error_of_an_error_far_larger_or_a_product_far_smaller():
    """Scaled by the product's largest entry alone, an error 1e228 times the
    product (sinh devices at 600 V0) still overflowed its squares and read
    inf, with a RuntimeWarning; a product below 1e-308 A (1e-320 S
    devices) gave 0 x inf = NaN, an empty cell (found by review). Each is
    now scaled by its own largest entry."""
    import warnings

    from xbarsim.scale import _rel_norm

    ref = np.array([3.0, -4.0])
    diff = np.array([1e-3, 2e-3])
    plain = float(np.linalg.norm(diff) / np.linalg.norm(ref))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _rel_norm(diff * 1e230, ref) == pytest.approx(plain * 1e230, rel=1e-14)
        assert _rel_norm(diff * 1e-318, ref * 1e-310) == pytest.approx(plain * 1e-8, rel=1e-3)  # subnormal digits
        assert _rel_norm(np.zeros(2), ref * 1e-320) == 0.0
    assert np.isnan(_rel_norm(np.array([np.nan, 0.0]), ref))


def test_a_results_file_saved_by_a_spreadsheet_resumes(tmp_path):
    """Saved as "CSV UTF-8", a results.csv starts with a byte-order mark;
    its header then read as another program's, and the sweep refused to
    resume (found by review). The mark is dropped and the points are kept."""
    sweep = params(sizes=((4, 4),), r_wire=(1.0, 2.0))
    first = run_sweep(sweep, tmp_path, progress=False, plots=False)
    path = tmp_path / "results.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    again = run_sweep(sweep, tmp_path, progress=False, plots=False)
    assert [r["finished_utc"] for r in again] == [r["finished_utc"] for r in first]  # not recomputed
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [r["point_id"] for r in load_results(path)] == [r["point_id"] for r in first]


def test_default_sweep_is_the_documented_one():
    """`DEFAULT_SWEEP` as its docstring and ``xbarsim scale --help`` state it
    (N = 64..4096, wires 0.1, 1, 10 ohm, windows 100-500 uS and 1-10 uS,
    linear devices, one input: 42 points), and the command's defaults are
    it. A 1-100 uS second window passed every test (found by mutation
    testing)."""
    from xbarsim.cli import build_parser

    d = scale.DEFAULT_SWEEP
    assert d.sizes == tuple((n, n) for n in (64, 128, 256, 512, 1024, 2048, 4096))
    assert d.r_wire == (0.1, 1.0, 10.0)
    assert d.g_ranges == ((100e-6, 500e-6), (1e-6, 10e-6))
    assert d.devices == (("linear", None),) and d.inputs == (1,)
    assert d.v_read == 0.2 and d.r_terminal == 1.0 and d.method == "auto" and d.tol is None
    assert len(d.points()) == 42
    args = build_parser().parse_args(["scale", "--out", "o"])
    assert tuple(map(tuple, args.g_range)) == d.g_ranges and tuple(args.r_wire) == d.r_wire


def test_sweep_params_take_single_values_and_refuse_what_is_no_grid():
    """``sizes=(16, 32)`` and ``r_wire=1.0`` were a bare TypeError from
    `points` (found by review): N is N x N, as on the command line, and one
    value is a tuple of it."""
    p = SweepParams(sizes=(16, (8, 12)), r_wire=1.0, inputs=2, g_ranges=(1e-4, 5e-4), devices=("sinh", 0.25))
    assert (p.sizes, p.r_wire, p.inputs, p.g_ranges, p.devices) == (
        ((16, 16), (8, 12)), (1.0,), (2,), ((1e-4, 5e-4),), (("sinh", 0.25),))
    assert [(q.rows, q.cols) for q in p.points()] == [(8, 12), (16, 16)]
    # smallest arrays first, by cells: 4 x 64 (256) after 8 x 8 (64), where sorting the (M, N) pairs put it
    # first and passed the tests (found by mutation testing)
    assert list(dict.fromkeys((q.rows, q.cols) for q in SweepParams(sizes=((4, 64), 8)).points())) == [(8, 8), (4, 64)]
    for kw, message in ((dict(sizes=(16.5,)), "is not an array size"), (dict(sizes=((4, 4, 4),)), "(M, N) pair"),
                        (dict(sizes=(float("inf"),)), "is not an array size"), (dict(sizes=(0,)), ">= 1"),
                        (dict(sizes=(float("nan"), 4)), "is not an array size"), (dict(inputs=(2.5,)), "whole numbers"),
                        (dict(r_wire=(-1.0,)), "finite numbers of ohms >= 0"),
                        (dict(r_wire=("1",)), "numbers of ohms"), (dict(g_ranges=((1e-4,),)), "(g_min, g_max)"),
                        (dict(devices=("sinh",)), "(model, v0) pairs"), (dict(inputs=None), "tuple of values"),
                        # 1.5 was cut to 1, and a resume took seed 1's rows for it (found by review)
                        (dict(seed=1.5), "SweepParams.seed = 1.5; a whole number in [0, 2**63)."),
                        (dict(seed=-1), "SweepParams.seed = -1; a whole number"),
                        # raw ValueError / TypeError in `points` (found by review)
                        (dict(devices=(("sinh", "abc"),)), "(model, v0) pairs"),
                        (dict(r_terminal=None), "SweepParams.r_terminal must be a number"),
                        (dict(v_read="0.2"), "SweepParams.v_read must be a number")):
        with pytest.raises(xs.ParameterError, match=re.escape(message)):
            SweepParams(**kw)
    assert SweepParams(method="MG").method == "mg" and SweepParams(method="Direct").points()[0].method == "direct"
    with pytest.raises(xs.ParameterError, match=re.escape("unknown method 'multigrid'; choose one of ('auto', 'mg', "
                                                          "'pcg', 'direct') (did you mean 'mg'?)")):
        SweepParams(method="multigrid")


@pytest.mark.parametrize("kw, message", [
    (dict(tol=1e-20), "tol (--tol): tol = 1e-20 is below what double precision resolves"),
    (dict(tol=5.0), "tol (--tol): tol must be a number in (0, 1)"),
    (dict(seed=-1), "seed (--seed) = -1; a whole number in [0, 2**63)."),
    # NumPy's seeding refused 8.5 rows after results.csv was made; mg on ideal wires was run and
    # recorded failed point by point (found by review)
    (dict(rows=8.5), "rows, cols and inputs must be whole numbers"),
    (dict(inputs=2.5), "rows, cols and inputs must be whole numbers"),
    (dict(rows="8"), "rows, cols and inputs must be whole numbers"),
    (dict(r_wire=0.0, method="mg"), "method 'mg' (--method mg) needs every wire segment to have r > 0"),
    # named with the nearest, as xs.solve names it; a point's method in its own case (it names the point's
    # id and rows), where SweepParams takes any case (found by review)
    (dict(method="mgg"), "unknown method 'mgg'; choose one of ('auto', 'mg', 'pcg', 'direct') (did you mean 'mg'?)"),
    (dict(method="MG"), "method 'MG': give it as 'mg'"),
    (dict(device="sinh", v0="x"), "v0 must be a number"),
    # a v0 on a linear point was taken without the check, and the row recorded a V0 its solve never used
    # (found by mutation testing)
    (dict(device="linear", v0=0.25), "a linear device takes no v0; use device='sinh' for a nonlinear one."),
    # the solver's refusal of drives too weak to tell from zero failed point by point (found by review)
    (dict(r_wire=0.0, r_terminal=1e18), "r_terminal (--r-terminal) = 1e+18 ohms: the drives reach the 4 word lines "
                                         "through terminals so weak"),
    # v0 = 0 and a window whose top (not its bottom) outweighs the wires past DYNAMIC_RANGE were run and
    # recorded failed (found by mutation testing)
    (dict(device="sinh", v0=0.0), "a sinh device needs v0 > 0 volts; got 0.0."),
    (dict(g_min=0.0, g_max=1e-2, r_wire=1e13), "window up to 0.01 S (--g-range) on 1e+13 ohm wires (--r-wire)"),
])
def test_a_point_the_solver_would_refuse_is_refused_before_the_sweep(tmp_path, kw, message):
    # tol and seed were not checked by the Python API: every point was
    # recorded as failed, or NumPy raised a bare ValueError after
    # results.csv was made (found by review)
    good = ScalePoint(rows=4, cols=4, r_wire=1.0, g_min=1e-4, g_max=5e-4, method="direct")
    bad = ScalePoint(**{**good.__dict__, **kw})
    with pytest.raises(xs.ParameterError, match=re.escape(message)):
        run_sweep([good, bad], tmp_path, progress=False, plots=False)
    assert not (tmp_path / "results.csv").exists()


def test_time_is_the_best_of_a_few_solves_within_a_budget(monkeypatch):
    """A cheap solve timed once read as up to 30x its time when another
    process held the cores (found by review): time_s is the best of up to 5
    solves within 0.25 s; a solve past the budget is timed once."""
    real_solve = xs.solve
    calls = []

    def solve(xbar, **kw):
        calls.append(xbar.shape)
        return real_solve(xbar, **kw)

    point = ScalePoint(rows=8, cols=8, r_wire=1.0, g_min=1e-4, g_max=5e-4, method="pcg")
    scale.run_point(point)  # warm
    monkeypatch.setattr(xs, "solve", solve)
    monkeypatch.setattr(scale, "_TIME_BUDGET_S", 1e9)  # all repeats, however busy the cores
    row = scale.run_point(point)
    assert row["status"] == "ok" and calls.count((8, 8)) == scale._TIME_REPEATS
    calls.clear()
    monkeypatch.setattr(scale, "_TIME_BUDGET_S", 0.0)
    again = scale.run_point(point)
    assert calls.count((8, 8)) == 1
    assert again["rel_error"] == row["rel_error"]


def test_a_row_whose_parameter_columns_were_edited_is_recomputed(tmp_path, monkeypatch):
    """An ok row with its rows cell emptied by hand was taken as done
    (its point_id was trusted) and every later run failed in the plots or
    the table (found by review). A row whose parameter columns do not make
    its point_id is damaged: recomputed, and the run ends normally."""
    sweep = params(sizes=((8, 8),), r_wire=(1.0,))
    run_sweep(sweep, tmp_path, progress=False, plots=False)
    path = tmp_path / "results.csv"
    header, rows = _read_csv(path)
    rows[0]["rows"] = ""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    counter = CountingRunPoint()
    monkeypatch.setattr(scale, "run_point", counter)
    again = run_sweep(sweep, tmp_path, progress=False, plots=True, table=True)
    assert counter.ids == [p.point_id for p in sweep.points()]
    assert [r["rows"] for r in again] == [8]


def test_negative_zero_wire_is_the_same_point_as_zero():
    """--r-wire 0,-0 computed two identical points with two ids (found by
    review): -0 is read as 0, and the id does not tell them apart."""
    assert ScalePoint(8, 8, -0.0, 1e-4, 5e-4).point_id == ScalePoint(8, 8, 0.0, 1e-4, 5e-4).point_id
    assert str(scale._float("-0", "--r-wire")) == "0.0"


def test_a_rerun_interrupted_after_replacing_a_row_leaves_one_row_per_point(tmp_path, monkeypatch):
    """A rerun that recomputed a skipped point and was then interrupted left
    the point's old row beside its new one for good (the tidy-up ran only
    at the end of a run that finished), and `load_results` and the figures
    counted the point twice (found by review)."""
    run_sweep(SMALL, tmp_path, progress=False, plots=False)
    path = tmp_path / "results.csv"
    fields, rows = _read_csv(path)
    for row in rows[:2]:  # two points refused for memory the first time: a plain rerun tries them again
        row["status"] = "skipped"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(scale, "run_point", CountingRunPoint(fail_after=1))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SMALL, tmp_path, progress=False, plots=False)
    _, after = _read_csv(path)
    assert len(after) == 6 and len({r["point_id"] for r in after}) == 6
    assert sorted(r["status"] for r in after) == ["ok"] * 5 + ["skipped"]

    # a file left with both rows (by a run killed outright) reads as the later one
    with open(path, "a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=fields, lineterminator="\n").writerow({**rows[1], "status": "ok"})
    loaded = load_results(path)
    assert len(loaded) == 6 and all(r["status"] == "ok" for r in loaded)
    # at the later row's place, the file's end, as `load_results` says (the first row's place passed the
    # tests: found by mutation testing)
    replaced = rows[1]["point_id"]
    assert [r["point_id"] for r in loaded] == [r["point_id"] for r in after if r["point_id"] != replaced] + [replaced]


def test_run_sweep_refuses_an_empty_grid_and_arguments_it_cannot_take_before_writing(tmp_path):
    """An empty r_wire (or any empty axis) made a grid of no point, and
    run_sweep returned [] after removing the folder's earlier figures;
    retry="no" recomputed failed points, plots="no" drew, numba_threads=-1
    was taken, out_dir="" wrote into the working folder, out_dir=5 was a raw
    TypeError, and tol="abc" a raw ValueError in `points` (found by
    review)."""
    for name in ("sizes", "r_wire", "inputs", "g_ranges", "devices"):
        with pytest.raises(xs.ParameterError, match=f"SweepParams.{name} is empty"):
            SweepParams(**{name: ()})
    for tol in ("1e-9", "abc", [1e-9]):
        with pytest.raises(xs.ParameterError, match="SweepParams.tol must be None"):
            SweepParams(tol=tol)
    # a generator as the seed: one line and how to draw one, as every other seed (a review found the
    # SeedSequence's repr over three lines here)
    with pytest.raises(xs.ParameterError, match=r"^SweepParams.seed = <numpy\.random\..*SeedSequence>; a whole "
                                                r"number in \[0, 2\*\*63\)\. .*generate_state") as err:
        SweepParams(seed=np.random.SeedSequence(3))
    assert "\n" not in str(err.value)
    out = tmp_path / "out"
    point = SMALL.points()[0]
    for kwargs, message in ((dict(retry="no"), "retry = 'no'"), (dict(plots="no"), "plots = 'no'"),
                            (dict(table=1), "table = 1"), (dict(progress=None), "progress = None"),
                            (dict(numba_threads=-1), "numba_threads = -1"),
                            (dict(numba_threads=0), "numba_threads = 0"),  # found by mutation testing
                            (dict(numba_threads=2.5), "numba_threads = 2.5"),
                            (dict(numba_threads="2"), "numba_threads = '2'"),
                            (dict(reuse_other_code="no"), "reuse_other_code = 'no'")):
        with pytest.raises(xs.ParameterError, match=re.escape(message)):
            run_sweep([point], out, **kwargs)
    for out_dir in ("", 5):
        with pytest.raises(xs.ParameterError, match=re.escape(f"out_dir = {out_dir!r}; give the output folder")):
            run_sweep([point], out_dir)
    with pytest.raises(xs.ParameterError, match="run_sweep was given no point"):
        run_sweep([], out)
    assert not out.exists()


def test_ctrl_c_while_waiting_for_a_worker_leaves_no_folder_and_names_no_file(tmp_path, capsys, monkeypatch):
    """A Ctrl-C while `--scheduler` waited for a worker left the --out folder
    it had made, empty, and said "0 of 2 points saved in .../results.csv",
    a file never written (found by review)."""
    def waiting(address):
        raise KeyboardInterrupt

    monkeypatch.setattr(scale, "_connect_scheduler", waiting)
    out = tmp_path / "sub" / "out"
    assert main(["scale", "--out", str(out), "--scheduler", "tcp://127.0.0.1:8786"] + SCALE_8) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first point; nothing was written" in err and "saved in" not in err
    assert not out.exists()


def test_close_client_quietly_silences_distributed_while_it_closes_and_restores_the_level(caplog):
    """A client whose scheduler was lost logs its cancelled reconnect's
    traceback as it closes: about 35 lines of Dask before `xbarsim scale`'s
    one-line error (found by review); `transfer_many` already hid them."""
    import logging

    from xbarsim._dask import close_client

    class Client:
        def close(self):
            logging.getLogger("distributed.client").error("reconnect cancelled: Traceback ...")

    log, child = logging.getLogger("distributed"), logging.getLogger("distributed.client")
    before = log.level, child.level
    try:
        # as distributed's configuration sets it: a level of the child's own,
        # which raising the parent's alone does not override
        child.setLevel(logging.WARNING)
        with caplog.at_level(logging.DEBUG):
            close_client(Client(), quiet=True)
            assert not [r for r in caplog.records if "reconnect cancelled" in r.getMessage()]
            close_client(Client(), quiet=False)
            assert [r for r in caplog.records if "reconnect cancelled" in r.getMessage()]
        assert (log.level, child.level) == (before[0], logging.WARNING)
    finally:
        child.setLevel(before[1])


def test_a_series_at_the_default_tolerance_is_labelled_with_its_value():
    """A sweep over tol labelled the default's series "tol None" (found by
    review)."""
    labels = scale._series_label((1.0, 1e-4, 5e-4, "linear", None, 1, 0.2, 1.0, "direct", 0, None, (1, 1)),
                                 {"tol"})
    assert labels == "r = 1 Ω, tol 1e-12 (default)"
    assert scale._series_label((1.0, 1e-4, 5e-4, "linear", None, 1, 0.2, 1.0, "direct", 0, 1e-9, (1, 1)),
                               {"tol"}) == "r = 1 Ω, tol 1e-09"


def test_memory_and_time_columns_are_in_mib_and_seconds():
    """peak_rss_mib is MiB, not bytes, and time_s seconds, not ms: the
    solve's time lies within run_point's wall time, and the peak RSS (its
    high-water mark is reset before the solve) within a factor 2 of this
    process's RSS, both read in the units their names say (found by
    mutation testing: either slip passed every test)."""
    point = ScalePoint(rows=64, cols=64, r_wire=1.0, g_min=1e-4, g_max=5e-4, method="direct")
    scale.run_point(point)  # kernels and imports loaded
    t0 = time.perf_counter()
    row = scale.run_point(point)
    wall = time.perf_counter() - t0
    assert row["status"] == "ok"
    assert 0 < row["time_s"] <= wall
    if np.isnan(row["peak_rss_mib"]):
        pytest.skip("no RSS high-water mark here (not Linux)")
    rss_mib = scale._rss_bytes() / 2**20
    assert rss_mib / 2 < row["peak_rss_mib"] < 2 * rss_mib
    assert 0 <= row["solve_rss_mib"] <= row["peak_rss_mib"]


def test_time_s_is_the_shortest_of_the_timed_solves(monkeypatch):
    """time_s is the best of the repeated solves, as its column says, not the
    last one timed: on a clock that the five solves advance by 5, 1, 4, 2
    and 3 ms, 1 ms (the last, 3 ms, passed every test; found by mutation
    testing)."""
    point = ScalePoint(rows=8, cols=8, r_wire=1.0, g_min=1e-4, g_max=5e-4, method="pcg")
    scale.run_point(point)  # kernels loaded: the timed run solves nothing else
    real_solve = xs.solve
    clock, steps = [1000.0], [5e-3, 1e-3, 4e-3, 2e-3, 3e-3]

    def solve(xbar, **kw):
        sol = real_solve(xbar, **kw)
        clock[0] += steps.pop(0)
        return sol

    monkeypatch.setattr(xs, "solve", solve)
    monkeypatch.setattr(scale.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(scale, "_TIME_BUDGET_S", 1e9)  # all five timed
    row = scale.run_point(point)
    assert row["status"] == "ok" and not steps
    # differences of clock readings near 1000 s: exact to about 1e-13 s
    assert row["time_s"] == pytest.approx(1e-3, rel=1e-9)


def test_the_command_line_sweeps_every_v0_given():
    """--device linear,sinh --v0 0.15,0.3: a linear series and one sinh
    series per V0 (keeping the first V0 alone passed every test: found by
    mutation testing)."""
    from xbarsim.cli import build_parser

    args = build_parser().parse_args(["scale", "--out", "o", "--device", "linear,sinh", "--v0", "0.15,0.3"])
    assert scale._params_from_args(args).devices == (("linear", None), ("sinh", 0.15), ("sinh", 0.3))


def test_every_swept_parameter_makes_its_own_point_id():
    """The resume key names every parameter that changes the result: two
    points that differ in one of them are two points."""
    base = dict(rows=8, cols=8, r_wire=1.0, g_min=1e-4, g_max=5e-4)
    variants = [dict(), dict(rows=9), dict(cols=9), dict(r_wire=2.0), dict(g_min=2e-4), dict(g_max=6e-4),
                dict(device="sinh", v0=0.2), dict(device="sinh", v0=0.3), dict(inputs=2), dict(v_read=0.3),
                dict(r_terminal=2.0), dict(seed=1), dict(method="pcg"), dict(tol=1e-9)]
    ids = [ScalePoint(**{**base, **v}).point_id for v in variants]
    assert len(set(ids)) == len(variants)


def test_each_panel_draws_its_own_column_under_its_own_label(tmp_path, monkeypatch):
    """error_vs_size: rel_error then max_rel_error; time_vs_size: time_s
    (labelled in seconds) then iterations; ir_drop_vs_size: ir_drop_wl_frac
    then bl_rise_frac. Each panel's line holds its column's values in size
    order (a panel drawing its neighbour's column, or the time axis without
    its label, passed every test: found by mutation testing)."""
    import matplotlib.pyplot as plt

    rows = run_sweep(params(sizes=((8, 8), (16, 16)), r_wire=(1.0,)), tmp_path, progress=False, plots=False)
    figures = []
    real_close = plt.close

    def close(fig):
        figures.append([(ax.get_ylabel(), [list(line.get_ydata()) for line in ax.get_lines()]) for ax in fig.axes])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    columns = [("rel_error", "max_rel_error"), ("time_s", "iterations"), ("ir_drop_wl_frac", "bl_rise_frac")]
    assert len(figures) == 3
    for panels, names in zip(figures, columns):
        for (_, lines), name in zip(panels, names):
            assert lines == [[r[name] for r in rows]], name
    assert figures[1][0][0] == "solve time (s, wall)"
    assert [label for label, _ in figures[0]] == [r"$\|I_{out} - G^T x\|\,/\,\|G^T x\|$",
                                                  r"$\max_j\ |I_{out,j} - (G^T x)_j|\,/\,(G^T x)_j$"]


def test_a_dask_sweep_computes_and_records_each_point_once(tmp_path, monkeypatch):
    """Through a cluster every point is submitted once and its row lands
    with its own parameters: two points, two rows appended to results.csv
    (a point submitted twice appended its row twice, which the compaction
    then hid: found by mutation testing)."""
    distributed = pytest.importorskip("distributed")
    appended = []
    real_append = scale._ResultsFile.append

    def append(self, row):
        appended.append(row["point_id"])
        return real_append(self, row)

    monkeypatch.setattr(scale._ResultsFile, "append", append)
    sweep = params(sizes=((8, 8),), r_wire=(0.1, 10.0))
    with loopback_cluster() as cluster, distributed.Client(cluster) as client:
        rows = run_sweep(sweep, tmp_path, client=client, progress=False, plots=False)
    assert sorted(appended) == sorted(p.point_id for p in sweep.points())
    assert [(r["point_id"], r["r_wire_ohm"]) for r in rows] == [(p.point_id, p.r_wire) for p in sweep.points()]


def test_an_unwritable_results_csv_is_refused_before_workers_start(tmp_path, capsys, monkeypatch):
    """--workers N with a results.csv that cannot be appended to: refused
    before the local cluster starts, not after its workers came up (found
    by mutation testing)."""
    import builtins

    argv = ["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "1", "--g-range", "100e-6:500e-6",
            "--no-progress", "--no-plots"]
    assert main(argv) == 0
    capsys.readouterr()

    def open_(file, mode="r", *args, **kwargs):  # as a read-only file would (root ignores chmod)
        if "a" in mode and Path(file).name == "results.csv":
            raise PermissionError(1, "Operation not permitted")
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(scale, "open", open_, raising=False)
    started = []

    def start_local_cluster(n):
        started.append(n)
        raise xs.XbarsimError("a cluster was started (test)")

    monkeypatch.setattr(scale, "start_local_cluster", start_local_cluster)
    assert main(argv + ["--workers", "1"]) == 1
    assert "results.csv is not writable (Operation not permitted)" in capsys.readouterr().err
    assert started == []


@pytest.mark.parametrize("devices", [(("linear", None),), (("linear", None), ("sinh", 0.15))])
def test_a_sinh_sweep_plots_the_wires_share_of_the_error(tmp_path, monkeypatch, devices):
    """Against G.T x a sinh device's error is mostly its own curve (10-18 %,
    flat in N), which hid the wires' effect the study is about; the wires'
    share (``rel_error_wires``, against the same devices on ideal wires)
    gets a panel of its own where a sweep has sinh devices, and plots the
    column's values (found by a review of the figures)."""
    import matplotlib.pyplot as plt

    rows = run_sweep(params(sizes=((8, 8), (16, 16)), r_wire=(1.0,), devices=devices), tmp_path, progress=False,
                     plots=False)
    panels = []
    real_close = plt.close

    def close(fig):
        panels.append({ax.get_title(): ax for ax in fig.axes if ax.get_title()})
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    scale.plot_results(rows, tmp_path)
    error = panels[0]
    if len(devices) == 1:
        assert "The wires' share of the error" not in error and len(error) == 2
        return
    ax = error["The wires' share of the error"]
    plotted = sorted(y for line in ax.get_lines() for y in line.get_ydata())
    assert plotted == sorted(r["rel_error_wires"] for r in rows)


def test_a_rerun_says_how_many_points_it_took_from_the_folder(tmp_path, capsys):
    """Rerunning a finished sweep printed "4 points: 4 ok ...; wall 0.0 s"
    with no word that none was computed (found by review)."""
    argv = ["scale", "--out", str(tmp_path), "--sizes", "8", "--r-wire", "0.5,5", "--batch", "1,2",
            "--g-range", "100e-6:500e-6", "--method", "direct", "--no-progress", "--no-plots"]
    assert main(argv) == 0
    assert "\n4 points: 4 ok" in capsys.readouterr().out
    assert main(argv[:6] + ["0.5,5,50"] + argv[7:]) == 0  # at once: counted, not read off the clock
    assert "\n6 points (4 of them from an earlier run in this folder): 6 ok" in capsys.readouterr().out


def test_an_interrupt_counts_the_points_of_its_own_sweep_saved(tmp_path, capsys):
    """The interrupt line says how many of *this* sweep's points the folder
    holds: with three points of another sweep there and one of this one's,
    "1 of 2 points saved" (counting every row of the folder, "3 of 2",
    passed the tests: found by mutation testing)."""
    run_sweep(params(sizes=((8, 8),), r_wire=(1.0, 2.0, 3.0)), tmp_path, progress=False, plots=False)
    capsys.readouterr()
    scale._report_interrupt(params(sizes=((8, 8),), r_wire=(1.0, 5.0)), tmp_path)
    assert "interrupted: 1 of 2 points saved in" in capsys.readouterr().err


def test_the_column_key_that_cannot_be_written_is_a_warning(tmp_path):
    """run_sweep wrote results_columns.txt unguarded: a folder in its place
    raised a raw IsADirectoryError (found by review). It warns, and the
    sweep runs; the counts say what was computed and what reused."""
    (tmp_path / "results_columns.txt").mkdir()
    counts = {}
    with pytest.warns(UserWarning, match=r"could not write .*results_columns.txt .*column_key\(\)"):
        rows = run_sweep(params(sizes=((8, 8),), r_wire=(1.0,)), tmp_path, progress=False, plots=False, counts=counts)
    assert [r["status"] for r in rows] == ["ok"] and counts == dict(computed=1, reused=0)
    run_sweep(params(sizes=((8, 8),), r_wire=(1.0, 2.0)), tmp_path / "b", progress=False, plots=False)
    counts = {}
    run_sweep(params(sizes=((8, 8),), r_wire=(1.0, 2.0, 3.0)), tmp_path / "b", progress=False, plots=False,
              counts=counts)
    assert counts == dict(computed=1, reused=2)
    # a smaller sweep in the same folder reuses its own points only, not the folder's every row (found by
    # mutation testing)
    counts = {}
    with pytest.warns(UserWarning, match=r"also holds 2 row\(s\) of points outside this sweep"):
        run_sweep(params(sizes=((8, 8),), r_wire=(2.0,)), tmp_path / "b", progress=False, plots=False,
                  counts=counts)
    assert counts == dict(computed=0, reused=1)


def test_a_long_subtitle_still_says_r_is_per_segment(tmp_path, monkeypatch):
    """Unseen before (a mutation audit): the > 110-character fallback subtitle dropping "r: per wire
    segment"; only the short form is tested."""
    import matplotlib.pyplot as plt

    rows = run_sweep([ScalePoint(8, 8, 1.0, 1e-4, 5e-4, method="direct")], tmp_path, progress=False, plots=False)
    for r in rows:  # values whose %g spelling makes the subtitle long
        r["g_min_s"], r["g_max_s"], r["r_terminal_ohm"] = 123.4567e-6, 456.7891e-6, 1.234567
    titles = []
    real_close = plt.close

    def close(fig):
        titles.append(fig._suptitle.get_text().split("\n", 1)[1])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    plot_results(rows, tmp_path)
    assert titles and all("random G and inputs" in t and "r: per wire segment" in t for t in titles), titles


def test_a_window_of_one_conductance_is_taken():
    """--g-range 1e-4:1e-4, every device at one conductance: g_min <= g_max
    is all `ScalePoint` asks, and the parser takes it (refusing g_min ==
    g_max passed the tests) (found by mutation testing)."""
    import argparse

    assert scale._windows_arg("1e-4:1e-4,0:1e-5") == ((1e-4, 1e-4), (0.0, 1e-5))
    with pytest.raises(argparse.ArgumentTypeError, match="has g_min > g_max"):
        scale._windows_arg("2e-4:1e-4")
