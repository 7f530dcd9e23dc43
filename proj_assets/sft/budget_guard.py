"""Before a long step starts: project its cost from the pilot and refuse when the projection
exceeds what is left of the domain's compute budget (`platform.budgets.sft`).

Projection = measured seconds per example on the pilot (generation and critic, `seconds_per_example`
in its metadata) x planned examples x the profile's rate for the device. Spent = every recorded
materialization of the domain's assets, priced at the profile's rate (as the status report does).
A run tagged `proj/budget_override=<reason>` starts anyway; the reason is logged and recorded in the
step's metadata.
"""

from collections.abc import Sequence

import dagster as dg

from proj_assets.shared.instance_reads import materializations

OVERRIDE_TAG = "proj/budget_override"


class BudgetExceededError(RuntimeError):
    """The projected cost of a step exceeds the domain's remaining budget."""


def projected_cost(seconds_per_example: float, examples: int, rate_per_hour: float) -> float:
    return seconds_per_example * examples / 3600.0 * rate_per_hour


def refuse_over_budget(what: str, projected: float, spent: float, budget: float | None, override: str | None) -> dict:
    """The numbers as metadata; raises `BudgetExceededError` when `projected` exceeds `budget - spent`
    and no override reason is given. No budget configured: nothing to enforce."""
    numbers = {"projected_cost": projected, "budget_spent": spent, "budget": budget,
               "budget_remaining": None if budget is None else budget - spent, "budget_override": override}
    if budget is not None and projected > budget - spent and not override:
        raise BudgetExceededError(
            f"{what}: projected cost {projected:.6g} exceeds the remaining sft budget {budget - spent:.6g} "
            f"(budget {budget:.6g}, spent {spent:.6g}); raise platform.budgets.sft, shrink the step, or tag the run "
            f"{OVERRIDE_TAG}=<reason>")
    return numbers


def domain_spent(instance: dg.DagsterInstance, keys: Sequence[list[str]], rates_per_hour: dict[str, float]) -> float:
    """Cost of every recorded materialization of `keys` (compute_seconds x the rate of its device)."""
    total = 0.0
    for key in keys:
        for record in materializations(instance, dg.AssetKey(key)):
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            seconds = getattr(meta.get("compute_seconds"), "value", None)
            device = str(getattr(meta.get("compute_device"), "value", "cpu"))
            if isinstance(seconds, int | float):
                total += seconds / 3600.0 * rates_per_hour.get(device, 0.0)
    return total
