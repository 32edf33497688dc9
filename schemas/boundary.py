"""The pydantic base of what crosses the HTTP boundary: request bodies, queries, raw notifications.

FastAPI validates and documents these; once validated they become the fold's contracts
(`schemas.base.Record`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from schemas.profile import EMAIL_PATTERN


class Frozen(BaseModel):
    """An HTTP body or query: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


# An instant given over HTTP: with an offset, normalised to UTC.
Instant = Annotated[datetime, AfterValidator(_require_utc)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
