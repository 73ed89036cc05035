"""Bad arguments to the training API and the device model: each is a
`ParameterError` (or `MemoryLimitError`) that says what to give, raised
before any compute. Each case here was found by a review that threw bad
inputs at every public entry point: before, it was a raw TypeError /
ValueError / MemoryError from inside NumPy or torch, or was accepted and
silently meant something else."""

import io
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import xbarsim as xs
from xbarsim.exceptions import MemoryLimitError, ParameterError
from xbarsim.train import (Surrogate, TrainConfig, convert, evaluate_statistical, make_moons_split, moons_network,
                           train)
from xbarsim.train import load_csv_dir, sampling
from xbarsim.train.data import make_moons
from xbarsim.train.layers import HardwareAwareLinear, hardware_layers, to_crossbar
from xbarsim.train.metrics import per_point_accuracy
from xbarsim.train.training import predict_logits


@pytest.fixture(scope="module")
def sur():
    return Surrogate.fit(xs.TransferConfig(), n_transfers=3, seed=0, n_fail_devices=200)


@pytest.fixture(scope="module")
def data():
    return make_moons_split(40, 10, 10, seed=0)


def test_convert_checks_inplace_and_refuses_a_model_already_converted(sur):
    net = moons_network(8)
    with pytest.raises(ParameterError, match="inplace = 'no'; give True or False"):
        convert(net, sur, inplace="no")  # "no" is truthy: it converted the caller's model
    assert type(net[0]) is torch.nn.Linear
    once = convert(net, sur)
    other = Surrogate.fit(xs.TransferConfig(), n_transfers=3, seed=1, n_fail_devices=200)
    with pytest.raises(ParameterError, match=r"already hardware-aware \(0, 2\).*layer.surrogate = "):
        convert(once, other)  # kept the first surrogate in every layer without a word
    # what the message advises works
    for layer in hardware_layers(once):
        layer.surrogate = other
    assert all(layer.surrogate is other for layer in hardware_layers(once))
    mixed = torch.nn.Sequential(once[0], torch.nn.Sigmoid(), torch.nn.Linear(8, 1).double())
    with pytest.warns(RuntimeWarning, match=r"already hardware-aware \(0\)"):
        back = convert(mixed, sur)
    assert type(back[2]) is HardwareAwareLinear and back[2].surrogate.meta["seed"] == 0
    assert back[0].surrogate.meta["seed"] == 1  # left as it was (a deep copy of it)


@pytest.mark.parametrize("x, match", [
    (np.full((3, 2), np.nan), r"x holds NaN or inf at \[0, 0\], \[0, 1\], \[1, 0\] and 3 more; features must"),
    (np.ones((3, 2)) + 1j, "x must be real numbers; got complex"),
    ("abc", "x holds strings"),
    (None, "x is None"),
    (np.ones(2), r"x has shape \(2,\); give \(P, features\) points"),
])
def test_predict_logits_checks_its_features(x, match):
    with pytest.raises(ParameterError, match=match):
        predict_logits(moons_network(8), x)


def test_predict_logits_checks_its_model_and_takes_lists_and_tensors():
    with pytest.raises(ParameterError, match="model must be a torch.nn.Module"):
        predict_logits(None, np.ones((3, 2)))
    net = moons_network(8)
    x = np.random.default_rng(0).uniform(0, 1, (3, 2))
    ref = predict_logits(net, x)
    assert ref.shape == (3,)
    np.testing.assert_array_equal(predict_logits(net, x.tolist()), ref)
    np.testing.assert_array_equal(predict_logits(net, torch.tensor(x)), ref)


@pytest.mark.parametrize("call, match", [
    (lambda: Surrogate.fit(xs.TransferConfig(), n_transfers=40, n_fail_devices=0, n_bins=10**8), "n_bins=100000000"),
    (lambda: Surrogate.fit(xs.TransferConfig(), n_transfers=3, n_probe=10**11), "n_probe=100000000000"),
    (lambda: Surrogate.fit(xs.TransferConfig(), n_transfers=3, layers=[(10**5, 10**5)]), r"\(100000, 100000\)"),
    (lambda: evaluate_statistical(moons_network(8), xs.TransferConfig(), np.ones((5, 2)), np.ones(5), n=10**12),
     "statistical-model evaluation of 1000000000000 transfers"),
    (lambda: make_moons_split(n_train=10**10), "make_moons_split of 10000000"),
    (lambda: HardwareAwareLinear(10**6, 10**6), r"HardwareAwareLinear\(1000000, 1000000\)"),
], ids=["fit-n_bins", "fit-n_probe", "fit-layers", "evaluate-n", "moons-n", "layer-size"])
def test_sizes_that_cannot_fit_are_refused_before_anything_is_computed(call, match):
    """n_bins = 1e8 programmed the whole fit first, then NumPy raised a raw
    MemoryError for 197 GiB; the others were raw NumPy / torch errors."""
    with pytest.raises(MemoryLimitError, match=match):
        call()


def test_an_evaluation_chunk_that_cannot_fit_is_refused_before_it_starts(sur, monkeypatch):
    """The guard counted results and activations, not each chunk's sampled
    conductances and effective weights (~12 B per device and transfer:
    a 256-256-1 network at chunk 200 took 313 MiB against 16 MiB counted;
    with 400 MiB free, chunk 500 ended in NumPy's raw MemoryError), nor
    evaluate_circuit's kept conductances (found by review)."""
    from xbarsim import _memory
    from xbarsim.train.evaluate import EVAL_BYTES_PER_DEVICE, evaluate_circuit, evaluate_surrogate

    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(256, 256)), rng.normal(size=256)), (rng.normal(size=(1, 256)), rng.normal(size=1))]
    x, y = rng.uniform(0, 1, (10, 256)), np.zeros(10)
    devices = 2 * 257 * 257 + 2 * 257 * 2
    monkeypatch.setattr(_memory, "available_bytes", lambda: 400 * 2**20)
    assert EVAL_BYTES_PER_DEVICE * 500 * devices > 0.9 * 400 * 2**20  # what the chunk needs does not fit
    with pytest.raises(MemoryLimitError, match=r"statistical-model evaluation of 500 transfers .* lower chunk"):
        evaluate_statistical(layers, xs.TransferConfig(), x, y, n=500, chunk=500)
    with pytest.raises(MemoryLimitError, match=r"surrogate evaluation of 500 transfers"):
        evaluate_surrogate(layers, sur, x, y, n=500, chunk=500)
    small = [(rng.normal(size=(64, 64)), None), (rng.normal(size=(1, 64)), None)]
    monkeypatch.setattr(_memory, "available_bytes", lambda: 64 * 2**20)
    with pytest.raises(MemoryLimitError, match=r"circuit evaluation of 10000 transfers on 10 points, keeping 10000"
                                               r".* or keep_conductances"):
        evaluate_circuit(small, xs.TransferConfig(), rng.uniform(0, 1, (10, 64)), y, n=10**4, keep_conductances=10**4)


