"""Properties of write-verify programming, `transfer` and `mvm` (hypothesis).

`program`: its result's invariants (the order a permutation in the named
order, stuck flags, converged devices inside the band, conductances in the
physical range, determinism); an explicit order equal to the named one; an
order that cannot matter (ideal devices on ideal wires) not mattering;
causality (changing later devices' targets leaves the earlier devices'
write-verify bit for bit); noise-free final reads equal to `xs.solve` reads
of the final array, in every read scheme; a hard threshold leaving every
programmed device where its write-verify left it.

`transfer` / `mvm`: a read without a bias is odd in its inputs (linear and
sinh devices) and linear for linear devices; rows are read independently
of their order and company; the same bits for any input layout, dtype or
`row_offset` slicing, for any weight layout or dtype, on one or two
threads and any chunking; zero inputs read zero; mixed-sign inputs read
what `xs.solve` of each tile gives.

Adopted from a review's property hunt (2026-12-06), which found no failure
in the library.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xbarsim as xs
from test_transfer import _column_currents, _mvm_by_solve
from threads import with_threads

S = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
# the drawn cases include configurations that leave devices unconverged or read
# them through sneak paths, on purpose: the programming warnings say so
pytestmark = pytest.mark.filterwarnings(r"ignore:(programming|the transfer)\b:RuntimeWarning")


def fl(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def layers(draw, bias=None, max_out=5, max_in=6):
    out_f = draw(st.integers(1, max_out))
    in_f = draw(st.integers(1, max_in))
    W = draw(hnp.arrays(np.float64, (out_f, in_f), elements=fl(-3, 3)))
    assume(np.abs(W).max() >= 1e-3)
    has_b = draw(st.booleans()) if bias is None else bias
    b = draw(hnp.arrays(np.float64, out_f, elements=fl(-3, 3))) if has_b else None
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    kw = dict(mapping=draw(st.sampled_from(["differential", "reference"])), input_scale=scale,
              tile=(draw(st.integers(1, 4)), draw(st.integers(2, 7))),
              r_wl=draw(st.sampled_from([0.0, 0.5, 3.0])), r_bl=draw(st.sampled_from([0.0, 0.5, 3.0])))
    B = draw(st.integers(1, 6))
    x = draw(hnp.arrays(np.float64, (B, in_f), elements=fl(-scale, scale)))
    return W, b, kw, x


def cfg_of(kw, sinh):
    dev = xs.presets.TIO2 if sinh else xs.presets.TIO2.linear()
    return xs.TransferConfig(device=dev, **kw)


@S
@given(layer=layers(bias=False), sinh=st.booleans())
def test_mvm_without_bias_is_odd_in_its_inputs(layer, sinh):
    """I(-V) = -I(V) for linear and sinh devices: a layer without a bias
    reads -x as -y (noise off), whatever the wires."""
    W, b, kw, x = layer
    prog = xs.transfer(W, b, cfg_of(kw, sinh), seed=2)
    y = xs.mvm(prog, x, noise=False)
    yn = xs.mvm(prog, -x, noise=False)
    tol = 1e-8 * _column_currents(prog, x) + 1e-15
    assert np.all(np.abs(yn + y) <= tol), np.max(np.abs(yn + y) - tol)


@S
@given(layer=layers(bias=False), a=fl(-1, 1), data=st.data())
def test_mvm_of_linear_devices_is_linear_in_its_inputs(layer, a, data):
    W, b, kw, x = layer
    prog = xs.transfer(W, b, cfg_of(kw, False), seed=3)
    x2 = data.draw(hnp.arrays(np.float64, x.shape, elements=fl(-kw["input_scale"], kw["input_scale"])))
    y1 = xs.mvm(prog, x, noise=False)
    y2 = xs.mvm(prog, x2, noise=False)
    y12 = xs.mvm(prog, (x + x2) / 2, noise=False)
    ya = xs.mvm(prog, a * x, noise=False)
    tol = 1e-8 * (_column_currents(prog, x) + _column_currents(prog, x2)) + 1e-15
    assert np.all(np.abs(y12 - (y1 + y2) / 2) <= tol)
    assert np.all(np.abs(ya - a * y1) <= tol)


@S
@given(layer=layers(), sinh=st.booleans(), data=st.data())
def test_mvm_rows_are_independent_of_their_order_and_company(layer, sinh, data):
    """Without noise, each input row is read alone: permuting the rows
    permutes the outputs, and a row read alone (1-D) reads the same."""
    W, b, kw, x = layer
    prog = xs.transfer(W, b, cfg_of(kw, sinh), seed=4)
    y = xs.mvm(prog, x, noise=False)
    perm = data.draw(st.permutations(range(len(x))))
    yp = xs.mvm(prog, x[perm], noise=False)
    tol = 1e-8 * _column_currents(prog, x) + 1e-15
    assert np.all(np.abs(yp - y[perm]) <= tol[perm])
    k = data.draw(st.integers(0, len(x) - 1))
    y1 = xs.mvm(prog, x[k], noise=False)
    assert y1.shape == (1, W.shape[0])
    assert np.all(np.abs(y1[0] - y[k]) <= tol[k])


@S
@given(layer=layers(), sinh=st.booleans(), seed=st.integers(0, 2**64 - 1), data=st.data())
def test_mvm_with_noise_is_bit_identical_for_any_layout_dtype_and_slicing(layer, sinh, seed, data):
    """The same inputs as float32, Fortran order, a strided view or a list
    read the same bits; reading rows b: with row_offset=b reads the same bits
    as rows b: of the whole call."""
    W, b, kw, x = layer
    x = x.astype(np.float32).astype(np.float64)  # exactly representable in float32
    prog = xs.transfer(W, b, cfg_of(kw, sinh), seed=5)
    y = xs.mvm(prog, x, seed=seed)
    np.testing.assert_array_equal(xs.mvm(prog, x, seed=seed), y)  # deterministic
    big = np.zeros((2 * x.shape[0], 3 * x.shape[1]))
    big[::2, ::3] = x
    for xx in (x.astype(np.float32), np.asfortranarray(x), big[::2, ::3], x.tolist()):
        np.testing.assert_array_equal(xs.mvm(prog, xx, seed=seed), y)
    off = data.draw(st.integers(0, len(x) - 1))
    np.testing.assert_array_equal(xs.mvm(prog, x[off:], seed=seed, row_offset=off), y[off:])


@S
@given(layer=layers(bias=False), sinh=st.booleans())
def test_zero_inputs_read_zero_without_a_bias(layer, sinh):
    W, b, kw, x = layer
    prog = xs.transfer(W, b, cfg_of(kw, sinh), seed=6)
    y = xs.mvm(prog, np.zeros_like(x), seed=1)
    assert np.all(y == 0.0), y


@S
@given(layer=layers(), sinh=st.booleans(), seed=st.integers(0, 2**64 - 1))
def test_transfer_is_deterministic_and_transfer_many_starts_with_it(layer, sinh, seed):
    W, b, kw, x = layer
    cfg = cfg_of(kw, sinh)
    a = xs.transfer(W, b, cfg, seed=seed)
    c = xs.transfer(W, b, cfg, seed=seed)
    for k in range(len(a.g)):
        np.testing.assert_array_equal(a.g[k], c.g[k])
        np.testing.assert_array_equal(a.pulses[k], c.pulses[k])
    many = xs.transfer_many(W, b, cfg, n=2, seed=seed, chunk=1)
    for k in range(len(a.g)):
        np.testing.assert_array_equal(many.g[k][0], a.g[k])
        np.testing.assert_array_equal(many.converged[k][0], a.converged[k])
        np.testing.assert_array_equal(many.stuck_state[k][0], a.stuck_state[k])
        np.testing.assert_array_equal(many.pulses[k][0], a.pulses[k])
    np.testing.assert_array_equal(xs.mvm(many[0], x), xs.mvm(a, x))


@st.composite
def arrays_to_program(draw):
    M, N = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dev = xs.presets.TIO2
    t = draw(hnp.arrays(np.float64, (M, N), elements=fl(dev.g_min, dev.g_max)))
    cfg = xs.TransferConfig(
        device=draw(st.sampled_from([dev, dev.linear(), dev.ideal(), dev.ideal().linear()])),
        scheme=draw(st.sampled_from(["V/2", "V/3", "floating"])),
        read_scheme=draw(st.sampled_from(["grounded", "V/2", "V/2-diff", "floating"])),
        order=draw(st.sampled_from(["column-major", "row-major"])),
        tolerance=draw(st.sampled_from([0.01, 0.05])),
        r_wl=draw(st.sampled_from([0.0, 1.0, 5.0])), r_bl=draw(st.sampled_from([0.0, 1.0, 5.0])))
    return t, cfg


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**64 - 1))
def test_program_result_invariants(case, seed):
    target, cfg = case
    M, N = target.shape
    r = xs.program(target, cfg, seed=seed)
    dev = cfg.device
    # order_index: a permutation, in the configured order
    assert sorted(r.order_index.ravel().tolist()) == list(range(M * N))
    ii, jj = np.indices((M, N))
    expect = jj * M + ii if cfg.order.value == "column-major" else ii * N + jj
    np.testing.assert_array_equal(r.order_index, expect)
    np.testing.assert_array_equal(r.target, target)
    np.testing.assert_array_equal(r.stuck, r.stuck_state != 0)
    assert set(np.unique(r.stuck_state).tolist()) <= {0, 1, 2}
    assert not np.any(r.converged & r.stuck)
    assert np.all(r.pulses >= 0) and np.all(r.pulses <= cfg.write_verify.max_pulses)
    # converged devices read inside the band at their last verify
    band = np.abs(r.read_after_own / r.target - 1)
    assert np.all(band[r.converged] <= cfg.tolerance * (1 + 1e-12)), band[r.converged].max()
    # working devices stay in the physical range
    w = ~r.stuck
    for g in (r.g_after_own, r.g_final):
        assert np.all(np.isfinite(g))
        assert np.all(g[w] >= dev.g_lo * (1 - 1e-12)), g[w].min()
        assert np.all(g[w] <= dev.g_hi * (1 + 1e-12)), g[w].max()
    # determinism
    r2 = xs.program(target, cfg, seed=seed)
    for f in ("pulses", "g_after_own", "g_final", "read_after_own", "read_final", "converged", "stuck_state"):
        np.testing.assert_array_equal(getattr(r2, f), getattr(r, f), err_msg=f)


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**32))
def test_ideal_linear_devices_on_ideal_wires_all_converge_and_reads_are_true(case, seed):
    """Noise-free, linear devices, ideal wires, grounded reads: every device
    converges, its verify read is its true conductance, nothing moves after
    its own write-verify (no relaxation) ... except disturb from later pulses."""
    target, cfg = case
    cfg = replace(cfg, device=xs.presets.TIO2.ideal().linear(), r_wl=0.0, r_bl=0.0, read_scheme="grounded")
    r = xs.program(target, cfg, seed=seed)
    assert np.all(r.converged)
    np.testing.assert_allclose(r.read_after_own, r.g_after_own, rtol=1e-12)
    np.testing.assert_allclose(r.read_final, r.g_final, rtol=1e-12)


@st.composite
def orders(draw, M, N):
    perm = draw(st.permutations(range(M * N)))
    return np.array([(p // N, p % N) for p in perm], dtype=np.int64)


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**64 - 1), data=st.data())
def test_an_explicit_order_is_the_named_order_and_order_index_inverts_it(case, seed, data):
    target, cfg = case
    M, N = target.shape
    named = cfg.order.value
    cm = np.array([(i, j) for j in range(N) for i in range(M)]) if named == "column-major" else \
        np.array([(i, j) for i in range(M) for j in range(N)])
    a = xs.program(target, cfg, seed=seed)
    b = xs.program(target, cfg, seed=seed, order=cm)
    for f in ("order_index", "pulses", "g_after_own", "g_final", "read_after_own", "read_final", "stuck_state"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    order = data.draw(orders(M, N))
    c = xs.program(target, cfg, seed=seed, order=order)
    for k, (i, j) in enumerate(order):
        assert c.order_index[i, j] == k


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**64 - 1), data=st.data(),
       scheme=st.sampled_from(["V/2", "V/3"]), read=st.sampled_from(["grounded", "V/2-diff"]))
def test_ideal_devices_on_ideal_wires_program_the_same_in_any_order(case, seed, data, scheme, read):
    """No noise, no disturb (hard threshold), no wire drop, reads that see the
    selected device alone: every device's outcome is its own business, so
    any programming order gives the same conductances and pulse counts."""
    target, cfg = case
    M, N = target.shape
    cfg = replace(cfg, device=cfg.device.ideal(), r_wl=0.0, r_bl=0.0, scheme=scheme, read_scheme=read)
    a = xs.program(target, cfg, seed=seed)
    b = xs.program(target, cfg, seed=seed, order=data.draw(orders(M, N)))
    for f in ("pulses", "g_after_own", "g_final", "converged"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@S
@given(layer=layers(), sinh=st.booleans(), seed=st.integers(0, 2**32))
def test_transfer_takes_float32_fortran_strided_and_torch_weights_as_their_values(layer, sinh, seed):
    W, b, kw, x = layer
    W = W.astype(np.float32)
    b = None if b is None else b.astype(np.float32)
    cfg = cfg_of(kw, sinh)
    ref = xs.transfer(W.astype(np.float64), None if b is None else b.astype(np.float64), cfg, seed=seed)
    big = np.zeros((W.shape[0] * 2, W.shape[1] * 2), np.float32)
    big[::2, ::2] = W
    for WW in (W, np.asfortranarray(W), big[::2, ::2], torch.as_tensor(W), W.tolist()):
        p = xs.transfer(WW, b, cfg, seed=seed)
        for k in range(len(ref.g)):
            np.testing.assert_array_equal(p.g[k], ref.g[k])
        We, be = p.effective_weights()
        We0, be0 = ref.effective_weights()
        np.testing.assert_array_equal(We, We0)


@settings(S, max_examples=15)
@given(layer=layers(), sinh=st.booleans(), seed=st.integers(0, 2**32), n=st.integers(1, 5),
       chunk=st.integers(1, 5), data=st.data())
def test_transfer_many_batches_read_as_their_transfers_on_any_threads_and_chunks(layer, sinh, seed, n, chunk, data):
    W, b, kw, x = layer
    cfg = cfg_of(kw, sinh)
    ref = with_threads(1, lambda: xs.transfer_many(W, b, cfg, n=n, seed=seed, chunk=n))
    other = with_threads(2, lambda: xs.transfer_many(W, b, cfg, n=n, seed=seed, chunk=chunk))
    parts = list(xs.iter_transfers(W, b, cfg, n=n, seed=seed, chunk=chunk))
    for k in range(len(ref.g)):
        np.testing.assert_array_equal(other.g[k], ref.g[k])
        np.testing.assert_array_equal(np.concatenate([p.g[k] for p in parts]), ref.g[k])
    y1 = with_threads(1, lambda: xs.mvm_many(ref, x, seed=7))
    y2 = with_threads(2, lambda: xs.mvm_many(other, x, seed=7))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(np.concatenate([xs.mvm_many(p, x, seed=7) for p in parts]), y1)
    t = data.draw(st.integers(0, n - 1))
    np.testing.assert_array_equal(xs.mvm(ref[t], x, seed=7), y1[t])
    a = data.draw(st.integers(0, n - 1))
    bb = data.draw(st.integers(a, n))
    if bb > a:
        np.testing.assert_array_equal(xs.mvm_many(ref[a:bb], x, seed=7), y1[a:bb])
    # inputs per transfer
    xn = data.draw(hnp.arrays(np.float64, (n,) + x.shape, elements=fl(-kw["input_scale"], kw["input_scale"])))
    yn = with_threads(2, lambda: xs.mvm_many(ref, xn, seed=7))
    for t in range(n):
        np.testing.assert_array_equal(xs.mvm(ref[t], xn[t], seed=7), yn[t])
    We, be = ref.effective_weights()
    We0, be0 = ref[t].effective_weights()
    np.testing.assert_array_equal(We[t], We0)


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**64 - 1), data=st.data(), track=st.booleans())
def test_programming_is_causal(case, seed, data, track):
    """Devices programmed before the k-th do not see the later devices'
    targets: changing only the targets of devices k.. of the order leaves
    the earlier devices' own write-verify (pulses, g_after_own,
    read_after_own) bit for bit as it was."""
    target, cfg = case
    M, N = target.shape
    dev = cfg.device
    k = data.draw(st.integers(0, M * N - 1))
    a = xs.program(target, cfg, seed=seed, track=track)
    later = a.order_index >= k
    other = data.draw(hnp.arrays(np.float64, (M, N), elements=fl(dev.g_min, dev.g_max)))
    t2 = np.where(later, other, target)
    b = xs.program(t2, cfg, seed=seed, track=track)
    early = ~later
    for f in ("pulses", "g_after_own", "read_after_own", "converged"):
        np.testing.assert_array_equal(getattr(a, f)[early], getattr(b, f)[early], err_msg=f)
    np.testing.assert_array_equal(a.stuck_state, b.stuck_state)
    if track:
        K = M * N
        assert a.drift_reads.shape == (K, K)
        # reads of device q after device p (< k) finished are the same
        np.testing.assert_array_equal(a.drift_reads[:k, :k], b.drift_reads[:k, :k])


def sensed(g_arr, cell, cfg):
    """The verify read of `cell` by xs.solve, small-signal units (S)."""
    dev = cfg.device
    M, N = g_arr.shape
    i, j = cell
    v_read = cfg.write_verify.v_read
    xbar = xs.Crossbar(g_arr, r_wl=cfg.r_wl, r_bl=cfg.r_bl, v0=dev.v0)
    unit = v_read if dev.v0 is None else dev.v0 * np.sinh(v_read / dev.v0)
    rs = cfg.read_scheme.value
    if rs == "V/2-diff":
        d1 = xs.verify_drives((M, N), cell, v_read, "V/2")
        d2 = xs.verify_drives((M, N), cell, v_read, "V/2")
        left = d2["left"]
        v = np.array(np.broadcast_to(np.asarray(left.v, float), (M,)))
        v[i] = v_read / 2
        d2["left"] = xs.Drive(v, r=left.r, floating=left.floating)
        cur = xs.solve(xbar, **d1).i_out[j] - xs.solve(xbar, **d2).i_out[j]
        half = v_read / 2 if dev.v0 is None else dev.v0 * np.sinh(v_read / 2 / dev.v0)
        return cur / (unit - half)
    return xs.solve(xbar, **xs.verify_drives((M, N), cell, v_read, rs)).i_out[j] / unit


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**32))
def test_the_final_reads_of_a_noise_free_device_are_solves_of_the_final_array(case, seed):
    """Without read noise or relaxation, `read_final` is the verify read of
    the final array, as xs.solve reads it with verify_drives, in every read
    scheme and on resistive wires."""
    target, cfg = case
    cfg = replace(cfg, device=cfg.device.ideal(disturb=True))
    r = xs.program(target, cfg, seed=seed)
    M, N = target.shape
    for i in range(M):
        for j in range(N):
            ref = sensed(r.g_final, (i, j), cfg)
            assert abs(r.read_final[i, j] - ref) <= 1e-8 * abs(ref) + 1e-15, (i, j, r.read_final[i, j], ref)


@S
@given(case=arrays_to_program(), seed=st.integers(0, 2**32), scheme=st.sampled_from(["V/2", "V/3"]),
       r=st.sampled_from([0.0, 1.0]))
def test_a_hard_threshold_leaves_programmed_devices_where_their_write_verify_left_them(case, seed, scheme, r):
    """DeviceParams.ideal(): no disturb below the threshold, no relaxation:
    with ideal wires (and with 1 ohm wires, whose drop is mV) the half-selected
    cells of the default 40-pulse ramps (|Vp| <= 1.88 V) never reach
    threshold, so g_final == g_after_own for every working device."""
    target, cfg = case
    cfg = replace(cfg, device=cfg.device.ideal(), r_wl=r, r_bl=r, scheme=scheme)
    res = xs.program(target, cfg, seed=seed)
    np.testing.assert_array_equal(res.g_final, res.g_after_own)


@S
@given(layer=layers(), sinh=st.booleans())
def test_mvm_of_mixed_sign_inputs_agrees_with_solve(layer, sinh):
    """The suite checks mvm against xs.solve for inputs in [0, input_scale]
    only; negative read voltages here."""
    W, b, kw, x = layer
    # xs.solve refuses subnormal drive voltages (documented; mvm reads them): keep the reference defined
    x = np.where(np.abs(x) < 1e-290, 0.0, x)
    cfg = cfg_of(kw, sinh)
    prog = xs.transfer(W, b, cfg, seed=1)
    y = xs.mvm(prog, x, noise=False)
    ref = _mvm_by_solve(prog, x, cfg.device.v0, kw["r_wl"], kw["r_bl"])
    assert np.all(np.abs(y - ref) <= 1e-7 * _column_currents(prog, x) + 1e-15)
