"""Seed re-runs: the best configuration of a cell trained again with k seeds, so the scaling law's
uncertainty comes from training noise measured per budget, not from one run per point.

Each run resumes from its own checkpoint when retried (same spec, same key) and stores its
weights through the model sink. A run that diverges is a row with its reason, not a crash."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from proj_assets.scaling.config_training import CellContext, CellTrainer, result_fields
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.trainer import NonFiniteLoss
from proj_assets.scaling.versions import SEED_RUNS_CODE_VERSION, select_current
from proj_resources.fingerprints import FINGERPRINT
from proj_resources.hashing import canonical_hash

ARCH_AND_HYPER = (
    "d_model",
    "n_layers",
    "n_heads",
    "context_length",
    "lr",
    "weight_decay",
    "dropout",
)
METRIC_COLUMNS = tuple(
    f"{split}_{m}" for split in ("val", "test") for m in ("loss", "roc_auc", "pr_auc", "accuracy")
)
SEED_RUN_SCHEMA = {
    "budget": pl.Utf8,
    "horizon": pl.Utf8,
    "budget_params": pl.Int64,
    "best_trial_number": pl.Int64,
    "run_seed": pl.Int64,
    "n_params": pl.Int64,
    **{k: pl.Int64 for k in ("d_model", "n_layers", "n_heads", "context_length")},
    "lr": pl.Float64,
    "weight_decay": pl.Float64,
    "dropout": pl.Float64,
    "epochs_run": pl.Int64,
    "time_limited": pl.Boolean,
    "duration_s": pl.Float64,
    **{m: pl.Float64 for m in METRIC_COLUMNS},
    "failed_reason": pl.Utf8,
    "model_path": pl.Utf8,
    "model_sha256": pl.Utf8,
}


def run_seeds(
    best: dict,
    cell: CellContext,
    seeds: list[int],
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = lambda _m: None,
) -> pl.DataFrame:
    """Train `best`'s configuration (a best_trials row) once per seed; one row per seed."""
    trainer, rows = CellTrainer(cell), []
    for i, seed in enumerate(seeds):
        hp, plan = trainer.resolve({k: best[k] for k in ARCH_AND_HYPER}, seed)
        if not plan.feasible:
            raise ValueError(
                f"best config of {best['budget']}/{best['horizon']} does not fit the memory budget now"
            )
        checkpoint = trainer.checkpoint(
            canonical_hash({"seed_run": [best["budget"], best["horizon"]], "hp": hp})
        )
        row = {
            "budget": best["budget"],
            "horizon": best["horizon"],
            "budget_params": best["budget_params"],
            "best_trial_number": best["trial_number"],
            "run_seed": seed,
            **{k: hp[k] for k in ("n_params", *ARCH_AND_HYPER)},
        }
        try:
            result, model = trainer.train(hp, None, should_stop, log, checkpoint)
        except NonFiniteLoss as exc:
            rows.append({**row, "failed_reason": f"diverged: {exc}"})
            continue
        if result.interrupted:
            raise InterruptedError(
                f"seed run {i + 1} of {len(seeds)} interrupted; its checkpoint is kept for the retry"
            )
        if checkpoint is not None:
            checkpoint.clear()
        fields = result_fields(result)
        saved = cell.model_sink(model, hp, fields) if cell.model_sink is not None else {}
        rows.append(
            {
                **row,
                **{
                    k: fields.get(k)
                    for k in ("epochs_run", "time_limited", "duration_s", *METRIC_COLUMNS)
                },
                "model_path": saved.get("model_path"),
                "model_sha256": saved.get("model_sha256"),
            }
        )
        log(f"seed run {i + 1} of {len(seeds)} (seed {seed}): val loss {fields['val_loss']:.4f}")
    return pl.DataFrame(rows, schema=SEED_RUN_SCHEMA)


def seed_run_inputs(best: Mapping, settings: ScalingSettings) -> dict[str, str]:
    """What a cell's seed runs depend on: the inputs of its best trial (data, splits, trainer,
    grid, search, code: its fingerprint), which trial and configuration that is, the seed count
    and the seed-run code."""
    return {
        "best_trial_inputs": str(best[FINGERPRINT]),
        "best_trial": canonical_hash({k: best[k] for k in ("trial_number", *ARCH_AND_HYPER)}),
        "seed_runs": str(settings.seed_runs),
        "code": SEED_RUNS_CODE_VERSION,
    }


def current_seed_runs(
    runs: pl.DataFrame, best: pl.DataFrame, settings: ScalingSettings
) -> tuple[pl.DataFrame, dict]:
    """The seed runs of each cell made from its current best trial, and their staleness."""
    inputs = {
        (row["budget"], row["horizon"]): seed_run_inputs(row, settings)
        for row in best.iter_rows(named=True)
    }
    return select_current(runs, inputs)
