"""What the scaling checks measure, as plain functions returning the offending rows."""

from __future__ import annotations

import polars as pl

from proj_assets.scaling.extremes import ARCH_DIMS, extreme_candidates
from proj_assets.scaling.param_count import count_parameters
from proj_assets.scaling.trial_table import HYPERPARAMETERS

CELL = ["budget", "horizon"]
OUTCOME_FIELDS = (
    "epochs_run",
    "best_epoch",
    "early_stopped",
    "duration_s",
    "peak_memory_mb",
    "val_loss",
    "val_roc_auc",
    "val_pr_auc",
    "val_accuracy",
)
COUNTED = (pl.col("state").is_in(["COMPLETE", "PRUNED"])) | pl.col(
    "infeasible_reason"
).is_not_null()


def budget_violations(
    grid: pl.DataFrame, tolerance: float, n_features: int, ffn_mult: int
) -> pl.DataFrame:
    """Rows off their budget by more than `tolerance`, or whose n_params is not the analytic count."""
    expected = [
        count_parameters(n_features, d, n, ffn_mult)
        for d, n in zip(grid["d_model"], grid["n_layers"], strict=True)
    ]
    return (
        grid.with_columns(
            pl.Series("expected_params", expected, dtype=pl.Int64),
            ((pl.col("n_params") - pl.col("budget_params")).abs() / pl.col("budget_params")).alias(
                "off_by"
            ),
        )
        .filter((pl.col("off_by") > tolerance) | (pl.col("n_params") != pl.col("expected_params")))
        .select(
            "budget",
            "d_model",
            "n_layers",
            "n_heads",
            "n_params",
            "expected_params",
            "budget_params",
            "off_by",
        )
    )


def head_violations(grid: pl.DataFrame, min_head_dim: int) -> pl.DataFrame:
    return grid.filter(
        (pl.col("d_model") % pl.col("n_heads") != 0)
        | (pl.col("d_model") // pl.col("n_heads") < min_head_dim)
        | (pl.col("head_dim") * pl.col("n_heads") != pl.col("d_model"))
    ).select("budget", "d_model", "n_layers", "n_heads", "head_dim")


def missing_extremes(trials: pl.DataFrame, grid: pl.DataFrame) -> pl.DataFrame:
    """Per cell, each (dimension, min|max) of the budget's current grid (its architectures that fit
    the memory plan and, with time estimates, the trial time limit: extremes.extreme_candidates)
    that no trained trial used."""
    rows = []
    trained = trials.filter(COUNTED)
    for budget, horizon in trials.select(CELL).unique().sort(CELL).iter_rows():
        cell_grid = extreme_candidates(grid.filter(pl.col("budget") == budget))
        cell = trained.filter((pl.col("budget") == budget) & (pl.col("horizon") == horizon))
        for dim in ARCH_DIMS:
            for end, value in (("min", cell_grid[dim].min()), ("max", cell_grid[dim].max())):
                if value not in set(cell[dim].to_list()):
                    rows.append(
                        {
                            "budget": budget,
                            "horizon": horizon,
                            "dimension": dim,
                            "extreme": end,
                            "grid_value": value,
                        }
                    )
    return pl.DataFrame(
        rows,
        schema={
            "budget": pl.Utf8,
            "horizon": pl.Utf8,
            "dimension": pl.Utf8,
            "extreme": pl.Utf8,
            "grid_value": pl.Int64,
        },
    )


def missing_logged_values(trials: pl.DataFrame) -> pl.DataFrame:
    """Trials missing a hyperparameter or, when complete, an outcome field. A failure explained
    before the trial sampled anything (surplus: two workers raced past n_trials; its worker died)
    has no hyperparameters to log: a FAIL with a `failed_reason` is not asked for them, else one
    such trial of a shared study would fail the check of every later run of its cell."""
    never_trained = (pl.col("state") == "FAIL") & pl.col("failed_reason").is_not_null()
    hp_missing = [
        pl.when(pl.col(c).is_null() & ~never_trained).then(pl.lit(c)) for c in HYPERPARAMETERS
    ]
    outcome_missing = [
        pl.when((pl.col("state") == "COMPLETE") & pl.col(c).is_null()).then(pl.lit(c))
        for c in OUTCOME_FIELDS
    ]
    return (
        trials.with_columns(
            pl.concat_str([*hp_missing, *outcome_missing], separator=", ", ignore_nulls=True).alias(
                "missing"
            )
        )
        .filter(pl.col("missing") != "")
        .select(*CELL, "trial_number", "state", "missing")
    )


def incomplete_cells(
    trials: pl.DataFrame, n_trials: int, cells: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Cells (those of `trials`, or every (budget, horizon) row of `cells`, so a cell with no
    current trial counts as short) with fewer than `n_trials` counted trials, or with a failure
    nobody explained."""
    unexplained = (
        (pl.col("state") == "FAIL")
        & pl.col("infeasible_reason").is_null()
        & pl.col("failed_reason").is_null()
    )
    summary = trials.group_by(CELL).agg(
        COUNTED.sum().alias("n_counted"), unexplained.sum().alias("n_unexplained_fail")
    )
    if cells is not None:
        summary = cells.select(CELL).join(summary, on=CELL, how="left").fill_null(0)
    return summary.filter(
        (pl.col("n_counted") < n_trials) | (pl.col("n_unexplained_fail") > 0)
    ).sort(CELL)
