"""Scaling domain assets: architecture grid -> HPO trials per (budget, horizon) -> best trials and
the experiment-results table (seed re-runs and the scaling law: assets_law.py)."""

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, SPLITS, TARGETS
from proj_assets.market.features import FEATURE_NAMES
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.compute_write import (
    HANDOFF_IO_MANAGER,
    Handoff,
    compute_op,
    frame_write_op,
    save_handoff,
)
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse

ARCH_GRID = ["scaling", "design", "arch_grid"]
TRIALS = ["scaling", "hpo", "trials"]
BEST_TRIALS = ["scaling", "hpo", "best_trials"]
SCALING_CURVE = ["scaling", "report", "scaling_curve"]
EXPERIMENT_RESULTS = ["scaling", "report", "experiment_results"]
N_FEATURES = len(FEATURE_NAMES)
if TYPE_CHECKING:
    from proj_assets.scaling.study import StudyLocation


@dataclass(frozen=True)
class StudyCell:
    """What the trial workers of one run share (handed between ops through the filesystem)."""

    budget: str
    horizon: str
    location: "StudyLocation"
    seed: int
    stale_retried: tuple[int, ...]
    extremes_added: tuple[str, ...]
    space_version: str


def model_sink(artifacts: ArtifactStore, provenance: Provenance, splits: dict, run_id: str):
    """Saves weights content-addressed by (config with seed, data version, code version)."""
    from proj_assets.scaling.model_store import data_version, save_model

    version = {
        "data_version": data_version(splits),
        "git_sha": provenance.record(run_id, None, {})["git_sha"],
        "code_version": provenance.code_version,
    }
    return lambda model, hp, metrics: save_model(
        artifacts, model, {"config": hp, **version}, metrics
    )


def _sampler_seed(seed: int, worker: int) -> int:
    """Each worker's own sampler seed, derived from the partition's."""
    return (seed + 1_000_003 * worker) % 2**31


def _study_settings(settings: ScalingSettings, seed: int, worker: int):
    from proj_assets.scaling.hpo import make_sampler_and_pruner

    return make_sampler_and_pruner(settings, _sampler_seed(seed, worker))


