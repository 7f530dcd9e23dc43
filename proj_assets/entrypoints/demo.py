"""Materialize the whole asset graph of the active profile, recorded in the Dagster instance.

`make demo` runs this. It first observes the observable source assets (the probes' model folder
and corpus), as the UI's Observe sources does, so what it materializes records the versions they
hold: a source never observed has no version, and the first observation after the demo would then
mark everything built on it Unsynced though nothing changed. Assets run domain by domain in
dependency order; consecutive assets that share a partitions definition run together, in the
in-process runs a backfill of those partitions would launch: one per partition, or a range per
run where the asset's `BackfillPolicy` says so (planned by Dagster's own
`build_run_requests_with_backfill_policies`). Dynamic partition keys are read from the instance
when their stage starts, after upstream assets registered them.
Later passes materialize only partitions that appeared meanwhile (e.g. probe configs promoted to
stage 2) and re-run what depends on them, until nothing new appears. The status note is written
last, once everything else has run, from the code location (it reads the asset graph from its
run's repository), so what it counts is what the instance holds when the demo ends.
"""

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from proj_assets.platform.status_note import STATUS_JOB, STATUS_KEY

LOCATION = "proj_assets.definitions"  # the code location module (`make demo` loads its `defs`)
DOMAIN_ORDER = ["market", "scaling", "probes", "sft", "platform"]
MAX_PASSES = 3
# Step logs stay in the instance (and the UI); the console shows warnings and this runner's lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Stage:
    keys: list[dg.AssetKey]
    partitions_def: dg.PartitionsDefinition | None


@dataclass
class RunSummary:
    label: str
    partition: str | None  # the run's partition key, or "start...end" of its range
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)
    passed_checks: int = 0


def plan_stages(defs: dg.Definitions, groups: list[str] | None = None) -> list[Stage]:
    """Stages of the whole graph, or of the named groups (domains) only."""
    graph = defs.resolve_asset_graph()
    order = [
        k
        for k in graph.toposorted_asset_keys
        if graph.get(k).is_materializable
        and k != STATUS_KEY
        and (not groups or graph.get(k).group_name in groups)
    ]
    stages: list[Stage] = []
    for domain in DOMAIN_ORDER + sorted(
        {graph.get(k).group_name for k in order} - set(DOMAIN_ORDER)
    ):
        for key in (k for k in order if graph.get(k).group_name == domain):
            pdef = graph.get(key).partitions_def
            if (
                stages
                and stages[-1].partitions_def == pdef
                and stages[-1].keys[0].path[0] == domain
            ):
                stages[-1].keys.append(key)
            else:
                stages.append(Stage([key], pdef))
    return stages


def observe_sources(
    defs: dg.Definitions, instance: dg.DagsterInstance, groups: list[str] | None = None
) -> list[RunSummary]:
    """One run observing every observable source asset of the graph (or of the named groups)."""
    graph = defs.resolve_asset_graph()
    keys = [
        k
        for k in graph.toposorted_asset_keys
        if graph.get(k).is_observable and (not groups or graph.get(k).group_name in groups)
    ]
    if not keys:
        return []
    print("observing sources:", flush=True)
    return run_stage(defs, instance, Stage(keys, None), [None])


def _partitions_to_run(
    instance: dg.DagsterInstance, stage: Stage, attempted: set
) -> list[str | None]:
    """Every partition in the first pass; afterwards only partitions never attempted before."""
    if stage.partitions_def is None:
        return [None]
    keys = stage.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    return [k for k in keys if (tuple(stage.keys), k) not in attempted]


def _summarize(
    label: str, partition: str | None, success: bool, seconds: float, evaluations
) -> RunSummary:
    return RunSummary(
        label,
        partition,
        success,
        seconds,
        [
            f"{e.asset_check_key.to_user_string()} ({e.severity.value})"
            for e in evaluations
            if not e.passed
        ],
        sum(e.passed for e in evaluations),
    )


def _print(summary: RunSummary, where: str = "") -> None:
    checks = f"checks {summary.passed_checks} passed" + (
        f", FAILED: {summary.failed_checks}" if summary.failed_checks else ""
    )
    print(
        f"  {'ok' if summary.success else 'FAILED':6} {summary.label}{where} {summary.seconds:.1f}s; {checks}",
        flush=True,
    )


