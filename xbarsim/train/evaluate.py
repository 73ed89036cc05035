"""Monte-Carlo evaluation of a trained network after transfer.

Three transfer models, one interface (``correct``, ``logits`` over
``n`` transfers and the test points):

`evaluate_circuit`
    The full simulator: every layer transferred ``n`` times with
    ``xs.iter_transfers`` (the streams of ``xs.transfer_many``; write-verify
    on the circuit, the bias scheme, the preset's wires), then the crossbar MVM through the circuit with read
    noise for both layers, the sigmoid applied to the first layer's outputs
    in between.
`evaluate_statistical`
    The paper's statistical-only model (`StatisticalModel`, no circuit):
    measured offset, tuning imprecision, drift and failures applied to the
    same target conductances, then an ideal MVM.
`evaluate_surrogate`
    The fitted `Surrogate` (programming and circuit): shows how well the
    model trained against matches the simulator on the task itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from .._coerce import as_array, tensor_entries, where_not_finite
from .._progress import Progress
from .._warn import warn
from ..exceptions import ParameterError
from ..mapping import as_float_array
from ..transfer import ConvergenceTally, refuse_sinh_overflow
from ._checks import SEED_OFFSET_MAX, check_count, check_flag, check_seed
from .layers import as_tensor, layer_arrays, linear_layers, warn_if_extrapolated, warn_if_trained_for_another_cfg
from .._docfields import document_fields

__all__ = [
    "MCResult",
    "network_layers",
    "evaluate_circuit",
    "evaluate_statistical",
    "evaluate_surrogate",
    "software_logits",
]


@document_fields
@dataclass(frozen=True, eq=False)
class MCResult:
    """Outputs of a network over many transfers."""

    logits: np.ndarray
    """Output logits, (n_transfers, n_points) for a network of one output
    (class 1 where the logit is > 0), (n_transfers, n_points, outputs) for
    one of several (the class is the output with the largest logit)."""
    correct: np.ndarray
    """Bool (n_transfers, n_points): the point was classified right."""
    model: str
    """Transfer model: "circuit", "statistical" or "surrogate"."""
    programming: Optional[tuple] = None
    """Circuit evaluations: per layer, write-verify's counts over the
    transfers (`xbarsim.transfer.ConvergenceTally.summary`: working,
    unconverged and stuck devices and their fractions); None otherwise."""


def network_layers(model):
    """``[(W, b), ...]`` of the linear layers of a 2-8-1 style network, float64 numpy.

    The network must be a chain of linear layers with a sigmoid between
    each two (the moons network), as ``nn.Sigmoid`` modules or as
    ``torch.sigmoid`` calls in its ``forward``; a final sigmoid is accepted
    (it gives the same decisions). That is what the evaluation reproduces
    on hardware, so any other registered layer (another activation, a
    convolution) is refused here, and so is an ``nn.Sequential`` that is
    not that chain (its modules are its forward). Any other model's
    ``forward`` is the evaluations' to check: they run it once on their
    test points (`_check_forward`), and refuse a missing sigmoid, layers
    registered out of forward order or another activation called in
    ``forward`` rather than silently score another network. The linear
    layers are returned in the order they are registered.
    """
    if not isinstance(model, nn.Module):  # an AttributeError ('no attribute modules') for a list of numbers
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    passive = (nn.Identity, nn.Dropout)
    other = [type(m).__name__ for m in leaves if not isinstance(m, (nn.Linear, nn.Sigmoid) + passive)]
    if other:
        # only where it is the last module: Linear -> Softmax -> Linear was told to drop model[:-1]
        soft = (" A final softmax picks the class its logits pick (the largest): evaluate the network without it "
                "(for example model[:-1])." if isinstance(leaves[-1], (nn.Softmax, nn.LogSoftmax)) else "")
        raise ParameterError(
            f"the hardware evaluation runs Linear -> Sigmoid -> ... -> Linear networks; this one also holds "
            f"{', '.join(sorted(set(other)))}. Transfer other networks layer by layer with "
            f"xbarsim.train.to_crossbar and xs.mvm, applying their activations in between.{soft}")
    # only a Sequential's registration order is its forward: a model with
    # torch.sigmoid in forward (registered "L-L") or its sigmoids registered
    # first ("S-L-L") is the chain too, which the evaluations' forward check
    # judges (both were refused here)
    if _is_plain_sequential(model):
        applied = _sequential_leaves(model)  # as forward applies them: a module used twice counts twice
        if any(isinstance(m, nn.Linear) and sum(a is m for a in applied) > 1 for m in applied):
            # modules() lists a shared layer once, and the chain read from it
            # was another network
            raise ParameterError(
                "this nn.Sequential applies one nn.Linear more than once; the hardware evaluation transfers "
                "each layer once. Pass its layers as [(weight, bias), ...] in the order it applies them.")
        kinds = "".join("L" if isinstance(m, nn.Linear) else "S" for m in applied if not isinstance(m, passive))
        if re.fullmatch(r"L(SL)*S?", kinds) is None:
            raise ParameterError(
                f"the hardware evaluation runs Linear -> Sigmoid -> ... -> Linear networks (a sigmoid between "
                f"every two linear layers, none before the first, at most one after the last); this "
                f"nn.Sequential runs {'-'.join(kinds)} (L: Linear, S: Sigmoid).")
    out = []
    for k, layer in enumerate(linear_layers(model)):
        w, b = layer_arrays(layer)
        # checked here: the forward check that follows compared NaN outputs
        # and blamed the layers' registration order
        for name, a in (("weight", w), ("bias", b)):
            if a is not None and not np.all(np.isfinite(a)):
                raise ParameterError(f"linear layer {k} ({type(layer).__name__}) has a {name} holding "
                                     f"{int(np.sum(~np.isfinite(a)))} NaN or infinite values; training "
                                     "diverged? Lower the learning rate or check the inputs.")
        out.append((w, b))
    if not out:
        raise ParameterError("the model holds no nn.Linear layer to transfer.")
    _check_chain(out, from_model=True)
    return out


def _sequential_leaves(model):
    """The leaf modules of a plain ``nn.Sequential`` in the order its forward
    applies them, repeats included (``modules()`` lists each once)."""
    out = []
    for m in model._modules.values():
        if isinstance(m, nn.Sequential):
            out.extend(_sequential_leaves(m))
        else:
            out.append(m)
    return out


def _is_plain_sequential(model):
    """An ``nn.Sequential`` (or a subclass) whose forward is Sequential's:
    its modules, nested plain Sequentials flattened, run in order."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return False
    return all(_is_plain_sequential(m) or not any(True for _ in m.children()) for m in model.children())


