"""One fold of the sweep for a group of configs that share probe type, layer, batch size and heads:
every (config, seed) replica trained in one batched computation (per-replica learning rate, weight
decay and epoch budget), early-stopped on the fold's validation problems, then evaluated on the
held-out problem beside the candidate-independent references (position baseline, shuffled-label
control; references.py)."""

import os
from pathlib import Path

import numpy as np
import polars as pl
import torch

from proj_assets.probes.folds import FoldData, build_fold
from proj_assets.probes.probe_types import TOKEN_PROBES
from proj_assets.probes.references import fit_references, reference_spec
from proj_assets.probes.sweep_spec import SHARED_FIELDS, group_key
from proj_assets.probes.trainer import TrainParams, predict, replica_metrics, train_replicas
from proj_resources.hashing import canonical_hash

N_CONTROL_SEEDS = 3


def seeds_for(config: dict, base_seed: int) -> list[int]:
    """Stage 2 repeats stage 1's seeds and adds more, so the two stages share their first fits."""
    return [base_seed + i for i in range(int(config["n_seeds"]))]


def control_seeds(base_seed: int) -> list[int]:
    return [base_seed + i for i in range(N_CONTROL_SEEDS)]


def fold_inputs(config: dict, corpus: pl.DataFrame, array, index, fold: str) -> FoldData:
    token = config["probe_type"] in TOKEN_PROBES
    return build_fold(
        corpus, array, index, fold, pooling=None if token else config["pooling"], need_tokens=token
    )


def references_for(data: FoldData, base_seed: int) -> pl.DataFrame:
    ref = data.reference
    return fit_references(
        ref["position_train"],
        ref["pooled_train"],
        data.train_rows["label"].to_numpy(),
        ref["groups_train"],
        ref["position_test"],
        ref["pooled_test"],
        control_seeds(base_seed),
    )


def cached_references(
    data: FoldData, base_seed: int, root: Path, corpus_hash: str, fold: str, activations_hash: str
) -> pl.DataFrame:
    """The fold's references, fit once and reused by every config of the fold (and layer): a
    content-addressed Parquet under `root`, written to a temp name and renamed."""
    path = (
        root
        / f"{canonical_hash(reference_spec(corpus_hash, fold, activations_hash, control_seeds(base_seed)))}.parquet"
    )
    if path.is_file():
        return pl.read_parquet(path)
    refs = references_for(data, base_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    refs.write_parquet(tmp)
    os.replace(tmp, path)
    return refs


def run_group_fold(
    configs: list[dict],
    data: FoldData,
    fold: str,
    base_seed: int,
    references: pl.DataFrame | None = None,
    device: str = "cpu",
    matmul_dtype: torch.dtype = torch.float32,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metrics: one row per config x role x seed, predictions: one row per config x role x seed x
    test sentence). `references` (from references_for, cached by the caller) are fit when None;
    token probes multiply in `matmul_dtype` (probe_models.matmul_dtype resolves the setting)."""
    keys = {group_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError(f"configs trained together must share {SHARED_FIELDS}; got {sorted(keys)}")
    first = configs[0]
    owners = [(c, s) for c in configs for s in seeds_for(c, base_seed)]
    hp = TrainParams(
        [c["learning_rate"] for c, _ in owners],
        [c["weight_decay"] for c, _ in owners],
        [c["epochs"] for c, _ in owners],
        int(first["batch_size"]),
        max(int(first["n_heads"]), 1),
    )
    seeds = [s for _, s in owners]
    params = train_replicas(
        first["probe_type"],
        data.train,
        np.tile(data.y_train, (len(seeds), 1)),
        seeds,
        hp,
        data.val,
        np.tile(data.y_val, (len(seeds), 1)),
        device=device,
        matmul_dtype=matmul_dtype,
    )
    probs = predict(first["probe_type"], params, data.test, matmul_dtype)
    refs = references if references is not None else references_for(data, base_seed)
    importance = (
        data.test_rows["importance"].to_numpy() if "importance" in data.test_rows.columns else None
    )
    common = {
        "fold": fold,
        "n_train": data.train_rows.height,
        "n_test": len(data.y_test),
        "n_test_positive": int(data.y_test.sum()),
        "val_groups": ",".join(data.val_groups),
        "test_groups": ",".join(sorted(data.test_rows["group_id"].unique().to_list())),
        "train_groups": ",".join(sorted(data.train_rows["group_id"].unique().to_list())),
    }
    ref_rows = [
        (role, seed, grp)
        for (role, seed), grp in refs.sort("row").group_by(
            ["role", "probe_seed"], maintain_order=True
        )
    ]
    metrics, predictions = [], []
    for config in configs:
        # (role, probe, seed, test probabilities, epochs run, reference C, reference converged)
        fits: list[tuple[str, str, int, np.ndarray, float | None, float | None, bool | None]] = [
            (
                "candidate",
                config["probe_type"],
                s,
                probs[i],
                float(params["epochs_run"][i]),
                None,
                None,
            )
            for i, (c, s) in enumerate(owners)
            if c is config
        ]
        fits += [
            (
                role,
                "position_baseline" if role == "baseline" else "logistic_regression_mean_pooled",
                seed,
                grp["probability"].to_numpy(),
                None,
                float(grp["c"][0]),
                bool(grp["converged"][0]),
            )
            for role, seed, grp in ref_rows
        ]
        for (role, probe, seed, p, epochs_run, c, converged), m in zip(
            fits,
            replica_metrics(data.y_test, np.stack([f[3] for f in fits]), importance),
            strict=False,
        ):
            metrics.append(
                {
                    "config_id": config["config_id"],
                    "stage": int(config["stage"]),
                    "role": role,
                    "probe": probe,
                    "probe_seed": int(seed),
                    **m,
                    "epochs_run": epochs_run,
                    "reference_c": c,
                    "reference_converged": converged,
                    **common,
                }
            )
            predictions.append(
                pl.DataFrame(
                    {
                        "config_id": config["config_id"],
                        "fold": fold,
                        "role": role,
                        "probe_seed": int(seed),
                        "uid": data.test_rows["uid"],
                        "group_id": data.test_rows["group_id"],
                        "label": data.test_rows["label"],
                        "probability": np.asarray(p, dtype=np.float64),
                    }
                )
            )
    schema = {
        "epochs_run": pl.Float64,
        "reference_c": pl.Float64,
        "reference_converged": pl.Boolean,
    }
    return pl.DataFrame(metrics, schema_overrides=schema), pl.concat(predictions)
