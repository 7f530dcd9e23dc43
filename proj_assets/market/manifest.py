"""Per-ticker manifest of the raw data: source, rows, date range and a content hash."""

import hashlib

import polars as pl

HASHED_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def content_hash(df: pl.DataFrame) -> str:
    """sha256 of the rows' canonical CSV form (sorted by date): equal data, equal hash."""
    canonical = df.select(HASHED_COLUMNS).sort("date").write_csv()
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_manifest(ohlcv: pl.DataFrame, expected_tickers: list[str]) -> pl.DataFrame:
    """One row per expected ticker; a ticker with no rows yet is listed with rows = 0."""
    rows = []
    for ticker in expected_tickers:
        part = ohlcv.filter(pl.col("ticker") == ticker)
        rows.append(
            {
                "ticker": ticker,
                "source": part["source"][0] if part.height else None,
                "rows": part.height,
                "first_date": part["date"].min() if part.height else None,
                "last_date": part["date"].max() if part.height else None,
                "content_sha256": content_hash(part) if part.height else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "ticker": pl.Utf8,
            "source": pl.Utf8,
            "rows": pl.Int64,
            "first_date": pl.Date,
            "last_date": pl.Date,
            "content_sha256": pl.Utf8,
        },
    )