def _check_chain(layers, from_model):
    """Each layer takes as many inputs as the one before gives."""
    for k in range(1, len(layers)):
        if layers[k][0].shape[1] != layers[k - 1][0].shape[0]:
            # a model's layers are read in registration order
            hint = (" The linear layers are read in the order the model registers them (its __init__); if "
                    "forward applies them in another order, pass [(weight, bias), ...] in that order."
                    if from_model else "")
            raise ParameterError(f"layer {k} takes {layers[k][0].shape[1]} inputs but layer {k - 1} gives "
                                 f"{layers[k - 1][0].shape[0]}.{hint}")


def _bool_as_float(x, name="x"):
    """Boolean features as 0 / 1 (`as_float_array` refuses booleans, which
    the evaluations always took as numbers); ``name`` names ``x`` in
    messages."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float64) if x.dtype == torch.bool else x
    x = tensor_entries(x, lambda e, i: as_array(e, f"{name}[{i}]", "rows of numbers", "numbers"))  # rows requiring grad
    try:
        a = np.asarray(x)
    except (ValueError, RuntimeError, TypeError):  # ragged, or tensors nested deeper: as_float_array says so
        return x
    return a.astype(np.float64) if a.dtype == np.bool_ else x


def check_labels(y, points, outputs=1):
    """``y`` as an array of ``points`` class labels, or a ParameterError: 0
    or 1 for a network of one output (class 1 where its logit is > 0), 0 to
    ``outputs - 1`` for one of several (the output with the largest logit)."""
    # ragged: NumPy's raw "inhomogeneous shape"
    classes = max(int(outputs), 2)
    expected = "labels 0 and 1" if outputs == 1 else f"labels 0 to {classes - 1}"
    labels = as_array(y, "y", f"({points},), one label per point of x", expected)
    if labels.shape != (points,):
        raise ParameterError(f"y has shape {labels.shape}; expected ({points},), one label per point of x.")
    whole = labels.dtype.kind in "biuf" and bool(np.all((labels >= 0) & (labels < classes)
                                                         & (labels == np.floor(labels))))
    if not whole and outputs == 1:
        raise ParameterError("y must hold labels 0 and 1 (class 1 where the logit is > 0); map other "
                             "label sets to {0, 1} first.")
    if not whole:
        raise ParameterError(f"y must hold labels 0 to {classes - 1}, one class per output of this network (the "
                             f"class of a point is the output with the largest logit); map other label sets to "
                             f"0..{classes - 1} first.")
    return labels


def _task(model_or_layers, x, y):
    """The layers, features and labels of an evaluation, checked before any
    transfer runs: the layers chain, ``x`` is (P, in) and finite, ``y``
    holds P class labels (`check_labels`: 0 or 1 for one output, 0 to
    outputs - 1 for several)."""
    if isinstance(model_or_layers, (list, tuple)):
        layers = list(model_or_layers)  # a tuple was taken for a model ("no attribute 'modules'")
        if not layers or not all(isinstance(lb, (list, tuple)) and len(lb) == 2 for lb in layers):
            raise ParameterError("give a torch model, or its layers as a non-empty list of (weight, bias) pairs "
                                 "(weight (out, in), bias (out,) or None), as network_layers returns them.")
        # torch tensors detached (np.asarray raised torch's RuntimeError for
        # one that requires grad)
        layers = [(as_float_array(w, "weight", "(out, in)"),
                   None if b is None else as_float_array(b, "bias", "(out,)")) for w, b in layers]
        if any(w.ndim != 2 for w, _ in layers):
            raise ParameterError("each layer's weight must be a 2-D (out, in) array.")
        _check_chain(layers, from_model=False)
    else:
        layers = network_layers(model_or_layers)
    width = layers[0][0].shape[1]
    x = as_float_array(_bool_as_float(x), "x", f"(points, {width})")  # tensors detached
    if x.ndim != 2 or x.shape[1] != width or x.shape[0] == 0:  # 0 points ran every transfer, refused later
        raise ParameterError(f"x has shape {x.shape}; expected (points, {width}) for this network, points >= 1.")
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"x {where_not_finite(x)}; the test features must be finite.")
    labels = check_labels(y, x.shape[0], outputs=layers[-1][0].shape[0])
    if not isinstance(model_or_layers, (list, tuple)):
        _check_forward(model_or_layers, layers, x)
    return layers, x, labels.astype(np.int64)


def _check_forward(model, layers, x):
    """Refuse a model whose own forward is not the Linear -> Sigmoid chain
    `network_layers` read from its registered modules: layers registered out
    of forward order, a layer applied twice, another activation called in
    ``forward`` were scored as a different network.

    A float64 copy of the model runs once on ``x`` on the CPU, in
    evaluation mode, without sampling: the model itself is untouched (its
    failed-weight record, which `restore_failed_` reads, was cleared by a
    forward of its own), and a half-precision model is compared at double
    precision. A forward that fails at float64 (one that casts its input,
    ``x.float()``: refused before) is run by a float32
    copy, compared at float32's precision. A final sigmoid is accepted: it
    gives the same decisions."""
    import copy

    want = _software_outputs(layers, x)  # (P, outputs): network_layers takes any output count
    error = None
    for dtype in (torch.float64, torch.float32):
        try:  # the copy too: a model holding a non-leaf tensor cannot be deep-copied
            # the hardware models the layers hold are shared, not copied
            memo = {id(m.surrogate): m.surrogate for m in model.modules()
                    if getattr(m, "surrogate", None) is not None}
            twin = copy.deepcopy(model, memo).to(device="cpu", dtype=dtype)
            twin.eval()
            for m in twin.modules():
                if hasattr(m, "sample_on_eval"):
                    m.sample_on_eval = False
            with torch.no_grad():
                out = twin(as_tensor(x, dtype))  # a read-only x copied: the forward is the user's
            break
        except Exception as exc:
            error = error or exc
    else:
        raise ParameterError(
            f"running the model's own forward on the test points failed ({type(error).__name__}: {error}); the "
            "hardware evaluation checks that it is the chain of its registered layers. Pass its layers as "
            "[(weight, bias), ...] in the order the network applies them instead.") from error
    if isinstance(out, torch.Tensor) and not out.dtype.is_floating_point:
        # a complex output lost its imaginary part, a bool one passed as a
        # saturated sigmoid
        raise ParameterError(f"the model's forward returns {out.dtype} values; the hardware evaluation compares a "
                             "real logit (or its sigmoid) with the chain of its layers. Return floating-point "
                             "logits, or pass its layers as [(weight, bias), ...].")
    got = out.detach().to(torch.float64).numpy() if isinstance(out, torch.Tensor) else None
    if got is not None and not np.all(np.isfinite(got)):
        # an overflowed float16 logit cannot be checked (taking inf for any
        # logit past the type's range let a network without its sigmoid
        # through), and NaN was reported as a distance
        raise ParameterError(
            f"the model's forward returns NaN or inf at {int(np.sum(~np.isfinite(got)))} of {got.size} outputs "
            f"on these points ({out.dtype}); the hardware evaluation cannot compare them with the chain of its "
            "layers. Return finite logits (a wider type than float16 for logits past 65504), or pass its layers "
            "as [(weight, bias), ...].")
    if got is not None and (got.shape == want.shape or (want.shape[1] == 1 and got.shape == (x.shape[0],))):
        got = got.reshape(want.shape)
        eps = float(torch.finfo(dtype).eps)
        if dtype == torch.float64:
            tol = 1e4 * eps * (1.0 + float(np.max(np.abs(want))))
        else:
            # float32's rounding grows with the sizes summed, not the
            # logit's; 64 eps of them is ~400x what a cast model is off by,
            # and an offset of 0.01 on the logit is not let through (1e4 eps
            # let 0.05 through)
            tol = 64 * eps * (1.0 + float(np.max(np.abs(want))) + _magnitude(layers, x))
        # logits returned at a lower precision than they were computed in
        # (.float(), .half()) are off by that cast's rounding alone, relative
        # to each value (refused before; a tolerance of the sums at bfloat16's
        # precision let a network without a sigmoid through)
        cast, tiny = 0.0, 0.0
        if torch.finfo(out.dtype).eps > eps:
            info = torch.finfo(out.dtype)
            if info.eps > torch.finfo(torch.bfloat16).eps:
                # float8: a rounding of up to 25 % of each value hides a shifted
                # logit; it cannot be told from the chain
                raise ParameterError(
                    f"the model's forward returns {out.dtype} outputs, too coarse to check against the chain of "
                    "its layers; return float16 or wider, or pass its layers as [(weight, bias), ...].")
            # two eps: one rounding is off by half of one, and torch's
            # sigmoid by up to two ulp more (one eps left no margin)
            cast, tiny = 2.0 * float(info.eps), float(info.tiny)
        sig = _sigmoid(want)
        ok_logit = np.all(np.abs(got - want) <= tol + cast * (np.abs(want) + tiny))
        # a sigmoid taken after the cast carries the logit's rounding too,
        # sig (1 - sig) eps |z| (refused near z = -10)
        ok_sig = np.all(np.abs(got - sig) <= tol + cast * (sig + sig * (1.0 - sig) * np.abs(want) + tiny))
        if ok_logit or ok_sig:
            return
        if want.shape[1] > 1:
            # a softmax (or its log) of the chain: the same classes, and the
            # message blamed a missing sigmoid or the registration order
            shift = want - want.max(axis=1, keepdims=True)
            log_soft = shift - np.log(np.exp(shift).sum(axis=1, keepdims=True))
            soft = np.exp(log_soft)
            if (np.all(np.abs(got - soft) <= tol + cast * (soft + tiny))
                    or np.all(np.abs(got - log_soft) <= tol + cast * (np.abs(log_soft) + tiny))):
                raise ParameterError(
                    "the model's own forward returns a softmax (or log-softmax) of the chain of its layers: the "
                    "hardware evaluation scores the logits, and a final softmax picks the class its logits pick "
                    "(the largest). Return the logits from forward (drop the softmax), or pass its layers as "
                    "[(weight, bias), ...].")
        d_logit, d_sig = float(np.max(np.abs(got - want))), float(np.max(np.abs(got - sig)))
        detail = (f"differs by up to {d_logit:.3g} from the logits of the chain of its registered layers"
                  if d_logit <= d_sig else
                  f"differs by up to {d_sig:.3g} from the sigmoid of the logits of the chain of its registered "
                  "layers")
    else:
        detail = f"returns {type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))}"
    raise ParameterError(
        f"the model's own forward {detail} on these points: the hardware evaluation runs Linear -> Sigmoid -> "
        "... -> Linear, its nn.Linear layers in the order they are registered with a sigmoid (nn.Sigmoid or "
        "torch.sigmoid) between each two, and the model computes something else (a sigmoid missing, layers "
        "registered out of order, one applied twice, another activation in forward). Pass its layers as "
        "[(weight, bias), ...] in the order the network applies them, or score it with "
        "xbarsim.train.to_crossbar and xs.mvm.")


def _magnitude(layers, x):
    """The largest sum of absolute terms any layer's output adds up (the
    scale of its rounding error)."""
    h = np.abs(np.asarray(x, dtype=np.float64))
    top = 0.0
    for w, b in layers:
        z = h @ np.abs(w).T + (0.0 if b is None else np.abs(b))
        top = max(top, float(np.max(z)))
        h = np.ones_like(z)  # a sigmoid's output is at most 1
    return top


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _software_outputs(layers, x):
    """The network's outputs in software, (n_points, outputs)."""
    h = np.asarray(x, dtype=np.float64)
    for k, (w, b) in enumerate(layers):
        h = h @ w.T + (0.0 if b is None else b)
        if k < len(layers) - 1:
            h = _sigmoid(h)
    return h


