"""A small dependency-free progress bar for long work (stderr, TTY-aware)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Context manager printing ``label [#####.....] k/n  elapsed  eta``.

    On a terminal the bar redraws in place; otherwise (CI logs) it prints a
    line at every 10 % so logs stay short. ``enabled=False`` silences it.
    """

    def __init__(self, total, label="", enabled=True, stream=None, width=30):
        self.total = max(int(total), 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self._t0 = time.perf_counter()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1
        self._drawn = 0  # length of the line on the terminal

    def __enter__(self):
        self._draw()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._draw(final=True)
        return False

    def update(self, k=1, note=""):
        self.done = min(self.done + k, self.total) if self.total else self.done + k
        self._draw(note=note)

    def _draw(self, final=False, note=""):
        if not self.enabled:
            return
        frac = self.done / self.total if self.total else 1.0
        decile = int(frac * 10)
        if not self._tty and not final and decile == self._last_decile:
            return
        self._last_decile = decile
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / frac - elapsed if 0 < frac < 1 else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {self.done}/{self.total}  {elapsed:6.1f}s  eta {eta:6.1f}s {note}"
        if self._tty:
            # padded over the last line: "\r" only moves the cursor, and a
            # shorter note left the longer one's tail (after "8x8 r=20",
            # "8x8 r=1" read "8x8 r=10"; found by review)
            end = "\n" if final else ""
            self.stream.write("\r" + text.ljust(self._drawn) + end)
            self._drawn = 0 if final else len(text)
        elif final or decile != 10:
            self.stream.write(text + "\n")
        self.stream.flush()
