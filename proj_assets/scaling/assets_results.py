"""Scaling result assets: the best trial of every cell, chosen among the trials of the cell's
current input versions only, and the experiment-results table."""

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, SPLITS, TARGETS
from proj_assets.scaling.assets import (
    ARCH_GRID,
    BEST_TRIALS,
    EXPERIMENT_RESULTS,
    TRIALS,
    refuse_stale_grid,
)
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.versions import REPORT_CODE_VERSION
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Warehouse
from proj_resources.fingerprints import table_version


def scaling_result_assets(
    settings: ScalingSettings, profile_key: str, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """`best_trials` and `experiment_results` for `settings` (CSV under `scaling/<profile_key>`)."""

    @dg.asset(
        key=BEST_TRIALS,
        group_name="scaling",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={
            "trials": dg.AssetIn(key=TRIALS),
            "arch_grid": dg.AssetIn(key=ARCH_GRID),
            "features": dg.AssetIn(key=FEATURES),
            "targets": dg.AssetIn(key=TARGETS),
            "splits": dg.AssetIn(key=SPLITS),
        },
        metadata=table_metadata(BEST_TRIALS),
        automation_condition=GATED,
        code_version=REPORT_CODE_VERSION,
    )
    @gated(BEST_TRIALS, warehouse)
    def best_trials(
        context: dg.AssetExecutionContext,
        trials: pl.DataFrame,
        arch_grid: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
        compute: Compute,
    ) -> dg.Output[pl.DataFrame]:
        """The completed trial with the lowest validation loss in every (budget, horizon) cell,
        among the trials of the cell's current inputs (data, splits, trainer, grid, search, code);
        a cell with none (its trials are stale: re-materialize them) has no row."""
        from proj_assets.scaling.report import best_trials as select_best
        from proj_assets.scaling.versions import inputs_by_cell, select_current

        refuse_stale_grid(arch_grid, settings, compute.memory_budget_mb)
        cells = [tuple(c) for c in trials.select("budget", "horizon").unique().iter_rows()]
        inputs = inputs_by_cell(cells, arch_grid, settings, (features, targets, splits))
        current, report = select_current(trials, inputs)
        best = select_best(current)
        context.add_output_metadata(
            {
                "cells": best.height,
                "staleness": dg.MetadataValue.json(report),
                "best": markdown_table(best.drop("input_versions"), limit=50),
            }
        )
        version = table_version(best, ["budget", "horizon", "trial_number"])
        return dg.Output(best, data_version=dg.DataVersion(version))

    @dg.asset(
        key=EXPERIMENT_RESULTS,
        group_name="scaling",
        kinds={"polars", "duckdb", "csv"},
        pool=DUCKDB_POOL,
        ins={"trials": dg.AssetIn(key=TRIALS), "best_trials": dg.AssetIn(key=BEST_TRIALS)},
        metadata=table_metadata(EXPERIMENT_RESULTS),
        automation_condition=GATED,
        code_version=REPORT_CODE_VERSION,
    )
    @gated(EXPERIMENT_RESULTS, warehouse)
    def experiment_results(
        context: dg.AssetExecutionContext,
        trials: pl.DataFrame,
        best_trials: pl.DataFrame,
        artifacts: ArtifactStore,
    ) -> dg.Output[pl.DataFrame]:
        """One row per cell with a best trial: outcomes of the trials of its input version, the
        superseded count and the best trial, also exported as CSV."""
        from proj_assets.scaling.report import experiment_results as build_results

        table = build_results(trials, best_trials)
        csv_path = artifacts.write_bytes(
            f"scaling/{profile_key}/experiment_results.csv", table.write_csv().encode()
        )
        context.add_output_metadata(
            {
                "cells": table.height,
                "results": markdown_table(table, limit=50),
                **artifacts.describe(csv_path),
            }
        )
        version = table_version(table, ["budget", "horizon", "n_trials", "best_trial_number"])
        return dg.Output(table, data_version=dg.DataVersion(version))

    return [best_trials, experiment_results]
