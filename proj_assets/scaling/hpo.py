"""The hyperparameter search of one (budget, horizon) cell: search space, objective and the
resumable loop that runs trials until the study holds `n_trials` finished ones.

The architecture is sampled in an ordered encoding (search_space.py: log d_model continuous,
n_layers integer, snapped onto the budget's feasible grid) so that TPE can learn which region is
good. A trial whose loss diverges (NaN/inf) fails with the reason recorded instead of crashing
the partition. With a checkpoint root each trial saves its training state every
`trainer.checkpoint_every_epochs` epochs; the retry of a killed trial (same parameters, same
seed) resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import optuna
from optuna.trial import TrialState

from proj_assets.scaling.config_training import CellContext, CellTrainer, result_fields
from proj_assets.scaling.extremes import middle_hyperparameters
from proj_assets.scaling.search_space import ArchSpace, encode
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.study import (
    EXTREME_ATTR,
    FAILED_REASON_ATTR,
    INFEASIBLE_ATTR,
    INPUTS_ATTR,
    RETRY_ATTR,
    RUN_ATTR,
    SurplusTrial,
    claim,
    enqueue_retry,
    is_surplus,
    n_done,
    recover_stale_trials,
    waiting_extremes,
)
from proj_assets.scaling.trainer import NonFiniteLoss, OutOfMemory
from proj_assets.scaling.trial_checkpoint import TrainingCheckpoint
from proj_resources.hashing import canonical_hash


class InfeasibleTrial(Exception):
    """The sampled architecture cannot train under the memory budget (recorded, not a crash)."""


class TrialInterrupted(Exception):
    """The run was cancelled during this trial; a retry with the same parameters was queued."""


def study_params(arch: dict, hyper: dict) -> dict:
    """Resolved values -> the study's parameter names, e.g. for enqueue_trial."""
    return {**encode(arch), **hyper}


def extreme_trials(
    extremes: list[tuple[str, dict]], settings: ScalingSettings
) -> list[tuple[str, dict]]:
    middle = middle_hyperparameters(settings.search)
    return [(label, study_params(arch, middle)) for label, arch in extremes]


def first_attempt(trial: optuna.Trial) -> int:
    """The number of the trial this one retries (following retries of retries), else its own."""
    number, by_number = trial.number, None
    retry_of = trial.user_attrs.get(RETRY_ATTR)
    while retry_of is not None:
        by_number = by_number or {t.number: t for t in trial.study.get_trials(deepcopy=False)}
        number, retry_of = retry_of, by_number[retry_of].user_attrs.get(RETRY_ATTR)
    return number


def _clear(checkpoint: TrainingCheckpoint | None) -> None:
    if checkpoint is not None:
        checkpoint.clear()


class Objective:
    def __init__(
        self, cell: CellContext, should_stop: Callable[[], bool], log: Callable[[str], None]
    ):
        self.cell, self.should_stop, self.log = cell, should_stop, log
        self.space = ArchSpace(cell.budget_grid)
        self.trainer = CellTrainer(cell)

    def sample(self, trial: optuna.Trial) -> dict:
        search, bounds = self.cell.settings.search, self.space.bounds
        arch = self.space.snap(
            trial.suggest_float("log2_d_model", *bounds["log2_d_model"]),
            trial.suggest_int("n_layers", *bounds["n_layers"]),
            trial.suggest_float("log2_n_heads", *bounds["log2_n_heads"]),
        )
        return {
            **arch,
            "context_length": trial.suggest_categorical(
                "context_length", sorted(search.context_lengths)
            ),
            "lr": trial.suggest_float("lr", *search.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *search.weight_decay, log=True),
            "dropout": trial.suggest_float("dropout", *search.dropout),
        }

    def __call__(self, trial: optuna.Trial) -> float:
        # a retry trains exactly like the attempt it replaces (same seed, same checkpoint)
        hp, plan = self.trainer.resolve(self.sample(trial), self.cell.seed + first_attempt(trial))
        trial.set_user_attr("hp", hp)
        if self.cell.inputs is not None:
            trial.set_user_attr(INPUTS_ATTR, self.cell.inputs)
        if self.cell.run_id is not None:
            trial.set_user_attr(RUN_ATTR, self.cell.run_id)
        if not plan.feasible:
            trial.set_user_attr(
                INFEASIBLE_ATTR,
                f"estimate {plan.estimate_mb:.0f} MiB at one sample exceeds "
                f"the {self.cell.memory_budget_mb} MiB budget",
            )
            raise InfeasibleTrial(trial.user_attrs[INFEASIBLE_ATTR])
        checkpoint = self.trainer.checkpoint(
            canonical_hash({"study": trial.study.study_name, "hp": hp})
        )

        def on_epoch(epoch: int, metrics: dict) -> None:
            trial.report(metrics["loss"], epoch)
            if (
                trial.should_prune() and EXTREME_ATTR not in trial.user_attrs
            ):  # extremes always run to the end
                trial.set_user_attr("pruned_at_epoch", epoch + 1)
                raise optuna.TrialPruned(f"val loss {metrics['loss']:.4f} after epoch {epoch + 1}")

        try:
            result, model = self.trainer.train(hp, on_epoch, self.should_stop, self.log, checkpoint)
        except OutOfMemory as exc:
            trial.set_user_attr(INFEASIBLE_ATTR, str(exc)[:500])
            raise InfeasibleTrial(str(exc)) from exc
        except NonFiniteLoss as exc:
            _clear(checkpoint)
            trial.set_user_attr(FAILED_REASON_ATTR, f"diverged: {exc}"[:500])
            return float("nan")  # Optuna records a NaN objective as a FAIL; the study goes on
        except optuna.TrialPruned:
            _clear(checkpoint)
            raise
        if result.interrupted:  # the checkpoint stays: the retry resumes from it
            trial.set_user_attr(FAILED_REASON_ATTR, "interrupted by a cancel request; retried")
            enqueue_retry(trial.study, trial)
            raise TrialInterrupted(
                f"trial {trial.number} stopped by a cancel request; queued for retry"
            )
        _clear(checkpoint)
        fields = result_fields(result)
        if self.cell.model_sink is not None and _best_so_far(trial.study, result.val["loss"]):
            trial.set_user_attr("model", self.cell.model_sink(model, hp, fields))
        trial.set_user_attr("result", fields)
        return result.val["loss"]


