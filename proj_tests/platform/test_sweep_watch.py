"""The sweep-spec sensor's decisions: register on change, wait for the manifest, skip done work."""

from proj_assets.probes.sweep_watch import SweepCursor, plan_tick


def test_new_spec_registers_configs_and_requests_manifest_only():
    plan = plan_tick(
        SweepCursor(), "h1", ["a", "b"], {"a"}, ["f1"], manifest_storage_id=7, materialized=set()
    )
    assert plan.add_configs == ["b"] and plan.request_manifest and plan.partitions == []
    assert plan.cursor == SweepCursor("h1", 7, True)


def test_waits_for_a_manifest_newer_than_the_change_then_requests_missing_partitions():
    cursor = SweepCursor("h1", 7, True)
    assert plan_tick(cursor, "h1", ["a", "b"], {"a", "b"}, ["f1", "f2"], 7, set()).partitions == []
    plan = plan_tick(cursor, "h1", ["a", "b"], {"a", "b"}, ["f1", "f2"], 9, {("a", "f1")})
    assert plan.partitions == [("a", "f2"), ("b", "f1"), ("b", "f2")]
    assert not plan.cursor.waiting_for_manifest
    # next tick, same spec: nothing more
    again = plan_tick(plan.cursor, "h1", ["a", "b"], {"a", "b"}, ["f1", "f2"], 9, set())
    assert again.partitions == [] and not again.request_manifest and again.cursor == plan.cursor


def test_changed_spec_starts_over_and_cursor_round_trips():
    plan = plan_tick(SweepCursor("h1", 9, False), "h2", ["a", "c"], {"a", "b"}, ["f1"], 9, set())
    assert plan.add_configs == ["c"] and plan.request_manifest
    assert SweepCursor.parse(plan.cursor.serialize()) == plan.cursor
    assert SweepCursor.parse(None) == SweepCursor()
