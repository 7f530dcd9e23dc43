"""Leave-one-problem-out folds and the standardised tensors a fold trains and tests on."""

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl

from proj_assets.probes.activation_cache import gather_rows
from proj_resources.hashing import canonical_hash

if TYPE_CHECKING:  # torch is imported only when a fold is built
    from proj_assets.probes.probe_models import ProbeInputs


def lopo_folds(corpus: pl.DataFrame) -> list[str]:
    """One fold per group: the fold key is the held-out group id."""
    return sorted(corpus["group_id"].unique().to_list())


def fold_definition(corpus: pl.DataFrame, fold: str) -> str:
    """The hash of what a leave-one-group-out fold is: the held-out group, its traces and the
    training groups (the validation groups follow from them). A fold whose membership changed is a
    different fold, though its key is the same."""
    groups = lopo_folds(corpus)
    held_out = corpus.filter(pl.col("group_id") == fold)["trace_id"].unique().sort().to_list()
    return canonical_hash(
        {"held_out": fold, "traces": held_out, "train_groups": [g for g in groups if g != fold]},
        length=16,
    )


def split(corpus: pl.DataFrame, fold: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test): test is exactly the held-out group, train every other group."""
    if fold not in set(corpus["group_id"].to_list()):
        raise KeyError(
            f"fold {fold!r} is not a group of the corpus (groups: {lopo_folds(corpus)[:10]}...)"
        )
    return corpus.filter(pl.col("group_id") != fold), corpus.filter(pl.col("group_id") == fold)


def position_features(rows: pl.DataFrame) -> np.ndarray:
    """What the position baseline sees: relative position, its square, log index, log length, is-last."""
    idx = rows["sentence_idx"].to_numpy().astype(np.float64)
    n = rows["n_sentences"].to_numpy().astype(np.float64)
    rel = np.where(n > 1, idx / np.maximum(n - 1, 1), 0.0)
    return np.stack(
        [rel, rel**2, np.log1p(idx), np.log1p(n), (idx == n - 1).astype(np.float64)], axis=1
    )


def token_rows(index: pl.DataFrame, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(activation rows of the given sentences' tokens in order, tokens per sentence)."""
    by_uid = index.select("uid", "offset", "length").join(
        pl.DataFrame({"uid": uids}), on="uid", how="right"
    )
    if by_uid["offset"].null_count():
        missing = by_uid.filter(pl.col("offset").is_null())["uid"].head(5).to_list()
        raise KeyError(f"sentences {missing} are not in the activation index")
    offsets, lengths = by_uid["offset"].to_numpy(), by_uid["length"].to_numpy()
    starts = np.repeat(offsets - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return starts + np.arange(int(lengths.sum())), lengths


def pool(tokens: np.ndarray, lengths: np.ndarray, how: str, chunk: int = 64) -> np.ndarray:
    """Per-sentence mean / max / last token [N, D] (float32) of packed tokens, `chunk` sentences at a time."""
    if how not in ("mean", "max", "last"):
        raise ValueError(f"unknown pooling {how!r} (mean, max or last)")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out = np.empty((len(lengths), tokens.shape[1]), dtype=np.float32)
    for a in range(0, len(lengths), chunk):
        lo, hi = (
            int(starts[a]),
            int(
                starts[min(a + chunk, len(lengths)) - 1] + lengths[min(a + chunk, len(lengths)) - 1]
            ),
        )
        block, local = np.asarray(tokens[lo:hi], dtype=np.float32), starts[a : a + chunk] - lo
        if how == "mean":
            out[a : a + chunk] = (
                np.add.reduceat(block, local, axis=0) / lengths[a : a + chunk, None]
            )
        elif how == "max":
            out[a : a + chunk] = np.maximum.reduceat(block, local, axis=0)
        else:
            out[a : a + chunk] = block[local + lengths[a : a + chunk] - 1]
    return out


def token_stats(*parts: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std [D] over the rows of the given float16 token arrays (float64 accumulation)."""
    total: np.ndarray | float = 0.0
    sq: np.ndarray | float = 0.0
    n = 0
    for part in parts:
        for a in range(0, len(part), chunk):
            block = np.asarray(part[a : a + chunk], dtype=np.float64)
            total, sq, n = total + block.sum(0), sq + (block**2).sum(0), n + len(block)
    mean = cast(np.ndarray, total / n)  # an array: n > 0 means a block was added
    return mean.astype(np.float32), (np.sqrt(np.maximum(sq / n - mean**2, 0)) + 1e-6).astype(
        np.float32
    )


def center_in_place(tokens: np.ndarray, mean: np.ndarray, chunk: int = 2048) -> None:
    """tokens -= mean, float16 in place, `chunk` rows at a time (the values shrink, so they lose no
    precision): a narrow matmul dtype (bfloat16) then never multiplies large common offsets."""
    for a in range(0, len(tokens), chunk):
        tokens[a : a + chunk] = np.asarray(tokens[a : a + chunk], dtype=np.float32) - mean


def _standardise(
    train: np.ndarray, test: np.ndarray, axis=0, weights=None
) -> tuple[np.ndarray, np.ndarray]:
    flat = train[weights] if weights is not None else train
    mean, std = flat.mean(axis=axis), flat.std(axis=axis) + 1e-6
    return (train - mean) / std, (test - mean) / std


VALIDATION_FRACTION = 0.2


def validation_groups(train_groups: list[str], fold: str) -> list[str]:
    """About a fifth of the training problems (at least one), chosen by the fold key: the candidate's
    early-stopping set. Never the held-out problem; the rest of training fits the probe."""
    groups = sorted(train_groups)
    k = max(1, round(VALIDATION_FRACTION * len(groups)))
    rng = np.random.default_rng(int(hashlib.sha256(fold.encode()).hexdigest()[:8], 16))
    return sorted(rng.choice(groups, size=k, replace=False).tolist())


@dataclass
class FoldData:
    """Candidate inputs split into fit / validation (training problems) and test (the held-out
    problem), plus `reference`: numpy features of all training rows and the test rows for the
    candidate-independent baseline and control (see references.py)."""

    train: "ProbeInputs"
    val: "ProbeInputs"
    test: "ProbeInputs"
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    train_rows: pl.DataFrame  # every training row (fit and validation problems)
    test_rows: pl.DataFrame
    val_groups: list[str]
    reference: dict


def build_fold(
    corpus: pl.DataFrame,
    array: np.ndarray | None,
    index: pl.DataFrame | None,
    fold: str,
    pooling: str | None,
    need_tokens: bool,
) -> FoldData:
    """Standardised inputs for one held-out group (statistics from the training problems only).

    Tokens are copied once from the cache file per part (fit, validation, test) as packed float16
    (activation_cache.gather_rows: positioned reads, no page of the memmap kept resident): the
    fold's slice, no padding and no float32 copy; they are centred on the training mean in place and
    their std is applied on the fly by the probes. `corpus` must carry `uid`; `array`/`index` may
    be None for the position baseline alone."""
    import torch

    from proj_assets.probes.probe_models import ProbeInputs

    train_rows, test_rows = split(corpus, fold)
    val_groups = validation_groups(train_rows["group_id"].unique().to_list(), fold)
    train_rows = train_rows.with_columns(is_val=pl.col("group_id").is_in(val_groups)).sort(
        "is_val", maintain_order=True
    )
    is_val = train_rows["is_val"].to_numpy()
    train_rows = train_rows.drop("is_val")
    pos_tr, pos_te = _standardise(position_features(train_rows), position_features(test_rows))

    def to_t(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    parts = [
        ProbeInputs(to_t(pos_tr[~is_val])),
        ProbeInputs(to_t(pos_tr[is_val])),
        ProbeInputs(to_t(pos_te)),
    ]
    reference = {
        "position_train": pos_tr,
        "position_test": pos_te,
        "groups_train": train_rows["group_id"].to_numpy(),
        "pooled_train": None,
        "pooled_test": None,
    }
    if array is not None:
        assert index is not None  # `array` and `index` are given together
        uids = [
            train_rows["uid"].to_numpy()[~is_val],
            train_rows["uid"].to_numpy()[is_val],
            test_rows["uid"].to_numpy(),
        ]
        packed = [token_rows(index, u) for u in uids]
        tokens = [gather_rows(array, rows) for rows, _ in packed]
        lengths = [n for _, n in packed]
        means = [pool(t, n, "mean") for t, n in zip(tokens, lengths, strict=False)]
        reference["pooled_train"], reference["pooled_test"] = _standardise(
            np.concatenate(means[:2]), means[2]
        )
        if pooling:
            pooled = (
                means
                if pooling == "mean"
                else [pool(t, n, pooling) for t, n in zip(tokens, lengths, strict=False)]
            )
            fit, test_p = _standardise(np.concatenate(pooled[:2]), pooled[2])
            for part, values in zip(
                parts, (fit[: len(lengths[0])], fit[len(lengths[0]) :], test_p), strict=False
            ):
                part.pooled = to_t(values)
        if need_tokens:
            mean, std = token_stats(tokens[0], tokens[1])
            for part, t, n in zip(parts, tokens, lengths, strict=False):
                center_in_place(t, mean)
                part.tokens, part.lengths = (
                    torch.from_numpy(t),
                    torch.from_numpy(n.astype(np.int64)),
                )
                part.token_std = torch.from_numpy(std)
    y = train_rows["label"].to_numpy()
    return FoldData(
        parts[0],
        parts[1],
        parts[2],
        y[~is_val],
        y[is_val],
        test_rows["label"].to_numpy(),
        train_rows,
        test_rows,
        val_groups,
        reference,
    )
