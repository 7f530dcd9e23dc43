"""Compute settings shared by every domain (device, threads, seed, memory and cost)."""

from typing import Literal

from pydantic import Field

from proj_assets.settings_base import Section


class ComputeSettings(Section):
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = Field(2, ge=1, le=256)
    seed: int = 1234
    memory_budget_mb: int = Field(2048, ge=16)
    # Price of one hour of compute per device kind; turns metered seconds into a cost.
    cost_per_hour: dict[str, float] = Field(default_factory=lambda: {"cpu": 0.05, "cuda": 2.5})
