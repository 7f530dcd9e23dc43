"""Compute spent against budget: metered seconds × a rate per device kind, summed per domain.

Pure code: the caller collects one `Spend` per materialization (from the instance) and passes
the profile's rates and budgets. The price comes from the *profile's* rate, not the cost recorded
at run time, so changing a rate re-prices the whole history consistently.
"""

from dataclasses import dataclass
from enum import Enum


class BudgetState(str, Enum):
    OK = "ok"
    WARN = "warn"  # at or above the warn fraction
    OVER = "over"  # at or above 100%
    UNBUDGETED = "no budget"


@dataclass(frozen=True)
class Spend:
    """One metered materialization."""

    domain: str
    seconds: float
    device: str


@dataclass(frozen=True)
class DomainBudget:
    domain: str
    seconds: float
    cost: float
    budget: float | None
    materializations: int
    unpriced_devices: tuple[str, ...]
    state: BudgetState

    @property
    def fraction(self) -> float | None:
        return None if not self.budget else self.cost / self.budget


def budget_state(cost: float, budget: float | None, warn_fraction: float) -> BudgetState:
    if not budget:
        return BudgetState.UNBUDGETED
    if cost >= budget:
        return BudgetState.OVER
    if cost >= warn_fraction * budget:
        return BudgetState.WARN
    return BudgetState.OK


def summarize_budget(
    spends: list[Spend],
    rates_per_hour: dict[str, float],
    budgets: dict[str, float],
    warn_fraction: float = 0.8,
) -> list[DomainBudget]:
    """One row per domain that spent compute or has a budget, sorted by domain.

    A device kind with no rate costs nothing but is listed in `unpriced_devices`, so a missing
    rate is visible rather than silently free.
    """
    if not 0 < warn_fraction < 1:
        raise ValueError(f"warn_fraction must be in (0, 1), got {warn_fraction}")
    bad = [s for s in spends if s.seconds < 0]
    if bad:
        raise ValueError(f"negative compute seconds in {bad[:3]}")
    rows = []
    for domain in sorted({s.domain for s in spends} | set(budgets)):
        mine = [s for s in spends if s.domain == domain]
        seconds = sum(s.seconds for s in mine)
        cost = sum(s.seconds / 3600.0 * rates_per_hour.get(s.device, 0.0) for s in mine)
        unpriced = tuple(sorted({s.device for s in mine if s.device not in rates_per_hour}))
        budget = budgets.get(domain)
        rows.append(
            DomainBudget(
                domain,
                seconds,
                cost,
                budget,
                len(mine),
                unpriced,
                budget_state(cost, budget, warn_fraction),
            )
        )
    return rows
