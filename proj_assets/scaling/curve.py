"""Scaling curves: a power law L(N) = a * N^(-b) fitted to the best validation loss per budget.

The fit is ordinary least squares in log-log space (statsmodels), so `b` is minus the slope and
its standard error and 95% confidence interval come from the regression. With two budgets the
line is exact (no residual degrees of freedom) and the uncertainty is reported as missing.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

FIT_SCHEMA = {
    "horizon": pl.Utf8, "n_points": pl.Int64, "a": pl.Float64, "b": pl.Float64, "b_stderr": pl.Float64,
    "b_ci_low": pl.Float64, "b_ci_high": pl.Float64, "log10_a_stderr": pl.Float64, "r_squared": pl.Float64,
}


def fit_power_law(n_params: np.ndarray, loss: np.ndarray) -> dict:
    """Fit log10(loss) = log10(a) - b*log10(N); needs >= 2 distinct sizes and positive losses."""
    import statsmodels.api as sm

    n_params, loss = np.asarray(n_params, dtype=float), np.asarray(loss, dtype=float)
    if len(np.unique(n_params)) < 2:
        raise ValueError(f"a power-law fit needs at least 2 distinct parameter counts, got {n_params.tolist()}")
    if (loss <= 0).any() or (n_params <= 0).any():
        raise ValueError("parameter counts and losses must be positive for a log-log fit")
    x = sm.add_constant(np.log10(n_params))
    fit = sm.OLS(np.log10(loss), x).fit()
    has_dof = fit.df_resid > 0
    intercept, slope = fit.params
    ci = fit.conf_int(0.05) if has_dof else np.full((2, 2), np.nan)
    return {
        "n_points": len(loss), "a": float(10**intercept), "b": float(-slope),
        "b_stderr": float(fit.bse[1]) if has_dof else math.nan,
        "b_ci_low": float(-ci[1][1]), "b_ci_high": float(-ci[1][0]),
        "log10_a_stderr": float(fit.bse[0]) if has_dof else math.nan,
        "r_squared": float(fit.rsquared) if has_dof else 1.0,
    }


def fit_per_horizon(best: pl.DataFrame) -> pl.DataFrame:
    """One fit per horizon from the best trials (columns horizon, n_params, val_loss); horizons with
    fewer than two budgets are skipped."""
    rows = []
    for (horizon,), part in best.sort("horizon").group_by("horizon", maintain_order=True):
        if part["n_params"].n_unique() >= 2:
            rows.append({"horizon": horizon, **fit_power_law(part["n_params"].to_numpy(), part["val_loss"].to_numpy())})
    return pl.DataFrame(rows, schema=FIT_SCHEMA)


def plot_curves(best: pl.DataFrame, fits: pl.DataFrame, ax) -> None:
    """Best validation loss against parameters (log-log) per horizon, with each fitted line."""
    for (horizon,), part in best.sort("horizon", "n_params").group_by("horizon", maintain_order=True):
        points = ax.scatter(part["n_params"], part["val_loss"], label=f"{horizon} best trials")
        fit = fits.filter(pl.col("horizon") == horizon)
        if fit.height:
            grid = np.geomspace(part["n_params"].min(), part["n_params"].max(), 50)
            a, b = fit["a"][0], fit["b"][0]
            ax.plot(grid, a * grid ** (-b), color=points.get_facecolor()[0], label=f"{horizon} fit b={b:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("best validation loss")
    ax.legend(fontsize=7)