def software_logits(layers, x):
    """Logits of the network in software (mean weights): (n_points,) for
    one output, (n_points, outputs) for several (`MCResult.logits`'s
    layout, one transfer)."""
    return _logits(_software_outputs(layers, x))


def _logits_array(n, points, layers):
    """Room for ``n`` transfers' logits (`MCResult.logits`'s shape)."""
    outputs = layers[-1][0].shape[0]
    return np.empty((n, points) if outputs == 1 else (n, points, outputs))


def _logits(h):
    """The last layer's outputs ``h`` (..., outputs) as `MCResult.logits` stores them."""
    return h[..., 0] if h.shape[-1] == 1 else h


def _hits(logits, labels):
    """Whether each transfer classed each point right: the logit's sign for
    one output, the largest logit for several."""
    classes = (logits > 0) if logits.ndim == 2 else np.argmax(logits, axis=-1)
    return classes.astype(np.int64) == labels[None, :]


def evaluate_circuit(model_or_layers, cfg, x, y, n=2000, seed=0, chunk=250, progress=True, label="circuit",
                     keep_conductances=0):
    """Per-transfer outputs with the full simulator in the loop.

    Parameters
    ----------
    model_or_layers : torch.nn.Module or list of (W, b)
    cfg : xbarsim.TransferConfig
    x, y : arrays
        Test features (P, in) and labels (P,): 0 or 1 for a network of one
        output (class 1 where its logit is > 0), 0 to K - 1 for one of K
        outputs (the class is the output with the largest logit).
    n : int
        Transfers.
    seed : int
        Layer ``k`` is transferred with seed ``seed + k`` (transfer ``t``,
        tile ``j`` uses the stream ``(seed + k, t, j)``); read noise of layer
        ``k`` from seed ``seed + 1000 + k``. So runs at nearby seeds share
        streams (layer 1 at seed ``s`` draws what layer 0 draws at ``s +
        1``): for independent repeats, space the seeds by more than ``1000
        + len(layers)``, or derive them, as ``xbarsim moons`` does
        (`xbarsim.moons.stream_seed`).
    chunk : int
        Transfers programmed per step (memory, progress granularity).
    progress : bool
        Show a progress bar (stderr).
    label : str
        The progress bar's label.
    keep_conductances : int
        Also return the programmed conductances of the first this many
        transfers (``batches``: one `TransferBatch` per layer, of
        ``min(keep_conductances, n)`` transfers) for plots.

    Returns
    -------
    MCResult, list
        The result (``.logits``, (n, points) or (n, points, K) for K
        outputs, and ``.correct``, (n, points);
        ``.model``; the metrics take its ``.correct``), and the kept
        batches (empty unless asked).
    """
    import xbarsim as xs

    layers, x, labels = _task(model_or_layers, x, y)
    n, chunk = check_count(n, "n"), check_count(chunk, "chunk")
    keep_conductances = check_count(keep_conductances, "keep_conductances", 0)
    progress = check_flag(progress, "progress")  # "no" showed the bar
    seed = check_seed(seed, offset=max(SEED_OFFSET_MAX, 1000 + len(layers) - 1))  # read noise: seed + 1000 + k
    # the first MVM refuses inputs that overflow the sinh current, but only
    # after a chunk of transfers was programmed (26 s)
    refuse_sinh_overflow(x, _layer_targets(*layers[0], cfg), cfg.device)
    _warn_if_other_cfg(model_or_layers, cfg)
    _require_results(n, x, layers, chunk, "a circuit evaluation", kept=keep_conductances)
    logits = _logits_array(n, x.shape[0], layers)
    kept = [[] for _ in layers]
    streams = [xs.iter_transfers(w, b, cfg, n=n, seed=seed + k, chunk=chunk) for k, (w, b) in enumerate(layers)]
    tallies = [ConvergenceTally(cfg) for _ in layers]
    with Progress(n, label=label, enabled=progress) as bar:
        for chunk_batches in zip(*streams):
            start = chunk_batches[0].offset
            count = len(chunk_batches[0])
            h = None
            for k, batch in enumerate(chunk_batches):
                tallies[k].add(batch)
                # layer 0 reads the points, each deeper layer its own transfer's
                # activations (n, B, in): one mvm_many call either way
                z = batch.mvm(x if k == 0 else h, seed=seed + 1000 + k)
                h = _sigmoid(z) if k < len(layers) - 1 else z
                if start < keep_conductances:
                    kept[k].append(batch)
            logits[start:start + count] = _logits(h)
            bar.update(count)
    # write-verify left most devices unconverged without a word (iter_transfers does not warn)
    for k, tally in enumerate(tallies):
        tally.warn(f"the circuit evaluation's layer {k} ({n} transfers)")
    correct = _hits(logits, labels)
    return (MCResult(logits, correct, "circuit", programming=tuple(t.summary() for t in tallies)),
            [_joined(chunks, keep_conductances) for chunks in kept] if keep_conductances else [])


