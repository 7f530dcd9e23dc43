"""Market fixtures: the synthetic frame, the market asset graph, CSV-backed resources."""

import dagster as dg
import polars as pl
import pytest
from market_helpers import synthetic_index, synthetic_prices


@pytest.fixture
def prices() -> pl.DataFrame:
    return synthetic_prices()


@pytest.fixture
def vol_index(prices) -> pl.DataFrame:
    return synthetic_index(prices)


@pytest.fixture(scope="session")
def market_defs() -> list:
    """Every market asset and check, for dg.materialize."""
    from proj_assets.market import assets, checks

    return [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])]


@pytest.fixture
def csv_resources(resources, csv_dir) -> dict:
    """Demo resources (temporary warehouse) reading the `csv_dir` fixture."""
    from proj_resources import MarketSource

    return {**resources, "market_source": MarketSource(kind="csv", csv_dir=str(csv_dir))}
