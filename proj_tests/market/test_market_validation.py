"""Row-level OHLCV validation finds exactly the planted rows; the GE suite passes/fails with names."""

from datetime import timedelta

import polars as pl
import pytest
from market_helpers import synthetic_prices

from proj_assets.market.expectations import SUITE_NAME, validate_ohlcv
from proj_assets.market.validation import (
    calendar_gaps,
    date_order_problems,
    nonpositive_prices,
    ohlc_inconsistent,
)


@pytest.fixture
def clean() -> pl.DataFrame:
    return synthetic_prices(n=60).with_columns(pl.lit("SP500").alias("ticker"))


def _set(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    at = pl.int_range(pl.len()) == row
    return df.with_columns(
        pl.when(at).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()
    )


def test_clean_data_has_no_problems(clean):
    assert ohlc_inconsistent(clean).height == 0
    assert nonpositive_prices(clean).height == 0
    assert date_order_problems(clean).height == 0
    assert calendar_gaps(clean, 7).height == 0


def test_ohlc_inconsistent_finds_planted_rows(clean):
    bad = _set(clean, 10, high=float(clean["low"][10]) - 0.5)  # high < low
    bad = _set(
        bad, 30, low=float(clean["close"][30]) + 0.01, high=float(clean["high"][30]) + 1
    )  # low > close
    found = ohlc_inconsistent(bad)
    assert found["row"].to_list() == [10, 30]
    assert found["date"].to_list() == [clean["date"][10], clean["date"][30]]
    assert found.columns == ["row", "date", "open", "high", "low", "close"]


@pytest.mark.parametrize(
    ("column", "value"), [("open", 0.0), ("close", -3.0), ("low", 0.0), ("volume", -1.0)]
)
def test_nonpositive_prices_finds_planted_row(clean, column, value):
    found = nonpositive_prices(_set(clean, 17, **{column: value}))
    assert found["row"].to_list() == [17]
    assert found[column][0] == value


def test_zero_volume_is_allowed(clean):
    assert nonpositive_prices(clean.with_columns(pl.lit(0.0).alias("volume"))).height == 0


def test_duplicate_date_flags_both_rows(clean):
    bad = _set(clean, 21, date=clean["date"][20])
    found = date_order_problems(bad)
    assert found["row"].to_list() == [20, 21]
    assert set(found["problem"]) == {"duplicate date"}


def test_unsorted_date_flags_the_row_out_of_order(clean):
    swapped = pl.concat(
        [clean.slice(0, 40), clean.slice(41, 1), clean.slice(40, 1), clean.slice(42)]
    )
    found = date_order_problems(swapped)
    assert found["row"].to_list() == [41]
    assert found["problem"].to_list() == ["not after previous row"]


def test_calendar_gap_found(clean):
    holed = clean.filter(~pl.int_range(pl.len()).is_between(30, 37))  # 8 business days missing
    gaps = calendar_gaps(holed, 7)
    assert gaps.height == 1
    row = gaps.row(0, named=True)
    assert row["previous_date"] == clean["date"][29] and row["date"] == clean["date"][38]
    assert row["gap_days"] == (clean["date"][38] - clean["date"][29]).days > 7
    # a gap within the limit (a long weekend) is fine
    assert calendar_gaps(clean.filter(pl.int_range(pl.len()) != 30), 7).height == 0
    assert (clean["date"][31] - clean["date"][29]) <= timedelta(days=7)


def test_expectations_pass_on_clean_data(clean):
    success, failures = validate_ohlcv(clean)
    assert success and failures == []


def test_expectations_fail_naming_expectation_and_column(clean):
    bad = _set(clean, 12, close=-5.0)
    bad = _set(bad, 40, date=clean["date"][39])
    success, failures = validate_ohlcv(bad)
    assert not success
    by_name = {(f["expectation"], f["column"]): f for f in failures}
    assert set(by_name) == {
        ("expect_column_values_to_be_between", "close"),
        ("expect_column_values_to_be_unique", "date"),
    }
    assert by_name[("expect_column_values_to_be_between", "close")]["unexpected_count"] == 1
    assert "-5.0" in by_name[("expect_column_values_to_be_between", "close")]["sample"]
    assert SUITE_NAME == "market_raw_ohlcv"


def test_expectations_fail_on_missing_ticker_column(clean):
    success, failures = validate_ohlcv(clean.drop("ticker"))
    assert not success
    assert ("expect_column_to_exist", "ticker") in {
        (f["expectation"], f["column"]) for f in failures
    }
