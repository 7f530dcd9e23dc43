"""Scaling section of a profile: parameter budgets, the architecture search space, the trainer
and the hyperparameter search per (budget, horizon) cell."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from proj_assets.settings_base import Section

FORBIDDEN_KEY_CHARS = set("|,[]")
MAX_GRID_ROWS = (
    1_000_000  # a larger grid (e.g. a huge budget with no depth cap) is a profile mistake
)


class ArchSpace(Section):
    """Declared architecture search space; `arch_grid` keeps what lands near each budget."""

    d_model_min: int = Field(8, ge=1)
    d_model_max: int = Field(64, ge=1)
    d_model_step: int = Field(8, ge=1)
    # None: no cap, every depth within tolerance of a budget is in the grid (the research setting).
    # A cap leaves deeper architectures out; the `every_feasible_depth_in_grid` check names them.
    n_layers_max: int | None = Field(None, ge=1)
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
    patience: int = Field(10, ge=1)
    min_delta: float = Field(1e-3, ge=0)
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
    # The trial time model (trial_time.py) that keeps forced extremes within trial_time_limit_s:
    # training windows per epoch it assumes (max_train_windows when set), sustained training
    # FLOP/s and seconds per layer per micro-step (measured on a two-core CPU, docs/scaling.md).
    time_estimate_windows: int = Field(5000, ge=1)
    flops_per_second: float = Field(2e10, gt=0)
    layer_step_overhead_s: float = Field(4e-3, ge=0)


class SearchSpace(Section):
    """Ranges Optuna samples besides the architecture (log scale for lr and weight decay)."""

    lr: tuple[float, float] = (3e-4, 3e-3)
    weight_decay: tuple[float, float] = (1e-4, 5e-3)
    dropout: tuple[float, float] = (0.1, 0.3)
    context_lengths: list[int] = Field(default_factory=lambda: [8, 16, 32])

    @field_validator("lr", "weight_decay", "dropout")
    @classmethod
    def _range(cls, value: tuple[float, float], info) -> tuple[float, float]:
        if value[0] > value[1] or value[0] < 0:
            raise ValueError(
                f"search.{info.field_name} must be [min, max] with 0 <= min <= max, got {list(value)}"
            )
        if info.field_name in ("lr", "weight_decay") and value[0] <= 0:
            raise ValueError(
                f"search.{info.field_name} is sampled on a log scale: min must be > 0, got {list(value)}"
            )
        if info.field_name == "dropout" and value[1] >= 1:
            raise ValueError(f"search.dropout max must be < 1, got {list(value)}")
        return value

    @field_validator("context_lengths")
    @classmethod
    def _contexts(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError(f"search.context_lengths must list positive lengths, got {value}")
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
    # The best configuration of each cell is re-run with this many seeds for the scaling law.
    seed_runs: int = Field(3, ge=2)
    # Shared studies (scaling/study.py): trial-worker ops serving one (budget, horizon) study at
    # once; where the study lives (None: a journal file per cell under the data dir; a SQLAlchemy
    # URL such as postgresql+psycopg2://... uses Optuna's RDBStorage with heartbeats; the
    # PROJ_OPTUNA_STORAGE environment variable overrides it); heartbeat period and grace period
    # after which a silent worker's trial is failed and retried.
    study_workers: int = Field(1, ge=1, le=64)
    study_storage: str | None = None
    study_heartbeat_s: int = Field(10, ge=1)
    study_grace_s: int = Field(60, ge=2)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: dict[str, int]) -> dict[str, int]:
        if not budgets or any(v <= 0 for v in budgets.values()):
            raise ValueError("budgets must map labels to positive parameter counts")
        for label in budgets:
            if FORBIDDEN_KEY_CHARS & set(label):
                raise ValueError(
                    f"budget label {label!r} contains one of {sorted(FORBIDDEN_KEY_CHARS)}"
                )
        return budgets

    @model_validator(mode="after")
    def _every_budget_has_a_usable_grid(self):
        from proj_assets.scaling.arch_grid import grid_sizes

        sizes, a = grid_sizes(self.budgets, self.arch), self.arch
        space = (
            f"scaling.arch (d_model {a.d_model_min}..{a.d_model_max} step {a.d_model_step}, n_layers_max "
            f"{a.n_layers_max}, n_heads {a.n_heads}, min_head_dim {a.min_head_dim}, tolerance {a.tolerance})"
        )
        empty = [label for label, n in sizes.items() if n == 0]
        if empty:
            raise ValueError(
                f"scaling.budgets {empty}: no architecture of {space} lies within tolerance of these "
                "budgets; widen scaling.arch or scaling.arch.tolerance"
            )
        huge = {label: n for label, n in sizes.items() if n > MAX_GRID_ROWS}
        if huge:
            raise ValueError(
                f"scaling.budgets {list(huge)}: the grid of {space} would have {huge} rows (more than "
                f"{MAX_GRID_ROWS:,}); raise scaling.arch.d_model_min or set scaling.arch.n_layers_max"
            )
        return self
