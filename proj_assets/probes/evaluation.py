"""From fold results to decisions: aggregates with confidence intervals, staged screening and the
release gate.

Folds are the independent units (each holds out a different problem); seeds within a fold share
the same data. So confidence intervals are Student-t intervals over per-fold means (seeds
averaged first), and comparisons with the baseline and the control are paired by fold.
"""

import math
from typing import cast

import numpy as np
import polars as pl
from scipy import stats

from proj_assets.probes.selection import mark_twins, rank_configs

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
        pl.col("pr_auc").mean(),
        pl.col("roc_auc").mean(),
        pl.col("base_rate").mean(),
        pl.len().alias("n_seeds"),
    )


def _paired_deltas(per_fold: pl.DataFrame, other_role: str) -> pl.DataFrame:
    cand = per_fold.filter(pl.col("role") == "candidate").select("config_id", "fold", "pr_auc")
    other = per_fold.filter(pl.col("role") == other_role).select(
        "config_id", "fold", pl.col("pr_auc").alias("other")
    )
    rows = []
    for (config_id,), grp in cand.join(other, on=["config_id", "fold"]).group_by("config_id"):
        delta = (grp["pr_auc"] - grp["other"]).to_numpy()
        low, high = t_interval(delta)
        rows.append(
            {
                "config_id": config_id,
                f"delta_vs_{other_role}": float(delta.mean()),
                f"delta_vs_{other_role}_ci_low": low,
                f"delta_vs_{other_role}_ci_high": high,
            }
        )
    schema = {
        "config_id": pl.Utf8,
        **{f"delta_vs_{other_role}{s}": pl.Float64 for s in ("", "_ci_low", "_ci_high")},
    }
    return pl.DataFrame(rows, schema=schema)


def aggregate(results: pl.DataFrame) -> pl.DataFrame:
    """Per config × role: mean and spread over folds × seeds, 95% CI over folds, and (on every row
    of a config) the paired PR-AUC difference of its candidate to the baseline and to the control."""
    per_fold = fold_means(results)
    rows = []
    for (config_id, stage, role, probe), grp in per_fold.group_by(
        "config_id", "stage", "role", "probe"
    ):
        fits = results.filter((pl.col("config_id") == config_id) & (pl.col("role") == role))
        low, high = t_interval(grp["pr_auc"].to_numpy())
        rows.append(
            {
                "config_id": config_id,
                "stage": stage,
                "role": role,
                "probe": probe,
                "n_folds": grp.height,
                "n_fits": fits.height,
                "pr_auc_mean": float(cast(float, fits["pr_auc"].mean())),
                "pr_auc_std": float(cast(float, fits["pr_auc"].std()))
                if fits.height > 1
                else math.nan,
                "pr_auc_ci_low": low,
                "pr_auc_ci_high": high,
                "roc_auc_mean": float(cast(float, fits["roc_auc"].mean())),
                "base_rate": float(cast(float, fits["base_rate"].mean())),
            }
        )
    table = pl.DataFrame(rows)
    for other in ("baseline", "control"):
        table = table.join(_paired_deltas(per_fold, other), on="config_id", how="left")
    return table.sort("config_id", "role")


def screen(
    aggregates: pl.DataFrame, n_folds: int, top_k: int, stage2_seeds: int, id_fn
) -> pl.DataFrame:
    """Rank stage-1 candidates by `selection.rank_configs` (configs with every fold done first);
    configs whose results equal a better-ranked one's are marked `twin_of` it and never promoted,
    so the top k *distinct* complete configs are promoted, each to the stage-2 config id
    `id_fn(config_id, stage2_seeds)`.

    Only stage-1 results are ranked, so re-screening after stage 2 promotes the same configs again
    and registers nothing new: the staged sweep converges."""
    stage1 = aggregates.filter((pl.col("stage") == 1) & (pl.col("role") == "candidate"))
    stage1 = stage1.with_columns(complete=pl.col("n_folds") == n_folds)
    ranked = pl.concat(
        [
            rank_configs(stage1.filter(pl.col("complete"))),
            rank_configs(stage1.filter(~pl.col("complete"))),
        ]
    )
    ranked = (
        mark_twins(ranked)
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int64))
    )
    distinct = pl.col("complete") & pl.col("twin_of").is_null()
    promoted = distinct & (distinct.cast(pl.Int64).cum_sum() <= top_k)
    return ranked.select(
        "rank",
        "config_id",
        "probe",
        "n_folds",
        "complete",
        "twin_of",
        "pr_auc_mean",
        "pr_auc_ci_low",
        "pr_auc_ci_high",
        "delta_vs_baseline_ci_low",
        "delta_vs_control_ci_low",
    ).with_columns(
        promoted=promoted,
        stage2_config_id=pl.when(promoted).then(
            pl.col("config_id").map_elements(lambda c: id_fn(c, stage2_seeds), return_dtype=pl.Utf8)
        ),
    )


