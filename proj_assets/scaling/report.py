"""Selecting the best trial per cell and assembling the experiment-results table."""

from __future__ import annotations

import polars as pl

from proj_resources.fingerprints import FINGERPRINT, INPUT_VERSIONS

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
    FINGERPRINT,  # the inputs the best trial was trained on (seed runs are stamped with it)
    INPUT_VERSIONS,
]


def best_trials(trials: pl.DataFrame) -> pl.DataFrame:
    """Per (budget, horizon), the completed trial with the lowest validation loss (ties: lowest
    trial number). Test metrics are reported for it, never used to choose it. Give it current
    rows only (versions.select_current)."""
    complete = trials.filter((pl.col("state") == "COMPLETE") & pl.col("val_loss").is_not_null())
    return (
        complete.sort([*CELL, "val_loss", "trial_number"])
        .group_by(CELL, maintain_order=True)
        .first()
        .select(BEST_COLUMNS)
        .sort("budget_params", "horizon")
    )


def experiment_results(trials: pl.DataFrame, best: pl.DataFrame) -> pl.DataFrame:
    """One row per cell with a best trial: counts by outcome of the trials of the best trial's
    input version (`n_superseded`: the cell's rows of other versions, history), then the best
    trial's settings and metrics."""
    current = pl.col(FINGERPRINT).fill_null("") == pl.col(f"best_{FINGERPRINT}")
    tagged = trials.join(
        best.select(*CELL, pl.col(FINGERPRINT).alias(f"best_{FINGERPRINT}")), on=CELL, how="inner"
    )
    superseded = tagged.group_by(CELL).agg((~current).sum().alias("n_superseded"))
    counts = (
        tagged.filter(current)
        .group_by(CELL)
        .agg(
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
    )
    best = best.drop("budget_params").rename(
        {c: f"best_{c}" for c in best.columns if c not in (*CELL, "budget_params")}
    )
    return (
        counts.join(superseded, on=CELL, how="left")
        .join(best, on=CELL, how="left")
        .sort("budget_params", "horizon")
    )
