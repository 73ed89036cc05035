"""The moons network and its training loop (binary cross-entropy, Adam)."""

from __future__ import annotations

import contextlib
import inspect
import math

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from .._coerce import where_not_finite
from .._progress import Progress
from ..devices import real_scalar
from ..exceptions import ParameterError
from ._checks import check_count, check_flag, check_seed, seed32
from .layers import (META_HINT, as_tensor, float64_array, hardware_layers, regularization_loss, restore_failed_,
                     sampling, snapshot_)
from .._docfields import document_fields
from .._memory import require

__all__ = ["TrainConfig", "TrainResult", "moons_network", "train", "predict_logits", "accuracy"]


@document_fields
@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained."""

    epochs: int = 300
    """Passes over the training set."""
    batch_size: int = 64
    """Mini-batch size."""
    lr: float = 0.05
    """Adam learning rate."""
    seed: int = 0
    """Seed of the batch order and of torch's generator during training (the
    weights arrive initialised: `moons_network` takes its own seed). The
    default, 0, orders the batches from ``np.random.default_rng(0)``, the
    stream ``convert(net, surrogate, seed=0)`` gives layer 0 and
    ``make_moons_split(seed=0)`` splits from: pass distinct seeds for
    independent draws, as ``xbarsim moons`` does with `xbarsim.moons.stream_seed`.
    Torch's global generator is shared by every thread: trainings running at
    once in threads draw each other's numbers there (an ``nn.Dropout`` of
    yours, for one); run them in processes to keep each reproducible."""
    keep_best: bool = True
    """Keep the weights with the lowest validation loss (checked every epoch); of equal
    losses, the earliest epoch's."""
    val_samples: int = 4
    """Hardware samples per validation check for hardware-aware layers (0: mean weights). Every
    check draws the same samples (streams keyed by ``seed``, apart from the training draws), so
    epochs are compared on common random numbers, not on fresh noise."""
    select_every: int = 10
    """With a ``score`` function: epochs between selection checks."""

    def __post_init__(self):
        for name in ("epochs", "batch_size", "select_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ParameterError(f"TrainConfig.{name} = {v!r}; a positive integer.")
        if isinstance(self.val_samples, bool) or not isinstance(self.val_samples, (int, np.integer)) \
                or self.val_samples < 0:
            raise ParameterError(f"TrainConfig.val_samples = {self.val_samples!r}; an integer >= 0 "
                                 "(0: validate the mean weights).")
        lr = real_scalar(self.lr)  # NumPy scalars too (np.float32(0.1) was refused)
        if lr is None or not (math.isfinite(lr) and lr > 0):
            raise ParameterError(f"TrainConfig.lr = {self.lr!r}; a finite learning rate > 0.")
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "seed", check_seed(self.seed, "TrainConfig.seed"))
        object.__setattr__(self, "keep_best", check_flag(self.keep_best, "TrainConfig.keep_best"))  # "no" kept


