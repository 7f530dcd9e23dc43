"""The market domain's whole surface, built from the profile it is given: assets, checks, the
ticker partitions, the OHLCV job and its daily schedule, and the market data source."""

from pathlib import Path

import dagster as dg

from proj_assets.market.assets import OHLCV, market_assets
from proj_assets.market.checks import market_checks
from proj_assets.market.schedules import market_automation
from proj_assets.partitions import ticker_partitions
from proj_assets.profiles import Profile
from proj_assets.shared.jobs import asset_of
from proj_resources import MarketSource, Warehouse, warehouse_path


def build_market(profile: Profile, root: Path) -> dg.Definitions:
    settings = profile.market
    tickers = ticker_partitions(settings.tickers)
    assets = market_assets(
        settings, tickers, Warehouse(database=str(warehouse_path(profile.name, root)))
    )
    jobs, schedules = market_automation(asset_of(assets, OHLCV))
    return dg.Definitions(
        assets=assets,
        asset_checks=market_checks(settings, tickers),
        jobs=jobs,
        schedules=schedules,
        resources={
            "market_source": MarketSource(
                kind=settings.source,
                csv_dir=settings.csv_dir,
                start=settings.start,
                end=settings.end,
            )
        },
    )
