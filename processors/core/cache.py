"""Readings remembered per frozen object, for the objects asked about most recently.

A fold asks the same questions of the same chain many times while it handles a message
or a batch: its periods, journey and relations, for the status, the access levels, the
journey, the timers and the snapshot. Inputs are frozen, so an answer holds while the
very same object is asked again. An entry keeps its object alive, so no other object can
take its id while the entry exists; the oldest entries go once there are `LIMIT`, which
bounds memory to what recent work needs rather than to every state a worker holds.

One flat table, one lookup per question: asking is a large share of a fold step.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from itertools import islice
from typing import Any, TypeVar

V = TypeVar("V")

LIMIT = 100_000

# (question, id(subject), id(context)[, instant]) -> (subject, context, answer)
_TABLE: dict[Hashable, tuple[object, object, Any]] = {}


def _ask(key: Hashable, subject: object, context: object, answer: Callable[[], V]) -> V:
    hit = _TABLE.get(key)
    if hit is not None and hit[0] is subject and hit[1] is context:
        return hit[2]  # type: ignore[no-any-return]
    value = answer()
    if len(_TABLE) >= LIMIT:
        for old in list(islice(_TABLE, LIMIT // 4)):
            del _TABLE[old]
    _TABLE[key] = (subject, context, value)
    return value


def remembered(question: str, subject: object, context: object, answer: Callable[[], V]) -> V:
    """`answer()`, computed once per `subject` and `context` (e.g. the fold config)."""
    return _ask((question, id(subject), id(context)), subject, context, answer)


def remembered_at(
    question: str, subject: object, context: object, instant: Hashable, answer: Callable[[], V]
) -> V:
    """Like `remembered`, for an answer that depends on an instant too."""
    return _ask((question, id(subject), id(context), instant), subject, context, answer)
