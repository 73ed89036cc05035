"""`HardwareAwareLinear`, `convert` and `to_crossbar`.

A drop-in for ``nn.Linear`` that trains against a model of the hardware
(a `Surrogate` fitted to the simulator, `xbarsim.train.surrogate`), with the
three techniques of Drolet et al. (arXiv:2305.18495) switchable one by one:

``reparam``
    Reparametrization trick: every training forward samples one transfer of
    the current weights through the hardware model. The sampled error is a
    constant of the step: ``w_used = w + (w_sampled - w)`` with the gradient
    passing straight through to the mean weight ``w``.
``failures``
    Dropout adapted to failures: devices sampled as failed take their stuck
    value in the forward, and the weights they belong to receive no update
    in that step (zero gradient, and `restore_failed_` undoes what an
    optimizer with momentum would still do to them).
``regularize``
    Weight decay and the surrogate's differentiable hardware penalty
    (``weight_decay``, ``hardware_penalty``), added to the loss by
    `regularization_loss`.

A training loop of your own calls, per step: ``loss = task_loss +
regularization_loss(model)``, ``snapshot_(model)`` before
``optimizer.step()`` and ``restore_failed_(model)`` after it (that is what
`xbarsim.train.train` does); without them the regularization is not applied
and an optimizer with momentum still moves the weights of failed devices.

In evaluation mode the layer is deterministic (the mean weights), unless
`sample_on_eval` is set or the `sampling` context is used, which draw one
transfer per forward.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from .._warn import warn
from ..devices import real_scalar
from ..exceptions import ParameterError
from ._checks import SEED_OFFSET_MAX, check_count, check_flag, check_seed, failure_scale
from .._docfields import document_fields

__all__ = [
    "HardwareAwareLinear",
    "LayerSample",
    "straight_through",
    "apply_sample",
    "convert",
    "to_crossbar",
    "sampling",
    "hardware_layers",
    "restore_failed_",
    "snapshot_",
    "regularization_loss",
    "rng_state",
    "set_rng_state",
]


@document_fields
@dataclass(frozen=True, eq=False)
class LayerSample:
    """One transfer of a layer sampled by a hardware model (weight units)."""

    weight: np.ndarray
    """Effective weight after transfer, (out, in)."""
    bias: Optional[np.ndarray]
    """Effective bias after transfer, (out,), or None."""
    failed_weight: np.ndarray
    """Bool (out, in): the weight holds at least one failed device."""
    failed_bias: Optional[np.ndarray]
    """Bool (out,): the bias holds at least one failed device."""
    circuit: Optional[Callable] = None
    """Optional ``circuit(x) -> (B, out)``: the layer's output for inputs x (numpy) through the
    model's circuit (non-linearity, IR drop, read noise) with these conductances; None: linear."""
    input_gain: Optional[tuple] = None
    """Optional ``(v_read, v0, input_scale)``: apply the sinh read law to the inputs
    (differentiably) before the sampled weights; None: linear read."""


class _StraightThrough(torch.autograd.Function):
    """``keep * w + delta``: gradient ``grad * keep`` to `w`, `delta` constant.

    Notes
    -----
    The reparametrization trick of Drolet et al.: the sampled hardware error
    is a constant of the step, so the gradient reaches the mean weight
    unchanged, except where a device was sampled as failed (``keep = 0``):
    a stuck device holds its stuck value whatever the weight, so the output
    there does not depend on the weight and the weight gets no gradient.
    """

    @staticmethod
    def forward(ctx, w, delta, keep):
        ctx.save_for_backward(keep)
        return keep * w + delta

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad * keep, None, None


def _run_eagerly(fn):
    """`fn`, run eagerly when ``torch.compile`` traces it.

    The sampled forward draws a transfer with NumPy and runs the hardware
    model's circuit in Numba kernels, neither of which Dynamo can trace: a
    compiled model in training mode failed with Dynamo's "'ndarray' object
    has no attribute 'detach'" and a hint that blamed eager mode.
    Under tracing, `fn` is called through ``torch._dynamo.disable``
    (a graph break): the rest of the model is still compiled, and an
    evaluation forward (a plain linear layer) is compiled whole. Outside
    tracing `fn` is called as it is: decorating with
    ``torch.compiler.disable`` itself imports ``torch._dynamo``, a second
    (1 s) on every ``import xbarsim.train``, as torch's own lazy variant
    does on the first call.
    """
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if is_compiling is None:  # before torch 2.3
        return fn

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not is_compiling():
            return fn(*args, **kwargs)
        import torch._dynamo  # loaded: something is compiling

        eager = getattr(fn, "_xbarsim_eager", None)
        if eager is None:
            eager = fn._xbarsim_eager = torch._dynamo.disable(fn)
        return eager(*args, **kwargs)

    return run


def straight_through(w, delta, keep):
    """``keep * w + delta`` with `delta` and `keep` constants of the step.

    Parameters
    ----------
    w : torch.Tensor
        Mean weights (requires grad).
    delta : torch.Tensor
        Same shape: the sampled error ``w_sampled - w`` where ``keep = 1``,
        the stuck value ``w_sampled`` where ``keep = 0``.
    keep : torch.Tensor
        1 where the device works (gradient passes), 0 where it failed.
    """
    return _StraightThrough.apply(w, delta.detach().to(w.dtype), keep.detach().to(w.dtype))


def apply_sample(w, sampled, failed):
    """The used weight ``sampled`` with the straight-through gradient to `w`.

    Equal to `sampled` in value; its gradient is ``1`` to `w` where not
    `failed` and ``0`` where `failed`.

    `failed` must be a bool tensor: an integer 0 / 1 mask made ``~failed``
    -1 / -2, so the gradient was flipped and scaled, and a float one raised
    torch's raw TypeError.
    """
    if not isinstance(failed, torch.Tensor) or failed.dtype != torch.bool:
        got = f"a tensor of dtype {failed.dtype}" if isinstance(failed, torch.Tensor) else type(failed).__name__
        raise ParameterError(f"failed must be a bool tensor (True where the device failed); got {got}. Convert a "
                             "0 / 1 mask with mask.bool().")
    keep = (~failed).to(w.dtype)
    delta = sampled.to(w.dtype) - keep * w.detach()
    return straight_through(w, delta, keep)


