"""The model-ready panel: standardised feature rows and one horizon's labels, per split."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from proj_assets.market.targets import target_column

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SplitArrays:
    """Per split a pair (X float32 [n_rows, n_features], y float32 [n_rows]); rows time-ordered."""

    train: Arrays
    val: Arrays
    test: Arrays
    feature_names: list[str]


def split_arrays(
    features: pl.DataFrame, targets: pl.DataFrame, splits: pl.DataFrame, horizon: int
) -> SplitArrays:
    """Join features and targets on date, cut by the split table, standardise with its scaler.

    Rows are kept within each split's [start_date, end_date] and need a known target for
    `horizon`; the embargo between splits is respected because those dates lie outside every split.
    """
    target = target_column(horizon)
    if target not in targets.columns:
        raise ValueError(
            f"targets have no column {target!r} (horizon {horizon}); found {targets.columns}"
        )
    first = splits.row(0, named=True)
    names = list(first["scaler_features"])
    mean = np.asarray(first["scaler_mean"], dtype=np.float64)
    std = np.asarray(first["scaler_std"], dtype=np.float64)
    panel = (
        features.join(targets.select("date", target), on="date", how="inner")
        .drop_nulls(target)
        .sort("date")
    )
    out = {}
    for row in splits.iter_rows(named=True):
        part = panel.filter(pl.col("date").is_between(row["start_date"], row["end_date"]))
        x = ((part.select(names).to_numpy().astype(np.float64) - mean) / std).astype(np.float32)
        out[row["split"]] = (x, part[target].to_numpy().astype(np.float32))
    return SplitArrays(train=out["train"], val=out["val"], test=out["test"], feature_names=names)