@document_fields
@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run did."""

    loss_history: np.ndarray
    """Mean training loss (data term) per epoch."""
    val_loss_history: np.ndarray
    """Validation loss per epoch."""
    best_epoch: int
    """Epoch whose weights were kept."""
    score_history: np.ndarray = None
    """(k, 2): epoch and score at each selection check (empty without ``score``)."""


def moons_network(hidden=8, seed=0):
    """The paper's 2 -> `hidden` (sigmoid) -> 1 logit network, plain ``nn.Linear``.

    Its initial weights are ``nn.Linear``'s (Kaiming-uniform weights,
    uniform biases, drawn in that order), from a generator of its own
    seeded with `seed`: the same values as ``nn.Linear`` under
    ``torch.manual_seed(seed)`` for seeds below 2**32 (larger ones are
    hashed to 32 bits, which torch's generator keeps: until 2026-12-06 seed
    and seed + 2**32 gave one network), and torch's global generator is neither
    read nor moved. (It was seeded and restored around the draws, so calls
    in several threads at once drew from each other's streams: 110 of 160
    networks came out wrong.)
    """
    hidden = check_count(hidden, "hidden")
    seed = seed32(check_seed(seed))
    if "generator" not in inspect.signature(nn.init.kaiming_uniform_).parameters:  # torch < 2.2
        with torch.random.fork_rng(devices=[]):  # the caller's global generator is left as it was
            torch.random.default_generator.manual_seed(seed)  # the CPU's alone (see `_seed_generators`)
            return nn.Sequential(nn.Linear(2, hidden), nn.Sigmoid(), nn.Linear(hidden, 1)).double()
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for fan_in, fan_out in ((2, hidden), (hidden, 1)):
        lin = nn.Linear(fan_in, fan_out, device="meta").to_empty(device="cpu")  # no draw from the global generator
        # nn.Linear.reset_parameters, with the generator
        nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=gen)
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(lin.bias, -bound, bound, generator=gen)
        layers.append(lin)
    return nn.Sequential(layers[0], nn.Sigmoid(), layers[1]).double()


def predict_logits(model, x):
    """Logits of `model` for features `x` (numpy), in evaluation mode with the
    mean weights (no hardware sample, whatever ``sample_on_eval``), as float64 numpy.

    Every module of `model` is given back in the mode it was in (the model
    was left in evaluation mode: a call in the middle of training turned
    the hardware sampling of the later steps off). `x`
    goes in at the dtype of the model's floating-point parameters where
    they share one, float64 otherwise (a float32 model got torch's raw
    dtype error).
    """
    from ..mapping import as_float_array
    from .evaluate import _bool_as_float

    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    # as the evaluations take features, booleans as 0 / 1 (NaN gave NaN
    # logits, complex lost its imaginary part, strings a raw TypeError)
    x = as_float_array(_bool_as_float(x), "x", "(P, features)")
    if x.ndim != 2:
        raise ParameterError(f"x has shape {x.shape}; give (P, features) points, one per row "
                             "(x[None] for a single point).")
    if any(p.is_meta for p in model.parameters()):  # torch's raw error at .numpy()
        raise ParameterError(f"the model's parameters are on the 'meta' device: {META_HINT}.")
    check_finite_parameters(model)  # NaN logits were scored as class 0
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    dtype = dtypes.pop() if len(dtypes) == 1 else torch.float64
    # the mean weights, whatever the layers' sample_on_eval: with it set, a
    # call sampled a transfer and advanced the layers' training streams
    with _evaluating(model), sampling(model, enabled=False), torch.no_grad():
        try:
            # a trial on two points first: what a point's forward holds
            _, per_point = _forward_bytes(model, as_tensor(x[:2], dtype, _device(model)))
            # the forward, the finiteness mask, a read-only x's copy, the logits
            require(per_point * len(x) + x.size + (0 if x.flags.writeable else x.nbytes) + 16 * len(x),
                    f"the model's forward on {len(x)} points", "score fewer points at a time")
            if not np.all(np.isfinite(x)):
                raise ParameterError(f"x {where_not_finite(x)}; features must be finite.")
            out = model(as_tensor(x, dtype, _device(model)))
        except RuntimeError as exc:  # torch's shape error, raw
            raise ParameterError(_forward_failed(model, exc, x.shape[1], "x")) from None
    logits = out.squeeze(-1).to(torch.float64).cpu().numpy()
    if np.any(np.isnan(logits)):  # an infinite logit is still a decision; NaN is none
        raise ParameterError(f"the model's forward returns NaN at {int(np.sum(np.isnan(logits)))} of {logits.size} "
                             "outputs on x, from finite parameters and features; check its forward (a 0 / 0, a "
                             "log of 0) before scoring it.")
    return logits


def check_finite_parameters(model):
    """Refuse a `model` holding a NaN or infinite parameter (a diverged
    training, a NaN checkpoint), naming the first one; parameters on the
    'meta' device, which hold no values, are skipped."""
    for name, p in model.named_parameters():
        if p.is_meta:
            continue
        bad = int((~torch.isfinite(p.detach())).sum())
        if bad:
            raise ParameterError(f"the model's parameter {name!r} {tuple(p.shape)} holds {bad} NaN or infinite "
                                 "values; training diverged? Lower the learning rate, or load a finite checkpoint.")


def _forward_failed(model, exc, n_features, name):
    """The message for torch's RuntimeError `exc` from `model`'s forward on
    `name`'s `n_features`-feature points, judged by torch's own text.

    Every such error was reported as a feature-count mismatch: a model
    holding float32 and float64 layers was told it did not take 2-feature
    points. A dtype error names the dtypes the model's
    parameters mix; a shape error is reported as the feature-count mismatch
    it most likely is; anything else is torch's message as it is. (Which
    Linear layer comes first cannot tell: a module before it may change the
    width, and registration order need not be call order.)
    """
    text = str(exc)
    low = text.lower()
    if "dtype" in low or "scalar type" in low:
        dtypes = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point()})
        hint = (f" Its parameters mix dtypes {', '.join(dtypes)}: give them one (model.double() or model.float())."
                if len(dtypes) > 1 else "")
        return f"the model's forward on {name}'s points failed on a dtype: {text}.{hint}"
    if "shape" in low or "size" in low or "expected input" in low:
        return f"the model does not take {name}'s {n_features}-feature points ({text})."
    return f"the model's forward on {name}'s points failed: {type(exc).__name__}: {text}."


def _device(model):
    """The device of `model`'s parameters (the CPU for a model without any):
    inputs built on the CPU met a model moved to a GPU with torch's device
    error, reported as a feature-count mismatch."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def _evaluating(model):
    """`model` in evaluation mode inside the block; afterwards every module
    back in the mode it was in (submodules may differ from the model: a
    frozen norm layer, a Dropout kept in evaluation mode)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def accuracy(model, x, y):
    """Software accuracy of `model` (mean weights) on `x`, `y`: (P,) labels
    0 or 1 for a model of one output (class 1 where its logit is > 0), 0 to
    K - 1 for one of K outputs (the largest logit)."""
    from .evaluate import _hits, check_labels

    logits = predict_logits(model, x)
    if len(logits) == 0:  # the mean of nothing: NaN, with NumPy's RuntimeWarning
        raise ParameterError("x holds no points; accuracy needs at least one (P, features) point, P >= 1.")
    # (P, 1) labels broadcast to a P x P comparison, and -1 / 1 labels were
    # scored as they came (0.50 and 0.42 for a 0.90 network)
    outputs = logits.shape[1] if logits.ndim == 2 else 1
    labels = check_labels(y, len(logits), outputs=outputs)
    return float(np.mean(_hits(logits[None], labels)))  # the evaluations' rule, for one transfer


def _val_loss(model, x, y, samples, seed):
    """Validation loss: of the mean weights, or the mean over ``samples``
    hardware samples. The samples come from streams keyed ``(seed, layer)``,
    the same at every check, and the layers' own streams are given back
    untouched: with fresh draws at every epoch, the lowest of 4-sample
    losses picked its epoch mostly by the noise (epochs 0.30-0.42 apart,
    the kept weights re-scored 0.33 +- 0.055), and the
    training draws depended on how often validation ran."""
    lossf = nn.BCEWithLogitsLoss()
    model.eval()
    with torch.no_grad():
        # layers with no surrogate draw nothing: a model none of whose layers
        # has one validates on its mean weights (`sampling` refuses it)
        layers = hardware_layers(model)
        if samples and any(layer.surrogate is not None for layer in layers):
            own = [layer._rng for layer in layers]
            try:
                for k, layer in enumerate(layers):
                    layer._rng = np.random.default_rng([seed, _VAL_STREAM, k])
                with sampling(model):
                    losses = [float(lossf(model(x).squeeze(-1), y)) for _ in range(samples)]
            finally:
                for layer, rng in zip(layers, own):
                    layer._rng = rng
            return float(np.mean(losses))
        # 0 samples: the mean weights, also with sample_on_eval set (which
        # sampled them, and advanced the training streams)
        with sampling(model, enabled=False):
            return float(lossf(model(x).squeeze(-1), y))


_VAL_STREAM = 0x56414C  # "VAL": the validation samples' streams, (seed, _VAL_STREAM, layer)


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread inside the block.

    The networks here are tiny: thread start-up and contention cost far more
    than they save (a step is ~20x slower on 2 busy threads than on 1).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train(model, data, config=TrainConfig(), progress=True, label="train", score=None):
    """Train `model` on ``data.x_train`` with BCE-with-logits and Adam.

    Hardware-aware layers sample one transfer per forward (their switches
    decide what is sampled) and add their regularization to the loss; after
    every step the weights of devices sampled as failed are put back.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, features)`` float64 features to ``(B, 1)`` logits (one
        logit: a binary classifier).
    data : xbarsim.train.data.MoonsData
    config : TrainConfig
    progress : bool
        Show a progress bar (stderr).
    label : str
        The progress bar's label.
    score : callable, optional
        ``score(model) -> float``, higher is better, computed on held-out
        data every ``config.select_every`` epochs and at the end; with
        ``config.keep_best`` the best-scoring weights are kept, the earliest
        of equal scores (default: the lowest validation loss).

    Returns
    -------
    TrainResult
        The model is left in ``eval()`` mode (mean weights) with the kept
        weights loaded.

    Gradients are on inside, also when it is called under
    ``torch.no_grad()`` or ``torch.inference_mode()``.
    """
    # torch's global generators (the CPU's, and those of the CUDA devices the
    # model is on) are seeded for the run and given back as they were: the
    # caller's streams do not depend on whether it trained
    cuda = _cuda_indices(model)
    # gradients on inside a caller's torch.no_grad() or inference_mode() (the
    # first backward raised torch's "element 0 of tensors does not require grad")
    with single_thread(), torch.random.fork_rng(devices=cuda), torch.inference_mode(False), torch.enable_grad():
        return _train(model, data, config, progress, label, score, cuda)


def _cuda_indices(model):
    """Indices of the CUDA devices `model`'s parameters are on."""
    if not isinstance(model, torch.nn.Module):
        return []
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _seed_generators(seed, cuda):
    """Seed torch's CPU generator and those of the CUDA devices ``cuda``:
    ``torch.manual_seed`` reseeded every device's, which the caller's
    ``fork_rng(devices=[])`` does not give back."""
    seed = seed32(seed)
    torch.random.default_generator.manual_seed(seed)
    for i in cuda:
        torch.cuda.default_generators[i].manual_seed(seed)


