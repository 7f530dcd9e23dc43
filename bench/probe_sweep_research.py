"""The research-shaped token-probe fold and the operator count of a token-probe epoch, for
bench/probe_sweep.py (`--only research`, `--only operators`). Run alone, it measures one probe type
on a cache the parent wrote, so each process's peak RSS is its own:
.venv/bin/python bench/probe_sweep_research.py <probe_type> --cache DIR [--seeds 20] [--epochs 2]
[--device cpu|cuda]. One epoch is trained first to warm up (kernels, allocator); on CUDA the peak
is `torch.cuda.max_memory_allocated` above what was allocated before the fold.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proj_assets.probes.activation_cache import open_cache
from proj_assets.probes.corpus import coerce_corpus, with_sentence_uid
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.fold_run import fold_inputs
from proj_assets.probes.probe_models import matmul_dtype
from proj_assets.probes.probe_types import CANDIDATE_PROBES
from proj_assets.probes.trainer import TrainParams, train_replicas
from proj_assets.shared.process_memory import current_rss_mb, peak_rss_mb

DTYPE = matmul_dtype("auto", "cpu")


def research_corpus():
    return with_sentence_uid(coerce_corpus(generate_corpus(10, 14, 0.08, seed=7), "generated"))


def write_research_cache(folder: Path, length: int = 64, dim: int = 1536) -> None:
    """A research-shaped float16 cache: every sentence 64 tokens x 1536 dims, a signal on dim 0."""
    from proj_assets.probes.activation_cache import CacheWriter

    corpus = research_corpus()
    folder.mkdir(parents=True)
    writer = CacheWriter(
        folder, {"bench": True}, corpus["uid"].to_numpy(), np.full(corpus.height, length), dim
    )
    rng = np.random.default_rng(0)
    for uid, label in zip(corpus["uid"].to_list(), corpus["label"].to_list(), strict=False):
        block = rng.standard_normal((length, dim), dtype=np.float32)
        block[:, 0] += 0.8 * label
        writer.put(uid, block)
    writer.close()


def research_case(
    probe_type: str, seeds: int, epochs: int, folder: Path, device: str = "cpu"
) -> dict:
    """One research-shaped fold (>= 1000 training sentences x 64 tokens x 1536 dims, written by
    the parent process so this process never maps it for writing): s/epoch for `seeds` replicas,
    and the peak memory above the process (CPU RSS) or the allocator (CUDA) just before the fold
    is built."""
    cuda = device == "cuda"
    corpus = research_corpus()
    array, index, _ = open_cache(folder)
    before = torch.cuda.memory_allocated() / 2**20 if cuda else current_rss_mb()
    data = fold_inputs(
        {"probe_type": probe_type, "pooling": "mean"}, corpus, array, index, "problem_00"
    )
    dtype = matmul_dtype("auto", device)

    def fit(epochs: int) -> float:
        start = time.perf_counter()
        train_replicas(
            probe_type,
            data.train,
            np.tile(data.y_train, (seeds, 1)),
            list(range(seeds)),
            TrainParams(0.01, 0.001, epochs, 256, 4, patience=epochs),
            data.val,
            np.tile(data.y_val, (seeds, 1)),
            device=device,
            matmul_dtype=dtype,
        )
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    fit(1)  # warm-up on either device, so the CPU baseline gets the same care as the GPU
    per_epoch = fit(epochs) / epochs
    return {
        "probe": probe_type,
        "device": device,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "train_sentences": len(data.y_train) + len(data.y_val),
        "s_per_epoch": per_epoch,
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb(),
        "before_fold_mb": before,
        "fold_fp16_slice_mb": array.shape[0] * array.shape[1] * 2 / 2**20,
    }


def run_research_cases(seeds: int, epochs: int, threads: int, device: str = "cpu") -> list[dict]:
    """Each probe type in its own process, so each peak RSS is its own."""
    import subprocess

    rows = []
    with tempfile.TemporaryDirectory(prefix="probe_research_") as tmp:
        write_research_cache(Path(tmp) / "cache")
        for probe in CANDIDATE_PROBES:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    probe,
                    "--cache",
                    str(Path(tmp) / "cache"),
                    "--seeds",
                    str(seeds),
                    "--epochs",
                    str(epochs),
                    "--threads",
                    str(threads),
                    "--device",
                    device,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def operator_counts(
    probe_type: str, cases=((256, 3), (1024, 3), (1024, 20), (4096, 20))
) -> list[dict]:
    """Operators (torch profiler events) of one training epoch on synthetic tokens, 4 minibatches
    per epoch whatever the size, 16 tokens x 64 dims per sentence: per epoch and per computed
    minibatch (a step computes each minibatch some replica is on once, for all of them)."""
    from torch.profiler import ProfilerActivity, profile

    from proj_assets.probes.probe_models import ProbeInputs

    rows = []
    for n, replicas in cases:
        gen = torch.Generator().manual_seed(0)
        lengths = torch.full((n,), 16)
        inputs = ProbeInputs(
            torch.zeros(n, 2),
            torch.zeros(n, 64),
            torch.randn(n * 16, 64, generator=gen).half(),
            lengths,
            torch.ones(64),
        )
        labels = np.tile((np.arange(n) % 2).astype(np.float32), (replicas, 1))
        hp = TrainParams(0.01, 0.0, 1, n // 4, 2)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_replicas(
                probe_type, inputs, labels, list(range(replicas)), hp, matmul_dtype=torch.float32
            )
        visits = np.stack([np.random.default_rng(s).permutation(4) for s in range(replicas)])
        computed = sum(len(np.unique(visits[:, step])) for step in range(4))
        ops = sum(e.count for e in prof.key_averages())
        rows.append(
            {
                "sentences": n,
                "replicas": replicas,
                "ops_per_epoch": ops,
                "minibatches_computed": computed,
                "ops_per_minibatch": ops / computed,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="one research-shaped fold of one probe type")
    parser.add_argument("probe_type", choices=CANDIDATE_PROBES)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        json.dumps(research_case(args.probe_type, args.seeds, args.epochs, args.cache, args.device))
    )


if __name__ == "__main__":
    main()
