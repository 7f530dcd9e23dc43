"""The architecture grid: every (d_model, n_layers, n_heads) of the search space within a tolerance
of each parameter budget, the per-budget limits table, and a meta-device verification.

Depths are solved analytically from `count_parameters` (it is affine in n_layers for a fixed
d_model), so every feasible depth (up to `n_layers_max` when the space sets one) is found without
a scan; `left_out_depths` lists what such a cap hides.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import polars as pl

from proj_assets.market.features import FEATURE_NAMES
from proj_assets.scaling.memory import plan_batch
from proj_assets.scaling.param_count import count_parameters
from proj_assets.scaling.trial_time import TrialTimeModel, time_left_out, with_time_estimates

if (
    TYPE_CHECKING
):  # settings validates a profile with this module: importing it back would be a circle
    from proj_assets.scaling.settings import ArchSpace

N_FEATURES = len(FEATURE_NAMES)  # the model's input width; profiles are checked against it

GRID_SCHEMA = {
    "budget": pl.Utf8,
    "budget_params": pl.Int64,
    "d_model": pl.Int64,
    "n_layers": pl.Int64,
    "n_heads": pl.Int64,
    "head_dim": pl.Int64,
    "n_params": pl.Int64,
    "rel_error": pl.Float64,
}


def d_model_values(space: ArchSpace) -> list[int]:
    return list(range(space.d_model_min, space.d_model_max + 1, space.d_model_step))


def valid_heads(d_model: int, space: ArchSpace) -> list[int]:
    """Head counts of the space that divide d_model and leave at least `min_head_dim` per head."""
    return sorted(
        h for h in space.n_heads if d_model % h == 0 and d_model // h >= space.min_head_dim
    )


def depth_range(
    budget: int, d_model: int, n_features: int, space: ArchSpace, capped: bool = True
) -> range:
    """All n_layers >= 1 (and <= n_layers_max when set and `capped`) with |count - budget| <= tolerance * budget."""
    base = count_parameters(n_features, d_model, 0, space.ffn_mult)
    per_layer = count_parameters(n_features, d_model, 1, space.ffn_mult) - base
    low, high = budget * (1 - space.tolerance), budget * (1 + space.tolerance)
    first = max(1, math.ceil((low - base) / per_layer))
    last = math.floor((high - base) / per_layer)
    if capped and space.n_layers_max is not None:
        last = min(space.n_layers_max, last)
    return range(first, last + 1)


def grid_sizes(
    budgets: dict[str, int], space: ArchSpace, n_features: int = N_FEATURES
) -> dict[str, int]:
    """Rows the grid will have per budget, counted without building it (0: no architecture)."""
    widths = [(d, len(valid_heads(d, space))) for d in d_model_values(space)]
    return {
        label: sum(
            len(depth_range(budget, d, n_features, space)) * n_heads for d, n_heads in widths
        )
        for label, budget in budgets.items()
    }


def left_out_depths(budgets: dict[str, int], space: ArchSpace, n_features: int) -> pl.DataFrame:
    """Per (budget, d_model), the depths within tolerance that `n_layers_max` cuts from the grid."""
    rows = []
    for label, budget in budgets.items():
        for d in (d for d in d_model_values(space) if valid_heads(d, space)):
            capped, full = (
                depth_range(budget, d, n_features, space),
                depth_range(budget, d, n_features, space, False),
            )
            cut = [n for n in full if n not in capped]
            if cut:
                rows.append(
                    {
                        "budget": label,
                        "d_model": d,
                        "first_left_out": cut[0],
                        "last_left_out": cut[-1],
                        "n_left_out": len(cut),
                    }
                )
    return pl.DataFrame(
        rows,
        schema={
            "budget": pl.Utf8,
            "d_model": pl.Int64,
            "first_left_out": pl.Int64,
            "last_left_out": pl.Int64,
            "n_left_out": pl.Int64,
        },
    )


def enumerate_grid(budgets: dict[str, int], space: ArchSpace, n_features: int) -> pl.DataFrame:
    """One row per (budget, d_model, n_layers, n_heads) inside the tolerance band of its budget."""
    rows: list[dict[str, str | int | float]] = []
    for label, budget in budgets.items():
        for d in d_model_values(space):
            heads = valid_heads(d, space)
            for n_layers in depth_range(budget, d, n_features, space) if heads else ():
                n_params = count_parameters(n_features, d, n_layers, space.ffn_mult)
                rows.extend(
                    {
                        "budget": label,
                        "budget_params": budget,
                        "d_model": d,
                        "n_layers": n_layers,
                        "n_heads": h,
                        "head_dim": d // h,
                        "n_params": n_params,
                        "rel_error": (n_params - budget) / budget,
                    }
                    for h in heads
                )
    return pl.DataFrame(rows, schema=GRID_SCHEMA)


def with_batch_plans(
    grid: pl.DataFrame,
    n_features: int,
    context_length: int,
    effective_batch: int,
    memory_budget_mb: float,
    ffn_mult: int,
    time_model: TrialTimeModel | None = None,
) -> pl.DataFrame:
    """Add the memory estimate, micro-batch and accumulation steps at `context_length` (the space's
    longest, so the plan is safe for every context the search may pick); with a `time_model`, also
    each trial's time estimate and whether it fits the trial time limit (trial_time.py)."""
    plans = [
        plan_batch(
            r["n_params"],
            n_features,
            r["d_model"],
            r["n_layers"],
            r["n_heads"],
            context_length,
            effective_batch,
            memory_budget_mb,
            ffn_mult,
        )
        for r in grid.iter_rows(named=True)
    ]
    planned = grid.with_columns(
        pl.Series("memory_estimate_mb", [p.estimate_mb for p in plans], dtype=pl.Float64),
        pl.Series("micro_batch", [p.micro_batch for p in plans], dtype=pl.Int64),
        pl.Series("accum_steps", [p.accum_steps for p in plans], dtype=pl.Int64),
        pl.Series("effective_batch", [p.effective_batch for p in plans], dtype=pl.Int64),
    )
    return planned if time_model is None else with_time_estimates(planned, time_model)


