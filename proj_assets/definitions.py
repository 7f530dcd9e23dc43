"""The code location's only Definitions: every domain, resources, jobs, schedules and sensors."""

import warnings
from pathlib import Path

import dagster as dg

# Per-partition asset checks are a preview feature in 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from proj_assets.market import assets as market_assets
from proj_assets.market import checks as market_checks
from proj_assets.market import schedules as market_schedules
from proj_assets.ops import assets as platform_assets
from proj_assets.ops.executor import executor_for, parallel_executor_for
from proj_assets.ops import checks as platform_checks
from proj_assets.ops import jobs as platform_jobs
from proj_assets.ops import review_job, schedules as platform_schedules, sensors as platform_sensors
from proj_assets.ops.status_note import status_job
from proj_assets.probes import assets as probes_assets
from proj_assets.probes import checks as probes_checks
from proj_assets.profiles import Profile, data_dir, load_profile
from proj_assets.scaling import assets as scaling_assets
from proj_assets.scaling import assets_law as scaling_law_assets
from proj_assets.shared.compute_write import HANDOFF_IO_MANAGER, handoff_io_manager
from proj_assets.scaling import checks as scaling_checks
from proj_assets.sft import assets as sft_assets
from proj_assets.sft import checks as sft_checks
from proj_resources import (ArtifactStore, Compute, MarketSource, Provenance, Warehouse, warehouse_io_manager,
                            warehouse_path)
from proj_resources.models import ModelSource

ASSET_MODULES = [market_assets, scaling_assets, scaling_law_assets, probes_assets, sft_assets, platform_assets]
CHECK_MODULES = [market_checks, scaling_checks, probes_checks, sft_checks, platform_checks]


def build_resources(profile: Profile, root: Path) -> dict:
    """Resources for `profile`, with every output under `root` (warehouse, artifacts)."""
    database = str(warehouse_path(profile.name, root))
    market = profile.market
    return {
        "io_manager": warehouse_io_manager(database),
        HANDOFF_IO_MANAGER: handoff_io_manager(root),
        "warehouse": Warehouse(database=database),
        "artifacts": ArtifactStore(root=str(root / "artifacts")),
        "market_source": MarketSource(kind=market.source, csv_dir=market.csv_dir, start=market.start, end=market.end),
        "compute": Compute(**profile.compute.model_dump()),
        "provenance": Provenance(),
        "probe_model": ModelSource(path=profile.probes.model.resolved_path()),
        "base_model": ModelSource(path=profile.sft.base_model_path, revision=profile.sft.base_model_revision),
    }


def build_definitions(profile: Profile, root: Path) -> dg.Definitions:
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    domain_jobs = platform_jobs.domain_jobs(assets, parallel_executor=parallel_executor_for(profile))
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=[market_schedules.market_ohlcv_job, review_job.gate_review_job, status_job, *domain_jobs],
        schedules=[market_schedules.market_daily_refresh, *platform_schedules.nightly_backfills(domain_jobs)],
        sensors=platform_sensors.platform_sensors(domain_jobs),
        resources=build_resources(profile, root),
        executor=executor_for(),  # embedded: one process per run; Celery workers when PROJ_CLUSTER=1
    )


defs = build_definitions(load_profile(), data_dir())