def _warn_if_other_cfg(model_or_layers, cfg):
    """`warn_if_trained_for_another_cfg` for a model (layers given as
    arrays carry no training to compare); every evaluation calls it: the
    statistical and surrogate ones did not."""
    if isinstance(model_or_layers, nn.Module):  # as to_crossbar does
        warn_if_trained_for_another_cfg(linear_layers(model_or_layers), cfg)


def _joined(chunks, count):
    """The first `count` transfers of consecutive `TransferBatch` chunks
    (one layer's, from transfer 0) as one `TransferBatch`."""
    from ..transfer import _TILE_FIELDS, TransferBatch

    first = chunks[0]
    fields = {name: [np.concatenate([getattr(c, name)[j] for c in chunks])[:count] for j in range(len(first.g))]
              for name in _TILE_FIELDS}
    return TransferBatch(mapping=first.mapping, cfg=first.cfg, seed=first.seed, offset=first.offset,
                         solver_failures=sum(c.solver_failures for c in chunks), **fields)


def _layer_targets(w, b, cfg):
    from ..mapping import map_layer

    return map_layer(w, b, cfg)


def _transfer_rngs(seed, start, count):
    """One generator per transfer ``t = start .. start + count - 1``, keyed
    ``(seed, t)``: what transfer t draws does not depend on how the n
    transfers are chunked (one generator for the whole run gave other
    results for another ``chunk``).

    The key is three 32-bit words, the seed's low and high words and t:
    ``[seed, t]`` let NumPy split a seed of 2**32 or more into two words,
    so (2**32, 0) and (0, 1) were one stream (found by review). Seeds of
    2**32 and more, which `xbarsim moons` derives, keep their streams of
    that layout; smaller ones have new streams. Transfer 0's is
    ``default_rng(seed)`` (NumPy pads with zeros), as the README says."""
    return [np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, t]) for t in range(start, start + count)]


