"""Schedules that backfill what is missing or failed in a partitioned asset, skipping what is
up to date. They ship STOPPED (see docs/runbook.md: `dagster schedule start <name>`)."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from proj_assets.ops.snapshot import partition_states

# (schedule name, job name, asset key, cron): nightly, after the market refresh.
NIGHTLY_BACKFILLS = (
    ("scaling_hpo_nightly_backfill", "scaling_hpo_job", ("scaling", "hpo", "trials"), "0 2 * * *"),
    ("probes_sweep_nightly_backfill", "probes_sweep_job", ("probes", "sweep", "fold_results"), "30 2 * * *"),
)


def missing_or_failed(instance: dg.DagsterInstance, key: dg.AssetKey, pdef: dg.PartitionsDefinition) -> list[str]:
    """Partitions never materialized or whose latest attempt failed; in-progress ones are skipped."""
    all_keys, done, failed, running = partition_states(instance, key, pdef)
    return [k for k in all_keys if (k not in done or k in failed) and k not in running]


def missing_partitions_schedule(name: str, job: UnresolvedAssetJobDefinition, key: dg.AssetKey,
                                cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, job=job, cron_schedule=cron, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Backfill missing or failed partitions of {key.to_user_string()}; skip up-to-date ones.")
    def _schedule(context: dg.ScheduleEvaluationContext):
        todo = missing_or_failed(context.instance, key, job.partitions_def)
        if not todo:
            return dg.SkipReason(f"every partition of {key.to_user_string()} is materialized")
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [dg.RunRequest(run_key=f"{p}@{day}", partition_key=p, tags={"proj/launched_by": name}) for p in todo]

    return _schedule


def nightly_backfills(jobs: list) -> list[dg.ScheduleDefinition]:
    by_name = {j.name: j for j in jobs}
    return [missing_partitions_schedule(name, by_name[job], dg.AssetKey(list(key)), cron)
            for name, job, key, cron in NIGHTLY_BACKFILLS if job in by_name]
