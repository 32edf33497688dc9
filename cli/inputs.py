"""Reading what a command line is given: canonical events and commands, instants."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import orjson
import typer

from schemas.base import from_json
from schemas.messages import Input


def parse_instant(value: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 instant with an offset") from error
    if instant.tzinfo is None:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 instant with an offset")
    return instant.astimezone(UTC)


class InputError(Exception):
    """A line of input that is not a canonical event or command."""


def read_inputs(lines: list[bytes], source: str) -> list[Input]:
    items: list[Input] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(from_json(Input, line))  # type: ignore[arg-type]
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise InputError(f"{source}:{number}: {_where(line, error)}") from error
    return items


def _where(line: bytes, error: Exception) -> str:
    """`kind.field: reason`, as far as the line tells them."""
    message, _, at = str(error).partition(" - at `$")
    field = at.rstrip("`").lstrip(".")
    try:
        kind = orjson.loads(line).get("kind")
    except (orjson.JSONDecodeError, AttributeError):
        kind = None
    where = ".".join(part for part in (kind, field) if part) or "line"
    return f"{where}: {message}"
