"""The probes domain's whole surface, built from the profile it is given: corpus, activation
caches, the sweep manifest, fold results per config x fold, aggregates, screening and the
report, their checks, the manifest and sweep jobs, the sweep's nightly backfill, the sweep-spec
sensor and the model the activations come from."""

from pathlib import Path

import dagster as dg

from proj_assets.cluster_settings import training_queue_tags
from proj_assets.partitions import probe_config_fold_partitions
from proj_assets.probes.assets import FOLD_RESULTS, MANIFEST, input_assets
from proj_assets.probes.assets_sources import source_assets
from proj_assets.probes.assets_sweep import sweep_assets
from proj_assets.probes.checks import probes_checks
from proj_assets.probes.sensors import sweep_spec_sensor
from proj_assets.profiles import Profile
from proj_assets.shared.jobs import asset_job, asset_of, nightly_backfill
from proj_resources import Warehouse, warehouse_path
from proj_resources.models import ModelSource


def build_probes(profile: Profile, root: Path) -> dg.Definitions:
    settings = profile.probes
    warehouse = Warehouse(database=str(warehouse_path(profile.name, root)))
    assets = [
        *input_assets(settings, warehouse),
        *sweep_assets(settings, training_queue_tags(profile.compute.device), warehouse),
    ]
    manifest_job = asset_job(
        "probes_manifest_job",
        [asset_of(assets, MANIFEST)],
        "Re-read the sweep spec: configs with stable ids, registers config and fold partitions.",
    )
    sweep_job = asset_job(
        "probes_sweep_job",
        [asset_of(assets, FOLD_RESULTS)],
        "Probe sweep: one run per (config, fold) partition, seeds batched inside.",
        partitions_def=probe_config_fold_partitions,
    )
    return dg.Definitions(
        assets=[*source_assets(settings), *assets],
        asset_checks=probes_checks(settings),
        jobs=[manifest_job, sweep_job],
        schedules=[nightly_backfill("probes_sweep_nightly_backfill", sweep_job, "30 2 * * *")],
        sensors=[sweep_spec_sensor(settings, manifest_job, sweep_job)],
        resources={"probe_model": ModelSource(path=settings.model.resolved_path())},
    )
