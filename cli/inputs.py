"""Reading canonical events and commands from JSON lines."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from schemas.messages import Input

_INPUT = TypeAdapter(Input)


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
