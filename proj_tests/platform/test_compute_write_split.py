"""Long compute apart from the short warehouse write (proj_assets.shared.compute_write).

Separate OS processes run partitions of one graph-backed asset against one on-disk Dagster
instance that carries the project's own pool settings (dagster.yaml: `duckdb` pool, one slot).
From the instance's event log: the compute steps of different partitions overlap in time, the
pooled write steps never do; the warehouse holds every partition's rows exactly once (a re-run
of a partition races its twin), and a partition whose compute fails writes nothing.
The project's two long assets are checked to have exactly this shape.

Each compute ends at its own moment (the go file's time plus COMPUTE_END_S + i * STAGGER_S), so
the writes ask for the slot at distinct moments, each while the one before still holds it. Dagster's
slot claim is not atomic across processes (a select, then an update without a guard, on SQLite and
on PostgreSQL alike): two steps that ask within the same few milliseconds can both get the one
slot (docs/architecture.md, Storage). DuckDB's file lock is what keeps such a pair's rows apart
(test_warehouse_concurrency.py); this test shows the pool keeps write steps apart.
"""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from proj_assets.shared.conventions import DUCKDB_POOL

ROWS = 40
COMPUTE_END_S = 5.0  # after the go signal: later than any worker's run start on a loaded machine
STAGGER_S = 0.6  # between two computes' ends; shorter than a write, so each later write waits
WRITE_S = 1.0
WORKER = textwrap.dedent(f"""
    import sys, time
    from pathlib import Path
    import dagster as dg
    import polars as pl
    from proj_assets.shared.compute_write import (HANDOFF_IO_MANAGER, compute_op, handoff_io_manager,
                                                  load_handoff, save_handoff, write_op)
    from proj_resources import ArtifactStore, warehouse_io_manager

    root, partition, go, index = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])

    @compute_op({{}}, name="cells_compute")
    def cells_compute(context, artifacts: ArtifactStore):
        if partition == "bad":
            raise ValueError("compute failed on purpose")
        # stands in for minutes of training; ends at this worker's own moment
        time.sleep(max(0.0, go.stat().st_mtime + {COMPUTE_END_S} + index * {STAGGER_S} - time.time()))
        frame = pl.DataFrame({{"cell": [context.partition_key] * {ROWS}, "i": list(range({ROWS}))}})
        return save_handoff(context, artifacts, frame, {{"trained_rows": frame.height}})

    @write_op(name="cells_write")
    def cells_write(context, handoff) -> pl.DataFrame:
        context.add_output_metadata(handoff.metadata)
        time.sleep({WRITE_S})  # a write long enough that an overlap would show
        return load_handoff(handoff)

    @dg.graph_asset(key=["t", "out", "cells"], partitions_def=dg.StaticPartitionsDefinition(["a", "b", "bad"]),
                    metadata={{"schema": "t_out", "partition_expr": "cell"}})
    def cells():
        return cells_write(cells_compute())

    resources = {{"io_manager": warehouse_io_manager(str(root / "warehouse.duckdb")),
                  "artifacts": ArtifactStore(root=str(root / "artifacts")), HANDOFF_IO_MANAGER: handoff_io_manager(root, "t")}}
    while not go.exists():  # start every run at the same moment
        time.sleep(0.01)
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([cells], partition_key=partition, resources=resources, instance=instance,
                                raise_on_error=False, tags={{"test/partition": partition}})
    sys.exit(0 if result.success else 1)
""")


def _instance_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml keeps the project's concurrency settings."""
    project = yaml.safe_load((Path(__file__).parents[2] / "dagster.yaml").read_text())
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {"sqlite": {"base_dir": str(home / "storage")}},
                "telemetry": {"enabled": False},
                "concurrency": project["concurrency"],
            }
        )
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # Create the storage and the pool's slot once. Left to the first claims, two processes
        # starting on a fresh instance can each allocate a slot (count-then-insert in
        # dagster's initialize_concurrency_limit_to_default) and write at the same time.
        instance.event_log_storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)
    return home


def _step_intervals(instance: dg.DagsterInstance, op_name: str) -> dict[str, tuple[float, float]]:
    """Partition -> (STEP_START, STEP_SUCCESS) times of the op's successful steps."""
    intervals = {}
    for run in instance.get_runs():
        events = instance.all_logs(
            run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
        )
        times = {
            e.dagster_event.event_type: e.timestamp
            for e in events
            if e.step_key.endswith(f".{op_name}")
        }
        if dg.DagsterEventType.STEP_SUCCESS in times:
            intervals[f"{run.tags['test/partition']}@{run.run_id[:8]}"] = (
                times[dg.DagsterEventType.STEP_START],
                times[dg.DagsterEventType.STEP_SUCCESS],
            )
    return intervals


def _overlaps(intervals) -> int:
    spans = sorted(intervals)
    return sum(later[0] < earlier[1] for i, earlier in enumerate(spans) for later in spans[i + 1 :])


def test_partition_computes_overlap_and_writes_do_not(tmp_path: Path, monkeypatch):
    home = _instance_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    script, go = tmp_path / "worker.py", tmp_path / "go"
    script.write_text(WORKER)
    partitions = ["a", "b", "a", "bad"]  # "a" twice at once: a re-run racing its twin
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), p, str(go), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, p in enumerate(partitions)
    ]
    time.sleep(5)  # let every worker import and wait at the barrier
    go.touch()
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    codes = [w.returncode for w in workers]
    assert codes == [0, 0, 0, 1], "\n".join(o[-2000:] for o in outputs)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        computes, writes = (
            _step_intervals(instance, "cells_compute"),
            _step_intervals(instance, "cells_write"),
        )
        materializations = instance.fetch_materializations(
            dg.AssetKey(["t", "out", "cells"]), limit=10
        ).records
    assert len(computes) == 3 and len(writes) == 3
    # Three computes of seconds each: serialized they could not overlap at all.
    assert _overlaps(computes.values()) >= 2, computes
    assert _overlaps(writes.values()) == 0, writes
    # The pool was in play: a write step whose compute ended while another write held the slot
    # started only when that write had ended.
    waits = {run: writes[run][0] - computes[run][1] for run in writes}
    assert max(waits.values()) >= WRITE_S - STAGGER_S - 0.1, (waits, computes, writes)
    assert {
        r.event_log_entry.asset_materialization.metadata["trained_rows"].value
        for r in materializations
    } == {ROWS}

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        counts = dict(
            conn.execute("select cell, count(*) from t_out.cells group by cell").fetchall()
        )
        duplicated = conn.execute(
            "select count(*) from (select cell, i from t_out.cells group by 1, 2 "
            "having count(*) > 1)"
        ).fetchone()[0]
    assert counts == {"a": ROWS, "b": ROWS}  # nothing from the failed partition
    assert duplicated == 0


@pytest.mark.parametrize("key", [["probes", "sweep", "fold_results"], ["scaling", "hpo", "trials"]])
def test_long_assets_train_outside_the_pool_and_write_inside_it(key, tmp_path):
    from definitions_helpers import assets_by_key, demo_profile

    from proj_assets.definitions import build_definitions

    asset = assets_by_key(build_definitions(demo_profile(), tmp_path))[tuple(key)]
    pools = {node.name: node.definition.pool for node in asset.node_def.nodes}
    writes = [name for name in pools if name.endswith("_write")]
    assert any(name.endswith("_compute") for name in pools) and writes, pools
    assert {name: pool for name, pool in pools.items() if pool is not None} == {
        name: DUCKDB_POOL for name in writes
    }
