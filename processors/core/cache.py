"""Readings remembered per frozen object, for the objects asked about most recently.

A fold asks the same questions of the same chain many times while it handles a message
or a batch: its periods, journey and relations, for the status, the access levels, the
journey, the timers and the snapshot. Inputs are frozen, so an answer holds while the
very same object is asked again. An entry keeps its object alive, so no other object can
take its id while the entry exists; the oldest entries go once there are `LIMIT`, which
bounds memory to what recent work needs rather than to every state a worker holds.

Answers that depend on an instant are kept for the last few instants asked only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

V = TypeVar("V")

LIMIT = 20_000
_INSTANTS_KEPT = 4

Entries = dict[Hashable, tuple[object, Any]]
# id(subject) -> (subject, {(question, id(context)[, instant]): (context, answer)})
_ANSWERS: dict[int, tuple[object, Entries]] = {}
_TIMED: dict[int, tuple[object, Entries]] = {}


def _entries(subject: object, table: dict[int, tuple[object, Entries]]) -> Entries:
    found = table.get(id(subject))
    if found is not None:
        return found[1]
    if len(table) >= LIMIT:
        for key in list(table)[: LIMIT // 4]:
            del table[key]
    entries: Entries = {}
    table[id(subject)] = (subject, entries)
    return entries


def _hit(
    table: dict[int, tuple[object, Entries]], subject: object, key: Hashable, context: object
) -> tuple[object, Any] | None:
    found = table.get(id(subject))
    if found is None:
        return None
    hit = found[1].get(key)
    return hit if hit is not None and hit[0] is context else None


def remembered(question: str, subject: object, context: object, answer: Callable[[], V]) -> V:
    """`answer()`, computed once per `subject` and `context` (e.g. the fold config)."""
    key = (question, id(context))
    hit = _hit(_ANSWERS, subject, key, context)
    if hit is not None:
        return hit[1]  # type: ignore[no-any-return]
    value = answer()
    _entries(subject, _ANSWERS)[key] = (context, value)
    return value


def remembered_at(
    question: str, subject: object, context: object, instant: Hashable, answer: Callable[[], V]
) -> V:
    """Like `remembered`, for an answer that depends on an instant too."""
    key = (question, id(context), instant)
    hit = _hit(_TIMED, subject, key, context)
    if hit is not None:
        return hit[1]  # type: ignore[no-any-return]
    value = answer()
    entries = _entries(subject, _TIMED)
    if len(entries) >= _INSTANTS_KEPT:
        del entries[next(iter(entries))]
    entries[key] = (context, value)
    return value
