"""The ``xbarsim`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import secrets
import re
import signal
import sys
import tempfile
import warnings

SUBCOMMAND_MODULES = (
    "xbarsim.demo",
    "xbarsim.solve_cmd",
    "xbarsim.scale",
    "xbarsim.program_cmd",
    "xbarsim.calibrate",
    "xbarsim.moons",
    "xbarsim.cache_cmd",
)


SEED_LIMIT = 2**63
"""Exclusive bound of every ``--seed``. Further streams are derived from it
(seed sequences of the seed and a stage in `moons` and `scale`; the
library's ``seed + offset`` for a layer or a transfer), and each must stay
below NumPy's 2**64; 2**63 leaves room for every offset."""


def seed_arg(text):
    """argparse type of every ``--seed``: an integer in [0, 2**63) (NumPy's
    generators refuse negative seeds with a bare traceback, and the streams
    derived from a seed near 2**64 would overflow long after the start)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {text!r} must be an integer in [0, 2**63)")
    return value


def choice_arg(choices):
    """argparse type of a flag with ``choices``: a choice named in any case
    is read as the choice itself, as the Python API reads it
    (``TransferConfig(scheme="v/3")``); anything else is passed on for
    argparse's "invalid choice" message, which lists the choices."""
    by_lower = {c.lower(): c for c in choices}

    def parse(text):
        return by_lower.get(text.lower(), text)

    return parse


def help_text(doc):
    """A module docstring as ``--help`` text: reST's double and single
    backquotes dropped (``xbarsim solve --help`` printed them).
    """
    return re.sub(r"`([^`]*)`", r"\1", re.sub(r"``([^`]*)``", r"\1", doc))


def check_r_wire(r, flag="--r-wire", part="wire", gmax=None, terminal=None):
    """The check of a ``--r-wire`` (``program``, ``demo``; ``solve``'s
    ``--r-wl``, ``--r-bl``, ``--r-in`` and ``--r-out`` too, with their
    ``flag`` and ``part``), before any work: a finite resistance >= 0 ohms,
    0 (ideal) or at least the circuit's `R_TINY`, and, given the largest
    device conductance `gmax` (siemens), a wire within the circuit's
    `DYNAMIC_RANGE` of it, and of the lines' fixed ``terminal`` resistance
    (ohms; ``demo``'s 1 ohm), where given. NaN passed a "< 0" test, and a
    tiny or huge one was refused later as ``r_wl`` or ``left.r``, names the
    command line does not use (``demo`` after compiling its solvers).
    """
    import math

    from .circuit import DYNAMIC_RANGE, R_TINY
    from .exceptions import ParameterError

    if not (math.isfinite(r) and r >= 0):
        raise ParameterError(f"{flag} {r:g}: a {part} resistance must be a finite number >= 0 ohms.")
    if 0 < r < R_TINY:
        raise ParameterError(f"{flag} {r:g}: below {R_TINY:.0e} ohms the circuit solver cannot work; give 0 for an "
                             f"ideal {part} (handled exactly).")
    if gmax is not None and gmax * r > DYNAMIC_RANGE:
        raise ParameterError(f"{flag} {r:g}: the largest device conductance ({gmax:.3g} S) is {gmax * r:.2g} times "
                             f"the {part}'s; beyond {DYNAMIC_RANGE:.0e} double precision cannot resolve the {part}s "
                             f"next to it. Give a smaller {flag}, or check the units (conductances in siemens, "
                             "resistances in ohms).")
    if terminal is not None and r > 0 and terminal > DYNAMIC_RANGE * r:
        raise ParameterError(f"{flag} {r:g}: the lines' {terminal:g} ohm terminals are {terminal / r:.2g} times "
                             f"the {part} segments; beyond {DYNAMIC_RANGE:.0e} double precision cannot resolve a "
                             f"line against its terminal. Give 0 for an ideal {part} (merged exactly), or at least "
                             f"{terminal / DYNAMIC_RANGE:g} ohms.")
    return r


def wires_text(r_wl, r_bl, unit="ohm"):
    """'1 ohm wires', or 'WL 1 / BL 2 ohm wires' when they differ (it read
    '1/1 ohm wires'); ``unit="Ω"`` for figures."""
    if r_wl == r_bl:
        return f"{r_wl:g} {unit} wires"
    return f"WL {r_wl:g} / BL {r_bl:g} {unit} wires"


def json_plain(obj):
    """``obj`` with paths as strings, NumPy scalars and arrays as Python
    numbers and lists, tuples as lists: what ``json.dump`` takes (a NumPy
    value among a run function's arguments failed the summary after the
    work)."""
    import pathlib

    import numpy as np

    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [json_plain(e) for e in obj]
    if isinstance(obj, dict):
        return {k: json_plain(e) for k, e in obj.items()}
    return obj


def _written_by(command):
    """The first entries of a ``summary.json``: which command and xbarsim
    version wrote it (``solve`` and ``program`` both write one, and a folder
    used for both could not tell whose it held)."""
    from . import __version__

    return {"command": f"xbarsim {command}", "xbarsim_version": __version__}


def check_provenance(provenance, reserved=()):
    """``provenance`` (a run function's record of where its inputs came
    from, for ``summary.json``'s ``config``) as a dict of JSON values
    (`json_plain`), or a ParameterError before the run: a Path or a NumPy
    value failed ``json.dump`` after the work and left ``--out`` behind, and
    a key among the run's own ``reserved`` config fields overwrote the
    value the run used, or failed after the work."""
    import json

    from .exceptions import ParameterError

    if provenance is None:
        return {}
    if not isinstance(provenance, dict) or not all(isinstance(k, str) for k in provenance):
        raise ParameterError(f"provenance must be a dict with string keys (what the inputs were, recorded in "
                             f"summary.json); got {type(provenance).__name__}.")
    taken = sorted(set(provenance) & set(reserved))
    if taken:
        raise ParameterError(f"provenance must not use the run's own config fields ({', '.join(taken)}): "
                             "summary.json records those from the run's arguments; rename the keys.")
    out = json_plain(provenance)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"provenance must hold JSON values (strings, finite numbers, lists, dicts; paths "
                             f"and NumPy values are converted): {exc}.") from None
    return out


