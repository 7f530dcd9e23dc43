"""Sensors: the probe sweep-spec watcher, declarative automation that respects gates, and the
status-note refresh (`ops.status_note`).

All ship STOPPED (turn on in the UI, Automation tab, or `dagster sensor start <name>`): the
watcher launches sweep runs and the automation sensor launches every eligible asset, which is
what a researcher wants on the research profile but not when opening the demo UI.
"""

import dagster as dg

from proj_assets import partitions
from proj_assets.ops.status_note import status_note_sensor
from proj_assets.ops.sweep_watch import SweepCursor, plan_tick

MANIFEST = dg.AssetKey(["probes", "sweep", "manifest"])
FOLD_RESULTS = dg.AssetKey(["probes", "sweep", "fold_results"])

# Eligible assets are requested only when their deps' blocking checks passed (assets that need it
# carry `all_deps_blocking_checks_passed()` in their own condition), so a failed gate also stops
# automated runs in later ticks.
gated_automation_sensor = dg.AutomationConditionSensorDefinition(
    "gated_automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Declarative automation for every asset (eager + blocking checks passed where declared).")


def _spec_state():
    from proj_assets.probes.sweep_spec import expand, load_spec
    from proj_assets.profiles import load_profile
    from proj_resources.hashing import canonical_hash, sha256_file

    path = load_profile().probes.sweep_spec_path()
    return sha256_file(path)[:16], [c["config_id"] for c in expand(load_spec(path), canonical_hash)]


def sweep_spec_sensor(manifest_job, sweep_job) -> dg.SensorDefinition:
    @dg.sensor(name="probe_sweep_spec_sensor", jobs=[manifest_job, sweep_job], minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="On a new or changed sweep spec: register its configs, refresh the manifest, "
                           "then request every config x fold partition not yet materialized.")
    def _sensor(context: dg.SensorEvaluationContext):
        instance = context.instance
        spec_hash, config_ids = _spec_state()
        latest = instance.fetch_materializations(MANIFEST, limit=1).records
        manifest_id = latest[0].storage_id if latest else None
        materialized = {tuple(k.split("|")) for k in instance.get_materialized_partitions(FOLD_RESULTS)}
        plan = plan_tick(SweepCursor.parse(context.cursor), spec_hash, config_ids,
                         set(instance.get_dynamic_partitions("probe_config")),
                         instance.get_dynamic_partitions("probe_fold"), manifest_id, materialized)
        runs = [dg.RunRequest(run_key=f"manifest@{spec_hash}", job_name=manifest_job.name)] if plan.request_manifest else []
        runs += [dg.RunRequest(run_key=f"{c}|{f}@{spec_hash}", job_name=sweep_job.name,
                               partition_key=dg.MultiPartitionKey({"config": c, "fold": f}))
                 for c, f in plan.partitions]
        adds = [partitions.probe_config_partitions.build_add_request(plan.add_configs)] if plan.add_configs else []
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=adds, cursor=plan.cursor.serialize())

    return _sensor


def platform_sensors(jobs: list) -> list[dg.SensorDefinition]:
    by_name = {j.name: j for j in jobs}
    sensors = [gated_automation_sensor, status_note_sensor]
    if "probes_manifest_job" in by_name and "probes_sweep_job" in by_name:
        sensors.append(sweep_spec_sensor(by_name["probes_manifest_job"], by_name["probes_sweep_job"]))
    return sensors
