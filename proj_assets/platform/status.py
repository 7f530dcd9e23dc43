"""The status report: a markdown handoff note rendered from a snapshot of the instance.

Pure code: `platform.snapshot` reads the Dagster instance into these dataclasses; this module
decides what to say and what to run next. No dagster import.
"""

from dataclasses import dataclass, field
from datetime import datetime

from proj_assets.platform.budget import BudgetState, DomainBudget
from proj_assets.shared.reviews import Review

SHOWN = 8  # partitions / runs listed before "and N more"
UI_URL = "http://127.0.0.1:3000"  # `make ui`; links in the report open the check and the run there
CLI_PARTITIONS = 50  # more than this: backfill from the UI instead of one long command


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
        rule = f"must be: {self.must_be}" if self.must_be else f"threshold {_num(self.threshold)}"
        return f"measured {_num(self.measured)}, {rule}"


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


def _listed(items: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


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


def next_actions(snapshot: Snapshot) -> list[str]:
    """What to run next, most urgent first."""
    actions = []
    for gate in open_gates(snapshot):
        where = f" partition `{gate.partition}`" if gate.partition else ""
        actions.append(
            f"Review gate `{gate.check}`{where} ({gate.reading()}): fix the input and re-materialize, "
            f"or record an override with `gate_review_job`."
        )
    for (
        gate
    ) in snapshot.gates:  # decision gates (e.g. a stage gate): failed, ERROR, nothing blocked
        if not gate.blocking and gate.passed is False and gate.severity == "ERROR":
            where = f" partition `{gate.partition}`" if gate.partition else ""
            actions.append(
                f"Decide on `{gate.check}`{where}: it failed ({gate.reading()}); it blocks nothing, "
                "so read its metadata before going on."
            )
    for run in (r for r in snapshot.failures if r.died):
        actions.append(
            f"Run `{run.run_id[:8]}` ({run.job}) died: re-run its partitions (missing/failed backfill)."
        )
    never: dict[str, list[str]] = {}
    for asset in snapshot.assets:
        todo = asset.failed + asset.missing
        if not todo or asset.in_progress:
            continue
        if asset.partitioned:
            how = (
                f"`dagster job backfill -w workspace.yaml -j {asset.job} --partitions '{','.join(todo)}' --noprompt`"
                if asset.job and len(todo) <= CLI_PARTITIONS
                else "UI: asset page -> Materialize -> missing and failed"
            )
            actions.append(
                f"Backfill `{asset.key}`: {len(asset.failed)} failed, {len(asset.missing)} missing -> {how}"
            )
        elif asset.failed:
            actions.append(f"Re-materialize `{asset.key}` (its latest attempt failed).")
        else:
            never.setdefault(asset.domain, []).append(asset.key)
    for domain, keys in sorted(never.items()):
        actions.append(
            f"Materialize {domain}: {len(keys)} asset(s) never materialized ({_listed(keys)}): UI group "
            f"`{domain}` -> Materialize all, or `make demo`."
        )
    stale_keys = sorted({s.key for s in snapshot.stale})
    if stale_keys:
        actions.append(f"Re-materialize stale assets: {_listed(stale_keys)}.")
    for row in snapshot.budget:
        if row.state in (BudgetState.WARN, BudgetState.OVER):
            actions.append(
                f"Budget: `{row.domain}` spent {row.fraction:.0%} of its budget; raise it in the "
                f"profile or stop launching work there."
            )
    return actions or ["Nothing to do: every partition is materialized, every gate passed."]


def _domain_section(snapshot: Snapshot, domain: str) -> list[str]:
    lines = [
        f"### {domain}",
        "",
        "| asset | partitions | materialized | failed | missing | in progress |",
        "|---|---|---|---|---|---|",
    ]
    for a in (a for a in snapshot.assets if a.domain == domain):
        kind = str(a.total) if a.partitioned else "-"
        lines.append(
            f"| `{a.key}` | {kind} | {a.materialized} | {len(a.failed)} | {len(a.missing)} | {a.in_progress} |"
        )
    for a in (a for a in snapshot.assets if a.domain == domain and a.partitioned and a.failed):
        lines.append(f"\n- `{a.key}` failed partitions: {_listed(a.failed)}")
    return lines + [""]


def _gates_section(snapshot: Snapshot) -> list[str]:
    lines = [
        "## Gates (latest result of every check)",
        "",
        "| check | blocking | passed | failed | never ran | failing partitions / detail |",
        "|---|---|---|---|---|---|",
    ]
    by_check: dict[str, list[GateStatus]] = {}
    for gate in snapshot.gates:
        by_check.setdefault(gate.check, []).append(gate)
    for check, results in sorted(by_check.items()):
        failed = [g for g in results if g.passed is False]
        detail = "; ".join(
            f"{g.partition or ''} {g.severity} {g.reading()}".strip() for g in failed[:3]
        )
        lines.append(
            f"| `{check}` | {'yes' if results[0].blocking else 'no'} | {sum(g.passed is True for g in results)} "
            f"| {len(failed)} | {sum(g.passed is None for g in results)} | {detail} |"
        )
    gates = open_gates(snapshot)
    lines += ["", f"**Open gates** (blocking, failed, not overridden): {len(gates)}"]
    lines += [
        f"- `{g.check}`{' [' + g.partition + ']' if g.partition else ''}: {g.description} "
        f"([check]({UI_URL}/assets/{g.check.split(':')[0]}?view=checks), [run]({UI_URL}/runs/{g.run_id}))"
        for g in gates
    ]
    return lines + [""]


def _reviews_section(snapshot: Snapshot) -> list[str]:
    lines = ["## Reviews (sign-offs and overrides)", ""]
    if not snapshot.reviews:
        return lines + ["_none recorded_", ""]
    lines += [
        "| when | decision | check | partition | reviewer | reason |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.recorded_at:%Y-%m-%d %H:%M} | {r.decision} | `{r.check_key}` | {r.partition_key or ''} | {r.reviewer} | {r.reason} |"
        for r in snapshot.reviews
    ]
    return lines + [""]


def _runs_section(snapshot: Snapshot) -> list[str]:
    lines = ["## Runs", "", f"**In progress:** {len(snapshot.in_progress)}"]
    lines += [
        f"- `{r.run_id[:8]}` {r.job} {r.partition or ''} {r.status} since {r.when}"
        for r in snapshot.in_progress
    ]
    died = [r for r in snapshot.failures if r.died]
    lines += ["", f"**Died** (process lost, marked failed by run monitoring): {len(died)}"]
    lines += [
        f"- `{r.run_id[:8]}` {r.job} {r.partition or ''} at {r.when}: {r.error}"
        for r in died[:SHOWN]
    ]
    lines += ["", "**Last failures**", ""]
    if not snapshot.failures:
        return lines + ["_none_", ""]
    lines += ["| run | job | partition | when | error |", "|---|---|---|---|---|"]
    lines += [
        f"| `{r.run_id[:8]}` | {r.job} | {r.partition or ''} | {r.when} | {(r.error or '').replace('|', '/')} |"
        for r in snapshot.failures[:SHOWN]
    ]
    return lines + [""]


def _budget_section(snapshot: Snapshot) -> list[str]:
    lines = [
        "## Compute spent against budget",
        "",
        "| domain | materializations | seconds | cost | budget | used | state |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in snapshot.budget:
        used = "" if row.fraction is None else f"{row.fraction:.1%}"
        note = f" (no rate for {', '.join(row.unpriced_devices)})" if row.unpriced_devices else ""
        lines.append(
            f"| {row.domain} | {row.materializations} | {row.seconds:.1f} | {row.cost:.6f} | "
            f"{_num(row.budget)} | {used} | {row.state.value}{note} |"
        )
    return lines + [""]


def render_markdown(snapshot: Snapshot) -> str:
    """The whole report."""
    domains = sorted({a.domain for a in snapshot.assets})
    lines = [
        f"# Status: profile `{snapshot.profile}`",
        "",
        f"Generated {snapshot.generated_at:%Y-%m-%d %H:%M:%S} UTC from the Dagster instance.",
        "",
        "## What to run next",
        "",
    ]
    lines += [f"{i}. {a}" for i, a in enumerate(next_actions(snapshot), 1)] + [
        "",
        "## Partitions per domain",
        "",
    ]
    for domain in domains:
        lines += _domain_section(snapshot, domain)
    lines += _gates_section(snapshot) + _reviews_section(snapshot)
    lines += ["## Stale assets (code or data version changed upstream)", ""]
    lines += [
        f"- `{s.key}`{' [' + s.partition + ']' if s.partition else ''}: {'; '.join(s.causes)}"
        for s in snapshot.stale[: SHOWN * 3]
    ] or ["_none_"]
    lines += [""] + _runs_section(snapshot) + _budget_section(snapshot)
    return "\n".join(lines)
