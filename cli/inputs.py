"""Reading what a command line is given: canonical events and commands, instants."""

from __future__ import annotations

from datetime import datetime

import typer
from pydantic import TypeAdapter, ValidationError

from schemas.base import Instant
from schemas.messages import Input

_INPUT = TypeAdapter(Input)
INSTANT = TypeAdapter(Instant)


def parse_instant(value: str) -> datetime:
    try:
        return INSTANT.validate_python(value)
    except ValidationError as error:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 instant with an offset") from error


class InputError(Exception):
    """A line of input that is not a canonical event or command."""


def read_inputs(lines: list[bytes], source: str) -> list[Input]:
    items: list[Input] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(_INPUT.validate_json(line))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise InputError(f"{source}:{number}: {where}: {first['msg']}") from error
    return items
