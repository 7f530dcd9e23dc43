"""Backfills and run health against a real instance (not in-process): `dagster-daemon run` in a
subprocess executes a CLI-submitted backfill; a run killed mid-partition is marked failed and a
re-run leaves every partition exactly once. Slow: each run's process imports the code location and
the daemon ticks; minutes on 2 busy cores.
Run with `make test-slow`."""

import os
import signal

import dagster as dg
import duckdb
import psutil
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from platform_instance import dagster_process, instance_at, submit_backfill, wait_until

pytestmark = pytest.mark.slow
TICKERS = ["SP500", "NASDAQ", "VIX"]
KILL_TICKERS = ["SP500", "VIX"]  # one to kill mid-run, one that completes
OHLCV = dg.AssetKey(["market", "raw", "ohlcv"])
DONE = {BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS}


def _runs(instance, statuses=None):
    return instance.get_runs(filters=dg.RunsFilter(job_name="market_ohlcv_job", statuses=statuses))


def _all_done(instance, n: int):
    runs = _runs(instance)
    return len(runs) >= n and all(r.is_finished for r in runs) and runs


def _assert_each_partition_once(home, tickers=TICKERS):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    source = build_resources(load_profile("demo"), home / "data")["market_source"]
    with duckdb.connect(str(home / "data/warehouse/demo.duckdb"), read_only=True) as conn:
        rows = dict(
            conn.execute("select ticker, count(*) from market_raw.ohlcv group by ticker").fetchall()
        )
        dups = conn.execute(
            "select count(*) from (select ticker, date from market_raw.ohlcv "
            "group by ticker, date having count(*) > 1)"
        ).fetchone()[0]
    assert dups == 0
    assert rows == {t: source.load(t).height for t in tickers}


def test_cli_backfill_of_several_partitions_completes(tmp_path):
    home = tmp_path / "home"
    with dagster_process(home, ["dagster-daemon", "run"]) as (_proc, env):
        submit_backfill(env, home, "market_ohlcv_job", TICKERS)
        with instance_at(home) as instance:
            (backfill,) = instance.get_backfills()
            runs = wait_until(lambda: _all_done(instance, 3), 480, "3 backfill runs to finish")
            assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(TICKERS)
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            assert all(r.tags.get("dagster/backfill") == backfill.backfill_id for r in runs)
            assert set(instance.get_materialized_partitions(OHLCV)) == set(TICKERS)
            # a job backfill is COMPLETED once every run was launched (its runs all succeeded above)
            wait_until(
                lambda: instance.get_backfill(backfill.backfill_id).status in DONE,
                60,
                "the backfill to be complete",
            )
    _assert_each_partition_once(home)


def _worker_pid(instance, run_id: str) -> int | None:
    """The run worker's pid once its step started (the partition is in progress)."""
    logs = instance.all_logs(run_id)
    messages = [e.dagster_event.message or "" for e in logs if e.dagster_event]
    if not any(
        e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START
        for e in logs
    ):
        return None
    started = [m for m in messages if m.startswith("Started process for run (pid: ")]
    return int(started[0].split("pid: ")[1].rstrip(").")) if started else None


def test_killed_run_is_marked_failed_and_rerun_leaves_nothing_duplicated_or_missing(tmp_path):
    home = tmp_path / "home"
    with dagster_process(home, ["dagster-daemon", "run"]) as (proc, env):
        submit_backfill(env, home, "market_ohlcv_job", KILL_TICKERS)
        with instance_at(home) as instance:

            def a_run_in_progress():
                for run in _runs(instance, [dg.DagsterRunStatus.STARTED]):
                    pid = _worker_pid(instance, run.run_id)
                    if pid:
                        return run, pid
                return None

            victim, pid = wait_until(
                a_run_in_progress, 240, "a run with its step starting", interval=0.2
            )
            assert os.getpgid(pid) == proc.pid  # only ever kill inside the group this test started
            worker = psutil.Process(pid)
            for child in worker.children(recursive=True):
                child.send_signal(signal.SIGKILL)
            worker.send_signal(signal.SIGKILL)

            wait_until(
                lambda: _all_done(instance, 2),
                400,
                "every backfill run to finish or be marked failed",
            )
            dead = instance.get_run_by_id(victim.run_id)
            assert dead.status == dg.DagsterRunStatus.FAILURE
            engine = [
                e.dagster_event.message for e in instance.all_logs(victim.run_id) if e.dagster_event
            ]
            assert any("Run execution process for" in (m or "") for m in engine), engine[-5:]
            assert not instance.all_logs(
                victim.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            )  # mid-partition

            submit_backfill(
                env, home, "market_ohlcv_job", KILL_TICKERS
            )  # re-run the whole backfill
            wait_until(lambda: _all_done(instance, 4), 400, "the re-run backfill to finish")
            assert set(instance.get_materialized_partitions(OHLCV)) == set(KILL_TICKERS)
    _assert_each_partition_once(home, KILL_TICKERS)
