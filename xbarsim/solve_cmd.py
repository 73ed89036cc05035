"""``xbarsim solve``: one read (MVM) of your own array, solved and reported.

``xbarsim solve --g G.npy --out DIR`` solves the read circuit of
docs/CIRCUIT.md (in the source repository and its sdist) for the
conductances in ``G.npy`` (siemens, one row per word line; ``.csv``
works too): every word line driven at its left end and every bit line
held at 0 V at its bottom end, both through ``--r-terminal`` ohms (or
``--r-in`` / ``--r-out`` apart), the other ends floating, wire segments of
``--r-wire`` ohms (or ``--r-wl`` / ``--r-bl`` apart), linear devices or
sinh ones (``--v0``).
The inputs are ``--inputs FILE`` (volts: one value per word line, or one
row per input vector) or every word line at ``--v-in`` volts.

It writes into ``DIR``:

* ``summary.json``: the circuit, the solver (method, iterations, residual,
  wall time), Kirchhoff's current law and the power balance checked on the
  solution, and the read's figures of merit: the relative error of the
  sensed currents against the ideal product ``G.T @ x`` (and, for sinh
  devices, against the same devices on ideal wires, the wires' share
  alone), the worst word-line IR drop (input to the line's far node, the
  input terminal's drop included) and bit-line rise;
* ``solution.npz``: ``v_wl``, ``v_bl``, ``i_device`` (M, N[, B]), ``i_out``
  (N[, B]), the terminal currents (0 at floating ends), ``g``, the inputs ``x`` (M[, B], as the
  solver takes them) and ``inputs``, the same as ``--inputs`` takes them
  ((M,), or (B, M): one vector per row; ``x`` given back to ``--inputs``
  would be read transposed, silently so when M = B);
* ``solve.png``: the word-line and bit-line voltage maps and the voltage
  each device loses to the wires (its input minus the voltage across it),
  for the first input vector, and the error of the sensed currents
  against the ideal product, every input vector.

With ``--pulse I,J`` the circuit is instead one programming pulse of
``--vp`` volts on cell (I, J) under ``--scheme`` (V/2, V/3 or floating;
`xbarsim.pulse_drives`): ``summary.json`` then records the voltage the
selected cell, the half-selected cells of its word and bit lines and the
unselected cells see, ``solution.npz`` holds the drives (``wl_v``,
``bl_v``, ``wl_floating``, ``bl_floating``) and the terminal currents
(0 at floating lines) beside the voltages, and ``solve.png`` maps it.

With ``--spice`` the same circuit is also solved by ngspice, the external
ground truth (arrays of up to 4096 cells, 64 x 64: `SPICE_MAX_CELLS`): its deck is written as
``circuit.cir`` and the largest differences of the node voltages and sensed
currents go into ``summary.json`` under ``spice``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from ._coerce import where_not_finite
from .cli import (RunFiles, _written_by, check_out_dir, check_provenance, check_r_wire,
                  help_text, integer_ticks, json_plain, load_array, load_conductances, remove_if_made_and_empty,
                  removing_new_folders, wires_text)
from .exceptions import ConvergenceError, ParameterError

__all__ = ["run", "run_pulse", "summarize", "summarize_pulse", "plot", "plot_pulse", "register"]


def _inputs(x, M):
    """Inputs as the solver's (M[, B]) drive voltages: a file's (M,) vector or
    (B, M) rows (one input vector per row, as `xbarsim.mvm` takes them)."""
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"--inputs {where_not_finite(x)}; give finite input voltages.")
    if x.ndim == 1 and x.shape[0] == M:
        return x
    if x.ndim == 1 and M == 1:
        # one word line: each value is an input vector, as a .csv column of
        # them reads (a (3,) .npy was refused)
        x = x[:, None]
    if x.ndim == 2 and x.shape[1] == M:
        return np.ascontiguousarray(x.T) if x.shape[0] > 1 else x[0]
    from .cli import _column_numbers

    hint = ""
    if x.ndim == 2 and x.shape[1] == M + 1 and _column_numbers(x[:, 0]):
        # pandas' index column: "save its transpose" was the wrong advice
        hint = (f" Its first column reads {', '.join(f'{v:g}' for v in x[:3, 0])}, ..., a row index (pandas' "
                "to_csv without index=False): delete that column.")
    elif x.ndim == 2 and x.shape[0] == M:
        # the solver's own (M, B) layout, one input per column
        hint = f" It holds {x.shape[1]} inputs as columns: save its transpose (x.T, shape {x.shape[::-1]})."
    lines, values = ("word line", "value") if M == 1 else ("word lines", "values")
    raise ParameterError(f"--inputs has shape {x.shape}; the array has {M} {lines}, so give {M} "
                         f"{values} (one input vector) or rows of {M} (one input vector per row).{hint}")


def summarize(g, x, sol, v0, seconds=None):
    """Figures of merit of one solved read.

    Parameters
    ----------
    g : ndarray, (M, N)
        Conductances, S.
    x : ndarray, (M,) or (M, B)
        Input voltages, V.
    sol : Solution
        From `xbarsim.solve` with `xbarsim.read_drives`.
    v0 : float or None
        The sinh devices' V0 (None: linear devices).
    seconds : float, optional
        Wall time of the solve, recorded as ``seconds``.

    Returns
    -------
    dict
        ``method``, ``iterations``, ``residual``; ``kcl_error`` (the
        terminal currents' sum over their absolute sum) and
        ``power_balance`` (``|P_supplied - P_dissipated| / P_supplied``;
        None, with a ``power_note``, where the powers overflow);
        the read's ``rel_error``, ``max_rel_error``, ``rel_error_wires``,
        ``ir_drop_wl_v``, ``ir_drop_wl_frac``, ``bl_rise_v`` and
        ``bl_rise_frac`` (as the columns of ``xbarsim scale``), with a
        ``message`` where one of them is empty (None) for a reason other
        than no current; and the sensed currents' range. ``run`` adds
        ``kernel_load_seconds``, the time of a 4 x 4 warm-up solve that
        loads (on a first run, compiles) the kernels, so that ``seconds`` is
        the solve's alone.
    """
    from .scale import _metrics

    x2 = x.reshape(x.shape[0], -1)
    out = _solver_figures(sol, seconds)
    out["batch"] = int(x2.shape[1])
    out.update(_metrics(g, x2, sol, v0))
    out["i_out_min_A"] = float(np.min(sol.i_out))
    out["i_out_max_A"] = float(np.max(sol.i_out))
    return out


def _solver_figures(sol, seconds=None):
    """What every ``xbarsim solve`` summary records of the solve itself:
    shape, method, iterations, residual, Kirchhoff and power balance, and
    the wall time when given."""
    def total(power):
        try:  # a power past double precision is refused by the library: reported here as inf
            with np.errstate(over="ignore", invalid="ignore"):
                return float(np.sum(power()))
        except ParameterError:
            return math.inf

    p_in, p_out = total(sol.power_supplied), total(sol.power_dissipated)
    if math.isfinite(p_in) and math.isfinite(p_out):
        balance = abs(p_in - p_out) / p_in if p_in > 0 else 0.0
    else:
        # drives of some 1e150 V and more: the powers overflow, and the
        # balance read "nan" (null in summary.json)
        balance = None
        p_in, p_out = (x if math.isfinite(x) else None for x in (p_in, p_out))
    out = dict(shape=list(sol.shape), method=sol.method, iterations=int(sol.iterations),
               residual=float(sol.residual), kcl_error=float(sol.kcl_error), power_supplied_W=p_in,
               power_dissipated_W=p_out, power_balance=balance)
    if balance is None:
        out["power_note"] = ("the powers at these drives exceed double precision's range (~1e308 W): no "
                             "balance to check; scale the drives down (linear devices: the circuit is linear "
                             "in them)")
    if seconds is not None:
        out["seconds"] = float(seconds)
    return out


def _balance_text(summary):
    """The power balance as the summary line prints it."""
    if summary["power_balance"] is None:
        return "not checked (the powers overflow double precision: scale the drives down)"
    return f"{summary['power_balance']:.1e}"


def plot(g, x, sol, path, title=""):
    """``solve.png``: voltage maps and the voltage each device loses to the
    wires for the first input vector, and the error of the sensed currents
    against the ideal product, every vector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = (slice(None), slice(None), 0) if sol.v_wl.ndim == 3 else (slice(None), slice(None))
    x0 = x if x.ndim == 1 else x[:, 0]
    v_wl, v_bl = sol.v_wl[first], sol.v_bl[first]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8.5))
    for a, v, name in ((ax[0, 0], v_wl, "word-line node voltage"), (ax[0, 1], v_bl, "bit-line node voltage")):
        im = a.imshow(1e3 * v, cmap="viridis", interpolation="nearest", aspect="auto")
        fig.colorbar(im, ax=a, label=f"{name} (mV)")
        a.set_title(name + "s")
        a.set_xlabel("bit line j")
        a.set_ylabel("word line i")
        integer_ticks(a)
    lost = 1e3 * (x0[:, None] - (v_wl - v_bl))
    im = ax[1, 0].imshow(lost, cmap="magma", interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax[1, 0], label="input - V(device) (mV)")
    ax[1, 0].set_title("voltage each device loses to the wires (0: ideal)")
    ax[1, 0].set_xlabel("bit line j")
    ax[1, 0].set_ylabel("word line i")
    integer_ticks(ax[1, 0])
    ideal = g.T @ x.reshape(x.shape[0], -1)
    i_out = sol.i_out.reshape(ideal.shape)
    # the error against the ideal product, not i_out against it: on a parity
    # plot through 0 the points sat in one corner, their few-% spread unseen
    ax[1, 1].plot(1e6 * ideal.ravel(), 1e6 * (i_out - ideal).ravel(), ".", ms=3,
                  label=f"bit line ({'all ' + str(ideal.shape[1]) + ' inputs' if ideal.shape[1] > 1 else 'one input'})")
    ax[1, 1].axhline(0.0, color="k", ls="--", lw=1, label="ideal: i_out = G.T x")
    ax[1, 1].set_xlabel("ideal product G.T x (µA)")
    ax[1, 1].set_ylabel("i_out - G.T x (µA)")
    ax[1, 1].set_title("sensed current error against G.T x")
    ax[1, 1].legend(fontsize=8)
    if x.ndim == 2 and x.shape[1] > 1:  # the maps show one input vector: say which
        title = (title + "; " if title else "") + f"maps: input vector 1 of {x.shape[1]}"
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SPICE_MAX_CELLS = 64 * 64
"""Largest array ``--spice`` hands to ngspice (a 64 x 64 read, 8192
nodes, takes it a few seconds; its dense-ish sparse solve grows much
faster than the array)."""
SPICE_SECONDS_PER_COLUMN = 15.0
"""ngspice's time budget per input vector of a full `SPICE_MAX_CELLS` read
(it took about 4 s on this project's 2-core machine under load)."""
SPICE_SECONDS_MIN = 0.002
"""ngspice's least time budget per input vector, however small the array
(2000 vectors of an 8 x 6 array took it 2.4 s)."""
SPICE_MAX_COLUMNS = 16
"""Most input vectors of a full `SPICE_MAX_CELLS` array ``--spice`` compares
(more on smaller arrays: as many as fit in the same time,
`_spice_seconds_per_vector`)."""

