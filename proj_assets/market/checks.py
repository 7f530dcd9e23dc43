"""Market asset checks: raw data gates, no-lookahead evidence, label alignment, class balance."""

from typing import cast

import dagster as dg
import polars as pl

from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS
from proj_assets.market.expectations import SUITE_NAME, validate_ohlcv
from proj_assets.market.features import FEATURE_NAMES
from proj_assets.market.lookahead import cut_dates, lookahead_mismatches
from proj_assets.market.proxy_share import (
    proxy_share_by_split,
    proxy_share_problems,
    proxy_share_spread,
)
from proj_assets.market.settings import MarketSettings
from proj_assets.market.targets import target_mismatches
from proj_assets.market.validation import (
    calendar_gaps,
    date_order_problems,
    nonpositive_prices,
    ohlc_inconsistent,
)
from proj_assets.shared.check_results import offending_rows_result, threshold_result

MAX_CALENDAR_GAP_DAYS = 7  # longer than any weekend + holiday; the 2001 closure was 7 days
BALANCE_RANGE = (0.05, 0.95)
WARN = dg.AssetCheckSeverity.WARN
_raw = dg.AssetKey(OHLCV)
# Per-partition check results (a preview feature in Dagster 1.13): each ticker's checks see only
# that ticker's rows, and the gate reads the latest result per ticker.


