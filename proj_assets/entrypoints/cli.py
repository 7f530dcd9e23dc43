"""Command line for operations: `python -m proj_assets.entrypoints.cli status [--output FILE]`.

Reads the instance at DAGSTER_HOME (default: the data folder's, `platform/instance_home.py`) and
the active profile's warehouse, and prints the status report as markdown, the same text the
`platform/report/status` asset stores. `instance-home` prints that DAGSTER_HOME, prepared.
"""

import argparse
import sys
from pathlib import Path


def status_markdown() -> str:
    import dagster as dg

    from proj_assets.definitions import defs
    from proj_assets.platform.instance_home import ensure_instance_home
    from proj_assets.platform.snapshot import build_snapshot
    from proj_assets.platform.status import render_markdown
    from proj_assets.profiles import data_dir, load_profile
    from proj_assets.shared.gates import recorded_reviews
    from proj_resources.warehouse import Warehouse, warehouse_path

    ensure_instance_home()
    profile = load_profile()
    reviews = recorded_reviews(Warehouse(database=str(warehouse_path(profile.name, data_dir()))))
    with dg.DagsterInstance.get() as instance:
        return render_markdown(
            build_snapshot(instance, defs().get_repository_def(), profile, reviews)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proj_assets.entrypoints.cli", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status", help="print the status report (markdown) from the instance"
    )
    status.add_argument("--output", type=Path, help="also write the report to this file")
    commands.add_parser("instance-home", help="print DAGSTER_HOME for this profile and data dir")
    args = parser.parse_args(argv)
    if args.command == "instance-home":
        from proj_assets.platform.instance_home import ensure_instance_home

        print(ensure_instance_home())
    if args.command == "status":
        text = status_markdown()
        if args.output:
            args.output.write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
