"""One selection rule for screening, the summary and the nested confirmation; twins; the summary's
best-of-N beside the nested estimate."""

import numpy as np
import polars as pl

from proj_assets.probes.evaluation import (
    aggregate,
    final_candidates,
    nested_confirmation,
    screen,
)
from proj_assets.probes.report import best_and_nested, best_per_probe_and_layer
from proj_assets.probes.selection import mark_twins
from proj_assets.probes.sweep_spec import stage1_id, stage2_id


def fold_rows(per_fold: dict[str, list[float]], probe: str = "linear_probe") -> pl.DataFrame:
    """Stage-1 rows: candidate PR-AUC per fold for each config, baseline/control fixed."""
    rows = []
    for config_id, values in per_fold.items():
        for f, value in enumerate(values):
            for role, pr_auc in (("candidate", value), ("baseline", 0.3), ("control", 0.25)):
                rows.append(
                    {
                        "config_id": config_id,
                        "fold": f"g{f}",
                        "stage": 1,
                        "role": role,
                        "probe": probe if role == "candidate" else role,
                        "probe_seed": 0,
                        "pr_auc": pr_auc,
                        "roc_auc": 0.6,
                        "base_rate": 0.25,
                    }
                )
    return pl.DataFrame(rows)


def test_screening_summary_and_nested_confirmation_pick_by_the_same_rule():
    """`erratic` has the best mean but a wide interval; `steady` the best lower bound: screening
    promotes steady, the summary shows it as best and every nested fold chooses it (a best-mean
    rule would choose erratic)."""
    results = fold_rows(
        {
            "eeeeeeeeeeee": [0.95, 0.2, 0.9, 0.25, 0.9, 0.3, 0.95, 0.25],  # erratic
            "555555555555": [0.56, 0.55, 0.57, 0.55, 0.56, 0.54, 0.55, 0.56],  # steady
        }
    )
    aggregates = aggregate(results)
    screened = screen(aggregates, n_folds=8, top_k=1, stage2_seeds=3, id_fn=stage2_id)
    assert screened.filter(pl.col("promoted"))["config_id"].to_list() == ["555555555555"]
    finals = final_candidates(aggregates, stage1_id).with_columns(layer=pl.lit(4))
    assert best_per_probe_and_layer(finals)["config_id"].to_list() == ["555555555555"]
    assert set(nested_confirmation(results, stage1_id)["selected_config"]) == {"555555555555"}
    cand = aggregates.filter(pl.col("role") == "candidate")
    erratic = cand.filter(pl.col("config_id") == "eeeeeeeeeeee")["pr_auc_mean"][0]
    assert erratic > cand.filter(pl.col("config_id") == "555555555555")["pr_auc_mean"][0]


def test_twin_pairs_collapse_and_promotion_fills_its_slots_with_distinct_configs():
    """Four configs, each with a twin whose results differ by float noise (as weight decays that
    change nothing): top 4 promotes the four distinct ones, never a twin."""
    rng = np.random.default_rng(0)
    per_fold = {}
    for i in range(4):
        values = list(0.4 + 0.1 * i + 0.05 * rng.normal(size=6))
        per_fold[f"{i:012x}"] = values
        per_fold[f"{i + 10:012x}"] = [v - 1e-6 for v in values]  # the twin
    screened = screen(
        aggregate(fold_rows(per_fold)), n_folds=6, top_k=4, stage2_seeds=3, id_fn=stage2_id
    )
    promoted = screened.filter(pl.col("promoted"))["config_id"].to_list()
    assert sorted(promoted) == [f"{i:012x}" for i in range(4)]
    twins = dict(
        screened.filter(pl.col("twin_of").is_not_null()).select("config_id", "twin_of").iter_rows()
    )
    assert twins == {f"{i + 10:012x}": f"{i:012x}" for i in range(4)}
    # a real difference is no twin; nor is an equal result of another probe type
    close = fold_rows({"aaaaaaaaaaaa": [0.5, 0.6, 0.7], "bbbbbbbbbbbb": [0.5, 0.6, 0.71]})
    other = pl.concat(
        [
            fold_rows({"cccccccccccc": [0.5, 0.6, 0.7]}),
            fold_rows({"dddddddddddd": [0.5, 0.6, 0.7]}, probe="attention_probe"),
        ]
    )
    for frame in (close, other):
        ranked = screen(aggregate(frame), n_folds=3, top_k=2, stage2_seeds=3, id_fn=stage2_id)
        assert ranked["twin_of"].null_count() == 2 and ranked["promoted"].sum() == 2
    assert mark_twins(screened.head(0))["twin_of"].to_list() == []


def test_summary_shows_the_nested_estimate_beside_the_optimistic_best_of_n():
    """24 configs without a real difference (true PR-AUC 0.5), 20 replications: the best of them,
    scored on the folds that picked it, sits above the truth; the nested estimate (selection on
    other folds) does not, and its interval covers the truth about as often as it should."""
    rng = np.random.default_rng(2)
    truth, best, nested, covered = 0.5, [], [], 0
    for _ in range(20):
        results = fold_rows(
            {f"{c:012x}": list(truth + 0.08 * rng.normal(size=8)) for c in range(24)}
        )
        finals = final_candidates(aggregate(results), stage1_id).with_columns(layer=pl.lit(4))
        row = best_and_nested(results, finals, stage1_id).row(0, named=True)
        assert row["n_configs"] == 24 and row["best_of_n_config"] in finals["config_id"].to_list()
        best.append(row["best_of_n_pr_auc_mean"])
        nested.append(row["nested_pr_auc_mean"])
        covered += row["nested_pr_auc_ci_low"] < truth < row["nested_pr_auc_ci_high"]
    assert np.mean(best) > truth + 0.03
    assert abs(np.mean(nested) - truth) < 0.02
    assert covered >= 16
