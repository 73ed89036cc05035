"""Settings shared by every test module.

- **Order independence.** Each test starts from the same torch global seed,
  so a test that builds layers or draws from the global generator without
  seeding gets the same numbers whether it runs alone, first, or after any
  other test (`pytest -k`, `-p randomly`, a rerun of one failure).
- **CI is reproducible and complete.** With `CI` set (`.ci/run` sets it),
  Hypothesis runs derandomized: a red CI run fails again on rerun, with the
  same example. And ngspice, the external ground truth, must be installed:
  its tests skip on a developer's machine without it, but a CI run that
  skipped them would pass without the check, so the session stops with an
  error instead. So it does when a module some tests skip without
  (`CI_MODULES`) cannot be imported, or when the Numba pool has fewer than
  2 threads (the thread-count independence tests skip then): a broken
  `distributed` skipped every Dask test, a one-core runner every 1-vs-2
  thread comparison, and CI passed (found by review).
- **Ctrl-C works.** The tests that simulate a Ctrl-C (``interrupt_main``
  in this process, SIGINT to a child, which inherits an ignored SIGINT
  across exec) need Python's SIGINT handler. A runner that starts pytest
  with SIGINT ignored (a background job of a shell without job control)
  made them fail ("DID NOT RAISE") or hang (found by review): the handler
  is put back.
"""

import os
import signal

import pytest
from hypothesis import settings

from xbarsim.spice import ngspice_available

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")  # CI=false is not CI

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("xbarsim-ci", derandomize=True, deadline=None, print_blob=True)
if IN_CI:
    settings.load_profile("xbarsim-ci")


CI_MODULES = ("distributed", "mpmath", "sklearn.datasets", "matplotlib", "torch")
"""Modules tests import with `pytest.importorskip`; under CI each must import."""
CI_THREADS = 2
"""Numba pool size the thread-count independence tests need (`threads.with_threads`)."""


def pytest_sessionstart(session):
    if not IN_CI:
        return
    if not ngspice_available():
        pytest.exit(
            "CI is set but ngspice is not on PATH: its ground-truth tests would be "
            "skipped and the run would pass without them. Install it "
            "(apt-get install -y ngspice) or unset CI for a local run.",
            returncode=1,
        )
    import importlib

    for name in CI_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a version clash raises more than ImportError
            pytest.exit(f"CI is set but {name} cannot be imported ({type(exc).__name__}: {exc}): the tests that "
                        "need it would be skipped and the run would pass without them. Install the dev extras "
                        "(pip install -e '.[dev]') or unset CI for a local run.", returncode=1)
    import numba

    if numba.config.NUMBA_NUM_THREADS < CI_THREADS:
        pytest.exit(f"CI is set but the Numba pool has {numba.config.NUMBA_NUM_THREADS} thread(s): the "
                    f"thread-count independence tests need {CI_THREADS} and would be skipped. Set "
                    f"NUMBA_NUM_THREADS={CI_THREADS} (any core count runs it) or unset CI for a local run.",
                    returncode=1)


@pytest.fixture(autouse=True)
def _torch_seed():
    """Seed torch's global generator before each test, also for a test that
    imports torch itself and runs first (torch, a dependency, is imported
    here once; the test modules import it at collection anyway)."""
    import torch

    torch.manual_seed(0)
    yield
