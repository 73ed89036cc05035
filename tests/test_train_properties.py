"""Properties of xbarsim.train (hypothesis).

The surrogate's layer sampling: a noise-free, failure-free sample is the
layer itself, and a seed fixes a sample; a weight is marked failed exactly
when a device it reads is stuck; `layer_output` does not change a bit with
its working budget or with the transfers and inputs beside it, and reads
without a bias are odd in the inputs. The layers: `convert` leaves the
model alone and `to_crossbar` programs what `xs.transfer` does; `rng_state`,
reseeding and deep copies reproduce samples; a sampled forward reads any
leading shape as its flattened rows; `restore_failed_` puts back exactly the
failed weights. The evaluations do not depend on their chunk or on the
points that follow.

Adopted from a review's property hunt (2026-12-06), which found no failure
in the library. The surrogates are small fits (6 transfers), one per mapping
and tile, shared by the module.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xbarsim as xs
from xbarsim.mapping import map_layer
from xbarsim.train import (HardwareAwareLinear, Surrogate, convert, evaluate_circuit, evaluate_statistical,
                           evaluate_surrogate, restore_failed_, sampling, snapshot_, to_crossbar)
from xbarsim.train.surrogate import failed_weights

S = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
# drawn layers are larger than the small surrogates' fitted tiles, and to_crossbar
# here programs a tile other than the surrogate's: both warnings are expected
pytestmark = [pytest.mark.filterwarnings("ignore:this .* layer maps to tiles of up to"),
              pytest.mark.filterwarnings("ignore:layer\\(s\\) .* were trained against a surrogate fitted for another")]

CFG = xs.TransferConfig()
_SUR = {}


def sur(mapping="differential", tile=(64, 64)):
    """A small fitted surrogate (cached per mapping / tile)."""
    key = (mapping, tile)
    if key not in _SUR:
        cfg = replace(CFG, mapping=mapping, tile=tile)
        _SUR[key] = Surrogate.fit(cfg, n_transfers=6, seed=3, n_fail_devices=2000)
    return _SUR[key]


def fl(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def layer(draw, max_out=6, max_in=5):
    out_f, in_f = draw(st.integers(1, max_out)), draw(st.integers(1, max_in))
    W = draw(hnp.arrays(np.float64, (out_f, in_f), elements=fl(-2, 2)))
    assume(np.abs(W).max() > 1e-3)
    b = draw(hnp.arrays(np.float64, out_f, elements=fl(-2, 2))) if draw(st.booleans()) else None
    return W, b


MAPPINGS = st.sampled_from([("differential", (64, 64)), ("reference", (64, 64)), ("differential", (3, 4))])


@S
@given(wb=layer(), mt=MAPPINGS, seed=st.integers(0, 2**32))
def test_noise_free_failure_free_sample_is_the_layer_and_samples_are_seeded(wb, mt, seed):
    W, b = wb
    s = sur(*mt)
    a = s.sample_layer(W, b, np.random.default_rng(seed), noise=False, failures=False)
    scale = max(np.abs(W).max(), 0 if b is None else np.abs(b).max())
    np.testing.assert_allclose(a.weight, W, rtol=0, atol=1e-12 * scale)
    if b is not None:
        np.testing.assert_allclose(a.bias, b, rtol=0, atol=1e-12 * scale)
    else:
        assert a.bias is None and a.failed_bias is None
    assert not a.failed_weight.any()
    assert a.weight.shape == W.shape and a.failed_weight.shape == W.shape
    # the same seed, the same draw (full noise and failures)
    x = s.sample_layer(W, b, np.random.default_rng(seed), noise=True, failures=True)
    y = s.sample_layer(W, b, np.random.default_rng(seed), noise=True, failures=True)
    np.testing.assert_array_equal(x.weight, y.weight)
    np.testing.assert_array_equal(x.failed_weight, y.failed_weight)


@S
@given(wb=layer(), mt=MAPPINGS, seed=st.integers(0, 2**32), rate=st.sampled_from([5.0, 30.0]))
def test_failed_weights_are_the_weights_whose_devices_are_stuck(wb, mt, seed, rate):
    """A weight is marked failed exactly when a device it reads is stuck:
    with noise off, an unmarked weight equals its layer's weight."""
    W, b = wb
    s = sur(*mt)
    a = s.sample_layer(W, b, np.random.default_rng(seed), noise=False, failures=rate)
    scale = max(np.abs(W).max(), 0 if b is None else np.abs(b).max())
    ok = ~a.failed_weight
    np.testing.assert_allclose(a.weight[ok], W[ok], rtol=0, atol=1e-12 * scale)
    if b is not None:
        okb = ~a.failed_bias
        np.testing.assert_allclose(a.bias[okb], b[okb], rtol=0, atol=1e-12 * scale)
    # tile-level: failed_weights of the sampled stuck codes
    lm = map_layer(W, b, s.cfg)
    gs, stuck = s.sample_tiles(lm, np.random.default_rng(seed), noise=False, failures=rate)
    fw, fb = failed_weights(lm, stuck)
    We, be = lm.effective_weights(gs)
    np.testing.assert_allclose(We[~fw], W[~fw], rtol=0, atol=1e-12 * scale)
    any_stuck = any(np.any(c != 0) for c in stuck)
    assert fw.any() or (fb is not None and fb.any()) or not any_stuck


