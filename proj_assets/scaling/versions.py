"""The input versions scaling results are stamped with, and which stored rows are current.

A trial is valid only for the inputs that produced it: the cell's data and splits (a content hash
of the arrays it trains on, `model_store.data_version`), the trainer settings that change what
training computes, the budget's feasible architectures (grid), the other search ranges with the
encoding, and the scaling code version. Their fingerprint (`proj_resources.fingerprints`) is the
study version: a change of any of them opens a new Optuna study for the cell, so old trials are
never mixed with new ones (nor crash a categorical whose choices changed) and stay as superseded
history. `arch_grid` rows carry the settings they were built from, so a reader refuses a grid the
active profile would not build.

Pure: no dagster import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict

import polars as pl

from proj_assets.scaling.search_space import ENCODING_VERSION, feasible_archs
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.trial_time import TrialTimeModel
from proj_resources.fingerprints import (
    INPUT_VERSIONS,
    changed_inputs,
    current_rows,
    fingerprint,
    staleness,
)
from proj_resources.hashing import canonical_hash

# Bump when the code changes what a result holds; also the assets' Dagster code_version.
GRID_CODE_VERSION = "2"  # 2: time estimates from the trainer (issue 21)
TRIALS_CODE_VERSION = "2"  # 2: input fingerprints, one study per input version
SEED_RUNS_CODE_VERSION = "2"
REPORT_CODE_VERSION = "2"
ARCH_GRID_KEY = "scaling/design/arch_grid"
CELL = ["budget", "horizon"]
# Trainer fields that change no trained weight: checkpoint cadence, thread count and the grid's
# time-estimate constants (those are arch_grid inputs).
TRAINER_NOT_IN_RESULTS = frozenset(
    {"checkpoint_every_epochs", "torch_threads", "time_estimate_windows", "flops_per_second"}
    | {"layer_step_overhead_s"}
)


class StaleGrid(ValueError):
    """The stored arch_grid was built from other settings than the active profile's."""


def time_model(settings: ScalingSettings) -> TrialTimeModel:
    """The trial time model of the grid: the trainer at the space's longest context."""
    return TrialTimeModel.from_trainer(settings.trainer, max(settings.search.context_lengths))


def grid_inputs(settings: ScalingSettings, memory_budget_mb: float) -> dict[str, str]:
    """What `arch_grid` is built from: budgets, the architecture space, the batch plan's inputs,
    the time model and the grid code."""
    return {
        "scaling.budgets": canonical_hash(settings.budgets),
        "scaling.arch": canonical_hash(settings.arch.model_dump()),
        "batch_plan": canonical_hash(
            {
                "context": max(settings.search.context_lengths),
                "effective_batch": settings.trainer.effective_batch,
                "memory_budget_mb": memory_budget_mb,
            }
        ),
        "time_model": canonical_hash(asdict(time_model(settings))),
        "code": GRID_CODE_VERSION,
    }


def require_current_grid(
    arch_grid: pl.DataFrame, settings: ScalingSettings, memory_budget_mb: float
) -> None:
    """Raise `StaleGrid`, naming the asset to re-materialize and the settings that differ, when
    the stored grid was not built from the active profile's settings."""
    expected = grid_inputs(settings, memory_budget_mb)
    if arch_grid.height and current_rows(arch_grid, expected).height == arch_grid.height:
        return
    stored = arch_grid[INPUT_VERSIONS][0] if INPUT_VERSIONS in arch_grid.columns else None
    changed = changed_inputs(stored, expected) if arch_grid.height else ["empty"]
    raise StaleGrid(
        f"the stored {ARCH_GRID_KEY} was built from other settings than the active profile "
        f"(changed: {', '.join(changed)}); re-materialize {ARCH_GRID_KEY} first"
    )


def trainer_version(settings: ScalingSettings) -> str:
    fields = settings.trainer.model_dump(exclude=set(TRAINER_NOT_IN_RESULTS))
    return canonical_hash(fields)


def cell_inputs(
    budget_grid: pl.DataFrame, settings: ScalingSettings, data_version: str
) -> dict[str, str]:
    """The input versions of one (budget, horizon) cell's trials; `data_version` is the content
    hash of its split arrays (`model_store.data_version`)."""
    archs = sorted(feasible_archs(budget_grid).select("d_model", "n_layers", "n_heads").iter_rows())
    return {
        "data": data_version,
        "trainer": trainer_version(settings),
        "grid": canonical_hash(archs),
        "search": canonical_hash(
            {"encoding": ENCODING_VERSION, "search": settings.search.model_dump()}
        ),
        "code": TRIALS_CODE_VERSION,
    }


def study_version(inputs: Mapping[str, str]) -> str:
    return fingerprint(inputs)


def stored_inputs(row: Mapping) -> dict[str, str]:
    """The input versions a stored row (e.g. a best_trials row) was stamped with."""
    return json.loads(row[INPUT_VERSIONS]) if row.get(INPUT_VERSIONS) else {}


def select_current(
    rows: pl.DataFrame, inputs_by_cell: Mapping[tuple[str, str], Mapping[str, str]]
) -> tuple[pl.DataFrame, dict]:
    """Per (budget, horizon) the rows produced by that cell's current inputs, and what a reader
    reports: current and superseded row counts, the inputs that changed, and the cells holding
    superseded rows (`stale_cells`) or no current row (`cells_without_current_rows`). A cell
    missing from `inputs_by_cell` (a budget no longer in the profile) is all superseded."""
    kept, current, superseded, changed, stale, empty = [], 0, 0, set(), [], []
    for (budget, horizon), group in rows.group_by(CELL, maintain_order=True):
        inputs = inputs_by_cell.get((str(budget), str(horizon)), {"cell": "not in the profile"})
        report = staleness(group, inputs)
        kept.append(current_rows(group, inputs))
        current += report["current_rows"]
        superseded += report["superseded_rows"]
        changed |= set(report["changed_inputs"])
        if report["superseded_rows"]:
            stale.append(f"{budget}/{horizon}")
        if not report["current_rows"]:
            empty.append(f"{budget}/{horizon}")
    selected = pl.concat(kept) if kept else rows.clear()
    return selected, {
        "current_rows": current,
        "superseded_rows": superseded,
        "changed_inputs": sorted(changed),
        "stale_cells": sorted(stale),
        "cells_without_current_rows": sorted(empty),
    }


def cell_arrays(
    features: pl.DataFrame, targets: pl.DataFrame, splits: pl.DataFrame, horizon: str
) -> dict:
    """Split -> (X, y) of one horizon (`h3`), what the cell's trials and seed runs train on."""
    from proj_assets.market.panel import split_arrays

    arrays = split_arrays(features, targets, splits, int(horizon.removeprefix("h")))
    return {"train": arrays.train, "val": arrays.val, "test": arrays.test}


def inputs_by_cell(
    cells: list[tuple[str, str]],
    arch_grid: pl.DataFrame,
    settings: ScalingSettings,
    market: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> dict[tuple[str, str], dict[str, str]]:
    """The current inputs of each (budget, horizon) of `cells` still in the profile, from the
    stored grid and the market's (features, targets, splits); one data version per horizon."""
    from proj_assets.scaling.model_store import data_version

    data = {h: data_version(cell_arrays(*market, h)) for h in sorted({h for _b, h in cells})}
    return {
        (budget, horizon): cell_inputs(
            arch_grid.filter(pl.col("budget") == budget), settings, data[horizon]
        )
        for budget, horizon in cells
        if budget in settings.budgets
    }
