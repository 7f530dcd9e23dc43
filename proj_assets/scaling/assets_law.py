"""Scaling-law assets: the best configuration of every cell re-run with k seeds, and the scaling
law fitted to those runs' test loss (and, labelled, their validation loss) with profile
likelihood intervals (curve.py, law_fit.py)."""

import zlib
from typing import cast

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, SPLITS, TARGETS
from proj_assets.scaling import assets as scaling
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.versions import SEED_RUNS_CODE_VERSION
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.compute_write import Handoff, compute_op, frame_write_op, save_handoff
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_assets.shared.metadata import ui_metadata
from proj_assets.shared.plots import figure_markdown, new_figure
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse

SEED_RUNS = ["scaling", "hpo", "seed_runs"]


def scaling_law_assets(
    settings: ScalingSettings,
    cells: dg.PartitionsDefinition,
    profile_key: str,
    device_tags: dict,
    warehouse: Warehouse,
) -> list[dg.AssetsDefinition]:
    """Seed re-runs of each cell's best configuration and the scaling law fitted to them."""

    @compute_op(device_tags, name="scaling_hpo_seed_runs_compute")
    @gated(SEED_RUNS, warehouse)
    def seed_runs_compute(
        context: dg.OpExecutionContext,
        best_trials: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
        artifacts: ArtifactStore,
        compute: Compute,
        provenance: Provenance,
    ) -> Handoff:
        """Train this cell's best configuration with k seeds outside the warehouse pool."""
        from proj_assets.scaling.config_training import CellContext
        from proj_assets.scaling.graceful import GracefulStop
        from proj_assets.scaling.model_store import data_version
        from proj_assets.scaling.seed_runs import run_seeds, seed_run_inputs
        from proj_assets.scaling.versions import (
            cell_arrays,
            stored_inputs,
            trainer_version,
        )
        from proj_resources.fingerprints import table_version

        s = settings
        # the cells partitions are multi-partitions: the key is a MultiPartitionKey (a str)
        keys = cast(dg.MultiPartitionKey, context.partition_key).keys_by_dimension
        budget, horizon = keys["budget"], keys["horizon"]
        best = best_trials.filter((pl.col("budget") == budget) & (pl.col("horizon") == horizon))
        if best.height != 1:
            raise dg.Failure(
                f"no best trial for {budget}/{horizon}: materialize scaling/hpo/best_trials first"
            )
        seed = compute.seed_everything(
            zlib.crc32(f"seed_runs|{context.partition_key}".encode()) % 100_000,
            threads=s.trainer.torch_threads,
        )
        cell_splits = cell_arrays(features, targets, splits, horizon)
        trained = stored_inputs(best.row(0, named=True))
        now = {"data": data_version(cell_splits), "trainer": trainer_version(s)}
        if changed := [k for k, v in now.items() if trained.get(k) != v]:
            raise dg.Failure(
                f"the best trial of {budget}/{horizon} was trained on other inputs ({', '.join(changed)} "
                "changed): re-materialize scaling/hpo/trials for this partition, then "
                "scaling/hpo/best_trials"
            )
        cell = CellContext(
            pl.DataFrame(),
            cell_splits,
            s,
            compute.memory_budget_mb,
            compute.torch_device(),
            seed,
            artifacts.path("scaling", "checkpoints", profile_key, "seed_runs"),
            scaling.model_sink(artifacts, provenance, cell_splits, context.run_id),
        )
        with compute.meter() as meter, GracefulStop() as stop:
            runs = run_seeds(
                best.row(0, named=True),
                cell,
                [seed + i for i in range(s.seed_runs)],
                stop,
                context.log.info,
            )
        inputs = seed_run_inputs(best.row(0, named=True), s)
        stamped = provenance.stamp(
            runs, context.run_id, seed=seed, params=s.model_dump(), inputs=inputs
        )
        return save_handoff(
            context,
            artifacts,
            stamped,
            {
                "seeds": runs["run_seed"].to_list(),
                "val_loss_mean": runs["val_loss"].mean(),
                "val_loss_std": runs["val_loss"].std(),
                "best_trial_val_loss": best["val_loss"][0],
                "runs": markdown_table(runs.drop("model_path")),
                "input_versions": dg.MetadataValue.json(inputs),
                **meter.metadata(),
            },
            data_version=table_version(stamped, ["run_seed", "val_loss"]),
        )

    seed_runs_write = frame_write_op("scaling_hpo_seed_runs_write")

    @dg.graph_asset(
        key=SEED_RUNS,
        group_name="scaling",
        partitions_def=cells,
        kinds={"pytorch", "safetensors", "duckdb"},
        automation_condition=GATED,
        ins={
            "best_trials": dg.AssetIn(key=scaling.BEST_TRIALS),
            "features": dg.AssetIn(key=FEATURES),
            "targets": dg.AssetIn(key=TARGETS),
            "splits": dg.AssetIn(key=SPLITS),
        },
        metadata=table_metadata(
            SEED_RUNS, partition_expr={"budget": "budget", "horizon": "horizon"}
        ),
        code_version=SEED_RUNS_CODE_VERSION,
    )
    def seed_runs(best_trials, features, targets, splits):
        """The best configuration of this (budget, horizon) trained with k seeds; weights saved as safetensors."""
        return seed_runs_write(seed_runs_compute(best_trials, features, targets, splits))

    @dg.asset(
        key=scaling.SCALING_CURVE,
        group_name="scaling",
        kinds={"scipy", "polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={
            "seed_runs": dg.AssetIn(key=SEED_RUNS),
            "best_trials": dg.AssetIn(key=scaling.BEST_TRIALS),
        },
        metadata=table_metadata(scaling.SCALING_CURVE),
        automation_condition=GATED,
    )
    @gated(scaling.SCALING_CURVE, warehouse)
    def scaling_curve(
        context: dg.AssetExecutionContext, seed_runs: pl.DataFrame, best_trials: pl.DataFrame
    ) -> pl.DataFrame:
        """loss = L_inf + a*N^-b per horizon on the current seed runs' test loss (and, labelled, their validation loss), profile-likelihood CIs."""
        from proj_assets.scaling.curve import fit_per_horizon, identification, plot_curves
        from proj_assets.scaling.seed_runs import current_seed_runs

        seed_runs, seed_runs_staleness = current_seed_runs(seed_runs, best_trials, settings)
        fits, bands = fit_per_horizon(seed_runs, best_trials)
        fig, ax = new_figure()
        plot_curves(seed_runs, fits, bands, ax)
        context.add_output_metadata(
            ui_metadata(
                {
                    "plot": figure_markdown(fig, "scaling law"),
                    "fits": markdown_table(fits.drop("not_identified")),
                    "not_identified": identification(fits),
                    "time_limited_best_trials": fits["time_limited_budgets"]
                    .drop_nulls()
                    .unique()
                    .to_list(),
                    "seed_runs_staleness": dg.MetadataValue.json(seed_runs_staleness),
                }
            )
        )
        return fits

    return [seed_runs, scaling_curve]
