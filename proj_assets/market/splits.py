"""Time-ordered train/val/test splits with an embargo, and a scaler fitted on train only.

Targets look h days ahead, so the last h rows of a split would see prices of the next split: an
embargo of max(h) rows between consecutive splits keeps every label inside its own split.
"""

import numpy as np
import polars as pl

SPLIT_NAMES = ("train", "val", "test")


def split_boundaries(dates: pl.Series, train: float, val: float, embargo: int) -> pl.DataFrame:
    """Contiguous, time-ordered splits over `dates` (sorted, the rows with every target known).

    One row per split: split, start_date, end_date, n_rows, and the embargo used.
    """
    n = dates.len()
    n_train = int(n * train)
    n_val = int(n * val)
    bounds = {
        "train": (0, n_train),
        "val": (n_train + embargo, n_train + embargo + n_val),
        "test": (n_train + 2 * embargo + n_val, n),
    }
    rows = []
    for name in SPLIT_NAMES:
        lo, hi = bounds[name]
        if hi - lo < 1 or hi > n:
            raise ValueError(
                f"split {name!r} does not fit: {n} rows are too few for fractions "
                f"train={train}, val={val} and embargo={embargo}"
            )
        rows.append(
            {"split": name, "start_date": dates[lo], "end_date": dates[hi - 1], "n_rows": hi - lo}
        )
    return pl.DataFrame(rows).with_columns(pl.lit(embargo).alias("embargo_rows"))


def fit_scaler(
    train_features: pl.DataFrame, feature_names: list[str]
) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per feature on the training rows (a constant feature gets std 1)."""
    values = train_features.select(feature_names).to_numpy().astype(np.float64)
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std[std == 0] = 1.0
    return mean.tolist(), std.tolist()


def build_splits(
    features: pl.DataFrame,
    targets: pl.DataFrame,
    feature_names: list[str],
    train: float,
    val: float,
) -> pl.DataFrame:
    """Split table with the train-only scaler attached (list columns, same on every row)."""
    target_cols = [c for c in targets.columns if c.startswith("target_h")]
    embargo = max(int(c.removeprefix("target_h")) for c in target_cols)
    labelled = features.join(targets, on="date", how="inner").drop_nulls(target_cols).sort("date")
    table = split_boundaries(labelled["date"], train, val, embargo)
    train_row = table.row(0, named=True)
    train_rows = labelled.filter(
        pl.col("date").is_between(train_row["start_date"], train_row["end_date"])
    )
    mean, std = fit_scaler(train_rows, feature_names)
    return table.with_columns(
        pl.lit(feature_names, dtype=pl.List(pl.Utf8)).alias("scaler_features"),
        pl.lit(mean, dtype=pl.List(pl.Float64)).alias("scaler_mean"),
        pl.lit(std, dtype=pl.List(pl.Float64)).alias("scaler_std"),
    )
