"""Training one configuration of a (budget, horizon) cell: what the HPO objective and the seed
re-runs share — resolving hyperparameters into a memory plan, building the model, training it on
the cell's windows, and the result fields every trial and re-run records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from torch import nn

from proj_assets.scaling.memory import BatchPlan, plan_batch
from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, count_parameters
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.trainer import TrainConfig, TrainResult, train
from proj_assets.scaling.trial_checkpoint import TrainingCheckpoint
from proj_assets.scaling.windows import WindowData, build_windows

# (model, resolved hyperparameters, result fields) -> where the weights were saved (path, sha256, ...)
ModelSink = Callable[[nn.Module, dict, dict], dict]


@dataclass
class CellContext:
    """What training needs for one (budget, horizon) cell."""

    budget_grid: pl.DataFrame  # this budget's rows of arch_grid
    splits: dict  # split -> (X, y) from market.panel.split_arrays
    settings: ScalingSettings
    memory_budget_mb: float
    device: str
    seed: int
    checkpoint_root: Path | None = None  # where runs keep resumable training state (None: not kept)
    model_sink: ModelSink | None = None  # saves a cell's best weights (None: not saved)
    inputs: dict[str, str] | None = None  # input versions (versions.cell_inputs), on each trial
    run_id: str | None = None  # the Dagster run training it, on each trial (`trial_run_id`)


def result_fields(result: TrainResult) -> dict:
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "early_stopped": result.early_stopped,
        "time_limited": result.time_limited,
        "duration_s": result.duration_s,
        "peak_memory_mb": result.peak_memory_mb,
        "peak_above_start_mb": result.peak_above_start_mb,
        "resumed_from_epoch": result.resumed_from_epoch,
        **{f"val_{k}": v for k, v in result.val.items()},
        **{f"test_{k}": v for k, v in result.test.items()},
    }


class CellTrainer:
    """Trains configurations of one cell; windows are built once per context length."""

    def __init__(self, cell: CellContext):
        self.cell = cell
        self.n_features = cell.splits["train"][0].shape[1]
        self._windows: dict[int, WindowData] = {}

    def windows(self, context_length: int) -> WindowData:
        if context_length not in self._windows:
            data = build_windows(
                self.cell.splits, context_length, self.cell.settings.trainer.max_train_windows
            )
            self._windows[context_length] = data.to(self.cell.device)
        return self._windows[context_length]

    def resolve(self, hp: dict, seed: int) -> tuple[dict, BatchPlan]:
        """Architecture + hyperparameters -> every recorded value (parameter count, batch plan, seed)."""
        s = self.cell.settings
        n_params = count_parameters(self.n_features, hp["d_model"], hp["n_layers"], s.arch.ffn_mult)
        plan = plan_batch(
            n_params,
            self.n_features,
            hp["d_model"],
            hp["n_layers"],
            hp["n_heads"],
            hp["context_length"],
            s.trainer.effective_batch,
            self.cell.memory_budget_mb,
            s.arch.ffn_mult,
        )
        return {
            **hp,
            "head_dim": hp["d_model"] // hp["n_heads"],
            "n_params": n_params,
            "micro_batch": plan.micro_batch,
            "accum_steps": plan.accum_steps,
            "effective_batch": plan.effective_batch,
            "memory_estimate_mb": plan.estimate_mb,
            "seed": seed,
        }, plan

    def checkpoint(self, key: str) -> TrainingCheckpoint | None:
        root = self.cell.checkpoint_root
        return (
            None
            if root is None
            else TrainingCheckpoint(
                root / f"{key}.pt", self.cell.settings.trainer.checkpoint_every_epochs
            )
        )

    def train(
        self,
        hp: dict,
        on_epoch=None,
        should_stop=lambda: False,
        log=lambda _m: None,
        checkpoint: TrainingCheckpoint | None = None,
    ) -> tuple[TrainResult, nn.Module]:
        """Train a resolved, feasible configuration (see `resolve`) with its seed."""
        s = self.cell.settings
        torch.manual_seed(hp["seed"])
        model = TimeSeriesTransformer(
            ArchConfig(
                self.n_features,
                hp["d_model"],
                hp["n_layers"],
                hp["n_heads"],
                s.arch.ffn_mult,
                hp["dropout"],
            )
        ).to(self.cell.device)
        config = TrainConfig(
            hp["lr"],
            hp["weight_decay"],
            s.trainer.max_epochs,
            s.trainer.patience,
            s.trainer.min_delta,
            hp["micro_batch"],
            hp["accum_steps"],
            s.trainer.grad_clip,
            s.trainer.trial_time_limit_s,
            hp["seed"],
        )
        result = train(
            model,
            self.windows(hp["context_length"]),
            config,
            on_epoch,
            should_stop,
            log,
            checkpoint,
        )
        return result, model
