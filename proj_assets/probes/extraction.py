"""Per-token activations of every sentence from a Hugging Face model.

Encoders (BERT-like) see each sentence alone. Causal (decoder-only) models see each sentence in
the context of its trace: the whole trace is encoded once and each sentence keeps the hidden
states of its own tokens, which depend on everything before it. Special tokens are dropped and at
most `max_tokens` tokens are kept per sentence.
"""

from collections.abc import Callable

import numpy as np
import polars as pl

CAUSAL_MODEL_TYPES = {"gpt2", "gptj", "gpt_neo", "gpt_neox", "llama", "mistral", "mixtral", "qwen2", "qwen3",
                      "phi", "phi3", "gemma", "gemma2", "gemma3", "olmo", "olmo2", "falcon", "opt", "bloom"}


def is_causal(config) -> bool:
    archs = config.architectures or []
    return bool(getattr(config, "is_decoder", False) or config.model_type in CAUSAL_MODEL_TYPES
                or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs))


def resolve_context(config, context: str) -> str:
    """`auto` means trace context for causal models and sentence context for encoders."""
    if context == "auto":
        return "trace" if is_causal(config) else "sentence"
    return context


def check_layers(config, layers: list[int]) -> None:
    n = config.num_hidden_layers
    bad = [layer for layer in layers if not 0 <= layer <= n]
    if bad:
        raise ValueError(f"layer(s) {bad} out of range for {config.model_type} with {n} layers: "
                         f"use 0 (embeddings) .. {n} (last layer)")


def plan_sentence_mode(tokenizer, corpus: pl.DataFrame, max_tokens: int) -> list[dict]:
    """One encoder input per sentence (with its special tokens); its own tokens are the span
    between them."""
    enc = tokenizer(corpus["text"].to_list(), add_special_tokens=True, truncation=True,
                    max_length=max_tokens + 2, return_special_tokens_mask=True)
    plans = []
    for uid, ids, special in zip(corpus["uid"].to_list(), enc["input_ids"], enc["special_tokens_mask"]):
        own = [i for i, flag in enumerate(special) if not flag] or [0]
        plans.append({"input_ids": ids, "spans": {uid: (own[0], min(len(own), max_tokens))}})
    return plans


def plan_trace_mode(tokenizer, corpus: pl.DataFrame, max_tokens: int, max_context: int) -> list[dict]:
    """One model input per trace (sentences joined by spaces); each sentence owns the tokens
    whose characters fall inside it."""
    plans = []
    for trace_id, rows in corpus.group_by("trace_id", maintain_order=True):
        rows = rows.sort("sentence_idx")
        texts, bounds, pos = rows["text"].to_list(), [], 0
        for text in texts:
            bounds.append((pos, pos + len(text)))
            pos += len(text) + 1
        enc = tokenizer(" ".join(texts), return_offsets_mapping=True, truncation=True, max_length=max_context)
        spans = {}
        for uid, (lo, hi) in zip(rows["uid"].to_list(), bounds):
            positions = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and lo <= s < hi]
            if not positions:
                raise ValueError(f"trace {trace_id[0]!r}: sentence uid {uid} has no tokens within the first "
                                 f"{max_context} tokens of its trace; raise probes.model.max_context_tokens")
            spans[uid] = (positions[0], min(len(positions), max_tokens))
        plans.append({"input_ids": enc["input_ids"], "spans": spans})
    return plans


def run_plans(model, plans: list[dict], layers: list[int], batch_size: int, pad_id: int, device: str,
              emit: Callable[[int, int, np.ndarray], None], progress: Callable[[int, int], None]) -> None:
    """Forward every planned input (batched, sorted by length) and `emit(layer, uid, tokens)`.

    Token spans are contiguous: a causal sentence's tokens follow each other in its trace.
    """
    import torch

    order = sorted(range(len(plans)), key=lambda i: len(plans[i]["input_ids"]))
    model.eval()
    for b in range(0, len(order), batch_size):
        batch = [plans[i] for i in order[b:b + batch_size]]
        width = max(len(p["input_ids"]) for p in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, plan in enumerate(batch):  # right padding keeps causal positions unchanged
            ids[row, :len(plan["input_ids"])] = torch.tensor(plan["input_ids"])
            mask[row, :len(plan["input_ids"])] = 1
        with torch.inference_mode():
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        for layer in layers:
            hidden = out.hidden_states[layer].float().cpu().numpy()
            for row, plan in enumerate(batch):
                for uid, (start, length) in plan["spans"].items():
                    emit(layer, uid, hidden[row, start:start + length])
        progress(min(b + batch_size, len(order)), len(order))


def token_lengths(plans: list[dict]) -> dict[int, int]:
    return {uid: length for plan in plans for uid, (_start, length) in plan["spans"].items()}


def extract_into_caches(model, tokenizer, corpus: pl.DataFrame, folders: dict, specs: dict, max_tokens: int,
                        context: str, max_context: int, batch_size: int, device: str,
                        progress: Callable[[int, int], None]) -> None:
    """Fill one new cache folder per layer (`folders[layer]`) from a single pass over the corpus.

    `corpus` must carry `uid` (see corpus.with_sentence_uid)."""
    from proj_assets.probes.activation_cache import CacheWriter

    layers = sorted(folders)
    check_layers(model.config, layers)
    if context == "trace":
        plans = plan_trace_mode(tokenizer, corpus, max_tokens, max_context)
    else:
        plans = plan_sentence_mode(tokenizer, corpus, max_tokens)
    lengths = token_lengths(plans)
    uids = corpus["uid"].to_numpy()
    lens = np.array([lengths[u] for u in uids.tolist()])
    writers = {layer: CacheWriter(folders[layer], specs[layer], uids, lens, model.config.hidden_size)
               for layer in layers}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    run_plans(model, plans, layers, batch_size, pad_id, device,
              emit=lambda layer, uid, tokens: writers[layer].put(uid, tokens), progress=progress)
    for writer in writers.values():
        writer.close()


def read_model_config(path: str):
    """config.json as attributes (enough to decide causal vs encoder without importing transformers)."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    raw = json.loads((Path(path) / "config.json").read_text())
    return SimpleNamespace(**{"architectures": None, "is_decoder": False, "model_type": "", **raw})
