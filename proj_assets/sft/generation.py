"""Batched completion-mode generation with stop sequences and an explicit finish reason.

Prompts are encoded by the domain's tokenizer policy (tokenizer.py: plain text, BOS where the model
expects it, left padding): no chat template, no role tokens.
`finish_reason` is `stop` (a stop sequence ended it; the completion is cut before it), `eos` (the
model emitted end-of-text) or `length` (it used all `max_new_tokens` without stopping).
"""

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proj_assets.sft.tokenizer import prompt_batch


@dataclass(frozen=True)
class Generation:
    completion: str  # text before the first stop sequence
    finish_reason: str  # stop | eos | length
    n_tokens: int  # generated tokens, including the stop sequence's tokens
    seed: int | None = None  # the torch seed its batch was sampled with (None when greedy)


def finish(
    text: str, n_tokens: int, hit_eos: bool, stop: Sequence[str], max_new_tokens: int
) -> Generation:
    """Cut `text` at its first stop sequence and say why generation ended."""
    cuts = [text.index(s) for s in stop if s in text]
    if cuts:
        return Generation(text[: min(cuts)], "stop", n_tokens)
    if hit_eos:
        return Generation(text, "eos", n_tokens)
    return Generation(text, "length" if n_tokens >= max_new_tokens else "eos", n_tokens)


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    stop: Sequence[str],
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    log: Callable[[str], None] | None = None,
) -> list[Generation]:
    """One Generation per prompt. Greedy when `do_sample` is False (deterministic)."""
    import torch

    device = next(model.parameters()).device
    results: list[Generation] = []
    start = time.perf_counter()
    for lo in range(0, len(prompts), batch_size):
        batch = prompt_batch(tokenizer, prompts[lo : lo + batch_size], device)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
            if do_sample
            else {"do_sample": False}
        )
        torch.manual_seed(seed + lo)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                stop_strings=list(stop),
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        for row in out[:, batch["input_ids"].shape[1] :].tolist():
            ends = [
                i
                for i, t in enumerate(row)
                if t in (tokenizer.eos_token_id, tokenizer.pad_token_id)
            ]
            n = ends[0] if ends else len(row)
            hit_eos = bool(ends) and row[ends[0]] == tokenizer.eos_token_id
            text = tokenizer.decode(row[:n], skip_special_tokens=True)
            done = finish(text, n + int(hit_eos), hit_eos, stop, max_new_tokens)
            results.append(dataclasses.replace(done, seed=seed + lo) if do_sample else done)
        if log is not None:
            n_done = len(results)
            rate = n_done / (time.perf_counter() - start)
            log(
                f"generated {n_done}/{len(prompts)} ({rate:.1f}/s, ETA {(len(prompts) - n_done) / rate:.0f}s)"
            )
    return results
