"""The study as a table: one row per finished trial with every hyperparameter and its metrics."""

from __future__ import annotations

import optuna
import polars as pl
from optuna.trial import TrialState

from proj_assets.scaling.study import (
    EXTREME_ATTR,
    FAILED_REASON_ATTR,
    INFEASIBLE_ATTR,
    INPUTS_ATTR,
    RETRY_ATTR,
    RUN_ATTR,
    StudyLocation,
)
from proj_resources.fingerprints import FINGERPRINT, INPUT_VERSIONS, stamp_inputs

HYPERPARAMETERS = (
    "d_model",
    "n_layers",
    "n_heads",
    "head_dim",
    "context_length",
    "lr",
    "weight_decay",
    "dropout",
    "n_params",
    "micro_batch",
    "accum_steps",
    "effective_batch",
    "memory_estimate_mb",
    "trial_seed",
)  # the trial's own training seed ("seed" is the provenance column)
METRICS = tuple(
    f"{split}_{m}" for split in ("val", "test") for m in ("loss", "roc_auc", "pr_auc", "accuracy")
)
TRIAL_SCHEMA = {
    "budget": pl.Utf8,
    "horizon": pl.Utf8,
    "budget_params": pl.Int64,
    "trial_number": pl.Int64,
    "state": pl.Utf8,
    "forced_extreme": pl.Utf8,
    "retry_of": pl.Int64,
    **{
        k: pl.Float64 if k in ("lr", "weight_decay", "dropout", "memory_estimate_mb") else pl.Int64
        for k in HYPERPARAMETERS
    },
    "epochs_run": pl.Int64,
    "best_epoch": pl.Int64,
    "early_stopped": pl.Boolean,
    "time_limited": pl.Boolean,
    "pruned_at_epoch": pl.Int64,
    "duration_s": pl.Float64,
    "peak_memory_mb": pl.Float64,
    "peak_above_start_mb": pl.Float64,  # the trial's own peak minus the memory in use when it started
    **{m: pl.Float64 for m in METRICS},
    "objective": pl.Float64,
    "infeasible_reason": pl.Utf8,
    "failed_reason": pl.Utf8,
    "model_path": pl.Utf8,
    "model_sha256": pl.Utf8,  # weights of a trial that was the study's best when it ended
    "trial_run_id": pl.Utf8,  # the run that trained the trial (run_id: the run writing the table)
    "study": pl.Utf8,  # the Optuna study (one per input version of the cell, versions.py)
}
STAMPED_SCHEMA = {**TRIAL_SCHEMA, FINGERPRINT: pl.Utf8, INPUT_VERSIONS: pl.Utf8}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _row(
    trial: optuna.trial.FrozenTrial, budget: str, horizon: str, budget_params: int, trial_study: str
) -> dict:
    attrs = trial.user_attrs
    hp, result = attrs.get("hp", {}), attrs.get("result", {})
    intermediate = trial.intermediate_values
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "budget": budget,
        "horizon": horizon,
        "budget_params": budget_params,
        "trial_number": trial.number,
        "state": trial.state.name,
        "forced_extreme": attrs.get(EXTREME_ATTR),
        "retry_of": attrs.get(RETRY_ATTR),
        **{k: hp.get("seed" if k == "trial_seed" else k) for k in HYPERPARAMETERS},
        "epochs_run": result.get("epochs_run", len(intermediate) if intermediate else None),
        "best_epoch": result.get("best_epoch"),
        "early_stopped": result.get("early_stopped"),
        "time_limited": result.get("time_limited"),
        "pruned_at_epoch": attrs.get("pruned_at_epoch"),
        "duration_s": result.get("duration_s", duration),
        "peak_memory_mb": result.get("peak_memory_mb"),
        "peak_above_start_mb": result.get("peak_above_start_mb"),
        **{m: result.get(m) for m in METRICS},
        "val_loss": result.get("val_loss", min(intermediate.values()) if intermediate else None),
        "objective": trial.value,
        "infeasible_reason": attrs.get(INFEASIBLE_ATTR),
        "failed_reason": attrs.get(FAILED_REASON_ATTR),
        "model_path": attrs.get("model", {}).get("model_path"),
        "model_sha256": attrs.get("model", {}).get("model_sha256"),
        "trial_run_id": attrs.get(RUN_ATTR),
        "study": trial_study,
    }


def trials_frame(
    study: optuna.Study, budget: str, horizon: str, budget_params: int
) -> pl.DataFrame:
    """Finished trials (complete, pruned, failed) in trial order; queued or running ones are left out.
    A pruned trial's val_loss is the best intermediate value it reported. Rows carry the study's
    input versions and fingerprint (null for a study made before versions existed)."""
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    frame = pl.DataFrame(
        [_row(t, budget, horizon, budget_params, study.study_name) for t in trials],
        schema=TRIAL_SCHEMA,
    )
    inputs = study.user_attrs.get(INPUTS_ATTR)
    if inputs:
        return stamp_inputs(frame, inputs)
    return frame.with_columns(pl.lit(None, pl.Utf8).alias(c) for c in (FINGERPRINT, INPUT_VERSIONS))


def cell_trials_frame(
    location: StudyLocation, budget: str, horizon: str, budget_params: int
) -> pl.DataFrame:
    """The trials of every study of the cell, each version's rows stamped with its inputs: the
    current version's beside the superseded history."""
    storage = location.storage(budget, horizon)
    frames = [
        trials_frame(
            optuna.load_study(study_name=name, storage=storage), budget, horizon, budget_params
        )
        for name in location.cell_study_names(budget, horizon)
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=STAMPED_SCHEMA)


def explain_retried_failures(table: pl.DataFrame) -> pl.DataFrame:
    """Trials table rows failed without a reason (the heartbeat failed them) but retried: say so
    (retries are matched within their own study: trial numbers restart in each study version)."""
    retried = table.filter(pl.col("retry_of").is_not_null()).select(
        "study",
        pl.col("retry_of").alias("trial_number"),
        pl.col("trial_number").alias("retried_as"),
    )
    joined = table.join(
        retried.unique(["study", "trial_number"], keep="first"),
        on=["study", "trial_number"],
        how="left",
    )
    reason = pl.format(
        "its worker stopped sending heartbeats; retried as trial {}", pl.col("retried_as")
    )
    return joined.with_columns(
        failed_reason=pl.when(
            (pl.col("state") == "FAIL")
            & pl.col("failed_reason").is_null()
            & pl.col("retried_as").is_not_null()
        )
        .then(reason)
        .otherwise(pl.col("failed_reason"))
    ).drop("retried_as")