@S
@given(wb=layer(), mt=MAPPINGS, seed=st.integers(0, 2**32), n=st.integers(1, 4), B=st.integers(1, 5),
       noise=st.booleans(), data=st.data())
def test_layer_output_is_independent_of_the_working_budget_and_of_company(wb, mt, seed, n, B, noise, data):
    """`layer_output`: ``max_elements`` does not change a bit; transfer t of
    n reads as transfer t alone when noise is off; shared inputs read as the
    same inputs given per transfer."""
    W, b = wb
    s = sur(*mt)
    lm = map_layer(W, b, s.cfg)
    gs, _ = s.sample_tiles(lm, np.random.default_rng(seed), n=n)
    x = data.draw(hnp.arrays(np.float64, (B, W.shape[1]), elements=fl(-1, 1)))
    ref = s.layer_output(lm, gs, x, np.random.default_rng(seed + 1), noise=noise)
    assert ref.shape == (n, B, W.shape[0])
    for budget in (1, 7, 10**9):
        y = s.layer_output(lm, gs, x, np.random.default_rng(seed + 1), noise=noise, max_elements=budget)
        np.testing.assert_array_equal(y, ref, err_msg=f"max_elements={budget}")
    xn = np.broadcast_to(x, (n,) + x.shape).copy()
    np.testing.assert_array_equal(s.layer_output(lm, gs, xn, np.random.default_rng(seed + 1), noise=noise), ref)
    if not noise:
        t = data.draw(st.integers(0, n - 1))
        one = s.layer_output(lm, [g[t:t + 1] for g in gs], x, np.random.default_rng(0), noise=False)
        np.testing.assert_allclose(one[0], ref[t], rtol=1e-12, atol=1e-15)


@S
@given(wb=layer(), mt=MAPPINGS, seed=st.integers(0, 2**32), data=st.data())
def test_surrogate_circuit_read_without_a_bias_is_odd_in_the_inputs(wb, mt, seed, data):
    """The surrogate's MVM model (sinh read, first-order IR drop) of a layer
    without a bias reads -x as -y, noise off, as the circuit does."""
    W, _ = wb
    s = sur(*mt)
    lm = map_layer(W, None, s.cfg)
    gs, _ = s.sample_tiles(lm, np.random.default_rng(seed), n=2)
    x = data.draw(hnp.arrays(np.float64, (3, W.shape[1]), elements=fl(-1, 1)))
    y = s.layer_output(lm, gs, x, np.random.default_rng(0), noise=False)
    yn = s.layer_output(lm, gs, -x, np.random.default_rng(0), noise=False)
    np.testing.assert_allclose(yn, -y, rtol=0, atol=1e-12 * np.abs(W).sum(axis=1).max())