PROGRESS_MIN_CELLS = 512 * 512
"""Arrays from this size on report each iteration on stderr (a 4096 x 4096
solve takes about 10 s; smaller ones finish before a line would help)."""


def run(out_dir, g, x, *, r_wl=1.0, r_bl=1.0, r_in=0.0, r_out=0.0, v0=None, method="auto", tol=None,
        spice=False, verbose=True, progress=True, provenance=None):
    """Solve one read and write the study into ``out_dir``.

    Parameters
    ----------
    out_dir : str
        Output folder (created): ``summary.json``, ``solution.npz``, ``solve.png``.
    g : array_like, (M, N)
        Conductances, S.
    x : array_like, (M,) or (M, B)
        Input voltages on the word lines, V.
    r_wl, r_bl, r_in, r_out : float
        Wire segment resistances of word and bit lines, and the input and
        sense terminal resistances, ohms.
    v0 : float, optional
        sinh devices with this V0 (volts); linear devices when None.
    method, tol
        As in `xbarsim.solve`.
    spice : bool
        Also solve with ngspice (`xbarsim.spice.run_ngspice`), write its
        deck as ``circuit.cir`` and record the differences under
        ``summary["spice"]``: ``max_abs_diff_v`` (node voltages, V),
        ``max_rel_diff_i_out`` (sensed currents, relative to the largest),
        ``seconds``, and ``spice_rounding_v``, ngspice's own rounding on
        lines that float at both ends (`xbarsim.spice.floating_line_rounding`;
        0 for a read, whose lines are all driven). Refused above `SPICE_MAX_CELLS` cells, and when
        ngspice is missing, before anything runs.
    verbose : bool
        Print the summary.
    progress : bool
        On arrays of `PROGRESS_MIN_CELLS` cells or more, one line per
        iteration (its relative Kirchhoff residual) on stderr.
    provenance : dict, optional
        Where ``g`` and ``x`` came from, recorded in ``config``.

    Returns
    -------
    dict
        `summarize` of the solution, plus ``config``.
    """
    from .circuit import Crossbar, read_drives

    config = dict(r_wl=r_wl, r_bl=r_bl, r_in=r_in, r_out=r_out, v0=v0, method=method, tol=tol)
    provenance = check_provenance(provenance, config)
    xbar = Crossbar(g, r_wl=r_wl, r_bl=r_bl, v0=v0)  # checks g, wires and v0 before anything runs
    x = np.asarray(x, dtype=np.float64)
    drives = read_drives(x, r_in=r_in, r_out=r_out)
    sol, seconds, load = _checked_solve(out_dir, xbar, drives, method, tol, spice, progress)
    g = np.asarray(xbar.g)
    summary = {**_written_by("solve"), **summarize(g, x, sol, v0, seconds)}
    summary["kernel_load_seconds"] = load
    summary["config"] = {**config, **provenance}
    terminals = {f"i_terminal_{k}": v for k, v in sol.i_terminal.items()}
    M, N = g.shape
    device = _device_words(v0)

    def parts(unit):  # the terminals too: the plotted loss includes them
        def r(x):
            return "ideal" if x == 0 else f"{x:g} {unit}"

        ends = ("ideal terminals" if not (r_in or r_out) else f"{r_in:g} {unit} terminals" if r_in == r_out
                else f"terminals in {r(r_in)} / out {r(r_out)}")
        return f"{device}, {wires_text(r_wl, r_bl, unit)}, {ends}"

    _write(out_dir, summary, xbar, drives, sol, spice,
           lambda path: plot(g, x, sol, path, title=f"xbarsim solve: {M}x{N}, {parts('Ω')}"),
           i_out=sol.i_out, x=x, inputs=np.ascontiguousarray(x.T), **terminals)
    if verbose:
        print(f"{M}x{N} ({parts('ohm')}), {summary['batch']} input vector(s): "
              f"{sol.method}, {_count(sol.iterations, 'iteration')}, {seconds:.3f} s, relative residual "
              f"{sol.residual:.1e}, KCL {sol.kcl_error:.1e}, power balance {_balance_text(summary)}")
        print(f"sensed currents vs G.T x: relative error {_pct(summary['rel_error'], 4)}, worst output "
              f"{_pct(summary['max_rel_error'], 4)}")
        if v0 is not None:
            # its own line: after "worst output" it read as the worst output's share, and it can exceed the
            # total (the sinh curve raises the currents the IR drop lowers)
            wires = summary['rel_error_wires']
            # on ideal wires and terminals there is nothing for the curve to cancel (it said they partly
            # cancel at 0.0000 %; found by review)
            rest = ("all of the error is the devices' sinh curve" if wires <= 1e-12 else  # rounding alone
                    "the rest is the devices' sinh curve, which bends the product the other way: the two partly "
                    "cancel")
            print(f"  the wires' share, vs the same sinh devices on ideal wires: relative error "
                  f"{_pct(wires, 4)} ({rest})")
        frac = summary['ir_drop_wl_frac']
        # with several vectors the worst drop and the worst fraction may be two vectors' (the line
        # read as one pair)
        of = "of the largest input" if summary["batch"] == 1 else "of the largest input at worst, vector by vector"
        share = "no input drives it" if frac is None or not math.isfinite(frac) else f"{frac:.2%} {of}"
        print(f"worst word-line IR drop, input to far end, terminal included {_mv(summary['ir_drop_wl_v'])} "
              f"({share}), bit-line rise {_mv(summary['bl_rise_v'])}")
        _print_spice_and_files(out_dir, summary, spice, currents=True)
    return summary


