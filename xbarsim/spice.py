"""The SPICE bridge: netlists of a crossbar and its drives, solved by ngspice.

ngspice is the external ground truth of xbarsim (docs/CIRCUIT.md,
"Reference solver"). `write_netlist` writes the circuit exactly as that
document defines it; `run_ngspice` solves it with ngspice in batch mode and
reads every node voltage and source current back at full double precision
(binary raw file).

Netlist conventions
-------------------
- Nodes ``WL_i_j`` (word line ``i`` above column ``j``) and ``BL_i_j`` (bit
  line ``j`` below row ``i``), as docs/CIRCUIT.md names them; ground is
  ``0``. (SPICE reads names in any case; ngspice writes them back in lower
  case.)
- Nodes joined by an ideal (0 ohm) wire are one node, named after the first
  node of the run (smallest ``j`` on a word line, smallest ``i`` on a bit
  line): no tiny resistor stands in for the ideal wire.
- Wire segments ``R_wl_i_j`` (``WL(i,j)``--``WL(i,j+1)``) and ``R_bl_i_j``
  (``BL(i,j)``--``BL(i+1,j)``).
- Devices ``R_i_j`` (linear, resistance ``1/G``; ``G_i_j``, a
  conductance, below 1 / DBL_MAX where ``1/G`` overflows) or ``B_i_j`` (sinh,
  as CIRCUIT.md writes it: ``B_i_j WL_i_j BL_i_j I = G*V0*sinh(V(WL_i_j,BL_i_j)/V0)``);
  open devices (``G = 0``) are left out.
- A driven end ``E`` (``left``, ``right``, ``top``, ``bottom``) of line
  ``l``: source ``V_E_l`` from node ``src_E_l`` to ground and resistor
  ``R_E_l`` from ``src_E_l`` to the line's end node; with ``R = 0`` the
  source sits directly on the end node. Floating ends have nothing.
  SPICE reports the current of a source flowing into its ``+`` node from
  the circuit, so the current into the array is ``-i(V_E_l)``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from .circuit import END_NAMES, FLOATING, _driven_lines, build_network, driven_ends
from .devices import real_scalar
from .exceptions import ParameterError, SpiceError
from ._docfields import document_fields
from ._memory import require

__all__ = ["write_netlist", "run_ngspice", "ngspice_available", "floating_line_rounding", "SpiceResult", "OPTIONS"]

OPTIONS = ".options reltol=1e-9 abstol=1e-18 vntol=1e-12"
"""ngspice tolerances of the reference solve (docs/CIRCUIT.md)."""

NGSPICE = None
"""ngspice executable (name on PATH or full path). None (the default): the
``XBARSIM_NGSPICE`` environment variable as it is at each run, else
``ngspice`` (read at each run, not at import: a notebook that sets the
variable after ``import xbarsim`` had it ignored)."""


def _executable():
    """The ngspice executable to run now: `NGSPICE`, else ``XBARSIM_NGSPICE``, else ``ngspice``."""
    if NGSPICE is not None:
        return NGSPICE
    return os.environ.get("XBARSIM_NGSPICE") or "ngspice"
TIMEOUT_MAX = 1e7
"""Longest ngspice run `run_ngspice` waits for, s (about 116 days)."""

_INSTALL_HINT = (
    "Install it (Debian/Ubuntu: `apt-get install ngspice`; conda: "
    "`conda install -c conda-forge ngspice`) or point the XBARSIM_NGSPICE "
    "environment variable at the executable."
)

# Output that means ngspice's answer is not a clean operating point even when
# it exits 0: it falls back to gmin/source stepping and finally a transient
# run on a singular matrix and still writes a result.
_FAILURE_MARKERS = (
    "error",
    "singular matrix",
    "transient op",
    "timestep too small",
    "aborted",
)

DECK_MARKER = "* xbarsim crossbar: "
"""How the second line of every deck xbarsim writes begins (after its
title): how ``xbarsim solve`` tells its own decks from a user's."""

