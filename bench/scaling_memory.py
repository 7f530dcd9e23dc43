"""Scaling memory: the estimate (memory.py) against the measured training peak, per shape, each in
a fresh process (a trial's peak is its own, never an earlier trial's high-water mark).

Per shape: the batch plan's micro-batch under --budget-mb, then `trainer.train` for one epoch of
--steps optimizer steps on random windows; measured = peak resident memory (CPU: VmHWM, reset
before the model is built) or `torch.cuda.max_memory_allocated` (CUDA) minus what was in use
before the model and data were built. Prints estimate, measured and their ratio; exits 1 when a
measured peak is above its estimate. Run: .venv/bin/python bench/scaling_memory.py [--device cuda]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (d_model, n_layers, n_heads, context_length): the research shapes the issue measured, and more.
SHAPES = [(256, 4, 4, 64), (512, 6, 8, 128), (128, 16, 4, 128), (64, 48, 2, 32)]


def measure(
    d_model: int,
    n_layers: int,
    n_heads: int,
    context: int,
    budget_mb: float,
    steps: int,
    device: str,
) -> dict:
    import numpy as np
    import torch

    from proj_assets.scaling.arch_grid import N_FEATURES
    from proj_assets.scaling.memory import plan_batch
    from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, numel
    from proj_assets.scaling.trainer import TrainConfig, train
    from proj_assets.scaling.windows import build_windows
    from proj_assets.shared.process_memory import current_rss_mb, peak_rss_mb, reset_peak_rss

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    config = ArchConfig(N_FEATURES, d_model, n_layers, n_heads)
    cuda = device == "cuda"
    before = torch.cuda.memory_allocated() / 2**20 if cuda else current_rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    model = TimeSeriesTransformer(config).to(device)
    plan = plan_batch(numel(model), N_FEATURES, d_model, n_layers, n_heads, context, 512, budget_mb)
    rng = np.random.default_rng(0)
    rows = plan.micro_batch * steps + context

    def split(n: int):
        return (
            rng.normal(size=(n, N_FEATURES)).astype(np.float32),
            (rng.random(n) > 0.5).astype(np.float32),
        )

    data = build_windows(
        {
            "train": split(rows),
            "val": split(context + plan.micro_batch),
            "test": split(context + 8),
        },
        context,
    ).to(device)
    train(
        model,
        data,
        TrainConfig(
            lr=1e-3,
            weight_decay=0.0,
            max_epochs=1,
            patience=1,
            min_delta=0.0,
            micro_batch=plan.micro_batch,
            accum_steps=1,
            grad_clip=1.0,
            time_limit_s=600,
            seed=0,
        ),
    )
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb()
    return {
        "shape": f"d{d_model} L{n_layers} h{n_heads} T{context}",
        "micro_batch": plan.micro_batch,
        "estimate_mb": round(plan.estimate_mb, 1),
        "measured_mb": round(peak - before, 1),
        "ratio": round((peak - before) / plan.estimate_mb, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--budget-mb", type=float, default=1200.0, help="memory budget of the batch plan"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one shape, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one), args.budget_mb, args.steps, args.device)))
        return 0
    print(f"load: {os.getloadavg()}, device {args.device}, budget {args.budget_mb} MB")
    failed = False
    for shape in SHAPES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                json.dumps(shape),
                "--budget-mb",
                str(args.budget_mb),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        holds = row["measured_mb"] <= row["estimate_mb"]
        failed |= not holds
        print(
            f"{row['shape']:>22}  micro-batch {row['micro_batch']:>4}  estimate {row['estimate_mb']:>8.1f} MB  "
            f"measured {row['measured_mb']:>8.1f} MB  ratio {row['ratio']:.2f}  {'ok' if holds else 'ABOVE ESTIMATE'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