class HardwareAwareLinear(nn.Linear):
    """``nn.Linear`` trained against a model of the crossbar transfer.

    Parameters
    ----------
    in_features, out_features : int
        As ``nn.Linear``.
    bias : bool
        As ``nn.Linear``.
    surrogate : object, optional
        A hardware model with ``sample_layer(weight, bias, rng, noise=,
        failures=) -> LayerSample`` (a fitted `Surrogate`), and optionally
        ``penalty(weight, bias)`` (a differentiable torch scalar). None:
        the layer is an ``nn.Linear``.
    mapping : str, optional
        Weight-to-conductance mapping of the transfer; must match the
        hardware model's (checked when the model has a ``mapping``). None
        (the default): the model's, or ``"differential"`` without one.
    reparam : bool
        Sample hardware noise in training forwards (reparametrization trick).
    failures : bool or float
        Sample failed devices in training forwards (dropout adapted to
        failures). A number > 0 also scales the hardware model's failure
        probabilities in training (a higher "dropout rate"); 0 (and None)
        is off, as False; evaluation sampling always uses the fitted rates.
    weight_decay : float
        L2 coefficient on weights and bias in `regularization_loss`.
    hardware_penalty : float
        Coefficient of the surrogate's ``penalty`` in `regularization_loss`.
    seed : int, optional
        Seed of the layer's sampling stream, in ``[0, 2**64)``. None: a hash
        of the layer's freshly initialised weights, reproducible under
        ``torch.manual_seed`` and different between layers whose initial
        weights differ, without drawing from torch's generator (layers
        initialised alike, e.g. zero-filled, share a stream: give them seeds;
        `from_linear` and `convert` draw it from torch's generator instead).

    Notes
    -----
    A training forward that samples (``reparam`` or ``failures`` on) runs
    the inputs through the hardware model's circuit (a `Surrogate`: the
    devices' sinh read and the IR drop, fitted to the simulator), whatever
    it samples; with both off it is ``nn.Linear``'s. So ``failures`` alone
    trains against failed devices *and* the circuit, noise-free; the
    ablation of ``xbarsim moons --ablation`` changes both together (the
    README gives the circuit model's share).

    Gradients of a sampled forward: the weights and bias get the
    straight-through gradient of the reparametrization (`straight_through`);
    the circuit's correction (IR drop, read noise: the circuit's output less
    the sampled weights' product with the sinh-read inputs) is a constant of
    the step. So the gradient with respect to the input, which reaches the
    layers before this one, is that of the sampled weights' product, not
    of the circuit: on a 4 -> 16 layer of a surrogate fitted at 16 x 4 it
    differed from central differences of the same sampled forward by 7 %,
    where the correction was 8-9 % of the output.

    Inputs: the hardware model maps an input ``x`` to the read voltage ``x
    v_read / input_scale``, and was fitted on inputs in ``[0,
    input_scale]``. A sampled forward warns once (RuntimeWarning) when
    ``|x|`` leaves that range: the surrogate's first-order IR-drop model can
    be far from the circuit there, and from ``|x| = input_scale v_switch /
    v_read`` on the read would also disturb the devices. It refuses
    (`ParameterError`, nothing computed) inputs whose sinh read current
    overflows, as ``xs.mvm`` does, and any sampled forward that would return
    NaN or inf. A forward that samples nothing (evaluation mode by default,
    or no surrogate) is ``nn.Linear``'s, with no check added to it: NaN in,
    NaN out, as torch's layers do.

    Activation checkpointing (``torch.utils.checkpoint``) recomputes a
    forward in the backward pass, where a sampled forward would draw
    another transfer than the one the loss saw: it is refused there
    (`ParameterError`). Checkpoint the rest of the model, not the
    hardware-aware layers.

    Under ``torch.autocast`` a forward that samples nothing is
    ``nn.Linear``'s under autocast (e.g. a bfloat16 output); a sampled
    forward casts its input to the weights' dtype and runs at that dtype,
    autocast off, so that the hardware sample is not rounded to the autocast
    dtype (its output has the weights' dtype). Outside autocast an input of
    another dtype than the weights is refused.

    Sampling stream: each layer draws its transfers from a NumPy generator
    of its own, which ``state_dict`` does not hold (the state dict stays
    loadable into a plain ``nn.Linear``). To resume training exactly, save
    `xbarsim.train.rng_state` (model) with the checkpoint and give it back
    with `xbarsim.train.set_rng_state` (or per layer, `rng_state` /
    `set_rng_state`).
    """

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        surrogate=None,
        mapping=None,
        reparam=True,
        failures=True,
        weight_decay=0.0,
        hardware_penalty=0.0,
        seed=None,
        device=None,
        dtype=None,
    ):
        in_features = check_count(in_features, "in_features")
        out_features = check_count(out_features, "out_features")
        bias = check_flag(bias, "bias")  # bias="no" built a layer with a bias
        device = _check_dtype_and_device(dtype, device)
        if device is None or device.type == "cpu":
            from .._memory import require

            # weights, their gradient, Adam's two moments and a sample: torch's raw allocator error before
            require(5 * 8 * in_features * out_features, f"a HardwareAwareLinear({in_features}, {out_features})",
                    "use smaller layers (they map onto crossbar tiles of a few hundred lines)")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        for name, c in (("weight_decay", weight_decay), ("hardware_penalty", hardware_penalty)):
            v = real_scalar(c)  # NumPy scalars too (np.float32(0.1) was refused)
            if v is None or not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"{name} = {c!r}; a finite coefficient >= 0.")
        if surrogate is not None and not callable(getattr(surrogate, "sample_layer", None)):
            raise ParameterError(
                f"surrogate must be a fitted xbarsim.train.Surrogate (an object with sample_layer); got "
                f"{type(surrogate).__name__}. Fit one with Surrogate.fit(cfg), or load it with Surrogate.load.")
        if real_scalar(hardware_penalty) > 0:
            _check_penalty(surrogate, hardware_penalty)  # was a zero penalty without a word
        if not isinstance(reparam, (bool, np.bool_)):
            raise ParameterError(f"reparam = {reparam!r}; True or False.")
        # None or a bool (np.True_ too, as reparam): on / off at the fitted rates; a number: a scale of them
        scale = None if failures is None or isinstance(failures, (bool, np.bool_)) else failure_scale(failures)
        from ..mapping import MappingScheme
        from .._coerce import as_choice

        model_mapping = _model_mapping(surrogate)
        # a mapping given without a hardware model says how the layer will be
        # transferred; the default, "differential", says nothing (`to_crossbar`)
        # (a hardware model's own mapping counts as given too; its default does not)
        self._mapping_given = mapping is not None or model_mapping is not None
        if mapping is None:  # the model's (a reference-fitted surrogate was refused unless repeated)
            mapping = "differential" if surrogate is None or model_mapping is None else model_mapping
        mapping = as_choice(MappingScheme, mapping, "mapping").value  # any case, as TransferConfig
        if surrogate is not None and model_mapping is not None and str(model_mapping).lower() != mapping:
            raise ParameterError(
                f"mapping={mapping!r} but the hardware model was built for {model_mapping!r}; "
                "pass the same mapping as the surrogate's cfg."
            )
        seed = None if seed is None else check_seed(seed, offset=0)  # no stream derived from it
        self.surrogate = surrogate
        warn_if_extrapolated(surrogate, in_features, out_features, bias)
        # `_check_surrogate`: one set later is checked at its first sample (set past nn.Module's
        # __setattr__, which would register a hardware model that is a Module a second time)
        object.__setattr__(self, "_checked_surrogate", surrogate)
        self.mapping = mapping
        self.reparam = bool(reparam)
        if scale is None:
            self.failure_scale = 1.0
            self.failures = bool(failures)
        else:
            # 0 is off, as False: its scale of 0 made sample(failures=True)
            # draw none where a layer built with False draws at the fitted
            # rates
            self.failure_scale = scale if scale > 0 else 1.0
            self.failures = scale > 0
            p_fail = float(getattr(surrogate, "p_lrs", 0.0)) + float(getattr(surrogate, "p_hrs", 0.0))
            if self.failure_scale * p_fail > 1:  # was refused only at the first forward
                raise ParameterError(f"failures = {failures!r} scales the surrogate's failure probability "
                                     f"({p_fail:.3g}) above 1; give a scale of at most {1 / p_fail:.3g}.")
        self.weight_decay = float(weight_decay)
        self.hardware_penalty = float(hardware_penalty)
        self.sample_on_eval = False
        if seed is None:
            seed = _weights_seed(self)
        self._rng = np.random.default_rng(seed)
        self._converted_name = None  # the layer's name in the model `convert` made it for (messages)
        self._failed_weight = None
        self._failed_bias = None
        self._pre_step = None
        self.last_sample = None
        self._warned_inputs = False

    @classmethod
    def from_linear(cls, linear, **kwargs):
        """A hardware-aware copy of an ``nn.Linear`` (same weights).

        The copy keeps the source's training / evaluation mode and its
        parameters' ``requires_grad`` (an eval-mode layer stays
        deterministic, a frozen one frozen; they were always training and
        trainable).

        Torch's global generator moves only by what ``seed=None`` draws (the
        layer's sampling seed): nn.Linear's own initialisation, overwritten
        here, draws from a fork of it (it advanced the caller's generator).

        `kwargs` go to `HardwareAwareLinear` (``surrogate``, ``seed``,
        ``reparam``, ...); the shape, bias, dtype and device come from
        `linear` (`ParameterError` if given: a raw TypeError).

        A layer whose behaviour the copy would drop is refused
        (`ParameterError`, with what to do first): a pruned one
        (``torch.nn.utils.prune``), a parametrized one (``weight_norm``), a
        subclass with its own ``forward``, one with hooks, and a lazy one not
        yet initialised.
        """
        return cls._from_linear(linear, False, **kwargs)

    @classmethod
    def _from_linear(cls, linear, share, **kwargs):
        """`from_linear`; with `share`, the layer takes `linear`'s own
        parameters instead of copies (`convert`, which has copied the model
        already or works in place): a weight tied to another module's stays
        tied, and an optimizer made before an in-place conversion trains the
        converted layers (new parameters untied the first and left the
        second training nothing, without a word)."""
        if not isinstance(linear, nn.Linear):  # a Conv1d or None: a bare AttributeError
            raise ParameterError(f"from_linear copies an nn.Linear; got {type(linear).__name__}. Build other "
                                 "layers as they are (convert() leaves every layer but nn.Linear alone).")
        _refuse_copied_kwargs(kwargs)
        _check_convertible(linear, "")
        if kwargs.get("seed") is None:
            kwargs["seed"] = _torch_seed()
        device = linear.weight.device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            layer = cls(
                linear.in_features,
                linear.out_features,
                bias=linear.bias is not None,
                device=device,
                dtype=linear.weight.dtype,
                **kwargs,
            )
        if share:
            layer.weight = linear.weight
            if linear.bias is not None:
                layer.bias = linear.bias
        else:
            with torch.no_grad():
                layer.weight.copy_(linear.weight)
                if linear.bias is not None:
                    layer.bias.copy_(linear.bias)
            layer.weight.requires_grad_(linear.weight.requires_grad)
            if linear.bias is not None:
                layer.bias.requires_grad_(linear.bias.requires_grad)
        layer.train(linear.training)
        return layer

    def extra_repr(self):
        return (
            super().extra_repr()
            + f", reparam={self.reparam}, failures={self.failures}, weight_decay={self.weight_decay},"
            f" hardware_penalty={self.hardware_penalty}, surrogate={type(self.surrogate).__name__}"
        )

    def reseed(self, seed):
        """Restart the layer's sampling stream from `seed`.

        ``copy.deepcopy`` and ``pickle`` copy the stream with the layer, as
        they copy any generator: a copy draws the same transfers as its
        original. Reseed each copy (with its own seed) when the copies
        should sample independently, e.g. the members of an ensemble.
        """
        self._rng = np.random.default_rng(check_seed(seed, offset=0))

    def _sampling_now(self):
        if self.surrogate is None:
            return False
        if self.training:
            return self.reparam or self.failures
        return self.sample_on_eval

    def sample(self, noise=None, failures=None):
        """Draw one transfer of the current weights (a `LayerSample`).

        Parameters
        ----------
        noise, failures : bool, optional
            Sample the hardware noise, the failed devices. None: in training
            mode the layer's switches (``reparam``, ``failures``), in
            evaluation mode True (a full transfer). In training mode failures
            are drawn at the layer's ``failures`` scale of the fitted
            probabilities, in evaluation mode at the fitted ones. (In
            evaluation mode given values were ignored: both were always
            drawn.)
        """
        if self.surrogate is None:
            raise ParameterError("this HardwareAwareLinear has no surrogate to sample from; pass surrogate=.")
        self._check_surrogate()
        noise = None if noise is None else check_flag(noise, "noise")
        failures = None if failures is None else check_flag(failures, "failures")
        if not self.training:  # evaluation draws a full transfer at the fitted rates, unless told otherwise
            noise = True if noise is None else noise
            failures = True if failures is None else failures
        else:
            noise = self.reparam if noise is None else noise
            failures = self.failures if failures is None else failures
            if failures and self.failure_scale != 1.0:
                failures = self.failure_scale
        w, b = self._refuse_nonfinite_weights()
        s = self.surrogate.sample_layer(w, b, self._rng, noise=noise, failures=failures)
        self._check_sample(s)
        return s

    def _penalty(self):
        """The hardware model's ``penalty(weight, bias)``, checked: a
        differentiable torch scalar. A per-row penalty raised torch's raw
        "Boolean value of Tensor with more than one value", and a NumPy
        number or a detached tensor trained nothing, without a word."""
        pen = self.surrogate.penalty(self.weight, self.bias)
        who = f"{type(self.surrogate).__name__}.penalty(weight, bias)"
        if not (isinstance(pen, torch.Tensor) and pen.is_floating_point() and pen.numel() == 1):
            got = (f"a {pen.dtype} tensor of shape {tuple(pen.shape)}" if isinstance(pen, torch.Tensor)
                   else f"a {type(pen).__name__}")
            raise ParameterError(f"{who} returned {got}; it must return a differentiable torch scalar (one "
                                 "floating-point value, e.g. a .sum() of torch operations on weight and bias).")
        if torch.is_grad_enabled() and self.weight.requires_grad and not pen.requires_grad:
            raise ParameterError(f"{who} returned a tensor with no gradient to the weights, so the penalty would "
                                 "train nothing; compute it from the weight and bias it is given with torch "
                                 "operations (not NumPy, .item() or .detach()).")
        return pen.reshape(())

    def _check_surrogate(self):
        """The constructor's checks of a surrogate assigned after it
        (``layer.surrogate = sur``, as messages of this package suggest),
        once per surrogate: a string failed at the forward with a raw
        AttributeError, and a surrogate fitted on smaller layers drew no
        extrapolation warning."""
        sur = self.surrogate
        if sur is getattr(self, "_checked_surrogate", None):
            return
        if not callable(getattr(sur, "sample_layer", None)):
            raise ParameterError(f"layer.surrogate is a {type(sur).__name__}; it must be a fitted "
                                 "xbarsim.train.Surrogate (an object with sample_layer): Surrogate.fit(cfg), or "
                                 "Surrogate.load(path).")
        model_mapping = _model_mapping(sur)
        if model_mapping is not None and str(model_mapping).lower() != self.mapping:
            raise ParameterError(f"layer.surrogate was built for mapping {model_mapping!r} but this layer maps "
                                 f"{self.mapping!r}; assign a surrogate of the layer's mapping, or build the layer "
                                 "with the surrogate's.")
        warn_if_extrapolated(sur, self.in_features, self.out_features, self.bias is not None)
        object.__setattr__(self, "_checked_surrogate", sur)

    def _check_sample(self, s):
        """Refuse a `LayerSample` that does not fit this layer (`ParameterError`).

        A hardware model of the user's own was taken at its word: an integer
        0 / 1 ``failed_weight`` flipped and scaled the gradient and made
        `restore_failed_` index rows with it, a float one gave torch's raw
        TypeError, a mask of another shape broadcast without a word, and a
        transposed weight or a missing bias gave torch's raw RuntimeError.
        Shapes and dtypes only: nothing is scanned.
        """
        where = f"{type(self.surrogate).__name__}.sample_layer, for {self._describe()},"
        if not isinstance(s, LayerSample):
            raise ParameterError(f"{where} returned {type(s).__name__}; it must return an "
                                 "xbarsim.train.layers.LayerSample(weight, bias, failed_weight, failed_bias).")
        shape_w = (self.out_features, self.in_features)
        shape_b = None if self.bias is None else (self.out_features,)
        for name, a, shape, kinds, what in (
                ("weight", s.weight, shape_w, "iuf", "real numbers"),
                ("failed_weight", s.failed_weight, shape_w, "b", "bool"),
                ("bias", s.bias, shape_b, "iuf", "real numbers"),
                ("failed_bias", s.failed_bias, shape_b, "b", "bool")):
            if shape is None:  # the layer has no bias: a zero bias (and its mask) is ignored, as it always was
                if name == "bias" and a is not None and not (
                        isinstance(a, (np.ndarray, torch.Tensor)) and tuple(a.shape) == (self.out_features,)
                        and not bool((a != 0).any())):
                    raise ParameterError(f"{where} gave LayerSample.bias = {type(a).__name__}, but the layer has no "
                                         f"bias (bias=False): give None, or zeros of shape ({self.out_features},), "
                                         "which the layer ignores.")
                continue
            if a is None and name == "bias":
                raise ParameterError(f"{where} gave LayerSample.bias = None, but the layer has a bias: give the "
                                     f"sampled bias, real numbers of shape {shape}.")
            if not isinstance(a, (np.ndarray, torch.Tensor)):
                raise ParameterError(f"{where} gave LayerSample.{name} as {type(a).__name__}; expected a NumPy array "
                                     f"of {what} of shape {shape} (np.asarray(...)).")
            if _dtype_kind(a) not in kinds or tuple(a.shape) != shape:
                hint = " (a 0 / 1 mask: mask.astype(bool))" if kinds == "b" else ""
                raise ParameterError(f"{where} gave LayerSample.{name} of shape {tuple(a.shape)} and dtype {a.dtype}; "
                                     f"expected {what} of shape {shape}, the shape of the layer's {name.split('_')[-1]}"
                                     f"{hint}.")
        if s.circuit is not None and not callable(s.circuit):
            raise ParameterError(f"{where} gave LayerSample.circuit as {type(s.circuit).__name__}; expected None or a "
                                 "function circuit(x) -> (B, out).")
        if s.input_gain is not None and np.shape(s.input_gain) != (3,):
            raise ParameterError(f"{where} gave LayerSample.input_gain of shape {np.shape(s.input_gain)}; expected "
                                 "None or three numbers (v_read, v0, input_scale).")

    def _describe(self):
        """'layer '0' (8 x 2)': the name `convert` gave it, if any, and its shape."""
        name = f"layer {self._converted_name!r}" if getattr(self, "_converted_name", None) else "HardwareAwareLinear"
        return f"{name} ({self.out_features} x {self.in_features})"

    def _refuse_nonfinite_weights(self):
        """The weights and bias as float64 NumPy arrays, or a `ParameterError`
        naming the layer where they are not finite.

        The mapping's own refusal ("weight holds NaN or inf at [0, 0]; only
        finite weights can be mapped") named neither the layer nor the likely
        cause, a diverged training.
        """
        from .._coerce import where_not_finite

        try:
            w, b = layer_arrays(self)
        except RuntimeError as exc:
            # a torch.func transform's wrapped weights have no storage: torch's raw
            # "Cannot access data pointer of Tensor that doesn't have storage";
            # `forward` refuses them first where torch can tell, this catches the rest
            if "storage" not in str(exc):
                raise
            raise ParameterError(_FUNCTORCH_MESSAGE) from None
        for name, a in (("weight", w), ("bias", b)):
            if a is not None and not np.all(np.isfinite(a)):
                raise ParameterError(
                    f"{self._describe()}: its {name} {where_not_finite(a)}, which no hardware model can map; training "
                    "diverged? Lower the learning rate or clip the gradients (torch.nn.utils.clip_grad_norm_), and "
                    "restart from finite weights (a checkpoint).")
        return w, b

    def rng_state(self):
        """The state of the layer's sampling stream (a dict; `set_rng_state` takes it back).

        ``state_dict`` does not hold it (a plain ``nn.Linear`` loads the
        state dict of a hardware-aware one, strictly): save it next to the
        checkpoint to resume training with the same draws (see
        `xbarsim.train.rng_state` for a whole model).
        """
        return copy.deepcopy(self._rng.bit_generator.state)

    def set_rng_state(self, state):
        """Continue the layer's sampling stream from `state` (from `rng_state`)."""
        self._rng = _rng_from_state(state)

    def __getstate__(self):
        # the last sample's circuit read-out is a closure, which pickle refuses:
        # torch.save(model), deepcopy and multiprocessing failed after the
        # first training forward; a copy starts without it.
        # dict(...): before torch 2.1 nn.Module has no __getstate__, and
        # object's (Python 3.11) returns the live __dict__
        getter = getattr(super(), "__getstate__", None)
        state = dict(getter() if getter is not None else self.__dict__)
        state["last_sample"] = None
        return state

    def forward(self, x):
        """The layer's output for ``x`` (..., in_features), of the weights'
        dtype (autocast aside). A forward that samples (training with a
        surrogate and ``reparam`` or ``failures`` on, or an evaluation
        forward with ``sample_on_eval`` set, as within `sampling`) draws one transfer from the hardware model and runs
        ``x`` through it; any other is ``nn.Linear``'s (class Notes)."""
        # torch's own errors here were raw (AttributeError for a NumPy array,
        # IndexError for a 0-d tensor, RuntimeError for another dtype)
        if not isinstance(x, torch.Tensor):
            raise ParameterError(f"HardwareAwareLinear takes a torch.Tensor; got {type(x).__name__}. Convert with "
                                 f"torch.as_tensor(x, dtype={self.weight.dtype}).")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ParameterError(f"input of shape {tuple(x.shape)}; this layer takes {self.in_features} features "
                                 "(last dimension).")
        sampling_now = self._sampling_now()
        if x.dtype != self.weight.dtype and not _autocast_reconciles(x, self.weight, sampling_now):
            raise ParameterError(f"input of dtype {x.dtype} for weights of dtype {self.weight.dtype}; convert one of "
                                 f"them (x.to({self.weight.dtype}), or the model with .double() / .float()).")
        if not sampling_now:
            # a training forward that samples nothing leaves no failed
            # weights; an evaluation forward (an accuracy logged between
            # backward() and step()) keeps the training forward's record,
            # which it cleared, and `restore_failed_` then let the failed
            # weights move
            if self.training:
                self._failed_weight = self._failed_bias = None
            return super().forward(x)
        if x.dim() != 2:  # like nn.Linear: any leading dimensions, one sampled transfer for all
            lead = x.shape[:-1]
            return self.forward(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_features)
        if _functorch_wrapped(x, self.weight, self.bias):
            raise ParameterError(_FUNCTORCH_MESSAGE)
        if _in_backward():  # a checkpointed segment recomputed (its gradient was another transfer's)
            raise ParameterError(_RECOMPUTE_MESSAGE)
        if x.is_meta or self.weight.is_meta:
            # Tensor.item() in the input check raised torch's bare RuntimeError
            raise ParameterError("a sampled forward draws a transfer from the surrogate, which needs real tensors, "
                                 "not the 'meta' device; move the model and inputs to a real device (.to('cpu')) "
                                 "or run the forward in eval mode (layer.eval()), which does not sample.")
        if x.dtype == self.weight.dtype and not _autocast_on(x.device.type):
            return self._sampled_forward(x)
        # under autocast the sampled forward runs at the weights' dtype with
        # autocast off: F.linear autocast to bfloat16 rounded the sampled
        # weights, and the circuit's correction, at the weights' dtype,
        # promoted the output back (a float32 output from some layers, a
        # bfloat16 one from those without a circuit)
        with torch.autocast(x.device.type, enabled=False):
            return self._sampled_forward(x.to(self.weight.dtype))

    @_run_eagerly
    def _sampled_forward(self, x):
        """One sampled transfer applied to `x` (2-D, at the weights' dtype)."""
        self._check_inputs(x)
        s = self.sample()
        self.last_sample = s
        dev, dt = self.weight.device, self.weight.dtype
        fw = torch.as_tensor(s.failed_weight, device=dev)
        w = apply_sample(self.weight, torch.as_tensor(s.weight, device=dev, dtype=dt), fw)
        b = None
        if self.bias is not None:
            fb = torch.as_tensor(s.failed_bias, device=dev)
            b = apply_sample(self.bias, torch.as_tensor(s.bias, device=dev, dtype=dt), fb)
        if self.training and torch.is_grad_enabled():
            # the step's mask: a forward under no_grad in train mode (logging
            # accuracy between backward() and step()) drew a new one, and
            # restore_failed_ undid the wrong weights
            self._failed_weight = fw
            self._failed_bias = None if s.failed_bias is None else torch.as_tensor(s.failed_bias, device=dev)
        xin = x
        if s.input_gain is not None and s.input_gain[1] is not None:
            xin, bias_gain = sinh_inputs(x, *s.input_gain)
            if b is not None:
                b = b * bias_gain
        y = nn.functional.linear(xin, w, b)
        if s.circuit is not None:
            # IR drop and read noise: constants of the step (reparametrization)
            y_hw = torch.as_tensor(s.circuit(float64_array(x)), device=dev, dtype=dt)
            y = y + (y_hw.reshape(y.shape) - y.detach())
        if not bool(torch.isfinite(y.detach()).all()):
            raise ParameterError(self._overflow_message(x))
        return y

    def _overflow_message(self, x):
        x_max = float(x.detach().abs().max()) if x.numel() else 0.0
        if hasattr(self.surrogate, "input_limits") and hasattr(self.surrogate, "input_gain"):
            from .surrogate import _overflow_message

            return _overflow_message(self.surrogate, x_max, circuit=True, dtype=str(self.weight.dtype))
        return (f"the sampled forward gave NaN or inf (inputs up to |x| = {x_max:.4g}, {self.weight.dtype}); "
                "keep the layer's inputs and weights in the range its hardware model was built for.")

    def _check_inputs(self, x):
        """Before a sampled forward: refuse inputs that would overflow, warn once outside the fitted range.

        Uses the hardware model's ``input_limits()`` and ``input_gain()``
        (`Surrogate` has both); a model without them is not checked.
        """
        limits = getattr(self.surrogate, "input_limits", None)
        gain = getattr(self.surrogate, "input_gain", None)
        if limits is None or gain is None or x.numel() == 0:
            return
        x_max = float(x.detach().abs().max())
        if not math.isfinite(x_max):
            raise ParameterError("x holds NaN or inf; a sampled forward runs the hardware model's circuit, which "
                                 "needs finite inputs.")
        fitted, _, overflow = limits()
        v_read, v0, s_in = gain()
        dt = x.dtype if x.is_floating_point() else self.weight.dtype
        dtype = str(dt)
        if v0 is not None:
            # the differentiable sinh of the inputs (`sinh_inputs`) must not overflow x's dtype either
            big = torch.finfo(dt).max * v_read / (v0 * s_in)
            torch_limit = math.asinh(big) * v0 * s_in / v_read
            if torch_limit < overflow:
                overflow = torch_limit
            else:
                dtype = "double precision"
        if x_max > overflow:
            from .surrogate import _overflow_message

            raise ParameterError(_overflow_message(self.surrogate, x_max, dtype=dtype))
        if x_max > fitted and not self._warned_inputs:
            from .surrogate import extrapolation_message

            self._warned_inputs = True
            warn(extrapolation_message(self.surrogate, x_max, "HardwareAwareLinear inputs")
                 + " Warned once per layer.", RuntimeWarning)

    def regularization(self):
        """Weight decay plus the hardware penalty of this layer (a torch scalar).

        The penalty is the variance of a real transfer's weight errors
        (`Surrogate.penalty`: the spread about their mean, summed over the
        layer; not the mean squared error, which the drift mean dominates in
        large tiles), at the surrogate's fitted failure rates, whatever the layer's
        ``failures`` switch or scale: that switch sets what the training
        forward samples (a dropout-like exaggeration of the failures, if
        asked), not what the transfer will do.
        """
        total = self.weight.new_zeros(())
        if self.weight_decay:
            total = total + self.weight_decay * (self.weight.pow(2).sum() + (0 if self.bias is None else self.bias.pow(2).sum()))
        if self.hardware_penalty:
            # also when the surrogate was swapped after construction: the term was skipped without a word
            _check_penalty(self.surrogate, self.hardware_penalty)
            if not self.weight.is_meta and not self._weights_finite():  # meta: the penalty refuses it by name
                self._refuse_nonfinite_weights()  # the message; finite weights stay on their device
            total = total + self.hardware_penalty * self._penalty()
        # a 'meta' total has no value to test (bool() raised torch's raw error)
        if not total.is_meta and not bool(torch.isfinite(total.detach())):
            if not self._weights_finite():
                self._refuse_nonfinite_weights()  # the cause, not an overflow
            # weight decay or the coefficient times a finite penalty, in half
            # precision: inf without a word
            wider = ("Train the layer in float32 or float64 (layer.float()), or use smaller coefficients."
                     if self.weight.element_size() < 4 else "Use smaller coefficients or keep the weights smaller.")
            raise ParameterError(
                f"regularization: this layer's term (weight_decay={self.weight_decay!r}, hardware_penalty="
                f"{self.hardware_penalty!r}) overflows {self.weight.dtype} (max|w| = "
                f"{float(self.weight.detach().abs().max()):.4g}"
                + ("" if self.bias is None else f", max|b| = {float(self.bias.detach().abs().max()):.4g}")
                + f"). {wider}")
        return total

    def _weights_finite(self):
        return all(bool(torch.isfinite(t).all()) for t in (self.weight, self.bias) if t is not None)

    def snapshot_(self):
        """Remember the weights before an optimizer step (see `restore_failed_`).

        Refused (`ParameterError`) once the layer was pruned or parametrized
        after `convert` (which refuses such layers): its ``weight`` is then
        recomputed from another tensor at each access, and `restore_failed_`
        put nothing back, without a word."""
        for name in ("weight", "bias"):
            if getattr(self, name) is not None and name not in self._parameters:
                raise ParameterError(
                    f"this layer's {name} is no longer its own parameter: it was pruned or parametrized after "
                    f"convert (torch.nn.utils.prune / parametrize), so restore_failed_ cannot put the failed "
                    f"devices' weights back. Make it permanent first (torch.nn.utils.prune.remove(layer, "
                    f"{name!r}) or torch.nn.utils.parametrize.remove_parametrizations(layer, {name!r})), or "
                    "train without failures.")
        self._pre_step = (
            self.weight.detach().clone(),
            None if self.bias is None else self.bias.detach().clone(),
        )

    def restore_failed_(self):
        """Put back, after an optimizer step, the weights whose devices failed in that step.

        A zero gradient is not enough with momentum optimizers (Adam still
        moves a weight with zero gradient); this makes "no update" exact.

        The failure mask is the last training forward's that recorded a graph,
        and it is used once: this call clears it. It was kept, so a later step
        with no training forward (a sampled step in evaluation mode, with
        `sampling`) put back the weights an earlier step had sampled as
        failed.
        """
        failed_weight, failed_bias = self._failed_weight, self._failed_bias
        self._failed_weight = self._failed_bias = None  # this step's; the next training forward sets its own
        # the snapshot is this step's too: kept past a step without failures, a
        # later step without snapshot_ put the weights back to that older
        # step's, and the no-snapshot warning never came
        pre, self._pre_step = self._pre_step, None
        if failed_weight is None or not self.failures:
            return
        if pre is None:
            # without snapshot_ before the step there is nothing to put back:
            # the failed weights moved without a word
            if not getattr(self, "_warned_restore", False):
                self._warned_restore = True
                warn("restore_failed_ found no snapshot of the weights before this step, so the weights of "
                     "devices sampled as failed moved with the others: call snapshot_(model) before "
                     "optimizer.step() (before backward() is fine), and restore_failed_(model) once after it. "
                     "Warned once per layer.", RuntimeWarning)
            return
        w0, b0 = pre
        with torch.no_grad():
            m = failed_weight
            self.weight[m] = w0[m]
            if self.bias is not None and failed_bias is not None:
                mb = failed_bias
                self.bias[mb] = b0[mb]


