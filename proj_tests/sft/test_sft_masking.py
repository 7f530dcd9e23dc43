"""Prompt masking is exact, including tokenizations where joint and separate encodings differ."""

import pytest

from proj_assets.sft.masking import IGNORE_INDEX, collate, encode_example, masking_errors
from proj_assets.sft.prompts import PromptBuilder

TRICKY = [
    ("Instruction: Add 12 and 30.\nAnswer:", " 42\n###"),  # digits after a colon
    (
        "Instruction: Add 12 and 30.\nAnswer: ",
        "42\n###",
    ),  # prompt ends in a space: ' 4' is one token
    ("Answer:", "::: ###\n###"),  # punctuation runs across the boundary
    ("Verdict:", " A\n###"),
    ("Instruction: Capitalize the letters: é ü\nAnswer:", " É Ü\n###"),  # multi-byte characters
]


def test_joint_tokenization_differs_for_a_tricky_case(demo_tokenizer):
    prompt, completion = TRICKY[1]
    joint = demo_tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    separate = demo_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert joint[: len(separate)] != separate  # cutting the joint encoding would mislabel tokens


@pytest.mark.parametrize("prompt,completion", TRICKY)
def test_labels_are_exactly_the_completion_tokens(demo_tokenizer, prompt, completion):
    enc = encode_example(demo_tokenizer, prompt, completion, max_length=128)
    prompt_ids = demo_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert enc.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    kept = [t for t in enc.labels if t != IGNORE_INDEX]
    assert kept == demo_tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert demo_tokenizer.decode(kept) == completion


def test_collated_batch_masks_padding_and_passes_the_checker(demo_tokenizer):
    builder = PromptBuilder(n_shots=1)
    prompts = [builder.answer_prompt(p) for p in ("Add 1 and 2.", "Sort the digits: 9 1 5 3 3 0")]
    completions = [builder.completion(a) for a in ("3", "0 1 3 3 5 9")]
    batch = collate(
        [
            encode_example(demo_tokenizer, p, c, 128)
            for p, c in zip(prompts, completions, strict=False)
        ],
        demo_tokenizer.pad_token_id,
    )
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert masking_errors(demo_tokenizer, prompts, completions, batch) == []


def test_checker_reports_a_leaked_prompt_label(demo_tokenizer):
    prompt, completion = TRICKY[0]
    batch = collate(
        [encode_example(demo_tokenizer, prompt, completion, 128)], demo_tokenizer.pad_token_id
    )
    batch["labels"][0, 0] = batch["input_ids"][0, 0]  # a prompt token leaks into the loss
    errors = masking_errors(demo_tokenizer, [prompt], [completion], batch)
    assert len(errors) == 1 and "unmasked labels are ids" in errors[0]["problem"]


def test_long_prompt_is_cut_from_the_left_and_completion_kept(demo_tokenizer):
    prompt, completion = "Instruction: " + "a " * 200 + "\nAnswer:", " b\n###"
    enc = encode_example(demo_tokenizer, prompt, completion, max_length=32)
    assert len(enc.input_ids) == 32
    assert demo_tokenizer.decode([t for t in enc.labels if t != IGNORE_INDEX]) == completion
    with pytest.raises(ValueError, match="does not fit max_length"):
        encode_example(demo_tokenizer, "x", " a" * 40, max_length=16)
