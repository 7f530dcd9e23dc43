"""Market domain assets: raw OHLCV per ticker -> manifest, 25 features, targets and splits, built
from the market settings they are given."""

from typing import cast

import dagster as dg
import polars as pl

from proj_assets.market.features import FEATURE_NAMES, PROXY_FLAG, compute_features
from proj_assets.market.manifest import build_manifest, content_hash
from proj_assets.market.plots import close_and_target_plot, close_plot
from proj_assets.market.settings import MarketSettings
from proj_assets.market.splits import build_splits
from proj_assets.market.targets import compute_targets
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated, not_gated
from proj_resources import Compute, MarketSource, Provenance, Warehouse
from proj_resources.hashing import canonical_hash

OHLCV = ["market", "raw", "ohlcv"]
MANIFEST = ["market", "raw", "manifest"]
FEATURES = ["market", "processed", "features"]
TARGETS = ["market", "processed", "targets"]
SPLITS = ["market", "processed", "splits"]
# Dagster code versions: "<code>+<hash of the settings the asset reads>". Bump an asset's code
# number when its computation changes; a changed setting (end date, rise threshold) changes the
# hash. Either way the UI shows the asset and everything downstream as Unsynced. With these, and
# ohlcv's data version (the content hash of the rows read), re-running unchanged code on
# unchanged data and settings leaves nothing downstream stale.
CODE = {"ohlcv": "1", "manifest": "1", "features": "1", "targets": "1", "splits": "1"}


def code_versions(settings: MarketSettings) -> dict[str, str]:
    """Asset name -> its code version under `settings`."""
    reads = {
        "ohlcv": ["source", "csv_dir", "start", "end"],
        "manifest": ["tickers"],
        "features": ["target_ticker", "vol_index_ticker", "vol_index_fallback"],
        "targets": ["target_ticker", "horizons", "rise_threshold"],
        "splits": ["splits"],
    }
    values = settings.model_dump()
    return {
        name: f"{CODE[name]}+{canonical_hash({k: values[k] for k in keys}, length=8)}"
        for name, keys in reads.items()
    }


def _date_range(df: pl.DataFrame) -> dict:
    return {
        "rows": df.height,
        "first_date": str(df["date"].min()),
        "last_date": str(df["date"].max()),
    }