def test_a_forward_that_cannot_fit_is_refused_before_training_or_scoring(data):
    """train validates on every validation point at once and predict_logits
    scores every point at once: a broadcast x_val of 10**9 points trained a
    first epoch, then ended in torch's raw allocator error (64 GB for the
    hidden layer's outputs), as did predict_logits (found by review). The
    forward's size is measured on two points, before any step."""
    n = 10**11
    huge = replace(data, x_val=np.broadcast_to(data.x_val[:1], (n, 2)),
                   y_val=np.broadcast_to(np.asarray(data.y_val[:1], float), (n,)))
    net = moons_network(8)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(MemoryLimitError, match=r"training on 40 points, validated on 100000000000 at once .* "
                                               r"validate on fewer points \(data.x_val, data.y_val\)"):
        train(net, huge, TrainConfig(epochs=1), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))  # no step taken
    with pytest.raises(MemoryLimitError, match=r"the model's forward on 100000000000 points .* score fewer points"):
        predict_logits(net, np.broadcast_to(data.x_val[:1], (n, 2)))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool])
def test_integer_layers_are_refused_where_layers_are_read(dtype):
    """to_crossbar transferred an int32 layer without a word and
    network_layers listed an int64 one, where convert refuses them (found by
    review); each now says to train in a floating dtype."""
    from xbarsim.train import network_layers, to_crossbar

    lin = torch.nn.Linear(4, 3)
    lin.weight = torch.nn.Parameter(torch.ones(3, 4, dtype=dtype), requires_grad=False)
    lin.bias = torch.nn.Parameter(torch.ones(3, dtype=dtype), requires_grad=False)
    net = torch.nn.Sequential(lin)
    match = rf"a weight of shape \(3, 4\) is {dtype}, not a floating dtype; .* train the layer in torch.float32"
    with pytest.raises(ParameterError, match=match):
        to_crossbar(net, xs.TransferConfig(tile=(8, 8)))
    with pytest.raises(ParameterError, match=match):
        network_layers(net)


def test_a_forward_size_estimate_counts_each_module_output():
    """What the guard counts: the bytes of every module's output per point
    (hidden Linear 8, Sigmoid 8, output Linear 1, the Sequential's own 1:
    18 float64 values), from a forward of two points."""
    from xbarsim.train.training import _forward_bytes

    out, per_point = _forward_bytes(moons_network(8), torch.zeros((2, 2), dtype=torch.float64))
    assert out.shape == (2, 1) and per_point == 18 * 8


def test_read_only_features_are_copied_not_written_by_an_in_place_forward(data):
    """A read-only array (a broadcast view, np.load(mmap_mode="r")) was
    shared with torch, which warned that writing to it is undefined; a
    model that works in place on its input then changed the caller's
    read-only features (found by review). It is copied first."""

    class InPlace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1).double()

        def forward(self, x):
            return self.lin(x.mul_(2.0))

    x = np.ones((5, 2))
    x.flags.writeable = False
    predict_logits(InPlace(), x)
    assert np.all(x == 1.0)
    xr, xv = data.x_train.copy(), data.x_val.copy()
    xr.flags.writeable = False
    xv.flags.writeable = False
    frozen = replace(data, x_train=xr, x_val=xv)
    train(InPlace(), frozen, TrainConfig(epochs=1), progress=False)
    # x_val too: the training batches are copies anyway (fancy indexing), the
    # validation forward runs on x_val itself (a mutation audit)
    assert np.array_equal(xr, data.x_train) and np.array_equal(xv, data.x_val)
    # and the evaluations' check of the model's own forward, which runs it on
    # the test points (torch.as_tensor there too, found reading the change):
    # the forward is not the chain of its layers, and the points stay as given
    with pytest.raises(ParameterError, match="chain of its"):
        evaluate_statistical(InPlace(), xs.TransferConfig(), x, np.zeros(5), n=2)
    assert np.all(x == 1.0)


def test_a_surrogate_fit_that_cannot_fit_is_refused_before_programming(monkeypatch):
    """The fit's guard counted 0.21-0.58 of its peak (about 1 kB a device
    whatever n_bins was left out): with 25 MiB free, a 64 x 64 fit at
    n_bins 2 (18 MiB counted, 84 MiB measured) programmed for 25 s, then
    failed in SciPy (found by review)."""
    from xbarsim import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 60 * 2**20)
    with pytest.raises(MemoryLimitError, match=r"Surrogate.fit on layers \[\(64, 64\)\] with n_transfers=10, n_bins=2"):
        Surrogate.fit(xs.TransferConfig(r_wl=0.0, r_bl=0.0), layers=[(64, 64)], n_transfers=10, n_bins=2)


def test_train_under_no_grad_or_inference_mode_trains_as_outside(data):
    """train called inside torch.no_grad() or torch.inference_mode() failed
    at its first backward with torch's "element 0 of tensors does not
    require grad" (found by review): it turns gradients on itself, and
    trains as it does outside them."""
    config = TrainConfig(epochs=2, batch_size=16)
    plain = moons_network(4)
    train(plain, data, config, progress=False)
    for context in (torch.no_grad, torch.inference_mode):
        net = moons_network(4)
        with context():
            result = train(net, data, config, progress=False)
            assert not torch.is_grad_enabled()  # the caller's mode given back
        assert len(result.loss_history) == 2
        assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), net.parameters()))


