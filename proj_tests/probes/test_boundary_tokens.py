"""Tokens that span two sentences are never silently given to the earlier one (issue 21): the CJK
trace under the Llama-3 / Qwen2 split regex (`。然后我们算第二步`), a SentencePiece merge across a tab
(`▁replied.\\t(Check:`), the counts in the cache metadata and the share check; and an interior
whitespace token that a trimming post-processor makes zero-width stays in its sentence."""

import json

import numpy as np
import polars as pl
import pytest

from proj_assets.probes.extraction import extract_into_caches
from proj_assets.probes.quality import boundary_trace_rows
from proj_assets.probes.token_spans import (
    SpanError,
    assign_tokens,
    locate_sentences,
    plan_trace,
    special_prefix,
)
from proj_tests.family_tokenizers import llama2_style, llama3_style

CJK = ["我们先算第一步。", "然后我们算第二步。", "最后得到答案。"]
TAB = ["He thought about it and replied.", "(Check: 3 times 4 is 12.)", "Then he stopped."]
TAB_TRACE = "He thought about it and replied.\t(Check: 3 times 4 is 12.) Then he stopped."


def _decoded(tokenizer, plan) -> dict[int, str]:
    return {
        uid: tokenizer.decode([plan["input_ids"][p] for p in positions])
        for uid, positions in plan["spans"].items()
    }


def _no_sentence_sees_a_later_one(tokenizer, text, sentences, plan):
    """Every token given to sentence k covers no character of a sentence after k."""
    prefix_len = len(special_prefix(tokenizer))  # plan positions count the BOS in front
    bounds = locate_sentences("t", text, sentences)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    for k, (_uid, positions) in enumerate(plan["spans"].items()):
        for p in positions:
            start, end = offsets[p - prefix_len]
            assert all(end <= lo for lo, _hi in bounds[k + 1 :]), (k, text[start:end])


def test_cjk_boundary_tokens_go_to_the_later_sentence_and_are_counted():
    tokenizer = llama3_style(["".join(CJK)] * 30)
    tokens = tokenizer.convert_ids_to_tokens(
        tokenizer("".join(CJK), add_special_tokens=False)["input_ids"]
    )
    crossing = [
        t
        for t in (tokenizer.convert_tokens_to_string([t]) for t in tokens)
        if "。" in t and t != "。" and not t.endswith("。")
    ]
    assert crossing == [
        "。然后我们算第二步",
        "。最后得到答案",
    ]  # the split regex joins 。 to the next sentence
    (plan,) = plan_trace(tokenizer, "c0", "", "".join(CJK), CJK, [0, 1, 2], 64, 512)
    decoded = _decoded(tokenizer, plan)
    assert (
        decoded[0] == "我们先算第一步"
    )  # it used to get "。然后我们算第二步": its neighbour's text
    assert decoded[1].startswith("。然后") and plan["boundary"] == {0: 0, 1: 1, 2: 1}
    _no_sentence_sees_a_later_one(tokenizer, "".join(CJK), CJK, plan)


def test_a_sentencepiece_merge_across_a_tab_goes_to_the_later_sentence():
    tokenizer = llama2_style([TAB_TRACE] * 30)
    assert "▁replied.\t(Check:" in tokenizer.tokenize(TAB_TRACE)
    (plan,) = plan_trace(tokenizer, "t0", "", TAB_TRACE, TAB, [0, 1, 2], 64, 512)
    decoded = _decoded(tokenizer, plan)
    assert (
        decoded[0] == "He thought about it and" and "(Check:" in decoded[1] and decoded[2] == TAB[2]
    )
    assert plan["boundary"] == {0: 0, 1: 1, 2: 0}
    _no_sentence_sees_a_later_one(tokenizer, TAB_TRACE, TAB, plan)


def test_a_sentence_made_only_of_a_boundary_token_is_a_named_error():
    tokenizer = llama3_style(["".join(CJK)] * 30)
    with pytest.raises(
        SpanError, match=r"trace 'c1', sentence 0 .* has no tokens \(a boundary token spans it"
    ):
        plan_trace(
            tokenizer,
            "c1",
            "",
            "。然后我们算第二步。",
            ["。", "然后我们算第二步。"],
            [0, 1],
            64,
            512,
        )


def test_interior_zero_width_whitespace_stays_in_its_sentence():
    text = "Wait,  let me   check: 3 times 4."
    tokenizer = llama3_style([text] * 30, trim_offsets=True)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    assert any(s == e for s, e in offsets)  # trimmed offsets: interior "Ġ" tokens are zero-width
    owned, boundary = assign_tokens(offsets, text, [(0, len(text))])
    assert owned[0] == list(range(len(offsets))) and boundary == [0]
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    between = "One.  Two."  # a zero-width token between two sentences belongs to neither
    owned, _ = assign_tokens([(0, 4), (6, 6), (6, 10)], between, [(0, 4), (6, 10)])
    assert owned == [[0], [2]]


def _corpus(traces: list[list[str]]) -> pl.DataFrame:
    rows, uid = [], 0
    for t, sentences in enumerate(traces):
        for i, text in enumerate(sentences):
            rows.append(
                {
                    "uid": uid,
                    "trace_id": f"t{t}",
                    "sentence_idx": i,
                    "text": text,
                    "trace_text": "".join(sentences),
                    "prompt": "",
                }
            )
            uid += 1
    return pl.DataFrame(rows)


def test_the_cache_records_boundary_tokens_per_trace_and_the_share_check_reads_them(tmp_path):
    from transformers import GPT2Config, GPT2Model

    english = ["So we add.", " Then we stop."]
    tokenizer = llama3_style(["".join(CJK)] * 30 + ["".join(english)] * 30)
    model = GPT2Model(
        GPT2Config(vocab_size=len(tokenizer), n_embd=8, n_layer=1, n_head=2, n_positions=128)
    )
    corpus = _corpus([CJK, english, english])
    folder = tmp_path / "cache"
    folder.mkdir()
    extract_into_caches(
        model,
        tokenizer,
        corpus,
        {1: folder},
        {1: {}},
        16,
        "trace",
        128,
        4,
        "cpu",
        lambda d, t: None,
    )
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["boundary_tokens"] == {
        "tokens": 2,
        "traces": 3,
        "traces_with_boundary_tokens": 1,
        "per_trace": {"t0": 2},
    }
    share, rows = boundary_trace_rows(meta)
    assert share == pytest.approx(1 / 3) and rows.to_dicts() == [
        {"trace_id": "t0", "boundary_tokens": 2}
    ]
    with pytest.raises(ValueError, match="no boundary-token counts"):
        boundary_trace_rows({"spec": {}, "shape": [0, 8]})
    assert np.isfinite(np.memmap(folder / "activations.f16", dtype="float16", mode="r")).all()
