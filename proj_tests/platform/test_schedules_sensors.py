"""Platform and domain automation: the missing/failed backfill schedule, the sweep-spec sensor, and the
jobs/schedules/sensors of the code location (each shipped STOPPED, by decision)."""

from datetime import datetime

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from platform_graph import cells, cells_job

from proj_assets.shared.jobs import nightly_backfill

CELLS_KEY = dg.AssetKey(["ops_test", "raw", "cells"])
NIGHT = datetime(2026, 1, 2, 2, 0)


def _run_cells(instance, partition: str, broken: bool = False) -> bool:
    config = {
        "ops": {"ops_test__raw__cells": {"config": {"broken": [partition] if broken else []}}}
    }
    return dg.materialize(
        [cells], instance=instance, partition_key=partition, run_config=config, raise_on_error=False
    ).success


def test_nightly_schedule_backfills_only_missing_and_failed_partitions(instance):
    schedule = nightly_backfill("cells_nightly", cells_job, "0 2 * * *")
    defs = dg.Definitions(assets=[cells], jobs=[cells_job], schedules=[schedule])
    assert _run_cells(instance, "a") and _run_cells(instance, "b")
    assert not _run_cells(instance, "c", broken=True)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=NIGHT, repository_def=defs.get_repository_def()
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == ["c", "d"]
    assert len({r.run_key for r in requests}) == 2

    assert _run_cells(instance, "c") and _run_cells(instance, "d")
    result = schedule.evaluate_tick(
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=NIGHT,
            repository_def=defs.get_repository_def(),
        )
    )
    assert not result.run_requests and "every partition" in result.skip_message


def test_sweep_spec_sensor_registers_configs_then_requests_missing_partitions(instance):
    from proj_assets.definitions import defs
    from proj_assets.probes.assets import FOLD_RESULTS, MANIFEST

    defs = defs()

    (sensor,) = [s for s in defs.sensors if s.name == "probe_sweep_spec_sensor"]
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    (add,) = first.dynamic_partitions_requests
    configs = list(add.partition_keys)
    assert add.partitions_def_name == "probe_config" and configs
    assert [r.job_name for r in first.run_requests] == ["probes_manifest_job"]

    # nothing more until a manifest newer than the change exists
    idle = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs)
    )
    assert not idle.run_requests

    instance.add_dynamic_partitions("probe_config", configs)
    instance.add_dynamic_partitions("probe_fold", ["g1", "g2"])
    instance.report_runless_asset_event(dg.AssetMaterialization(MANIFEST))
    done = dg.MultiPartitionKey({"config": configs[0], "fold": "g1"})
    instance.report_runless_asset_event(dg.AssetMaterialization(FOLD_RESULTS, partition=done))
    with partition_loading_context(dynamic_partitions_store=instance):  # as the sensor daemon does
        second = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs)
        )
    requested = {r.partition_key for r in second.run_requests}
    assert {r.job_name for r in second.run_requests} == {"probes_sweep_job"}
    assert len(requested) == 2 * len(configs) - 1 and done not in requested


def test_code_location_ships_operations_stopped():
    from proj_assets.definitions import defs

    defs = defs()
    jobs = {j.name for j in defs.jobs}
    assert {
        "market_ohlcv_job",
        "gate_review_job",
        "probes_sweep_job",
        "probes_manifest_job",
    } <= jobs
    for schedule in defs.schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED, schedule.name
    for sensor in defs.sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED, sensor.name
    defs.resolve_all_job_defs()  # every job's selection resolves against the asset graph
