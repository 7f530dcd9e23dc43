"""Self-generated instruction data: the base model answers few-shot completion prompts.

Used by the pilot and by every scale shard, so both produce identical columns and QC flags.
Instructions come from the task generators; the *answers* are the base model's own samples.
`answer_correct` (program check) is kept for analysis only: filtering uses the critic, as it
would for instruction types no program can check.
"""

from collections.abc import Callable

import polars as pl

from proj_assets.sft.generation import generate
from proj_assets.sft.prompts import PromptBuilder
from proj_assets.sft.qc import flag_generations
from proj_assets.sft.settings import QcSettings, SamplingSettings
from proj_assets.sft.tasks import is_correct, make_instructions
from proj_resources.hashing import canonical_hash

PILOT_SEED_SLOT = 0  # pilot instructions use slot 0 of the data seed; shard i uses slot i + 1


def instruction_seed(data_seed: int, slot: int) -> int:
    return data_seed * 1000 + slot


def sampling_hash(sampling: SamplingSettings) -> str:
    return canonical_hash(sampling.model_dump())


def generate_examples(model, tokenizer, *, n: int, data_seed: int, slot: int, id_prefix: str,
                      builder: PromptBuilder, sampling: SamplingSettings, qc: QcSettings,
                      log: Callable[[str], None] | None = None) -> pl.DataFrame:
    """`n` sampled examples with completion, finish reason, token count and QC flags."""
    items = make_instructions(n, instruction_seed(data_seed, slot))
    outputs = generate(model, tokenizer, [builder.answer_prompt(i.instruction) for i in items],
                       max_new_tokens=sampling.max_new_tokens, stop=sampling.stop, do_sample=True,
                       temperature=sampling.temperature, top_p=sampling.top_p,
                       seed=sampling.seed + slot, batch_size=sampling.batch_size, log=log)
    df = pl.DataFrame({
        "example_id": [f"{id_prefix}-{k:06d}" for k in range(n)],
        "task_type": [i.task_type for i in items],
        "instruction": [i.instruction for i in items],
        "completion": [o.completion for o in outputs],
        "finish_reason": [o.finish_reason for o in outputs],
        "n_tokens": [o.n_tokens for o in outputs],
        "answer_correct": [is_correct(o.completion, i.reference) for i, o in zip(items, outputs)],
        "sampling_params_hash": sampling_hash(sampling),
        "prompt_template_hash": builder.template_hash(),
    })
    return flag_generations(df, qc.repetition_ngram, qc.repetition_times)
