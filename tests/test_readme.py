"""The README's Python blocks are run as they are printed, and what their
comments promise is checked: the shapes, units and kinds of what they return.

(The training block and the checkpoint block that continues it are run by
`tests/test_train_examples.py`.)
"""

import warnings
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading, index=0):
    """The ``index``-th ```python block under ``heading`` in README.md (also
    used by `tests/test_train_examples.py`)."""
    text = README.read_text()
    assert heading in text, f"README.md has no heading {heading!r}"
    section = text.split(heading, 1)[1]
    return section.split("```python\n", index + 1)[index + 1].split("```", 1)[0]


def _run(heading):
    namespace = {}
    exec(compile(readme_block(heading), f"README.md ({heading.lstrip('# ')})", "exec"), namespace)
    return namespace


def test_the_readmes_read_block_runs_and_returns_what_its_comments_say():
    ns = _run("### Solving a read")
    g, x, sol = ns["g"], ns["x"], ns["sol"]
    assert sol.i_out.shape == (512, 16)  # "(512, 16) sense currents out of the bottom ends, amperes"
    # amperes, out of the bottom ends: each bit line's device currents (its
    # top end floats), below the ideal product G.T @ x by the IR drop of the
    # 1 ohm wires and terminals (which on 512 x 512 loses most of it)
    np.testing.assert_allclose(sol.i_device.sum(axis=0), sol.i_out, rtol=1e-9)
    ideal = g.T @ x
    assert np.all(sol.i_out > 0) and np.all(sol.i_out < ideal)
    from xbarsim.solve import DEFAULT_TOL  # the block solves at the default tol (1e-12)

    assert sol.iterations > 0 and sol.residual <= DEFAULT_TOL and abs(sol.kcl_error) < DEFAULT_TOL
    # the last line: bare voltages are ideal sources, so that read loses no
    # voltage at the terminals and senses more current than the 1 ohm one
    ideal_terminals = ns["xs"].solve(ns["xbar"], left=x, bottom=0.0)
    assert np.all(ideal_terminals.i_out > sol.i_out)


def test_the_readmes_transfer_block_runs_and_returns_what_its_comments_say():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the block as printed asks for nothing a warning would flag
        ns = _run("## Transfer: write-verify programming on the circuit")
    res, y, many = ns["res"], ns["y"], ns["many"]
    for name in ("order_index", "target", "pulses", "g_after_own", "g_final", "converged", "stuck",
                 "stuck_state"):
        assert getattr(res, name).shape == (8, 8), name  # "(M, N) fields"
    assert res.stuck.dtype == bool and set(np.unique(res.stuck_state)) <= {0, 1, 2}
    assert np.array_equal(res.stuck, res.stuck_state > 0)  # "stuck_state: 0 working, 1 LRS, 2 HRS"
    np.testing.assert_array_equal(res.target, ns["target_g"])
    assert y.shape == (5, 3)  # "(B, in) -> (B, out)"
    # "through the circuit": close to the layer's own product, not equal to it.
    # Measured: 6.6 % of the largest output (the 1 % band, the sinh read's
    # +3.3 % at full scale, IR drop and drift); a dropped bias row is 49 %
    # off, a read 20 % low 20 %. The read noise alone moves it 0.3 %.
    exact = ns["x"] @ ns["weight"].T + ns["bias"]
    scale = np.max(np.abs(exact))
    assert 0 < np.max(np.abs(y - exact)) < 0.1 * scale
    quiet = ns["xs"].mvm(ns["prog"], ns["x"], noise=False)
    assert 0 < np.max(np.abs(y - quiet)) < 0.02 * scale
    assert many.n == 2000  # "Monte Carlo", n = 2000
