"""Benchmark of the scaling search on the demo data (run: .venv/bin/python bench/hpo.py).

Prints, in one run: the best validation loss after 20 trials of TPE against random search at
equal trials (median over 3 seeds, same forced extremes first, no pruner); trials per minute with
and without the median pruner at equal trial count (and the best validation loss each reached),
and the time per epoch at the demo's largest budget
for the trainer at 2 threads and 1 thread against a plain single-threaded loop (windows stacked
in Python, one optimizer step per batch) measured in the same run. `--samplers-only` runs just the
TPE-vs-random comparison.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proj_assets.market.features import FEATURE_NAMES, compute_features
from proj_assets.market.panel import split_arrays
from proj_assets.market.splits import build_splits
from proj_assets.market.targets import compute_targets
from proj_assets.profiles import load_profile
from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.extremes import extreme_architectures
from proj_assets.scaling.hpo import (
    CellContext,
    Objective,
    extreme_trials,
    make_sampler_and_pruner,
    run_trials,
)
from proj_assets.scaling.memory import plan_batch
from proj_assets.scaling.model import (
    ArchConfig,
    TimeSeriesTransformer,
    count_parameters,
)
from proj_assets.scaling.study import enqueue_missing_extremes
from proj_assets.scaling.trainer import TrainConfig, train
from proj_assets.scaling.windows import build_windows
from proj_resources.market_sources import load_arch

N_TRIALS = 10
SAMPLER_TRIALS = 20
SAMPLER_SEEDS = (0, 1, 2)
SAMPLER_EPOCHS = 4  # the sampler comparison trains 120 trials: a shorter cap keeps it to minutes
EPOCH_REPEATS = 3


SEARCH_EPOCHS = 8


def demo_splits(profile, horizon=1) -> dict:
    market = profile.market
    prices, index = load_arch(market.target_ticker), load_arch(market.vol_index_ticker)
    features = compute_features(prices, index, market.vol_index_fallback)
    targets = compute_targets(prices, market.horizons, market.rise_threshold).join(
        features.select("date"), on="date", how="semi"
    )
    splits = build_splits(features, targets, FEATURE_NAMES, market.splits.train, market.splits.val)
    arrays = split_arrays(features, targets, splits, horizon)
    return {"train": arrays.train, "val": arrays.val, "test": arrays.test}


def search(
    settings,
    grid,
    splits,
    budget,
    memory_budget_mb,
    pruning: bool,
    n_trials: int = N_TRIALS,
    seed: int = 0,
    random: bool = False,
) -> tuple[float, float]:
    import optuna

    budget_grid = grid.filter(pl.col("budget") == budget)
    sampler, pruner = make_sampler_and_pruner(settings, seed, pruning)
    if random:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    enqueue_missing_extremes(study, extreme_trials(extreme_architectures(budget_grid), settings))
    objective = Objective(
        CellContext(budget_grid, splits, settings, memory_budget_mb, "cpu", seed),
        lambda: False,
        lambda _m: None,
    )
    started = time.perf_counter()
    run_trials(study, objective, n_trials)
    minutes = (time.perf_counter() - started) / 60
    return n_trials / minutes, study.best_value


def sampler_comparison(settings, grid, splits, budget, memory_budget_mb) -> None:
    """TPE against random search, both after the same forced extremes, best val loss per seed."""
    trainer = settings.trainer.model_copy(
        update={"max_epochs": SAMPLER_EPOCHS, "patience": SAMPLER_EPOCHS}
    )
    settings = settings.model_copy(update={"trainer": trainer})
    best = {"tpe": [], "random": []}
    for seed in SAMPLER_SEEDS:
        for name in best:
            best[name].append(
                search(
                    settings,
                    grid,
                    splits,
                    budget,
                    memory_budget_mb,
                    False,
                    SAMPLER_TRIALS,
                    seed,
                    random=name == "random",
                )[1]
            )
    print(
        f"best val loss after {SAMPLER_TRIALS} trials, seeds {SAMPLER_SEEDS} (no pruner, <= {SAMPLER_EPOCHS} epochs):"
    )
    for name, values in best.items():
        print(
            f"  {name:6s}: median {statistics.median(values):.4f}  per seed {[round(v, 4) for v in values]}"
        )
    ratio = statistics.median(best["tpe"]) / statistics.median(best["random"])
    print(
        f"  TPE / random median best val loss: {ratio:.4f} (< 1: TPE found better configurations)"
    )


def plain_epoch(model, splits, context, batch, lr) -> float:
    """The loop one would write by hand: windows stacked with Python slicing, one step per batch."""
    x, y = splits["train"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    ends = np.arange(context - 1, len(x))
    started = time.perf_counter()
    for start in range(0, len(ends), batch):
        idx = ends[start : start + batch]
        windows = torch.from_numpy(np.stack([x[t - context + 1 : t + 1] for t in idx]))
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(windows), torch.from_numpy(y[idx])
        )
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def epoch_times(settings, grid, splits, budget, memory_budget_mb) -> dict:
    arch = (
        grid.filter(pl.col("budget") == budget).sort("n_params", descending=True).row(0, named=True)
    )
    context = max(settings.search.context_lengths)
    n_features, ffn_mult = len(FEATURE_NAMES), settings.arch.ffn_mult
    n_params = count_parameters(n_features, arch["d_model"], arch["n_layers"], ffn_mult)
    plan = plan_batch(
        n_params,
        n_features,
        arch["d_model"],
        arch["n_layers"],
        arch["n_heads"],
        context,
        settings.trainer.effective_batch,
        memory_budget_mb,
        ffn_mult,
    )
    data = build_windows(splits, context)
    config = TrainConfig(1e-3, 1e-2, 1, 1, 0.0, plan.micro_batch, plan.accum_steps, 1.0, 1e9, 0)
    out = {
        "arch": f"d_model={arch['d_model']} n_layers={arch['n_layers']} n_heads={arch['n_heads']} "
        f"({n_params} params, context {context}, {len(data.ends['train'])} train windows)"
    }
    for label, threads in (
        ("plain loop, 1 thread", 1),
        ("trainer, 1 thread", 1),
        ("trainer, 2 threads", 2),
    ):
        torch.set_num_threads(threads)
        times = []
        for repeat in range(EPOCH_REPEATS):
            torch.manual_seed(repeat)
            model = TimeSeriesTransformer(
                ArchConfig(
                    n_features,
                    arch["d_model"],
                    arch["n_layers"],
                    arch["n_heads"],
                    ffn_mult,
                    dropout=0.1,
                )
            )
            if label.startswith("plain"):
                times.append(
                    plain_epoch(model, splits, context, settings.trainer.effective_batch, 1e-3)
                )
            else:
                times.append(
                    train(model, data, config).duration_s
                )  # one epoch incl. val + test evaluation
        out[label] = statistics.median(times)
    return out


def main(samplers_only: bool = False) -> None:
    profile = load_profile("demo")
    settings = profile.scaling
    torch.set_num_threads(profile.compute.threads)
    splits = demo_splits(profile)
    memory_budget_mb = profile.compute.memory_budget_mb
    grid = enumerate_grid(settings.budgets, settings.arch, len(FEATURE_NAMES))
    budget = sorted(settings.budgets, key=settings.budgets.get)[1]
    # The demo trains 2 epochs, which leaves a pruner nothing to cut: compare at SEARCH_EPOCHS.
    trainer = settings.trainer.model_copy(
        update={"max_epochs": SEARCH_EPOCHS, "patience": SEARCH_EPOCHS}
    )
    settings = settings.model_copy(update={"trainer": trainer})
    print(
        f"search on budget {budget}, horizon h1, {N_TRIALS} trials each, up to {SEARCH_EPOCHS} epochs "
        f"(threads={profile.compute.threads}; one untimed warm-up search first)"
    )
    sampler_comparison(settings, grid, splits, budget, memory_budget_mb)
    if samplers_only:
        return
    search(
        settings, grid, splits, budget, memory_budget_mb, pruning=False
    )  # warm-up: first-call costs are not counted
    with_rate, with_best = search(settings, grid, splits, budget, memory_budget_mb, pruning=True)
    without_rate, without_best = search(
        settings, grid, splits, budget, memory_budget_mb, pruning=False
    )
    print(f"  with median pruner : {with_rate:6.2f} trials/min, best val loss {with_best:.4f}")
    print(
        f"  without pruner     : {without_rate:6.2f} trials/min, best val loss {without_best:.4f}"
    )
    print(f"  speed-up from pruning: {with_rate / without_rate:.2f}x")
    largest = max(settings.budgets, key=settings.budgets.get)
    times = epoch_times(settings, grid, splits, largest, memory_budget_mb)
    print(f"time per epoch at budget {largest}: {times.pop('arch')} (median of {EPOCH_REPEATS})")
    base = times["plain loop, 1 thread"]
    for label, seconds in times.items():
        print(f"  {label:22s}: {seconds:6.3f} s/epoch  ({base / seconds:.2f}x vs plain loop)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--samplers-only", action="store_true", help="run just the TPE-vs-random comparison"
    )
    main(samplers_only=parser.parse_args().samplers_only)
