"""Every asset key, check, partition set, job, schedule and sensor of the code location, compared
with a reviewed snapshot so an unintended change fails. After an intended change regenerate it:

    PROJ_UPDATE_SNAPSHOT=1 .venv/bin/pytest proj_tests/platform/test_definitions_snapshot.py
"""

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
REGENERATE = (
    "PROJ_UPDATE_SNAPSHOT=1 .venv/bin/pytest proj_tests/platform/test_definitions_snapshot.py"
)


def describe_partitions(pdef) -> str | None:
    if pdef is None:
        return None
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return (
            "multi("
            + ", ".join(
                f"{d.name}: {describe_partitions(d.partitions_def)}" for d in pdef.partitions_defs
            )
            + ")"
        )
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return f"dynamic({pdef.name})"
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        return "static[" + ",".join(pdef.get_partition_keys()) + "]"
    return type(pdef).__name__


def inventory(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {
        k.to_user_string(): {
            "group": graph.get(k).group_name,
            "partitions": describe_partitions(graph.get(k).partitions_def),
        }
        for k in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string())
    }
    checks = {
        k.to_user_string(): {"blocking": graph.get_check_spec(k).blocking}
        for k in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        keys = (
            sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
            if job.asset_layer
            else []
        )
        jobs[job.name] = {"assets": keys, "partitions": describe_partitions(job.partitions_def)}
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "job": s.job_name,
            "default_status": s.default_status.value,
        }
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "default_status": s.default_status.value,
            "jobs": sorted(j.name for j in s.jobs) if s.targets else [],
        }
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
    }


def test_definitions_match_the_snapshot():
    from proj_assets.definitions import defs

    current = inventory(defs())
    if os.environ.get("PROJ_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    problems = []
    for section in sorted(set(current) | set(expected)):
        now, then = current.get(section, {}), expected.get(section, {})
        problems += [f"{section}: added {k}" for k in sorted(set(now) - set(then))]
        problems += [f"{section}: removed {k}" for k in sorted(set(then) - set(now))]
        problems += [
            f"{section}: changed {k}: {then[k]} -> {now[k]}"
            for k in sorted(set(now) & set(then))
            if now[k] != then[k]
        ]
    assert not problems, (
        "definitions differ from the reviewed snapshot:\n  "
        + "\n  ".join(problems)
        + f"\nIf the change is intended, regenerate the snapshot:\n  {REGENERATE}"
    )
