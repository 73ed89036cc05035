"""Refuse solves that cannot fit in memory, before allocating anything."""

from __future__ import annotations

from .exceptions import MemoryLimitError

PCG_BYTES_PER_CELL = 48
"""Per-cell bytes independent of the batch (line-relaxation CG): G.T, group
ids, segment conductances, line factors (invden; cprime too with ideal wire)
of both layers.
Measured with tracemalloc: 146 B/cell in all at 1024^2, one column."""
PCG_BYTES_PER_CELL_COLUMN = 104
"""Per-cell bytes per batch column: both layers' voltages, residual,
preconditioned residual, direction and product, and the solution's
voltages and device currents."""
MG_BYTES_PER_CELL = 120
"""As `PCG_BYTES_PER_CELL` plus the coarse levels (about a third of the
fine level each: conductances, shunts, factors). 244 B/cell measured at
1024^2, one column, when the line factors kept c' as well; 178 B/cell peak
(tracemalloc, returned solution included) at 2048^2 since they do not. The
estimate is left where it was: it only decides refusals, and errs high."""
MG_BYTES_PER_CELL_COLUMN = 128
"""As `PCG_BYTES_PER_CELL_COLUMN` plus the coarse levels' vectors."""
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
    if method == "mg":
        return cells * (MG_BYTES_PER_CELL + MG_BYTES_PER_CELL_COLUMN * batch)
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