def _score_value(raw):
    """A score as a float: a number, or a one-element array or tensor; None for
    anything else (strings, complex, bools)."""
    if isinstance(raw, torch.Tensor):
        if raw.dtype == torch.bool or raw.is_complex():
            return None
        raw = float64_array(raw)  # with grad, torch warned at every selection
    try:
        a = np.asarray(raw)
        return None if a.size != 1 or a.dtype.kind in "bcSU" else float(a.reshape(-1)[0])
    except (TypeError, ValueError, OverflowError):  # ragged, or an object float() does not take
        return None


def _check_training(model, data, config):
    """What `train` needs, checked before the first step; returns the four
    splits as float64 arrays (``{"x_train": ..., ...}``: a list of tensor
    rows that require grad passed these checks and failed in torch's
    conversion)."""
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be an xbarsim.train.TrainConfig; got {type(config).__name__}.")
    for name in ("x_train", "y_train", "x_val", "y_val"):
        if not hasattr(data, name):
            raise ParameterError(f"data must have x_train, y_train, x_val, y_val (an xbarsim.train.data.MoonsData); "
                                 f"got {type(data).__name__} without {name}.")
    from ..mapping import as_float_array
    from .evaluate import _bool_as_float

    splits = {}
    for split in ("train", "val"):  # booleans are 0 / 1, as the evaluations take them
        x = as_float_array(_bool_as_float(getattr(data, f"x_{split}"), f"data.x_{split}"), f"data.x_{split}",
                           "(n, features) points")
        y = as_float_array(_bool_as_float(getattr(data, f"y_{split}"), f"data.y_{split}"), f"data.y_{split}",
                           "(n,) labels 0 or 1")
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            # a shorter y_train silently dropped the last points; an empty split divided by zero
            raise ParameterError(f"data.x_{split} has shape {x.shape} and data.y_{split} {y.shape}; give (n, features) "
                                 f"points and (n,) labels, n >= 1, for both the training and the validation split.")
        splits[f"x_{split}"], splits[f"y_{split}"] = x, y
    params = list(model.parameters())
    # torch's raw errors after the checks, at the first step or the first
    # validation
    if not any(p.requires_grad for p in params):
        raise ParameterError("the model has no parameter to train (none, or every one frozen with "
                             "requires_grad=False); unfreeze the layers to train (p.requires_grad_(True)).")
    if any(p.dtype != torch.float64 for p in params):
        raise ParameterError("train runs in float64 (the hardware models are float64); convert the model with "
                             "model.double() first.")
    check_finite_parameters(model)  # a NaN network trained to NaN and came back without a word
    try:
        # evaluation mode: the mean weights, no hardware sample drawn, no stream
        # advanced (sampling off: sample_on_eval drew one)
        with _evaluating(model), sampling(model, enabled=False), torch.no_grad():
            out, per_point = _forward_bytes(model, as_tensor(splits["x_train"][:2], torch.float64, _device(model)))
    except RuntimeError as exc:  # torch's shape errors: the model does not take these points
        raise ParameterError(_forward_failed(model, exc, splits["x_train"].shape[1], "data.x_train")) from None
    if out.ndim != 2 or out.shape[1] != 1:
        raise ParameterError(f"train fits binary classifiers with one logit per point ((B, 1) outputs, "
                             f"BCE-with-logits); this model gives {tuple(out.shape)}. Write your own loop for "
                             "other tasks (see xbarsim.train.layers).")
    if splits["x_val"].shape[1] != splits["x_train"].shape[1]:  # after the model's own refusal of x_train
        raise ParameterError(f"data.x_val has {splits['x_val'].shape[1]} features and data.x_train "
                             f"{splits['x_train'].shape[1]}; give both splits the same features.")
    _require_training(splits, per_point, config)
    for split in ("train", "val"):  # after the memory check: these checks hold a byte per entry
        x, y = splits[f"x_{split}"], splits[f"y_{split}"]
        if not np.all(np.isfinite(x)):
            raise ParameterError(f"data.x_{split} {where_not_finite(x)}.")
        if not np.all((y == 0) | (y == 1)):
            # BCE took NaN (NaN weights, no error) and labels such as 2 or -1 (targets outside [0, 1])
            bad = y[~((y == 0) | (y == 1))][0]
            # (as a number: int labels read "np.float64(2.0)")
            raise ParameterError(f"data.y_{split} holds {float(bad):g}; train fits binary classifiers: labels 0 or 1.")
    return splits


