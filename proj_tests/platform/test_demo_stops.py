"""`make demo` stops on SIGTERM: started in its own session with SIGINT ignored (what a background
shell without job control hands a command), SIGTERM to the `make` process alone stops the demo
runner mid-run and leaves no process of the session behind. (Dagster's run execution maps
SIGTERM onto the SIGINT handler, so with SIGINT ignored the demo used to ignore SIGTERM too.)"""

import os
import signal
import subprocess
import time

from platform_instance import PROJECT, wait_until, write_home
from test_ui_stops import _ignore_sigint, _session


def test_make_demo_stops_on_sigterm_with_no_process_left(tmp_path):
    home = tmp_path / "home"
    env = write_home(home)
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        make = subprocess.Popen(
            ["make", "-s", "demo", f"DAGSTER_HOME={home}"],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
    try:
        wait_until(
            lambda: "market/raw/ohlcv" in log_path.read_text() or make.poll() is not None,
            240,
            "the demo's first run to finish",
        )
        assert make.poll() is None, log_path.read_text()[-2000:]
        os.kill(make.pid, signal.SIGTERM)  # the main process only, not the group
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running: {log_path.read_text()[-2000:]}") from None
        deadline = time.monotonic() + 30
        while _session(make.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [" ".join(p.cmdline()) for p in _session(make.pid)]
        assert left == [], f"still running after SIGTERM: {left}"
        assert make.returncode != 0  # stopped, not finished
    finally:
        for proc in _session(make.pid):
            proc.kill()


BETWEEN_RUNS = """
import signal, sys, time
import dagster as dg
from proj_assets.entrypoints.demo import stop_on_sigterm

signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a background shell hands a command
if sys.argv[1] == "demo":
    stop_on_sigterm()  # what the demo runner does first


@dg.asset
def quick() -> int:
    return 1


dg.materialize([quick], instance=dg.DagsterInstance.ephemeral())  # afterwards SIGTERM maps to SIGINT's handler
print("between runs", flush=True)
time.sleep(60)
"""


def test_sigterm_between_runs_stops_the_demo_runner_but_not_a_plain_dagster_process(tmp_path):
    """The deterministic half: once a run has finished, Dagster leaves SIGTERM on SIGINT's handler,
    which a background shell set to ignore; the demo runner's handlers make it stop anyway."""
    import sys

    script = tmp_path / "between_runs.py"
    script.write_text(BETWEEN_RUNS)
    outcome = {}
    for mode in ("plain", "demo"):
        log_path = tmp_path / f"{mode}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, str(script), mode],
                cwd=PROJECT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda log_path=log_path: "between runs" in log_path.read_text(),
            120,
            f"the {mode} process's first run",
        )
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
            outcome[mode] = "stopped"
        except subprocess.TimeoutExpired:
            outcome[mode] = "ignored SIGTERM"
            proc.kill()
            proc.wait()
    assert outcome == {"plain": "ignored SIGTERM", "demo": "stopped"}


DURING_A_RUN = """
import os, signal, time
import dagster as dg
from proj_assets.entrypoints.demo import materialize_all, stop_on_sigterm

signal.signal(signal.SIGINT, signal.SIG_IGN)
stop_on_sigterm()


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["1", "2"]), group_name="market")
def slow(context) -> None:
    print("running", context.partition_key, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)


try:
    materialize_all(dg.Definitions(assets=[slow]), dg.DagsterInstance.ephemeral())
    print("carried on", flush=True)
except KeyboardInterrupt as stop:
    print("stopped:", stop, flush=True)
"""


def test_sigterm_during_a_run_stops_the_demo_runner_instead_of_starting_the_next_run(tmp_path):
    """Dagster turns a signal inside a run into a failed run and forgets the signal; the runner
    must see the interruption and stop, not go on to the next partition."""
    assert _runner_lines(tmp_path, DURING_A_RUN) == ["running 1", "stopped: slow was interrupted"]


AS_A_RUN_ENDS = """
import os, signal
import dagster as dg
from proj_assets.entrypoints.demo import materialize_all, stop_on_sigterm

signal.signal(signal.SIGINT, signal.SIG_IGN)
stop_on_sigterm()
instance = dg.DagsterInstance.ephemeral()
record = instance.handle_new_event


def record_then_signal(event, **kwargs):  # the signal lands as the run records its success
    record(event, **kwargs)
    if event.is_dagster_event and event.dagster_event.event_type_value == "PIPELINE_SUCCESS":
        os.kill(os.getpid(), signal.SIGTERM)


instance.handle_new_event = record_then_signal


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["1", "2"]), group_name="market")
def quick(context) -> None:
    print("running", context.partition_key, flush=True)


try:
    materialize_all(dg.Definitions(assets=[quick]), instance)
    print("carried on", flush=True)
except KeyboardInterrupt as stop:
    print("stopped:", stop, flush=True)
"""


def test_sigterm_as_a_run_ends_stops_the_demo_runner_though_dagster_drops_it(tmp_path):
    """A signal outside a step's code is caught by Dagster's handler and forgotten when the run
    ends (the run succeeds); the runner must still stop before the next run."""
    assert _runner_lines(tmp_path, AS_A_RUN_ENDS) == ["running 1", "stopped: quick was interrupted"]


def _runner_lines(tmp_path, script_text: str) -> list[str]:
    """What a script driving the demo runner printed about its runs and how it ended."""
    import sys

    script = tmp_path / "runner.py"
    script.write_text(script_text)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [s for s in done.stdout.splitlines() if s.startswith(("running", "stopped", "carried"))]
