"""Gates across runs: gate_problems reads the latest blocking-check results from a real instance."""

import dagster as dg

from proj_assets.shared.check_results import threshold_result
from proj_assets.shared.gates import gate_problems, require_gates_passed

WARN = dg.AssetCheckSeverity.WARN


class Level(dg.Config):
    value: int = 1


@dg.asset
def tiny(config: Level) -> int:
    return config.value


@dg.asset_check(asset=tiny, blocking=True)
def tiny_positive(tiny: int) -> dg.AssetCheckResult:
    return threshold_result(tiny > 0, measured=tiny, threshold=0, description="value must be > 0")


@dg.asset_check(asset=tiny)
def tiny_small(tiny: int) -> dg.AssetCheckResult:
    return threshold_result(
        tiny < 10, measured=tiny, threshold=10, description="value should be < 10", severity=WARN
    )


letters = dg.StaticPartitionsDefinition(["a", "b"])


@dg.asset(partitions_def=letters)
def tiny_parts(context: dg.AssetExecutionContext, config: Level) -> int:
    return config.value


@dg.asset_check(asset=tiny_parts, partitions_def=letters, blocking=True)
def parts_positive(tiny_parts: int) -> dg.AssetCheckResult:
    return threshold_result(
        tiny_parts > 0, measured=tiny_parts, threshold=0, description="value must be > 0"
    )


POSITIVE = dg.AssetCheckKey(dg.AssetKey("tiny"), "tiny_positive")
SMALL = dg.AssetCheckKey(dg.AssetKey("tiny"), "tiny_small")
PARTS = dg.AssetCheckKey(dg.AssetKey("tiny_parts"), "parts_positive")


def _run(instance, value: int, asset=tiny, partition=None) -> dg.ExecuteInProcessResult:
    checks = [tiny_positive, tiny_small] if asset is tiny else [parts_positive]
    return dg.materialize(
        [asset, *checks],
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        run_config={"ops": {asset.op.name: {"config": {"value": value}}}},
    )


def test_never_run_check_has_no_result_yet(instance):
    (problem,) = gate_problems(instance, [POSITIVE])
    assert problem.startswith("tiny:tiny_positive") and "no result yet" in problem


@dg.asset(deps=[tiny])
def downstream(context: dg.AssetExecutionContext) -> None:
    require_gates_passed(context, [POSITIVE])


def test_failed_blocking_check_closes_the_gate_then_a_pass_opens_it(instance):
    failed = _run(instance, -3)
    assert not failed.success
    (problem,) = gate_problems(instance, [POSITIVE])
    assert problem.startswith("tiny:tiny_positive failed: value must be > 0")
    assert (
        "'measured': -3.0" in problem and "'threshold': 0.0" in problem and failed.run_id in problem
    )
    # a later run of a downstream asset refuses, naming the check
    later = dg.materialize([downstream], instance=instance, raise_on_error=False)
    (failure,) = later.get_step_failure_events()
    assert "refusing to run: upstream gate(s) not passed:\n  tiny:tiny_positive failed" in (
        failure.event_specific_data.error.message
    )

    assert _run(instance, 5).success
    assert gate_problems(instance, [POSITIVE]) == []  # the latest result counts
    assert dg.materialize([downstream], instance=instance, raise_on_error=False).success


def test_warn_failure_does_not_close_the_gate(instance):
    result = _run(instance, 50)
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "tiny_positive": True,
        "tiny_small": False,
    }
    assert gate_problems(instance, [POSITIVE, SMALL]) == []


def test_partitioned_gate_reports_only_the_failed_partition(instance):
    assert _run(instance, 1, tiny_parts, "a").success
    assert not _run(instance, -1, tiny_parts, "b").success
    (problem,) = gate_problems(instance, [PARTS])
    assert "partition 'b' failed" in problem
    assert gate_problems(instance, [PARTS], partitions=["a"]) == []
    assert len(gate_problems(instance, [PARTS], partitions=["a", "b"])) == 1


def test_partition_without_a_result_keeps_the_gate_closed(instance):
    """Asked about partitions a and b, a gate must not pass when b never ran."""
    assert _run(instance, 1, tiny_parts, "a").success
    problems = gate_problems(instance, [PARTS], partitions=["a", "b"])
    assert len(problems) == 1 and "'b'" in problems[0] and "no result yet" in problems[0]


