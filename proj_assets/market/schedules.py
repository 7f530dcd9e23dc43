"""Market jobs and schedules: refresh raw OHLCV per ticker (downstream follows by automation)."""

import dagster as dg

from proj_assets.shared.jobs import asset_job


def market_automation(ohlcv: dg.AssetsDefinition) -> tuple[list, list]:
    """(jobs, schedules) of the market domain over its `ohlcv` asset."""
    job = asset_job(
        "market_ohlcv_job",
        [ohlcv],
        "Load raw OHLCV for the chosen ticker partitions (backfill target).",
        partitions_def=ohlcv.partitions_def,
    )

    @dg.schedule(
        job=job,
        cron_schedule="30 22 * * 1-5",
        execution_timezone="America/New_York",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def market_daily_refresh(context: dg.ScheduleEvaluationContext):
        """After the US close on weekdays: one run per ticker. Ships STOPPED: turn it on for the
        research profile (the demo's bundled data never changes)."""
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        for ticker in job.partitions_def.get_partition_keys():
            yield dg.RunRequest(run_key=f"{ticker}-{day}", partition_key=ticker)

    return [job], [market_daily_refresh]
