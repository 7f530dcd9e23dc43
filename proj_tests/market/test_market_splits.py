"""Splits: time order, no overlap, an embargo of max(h) rows, a train-only scaler; the model panel."""

import numpy as np
import polars as pl
import pytest
from market_helpers import synthetic_index, synthetic_prices

from proj_assets.market.features import FEATURE_NAMES, compute_features
from proj_assets.market.panel import split_arrays
from proj_assets.market.splits import build_splits, split_boundaries
from proj_assets.market.targets import compute_targets

HORIZONS = [1, 3, 5]


@pytest.fixture(scope="module")
def panel_inputs() -> tuple[pl.DataFrame, pl.DataFrame]:
    prices = synthetic_prices(n=300, seed=3)
    features = compute_features(prices, synthetic_index(prices))
    targets = compute_targets(prices, HORIZONS, 0.01).join(
        features.select("date"), on="date", how="semi"
    )
    return features, targets


def _labelled_dates(features, targets) -> list:
    return features.join(targets, on="date").drop_nulls().sort("date")["date"].to_list()


def test_splits_are_time_ordered_disjoint_with_embargo(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(features, targets, FEATURE_NAMES, 0.6, 0.2)
    assert table["split"].to_list() == ["train", "val", "test"]
    dates = _labelled_dates(features, targets)
    position = {d: i for i, d in enumerate(dates)}
    rows = list(table.iter_rows(named=True))
    for row in rows:
        assert row["start_date"] <= row["end_date"]
        assert position[row["end_date"]] - position[row["start_date"]] + 1 == row["n_rows"]
        assert row["embargo_rows"] == max(HORIZONS)
    for earlier, later in zip(rows, rows[1:], strict=False):
        # exactly max(h) labelled rows lie between consecutive splits, in no split
        assert position[later["start_date"]] - position[earlier["end_date"]] - 1 == max(HORIZONS)
    assert rows[0]["start_date"] == dates[0] and rows[-1]["end_date"] == dates[-1]
    assert rows[0]["n_rows"] == int(len(dates) * 0.6) and rows[1]["n_rows"] == int(len(dates) * 0.2)
    assert sum(r["n_rows"] for r in rows) + 2 * max(HORIZONS) == len(dates)


def test_embargo_follows_the_longest_horizon(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(
        features, targets.select("date", "target_h1", "target_h3"), FEATURE_NAMES, 0.6, 0.2
    )
    assert table["embargo_rows"].to_list() == [3, 3, 3]


def test_scaler_is_mean_and_std_of_train_rows_only(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(features, targets, FEATURE_NAMES, 0.6, 0.2)
    train = table.row(0, named=True)
    assert train["scaler_features"] == FEATURE_NAMES
    rows = features.filter(pl.col("date").is_between(train["start_date"], train["end_date"]))
    values = rows.select(FEATURE_NAMES).to_numpy()
    assert rows.height == train["n_rows"]
    std = values.std(axis=0)
    np.testing.assert_allclose(train["scaler_mean"], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(train["scaler_std"], np.where(std == 0, 1.0, std), rtol=1e-12)
    # the same scaler on every row of the table
    assert all(r["scaler_mean"] == train["scaler_mean"] for r in table.iter_rows(named=True))


def test_scaler_ignores_val_and_test_rows(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(features, targets, FEATURE_NAMES, 0.6, 0.2)
    train_end = table["end_date"][0]
    later = pl.col("date") > train_end
    changed = features.with_columns(
        [
            pl.when(later).then(pl.col(c) * 7 + 3).otherwise(pl.col(c)).alias(c)
            for c in FEATURE_NAMES
        ]
    )
    again = build_splits(changed, targets, FEATURE_NAMES, 0.6, 0.2)
    assert again["scaler_mean"][0].to_list() == table["scaler_mean"][0].to_list()
    assert again["scaler_std"][0].to_list() == table["scaler_std"][0].to_list()
    # whereas changing a training row moves the scaler
    moved = features.with_columns(
        pl.when(pl.col("date") == train_end)
        .then(pl.col("ret_1") + 1)
        .otherwise(pl.col("ret_1"))
        .alias("ret_1")
    )
    assert (
        build_splits(moved, targets, FEATURE_NAMES, 0.6, 0.2)["scaler_mean"][0][0]
        != table["scaler_mean"][0][0]
    )


def test_too_few_rows_is_a_clear_error(panel_inputs):
    features, targets = panel_inputs
    with pytest.raises(
        ValueError, match=r"split 'val' does not fit: 12 rows are too few .*embargo=5"
    ):
        build_splits(features.head(12), targets, FEATURE_NAMES, 0.6, 0.2)
    with pytest.raises(ValueError, match="split 'test' does not fit: 24 rows"):
        build_splits(features.head(24), targets, FEATURE_NAMES, 0.6, 0.2)
    with pytest.raises(ValueError, match="too few"):
        split_boundaries(pl.Series("date", [], dtype=pl.Date), 0.7, 0.15, 1)


def test_split_arrays_standardised_and_shaped(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(features, targets, FEATURE_NAMES, 0.6, 0.2)
    arrays = split_arrays(features, targets, table, horizon=3)
    assert arrays.feature_names == FEATURE_NAMES
    for name, (x, y) in (("train", arrays.train), ("val", arrays.val), ("test", arrays.test)):
        n = table.filter(pl.col("split") == name)["n_rows"][0]
        assert x.shape == (n, len(FEATURE_NAMES)) and y.shape == (n,)
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert set(np.unique(y)) <= {0.0, 1.0}
    x_train, y_train = arrays.train
    varying = x_train.std(axis=0) > 0
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0)[varying], 1, atol=1e-4)
    # labels line up with the stored targets of the same dates
    train_row = table.row(0, named=True)
    expected = targets.filter(
        pl.col("date").is_between(train_row["start_date"], train_row["end_date"])
    )
    assert y_train.tolist() == expected.sort("date")["target_h3"].cast(pl.Float32).to_list()


def test_split_arrays_unknown_horizon(panel_inputs):
    features, targets = panel_inputs
    table = build_splits(features, targets, FEATURE_NAMES, 0.6, 0.2)
    with pytest.raises(ValueError, match="target_h7"):
        split_arrays(features, targets, table, horizon=7)
