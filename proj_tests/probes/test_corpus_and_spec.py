"""Corpus loading/validation and sweep spec expansion: good input accepted, bad input named clearly."""

import polars as pl
import pytest

from proj_assets.probes.corpus import CorpusError, coerce_corpus, corpus_hash, load_corpus_file
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.quality import group_problems
from proj_assets.probes.sweep_spec import (
    SpecError,
    expand,
    parse_spec,
    resolve_config,
    stage1_id,
    stage2_id,
)
from proj_resources.hashing import canonical_hash


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    return coerce_corpus(generate_corpus(3, 3, 0.05, seed=1), "generated")


def test_generator_is_seeded_and_labels_follow_the_text(corpus):
    again = coerce_corpus(generate_corpus(3, 3, 0.05, seed=1), "generated")
    assert corpus_hash(again) == corpus_hash(corpus)
    assert corpus_hash(coerce_corpus(generate_corpus(3, 3, 0.05, seed=2), "g")) != corpus_hash(
        corpus
    )
    big = generate_corpus(6, 8, 0.0, seed=3)
    rates = big.group_by("category").agg(pl.col("label").mean()).to_dict(as_series=False)
    rate = dict(zip(rates["category"], rates["label"], strict=False))
    assert rate["plan_generation"] > 0.7 > 0.3 > rate["active_computation"]
    assert group_problems(coerce_corpus(big, "g")).height == 0


def test_parquet_and_jsonl_round_trip(tmp_path, corpus):
    corpus.write_parquet(tmp_path / "c.parquet")
    corpus.write_ndjson(tmp_path / "c.jsonl")
    for name in ("c.parquet", "c.jsonl"):
        assert corpus_hash(load_corpus_file(tmp_path / name)) == corpus_hash(corpus)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda df: df.drop("label"), "missing column(s) ['label']"),
        (
            lambda df: df.with_columns(
                label=pl.when(pl.col("sentence_idx") == 2).then(7).otherwise(pl.col("label"))
            ),
            "field 'label': got 7, expected 0 or 1",
        ),
        (lambda df: df.with_columns(sentence_idx=pl.col("n_sentences")), "field 'sentence_idx'"),
        (lambda df: df.with_columns(group_id=pl.lit("a|b")), "field 'group_id'"),
        (
            lambda df: df.with_columns(n_sentences=pl.lit("many")),
            "field 'n_sentences': got 'many', expected an integer",
        ),
    ],
)
def test_bad_corpus_is_rejected_naming_file_row_and_field(tmp_path, corpus, mutate, message):
    path = tmp_path / "bad.jsonl"
    mutate(corpus).write_ndjson(path)
    with pytest.raises(CorpusError) as err:
        load_corpus_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_single_class_group_and_broken_trace_are_flagged(corpus):
    one_class = corpus.with_columns(
        label=pl.when(pl.col("group_id") == "problem_01").then(0).otherwise(pl.col("label"))
    )
    broken = corpus.filter(
        ~((pl.col("trace_id") == "problem_00_trace_00") & (pl.col("sentence_idx") == 1))
    )
    assert group_problems(one_class)["problem"].to_list() == ["no positive label"]
    assert group_problems(broken)["problem"].to_list() == ["sentences are not 0..n_sentences-1"]


SPEC = {
    "name": "t",
    "factors": {
        "probe_type": ["linear_probe", "attention_probe"],
        "layer": [1, 2],
        "pooling": ["mean", "max"],
        "learning_rate": [0.01],
        "epochs": [5],
    },
    "stages": {"stage1_seeds": 2, "stage2_seeds": 4, "promote_top_k": 1},
}


def test_spec_expands_factorially_with_stable_deduplicated_ids():
    configs = expand(parse_spec(SPEC, "spec"), canonical_hash)
    # linear: 2 layers x 2 poolings; attention ignores pooling: 2 layers
    assert len(configs) == 6
    reordered = {
        **SPEC,
        "factors": {**SPEC["factors"], "layer": [2, 1], "pooling": ["max", "mean"]},
    }
    assert {c["config_id"] for c in expand(parse_spec(reordered, "spec"), canonical_hash)} == {
        c["config_id"] for c in configs
    }
    by_id = {c["config_id"]: c for c in configs}
    promoted = stage2_id(configs[0]["config_id"], 4)
    assert stage1_id(promoted) == configs[0]["config_id"]
    assert resolve_config(promoted, by_id) | {} == {
        **configs[0],
        "config_id": promoted,
        "stage": 2,
        "n_seeds": 4,
    }
    with pytest.raises(KeyError, match="not in the sweep manifest"):
        resolve_config("0123456789ab", by_id)


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"factors": {**SPEC["factors"], "probe_type": ["lasso"]}}, "factors.probe_type.0"),
        ({"factors": {**SPEC["factors"], "learning_rate": [-1.0]}}, "factors.learning_rate"),
        ({"factors": {**SPEC["factors"], "colour": [1]}}, "factors.colour"),
        (
            {"stages": {"stage1_seeds": 4, "stage2_seeds": 2, "promote_top_k": 1}},
            "stages.stage2_seeds",
        ),
        ({"stages": {"stage1_seeds": 2}}, "stages.stage2_seeds"),
    ],
)
def test_bad_spec_names_the_field(patch, field):
    with pytest.raises(SpecError) as err:
        parse_spec({**SPEC, **patch}, "data/sweeps/bad.yaml")
    assert "data/sweeps/bad.yaml" in str(err.value) and f"'{field}'" in str(err.value)


def test_optional_trace_text_prompt_and_importance_are_validated(corpus):
    traced = corpus.with_columns(
        trace_text=pl.col("text").str.join(" ").over("trace_id"),
        prompt=pl.lit("Q: ?\n"),
        importance=pl.col("sentence_idx") * 0.1,
    )
    assert coerce_corpus(traced, "t")["importance"].dtype == pl.Float64
    assert corpus_hash(coerce_corpus(traced, "t")) != corpus_hash(corpus)
    varies = traced.with_columns(prompt=pl.col("sentence_idx").cast(pl.Utf8))
    with pytest.raises(CorpusError, match="field 'prompt' differs between rows of trace"):
        coerce_corpus(varies, "t")
    with pytest.raises(
        CorpusError, match="field 'importance': got 'high', expected a finite number"
    ):
        coerce_corpus(traced.with_columns(importance=pl.lit("high")), "t")