def test_train_checks_score_and_progress_before_the_first_epoch(data):
    net = moons_network(8)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ParameterError, match="score = 'acc'; give None .* or a function"):
        train(net, data, TrainConfig(epochs=20, select_every=20), progress=False, score="acc")
    with pytest.raises(ParameterError, match="progress = 'no'; give True or False"):
        train(net, data, TrainConfig(epochs=2), progress="no")
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # nothing trained
    with pytest.raises(ParameterError, match="score\\(model\\) returned 'x' at epoch 0; it must be a finite"):
        train(net, data, TrainConfig(epochs=2, select_every=1), progress=False, score=lambda m: "x")
    # nor is a Python or NumPy boolean, as a boolean tensor is not (True was read as 1.0: found by
    # mutation testing)
    for value in (True, np.bool_(False)):
        with pytest.raises(ParameterError, match=r"score\(model\) returned .* at epoch 0; it must be a finite number"):
            train(moons_network(2), data, TrainConfig(epochs=2, select_every=1), progress=False,
                  score=lambda m, v=value: v)
    # a one-element tensor or array is a number
    result = train(moons_network(8), data, TrainConfig(epochs=2, select_every=1), progress=False,
                   score=lambda m: torch.tensor(0.5))
    assert result.score_history[:, 1].tolist() == [0.5, 0.5]


def test_train_refuses_features_that_are_not_numbers(data):
    bad = replace(data, x_train=np.full(data.x_train.shape, "a"))
    with pytest.raises(ParameterError, match="data.x_train holds strings"):
        train(moons_network(8), bad, TrainConfig(epochs=1), progress=False)


@pytest.mark.parametrize("call, match", [
    (lambda s: HardwareAwareLinear(2, 2, bias="no"), "bias = 'no'"),  # built a layer with a bias
    (lambda s: convert(moons_network(8), s)[0].sample(noise="x"), "noise = 'x'"),
    (lambda s: convert(moons_network(8), s)[0].sample(failures="x"), "failures = 'x'"),
    (lambda s: Surrogate.fit(xs.TransferConfig(), n_transfers=3, progress="x"), "progress = 'x'"),
    (lambda s: xs.presets.TIO2.ideal(disturb="x"), "disturb = 'x'"),
    (lambda s: TrainConfig(keep_best="no"), "TrainConfig.keep_best = 'no'"),  # kept the best
    (lambda s: load_csv_dir(".", scale="no"), "scale = 'no'"),  # scaled
    (lambda s: _enter(sampling(convert(moons_network(8), s), "x")), "enabled = 'x'"),  # sampled
], ids=["bias", "sample-noise", "sample-failures", "fit-progress", "ideal-disturb", "keep-best", "csv-scale",
        "sampling"])
def test_flags_take_true_or_false_only(sur, call, match):
    with pytest.raises(ParameterError, match=match + "; give True or False"):
        call(sur)


def _enter(context):
    with context:
        pass


def test_from_linear_and_load_csv_dir_name_what_they_take(sur):
    """A Conv1d or None given to from_linear, and None to load_csv_dir, were
    bare AttributeError / TypeError (found by review)."""
    for layer in (torch.nn.Conv1d(2, 3, 1), None):
        with pytest.raises(ParameterError, match=f"from_linear copies an nn.Linear; got {type(layer).__name__}"):
            HardwareAwareLinear.from_linear(layer, surrogate=sur)
    with pytest.raises(ParameterError, match="directory = None; give the path"):
        load_csv_dir(None)


def test_to_crossbar_checks_cfg_before_the_surrogate_compares_it(sur):
    with pytest.raises(ParameterError, match="cfg must be an xbarsim.TransferConfig .*got str"):
        to_crossbar(convert(moons_network(8), sur), "x")


def test_surrogate_save_refuses_what_is_not_a_path_or_binary_file(sur, tmp_path):
    with pytest.raises(ParameterError, match="path must be a file name or a binary file object; got NoneType"):
        sur.save(None)
    with open(tmp_path / "s.npz", "w") as text, pytest.raises(ParameterError, match="binary file object"):
        sur.save(text)
    buffer = io.BytesIO()
    assert sur.save(buffer) is buffer and Surrogate.load(io.BytesIO(buffer.getvalue())).matches(sur.cfg)


@pytest.mark.parametrize("scale", [1e300, 1e-300, 0.0, np.inf])
def test_surrogate_fit_takes_weight_scales_it_can_represent(scale):
    """1e300 fitted and saved inf IR-drop figures, with overflow warnings only."""
    with pytest.raises(ParameterError, match=r"weight_scale = .*; a number in \[1e-100, 1e100\]"):
        Surrogate.fit(xs.TransferConfig(), n_transfers=3, weight_scale=scale)


@pytest.mark.parametrize("field, value, match", [
    ("read_noise", 1.0, "read_noise = 1.0; the relative std of one read must be < 1"),
    ("read_noise", 1e10, "read_noise = 10000000000.0"),
    ("relax_fast_mean", -1.5, r"relax_fast_mean = -1.5; .* must lie in \[-1, 1\]"),
    ("c2c", 3.5, "c2c = 3.5; the cycle-to-cycle log-std must be at most 3"),
])
def test_device_parameters_the_model_cannot_mean_are_refused(field, value, match):
    """read_noise = 1e10 programmed arrays to reads of -4e6 S, with
    converged=False as the only sign."""
    with pytest.raises(ParameterError, match=match):
        replace(xs.presets.TIO2, **{field: value})
    replace(xs.presets.TIO2, read_noise=0.5, relax_fast_mean=-1.0, c2c=3.0)  # the edges still take
    replace(xs.presets.TIO2, relax_fast_mean=1.0)


