"""Building asset-check results that a reviewer can act on: what was measured, which way it must
lie of which threshold, and a sample of the offending rows."""

import dagster as dg
import polars as pl

from proj_assets.shared.markdown import format_number, round_floats, table_markdown
from proj_assets.shared.metadata import ui_metadata

SAMPLE_ROWS = 10


def markdown_table(rows: pl.DataFrame, limit: int = SAMPLE_ROWS) -> dg.MetadataValue:
    """The first `limit` rows as a readable markdown table (`shared.markdown.table_markdown`)."""
    return dg.MetadataValue.md(table_markdown(rows, limit))


DIRECTIONS = ("below", "above", "at most", "at least")


def derived_direction(passed: bool, measured: float, threshold: float) -> str:
    """Which side of the threshold passes, read from one result: a passing value below it (or a
    failing one above it) means "must be below"; equal passes as "at most" (counts of bad rows)."""
    if measured == threshold:
        return "at most" if passed else "below"
    return "below" if (measured < threshold) == bool(passed) else "above"


def threshold_result(
    passed: bool,
    measured: float,
    threshold: float,
    description: str,
    offending: pl.DataFrame | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    quantity: str = "measured",
    threshold_name: str = "threshold",
    must_be: str | None = None,
    **extra,
) -> dg.AssetCheckResult:
    """A check result whose metadata always carries the measured value and the threshold (4
    significant digits), a `must_be` line naming the quantity, the direction and the threshold
    (e.g. "mcnemar_p below alpha = 0.01"; the direction is derived when not given), and (when
    given) how many rows offend and a sample of them. Every float of `extra` (nested ones too) is
    rounded the same way; floats stay numbers (check metadata draws no per-run chart), and
    `shared.markdown.Markdown` values render as markdown."""
    direction = must_be or derived_direction(passed, measured, threshold)
    if direction not in DIRECTIONS:
        raise ValueError(f"must_be: expected one of {DIRECTIONS}, got {direction!r}")
    metadata = {
        "measured": round_floats(float(measured)),
        "threshold": round_floats(float(threshold)),
        "must_be": f"{quantity} {direction} {threshold_name} = {format_number(float(threshold))}",
        **ui_metadata(round_floats(extra), series=tuple(extra)),
    }
    if offending is not None:
        metadata["n_failing"] = offending.height
        metadata["offending_sample"] = markdown_table(offending)
    return dg.AssetCheckResult(
        passed=bool(passed), severity=severity, description=description, metadata=metadata
    )


def offending_rows_result(
    offending: pl.DataFrame,
    total: int,
    what: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    **extra,
) -> dg.AssetCheckResult:
    """Pass when no row offends; `what` says what an offending row is (e.g. 'rows with high < low')."""
    n = offending.height
    return threshold_result(
        passed=n == 0,
        measured=n,
        threshold=0,
        offending=offending,
        severity=severity,
        description=f"{n} of {total} {what}" if n else f"no {what} among {total} rows",
        quantity="offending_rows",
        threshold_name="allowed",
        must_be="at most",
        total_rows=total,
        **extra,
    )


def range_check_events(
    context: dg.AssetCheckExecutionContext,
    check_name: str,
    by_partition: dict[str, dg.AssetCheckResult],
    overall: dg.AssetCheckResult,
):
    """What a partitioned check `check_name` yields: in a run of one partition its result; in a run
    of a partition range (a multi-run backfill), first one evaluation per partition, each pointing
    at that partition's latest materialization, then `overall` for the run. Dagster 1.13 records a
    range run's check result under no partition and leaves every partition's planned check open,
    so without these a gate downstream would see no result for any of the range's partitions.
    A failing blocking ERROR evaluation still fails the step."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as Target,
    )

    (spec,) = [s for s in context.check_specs if s.name == check_name]
    if context.op_execution_context.has_partition_key_range:
        records = context.instance.fetch_materializations(  # newest first: the first per partition is its latest
            dg.AssetRecordsFilter(asset_key=spec.asset_key, asset_partitions=list(by_partition)),
            limit=len(by_partition),
        ).records
        latest: dict = {}
        for record in records:
            latest.setdefault(record.partition_key, record)
        for partition, result in by_partition.items():
            record = latest.get(partition)
            target = (
                Target(
                    storage_id=record.storage_id,
                    run_id=record.event_log_entry.run_id,
                    timestamp=record.timestamp,
                )
                if record
                else None
            )
            yield dg.AssetCheckEvaluation(
                asset_key=spec.asset_key,
                check_name=check_name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=target,
                severity=result.severity,
                description=result.description,
                blocking=spec.blocking,
                partition=partition,
            )
    yield dg.AssetCheckResult(
        check_name=check_name,
        passed=overall.passed,
        severity=overall.severity,
        description=overall.description,
        metadata=overall.metadata,
    )
