"""Ex-situ transfer of a trained layer into crossbars, and MVM through them.

API
---
``cfg = xs.TransferConfig(...)``
    How to transfer (device, bias / read schemes, mapping, tolerance, order,
    wires, tile size); `xbarsim.programming.TransferConfig`.
``prog = xs.transfer(weight, bias, cfg, seed=0) -> Programmed``
    Map ``y = W x + b`` (``weight`` (out, in), torch layout) to tiles of
    target conductances (`xbarsim.mapping.map_layer`), then program every
    tile by write-verify on its circuit (`xbarsim.programming`). Tile ``k``
    of transfer ``t`` draws from the stream ``(seed, t, k)``; a single
    `transfer` is transfer ``t = 0``, so ``xs.transfer(W, b, cfg, s)``
    equals ``xs.transfer_many(W, b, cfg, n, s)[0]``.
``y = xs.mvm(prog, x, seed=None) -> (B, out)``
    Inputs ``x`` (B, in) drive the word lines (``x V_read / input_scale``;
    bias row at ``V_read``), every tile is solved as a circuit (sinh devices,
    wire resistance, read noise), the column currents are combined (pairs
    or reference), summed over row tiles and decoded to weight units. The
    read noise is drawn from ``seed``, by default the transfer's own.
``progs = xs.transfer_many(weight, bias, cfg, n=2000, seed=0) -> TransferBatch``
    ``n`` independent Monte-Carlo transfers: numba ``prange`` over
    transfers in-process by default, in chunks of ``chunk`` transfers, so
    the working memory is that of one chunk whatever ``n`` (the result holds,
    per device and transfer, its conductance, converged and stuck flags and
    pulse count: 14 bytes, `_RESULT_BYTES_PER_DEVICE`).
    ``workers=`` (a local Dask cluster of that many processes) or
    ``scheduler=`` (a ``distributed`` scheduler address or Client) run the
    chunks with Dask instead; results are identical. (Dask starts its
    worker processes by spawning Python afresh: a script that passes
    ``workers=`` needs the usual ``if __name__ == "__main__":`` guard.)
``xs.iter_transfers(weight, bias, cfg, n, seed, chunk)``
    The same transfers as a stream of `TransferBatch` chunks (constant
    memory for any ``n``).

Batched MVM over all transfers
------------------------------
``Y = progs.mvm(x, seed=0)`` (also ``xs.mvm_many(progs, x)`` and
``xs.mvm(progs, x)``) returns an array of shape ``(n, B, out)``:
``Y[t]`` is the output of transfer ``t`` for the B inputs ``x`` (B, in)
(or for its own inputs ``x[t]`` when ``x`` is (n, B, in), which chains
layers: ``Y2 = progs2.mvm(np.maximum(progs1.mvm(x), 0))``),
each computed through its own circuit exactly like ``xs.mvm(progs[t], x)``
(parallel over transfers; the read noise of transfer ``t`` comes from the
stream ``(seed, t, tile)``). ``progs.effective_weights()`` gives the
``(n, out, in)`` weights and ``(n, out)`` biases the programmed
conductances encode under a linear read (for surrogate models).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from itertools import islice
from typing import List, Optional

import numpy as np

from ._coerce import where_not_finite
from ._repr import compact_repr
from ._warn import warn
from .exceptions import ParameterError, XbarsimError
from .mapping import MAX_TILES, LayerMapping, as_float_array, map_layer
from .programming import (SINH_ARG_MAX, TransferConfig, _check_flag, _check_seed, _program_batch,
                          off_target_counts, programming_order, warn_unconverged)
from ._docfields import document_fields

__all__ = ["Programmed", "TransferBatch", "ConvergenceTally", "transfer", "transfer_many", "iter_transfers", "mvm",
           "mvm_many"]

_MVM_KEY = MAX_TILES
"""Offset of the read-noise stream keys of MVM (apart from programming's:
`map_layer` makes at most this many tiles)."""
_ROW_MAX = (1 << 63) - 1
"""Past the last input row an MVM keys a read-noise stream by (``row_offset + B``)."""


def _check_row_offset(row_offset):
    """``row_offset`` of `mvm` as an int in [0, 2**63 - 1)."""
    if (isinstance(row_offset, (bool, np.bool_)) or not isinstance(row_offset, (int, np.integer))
            or not 0 <= row_offset < _ROW_MAX):
        raise ParameterError(f"row_offset = {row_offset!r}; an integer in [0, 2**63 - 1): the index of x's first row "
                             "in the whole set of inputs (0 for a call that reads them all).")
    return int(row_offset)


_TILE_FIELDS = ("g", "converged", "stuck_state", "pulses")
"""The per-tile array fields of `Programmed` and `TransferBatch`."""


class _TransferIndexError(ParameterError, IndexError):
    """A transfer index outside a `TransferBatch`: a `ParameterError` like
    every bad argument, and an `IndexError` as the sequence protocol expects."""


@dataclass(frozen=True, eq=False)
class _ProgrammedLayer:
    """What one programmed layer and a batch of them share. Each per-tile
    field holds one array per tile of ``mapping.tiles``: (rows, columns) for
    one transfer, (n, rows, columns) for a batch."""

    mapping: LayerMapping
    """Targets, scale and decoding of the layer."""
    cfg: TransferConfig
    """The configuration used."""
    seed: int
    """Seed of the programming streams."""
    g: List[np.ndarray]
    """Per tile: final true conductances, S."""
    converged: List[np.ndarray]
    """Per tile, bool: write-verify ended inside the band."""
    stuck_state: List[np.ndarray]
    """Per tile, int8 codes: 0 working, 1 stuck near LRS, 2 stuck in HRS."""
    pulses: List[np.ndarray]
    """Per tile, int32: pulses of the device's own write-verify."""

    @property
    def stuck(self):
        """Per tile, bool: True where the device failed (``stuck_state != 0``)."""
        return [s != 0 for s in self.stuck_state]

    def __post_init__(self):
        # A batch built or edited by hand (dataclasses.replace): tiles of the
        # wrong shape reached the MVM kernel, which read and wrote past them
        # (a heap corruption: the process aborted) or read a corner of the
        # array and gave a wrong answer; other dtypes compiled a new kernel
        # for half a minute. Shapes and types only: the
        # values are checked where they are used (mvm_many).
        if not isinstance(self.mapping, LayerMapping):
            raise ParameterError(f"mapping must be the LayerMapping of a transfer; got "
                                 f"{type(self.mapping).__name__}. Build the result with xs.transfer or "
                                 "xs.transfer_many, and edit it with dataclasses.replace.")
        if not isinstance(self.cfg, TransferConfig):
            raise ParameterError(f"cfg must be an xbarsim.TransferConfig; got {type(self.cfg).__name__}.")
        _check_seed(self.seed)
        _check_cfg_matches_mapping(self.cfg, self.mapping)
        # a read-side solve_tol below what the tiles' solves resolve: mvm solved
        # for half a minute, then advised raising solve_maxiter
        self.cfg.check_array(max((t.shape for t in self.mapping.tiles), key=max))
        lead = self._lead_shape()
        tiles = self.mapping.tiles
        for name in _TILE_FIELDS:
            arrays = getattr(self, name)
            if not isinstance(arrays, (list, tuple)) or len(arrays) != len(tiles):
                raise ParameterError(f"{name} must be a list of {len(tiles)} array(s), one per tile of the "
                                     f"mapping; got {type(arrays).__name__}"
                                     + (f" of {len(arrays)}" if isinstance(arrays, (list, tuple)) else "") + ".")
            for k, (a, tile) in enumerate(zip(arrays, tiles)):
                want = lead + tuple(tile.shape)
                if not isinstance(a, np.ndarray) or a.shape != want:
                    got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
                    raise ParameterError(f"{name}[{k}] has shape {got}; tile {k} needs {want} "
                                         f"({'transfers, ' if lead else ''}rows, columns). Keep each array's "
                                         "shape when editing a transfer's result.")
        for k, g in enumerate(self.g):
            if g.dtype != np.float64:
                raise ParameterError(f"g[{k}] has dtype {g.dtype}; conductances are float64 siemens "
                                     "(np.asarray(g, dtype=np.float64)).")

    def _lead_shape(self):
        return ()

    def tile_fields(self, f):
        """The per-tile fields with ``f`` applied to every array, as keyword
        arguments of a constructor (``f = lambda a: a[t]`` takes transfer t)."""
        return {name: [f(a) for a in getattr(self, name)] for name in _TILE_FIELDS}

    def effective_weights(self):
        """``(W, b)``: the weights the conductances encode, (out, in) and
        (out,) for one transfer, (n, out, in) and (n, out) for a batch.

        The small-signal (linear) encoding: `mvm` reads the circuit, so on
        sinh devices a product read at ``|x| = input_scale`` (V_read) comes
        out ``(v0 / V_read) sinh(V_read / v0)`` times this (3.3 % more for
        the TIO2 preset's 0.45 V at 0.2 V; the bias row always reads
        there), besides IR drop and read noise."""
        return self.mapping.effective_weights(self.g)