def plan_runs(
    defs: dg.Definitions, instance: dg.DagsterInstance, stage: Stage, partitions: list[str | None]
) -> list[tuple[str | None, dict]]:
    """(partition key or None, range tags) of each run a backfill of these partitions launches."""
    if partitions == [None]:
        return [(None, {})]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        requests = build_run_requests_with_backfill_policies(
            [AssetKeyPartitionKey(k, p) for k in stage.keys for p in partitions],
            defs.resolve_asset_graph(),
            instance,
        )
    return sorted(
        (
            (
                r.partition_key,
                {
                    t: r.tags[t]
                    for t in (ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)
                    if t in r.tags
                },
            )
            for r in requests
        ),
        key=lambda run: str(run),
    )


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a signal ended the run. Dagster turns SIGINT/SIGTERM inside a run into a failed run
    and clears the signal, so without this check the runner would carry on with the next run."""
    return any(
        e.event_type == dg.DagsterEventType.RUN_FAILURE
        and e.job_failure_data.error is not None
        and e.job_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
        for e in result.all_events
    )


def _where(partition: str | None, tags: dict) -> str | None:
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return f"{tags[ASSET_PARTITION_RANGE_START_TAG]}...{tags[ASSET_PARTITION_RANGE_END_TAG]}"
    return partition


def run_stage(
    defs: dg.Definitions, instance: dg.DagsterInstance, stage: Stage, partitions: list[str | None]
) -> list[RunSummary]:
    job = defs.resolve_implicit_global_asset_job_def()
    label = ", ".join(k.to_user_string() for k in stage.keys)
    summaries, runs = [], plan_runs(defs, instance, stage, partitions)
    for i, (partition, range_tags) in enumerate(runs, 1):
        start = time.perf_counter()
        result = job.execute_in_process(
            run_config=QUIET,
            instance=instance,
            asset_selection=stage.keys,
            partition_key=partition,
            raise_on_error=False,
            tags={"proj/launched_by": "materialize_all", **range_tags},
        )
        if _interrupted(result) or _signalled():
            raise KeyboardInterrupt(f"{label} was interrupted")
        summary = _summarize(
            label,
            _where(partition, range_tags),
            result.success,
            time.perf_counter() - start,
            result.get_asset_check_evaluations(),
        )
        summaries.append(summary)
        _print(summary, f" [{summary.partition}] ({i}/{len(runs)})" if summary.partition else "")
    return summaries


def write_status_note(instance: dg.DagsterInstance, location: str = LOCATION) -> RunSummary:
    """Run `platform_status_job` from the code location module `location` (its `defs`), so the run
    has its repository as a launched run does; summarize it like the other runs."""
    start = time.perf_counter()
    job = ReconstructableRepository.for_module(location, "defs").get_reconstructable_job(STATUS_JOB)
    with dg.execute_job(
        job,
        instance,
        run_config=QUIET,
        raise_on_error=False,
        tags={"proj/launched_by": "materialize_all"},
    ) as result:
        summary = _summarize(
            STATUS_KEY.to_user_string(),
            None,
            result.success,
            time.perf_counter() - start,
            result.get_asset_check_evaluations(),
        )
    _print(summary)
    return summary


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    groups: list[str] | None = None,
    location: str = LOCATION,
) -> list[RunSummary]:
    """The observable sources, every stage of `defs` (the `defs` of module `location`), then its
    status note."""
    stages = plan_stages(defs, groups)
    attempted: set = set()
    summaries: list[RunSummary] = observe_sources(defs, instance, groups)
    for n in range(1, MAX_PASSES + 1):
        print(f"pass {n}:", flush=True)
        this_pass: list[RunSummary] = []
        changed_domains: set[str] = set()
        for stage in stages:
            domain = stage.keys[0].path[0]
            if n > 1 and stage.partitions_def is None and domain not in changed_domains:
                continue  # nothing upstream in its domain changed in this pass
            partitions: list[str | None] = (
                [None]
                if stage.partitions_def is None
                else _partitions_to_run(instance, stage, attempted)
            )
            attempted.update((tuple(stage.keys), p) for p in partitions)
            runs = run_stage(defs, instance, stage, partitions)
            if runs:
                changed_domains.add(domain)
            this_pass += runs
        summaries += this_pass
        if n > 1 and not this_pass:
            break
    if STATUS_KEY in defs.resolve_asset_graph().get_all_asset_keys() and (
        not groups or "platform" in groups
    ):
        print("status note (last, after every other run):", flush=True)
        summaries.append(write_status_note(instance, location))
    return summaries


_signal_pipe: int | None = None  # read end of the wakeup pipe that stop_on_sigterm installs


def stop_on_sigterm() -> None:
    """Make SIGINT (and so SIGTERM) raise KeyboardInterrupt, and record every signal the process
    gets. Dagster's run execution maps SIGTERM onto the SIGINT handler; a process started in the
    background by a shell without job control inherits SIGINT *ignored*, so without this `make
    demo` ignored SIGTERM too."""
    global _signal_pipe
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _signal_pipe = read


def _signalled() -> bool:
    """Whether SIGINT or SIGTERM arrived since the last call. A signal that lands in a run outside
    a step's code (e.g. while the run records its success) is caught by Dagster's handler and
    dropped when the run ends, so the run reads as a plain success; the interpreter still writes
    every signal's number to the wakeup pipe, whoever's Python handler is installed."""
    if _signal_pipe is None:
        return False
    try:
        received = os.read(_signal_pipe, 1024)
    except BlockingIOError:
        return False
    return bool({signal.SIGINT, signal.SIGTERM} & set(received))


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--group",
        action="append",
        choices=DOMAIN_ORDER,
        help="only this domain (repeatable); its upstream domains must be materialized",
    )
    args = parser.parse_args(argv)

    from proj_assets.definitions import defs
    from proj_assets.platform.instance_home import ensure_instance_home
    from proj_assets.profiles import data_dir, load_profile

    home = ensure_instance_home()
    profile = load_profile()
    what = f"groups {args.group}" if args.group else "every asset"
    print(
        f"materializing {what} of profile '{profile.name}' (data under {data_dir()}, instance {home})",
        flush=True,
    )
    start = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        try:
            summaries = materialize_all(defs(), instance, args.group)
        except KeyboardInterrupt as stop:
            print(f"\nstopped by a signal ({stop or 'between runs'}); the instance shows what ran")
            return 130
    failed = [s for s in summaries if not s.success]
    failed_checks = sorted({c for s in summaries for c in s.failed_checks})
    print(
        f"\n{len(summaries)} runs in {time.perf_counter() - start:.0f}s: "
        f"{len(summaries) - len(failed)} succeeded, {len(failed)} failed"
    )
    print(f"failed checks: {failed_checks}" if failed_checks else "every check passed")
    print("open the UI with `make ui`, then http://127.0.0.1:3000 (Assets -> Global asset lineage)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