EVAL_BYTES_PER_DEVICE = 32
"""Bytes a statistical or surrogate evaluation holds per device and
transfer of a chunk: the sampled conductances (8), the effective weights
(about 4 per device) and their temporaries. Measured on a 256-256-1
network, n = chunk = 200: 12.5 (statistical) and 8.7 (surrogate); they were
not counted, and a chunk that did not fit failed in NumPy (found by
review)."""

KEPT_BYTES_PER_DEVICE = 28
"""Bytes `evaluate_circuit` holds per device and kept transfer
(``keep_conductances``): the kept batches' 14, and their joined copy."""


def _layer_devices(layers):
    """An upper bound on the devices the layers map onto: a differential
    pair per weight and bias, ``2 (in + 1) out``, or a reference column,
    ``(in + 1) (out + 1)``."""
    return sum(2 * (np.shape(w)[1] + 1) * (np.shape(w)[0] + 1) for w, _ in layers)


def _require_results(n, x, layers, chunk, what, per_device=0, kept=0):
    """Refuse, before anything is computed, an evaluation whose results
    ((n, P[, outputs]) logits and (n, P) hits) and working chunk do not fit
    in memory (n = 10**12 gave NumPy's raw MemoryError): ``per_device``
    bytes per device and transfer of a chunk, and ``kept`` transfers of
    conductances (`KEPT_BYTES_PER_DEVICE`)."""
    from .._memory import require

    # the inputs are shared by every transfer (broadcast, or one copy for
    # the MVM): counted once; per transfer of a chunk, the layers' outputs
    P = x.shape[0]
    width = max(np.shape(w)[0] for w, _ in layers)
    outputs = np.shape(layers[-1][0])[0]
    devices = _layer_devices(layers)
    need = ((8 * outputs + 9) * n * P + 8 * x.size + 32 * min(chunk, n) * P * width
            + per_device * min(chunk, n) * devices + KEPT_BYTES_PER_DEVICE * min(kept, n) * devices)
    require(need, f"{what} of {n} transfers on {P} points" + (f", keeping {min(kept, n)}" if kept else ""),
            "evaluate fewer transfers at a time (n) or fewer points, or lower chunk"
            + (" or keep_conductances" if kept else ""))