def check_out_dir(path, names=()):
    """The check of every ``--out`` folder, before anything runs: it is
    created when missing, and anything that is not a writable folder is
    refused with the reason (instead of a traceback after the work).
    ``names``: the files the run will put there (`RunFiles`); one that
    exists as anything but a file (a folder in the way) is refused too. A
    refused path keeps no folder the check made (``a/b/<too long>`` left
    ``a/b``). Returns the folders it made
    (`missing_folders`), for `remove_if_made_and_empty` after a failed run."""
    from .exceptions import ParameterError

    if not path:
        raise ParameterError("--out is empty; give a folder (created when missing), e.g. --out results.")
    refuse_non_folder(path, "--out")
    made = missing_folders(path)
    try:
        _make_and_check_out_dir(path, names)
    except BaseException:
        remove_if_made_and_empty(path, made)
        raise
    return made


def refuse_non_folder(path, name):
    """A `ParameterError` where ``path``, given as ``name`` (``--out``,
    ``out_dir``), is a file or a dangling symbolic link (makedirs said
    "cannot be created (File exists)" of a link, and `run_sweep` raised
    raw OS errors)."""
    from .exceptions import ParameterError

    if os.path.exists(path) and not os.path.isdir(path):
        raise ParameterError(f"{name} {str(path)!r} is a file; give a folder (created when missing).")
    if os.path.islink(path) and not os.path.exists(path):
        raise ParameterError(f"{name} {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not "
                             f"exist; make that folder, or give another {name}.")


@contextlib.contextmanager
def removing_new_folders(path):
    """Around a run that makes ``path`` itself (`check_out_dir` inside it):
    a failed or interrupted run removes the folders it made for ``path``,
    while empty (`missing_folders`, `remove_if_made_and_empty`)."""
    made = missing_folders(path)
    try:
        yield
    except BaseException:
        remove_if_made_and_empty(path, made)
        raise


def _make_and_check_out_dir(path, names):
    """`check_out_dir`'s folder made and its checks."""
    from .exceptions import ParameterError

    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--out {path!r} cannot be created ({exc.strerror or exc}); give a folder "
                             "in a writable place.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ParameterError(f"--out {path!r} is not writable; give a folder in a writable place.")
    try:  # os.access trusts the mode bits: root passes them on /sys or a read-only mount
        # the real path: tempfile reads ".." lexically, where the kernel
        # follows a link first (--out link/../y was refused)
        fd, probe = tempfile.mkstemp(dir=os.path.realpath(path), prefix=".xbarsim-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ParameterError(f"--out {path!r} does not take new files ({exc.strerror or exc}); give a folder in a "
                             "writable place.") from None
    for name in names:
        _check_target(os.path.join(path, name))


def missing_folders(path):
    """The folders `check_out_dir` will make for ``path`` (``os.makedirs``:
    its missing parents, then ``path``), deepest first, as real paths (a
    ``..`` after a missing folder, or after a symbolic link, is followed as
    makedirs follows it); empty when ``path`` exists. Taken
    before the check, for `remove_if_made_and_empty`."""
    made = []

    def visit(name):  # os.makedirs' own recursion
        head, tail = os.path.split(name)
        if not tail:
            head, tail = os.path.split(head)
        if head and tail and not os.path.exists(head):
            visit(head)
        if tail not in (os.curdir, os.pardir) and not os.path.lexists(name):
            made.append(os.path.realpath(name))

    if path:
        visit(os.fspath(path))
    return made[::-1]


