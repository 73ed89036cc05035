"""Examples are tests: run them and check the numbers they print."""

import os
import runpy

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


def test_moons_quick_example():
    ns = runpy.run_path(os.path.join(EXAMPLES, "moons_quick.py"))
    result, summary, ppa = ns["main"]()
    assert result.loss_history[-1] < 0.85 * result.loss_history[0]
    assert summary["mean_accuracy"] > 0.75
    assert summary["frac_points_ge_95"] == np.mean(ppa >= 0.95)
    assert summary["n_transfers"] == 12 and summary["n_points"] == 200
