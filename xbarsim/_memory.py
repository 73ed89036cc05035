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
preconditioned residual (which the product shares), direction, and the
solution's voltages and device currents. Errs high since the shared buffer
(2048^2 peak: 114 B/cell for `pcg`, 162 for `mg`, returned solution
included)."""
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


def require(need, what, hint):
    """Refuse, before anything is allocated, work that needs ``need`` bytes
    when more than 90 % of the available memory: a `MemoryLimitError`
    saying ``what`` needs about that much, and ``hint`` (the fix)."""
    have = available_bytes()
    if need > 0.9 * have:
        raise MemoryLimitError(f"{what} needs about {_size(need)}, but only {_size(have)} is available; {hint}.")


def _size(n):
    """Bytes in the largest unit that keeps a non-zero figure (a refusal
    should not read "0.0 GiB")."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def check(method, M, N, batch):
    hint = "use method='pcg', which needs far less memory, or a smaller array" if method == "direct" else \
        "use a smaller array"
    if batch > 1:
        hint = f"solve fewer input columns at a time (split the batch of {batch}), or " + hint
    require(estimate(method, M, N, batch), f"a {method} solve of a {M} x {N} array with {batch} input column(s)",
            hint)


def check_copy(value, name):
    """Refuse to convert an array input (``value``, not yet converted) whose
    float64, C-ordered copy would not fit: a float32 or strided or broadcast
    array the size of the machine, before NumPy tries to allocate it."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return
    flags = getattr(value, "flags", None)
    if dtype == "float64" and (flags is None or flags.c_contiguous):
        return
    need = 8
    for n in shape:
        need *= int(n)
    require(need, f"a float64 C-ordered copy of {name} ({dtype}, shape {tuple(shape)})",
            "use a smaller array")