def remove_if_made_and_empty(path, made):
    """Undo `check_out_dir` for a run that failed before writing: remove the
    folders this run made (``made``, `missing_folders` before the check),
    deepest first, while they are empty (a refused run left them behind:
    ``--out a/b/c`` left ``a/b`` after removing ``c``).
    ``path`` is the ``--out`` given, for the reader."""
    for folder in made:
        if not os.path.lexists(folder):
            continue  # not made after all (makedirs failed there): its parents may have been
        if not (os.path.isdir(folder) and not os.path.islink(folder) and not any(os.scandir(folder))):
            break
        os.rmdir(folder)


def _check_target(final):
    """A `ParameterError` when `final`, where a run puts one of its files,
    exists as anything but a file."""
    from .exceptions import ParameterError

    if os.path.lexists(final) and not os.path.isfile(final):
        # a dangling link was called "a folder?" (found by review)
        what = ("is a link to a missing file" if os.path.islink(final) and not os.path.exists(final)
                else "is a folder" if os.path.isdir(final) else "exists and is not a file")
        raise ParameterError(f"{final!r} {what}; this run writes a file of that name there. Move it away, or give "
                             "another --out.")


_FULL_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))
"""A full disk or quota (`RunFiles`): a failed write wherever it happens."""
_WRITE_ERRNOS = frozenset(getattr(errno, name) for name in ("EROFS", "EIO", "EACCES", "EPERM") if hasattr(errno, name))
"""Failed writes that `RunFiles` reports as such only on a file in --out."""


class RunFiles:
    """The files one command run writes into its ``--out`` folder, put in
    place together.

    ``path(name)`` is the temporary name (in the same folder, so the move
    is a rename) under which to write `name`. Leaving the with-block
    normally moves every file into place and removes the names in `stale`
    (an earlier run's files this one does not write); an exception, Ctrl-C
    included, removes the temporary files instead. The folder then holds
    the earlier run's complete set or this run's, never a mix: Ctrl-C while
    ``solve`` drew its figure left the new summary.json and solution.npz
    beside the last run's solve.png."""

    def __init__(self, out_dir, stale=()):
        self.out_dir = out_dir
        self.stale = tuple(stale)
        self._files = []

    def path(self, name):
        """The temporary file to write `name` into: a new file of a unique
        name (``.partial-<random>-<name>``, the same extension: NumPy and
        matplotlib go by it), made here with ``O_EXCL | O_NOFOLLOW``. A
        fixed name let a ``.partial-summary.json`` link planted in a shared
        --out redirect the write to the file it named, and two runs into one
        --out take each other's files."""
        for tmp, final in self._files:
            if final == os.path.join(self.out_dir, name):  # a file written again keeps its one temporary name
                return tmp
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        while True:
            tmp = os.path.join(self.out_dir, f".partial-{secrets.token_hex(4)}-{name}")
            try:
                fd = os.open(tmp, flags, 0o666)  # the umask decides the mode, as for any new file
            except FileExistsError:
                continue
            self._files.append((tmp, os.path.join(self.out_dir, name)))  # from now on removed on exit
            os.close(fd)
            return tmp

    def __enter__(self):
        return self

    def _is_write_failure(self, exc):
        """A full disk or quota anywhere in the block, or an access error on
        a file in --out: the block also runs work (moons' ablation, the
        --spice run) whose other OS errors are not this folder's."""
        if exc.errno in _FULL_ERRNOS:
            return True
        name = exc.filename if isinstance(exc.filename, str) else None
        return exc.errno in _WRITE_ERRNOS and name is not None and \
            os.path.dirname(os.path.abspath(name)) == os.path.abspath(self.out_dir)

    def _put_in_place(self):
        """Move every temporary file to its name, all or none: the files
        they replace are first renamed aside (``.previous-<random>-<name>``),
        and a move that fails puts them back and removes the new ones. One
        by one, a file that could not be replaced (immutable, or open in
        another program on Windows) left the run's first files beside the
        earlier run's last."""
        from .exceptions import ParameterError

        aside, placed = [], []
        try:
            for _, final in self._files:
                if os.path.lexists(final):
                    keep = final
                    while os.path.lexists(keep):  # never over a file of that name (a leftover one)
                        keep = os.path.join(self.out_dir,
                                            f".previous-{secrets.token_hex(4)}-{os.path.basename(final)}")
                    os.replace(final, keep)
                    aside.append((keep, final))
            for tmp, final in self._files:
                os.replace(tmp, final)
                placed.append(final)
        except BaseException as err:
            # Ctrl-C (or SIGTERM, raised as one) midway too: it left the new
            # first file beside the earlier ones renamed aside (review of the fix)
            undone = True
            for final in placed:
                try:
                    os.remove(final)
                except OSError:
                    undone = False
            for keep, final in aside:
                try:
                    os.replace(keep, final)
                except OSError:
                    undone = False
            if not isinstance(err, OSError):
                raise
            # os.replace names the source first: the temporary file, where
            # the final name is the one the reader knows (review of the fix)
            where = getattr(err, "filename", None) or "a file"
            if ".partial-" in os.path.basename(str(where)) and getattr(err, "filename2", None):
                where = err.filename2
            state = ("the folder holds the earlier run's files as they were" if undone else
                     "and could not put every earlier file back: check the folder (.previous-* files are the "
                     "earlier run's)")
            raise ParameterError(f"could not put this run's files in place in --out {self.out_dir!r} ({where}: "
                                 f"{err.strerror or err}); {state}. Check that its files can be replaced (not "
                                 "read-only, immutable or open elsewhere), or give another --out.") from None
        for keep, _ in aside:
            try:
                os.remove(keep)
            except OSError:
                pass

    def __exit__(self, exc_type, exc, tb):
        from .exceptions import ParameterError

        try:
            if isinstance(exc, OSError) and self._is_write_failure(exc):
                # a disk full while writing, after the whole run: NumPy's,
                # json's or PIL's raw traceback before
                fix = "Free space there" if exc.errno in _FULL_ERRNOS else "Make it writable"
                raise ParameterError(f"could not write this run's files into --out {self.out_dir!r} "
                                     f"({exc.strerror or exc}); nothing was put in place. {fix}, or "
                                     "give another --out.") from None
            if exc_type is None:
                # every target first: a folder in the way of the third file
                # left the first two moved, a mixed set and a traceback
                # (`check_out_dir` refuses one up front)
                for _, final in self._files:
                    _check_target(final)
                self._put_in_place()
                for name in self.stale:
                    stale = os.path.join(self.out_dir, name)
                    if os.path.isfile(stale):
                        os.remove(stale)
        finally:  # also when a move fails (a folder in the way): no temporary file stays
            for tmp, _ in self._files:
                if os.path.lexists(tmp) and not os.path.isdir(tmp):
                    os.remove(tmp)
        return False


