"""Refuse solves that cannot fit in memory, before allocating anything."""

from __future__ import annotations

import math
import os

import numpy as np

from .exceptions import MemoryLimitError

PCG_BYTES_PER_CELL = 112
"""Per-cell bytes independent of the batch (line-relaxation CG): G.T, group
ids, segment conductances, line factors (invden; cprime too with ideal wire)
of both layers.
Measured with tracemalloc: 146 B/cell in all at 1024^2, one column. 48
before, which ideal wire (the extra factors and group ids; the path ``auto``
takes whenever a wire is ideal) outgrew: one column peaked at 1.18-1.30x the
estimate from 256^2 to 1536^2, 185 B/cell at 1024^2 (RSS).
"""
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
DIRECT_BYTES_PER_CELL = 2900
"""SuperLU's fill for the crossbar graph per cell up to 256^2 (`direct_fill`
adds `DIRECT_BYTES_PER_DOUBLING` per doubling of the cells beyond)."""
DIRECT_BYTES_PER_DOUBLING = 240
"""Growth of SuperLU's fill per cell with each doubling of the cells: a
nested-dissection fill of a 2-D mesh grows as n log n. RSS of one column
measured 2803, 3213 and 3747 B/cell at 256^2, 512^2 and 1024^2 (2660
estimated by the constant 2500 before: 1.41x over at 1024^2, and more
beyond)."""
DIRECT_BYTES_PER_CELL_COLUMN = 160
"""Per-cell bytes per batch column of a direct solve: it runs the CG loop of
`pcg` (`PCG_BYTES_PER_CELL_COLUMN`) on the factorization's solves, plus
their right-hand sides and solutions. 64 before, and a 32 x 32 solve of
4000 columns peaked at 610 MiB of RSS against 252 MiB estimated (137-157
B/cell per column)."""
NEWTON_BYTES_PER_CELL = 224
"""Per-cell bytes a nonlinear (sinh) solve holds on top of its inner linear
solve of one column (`xbarsim._newton`): the network's per-cell V0 of both
layers and their unit-drive copies (32); of the column being solved the
voltages, residual, trial voltages, trial residual and correction of both
layers (80) and its own CG vectors (32); |V/V0|, the cosh temporary and the
Jacobian's device conductances with their transpose (32), the previous
step's pair still held while the next is built (16), and a network whose
drives fix both nodes of a device copies g and V0 once more (32). Plus one
more inner preconditioner (`_SECOND_FACTORS`). Measured with tracemalloc at
128^2 and 256^2, one column: 285 and 283 B/cell in all for ``pcg``, 462 and
436 for ``mg``; linear solves at 256^2: 115 and 169."""
NEWTON_BYTES_PER_CELL_COLUMN = 64
"""Per-cell bytes per further batch column of a nonlinear solve: Newton
solves the columns one at a time, so a column adds its voltages of both
layers and device currents to the result (24) and a warm start's copy (16),
and the solution's end and line-sum currents over the whole batch at the
end (about 20 more). 48 before: 32^2 to 64^2 solves of 2000-4000 columns
peaked at 58 B/cell per column of RSS, 1.17-1.20x the estimate.
"""
LINE_BYTES = 256
"""Bytes per line (word and bit lines: M + N) of any solve, beyond the
per-cell figures: each line's drive, terminal, end-current and factor
entries. Nothing on a square array (8192^2: 4 MB), but a 1 x N or N x 1
array has a line per cell: a 1 x 2,000,000 ``mg`` solve peaked at 925 MiB
of RSS against 473 MiB estimated, ``pcg`` at 689 against 412.
"""
LINE_BYTES_PER_COLUMN = 128
"""Bytes per line and batch column beyond `LINE_BYTES`: a ``pcg`` solve of
1 x 250,000 with 8 columns peaked at 404 MiB against 225 MiB estimated
(about 86 B per line and further column measured)."""


