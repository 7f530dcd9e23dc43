"""The market group materialized in-process on a temporary warehouse, read back through DuckDB."""

import dagster as dg
from market_helpers import failed_checks, materialize, step_failure_messages, unrounded_floats

from proj_assets.market.assets import FEATURES, MANIFEST, OHLCV, SPLITS, TARGETS
from proj_assets.market.features import FEATURE_NAMES
from proj_resources.market_sources import OHLCV_SCHEMA

TICKERS = ["SP500", "NASDAQ", "VIX"]
PROVENANCE = [
    "git_sha",
    "code_version",
    "run_id",
    "seed",
    "params_hash",
    "model_id",
    "model_revision",
]
DOWNSTREAM = [MANIFEST, FEATURES, TARGETS, SPLITS]


def _ticker_runs(warehouse) -> dict[str, tuple[int, set]]:
    table = warehouse.query(
        "select ticker, count(*) as n, list(distinct run_id) as runs from market_raw.ohlcv group by ticker"
    )
    return {t: (n, set(runs)) for t, n, runs in table.iter_rows()}


def test_whole_market_group_materializes_and_reads_back(
    market_defs, csv_resources, instance, arch_slice
):
    for ticker in TICKERS:
        result = materialize(market_defs, csv_resources, instance, [OHLCV], partition_key=ticker)
        assert result.success, step_failure_messages(result)
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 5 and not failed_checks(result)
    result = materialize(market_defs, csv_resources, instance, DOWNSTREAM)
    assert result.success, step_failure_messages(result)
    recorded = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    assert len(recorded) == 5 and all(  # gate metadata as stored: every float at 4 digits
        unrounded_floats(r.event_log_entry.dagster_event.event_specific_data.metadata) == []
        for r in recorded
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "features_finite_after_warmup": True,
        "no_lookahead": True,
        "labels_aligned": True,
        "class_balance_reasonable": True,
        # the slice's VIX starts 2014-01: a few months of proxy in train, none later
        "vol_index_proxy_share_low_and_even": True,
    }
    run_id = result.run_id

    warehouse = csv_resources["warehouse"]
    ohlcv = warehouse.query("select * from market_raw.ohlcv")
    assert ohlcv.columns == [*OHLCV_SCHEMA, "ticker", "source", *PROVENANCE]
    runs = _ticker_runs(warehouse)
    assert {t: n for t, (n, _) in runs.items()} == {t: arch_slice[t].height for t in TICKERS}

    manifest = warehouse.query("select * from market_raw.manifest order by ticker")
    assert manifest["ticker"].to_list() == sorted(TICKERS)
    assert manifest["rows"].to_list() == [arch_slice[t].height for t in sorted(TICKERS)]
    assert (
        set(manifest["source"]) == {"csv"}
        and manifest["content_sha256"].str.len_chars().to_list() == [64] * 3
    )

    features = warehouse.query("select * from market_processed.features order by date")
    assert features.columns == ["date", *FEATURE_NAMES, *PROVENANCE]
    sp500 = arch_slice["SP500"]
    assert features.height == sp500.height - 63
    assert features["date"][0] == sp500["date"][63]
    assert set(features["run_id"]) == {run_id} and features["git_sha"].null_count() == 0
    # the bundled VIX starts in 2014: earlier days use the proxy, later ones the index
    assert 0 < features["vix_is_proxy"].sum() < features.height

    targets = warehouse.query("select * from market_processed.targets order by date")
    assert targets.columns == ["date", "target_h1", "target_h3", "target_h5", *PROVENANCE]
    assert targets["date"].to_list() == features["date"].to_list()
    assert targets["target_h5"].tail(5).null_count() == 5

    splits = warehouse.query("select * from market_processed.splits order by start_date")
    assert splits["split"].to_list() == ["train", "val", "test"]
    assert splits["embargo_rows"].to_list() == [5, 5, 5]
    assert splits["n_rows"].sum() + 2 * 5 == targets.drop_nulls("target_h5").height


def _corrupt_date(path, line_index: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_index] = text + lines[line_index][lines[line_index].index(",") :]
    path.write_text("\n".join(lines) + "\n")


def test_rerun_rewrites_exactly_its_partition_and_bad_input_nothing(
    market_defs, csv_resources, instance, csv_dir
):
    for ticker in ("SP500", "NASDAQ"):
        assert materialize(
            market_defs, csv_resources, instance, [OHLCV], partition_key=ticker, checks=False
        ).success
    warehouse = csv_resources["warehouse"]
    before = _ticker_runs(warehouse)
    again = materialize(
        market_defs, csv_resources, instance, [OHLCV], partition_key="NASDAQ", checks=False
    )
    assert again.success and again.run_id not in before["NASDAQ"][1]
    after = _ticker_runs(warehouse)
    assert after["NASDAQ"] == (before["NASDAQ"][0], {again.run_id})  # same rows, all rewritten
    assert after["SP500"] == before["SP500"]  # untouched

    # a bad file on a later run fails before writing: the previous SP500 rows stay as they were
    _corrupt_date(csv_dir / "SP500.csv", 100, "not-a-date")
    failed = materialize(
        market_defs, csv_resources, instance, [OHLCV], partition_key="SP500", checks=False
    )
    assert not failed.success
    assert "line 101, field 'date': got 'not-a-date'" in step_failure_messages(failed)[0]
    assert _ticker_runs(warehouse) == after


def test_unparseable_date_fails_clearly_and_writes_nothing(
    market_defs, csv_resources, instance, csv_dir
):
    path = csv_dir / "SP500.csv"
    _corrupt_date(path, 5, "2014-02-30")

    result = materialize(market_defs, csv_resources, instance, [OHLCV], partition_key="SP500")
    assert not result.success
    (message,) = step_failure_messages(result)
    assert f"{path}: line 6, field 'date': got '2014-02-30', expected a YYYY-MM-DD date" in message
    assert result.get_asset_materialization_events() == []
    assert result.get_asset_check_evaluations() == []  # checks never saw partial data
    warehouse = csv_resources["warehouse"]
    if warehouse.table_exists("market_raw", "ohlcv"):
        assert (
            warehouse.query(
                "select count(*) as n from market_raw.ohlcv where ticker = ?", ["SP500"]
            )["n"][0]
            == 0
        )
