"""One persistent Optuna study per (budget, horizon) partition, served by several workers at once.

Where the study lives (`StudyLocation`, chosen by `scaling.study_storage` or the
PROJ_OPTUNA_STORAGE environment variable):
- default: an Optuna journal file per partition under the data dir
  (`<root>/<budget>__<horizon>.log`). JournalFileBackend locks the file around each write, so
  several processes on one local disk may share it (not over NFS);
- a SQLAlchemy URL (cluster mode: `postgresql+psycopg2://user@host:port/db`): Optuna's
  RDBStorage, one study per `<profile>__<budget>__<horizon>` name, with heartbeats.

A worker that dies mid-trial leaves it RUNNING. Only that trial may be failed and retried, never a
live trial of another worker. Optuna 5.0 implements heartbeats for RDBStorage only (JournalStorage
is no `BaseHeartbeat`): there each running trial's heartbeat thread writes every
`heartbeat_interval` s, a trial silent for `grace_period` s is failed by the next worker that
starts a trial, and `RetryStaleTrial` queues it again. Optuna never fails a trial that has no
heartbeat yet (its worker died inside `ask`, before the heartbeat thread's first write): each
objective names its trial after writing a heartbeat (`claim`), and an unnamed trial is failed after
`grace_s` (`recover_stale_trials`). For journal files the equivalent is a lock
file per worker (`worker_lock`, flock: the OS releases it when the process dies) named on every
trial the worker runs: a RUNNING trial whose owner's lock is free belongs to a dead worker.
"""

import contextlib
import copy
import fcntl
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import (  # not re-exported by optuna.storages
    BaseHeartbeat,
    is_heartbeat_enabled,
)
from optuna.trial import FrozenTrial, TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

STORAGE_ENV = "PROJ_OPTUNA_STORAGE"
RETRY_ATTR = "retry_of"
EXTREME_ATTR = "forced_extreme"
INFEASIBLE_ATTR = "infeasible"
FAILED_REASON_ATTR = "failed_reason"
RUN_ATTR = "run_id"  # on each trial: the run that trained it (the table's run_id is the writer's)
INPUTS_ATTR = "input_versions"  # on the study and each trial: input name -> version (versions.py)
# who runs the trial, set first thing in its objective: the worker's lock file on journal storage,
# its run token with heartbeats (where a named trial always has a heartbeat row: `claim`)
OWNER_ATTR = "worker"


@dataclass(frozen=True)
class StudyLocation:
    """Where the studies of one profile live: journal files under `root`, or a storage `url`."""

    root: Path
    url: str | None = None
    profile: str = "demo"
    heartbeat_s: int = 10
    grace_s: int = 60

    def study_name(self, budget: str, horizon: str, version: str | None = None) -> str:
        """`[<profile>__][v<version>__]<budget>__<horizon>`: one study per input version of the
        cell (the versionless name is that of studies made before versions existed)."""
        cell = f"v{version[:16]}__{budget}__{horizon}" if version else f"{budget}__{horizon}"
        return f"{self.profile}__{cell}" if self.url else cell

    def cell_study_names(self, budget: str, horizon: str) -> list[str]:
        """Every study of the cell in its storage, any version, in creation order."""
        prefix = f"{self.profile}__" if self.url else ""
        pattern = re.compile(rf"{re.escape(prefix)}(v[0-9a-f]{{16}}__)?{budget}__{horizon}")
        studies = self.storage(budget, horizon).get_all_studies()
        return [s.study_name for s in studies if pattern.fullmatch(s.study_name)]

    def journal_path(self, budget: str, horizon: str) -> Path:
        return self.root / f"{budget}__{horizon}.log"

    def describe(self, budget: str, horizon: str) -> str:
        """For metadata and logs: the journal path, or the URL without its password."""
        if not self.url:
            return str(self.journal_path(budget, horizon))
        from sqlalchemy.engine import make_url

        return f"{make_url(self.url).render_as_string(hide_password=True)} study {self.study_name(budget, horizon)}"

    def storage(self, budget: str, horizon: str) -> optuna.storages.BaseStorage:
        if self.url:
            engine: dict[str, Any] = {"pool_pre_ping": True}
            if self.url.startswith(
                "postgresql"
            ):  # an unreachable server fails in seconds, not minutes
                engine["connect_args"] = {"connect_timeout": 10}
            return optuna.storages.RDBStorage(
                self.url,
                engine_kwargs=engine,
                heartbeat_interval=self.heartbeat_s,
                grace_period=self.grace_s,
                heartbeat_stale_trial_callback=RetryStaleTrial(3),
            )
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = self.journal_path(budget, horizon)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))


