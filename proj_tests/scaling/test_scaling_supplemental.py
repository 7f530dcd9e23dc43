"""Study versions: widening a finished study's grid opens a new study version of the cell (its
extremes and n_trials run there; the old trials stay as superseded history, never mixed into the
current rows); a killed and resumed study never replays earlier parameters."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
from optuna.trial import TrialState
from scaling_helpers import tiny_settings

from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.checks_core import missing_extremes
from proj_assets.scaling.extremes import extreme_architectures
from proj_assets.scaling.hpo import (
    CellContext,
    Objective,
    extreme_trials,
    reseed_for_resume,
    run_trials,
)
from proj_assets.scaling.model_store import data_version
from proj_assets.scaling.study import (
    StudyLocation,
    enqueue_missing_extremes,
    is_done,
    open_study,
    recover_stale_trials,
)
from proj_assets.scaling.trial_table import cell_trials_frame, trials_frame
from proj_assets.scaling.versions import cell_inputs
from proj_resources.fingerprints import current_rows, staleness, superseded_rows

HERE = Path(__file__).resolve().parent
ARCH = {
    "d_model_min": 8,
    "d_model_step": 4,
    "n_layers_max": None,
    "n_heads": [1, 2, 4],
    "min_head_dim": 4,
    "tolerance": 0.25,
}


def _settings(d_model_max: int):
    return tiny_settings(budgets={"6k": 6000}, arch={**ARCH, "d_model_max": d_model_max})


def _objective(grid, splits, settings, inputs=None, log=lambda _m: None):
    return Objective(
        CellContext(grid, splits, settings, 512, "cpu", 7, inputs=inputs), lambda: False, log
    )


def _open(root, settings, seed=1, inputs=None):
    from proj_assets.scaling.hpo import make_sampler_and_pruner

    return open_study(
        StudyLocation(root), "6k", "h1", *make_sampler_and_pruner(settings, seed=seed), inputs
    )


def _enqueue_extremes(study, grid, settings) -> list[str]:
    return enqueue_missing_extremes(study, extreme_trials(extreme_architectures(grid), settings))


def test_a_widened_grid_opens_a_new_study_version_and_keeps_the_old_one_as_history(
    tmp_path, splits
):
    narrow, wide = _settings(16), _settings(20)
    grid_n, grid_w = (enumerate_grid({"6k": 6000}, s.arch, 25) for s in (narrow, wide))
    assert grid_w["d_model"].max() > grid_n["d_model"].max()
    old, new = (
        cell_inputs(g, s, data_version(splits)) for g, s in ((grid_n, narrow), (grid_w, wide))
    )
    assert [k for k in old if old[k] != new[k]] == ["grid"]  # only the grid changed

    first = _open(tmp_path, narrow, inputs=old)
    _enqueue_extremes(first, grid_n, narrow)
    run_trials(first, _objective(grid_n, splits, narrow, old), n_trials=narrow.n_trials)
    before = cell_trials_frame(StudyLocation(tmp_path), "6k", "h1", 6000)
    assert current_rows(before, old).height == narrow.n_trials
    assert missing_extremes(before, grid_w).height > 0  # the finished study misses the new width

    second = _open(tmp_path, wide, inputs=new)  # the widened grid: another study of the cell
    assert second.study_name != first.study_name and _enqueue_extremes(second, grid_w, wide)
    ran = run_trials(second, _objective(grid_w, splits, wide, new), n_trials=wide.n_trials)
    assert ran == wide.n_trials  # a full study, not supplemental trials beside the old ones
    after = cell_trials_frame(StudyLocation(tmp_path), "6k", "h1", 6000)
    current, history = current_rows(after, new), superseded_rows(after, new)
    assert current.height == wide.n_trials and set(current["study"]) == {second.study_name}
    assert history.select("trial_number", "d_model", "val_loss").equals(
        before.select("trial_number", "d_model", "val_loss")
    )  # old trials kept unchanged, as history
    assert staleness(after, new) == {
        "current_rows": wide.n_trials,
        "superseded_rows": narrow.n_trials,
        "changed_inputs": ["grid"],
    }
    assert missing_extremes(current, grid_w).height == 0
    assert all(t.user_attrs["input_versions"] == new for t in second.get_trials())
    again = _open(tmp_path, wide, inputs=new)  # the same inputs again: nothing new to run
    assert _enqueue_extremes(again, grid_w, wide) == []
    assert run_trials(again, _objective(grid_w, splits, wide, new), n_trials=wide.n_trials) == 0


def test_reopening_with_the_same_sampler_seed_replays_and_reseeding_does_not(tmp_path, splits):
    settings = _settings(16)
    grid = enumerate_grid({"6k": 6000}, settings.arch, 25)
    first = _open(tmp_path / "a", settings)
    drawn = [_objective(grid, splits, settings).sample(first.ask()) for _ in range(3)]
    replay = _open(tmp_path / "a", settings)  # the control: a resumed study with the same seed
    assert _objective(grid, splits, settings).sample(replay.ask()) == drawn[0]
    resumed = _open(tmp_path / "a", settings)
    reseed_for_resume(resumed, settings, 1)
    assert _objective(grid, splits, settings).sample(resumed.ask()) not in drawn


KILLED_STUDY = """
import os, sys
sys.path.insert(0, {here!r})
from pathlib import Path
from scaling_helpers import synthetic_splits, tiny_settings
from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.hpo import CellContext, Objective, make_sampler_and_pruner, reseed_for_resume, run_trials
from proj_assets.scaling.study import StudyLocation, open_study
settings = tiny_settings(budgets={{"6k": 6000}}, arch={arch!r})
grid = enumerate_grid({{"6k": 6000}}, settings.arch, 25)
study = open_study(StudyLocation(Path({root!r})), "6k", "h1", *make_sampler_and_pruner(settings, seed=1))
reseed_for_resume(study, settings, 1)
epochs = []
def log(message):
    epochs.append(message)
    if sum(m.startswith("epoch 1/") for m in epochs) == 4:
        os.kill(os.getpid(), 9)  # killed in its fourth trial
run_trials(study, Objective(CellContext(grid, synthetic_splits(), settings, 512, "cpu", 7), lambda: False, log), 20)
"""


def test_a_killed_and_resumed_study_never_repeats_parameters(tmp_path, splits):
    settings = _settings(16).model_copy(update={"n_trials": 8})
    grid = enumerate_grid({"6k": 6000}, settings.arch, 25)
    script = KILLED_STUDY.format(
        here=str(HERE), arch={**ARCH, "d_model_max": 16}, root=str(tmp_path)
    )
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    study = _open(tmp_path, settings)
    assert sum(is_done(t) for t in study.get_trials()) == 3
    assert recover_stale_trials(study, grace_s=0) == [3]
    reseed_for_resume(study, settings, 1)  # what every trial worker does when it opens the study
    run_trials(study, _objective(grid, splits, settings), n_trials=settings.n_trials)
    counted = [t for t in study.get_trials() if is_done(t)]
    assert len(counted) == settings.n_trials and study.get_trials()[3].state == TrialState.FAIL
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(params)) == len(params)
    table = trials_frame(study, "6k", "h1", 6000)
    assert table.filter(pl.col("retry_of") == 3).height == 1  # the killed trial was re-run once
