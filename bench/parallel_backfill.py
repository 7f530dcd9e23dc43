"""Cluster throughput with 1 worker vs 2 workers, in one run (run: .venv/bin/python bench/parallel_backfill.py).

Starts a real cluster (PostgreSQL, Redis, dagster-daemon, Celery workers: proj_cluster), then
  - fold partitions per minute: an asset backfill of every `probes/sweep/fold_results` partition
    of a small sweep through the daemon, with one worker, then the same partitions with two;
  - HPO trials per minute: one `scaling/hpo/trials` cell (two trial-worker ops sharing one Optuna
    study in PostgreSQL) with one worker, then, after deleting the study, with two.
Rates are end to end (backfill submitted -> last run finished, run start-up included) and, for
the trials, also inside the study (first trial start -> last trial end). Prints the ratios, the
machine load before and after, and a projection of the 768-config x 20-fold stage-1 sweep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402

from proj_assets.profiles import PROFILES_DIR, load_profile  # noqa: E402
from proj_cluster.local_cluster import LocalCluster, environment  # noqa: E402
from proj_cluster.services import wait_until  # noqa: E402

STAGE1 = 768 * 20
CELL = "2k|h1"


def write_profile(folder: Path, n_groups: int, epochs: int, n_trials: int, trial_epochs: int) -> Path:
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    spec = {"name": "bench", "factors": {"probe_type": ["linear_probe"], "layer": [2], "learning_rate": [0.05, 0.1],
                                         "epochs": [epochs]},
            "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    raw["probes"] = {"sweep_spec": str(folder / "spec.yaml"), "train_threads": 1,
                     "corpus": {"n_groups": n_groups, "traces_per_group": 2, "seed": 3},
                     "model": {"max_tokens": 8, "batch_size": 32}}
    raw["scaling"].update({"n_trials": n_trials, "study_workers": 2})
    raw["scaling"]["trainer"].update({"max_epochs": trial_epochs, "patience": trial_epochs})
    path = folder / "bench_profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def backfill(cluster: LocalCluster, instance, asset: str, partitions: list[str]) -> float:
    """Wall seconds from submitting an asset backfill to its completion (every run succeeded)."""
    started = time.monotonic()
    backfill_id = cluster.backfill(asset, partitions)
    wait_until(lambda: instance.get_backfill(backfill_id).status.value.startswith(("COMPLETED", "FAILED")),
               3600, f"the {asset} backfill", interval=0.5)
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    if instance.get_backfill(backfill_id).status.value != "COMPLETED_SUCCESS" or any(
            r.status != dg.DagsterRunStatus.SUCCESS for r in runs):
        raise SystemExit(f"{asset} backfill {backfill_id} did not succeed: {[(r.run_id, r.status) for r in runs]}")
    return time.monotonic() - started


def prepare(cluster: LocalCluster, instance) -> list[str]:
    """Upstream of both benchmarks, in-process into the cluster's instance; the fold partitions."""
    from proj_assets.definitions import build_resources
    from proj_assets.market import assets as market_assets, checks as market_checks
    from proj_assets.probes import assets as probes_assets, checks as probes_checks
    from proj_assets.scaling import assets as scaling_assets, checks as scaling_checks

    defs = [*dg.load_assets_from_modules([market_assets, scaling_assets, probes_assets]),
            *dg.load_asset_checks_from_modules([market_checks, scaling_checks, probes_checks])]
    resources = build_resources(load_profile(), cluster.data_dir)
    for ticker in ("SP500", "NASDAQ", "VIX"):
        dg.materialize(defs, resources=resources, instance=instance, partition_key=ticker,
                       selection=[dg.AssetKey(market_assets.OHLCV)])
    keys = [market_assets.FEATURES, market_assets.TARGETS, market_assets.SPLITS, scaling_assets.ARCH_GRID,
            probes_assets.CORPUS, probes_assets.ACTIVATIONS, probes_assets.MANIFEST]
    dg.materialize(defs, resources=resources, instance=instance, selection=[dg.AssetKey(k) for k in keys])
    return [str(dg.MultiPartitionKey({"config": c, "fold": f})) for c in instance.get_dynamic_partitions("probe_config")
            for f in instance.get_dynamic_partitions("probe_fold")]


