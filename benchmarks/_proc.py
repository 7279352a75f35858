"""What the benchmarks read of a process from Linux ``/proc``."""

from __future__ import annotations

import os
from pathlib import Path


def _cpu_seconds(stat: Path) -> float:
    # utime and stime, the 14th and 15th fields; the name before them may hold spaces.
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all its threads."""
    return _cpu_seconds(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``'s main thread (for a Trio or Node server:
    its event loop) so far."""
    return _cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))