def _check_cfg_matches_mapping(cfg, mapping):
    """A result whose ``cfg`` was replaced by one that maps the layer
    otherwise: the MVM decodes with the mapping, so such a cfg's mapping
    fields were ignored without a word. Read-side fields
    (device, wires, read scheme, solve settings) may differ: the MVM reads
    with the cfg's."""
    got = {"mapping": (cfg.mapping.value, mapping.scheme.value),
           "input_scale": (float(cfg.input_scale), mapping.input_scale),
           "write_verify.v_read": (float(cfg.write_verify.v_read), mapping.v_read),
           "window": (tuple(float(g) for g in cfg.g_window), (mapping.g_min, mapping.g_max))}
    wrong = [f"{name} = {mine!r} (the mapping's: {theirs!r})" for name, (mine, theirs) in got.items()
             if mine != theirs]
    rows, cols = cfg.tile
    if any(t.shape[0] > rows or t.shape[1] > cols for t in mapping.tiles):
        wrong.append(f"tile = {cfg.tile} (smaller than the mapping's tiles)")
    if wrong:
        window = ""
        if cfg.window is None and (float(cfg.g_window[0]), float(cfg.g_window[1])) != (mapping.g_min, mapping.g_max):
            # a new device brings its own operating window unless one is given
            # (the hint listed the device as free to change, then refused it)
            dev = cfg.device
            if dev.g_min <= mapping.g_min and mapping.g_max <= dev.g_max:
                # exact values: the check compares exactly (6 digits were refused)
                window = (f" A cfg without a window maps into its device's operating window: to read with "
                          f"another device, keep the mapping's with window={(mapping.g_min, mapping.g_max)!r}.")
            else:
                window = (f" The device's operating window, ({dev.g_min:.6g}, {dev.g_max:.6g}) S, does not hold "
                          f"the mapping's, ({mapping.g_min:.6g}, {mapping.g_max:.6g}) S: transfer the layer "
                          "again with this device.")
        raise ParameterError(
            f"cfg does not map the layer as its mapping does: {'; '.join(wrong)}. The MVM decodes with the "
            "mapping, which the transfer built from its cfg: change only read-side fields (device, r_wl, r_bl, "
            "read_scheme, solve_tol, solve_maxiter) with dataclasses.replace, or transfer again with the new "
            f"cfg.{window}")


@document_fields
@dataclass(frozen=True, eq=False)
class TransferBatch(_ProgrammedLayer):
    """``n`` programmed copies of one layer (the result of `transfer_many`).

    Tile arrays are stacked over transfers: ``g[k]`` is (n, rows, columns)
    for tile ``k`` of ``mapping.tiles``.
    """

    __repr__ = compact_repr

    offset: int = 0
    """Index of the first transfer (transfer t uses stream (seed, offset + t, tile))."""
    solver_failures: int = 0
    """Circuit solves that missed their tolerance over all transfers: always 0 in a returned
    result (a miss raises `ConvergenceError`); kept for the record."""

    def __post_init__(self):
        if not isinstance(self.g, (list, tuple)) or not self.g or not isinstance(self.g[0], np.ndarray) \
                or self.g[0].ndim < 1 or self.g[0].shape[0] < 1:
            first = self.g[0] if isinstance(self.g, (list, tuple)) and self.g else self.g
            got = f"shape {first.shape}" if isinstance(first, np.ndarray) else type(first).__name__
            raise ParameterError(f"g must be a list of (n, rows, columns) NumPy arrays, one per tile, n >= 1; "
                                 f"its first is {got}.")
        _check_index(self.offset, "offset", len(self))
        super().__post_init__()

    def _lead_shape(self):
        return (len(self),)

    def __len__(self):
        return self.g[0].shape[0]

    @property
    def n(self):
        """The number of transfers (``len(batch)``)."""
        return len(self)

    def __getitem__(self, t):
        """Transfer ``t`` as a `Programmed`; a slice ``start:stop`` (step 1)
        as a `TransferBatch` of those transfers (same streams, so its MVM
        equals the matching rows of the whole batch's)."""
        if isinstance(t, slice):
            try:
                start, stop, step = t.indices(len(self))
            except TypeError:  # tm["a":]: Python's bare "slice indices must be integers"
                raise ParameterError(f"TransferBatch slice {t}: its start and stop must be integers (or None)."
                                     ) from None
            if step != 1:
                raise ParameterError(f"TransferBatch slice {t}: only contiguous slices (step 1) are supported, "
                                     "since transfer t of a batch draws its read noise from stream offset + t; "
                                     "take transfers one by one (tm[i]) instead.")
            if stop <= start:
                raise ParameterError(f"TransferBatch slice {t} selects none of the {len(self)} transfers.")
            return TransferBatch(mapping=self.mapping, cfg=self.cfg, seed=self.seed, offset=self.offset + start,
                                 **self.tile_fields(lambda a: a[start:stop]))
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise ParameterError(f"TransferBatch index {t!r}: give an integer transfer index or a slice "
                                 "start:stop.")
        t = int(t)
        if not -len(self) <= t < len(self):
            raise _TransferIndexError(f"TransferBatch index {t} is out of range for {len(self)} transfers "
                                      f"(0..{len(self) - 1}, or -{len(self)}..-1 from the end).")
        t %= len(self)
        return Programmed(mapping=self.mapping, cfg=self.cfg, seed=self.seed, index=self.offset + t,
                          **self.tile_fields(lambda a: a[t]))

    def mvm(self, x, seed: Optional[int] = None, noise: bool = True, row_offset: int = 0):
        """Outputs of every transfer for inputs ``x``, shared (B, in) or one
        set per transfer (n, B, in): (n, B, out) (`xbarsim.mvm_many`;
        ``seed`` None reads with the transfers' own seed)."""
        return mvm_many(self, x, seed=seed, noise=noise, row_offset=row_offset)


