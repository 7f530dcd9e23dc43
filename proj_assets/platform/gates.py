"""Gates across runs: a downstream asset refuses to run while an upstream blocking check failed.

A blocking check only stops later steps of the *same* run. Assets that must not be built from data
a gate rejected call `require_gates_passed` first; it reads the latest result of each check (per
partition) from the Dagster instance and fails with a message that says which check failed and by
how much.
"""

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
_SHOWN_METADATA = ("measured", "threshold", "value", "n_failing")


def _describe(record) -> str:
    evaluation = record.evaluation
    meta = evaluation.metadata if evaluation else {}
    shown = {k: getattr(meta[k], "value", meta[k]) for k in _SHOWN_METADATA if k in meta}
    where = f" partition {record.partition!r}" if record.partition else ""
    desc = f": {evaluation.description}" if evaluation and evaluation.description else ""
    return f"{record.key.to_user_string()}{where} failed{desc} {shown if shown else ''} (run {record.run_id})"


def gate_problems(instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey],
                  partitions: Sequence[str] | None = None) -> list[str]:
    """One line per check (and partition) whose latest result failed or that never ran."""
    problems = []
    for key in check_keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10_000, status=_DONE)
        latest: dict[str | None, object] = {}
        for record in history:  # newest first
            latest.setdefault(record.partition, record)
        if partitions is not None:
            latest = {p: r for p, r in latest.items() if p in set(partitions)}
        if not latest:
            problems.append(f"{key.to_user_string()} has no result yet: materialize its asset first")
            continue
        problems.extend(_describe(r) for r in latest.values()
                        if r.status == AssetCheckExecutionRecordStatus.FAILED
                        and r.evaluation is not None
                        and r.evaluation.severity == dg.AssetCheckSeverity.ERROR)
    return problems


def require_gates_passed(context: dg.AssetExecutionContext, check_keys: Sequence[dg.AssetCheckKey],
                         partitions: Sequence[str] | None = None) -> None:
    """Raise a clear `dg.Failure` when any listed blocking check's latest result failed."""
    problems = gate_problems(context.instance, check_keys, partitions)
    if problems:
        raise dg.Failure(
            description="refusing to run: upstream gate(s) not passed:\n  " + "\n  ".join(problems),
            metadata={"failed_gates": dg.MetadataValue.json(problems)},
            allow_retries=False,
        )
