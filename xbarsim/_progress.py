"""A small dependency-free progress bar for long work (stderr, TTY-aware)."""

from __future__ import annotations

import os
import shutil
import sys
import time


LOG_EVERY_S = 60.0
"""Off a terminal, the longest gap between two progress lines, seconds."""


class Progress:
    """Context manager printing ``label [#####.....] k/n  elapsed  eta``.

    On a terminal the bar redraws in place; otherwise (CI logs) it prints a
    line at every 10 % so logs stay short, and at least every `LOG_EVERY_S`
    seconds (a 256 x 256 `xbarsim program` run, about 11 hours, printed its
    first line after an hour). ``enabled=False`` silences
    it.
    The estimate leaves the first step out (``eta ?`` until a second one):
    a first step that compiled the kernels for half a minute made a fit of
    36 s read "eta 307.8s".
    """

    def __init__(self, total, label="", enabled=True, stream=None, width=30):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        # no stream at all (a process started with stderr closed, `2>&-`):
        # silent, where writing to None raised AttributeError after the run
        self.enabled = enabled and self.stream is not None
        self.width = width
        self.done = 0
        self._t0 = time.perf_counter()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1
        self._last_line = self._t0  # when a log line was last written
        self._drawn = 0  # length of the line on the terminal
        self._first = None  # (time, done) at the first step
        self.stopped = False  # set by work that ends early without an exception: no estimate then either

    def __enter__(self):
        self._draw()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.enabled:
            # left by an exception (Ctrl-C): no estimate, where "eta 0.0s"
            # ended a run with 15 hours to go
            self._draw(final=True, stopped=exc_type is not None or self.stopped)
        return False

    def update(self, k=1, note=""):
        self.done = min(self.done + k, self.total) if self.total else self.done + k
        if self._first is None:
            self._first = (time.perf_counter(), self.done)
        self._draw(note=note)

    def _columns(self):
        """Width of the terminal the bar is drawn on: its own stream's (stderr),
        not stdout's, which `shutil.get_terminal_size` measures (redirected,
        it read 80 on a 50-column terminal; review of the fix)."""
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            cols = shutil.get_terminal_size().columns
        # a pseudo-terminal that reports no size (`script`, some CI runners)
        # reads 0 columns, and the bar was cut to its first letter
        return cols if cols > 0 else 80

    def _draw(self, final=False, note="", stopped=False):
        if not self.enabled:
            return
        frac = self.done / self.total if self.total else 1.0
        decile = int(frac * 10)
        now = time.perf_counter()
        if not self._tty and not final and decile == self._last_decile and now - self._last_line < LOG_EVERY_S:
            return
        self._last_decile = decile
        self._last_line = now
        elapsed = now - self._t0
        if stopped and frac < 1:
            eta = "stopped"
        elif frac >= 1 or final:
            eta = "   0.0s"
        elif self._first is not None and self.done > self._first[1]:
            t1, d1 = self._first
            eta = f"{(now - t1) / (self.done - d1) * (self.total - self.done):6.1f}s"
        else:
            eta = "     ? "
        # truncated, as the decile is: rounded, 59 of 60 steps drew a full bar
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {self.done}/{self.total}  {elapsed:6.1f}s  eta {eta} {note}"
        if self._tty:
            # no wider than the terminal: a wrapped line is redrawn from its
            # last row only, so each redraw scrolled a new line
            text = text[:max(self._columns() - 1, 1)]
            # padded over the last line: "\r" only moves the cursor, and a
            # shorter note left the longer one's tail (after "8x8 r=20",
            # "8x8 r=1" read "8x8 r=10")
            end = "\n" if final else ""
            self._write("\r" + text.ljust(self._drawn) + end)
            self._drawn = 0 if final else len(text)
        elif final or decile != 10:
            self._write(text + "\n")

    def _write(self, text):
        """Write and flush; a reader that went away (``2>&1 | head``) silences
        the bar, and its stream from then on, rather than end the run: the
        BrokenPipeError of the next line stopped ``xbarsim moons`` after
        its fit and training, with nothing written."""
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.enabled = False
            silence_stream(self.stream)


def silence_stream(stream):
    """Point `stream`'s file descriptor at /dev/null (where it has one): the
    pipe's reader is gone, and every later write to it (a warning, the
    interpreter's flush at exit) would fail in turn (the progress bar's
    stream, and the command line's stdout: `xbarsim.cli.main`)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
