"""Refuse solves that cannot fit in memory, before allocating anything."""

from __future__ import annotations

import os

from .exceptions import MemoryLimitError

PCG_BYTES_PER_CELL = 96
"""Per-cell bytes independent of the batch: G and G.T, group ids, segment
conductances, line factors (lower, cprime, invden, diag) of both layers."""
PCG_BYTES_PER_CELL_COLUMN = 112
"""Per-cell bytes per batch column: both layers' voltages, residual,
preconditioned residual, direction and product (6 vectors x 2 layers)."""
DIRECT_BYTES_PER_CELL = 2500
"""Rough SuperLU fill for the crossbar graph, measured at 256^2."""


def available_bytes():
    """Memory available to this process now (MemAvailable), in bytes."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - last resort: do not refuse
        return 1 << 62


def estimate(method, M, N, batch):
    """Bytes a solve of an M x N array with `batch` columns needs, roughly."""
    cells = M * N
    if method == "direct":
        return cells * (DIRECT_BYTES_PER_CELL + 64 * batch)
    return cells * (PCG_BYTES_PER_CELL + PCG_BYTES_PER_CELL_COLUMN * batch)


def check(method, M, N, batch):
    need = estimate(method, M, N, batch)
    have = available_bytes()
    if need > 0.9 * have:
        hint = (
            "use method='pcg', which needs far less memory, or a smaller array"
            if method == "direct"
            else "solve fewer input columns at a time (split the batch), or use a smaller array"
        )
        raise MemoryLimitError(
            f"a {method} solve of a {M} x {N} array with {batch} input column(s) needs about "
            f"{need / 2**30:.1f} GiB, but only {have / 2**30:.1f} GiB is available; {hint}."
        )
