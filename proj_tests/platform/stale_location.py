"""A code location of the tiny gated graph (platform_graph) for commands the status note prints:
`dagster asset materialize -f proj_tests/platform/stale_location.py ...`. Its warehouse (gate
reviews) lies in PROJ_DATA_DIR, which the test process shares with the command's process."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # platform_graph, also when loaded by `dagster -f`

import dagster as dg  # noqa: E402
from platform_graph import gated, source, value_non_negative  # noqa: E402

from proj_assets.shared.gates import with_upstream_gates  # noqa: E402
from proj_resources import Warehouse  # noqa: E402

WAREHOUSE = Warehouse(database=str(Path(os.environ["PROJ_DATA_DIR"]) / "stale_location.duckdb"))

defs = with_upstream_gates(
    dg.Definitions(
        assets=[source, gated],
        asset_checks=[value_non_negative],
        resources={"warehouse": WAREHOUSE},
    )
)
