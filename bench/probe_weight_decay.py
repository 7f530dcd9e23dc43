"""Does the research grid's weight decay change anything at its learning rates? Trains linear
probes (the batched trainer, torch's AdamW update per replica) on a planted signal shaped like a
research fold, for every learning rate x weight decay, and prints per cell the PR-AUC change and
the weight-norm ratio against weight decay 0.

AdamW's decay is decoupled: each step multiplies the weights by (1 - lr * wd), so over T steps
they shrink by about exp(-lr * wd * T) whatever the gradient; with a few thousand steps and
lr * wd around 1e-5 that is nothing.

    PYTHONPATH=. .venv/bin/python bench/probe_weight_decay.py
"""

import argparse

import numpy as np
import torch

from proj_assets.probes.probe_models import ProbeInputs
from proj_assets.probes.trainer import TrainParams, predict, replica_metrics, train_replicas

LEARNING_RATES = [0.001, 0.003, 0.01, 0.03]
WEIGHT_DECAYS = [0.0, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]


def planted(n: int, width: int, rng: np.random.Generator):
    """Pooled activations with a weak planted direction, labels at a 25% base rate."""
    y = (rng.random(n) < 0.25).astype(np.int64)
    pooled = rng.normal(size=(n, width)).astype(np.float32)
    pooled[:, :4] += 0.6 * y[:, None]
    tokens = pooled[:, None, :]
    inputs = ProbeInputs.from_padded(
        torch.zeros(n, 3),
        torch.from_numpy(pooled),
        torch.from_numpy(tokens),
        torch.ones(n, 1, dtype=torch.bool),
    )
    return inputs, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train, y_train = planted(args.train, args.width, rng)
    test, y_test = planted(1000, args.width, rng)
    cells = [(lr, wd) for lr in LEARNING_RATES for wd in WEIGHT_DECAYS]
    hp = TrainParams(
        [lr for lr, _ in cells], [wd for _, wd in cells], args.epochs, 256, 1, patience=args.epochs
    )
    params = train_replicas(
        "linear_probe", train, np.tile(y_train, (len(cells), 1)), [1] * len(cells), hp
    )
    pr_auc = [m["pr_auc"] for m in replica_metrics(y_test, predict("linear_probe", params, test))]
    weights = next(v for k, v in params.items() if k != "epochs_run")
    norms = weights.detach().reshape(len(cells), -1).norm(dim=1).numpy()
    steps = args.epochs * -(-args.train // 256)
    print(f"{args.train} sentences, batch 256, {args.epochs} epochs = {steps} steps, same seed")
    print(f"{'lr':>6} {'wd':>7} {'lr*wd*steps':>11} {'PR-AUC':>7} {'dPR-AUC':>8} {'|w|/|w0|':>8}")
    for i, (lr, wd) in enumerate(cells):
        base = i - WEIGHT_DECAYS.index(wd)
        print(
            f"{lr:>6} {wd:>7} {lr * wd * steps:>11.4f} {pr_auc[i]:>7.4f} "
            f"{pr_auc[i] - pr_auc[base]:>+8.4f} {norms[i] / norms[base]:>8.3f}"
        )


if __name__ == "__main__":
    main()