DIRECT_IDEAL_BYTES_PER_CELL = {1: 640, 2: 200}
"""Per-cell bytes of a direct solve, beyond its `DIRECT_BYTES_PER_CELL_COLUMN`
per column (800 and 360 B/cell in all with one column), when every segment of one
(1) or both (2) wire directions is ideal: each such line is one node, the
system shrinks to one layer of nodes (or to M + N of them), and the fill
with it. RSS measured 725, 697, 665 B/cell (one) and 317, 316, 316 B/cell
(both) at 256^2, 512^2, 1024^2; the full-fill estimate, 3000-3800 B/cell,
refused a 4096^2 solve with an ideal bit line that needs about 11 GB."""


def direct_fill(cells, ideal_wires=0):
    """Bytes per cell of SuperLU's factors of a crossbar of ``cells`` cells,
    ``ideal_wires`` of whose two wire directions are ideal throughout."""
    if ideal_wires:
        return DIRECT_IDEAL_BYTES_PER_CELL[min(int(ideal_wires), 2)]
    return DIRECT_BYTES_PER_CELL + DIRECT_BYTES_PER_DOUBLING * max(0.0, math.log2(max(cells, 1) / 65536))


_SECOND_FACTORS = {"direct": direct_fill, "mg": lambda cells, ideal_wires=0: MG_BYTES_PER_CELL,
                   "pcg": lambda cells, ideal_wires=0: PCG_BYTES_PER_CELL}
"""A Newton step builds its Jacobian's preconditioner (SuperLU factors, or
line factors and coarse levels) while the previous step's is still held: two
sets at once. For ``direct`` that doubles the fill: 4627 B/cell RSS at
256^2 for sinh devices against 2763 linear (SuperLU's L + U there: 1839
B/cell); the guard's linear figure alone let such solves reach 1.5-1.8x
what it admitted."""


PROC_MEMINFO = "/proc/meminfo"
"""The kernel's memory report (`available_bytes` reads its MemAvailable, in KiB)."""
PROC_CGROUP = "/proc/self/cgroup"
"""Where this process's control groups are listed (`cgroup_room`)."""
CGROUP_MOUNTS = {"v2": "/sys/fs/cgroup", "v1": "/sys/fs/cgroup/memory"}
"""Mount points of the cgroup v2 hierarchy and of cgroup v1's memory
controller."""


def available_bytes():
    """Memory this process may still take now, in bytes: the least of the
    machine's MemAvailable, the room its memory cgroups leave
    (`cgroup_room`: a container's, a SLURM job's ``--mem``) and the room
    under its address-space limit (``ulimit -v``). MemAvailable alone let a
    job with a smaller limit be killed, or fail mid-solve, where it should
    have been refused."""
    rooms = [_machine_available(), cgroup_room(), _address_space_room()]
    return min(r for r in rooms if r is not None)


def _machine_available():
    try:
        with open(PROC_MEMINFO) as fh:
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


def _read_number(path):
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None  # "max": no limit


def _stat_field(path, key):
    try:
        with open(path) as fh:
            for line in fh:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


_CGROUP_LIMITS = {}
"""(PROC_CGROUP, mounts) -> the memory cgroups with a limit: (limit, usage
file, memory.stat file, its file-cache keys) each. Read once per process:
a limit changes seldom, and reading every level's files took 0.12 ms per
check, 5 % of a small solve."""


