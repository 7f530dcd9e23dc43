"""Platform checks: compute spent against each domain's budget (warn at 80%, fail at 100%)."""

import dagster as dg
import polars as pl

from proj_assets.platform.assets import STATUS
from proj_assets.profiles import Profile
from proj_assets.shared.check_results import markdown_table, threshold_result


def budget_check(profile: Profile) -> dg.AssetChecksDefinition:
    """Compute spent per domain against `profile`'s budgets."""

    @dg.asset_check(
        asset=dg.AssetKey(STATUS),
        name="compute_within_budget",
        description="Compute cost per domain (metered seconds x rate per device) below its budget.",
    )
    def compute_within_budget(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        from proj_assets.platform.budget import BudgetState
        from proj_assets.platform.snapshot import compute_budget

        rows = compute_budget(context.instance, context.repository_def.asset_graph, profile)
        table = pl.DataFrame(
            [
                {
                    "domain": r.domain,
                    "cost": round(r.cost, 6),
                    "budget": r.budget,
                    "seconds": round(r.seconds, 1),
                    "used": None if r.fraction is None else round(r.fraction, 4),
                    "state": r.state.value,
                }
                for r in rows
            ],
            schema={
                "domain": pl.Utf8,
                "cost": pl.Float64,
                "budget": pl.Float64,
                "seconds": pl.Float64,
                "used": pl.Float64,
                "state": pl.Utf8,
            },
        )
        over = [r for r in rows if r.state == BudgetState.OVER]
        warn = [r for r in rows if r.state == BudgetState.WARN]
        worst = max((r.fraction for r in rows if r.fraction is not None), default=0.0)
        severity = dg.AssetCheckSeverity.ERROR if over else dg.AssetCheckSeverity.WARN
        return threshold_result(
            passed=not over and not warn,
            measured=worst,
            threshold=profile.platform.budget_warn_fraction,
            severity=severity,
            quantity="most_used_budget_fraction",
            threshold_name="warn_at",
            must_be="below",
            description=(
                f"over budget: {[r.domain for r in over]}"
                if over
                else f"above {profile.platform.budget_warn_fraction:.0%} of budget: {[r.domain for r in warn]}"
                if warn
                else f"every domain within {profile.platform.budget_warn_fraction:.0%} of its budget"
            ),
            offending=table.filter(pl.col("state").is_in(["over", "warn"])),
            spend=markdown_table(table, limit=100),
        )

    return compute_within_budget
