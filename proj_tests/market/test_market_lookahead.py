"""No lookahead: features at date t depend only on rows dated <= t, and the check detects a leak."""

import numpy as np
import polars as pl
import pytest
from market_helpers import synthetic_index, synthetic_prices

from proj_assets.market.features import FEATURE_NAMES, compute_features
from proj_assets.market.lookahead import cut_dates, lookahead_mismatches

PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]


def _perturb_after(
    df: pl.DataFrame, cut, columns: list[str], rng: np.random.Generator
) -> pl.DataFrame:
    """Multiply every value dated after `cut` by a random factor in [0.5, 1.5]."""
    later = (df["date"] > cut).to_numpy()
    return df.with_columns(
        pl.Series(
            c,
            np.where(later, df[c].to_numpy() * rng.uniform(0.5, 1.5, df.height), df[c].to_numpy()),
        )
        for c in columns
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cut_row", [63, 66, 72, 78])
def test_features_up_to_t_ignore_later_data(seed, cut_row):
    prices = synthetic_prices(n=100, seed=seed)
    index = synthetic_index(prices, seed=seed + 100)
    cut = prices["date"][cut_row]
    rng = np.random.default_rng(seed)
    changed_prices = _perturb_after(prices, cut, PRICE_COLUMNS, rng)
    changed_index = _perturb_after(index, cut, ["close"], rng)
    assert not changed_prices.equals(prices)  # the perturbation really changed later rows

    before = compute_features(prices, index).filter(pl.col("date") <= cut)
    after = compute_features(changed_prices, changed_index).filter(pl.col("date") <= cut)
    assert before.height == cut_row - 63 + 1
    np.testing.assert_allclose(
        after.select(FEATURE_NAMES).to_numpy(),
        before.select(FEATURE_NAMES).to_numpy(),
        rtol=1e-12,
        atol=0,
    )
    # ...and the rows after the cut do change, so the comparison above can fail
    later_before = compute_features(prices, index).filter(pl.col("date") > cut)
    later_after = compute_features(changed_prices, changed_index).filter(pl.col("date") > cut)
    assert not np.allclose(
        later_before.select(FEATURE_NAMES).to_numpy(), later_after.select(FEATURE_NAMES).to_numpy()
    )


def test_lookahead_mismatches_empty_for_honest_features():
    prices = synthetic_prices(n=120)
    index = synthetic_index(prices)
    stored = compute_features(prices, index)
    cuts = cut_dates(stored["date"])
    assert len(cuts) == 4 and max(cuts) < stored["date"].max()
    assert lookahead_mismatches(prices, index, stored, "realized_vol", cuts).height == 0


@pytest.mark.parametrize("feature", ["ret_1", "sma_gap_20", "vix_level"])
def test_lookahead_mismatches_reports_a_planted_future_leak(feature):
    prices = synthetic_prices(n=120)
    index = synthetic_index(prices)
    honest = compute_features(prices, index)
    leaked = honest.with_columns(pl.col(feature).shift(-1))  # value at t is really t+1's
    cuts = cut_dates(honest["date"])
    bad = lookahead_mismatches(prices, index, leaked, "realized_vol", cuts)
    assert bad.height > 0
    assert set(bad["feature"].to_list()) == {feature}
    assert set(bad["cut"].to_list()) == set(cuts)
    assert bad.columns == ["cut", "date", "feature", "stored", "recomputed"]
    # the recomputed value is the honest one; the stored one is the leaked (next day's) value
    row = bad.row(0, named=True)
    assert row["recomputed"] == pytest.approx(
        honest.filter(pl.col("date") == row["date"])[feature][0]
    )
    assert row["date"] <= row["cut"]