def limits_table(
    budgets: dict[str, int], grid: pl.DataFrame, space: ArchSpace, n_features: int = N_FEATURES
) -> pl.DataFrame:
    """Per budget: how many architectures (and how many fit the memory plan when the grid has one),
    the n_layers and d_model ranges, how many feasible depths the space's n_layers_max cuts, and,
    when the grid has time estimates, what the trial time limit leaves out of the forced extremes
    (trial_time.time_left_out: how many, their d_model and n_layers ranges, the shortest estimate)."""
    left_out = left_out_depths(budgets, space, n_features)
    planned = "micro_batch" in grid.columns
    rows = []
    for label, budget in budgets.items():
        part = grid.filter(pl.col("budget") == label)
        empty = part.height == 0
        n_cut = int(left_out.filter(pl.col("budget") == label)["n_left_out"].sum())
        rows.append(
            {
                "budget": label,
                "budget_params": budget,
                "n_archs": part.height,
                "n_archs_fit_memory": int((part["micro_batch"] > 0).sum()) if planned else None,
                "min_n_layers": None if empty else int(cast(int, part["n_layers"].min())),
                "max_n_layers": None if empty else int(cast(int, part["n_layers"].max())),
                "min_d_model": None if empty else int(cast(int, part["d_model"].min())),
                "max_d_model": None if empty else int(cast(int, part["d_model"].max())),
                "depth_capped": n_cut > 0,
                "n_depths_left_out": n_cut,
            }
        )
    table = pl.DataFrame(rows)
    if "fits_time_limit" not in grid.columns:
        return table
    return table.join(time_left_out(grid), on="budget", how="left").with_columns(
        pl.col("n_archs_over_time_limit").fill_null(0)
    )


def verify_on_meta(grid: pl.DataFrame, n_features: int, ffn_mult: int) -> pl.DataFrame:
    """Instantiate, per d_model, its two shallowest depths of the grid on the meta device (with the
    largest head count) and compare sum(p.numel()) with the analytic count; returns the mismatching
    rows (empty when all agree). The model stacks identical layers, so its count is affine in
    n_layers: two depths per width pin the line, and building 40,000-layer models is avoided.
    Head count changes how attention is split, never the parameter count."""
    from proj_assets.scaling.model import ArchConfig, build_on_meta  # torch: only when verifying

    shapes = (
        grid.group_by("d_model", "n_layers")
        .agg(pl.col("n_heads").max(), pl.col("n_params").first())
        .sort("d_model", "n_layers")
        .group_by("d_model", maintain_order=True)
        .head(2)
    )
    bad = []
    for r in shapes.iter_rows(named=True):
        real = build_on_meta(
            ArchConfig(n_features, r["d_model"], r["n_layers"], r["n_heads"], ffn_mult)
        )
        if real != r["n_params"]:
            bad.append({**r, "numel_on_meta": real})
    return pl.DataFrame(
        bad,
        schema={
            **{k: pl.Int64 for k in ("d_model", "n_layers", "n_heads", "n_params")},
            "numel_on_meta": pl.Int64,
        },
    )
