"""Building asset-check results that a reviewer can act on: measured value, threshold, sample rows."""

import dagster as dg
import polars as pl

from proj_assets.shared.markdown import table_markdown

SAMPLE_ROWS = 10


def markdown_table(rows: pl.DataFrame, limit: int = SAMPLE_ROWS) -> dg.MetadataValue:
    """The first `limit` rows as a readable markdown table (`shared.markdown.table_markdown`)."""
    return dg.MetadataValue.md(table_markdown(rows, limit))


def threshold_result(passed: bool, measured: float, threshold: float, description: str,
                     offending: pl.DataFrame | None = None,
                     severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                     **extra) -> dg.AssetCheckResult:
    """A check result whose metadata always carries the measured value, the threshold and
    (when given) how many rows offend and a sample of them."""
    metadata = {"measured": float(measured), "threshold": float(threshold), **extra}
    if offending is not None:
        metadata["n_failing"] = offending.height
        metadata["offending_sample"] = markdown_table(offending)
    return dg.AssetCheckResult(passed=bool(passed), severity=severity, description=description, metadata=metadata)


def offending_rows_result(offending: pl.DataFrame, total: int, what: str,
                          severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                          **extra) -> dg.AssetCheckResult:
    """Pass when no row offends; `what` says what an offending row is (e.g. 'rows with high < low')."""
    n = offending.height
    return threshold_result(
        passed=n == 0, measured=n, threshold=0, offending=offending, severity=severity,
        description=f"{n} of {total} {what}" if n else f"no {what} among {total} rows",
        total_rows=total, **extra,
    )