META_HINT = ("that device holds no values; build the model on a real device, or move it with "
             "model.to_empty(device='cpu') and load its weights, first")
"""Why a model on the 'meta' device is refused, and the fix (messages)."""


def _check_dtype_and_device(dtype, device):
    """``device`` as a ``torch.device`` (None stays None), after refusing
    what torch would refuse with its raw errors or, for a complex dtype,
    accept and later drop the imaginary part of when the weights are mapped
    to conductances."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ParameterError(f"dtype = {dtype!r}; a HardwareAwareLinear's weights are real numbers mapped to "
                             "conductances: give a real floating dtype (torch.float32 or torch.float64).")
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device = {device!r} is not a torch device ({exc}); give 'cpu' or 'cuda'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device = {str(device)!r}, but this torch cannot use CUDA "
                             "(torch.cuda.is_available() is False); give device='cpu'.")
    return device


def float64_array(t):
    """A parameter's values as a float64 NumPy array on the host, detached
    from the graph (None stays None: a layer without bias). A tensor on the
    'meta' device is refused (`ParameterError`): torch's raw
    NotImplementedError came from deep inside the evaluations, `to_crossbar`
    and `Surrogate.penalty`."""
    if t is None:
        return None
    if t.is_meta:
        raise ParameterError(f"a weight of shape {tuple(t.shape)} is on the 'meta' device: {META_HINT}.")
    if t.is_complex():  # torch's cast drops the imaginary part with a warning only
        raise ParameterError(f"a weight of shape {tuple(t.shape)} is complex ({t.dtype}); conductances map real "
                             "weights: train the layer in torch.float32 or torch.float64.")
    return t.detach().cpu().to(torch.float64).numpy()


def as_tensor(a, dtype, device=None):
    """``a`` (a float64 NumPy array) as a tensor of ``dtype`` on ``device``,
    sharing its memory where torch can; a read-only array (a broadcast view,
    ``np.load(..., mmap_mode="r")``) is copied first. torch shared it with a
    warning that writing to it is undefined, which a model's in-place
    operation on its input (``x.relu_()``) would do: the inverse of
    `float64_array`, for the features every forward of the package takes."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = np.array(a)
    return torch.as_tensor(a, dtype=dtype, device=device)


