"""Scaling-law fits with bootstrap CIs (against scipy and log-log OLS), best-trial selection and the
experiment-results table."""

import numpy as np
import polars as pl
import pytest
from scipy import optimize, stats

from proj_assets.scaling.curve import fit_per_horizon, fit_scaling_law
from proj_assets.scaling.report import best_trials, experiment_results
from proj_assets.scaling.trial_table import TRIAL_SCHEMA
from proj_resources.fingerprints import current_rows, stamp_inputs


def _seed_runs(l_inf, a, b, noise, seeds=4, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    n = np.repeat([2e3, 6e3, 2e4, 6e4, 2e5], seeds)
    return n, l_inf + a * (n / 2e3) ** -b + rng.normal(scale=noise, size=n.size)


def test_saturating_law_recovers_its_parameters_with_bootstrap_cis():
    n, loss = _seed_runs(0.60, 0.10, 0.7, 0.002)
    fit, band = fit_scaling_law(n, loss, n_boot=150)
    assert (
        fit["l_inf_ci_low"] <= 0.60 <= fit["l_inf_ci_high"]
        and fit["b_ci_low"] <= 0.7 <= fit["b_ci_high"]
    )
    assert fit["l_inf"] == pytest.approx(0.60, abs=0.01) and fit["b"] == pytest.approx(
        0.7, abs=0.15
    )
    assert (
        fit["preferred"] == "saturating" and fit["delta_aic"] > 10
    )  # a floor the pure power law cannot bend to
    assert np.all(band["low"] <= band["fit"] + 1e-9) and np.all(band["fit"] <= band["high"] + 1e-9)
    ref = optimize.curve_fit(
        lambda x, floor, a, b: floor + a * x**-b, n / n.min(), loss, p0=[0.5, 0.1, 0.5]
    )[0]
    assert [fit["l_inf"], fit["a"], fit["b"]] == pytest.approx(ref, rel=1e-3)


def test_pure_power_data_prefer_the_power_law_and_match_log_log_ols():
    n, loss = _seed_runs(0.0, 0.8, 0.1, 0.0)
    fit, _ = fit_scaling_law(n, loss, n_boot=50)
    ref = stats.linregress(np.log10(n), np.log10(loss))
    assert (
        fit["power_b"] == pytest.approx(-ref.slope, rel=1e-4) and fit["preferred"] != "saturating"
    )
    wider = fit_scaling_law(*_seed_runs(0.0, 0.8, 0.1, 0.01), n_boot=100)[0]
    assert (
        wider["power_b_ci_low"] < wider["power_b"] < wider["power_b_ci_high"]
    )  # seed noise -> a real interval
    assert (
        fit["power_b_ci_high"] - fit["power_b_ci_low"]
        < 1e-6
        < wider["power_b_ci_high"] - wider["power_b_ci_low"]
    )
    with pytest.raises(ValueError, match="at least 3 distinct"):
        fit_scaling_law(np.array([10.0, 10.0, 20.0]), np.array([0.5, 0.4, 0.3]))


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
    best = best.with_columns(pl.Series("time_limited", [True, False]))
    n, loss = _seed_runs(0.6, 0.1, 0.7, 0.002, seeds=3)
    runs = pl.DataFrame({"horizon": "h1", "n_params": n, "val_loss": loss}).vstack(
        pl.DataFrame({"horizon": ["h1", "h3"], "n_params": [2e3, 2e3], "val_loss": [None, 0.5]})
    )  # a failed run
    fits, bands = fit_per_horizon(runs, best, n_boot=50)
    assert fits["horizon"].to_list() == ["h1"] and fits["n_runs"][0] == 15 and set(bands) == {"h1"}
    assert fits["time_limited_budgets"][0] == "2k"  # the flagged best trial
