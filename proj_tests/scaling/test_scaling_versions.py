"""Input versions of scaling results (versions.py): what each version covers, the refusal of a
stored grid the profile would not build, current-row selection per cell, and why a changed
categorical needs its own study (Optuna refuses it in the old one; the error is recorded on the
trial)."""

import optuna
import polars as pl
import pytest
from scaling_helpers import tiny_settings

from proj_assets.scaling.checks_core import missing_logged_values
from proj_assets.scaling.hpo import CellContext, Objective, make_sampler_and_pruner, run_trials
from proj_assets.scaling.model_store import data_version
from proj_assets.scaling.study import FAILED_REASON_ATTR, StudyLocation, open_study
from proj_assets.scaling.trial_table import trials_frame
from proj_assets.scaling.versions import (
    ARCH_GRID_KEY,
    StaleGrid,
    cell_inputs,
    grid_inputs,
    require_current_grid,
    select_current,
)
from proj_resources.fingerprints import stamp_inputs


def test_each_input_changes_only_its_own_version(budget_grid, splits):
    base = tiny_settings()
    inputs = cell_inputs(budget_grid, base, data_version(splits))
    threads = tiny_settings(trainer={**base.trainer.model_dump(), "torch_threads": 1})
    patience = tiny_settings(trainer={**base.trainer.model_dump(), "patience": 2})
    contexts = tiny_settings(search={"context_lengths": [4, 8, 16]})
    other_data = data_version({**splits, "val": (splits["val"][0] + 1, splits["val"][1])})

    def changed(new: dict) -> list[str]:
        return [k for k in inputs if inputs[k] != new[k]]

    assert changed(cell_inputs(budget_grid, threads, data_version(splits))) == []
    assert changed(cell_inputs(budget_grid, patience, data_version(splits))) == ["trainer"]
    assert changed(cell_inputs(budget_grid, contexts, data_version(splits))) == ["search"]
    assert changed(cell_inputs(budget_grid, base, other_data)) == ["data"]
    assert changed(cell_inputs(budget_grid.head(3), base, data_version(splits))) == ["grid"]


def test_a_grid_built_from_other_settings_is_refused_naming_the_asset(budget_grid):
    settings = tiny_settings()
    stored = stamp_inputs(budget_grid, grid_inputs(settings, 512))
    require_current_grid(stored, settings, 512)  # the profile's own grid passes
    wider = tiny_settings(arch={**settings.arch.model_dump(), "d_model_max": 28})
    for grid, active, memory, changed in (
        (stored, wider, 512, "scaling.arch"),
        (stored, settings, 1024, "batch_plan"),
        (budget_grid, settings, 512, "unfingerprinted"),  # written before grids carried versions
    ):
        with pytest.raises(StaleGrid, match=f"changed: {changed}.*re-materialize {ARCH_GRID_KEY}"):
            require_current_grid(grid, active, memory)


def test_current_rows_are_chosen_per_cell_and_the_rest_reported():
    rows = pl.DataFrame({"budget": ["2k", "2k", "6k", "20k"], "horizon": ["h1"] * 4})
    stamped = pl.concat(
        [
            stamp_inputs(rows[0:1], {"data": "new"}),
            stamp_inputs(rows[1:2], {"data": "old"}),
            stamp_inputs(rows[2:3], {"data": "new", "grid": "old"}),
            stamp_inputs(rows[3:4], {"data": "new"}),  # a budget no longer in the profile
        ]
    )
    now = {("2k", "h1"): {"data": "new"}, ("6k", "h1"): {"data": "new", "grid": "new"}}
    current, report = select_current(stamped, now)
    assert current.select("budget", "horizon").rows() == [("2k", "h1")]
    assert report == {
        "current_rows": 1,
        "superseded_rows": 3,
        "changed_inputs": ["cell", "data", "grid"],
        "stale_cells": ["20k/h1", "2k/h1", "6k/h1"],
        "cells_without_current_rows": ["20k/h1", "6k/h1"],
    }


def test_a_new_categorical_in_an_old_study_fails_with_its_reason_recorded(
    tmp_path, budget_grid, splits
):
    """The control for opening a new study version: adding a context length to a study that
    already has trials makes Optuna refuse the draw; the failed trial says why, so the blocking
    all_params_logged check does not fail on it from then on."""
    narrow, wide = tiny_settings(n_trials=1), tiny_settings(search={"context_lengths": [4, 8, 16]})
    study = open_study(StudyLocation(tmp_path), "2k", "h1", *make_sampler_and_pruner(narrow, 1))

    def objective(settings):
        context = CellContext(budget_grid, splits, settings, 512, "cpu", 7)
        return Objective(context, lambda: False, lambda _m: None)

    run_trials(study, objective(narrow), n_trials=1)
    with pytest.raises(ValueError, match="CategoricalDistribution does not support dynamic"):
        run_trials(study, objective(wide), n_trials=2)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(failed) == 1
    assert failed[0].user_attrs[FAILED_REASON_ATTR].startswith("error: ValueError: ")
    assert missing_logged_values(trials_frame(study, "2k", "h1", 2000)).height == 0
