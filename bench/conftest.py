"""Shared inputs of the benchmarks (docs/CIRCUIT.md read configuration).

The solver benchmarks' reads (`read_problem`): devices uniform in 2-10
kOhm, 1 ohm wire segments, 1 ohm terminals, word lines driven at the left,
bit lines at 0 V at the bottom, inputs uniform in [0, 0.3] V, seed 0
(bench_large draws the same with its own generator; bench_solve's
open-device case is 130 x 129, seed 1; bench_transfer programs TiO2
targets of 100-500 uS).
"""

import numpy as np
import pytest

import xbarsim as xs


def read_problem(n, batch=1, seed=0, v0=None, v_max=0.3):
    rng = np.random.default_rng(seed)
    g = 1.0 / rng.uniform(2e3, 1e4, (n, n))
    x = rng.uniform(0.0, v_max, (n, batch) if batch > 1 else n)
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=1.0, v0=v0)
    drives = dict(left=xs.Drive(x, r=1.0), bottom=xs.Drive(0.0, r=1.0))
    return xbar, drives


@pytest.fixture(scope="session")
def problem():
    cache = {}

    def get(n, batch=1, v0=None, v_max=0.3):
        key = (n, batch, v0, v_max)
        if key not in cache:
            cache.clear()  # keep memory flat across sizes
            cache[key] = read_problem(n, batch, v0=v0, v_max=v_max)
        return cache[key]

    return get


def interleaved(cases, repeats):
    """Time each callable of ``cases`` (name -> callable) in turn, ``repeats``
    times round, so that every case sees the same machine: on this VM two
    separately timed tests gave the same 1024^2 solve 2.3x apart in one run.
    Every other round runs the cases in reverse order (a, b, b, a, ...): a
    fixed order gave every round's second case what the first left (an mg
    solve right after PARDISO ran slower; found by review). Returns name ->
    list of seconds."""
    import time

    times = {name: [] for name in cases}
    for r in range(repeats):
        order = list(cases.items())
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def ratios(times, num, den):
    """The ratio of two interleaved cases, min against min, mean against
    mean and median against median, with the raw times, for
    ``benchmark.extra_info``."""
    a, b = np.array(times[num]), np.array(times[den])
    return {f"{num}_s": a.tolist(), f"{den}_s": b.tolist(),
            "ratio_min": float(a.min() / b.min()), "ratio_mean": float(a.mean() / b.mean()),
            "ratio_median": float(np.median(a) / np.median(b))}


def _short(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def pytest_terminal_summary(terminalreporter, config):
    """Print every benchmark's ``extra_info`` (the ratios, iteration counts
    and memory figures the README quotes) in a section of its own, with the
    commit the run measured (and whether the tree held other changes):
    pytest-benchmark keeps them for ``--benchmark-json`` only, and its
    table leaves them out."""
    session = getattr(config, "_benchmarksession", None)
    rows = [b for b in getattr(session, "benchmarks", []) if getattr(b, "extra_info", None)]
    if not rows:
        return
    terminalreporter.section("benchmark extra_info")
    terminalreporter.write_line(f"measured: {_revision()}")
    for b in rows:
        info = " ".join(f"{k}={_short(v)}" for k, v in b.extra_info.items())
        terminalreporter.write_line(f"{b.name}: {info}")


def _revision():
    """``<commit> (clean)`` or ``<commit> + uncommitted changes`` of the
    checkout the benchmarks ran from, with the time now: which code a
    quoted figure measured could not be told (found by review)."""
    import datetime
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"not a git checkout; finished {now}"
    return f"{head} ({'+ uncommitted changes' if dirty else 'clean'}); finished {now}"
