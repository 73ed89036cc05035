"""Networks of several outputs: every evaluation classes a point by its
largest logit, as the metrics do classes other than 0 and 1."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import xbarsim as xs
from xbarsim.exceptions import ParameterError
from xbarsim.train import (StatisticalModel, Surrogate, convert, evaluate_circuit, evaluate_statistical,
                           evaluate_surrogate, network_layers, sampling)
from xbarsim.train.evaluate import _software_outputs
from xbarsim.train.metrics import correct_matrix


def _three_classes(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 6), nn.Sigmoid(), nn.Linear(6, 3)).double()
    x = np.random.default_rng(seed).uniform(0, 1, (12, 2))
    soft = _software_outputs(network_layers(net), x)
    y = np.argmax(soft, axis=1)
    y[:3] = (y[:3] + 1) % 3  # some points wrong in software too
    return net, x, y, soft


@pytest.fixture(scope="module")
def sur():
    return Surrogate.fit(xs.TransferConfig(), n_transfers=3, seed=0, n_fail_devices=200)


def test_statistical_evaluation_without_errors_is_the_software_argmax():
    """Every measured error off: each transfer's logits are the network's
    own, (n, points, 3), and a point is right where its largest logit is
    its label (the evaluations refused networks of several outputs)."""
    net, x, y, soft = _three_classes()
    exact = StatisticalModel(a=0.0, b=0.0, offset_mean=0.0, offset_std=0.0, p_stuck_lrs=0.0, p_stuck_hrs=0.0,
                             drift=False)
    res = evaluate_statistical(net, xs.TransferConfig(), x, y, n=3, stat=exact)
    assert res.logits.shape == (3, 12, 3)
    np.testing.assert_allclose(res.logits, np.broadcast_to(soft, (3, 12, 3)), rtol=1e-12, atol=1e-12)
    want = np.argmax(soft, axis=1) == y
    assert 0 < want.sum() < 12
    np.testing.assert_array_equal(res.correct, np.broadcast_to(want, (3, 12)))


def test_circuit_evaluation_of_several_outputs_on_an_ideal_array():
    """The circuit route: with an ideal device on ideal wires the logits are
    the network's within the write-verify band, and the hits are their
    argmax against the labels, transfer by transfer."""
    net, x, y, soft = _three_classes(1)
    cfg = xs.TransferConfig(device=xs.presets.TIO2.ideal().linear(), r_wl=0.0, r_bl=0.0, tolerance=0.01)
    res, _ = evaluate_circuit(net, cfg, x, y, n=2, seed=3, progress=False)
    assert res.logits.shape == (2, 12, 3)
    scale = np.abs(soft).max()
    assert np.abs(res.logits - soft[None]).max() <= 0.05 * scale
    np.testing.assert_array_equal(res.correct, np.argmax(res.logits, axis=2) == y[None, :])


def test_surrogate_evaluation_of_several_outputs(sur):
    net, x, y, soft = _three_classes(2)
    res = evaluate_surrogate(net, sur, x, y, n=4, seed=1)
    assert res.logits.shape == (4, 12, 3)
    np.testing.assert_array_equal(res.correct, np.argmax(res.logits, axis=2) == y[None, :])
    assert not np.array_equal(res.logits[0], res.logits[1])  # transfers differ
    # a converted copy's sampled forwards draw transfers too (the route the evaluations pointed to before)
    hw = convert(net, sur)
    hw.eval()
    with sampling(hw):
        assert hw(torch.as_tensor(x)).shape == (12, 3)


def test_labels_must_name_one_of_the_outputs():
    net, x, _, _ = _three_classes()
    y = np.arange(12) % 3
    for bad in (np.where(y == 2, 3, y), y - 1, y + 0.5):
        with pytest.raises(ParameterError, match=r"y must hold labels 0 to 2, one class per output"):
            evaluate_statistical(net, xs.TransferConfig(), x, bad, n=2)
    with pytest.raises(ParameterError, match=r"y must hold labels 0 to 2"):
        evaluate_statistical(net, xs.TransferConfig(), x, np.array(["a"] * 12), n=2)
    one = nn.Sequential(nn.Linear(2, 6), nn.Sigmoid(), nn.Linear(6, 1)).double()
    with pytest.raises(ParameterError, match=r"y must hold labels 0 and 1 \(class 1 where the logit is > 0\)"):
        evaluate_statistical(one, xs.TransferConfig(), x, y, n=2)  # a 2 for a one-output network


def test_correct_matrix_takes_any_class_labels():
    assert correct_matrix([[2, 0, 1], [2, 2, 1]], [2, 0, 0]).tolist() == [[True, True, False], [True, False, False]]
    with pytest.raises(ParameterError, match="predictions must be classes"):
        correct_matrix([[0.7, 0.0, 1.0]], [1, 0, 1])
    with pytest.raises(ParameterError, match="labels must be classes"):
        correct_matrix([[1, 0, 1]], [1, -1, 1])


def test_a_final_softmax_is_refused_with_the_way_round_it():
    net, x, y, _ = _three_classes()
    with pytest.raises(ParameterError, match=r"holds Softmax\..*evaluate the network without it \(for example "
                                             r"model\[:-1\]\)"):
        evaluate_statistical(nn.Sequential(*net, nn.Softmax(dim=1)), xs.TransferConfig(), x, y, n=2)
    assert evaluate_statistical(net, xs.TransferConfig(), x, y, n=2).logits.shape == (2, 12, 3)
    inner = nn.Sequential(nn.Linear(2, 6), nn.Softmax(dim=1), nn.Linear(6, 3)).double()
    with pytest.raises(ParameterError, match="holds Softmax") as info:  # not last: model[:-1] would not do
        evaluate_statistical(inner, xs.TransferConfig(), x, y, n=2)
    assert "model[:-1]" not in str(info.value)


def test_the_helpers_around_the_evaluations_keep_every_output(sur):
    """software_logits and grid_outputs_from_batches returned output 0's
    logits alone for a network of several outputs, and training.accuracy
    blamed the labels or raised NumPy's broadcast error (found by review)."""
    from xbarsim.train.evaluate import grid_outputs_from_batches, software_logits
    from xbarsim.train.training import accuracy

    net, x, y, soft = _three_classes()
    np.testing.assert_array_equal(software_logits(network_layers(net), x), soft)
    assert accuracy(net, x, y) == float(np.mean(np.argmax(soft, axis=1) == y))
    res, kept = evaluate_circuit(net, xs.TransferConfig(), x, y, n=3, seed=4, progress=False, keep_conductances=2)
    grid = np.random.default_rng(5).uniform(0, 1, (7, 2))
    assert grid_outputs_from_batches(sur, kept, grid).shape == (2, 7, 3)
    one = nn.Sequential(nn.Linear(2, 6), nn.Sigmoid(), nn.Linear(6, 1)).double()
    assert software_logits(network_layers(one), x).shape == (12,)


