"""The one canonical completion-prompt builder, used by every step (generation, critic, training,
evaluation). Completion mode only: plain text a base model continues, never a chat template.

A block is

    Instruction: <instruction>
    Answer: <answer>
    ###

Prompts end right after `Answer:`; the completion is ` <answer>` and the stop sequence `\\n###`
ends it. The critic block adds a question whose answer is one token, ` A` or ` B`; the question
comes in both option orders (`A) yes B) no` and `A) no B) yes`) so a scorer can cancel the model's
prior for a letter by scoring both (critic.py).
"""

import random
from dataclasses import dataclass

from proj_assets.sft.tasks import TASK_TYPES, Instruction, corrupt_answer, make_instruction
from proj_resources.hashing import canonical_hash

SEPARATOR = "###"
STOP_SEQUENCE = "\n" + SEPARATOR
INSTRUCTION_TAG = "Instruction:"
ANSWER_TAG = "Answer:"
CRITIC_QUESTIONS = {
    True: "Is the answer correct? A) yes B) no",
    False: "Is the answer correct? A) no B) yes",
}
VERDICT_TAG = "Verdict:"
CRITIC_TOKENS = (" A", " B")  # the two option letters: each must be a single token
# Text a completion must never contain: it means the model began a new block (see qc.py).
SCAFFOLDING = (INSTRUCTION_TAG, ANSWER_TAG, VERDICT_TAG, SEPARATOR)
SHOT_SEED = 977  # few-shot examples come from their own seed, never from data or test seeds


def answer_block(instruction: str, answer: str) -> str:
    return f"{INSTRUCTION_TAG} {instruction}\n{ANSWER_TAG} {answer}{STOP_SEQUENCE}\n"


def yes_token(yes_first: bool) -> str:
    """The option letter that means "correct" when the question lists yes first (or not)."""
    return CRITIC_TOKENS[0] if yes_first else CRITIC_TOKENS[1]


def critic_block(
    instruction: str, answer: str, verdict_correct: bool, yes_first: bool = True
) -> str:
    verdict = yes_token(yes_first) if verdict_correct else yes_token(not yes_first)
    return (
        f"{INSTRUCTION_TAG} {instruction}\n{ANSWER_TAG} {answer}\n{CRITIC_QUESTIONS[yes_first]}\n"
        f"{VERDICT_TAG}{verdict}{STOP_SEQUENCE}\n"
    )


def few_shot_items(n_shots: int) -> list[Instruction]:
    """Fixed demonstration items, cycling through the task types."""
    return [
        make_instruction(TASK_TYPES[i % len(TASK_TYPES)], SHOT_SEED, i // len(TASK_TYPES))
        for i in range(n_shots)
    ]


@dataclass(frozen=True)
class PromptBuilder:
    """Builds answer prompts (for generation, training, evaluation) and critic prompts."""

    n_shots: int = 3
    critic_shots: int = 2

    def answer_prompt(self, instruction: str) -> str:
        shots = "".join(
            answer_block(s.instruction, s.reference) for s in few_shot_items(self.n_shots)
        )
        return f"{shots}{INSTRUCTION_TAG} {instruction}\n{ANSWER_TAG}"

    @staticmethod
    def completion(answer: str) -> str:
        """The training target for an answer: ` <answer>` then the stop sequence."""
        return f" {answer.strip()}{STOP_SEQUENCE}"

    def critic_prompt(self, instruction: str, answer: str, yes_first: bool = True) -> str:
        """Ends at `Verdict:`; demonstrations alternate correct / incorrect answers and use the
        same option order as the question."""
        rng = random.Random(SHOT_SEED)
        shots = []
        for i, item in enumerate(few_shot_items(self.critic_shots)):
            good = i % 2 == 0
            answer_shown = item.reference if good else corrupt_answer(item, rng)
            shots.append(critic_block(item.instruction, answer_shown, good, yes_first))
        return (
            f"{''.join(shots)}{INSTRUCTION_TAG} {instruction}\n{ANSWER_TAG} {answer.strip()}\n"
            f"{CRITIC_QUESTIONS[yes_first]}\n{VERDICT_TAG}"
        )

    def template_hash(self) -> str:
        """Identifies the exact prompt text scheme (tags, shots, stop): stamped on every row."""
        return canonical_hash(
            {
                "answer": self.answer_prompt("{instruction}"),
                "critic": [
                    self.critic_prompt("{instruction}", "{answer}", order)
                    for order in (True, False)
                ],
                "stop": STOP_SEQUENCE,
                "critic_tokens": CRITIC_TOKENS,
            }
        )