def test_small_refusals():
    with pytest.raises(ParameterError, match="v holds strings"):
        xs.presets.TIO2.read_current(1e-4, "x")
    with pytest.raises(ParameterError, match="correct has rows of different lengths"):
        per_point_accuracy([[1], [1, 0]])
    with pytest.raises(ParameterError, match="correct must be boolean .* hits; got <U2"):
        per_point_accuracy("ab")  # "correct has shape ()"
    for args, match in (((-1, 0.1, 0), "n = -1"), ((10, -0.1, 0), "noise must be a finite number >= 0; got -0.1"),
                        # points of inf and NaN without a word (found by mutation testing)
                        ((10, float("inf"), 0), "noise must be a finite number >= 0; got inf"),
                        ((10, 0.1, 2**32), "state = ")):
        with pytest.raises(ParameterError, match=match):
            make_moons(*args)
    with pytest.raises(ParameterError, match=r"tile = \(1, 1\) has fewer than 2 columns"):
        xs.TransferConfig(tile=(1, 1))  # refused only when a layer was mapped
    with pytest.raises(ParameterError, match="bias is a TransferConfig: the configuration goes third"):
        xs.transfer(np.ones((2, 2)), xs.TransferConfig())


def test_booleans_are_zero_and_one_for_training_and_prediction(data):
    """The evaluations take boolean features and labels as 0 / 1; train and
    predict_logits, once they checked their inputs, refused them (found by
    review)."""
    as_bool = replace(data, y_train=data.y_train.astype(bool), y_val=data.y_val.astype(bool))
    a = train(moons_network(8), as_bool, TrainConfig(epochs=3, seed=1), progress=False)
    b = train(moons_network(8), data, TrainConfig(epochs=3, seed=1), progress=False)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    net = moons_network(8)
    x = np.random.default_rng(0).uniform(0, 1, (4, 2)) > 0.5
    np.testing.assert_array_equal(predict_logits(net, x), predict_logits(net, x.astype(float)))


def test_lists_of_tensor_rows_that_require_grad_are_taken_everywhere(data):
    """A list of tensor rows requiring grad was torch's bare RuntimeError in
    the evaluations, the metrics and train (whose checks passed it and whose
    conversion then failed; found by review). Int labels other than 0 / 1
    are named as numbers (they read "np.float64(2.0)")."""
    rows = lambda a: list(torch.tensor(np.asarray(a, dtype=float)).requires_grad_().unbind(0))
    a = train(moons_network(8), data, TrainConfig(epochs=2, seed=1), progress=False)
    as_rows = replace(data, x_train=rows(data.x_train), y_train=rows(data.y_train))
    b = train(moons_network(8), as_rows, TrainConfig(epochs=2, seed=1), progress=False)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    net, cfg = moons_network(8), xs.TransferConfig()
    want = evaluate_statistical(net, cfg, data.x_test, data.y_test, n=3)
    got = evaluate_statistical(net, cfg, rows(data.x_test), rows(data.y_test), n=3)
    np.testing.assert_array_equal(got.correct, want.correct)
    np.testing.assert_array_equal(per_point_accuracy(rows(want.correct.astype(float))),
                                  per_point_accuracy(want.correct))
    nested = [[torch.ones(2, dtype=torch.float64, requires_grad=True)]]  # deeper than one list: refused by name
    with pytest.raises(ParameterError, match=r"correct is a nested list that NumPy cannot convert .*torch\.stack"):
        per_point_accuracy(nested)
    with pytest.raises(ParameterError, match="correct is a nested list that NumPy cannot convert"):
        per_point_accuracy([[torch.ones(2, dtype=torch.bfloat16)]])  # NumPy's TypeError


    class Broken:  # not a nested list: not told about nested lists and torch.stack
        def __array__(self, *args, **kwargs):
            raise TypeError("no array here")

    with pytest.raises(ParameterError, match=r"^correct \(Broken\) does not convert to an array \(no array here\)"):
        per_point_accuracy(Broken())
    with pytest.raises(ParameterError, match="x is a nested list that NumPy cannot convert"):
        evaluate_statistical(net, cfg, [rows(data.x_test)], data.y_test, n=3)
    with pytest.raises(ParameterError, match=r"^data.y_train holds 2; train fits binary classifiers"):
        train(moons_network(8), replace(data, y_train=np.where(data.y_train > 0, 2, 0)), TrainConfig(epochs=1),
              progress=False)


def test_each_evaluation_scores_a_network_of_several_outputs(sur):
    """A 3-output network was refused by every evaluation, each pointing to
    its own route (found by review); they now class each point by its
    largest logit (tests/test_train_multiclass.py)."""
    from xbarsim.train import evaluate_circuit, evaluate_surrogate

    multi = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Sigmoid(), torch.nn.Linear(6, 3)).double()
    x, y = np.zeros((4, 2)), np.array([0, 1, 2, 1])
    cfg = xs.TransferConfig()
    for res in (evaluate_circuit(multi, cfg, x, y, n=2, progress=False)[0], evaluate_surrogate(multi, sur, x, y, n=2),
                evaluate_statistical(multi, cfg, x, y, n=2)):
        assert res.logits.shape == (2, 4, 3) and res.correct.shape == (2, 4)
    # the converted route works for it too (and sampling the unconverted model, which drew nothing, is refused)
    hw = convert(multi, sur)
    x = torch.rand(5, 2, dtype=torch.float64)
    hw.eval()
    with sampling(hw):
        draws = [hw(x) for _ in range(2)]
    assert draws[0].shape == (5, 3) and not torch.equal(draws[0], draws[1])
    with pytest.raises(ParameterError, match=r"has no HardwareAwareLinear layer.*hw = convert\(model, surrogate\)"):
        with sampling(multi):
            pass


