"""Hardware-aware training in a few lines, on a tiny budget.

Fit a surrogate of the simulator, convert a plain PyTorch network to
hardware-aware layers, train it, transfer it through the full simulator
(write-verify on the circuit, crossbar MVM) a few times and score it point
by point. `xbarsim moons` does the same at full size.

Run: ``python examples/moons_quick.py``
"""

import numpy as np

import xbarsim as xs
from xbarsim.train import (
    Surrogate,
    TrainConfig,
    convert,
    evaluate_circuit,
    make_moons_split,
    moons_network,
    per_point_accuracy,
    summarize,
    train,
)


def main(n_transfers=12, seed=0):
    cfg = xs.TransferConfig()  # TiO2 preset, V/2, differential pairs, 1 ohm wires
    sur = Surrogate.fit(cfg, n_transfers=6, seed=seed, n_fail_devices=4000)
    data = make_moons_split(seed=seed)
    net = convert(moons_network(seed=seed), surrogate=sur, seed=seed, failures=8.0)
    result = train(net, data, TrainConfig(epochs=60, seed=seed), progress=False)
    mc, _ = evaluate_circuit(net, cfg, data.x_test, data.y_test, n=n_transfers, seed=seed, progress=False)
    summary = summarize(mc.correct)
    ppa = per_point_accuracy(mc.correct)
    print(f"training loss {result.loss_history[0]:.3f} -> {result.loss_history[-1]:.3f}")
    print(f"{summary['frac_points_ge_95']:.3f} of test points right in >= 95 % of {n_transfers} transfers; "
          f"mean accuracy {summary['mean_accuracy']:.3f}")
    return result, summary, ppa


if __name__ == "__main__":
    result, summary, ppa = main()
    assert result.loss_history[-1] < 0.85 * result.loss_history[0]
    assert summary["mean_accuracy"] > 0.75
    assert summary["frac_points_ge_95"] == np.mean(ppa >= 0.95)
