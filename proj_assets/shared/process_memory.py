"""This process's resident memory, for memory goals and per-trial metadata.

The peak is the kernel's VmHWM for this process's own address space. `ru_maxrss` is not used: Linux
carries it over exec from the forking parent, so a child started by a larger process (a bench, a
code server, the daemon) would report the parent's peak instead of its own. `reset_peak_rss`
sets VmHWM back to the current RSS (writing 5 to /proc/self/clear_refs, Linux 4.0+), so a peak
read later is the peak since then: per trial, not the process's high-water mark.
`set_malloc_thresholds` tunes glibc's heap: the probes keep freed blocks (speed), the scaling
trainer returns them (its measured peak is then its live memory, which the estimate models).
"""

import ctypes
import ctypes.util
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    if not STATUS.is_file():
        return None
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def current_rss_mb() -> float:
    """Resident memory now (VmRSS), in MiB; 0 where /proc is absent."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MiB; ru_maxrss where /proc is absent."""
    peak = _status_mb("VmHWM")
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


def set_malloc_thresholds(mmap_bytes: int, trim_bytes: int | None = None) -> bool:
    """Fix glibc's mmap threshold (blocks at least this large are mapped on allocation and
    returned on free; fixing it also stops glibc raising it as blocks are freed) and, optionally,
    the heap trim threshold. Process-wide; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes))
    return done and (trim_bytes is None or bool(libc.mallopt(M_TRIM_THRESHOLD, trim_bytes)))