def test_a_score_with_grad_is_read_without_a_warning_and_a_bool_tensor_is_refused(data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warned at every selection: "requires_grad=True to a scalar"
        result = train(moons_network(8), data, TrainConfig(epochs=1, select_every=1), progress=False,
                       score=lambda m: torch.tensor(0.25, requires_grad=True))
    assert result.score_history[:, 1].tolist() == [0.25]
    with pytest.raises(ParameterError, match="score\\(model\\) returned tensor\\(True\\)"):
        train(moons_network(8), data, TrainConfig(epochs=1, select_every=1), progress=False,
              score=lambda m: torch.tensor(True))


def test_the_evaluations_memory_estimate_counts_shared_inputs_once(monkeypatch):
    """A 784-input classifier on 10,000 points, 250 transfers a chunk: the
    estimate counted the inputs once per transfer of the chunk, 58.5 GiB,
    against about 0.2 GB measured for a fifth of it (found by review)."""
    from xbarsim import _memory
    from xbarsim.train.evaluate import _require_results

    monkeypatch.setattr(_memory, "available_bytes", lambda: 4 * 2**30)
    x = np.zeros((10_000, 784))
    layers = [(np.zeros((16, 784)), np.zeros(16)), (np.zeros((1, 16)), np.zeros(1))]
    _require_results(250, x, layers, 250, "an evaluation")  # about 1.4 GB: fits in 4 GiB
    with pytest.raises(MemoryLimitError, match="an evaluation of 100000 transfers on 10000 points"):
        _require_results(100_000, x, layers, 250, "an evaluation")  # 17 GB of logits and hits


def test_surrogate_save_takes_a_bytes_path_as_load_does(sur, tmp_path):
    path = str(tmp_path / "s.npz").encode()
    assert sur.save(path) == path and Surrogate.load(path).matches(sur.cfg)


def test_accuracy_checks_its_labels_and_predict_logits_its_feature_count(data):
    """(P, 1) labels broadcast to a P x P comparison and -1 / 1 labels were
    scored as they came (0.50 and 0.42 for a 0.90 network), and a model
    that takes other features gave torch's raw RuntimeError (found by
    review)."""
    from xbarsim.train.training import accuracy

    net = moons_network(seed=0)
    acc = accuracy(net, data.x_test, data.y_test)
    assert acc == float(np.mean((predict_logits(net, data.x_test) > 0) == data.y_test))
    with pytest.raises(ParameterError, match=r"y has shape \(\d+, 1\); expected \(\d+,\)"):
        accuracy(net, data.x_test, data.y_test[:, None])
    with pytest.raises(ParameterError, match="labels 0 and 1"):
        accuracy(net, data.x_test, 2 * data.y_test - 1)
    with pytest.raises(ParameterError, match="does not take x's 3-feature points"):
        predict_logits(net, np.ones((4, 3)))


def test_evaluate_surrogate_warns_of_inputs_past_its_fitted_range(sur, data):
    """Inputs 100x the fitted range scored without a word, where
    evaluate_circuit and the hardware-aware layers warn (found by review)."""
    import warnings

    from xbarsim.train.evaluate import evaluate_surrogate

    net = moons_network(seed=0)
    with pytest.warns(RuntimeWarning, match=r"layer 0's inputs up to \|x\| = [0-9.]+ exceed input_scale = 1") as rec:
        evaluate_surrogate(net, sur, data.x_test * 100, data.y_test, n=4, chunk=2)
    assert len(rec) == 1  # once per call, not per chunk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_surrogate(net, sur, data.x_test, data.y_test, n=2)


def test_training_reseeds_no_generator_but_the_cpus_and_its_models_devices(data, monkeypatch):
    """torch.manual_seed reseeded every CUDA device's generator, which the
    fork_rng(devices=[]) around it does not give back: a caller's CUDA
    stream was reset by moons_network and train (found by review)."""
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: seeded.append(s))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: seeded.append(s))
    state = torch.get_rng_state()
    a = moons_network(seed=123)
    train(moons_network(), data, TrainConfig(epochs=1, seed=77), progress=False)
    assert seeded == []
    assert torch.equal(torch.get_rng_state(), state)  # the CPU's given back
    torch.manual_seed(123)
    b = torch.nn.Linear(2, 8).double()
    assert torch.equal(a[0].weight, b.weight)  # the same initial weights as torch.manual_seed(123) gives


def test_seeds_2_to_the_32_apart_give_other_networks_and_other_torch_draws(data):
    """Torch's generator keeps a seed's low 32 bits: moons_network(0) was
    moons_network(2**32), and train's torch draws (a dropout mask) were cut
    to 32 bits of TrainConfig.seed (found by review). Seeds from 2**32 on
    are hashed to 32 bits; smaller ones keep torch.manual_seed's values."""
    from xbarsim.train._checks import seed32

    for seed, other in ((0, 2**32), (0, 7 * 2**32), (5, 5 + 7 * 2**32)):
        a, b = moons_network(seed=seed), moons_network(seed=other)
        assert not torch.equal(a[0].weight, b[0].weight)
    assert seed32(2**32 - 1) == 2**32 - 1 and 0 <= seed32(2**63) < 2**32
    # pinned: the hash places make_moons_split's points and the networks of the seeds xbarsim moons derives
    assert seed32(2**32) == 3964924996 and seed32(2**40 + 7) == 238885397
    masks = []
    for seed in (3, 3 + 2**32):
        net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Dropout(0.5), torch.nn.Linear(64, 1)).double()
        drawn = []
        net[1].register_forward_hook(  # the training forwards' masks (not the check's on 'meta', nor eval's)
            lambda mod, inp, out: drawn.append((out == 0).clone()) if mod.training and not out.is_meta else None)
        train(net, data, TrainConfig(epochs=1, seed=seed), progress=False)
        masks.append(drawn[0])
    assert not torch.equal(masks[0], masks[1])


def test_surrogate_methods_refuse_what_they_cannot_take(sur):
    """Raw TypeError / RuntimeError / AttributeError / ValueError, or silent
    0 S and NaN conductances, from the surrogate's public methods (found by
    review): each is a ParameterError naming what the argument must be."""
    from xbarsim.mapping import map_layer
    from xbarsim.train import StatisticalModel

    rng = np.random.default_rng(0)
    lm = map_layer(np.ones((2, 2)), None, sur.cfg)
    for call, match in (
        (lambda: sur.penalty(np.ones((8, 2)), np.ones(8)), "weight a 2-D .* got ndarray"),
        (lambda: sur.penalty(torch.randn(8, 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)),
         r"bias as None or a \(8,\) floating-point torch tensor .* got shape \(3,\)"),
        (lambda: sur.program_tile(-1e-4 * np.ones((2, 2)), rng), "finite and >= 0 siemens"),
        (lambda: sur.program_tile(np.full((2, 2), np.nan), rng), "holding a negative, NaN or inf value"),
        (lambda: sur.program_tile(np.ones(3) * 1e-4, rng), r"got shape \(3,\)"),
        (lambda: sur.sample_tiles(None, rng), "lm must be an xbarsim.mapping.LayerMapping"),
        (lambda: sur.sample_tiles(lm, None), "rng must be a numpy.random.Generator; got NoneType"),
        (lambda: sur.layer_output(lm, [np.full((1,) + t.shape, 3e-4) for t in lm.tiles], np.ones((1, 2)), None),
         "rng must be a numpy.random.Generator"),
        (lambda: StatisticalModel().sample(np.full(4, 3e-4), 0, 0), "rng must be a numpy.random.Generator; got int"),
        (lambda: StatisticalModel().sample(np.full(4, 3e-4), -1, rng), "subsequent holds a negative count"),
        (lambda: StatisticalModel().sample(np.full(4, 3e-4), 0.5, rng), "subsequent must be integer counts"),
    ):
        with pytest.raises(ParameterError, match=match):
            call()
    g, stuck = StatisticalModel().sample(np.full(4, 3e-4), np.arange(4.0), rng)  # integral floats are counts
    assert g.shape == (4,) and stuck.shape == (4,)
    assert torch.isfinite(sur.penalty(torch.ones(2, 2, dtype=torch.float64), None))


