"""The critic_auc_above_min check: passes for a critic that separates right from wrong answers,
warns (never blocks) for one at chance or one whose AUC cannot be measured."""

import dagster as dg
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from proj_assets.sft.checks import auc_result


def _scores(margins, correct) -> pl.DataFrame:
    n = len(margins)
    return pl.DataFrame(
        {
            "critic_margin": margins,
            "answer_correct": correct,
            "task_type": (["add", "sort"] * n)[:n],
        }
    )


def test_a_separating_critic_passes_with_per_type_auc():
    correct = [True, False] * 20
    margins = [2.0 if c else -2.0 for c in correct]
    result = auc_result(_scores(margins, correct), 0.6)
    assert result.passed
    assert result.metadata["auc_by_type"].value["overall"] == 1.0


def test_a_critic_at_chance_warns_with_the_measured_auc():
    rng = np.random.default_rng(0)
    correct = list(rng.random(200) < 0.5)
    margins = list(rng.normal(size=200))
    result = auc_result(_scores(margins, correct), 0.6)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert (
        abs(result.metadata["measured"].value - roc_auc_score(correct, margins)) < 1e-3
    )  # recorded to 4 digits


def test_one_class_labels_warn_as_not_measurable():
    result = auc_result(_scores([0.1, 0.2, 0.3], [True, True, True]), 0.6)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "not measurable" in result.description
