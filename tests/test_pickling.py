"""README, "Pickling": each public object survives a pickle round trip and
gives the same results, bit for bit, unpickled (Dask ships them so).

The earlier checks pickled a Crossbar and a Solution and looked only at the
arrays' read-only flags, and an unpickled layer only at ``in_features``.
"""

import pickle

import numpy as np
import pytest
import torch

import xbarsim as xs


def _rt(obj):
    return pickle.loads(pickle.dumps(obj))


def _same(a, b):
    np.testing.assert_array_equal(a, b)


def test_a_solution_resolves_and_warm_starts_as_before_unpickled():
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-4, 5e-4, (12, 10))
    xbar = xs.Crossbar(g, r_wl=1.0, r_bl=2.0, v0=0.3)
    drives = dict(left=xs.Drive(rng.uniform(0, 0.3, 12), r=2.0), bottom=xs.Drive(0.0, r=1.0))
    sol = xs.solve(xbar, **drives, method="pcg", keep_factors=True)
    back = _rt(sol)
    for name in ("v_wl", "v_bl", "i_out", "i_device"):
        _same(getattr(back, name), getattr(sol, name))
    g2 = g.copy()
    g2[3, 4] *= 1.3
    for a, b in ((sol.resolve(g2), back.resolve(g2)),
                 (xs.solve(xbar.with_g(g2), **drives, method="pcg", x0=sol),
                  xs.solve(_rt(xbar).with_g(g2), **_rt(drives), method="pcg", x0=back))):
        _same(a.v_wl, b.v_wl)
        _same(a.i_out, b.i_out)
        assert a.iterations == b.iterations


def test_a_transfer_config_programs_the_same_array_unpickled():
    cfg = xs.TransferConfig(scheme="V/3", read_scheme="V/2-diff", r_wl=1.0, r_bl=0.5, tile=(8, 8))
    back = _rt(cfg)
    assert back == cfg and back.scheme is xs.BiasScheme.V3
    t = np.random.default_rng(1).uniform(1.2e-4, 4.8e-4, (5, 4))
    a, b = xs.program(t, cfg, seed=2), xs.program(t, back, seed=2)
    for name in ("g_final", "g_after_own", "pulses", "converged", "stuck_state"):
        _same(getattr(a, name), getattr(b, name))


def test_transfers_read_the_same_outputs_unpickled():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    x = rng.uniform(0, 1, (4, 5))
    cfg = xs.TransferConfig(tile=(4, 6))  # two tiles of rows, three of outputs
    prog = xs.transfer(W, b, cfg, seed=3)
    _same(xs.mvm(_rt(prog), x, seed=7), xs.mvm(prog, x, seed=7))
    many = xs.transfer_many(W, b, cfg, n=3, seed=4)
    back = _rt(many)
    _same(xs.mvm_many(back, x), xs.mvm_many(many, x))
    _same(xs.mvm(back[1], x), xs.mvm(many[1], x))


def test_a_surrogate_and_a_hardware_aware_network_sample_alike_unpickled():
    from xbarsim.train import Surrogate, convert, moons_network

    sur = Surrogate.fit(xs.TransferConfig(), n_transfers=2, layers=((8, 2), (1, 8)), n_fail_devices=200,
                        n_probe=2, seed=0)
    w, bias = np.random.default_rng(5).normal(size=(8, 2)), np.zeros(8)
    a, b = sur.sample_layer(w, bias, np.random.default_rng(9)), _rt(sur).sample_layer(w, bias,
                                                                                      np.random.default_rng(9))
    _same(a.weight, b.weight)
    _same(a.failed_weight, b.failed_weight)
    torch.manual_seed(0)
    net = convert(moons_network(), sur, seed=11)
    copy = _rt(net)
    x = torch.rand(6, 2, dtype=torch.float64)
    net.train()
    copy.train()
    outs = []
    for _ in range(3):  # the same stream: the same transfers, draw after draw
        outs.append(net(x))
        assert torch.equal(outs[-1], copy(x))
    assert not torch.equal(outs[0], outs[1])  # each draw a transfer of its own
    for p, q in zip(net.parameters(), copy.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("value", [xs.Drive([0.1, 0.2], r=1.0, floating=[False, True]), xs.BiasScheme.FLOATING,
                                   xs.presets.TIO2, xs.WriteVerify(max_pulses=12)])
def test_the_small_value_objects_pickle_to_equals(value):
    back = _rt(value)
    if isinstance(value, xs.Drive):
        _same(back.v, value.v)
        _same(back.floating, value.floating)
        assert back.r == value.r
    else:
        assert back == value


def _library_errors():
    from xbarsim import exceptions

    classes = [getattr(exceptions, name) for name in exceptions.__all__]
    return [c for c in classes if isinstance(c, type) and issubclass(c, Exception) and not issubclass(c, Warning)]


@pytest.mark.parametrize("cls", _library_errors(), ids=lambda c: c.__name__)
def test_every_error_comes_back_from_a_dask_worker_as_itself(cls):
    """Dask returns a worker's exception through tblib's reducer, which
    rebuilds exceptions with the built-in ``__reduce__`` as
    ``cls.__new__(cls)``: MemoryError refuses that for a subclass, and a
    MemoryLimitError raised on a worker reached the caller as a bare
    Exception holding its repr (found by review). Each class, with its
    attributes, survives that path and plain pickle."""
    tblib = pytest.importorskip("tblib.pickling_support")
    kwargs = {xs.CircuitError: dict(word_lines=[1], bit_lines=[2]),
              xs.ConvergenceError: dict(residual_history=np.array([1.0, 0.5]), iterations=1),
              xs.DriveOverflowError: dict(residual_history=np.array([1.0]), iterations=0)}.get(cls, {})
    try:
        raise cls("what went wrong; how to mend it", **kwargs)
    except cls as raised:
        rebuild, args, *_ = tblib.pickle_exception(raised)
        for back in (rebuild(*args), pickle.loads(pickle.dumps(raised))):
            assert type(back) is cls and str(back) == "what went wrong; how to mend it"
            for name, value in kwargs.items():
                np.testing.assert_array_equal(getattr(back, name), value)