def layer_arrays(layer):
    """A linear layer's weight and bias (None without one) as float64 NumPy
    arrays (`float64_array`); integer or boolean ones are refused
    (`ParameterError`): `to_crossbar` transferred an int32 layer without a
    word, where `convert` refuses it (found by review)."""
    for t in (layer.weight, layer.bias):
        if t is not None and not (t.is_floating_point() or t.is_complex()):  # complex: `float64_array` says so
            raise ParameterError(f"a weight of shape {tuple(t.shape)} is {t.dtype}, not a floating dtype; "
                                 "conductances map real weights: train the layer in torch.float32 or torch.float64 "
                                 "(layer.double()).")
    return float64_array(layer.weight), float64_array(layer.bias)


def _dtype_kind(a):
    """NumPy's dtype kind ('b', 'i', 'u', 'f', 'c', ...) of a NumPy array or a torch tensor."""
    if isinstance(a, np.ndarray):
        return a.dtype.kind
    if a.dtype == torch.bool:
        return "b"
    return "c" if a.is_complex() else "f" if a.is_floating_point() else "i"


_FUNCTORCH_MESSAGE = (
    "a sampled forward (training mode, or sample_on_eval / sampling in evaluation mode) and the hardware penalty "
    "(regularization, hardware_penalty > 0) read the layer's weights in NumPy, so they cannot run under "
    "torch.func transforms (grad, vjp, jacrev, vmap of functional_call...), whose tensors hold no data. Run the "
    "layer in evaluation mode (model.eval(), which does not sample) without the penalty under torch.func, or "
    "train with a plain autograd loop (loss.backward(); optimizer.step()).")


