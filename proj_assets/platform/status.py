"""The status report: a markdown handoff note rendered from a snapshot of the instance.

Pure code: `platform.snapshot` reads the Dagster instance into `status_model` dataclasses; this
module decides what to say first and what to run next, `status_sections` renders the tables.
No dagster import.
"""

from proj_assets.platform.budget import BudgetState
from proj_assets.platform.status_model import (
    Snapshot,
    failed_warnings,
    gate_name,
    listed,
    open_gates,
)
from proj_assets.platform.status_sections import (
    CLI_PARTITIONS,
    backfill_command,
    budget_section,
    domain_section,
    gates_section,
    reviews_section,
    runs_section,
    stale_section,
)


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def headline(snapshot: Snapshot) -> str:
    """The note's first line: blocking gates open and failed WARN checks by name, and what to
    review. A standing warning is always named: the note never reads "all clear" over one."""
    gates, warnings = open_gates(snapshot), failed_warnings(snapshot)
    text = f"**{_count(len(gates), 'blocking gate', 'blocking gates')} open; {_count(len(warnings), 'warning', 'warnings')}"
    text += f": {listed([gate_name(w) for w in warnings])}**" if warnings else "**"
    review = []
    if gates:
        review.append("review the open gates (What to run next, Gates)")
    if warnings:
        review.append(
            "read each warning's metadata in the Gates table: it blocks nothing, but the result "
            "it flags may not mean what it seems"
        )
    return text + (f". To review: {'; '.join(review)}." if review else ". Nothing to review.")


def next_actions(snapshot: Snapshot) -> list[str]:
    """What to run next, most urgent first."""
    actions = []
    for gate in open_gates(snapshot):
        where = f" partition `{gate.partition}`" if gate.partition else ""
        actions.append(
            f"Review gate `{gate.check}`{where} ({gate.reading()}): fix the input and re-materialize, "
            f"or record an override with `gate_review_job`."
        )
    # decision gates (e.g. a stage gate): failed, ERROR, nothing blocked
    for gate in snapshot.gates:
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
                f"`{backfill_command(asset.job, todo)}`"
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
            f"Materialize {domain}: {len(keys)} asset(s) never materialized ({listed(keys)}): UI group "
            f"`{domain}` -> Materialize all, or `make demo`."
        )
    stale_keys = sorted({s.key for s in snapshot.stale})
    if stale_keys:
        actions.append(
            f"Re-run stale assets ({listed(stale_keys)}): the commands are under Stale assets."
        )
    for row in snapshot.budget:
        if row.state in (BudgetState.WARN, BudgetState.OVER):
            actions.append(
                f"Budget: `{row.domain}` spent {row.fraction:.0%} of its budget; raise it in the "
                f"profile or stop launching work there."
            )
    if actions:
        return actions
    warnings = failed_warnings(snapshot)
    if warnings:
        return [
            "Nothing to run: every partition is materialized and no blocking gate is open; "
            f"review the {len(warnings)} warning(s) named above before relying on the results."
        ]
    return ["Nothing to do: every partition is materialized and every check passed."]


def render_markdown(snapshot: Snapshot) -> str:
    """The whole report."""
    domains = sorted({a.domain for a in snapshot.assets})
    lines = [
        f"# Status: profile `{snapshot.profile}`",
        "",
        f"Generated {snapshot.generated_at:%Y-%m-%d %H:%M:%S} UTC from the Dagster instance.",
        "",
        headline(snapshot),
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
        lines += domain_section(snapshot, domain)
    lines += gates_section(snapshot) + reviews_section(snapshot) + stale_section(snapshot)
    lines += runs_section(snapshot) + budget_section(snapshot)
    return "\n".join(lines)
