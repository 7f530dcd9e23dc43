"""Scaling test helpers: a small synthetic panel with signal, tiny settings and the checks built
for them."""

import datetime as dt

import numpy as np
import polars as pl

from proj_assets.scaling.settings import ScalingSettings

N_FEATURES = 25


def synthetic_splits(n_train: int = 240, n_val: int = 80, n_test: int = 80, seed: int = 0) -> dict:
    """Standardised features with a learnable label (feature 0 plus noise above a threshold)."""
    rng = np.random.default_rng(seed)

    def make(n):
        x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0.5).astype(np.float32)
        return x, y

    return {"train": make(n_train), "val": make(n_val), "test": make(n_test)}


def synthetic_market(n_days: int = 400, seed: int = 0) -> tuple[pl.DataFrame, ...]:
    """(features, targets, splits) frames shaped like the market's, for one horizon (h1) with a
    learnable label: what the scaling checks and readers compute a cell's data version from."""
    from proj_assets.market.features import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n_days)]
    x = rng.normal(size=(n_days, len(FEATURE_NAMES)))
    features = pl.DataFrame({"date": dates, **dict(zip(FEATURE_NAMES, x.T, strict=True))})
    y = (x[:, 0] + 0.5 * rng.normal(size=n_days) > 0.5).astype(np.int8)
    targets = pl.DataFrame({"date": dates, "target_h1": y})
    cuts = [0, int(n_days * 0.6), int(n_days * 0.8), n_days]
    splits = pl.DataFrame(
        {
            "split": ["train", "val", "test"],
            "start_date": [dates[cuts[i]] for i in range(3)],
            "end_date": [dates[cuts[i + 1] - 1] for i in range(3)],
            "scaler_features": [list(FEATURE_NAMES)] * 3,
            "scaler_mean": [[0.0] * len(FEATURE_NAMES)] * 3,
            "scaler_std": [[1.0] * len(FEATURE_NAMES)] * 3,
        }
    )
    return features, targets, splits


def tiny_settings(**overrides) -> ScalingSettings:
    base = {
        "budgets": {"2k": 2000, "6k": 6000},
        "n_trials": 6,
        "arch": {
            "d_model_min": 8,
            "d_model_max": 24,
            "d_model_step": 4,
            "n_layers_max": 4,
            "n_heads": [1, 2, 4],
            "min_head_dim": 4,
            "tolerance": 0.25,
        },
        "trainer": {
            "max_epochs": 2,
            "patience": 1,
            "effective_batch": 64,
            "trial_time_limit_s": 30,
        },
        "search": {"context_lengths": [4, 8]},
        "pruner": "none",
    }
    return ScalingSettings(**{**base, **overrides})


def checks_for(settings: ScalingSettings) -> dict:
    """The scaling checks built for `settings` (the demo's horizons), by name, to call on frames.
    (Imported here: worker subprocesses import this module with only this folder on sys.path.)"""
    from definitions_helpers import checks_by_name, demo_profile

    from proj_assets.partitions import budget_horizon_partitions
    from proj_assets.scaling.checks import scaling_checks

    cells = budget_horizon_partitions(settings.budgets, demo_profile().market.horizons)
    return checks_by_name(scaling_checks(settings, cells))
