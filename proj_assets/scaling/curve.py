"""Scaling law with uncertainty: loss(N) = L_inf + a * (N / N_0)^(-b), fitted to the seed re-runs.

Both laws are fitted by nonlinear least squares on the loss itself (scipy `curve_fit`): the
saturating law above and the pure power law a * (N / N_0)^(-b) (L_inf = 0), so their residuals
are comparable and AIC (Gaussian, variance profiled out: n*ln(RSS/n) + 2k) says which the data
support; `delta_aic` = AIC(power) - AIC(saturating), > 2 favours the saturating law.
N_0 is the smallest parameter count (it only conditions the fit). Confidence intervals are
percentile bootstrap intervals: seed runs are resampled with replacement within each budget
(the budgets themselves are fixed design points) and both laws refitted; the band is the 2.5-97.5
percentile of the refitted curves. Budgets whose best trial hit the time limit are flagged: their
point may be under-trained, which bends the curve.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl

FIT_SCHEMA = {
    "horizon": pl.Utf8,
    "n_budgets": pl.Int64,
    "n_runs": pl.Int64,
    "n_boot": pl.Int64,
    **{f"{p}{s}": pl.Float64 for p in ("l_inf", "a", "b") for s in ("", "_ci_low", "_ci_high")},
    "power_a": pl.Float64,
    "power_b": pl.Float64,
    "power_b_ci_low": pl.Float64,
    "power_b_ci_high": pl.Float64,
    "aic_saturating": pl.Float64,
    "aic_power": pl.Float64,
    "delta_aic": pl.Float64,
    "preferred": pl.Utf8,
    "time_limited_budgets": pl.Utf8,
}


def saturating(x: np.ndarray, l_inf: float, a: float, b: float) -> np.ndarray:
    return l_inf + a * x ** (-b)


def power(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * x ** (-b)


def _fit(law, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Least-squares parameters (L_inf in [0, min loss], a >= 0, b in [0, 5]); None if it fails."""
    from scipy.optimize import curve_fit

    lo, hi = float(y.min()), float(y.max())
    if law is saturating:
        p0, bounds = [0.9 * lo, max(hi - lo, 1e-3), 0.5], ([0.0, 0.0, 0.0], [lo, np.inf, 5.0])
    else:
        p0, bounds = [hi, 0.05], ([0.0, 0.0], [np.inf, 5.0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(law, x, y, p0=p0, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return params


def aic(rss: float, n_obs: int, n_params: int) -> float:
    return n_obs * math.log(max(rss, 1e-300) / n_obs) + 2 * n_params


def fit_scaling_law(
    n_params: np.ndarray,
    loss: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
    grid: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Fit both laws with bootstrap CIs; returns (fit row, band {n, fit, low, high} over `grid`).
    Needs >= 3 distinct parameter counts (three parameters) and positive losses."""
    n_params, loss = np.asarray(n_params, dtype=float), np.asarray(loss, dtype=float)
    sizes = np.unique(n_params)
    if len(sizes) < 3:
        raise ValueError(
            f"the saturating law needs at least 3 distinct parameter counts, got {sizes.tolist()}"
        )
    if (loss <= 0).any() or not np.isfinite(loss).all():
        raise ValueError("losses must be positive and finite")
    n0, grid = sizes[0], np.geomspace(sizes[0], sizes[-1], 50) if grid is None else grid
    x = n_params / n0
    sat, pw = _fit(saturating, x, loss), _fit(power, x, loss)
    if sat is None or pw is None:
        raise ValueError("the least-squares fit did not converge")
    rng, groups = np.random.default_rng(seed), [np.flatnonzero(n_params == s) for s in sizes]
    boot_sat, boot_pow, curves = [], [], []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        b_sat, b_pow = _fit(saturating, x[idx], loss[idx]), _fit(power, x[idx], loss[idx])
        if b_sat is not None and b_pow is not None:
            boot_sat.append(b_sat)
            boot_pow.append(b_pow)
            curves.append(saturating(grid / n0, *b_sat))
    boot_sat, boot_pow = np.array(boot_sat).reshape(-1, 3), np.array(boot_pow).reshape(-1, 2)
    low, high = (
        np.percentile(boot_sat, q, axis=0) if len(boot_sat) else np.full(3, np.nan)
        for q in (2.5, 97.5)
    )
    rss_sat = float(((loss - saturating(x, *sat)) ** 2).sum())
    rss_pow = float(((loss - power(x, *pw)) ** 2).sum())
    aic_sat, aic_pow = aic(rss_sat, len(loss), 3), aic(rss_pow, len(loss), 2)
    row = {
        "n_budgets": len(sizes),
        "n_runs": len(loss),
        "n_boot": len(boot_sat),
        **{
            f"{p}{s}": float(v[i])
            for i, p in enumerate(("l_inf", "a", "b"))
            for s, v in (("", sat), ("_ci_low", low), ("_ci_high", high))
        },
        "power_a": float(pw[0]),
        "power_b": float(pw[1]),
        "power_b_ci_low": float(np.percentile(boot_pow[:, 1], 2.5)) if len(boot_pow) else math.nan,
        "power_b_ci_high": float(np.percentile(boot_pow[:, 1], 97.5))
        if len(boot_pow)
        else math.nan,
        "aic_saturating": aic_sat,
        "aic_power": aic_pow,
        "delta_aic": aic_pow - aic_sat,
        "preferred": "saturating"
        if aic_pow - aic_sat > 2
        else "power"
        if aic_sat - aic_pow > 2
        else "either",
    }
    curves = np.array(curves).reshape(-1, len(grid))
    band = {
        "n": grid,
        "fit": saturating(grid / n0, *sat),
        "low": np.percentile(curves, 2.5, axis=0) if len(curves) else None,
        "high": np.percentile(curves, 97.5, axis=0) if len(curves) else None,
    }
    return row, band


def fit_per_horizon(
    runs: pl.DataFrame, best: pl.DataFrame, n_boot: int = 500, seed: int = 0
) -> tuple[pl.DataFrame, dict[str, dict]]:
    """One fit per horizon over the seed runs (columns horizon, n_params, val_loss; failed runs
    have no val_loss and are left out); horizons with fewer than 3 budgets are skipped."""
    rows, bands = [], {}
    ok = runs.filter(pl.col("val_loss").is_not_null())
    for (horizon,), part in ok.sort("horizon").group_by("horizon", maintain_order=True):
        if part["n_params"].n_unique() < 3:
            continue
        row, bands[horizon] = fit_scaling_law(
            part["n_params"].to_numpy(), part["val_loss"].to_numpy(), n_boot, seed
        )
        limited = best.filter(
            (pl.col("horizon") == horizon) & pl.col("time_limited").fill_null(False)
        )["budget"]
        rows.append(
            {"horizon": horizon, **row, "time_limited_budgets": ",".join(limited.to_list()) or None}
        )
    return pl.DataFrame(rows, schema=FIT_SCHEMA), bands


def plot_curves(runs: pl.DataFrame, fits: pl.DataFrame, bands: dict[str, dict], ax) -> None:
    """Seed-run validation loss against parameters per horizon, the saturating fit and its 95% band."""
    for (horizon,), part in (
        runs.filter(pl.col("val_loss").is_not_null())
        .sort("horizon")
        .group_by("horizon", maintain_order=True)
    ):
        points = ax.scatter(part["n_params"], part["val_loss"], s=12, label=f"{horizon} seed runs")
        color = points.get_facecolor()[0]
        band, fit = bands.get(horizon), fits.filter(pl.col("horizon") == horizon)
        if band is not None and fit.height:
            ax.plot(
                band["n"],
                band["fit"],
                color=color,
                label=f"{horizon} L∞={fit['l_inf'][0]:.3f} b={fit['b'][0]:.2f} [{fit['b_ci_low'][0]:.2f}, "
                f"{fit['b_ci_high'][0]:.2f}]",
            )
            if band["low"] is not None:
                ax.fill_between(band["n"], band["low"], band["high"], color=color, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation loss (seed re-runs of each best config)")
    ax.legend(fontsize=7)
