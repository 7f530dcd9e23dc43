"""The resumable study: forced extremes once, resume to n_trials, stale and interrupted trials
retried, infeasible trials recorded (several workers sharing a study: test_shared_study.py)."""

import os
import signal

import polars as pl
import pytest
from optuna.trial import TrialState
from scaling_helpers import checks_for, synthetic_market

from proj_assets.scaling.checks_core import (
    incomplete_cells,
    missing_extremes,
    missing_logged_values,
)
from proj_assets.scaling.extremes import EXTREME_LABELS, covered_labels, extreme_architectures
from proj_assets.scaling.graceful import GracefulStop
from proj_assets.scaling.hpo import (
    CellContext,
    Objective,
    extreme_trials,
    make_sampler_and_pruner,
    run_trials,
)
from proj_assets.scaling.study import (
    StudyLocation,
    enqueue_missing_extremes,
    is_surplus,
    n_done,
    open_study,
    recover_stale_trials,
)
from proj_assets.scaling.trial_table import trials_frame
from proj_assets.scaling.versions import cell_arrays, inputs_by_cell
from proj_resources.fingerprints import stamp_inputs


def _open(path, settings, inputs=None):
    return open_study(
        StudyLocation(path.parent), "2k", "h1", *make_sampler_and_pruner(settings, seed=1), inputs
    )


def _prepare(study, budget_grid, settings):
    recover_stale_trials(study, grace_s=0)
    return enqueue_missing_extremes(
        study, extreme_trials(extreme_architectures(budget_grid), settings)
    )


def _objective(budget_grid, splits, settings, should_stop=lambda: False, memory_mb=512):
    return Objective(
        CellContext(budget_grid, splits, settings, memory_mb, "cpu", 7),
        should_stop,
        lambda _m: None,
    )


def test_extremes_cover_every_label_once_and_are_enqueued_once(tmp_path, budget_grid, settings):
    extremes = extreme_architectures(budget_grid)
    labels = [lab for lab, _ in extremes]
    assert sorted(lab for label in labels for lab in covered_labels(label)) == sorted(
        EXTREME_LABELS
    )
    for dim in ("d_model", "n_layers", "n_heads"):
        values = [arch[dim] for _, arch in extremes]
        assert min(values) == budget_grid[dim].min() and max(values) == budget_grid[dim].max()
    study = _open(tmp_path / "2k__h1.log", settings)
    assert _prepare(study, budget_grid, settings) == labels
    assert (
        _prepare(_open(tmp_path / "2k__h1.log", settings), budget_grid, settings) == []
    )  # reopened: nothing new
    assert len(study.get_trials(states=(TrialState.WAITING,))) == len(labels)


def test_resume_adds_only_the_missing_trials(tmp_path, budget_grid, splits, settings):
    path = tmp_path / "2k__h1.log"
    study = _open(path, settings)
    _prepare(study, budget_grid, settings)
    assert run_trials(study, _objective(budget_grid, splits, settings), n_trials=3) == 3
    study = _open(path, settings)  # a later materialization, now asking for 6
    _prepare(study, budget_grid, settings)
    assert (
        run_trials(study, _objective(budget_grid, splits, settings), n_trials=settings.n_trials)
        == 3
    )
    table = trials_frame(study, "2k", "h1", 2000)
    assert table["trial_number"].to_list() == list(range(6)) and set(table["state"]) == {"COMPLETE"}
    extremes = table["forced_extreme"].drop_nulls().to_list()
    assert len(extremes) == len(set(extremes)) == len(extreme_architectures(budget_grid))
    assert table["forced_extreme"][: len(extremes)].to_list() == extremes  # extremes ran first
    assert run_trials(_open(path, settings), _objective(budget_grid, splits, settings), 6) == 0
    assert missing_logged_values(table).height == 0 and incomplete_cells(table, 6).height == 0
    assert missing_extremes(table, budget_grid).height == 0


