"""This process's resident memory, for memory goals and per-trial metadata.

The peak is the kernel's VmHWM for this process's own address space. `ru_maxrss` is not used: Linux
carries it over exec from the forking parent, so a child started by a larger process (a bench, a
code server, the daemon) would report the parent's peak instead of its own.
"""

from pathlib import Path

STATUS = Path("/proc/self/status")


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