def study_location(settings, root: Path, profile: str) -> StudyLocation:
    """The location the scaling settings (or PROJ_OPTUNA_STORAGE) choose."""
    url = os.environ.get(STORAGE_ENV) or settings.study_storage
    return StudyLocation(
        root, url or None, profile, settings.study_heartbeat_s, settings.study_grace_s
    )


def open_study(
    location: StudyLocation,
    budget: str,
    horizon: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    inputs: dict[str, str] | None = None,
) -> optuna.Study:
    """The cell's study for `inputs` (its input versions, versions.cell_inputs: the study is
    named by their fingerprint and records them), created when new; without `inputs`, the
    versionless study."""
    from proj_resources.fingerprints import fingerprint

    study = optuna.create_study(
        study_name=location.study_name(budget, horizon, fingerprint(inputs) if inputs else None),
        storage=location.storage(budget, horizon),
        direction="minimize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if inputs and INPUTS_ATTR not in study.user_attrs:
        study.set_user_attr(INPUTS_ATTR, dict(inputs))
    return study


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial failed by the heartbeat (`RetryHeartbeatStaleTrialCallback`, called
    RetryFailedTrialCallback before optuna 4.9), linked like the project's own retries
    (`retry_of` user attribute), so the retry trains with the same seed and resumes its checkpoint."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        linked = copy.deepcopy(trial)
        linked.user_attrs[RETRY_ATTR] = trial.number
        linked.user_attrs.pop(FAILED_REASON_ATTR, None)
        super().__call__(study, linked)


def is_done(trial: FrozenTrial) -> bool:
    """A trial that counts towards n_trials: finished, pruned, or failed as infeasible."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and INFEASIBLE_ATTR in trial.user_attrs


def n_done(study: optuna.Study) -> int:
    return sum(is_done(t) for t in study.get_trials(deepcopy=False))


def stored_trial(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> FrozenTrial:
    """The storage's record of a trial (a live `optuna.Trial` has no `system_attrs` in optuna 5)."""
    if isinstance(trial, FrozenTrial):
        return trial
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def enqueue_retry(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    """Queue the same parameters again (keeping a forced-extreme label) to replace a lost trial.
    Parameters it was enqueued with count even when it died before sampling them."""
    stored = stored_trial(study, trial)
    attrs = {RETRY_ATTR: trial.number}
    if EXTREME_ATTR in stored.user_attrs:
        attrs[EXTREME_ATTR] = stored.user_attrs[EXTREME_ATTR]
    study.enqueue_trial(
        {**stored.system_attrs.get("fixed_params", {}), **stored.params}, user_attrs=attrs
    )


@contextlib.contextmanager
def worker_lock(
    location: StudyLocation, budget: str, horizon: str, token: str
) -> Iterator[str | None]:
    """Hold this worker's lock file while it runs trials; yields the owner name to put on them
    (with a storage URL, `token` and no lock: heartbeats find dead workers there, and flock is
    unreliable on shared filesystems)."""
    if location.url:
        yield token
        return
    folder = location.journal_path(budget, horizon).with_suffix(".workers")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{token}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield str(path)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def _owner_alive(owner: str) -> bool:
    try:
        fd = os.open(owner, os.O_RDWR)
    except FileNotFoundError:
        return False  # its worker ended (it removes its lock) or the file was cleaned up
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def claim(trial: optuna.Trial, owner: str | None) -> None:
    """Name `owner` on the trial its objective has just begun. With heartbeats, one is written
    first: Optuna's stale check skips a RUNNING trial that never beat, so a named trial must
    have a heartbeat row, and an unnamed one is left to `recover_stale_trials`."""
    storage = trial.study._storage
    if is_heartbeat_enabled(storage) and isinstance(storage, BaseHeartbeat):
        storage.record_heartbeat(trial._trial_id)
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    if owner is not None:
        trial.set_user_attr(OWNER_ATTR, owner)


def _never_claimed(trial: FrozenTrial, grace_s: float) -> bool:
    """A trial is named right after it starts (`claim`); one never named for `grace_s` was left by
    a worker that died inside `ask`, before its objective (or by a run before shared studies)."""
    if OWNER_ATTR in trial.user_attrs:
        return False
    started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return time.time() - started > grace_s


def _is_dead(trial: FrozenTrial, grace_s: float) -> bool:
    """Journal storage: the trial's owner no longer holds its lock, or it was never named."""
    owner = trial.user_attrs.get(OWNER_ATTR)
    if owner is not None:
        return not _owner_alive(owner)
    return _never_claimed(trial, grace_s)


class SurplusTrial(Exception):
    """Started while the study already had n_trials done or running (two workers raced)."""


def is_surplus(trial: optuna.Trial, n_trials: int) -> bool:
    """Whether the trials numbered below this one already reach `n_trials` done or running; if so
    the trial is marked, and parameters it was enqueued with are queued again. A forced extreme
    is never surplus (extremes beyond n_trials still run)."""
    if EXTREME_ATTR in trial.user_attrs:
        return False
    earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
    if sum(is_done(t) or t.state == TrialState.RUNNING for t in earlier) < n_trials:
        return False
    trial.set_user_attr(
        FAILED_REASON_ATTR, f"surplus: the study already had {n_trials} trials done or running"
    )
    if "fixed_params" in stored_trial(trial.study, trial).system_attrs:
        enqueue_retry(trial.study, trial)
    return True


def recover_stale_trials(study: optuna.Study, grace_s: float = 60.0) -> list[int]:
    """Fail the RUNNING trials of dead workers and queue a retry of each; live trials are left.
    With heartbeats, Optuna fails the trials whose heartbeat went silent; one that never beat (its
    worker died inside `ask`) it skips forever, so an unnamed trial is failed here after
    `grace_s`, as on journal files."""
    storage, recovered, dead = study._storage, [], _is_dead
    if is_heartbeat_enabled(storage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)  # RetryStaleTrial queues the retries
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        recovered, dead = [n for n in before if states[n] == TrialState.FAIL], _never_claimed
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not dead(trial, grace_s):
            continue
        try:
            storage.set_trial_user_attr(
                trial._trial_id, FAILED_REASON_ATTR, "its worker died mid-trial; retried"
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker recovered it first
        enqueue_retry(study, trial)
        recovered.append(trial.number)
    return sorted(recovered)


def _architecture(params: dict) -> tuple[int, int, int] | None:
    """(d_model, n_layers, n_heads) of encoded study parameters (search_space.encode)."""
    if not {"log2_d_model", "n_layers", "log2_n_heads"} <= params.keys():
        return None
    return (
        round(2 ** params["log2_d_model"]),
        int(params["n_layers"]),
        round(2 ** params["log2_n_heads"]),
    )


def trial_architecture(trial: FrozenTrial) -> tuple[int, int, int] | None:
    """The architecture a trial trained (its resolved hp) or will train (its enqueued parameters)."""
    hp = trial.user_attrs.get("hp")
    if hp:
        return hp["d_model"], hp["n_layers"], hp["n_heads"]
    return _architecture({**trial.system_attrs.get("fixed_params", {}), **trial.params})


def enqueue_missing_extremes(study: optuna.Study, extremes: list[tuple[str, dict]]) -> list[str]:
    """Enqueue each forced extreme whose extreme *value* no live trial has yet: `d_model_max` is
    covered by any trial at that d_model, whatever its depth and heads (a plain FAIL does not
    count: its retry does). A merged extreme (`d_model_max+n_layers_min`) is enqueued when any of
    its values is new (a changed grid opens a new study version, versions.py, so this
    only skips extremes already run in this version, e.g. on resume). Returns the labels enqueued now; calling it again
    enqueues nothing. Call it from one place before workers start (the trials graph's prepare op)."""
    from proj_assets.scaling.extremes import ARCH_DIMS, covered_labels

    present: dict[str, set[int]] = {dim: set() for dim in ARCH_DIMS}

    def add(arch: tuple[int, int, int]) -> None:
        for dim, value in zip(ARCH_DIMS, arch, strict=True):
            present[dim].add(value)

    for trial in study.get_trials(deepcopy=False):
        arch = trial_architecture(trial)
        if arch is not None and (
            trial.state != TrialState.FAIL or INFEASIBLE_ATTR in trial.user_attrs
        ):
            add(arch)
    added = []
    for label, params in extremes:
        arch = _architecture(params)
        assert arch is not None  # extremes carry the encoded architecture (hpo.extreme_trials)
        values = dict(zip(ARCH_DIMS, arch, strict=True))
        if any(
            values[dim] not in present[dim]
            for dim in (lab.rsplit("_", 1)[0] for lab in covered_labels(label))
        ):
            study.enqueue_trial(params, user_attrs={EXTREME_ATTR: label})
            add(arch)
            added.append(label)
    return added


def waiting_extremes(study: optuna.Study) -> int:
    """Forced extremes queued and not started: they run even once the study has n_trials."""
    return sum(
        EXTREME_ATTR in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    )
