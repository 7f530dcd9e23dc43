"""The scaling law per horizon, fitted on the test and on the validation loss of the seed runs,
as rows of the `scaling/report/scaling_curve` table, and the plot of both.

Which loss. The validation loss chose every cell's best trial (and the early-stopping epoch of
every run), so the seed runs' validation loss is biased low, most where the search had the
most to choose from; the test loss played no part in any choice. The law's result is therefore
the fit on the test loss (`loss_split` "test"); the fit on the validation loss is shown beside
it, labelled as the one selection used, so the optimism can be seen.

The estimator, its intervals and the scaling test are in `law_fit.py`. An estimate is reported
only where the scaling test rejects "no fall of loss with N" and the estimate is not on a bound
(L_inf = 0, a = 0, b = 0 or b = B_MAX: there it is the constraint speaking, not the data);
`not_identified` says which estimates are missing and which interval ends the data left open
(an end at a bound means "this far and beyond is not ruled out"). Budgets
whose best trial hit the time limit are flagged: their point may be under-trained.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from proj_assets.scaling.law_fit import B_MAX, LEVEL, LawFit, fit_law, mean_band
from proj_assets.shared.markdown import Markdown

LOSS_SPLITS = {
    "test": "test loss (held out)",
    "val": "validation loss (chose the configs: optimistic)",
}
PARAMETERS = ("l_inf", "a", "b")
FIT_SCHEMA = {
    "horizon": pl.Utf8,
    "loss_split": pl.Utf8,
    "n_budgets": pl.Int64,
    "n_runs": pl.Int64,
    "sigma": pl.Float64,
    **{f"{p}{s}": pl.Float64 for p in PARAMETERS for s in ("", "_ci_low", "_ci_high")},
    "scaling_p": pl.Float64,
    "scaling_exists": pl.Boolean,
    "not_identified": pl.Utf8,
    "time_limited_budgets": pl.Utf8,
}
_BOUNDS = {"l_inf": (0.0, None), "a": (0.0, None), "b": (0.0, B_MAX)}
_OPEN_ENDS = {
    "l_inf": ("reaches the physical bound 0", "has no upper end in the data"),
    "a": ("reaches 0 (no fall with N)", "has no upper end in the data"),
    "b": ("reaches 0 (no fall with N)", f"reaches the search bound {B_MAX:g}"),
}


def fit_row(fit: LawFit) -> dict:
    """The table row of one fit: every interval; an estimate unless the scaling test found no
    fall of loss with N or the estimate sits on a bound (then it is a constraint, not a result);
    and, in `not_identified`, what the data left open."""
    scaling = fit.scaling_p < 1 - LEVEL
    row: dict = {
        "n_budgets": fit.n_budgets,
        "n_runs": fit.n_obs,
        "sigma": fit.sigma,
        "scaling_p": fit.scaling_p,
        "scaling_exists": scaling,
    }
    reasons = [] if scaling else [f"no significant fall of loss with N (p = {fit.scaling_p:.2g})"]
    for name in PARAMETERS:
        interval, value = fit.intervals[name], float(getattr(fit, name))
        on_bound = value in _BOUNDS[name]
        reasons += [f"{name} estimate {value:g} is its bound"] if on_bound else []
        reasons += [
            f"{name} interval {text}"
            for text, is_open in zip(
                _OPEN_ENDS[name], (interval.open_low, interval.open_high), strict=True
            )
            if is_open
        ]
        row[name] = value if scaling and not on_bound else None
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = interval.low, interval.high
    row["not_identified"] = "; ".join(reasons) or None
    return row


def fit_per_horizon(
    runs: pl.DataFrame, best: pl.DataFrame
) -> tuple[pl.DataFrame, dict[tuple[str, str], dict]]:
    """A fit per horizon and loss split over the seed runs (columns horizon, n_params,
    test_loss, val_loss; failed runs have no loss and are left out); horizons with fewer than 3
    budgets or 4 runs are skipped. Bands are keyed (horizon, loss split)."""
    rows, bands = [], {}
    for split in LOSS_SPLITS:
        ok = runs.filter(pl.col(f"{split}_loss").is_not_null())
        for (horizon,), part in ok.sort("horizon").group_by("horizon", maintain_order=True):
            if part["n_params"].n_unique() < 3 or part.height < 4:
                continue
            n, loss = part["n_params"].to_numpy(), part[f"{split}_loss"].to_numpy()
            fit = fit_law(n, loss)
            grid = np.geomspace(n.min(), n.max(), 50)
            low, high = mean_band(fit, n, loss, grid)
            bands[(horizon, split)] = {
                "n": grid,
                "fit": fit.predict(grid),
                "low": low,
                "high": high,
            }
            limited = best.filter(
                (pl.col("horizon") == horizon) & pl.col("time_limited").fill_null(False)
            )["budget"]
            rows.append(
                {
                    "horizon": horizon,
                    "loss_split": split,
                    **fit_row(fit),
                    "time_limited_budgets": ",".join(limited.to_list()) or None,
                }
            )
    return pl.DataFrame(rows, schema=FIT_SCHEMA), bands


def identification(fits: pl.DataFrame) -> Markdown:
    """Per fit, why an estimate is missing, as a markdown list (the table cuts long text)."""
    lines = [
        f"- {row['horizon']} {row['loss_split']}: {row['not_identified']}"
        for row in fits.iter_rows(named=True)
        if row["not_identified"]
    ]
    if not fits.height:
        return Markdown("no fit: no horizon has runs at 3 budgets")
    return Markdown("\n".join(lines) or "every estimate is identified")


def _value(row: dict, name: str) -> str:
    estimate = "n/i" if row[name] is None else f"{row[name]:.3g}"
    return f"{estimate} [{row[f'{name}_ci_low']:.3g}, {row[f'{name}_ci_high']:.3g}]"


def plot_curves(runs: pl.DataFrame, fits: pl.DataFrame, bands: dict, ax) -> None:
    """Seed-run losses against parameters per horizon: test loss (filled points, solid fit and
    its 95% band) and validation loss (open points, dashed fit); n/i = not identified."""
    for (horizon,), part in runs.sort("horizon").group_by("horizon", maintain_order=True):
        color = None  # the test split, first, picks the horizon's colour
        for split, label in LOSS_SPLITS.items():
            test = split == "test"
            kept = part.filter(pl.col(f"{split}_loss").is_not_null())
            x, y, name = kept["n_params"], kept[f"{split}_loss"], f"{horizon} seed runs, {label}"
            if color is None:
                color = ax.scatter(x, y, s=12, label=name).get_facecolor()[0]
            else:
                ax.scatter(x, y, s=12, facecolors="none", edgecolors=[color], label=name)
            fit, band = (
                fits.filter((pl.col("horizon") == horizon) & (pl.col("loss_split") == split)),
                bands.get((horizon, split)),
            )
            if band is None or not fit.height:
                continue
            row = fit.row(0, named=True)
            ax.plot(
                band["n"],
                band["fit"],
                color=color,
                linestyle="-" if test else "--",
                label=f"{horizon} {split} fit: L∞ {_value(row, 'l_inf')}, b {_value(row, 'b')}",
            )
            if test:
                ax.fill_between(band["n"], band["low"], band["high"], color=color, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("loss of the seed re-runs of each best config")
    ax.legend(fontsize=6)
