"""The code location: the market contract from DESIGN.md is present, conventions hold, and
`dagster definitions validate` accepts the workspace."""

import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

PROJECT = Path(__file__).resolve().parents[2]
MARKET_ASSETS = [
    "market/raw/ohlcv",
    "market/raw/manifest",
    "market/processed/features",
    "market/processed/targets",
    "market/processed/splits",
]
MARKET_CHECKS = {
    "market/raw/ohlcv": {
        "ohlc_consistent",
        "prices_positive",
        "dates_unique_and_sorted",
        "ohlcv_expectations",
        "calendar_gaps_small",
    },
    "market/processed/features": {"features_finite_after_warmup", "no_lookahead"},
    "market/processed/targets": {"labels_aligned", "class_balance_reasonable"},
    "market/processed/splits": {"vol_index_proxy_share_low_and_even"},
}
BLOCKING = {
    "ohlc_consistent",
    "prices_positive",
    "dates_unique_and_sorted",
    "ohlcv_expectations",
    "features_finite_after_warmup",
    "no_lookahead",
    "labels_aligned",
}


@pytest.fixture(scope="module")
def graph():
    from proj_assets.definitions import defs

    return defs().resolve_asset_graph()


def test_market_assets_present(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(MARKET_ASSETS) <= keys
    assert graph.get(dg.AssetKey(["market", "raw", "ohlcv"])).partitions_def is not None


def test_market_checks_present_with_blocking_flags(graph):
    checks = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    for asset, names in MARKET_CHECKS.items():
        assert names <= checks.get(asset, set()), asset
    market = [
        graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key.path[0] == "market"
    ]
    assert {spec.name for spec in market if spec.blocking} == BLOCKING


def test_every_asset_follows_the_key_conventions(graph):
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assert len(key.path) == 3, key
        assert node.group_name == key.path[0], key
        assert (node.description or "").strip(), f"{key.to_user_string()} has no description"


def test_dagster_definitions_validate(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PROJ_DATA_DIR": str(tmp_path / "data")}
    # cwd = tmp_path: the instance's relative storage paths (data/dagster/...) land there, not in the project.
    proc = subprocess.run(
        [
            str(PROJECT / ".venv/bin/dagster"),
            "definitions",
            "validate",
            "-w",
            str(PROJECT / "workspace.yaml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
