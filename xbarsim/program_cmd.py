"""``xbarsim program``: write-verify programming of one array, as a study.

``xbarsim program --out DIR`` programs one array by write-verify on its
circuit (`xbarsim.program`: every pulse under the bias scheme, every verify
read through the crossbar) and reports how well it went:

* ``summary.json``: the configuration, the wall time, pulses, convergence,
  failures and the programming error of the working devices (relative to
  the target, right after each device's own write-verify and after the
  whole array), and the drift ``g_final - g_after_own`` (the disturb of
  the later pulses and relaxation);
* ``result.npz``: every (M, N) field of `xbarsim.ProgramResult`;
* ``program.png``: the final error map, the pulse map, the error
  histograms, and the drift against the programming position.

Targets are uniform in the device's operating window (``--g-range`` to
change it), or read from ``--targets FILE`` (``.npy``, or ``.csv`` with one
row per word line), in siemens.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
import time
import warnings

import numpy as np

from .exceptions import ConvergenceError, ParameterError, XbarsimError
from .cli import (RunFiles, _written_by, check_out_dir, check_provenance, check_r_wire,
                  help_text, integer_ticks, json_plain, load_conductances, remove_if_made_and_empty,
                  removing_new_folders, seed_arg, wires_text)

__all__ = ["run", "summarize", "plot", "register"]


def _shape_arg(text):
    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; expected N or MxN, e.g. 64 or 32x64")
    return shape


def _window_arg(text):
    """One GMIN:GMAX window, parsed as ``xbarsim scale --g-range`` parses its list."""
    from .scale import _windows_arg

    if "," in text:  # the list parser's "empty item; give a comma-separated list"
        raise argparse.ArgumentTypeError(f"window {text!r}: give one GMIN:GMAX window in siemens, e.g. "
                                         "100e-6:500e-6 (a list is for `xbarsim scale --g-range`)")
    windows = _windows_arg(text)
    if len(windows) != 1 or not 0 < windows[0][0] < windows[0][1]:
        raise argparse.ArgumentTypeError(f"window {text!r}: need one GMIN:GMAX with 0 < GMIN < GMAX (siemens)")
    return windows[0]


_FIELD_FLAGS = {"solve_tol": "--solve-tol", "solve_maxiter": "--solve-maxiter", "cfg.r_wl, cfg.r_bl": "--r-wire",
                "tolerance": "--tolerance"}
"""`TransferConfig` fields (as the library's messages name them) and the
options that set them."""


_QUOTED = re.compile(r"""(?:(?<=^)|(?<=[\s(]))('[^']*'|"[^"]*")(?=$|[\s),.;:])""")
"""A quoted span (a path, as the messages write it with repr), not an
apostrophe ("the device's")."""


def _in_flags(message):
    """``message`` in this command's options: a leading ``field = value; ``
    as ``--flag value: ``, and ``solve_tol``, ``solve_maxiter`` (also as
    ``cfg.name``) and the wires as their flags wherever they appear (a
    too-small --solve-tol and a missed solve named the fields, and advised
    ``cfg.solve_maxiter``). ``tolerance`` only leading: it
    is also a word."""
    for field, flag in _FIELD_FLAGS.items():
        if message.startswith(field + " = "):  # "tolerance = 0.0; give ..." as "--tolerance 0.0: give ..."
            message = re.sub(r"^[^=]+= (\S+?); ", lambda m: f"{flag} {m[1]}: ", message)
            message = message.replace(field + " = ", flag + " ", 1)
        if field != "tolerance":
            # whole names outside quotes only: an --out path holding the name was
            # rewritten; the messages quote paths with repr
            name = re.compile(rf"(?<![\w/.-])(?:cfg\.)?{re.escape(field)}(?![\w/-])( = )?")
            parts = _QUOTED.split(message)
            message = "".join(part if k % 2 else name.sub(lambda m: flag + " " * bool(m[1]), part)
                              for k, part in enumerate(parts))
    return message


def load_targets(path):
    """Target conductances (S) from a ``.npy`` or ``.csv`` file
    (`cli.load_conductances`, as xbarsim solve's --g: a header row was read
    as targets past the range)."""
    return load_conductances(path, "--targets")


def summarize(res, seconds=None):
    """Figures of merit of a `ProgramResult`.

    Parameters
    ----------
    res : ProgramResult
        From `xbarsim.program`.
    seconds : float, optional
        Wall time of the run, recorded as ``seconds``.

    Returns
    -------
    dict
        Counts (devices, working, stuck), convergence of the working
        devices, pulses (``pulses_mean`` and ``pulses_max`` over every
        device, the stuck ones included: each spends the whole budget),
        and for the working devices the relative error
        after their own write-verify and after the whole array
        (``error_after_own_pct``, ``error_final_pct``, %) and the drift
        ``g_final - g_after_own`` (``drift_uS``), each as mean, std, 95th
        percentile and maximum of the absolute value. When every device is
        stuck, those statistics and ``converged_working`` are None (null in
        JSON): there is nothing to measure.
    """
    w = res.working
    t = res.target[w]
    own = res.g_after_own[w] / t - 1.0
    fin = res.g_final[w] / t - 1.0
    drift = (res.g_final - res.g_after_own)[w]

    def stats(x, scale):
        if x.size == 0:
            return None
        x = x * scale
        return dict(mean=float(x.mean()), std=float(x.std()), p95_abs=float(np.percentile(np.abs(x), 95)),
                    max_abs=float(np.abs(x).max()))

    out = dict(
        shape=list(res.target.shape),
        devices=int(res.target.size),
        working=int(w.sum()),
        stuck_lrs=int((res.stuck_state == 1).sum()),
        stuck_hrs=int((res.stuck_state == 2).sum()),
        converged_working=float(res.converged[w].mean()) if w.any() else None,
        pulses_mean=float(res.pulses.mean()),
        pulses_max=int(res.pulses.max()),
        error_after_own_pct=stats(own, 100.0),
        error_final_pct=stats(fin, 100.0),
        drift_uS=stats(drift, 1e6),
        solver_failures=int(res.solver_failures),
    )
    if seconds is not None:
        out["seconds"] = float(seconds)
    return out


def plot(res, path, title=""):
    """``program.png``: error map, pulse map, error histograms, drift vs position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    w = res.working
    err = np.where(w, 100.0 * (res.g_final / res.target - 1.0), np.nan)
    fig, ax = plt.subplots(2, 2, figsize=(11, 8.5))
    lim = float(np.nanpercentile(np.abs(err), 99)) if w.any() else 1.0
    lim = lim if lim > 0 else 1.0
    worst = float(np.nanmax(np.abs(err))) if w.any() else 0.0
    # stuck devices grey (white is 0 % on this map), and an arrow end on the
    # colour bar when the 99th-percentile limit clips the worst devices
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.6")
    im = ax[0, 0].imshow(err, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax[0, 0], label="g_final / target - 1 (%)", extend="both" if worst > lim else "neither")
    n_stuck = int((~w).sum())
    ax[0, 0].set_title("final error" + (f" ({n_stuck} stuck device{'s' * (n_stuck != 1)} in grey)" if n_stuck else "")
                       + (f"\ncolour clipped at ±{lim:.3g} %, worst {worst:.3g} %" if worst > lim else ""),
                       fontsize=10)
    ax[0, 0].set_xlabel("bit line j")
    ax[0, 0].set_ylabel("word line i")
    # stuck devices ramp for the whole budget: grey, as on the error map, so
    # that the colours show the working devices' pulses
    pulses = np.where(w, res.pulses, np.nan) if w.any() else res.pulses.astype(float)
    im = ax[0, 1].imshow(pulses, cmap=plt.get_cmap("viridis").with_extremes(bad="0.6"), interpolation="nearest",
                         aspect="auto")
    fig.colorbar(im, ax=ax[0, 1], label="pulses of the device's own write-verify")
    ax[0, 1].set_title("pulses" + (" (stuck devices in grey)" if n_stuck and w.any() else ""), fontsize=10)
    ax[0, 1].set_xlabel("bit line j")
    ax[0, 1].set_ylabel("word line i")
    for a in ax[0]:
        integer_ticks(a)
    own = 100.0 * (res.g_after_own[w] / res.target[w] - 1.0)
    fin = err[w]
    both = np.concatenate([own, fin])
    lo, hi = np.percentile(both, [0.5, 99.5]) if w.any() else (-1.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    bins = np.linspace(lo, hi, 60)
    # devices beyond the 0.5-99.5 percentile range are counted in the end bins
    ax[1, 0].hist(np.clip(own, lo, hi), bins=bins, alpha=0.6, label="after its own write-verify")
    ax[1, 0].hist(np.clip(fin, lo, hi), bins=bins, alpha=0.6, label="after the whole array")
    ax[1, 0].set_xlabel("true conductance / target - 1 (%)")
    ax[1, 0].set_ylabel("devices")
    ax[1, 0].yaxis.set_major_locator(MaxNLocator(integer=True))  # small arrays had ticks at 0.5 device
    step = (hi - lo) / 59  # a bin's width: devices within one of the axis are as good as in the end bin
    outside = int(((both < lo - step) | (both > hi + step)).sum())
    ax[1, 0].set_title("programming error, working devices"
                       + (f"\n({outside} beyond the axis, counted in the end bins)" if outside else ""),
                       fontsize=10)
    ax[1, 0].legend(fontsize=8)
    pos = res.order_index[w]
    drift = 1e6 * (res.g_final - res.g_after_own)[w]
    # above the binned mean (which hid them where a bin holds one device) and
    # larger on small arrays (found by review)
    few = pos.size <= 256
    ax[1, 1].plot(pos, drift, ".", ms=6 if few else 2, alpha=0.9 if few else 0.5, label="device", zorder=3)
    K = res.target.size
    edges = np.linspace(0, K, min(K, 32) + 1)
    idx = np.clip(np.digitize(pos, edges) - 1, 0, len(edges) - 2)
    cnt = np.bincount(idx, minlength=len(edges) - 1)
    mean = np.bincount(idx, weights=drift, minlength=len(edges) - 1) / np.maximum(cnt, 1)
    # at the mean position of each bin's devices: the bins' middles sat half a
    # position right of the integer positions they hold
    centre = np.bincount(idx, weights=pos, minlength=len(edges) - 1) / np.maximum(cnt, 1)
    ax[1, 1].plot(centre[cnt > 0], mean[cnt > 0], "r-", lw=2, label="binned mean")
    ax[1, 1].axhline(0.0, color="k", lw=0.5)
    ax[1, 1].set_xlabel("position in the programming order (later devices see fewer events)")
    ax[1, 1].set_ylabel("g_final - g_after_own (µS)")
    ax[1, 1].set_title("disturb and relaxation after each device's own write-verify", fontsize=10)
    ax[1, 1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out_dir, targets, cfg, seed=0, progress=True, verbose=True, provenance=None):
    """Program one array and write the study into ``out_dir``.

    Parameters
    ----------
    out_dir : str
        Output folder (created): ``summary.json``, ``result.npz``, ``program.png``.
    targets : array_like, (M, N)
        Target conductances, S, inside the device's reachable range.
    cfg : TransferConfig
        Device, bias and read schemes, wires, tolerance, order.
    seed : int
        Seed of every random draw (`xbarsim.program`).
    progress : bool
        Progress bar over the devices (stderr).
    verbose : bool
        Print the summary.
    provenance : dict, optional
        Where the device and targets came from (the command line's
        choices), recorded in ``config`` so that a run can be repeated.

    Returns
    -------
    dict
        `summarize` of the result, plus ``config``.
    """
    from .programming import TransferConfig, _check_flag, _check_seed, _check_target, program

    # before anything is written: --out was made first, then these refused
    # (cfg=None with a bare AttributeError)
    if not isinstance(cfg, TransferConfig):
        raise ParameterError(f"cfg must be an xbarsim.TransferConfig; got {type(cfg).__name__}.")
    _check_seed(seed)
    _check_flag(progress, "progress")
    config = dict(
        scheme=cfg.scheme.value, read_scheme=cfg.read_scheme.value, order=cfg.order.value,
        r_wl=cfg.r_wl, r_bl=cfg.r_bl, tolerance=cfg.tolerance, seed=int(seed),
        max_pulses=cfg.write_verify.max_pulses, device_v0=cfg.device.v0,
        solve_tol=cfg.solve_tol, solve_maxiter=cfg.solve_maxiter,
    )
    provenance = check_provenance(provenance, config)
    cfg.check_array(_check_target(targets, cfg.device).shape)
    made_out = check_out_dir(out_dir, ("summary.json", "result.npz", "program.png"))
    # the kernels loaded (a first run of an install compiles them for tens of
    # seconds) on a 2 x 2 array of the same configuration, so that `seconds`
    # is the programming's: the compile counted as programming time, behind
    # a silent progress bar. Quietly: its warnings and
    # errors read as the user's array's; the real run
    # raises its own.
    if verbose:
        print("xbarsim program: loading the programming kernels (the first run of an install compiles them)...",
              file=sys.stderr, flush=True)
    # loaded first: its import-time KernelCacheWarning (caching off, a
    # NUMBA_CACHE_DIR passed over) is not the warm-up's to silence
    importlib.import_module("xbarsim.kernels.config")

    try:
        t0 = time.perf_counter()
        g_lo, g_hi = cfg.g_window
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program(np.full((2, 2), 0.5 * (g_lo + g_hi)), cfg, seed=seed)
            except XbarsimError:
                pass
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = program(targets, cfg, seed=seed, progress=progress)
        seconds = time.perf_counter() - t0
    except BaseException:
        remove_if_made_and_empty(out_dir, made_out)
        raise
    summary = {**_written_by("program"), **summarize(res, seconds)}
    summary["kernel_load_seconds"] = load
    summary["config"] = {**config, **provenance}
    M, N = res.target.shape
    with RunFiles(out_dir) as files:  # all three files or none: Ctrl-C left a summary without its figure
        with open(files.path("summary.json"), "w") as fh:
            json.dump(json_plain(summary), fh, indent=2)
        np.savez_compressed(
            files.path("result.npz"),
            **{k: getattr(res, k) for k in ("order_index", "target", "pulses", "g_after_own", "g_final",
                                            "read_after_own", "read_final", "converged", "stuck",
                                            "stuck_state")})
        plot(res, files.path("program.png"),
             title=f"xbarsim program: {M}x{N}, {cfg.scheme.value} bias, {cfg.read_scheme.value} reads, "
                   f"{wires_text(cfg.r_wl, cfg.r_bl, 'Ω')}, seed {seed}")
    if verbose and not summary["working"]:
        print(f"{M}x{N} programmed in {seconds:.1f} s: every device is stuck ({summary['stuck_lrs']} near "
              f"LRS, {summary['stuck_hrs']} in HRS), so there is no programming error to report")
        print(f"wrote {out_dir}/summary.json, result.npz, program.png")
    elif verbose:
        e_own, e_fin, d = summary["error_after_own_pct"], summary["error_final_pct"], summary["drift_uS"]
        print(f"{M}x{N} programmed in {seconds:.1f} s: {summary['pulses_mean']:.1f} pulses per device, "
              f"{100 * summary['converged_working']:.1f} % of {summary['working']} working devices "
              f"converged, their verify read within {100 * cfg.tolerance:g} % of the target "
              f"({summary['stuck_lrs']} stuck near LRS, {summary['stuck_hrs']} in HRS)")
        print("  (the reads go through the circuit: with wire resistance or sneak paths, a device's true "
              "error can lie outside the band; see the errors below)")
        print(f"error after own write-verify: mean {e_own['mean']:+.3f} %, std {e_own['std']:.3f} %, "
              f"95 % within {e_own['p95_abs']:.3f} %")
        print(f"error after the whole array:  mean {e_fin['mean']:+.3f} %, std {e_fin['std']:.3f} %, "
              f"95 % within {e_fin['p95_abs']:.3f} %")
        print(f"drift g_final - g_after_own:  mean {d['mean']:+.2f} uS, std {d['std']:.2f} uS")
        print(f"wrote {out_dir}/summary.json, result.npz, program.png")
    return summary


def _ceil2(x):
    """`x` > 0 rounded up to two significant figures, as text: a hint
    rounded down (2 x 0.004359 as "0.0087") drew the same warning when
    followed."""
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return f"{math.ceil(x / step) * step:.2g}"


def register(subparsers):
    from .programming import BiasScheme, Order, ReadScheme

    p = subparsers.add_parser(
        "program",
        help="write-verify programming of one array on its circuit: errors, pulses, drift",
        description=help_text(__doc__.split("\n", 2)[2]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  xbarsim program --out prog --size 32x32 --scheme V/3 --r-wire 2\n"
               "(a 64x64 array with 1 ohm wires takes 30-50 s on 2 cores)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (JSON, NPZ, PNG)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--size", type=_shape_arg, default=(32, 32), metavar="N|MxN",
                     help="array size for random targets (default 32x32)")
    src.add_argument("--targets", metavar="FILE", help="target conductances, S (.npy, or .csv rows)")
    p.add_argument("--g-range", type=_window_arg, default=None, metavar="GMIN:GMAX",
                   help="window of the random targets, siemens (default: the device's, 100e-6:500e-6)")
    p.add_argument("--scheme", choices=[s.value for s in BiasScheme], default="V/2",
                   help="programming bias scheme (default V/2)")
    p.add_argument("--read-scheme", choices=[s.value for s in ReadScheme], default="grounded",
                   help="bias of unselected lines during verify reads (default grounded)")
    p.add_argument("--r-wire", type=float, default=1.0, metavar="OHM",
                   help="word- and bit-line segment resistance, ohms (default 1; 0: ideal wires)")
    p.add_argument("--order", choices=[o.value for o in Order], default="column-major",
                   help="order in which the devices are programmed (default column-major)")
    p.add_argument("--tolerance", type=float, default=0.01, metavar="REL", help="write-verify band, relative (default 0.01)")
    p.add_argument("--max-pulses", type=int, default=None, metavar="N",
                   help="write-verify pulse budget per device (default 40, as the preset was calibrated; large "
                        "arrays on resistive wires need more for every device to converge)")
    p.add_argument("--ideal-device", action="store_true",
                   help="the TiO2 device without noise, relaxation, failures or sub-threshold disturb "
                        "(half-selected cells past the switching threshold still switch)")
    p.add_argument("--solve-tol", type=float, default=1e-9, metavar="REL",
                   help="node-voltage error of each circuit solve, relative to the drive (default 1e-9; 1e-6 is "
                        "faster and far below the read noise)")
    p.add_argument("--solve-maxiter", type=int, default=5000, metavar="N",
                   help="line-relaxation sweeps a circuit solve may take before the run stops (default 5000)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="SEED",
                   help="seed of the device model's noise and of random targets (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def main(args):
        # the whole run, writing included: a write that failed or a Ctrl-C
        # while drawing left a new, empty --out behind
        with removing_new_folders(args.out):
            return _main(args)

    def _main(args):
        from . import presets
        from .programming import (MAX_PULSES_LIMIT, TransferConfig, WriteVerify, _check_target, check_program_memory,
                                  diff_read_noise_factor)

        device = presets.TIO2_IDEAL if args.ideal_device else presets.TIO2
        check_r_wire(args.r_wire, gmax=device.g_hi)  # TransferConfig's refusal names r_wl
        if args.max_pulses is not None and not 1 <= args.max_pulses <= MAX_PULSES_LIMIT:
            raise ParameterError(f"--max-pulses {args.max_pulses}: give a pulse budget per device in "
                                 f"1..{MAX_PULSES_LIMIT} (default 40).")
        try:
            cfg = TransferConfig(device=device, scheme=args.scheme, read_scheme=args.read_scheme,
                                 order=args.order, tolerance=args.tolerance, r_wl=args.r_wire,
                                 r_bl=args.r_wire, solve_tol=args.solve_tol, solve_maxiter=args.solve_maxiter,
                                 **({} if args.max_pulses is None else
                                    dict(write_verify=WriteVerify(max_pulses=args.max_pulses))))
        except ParameterError as exc:  # named by the option typed, not the field
            raise ParameterError(_in_flags(str(exc))) from None
        if args.targets is not None:  # "" too: load_targets says there is no such file
            if args.g_range is not None:
                raise ParameterError("--g-range sets random targets; it cannot go with --targets.")
            targets = _check_target(load_targets(args.targets), device, name="--targets")
            provenance = dict(targets=os.path.abspath(args.targets))
        else:
            lo, hi = args.g_range or (device.g_min, device.g_max)
            if not device.g_lo < lo < hi < device.g_hi:
                raise ParameterError(
                    f"--g-range {lo:g}:{hi:g} S reaches outside the device's reachable range "
                    f"({device.g_lo:g}, {device.g_hi:g}) S; keep it inside (the operating window is "
                    f"{device.g_min:g}:{device.g_max:g}).")
            check_program_memory(args.size, hint="give a smaller --size")  # the library's hint named tiles
            targets = np.random.default_rng(args.seed).uniform(lo, hi, args.size)
            provenance = dict(targets="uniform", size=list(args.size), g_range=[lo, hi])
        provenance["device"] = "TIO2_IDEAL" if args.ideal_device else "TIO2"
        outside = np.count_nonzero((targets < device.g_min) | (targets > device.g_max))
        if outside:
            # accepted without a word: a 50 uS target "converged" in one pulse
            # from the 50-100 uS initial states (found by review)
            print(f"xbarsim program: warning: {outside} of {targets.size} targets lie outside the device's operating "
                  f"window, {device.g_min:g}:{device.g_max:g} S, where its model is calibrated; there the "
                  "simulation extrapolates it (pulse response, noise and drift as fitted inside the window).",
                  file=sys.stderr)
        noise = device.read_noise
        whose = f"the device's read noise ({noise:g}, relative std)"
        if noise > 0 and cfg.read_scheme is ReadScheme.HALF_DIFF:
            # two reads, each with the noise of every device on the sensed bit
            # line: 8x that of one device on 32 x 32, and the warning used the
            # one device's
            noise *= diff_read_noise_factor(targets, cfg.write_verify.v_read, device.v0)
            whose = (f"the read noise of a V/2-diff verify read (about {noise:.2g} here: two reads, each with the "
                     f"noise of the {targets.shape[0]} devices on the sensed bit line; {device.read_noise:g} "
                     "for one device)")
        if noise > 0 and args.tolerance < 2 * noise:
            # "most reads will land outside the band" was false down to 0.67
            # sigma: 94 % of a device's reads are inside at 1.9 sigma
            inside = math.erf(args.tolerance / noise / math.sqrt(2.0))
            print(f"xbarsim program: warning: --tolerance {args.tolerance:g} is below twice {whose}: "
                  "a device exactly on its target reads "
                  f"inside the band only {100 * inside:.0f} % of the time, so whether a device converges says "
                  "as much about its last read's noise as about its conductance (and the ramp steps past "
                  f"the band more often); --tolerance {_ceil2(2 * noise)} or more avoids it.",
                  file=sys.stderr)
        try:
            run(args.out, targets, cfg, seed=args.seed, progress=not args.no_progress, provenance=provenance)
        except (ParameterError, ConvergenceError) as exc:  # the array's solve_tol floor, a missed solve
            exc.args = (_in_flags(str(exc)),) + exc.args[1:]
            raise
        return 0

    p.set_defaults(func=main)
