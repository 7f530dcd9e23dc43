"""The scaling domain's whole surface, built from the profile it is given: the architecture grid,
HPO trials per (budget, horizon) cell, best trials, seed re-runs and the scaling law, their
checks, the HPO job (trial workers in parallel) and its nightly backfill of missing cells."""

from pathlib import Path

import dagster as dg

from proj_assets.cluster_settings import training_queue_tags
from proj_assets.partitions import budget_horizon_partitions
from proj_assets.profiles import Profile
from proj_assets.scaling.assets import TRIALS, scaling_assets
from proj_assets.scaling.assets_grid import arch_grid_asset
from proj_assets.scaling.assets_law import scaling_law_assets
from proj_assets.scaling.assets_results import scaling_result_assets
from proj_assets.scaling.checks import scaling_checks
from proj_assets.shared.executors import parallel_executor_for
from proj_assets.shared.jobs import asset_job, asset_of, nightly_backfill
from proj_resources import Warehouse, warehouse_path


def build_scaling(profile: Profile, root: Path) -> dg.Definitions:
    settings = profile.scaling
    cells = budget_horizon_partitions(settings.budgets, profile.market.horizons)
    tags = training_queue_tags(profile.compute.device)
    warehouse = Warehouse(database=str(warehouse_path(profile.name, root)))
    assets = [
        arch_grid_asset(settings),
        *scaling_assets(settings, cells, profile.name, root, tags, warehouse),
        *scaling_result_assets(settings, profile.name, warehouse),
        *scaling_law_assets(settings, cells, profile.name, tags, warehouse),
    ]
    hpo = asset_job(
        "scaling_hpo_job",
        [asset_of(assets, TRIALS)],
        "HPO cells: one Optuna study per (budget, horizon) partition, its trial workers in parallel; "
        "resumable.",
        partitions_def=cells,
        executor_def=parallel_executor_for(profile.compute.threads),
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=scaling_checks(settings, cells),
        jobs=[hpo],
        schedules=[nightly_backfill("scaling_hpo_nightly_backfill", hpo, "0 2 * * *")],
    )
