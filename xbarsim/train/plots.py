"""Figures of the half-moons experiment (matplotlib, Agg backend)."""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError

__all__ = ["plot_cdf", "plot_decision_boundary", "plot_uncertainty", "grid_points"]

_NAMES = {"regular": "regular", "hardware_aware": "hardware-aware"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _wrap(note, fig):
    """``note`` in lines that fit the figure's width at 8 pt (it ran off both
    edges of a two-panel figure)."""
    import textwrap

    return textwrap.fill(note, width=int(fig.get_figwidth() * 15))


def _check_binary(what, y_test, panels, keys):
    """Refuse what these two-class figures would draw wrongly: labels
    other than 0 and 1 (their points were dropped), and a panel grid with
    an axis per output (the figures read class 1's fraction and the logit's
    zero contour)."""
    y = np.asarray(y_test)
    if y.dtype.kind not in "biuf" or not np.all((y == 0) | (y == 1)):
        other = sorted({str(v) for v in np.unique(y).tolist()} - {"0", "1", "0.0", "1.0", "True", "False"})
        raise ParameterError(
            f"{what} draws two-class results (the half-moons figures: the fraction of transfers predicting "
            f"class 1); y_test holds other labels ({', '.join(other[:5])}). For a network of several outputs, "
            "plot per class yourself, e.g. the fraction of transfers whose largest logit is each class.")
    for name, d in panels.items():
        for key in keys:
            if np.ndim(d[key]) != 2:
                raise ParameterError(
                    f"{what}: panel {name!r}'s {key!r} has shape {np.shape(d[key])}; expected one 2-D grid (a "
                    "network of several outputs gives a grid per output, which this two-class figure does not "
                    "draw).")


def grid_points(n=200, lo=-0.05, hi=1.05):
    """An n x n grid over the scaled feature square: (n*n, 2) points and the axes."""
    a = np.linspace(lo, hi, n)
    xx, yy = np.meshgrid(a, a)
    return np.stack([xx.ravel(), yy.ravel()], axis=1), a


def plot_cdf(per_point, path, n_transfers, note=""):
    """Empirical CDF of per-point accuracy.

    ``per_point``: dict ``label -> (P,) per-point accuracies`` (for example
    ``"hardware-aware, circuit"``); ``note``: appended to the title (a quick
    run says so).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = ["-", "--", ":", "-."]
    colors = {"regular": "tab:red", "hardware": "tab:blue"}
    for k, (label, acc) in enumerate(per_point.items()):
        a = np.sort(np.asarray(acc))
        y = np.arange(1, a.size + 1) / a.size
        color = colors["hardware"] if label.startswith("hardware") else colors["regular"]
        ls = styles[0] if "circuit" in label else styles[1]
        ax.step(a, y, where="post", color=color, ls=ls, label=label)
    ax.axvline(0.95, color="0.4", lw=0.8, label="0.95 (headline: points right in ≥ 95 % of transfers)")
    ax.set_xlabel("per-point accuracy (fraction of transfers classifying the point right)")
    ax.set_ylabel("fraction of test points with per-point accuracy ≤ x")
    ax.set_title(f"CDF of per-point accuracy over {n_transfers} transfers{note}")
    # a little past 1: most hardware-aware points sit at accuracy 1, and the
    # CDF's last jump there ran along the frame, unseen
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_decision_boundary(axes_1d, panels, x_test, y_test, path, note=""):
    """Per network: fraction of transfers predicting class 1 on the grid.

    ``panels``: dict ``name -> dict(p1=(n, n) fraction, software=(n, n)
    software logits, per_point=(P,) accuracies)``. Test points are drawn
    by class (marker shape) and per-point accuracy (colour); those right
    in at most half the transfers are magenta, the colour bar's arrow,
    which no accuracy or background shares (they were the colour of 0.5,
    then viridis' dark bottom, unseen on the dark background).
    ``note``: a line at the bottom (how the grid was computed).
    """
    from matplotlib.lines import Line2D

    _check_binary("plot_decision_boundary", y_test, panels, ("p1", "software"))
    plt = _plt()
    one = len(panels) == 1
    # one panel: the colour bars one above the other, on a wider figure (side
    # by side, sized for two panels, their labels ran off the figure and
    # over each other)
    fig, axs = plt.subplots(1, len(panels), figsize=(7.6, 7.6) if one else (5.2 * len(panels), 6.8),
                            squeeze=False)
    im = sc = None
    # points mostly misclassified in a colour no background or accuracy has
    # (viridis' own bottom, dark purple, vanished on the dark background)
    acc_cmap = plt.get_cmap("viridis").with_extremes(under="magenta")
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)  # a list of points, as plot_uncertainty takes
    for ax, (name, d) in zip(axs[0], panels.items()):
        im = ax.pcolormesh(axes_1d, axes_1d, d["p1"], cmap="RdBu_r", vmin=0, vmax=1, shading="auto")
        ax.contour(axes_1d, axes_1d, d["software"], levels=[0.0], colors="k", linewidths=1.2)
        acc = np.asarray(d["per_point"], dtype=float)
        acc = np.where(acc <= 0.5, 0.0, acc)  # right in at most half the transfers: the magenta "under" colour
        for cls, marker in ((0, "o"), (1, "^")):  # the class by shape
            on = y_test == cls
            sc = ax.scatter(x_test[on, 0], x_test[on, 1], c=acc[on], cmap=acc_cmap, vmin=0.5, vmax=1.0,
                            s=22, marker=marker, edgecolors="k", linewidths=0.4, label=f"class {cls}")
        ax.set_title(f"{_NAMES.get(name, name)}\n(black line: software boundary)")
        ax.set_xlabel("x1 (scaled)")
        ax.set_ylabel("x2 (scaled)")
        ax.set_aspect("equal")
        ax.legend(handles=[Line2D([], [], ls="", marker=m, mfc="0.7", mec="k", label=f"class {c}")
                           for c, m in ((0, "o"), (1, "^"))],
                  loc="upper right", fontsize=7, facecolor="0.85", framealpha=0.9)
    if one:
        fig.tight_layout(rect=(0, 0.3, 1, 0.98))
        cax1 = fig.add_axes([0.1, 0.265, 0.8, 0.02])
        cax2 = fig.add_axes([0.1, 0.16, 0.8, 0.02])
    else:
        fig.tight_layout(rect=(0, 0.2, 1, 0.98))
        cax1 = fig.add_axes([0.08, 0.15, 0.38, 0.025])
        cax2 = fig.add_axes([0.56, 0.15, 0.38, 0.025])
    fig.colorbar(im, cax=cax1, orientation="horizontal",
                 label="background, every panel: fraction of transfers predicting class 1")
    below = [int(np.sum(np.asarray(d["per_point"]) <= 0.5)) for d in panels.values()]
    n = sum(below)
    counts = (f"{n} such point{'s' if n != 1 else ''}" if len(below) == 1
              else f"{' + '.join(map(str, below))} = {n} such points, panel by panel")
    fig.colorbar(sc, cax=cax2, orientation="horizontal", extend="min",
                 label="test points, every panel: per-point accuracy over the transfers\n"
                       f"(magenta: 0.5 or below, {counts})")
    if note:
        fig.text(0.5, 0.01, _wrap(note, fig), ha="center", va="bottom", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_uncertainty(axes_1d, panels, x_test, y_test, path, note=""):
    """Per network: std over transfers of the output probability on the grid."""
    _check_binary("plot_uncertainty", y_test, panels, ("std",))
    plt = _plt()
    fig, axs = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.6), squeeze=False)
    vmax = max(float(np.max(d["std"])) for d in panels.values()) or 1.0
    # as arrays: labels given as a list compared as a whole to each class
    # (False), and every test point was dropped
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    for ax, (name, d) in zip(axs[0], panels.items()):
        im = ax.pcolormesh(axes_1d, axes_1d, d["std"], cmap="magma", vmin=0, vmax=vmax, shading="auto")
        for cls, color, marker in ((0, "w", "o"), (1, "tab:cyan", "^")):
            pts = x_test[y_test == cls]
            ax.scatter(pts[:, 0], pts[:, 1], c=color, s=10, marker=marker, edgecolors="k", linewidths=0.3,
                       label=f"test points, class {cls}")
        ax.set_title(f"{_NAMES.get(name, name)}: spread of the prediction over transfers")
        ax.set_xlabel("x1 (scaled)")
        ax.set_ylabel("x2 (scaled)")
        ax.legend(loc="best", fontsize=7, facecolor="0.5", framealpha=0.8, markerscale=2)
    if note:
        note = _wrap(note, fig)
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8)
    # one colour bar at the right for all panels: they share the scale (0 to
    # the largest spread of any), and a bar beside each repeated it
    right = 1 - 1.2 / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0.035 * (note.count("\n") + 1) if note else 0, right, 1))
    box = axs[0][-1].get_position()
    cax = fig.add_axes((right + 0.1 / fig.get_figwidth(), box.y0, 0.12 / fig.get_figwidth(), box.height))
    fig.colorbar(im, cax=cax, label="std of predicted P(class 1) over transfers")
    fig.savefig(path, dpi=110)
    plt.close(fig)
