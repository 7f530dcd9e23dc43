"""Batched probe training: all replicas (seeds, controls) of a config-fold in one computation.

The loss is the sum over replicas of each replica's mean binary cross-entropy, so each replica's
gradient is exactly its own; AdamW is elementwise, so stacked replicas evolve exactly as separate
runs would (up to float summation order). Minibatches come from one order per epoch, shared by all
replicas (seeded by `order_seed`), so a minibatch is gathered once for every replica; seeds vary
the initialisation and, for the control, the label permutation.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from proj_assets.probes.probe_models import ProbeInputs, feature_width, init_params, logits


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float
    weight_decay: float
    epochs: int
    batch_size: int
    n_heads: int = 2


def train_replicas(probe_type: str, inputs: ProbeInputs, labels: np.ndarray, seeds: Sequence[int],
                   hp: TrainParams, order_seed: int) -> dict[str, torch.Tensor]:
    """Train len(seeds) replicas; `labels` is [R, N] (one label vector per replica)."""
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    if labels_t.shape != (len(seeds), len(inputs)):
        raise ValueError(f"labels shape {tuple(labels_t.shape)} != (replicas {len(seeds)}, rows {len(inputs)})")
    params = init_params(probe_type, list(seeds), feature_width(probe_type, inputs), hp.n_heads)
    opt = torch.optim.AdamW(params.values(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    rng = np.random.default_rng(order_seed)
    n = len(inputs)
    for _epoch in range(hp.epochs):
        order = torch.from_numpy(rng.permutation(n)) if hp.batch_size < n else torch.arange(n)
        for start in range(0, n, hp.batch_size):
            idx = order[start:start + hp.batch_size]
            out = logits(probe_type, params, inputs.rows(idx))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out, labels_t[:, idx], reduction="none").mean(dim=1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {k: v.detach() for k, v in params.items()}


def predict(probe_type: str, params: dict[str, torch.Tensor], inputs: ProbeInputs) -> np.ndarray:
    """Probabilities [R, N]."""
    with torch.no_grad():
        return torch.sigmoid(logits(probe_type, params, inputs)).numpy()


def train_one_at_a_time(probe_type: str, inputs: ProbeInputs, labels: np.ndarray, seeds: Sequence[int],
                        hp: TrainParams, order_seed: int) -> list[dict[str, torch.Tensor]]:
    """The naive reference: one replica per call (what the batched trainer replaces)."""
    return [train_replicas(probe_type, inputs, labels[r:r + 1], [s], hp, order_seed) for r, s in enumerate(seeds)]


def shuffled_labels(y: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """One within-train permutation of the labels per seed: the shuffled-label control."""
    return np.stack([np.random.default_rng(10_007 + int(s)).permutation(y) for s in seeds])


def replica_metrics(y_true: np.ndarray, probs: np.ndarray) -> list[dict]:
    """PR-AUC (average precision), ROC-AUC (NaN when the test set has one class) and base rate per replica."""
    both = len(np.unique(y_true)) == 2
    return [{"pr_auc": float(average_precision_score(y_true, p)) if y_true.any() else float("nan"),
             "roc_auc": float(roc_auc_score(y_true, p)) if both else float("nan"),
             "base_rate": float(np.mean(y_true))} for p in probs]