def _uncomment(line):
    """``line`` without its end of line and its comment (from a ``#``
    outside double quotes), as np.loadtxt reads it."""
    quoted = False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:k]
    return line.rstrip("\r\n")


def _split_fields(text, delimiter):
    """The fields of an uncommented line, quote-aware (``"word line 0"``
    and ``"line, 1"`` are one field each, their quotes removed)."""
    import csv
    import shlex

    if delimiter is not None:
        return [f.strip() for f in next(csv.reader([text], delimiter=delimiter, skipinitialspace=True), [])]
    try:
        return shlex.split(text)
    except ValueError:  # an unmatched quote: split as it stands
        return text.split()


def _open_text(path):
    """``path`` opened for reading as text (utf-8, a byte-order mark
    dropped), decompressed by its extension as np.loadtxt does (.gz, .bz2,
    .xz): a .csv.gz was refused once the lines were read here.
    """
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}.get(
        os.path.splitext(path)[1].lower(), open)
    return opener(path, "rt", encoding="utf-8-sig")


def _content_lines(path, start=0, delimiter=None):
    """``(line number, uncommented text)`` of the lines after the first
    ``start`` that np.loadtxt reads as rows: with whitespace between
    fields, those with a field; with commas, also a line of spaces (a row
    of one empty field). A quoted field across a line break is one row, as
    NumPy reads it, numbered by its first line."""
    with _open_text(path) as fh:
        held = None  # (line number, text) of a row whose quote is still open
        for no, line in enumerate(fh, start=1):
            if held is not None:
                line = held[1] + line
                no = held[0]
            if line.count('"') % 2:
                held = (no, line)
                continue
            held = None
            text = _uncomment(line)
            if no > start and (text.strip() if delimiter is None else text):
                yield no, text


_QUOTED_LINE = re.compile(r'\s*"[^"]*"\s*(?:,?\s*"[^"]*"\s*)*,?\s*')


def _text_layout(path):
    """``(delimiter, header rows)`` of a text file of numbers: semicolons
    when its first line has one (a spreadsheet's CSV where commas are
    decimal commas), else commas when it has one, else whitespace
    (``np.savetxt``'s default, which was refused); a first line none of
    whose fields is a number is a header and skipped (a header row was
    refused), and so is
    a line of quoted column numbers over unquoted data (pandas' quoted
    labels, ``"0","1"``). A first line of other numbers, quoted ones too
    (``"1e-4","2e-4"`` from a spreadsheet was taken for a header),
    is data, read and checked as such."""
    try:
        lines = _content_lines(path)
        first_no, first = next(lines, (0, ""))
        second = next(lines, (0, ""))[1]
    except (OSError, UnicodeDecodeError):
        return ",", 0, 0  # np.loadtxt reports it
    import numpy as np

    from ._coerce import is_number

    bare = re.sub(r'"[^"]*"', "", first)  # "line, 1" "line, 2" is not a CSV line
    delimiter = ";" if ";" in bare else "," if "," in bare else None
    fields = _split_fields(_decimal_points(first, delimiter), delimiter)
    if delimiter is None or (fields and not fields[-1]):  # "1,2," : the empty last field is not a label
        fields = [f for f in fields if f] if delimiter is None else fields[:-1]
    header = bool(fields) and not any(is_number(f) for f in fields)
    # the first field alone empty (",0,1" or ",a,b"): pandas' labels over its index column
    blank_first = len(fields) > 1 and not fields[0].strip() and all(f.strip() for f in fields[1:])
    if not header and blank_first and all(is_number(f) for f in fields[1:]):
        # pandas' to_csv with its index: ",0,1,2" over "0,1e-4,..." was refused as
        # "could not convert string ''"
        header = _column_numbers(np.array([float(f) for f in fields[1:]]))
    if not header and fields and all(is_number(f) for f in fields) and _QUOTED_LINE.fullmatch(first) and second \
            and '"' not in second:
        header = _column_numbers(np.array([float(f) for f in fields]))
    # an index column when the rows have as many fields (load_array warns)
    return delimiter, first_no if header else 0, len(fields) if header and blank_first else 0


