"""The scaling_curve table (curve.py): the law fitted on the seed runs' test loss and, labelled,
on the validation loss that chose them; failed runs left out; missing estimates explained; the
plot labels which fit is which."""

import numpy as np
import polars as pl
import pytest

from proj_assets.scaling.curve import fit_per_horizon, identification, plot_curves
from proj_assets.scaling.law_fit import fit_law
from proj_assets.shared.markdown import new_figure

N = np.repeat([2e3, 6e3, 2e4, 6e4], 3)
SPREAD = np.tile([-0.004, 0.0, 0.004], 4)


def _runs() -> pl.DataFrame:
    falling = 0.6 + 0.1 * (N / 2e3) ** -0.5
    h1 = pl.DataFrame(
        {"horizon": "h1", "n_params": N, "test_loss": falling + SPREAD, "val_loss": falling - 0.02}
    )
    flat = pl.DataFrame(
        {"horizon": "h3", "n_params": N, "test_loss": 0.68 + SPREAD, "val_loss": 0.67 + SPREAD}
    )
    failed = pl.DataFrame(
        {"horizon": ["h1", "h5"], "n_params": [2e3, 2e3], "test_loss": [None, 0.6]},
        schema_overrides={"test_loss": pl.Float64},
    ).with_columns(pl.lit(None, dtype=pl.Float64).alias("val_loss"))
    return pl.concat([h1, flat, failed])


def _best() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "horizon": ["h1", "h1", "h3"],
            "budget": ["2k", "6k", "2k"],
            "time_limited": [True, None, False],
        }
    )


def test_the_law_is_fitted_on_test_and_validation_loss_separately():
    fits, bands = fit_per_horizon(_runs(), _best())
    assert fits.select("horizon", "loss_split").rows() == [
        ("h1", "test"),
        ("h3", "test"),
        ("h1", "val"),
        ("h3", "val"),
    ]  # h5 has one budget: no fit; the failed h1 run is left out
    h1 = {r["loss_split"]: r for r in fits.filter(pl.col("horizon") == "h1").iter_rows(named=True)}
    direct = fit_law(N, 0.6 + 0.1 * (N / 2e3) ** -0.5 + SPREAD)
    assert h1["test"]["n_runs"] == 12 and h1["test"]["b"] == pytest.approx(direct.b)
    assert h1["test"]["l_inf"] == pytest.approx(direct.l_inf)
    assert h1["val"]["l_inf"] < h1["test"]["l_inf"]  # the optimistic split shows its optimism
    assert h1["test"]["time_limited_budgets"] == "2k"
    band = bands[("h1", "test")]
    assert np.all(band["low"] <= band["fit"] + 1e-12) and np.all(
        band["fit"] <= band["high"] + 1e-12
    )


def test_flat_loss_gets_no_estimates_and_the_reason_is_listed():
    fits, _ = fit_per_horizon(_runs(), _best())
    h3 = fits.filter((pl.col("horizon") == "h3") & (pl.col("loss_split") == "test")).row(
        0, named=True
    )
    assert not h3["scaling_exists"] and h3["l_inf"] is None and h3["b"] is None
    assert h3["l_inf_ci_low"] == 0.0 and h3["l_inf_ci_high"] > 0.68
    text = identification(fits)
    assert "- h3 test: no significant fall of loss with N" in text and "- h1 test" not in text
    assert identification(fits.clear()) == "no fit: no horizon has runs at 3 budgets"


def test_the_plot_labels_the_test_and_validation_fits():
    runs = _runs()
    fits, bands = fit_per_horizon(runs, _best())
    fig, ax = new_figure()
    plot_curves(runs, fits, bands, ax)
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("h1 test fit: L∞ 0.6") for label in labels)
    assert any(label.startswith("h3 test fit: L∞ n/i [0,") for label in labels)
    assert "h1 seed runs, validation loss (chose the configs: optimistic)" in labels
    assert sum("val fit" in label for label in labels) == 2