def _limited_cgroups():
    key = (PROC_CGROUP, tuple(sorted(CGROUP_MOUNTS.items())))
    if key in _CGROUP_LIMITS:
        return _CGROUP_LIMITS[key]
    found = []
    try:
        with open(PROC_CGROUP) as fh:
            entries = fh.read().splitlines()
    except OSError:
        entries = []
    for entry in entries:
        parts = entry.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            base, files = CGROUP_MOUNTS["v2"], ("memory.max", "memory.current", ("active_file", "inactive_file"))
        elif "memory" in parts[1].split(","):
            base, files = CGROUP_MOUNTS["v1"], ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                ("total_active_file", "total_inactive_file"))
        else:
            continue
        here = os.path.normpath(os.path.join(base, parts[2].lstrip("/")))
        if not here.startswith(base) or not os.path.isdir(here):
            here = base  # a namespaced container sees its own group at the mount point
        while True:
            limit = _read_number(os.path.join(here, files[0]))
            if limit is not None and limit < 1 << 60:  # "max" (v2) or ~2**63 (v1): no limit
                found.append((limit, os.path.join(here, files[1]), os.path.join(here, "memory.stat"), files[2]))
            if len(here) <= len(base):
                break
            here = os.path.dirname(here)
    _CGROUP_LIMITS[key] = found
    return found


def cgroup_room():
    """Bytes the memory cgroups of this process (v2 or v1, its own and every
    ancestor up to the mount point) still allow: limit less usage, the
    reclaimable file cache (active and inactive, as MemAvailable counts it)
    not counted as used. None without a
    limit. The limits are read once per process (`_CGROUP_LIMITS`), the
    usage at every call."""
    rooms = []
    for limit, usage_file, stat_file, key in _limited_cgroups():
        usage = _read_number(usage_file)
        if usage is not None:
            cache = sum(_stat_field(stat_file, k) for k in key)
            rooms.append(max(limit - max(usage - cache, 0), 0))
    return min(rooms) if rooms else None