def _decimal_points(line, delimiter):
    """``line`` with decimal commas as points where semicolons separate the
    fields, as a spreadsheet in a locale of decimal commas saves a CSV
    (``2,5E-04;3E-04``: refused as "could not convert string")."""
    return line.replace(",", ".") if delimiter == ";" else line


def _for_loadtxt(line, delimiter):
    """A line as np.loadtxt (quotechar) reads it right: decimal commas as
    points between semicolons (`_decimal_points`), no space between a
    delimiter and a quote (``"1e-4", "2e-4"``'s second field was text),
    and, between whitespace, no comment or trailing space after a quoted
    first field (NumPy read an empty last field).
    """
    line = _decimal_points(line, delimiter)
    if '"' not in line:
        return line
    if delimiter is None:
        return _uncomment(line).rstrip() + "\n"
    return _SPACED_QUOTE.sub(r'\1"', line)


_SPACED_QUOTE = re.compile(r'(^|[,;])[ \t]+"')


def _numpy_row_as_line(message, path, skip, delimiter):
    """NumPy's "at row R" in ``message`` as the file's line: it counts the
    rows past the header, comments and blank lines left out (from 0 for a
    value, from 1 for a row's length): "row 0" was the file's second line."""
    m = re.search(r"at row (\d+)", message)
    if not m:
        return message
    row = int(m[1]) - (1 if "number of columns changed" in message else 0)
    try:
        for k, (no, _) in enumerate(_content_lines(path, skip, delimiter)):
            if k == row:
                return message.replace(m[0], f"at line {no} of the file")
    except (OSError, UnicodeDecodeError):
        pass
    return message


