"""Gates across runs: a downstream asset refuses to run while an upstream blocking check failed.

A blocking check only stops later steps of the *same* run. Assets that must not be built from data
a gate rejected call `require_gates_passed` first; it reads the latest result of each check (per
partition) from the Dagster instance and fails with a message that says which check failed and by
how much. A failed result is let through only when a reviewer recorded an override of exactly
that result in the warehouse (`platform.reviews`, written by the `gate_review_job`).
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from proj_assets.shared import reviews

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


def latest_check_results(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> dict[str | None, object]:
    """Partition (None when unpartitioned) -> the latest finished execution record of check `key`."""
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10_000, status=_DONE)
    latest: dict[str | None, object] = {}
    for record in history:  # newest first
        latest.setdefault(record.partition, record)
    return latest


def _latest_failed_record(instance: dg.DagsterInstance, key: dg.AssetCheckKey, partition: str | None):
    (record,) = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=_DONE, partition_filter=PartitionKeyFilter(key=partition))
    return record


def _blocking_failures(instance, check_keys, partitions) -> tuple[list[str], list]:
    """(lines for checks without a current finished result, latest records that failed with ERROR).

    A result counts only when it belongs to the latest materialization of its asset (partition):
    a check that crashed or was skipped, or an asset rebuilt without its checks, closes the gate
    instead of letting an older result speak for new data. One query covers every partition.
    """
    infos = instance.event_log_storage.get_asset_check_partition_info(
        list(check_keys), partition_keys=list(partitions) if partitions is not None else None)
    by_key: dict = {}
    for info in infos:
        by_key.setdefault(info.check_key, {})[info.partition_key] = info
    missing, failed = [], []
    for key in check_keys:
        known = by_key.get(key, {})
        for partition in (partitions if partitions is not None else (list(known) or [None])):
            info, name = known.get(partition), key.to_user_string()
            where = f" partition {partition!r}" if partition else ""
            if info is None:
                missing.append(f"{name}{where} has no result yet: materialize its asset first")
            elif info.latest_execution_status not in _DONE:
                missing.append(f"{name}{where} has no finished result for run {info.latest_planned_run_id} "
                               "(it crashed, was skipped or is still running): re-run it")
            elif not info.is_current:
                missing.append(f"{name}{where} did not run on the latest materialization of its asset: "
                               "re-materialize the asset with its checks")
            elif info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED:
                record = _latest_failed_record(instance, key, partition)
                if record.evaluation is not None and record.evaluation.severity == dg.AssetCheckSeverity.ERROR:
                    failed.append(record)
    return missing, failed


def gate_problems(instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey],
                  partitions: Sequence[str] | None = None,
                  recorded_reviews: Sequence[reviews.Review] = ()) -> list[str]:
    """One line per check (and partition) whose latest result failed (and was not overridden in
    `recorded_reviews`) or that never ran."""
    missing, failed = _blocking_failures(instance, check_keys, partitions)
    return missing + [_describe(r) for r in failed
                      if not reviews.is_overridden(list(recorded_reviews), r.key.to_user_string(), r.partition, r.run_id)]


def _warehouse_reviews(context, check_keys: Sequence[dg.AssetCheckKey]) -> list[reviews.Review]:
    """Reviews of `check_keys` from the run's warehouse: the asset's own `warehouse` resource if it
    declares one, else the code location's warehouse for the active profile. A warehouse file that
    does not exist yet holds no reviews (and opening it would fail when its folder is missing)."""
    warehouse = getattr(context.resources, "warehouse", None)
    if warehouse is None:
        from proj_assets.profiles import data_dir, load_profile
        from proj_resources.warehouse import Warehouse, warehouse_path

        warehouse = Warehouse(database=str(warehouse_path(load_profile().name, data_dir())))
    return recorded_reviews(warehouse, [k.to_user_string() for k in check_keys])


def recorded_reviews(warehouse, check_keys: list[str] | None = None) -> list[reviews.Review]:
    """Reviews (of `check_keys`, or all) in `warehouse`; none when its file does not exist yet
    (opening it would fail, after retrying for ~100 s, when its folder is missing)."""
    if warehouse.database != ":memory:" and not Path(warehouse.database).exists():
        return []
    with warehouse.get_connection() as conn:
        return reviews.load_reviews(conn, check_keys)


def require_gates_passed(context: dg.AssetExecutionContext, check_keys: Sequence[dg.AssetCheckKey],
                         partitions: Sequence[str] | None = None) -> None:
    """Raise a clear `dg.Failure` when any listed blocking check's latest result failed and no
    reviewer recorded an override of that result."""
    missing, failed = _blocking_failures(context.instance, check_keys, partitions)
    recorded = _warehouse_reviews(context, check_keys) if failed else []
    problems = list(missing)
    for record in failed:
        override = reviews.is_overridden(recorded, record.key.to_user_string(), record.partition, record.run_id)
        if override is None:
            problems.append(_describe(record))
        else:
            context.log.warning(f"gate overridden: {_describe(record)}; override by {override.reviewer}: "
                                f"{override.reason!r} (review {override.review_id})")
    if problems:
        raise dg.Failure(
            description="refusing to run: upstream gate(s) not passed:\n  " + "\n  ".join(problems),
            metadata={"failed_gates": dg.MetadataValue.json(problems)},
            allow_retries=False,
        )
