"""QC flags on generated completions, and the rates the pilot/shard gates compare to thresholds.

- `runaway`: the completion (text before the first stop sequence) ran on past its answer, i.e. it
  contains prompt scaffolding (`Instruction:`, `Answer:`, `Verdict:`, `###`: the model started a
  new block) or degenerate repetition (some run of `ngram` whitespace-separated symbols repeated
  `times` times back to back, e.g. `a b c a b c a b c`).
- `token_limit`: generation used all `max_new_tokens` without reaching a stop sequence or EOS.
"""

import polars as pl

from proj_assets.sft.prompts import SCAFFOLDING


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


def is_runaway(completion: str, ngram: int = 3, times: int = 3) -> bool:
    return has_scaffolding(completion) or has_degenerate_repetition(completion, ngram, times)


def flag_generations(df: pl.DataFrame, ngram: int, times: int) -> pl.DataFrame:
    """`df` (with `completion`, `finish_reason`) plus boolean `runaway` and `token_limit` columns."""
    return df.with_columns(
        pl.col("completion").map_elements(lambda c: is_runaway(c, ngram, times), return_dtype=pl.Boolean)
        .alias("runaway"),
        (pl.col("finish_reason") == "length").alias("token_limit"),
    )


def flag_rate(df: pl.DataFrame, flag: str) -> float:
    """Share of rows with `flag` set; an empty frame is an error (no evidence is not a pass)."""
    if df.height == 0:
        raise ValueError(f"cannot compute the {flag} rate of an empty set of generations")
    return float(df[flag].cast(pl.Float64).mean())
