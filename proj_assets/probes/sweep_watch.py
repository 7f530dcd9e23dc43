"""What the sweep-spec sensor does on a tick (pure decision logic; the sensor is the shell).

When the spec file's content hash changes, its configs are registered as partitions and the sweep
manifest is re-materialized (fold runs read their config from the manifest). Once a manifest newer
than the change exists, every config × fold partition of the spec that is not materialized yet is
requested, so an unchanged config is never re-run.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SweepCursor:
    spec_hash: str | None = None
    manifest_storage_id: int | None = None  # latest manifest materialization when the spec changed
    waiting_for_manifest: bool = False

    def serialize(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, raw: str | None) -> "SweepCursor":
        return cls(**json.loads(raw)) if raw else cls()


@dataclass
class TickPlan:
    cursor: SweepCursor
    add_configs: list[str] = field(default_factory=list)
    request_manifest: bool = False
    partitions: list[tuple[str, str]] = field(default_factory=list)  # (config, fold)


def plan_tick(
    cursor: SweepCursor,
    spec_hash: str,
    config_ids: list[str],
    registered_configs: set[str],
    folds: Sequence[str],
    manifest_storage_id: int | None,
    materialized: set[tuple[str, str]],
) -> TickPlan:
    if spec_hash != cursor.spec_hash:
        return TickPlan(
            SweepCursor(spec_hash, manifest_storage_id, True),
            add_configs=[c for c in config_ids if c not in registered_configs],
            request_manifest=True,
        )
    manifest_is_new = manifest_storage_id is not None and (
        cursor.manifest_storage_id is None or manifest_storage_id > cursor.manifest_storage_id
    )
    if not (cursor.waiting_for_manifest and manifest_is_new and folds):
        return TickPlan(cursor)
    todo = [(c, f) for c in config_ids for f in folds if (c, f) not in materialized]
    return TickPlan(SweepCursor(spec_hash, manifest_storage_id, False), partitions=todo)
