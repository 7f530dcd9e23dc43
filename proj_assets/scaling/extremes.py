"""Forced extreme trials: the min and max of d_model, n_layers and n_heads within one budget's grid
(of the architectures that fit memory and, with time estimates, the trial time limit).

Within a budget d_model and n_layers are tied (a wider model is shallower), so "the others at
middle values" means: among the grid architectures at the extreme, the one whose other two
dimensions are closest (in rank) to their middle values. The non-architecture hyperparameters sit
at the middle of their ranges (geometric middle for log-scale ones). Extremes that pick the same
architecture are merged into one trial whose label names both (e.g. `d_model_min+n_layers_max`).
"""

from __future__ import annotations

import math
from typing import cast

import polars as pl

from proj_assets.scaling.search_space import feasible_archs
from proj_assets.scaling.settings import SearchSpace

ARCH_DIMS = ("d_model", "n_layers", "n_heads")
EXTREME_LABELS = tuple(f"{dim}_{end}" for dim in ARCH_DIMS for end in ("min", "max"))
NONE_FIT_SLACK = 2.0  # no architecture fits the time limit: extremes among those <= 2x the fastest


def middle_hyperparameters(search: SearchSpace) -> dict:
    contexts = sorted(search.context_lengths)
    return {
        "lr": math.sqrt(search.lr[0] * search.lr[1]),
        "weight_decay": math.sqrt(search.weight_decay[0] * search.weight_decay[1]),
        "dropout": (search.dropout[0] + search.dropout[1]) / 2,
        "context_length": contexts[(len(contexts) - 1) // 2],
    }


def _rank_distance(row: dict, ranks: dict[str, dict[int, float]], skip: str) -> float:
    return sum(abs(ranks[dim][row[dim]] - 0.5) for dim in ARCH_DIMS if dim != skip)


def extreme_candidates(budget_grid: pl.DataFrame) -> pl.DataFrame:
    """The architectures the extremes are taken from: those that fit the memory plan and, where the
    grid carries time estimates (trial_time.py), train within the trial time limit. When none fits
    the limit (the limits table then shows every one over it), those at most `NONE_FIT_SLACK`
    times slower than the fastest: the extremes of what comes closest."""
    fits_memory = feasible_archs(budget_grid)
    if "fits_time_limit" not in fits_memory.columns or fits_memory.height == 0:
        return fits_memory
    in_time = fits_memory.filter(pl.col("fits_time_limit"))
    if in_time.height:
        return in_time
    fastest = fits_memory["trial_time_estimate_s"].min()
    return fits_memory.filter(
        pl.col("trial_time_estimate_s") <= NONE_FIT_SLACK * cast(float, fastest)
    )


def extreme_architectures(budget_grid: pl.DataFrame) -> list[tuple[str, dict]]:
    """[(label, {d_model, n_layers, n_heads})] for one budget (among `extreme_candidates`), merged
    where they coincide, in a stable order (the order of EXTREME_LABELS)."""
    budget_grid = extreme_candidates(budget_grid)
    if budget_grid.height == 0:
        raise ValueError(
            "the budget has no architecture in the grid; widen the search space or tolerance"
        )
    archs = budget_grid.select(*ARCH_DIMS).unique().sort(list(ARCH_DIMS)).to_dicts()
    ranks = {}
    for dim in ARCH_DIMS:
        values = sorted({a[dim] for a in archs})
        span = max(len(values) - 1, 1)
        ranks[dim] = {v: i / span for i, v in enumerate(values)}
    chosen: dict[tuple, list[str]] = {}
    for dim in ARCH_DIMS:
        for end, pick in (("min", min), ("max", max)):
            target = pick(a[dim] for a in archs)
            best = min(
                (a for a in archs if a[dim] == target), key=lambda a: _rank_distance(a, ranks, dim)
            )
            chosen.setdefault(tuple(best[d] for d in ARCH_DIMS), []).append(f"{dim}_{end}")
    return [
        ("+".join(labels), dict(zip(ARCH_DIMS, arch, strict=True)))
        for arch, labels in chosen.items()
    ]


def covered_labels(label: str) -> set[str]:
    return set(label.split("+")) if label else set()
