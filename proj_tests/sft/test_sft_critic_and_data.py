"""The critic's margin sign and batching, decontamination, dedup and the training-set filter."""

import polars as pl
import pytest
import torch

from proj_assets.sft.critic import (
    auc_by_type,
    choose_threshold,
    critic_scores,
    roc_auc,
    verdict_token_ids,
)
from proj_assets.sft.dataset import (
    TooFewRowsError,
    build_training_set,
    duplicate_instructions,
    find_test_overlap,
)
from proj_assets.sft.prompts import CRITIC_QUESTIONS, PromptBuilder


class PlantedJudge(torch.nn.Module):
    """Unit-test stand-in for a model: at the last real position it puts logit `skill` on the letter
    that means "yes" (from the question's option order) when the judged answer is 42 and on the
    "no" letter otherwise, plus `prior` on ` A` whatever the answer (a position bias)."""

    def __init__(self, tokenizer, skill: float = 3.0, prior: float = 2.0):
        super().__init__()
        self.tokenizer, self.skill, self.prior = tokenizer, skill, prior
        self.a, self.b = verdict_token_ids(tokenizer)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, position_ids):
        logits = torch.zeros(*input_ids.shape, len(self.tokenizer))
        for row, (ids, mask) in enumerate(zip(input_ids, attention_mask, strict=False)):
            text = self.tokenizer.decode(ids[mask.bool()])
            answer = text.rsplit("Answer:", 1)[1].split("\n", 1)[0].strip()
            yes, no = (
                (self.a, self.b)
                if text.rstrip().endswith(f"{CRITIC_QUESTIONS[True]}\nVerdict:")
                else (self.b, self.a)
            )
            logits[row, -1, yes if answer == "42" else no] += self.skill
            logits[row, -1, self.a] += self.prior
        return type("Out", (), {"logits": logits})()


def test_both_option_orders_cancel_the_position_prior(demo_tokenizer):
    builder = PromptBuilder(critic_shots=2)
    answers = ["42", "41", "42", "4 2", "42"]
    instructions = ["Add 12 and 30." + " x" * i for i in range(len(answers))]  # ragged batches
    scores = critic_scores(
        PlantedJudge(demo_tokenizer), demo_tokenizer, builder, instructions, answers, batch_size=3
    )
    assert [m > 0 for m in scores.margins] == [a == "42" for a in answers]
    # a letter prior of 2 shifts each order's margin by +-2; the mean of both orders removes it
    assert [abs(m) for m in scores.margins] == pytest.approx([3.0] * len(answers), abs=1e-4)
    assert scores.position_prior == pytest.approx(2.0, abs=1e-4)
    biased = critic_scores(
        PlantedJudge(demo_tokenizer, skill=0.0, prior=5.0),
        demo_tokenizer,
        builder,
        instructions,
        answers,
        batch_size=3,
    )
    assert biased.margins == pytest.approx(
        [0.0] * len(answers), abs=1e-4
    )  # a prior alone is no evidence
    assert roc_auc(biased.margins, [a == "42" for a in answers]) == pytest.approx(0.5)


def test_auc_by_type_and_pilot_threshold_match_sklearn():
    from sklearn.metrics import roc_auc_score

    margins = [2.0, 1.5, -0.5, 0.7, -2.0, 0.1, 0.3, -1.0]
    labels = [True, True, False, True, False, False, True, False]
    types = ["add", "add", "add", "add", "sort", "sort", "count", "count"]
    auc = auc_by_type(margins, labels, types)
    assert auc["overall"] == pytest.approx(roc_auc_score(labels, margins))
    assert auc["add"] == 1.0 and auc["count"] == 1.0 and auc["sort"] is None  # sort: one class only
    threshold = choose_threshold(margins, labels)
    kept = [m >= threshold for m in margins]
    assert (
        kept == labels
    )  # separable: Youden's J picks a threshold that keeps exactly the right answers
    assert choose_threshold([1.0, 2.0], [True, True]) is None


def test_multi_token_verdicts_are_a_clear_error(demo_tokenizer):
    with pytest.raises(ValueError, match="single-token"):
        verdict_token_ids(demo_tokenizer, (" Yes indeed", " B"))


def test_decontamination_catches_a_planted_overlap():
    test_texts = ["Reverse the letters: q w e r t y", "Add 12 and 30."]
    train = pl.DataFrame(
        {
            "example_id": ["a", "b", "c", "d"],
            "instruction": [
                "Reverse the letters: q w e x t y",  # one word differs mid-way: no shared 8-gram
                "Please reverse the letters: q w e r t y now",  # contains a test 8-gram
                "add 12 AND 30",  # short test item, case and punctuation differ
                "Add 12 and 31.",
            ],
        }
    )
    hits = find_test_overlap(train, test_texts, n=8)
    assert hits["example_id"].to_list() == ["b", "c"]
    assert hits.filter(pl.col("example_id") == "c")["overlap_ngram"].item() == "add 12 and 30"


def test_training_set_filters_in_order_and_reports_counts():
    cands = pl.DataFrame(
        {
            "example_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "instruction": [
                "Add 1 and 2.",
                "Add 1 and 2.",
                "Add 5 and 5.",
                "Add 7 and 7.",
                "Add 12 and 30.",
                "Add 9 and 9.",
            ],
            "completion": [" 3", " 3", " 10", " 15", " 42", " 18"],
            "runaway": [False, False, False, False, False, True],
            "token_limit": [False] * 6,
            "critic_margin": [1.0, 2.0, 0.5, -1.0, 3.0, 5.0],
        }
    ).with_columns((pl.col("critic_margin") > 0).alias("critic_keep"))
    kept, report = build_training_set(cands, ["Add 12 and 30."], n=8)
    assert kept["example_id"].to_list() == ["e2", "e3"]  # e2 beats its duplicate e1 on margin
    assert report == {
        "generated": 6,
        "dropped_runaway": 1,
        "dropped_token_limit": 0,
        "dropped_by_critic": 1,
        "dropped_duplicates": 1,
        "dropped_test_overlap": 1,
        "kept": 2,
    }
    with pytest.raises(
        TooFewRowsError,
        match=r"2 rows left after filtering, at least 3 needed \(generated=6, "
        r"dropped_runaway=1, .*dropped_by_critic=1.*kept=2\)",
    ):
        build_training_set(cands, ["Add 12 and 30."], n=8, min_rows=3)
    nothing = cands.with_columns(pl.lit(False).alias("critic_keep"))
    with pytest.raises(TooFewRowsError, match="0 rows left") as error:
        build_training_set(nothing, [], n=8)
    assert error.value.report["dropped_by_critic"] == 5


def test_duplicate_test_items_are_found():
    assert duplicate_instructions(
        ["Add 1 and 2.", "Sort: 3 1", "add 1  and 2.", "Add 1 and 2."]
    ) == ["add 1 and 2."]
    assert duplicate_instructions(["a", "b"]) == []
