"""Per-point accuracy and its bins on hand-made cases with known answers."""

import numpy as np
import pytest

from xbarsim.exceptions import ParameterError
from xbarsim.train.metrics import BINS, accuracy_bins, correct_matrix, per_point_accuracy, summarize


def _column(hits, T):
    """A (T,) column with `hits` True entries."""
    c = np.zeros(T, dtype=bool)
    c[:hits] = True
    return c


def test_per_point_accuracy_hand_made():
    # 20 transfers, 8 points with known hit counts; one point per bin edge case.
    T = 20
    hits = [20, 19, 18, 17, 14, 12, 10, 3]  # 1.0, 0.95, 0.90, 0.85, 0.70, 0.60, 0.50, 0.15
    correct = np.stack([_column(h, T) for h in hits], axis=1)
    acc = per_point_accuracy(correct)
    np.testing.assert_allclose(acc, np.array(hits) / T)
    bins = accuracy_bins(correct)
    assert [b["label"] for b in bins] == [b[0] for b in BINS]
    # >=0.95: 20 and 19 hits (0.95 exactly lands in the top bin)
    # 0.90-0.95: 18; 0.80-0.90: 17; 0.70-0.80: 14; 0.60-0.70: 12; 0.50-0.60: 10; <0.50: 3
    assert [b["count"] for b in bins] == [2, 1, 1, 1, 1, 1, 1]
    assert sum(b["fraction"] for b in bins) == pytest.approx(1.0)
    s = summarize(correct, software_accuracy=0.875)
    assert s["frac_points_ge_95"] == pytest.approx(2 / 8)
    assert s["mean_accuracy"] == pytest.approx(np.sum(hits) / (T * 8))
    assert s["n_transfers"] == T and s["n_points"] == 8
    assert s["software_accuracy"] == 0.875


def test_per_point_accuracy_mean_is_the_mean_of_each_points_fraction_of_transfers():
    """summarize's ``per_point_accuracy_mean`` (results.json): the mean over
    points of each point's fraction of transfers right, equal to
    ``mean_accuracy``. With T != P, dividing the hits by the points instead
    of the transfers passed every test (found by mutation testing)."""
    correct = np.array([[1, 0, 1], [1, 1, 0]], bool)  # T = 2 transfers, P = 3 points
    s = summarize(correct)
    assert s["per_point_accuracy_mean"] == pytest.approx(float(per_point_accuracy(correct).mean()))
    assert s["per_point_accuracy_mean"] == pytest.approx(s["mean_accuracy"]) == pytest.approx(4 / 6)


def test_summarize_takes_software_accuracies_at_both_ends_of_0_1():
    """``software_accuracy``, a fraction in [0, 1]: 0 (a network wrong on
    every point) and 1 are kept, what lies outside is refused. 0 refused
    passed every test (found by mutation testing)."""
    correct = np.ones((2, 3), bool)
    for ok in (0.0, 1.0):
        assert summarize(correct, software_accuracy=ok)["software_accuracy"] == ok
    for bad in (-0.01, 1.01):
        with pytest.raises(ParameterError, match="software_accuracy"):
            summarize(correct, software_accuracy=bad)


def test_edge_is_exact_for_awkward_counts():
    # 0.95 * 2000 = 1900: 1900 hits is >= 0.95 and 1899 is not (no float fuzz).
    T = 2000
    correct = np.stack([_column(1900, T), _column(1899, T)], axis=1)
    assert [b["count"] for b in accuracy_bins(correct)][:2] == [1, 1]


