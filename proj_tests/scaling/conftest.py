"""Scaling fixtures: synthetic splits, tiny settings and a one-budget grid."""

import pytest
from scaling_helpers import N_FEATURES, synthetic_splits, tiny_settings

from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.settings import ScalingSettings


@pytest.fixture
def splits() -> dict:
    return synthetic_splits()


@pytest.fixture
def settings() -> ScalingSettings:
    return tiny_settings()


@pytest.fixture
def budget_grid(settings):
    return enumerate_grid({"2k": 2000}, settings.arch, N_FEATURES)
