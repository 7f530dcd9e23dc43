"""Jobs and schedules a domain declares over its own asset objects (never retyped key strings).

`asset_job` selects asset definitions, so a job cannot name an asset that does not exist; and
`require_jobs_select_assets` (called by the code location's builder on the merged definitions)
fails the load when a job's selection resolves to no asset, instead of shipping an empty job.
"""

from collections.abc import Sequence

import dagster as dg

from proj_assets.shared.instance_reads import partition_states


def asset_job(
    name: str,
    assets: Sequence[dg.AssetsDefinition] | dg.AssetSelection,
    description: str,
    partitions_def: dg.PartitionsDefinition | None = None,
    executor_def: dg.ExecutorDefinition | None = None,
):
    selection = (
        assets if isinstance(assets, dg.AssetSelection) else dg.AssetSelection.assets(*assets)
    )
    return dg.define_asset_job(
        name,
        selection=selection,
        partitions_def=partitions_def,
        description=description,
        executor_def=executor_def,
    )


def require_jobs_select_assets(defs: dg.Definitions) -> None:
    """Raise when an asset job of `defs` selects no asset."""
    asset_graph = defs.resolve_asset_graph()
    selections = {job.name: getattr(job, "selection", None) for job in defs.jobs or ()}
    empty = [
        name
        for name, selection in selections.items()
        if selection is not None and not selection.resolve(asset_graph)
    ]
    if empty:
        raise ValueError(
            f"job(s) {empty} select no asset of the code location: fix their selection"
        )


def missing_or_failed(
    instance: dg.DagsterInstance, key: dg.AssetKey, pdef: dg.PartitionsDefinition
) -> list[str]:
    """Partitions never materialized or whose latest attempt failed; in-progress ones are skipped."""
    all_keys, done, failed, running = partition_states(instance, key, pdef)
    return [k for k in all_keys if (k not in done or k in failed) and k not in running]


def nightly_backfill(name: str, job, cron: str) -> dg.ScheduleDefinition:
    """A schedule (shipped STOPPED) that backfills the missing or failed partitions of the one
    partitioned asset `job` materializes, skipping up-to-date ones."""
    selection = job.selection
    assert job.partitions_def is not None, f"{job.name} is not partitioned"

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Backfill missing or failed partitions of {job.name}'s asset; skip up-to-date ones.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        (key,) = selection.resolve(context.repository_def.asset_graph)
        todo = missing_or_failed(context.instance, key, job.partitions_def)
        if not todo:
            return dg.SkipReason(f"every partition of {key.to_user_string()} is materialized")
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [
            dg.RunRequest(run_key=f"{p}@{day}", partition_key=p, tags={"proj/launched_by": name})
            for p in todo
        ]

    return _schedule


def asset_of(assets: Sequence[dg.AssetsDefinition], key: list[str]) -> dg.AssetsDefinition:
    """The definition in `assets` that materializes `key`."""
    (found,) = [a for a in assets if dg.AssetKey(key) in a.keys]
    return found
