"""The timer index: which profile of this worker's partitions wakes next, and when."""

from __future__ import annotations

import heapq
from datetime import datetime


class WakeIndex:
    """A heap of (instant, key) with lazy deletion: only a key's newest instant counts."""

    def __init__(self) -> None:
        self._due: dict[bytes, datetime] = {}
        self._heap: list[tuple[datetime, bytes]] = []

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: bytes, at: datetime | None) -> None:
        if at is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) != at:
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))

    def pop_due(self, now: datetime) -> list[tuple[bytes, datetime]]:
        due: list[tuple[bytes, datetime]] = []
        while self._heap and self._heap[0][0] <= now:
            at, key = heapq.heappop(self._heap)
            if self._due.get(key) == at:
                del self._due[key]
                due.append((key, at))
        return due

    def clear(self) -> None:
        self._due.clear()
        self._heap.clear()