_STEPPING_DONE = re.compile(r"(gmin|source) stepping completed")
_RANGE_ERROR = re.compile(r"error: [^\n]* out of range for (sinh|cosh|exp)\s*\n\s*in line [^\n]*")
"""An iterate's argument out of range for the device law, and the deck line
ngspice names after it (`_run_deck`)."""
_STEPPING_SINGULAR = re.compile(r"warning: singular matrix[^\n]*")
"""A failed gmin-stepping attempt's warning, left in the output when source
stepping then completed (`_run_deck`)."""

_RAW_NAME = "xbarsim_col{}.raw"


@document_fields
@dataclass(frozen=True, eq=False)
class SpiceResult:
    """Node voltages and currents of a crossbar solved by ngspice.

    Shapes match `xbarsim.Solution`: (M, N) / (N,) etc., with a trailing
    batch dimension B when any drive voltage had one.
    """

    v_wl: np.ndarray
    """Word-line node voltages, volts, (M, N[, B]); nodes merged by ideal wire share the voltage."""
    v_bl: np.ndarray
    """Bit-line node voltages, volts, (M, N[, B])."""
    i_device: np.ndarray
    """Device currents, amperes, (M, N[, B]), from the SPICE node voltages and the device law (0 for open devices)."""
    i_out: np.ndarray
    """Sense current of each bit line, amperes, (N[, B]): out of the array through its bottom end (0 where it floats)."""
    i_terminal: dict
    """Current into the array through each end, amperes: keys left/right (M[, B]) and top/bottom (N[, B]);
    0 where the end floats (`driven` says which ends are driven)."""
    driven: dict
    """Which ends are driven: keys as `i_terminal`, boolean (M,) / (N,) arrays, False where the end floats."""
    netlist: str
    """The complete deck handed to ngspice (with the control block that solves every batch column)."""


# ----------------------------------------------------------------------------
# Netlist
# ----------------------------------------------------------------------------


def _num(x):
    """A float in SPICE syntax: the shortest text that reads back to the same
    double in Python. ngspice's own parser is less exact: it read about a
    third of such values 1-2 ulp off (1.8018547853037412 as
    1.8018547853037408), and subnormals (below 2.2e-308) as 0."""
    return repr(float(x))


def _node_names(xbar):
    """Node name of every WL(i,j) and BL(i,j) after merging ideal wires."""
    M, N = xbar.shape
    r_wl = xbar.r_wl_full()
    r_bl = xbar.r_bl_full()
    wl = [[""] * N for _ in range(M)]
    bl = [[""] * N for _ in range(M)]
    for i in range(M):
        start = 0
        for j in range(N):
            if j > 0 and r_wl[i, j - 1] != 0:
                start = j
            wl[i][j] = f"WL_{i}_{start}"
    for j in range(N):
        start = 0
        for i in range(M):
            if i > 0 and r_bl[i - 1, j] != 0:
                start = i
            bl[i][j] = f"BL_{start}_{j}"
    return wl, bl


def _end_node(end, line, wl, bl):
    M, N = len(wl), len(wl[0])
    if end == "left":
        return wl[line][0]
    if end == "right":
        return wl[line][N - 1]
    if end == "top":
        return bl[0][line]
    return bl[M - 1][line]


def _voltages(spec, column):
    """Source voltages (L,) of one end in batch column `column` (unbatched ends broadcast)."""
    return spec.v[:, column if spec.v.shape[1] > 1 else 0]


def _check_column(net, column):
    if isinstance(column, bool) or not isinstance(column, (int, np.integer)):
        raise ParameterError(f"column must be an integer batch index; got {column!r}.")
    if not 0 <= column < net.batch:
        raise ParameterError(
            f"column {column} is out of range: the drives have {net.batch} batch column(s); "
            f"pick 0 <= column < {net.batch}."
        )


TITLE_MAX = 200
"""Characters of a title kept on the deck's first line."""


