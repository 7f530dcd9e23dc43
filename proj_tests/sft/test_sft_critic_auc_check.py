"""The critic_auc_above_min check: passes for a critic that separates right from wrong answers
within their task type, warns (never blocks) for one at chance, for one that only recognises the
task type, and for one whose AUC cannot be measured; it always says whether the critic filters."""

import dagster as dg
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from proj_assets.sft.assets_check_results import auc_result
from proj_assets.sft.settings import SftSettings

CFG = SftSettings(n_shards=1)


def _scores(margins, correct, types=None) -> pl.DataFrame:
    n = len(margins)
    return pl.DataFrame(
        {
            "critic_margin": margins,
            "answer_correct": correct,
            "task_type": types or (["add", "sort"] * n)[:n],
        }
    )


def test_a_separating_critic_passes_with_per_type_and_within_type_auc():
    correct = [True, True, False, False] * 10
    margins = [2.0 if c else -2.0 for c in correct]
    result = auc_result(_scores(margins, correct), CFG)
    assert result.passed
    assert result.metadata["auc_by_type"].value["overall"] == 1.0
    assert result.metadata["measured"].value == 1.0  # within-type AUC
    assert result.metadata["filtering"].value is True
    assert "critic filters" in result.description
    assert "ece" in result.metadata and "reliability" in result.metadata


def test_a_critic_at_chance_warns_and_says_it_does_not_filter():
    rng = np.random.default_rng(0)
    correct = list(rng.random(200) < 0.5)
    margins = list(rng.normal(size=200))
    result = auc_result(_scores(margins, correct, ["add"] * 200), CFG)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert (
        abs(result.metadata["measured"].value - roc_auc_score(correct, margins)) < 1e-3
    )  # one type: the within-type AUC is the AUC, recorded to 4 digits
    assert result.metadata["filtering"].value is False
    assert "critic not used, every row kept" in result.description
    assert "includes 0.5" in result.description


def test_a_critic_that_only_knows_the_task_type_warns():
    # add answers are mostly right, sort answers mostly wrong; the critic scores the type only
    types = ["add"] * 50 + ["sort"] * 50
    correct = [i % 10 != 0 for i in range(50)] + [i % 10 == 0 for i in range(50)]
    margins = [1.0 if t == "add" else -1.0 for t in types]
    result = auc_result(_scores(margins, correct, types), CFG)
    assert roc_auc_score(correct, margins) > 0.85  # looks good overall
    assert result.metadata["measured"].value == 0.5  # ranks nothing within a type
    assert float(result.metadata["type_only_auc"].value) > 0.85
    assert not result.passed and result.metadata["filtering"].value is False


def test_one_class_labels_warn_as_not_measurable():
    result = auc_result(_scores([0.1, 0.2, 0.3], [True, True, True]), CFG)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "not measurable" in result.description
