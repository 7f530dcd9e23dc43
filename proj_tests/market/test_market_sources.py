"""Market sources: strict CSV parsing with errors naming file, line and field; yfinance and arch errors."""

import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from proj_resources import MarketSource
from proj_resources.market_sources import (
    OHLCV_SCHEMA,
    MarketSourceError,
    load_arch,
    parse_ohlcv_csv,
)

HEADER = "date,open,high,low,close,volume"
GOOD_ROWS = [
    "2021-01-04,10,11,9.5,10.5,1000",
    "2021-01-05,10.5,11.2,10.1,11,1200",
    "2021-01-06,11,11.5,10.8,11.1,900",
]


def _write(folder: Path, text: str, name: str = "SP500.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_good_csv_parses_to_canonical_schema(tmp_path):
    extra = (
        "Date, Open,High,Low,Close,Volume,Adj Close\n"
        + "\n".join(r + ",1" for r in GOOD_ROWS)
        + "\n"
    )
    df = parse_ohlcv_csv(_write(tmp_path, extra))
    assert dict(df.schema) == OHLCV_SCHEMA
    assert df.height == 3
    assert df.row(1) == (date(2021, 1, 5), 10.5, 11.2, 10.1, 11.0, 1200.0)


def test_market_source_csv_adds_ticker_source_and_limits_dates(tmp_path):
    _write(tmp_path, HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n")
    df = MarketSource(kind="csv", csv_dir=str(tmp_path), start="2021-01-05").load("SP500")
    assert df.columns == [*OHLCV_SCHEMA, "ticker", "source"]
    assert df["date"].cast(pl.Utf8).to_list() == ["2021-01-05", "2021-01-06"]
    assert set(df["ticker"]) == {"SP500"} and set(df["source"]) == {"csv"}


def _rows_with(line_index: int, replacement: str) -> str:
    rows = list(GOOD_ROWS)
    rows[line_index] = replacement
    return HEADER + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("date,open,high,low,close\n2021-01-04,1,2,0.5,1.5\n", r"missing column\(s\) \['volume'\]"),
        (
            _rows_with(1, "2021-13-45,10,11,9,10,100"),
            r"line 3, field 'date': got '2021-13-45', expected a YYYY-MM-DD date",
        ),
        (_rows_with(2, "06/01/2021,10,11,9,10,100"), r"line 4, field 'date': got '06/01/2021'"),
        (
            _rows_with(0, "2021-01-04,10,11,9.5,NaN,1000"),
            r"line 2, field 'close': got 'NaN', expected a finite number",
        ),
        (
            _rows_with(2, "2021-01-06,11,,10.8,11.1,900"),
            r"line 4, field 'high': got None, expected a finite number",
        ),
        (
            _rows_with(1, "2021-01-05,10.5,11.2,10.1,11,lots"),
            r"line 3, field 'volume': got 'lots', expected a finite number",
        ),
        (
            _rows_with(1, "2021-01-05,10.5,inf,10.1,11,900"),
            r"line 3, field 'high': got 'inf', expected a finite number",
        ),
        ("", r"not a readable CSV file"),
        (HEADER + "\n", r"no data rows"),
    ],
)
def test_bad_csv_names_file_line_and_field(tmp_path, text, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(MarketSourceError, match=pattern) as err:
        parse_ohlcv_csv(path)
    assert str(path) in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(MarketSourceError, match=r"NASDAQ\.csv: file not found"):
        MarketSource(kind="csv", csv_dir=str(tmp_path)).load("NASDAQ")


def test_csv_source_without_folder_is_an_error():
    with pytest.raises(MarketSourceError, match="csv_dir"):
        MarketSource(kind="csv").load("SP500")


def test_unknown_source_kind():
    with pytest.raises(MarketSourceError, match="unknown market source kind 'ftp'"):
        MarketSource(kind="ftp").load("SP500")


def test_yfinance_absent_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "yfinance", None)  # makes `import yfinance` raise ImportError
    with pytest.raises(MarketSourceError, match=r"optional extra.*\.\[yfinance\]"):
        MarketSource(kind="yfinance").load("SPY")


def test_unknown_arch_ticker_lists_the_available_ones():
    with pytest.raises(
        MarketSourceError,
        match=r"'SPY' is not bundled with arch; available: \['NASDAQ', 'SP500', 'VIX'\]",
    ):
        MarketSource(kind="arch").load("SPY")


def test_arch_vix_has_close_only_and_no_missing_values():
    vix = load_arch("VIX")
    assert dict(vix.schema) == OHLCV_SCHEMA
    assert vix.null_count().sum_horizontal()[0] == 0
    assert (vix["open"] == vix["close"]).all() and (vix["volume"] == 0).all()
