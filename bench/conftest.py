"""Shared inputs of the benchmarks (docs/CIRCUIT.md read configuration).

Every benchmark uses: devices uniform in 2-10 kOhm, 1 ohm wire segments,
1 ohm terminals, word lines driven at the left, bit lines at 0 V at the
bottom, inputs uniform in [0, 0.3] V, seed 0.
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
