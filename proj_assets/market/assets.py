"""Market domain assets: raw OHLCV per ticker -> manifest, 25 features, targets and splits."""

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import DUCKDB_POOL, GATED, check_key, table_metadata
from proj_assets.market.features import FEATURE_NAMES, PROXY_FLAG, compute_features
from proj_assets.market.manifest import build_manifest
from proj_assets.market.plots import close_and_target_plot, close_plot
from proj_assets.market.splits import build_splits
from proj_assets.market.targets import compute_targets
from proj_assets.partitions import ticker_partitions
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.gates import require_gates_passed
from proj_assets.profiles import load_profile
from proj_resources import Compute, MarketSource, Provenance

OHLCV = ["market", "raw", "ohlcv"]
MANIFEST = ["market", "raw", "manifest"]
FEATURES = ["market", "processed", "features"]
TARGETS = ["market", "processed", "targets"]
SPLITS = ["market", "processed", "splits"]
OHLCV_GATES = ["ohlc_consistent", "prices_positive", "dates_unique_and_sorted", "ohlcv_expectations"]
_settings = load_profile().market


def _date_range(df: pl.DataFrame) -> dict:
    return {"rows": df.height, "first_date": str(df["date"].min()), "last_date": str(df["date"].max())}


@dg.asset(key=OHLCV, group_name="market", partitions_def=ticker_partitions, kinds={"polars", "duckdb"},
          metadata=table_metadata(OHLCV, partition_expr="ticker"), pool=DUCKDB_POOL)
def ohlcv(context: dg.AssetExecutionContext, market_source: MarketSource, provenance: Provenance,
          compute: Compute) -> pl.DataFrame:
    """Daily OHLCV of one ticker as it arrived from the configured source."""
    ticker = context.partition_key
    with compute.meter() as meter:
        df = market_source.load(ticker)
    context.add_output_metadata({**_date_range(df), "source": market_source.kind, **meter.metadata()})
    return provenance.stamp(df, context.run_id, seed=None, params={"source": market_source.kind, "ticker": ticker})


@dg.asset(key=MANIFEST, group_name="market", kinds={"polars", "duckdb"},
          ins={"ohlcv": dg.AssetIn(key=OHLCV)}, metadata=table_metadata(MANIFEST), pool=DUCKDB_POOL)
def manifest(context: dg.AssetExecutionContext, ohlcv: pl.DataFrame) -> pl.DataFrame:
    """Source, rows, date range and content hash per ticker."""
    table = build_manifest(ohlcv, _settings.tickers)
    missing = table.filter(pl.col("rows") == 0)["ticker"].to_list()
    context.add_output_metadata({"tickers": table.height, "missing_tickers": missing,
                                 "preview": markdown_table(table, limit=50)})
    return table


@dg.asset(key=FEATURES, group_name="market", kinds={"polars", "duckdb"}, ins={"ohlcv": dg.AssetIn(key=OHLCV)},
          metadata=table_metadata(FEATURES), pool=DUCKDB_POOL, automation_condition=GATED)
def features(context: dg.AssetExecutionContext, ohlcv: pl.DataFrame, compute: Compute,
             provenance: Provenance) -> pl.DataFrame:
    """The 25-feature panel (tier a25) of the target ticker, from data up to each day only."""
    used = [_settings.target_ticker, _settings.vol_index_ticker]
    require_gates_passed(context, [check_key(OHLCV, name) for name in OHLCV_GATES], partitions=used)
    prices = ohlcv.filter(pl.col("ticker") == _settings.target_ticker)
    index = ohlcv.filter(pl.col("ticker") == _settings.vol_index_ticker)
    with compute.meter() as meter:
        table = compute_features(prices, index, _settings.vol_index_fallback)
    context.add_output_metadata({  # the plot first: the UI lists materialization metadata in order
        "target_series": dg.MetadataValue.md(close_plot(prices, _settings.target_ticker)),
        **_date_range(table), "n_features": len(FEATURE_NAMES), "ticker": _settings.target_ticker,
        "vol_index_fallback": _settings.vol_index_fallback, "proxy_rows": int(table[PROXY_FLAG].sum()),
        **meter.metadata(),
    })
    return provenance.stamp(table, context.run_id, seed=None, params=_settings.model_dump())


@dg.asset(key=TARGETS, group_name="market", kinds={"polars", "duckdb"},
          ins={"ohlcv": dg.AssetIn(key=OHLCV), "features": dg.AssetIn(key=FEATURES)},
          metadata=table_metadata(TARGETS), pool=DUCKDB_POOL, automation_condition=GATED)
def targets(context: dg.AssetExecutionContext, ohlcv: pl.DataFrame, features: pl.DataFrame,
            provenance: Provenance) -> pl.DataFrame:
    """Binary targets target_h{h}: close rises more than the threshold within h days."""
    require_gates_passed(context, [check_key(FEATURES, "features_finite_after_warmup"),
                                   check_key(FEATURES, "no_lookahead")])
    prices = ohlcv.filter(pl.col("ticker") == _settings.target_ticker)
    table = compute_targets(prices, _settings.horizons, _settings.rise_threshold)
    table = table.join(features.select("date"), on="date", how="semi")
    rates = {c: round(float(table[c].mean()), 4) for c in table.columns if c.startswith("target_h")}
    context.add_output_metadata({"target_plot": dg.MetadataValue.md(close_and_target_plot(prices, table, _settings.target_ticker)),
                                 **_date_range(table), "positive_rate": dg.MetadataValue.json(rates),
                                 "threshold": _settings.rise_threshold})
    return provenance.stamp(table, context.run_id, seed=None, params=_settings.model_dump())


@dg.asset(key=SPLITS, group_name="market", kinds={"polars", "duckdb"},
          ins={"features": dg.AssetIn(key=FEATURES), "targets": dg.AssetIn(key=TARGETS)},
          metadata=table_metadata(SPLITS), pool=DUCKDB_POOL, automation_condition=GATED)
def splits(context: dg.AssetExecutionContext, features: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Time-ordered train/val/test boundaries with an embargo; scaler fitted on train only."""
    require_gates_passed(context, [check_key(TARGETS, "labels_aligned")])
    target_cols = [c for c in targets.columns if c.startswith("target_h")]
    table = build_splits(features, targets.select("date", *target_cols), FEATURE_NAMES,
                         _settings.splits.train, _settings.splits.val)
    shown = table.select("split", "start_date", "end_date", "n_rows", "embargo_rows")
    context.add_output_metadata({"splits": markdown_table(shown)})
    return table