def market_checks(
    settings: MarketSettings, tickers: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The market checks for `settings`."""

    @dg.asset_check(
        asset=_raw,
        partitions_def=tickers,
        blocking=True,
        description="high >= max(open, close, low) and low <= min(open, close)",
    )
    def ohlc_consistent(ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        return offending_rows_result(
            ohlc_inconsistent(ohlcv), ohlcv.height, "rows with inconsistent OHLC"
        )

    @dg.asset_check(
        asset=_raw,
        partitions_def=tickers,
        blocking=True,
        description="every price > 0 and volume >= 0",
    )
    def prices_positive(ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        return offending_rows_result(
            nonpositive_prices(ohlcv), ohlcv.height, "rows with a price <= 0 or volume < 0"
        )

    @dg.asset_check(
        asset=_raw,
        partitions_def=tickers,
        blocking=True,
        description="dates strictly increasing, no duplicates",
    )
    def dates_unique_and_sorted(ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        return offending_rows_result(
            date_order_problems(ohlcv), ohlcv.height, "rows with duplicate or unsorted dates"
        )

    @dg.asset_check(
        asset=_raw,
        partitions_def=tickers,
        blocking=True,
        description=f"Great Expectations suite '{SUITE_NAME}'",
    )
    def ohlcv_expectations(ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        success, failures = validate_ohlcv(ohlcv)
        offending = pl.DataFrame(
            failures,
            schema={
                "expectation": pl.Utf8,
                "column": pl.Utf8,
                "unexpected_count": pl.Int64,
                "sample": pl.List(pl.Utf8),
            },
        )
        return threshold_result(
            success,
            measured=len(failures),
            threshold=0,
            offending=offending,
            description=f"{len(failures)} failed expectation(s) in suite '{SUITE_NAME}'",
            suite=SUITE_NAME,
            quantity="failed_expectations",
            threshold_name="allowed",
            must_be="at most",
        )

    @dg.asset_check(
        asset=_raw,
        partitions_def=tickers,
        description=f"no gap between trading days longer than {MAX_CALENDAR_GAP_DAYS} days",
    )
    def calendar_gaps_small(ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        gaps = calendar_gaps(ohlcv, MAX_CALENDAR_GAP_DAYS)
        return offending_rows_result(
            gaps, ohlcv.height, f"gaps longer than {MAX_CALENDAR_GAP_DAYS} days", severity=WARN
        )

    @dg.asset_check(
        asset=dg.AssetKey(FEATURES),
        blocking=True,
        description="every feature value finite after warm-up",
    )
    def features_finite_after_warmup(features: pl.DataFrame) -> dg.AssetCheckResult:
        values = features.select("date", *FEATURE_NAMES)
        bad = values.filter(
            pl.any_horizontal([pl.col(c).is_null() | ~pl.col(c).is_finite() for c in FEATURE_NAMES])
        )
        return offending_rows_result(
            bad, features.height, "rows with a null, NaN or infinite feature"
        )

    @dg.asset_check(
        asset=dg.AssetKey(FEATURES),
        blocking=True,
        additional_ins={"ohlcv": dg.AssetIn(key=OHLCV)},
        description="features recomputed on truncated history equal the stored ones",
    )
    def no_lookahead(features: pl.DataFrame, ohlcv: pl.DataFrame) -> dg.AssetCheckResult:
        prices = ohlcv.filter(pl.col("ticker") == settings.target_ticker)
        index = ohlcv.filter(pl.col("ticker") == settings.vol_index_ticker)
        cuts = cut_dates(features["date"])
        bad = lookahead_mismatches(prices, index, features, settings.vol_index_fallback, cuts)
        return offending_rows_result(
            bad,
            features.height * len(FEATURE_NAMES),
            "feature values that change when later data is removed",
            cut_dates=", ".join(str(c) for c in cuts),
        )

    @dg.asset_check(
        asset=dg.AssetKey(TARGETS),
        blocking=True,
        additional_ins={"ohlcv": dg.AssetIn(key=OHLCV), "features": dg.AssetIn(key=FEATURES)},
        description="targets equal recomputation from closes, on exactly the feature dates",
    )
    def labels_aligned(
        targets: pl.DataFrame, ohlcv: pl.DataFrame, features: pl.DataFrame
    ) -> dg.AssetCheckResult:
        prices = ohlcv.filter(pl.col("ticker") == settings.target_ticker)
        bad = target_mismatches(
            prices, targets, features["date"], settings.horizons, settings.rise_threshold
        )
        return offending_rows_result(bad, targets.height, "misaligned or wrong target rows")

    @dg.asset_check(
        asset=dg.AssetKey(TARGETS), description=f"positive rate per horizon within {BALANCE_RANGE}"
    )
    def class_balance_reasonable(targets: pl.DataFrame) -> dg.AssetCheckResult:
        rates = pl.DataFrame(
            [
                {"target": c, "positive_rate": float(cast(float, targets[c].mean()))}
                for c in targets.columns
                if c.startswith("target_h")
            ]
        )
        bad = rates.filter(~pl.col("positive_rate").is_between(*BALANCE_RANGE))
        worst = float(cast(float, rates["positive_rate"].min()))
        return threshold_result(
            bad.height == 0,
            measured=worst,
            threshold=BALANCE_RANGE[0],
            offending=bad,
            severity=WARN,
            description=f"positive rates {dict(rates.iter_rows())}",
            quantity="lowest_positive_rate",
            threshold_name="min_positive_rate",
            must_be="at least",
        )

    @dg.asset_check(
        asset=dg.AssetKey(SPLITS),
        additional_ins={"features": dg.AssetIn(key=FEATURES)},
        description=(
            f"no split more than {settings.proxy_max_share:.0%} volatility-index proxy, shares "
            f"within {settings.proxy_max_spread:.0%} of each other"
        ),
    )
    def vol_index_proxy_share_low_and_even(
        splits: pl.DataFrame, features: pl.DataFrame
    ) -> dg.AssetCheckResult:
        shares = proxy_share_by_split(features, splits)
        problems = proxy_share_problems(shares, settings.proxy_max_share, settings.proxy_max_spread)
        by_split = ", ".join(
            f"{s} {p:.0%}" for s, p in shares.select("split", "proxy_share").rows()
        )
        return threshold_result(
            not problems,
            measured=float(cast(float, shares["proxy_share"].max())),
            threshold=settings.proxy_max_share,
            offending=shares,
            severity=WARN,
            description=f"proxy share per split: {by_split}"
            + (f"; {'; '.join(problems)}" if problems else ""),
            quantity="largest_proxy_share",
            threshold_name="proxy_max_share",
            must_be="at most",
            proxy_share_spread=proxy_share_spread(shares),
            proxy_max_spread=settings.proxy_max_spread,
            **{f"proxy_share_{s}": p for s, p in shares.select("split", "proxy_share").rows()},
        )

    return [
        ohlc_consistent,
        prices_positive,
        dates_unique_and_sorted,
        ohlcv_expectations,
        calendar_gaps_small,
        features_finite_after_warmup,
        no_lookahead,
        labels_aligned,
        class_balance_reasonable,
        vol_index_proxy_share_low_and_even,
    ]
