"""`python -m proj_cluster up|down|env|worker` (the Makefile's cluster-up / cluster-down).

up [--workers 2] [--gpu-workers 0] [--bind ADDR] [--allow CIDR ...]
                                     PostgreSQL, Redis, the daemon, the host monitor and Celery
                                     workers on ADDR (default 127.0.0.1, PROJ_CLUSTER_BIND);
                                     PostgreSQL admits only ADDR and the CIDRs (--allow flags
                                     replace PROJ_CLUSTER_ALLOW, a comma-separated list)
env                                  the PROJ_CLUSTER_* exports of the running cluster (eval it)
worker --name N [--queue cpu]        one more worker in the foreground (e.g. on another host)
monitor                              the watch over worker leases in the foreground (`up` starts it)
backfill ASSET [--partition K ...]   an asset backfill (all partitions by default) on the cluster
down                                 stop everything `up` started, by PID
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from proj_assets.profiles import data_dir
from proj_cluster.env_file import format_exports
from proj_cluster.local_cluster import LocalCluster
from proj_cluster.services import allowed_networks


def _state_dir(args) -> Path:
    return Path(args.state_dir or data_dir() / "cluster")


def _print_env(cluster: LocalCluster) -> None:
    print(format_exports(cluster.env), end="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proj_cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir", help="where PIDs, logs and PostgreSQL data live (default <data dir>/cluster)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--workers", type=int, default=2, help="Celery workers on the cpu queue")
    up.add_argument("--gpu-workers", type=int, default=0, help="Celery workers on the gpu queue")
    up.add_argument(
        "--bind",
        default=os.environ.get("PROJ_CLUSTER_BIND", "127.0.0.1"),
        help="the address PostgreSQL and Redis listen on (one the worker hosts reach)",
    )
    up.add_argument(
        "--allow",
        action="append",
        help="repeatable; a network (CIDR) of worker hosts; replaces PROJ_CLUSTER_ALLOW",
    )
    sub.add_parser("down")
    sub.add_parser("env")
    sub.add_parser("monitor")
    worker = sub.add_parser("worker")
    worker.add_argument("--name", required=True)
    worker.add_argument(
        "--queue", action="append", choices=["cpu", "gpu"], help="repeatable; default cpu"
    )
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument(
        "--threads",
        type=int,
        help="threads of BLAS, OpenMP and polars in its steps (default: all cores)",
    )
    backfill = sub.add_parser("backfill")
    backfill.add_argument("asset", help="asset key with slashes, e.g. probes/sweep/fold_results")
    backfill.add_argument(
        "--partition", action="append", help="repeatable; default: every partition"
    )
    args = parser.parse_args(argv)

    if args.command == "worker":
        from proj_cluster.worker import exec_worker

        exec_worker(args.name, args.queue or ["cpu"], args.concurrency, args.threads)
        return 0  # not reached: exec_worker replaces this process
    if args.command == "backfill":
        import dagster as dg

        from proj_cluster.backfill import submit_asset_backfill

        print(submit_asset_backfill(dg.AssetKey(args.asset.split("/")), args.partition))
        return 0
    if args.command == "monitor":
        from proj_cluster.host_monitor import run_monitor

        run_monitor()
        return 0  # not reached: the monitor runs until stopped
    network = (args.bind, allowed_networks(args.allow)) if args.command == "up" else ()
    cluster = LocalCluster(_state_dir(args), data_dir(), *network)
    if args.command == "env":
        if cluster.state.postgres is None:
            print(f"no cluster recorded in {cluster.state.path}", file=sys.stderr)
            return 1
        _print_env(cluster)
    elif args.command == "up":
        cluster.start(args.workers, args.gpu_workers)
        print(f"cluster up; logs and PIDs in {cluster.state_dir}. Use it with:", file=sys.stderr)
        _print_env(cluster)
    elif args.command == "down":
        cluster.down()
        print(f"cluster in {cluster.state_dir} stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
