"""Hardware-aware training (PyTorch) and the half-moons experiment.

The names most code needs::

    Surrogate                  variability model fitted to the simulator
    HardwareAwareLinear        drop-in nn.Linear trained against it
    convert, to_crossbar       nn.Linear -> hardware-aware; layers -> xs.transfer
    StatisticalModel           the paper's statistical-only transfer model
    train, TrainConfig         BCE + Adam training loop (binary, one logit)
    regularization_loss, snapshot_, restore_failed_
                               the three calls of a training loop of your own
    rng_state, set_rng_state   the layers' sampling streams, for a checkpoint
    evaluate_circuit, ...      Monte-Carlo transfers and per-point accuracy

Submodules: ``surrogate``, ``layers``, ``statistical``, ``data``,
``metrics``, ``training``, ``evaluate``, ``plots``.
"""

from .data import MoonsData, load_csv_dir, make_moons_split
from .evaluate import evaluate_circuit, evaluate_statistical, evaluate_surrogate, network_layers
from .layers import (HardwareAwareLinear, LayerSample, convert, regularization_loss, restore_failed_, rng_state,
                     sampling, set_rng_state, snapshot_, to_crossbar)
from .metrics import accuracy_bins, per_point_accuracy, summarize
from .statistical import StatisticalModel
from .surrogate import Surrogate
from .training import TrainConfig, moons_network, train

__all__ = [
    "Surrogate",
    "HardwareAwareLinear",
    "LayerSample",
    "convert",
    "to_crossbar",
    "sampling",
    "regularization_loss",
    "snapshot_",
    "restore_failed_",
    "rng_state",
    "set_rng_state",
    "StatisticalModel",
    "TrainConfig",
    "train",
    "moons_network",
    "MoonsData",
    "make_moons_split",
    "load_csv_dir",
    "evaluate_circuit",
    "evaluate_statistical",
    "evaluate_surrogate",
    "network_layers",
    "per_point_accuracy",
    "accuracy_bins",
    "summarize",
]
