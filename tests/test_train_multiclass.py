"""Networks of several outputs: every evaluation classes a point by its
largest logit, as the metrics do classes other than 0 and 1."""

from __future__ import annotations

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