def _mv(volts):
    """Millivolts to three decimals, or in exponent form past 1e6 mV (a
    1e300 V input printed 300 digits)."""
    mv = 1e3 * volts
    return f"{mv:.3f} mV" if abs(mv) < 1e6 else f"{mv:.4g} mV"


def _count(n, noun):
    """``"1 iteration"``, ``"3 iterations"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _pct(value, digits):
    """A fraction as a percentage, in exponent form past 1e6 % (a sinh read
    far past V0 printed 140 digits), "n/a" where it is undefined (NaN: an
    ideal product of 0, no input), and says so where it is past double
    precision's range (inf: it read "no current" of 1e296 A)."""
    if value is None or math.isnan(value):
        return "n/a (no current)"
    if math.isinf(value):
        return "past double precision's range"
    return f"{value:.{digits}%}" if abs(value) < 1e4 else f"{100 * value:.{digits}g}%"


def _json_safe(obj):
    """`obj` with NumPy values as Python ones (`json_plain`) and every NaN or
    infinite float as None (JSON has no NaN: strict parsers refused
    ``"max_rel_error": NaN``)."""
    def finite(o):
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, list):
            return [finite(v) for v in o]
        return None if isinstance(o, float) and not math.isfinite(o) else o

    return finite(json_plain(obj))


def _device_words(v0):
    return "linear devices" if v0 is None else f"sinh devices, V0 = {v0:g} V"


def _is_our_deck(path):
    """Whether ``path`` is a deck ``xbarsim solve --spice`` wrote (its second
    line is `xbarsim.spice`'s description of the crossbar)."""
    from .spice import DECK_MARKER

    try:
        with open(path, errors="replace") as fh:
            fh.readline()
            return fh.readline().startswith(DECK_MARKER)
    except OSError:  # missing, a folder, unreadable: not ours to remove
        return False


