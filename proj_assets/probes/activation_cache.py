"""The token-activation cache: one float16 memmap per (model, revision, layer, corpus, max tokens).

Layout of a cache folder (content-addressed by `cache_spec`, so every config that needs the same
activations reads the same files and re-materializing is a cache hit):
  activations.f16   raw float16 array [total_tokens, hidden], row-major (np.memmap)
  index.parquet     uid (sentence, see corpus.with_sentence_uid), offset (first token row), length
  meta.json         spec, shape, dtype, the size and sha256 of the two data files, and the
                    boundary-token counts per trace (extraction.boundary_tokens)

Opening a cache verifies sizes and checksums: a truncated or corrupted cache is a CacheError,
never read; `cache_is_valid` lets the extraction asset rebuild it instead.
"""

import hashlib
import json
import mmap
import os
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl

DTYPE = "float16"
ACTIVATIONS_FILE, INDEX_FILE, META_FILE = "activations.f16", "index.parquet", "meta.json"


class CacheError(ValueError):
    """A cache folder is incomplete or inconsistent with its index."""


def cache_spec(
    model_id: str,
    revision: str,
    layer: int,
    corpus_hash: str,
    max_tokens: int,
    context: str,
    tokenizer_hash: str,
    extraction_version: str,
    max_context: int,
) -> dict:
    """Everything that determines the cached activations; its hash names the cache folder."""
    return {
        "model_id": model_id,
        "revision": revision,
        "layer": int(layer),
        "corpus_hash": corpus_hash,
        "max_tokens": int(max_tokens),
        "context": context,
        "dtype": DTYPE,
        "tokenizer_hash": tokenizer_hash,
        "extraction_version": extraction_version,
        "max_context": int(max_context),
    }


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cache_problem(folder: Path) -> str | None:
    """Why a cache folder cannot be read (missing file, unreadable meta, wrong size or checksum), or None."""
    missing = [
        name for name in (ACTIVATIONS_FILE, INDEX_FILE, META_FILE) if not (folder / name).is_file()
    ]
    if missing:
        return f"missing {missing}"
    try:
        meta = json.loads((folder / META_FILE).read_text())
        files = meta["files"]
    except (ValueError, KeyError) as exc:
        return f"unreadable {META_FILE} ({exc!r})"
    for name in (ACTIVATIONS_FILE, INDEX_FILE):
        size = (folder / name).stat().st_size
        if size != files[name]["bytes"]:
            return f"truncated: {name} has {size} bytes, expected {files[name]['bytes']}"
        if _file_digest(folder / name) != files[name]["sha256"]:
            return f"sha256 mismatch: {name} is corrupted"
    return None


def cache_is_valid(folder: Path) -> bool:
    return cache_problem(folder) is None


class CacheWriter:
    """Fills a new cache folder: lengths are known up front, activations arrive per sentence."""

    def __init__(
        self, folder: Path, spec: dict, uids: np.ndarray, lengths: np.ndarray, hidden: int
    ):
        self.folder, self.spec = folder, spec
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.index = pl.DataFrame(
            {"uid": uids.astype(np.int64), "offset": offsets, "length": lengths.astype(np.int64)}
        )
        self._offset = dict(zip(uids.tolist(), offsets.tolist(), strict=False))
        self.shape = (int(lengths.sum()), int(hidden))
        self.array = np.memmap(folder / ACTIVATIONS_FILE, dtype=DTYPE, mode="w+", shape=self.shape)

    def put(self, uid: int, tokens: np.ndarray) -> None:
        start = self._offset[uid]
        self.array[start : start + tokens.shape[0]] = tokens.astype(DTYPE)

    def close(self, extra_meta: dict | None = None) -> None:
        """Write the index and meta.json (with `extra_meta`, e.g. the boundary-token counts)."""
        self.array.flush()
        del self.array
        self.index.write_parquet(self.folder / INDEX_FILE)
        files = {
            name: {
                "bytes": (self.folder / name).stat().st_size,
                "sha256": _file_digest(self.folder / name),
            }
            for name in (ACTIVATIONS_FILE, INDEX_FILE)
        }
        (self.folder / META_FILE).write_text(
            json.dumps(
                {
                    **(extra_meta or {}),
                    "spec": self.spec,
                    "shape": self.shape,
                    "dtype": DTYPE,
                    "files": files,
                }
            )
        )


