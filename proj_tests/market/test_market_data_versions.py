"""Market data versions: ohlcv's data version is the content hash of the rows it read and every
market asset declares a code version, so a changed CSV makes the processed assets stale and an
unchanged re-read does not; a changed setting changes the code version of the assets reading it."""

import dagster as dg
import polars as pl
from definitions_helpers import demo_profile, domain_defs, materializable
from market_helpers import materialize, step_failure_messages

from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS, code_versions
from proj_assets.platform.snapshot import stale_assets

TICKERS = ["SP500", "NASDAQ", "VIX"]
PROCESSED = [FEATURES, TARGETS, SPLITS]


def _data_version(instance, ticker: str) -> tuple[int, str]:
    """(storage id, data version) of the ticker's latest ohlcv materialization."""
    record = instance.get_latest_data_version_record(dg.AssetKey(OHLCV), partition_key=ticker)
    return record.storage_id, record.asset_materialization.tags["dagster/data_version"]


def _stale(instance, graph) -> set[str]:
    return {s.key for s in stale_assets(instance, graph)}


def test_code_versions_change_with_the_settings_each_asset_reads():
    settings = demo_profile().market
    base = code_versions(settings)
    assert all(v.startswith("1+") for v in base.values())
    higher = code_versions(settings.model_copy(update={"rise_threshold": 0.02}))
    assert {n for n in base if base[n] != higher[n]} == {"targets"}
    later = code_versions(settings.model_copy(update={"end": "2018-06-30"}))
    assert {n for n in base if base[n] != later[n]} == {"ohlcv"}


def test_changed_csv_makes_processed_assets_stale(tmp_path, csv_resources, instance, csv_dir):
    defs = domain_defs("market", demo_profile(), tmp_path)
    graph, assets = defs.get_repository_def().asset_graph, materializable(defs)
    for ticker in TICKERS:
        assert materialize(assets, csv_resources, instance, [OHLCV], ticker).success
    result = materialize(assets, csv_resources, instance, PROCESSED)
    assert result.success, step_failure_messages(result)
    assert _stale(instance, graph) == set()

    # the same file read again: same data version, nothing downstream goes stale
    first = _data_version(instance, "SP500")
    assert materialize(assets, csv_resources, instance, [OHLCV], "SP500").success
    again = _data_version(instance, "SP500")
    assert again[0] != first[0] and again[1] == first[1]
    assert _stale(instance, graph) == set()

    # a refreshed CSV (every price 1% higher) has another hash: the processed assets are stale
    path = csv_dir / "SP500.csv"
    frame = pl.read_csv(path)
    frame.with_columns(pl.col("open", "high", "low", "close") * 1.01).write_csv(path)
    assert materialize(assets, csv_resources, instance, [OHLCV], "SP500").success
    assert _data_version(instance, "SP500")[1] != first[1]
    # Dagster marks the direct readers of ohlcv stale; splits follows once they have new data
    assert _stale(instance, graph) == {"market/processed/features", "market/processed/targets"}
    assert materialize(assets, csv_resources, instance, [FEATURES, TARGETS]).success
    assert _stale(instance, graph) == {"market/processed/splits"}
    assert materialize(assets, csv_resources, instance, [SPLITS]).success
    assert _stale(instance, graph) == set()
