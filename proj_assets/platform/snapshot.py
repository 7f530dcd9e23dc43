"""Read the Dagster instance into a `status.Snapshot`: partitions, gates, staleness, runs, compute.

The thin dagster side of the status report (the report itself is `platform.status`). Everything
is generic over the asset graph, so a domain that lands shows up without changes here. Partition
states come from the same status cache the UI uses.
"""

import re
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import BlockingDataLoader, DataLoader, LoadingContext
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from proj_assets.platform.budget import Spend, summarize_budget
from proj_assets.platform.status_model import (
    AssetStatus,
    GateStatus,
    RunInfo,
    Snapshot,
    StaleAsset,
)
from proj_assets.shared.gates import latest_check_results
from proj_assets.shared.instance_reads import materializations, partition_states
from proj_assets.shared.reviews import Review

# Messages Dagster writes when a run's process died (code server / run monitoring daemon).
DEATH_MARKERS = ("Run execution process for", "Detected run worker status", "seconds to start")
STALE_PARTITIONS_CHECKED = 50
FAILURES_SHOWN = 20
ERROR_CHARS = 300


class _InstanceLoadingContext(LoadingContext):
    """The minimal loading context the stale-status resolver needs outside a request."""

    def __init__(self, instance: dg.DagsterInstance):
        self._instance = instance
        self._loaders: dict[type, tuple[DataLoader, BlockingDataLoader]] = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict[type, tuple[DataLoader, BlockingDataLoader]]:
        return self._loaders


def backfill_jobs(repository: dg.RepositoryDefinition) -> dict[dg.AssetKey, str]:
    """Asset key -> name of a partitioned job that materializes it (for CLI backfills); the
    implicit `__ASSET_JOB` is left out (a person cannot name it on the command line)."""
    found: dict[dg.AssetKey, str] = {}
    for job in sorted(repository.get_all_jobs(), key=lambda j: j.name):
        if job.partitions_def is not None and not job.name.startswith("__"):
            for key in sorted(job.asset_layer.selected_asset_keys):
                found.setdefault(key, job.name)
    return found


def _asset_status(instance, graph, key: dg.AssetKey, jobs: dict) -> AssetStatus:
    node = graph.get(key)
    pdef, domain = node.partitions_def, key.path[0]
    if pdef is None:
        entry = next(iter(instance.get_asset_records([key])), None)
        entry = entry.asset_entry if entry else None
        done = entry.last_materialization_storage_id if entry else None
        failed_rec = entry.last_failed_to_materialize_record if entry else None
        failed = failed_rec is not None and (done is None or failed_rec.storage_id > done)
        return AssetStatus(
            key.to_user_string(),
            domain,
            False,
            1,
            int(done is not None and not failed),
            [""] if failed else [],
            [""] if done is None and not failed else [],
        )
    all_keys, done, failed, running = partition_states(instance, key, pdef)
    return AssetStatus(
        key.to_user_string(),
        domain,
        True,
        len(all_keys),
        len((done - failed) & set(all_keys)),
        [k for k in all_keys if k in failed],
        [k for k in all_keys if k not in done | failed | running],
        len(running),
        jobs.get(key),
    )


def _gate_statuses(instance, graph, writing: dg.AssetKey | None) -> list[GateStatus]:
    gates = []
    for key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        if key.asset_key == writing:
            continue  # the note's own checks run right after it, in the same run
        blocking = graph.get_check_spec(key).blocking
        latest = latest_check_results(instance, key)
        if not latest:
            gates.append(
                GateStatus(key.to_user_string(), key.asset_key.path[0], blocking, None, None)
            )
        for partition, record in sorted(latest.items(), key=lambda kv: kv[0] or ""):
            ev = record.evaluation
            meta = ev.metadata if ev else {}
            value = {n: getattr(meta.get(n), "value", None) for n in ("measured", "threshold")}
            measured, threshold = (
                float(v) if isinstance(v, int | float) else None for v in value.values()
            )
            gates.append(
                GateStatus(
                    key.to_user_string(),
                    key.asset_key.path[0],
                    blocking,
                    partition,
                    ev.passed if ev else None,
                    ev.severity.value if ev else "",
                    measured,
                    threshold,
                    (ev.description or "") if ev else "",
                    record.run_id,
                    str(getattr(meta.get("must_be"), "value", "")),
                )
            )
    return gates


