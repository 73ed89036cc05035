"""Surrogate: fit, storage that never runs code, circuit model, and the match with the simulator."""

import dataclasses
import json
import pickle

import warnings

import numpy as np
import pytest
import torch

import xbarsim as xs
from xbarsim.exceptions import ParameterError
from xbarsim.mapping import map_layer
from xbarsim.train.layers import HardwareAwareLinear
from xbarsim.train.surrogate import Surrogate, _batch_from, cfg_to_dict, check, failed_weights, format_check


@pytest.fixture(scope="module")
def cfg():
    return xs.TransferConfig()


@pytest.fixture(scope="module")
def small(cfg):
    """A small fit: enough for shapes and storage, not for accuracy."""
    return Surrogate.fit(cfg, n_transfers=6, seed=3, n_fail_devices=2000)


@pytest.fixture(scope="module")
def asym():
    """A small fit of a device whose LRS and HRS failure rates differ (the
    preset's are both 0.5 %), and whose fitted drift variance grows with the
    target (``small``'s terms in ``t / g_max`` are all 0)."""
    cfg = xs.TransferConfig(device=xs.DeviceParams(p_stuck_lrs=0.02, p_stuck_hrs=0.004))
    return Surrogate.fit(cfg, n_transfers=6, seed=3, n_fail_devices=20000)


def test_save_load_round_trip(small, tmp_path, cfg):
    path = small.save(tmp_path / "s.npz")
    back = Surrogate.load(path)
    assert back.matches(cfg)
    for name in ("own_mean", "own_std", "drift_mean_coef", "drift_var_coef", "lrs_q"):
        np.testing.assert_array_equal(getattr(back, name), getattr(small, name))
    assert back.meta == small.meta
    assert back.meta["xbarsim_version"] == xs.__version__  # which code fitted the file
    from xbarsim._kernel_cache import code_digest

    assert back.meta["code_digest"] == code_digest() and len(code_digest()) == 64  # which sources, exactly
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
    with pytest.raises(ParameterError, match="a damaged archive"):
        Surrogate.load(bad)
    assert not marker.exists()
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ParameterError, match="not a NumPy .npz archive"):
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


def test_noiseless_layer_output_is_the_circuit_to_the_fits_residual(asym):
    """The IR-drop factors applied as fitted: `layer_output` without noise
    against the simulator's noiseless MVM, on layers of the fitted shape,
    is about as close as the fit's own residual (measured 4.8e-5 against
    5.0e-5). The word- and bit-line columns swapped in `_fit_circuit`
    (kappa_wl stored as kappa_bl) passed every test, at 4x the residual
    (found by mutation testing)."""
    cfg = asym.cfg
    rng = np.random.default_rng(11)
    errs = []
    for _ in range(5):
        W, b = rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8)
        lm = map_layer(W, b, cfg)
        g = [t.target[None] for t in lm.tiles]
        x = rng.uniform(0, cfg.input_scale, (32, 2))
        y_sim = xs.mvm_many(_batch_from(lm, cfg, g), x, noise=False)
        errs.append(np.mean((asym.layer_output(lm, g, x, rng, noise=False) - y_sim) ** 2))
    rms = np.sqrt(np.mean(errs))
    assert rms < 2 * asym.meta["circuit_rms_residual"], (rms, asym.meta["circuit_rms_residual"])


def _dummy(cfg):
    from xbarsim.train.surrogate import _Z_LEVELS

    z = np.zeros_like(_Z_LEVELS)
    return Surrogate(cfg_json=json.dumps(cfg_to_dict(cfg)), bin_edges=np.linspace(1e-4, 5e-4, 3),
                     own_mean=np.zeros(2), own_std=np.full(2, 1e-3), own_at_min=np.array([0.0, 1e-3]),
                     kappa_read=0.0, own_z=z, pulse_coef=np.array([10.0, 10.0, 0.0]), relax_cycles=50.0,
                     drift_mean_coef=np.zeros(12), drift_var_coef=np.zeros(12),
                     drift_z=z, p_lrs=0.0, p_hrs=0.0, lrs_q=z + 5e-4, hrs_q=z + 5e-5)


def test_layer_output_scales_each_lines_ir_drop_by_its_own_factor(cfg):
    """The circuit model of the module docstring: the sinh output of ideal
    wires plus the first-order word-line and bit-line IR-drop terms
    (`_circuit_parts`), each scaled by its own fitted factor, ``kappa_wl``
    and ``kappa_bl``. With the factors made unequal (0.5 and 2) the noiseless
    `layer_output` is that sum to rounding; the bit-line term scaled by
    ``kappa_wl`` passed every test, as fits give factors near each other
    (found by mutation testing)."""
    sur = dataclasses.replace(_dummy(cfg), kappa_wl=0.5, kappa_bl=2.0)
    rng = np.random.default_rng(12)
    W, b = rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8)
    lm = map_layer(W, b, cfg)
    g = [np.stack([t.target, 0.9 * t.target]) for t in lm.tiles]  # two transfers
    x = rng.uniform(0, cfg.input_scale, (16, 2))
    y0, awl, abl = sur._circuit_parts(lm, g, x)
    assert np.abs(abl).max() > 1e-3 * np.abs(y0).max()  # the bit-line term is not negligible here
    y = sur.layer_output(lm, g, x, rng, noise=False)
    np.testing.assert_allclose(y, y0 + 0.5 * awl + 2.0 * abl, rtol=1e-10, atol=1e-12 * np.abs(y0).max())


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
    codes = np.concatenate([a.ravel() for a in st])
    for code, p in ((1, 5 * small.p_lrs), (2, 5 * small.p_hrs)):  # within 5 binomial standard errors
        assert abs(np.mean(codes == code) - p) < 5 * np.sqrt(p * (1 - p) / codes.size)
    # the penalty is differentiable and reaches the largest weight through the scale
    w = torch.tensor(W, requires_grad=True)
    bb = torch.tensor(b, requires_grad=True)
    p = small.penalty(w, bb)
    p.backward()
    assert torch.isfinite(p) and p > 0
    # shrinking the layer's largest weight (here a bias: max|b| 0.96 > max|W| 0.94) lowers the penalty;
    # the check sat under "if max|W| > max|b|", never true for this draw (found by review)
    params = np.concatenate([W.ravel(), b])
    grads = torch.cat([w.grad.ravel(), bb.grad]).numpy()
    k = int(np.abs(params).argmax())
    assert grads[k] * np.sign(params[k]) > 0
    assert np.abs(grads).sum() > 0


def test_fit_keeps_the_lrs_and_hrs_failure_rates_apart(asym):
    """The fitted stuck-LRS and stuck-HRS rates against the device's, within
    5 binomial standard errors of the fit's failure devices. The two rates
    swapped in `_from_samples` passed every test: the preset fails to LRS
    and to HRS at the same 0.5 % (found by mutation testing)."""
    n = asym.meta["n_devices"]
    for p_fit, p_dev in ((asym.p_lrs, 0.02), (asym.p_hrs, 0.004)):
        assert abs(p_fit - p_dev) < 5 * np.sqrt(p_dev * (1 - p_dev) / n), (p_fit, p_dev)