def load_array(path, flag, what, ndmin=1):
    """A real array from a ``.npy`` or ``.csv`` file, as float64, for the
    file options of the commands (``flag``: the option, for the messages;
    ``what``: what the file should hold; ``ndmin``: of a ``.csv``). A
    missing file, text that is not numbers, and complex, boolean or text
    values are each a `ParameterError` naming the option and the file."""
    import numpy as np

    from .exceptions import ParameterError

    if os.path.isdir(path):
        raise ParameterError(f"{flag} {path!r} is a folder; give a .npy or .csv file of {what}.")
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/null was "no such file"
        raise ParameterError(f"{flag} {path!r} is not a regular file (a device or pipe); give a .npy or .csv file "
                             f"of {what}.")
    if not os.path.isfile(path):
        raise ParameterError(f"{flag} {path!r}: no such file.")

    skip, delimiter = 0, None
    text, indexed = False, 0
    try:
        # by content, not by name: G.NPY, or an .npz, was read as text
        with open(path, "rb") as fh:
            magic = fh.read(6)
        numpy_file = magic == b"\x93NUMPY" or magic.startswith(b"PK\x03\x04")
        if magic and not numpy_file and path.lower().endswith(".npy"):
            # NumPy's own message spoke of pickled data
            raise ParameterError(f"{flag} {path!r} is named .npy but is not a NumPy file (it does not start with "
                                 f"NumPy's header); save the array with np.save, or save a .csv of {what}.")
        if numpy_file or path.lower().endswith(".npy"):  # an empty .npy: NumPy's EOFError, below
            if magic == b"\x93NUMPY":
                _check_npy_memory(path, flag)
            a = np.load(path, allow_pickle=False)
        else:
            text = True
            delimiter, skip, indexed = _text_layout(path)
            with warnings.catch_warnings():  # an empty file: NumPy warns with its source line, then returns []
                warnings.simplefilter("ignore", UserWarning)
                # utf-8-sig (in _open_text): a byte-order mark (Excel's "CSV UTF-8") is not part of the
                # first number; quotechar: a spreadsheet's "1e-4"
                with _open_text(path) as fh:  # closed on an error too
                    a = np.loadtxt((_for_loadtxt(line, delimiter) for line in fh), delimiter=delimiter,
                                   ndmin=ndmin, skiprows=skip, quotechar='"')
    except ParameterError:
        raise
    except (ValueError, EOFError, OSError) as exc:  # EOFError: an empty .npy
        detail = _numpy_row_as_line(str(exc), path, skip, delimiter) if text else str(exc)
        raise ParameterError(f"{flag} {path!r} could not be read as numbers ({type(exc).__name__}: {detail}); "
                             f"give a .npy array or a .csv of {what}.") from exc
    except MemoryError as exc:  # NumPy's raw _ArrayMemoryError traceback
        from .exceptions import MemoryLimitError

        if isinstance(exc, MemoryLimitError):  # refused from the header, before the load
            raise
        raise MemoryLimitError(f"{flag} {path!r} does not fit in the memory available to load it ({exc}); "
                               "free memory, or check the file: a .npy whose header claims more values than "
                               "it holds asks for all of them.") from None
    if not isinstance(a, np.ndarray):  # np.load of an .npz archive under a .npy name
        if hasattr(a, "close"):
            a.close()
        raise ParameterError(f"{flag} {path!r} is an .npz archive, not one array; save a single array with "
                             f"np.save (a .npy file) or a .csv of {what}.")
    if a.dtype.kind not in "iuf":
        raise ParameterError(f"{flag} {path!r} holds {a.dtype} values; give real {what} (not complex, "
                             "boolean or text).")
    if a.size == 0 and skip:
        raise ParameterError(f"{flag} {path!r} holds no numbers past its first line, which was read as a header "
                             f"(no field of it is a number); give a .npy array or a .csv of {what} "
                             "(not JSON or another format).")
    if a.size == 0:
        raise ParameterError(f"{flag} {path!r} holds no values; give {what}.")
    if (text and not skip and a.ndim == 2 and a.shape[0] > 1 and a.shape[1] > 2 and _column_numbers(a[0])
            and not np.all(a[1:] == np.round(a[1:]))):
        # a header of column numbers (a pandas export's "0,1,2,3") is read as
        # data: say so (it passed without a word). Three or
        # more columns over rows that are not whole numbers: two binary input
        # vectors "0,1" and "1,0" drew it
        warnings.warn(f"xbarsim: the first row of {flag} {path!r} reads 0, 1, 2, ... or 1, 2, 3, ..., like a header "
                      "of column numbers; it was read as data. Delete it if it is a header.", UserWarning,
                      stacklevel=2)
    if indexed and (a.shape[-1] if a.ndim else 1) == indexed:
        # pandas' header of an indexed frame (",0,1,2" or ",a,b") over rows as wide: its
        # index column, at any size and over whole numbers too, was read as data
        # without a word; a header one field wider than its rows has no index
        warnings.warn(f"xbarsim: the header of {flag} {path!r} starts with an empty field, as pandas' to_csv writes "
                      "a frame with its index; its first column (the index) was read as data. Save with "
                      "index=False, or delete that column.", UserWarning, stacklevel=2)
    elif (text and a.ndim == 2 and a.shape[0] > 2 and a.shape[1] > 1 and _column_numbers(a[:, 0])
            and not np.all(a[:, 1:] == np.round(a[:, 1:]))):
        # a pandas export's index column (to_csv without index=False) was read as
        # conductances 0, 1, 2, ... S without a word
        warnings.warn(f"xbarsim: the first column of {flag} {path!r} reads 0, 1, 2, ... or 1, 2, 3, ..., like a "
                      "row index (pandas' to_csv without index=False); it was read as data. Delete it if it is "
                      "an index.", UserWarning, stacklevel=2)
    try:
        return np.asarray(a, dtype=np.float64)
    except MemoryError:  # an int8 or float32 file that loads, whose float64 copy does not
        from .exceptions import MemoryLimitError

        raise MemoryLimitError(f"{flag} {path!r} ({a.dtype}, shape {a.shape}) does not fit in the memory available "
                               "as float64; free memory, or give a smaller array.") from None


def _check_npy_memory(path, flag):
    """Refuse (`MemoryLimitError`) a ``.npy`` whose array, and its float64
    copy, cannot fit, from its header, before it is read: the load's
    MemoryError never comes where the system overcommits, and an 8000^2
    float32 file took 737 MiB before the refusal of its copy.
    A header that cannot be read is left to np.load to report."""
    import numpy as np

    from ._memory import require

    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        count = 1.0
        for n in shape:
            count *= int(n)
        itemsize = float(dtype.itemsize)
    except Exception:  # noqa: BLE001 - np.load says what is wrong with the file
        return
    if dtype.hasobject:
        return  # refused by np.load without pickles, before any allocation
    copy = 0.0 if dtype == np.float64 else 8.0 * count  # a float64 file is used as it is (either order)
    require(itemsize * count + copy, f"{flag} {path!r} ({dtype}, shape {tuple(shape)}) loaded as float64",
            "give a smaller array, or free memory")