@document_fields
@dataclass(frozen=True, eq=False)
class Programmed(_ProgrammedLayer):
    """One programmed layer (the result of `transfer`)."""

    __repr__ = compact_repr

    index: int = 0
    """Transfer index of this copy (0 for `transfer`)."""
    results: Optional[list] = None
    """Per tile `ProgramResult` with every field (from `transfer`), else None."""

    def __post_init__(self):
        _check_index(self.index, "index", 1)
        super().__post_init__()

    def as_batch(self):
        """This transfer as a `TransferBatch` of one, reading from the same
        streams (its MVM gives this one's bits)."""
        return TransferBatch(mapping=self.mapping, cfg=self.cfg, seed=self.seed, offset=self.index,
                             **self.tile_fields(lambda a: a[None]))


def _check_index(start, name, n):
    """A transfer index (``index``, a batch's ``offset``) for ``n`` transfers:
    the read-noise streams key transfer t by ``start + t`` in 63 bits."""
    if isinstance(start, (bool, np.bool_)) or not isinstance(start, (int, np.integer)) \
            or not 0 <= start <= (1 << 63) - n:
        raise ParameterError(f"{name} = {start!r}; a transfer index is an integer in [0, 2**63 - {n}] (the "
                             "read-noise streams key each transfer by it).")


def _check_n(n, name="n", what="the number of transfers"):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"{name} = {n!r}; {what} must be a positive integer.")
    return int(n)


def _check_chunk(chunk):
    return _check_n(chunk, "chunk", "the number of transfers programmed per kernel call")


def _check_scheduler(scheduler):
    """None, a `distributed.Client`, or an address string (its form checked
    here, its scheduler when connecting)."""
    if scheduler is None:
        return
    if isinstance(scheduler, str) and scheduler.strip():
        from ._dask import check_scheduler_address, normalized_address

        check_scheduler_address(normalized_address(scheduler), "scheduler =")
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        Client = ()
    if not isinstance(scheduler, Client):
        raise ParameterError(f"scheduler = {scheduler!r:.60}; give the Dask scheduler's address as a string "
                             "such as 'tcp://HOST:PORT' (e.g. 'tcp://127.0.0.1:8786'), or a distributed.Client.")
    from ._dask import client_problem

    problem = client_problem(scheduler)
    if problem is not None:
        raise ParameterError(f"scheduler is a distributed.Client that cannot be used: {problem}, or the "
                             "scheduler's address as a string.")


def _say_if_no_worker(client):
    """One line on stderr when a user's Client has no worker: its chunks,
    already queued, wait for one (an adaptive cluster scales on them; an HPC
    cluster's workers may wait in a batch queue for minutes, so there is no
    time limit: Ctrl-C stops). The run used to wait without a word; a time limit failed such clusters.
    Returns whether it said so."""
    if not client.scheduler_info().get("workers"):
        print("xbarsim.transfer_many: the Client's cluster has no worker yet; the chunks are queued and wait "
              "for one (start workers, e.g. cluster.scale(n) or `dask worker ADDRESS`; Ctrl-C stops)",
              file=sys.stderr, flush=True)
        return True
    return False


_RESULT_BYTES_PER_DEVICE = 8 + 1 + 1 + 4
"""What `transfer_many` keeps per device and transfer: g (float64),
converged, stuck, pulses (int32)."""


def _chunk_bytes(mapping, count):
    """Working memory of one chunk of ``count`` transfers (`_run_chunk`):
    the results it hands back (`_RESULT_BYTES_PER_DEVICE` per device), and
    for the tile being programmed its broadcast targets and the kernel's
    work arrays and outputs (`PROGRAM_BYTES_PER_CELL`)."""
    devices = sum(t.target.size for t in mapping.tiles)
    largest = max(t.target.size for t in mapping.tiles)
    return float(count) * (devices * _RESULT_BYTES_PER_DEVICE + _programming_bytes(largest))


def _programming_bytes(devices):
    """Bytes programming ``devices`` devices holds: the kernel's work arrays
    and outputs (`PROGRAM_BYTES_PER_CELL`) and the float64 targets handed to
    it."""
    from .programming import PROGRAM_BYTES_PER_CELL

    return devices * (PROGRAM_BYTES_PER_CELL + 8.0)


def _check_result_memory(n, mapping, chunk=0, what="transfer_many"):
    """Refuse, before allocating anything, ``n`` transfers whose results
    cannot be kept with one chunk of ``chunk`` at work (it checked the
    results only: a chunk as large as n took 3.4x what it admitted).
    ``n`` 0: a stream (`iter_transfers`), which keeps none."""
    from ._memory import require

    devices = sum(t.target.size for t in mapping.tiles)
    require(float(n) * devices * _RESULT_BYTES_PER_DEVICE + _chunk_bytes(mapping, chunk),
            f"{what} keeping {n} transfers of {devices} devices, {chunk} at a time" if n else
            f"{what} of {devices} devices, {chunk} transfers at a time",
            ("lower n or chunk, or stream them with xs.iter_transfers(..., chunk=...), whose memory does not "
             "grow with n") if n else "lower chunk")


def _run_chunk(mapping, cfg, seed, start, count, numba_threads=None):
    """Program transfers ``start .. start+count`` of every tile (kernel).
    Its working memory is checked here too, where it runs: on a Dask worker
    the worker's memory limit counts (`xbarsim._memory.require`).
    ``numba_threads`` caps the kernel's threads while it runs (a local
    cluster's share of the cores per worker; results do not depend on it)."""
    from ._memory import require
    from ._parallel import numba_threads as thread_cap

    require(_chunk_bytes(mapping, count), f"a chunk of {count} transfers of this layer",
            "lower chunk, or use fewer Dask workers per machine")
    g, conv, stuck, pulses = [], [], [], []
    fails = 0
    off = np.zeros(3, dtype=np.int64)  # `off_target_counts`, tile by tile: the conductances after own are not kept
    with thread_cap(numba_threads):
        for k, tile in enumerate(mapping.tiles):
            targets = np.ascontiguousarray(np.broadcast_to(tile.target, (count,) + tile.shape))
            out = _program_batch(targets, cfg, seed, offset=start, key=k, final_read=False)
            g.append(out["g_final"])
            conv.append(out["converged"].astype(bool))
            stuck.append(out["stuck"])
            pulses.append(out["pulses"])
            fails += int(out["fails"].sum())
            off += off_target_counts([out["g_after_own"]], [tile.target], conv[-1:], stuck[-1:], cfg.tolerance)
    return g, conv, stuck, pulses, fails, tuple(int(k) for k in off)


