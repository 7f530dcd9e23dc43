"""The one rule that picks configs, used by screening (which to promote), the summary (the best
per probe type and layer) and the nested confirmation (the winner chosen without each fold), so
the gate confirms the kind of choice screening makes; and twin detection, so that promotion does
not spend its slots on configs whose results are the same (e.g. weight decays too small to change
anything at their learning rate).
"""

import polars as pl

RANKING = ["pr_auc_ci_low", "pr_auc_mean", "config_id"]
TWIN_TOLERANCE = 1e-4  # PR-AUC; fold-mean differences below it are float noise between twins
TWIN_SIGNATURE = ["pr_auc_mean", "pr_auc_std", "pr_auc_ci_low", "pr_auc_ci_high", "roc_auc_mean"]


def rank_configs(table: pl.DataFrame) -> pl.DataFrame:
    """`table` (one row per config with `pr_auc_ci_low`, the lower 95% t bound of PR-AUC over
    folds, and `pr_auc_mean`) best first: by the lower bound, then the mean, then the id (NaN and
    missing bounds last)."""
    return table.with_columns(pl.col("pr_auc_ci_low").fill_nan(None)).sort(
        RANKING, descending=[True, True, False], nulls_last=True
    )


def mark_twins(ranked: pl.DataFrame, tolerance: float = TWIN_TOLERANCE) -> pl.DataFrame:
    """`ranked` with `twin_of`: the best-ranked earlier config of the same probe type whose
    results (`TWIN_SIGNATURE`: mean, spread, CI and ROC-AUC over folds) all agree within
    `tolerance`; null for a config with no better-ranked twin."""
    kept: list[dict] = []
    twin_of: list[str | None] = []
    for row in ranked.iter_rows(named=True):
        match = next(
            (
                k["config_id"]
                for k in kept
                if k["probe"] == row["probe"]
                and all(_close(k[c], row[c], tolerance) for c in TWIN_SIGNATURE if c in row)
            ),
            None,
        )
        twin_of.append(match)
        if match is None:
            kept.append(row)
    return ranked.with_columns(twin_of=pl.Series(twin_of, dtype=pl.Utf8))


def _close(a, b, tolerance: float) -> bool:
    if a is None or b is None or a != a or b != b:  # missing or NaN: equal only to the same
        return (a is None or a != a) and (b is None or b != b)
    return abs(a - b) <= tolerance
