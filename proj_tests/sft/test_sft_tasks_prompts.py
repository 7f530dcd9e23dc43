"""Task generators and solvers, the canonical prompt builder, and the demo pretraining corpus."""

import random

import pytest

from proj_assets.sft.completion_model import CHAT_MARKERS
from proj_assets.sft.demo_model import pretraining_documents
from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
from proj_assets.sft.settings import DemoModelSettings
from proj_assets.sft.tasks import (
    TASK_TYPES,
    corrupt_answer,
    lenient_match,
    make_instruction,
    make_instructions,
    strict_match,
)


def test_references_are_what_the_instruction_asks():
    rev = make_instruction("reverse", 1, 0)
    letters = rev.instruction.split(": ", 1)[1].split()
    assert rev.reference.split() == letters[::-1]
    add = make_instruction("add", 1, 0)
    a, b = (int(x) for x in add.instruction.removeprefix("Add ").rstrip(".").split(" and "))
    assert int(add.reference) == a + b
    srt = make_instruction("sort", 1, 3)
    assert srt.reference.split() == sorted(srt.instruction.split(": ", 1)[1].split())
    up = make_instruction("upper", 1, 2)
    assert up.reference == up.instruction.split(": ", 1)[1].upper()
    cnt = make_instruction("count", 1, 4)
    assert int(cnt.reference) == len(cnt.instruction.split(": ", 1)[1].split())


def test_generation_is_deterministic_and_balanced():
    items = make_instructions(50, seed=3)
    assert items == make_instructions(50, seed=3) and items != make_instructions(50, seed=4)
    assert {t: sum(i.task_type == t for i in items) for t in TASK_TYPES} == {
        t: 10 for t in TASK_TYPES
    }
    with pytest.raises(ValueError, match="unknown task type"):
        make_instruction("translate", 0, 0)


def test_corrupted_answers_are_wrong_and_the_two_judges_differ_on_format():
    rng = random.Random(0)
    for item in make_instructions(100, seed=9):
        wrong = corrupt_answer(item, rng)
        assert not strict_match(wrong, item.reference) and not lenient_match(wrong, item.reference)
        assert strict_match(f"  {item.reference} ", item.reference)
        for chatty in (
            f" The answer is {item.reference}.",
            f" {item.reference}\nWe did it.",
            f" {item.reference}.",
        ):
            assert lenient_match(chatty, item.reference) and not strict_match(
                chatty, item.reference
            )
    assert (
        not lenient_match(" 142", "42")
        and not lenient_match(" a b", "a b c")
        and not lenient_match("", "")
    )


def test_prompts_are_plain_completion_text():
    builder = PromptBuilder(n_shots=3, critic_shots=2)
    prompt = builder.answer_prompt("Add 1 and 2.")
    assert (
        prompt.endswith("Instruction: Add 1 and 2.\nAnswer:") and prompt.count(STOP_SEQUENCE) == 3
    )
    assert not any(m in prompt for m in CHAT_MARKERS)
    assert builder.critic_prompt("Add 1 and 2.", " 3").endswith(
        "Answer: 3\nIs the answer correct? A) yes B) no\nVerdict:"
    )
    assert builder.completion(" 3 ") == " 3" + STOP_SEQUENCE
    assert builder.template_hash() == PromptBuilder(n_shots=3, critic_shots=2).template_hash()
    assert builder.template_hash() != PromptBuilder(n_shots=2, critic_shots=2).template_hash()


def test_pretraining_corpus_has_its_documented_mess():
    cfg = DemoModelSettings(
        n_documents=400, answer_noise=0.2, critic_fraction=0.3, unseparated_fraction=0.1
    )
    docs = pretraining_documents(cfg)
    assert docs == pretraining_documents(cfg)
    unseparated = sum(STOP_SEQUENCE not in d for d in docs) / len(docs)
    assert 0.05 < unseparated < 0.15
    assert any("Verdict: B" in d for d in docs) and any("Verdict: A" in d for d in docs)
    assert any("A) no B) yes" in d for d in docs) and any("A) yes B) no" in d for d in docs)


def test_each_document_keeps_one_answer_format():
    from proj_assets.sft.demo_model import EXPLANATIONS

    cfg = DemoModelSettings(n_documents=300, critic_fraction=0.0, unseparated_fraction=0.0)
    styles = []
    for doc in pretraining_documents(cfg):
        answers = [
            b.split("Answer: ", 1)[1] for b in doc.split(STOP_SEQUENCE + "\n") if "Answer: " in b
        ]
        kinds = {
            "sentence" if a.startswith("The answer is") else "explained" if "\n" in a else "plain"
            for a in answers
        }
        assert len(kinds) == 1, doc
        styles.append(kinds.pop())
    shares = {s: styles.count(s) / len(styles) for s in ("plain", "sentence", "explained")}
    assert 0.1 < shares["plain"] < 0.3 and shares["sentence"] > 0.3 and shares["explained"] > 0.3
    assert any(e in d for d in pretraining_documents(cfg) for e in EXPLANATIONS.values())
