"""The one tokenizer policy of the sft domain, used by generation, critic, masking, training and
evaluation, so every step sees a prompt as the same ids.

- **pad falls back to EOS**: Llama-2/3 and Mistral base tokenizers ship without a pad token. Pad
  positions are always masked (attention mask 0, label -100), so reusing EOS is safe.
- **BOS where the model expects it**: a tokenizer whose default encoding starts with its BOS
  token (Llama family) gets exactly one BOS in front of every prompt; one that adds none (GPT-2,
  Qwen, the demo model) gets none. Text is otherwise encoded as plain text
  (`add_special_tokens=False`): no template, no EOS appended.
- **left padding** for batched generation and next-token scoring, so every row's last real token
  is the last position.
- **no chat template**: it is removed on load (completion mode only), so an accidental
  `apply_chat_template` raises.
"""

from collections.abc import Sequence
from pathlib import Path

from proj_resources.loaders.models import load_tokenizer


class TokenizerPolicyError(ValueError):
    """The tokenizer cannot be used under this policy (e.g. neither a pad nor an EOS token)."""


def load_sft_tokenizer(path: str | Path):
    """The folder's tokenizer with the policy above applied; `shipped_chat_template` records
    whether the folder had a chat template (it is removed, never applied)."""
    tokenizer = load_tokenizer(path)
    tokenizer.shipped_chat_template = bool(getattr(tokenizer, "chat_template", None))
    tokenizer.chat_template = None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise TokenizerPolicyError(
                f"the tokenizer in {path} has neither a pad token nor an EOS token: "
                "batched generation and training need one of them"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def expects_bos(tokenizer) -> bool:
    """True when the tokenizer's own default encoding starts with its BOS token."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Plain-text ids of a prompt, with one BOS in front where the model expects it."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id, *ids] if expects_bos(tokenizer) else ids


def encode_continuation(tokenizer, text: str) -> list[int]:
    """Ids of text that follows a prompt (a completion): plain text, never a BOS or EOS."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_batch(tokenizer, prompts: Sequence[str], device=None) -> dict:
    """Left-padded `input_ids` / `attention_mask` tensors for prompts encoded by `encode_prompt`."""
    tokenizer.padding_side = "left"
    batch = tokenizer.pad(
        {"input_ids": [encode_prompt(tokenizer, p) for p in prompts]},
        padding=True,
        return_tensors="pt",
    )
    return batch.to(device) if device is not None else batch
