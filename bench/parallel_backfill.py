"""Cluster throughput with 1 worker vs 2 workers, in one run (run: .venv/bin/python bench/parallel_backfill.py).

Starts a real cluster (PostgreSQL, Redis, dagster-daemon, Celery workers: proj_cluster), then
  - fold partitions per minute: an asset backfill of every `probes/sweep/fold_results` partition
    of a sweep shaped like a research one (more configs than folds, so Dagster's multi-run policy
    gives each run one fold's configs, trained together) through the daemon, with one worker,
    then the same partitions with two;
  - HPO trials per minute: one `scaling/hpo/trials` cell (two trial-worker ops sharing one Optuna
    study in PostgreSQL) with one worker, then, after deleting the study, with two.
The throughput is measured over the runs (first run started -> last run finished: run start-up,
code-location loads, every step and the pooled writes included); the daemon's tick latency
before the first run and after the last one (up to 30 s each, once per backfill however large)
is printed beside it as "submitted -> complete". For the trials also inside the study (first
trial start -> last trial end). Prints the ratios, the machine load before and after, and a
projection of the 768-config x 20-fold stage-1 sweep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg
import optuna
import yaml

from proj_assets.profiles import PROFILES_DIR, load_profile
from proj_cluster.local_cluster import LocalCluster, environment
from proj_cluster.services import wait_until

STAGE1 = 768 * 20
CELL = "2k|h1"


def write_profile(folder: Path, args) -> Path:
    """The demo profile with a bench sweep shaped like one (probe type, layer) group of the research
    spec: `args.probe` x 4 learning rates x 4 weight decays x 3 epoch budgets = 48 configs that
    train together, on `args.groups` problems (folds): a run holds one fold's 48 configs, as in the
    research sweep (probes.partitions_per_run 48). And one HPO cell of `args.trials` trials."""
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    spec = {
        "name": "bench",
        "factors": {
            "probe_type": [args.probe],
            "layer": [2],
            "learning_rate": [0.001, 0.003, 0.01, 0.03],
            "weight_decay": [0.0, 0.0001, 0.001, 0.01],
            "epochs": [args.epochs // 3, 2 * args.epochs // 3, args.epochs],
        },
        "stages": {"stage1_seeds": args.seeds, "stage2_seeds": args.seeds + 1, "promote_top_k": 1},
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    raw["probes"] = {
        "sweep_spec": str(folder / "spec.yaml"),
        "train_threads": 1,
        "corpus": {"n_groups": args.groups, "traces_per_group": args.traces, "seed": 3},
        "model": {"max_tokens": 24, "batch_size": 32},
    }
    n_trials, trial_epochs = args.trials, args.trial_epochs
    raw["scaling"].update({"n_trials": n_trials, "study_workers": 2})
    raw["scaling"]["trainer"].update({"max_epochs": trial_epochs, "patience": trial_epochs})
    path = folder / "bench_profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def backfill(
    cluster: LocalCluster, instance, asset: str, partitions: list[str]
) -> tuple[float, float, int]:
    """(first run start -> last run end s, submitted -> backfill complete s, runs) of an asset
    backfill whose every run succeeded."""
    started = time.monotonic()
    backfill_id = cluster.backfill(asset, partitions)
    wait_until(
        lambda: instance.get_backfill(backfill_id).status.value.startswith(("COMPLETED", "FAILED")),
        3600,
        f"the {asset} backfill",
        interval=0.5,
    )
    submitted_to_complete = time.monotonic() - started
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    if instance.get_backfill(backfill_id).status.value != "COMPLETED_SUCCESS" or any(
        r.status != dg.DagsterRunStatus.SUCCESS for r in runs
    ):
        failures = [
            e.dagster_event.event_specific_data.error.to_string()
            for r in runs
            for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
        raise SystemExit(
            f"{asset} backfill {backfill_id} did not succeed: {[(r.run_id, r.status) for r in runs]}\n"
            + "\n".join(failures[:2])
        )
    stats = [instance.get_run_stats(r.run_id) for r in runs]
    print(
        f"  {asset}: {len(runs)} runs of {statistics.mean(s.end_time - s.start_time for s in stats):.1f} s "
        f"on average; their steps: {step_seconds(instance, runs)}",
        flush=True,
    )
    return (
        max(s.end_time for s in stats) - min(s.start_time for s in stats),
        submitted_to_complete,
        len(runs),
    )


def step_seconds(instance, runs) -> str:
    """Mean seconds per run of each step (start -> success), e.g. compute vs write vs checks."""
    per_step: dict[str, list[float]] = {}
    for run in runs:
        starts = {}
        for entry in instance.all_logs(
            run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
        ):
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif entry.step_key in starts:
                per_step.setdefault(entry.step_key.split(".")[-1], []).append(
                    entry.timestamp - starts[entry.step_key]
                )
    return ", ".join(f"{name} {statistics.mean(v):.1f} s" for name, v in sorted(per_step.items()))


def prepare(cluster: LocalCluster, instance) -> list[str]:
    """Upstream of both benchmarks, in-process into the cluster's instance; the fold partitions."""
    from proj_assets.definitions import build_definitions, build_resources
    from proj_assets.market import assets as market_assets
    from proj_assets.probes import assets as probes_assets
    from proj_assets.scaling import assets as scaling_assets

    profile = (
        load_profile()
    )  # the bench profile: PROJ_PROFILE, set by main() for the cluster's processes too
    location = build_definitions(
        profile, cluster.data_dir
    )  # as the cluster's code location builds it (gates included)
    defs = [*location.assets, *location.asset_checks]
    resources = build_resources(profile, cluster.data_dir)
    for ticker in ("SP500", "NASDAQ", "VIX"):
        dg.materialize(
            defs,
            resources=resources,
            instance=instance,
            partition_key=ticker,
            selection=[dg.AssetKey(market_assets.OHLCV)],
        )
    keys = [
        market_assets.FEATURES,
        market_assets.TARGETS,
        market_assets.SPLITS,
        scaling_assets.ARCH_GRID,
        probes_assets.CORPUS,
        probes_assets.ACTIVATIONS,
        probes_assets.MANIFEST,
    ]
    dg.materialize(
        defs, resources=resources, instance=instance, selection=[dg.AssetKey(k) for k in keys]
    )
    return [
        str(dg.MultiPartitionKey({"config": c, "fold": f}))
        for c in instance.get_dynamic_partitions("probe_config")
        for f in instance.get_dynamic_partitions("probe_fold")
    ]


