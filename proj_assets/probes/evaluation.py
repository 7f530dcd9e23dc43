"""From fold results to decisions: aggregates with confidence intervals, staged screening and the
release gate.

Folds are the independent units (each holds out a different problem); seeds within a fold share
the same data. So confidence intervals are Student-t intervals over per-fold means (seeds
averaged first), and comparisons with the baseline and the control are paired by fold.
"""

import math

import numpy as np
import polars as pl
from scipy import stats

CONFIDENCE = 0.95


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval for the mean; NaN with fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return math.nan, math.nan
    sem = stats.sem(values)
    if sem == 0:
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=sem)
    return float(low), float(high)


def fold_means(results: pl.DataFrame) -> pl.DataFrame:
    """PR-AUC / ROC-AUC averaged over seeds: one row per config × role × fold."""
    return results.group_by("config_id", "stage", "role", "probe", "fold").agg(
        pl.col("pr_auc").mean(), pl.col("roc_auc").mean(), pl.col("base_rate").mean(), pl.len().alias("n_seeds"))


def _paired_deltas(per_fold: pl.DataFrame, other_role: str) -> pl.DataFrame:
    cand = per_fold.filter(pl.col("role") == "candidate").select("config_id", "fold", "pr_auc")
    other = per_fold.filter(pl.col("role") == other_role).select("config_id", "fold", pl.col("pr_auc").alias("other"))
    rows = []
    for (config_id,), grp in cand.join(other, on=["config_id", "fold"]).group_by("config_id"):
        delta = (grp["pr_auc"] - grp["other"]).to_numpy()
        low, high = t_interval(delta)
        rows.append({"config_id": config_id, f"delta_vs_{other_role}": float(delta.mean()),
                     f"delta_vs_{other_role}_ci_low": low, f"delta_vs_{other_role}_ci_high": high})
    schema = {"config_id": pl.Utf8, **{f"delta_vs_{other_role}{s}": pl.Float64 for s in ("", "_ci_low", "_ci_high")}}
    return pl.DataFrame(rows, schema=schema)


def aggregate(results: pl.DataFrame) -> pl.DataFrame:
    """Per config × role: mean and spread over folds × seeds, 95% CI over folds, and (on every row
    of a config) the paired PR-AUC difference of its candidate to the baseline and to the control."""
    per_fold = fold_means(results)
    rows = []
    for (config_id, stage, role, probe), grp in per_fold.group_by("config_id", "stage", "role", "probe"):
        fits = results.filter((pl.col("config_id") == config_id) & (pl.col("role") == role))
        low, high = t_interval(grp["pr_auc"].to_numpy())
        rows.append({"config_id": config_id, "stage": stage, "role": role, "probe": probe,
                     "n_folds": grp.height, "n_fits": fits.height, "pr_auc_mean": float(fits["pr_auc"].mean()),
                     "pr_auc_std": float(fits["pr_auc"].std()) if fits.height > 1 else math.nan,
                     "pr_auc_ci_low": low, "pr_auc_ci_high": high,
                     "roc_auc_mean": float(fits["roc_auc"].mean()), "base_rate": float(fits["base_rate"].mean())})
    table = pl.DataFrame(rows)
    for other in ("baseline", "control"):
        table = table.join(_paired_deltas(per_fold, other), on="config_id", how="left")
    return table.sort("config_id", "role")


def screen(aggregates: pl.DataFrame, n_folds: int, top_k: int, stage2_seeds: int, id_fn) -> pl.DataFrame:
    """Rank stage-1 candidates by the lower CI bound of PR-AUC (configs with every fold done only);
    the top k are promoted, each to the stage-2 config id `id_fn(config_id, stage2_seeds)`.

    Only stage-1 results are ranked, so re-screening after stage 2 promotes the same configs again
    and registers nothing new: the staged sweep converges."""
    stage1 = aggregates.filter((pl.col("stage") == 1) & (pl.col("role") == "candidate"))
    ranked = stage1.with_columns(complete=pl.col("n_folds") == n_folds).sort(
        ["complete", "pr_auc_ci_low", "pr_auc_mean", "config_id"], descending=[True, True, True, False], nulls_last=True)
    ranked = ranked.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))
    promoted = (pl.col("rank") <= top_k) & pl.col("complete")
    return ranked.select("rank", "config_id", "probe", "n_folds", "complete", "pr_auc_mean", "pr_auc_ci_low",
                         "pr_auc_ci_high", "delta_vs_baseline_ci_low", "delta_vs_control_ci_low").with_columns(
        promoted=promoted,
        stage2_config_id=pl.when(promoted).then(pl.col("config_id").map_elements(
            lambda c: id_fn(c, stage2_seeds), return_dtype=pl.Utf8)))


def final_candidates(aggregates: pl.DataFrame, stage1_id) -> pl.DataFrame:
    """Candidate rows with the latest stage per stage-1 config (stage 2 supersedes stage 1)."""
    cand = aggregates.filter(pl.col("role") == "candidate").with_columns(
        base_id=pl.col("config_id").map_elements(stage1_id, return_dtype=pl.Utf8))
    return cand.sort("stage", descending=True).unique("base_id", keep="first").sort(
        "pr_auc_ci_low", descending=True, nulls_last=True)


def release_decision(finals: pl.DataFrame, margin: float) -> dict:
    """The best final candidate (highest PR-AUC lower bound) must beat the position baseline and the
    shuffled-label control: the lower bound of each paired difference must exceed `margin`."""
    if finals.height == 0:
        return {"passed": False, "reason": "no candidate results", "measured": math.nan, "threshold": margin}
    best = finals.row(0, named=True)
    vs_base, vs_ctrl = best["delta_vs_baseline_ci_low"], best["delta_vs_control_ci_low"]
    measured = min(vs_base if vs_base is not None else math.nan, vs_ctrl if vs_ctrl is not None else math.nan)
    passed = bool(np.isfinite(measured) and measured > margin)
    fmt = lambda v: "n/a (fewer than 2 folds)" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    reason = (f"best config {best['config_id']} ({best['probe']}, stage {best['stage']}): PR-AUC "
              f"{best['pr_auc_mean']:.3f}; paired CI lower bound of the gain over the position baseline "
              f"{fmt(vs_base)} and over the shuffled-label control {fmt(vs_ctrl)} (must exceed {margin})")
    return {"passed": passed, "reason": reason, "measured": measured, "threshold": margin, "best": best}