def _inert_title(title):
    """``title`` as a first line ngspice reads as a title and nothing else:
    white space collapsed to single spaces, characters that are not
    printable (or not encodable in UTF-8: a surrogate from a file name)
    replaced by ``?``, at most `TITLE_MAX` characters, and ``title: ``
    in front of one that begins with ``.``, ``*`` or ``+``. ngspice acts on
    a first line that is a dot command (a title ``.include x.cir`` pulled
    x.cir's elements into the circuit, with no error), reads a deck whose
    first line is ``*ng_script`` as a script of commands, and reads what
    follows the 5000th character of a line as a new line.
    """
    text = " ".join(str(title).split()) or "xbarsim crossbar"
    text = "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in text)
    if text.startswith((".", "*", "+")):  # a dot command; "*ng_script" makes the deck a script
        text = "title: " + text
    return text if len(text) <= TITLE_MAX else text[:TITLE_MAX - 3] + "..."


def _deck(net, column, title, control):
    """Deck text of one batch column; `control` replaces ``.op`` when given."""
    xbar = net.xbar
    M, N = xbar.shape
    wl, bl = _node_names(xbar)
    title = _inert_title(title)
    kind = "linear devices" if xbar.linear else "sinh devices"
    lines = [
        title,
        f"{DECK_MARKER}M={M} word lines, N={N} bit lines, {kind}, "
        f"batch column {column} of {net.batch}"
        + ("; the .control block alters the sources for each next one" if control and net.batch > 1 else ""),
        "* word-line wire segments (0 ohm segments are merged nodes)",
    ]
    r_wl = xbar.r_wl_full()
    for i in range(M):
        for j in range(N - 1):
            if r_wl[i, j] != 0:
                lines.append(f"R_wl_{i}_{j} {wl[i][j]} {wl[i][j + 1]} {_num(r_wl[i, j])}")
    lines.append("* bit-line wire segments")
    r_bl = xbar.r_bl_full()
    for i in range(M - 1):
        for j in range(N):
            if r_bl[i, j] != 0:
                lines.append(f"R_bl_{i}_{j} {bl[i][j]} {bl[i + 1][j]} {_num(r_bl[i, j])}")
    lines.append("* devices (G = 0: open, left out)")
    g = xbar.g
    v0 = None if xbar.linear else xbar.v0_full()
    for i in range(M):
        for j in range(N):
            if g[i, j] == 0:
                continue
            a, b = wl[i][j], bl[i][j]
            if v0 is None:
                r = 1.0 / float(g[i, j])
                if math.isfinite(r):
                    lines.append(f"R_{i}_{j} {a} {b} {_num(r)}")
                else:
                    # below 1 / DBL_MAX (5.6e-309 S) the resistance is inf, which
                    # ngspice cannot read: a conductance (a VCCS driven by its own
                    # voltage) instead
                    lines.append(f"G_{i}_{j} {a} {b} {a} {b} {_num(g[i, j])}")
            else:
                gv, s = _num(g[i, j]), _num(v0[i, j])
                lines.append(f"B_{i}_{j} {a} {b} I = {gv}*{s}*sinh(V({a},{b})/{s})")
    lines.append("* driven ends: ideal source behind the terminal resistance")
    for end in ("left", "right", "top", "bottom"):
        spec = net.ends[end]
        if spec is None:
            continue
        volts = _voltages(spec, column)
        for line in range(spec.mode.shape[0]):
            if spec.mode[line] == FLOATING:
                continue
            node = _end_node(end, line, wl, bl)
            v = _num(volts[line])
            if spec.g[line] > 0:
                src = f"src_{end}_{line}"
                lines.append(f"V_{end}_{line} {src} 0 {v}")
                lines.append(f"R_{end}_{line} {src} {node} {_num(spec.r[line])}")
            else:
                lines.append(f"V_{end}_{line} {node} 0 {v}")
    lines.append(OPTIONS)
    if control is None:
        lines.append(".op")
    else:
        lines.extend(control)
    lines.append(".end")
    return "\n".join(lines) + "\n"


