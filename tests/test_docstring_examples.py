"""Every docstring example of the package runs and prints what it shows.

The Examples sections are the first code a reader copies; nothing ran them,
so an API change could leave them wrong without a failing test.
"""

import doctest
import importlib
import pkgutil

import pytest

import xbarsim
from xbarsim.spice import ngspice_available


def _examples():
    finder = doctest.DocTestFinder()
    for info in pkgutil.walk_packages(xbarsim.__path__, "xbarsim."):
        if info.name.startswith("xbarsim.kernels") or info.name.endswith("__main__"):
            continue  # jitted kernels (no examples), and the command line, which runs on import
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name):
            if test.examples and test.name.startswith(info.name):  # not a re-exported object's, twice
                yield test


EXAMPLES = sorted(_examples(), key=lambda t: t.name)


def test_the_package_has_examples_to_run():
    modules = {t.name.split(".")[1] for t in EXAMPLES}
    assert {"solve", "circuit", "transfer", "programming", "mapping", "train"} <= modules, modules


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(test):
    if "run_ngspice" in test.name and not ngspice_available():
        pytest.skip("needs ngspice")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append, clear_globs=True)
    assert runner.failures == 0, "".join(out)