def test_the_two_class_figures_refuse_results_of_several_classes(tmp_path):
    """plot_decision_boundary drew output 0's fraction as "class 1" and
    dropped the points of class 2 without a word (found by review)."""
    from xbarsim.train.plots import plot_decision_boundary, plot_uncertainty

    axes = np.linspace(0, 1, 5)
    x = np.random.default_rng(0).uniform(0, 1, (6, 2))
    panel = dict(p1=np.zeros((5, 5)), software=np.zeros((5, 5)), per_point=np.ones(6), std=np.zeros((5, 5)))
    with pytest.raises(ParameterError, match=r"two-class results .* y_test holds other labels \(2\)"):
        plot_decision_boundary(axes, {"regular": panel}, x, np.array([0, 1, 2, 0, 1, 2]), tmp_path / "a.png")
    with pytest.raises(ParameterError, match=r"panel 'regular''s 'std' has shape \(5, 5, 3\)"):
        plot_uncertainty(axes, {"regular": dict(panel, std=np.zeros((5, 5, 3)))}, x, np.array([0, 1] * 3),
                         tmp_path / "b.png")
    # the software logits too, a grid per output: refused by name, not left to matplotlib's contour
    # (found by mutation testing: only p1 was checked)
    with pytest.raises(ParameterError, match=r"panel 'regular''s 'software' has shape \(5, 5, 3\)"):
        plot_decision_boundary(axes, {"regular": dict(panel, software=np.zeros((5, 5, 3)))}, x,
                               np.array([0, 1] * 3), tmp_path / "d.png")
    plot_decision_boundary(axes, {"regular": panel}, x, np.array([0, 1] * 3), tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_evaluate_surrogate_warns_of_layer_shapes_past_its_fit(sur):
    """convert warned of layers whose tiles outgrow the surrogate's fitted
    ones; evaluate_surrogate scored a plain network on those extrapolated
    models without a word (found by review)."""
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Linear(16, 4)).double()
    x = np.random.default_rng(1).uniform(0, 1, (5, 2))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        evaluate_surrogate(wide, sur, x, np.array([0, 1, 2, 3, 0]), n=2)
    said = [str(w.message) for w in rec if "of the evaluated network maps to tiles" in str(w.message)]
    assert [m.split(" of the")[0] for m in said] == ["layer 0 (16 x 2)", "layer 1 (4 x 16)"], said
    assert all(w.filename == __file__ for w in rec)


def test_a_softmax_in_forward_is_named():
    """A forward ending in torch.softmax was refused as a missing sigmoid or
    layers out of order; an nn.Softmax module got the way round it (found
    by review)."""
    net, x, y, _ = _three_classes()

    class Soft(nn.Module):
        def __init__(self, log):
            super().__init__()
            self.body, self.log = net, log

        def forward(self, t):
            return (torch.log_softmax if self.log else torch.softmax)(self.body(t), dim=1)

    for log in (False, True):
        with pytest.raises(ParameterError, match=r"returns a softmax \(or log-softmax\) of the chain .*\(drop the "
                                                 r"softmax\)"):
            evaluate_statistical(Soft(log), xs.TransferConfig(), x, y, n=2)
