"""Blocking checks on market/raw/ohlcv stop features in the same run and, via the gate, in later
runs; and targets while a check of a ticker it reads failed."""

from dataclasses import dataclass

import polars as pl
import pytest
from market_helpers import failed_checks, materialize, step_failure_messages

from proj_assets.market.assets import FEATURES, OHLCV, TARGETS

BAD_ROW = 200


@dataclass(frozen=True)
class BadCase:
    name: str
    failing: frozenset  # the ERROR checks expected to fail, exactly
    fix_after: bool = False

    def corrupt(self, df: pl.DataFrame) -> pl.DataFrame:
        at = pl.int_range(pl.len()) == BAD_ROW
        if self.name == "high_below_low":
            return df.with_columns(
                pl.when(at).then(pl.col("low") - 1).otherwise(pl.col("high")).alias("high")
            )
        if self.name == "nonpositive_price":  # every price -1: consistent OHLC, but not positive
            return df.with_columns(
                pl.when(at).then(-1.0).otherwise(pl.col(c)).alias(c)
                for c in ("open", "high", "low", "close")
            )
        if self.name == "duplicate_date":
            return df.with_columns(
                pl.when(at).then(pl.col("date").shift(1)).otherwise(pl.col("date")).alias("date")
            )
        if self.name == "unsorted_date":  # swap two adjacent rows
            return pl.concat(
                [
                    df.slice(0, BAD_ROW),
                    df.slice(BAD_ROW + 1, 1),
                    df.slice(BAD_ROW, 1),
                    df.slice(BAD_ROW + 2),
                ]
            )
        raise AssertionError(self.name)


CASES = [
    BadCase("high_below_low", frozenset({"ohlc_consistent", "ohlcv_expectations"}), fix_after=True),
    BadCase("nonpositive_price", frozenset({"prices_positive", "ohlcv_expectations"})),
    BadCase("duplicate_date", frozenset({"dates_unique_and_sorted", "ohlcv_expectations"})),
    BadCase("unsorted_date", frozenset({"dates_unique_and_sorted"})),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_raw_gate_blocks_features_now_and_later(
    case, market_defs, csv_resources, instance, csv_dir, arch_slice
):
    good = arch_slice["SP500"]
    bad = case.corrupt(good)
    bad_date = bad["date"][BAD_ROW + (1 if case.name == "unsorted_date" else 0)]
    bad.write_csv(csv_dir / "SP500.csv")

    # same run: the failed blocking check stops features before it starts
    run = materialize(
        market_defs, csv_resources, instance, [OHLCV, FEATURES], partition_key="SP500"
    )
    assert not run.success
    failed = failed_checks(run)
    assert set(failed) == case.failing
    for evaluation in failed.values():
        meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        assert meta["measured"] >= 1 and meta["threshold"] == 0 and meta["n_failing"] >= 1
        assert "|" in meta["offending_sample"]  # a markdown table of offending rows
        if evaluation.check_name != "ohlcv_expectations":
            assert str(bad_date) in meta["offending_sample"]
    if "ohlcv_expectations" in failed:
        sample = failed["ohlcv_expectations"].metadata["offending_sample"].value
        assert "expect_column" in sample
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert materialized == {"market/raw/ohlcv"}
    assert "market__processed__features" not in {e.step_key for e in run.get_step_success_events()}

    # a later, separate run: features refuses, naming the failed check
    later = materialize(market_defs, csv_resources, instance, [FEATURES])
    assert not later.success
    (message,) = step_failure_messages(later)
    assert "refusing to run: upstream gate(s) not passed" in message
    for check in case.failing:
        assert f"market/raw/ohlcv:{check} partition 'SP500' failed" in message
    assert later.get_asset_materialization_events() == []

    if case.fix_after:
        good.write_csv(csv_dir / "SP500.csv")
        for ticker in ("SP500", "VIX"):
            fixed = materialize(market_defs, csv_resources, instance, [OHLCV], partition_key=ticker)
            assert fixed.success and not failed_checks(fixed)
        opened = materialize(market_defs, csv_resources, instance, [FEATURES])
        assert opened.success, step_failure_messages(opened)
        assert [
            e.asset_key.to_user_string() for e in opened.get_asset_materialization_events()
        ] == ["market/processed/features"]
        assert all(e.passed for e in opened.get_asset_check_evaluations())
        rows = csv_resources["warehouse"].query(
            "select count(*) as n from market_processed.features"
        )["n"][0]
        assert rows == good.height - 63


def test_failed_ohlcv_gate_of_the_target_ticker_blocks_targets(
    market_defs, csv_resources, instance, csv_dir, arch_slice
):
    """targets reads the target ticker's raw rows: it refuses while a blocking check of that
    ticker failed, and a failed check of a ticker it does not read (NASDAQ) leaves it open."""
    for ticker in ("SP500", "NASDAQ", "VIX"):
        assert materialize(
            market_defs, csv_resources, instance, [OHLCV], partition_key=ticker
        ).success
    assert materialize(market_defs, csv_resources, instance, [FEATURES]).success
    case = CASES[0]

    case.corrupt(arch_slice["NASDAQ"]).write_csv(csv_dir / "NASDAQ.csv")
    assert (
        set(failed_checks(materialize(market_defs, csv_resources, instance, [OHLCV], "NASDAQ")))
        == case.failing
    )
    opened = materialize(market_defs, csv_resources, instance, [TARGETS])
    assert opened.success, step_failure_messages(opened)

    case.corrupt(arch_slice["SP500"]).write_csv(csv_dir / "SP500.csv")
    assert (
        set(failed_checks(materialize(market_defs, csv_resources, instance, [OHLCV], "SP500")))
        == case.failing
    )
    refused = materialize(market_defs, csv_resources, instance, [TARGETS])
    assert not refused.success
    (message,) = step_failure_messages(refused)
    assert "refusing to run: upstream gate(s) not passed" in message
    for check in case.failing:
        assert f"market/raw/ohlcv:{check} partition 'SP500' failed" in message
    assert "NASDAQ" not in message
    assert refused.get_asset_materialization_events() == []
    targets = csv_resources["warehouse"].query(
        "select distinct run_id from market_processed.targets"
    )
    assert targets["run_id"].to_list() == [opened.run_id]  # the rows of the open run stay