@S
@given(wb=layer(), seed=st.integers(0, 2**20), data=st.data())
def test_convert_keeps_the_layer_and_to_crossbar_matches_transfer(wb, seed, data):
    W, b = wb
    lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=b is not None, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
        if b is not None:
            lin.bias.copy_(torch.as_tensor(b))
    net = torch.nn.Sequential(lin, torch.nn.Sigmoid())
    before = copy.deepcopy(net.state_dict())
    conv = convert(net, sur(), seed=seed)
    # the original is untouched
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert isinstance(conv[0], HardwareAwareLinear)
    assert torch.equal(conv[0].weight, lin.weight)
    x = torch.as_tensor(data.draw(hnp.arrays(np.float64, (4, W.shape[1]), elements=fl(-1, 1))))
    conv.eval()
    net.eval()
    # evaluation without sampling: nn.Linear's forward, bit for bit
    with sampling(conv, enabled=False):
        assert torch.equal(conv(x), net(x))
    # to_crossbar of the converted model programs what xs.transfer does
    cfg = xs.TransferConfig(tile=(4, 4))
    progs = to_crossbar(conv, cfg, seed=seed)
    ref = xs.transfer(W, b, cfg, seed=seed)
    for k in range(len(ref.g)):
        np.testing.assert_array_equal(progs[0].g[k], ref.g[k])
    progs2 = to_crossbar(net, cfg, seed=seed)
    for k in range(len(ref.g)):
        np.testing.assert_array_equal(progs2[0].g[k], ref.g[k])


@S
@given(wb=layer(), seed=st.integers(0, 2**32))
def test_layer_sampling_is_reproducible_under_reseed_and_rng_state(wb, seed):
    W, b = wb
    layer_ = HardwareAwareLinear(W.shape[1], W.shape[0], bias=b is not None, surrogate=sur(), seed=seed,
                                 dtype=torch.float64)
    with torch.no_grad():
        layer_.weight.copy_(torch.as_tensor(W))
        if b is not None:
            layer_.bias.copy_(torch.as_tensor(b))
    state = layer_.rng_state()
    a = layer_.sample(noise=True, failures=True)
    layer_.set_rng_state(state)
    c = layer_.sample(noise=True, failures=True)
    np.testing.assert_array_equal(a.weight, c.weight)
    layer_.reseed(seed)
    d = layer_.sample(noise=True, failures=True)
    np.testing.assert_array_equal(a.weight, d.weight)
    twin = copy.deepcopy(layer_)
    np.testing.assert_array_equal(twin.sample().weight, layer_.sample().weight)


@st.composite
def networks(draw):
    hidden = draw(st.integers(1, 4))
    outs = draw(st.sampled_from([1, 3]))
    W1 = draw(hnp.arrays(np.float64, (hidden, 2), elements=fl(-2, 2)))
    b1 = draw(hnp.arrays(np.float64, hidden, elements=fl(-2, 2)))
    W2 = draw(hnp.arrays(np.float64, (outs, hidden), elements=fl(-2, 2)))
    b2 = draw(hnp.arrays(np.float64, outs, elements=fl(-2, 2)))
    assume(np.abs(W1).max() > 1e-2 and np.abs(W2).max() > 1e-2)
    P = draw(st.integers(2, 8))
    x = draw(hnp.arrays(np.float64, (P, 2), elements=fl(-1, 1)))
    y = draw(hnp.arrays(np.int64, P, elements=st.integers(0, outs - 1 if outs > 1 else 1)))
    return [(W1, b1), (W2, b2)], x, y


@pytest.mark.filterwarnings("ignore")
@settings(S, max_examples=12)
@given(net=networks(), n=st.integers(1, 5), chunk=st.integers(1, 5), seed=st.integers(0, 2**40), data=st.data(),
       which=st.sampled_from(["statistical", "surrogate", "circuit"]))
