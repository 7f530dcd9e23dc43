"""Training one model: AdamW, gradient accumulation and clipping, early stopping, a time limit.

Each optimizer step sums the loss of `accum_steps` micro-batches and divides by the number of
samples in the step, so the accumulated gradient equals the gradient of the mean loss over the
whole effective batch. Out-of-memory becomes `OutOfMemory` (the search records an infeasible
trial); a NaN/inf loss becomes `NonFiniteLoss`; `should_stop` is polled after every optimizer step
so a cancelled run stops cleanly. Evaluation runs at the planned micro-batch (its memory peak is
below training's, see memory.py) and the best epoch's weights are copied to the CPU, never kept
as a second copy on the device. With a `TrainingCheckpoint` the full training state is saved
every few epochs and a later call resumes from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score
from torch import nn

from proj_assets.scaling.trial_checkpoint import TrainingCheckpoint
from proj_assets.scaling.windows import WindowData
from proj_assets.shared.process_memory import (
    current_rss_mb,
    peak_rss_mb,
    reset_peak_rss,
    set_malloc_thresholds,
)

# CPU: blocks of 64 KiB and more are mapped and returned on free, so freed activations do not stay
# resident and the measured peak is the live memory the estimate models (memory.py).
RETURN_FREED_ABOVE_BYTES = 64 << 10


class OutOfMemory(RuntimeError):
    """Training ran out of memory: the architecture is infeasible under this memory budget."""


class NonFiniteLoss(RuntimeError):
    """The training loss or the validation predictions became NaN/inf (diverged)."""


@dataclass(frozen=True)
class TrainConfig:
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    min_delta: float
    micro_batch: int
    accum_steps: int
    grad_clip: float
    time_limit_s: float
    seed: int


class EarlyStopping:
    """Stop after `patience` epochs without the loss improving by more than `min_delta`."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best = float("inf")
        self.bad_epochs = 0

    def update(self, loss: float) -> bool:
        """Record an epoch's loss; True when it improved (the caller keeps this epoch's weights)."""
        if loss < self.best - self.min_delta:
            self.best, self.bad_epochs = loss, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one dict of val metrics per epoch
    best_epoch: int = -1
    val: dict = field(default_factory=dict)  # metrics at the best epoch
    test: dict = field(default_factory=dict)  # test metrics of the best epoch's weights
    epochs_run: int = 0
    early_stopped: bool = False
    time_limited: bool = False
    interrupted: bool = False
    duration_s: float = 0.0
    peak_memory_mb: float = (
        0.0  # this trial's peak: CUDA allocated, or CPU resident (VmHWM reset at start)
    )
    peak_above_start_mb: float = 0.0  # that peak minus the memory in use when the trial started
    resumed_from_epoch: int | None = None  # set when training continued from a checkpoint


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Loss, ROC-AUC, PR-AUC and accuracy (scikit-learn); AUCs are NaN when one class is absent."""
    both = len(np.unique(labels)) == 2
    return {
        "loss": float(log_loss(labels, probs, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "pr_auc": float(average_precision_score(labels, probs)) if both else float("nan"),
        "accuracy": float(accuracy_score(labels, probs >= 0.5)),
    }


@torch.no_grad()
def evaluate(model: nn.Module, data: WindowData, split: str, batch_size: int) -> dict:
    """Metrics on one split, `batch_size` windows at a time (the training micro-batch)."""
    model.eval()
    ends = data.ends[split]
    prob_batches: list[torch.Tensor] = []
    label_batches: list[torch.Tensor] = []
    for start in range(0, len(ends), batch_size):
        x, y = data.batch(ends[start : start + batch_size])
        prob_batches.append(torch.sigmoid(model(x)).double().cpu())
        label_batches.append(y.cpu())
    probs = torch.cat(prob_batches).numpy()
    if not np.isfinite(probs).all():
        raise NonFiniteLoss(
            f"{split} predictions are not finite ({int((~np.isfinite(probs)).sum())} NaN/inf)"
        )
    return classification_metrics(torch.cat(label_batches).numpy(), probs)


def _is_oom(exc: BaseException) -> bool:
    return (
        isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        or "out of memory" in str(exc).lower()
    )


def _reset_peak(device: torch.device) -> float:
    """Start a trial's peak (CUDA peak stats, or the process's VmHWM); returns the memory in use now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    set_malloc_thresholds(RETURN_FREED_ABOVE_BYTES)
    reset_peak_rss()  # where it cannot, the peak stays the process's (never below the trial's)
    return current_rss_mb()


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by torch since `_reset_peak`. CPU: peak resident set size since then."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def accumulate_gradients(
    model: nn.Module, data: WindowData, step: torch.Tensor, micro_batch: int
) -> float:
    """Backward over `step` in micro-batches; each adds sum-loss / len(step), so the accumulated
    gradient is the gradient of the mean loss over the whole step. Returns that mean loss."""
    total = 0.0
    for micro in step.split(micro_batch):
        x, y = data.batch(micro)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y, reduction="sum") / len(
            step
        )
        loss.backward()
        total += float(loss.detach())
    return total