def write_netlist(xbar, left=None, right=None, top=None, bottom=None, column=0,
                  title="xbarsim crossbar"):
    """The SPICE netlist of a crossbar and its drives (docs/CIRCUIT.md).

    Parameters
    ----------
    xbar : Crossbar
        The array: conductances, wire resistances, device nonlinearity.
    left, right, top, bottom : Drive or None
        Line ends, as in `xbarsim.solve`; None floats every end of that kind.
    column : int
        Which batch column of the drive voltages to write when a voltage
        has a trailing batch dimension (0 otherwise).
    title : str
        First line of the deck, made inert: white space collapsed, characters
        that are not printable replaced by ``?``, at most 200 characters, and
        ``title: `` in front of one that begins with ``.``, ``*`` or ``+``
        (ngspice runs a dot command on the first line, and reads a deck that
        begins ``*ng_script`` as a script).

    Returns
    -------
    str
        The netlist, ending with the tight tolerances of the reference solve,
        ``.op`` and ``.end``. Node and element names are described in the
        module docstring.

    Raises
    ------
    ParameterError, CircuitError
        The same bad input `xbarsim.solve` rejects, or a bad `column`.
    MemoryLimitError
        A deck that would not fit in memory (`SPICE_DECK_BYTES_PER_CELL`),
        before it is built.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> from xbarsim.spice import write_netlist
    >>> text = write_netlist(xs.Crossbar(np.full((1, 1), 1e-4)),
    ...                      left=xs.Drive(0.2), bottom=xs.Drive(0.0))
    >>> "R_0_0 WL_0_0 BL_0_0 10000.0" in text
    True
    """
    net = build_network(xbar, left=left, right=right, top=top, bottom=bottom)
    _check_column(net, column)
    M, N = xbar.shape
    # a 2200 x 2200 deck ran 22 s into a raw MemoryError
    require(M * N * SPICE_DECK_BYTES_PER_CELL, f"the SPICE netlist of a {M} x {N} array",
            "write the netlist of a smaller array (ngspice itself is the reference for small circuits: "
            "run_ngspice refuses arrays past what it can solve)")
    return _deck(net, column, title, None)


# ----------------------------------------------------------------------------
# Running ngspice
# ----------------------------------------------------------------------------


def ngspice_available():
    """True when the ngspice executable (`NGSPICE`, else ``XBARSIM_NGSPICE``) can be found."""
    return shutil.which(_executable()) is not None


def floating_line_rounding(xbar, left=None, right=None, top=None, bottom=None):
    """Estimated rounding error, volts, of ngspice's node voltages on lines
    that float at both ends (a ``"floating"`` bias scheme leaves them so).

    Such a line is held only by its devices, and ngspice's LU factorization
    of the whole circuit loses about ``eps * g_wire / g_held`` of the drive
    on it: ``g_wire`` the conductance of the line's lowest-resistance
    segment, ``g_held`` the sum of its devices' conductances. With 1e-11 S
    devices on 0.01 ohm wires that is a millivolt, where xbarsim's solve,
    whose line elimination is exact to rounding on the line, is within
    1e-13 V of an exact rational solve. 0.0 when no line
    floats or every floating line is one node (ideal wire). An estimate, not
    a bound: on a 6 x 6 floating-scheme pulse of 1e-11 S devices on 0.01 ohm
    wires ngspice was 1.7 mV off where it says 0.37 mV. The comparison of
    ``xbarsim solve --spice`` reports it beside the measured difference.
    """
    net = build_network(xbar, left=left, right=right, top=top, bottom=bottom)
    scale = float(np.max(net.drive_scale(), initial=0.0))
    worst = 0.0
    for names, r, g in ((END_NAMES["wl"], xbar.r_wl_full(), xbar.g), (END_NAMES["bl"], xbar.r_bl_full().T, xbar.g.T)):
        for line in np.nonzero(~_driven_lines(net.ends, names, g.shape[0]))[0]:
            segments = r[line][r[line] > 0]
            held = float(np.sum(g[line]))
            if segments.size and held > 0:
                worst = max(worst, float(np.finfo(float).eps) / (float(np.min(segments)) * held))
    return worst * scale


