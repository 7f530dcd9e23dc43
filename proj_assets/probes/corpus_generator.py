"""A seeded generator of reasoning traces for the demo corpus.

Each group is a problem (a topic with its own quantities); each trace works on that problem in
sentences drawn from the "thought anchors" taxonomy (Bogdan et al. 2025): problem setup, plan
generation, fact retrieval, active computation, uncertainty management, result consolidation,
self checking, final answer emission. A trace starts with setup and a plan, then cycles through
retrieval / computation / uncertainty / checking / consolidation, and ends with the answer.

Labels ("anchor" or not) are drawn from a logistic model:
  logit = CATEGORY_LOGIT[category] + POSITION_WEIGHT * (0.5 - relative_position)
so what a sentence says (its category, visible only in the text) matters most, and its position
matters more weakly (early sentences are more often anchors, and planning happens early, so
position alone is a real baseline). Then a fraction `label_noise` of labels is flipped.
"""

import numpy as np
import polars as pl

CATEGORY_LOGIT = {
    "problem_setup": -1.4,
    "plan_generation": 2.2,
    "fact_retrieval": -1.6,
    "active_computation": -2.0,
    "uncertainty_management": 1.8,
    "result_consolidation": -0.6,
    "self_checking": 0.6,
    "final_answer_emission": -1.0,
}
POSITION_WEIGHT = 1.5

TEMPLATES = {
    "problem_setup": [
        "We are asked to find the {q} of the {o}.",
        "The problem gives a {o} with {a} {u}.",
        "So the question is about the {q} when there are {a} {u}.",
    ],
    "plan_generation": [
        "Let me plan: first compute the {q}, then compare it with {b}.",
        "My strategy is to split the {o} into {a} parts and handle each one.",
        "I think the best approach is to set up an equation for the {q}.",
        "A plan: work backwards from the answer and check the {q}.",
    ],
    "fact_retrieval": [
        "Recall that the {q} of a {o} equals {a} times {b}.",
        "A {o} has {b} {u} by definition.",
        "It is known that {a} {u} make one {o}.",
    ],
    "active_computation": [
        "{a} times {b} is {c}.",
        "Adding {a} and {b} gives {c}.",
        "Subtracting, {c} minus {b} leaves {a}.",
        "Dividing {c} by {a} we get {b}.",
    ],
    "uncertainty_management": [
        "Wait, that does not look right, maybe I made a mistake.",
        "Hmm, I am not sure the {q} should be {c}; let me reconsider.",
        "Actually, I should go back: the {o} might have {b} {u} instead.",
        "Hold on, this contradicts what we found for the {q}.",
    ],
    "result_consolidation": [
        "So far we have the {q} equal to {c}.",
        "Putting this together, the {o} has {c} {u}.",
        "Combining both parts gives {c} in total.",
    ],
    "self_checking": [
        "Let me verify: {a} times {b} is indeed {c}.",
        "Checking again, the {q} of {c} is consistent.",
        "Double-checking the {u}: {c} matches the problem.",
    ],
    "final_answer_emission": [
        "Therefore the answer is {c}.",
        "The final answer is {c} {u}.",
        "So the {q} of the {o} is {c}.",
    ],
}
TOPICS = [
    ("area", "garden", "square meters"),
    ("price", "basket", "apples"),
    ("speed", "train", "kilometers"),
    ("volume", "tank", "liters"),
    ("perimeter", "field", "meters"),
    ("cost", "order", "dollars"),
    ("weight", "crate", "kilograms"),
    ("time", "journey", "hours"),
    ("count", "library", "books"),
    ("height", "tower", "floors"),
]
MIDDLE = [
    "fact_retrieval",
    "active_computation",
    "uncertainty_management",
    "result_consolidation",
    "self_checking",
]
MIDDLE_P = [0.22, 0.34, 0.16, 0.14, 0.14]


def _trace_categories(rng: np.random.Generator) -> list[str]:
    n_middle = int(rng.integers(6, 13))
    middle = list(rng.choice(MIDDLE, size=n_middle, p=MIDDLE_P))
    plan = ["plan_generation"] * int(rng.integers(1, 3))
    return ["problem_setup"] + plan + middle + ["final_answer_emission"]


def _sentence(rng: np.random.Generator, category: str, topic: tuple[str, str, str]) -> str:
    q, o, u = topic
    a, b = int(rng.integers(2, 40)), int(rng.integers(2, 40))
    template = TEMPLATES[category][int(rng.integers(len(TEMPLATES[category])))]
    return template.format(q=q, o=o, u=u, a=a, b=b, c=a * b)


def generate_corpus(
    n_groups: int, traces_per_group: int, label_noise: float, seed: int
) -> pl.DataFrame:
    """The demo corpus (columns of `proj_assets.probes.corpus.CORPUS_SCHEMA` plus `category`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        topic = TOPICS[g % len(TOPICS)]
        for t in range(traces_per_group):
            categories = _trace_categories(rng)
            n = len(categories)
            for i, category in enumerate(categories):
                rel = i / (n - 1)
                logit = CATEGORY_LOGIT[category] + POSITION_WEIGHT * (0.5 - rel)
                label = int(rng.random() < 1.0 / (1.0 + np.exp(-logit)))
                if rng.random() < label_noise:
                    label = 1 - label
                rows.append(
                    {
                        "group_id": f"problem_{g:02d}",
                        "trace_id": f"problem_{g:02d}_trace_{t:02d}",
                        "sentence_idx": i,
                        "n_sentences": n,
                        "text": _sentence(rng, category, topic),
                        "label": label,
                        "category": category,
                    }
                )
    return pl.DataFrame(
        rows,
        schema_overrides={"sentence_idx": pl.Int64, "n_sentences": pl.Int64, "label": pl.Int64},
    )