def test_a_penalty_beyond_half_precision_is_refused_not_inf(sur):
    """A float16 layer's penalty is computed in float32 and cast back: at
    max|w| = 600 on a 3 x 4 layer (a surrogate of more transfers than this
    one) it came back inf without a word (found by review). Refused, naming the dtype; in float64 the same weights give the
    finite value, and so does float16 where the value fits."""
    w = torch.full((3, 4), 3000.0, dtype=torch.float16)
    with pytest.raises(ParameterError, match=r"beyond what torch.float16 holds. Train this layer in float32"):
        sur.penalty(w, None)
    assert math.isfinite(float(sur.penalty(w.double(), None))) and float(sur.penalty(w.double(), None)) > 65504
    small = sur.penalty(torch.ones(3, 4, dtype=torch.float16), None)
    assert small.dtype == torch.float16 and bool(torch.isfinite(small))
    np.testing.assert_allclose(float(small), float(sur.penalty(torch.ones(3, 4, dtype=torch.float64), None)),
                               rtol=1e-3)
    # a finite penalty times the coefficient, past float16's range, in regularization()
    layer = HardwareAwareLinear(4, 3, surrogate=sur, seed=0, hardware_penalty=1e4).half()
    with torch.no_grad():
        layer.weight.fill_(10.0)
        layer.bias.zero_()
    assert bool(torch.isfinite(sur.penalty(layer.weight, layer.bias)))
    with pytest.raises(ParameterError, match=r"regularization: .*hardware_penalty=10000.0\) overflows torch.float16 "
                                             r"\(max\|w\| = 10, max\|b\| = 0\)\. Train the layer in float32 or "
                                             r"float64"):
        layer.regularization()
    # non-finite weights are named as such, not as an overflow (a float32 layer was told to train in
    # float32; found by review of the fix)
    layer = HardwareAwareLinear(4, 3, weight_decay=1e-3, seed=0)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(ParameterError, match=r"its weight holds NaN or inf at \[0, 0\].* training diverged\?"):
        layer.regularization()


def test_check_warns_of_another_cfg_and_fails_when_no_bin_is_compared(sur):
    """check took a cfg the surrogate was not fitted for without a word, and
    passed a comparison of no bin at all (all([]); found by review)."""
    from xbarsim.train.surrogate import check

    with pytest.warns(UserWarning, match="other than the one it was fitted for"):
        check(sur, cfg=xs.TransferConfig(r_wl=5.0, r_bl=5.0), layers=[(1, 1)], n_layers=1, per_layer=2, reps=1,
              n_fail_devices=0)
    with pytest.raises(ParameterError, match="cfg must be an xbarsim.TransferConfig"):
        check(sur, cfg="V/2")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bin compared: nothing to warn of as too few (a mutant said "0 devices")
        rep = check(sur, layers=[(1, 1)], n_layers=2, per_layer=2, reps=1, n_fail_devices=0)
    assert rep["bins"] == [] and rep["min_bin_devices"] == 0
    assert all(rep["pass"][k] is False for k in ("bins", "bins_error_std", "bins_error_mean"))


def test_accuracy_refuses_zero_points():
    """`accuracy` on no points returned NaN with NumPy's "Mean of empty
    slice" RuntimeWarning (found by review)."""
    import warnings

    from xbarsim.train.training import accuracy

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warning on the way
        with pytest.raises(ParameterError, match="x holds no points"):
            accuracy(moons_network(seed=0), np.zeros((0, 2)), np.zeros(0))


def test_predict_logits_blames_the_feature_count_only_when_it_is_the_problem():
    """Every RuntimeError of the model's forward was reported as "the model
    does not take x's 2-feature points": a model holding a float32 and a
    float64 layer was blamed on its inputs' feature count (found by review)."""
    nn = torch.nn

    class Squares(nn.Module):  # [x, x^2]: the first Linear takes 4 features of 2-feature points
        def forward(self, x):
            return torch.cat([x, x * x], dim=-1)

    class HeadFirst(nn.Module):  # the head registered before the body: not the call order
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 1).float()
            self.body = nn.Linear(2, 8).double()

        def forward(self, x):
            return self.head(self.body(x))

    for mixed in (nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1).double()),
                  nn.Sequential(Squares(), nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 1).double()),
                  HeadFirst()):
        with pytest.raises(ParameterError, match=r"the model's forward on x's points failed on a dtype: .*"
                                                 r"mix dtypes torch.float32, torch.float64: give them one") as info:
            predict_logits(mixed, np.zeros((2, 2)))
        assert "feature" not in str(info.value)
    with pytest.raises(ParameterError, match="does not take x's 3-feature points"):
        predict_logits(moons_network(seed=0), np.zeros((2, 3)))
    # a convolutional front end whose Linear takes 3 features: 3-feature points are the wrong count
    conv = nn.Sequential(nn.Unflatten(1, (1, 5)), nn.Conv1d(1, 1, 3), nn.Flatten(), nn.Linear(3, 1)).double()
    assert predict_logits(conv, np.zeros((2, 5))).shape == (2,)
    with pytest.raises(ParameterError, match="does not take x's 3-feature points"):
        predict_logits(conv, np.zeros((2, 3)))