def open_cache(folder: Path) -> tuple[np.memmap, pl.DataFrame, dict]:
    """The activations (read-only memmap), the index and the metadata of a cache folder, after
    verifying sizes and checksums."""
    problem = cache_problem(folder)
    if problem:
        raise CacheError(
            f"activation cache {folder} cannot be read: {problem}; "
            "re-materialize probes/features/token_activations (it rebuilds a broken cache)"
        )
    meta = json.loads((folder / META_FILE).read_text())
    array = np.memmap(
        folder / ACTIVATIONS_FILE, dtype=meta["dtype"], mode="r", shape=tuple(meta["shape"])
    )
    return array, pl.read_parquet(folder / INDEX_FILE), meta


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`array[rows]` as a new float16 array. From a cache memmap (as open_cache returns it) the rows
    are copied with positioned reads, one per run of consecutive rows, so no page of the mapping is
    touched: indexing the memmap would keep every page read resident in this process (file-backed
    RSS, another copy of the slice on top of the packed one). Any other array is indexed."""
    rows = np.asarray(rows, dtype=np.int64)
    if not (
        isinstance(array, np.memmap)
        and isinstance(array.base, mmap.mmap)
        and array.ndim == 2
        and array.flags.c_contiguous
        and array.filename
    ):
        return np.asarray(array[rows], dtype=np.float16)
    out = np.empty((len(rows), array.shape[1]), dtype=array.dtype)
    if not rows.size:
        return out.astype(np.float16, copy=False)
    if rows.min() < 0 or rows.max() >= array.shape[0]:
        raise IndexError(f"rows outside [0, {array.shape[0]}) of the activation array")
    row_bytes = array.shape[1] * array.dtype.itemsize
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    with open(array.filename, "rb", buffering=0) as fh:
        for a, b in zip(
            np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]]), strict=False
        ):
            view, pos = memoryview(out[a:b]).cast("B"), array.offset + int(rows[a]) * row_bytes
            while len(view):
                got = os.preadv(fh.fileno(), [view], pos)
                if got == 0:
                    raise CacheError(f"{array.filename} ended before row {rows[b - 1]}")
                view, pos = view[got:], pos + got
    return out.astype(np.float16, copy=False)


def index_problems(index: pl.DataFrame, n_rows: int, expected_uids: set[int]) -> pl.DataFrame:
    """Index rows that do not tile the activation array exactly (gaps, overlaps, out of range,
    empty sentences) or that name sentences the corpus does not have / miss ones it has."""
    ordered = index.sort("offset")
    expected_offset = pl.concat(
        [pl.Series([0], dtype=pl.Int64), (ordered["offset"] + ordered["length"]).head(-1)]
    )
    bad = ordered.with_columns(expected_offset=expected_offset).with_columns(
        problem=pl.when(pl.col("length") <= 0)
        .then(pl.lit("empty sentence"))
        .when(pl.col("offset") != pl.col("expected_offset"))
        .then(pl.lit("gap or overlap"))
        .when(pl.col("offset") + pl.col("length") > n_rows)
        .then(pl.lit("past end of array"))
        .when(~pl.col("uid").is_in(list(expected_uids)))
        .then(pl.lit("uid not in corpus"))
    )
    problems = bad.filter(pl.col("problem").is_not_null()).drop("expected_offset")
    missing = sorted(expected_uids - set(index["uid"].to_list()))
    if missing:
        problems = pl.concat(
            [
                problems,
                pl.DataFrame(
                    {
                        "uid": missing,
                        "offset": None,
                        "length": None,
                        "problem": "sentence missing from index",
                    },
                    schema=problems.schema,
                ),
            ]
        )
    end = int(cast(int, (ordered["offset"] + ordered["length"]).max() or 0))
    if end != n_rows and problems.height == 0:
        problems = pl.DataFrame(
            {
                "uid": [None],
                "offset": [end],
                "length": [n_rows - end],
                "problem": ["array has rows no sentence owns"],
            },
            schema=problems.schema,
        )
    return problems


def nonfinite_rows(array: np.ndarray, index: pl.DataFrame, chunk: int = 1 << 16) -> pl.DataFrame:
    """Sentences (uid, offset, length) whose activations contain NaN or inf, scanned in chunks."""
    bad_rows = []
    for start in range(0, array.shape[0], chunk):
        block = np.asarray(array[start : start + chunk], dtype=np.float32)
        bad_rows.extend((start + np.flatnonzero(~np.isfinite(block).all(axis=1))).tolist())
    if not bad_rows:
        return index.head(0)
    bad = np.asarray(bad_rows)
    starts, ends = index["offset"].to_numpy(), (index["offset"] + index["length"]).to_numpy()
    hit = [bool(((bad >= s) & (bad < e)).any()) for s, e in zip(starts, ends, strict=False)]
    return index.filter(pl.Series(hit))
