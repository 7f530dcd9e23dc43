"""The release gate's gain test: chance-corrected PR-AUC, the sign-flip test over folds, its
behaviour on null data (labels independent of every score) and the gate check end to end."""

import dagster as dg
import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score

from proj_assets.probes.assets_folds import expected_inputs
from proj_assets.probes.evaluation import nested_confirmation, t_interval
from proj_assets.probes.gain_test import (
    ALPHA,
    average_precision_rows,
    excess_average_precision,
    sign_flip_lower_bound,
    sign_flip_pvalue,
)
from proj_assets.probes.release import chance_corrected, confirmation_summary, release_decision
from proj_assets.probes.results_store import predictions_relpath, replace_partitions
from proj_assets.probes.sweep_spec import stage1_id
from proj_resources import ArtifactStore, Warehouse
from proj_resources.fingerprints import fingerprint, stamp_inputs
from proj_tests.definitions_helpers import checks_by_name


def scored_results(
    signal: float,
    n_folds: int = 8,
    n: int = 60,
    config_ids=("aaaaaaaaaaaa",),
    seeds=(0, 1),
    tied_baseline: bool = False,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[tuple[str, str], pl.DataFrame]]:
    """Fold rows (PR-AUC by scikit-learn) and predictions of configs whose candidate score is
    `signal * label + noise`; the baseline and control are noise (the baseline constant per block
    of 10 sentences when `tied_baseline`, as position features tie)."""
    rng = np.random.default_rng(seed)
    rows, predictions = [], {}
    for f in range(n_folds):
        fold = f"g{f}"
        y = (rng.random(n) < 0.25).astype(np.int64)
        y[0] = 1
        refs = [("baseline", "position_baseline", 0, rng.normal(size=n))]
        if tied_baseline:
            refs[0] = (*refs[0][:3], np.repeat(rng.normal(size=n // 10 + 1), 10)[:n])
        refs += [
            ("control", "logistic_regression_mean_pooled", s, rng.normal(size=n)) for s in (0, 1)
        ]
        for config_id in config_ids:
            fits = refs + [
                ("candidate", "linear_probe", s, signal * y + rng.normal(size=n)) for s in seeds
            ]
            frames = []
            for role, probe, probe_seed, score in fits:
                rows.append(
                    {
                        "config_id": config_id,
                        "fold": fold,
                        "stage": 1,
                        "role": role,
                        "probe": probe,
                        "probe_seed": probe_seed,
                        "pr_auc": float(average_precision_score(y, score)),
                        "roc_auc": 0.5,
                        "base_rate": float(y.mean()),
                    }
                )
                frames.append(
                    pl.DataFrame(
                        {
                            "config_id": config_id,
                            "fold": fold,
                            "role": role,
                            "probe_seed": probe_seed,
                            "uid": np.arange(n),
                            "label": y,
                            "probability": score,
                        }
                    )
                )
            predictions[(config_id, fold)] = pl.concat(frames)
    return pl.DataFrame(rows), predictions


def _decide(results, predictions, margin=0.0) -> dict:
    confirmed = chance_corrected(
        nested_confirmation(results, stage1_id), lambda c, f: predictions[(c, f)]
    )
    return release_decision(confirmed, margin)


def test_average_precision_rows_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(5, 80))
        scores = np.round(rng.random(n), int(rng.integers(0, 3)))  # 0-2 decimals: many ties
        labels = (rng.random((3, n)) < 0.3).astype(np.int64)
        labels[:, 0] = 1
        expected = [average_precision_score(row, scores) for row in labels]
        assert average_precision_rows(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(average_precision_rows(np.arange(4.0), np.zeros(4))[0])


def test_excess_corrects_the_tie_bias_that_raw_pr_auc_has():
    """On null test sets a tied score's raw PR-AUC is lower than a continuous one's (so a random
    candidate "beats" a tied baseline), while both excesses average zero."""
    rng = np.random.default_rng(4)
    raw_gap, excess_gap = [], []
    for _ in range(300):
        y = (rng.random(30) < 0.2).astype(np.int64)
        y[0] = 1
        continuous, tied = rng.normal(size=30), np.repeat(rng.normal(size=3), 10)
        raw_gap.append(average_precision_score(y, continuous) - average_precision_score(y, tied))
        excess = excess_average_precision(
            np.stack([continuous, tied]), y, seed=0, n_permutations=500
        )
        excess_gap.append(excess[0] - excess[1])
    raw = stats.ttest_1samp(raw_gap, 0.0)
    corrected = stats.ttest_1samp(excess_gap, 0.0)
    assert np.mean(raw_gap) > 0.02 and raw.pvalue < 1e-3
    assert abs(np.mean(excess_gap)) < 0.01 and corrected.pvalue > 0.01
    assert excess_average_precision(np.zeros(30), y)[0] == pytest.approx(0.0, abs=1e-12)


def test_sign_flip_pvalue_equals_scipys_exact_permutation_test():
    rng = np.random.default_rng(5)
    for _ in range(5):
        gains = rng.normal(0.02, 0.05, size=7)
        scipy = stats.permutation_test(
            (gains,), np.mean, permutation_type="samples", alternative="greater", n_resamples=np.inf
        )
        assert sign_flip_pvalue(gains) == pytest.approx(scipy.pvalue)
    assert sign_flip_pvalue(np.full(6, 0.1)) == pytest.approx(1 / 64)


def test_lower_bound_inverts_the_test_and_needs_six_folds():
    gains = np.array([0.12, 0.05, 0.09, 0.2, 0.03, 0.08, 0.11, 0.07])
    bound = sign_flip_lower_bound(gains)
    assert 0.0 < bound < gains.mean()
    assert sign_flip_pvalue(gains, bound - 1e-6) <= ALPHA < sign_flip_pvalue(gains, bound + 1e-3)
    assert sign_flip_lower_bound(gains[:5]) == -np.inf  # 2^-5 > 2.5%: no margin is ever beaten


def test_null_data_fool_the_old_rule_and_not_the_new_one():
    """Pinned null case: 8 small folds, a candidate without signal, a tied position baseline. The
    old rule (t lower bound of raw gains > 0) calls the chance gain real; the new one does not, and
    over 60 such null corpora it stays at its nominal rate while the old one does not."""
    old_calls, new_calls = 0, 0
    for seed in range(60):
        results, predictions = scored_results(0.0, n=30, tied_baseline=True, seed=seed)
        confirmed = chance_corrected(
            nested_confirmation(results, stage1_id), lambda c, f, p=predictions: p[(c, f)]
        )
        raw_gains = (confirmed["candidate"] - confirmed["baseline"]).to_numpy()
        old_calls += t_interval(raw_gains)[0] > 0
        new_calls += confirmation_summary(confirmed)["gain_vs_baseline"]["passed"]
    assert old_calls / 60 > 0.15  # the old rule's FPR at nominal 2.5%
    assert new_calls / 60 <= 0.05


def test_release_decision_passes_a_real_gain_and_blocks_none():
    good = _decide(*scored_results(2.0))
    assert good["passed"] and good["measured"] > 0.1
    assert good["summary"]["chance"]["mean"] < good["summary"]["candidate"]["mean"]
    flat = _decide(*scored_results(0.0))
    assert not flat["passed"] and "position baseline" in flat["reason"]
    few = _decide(*scored_results(2.0, n_folds=5))
    assert not few["passed"] and "cannot pass" in few["reason"]
    assert not _decide(*scored_results(2.0), margin=5.0)["passed"]


def test_missing_predictions_are_an_error_naming_the_role():
    results, predictions = scored_results(1.0, n_folds=6)
    confirmed = nested_confirmation(results, stage1_id)
    no_control = {k: v.filter(pl.col("role") != "control") for k, v in predictions.items()}
    with pytest.raises(ValueError, match="no control rows"):
        chance_corrected(confirmed, lambda c, f: no_control[(c, f)])


@pytest.mark.parametrize("disabled", [False, True])
def test_release_gate_check_blocks_unless_explicitly_disabled(make_probes, tmp_path, disabled):
    probes = make_probes(disabled_tripwires=["release_gate"] if disabled else [])
    release_gate = checks_by_name(probes.defs)["release_gate"]
    manifest = pl.DataFrame(
        {
            "config_id": ["aaaaaaaaaaaa"],
            "model_id": ["m"],
            "model_revision": ["r"],
            "activations_path": ["cache"],
        }
    )
    groups = [f"g{f}" for f in range(8)]  # the folds of scored_results
    corpus = pl.DataFrame(
        {"group_id": groups, "trace_id": groups, "sentence_idx": 0, "n_sentences": 1}
    ).with_columns(text=pl.lit("x"), label=pl.lit(0))
    inputs = expected_inputs(manifest, corpus, [("aaaaaaaaaaaa", g) for g in groups])

    def gate(signal: float, name: str):
        """The gate on fold rows and predictions stored as fold_results stores them: stamped with
        the partition's current inputs, predictions under that fingerprint."""
        warehouse = Warehouse(database=str(tmp_path / f"{name}.duckdb"))
        artifacts = ArtifactStore(root=str(tmp_path / name))
        results, predictions = scored_results(signal)
        with warehouse.get_connection() as conn:
            for (fold,), rows in results.group_by("fold"):
                key = ("aaaaaaaaaaaa", str(fold))
                replace_partitions(conn, stamp_inputs(rows, inputs[key]), [key])
        for key, frame in predictions.items():
            path = artifacts.path(predictions_relpath(*key, fingerprint(inputs[key])))
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(path)
        return release_gate(
            manifest=manifest, corpus=corpus, warehouse=warehouse, artifacts=artifacts
        )

    result = gate(0.0, "flat")
    assert not result.passed
    assert result.metadata["threshold"].value == 0.0 and result.metadata["measured"].value <= 0.0
    assert "aaaaaaaaaaaa" in result.metadata["offending_sample"].value
    for role in ("candidate", "baseline", "control", "chance"):
        assert {f"{role}_pr_auc_{s}" for s in ("mean", "ci_low", "ci_high")} <= set(result.metadata)
    assert "gain_vs_baseline_p_value" in result.metadata
    assert result.metadata["tripwire_disabled"].value is disabled
    assert result.severity == (
        dg.AssetCheckSeverity.WARN if disabled else dg.AssetCheckSeverity.ERROR
    )
    assert gate(2.0, "good").passed
