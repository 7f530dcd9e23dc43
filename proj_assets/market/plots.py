"""Plots of the target ticker for the UI (markdown images; the shell makes them metadata)."""

import polars as pl

from proj_assets.shared.markdown import figure_image, new_figure


def close_plot(prices: pl.DataFrame, ticker: str):
    fig, ax = new_figure()
    ordered = prices.sort("date")
    ax.plot(ordered["date"].to_list(), ordered["close"].to_list(), lw=0.8)
    ax.set_title(f"{ticker} close")
    ax.set_yscale("log")
    return figure_image(fig, f"{ticker} close")


def close_and_target_plot(
    prices: pl.DataFrame, targets: pl.DataFrame, ticker: str, window: int = 126
):
    """Close price and the rolling share of positive targets per horizon."""
    fig, (top, bottom) = new_figure(8, 5, rows=2)
    ordered = prices.sort("date")
    top.plot(ordered["date"].to_list(), ordered["close"].to_list(), lw=0.8)
    top.set_yscale("log")
    top.set_title(f"{ticker} close and {window}-day rolling positive-target rate")
    for column in [c for c in targets.columns if c.startswith("target_h")]:
        rate = targets[column].cast(pl.Float64).rolling_mean(window, min_samples=window // 2)
        bottom.plot(targets["date"].to_list(), rate.to_list(), lw=0.8, label=column)
    bottom.legend(loc="upper left", fontsize=7)
    return figure_image(fig, f"{ticker} targets")
