"""Exact token spans on byte-level BPE (both trim_offsets), SentencePiece (Llama-2) and WordPiece
tokenizers built in the test: every sentence's tokens decode to exactly its text, in a real trace
(prompt, its own whitespace and newlines), in overlapping windows, and alone; bad traces are named."""

import polars as pl
import pytest

from proj_assets.probes.extraction import extract_into_caches, plan_sentence_mode, plan_trace_mode
from proj_assets.probes.token_spans import SpanError, locate_sentences, tokenizer_hash

SENTENCES = [
    "So, the plan is to multiply first.",
    "Wait, let me check: 3 times 4 is 12.",
    "Hmm, that looks right.",
    "The answer is 12.",
]
TRACE_TEXT = (
    "So, the plan is to multiply first.  Wait, let me check: 3 times 4 is 12.\n"
    "Hmm, that looks right.\n\nThe answer is 12."
)
PROMPT = "Question: what is 3 times 4?\nLet me think.\n"


def trace_corpus(sentences=SENTENCES, trace_text=TRACE_TEXT, n_traces=2) -> pl.DataFrame:
    rows = [
        {
            "uid": t * len(sentences) + i,
            "trace_id": f"t{t}",
            "sentence_idx": i,
            "text": s,
            "trace_text": trace_text,
            "prompt": PROMPT,
        }
        for t in range(n_traces)
        for i, s in enumerate(sentences)
    ]
    return pl.DataFrame(rows)


def assert_exact(family: str, tokenizer, plans, corpus: pl.DataFrame) -> None:
    texts = dict(zip(corpus["uid"].to_list(), corpus["text"].to_list(), strict=False))
    seen = []
    for plan in plans:
        for uid, positions in plan["spans"].items():
            decoded = tokenizer.decode([plan["input_ids"][p] for p in positions]).strip()
            if (
                family == "wordpiece"
            ):  # WordPiece decoding re-spaces punctuation ("check :"); compare the characters
                assert "".join(decoded.split()) == "".join(texts[uid].split()), (uid, decoded)
            else:
                assert decoded == texts[uid], (family, uid, decoded)
            seen.append(uid)
    assert sorted(seen) == sorted(texts)


@pytest.mark.parametrize(
    "max_context", [512, 40]
)  # 40: the trace is encoded in overlapping windows
def test_trace_mode_spans_are_exact(family_tokenizer, max_context):
    family, tokenizer = family_tokenizer
    corpus = trace_corpus()
    plans = plan_trace_mode(tokenizer, corpus, 64, max_context)
    assert_exact(family, tokenizer, plans, corpus)
    if max_context == 40:
        assert len(plans) > 2 and max(len(p["input_ids"]) for p in plans) <= 40
    else:
        full = tokenizer(PROMPT + TRACE_TEXT)["input_ids"]
        assert (
            plans[0]["input_ids"] == full[: len(plans[0]["input_ids"])]
        )  # prompt + the real text, as-is


def test_sentence_mode_spans_are_exact(family_tokenizer):
    family, tokenizer = family_tokenizer
    corpus = trace_corpus(n_traces=1)
    assert_exact(family, tokenizer, plan_sentence_mode(tokenizer, corpus, 64, 512), corpus)


def test_the_data_exercises_the_leading_space_quirk(family_tokenizer):
    """With untrimmed byte-level offsets and with SentencePiece, some sentence's first token starts
    on the space before it ("ĠWait", "▁Wait"): the old `lo <= start < hi` rule dropped exactly those."""
    family, tokenizer = family_tokenizer
    text = PROMPT + TRACE_TEXT
    starts = {len(PROMPT) + b[0] for b in locate_sentences("t", TRACE_TEXT, SENTENCES)}
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    early = [s for s, e in offsets if s + 1 in starts and text[s].isspace() and e > s + 1]
    assert bool(early) == (family in ("byte_bpe_untrimmed", "sentencepiece_llama2"))


def test_missing_or_out_of_order_sentences_name_trace_and_sentence():
    with pytest.raises(SpanError, match=r"trace 't7', sentence 1 \('Nope.'\) does not occur"):
        locate_sentences("t7", "One. Two.", ["One.", "Nope."])
    with pytest.raises(
        SpanError,
        match=r"trace 't7', sentence 1 \('One.'\) occurs only at character 0.*out of order",
    ):
        locate_sentences("t7", "One. Two.", ["Two.", "One."])
    with pytest.raises(SpanError, match="sentence 1 .*overlap"):
        locate_sentences("t7", "Hmm, so. Next.", ["Hmm, so.", "so."])


def test_bad_trace_caches_nothing(tmp_path, family_tokenizer):
    from transformers import GPT2Config, GPT2Model

    _family, tokenizer = family_tokenizer
    model = GPT2Model(
        GPT2Config(vocab_size=len(tokenizer), n_embd=8, n_layer=1, n_head=2, n_positions=128)
    )
    corpus = trace_corpus(trace_text=TRACE_TEXT.replace("Hmm, that looks right.", "Hmm."))
    folder = tmp_path / "cache"
    folder.mkdir()
    with pytest.raises(SpanError, match=r"trace 't0', sentence 2 \('Hmm, that looks right.'\)"):
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
    assert list(folder.iterdir()) == []


def test_tokenizer_hash_changes_with_the_tokenizer(tmp_path, family_tokenizer):
    from transformers import PreTrainedTokenizerFast

    _family, tokenizer = family_tokenizer
    tokenizer.save_pretrained(tmp_path / "a")
    first = tokenizer_hash(tmp_path / "a")
    assert tokenizer_hash(tmp_path / "a") == first and len(first) == 16
    changed = PreTrainedTokenizerFast.from_pretrained(tmp_path / "a")
    changed.add_tokens(["<extra_token>"])
    changed.save_pretrained(tmp_path / "b")
    assert tokenizer_hash(tmp_path / "b") != first
