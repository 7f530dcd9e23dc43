"""Building the training set: QC-flagged rows out, critic filter, deduplication, decontamination.

Decontamination is n-gram overlap on lowercased word tokens: a training instruction is contaminated
when it contains any `n`-gram of a test instruction. A test instruction shorter than `n` words is
its own single gram, so a short test item is caught wherever it appears inside a training item.
"""

import re

import polars as pl

from proj_assets.sft.qc import FLAGS

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    k = min(n, len(tokens))
    return {tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1)} if k else set()


def test_ngram_index(test_texts: list[str], n: int) -> dict[int, set[tuple[str, ...]]]:
    """Test grams grouped by their length (`n`, or shorter for short test items)."""
    index: dict[int, set[tuple[str, ...]]] = {}
    for text in test_texts:
        for gram in ngrams(words(text), n):
            index.setdefault(len(gram), set()).add(gram)
    return index


def overlapping_gram(text: str, index: dict[int, set[tuple[str, ...]]]) -> str | None:
    """The first test gram found in `text`, or None."""
    tokens = words(text)
    for k, grams in index.items():
        hit = ngrams(tokens, k) & grams if len(tokens) >= k else set()
        if hit:
            return " ".join(sorted(hit)[0])
    return None


def duplicate_instructions(texts: list[str]) -> list[str]:
    """Instructions that occur more than once (lowercased, whitespace-normalised), in first-seen order."""
    seen, repeated = set(), []
    for text in texts:
        key = " ".join(text.lower().split())
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return repeated


def find_test_overlap(
    train: pl.DataFrame, test_texts: list[str], n: int, column: str = "instruction"
) -> pl.DataFrame:
    """Rows of `train` whose `column` shares an n-gram with a test text, with the shared gram."""
    index = test_ngram_index(test_texts, n)
    hits = [overlapping_gram(t, index) for t in train[column].to_list()]
    return train.with_columns(pl.Series("overlap_ngram", hits, dtype=pl.Utf8)).filter(
        pl.col("overlap_ngram").is_not_null()
    )


class TooFewRowsError(ValueError):
    """A filter chain kept fewer rows than needed; the message lists how many each filter removed."""

    def __init__(self, what: str, report: dict, minimum: int):
        steps = ", ".join(f"{k}={v}" for k, v in report.items())
        super().__init__(
            f"{what}: {report['kept']} rows left after filtering, at least {minimum} needed ({steps})"
        )
        self.report = report


def drop_flagged(candidates: pl.DataFrame, report: dict) -> pl.DataFrame:
    """Remove QC-flagged rows flag by flag (runaway, then token limit, then empty), counting each."""
    rows = candidates
    for flag in FLAGS:
        if flag in rows.columns:
            kept = rows.filter(~pl.col(flag))
            report[f"dropped_{flag}"] = rows.height - kept.height
            rows = kept
    return rows


def build_training_set(
    candidates: pl.DataFrame, test_texts: list[str], n: int, min_rows: int = 1
) -> tuple[pl.DataFrame, dict]:
    """Filter candidate generations (with QC flags and a `critic_keep` column) into training rows.

    Order: drop QC-flagged rows (runaway, token limit, empty), drop critic rejects, keep the
    best-margin copy of each instruction, drop rows overlapping the test set. Returns the rows and
    how many each step removed; raises `TooFewRowsError` (with those counts) when fewer than
    `min_rows` are left.
    """
    report = {"generated": candidates.height}
    clean = drop_flagged(candidates, report)
    accepted = clean.filter(pl.col("critic_keep"))
    report["dropped_by_critic"] = clean.height - accepted.height
    unique = (
        accepted.with_columns(
            pl.col("instruction").str.to_lowercase().str.strip_chars().alias("_key")
        )
        .sort(["critic_margin", "example_id"], descending=[True, False])
        .unique(subset="_key", keep="first", maintain_order=True)
        .drop("_key")
    )
    report["dropped_duplicates"] = accepted.height - unique.height
    contaminated = find_test_overlap(unique, test_texts, n)
    final = unique.filter(~pl.col("example_id").is_in(contaminated["example_id"].implode())).sort(
        "example_id"
    )
    report["dropped_test_overlap"] = unique.height - final.height
    report["kept"] = final.height
    if final.height < min_rows:
        raise TooFewRowsError("sft/data/training_set", report, min_rows)
    return final, report
