"""The base every contract model derives from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable and strict about unknown fields: a typo in a payload is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_timedelta="iso8601")


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


# Every instant in subledger is timezone-aware and normalised to UTC, so that equal
# instants compare and serialise equally whatever offset the store used.
Instant = Annotated[datetime, AfterValidator(_require_utc)]
