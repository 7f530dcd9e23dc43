"""Per-run overhead: a backfill launched through a real `dagster-daemon` vs the same partitions
materialized in-process, measured in one run.

A temporary DAGSTER_HOME gets the project's dagster.yaml (its concurrency, run-queue and
run-monitoring settings; only the storage paths point into the temp folder) and a temp data dir.
The probes inputs (corpus, activations, manifest) are materialized once in-process, then:

1. an asset backfill of `probes/sweep/fold_results` partitions (as the UI's "Materialize"
   submits it; `proj_cluster.backfill`: the asset's multi-run policy plans ranges) executed by
   `dagster-daemon run` (queued run coordinator, default run launcher: one `dagster api
   execute_run` process per run, which loads the code location), against the same ranges run
   in-process (`entrypoints.demo.plan_runs`, as `make demo` does);
2. a CLI job backfill of `probes_sweep_job` for the same partitions (Dagster launches one run per
   partition for a job backfill), against one in-process run per partition;
3. one-partition backfills, each launched like the UI's "Launch backfill": a fold partition of
   `probes_sweep_job` and a ticker of `market_ohlcv_job` (the location's in-process executor:
   one process per run).

Prints wall times, each launched / in-process ratio (goal <= 2), how long the backfill daemon took
to create the first run (its loop ticks every 30 s, so 0-30 s of the launched time is where the
submission fell in that cycle) and the one-partition run times (goal <= 10 s on an idle 2-core
machine). Run: .venv/bin/python bench/backfill_overhead.py [--partitions 24]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def write_home(home: Path) -> dict:
    """The project's dagster.yaml with its storage paths moved under `home`; the environment."""
    config = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    config["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    config["local_artifact_storage"]["config"]["base_dir"] = str(home)
    config["compute_logs"]["config"]["base_dir"] = str(home / "logs")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: proj_assets.definitions\n"
        f"      location_name: proj_research\n      working_directory: {PROJECT}\n"
    )
    env = {
        "DAGSTER_HOME": str(home),
        "PROJ_DATA_DIR": str(home / "data"),
        "PROJ_PROFILE": "demo",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    return {**os.environ, **env}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def backfill(
    env: dict, home: Path, instance, job: str, partitions: list[str], asset=None
) -> tuple[float, list]:
    """Submit a backfill: of `asset` as the UI's "Materialize" on partitions does (an asset
    backfill: the asset's backfill policy plans the runs), else of `job` through the CLI (a job
    backfill: one run per partition). Seconds from the backfill's creation until its last run
    ended, and the run records."""
    import dagster as dg

    from proj_cluster.backfill import submit_asset_backfill

    before = {r.run_id for r in instance.get_runs()}
    started = time.time()
    if asset is not None:
        submit_asset_backfill(asset, partitions, workspace=home / "workspace.yaml")
    else:
        out = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "backfill",
                "-w",
                str(home / "workspace.yaml"),
                "-j",
                job,
                "--partitions",
                ",".join(partitions),
                "--noprompt",
            ],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode:
            raise RuntimeError(out.stdout + out.stderr)

    def finished():
        (backfill,) = [
            b for b in instance.get_backfills(limit=1) if b.backfill_timestamp >= started - 1
        ]
        runs = [
            r
            for r in instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
            )
            if r.run_id not in before
        ]
        done = (
            backfill.status.value.startswith(("COMPLETED", "FAILED"))
            and runs
            and all(r.is_finished for r in runs)
        )
        return runs if done else None

    runs = wait_for(
        finished, 3600, f"the runs of the {job} backfill of {len(partitions)} partitions"
    )
    failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    if failed:
        raise RuntimeError(f"runs failed: {failed} (logs under {home})")
    records = [instance.get_run_record_by_id(r.run_id) for r in runs]
    created = instance.get_backfill(runs[0].tags["dagster/backfill"]).backfill_timestamp
    first = min(r.create_timestamp.timestamp() for r in records) - created
    print(
        f"  {asset.to_user_string() if asset else job} x{len(partitions)}: submission (loads the code location) "
        f"took {created - started:.1f} s; the daemon created the first run {first:.1f} s after the backfill",
        flush=True,
    )
    return max(r.end_time for r in records) - created, records, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--partitions", type=int, default=24, help="fold partitions (demo: 4 configs x 6 folds)"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="backfill_overhead_"))
    env = write_home(home)

    import dagster as dg

    from proj_assets.definitions import defs as location
    from proj_assets.entrypoints.demo import QUIET, Stage, plan_runs
    from proj_assets.probes.assets import ACTIVATIONS, CORPUS, FOLD_RESULTS, MANIFEST

    defs = location()

    load = os.getloadavg()
    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(
            "duckdb"
        )  # one slot, before runs race
        prep = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            run_config=QUIET,
            asset_selection=[dg.AssetKey(k) for k in (CORPUS, ACTIVATIONS, MANIFEST)],
        )
        assert prep.success
        job = defs.resolve_job_def("probes_sweep_job")
        keys = job.partitions_def.get_partition_keys(dynamic_partitions_store=instance)[
            : args.partitions
        ]

        planned = plan_runs(
            defs, instance, Stage([dg.AssetKey(FOLD_RESULTS)], job.partitions_def), keys
        )
        started = time.perf_counter()
        for key, range_tags in planned:  # the runs an asset backfill of these partitions launches
            assert job.execute_in_process(
                instance=instance, run_config=QUIET, partition_key=key, tags=range_tags
            ).success
        in_process = time.perf_counter() - started
        started = time.perf_counter()
        for key in keys:  # the runs a job backfill launches: one per partition
            assert job.execute_in_process(
                instance=instance, run_config=QUIET, partition_key=key
            ).success
        in_process_each = time.perf_counter() - started

        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")],
            cwd=PROJECT,
            env=env,
            stdout=open(home / "daemon.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: instance.get_daemon_heartbeats().get("BACKFILL"),
                180,
                "the daemon's first heartbeat",
            )
            launched, records, pickup = backfill(
                env, home, instance, "probes_sweep_job", keys, dg.AssetKey(FOLD_RESULTS)
            )
            launched_each, records_each, pickup_each = backfill(
                env, home, instance, "probes_sweep_job", keys
            )
            fold_one, (fold_record,), _ = backfill(
                env, home, instance, "probes_sweep_job", keys[:1]
            )
            ohlcv_one, (ohlcv_record,), _ = backfill(
                env, home, instance, "market_ohlcv_job", ["SP500"]
            )
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    print(
        f"machine load (1/5/15 min) at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}"
    )
    for what, here, there, runs, wait in (
        ("asset backfill (ranges)", in_process, launched, records, pickup),
        (
            "job backfill of probes_sweep_job (a run per partition)",
            in_process_each,
            launched_each,
            records_each,
            pickup_each,
        ),
    ):
        per_run = sorted(r.end_time - r.start_time for r in runs)
        print(
            f"{what}:\n  {len(keys)} fold partitions in {len(runs)} in-process runs: {here:7.1f} s; daemon-launched: "
            f"{there:7.1f} s (run process start->end median {per_run[len(per_run) // 2]:.1f} s, max {per_run[-1]:.1f} s)"
            f"\n  ratio launched / in-process: {there / here:7.2f}  (goal <= 2); from the first run's creation "
            f"(without the daemon's {wait:.1f} s pickup): {(there - wait) / here:.2f}"
        )
    print(
        f"one-partition backfill, probes_sweep_job: {fold_one:5.1f} s created->end, "
        f"{fold_record.end_time - fold_record.start_time:.1f} s run  (goal <= 10 s idle)"
    )
    print(
        f"one-partition backfill, market_ohlcv_job (5 checks): {ohlcv_one:5.1f} s created->end, "
        f"{ohlcv_record.end_time - ohlcv_record.start_time:.1f} s run"
    )
    print(f"machine load (1/5/15 min) at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
