"""The pydantic base of what crosses the HTTP boundary: request bodies, queries, raw notifications.

FastAPI validates and documents these; once validated they become the fold's contracts
(`schemas.base.Record`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.profile import EMAIL_PATTERN

# What any text or document crossing the boundary may be: the read models keep every
# string in PostgreSQL, whose text refuses NUL, and JSON nested deeper than this is no
# contract of ours.
MAX_TEXT = 1000
MAX_DEPTH = 16
EARLIEST_YEAR, LATEST_YEAR = 1970, 2200


def unkeepable(value: Any, depth: int = 0) -> str | None:
    """Why a decoded JSON document cannot be kept as it is, or None when it can."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text must not contain NUL characters"
        try:
            value.encode()
        except UnicodeEncodeError:
            return "text must be valid Unicode (an unpaired surrogate was found)"
        return None
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return f"the document is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = unkeepable(key, depth + 1) or unkeepable(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = unkeepable(item, depth + 1)
            if problem:
                return problem
    return None


class Frozen(BaseModel):
    """An HTTP body or query: immutable, strict about unknown fields, and holding only
    what the system can keep (no NUL or unpaired surrogate in any text, no string longer
    than `MAX_TEXT` unless a field says less, no infinite or NaN number)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_max_length=MAX_TEXT, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _keepable(cls, value: Any) -> Any:
        problem = unkeepable(value)
        if problem:
            raise ValueError(problem)
        return value


# An instant as the API takes it: RFC 3339 (ISO 8601 with seconds and an offset), of a year
# from `EARLIEST_YEAR` to `LATEST_YEAR`. Anything else, a number above all (it would be
# read as a Unix timestamp), is refused.
INSTANT_TEXT = (
    r"^(19[7-9][0-9]|2[01][0-9][0-9]|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _instant_text(value: Any) -> Any:
    if isinstance(value, datetime):  # built in code, not read
        return value
    if not isinstance(value, str) or not re.fullmatch(INSTANT_TEXT, value):
        raise PydanticCustomError(
            "datetime_parsing",
            "timestamp must be an RFC 3339 date and time with a UTC offset "
            f"(such as 2026-12-01T10:00:00Z), between {EARLIEST_YEAR} and {LATEST_YEAR}",
        )
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


# An instant given over HTTP, normalised to UTC.
Instant = Annotated[
    datetime,
    BeforeValidator(_instant_text),
    AfterValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": INSTANT_TEXT}),
]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
