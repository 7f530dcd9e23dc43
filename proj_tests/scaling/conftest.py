"""Scaling fixtures: synthetic splits, tiny settings, a one-budget grid, and `world`: the market
and scaling definitions of a tiny profile materialized in process."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from definitions_helpers import demo_profile, domain_defs, materializable, with_settings
from scaling_helpers import N_FEATURES, synthetic_splits, tiny_settings

from proj_assets.definitions import build_resources
from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS
from proj_assets.profiles import Profile
from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.settings import ScalingSettings
from proj_resources import Warehouse

WORLD_SCALING = {
    "budgets": {"2k": 2000, "6k": 6000, "20k": 20000},
    "arch": {
        "d_model_min": 8,
        "d_model_max": 48,
        "d_model_step": 4,
        "n_layers_max": 4,
        "n_heads": [1, 2, 4],
        "min_head_dim": 4,
        "tolerance": 0.25,
    },
}


@pytest.fixture
def splits() -> dict:
    return synthetic_splits()


@pytest.fixture
def settings() -> ScalingSettings:
    return tiny_settings()


@pytest.fixture
def budget_grid(settings):
    return enumerate_grid({"2k": 2000}, settings.arch, N_FEATURES)


@dataclass(frozen=True)
class World:
    settings: ScalingSettings
    root: Path
    warehouse: Warehouse
    run: Callable[
        ..., dg.ExecuteInProcessResult
    ]  # (keys, partition_key=None): one run, never raises


@pytest.fixture
def world(tmp_path, csv_dir, instance) -> Callable[..., World]:
    """Builds the market and scaling definitions of a profile (`base`, default the demo) reading the
    `csv_dir` files, with tiny scaling settings (`overrides`), every output under tmp_path, and
    materializes the market group with its checks on a temporary instance (`market` updates the
    profile's market section; `refresh` names the market layers to materialize, `()` keeps what is
    stored): scaling's gates read
    the market checks of that graph. Called again in a test, it changes the profile of a study
    already stored under tmp_path."""

    def build(
        base: Profile | None = None,
        market: dict | None = None,
        refresh: tuple[str, ...] = ("raw", "processed"),
        **overrides,
    ) -> World:
        settings = tiny_settings(**{**WORLD_SCALING, **overrides})
        profile = with_settings(
            base or demo_profile(),
            scaling=settings,
            market={"source": "csv", "csv_dir": str(csv_dir), **(market or {})},
        )
        defs = [
            *materializable(domain_defs("market", profile, tmp_path)),
            *materializable(domain_defs("scaling", profile, tmp_path)),
        ]
        resources = build_resources(profile, tmp_path)

        def run(keys, partition_key=None) -> dg.ExecuteInProcessResult:
            return dg.materialize(
                defs,
                resources=resources,
                instance=instance,
                partition_key=partition_key,
                selection=[dg.AssetKey(k) for k in keys],
                raise_on_error=False,
            )

        if "raw" in refresh:
            for ticker in profile.market.tickers:
                assert run([OHLCV], ticker).success
        if "processed" in refresh:
            assert run([FEATURES, TARGETS, SPLITS]).success
        return World(settings, tmp_path, resources["warehouse"], run)

    return build
