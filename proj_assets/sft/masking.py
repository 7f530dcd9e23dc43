"""Tokenizing SFT examples so only the completion is learned: labels are -100 on prompt and padding.

Prompt and completion are tokenized *separately* and concatenated. Tokenizing the joined text and
cutting at a character offset breaks when a token straddles the boundary (e.g. `: 8` merged into
one token); separate tokenization makes the mask exact by construction and gives the model at
training time exactly the prompt ids it will see at generation time (both through tokenizer.py:
BOS in front where the model expects it, plain text otherwise).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from proj_assets.sft.tokenizer import encode_continuation, encode_prompt, expects_bos

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def encode_example(tokenizer, prompt: str, completion: str, max_length: int) -> Encoded:
    """Ids and labels for one example; an over-long prompt is cut from the left (after its BOS),
    never the completion."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    completion_ids = encode_continuation(tokenizer, completion)
    if not completion_ids:
        raise ValueError(f"empty completion for prompt ending {prompt[-40:]!r}")
    if len(completion_ids) >= max_length:
        raise ValueError(
            f"completion of {len(completion_ids)} tokens does not fit max_length {max_length}: "
            f"{completion[:60]!r}"
        )
    excess = len(prompt_ids) + len(completion_ids) - max_length
    if excess > 0:
        keep = 1 if expects_bos(tokenizer) else 0
        prompt_ids = prompt_ids[:keep] + prompt_ids[keep + excess :]
    return Encoded(prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids)


def collate(examples: Sequence[Encoded], pad_token_id: int) -> dict:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        pad = width - len(e.input_ids)
        ids.append(e.input_ids + [pad_token_id] * pad)
        mask.append([1] * len(e.input_ids) + [0] * pad)
        labels.append(e.labels + [IGNORE_INDEX] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def masking_errors(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], batch: dict
) -> list[dict]:
    """Rows where a collated batch's labels are not exactly the completion tokens, compared as token
    ids (decoded text would differ where a decoder drops a leading space, as SentencePiece's does):
    a padding position that carries a label, a label that differs from its input id, unmasked labels
    that are not the completion's ids, a masked span that is not the prompt's ids (or their tail
    after BOS when the prompt was cut), or a missing BOS where the model expects one."""
    keep = 1 if expects_bos(tokenizer) else 0
    errors = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        labels = batch["labels"][i].tolist()
        mask = batch["attention_mask"][i].tolist()
        ids = [t for t, m in zip(batch["input_ids"][i].tolist(), mask, strict=False) if m]
        first = next((j for j, lab in enumerate(labels) if lab != IGNORE_INDEX), len(labels))
        kept, expected = (
            [t for t in labels if t != IGNORE_INDEX],
            encode_continuation(tokenizer, completion),
        )
        prompt_ids, masked = encode_prompt(tokenizer, prompt), ids[:first]
        problems = []
        if any(lab != IGNORE_INDEX for lab, m in zip(labels, mask, strict=False) if m == 0):
            problems.append("padding position carries a label")
        if any(
            lab != IGNORE_INDEX and lab != tok
            for lab, tok in zip(labels, batch["input_ids"][i].tolist(), strict=False)
        ):
            problems.append("label differs from its input id")
        if keep and (not ids or ids[0] != tokenizer.bos_token_id):
            problems.append("the prompt does not start with the BOS token the model expects")
        tail = (
            len(masked) - keep
        )  # prompt ids kept after BOS (all of them unless the prompt was cut)
        if (
            not 0 < tail <= len(prompt_ids) - keep
            or masked != prompt_ids[:keep] + prompt_ids[len(prompt_ids) - tail :]
        ):
            problems.append("masked ids are not the prompt's ids")
        if kept != expected:
            problems.append(
                f"unmasked labels are ids {kept[:12]} ({tokenizer.decode(kept)!r}), the completion's "
                f"are {expected[:12]}"
            )
        if problems:
            errors.append(
                {
                    "row": i,
                    "prompt_tail": prompt[-30:],
                    "completion": completion,
                    "problem": "; ".join(problems),
                }
            )
    return errors