def _address_space_room():
    """Room under ``RLIMIT_AS`` (``ulimit -v``), or None without one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    return max(soft - size, 0)


def estimate(method, M, N, batch, nonlinear=False, ideal_wires=0):
    """Bytes a solve of an M x N array with `batch` columns needs, roughly
    (per cell, and per line: `LINE_BYTES`);
    `nonlinear`: sinh devices (Newton: the inner linear solve of one column,
    `NEWTON_BYTES_PER_CELL`, a second preconditioner and
    `NEWTON_BYTES_PER_CELL_COLUMN` per further column); `ideal_wires`: how
    many of the two wire directions are ideal throughout (`ideal_wire_count`;
    it shrinks a direct solve's fill)."""
    cells = M * N
    if nonlinear:
        return (estimate(method, M, N, 1, ideal_wires=ideal_wires)
                + cells * (NEWTON_BYTES_PER_CELL + _SECOND_FACTORS[method](cells, ideal_wires)
                           + NEWTON_BYTES_PER_CELL_COLUMN * (batch - 1))
                + (M + N) * LINE_BYTES_PER_COLUMN * (batch - 1))
    lines = (M + N) * (LINE_BYTES + LINE_BYTES_PER_COLUMN * batch)
    if method == "direct":
        return lines + cells * (direct_fill(cells, ideal_wires) + DIRECT_BYTES_PER_CELL_COLUMN * batch)
    if method == "mg":
        return lines + cells * (MG_BYTES_PER_CELL + MG_BYTES_PER_CELL_COLUMN * batch)
    return lines + cells * (PCG_BYTES_PER_CELL + PCG_BYTES_PER_CELL_COLUMN * batch)


def require(need, what, hint):
    """Refuse, before anything is allocated, work that needs ``need`` bytes
    when more than 90 % of the available memory: a `MemoryLimitError`
    saying ``what`` needs about that much, and ``hint`` (the fix). In a
    Dask worker with a memory limit, the limit counts too
    (`worker_allowance`)."""
    have = available_bytes()
    if need > 0.9 * have:
        raise MemoryLimitError(f"{what} needs {_about(need)}, but only {_size(have)} is available; {hint}.")
    worker = worker_allowance()
    if worker is not None and need > worker:
        raise MemoryLimitError(
            f"{what} needs {_about(need)}, but this Dask worker may grow by only {_size(max(worker, 0))} "
            f"more before its nanny kills it (its memory_limit; a cluster that workers=N or --workers N "
            f"starts gives each the machine's memory over N); {hint}, use fewer workers (workers=, "
            f"--workers), or give the cluster's workers a larger memory_limit.")


def worker_allowance():
    """Bytes the Dask worker running this may still grow by before its
    nanny restarts it (``distributed.worker.memory.terminate`` of its
    memory limit, less what the process holds now); None outside a worker
    or without a limit. A `LocalCluster` gives each of ``--workers N`` the
    machine's memory / N, and a point the machine-wide guard admitted
    between that and the machine's memory had its workers killed one
    after another, then was recorded failed with a hint to retry.
    """
    import sys

    if "distributed" not in sys.modules:  # never imported: not in a worker
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    if not limit:
        return None
    import dask

    terminate = dask.config.get("distributed.worker.memory.terminate", 0.95)
    if not terminate:
        return None
    try:
        import psutil

        held = psutil.Process().memory_info().rss
    except Exception:  # pragma: no cover - psutil ships with distributed
        return None
    return int(float(terminate) * limit - held)


def _about(n):
    """``about <size>``, or "more than 1e308 bytes" for a need past a float's
    range (10**400 arrays: inf)."""
    return "more than 1e308 bytes" if n == float("inf") else f"about {_size(n)}"


def _size(n):
    """Bytes in the largest unit that keeps a non-zero figure (a refusal
    should not read "0.0 GiB"); past 1e6 GiB in exponent form."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 1e6 * 2**30 else f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def ideal_wire_count(M, N, r_wl, r_bl):
    """How many of the two wire directions are ideal throughout (every
    segment 0 ohm; a direction without segments, N == 1 or M == 1, counts:
    each such line is one node too)."""
    return int(N == 1 or not np.any(np.asarray(r_wl) != 0)) + int(M == 1 or not np.any(np.asarray(r_bl) != 0))


def check(method, M, N, batch, nonlinear=False, ideal_wires=0, pcg="method='pcg'"):
    """Refuse (`require`) a solve that `estimate` says cannot fit. ``pcg``:
    how the caller's user asks for the pcg method (the command lines pass
    ``"--method pcg"``), None where it is not to be offered."""
    need = estimate(method, M, N, batch, nonlinear, ideal_wires)
    hint = "use a smaller array"
    if method == "direct" and pcg:  # pcg=None: it is refused for this circuit (`xbarsim.solve.choose_method`)
        # pcg is offered with what it needs: "far less" overstated it with
        # a batch (1776 against direct's 2760 bytes a cell at 16 columns of
        # ideal wires), and it is left out where it saves
        # under 10 % (sinh solves of large batches)
        pcg_need = estimate("pcg", M, N, batch, nonlinear, ideal_wires)
        if pcg_need < 0.9 * need:
            hint = f"use {pcg}, which needs about {_size(pcg_need)}, or a smaller array"
    if batch > 1:
        hint = f"solve fewer input columns at a time (split the batch of {batch}), or " + hint
    devices = " of sinh devices" if nonlinear else ""
    require(need,
            f"a {method} solve of a {M} x {N} array{devices} with {batch} input column(s)", hint)


def check_copy(value, name, copied=False):
    """Refuse to convert an array input (``value``, not yet converted) whose
    float64, C-ordered copy would not fit: a float32 or strided or broadcast
    array the size of the machine, before NumPy tries to allocate it.
    ``copied``: the caller copies even a float64 C-ordered array (a
    `Crossbar` owns its arrays), so it counts too."""
    from ._coerce import shape_of

    shape = shape_of(value)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None or len(shape) == 0:
        return  # a scalar costs nothing worth a check (a Crossbar's wires often are)
    flags = getattr(value, "flags", None)
    if not copied and dtype == "float64" and (flags is None or flags.c_contiguous):
        return
    need = 8
    for n in shape:
        if not isinstance(n, (int, np.integer)):
            return  # an unknown length (a lazy array's): its conversion says what is wrong
        need *= int(n)
    require(need, f"a float64 C-ordered copy of {name} ({dtype}, shape {tuple(shape)})",
            "use a smaller array")