def market_assets(
    settings: MarketSettings, tickers: dg.PartitionsDefinition, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """The market assets for `settings`; `warehouse` holds the gate reviews."""
    versions = code_versions(settings)
    used = [
        settings.target_ticker,
        settings.vol_index_ticker,
    ]  # the tickers whose gates features rely on

    @dg.asset(
        key=OHLCV,
        group_name="market",
        partitions_def=tickers,
        kinds={"polars", "duckdb"},
        metadata=table_metadata(OHLCV, partition_expr="ticker"),
        pool=DUCKDB_POOL,
        code_version=versions["ohlcv"],
    )
    def ohlcv(
        context: dg.AssetExecutionContext,
        market_source: MarketSource,
        provenance: Provenance,
        compute: Compute,
    ) -> dg.Output[pl.DataFrame]:
        """Daily OHLCV of one ticker as it arrived from the configured source."""
        ticker = context.partition_key
        with compute.meter() as meter:
            df = market_source.load(ticker)
        context.add_output_metadata(
            {**_date_range(df), "source": market_source.kind, **meter.metadata()}
        )
        stamped = provenance.stamp(
            df, context.run_id, seed=None, params={"source": market_source.kind, "ticker": ticker}
        )
        # The data version is what was read, so a changed CSV (or source) makes downstream stale.
        return dg.Output(stamped, data_version=dg.DataVersion(content_hash(df)))

    @dg.asset(
        key=MANIFEST,
        group_name="market",
        code_version=versions["manifest"],
        kinds={"polars", "duckdb"},
        ins={"ohlcv": dg.AssetIn(key=OHLCV)},
        pool=DUCKDB_POOL,
        metadata={
            **table_metadata(MANIFEST),
            **not_gated("it records what arrived per ticker, bad data included"),
        },
    )
    def manifest(context: dg.AssetExecutionContext, ohlcv: pl.DataFrame) -> pl.DataFrame:
        """Source, rows, date range and content hash per ticker."""
        table = build_manifest(ohlcv, settings.tickers)
        missing = table.filter(pl.col("rows") == 0)["ticker"].to_list()
        context.add_output_metadata(
            {
                "tickers": table.height,
                "missing_tickers": missing,
                "preview": markdown_table(table, limit=50),
            }
        )
        return table

    @dg.asset(
        key=FEATURES,
        group_name="market",
        code_version=versions["features"],
        kinds={"polars", "duckdb"},
        ins={"ohlcv": dg.AssetIn(key=OHLCV)},
        metadata=table_metadata(FEATURES),
        pool=DUCKDB_POOL,
        automation_condition=GATED,
    )
    @gated(FEATURES, warehouse, {tuple(OHLCV): lambda _context: used})
    def features(
        context: dg.AssetExecutionContext,
        ohlcv: pl.DataFrame,
        compute: Compute,
        provenance: Provenance,
    ) -> pl.DataFrame:
        """The 25-feature panel (tier a25) of the target ticker, from data up to each day only."""
        prices = ohlcv.filter(pl.col("ticker") == settings.target_ticker)
        index = ohlcv.filter(pl.col("ticker") == settings.vol_index_ticker)
        with compute.meter() as meter:
            table = compute_features(prices, index, settings.vol_index_fallback)
        context.add_output_metadata(
            {  # the plot first: the UI lists materialization metadata in order
                "target_series": dg.MetadataValue.md(close_plot(prices, settings.target_ticker)),
                **_date_range(table),
                "n_features": len(FEATURE_NAMES),
                "ticker": settings.target_ticker,
                "vol_index_fallback": settings.vol_index_fallback,
                "proxy_rows": int(table[PROXY_FLAG].sum()),
                **meter.metadata(),
            }
        )
        return provenance.stamp(table, context.run_id, seed=None, params=settings.model_dump())

    @dg.asset(
        key=TARGETS,
        group_name="market",
        code_version=versions["targets"],
        kinds={"polars", "duckdb"},
        ins={"ohlcv": dg.AssetIn(key=OHLCV), "features": dg.AssetIn(key=FEATURES)},
        metadata=table_metadata(TARGETS),
        pool=DUCKDB_POOL,
        automation_condition=GATED,
    )
    @gated(TARGETS, warehouse, {tuple(OHLCV): lambda _context: used})
    def targets(
        context: dg.AssetExecutionContext,
        ohlcv: pl.DataFrame,
        features: pl.DataFrame,
        provenance: Provenance,
    ) -> pl.DataFrame:
        """Binary targets target_h{h}: close rises more than the threshold within h days."""
        prices = ohlcv.filter(pl.col("ticker") == settings.target_ticker)
        table = compute_targets(prices, settings.horizons, settings.rise_threshold)
        table = table.join(features.select("date"), on="date", how="semi")
        rates = {
            c: round(float(cast(float, table[c].mean())), 4)
            for c in table.columns
            if c.startswith("target_h")
        }
        context.add_output_metadata(
            {
                "target_plot": dg.MetadataValue.md(
                    close_and_target_plot(prices, table, settings.target_ticker)
                ),
                **_date_range(table),
                "positive_rate": dg.MetadataValue.json(rates),
                "threshold": settings.rise_threshold,
            }
        )
        return provenance.stamp(table, context.run_id, seed=None, params=settings.model_dump())

    @dg.asset(
        key=SPLITS,
        group_name="market",
        code_version=versions["splits"],
        kinds={"polars", "duckdb"},
        ins={"features": dg.AssetIn(key=FEATURES), "targets": dg.AssetIn(key=TARGETS)},
        metadata=table_metadata(SPLITS),
        pool=DUCKDB_POOL,
        automation_condition=GATED,
    )
    @gated(SPLITS, warehouse)
    def splits(
        context: dg.AssetExecutionContext, features: pl.DataFrame, targets: pl.DataFrame
    ) -> pl.DataFrame:
        """Time-ordered train/val/test boundaries with an embargo; scaler fitted on train only."""
        target_cols = [c for c in targets.columns if c.startswith("target_h")]
        table = build_splits(
            features,
            targets.select("date", *target_cols),
            FEATURE_NAMES,
            settings.splits.train,
            settings.splits.val,
        )
        shown = table.select("split", "start_date", "end_date", "n_rows", "embargo_rows")
        context.add_output_metadata({"splits": markdown_table(shown)})
        return table

    return [ohlcv, manifest, features, targets, splits]