def load_conductances(path, flag):
    """A file of conductances (``flag`` ``path``): `load_array`, then
    `check_conductance_file`, and only then `load_array`'s warnings: a
    header row of column numbers was warned of as "read as data" and then
    refused as a header (found by review)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = load_array(path, flag, "conductances in siemens, one row per word line", ndmin=2)
    check_conductance_file(g, flag, path)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return g


def check_conductance_file(g, flag, path):
    """Refuse a file of conductances (``flag`` ``path``, read as ``g``)
    whose first row or column reads 0, 1, 2, ... (or 1, 2, 3, ...) over
    conductances below 1 S, before any compute: a spreadsheet's header or
    pandas' index read as devices of 0, 1, 2 S (a two-column "0,1" header
    passed without a word; `load_array` only warns, as a first row of
    whole numbers is not always a header)."""
    import numpy as np

    from .exceptions import ParameterError

    if g.ndim != 2 or min(g.shape) < 2:
        return
    if _column_numbers(g[0]) and np.max(g[1:]) < 1.0:
        raise ParameterError(f"{flag} {path!r}: its first row reads {', '.join(f'{v:g}' for v in g[0, :3])}, ..., "
                             "a header of column numbers over conductances below 1 S; delete that row (pandas: "
                             "to_csv(header=False, index=False)).")
    if _column_numbers(g[:, 0]) and np.max(g[:, 1:]) < 1.0:
        raise ParameterError(f"{flag} {path!r}: its first column reads {', '.join(f'{v:g}' for v in g[:3, 0])}, "
                             "..., a row index over conductances below 1 S; delete that column (pandas: "
                             "to_csv(index=False)).")


def integer_ticks(ax):
    """Integer ticks on both axes of a map of line indices: no half-integer
    ones on a small array (``min_n_ticks``: nor on a 1-wide one).
    """
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _column_numbers(row):
    """Whether ``row`` is 0, 1, ..., n-1 or 1, 2, ..., n."""
    import numpy as np

    n = row.size
    return bool(np.array_equal(row, np.arange(n)) or np.array_equal(row, np.arange(1, n + 1)))


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors say how to pass a value that starts
    with '-': ``--pulse -1,0`` or ``--tol -1e-9`` read the value as an
    option, and argparse said only "expected one argument".
    Subcommands' parsers are of this class too."""

    def add_argument(self, *args, **kwargs):
        """argparse's, with every option of string ``choices`` and no
        ``type`` reading a choice named in any case (`choice_arg`), as the
        Python API reads them. (Options added to an argument group go
        through the group's own ``add_argument`` and keep argparse's.)"""
        choices = kwargs.get("choices")
        if choices is not None and "type" not in kwargs and all(isinstance(c, str) for c in choices):
            kwargs["type"] = choice_arg(list(choices))
        return super().add_argument(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # for `error`'s hint
        return super().parse_known_args(args, namespace)

    def error(self, message):
        m = re.fullmatch(r"argument (?:\S+/)?(\S+): expected one argument", message)
        if m:
            opt, argv = m.group(1), getattr(self, "_argv", [])
            # the option as typed, also abbreviated (--tol for --tolerance), and the token after it
            after = [argv[i + 1] for i, a in enumerate(argv[:-1])
                     if a == opt or (a.startswith("--") and len(a) > 2 and opt.startswith(a))]
            # a value that starts with one '-' (-1e-9, -g.npy; "-g.npy" was told to give a value),
            # not an option of this parser (-h) or one spelt with '--' (--r-wire, or a mistyped
            # --inptus: the value was left out)
            token = after[-1] if after else ""
            if token.startswith("-") and not token.startswith("--") and token not in self._option_string_actions:
                message += (f" (a value that starts with '-' reads as an option; write it after '=', "
                            f"e.g. {opt}={after[-1]})")
            else:  # nothing given: "e.g. --arrays=-1" suggested a value it refuses
                message += f" (give it a value: {opt} VALUE; see --help)"
        elif number := re.fullmatch(r"argument \S+: invalid (float|int) value: '(.*)'", message, re.S):
            message += _number_hint(*number.groups())
        elif choice := re.fullmatch(r"argument (?:\S+/)?(\S+): invalid choice: '(.*)' \(choose from .*", message, re.S):
            # the Python API names the nearest choice; the CLI listed them only
            from ._coerce import nearest_hint

            name, value = choice.groups()
            action = self._option_string_actions.get(name) or next(
                (a for a in self._actions if name in (a.metavar, a.dest)), None)  # a positional: COMMAND
            if action is not None and action.choices:
                message += nearest_hint(value, [str(c) for c in action.choices])
        elif message.startswith("the following arguments are required"):
            # argparse says this before it gets to the options no action took,
            # so a mistyped required option (--outdir for --out) was never
            # named
            known = self._option_string_actions
            typed = [a for a in getattr(self, "_argv", []) if a.startswith("--")]
            unknown = [a for a in typed if not any(o.startswith(a.split("=", 1)[0]) for o in known)]
            hints = _near_options(self, unknown)
            if hints:
                message += f" ({'; '.join(hints)})"
        super().error(message)


def _number_hint(kind, text):
    """The hint for argparse's "invalid float value" / "invalid int value"
    (``kind`` "float" or "int") of ``text``: ``--tolerance 1%`` and
    ``--max-pulses 2.5`` got no word on what to write (found by review)."""
    try:
        x = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        x = None
    if kind == "float":
        if x is not None:  # only a percentage fails float() and parses here
            return f" (a plain number: for {text} write {x:g})"
        return " (a plain number, e.g. 0.01 or 1e-9, without units)"
    if x is not None and x == int(x) and not text.endswith("%"):
        return f" (a whole number written as one: {int(x)})"
    return " (a whole number, e.g. 40)"


def _unrecognized(parser, extra):
    """The error for arguments no option of ``parser`` took, with the
    nearest option name for each mistyped one."""
    hints = _near_options(parser, extra)
    hint = f" ({'; '.join(hints)})" if hints else f" (see {parser.prog} --help)"
    return f"unrecognized arguments: {' '.join(extra)}{hint}"


def _near_options(parser, args):
    """``"--arg: did you mean --name?"`` for each ``--`` argument of
    ``args`` that has a near option name in ``parser``."""
    import difflib

    names = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    hints = []
    for arg in args:
        if arg.startswith("--"):
            # compared without the "--" every name shares, which alone made
            # --vp "near" --help
            near = difflib.get_close_matches(arg.split("=", 1)[0][2:], [n[2:] for n in names], n=1)
            if near:
                hints.append(f"{arg.split('=', 1)[0]}: did you mean --{near[0]}?")
    return hints


def build_parser():
    from . import __version__

    parser = _Parser(
        prog="xbarsim",
        description="Simulate passive ReRAM crossbar arrays: solve, program, train.",
        epilog="The main job: `xbarsim moons --out out/moons` (the half-moons experiment of Drolet et al., "
               "about 1.5-2 minutes, more on an install's first run; `xbarsim moons --help`).",
    )
    parser.add_argument("--version", action="version", version=f"xbarsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this version
                continue
            raise
        module.register(sub)
    parser.subcommands = sub.choices
    return parser


def _cli_warning(command):
    """``warnings.showwarning`` for a command: ``xbarsim solve: warning:
    ...`` on stderr, as its errors read, instead of Python's source-line
    format (the entry script's path, line and ``sys.exit(main())``)."""
    def show(message, category, filename, lineno, file=None, line=None):
        kind = "" if issubclass(category, (UserWarning, RuntimeWarning)) else f"{category.__name__}: "
        text = str(message).removeprefix("xbarsim: ")
        print(f"xbarsim {command}: warning: {kind}{text}", file=sys.stderr if file is None else file)

    return show


def main(argv=None):
    from .exceptions import XbarsimError

    if sys.stderr is None:
        # started with stderr closed (`2>&-`): the status lines and errors
        # went to stdout (print's file=None) and a progress bar raised after
        # the work; they go nowhere now, the exit status
        # still says how the run ended
        sys.stderr = open(os.devnull, "w")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser: its usage, not the top level's
        target = parser.subcommands.get(getattr(args, "command", None), parser)
        target.error(_unrecognized(target, extra))
    if not getattr(args, "func", None):
        # usage and the error on stderr, as argparse reports its other
        # errors (the whole help went to stdout, with status 2)
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give a command ({', '.join(sorted(parser.subcommands))}); "
              f"`{parser.prog} --help` describes them.", file=sys.stderr)
        return 2
    terminated = []
    previous = _catch_sigterm(terminated)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _cli_warning(args.command)
            code = int(args.func(args) or 0)
        # a command that reports its own interrupt (scale: 130 and how to
        # resume) returns; a SIGTERM's status is still 143
        return 128 + signal.SIGTERM if terminated else code
    except XbarsimError as exc:
        print(f"xbarsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if terminated:
            print(f"\nxbarsim {args.command}: terminated (SIGTERM).", file=sys.stderr)
            return 128 + signal.SIGTERM
        print(f"\nxbarsim {args.command}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``xbarsim ... | head``): stop
        # quietly, as Unix tools do, and keep Python from complaining again
        # when it flushes stdout at exit.
        from ._progress import silence_stream

        silence_stream(sys.stdout)
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit), raised in the main
    thread as an interrupt while a command runs, so that its clean-up runs as
    on Ctrl-C: the programming kernel stops, ``.partial-`` files are removed
    (`RunFiles`), Dask workers are closed, ``scale`` keeps its finished
    points. Python's default for SIGTERM ends the process at once: a SIGTERM
    while ``scale`` drew its figures left ``.partial-`` files in ``--out``."""


def _catch_sigterm(terminated):
    """Route SIGTERM to `Terminated` while `main` runs; returns the handler
    to restore, or None where nothing was installed: outside the main
    thread (signals cannot be set there), or when the caller installed a
    handler of its own (`main` called from a program that handles SIGTERM)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None

    def handler(signum, frame):
        terminated.append(signum)
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    return previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
