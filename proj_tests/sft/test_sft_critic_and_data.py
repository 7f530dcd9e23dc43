"""The critic's margin sign and batching, decontamination, dedup and the training-set filter."""

import polars as pl
import pytest
import torch

from proj_assets.sft.critic import critic_margins, verdict_token_ids
from proj_assets.sft.dataset import build_training_set, find_test_overlap
from proj_assets.sft.prompts import PromptBuilder


class PlantedJudge(torch.nn.Module):
    """Unit-test stand-in for a model: at the last real position it prefers ` A` when the judged
    answer line says 42 and ` B` otherwise (so the expected margin sign is known)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.good, self.bad = verdict_token_ids(tokenizer)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, position_ids):
        logits = torch.zeros(*input_ids.shape, len(self.tokenizer))
        for row, (ids, mask) in enumerate(zip(input_ids, attention_mask)):
            text = self.tokenizer.decode(ids[mask.bool()])
            answer = text.rsplit("Answer:", 1)[1].split("\n", 1)[0].strip()
            prefer = self.good if answer == "42" else self.bad
            logits[row, -1, prefer] = 3.0
        return type("Out", (), {"logits": logits})()


def test_margin_sign_follows_planted_good_and_bad_answers(demo_tokenizer):
    builder = PromptBuilder(critic_shots=2)
    answers = ["42", "41", "42", "4 2", "42"]
    prompts = [builder.critic_prompt("Add 12 and 30." + " x" * i, a) for i, a in enumerate(answers)]  # ragged
    margins = critic_margins(PlantedJudge(demo_tokenizer), demo_tokenizer, prompts, batch_size=2)
    assert [m > 0 for m in margins] == [a == "42" for a in answers]
    assert margins[0] == pytest.approx(3.0)


def test_multi_token_verdicts_are_a_clear_error(demo_tokenizer):
    with pytest.raises(ValueError, match="single-token"):
        verdict_token_ids(demo_tokenizer, (" Yes indeed", " B"))


def test_decontamination_catches_a_planted_overlap():
    test_texts = ["Reverse the letters: q w e r t y", "Add 12 and 30."]
    train = pl.DataFrame({"example_id": ["a", "b", "c", "d"], "instruction": [
        "Reverse the letters: q w e x t y",            # one word differs mid-way: no shared 8-gram
        "Please reverse the letters: q w e r t y now",  # contains a test 8-gram
        "add 12 AND 30",                                # short test item, case and punctuation differ
        "Add 12 and 31.",
    ]})
    hits = find_test_overlap(train, test_texts, n=8)
    assert hits["example_id"].to_list() == ["b", "c"]
    assert hits.filter(pl.col("example_id") == "c")["overlap_ngram"].item() == "add 12 and 30"


def test_training_set_filters_in_order_and_reports_counts():
    cands = pl.DataFrame({
        "example_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
        "instruction": ["Add 1 and 2.", "Add 1 and 2.", "Add 5 and 5.", "Add 7 and 7.", "Add 12 and 30.", "Add 9 and 9."],
        "completion": [" 3", " 3", " 10", " 15", " 42", " 18"],
        "runaway": [False, False, False, False, False, True], "token_limit": [False] * 6,
        "critic_margin": [1.0, 2.0, 0.5, -1.0, 3.0, 5.0],
    }).with_columns((pl.col("critic_margin") > 0).alias("critic_keep"))
    kept, report = build_training_set(cands, ["Add 12 and 30."], n=8)
    assert kept["example_id"].to_list() == ["e2", "e3"]  # e2 beats its duplicate e1 on margin
    assert report == {"candidates": 6, "dropped_qc_flagged": 1, "dropped_by_critic": 1, "dropped_duplicates": 1,
                      "dropped_test_overlap": 1, "kept": 2}
