"""CPU time of processes, read from /proc (Linux): what a benchmark's parts spent."""

from __future__ import annotations

import os
from collections.abc import Callable
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


class CpuSince:
    """CPU time some processes use from now on; one that exits meanwhile takes what it
    used with it (an underestimate)."""

    def __init__(self, read: Callable[[], dict[int, float]]) -> None:
        self.read = read
        self.start = read()

    @classmethod
    def of_process(cls, pid: int) -> CpuSince:
        return cls(lambda: {pid: cpu_seconds(pid)})

    @classmethod
    def of_command(cls, name: str) -> CpuSince:
        """Every process whose command is `name` (e.g. postgres)."""
        return cls(lambda: _named(name))

    def used(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.read().items())