def test_stale_running_trial_is_failed_and_retried(tmp_path, budget_grid, splits, settings):
    path = tmp_path / "2k__h1.log"
    study = _open(path, settings)
    _prepare(study, budget_grid, settings)
    killed = study.ask()  # what a killed run leaves behind: a RUNNING trial
    sampled = _objective(budget_grid, splits, settings).sample(killed)
    assert study.get_trials()[0].state == TrialState.RUNNING
    study = _open(path, settings)
    assert recover_stale_trials(study, grace_s=3600) == []  # just started: maybe a live worker's
    assert recover_stale_trials(study, grace_s=0) == [0]
    first, retry = study.get_trials()[0], study.get_trials()[-1]
    assert first.state == TrialState.FAIL and "died" in first.user_attrs["failed_reason"]
    assert retry.state == TrialState.WAITING and retry.user_attrs["retry_of"] == 0
    assert (
        retry.system_attrs["fixed_params"] == first.params and first.params["lr"] == sampled["lr"]
    )
    assert retry.user_attrs["forced_extreme"] == first.user_attrs["forced_extreme"]
    assert (
        enqueue_missing_extremes(
            study, extreme_trials(extreme_architectures(budget_grid), settings)
        )
        == []
    )
    run_trials(study, _objective(budget_grid, splits, settings), n_trials=settings.n_trials)
    table = trials_frame(study, "2k", "h1", 2000)
    assert n_done(study) == 6 and table.filter(table["state"] == "FAIL").height == 1
    assert incomplete_cells(table, 6).height == 0  # the failure is explained and was retried


def test_cancel_signal_stops_cleanly_and_the_study_resumes(tmp_path, budget_grid, splits, settings):
    path = tmp_path / "2k__h1.log"
    study = _open(path, settings)
    _prepare(study, budget_grid, settings)
    calls = {"n": 0}

    def cancel_after_three_steps():
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return stop()

    with pytest.raises(KeyboardInterrupt), GracefulStop() as stop:
        run_trials(
            study,
            _objective(budget_grid, splits, settings, cancel_after_three_steps),
            settings.n_trials,
        )
    trials = _open(path, settings).get_trials()
    assert [t.state for t in trials if t.state not in (TrialState.WAITING,)] == [TrialState.FAIL]
    assert trials[0].user_attrs["failed_reason"].startswith("interrupted")
    study = _open(path, settings)
    assert recover_stale_trials(study, grace_s=0) == []  # nothing left RUNNING
    run_trials(study, _objective(budget_grid, splits, settings), settings.n_trials)
    assert n_done(study) == 6 and study.get_trials()[-1].state == TrialState.COMPLETE


def test_infeasible_trials_are_recorded_not_crashes(tmp_path, budget_grid, splits, settings):
    study = _open(tmp_path / "2k__h1.log", settings)
    _prepare(study, budget_grid, settings)
    run_trials(study, _objective(budget_grid, splits, settings, memory_mb=1e-4), n_trials=2)
    table = trials_frame(study, "2k", "h1", 2000)
    # every forced extreme runs (even past n_trials=2), and each is recorded as infeasible
    assert table["state"].to_list() == ["FAIL"] * len(extreme_architectures(budget_grid))
    assert (
        all("exceeds" in r for r in table["infeasible_reason"])
        and table["n_heads"].null_count() == 0
    )


def _set_null(table, column, trial_number):
    return table.with_columns(
        pl.when(pl.col("trial_number") == trial_number)
        .then(None)
        .otherwise(pl.col(column))
        .alias(column)
    )


