"""Transfer benchmarks (pytest-benchmark): ``pytest bench/bench_transfer.py``.

Groups
------
paper-network
    A 2->8->1 network of the shape of Drolet et al.'s (random N(0, 1)
    weights, seed 0, not a trained one) with differential pairs and bias
    rows (3x16 + 9x2 tiles, 66 devices): ``N_TRANSFERS`` full transfers
    (write-verify on the circuit, V/2, 1 ohm wires) plus the MVM of 200
    inputs through each transferred network. Target: 10,000 transfers in
    <= 60 s on 2 cores; ``extra_info['extrapolated_10k_s']`` scales the
    measured time linearly to 10,000 (the work is per transfer).
program-64x64
    One 64x64 array fully programmed by write-verify on the circuit (V/2,
    1 ohm wires). Target <= 5 s. Also with 0 ohm wires (the solve-free
    path) and with the in-kernel circuit solves converged to 1e-6 of the
    drive instead of the default 1e-9 (``TransferConfig.solve_tol``; the
    read noise is 1e-3), reporting how far its pulses and final
    conductances land from the default's.
memory
    Peak traced memory (tracemalloc) of streaming ``iter_transfers`` +
    MVM at two n, and of ``transfer_many`` minus its result, at two n.
compile
    First-call compile time of the programming and MVM kernels in a fresh
    interpreter without the on-disk cache.
"""

import dataclasses
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

import xbarsim as xs

N_TRANSFERS = int(os.environ.get("XBARSIM_BENCH_TRANSFERS", "1000"))
_DEFAULT_64 = {}
"""The default-configuration 64x64 result, for the solve_tol comparison."""


def _network(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(8, 2)), rng.normal(size=8)), (rng.normal(size=(1, 8)), rng.normal(size=1))


def _run_network(n, seed=0):
    cfg = xs.TransferConfig()  # TIO2, V/2, grounded reads, 1 ohm wires, differential
    (W1, b1), (W2, b2) = _network()
    x = np.random.default_rng(1).uniform(0, 1, (200, 2))
    # layer 2 reads the hidden activations (up to 6.5 here) at up to V_read:
    # with layer 1's input_scale of 1 they drove its word lines to 1.3 V,
    # past the switching threshold (xs.mvm warned; found by review)
    hidden = float(np.maximum(x @ W1.T + b1, 0.0).max())
    l1 = xs.transfer_many(W1, b1, cfg, n=n, seed=seed)
    l2 = xs.transfer_many(W2, b2, dataclasses.replace(cfg, input_scale=hidden), n=n, seed=seed + 1)
    # a transfer's activations past that range saturate at V_read, a DAC's
    # full scale (unclipped, xs.mvm warns that those reads bend the product)
    y = l2.mvm(np.clip(l1.mvm(x), 0.0, hidden))
    return l1, l2, y


@pytest.fixture(scope="module", autouse=True)
def warm():
    _run_network(2)
    xs.program(np.full((4, 4), 3e-4), xs.TransferConfig())


@pytest.mark.benchmark(group="paper-network")
def test_paper_network_transfers(benchmark):
    t0 = time.perf_counter()
    l1, l2, y = benchmark.pedantic(_run_network, args=(N_TRANSFERS,), rounds=1, iterations=1)
    elapsed = time.perf_counter() - t0
    assert y.shape == (N_TRANSFERS, 200, 1)
    benchmark.extra_info.update(
        transfers=N_TRANSFERS, devices=sum(t.target.size for t in l1.mapping.tiles + l2.mapping.tiles),
        extrapolated_10k_s=elapsed * 10000 / N_TRANSFERS, target_10k_s=60.0,
        mean_pulses_per_device=float(np.mean(np.concatenate([p.ravel() for p in l1.pulses + l2.pulses]))),
    )


@pytest.mark.benchmark(group="program-64x64")
def test_program_64x64(benchmark):
    t = np.random.default_rng(0).uniform(100e-6, 500e-6, (64, 64))
    res = benchmark.pedantic(xs.program, args=(t, xs.TransferConfig()), kwargs=dict(seed=0),
                             rounds=1, iterations=1)
    _DEFAULT_64["res"] = res
    working = res.working
    # a real run: pulses within the budget (stuck devices take none), some
    # devices converged (the README's 74 % is recorded below, not asserted)
    assert 0 < res.pulses.max() <= xs.TransferConfig().write_verify.max_pulses
    assert res.converged[working].any()
    benchmark.extra_info.update(
        target_s=5.0, mean_pulses=float(res.pulses.mean()),
        converged_working=float(res.converged[working].mean()), solver_failures=res.solver_failures,
    )


