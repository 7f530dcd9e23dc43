"""The summary's UI metadata: results with each config's settings, a plot comparing probe types and
layers with CIs against the baseline and control, the nested confirmation and the release decision."""

import numpy as np
import polars as pl

from proj_assets.probes.evaluation import flat_confirmation
from proj_assets.shared.markdown import Markdown, figure_image, new_figure, table_markdown


def best_per_probe_and_layer(finals: pl.DataFrame) -> pl.DataFrame:
    """The config with the highest PR-AUC lower bound for each probe type x layer."""
    return (
        finals.sort("pr_auc_ci_low", descending=True, nulls_last=True)
        .unique(["probe", "layer"], keep="first")
        .sort("probe", "layer")
    )


def _probe_layer_plot(finals: pl.DataFrame, summary: dict) -> Markdown:
    best = best_per_probe_and_layer(finals)
    fig, ax = new_figure(8, 4.5)
    layers = sorted(best["layer"].unique().to_list())
    probes = sorted(best["probe"].unique().to_list())
    width = 0.8 / max(len(probes), 1)
    for i, probe in enumerate(probes):
        rows = best.filter(pl.col("probe") == probe).sort("layer")
        x = (
            np.array([layers.index(v) for v in rows["layer"].to_list()])
            + (i - (len(probes) - 1) / 2) * width
        )
        mean = rows["pr_auc_mean"].to_numpy()
        low = rows["pr_auc_ci_low"].fill_nan(None).fill_null(pl.Series(mean)).to_numpy()
        high = rows["pr_auc_ci_high"].fill_nan(None).fill_null(pl.Series(mean)).to_numpy()
        ax.errorbar(
            x,
            mean,
            yerr=np.abs(np.stack([mean - low, high - mean])),
            fmt="o",
            capsize=3,
            label=probe,
        )
    for role, color in (("baseline", "grey"), ("control", "tab:red")):
        stats = summary.get(role)
        if stats and np.isfinite(stats["mean"]):
            ax.axhline(
                stats["mean"], linestyle="--", color=color, label=f"{role} (confirmation folds)"
            )
            if np.isfinite(stats["ci_low"]):
                ax.axhspan(stats["ci_low"], stats["ci_high"], color=color, alpha=0.12)
    ax.set_xticks(range(len(layers)), [f"layer {v}" for v in layers])
    ax.set_ylabel("PR-AUC (best config, 95% CI over folds)")
    ax.legend(loc="best", fontsize=7)
    return figure_image(fig, "PR-AUC by probe type and layer")


def summary_metadata(finals: pl.DataFrame, confirmed: pl.DataFrame, decision: dict) -> dict:
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
        "probe_layer_plot": _probe_layer_plot(
            finals, decision.get("summary", {})
        ),  # first: shown first
        "results": table_markdown(shown, limit=50),
        "confirmation_folds": table_markdown(confirmed, limit=50),
        **flat_confirmation(decision.get("summary", {})),
        "release_preview": decision["reason"],
        "release_would_pass": decision["passed"],
    }
