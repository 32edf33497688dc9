"""CPU time of processes, read from /proc (Linux): what a benchmark's parts spent."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _named(name: str) -> dict[int, float]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


class CpuOf:
    """CPU time that every process with command `name` (e.g. postgres) uses from now on;
    a process that exits meanwhile takes what it used with it (an underestimate)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = _named(name)

    def used(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in _named(self.name).items())


class Stopwatch:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds(pid)

    def cpu_used(self) -> float:
        return cpu_seconds(self.pid) - self.cpu
