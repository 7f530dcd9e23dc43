"""Forced extremes within what can train in the trial time limit (the FLOP and memory time model,
recorded in the limits table), and extremes matched by value so a widening re-runs only new values."""

import math

import optuna
import polars as pl
import pytest
from scaling_helpers import tiny_settings

from proj_assets.scaling.arch_grid import enumerate_grid, limits_table, with_batch_plans
from proj_assets.scaling.checks_core import missing_extremes
from proj_assets.scaling.extremes import NONE_FIT_SLACK, extreme_architectures, extreme_candidates
from proj_assets.scaling.hpo import extreme_trials
from proj_assets.scaling.study import enqueue_missing_extremes
from proj_assets.scaling.trial_time import TrialTimeModel

N_FEATURES = 25
ARCH = {
    "d_model_min": 8,
    "d_model_step": 4,
    "n_layers_max": None,
    "n_heads": [1, 2, 4],
    "min_head_dim": 4,
    "tolerance": 0.25,
}


def _model(limit_s: float, overhead_s: float = 1e-3) -> TrialTimeModel:
    return TrialTimeModel(
        n_windows=1000,
        context_length=8,
        epochs=2,
        time_limit_s=limit_s,
        flops_per_second=1e9,
        layer_step_overhead_s=overhead_s,
    )


def _grid(d_model_max: int, model: TrialTimeModel | None) -> pl.DataFrame:
    s = tiny_settings(budgets={"6k": 6000}, arch={**ARCH, "d_model_max": d_model_max})
    return with_batch_plans(
        enumerate_grid(s.budgets, s.arch, N_FEATURES), N_FEATURES, 8, 64, 512, 4, model
    )


def test_epoch_time_is_flops_over_throughput_plus_per_layer_step_overhead():
    m = _model(60.0)
    n_params, d, layers, micro = 5000, 16, 3, 64
    flops = 1000 * (6 * n_params * 8 + 12 * layers * 8 * 8 * d)
    assert m.epoch_seconds(n_params, d, layers, micro) == pytest.approx(
        flops / 1e9 + math.ceil(1000 / 64) * layers * 1e-3
    )
    trainer = tiny_settings().trainer.model_copy(
        update={"max_epochs": 50, "patience": 10, "max_train_windows": None}
    )
    assert (
        TrialTimeModel.from_trainer(trainer, 128).epochs == 11
    )  # early stopping can end it by itself
    assert TrialTimeModel.from_trainer(trainer, 128).n_windows == trainer.time_estimate_windows


def test_deep_narrow_architectures_over_the_limit_are_not_extremes_and_the_limits_table_says_why():
    unlimited = _grid(24, _model(1e9))
    deepest = int(unlimited["n_layers"].max())
    seconds = unlimited.filter(pl.col("n_layers") == deepest)["trial_time_estimate_s"].min()
    limit = 0.9 * seconds  # the deepest architectures now take longer than the limit
    grid = _grid(24, _model(limit))
    assert (
        grid.filter(~pl.col("fits_time_limit"))["n_layers"].min()
        > grid.filter(pl.col("fits_time_limit"))["n_layers"].min()
    )
    extremes = dict(extreme_architectures(grid))
    by_label = {lab: arch for label, arch in extremes.items() for lab in label.split("+")}
    assert by_label["n_layers_max"]["n_layers"] < deepest
    assert by_label["n_layers_max"]["n_layers"] == extreme_candidates(grid)["n_layers"].max()
    limits = limits_table(
        {"6k": 6000},
        grid,
        tiny_settings(budgets={"6k": 6000}, arch={**ARCH, "d_model_max": 24}).arch,
    )
    row = limits.row(0, named=True)
    assert row["n_archs_over_time_limit"] == grid.filter(~pl.col("fits_time_limit")).height > 0
    assert (
        row["over_limit_n_layers"].endswith(f"..{deepest}") and row["shortest_over_limit_s"] > limit
    )
    trials = pl.DataFrame(
        [
            {"budget": "6k", "horizon": "h1", "state": "COMPLETE", "infeasible_reason": None, **a}
            for a in extremes.values()
        ]
    )
    assert (
        missing_extremes(trials, grid).height == 0
    )  # the check covers the same (time-feasible) extremes


def test_when_nothing_fits_the_extremes_come_from_the_fastest():
    grid = _grid(
        24, _model(1e-6, overhead_s=1.0)
    )  # depth dominates: deep ones are many times slower
    assert not grid["fits_time_limit"].any()
    candidates = extreme_candidates(grid)
    fastest = grid["trial_time_estimate_s"].min()
    assert 0 < candidates.height < grid.height
    assert candidates["trial_time_estimate_s"].max() <= NONE_FIT_SLACK * fastest


def test_a_widening_enqueues_only_extremes_whose_values_are_new():
    settings = tiny_settings(budgets={"6k": 6000}, arch={**ARCH, "d_model_max": 16})
    narrow, wide = _grid(16, None), _grid(20, None)
    study = optuna.create_study()
    first = enqueue_missing_extremes(study, extreme_trials(extreme_architectures(narrow), settings))
    assert first
    added = enqueue_missing_extremes(study, extreme_trials(extreme_architectures(wide), settings))
    old_values = {
        dim: {a[dim] for _l, a in extreme_architectures(narrow)}
        for dim in ("d_model", "n_layers", "n_heads")
    }
    wide_extremes = dict(extreme_architectures(wide))
    for label in added:  # each one enqueued brings a value no earlier trial had
        arch = wide_extremes[label]
        assert any(
            arch[lab.rsplit("_", 1)[0]] not in old_values[lab.rsplit("_", 1)[0]]
            for lab in label.split("+")
        )
    assert 0 < len(added) < len(wide_extremes)  # the unchanged values (n_heads here) are not re-run
    assert (
        "d_model_max" in "+".join(added)
        and enqueue_missing_extremes(study, extreme_trials(extreme_architectures(wide), settings))
        == []
    )
