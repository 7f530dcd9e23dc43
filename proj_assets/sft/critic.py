"""A single-token A/B log-prob critic: no sampling, one forward pass per example and option order,
measured against program-verified labels.

The critic prompt (prompts.PromptBuilder.critic_prompt) asks whether an answer is correct and ends
at `Verdict:`. A model may prefer one letter whatever the content (a position prior), which alone
can make a critic look decisive while it ranks answers at chance. So every answer is scored in both
option orders (`A) yes B) no` and `A) no B) yes`): with `m1 = log p(A) - log p(B)` in the first
order and `m2 = log p(B) - log p(A)` in the second, a letter prior adds to `m1` and subtracts from
`m2`; the margin is their mean (prior cancelled) and `(m1 - m2) / 2` estimates the prior. A positive
margin means the model judges the answer correct.

The threshold is chosen on the pilot, where every answer has a program-verified label: the margin
maximising Youden's J (TPR - FPR) on the ROC curve. ROC-AUC per task type says how well the critic
ranks answers at all (0.5 = chance).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from proj_assets.sft.prompts import CRITIC_TOKENS, PromptBuilder
from proj_assets.sft.tokenizer import encode_continuation, prompt_batch


@dataclass(frozen=True)
class CriticScores:
    margins: list[float]  # order-debiased: mean over both option orders
    position_prior: (
        float  # mean (m1 - m2) / 2: > 0 means the model leans towards ` A` whatever the answer
    )


def verdict_token_ids(tokenizer, tokens: Sequence[str] = CRITIC_TOKENS) -> list[int]:
    """The id of each verdict token; each must encode to exactly one token."""
    ids = []
    for tok in tokens:
        encoded = encode_continuation(tokenizer, tok)
        if len(encoded) != 1:
            raise ValueError(
                f"critic verdict {tok!r} encodes to {len(encoded)} tokens {encoded} with this "
                "tokenizer; the A/B critic needs single-token verdicts"
            )
        ids.append(encoded[0])
    return ids


def next_token_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    token_ids: Sequence[int],
    batch_size: int = 64,
    log: Callable[[str], None] | None = None,
) -> list[list[float]]:
    """log p(token | prompt) for each prompt and each token id (left-padded batches)."""
    import torch

    device = next(model.parameters()).device
    out: list[list[float]] = []
    for lo in range(0, len(prompts), batch_size):
        batch = prompt_batch(tokenizer, prompts[lo : lo + batch_size], device)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(**batch, position_ids=positions).logits[:, -1, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)[:, list(token_ids)]
        out.extend(logprobs.tolist())
        if log is not None:
            log(f"critic scored {len(out)}/{len(prompts)}")
    return out


def critic_scores(
    model,
    tokenizer,
    builder: PromptBuilder,
    instructions: Iterable[str],
    answers: Iterable[str],
    batch_size: int = 64,
    log: Callable[[str], None] | None = None,
) -> CriticScores:
    """Order-debiased margins for (instruction, answer) pairs, and the measured position prior."""
    a_id, b_id = verdict_token_ids(tokenizer)
    pairs = list(zip(instructions, answers, strict=True))
    prompts = [
        builder.critic_prompt(i, a, yes_first) for yes_first in (True, False) for i, a in pairs
    ]
    logprobs = next_token_logprobs(model, tokenizer, prompts, [a_id, b_id], batch_size, log)
    yes_a = [a - b for a, b in logprobs[: len(pairs)]]
    yes_b = [b - a for a, b in logprobs[len(pairs) :]]
    margins = [(m1 + m2) / 2 for m1, m2 in zip(yes_a, yes_b, strict=False)]
    prior = (
        sum(m1 - m2 for m1, m2 in zip(yes_a, yes_b, strict=False)) / (2 * len(pairs))
        if pairs
        else 0.0
    )
    return CriticScores(margins, prior)


def roc_auc(margins: Sequence[float], labels: Sequence[bool]) -> float | None:
    """ROC-AUC of margins against labels; None when the labels hold only one class."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    return float(roc_auc_score(list(labels), list(margins)))


def auc_by_type(
    margins: Sequence[float], labels: Sequence[bool], task_types: Sequence[str]
) -> dict[str, float | None]:
    """`overall` and one ROC-AUC per task type (None where a type's labels hold one class)."""
    result = {"overall": roc_auc(margins, labels)}
    for task_type in sorted(set(task_types)):
        idx = [i for i, t in enumerate(task_types) if t == task_type]
        result[task_type] = roc_auc([margins[i] for i in idx], [labels[i] for i in idx])
    return result


def choose_threshold(margins: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The margin maximising Youden's J on the ROC curve (keep answers with margin >= it); None
    when the labels hold one class and no threshold can be chosen."""
    import numpy as np
    from sklearn.metrics import roc_curve

    if len(set(labels)) < 2:
        return None
    fpr, tpr, thresholds = roc_curve(list(labels), list(margins))
    finite = np.isfinite(thresholds)
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    return float(thresholds[best])
