"""The status note is true when `make demo` ends: the demo runner's stages on a demo-shaped code
location (a second pass adds a promoted partition after the first pass), then every count in the
note is checked against the instance. And the sensor that rewrites the note after launched work."""

import re

import dagster as dg
import demo_like_location as location
from dagster._core.test_utils import create_run_for_test

from proj_assets.entrypoints.demo import materialize_all
from proj_assets.platform.status_note import STATUS_KEY, status_note_sensor

FOLDS = dg.AssetKey(["ops_test", "sweep", "fold_results"])
BUDGET_CHECK = dg.AssetCheckKey(STATUS_KEY, "compute_within_budget")


def _asset_rows(note: str) -> dict[str, list[int | str]]:
    """`| `key` | partitions | materialized | failed | missing | in progress |` rows of the note."""
    rows = {}
    for key, *cells in re.findall(
        r"^\| `([\w/]+)` \| ([-\d]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", note, re.M
    ):
        rows[key] = [c if c == "-" else int(c) for c in cells]
    return rows


def _gate_rows(note: str) -> dict[str, tuple[int, int, int]]:
    """check -> (passed, failed, never ran) from the note's gates table."""
    found = re.findall(
        r"^\| `([\w/]+:\w+)` \| (?:yes|no) \| (\d+) \| (\d+) \| (\d+) \|", note, re.M
    )
    return {check: (int(p), int(f), int(n)) for check, p, f, n in found}


def _expected_asset_row(instance, key: dg.AssetKey) -> list[int | str]:
    node = location.defs.resolve_asset_graph().get(key)
    if node.partitions_def is None:
        done = instance.get_latest_materialization_event(key) is not None
        return ["-", int(done), 0, int(not done), 0]
    keys = node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    done = set(instance.get_materialized_partitions(key))
    return [len(keys), len(done), 0, len(set(keys) - done), 0]


def _expected_gate_row(instance, check: dg.AssetCheckKey) -> tuple[int, int, int]:
    history = instance.event_log_storage.get_asset_check_execution_history(check, limit=100)
    latest = {}
    for record in history:  # newest first
        latest.setdefault(record.partition, record)
    passed = sum(r.evaluation is not None and r.evaluation.passed for r in latest.values())
    failed = sum(r.evaluation is not None and not r.evaluation.passed for r in latest.values())
    return passed, failed, int(not latest)


def test_note_written_last_matches_the_instance(instance, capsys):
    summaries = materialize_all(
        location.defs, instance, ["ops_test", "platform"], location=location.__name__
    )
    assert [s.label for s in summaries][-1] == STATUS_KEY.to_user_string() and all(
        s.success for s in summaries
    )
    assert sum(s.partition == location.PROMOTED for s in summaries) == 1  # the second pass ran it
    note = (
        instance.get_latest_materialization_event(STATUS_KEY)
        .asset_materialization.metadata["report"]
        .value
    )

    rows = _asset_rows(note)
    graph = location.defs.resolve_asset_graph()
    expected_keys = {k.to_user_string() for k in graph.materializable_asset_keys}
    assert set(rows) == expected_keys
    for key in graph.materializable_asset_keys:
        if key != STATUS_KEY:
            assert rows[key.to_user_string()] == _expected_asset_row(instance, key), key
    assert rows[FOLDS.to_user_string()] == [3, 3, 0, 0, 0]  # the promoted partition counts as done
    assert rows[STATUS_KEY.to_user_string()] == [
        "-",
        1,
        0,
        0,
        0,
    ]  # the note counts itself as written

    gates = _gate_rows(note)
    checks = [k for k in graph.asset_check_keys if k.asset_key != STATUS_KEY]
    assert set(gates) == {k.to_user_string() for k in checks}
    for check in checks:
        assert gates[check.to_user_string()] == _expected_gate_row(instance, check), check
    assert gates["ops_other/raw/idle:idle_ok"] == (0, 0, 1)
    # the note's own check runs right after it in the same run: it is not "never ran"
    assert BUDGET_CHECK.to_user_string() not in note and _expected_gate_row(
        instance, BUDGET_CHECK
    ) == (1, 0, 0)

    (note_run,) = instance.get_runs(dg.RunsFilter(job_name="platform_status_job"))
    assert "**In progress:** 0" in note and note_run.run_id[:8] not in note
    actions = note.split("## What to run next")[1].split("## Partitions per domain")[0]
    assert "fold_results" not in actions and "Backfill" not in actions
    assert "Materialize ops_other: 1 asset(s) never materialized (`ops_other/raw/idle`)" in actions
    metered = sum(
        len(instance.fetch_materializations(k, limit=100).records)
        for k in graph.materializable_asset_keys
        if k.path[0] == "ops_test"
    )
    assert (
        metered == 6 and f"| ops_test | {metered} | {2.0 * metered:.1f} |" in note
    )  # every one, priced
    assert "status note (last, after every other run)" in capsys.readouterr().out


def test_sensor_rewrites_the_note_once_launched_work_has_finished(instance):
    def tick(cursor=None):
        return status_note_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor)
        )

    assert tick().skip_message == "no run finished since the note was last written"
    work = create_run_for_test(
        instance, job_name="probes_sweep_job", status=dg.DagsterRunStatus.STARTED
    )
    assert tick().skip_message == "waiting for 1 queued or running run(s) to finish"
    instance.report_run_failed(
        work
    )  # a finished run, even a failed one, changes what the note says
    first = tick()
    (request,) = first.run_requests
    assert request.run_key == f"status-after-{work.run_id}" and first.cursor == work.run_id
    assert tick(first.cursor).skip_message == "no run finished since the note was last written"

    # the note's own runs neither block nor trigger it
    create_run_for_test(
        instance, job_name="platform_status_job", status=dg.DagsterRunStatus.SUCCESS
    )
    create_run_for_test(
        instance, job_name="platform_status_job", status=dg.DagsterRunStatus.STARTED
    )
    assert tick(first.cursor).skip_message == "no run finished since the note was last written"
    backfill = [
        create_run_for_test(
            instance, job_name="probes_sweep_job", status=dg.DagsterRunStatus.STARTED
        )
        for _ in range(2)
    ]
    instance.report_run_failed(backfill[1])
    assert tick(first.cursor).skip_message == "waiting for 1 queued or running run(s) to finish"
    instance.report_run_failed(backfill[0])
    (after_backfill,) = tick(first.cursor).run_requests
    assert (
        after_backfill.run_key == f"status-after-{backfill[1].run_id}"
    )  # once, for the whole backfill