_RECOMPUTE_MESSAGE = (
    "a sampled forward of a HardwareAwareLinear ran inside a backward pass, as activation checkpointing "
    "(torch.utils.checkpoint) recomputes a forward there. It would draw another transfer than the forward it "
    "stands for (the layer's NumPy stream is not torch's generator, which checkpointing restores), and the "
    "gradient would be that of a different transfer, without a word. Leave the hardware-aware layers out of "
    "the checkpointed segments (checkpoint the rest of the model), or train without checkpointing.")


def _in_backward():
    """Whether this runs inside a backward pass (where activation
    checkpointing recomputes forwards); False where this torch cannot tell."""
    task = getattr(torch._C, "_current_graph_task_id", None)
    return task is not None and task() != -1


@_run_eagerly  # a pybind11 builtin Dynamo warns it cannot trace
def _functorch_wrapped(*tensors):
    """Whether any of `tensors` is wrapped by a torch.func transform (False
    where this torch cannot tell: `_refuse_nonfinite_weights` catches those)."""
    is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    if is_wrapped is None:
        return False
    return any(t is not None and is_wrapped(t) for t in tensors)


_AUTOCAST_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
"""The dtypes autocast casts (float64 it leaves as it is)."""


def _autocast_on(device_type):
    """Whether autocast is enabled for `device_type` (False for device types
    autocast does not know, such as 'meta', where torch raises)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False
    except TypeError:
        # torch < 2.4 (pyproject allows 2.0): is_autocast_enabled takes no
        # argument and answers for CUDA; every sampled forward raised this
        # TypeError
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled()) if device_type == "cuda" else False


def _autocast_reconciles(x, weight, sampled):
    """Whether autocast makes an input of another dtype than the weights work,
    as it does for ``nn.Linear``: a forward that does not sample runs
    ``F.linear``, which autocast casts when both dtypes are ones it casts; a
    sampled one casts a floating-point `x` to the weights' dtype. Refusing
    every other dtype broke an eval-mode network under ``torch.autocast`` at
    its second layer."""
    if not _autocast_on(x.device.type):
        return False
    if sampled:
        return x.is_floating_point()
    return x.dtype in _AUTOCAST_DTYPES and weight.dtype in _AUTOCAST_DTYPES


def _model_mapping(surrogate):
    """The mapping a hardware model was built for (its ``mapping``, an
    enum's value), or None where it names none."""
    mapping = getattr(surrogate, "mapping", None)
    return getattr(mapping, "value", mapping)


def warn_if_extrapolated(surrogate, in_features, out_features, bias, what=None):
    """Warn when a layer's largest tile is longer either way, or holds
    more devices, than the surrogate's fitted tiles (`Surrogate.is_covered`):
    its drift and read models then extrapolate. ``what`` names the layer
    (default: "this OUT x IN layer")."""
    from .surrogate import Surrogate

    if not isinstance(surrogate, Surrogate):
        return
    if not surrogate.is_covered(out_features, in_features, bias):
        (rows, cols), fitted = surrogate.covers(out_features, in_features, bias)
        shapes = ", ".join(f"{r} x {c}" for r, c in fitted)
        what = f"this {out_features} x {in_features} layer" if what is None else what
        warn(f"{what} maps to tiles of up to {rows} x {cols} devices, but "
             f"the surrogate was fitted on layers whose largest tiles are {shapes} "
             f"(layers={surrogate.meta.get('layers')}): its programming-order drift and line reads are "
             "extrapolated. Fit it "
             f"on this network's shapes, Surrogate.fit(cfg, layers=[({out_features}, {in_features}), ...]), "
             "and compare with the simulator by xbarsim.train.surrogate.check(surrogate, layers=...).", UserWarning)


def sinh_inputs(x, v_read, v0, input_scale):
    """Inputs as the sinh read law sees them, in input units, and the bias-row gain.

    An input ``x`` drives ``v = x v_read / input_scale``; a device then
    passes ``G v0 sinh(v / v0)`` instead of ``G v``. Returns
    ``input_scale * v0 sinh(v / v0) / v_read`` (differentiable) and the
    gain of the bias row, driven at ``v_read``: ``v0 sinh(v_read / v0) / v_read``.
    """
    v = x * (v_read / input_scale)
    xin = (v0 * torch.sinh(v / v0)) * (input_scale / v_read)
    return xin, v0 * math.sinh(v_read / v0) / v_read


def warn_if_trained_for_another_cfg(layers, cfg):
    """Warn when any of ``layers`` was trained against a surrogate fitted for
    another TransferConfig than ``cfg``, the one it is transferred with (or
    a list of them, one per layer)."""
    cfgs = cfg if isinstance(cfg, list) else [cfg] * len(layers)
    trained_for = {k: layer.surrogate for k, layer in enumerate(layers)
                   if getattr(layer, "surrogate", None) is not None and hasattr(layer.surrogate, "matches")}
    other = [k for k, sur in trained_for.items() if not sur.matches(cfgs[k])]
    if other:
        warn(f"layer(s) {other} were trained against a surrogate fitted for another TransferConfig than "
             "this transfer's (mapping, input scale, device, wires...): the hardware-aware training may not "
             "carry over. Transfer with the surrogate's own configuration (surrogate.cfg) unless this is "
             "the point.", UserWarning)
    # a layer's own mapping, given without a surrogate (or with a hardware
    # model that cannot compare configurations): convert(net, mapping="reference")
    # transferred differential pairs without a word
    mappings = [getattr(c.mapping, "value", c.mapping) for c in cfgs]
    mapped = {k: layer.mapping for k, layer in enumerate(layers)
              if k not in trained_for and isinstance(getattr(layer, "mapping", None), str)
              and getattr(layer, "_mapping_given", False)  # a layer pickled before the flag: its default
              and layer.mapping != mappings[k]}
    if mapped:
        wanted = sorted(set(mapped.values()))
        given = sorted({mappings[k] for k in mapped})
        warn(f"layer(s) {list(mapped)} were built for mapping={'/'.join(map(repr, wanted))}, but this transfer maps "
             f"{'/'.join(map(repr, given))}: the hardware-aware training may not carry over. Transfer with "
             f"TransferConfig(mapping={wanted[0]!r}) unless this is the point.", UserWarning)


def hardware_layers(model):
    """The `HardwareAwareLinear` modules of `model`, in order."""
    _check_module(model)
    return [m for m in model.modules() if isinstance(m, HardwareAwareLinear)]


def rng_state(model):
    """The sampling streams' states of `model`'s `HardwareAwareLinear` layers.

    A dict from each layer's name in `model` to its `HardwareAwareLinear.rng_state`;
    ``state_dict`` does not hold them. Save it with a checkpoint and give it
    back with `set_rng_state` to resume training with the draws an
    uninterrupted run makes::

        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "rng": rng_state(net)}, path)
        ck = torch.load(path); net.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); set_rng_state(net, ck["rng"])

    (plus ``torch.get_rng_state()`` where the loop itself draws from torch.)
    """
    _check_module(model)
    return {name: m.rng_state() for name, m in model.named_modules() if isinstance(m, HardwareAwareLinear)}


def set_rng_state(model, state):
    """Give `model`'s `HardwareAwareLinear` layers the sampling streams `state`
    (from `rng_state` of the same network); every layer is checked first."""
    _check_module(model)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, HardwareAwareLinear)}
    if not isinstance(state, dict) or set(state) != set(layers):
        got = sorted(state, key=repr) if isinstance(state, dict) else type(state).__name__  # keys of any type
        raise ParameterError(f"state holds the streams of layers {got}, but this model's hardware-aware layers are "
                             f"{sorted(layers)}; give the xbarsim.train.rng_state(model) of the same network.")
    fresh = {name: _rng_from_state(state[name]) for name in layers}  # all checked before any layer changes
    for name, layer in layers.items():
        layer._rng = fresh[name]


