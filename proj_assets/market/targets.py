"""Binary targets: does the close rise more than `threshold` within the next h trading days?"""

import polars as pl


def target_column(h: int) -> str:
    return f"target_h{h}"


def compute_targets(prices: pl.DataFrame, horizons: list[int], threshold: float) -> pl.DataFrame:
    """`target_h{h}` = 1 if max(close[t+1 .. t+h]) / close[t] - 1 > threshold, else 0.

    The last h rows have no complete future window and are null (never guessed). Input: date,
    close (one ticker). Output: date and one Int8 column per horizon, sorted by date.
    """
    frame = prices.select("date", "close").sort("date")
    close = pl.col("close")
    columns = []
    for h in horizons:
        future_max = pl.max_horizontal([close.shift(-k) for k in range(1, h + 1)])
        complete = close.shift(-h).is_not_null()
        rise = (future_max / close - 1) > threshold
        columns.append(
            pl.when(complete).then(rise.cast(pl.Int8)).otherwise(None).alias(target_column(h))
        )
    return frame.select("date", *columns)


def target_mismatches(
    prices: pl.DataFrame,
    stored: pl.DataFrame,
    feature_dates: pl.Series,
    horizons: list[int],
    threshold: float,
) -> pl.DataFrame:
    """Rows where the stored targets disagree with targets recomputed from the closes, or whose
    dates differ from the feature dates (a shifted or misaligned label shows up here)."""
    expected = compute_targets(prices, horizons, threshold).join(
        pl.DataFrame({"date": feature_dates}), on="date", how="semi"
    )
    columns = [target_column(h) for h in horizons]
    joined = expected.with_columns(pl.lit(True).alias("_in_expected")).join(
        stored.select("date", *columns).with_columns(pl.lit(True).alias("_in_stored")),
        on="date",
        how="full",
        suffix="_stored",
        coalesce=True,
    )
    bad = (
        pl.col("_in_expected").is_null()
        | pl.col("_in_stored").is_null()
        | pl.any_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_stored")).not_() for c in columns])
    )
    return joined.filter(bad).drop("_in_expected", "_in_stored").sort("date")