@dg.asset_check(asset=tiny, name="tiny_positive", blocking=True)
def tiny_positive_crashing(tiny: int) -> dg.AssetCheckResult:
    """Same check key as `tiny_positive`, but it raises on a negative value (a crashing check)."""
    if tiny < 0:
        raise RuntimeError("check crashed")
    return threshold_result(True, measured=tiny, threshold=0, description="value must be > 0")


def test_a_result_from_an_older_materialization_does_not_open_the_gate(instance):
    assert _run(instance, 5).success and gate_problems(instance, [POSITIVE]) == []
    # rebuilt without its checks: the passing result belongs to the previous data
    unchecked = dg.materialize(
        [tiny, tiny_positive],
        instance=instance,
        run_config={"ops": {"tiny": {"config": {"value": -1}}}},
        selection=dg.AssetSelection.assets(tiny).without_checks(),
    )
    assert unchecked.success
    (problem,) = gate_problems(instance, [POSITIVE])
    assert "did not run on the latest materialization" in problem


def test_a_crashed_check_does_not_leave_an_older_pass_in_force(instance):
    assert _run(instance, 5).success and gate_problems(instance, [POSITIVE]) == []
    crashed = dg.materialize(
        [tiny, tiny_positive_crashing],
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"tiny": {"config": {"value": -1}}}},
    )
    assert not crashed.success
    (problem,) = gate_problems(instance, [POSITIVE])
    assert "tiny:tiny_positive" in problem and (
        "no finished result" in problem or "did not run" in problem
    )


class Attempt(dg.Config):
    value: int = 1
    fail: bool = False


@dg.asset
def flaky(config: Attempt) -> int:
    if config.fail:
        raise ValueError("refused before writing (on purpose)")
    return config.value


@dg.asset_check(asset=flaky, blocking=True)
def flaky_positive(flaky: int) -> dg.AssetCheckResult:
    return threshold_result(flaky > 0, measured=flaky, threshold=0, description="value must be > 0")


FLAKY = dg.AssetCheckKey(dg.AssetKey("flaky"), "flaky_positive")


def _run_flaky(instance, value: int, fail: bool = False) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [flaky, flaky_positive],
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"flaky": {"config": {"value": value, "fail": fail}}}},
    )


def test_a_run_that_never_wrote_the_asset_leaves_the_earlier_result_standing(instance):
    """A re-run refused (or failed) before writing plans the check and skips it; the data it would
    have judged is unchanged, so the gate keeps the earlier verdict either way."""
    assert _run_flaky(instance, 3).success
    assert not _run_flaky(instance, 3, fail=True).success
    assert gate_problems(instance, [FLAKY]) == []

    assert not _run_flaky(instance, -2).success  # written, and its blocking check fails
    assert not _run_flaky(instance, 5, fail=True).success
    (problem,) = gate_problems(instance, [FLAKY])
    assert problem.startswith("flaky:flaky_positive failed") and "-2" in problem


def test_latest_check_results_pages_through_the_whole_history(instance, monkeypatch):
    """With a page of one record, every partition's latest result is still found (the older
    executions of `a` lie on later pages than `b`'s only one)."""
    from proj_assets.shared import gates

    parts = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=parts)
    def paged():
        return None

    @dg.asset_check(asset=paged, partitions_def=parts)
    def paged_check():
        return dg.AssetCheckResult(passed=True)

    io = {"io_manager": dg.mem_io_manager}
    runs = [
        dg.materialize([paged, paged_check], partition_key=p, instance=instance, resources=io)
        for p in ("b", "a", "a")
    ]
    key = paged_check.check_key
    full = gates.latest_check_results(instance, key)
    monkeypatch.setattr(gates, "PAGE", 1)
    paged_result = gates.latest_check_results(instance, key)
    assert set(paged_result) == {"a", "b"}
    assert (
        {p: r.run_id for p, r in paged_result.items()}
        == {p: r.run_id for p, r in full.items()}
        == {"b": runs[0].run_id, "a": runs[2].run_id}
    )
