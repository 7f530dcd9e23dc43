"""The projection the budget guard makes before each spending step of the sft domain.

Steps: `pretraining` (the demo model's optimizer steps), `pilot` and `shards` (generated examples),
`critic` (scored examples), `training` (example-epochs: at most, early stopping may end sooner) and
`evaluation` (answers: base and adapter each answer every test item). Projected cost = planned
units x measured seconds per unit x the profile's rate for the device. Seconds per unit come from
the step's own last materialization where there is one (`compute_seconds / units`), else from the
pilot's measured `seconds_per_example` for the generating and scoring steps, else 0: nothing
measured yet, so the guard refuses only a step whose budget is already spent.
"""

from proj_assets.sft.settings import SftSettings
from proj_assets.sft.tasks import TASK_TYPES

SPENDING_STEPS = ("pretraining", "pilot", "shards", "critic", "training", "evaluation")
PER_PILOT_EXAMPLE = (
    "pilot",
    "shards",
    "critic",
    "evaluation",
)  # generation-like: the pilot's rate applies


class BudgetExceededError(RuntimeError):
    """The projected cost of a step exceeds the domain's remaining budget."""


def planned_units(step: str, cfg: SftSettings, training_rows: int = 0) -> int:
    if step not in SPENDING_STEPS:
        raise ValueError(f"unknown sft spending step {step!r}; expected one of {SPENDING_STEPS}")
    return {
        "pretraining": cfg.demo_model.train_steps if cfg.base_model_path is None else 0,
        "pilot": cfg.pilot_size,
        "shards": cfg.examples_per_shard,
        "critic": cfg.examples_per_shard,
        "training": training_rows * cfg.lora.epochs,
        "evaluation": 2 * len(TASK_TYPES) * cfg.test_per_type,
    }[step]


def seconds_per_unit(step: str, own: float | None, pilot_per_example: float | None) -> float:
    """`own`: the step's last measured seconds per unit; `pilot_per_example`: the pilot's."""
    if own is not None:
        return own
    if step in PER_PILOT_EXAMPLE and pilot_per_example is not None:
        return pilot_per_example
    return 0.0


def projected_cost(seconds_per_example: float, examples: int, rate_per_hour: float) -> float:
    return seconds_per_example * examples / 3600.0 * rate_per_hour


def projected_step_cost(
    step: str,
    cfg: SftSettings,
    rate_per_hour: float,
    own: float | None = None,
    pilot_per_example: float | None = None,
    training_rows: int = 0,
) -> float:
    return projected_cost(
        seconds_per_unit(step, own, pilot_per_example),
        planned_units(step, cfg, training_rows),
        rate_per_hour,
    )


def refuse_over_budget(
    what: str,
    projected: float,
    spent: float,
    budget: float | None,
    override: str | None,
    override_tag: str = "proj/budget_override",
) -> dict:
    """The numbers as metadata; raises `BudgetExceededError` when `projected` exceeds `budget - spent`
    (so always once the budget is spent) and no override reason is given. No budget: nothing to enforce."""
    numbers = {
        "projected_cost": projected,
        "budget_spent": spent,
        "budget": budget,
        "budget_remaining": None if budget is None else budget - spent,
        "budget_override": override,
    }
    if budget is not None and (projected > budget - spent or spent >= budget) and not override:
        raise BudgetExceededError(
            f"{what}: projected cost {projected:.6g} exceeds the remaining sft budget {budget - spent:.6g} "
            f"(budget {budget:.6g}, spent {spent:.6g}); raise platform.budgets.sft, shrink the step, or tag the run "
            f"{override_tag}=<reason>"
        )
    return numbers
