"""One HPO cell (scaling/hpo/trials, budget 2k x horizon h1) on the cluster: its two trial-worker
ops run on the two Celery workers at once and share one Optuna study in PostgreSQL (RDBStorage,
heartbeats). One worker is SIGKILLed mid-trial: its trial is failed by the heartbeat and re-run
elsewhere; trial numbers are unique, each forced extreme is trained exactly once, and the forced
extremes' results equal an embedded run's for the same seeds."""

from __future__ import annotations

import os
import signal

import dagster as dg
import duckdb
import optuna
from optuna.trial import TrialState

from proj_assets.definitions import build_definitions
from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS
from proj_assets.profiles import Profile, load_profile
from proj_assets.scaling.assets import ARCH_GRID, TRIALS
from proj_assets.scaling.study import (
    EXTREME_ATTR,
    OWNER_ATTR,
    RETRY_ATTR,
    STORAGE_ENV,
    is_done,
    study_location,
)
from proj_cluster.local_cluster import environment
from proj_cluster.services import wait_until

CELL = dg.MultiPartitionKey({"budget": "2k", "horizon": "h1"})
WORKER_OP = "scaling_hpo_trials_worker_1"


def _materialize(instance, profile: Profile, data_dir, keys, partition=None):
    """In-process, with the code location the workers load (the cluster's profile)."""
    location = build_definitions(profile, data_dir)
    result = dg.materialize(
        [*location.assets, *location.asset_checks],
        resources=location.resources,
        instance=instance,
        partition_key=partition,
        selection=[dg.AssetKey(k) for k in keys],
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    # the demo data trip WARN checks on purpose (e.g. the splits' volatility-proxy share)
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in failed), failed


def _market_and_grid(instance, profile: Profile, data_dir):
    for ticker in ("SP500", "NASDAQ", "VIX"):
        _materialize(instance, profile, data_dir, [OHLCV], ticker)
    _materialize(instance, profile, data_dir, [FEATURES, TARGETS, SPLITS, ARCH_GRID])


def _study(url: str) -> optuna.Study:
    (name,) = [n for n in optuna.get_all_study_names(url) if n.endswith("__2k__h1")]
    return optuna.load_study(study_name=name, storage=url)


def _kill_worker_mid_trial(instance, study_url: str, groups: set[int]):
    """SIGKILL trial worker 1 while both workers are inside a trial's objective (each trial named
    by its worker; a worker killed inside `ask` is test_shared_study's case); (pid, running trial
    numbers)."""
    try:
        trials = _study(study_url).get_trials(states=(TrialState.RUNNING,))
    except ValueError:  # the study does not exist yet
        return None
    running = [t.number for t in trials if OWNER_ATTR in t.user_attrs]
    if len(running) < 2:
        return None
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        starts = [
            e
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            if e.step_key.endswith(WORKER_OP)
        ]
        if starts and os.getpgid(starts[0].dagster_event.pid) in groups:
            os.kill(starts[0].dagster_event.pid, signal.SIGKILL)
            return starts[0].dagster_event.pid, running
    return None


def _extreme_losses(study: optuna.Study) -> dict[str, float]:
    return {
        t.user_attrs[EXTREME_ATTR]: t.value
        for t in study.get_trials()
        if is_done(t) and EXTREME_ATTR in t.user_attrs
    }


def test_hpo_cell_shared_by_two_workers_survives_a_worker_killed_mid_trial(
    cluster, cluster_profile, tmp_path
):
    url, profile = cluster.env[STORAGE_ENV], load_profile(str(cluster_profile))
    with cluster.instance() as instance:
        _market_and_grid(instance, profile, cluster.data_dir)
        backfill_id = cluster.backfill("scaling/hpo/trials", [str(CELL)])
        groups = {w.pid for w in cluster.state.workers}
        _pid, running = wait_until(
            lambda: _kill_worker_mid_trial(instance, url, groups),
            400,
            "both trial workers mid-trial",
            interval=0.2,
        )

        def finished():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            return instance.get_backfill(backfill_id).status.value.startswith("COMPLETED") and runs

        runs = wait_until(finished, 600, "the HPO backfill to complete")
        assert sorted(r.status.value for r in runs) == [
            "FAILURE",
            "SUCCESS",
        ]  # the killed run, then its retry
        (retry,) = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        assert retry.tags["dagster/parent_run_id"] in {r.run_id for r in runs}

    trials = _study(url).get_trials()
    n_trials = profile.scaling.n_trials
    assert [t.number for t in trials] == list(range(len(trials)))  # unique, none lost
    assert sum(is_done(t) for t in trials) == n_trials
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    (killed,) = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and any(r.user_attrs.get(RETRY_ATTR) == t.number for r in trials)
    ]
    assert killed.number in running
    (rerun,) = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == killed.number]
    # the re-run finishes with the killed trial's parameters; the pruner may stop it like any
    # other non-extreme trial
    assert rerun.state in (TrialState.COMPLETE, TrialState.PRUNED) and rerun.params == killed.params
    extremes = [
        t.user_attrs[EXTREME_ATTR] for t in trials if is_done(t) and EXTREME_ATTR in t.user_attrs
    ]
    assert extremes and len(extremes) == len(
        set(extremes)
    )  # each forced extreme trained exactly once
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.datetime_complete)
    assert any(
        b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)
    )  # two workers trained at the same time

    with duckdb.connect(
        str(next((cluster.data_dir / "warehouse").glob("*.duckdb"))), read_only=True
    ) as conn:
        numbers = [
            r[0] for r in conn.execute("select trial_number from scaling_hpo.trials").fetchall()
        ]
    assert sorted(numbers) == [t.number for t in trials]  # one row per trial, written once

    local = tmp_path / "local"  # the same cell embedded: in-process, journal study, own data folder
    with (
        environment({STORAGE_ENV: "", "PROJ_DATA_DIR": str(local)}),
        dg.instance_for_test() as embedded,
    ):
        _market_and_grid(embedded, profile, local)
        _materialize(embedded, profile, local, [TRIALS], CELL)
        location = study_location(profile.scaling, local / "optuna" / profile.name, profile.name)
        (name,) = location.cell_study_names("2k", "h1")  # one input version, as on the cluster
        local_losses = _extreme_losses(
            optuna.load_study(study_name=name, storage=location.storage("2k", "h1"))
        )
    cluster_losses = _extreme_losses(_study(url))
    assert local_losses.keys() == cluster_losses.keys()
    assert all(abs(local_losses[k] - cluster_losses[k]) <= 1e-6 for k in local_losses), (
        local_losses,
        cluster_losses,
    )