def _write(out_dir, summary, xbar, drives, sol, spice, draw, **arrays):
    """The ngspice comparison (``--spice``: `_compare_with_spice`, into
    ``summary["spice"]``, its deck as ``circuit.cir``), ``summary.json``,
    ``solution.npz`` with the voltages, device currents, conductances and
    ``arrays``, and ``solve.png`` (``draw(path)``): all of them or none
    (`RunFiles`). A run without ``--spice`` removes an earlier run's deck,
    which is not this solve's; a ``circuit.cir`` that xbarsim did not write
    stays (it was removed too)."""
    stale = tuple(name for name in ("circuit.cir", "circuit-failed.cir")  # a failed --spice run's deck too
                  if not (spice and name == "circuit.cir") and _is_our_deck(os.path.join(out_dir, name)))
    with RunFiles(out_dir, stale=stale) as files:
        if spice:
            summary["spice"] = _compare_with_spice(xbar, drives, sol, files.path("circuit.cir"))
        with open(files.path("summary.json"), "w") as fh:
            json.dump(_json_safe(summary), fh, indent=2, allow_nan=False)
        np.savez_compressed(files.path("solution.npz"), v_wl=sol.v_wl, v_bl=sol.v_bl,
                            i_device=sol.i_device, g=np.asarray(xbar.g), **arrays)
        draw(files.path("solve.png"))


def _print_spice_and_files(out_dir, summary, spice, currents):
    if spice:
        sp = summary["spice"]
        print(f"ngspice ({sp['seconds']:.1f} s): node voltages within {sp['max_abs_diff_v']:.1e} V" +
              (f", sensed currents within {sp['max_rel_diff_i_out']:.1e} of the largest" if currents else ""))
        if sp["spice_rounding_v"] > 1e-12:
            print(f"  (ngspice's own rounding on the lines that float at both ends, held by their devices only: "
                  f"about {sp['spice_rounding_v']:.1e} V; the difference is ngspice's where it is of that size, "
                  "and this solve's Kirchhoff check is in summary.json)")
    print(f"wrote {out_dir}/summary.json, solution.npz, solve.png" + (", circuit.cir" if spice else ""))


def _cell_classes(v, cell):
    """The cell voltages ``v`` (M, N) of a pulse on ``cell`` by class:
    ``(selected word line's others, selected bit line's others, the rest)``."""
    i, j = cell
    return np.delete(v[i], j), np.delete(v[:, j], i), np.delete(np.delete(v, i, axis=0), j, axis=1).ravel()


def summarize_pulse(sol, cell, vp):
    """The voltages of one pulse (`xbarsim.pulse_drives`) by cell class.

    Returns
    -------
    dict
        ``v_selected``; ``half_selected_wl`` and ``half_selected_bl`` (the
        other cells of the selected word line and bit line) and
        ``unselected``, each as ``min`` / ``max`` (V, None where the class
        is empty); ``worst_half_selected_fraction``, the largest
        half-selected ``|V|`` over ``|vp|`` (ideal wires: 1/2 under V/2, 1/3
        under V/3).
    """
    i, j = cell
    v = sol.v_wl - sol.v_bl
    row, col, rest = _cell_classes(v, cell)

    def span(a):
        return dict(min=float(a.min()), max=float(a.max())) if a.size else None

    half = np.concatenate([row, col])
    return dict(
        v_selected=float(v[i, j]), half_selected_wl=span(row), half_selected_bl=span(col), unselected=span(rest),
        worst_half_selected_fraction=float(np.abs(half).max() / abs(vp)) if half.size and vp else None,
    )