def hpo(cluster: LocalCluster, instance) -> tuple[float, float, float, int]:
    """(run s, submitted -> complete s, in-study s, trials) for one fresh study of the cell."""
    url = cluster.env["PROJ_OPTUNA_STORAGE"]
    for name in [n for n in optuna.get_all_study_names(url) if n.endswith("__2k__h1")]:
        optuna.delete_study(study_name=name, storage=url)
    seconds, latency, _runs = backfill(cluster, instance, "scaling/hpo/trials", [CELL])
    (name,) = [n for n in optuna.get_all_study_names(url) if n.endswith("__2k__h1")]
    trials = [
        t
        for t in optuna.load_study(study_name=name, storage=url).get_trials()
        if t.datetime_complete
    ]
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    ).total_seconds()
    return seconds, latency, span, len(trials)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--probe", default="attention_probe", help="probe type of the 48 bench configs"
    )
    parser.add_argument(
        "--groups",
        type=int,
        default=6,
        help="problems in the corpus: the folds (runs) per backfill",
    )
    parser.add_argument("--traces", type=int, default=36, help="traces per problem")
    parser.add_argument(
        "--epochs",
        type=int,
        default=60,
        help="the largest of the 3 epoch budgets (early stopping may end a fit sooner)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per config (the research stage 1 uses 3)"
    )
    parser.add_argument("--trials", type=int, default=32, help="trials of the HPO cell")
    parser.add_argument("--trial-epochs", type=int, default=60, help="max epochs of one trial")
    parser.add_argument("--only", choices=["folds", "hpo"], help="measure only this one")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="proj_bench_cluster_"))
    os.chmod(state, 0o755)
    profile = write_profile(state, args)
    cluster = LocalCluster(state / "cluster", state / "data")
    print(f"before: {load()}", flush=True)
    try:
        with environment({"PROJ_PROFILE": str(profile), "HF_HUB_OFFLINE": "1"}):
            cluster.start(cpu_workers=1, threads=1)
            with (
                environment({k: v for k, v in cluster.env.items() if k != "PROJ_CLUSTER"}),
                cluster.instance() as instance,
            ):
                partitions = prepare(cluster, instance)
                folds, trials = {}, {}
                for n in (1, 2):
                    if n == 2:
                        print(f"1 worker done: {load()}", flush=True)
                        cluster.start_worker("cpu-2", threads=1)
                    if args.only != "hpo":
                        folds[n] = backfill(
                            cluster, instance, "probes/sweep/fold_results", partitions
                        )
                        print(
                            f"{n} worker(s), folds (run s, submitted -> complete s, runs): {folds[n]}",
                            flush=True,
                        )
                    if args.only != "folds":
                        trials[n] = hpo(cluster, instance)
                        print(
                            f"{n} worker(s), HPO (run s, submitted -> complete s, in-study s, trials): {trials[n]}",
                            flush=True,
                        )
    finally:
        cluster.down()
        shutil.rmtree(state, ignore_errors=True)
    print(f"after: {load()}")
    report(args, partitions, folds, trials)


