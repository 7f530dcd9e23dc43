"""Decontamination: the demo pretraining corpus holds no test item, the overlap audit behind
`no_test_overlap` agrees with the training-set filter by other code, and when the filter lets a
test item through the check fails, blocks the adapter in that run and the adapter refuses later."""

import random

import dagster as dg
import polars as pl
import pytest

from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import keys as k
from proj_assets.sft.dataset import find_test_overlap
from proj_assets.sft.demo_model import pretraining_documents
from proj_assets.sft.overlap_audit import OverlapAudit, normalise
from proj_assets.sft.tasks import make_instructions
from proj_tests.definitions_helpers import demo_profile
from proj_tests.sft.conftest import refused_gates, stand_in, stand_in_base_model
from proj_tests.sft.test_sft_shard_and_model_gates import crafted_shard, keep_all


def verbatim(test_items: list[str], documents: list[str]) -> list[str]:
    """Test items that appear word for word (case and punctuation aside) in some document."""
    corpus = [f" {' '.join(normalise(d))} " for d in documents]
    return [t for t in test_items if any(f" {' '.join(normalise(t))} " in c for c in corpus)]


def test_the_demo_corpus_holds_no_test_item_word_for_word():
    cfg = demo_profile().sft
    test = [i.instruction for i in make_instructions(cfg.test_per_type * 5, cfg.test_seed)]
    raw = pretraining_documents(cfg.demo_model)
    assert len(verbatim(test, raw)) > 20  # undecontaminated: random draws hit the test set
    clean = pretraining_documents(cfg.demo_model, test, cfg.decontamination_ngram)
    assert verbatim(test, clean) == []
    assert OverlapAudit(test, cfg.decontamination_ngram).find(clean) == []
    blocks = sum(d.count("Instruction:") for d in clean)
    assert blocks > 0.99 * cfg.demo_model.n_documents * cfg.demo_model.blocks_per_document


def test_the_audit_names_each_kind_of_overlap():
    test = ["Reverse the letters: q w e r t y", "Add 12 and 30."]
    audit = OverlapAudit(test, 8)
    found = audit.find(
        [
            "add 12 AND 30",  # exact once normalised
            "Please add 12 and 30 now",  # contains a short test item
            "Capitalize the letters: q w e r t y",  # another type, same payload: a shared 8-gram
            "Please reverse the letters: q w e r t y now",  # shares an 8-gram
            "Add 12 and 301.",  # 301 is another word
        ]
    )
    kinds = [(o.row, o.kind) for o in found]
    assert kinds == [(0, "exact"), (1, "contains"), (2, "n-gram"), (3, "n-gram")]
    assert found[2].test_item == test[0]
    assert (
        OverlapAudit(["Reverse the letters: q w e r t"], 8).find(
            ["Capitalize the letters: q w e r t"]
        )
        == []
    )


@pytest.mark.parametrize("n", [3, 8])
def test_the_audit_agrees_with_the_filter_on_random_texts(n):
    rng = random.Random(n)
    vocab = ["add", "the", "letters", "sort", "1", "2", "3", "a", "b"]

    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 10)))

    test = [text() for _ in range(30)]
    train = pl.DataFrame({"instruction": [text() for _ in range(400)]}).with_row_index("row")
    by_filter = set(find_test_overlap(train, test, n)["row"].to_list())
    by_audit = {o.row for o in OverlapAudit(test, n).find(train["instruction"].to_list())}
    assert by_audit == by_filter and 0 < len(by_audit) < 400


def test_a_test_item_the_filter_misses_fails_the_check_and_stops_the_adapter(
    tiny_runner, untrained_model_dir, tmp_path, monkeypatch
):
    leaked = "Add 12 and 30."
    shards = sft_shard_partitions(tiny_runner.cfg.n_shards)

    def shard_rows(shard: str) -> pl.DataFrame:
        rows = crafted_shard(shard, 20, 0, 0)
        return rows.with_columns(
            pl.when(pl.col("example_id") == f"{shard}-000003")
            .then(pl.lit(leaked))
            .otherwise(pl.col("instruction"))
            .alias("instruction")
        )

    def critic_rows(shard: str) -> pl.DataFrame:
        return keep_all(shard_rows(shard))

    test_set = pl.DataFrame(
        {"item_id": [0], "task_type": ["add"], "instruction": [leaked], "reference": ["42"]}
    )
    stand_ins = [
        stand_in(k.SHARDS, shard_rows, shards, "shard"),
        stand_in(k.CRITIC, critic_rows, shards, "shard"),
        stand_in(k.TEST_INSTRUCTIONS, test_set),
        stand_in_base_model(untrained_model_dir),
    ]
    assert tiny_runner([k.BASE_MODEL], stand_ins=stand_ins).success
    for shard in shards.get_partition_keys():
        assert tiny_runner([k.SHARDS, k.CRITIC], shard, stand_ins).success
    assert tiny_runner([k.TEST_INSTRUCTIONS], stand_ins=stand_ins).success

    # a filter bug: decontamination finds nothing, so both planted copies reach the training set
    monkeypatch.setattr(
        "proj_assets.sft.dataset.find_test_overlap", lambda train, *a, **kw: train.head(0)
    )
    run = tiny_runner([k.TRAINING_SET, k.ADAPTER], stand_ins=stand_ins, raise_on_error=False)
    training = run.output_for_node("sft__data__training_set")
    assert leaked in training["instruction"].to_list()
    (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "no_test_overlap"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["n_failing"].value == 1  # deduplication kept one of the two copies
    assert "exact" in check.metadata["offending_sample"].value
    assert not run.success  # the blocking check stopped the adapter in this run
    assert not tiny_runner.instance.get_latest_materialization_event(dg.AssetKey(k.ADAPTER))

    later = tiny_runner([k.ADAPTER], stand_ins=stand_ins, raise_on_error=False)
    assert not later.success
    (gate,) = refused_gates(later)
    assert gate.startswith("sft/data/training_set:no_test_overlap failed")
    assert not (tmp_path / "out" / "artifacts" / "sft_adapter").exists()
