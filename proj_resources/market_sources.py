"""The market data source resource: which loader (`proj_resources.loaders.market_data`) to use,
and the date window. The names re-exported here keep `proj_resources.market_sources` usable by
shell code and tests that read the canonical schema or the loaders' error type."""

import dagster as dg
import polars as pl

from proj_resources.loaders.market_data import (
    ARCH_SERIES,
    OHLCV_SCHEMA,
    PRICE_COLUMNS,
    MarketSourceError,
    load_arch,
    load_csv,
    load_yfinance,
    parse_ohlcv_csv,
)

__all__ = [
    "ARCH_SERIES",
    "OHLCV_SCHEMA",
    "PRICE_COLUMNS",
    "MarketSource",
    "MarketSourceError",
    "load_arch",
    "load_csv",
    "load_yfinance",
    "parse_ohlcv_csv",
]


class MarketSource(dg.ConfigurableResource):
    """Where daily OHLCV comes from: kind `arch` (bundled), `csv` (csv_dir/<ticker>.csv) or `yfinance`."""

    kind: str = "arch"
    csv_dir: str | None = None
    start: str | None = None
    end: str | None = None

    def load(self, ticker: str) -> pl.DataFrame:
        """Canonical OHLCV for `ticker`, limited to [start, end], with `ticker` and `source` columns."""
        if self.kind == "arch":
            df = load_arch(ticker)
        elif self.kind == "csv":
            if not self.csv_dir:
                raise MarketSourceError("source 'csv' needs csv_dir")
            df = load_csv(self.csv_dir, ticker)
        elif self.kind == "yfinance":
            df = load_yfinance(ticker, self.start, self.end)
        else:
            raise MarketSourceError(
                f"unknown market source kind {self.kind!r} (arch, csv or yfinance)"
            )
        if self.start:
            df = df.filter(pl.col("date") >= pl.lit(self.start).str.to_date())
        if self.end:
            df = df.filter(pl.col("date") <= pl.lit(self.end).str.to_date())
        return df.with_columns(pl.lit(ticker).alias("ticker"), pl.lit(self.kind).alias("source"))
