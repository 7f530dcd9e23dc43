"""Evidence that features use no future data: recompute on truncated history and compare."""

import polars as pl

from proj_assets.market.features import FEATURE_NAMES, compute_features

TOLERANCE = 1e-9


def cut_dates(dates: pl.Series, n_cuts: int = 4) -> list:
    """Evenly spaced cut points through the history (never the last date, which proves nothing)."""
    ordered = dates.sort()
    return [ordered[int(len(ordered) * (i + 1) / (n_cuts + 1))] for i in range(n_cuts)]


def lookahead_mismatches(
    prices: pl.DataFrame, vol_index: pl.DataFrame, stored: pl.DataFrame, fallback: str, cuts: list
) -> pl.DataFrame:
    """For each cut date c: features recomputed from rows dated <= c must equal the stored
    features on every date <= c. Returns one row per (cut, date, feature) that differs."""
    problems = []
    for cut in cuts:
        truncated = compute_features(
            prices.filter(pl.col("date") <= cut), vol_index.filter(pl.col("date") <= cut), fallback
        )
        both = truncated.join(stored.select("date", *FEATURE_NAMES), on="date", suffix="_stored")
        for name in FEATURE_NAMES:
            diff = both.filter((pl.col(name) - pl.col(f"{name}_stored")).abs() > TOLERANCE)
            if diff.height:
                problems.append(
                    diff.select(
                        pl.lit(cut).alias("cut"),
                        "date",
                        pl.lit(name).alias("feature"),
                        pl.col(f"{name}_stored").alias("stored"),
                        pl.col(name).alias("recomputed"),
                    )
                )
    if not problems:
        return pl.DataFrame(
            schema={
                "cut": pl.Date,
                "date": pl.Date,
                "feature": pl.Utf8,
                "stored": pl.Float64,
                "recomputed": pl.Float64,
            }
        )
    return pl.concat(problems)