def test_train_refuses_what_torch_would_fail_on_after_the_checks(data):
    """Validation features of another width failed after a whole epoch, a
    frozen or parameterless model at the first step, with torch's raw
    errors (found by review)."""
    with pytest.raises(ParameterError, match="data.x_val has 3 features and data.x_train 2; give both splits"):
        train(moons_network(), replace(data, x_val=np.ones((len(data.y_val), 3))), TrainConfig(epochs=1),
              progress=False)

    class Slice(torch.nn.Module):
        def forward(self, x):
            return x[:, :1]

    for model in (moons_network().requires_grad_(False), Slice()):
        with pytest.raises(ParameterError, match="the model has no parameter to train"):
            train(model, data, TrainConfig(epochs=1), progress=False)


def test_a_model_on_the_meta_device_is_refused_by_name(data, sur):
    """torch's raw NotImplementedError / RuntimeError from deep inside
    (found by review); the regularization of a meta model stays a meta
    tensor, as torch's own terms do."""
    from xbarsim.train.layers import regularization_loss

    meta = moons_network().to("meta")
    for call in (lambda: train(meta, data, TrainConfig(epochs=1), progress=False),
                 lambda: predict_logits(meta, data.x_test),
                 lambda: to_crossbar(meta, xs.TransferConfig())):
        with pytest.raises(ParameterError, match="on the 'meta' device: that device holds no values; build the "
                                                 r"model on a real device, or move it with model\.to_empty"):
            call()
    assert regularization_loss(convert(moons_network().to("meta"))).is_meta
    # with a hardware penalty: the penalty names the device (torch's raw error from the finiteness test)
    with pytest.raises(ParameterError, match="on the 'meta' device: that device holds no values"):
        regularization_loss(convert(moons_network().to("meta"), sur, hardware_penalty=1.0))


def test_complex_or_integer_layers_and_unusable_devices_are_refused_by_name(sur):
    """A complex layer was accepted: its sampled forward and `to_crossbar`
    dropped the imaginary part with torch's cast warning only. An integer
    dtype, a device torch does not know and CUDA on a CPU-only torch gave
    torch's raw RuntimeError / AssertionError."""
    complex_linear = torch.nn.Linear(2, 2, dtype=torch.complex64)
    real = "a real floating dtype"
    for call, match in (
        (lambda: HardwareAwareLinear(2, 2, dtype=torch.complex64), real),
        (lambda: HardwareAwareLinear(2, 2, dtype=torch.int64), real),
        (lambda: convert(torch.nn.Sequential(complex_linear), sur, seed=0), real),
        (lambda: to_crossbar(torch.nn.Sequential(complex_linear), xs.TransferConfig()), "is complex"),
        (lambda: HardwareAwareLinear(2, 2, device="tpu"), "is not a torch device"),
    ):
        with pytest.raises(ParameterError, match=match):
            call()
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="this torch cannot use CUDA"):
            HardwareAwareLinear(2, 2, device="cuda")
    for dtype in (torch.float32, torch.float64):  # still built
        assert HardwareAwareLinear(2, 2, dtype=dtype, device="cpu").weight.dtype == dtype


def test_failures_zero_is_off_as_false(sur):
    """A layer built with failures=0.0 drew no failures for
    sample(failures=True) in training mode, where one built with False drew
    them at the fitted rates (found by review)."""
    layers = [HardwareAwareLinear(2, 8, surrogate=sur, failures=f, seed=1) for f in (0.0, False)]
    assert [(la.failures, la.failure_scale) for la in layers] == [(False, 1.0), (False, 1.0)]
    drawn = [[bool(la.sample(failures=True).failed_weight.any()) for _ in range(20)] for la in layers]
    assert drawn[0] == drawn[1] and any(drawn[0])  # the same stream (seed 1), the same draws


def test_training_seeds_take_a_0d_integer_as_xs_program_does():
    """TrainConfig and make_moons_split refused np.array(3) where xs.program
    takes it, and the README said seeds take them (found by review)."""
    from xbarsim.train._checks import check_seed

    for zero_d in (np.array(3), torch.tensor(3), np.uint8(3)):
        assert TrainConfig(seed=zero_d).seed == 3 and type(TrainConfig(seed=zero_d).seed) is int
    np.testing.assert_array_equal(make_moons_split(seed=np.array(3)).x_train, make_moons_split(seed=3).x_train)
    for bad in (np.array(3.5), np.array([3]), torch.tensor(True), np.array(-1)):
        with pytest.raises(ParameterError, match=r"seed = .*; an integer in \[0, 2\*\*64"):
            check_seed(bad)


def test_a_compiled_model_trains_through_its_sampled_layers_as_the_eager_one(sur):
    """``torch.compile`` of a hardware-aware model in training mode failed
    with Dynamo's "'ndarray' object has no attribute 'detach'" (the sampled
    forward runs NumPy and Numba; found by review). The sampled forward now
    runs eagerly inside the compiled model: with the layers' streams alike,
    the compiled and the eager model give the same outputs and gradients.
    (``backend="eager"``: Dynamo traces as with any backend, without
    generating code.)"""
    import copy

    torch.manual_seed(0)
    net = convert(moons_network(8), sur, seed=5)
    twin = copy.deepcopy(net)  # the same weights and sampling streams
    net.train()
    twin.train()
    x = torch.rand(16, 2, dtype=torch.float64)
    compiled = torch.compile(twin, backend="eager")
    for _ in range(2):  # two steps: each draws its own transfer, alike in both
        y, y_c = net(x), compiled(x)
        torch.testing.assert_close(y_c, y, rtol=0, atol=0)
        y.sum().backward()
        y_c.sum().backward()
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)
    twin.eval()
    torch.testing.assert_close(compiled(x), net.eval()(x), rtol=0, atol=0)


def test_a_sampled_forward_in_a_child_forked_after_the_openmp_threads_started_is_refused(sur, monkeypatch):
    """The surrogate's read noise runs a parallel kernel, which Numba
    terminates in such a child (see test_solve_contract's fork test, which
    forks for real): refused with ForkError instead. Here the fork is
    recorded by hand (`xbarsim._fork` sets it at the fork)."""
    from xbarsim import _fork

    net = convert(moons_network(8), sur, seed=5)
    net.train()
    x = torch.rand(4, 2, dtype=torch.float64)
    net(x)  # runs in this process
    monkeypatch.setattr(_fork, "_forked_from", 12345)
    with pytest.raises(xs.ForkError, match=r"the surrogate's read noise: this process was forked from process "
                       r"12345.*'spawn'"):
        net(x)