@pytest.mark.benchmark(group="program-64x64")
def test_program_64x64_solve_tol_1e6(benchmark):
    """The same array and seed with ``solve_tol=1e-6``: the time, the share
    of devices whose pulse count changed and the largest relative change of
    a final conductance against the default tolerance (the default's result
    from `test_program_64x64` in the same run, or computed here, untimed,
    when that test was not run)."""
    t = np.random.default_rng(0).uniform(100e-6, 500e-6, (64, 64))
    cfg = xs.TransferConfig(solve_tol=1e-6)
    res = benchmark.pedantic(xs.program, args=(t, cfg), kwargs=dict(seed=0), rounds=1, iterations=1)
    benchmark.extra_info.update(mean_pulses=float(res.pulses.mean()))
    ref = _DEFAULT_64.get("res")
    if ref is None:
        ref = xs.program(t, xs.TransferConfig(), seed=0)
    benchmark.extra_info.update(
        pulses_changed=float(np.mean(res.pulses != ref.pulses)),
        g_final_max_rel_change=float(np.max(np.abs(res.g_final - ref.g_final) / ref.g_final)),
    )
    # the README's claim for this option: no device's pulse count changed
    np.testing.assert_array_equal(res.pulses, ref.pulses)


@pytest.mark.benchmark(group="program-64x64")
def test_program_64x64_ideal_wires(benchmark):
    """Same array with 0 ohm wires (the exact, solve-free path), for the ratio."""
    t = np.random.default_rng(0).uniform(100e-6, 500e-6, (64, 64))
    cfg = xs.TransferConfig(r_wl=0.0, r_bl=0.0)
    res = benchmark.pedantic(xs.program, args=(t, cfg), kwargs=dict(seed=0), rounds=1, iterations=1)
    benchmark.extra_info.update(mean_pulses=float(res.pulses.mean()))
    assert np.all(res.converged[res.working])  # without IR drop every working device reaches its band


def _peak_streaming(n):
    cfg = xs.TransferConfig()
    (W1, b1), _ = _network()
    x = np.random.default_rng(1).uniform(0, 1, (200, 2))
    tracemalloc.start()
    total = 0.0
    for part in xs.iter_transfers(W1, b1, cfg, n=n, seed=0, chunk=128):
        total += float(part.mvm(x).sum())
        del part
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _peak_collected(n):
    cfg = xs.TransferConfig()
    (W1, b1), _ = _network()
    tracemalloc.start()
    batch = xs.transfer_many(W1, b1, cfg, n=n, seed=0, chunk=128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = sum(a.nbytes for arrs in (batch.g, batch.converged, batch.stuck_state, batch.pulses) for a in arrs)
    return peak, result


@pytest.mark.benchmark(group="memory")
def test_memory_flat_in_n(benchmark):
    def measure():
        return {n: (_peak_streaming(n), _peak_collected(n)) for n in (256, 1024)}

    out = benchmark.pedantic(measure, rounds=1, iterations=1)
    info = {}
    for n, (stream_peak, (coll_peak, result)) in out.items():
        info[f"stream_peak_MB[n={n}]"] = stream_peak / 1e6
        info[f"collected_peak_minus_result_MB[n={n}]"] = (coll_peak - result) / 1e6
        info[f"result_MB[n={n}]"] = result / 1e6
    benchmark.extra_info.update(info)
    # flat: neither the streaming peak (iter_transfers + MVM) nor transfer_many's working memory
    # beyond its result grows with n (one chunk alive at a time)
    assert out[1024][0] < 1.5 * out[256][0]
    working = {n: coll_peak - result for n, (_, (coll_peak, result)) in out.items()}
    assert working[1024] < 1.5 * working[256]


@pytest.mark.benchmark(group="compile")
def test_compile_time(benchmark):
    code = ("import time, numpy as np, xbarsim as xs; t=time.perf_counter(); "
            "p=xs.transfer(np.ones((2,2)), np.zeros(2), xs.TransferConfig(), seed=0); xs.mvm(p, np.ones((1,2))); "
            "print(time.perf_counter()-t)")
    env = dict(os.environ, XBARSIM_NO_CACHE="1")

    def run():
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    seconds = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(first_call_compile_s=seconds)