def plot_pulse(sol, cell, vp, path, title=""):
    """``solve.png`` of a pulse: the voltage across every cell, and its
    distribution by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i, j = cell
    v = sol.v_wl - sol.v_bl
    fig, ax = plt.subplots(1, 2, figsize=(12, 5))
    lim = float(np.abs(v).max()) or 1.0
    im = ax[0].imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax[0], label="V(word line) - V(bit line) (V)")
    ax[0].plot([j], [i], "s", mfc="none", mec="k", ms=10, label=f"selected ({i}, {j})")
    ax[0].set_xlabel("bit line j")
    ax[0].set_ylabel("word line i")
    integer_ticks(ax[0])
    ax[0].set_title("voltage across each cell")
    # outside the map, below it: inside, it hid the rows next to the selected one
    ax[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    row, col, rest = _cell_classes(v, cell)
    bins = np.linspace(-lim, lim, 81)
    tallest = 1
    for a, name in ((row, "half-selected, selected word line"), (col, "half-selected, selected bit line"),
                    (rest, "unselected")):
        if a.size:
            counts, _, _ = ax[1].hist(a, bins=bins, alpha=0.6, label=f"{name} ({a.size})")
            tallest = max(tallest, int(counts.max()))
    ax[1].axvline(v[i, j], color="k", lw=1.5, label=f"selected: {v[i, j]:.4f} V")
    ax[1].axvline(vp, color="k", ls=":", lw=1, label=f"pulse amplitude {vp:g} V")
    ax[1].set_yscale("log")
    # headroom above the tallest bar for the legend (300 x the cell count
    # ran the axis decades past the bars)
    ax[1].set_ylim(0.5, 100 * tallest)
    reach = 1.05 * max(lim, abs(vp))  # the pulse amplitude's line in view, off the frame's edge
    ax[1].set_xlim(-reach, reach)
    ax[1].set_xlabel("voltage across the cell (V)")
    ax[1].set_ylabel("cells")
    ax[1].set_title("cell voltages by cell class")
    ax[1].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_pulse(out_dir, g, cell, vp, scheme="V/2", *, r_wl=1.0, r_bl=1.0, v0=None, method="auto", tol=None,
              spice=False, verbose=True, progress=True, provenance=None):
    """Solve one programming pulse (`xbarsim.pulse_drives`) and write the study.

    As `run`, with the drives of a pulse of ``vp`` volts on ``cell`` under
    ``scheme`` instead of read inputs; the summary's figures are
    `summarize_pulse`'s.
    """
    from .circuit import Crossbar, pulse_drives

    xbar = Crossbar(g, r_wl=r_wl, r_bl=r_bl, v0=v0)
    drives = pulse_drives(xbar.shape, cell, vp, scheme)  # checks cell before list(cell) below
    config = dict(cell=list(cell), vp=vp, scheme=scheme, r_wl=r_wl, r_bl=r_bl, v0=v0, method=method, tol=tol)
    provenance = check_provenance(provenance, config)
    sol, seconds, load = _checked_solve(out_dir, xbar, drives, method, tol, spice, progress, pulse=True)
    summary = {**_written_by("solve --pulse"), **_solver_figures(sol, seconds)}
    summary["kernel_load_seconds"] = load
    summary["pulse"] = summarize_pulse(sol, cell, vp)
    summary["config"] = {**config, **provenance}
    M, N = xbar.shape
    device = _device_words(v0)
    title = (f"xbarsim solve: {vp:g} V pulse on ({cell[0]}, {cell[1]}) under {scheme}, {M}x{N}, "
             f"{device}, {wires_text(r_wl, r_bl, 'Ω')}")
    _write(out_dir, summary, xbar, drives, sol, spice, lambda path: plot_pulse(sol, cell, vp, path, title=title),
           wl_v=np.asarray(drives["left"].v), bl_v=np.asarray(drives["bottom"].v),
           wl_floating=drives["left"].floating, bl_floating=drives["bottom"].floating,
           **{f"i_terminal_{k}": v for k, v in sol.i_terminal.items()})
    if verbose:
        pu = summary["pulse"]
        print(f"{M}x{N} ({device}, {wires_text(r_wl, r_bl)}), {vp:g} V pulse on ({cell[0]}, {cell[1]}) "
              f"under {scheme}: {sol.method}, {_count(sol.iterations, 'iteration')}, {seconds:.3f} s, KCL "
              f"{sol.kcl_error:.1e}, power balance {_balance_text(summary)}")
        # "half-selected" named once, on the first class present (a 5 x 1 array
        # has none on its word line, and read "; on its bit line")
        shown = [(key, name) for key, name in (("half_selected_wl", "on its word line"),
                                               ("half_selected_bl", "on its bit line"), ("unselected", "unselected"))
                 if pu[key] is not None]
        print(f"selected cell {pu['v_selected']:.4f} V" + "".join(
            f"; {'half-selected ' if k == 0 and key != 'unselected' else ''}{name} {pu[key]['min']:.4f} to "
            f"{pu[key]['max']:.4f} V" for k, (key, name) in enumerate(shown)))
        _print_spice_and_files(out_dir, summary, spice, currents=False)
    return summary


def _check_request(xbar, drives, method, tol):
    """The checks `xbarsim.solve` makes before it computes (tolerance,
    memory, drives, method against the wires), made before ``--out`` is
    created, so that a refused request writes nothing; returns the network
    they built, which the solve then uses (`_checked_solve`)."""
    from .circuit import build_network
    from .solve import DEFAULT_TOL, _check_memory, _check_tol, _resolve_method

    _check_tol(DEFAULT_TOL if tol is None else tol, None)
    _check_memory(xbar, method, **drives, pcg="--method pcg")
    net = build_network(xbar, **drives)
    _resolve_method(net, method)
    return net


def _spice_seconds_per_vector(cells):
    """ngspice's time budget per input vector on ``cells`` devices:
    `SPICE_SECONDS_PER_COLUMN` at `SPICE_MAX_CELLS`, falling as the square of
    the cell count, never below `SPICE_SECONDS_MIN`. Its time per vector
    grows faster than the array: 7.5 ms at 16 x 16, 0.10 s at 32 x 32, 5.5 s
    at 64 x 64 on this project's 2-core machine under load (2026-12-04); a
    budget in proportion to the cell count refused 2000 vectors of an 8 x 6
    array as "up to 8 minutes" that ngspice solved in 2.4 s.
    """
    return max(SPICE_SECONDS_MIN, SPICE_SECONDS_PER_COLUMN * (cells / SPICE_MAX_CELLS) ** 2)


def _spice_timeout(cells, batch):
    """Seconds ngspice is given for `batch` input vectors on `cells` devices:
    `_spice_seconds_per_vector` each, on top of `run_ngspice`'s own 120 s
    (its fixed 120 s ran out from about 30 vectors of 64 x 64 after the
    solve, with advice the command line cannot follow)."""
    return 120.0 + batch * _spice_seconds_per_vector(cells)


def _check_spice(shape, batch=1):
    from .exceptions import SpiceError
    from .spice import _INSTALL_HINT, ngspice_available

    if shape[0] * shape[1] > SPICE_MAX_CELLS:
        raise ParameterError(f"--spice: the {shape[0]} x {shape[1]} array has more than {SPICE_MAX_CELLS} "
                             "devices, too many for ngspice in reasonable time; compare a smaller array "
                             "(or a corner of this one).")
    budget = SPICE_MAX_COLUMNS * SPICE_SECONDS_PER_COLUMN  # ngspice's time for the vectors, seconds
    per_vector = _spice_seconds_per_vector(shape[0] * shape[1])
    if batch * per_vector > budget:
        most = max(1, int(budget / per_vector))
        while (most + 1) * per_vector <= budget:  # the largest batch this check takes, rounding aside
            most += 1
        while most > 1 and most * per_vector > budget:
            most -= 1
        raise ParameterError(f"--spice: {batch} input vectors on a {shape[0]} x {shape[1]} array would give "
                             f"ngspice more than {budget / 60:g} minutes (up to {per_vector:.2g} s per vector "
                             f"at this size); compare at most {most} of them (a few rows of --inputs), or "
                             "drop --spice.")
    if not ngspice_available():
        raise SpiceError(f"--spice needs ngspice, which was not found. {_INSTALL_HINT}")


def _compare_with_spice(xbar, drives, sol, deck_path):
    """Solve with ngspice, write its deck, and return the differences."""
    from .exceptions import SpiceError, XbarsimError
    from .spice import BY_HAND_HINT, floating_line_rounding, run_ngspice, write_netlist

    t0 = time.perf_counter()
    from .solve import _batch_of

    try:
        ref = run_ngspice(xbar, **drives,
                          timeout=_spice_timeout(xbar.shape[0] * xbar.shape[1], _batch_of(*drives.values())))
    except SpiceError as exc:
        if isinstance(exc.__cause__, subprocess.TimeoutExpired):
            # a timeout: the library's advice (run_ngspice's timeout) and the deck are no help here
            raise SpiceError(f"ngspice did not finish within {exc.__cause__.timeout:.0f} s on the "
                             f"{xbar.shape[0]} x {xbar.shape[1]} array; compare fewer input vectors (a few rows "
                             "of --inputs) or a corner of the array, or drop --spice.") from None
        # keep the deck for a run by hand: the library's hint (write_netlist)
        # is no help on the command line, and --out was left empty
        kept = os.path.join(os.path.dirname(deck_path), "circuit-failed.cir")
        try:
            text = write_netlist(xbar, **drives, column=0, title="xbarsim solve --spice: the deck ngspice failed on")
            with open(kept, "w") as fh:
                fh.write(text)
        except (OSError, XbarsimError):
            raise exc from None
        raise SpiceError(f"{str(exc).replace(BY_HAND_HINT, '').rstrip()}\nThe deck of the first input vector is "
                         f"{kept}: run `ngspice -b {kept}` to see ngspice's full log.") from None
    seconds = time.perf_counter() - t0
    with open(deck_path, "w") as fh:
        fh.write(ref.netlist)
    dv = max(float(np.max(np.abs(sol.v_wl - ref.v_wl))), float(np.max(np.abs(sol.v_bl - ref.v_bl))))
    scale = float(np.max(np.abs(ref.i_out)))
    di = float(np.max(np.abs(sol.i_out - ref.i_out))) / scale if scale > 0 else 0.0
    return dict(max_abs_diff_v=dv, max_rel_diff_i_out=di, seconds=seconds,
                spice_rounding_v=floating_line_rounding(xbar, **drives))


def _checked_solve(out_dir, xbar, drives, method, tol, spice, progress, pulse=False):
    """Every check first (`_check_request`, `_check_spice`, then ``--out``),
    the kernels loaded (`_warm_up`), then the solve: ``(solution, seconds,
    kernel load seconds)``. ``pulse``: the drives are a ``--pulse``'s (the
    errors' advice is worded as its options)."""
    from .exceptions import CircuitError
    from .solve import _batch_of

    try:
        net = _check_request(xbar, drives, method, tol)
    except CircuitError as exc:
        raise type(exc)(_flag_hints(str(exc), pulse), word_lines=exc.word_lines, bit_lines=exc.bit_lines) from None
    except ParameterError as exc:  # the library's advice in this command's options (pcg / mg refused)
        worded = _flag_hints(str(exc), pulse)
        if type(exc) is not ParameterError or worded == str(exc):
            raise
        raise ParameterError(worded) from None
    if spice:
        _check_spice(xbar.shape, _batch_of(*drives.values()))
    made_out = check_out_dir(out_dir, ("summary.json", "solution.npz", "solve.png")
                             + (("circuit.cir",) if spice else ()))
    try:
        return _warmed_solve(net, xbar, drives, method, tol, progress, pulse)
    except BaseException:
        remove_if_made_and_empty(out_dir, made_out)  # a solve that failed left its new --out empty
        raise