def test_evaluate_surrogate_warns_of_hidden_activations_past_its_fitted_range(sur, data, monkeypatch):
    # pins the range check on every layer's inputs, not only the points: with a fitted range of 0.5 the
    # points (|x| <= 0.5) are inside it, the first layer's sigmoid outputs (up to 1) are not
    from xbarsim.train.evaluate import evaluate_surrogate

    real = type(sur).input_limits
    monkeypatch.setattr(type(sur), "input_limits", lambda self: (0.5,) + tuple(real(self))[1:])
    x = data.x_test / (2 * np.abs(data.x_test).max())
    with pytest.warns(RuntimeWarning, match="layer 1's inputs") as rec:
        evaluate_surrogate(moons_network(seed=0), sur, x, data.y_test, n=2)
    assert len(rec) == 1


class _Stop(Exception):
    pass


def _record_need(monkeypatch):
    """Stand in for training.require: record what the guard asks for, stop there."""
    from xbarsim.train import training

    seen = []

    def require(need, what, hint):
        seen.append(need)
        raise _Stop

    monkeypatch.setattr(training, "require", require)
    return seen


def test_the_training_guard_counts_what_its_docstring_says(data, monkeypatch):
    """Unseen before (a mutation audit): 3x batch factor -> 1x, 32 B/validation point -> 0,
    the read-only copies left out, max(n_val, ...) -> the batch only.
    moons_network(8): 18 float64 outputs a point (144 B)."""
    seen = _record_need(monkeypatch)
    xr = data.x_train.copy()
    xr.flags.writeable = False
    frozen = replace(data, x_train=xr)  # 40 train, 10 val points; x_train read-only (copied: 640 B)
    masks = sum(a.size for a in (xr, data.y_train, data.x_val, data.y_val))
    with pytest.raises(_Stop):  # batch 8: the training batch, 3 x 8 points, outweighs the 10 validation points
        train(moons_network(8), frozen, TrainConfig(epochs=1, batch_size=8), progress=False)
    assert seen[-1] == 144 * 3 * 8 + 32 * 10 + xr.nbytes + masks
    xv = np.broadcast_to(data.x_val[:1], (1000, 2))  # read-only, 16000 B copied
    yv = np.broadcast_to(np.asarray(data.y_val[:1], float), (1000,))
    big_val = replace(data, x_val=xv, y_val=yv)
    with pytest.raises(_Stop):  # 1000 validation points outweigh 3 x 8
        train(moons_network(8), big_val, TrainConfig(epochs=1, batch_size=8), progress=False)
    masks = sum(a.size for a in (data.x_train, data.y_train, xv, yv))
    assert seen[-1] == 144 * 1000 + 32 * 1000 + xv.nbytes + yv.nbytes + masks


def test_the_scoring_guard_counts_the_logits_and_a_read_only_copy(monkeypatch):
    """Unseen before (a mutation audit): predict_logits's 16 B/point dropped, its read-only copy dropped."""
    seen = _record_need(monkeypatch)
    x = np.zeros((7, 2))
    with pytest.raises(_Stop):
        predict_logits(moons_network(8), x)
    assert seen[-1] == 144 * 7 + x.size + 16 * 7
    x.flags.writeable = False
    with pytest.raises(_Stop):
        predict_logits(moons_network(8), x)
    assert seen[-1] == 144 * 7 + x.size + x.nbytes + 16 * 7


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool])
def test_a_hardware_layer_given_integer_weights_refuses_to_sample(sur, dtype):
    """Unseen before (a mutation audit): HardwareAwareLinear._refuse_nonfinite_weights reading the
    weights with float64_array, not layer_arrays: an int64 weight set
    after convert was sampled without a word."""
    layer = hardware_layers(convert(moons_network(8), sur))[0]
    layer.weight = torch.nn.Parameter(torch.ones(8, 2, dtype=dtype), requires_grad=False)
    with pytest.raises(ParameterError, match=rf"is {dtype}, not a floating dtype"):
        layer.sample()


def test_the_forward_size_trial_leaves_no_hooks_behind(data):
    """Unseen before (a mutation audit): _forward_bytes not removing its hooks: every later
    forward of the model ran them, appending to dead lists."""
    net = moons_network(8)
    predict_logits(net, data.x_val)
    train(net, data, TrainConfig(epochs=1), progress=False)
    assert all(not m._forward_hooks for m in net.modules())


def test_train_gives_the_callers_torch_thread_count_back(data):
    """`train` runs torch on one thread inside (`single_thread`) and gives
    the caller's thread count back afterwards (leaving it at 1 passed the training
    tests; found by mutation testing)."""
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train(moons_network(2), data, TrainConfig(epochs=1), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_without_keep_best_the_last_epoch_is_reported_kept(data):
    """TrainResult.best_epoch, "Epoch whose weights were kept", counts from 0
    (as the epoch keep_best picks): without keep_best the last epoch's
    weights stay, epoch ``epochs - 1``. Reporting ``epochs``, an epoch that
    never ran, passed the training tests (found by mutation testing)."""
    res = train(moons_network(2), data, TrainConfig(epochs=3, keep_best=False), progress=False)
    assert res.best_epoch == 2 and len(res.loss_history) == 3


def test_a_validation_loss_that_overflows_stops_the_training(data):
    """A non-finite validation loss is a diverged run, refused at its epoch
    while the training loss is still finite: here validation features of
    1.7e308 (finite, as train requires) overflow the logits. Refusing only
    when both losses are non-finite passed the training tests, and the run went on
    to its end (found by mutation testing)."""
    data = replace(data, x_val=np.full_like(data.x_val, 1.7e308))
    net = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        net.weight.fill_(1.0)  # 3.4e308: logits of +inf, a loss of inf or NaN
    with pytest.raises(ParameterError, match=r"training diverged at epoch 0: training loss [0-9.]+, validation loss"):
        train(net, data, TrainConfig(epochs=3, lr=1e-3), progress=False)
