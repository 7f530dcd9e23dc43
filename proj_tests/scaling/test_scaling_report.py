"""Best-trial selection and the experiment-results table (the scaling law: test_scaling_law_*.py)."""

import polars as pl

from proj_assets.scaling.report import best_trials, experiment_results
from proj_assets.scaling.trial_table import TRIAL_SCHEMA
from proj_resources.fingerprints import current_rows, stamp_inputs


def _trials():
    rows = [
        ("2k", "h1", 2000, 0, "COMPLETE", 0.60),
        ("2k", "h1", 2000, 1, "COMPLETE", 0.55),
        ("2k", "h1", 2000, 2, "PRUNED", 0.50),
        ("20k", "h1", 20000, 0, "COMPLETE", 0.50),
        ("20k", "h1", 20000, 1, "FAIL", None),
    ]
    frame = pl.DataFrame(
        [
            dict(
                zip(
                    ["budget", "horizon", "budget_params", "trial_number", "state", "val_loss"],
                    r,
                    strict=True,
                )
            )
            for r in rows
        ]
    )
    frame = frame.with_columns(
        pl.col("budget_params").alias("n_params"),
        pl.when(pl.col("state") == "FAIL").then(pl.lit("oom")).alias("infeasible_reason"),
    )
    frame = frame.with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in TRIAL_SCHEMA.items() if c not in frame.columns]
    )
    # the current version's rows, and one 2k/h1 trial of an earlier data version, better on paper
    superseded = stamp_inputs(frame.head(1).with_columns(val_loss=pl.lit(0.1)), {"data": "old"})
    return pl.concat([stamp_inputs(frame, CURRENT), superseded])


CURRENT = {"data": "new"}


def test_best_trial_is_the_lowest_completed_validation_loss_and_results_count_outcomes():
    trials = _trials()
    best = best_trials(current_rows(trials, CURRENT))
    assert best.select("budget", "trial_number", "val_loss").rows() == [
        ("2k", 1, 0.55),
        ("20k", 0, 0.50),
    ]
    results = experiment_results(trials, best)
    assert results.select(
        "budget", "n_trials", "n_complete", "n_pruned", "n_infeasible", "n_failed", "n_superseded"
    ).rows() == [("2k", 3, 2, 1, 0, 0, 1), ("20k", 2, 1, 0, 1, 0, 0)]