def final_candidates(aggregates: pl.DataFrame, stage1_id) -> pl.DataFrame:
    """Candidate rows with the latest stage per stage-1 config (stage 2 supersedes stage 1)."""
    cand = aggregates.filter(pl.col("role") == "candidate").with_columns(
        base_id=pl.col("config_id").map_elements(stage1_id, return_dtype=pl.Utf8)
    )
    return rank_configs(cand.sort("stage", descending=True).unique("base_id", keep="first"))


def _over_folds(per_fold: pl.DataFrame) -> pl.DataFrame:
    """Per config: mean and lower 95% t bound of its per-fold PR-AUC (what aggregate reports)."""
    rows = [
        {
            "config_id": config_id,
            "probe": probe,
            "pr_auc_mean": float(grp["pr_auc"].mean()),  # type: ignore[arg-type]
            "pr_auc_ci_low": t_interval(grp["pr_auc"].to_numpy())[0],
        }
        for (config_id, probe), grp in per_fold.group_by("config_id", "probe")
    ]
    schema = {
        "config_id": pl.Utf8,
        "probe": pl.Utf8,
        "pr_auc_mean": pl.Float64,
        "pr_auc_ci_low": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def nested_confirmation(results: pl.DataFrame, stage1_id) -> pl.DataFrame:
    """Nested leave-one-problem-out confirmation of the selection itself. For each outer fold f the
    winner is the config screening would pick from the *other* folds (`selection.rank_configs` of
    their stage-1 candidate PR-AUC, among configs with every fold done); it is then scored on f
    (its latest stage, `scored_config`), beside the baseline and control on f. Each fold thus
    confirms a choice it took no part in."""
    per_fold = fold_means(results).with_columns(
        base_id=pl.col("config_id").map_elements(stage1_id, return_dtype=pl.Utf8)
    )
    cand = per_fold.filter(pl.col("role") == "candidate")
    stage1 = cand.filter(pl.col("stage") == 1)
    folds = sorted(stage1["fold"].unique().to_list())
    whole = (
        stage1.group_by("config_id")
        .agg(pl.len().alias("n"))
        .filter(pl.col("n") == len(folds))["config_id"]
    )
    stage1 = stage1.filter(pl.col("config_id").is_in(whole.to_list()))
    refs = (
        per_fold.filter(pl.col("role") != "candidate")
        .group_by("role", "fold")
        .agg(pl.col("pr_auc").mean())
    )
    rows = []
    for fold in folds:
        ranked = rank_configs(_over_folds(stage1.filter(pl.col("fold") != fold)))
        if ranked.height == 0:
            continue
        chosen, probe = ranked["config_id"][0], ranked["probe"][0]
        on_fold = cand.filter((pl.col("base_id") == chosen) & (pl.col("fold") == fold)).sort(
            "stage", descending=True
        )
        ref = {
            r["role"]: r["pr_auc"]
            for r in refs.filter(pl.col("fold") == fold).iter_rows(named=True)
        }
        rows.append(
            {
                "fold": fold,
                "selected_config": chosen,
                "selected_probe": probe,
                "selected_stage": int(on_fold["stage"][0]),
                "scored_config": on_fold["config_id"][0],
                "candidate": float(on_fold["pr_auc"][0]),
                "baseline": ref.get("baseline", math.nan),
                "control": ref.get("control", math.nan),
            }
        )
    schema = {
        "fold": pl.Utf8,
        "selected_config": pl.Utf8,
        "selected_probe": pl.Utf8,
        "selected_stage": pl.Int64,
        "scored_config": pl.Utf8,
        "candidate": pl.Float64,
        "baseline": pl.Float64,
        "control": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)
