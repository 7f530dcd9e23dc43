"""Per-token activations of every sentence from a Hugging Face model.

Encoders (BERT-like) see each sentence alone. Causal (decoder-only) models see each sentence in
the context of its trace: the whole trace is encoded once and each sentence keeps the hidden
states of its own tokens, which depend on everything before it (see token_spans for how tokens are
assigned exactly). Special tokens are dropped and at most `max_tokens` tokens are kept per sentence.
"""

from collections.abc import Callable

import numpy as np
import polars as pl

from proj_assets.probes.token_spans import plan_sentence, plan_trace

CAUSAL_MODEL_TYPES = {
    "gpt2",
    "gptj",
    "gpt_neo",
    "gpt_neox",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "phi",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3",
    "olmo",
    "olmo2",
    "falcon",
    "opt",
    "bloom",
}


def is_causal(config) -> bool:
    archs = config.architectures or []
    return bool(
        getattr(config, "is_decoder", False)
        or config.model_type in CAUSAL_MODEL_TYPES
        or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    )


def resolve_context(config, context: str) -> str:
    """`auto` means trace context for causal models and sentence context for encoders."""
    if context == "auto":
        return "trace" if is_causal(config) else "sentence"
    return context


def check_layers(config, layers: list[int]) -> None:
    n = config.num_hidden_layers
    bad = [layer for layer in layers if not 0 <= layer <= n]
    if bad:
        raise ValueError(
            f"layer(s) {bad} out of range for {config.model_type} with {n} layers: "
            f"use 0 (embeddings) .. {n} (last layer)"
        )


def plan_sentence_mode(
    tokenizer, corpus: pl.DataFrame, max_tokens: int, max_context: int
) -> list[dict]:
    """One encoder input per sentence; its own tokens are the non-special ones (token_spans)."""
    return [
        plan_sentence(tokenizer, text, uid, max_tokens, max_context)
        for uid, text in zip(corpus["uid"].to_list(), corpus["text"].to_list(), strict=False)
    ]


def plan_trace_mode(
    tokenizer, corpus: pl.DataFrame, max_tokens: int, max_context: int
) -> list[dict]:
    """Model inputs per trace: prompt + the trace text as-is (`trace_text`, else the sentences
    joined by spaces), in overlapping windows when longer than `max_context` (token_spans)."""
    plans = []
    for (trace_id,), rows in corpus.sort("sentence_idx").group_by("trace_id", maintain_order=True):
        texts = rows["text"].to_list()
        trace_text = (
            rows["trace_text"][0]
            if "trace_text" in rows.columns and rows["trace_text"][0] is not None
            else " ".join(texts)
        )
        prompt = (rows["prompt"][0] or "") if "prompt" in rows.columns else ""
        plans.extend(
            plan_trace(
                tokenizer,
                trace_id,
                prompt,
                trace_text,
                texts,
                rows["uid"].to_list(),
                max_tokens,
                max_context,
            )
        )
    return plans


def run_plans(
    model,
    plans: list[dict],
    layers: list[int],
    batch_size: int,
    pad_id: int,
    device: str,
    emit: Callable[[int, int, np.ndarray], None],
    progress: Callable[[int, int], None],
) -> None:
    """Forward every planned input (batched, sorted by length) and `emit(layer, uid, tokens)`;
    a sentence's tokens are the hidden states at its planned positions (not assumed contiguous)."""
    import torch

    order = sorted(range(len(plans)), key=lambda i: len(plans[i]["input_ids"]))
    model.eval()
    for b in range(0, len(order), batch_size):
        batch = [plans[i] for i in order[b : b + batch_size]]
        width = max(len(p["input_ids"]) for p in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, plan in enumerate(batch):  # right padding keeps causal positions unchanged
            ids[row, : len(plan["input_ids"])] = torch.tensor(plan["input_ids"])
            mask[row, : len(plan["input_ids"])] = 1
        with torch.inference_mode():
            out = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True
            )
        for layer in layers:
            hidden = out.hidden_states[layer].float().cpu().numpy()
            for row, plan in enumerate(batch):
                for uid, positions in plan["spans"].items():
                    emit(layer, uid, hidden[row, positions])
        progress(min(b + batch_size, len(order)), len(order))


def boundary_tokens(plans: list[dict], corpus: pl.DataFrame) -> dict:
    """Tokens spanning two sentences (token_spans: given to the later one), counted per trace:
    `{"tokens": total, "traces": n, "traces_with_boundary_tokens": m, "per_trace": {trace_id: count > 0}}`."""
    traces = (
        corpus["trace_id"] if "trace_id" in corpus.columns else corpus["uid"].cast(pl.Utf8)
    )  # sentence mode
    trace_of = dict(zip(corpus["uid"].to_list(), traces.to_list(), strict=False))
    per_trace: dict[str, int] = {}
    for plan in plans:
        for uid, n in plan.get("boundary", {}).items():
            if n:
                per_trace[trace_of[uid]] = per_trace.get(trace_of[uid], 0) + n
    return {
        "tokens": sum(per_trace.values()),
        "traces": len(set(trace_of.values())),
        "traces_with_boundary_tokens": len(per_trace),
        "per_trace": per_trace,
    }


def token_lengths(plans: list[dict]) -> dict[int, int]:
    return {uid: len(positions) for plan in plans for uid, positions in plan["spans"].items()}


def extract_into_caches(
    model,
    tokenizer,
    corpus: pl.DataFrame,
    folders: dict,
    specs: dict,
    max_tokens: int,
    context: str,
    max_context: int,
    batch_size: int,
    device: str,
    progress: Callable[[int, int], None],
) -> None:
    """Fill one new cache folder per layer (`folders[layer]`) from a single pass over the corpus.

    `corpus` must carry `uid` (see corpus.with_sentence_uid)."""
    from proj_assets.probes.activation_cache import CacheWriter

    layers = sorted(folders)
    check_layers(model.config, layers)
    if context == "trace":
        plans = plan_trace_mode(tokenizer, corpus, max_tokens, max_context)
    else:
        plans = plan_sentence_mode(tokenizer, corpus, max_tokens, max_context)
    lengths = token_lengths(plans)
    uids = corpus["uid"].to_numpy()
    lens = np.array([lengths[u] for u in uids.tolist()])
    writers = {
        layer: CacheWriter(folders[layer], specs[layer], uids, lens, model.config.hidden_size)
        for layer in layers
    }
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    run_plans(
        model,
        plans,
        layers,
        batch_size,
        pad_id,
        device,
        emit=lambda layer, uid, tokens: writers[layer].put(uid, tokens),
        progress=progress,
    )
    counts = {"boundary_tokens": boundary_tokens(plans, corpus)}
    for writer in writers.values():
        writer.close(counts)


def read_model_config(path: str):
    """config.json as attributes (enough to decide causal vs encoder without importing transformers)."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    raw = json.loads((Path(path) / "config.json").read_text())
    return SimpleNamespace(**{"architectures": None, "is_decoder": False, "model_type": "", **raw})