def _warmed_solve(net, xbar, drives, method, tol, progress, pulse):
    """`_checked_solve`'s kernel load and solve."""
    from .solve import DEFAULT_TOL, _solve_network, wire_device_ratio

    v = drives["left"].v
    # the warm-up needs the same kernels, not the same values: which wires
    # are ideal, the device law, batching
    load = _warm_up(method, g_shape=xbar.shape, batch=np.ndim(v) == 2,
                    r_wl=0.0 if np.any(np.asarray(xbar.r_wl) == 0) else 1.0,
                    r_bl=0.0 if np.any(np.asarray(xbar.r_bl) == 0) else 1.0,
                    v0=None if xbar.linear else 0.45, wire_ratio=wire_device_ratio(xbar))
    callback = _report_iteration if progress and xbar.shape[0] * xbar.shape[1] >= PROGRESS_MIN_CELLS else None
    t0 = time.perf_counter()
    try:
        sol = _solve_network(net, method, float(DEFAULT_TOL if tol is None else tol), None, callback, None)
    except ConvergenceError as exc:
        # its own class kept (a DriveOverflowError stays one)
        raise type(exc)(_flag_hints(str(exc), pulse), exc.residual_history, exc.iterations) from None
    return sol, time.perf_counter() - t0, load


_TOL = "--tol (e.g. --tol 1e-8)"
_LOWER_DRIVES = ("lower the inputs (--v-in, --inputs)", "lower --vp")  # a read's, a pulse's

_FLAG_HINTS = (
    # (library's words, a read's, a pulse's)
    ("Raise maxiter, loosen tol, or use method='direct'", f"Loosen {_TOL}, or use --method direct", None),
    ("Loosen tol or use method='direct'", f"Loosen {_TOL} or use --method direct", None),
    ("Loosen tol or raise maxiter", f"Loosen {_TOL}", None),
    ("Raise maxiter, try method='direct' or 'mg'", "Try --method direct or --method mg", None),
    ("Lower the drive voltages or raise v0, or loosen tol", "L{} or raise --v0, or loosen " + _TOL, "upper"),
    ("lower the drive voltages or raise v0.", "{} or raise --v0.", "lower"),
    ("; the residual history is attached as .residual_history.", ".", None),
    ("; the residual history is attached.", ".", None),
    ("Use method='direct' (or 'auto', which takes it here)", "Use --method direct (or --method auto, which takes "
     "it here)", None),
    ("try method='pcg', whose line solves", "try --method pcg, whose line solves", None),
)
"""The solvers' advice in the library's names, as this command's options
(it has no --maxiter): the advice named ``maxiter``, ``method='direct'``,
``v0`` and the drive voltages. With a third entry, the
command's words take `_LOWER_DRIVES` for the read or the pulse, its first
letter dropped ("upper") or kept ("lower"). `test_flag_hints_match_the_
solvers_words` checks every library phrase is still in the sources."""


def _flag_hints(message, pulse=False):
    """``message`` with the library's advice worded as this command's
    options; ``pulse``: for a ``--pulse`` (no input terminals; the unselected
    lines float under ``--scheme floating``)."""
    from ._newton import OVERFLOW_ADVICE
    from .circuit import FLOATING_ADVICE

    lower = _LOWER_DRIVES[bool(pulse)]
    for library, flags, case in _FLAG_HINTS:
        if case is not None:
            flags = flags.format(lower[1:] if case == "upper" else lower)
        message = message.replace(library, flags)
    message = message.replace(OVERFLOW_ADVICE, f"{lower} or raise --v0." if pulse else
                              f"{lower} or give them a terminal resistance (--r-in), or raise --v0.")
    for one, advice in FLOATING_ADVICE.items():  # only a pulse's lines float
        message = message.replace(advice, f"Give {'this line' if one else 'these lines'} a device with g > 0 in "
                                          "--g, or use --scheme V/2 or V/3, which drive every line.")
    return message


