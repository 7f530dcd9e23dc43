"""Scaling asset checks: the grid respects budgets and head divisibility; every study covers its
forced extremes, logs every hyperparameter, and reached its trial count. Trial checks judge the
rows of the cell's current input versions only (superseded history is neither counted nor
blamed) and report the staleness; `extremes_covered` fails on a stored grid the profile would not
build."""

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, SPLITS, TARGETS
from proj_assets.scaling.assets import ARCH_GRID, N_FEATURES, TRIALS
from proj_assets.scaling.checks_core import (
    budget_violations,
    head_violations,
    incomplete_cells,
    missing_extremes,
    missing_logged_values,
)
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.versions import StaleGrid, inputs_by_cell, require_current_grid
from proj_assets.shared.check_results import offending_rows_result
from proj_resources import Compute

WARN = dg.AssetCheckSeverity.WARN
_grid = dg.AssetKey(ARCH_GRID)
_trials = dg.AssetKey(TRIALS)
# Trial checks are per partition (a preview feature in Dagster 1.13): each (budget, horizon)
# study is judged on its own rows, and gates read the latest result per partition.
MARKET_INS = {
    "arch_grid": dg.AssetIn(key=ARCH_GRID),
    "features": dg.AssetIn(key=FEATURES),
    "targets": dg.AssetIn(key=TARGETS),
    "splits": dg.AssetIn(key=SPLITS),
}


def scaling_checks(
    settings: ScalingSettings, cells: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The grid and trial checks for `settings` (trial checks per `cells` partition)."""

    @dg.asset_check(
        asset=_grid,
        blocking=True,
        description="every architecture's exact parameter count is within tolerance of its budget",
    )
    def params_within_budget(arch_grid: pl.DataFrame) -> dg.AssetCheckResult:
        bad = budget_violations(
            arch_grid, settings.arch.tolerance, N_FEATURES, settings.arch.ffn_mult
        )
        return offending_rows_result(
            bad, arch_grid.height, "architectures off budget or with a wrong parameter count"
        )

    @dg.asset_check(
        asset=_grid,
        blocking=True,
        description="n_heads divides d_model and every head has at least min_head_dim dimensions",
    )
    def heads_divide_d_model(arch_grid: pl.DataFrame) -> dg.AssetCheckResult:
        bad = head_violations(arch_grid, settings.arch.min_head_dim)
        return offending_rows_result(
            bad, arch_grid.height, "architectures whose heads do not divide d_model"
        )

    @dg.asset_check(
        asset=_grid,
        description="no depth within tolerance of a budget is cut from the grid by "
        "scaling.arch.n_layers_max (WARN naming the depths left out)",
    )
    def every_feasible_depth_in_grid() -> dg.AssetCheckResult:
        from proj_assets.scaling.arch_grid import d_model_values, left_out_depths, valid_heads

        s = settings
        cut = left_out_depths(s.budgets, s.arch, N_FEATURES)
        pairs = len(s.budgets) * sum(bool(valid_heads(d, s.arch)) for d in d_model_values(s.arch))
        return offending_rows_result(
            cut,
            pairs,
            f"(budget, d_model) pairs with depths above scaling.arch."
            f"n_layers_max={settings.arch.n_layers_max}",
            severity=WARN,
        )

    def current(trials: pl.DataFrame, market: tuple, arch_grid: pl.DataFrame) -> tuple:
        """The cell's rows of its current inputs, and the staleness report."""
        from proj_assets.scaling.versions import select_current

        cells = [tuple(c) for c in trials.select("budget", "horizon").unique().iter_rows()]
        return select_current(trials, inputs_by_cell(cells, arch_grid, settings, market))

    @dg.asset_check(
        asset=_trials,
        partitions_def=cells,
        blocking=True,
        additional_ins=MARKET_INS,
        description="the min and max d_model, n_layers and n_heads of the budget's grid were each "
        "trained (in the cell's current input version; fails on a stale stored grid)",
    )
    def extremes_covered(
        trials: pl.DataFrame,
        arch_grid: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
        compute: Compute,
    ) -> dg.AssetCheckResult:
        try:
            require_current_grid(arch_grid, settings, compute.memory_budget_mb)
        except StaleGrid as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        rows, report = current(trials, (features, targets, splits), arch_grid)
        bad = missing_extremes(rows, arch_grid)
        return offending_rows_result(
            bad,
            6 * max(rows.select("budget", "horizon").n_unique(), 1),
            "grid extremes never trained",
            staleness=dg.MetadataValue.json(report),
        )

    @dg.asset_check(
        asset=_trials,
        partitions_def=cells,
        blocking=True,
        additional_ins=MARKET_INS,
        description="every trial row of the current input version has every hyperparameter "
        "(n_heads included) and its outcome fields",
    )
    def all_params_logged(
        trials: pl.DataFrame,
        arch_grid: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
    ) -> dg.AssetCheckResult:
        rows, report = current(trials, (features, targets, splits), arch_grid)
        return offending_rows_result(
            missing_logged_values(rows),
            rows.height,
            "trials with missing values",
            staleness=dg.MetadataValue.json(report),
        )

    @dg.asset_check(
        asset=_trials,
        partitions_def=cells,
        additional_ins=MARKET_INS,
        description="the study of the current input version holds the profile's trial count and "
        "no unexplained failure",
    )
    def trials_complete(
        trials: pl.DataFrame,
        arch_grid: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
    ) -> dg.AssetCheckResult:
        rows, report = current(trials, (features, targets, splits), arch_grid)
        cells_now = trials.select("budget", "horizon").unique()
        bad = incomplete_cells(rows, settings.n_trials, cells_now)
        return offending_rows_result(
            bad,
            cells_now.height,
            "cells short of trials or with failed trials",
            severity=WARN,
            staleness=dg.MetadataValue.json(report),
        )

    return [
        params_within_budget,
        heads_divide_d_model,
        every_feasible_depth_in_grid,
        extremes_covered,
        all_params_logged,
        trials_complete,
    ]
