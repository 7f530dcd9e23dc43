"""One persistent Optuna study per (budget, horizon) partition, safe to resume.

Storage is an Optuna journal file per partition (`<root>/<budget>__<horizon>.log`), so runs of
different partitions never contend. A lock file held for the whole optimisation makes a second
run of the *same* partition fail fast; therefore any trial still RUNNING when the lock is taken
was left by a killed run, and `recover_stale_trials` fails it and enqueues it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

RETRY_ATTR = "retry_of"
EXTREME_ATTR = "forced_extreme"
INFEASIBLE_ATTR = "infeasible"
FAILED_REASON_ATTR = "failed_reason"


class StudyBusy(RuntimeError):
    """Another process is optimising this partition's study right now."""


def study_path(root: Path, budget: str, horizon: str) -> Path:
    return root / f"{budget}__{horizon}.log"


@contextlib.contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock beside the study file; released when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusy(f"study {path} is being optimised by another run; wait for it or cancel it") from None
        yield
    finally:
        os.close(fd)


def open_study(path: Path, name: str, sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(study_name=name, storage=storage, direction="minimize", sampler=sampler,
                               pruner=pruner, load_if_exists=True)


def is_done(trial: FrozenTrial) -> bool:
    """A trial that counts towards n_trials: finished, pruned, or failed as infeasible."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and INFEASIBLE_ATTR in trial.user_attrs


def n_done(study: optuna.Study) -> int:
    return sum(is_done(t) for t in study.get_trials(deepcopy=False))


def enqueue_retry(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    """Queue the same parameters again (keeping a forced-extreme label) to replace a lost trial.
    Parameters it was enqueued with count even when it died before sampling them."""
    attrs = {RETRY_ATTR: trial.number}
    if EXTREME_ATTR in trial.user_attrs:
        attrs[EXTREME_ATTR] = trial.user_attrs[EXTREME_ATTR]
    study.enqueue_trial({**trial.system_attrs.get("fixed_params", {}), **trial.params}, user_attrs=attrs)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial (call with the study lock held) and queue a retry of each."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, FAILED_REASON_ATTR,
                                           "left RUNNING by an interrupted run; retried")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        enqueue_retry(study, trial)
    return [t.number for t in stale]


def enqueue_missing_extremes(study: optuna.Study, extremes: list[tuple[str, dict]]) -> list[str]:
    """Enqueue each forced extreme whose label no live trial carries yet (a plain FAIL does not
    count: its retry does). Returns the labels enqueued now; calling it again enqueues nothing."""
    present = {t.user_attrs.get(EXTREME_ATTR) for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.FAIL or INFEASIBLE_ATTR in t.user_attrs}
    added = []
    for label, params in extremes:
        if label not in present:
            study.enqueue_trial(params, user_attrs={EXTREME_ATTR: label})
            added.append(label)
    return added
