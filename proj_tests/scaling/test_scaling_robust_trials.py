"""Robust trials: a diverging loss fails the trial with its reason, infeasible architectures are
not in the sampling space, the ordered encoding maps every grid architecture to itself, forced
extremes are never pruned, and a trial killed mid-training resumes from its checkpoint."""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import polars as pl
import pytest
from optuna.trial import TrialState
from scaling_helpers import tiny_settings

from proj_assets.scaling.arch_grid import with_batch_plans
from proj_assets.scaling.checks_core import incomplete_cells
from proj_assets.scaling.extremes import extreme_architectures
from proj_assets.scaling.hpo import (
    CellContext,
    Objective,
    extreme_trials,
    make_sampler_and_pruner,
    run_trials,
)
from proj_assets.scaling.model import TimeSeriesTransformer
from proj_assets.scaling.search_space import ArchSpace, encode
from proj_assets.scaling.study import (
    StudyLocation,
    enqueue_missing_extremes,
    open_study,
    recover_stale_trials,
)
from proj_assets.scaling.trial_table import trials_frame

HERE = Path(__file__).resolve().parent


def _objective(grid, splits, settings, log=lambda _m: None, checkpoint_root=None, memory_mb=512):
    return Objective(
        CellContext(grid, splits, settings, memory_mb, "cpu", 7, checkpoint_root),
        lambda: False,
        log,
    )


def test_diverging_loss_fails_the_trial_with_its_reason(
    monkeypatch, tmp_path, budget_grid, splits, settings
):
    forward, calls = TimeSeriesTransformer.forward, {"n": 0}

    def nan_in_the_first_trial(self, windows):
        calls["n"] += 1
        out = forward(self, windows)
        return out * math.nan if calls["n"] == 1 else out  # the first step of trial 0 diverges

    monkeypatch.setattr(TimeSeriesTransformer, "forward", nan_in_the_first_trial)
    study = open_study(
        StudyLocation(tmp_path), "2k", "h1", *make_sampler_and_pruner(settings, seed=1)
    )
    assert (
        run_trials(study, _objective(budget_grid, splits, settings), n_trials=1) == 2
    )  # the partition goes on
    table = trials_frame(study, "2k", "h1", 2000)
    assert table["state"].to_list() == ["FAIL", "COMPLETE"]
    assert table["failed_reason"][0] == "diverged: training loss is nan at epoch 1, step 1"
    assert incomplete_cells(table, 1).height == 0  # the failure is explained


