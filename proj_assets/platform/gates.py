"""Gates across runs: a downstream asset refuses to run while an upstream blocking check failed.

A blocking check only stops later steps of the *same* run. Assets that must not be built from data
a gate rejected call `require_gates_passed` first; it reads the latest result of each check (per
partition) from the Dagster instance and fails with a message that says which check failed and by
how much. A failed result is let through only when a reviewer recorded an override of exactly
that result in the warehouse (`platform.reviews`, written by the `gate_review_job`).
"""

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from proj_assets.platform import reviews

_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
_SHOWN_METADATA = ("measured", "threshold", "value", "n_failing")


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


def _blocking_failures(instance, check_keys, partitions) -> tuple[list[str], list]:
    """(checks that never ran, latest records that failed with severity ERROR)."""
    missing, failed = [], []
    for key in check_keys:
        latest = latest_check_results(instance, key)
        if partitions is not None:
            latest = {p: r for p, r in latest.items() if p in set(partitions)}
            absent = [f" partition {p!r}" for p in partitions if p not in latest]
        else:
            absent = [] if latest else [""]
        missing.extend(f"{key.to_user_string()}{where} has no result yet: materialize its asset first"
                       for where in absent)
        failed.extend(r for r in latest.values()
                      if r.status == AssetCheckExecutionRecordStatus.FAILED
                      and r.evaluation is not None
                      and r.evaluation.severity == dg.AssetCheckSeverity.ERROR)
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
    declares one, else the code location's warehouse for the active profile."""
    warehouse = getattr(context.resources, "warehouse", None)
    if warehouse is None:
        from proj_assets.definitions import build_resources  # lazy: definitions imports this module
        from proj_assets.profiles import data_dir, load_profile

        warehouse = build_resources(load_profile(), data_dir())["warehouse"]
    with warehouse.get_connection() as conn:
        return reviews.load_reviews(conn, [k.to_user_string() for k in check_keys])


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