def evaluate_statistical(model_or_layers, cfg, x, y, n=2000, seed=0, stat=None, chunk=500):
    """Per-transfer outputs under the paper's statistical-only model (no circuit).

    The same mapping as the circuit evaluation gives the target
    conductances; `StatisticalModel` perturbs them (the drift of a device
    after the ``n_later`` devices programmed after it in its tile); the MVM
    is ideal. Returns an `MCResult` (``.logits``, (n, points) or (n,
    points, K) for K outputs, and ``.correct``, (n, points); ``.model``)
    alone, where `evaluate_circuit` returns the pair ``(MCResult, kept
    batches)``; the metrics (`summarize`...) take its ``.correct``.

    Parameters
    ----------
    model_or_layers, cfg, x, y, n, chunk
        As `evaluate_circuit`'s (``cfg`` gives the mapping and order).
    seed : int
        In [0, 2**64 - 104730]; transfer t draws from the stream (seed, t).
    stat : StatisticalModel or None
        The statistical model (None: its defaults, the paper's figures).

    Returns
    -------
    MCResult

    Raises
    ------
    ParameterError
        Before any transfer: as `evaluate_circuit`, and a ``stat`` that is
        not a `StatisticalModel`.
    MemoryLimitError
        Before any transfer: the results do not fit in memory.
    """
    from .statistical import StatisticalModel
    from .surrogate import tile_features

    stat = StatisticalModel() if stat is None else stat
    if not isinstance(stat, StatisticalModel):  # "paper" raised AttributeError mid-run
        raise ParameterError(f"stat must be an xbarsim.train.StatisticalModel or None; got {type(stat).__name__}.")
    layers, x, labels = _task(model_or_layers, x, y)
    n, chunk = check_count(n, "n"), check_count(chunk, "chunk")
    seed = check_seed(seed)
    _require_results(n, x, layers, chunk, "a statistical-model evaluation", per_device=EVAL_BYTES_PER_DEVICE)
    maps = [_layer_targets(w, b, cfg) for w, b in layers]  # refuses a cfg that is not a TransferConfig
    _warn_if_other_cfg(model_or_layers, cfg)
    later = [[tile_features(tile.shape, cfg.order)[1].astype(np.int64) for tile in lm.tiles] for lm in maps]
    logits = _logits_array(n, x.shape[0], layers)
    for s in range(0, n, chunk):
        c = min(chunk, n - s)
        rngs = _transfer_rngs(seed, s, c)
        h = np.broadcast_to(x, (c,) + x.shape)
        for k, lm in enumerate(maps):
            gs = [np.stack([stat.sample(tile.target, n_later, r)[0] for r in rngs])
                  for tile, n_later in zip(lm.tiles, later[k])]
            W, bb = lm.effective_weights(gs)
            z = np.einsum("nbi,noi->nbo", h, W) + (0.0 if bb is None else bb[:, None, :])
            h = _sigmoid(z) if k < len(maps) - 1 else z
        logits[s:s + c] = _logits(h)
    correct = _hits(logits, labels)
    return MCResult(logits, correct, "statistical")


