"""The five demo instruction types: generators, reference solvers and answer checkers.

Every type's answer is computable by a program, so correctness never needs a model as judge, and
every answer is one line. Payloads are
space-separated symbols (`k o t a l`, `5 2 9`) so a tokenizer keeps one token per symbol, which a
tiny model can learn in minutes. Each instruction is generated from its own seeded RNG, so the same
(seed, index) always gives the same item.
"""

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

TASK_TYPES = ("add", "reverse", "sort", "count", "upper")


@dataclass(frozen=True)
class Instruction:
    task_type: str
    instruction: str
    reference: str  # the program-computed correct answer


def _letters(rng: random.Random, low: int = 3, high: int = 6) -> list[str]:
    return [rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high))]


def _make_add(rng: random.Random) -> Instruction:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return Instruction("add", f"Add {a} and {b}.", str(a + b))


def _make_reverse(rng: random.Random) -> Instruction:
    letters = _letters(rng)
    return Instruction(
        "reverse", f"Reverse the letters: {' '.join(letters)}", " ".join(reversed(letters))
    )


def _make_sort(rng: random.Random) -> Instruction:
    digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 6))]
    return Instruction("sort", f"Sort the digits: {' '.join(digits)}", " ".join(sorted(digits)))


def _make_count(rng: random.Random) -> Instruction:
    letters = _letters(rng, 2, 8)
    return Instruction("count", f"Count the letters: {' '.join(letters)}", str(len(letters)))


def _make_upper(rng: random.Random) -> Instruction:
    letters = _letters(rng)
    return Instruction(
        "upper", f"Capitalize the letters: {' '.join(letters)}", " ".join(letters).upper()
    )


MAKERS: dict[str, Callable[[random.Random], Instruction]] = {
    "add": _make_add,
    "reverse": _make_reverse,
    "sort": _make_sort,
    "count": _make_count,
    "upper": _make_upper,
}


def make_instruction(task_type: str, seed: int, index: int) -> Instruction:
    """The `index`-th instruction of `task_type` for `seed` (independent of every other item)."""
    if task_type not in MAKERS:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {TASK_TYPES}")
    return MAKERS[task_type](random.Random(f"{seed}/{task_type}/{index}"))


def make_instructions(n: int, seed: int, types: tuple[str, ...] = TASK_TYPES) -> list[Instruction]:
    """`n` instructions cycling through `types` (so the mix is balanced)."""
    return [make_instruction(types[i % len(types)], seed, i // len(types)) for i in range(n)]


def _symbols(text: str) -> list[str]:
    return text.split()


def strict_match(answer_text: str, reference: str) -> bool:
    """Strict exact match: the whole answer, whitespace-normalised, equals the solver's answer
    (nothing before or after it: every task here has a one-line answer)."""
    return _symbols(answer_text) == _symbols(reference)


def lenient_match(answer_text: str, reference: str) -> bool:
    """Lenient judge: the reference's symbols appear, in order and contiguous, on the first line of
    the answer once punctuation around words is ignored (accepts `The answer is 42.` and `42` followed
    by an explanation line)."""
    first = answer_text.strip().split("\n", 1)[0]
    words, ref = [w.strip(".,;:!?") for w in first.split()], _symbols(reference)
    return bool(ref) and any(
        words[i : i + len(ref)] == ref for i in range(len(words) - len(ref) + 1)
    )


def corrupt_answer(item: Instruction, rng: random.Random) -> str:
    """A plausible wrong answer (an off-by-one sum, a swapped symbol, a wrong case): used to put
    realistic noise in the demo pretraining text and to plant bad answers in tests."""
    ref = item.reference
    symbols = ref.split(" ")
    if item.task_type in ("add", "count"):
        return str(int(ref) + rng.choice([-2, -1, 1, 2, 10]))
    if len(symbols) >= 2 and len(set(symbols)) > 1:
        while True:
            i, j = rng.sample(range(len(symbols)), 2)
            if symbols[i] != symbols[j]:
                symbols[i], symbols[j] = symbols[j], symbols[i]
                return " ".join(symbols)
    return (
        " ".join(symbols[:-1] + [symbols[-1].swapcase()]) if symbols[-1].isalpha() else ref + " 0"
    )
