"""`make ui`: `dg dev` (webserver on 127.0.0.1 and the daemon) that stops on Ctrl-C or SIGTERM.

Dagster's dev command turns SIGTERM into its SIGINT handler and shuts its webserver, daemon and
code server down cleanly on KeyboardInterrupt. A process started in the background by a shell
without job control (a script, CI, `nohup`) inherits SIGINT *ignored*, and then SIGTERM is
ignored too: nothing stops it but SIGKILL, which leaves its children running. So this launcher
restores both signals to their defaults and replaces itself (same PID) with `dg dev`.

    python -m proj_assets.entrypoints.ui [--port 3000]
"""

import argparse
import os
import signal
import sys
from pathlib import Path

HOST = "127.0.0.1"


def dg_dev_command(port: int, workspace: str = "workspace.yaml") -> list[str]:
    dg = str(Path(sys.executable).with_name("dg"))
    return [dg, "dev", "-w", workspace, "-h", HOST, "-p", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m proj_assets.entrypoints.ui", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)  # an ignored signal would survive exec
    from proj_assets.platform.instance_home import ensure_instance_home

    ensure_instance_home()  # exported DAGSTER_HOME wins; `dg dev` inherits it
    command = dg_dev_command(args.port)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
