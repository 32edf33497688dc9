"""Readings remembered per frozen object, for as long as the object lives.

A fold asks the same questions of the same chain many times: its periods, journey and
relations for the status, the access levels, the journey, the timers and the snapshot.
Inputs are frozen, so an answer holds while the very same object is asked again. Answers
live beside the object (keyed by its id) and go when it is garbage-collected, so a
profile revisited after a hundred thousand others still finds them, and memory follows
the live states.

Answers that depend on an instant are kept for the last few instants asked only.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

V = TypeVar("V")

_INSTANTS_KEPT = 4

# id(object) -> {(question, context id): (context, answer)}
_ANSWERS: dict[int, dict[Hashable, tuple[object, Any]]] = {}
# id(object) -> {(question, context id, instant): (context, answer)}, oldest first
_TIMED: dict[int, dict[Hashable, tuple[object, Any]]] = {}


def _forget(key: int) -> None:
    _ANSWERS.pop(key, None)
    _TIMED.pop(key, None)


def _entries(subject: object, table: dict[int, dict[Hashable, tuple[object, Any]]]) -> Any:
    key = id(subject)
    entries = table.get(key)
    if entries is None:
        if key not in _ANSWERS and key not in _TIMED:
            weakref.finalize(subject, _forget, key)
        entries = table[key] = {}
    return entries


def remembered(question: str, subject: object, context: object, answer: Callable[[], V]) -> V:
    """`answer()`, computed once per live `subject` and `context` (e.g. the fold config)."""
    entries = _ANSWERS.get(id(subject))
    key = (question, id(context))
    if entries is not None:
        hit = entries.get(key)
        if hit is not None and hit[0] is context:
            return hit[1]  # type: ignore[no-any-return]
    value = answer()
    _entries(subject, _ANSWERS)[key] = (context, value)
    return value


def remembered_at(
    question: str, subject: object, context: object, instant: Hashable, answer: Callable[[], V]
) -> V:
    """Like `remembered`, for an answer that depends on an instant too."""
    entries = _TIMED.get(id(subject))
    key = (question, id(context), instant)
    if entries is not None:
        hit = entries.get(key)
        if hit is not None and hit[0] is context:
            return hit[1]  # type: ignore[no-any-return]
    value = answer()
    entries = _entries(subject, _TIMED)
    if len(entries) >= _INSTANTS_KEPT:
        del entries[next(iter(entries))]
    entries[key] = (context, value)
    return value
