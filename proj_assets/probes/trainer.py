"""Batched probe training: many replicas (seeds, and configs that share probe type, layer and fold)
in one computation.

The loss is the sum over replicas of each replica's mean class-weighted binary cross-entropy, so
each replica's gradient is exactly its own; the optimizer (`BatchedAdamW`, torch's AdamW update
with a learning rate and weight decay per replica) is elementwise, so stacked replicas evolve as
separate runs would (up to float summation order). Each replica has its own seed for its
initialisation and its own minibatch order: an epoch's minibatches are one shared random
partition of the rows, and each replica visits them in its own seeded order, so at a step every
minibatch is computed once for the replicas that are on it (the arithmetic of a shared order, not
of a union of per-replica batches). Positives are weighted by negatives/positives of the replica's labels.
With a validation set, each replica keeps its best-validation-loss parameters and stops after
`patience` epochs without improvement (or at its own epoch budget).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from proj_assets.probes.probe_models import ProbeInputs, feature_width, init_params, logits
from proj_assets.probes.probe_types import TOKEN_PROBES
from proj_assets.probes.token_batches import (
    epoch_buffer,
    epoch_tokens,
    minibatch_logits,
    staged_inputs,
    step_plan,
)
from proj_assets.shared.process_memory import set_malloc_thresholds


@dataclass(frozen=True)
class TrainParams:
    """Scalars, or one value per replica for learning_rate / weight_decay / epochs."""

    learning_rate: float | Sequence[float]
    weight_decay: float | Sequence[float]
    epochs: int | Sequence[int]
    batch_size: int
    n_heads: int = 2
    patience: int = 10  # epochs without validation improvement before a replica stops


ORDER_SEED = (
    20_251  # the epochs' shared minibatch partition; replica seeds choose the visiting order
)


def per_replica(value, n: int) -> torch.Tensor:
    return torch.as_tensor(
        np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy(), dtype=torch.float32
    )


class BatchedAdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias correction) with a learning rate
    and weight decay per replica (the leading dimension of every parameter); `scale` (0 or 1 per
    replica) freezes replicas that stopped."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params, self.lr, self.wd, self.betas, self.eps, self.t = (
            params,
            lr,
            weight_decay,
            betas,
            eps,
            0,
        )
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, scale: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        lr = self.lr * scale
        for p, m, v in zip(self.params, self.m, self.v, strict=False):
            grad = p.grad
            assert grad is not None  # set by the backward of the step's minibatches
            shape = (-1,) + (1,) * (p.dim() - 1)
            p.mul_((1 - lr * self.wd).view(shape))
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v.sqrt() / bc2**0.5).add_(self.eps)
            p.sub_((lr / bc1).view(shape) * m / denom)
            p.grad = None


@functools.cache
def keep_freed_blocks() -> bool:
    """Ask glibc to keep freed blocks up to 256 MB in the heap (trimming only above 512 MB free).
    By default it returns blocks over ~128 KB-32 MB to the kernel on free and page-faults them in
    again on the next allocation; a training step allocates a dozen [tokens, replicas x heads]
    float32 temporaries, and on this machine those faults cost as much as the arithmetic (the
    batched token probes ran 1.5-2x slower per epoch, docs/benchmarks.md). Once per process;
    False where the C library is not glibc."""
    return set_malloc_thresholds(256 << 20, 512 << 20)


def _weighted_bce(
    out: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor
) -> torch.Tensor:
    """Per-replica mean class-weighted BCE [R]."""
    return torch.nn.functional.binary_cross_entropy_with_logits(
        out, labels, pos_weight=pos_weight[:, None], reduction="none"
    ).mean(dim=1)


def train_replicas(
    probe_type: str,
    inputs: ProbeInputs,
    labels: np.ndarray,
    seeds: Sequence[int],
    hp: TrainParams,
    val: ProbeInputs | None = None,
    val_labels: np.ndarray | None = None,
    device: str = "cpu",
    matmul_dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Train len(seeds) replicas; `labels` is [R, N] (one label vector per replica). Returns the
    parameters (best on validation when given) and `epochs_run` per replica. Token probes multiply
    tokens by weights in `matmul_dtype` (probe_models.matmul_dtype); parameters, gradients and the
    optimizer stay float32."""
    if torch.device(device).type == "cpu":  # a CPU allocator setting: nothing to do on CUDA
        keep_freed_blocks()
    R, n = len(seeds), len(inputs)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.float32, device=device)
    if labels_t.shape != (R, n):
        raise ValueError(f"labels shape {tuple(labels_t.shape)} != (replicas {R}, rows {n})")
    inputs = inputs.to(device)
    params = {
        k: v.detach().to(device).requires_grad_()
        for k, v in init_params(
            probe_type, list(seeds), feature_width(probe_type, inputs), hp.n_heads
        ).items()
    }
    lr, wd = per_replica(hp.learning_rate, R).to(device), per_replica(hp.weight_decay, R).to(device)
    epochs = per_replica(hp.epochs, R).to(device)
    positives = labels_t.sum(1)
    pos_weight = (n - positives) / positives.clamp(min=1)
    opt = BatchedAdamW(list(params.values()), lr, wd)
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    active = torch.ones(R, device=device)
    run = torch.zeros(R, device=device)
    best = {k: v.detach().clone() for k, v in params.items()}
    if val is not None:
        val, val_t = (
            val.to(device),
            torch.as_tensor(np.asarray(val_labels), dtype=torch.float32, device=device),
        )
        best_loss, since_best = (
            torch.full((R,), float("inf"), device=device),
            torch.zeros(R, device=device),
        )
    shared = np.random.default_rng(ORDER_SEED)
    n_batches = -(-n // hp.batch_size)
    gathered = (
        probe_type in TOKEN_PROBES and n_batches > 1
    )  # token_batches: one gather per minibatch
    if gathered:
        # token probes are given their packed tokens and lengths
        assert inputs.tokens is not None and inputs.lengths is not None
        tokens: torch.Tensor = inputs.tokens
        lengths = inputs.lengths.cpu().numpy()
        starts = (
            inputs.token_starts.cpu().numpy()
            if inputs.token_starts is not None
            else np.cumsum(lengths) - lengths
        )
        buffer = epoch_buffer(tokens, int(lengths.sum()), matmul_dtype)
    for epoch in range(int(epochs.max())):
        # the epoch's minibatches (one shared partition); each replica visits them in its own
        # seeded order, so a step computes each minibatch once for all the replicas on it
        order = shared.permutation(n)
        perm = torch.from_numpy(order).to(device)
        parts = [perm[b * hp.batch_size : (b + 1) * hp.batch_size] for b in range(n_batches)]
        if gathered:
            index = epoch_tokens(tokens, starts, lengths, order, hp.batch_size, buffer)
        else:
            batches = [inputs] if n_batches == 1 else [inputs.rows(idx) for idx in parts]
        replicas, plan = step_plan(np.stack([rng.permutation(n_batches) for rng in rngs]), device)
        for triples in plan:
            for b, lo, hi in triples:
                on = replicas[lo:hi]
                sub = {k: v[on] for k, v in params.items()}
                lab = labels_t[on][:, parts[b]] if n_batches > 1 else labels_t[on]
                out = (
                    minibatch_logits(probe_type, sub, inputs, index, b, matmul_dtype)
                    if gathered
                    else logits(probe_type, sub, batches[b], matmul_dtype)
                )
                _weighted_bce(
                    out, lab, pos_weight[on]
                ).sum().backward()  # this minibatch's graph freed now
            opt.step(active)
        trained = active > 0
        run += active
        active = active * (epoch + 1 < epochs)
        if val is not None:
            with torch.no_grad():
                scored = staged_inputs(val, buffer) if gathered else val
                loss = _weighted_bce(
                    logits(probe_type, params, scored, matmul_dtype), val_t, pos_weight
                )
            improved = (loss < best_loss - 1e-6) & trained
            for k in best:
                best[k][improved] = params[k].detach()[improved]
            best_loss = torch.where(improved, loss, best_loss)
            since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
            active = active * (since_best < hp.patience)
        if not bool(active.any()):
            break
    final = best if val is not None else {k: v.detach() for k, v in params.items()}
    return {**final, "epochs_run": run.cpu()}


def predict(
    probe_type: str,
    params: dict[str, torch.Tensor],
    inputs: ProbeInputs,
    matmul_dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Probabilities [R, N]."""
    with torch.no_grad():
        return (
            torch.sigmoid(logits(probe_type, params, inputs.to(params["w"].device), matmul_dtype))
            .cpu()
            .numpy()
        )


def train_one_at_a_time(
    probe_type: str,
    inputs: ProbeInputs,
    labels: np.ndarray,
    seeds: Sequence[int],
    hp: TrainParams,
    val: ProbeInputs | None = None,
    val_labels: np.ndarray | None = None,
    matmul_dtype: torch.dtype = torch.float32,
) -> list[dict[str, torch.Tensor]]:
    """The naive reference: one replica per call (what the batched trainer replaces)."""
    pick = lambda v, r: v[r] if np.ndim(v) else v  # noqa: E731
    return [
        train_replicas(
            probe_type,
            inputs,
            labels[r : r + 1],
            [s],
            TrainParams(
                pick(hp.learning_rate, r),
                pick(hp.weight_decay, r),
                pick(hp.epochs, r),
                hp.batch_size,
                hp.n_heads,
                hp.patience,
            ),
            val,
            None if val_labels is None else val_labels[r : r + 1],
            matmul_dtype=matmul_dtype,
        )
        for r, s in enumerate(seeds)
    ]


def replica_metrics(
    y_true: np.ndarray, probs: np.ndarray, importance: np.ndarray | None = None
) -> list[dict]:
    """PR-AUC (average precision), ROC-AUC (NaN when the test set has one class), base rate and,
    with a continuous importance score, its Spearman correlation with the probability, per replica."""
    both = len(np.unique(y_true)) == 2
    rows = []
    for p in probs:
        row = {
            "pr_auc": float(average_precision_score(y_true, p)) if y_true.any() else float("nan"),
            "roc_auc": float(roc_auc_score(y_true, p)) if both else float("nan"),
            "base_rate": float(np.mean(y_true)),
            "spearman": float("nan"),
        }
        if importance is not None and np.ptp(importance) > 0 and np.ptp(p) > 0:
            row["spearman"] = float(spearmanr(importance, p).statistic)
        rows.append(row)
    return rows
