"""Token plans: each sentence owns exactly its own tokens, in sentence and in trace context."""

import polars as pl
import pytest

from proj_assets.probes.extraction import (
    is_causal,
    plan_sentence_mode,
    plan_trace_mode,
    read_model_config,
)
from proj_assets.probes.settings import ModelSettings


@pytest.fixture(scope="module")
def tokenizer():
    from proj_resources.models import load_tokenizer

    return load_tokenizer(ModelSettings().resolved_path())


CORPUS = pl.DataFrame(
    {
        "uid": [0, 1, 2],
        "trace_id": ["t", "t", "t"],
        "sentence_idx": [0, 1, 2],
        "text": ["Let me plan first.", "Three times four is twelve.", "Wait, check again."],
    }
)


@pytest.mark.parametrize("mode", ["sentence", "trace"])
def test_each_sentence_owns_its_own_tokens(tokenizer, mode):
    plans = (
        plan_trace_mode(tokenizer, CORPUS, 24, 512)
        if mode == "trace"
        else plan_sentence_mode(tokenizer, CORPUS, 24, 512)
    )
    spans = [
        (plan["input_ids"], uid, positions)
        for plan in plans
        for uid, positions in plan["spans"].items()
    ]
    assert sorted(uid for _ids, uid, _span in spans) == [0, 1, 2]
    for ids, uid, positions in spans:
        decoded = tokenizer.decode([ids[p] for p in positions])
        assert decoded.replace(" ", "") == CORPUS["text"][uid].lower().replace(" ", "")


def test_window_too_small_for_a_sentence_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="max_context_tokens"):
        plan_trace_mode(tokenizer, CORPUS, 24, 8)


def test_minilm_is_an_encoder_and_a_llama_config_is_causal(tmp_path):
    assert not is_causal(read_model_config(ModelSettings().resolved_path()))
    (tmp_path / "config.json").write_text(
        '{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}'
    )
    assert is_causal(read_model_config(str(tmp_path)))


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory, tokenizer):
    """A tiny random GPT-2 saved as safetensors, sharing MiniLM's (fast) tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size, n_embd=16, n_layer=2, n_head=2, n_positions=128
    )
    GPT2Model(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _extract(path, corpus, tmp_path, name):
    from proj_assets.probes.activation_cache import open_cache
    from proj_assets.probes.extraction import extract_into_caches, resolve_context
    from proj_resources.models import load_encoder, load_tokenizer

    model, tok = load_encoder(path), load_tokenizer(path)
    context = resolve_context(model.config, "auto")
    folder = tmp_path / name
    folder.mkdir()
    extract_into_caches(
        model,
        tok,
        corpus,
        {2: folder},
        {2: {"layer": 2}},
        24,
        context,
        128,
        4,
        "cpu",
        progress=lambda done, total: None,
    )
    array, index, _ = open_cache(folder)
    return context, {u: array[o : o + n] for u, o, n in index.iter_rows()}


def test_causal_model_encodes_sentences_in_trace_context(tiny_causal, tmp_path):
    import numpy as np

    context, full = _extract(tiny_causal, CORPUS, tmp_path, "full")
    assert context == "trace"
    _, first_only = _extract(tiny_causal, CORPUS.head(1), tmp_path, "first")
    _, second_alone = _extract(
        tiny_causal, CORPUS.slice(1, 1).with_columns(sentence_idx=0), tmp_path, "second"
    )
    np.testing.assert_allclose(
        full[0], first_only[0], atol=2e-3
    )  # causal: later text does not leak back
    assert full[1].shape == second_alone[1].shape
    assert not np.allclose(
        full[1], second_alone[1], atol=1e-2
    )  # earlier sentences change the encoding
