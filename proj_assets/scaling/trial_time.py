"""How long a trial of an architecture takes, from the FLOP and memory plan, so that forced
extremes are the extremes of what can train within the trial time limit.

One epoch of `n_windows` training windows at context T costs
  FLOPs     n_windows * (6 * N * T + 12 * n_layers * T^2 * d)   (matmuls forward and backward:
            6 per parameter per position; attention scores and their weighted sum, 12 L T^2 d)
  overhead  micro-steps * n_layers * `layer_step_overhead_s`    (kernel launches and the
            optimizer's per-tensor work, which a deep, narrow model at a small micro-batch pays
            thousands of times per step; micro-steps = ceil(n_windows / micro_batch))
so  epoch_s = FLOPs / `flops_per_second` + overhead. A trial fits the limit when
`min(max_epochs, patience + 1)` epochs (the fewest in which early stopping can end it by itself)
take at most `trial_time_limit_s`. The defaults were measured on a two-core CPU with the scaling
model (docs/scaling.md); a profile on other hardware sets its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class TrialTimeModel:
    n_windows: int  # training windows per epoch
    context_length: int
    epochs: int  # epochs a trial must be able to run: min(max_epochs, patience + 1)
    time_limit_s: float
    flops_per_second: float
    layer_step_overhead_s: float

    @classmethod
    def from_trainer(cls, trainer, context_length: int) -> TrialTimeModel:
        """From `scaling.trainer` (its windows are `max_train_windows` when set, else
        `time_estimate_windows`)."""
        return cls(
            trainer.max_train_windows or trainer.time_estimate_windows,
            context_length,
            min(trainer.max_epochs, trainer.patience + 1),
            trainer.trial_time_limit_s,
            trainer.flops_per_second,
            trainer.layer_step_overhead_s,
        )

    def epoch_seconds(self, n_params: int, d_model: int, n_layers: int, micro_batch: int) -> float:
        t = self.context_length
        flops = self.n_windows * (6 * n_params * t + 12 * n_layers * t * t * d_model)
        micro_steps = math.ceil(self.n_windows / max(micro_batch, 1))
        return flops / self.flops_per_second + micro_steps * n_layers * self.layer_step_overhead_s


def with_time_estimates(grid: pl.DataFrame, model: TrialTimeModel) -> pl.DataFrame:
    """Add `trial_time_estimate_s` (the model's epochs at the planned micro-batch) and
    `fits_time_limit`; needs the batch plan's `micro_batch` (an infeasible row never fits)."""
    seconds = [
        model.epochs
        * model.epoch_seconds(r["n_params"], r["d_model"], r["n_layers"], r["micro_batch"])
        for r in grid.select("n_params", "d_model", "n_layers", "micro_batch").iter_rows(named=True)
    ]
    return grid.with_columns(
        pl.Series("trial_time_estimate_s", seconds, dtype=pl.Float64)
    ).with_columns(
        fits_time_limit=(pl.col("trial_time_estimate_s") <= model.time_limit_s)
        & (pl.col("micro_batch") > 0)
    )


def time_left_out(grid: pl.DataFrame) -> pl.DataFrame:
    """Per budget, the memory-feasible architectures the time limit leaves out of the extremes, and
    why: how many, their d_model and n_layers ranges and the shortest estimate among them."""
    schema = pl.Schema(
        {
            "budget": pl.Utf8,
            "n_archs_over_time_limit": pl.UInt32,
            "over_limit_d_model": pl.Utf8,
            "over_limit_n_layers": pl.Utf8,
            "shortest_over_limit_s": pl.Float64,
        }
    )
    if "fits_time_limit" not in grid.columns:
        return pl.DataFrame(schema=schema)
    over = grid.filter((pl.col("micro_batch") > 0) & ~pl.col("fits_time_limit"))
    return (
        over.group_by("budget", maintain_order=True)
        .agg(
            pl.len().alias("n_archs_over_time_limit"),
            pl.format("{}..{}", pl.col("d_model").min(), pl.col("d_model").max()).alias(
                "over_limit_d_model"
            ),
            pl.format("{}..{}", pl.col("n_layers").min(), pl.col("n_layers").max()).alias(
                "over_limit_n_layers"
            ),
            pl.col("trial_time_estimate_s").min().alias("shortest_over_limit_s"),
        )
        .cast(schema)
    )
