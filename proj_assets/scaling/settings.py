"""Scaling section of a profile: parameter budgets, the architecture search space, the trainer
and the hyperparameter search per (budget, horizon) cell."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from proj_assets.settings_base import Section

FORBIDDEN_KEY_CHARS = set("|,[]")


class ArchSpace(Section):
    """Declared architecture search space; `arch_grid` keeps what lands near each budget."""

    d_model_min: int = Field(8, ge=1)
    d_model_max: int = Field(64, ge=1)
    d_model_step: int = Field(8, ge=1)
    n_layers_max: int = Field(16, ge=1)
    n_heads: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    min_head_dim: int = Field(4, ge=1)
    ffn_mult: int = Field(4, ge=1)
    # An architecture belongs to a budget when |params - budget| <= tolerance * budget.
    tolerance: float = Field(0.25, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.d_model_min > self.d_model_max:
            raise ValueError(f"d_model_min {self.d_model_min} > d_model_max {self.d_model_max}")
        if not self.n_heads or any(h < 1 for h in self.n_heads):
            raise ValueError("n_heads must list positive head counts")
        return self


class TrainerSettings(Section):
    max_epochs: int = Field(4, ge=1)
    patience: int = Field(2, ge=1)
    min_delta: float = Field(1e-4, ge=0)
    effective_batch: int = Field(256, ge=1)
    grad_clip: float = Field(1.0, gt=0)
    trial_time_limit_s: float = Field(60.0, gt=0)
    # Keep only the most recent training windows (None = all); the demo trains on a recent slice.
    max_train_windows: int | None = Field(None, ge=1)
    # torch intra-op threads while training (None = compute.threads). Tiny models are slower with
    # 2 threads than with 1 on a shared 2-core machine (bench/hpo.py), so the demo sets 1.
    torch_threads: int | None = Field(None, ge=1)
    # Save the full training state every this many epochs so a killed trial's retry resumes.
    checkpoint_every_epochs: int = Field(5, ge=1)


class SearchSpace(Section):
    """Ranges Optuna samples besides the architecture (log scale for lr and weight decay)."""

    lr: tuple[float, float] = (3e-4, 3e-3)
    weight_decay: tuple[float, float] = (1e-4, 1e-1)
    dropout: tuple[float, float] = (0.0, 0.3)
    context_lengths: list[int] = Field(default_factory=lambda: [8, 16, 32])

    @field_validator("lr", "weight_decay", "dropout")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1] or value[0] < 0:
            raise ValueError(f"range must be (low, high) with 0 <= low <= high, got {value}")
        return value


class ScalingSettings(Section):
    # Budget label (a partition key, e.g. "20M") -> target parameter count.
    budgets: dict[str, int]
    n_trials: int = Field(ge=1)
    arch: ArchSpace = Field(default_factory=ArchSpace)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    search: SearchSpace = Field(default_factory=SearchSpace)
    pruner: Literal["median", "none"] = "median"
    pruner_startup_trials: int = Field(2, ge=0)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: dict[str, int]) -> dict[str, int]:
        if not budgets or any(v <= 0 for v in budgets.values()):
            raise ValueError("budgets must map labels to positive parameter counts")
        for label in budgets:
            if FORBIDDEN_KEY_CHARS & set(label):
                raise ValueError(f"budget label {label!r} contains one of {sorted(FORBIDDEN_KEY_CHARS)}")
        return budgets
