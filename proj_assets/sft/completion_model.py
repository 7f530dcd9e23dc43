"""Loading a causal LM in completion mode, and the sentinel test that it behaves as one.

Completion mode is enforced, not just intended: the loaded tokenizer's chat template is removed, so
any accidental `apply_chat_template` raises instead of silently wrapping prompts in role markup.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proj_assets.sft.generation import generate
from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
from proj_assets.sft.tokenizer import load_sft_tokenizer
from proj_resources.loaders.models import load_causal_lm

# Markup that only chat-formatted text contains; a base model continuing plain text never needs it.
CHAT_MARKERS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|start_header_id|>",
    "<|eot_id|>",
    "[INST]",
    "[/INST]",
    "<start_of_turn>",
    "<|assistant|>",
    "<|user|>",
    "<|system|>",
    "assistant\n",
    "<<SYS>>",
)
SENTINEL_INSTRUCTIONS = (
    "Add 12 and 30.",
    "Reverse the letters: a b c",
    "Capitalize the letters: o k",
)


@dataclass
class CompletionModel:
    # a transformers causal LM and its tokenizer (the loaders are untyped; used by duck typing)
    model: Any
    tokenizer: Any
    shipped_chat_template: bool  # the folder's tokenizer had one (it is removed, never applied)


def load_completion_model(path: str | Path, device: str = "cpu") -> CompletionModel:
    tokenizer = load_sft_tokenizer(path)
    return CompletionModel(
        load_causal_lm(path, device=device).eval(), tokenizer, tokenizer.shipped_chat_template
    )


def sentinel_failures(
    cm: CompletionModel, builder: PromptBuilder, max_new_tokens: int = 16
) -> list[dict]:
    """Sentinel prompts that do not behave as plain continuation, with the reason.

    A sentinel fails when its tokenization adds ids the plain text does not contain (a template or
    role/BOS wrapping), when a chat template is still attached, or when the greedy continuation
    emits chat markup.
    """
    tok = cm.tokenizer
    prompts = [builder.answer_prompt(s) for s in SENTINEL_INSTRUCTIONS]
    outputs = generate(
        cm.model, tok, prompts, max_new_tokens=max_new_tokens, stop=[STOP_SEQUENCE], do_sample=False
    )
    failures = []
    for instruction, prompt, out in zip(SENTINEL_INSTRUCTIONS, prompts, outputs, strict=False):
        ids = tok(prompt)["input_ids"]  # with the tokenizer's default special-token handling
        plain = tok(prompt, add_special_tokens=False)["input_ids"]
        reasons = []
        if getattr(tok, "chat_template", None):
            reasons.append("chat template attached")
        if tok.decode(plain) != prompt:
            reasons.append("prompt does not round-trip through the tokenizer")
        extra = [t for t in ids if t not in plain]
        if extra and extra != [tok.bos_token_id]:
            reasons.append(f"tokenizer adds ids {extra} beyond the plain text")
        markers = [m for m in CHAT_MARKERS if m in out.completion]
        if markers:
            reasons.append(f"continuation contains chat markup {markers}")
        if reasons:
            failures.append(
                {
                    "sentinel": instruction,
                    "continuation": out.completion,
                    "reason": "; ".join(reasons),
                }
            )
    return failures
