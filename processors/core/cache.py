"""Readings kept per frozen object: the fold asks the same questions of the same objects.

A message's fold reads a chain's periods, relations and journey several times (status,
access, journey, timers, snapshot), and the profile evaluated after one message is the
one evaluated before the next. Inputs are frozen, so a result is reused while the very
same objects are passed. An entry holds its objects alive, so while it exists no other
object can have their ids: equal ids in the key mean the very same objects.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    def __init__(self, limit: int = 8192) -> None:
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], V]] = {}
        self._limit = limit

    def get(self, objects: tuple[object, ...], extra: Hashable = None) -> V | None:
        hit = self._entries.get((*map(id, objects), extra))
        return None if hit is None else hit[1]

    def put(self, objects: tuple[object, ...], extra: Hashable, value: V) -> V:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(*map(id, objects), extra)] = (objects, value)
        return value
