"""Parameter counting against the real model, the grid's completeness and the grid checks."""

import itertools
import random

import polars as pl
import pytest
import torch
from definitions_helpers import demo_profile
from scaling_helpers import checks_for

from proj_assets.scaling.arch_grid import (
    d_model_values,
    enumerate_grid,
    left_out_depths,
    limits_table,
    valid_heads,
    verify_on_meta,
)
from proj_assets.scaling.checks_core import budget_violations, head_violations
from proj_assets.scaling.model import (
    ArchConfig,
    TimeSeriesTransformer,
    build_on_meta,
    count_parameters,
    numel,
)
from proj_assets.scaling.settings import ArchSpace

SHAPES = [
    (f, d, n, h, m)
    for f, d, n, h, m in itertools.product((1, 25), (4, 6, 12, 32), (1, 2, 5), (1, 2), (1, 4))
]


@pytest.mark.parametrize(("n_features", "d_model", "n_layers", "n_heads", "ffn_mult"), SHAPES)
def test_analytic_count_equals_instantiated_numel(n_features, d_model, n_layers, n_heads, ffn_mult):
    model = TimeSeriesTransformer(ArchConfig(n_features, d_model, n_layers, n_heads, ffn_mult))
    assert count_parameters(n_features, d_model, n_layers, ffn_mult) == numel(model)


def test_meta_device_count_matches_without_allocating():
    rng = random.Random(3)
    for _ in range(20):
        heads = rng.choice([1, 2, 4, 8])
        d, n = heads * rng.randint(1, 64), rng.randint(1, 12)
        assert build_on_meta(ArchConfig(25, d, n, heads)) == count_parameters(25, d, n)
    with torch.device("meta"):
        big = TimeSeriesTransformer(ArchConfig(25, 4096, 10, 32))
    assert all(p.is_meta for p in big.parameters())  # ~2B parameters, no memory


def test_model_forward_shape_and_head_divisibility():
    model = TimeSeriesTransformer(ArchConfig(25, 12, 2, 3, dropout=0.0))
    assert model(torch.randn(5, 7, 25)).shape == (5,)
    with pytest.raises(ValueError, match="n_heads 5 must divide d_model 12"):
        ArchConfig(25, 12, 2, 5)


@pytest.mark.parametrize("budget", [1500, 2000, 6000, 20000, 90000])
def test_grid_never_misses_a_feasible_depth(budget):
    space = ArchSpace(
        d_model_min=4,
        d_model_max=64,
        d_model_step=4,
        n_layers_max=12,
        n_heads=[1, 2, 4, 8],
        min_head_dim=4,
        tolerance=0.2,
    )
    grid = enumerate_grid({"b": budget}, space, 25)
    everything = {
        (d, n, h)
        for d in d_model_values(space)
        for n in range(1, 500)
        for h in valid_heads(d, space)
        if abs(count_parameters(25, d, n) - budget) <= 0.2 * budget
    }
    brute = {a for a in everything if a[1] <= space.n_layers_max}
    assert set(grid.select("d_model", "n_layers", "n_heads").iter_rows()) == brute
    uncapped = space.model_copy(update={"n_layers_max": None})
    assert (
        set(
            enumerate_grid({"b": budget}, uncapped, 25)
            .select("d_model", "n_layers", "n_heads")
            .iter_rows()
        )
        == everything
    )
    limits = limits_table({"b": budget}, grid, space).row(0, named=True)
    depths = {n for _, n, _ in brute}
    assert limits["n_archs"] == len(brute)
    cut = {(d, n) for d, n, _ in everything - brute}
    assert limits["n_depths_left_out"] == len(cut) and limits["depth_capped"] == bool(cut)
    left_out = left_out_depths({"b": budget}, space, 25)
    assert {
        (r["d_model"], n)
        for r in left_out.iter_rows(named=True)
        for n in range(r["first_left_out"], r["last_left_out"] + 1)
    } == cut
    if depths:
        assert (limits["min_n_layers"], limits["max_n_layers"]) == (min(depths), max(depths))


def test_grid_rows_pass_checks_and_meta_verification():
    space = ArchSpace(d_model_min=8, d_model_max=48, d_model_step=4, n_layers_max=8, tolerance=0.25)
    grid = enumerate_grid({"2k": 2000, "20k": 20000}, space, 25)
    assert grid.height > 0
    assert budget_violations(grid, 0.25, 25, 4).height == 0
    assert head_violations(grid, space.min_head_dim).height == 0
    assert verify_on_meta(grid, 25, 4).height == 0


def test_grid_checks_report_corrupted_rows():
    space = ArchSpace(d_model_min=8, d_model_max=48, d_model_step=4, n_layers_max=8, tolerance=0.25)
    grid = enumerate_grid({"20k": 20000}, space, 25)
    bad = grid.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("n_params") * 3)
        .otherwise(pl.col("n_params"))
        .alias("n_params"),
        pl.when(pl.int_range(pl.len()) == 1).then(3).otherwise(pl.col("n_heads")).alias("n_heads"),
    )
    off = budget_violations(bad, 0.25, 25, 4)
    assert off.height == 1 and off["n_params"][0] == grid["n_params"][0] * 3
    assert head_violations(bad, 4).height == 1


def test_params_check_flags_a_count_off_the_analytic_value_within_tolerance():
    space = ArchSpace(d_model_min=8, d_model_max=48, d_model_step=4, n_layers_max=8, tolerance=0.25)
    grid = enumerate_grid({"20k": 20000}, space, 25)
    row = grid.row(0, named=True)
    expected = count_parameters(25, row["d_model"], row["n_layers"], 4)
    assert row["n_params"] == expected
    extra = pl.DataFrame([{**row, "n_params": expected + 1}], schema=grid.schema)
    assert (
        abs(expected + 1 - row["budget_params"]) / row["budget_params"] <= 0.25
    )  # within the budget tolerance
    off = budget_violations(pl.concat([grid, extra]), 0.25, 25, 4)
    assert off.height == 1
    assert (
        off.row(0, named=True)["n_params"] == expected + 1 and off["expected_params"][0] == expected
    )
    from dagster import AssetCheckSeverity

    result = checks_for(demo_profile().scaling)["params_within_budget"](pl.concat([grid, extra]))
    assert result.passed is False and result.severity == AssetCheckSeverity.ERROR
