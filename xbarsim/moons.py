"""``xbarsim moons``: the half-moons experiment of Drolet et al., end to end.

A 2 -> 8 (sigmoid) -> 1 network is trained twice on half moons, regularly
and hardware-aware (against a `Surrogate` fitted to the simulator), then
each is transferred ``--transfers`` times through the full simulator
(write-verify on the circuit under V/2, the preset's wires, read noise,
crossbar MVM of both layers) and judged point by point: the fraction of
test points classified correctly in at least 95 % of the transfers.
Both networks are also evaluated under the paper's statistical-only model
(no circuit) and under the surrogate (how well the model trained against
predicts the simulator on the task).

Training: BCE + Adam, 300 epochs, batch 64, lr 0.05, from the same
initial weights. The regular network keeps the epoch of lowest validation
loss; the hardware-aware one (`HA_RECIPE`) keeps, among the checks every
10 epochs, the one with the most validation points at >= 0.95 per-point
accuracy under 200 surrogate transfers (the ablation's "none" row shows
what that selection alone does). Transfers: ``xs.iter_transfers`` (the
same streams as ``xs.transfer_many``), layer ``k`` with seed
``stream_seed(seed, "circuit") + k``, the same for both networks. The data
split draws from ``seed``; every other random purpose (the training, the
hardware-aware layers' samples, the surrogate fit, the epoch score, the
circuit, statistical and surrogate evaluations, the plots' grid) from a
63-bit seed of its own (`stream_seed`), so that no two purposes, in one run
or in runs of different seeds, share a stream.

Outputs in ``--out``: ``results.json``, ``bins.csv``, ``cdf.png``,
``decision_boundary.png``, ``uncertainty.png`` (and ``surrogate.npz``,
the cached fit; ``ablation.json`` / ``ablation.csv`` with ``--ablation``;
``surrogate_check.json`` / ``surrogate_check.txt`` with ``--check-surrogate``).
Each network's entry in ``results.json`` records, besides its figures, its
weights, its per-point accuracy and, under ``programming``, write-verify's
outcome on the circuit per layer (working, unconverged and stuck devices
over all transfers); a run whose write-verify left more than 5 % of the
working devices outside the band warns.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from .exceptions import MemoryLimitError, ParameterError
from .cli import RunFiles, check_out_dir, help_text, seed_arg

SEED_OFFSET = 0
"""Largest offset this experiment adds to its seed itself, on top of what
the training API adds (`xbarsim.train._checks.SEED_OFFSET_MAX`): none since
2026-12-03. The evaluations were keyed ``seed + 7`` (the epoch score) ...
``seed + 400`` (the plots' grid), so runs a few seeds apart shared streams
between purposes (the seed-0 run's second layer was programmed with the
seed-1 run's first layer's); every purpose now draws from
`stream_seed`."""

__all__ = ["register", "run", "load_results", "stream_seed", "HA_RECIPE", "MoonsConfig"]


@dataclass(frozen=True)
class MoonsConfig:
    """Sizes of one run of the experiment."""

    transfers: int = 2000
    """Circuit transfers per network (and statistical-model transfers)."""
    fit_transfers: int = 200
    """Random layers programmed per layer shape to fit the surrogate."""
    fail_devices: int = 100_000
    """Extra simulator devices for the surrogate's failure rates."""
    epochs: int = 300
    """Training epochs (both networks)."""
    score_transfers: int = 200
    """Surrogate transfers of the validation score that selects the hardware-aware epoch."""
    grid: int = 200
    """Grid side of the boundary / uncertainty maps."""
    grid_transfers: int = 50
    """Circuit transfers drawn on the grid maps."""
    noise: float = 0.2
    """make_moons noise."""

    def __post_init__(self):
        # every field checked when the configuration is made: it is public,
        # and MoonsConfig(score_transfers=0) failed as "n = 0" after the
        # regular network had trained. Checked here, not
        # with the training API's helpers, whose import would load torch
        # for every command's start-up.
        from .devices import real_scalar

        for name, low, flag in (("transfers", 1, "--transfers"), ("fit_transfers", 2, "--fit-transfers"),
                                ("fail_devices", 0, None), ("epochs", 1, "--epochs"), ("score_transfers", 1, None),
                                ("grid", 2, None), ("grid_transfers", 1, None)):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
                raise ParameterError(f"{name}{f' ({flag})' if flag else ''} = {value!r}; an integer >= {low} "
                                     f"(MoonsConfig.{name}).")
            object.__setattr__(self, name, int(value))
        noise = real_scalar(self.noise)
        if noise is None or not (math.isfinite(noise) and noise >= 0):
            raise ParameterError(f"noise (--noise) = {self.noise!r}; a finite number >= 0 (MoonsConfig.noise).")
        object.__setattr__(self, "noise", float(noise))


QUICK = MoonsConfig(transfers=16, fit_transfers=6, fail_devices=4000, epochs=12, score_transfers=16,
                    grid=40, grid_transfers=8)
"""The ``--quick`` smoke-test configuration."""

HA_RECIPE = dict(reparam=True, failures=True, regularize=True, failure_scale=8.0, weight_decay=0.0,
                 hardware_penalty=1e-4)
"""Hardware-aware training: the three techniques and their strengths.

``failure_scale`` multiplies the surrogate's failure probabilities during
training (a dropout rate; evaluation always uses the fitted rates);
``hardware_penalty`` weighs the variance of the weights' transfer errors
under the surrogate (`Surrogate.penalty`, summed over the layer); ``weight_decay``
is plain L2.
"""


def _techniques(reparam, failures, regularize, recipe=HA_RECIPE):
    return dict(
        reparam=bool(reparam),
        failures=(recipe["failure_scale"] if failures else False),
        weight_decay=(recipe["weight_decay"] if regularize else 0.0),
        hardware_penalty=(recipe["hardware_penalty"] if regularize else 0.0),
    )


MOONS_LAYERS = [[8, 2], [1, 8]]
"""(out, in) of the moons network's layers, as a surrogate's ``meta`` records them."""


SURROGATE_FIT = {"n_bins": 20, "weight_scale": 1.0, "n_probe": 32}
"""The settings of this experiment's surrogate fit besides the sizes and seed
(`Surrogate.fit`'s defaults); a cached fit is reused only when they match."""


def _given_surrogate(cfg, path):
    """The ``--surrogate`` file, checked against this experiment (before
    anything is written): the transfer configuration and the layer shapes."""
    from .train.surrogate import Surrogate

    sur = Surrogate.load(path)
    if not sur.matches(cfg):
        raise ParameterError(
            f"surrogate {path} was fitted for another transfer configuration; drop --surrogate to "
            "refit, or pass the file fitted for this one."
        )
    layers = sur.meta.get("layers")
    # in any order: a fit listing (1, 8) first covers the same layers
    if not isinstance(layers, list) or sorted(map(list, layers)) != sorted(MOONS_LAYERS):
        raise ParameterError(
            f"surrogate {path} was fitted for layers {layers} (out, in); the moons network has {MOONS_LAYERS}. "
            "Drop --surrogate to refit, or pass a file fitted for these layers."
        )
    return sur


_STREAMS = {"train": 1, "layers": 2, "surrogate": 3, "score": 4, "circuit": 5, "statistical": 6,
            "surrogate_transfers": 7, "grid": 8, "check": 9}
"""Tags of the run's own random streams (`stream_seed`)."""


def stream_seed(seed, purpose):
    """The seed of one random purpose of the run, a 63-bit integer drawn
    from ``SeedSequence([seed, tag])``: ``"train"`` the batch order and
    torch's training draws; ``"layers"`` the hardware-aware layers' sampled
    transfers; ``"surrogate"`` the surrogate fit; ``"score"`` the surrogate
    transfers that score the hardware-aware epochs; ``"circuit"``,
    ``"statistical"`` and ``"surrogate_transfers"`` the evaluations;
    ``"grid"`` the plots' grid; ``"check"`` the ``--check-surrogate`` run. The data split keeps ``seed`` itself, and
    the network's initial weights ``torch.manual_seed(seed)``.

    63 bits: the functions given these seeds add offsets of up to about
    1e5 (layer ``k``'s ``seed + k``, read noise ``seed + 1000 + k``); two
    32-bit seeds came that close in about 5e-5 of pairs.

    They all drew from ``default_rng(seed)`` before 2026-12-02, so the data
    split's permutation, the training batch order, the surrogate fit's
    random layers and the first layer's sampled noise read the same bits.

    Raises `ParameterError` for a ``seed`` that is not an integer >= 0
    (1.5 and True were read as 1, "3" as 3) and an unknown ``purpose``."""
    from .devices import zero_d_item

    value = zero_d_item(seed)  # a 0-d integer array or tensor, as the other seeds
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        from ._coerce import seed_refused

        raise ParameterError(seed_refused(seed, "seed", "stream_seed takes the run's seed, an integer >= 0."))
    if not isinstance(purpose, str) or purpose not in _STREAMS:
        raise ParameterError(f"purpose = {purpose!r}; stream_seed knows the run's purposes "
                             f"{', '.join(map(repr, _STREAMS))}.")
    return int(np.random.SeedSequence([int(value), _STREAMS[purpose]]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def _load_or_fit_surrogate(cfg, out_dir, given, mc, seed, progress, log):
    """The surrogate of this run: ``given`` (a checked ``(sur, path)`` from
    --surrogate), or ``out_dir/surrogate.npz`` when it was fitted with this
    run's settings, or a fresh fit (saved there with the run's files)."""
    from .train.surrogate import Surrogate

    # every setting of the fit: a cache fitted with another n_bins or
    # weight_scale was reused, and one from before n_probe
    # was recorded is refitted; so is one another xbarsim version fitted
    # (and, as the version is the same across commits and checkouts, one the
    # sources of another checkout or commit fitted)
    from . import __version__
    from ._kernel_cache import code_digest

    fit_seed = stream_seed(seed, "surrogate")
    want = {"n_transfers": mc.fit_transfers, "seed": fit_seed, "layers": MOONS_LAYERS,
            "n_fail_devices": mc.fail_devices, "xbarsim_version": __version__, "code_digest": code_digest(),
            **SURROGATE_FIT}
    if given is not None:
        return given[0], given[1], False
    cache = os.path.join(out_dir, "surrogate.npz")  # anything but a file there was refused with --out's checks
    if os.path.isfile(cache):
        # why the file is not reused is said (a refit said only "fitted in 48 s")
        try:
            sur = Surrogate.load(cache)
            meta = sur.meta
            differ = [k for k, v in want.items() if meta.get(k) != v]
            same_cfg = sur.matches(cfg)
            if same_cfg and not differ:
                log(f"surrogate: reusing {cache}")
                return sur, cache, False
            why = ("fitted for another transfer configuration" if not same_cfg
                   else "fitted by other xbarsim sources" if set(differ) <= {"code_digest", "xbarsim_version"}
                   else f"fitted with other settings: {', '.join(differ)}")
        except ParameterError as exc:
            why = f"unreadable: {str(exc).split(';')[0].rstrip('.')}"
        log(f"surrogate: not reusing {cache} ({why}); refitting")
    t0 = time.perf_counter()
    try:
        sur = Surrogate.fit(cfg, n_transfers=mc.fit_transfers, seed=fit_seed, n_fail_devices=mc.fail_devices,
                            progress=progress, **SURROGATE_FIT)
    except MemoryLimitError as exc:
        # its hint names Surrogate.fit's arguments, which the command has not
        raise MemoryLimitError(f"{str(exc).rstrip('.')}. Here: give fewer --fit-transfers (fit_transfers), now "
                               f"{mc.fit_transfers}.") from None
    # saved with the run's other files, at the end (`RunFiles`): saved here,
    # a Ctrl-C later left the new fit beside the earlier run's results,
    # which it had not produced. Refitting costs seconds.
    log(f"surrogate: fitted in {time.perf_counter() - t0:.1f} s (saved to {cache} with the run's files)")
    return sur, cache, True


def _val_score(sur, data, n, seed):
    from .train.evaluate import evaluate_surrogate
    from .train.metrics import summarize

    def score(net):
        s = summarize(evaluate_surrogate(net, sur, data.x_val, data.y_val, n=n, seed=seed).correct)
        return s["frac_points_ge_95"] + 0.01 * s["mean_accuracy"]

    return score


def train_networks(data, sur, mc, seed, progress, techniques=None, regular=True, label="train hardware-aware"):
    """Train the regular network and the hardware-aware one; returns dict
    name -> (model, TrainResult). ``label`` names the hardware-aware
    training's progress bar (the ablation's rows name theirs)."""
    from .train.layers import convert
    from .train.training import TrainConfig, moons_network, train

    tc = TrainConfig(epochs=mc.epochs, seed=stream_seed(seed, "train"))
    out = {}
    if regular:
        reg = moons_network(seed=seed)
        res = train(reg, data, replace(tc, val_samples=0), progress=progress, label="train regular")
        out["regular"] = (reg, res)
    tech = techniques or _techniques(True, True, True)
    ha = convert(moons_network(seed=seed), surrogate=sur, seed=stream_seed(seed, "layers"), **tech)
    res = train(ha, data, tc, progress=progress, label=label,
                score=_val_score(sur, data, mc.score_transfers, stream_seed(seed, "score")))
    out["hardware_aware"] = (ha, res)
    return out


def _summary(mc_result, software_accuracy):
    from .train.metrics import summarize

    return summarize(mc_result.correct, software_accuracy=software_accuracy)


def default_out(quick):
    """The output folder a run writes when none is given: ``out/moons``, or
    ``out/moons-quick`` for a quick run (which must not replace a full one's)."""
    return "out/moons-quick" if quick else "out/moons"


def run(out_dir=None, transfers=None, seed=0, quick=False, data_dir=None, noise=None,
        surrogate_path=None, epochs=None, fit_transfers=None, progress=True, ablation=False,
        check_surrogate=False, stream=None):
    """Run the experiment; returns the results dict (also written to ``out_dir``,
    by default ``out/moons``, or ``out/moons-quick`` with ``quick``, as the
    command line's: a quick run from Python replaced a full run's files and
    fitted surrogate).

    The caller's global torch generator is left as it was (the run seeds its
    own: it was reseeded with ``seed``)."""
    import torch

    from .cli import removing_new_folders

    # the wrong kinds of out_dir and stream were raw errors, the stream's
    # after the surrogate fit
    if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):  # "": check_out_dir's "--out is empty"
        raise ParameterError(f"out_dir = {out_dir!r}; give the output folder's path, or None for "
                             f"{default_out(False)!r} ({default_out(True)!r} with quick=True).")
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise ParameterError(f"stream = {stream!r:.60}; give a text stream (sys.stdout, an open file, io.StringIO) "
                             "for the run's lines, or None for standard output.")
    # np.True_ too: the folder run writes (quick is True watched out/moons; review of the fix)
    out = out_dir if out_dir is not None else default_out(isinstance(quick, (bool, np.bool_)) and bool(quick))
    # a failed run left the folder it made, empty, as the command line does not
    with torch.random.fork_rng(devices=[]), removing_new_folders(out):
        return _run(out_dir, transfers, seed, quick, data_dir, noise, surrogate_path, epochs, fit_transfers,
                    progress, ablation, check_surrogate, stream)


def _run(out_dir, transfers, seed, quick, data_dir, noise, surrogate_path, epochs, fit_transfers, progress,
         ablation, check_surrogate, stream):
    """`run`'s body, with the torch generator forked."""
    import torch

    import xbarsim as xs

    from .train.data import load_csv_dir, make_moons_split
    from .train.evaluate import (
        evaluate_circuit,
        evaluate_statistical,
        evaluate_surrogate,
        grid_outputs_from_batches,
        network_layers,
        software_logits,
    )
    from .train.metrics import per_point_accuracy
    from .train.plots import grid_points, plot_cdf, plot_decision_boundary, plot_uncertainty
    from .train.training import accuracy, single_thread

    stream = stream or sys.stdout
    pipe_closed = []

    def log(msg):
        # A reader that went away (``xbarsim moons | head``) must not cost
        # the run its files: the table is printed inside the block that puts
        # them in place, and the BrokenPipeError there dropped them all
        # after the whole run. The run writes its files
        # and then raises it (the CLI exits 141, quietly).
        if pipe_closed:
            return
        try:
            print(msg, file=stream, flush=True)
        except BrokenPipeError:
            pipe_closed.append(True)

    from .train._checks import check_flag

    # True or False, before any work: quick="no" ran the quick configuration
    # and recorded "quick": true, and progress="no" was refused after --out
    # was made
    quick, ablation, check_surrogate, progress = (
        check_flag(v, name) for v, name in ((quick, "quick"), (ablation, "ablation"),
                                             (check_surrogate, "check_surrogate"), (progress, "progress")))
    mc = QUICK if quick else MoonsConfig()
    if out_dir is None:
        out_dir = default_out(quick)
    over = {k: v for k, v in dict(transfers=transfers, epochs=epochs, fit_transfers=fit_transfers,
                                  noise=noise).items() if v is not None}
    # checked by MoonsConfig, before any work: transfers=2.5 (the Python API; the CLI
    # parses ints) was refused as "n" after the fit and the training, and np.float32
    # noise failed to write results.json after the whole run
    mc = replace(mc, **over)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"--seed {seed!r}: a non-negative integer.")
    # before anything runs: the seed and what the training API adds to it
    # must be 64-bit seeds; a seed near 2**64 was refused after the
    # surrogate fit and the training, with surrogate.npz already written
    from .train._checks import SEED_OFFSET_MAX, check_seed

    seed = check_seed(seed, "--seed", offset=SEED_OFFSET_MAX + SEED_OFFSET)
    # "" (an unset shell variable) is a path like any other, refused as
    # missing: it silently ran the generated moons, or refitted
    if data_dir is not None and noise is not None:
        raise ParameterError("--noise sets the noise of the generated half moons; with --data the points come from "
                             "your files. Drop one of them.")
    # every input is read and checked before --out is created or cleaned
    data = load_csv_dir(data_dir) if data_dir is not None else make_moons_split(noise=mc.noise, seed=seed)
    from . import _memory

    # the evaluations keep one logit per transfer and test point: circuit,
    # statistical and surrogate transfers of each of the two networks
    _memory.require(2 * 3 * 8.0 * mc.transfers * len(data.x_test),
                    f"{mc.transfers} transfers of each network on {len(data.x_test)} test points",
                    "give fewer --transfers (the paper's experiment uses 2000)")
    cfg = xs.TransferConfig()  # TIO2, V/2, grounded reads, differential, 1 ohm wires
    given = None
    if surrogate_path is not None:
        if fit_transfers is not None:  # it was ignored, and results.json recorded it as the fit's
            raise ParameterError("--fit-transfers sets the surrogate fit of this run; with --surrogate the given "
                                 "file's fit is used. Drop one of them.")
        given = (_given_surrogate(cfg, surrogate_path), surrogate_path)
        meta = given[0].meta  # results.json records the fit actually used
        mc = replace(mc, fit_transfers=int(meta.get("n_transfers", mc.fit_transfers)),
                     fail_devices=int(meta.get("n_fail_devices", mc.fail_devices)))
    # surrogate.npz too when this run may fit one: a dangling link there was
    # refused at the end, after the whole run
    check_out_dir(out_dir, ("results.json", "bins.csv", "cdf.png", "decision_boundary.png", "uncertainty.png")
                  + (("surrogate.npz",) if given is None else ())
                  + (("ablation.json", "ablation.csv") if ablation else ())
                  + (("surrogate_check.json", "surrogate_check.txt") if check_surrogate else ()))
    t_start = time.perf_counter()
    timing = {}
    torch.random.default_generator.manual_seed(seed)  # the CPU's alone: the run is on the CPU
    _say_if_compiling(log)

    t0 = time.perf_counter()
    sur, sur_file, fitted = _load_or_fit_surrogate(cfg, out_dir, given, mc, seed, progress, log)
    timing["surrogate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    nets = train_networks(data, sur, mc, seed, progress)
    timing["training"] = time.perf_counter() - t0

    results = {}
    per_point = {}
    kept_batches = {}
    t0 = time.perf_counter()
    for name, (net, tres) in nets.items():
        layers = network_layers(net)
        sw = accuracy(net, data.x_test, data.y_test)
        circ, kept = evaluate_circuit(layers, cfg, data.x_test, data.y_test, n=mc.transfers,
                                      seed=stream_seed(seed, "circuit"),
                                      progress=progress, label=f"transfers {name.replace('_', '-')}",
                                      keep_conductances=mc.grid_transfers)
        kept_batches[name] = kept
        stat = evaluate_statistical(layers, cfg, data.x_test, data.y_test, n=mc.transfers,
                                    seed=stream_seed(seed, "statistical"))
        with single_thread():
            surr = evaluate_surrogate(layers, sur, data.x_test, data.y_test, n=mc.transfers,
                                        seed=stream_seed(seed, "surrogate_transfers"))
        r = _summary(circ, sw)
        r["transfer_model"] = "circuit"
        # write-verify's outcome on the circuit, per layer (not recorded before)
        r["programming"] = list(circ.programming)
        r["statistical"] = _summary(stat, sw)
        r["surrogate"] = _summary(surr, sw)
        r["train"] = {
            "epochs": mc.epochs, "best_epoch": int(tres.best_epoch),
            "final_train_loss": float(tres.loss_history[-1]), "first_train_loss": float(tres.loss_history[0]),
        }
        r["weights"] = [{"weight": w.tolist(), "bias": None if b is None else b.tolist()} for w, b in layers]
        r["per_point_accuracy"] = per_point_accuracy(circ.correct).tolist()
        results[name] = r
        per_point[f"{name.replace('_', '-')}, circuit"] = per_point_accuracy(circ.correct)
        per_point[f"{name.replace('_', '-')}, statistical"] = per_point_accuracy(stat.correct)
    timing["evaluation"] = time.perf_counter() - t0

    # figures
    t0 = time.perf_counter()
    grid, axis = grid_points(mc.grid)
    panels_b, panels_u = {}, {}
    for name, (net, _) in nets.items():
        layers = network_layers(net)
        with single_thread():
            lg = grid_outputs_from_batches(sur, kept_batches[name], grid, seed=stream_seed(seed, "grid"),
                                           n_max=mc.grid_transfers)
        prob = 1.0 / (1.0 + np.exp(-np.clip(lg, -50, 50)))
        side = (mc.grid, mc.grid)
        panels_b[name] = dict(p1=(lg > 0).mean(axis=0).reshape(side),
                              software=software_logits(layers, grid).reshape(side),
                              per_point=np.asarray(results[name]["per_point_accuracy"]))
        panels_u[name] = dict(std=prob.std(axis=0).reshape(side))
    n_grid_t = len(lg)
    # This run's files are put in place together (`RunFiles`), so Ctrl-C
    # leaves an earlier run's set whole, an ablation included: with
    # --ablation every file waits for it (the main files went in place
    # first, and Ctrl-C during the ablation left the earlier run's ablation
    # removed beside this run's results). An earlier run's
    # outputs that this one does not rewrite would read as its own: they go
    # then (the surrogate fit cache is kept).
    stale = ([] if ablation else ["ablation.json", "ablation.csv"]) + (
        [] if check_surrogate else ["surrogate_check.json", "surrogate_check.txt"])
    files = RunFiles(out_dir, stale=stale)
    with files:
        if fitted:
            sur.save(files.path("surrogate.npz"))
        quick_note = " (--quick run)" if quick else ""
        plot_cdf(per_point, files.path("cdf.png"), mc.transfers, note=quick_note)
        grid_note = (f"grid: {n_grid_t} of the {mc.transfers} circuit transfers (simulated programming){quick_note}; "
                     "grid MVM by the surrogate's circuit model (sinh, first-order IR drop, read noise)")
        plot_decision_boundary(axis, panels_b, data.x_test, data.y_test, files.path("decision_boundary.png"),
                               note=grid_note + "; test-point accuracies: circuit MVM of every transfer")
        plot_uncertainty(axis, panels_u, data.x_test, data.y_test, files.path("uncertainty.png"), note=grid_note)
        timing["figures"] = time.perf_counter() - t0
        doc = _finish_doc(files, results, sur, sur_file, fitted, mc, seed, quick, data, data_dir, timing,
                          t_start, check_surrogate, progress, log)
        log(format_table(doc))
        if ablation:
            t0 = time.perf_counter()
            abl = run_ablation(data, sur, cfg, mc, seed, progress, doc, log)
            doc["ablation"] = abl
            # the total, written before the ablation, left its minutes out
            doc["timing_s"]["ablation"] = time.perf_counter() - t0
            doc["timing_s"]["total"] = time.perf_counter() - t_start
            _write_results(files, doc)  # again, now with the ablation (the same temporary files)
            _write_ablation(files, abl)
    if ablation:
        log(format_ablation(abl))
    written = ["results.json", "bins.csv"] + (["surrogate.npz"] if fitted else [])
    written += ["cdf.png", "decision_boundary.png", "uncertainty.png"]
    written += ["surrogate_check.json", "surrogate_check.txt"] if check_surrogate else []
    written += ["ablation.json", "ablation.csv"] if ablation else []
    log(f"wrote {', '.join(written)} in {out_dir} ({time.perf_counter() - t_start:.0f} s)")
    if pipe_closed:
        raise BrokenPipeError("the output stream closed during the run; its files are written")
    return doc


def _say_if_compiling(log):
    """On an install's first run the kernels compile for about 40 s
    under a progress bar at 0 (a newcomer's run looked frozen for 34 s):
    say so when no compiled kernel is cached yet."""
    from .cache_cmd import cache_report

    report = cache_report()
    if report.enabled and report.files == 0:
        log("compiling the Numba kernels (an install's first run: about 40 s; cached for later runs)")


def _finish_doc(files, results, sur, sur_file, fitted, mc, seed, quick, data, data_dir, timing, t_start,
                check_surrogate, progress, log):
    """The optional surrogate check and ``results.json`` / ``bins.csv``,
    written through `files`; returns the results document."""
    extra = {}
    if check_surrogate:
        from .train.surrogate import check, format_check

        t0 = time.perf_counter()
        rep = check(sur, seed=stream_seed(seed, "check"), progress=progress,  # check's default seed: one for all runs
                    **({"n_layers": 3, "per_layer": 4, "n_fail_devices": 2000} if quick else {}))
        with open(files.path("surrogate_check.json"), "w") as fh:
            json.dump(rep, fh, indent=1)
        with open(files.path("surrogate_check.txt"), "w") as fh:
            fh.write(format_check(rep) + "\n")
        log(format_check(rep))
        extra["surrogate_check"] = rep["pass"]
        timing["surrogate_check"] = time.perf_counter() - t0

    timing["total"] = time.perf_counter() - t_start
    doc = {
        "regular": results["regular"],
        "hardware_aware": results["hardware_aware"],
        "config": {
            "transfer": json.loads(sur.cfg_json),
            # the generator's noise only where the points were generated (None with --data)
            "run": {k: (None if k == "noise" and data_dir else getattr(mc, k)) for k in mc.__dataclass_fields__},
            "seed": seed,
            # the surrogate's: the fit actually used (a --surrogate file's own seed, not this run's)
            "stream_seeds": {**{k: stream_seed(seed, k) for k in _STREAMS},
                             "surrogate": sur.meta.get("seed")},  # None: a given file that does not say
            "quick": bool(quick),
            "data": data.source,
            "data_sizes": list(data.sizes()),
            "hardware_aware_recipe": HA_RECIPE,
        },
        "surrogate": {"file": os.path.abspath(sur_file), "fitted_in_this_run": fitted, "meta": sur.meta},
        "timing_s": timing,
        **extra,
    }
    _write_results(files, doc)
    return doc


def load_results(path):
    """Read a ``results.json`` written by `run` (plain JSON: nothing is executed).

    Raises `ParameterError` when the file is not a results file.
    """
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read results file {path}: {exc}") from exc
    for net in ("regular", "hardware_aware"):
        entry = doc.get(net) if isinstance(doc, dict) else None
        # every figure `format_table` reads: an entry that was no object
        # raised a raw TypeError, one with the headline figure alone a
        # KeyError in format_table
        if not isinstance(entry, dict):
            raise ParameterError(f"{path} is not an xbarsim moons results file (no {net!r} figures).")
        missing = [k for k in _RESULT_FIGURES if k not in entry]
        missing += [f"{m}.frac_points_ge_95" for m in ("statistical", "surrogate")
                    if not isinstance(entry.get(m), dict) or "frac_points_ge_95" not in entry[m]]
        if missing:
            raise ParameterError(f"{path} is not an xbarsim moons results file (its {net!r} figures lack "
                                 f"{', '.join(missing)}).")
    return doc


_RESULT_FIGURES = ("frac_points_ge_95", "mean_accuracy", "software_accuracy", "n_transfers", "n_points", "bins")
"""The figures of each network that `load_results` requires (`format_table` reads them)."""


def _write_results(files, doc):
    """``results.json`` and ``bins.csv`` through `files` (a `RunFiles`)."""
    with open(files.path("results.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    with open(files.path("bins.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        cols = [("regular", None), ("hardware_aware", None), ("regular", "statistical"),
                ("hardware_aware", "statistical")]
        # the edges, after the figures (a reader of the labels alone could
        # not tell where a point at exactly 0.90 went)
        w.writerow(["bin"] + [f"{n}_{m or 'circuit'}_count" for n, m in cols]
                   + [f"{n}_{m or 'circuit'}_fraction" for n, m in cols] + ["lower_inclusive", "upper_exclusive"])
        for k, row in enumerate(doc["regular"]["bins"]):
            vals = []
            for n, m in cols:
                src = doc[n] if m is None else doc[n][m]
                vals.append(src["bins"][k])
            edges = ["" if row[e] is None else f"{row[e]:g}" for e in ("lower", "upper")]
            w.writerow([row["label"]] + [v["count"] for v in vals] + [f"{v['fraction']:.4f}" for v in vals] + edges)


def format_table(doc):
    """The headline table as text."""
    lines = []
    n = doc["regular"]["n_transfers"]
    generated = doc.get("config", {}).get("data", "make_moons") == "make_moons"
    # --data: "Half moons" and the paper's figures named data the run did not use
    lines.append(f"{'Half moons' if generated else 'Your data'}, {doc['regular']['n_points']} test points, {n} "
                 "transfers per network")
    hdr = f"{'':34s}{'regular':>12s}{'hardware-aware':>16s}"
    lines.append(hdr)
    for label, key in (("points >= 0.95 (circuit)", "frac_points_ge_95"),
                       ("mean accuracy (circuit)", "mean_accuracy"),
                       ("software accuracy", "software_accuracy")):
        lines.append(f"{label:34s}{doc['regular'][key]:12.3f}{doc['hardware_aware'][key]:16.3f}")
    for m in ("statistical", "surrogate"):
        lines.append(f"{'points >= 0.95 (' + m + ')':34s}{doc['regular'][m]['frac_points_ge_95']:12.3f}"
                     f"{doc['hardware_aware'][m]['frac_points_ge_95']:16.3f}")
    lines.append("per-point accuracy bins (circuit): fraction of test points (a bin holds its lower edge, not its "
                 "upper: 0.90 is in 0.90-0.95)")
    for k, b in enumerate(doc["regular"]["bins"]):
        lines.append(f"  {b['label']:32s}{b['fraction']:12.3f}{doc['hardware_aware']['bins'][k]['fraction']:16.3f}")
    lines.append("points >= 0.95: the fraction of test points classified right in at least 95 % of the transfers"
                 + (" (Drolet et al. 2023, statistical model: 0.185 regular, 0.795 hardware-aware)" if generated
                    else ""))
    # not like-for-like otherwise: the selection alone carries much of the gap
    lines.append("epochs kept: hardware-aware, the most validation points >= 0.95 over surrogate transfers; "
                 "regular, the lowest validation loss (--ablation's off/off/off row: that selection, no technique)")
    return "\n".join(lines)


ABLATION_ROWS = [
    (False, False, False),
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (True, True, False),
    (True, False, True),
    (False, True, True),
    (True, True, True),
]


def run_ablation(data, sur, cfg, mc, seed, progress, doc, log):
    """Each technique on and off (2^3 hardware-aware trainings), headline figure for each."""
    from .train.evaluate import evaluate_circuit, network_layers
    from .train.training import accuracy

    rows = []
    for reparam, failures, regularize in ABLATION_ROWS:
        name = "+".join(n for n, on in (("reparam", reparam), ("failures", failures), ("regularize", regularize)) if on) or "none"
        if reparam and failures and regularize:
            r = doc["hardware_aware"]
            row = dict(frac_points_ge_95=r["frac_points_ge_95"], mean_accuracy=r["mean_accuracy"],
                       software_accuracy=r["software_accuracy"])
        else:
            nets = train_networks(data, sur, mc, seed, progress, techniques=_techniques(reparam, failures, regularize),
                                  regular=False, label=f"train {name}")  # all seven read "hardware-aware"
            net = nets["hardware_aware"][0]
            layers = network_layers(net)
            circ, _ = evaluate_circuit(layers, cfg, data.x_test, data.y_test, n=mc.transfers,
                                      seed=stream_seed(seed, "circuit"),
                                       progress=progress, label=f"transfers {name.replace('_', '-')}")
            from .train.metrics import summarize

            s = summarize(circ.correct)
            row = dict(frac_points_ge_95=s["frac_points_ge_95"], mean_accuracy=s["mean_accuracy"],
                       software_accuracy=accuracy(net, data.x_test, data.y_test))
        row.update(reparam=reparam, failures=failures, regularize=regularize, name=name)
        rows.append(row)
        log(f"ablation {name}: points >= 0.95 = {row['frac_points_ge_95']:.3f}")
    r = doc["regular"]
    rows.append(dict(name="regular training", reparam=None, failures=None, regularize=None,
                     frac_points_ge_95=r["frac_points_ge_95"], mean_accuracy=r["mean_accuracy"],
                     software_accuracy=r["software_accuracy"]))
    return {"rows": rows, "n_transfers": mc.transfers}


def _write_ablation(files, abl):
    """``ablation.json`` and ``ablation.csv`` through `files` (a `RunFiles`)."""
    with open(files.path("ablation.json"), "w") as fh:
        json.dump(abl, fh, indent=1)
    with open(files.path("ablation.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "reparam", "failures", "regularize", "frac_points_ge_95", "mean_accuracy",
                    "software_accuracy"])
        for r in abl["rows"]:
            w.writerow([r["name"], r["reparam"], r["failures"], r["regularize"], f"{r['frac_points_ge_95']:.4f}",
                        f"{r['mean_accuracy']:.4f}", f"{r['software_accuracy']:.4f}"])


def format_ablation(abl):
    """The ablation table as markdown."""
    def mark(v):
        return "" if v is None else ("on" if v else "off")

    lines = ["| reparametrization | failures (dropout) | regularization | points >= 0.95 | mean accuracy | software accuracy |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in abl["rows"]:
        if r["reparam"] is None:
            lines.append(f"| regular training | | | {r['frac_points_ge_95']:.3f} | {r['mean_accuracy']:.3f} | "
                         f"{r['software_accuracy']:.3f} |")
        else:
            lines.append(f"| {mark(r['reparam'])} | {mark(r['failures'])} | {mark(r['regularize'])} | "
                         f"{r['frac_points_ge_95']:.3f} | {r['mean_accuracy']:.3f} | {r['software_accuracy']:.3f} |")
    lines.append(f"({abl['n_transfers']} circuit transfers per row)")
    return "\n".join(lines)


def register(subparsers):
    import argparse

    p = subparsers.add_parser(
        "moons",
        help="the paper's half-moons experiment: regular vs hardware-aware training, circuit-in-the-loop transfers",
        description=help_text(__doc__.split("\n\n")[0]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes results.json, bins.csv, surrogate.npz (unless --surrogate gives one; reused by a rerun with\n"
               "the same settings into the same --out) and cdf.png, decision_boundary.png, uncertainty.png; with --ablation also\n"
               "ablation.json, ablation.csv, and with --check-surrogate surrogate_check.json,\n"
               "surrogate_check.txt. About 1.5-2 minutes on 2 cores (plus about 40 s of kernel compiling on an\n"
               "install's first run).\n\n"
               "exit status:\n"
               "  0  the run finished and its files were written\n"
               "  3  the same, but with --check-surrogate the surrogate missed one of the check's criteria\n"
               "     (surrogate_check.txt says which)\n"
               "  1  an error (message on stderr)\n"
               "  2  a malformed command line (usage on stderr)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default out/moons; out/moons-quick with --quick)")
    p.add_argument("--transfers", type=int, default=None, metavar="N", help=f"transfers per network (default {MoonsConfig().transfers}; {QUICK.transfers} with --quick)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="SEED", help="seed of data, training, surrogate and transfers (default 0)")
    p.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    p.add_argument("--data", default=None, metavar="DIR", help="read train.csv, val.csv, test.csv (x1,x2,label)")
    p.add_argument("--noise", type=float, default=None, metavar="SIGMA", help=f"make_moons noise (default {MoonsConfig().noise:g}; not with --data)")
    p.add_argument("--surrogate", default=None, metavar="FILE", help="use this fitted surrogate (.npz)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help=f"training epochs (default {MoonsConfig().epochs}; {QUICK.epochs} with --quick)")
    p.add_argument("--fit-transfers", type=int, default=None, metavar="N", help=f"layers per shape for the surrogate fit (default {MoonsConfig().fit_transfers}; {QUICK.fit_transfers} with --quick)")
    p.add_argument("--ablation", action="store_true", help="also train and evaluate every technique on/off")
    p.add_argument("--check-surrogate", action="store_true", help="also compare the surrogate with fresh simulator samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def main(args):
        if args.noise is not None and not (math.isfinite(args.noise) and args.noise >= 0):
            # the library's refusal says "noise"
            raise ParameterError(f"--noise {args.noise:g}: the half moons' noise must be a finite number >= 0.")
        from .cli import removing_new_folders

        out = args.out if args.out is not None else default_out(args.quick)
        # an interrupted or failed run left its new --out (and the parents it made) empty, as the
        # other commands do not
        with removing_new_folders(out):
            doc = run(out_dir=out, transfers=args.transfers, seed=args.seed, quick=args.quick, data_dir=args.data,
                      noise=args.noise, surrogate_path=args.surrogate, epochs=args.epochs,
                      fit_transfers=args.fit_transfers, progress=not args.no_progress, ablation=args.ablation,
                      check_surrogate=args.check_surrogate)
        # a missed check exited 0, as a met one
        return 3 if "surrogate_check" in doc and not all(doc["surrogate_check"].values()) else 0

    p.set_defaults(func=main)
    return p
