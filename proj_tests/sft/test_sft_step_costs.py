"""The budget guard's projection for every spending step (issue 21: only shards checked), and a
refusal once the budget is spent even when nothing has been measured for the step yet."""

import pytest

from proj_assets.sft.settings import SftSettings
from proj_assets.sft.step_costs import (
    SPENDING_STEPS,
    BudgetExceededError,
    planned_units,
    projected_step_cost,
    refuse_over_budget,
)

CFG = SftSettings(n_shards=2, pilot_size=100, examples_per_shard=1500, test_per_type=40)


def test_every_spending_step_has_planned_units():
    units = {step: planned_units(step, CFG, training_rows=900) for step in SPENDING_STEPS}
    assert units == {
        "pretraining": CFG.demo_model.train_steps,
        "pilot": 100,
        "shards": 1500,
        "critic": 1500,
        "training": 900 * CFG.lora.epochs,
        "evaluation": 2 * 5 * 40,
    }
    assert (
        planned_units("pretraining", CFG.model_copy(update={"base_model_path": "/m"})) == 0
    )  # nothing to pretrain
    with pytest.raises(ValueError, match="unknown sft spending step"):
        planned_units("export", CFG)


def test_projection_prefers_the_steps_own_rate_then_the_pilots():
    assert projected_step_cost("evaluation", CFG, 3600.0, pilot_per_example=0.5) == pytest.approx(
        400 * 0.5
    )
    assert projected_step_cost(
        "evaluation", CFG, 3600.0, own=0.1, pilot_per_example=0.5
    ) == pytest.approx(40.0)
    assert (
        projected_step_cost("training", CFG, 3600.0, pilot_per_example=0.5, training_rows=10) == 0.0
    )  # unmeasured


def test_a_spent_budget_refuses_even_an_unmeasured_step_unless_overridden():
    with pytest.raises(
        BudgetExceededError, match="adapter: projected cost 0 exceeds the remaining sft budget -1"
    ):
        refuse_over_budget("adapter", 0.0, spent=11.0, budget=10.0, override=None)
    with pytest.raises(BudgetExceededError, match="proj/budget_override"):
        refuse_over_budget("paired", 3.0, spent=8.0, budget=10.0, override=None)
    assert refuse_over_budget("paired", 3.0, 8.0, 10.0, "reviewed")["budget_override"] == "reviewed"
    assert refuse_over_budget("paired", 1.0, 8.0, 10.0, None)["budget_remaining"] == 2.0
    assert (
        refuse_over_budget("paired", 1e9, 8.0, None, None)["budget"] is None
    )  # no budget: nothing to enforce