def _rng_from_state(state):
    """A layer's sampling generator continuing from `state` (a `HardwareAwareLinear.rng_state`)."""
    rng = np.random.default_rng()
    want = type(rng.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != want:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise ParameterError(f"state must be a layer's rng_state() (the state of a {want} generator); got "
                             f"{got!r}. Save it with layer.rng_state() (or xbarsim.train.rng_state(model)).")
    try:
        rng.bit_generator.state = copy.deepcopy(state)  # the caller's dict stays theirs
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ParameterError(f"state is not a {want} generator state ({exc}); save it with layer.rng_state() "
                             "(or xbarsim.train.rng_state(model)).") from None
    return rng


def regularization_loss(model):
    """Sum of the `HardwareAwareLinear.regularization` terms of `model`."""
    layers = hardware_layers(model)
    if not layers:
        return torch.zeros(())
    return sum(layer.regularization() for layer in layers)


def restore_failed_(model):
    """`HardwareAwareLinear.restore_failed_` on every layer of `model`."""
    for layer in hardware_layers(model):
        layer.restore_failed_()


def snapshot_(model):
    """`HardwareAwareLinear.snapshot_` on every layer of `model`."""
    for layer in hardware_layers(model):
        layer.snapshot_()


@contextlib.contextmanager
def sampling(model, enabled=True):
    """Within the block, evaluation forwards draw one transfer each (`enabled`
    True; False: none do, whatever their ``sample_on_eval``). Sampling a
    model with no hardware-aware layer is refused: ``convert`` returns a
    converted copy, and ``convert(m, sur); with sampling(m)`` ran software
    forwards without a word. So is sampling one none of whose layers has a
    surrogate (``convert(m)`` with the surrogate forgotten); layers without
    one among layers with one are named in a RuntimeWarning.

    Within the block torch's fast path of ``nn.TransformerEncoderLayer``
    is switched off (``torch.backends.mha.set_fastpath_enabled(False)``,
    restored on exit): in evaluation mode it reads ``linear1`` and
    ``linear2``'s weights directly and would skip their sampled forward.
    Setting ``sample_on_eval`` by hand does not do this."""
    enabled = check_flag(enabled, "enabled")  # sampling(model, "no") sampled
    layers = hardware_layers(model)
    if enabled and not layers:
        raise ParameterError(f"sampling: this {type(model).__name__} has no HardwareAwareLinear layer, so its "
                             "forwards would draw nothing. Sample the converted copy: hw = convert(model, "
                             "surrogate), then hw(x) under `with sampling(hw):`.")
    if enabled:
        _refuse_or_warn_no_surrogate(layers, "sampling")
    old = [layer.sample_on_eval for layer in layers]
    for layer in layers:
        layer.sample_on_eval = enabled
    # torch's fast path of nn.TransformerEncoderLayer (evaluation mode) reads
    # linear1 / linear2's weights directly, never their forward: converted,
    # they drew nothing, and the "sampled" forwards were all the same.
    # Touched only where it matters, and where torch has the switch
    # (torch.backends.mha.set_fastpath_enabled, not in every torch >= 2.0
    # pyproject allows)
    mha = getattr(torch.backends, "mha", None)
    switch = (enabled and hasattr(mha, "set_fastpath_enabled")
              and any(isinstance(m, nn.TransformerEncoderLayer) for m in model.modules()))
    fast = mha.get_fastpath_enabled() if switch else None
    if switch:
        mha.set_fastpath_enabled(False)
    try:
        yield model
    finally:
        if switch:
            mha.set_fastpath_enabled(fast)
        for layer, o in zip(layers, old):
            layer.sample_on_eval = o


def _refuse_or_warn_no_surrogate(layers, what):
    """Sampling needs each layer's hardware model: refuse when no layer has
    one (every forward would be ``nn.Linear``'s, silently), warn naming the
    layers without one when only some have it."""
    names = [getattr(layer, "_converted_name", None) or f"layer {k}"
             for k, layer in enumerate(layers) if layer.surrogate is None]
    if not names:
        return
    fix = ("convert the model with one (hw = convert(model, surrogate)), or set it on the layers (for layer in "
           "xbarsim.train.layers.hardware_layers(model): layer.surrogate = surrogate)")
    if len(names) == len(layers):
        raise ParameterError(f"{what}: no hardware-aware layer of this model has a surrogate, so its forwards would "
                             f"draw nothing (they would be nn.Linear's); {fix}.")
    listed = ", ".join(map(repr, names[:4])) + (" ..." if len(names) > 4 else "")
    warn(f"{what}: {len(names)} of {len(layers)} hardware-aware layers have no surrogate (named {listed}) and "
         f"draw nothing; {fix}.", RuntimeWarning)


_COPIED = ("in_features", "out_features", "bias", "device", "dtype")


_OPTIONS = ("mapping", "reparam", "failures", "weight_decay", "hardware_penalty")
"""The `HardwareAwareLinear` settings `from_linear` / `convert` pass on."""


def _refuse_copied_kwargs(kwargs):
    """`from_linear` / `convert` take each layer's shape, bias, dtype and device from the source layer,
    and pass on only `_OPTIONS` (an unknown keyword was Python's raw TypeError)."""
    unknown = [k for k in kwargs if k not in _COPIED + _OPTIONS + ("surrogate", "seed")]
    if unknown:
        raise ParameterError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; a "
                             f"hardware-aware layer takes {', '.join(_OPTIONS)} (and surrogate, seed).")
    given = [k for k in _COPIED if k in kwargs]
    if given:
        raise ParameterError(
            f"{', '.join(given)} given; a hardware-aware layer takes its in_features, out_features, bias, dtype and "
            "device from the nn.Linear it copies. Drop them, and set dtype or device on the model "
            "(model.double(), model.to(device)) before or after converting.")


