"""The volatility-index proxy check on the splits: it warns when the index starts after the
training split (train all proxy, test all real) and passes when the index covers every day."""

import dagster as dg
import polars as pl
import pytest
from definitions_helpers import checks_by_name, demo_profile
from market_helpers import synthetic_prices

from proj_assets.market.checks import market_checks
from proj_assets.market.features import compute_features
from proj_assets.market.proxy_share import proxy_share_by_split, proxy_share_problems
from proj_assets.market.splits import build_splits
from proj_assets.market.targets import compute_targets
from proj_assets.partitions import ticker_partitions

N_ROWS = 600
CHECK = "vol_index_proxy_share_low_and_even"


@pytest.fixture(scope="module")
def check():
    settings = demo_profile().market
    return checks_by_name(market_checks(settings, ticker_partitions(settings.tickers)))[CHECK]


def _features_and_splits(index_start_row: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and splits of a synthetic series whose volatility index starts at that row."""
    prices = synthetic_prices(N_ROWS)
    index = prices.slice(index_start_row).select("date", pl.lit(20.0).alias("close"))
    features = compute_features(prices, index)
    targets = compute_targets(prices, [1, 5], 0.01)
    splits = build_splits(features, targets, ["vix_level"], 0.7, 0.15)
    return features, splits


def _meta(result: dg.AssetCheckResult) -> dict:
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def test_index_starting_after_the_train_split_warns(check):
    features, splits = _features_and_splits(
        index_start_row=480
    )  # train ends near row 435, val 440..520
    shares = dict(proxy_share_by_split(features, splits).select("split", "proxy_share").rows())
    assert shares["train"] == 1.0 and shares["test"] == 0.0 and 0 < shares["val"] < 1

    result = check(splits, features)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    meta = _meta(result)
    assert meta["proxy_share_train"] == 1.0 and meta["proxy_share_test"] == 0.0
    assert meta["measured"] == 1.0 and meta["threshold"] == 0.5
    assert meta["proxy_share_spread"] == 1.0
    assert "split 'train' is 100% proxy" in result.description
    assert "differs by 100% across splits" in result.description


def test_full_index_coverage_passes(check):
    features, splits = _features_and_splits(index_start_row=0)
    assert features["vix_is_proxy"].sum() == 0
    result = check(splits, features)
    assert result.passed
    assert _meta(result)["proxy_share_spread"] == 0.0


def test_uneven_shares_warn_even_when_no_split_is_mostly_proxy():
    shares = pl.DataFrame({"split": ["train", "val", "test"], "proxy_share": [0.4, 0.1, 0.0]})
    assert proxy_share_problems(shares, max_share=0.5, max_spread=0.2) == [
        "proxy share differs by 40% across splits (more than 20%)"
    ]
    assert proxy_share_problems(shares, max_share=0.5, max_spread=0.5) == []
