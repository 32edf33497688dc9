"""What every normalizer returns: canonical events validated as the chain fold will read them.

Events are built field by field from store payloads; building checks only the rules each
contract states in code, so a payload that lacks what its store documents would otherwise
slip through. Each event is therefore read back from its JSON, as the next fold reads it:
a bad one fails here, with the field, and the notification goes to the dead letters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

from schemas.base import from_json, to_json
from schemas.events import StoreEvent

T = TypeVar("T")


class CanonicalError(ValueError):
    """A normalized event that is not a valid canonical event."""


def checked(events: Iterable[StoreEvent]) -> list[StoreEvent]:
    out = []
    for event in events:
        try:
            out.append(from_json(StoreEvent, to_json(event)))
        except (msgspec.ValidationError, TypeError) as error:
            raise CanonicalError(f"not a canonical event: {error}") from error
    return out


def must(value: T | None, name: str) -> T:
    """A value the store documents as always present."""
    if value is None:
        raise CanonicalError(f"{name} is missing")
    return value
