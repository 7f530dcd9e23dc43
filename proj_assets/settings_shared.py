"""Compute settings shared by every domain (device, threads, seed, memory and cost), and the
platform's own settings (compute budgets per domain)."""

from typing import Literal

from pydantic import Field, field_validator

from proj_assets.settings_base import Section


class ComputeSettings(Section):
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = Field(2, ge=1, le=256)
    seed: int = 1234
    memory_budget_mb: int = Field(2048, ge=16)
    # Price of one hour of compute per device kind; turns metered seconds into a cost.
    cost_per_hour: dict[str, float] = Field(default_factory=lambda: {"cpu": 0.05, "cuda": 2.5})


class PlatformSettings(Section):
    """Operations: compute budget per domain, in the currency of `compute.cost_per_hour`.

    The `compute_within_budget` check warns at `budget_warn_fraction` of a domain's budget and
    fails at 100%. A domain without a budget is reported but never warned about.
    """

    budgets: dict[str, float] = Field(default_factory=dict)
    budget_warn_fraction: float = Field(0.8, gt=0.0, lt=1.0)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in budgets.items() if v <= 0}
        if bad:
            raise ValueError(f"budgets must be > 0, got {bad}")
        return budgets
