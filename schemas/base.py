"""The base every fold contract derives from, and how contracts become JSON and back.

Contracts are msgspec Structs: frozen, typed, validated when decoded (types, required
fields, the constraints in `Meta`, and each model's `__post_init__`), and cheap enough
to build in the fold's hot path: a Struct is built in well under a microsecond, where a
validated pydantic model costs several. The HTTP layer keeps pydantic (`schemas/api.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec.structs import force_setattr

T = TypeVar("T")


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Immutable and strict about unknown fields: a typo in a payload is an error.

    `gc=False`: records hold only immutable values and containers that never point back
    at a record, so the cyclic collector has nothing to find in the millions a worker
    holds, and need not walk them.
    """


class Compact(Record, frozen=True, kw_only=True, omit_defaults=True, array_like=True):
    """A record of the folds' own (state, facts, what they tell each other): written
    positionally and without its defaults, since only the processor that wrote it reads
    it back (a new processor version derives its own; `subledger reprocess`)."""


# Every instant in subledger is timezone-aware and normalised to UTC (`utc` below), so
# that equal instants compare and serialise equally whatever offset the store used.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

replace = msgspec.structs.replace

_ENCODER = msgspec.json.Encoder(decimal_format="string")


def to_json(value: object) -> bytes:
    return _ENCODER.encode(value)


def to_builtins(value: object) -> Any:
    """Plain JSON values (str, int, float, bool, None, list, dict) of a contract: what its
    JSON decodes to."""
    return msgspec.json.decode(_ENCODER.encode(value))


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def from_json(kind: type[T], data: bytes | str) -> T:
    """`data` decoded and validated as `kind` (a record type or a union of them)."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    decoded: T = decoder.decode(data)
    return decoded


def from_builtins(kind: type[T], value: object) -> T:
    """A contract from parsed JSON, validated as `from_json` would."""
    return msgspec.convert(value, type=kind)


def utc(record: Record, names: Iterable[str]) -> None:
    """Normalise the named instants of a record being built to UTC (a `__post_init__` aid)."""
    for name in names:
        value = getattr(record, name)
        if value is not None and value.tzinfo is not UTC:
            if value.tzinfo is None:
                raise ValueError(f"{name} must carry a UTC offset")
            force_setattr(record, name, value.astimezone(UTC))


def require(condition: bool, message: str) -> None:
    """A contract rule: raised in `__post_init__`, it becomes a validation error on decode."""
    if not condition:
        raise ValueError(message)
