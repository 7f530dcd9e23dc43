"""QC flags on generated completions, and the rates the pilot/shard gates compare to thresholds.

- `runaway`: the completion (text before the first stop sequence) goes on after its intended
  answer. Every task type here has a one-line answer, so *any* content after the answer line is a
  runaway (an explanation, a new block, anything). Besides that, known markers of a model running
  on: prompt scaffolding (`Instruction:`, `Answer:`, `Verdict:`, `###`: it began a new block) and
  degenerate repetition (some run of `ngram` whitespace-separated symbols repeated `times` times
  back to back, e.g. `a b c a b c a b c`).
- `token_limit`: generation was stopped by `max_new_tokens` (no stop sequence, no EOS).
- `empty`: nothing but whitespace was generated (nothing to train on, nothing to judge).
"""

import polars as pl

from proj_assets.sft.prompts import SCAFFOLDING

FLAGS = ("runaway", "token_limit", "empty")


def has_scaffolding(completion: str) -> bool:
    return any(marker in completion for marker in SCAFFOLDING)


def has_degenerate_repetition(completion: str, ngram: int, times: int) -> bool:
    """True when some `ngram` symbols occur `times` times in a row (checked for every start)."""
    symbols = completion.split()
    span = ngram * times
    for start in range(len(symbols) - span + 1):
        unit = symbols[start: start + ngram]
        if all(symbols[start + k * ngram: start + (k + 1) * ngram] == unit for k in range(1, times)):
            return True
    return False


def continues_after_answer_line(completion: str) -> bool:
    """True when a one-line answer is followed by any further non-blank content."""
    return "\n" in completion.strip()


def is_runaway(completion: str, ngram: int = 3, times: int = 3) -> bool:
    return (continues_after_answer_line(completion) or has_scaffolding(completion)
            or has_degenerate_repetition(completion, ngram, times))


def flag_generations(df: pl.DataFrame, ngram: int, times: int) -> pl.DataFrame:
    """`df` (with `completion`, `finish_reason`) plus boolean `runaway`, `token_limit`, `empty`."""
    return df.with_columns(
        pl.col("completion").map_elements(lambda c: is_runaway(c, ngram, times), return_dtype=pl.Boolean)
        .alias("runaway"),
        (pl.col("finish_reason") == "length").alias("token_limit"),
        (pl.col("completion").str.strip_chars() == "").alias("empty"),
    )


def flag_rate(df: pl.DataFrame, flag: str) -> float:
    """Share of rows with `flag` set; an empty frame is an error (no evidence is not a pass)."""
    if df.height == 0:
        raise ValueError(f"cannot compute the {flag} rate of an empty set of generations")
    return float(df[flag].cast(pl.Float64).mean())


def clean(df: pl.DataFrame) -> pl.DataFrame:
    """Rows with no QC flag set (flags missing from `df` count as not set)."""
    present = [f for f in FLAGS if f in df.columns]
    return df.filter(~pl.any_horizontal(present)) if present else df
