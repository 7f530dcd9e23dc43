"""The summary's UI metadata: a results table, a PR-AUC plot with CIs, and the release decision."""

import dagster as dg
import numpy as np
import polars as pl

from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.plots import figure_markdown, new_figure


def _interval_plot(finals: pl.DataFrame, aggregates: pl.DataFrame) -> dg.MetadataValue:
    fig, ax = new_figure(8, 0.5 + 0.45 * max(finals.height, 2))
    labels = [f"{r['probe']} {r['config_id'][:8]} s{r['stage']}" for r in finals.iter_rows(named=True)]
    y = np.arange(finals.height)
    mean = finals["pr_auc_mean"].to_numpy()
    err = np.abs(np.stack([mean - finals["pr_auc_ci_low"].fill_nan(None).fill_null(mean).to_numpy(),
                           finals["pr_auc_ci_high"].fill_nan(None).fill_null(mean).to_numpy() - mean]))
    ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3, label="candidate (95% CI over folds)")
    for role, style in (("baseline", "--"), ("control", ":")):
        ref = aggregates.filter(pl.col("role") == role)["pr_auc_mean"].mean()
        if ref is not None:
            ax.axvline(ref, linestyle=style, color="grey", label=f"{role} (mean)")
    ax.set_yticks(y, labels)
    ax.set_xlabel("PR-AUC")
    ax.legend(loc="lower right", fontsize=7)
    return figure_markdown(fig, "PR-AUC by config")


def summary_metadata(finals: pl.DataFrame, aggregates: pl.DataFrame, decision: dict) -> dict:
    shown = finals.select("config_id", "probe", "stage", "n_folds", "n_fits", "pr_auc_mean", "pr_auc_ci_low",
                          "pr_auc_ci_high", "delta_vs_baseline_ci_low", "delta_vs_control_ci_low")
    return {
        "results": markdown_table(shown.with_columns(pl.col(pl.Float64).round(4)), limit=50),
        "pr_auc_plot": _interval_plot(finals, aggregates),
        "release_preview": decision["reason"],
        "release_would_pass": decision["passed"],
    }