def _torch_seed():
    """A sampling seed drawn from torch's global generator (``seed=None``:
    reproducible under ``torch.manual_seed``)."""
    # on the CPU generator: under `with torch.device("meta")` the default
    # device's randint had no value to read
    return int(torch.randint(0, 2**62, (1,), device="cpu").item())


def _weights_seed(layer):
    """The sampling seed of a layer built with ``seed=None``: a 64-bit hash of
    its freshly initialised weights and bias.

    Drawing it from torch's generator after the initialisation shifted every
    later layer's initial weights: ``nn.Sequential(HardwareAwareLinear(...),
    ..., HardwareAwareLinear(...))`` under ``torch.manual_seed(0)`` started
    from other weights than the same ``nn.Linear`` network.
    The weights are drawn from that generator, so the hash is as reproducible
    under ``torch.manual_seed``, and differs between layers as their weights
    do. A layer on the 'meta' device has no values to hash: its seed comes
    from torch's generator (its initialisation draws nothing from it).
    """
    if layer.weight.is_meta:
        return _torch_seed()
    h = hashlib.blake2b(b"xbarsim.HardwareAwareLinear", digest_size=8)
    for t in (layer.weight, layer.bias):
        if t is not None:
            # as bytes: bfloat16 has no NumPy dtype
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy on the CPU
    return int.from_bytes(h.digest(), "little")


def _check_penalty(surrogate, hardware_penalty):
    """Refuse ``hardware_penalty > 0`` with no hardware model, or one without
    ``penalty``: `regularization` skipped the term, a zero penalty."""
    if not callable(getattr(surrogate, "penalty", None)):
        what = ("there is no surrogate" if surrogate is None
                else f"the hardware model ({type(surrogate).__name__}) has no penalty(weight, bias)")
        raise ParameterError(f"hardware_penalty = {hardware_penalty!r} but {what}, so the penalty would be zero; pass "
                             "surrogate= (a fitted xbarsim.train.Surrogate has a penalty), or hardware_penalty=0.")


def _check_convertible(linear, name):
    """Refuse an ``nn.Linear`` whose behaviour its hardware-aware copy would drop.

    The copy is a new ``HardwareAwareLinear`` holding the weights' values:
    a pruning mask, a parametrization (``weight_norm``), an overridden
    ``forward`` and the module's hooks were lost without a word (a pruned
    layer, unless converted in place, gave torch's raw deepcopy error).
    `name`: the layer's name in the model ("" for the
    model itself).
    """
    from torch.nn.modules.lazy import LazyModuleMixin
    from torch.nn.utils import parametrize, prune

    kind = type(linear).__qualname__ if type(linear).__module__.startswith("torch.nn.modules") else \
        f"{type(linear).__module__}.{type(linear).__qualname__}"  # torch.ao.nn.qat.Linear is not nn.Linear
    what = f"layer {name!r} ({kind})" if name else f"this {kind}"
    if isinstance(linear, LazyModuleMixin) and linear.has_uninitialized_params():
        # its in_features are 0 until then: "in_features = 0; an integer >= 1"
        raise ParameterError(f"{what} is not initialised yet: a lazy layer learns its in_features at its first "
                             "forward pass. Run one forward pass through the model (model(x)) before converting, or "
                             f"build it as nn.Linear(in_features, {linear.out_features}).")
    pre = list(linear._forward_pre_hooks.values())
    pruned = [getattr(h, "_tensor_name", "weight") for h in pre if isinstance(h, prune.BasePruningMethod)]
    if pruned:
        undo = "; ".join(f"torch.nn.utils.prune.remove(module, {n!r})" for n in sorted(set(pruned)))
        raise ParameterError(f"{what} is pruned (torch.nn.utils.prune): its hardware-aware copy would drop the "
                             f"pruning mask, and the pruned weights would train again. Make the pruning permanent "
                             f"first, {undo}, then convert.")
    if parametrize.is_parametrized(linear):
        bake = "; ".join(f"torch.nn.utils.parametrize.remove_parametrizations(module, {k!r})"
                         for k in linear.parametrizations)  # 'bias' alone: 'weight' raised ValueError
        raise ParameterError(f"{what} has parametrized {', '.join(map(repr, linear.parametrizations))} (e.g. "
                             "torch.nn.utils.parametrizations.weight_norm): its hardware-aware copy holds plain "
                             "weights and would drop the parametrization. Bake it in first, "
                             f"{bake}, then convert.")
    legacy = {"WeightNorm": "weight_norm", "SpectralNorm": "spectral_norm"}  # torch.nn.utils' older forms
    for h in pre:
        kind = legacy.get(type(h).__name__) if type(h).__module__.startswith("torch.nn.utils") else None
        if kind:
            raise ParameterError(f"{what} has torch.nn.utils.{kind} applied: its hardware-aware copy holds plain "
                                 f"weights and would drop it. Remove it first, torch.nn.utils.remove_{kind}(module), "
                                 "then convert.")
    if type(linear).forward not in (nn.Linear.forward, HardwareAwareLinear.forward):  # a copy of a copy keeps it
        raise ParameterError(f"{what} overrides nn.Linear's forward: its hardware-aware copy would run "
                             "nn.Linear's instead. Convert a plain nn.Linear and put the extra computation in a "
                             "module of its own around it.")
    hooks = [kind for kind, d in (("forward pre-hook", linear._forward_pre_hooks),
                                  ("forward hook", linear._forward_hooks),
                                  ("backward hook", linear._backward_hooks),
                                  ("backward pre-hook", getattr(linear, "_backward_pre_hooks", {}))) if d]
    if hooks:
        raise ParameterError(f"{what} has {' and '.join(k + 's' for k in hooks)} registered: its hardware-aware "
                             "copy is a new module and would not call them. Remove them (handle.remove()) before "
                             "converting, and register them on the converted layer.")
    # NaN / inf weights were taken, and refused only at the first sampled
    # forward or to_crossbar (found by review)
    for pname in ("weight", "bias"):
        t = getattr(linear, pname, None)
        if isinstance(t, torch.Tensor) and not t.is_meta and t.is_floating_point() \
                and not bool(torch.isfinite(t.detach()).all()):
            from .._coerce import where_not_finite

            raise ParameterError(f"{what}: its {pname} {where_not_finite(float64_array(t))}, which no hardware "
                                 "model can map; training diverged? Convert a model with finite weights (restart "
                                 "from a checkpoint).")