def stale_assets(instance: dg.DagsterInstance, graph) -> list[StaleAsset]:
    """Assets (and materialized partitions, up to STALE_PARTITIONS_CHECKED) that Dagster calls
    stale: a code version or an upstream data version changed since they were materialized."""
    resolver = CachingStaleStatusResolver(instance, graph, _InstanceLoadingContext(instance))
    stale = []
    for key in graph.toposorted_asset_keys:
        if not graph.get(key).is_materializable:
            continue
        pdef = graph.get(key).partitions_def
        # materialized partitions that still exist (a deleted dynamic one, e.g. a fold no longer in
        # the corpus, keeps its materializations but is not stale)
        existing = (
            set()
            if pdef is None
            else set(pdef.get_partition_keys(dynamic_partitions_store=instance))
        )
        partitions = (
            [None]
            if pdef is None
            else [k for k in instance.get_materialized_partitions(key) if k in existing][
                :STALE_PARTITIONS_CHECKED
            ]
        )
        for partition in partitions:
            if resolver.get_status(key, partition) == StaleStatus.STALE:
                causes = [
                    f"{c.key.asset_key.to_user_string()}: {c.reason}"
                    for c in resolver.get_stale_root_causes(key, partition)
                ]
                stale.append(StaleAsset(key.to_user_string(), partition, causes))
    return stale


def _root_cause(error) -> str:
    """The innermost cause on one line: the user's exception, not Dagster's wrapper."""
    while error.cause is not None:
        error = error.cause
    text = " ".join(line.strip() for line in (error.message or "").splitlines() if line.strip())
    text = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", text)  # dagster._core....Failure: -> Failure:
    return (text or error.cls_name or "")[:ERROR_CHARS]


def _run_info(instance, record) -> RunInfo:
    run = record.dagster_run
    when = record.end_time or record.start_time or record.create_timestamp.timestamp()
    info = RunInfo(
        run.run_id,
        run.job_name,
        run.status.value,
        datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M"),
        run.tags.get("dagster/partition"),
    )
    if run.status != dg.DagsterRunStatus.FAILURE:
        return info
    events = instance.all_logs(
        run.run_id,
        of_type={
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.ENGINE_EVENT,
        },
    )
    messages = [e.dagster_event.message or "" for e in events if e.dagster_event]
    info.died = any(marker in m for m in messages for marker in DEATH_MARKERS)
    step_errors = [
        e.dagster_event.step_failure_data.error
        for e in events
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    if step_errors and step_errors[0] is not None:
        info.error = _root_cause(step_errors[0])
    else:
        info.error = next(
            (m for m in messages if any(k in m for k in DEATH_MARKERS)),
            messages[-1] if messages else "",
        )
    return info


def _spends(instance, graph) -> list[Spend]:
    spends = []
    for key in graph.materializable_asset_keys:
        for rec in materializations(instance, key):
            meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
            seconds = getattr(meta.get("compute_seconds"), "value", None)
            if isinstance(seconds, int | float):
                device = getattr(meta.get("compute_device"), "value", "cpu")
                spends.append(Spend(key.path[0], float(seconds), str(device)))
    return spends


def compute_budget(instance: dg.DagsterInstance, graph, profile) -> list:
    """Compute spent per domain against the profile's budgets (`budget.DomainBudget` rows)."""
    return summarize_budget(
        _spends(instance, graph),
        profile.compute.cost_per_hour,
        profile.platform.budgets,
        profile.platform.budget_warn_fraction,
    )


def build_snapshot(
    instance: dg.DagsterInstance,
    repository: dg.RepositoryDefinition,
    profile,
    reviews: list[Review],
    current_run_id: str | None = None,
    writing: dg.AssetKey | None = None,
) -> Snapshot:
    """Everything the status report needs, read from `instance` for the assets of `repository`
    (the code location: `context.repository_def` in a run, `defs.get_repository_def()` outside).
    When a run writes the note as asset `writing`, that run (`current_run_id`) is not work in
    progress, the note counts as materialized and its own checks (not run yet) are left out."""
    graph = repository.asset_graph
    jobs = backfill_jobs(repository)
    keys = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    assets = [
        AssetStatus(k.to_user_string(), k.path[0], False, 1, 1)
        if k == writing
        else _asset_status(instance, graph, k, jobs)
        for k in keys
    ]
    runs = [
        r
        for r in instance.get_run_records(
            dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES), limit=50
        )
        if r.dagster_run.run_id != current_run_id
    ]
    failed = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=FAILURES_SHOWN
    )
    budget = compute_budget(instance, graph, profile)
    return Snapshot(
        datetime.now(UTC),
        profile.name,
        assets,
        _gate_statuses(instance, graph, writing),
        stale_assets(instance, graph),
        [_run_info(instance, r) for r in runs],
        [_run_info(instance, r) for r in failed],
        budget,
        reviews,
    )