def transfer(weight, bias=None, cfg: Optional[TransferConfig] = None, seed: int = 0,
             progress: bool = False) -> Programmed:
    """Map a layer to crossbar tiles and program them by write-verify.

    Parameters
    ----------
    weight : array_like, (out, in)
        Layer weights, torch layout.
    bias : array_like (out,) or None
        Layer bias (stored in an extra row driven at ``V_read``); None
        (the default) for a layer without one.
    cfg : TransferConfig, optional
        Default ``TransferConfig()``.
    seed : int
        Seed, an integer in [0, 2**64); tile ``k`` uses the stream ``(seed, 0, k)``, whatever the
        layer: two layers transferred with one seed draw the same random
        numbers, so tiles of one shape get their stuck devices at the same
        places. Give each layer of a network its own seed
        (`xbarsim.train.to_crossbar` uses seed + k for layer k).
    progress : bool
        Show a progress bar (stderr) per group of same-shaped tiles, which
        are programmed together, in parallel.

    Returns
    -------
    Programmed
        ``.g[k]``: tile k's final true conductances, S, (rows, cols);
        ``.converged``, ``.stuck_state``, ``.pulses`` alike; ``.results[k]``
        the tile's full `ProgramResult`; ``.mapping`` the layout and scale
        `mvm` decodes with; ``.effective_weights()`` the weights the
        programmed conductances encode.

    Raises
    ------
    ParameterError
        Before any programming: weights or bias of the wrong shape, NaN or
        inf; a seed outside [0, 2**64); a window no wider than the
        write-verify band; a solve_tol the tiles' solves cannot reach.
    MemoryLimitError, ConvergenceError
        As `program`'s (the first before any programming).

    Warns
    -----
    RuntimeWarning
        As `program`'s, over all the layer's tiles: unconverged devices, or
        verify reads that "converged" most devices far from their targets
        (biased reads' sneak currents, or large tiles' IR drop).

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> W = np.array([[0.5, -1.0]]); b = np.array([0.1])
    >>> prog = xs.transfer(W, b, xs.TransferConfig(), seed=0)
    >>> xs.mvm(prog, np.array([[1.0, 0.5]])).shape
    (1, 1)
    """
    from ._memory import require
    from .programming import _program_result

    cfg = TransferConfig() if cfg is None else cfg
    s = _check_seed(seed)  # the arguments before the mapping, which takes seconds on a large layer
    progress = _check_flag(progress, "progress")
    mapping = map_layer(weight, bias, cfg)
    devices = sum(t.target.size for t in mapping.tiles)
    # every tile's result (its 9 fields), one group's work arrays and stacked
    # targets: not checked before
    require(_programming_bytes(devices), f"transferring a layer of {devices} devices",
            "transfer a smaller layer")
    # tiles of one shape are programmed together, in parallel (each its own
    # stream (seed, 0, k), so the result is the same as one tile at a time)
    results = [None] * len(mapping.tiles)
    shapes = sorted({tile.shape for tile in mapping.tiles})
    for shape in shapes:
        ks = [k for k, tile in enumerate(mapping.tiles) if tile.shape == shape]
        pairs = programming_order(shape, cfg.order)
        out = _program_batch(np.stack([mapping.tiles[k].target for k in ks]), cfg, s,
                             offset=np.zeros(len(ks), dtype=np.int64), key=np.array(ks), order_pairs=pairs,
                             progress=progress,
                             label=f"transfer {len(ks)} tile{'s' * (len(ks) > 1)} {shape[0]}x{shape[1]}")
        for q, k in enumerate(ks):
            one = {name: a[q:q + 1] for name, a in out.items()}
            results[k] = _program_result(one, mapping.tiles[k].target, pairs)
    prog = Programmed(
        mapping=mapping, cfg=cfg, seed=int(seed), index=0,
        g=[r.g_final for r in results], converged=[r.converged for r in results],
        stuck_state=[r.stuck_state for r in results], pulses=[r.pulses for r in results], results=results,
    )
    warn_unconverged(prog.converged, prog.stuck_state, cfg, "the transfer", [r.target for r in results],
                     [r.g_after_own for r in results])
    return prog


def iter_transfers(weight, bias=None, cfg: Optional[TransferConfig] = None, n: int = 1, seed: int = 0,
                   chunk: int = 256):
    """An iterator of `TransferBatch` chunks of the ``n`` transfers of
    `transfer_many`.

    Constant memory in ``n``: only one chunk is alive at a time (if the
    caller drops it). The arguments are checked here, at the call (a bad
    weight or seed is a `ParameterError` now, not at the first ``next``);
    the transfers run as the chunks are taken.

    Unlike `transfer_many` it does not warn of devices write-verify left
    outside the band (each chunk's ``.converged`` says which): count the
    chunks with an ``xs.ConvergenceTally`` and call its ``warn``, as
    `xbarsim.train.evaluate.evaluate_circuit` does.

    Parameters
    ----------
    weight, bias, cfg, n, seed
        As `transfer_many`'s: transfer ``t`` of the stream is
        ``transfer_many(weight, bias, cfg, n, seed)[t]``, bit for bit.
    chunk : int
        Transfers per yielded `TransferBatch` (the last may hold fewer).

    Returns
    -------
    iterator of TransferBatch
        ``ceil(n / chunk)`` batches; batch ``c`` holds transfers
        ``c * chunk`` onwards (its ``offset``).

    Raises
    ------
    ParameterError
        At the call, before any transfer: a bad weight, bias, ``n``, seed
        or ``chunk``, or a configuration the layer does not fit.
    MemoryLimitError
        At the call: one chunk's result does not fit in memory.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> W = np.array([[0.5, -1.0], [1.0, 0.25]])
    >>> tally = xs.ConvergenceTally(xs.TransferConfig())
    >>> outs = []
    >>> for batch in xs.iter_transfers(W, None, xs.TransferConfig(), n=5, seed=0, chunk=2):
    ...     tally.add(batch)
    ...     outs.append(xs.mvm_many(batch, np.array([[1.0, 1.0]])))
    >>> np.concatenate(outs).shape, tally.transfers
    ((5, 1, 2), 5)
    """
    cfg = TransferConfig() if cfg is None else cfg
    n = _check_n(n)
    s = _check_seed(seed)
    chunk = _check_chunk(chunk)
    mapping = map_layer(weight, bias, cfg)
    _check_result_memory(0, mapping, min(chunk, n), what="iter_transfers")
    return _transfer_chunks(mapping, cfg, s, int(seed), n, chunk)


def _transfer_chunks(mapping, cfg, s, seed, n, chunk):
    """The generator behind `iter_transfers` (arguments already checked)."""
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        g, conv, stuck, pulses, fails, off = _run_chunk(mapping, cfg, s, start, count)
        batch = TransferBatch(mapping=mapping, cfg=cfg, seed=seed, offset=start, g=g,
                              converged=conv, stuck_state=stuck, pulses=pulses, solver_failures=fails)
        # the off-target counts of this chunk (the conductances they come
        # from are not kept), for a `ConvergenceTally` of the stream
        object.__setattr__(batch, "_off", off)
        yield batch


def _as_batch(batch, who):
    """``batch`` as a `TransferBatch`: a `Programmed` is a batch of one;
    anything else a ParameterError naming ``who``."""
    if isinstance(batch, Programmed):
        return batch.as_batch()
    if not isinstance(batch, TransferBatch):
        raise ParameterError(f"{who} takes a TransferBatch (iter_transfers, transfer_many) or a Programmed "
                             f"(transfer); got {type(batch).__name__}.")
    return batch