def _best_so_far(study: optuna.Study, loss: float) -> bool:
    # a COMPLETE trial of this single-objective study always has its value
    done = [
        cast(float, t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]
    return not done or loss < min(done)


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    log: Callable[[str], None] = lambda _msg: None,
    owner: str | None = None,
    grace_s: float = 60.0,
    poll_s: float = 1.0,
) -> int:
    """Run trials until `n_trials` count as done over every worker of the study; returns how many
    this worker ran. While the running trials of other workers would reach `n_trials`, it waits
    for them (failing those of dead workers) instead of starting one more; a trial that still
    starts past the count (two workers racing) is failed as surplus, its enqueued parameters
    queued again. Forced extremes still queued run even when the study already holds `n_trials`.
    An unexpected error in the objective records its `failed_reason` on the trial and is raised."""
    started, ran = time.perf_counter(), 0

    def claimed(trial: optuna.Trial) -> float:
        claim(trial, owner)
        if is_surplus(trial, n_trials):
            raise SurplusTrial(trial.number)
        try:
            return objective(trial)
        except (InfeasibleTrial, TrialInterrupted, optuna.TrialPruned):
            raise
        except Exception as exc:  # still raised: the run fails, the trial says why
            if FAILED_REASON_ATTR not in trial.user_attrs:
                trial.set_user_attr(FAILED_REASON_ATTR, f"error: {type(exc).__name__}: {exc}"[:500])
            raise

    while (done := n_done(study)) < n_trials or waiting_extremes(study):
        running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        if done + running >= n_trials and not waiting_extremes(study):
            recover_stale_trials(study, grace_s)
            time.sleep(poll_s)
            continue
        study.optimize(claimed, n_trials=1, catch=(InfeasibleTrial, SurplusTrial))
        ran += 1
        rate = ran / max(time.perf_counter() - started, 1e-9)
        remaining = n_trials - n_done(study)
        log(
            f"trial {done + 1} of {n_trials} finished; {rate * 60:.1f} trials/min, ETA {max(remaining, 0) / rate:.0f} s"
        )
    return ran


def reseed_for_resume(study: optuna.Study, settings: ScalingSettings, seed: int) -> int:
    """Give the sampler a seed that also depends on how many trials the study already holds, so a
    resumed (or re-materialized) study never replays the draws of an earlier run; returns it."""
    resumed = (seed + 104_729 * len(study.get_trials(deepcopy=False))) % 2**31
    study.sampler = make_sampler_and_pruner(settings, resumed)[0]
    return resumed


def make_sampler_and_pruner(
    settings: ScalingSettings, seed: int, pruning: bool | None = None
) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    use_pruner = settings.pruner == "median" if pruning is None else pruning
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=1
        )
        if use_pruner
        else optuna.pruners.NopPruner()
    )
    # constant_liar: workers sharing a study treat each other's running trials as bad, so they
    # do not all sample the same point (no effect with one worker).
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True), pruner