def test_infeasible_architectures_are_not_in_the_sampling_space(budget_grid, splits, settings):
    one_sample = with_batch_plans(budget_grid, 25, 8, 1, 1e9, 4)["memory_estimate_mb"].sort()
    budget_mb = float(one_sample[one_sample.len() // 2 - 1])  # the smaller half of the models fits
    planned = with_batch_plans(budget_grid, 25, 8, 64, budget_mb, 4)
    infeasible = planned.filter(pl.col("micro_batch") == 0)
    assert 0 < infeasible.height < planned.height
    bad = set(infeasible.select("d_model", "n_layers", "n_heads").iter_rows())
    objective = _objective(planned, splits, settings)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {
        tuple(objective.sample(study.ask())[k] for k in ("d_model", "n_layers", "n_heads"))
        for _ in range(200)
    }
    assert drawn and not drawn & bad
    assert drawn <= set(planned.select("d_model", "n_layers", "n_heads").iter_rows())


def test_every_grid_architecture_encodes_to_itself(budget_grid):
    space = ArchSpace(budget_grid)
    for arch in budget_grid.select("d_model", "n_layers", "n_heads").to_dicts():
        assert space.snap(**encode(arch)) == arch
    assert isinstance(space.bounds["n_layers"][0], int)


def test_forced_extremes_are_never_pruned(tmp_path, budget_grid, splits):
    settings = tiny_settings(
        pruner="median",
        pruner_startup_trials=0,
        trainer={"max_epochs": 3, "patience": 5, "effective_batch": 64, "trial_time_limit_s": 30},
    )
    study = open_study(
        StudyLocation(tmp_path), "2k", "h1", *make_sampler_and_pruner(settings, seed=1)
    )
    for _ in range(
        10
    ):  # finished trials far better than anything: the median prunes every other trial
        study.add_trial(
            optuna.trial.create_trial(
                params={}, distributions={}, value=0.0, intermediate_values={0: 0.0, 1: 0.0, 2: 0.0}
            )
        )
    enqueue_missing_extremes(study, extreme_trials(extreme_architectures(budget_grid), settings))
    run_trials(
        study,
        _objective(budget_grid, splits, settings),
        n_trials=10 + len(extreme_architectures(budget_grid)) + 2,
    )
    table = trials_frame(study, "2k", "h1", 2000)
    extremes = table.filter(pl.col("forced_extreme").is_not_null())
    assert set(extremes["state"]) == {"COMPLETE"} and set(extremes["epochs_run"]) == {3}
    assert (
        "PRUNED" in table.filter(pl.col("forced_extreme").is_null())["state"].to_list()
    )  # the control


KILLED_RUN = """
import os, sys
sys.path.insert(0, {here!r})
from scaling_helpers import synthetic_splits, tiny_settings
from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.hpo import CellContext, Objective, make_sampler_and_pruner, run_trials
from proj_assets.scaling.study import StudyLocation, open_study
from pathlib import Path
settings = tiny_settings(trainer={trainer!r})
grid = enumerate_grid({{"2k": 2000}}, settings.arch, 25)
study = open_study(StudyLocation(Path({path!r}).parent), "2k", "h1", *make_sampler_and_pruner(settings, seed=1))
study.enqueue_trial({params!r})
def log(message):
    print(message, flush=True)
    if message.startswith("epoch 4/"):
        os.kill(os.getpid(), 9)  # the worker dies mid-training, after the checkpoint of epoch 3
objective = Objective(CellContext(grid, synthetic_splits(), settings, 512, "cpu", 7, Path({ckpt!r})), lambda: False, log)
run_trials(study, objective, 1)
"""


def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path, budget_grid, splits):
    trainer = {
        "max_epochs": 6,
        "patience": 10,
        "effective_batch": 64,
        "trial_time_limit_s": 60,
        "checkpoint_every_epochs": 1,
    }
    settings = tiny_settings(trainer=trainer)
    params = extreme_trials(extreme_architectures(budget_grid), settings)[0][1]
    path, ckpt = tmp_path / "s.log", tmp_path / "ckpt"
    script = KILLED_RUN.format(
        here=str(HERE), trainer=trainer, path=str(path), params=params, ckpt=str(ckpt)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "epoch 3/6" in killed.stdout and len(list(ckpt.glob("*.pt"))) == 1

    study = open_study(
        StudyLocation(path.parent), "2k", "h1", *make_sampler_and_pruner(settings, seed=1)
    )
    assert recover_stale_trials(study, grace_s=0) == [0]
    messages = []
    run_trials(study, _objective(budget_grid, splits, settings, messages.append, ckpt), n_trials=1)
    retry = study.get_trials(states=(TrialState.COMPLETE,))[0]
    assert (
        retry.user_attrs["retry_of"] == 0
        and "resumed from the checkpoint after epoch 3" in messages
    )
    assert [m.split(":")[0] for m in messages if m.startswith("epoch")] == [
        f"epoch {e}/6" for e in (4, 5, 6)
    ]
    assert (
        retry.user_attrs["result"]["resumed_from_epoch"] == 3
        and retry.user_attrs["result"]["epochs_run"] == 6
    )
    assert not list(ckpt.glob("*.pt"))  # removed once the trial finished

    # the control: the same trial never killed reaches the same result
    control = open_study(
        StudyLocation(tmp_path / "control"), "2k", "h1", *make_sampler_and_pruner(settings, seed=1)
    )
    control.enqueue_trial(params)
    run_trials(control, _objective(budget_grid, splits, settings), n_trials=1)
    assert retry.value == pytest.approx(control.best_value, rel=1e-5)
