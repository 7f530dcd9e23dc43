"""`make ui` stops cleanly: started in its own session with SIGINT ignored (what a background
shell without job control hands a command), SIGTERM to the `make` process alone stops `dg dev`,
its webserver, daemon and code servers, and leaves no process of the session behind.
Slow (~30-60 s: the webserver needs ~15 s to answer): `make test-slow`."""

import os
import signal
import subprocess
import time

import psutil
import pytest
from platform_instance import PROJECT, instance_at, wait_until, write_home
from test_ui_browser import _free_port, _serving

pytestmark = pytest.mark.slow


def _session(sid: int) -> list[psutil.Process]:
    """Every live process of session `sid` (children re-parented to init stay in it)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_make_ui_stops_on_sigterm_with_no_process_left(tmp_path):
    home, port = tmp_path / "home", _free_port()
    env = write_home(home)
    with instance_at(home) as instance:  # create the storage before the services race to migrate it
        instance.get_runs(limit=1)
    log = open(tmp_path / "ui.log", "w")
    make = subprocess.Popen(
        ["make", "-s", "ui", f"UI_PORT={port}", f"DAGSTER_HOME={home}"],
        cwd=PROJECT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        wait_until(
            lambda: _serving(f"http://127.0.0.1:{port}"),
            240,
            "the webserver to answer /server_info",
            interval=2,
        )
        started = _session(make.pid)
        commands = [" ".join(p.cmdline()) for p in started]
        assert any("dg dev" in c for c in commands) and any(
            "dagster_webserver" in c for c in commands
        ), commands
        assert any("dagster._daemon" in c for c in commands), commands

        os.kill(make.pid, signal.SIGTERM)  # the main process only, not the group
        make.wait(timeout=90)
        deadline = time.monotonic() + 60
        while _session(make.pid) and time.monotonic() < deadline:
            time.sleep(1)
        left = [" ".join(p.cmdline()) for p in _session(make.pid)]
        assert left == [], f"still running after SIGTERM: {left}"
        assert not _serving(f"http://127.0.0.1:{port}")
    finally:
        if _session(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        log.close()
    assert "Shutting down Dagster services" in (tmp_path / "ui.log").read_text()