def test_trial_checks_fail_on_bad_tables(tmp_path, budget_grid, settings):
    import dagster as dg

    checks = checks_for(settings)
    market = synthetic_market()
    frames = dict(zip(("features", "targets", "splits"), market, strict=True))

    def all_params_logged(trials):  # the checks judge the rows of the cell's current inputs
        return checks["all_params_logged"](trials, arch_grid=budget_grid, **frames)

    def trials_complete(trials):
        return checks["trials_complete"](trials, arch_grid=budget_grid, **frames)

    inputs = inputs_by_cell([("2k", "h1")], budget_grid, settings, market)[("2k", "h1")]
    study = _open(tmp_path / "2k__h1.log", settings, inputs)
    _prepare(study, budget_grid, settings)
    splits = cell_arrays(*market, "h1")
    run_trials(study, _objective(budget_grid, splits, settings), n_trials=settings.n_trials)
    table = trials_frame(study, "2k", "h1", 2000)
    n = settings.n_trials
    assert set(table["state"]) == {"COMPLETE"} and table.height == n
    assert missing_logged_values(table).height == 0 and incomplete_cells(table, n).height == 0

    # (a) a hyperparameter missing on one COMPLETE row, an outcome field on another: both named
    bad = _set_null(_set_null(table, "n_heads", 1), "val_roc_auc", 3)
    missing = missing_logged_values(bad)
    assert missing.select("trial_number", "state", "missing").rows() == [
        (1, "COMPLETE", "n_heads"),
        (3, "COMPLETE", "val_roc_auc"),
    ]
    result = all_params_logged(bad)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["n_failing"].value == 2
    # the same bad rows from an earlier data version are superseded history: not judged, reported
    history = pl.concat([table, stamp_inputs(bad, {**inputs, "data": "earlier"})])
    result = all_params_logged(history)
    assert result.passed and result.metadata["staleness"].value["superseded_rows"] == n
    assert result.metadata["staleness"].value["changed_inputs"] == ["data"]

    # (b) one trial short of the requested count: the cell is reported
    short = incomplete_cells(table, n + 1)
    assert short.rows(named=True) == [
        {"budget": "2k", "horizon": "h1", "n_counted": n, "n_unexplained_fail": 0}
    ]

    # (c) a FAIL trial with neither an infeasible nor a failed reason: the cell is reported as
    # incomplete even though it holds enough counted trials; missing_logged_values only asks a FAIL
    # row for its hyperparameters, so its absent outcome fields are not reported there
    fail = table.filter(pl.col("trial_number") == 0).with_columns(
        pl.lit("FAIL").alias("state"),
        pl.lit(n).cast(table.schema["trial_number"]).alias("trial_number"),
        pl.lit(None, dtype=table.schema["val_loss"]).alias("val_loss"),
        pl.lit(None, dtype=table.schema["infeasible_reason"]).alias("infeasible_reason"),
        pl.lit(None, dtype=table.schema["failed_reason"]).alias("failed_reason"),
    )
    with_fail = pl.concat([table, fail])
    assert incomplete_cells(with_fail, n).rows(named=True) == [
        {"budget": "2k", "horizon": "h1", "n_counted": n, "n_unexplained_fail": 1}
    ]
    assert missing_logged_values(with_fail).height == 0
    explained = with_fail.with_columns(
        pl.when(pl.col("state") == "FAIL")
        .then(pl.lit("boom"))
        .otherwise(pl.col("failed_reason"))
        .alias("failed_reason")
    )
    assert incomplete_cells(explained, n).height == 0
    result = trials_complete(with_fail)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.WARN

    # (d) a surplus trial (a second worker started it past n_trials) never sampled anything: its
    # explained FAIL row has no hyperparameters and is not reported; without the reason it would be
    extra = study.ask()
    assert is_surplus(extra, n)
    study.tell(extra, state=TrialState.FAIL)
    raced = trials_frame(study, "2k", "h1", 2000)
    surplus = raced.filter(pl.col("trial_number") == extra.number)
    assert surplus["failed_reason"][0].startswith("surplus") and surplus["n_heads"][0] is None
    assert missing_logged_values(raced).height == 0 and all_params_logged(raced).passed
    unexplained = raced.with_columns(pl.lit(None, dtype=pl.Utf8).alias("failed_reason"))
    assert missing_logged_values(unexplained)["trial_number"].to_list() == [extra.number]

    # (e) a surplus trial that had claimed enqueued parameters gives them back to the queue
    study.enqueue_trial({"lr": 0.003}, user_attrs={"note": "queued by hand"})
    claimed = study.ask()
    assert claimed.params == {} and is_surplus(claimed, n)
    study.tell(claimed, state=TrialState.FAIL)
    (waiting,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert (
        waiting.system_attrs["fixed_params"] == {"lr": 0.003}
        and waiting.user_attrs["retry_of"] == claimed.number
    )
