"""The probe corpus: one row per sentence of a reasoning trace.

Columns (the format users provide as Parquet or JSONL):
  group_id (str)      the problem; leave-one-problem-out folds hold out one group at a time
  trace_id (str)      one reasoning trace; belongs to exactly one group
  sentence_idx (int)  0-based position of the sentence in its trace
  n_sentences (int)   number of sentences in the trace
  text (str)          the sentence
  label (int)         1 if the sentence is an anchor (important for the final answer), else 0
Optional columns (constant within a trace where they describe the trace):
  trace_text (str)    the full trace as generated (its own whitespace and newlines); every
                      sentence must occur in it, in order. Absent: sentences joined by spaces
  prompt (str)        the prompt the trace continues; trace mode encodes prompt + trace_text
  importance (float)  a continuous importance score (e.g. counterfactual importance from
                      resampling); probes are then also scored by Spearman correlation with it
"""

import hashlib
import re
from pathlib import Path

import polars as pl

CORPUS_SCHEMA: dict[str, type[pl.DataType]] = {
    "group_id": pl.Utf8,
    "trace_id": pl.Utf8,
    "sentence_idx": pl.Int64,
    "n_sentences": pl.Int64,
    "text": pl.Utf8,
    "label": pl.Int64,
}
OPTIONAL_SCHEMA: dict[str, type[pl.DataType]] = {
    "trace_text": pl.Utf8,
    "prompt": pl.Utf8,
    "importance": pl.Float64,
}
PER_TRACE = ("trace_text", "prompt")
# group ids become partition keys, which may not contain | , [ ] (nor odd characters)
GROUP_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


class CorpusError(ValueError):
    """A corpus file or frame does not have the expected schema; the message names file/row/field."""


def _first_bad(mask: pl.Series) -> int | None:
    idx = mask.fill_null(True).arg_true()
    return int(idx[0]) if len(idx) else None


def coerce_corpus(raw: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check columns and types strictly and return the corpus in canonical column order/types.

    Structural rules (labels 0/1, positions in range, ids usable as keys) are errors here;
    distributional ones (both labels in every group) are the `groups_and_labels_valid` check's job.
    """
    missing = [c for c in CORPUS_SCHEMA if c not in raw.columns]
    if missing:
        raise CorpusError(
            f"{source}: missing column(s) {missing}; expected {list(CORPUS_SCHEMA)}, found {raw.columns}"
        )
    if raw.height == 0:
        raise CorpusError(f"{source}: no rows")
    columns = {}
    for name, dtype in CORPUS_SCHEMA.items():
        col = raw[name]
        cast = col.cast(dtype, strict=False)
        if dtype == pl.Int64 and col.dtype.is_float():  # 1.0 is an integer, 1.5 is not
            cast = pl.select(
                pl.when(col == col.round(0)).then(col.cast(pl.Int64, strict=False))
            ).to_series()
        row = _first_bad(cast.is_null())
        if row is not None:
            kind = "an integer" if dtype == pl.Int64 else "a string"
            raise CorpusError(
                f"{source}: row {row}, field '{name}': got {col[row]!r}, expected {kind} (not empty)"
            )
        columns[name] = cast
    for name, dtype in OPTIONAL_SCHEMA.items():
        if name in raw.columns:
            columns[name] = _optional_column(raw[name], name, dtype, source)
    df = pl.DataFrame(columns)
    rules = [
        ("label", ~df["label"].is_in([0, 1]), "0 or 1"),
        (
            "sentence_idx",
            (df["sentence_idx"] < 0) | (df["sentence_idx"] >= df["n_sentences"]),
            "0 <= sentence_idx < n_sentences",
        ),
        (
            "group_id",
            ~df["group_id"].str.contains(GROUP_ID_PATTERN.pattern),
            "letters, digits, _ . - only",
        ),
        ("text", df["text"].str.strip_chars().str.len_chars() == 0, "a non-empty sentence"),
    ]
    for field, bad, expected in rules:
        row = _first_bad(bad)
        if row is not None:
            raise CorpusError(
                f"{source}: row {row}, field '{field}': got {df[field][row]!r}, expected {expected}"
            )
    for name in PER_TRACE:
        if name in df.columns:
            varies = (
                df.group_by("trace_id")
                .agg(pl.col(name).n_unique().alias("n"))
                .filter(pl.col("n") > 1)
            )
            if varies.height:
                raise CorpusError(
                    f"{source}: field '{name}' differs between rows of trace "
                    f"{varies['trace_id'][0]!r}; expected one value per trace"
                )
    dup = df.select("trace_id", "sentence_idx").is_duplicated()
    row = _first_bad(dup)
    if row is not None:
        raise CorpusError(
            f"{source}: row {row}: duplicate (trace_id, sentence_idx) = "
            f"({df['trace_id'][row]!r}, {df['sentence_idx'][row]})"
        )
    return df.sort("group_id", "trace_id", "sentence_idx")


def _optional_column(col: pl.Series, name: str, dtype: type[pl.DataType], source: str) -> pl.Series:
    cast = col.cast(dtype, strict=False)
    bad = _first_bad(cast.is_null() & col.is_not_null())
    if dtype == pl.Float64 and bad is None:
        bad = _first_bad(cast.is_null() | ~cast.is_finite())
    if bad is not None:
        kind = "a finite number" if dtype == pl.Float64 else "a string"
        raise CorpusError(f"{source}: row {bad}, field '{name}': got {col[bad]!r}, expected {kind}")
    return cast


def load_corpus_file(path: str | Path) -> pl.DataFrame:
    """Read a Parquet or JSONL corpus and validate it (see module docstring for the columns)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: corpus file not found")
    try:
        if path.suffix == ".parquet":
            raw = pl.read_parquet(path)
        elif path.suffix in (".jsonl", ".ndjson"):
            raw = pl.read_ndjson(path, infer_schema_length=None)
        else:
            raise CorpusError(
                f"{path}: unsupported corpus format {path.suffix!r} (use .parquet or .jsonl)"
            )
    except pl.exceptions.PolarsError as exc:
        raise CorpusError(f"{path}: not a readable {path.suffix} file ({exc})") from exc
    return coerce_corpus(raw, str(path))


def with_sentence_uid(corpus: pl.DataFrame) -> pl.DataFrame:
    """Adds `uid`, the row's position in canonical order; the activation index is keyed by it."""
    return (
        corpus.sort("group_id", "trace_id", "sentence_idx")
        .with_row_index("uid")
        .with_columns(pl.col("uid").cast(pl.Int64))
    )


def corpus_hash(corpus: pl.DataFrame) -> str:
    """Content hash of the corpus columns in canonical order (provenance columns are ignored)."""
    columns = list(CORPUS_SCHEMA) + [c for c in OPTIONAL_SCHEMA if c in corpus.columns]
    canon = corpus.select(columns).sort("group_id", "trace_id", "sentence_idx")
    digest = hashlib.sha256()
    for col in canon.columns:
        digest.update(col.encode())
        digest.update(canon[col].cast(pl.Utf8).fill_null("\x00").str.join("\x1f").item().encode())
    return digest.hexdigest()[:16]


def load_configured_corpus(settings) -> pl.DataFrame:
    """The corpus a profile's `probes.corpus` section describes (generated demo, or a file)."""
    if settings.source == "path":
        from proj_assets.probes.settings import project_path

        return load_corpus_file(project_path(settings.path))
    from proj_assets.probes.corpus_generator import generate_corpus

    generated = generate_corpus(
        settings.n_groups, settings.traces_per_group, settings.label_noise, settings.seed
    )
    return coerce_corpus(generated, "generated corpus")
