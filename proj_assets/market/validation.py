"""Row-level validation of raw OHLCV: each function returns the offending rows (empty = valid).

`row` is the 0-based position of the row as it arrived (for a CSV, file line = row + 2).
"""

import polars as pl

from proj_resources.loaders.market_data import PRICE_COLUMNS


def _numbered(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_row_index("row")


def ohlc_inconsistent(df: pl.DataFrame) -> pl.DataFrame:
    """Rows where high is below low/open/close, or low above open/close."""
    o, h, lo, c = (pl.col(x) for x in PRICE_COLUMNS)
    bad = (h < lo) | (h < o) | (h < c) | (lo > o) | (lo > c)
    return _numbered(df).filter(bad).select("row", "date", *PRICE_COLUMNS)


def nonpositive_prices(df: pl.DataFrame) -> pl.DataFrame:
    """Rows with any price <= 0 or a negative volume."""
    bad = pl.any_horizontal([pl.col(c) <= 0 for c in PRICE_COLUMNS]) | (pl.col("volume") < 0)
    return _numbered(df).filter(bad).select("row", "date", *PRICE_COLUMNS, "volume")


def date_order_problems(df: pl.DataFrame) -> pl.DataFrame:
    """Rows whose date repeats an earlier date or is not after the previous row's date."""
    numbered = _numbered(df).select("row", "date")
    duplicated = numbered["date"].is_duplicated()
    not_increasing = numbered["date"].diff() <= pl.duration(days=0)
    return numbered.with_columns(
        pl.when(duplicated)
        .then(pl.lit("duplicate date"))
        .otherwise(pl.lit("not after previous row"))
        .alias("problem")
    ).filter(duplicated | not_increasing.fill_null(False))


def calendar_gaps(df: pl.DataFrame, max_gap_days: int) -> pl.DataFrame:
    """Consecutive dates more than `max_gap_days` calendar days apart (long weekends are 4)."""
    ordered = df.select("date").unique().sort("date")
    gaps = ordered.with_columns(
        pl.col("date").shift(1).alias("previous_date"),
        (pl.col("date") - pl.col("date").shift(1)).dt.total_days().alias("gap_days"),
    )
    return gaps.filter(pl.col("gap_days") > max_gap_days).select(
        "previous_date", "date", "gap_days"
    )
