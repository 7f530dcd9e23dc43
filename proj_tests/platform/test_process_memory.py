"""A process's peak memory is its own: a child started by a large parent reports its own peak
(VmHWM), not the parent's carried over exec the way ru_maxrss is; glibc keeps the trainer's freed
blocks where it can."""

import platform
import subprocess
import sys

import numpy as np

from proj_assets.probes.trainer import keep_freed_blocks
from proj_assets.shared.process_memory import current_rss_mb, peak_rss_mb

CHILD = (
    "import resource; from proj_assets.shared.process_memory import peak_rss_mb; "
    "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def test_a_child_of_a_large_parent_reports_its_own_peak():
    held = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this (parent) process
    assert peak_rss_mb() >= current_rss_mb() >= 400
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    )
    own, carried = map(float, out.stdout.split())
    assert own < 200, (own, carried)  # a bare interpreter, whatever ru_maxrss says (here: carried)
    del held


def test_the_trainer_keeps_freed_blocks_on_glibc():
    assert keep_freed_blocks() is (platform.libc_ver()[0] == "glibc")
