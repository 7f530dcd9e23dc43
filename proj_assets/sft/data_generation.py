"""Self-generated instruction data: the base model answers few-shot completion prompts.

Used by the pilot and by every scale shard, so both produce identical columns and QC flags.
Instructions come from the task generators; the *answers* are the base model's own samples.
`answer_correct` (program check, strict exact match) is kept to *measure* the critic (ROC-AUC,
and the threshold chosen on the pilot); filtering uses the critic, as it would for instruction
types no program can check. Each row carries the seeds that drove it: `instruction_seed` (its
instruction) and `seed` (the sampling seed of its batch).
"""

import json
from collections.abc import Callable

import polars as pl

from proj_assets.sft.generation import generate
from proj_assets.sft.iterations import sampling_hash
from proj_assets.sft.prompts import PromptBuilder
from proj_assets.sft.qc import flag_generations
from proj_assets.sft.settings import QcSettings, SamplingSettings
from proj_assets.sft.tasks import make_instructions, strict_match

PILOT_SEED_SLOT = 0  # pilot instructions use slot 0 of the data seed; shard i uses slot i + 1


def instruction_seed(data_seed: int, slot: int) -> int:
    return data_seed * 1000 + slot


class EmptyGenerationsError(ValueError):
    """Every generated completion was empty: there is nothing to check, judge or train on."""


def generate_examples(
    model,
    tokenizer,
    *,
    n: int,
    data_seed: int,
    slot: int,
    id_prefix: str,
    builder: PromptBuilder,
    sampling: SamplingSettings,
    qc: QcSettings,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """`n` sampled examples with completion, finish reason, token count, seeds and QC flags;
    `EmptyGenerationsError` when every completion is empty."""
    items = make_instructions(n, instruction_seed(data_seed, slot))
    outputs = generate(
        model,
        tokenizer,
        [builder.answer_prompt(i.instruction) for i in items],
        max_new_tokens=sampling.max_new_tokens,
        stop=sampling.stop,
        do_sample=True,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed + slot,
        batch_size=sampling.batch_size,
        log=log,
    )
    if all(not o.completion.strip() for o in outputs):
        raise EmptyGenerationsError(
            f"all {n} generated completions ({id_prefix}) are empty: the model emitted "
            "EOS or a stop sequence at once; check sampling.stop and the prompt format"
        )
    df = pl.DataFrame(
        {
            "example_id": [f"{id_prefix}-{k:06d}" for k in range(n)],
            "task_type": [i.task_type for i in items],
            "instruction": [i.instruction for i in items],
            "completion": [o.completion for o in outputs],
            "finish_reason": [o.finish_reason for o in outputs],
            "n_tokens": [o.n_tokens for o in outputs],
            "answer_correct": [
                strict_match(o.completion, i.reference)
                for i, o in zip(items, outputs, strict=False)
            ],
            "instruction_seed": instruction_seed(data_seed, slot),
            "row_seed": [o.seed for o in outputs],
            "sampling_params_hash": sampling_hash(sampling),
            "sampling_params": json.dumps(sampling.model_dump(), sort_keys=True),
            "prompt_template_hash": builder.template_hash(),
        }
    )
    return flag_generations(df, qc)
