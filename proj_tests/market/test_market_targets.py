"""Targets: a hand-worked example, null tails, and detection of misaligned labels."""

from datetime import date, timedelta

import polars as pl
import pytest
from market_helpers import synthetic_prices

from proj_assets.market.targets import compute_targets, target_column, target_mismatches

THRESHOLD = 0.01


@pytest.fixture
def closes() -> pl.DataFrame:
    values = [100.0, 100.5, 101.2, 99.0, 99.5, 101.0, 100.0, 100.0]
    return pl.DataFrame(
        {
            "date": [date(2021, 3, 1) + timedelta(days=i) for i in range(len(values))],
            "close": values,
        }
    )


def test_hand_example_h1_h3(closes):
    table = compute_targets(closes, [1, 3], THRESHOLD)
    assert table.columns == ["date", "target_h1", "target_h3"]
    # h=1: next close / close - 1 > 1%?  100->100.5 no, 100.5->101.2 (0.70%) no, 101.2->99 no,
    #      99->99.5 no, 99.5->101 (1.51%) yes, 101->100 no, 100->100 no, last: unknown
    assert table["target_h1"].to_list() == [0, 0, 0, 0, 1, 0, 0, None]
    # h=3: max of the next three closes / close - 1 > 1%?
    #   100 -> max(100.5, 101.2, 99) = 101.2 (1.2%) yes;  100.5 -> 101.2 (0.70%) no
    #   101.2 -> 101 no;  99 -> 101 (2.02%) yes;  99.5 -> 101 (1.51%) yes;  last three unknown
    assert table["target_h3"].to_list() == [1, 0, 0, 1, 1, None, None, None]


@pytest.mark.parametrize(("next_close", "label"), [(100.99, 0), (101.01, 1)])
def test_threshold_boundary(next_close, label):
    prices = pl.DataFrame(
        {"date": [date(2021, 3, 1), date(2021, 3, 2)], "close": [100.0, next_close]}
    )
    assert compute_targets(prices, [1], THRESHOLD)["target_h1"].to_list() == [label, None]


def test_unsorted_input_is_sorted_by_date(closes):
    assert compute_targets(closes.reverse(), [1, 3], THRESHOLD).equals(
        compute_targets(closes, [1, 3], THRESHOLD)
    )


@pytest.mark.parametrize("h", [1, 3, 5])
def test_last_h_rows_are_null(h):
    prices = synthetic_prices(n=40)
    column = compute_targets(prices, [1, 3, 5], THRESHOLD)[target_column(h)]
    assert column.tail(h).null_count() == h
    assert column.head(40 - h).null_count() == 0


def _stored(prices: pl.DataFrame) -> pl.DataFrame:
    return compute_targets(prices, [1, 3, 5], THRESHOLD)


def test_target_mismatches_empty_when_aligned():
    prices = synthetic_prices(n=60)
    assert (
        target_mismatches(prices, _stored(prices), prices["date"], [1, 3, 5], THRESHOLD).height == 0
    )


def test_target_mismatches_catches_label_shifted_by_one_day():
    prices = synthetic_prices(n=60)
    shifted = _stored(prices).with_columns(pl.col("target_h3").shift(1))
    bad = target_mismatches(prices, shifted, prices["date"], [1, 3, 5], THRESHOLD)
    truth = _stored(prices)["target_h3"]
    expected_bad = (~truth.eq_missing(truth.shift(1))).sum()
    assert expected_bad > 0 and bad.height == expected_bad


def test_target_mismatches_catches_a_dropped_date():
    prices = synthetic_prices(n=60)
    dropped = prices["date"][20]
    stored = _stored(prices).filter(pl.col("date") != dropped)
    bad = target_mismatches(prices, stored, prices["date"], [1, 3, 5], THRESHOLD)
    assert bad["date"].to_list() == [dropped]


def test_target_mismatches_catches_a_dropped_last_date():
    """The last rows have null targets; dropping one must still show as a misaligned date."""
    prices = synthetic_prices(n=60)
    dropped = prices["date"][-1]
    stored = _stored(prices).filter(pl.col("date") != dropped)
    bad = target_mismatches(prices, stored, prices["date"], [1, 3, 5], THRESHOLD)
    assert bad["date"].to_list() == [dropped]


def test_target_mismatches_catches_a_date_not_in_features():
    prices = synthetic_prices(n=60)
    feature_dates = prices["date"].slice(5)  # features start later than the stored targets
    bad = target_mismatches(prices, _stored(prices), feature_dates, [1, 3, 5], THRESHOLD)
    assert bad["date"].to_list() == prices["date"].head(5).to_list()