def convert(model, surrogate=None, inplace=False, seed=None, **kwargs):
    """Turn every ``nn.Linear`` of `model` into a `HardwareAwareLinear`.

    In the spirit of aihwkit's ``convert_to_analog``: the weights are kept,
    the modules replaced. Each converted layer takes its source's own
    parameters (the copy's, when not `inplace`), so a weight tied to another
    module stays tied, and an optimizer made before an in-place conversion
    trains the converted layers. `kwargs` go to `HardwareAwareLinear` (``reparam``,
    ``failures``, ``weight_decay``, ``hardware_penalty``, ``mapping``). Each
    layer keeps its shape, bias, dtype and device (``dtype=``, ``device=``,
    ``bias=``, ``in_features=``, ``out_features=``: `ParameterError`), its
    training / evaluation mode and its parameters' ``requires_grad``. A
    layer whose behaviour the copy would drop (pruned, parametrized such as
    ``weight_norm``, a subclass with its own ``forward``, with hooks, or a
    lazy layer not yet run) is refused, naming it, before anything is
    copied (`HardwareAwareLinear.from_linear`).

    Parameters
    ----------
    model : torch.nn.Module
    surrogate : hardware model, optional
    inplace : bool
        Replace the layers inside `model` itself (default: in a deep copy).
        A bare ``nn.Linear`` cannot become another class in place: for one,
        the converted layer is returned and `model` is left as it was.
    seed : int, optional
        The ``k``-th layer converted samples from the stream ``seed + k``
        (a layer shared under two names counts once; attention projections
        are not converted); in ``[0, 2**64 - 104730]``
        (``xbarsim.train._checks.SEED_MAX``). ``seed=0`` gives layer 0 the
        stream ``np.random.default_rng(0)``, the one ``TrainConfig()``'s
        batch order and ``make_moons_split(seed=0)``'s split also draw from:
        pass distinct seeds for independent draws, as ``xbarsim moons`` does
        with `xbarsim.moons.stream_seed`. None (the default): each layer's
        seed is drawn from torch's global generator, which this advances
        (``torch.manual_seed`` first for a repeatable conversion).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch.nn as nn
    >>> from xbarsim.train import convert
    >>> net = convert(nn.Sequential(nn.Linear(2, 8), nn.Sigmoid(), nn.Linear(8, 1)))
    >>> type(net[0]).__name__
    'HardwareAwareLinear'
    """
    _check_module(model)
    _refuse_copied_kwargs(kwargs)
    inplace = check_flag(inplace, "inplace")  # inplace="no" modified the caller's model
    plain = [m for m in model.modules() if isinstance(m, nn.Linear) and not isinstance(m, HardwareAwareLinear)]
    converted = [name or type(model).__name__ for name, m in model.named_modules()
                 if isinstance(m, HardwareAwareLinear)]
    if converted and not plain:
        # convert(convert(net, S), S2) kept S in every layer without a word
        raise ParameterError(
            f"{type(model).__name__} is already hardware-aware ({', '.join(converted[:4])}"
            f"{' ...' if len(converted) > 4 else ''}): convert would change nothing, and the surrogate and options "
            "given would not reach its layers. Set them on the layers instead (for layer in "
            "xbarsim.train.layers.hardware_layers(model): layer.surrogate = ...), or convert the original model.")
    if converted:
        warn(f"convert leaves the layers that are already hardware-aware ({', '.join(converted[:4])}"
             f"{' ...' if len(converted) > 4 else ''}) as they are: the surrogate and options given reach only "
             "the plain nn.Linear layers.", RuntimeWarning)
    if seed is not None:
        seed = check_seed(seed, offset=max(SEED_OFFSET_MAX, len(linear_layers(model)) - 1))
    # every layer checked before anything is copied (a pruned layer failed
    # inside deepcopy with torch's raw error)
    in_attention = _attention_owned(model)
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and not isinstance(m, HardwareAwareLinear) and id(m) not in in_attention:
            _check_convertible(m, name)
    if not inplace:
        try:
            model = copy.deepcopy(model)
        except RuntimeError as exc:  # e.g. another pruned module: torch's "Only Tensors created explicitly..."
            raise ParameterError(f"convert copies the model first, and copying it failed ({exc}). Make pruning "
                                 "permanent first (torch.nn.utils.prune.remove(module, name)), or convert it in "
                                 "place (inplace=True).") from None
    names = {id(m): name for name, m in model.named_modules()}
    # nn.MultiheadAttention reads out_proj.weight directly, never out_proj's
    # forward: a converted out_proj would never sample. Its
    # modules stay as they are, also where another name shares them.
    skipped = [name for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    # id(module) -> its replacement, or None once visited (or left alone)
    done = dict.fromkeys(_attention_owned(model))
    counter = [0]  # layers converted so far (the next one's seed offset)

    def _swap(parent):
        # ``_modules`` lists a module shared under two names twice (named_children
        # skips the second): a tied layer becomes one HardwareAwareLinear under
        # both names, not one converted and one left plain
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) in done:
                if done[id(child)] is not None:
                    setattr(parent, name, done[id(child)])
                continue
            if isinstance(child, nn.Linear) and not isinstance(child, HardwareAwareLinear):
                s = None if seed is None else seed + counter[0]
                counter[0] += 1
                done[id(child)] = HardwareAwareLinear._from_linear(child, True, surrogate=surrogate, seed=s, **kwargs)
                done[id(child)]._converted_name = names.get(id(child))
                setattr(parent, name, done[id(child)])
            else:
                done[id(child)] = None
                _swap(child)

    if isinstance(model, nn.Linear) and not isinstance(model, HardwareAwareLinear):
        return HardwareAwareLinear.from_linear(model, surrogate=surrogate, seed=seed, **kwargs)
    if isinstance(model, nn.MultiheadAttention):
        raise ParameterError("nn.MultiheadAttention uses its projections' weights directly, not their forward, so "
                             "convert cannot make it hardware-aware; convert the Linear layers around it.")
    if not linear_layers(model):
        raise ParameterError(f"{type(model).__name__} has no nn.Linear layer to make hardware-aware "
                             "(only Linear layers map onto crossbars here).")
    _swap(model)
    if skipped:
        warn(f"convert leaves the nn.MultiheadAttention module(s) {', '.join(skipped)} as they are: "
             "attention uses its projections' weights directly, not their forward, so they cannot "
             "sample hardware variability.", RuntimeWarning)
    return model


def _attention_owned(model):
    """The ids of every module inside an ``nn.MultiheadAttention`` of `model`
    (which `convert` leaves alone)."""
    return {id(m) for a in model.modules() if isinstance(a, nn.MultiheadAttention) for m in a.modules()}


def _check_module(model):
    if not isinstance(model, nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}.")


def linear_layers(model):
    """The ``nn.Linear`` modules of `model` (hardware-aware or not), in order."""
    _check_module(model)
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def to_crossbar(model, cfg, seed=0):
    """Transfer every linear layer of `model` onto crossbars with ``xs.transfer``.

    Parameters
    ----------
    model : torch.nn.Module
    cfg : xbarsim.TransferConfig, None, or a sequence of them
        One configuration for every layer, or one per ``nn.Linear`` layer
        in order (e.g. each layer the ``input_scale`` of its own inputs: a
        ReLU layer's activations reach past the network's inputs'). None:
        ``TransferConfig()``'s defaults.
    seed : int
        Layer ``k`` is programmed with seed ``seed + k``; in ``[0, 2**64 -
        104730]`` (``xbarsim.train._checks.SEED_MAX``). Every layer is
        checked before the first is programmed. Nearby seeds share streams
        (layer 1 at ``s`` is layer 0 at ``s + 1``): space repeats' seeds by
        more than the layer count, or derive them
        (`xbarsim.moons.stream_seed`).

    Returns
    -------
    list
        One ``xs.transfer`` result per layer, in order; run them with
        ``xs.mvm``.
    """
    import xbarsim as xs

    layers = linear_layers(model)
    if not layers:
        raise ParameterError(f"{type(model).__name__} has no nn.Linear layer to transfer onto crossbars.")
    cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg] * len(layers)
    if len(cfgs) != len(layers):
        raise ParameterError(f"cfg: {len(cfgs)} configurations for a model of {len(layers)} nn.Linear layer"
                             f"{'s' * (len(layers) > 1)}; give one TransferConfig for all, or one per layer in order.")
    for k, c in enumerate(cfgs):
        if not (c is None or isinstance(c, xs.TransferConfig)):  # a surrogate's matches(cfg) raised a raw TypeError
            where = f"cfg[{k}]" if isinstance(cfg, (list, tuple)) else "cfg"
            raise ParameterError(f"{where} must be an xbarsim.TransferConfig (or None: the defaults); got "
                                 f"{type(c).__name__}.")
    cfgs = [xs.TransferConfig() if c is None else c for c in cfgs]  # as xs.transfer
    seed = check_seed(seed, offset=max(SEED_OFFSET_MAX, len(layers) - 1))  # a Python int: seed + k never wraps
    others = sorted({type(m).__name__ for m in model.modules()
                     if not isinstance(m, nn.Linear) and any(True for _ in m.parameters(recurse=False))})
    if others:
        warn(f"to_crossbar transfers the nn.Linear layers only; {', '.join(others)} stay in software.",
             UserWarning)
    from ..mapping import map_layer

    warn_if_trained_for_another_cfg(layers, cfgs)
    weights = []
    for k, layer in enumerate(layers):  # every layer checked before the first is programmed
        w, b = layer_arrays(layer)
        try:
            map_layer(w, b, cfgs[k])
        except ParameterError as exc:
            raise ParameterError(f"layer {k} ({layer.out_features} x {layer.in_features}): {exc}") from exc
        weights.append((w, b))
    return [xs.transfer(w, b, cfgs[k], seed=seed + k) for k, (w, b) in enumerate(weights)]