class ConvergenceTally:
    """Write-verify's convergence over a stream of `TransferBatch` chunks
    (`iter_transfers`), counted as they come, in constant memory; `warn`
    then warns as `transfer_many` does of the whole run. `iter_transfers`
    itself does not (a consumer may stop early, and ``zip`` over several
    streams never finishes the later ones): a circuit evaluation
    (`xbarsim.train.evaluate.evaluate_circuit`) left most devices
    unconverged without a word."""

    def __init__(self, cfg):
        if not isinstance(cfg, TransferConfig):  # a bad one failed only in `add`, as an AttributeError
            raise ParameterError(f"cfg must be an xbarsim.TransferConfig (the one the counted batches were "
                                 f"programmed with); got {type(cfg).__name__}.")
        self.cfg = cfg
        self.transfers = self.devices = self.working = self.missed = self.outside = 0
        self.stuck_lrs = self.stuck_hrs = 0
        self.off = (0, 0, 0)  # `off_target_counts`
        self.shape = (0, 0)

    def add(self, batch):
        """Count the transfers of ``batch``. The "converged far from the
        target" counts (`xbarsim.programming.off_target_counts`) come only
        with chunks as `iter_transfers` yields them (the conductances they
        are computed from are not kept): a slice of one, or a
        `transfer_many` result, adds none (`transfer_many` warns of its own
        run)."""
        from .programming import unconverged_counts

        batch = _as_batch(batch, "add")  # a Programmed too, as `mvm_many` takes it (was a bare TypeError)
        self.transfers += len(batch)
        for tile, conv, stuck in zip(batch.mapping.tiles, batch.converged, batch.stuck_state):
            working, missed, outside = unconverged_counts(conv, stuck, self.cfg.device, tile.target)
            self.devices += stuck.size
            self.working += working
            self.missed += missed
            self.outside += outside
            self.stuck_lrs += int(np.count_nonzero(stuck == 1))
            self.stuck_hrs += int(np.count_nonzero(stuck == 2))
            if tile.shape[0] * tile.shape[1] > self.shape[0] * self.shape[1]:
                self.shape = tile.shape
        self.off = tuple(a + b for a, b in zip(self.off, getattr(batch, "_off", (0, 0, 0))))

    def summary(self):
        """Counts as a plain dict (JSON): transfers, devices, working,
        unconverged (working devices outside the band), stuck_lrs,
        stuck_hrs, and the fractions ``unconverged_fraction`` (of the
        working devices) and ``stuck_fraction`` (of all)."""
        return dict(transfers=self.transfers, devices=self.devices, working=self.working,
                    unconverged=self.missed, stuck_lrs=self.stuck_lrs, stuck_hrs=self.stuck_hrs,
                    unconverged_fraction=self.missed / self.working if self.working else 0.0,
                    stuck_fraction=(self.stuck_lrs + self.stuck_hrs) / self.devices if self.devices else 0.0)

    def warn(self, what):
        """Warn, as `transfer_many`, when more than `UNCONVERGED_WARN` of the
        working devices counted ended outside the band (or verify reads
        converged most of them far from their targets). ``what``: the run's
        name in the warning's text, e.g. ``"iter_transfers"``."""
        from .programming import warn_unconverged_counts

        if self.transfers:
            warn_unconverged_counts(self.working, self.missed, self.outside, self.shape, self.cfg, what,
                                    off=self.off)


