"""How often two steps that claim the one-slot `duckdb` pool at the same instant both get it.

Dagster 1.13's slot claim selects a free slot and then updates it by id without checking that it
is still free (SQLite ignores the select's FOR UPDATE; PostgreSQL runs the two statements in
autocommit), so the pool is a schedule, not a mutex: DuckDB's file lock is what keeps writers
apart (docs/architecture.md, Storage). Each try starts two processes that busy-wait to one wall
clock instant and call `claim_concurrency_slot`, then frees both claims. Rerun after a Dagster
upgrade: 0 of N would mean the claim became atomic.

    PYTHONPATH=. .venv/bin/python bench/pool_claim_race.py --tries 30             # fresh SQLite
    eval "$(make -s cluster-env)"; PYTHONPATH=. .venv/bin/python bench/pool_claim_race.py \
        --instance "$DAGSTER_HOME" --tries 30                                        # PostgreSQL
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml
from statsmodels.stats.proportion import proportion_confint

from proj_assets.shared.conventions import DUCKDB_POOL

CLAIM = """
import sys, time
import dagster as dg
home, run, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
with dg.DagsterInstance.from_config(home) as instance:
    while time.time() < at:
        pass
    status = instance.event_log_storage.claim_concurrency_slot(sys.argv[4], run, "write")
    print(status.slot_status.name)
"""


def _sqlite_home(folder: Path) -> str:
    """A fresh SQLite instance whose pools have one slot, the slot created up front."""
    config = {
        "storage": {"sqlite": {"base_dir": str(folder / "storage")}},
        "telemetry": {"enabled": False},
        "concurrency": {"pools": {"default_limit": 1}},
    }
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)
    return str(folder)


def _both_claimed(home: str, tag: str, lead_s: float) -> bool:
    at = time.time() + lead_s  # long enough for both processes to import dagster
    runs = [f"race-{tag}-{side}" for side in "ab"]
    claims = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, home, run, str(at), DUCKDB_POOL],
            stdout=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    statuses = [claim.communicate()[0].strip() for claim in claims]
    with dg.DagsterInstance.from_config(home) as instance:
        for run in runs:
            instance.event_log_storage.free_concurrency_slots_for_run(run)
    return statuses.count("CLAIMED") == 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--instance", help="a DAGSTER_HOME to race on (default: a fresh SQLite)")
    parser.add_argument("--lead-s", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = args.instance or _sqlite_home(Path(scratch))
        started = time.monotonic()
        both = sum(_both_claimed(home, f"{time.time_ns()}", args.lead_s) for _ in range(args.tries))
    low, high = proportion_confint(both, args.tries, method="wilson")
    kind = "given instance" if args.instance else "fresh SQLite instance"
    print(
        f"{kind}: both claims won the one slot in {both} of {args.tries} tries "
        f"({both / args.tries:.0%}, 95% CI {low:.0%}-{high:.0%}; {time.monotonic() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
