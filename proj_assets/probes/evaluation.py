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
                "pr_auc_mean": float(fits["pr_auc"].mean()),
                "pr_auc_std": float(fits["pr_auc"].std()) if fits.height > 1 else math.nan,
                "pr_auc_ci_low": low,
                "pr_auc_ci_high": high,
                "roc_auc_mean": float(fits["roc_auc"].mean()),
                "base_rate": float(fits["base_rate"].mean()),
            }
        )
    table = pl.DataFrame(rows)
    for other in ("baseline", "control"):
        table = table.join(_paired_deltas(per_fold, other), on="config_id", how="left")
    return table.sort("config_id", "role")


def screen(
    aggregates: pl.DataFrame, n_folds: int, top_k: int, stage2_seeds: int, id_fn
) -> pl.DataFrame:
    """Rank stage-1 candidates by the lower CI bound of PR-AUC (configs with every fold done only);
    the top k are promoted, each to the stage-2 config id `id_fn(config_id, stage2_seeds)`.

    Only stage-1 results are ranked, so re-screening after stage 2 promotes the same configs again
    and registers nothing new: the staged sweep converges."""
    stage1 = aggregates.filter((pl.col("stage") == 1) & (pl.col("role") == "candidate"))
    ranked = stage1.with_columns(complete=pl.col("n_folds") == n_folds).sort(
        ["complete", "pr_auc_ci_low", "pr_auc_mean", "config_id"],
        descending=[True, True, True, False],
        nulls_last=True,
    )
    ranked = ranked.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))
    promoted = (pl.col("rank") <= top_k) & pl.col("complete")
    return ranked.select(
        "rank",
        "config_id",
        "probe",
        "n_folds",
        "complete",
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
    return (
        cand.sort("stage", descending=True)
        .unique("base_id", keep="first")
        .sort("pr_auc_ci_low", descending=True, nulls_last=True)
    )


def nested_confirmation(results: pl.DataFrame, stage1_id) -> pl.DataFrame:
    """Nested leave-one-problem-out confirmation of the selection itself. For each outer fold f the
    winner is the config with the best mean stage-1 candidate PR-AUC over the *other* folds (among
    configs with every fold done); it is then scored on f (its latest stage), beside the baseline
    and control on f. Each fold thus confirms a choice it took no part in."""
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
        ranked = (
            stage1.filter(pl.col("fold") != fold)
            .group_by("config_id", "probe")
            .agg(pl.col("pr_auc").mean())
            .sort(["pr_auc", "config_id"], descending=[True, False])
        )
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
        "candidate": pl.Float64,
        "baseline": pl.Float64,
        "control": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def confirmation_summary(confirmed: pl.DataFrame) -> dict:
    """Mean PR-AUC and 95% CI over confirmation folds of the candidate, baseline and control, and of
    the paired gains over baseline and control."""
    out = {"n_folds": confirmed.height}
    series = {role: confirmed[role].to_numpy() for role in ("candidate", "baseline", "control")}
    series |= {
        "gain_vs_baseline": series["candidate"] - series["baseline"],
        "gain_vs_control": series["candidate"] - series["control"],
    }
    for name, values in series.items():
        low, high = t_interval(values)
        out[name] = {
            "mean": float(np.mean(values)) if len(values) else math.nan,
            "ci_low": low,
            "ci_high": high,
        }
    return out


def flat_confirmation(summary: dict) -> dict[str, float]:
    """`confirmation_summary` as flat metadata entries (e.g. `baseline_pr_auc_ci_low`); NaN as None."""
    flat = {}
    for name, values in summary.items():
        if isinstance(values, dict):
            key = name if name.startswith("gain") else f"{name}_pr_auc"
            for stat, value in values.items():
                flat[f"{key}_{stat}"] = round(value, 4) if np.isfinite(value) else None
    return {k: v for k, v in flat.items() if v is not None}


def release_decision(confirmed: pl.DataFrame, margin: float) -> dict:
    """On the confirmation folds (nested_confirmation), the lower 95% bounds of the selected
    candidate's paired gain over the position baseline and over the shuffled-label control must
    both exceed `margin`."""
    if confirmed.height == 0:
        return {
            "passed": False,
            "reason": "no complete stage-1 results to confirm",
            "measured": math.nan,
            "threshold": margin,
            "summary": {},
        }
    stats_ = confirmation_summary(confirmed)
    vs_base, vs_ctrl = stats_["gain_vs_baseline"]["ci_low"], stats_["gain_vs_control"]["ci_low"]
    measured = min(vs_base, vs_ctrl) if np.isfinite(vs_base) and np.isfinite(vs_ctrl) else math.nan
    passed = bool(np.isfinite(measured) and measured > margin)
    fmt = lambda d: f"{d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"  # noqa: E731
    picks = confirmed["selected_config"].value_counts(sort=True)
    reason = (
        f"on {confirmed.height} confirmation folds (winner chosen without the fold; most chosen "
        f"{picks['selected_config'][0]}, {picks['count'][0]} of {confirmed.height}): PR-AUC candidate "
        f"{fmt(stats_['candidate'])}, position baseline {fmt(stats_['baseline'])}, shuffled-label control "
        f"{fmt(stats_['control'])}; gain over baseline {fmt(stats_['gain_vs_baseline'])}, over control "
        f"{fmt(stats_['gain_vs_control'])}; both lower bounds must exceed {margin}"
    )
    return {
        "passed": passed,
        "reason": reason,
        "measured": measured,
        "threshold": margin,
        "summary": stats_,
    }