def transfer_many(weight, bias=None, cfg: Optional[TransferConfig] = None, n: int = 2000, seed: int = 0,
                  *, chunk: int = 256, workers: Optional[int] = None, scheduler=None,
                  progress: bool = False) -> TransferBatch:
    """``n`` independent transfers of one layer (Monte Carlo).

    Parameters
    ----------
    weight, bias, cfg
        As `transfer`.
    n : int
        Number of transfers.
    seed : int
        Transfer ``t``, tile ``k`` uses the stream ``(seed, t, k)``,
        whatever the layer: give each layer of a network its own seed, or
        its transfers draw the same random numbers as another layer's (tiles
        of one shape fail at the same devices; as `transfer`).
    chunk : int
        Transfers programmed per kernel call (bounds the working memory).
    workers : int, optional
        Run the chunks on a local Dask cluster of this many processes.
    scheduler : str or distributed.Client, optional
        Run the chunks on this Dask scheduler (address or client).
    progress : bool
        Show a progress bar (stderr).

    Returns
    -------
    TransferBatch
        ``.g[k]``: tile k's final true conductances, S, (n, rows, cols);
        ``.converged``, ``.stuck_state``, ``.pulses`` alike; indexing
        (``batch[t]``, ``batch[a:b]``) gives one transfer or a slice.
        Bit-identical for any thread count, chunk size or executor.

    Raises
    ------
    ParameterError, MemoryLimitError, ConvergenceError
        As `transfer` (the first two before any programming); also a
        ``workers`` / ``scheduler`` that cannot be used (before any work).
    XbarsimError
        The Dask scheduler was lost during the run, or the workers running
        a chunk died as many times as the scheduler allows (a worker's
        memory limit, most often: a smaller ``chunk`` helps).

    Warns
    -----
    RuntimeWarning
        As `transfer`, over all ``n`` transfers.
    """
    from ._progress import Progress

    cfg = TransferConfig() if cfg is None else cfg
    n = _check_n(n)
    s = _check_seed(seed)
    chunk = _check_chunk(chunk)
    progress = _check_flag(progress, "progress")
    if workers is not None and (isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ParameterError(f"workers = {workers!r}; a positive number of Dask worker processes, or None.")
    _check_scheduler(scheduler)
    if workers is not None and scheduler is not None:
        raise ParameterError("give workers= (start a local Dask cluster) or scheduler= (use a running one), "
                             "not both.")
    mapping = map_layer(weight, bias, cfg)  # after the arguments: seconds on a large layer
    _check_result_memory(n, mapping, min(chunk, n))
    starts = list(range(0, n, chunk))
    g = [np.empty((n,) + t.shape) for t in mapping.tiles]
    conv = [np.empty((n,) + t.shape, dtype=bool) for t in mapping.tiles]
    stuck = [np.empty((n,) + t.shape, dtype=np.int8) for t in mapping.tiles]
    pulses = [np.empty((n,) + t.shape, dtype=np.int32) for t in mapping.tiles]
    fails = 0
    off = (0, 0, 0)  # `off_target_counts` of every chunk

    def place(start, res):
        nonlocal fails, off
        cg, cc, cs, cp, cf, coff = res
        off = tuple(a + b for a, b in zip(off, coff))
        count = cg[0].shape[0]
        for k in range(len(mapping.tiles)):
            g[k][start:start + count] = cg[k]
            conv[k][start:start + count] = cc[k]
            stuck[k][start:start + count] = cs[k]
            pulses[k][start:start + count] = cp[k]
        fails += cf

    with Progress(len(starts), label="transfer_many", enabled=progress) as bar:
        if workers is None and scheduler is None:
            for start in starts:
                place(start, _run_chunk(mapping, cfg, s, start, min(chunk, n - start)))
                bar.update()
        else:
            for start, res in _dask_chunks(mapping, cfg, s, starts, n, chunk, workers, scheduler):
                place(start, res)
                bar.update()
    batch = TransferBatch(mapping=mapping, cfg=cfg, seed=int(seed), offset=0, g=g, converged=conv,
                          stuck_state=stuck, pulses=pulses, solver_failures=fails)
    warn_unconverged(conv, stuck, cfg, f"transfer_many ({n} transfers)", off=off)
    return batch


def _dask_chunks(mapping, cfg, seed, starts, n, chunk, workers, scheduler):
    """Run the chunks with Dask distributed; yields (start, result) as they finish."""
    from distributed import Client, as_completed

    from ._dask import (WorkerWatch, close_client, close_cluster, connect_scheduler, scheduler_lost,
                        start_local_cluster, usable_cores)

    own = cluster = None
    threads = None  # a cluster of the user's: its workers' threads are theirs to set
    if isinstance(scheduler, Client):
        client = scheduler
    elif scheduler is not None:
        # bounded: a peer that never completes Dask's handshake, or a
        # scheduler without workers, hung Client(...) or as_completed forever
        client = own = connect_scheduler(scheduler, "xbarsim.transfer_many")
    else:
        cluster = start_local_cluster(workers)
        try:
            client = own = Client(cluster)
        except BaseException:  # the cluster was left to distributed's exit hook
            close_cluster(cluster)
            raise
        # each worker's kernel runs prange over its chunk's transfers on every
        # core it sees: workers x cores threads; a share
        # each, as `xbarsim scale --workers` gives its points
        threads = max(1, usable_cores() // workers)
    futures = {}
    payload = []
    lost = False
    try:
        # the layer's targets and the configuration travel once, as two tasks
        # the chunks depend on, not in every chunk's task. (Scattered, they
        # waited for a worker, so a cluster with none yet, an adaptive one,
        # timed out where queued tasks make it scale; unique keys, pure=False:
        # shared ones were released by an earlier call under this one.)
        payload = [client.submit(_identity, mapping, pure=False), client.submit(_identity, cfg, pure=False)]
        mapping_f, cfg_f = payload
        todo = iter(starts)

        def top_up(running=None):
            # a bounded number of chunks in flight, each released once its
            # result is fetched: with every chunk submitted at once the
            # cluster held all n results until the end (a second copy of the
            # run); the bound follows the workers as they come and go
            for st in islice(todo, max(0, _dask_in_flight(client) - len(futures))):
                fut = client.submit(_run_chunk, mapping_f, cfg_f, seed, st, min(chunk, n - st), threads, pure=False)
                futures[fut] = st
                if running is not None:
                    running.add(fut)

        top_up()
        said = own is None and _say_if_no_worker(client)
        # this client's loop, not the default client's: the one
        # `connect_scheduler` makes (or a user's) need not be the default
        running = as_completed(list(futures), loop=client.loop)
        with WorkerWatch.of_run(client, "xbarsim.transfer_many", "chunks", said=said):
            for fut in running:
                st = futures.pop(fut)
                try:
                    res = fut.result()
                    fut.release()
                    del fut
                    top_up(running)
                except Exception as exc:
                    if type(exc).__name__ == "KilledWorker":
                        # distributed's raw error, without a hint; the
                        # chunk size is what its chunks hold, min(chunk, n) (review of the fix)
                        raise XbarsimError(
                            "xbarsim.transfer_many: the Dask workers running a chunk of transfers died, as many "
                            "times as the scheduler allows. The usual cause is a worker's memory limit: give a "
                            f"smaller chunk= (its chunks hold {min(chunk, n)} transfers) or fewer workers per "
                            "machine, or check the workers' logs.") from None
                    if not scheduler_lost(exc, client):
                        raise  # a chunk's own error (a missed solve), or a worker's
                    # distributed's raw FutureCancelledError / CommClosedError,
                    # and ~35 lines of its client's log as ours closed
                    lost = True
                    raise XbarsimError(
                        "xbarsim.transfer_many lost the connection to the Dask scheduler; this call's transfers "
                        "are not kept. Run it again once the scheduler runs (or without scheduler= to run them "
                        "in this process).") from None
                yield st, res
    finally:
        if cluster is not None:  # ours: drained, then closed
            close_cluster(cluster, own)
        elif own is not None:
            close_client(own, quiet=lost)  # its reconnect attempt, cancelled by the close, logs a traceback
        elif (futures or payload) and client.status == "running":
            # a user's client lives on: after a failed chunk, or a caller that
            # stopped early, nothing of this run stays on its cluster. Best
            # effort: a client that closed meanwhile raised here, in place of
            # the error that ended the run
            try:
                client.cancel(list(futures) + payload)
            except Exception:
                pass


def _identity(x):
    """A Dask task that holds ``x`` on the cluster for the chunks to share."""
    return x


def _dask_in_flight(client):
    """Chunks `_dask_chunks` keeps submitted at once: two per worker thread
    (one running, one queued behind it), at least two."""
    return max(2, 2 * sum(client.nthreads().values()))


def _shape(x):
    """``x``'s shape, without converting it; None for what `_check_x`
    converts or refuses with its own message (ragged lists)."""
    try:
        return tuple(np.shape(x))
    except (RuntimeError, TypeError):  # torch's: tensors that require grad, bfloat16, sparse, on a GPU
        if isinstance(x, (list, tuple)) and x and all(hasattr(e, "shape") for e in x):
            shapes = {tuple(e.shape) for e in x}
            return (len(x),) + shapes.pop() if len(shapes) == 1 else None  # ragged: refused as such later
        return None
    except ValueError:
        return None


def _check_x(x, mapping, n):
    """``x`` as a float64 (nv, B, in) array, nv 1 (the same inputs for every
    transfer) or ``n`` (inputs per transfer). Shapes only: nothing the size
    of ``x`` is allocated here (`mvm_many` checks the memory first)."""
    from ._memory import check_copy

    in_f = mapping.in_features
    if getattr(x, "dtype", None) != np.float64:  # a float64 array (or view) is used as it is
        check_copy(x, "x")
    x = as_float_array(x, "x", f"(B, {in_f})" if n == 1 else f"(B, {in_f}) or ({n}, B, {in_f})")
    if x.ndim == 3:
        if x.shape[0] != n or x.shape[2] != in_f:
            raise ParameterError(f"per-transfer inputs x have shape {x.shape}; expected ({n}, B, {in_f}) for "
                                 f"{n} transfers.")
        return x
    if x.ndim == 2 and x.shape[1] == in_f:
        return x[None]
    if x.ndim == 1 and x.shape[0] == in_f:  # one input: read as (1, in)
        return x[None, None]
    # the width is the weight's: a weight transferred (in, out) shows here first
    raise ParameterError(f"x has shape {x.shape}; expected (B, {in_f}) (or ({in_f},) for one input): the "
                         f"layer's weight, (out, in) as torch.nn.Linear.weight, has {in_f} inputs. A weight "
                         "transferred as (in, out) needs weight.T.")


def _mvm_bytes(n, nv, B, mapping):
    """Bytes `mvm_many` allocates for ``n`` transfers of ``B`` inputs (``nv``
    input sets), at its peak; errs high. Inputs: the finite mask and ``|x|``,
    the word-line voltages and their copy with the bias row. Per tile, one
    at a time: its voltages, the column currents ``cur`` (n, B, N) and the
    combined columns. Each thread's circuit work arrays (6 of M x N).
    Outputs: ``y`` and its decoded copy."""
    import numba

    in_f = mapping.in_features
    rows = in_f + int(mapping.has_bias)
    inputs = nv * B * (9 * in_f + 16 * rows)
    tile = max(8 * (nv * B * t.shape[0] + 2 * n * B * t.shape[1]) for t in mapping.tiles)
    work = numba.get_num_threads() * max(8 * (6 * t.target.size + 6 * sum(t.shape)) for t in mapping.tiles)
    return float(inputs + tile + work + 16 * n * B * mapping.out_features)


def refuse_sinh_overflow(x, mapping, dev):
    """Refuse inputs ``x`` (non-empty) that drive a word line where the sinh
    device current overflows (``|V| / v0 > 700``); returns the largest
    word-line voltage. It needs no conductances, so a caller that programs
    first (``xbarsim.train.evaluate_circuit``) runs it before programming."""
    scale = mapping.v_read / mapping.input_scale
    v_max = float(np.max(np.abs(x))) * scale
    if dev.v0 is not None and v_max / dev.v0 > _SINH_MAX:
        raise ParameterError(
            f"inputs up to |x| = {v_max / scale:.4g} drive the word lines at {v_max:.3g} V, where the sinh "
            f"device current (v0 = {dev.v0:g} V) overflows. Scale the inputs into about [0, input_scale = "
            f"{mapping.input_scale:g}] (read at [0, {mapping.v_read:g} V]), or raise TransferConfig.input_scale."
        )
    return v_max


def _check_read_voltage(x, mapping, dev, g_tiles):
    """Inputs whose word-line voltage reaches a switching threshold: such a
    "read" would program the array, which the MVM does not model. Warned
    about (ReLU activations fed to the next layer can get there, and the
    circuit answer is still the circuit's), and so are sinh reads past
    ``V_read`` (inputs past ``input_scale``); refused where the sinh current
    itself would overflow (``|V| / v0 > 700``), which used to end in NaN,
    and where the outputs in weight units could overflow (a bound from the
    largest conductance of ``g_tiles``, one array per tile)."""
    if x.size == 0:
        return
    scale = mapping.v_read / mapping.input_scale
    v_max = refuse_sinh_overflow(x, mapping, dev)
    v_top = max(v_max, mapping.v_read if mapping.has_bias else 0.0)
    g_top = max(float(np.max(g)) for g in g_tiles)
    i_top = v_top if dev.v0 is None else dev.v0 * math.sinh(v_top / dev.v0)
    rows = mapping.in_features + int(mapping.has_bias)
    i_col = rows * g_top * i_top  # bound on a column current, A
    y_top = i_col * mapping.input_scale / (mapping.alpha * mapping.v_read)  # and on an output, weight units
    if not (i_col <= _I_MAX and y_top <= _Y_MAX):
        raise ParameterError(
            f"inputs up to |x| = {v_max / scale:.4g} drive up to {v_top:.3g} V on the word lines: column currents "
            f"up to about {i_col:.3g} A ({rows} rows of devices up to {g_top:.3g} S) and outputs up to about "
            f"{y_top:.3g} in weight units, beyond what double precision represents (the read noise squares the "
            f"currents; inf or NaN outputs). Scale the inputs into about [0, input_scale = "
            f"{mapping.input_scale:g}], or rescale the layer.")
    # a positive word line sets (v_set), a negative one resets (v_reset):
    # each polarity against its own threshold (one min of the two warned of
    # a reset at a set-polarity read)
    v_pos, v_neg = max(float(np.max(x)), 0.0) * scale, max(-float(np.min(x)), 0.0) * scale
    over = [(v, th, name) for v, th, name in ((v_pos, dev.v_set, "set"), (v_neg, dev.v_reset, "reset"))
            if v >= th]
    if over:
        v, th, name = max(over)
        sign = "" if name == "set" else "-"
        warn(
            f"inputs up to x = {sign}{v / scale:.4g} drive the word lines at {sign}{v:.3g} V, at or beyond the "
            f"devices' switching threshold ({name}, {sign}{th:g} V): on hardware such a read would disturb the "
            f"programmed conductances, which this MVM does not model. Keep x within "
            f"({-dev.v_reset / scale:.4g}, {dev.v_set / scale:.4g}) or raise TransferConfig.input_scale.",
            RuntimeWarning,
        )
        return
    limit = dev.v_set if v_pos >= v_neg else dev.v_reset  # the threshold of the polarity of v_max
    if dev.v0 is not None and v_max > mapping.v_read * (1.0 + 1e-12):
        # the product is mapped for |x| <= input_scale; past it a read bends
        # with the sinh law, silently (2x high at 5 input_scale, TiO2).
        # The figures are those of the step of 1.25x that holds
        # the inputs: each call warned with its own figure, so Python's
        # once per message and line never applied, and 20 reads of ReLU
        # activations printed 20 paragraphs; the filters
        # still decide ("always", "error").
        steps = max(1, math.ceil(math.log(v_max / mapping.v_read) / math.log(_BEND_STEP)))
        v_step = min(mapping.v_read * _BEND_STEP ** steps, limit)  # (v_max < limit here)
        x_step = _round_up(v_step / scale)  # quoted rounded up: "2.44" for 2.441 was no bound
        gain = float(dev.read_current(1.0, v_step)) / v_step  # over the small-signal current
        gain_read = float(dev.read_current(1.0, mapping.v_read)) / mapping.v_read
        warn(
            f"inputs past input_scale = {mapping.input_scale:g}, up to |x| <= {x_step:g}, read the "
            f"word lines at up to {v_step:.3g} V, past V_read = {mapping.v_read:g} V, where the sinh devices "
            f"(v0 = {dev.v0:g} V) conduct up to {gain:.4g}x their small-signal conductance ({gain_read:.4g}x "
            f"at V_read), so those products come out up to {100 * (gain - 1):.3g} % high. Give the layer "
            f"TransferConfig(input_scale={x_step:g}) or more (inputs in [-input_scale, input_scale] "
            "are read at [-V_read, V_read]), or scale the inputs.",
            RuntimeWarning,
        )


_BEND_STEP = 1.25
"""Steps of the input range that `mvm`'s warning of reads past ``V_read``
quotes (the range holding the inputs, rounded up)."""


def _round_up(value, digits=3):
    """``value`` > 0 rounded up to ``digits`` significant digits (a relative
    1e-12 above a digit, the rounding of a division, is not rounded up)."""
    if not (math.isfinite(value) and value > 0):  # an inf bound (inputs near 1e308) is quoted as it is
        return value
    exp = math.floor(math.log10(value)) - digits + 1
    return float(f"{math.ceil(value / 10.0**exp * (1 - 1e-12)) * 10.0**exp:.{digits}g}")


_SINH_MAX = SINH_ARG_MAX
"""Largest |V| / v0 an MVM accepts: sinh overflows double precision near 710."""
_I_MAX = 1e150
"""Largest bound on a column current an MVM accepts, A (the read noise sums squared device currents)."""
_Y_MAX = np.finfo(np.float64).max / 16
"""Largest bound on the outputs' magnitude (weight units) an MVM accepts."""


def _input_chunks(n, B):
    """Runs of inputs per transfer that `_mvm_arrays` solves in
    parallel: 1 when the transfers alone keep every thread busy, else enough
    that a few transfers with many inputs still use them all (the result does
    not depend on it)."""
    import numba

    threads = numba.get_num_threads()
    if n >= 2 * threads:
        return 1
    return max(1, min(B, -(-4 * threads // n)))


def mvm_many(batch: TransferBatch, x, seed: Optional[int] = None, noise: bool = True,
             row_offset: int = 0) -> np.ndarray:
    """Outputs of every transfer of ``batch`` for inputs ``x``: (n, B, out).

    Each transfer's tiles are solved as circuits, as `mvm` solves one
    transfer's; parallel over transfers, and over runs of inputs when there
    are fewer transfers than threads to keep busy. ``mvm_many(batch, x)[t]``
    is ``mvm(batch[t], x)``, bit for bit.

    Parameters
    ----------
    batch : TransferBatch or Programmed
        From `transfer_many` or `iter_transfers` (a `Programmed` reads as a
        batch of one).
    x : array_like, (B, in) or (n, B, in)
        The same inputs for every transfer, or inputs per transfer (e.g.
        the previous layer's outputs of each transfer:
        ``y2 = mvm_many(layer2, relu(mvm_many(layer1, x)))``).
    seed, noise, row_offset
        As `mvm`'s (``seed=None``: the batch's transfer seed).

    Returns
    -------
    ndarray, (n, B, out)
        In the layer's output units.

    Raises
    ------
    ParameterError, MemoryLimitError, ConvergenceError
        As `mvm`'s, for any transfer of the batch.
    """
    from ._memory import require
    from .circuit import kernel_array

    batch = _as_batch(batch, "mvm_many")
    mapping = batch.mapping
    cfg = batch.cfg
    n = len(batch)
    s = _check_seed(batch.seed if seed is None else seed)
    noise = _check_flag(noise, "noise")
    row0 = _check_row_offset(row_offset)
    for k, g in enumerate(batch.g):
        if not np.all(g >= 0.0):  # NaN too
            # a hand-built or edited batch: a negative conductance gave a
            # finite, meaningless output, and NaN "currents up to about nan A"
            raise ParameterError(f"tile {k}'s conductances hold a negative or NaN value; transfer_many and "
                                 "iter_transfers never give one: rebuild the batch from them, or correct g.")
        if not np.all(np.isfinite(g)):
            raise ParameterError(f"tile {k}'s conductances hold inf; transfer_many and iter_transfers never give "
                                 "one: rebuild the batch from them, or correct g.")
    x = _check_x(x, mapping, n)  # (nv, B, in)
    nv, B = x.shape[:2]
    if row0 + B > _ROW_MAX:
        raise ParameterError(f"row_offset = {row0} with {B} input rows passes {_ROW_MAX} (2**63 - 1), the last "
                             "read-noise stream of an input; give a smaller row_offset.")
    dev = cfg.device
    rn = dev.read_noise if noise else 0.0
    chunks = _input_chunks(n, B)
    require(_mvm_bytes(n, nv, B, mapping),
            f"an MVM of {n} transfer(s) with {B} input(s) each",
            "split x into batches of fewer inputs (rows of x), each read with row_offset = the index of its "
            "first row (then the batches draw the read noise of one call on all of them), or run fewer "
            "transfers at a time (tm[a:b])")
    if not np.all(np.isfinite(x)):
        # positions as the caller laid x out: (B, in) unless inputs per transfer
        raise ParameterError(f"x {where_not_finite(x[0] if x.shape[0] == 1 else x)}; inputs must be finite. "
                             "Check where they come from (an earlier layer's outputs, a data set with "
                             "missing values), or replace them (np.nan_to_num) if that is intended.")
    _check_read_voltage(x, mapping, dev, batch.g)
    v_all = mapping.input_voltages(x)  # (nv, B, rows)
    y = np.zeros((n, B, mapping.out_features))
    v0 = 0.0 if dev.v0 is None else dev.v0
    v0inv = 0.0 if dev.v0 is None else 1.0 / dev.v0
    for k, tile in enumerate(mapping.tiles):
        M, N = tile.shape
        v = np.ascontiguousarray(v_all[..., tile.rows[0]:tile.rows[1]])
        cur = np.empty((n, B, N))
        fails = np.zeros(n, dtype=np.int64)
        _mvm_arrays(kernel_array(np.ascontiguousarray(batch.g[k])), v, v0, v0inv, float(cfg.r_wl), float(cfg.r_bl),
                    rn, s, np.int64(batch.offset), np.uint64(_MVM_KEY + k), row0, cfg.solve_tol,
                    int(cfg.solve_maxiter), cur, fails, chunks)
        if fails.any():
            from .exceptions import ConvergenceError

            raise ConvergenceError(f"{int(fails.sum())} MVM circuit solves of tile {k} missed solve_tol = "
                                   f"{cfg.solve_tol:g} within solve_maxiter = {cfg.solve_maxiter} sweeps; raise "
                                   "cfg.solve_maxiter or loosen cfg.solve_tol (dataclasses.replace).")
        y[:, :, tile.outputs[0]:tile.outputs[1]] += mapping.tile_outputs(k, cur)
    return mapping.decode(y)


def _mvm_arrays(g, v, v0, v0inv, r_wl, r_bl, read_noise, seed, offset, key, row0, tol, maxit, out, fails, chunks):
    """``out[t, b, j]``: sensed current of bit line j of transfer t, input b
    (`kernels.mvm.mvm_range`), in parallel threads (`_parallel.parallel_range`).

    With ``chunks`` 1 the transfers run in parallel, each its inputs in
    order. With more (a few transfers with many inputs), each transfer's
    inputs are cut into ``chunks`` runs solved in parallel. Each input draws
    its read noise from a stream of its own (substream ``row0 + b`` of the
    transfer's), so the result depends neither on ``chunks`` nor on the
    thread count. ``fails[t]`` counts the inputs of transfer t whose solve
    missed ``tol``.
    """
    from ._parallel import parallel_range
    from .kernels.mvm import mvm_range

    n, B, N = out.shape
    runs = np.zeros((n, chunks), dtype=np.int64)
    args = (g, v, v0, v0inv, r_wl, r_bl, read_noise, seed, offset, key, np.int64(row0), tol, maxit, out, runs,
            np.int64(-(-B // chunks)))
    parallel_range(lambda c0, c1: mvm_range(*args, c0, c1), n * chunks)
    fails[:] = runs.sum(axis=1)


def mvm(prog, x, seed: Optional[int] = None, noise: bool = True, row_offset: int = 0) -> np.ndarray:
    """Layer output through the programmed crossbar(s), in weight units.

    Parameters
    ----------
    prog : Programmed or TransferBatch
    x : array_like, (B, in)
        Inputs, one per row; a single input of shape (in,) is read as
        (1, in) (so the result keeps its batch axis). A `TransferBatch`
        also takes (n, B, in): inputs per transfer. Inputs drive the word
        lines at ``x V_read / input_scale``: ``[-input_scale, input_scale]``
        reads at ``[-V_read, V_read]`` (a negative input is a negative read
        voltage). Past ``input_scale`` a sinh device bends the product
        further, and a RuntimeWarning says by how much.
    seed : int or None
        Read-noise seed, an integer in [0, 2**64), or None. Transfer t's tile k reads input row b with the
        stream keyed (seed, t, 2**20 + k, row_offset + b) (`kernels.noise`;
        apart from the programming streams of key k), whatever layer it
        holds. None (the default) takes the seed the layer was transferred
        with, so transfers made with different seeds read with independent
        noise (with a fixed default, ``for s in ...: mvm(transfer(W, b, cfg,
        seed=s), x)`` drew the same read noise for every s).
        The same seed gives the same noise draws to every layer
        read with it, and to repeated reads of one array: give each
        independent read its own seed, and each layer of a network its own
        (`xbarsim.train.evaluate_circuit` uses seed + 1000 + k for layer k).
        No input's noise depends on the other rows of `x`.
    noise : bool
        Include read noise.
    row_offset : int
        Index of `x`'s first row in a larger set of inputs read in batches
        (default 0): ``mvm(prog, x[a:b], seed, row_offset=a)`` is
        ``mvm(prog, x, seed)[a:b]``, bit for bit. Batches read with the same
        seed and no offset share their rows' draws.

    Returns
    -------
    ndarray
        (B, out) for a `Programmed`; (n, B, out) for a `TransferBatch`; in
        the layer's output units (as ``x @ W.T + b``).

    Raises
    ------
    ParameterError
        Before any solve: ``x`` of the wrong width or non-finite; inputs
        whose sinh current overflows; a seed outside [0, 2**64); a result
        edited into an inconsistent state.
    MemoryLimitError
        Before any solve: the inputs' work does not fit in memory (read
        them in batches with ``row_offset``).
    ConvergenceError
        A tile's circuit solve missed ``cfg.solve_tol``.

    Warns
    -----
    RuntimeWarning
        Inputs past ``input_scale``: by how much the sinh devices bend the
        products, and when a read reaches the switching threshold.
    """
    if isinstance(prog, TransferBatch):
        return mvm_many(prog, x, seed=seed, noise=noise, row_offset=row_offset)
    if not isinstance(prog, Programmed):
        raise ParameterError(f"prog must come from xs.transfer or xs.transfer_many; got {type(prog).__name__}.")
    shape = _shape(x)
    if shape is not None and len(shape) == 3:  # (1, B, in) was read as (B, in); (2, B, in): a batch's layout
        raise ParameterError(f"x has shape {shape}; one programmed array reads (B, "
                             f"{prog.mapping.in_features}) inputs (or ({prog.mapping.in_features},) for one). "
                             "Per-transfer inputs (n, B, in) are for a TransferBatch (xs.transfer_many).")
    return mvm_many(prog.as_batch(), x, seed=seed, noise=noise, row_offset=row_offset)[0]
