"""A single-token A/B log-prob critic: no sampling, one forward pass per example.

The critic prompt (see prompts.PromptBuilder.critic_prompt) asks whether an answer is correct and
ends at `Verdict:`; the margin is log p(` A`) - log p(` B`) for the next token. A positive margin
means the model judges the answer correct.
"""

from collections.abc import Callable, Sequence

from proj_assets.sft.prompts import CRITIC_TOKENS


def verdict_token_ids(tokenizer, tokens: Sequence[str] = CRITIC_TOKENS) -> list[int]:
    """The id of each verdict token; each must encode to exactly one token."""
    ids = []
    for tok in tokens:
        encoded = tokenizer(tok, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ValueError(f"critic verdict {tok!r} encodes to {len(encoded)} tokens {encoded} with this "
                             "tokenizer; the A/B critic needs single-token verdicts")
        ids.append(encoded[0])
    return ids


def next_token_logprobs(model, tokenizer, prompts: Sequence[str], token_ids: Sequence[int],
                        batch_size: int = 64, log: Callable[[str], None] | None = None) -> list[list[float]]:
    """log p(token | prompt) for each prompt and each token id (left-padded batches)."""
    import torch

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[list[float]] = []
    for lo in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[lo: lo + batch_size]), return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(**batch, position_ids=positions).logits[:, -1, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)[:, list(token_ids)]
        out.extend(logprobs.tolist())
        if log is not None:
            log(f"critic scored {len(out)}/{len(prompts)}")
    return out


def critic_margins(model, tokenizer, prompts: Sequence[str], batch_size: int = 64,
                   log: Callable[[str], None] | None = None) -> list[float]:
    """log p(A) - log p(B) per critic prompt."""
    good, bad = verdict_token_ids(tokenizer)
    return [a - b for a, b in next_token_logprobs(model, tokenizer, prompts, [good, bad], batch_size, log)]
