"""Input fingerprints on result rows: which versions of which inputs produced a row, and which of
the stored rows are current.

A result table (fold results, trials, seed runs, SFT rows, evaluations) is append-mostly history:
re-running after an input changed writes new rows beside the old ones. Each row carries
`input_versions` (a JSON object: input name -> version string, e.g. `model_revision`, `corpus`,
`splits`, `trainer`, `code`) and `input_fingerprint` (its hash). A reader computes the versions
its inputs have *now* and keeps only rows with that fingerprint; the rest are superseded history,
reported (how many, which input changed) but never mixed into an aggregate, a choice or a gate.
Rows written before fingerprints existed have none and count as superseded.
"""

import json
from collections.abc import Mapping, Sequence

import polars as pl

from proj_resources.hashing import canonical_hash

FINGERPRINT = "input_fingerprint"
INPUT_VERSIONS = "input_versions"


def fingerprint(inputs: Mapping[str, str]) -> str:
    """The hash of input name -> version; order-independent."""
    return canonical_hash({str(k): str(v) for k, v in inputs.items()})


def stamp_inputs(df: pl.DataFrame, inputs: Mapping[str, str]) -> pl.DataFrame:
    """`df` with the fingerprint and the versions it hashes, equal on every row."""
    versions = json.dumps({str(k): str(v) for k, v in inputs.items()}, sort_keys=True)
    return df.with_columns(
        pl.lit(fingerprint(inputs), dtype=pl.Utf8).alias(FINGERPRINT),
        pl.lit(versions, dtype=pl.Utf8).alias(INPUT_VERSIONS),
    )


def _is_current(df: pl.DataFrame, inputs: Mapping[str, str]) -> pl.Expr:
    if FINGERPRINT not in df.columns:
        return pl.lit(False)
    return pl.col(FINGERPRINT).fill_null("") == fingerprint(inputs)


def current_rows(df: pl.DataFrame, inputs: Mapping[str, str]) -> pl.DataFrame:
    """The rows produced by exactly these input versions."""
    return df.filter(_is_current(df, inputs))


def superseded_rows(df: pl.DataFrame, inputs: Mapping[str, str]) -> pl.DataFrame:
    """The rows produced by other input versions (or before rows carried a fingerprint)."""
    return df.filter(~_is_current(df, inputs))


def changed_inputs(stored: str | None, inputs: Mapping[str, str]) -> list[str]:
    """Names of the inputs whose version in a row's `input_versions` JSON differs from `inputs`
    (an input present on one side only counts as changed); `["unfingerprinted"]` for a row
    without versions."""
    if not stored:
        return ["unfingerprinted"]
    old = json.loads(stored)
    now = {str(k): str(v) for k, v in inputs.items()}
    return sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))


def staleness(df: pl.DataFrame, inputs: Mapping[str, str]) -> dict:
    """What a reader reports beside its result: rows current and superseded, and which inputs
    changed since the superseded rows were written (over every distinct stored version set)."""
    old = superseded_rows(df, inputs)
    stored = (
        old[INPUT_VERSIONS].unique().to_list()
        if INPUT_VERSIONS in old.columns
        else ([None] if old.height else [])
    )
    changed = sorted({name for s in stored for name in changed_inputs(s, inputs)})
    return {
        "current_rows": df.height - old.height,
        "superseded_rows": old.height,
        "changed_inputs": changed,
    }


def table_version(frame: pl.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A content version of a result table (its Dagster `DataVersion`): the hash of its rows'
    input fingerprints (where it has them) and `columns` (default: all), in any row order. Equal
    results give equal versions whatever run produced them, so nothing downstream turns stale."""
    names = list(frame.columns if columns is None else columns)
    if FINGERPRINT in frame.columns and FINGERPRINT not in names:
        names.insert(0, FINGERPRINT)
    return canonical_hash(sorted(map(str, frame.select(names).rows())))