def train(
    model: nn.Module,
    data: WindowData,
    config: TrainConfig,
    on_epoch: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = lambda _msg: None,
    checkpoint: TrainingCheckpoint | None = None,
) -> TrainResult:
    """Train until early stopping, `max_epochs` or the time limit; evaluate the best weights on test.

    `on_epoch(epoch, val_metrics)` may raise (e.g. a pruner) to end the trial early.
    """
    device = data.features.device
    start_mb = _reset_peak(device)
    try:
        result = _Run(model, data, config, device, checkpoint).run(on_epoch, should_stop, log)
        result.peak_above_start_mb = max(result.peak_memory_mb - start_mb, 0.0)
        return result
    except RuntimeError as exc:
        if _is_oom(exc):
            raise OutOfMemory(f"out of memory at micro_batch={config.micro_batch}: {exc}") from exc
        raise


def cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


class _Run:
    """The state of one training run: what a checkpoint saves and restores."""

    def __init__(self, model, data, config, device, checkpoint):
        self.model, self.data, self.config, self.device, self.checkpoint = (
            model,
            data,
            config,
            device,
            checkpoint,
        )
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.stopper = EarlyStopping(config.patience, config.min_delta)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.result, self.best_state, self.next_epoch, self.elapsed_before = (
            TrainResult(),
            None,
            0,
            0.0,
        )

    def state(self) -> dict:
        r = self.result
        return {
            "next_epoch": self.next_epoch,
            "model": cpu_copy(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            # dropout on a GPU draws from the device's generator, not the CPU one
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "stopper": [self.stopper.best, self.stopper.bad_epochs],
            "history": r.history,
            "best_epoch": r.best_epoch,
            "val": r.val,
            "best_state": self.best_state,
            "elapsed_s": self.elapsed(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.stopper.best, self.stopper.bad_epochs = state["stopper"]
        self.result.history, self.result.best_epoch, self.result.val = (
            state["history"],
            state["best_epoch"],
            state["val"],
        )
        self.best_state, self.next_epoch, self.elapsed_before = (
            state["best_state"],
            state["next_epoch"],
            state["elapsed_s"],
        )
        self.result.epochs_run = self.result.resumed_from_epoch = self.next_epoch

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def run(self, on_epoch, should_stop, log) -> TrainResult:
        self.started = time.perf_counter()
        config, result, model, data = self.config, self.result, self.model, self.data
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        if saved is not None:
            self.restore(saved)
            log(f"resumed from the checkpoint after epoch {self.next_epoch}")
        step_size = config.micro_batch * config.accum_steps
        for epoch in range(self.next_epoch, config.max_epochs):
            model.train()
            ends = data.ends["train"]
            order = ends[torch.randperm(len(ends), generator=self.generator).to(ends.device)]
            for step_start in range(0, len(order), step_size):
                self.optimizer.zero_grad(set_to_none=True)
                loss = accumulate_gradients(
                    model, data, order[step_start : step_start + step_size], config.micro_batch
                )
                if not math.isfinite(loss):
                    raise NonFiniteLoss(
                        f"training loss is {loss} at epoch {epoch + 1}, step {step_start // step_size + 1}"
                    )
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                self.optimizer.step()
                if should_stop():
                    result.interrupted = True
                    break
                if self.elapsed() > config.time_limit_s:
                    result.time_limited = True
                    break
            if result.interrupted:
                break
            metrics = evaluate(model, data, "val", config.micro_batch)
            result.history.append({"epoch": epoch, **metrics})
            result.epochs_run = self.next_epoch = epoch + 1
            if self.stopper.update(metrics["loss"]):
                result.best_epoch, result.val = epoch, metrics
                self.best_state = cpu_copy(model.state_dict())
            log(
                f"epoch {epoch + 1}/{config.max_epochs}: val loss {metrics['loss']:.4f} roc_auc {metrics['roc_auc']:.3f}"
            )
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if result.time_limited:
                break
            if self.stopper.should_stop:
                result.early_stopped = True
                break
            if self.checkpoint is not None and self.checkpoint.due(self.next_epoch):
                self.checkpoint.save(self.state())
        if self.best_state is not None and not result.interrupted:
            model.load_state_dict(self.best_state)
            result.test = evaluate(model, data, "test", config.micro_batch)
        result.duration_s = self.elapsed()
        result.peak_memory_mb = _peak_memory_mb(self.device)
        return result