def _report_iteration(it, rel):
    print(f"xbarsim solve: iteration {it}: relative Kirchhoff residual {rel:.2e}", file=sys.stderr, flush=True)


def _warm_up(method, g_shape, batch, r_wl, r_bl, v0, wire_ratio=0.0):
    """Solve a small array (`xbarsim.solve.warm_up_shape`: one that builds
    multigrid levels when the real solve does) with the method, wires,
    device law and batching of the real solve, so that its time is the
    solve's and not the loading (or, on a first run of an install, the
    compiling) of the kernels; returns the seconds it took. Skipped (0.0)
    for a request the real solve will refuse with its own message
    (multigrid with an ideal wire)."""
    from .solve import choose_method, warm_up

    chosen = choose_method(g_shape, method, ideal_wire=r_wl == 0 or r_bl == 0, nonlinear=v0 is not None,
                           wire_ratio=wire_ratio)  # the real solve's choice; the warm-up's own wires are 1 ohm
    if chosen == "mg" and (r_wl == 0 or r_bl == 0):
        return 0.0
    # a first run of an install compiles for tens of seconds: say so (the
    # command sat silent)
    print("xbarsim solve: loading the solver kernels (the first run of an install compiles them)...",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    warm_up(g_shape, chosen, r_wl, r_bl, v0, batch=batch)
    return time.perf_counter() - t0


def _cell_arg(text):
    try:
        i, j = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"cell {text!r}: give two integers I,J, e.g. 3,5") from None
    return i, j


def _check_flags(args):
    """``--tol`` and ``--vp`` checked first, by the names typed: the library
    refuses them as ``tol`` and ``pulse_drives: vp``."""
    from .solve import _check_tol

    if args.tol is not None:
        # named once, as the flag ("--tol 1e-15: tol = 1e-15 is below ..." named it twice)
        _check_tol(args.tol, None, name=f"--tol {args.tol:g}")
    if args.vp is not None and not math.isfinite(args.vp):
        raise ParameterError(f"--vp {args.vp:g}: give a finite pulse amplitude in volts (negative for a reset).")
    if args.v0 is not None and not (math.isfinite(args.v0) and args.v0 > 0):
        # the library's refusal named `v0`
        raise ParameterError(f"--v0 {args.v0:g}: give the sinh devices' voltage scale, a finite number of volts "
                             "> 0 (e.g. --v0 0.25), or leave it out for linear devices.")


def _check_resistances(g, wl, bl, t_in, t_out, method):
    """The circuit's checks of its resistances (`xbarsim.Crossbar`,
    `xbarsim.solve`), made first with the command line's names: the
    library's refusals name ``r_wl``, ``left.r``, ``bottom.r`` and
    ``method='mg'``, and suggest ``Drive(floating=True)``, none of which a
    shell user can give. ``wl`` and ``bl``: (option as
    typed, ohms) of the word- and bit-line segments; ``t_in`` and ``t_out``
    the same of the input and sense terminals."""
    from .circuit import DYNAMIC_RANGE

    gmax = float(np.max(g, initial=0.0))
    for (flag, r), part, gm in ((wl, "wire", gmax), (bl, "wire", gmax), (t_in, "input terminal", None),
                                (t_out, "sense terminal", None)):
        check_r_wire(r, flag, part, gmax=gm)
    for (flag, r), (wire, rw) in ((t_in, wl), (t_out, bl)):
        if rw > 0 and r > DYNAMIC_RANGE * rw:
            raise ParameterError(f"{flag} {r:g}: the terminal is {r / rw:.2g} times the {rw:g} ohm segments of "
                                 f"{wire}; beyond {DYNAMIC_RANGE:.0e} double precision cannot resolve the line "
                                 f"against it. Give a smaller {flag} (0: ideal), or a larger {wire}.")
    if method == "mg" and 0 in (wl[1], bl[1]):
        zero = wl[0] if wl[1] == 0 else bl[0]
        raise ParameterError(f"--method mg needs wire segments of more than 0 ohms ({zero} is 0: ideal wire merges "
                             "the line's nodes, which its 2 x 2 coarsening does not handle); use --method pcg or "
                             "auto, or give a resistance.")