def _forward_bytes(model, x):
    """``model(x)`` and the bytes per point of the outputs of every module in
    that forward (each module's output tensor, the model's own included):
    what a forward of more points holds, at most, besides the weights."""
    sizes = []

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, sum(sizes) / max(len(x), 1)


def _require_training(splits, per_point, config):
    """Refuse, before the first step, a training whose validation forward
    (every validation point at once, without gradients) or training batch
    (its forward with the gradients, counted three times) cannot fit in
    memory: a broadcast x_val of 10**9 points trained its first epoch, then
    ended in torch's raw allocator error (64 GB for one Linear layer's
    outputs). The loss's temporaries count 32 bytes a validation point, the
    checks' masks a byte an entry, and the read-only splits their size
    (`as_tensor` copies them)."""
    n_val, n_train = len(splits["y_val"]), len(splits["y_train"])
    copies = sum(a.nbytes for a in splits.values() if not a.flags.writeable)  # (`as_tensor`)
    need = per_point * max(n_val, 3 * min(config.batch_size, n_train)) + 32 * n_val + copies \
        + sum(a.size for a in splits.values())  # the checks' boolean masks
    require(need, f"training on {n_train} points, validated on {n_val} at once",
            "validate on fewer points (data.x_val, data.y_val) or train with a smaller TrainConfig.batch_size")


