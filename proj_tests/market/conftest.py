"""Market fixtures: the synthetic frame, the market asset graph, CSV-backed resources."""

import polars as pl
import pytest
from definitions_helpers import demo_profile, domain_defs, materializable
from market_helpers import synthetic_index, synthetic_prices


@pytest.fixture
def prices() -> pl.DataFrame:
    return synthetic_prices()


@pytest.fixture
def vol_index(prices) -> pl.DataFrame:
    return synthetic_index(prices)


@pytest.fixture
def market_defs(tmp_path) -> list:
    """Every market asset and check of the demo profile, for dg.materialize; their gates read
    reviews from the same temporary warehouse as the `resources` fixture."""
    return materializable(domain_defs("market", demo_profile(), tmp_path))


@pytest.fixture
def csv_resources(resources, csv_dir) -> dict:
    """Demo resources (temporary warehouse) reading the `csv_dir` fixture."""
    from proj_resources import MarketSource

    return {**resources, "market_source": MarketSource(kind="csv", csv_dir=str(csv_dir))}
