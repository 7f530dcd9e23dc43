"""Gates across runs: a downstream asset refuses to run while an upstream blocking check failed.

A blocking check only stops later steps of the *same* run. So every asset body that reads gated
data is wrapped in `gated`: before the body runs, it reads the latest result of every blocking
check on the asset's upstream assets (taken from the run's asset graph, never from a
hand-written list) from the Dagster instance and fails with a message that says which check failed
and by how much. A failed result is let through only when a reviewer recorded an override of
exactly that result in the warehouse (`platform.reviews`, written by the `gate_review_job`).
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from proj_assets.shared import reviews
from proj_assets.shared.instance_reads import PAGE

_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
# what a refusal names: the rule (quantity, direction, threshold), then the values
_SHOWN_METADATA = ("must_be", "measured", "threshold", "value", "n_failing")


def _describe(record) -> str:
    evaluation = record.evaluation
    meta = evaluation.metadata if evaluation else {}
    shown = {k: getattr(meta[k], "value", meta[k]) for k in _SHOWN_METADATA if k in meta}
    where = f" partition {record.partition!r}" if record.partition else ""
    desc = f": {evaluation.description}" if evaluation and evaluation.description else ""
    return f"{record.key.to_user_string()}{where} failed{desc} {shown if shown else ''} (run {record.run_id})"


def latest_check_results(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey
) -> dict[str | None, AssetCheckExecutionRecord]:
    """Partition (None when unpartitioned) -> the latest finished execution record of check `key`."""
    latest: dict[str | None, AssetCheckExecutionRecord] = {}
    cursor = None
    while True:  # newest first, a page at a time
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=PAGE, cursor=cursor, status=_DONE
        )
        for record in history:
            latest.setdefault(record.partition, record)
        if len(history) < PAGE:
            return latest
        cursor = history[-1].id


def _latest_finished_record(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, partition: str | None
):
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=_DONE, partition_filter=PartitionKeyFilter(key=partition)
    )
    return records[0] if records else None


def _finished_on_latest(instance, key: dg.AssetCheckKey, partition: str | None, info):
    """The latest finished result of `key` when it judged the asset's latest materialization, else
    None. A run that planned the check and never materialized the asset (refused by its own gate,
    or failed before writing) leaves a skipped execution behind: the data it would have checked is
    unchanged, so the earlier result still speaks for it."""
    record = _latest_finished_record(instance, key, partition)
    target = record.evaluation.target_materialization_data if record and record.evaluation else None
    if target is None or target.storage_id != info.latest_materialization_storage_id:
        return None
    return record


def _blocking_failures(instance, check_keys, partitions) -> tuple[list[str], list]:
    """(lines for checks without a current finished result, latest records that failed with ERROR).

    A result counts only when it judged the latest materialization of its asset (partition): a
    check that crashed, or an asset rebuilt without its checks, closes the gate instead of letting
    an older result speak for new data; a run that planned the check but never wrote the asset
    (refused, or failed first) leaves the earlier result standing. One query covers every
    partition; a record is read only for results that did not pass on the latest data.
    """
    infos = instance.event_log_storage.get_asset_check_partition_info(
        list(check_keys), partition_keys=list(partitions) if partitions is not None else None
    )
    by_key: dict = {}
    for info in infos:
        by_key.setdefault(info.check_key, {})[info.partition_key] = info
    missing, failed = [], []
    for key in check_keys:
        known = by_key.get(key, {})
        for partition in partitions if partitions is not None else (list(known) or [None]):
            info, name = known.get(partition), key.to_user_string()
            where = f" partition {partition!r}" if partition else ""
            if info is None:
                missing.append(f"{name}{where} has no result yet: materialize its asset first")
                continue
            if (
                info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED
                and info.is_current
            ):
                continue
            if (
                info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED
                and info.is_current
            ):
                record = _latest_finished_record(instance, key, partition)
            else:
                record = _finished_on_latest(instance, key, partition, info)
            if record is None and info.latest_execution_status not in _DONE:
                missing.append(
                    f"{name}{where} has no finished result for run {info.latest_planned_run_id} "
                    "(it crashed, was skipped or is still running): re-run it"
                )
            elif record is None:
                missing.append(
                    f"{name}{where} did not run on the latest materialization of its asset: "
                    "re-materialize the asset with its checks"
                )
            elif (
                record.status == AssetCheckExecutionRecordStatus.FAILED
                and record.evaluation is not None
                and record.evaluation.severity == dg.AssetCheckSeverity.ERROR
            ):
                failed.append(record)
    return missing, failed


def gate_problems(
    instance: dg.DagsterInstance,
    check_keys: Sequence[dg.AssetCheckKey],
    partitions: Sequence[str] | None = None,
    recorded_reviews: Sequence[reviews.Review] = (),
) -> list[str]:
    """One line per check (and partition) whose latest result failed (and was not overridden in
    `recorded_reviews`) or that never ran."""
    missing, failed = _blocking_failures(instance, check_keys, partitions)
    return missing + [
        _describe(r)
        for r in failed
        if not reviews.is_overridden(
            list(recorded_reviews), r.key.to_user_string(), r.partition, r.run_id
        )
    ]


def _warehouse_reviews(
    context, check_keys: Sequence[dg.AssetCheckKey], warehouse
) -> list[reviews.Review]:
    """Reviews of `check_keys` from `warehouse` (the run's `warehouse` resource when the step
    declares one, else the one the domain's builder handed to `gated`); none without either, so
    nothing can override a failed result."""
    warehouse = getattr(context.resources, "warehouse", None) or warehouse
    if warehouse is None:
        return []
    return recorded_reviews(warehouse, [k.to_user_string() for k in check_keys])


def recorded_reviews(warehouse, check_keys: list[str] | None = None) -> list[reviews.Review]:
    """Reviews (of `check_keys`, or all) in `warehouse`; none when its file does not exist yet
    (opening it would fail, after retrying for ~100 s, when its folder is missing)."""
    if warehouse.database != ":memory:" and not Path(warehouse.database).exists():
        return []
    with warehouse.get_connection() as conn:
        return reviews.load_reviews(conn, check_keys)


def _open_gates(
    context, check_keys: Sequence[dg.AssetCheckKey], partitions: Sequence[str] | None, warehouse
) -> list[str]:
    """One line per listed blocking check (and partition) whose latest result failed without an
    override, or that has no current result; overrides used are logged as warnings."""
    missing, failed = _blocking_failures(context.instance, check_keys, partitions)
    recorded = _warehouse_reviews(context, check_keys, warehouse) if failed else []
    problems = list(missing)
    for record in failed:
        override = reviews.is_overridden(
            recorded, record.key.to_user_string(), record.partition, record.run_id
        )
        if override is None:
            problems.append(_describe(record))
        else:
            context.log.warning(
                f"gate overridden: {_describe(record)}; override by {override.reviewer}: "
                f"{override.reason!r} (review {override.review_id})"
            )
    return problems


def _refuse(problems: list[str]) -> None:
    if problems:
        raise dg.Failure(
            description="refusing to run: upstream gate(s) not passed:\n  " + "\n  ".join(problems),
            metadata={"failed_gates": dg.MetadataValue.json(problems)},
            allow_retries=False,
        )


def require_gates_passed(
    context: dg.AssetExecutionContext,
    check_keys: Sequence[dg.AssetCheckKey],
    partitions: Sequence[str] | None = None,
    warehouse=None,
) -> None:
    """Raise a clear `dg.Failure` when any listed blocking check's latest result failed and no
    reviewer recorded an override of that result."""
    _refuse(_open_gates(context, check_keys, partitions, warehouse))


GATES_METADATA = (
    "gates"  # on every gated asset: the upstream blocking checks it refuses to run without
)


def upstream_gates(asset_graph, key: dg.AssetKey) -> list[dict]:
    """For every parent of `key` in `asset_graph` with blocking checks: the parent, its blocking
    checks and whether it is partitioned like `key` (then the run's own partitions must pass)."""
    node = asset_graph.get(key)
    gates = []
    for parent in sorted(node.parent_keys):
        blocking = sorted(
            c.to_user_string()
            for c in asset_graph.get(parent).check_keys
            if asset_graph.get_check_spec(c).blocking
        )
        if blocking:
            pdef = asset_graph.get(parent).partitions_def
            gates.append(
                {
                    "upstream": parent.to_user_string(),
                    "checks": blocking,
                    "same_partitions": pdef is not None and pdef == node.partitions_def,
                }
            )
    return gates


def with_upstream_gates(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with each asset's upstream gates (`upstream_gates` over the merged graph) in its
    definition metadata: `gated` reads them at run time, and the UI shows them on the asset. An
    asset that already carries `gates` metadata (`not_gated(reason)`) keeps it."""
    graph = defs.resolve_asset_graph()

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        if GATES_METADATA in spec.metadata:
            return spec
        gates = upstream_gates(graph, spec.key) if graph.has(spec.key) else []
        return spec.merge_attributes(metadata={GATES_METADATA: dg.MetadataValue.json(gates)})

    return defs.map_asset_specs(func=add)


def not_gated(reason: str) -> dict:
    """Definition metadata of an asset that reads gated data on purpose without refusing (e.g. a
    report of every pilot iteration's verdict): the reason shows where the gates would."""
    return {GATES_METADATA: f"not gated: {reason}"}


def _partitions_to_check(
    context, gate: dict, chosen: Mapping[dg.AssetKey, Callable]
) -> list[str] | None:
    """The upstream partitions whose gates must hold: those `chosen` for it; else, when it is
    partitioned like this asset, the run's own partitions; else every partition with a result."""
    upstream = dg.AssetKey.from_user_string(gate["upstream"])
    if upstream in chosen:
        return list(chosen[upstream](context))
    return list(context.partition_keys) if gate["same_partitions"] else None


def require_upstream_gates(
    context,
    key: dg.AssetKey,
    warehouse=None,
    partitions: Mapping[dg.AssetKey, Callable] | None = None,
) -> None:
    """`require_gates_passed` for every upstream gate of asset `key` (from its `gates` metadata,
    written by `with_upstream_gates`); every open gate is named in one refusal."""
    meta = context.assets_def.specs_by_key[key].metadata.get(GATES_METADATA)
    if meta is None:  # never let an asset whose gates were not resolved run as if it had none
        raise dg.Failure(
            f"{key.to_user_string()} has no resolved gates: build its definitions through "
            "proj_assets.definitions.build_definitions (shared.gates.with_upstream_gates)",
            allow_retries=False,
        )
    gates = meta.value
    problems = []
    for gate in gates:
        checks = [dg.AssetCheckKey.from_user_string(c) for c in gate["checks"]]
        problems += _open_gates(
            context, checks, _partitions_to_check(context, gate, partitions or {}), warehouse
        )
    _refuse(problems)


GATED_ATTR = "proj_gated_asset"


def gated(
    key: list[str], warehouse=None, partitions: Mapping[tuple[str, ...], Callable] | None = None
):
    """Decorate an asset's (or a graph asset's first op's) body so it first refuses, with a clear
    error, while any blocking check on the upstream of asset `key` has failed (the checks come
    from the merged graph: `with_upstream_gates`). `partitions` maps an upstream key (a tuple) to
    a function of the context giving the partitions that must pass (e.g. only the tickers an
    asset uses); `warehouse` holds the reviews that may override a failed result."""
    asset_key = dg.AssetKey(key)
    chosen = {dg.AssetKey(list(k)): f for k, f in (partitions or {}).items()}

    def decorate(fn):
        @functools.wraps(fn)
        def body(context, *args, **kwargs):
            require_upstream_gates(context, asset_key, warehouse, chosen)
            return fn(context, *args, **kwargs)

        setattr(body, GATED_ATTR, asset_key)
        return body

    return decorate
