"""QC flags on generated completions, and the rates the pilot/shard gates compare to thresholds.

- `runaway`: the completion (text before the first stop sequence) goes on after its intended
  answer. Every task type here has a one-line answer, so the completion is a runaway when
  - **content follows the answer line**: anything non-blank after a line break, where a line break
    is any of Unicode's (`\\n`, `\\r`, U+0085, U+2028, U+2029, vertical tab, form feed: `str.splitlines`);
  - **content follows the answer on its own line**: a sentence break (`.`, `!`, `?`, `;`, `:`, `,`)
    followed by more text, as in `42. We add the numbers` (`The answer is 42.` ends there: not flagged);
  - **the answer is repeated on its line**: the line is one unit written two or more times
    (`42 42`, `a b a b`); a shortest unit of one single character is exempt (`2 2 2` sorts three 2s);
  - **prompt scaffolding** appears (`Instruction:`, `Answer:`, `Verdict:`, `###`: it began a new block);
  - **a loop**: a unit of period k = 1..`max_period` whitespace-separated symbols repeated at least
    `times` times back to back, covering at least `min_span` symbols (so `1 1 1 2` is an answer
    and `3 3 3 3 3 3` a loop); the same rule on the characters of each symbol, for units of two or
    more distinct characters (`4242424242`; `1000000` is not a loop).
- `token_limit`: generation was stopped by `max_new_tokens` (no stop sequence, no EOS).
- `empty`: nothing but whitespace was generated (nothing to train on, nothing to judge).
"""

import math
import re
from collections.abc import Sequence

import polars as pl

from proj_assets.sft.prompts import SCAFFOLDING
from proj_assets.sft.settings import QcSettings

FLAGS = ("runaway", "token_limit", "empty")
SENTENCE_THEN_TEXT = re.compile(r"[.!?;:,]\s+\S")


def has_scaffolding(completion: str) -> bool:
    return any(marker in completion for marker in SCAFFOLDING)


def content_lines(completion: str) -> list[str]:
    """The non-blank lines of `completion`, split at every Unicode line break."""
    return [line for line in completion.splitlines() if line.strip()]


def continues_after_answer_line(completion: str) -> bool:
    """True when a one-line answer is followed by any further non-blank line."""
    return len(content_lines(completion)) > 1


def continues_on_answer_line(completion: str) -> bool:
    """True when the answer line goes on after a sentence break (`42. We add the numbers`)."""
    lines = content_lines(completion)
    return bool(lines) and SENTENCE_THEN_TEXT.search(lines[0].strip()) is not None


def repeats_answer_on_line(completion: str) -> bool:
    """True when the answer line is one unit (not a single character) written two or more times."""
    lines = content_lines(completion)
    symbols = lines[0].split() if lines else []
    for period in range(1, len(symbols) // 2 + 1):  # the shortest unit decides
        unit = symbols[:period]
        if len(symbols) % period == 0 and unit * (len(symbols) // period) == symbols:
            return len(" ".join(unit)) > 1
    return False


def has_loop(
    items: Sequence, max_period: int, times: int, min_span: int, min_distinct: int = 1
) -> bool:
    """True when some unit of k <= `max_period` items (with at least `min_distinct` different
    items) repeats back to back at least max(`times`, ceil(`min_span` / k)) times."""
    for period in range(1, max_period + 1):
        needed = max(times, math.ceil(min_span / period))
        for start in range(len(items) - period * needed + 1):
            unit = items[start : start + period]
            if len(set(unit)) < min_distinct:
                continue
            if all(
                items[start + k * period : start + (k + 1) * period] == unit
                for k in range(1, needed)
            ):
                return True
    return False


def has_degenerate_repetition(completion: str, max_period: int, times: int, min_span: int) -> bool:
    """A loop of whitespace-separated symbols, or of characters inside one symbol (`4242424242`)."""
    symbols = completion.split()
    return has_loop(symbols, max_period, times, min_span) or any(
        has_loop(symbol, max_period, times, min_span, min_distinct=2) for symbol in symbols
    )


DEFAULT_QC = QcSettings()


def is_runaway(completion: str, qc: QcSettings = DEFAULT_QC) -> bool:
    return (
        continues_after_answer_line(completion)
        or continues_on_answer_line(completion)
        or repeats_answer_on_line(completion)
        or has_scaffolding(completion)
        or has_degenerate_repetition(
            completion, qc.repetition_max_period, qc.repetition_times, qc.repetition_min_span
        )
    )


def flag_generations(df: pl.DataFrame, qc: QcSettings) -> pl.DataFrame:
    """`df` (with `completion`, `finish_reason`) plus boolean `runaway`, `token_limit`, `empty`."""
    return df.with_columns(
        pl.col("completion")
        .map_elements(lambda c: is_runaway(c, qc), return_dtype=pl.Boolean)
        .alias("runaway"),
        (pl.col("finish_reason") == "length").alias("token_limit"),
        (pl.col("completion").str.strip_chars() == "").alias("empty"),
    )


def flag_rate(df: pl.DataFrame, flag: str) -> float:
    """Share of rows with `flag` set; an empty frame is an error (no evidence is not a pass)."""
    if df.height == 0:
        raise ValueError(f"cannot compute the {flag} rate of an empty set of generations")
    return float(df.select(pl.col(flag).cast(pl.Float64).mean()).item())


def clean(df: pl.DataFrame) -> pl.DataFrame:
    """Rows with no QC flag set (flags missing from `df` count as not set)."""
    present = [f for f in FLAGS if f in df.columns]
    return df.filter(~pl.any_horizontal(present)) if present else df