def _nonneg(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite resistance >= 0 ohms")
    return value


def register(subparsers):
    from .circuit import G_SUSPECT, PULSE_SCHEMES
    from .solve import METHODS

    p = subparsers.add_parser(
        "solve",
        help="one read of your own array (G from a file): voltages, currents, IR drop, MVM error",
        description=help_text(__doc__.split("\n", 2)[2]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  xbarsim solve --g G.npy --inputs x.csv --r-wire 2 --v0 0.25 --out read\n"
               "  xbarsim solve --g G.npy --pulse 3,5 --vp 1.6 --scheme V/3 --v0 0.45 --out pulse",
    )
    p.add_argument("--g", required=True, metavar="FILE", help="conductances, S (.npy, or .csv rows: one per word line)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (JSON, NPZ, PNG)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="FILE",
                     help="input voltages, V (.npy or .csv): M values, or rows of M (one input vector per row)")
    src.add_argument("--v-in", type=float, default=0.2, metavar="V",
                     help="every word line at this voltage (default 0.2 V) when no --inputs")
    src.add_argument("--pulse", type=_cell_arg, default=None, metavar="I,J",
                     help="instead of a read, a programming pulse on cell (I, J) (see --vp, --scheme)")
    p.add_argument("--vp", type=float, default=None, metavar="V",
                   help="pulse amplitude with --pulse, volts (negative: reset; default 1.5)")
    p.add_argument("--scheme", choices=sorted(PULSE_SCHEMES), default=None,
                   help="bias scheme of the unselected lines with --pulse (default V/2)")
    p.add_argument("--r-wire", type=_nonneg, default=None, metavar="OHM",
                   help="word- and bit-line segment resistance, ohms (default 1)")
    p.add_argument("--r-wl", type=_nonneg, default=None, metavar="OHM", help="word-line segments only")
    p.add_argument("--r-bl", type=_nonneg, default=None, metavar="OHM", help="bit-line segments only")
    p.add_argument("--r-terminal", type=_nonneg, default=None, metavar="OHM",
                   help="input and sense terminal resistance, ohms (default 0: ideal sources and virtual "
                        "ground; xbarsim scale's --r-terminal defaults to 1)")
    p.add_argument("--r-in", type=_nonneg, default=None, metavar="OHM", help="input terminals only")
    p.add_argument("--r-out", type=_nonneg, default=None, metavar="OHM", help="sense terminals only")
    p.add_argument("--v0", type=float, default=None, metavar="V",
                   help="sinh devices I = G V0 sinh(V/V0) (default: linear devices)")
    p.add_argument("--method", choices=list(METHODS), default="auto",
                   help="solver of xbarsim.solve (default auto: chosen by size and wires)")
    p.add_argument("--tol", type=float, default=None, metavar="REL", help="relative Kirchhoff tolerance (default: the solver's)")
    p.add_argument("--spice", action="store_true",
                   help=f"also solve with ngspice (up to {SPICE_MAX_CELLS} devices), write its deck "
                        "circuit.cir, and report the differences")
    p.add_argument("--no-progress", action="store_true",
                   help="no per-iteration lines on stderr (printed from 512 x 512 cells on)")

    def main(args):
        # the whole run, writing included: a write that failed or a Ctrl-C
        # while drawing left a new, empty --out behind
        with removing_new_folders(args.out):
            return _main(args)

    def _main(args):
        _check_flags(args)
        g = load_conductances(args.g, "--g")
        if g.ndim != 2:
            raise ParameterError(f"--g {args.g!r} has shape {g.shape}; give a 2-D array, one row of "
                                 "conductances (siemens) per word line.")
        for (both, v), (a, va), (b, vb) in (
                (("--r-wire", args.r_wire), ("--r-wl", args.r_wl), ("--r-bl", args.r_bl)),
                (("--r-terminal", args.r_terminal), ("--r-in", args.r_in), ("--r-out", args.r_out))):
            if None not in (v, va, vb):  # the general value was dropped without a word
                raise ParameterError(f"{both} {v:g} sets what {a} {va:g} and {b} {vb:g} already set, so it "
                                     f"would be ignored; drop {both}, or one of {a} / {b}.")
        r_wire = 1.0 if args.r_wire is None else args.r_wire
        r_terminal = 0.0 if args.r_terminal is None else args.r_terminal
        wl = ("--r-wire", r_wire) if args.r_wl is None else ("--r-wl", args.r_wl)
        bl = ("--r-wire", r_wire) if args.r_bl is None else ("--r-bl", args.r_bl)
        t_in = ("--r-terminal", r_terminal) if args.r_in is None else ("--r-in", args.r_in)
        t_out = ("--r-terminal", r_terminal) if args.r_out is None else ("--r-out", args.r_out)
        bad = ~np.isfinite(g) if g.dtype.kind in "fc" else np.zeros(g.shape, bool)
        if bad.any():
            # an inf was blamed on --r-wire ("inf times the wire's")
            where = [int(k) for k in np.argwhere(bad)[0]]
            raise ParameterError(f"--g {args.g!r} holds NaN or inf at {where} ({int(bad.sum())} value(s)); give "
                                 "finite conductances in siemens (0 for an open device).")
        neg = g < 0 if g.dtype.kind in "fiu" else np.zeros(g.shape, bool)
        if neg.any():  # the library's refusal named `g` and neither the place nor a fix
            where = [int(k) for k in np.argwhere(neg)[0]]
            raise ParameterError(f"--g {args.g!r} holds a negative conductance at {where} ({float(g[tuple(where)]):g} "
                                 f"S; {int(neg.sum())} value(s) in all); conductances are >= 0 siemens (0: an "
                                 "open device). Check the file's sign or units.")
        if np.max(g) > G_SUSPECT:
            # solved, with a warning, at 83 % error; `xbarsim program` refuses them too
            raise ParameterError(f"--g {args.g!r} holds conductances up to {float(np.max(g)):g} S, devices of "
                                 f"{1.0 / float(np.max(g)):.3g} ohm: these look like microsiemens. Give siemens "
                                 "(300 uS is 300e-6), or 1 / R for resistances in ohms.")
        _check_resistances(g, wl, bl, t_in, t_out, args.method)
        (r_wl, r_bl), (r_in, r_out) = (wl[1], bl[1]), (t_in[1], t_out[1])
        if args.pulse is None and (args.vp is not None or args.scheme is not None):
            raise ParameterError("--vp and --scheme set up a programming pulse; add --pulse I,J (the cell), or "
                                 "drop them for a read.")
        if args.pulse is not None:
            if r_in or r_out:
                flags = " / ".join(dict.fromkeys(flag for flag, r in (t_in, t_out) if r))
                raise ParameterError(f"{flags}: terminal resistances belong to a read; a --pulse drives its "
                                     "lines through ideal sources, as the programming simulation does. Drop "
                                     f"{flags}.")
            (i, j), (M, N) = args.pulse, g.shape
            if not (0 <= i < M and 0 <= j < N):  # the library's refusal names pulse_drives
                raise ParameterError(f"--pulse {i},{j} is outside the {M} x {N} array of --g {args.g!r}: give "
                                     f"a row 0..{M - 1} and a column 0..{N - 1}.")
            run_pulse(args.out, g, args.pulse, 1.5 if args.vp is None else args.vp,
                      "V/2" if args.scheme is None else args.scheme, r_wl=r_wl, r_bl=r_bl, v0=args.v0,
                      method=args.method, tol=args.tol, spice=args.spice, progress=not args.no_progress,
                      provenance=dict(g=os.path.abspath(args.g)))
            return 0
        if args.inputs is not None:  # "" too: load_array says there is no such file
            # with one word line a .csv of B single-value rows is B input vectors (ndmin=2: read as one
            # vector of B values it was refused), and one row of B values is refused as too long
            x = _inputs(load_array(args.inputs, "--inputs", "input voltages in volts, one row per input vector",
                                   ndmin=2 if g.shape[0] == 1 else 1), g.shape[0])
            provenance = dict(g=os.path.abspath(args.g), inputs=os.path.abspath(args.inputs))
        else:
            if not np.isfinite(args.v_in):
                raise ParameterError(f"--v-in {args.v_in!r}: give a finite voltage.")
            x = np.full(g.shape[0], args.v_in)
            provenance = dict(g=os.path.abspath(args.g), v_in=args.v_in)
        run(args.out, g, x, r_wl=r_wl, r_bl=r_bl, r_in=r_in, r_out=r_out, v0=args.v0,
            method=args.method, tol=args.tol, spice=args.spice, progress=not args.no_progress,
            provenance=provenance)
        return 0

    p.set_defaults(func=main)
