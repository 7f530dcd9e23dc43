"""Selecting the best trial per cell and assembling the experiment-results table."""

from __future__ import annotations

import polars as pl

CELL = ["budget", "horizon"]
BEST_COLUMNS = [
    "budget",
    "horizon",
    "budget_params",
    "trial_number",
    "forced_extreme",
    "d_model",
    "n_layers",
    "n_heads",
    "context_length",
    "lr",
    "weight_decay",
    "dropout",
    "n_params",
    "effective_batch",
    "epochs_run",
    "early_stopped",
    "time_limited",
    "val_loss",
    "val_roc_auc",
    "val_pr_auc",
    "val_accuracy",
    "test_loss",
    "test_roc_auc",
    "test_pr_auc",
    "test_accuracy",
    "model_path",
    "model_sha256",
]


def best_trials(trials: pl.DataFrame) -> pl.DataFrame:
    """Per (budget, horizon), the completed trial with the lowest validation loss (ties: lowest
    trial number). Test metrics are reported for it, never used to choose it."""
    complete = trials.filter((pl.col("state") == "COMPLETE") & pl.col("val_loss").is_not_null())
    return (
        complete.sort([*CELL, "val_loss", "trial_number"])
        .group_by(CELL, maintain_order=True)
        .first()
        .select(BEST_COLUMNS)
        .sort("budget_params", "horizon")
    )


def experiment_results(trials: pl.DataFrame, best: pl.DataFrame) -> pl.DataFrame:
    """One row per cell: trial counts by outcome, then the best trial's settings and metrics."""
    counts = trials.group_by(CELL).agg(
        pl.col("budget_params").first(),
        pl.len().alias("n_trials"),
        (pl.col("state") == "COMPLETE").sum().alias("n_complete"),
        (pl.col("state") == "PRUNED").sum().alias("n_pruned"),
        pl.col("infeasible_reason").is_not_null().sum().alias("n_infeasible"),
        ((pl.col("state") == "FAIL") & pl.col("infeasible_reason").is_null())
        .sum()
        .alias("n_failed"),
        pl.col("duration_s").sum().alias("total_train_s"),
    )
    best = best.drop("budget_params").rename(
        {c: f"best_{c}" for c in best.columns if c not in (*CELL, "budget_params")}
    )
    return counts.join(best, on=CELL, how="left").sort("budget_params", "horizon")
