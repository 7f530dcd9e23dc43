"""Power-law fit (against scipy), best-trial selection and the experiment-results table."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from proj_assets.scaling.curve import fit_per_horizon, fit_power_law
from proj_assets.scaling.report import best_trials, experiment_results
from proj_assets.scaling.trial_table import TRIAL_SCHEMA


def test_power_law_fit_recovers_exponent_and_matches_scipy():
    n = np.array([1e3, 1e4, 1e5, 1e6])
    loss = 2.0 * n**-0.1 * np.array([1.01, 0.99, 1.02, 0.985])
    fit = fit_power_law(n, loss)
    ref = stats.linregress(np.log10(n), np.log10(loss))
    assert fit["b"] == pytest.approx(-ref.slope) and fit["b_stderr"] == pytest.approx(ref.stderr)
    assert fit["b_ci_low"] < 0.1 < fit["b_ci_high"] and fit["a"] == pytest.approx(10**ref.intercept)
    exact = fit_power_law(n[:2], 3.0 * n[:2] ** -0.2)
    assert exact["b"] == pytest.approx(0.2) and math.isnan(exact["b_stderr"])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        fit_power_law(np.array([10.0, 10.0]), np.array([0.5, 0.4]))


def _trials():
    rows = [("2k", "h1", 2000, 0, "COMPLETE", 0.60), ("2k", "h1", 2000, 1, "COMPLETE", 0.55),
            ("2k", "h1", 2000, 2, "PRUNED", 0.50), ("20k", "h1", 20000, 0, "COMPLETE", 0.50),
            ("20k", "h1", 20000, 1, "FAIL", None)]
    frame = pl.DataFrame([dict(zip(["budget", "horizon", "budget_params", "trial_number", "state", "val_loss"], r,
                                   strict=True)) for r in rows])
    frame = frame.with_columns(pl.col("budget_params").alias("n_params"),
                               pl.when(pl.col("state") == "FAIL").then(pl.lit("oom")).alias("infeasible_reason"))
    return frame.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in TRIAL_SCHEMA.items() if c not in frame.columns])


def test_best_trial_is_the_lowest_completed_validation_loss_and_results_count_outcomes():
    best = best_trials(_trials())
    assert best.select("budget", "trial_number", "val_loss").rows() == [("2k", 1, 0.55), ("20k", 0, 0.50)]
    results = experiment_results(_trials(), best)
    assert results.select("budget", "n_trials", "n_complete", "n_pruned", "n_infeasible", "n_failed").rows() == [
        ("2k", 3, 2, 1, 0, 0), ("20k", 2, 1, 0, 1, 0)]
    fits = fit_per_horizon(best)
    assert fits["horizon"].to_list() == ["h1"] and fits["b"][0] == pytest.approx(-math.log10(0.50 / 0.55))