def _train(model, data, config, progress, label, score, cuda):
    splits = _check_training(model, data, config)
    # here, not in _check_training, whose trial forward runs on 'meta' (a
    # stand-in for another device in the tests)
    if any(p.is_meta for p in model.parameters()):
        raise ParameterError(f"the model's parameters are on the 'meta' device: {META_HINT}.")
    progress = check_flag(progress, "progress")
    if score is not None and not callable(score):
        # score="acc" raised a raw TypeError at the first selection, after its epochs
        raise ParameterError(f"score = {score!r:.60}; give None (the validation loss) or a function "
                             "score(model) -> float, higher is better.")
    _seed_generators(config.seed, cuda)
    gen = np.random.default_rng(config.seed)
    dev = _device(model)
    x, y, xv, yv = (as_tensor(splits[k], torch.float64, dev)
                    for k in ("x_train", "y_train", "x_val", "y_val"))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    lossf = nn.BCEWithLogitsLoss()
    n = len(y)
    hist, vhist, scores = [], [], []
    best = (np.inf, -1, None)
    with Progress(config.epochs, label=label, enabled=progress) as bar:
        for epoch in range(config.epochs):
            model.train()
            perm = gen.permutation(n)
            total = 0.0
            for start in range(0, n, config.batch_size):
                idx = torch.as_tensor(perm[start : start + config.batch_size], device=dev)
                snapshot_(model)
                opt.zero_grad()
                data_loss = lossf(model(x[idx]).squeeze(-1), y[idx])
                loss = data_loss + regularization_loss(model)
                loss.backward()
                opt.step()
                restore_failed_(model)
                total += float(data_loss.detach()) * len(idx)
            hist.append(total / n)
            vl = _val_loss(model, xv, yv, config.val_samples, config.seed)
            vhist.append(vl)
            if not (math.isfinite(hist[-1]) and math.isfinite(vl)):
                # the run went on to its end, and with keep_best reported its
                # last epoch as the one kept
                raise ParameterError(f"training diverged at epoch {epoch}: training loss {hist[-1]:.4g}, validation "
                                     f"loss {vl:.4g}. Lower TrainConfig.lr (now {config.lr:g}) or scale the "
                                     "features to about [-1, 1].")
            if score is None:
                crit = vl
            elif (epoch + 1) % config.select_every == 0 or epoch == config.epochs - 1:
                raw = score(model)
                value = _score_value(raw)  # a string gave a raw ValueError, complex a TypeError
                if value is None:
                    raise ParameterError(f"score(model) returned {raw!r:.60} at epoch {epoch}; it must be a "
                                         "finite number, higher for better weights.")
                crit = -value
                if not math.isfinite(crit):  # keep_best then kept the last epoch without a word
                    raise ParameterError(f"score(model) returned {-crit!r} at epoch {epoch}; it must be a finite "
                                         "number, higher for better weights.")
                scores.append((epoch, -crit))
            else:
                crit = np.inf
            if config.keep_best and crit < best[0]:
                best = (crit, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            bar.update(1, note=f"loss {hist[-1]:.4f} val {vl:.4f}")
    if config.keep_best and best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    else:
        best_epoch = config.epochs - 1
    model.eval()
    return TrainResult(np.asarray(hist), np.asarray(vhist), best_epoch, np.asarray(scores).reshape(-1, 2))
