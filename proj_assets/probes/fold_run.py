"""One config × fold of the sweep: the config's probe, its shuffled-label control and the position
baseline, each trained for all seeds at once, evaluated on the held-out group."""

import time

import numpy as np
import polars as pl

from proj_assets.probes.folds import FoldData, build_fold
from proj_assets.probes.probe_types import TOKEN_PROBES
from proj_assets.probes.trainer import TrainParams, predict, replica_metrics, shuffled_labels, train_replicas

ROLES = ("candidate", "control", "baseline")


def seeds_for(config: dict, base_seed: int) -> list[int]:
    """Stage 2 repeats stage 1's seeds and adds more, so the two stages share their first fits."""
    return [base_seed + i for i in range(int(config["n_seeds"]))]


def fold_inputs(config: dict, corpus: pl.DataFrame, array, index, fold: str) -> FoldData:
    token = config["probe_type"] in TOKEN_PROBES
    return build_fold(corpus, array, index, fold, pooling=None if token else config["pooling"], need_tokens=token)


def run_config_fold(config: dict, data: FoldData, fold: str, base_seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metrics: one row per role × seed, predictions: one row per role × seed × test sentence)."""
    seeds = seeds_for(config, base_seed)
    hp = TrainParams(config["learning_rate"], config["weight_decay"], config["epochs"], config["batch_size"],
                     max(int(config["n_heads"]), 1))
    order_seed = base_seed
    n_seeds = len(seeds)
    started = time.perf_counter()
    # candidate and control share one batched run: replicas 0..S-1 see true labels, S..2S-1 shuffled ones
    labels = np.concatenate([np.tile(data.y_train, (n_seeds, 1)), shuffled_labels(data.y_train, seeds)])
    params = train_replicas(config["probe_type"], data.train, labels, seeds + seeds, hp, order_seed)
    probs_cc = predict(config["probe_type"], params, data.test)
    base_params = train_replicas("position_baseline", data.train, np.tile(data.y_train, (n_seeds, 1)), seeds, hp, order_seed)
    probs = {"candidate": probs_cc[:n_seeds], "control": probs_cc[n_seeds:],
             "baseline": predict("position_baseline", base_params, data.test)}
    fit_seconds = time.perf_counter() - started
    train_groups = ",".join(sorted(data.train_rows["group_id"].unique().to_list()))
    test_groups = ",".join(sorted(data.test_rows["group_id"].unique().to_list()))
    metrics, predictions = [], []
    for role in ROLES:
        probe = "position_baseline" if role == "baseline" else config["probe_type"]
        for seed, m, p in zip(seeds, replica_metrics(data.y_test, probs[role]), probs[role]):
            metrics.append({"config_id": config["config_id"], "fold": fold, "stage": int(config["stage"]),
                            "role": role, "probe": probe, "probe_seed": seed, **m,
                            "n_train": len(data.y_train), "n_test": len(data.y_test),
                            "n_test_positive": int(data.y_test.sum()), "test_groups": test_groups,
                            "train_groups": train_groups, "fit_seconds": fit_seconds / (3 * n_seeds)})
            predictions.append(pl.DataFrame({
                "config_id": config["config_id"], "fold": fold, "role": role, "probe_seed": seed,
                "uid": data.test_rows["uid"], "group_id": data.test_rows["group_id"],
                "label": data.test_rows["label"], "probability": p.astype(np.float64)}))
    return pl.DataFrame(metrics), pl.concat(predictions)
