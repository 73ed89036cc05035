"""Surrogate: fit, storage that never runs code, circuit model, and the match with the simulator."""

import pickle

import numpy as np
import pytest
import torch

import xbarsim as xs
from xbarsim.exceptions import ParameterError
from xbarsim.mapping import map_layer
from xbarsim.train.layers import HardwareAwareLinear
from xbarsim.train.surrogate import Surrogate, _batch_from, check, failed_weights, format_check


@pytest.fixture(scope="module")
def cfg():
    return xs.TransferConfig()


@pytest.fixture(scope="module")
def small(cfg):
    """A small fit: enough for shapes and storage, not for accuracy."""
    return Surrogate.fit(cfg, n_transfers=6, seed=3, n_fail_devices=2000)


def test_save_load_round_trip(small, tmp_path, cfg):
    path = small.save(tmp_path / "s.npz")
    back = Surrogate.load(path)
    assert back.matches(cfg)
    for name in ("own_mean", "own_std", "drift_mean_coef", "drift_var_coef", "lrs_q"):
        np.testing.assert_array_equal(getattr(back, name), getattr(small, name))
    assert back.meta == small.meta
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    t = map_layer(np.ones((8, 2)), np.zeros(8), cfg).tiles[0].target
    np.testing.assert_array_equal(small.program_tile(t, rng1)[0], back.program_tile(t, rng2)[0])


class _Boom:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_loading_never_executes_code(small, tmp_path):
    marker = tmp_path / "executed"
    arrays = {k: v for k, v in np.load(small.save(tmp_path / "ok.npz"), allow_pickle=False).items()}
    arrays["own_mean"] = np.array([_Boom(str(marker))], dtype=object)  # a pickled payload
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ParameterError):
        Surrogate.load(bad)
    assert not marker.exists()
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ParameterError):
        Surrogate.load(raw)
    assert not marker.exists()


def test_circuit_model_matches_simulator_mvm(cfg):
    """First-order IR drop + exact sinh against the circuit solve, noise off."""
    rng = np.random.default_rng(0)
    W, b = rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8)
    lm = map_layer(W, b, cfg)
    g = [np.clip(t.target * (1 + 0.02 * rng.standard_normal((3,) + t.shape)), 1e-5, None) for t in lm.tiles]
    x = rng.uniform(0, 1, (16, 2))
    y_sim = xs.mvm_many(_batch_from(lm, cfg, g), x, noise=False)
    sur = _dummy(cfg)  # kappa_wl = kappa_bl = 1: the bare first-order model, nothing fitted
    y_sur = sur.layer_output(lm, g, x, rng, noise=False)
    y0, _, _ = sur._circuit_parts(lm, g, x)  # ideal wires, sinh only
    ir = np.abs(y_sim - y0).max()
    assert ir > 1e-3  # the wires matter ...
    assert np.abs(y_sur - y_sim).max() < 0.05 * ir  # ... and the first-order model gets 95 % of it


def _dummy(cfg):
    import json

    from xbarsim.train.surrogate import _Z_LEVELS, cfg_to_dict

    z = np.zeros_like(_Z_LEVELS)
    return Surrogate(cfg_json=json.dumps(cfg_to_dict(cfg)), bin_edges=np.linspace(1e-4, 5e-4, 3),
                     own_mean=np.zeros(2), own_std=np.full(2, 1e-3), own_at_min=np.array([0.0, 1e-3]),
                     kappa_read=0.0, own_z=z, pulse_coef=np.array([10.0, 10.0, 0.0]), relax_cycles=50.0,
                     drift_mean_coef=np.zeros(12), drift_var_coef=np.zeros(12),
                     drift_z=z, p_lrs=0.0, p_hrs=0.0, lrs_q=z + 5e-4, hrs_q=z + 5e-5)


def test_sample_layer_failures_and_penalty(small, cfg):
    rng = np.random.default_rng(1)
    W, b = rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8)
    s = small.sample_layer(W, b, rng, noise=False, failures=False)
    lm = map_layer(W, b, cfg)
    np.testing.assert_allclose(s.weight, W, atol=1e-12)
    assert not s.failed_weight.any()
    # forced failures: every device stuck -> every weight failed
    stuck = [np.ones(t.shape, np.int8) for t in lm.tiles]
    fw, fb = failed_weights(lm, stuck)
    assert fw.all() and fb.all()
    gs, st = small.sample_tiles(lm, rng, n=4000, noise=False, failures=5.0)
    frac = np.mean(np.concatenate([a.ravel() for a in st]) != 0)
    assert frac == pytest.approx(5 * (small.p_lrs + small.p_hrs), rel=0.15)
    # the penalty is differentiable and reaches the largest weight through the scale
    w = torch.tensor(W, requires_grad=True)
    bb = torch.tensor(b, requires_grad=True)
    p = small.penalty(w, bb)
    p.backward()
    assert torch.isfinite(p) and p > 0
    k = np.unravel_index(np.abs(W).argmax(), W.shape)
    if np.abs(W).max() > np.abs(b).max():
        assert float(w.grad[k]) * np.sign(W[k]) > 0  # shrinking the largest weight lowers the penalty


def test_layer_with_surrogate_trains_and_samples(small):
    layer = HardwareAwareLinear(2, 8, surrogate=small, seed=0, hardware_penalty=1e-3).double()
    x = torch.rand(16, 2, dtype=torch.float64)
    layer.train()
    y = layer(x)
    (y.pow(2).mean() + layer.regularization()).backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    layer.eval()
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))


@pytest.mark.slow
def test_surrogate_matches_simulator(cfg):
    """The issue's acceptance check: bins (mean, std within 10 %), failures (0.1 point), layers (15 %)."""
    sur = Surrogate.fit(cfg, n_transfers=150, seed=0)
    rep = check(sur, n_layers=12, per_layer=50, seed=2024)
    print(format_check(rep))
    assert len(rep["bins"]) >= 18
    assert rep["pass"]["bins"], format_check(rep)
    assert rep["pass"]["bins_error_std"], format_check(rep)
    assert rep["pass"]["failures"], format_check(rep)
    assert rep["pass"]["layers"], format_check(rep)