def _control_block(net):
    """Solve column 0, then alter the changed sources and solve each next column."""
    # ``destroy all`` after each write: ngspice keeps every operating point
    # as a plot otherwise, and each next ``op`` got slower with their number
    # (8,000 vectors of a 1 x 1 array took 81 s instead of 9 s)
    block = [".control", "set filetype=binary", "op", f"write {_RAW_NAME.format(0)}", "destroy all"]
    for col in range(1, net.batch):
        for end in ("left", "right", "top", "bottom"):
            spec = net.ends[end]
            if spec is None or not spec.batched:
                continue
            now, before = _voltages(spec, col), _voltages(spec, col - 1)
            for line in np.nonzero((spec.mode != FLOATING) & (now != before))[0]:
                block.append(f"alter v_{end}_{line} dc = {_num(now[line])}")
        block += ["op", f"write {_RAW_NAME.format(col)}", "destroy all"]
    block += ["quit", ".endc"]
    return block


_BRANCH = re.compile(r"^i\((.+)\)$|^(.+)#branch$")
_VOLTAGE = re.compile(r"^v\((.+)\)$")


def _parse_raw(data, source):
    """Voltages and source currents of a binary ngspice raw file (one point).

    Returns ``(voltages, currents)``: dicts keyed by lower-case node and
    source name.
    """
    marker = b"Binary:\n"
    pos = data.find(marker)
    if pos < 0:
        raise SpiceError(f"{source}: not a binary ngspice raw file (no 'Binary:' section).")
    try:
        # the title line holds the caller's text, which may not be ASCII (a
        # title "résumé" made every run fail as an unreadable header):
        # only the field names and numbers are read
        header = data[:pos].decode("ascii", errors="replace").splitlines()
        fields = {}
        names = []
        in_vars = False
        for line in header:
            if in_vars and line.startswith(("\t", " ")):
                parts = line.split()
                names.append(parts[1].lower())
                continue
            in_vars = False
            key, _, value = line.partition(":")
            if key == "Variables":
                in_vars = True
            else:
                fields[key.strip()] = value.strip()
        nvars = int(fields["No. Variables"])
        npoints = int(fields["No. Points"])
        flags = fields.get("Flags", "")
    except (UnicodeDecodeError, KeyError, ValueError, IndexError) as exc:
        raise SpiceError(f"{source}: unreadable raw file header ({exc!r}).") from exc
    if "complex" in flags or npoints != 1 or len(names) != nvars:
        raise SpiceError(
            f"{source}: expected one real operating point with {len(names)} variables; "
            f"got flags {flags!r}, {npoints} points, {nvars} variables."
        )
    body = data[pos + len(marker):]
    if len(body) < 8 * nvars:
        raise SpiceError(f"{source}: truncated raw file ({len(body)} data bytes, need {8 * nvars}).")
    values = np.frombuffer(body[: 8 * nvars], dtype=np.float64)
    voltages, currents = {}, {}
    for name, value in zip(names, values):
        m = _BRANCH.match(name)
        if m:
            currents[m.group(1) or m.group(2)] = float(value)
            continue
        m = _VOLTAGE.match(name)
        voltages[m.group(1) if m else name] = float(value)
    return voltages, currents


NEWTON_HINT = (
    "Its operating point did not converge under the reference tolerances (OPTIONS), and gmin and source stepping "
    "failed too: strongly nonlinear circuits (sinh devices driven far past V0) can need more Newton iterations than "
    "ngspice's default itl1=100. Raise them for this process, xbarsim.spice.OPTIONS += ' itl1=100000' (a 12 x 15 "
    "array at +-2 V with V0 = 0.21 V then converged in 6 s).")
"""The advice when ngspice fell back to its last resort, a transient
operating point (`_run_deck`)."""

BY_HAND_HINT = "Write the deck with write_netlist(...) and run `ngspice -b deck.cir` by hand to see the full log."
"""The end of the message when ngspice fails (``xbarsim solve --spice`` gives its own)."""


def _kill_group(proc):
    """Kill ngspice's process group (ngspice and anything a wrapper started)
    and reap it."""
    if hasattr(os, "killpg"):  # POSIX
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # already gone
            pass
    proc.kill()
    proc.communicate()


def _parent_death_kills():
    """The command prefix that has ngspice killed when this process dies:
    util-linux's ``setpriv --pdeathsig KILL`` (Linux), or nothing where it is
    missing. ngspice runs in a session of its own, so that a timeout can
    kill the whole group; a signal to the caller's group (``timeout``, a
    closed terminal) then killed Python and left ngspice running on, past
    its timeout. A wrapper's own children are not
    covered."""
    tool = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [tool, "--pdeathsig", "KILL"] if tool else []