def hpo(cluster: LocalCluster, instance) -> tuple[float, float, int]:
    """(end-to-end s, in-study s, trials) for one fresh study of the cell."""
    url = cluster.env["PROJ_OPTUNA_STORAGE"]
    for name in [n for n in optuna.get_all_study_names(url) if n.endswith("__2k__h1")]:
        optuna.delete_study(study_name=name, storage=url)
    seconds = backfill(cluster, instance, "scaling/hpo/trials", [CELL])
    (name,) = [n for n in optuna.get_all_study_names(url) if n.endswith("__2k__h1")]
    trials = [t for t in optuna.load_study(study_name=name, storage=url).get_trials() if t.datetime_complete]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return seconds, span, len(trials)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=6, help="problems in the corpus: folds per config (2 configs)")
    parser.add_argument("--epochs", type=int, default=1500, help="probe epochs: the work of one fold partition")
    parser.add_argument("--trials", type=int, default=16, help="trials of the HPO cell")
    parser.add_argument("--trial-epochs", type=int, default=4, help="max epochs of one trial")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="proj_bench_cluster_"))
    os.chmod(state, 0o755)
    profile = write_profile(state, args.groups, args.epochs, args.trials, args.trial_epochs)
    cluster = LocalCluster(state / "cluster", state / "data")
    print(f"before: {load()}", flush=True)
    try:
        with environment({"PROJ_PROFILE": str(profile), "HF_HUB_OFFLINE": "1"}):
            cluster.start(cpu_workers=1)
            with environment({k: v for k, v in cluster.env.items() if k != "PROJ_CLUSTER"}), \
                    cluster.instance() as instance:
                partitions = prepare(cluster, instance)
                folds = {1: backfill(cluster, instance, "probes/sweep/fold_results", partitions)}
                trials = {1: hpo(cluster, instance)}
                print(f"1 worker done: {load()}", flush=True)
                cluster.start_worker("cpu-2")
                folds[2] = backfill(cluster, instance, "probes/sweep/fold_results", partitions)
                trials[2] = hpo(cluster, instance)
    finally:
        cluster.down()
        shutil.rmtree(state, ignore_errors=True)
    print(f"after: {load()}")
    rate = {n: len(partitions) / s * 60 for n, s in folds.items()}
    print(f"fold partitions: {len(partitions)} ({args.epochs} epochs; 2 seeds + control + baseline each)")
    for n in (1, 2):
        print(f"  {n} worker(s): {folds[n]:6.1f} s   {rate[n]:6.2f} partitions/min")
    print(f"  ratio 2/1: {rate[2] / rate[1]:.2f}x")
    print(f"HPO trials: one cell, {args.trials} trials (<= {args.trial_epochs} epochs), 2 trial-worker ops")
    for n in (1, 2):
        total, span, count = trials[n]
        print(f"  {n} worker(s): {total:6.1f} s end to end ({count / total * 60:6.2f} trials/min), "
              f"{span:6.1f} s in the study ({count / span * 60:6.2f} trials/min)")
    end_to_end = (trials[2][2] / trials[2][0]) / (trials[1][2] / trials[1][0])
    in_study = (trials[2][2] / trials[2][1]) / (trials[1][2] / trials[1][1])
    print(f"  ratio 2/1: {end_to_end:.2f}x end to end, {in_study:.2f}x in the study")
    efficiency = rate[2] / rate[1] / 2  # per-worker efficiency measured at 2 workers
    for n in (1, 8, 32, 64, 256):
        hours = STAGE1 / (rate[1] * (1 if n == 1 else n * efficiency)) / 60
        print(f"  projection: {STAGE1} stage-1 fold partitions of this size on {n:3d} workers ~ {hours:8.1f} h")


if __name__ == "__main__":
    main()