def test_a_noise_free_sample_reads_its_circuit_without_read_noise(small):
    """`sample_layer(noise=False)`'s circuit (a training forward with
    ``reparam=False``) adds no read noise: two reads agree to the bit and
    equal `layer_output` without noise. Its circuit read with noise whatever
    ``noise`` said passed every test (found by mutation testing)."""
    rng = np.random.default_rng(1)
    W, b = rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8)
    s = small.sample_layer(W, b, rng, noise=False, failures=False)
    x = rng.uniform(0, 1, (6, 2))
    y1, y2 = s.circuit(x), s.circuit(x)
    np.testing.assert_array_equal(y1, y2)
    lm = map_layer(W, b, small.cfg)
    ref = small.layer_output(lm, [t.target[None] for t in lm.tiles], x, rng, noise=False)[0]
    np.testing.assert_allclose(y1, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("input_scale", [1.0, 2.0])
@pytest.mark.parametrize("zscale", [1.0, 1.25], ids=["fitted", "wider-z"])
@pytest.mark.parametrize("zero", [False, True], ids=["random", "all-zero"])
@pytest.mark.parametrize("mapping", ["differential", "reference"])
def test_penalty_is_the_sampled_weight_error_variance(small, mapping, zero, zscale, input_scale):
    """The penalty against the spread of the weights the surrogate's own
    programming samples implement. Under the reference scheme it left out the
    row's reference device, which every weight of the row shares: 0.82 of
    the sampled variance on this layer. An all-zero layer, which `map_layer`
    maps with max|w| = 1, was penalised as if max|w| were 1e-12: ~1e-24 of
    its error (both found by review). The fitted quantile tables of the
    standardised errors have a variance of their own (1.085 and 0.971 in
    this fit; ``wider-z`` scales them by 1.25), which the penalty left out:
    it assumed 1 (found by review). At an input scale of 2 the bias row's
    error enters the bias at the scale squared, which a scale to the first
    power passed every test (found by mutation testing: 0.67 of it)."""
    cfg = dataclasses.replace(xs.TransferConfig(), mapping=mapping, tile=(4, 5), input_scale=input_scale)
    # the device-level model does not depend on the mapping: the fit, re-labelled
    sur = dataclasses.replace(small, cfg_json=json.dumps(cfg_to_dict(cfg)),
                              own_z=small.own_z * zscale, drift_z=small.drift_z * zscale)
    # 0.99-1.01 measured; 0.92-0.93 before the z tables' variance counted
    assert _penalty_over_sampled(sur, zero) == pytest.approx(1.0, rel=0.03)


def _penalty_over_sampled(sur, zero=False):
    """A 3 x 5 layer's penalty (no failures) over the variance of the weights
    that 4000 of the surrogate's own transfers implement."""
    rng = np.random.default_rng(1)
    W, b = rng.uniform(-1, 1, (3, 5)), rng.uniform(-1, 1, 3)
    if zero:
        W, b = 0 * W, 0 * b
    lm = map_layer(W, b, sur.cfg)
    gs, _ = sur.sample_tiles(lm, np.random.default_rng(0), n=4000, noise=True, failures=False)
    We, be = lm.effective_weights(gs)
    var = We.var(axis=0).sum() + be.var(axis=0).sum()
    return float(sur.penalty(torch.tensor(W), torch.tensor(b), failures=False)) / var


def test_penalty_and_sampling_give_idle_devices_their_own_error(small):
    """Targets at g_min (the idle device of a pair) take their own error
    (`own_at_min`) in sampling and in the penalty alike. Either taking them
    by ``t < g_min`` (the bins' error instead) passed every test: in the
    fitted surrogates the two errors are close. With an idle error that
    dominates, the penalty came out 5.5x (sampling) or 0.13x (penalty) the
    sampled variance (found by mutation testing)."""
    g_min = small.cfg.g_window[0]
    wide = dataclasses.replace(small, own_at_min=np.array([0.0, 0.3]))
    np.testing.assert_array_equal(wide.own_mean_std(np.array([g_min, g_min]))[1], [0.3, 0.3])
    assert _penalty_over_sampled(wide) == pytest.approx(1.0, rel=0.03)


def test_penalty_takes_the_drift_variance_that_grows_with_the_target(small, asym):
    """The drift variance is ``var_base @ c[:6] + (t / g_max) var_base @
    c[6:]``; the penalty leaving out the ``t / g_max`` passed every test:
    ``small``'s terms in it are all 0 (found by mutation testing; 1.05x on
    `asym`'s fit, 1.33x on one with the drift variance moved onto them)."""
    assert _penalty_over_sampled(asym) == pytest.approx(1.0, rel=0.03)
    vc = small.drift_var_coef
    tau_only = dataclasses.replace(small, own_std=small.own_std * 0.1, own_at_min=small.own_at_min * [1.0, 0.1],
                                   drift_var_coef=np.concatenate([np.zeros(6), vc[:6] + vc[6:]]))
    assert _penalty_over_sampled(tau_only) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("dtype, tiny", [(torch.float32, 1e-20), (torch.float32, 1e-35), (torch.float64, 1e-160)])
def test_penalty_gradient_of_a_vanishing_layer_is_finite(small, dtype, tiny):
    """``mse / alpha^2`` with ``alpha = span / max|w|``: its backward pass took
    alpha^3, which overflowed for max|w| of 1e-20 in float32 and 1e-160 in
    float64, and the gradient came back NaN under a finite penalty (found by
    review). Such a layer counts as one at a floor."""
    w = torch.full((3, 4), tiny, dtype=dtype, requires_grad=True)
    b = torch.full((3,), tiny, dtype=dtype, requires_grad=True)
    p = small.penalty(w, b)
    p.backward()
    assert bool(torch.isfinite(p)) and bool(torch.isfinite(w.grad).all()) and bool(torch.isfinite(b.grad).all())
    # above the floor the penalty scales as max|w|^2 (the conductances depend on w / max|w| alone)
    W = torch.tensor(np.random.default_rng(5).uniform(-1e-3, 1e-3, (3, 4)), dtype=dtype)
    assert float(small.penalty(W * 1e-3, None)) == pytest.approx(1e-6 * float(small.penalty(W, None)), rel=1e-4)


def test_penalty_in_half_precision_is_finite_and_matches_single(small):
    """In float16 the squared conductance errors (~1e-12 S^2) underflowed: the
    penalty came out 0 with NaN gradients (found by review)."""
    rng = np.random.default_rng(4)
    W, b = rng.uniform(-1, 1, (3, 8)), rng.uniform(-1, 1, 3)
    values, grads = {}, {}
    for dt in (torch.float16, torch.float32):
        w = torch.tensor(W, dtype=dt, requires_grad=True)
        bb = torch.tensor(b, dtype=dt, requires_grad=True)
        p = small.penalty(w, bb)
        p.backward()
        assert p.dtype == dt and bool(torch.isfinite(w.grad).all()) and bool(torch.isfinite(bb.grad).all())
        values[dt], grads[dt] = float(p.detach()), w.grad.double()
    assert values[torch.float32] > 0
    assert values[torch.float16] == pytest.approx(values[torch.float32], rel=2e-3)
    torch.testing.assert_close(grads[torch.float16], grads[torch.float32], rtol=2e-2, atol=1e-3 * grads[torch.float32].abs().max().item())


def test_a_layer_pickles_after_a_sampled_forward(small):
    """The last sample kept a closure: torch.save(model), deepcopy and pickle
    failed once training had run a forward (found by review)."""
    import copy
    import io

    layer = HardwareAwareLinear(2, 8, surrogate=small, seed=0).double()
    layer.train()
    layer(torch.rand(4, 2, dtype=torch.float64))
    assert layer.last_sample is not None
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert back.last_sample is None and layer.last_sample is not None
    torch.testing.assert_close(back.weight, layer.weight)
    assert copy.deepcopy(layer).last_sample is None
    assert pickle.loads(pickle.dumps(layer)).in_features == 2


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
    """The issue's acceptance check: bins (mean, std within 10 %), failures
    (0.1 point), layers (15 %), and the stricter bins' error std and mean;
    a surrogate whose conductances are all 3 % off met the issue's four
    criteria, and fails the error-mean one (found by review)."""
    from dataclasses import replace

    import warnings

    sur = Surrogate.fit(cfg, n_transfers=150, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bins of enough devices: no warning that the verdicts may be chance
        rep = check(sur, n_layers=12, per_layer=50, seed=2024)
    print(format_check(rep))
    assert rep["min_bin_devices"] == min(min(r["n_sim"], r["n_sur"]) for r in rep["bins"]) >= 450
    assert len(rep["bins"]) >= 18
    assert set(rep["pass"]) == {"bins", "bins_error_std", "bins_error_mean", "failures", "layers"}
    assert all(rep["pass"].values()), format_check(rep)
    for shift in (0.03, -0.03):
        off = replace(sur, own_mean=sur.own_mean + shift, own_at_min=sur.own_at_min + [shift, 0.0])
        rep = check(off, n_layers=12, per_layer=50, seed=2024)
        assert not rep["pass"]["bins_error_mean"], format_check(rep)
        assert "surrogate check: 4 of 5 criteria met (missed: bins_error_mean)" in format_check(rep)
    # the bins criterion takes |mean difference| <= 10 % either way: a surrogate 13 % low in every bin,
    # its spreads within the 10 %, passed it with the absolute value dropped (found by mutation testing)
    low = replace(sur, own_mean=sur.own_mean - 0.13, own_at_min=sur.own_at_min + [-0.13, 0.0])
    rep = check(low, n_layers=12, per_layer=50, seed=2024)
    assert all(-0.14 < r["mean_rel_diff"] < -0.11 and abs(r["std_rel_diff"]) <= 0.10 for r in rep["bins"])
    assert not rep["pass"]["bins"], format_check(rep)
    # a small check could not tell a good surrogate from a bad one, and said nothing (found by review)
    with pytest.warns(UserWarning, match=r"the smallest target bin holds (\d+) devices, whose spread is known to "
                                         r"about \d+ % .* may be chance") as rec:
        rep = check(sur, n_layers=2, per_layer=10, seed=2024)
    assert f"holds {rep['min_bin_devices']} devices" in str(rec[0].message) and rep["min_bin_devices"] < 450
    assert rep["min_bin_devices"] == min(min(r["n_sim"], r["n_sur"]) for r in rep["bins"])
    # the threshold itself: a check whose smallest bin holds between 100 and 449 devices warns too
    with pytest.warns(UserWarning, match=r"\(to 450 devices a bin or more") as rec:
        rep = check(sur, n_layers=8, per_layer=40, seed=2024)
    assert 100 <= rep["min_bin_devices"] < 450


def test_check_fails_a_surrogate_whose_hrs_or_lrs_rate_is_off(small):
    """`check`'s failures criterion: each stuck rate within 0.1 point of the
    simulator's (0.1 point is over 4 binomial standard errors of its ~1e5
    devices). Comparing the LRS rate alone passed every test (found by
    mutation testing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small bins: "the verdicts may be chance" (bins are not judged here)
        kw = dict(n_layers=1, per_layer=4, reps=1, n_fail_devices=100_000, seed=7)
        good, lrs, hrs = (check(dataclasses.replace(small, p_lrs=p_lrs, p_hrs=p_hrs), **kw)
                          for p_lrs, p_hrs in ((0.005, 0.005), (0.010, 0.005), (0.005, 0.010)))
    assert good["pass"]["failures"], good["failures"]  # the device's own rates
    assert not lrs["pass"]["failures"], lrs["failures"]
    assert not hrs["pass"]["failures"], hrs["failures"]


def test_check_fails_a_surrogate_with_far_too_little_layer_error(small):
    """`check`'s layers criterion: the surrogate's weight-error spread within
    15 % of the simulator's, either way. A surrogate with a twentieth of the
    noise and no failures passed it with the absolute value dropped (found
    by mutation testing)."""
    quiet = dataclasses.replace(small, p_lrs=0.0, p_hrs=0.0, own_std=small.own_std * 0.05,
                                own_at_min=small.own_at_min * [1.0, 0.05],
                                drift_var_coef=small.drift_var_coef * 0.0025)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small bins: "the verdicts may be chance"
        rep = check(quiet, n_layers=2, per_layer=10, reps=1, n_fail_devices=2000, seed=7)
    stds = [r["std_rel_diff"] for r in rep["layers"].values()]
    assert max(stds) < -0.5, stds  # far too little error ...
    assert not rep["pass"]["layers"]  # ... fails, as far too much does


def _no_compute(*args, **kwargs):
    raise AssertionError("an argument error must be raised before any compute")


def test_fit_refuses_bad_seeds_and_layers_before_any_compute(cfg, monkeypatch):
    """A seed that fails (None, -1, 1.5, True, or one whose derived stream
    seed + 7919 is not a 64-bit seed) used to run the whole programming loop
    first, then fail naming seed + 7919; a uint64 seed wrapped silently."""
    from xbarsim.train._checks import SEED_MAX, SEED_OFFSET_MAX, check_seed

    import xbarsim.programming as programming

    monkeypatch.setattr(xs, "program", _no_compute)
    monkeypatch.setattr(programming, "program_quietly", _no_compute)  # what the fit calls
    tiny = dict(n_transfers=2, layers=((1, 1),), n_fail_devices=64, n_probe=2, n_bins=2)
    assert SEED_MAX == 2**64 - 1 - SEED_OFFSET_MAX
    for seed in (None, -1, 1.5, True, "3", 2**64 - 1, np.uint64(2**64 - 1), SEED_MAX + 1):
        with pytest.raises(ParameterError, match=r"seed = .*\[0, 2\*\*64 - 104730\]") as err:
            Surrogate.fit(cfg, seed=seed, **tiny)
        assert repr(seed) in str(err.value)  # the user's seed, not a derived one
    assert check_seed(np.uint64(SEED_MAX)) == SEED_MAX and type(check_seed(np.uint64(5))) is int
    for layers in (((2.5, 1),), (("1", "1"),), ((True, 1),), ((1, 1, 1),), (1, 1), (), "ab", 3):
        with pytest.raises(ParameterError, match="layers"):
            Surrogate.fit(cfg, **dict(tiny, layers=layers))
    for kw in (dict(n_transfers=True), dict(n_bins=True), dict(n_probe=np.bool_(True)), dict(n_transfers=2.0)):
        with pytest.raises(ParameterError, match=list(kw)[0]):
            Surrogate.fit(cfg, **dict(tiny, **kw))
    for kw in (dict(seed=-1), dict(n_layers=True), dict(per_layer=0), dict(layers=((2.5, 1),))):
        with pytest.raises(ParameterError, match=list(kw)[0]):
            check(_dummy(cfg), **kw)


def test_fit_takes_layers_as_any_iterable_of_integer_pairs():
    from xbarsim.train.surrogate import _layer_shapes

    shapes = _layer_shapes((o, i) for o, i in [(8, 2), (np.int64(1), 8)])  # a generator used to fail (len)
    assert shapes == ((8, 2), (1, 8)) and all(type(d) is int for s in shapes for d in s)
    assert _layer_shapes(np.array([[8, 2], [1, 8]])) == ((8, 2), (1, 8))


def _saved(small, tmp_path, name="ok.npz", **changes):
    arrays = dict(np.load(small.save(tmp_path / "base.npz"), allow_pickle=False))
    arrays.update(changes)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_a_layer_larger_than_the_fitted_tiles_warns(small):
    """The drift model counts devices programmed later in a tile; a layer
    whose tiles hold more devices than any the surrogate was fitted on is
    extrapolated (a 16 x 12 layer on the moons fit drew a weight-error std
    1.32x the simulator's; found by review), and says so when built."""
    import warnings

    from xbarsim.train import HardwareAwareLinear

    assert small.meta["layers"] == [[8, 2], [1, 8]]
    fitted = ((3, 16), (9, 2))  # differential pairs, a bias row
    assert small.covers(16, 12) == ((13, 32), fitted)
    # without a bias row a 9-input layer's tile is 9 x 2, the fitted 9 x 2; with one, 10 x 2 (the bias
    # taken whatever `bias` said passed every test; found by mutation testing)
    assert small.covers(1, 9, bias=False) == ((9, 2), fitted) and small.is_covered(1, 9, bias=False)
    assert small.covers(1, 9) == ((10, 2), fitted) and not small.is_covered(1, 9)
    # from the layer's shape (mapping 8192 x 8192 whole took 10.7 s and 2 GiB)
    assert small.cfg.tile == (64, 64) and small.covers(8192, 8192) == ((64, 64), fitted)
    for o, i, bias in ((100, 70, True), (33, 129, False), (1, 200, True)):
        full = map_layer(np.ones((o, i)), np.ones(o) if bias else None, small.cfg)
        assert small.tile_shape(o, i, bias) == max(t.target.shape for t in full.tiles)
        assert small.tile_devices(o, i, bias) == max(t.target.size for t in full.tiles)
    with pytest.warns(UserWarning, match=r"up to 13 x 32 devices.*largest tiles are 3 x 16, 9 x 2.*"
                                         r"layers=\[\(16, 12\)"):
        HardwareAwareLinear(12, 16, surrogate=small, seed=0)
    # as many devices as the 3 x 16 tile (48), on longer bit lines: not covered
    # (it was, by its count, and drew a 1.32x spread; found by review)
    with pytest.warns(UserWarning, match=r"up to 24 x 2 devices"):
        HardwareAwareLinear(23, 1, surrogate=small, seed=0)
    with pytest.warns(UserWarning, match=r"up to 9 x 16 devices"):  # both lengths fitted, 144 devices
        HardwareAwareLinear(8, 8, surrogate=small, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HardwareAwareLinear(2, 8, surrogate=small, seed=0)
        HardwareAwareLinear(2, 4, surrogate=small, seed=0)  # 3 x 8 devices
        HardwareAwareLinear(8, 1, surrogate=small, seed=0)  # 9 x 2
        # within each bound, inside no single fitted tile (warned of, and no
        # worse than the fitted shapes; found by review)
        HardwareAwareLinear(8, 2, surrogate=small, seed=0)  # 9 x 4
        HardwareAwareLinear(4, 4, surrogate=small, seed=0)  # 5 x 8


def test_matches_compares_the_window_the_mapping_uses(small):
    """``window=None`` and the device's own window given explicitly map
    alike, so they match (they did not, and to_crossbar warned of a
    surrogate fitted for another configuration; found by review); another
    window does not."""
    from dataclasses import replace

    cfg = small.cfg
    assert cfg.window is None
    assert small.matches(replace(cfg, window=cfg.g_window))
    assert not small.matches(replace(cfg, window=(cfg.g_window[0], 0.9 * cfg.g_window[1])))
    assert not small.matches(replace(cfg, tolerance=0.02))


def test_load_refuses_damaged_or_edited_files_at_load(small, tmp_path):
    """Each of these used to load (NaN weights or a bare error at sampling) or
    raise a bare BadZipFile / ValueError / JSONDecodeError / TypeError."""
    from dataclasses import fields

    from xbarsim.train.surrogate import _field_shapes

    numeric = {f.name for f in fields(Surrogate) if not f.name.endswith("_json")}
    assert set(_field_shapes(3)) == numeric  # every numeric field has its expected shape
    good = Surrogate.load(_saved(small, tmp_path))
    assert good.matches(small.cfg)
    nb = small.own_mean.size
    cases = {
        "NaN or inf": dict(own_std=np.full(nb, np.nan)),
        "'kappa_wl' holds": dict(kappa_wl=np.array(["x"])),
        "'bin_edges' has shape": dict(bin_edges=np.array(1.0)),
        "'own_z' has shape": dict(own_z=np.zeros(5)),
        "'own_mean' has shape": dict(own_mean=np.zeros(nb + 1)),
        "'relax_cycles' has shape": dict(relax_cycles=np.ones(2)),
        "not increasing": dict(bin_edges=small.bin_edges[::-1].copy()),
        # a repeated edge: a bin of width 0, whose centre repeats its neighbour's (np.interp's
        # abscissae must increase); taken by ">= 0" in every test (found by mutation testing)
        "bin_edges are not increasing": dict(bin_edges=np.concatenate([small.bin_edges[:1], small.bin_edges[:-1]])),
        "failure probabilities": dict(p_lrs=np.array(0.7), p_hrs=np.array(0.6)),
        "cfg_json": dict(cfg_json=np.array("not json")),
        "meta_json": dict(meta_json=np.array("[1, 2]")),
        "JSON string": dict(cfg_json=np.array([1.0])),
        "format_version": dict(format_version=np.array("5")),
        # a configuration TransferConfig refuses (an older version's, or edited) is named as such
        "TransferConfig is one this version of xbarsim refuses.*solve_tol": dict(cfg_json=np.array(
            json.dumps(dict(json.loads(small.cfg_json), solve_tol=1e-16)))),
    }
    for k, (word, change) in enumerate(cases.items()):
        with pytest.raises(ParameterError, match=word):
            Surrogate.load(_saved(small, tmp_path, f"bad{k}.npz", **change))
    raw = bytearray((tmp_path / "base.npz").read_bytes())
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04garbage" * 10)
    (tmp_path / "short.npz").write_bytes(bytes(raw[: len(raw) // 2]))
    raw[len(raw) // 2: len(raw) // 2 + 20] = bytes(20)
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    # zip headers damaged into an unknown compression method or an encrypted
    # entry: raw NotImplementedError / RuntimeError (found by review)
    base = (tmp_path / "base.npz").read_bytes()
    for name, at_local, at_central, value in (("method.npz", 8, 10, b"\x63\x00"), ("crypt.npz", 6, 8, b"\x01\x00")):
        bad = bytearray(base)
        for sig, at in ((b"PK\x03\x04", at_local), (b"PK\x01\x02", at_central)):
            pos = bad.find(sig)
            while pos >= 0:
                bad[pos + at: pos + at + 2] = value
                pos = bad.find(sig, pos + 4)
        (tmp_path / name).write_bytes(bytes(bad))
    for name in ("zip.npz", "short.npz", "crc.npz", "method.npz", "crypt.npz"):
        with pytest.raises(ParameterError, match="cannot read surrogate file"):
            Surrogate.load(tmp_path / name)
    (tmp_path / "g.csv").write_text("1e-4,2e-4\n")  # NumPy took it for a pickle and suggested loading it unsafely
    with pytest.raises(ParameterError, match="not a NumPy .npz archive") as info:
        Surrogate.load(tmp_path / "g.csv")
    assert "unsafe" not in str(info.value) and "pickle" not in str(info.value)
    for path in (3, None, ["a.npz"]):
        with pytest.raises(ParameterError, match="path"):
            Surrogate.load(path)
    np.savez(tmp_path / "solution.npz", v_wl=np.zeros((2, 2)), i_out=np.zeros(2))  # another .npz: not "format -1"
    with pytest.raises(ParameterError, match=r"no format_version \(its arrays: i_out, v_wl\), so it is not a "
                                             r"surrogate file"):
        Surrogate.load(tmp_path / "solution.npz")


def test_sampled_forward_warns_outside_the_fitted_range_and_refuses_overflow(small):
    """Large inputs used to give silent -3e15 (x = 50), -inf (x = 500) or NaN
    (x = 1e3), where xs.mvm warns above the switching threshold and refuses
    a sinh overflow."""
    import warnings

    layer = HardwareAwareLinear(1, 1, surrogate=small, seed=0).double()
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.bias.fill_(0.1)
    fitted, switching, overflow = small.input_limits()
    assert fitted == 1.0 and switching == pytest.approx(5.5) and overflow == pytest.approx(700 * 0.45 / 0.2)
    # thresholds of the two polarities apart: inputs of either sign reach the lower one first (the higher
    # one, 5.5, passed every test, whose device has both at 1.1 V; found by mutation testing)
    dev = dataclasses.replace(small.cfg.device, v_reset=0.6)
    lopsided = dataclasses.replace(small, cfg_json=json.dumps(cfg_to_dict(dataclasses.replace(small.cfg, device=dev))))
    assert lopsided.input_limits()[1] == pytest.approx(0.6 / 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fitted range: no warning
        layer(torch.full((3, 1), 1.0, dtype=torch.float64))
        layer(torch.full((3, 1), -1.0, dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="exceed input_scale = 1") as rec:
        assert torch.isfinite(layer(torch.full((2, 1), 8.0, dtype=torch.float64))).all()
    assert "switching threshold" in str(rec[0].message)
    assert rec[0].filename == __file__  # the line that called the layer, not torch's Module.__call__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per layer
        layer(torch.full((2, 1), 8.0, dtype=torch.float64))
    for x in (500.0, 1e3, 1e4, 1e300):
        state = layer._rng.bit_generator.state
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ParameterError, no numpy overflow warnings on the way
            with pytest.raises(ParameterError, match="overflows double precision"):
                layer(torch.full((1, 1), x, dtype=torch.float64))
        if x > overflow:  # refused before sampling: the stream did not move
            assert layer._rng.bit_generator.state == state
    with pytest.raises(ParameterError, match="NaN or inf"):
        layer(torch.tensor([[float("nan")]], dtype=torch.float64))
    layer32 = HardwareAwareLinear(1, 1, surrogate=small, seed=0)
    with pytest.raises(ParameterError, match="overflows torch.float32"):
        layer32(torch.full((1, 1), 250.0))
    layer.eval()  # the mean weights: a plain nn.Linear, nothing checked
    assert torch.isfinite(layer(torch.full((1, 1), 1e4, dtype=torch.float64))).all()
    lm = map_layer(np.ones((1, 1)), np.zeros(1), small.cfg)
    gs, _ = small.sample_tiles(lm, np.random.default_rng(0), n=1)
    with pytest.raises(ParameterError, match="overflows"):
        small.layer_output(lm, gs, np.full((1, 1), 1e4), np.random.default_rng(0))


def test_layer_mapping_is_case_insensitive_like_transfer_config(small):
    assert HardwareAwareLinear(2, 1, surrogate=small, mapping="Differential").mapping == "differential"
    assert HardwareAwareLinear(2, 1, mapping="REFERENCE").mapping == "reference"
    with pytest.raises(ParameterError, match="mapping"):
        HardwareAwareLinear(2, 1, surrogate=small, mapping="Reference")
    with pytest.raises(ParameterError, match="mapping"):
        HardwareAwareLinear(2, 1, mapping="offset")


def test_the_circuit_model_refuses_inputs_of_another_width(small):
    """One input too many was read as the bias row, and the bias dropped;
    one too few was NumPy's broadcast error."""
    s = small.sample_layer(np.array([[0.3, -0.5], [1.0, 0.1]]), np.array([0.2, -0.1]), np.random.default_rng(0),
                           noise=False, failures=False)
    assert s.circuit(np.array([[0.2, 0.7]]), read_noise=False).shape == (1, 2)
    for x in (np.array([[0.2, 0.7, 0.0]]), np.array([[0.2]])):
        with pytest.raises(ParameterError, match="takes 2 input features"):
            s.circuit(x, read_noise=False)


def test_statistical_and_surrogate_evaluations_do_not_depend_on_the_chunking(small, cfg):
    """Transfer t draws from its own stream (seed, t), as the circuit
    evaluation does: one generator for the whole run gave other results
    for another ``chunk``, a setting that reads as a memory knob."""
    from xbarsim.train import evaluate_statistical, evaluate_surrogate, network_layers
    from xbarsim.train.data import make_moons_split
    from xbarsim.train.training import moons_network

    d = make_moons_split(40, 10, 30, seed=0)
    layers = network_layers(moons_network(8))
    for run in (lambda **kw: evaluate_surrogate(layers, small, d.x_test, d.y_test, seed=5, **kw),
                lambda **kw: evaluate_statistical(layers, cfg, d.x_test, d.y_test, seed=5, **kw)):
        whole = run(n=11, chunk=11).logits
        np.testing.assert_array_equal(run(n=11, chunk=3).logits, whole)
        np.testing.assert_array_equal(run(n=4, chunk=1).logits, whole[:4])  # a prefix is the same transfers
        assert not np.array_equal(whole[0], whole[1])  # and the transfers differ


def test_evaluations_score_the_same_transfers_whichever_points_they_read(small, cfg, monkeypatch):
    """Transfer t is one programmed network whichever points it scores. The
    surrogate evaluation drew layer 1's read noise from the transfer's
    stream before programming layer 2, so layer 2's conductances changed
    with the number of points (found by review). A point's read noise is
    its own stream's too, so the logits of the first points are the same
    (they changed with the points read beside them: found by review), as
    the statistical evaluation's, which has no read noise."""
    from xbarsim.train import evaluate_statistical, evaluate_surrogate, network_layers
    from xbarsim.train.data import make_moons_split
    from xbarsim.train.training import moons_network

    d = make_moons_split(40, 10, 30, seed=0)
    layers = network_layers(moons_network(8))
    programmed = []
    real = type(small).sample_tiles

    def sample_tiles(self, lm, rng, n=1):
        out = real(self, lm, rng, n=n)
        programmed.append([g.copy() for g in out[0]])
        return out

    monkeypatch.setattr(type(small), "sample_tiles", sample_tiles)  # a frozen dataclass: on the class
    runs, logits = [], []
    for points in (3, 30):
        programmed.clear()
        logits.append(evaluate_surrogate(layers, small, d.x_test[:points], d.y_test[:points], n=4, seed=5).logits)
        runs.append(list(programmed))
    assert len(runs[0]) == 4 * len(layers)
    for a, b in zip(*runs):
        for ga, gb in zip(a, b):
            np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(logits[0], logits[1][:, :3])
    stat = lambda k: evaluate_statistical(layers, cfg, d.x_test[:k], d.y_test[:k], n=6, seed=5).logits
    np.testing.assert_array_equal(stat(3), stat(30)[:, :3])


def test_layer_read_noise_of_an_input_is_its_own_whatever_is_read_beside_it(small):
    """The surrogate's read noise was drawn in sequence, step by step, from
    one generator: on a layer of several tiles an input's noise changed
    with `max_elements` and with the other inputs of the call, by up to 6x
    the noise's own size (found by review). Each (transfer, tile, input)
    now has its own stream under one key drawn from the generator."""
    cfg = xs.TransferConfig(tile=(2, 4))
    rng = np.random.default_rng(1)
    lm = map_layer(rng.uniform(-1, 1, (3, 3)), rng.uniform(-1, 1, 3), cfg)
    assert len(lm.tiles) > 1
    gs, _ = small.sample_tiles(lm, np.random.default_rng(5), n=3)
    x = rng.uniform(0, 1, (20, 3))
    out = lambda xx, **kw: small.layer_output(lm, gs, xx, np.random.default_rng(7), **kw)
    whole = out(x)
    np.testing.assert_array_equal(out(x, max_elements=40), whole)  # steps over transfers and inputs
    np.testing.assert_array_equal(out(x[:5]), whole[:, :5])
    np.testing.assert_array_equal(out(np.repeat(x[None, 3:9], 3, axis=0)), out(x[3:9]))  # one set a transfer
    quiet = out(x, noise=False)
    noise = whole - quiet
    assert np.all(noise != 0) and not np.array_equal(noise[0], noise[1])  # noise, its own per transfer
    assert not np.array_equal(out(x[1:6]), whole[:, 1:6])  # an input's noise follows its position


def test_layer_read_noise_is_the_simulators_on_a_layer_of_several_tiles(small):
    """The spread of `layer_output`'s read noise against the simulator's MVM
    on the same conductances, output by output and input by input (3000
    draws: each std known to ~1.3 %; measured 0.97-1.04). Its noise scaled
    by the currents' sum of squares instead of its root (no noise at all,
    7.5e-5 of it), and the tiles of a layer drawing the same normals
    (1.2-1.45x), each passed every test (found by mutation testing)."""
    cfg = dataclasses.replace(small.cfg, tile=(4, 5))
    sur = dataclasses.replace(small, cfg_json=json.dumps(cfg_to_dict(cfg)))  # the device model: tile-independent
    rng = np.random.default_rng(2)
    lm = map_layer(rng.uniform(-1, 1, (3, 7)), rng.uniform(-1, 1, 3), cfg)
    assert len(lm.tiles) >= 4
    n = 3000
    g = [np.broadcast_to(t.target, (n,) + t.shape).copy() for t in lm.tiles]
    x = rng.uniform(0, cfg.input_scale, (4, 7))
    e_sur = (sur.layer_output(lm, g, x, np.random.default_rng(5), noise=True)
             - sur.layer_output(lm, g, x, np.random.default_rng(5), noise=False))
    batch = _batch_from(lm, cfg, g)
    e_sim = xs.mvm_many(batch, x, seed=9, noise=True) - xs.mvm_many(batch, x, noise=False)
    ratio = e_sur.std(axis=0) / e_sim.std(axis=0)
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio


def test_a_surrogate_prints_its_arrays_by_shape(small):
    text = repr(small)
    assert len(text) < 1500, len(text)  # every array in full: 9,500 characters (found by review)
    assert text.startswith("Surrogate(cfg_json=") and "bin_edges=array((" in text and "p_lrs=" in text


def test_check_takes_a_surrogate():
    with pytest.raises(ParameterError, match="check compares a Surrogate with the simulator; got str"):
        check("x")  # a bare AttributeError


def test_check_draws_apart_from_the_fit_for_any_seed(cfg, monkeypatch):
    """`check` promises fresh simulator samples: with its seed equal to the
    fit's it tested the fit's own first layer and tile, and with the seed
    104729 - 7919 above the fit's, the fit's own failure devices (found by
    review). Recorded here: the weights and the transfer seeds that reach
    the simulator in the fit and in two checks."""
    import xbarsim.mapping as mapping
    from xbarsim.train.surrogate import check

    calls = {"W": [], "seeds": []}  # weights other than failure_samples' zeros, seeds of every transfer
    real_map, real_many, real_program = mapping.map_layer, xs.transfer_many, xs.program

    def map_layer(W, b, c):
        if np.any(W):
            calls["W"].append(np.array(W, dtype=float).tobytes())
        return real_map(W, b, c)

    def transfer_many(W, b, c, n=1, seed=0, **kw):
        if np.any(W):
            calls["W"].append(np.array(W, dtype=float).tobytes())
        calls["seeds"].append(int(seed))
        return real_many(W, b, c, n=n, seed=seed, **kw)

    import xbarsim.programming as programming

    real_quiet = programming.program_quietly

    def program(t, c, seed=0, **kw):
        calls["seeds"].append(int(seed))
        return real_program(t, c, seed=seed, **kw)

    def program_quietly(t, c, seed=0, **kw):  # the fit's (xs.program without its warning)
        calls["seeds"].append(int(seed))
        return real_quiet(t, c, seed=seed, **kw)

    monkeypatch.setattr(mapping, "map_layer", map_layer)
    monkeypatch.setattr(xs, "transfer_many", transfer_many)
    monkeypatch.setattr(xs, "program", program)
    monkeypatch.setattr(programming, "program_quietly", program_quietly)
    sur = Surrogate.fit(cfg, n_transfers=2, seed=3, n_fail_devices=64, layers=((2, 2),))
    fit_w, fit_seeds = set(calls["W"]), set(calls["seeds"])
    assert fit_w and fit_seeds
    for seed in (3, 3 + 104729 - 7919):
        calls["W"].clear(); calls["seeds"].clear()
        check(sur, n_layers=1, per_layer=2, reps=1, n_probe=4, n_fail_devices=64, seed=seed, layers=((2, 2),))
        assert calls["W"] and calls["seeds"]
        assert not fit_w & set(calls["W"])
        assert not fit_seeds & set(calls["seeds"])


def test_surrogate_entry_points_refuse_what_they_cannot_use(small, tmp_path):
    import io

    import xbarsim as xs
    from xbarsim.train import evaluate_statistical, evaluate_surrogate, network_layers, summarize
    from xbarsim.train.data import make_moons_split
    from xbarsim.train.training import moons_network

    w, b = np.array([[0.3, -0.5], [1.0, 0.1]]), np.array([0.2, -0.1])
    with pytest.raises(ParameterError, match="Generator"):
        small.sample_layer(w, b, 0)  # "'int' object has no attribute 'random'"
    with pytest.raises(ParameterError, match="failures"):
        small.sample_layer(w, b, np.random.default_rng(0), failures=-1.0)  # silently no failures
    s_true = small.sample_layer(w, b, np.random.default_rng(0), failures=np.True_)
    s_one = small.sample_layer(w, b, np.random.default_rng(0), failures=True)
    np.testing.assert_array_equal(s_true.weight, s_one.weight)
    with pytest.raises(ParameterError, match="existing, writable folder"):
        small.save(tmp_path / "missing" / "s.npz")  # a raw FileNotFoundError
    buf = io.BytesIO()
    small.save(buf)  # a raw TypeError; load reads file objects
    buf.seek(0)
    assert Surrogate.load(buf).matches(small.cfg)
    d = make_moons_split(40, 10, 10, seed=0)
    layers = network_layers(moons_network(4))
    with pytest.raises(ParameterError, match="StatisticalModel"):
        evaluate_statistical(layers, xs.TransferConfig(), d.x_test, d.y_test, n=2, stat="paper")
    with pytest.raises(ParameterError, match="Surrogate"):
        evaluate_surrogate(layers, "x", d.x_test, d.y_test, n=2)
    with pytest.raises(ParameterError, match="noise"):
        make_moons_split(noise="0.2")
    with pytest.raises(ParameterError, match="software_accuracy"):
        summarize(np.ones((2, 3), bool), software_accuracy=float("nan"))


def test_a_failure_scale_past_certainty_and_an_empty_test_set_are_refused_up_front(small, cfg):
    from xbarsim.train import HardwareAwareLinear, evaluate_statistical, network_layers
    from xbarsim.train.training import moons_network

    with pytest.raises(ParameterError, match="above 1"):
        HardwareAwareLinear(2, 2, surrogate=small, failures=1e9)  # was refused at the first forward only
    with pytest.raises(ParameterError, match="points >= 1"):
        evaluate_statistical(network_layers(moons_network(4)), cfg, np.zeros((0, 2)), np.zeros(0), n=3)


def test_quantile_moments_are_those_of_the_sampled_law():
    """`_quantile_moments` integrated over the stored levels' range only,
    leaving out the clamped tails the sampler draws (`_inverse_cdf` of a
    uniform in [0, 1])."""
    from xbarsim.train.surrogate import _Z_LEVELS, _inverse_cdf, _quantile_moments

    q = np.sort(np.random.default_rng(2).standard_t(3, _Z_LEVELS.size)) * 2.0 + 0.3
    u = (np.arange(2_000_000) + 0.5) / 2_000_000
    v = _inverse_cdf(u, q)
    m, var = _quantile_moments(q)
    assert m == pytest.approx(v.mean(), rel=1e-6, abs=1e-9)
    assert var == pytest.approx(v.var(), rel=1e-6)


def test_a_fit_on_too_few_devices_is_refused_before_it_runs(cfg):
    """Two transfers of a 1 x 1 layer program 8 devices: the quantile tables
    of the fit came out all zeros, a surrogate with no noise, silently
    (found by review). Refused before any device is programmed; a drift
    table without residuals is the standard normal's."""
    from xbarsim.train.surrogate import _Z_LEVELS, _norm_ppf, _standardised_quantiles

    with pytest.raises(ParameterError, match=r"8 devices.*n_transfers >= 3"):
        Surrogate.fit(cfg, n_transfers=2, layers=((1, 1),), n_fail_devices=0)
    with pytest.raises(ParameterError, match="raise n_transfers"):
        _standardised_quantiles(np.zeros(9), "own")
    np.testing.assert_array_equal(_standardised_quantiles(np.zeros(9), "drift"), _norm_ppf(_Z_LEVELS))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (3, 7), (6, 6)])
@pytest.mark.parametrize("order", ["row-major", "column-major"])
def test_later_sums_match_the_definition(shape, order):
    """`later_sums` (cumulative sums in programming order, O(M N)) against
    its definition, device by device: the sum over devices programmed later,
    and over those among them on the same word or bit line. It replaced
    products with cached (K, K) matrices, 5 GiB for a 128 x 128 tile. With
    it, `tile_features`' counts and `_read_drop` against their docstrings: a
    device counted among the later ones of its own bit line, and the bit
    line's drop taken over M - i segments instead of M - 1 - i, passed every
    test (the fit absorbs both; found by mutation testing)."""
    from xbarsim.train.surrogate import _read_drop, later_sums, tile_features

    M, N = shape
    oi, n_later, n_line = tile_features(shape, xs.Order(order))
    v = np.random.default_rng(M * 10 + N).uniform(-1.0, 1.0, (2, 3, M, N))
    total, line = later_sums(v, oi)
    assert total.shape == line.shape == v.shape
    t, r_wl, r_bl, g_init = 1e-4 + 2e-4 * (v[0, 0] + 1.0), 2.0, 3.0, 7e-5
    drop = _read_drop(t, oi, r_wl, r_bl, g_init)
    for i in range(M):
        for j in range(N):
            later = oi > oi[i, j]
            same = np.zeros(shape, dtype=bool)
            same[i, :] = True
            same[:, j] = True
            np.testing.assert_allclose(total[..., i, j], v[..., later].sum(axis=-1), rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(line[..., i, j], v[..., later & same].sum(axis=-1), rtol=1e-13, atol=1e-13)
            assert (n_later[i, j], n_line[i, j]) == (later.sum(), (later & same).sum())
            # the word line: devices programmed before (i, j), and (i, j) itself, at their targets
            g_row = np.where((oi[i] < oi[i, j]) | (np.arange(N) == j), t[i], g_init)
            want = r_wl * sum(g_row[l] * min(l, j) for l in range(N)) + r_bl * (M - 1 - i) * t[i, j]
            assert drop[i, j] == pytest.approx(want, rel=1e-12)


def test_drift_bases_count_each_later_devices_pulses_and_one_read(cfg):
    """`drift_bases`' ``elapsed``: the expected pulses of every later device
    plus one read each (its docstring). The read left out passed every
    test (found by mutation testing)."""
    from xbarsim.train.surrogate import _pulses, drift_bases, tile_features

    g_min, g_max = cfg.g_window
    t = np.random.default_rng(0).uniform(g_min, g_max, (3, 5))
    t[0, 1] = g_min  # an idle device: the pulse model's third term
    coef = np.array([5.0, 10.0, 3.0])
    mean_base = drift_bases(t, coef, 100.0, cfg)[0]
    oi = tile_features(t.shape, cfg.order)[0]
    cycles = _pulses(t, coef, g_min, g_max) + 1.0
    assert cycles[0, 1] == 5.0 + 10.0 * g_min / g_max + 3.0 + 1.0
    for i in range(3):
        for j in range(5):
            elapsed = cycles[oi > oi[i, j]].sum()
            assert mean_base[i, j, 3] == pytest.approx(elapsed / 100.0, rel=1e-12)
            assert mean_base[i, j, 0] == pytest.approx(1.0 - np.exp(-elapsed / 100.0), rel=1e-12, abs=1e-15)


def test_drift_bases_of_a_large_tile_take_memory_in_proportion():
    """A 256 x 256 tile's drift features: a raw MemoryError after 16 s
    (two (65536, 65536) matrices); now arrays the size of the tile. Checked
    by tracemalloc's peak against the tile, not by time."""
    import tracemalloc

    from xbarsim.train.surrogate import drift_bases

    cfg = xs.TransferConfig()
    t = np.random.default_rng(0).uniform(*cfg.g_window, (256, 256))
    tracemalloc.start()
    try:
        mean_base, var_base = drift_bases(t, np.array([5.0, 10.0, 3.0]), 100.0, cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mean_base.shape == (256, 256, 4) and var_base.shape == (256, 256, 6)
    assert np.all(np.isfinite(mean_base)) and np.all(np.isfinite(var_base))
    assert peak < 60 * t.nbytes, peak / t.nbytes  # 10 feature planes and their work arrays


def test_check_measures_weights_with_enough_probes(small, monkeypatch):
    """With fewer probe inputs than a row's unknowns (in + 1) the
    least-squares weights are underdetermined; the minimum-norm answer made
    the simulator's and the surrogate's errors agree, a false pass, and the
    default 32 did that for every layer of 32 inputs or more (found by
    review). Too few are refused; by default each layer shape gets
    max(32, 2 (in + 1))."""
    from xbarsim.train import surrogate as sm

    with pytest.raises(ParameterError, match=r"n_probe=2 probe inputs cannot measure .* 2 inputs: each row has 3"):
        check(small, n_layers=1, per_layer=2, reps=1, n_probe=2, n_fail_devices=64, layers=((3, 2),))
    seen = []
    real = sm._ls_weights
    monkeypatch.setattr(sm, "_ls_weights", lambda x, y: seen.append(x.shape) or real(x, y))
    check(small, n_layers=1, per_layer=2, reps=1, n_fail_devices=64, layers=((2, 40), (2, 3)))
    assert set(seen) == {(82, 40), (32, 3)}


def test_penalty_scales_the_failures_as_sampling_does(small):
    """penalty(failures=5.0) counted as 1 and 'no' as True, where
    program_tile scales the failure probabilities by the number and
    refuses anything but a bool or a scale (found by review)."""
    w = torch.tensor([[0.5, -0.2], [0.1, 0.9]], dtype=torch.float64)
    b = torch.tensor([0.1, -0.3], dtype=torch.float64)
    off, one, five = (float(small.penalty(w, b, failures=f)) for f in (False, True, 5.0))
    assert off < one < five
    assert five - off == pytest.approx(5 * (one - off), rel=1e-9)
    with pytest.raises(ParameterError, match="failures = 'no'"):
        small.penalty(w, b, failures="no")
    with pytest.raises(ParameterError, match="above 1"):
        small.penalty(w, b, failures=1e9)


def test_surrogate_methods_refuse_malformed_arguments_by_name(small):
    """Each raised NumPy's or torch's raw error, or blamed the inputs for
    NaN conductances (found by review)."""
    rng = np.random.default_rng(0)
    lm = map_layer(np.ones((2, 3)), np.zeros(2), small.cfg)
    gs, _ = small.sample_tiles(lm, rng, n=2)
    x = np.full((4, 3), 0.2)
    assert small.layer_output(lm, gs, x, rng).shape == (2, 4, 2)
    (M, N), = [t.shape for t in lm.tiles]
    cases = [
        (lambda: small.program_tile(lm.tiles[0].target, rng, noise="no"), "noise = 'no'; give True or False"),
        (lambda: small.layer_output(lm, gs, x[0], rng), r"x has shape \(3,\); this layer takes 3 input features"),
        (lambda: small.layer_output(lm, [g[0] for g in gs], x, rng), rf"tile_g\[0\] has shape \({M}, {N}\)"),
        (lambda: small.layer_output(lm, [], x, rng), "one array per tile of the layer"),
        (lambda: small.layer_output(lm, [np.full_like(g, np.nan) for g in gs], x, rng), "holds NaN, inf or negative"),
        (lambda: small.layer_output(lm, gs, x, rng, noise="yes"), "noise = 'yes'"),
        (lambda: small.sample_tiles(lm, rng, n=-1), "n = -1; an integer >= 1"),
        (lambda: small.sample_tiles(lm, rng, n=2.5), "n = 2.5; an integer >= 1"),
        (lambda: small.drift_mean_std(np.ones(3) * 1e-4), r"target has shape \(3,\)"),
        (lambda: small.matches("TIO2"), "matches compares with an xbarsim.TransferConfig; got str"),
        (lambda: small.penalty(torch.zeros((0, 2), dtype=torch.float64), None), r"empty \(0, 2\) weight"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message):
            call()


def test_every_evaluation_warns_about_a_model_trained_for_another_cfg():
    """evaluate_circuit warned when the network was trained against a
    surrogate of another TransferConfig; evaluate_statistical and
    evaluate_surrogate did not (found by review)."""
    import warnings

    from xbarsim.train import convert, evaluate_statistical, evaluate_surrogate
    from xbarsim.train.training import moons_network

    kw = dict(n_transfers=2, layers=((2, 2), (1, 2)), n_fail_devices=0, n_probe=2, n_bins=2)
    own, other = Surrogate.fit(xs.TransferConfig(), **kw), Surrogate.fit(xs.TransferConfig(input_scale=2.0), **kw)
    net = convert(moons_network(2), surrogate=own, seed=0)
    x, y = np.full((3, 2), 0.5), np.array([0, 1, 1])
    with pytest.warns(UserWarning, match="another TransferConfig") as rec:
        evaluate_statistical(net, other.cfg, x, y, n=2)
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning, match="another TransferConfig"):
        evaluate_surrogate(net, other, x, y, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_statistical(net, own.cfg, x, y, n=2)
        evaluate_surrogate(net, own, x, y, n=2)


def test_layer_output_checks_its_memory_before_allocating(small, monkeypatch):
    """`layer_output` had no memory check: 400,000 inputs of 200 transfers
    took 1.4 GB with 64 MiB free, where `xs.mvm_many` refused the same job
    (found by review). Its outputs, and a float32 x's copy, are checked
    first."""
    from xbarsim import _memory
    from xbarsim.exceptions import MemoryLimitError

    rng = np.random.default_rng(0)
    lm = map_layer(np.ones((2, 3)), np.zeros(2), small.cfg)
    gs, _ = small.sample_tiles(lm, rng, n=200)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 64 * 2**20)
    monkeypatch.setattr(type(small), "_one_output", lambda *a, **k: pytest.fail("computed before the check"))
    with pytest.raises(MemoryLimitError, match="surrogate outputs of 200 transfers x 400000 inputs x 2 outputs"):
        small.layer_output(lm, gs, np.broadcast_to(0.2, (400_000, 3)), rng)
    with pytest.raises(MemoryLimitError, match=r"a float64 C-ordered copy of x \(float32, shape \(10000000, 3\)\)"):
        small.layer_output(lm, gs, np.broadcast_to(np.float32(0.2), (10_000_000, 3)), rng)
    # a small job is charged its own working arrays, not the 2e6-element step
    # budget (96 MB: it refused one input with 100 MiB free; found by review)
    monkeypatch.undo()
    monkeypatch.setattr(_memory, "available_bytes", lambda: 100 * 2**20)
    assert small.layer_output(lm, [g[:1] for g in gs], np.full((1, 3), 0.2), rng).shape == (1, 1, 2)


def test_surrogate_entry_points_refuse_bad_arguments_specifically(small):
    """Each of these was a raw NumPy / torch error, a silent NaN-free
    nonsense (microsiemens as siemens: 1.5e12 S), or accepted (found by
    review)."""
    from xbarsim.exceptions import MemoryLimitError

    rng = np.random.default_rng(0)
    for bad, word in ((np.full((2, 2), 200.0), r"above the device's reachable .* S; targets are in siemens"),
                      (np.full((2, 2), 1e-2), "above the device's reachable"),
                      ("a", "holds strings"), (np.full((2, 2), 3e-4 + 0j), "complex")):
        with pytest.raises(ParameterError, match=word):
            small.program_tile(bad, rng)
    g_hi = small.cfg.device.g_hi
    # the device's reachable top, also as float32 (refused by its rounding;
    # found by review), is taken, with a warning: it lies outside the fitted window
    for top in (g_hi, np.float32(g_hi)):
        with pytest.warns(UserWarning, match=r"reach outside the window the surrogate was fitted on"):
            g = small.program_tile(np.full((2, 2), top), rng, noise=False, failures=False)[0]
        np.testing.assert_allclose(g, g_hi, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the window itself, idle devices at its bottom: no warning
        lo, hi = small.cfg.g_window
        small.program_tile(np.array([[lo, hi], [lo, 0.5 * (lo + hi)]]), rng)
    for args, word in (((-1, 2), "out_features"), ((2, 2.5), "in_features")):
        with pytest.raises(ParameterError, match=word):
            small.tile_devices(*args)
        with pytest.raises(ParameterError, match=word):
            small.covers(*args)
    lm = map_layer(np.ones((2, 3)), np.ones(2), small.cfg)
    with pytest.raises(MemoryLimitError, match="surrogate samples of 1000000000 transfers"):
        small.sample_tiles(lm, rng, n=10**9)
    gs, _ = small.sample_tiles(lm, rng, n=2)
    x = np.full((4, 3), 0.5)
    for bad in (float("nan"), "a", 0, -5):
        with pytest.raises(ParameterError, match="max_elements"):
            small.layer_output(lm, gs, x, rng, max_elements=bad)
    ref = small.layer_output(lm, gs, x, np.random.default_rng(1))
    got = small.layer_output(lm, gs, torch.full((4, 3), 0.5, dtype=torch.float64, requires_grad=True),
                             np.random.default_rng(1))
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(ParameterError, match="complex"):
        small.layer_output(lm, gs, x + 0j, rng)


def test_fit_warns_that_v2_and_floating_reads_are_not_modelled(cfg):
    """The read model has no sneak currents; under 'V/2' reads check failed
    its bins with nothing said at the fit (found by review)."""
    from dataclasses import replace

    import xbarsim.programming as programming

    real_quiet, filters = programming.program_quietly, []

    def program_quietly(*args, **kwargs):  # the filters in force while the fit programs
        filters.append(list(warnings.filters))
        return real_quiet(*args, **kwargs)

    with pytest.warns(Warning) as record:
        before = list(warnings.filters)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(programming, "program_quietly", program_quietly)
            Surrogate.fit(replace(cfg, read_scheme="V/2"), n_transfers=4, layers=((1, 2),), n_fail_devices=0)
    # no process-wide filter of its own: it hid other threads' warnings (found by review)
    assert filters and all(f == before for f in filters)
    messages = [str(w.message) for w in record]
    assert sum("read_scheme='V/2' the sensed current also carries the bit line's sneak" in m for m in messages) == 1
    # one warning of the unconverged devices for the whole fit, not one per programmed tile (found by review)
    assert [m.split(" left")[0] for m in messages if " left " in m] == ["the surrogate fit's programming"]


def test_a_one_bin_surrogate_penalises_the_variance_it_samples(small):
    """`fit(n_bins=1)` and `load` take one target bin, and sampling works
    with it, but the penalty's interpolation between bin centres divided 0
    by 0 and its NaN was refused as a penalty "beyond float64" (found by
    review)."""
    one = dataclasses.replace(small, bin_edges=small.bin_edges[[0, -1]], own_mean=small.own_mean[:1].copy(),
                              own_std=np.array([float(np.mean(small.own_std))]))
    rng = np.random.default_rng(1)
    W, b = rng.uniform(-1, 1, (3, 5)), rng.uniform(-1, 1, 3)
    lm = map_layer(W, b, one.cfg)
    gs, _ = one.sample_tiles(lm, np.random.default_rng(0), n=4000, noise=True, failures=False)
    We, be = lm.effective_weights(gs)
    var = We.var(axis=0).sum() + be.var(axis=0).sum()
    pen = float(one.penalty(torch.tensor(W), torch.tensor(b), failures=False))
    assert pen == pytest.approx(var, rel=0.03)


def test_evaluate_surrogate_reads_every_layer_with_read_noise(small, monkeypatch):
    """Its docstring: each transfer draws its programmed conductances, then
    the read noise of each layer in turn. Scoring without the read noise
    passed every test (found by mutation testing)."""
    from xbarsim.train import evaluate_surrogate

    asked = []
    layer_output = Surrogate.layer_output

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("noise", True))
        return layer_output(self, *args, **kwargs)

    monkeypatch.setattr(Surrogate, "layer_output", spy)
    rng = np.random.default_rng(2)
    layers = [(rng.normal(size=(8, 2)), rng.normal(size=8)), (rng.normal(size=(1, 8)), rng.normal(size=1))]
    x = rng.uniform(0, 1, (5, 2))
    evaluate_surrogate(layers, small, x, np.array([0, 1, 0, 1, 1]), n=3, chunk=2)
    assert asked == [True] * (3 * 2)  # every transfer, every layer


def test_program_tile_samples_the_documented_law(small):
    """The module docstring's law, checked on the samples: a device's
    relative error is ``m(t) + kappa_read delta_read + s(t) z1`` (own
    write-verify) plus the drift ``dm + ds z2``, with ``z1`` drawn from the
    quantiles `own_z`. The read-drop term entering with the wrong sign, and
    ``z1`` drawn mirrored (its quantiles are skewed: -1.9 to +2.9), both
    passed every test (found by mutation testing)."""
    from xbarsim.train.surrogate import _Z_LEVELS, _quantile_moments, _read_drop, tile_features

    cfg = small.cfg
    lo, hi = cfg.g_window
    t = np.random.default_rng(4).uniform(lo, hi, (9, 16))
    n = 4000
    oi, _, _ = tile_features(t.shape, cfg.order)
    dev = cfg.device
    dr = _read_drop(t, oi, cfg.r_wl, cfg.r_bl, 0.5 * (dev.g_init_lo + dev.g_init_hi))
    m, s = small.own_mean_std(t)
    assert np.ptp(small.kappa_read * dr) > 5 * s.max()  # the read drop matters on this tile

    # the mean of every device, own error and drift together
    stack = np.broadcast_to(t, (n,) + t.shape)  # one tile programmed n times
    g, stuck = small.program_tile(stack, np.random.default_rng(5), failures=False)
    assert not stuck.any()
    dm, ds = small.drift_mean_std(t)
    (mu1, v1), (mu2, v2) = _quantile_moments(small.own_z), _quantile_moments(small.drift_z)
    expect = 1.0 + m + small.kappa_read * dr + s * mu1 + dm + ds * mu2
    se = np.sqrt(s**2 * v1 + ds**2 * v2) / np.sqrt(n)
    np.testing.assert_array_less(np.abs((g / t).mean(axis=0) - expect), 6 * se + 1e-12)

    # the own error alone (no drift): its standardised residuals follow own_z
    quiet = dataclasses.replace(small, drift_mean_coef=np.zeros_like(small.drift_mean_coef),
                                drift_var_coef=np.zeros_like(small.drift_var_coef))
    g, _ = quiet.program_tile(stack, np.random.default_rng(6), failures=False)
    z = ((g / t - 1.0 - m - small.kappa_read * dr) / s).ravel()
    q = small.own_z
    assert z.min() >= q[0] - 1e-9 and z.max() <= q[-1] + 1e-9
    for level in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert np.quantile(z, level) == pytest.approx(np.interp(level, _Z_LEVELS, q), abs=0.03)


def test_the_fitted_quantile_tables_are_standardised(small, asym):
    """`own_mean_std` and `drift_mean_std` return a location and a *scale*:
    a sample is location + scale z, z from the fitted quantiles, whose
    variance is near 1 ("not exactly 1": 1.09 and 0.97 for `small`). The
    drift's variance coefficients left in the units of the fit's internal
    normalisation drew the same samples (the scale and the quantiles moved
    by reciprocal factors) but made `drift_mean_std`'s scale 25x the drift's
    spread and its quantiles' variance 1/640 (found by mutation testing)."""
    from xbarsim.train.surrogate import _quantile_moments

    for sur in (small, asym):
        for table in (sur.own_z, sur.drift_z):
            mean, var = _quantile_moments(table)
            assert abs(mean) < 0.25 and 0.8 < var < 1.25, (mean, var)


def test_penalty_counts_the_failures_mean_square_as_sampled(small):
    """The penalty's failure term is ``p_lrs E[(G_lrs - G)^2] + p_hrs
    E[(G_hrs - G)^2]`` per device, the expectation over the conductances
    `program_tile` draws for stuck devices. A 1 x 1 layer maps its weight
    onto one device at g_max and one at g_min, and each device's mean square
    is its own, so sampling checks it exactly (no cross terms). Leaving out
    the stuck conductances' spread (``v``: 4-5 % of the term here) passed
    every test (found by mutation testing)."""
    g_min, g_max = small.cfg.g_window
    k = 0.5 / (small.p_lrs + small.p_hrs)  # half the devices stuck: a precise sample
    n = 400_000
    t = np.broadcast_to(np.array([[g_max, g_min]]), (n, 1, 2))
    g, stuck = small.program_tile(t, np.random.default_rng(7), noise=False, failures=k)
    assert 0.49 < (stuck > 0).mean() < 0.51
    sampled = ((g - t) ** 2).mean(axis=0).sum() / (g_max - g_min) ** 2  # alpha = span / max|w|
    w = torch.tensor([[1.0]], dtype=torch.float64)
    pen = float(small.penalty(w, None, failures=k)) - float(small.penalty(w, None, failures=False))
    assert pen == pytest.approx(sampled, rel=0.01)


def test_grid_outputs_from_batches_follow_the_kept_circuit_transfers(small, cfg):
    # pins grid_outputs_from_batches: the first n_max kept transfers, a logit (no sigmoid after the last
    # layer) close to the circuit's for the same conductances, read noise drawn from `seed`
    from xbarsim.train import evaluate_circuit
    from xbarsim.train.evaluate import grid_outputs_from_batches

    rng = np.random.default_rng(2)
    layers = [(rng.normal(size=(8, 2)), rng.normal(size=8)), (rng.normal(size=(1, 8)), rng.normal(size=1))]
    x = rng.uniform(0, 1, (5, 2))
    res, kept = evaluate_circuit(layers, cfg, x, np.array([0, 1, 0, 1, 1]), n=4, seed=5, chunk=2,
                                 progress=False, keep_conductances=3)
    got = grid_outputs_from_batches(small, kept, x, seed=1, n_max=2)
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, res.logits[:2], atol=0.05)
    assert grid_outputs_from_batches(small, kept, x, seed=1).shape == (3, 5)
    np.testing.assert_array_equal(grid_outputs_from_batches(small, kept, x, seed=1, n_max=2), got)
    assert not np.array_equal(grid_outputs_from_batches(small, kept, x, seed=2, n_max=2), got)


def test_evaluate_surrogate_counts_a_point_correct_where_its_logit_has_its_class(small):
    # pins MCResult.correct of the surrogate evaluation: class 1 where the logit is > 0, compared with y
    from xbarsim.train import evaluate_surrogate

    rng = np.random.default_rng(2)
    layers = [(rng.normal(size=(8, 2)), rng.normal(size=8)), (rng.normal(size=(1, 8)), rng.normal(size=1))]
    x = rng.uniform(0, 1, (5, 2))
    y = np.array([0, 1, 0, 1, 1])
    res = evaluate_surrogate(layers, small, x, y, n=3, chunk=2)
    np.testing.assert_array_equal(res.correct, (res.logits > 0) == (y == 1)[None, :])


def test_the_fit_gives_idle_devices_the_error_they_measured():
    """`own_at_min` is the (mean, std) of the own error of targets exactly at
    ``g_min`` (the idle device of a pair, reached from the initial state),
    measured apart from the bins. On records whose idle devices err by
    0.3 +- 0.05 and the others by 0 +- 0.01, the fit returns the former. The
    first bin's error taken in its place passed every test but the quick
    example's pinned figure: in fits of the simulator the two are close
    (found by mutation testing)."""
    cfg = xs.TransferConfig()
    lo, hi = cfg.g_window
    rng = np.random.default_rng(0)
    tiles = []
    for _ in range(20):
        t = rng.uniform(lo, hi, (3, 16))
        t[:, 1::2] = lo  # 480 idle devices in all
        tiles.append(t)
    t = np.concatenate([a.ravel() for a in tiles])
    idle = t == lo
    e = np.where(idle, 0.3 + 0.05 * rng.standard_normal(t.size), 0.01 * rng.standard_normal(t.size))
    R = {"t": t, "e_own": e, "dread": np.zeros_like(t), "drift": np.zeros_like(t),
         "stuck": np.zeros(t.size, np.int8), "g": t.copy(), "pulse_coef": np.array([10.0, 10.0, 0.0]),
         "tiles": (tiles, [np.ones(a.shape, bool) for a in tiles])}
    sur = Surrogate._from_samples(cfg, R, [], 4, meta={})
    mean, std = sur.own_at_min
    assert mean == pytest.approx(e[idle].mean(), abs=1e-12) and std == pytest.approx(e[idle].std(), rel=1e-9)
    assert abs(mean - 0.3) < 0.01 and abs(std - 0.05) < 0.005  # 5 standard errors of 480 draws
    assert sur.own_mean_std(np.array([lo]))[0][0] == pytest.approx(mean)


def test_drift_mean_takes_the_idle_devices_own_terms(small):
    """The drift mean is least squares on the bases times (1, ``t/g_max``,
    target at ``g_min``) (module docstring): with only the ``relax`` x
    [target at g_min] coefficient set, `drift_mean_std`'s location is the
    relaxation clock on the idle devices of pairs (targets exactly at
    ``g_min``) and 0 on the others. Idle devices taken by ``t < g_min`` (none)
    passed every test but the quick example's pinned figure (found by
    mutation testing)."""
    from xbarsim.train.surrogate import drift_bases

    cfg = small.cfg
    lo, hi = cfg.g_window
    t = np.random.default_rng(4).uniform(lo, hi, (5, 6))
    t[:, 1::2] = lo  # the idle device of each pair
    coef = np.zeros(12)
    coef[8] = 1.0  # relax x [t = g_min]
    dm, _ = dataclasses.replace(small, drift_mean_coef=coef).drift_mean_std(t)
    relax = drift_bases(t, small.pulse_coef, small.relax_cycles, cfg)[0][..., 0]
    idle = t == lo
    assert relax[idle].max() > 0.1  # the idle devices have a clock running
    np.testing.assert_allclose(dm[idle], relax[idle], rtol=1e-12)
    np.testing.assert_array_equal(dm[~idle], 0.0)
