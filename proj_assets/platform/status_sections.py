"""The sections of the status note, each rendered from a `status_model.Snapshot` as markdown
lines. Pure code, no dagster import; `platform.status` puts them together."""

from proj_assets.platform.status_model import (
    SHOWN,
    GateStatus,
    Snapshot,
    StaleAsset,
    listed,
    num_text,
    open_gates,
)

UI_URL = "http://127.0.0.1:3000"  # `make ui`; links in the report open the check and the run there
CLI_PARTITIONS = 50  # more than this: backfill from the UI instead of one long command
# Commands in the note run from the project root on the instance the note was read from.
INSTANCE_HINT = (
    "Run from the project root with the note's instance exported: "
    "`export DAGSTER_HOME=$(make -s instance-home)` (the same PROJ_PROFILE and PROJ_DATA_DIR)."
)


def backfill_command(job: str, partitions: list[str]) -> str:
    """A job backfill of exactly `partitions` (the daemon launches its runs: `make ui`)."""
    return (
        f"dagster job backfill -w workspace.yaml -j {job} "
        f"--partitions '{','.join(partitions)}' --noprompt"
    )


def materialize_command(location_args: str, key: str, partition: str | None = None) -> str:
    """An in-process run of one asset (one partition of it) on the instance at DAGSTER_HOME."""
    part = f" --partition '{partition}'" if partition else ""
    return f"dagster asset materialize {location_args} --select '{key}'{part}"


def rerun_commands(snapshot: Snapshot, key: str, partitions: list[str | None]) -> list[str]:
    """Commands that re-run exactly these partitions of `key` (`[None]`: the unpartitioned asset):
    a backfill of its job when it has one, else one run per partition; more than
    CLI_PARTITIONS partitions: none (the UI's partition picker does it)."""
    if len(partitions) > CLI_PARTITIONS:
        return []
    job = next((a.job for a in snapshot.assets if a.key == key), None)
    if partitions == [None]:
        return [materialize_command(snapshot.location_args, key)]
    if job:
        return [backfill_command(job, [p for p in partitions if p is not None])]
    return [materialize_command(snapshot.location_args, key, p) for p in partitions]


def stale_section(snapshot: Snapshot) -> list[str]:
    lines = ["## Stale assets (code or data version changed upstream)", ""]
    by_key: dict[str, list[StaleAsset]] = {}
    for stale in snapshot.stale:
        by_key.setdefault(stale.key, []).append(stale)
    if not by_key:
        return lines + ["_none_", ""]
    lines += [INSTANCE_HINT, ""]
    for key, rows in by_key.items():
        partitions = [s.partition for s in rows]
        named = [p for p in partitions if p is not None]
        where = f" {len(named)} partition(s): {listed(named)}" if named else ""
        causes = sorted({c for s in rows for c in s.causes})
        lines.append(f"- `{key}`{where}; because {'; '.join(causes[:SHOWN])}")
        commands = rerun_commands(snapshot, key, partitions)
        lines += [f"  - re-run: `{c}`" for c in commands] or [
            "  - re-run: UI asset page -> Materialize -> pick the partitions above"
        ]
    return lines + [""]


def domain_section(snapshot: Snapshot, domain: str) -> list[str]:
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
        lines.append(f"\n- `{a.key}` failed partitions: {listed(a.failed)}")
    return lines + [""]


def gates_section(snapshot: Snapshot) -> list[str]:
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


def reviews_section(snapshot: Snapshot) -> list[str]:
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


def runs_section(snapshot: Snapshot) -> list[str]:
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


def budget_section(snapshot: Snapshot) -> list[str]:
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
            f"{num_text(row.budget)} | {used} | {row.state.value}{note} |"
        )
    return lines + [""]