def report(args, partitions: list[str], folds: dict, trials: dict) -> None:
    if folds:
        report_folds(args, partitions, folds)
    if trials:
        report_trials(args, trials)


def report_folds(args, partitions: list[str], folds: dict) -> None:
    rate = {n: len(partitions) / s * 60 for n, (s, _latency, _runs) in folds.items()}
    print(
        f"fold partitions: {len(partitions)} ({args.probe}, 48 configs x {args.groups} folds, {args.seeds} seeds + "
        f"control + baseline each, <= {args.epochs} epochs) in {folds[1][2]} runs (one fold's configs per run)"
    )
    for n in (1, 2):
        seconds, latency, _runs = folds[n]
        print(
            f"  {n} worker(s): {seconds:6.1f} s over the runs ({rate[n]:6.2f} partitions/min); "
            f"submitted -> complete {latency:6.1f} s"
        )
    print(
        f"  ratio 2/1: {rate[2] / rate[1]:.2f}x (submitted -> complete: {folds[1][1] / folds[2][1]:.2f}x)"
    )
    efficiency = rate[2] / rate[1] / 2  # per-worker efficiency measured at 2 workers
    for n in (1, 8, 32, 64, 256):
        hours = STAGE1 / (rate[1] * (1 if n == 1 else n * efficiency)) / 60
        print(
            f"  projection: {STAGE1} stage-1 fold partitions of this size on {n:3d} workers ~ {hours:8.1f} h"
        )


def report_trials(args, trials: dict) -> None:
    print(
        f"HPO trials: one cell, {args.trials} trials (<= {args.trial_epochs} epochs), 2 trial-worker ops"
    )
    for n in (1, 2):
        seconds, latency, span, count = trials[n]
        print(
            f"  {n} worker(s): {seconds:6.1f} s over the run ({count / seconds * 60:6.2f} trials/min), "
            f"{span:6.1f} s in the study ({count / span * 60:6.2f} trials/min); submitted -> complete {latency:6.1f} s"
        )
    per_run = (trials[2][3] / trials[2][0]) / (trials[1][3] / trials[1][0])
    in_study = (trials[2][3] / trials[2][2]) / (trials[1][3] / trials[1][2])
    print(
        f"  ratio 2/1: {per_run:.2f}x over the run, {in_study:.2f}x in the study, "
        f"{(trials[2][3] / trials[2][1]) / (trials[1][3] / trials[1][1]):.2f}x submitted -> complete"
    )


if __name__ == "__main__":
    main()
