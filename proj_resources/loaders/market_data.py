"""Loading daily OHLCV: bundled `arch` series, a CSV folder (one file per ticker), or yfinance.

Every source returns the canonical OHLCV frame (`OHLCV_SCHEMA`). Structural problems (a missing
file or column, an unparseable date or number, a missing value) raise `MarketSourceError` naming
the file, line and field. Value problems (non-positive prices, high < low, duplicate or unsorted
dates) pass through unchanged: the blocking asset checks on `market/raw/ohlcv` report them with
the offending rows, so a reviewer sees the data as it arrived.
"""

from pathlib import Path

import polars as pl

OHLCV_SCHEMA = {
    "date": pl.Date,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}
PRICE_COLUMNS = ["open", "high", "low", "close"]
# Tickers the offline `arch` package ships, and the loader for each.
ARCH_SERIES = {"SP500": "sp500", "NASDAQ": "nasdaq", "VIX": "vix"}


class MarketSourceError(ValueError):
    """Input market data cannot be read as OHLCV; the message says where and what was expected."""


def _from_pandas(frame) -> pl.DataFrame:
    out = pl.from_pandas(frame.reset_index())
    return out.rename({c: c.lower().replace(" ", "_") for c in out.columns})


def load_arch(ticker: str) -> pl.DataFrame:
    """One of the real daily series bundled with `arch` (offline). VIX has only a close: open,
    high and low repeat it and volume is 0; its missing closes (holidays) are dropped."""
    if ticker not in ARCH_SERIES:
        raise MarketSourceError(
            f"ticker {ticker!r} is not bundled with arch; available: {sorted(ARCH_SERIES)}"
        )
    import importlib

    module = importlib.import_module(f"arch.data.{ARCH_SERIES[ticker]}")
    df = _from_pandas(module.load())
    if ticker == "VIX":
        df = df.drop_nulls("vix").select(
            "date", *[pl.col("vix").alias(c) for c in PRICE_COLUMNS], pl.lit(0.0).alias("volume")
        )
    return df.select(
        pl.col("date").cast(pl.Date),
        *[pl.col(c).cast(pl.Float64) for c in OHLCV_SCHEMA if c != "date"],
    )


def _first_bad_row(raw: pl.DataFrame, parsed: pl.Series, column: str) -> int | None:
    bad = (
        raw[column].is_null()
        | parsed.is_null()
        | ~parsed.cast(pl.Float64, strict=False).is_finite()
    )
    idx = bad.arg_true()
    return int(idx[0]) if len(idx) else None


def parse_ohlcv_csv(path: Path) -> pl.DataFrame:
    """Strictly parse one CSV (header: date, open, high, low, close, volume; extra columns are
    ignored, names are case-insensitive). Line numbers in errors count the header as line 1."""
    if not path.is_file():
        raise MarketSourceError(f"{path}: file not found (expected one CSV per ticker)")
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise MarketSourceError(f"{path}: not a readable CSV file ({exc})") from exc
    raw = raw.rename({c: c.strip().lower().replace(" ", "_") for c in raw.columns})
    missing = [c for c in OHLCV_SCHEMA if c not in raw.columns]
    if missing:
        raise MarketSourceError(f"{path}: missing column(s) {missing}; found {raw.columns}")
    if raw.height == 0:
        raise MarketSourceError(f"{path}: no data rows")
    columns = {}
    for name, dtype in OHLCV_SCHEMA.items():
        text = raw[name].str.strip_chars()
        parsed = (
            text.str.to_date("%Y-%m-%d", strict=False)
            if dtype == pl.Date
            else text.cast(pl.Float64, strict=False)
        )
        row = _first_bad_row(raw, parsed, name)
        if row is not None:
            expected = (
                "a YYYY-MM-DD date"
                if dtype == pl.Date
                else "a finite number (not empty, NaN or inf)"
            )
            raise MarketSourceError(
                f"{path}: line {row + 2}, field '{name}': got {raw[name][row]!r}, expected {expected}"
            )
        columns[name] = parsed
    return pl.DataFrame(columns)


def load_csv(csv_dir: str, ticker: str) -> pl.DataFrame:
    return parse_ohlcv_csv(Path(csv_dir) / f"{ticker}.csv")


def load_yfinance(ticker: str, start: str | None, end: str | None) -> pl.DataFrame:
    try:
        import yfinance
    except ImportError:
        raise MarketSourceError(
            "source 'yfinance' needs the optional extra: .venv/bin/pip install -e '.[yfinance]'"
        ) from None
    try:
        frame = yfinance.download(
            ticker, start=start, end=end, auto_adjust=False, progress=False, multi_level_index=False
        )
    except Exception as exc:  # yfinance raises many network error types
        raise MarketSourceError(
            f"yfinance could not download {ticker!r} (offline?): {exc}"
        ) from None
    if frame is None or frame.empty:
        raise MarketSourceError(
            f"yfinance returned no rows for {ticker!r} (offline, or an unknown ticker); "
            "use source 'csv' with a csv_dir to work offline"
        )
    df = _from_pandas(frame)
    return df.select(
        pl.col("date").cast(pl.Date),
        *[pl.col(c).cast(pl.Float64) for c in OHLCV_SCHEMA if c != "date"],
    )