def scaling_assets(
    settings: ScalingSettings,
    cells: dg.PartitionsDefinition,
    profile_key: str,
    root: Path,
    device_tags: dict,
    warehouse: Warehouse,
) -> list[dg.AssetsDefinition]:
    """The grid, trial, best-trial and results assets for `settings`: trials of each `cells`
    partition (budget x horizon) in a study under `root`/optuna/`profile_key`, trained on the
    Celery queue of `device_tags`; `warehouse` holds the gate reviews."""
    study_root = root / "optuna" / profile_key

    @dg.asset(
        key=ARCH_GRID,
        group_name="scaling",
        kinds={"pytorch", "polars", "duckdb"},
        metadata=table_metadata(ARCH_GRID),
        pool=DUCKDB_POOL,
    )
    def arch_grid(
        context: dg.AssetExecutionContext, compute: Compute, provenance: Provenance
    ) -> pl.DataFrame:
        """Every architecture of the search space within tolerance of each budget, with its batch plan."""
        from proj_assets.scaling.arch_grid import (
            enumerate_grid,
            limits_table,
            verify_on_meta,
            with_batch_plans,
        )

        s = settings
        with compute.meter() as meter:
            grid = with_batch_plans(
                enumerate_grid(s.budgets, s.arch, N_FEATURES),
                N_FEATURES,
                max(s.search.context_lengths),
                s.trainer.effective_batch,
                compute.memory_budget_mb,
                s.arch.ffn_mult,
            )
            limits = limits_table(s.budgets, grid, s.arch)
            unfit = limits.filter(pl.col("n_archs_fit_memory") == 0)["budget"].to_list()
            if unfit:  # profile validation already refused budgets with no architecture at all
                raise dg.Failure(
                    f"no architecture of budget(s) {unfit} fits compute.memory_budget_mb="
                    f"{compute.memory_budget_mb} even at one sample per micro-batch; raise it or lower "
                    "scaling.search.context_lengths",
                    metadata={"limits": markdown_table(limits, limit=100)},
                )
            largest = max(s.budgets, key=s.budgets.get)
            mismatches = verify_on_meta(
                grid.filter(pl.col("budget") == largest), N_FEATURES, s.arch.ffn_mult
            )
        if mismatches.height:
            raise dg.Failure(
                "analytic parameter count differs from the model built on the meta device",
                metadata={"mismatches": markdown_table(mismatches)},
            )
        context.add_output_metadata(
            {
                "n_archs": grid.height,
                "limits": markdown_table(limits, limit=100),
                "meta_verified_budget": largest,
                "meta_verified_widths": grid.filter(pl.col("budget") == largest)[
                    "d_model"
                ].n_unique(),
                "infeasible_at_memory_budget": grid.filter(pl.col("micro_batch") == 0).height,
                **meter.metadata(),
            }
        )
        return provenance.stamp(grid, context.run_id, seed=None, params=s.model_dump())

    @dg.op(name="scaling_hpo_trials_prepare", out=dg.Out(io_manager_key=HANDOFF_IO_MANAGER))
    @gated(TRIALS, warehouse)
    def trials_prepare(context: dg.OpExecutionContext, arch_grid: pl.DataFrame) -> StudyCell:
        """Check the gates, open the study, retry trials of dead workers and enqueue the forced
        extremes, once, before the workers start."""
        from proj_assets.scaling.extremes import extreme_architectures
        from proj_assets.scaling.hpo import extreme_trials
        from proj_assets.scaling.search_space import feasible_archs, space_version
        from proj_assets.scaling.study import (
            enqueue_missing_extremes,
            open_study,
            record_space_version,
            recover_stale_trials,
            study_location,
        )

        budget, horizon = (
            context.partition_key.keys_by_dimension[d] for d in ("budget", "horizon")
        )
        location = study_location(settings, study_root, profile_key)
        seed = zlib.crc32(context.partition_key.encode()) % 100_000
        study = open_study(location, budget, horizon, *_study_settings(settings, seed, 0))
        stale = recover_stale_trials(study, location.grace_s)
        grid = feasible_archs(arch_grid.filter(pl.col("budget") == budget))
        version = space_version(grid, settings.search.model_dump())
        changed = record_space_version(study, version)
        added = enqueue_missing_extremes(
            study, extreme_trials(extreme_architectures(grid), settings)
        )
        context.log.info(
            f"study {location.describe(budget, horizon)}: search space {version}"
            f"{' (new: supplemental extremes run after n_trials)' if changed else ''}; {len(stale)} "
            f"trial(s) of dead workers retried; extremes enqueued: {added}; {settings.study_workers} worker(s)"
        )
        return StudyCell(budget, horizon, location, seed, tuple(stale), tuple(added), version)

    def trial_worker(index: int) -> dg.OpDefinition:
        @dg.op(
            name=f"scaling_hpo_trials_worker_{index}",
            out=dg.Out(io_manager_key=HANDOFF_IO_MANAGER),
            tags=device_tags,
        )
        def _worker(
            context: dg.OpExecutionContext,
            cell: StudyCell,
            features: pl.DataFrame,
            targets: pl.DataFrame,
            splits: pl.DataFrame,
            arch_grid: pl.DataFrame,
            compute: Compute,
            artifacts: ArtifactStore,
            provenance: Provenance,
        ) -> dict:
            """Run trials of the shared study until it holds n_trials (no pool: trains for minutes)."""
            from proj_assets.market.panel import split_arrays
            from proj_assets.scaling.graceful import GracefulStop
            from proj_assets.scaling.hpo import (
                CellContext,
                Objective,
                reseed_for_resume,
                run_trials,
            )
            from proj_assets.scaling.study import open_study, worker_lock

            seed = compute.seed_everything(cell.seed, threads=settings.trainer.torch_threads)
            arrays = split_arrays(features, targets, splits, int(cell.horizon.removeprefix("h")))
            cell_splits = {"train": arrays.train, "val": arrays.val, "test": arrays.test}
            cc = CellContext(
                arch_grid.filter(pl.col("budget") == cell.budget),
                cell_splits,
                settings,
                compute.memory_budget_mb,
                compute.torch_device(),
                seed,
                artifacts.path("scaling", "checkpoints", profile_key, "trials"),
                model_sink(artifacts, provenance, cell_splits, context.run_id),
                cell.space_version,
            )
            study = open_study(
                cell.location, cell.budget, cell.horizon, *_study_settings(settings, seed, index)
            )
            reseed_for_resume(study, settings, _sampler_seed(seed, index))
            with (
                compute.meter() as meter,
                GracefulStop() as stop,
                worker_lock(
                    cell.location, cell.budget, cell.horizon, f"{context.run_id}-{index}"
                ) as owner,
            ):
                ran = run_trials(
                    study,
                    Objective(cc, stop, context.log.debug),
                    settings.n_trials,
                    context.log.info,
                    owner=owner,
                    grace_s=cell.location.grace_s,
                )
            return {"ran": ran, **meter.metadata()}

        return _worker

    @compute_op(device_tags, name="scaling_hpo_trials_compute")
    def trials_table(
        context: dg.OpExecutionContext,
        cell: StudyCell,
        workers: list[dict],
        artifacts: ArtifactStore,
        provenance: Provenance,
    ) -> Handoff:
        """One row per trial of the study, handed to the pooled write."""
        from proj_assets.scaling.study import explain_retried_failures, open_study
        from proj_assets.scaling.trial_table import trials_frame

        study = open_study(
            cell.location, cell.budget, cell.horizon, *_study_settings(settings, cell.seed, 0)
        )
        table = explain_retried_failures(
            trials_frame(study, cell.budget, cell.horizon, settings.budgets[cell.budget])
        )
        stamped = provenance.stamp(
            table, context.run_id, seed=cell.seed, params=settings.model_dump()
        )
        ran = [w["ran"] for w in workers]
        return save_handoff(
            context,
            artifacts,
            stamped,
            {
                "study": cell.location.describe(cell.budget, cell.horizon),
                "study_workers": len(ran),
                "trials_run_now": sum(ran),
                "trials_run_per_worker": dg.MetadataValue.json(ran),
                "trials_total": table.height,
                "stale_trials_retried": len(cell.stale_retried),
                "extremes_enqueued": dg.MetadataValue.json(list(cell.extremes_added)),
                "best_val_loss": table["val_loss"].min(),
                "search_space_version": cell.space_version,
                "trials": markdown_table(
                    table.select(
                        "trial_number",
                        "state",
                        "forced_extreme",
                        "d_model",
                        "n_layers",
                        "n_heads",
                        "n_params",
                        "val_loss",
                        "val_roc_auc",
                    ),
                    limit=60,
                ),
                "compute_seconds": round(sum(w["compute_seconds"] for w in workers), 3),
                "compute_device": workers[0]["compute_device"],
                "compute_cost": round(sum(w["compute_cost"] for w in workers), 6),
            },
        )

    trials_write = frame_write_op("scaling_hpo_trials_write")
    workers_ops = [trial_worker(i) for i in range(settings.study_workers)]

    @dg.graph_asset(
        key=TRIALS,
        group_name="scaling",
        partitions_def=cells,
        kinds={"pytorch", "optuna", "duckdb"},
        automation_condition=GATED,
        ins={
            "arch_grid": dg.AssetIn(key=ARCH_GRID),
            "features": dg.AssetIn(key=FEATURES),
            "targets": dg.AssetIn(key=TARGETS),
            "splits": dg.AssetIn(key=SPLITS),
        },
        metadata=table_metadata(TRIALS, partition_expr={"budget": "budget", "horizon": "horizon"}),
    )
    def trials(arch_grid, features, targets, splits):
        """One resumable Optuna study of the transformer for this (budget, horizon), served by
        `scaling.study_workers` trial workers at once: one row per trial."""
        cell = trials_prepare(arch_grid)
        workers = [worker(cell, features, targets, splits, arch_grid) for worker in workers_ops]
        return trials_write(trials_table(cell, workers))

    @dg.asset(
        key=BEST_TRIALS,
        group_name="scaling",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={"trials": dg.AssetIn(key=TRIALS)},
        metadata=table_metadata(BEST_TRIALS),
        automation_condition=GATED,
    )
    @gated(BEST_TRIALS, warehouse)
    def best_trials(context: dg.AssetExecutionContext, trials: pl.DataFrame) -> pl.DataFrame:
        """The completed trial with the lowest validation loss in every (budget, horizon) cell."""
        from proj_assets.scaling.report import best_trials as select_best

        best = select_best(trials)
        context.add_output_metadata({"cells": best.height, "best": markdown_table(best, limit=50)})
        return best

    @dg.asset(
        key=EXPERIMENT_RESULTS,
        group_name="scaling",
        kinds={"polars", "duckdb", "csv"},
        pool=DUCKDB_POOL,
        ins={"trials": dg.AssetIn(key=TRIALS), "best_trials": dg.AssetIn(key=BEST_TRIALS)},
        metadata=table_metadata(EXPERIMENT_RESULTS),
        automation_condition=GATED,
    )
    @gated(EXPERIMENT_RESULTS, warehouse)
    def experiment_results(
        context: dg.AssetExecutionContext,
        trials: pl.DataFrame,
        best_trials: pl.DataFrame,
        artifacts: ArtifactStore,
    ) -> pl.DataFrame:
        """One row per (budget, horizon) cell: trial outcomes and the best trial, also exported as CSV."""
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
        return table

    return [arch_grid, trials, best_trials, experiment_results]
