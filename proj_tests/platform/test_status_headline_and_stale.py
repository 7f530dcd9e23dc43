"""The status note's headline counts open blocking gates and standing warnings by name, and its
stale section lists what went stale with a command that re-runs exactly that (run here)."""

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import stale_location
from definitions_helpers import materializable

from proj_assets.platform.snapshot import build_snapshot
from proj_assets.platform.status import headline, next_actions, render_markdown
from proj_assets.platform.status_model import AssetStatus, GateStatus, Snapshot
from proj_assets.platform.status_sections import rerun_commands
from proj_assets.profiles import load_profile

PROJECT = Path(__file__).parents[2]
WARNINGS = [
    "market/raw/ohlcv:calendar_gaps_small",
    "market/processed/targets:class_balance_reasonable",
    "market/processed/splits:vol_index_proxy_share_low_and_even",
    "probes/sweep/screening:enough_promoted",
]


def _snapshot(gates=(), assets=(), stale=()) -> Snapshot:
    return Snapshot(
        datetime.now(UTC), "demo", list(assets), list(gates), list(stale), [], [], [], []
    )


def _warning(check: str, partition: str | None = None) -> GateStatus:
    return GateStatus(check, check.split("/")[0], False, partition, False, "WARN", 0.9, 0.5)


def test_headline_names_every_standing_warning_and_never_says_all_passed():
    warned = _snapshot([_warning(c) for c in WARNINGS[:3]] + [_warning(WARNINGS[3], "c1")])
    names = ", ".join(f"`{c}`" for c in WARNINGS[:3]) + f", `{WARNINGS[3]} [c1]`"
    assert headline(warned).startswith(
        f"**0 blocking gates open; 4 warnings: {names}**. To review:"
    )
    text = render_markdown(warned)
    assert "every check passed" not in text and "every gate passed" not in text
    assert next_actions(warned) == [
        "Nothing to run: every partition is materialized and no blocking gate is open; "
        "review the 4 warning(s) named above before relying on the results."
    ]

    clean = _snapshot([GateStatus(WARNINGS[0], "market", False, None, True, "WARN")])
    assert headline(clean) == "**0 blocking gates open; 0 warnings**. Nothing to review."
    assert next_actions(clean) == [
        "Nothing to do: every partition is materialized and every check passed."
    ]

    blocked = _snapshot([GateStatus("a/b:c", "a", True, None, False, "ERROR"), _warning("a/b:d")])
    assert headline(blocked).startswith("**1 blocking gate open; 1 warning: `a/b:d`**")
    assert "review the open gates" in headline(blocked)


def test_rerun_commands_cover_exactly_the_stale_partitions():
    assets = [
        AssetStatus("x/y/cells", "x", True, 4, 4, job="cells_job"),
        AssetStatus("x/y/free", "x", True, 3, 3),
    ]
    snap = _snapshot(assets=assets)
    assert rerun_commands(snap, "x/y/cells", ["a", "c"]) == [
        "dagster job backfill -w workspace.yaml -j cells_job --partitions 'a,c' --noprompt"
    ]
    assert rerun_commands(snap, "x/y/free", ["b"]) == [
        "dagster asset materialize -m proj_assets.definitions --select 'x/y/free' --partition 'b'"
    ]
    assert rerun_commands(snap, "x/y/free", [str(i) for i in range(51)]) == []  # the UI does it


def _run(instance, keys, value: int | None = None) -> dg.ExecuteInProcessResult:
    config = {"ops": {"ops_test__raw__source": {"config": {"value": value}}}} if value else {}
    return dg.materialize(
        materializable(stale_location.defs),
        selection=[dg.AssetKey(k) for k in keys],
        instance=instance,
        run_config=config,
        resources={"warehouse": stale_location.WAREHOUSE},
    )


def test_stale_asset_is_listed_with_a_command_that_refreshes_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(home))
    source, gated = ["ops_test", "raw", "source"], ["ops_test", "processed", "gated"]
    _run(instance, [source], value=3)
    _run(instance, [gated])
    _run(instance, [source], value=4)  # a new input: `gated` is stale

    repository, profile = stale_location.defs.get_repository_def(), load_profile("demo")
    snap = build_snapshot(instance, repository, profile, [])
    snap.location_args = f"-f {Path(stale_location.__file__)}"
    text = render_markdown(snap)
    assert re.search(r"^- `ops_test/processed/gated`; because ops_test/raw/source", text, re.M)
    (command,) = re.findall(r"^  - re-run: `(dagster asset materialize [^`]+)`$", text, re.M)

    args = shlex.split(command)
    args[0] = str(Path(sys.executable).with_name("dagster"))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    after = build_snapshot(instance, repository, profile, [])
    assert after.stale == []
    assert "## Stale assets (code or data version changed upstream)\n\n_none_" in render_markdown(
        after
    )
