"""Scaling domain assets: architecture grid -> HPO trials per (budget, horizon) (best trials and
the experiment-results table: assets_results.py; seed re-runs and the scaling law: assets_law.py).
Every trial row carries the input versions of its study (versions.py); a changed input opens a
new study version, and the stored grid must match the active profile's settings."""

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, SPLITS, TARGETS
from proj_assets.market.features import FEATURE_NAMES
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.versions import (
    TRIALS_CODE_VERSION,
    StaleGrid,
    require_current_grid,
    study_version,
)
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.compute_write import (
    HANDOFF_IO_MANAGER,
    Handoff,
    compute_op,
    frame_write_op,
    save_handoff,
)
from proj_assets.shared.conventions import GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_assets.shared.metadata import ui_metadata
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse

ARCH_GRID = ["scaling", "design", "arch_grid"]
TRIALS = ["scaling", "hpo", "trials"]
BEST_TRIALS = ["scaling", "hpo", "best_trials"]
SCALING_CURVE = ["scaling", "report", "scaling_curve"]
EXPERIMENT_RESULTS = ["scaling", "report", "experiment_results"]
N_FEATURES = len(FEATURE_NAMES)
if TYPE_CHECKING:
    import optuna

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
    inputs: dict[str, str]  # the cell's input versions (versions.cell_inputs): its study version


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


def refuse_stale_grid(arch_grid: pl.DataFrame, settings: ScalingSettings, memory_mb: float) -> None:
    """Fail the step, before anything is written, when the stored grid is not the profile's."""
    try:
        require_current_grid(arch_grid, settings, memory_mb)
    except StaleGrid as exc:
        raise dg.Failure(str(exc)) from exc


def _sampler_seed(seed: int, worker: int) -> int:
    """Each worker's own sampler seed, derived from the partition's."""
    return (seed + 1_000_003 * worker) % 2**31


def _study_settings(
    settings: ScalingSettings, seed: int, worker: int
) -> "tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]":
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
    """The trials asset for `settings`: trials of each `cells` partition (budget x horizon) in a
    study per input version under `root`/optuna/`profile_key`, trained on the Celery queue of
    `device_tags`; `warehouse` holds the gate reviews."""
    study_root = root / "optuna" / profile_key

    @dg.op(name="scaling_hpo_trials_prepare", out=dg.Out(io_manager_key=HANDOFF_IO_MANAGER))
    @gated(TRIALS, warehouse)
    def trials_prepare(
        context: dg.OpExecutionContext,
        arch_grid: pl.DataFrame,
        features: pl.DataFrame,
        targets: pl.DataFrame,
        splits: pl.DataFrame,
        compute: Compute,
    ) -> StudyCell:
        """Check the gates and that the stored grid is the profile's, open the study of the cell's
        current input versions, retry trials of dead workers and enqueue the forced extremes,
        once, before the workers start."""
        from proj_assets.scaling.extremes import extreme_architectures
        from proj_assets.scaling.hpo import extreme_trials
        from proj_assets.scaling.search_space import feasible_archs
        from proj_assets.scaling.study import (
            enqueue_missing_extremes,
            open_study,
            recover_stale_trials,
            study_location,
        )
        from proj_assets.scaling.versions import inputs_by_cell, study_version

        # the cells partitions are multi-partitions: the key is a MultiPartitionKey (a str)
        keys = cast(dg.MultiPartitionKey, context.partition_key).keys_by_dimension
        budget, horizon = (keys[d] for d in ("budget", "horizon"))
        refuse_stale_grid(arch_grid, settings, compute.memory_budget_mb)
        inputs = inputs_by_cell(
            [(budget, horizon)], arch_grid, settings, (features, targets, splits)
        )[(budget, horizon)]
        location = study_location(settings, study_root, profile_key)
        seed = zlib.crc32(context.partition_key.encode()) % 100_000
        study = open_study(location, budget, horizon, *_study_settings(settings, seed, 0), inputs)
        versions = location.cell_study_names(budget, horizon)
        stale = recover_stale_trials(study, location.grace_s)
        grid = feasible_archs(arch_grid.filter(pl.col("budget") == budget))
        added = enqueue_missing_extremes(
            study, extreme_trials(extreme_architectures(grid), settings)
        )
        context.log.info(
            f"study {location.describe(budget, horizon)}: version {study_version(inputs)} "
            f"({len(versions) - 1} earlier version(s) kept as history); {len(stale)} "
            f"trial(s) of dead workers retried; extremes enqueued: {added}; {settings.study_workers} worker(s)"
        )
        return StudyCell(budget, horizon, location, seed, tuple(stale), tuple(added), inputs)

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
            from proj_assets.scaling.graceful import GracefulStop
            from proj_assets.scaling.hpo import (
                CellContext,
                Objective,
                reseed_for_resume,
                run_trials,
            )
            from proj_assets.scaling.study import open_study, worker_lock
            from proj_assets.scaling.versions import cell_arrays

            seed = compute.seed_everything(cell.seed, threads=settings.trainer.torch_threads)
            cell_splits = cell_arrays(features, targets, splits, cell.horizon)
            cc = CellContext(
                arch_grid.filter(pl.col("budget") == cell.budget),
                cell_splits,
                settings,
                compute.memory_budget_mb,
                compute.torch_device(),
                seed,
                artifacts.path("scaling", "checkpoints", profile_key, "trials"),
                model_sink(artifacts, provenance, cell_splits, context.run_id),
                cell.inputs,
                context.run_id,
            )
            study = open_study(
                cell.location,
                cell.budget,
                cell.horizon,
                *_study_settings(settings, seed, index),
                cell.inputs,
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
        """One row per trial of every study version of the cell (the current one's and the
        superseded history), handed to the pooled write."""
        from proj_assets.scaling.trial_table import cell_trials_frame, explain_retried_failures
        from proj_resources.fingerprints import current_rows, staleness, table_version

        table = explain_retried_failures(
            cell_trials_frame(
                cell.location, cell.budget, cell.horizon, settings.budgets[cell.budget]
            )
        )
        stamped = provenance.stamp(
            table, context.run_id, seed=cell.seed, params=settings.model_dump()
        )
        current = current_rows(table, cell.inputs)
        ran = [w["ran"] for w in workers]
        return save_handoff(
            context,
            artifacts,
            stamped,
            ui_metadata(
                {
                    "study": cell.location.describe(cell.budget, cell.horizon),
                    "study_version": study_version(cell.inputs),
                    "input_versions": dg.MetadataValue.json(cell.inputs),
                    "staleness": dg.MetadataValue.json(staleness(table, cell.inputs)),
                    "study_workers": len(ran),
                    "trials_run_now": sum(ran),
                    "trials_run_per_worker": dg.MetadataValue.json(ran),
                    "trials_total": current.height,
                    "stale_trials_retried": len(cell.stale_retried),
                    "extremes_enqueued": dg.MetadataValue.json(list(cell.extremes_added)),
                    "best_val_loss": current["val_loss"].min(),
                    "trials": markdown_table(
                        current.select(
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
                }
            ),
            data_version=table_version(current, ["trial_number", "state", "objective"]),
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
        code_version=TRIALS_CODE_VERSION,
    )
    def trials(arch_grid, features, targets, splits):
        """One resumable Optuna study of the transformer for this (budget, horizon), served by
        `scaling.study_workers` trial workers at once: one row per trial."""
        cell = trials_prepare(arch_grid, features, targets, splits)
        workers = [worker(cell, features, targets, splits, arch_grid) for worker in workers_ops]
        return trials_write(trials_table(cell, workers))

    return [trials]