def test_correct_matrix_and_errors():
    pred = np.array([[0, 1, 1], [1, 1, 0]])
    lab = np.array([0, 1, 0])
    c = correct_matrix(pred, lab)
    assert c.tolist() == [[True, True, False], [False, True, True]]
    np.testing.assert_allclose(per_point_accuracy(c), [0.5, 1.0, 0.5])
    with pytest.raises(ParameterError, match=r"correct has shape \(3,\)"):
        per_point_accuracy(np.ones(3))
    with pytest.raises(ParameterError, match="correct must be boolean"):
        per_point_accuracy([[0, 2]])
    with pytest.raises(ParameterError, match=r"predictions \(2, 3\) and labels \(2,\) do not fit"):
        correct_matrix(pred, lab[:2])


def test_plots_draw_every_test_point_when_the_points_and_labels_are_lists(tmp_path, monkeypatch):
    """`plots.plot_uncertainty` selected the points by ``x_test[y_test ==
    cls]``: with the labels as a Python list the comparison was one False,
    and every test point was dropped (found by review); and
    `plot_decision_boundary` refused points as a list with a bare
    TypeError (found by review)."""
    pytest.importorskip("matplotlib")
    from figures import scatter_calls

    from xbarsim.train import plots

    x = np.random.default_rng(0).uniform(0, 1, (12, 2))
    y = [0, 1] * 6
    axis = np.linspace(0, 1, 5)
    drawn = scatter_calls(monkeypatch)
    plots.plot_uncertainty(axis, {"regular": dict(std=np.full((5, 5), 0.1))}, x.tolist(), y, tmp_path / "u.png")
    assert [xs.size for xs, _, _ in drawn] == [6, 6] and (tmp_path / "u.png").is_file()
    drawn.clear()
    panel = dict(p1=np.full((5, 5), 0.5), software=np.linspace(-1, 1, 25).reshape(5, 5),
                 per_point=np.linspace(0.4, 1.0, 12))
    plots.plot_decision_boundary(axis, {"regular": panel}, x.tolist(), y, tmp_path / "d.png")
    assert sum(xs.size for xs, _, _ in drawn) == 12 and (tmp_path / "d.png").is_file()


def test_metrics_take_tensors_and_refuse_scores_and_results_with_a_hint():
    """A tensor that requires grad raised torch's own RuntimeError, an
    MCResult passed whole got "object values", and probabilities passed to
    correct_matrix compared as classes, silently (found by review)."""
    import torch

    from xbarsim.train.evaluate import MCResult

    hits = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    assert summarize(hits)["per_point_accuracy_mean"] == pytest.approx(0.75)
    np.testing.assert_allclose(per_point_accuracy(torch.tensor([[True, False]])), [1.0, 0.0])
    mc = MCResult(np.zeros((2, 2)), np.ones((2, 2), dtype=bool), "statistical")
    with pytest.raises(ParameterError, match=r"pass its \.correct"):
        summarize(mc)
    with pytest.raises(ParameterError, match=r"predictions must be classes 0, 1, \.\.\. \(whole numbers\); threshold "
                                             r"scores first"):
        correct_matrix(np.array([[0.7, 0.2]]), [1, 0])
    with pytest.raises(ParameterError, match=r"labels must be classes 0, 1, \.\.\."):
        correct_matrix(np.array([[1, 0]]), [1, -1])
    assert correct_matrix(torch.tensor([[1, 0]]), torch.tensor([1, 1])).tolist() == [[True, False]]
    with pytest.raises(ParameterError, match="correct has rows of different lengths"):
        summarize([[1, 0], [1]])


def test_masked_hits_and_labels_are_refused_as_masked_values_are_everywhere():
    """Masked hits and labels were read as the values under the mask
    (summarize gave 0.5 where the unmasked hits are all right; accuracy
    scored the masked points), where the rest of the library refuses
    masked entries (found by review). An array with nothing masked is read
    as its data."""
    import torch

    from xbarsim.train.evaluate import check_labels
    from xbarsim.train.training import accuracy

    masked = np.ma.masked_array([[0, 1], [0, 1]], mask=[[1, 0], [1, 0]])
    for f in (summarize, per_point_accuracy, accuracy_bins):
        with pytest.raises(ParameterError, match=r"correct is a masked array with masked entries; fill them first"):
            f(masked)
    assert summarize(np.ma.masked_array([[0, 1], [0, 1]], mask=False))["per_point_accuracy_mean"] == 0.5
    with pytest.raises(ParameterError, match=r"y is a masked array with masked entries"):
        check_labels(np.ma.masked_array([0, 1, 1], mask=[1, 0, 0]), 3)
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with pytest.raises(ParameterError, match=r"y is a masked array with masked entries"):
        accuracy(net, np.zeros((3, 2)), np.ma.masked_array([0, 1, 1], mask=[1, 0, 0]))


