"""The checks on processed market assets fail on bad data, and a failed blocking one stops
targets and splits in the same run and, through the gate, in later runs."""

import dagster as dg
import polars as pl
import pytest
from definitions_helpers import checks_by_name, demo_profile
from market_helpers import failed_checks, materialize, step_failure_messages

from proj_assets.market import assets as market_assets
from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS
from proj_assets.market.checks import market_checks
from proj_assets.market.features import compute_features
from proj_assets.market.targets import compute_targets
from proj_assets.partitions import ticker_partitions

WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR


@pytest.fixture(scope="module")
def check() -> dict[str, dg.AssetChecksDefinition]:
    """The demo profile's market checks by name, called directly on frames."""
    settings = demo_profile().market
    return checks_by_name(market_checks(settings, ticker_partitions(settings.tickers)))


@pytest.fixture(scope="module")
def ohlcv(arch_slice) -> pl.DataFrame:
    return pl.concat([df.with_columns(pl.lit(t).alias("ticker")) for t, df in arch_slice.items()])


@pytest.fixture(scope="module")
def features(arch_slice) -> pl.DataFrame:
    return compute_features(arch_slice["SP500"], arch_slice["VIX"])


@pytest.fixture(scope="module")
def targets(arch_slice, features) -> pl.DataFrame:
    return compute_targets(arch_slice["SP500"], [1, 3, 5], 0.01).join(
        features.select("date"), on="date", how="semi"
    )


def _meta(result: dg.AssetCheckResult) -> dict:
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def test_processed_checks_pass_on_good_data(check, ohlcv, features, targets):
    assert check["features_finite_after_warmup"](features).passed
    assert check["no_lookahead"](features, ohlcv).passed
    assert check["labels_aligned"](targets, ohlcv, features).passed
    assert check["class_balance_reasonable"](targets).passed


def test_features_finite_fails_on_a_nan(check, features):
    bad = features.with_columns(
        pl.when(pl.int_range(pl.len()) == 5)
        .then(float("nan"))
        .otherwise(pl.col("rsi_14"))
        .alias("rsi_14")
    )
    result = check["features_finite_after_warmup"](bad)
    assert not result.passed and result.severity == ERROR
    assert (
        _meta(result)["n_failing"] == 1 and str(bad["date"][5]) in _meta(result)["offending_sample"]
    )


def test_no_lookahead_fails_on_a_leaked_feature(check, features, ohlcv):
    leaked = features.with_columns(
        pl.col("ret_1").shift(-1).fill_null(0.0)
    )  # tomorrow's return today
    result = check["no_lookahead"](leaked, ohlcv)
    assert not result.passed and result.severity == ERROR and _meta(result)["measured"] > 0


def test_labels_aligned_fails_on_shifted_labels(check, targets, ohlcv, features):
    shifted = targets.with_columns(pl.col("target_h1").shift(1))
    result = check["labels_aligned"](shifted, ohlcv, features)
    assert not result.passed and result.severity == ERROR and _meta(result)["n_failing"] > 0


def test_soft_checks_fail_with_warn_severity(check, targets, ohlcv):
    all_negative = targets.with_columns(pl.lit(0, dtype=pl.Int8).alias("target_h1"))
    balance = check["class_balance_reasonable"](all_negative)
    assert not balance.passed and balance.severity == WARN and _meta(balance)["measured"] == 0.0

    sp500 = ohlcv.filter(pl.col("ticker") == "SP500")
    gapped = sp500.filter(~pl.col("date").is_between(pl.date(2015, 3, 2), pl.date(2015, 3, 13)))
    gaps = check["calendar_gaps_small"](gapped)
    assert (
        not gaps.passed
        and gaps.severity == WARN
        and "2015-03-16" in _meta(gaps)["offending_sample"]
    )


def test_nan_feature_blocks_targets_and_splits_now_and_later(
    monkeypatch, market_defs, csv_resources, instance
):
    for ticker in ("SP500", "NASDAQ", "VIX"):
        assert materialize(
            market_defs, csv_resources, instance, [OHLCV], partition_key=ticker
        ).success

    def leaky(*args, **kwargs):  # one non-finite feature value, as a broken formula would give
        table = compute_features(*args, **kwargs)
        return table.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(float("inf"))
            .otherwise(pl.col("vol_5"))
            .alias("vol_5")
        )

    monkeypatch.setattr(market_assets, "compute_features", leaky)
    run = materialize(market_defs, csv_resources, instance, [FEATURES, TARGETS, SPLITS])
    # the stored inf also differs from a clean recomputation, so no_lookahead fails too
    assert not run.success and set(failed_checks(run)) == {
        "features_finite_after_warmup",
        "no_lookahead",
    }
    materialized = {e.asset_key.path[-1] for e in run.get_asset_materialization_events()}
    assert materialized == {"features"}  # targets and splits never started

    later = materialize(market_defs, csv_resources, instance, [TARGETS], checks=False)
    assert not later.success
    assert any(
        "market/processed/features:features_finite_after_warmup" in m
        for m in step_failure_messages(later)
    )
