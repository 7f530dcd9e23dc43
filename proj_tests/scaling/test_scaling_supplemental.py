"""A versioned search space: widening a finished study's grid enqueues the new extremes by value
and runs them as supplemental trials after n_trials (old trials stay, extremes_covered passes on
the current grid); a killed and resumed study never replays earlier parameters."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
from optuna.trial import TrialState
from scaling_helpers import checks_for, tiny_settings

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
from proj_assets.scaling.search_space import space_version
from proj_assets.scaling.study import (
    SPACE_VERSIONS_ATTR,
    StudyLocation,
    enqueue_missing_extremes,
    is_done,
    open_study,
    record_space_version,
    recover_stale_trials,
)
from proj_assets.scaling.trial_table import trials_frame

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


def _objective(grid, splits, settings, version=None, log=lambda _m: None):
    return Objective(
        CellContext(grid, splits, settings, 512, "cpu", 7, space_version=version),
        lambda: False,
        log,
    )


def _open(root, settings, seed=1):
    from proj_assets.scaling.hpo import make_sampler_and_pruner

    return open_study(
        StudyLocation(root), "6k", "h1", *make_sampler_and_pruner(settings, seed=seed)
    )


def _prepare(study, grid, settings) -> tuple[str, bool, list[str]]:
    version = space_version(grid, settings.search.model_dump())
    changed = record_space_version(study, version)
    return (
        version,
        changed,
        enqueue_missing_extremes(study, extreme_trials(extreme_architectures(grid), settings)),
    )


def test_a_widened_grid_runs_its_new_extremes_after_n_trials(tmp_path, splits):
    narrow, wide = _settings(16), _settings(20)
    extremes_covered = checks_for(wide)["extremes_covered"]
    grid_n, grid_w = (enumerate_grid({"6k": 6000}, s.arch, 25) for s in (narrow, wide))
    assert (
        grid_w["d_model"].max() > grid_n["d_model"].max()
        and grid_w["n_layers"].min() < grid_n["n_layers"].min()
    )
    study = _open(tmp_path, narrow)
    v1, changed, _ = _prepare(study, grid_n, narrow)
    assert changed
    run_trials(study, _objective(grid_n, splits, narrow, v1), n_trials=narrow.n_trials)
    before = trials_frame(study, "6k", "h1", 6000)
    assert before.height == narrow.n_trials and missing_extremes(before, grid_n).height == 0
    assert (
        extremes_covered(before, grid_w).passed is False
    )  # the study is finished, the wider grid is not covered

    v2, changed, added = _prepare(_open(tmp_path, wide), grid_w, wide)  # the grid widens
    assert changed and v2 != v1 and added
    study = _open(tmp_path, wide)
    ran = run_trials(
        study, _objective(grid_w, splits, wide, v2), n_trials=wide.n_trials
    )  # n_trials already reached
    after = trials_frame(study, "6k", "h1", 6000)
    assert ran == len(added) and after.height == before.height + len(added)
    assert (
        after.head(before.height)
        .select("trial_number", "d_model", "val_loss")
        .equals(before.select("trial_number", "d_model", "val_loss"))
    )  # old trials stay
    new = after.tail(len(added))
    assert set(new["state"]) == {"COMPLETE"} and set(new["forced_extreme"].to_list()) == set(added)
    assert set(new["space_version"]) == {v2} and set(
        after.head(before.height)["space_version"]
    ) == {v1}
    assert missing_extremes(after, grid_w).height == 0 and extremes_covered(after, grid_w).passed
    assert study.user_attrs[SPACE_VERSIONS_ATTR] == [v1, v2]
    assert _prepare(study, grid_w, wide)[1:] == (False, [])  # the same space again: nothing new


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
