"""The sweep-spec sensor: a new or changed sweep spec registers its configs, refreshes the
manifest, then requests every config x fold partition not yet materialized. Ships STOPPED."""

from typing import cast

import dagster as dg

from proj_assets.partitions import probe_config_partitions, probe_fold_partitions
from proj_assets.probes.assets import FOLD_RESULTS, MANIFEST
from proj_assets.probes.settings import ProbesSettings
from proj_assets.probes.sweep_watch import SweepCursor, plan_tick


def _spec_state(settings: ProbesSettings) -> tuple[str, list[str]]:
    from proj_assets.probes.sweep_spec import expand, load_spec
    from proj_resources.hashing import canonical_hash, sha256_file

    path = settings.sweep_spec_path()
    return sha256_file(path)[:16], [c["config_id"] for c in expand(load_spec(path), canonical_hash)]


def sweep_spec_sensor(settings: ProbesSettings, manifest_job, sweep_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="probe_sweep_spec_sensor",
        jobs=[manifest_job, sweep_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="On a new or changed sweep spec: register its configs, refresh the manifest, "
        "then request every config x fold partition not yet materialized.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        instance = context.instance
        spec_hash, config_ids = _spec_state(settings)
        latest = instance.fetch_materializations(dg.AssetKey(MANIFEST), limit=1).records
        manifest_id = latest[0].storage_id if latest else None
        materialized = {
            cast(tuple[str, str], tuple(k.split("|")))  # FOLD_RESULTS keys are "config|fold"
            for k in instance.get_materialized_partitions(dg.AssetKey(FOLD_RESULTS))
        }
        config_partitions, fold_partitions = (
            probe_config_partitions.name,
            probe_fold_partitions.name,
        )
        assert config_partitions and fold_partitions  # both are named (proj_assets/partitions.py)
        plan = plan_tick(
            SweepCursor.parse(context.cursor),
            spec_hash,
            config_ids,
            set(instance.get_dynamic_partitions(config_partitions)),
            instance.get_dynamic_partitions(fold_partitions),
            manifest_id,
            materialized,
        )
        runs = (
            [dg.RunRequest(run_key=f"manifest@{spec_hash}", job_name=manifest_job.name)]
            if plan.request_manifest
            else []
        )
        runs += [
            dg.RunRequest(
                run_key=f"{c}|{f}@{spec_hash}",
                job_name=sweep_job.name,
                partition_key=dg.MultiPartitionKey({"config": c, "fold": f}),
            )
            for c, f in plan.partitions
        ]
        adds = (
            [probe_config_partitions.build_add_request(plan.add_configs)]
            if plan.add_configs
            else []
        )
        return dg.SensorResult(
            run_requests=runs, dynamic_partitions_requests=adds, cursor=plan.cursor.serialize()
        )

    return _sensor
