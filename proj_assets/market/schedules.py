"""Market jobs and schedules: refresh raw OHLCV per ticker (downstream follows by automation)."""

import dagster as dg

from proj_assets.market.assets import OHLCV
from proj_assets.partitions import ticker_partitions

market_ohlcv_job = dg.define_asset_job(
    "market_ohlcv_job", selection=dg.AssetSelection.assets(OHLCV), partitions_def=ticker_partitions,
    description="Load raw OHLCV for the chosen ticker partitions (backfill target).",
)


@dg.schedule(job=market_ohlcv_job, cron_schedule="30 22 * * 1-5", execution_timezone="America/New_York",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def market_daily_refresh(context: dg.ScheduleEvaluationContext):
    """After the US close on weekdays: one run per ticker. Ships STOPPED: turn it on for the
    research profile (the demo's bundled data never changes)."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for ticker in ticker_partitions.get_partition_keys():
        yield dg.RunRequest(run_key=f"{ticker}-{day}", partition_key=ticker)
