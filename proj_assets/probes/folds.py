"""Leave-one-problem-out folds and the standardised tensors a fold trains and tests on."""

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl


def lopo_folds(corpus: pl.DataFrame) -> list[str]:
    """One fold per group: the fold key is the held-out group id."""
    return sorted(corpus["group_id"].unique().to_list())


def split(corpus: pl.DataFrame, fold: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test): test is exactly the held-out group, train every other group."""
    if fold not in set(corpus["group_id"].to_list()):
        raise KeyError(f"fold {fold!r} is not a group of the corpus (groups: {lopo_folds(corpus)[:10]}...)")
    return corpus.filter(pl.col("group_id") != fold), corpus.filter(pl.col("group_id") == fold)


def position_features(rows: pl.DataFrame) -> np.ndarray:
    """What the position baseline sees: relative position, its square, log index, log length, is-last."""
    idx = rows["sentence_idx"].to_numpy().astype(np.float64)
    n = rows["n_sentences"].to_numpy().astype(np.float64)
    rel = np.where(n > 1, idx / np.maximum(n - 1, 1), 0.0)
    return np.stack([rel, rel**2, np.log1p(idx), np.log1p(n), (idx == n - 1).astype(np.float64)], axis=1)


def padded_tokens(array: np.ndarray, index: pl.DataFrame, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens [N, T, D] (float32, zero padded) and mask [N, T] for the given sentences."""
    by_uid = index.select("uid", "offset", "length").join(pl.DataFrame({"uid": uids}), on="uid", how="right")
    if by_uid["offset"].null_count():
        missing = by_uid.filter(pl.col("offset").is_null())["uid"].head(5).to_list()
        raise KeyError(f"sentences {missing} are not in the activation index")
    offsets, lengths = by_uid["offset"].to_numpy(), by_uid["length"].to_numpy()
    width = int(lengths.max())
    tokens = np.zeros((len(uids), width, array.shape[1]), dtype=np.float32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    rows = np.concatenate([np.arange(o, o + n) for o, n in zip(offsets, lengths)])
    tokens[mask] = np.asarray(array[rows], dtype=np.float32)
    return tokens, mask


def pool(tokens: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    if how == "mean":
        return (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    if how == "max":
        return np.where(mask[..., None], tokens, -np.inf).max(1)
    if how == "last":
        return tokens[np.arange(len(tokens)), mask.sum(1) - 1]
    raise ValueError(f"unknown pooling {how!r} (mean, max or last)")


def _standardise(train: np.ndarray, test: np.ndarray, axis=0, weights=None) -> tuple[np.ndarray, np.ndarray]:
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
    train: "ProbeInputs"  # noqa: F821 (torch is imported only when a fold is built)
    val: "ProbeInputs"  # noqa: F821
    test: "ProbeInputs"  # noqa: F821
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    train_rows: pl.DataFrame  # every training row (fit and validation problems)
    test_rows: pl.DataFrame
    val_groups: list[str]
    reference: dict


def build_fold(corpus: pl.DataFrame, array: np.ndarray | None, index: pl.DataFrame | None, fold: str,
               pooling: str | None, need_tokens: bool) -> FoldData:
    """Standardised inputs for one held-out group (statistics from the training problems only).

    `corpus` must carry `uid`; `array`/`index` may be None for the position baseline alone."""
    import torch

    from proj_assets.probes.probe_models import ProbeInputs

    train_rows, test_rows = split(corpus, fold)
    val_groups = validation_groups(train_rows["group_id"].unique().to_list(), fold)
    is_val = train_rows["group_id"].is_in(val_groups).to_numpy()
    pos_tr, pos_te = _standardise(position_features(train_rows), position_features(test_rows))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    train, test = ProbeInputs(to_t(pos_tr)), ProbeInputs(to_t(pos_te))
    reference = {"position_train": pos_tr, "position_test": pos_te, "groups_train": train_rows["group_id"].to_numpy(),
                 "pooled_train": None, "pooled_test": None}
    if array is not None:
        tok_tr, m_tr = padded_tokens(array, index, train_rows["uid"].to_numpy())
        tok_te, m_te = padded_tokens(array, index, test_rows["uid"].to_numpy())
        reference["pooled_train"], reference["pooled_test"] = _standardise(pool(tok_tr, m_tr, "mean"), pool(tok_te, m_te, "mean"))
        if pooling:
            p_tr, p_te = _standardise(pool(tok_tr, m_tr, pooling), pool(tok_te, m_te, pooling))
            train.pooled, test.pooled = to_t(p_tr), to_t(p_te)
        if need_tokens:
            tok_tr, tok_te = _standardise(tok_tr, tok_te, weights=m_tr)
            train.tokens, train.mask = to_t(tok_tr * m_tr[..., None]), torch.from_numpy(m_tr)
            test.tokens, test.mask = to_t(tok_te * m_te[..., None]), torch.from_numpy(m_te)
    y = train_rows["label"].to_numpy()
    fit_idx, val_idx = torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))
    return FoldData(train.rows(fit_idx), train.rows(val_idx), test, y[~is_val], y[is_val], test_rows["label"].to_numpy(),
                    train_rows, test_rows, val_groups, reference)