def test_evaluations_are_independent_of_chunk_and_of_the_points_that_follow(net, n, chunk, seed, data, which):
    """Monte-Carlo evaluations: the chunk size changes no bit, and scoring a
    prefix of the points gives those points' logits of the full run."""
    layers_, x, y = net
    cfg = xs.TransferConfig(tile=(3, 4)) if which == "circuit" else CFG

    def run(xx, yy, ch):
        if which == "statistical":
            return evaluate_statistical(layers_, cfg, xx, yy, n=n, seed=seed, chunk=ch)
        if which == "surrogate":
            return evaluate_surrogate(layers_, sur(), xx, yy, n=n, seed=seed, chunk=ch)
        return evaluate_circuit(layers_, cfg, xx, yy, n=n, seed=seed, chunk=ch, progress=False)[0]

    full = run(x, y, n)
    other = run(x, y, chunk)
    np.testing.assert_array_equal(other.logits, full.logits)
    np.testing.assert_array_equal(other.correct, full.correct)
    k = data.draw(st.integers(1, len(x)))
    pre = run(x[:k], y[:k], chunk)
    np.testing.assert_array_equal(pre.logits, full.logits[:, :k])


def _hw_layer(W, b, seed, **kw):
    layer_ = HardwareAwareLinear(W.shape[1], W.shape[0], bias=b is not None, surrogate=sur(), seed=seed,
                                 dtype=torch.float64, **kw)
    with torch.no_grad():
        layer_.weight.copy_(torch.as_tensor(W))
        if b is not None:
            layer_.bias.copy_(torch.as_tensor(b))
    return layer_


@pytest.mark.filterwarnings("ignore")
@S
@given(wb=layer(), seed=st.integers(0, 2**32), lead=st.sampled_from([(), (1,), (3,), (2, 3)]), data=st.data())
def test_a_sampled_forward_reads_any_leading_shape_as_its_flattened_rows(wb, seed, lead, data):
    W, b = wb
    layer_ = _hw_layer(W, b, seed)
    layer_.train()
    x = torch.as_tensor(data.draw(hnp.arrays(np.float64, lead + (W.shape[1],), elements=fl(0, 1))))
    state = layer_.rng_state()
    y = layer_(x)
    assert y.shape == lead + (W.shape[0],)
    layer_.set_rng_state(state)
    flat = layer_(x.reshape(-1, W.shape[1]))
    assert torch.equal(y.reshape(-1, W.shape[0]), flat)


@pytest.mark.filterwarnings("ignore")
@S
@given(wb=layer(), seed=st.integers(0, 2**32), rate=st.sampled_from([5.0, 40.0]), data=st.data())
def test_restore_failed_puts_back_exactly_the_failed_weights(wb, seed, rate, data):
    W, b = wb
    layer_ = _hw_layer(W, b, seed, failures=rate, reparam=True)
    layer_.train()
    opt = torch.optim.Adam(layer_.parameters(), lr=0.1)
    x = torch.as_tensor(data.draw(hnp.arrays(np.float64, (4, W.shape[1]), elements=fl(0, 1))))
    for step in range(2):
        snapshot_(layer_)
        before_w = layer_.weight.detach().clone()
        before_b = None if b is None else layer_.bias.detach().clone()
        opt.zero_grad()
        y = layer_(x)
        y.square().sum().backward()
        # the mask of this forward
        fw, fb = layer_._failed_weight, layer_._failed_bias  # private: this forward's failure mask
        assert fw is not None
        fw = fw.clone()
        fb = None if fb is None else fb.clone()
        opt.step()
        restore_failed_(layer_)
        assert torch.equal(layer_.weight.detach()[fw], before_w[fw])
        if b is not None and fb is not None:
            assert torch.equal(layer_.bias.detach()[fb], before_b[fb])
