"""The summary's UI metadata: results with each config's settings, a plot comparing probe types and
layers with CIs against the baseline, control and chance, the nested confirmation and the release
decision.

Per probe type and layer two estimates stand side by side: the best of N (the config
`selection.rank_configs` puts first, scored on the same folds that chose it: optimistic, the
luckiest of N configs without a real gain still looks good) and the nested one (for each fold the
config chosen on the other folds, scored on that fold: an unbiased estimate of what choosing a
config of that type and layer gives).
"""

import numpy as np
import polars as pl

from proj_assets.probes.evaluation import nested_confirmation, t_interval
from proj_assets.probes.release import flat_confirmation
from proj_assets.probes.selection import rank_configs
from proj_assets.shared.markdown import Markdown, figure_image, new_figure, table_markdown

ESTIMATES_NOTE = (
    "best_of_n_*: the top config by the screening rule, scored on the folds that chose it "
    "(optimistic); nested_*: per fold the config chosen on the other folds, scored on that fold "
    "(unbiased for the selection)"
)


def best_per_probe_and_layer(finals: pl.DataFrame) -> pl.DataFrame:
    """The config `selection.rank_configs` puts first for each probe type x layer."""
    return rank_configs(finals).unique(["probe", "layer"], keep="first").sort("probe", "layer")


def nested_per_probe_and_layer(
    results: pl.DataFrame, finals: pl.DataFrame, stage1_id
) -> pl.DataFrame:
    """Per probe type x layer: the nested confirmation restricted to its configs (mean and 95% t
    interval over folds of the config chosen without each fold)."""
    rows = []
    for (probe, layer), grp in finals.group_by("probe", "layer"):
        ids = grp["base_id"].to_list()
        own = results.filter(
            pl.col("config_id").map_elements(stage1_id, return_dtype=pl.Utf8).is_in(ids)
        )
        values = nested_confirmation(own, stage1_id)["candidate"].to_numpy()
        low, high = t_interval(values)
        rows.append(
            {
                "probe": probe,
                "layer": layer,
                "n_configs": len(ids),
                "nested_pr_auc_mean": float(values.mean()) if values.size else float("nan"),
                "nested_pr_auc_ci_low": low,
                "nested_pr_auc_ci_high": high,
            }
        )
    return pl.DataFrame(rows).sort("probe", "layer")


def best_and_nested(results: pl.DataFrame, finals: pl.DataFrame, stage1_id) -> pl.DataFrame:
    """`best_per_probe_and_layer` beside `nested_per_probe_and_layer`, columns named for which is
    which (ESTIMATES_NOTE)."""
    best = best_per_probe_and_layer(finals).select(
        "probe",
        "layer",
        pl.col("config_id").alias("best_of_n_config"),
        pl.col("pr_auc_mean").alias("best_of_n_pr_auc_mean"),
        pl.col("pr_auc_ci_low").alias("best_of_n_pr_auc_ci_low"),
        pl.col("pr_auc_ci_high").alias("best_of_n_pr_auc_ci_high"),
    )
    nested = nested_per_probe_and_layer(results, finals, stage1_id)
    return best.join(nested, on=["probe", "layer"], how="left").sort("probe", "layer")


def _probe_layer_plot(both: pl.DataFrame, summary: dict) -> Markdown:
    fig, ax = new_figure(8, 4.5)
    layers = sorted(both["layer"].unique().to_list())
    probes = sorted(both["probe"].unique().to_list())
    width = 0.8 / max(len(probes), 1)
    for i, probe in enumerate(probes):
        rows = both.filter(pl.col("probe") == probe).sort("layer")
        x = (
            np.array([layers.index(v) for v in rows["layer"].to_list()])
            + (i - (len(probes) - 1) / 2) * width
        )
        for prefix, marker, shift, label in (
            ("best_of_n", "o", -0.15, f"{probe}: best of N (optimistic)"),
            ("nested", "s", 0.15, f"{probe}: nested (unbiased)"),
        ):
            mean = rows[f"{prefix}_pr_auc_mean"].to_numpy()
            low = rows[f"{prefix}_pr_auc_ci_low"].fill_nan(None).fill_null(pl.Series(mean))
            high = rows[f"{prefix}_pr_auc_ci_high"].fill_nan(None).fill_null(pl.Series(mean))
            ax.errorbar(
                x + shift * width,
                mean,
                yerr=np.abs(np.stack([mean - low.to_numpy(), high.to_numpy() - mean])),
                fmt=marker,
                mfc="none" if prefix == "nested" else None,
                capsize=3,
                label=label,
            )
    for role, color in (("baseline", "grey"), ("control", "tab:red"), ("chance", "black")):
        stats = summary.get(role)
        if stats and np.isfinite(stats["mean"]):
            ax.axhline(
                stats["mean"], linestyle="--", color=color, label=f"{role} (confirmation folds)"
            )
            if np.isfinite(stats["ci_low"]):
                ax.axhspan(stats["ci_low"], stats["ci_high"], color=color, alpha=0.12)
    ax.set_xticks(range(len(layers)), [f"layer {v}" for v in layers])
    ax.set_ylabel("PR-AUC (95% CI over folds)")
    ax.legend(loc="best", fontsize=7)
    return figure_image(fig, "PR-AUC by probe type and layer")


def summary_metadata(
    finals: pl.DataFrame, confirmed: pl.DataFrame, decision: dict, results: pl.DataFrame, stage1_id
) -> dict:
    """The summary's metadata: the plot first, then the tables and the release preview."""
    both = best_and_nested(results, finals, stage1_id)
    shown = finals.select(
        "config_id",
        "probe",
        "layer",
        "pooling",
        "learning_rate",
        "weight_decay",
        "epochs",
        "n_heads",
        "stage",
        "n_folds",
        "n_fits",
        "pr_auc_mean",
        "pr_auc_ci_low",
        "pr_auc_ci_high",
    )
    return {
        "probe_layer_plot": _probe_layer_plot(both, decision.get("summary", {})),
        "best_of_n_vs_nested": table_markdown(both, limit=50),
        "estimates_note": ESTIMATES_NOTE,
        "results": table_markdown(shown, limit=50),
        "confirmation_folds": table_markdown(confirmed, limit=50),
        **flat_confirmation(decision.get("summary", {})),
        "release_preview": decision["reason"],
        "release_would_pass": decision["passed"],
    }