def evaluate_surrogate(model_or_layers, surrogate, x, y, n=2000, seed=0, chunk=250):
    """Per-transfer outputs under the fitted surrogate (programming and circuit).

    Transfer t draws from its own stream (seed, t): first the programmed
    conductances of every layer, then the read noise of each layer in
    turn. So a transfer is the same programmed network whichever points it
    scores (with the noise drawn between layers, layer 2's conductances had
    depended on how many points layer 1 read). Returns an `MCResult`
    (``.logits``, (n, points) or (n, points, K) for K outputs, and
    ``.correct``, (n, points); ``.model``) alone, where `evaluate_circuit`
    returns the pair ``(MCResult, kept batches)``; the metrics
    (`summarize`...) take its ``.correct``.

    Parameters
    ----------
    model_or_layers, x, y, n, chunk
        As `evaluate_circuit`'s.
    surrogate : Surrogate
        A fitted surrogate; its ``cfg`` is the transfer configuration.
    seed : int
        As `evaluate_statistical`'s.

    Returns
    -------
    MCResult

    Raises
    ------
    ParameterError, MemoryLimitError
        As `evaluate_statistical`'s, with a ``surrogate`` that is not a
        fitted `Surrogate` in place of a bad ``stat``.
    """
    from .surrogate import Surrogate, extrapolation_message

    if not isinstance(surrogate, Surrogate):  # "'str' object has no attribute 'cfg'"
        raise ParameterError(f"surrogate must be a fitted xbarsim.train.Surrogate; got {type(surrogate).__name__} "
                             "(Surrogate.fit(cfg), or Surrogate.load(path)).")
    layers, x, labels = _task(model_or_layers, x, y)
    n, chunk = check_count(n, "n"), check_count(chunk, "chunk")
    seed = check_seed(seed)
    _warn_if_other_cfg(model_or_layers, surrogate.cfg)
    _require_results(n, x, layers, chunk, "a surrogate evaluation", per_device=EVAL_BYTES_PER_DEVICE)
    maps = [_layer_targets(w, b, surrogate.cfg) for w, b in layers]
    for k, (w, b) in enumerate(layers):
        # as converting the layers warns (a plain network's was scored on
        # the extrapolated models without a word)
        out_f, in_f = w.shape
        warn_if_extrapolated(surrogate, in_f, out_f, b is not None,
                             what=f"layer {k} ({out_f} x {in_f}) of the evaluated network")
    logits = _logits_array(n, x.shape[0], layers)
    fitted = surrogate.input_limits()[0]
    warned = False
    for s in range(0, n, chunk):
        c = min(chunk, n - s)
        rngs = _transfer_rngs(seed, s, c)
        tiles = [[surrogate.sample_tiles(lm, r, n=1)[0] for lm in maps] for r in rngs]  # programming first
        h = np.broadcast_to(x, (c,) + x.shape)
        for k, lm in enumerate(maps):
            x_max = 0.0 if warned or not h.size else float(np.max(np.abs(h)))
            if x_max > fitted:
                # 20 V reads scored without a word, where evaluate_circuit and
                # the layers warn
                warned = True
                warn(extrapolation_message(surrogate, x_max, f"layer {k}'s inputs") + " Warned once per call.",
                     RuntimeWarning)
            z = np.concatenate([surrogate.layer_output(lm, tiles[i][k], h[i:i + 1], r, noise=True)
                                for i, r in enumerate(rngs)])
            h = _sigmoid(z) if k < len(maps) - 1 else z
        logits[s:s + c] = _logits(h)
    correct = _hits(logits, labels)
    return MCResult(logits, correct, "surrogate")


def grid_outputs_from_batches(surrogate, batches, grid, seed=0, n_max=None):
    """Network outputs on `grid` for the kept circuit transfers (plots):
    `batches`, one `TransferBatch` per layer (`evaluate_circuit`'s), of
    which the first `n_max` transfers are used.

    The programmed conductances are the simulator's; the MVM of the many
    grid points uses the surrogate's circuit model (sinh read law,
    first-order IR drop, read noise), checked against the circuit MVM in
    `xbarsim.train.surrogate.check`. Returns (n_kept, n_grid) logits, (n_kept,
    n_grid, outputs) for a network of several outputs.
    """
    rng = np.random.default_rng(check_seed(seed))
    h = np.asarray(grid, dtype=np.float64)
    n_layers = len(batches)
    for k, batch in enumerate(batches):
        lm = batch.mapping
        gs = [g[:n_max] for g in batch.g]
        z = surrogate.layer_output(lm, gs, h, rng, noise=True)
        h = _sigmoid(z) if k < n_layers - 1 else z
    return _logits(h)
