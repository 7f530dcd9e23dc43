"""Keeping the status note true: it is rewritten whenever launched work has finished.

`make demo` writes it last (`entrypoints.demo.write_status_note`); in the UI, the
`status_note_sensor` requests `platform_status_job` once no run is queued or in progress and a
run finished since the note was last requested. A backfill is many runs: the note waits until
the last of them is done, so it never counts a partition that is about to land as missing.
The sensor ships STOPPED like every other sensor here (docs/operations.md).
"""

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES, IN_PROGRESS_RUN_STATUSES

from proj_assets.platform.assets import STATUS

STATUS_KEY = dg.AssetKey(STATUS)
STATUS_JOB = "platform_status_job"
RECENT_RUNS = 50  # finished runs read per tick; only the newest one that is not a note run matters

# The note's step only reads the instance: run it in the run's own process (no step subprocess).
status_job = dg.define_asset_job(
    STATUS_JOB,
    selection=dg.AssetSelection.assets(STATUS_KEY),
    executor_def=dg.in_process_executor,
    description="Write the status note (platform/report/status) and check the budget.",
)


def writes_only_the_note(run: dg.DagsterRun) -> bool:
    """A run of the note itself (its job, or the UI materializing only the note) is not work the
    note reports on: it must not trigger another note."""
    return run.job_name == STATUS_JOB or (
        run.asset_selection is not None and set(run.asset_selection) <= {STATUS_KEY}
    )


def refresh_request(
    instance: dg.DagsterInstance, cursor: str | None
) -> dg.RunRequest | dg.SkipReason:
    """A note run keyed by the newest finished run, once nothing else is queued or running."""
    busy = [
        r
        for r in instance.get_runs(
            dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=RECENT_RUNS
        )
        if not writes_only_the_note(r)
    ]
    if busy:
        return dg.SkipReason(f"waiting for {len(busy)} queued or running run(s) to finish")
    finished = instance.get_runs(dg.RunsFilter(statuses=list(FINISHED_STATUSES)), limit=RECENT_RUNS)
    newest = next((r for r in finished if not writes_only_the_note(r)), None)
    if newest is None or newest.run_id == cursor:
        return dg.SkipReason("no run finished since the note was last written")
    return dg.RunRequest(
        run_key=f"status-after-{newest.run_id}", tags={"proj/after_run": newest.run_id}
    )


@dg.sensor(
    name="status_note_sensor",
    job=status_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Rewrite the status note after launched work (a job run or a whole backfill) has finished.",
)
def status_note_sensor(context: dg.SensorEvaluationContext):
    request = refresh_request(context.instance, context.cursor)
    if isinstance(request, dg.SkipReason):
        return request
    return dg.SensorResult(run_requests=[request], cursor=request.tags["proj/after_run"])