@pytest.mark.parametrize("n_panels", [1, 2, 3])
def test_decision_boundary_colour_bar_labels_stay_inside_the_figure_and_apart(tmp_path, monkeypatch, n_panels):
    """The colour bars were placed for two panels: with one, both labels ran
    off the figure's edges and over each other (found by review)."""
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    from xbarsim.train import plots

    figures = []
    savefig = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    rng = np.random.default_rng(0)
    axis = np.linspace(0, 1, 6)
    panel = dict(p1=rng.uniform(0, 1, (6, 6)), software=rng.normal(size=(6, 6)), per_point=rng.uniform(0, 1, 10))
    plots.plot_decision_boundary(axis, {f"net{k}": panel for k in range(n_panels)}, rng.uniform(0, 1, (10, 2)),
                                 np.arange(10) % 2, tmp_path / "d.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[0]
    renderer = FigureCanvasAgg(fig).get_renderer()  # (closed after saving: a bare canvas)
    frame = fig.bbox
    labels = [ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes[n_panels:]]  # the two bars' axes
    assert len(labels) == 2
    for box in labels:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0, (box, frame)
    assert not labels[0].overlaps(labels[1])


def test_accuracy_quantiles_are_over_transfers():
    """``accuracy_quantiles``: 5/50/95 % of the per-transfer accuracies (rows),
    which a 3 x 4 matrix tells apart from the per-point ones (columns): the
    axes swapped passed every test (found by mutation testing)."""
    correct = np.array([[1, 1, 1, 0],   # transfer accuracies 0.75, 1.0, 0.25
                        [1, 1, 1, 1],
                        [0, 0, 1, 0]], bool)
    q = summarize(correct)["accuracy_quantiles"]
    per_transfer = np.array([0.75, 1.0, 0.25])
    assert q == {"q05": pytest.approx(np.quantile(per_transfer, 0.05)),
                 "q50": 0.75, "q95": pytest.approx(np.quantile(per_transfer, 0.95))}
    assert q["q05"] == pytest.approx(0.3) and q["q95"] == pytest.approx(0.975)  # numpy's linear rule, by hand


# Found by mutation testing of xbarsim/train/plots.py: each test below fails on a
# mutant that every other test passed.

def test_grid_points_run_along_x_within_a_row_as_the_maps_draw_them():
    """`grid_points`' values reshaped to (n, n) are drawn by pcolormesh(axis,
    axis, C), whose C[i, j] sits at x = axis[j], y = axis[i]: point i * n + j
    must be (axis[j], axis[i]). Swapped, every map of the moons run was
    its own transpose, mirrored across the diagonal (found by mutation
    testing)."""
    from xbarsim.train.plots import grid_points

    pts, axis = grid_points(4, lo=0.0, hi=3.0)
    assert pts.shape == (16, 2) and axis.tolist() == [0.0, 1.0, 2.0, 3.0]
    square = pts.reshape(4, 4, 2)
    for i in range(4):
        for j in range(4):
            assert square[i, j].tolist() == [axis[j], axis[i]]


def test_the_cdf_is_the_fraction_of_points_at_or_below_each_accuracy(tmp_path, monkeypatch):
    """The empirical CDF steps (where="post") to the fraction of test points
    whose accuracy is at most that value, reaching 1 at the largest: off by
    one it ended at (P - 1) / P (found by mutation testing)."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from xbarsim.train import plots

    steps = {}
    step = matplotlib.axes.Axes.step

    def spy(self, x, y, *args, **kwargs):
        steps[kwargs.get("label")] = (np.asarray(x), np.asarray(y))
        return step(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "step", spy)
    acc = np.array([1.0, 0.5, 0.9, 1.0, 0.75])
    plots.plot_cdf({"regular, circuit": acc}, tmp_path / "c.png", 10)
    x, y = steps["regular, circuit"]
    for a in np.unique(acc):
        assert y[np.flatnonzero(x == a)[-1]] == pytest.approx(np.mean(acc <= a)), a
    assert y[0] == pytest.approx(1 / acc.size) and y[-1] == 1.0


def test_points_right_in_exactly_half_the_transfers_are_magenta(tmp_path, monkeypatch):
    """The decision-boundary figure draws points right in at most half the
    transfers in the colour bar's "under" colour (magenta), and the bar's
    label counts them: a point at exactly 0.5 drew at the colour scale's
    bottom (viridis), uncounted, with "<" for "<=" (found by mutation
    testing)."""
    pytest.importorskip("matplotlib")
    from figures import closed_figures, scatter_calls

    from xbarsim.train import plots

    drawn, figures = scatter_calls(monkeypatch), closed_figures(monkeypatch)
    axis = np.linspace(0, 1, 4)
    per_point = np.array([0.5, 0.5, 0.51, 1.0])  # two at exactly 0.5
    panel = dict(p1=np.full((4, 4), 0.5), software=np.linspace(-1, 1, 16).reshape(4, 4), per_point=per_point)
    plots.plot_decision_boundary(axis, {"regular": panel}, np.random.default_rng(0).uniform(0, 1, (4, 2)),
                                 np.array([0, 1, 0, 1]), tmp_path / "d.png")
    colours = np.concatenate([np.asarray(kw["c"], float) for _, _, kw in drawn])
    vmin = drawn[0][2]["vmin"]
    assert np.sum(colours < vmin) == 2 and np.sum(colours >= vmin) == 2
    labels = " ".join(ax.get_xlabel() for ax in figures[0].axes)
    assert "magenta: 0.5 or below, 2 such points)" in labels
    # two panels: counted panel by panel (a total over both read as one panel's)
    other = dict(panel, per_point=np.array([0.2, 0.9, 1.0, 1.0]))
    plots.plot_decision_boundary(axis, {"regular": panel, "hardware_aware": other},
                                 np.random.default_rng(0).uniform(0, 1, (4, 2)), np.array([0, 1, 0, 1]),
                                 tmp_path / "d2.png")
    labels = " ".join(ax.get_xlabel() for ax in figures[1].axes)
    assert "magenta: 0.5 or below, 2 + 1 = 3 such points, panel by panel)" in labels


def test_uncertainty_panels_share_the_largest_std_as_their_scale(tmp_path, monkeypatch):
    """Both networks' uncertainty maps are drawn on one colour scale, from 0
    to the largest std of either, so they compare by colour: the smallest
    panel maximum clipped the other panel (found by mutation testing)."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from xbarsim.train import plots

    scales = []
    mesh = matplotlib.axes.Axes.pcolormesh

    def spy(self, *args, **kwargs):
        if "vmax" in kwargs:  # the maps (the colour bars draw meshes of their own)
            scales.append((kwargs["vmin"], kwargs["vmax"]))
        return mesh(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "pcolormesh", spy)
    axis = np.linspace(0, 1, 3)
    panels = {"regular": dict(std=np.full((3, 3), 0.3)), "hardware_aware": dict(std=np.full((3, 3), 0.1))}
    plots.plot_uncertainty(axis, panels, np.zeros((2, 2)), np.array([0, 1]), tmp_path / "u.png")
    assert scales == [(0, 0.3), (0, 0.3)]


def test_uncertainty_panels_share_one_colour_bar_right_of_them_all(tmp_path, monkeypatch):
    """The panels share one scale, so one colour bar serves them, at the
    right of the last panel: each panel had its own bar, the same one
    repeated (found by the figures review). Its label must fit the
    figure."""
    pytest.importorskip("matplotlib")
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from xbarsim.train import plots

    bars = []
    colorbar = matplotlib.figure.Figure.colorbar

    def spy(self, mappable, *args, **kwargs):
        bar = colorbar(self, mappable, *args, **kwargs)
        bars.append((bar, [ax.get_position() for ax in self.axes if ax is not bar.ax], self))
        return bar

    monkeypatch.setattr(matplotlib.figure.Figure, "colorbar", spy)
    axis = np.linspace(0, 1, 3)
    for n in (1, 2):
        bars.clear()
        panels = dict(list({"regular": dict(std=np.full((3, 3), 0.3)),
                            "hardware_aware": dict(std=np.full((3, 3), 0.1))}.items())[:n])
        plots.plot_uncertainty(axis, panels, np.zeros((2, 2)), np.array([0, 1]), tmp_path / "u.png", note="a note")
        assert len(bars) == 1, n
        bar, boxes, fig = bars[0]
        assert len(boxes) == n
        assert all(bar.ax.get_position().x0 > box.x1 for box in boxes)
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        label = bar.ax.yaxis.label.get_window_extent(renderer)
        assert label.x1 <= fig.bbox.x1, (label.x1, fig.bbox.x1)


def test_the_cdf_marks_the_headline_threshold_at_0_95(tmp_path, monkeypatch):
    """The CDF's vertical line is the headline's 0.95 (points right in >= 95 %
    of transfers), as its legend says."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from xbarsim.train import plots

    lines = []
    axvline = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, x=0, *a, **k: lines.append((x, k.get("label"))) or axvline(self, x, *a, **k))
    plots.plot_cdf({"hardware-aware, circuit": np.array([0.9, 1.0])}, tmp_path / "c.png", 4)
    assert len(lines) == 1 and lines[0][0] == 0.95 and "95 %" in lines[0][1]


# Found by mutation testing of xbarsim/train/plots.py (second audit): each test
# below fails on a mutant that every other test passed. They read the drawn
# artists of the figure the plot closed (tests/figures.py).

def test_the_cdf_is_a_right_continuous_step_framed_past_1_with_the_note_in_its_title(tmp_path, monkeypatch):
    """The CDF jumps at each accuracy and holds to the next (where="post";
    "pre" drew each jump one point early), its axes run a little past 1 (at
    1.0 the last jump, where most hardware-aware points sit, ran along the
    frame, unseen), and the note is appended to the title as documented."""
    pytest.importorskip("matplotlib")
    from figures import closed_figures

    from xbarsim.train import plots

    figs = closed_figures(monkeypatch)
    plots.plot_cdf({"regular, circuit": np.array([1.0, 0.5])}, tmp_path / "c.png", 10, note=" (quick run)")
    (fig,) = figs
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "regular, circuit"]
    assert line.get_drawstyle() == "steps-post"
    assert line.get_xdata().tolist() == [0.5, 1.0] and line.get_ydata().tolist() == [0.5, 1.0]
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 1.0 and ax.get_ylim()[1] > 1.0
    assert ax.get_title() == "CDF of per-point accuracy over 10 transfers (quick run)"


def test_decision_boundary_panels_draw_their_own_grid_unflipped_on_the_fixed_0_1_scale(tmp_path, monkeypatch):
    """Each panel draws its own fraction of class-1 predictions as given
    (``p1[i, j]`` at x = axis[j], y = axis[i], as `grid_points` lays them
    out; transposed it mirrored the map), on the one 0-1 scale its shared
    colour bar shows (auto-ranged, a panel of fractions in 0.2-0.6 drew 0.6
    as 1), with the software boundary at the logit's zero, under its own
    network's name."""
    pytest.importorskip("matplotlib")
    from matplotlib.collections import QuadMesh
    from matplotlib.contour import ContourSet

    from figures import closed_figures

    from xbarsim.train import plots

    figs = closed_figures(monkeypatch)
    axis = np.linspace(0, 1, 4)
    regular = dict(p1=np.linspace(0.2, 0.6, 16).reshape(4, 4), software=np.tile(axis - 0.4, (4, 1)),
                   per_point=np.full(4, 0.9))
    aware = dict(regular, p1=np.linspace(0.3, 0.1, 16).reshape(4, 4))
    plots.plot_decision_boundary(axis, {"regular": regular, "hardware_aware": aware},
                                 np.random.default_rng(0).uniform(0, 1, (4, 2)), np.array([0, 1, 0, 1]),
                                 tmp_path / "d.png")
    (fig,) = figs
    for ax, d, name in zip(fig.axes[:2], (regular, aware), ("regular", "hardware-aware")):
        assert ax.get_title().split("\n")[0] == name
        (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
        np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(4, 4), d["p1"])
        assert mesh.get_clim() == (0, 1)
        (contour,) = [c for c in ax.collections if isinstance(c, ContourSet)]
        assert list(contour.levels) == [0.0]


def test_decision_boundary_points_keep_their_class_shape_and_own_accuracy(tmp_path, monkeypatch):
    """Test points are drawn by class, class 0 as circles and class 1 as
    triangles as the legend says, each coloured by its own per-point
    accuracy; labels given as floats 0.0 / 1.0 (which the refusal's message
    counts as two-class) are drawn, not refused."""
    pytest.importorskip("matplotlib")
    from figures import scatter_calls

    from xbarsim.train import plots

    calls = scatter_calls(monkeypatch)
    x = np.random.default_rng(0).uniform(0, 1, (6, 2))
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    per_point = np.array([0.6, 0.7, 0.8, 0.9, 1.0, 0.55])
    axis = np.linspace(0, 1, 4)
    panel = dict(p1=np.full((4, 4), 0.5), software=np.linspace(-1, 1, 16).reshape(4, 4), per_point=per_point)
    plots.plot_decision_boundary(axis, {"regular": panel}, x, y, tmp_path / "d.png")
    drawn = {kw["label"]: (kw["marker"], xs, np.asarray(kw["c"], float)) for xs, _, kw in calls}
    assert drawn.keys() == {"class 0", "class 1"}
    for cls, marker in ((0, "o"), (1, "^")):
        m, xs, c = drawn[f"class {cls}"]
        assert m == marker
        np.testing.assert_array_equal(xs, x[y == cls, 0])
        np.testing.assert_array_equal(c, per_point[y == cls])


def test_decision_boundary_counts_no_magenta_point_in_the_plural_and_draws_its_note(tmp_path, monkeypatch):
    """With no point right in at most half the transfers the colour bar's
    label reads "0 such points" (not "0 such point"), and the note is drawn
    at the bottom of the figure."""
    pytest.importorskip("matplotlib")
    from figures import closed_figures

    from xbarsim.train import plots

    figs = closed_figures(monkeypatch)
    axis = np.linspace(0, 1, 4)
    panel = dict(p1=np.full((4, 4), 0.5), software=np.linspace(-1, 1, 16).reshape(4, 4),
                 per_point=np.array([0.9, 1.0, 0.8, 1.0]))
    plots.plot_decision_boundary(axis, {"regular": panel}, np.random.default_rng(0).uniform(0, 1, (4, 2)),
                                 np.array([0, 1, 0, 1]), tmp_path / "d.png", note="grid by the circuit")
    (fig,) = figs
    labels = " ".join(ax.get_xlabel() for ax in fig.axes)
    assert "(magenta: 0.5 or below, 0 such points)" in labels
    assert [t.get_text() for t in fig.texts] == ["grid by the circuit"]


def test_uncertainty_draws_each_class_at_its_own_points(tmp_path, monkeypatch):
    """The uncertainty map's test points are split by class, each drawn
    under its own class's label (white circles for class 0, cyan triangles
    for class 1): selected with the other class's mask they swapped
    colours against the legend."""
    pytest.importorskip("matplotlib")
    from figures import scatter_calls

    from xbarsim.train import plots

    calls = scatter_calls(monkeypatch)
    x = np.random.default_rng(1).uniform(0, 1, (5, 2))
    y = np.array([0, 1, 1, 0, 1])
    plots.plot_uncertainty(np.linspace(0, 1, 3), {"regular": dict(std=np.full((3, 3), 0.1))}, x, y,
                           tmp_path / "u.png")
    drawn = {kw["label"]: (kw["c"], kw["marker"], xs, ys) for xs, ys, kw in calls}
    for cls, colour, marker in ((0, "w", "o"), (1, "tab:cyan", "^")):
        c, m, xs, ys = drawn[f"test points, class {cls}"]
        assert (c, m) == (colour, marker)
        np.testing.assert_array_equal(np.stack([xs, ys], axis=1), x[y == cls])


def test_an_uncertainty_map_of_no_spread_is_drawn_at_the_bottom_of_a_0_1_scale(tmp_path, monkeypatch):
    """Transfers that all agree (std 0 everywhere, as ideal devices give)
    draw the map at its scale's bottom on a 0-1 bar: on a 0-0 scale the
    colour bar widened it to -0.1...0.1, drew zero spread in the middle
    colour and labelled negative spreads."""
    pytest.importorskip("matplotlib")
    from matplotlib.collections import QuadMesh

    from figures import closed_figures

    from xbarsim.train import plots

    figs = closed_figures(monkeypatch)
    plots.plot_uncertainty(np.linspace(0, 1, 3), {"regular": dict(std=np.zeros((3, 3)))}, np.zeros((2, 2)),
                           np.array([0, 1]), tmp_path / "u.png")
    (fig,) = figs
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    assert mesh.get_clim() == (0, 1.0)
    assert fig.axes[-1].get_ylim() == (0, 1.0)  # the colour bar


def test_the_metrics_refuse_hits_of_no_transfer():
    """``correct`` is (n_transfers, n_points) "with both >= 1": hits of no
    transfer are refused, not scored as 0 / 0 per-point accuracies (NaN)
    or as bins that count every point (zero rows accepted passed the training
    tests; found by mutation testing)."""
    for f in (per_point_accuracy, accuracy_bins, summarize):
        with pytest.raises(ParameterError, match=r"shape \(0, 3\); expected \(n_transfers, n_points\) with both >= 1"):
            f(np.zeros((0, 3), dtype=bool))


def test_uncertainty_panels_are_titled_by_their_networks_names_as_the_decision_boundarys(tmp_path, monkeypatch):
    """The uncertainty map titles each panel with its network's name as the
    decision-boundary figure does ("hardware-aware"), not the panel's key
    "hardware_aware" (found by mutation testing)."""
    pytest.importorskip("matplotlib")
    from figures import closed_figures

    from xbarsim.train import plots

    figs = closed_figures(monkeypatch)
    panels = {"regular": dict(std=np.full((3, 3), 0.1)), "hardware_aware": dict(std=np.full((3, 3), 0.2))}
    plots.plot_uncertainty(np.linspace(0, 1, 3), panels, np.zeros((2, 2)), np.array([0, 1]), tmp_path / "u.png")
    (fig,) = figs
    assert [ax.get_title() for ax in fig.axes[:2]] == ["regular: spread of the prediction over transfers",
                                                      "hardware-aware: spread of the prediction over transfers"]