def _run_deck(deck, batch, timeout):
    """Run `deck` in a temp dir; raw-file contents of every batch column."""
    name = _executable()
    exe = shutil.which(name)
    if exe is None:
        if os.path.isfile(name) and not os.access(name, os.X_OK):
            # `which` passes over it, and the error said "not found" of a file
            # that is there
            raise SpiceError(f"ngspice executable {name!r} is a file without execute permission; make it "
                             f"executable (chmod +x {name}) or point XBARSIM_NGSPICE at ngspice itself.")
        raise SpiceError(f"ngspice executable {name!r} not found. {_INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="xbarsim_spice_") as tmp:
        path = os.path.join(tmp, "crossbar.cir")
        # UTF-8 whatever the locale: a title "résumé" raised a raw
        # UnicodeEncodeError under LC_ALL=C
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(deck)
        try:
            # its own process group, killed whole on a timeout or Ctrl-C: a
            # wrapper script set as XBARSIM_NGSPICE left its ngspice running,
            # orphaned
            proc = subprocess.Popen(
                _parent_death_kills() + [exe, "-b", path], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, encoding="utf-8", errors="replace", start_new_session=True,
            )
        except OSError as exc:
            raise SpiceError(f"could not start ngspice ({exe}): {exc}. {_INSTALL_HINT}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise SpiceError(
                f"ngspice did not finish within timeout={timeout} s; pass a larger timeout "
                "to run_ngspice, or solve a smaller array."
            ) from exc
        except BaseException:
            _kill_group(proc)
            raise
        output = (stdout or "") + (stderr or "")
        # The "Circuit: <title>" echo is the user's text, not a diagnosis.
        lowered = "\n".join(
            ln for ln in output.lower().splitlines() if not ln.startswith("circuit:")
        )
        if _STEPPING_DONE.search(lowered):
            # a sinh / cosh / exp argument out of range in a Newton iterate
            # that gmin or source stepping then got past: the operating point
            # it completed is clean (it was refused, also where it matched
            # xbarsim to 3e-12 V). Any other error stays one.
            lowered = _RANGE_ERROR.sub("", lowered)
            # likewise the singular-matrix warning of a gmin-stepping attempt
            # that failed before source stepping completed (a circuit solved
            # to 3.3e-12 V of xbarsim was refused)
            lowered = _STEPPING_SINGULAR.sub("", lowered)
        bad = [m for m in _FAILURE_MARKERS if m in lowered]
        if proc.returncode != 0 or bad:
            raise SpiceError(
                f"ngspice failed (exit status {proc.returncode}"
                + (f", output reports {', '.join(repr(m) for m in bad)}" if bad else "")
                + f"). {_output_tail(output)}\n"
                + (NEWTON_HINT + " " if "transient op" in bad else "") + BY_HAND_HINT
            )
        raws = []
        for col in range(batch):
            raw_path = os.path.join(tmp, _RAW_NAME.format(col))
            try:
                with open(raw_path, "rb") as fh:
                    raws.append(fh.read())
            except OSError as exc:
                raise SpiceError(
                    f"ngspice exited normally but wrote no result for batch column {col} "
                    f"({exc.strerror}). {_output_tail(output)}"
                ) from exc
    return raws


def _output_tail(output):
    """The last 15 lines of ngspice's output, or that it printed nothing
    (an empty "Last lines of its output:" was all a failing binary got)."""
    lines = output.strip().splitlines()[-15:]
    return "Last lines of its output:\n" + "\n".join(lines) if lines else "It printed nothing."


SPICE_DECK_BYTES_PER_CELL = 1_000
"""Memory of a `write_netlist` deck per device at its peak, roughly (the
lines as Python strings, then the joined text: 175 MB returned at 1200 x
1200)."""

KCL_WARN = 1e-6
"""Largest Kirchhoff imbalance of a line in a `run_ngspice` result, relative
to the currents that meet on it (plus ``KCL_FLOOR``), before it warns.
Ordinary circuits sit near 3e-11."""
KCL_FLOOR = 1e-15
"""Amperes below which a line's imbalance is not judged (1000x ngspice's
``abstol``)."""

SPICE_BYTES_PER_CELL = 11_000
"""Memory of a `run_ngspice` solve per device, roughly: the deck as Python
strings (about 0.6 kB: 331 MiB peak at 500 x 500, ~190 MiB of it the
interpreter) and ngspice's circuit and sparse matrix (its peak resident
memory, 415 MiB at 200 x 200: about 10 kB). Checked (`require`) before the
deck is built."""


def run_ngspice(xbar, left=None, right=None, top=None, bottom=None, *, timeout=120.0,
                title="xbarsim crossbar"):
    """Solve a crossbar with ngspice: the external reference solution.

    Parameters
    ----------
    xbar : Crossbar
        The array: conductances, wire resistances, device nonlinearity.
    left, right, top, bottom : Drive or None
        Line ends, as in `xbarsim.solve`; None floats every end of that kind.
    timeout : float
        Seconds ngspice may run (all batch columns together).
    title : str
        Title line of the deck (made inert as in `write_netlist`).

    Returns
    -------
    SpiceResult
        Same shapes and sign conventions as `xbarsim.Solution`.

    Raises
    ------
    ParameterError, CircuitError
        The same bad input `xbarsim.solve` rejects, before ngspice runs.
    MemoryLimitError
        An array whose deck and ngspice solve would not fit in memory
        (`SPICE_BYTES_PER_CELL`), before the deck is built.

    Warns
    -----
    RuntimeWarning
        Where ngspice's terminal currents miss Kirchhoff's law on some line
        (`KCL_WARN`; lines whose imbalance is below `KCL_FLOOR` are not
        judged): near-ideal terminal resistances (1e-12 ohm) left them 15 %
        to 100 % off, and ``i_out`` read 0 where 1.8e-4 A flowed, with the
        voltages right; floating lines of weak devices on low-resistance
        wire (`floating_line_rounding`) leave the voltages off too.
    SpiceError
        ngspice missing, failing, timing out, or writing unreadable output.

    Notes
    -----
    One ngspice process solves every batch column: column 0 is written as
    in `write_netlist`, each next column ``alter``-s the sources whose
    voltage changed and reruns ``.op``. Results come back through binary raw
    files, so no digits are lost in printing.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> from xbarsim.spice import run_ngspice
    >>> g = np.full((2, 3), 1e-4)
    >>> res = run_ngspice(xs.Crossbar(g), left=xs.Drive([0.1, 0.2]), bottom=xs.Drive(0.0))
    >>> bool(np.allclose(res.i_out, g.T @ [0.1, 0.2], rtol=1e-9))
    True
    """
    seconds = real_scalar(timeout)
    # inf / 1e300 reached subprocess as a bare OverflowError, and NumPy
    # integers were refused where the rest of the library takes them
    if seconds is None or not 0 < seconds <= TIMEOUT_MAX:
        raise ParameterError(f"timeout must be a number of seconds in (0, {TIMEOUT_MAX:g}]; got {timeout!r}.")
    timeout = seconds
    net = build_network(xbar, left=left, right=right, top=top, bottom=bottom)
    M, N = xbar.shape
    # before the deck, a Python string of ~0.6 kB per device: a 2048 x 2048
    # array ran into a raw MemoryError while building it
    require(M * N * SPICE_BYTES_PER_CELL, f"an ngspice solve of a {M} x {N} array",
            "ngspice is the reference for small circuits (a 100 x 100 read took it 25 s on a 2-core machine, 200 x 200 "
            "9 minutes): solve this array with xbarsim.solve, or check a smaller one with ngspice")
    deck = _deck(net, 0, title, _control_block(net))
    raws = _run_deck(deck, net.batch, timeout)

    B = net.batch
    wl, bl = _node_names(xbar)
    v_wl = np.empty((M, N, B))
    v_bl = np.empty((M, N, B))
    terminals = {
        end: np.zeros((M if end in END_NAMES["wl"] else N, B))  # an open end carries no current
        for end in ("left", "right", "top", "bottom")
    }
    for col, raw in enumerate(raws):
        source = f"ngspice raw file of batch column {col}"
        volts, amps = _parse_raw(raw, source)
        try:
            for i in range(M):
                for j in range(N):
                    v_wl[i, j, col] = volts[wl[i][j].lower()]  # ngspice names its vectors in lower case
                    v_bl[i, j, col] = volts[bl[i][j].lower()]
            for end, cur in terminals.items():
                spec = net.ends[end]
                if spec is None:
                    continue
                for line in np.nonzero(spec.mode != FLOATING)[0]:
                    # SPICE: positive source current flows into the + node
                    # from the circuit, i.e. out of the array.
                    cur[line, col] = 0.0 - amps[f"v_{end}_{line}"]  # not -x: no -0.0, as xs.solve
        except KeyError as exc:
            raise SpiceError(f"{source}: no value for {exc.args[0]!r}; the deck and ngspice's output disagree.") from exc
    vd = v_wl - v_bl
    g = xbar.g[:, :, None]
    if xbar.linear:
        i_device = g * vd
    else:
        v0 = xbar.v0_full()[:, :, None]
        i_device = g * v0 * np.sinh(vd / v0)
    _warn_if_terminals_miss_kirchhoff(terminals, i_device)
    i_out = 0.0 - terminals["bottom"]  # not -x: no -0.0 where a bottom end floats
    if not net.batched:
        v_wl, v_bl, i_device, i_out = (a[..., 0] for a in (v_wl, v_bl, i_device, i_out))
        terminals = {k: v[..., 0] for k, v in terminals.items()}
    return SpiceResult(v_wl=v_wl, v_bl=v_bl, i_device=i_device, i_out=i_out,
                       i_terminal=terminals, driven=driven_ends(net.ends, xbar.shape), netlist=deck)


def _warn_if_terminals_miss_kirchhoff(terminals, i_device):
    """Warn where a line's terminal currents and its devices' currents do
    not balance (`KCL_WARN`). ngspice reports a source's current from its
    own Newton update: behind a near-ideal terminal (1e-12 ohm) that current
    is a difference of nearly equal node voltages times 1e12 S, and came
    back 15 % off (all of it at 1e-15 ohm), while the node voltages, and the
    device currents taken from them, stayed right."""
    from ._warn import warn

    worst, where = 0.0, None
    for kind, ends, axis in (("WL", ("left", "right"), 1), ("BL", ("top", "bottom"), 0)):
        devices = i_device.sum(axis=axis)  # out of each word line / into each bit line, (L, B)
        sign = -1.0 if kind == "WL" else 1.0
        imbalance = terminals[ends[0]] + terminals[ends[1]] + sign * devices
        scale = np.abs(i_device).sum(axis=axis) + np.abs(terminals[ends[0]]) + np.abs(terminals[ends[1]])
        # judged with the floor (tiny drives are not judged), told without it
        judged = np.abs(imbalance) / (scale + KCL_FLOOR / KCL_WARN)
        if judged.size and float(judged.max()) > worst:
            worst = float(judged.max())
            k = np.argmax(judged)
            line = int(np.unravel_index(k, judged.shape)[0])
            miss = float(np.abs(imbalance).flat[k])
            where = f"{kind}[{line}]", miss, miss / float(scale.flat[k])
    if worst > KCL_WARN:
        warn(f"ngspice's solution misses Kirchhoff's law on {where[0]}: {where[1]:.3g} A unaccounted for, "
             f"{where[2]:.2g} of the currents that meet on that line (its terminal currents against the device "
             "currents from its node voltages). Its rounding is not resolved here: a near-ideal terminal (1e-12 "
             "ohm) left its source currents 15 % off, while the node voltages stayed right; weak devices on a "
             "floating line next to low-resistance wire leave the voltages off too "
             "(xbarsim.spice.floating_line_rounding estimates by how much). Make near-ideal terminals and "
             "segments ideal (r = 0), or compare with xs.solve knowing this.", RuntimeWarning)
