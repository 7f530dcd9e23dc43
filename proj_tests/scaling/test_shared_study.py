"""Several OS processes serve one (budget, horizon) study at once (shared_study_worker.py).

Two workers on one journal file: unique trial numbers, the study stops at n_trials overall, every
forced extreme (enqueued once, before the workers start) is trained exactly once, both workers
did work. A worker SIGKILLed mid-trial: with heartbeat storage (Optuna RDBStorage, here on a
SQLite file) and with journal files (worker lock), its trial is failed and re-run by another
worker with the same parameters, and a live worker's trial is never failed.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from proj_assets.scaling.extremes import extreme_architectures
from proj_assets.scaling.hpo import extreme_trials, make_sampler_and_pruner
from proj_assets.scaling.study import (
    EXTREME_ATTR,
    OWNER_ATTR,
    RETRY_ATTR,
    StudyLocation,
    claim,
    enqueue_missing_extremes,
    is_done,
    open_study,
    recover_stale_trials,
)

WORKER = Path(__file__).with_name("shared_study_worker.py")


def _start(
    mode: str, root: Path, url: str, n_trials: int, worker: int, go: Path
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(root), url, str(n_trials), str(worker), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _study(root: Path, url: str | None, settings):
    location = StudyLocation(root, url, heartbeat_s=1, grace_s=3)
    return open_study(location, "2k", "h1", *make_sampler_and_pruner(settings, seed=1))


def test_two_workers_share_one_study(tmp_path, budget_grid, settings):
    n_trials = 8
    study = _study(tmp_path, None, settings)
    labels = enqueue_missing_extremes(
        study, extreme_trials(extreme_architectures(budget_grid), settings)
    )
    assert (
        labels
        and enqueue_missing_extremes(
            study, extreme_trials(extreme_architectures(budget_grid), settings)
        )
        == []
    )
    go = tmp_path / "go"
    workers = [_start("train", tmp_path, "-", n_trials, i, go) for i in range(2)]
    time.sleep(4)  # both import and wait at the barrier
    go.touch()
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    trials = _study(tmp_path, None, settings).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    done = [t for t in trials if is_done(t)]
    assert len(done) == n_trials  # stopped at n_trials overall, not n_trials per worker
    assert sorted(
        t.user_attrs[EXTREME_ATTR] for t in done if EXTREME_ATTR in t.user_attrs
    ) == sorted(labels)
    ran = [int(o.strip().rsplit(" ", 1)[-1]) for o in outputs]
    assert min(ran) >= 1 and sum(ran) >= n_trials, ran
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.parametrize("storage", ["heartbeat", "journal"])
def test_a_worker_killed_mid_trial_is_failed_and_rerun(tmp_path, settings, storage):
    url = f"sqlite:///{tmp_path / 'studies.db'}" if storage == "heartbeat" else None
    study = _study(tmp_path, url, settings)  # create the storage before the workers race for it
    go = tmp_path / "go"
    go.touch()
    doomed = _start("hang", tmp_path, url or "-", 3, 0, go)
    deadline = time.time() + 120
    while not study.get_trials(states=(TrialState.RUNNING,)):
        assert doomed.poll() is None and time.time() < deadline, doomed.communicate()[0][-3000:]
        time.sleep(0.2)
    (killed,) = study.get_trials(states=(TrialState.RUNNING,))
    while (
        "lr" not in study.get_trials()[killed.number].params
    ):  # killed after sampling, as a real trial
        assert time.time() < deadline
        time.sleep(0.1)
    if storage == "journal":  # the trial is named by its owner right after it starts
        while "worker" not in study.get_trials()[killed.number].user_attrs:
            time.sleep(0.1)
        assert recover_stale_trials(study, grace_s=0) == []  # its worker is alive: left alone
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    survivor = _start("train", tmp_path, url or "-", 3, 1, go)
    output = survivor.communicate(timeout=300)[0]
    assert survivor.returncode == 0, output[-3000:]

    trials = _study(tmp_path, url, settings).get_trials()
    failed = trials[killed.number]
    assert failed.state == TrialState.FAIL
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params["lr"] == failed.params["lr"]
    assert sum(is_done(t) for t in trials) == 3


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_rerun(
    tmp_path, settings
):
    """Optuna's stale check skips a RUNNING trial with no heartbeat row, which is what a worker
    killed inside `ask` leaves (the cluster HPO test once hung on one for its whole timeout)."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = _study(tmp_path, url, settings)
    orphan = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    live = study.ask()
    claim(live, "run-1")  # its objective began: a heartbeat, then its owner
    optuna.storages.fail_stale_trials(study)
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 2  # optuna leaves the orphan
    assert recover_stale_trials(study, grace_s=3600) == []  # within the grace: left alone
    assert recover_stale_trials(study, grace_s=0) == [orphan.number]
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[live.number].state == TrialState.RUNNING  # named, with a fresh heartbeat
    assert trials[live.number].user_attrs[OWNER_ATTR] == "run-1"
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == orphan.number]
    assert retry.state == TrialState.WAITING  # queued with the orphan's parameters
    assert retry.system_attrs["fixed_params"] == trials[orphan.number].params
    time.sleep(4)  # past the storage's 3 s grace period with no beat: the named trial has a row
    assert recover_stale_trials(study, grace_s=0) == [live.number]
