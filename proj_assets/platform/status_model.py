"""What the status note knows: dataclasses `platform.snapshot` fills from the instance, and the
questions the note asks of them (which gates are open, which warnings stand).

Pure code, no dagster import.
"""

from dataclasses import dataclass, field
from datetime import datetime

from proj_assets.platform.budget import DomainBudget
from proj_assets.shared.markdown import format_number
from proj_assets.shared.reviews import Review

SHOWN = 8  # partitions / runs / checks listed before "and N more"
# How a re-run command names the code location (`dagster asset materialize`).
LOCATION_ARGS = "-m proj_assets.definitions"


@dataclass
class AssetStatus:
    key: str
    domain: str
    partitioned: bool
    total: int  # 1 for an unpartitioned asset
    materialized: int
    failed: list[str] = field(default_factory=list)  # partition keys ("" when unpartitioned)
    missing: list[str] = field(default_factory=list)  # never materialized, not failed
    in_progress: int = 0
    job: str | None = None  # a job that can backfill it


@dataclass
class GateStatus:
    check: str  # "asset/key:check_name"
    domain: str
    blocking: bool
    partition: str | None
    passed: bool | None  # None: never ran
    severity: str = ""
    measured: float | None = None
    threshold: float | None = None
    description: str = ""
    run_id: str | None = None
    must_be: str = ""  # e.g. "mcnemar_p below alpha = 0.01" (shared.check_results)

    def reading(self) -> str:
        """What was measured against which rule, e.g. "measured 0.31, must be: mcnemar_p below alpha = 0.01"."""
        rule = (
            f"must be: {self.must_be}" if self.must_be else f"threshold {num_text(self.threshold)}"
        )
        return f"measured {num_text(self.measured)}, {rule}"


@dataclass
class StaleAsset:
    key: str
    partition: str | None
    causes: list[str]


@dataclass
class RunInfo:
    run_id: str
    job: str
    status: str
    when: str
    partition: str | None = None
    error: str | None = None
    died: bool = False


@dataclass
class Snapshot:
    generated_at: datetime
    profile: str
    assets: list[AssetStatus]
    gates: list[GateStatus]
    stale: list[StaleAsset]
    in_progress: list[RunInfo]
    failures: list[RunInfo]  # most recent first; `died` marks runs whose process died
    budget: list[DomainBudget]
    reviews: list[Review]
    location_args: str = LOCATION_ARGS


def listed(items: list[str]) -> str:
    """Up to SHOWN items in backticks, then "and N more"."""
    shown = ", ".join(f"`{i}`" for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def num_text(value: float | None) -> str:
    """A measured value or threshold for the note: 4 significant digits, "" when absent."""
    return "" if value is None else format_number(value)


def open_gates(snapshot: Snapshot) -> list[GateStatus]:
    """Failed blocking results not overridden by a review of exactly that result."""
    overridden = {
        (r.check_key, r.partition_key, r.reviewed_run_id)
        for r in snapshot.reviews
        if r.decision == "override"
    }
    return [
        g
        for g in snapshot.gates
        if g.blocking
        and g.passed is False
        and g.severity == "ERROR"
        and (g.check, g.partition, g.run_id) not in overridden
    ]


def failed_warnings(snapshot: Snapshot) -> list[GateStatus]:
    """Checks whose latest result failed with severity WARN: they block nothing, but each says a
    result may not mean what it seems."""
    return [g for g in snapshot.gates if g.passed is False and g.severity == "WARN"]


def gate_name(gate: GateStatus) -> str:
    """`asset:check`, with ` [partition]` for a partitioned result."""
    return gate.check + (f" [{gate.partition}]" if gate.partition else "")
