"""The hyperparameter search of one (budget, horizon) cell: search space, objective and the
resumable loop that runs trials until the study holds `n_trials` finished ones.

The architecture is sampled as a conditional space so that every sample lies in the budget's
grid: `n_layers` among the budget's depths, then `d_model_L<n>` among the widths feasible at that
depth, then `n_heads_d<d>` among the head counts valid for that width.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import polars as pl
import torch

from proj_assets.scaling.extremes import middle_hyperparameters
from proj_assets.scaling.memory import plan_batch
from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, count_parameters
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.study import FAILED_REASON_ATTR, INFEASIBLE_ATTR, enqueue_retry, n_done
from proj_assets.scaling.trainer import OutOfMemory, TrainConfig, train
from proj_assets.scaling.windows import WindowData, build_windows


class InfeasibleTrial(Exception):
    """The sampled architecture cannot train under the memory budget (recorded, not a crash)."""


class TrialInterrupted(Exception):
    """The run was cancelled during this trial; a retry with the same parameters was queued."""


def study_params(arch: dict, hyper: dict) -> dict:
    """Resolved values -> the study's (conditional) parameter names, e.g. for enqueue_trial."""
    d, n_layers = arch["d_model"], arch["n_layers"]
    return {"n_layers": n_layers, f"d_model_L{n_layers}": d, f"n_heads_d{d}": arch["n_heads"], **hyper}


def extreme_trials(extremes: list[tuple[str, dict]], settings: ScalingSettings) -> list[tuple[str, dict]]:
    middle = middle_hyperparameters(settings.search)
    return [(label, study_params(arch, middle)) for label, arch in extremes]


@dataclass
class CellContext:
    """What the objective needs for one (budget, horizon) cell."""

    budget_grid: pl.DataFrame  # this budget's rows of arch_grid
    splits: dict  # split -> (X, y) from market.panel.split_arrays
    settings: ScalingSettings
    memory_budget_mb: float
    device: str
    seed: int


class Objective:
    def __init__(self, cell: CellContext, should_stop: Callable[[], bool], log: Callable[[str], None]):
        self.cell, self.should_stop, self.log = cell, should_stop, log
        grid = cell.budget_grid
        self.depths = sorted(set(grid["n_layers"].to_list()))
        self.widths = {n: sorted(set(grid.filter(pl.col("n_layers") == n)["d_model"].to_list())) for n in self.depths}
        self.heads = {d: sorted(set(grid.filter(pl.col("d_model") == d)["n_heads"].to_list()))
                      for d in set(grid["d_model"].to_list())}
        self._windows: dict[int, WindowData] = {}

    def windows(self, context_length: int) -> WindowData:
        if context_length not in self._windows:
            data = build_windows(self.cell.splits, context_length, self.cell.settings.trainer.max_train_windows)
            self._windows[context_length] = data.to(self.cell.device)
        return self._windows[context_length]

    def sample(self, trial: optuna.Trial) -> dict:
        search = self.cell.settings.search
        n_layers = trial.suggest_categorical("n_layers", self.depths)
        d_model = trial.suggest_categorical(f"d_model_L{n_layers}", self.widths[n_layers])
        return {
            "n_layers": n_layers, "d_model": d_model,
            "n_heads": trial.suggest_categorical(f"n_heads_d{d_model}", self.heads[d_model]),
            "context_length": trial.suggest_categorical("context_length", sorted(search.context_lengths)),
            "lr": trial.suggest_float("lr", *search.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *search.weight_decay, log=True),
            "dropout": trial.suggest_float("dropout", *search.dropout),
        }

    def __call__(self, trial: optuna.Trial) -> float:
        hp = self.sample(trial)
        s, n_features = self.cell.settings, self.cell.splits["train"][0].shape[1]
        n_params = count_parameters(n_features, hp["d_model"], hp["n_layers"], s.arch.ffn_mult)
        plan = plan_batch(n_params, n_features, hp["d_model"], hp["n_layers"], hp["n_heads"], hp["context_length"],
                          s.trainer.effective_batch, self.cell.memory_budget_mb, s.arch.ffn_mult)
        seed = self.cell.seed + trial.number
        trial.set_user_attr("hp", {**hp, "head_dim": hp["d_model"] // hp["n_heads"], "n_params": n_params,
                                   "micro_batch": plan.micro_batch, "accum_steps": plan.accum_steps,
                                   "effective_batch": plan.effective_batch,
                                   "memory_estimate_mb": plan.estimate_mb, "seed": seed})
        if not plan.feasible:
            trial.set_user_attr(INFEASIBLE_ATTR, f"estimate {plan.estimate_mb:.0f} MiB at one sample exceeds "
                                                 f"the {self.cell.memory_budget_mb} MiB budget")
            raise InfeasibleTrial(trial.user_attrs[INFEASIBLE_ATTR])
        torch.manual_seed(seed)
        model = TimeSeriesTransformer(ArchConfig(n_features, hp["d_model"], hp["n_layers"], hp["n_heads"],
                                                 s.arch.ffn_mult, hp["dropout"])).to(self.cell.device)
        config = TrainConfig(hp["lr"], hp["weight_decay"], s.trainer.max_epochs, s.trainer.patience,
                             s.trainer.min_delta, plan.micro_batch, plan.accum_steps, s.trainer.grad_clip,
                             s.trainer.trial_time_limit_s, seed)

        def on_epoch(epoch: int, metrics: dict) -> None:
            trial.report(metrics["loss"], epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch + 1)
                raise optuna.TrialPruned(f"val loss {metrics['loss']:.4f} after epoch {epoch + 1}")

        try:
            result = train(model, self.windows(hp["context_length"]), config, on_epoch, self.should_stop, self.log)
        except OutOfMemory as exc:
            trial.set_user_attr(INFEASIBLE_ATTR, str(exc)[:500])
            raise InfeasibleTrial(str(exc)) from exc
        if result.interrupted:
            trial.set_user_attr(FAILED_REASON_ATTR, "interrupted by a cancel request; retried")
            enqueue_retry(trial.study, trial)
            raise TrialInterrupted(f"trial {trial.number} stopped by a cancel request; queued for retry")
        trial.set_user_attr("result", {
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "early_stopped": result.early_stopped, "time_limited": result.time_limited,
            "duration_s": result.duration_s, "peak_memory_mb": result.peak_memory_mb,
            **{f"val_{k}": v for k, v in result.val.items()}, **{f"test_{k}": v for k, v in result.test.items()},
        })
        return result.val["loss"]


def run_trials(study: optuna.Study, objective: Objective, n_trials: int,
               log: Callable[[str], None] = lambda _msg: None) -> int:
    """Run one trial at a time until `n_trials` count as done; returns how many ran now."""
    started, ran = time.perf_counter(), 0
    while (done := n_done(study)) < n_trials:
        study.optimize(objective, n_trials=1, catch=(InfeasibleTrial,))
        ran += 1
        rate = ran / max(time.perf_counter() - started, 1e-9)
        remaining = n_trials - n_done(study)
        log(f"trial {done + 1} of {n_trials} finished; {rate * 60:.1f} trials/min, ETA {remaining / rate:.0f} s")
    return ran


def make_sampler_and_pruner(settings: ScalingSettings, seed: int, pruning: bool | None = None):
    use_pruner = settings.pruner == "median" if pruning is None else pruning
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=1)
              if use_pruner else optuna.pruners.NopPruner())
    return optuna.samplers.TPESampler(seed=seed), pruner
